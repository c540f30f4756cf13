#!/usr/bin/python3
"""Relay delivery against real destinations: aiosmtpd (tests/integration/delivery/
aiosmtpd_server.py) and scripted servers that misbehave on purpose (sluicetest.ScriptDest), with
retries shortened by config. Covers: clean relay (canonical CR LF and dot-stuffing, one
transaction for all recipients of a domain, connection reuse), STARTTLS (required), 4xx then
accept, 5xx for some recipients with a DSN to the sender, a destination down then back, a drop in
the middle of DATA, a hostile one with endless replies, the per-domain spool quota (451 4.3.1),
expiry with a DSN (none for a null sender, none for spam), tag and quarantine verdicts, MX
routing through a local dnsmasq, the queue tool on a running node, and lines over 998 octets
([delivery] / [domain] long_lines: pass keeps the exact bytes, wrap breaks them, refuse answers
554 5.6.0 to DATA and BDAT). Hostile destinations are in tests/hostile/test_outbound.py.

Run: tests/integration/test_relay.py [name-filter ...]
"""
import email
import email.policy
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import (ScriptDest, Sink, check, eq, free_port, make_cert,  # noqa: E402
                        relay_node, run_suite, send, wait_for)


def msg(mid, subject="relay", body="hello\r\n"):
    return ("Message-ID: <%s>\r\nSubject: %s\r\nFrom: a@src.test\r\n\r\n%s" %
            (mid, subject, body)).encode()


def queue_empty(n):
    r = n.queue("ids")
    return r.returncode == 0 and r.stdout.strip() == ""


def test_relay_clean_message_dot_stuffing_and_reuse():
    sink = Sink().start()
    n = relay_node({"example.test": "127.0.0.1:%d" % sink.port}).start()
    try:
        body = "line one\r\n.starts with a dot\r\n..two dots\r\n.\r\nlast\r\n"
        send(n.primary, "a@src.test", ["bob@example.test", "carol@example.test"],
             msg("m1@test", body=body))
        sink.wait(1)
        time.sleep(0.2)   # the first connection is idle by now: the next message reuses it
        send(n.primary, "a@src.test", ["dave@example.test"], msg("m2@test"))
        got = sink.wait(2)
        eq(len(got), 2, "messages at the destination")
        first = [m for m in got if b"m1@test" in m[2]][0]
        eq(sorted(first[1]), ["bob@example.test", "carol@example.test"],
           "one transaction for both recipients of the domain")
        check(first[2].endswith(body.encode()), "body arrives unstuffed and intact: %r" %
              first[2][-80:])
        check(b"Received: from" in first[2], "our trace header is there")
        check(b"X-Spam-Flag" not in first[2], "a clean message is not tagged")
        check(wait_for(lambda: queue_empty(n), 5), "the spool is empty after delivery")
        eq(n.stop(), 0, "clean stop")
        log = n.read_log()
        check("status=sent" in log, "delivery is logged")
        check("DSNs, 1 connections;" in log,
              "the second message reused the connection:\n" + log[-600:])
    finally:
        n.cleanup()
        sink.cleanup()


def test_starttls_required():
    wd = tempfile.mkdtemp(prefix="sluice-tls-")
    cert, key = make_cert(wd)
    sink = Sink(tls=(cert, key)).start()
    n = relay_node({"example.test": "127.0.0.1:%d" % sink.port},
                   domains_extra={"example.test": {"tls": "required"}}).start()
    try:
        send(n.primary, "a@src.test", ["bob@example.test"], msg("tls@test"))
        got = sink.wait(1)
        eq(len(got), 1, "delivered")
        check(got[0][3], "over TLS")
    finally:
        n.cleanup()
        sink.cleanup()
        shutil.rmtree(wd, ignore_errors=True)


def test_tempfail_then_accept():
    dest = ScriptDest(data_end=lambda c, t: "451 4.3.0 try later" if t <= 2 else "250 2.0.0 Ok")
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port}).start()
    try:
        send(n.primary, "a@src.test", ["bob@example.test"], msg("temp@test"))
        got = dest.wait(1, 20)
        eq(len(got), 1, "accepted after two 4xx")
        check(dest.transactions >= 3, "tried three times")
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
        check("status=deferred" in n.read_log(), "the 4xx is logged as deferred")
        time.sleep(1.5)
        eq(len(dest.accepted), 1, "not delivered again")
    finally:
        n.cleanup()
        dest.stop()


