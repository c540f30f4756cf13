#!/usr/bin/python3
"""Hostile destinations on the way out: the relay's client against servers that fail the TLS
handshake (garbage instead of a ServerHello, a close in the middle of it, silence), answer one byte
at a time, reset the connection in the middle of DATA, or hang up on an idle connection. Each
case asserts what the node did (delivered in plain text at once, cut off at the stage's deadline,
retried, delivered later), that nothing accepted is missing at the destination, and that the
node is still up and stops cleanly (exit 0; under the sanitizer build, no ASan/UBSan report in
its log).

The destinations are tests/integration/delivery/misbehave.py (see its modes).

Run: tests/hostile/test_outbound.py [name-filter ...]
     SLUICE_BUILD_ROOT=$PWD/build-asan tests/hostile/test_outbound.py   # under ASan + UBSan
"""
import os
import subprocess
import sys
import tempfile
import shutil
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import (DELIVERY_HELPERS, NODE, PY, check, eq, free_port,  # noqa: E402
                        relay_node, run_suite, send, wait_for)


class Misbehave:
    """misbehave.py MODE as a relay destination; raw() gives the messages it took (the exact
    DATA bytes, dot-stuffed, with the final dot), log() its connection log."""

    def __init__(self, mode, bad=None, delay=None):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="sluice-misbehave-")
        args = [PY, os.path.join(DELIVERY_HELPERS, "misbehave.py"), mode, str(self.port),
                self.dir]
        if bad is not None:
            args += ["--bad", str(bad)]
        if delay is not None:
            args += ["--delay", str(delay)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        if b"ready" not in self.proc.stdout.readline():
            raise RuntimeError("misbehave.py did not start")

    def raw(self):
        out = []
        names = [x for x in os.listdir(self.dir) if x.endswith(".raw")]
        for x in sorted(names, key=lambda x: int(x.split(".")[0])):
            with open(os.path.join(self.dir, x), "rb") as f:
                out.append(f.read())
        return out

    def wait(self, count, timeout=20):
        wait_for(lambda: len(self.raw()) >= count, timeout)
        return self.raw()

    def log(self):
        try:
            with open(os.path.join(self.dir, "log")) as f:
                return f.read().split("\n")
        except OSError:
            return []

    def stop(self):
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def msg(mid, body="hello\r\n"):
    return ("Message-ID: <%s>\r\nSubject: outbound\r\nFrom: a@src.test\r\n\r\n%s" %
            (mid, body)).encode()


def queue_empty(n):
    r = n.queue("ids")
    return r.returncode == 0 and r.stdout.strip() == ""


def sanitizer_clean(n):
    log = n.read_log()
    for bad in ("AddressSanitizer", "runtime error:", "LeakSanitizer", "UndefinedBehavior"):
        check(bad not in log, "sanitizer report in the node's log:\n" + log[-3000:])


def stop_clean(n):
    eq(n.stop(), 0, "the node stops cleanly")
    sanitizer_clean(n)


def test_tls_garbage_falls_back_to_plain_at_once():
    dest = Misbehave("tlsgarbage")
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port},
                   delivery={"retry_first": "1h", "retry_max": "1h"}).start()
    try:
        t0 = time.time()
        send(n.primary, "a@src.test", ["bob@example.test"], msg("g1@test"))
        got = dest.wait(1, 10)
        eq(len(got), 1, "delivered in plain text: " + n.read_log()[-1500:])
        check(time.time() - t0 < 8, "at once, not after a retry delay")
        check(b"g1@test" in got[0], "the message")
        check("starttls 1" in dest.log(), "TLS was tried first: %r" % dest.log())
        # The next message goes in plain text at once: the destination's TLS failure is
        # remembered (no second handshake with it).
        send(n.primary, "a@src.test", ["bob@example.test"], msg("g2@test"))
        got = dest.wait(2, 10)
        eq(len(got), 2, "the second one too")
        eq(sum(1 for l in dest.log() if l.startswith("starttls")), 1,
           "one handshake tried: %r" % dest.log())
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
        stop_clean(n)
    finally:
        n.cleanup()
        dest.stop()


