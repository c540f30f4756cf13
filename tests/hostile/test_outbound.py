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
from sluicetest import (DELIVERY_HELPERS, PY, check, eq, free_port,  # noqa: E402
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
        n = 1
        while os.path.exists(os.path.join(self.dir, "%d.raw" % n)):
            with open(os.path.join(self.dir, "%d.raw" % n), "rb") as f:
                out.append(f.read())
            n += 1
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


if __name__ == "__main__":
    sys.exit(run_suite("outbound", globals(), sys.argv[1:]))
