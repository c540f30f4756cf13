#!/usr/bin/python3
"""Daemon behaviour with real clients: configuration errors, timeouts, per-IP limits, reload
without dropping connections, shutdown, a full disk.

Run: tests/proto/test_node.py [name-filter ...]
"""
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import NODE, Node, Raw, check, eq, run_suite  # noqa: E402


def msg(mid):
    return "From: a@sender.test\r\nTo: b@example.test\r\nMessage-ID: <%s>\r\n\r\nhi\r\n" % mid


def check_config(text):
    d = tempfile.mkdtemp(prefix="sluice-conf-")
    p = os.path.join(d, "bad.ini")
    with open(p, "w") as f:
        f.write(text)
    r = subprocess.run([NODE, "--config", p, "--check-config"], capture_output=True, text=True)
    shutil.rmtree(d)
    return r.returncode, (r.stdout + r.stderr).replace(p, "FILE")


GOOD = "[node]\nhostname = mx.test\nspool_dir = /tmp/x\n[listen a]\naddress = 127.0.0.2:2525\n[domain d.test]\nroute = 127.0.0.1:25\n"


def test_config_good():
    rc, out = check_config(GOOD)
    eq(rc, 0, "good config: " + out)
    check("1 listen addresses, 1 domains" in out, out)


def test_config_many_domains():
    """Sections of one domain in any case are one domain (so a second one is a duplicate); the
    domain limit is enforced with the line named."""
    rc, out = check_config(GOOD + "[domain D.TEST]\ntag_score = 3\n")
    eq(rc, 2, "case-insensitive duplicate: " + out)
    check("FILE:8: [domain D.TEST]: section given twice: [domain d.test] is at line 6" in out, out)
    many = "".join("[domain d%d.test]\nroute = 127.0.0.1:25\n" % i for i in range(99999))
    rc, out = check_config(GOOD + many)
    eq(rc, 0, "100000 domains: " + out[-300:])
    check("100000 domains" in out, out)
    rc, out = check_config(GOOD + many + "[domain one-too-many.test]\nroute = 127.0.0.1:25\n")
    eq(rc, 2, "the 100001st domain is refused")
    check("FILE:%d: [domain one-too-many.test] route" % (7 + 2 * 99999 + 2) in out, out)


def test_config_errors_name_line_and_key():
    cases = [
        (GOOD + "[limits]\nmessage_size = lots\n", "FILE:9: [limits] message_size"),
        (GOOD + "[limits]\nbogus = 1\n", "FILE:9: [limits] bogus: unknown key"),
        (GOOD.replace("role", "x") + "[listen b]\naddress = 127.0.0.3:25\nrole = tertiary\n",
         "FILE:10: [listen b] role"),
        (GOOD + "[domain e.test]\nroute = nohostport\n", "FILE:9: [domain e.test] route"),
        (GOOD + "[weird]\nx = 1\n", "FILE:9: [weird] x: unknown section"),
        (GOOD + "this is not ini\n", "FILE:8: syntax error"),
        ("[node]\nspool_dir = /tmp/x\n", "no [listen NAME] section"),
        (GOOD + "[tls]\ncert = /nonexistent.pem\nkey = /nonexistent.key\n", "[tls] cannot load"),
        (GOOD + "[delivery]\nconcurrency = 0\n", "FILE:9: [delivery] concurrency"),
        (GOOD + "[delivery]\nretry_first = soon\n", "FILE:9: [delivery] retry_first"),
        (GOOD + "[delivery]\ndns_server = localhost\n", "FILE:9: [delivery] dns_server"),
        (GOOD + "[delivery]\nbogus = 1\n", "FILE:9: [delivery] bogus: unknown key"),
        (GOOD + "[delivery]\nretry_first = 2h\nretry_max = 1h\n", "[delivery] retry_first"),
        (GOOD + "tls = sometimes\n", "FILE:8: [domain d.test] tls"),
        (GOOD + "tls_verify = maybe\n", "FILE:8: [domain d.test] tls_verify"),
        (GOOD + "spool_quota = lots\n", "FILE:8: [domain d.test] spool_quota"),
    ]
    for text, want in cases:
        rc, out = check_config(text)
        eq(rc, 2, "exit status for %r" % want)
        check(want in out, "want %r in %r" % (want, out))


def test_idle_timeout():
    n = Node(conf={"limits": {"idle_timeout": "1s"}}, tls=False).start()
    try:
        r = Raw(n.primary)
        r.reply()
        t0 = time.time()
        code, lines = r.reply()      # nothing sent: the server times out
        eq(code, 421, "idle timeout reply")
        check("4.4.2" in lines[0], "4.4.2")
        check(time.time() - t0 < 5, "timed out promptly")
        check(r.closed(), "closed")
    finally:
        eq(n.stop(), 0, "clean stop")
        n.cleanup()