def test_5xx_some_recipients_bounce_with_dsn():
    dest = ScriptDest(rcpt=lambda a, c: "550 5.1.1 no such user" if a.startswith("gone")
                      else "250 2.1.5 Ok")
    back = Sink().start()   # the sender's domain is ours too: the DSN goes there
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port,
                    "src.test": "127.0.0.1:%d" % back.port}).start()
    try:
        send(n.primary, "alice@src.test", ["bob@example.test", "gone@example.test"],
             msg("bounce@test"))
        got = dest.wait(1)
        eq(len(got), 1, "the good recipient got it")
        eq(got[0][1], ["bob@example.test"], "only the good recipient")
        dsns = back.wait(1)
        eq(len(dsns), 1, "one DSN to the sender")
        sender, rcpts, content, _ = dsns[0]
        check(sender in ("", "<>"), "DSN from the null sender: %r" % sender)
        eq(rcpts, ["alice@src.test"], "DSN to the original sender")
        m = email.message_from_bytes(content, policy=email.policy.compat32)
        eq(m.get_content_type(), "multipart/report", "RFC 3464 report")
        text = content.decode(errors="replace")
        check("gone@example.test" in text and "5.1.1" in text, "names the failed recipient")
        check("Action: failed" in text, "Action: failed")
        check("rfc822;bob@example.test" not in text.lower().replace(" ", ""),
              "not the delivered one")
        check(wait_for(lambda: queue_empty(n), 5), "spool empty (original and DSN done)")
        time.sleep(1.5)
        eq(len(dest.accepted), 1, "never redelivered to the recipient already done")
        # The DSN is a message of its own in the event log: accepted (naming the original),
        # then delivered, under its own queue id.
        log = n.read_log()
        orig = re.search(r"accept: qid=([0-9A-F]{16}) .*from=<alice@src.test>", log)
        acc = re.search(r"dsn: accept: qid=([0-9A-F]{16}) .*dsn=failed orig=([0-9A-F]{16}) "
                        r"from=<> nrcpt=1 size=\d+ to=<alice@src.test> id=\S+", log)
        check(orig and acc, "the DSN's accepted event in the log:\n%s" % log[-3000:])
        eq(acc.group(2), orig.group(1), "the DSN's accepted event names the original")
        check(re.search(r"%s: to=<alice@src.test> .*status=sent" % acc.group(1), log),
              "the DSN's delivery under its own queue id")
    finally:
        n.cleanup()
        dest.stop()
        back.cleanup()


def test_destination_down_then_back():
    port = free_port()
    n = relay_node({"example.test": "127.0.0.1:%d" % port}).start()
    sink = None
    try:
        for i in range(3):
            send(n.primary, "a@src.test", ["bob@example.test"], msg("down%d@test" % i))
        check(wait_for(lambda: n.queue("list", "--state", "deferred").stdout.count("bob@") == 3,
                       10), "three deferred messages: " + n.queue("list").stdout)
        sink = Sink(port=port).start()
        got = sink.wait(3, 20)
        eq(len(got), 3, "delivered once the destination came back")
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
    finally:
        n.cleanup()
        if sink:
            sink.cleanup()


def test_drop_in_the_middle_of_data():
    dest = ScriptDest(drop_in_data=lambda t: t == 1)
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port}).start()
    try:
        send(n.primary, "a@src.test", ["bob@example.test"],
             msg("drop@test", body="x" * 70 + "\r\n" * 1 + ("y" * 70 + "\r\n") * 200))
        got = dest.wait(1, 20)
        eq(len(got), 1, "delivered on a later attempt")
        check(dest.transactions >= 2, "the first transaction was cut")
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
    finally:
        n.cleanup()
        dest.stop()


def test_hostile_endless_replies():
    dest = ScriptDest(endless=True)
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port}).start()
    try:
        send(n.primary, "a@src.test", ["bob@example.test"], msg("endless@test"))
        check(wait_for(lambda: "status=deferred" in n.read_log(), 10),
              "the endless reply ends the session and defers")
        check("too long" in n.read_log(), "the bounded reply parser said why")
        # The node is still healthy: it accepts more mail.
        send(n.primary, "a@src.test", ["bob@example.test"], msg("endless2@test"))
        ids = n.queue("ids").stdout
        eq(ids.count("endless"), 2, "both still queued")
        r = n.queue("delete", "--all")
        eq(r.returncode, 0, "delete: " + r.stderr)
        check(wait_for(lambda: queue_empty(n), 5), "deleted by the operator")
    finally:
        n.cleanup()
        dest.stop()