def fallback_case(mode, tls_conf=None):
    """A destination whose handshake fails in some way: the message must arrive in plain text
    within a few seconds (the test's starttls_timeout is 2 s), not after a retry delay."""
    dest = Misbehave(mode)
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port},
                   delivery={"retry_first": "1h", "retry_max": "1h", "starttls_timeout": "2s"},
                   domains_extra={"example.test": tls_conf or {}}).start()
    try:
        t0 = time.time()
        send(n.primary, "a@src.test", ["bob@example.test"], msg("%s@test" % mode))
        got = dest.wait(1, 10)
        eq(len(got), 1, "delivered in plain text: " + n.read_log()[-1500:])
        check(time.time() - t0 < 8, "promptly")
        check("starttls 1" in dest.log(), "TLS was tried first: %r" % dest.log())
        check("retrying in plain text" in n.read_log(), "the fallback is logged")
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
        stop_clean(n)
    finally:
        n.cleanup()
        dest.stop()


def test_tls_close_mid_handshake_falls_back():
    fallback_case("tlsclose")


def test_tls_silent_handshake_cut_at_deadline_falls_back():
    fallback_case("tlshang")


def test_tls_required_defers_rather_than_plain():
    dest = Misbehave("tlsgarbage")
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port},
                   domains_extra={"example.test": {"tls": "required"}}).start()
    try:
        send(n.primary, "a@src.test", ["bob@example.test"], msg("req@test"))
        check(wait_for(lambda: "status=deferred" in n.read_log(), 10), "deferred")
        check(wait_for(lambda: sum(1 for l in dest.log() if l.startswith("starttls")) >= 2, 10),
              "retried with TLS again: %r" % dest.log())
        eq(dest.raw(), [], "never sent in plain text")
        check(not any(l.startswith("plain") for l in dest.log()), "no plain transaction")
        check("req@test" in n.queue_ids(), "still queued")
        stop_clean(n)
    finally:
        n.cleanup()
        dest.stop()


def test_trickling_banner_cut_at_total_deadline_then_delivered():
    # 0.3 s between bytes: an idle timer reset by each byte would never fire; the banner's
    # total deadline (helo_timeout = 2 s) does.
    dest = Misbehave("trickle", bad=1, delay=0.3)
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port},
                   delivery={"helo_timeout": "2s"}).start()
    try:
        t0 = time.time()
        send(n.primary, "a@src.test", ["bob@example.test"], msg("trickle@test"))
        check(wait_for(lambda: "deadline of the banner stage passed" in n.read_log(), 10),
              "cut off at the banner's deadline: " + n.read_log()[-1500:])
        cut = time.time() - t0
        check(1.5 < cut < 6, "at about 2 s: %.1f s" % cut)
        # status= lines come from the agent thread, a moment after the shard's.
        check(wait_for(lambda: "status=deferred" in n.read_log(), 5), "deferred")
        got = dest.wait(1, 20)
        eq(len(got), 1, "delivered once the destination behaves")
        check(b"trickle@test" in got[0], "the message")
        check("conn 2" in dest.log(), "on a second connection")
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
        stop_clean(n)
    finally:
        n.cleanup()
        dest.stop()


def test_trickling_final_reply_cut_at_its_deadline():
    # Another stage: the reply to the final dot trickles (0.3 s a byte, ~10 s in all); its
    # deadline (data_done_timeout = 2 s) cuts it. The outcome is unknown, so the message is
    # sent again (RFC 5321 6.1 prefers a duplicate to a loss) and the second time goes through.
    dest = Misbehave("trickledot", bad=1, delay=0.3)
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port},
                   delivery={"data_done_timeout": "2s"}).start()
    try:
        send(n.primary, "a@src.test", ["bob@example.test"], msg("slowdot@test"))
        check(wait_for(lambda: "deadline of the end of data stage passed" in n.read_log(), 10),
              "cut at the final reply's deadline: " + n.read_log()[-1500:])
        check(wait_for(lambda: "status=sent" in n.read_log(), 20), "delivered on a retry")
        eq(len(dest.raw()), 2, "sent twice (the first outcome was unknown)")
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
        stop_clean(n)
    finally:
        n.cleanup()
        dest.stop()


def test_reset_in_the_middle_of_data_then_delivered():
    dest = Misbehave("resetdata", bad=1)
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port}).start()
    try:
        send(n.primary, "a@src.test", ["bob@example.test"],
             msg("rst@test", body=("y" * 70 + "\r\n") * 2000))
        got = dest.wait(1, 20)
        eq(len(got), 1, "delivered on a later attempt: " + n.read_log()[-1500:])
        check(wait_for(lambda: "status=deferred" in n.read_log(), 5),
              "the reset deferred it first")
        eq(got[0].count(b"rst@test"), 1, "one copy")
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
        stop_clean(n)
    finally:
        n.cleanup()
        dest.stop()


