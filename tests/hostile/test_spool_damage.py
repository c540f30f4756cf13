#!/usr/bin/python3
"""The spool under damage (issue 14, item 15), with a real node: one corrupt byte in the middle
record of a segment the node wrote (in its body; in its header) skips only that record: after a
restart every other message is listed and delivered, the damaged range is logged with the
segment and its offsets, its bytes are kept beside the segment, `sluice-queue salvage` shows it
with the envelope that survived, and `salvage --reinject` (node stopped) queues it again. And a
node starts on a full spool disk (a small tmpfs the test mounts): it answers 452 4.3.1 to new mail
and delivers what it holds.

Run as root (tmpfs). Run: tests/hostile/test_spool_damage.py [name-filter ...]
"""
import os
import re
import shutil
import smtplib
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import Sink, check, eq, free_port, relay_node, run_suite, send, wait_for  # noqa

HDR = struct.Struct("<IBBHQIIQQQQQ")   # spool_record.h: the 64-byte record header
MAGIC = 0x43524C53


def msg(i, size=600):
    body = ("line %d of message %d, some text to make it longer\r\n" % (i, i)) * (size // 50)
    return ("Message-ID: <dmg%d@test>\r\nSubject: damage %d\r\nFrom: a@src.test\r\n\r\n%s" %
            (i, i, body)).encode()


def records(path):
    """[(offset, record length, body_len)] of the valid-looking records of a segment file."""
    out = []
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 64 <= len(data):
        h = HDR.unpack_from(data, off)
        if h[0] != MAGIC:
            break
        body_len, env_len = h[4], h[5]
        rec = (64 + body_len + env_len + 7) & ~7
        out.append((off, rec, body_len))
        off += rec
    return out


def segments(spool):
    d = os.path.join(spool, "shard-0")
    return sorted(os.path.join(d, n) for n in os.listdir(d)
                  if re.match(r"^seg-[0-9a-f]{8}\.dat$", n))


def fill_spool(n, count, port):
    for i in range(count):
        send(n.primary, "s%d@src.test" % i, ["r%d@dest.test" % i], msg(i))
    check(wait_for(lambda: len(n.queue_ids()) == count, 10), "all queued")
    eq(n.stop(), 0, "clean stop")


def flip(path, off):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)
        f.seek(off)
        f.write(bytes([b[0] ^ 0x20]))


