#!/usr/bin/python3
"""Crash safety: a real client sends thousands of messages while the node is killed with SIGKILL
at random moments, several times, and restarted. Afterwards every message that got a 250 must be
in the spool exactly once (counted by Message-ID with sluice-queue ids), and nothing else may be
duplicated.

Bounded: at most MESSAGES accepted messages and at most DEADLINE seconds.
Run: tests/integration/test_crash.py
"""
import collections
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import Node, SendLoop, check, eq, run_suite  # noqa: E402

MESSAGES = int(os.environ.get("SLUICE_CRASH_MESSAGES", "5000"))
KILLS = int(os.environ.get("SLUICE_CRASH_KILLS", "6"))
CLIENTS = 8
DEADLINE = 240


def crash_message(idx, seq):
    return ("crash-%d-%d-%d@test" % (idx, seq, random.getrandbits(32)),
            ("x" * 76 + "\r\n") * 50)


def test_kill9_loses_nothing_accepted():
    n = Node(tls=False, conf={"node": {"shards": "2"}}).start()
    accepted = []
    stop = threading.Event()
    clients = [SendLoop(i, n.primary, accepted, stop, crash_message) for i in range(CLIENTS)]
    t0 = time.time()
    try:
        for c in clients:
            c.start()
        for k in range(KILLS):
            # Random moments, spread over the run.
            target = MESSAGES * (k + 1) // (KILLS + 1)
            while len(accepted) < target and time.time() - t0 < DEADLINE / 2:
                time.sleep(0.01)
            time.sleep(random.uniform(0, 0.3))
            n.kill()
            time.sleep(random.uniform(0, 0.2))
            n.start()
        while len(accepted) < MESSAGES and time.time() - t0 < DEADLINE:
            time.sleep(0.05)
        stop.set()
        for c in clients:
            c.join(30)
        eq(n.stop(), 0, "clean stop at the end")
        ids = n.queue_ids()
        counts = collections.Counter(ids)
        got = set(accepted)
        check(len(accepted) >= MESSAGES // 2, "enough traffic: %d accepted" % len(accepted))
        missing = [m for m in got if counts["<%s>" % m] + counts[m] == 0]
        dup = [m for m, c in counts.items() if c > 1]
        print("accepted %d (attempts %d) in %.1fs with %d kills; spool holds %d; missing %d; "
              "duplicated %d" % (len(accepted), sum(c.attempts for c in clients),
                                 time.time() - t0, KILLS, len(ids), len(missing), len(dup)))
        eq(missing, [], "messages that got 250 but are not in the spool")
        eq(dup, [], "messages in the spool more than once")
        log = n.read_log()
        eq(log.count("ready:"), KILLS + 1, "starts of the node (1 + one per kill)")
    finally:
        stop.set()
        n.cleanup()


if __name__ == "__main__":
    sys.exit(run_suite("crash", globals(), sys.argv[1:]))
