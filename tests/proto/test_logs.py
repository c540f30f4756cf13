#!/usr/bin/python3
"""What an operator reads (issue 14, item 10): real client sessions provoke each kind of refusal
and an accepted message; the node's log lines are then parsed and every field checked (stage,
client IP and port, listener and MX role, code, enhanced code, text, helo, from, to; for an
accepted message the queue id, TLS, sender, recipients, size as sluice-queue shows it, score,
action, rules). Also: the expiry line, log_level following a reload, and log = syslog to a
datagram socket the test owns (log_socket), so no system logger is touched.
"""
import json
import os
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import (NODE, ROOT, Node, Raw, check, eq, relay_node, run_suite,  # noqa: E402
                        wait_for)

REJECT = re.compile(
    r"(?P<sid>\S+): reject: (?P<stage>[A-Z][A-Z-]*) from (?P<ip>\[[^\]]+\]|[0-9.]+):(?P<port>\d+)"
    r" to (?P<listen>\S+) \((?P<role>primary|fallback) MX\): (?P<code>[45]\d\d)"
    r"(?: (?P<enh>[245]\.\d{1,3}\.\d{1,3}))? (?P<text>.*?); helo=<(?P<helo>[^>]*)>"
    r" from=<(?P<from>[^>]*)> to=<(?P<to>[^>]*)>(?P<tail>.*)$")
ACCEPT = re.compile(
    r"sluice-node\[(?P<tag>[^\]]+)\] info: "
    r"(?P<sid>\S+): accept: qid=(?P<qid>[0-9A-F]{16}) from (?P<ip>\[[^\]]+\]|[0-9.]+):"
    r"(?P<port>\d+) to (?P<listen>\S+) \((?P<role>primary|fallback) MX\): helo=<(?P<helo>[^>]*)>"
    r" tls=(?P<tls>\S+) from=<(?P<from>[^>]*)> nrcpt=(?P<nrcpt>\d+) size=(?P<size>\d+)"
    r" score=(?P<score>-?\d+\.\d) action=(?P<action>[a-z]+) tests=(?P<tests>\S+)"
    r" to=(?P<to>.*?)(?: id=(?P<id>\S+))?$")


def rejects(node_or_text):
    text = node_or_text if isinstance(node_or_text, str) else node_or_text.read_log()
    out = []
    for line in text.splitlines():
        m = REJECT.search(line)
        if m:
            out.append(m.groupdict())
    return out


def accepts(text):
    out = []
    for line in text.splitlines():
        m = ACCEPT.search(line)
        if m:
            out.append(m.groupdict())
    return out


def at_least(k, lst):
    return lst if len(lst) >= k else None


def wait_reject(n, pred, timeout=5):
    """The first reject line matching pred (the agent writes events every 50 ms)."""
    got = wait_for(lambda: [r for r in rejects(n) if pred(r)], timeout=timeout)
    check(got, "no reject line matching; log tail:\n" + n.read_log()[-2500:])
    return got[0]


def session(n, addr=None):
    """A raw session greeted with EHLO; returns (client, local port)."""
    r = Raw(addr or n.primary)
    eq(r.reply()[0], 220, "banner")
    return r, r.s.getsockname()[1]


def expect(line, stage, port, code, enh, text, helo="", frm="", to="", listen=None,
           role="primary"):
    """Every field of one reject line."""
    eq(line["stage"], stage, "stage")
    eq(line["ip"], "127.0.0.1", "client ip")
    eq(int(line["port"]), port, "client port")
    if listen:
        eq(line["listen"], listen, "listener")
    eq(line["role"], role, "MX role")
    eq(int(line["code"]), code, "code")
    eq(line["enh"], enh, "enhanced code")
    check(text in line["text"], "text %r in %r" % (text, line["text"]))
    eq(line["helo"], helo, "helo")
    eq(line["from"], frm, "from")
    eq(line["to"], to, "to")
    check(re.fullmatch(r"[0-9A-F]{10}", line["sid"]), "session id: %r" % line["sid"])


_node = [None]


def node():
    if _node[0] is None:
        # One shard: a domain's spool quota is split between shards.
        _node[0] = Node(conf={"node": {"shards": "1"},
                              "limits": {"recipients": "2", "message_size": "2048",
                                         "errors": "50"},
                              "domain quota.test": {"route": "127.0.0.1:9",
                                                    "spool_quota": "1"}},
                        domains=("example.test",)).start()
    return _node[0]