def test_quota_answers_451():
    port = free_port()   # nobody listens: the destination is down
    n = relay_node({"example.test": "127.0.0.1:%d" % port},
                   domains_extra={"example.test": {"spool_quota": "6k"}}).start()
    try:
        big = msg("q@test", body=("z" * 70 + "\r\n") * 30)   # ~2.2 KB
        accepted = 0
        refused = None
        for i in range(10):
            try:
                send(n.primary, "a@src.test", ["bob@example.test"], big.replace(b"q@", b"q%d@" % i))
                accepted += 1
            except smtplib.SMTPRecipientsRefused as e:
                refused = list(e.recipients.values())[0]
                break
        check(refused is not None, "refused past the quota (accepted %d)" % accepted)
        eq(refused[0], 451, "451 past the quota")
        check(b"4.3.1" in refused[1], "4.3.1: %r" % (refused[1],))
        check(2 <= accepted <= 4, "accepted within the quota: %d" % accepted)
        eq(n.queue("ids").stdout.count("\n"), accepted, "every 250'd message is spooled")
    finally:
        n.cleanup()


def test_expiry_dsn_not_for_null_sender_nor_spam():
    port = free_port()   # down for good
    back = Sink().start()
    n = relay_node({"example.test": "127.0.0.1:%d" % port,
                    "src.test": "127.0.0.1:%d" % back.port,
                    "spam.test": "127.0.0.1:%d" % port},
                   delivery={"expire": "3s", "delay_warning": "1s"},
                   domains_extra={"spam.test": {"tag_score": "0"}}).start()
    try:
        send(n.primary, "alice@src.test", ["bob@example.test"], msg("exp@test"))
        send(n.primary, "", ["bob@example.test"], msg("null@test"))
        send(n.primary, "alice@src.test", ["eve@spam.test"], msg("spam@test"))
        check(wait_for(lambda: queue_empty(n), 15), "everything expired: " + n.queue("list").stdout)
        time.sleep(1)
        dsns = back.messages()
        texts = [d[2].decode(errors="replace") for d in dsns]
        failed = [t for t in texts if "Action: failed" in t]
        delayed = [t for t in texts if "Action: delayed" in t]
        eq(len(failed), 1, "one failure DSN (not for the null sender, not for spam)")
        check("bob@example.test" in failed[0] and "4.4.7" in failed[0], "expired, 4.4.7")
        check(len(delayed) <= 1, "at most one delay warning")
        check(all("eve@spam.test" not in t for t in texts), "no DSN for spam")
    finally:
        n.cleanup()
        back.cleanup()


def test_tag_and_quarantine_verdicts():
    sink = Sink().start()
    n = relay_node({"tag.test": "127.0.0.1:%d" % sink.port,
                    "quar.test": "127.0.0.1:%d" % sink.port},
                   domains_extra={"tag.test": {"tag_score": "0"},
                                  # quarantine below tag would be refused: tag off
                                  "quar.test": {"quarantine_score": "0",
                                                "tag_score": "off"}}).start()
    try:
        send(n.primary, "a@src.test", ["x@tag.test"], msg("tag@test"))
        send(n.primary, "a@src.test", ["y@quar.test"], msg("quar@test"))
        got = sink.wait(1)
        eq(len(got), 1, "the tagged message is delivered")
        check(got[0][2].startswith(b"X-Spam-Flag: YES\r\nX-Spam-Status: Yes, score=0.0"),
              "tag headers first: %r" % got[0][2][:80])
        time.sleep(1.5)
        eq(len(sink.messages()), 1, "the quarantined one is not delivered")
        held = n.queue("list", "--state", "held").stdout
        check("y@quar.test" in held, "it is held in the spool: " + held)
    finally:
        n.cleanup()
        sink.cleanup()


def test_hold_then_release_by_reload():
    sink = Sink().start()
    n = relay_node({"example.test": "127.0.0.1:%d" % sink.port}, delivery={"hold": "yes"}).start()
    try:
        send(n.primary, "a@src.test", ["bob@example.test"], msg("hold-1@test"))
        time.sleep(1.5)
        eq(len(sink.messages()), 0, "nothing leaves while [delivery] hold is on")
        check("hold-1@test" in n.queue_ids(), "the message waits in the spool")
        n.sections["delivery"]["hold"] = "no"
        n.write_conf()
        n.hup()
        eq(len(sink.wait(1, 15)), 1, "delivered once the reload lifts the hold")
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
    finally:
        n.cleanup()
        sink.cleanup()


