#!/usr/bin/python3
"""Events are records, durable and numbered (issue 15, item 1).

- kill -9, several times, while real clients send and the node delivers to a real destination
  (aiosmtpd): every message that got a 250 has exactly one `accepted` event and, once delivered,
  a `status=sent` event in the local log sink; the ids (node/shard/seq) are contiguous per shard;
  an id never comes back with another line after a restart (the log sink may repeat a line it
  wrote just before a kill, with its id: that is what a sink dedups by id).
- The log sink paused (the pause file) while mail flows: every message still gets its 250, the
  backlog counter (sluice_events_backlog{sink="log"}) grows, no accepted line is written; when
  the sink comes back the backlog drains to zero and every line is there.
Run: tests/integration/test_events.py
"""
import collections
import os
import random
import re
import smtplib
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import Sink, check, eq, relay_node, run_suite, wait_for  # noqa: E402

MESSAGES = int(os.environ.get("SLUICE_EVENTS_MESSAGES", "1500"))
KILLS = int(os.environ.get("SLUICE_EVENTS_KILLS", "4"))
CLIENTS = 6
DEADLINE = 120

LINE = re.compile(r"sluice-node\[shard (\d+)\] info: (.*) id=test/(\d+)/(\d+)$")
QUEUED = re.compile(r"queued as ([0-9A-F]{16})")


class Client(threading.Thread):
    """Sends one-recipient messages until stop; the queue id of every 250 goes to accepted."""

    def __init__(self, addr, accepted, stop):
        super().__init__(daemon=True)
        self.addr, self.accepted, self.stop = addr, accepted, stop

    def run(self):
        while not self.stop.is_set():
            try:
                s = smtplib.SMTP(*self.addr, timeout=10)
                s.ehlo("events.test")
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)
                continue
            try:
                for _ in range(40):
                    if self.stop.is_set():
                        break
                    s.mail("c@sender.test")
                    s.rcpt("r@example.test")
                    code, resp = s.data("Subject: ev\r\n\r\n" + "y" * 300 + "\r\n")
                    m = QUEUED.search(resp.decode(errors="replace"))
                    if code == 250 and m:
                        self.accepted.append(m.group(1))
                s.quit()
            except (OSError, smtplib.SMTPException, EOFError):
                pass   # killed mid-way: that message may or may not be stored


def events(log):
    """[(shard, seq, text)] of the event lines, in order."""
    out = []
    for line in log.splitlines():
        m = LINE.search(line)
        if m:
            eq(m.group(1), m.group(3), "the line's tag and its id name the same shard")
            out.append((int(m.group(3)), int(m.group(4)), m.group(2)))
    return out


def counter(n, name):
    r = n.queue("stats")
    m = re.search(re.escape(name) + r" (\d+)", r.stdout)
    return int(m.group(1)) if m else None