def listen_of(n, addr):
    return "%s:%d" % addr


def test_reject_helo_and_unknown():
    n = node()
    r, port = session(n)
    eq(r.cmd("EHLO bad host")[0], 501, "EHLO with a space")
    eq(r.cmd("FOO bar")[0], 500, "unknown verb")
    r.send("NOOP " + "x" * 600 + "\r\n")
    eq(r.reply()[0], 500, "line too long")
    r.close()
    expect(wait_reject(n, lambda x: int(x["port"]) == port and x["stage"] == "EHLO"), "EHLO",
           port, 501, "5.5.4", "Syntax: EHLO hostname", helo="bad host",
           listen=listen_of(n, n.primary))
    got = wait_for(lambda: [x for x in rejects(n)
                            if int(x["port"]) == port and x["stage"] == "UNKNOWN"])
    eq(len(got), 2, "the unknown verb and the long line: stage UNKNOWN")
    expect(got[0], "UNKNOWN", port, 500, "5.5.2", "command not recognized")
    expect(got[1], "UNKNOWN", port, 500, "5.5.2", "line too long")


def test_reject_mail():
    n = node()
    r, port = session(n)
    eq(r.cmd("MAIL FROM:<early@src.test>")[0], 503, "MAIL before EHLO")
    r.cmd("EHLO client.test")
    eq(r.cmd("MAIL FROM:<big@src.test> SIZE=999999")[0], 552, "declared size over the limit")
    eq(r.cmd("MAIL FROM:<bad address@src.test>")[0], 501, "bad sender syntax")
    r.close()
    lines = wait_for(lambda: at_least(3, [x for x in rejects(n) if int(x["port"]) == port]))
    check(lines and len(lines) == 3, "three MAIL refusals: %s" % lines)
    expect(lines[0], "MAIL", port, 503, "5.5.1", "send HELO/EHLO first", frm="early@src.test")
    expect(lines[1], "MAIL", port, 552, "5.3.4", "message size exceeds fixed limit",
           helo="client.test", frm="big@src.test")
    expect(lines[2], "MAIL", port, 501, "5.1.7", "Bad sender address syntax",
           helo="client.test", frm="bad address@src.test")


def test_reject_rcpt_relay_routing_limit_quota():
    n = node()
    # Fill quota.test's spool quota (1 byte): one message queued for it, undeliverable.
    r, port0 = session(n)
    r.cmd("EHLO filler.test")
    r.cmd("MAIL FROM:<f@src.test>")
    eq(r.cmd("RCPT TO:<a@quota.test>")[0], 250, "first message for quota.test")
    r.cmd("DATA")
    eq(r.cmd("Subject: fill\r\n\r\nx\r\n.")[0], 250, "queued")
    r.close()
    wait_for(lambda: "status=deferred" in n.read_log())
    r, port = session(n, n.fallback)
    r.cmd("EHLO client.test")
    r.cmd("MAIL FROM:<s@src.test>")
    eq(r.cmd("RCPT TO:<x@other.test>")[0], 554, "relaying")
    eq(r.cmd("RCPT TO:<u%v@example.test>")[0], 554, "routing")
    eq(r.cmd("RCPT TO:<b@quota.test>")[0], 451, "quota")
    eq(r.cmd("RCPT TO:<a@example.test>")[0], 250, "1st")
    eq(r.cmd("RCPT TO:<b@example.test>")[0], 250, "2nd")
    eq(r.cmd("RCPT TO:<c@example.test>")[0], 452, "3rd: over recipients = 2")
    r.close()
    lines = wait_for(lambda: at_least(4, [x for x in rejects(n) if int(x["port"]) == port]))
    check(lines and len(lines) == 4, "four RCPT refusals: %s" % lines)
    fb = listen_of(n, n.fallback)
    expect(lines[0], "RCPT", port, 554, "5.7.1", "Relay access denied", helo="client.test",
           frm="s@src.test", to="x@other.test", listen=fb, role="fallback")
    expect(lines[1], "RCPT", port, 554, "5.7.1", "sender-specified routing",
           helo="client.test", frm="s@src.test", to="u%v@example.test", role="fallback")
    expect(lines[2], "RCPT", port, 451, "4.3.1", "queue for this domain is full",
           helo="client.test", frm="s@src.test", to="b@quota.test", role="fallback")
    expect(lines[3], "RCPT", port, 452, "4.5.3", "too many recipients", helo="client.test",
           frm="s@src.test", to="c@example.test", role="fallback")