def test_mx_route_through_dnsmasq():
    sink = Sink().start()
    dport = free_port()
    dns = subprocess.Popen(["/usr/sbin/dnsmasq", "--keep-in-foreground", "--no-daemon",
                            "--port=%d" % dport, "--listen-address=127.0.0.1",
                            "--bind-interfaces", "--no-resolv", "--no-hosts",
                            "--mx-host=mxdom.test,mx1.mxdom.test,10",
                            "--host-record=mx1.mxdom.test,127.0.0.1", "--log-facility=-",
                            "--pid-file="], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    n = relay_node({"mxdom.test": "mx"}, delivery={"dns_server": "127.0.0.1:%d" % dport,
                                                   "mx_port": str(sink.port)}).start()
    try:
        send(n.primary, "a@src.test", ["bob@mxdom.test"], msg("mx@test"))
        got = sink.wait(1, 15)
        eq(len(got), 1, "delivered to the MX host: " + n.read_log()[-800:])
        # The log line is written by the agent thread a moment after the delivery.
        check(wait_for(lambda: "relay=mx1.mxdom.test:%d" % sink.port in n.read_log(), 5),
              "via the MX record")
    finally:
        n.cleanup()
        sink.cleanup()
        dns.send_signal(signal.SIGTERM)
        dns.wait()


def test_queue_tools_on_running_node():
    port = free_port()
    n = relay_node({"a.test": "127.0.0.1:%d" % port, "b.test": "127.0.0.1:%d" % port},
                   delivery={"retry_first": "30s", "retry_max": "1m"}).start()
    sink = None
    try:
        send(n.primary, "s@src.test", ["x@a.test"], msg("qa1@test"))
        send(n.primary, "s@src.test", ["y@a.test"], msg("qa2@test"))
        send(n.primary, "", ["z@b.test"], msg("qb1@test"))
        check(wait_for(lambda: n.queue("list", "--state", "deferred").stdout.count("@") >= 3
                       + 2, 10), "all deferred: " + n.queue("list").stdout)
        eq(n.queue("list", "--domain", "b.test").stdout.count("z@b.test"), 1, "list --domain")
        eq(n.queue("list", "--older-than", "1h").stdout.count("@a.test"), 0, "list --older-than")
        ids = dict((mid.strip("<>"), q) for q, mid in
                   (l.split("\t") for l in n.queue("ids").stdout.splitlines()))
        r = n.queue("hold", ids["qa1@test"])
        eq((r.returncode, r.stdout.strip()), (0, "hold: 1 message"), "hold QID")
        check("x@a.test" in n.queue("list", "--state", "held").stdout, "listed as held")
        r = n.queue("delete", "--domain", "b.test")
        eq(r.returncode, 0, "delete --domain")
        check(wait_for(lambda: "qb1" not in n.queue("ids").stdout, 5), "deleted")
        sink = Sink(port=port).start()
        r = n.queue("flush")
        eq(r.returncode, 0, "flush: " + r.stderr)
        got = sink.wait(1, 10)
        eq([m[1] for m in got], [["y@a.test"]], "flush delivered the deferred one, not the held")
        r = n.queue("release", ids["qa1@test"])
        eq(r.stdout.strip(), "release: 1 message", "release")
        got = sink.wait(2, 10)
        eq(len(got), 2, "the released one is delivered")
        r = n.queue("bounce", "0000000000000001")
        eq((r.returncode, r.stdout.strip()), (1, "bounce: 0 messages"), "bounce of nothing")
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
        eq(n.stop(), 0, "clean stop")
        r = n.queue("flush")
        eq(r.returncode, 1, "no node, no flush")
    finally:
        n.cleanup()
        if sink:
            sink.cleanup()


LONG = "x" * 1500 + "y" * 1500   # one 3000-octet line (DKIM-signed HTML mail has such lines)


def test_long_lines_pass_by_default():
    dest = ScriptDest()
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port}).start()
    try:
        body = "short\r\n" + LONG + "\r\n.dot\r\nend\r\n"
        send(n.primary, "a@src.test", ["bob@example.test"], msg("long1@test", body=body))
        got = dest.wait(1, 10)
        eq(len(got), 1, "delivered")
        wire = body.replace("\r\n.", "\r\n..").encode()
        check(got[0][2].endswith(wire), "the exact bytes, the long line unbroken: %r" %
              got[0][2][-120:])
    finally:
        n.cleanup()
        dest.stop()