def damage_case(where):
    port = free_port()
    n = relay_node({"dest.test": "127.0.0.1:%d" % port},
                   delivery={"retry_first": "1h", "retry_max": "1h"})
    sink = None
    try:
        n.start()
        fill_spool(n, 5, port)
        segs = [s for s in segments(n.spool) if records(s)]
        eq(len(segs), 1, "one segment holds the five")
        recs = records(segs[0])
        eq(len(recs), 5, "five records")
        off, rec, body_len = recs[2]
        at = off + (9 if where == "header" else 64 + body_len // 2)
        flip(segs[0], at)
        with open(segs[0], "rb") as g:
            g.seek(off)
            damaged = g.read(rec)
        # Before any start saw it: found by the tool's own scan, in the segment.
        r = n.queue("salvage")
        check("bytes %d..%d (%d bytes), only in the segment" % (off, off + rec, rec) in r.stdout
              and "recipient: r2@dest.test" in r.stdout, "salvage before a start: " + r.stdout)
        eq(len(n.queue_ids()), 4, "the reader lists the other four")
        sink = Sink(port=port).start()
        n.start()
        eq(n.queue("flush").returncode, 0, "flush (they were deferred: the sink was down)")
        got = sink.wait(4, 20)
        eq(sorted(m[1][0] for m in got), ["r0@dest.test", "r1@dest.test", "r3@dest.test",
                                          "r4@dest.test"], "the other four are delivered")
        for m in got:
            i = int(m[1][0][1])
            check(m[2].replace(b"\r\n", b"\n").endswith(msg(i).replace(b"\r\n", b"\n")
                                                        .split(b"\n\n", 1)[1]),
                  "message %d intact" % i)
        log = n.read_log()
        name = os.path.basename(segs[0])
        m = re.search(r"%s: damaged bytes (\d+)\.\.(\d+) \((\d+) bytes, header (\w+)\)" % name, log)
        check(m, "the damaged range is logged: " + log[-2000:])
        eq(int(m.group(1)), off, "from the damaged record")
        eq(int(m.group(2)), off + rec, "to the next valid one")
        eq(m.group(4), "damaged" if where == "header" else "intact", "header state")
        check("1 damaged ranges skipped" in log, "counted in the recovery line")
        copy = "%s.damaged-%016x" % (segs[0], off)
        with open(copy, "rb") as f:
            eq(f.read(), damaged, "the damaged bytes are kept beside the segment")
        # (The segment itself may be reclaimed once the rest is delivered: the copy is there.)
        check("-- 1 damaged spool range not salvaged" in n.queue("list").stdout, "list says so")
        r = n.queue("stats")
        check(re.search(r"damaged 1 \(%d bytes\)" % rec, r.stdout), "stats: " + r.stdout)
        r = n.queue("salvage")
        eq(r.returncode, 0, "salvage lists")
        check("bytes %d..%d" % (off, off + rec) in r.stdout, "salvage: " + r.stdout)
        check("sender: s2@src.test" in r.stdout and "recipient: r2@dest.test" in r.stdout,
              "the envelope survived: " + r.stdout)
        r = n.queue("salvage", "--reinject")
        eq(r.returncode, 1, "not while the node runs")
        check("stop sluice-node" in r.stderr, r.stderr)
        eq(n.stop(), 0, "clean stop")
        r = n.queue("salvage", "--reinject")
        eq(r.returncode, 0, "reinject: " + r.stdout + r.stderr)
        check("re-injected as" in r.stdout, r.stdout)
        check(os.path.exists("%s.salvaged-%016x" % (segs[0], off)), "marked salvaged")
        eq(n.queue("salvage").stdout.strip(), "no damaged ranges", "nothing left to salvage")
        check("damaged" not in n.queue("list").stdout, "nor in list")
        eq(n.queue("salvage", "--reinject").returncode, 1, "re-injecting nothing exits 1")
        n.start()
        eq(n.queue("flush", "--all").returncode, 1, "the re-injected one is new: no deferral")
        got = sink.wait(5, 20)
        eq(len(got), 5, "the salvaged message is delivered too")
        eq(got[-1][0], "s2@src.test", "with its sender")
        eq(got[-1][1], ["r2@dest.test"], "and recipient")
        check(wait_for(lambda: n.queue_ids() == [], 10), "queue empty")
        eq(n.stop(), 0, "clean stop")
    finally:
        n.cleanup()
        if sink:
            sink.cleanup()


def test_corrupt_body_byte_in_the_middle_record():
    damage_case("body")


def test_corrupt_header_byte_in_the_middle_record():
    damage_case("header")


def test_start_on_a_full_spool_disk():
    port = free_port()
    work = tempfile.mkdtemp(prefix="sluice-full-")
    mnt = os.path.join(work, "spool")
    os.mkdir(mnt)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", mnt]).returncode:
        print("SKIP spool_damage: cannot mount a tmpfs (not root?)", flush=True)
        shutil.rmtree(work, ignore_errors=True)
        return
    n = relay_node({"dest.test": "127.0.0.1:%d" % port},
                   delivery={"retry_first": "1h", "retry_max": "1h"}, workdir=work)
    sink = None
    try:
        eq(n.spool, mnt, "the spool is on the tmpfs")
        n.sections["spool"] = {"segment_size": "1M", "min_free": "64K"}
        n.write_conf()
        n.start()
        fill_spool(n, 3, port)
        # Fill the disk to the last byte.
        fd = os.open(os.path.join(mnt, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
        for size in (65536, 4096, 512):
            try:
                while True:
                    os.write(fd, b"\1" * size)
            except OSError:
                pass
        os.close(fd)
        st = os.statvfs(mnt)
        check(st.f_bavail * st.f_frsize < 64 * 1024, "the disk is full")
        # The default segment (64M) and free-space floor (64M): neither fits on this disk.
        del n.sections["spool"]
        n.write_conf()
        sink = Sink(port=port).start()
        n.start()
        log = n.read_log()
        check("no room for a new" in log, "says why it has no segment: " + log[-1500:])
        check("cannot write a new journal; appending to journal-" in log,
              "no room for a new journal either: the old one takes the results")
        eq(n.queue("flush").returncode, 0, "flush")
        got = sink.wait(3, 20)
        eq(sorted(m[1][0] for m in got), ["r0@dest.test", "r1@dest.test", "r2@dest.test"],
           "what it held is delivered")
        check(wait_for(lambda: n.queue_ids() == [], 10), "and done")
        s = smtplib.SMTP(*n.primary, timeout=10)
        s.ehlo("client.test")
        s.mail("new@src.test")
        s.rcpt("r9@dest.test")
        try:
            code, text = s.data(msg(9))
        except smtplib.SMTPDataError as e:   # refused at DATA, before the body
            code, text = e.smtp_code, e.smtp_error
        eq(code, 452, "new mail is refused for lack of space")
        check(b"4.3.1" in text, "with 4.3.1: %r" % text)
        s.quit()
        r = smtplib.SMTP(*n.primary, timeout=10)
        eq(r.noop()[0], 250, "the node still serves")
        r.quit()
        eq(n.stop(), 0, "clean stop")
        # Space back: mail is accepted again.
        os.unlink(os.path.join(mnt, "filler"))
        n.sections["spool"] = {"segment_size": "1M", "min_free": "64K"}
        n.write_conf()
        n.start()
        send(n.primary, "again@src.test", ["r8@dest.test"], msg(8))
        got = sink.wait(4, 20)
        eq(got[-1][1], ["r8@dest.test"], "accepted and delivered once space is back")
        eq(n.stop(), 0, "clean stop")
    finally:
        n.kill()
        subprocess.run(["umount", "-l", mnt])
        n.cleanup()
        if sink:
            sink.cleanup()


if __name__ == "__main__":
    sys.exit(run_suite("spool_damage", globals(), sys.argv[1:]))