def test_reject_data_bdat_and_end_of_data():
    n = node()
    r, port = session(n)
    r.send("BDAT 3 LAST\r\nabc")
    eq(r.reply()[0], 503, "BDAT before MAIL: chunk read, then refused")
    r.cmd("EHLO client.test")
    r.cmd("MAIL FROM:<s@src.test>")
    r.cmd("RCPT TO:<x@other.test>")
    eq(r.cmd("DATA")[0], 554, "DATA without a valid recipient")
    r.cmd("RSET")
    r.cmd("MAIL FROM:<s@src.test>")
    r.cmd("RCPT TO:<a@example.test>")
    eq(r.cmd("DATA")[0], 354, "DATA")
    r.send("Subject: big\r\n\r\n" + ("y" * 70 + "\r\n") * 60 + ".\r\n")
    eq(r.reply()[0], 552, "over message_size at end of data")
    r.cmd("MAIL FROM:<c@src.test>")
    r.cmd("RCPT TO:<d@example.test>")
    r.send("BDAT 3000 LAST\r\n" + "z" * 3000)
    eq(r.reply()[0], 552, "over message_size at the last chunk")
    r.close()
    lines = wait_for(lambda: at_least(4, [x for x in rejects(n)
                                          if int(x["port"]) == port and x["stage"] != "RCPT"]))
    check(lines and len(lines) == 4, "BDAT, DATA and END-OF-DATA refusals: %s" % lines)
    expect(lines[3], "END-OF-DATA", port, 552, "5.3.4", "message size exceeds fixed limit",
           helo="client.test", frm="c@src.test", to="d@example.test")
    expect(lines[0], "BDAT", port, 503, "5.5.1", "need RCPT command")
    expect(lines[1], "DATA", port, 554, "5.5.1", "no valid recipients", helo="client.test",
           frm="s@src.test")
    expect(lines[2], "END-OF-DATA", port, 552, "5.3.4", "message size exceeds fixed limit",
           helo="client.test", frm="s@src.test", to="a@example.test")
    eq(lines[2]["tail"], " nrcpt=1", "no verdict for a message that was not kept")


def test_reject_starttls_and_verbs():
    n = node()
    r, port = session(n)
    r.cmd("EHLO client.test")
    eq(r.cmd("STARTTLS now")[0], 501, "STARTTLS with an argument")
    eq(r.cmd("EXPN list")[0], 502, "EXPN")
    eq(r.cmd("GET / HTTP/1.0")[0], 421, "HTTP")
    r.close()
    lines = wait_for(lambda: at_least(3, [x for x in rejects(n) if int(x["port"]) == port]))
    check(lines and len(lines) == 3, "three refusals: %s" % lines)
    expect(lines[0], "STARTTLS", port, 501, "5.5.4", "Syntax: STARTTLS", helo="client.test")
    expect(lines[1], "EXPN", port, 502, "5.5.1", "EXPN not supported", helo="client.test")
    expect(lines[2], "HTTP", port, 421, "4.7.0", "this is an SMTP server", helo="client.test")


def test_reject_content_policy():
    # A domain's ip_block decides at end of data: action=reject, the verdict in the line's tail
    # (the node's own [policy] ip_block refuses at connect instead).
    n = Node(conf={"domain example.test": {"ip_block": "127.0.0.0/8"}}).start()
    try:
        r, port = session(n)
        r.cmd("EHLO blocked.test")
        r.cmd("MAIL FROM:<s@src.test>")
        r.cmd("RCPT TO:<a@example.test>")
        r.cmd("RCPT TO:<b@example.test>")
        r.cmd("DATA")
        eq(r.cmd("Subject: x\r\n\r\nx\r\n.")[0], 550, "blocked source refused at end of data")
        r.close()
        line = wait_reject(n, lambda x: int(x["port"]) == port)
        expect(line, "END-OF-DATA", port, 550, "5.7.1", "message content rejected",
               helo="blocked.test", frm="s@src.test", to="a@example.test")
        check(re.fullmatch(r" nrcpt=2 score=-?\d+\.\d action=reject tests=\S+", line["tail"]),
              "verdict tail: %r" % line["tail"])
    finally:
        n.stop()
        n.cleanup()