def test_connections_per_ip():
    n = Node(conf={"limits": {"connections_per_ip": "3"}}, tls=False).start()
    try:
        conns = [Raw(n.primary) for _ in range(3)]
        for c in conns:
            eq(c.reply()[0], 220, "within the limit")
        extra = Raw(n.primary)
        code, lines = extra.reply()
        eq(code, 421, "over the limit")
        check(extra.closed(), "refused connection closes")
        other = Raw(n.primary, source="127.0.0.5")
        eq(other.reply()[0], 220, "another address is not limited")
        conns[0].cmd("QUIT")
        conns[0].closed()
        time.sleep(0.3)
        again = Raw(n.primary)
        eq(again.reply()[0], 220, "a slot frees up when a connection closes")
    finally:
        n.stop()
        n.cleanup()


def test_reload_keeps_connections():
    n = Node(tls=False, conf={"limits": {"shutdown_grace": "1s"}}).start()
    try:
        r = Raw(n.primary)
        r.reply()
        r.cmd("EHLO client.test")
        r.cmd("MAIL FROM:<a@sender.test>")
        eq(r.cmd("RCPT TO:<a@new.test>")[0], 554, "new.test not served yet")
        n.sections["domain new.test"] = {"route": "127.0.0.1:9"}
        n.write_conf()
        n.hup()
        deadline = time.time() + 10
        while "reloaded" not in n.read_log() and time.time() < deadline:
            time.sleep(0.05)
        check("reloaded" in n.read_log(), "reload logged")
        time.sleep(0.2)
        eq(r.cmd("RCPT TO:<a@new.test>")[0], 250, "same connection sees the new domain")
        eq(r.cmd("RCPT TO:<a@example.test>")[0], 250, "old domain still served")
        # A broken file is refused; the node keeps going with the last good one.
        n.write_conf(dict(n.sections, limits=dict(n.sections["limits"], message_size="nonsense")))
        n.hup()
        deadline = time.time() + 10
        while "reload refused" not in n.read_log() and time.time() < deadline:
            time.sleep(0.05)
        check("reload refused" in n.read_log() and "message_size" in n.read_log(),
              "refused reload names the key")
        eq(r.cmd("NOOP")[0], 250, "connection survived both reloads")
        eq(r.cmd("RCPT TO:<b@new.test>")[0], 250, "last good config still in force")
    finally:
        eq(n.stop(), 0, "clean stop")
        n.cleanup()


def test_sigterm_finishes_message_in_progress():
    n = Node(tls=False).start()
    try:
        r = Raw(n.primary)
        r.reply()
        r.cmd("EHLO client.test")
        r.cmd("MAIL FROM:<a@sender.test>")
        r.cmd("RCPT TO:<a@example.test>")
        eq(r.cmd("DATA")[0], 354, "DATA")
        r.send(msg("draining-1@test")[:40])
        n.proc.send_signal(15)
        time.sleep(0.3)
        check(n.proc.poll() is None, "node waits for the message in progress")
        r.send(msg("draining-1@test")[40:] + ".\r\n")
        code, _ = r.reply()
        eq(code, 250, "the message in progress is accepted")
        r.send("MAIL FROM:<a@sender.test>\r\n")
        eq(r.reply()[0], 421, "then 421")
        rc = n.proc.wait(15)
        eq(rc, 0, "exit status")
        n.proc = None
        n.logf.close()
        check("draining-1@test" in n.queue_ids(), "accepted message is in the spool")
    finally:
        n.cleanup()


def test_disk_full_never_250():
    mnt = tempfile.mkdtemp(prefix="sluice-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print("SKIP disk full: cannot mount tmpfs here: " + r.stderr.strip())
        os.rmdir(mnt)
        return
    try:
        n = Node(tls=False, conf={"node": {"spool_dir": mnt + "/spool", "shards": "1"},
                                  "spool": {"segment_size": "1M", "min_free": "1M"}})
        n.spool = mnt + "/spool"
        n.start()
        codes = []
        try:
            body = "x" * 998 + "\r\n"
            for i in range(12):
                try:
                    s = smtplib.SMTP(*n.primary)
                    s.ehlo("c.test")
                    s.mail("a@sender.test")
                    s.rcpt("b@example.test")
                    code, _ = s.data(msg("full-%d@test" % i).replace("hi\r\n", body * 300))
                    codes.append(code)
                    s.quit()
                except smtplib.SMTPResponseException as e:
                    codes.append(e.smtp_code)
            check(any(c in (451, 452) for c in codes), "a full disk answers 4xx: %s" % codes)
            ok = [i for i, c in enumerate(codes) if c == 250]
            ids = n.queue_ids()
            for i in ok:
                check("full-%d@test" % i in ids, "every 250 is in the spool")
        finally:
            n.stop()
            n.cleanup()
    finally:
        subprocess.run(["umount", mnt])
        os.rmdir(mnt)


if __name__ == "__main__":
    sys.exit(run_suite("node", globals(), sys.argv[1:]))
