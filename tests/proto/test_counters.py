#!/usr/bin/python3
"""Live counters (issue 15, item 5): what the shards count is readable while the node runs
(`sluice-queue stats`, through the control socket's "counters"), summed over shards or per shard,
and equals what the test did: connections by MX role, sessions open by state right now, messages
by action and role, refusals by class, TLS handshakes by version, spool commits, delivery
attempts, and the queue per recipient domain."""
import os
import re
import smtplib
import ssl
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import sluicetest as st  # noqa: E402
from sluicetest import check, eq  # noqa: E402


def counters(n, *extra):
    r = subprocess.run([st.QUEUE, "-d", n.spool, "stats"] + list(extra), capture_output=True, text=True)
    eq(r.returncode, 0, "sluice-queue stats: " + r.stdout + r.stderr)
    out = {}
    for line in r.stdout.split("live counters", 1)[1].splitlines()[1:]:
        m = re.match(r"\s+(\S+) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out, r.stdout


def test_counters_follow_the_traffic():
    n = st.Node(conf={"policy": {"reject_score": "off"}}).start()
    try:
        for _ in range(3):
            st.send(n.primary, "a@sender.test", ["r@example.test"], "Subject: a\r\n\r\nhello\r\n")
        st.send(n.fallback, "a@sender.test", ["r@example.test", "s@example.test"],
                "Subject: b\r\n\r\nhello\r\n")
        # a refused recipient (5xx) and a bad command (5xx) in one session
        s = smtplib.SMTP(*n.primary, timeout=10)
        s.ehlo("client.test")
        s.mail("a@sender.test")
        code, _ = s.rcpt("nobody@elsewhere.test")
        check(code >= 500, "relay refused: %d" % code)
        code, _ = s.docmd("FROBNICATE")
        check(code >= 500, "unknown command: %d" % code)
        s.quit()
        # STARTTLS with TLS 1.3
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = smtplib.SMTP(*n.primary, timeout=10)
        s.ehlo("client.test")
        s.starttls(context=ctx)
        s.ehlo("client.test")
        s.sendmail("a@sender.test", ["r@example.test"], "Subject: c\r\n\r\nover tls\r\n")
        s.quit()
        # one session left open after EHLO: a READY session right now
        idle = smtplib.SMTP(*n.primary, timeout=10)
        idle.ehlo("client.test")
        c, text = counters(n)
        eq(c.get('sluice_connections_total{role="primary"}'), 6.0, "primary connections\n" + text)
        eq(c.get('sluice_connections_total{role="fallback"}'), 1.0, "fallback connections")
        eq(c.get('sluice_connections_closed_total'), 6.0, "closed sessions")
        eq(c.get('sluice_sessions{state="READY"}'), 1.0, "the open session is READY")
        eq(sum(v for k, v in c.items() if k.startswith("sluice_sessions{")), 1.0, "one session open")
        eq(c.get('sluice_messages_total{action="deliver",role="primary"}'), 4.0, "primary messages")
        eq(c.get('sluice_messages_total{action="deliver",role="fallback"}'), 1.0, "fallback messages")
        eq(c.get('sluice_refusals_total{class="5xx"}'), 2.0, "5xx replies")
        eq(c.get('sluice_tls_handshakes_total{version="TLSv1.3"}'), 1.0, "one TLS 1.3 handshake")
        eq(c.get('sluice_spool_messages_committed_total'), 5.0, "commits")
        eq(c.get('sluice_spool_commit_seconds_count'), c.get('sluice_spool_commit_seconds_bucket{le="+Inf"}'),
           "the histogram's count is its last bucket")
        check(c.get('sluice_spool_commit_seconds_sum', 0) > 0, "commit time was measured")
        # the queue per domain: every message waits for example.test's route (a closed port)
        eq(c.get('sluice_queue_messages{domain="example.test"}'), 5.0, "queued for example.test")
        check(c.get('sluice_queue_oldest_seconds{domain="example.test"}', -1) >= 0, "its age")
        check(st.wait_for(lambda: counters(n)[0].get('sluice_delivery_deferrals_total', 0) >= 1, 15),
              "delivery counts its deferrals:\n" + counters(n)[1])
        check(counters(n)[0].get('sluice_delivery_recipients_total{result="deferred"}', 0) >= 1,
              "deferred recipient attempts")
        # per shard: the same totals, split
        r = subprocess.run([st.QUEUE, "-d", n.spool, "stats", "--shards"], capture_output=True, text=True)
        per = re.findall(r'sluice_connections_total\{shard="(\d+)",role="primary"\} (\d+)', r.stdout)
        eq(sorted(s for s, _ in per), ["0", "1"], "both shards listed")
        eq(sum(int(v) for _, v in per), 6, "the shards' counts add up")
        idle.quit()
        check(st.wait_for(lambda: counters(n)[0].get('sluice_sessions{state="READY"}') == 0.0, 5),
              "the gauge goes back to 0")
        eq(n.stop(), 0, "clean stop")
    finally:
        n.cleanup()


def test_queue_per_domain_is_bounded():
    """25 domains: the 20 with most mail by name, the other 5 summed as "other"."""
    doms = ["d%02d.test" % i for i in range(25)]
    n = st.Node(domains=doms, conf={"node": {"shards": "1"}}).start()
    try:
        for i, d in enumerate(doms):
            for _ in range(1 if i else 3):   # d00 gets 3: the largest
                st.send(n.primary, "a@sender.test", ["r@" + d], "Subject: q\r\n\r\nhi\r\n")
        c, text = counters(n)
        q = {k: v for k, v in c.items() if k.startswith("sluice_queue_messages{")}
        eq(len(q), 21, "20 domains and other\n" + text)
        eq(q.get('sluice_queue_messages{domain="d00.test"}'), 3.0, "the largest")
        eq(q.get('sluice_queue_messages{domain="other"}'), 5.0, "the rest, summed")
        eq(sum(q.values()), 27.0, "every message counted once")
        eq(n.stop(), 0, "clean stop")
    finally:
        n.cleanup()


def test_counters_without_a_node():
    d = tempfile.mkdtemp(prefix="sluice-ctr-")
    r = subprocess.run([st.QUEUE, "-d", d, "stats"], capture_output=True, text=True)
    check("live counters: no node running" in r.stdout, r.stdout + r.stderr)


if __name__ == "__main__":
    sys.exit(st.run_suite("counters", globals()))