def test_reject_connect_per_ip():
    """The per-IP limit refuses before a session exists (smtp_log_reject_connect)."""
    n = Node(conf={"limits": {"connections_per_ip": "1"}}).start()
    try:
        a, _ = session(n)
        b = Raw(n.primary)
        port = b.s.getsockname()[1]
        eq(b.reply()[0], 421, "second connection from the address")
        line = wait_reject(n, lambda x: int(x["port"]) == port)
        eq(line["sid"], "NOQUEUE", "no session")
        expect(dict(line, sid="0000000000"), "CONNECT", port, 421, "4.7.0", "too many")
        a.close()
        b.close()
    finally:
        n.stop()
        n.cleanup()


def test_reject_ipv6_client():
    try:
        probe = socket.socket(socket.AF_INET6)
        probe.bind(("::1", 0))
        port6 = probe.getsockname()[1]
        probe.close()
    except OSError:
        print("  (skipped: no IPv6 loopback here)")
        return
    n = Node(conf={"listen six": {"address": "[::1]:%d" % port6, "role": "fallback"}}).start()
    try:
        r = Raw(("::1", port6))
        eq(r.reply()[0], 220, "banner over IPv6")
        port = r.s.getsockname()[1]
        r.cmd("EHLO six.client.test")
        r.cmd("MAIL FROM:<s@src.test>")
        eq(r.cmd("RCPT TO:<x@elsewhere.test>")[0], 554, "relay refused")
        r.close()
        line = wait_reject(n, lambda x: int(x["port"]) == port)
        eq(line["ip"], "[::1]", "IPv6 client in brackets")
        eq(line["listen"], "[::1]:%d" % port6, "listener as written")
        eq(line["role"], "fallback", "its role")
        eq(line["to"], "x@elsewhere.test", "to")
    finally:
        n.stop()
        n.cleanup()


def queue_sizes(n):
    r = n.queue("list", "--json")
    eq(r.returncode, 0, "sluice-queue list --json")
    return {e["qid"]: e for e in json.loads(r.stdout)}


def test_accepted_line_plain_and_tls():
    n = node()
    # Plain, two recipients, with a null sender.
    s = smtplib.SMTP(*n.primary, timeout=10)
    s.ehlo("plain.client.test")
    port = s.sock.getsockname()[1]
    s.sendmail("", ["a@example.test", "b@example.test"], "Subject: plain\r\n\r\n" + "p" * 500)
    s.quit()
    # Over TLS, from the fallback listener.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    t = smtplib.SMTP(*n.fallback, timeout=10)
    t.ehlo("before.tls.test")
    t.starttls(context=ctx)
    t.ehlo("tls.client.test")
    tport = t.sock.getsockname()[1]
    version, cipher = t.sock.version(), t.sock.cipher()[0]
    t.sendmail("sender@src.test", ["c@example.test"], "Subject: tls\r\n\r\nhello\r\n")
    t.quit()
    got = wait_for(lambda: at_least(2, [a for a in accepts(n.read_log())
                                        if int(a["port"]) in (port, tport)]))
    check(got, "two accepted lines; log tail:\n" + n.read_log()[-2000:])
    q = queue_sizes(n)
    plain = [a for a in got if int(a["port"]) == port][0]
    tls = [a for a in got if int(a["port"]) == tport][0]
    for a in (plain, tls):
        check(a["qid"] in q, "the line's queue id is in the queue: %s" % a["qid"])
        eq(int(a["size"]), q[a["qid"]]["size"], "size = sluice-queue list's")
        eq(a["ip"], "127.0.0.1", "client ip")
        eq(a["action"], "deliver", "action")
        eq(a["score"], "0.0", "score, one decimal")
        eq(a["tests"], "none", "no rules hit")
        check(re.fullmatch(r"[0-9A-F]{10}", a["sid"]), "session id")
        eq(a["tag"], "shard %d" % int(a["qid"][:2], 16), "tagged with the shard it happened on")
    eq(plain["listen"], listen_of(n, n.primary), "listener")
    eq(plain["role"], "primary", "role")
    eq(plain["helo"], "plain.client.test", "helo")
    eq(plain["tls"], "none", "no TLS")
    eq(plain["from"], "", "null sender")
    eq(plain["nrcpt"], "2", "nrcpt")
    eq(plain["to"], "<a@example.test>,<b@example.test>", "recipients")
    eq(tls["role"], "fallback", "role")
    eq(tls["helo"], "tls.client.test", "helo after STARTTLS")
    eq(tls["tls"], "%s/%s" % (version, cipher), "TLS version and cipher")
    eq(tls["from"], "sender@src.test", "sender")
    eq(tls["to"], "<c@example.test>", "recipient")
    eq(q[tls["qid"]]["session_id"], tls["sid"], "same session id as the spool's")