def test_kill9_events_exactly_once():
    sink = Sink().start()
    n = relay_node({"example.test": "127.0.0.1:%d" % sink.port}, shards="2").start()
    accepted = []
    stop = threading.Event()
    clients = [Client(n.primary, accepted, stop) for _ in range(CLIENTS)]
    t0 = time.time()
    try:
        for c in clients:
            c.start()
        for k in range(KILLS):
            target = MESSAGES * (k + 1) // (KILLS + 1)
            while len(accepted) < target and time.time() - t0 < DEADLINE / 2:
                time.sleep(0.01)
            time.sleep(random.uniform(0, 0.2))
            n.kill()   # during accept, and during delivery (the sink takes mail all along)
            time.sleep(random.uniform(0, 0.2))
            n.start()
        while len(accepted) < MESSAGES and time.time() - t0 < DEADLINE:
            time.sleep(0.05)
        stop.set()
        for c in clients:
            c.join(30)
        check(len(accepted) >= MESSAGES // 2, "enough traffic: %d accepted" % len(accepted))

        def all_sent():
            sent = {t.split(":")[0] for _, _, t in events(n.read_log()) if "status=sent" in t}
            return all(q in sent for q in accepted)
        check(wait_for(all_sent, 60), "every accepted message delivered and logged")
        eq(n.stop(), 0, "clean stop at the end")
        ev = events(n.read_log())
        # one line per id (a line repeated after a kill, same id, is the same line)
        texts = collections.defaultdict(set)
        for shard, seq, text in ev:
            texts[(shard, seq)].add(text)
        bad = [k for k, v in texts.items() if len(v) > 1]
        check(not bad, "ids reused for different events past a restart: %r" % bad[:5])
        for shard in (0, 1):
            seqs = sorted(s for (sh, s) in texts if sh == shard)
            check(seqs, "shard %d has events" % shard)
            eq(seqs, list(range(1, seqs[-1] + 1)), "shard %d: ids contiguous from 1" % shard)
        acc = collections.defaultdict(set)
        sent = collections.defaultdict(set)
        for shard, seq, text in ev:
            m = re.search(r"accept: qid=([0-9A-F]{16}) ", text)
            if m:
                acc[m.group(1)].add((shard, seq))
            if "status=sent" in text:
                sent[text.split(":")[0]].add((shard, seq))
        wrong = [q for q in accepted if len(acc[q]) != 1]
        check(not wrong, "%d of %d accepted messages without exactly one accepted event: %r"
              % (len(wrong), len(accepted), [(q, acc[q]) for q in wrong[:5]]))
        nosent = [q for q in accepted if not sent[q]]
        check(not nosent, "delivered messages without a final event: %r" % nosent[:5])
        repeated = len(ev) - len(texts)
        recovered = n.read_log().count("recovered after a crash")
        print("  %d accepted, %d events, %d lines repeated by a kill, %d events written again "
              "at recovery, %d deliveries" % (len(accepted), len(texts), repeated, recovered,
                                              len(sink.messages())))
    finally:
        stop.set()
        n.cleanup()
        sink.cleanup()


def test_paused_sink_backlog_drains():
    sink = Sink().start()
    n = relay_node({"example.test": "127.0.0.1:%d" % sink.port}, shards="2").start()
    pause = os.path.join(n.spool, "events-log.pause")
    try:
        open(pause, "w").close()
        qids = []
        t0 = time.time()
        for _ in range(3):
            s = smtplib.SMTP(*n.primary, timeout=10)
            s.ehlo("paused.test")
            for _ in range(100):
                s.mail("c@sender.test")
                s.rcpt("r@example.test")
                code, resp = s.data("Subject: paused\r\n\r\nbody\r\n")
                eq(code, 250, "accepted while the sink is paused")
                qids.append(QUEUED.search(resp.decode()).group(1))
            s.quit()
        took = time.time() - t0
        check(len(sink.wait(300, 30)) >= 300, "delivered while the sink is paused")
        backlog = wait_for(lambda: (counter(n, 'sluice_events_backlog{sink="log"}') or 0) >= 600
                           and counter(n, 'sluice_events_backlog{sink="log"}'), 10)
        check(backlog, "the backlog counts the accepted and delivered events: %r" % backlog)
        log = n.read_log()
        check("accept: qid=" not in log and "status=sent" not in log,
              "nothing written by the paused sink")
        os.unlink(pause)
        check(wait_for(lambda: counter(n, 'sluice_events_backlog{sink="log"}') == 0, 10),
              "the backlog drains to zero")
        log = n.read_log()
        for q in qids:
            check("accept: qid=%s " % q in log, "accepted line of %s" % q)
            check("%s: to=<r@example.test> relay=" % q in log, "sent line of %s" % q)
        print("  300 messages in %.2fs with the sink paused; backlog reached %d, then 0"
              % (took, backlog))
        eq(n.stop(), 0, "clean stop")
    finally:
        n.cleanup()
        sink.cleanup()


def test_event_files_reclaimed_and_cursor_resumes():
    """Restarts start a new event file; once the sink has passed the old ones they go, and a
    restart resumes the sink after its last event (nothing logged twice)."""
    sink = Sink().start()
    n = relay_node({"example.test": "127.0.0.1:%d" % sink.port}, shards="1").start()
    try:
        for round_ in range(3):
            s = smtplib.SMTP(*n.primary, timeout=10)
            s.ehlo("files.test")
            s.sendmail("c@sender.test", ["r@example.test"], "Subject: f\r\n\r\nx\r\n")
            s.quit()
            check(wait_for(lambda: n.read_log().count("status=sent") >= round_ + 1, 10),
                  "delivered")
            eq(n.stop(), 0, "clean stop")
            n.start()
        check(wait_for(lambda: len([f for f in os.listdir(os.path.join(n.spool, "shard-0"))
                                    if f.startswith("events-") and f.endswith(".ev")]) == 1, 5),
              "old event files removed: %r" % os.listdir(os.path.join(n.spool, "shard-0")))
        ev = events(n.read_log())
        eq(len(ev), len({(s, q) for s, q, _ in ev}), "no event logged twice across restarts")
        eq([q for _, q, _ in ev], list(range(1, 7)), "ids 1..6: three accepted, three sent")
        eq(n.stop(), 0, "clean stop")
    finally:
        n.cleanup()
        sink.cleanup()


if __name__ == "__main__":
    run_suite("events", globals(), sys.argv[1:])