def test_stalled_body_cut_at_deadline_with_send_in_flight():
    # The destination stops reading after 354: the body's send stays in the ring until the
    # body's deadline closes the connection (cancel + shutdown); the node must free it only
    # after that send came back, and still stop cleanly.
    dest = Misbehave("stallbody", bad=1)
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port},
                   delivery={"data_xfer_timeout": "3s", "min_data_rate": "1G",
                             "retry_first": "1s"}).start()
    try:
        body = ("z" * 998 + "\r\n") * 12000    # 12 MB: more than the socket buffers hold
        send(n.primary, "a@src.test", ["bob@example.test"], msg("stall@test", body=body),
             timeout=30)
        check(wait_for(lambda: "deadline of the body stage passed" in n.read_log(), 15),
              "the body's deadline: " + n.read_log()[-1500:])
        got = dest.wait(1, 30)
        eq(len(got), 1, "delivered when the destination reads again")
        check(got[0].endswith(body.encode() + b".\r\n"), "the whole body")
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
        stop_clean(n)
    finally:
        n.cleanup()
        dest.stop()


def test_idle_connection_hung_up_then_next_message():
    # The destination says 421 and closes the idle connection (the idle timer was armed): the
    # next message takes a new connection.
    dest = Misbehave("idle421")
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port},
                   delivery={"idle_time": "3s"}).start()
    try:
        send(n.primary, "a@src.test", ["bob@example.test"], msg("i1@test"))
        eq(len(dest.wait(1, 10)), 1, "the first")
        time.sleep(0.5)
        send(n.primary, "a@src.test", ["bob@example.test"], msg("i2@test"))
        eq(len(dest.wait(2, 10)), 2, "the second, on a new connection")
        check("conn 2" in dest.log(), "two connections: %r" % dest.log())
        time.sleep(3.5)   # past the idle timer of the first connection
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
        check("status=deferred" not in n.read_log(), "nothing deferred by an idle hang-up")
        stop_clean(n)
    finally:
        n.cleanup()
        dest.stop()


def test_many_waiting_jobs_on_a_failing_handshake():
    # Several messages wait for the destination while its first connection fails the
    # handshake: every one goes in plain text, none is deferred.
    dest = Misbehave("tlsgarbage")
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port},
                   delivery={"retry_first": "1h", "retry_max": "1h", "hold": "yes"}).start()
    try:
        for i in range(6):
            send(n.primary, "a@src.test", ["bob%d@example.test" % i], msg("w%d@test" % i))
        n.sections["delivery"]["hold"] = "no"
        n.write_conf()
        n.hup()
        got = dest.wait(6, 15)
        eq(len(got), 6, "all six in plain text: " + n.read_log()[-2000:])
        check("status=deferred" not in n.read_log(), "none deferred")
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
        stop_clean(n)
    finally:
        n.cleanup()
        dest.stop()


def test_lookup_answered_inside_the_call():
    # c-ares refuses a .onion name (RFC 7686) from inside the call that asks: the connection
    # is failed before delivery_dns_addr returns. Twice, so a second job meets the same path.
    dport = free_port()   # nobody answers there: nothing may reach a real resolver
    n = relay_node({"example.test": "hidden.onion:25"},
                   delivery={"dns_server": "127.0.0.1:%d" % dport}).start()
    try:
        send(n.primary, "a@src.test", ["bob@example.test"], msg("onion1@test"))
        send(n.primary, "a@src.test", ["carol@example.test"], msg("onion2@test"))
        check(wait_for(lambda: n.read_log().count("status=deferred") >= 2, 10),
              "both deferred: " + n.read_log()[-1500:])
        check("address lookup" in n.read_log(), "the lookup's failure is named")
        eq(len(n.queue_ids()), 2, "both still queued")
        stop_clean(n)
    finally:
        n.cleanup()