def test_expired_line():
    n = relay_node({"gone.test": "127.0.0.1:9"},
                   delivery={"retry_first": "1s", "retry_max": "1s", "expire": "2s"})
    n.start()
    try:
        s = smtplib.SMTP(*n.primary, timeout=10)
        s.ehlo("client.test")
        s.sendmail("s@src.test", ["x@gone.test"], "Subject: exp\r\n\r\nx\r\n")
        s.quit()
        m = wait_for(lambda: re.search(r"([0-9A-F]{16}): to=<x@gone.test> relay=none "
                                       r"status=expired \(delivery time expired", n.read_log()),
                     timeout=15)
        check(m, "expired line; log tail:\n" + n.read_log()[-2000:])
        acc = [a for a in accepts(n.read_log()) if a["qid"] == m.group(1)]
        eq(len(acc), 1, "the expired message's accepted line has the same queue id")
    finally:
        n.stop()
        n.cleanup()


def test_log_level_follows_reload():
    n = Node().start()
    try:
        def refuse():
            r, port = session(n)
            r.cmd("EHLO client.test")
            r.cmd("MAIL FROM:<s@src.test>")
            eq(r.cmd("RCPT TO:<x@elsewhere.test>")[0], 554, "relay refused")
            r.close()
            return port

        p1 = refuse()
        wait_reject(n, lambda x: int(x["port"]) == p1)
        n.sections["node"]["log_level"] = "warning"
        n.write_conf()
        mark = n.read_log().count("SIGHUP: reloading")
        n.hup()
        # "reloaded" is an info line: at warning it is not written. The SIGHUP line is (it
        # comes before the new level applies); then give the reload a moment.
        check(wait_for(lambda: n.read_log().count("SIGHUP: reloading") > mark), "SIGHUP seen")
        time.sleep(0.5)
        mark = n.read_log().count("reloaded")
        p2 = refuse()
        time.sleep(0.5)
        check(not [x for x in rejects(n) if int(x["port"]) == p2],
              "no info line at log_level = warning")
        after = n.read_log().split("SIGHUP: reloading")[-1].split("\n", 1)[-1]
        check(" info: " not in after, "no info line at all after the reload: %r" % after[-300:])
        n.sections["node"]["log_level"] = "debug"
        n.write_conf()
        n.hup()
        check(wait_for(lambda: n.read_log().count("reloaded") > mark), "reloaded again")
        time.sleep(0.2)
        p3 = refuse()
        wait_reject(n, lambda x: int(x["port"]) == p3)
        check(wait_for(lambda: re.search(r"connect from 127\.0\.0\.1 to ", n.read_log())),
              "debug lines at log_level = debug")
    finally:
        n.stop()
        n.cleanup()