def test_long_lines_wrap():
    dest = ScriptDest()
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port},
                   delivery={"long_lines": "wrap"}).start()
    try:
        body = "short\r\n" + LONG + "\r\nend\r\n"
        send(n.primary, "a@src.test", ["bob@example.test"], msg("long2@test", body=body))
        got = dest.wait(1, 10)
        eq(len(got), 1, "delivered")
        raw = got[0][2]
        lines = raw.split(b"\r\n")
        check(max(len(l) for l in lines) <= 998, "no line over 998 octets")
        tail = raw[raw.index(b"short\r\n"):]
        eq(tail.replace(b"\r\n ", b""), (body).encode(),
           "broken with CR LF SP; nothing else changed")
    finally:
        n.cleanup()
        dest.stop()


def test_long_lines_refuse_554_data_and_bdat():
    import socket
    dest = ScriptDest()
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port},
                   delivery={"long_lines": "refuse"}).start()
    try:
        try:
            send(n.primary, "a@src.test", ["bob@example.test"],
                 msg("long3@test", body="a\r\n" + "z" * 999 + "\r\n"))
            check(False, "a 999-octet line is refused")
        except smtplib.SMTPDataError as e:
            eq(e.smtp_code, 554, "554")
            check(b"5.6.0" in e.smtp_error, "5.6.0: %r" % e.smtp_error)
        # 998 is the limit: accepted.
        send(n.primary, "a@src.test", ["bob@example.test"],
             msg("long4@test", body="z" * 998 + "\r\n"))
        eq(len(dest.wait(1, 10)), 1, "the 998-octet line is relayed")
        # BDAT: the same answer at the end of the last chunk.
        c = socket.create_connection(n.primary, timeout=10)
        f = c.makefile("rb")

        def reply():
            while True:
                line = f.readline()
                if line[3:4] != b"-":
                    return line
        reply()
        c.sendall(b"EHLO client.test\r\n")
        reply()
        c.sendall(b"MAIL FROM:<a@src.test>\r\n")
        eq(reply()[:3], b"250", "MAIL")
        c.sendall(b"RCPT TO:<bob@example.test>\r\n")
        eq(reply()[:3], b"250", "RCPT")
        data = msg("long5@test", body="q" * 2000 + "\r\n")
        c.sendall(b"BDAT %d LAST\r\n" % len(data) + data)
        r = reply()
        check(r.startswith(b"554 5.6.0"), "BDAT LAST: %r" % r)
        c.sendall(b"QUIT\r\n")
        c.close()
        time.sleep(0.5)
        eq(len(dest.accepted), 1, "nothing refused was relayed")
        ids = n.queue("ids").stdout
        check("long3" not in ids and "long5" not in ids, "nor spooled")
    finally:
        n.cleanup()
        dest.stop()


def test_long_lines_per_domain():
    dest = ScriptDest()
    r = "127.0.0.1:%d" % dest.port
    n = relay_node({"pass.test": r, "wrap.test": r, "ref.test": r},
                   delivery={"long_lines": "refuse"},
                   domains_extra={"pass.test": {"long_lines": "pass"},
                                  "wrap.test": {"long_lines": "wrap"}}).start()
    try:
        body = LONG + "\r\n"
        send(n.primary, "a@src.test", ["p@pass.test"], msg("lp@test", body=body))
        send(n.primary, "a@src.test", ["w@wrap.test"], msg("lw@test", body=body))
        for rcpts in (["r@ref.test"], ["p2@pass.test", "r2@ref.test"]):
            try:
                send(n.primary, "a@src.test", rcpts, msg("lr@test", body=body))
                check(False, "refused for %r" % rcpts)
            except smtplib.SMTPDataError as e:
                eq(e.smtp_code, 554, "554 when a recipient's domain refuses")
        got = dest.wait(2, 10)
        eq(len(got), 2, "two relayed")
        by = dict((m[1][0], m[2]) for m in got)
        check(by["p@pass.test"].endswith(body.encode()), "pass.test: unbroken")
        check(max(len(l) for l in by["w@wrap.test"].split(b"\r\n")) <= 998, "wrap.test: wrapped")
        time.sleep(0.3)
        eq(len(dest.accepted), 2, "nothing else")
    finally:
        n.cleanup()
        dest.stop()


if __name__ == "__main__":
    sys.exit(run_suite("relay", globals(), sys.argv[1:]))