def test_next_hop_refusing_long_lines_gets_them_wrapped():
    # long_lines = pass (the default), and a next hop that refuses a line over 998 octets with
    # "500 5.5.0 Line too long": the message goes again at once, wrapped, on the same
    # connection; no bounce. The next message to it is wrapped from the start.
    dest = Misbehave("nolong")
    n = relay_node({"example.test": "127.0.0.1:%d" % dest.port},
                   delivery={"retry_first": "1h", "retry_max": "1h"}).start()
    try:
        body = "a\r\n" + "L" * 2500 + "\r\nb\r\n"
        send(n.primary, "alice@src.test", ["bob@example.test"], msg("nl1@test", body=body))
        got = dest.wait(1, 10)
        eq(len(got), 1, "delivered wrapped: " + n.read_log()[-1500:])
        check(max(len(x) for x in got[0].split(b"\r\n")) <= 998, "wrapped")
        check(got[0].replace(b"\r\n ", b"").endswith(body.encode() + b".\r\n"),
              "nothing else changed")
        eq(sum(1 for l in dest.log() if l.startswith("refused")), 1, "refused once")
        eq(sum(1 for l in dest.log() if l.startswith("conn")), 1, "on the same connection")
        check("sending again with lines wrapped" in n.read_log(), "logged")
        send(n.primary, "alice@src.test", ["bob@example.test"], msg("nl2@test", body=body))
        eq(len(dest.wait(2, 10)), 2, "the second one")
        eq(sum(1 for l in dest.log() if l.startswith("refused")), 1, "wrapped from the start")
        check(wait_for(lambda: queue_empty(n), 5), "spool empty")
        check("status=bounced" not in n.read_log(), "no bounce")
        stop_clean(n)
    finally:
        n.cleanup()
        dest.stop()


def test_config_deadline_and_long_line_keys():
    d = tempfile.mkdtemp(prefix="sluice-conf-")
    good = ("[node]\nhostname = mx.test\nspool_dir = %s/spool\n[listen a]\naddress = 127.0.0.2:2525\n"
            "[domain d.test]\nroute = 127.0.0.1:25\n" % d)

    def check_config(text):
        p = os.path.join(d, "n.ini")
        with open(p, "w") as f:
            f.write(text)
        r = subprocess.run([NODE, "--config", p, "--check-config"], capture_output=True,
                           text=True)
        return r.returncode, (r.stdout + r.stderr).replace(p, "FILE")

    try:
        keys = ("helo_timeout", "starttls_timeout", "mail_timeout", "rcpt_timeout",
                "data_init_timeout", "data_xfer_timeout", "data_done_timeout", "rset_timeout",
                "quit_timeout")
        rc, out = check_config(good + "[delivery]\n" + "".join("%s = 2s\n" % k for k in keys) +
                               "long_lines = wrap\n")
        eq(rc, 0, "every key takes a duration: " + out)
        for k in keys:
            rc, out = check_config(good + "[delivery]\n%s = 0\n" % k)
            eq(rc, 2, "%s = 0 is refused" % k)
            check("FILE:9: [delivery] %s" % k in out, "names file, line and key: " + out)
        eq(check_config(good + "[delivery]\nmin_data_rate = 64k\n")[0], 0, "min_data_rate")
        rc, out = check_config(good + "[delivery]\nmin_data_rate = 0\n")
        check(rc == 2 and "FILE:9: [delivery] min_data_rate" in out, out)
        rc, out = check_config(good + "[delivery]\ndata_xfer_timeout = slow\n")
        check(rc == 2 and "FILE:9: [delivery] data_xfer_timeout" in out, out)
        for v in ("pass", "wrap", "refuse"):
            eq(check_config(good + "[delivery]\nlong_lines = %s\n" % v)[0], 0, "long_lines " + v)
        rc, out = check_config(good + "[delivery]\nlong_lines = sometimes\n")
        eq(rc, 2, "a bad long_lines is refused")
        check("FILE:9: [delivery] long_lines: want pass, wrap or refuse" in out, out)
        eq(check_config(good + "long_lines = wrap\n")[0], 0, "per domain")
        rc, out = check_config(good + "long_lines = fold\n")
        check(rc == 2 and "FILE:8: [domain d.test] long_lines: want pass, wrap or refuse" in out,
              out)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_node_serves_after_hostile_destinations():
    # Last: the node still takes and relays mail after all of the above kinds in one run.
    bad = Misbehave("tlsclose")
    good = Misbehave("mixed")
    n = relay_node({"bad.test": "127.0.0.1:%d" % bad.port,
                    "good.test": "127.0.0.1:%d" % good.port}).start()
    try:
        send(n.primary, "a@src.test", ["x@bad.test"], msg("b1@test"))
        send(n.primary, "a@src.test", ["y@good.test"], msg("ok1@test"))
        eq(len(good.wait(1, 10)), 1, "the good destination got its message")
        eq(len(bad.wait(1, 10)), 1, "the bad one too, in plain text")
        stop_clean(n)
    finally:
        n.cleanup()
        bad.stop()
        good.stop()


if __name__ == "__main__":
    sys.exit(run_suite("outbound", globals(), sys.argv[1:]))