class Syslog:
    """A datagram socket standing in for /dev/log."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="sluice-syslog-")
        self.path = os.path.join(self.dir, "log.sock")
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.s.bind(self.path)
        self.s.settimeout(0.05)
        self.got = []

    def read(self):
        while True:
            try:
                self.got.append(self.s.recv(65536).decode(errors="replace"))
            except (socket.timeout, BlockingIOError):
                return self.got

    def close(self):
        self.s.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


def test_syslog_output():
    sl = Syslog()
    n = Node(conf={"node": {"log": "syslog", "log_facility": "local3",
                            "log_socket": sl.path}})
    # Started by hand: "ready:" may go to syslog instead of the log file.
    logf = open(n.log, "ab")
    n.logf = logf
    n.proc = subprocess.Popen([NODE, "--config", n.conf_path], stdout=logf,
                              stderr=subprocess.STDOUT)
    try:
        check(wait_for(lambda: any("ready:" in d for d in sl.read()) or "ready:" in n.read_log(),
                       timeout=20), "the node started")
        time.sleep(0.2)
        r, port = session(n)
        r.cmd("EHLO syslog.client.test")
        r.cmd("MAIL FROM:<s@src.test>")
        eq(r.cmd("RCPT TO:<x@elsewhere.test>")[0], 554, "relay refused")
        r.close()
        pid = n.proc.pid

        def line():
            for d in sl.read():
                if re.search(r"reject: RCPT from 127\.0\.0\.1:%d " % port, d):
                    return d
            return None
        d = wait_for(line, timeout=5)
        check(d, "a reject datagram; got %r" % sl.got[-5:])
        # local3 = 19, info = 6: <158>
        check(d.startswith("<158>sluice-node[%d]: " % pid), "priority and tag: %r" % d[:60])
        check("\n" not in d, "one line per datagram")
        x = REJECT.search(d)
        check(x, "the same reject line as on stderr: %r" % d)
        expect(x.groupdict(), "RCPT", port, 554, "5.7.1", "Relay access denied",
               helo="syslog.client.test", frm="s@src.test", to="x@elsewhere.test")
        check(not rejects(n), "nothing on stderr for it")
        # The receiver goes away: the node goes on, and its lines go to stderr meanwhile.
        sl.close()
        r, port2 = session(n)
        r.cmd("EHLO gone.test")
        eq(r.cmd("MAIL FROM:<>")[0], 250, "still serving without a receiver")
        eq(r.cmd("RCPT TO:<y@elsewhere.test>")[0], 554, "relay refused")
        r.close()
        wait_reject(n, lambda x: int(x["port"]) == port2)
    finally:
        n.stop()
        try:
            sl.close()
        except OSError:
            pass
        n.cleanup()


def start_syslog_node(sl, conf=None):
    c = {"node": {"log": "syslog", "log_socket": sl.path}}
    c.update(conf or {})
    n = Node(conf=c)
    n.logf = open(n.log, "ab")
    n.proc = subprocess.Popen([NODE, "--config", n.conf_path], stdout=n.logf,
                              stderr=subprocess.STDOUT)
    check(wait_for(lambda: any("ready:" in d for d in sl.read()) or "ready:" in n.read_log(),
                   timeout=20), "the node started")
    return n


def test_syslog_full_never_blocks():
    """A receiver that stops reading (its queue full) costs lines, never a reply."""
    sl = Syslog()
    n = start_syslog_node(sl, {"limits": {"errors": "1000"}})
    try:
        time.sleep(0.3)
        sl.read()
        r, port = session(n)
        r.cmd("EHLO flood.client.test")
        r.cmd("MAIL FROM:<s@src.test>")
        for i in range(90):
            # Pipelined in tens; the datagram queue holds only a few lines.
            r.send("".join("RCPT TO:<x%d@elsewhere.test>\r\n" % (i * 10 + k)
                           for k in range(10)))
            for k in range(10):
                eq(r.reply()[0], 554, "refused")
        r.close()
        # (a node that waited for the log would stall a reply past Raw's 10 s timeout, or
        # never stop: the agent writes these lines)
        sl.read()   # room again, for the last words
        eq(n.stop(), 0, "clean stop")
        time.sleep(0.2)
        words = [d for d in sl.read() if "log lines dropped" in d]
        check(words, "the drops are counted and said at stop: %r" % sl.got[-3:])
        m = re.search(r"(\d+) log lines dropped", words[0])
        check(m and int(m.group(1)) > 0, "a count: %r" % words[0])
    finally:
        n.kill()
        sl.close()
        n.cleanup()


def test_zz_stop():
    if _node[0] is not None:
        eq(_node[0].stop(), 0, "exit status")
        _node[0].cleanup()


if __name__ == "__main__":
    sys.exit(run_suite("logs", globals(), sys.argv[1:]))
