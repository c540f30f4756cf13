#!/usr/bin/python3
"""Sender-specified routing and bare <postmaster> (issue 14, items 4 and 5).

A hostile client asks an MX to route on through a customer's server: user%other@ours,
other!user@ours, "user@other"@ours. Each is refused with 554 5.7.1 by default and the node serves
the next client; a domain with allow_routing = yes takes the address and relays it unchanged to
its destination (aiosmtpd, run here). Bare <postmaster> (any case) is accepted whatever the
node's hostname and reaches [node] postmaster at the destination; a postmaster outside the
served domains is refused at config load with file and line.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import NODE, Node, Raw, Sink, check, eq, run_suite, wait_for  # noqa: E402

ROUTED = ["u%other.test@ours.test", "other.test!u@ours.test", '"u@other.test"@ours.test',
          '"u%other.test"@ours.test', '"other.test!u"@ours.test', "a%b%c@ours.test",
          '"u\\@other.test"@ours.test', "U%Other@OURS.TEST"]


def greeted(n):
    r = Raw(n.primary)
    eq(r.reply()[0], 220, "banner")
    eq(r.cmd("EHLO client.test")[0], 250, "EHLO")
    eq(r.cmd("MAIL FROM:<s@src.test>")[0], 250, "MAIL")
    return r


def serves(n):
    """The node still answers a whole ordinary transaction."""
    r = greeted(n)
    eq(r.cmd("RCPT TO:<plain@ours.test>")[0], 250, "an ordinary recipient after the attack")
    eq(r.cmd("QUIT")[0], 221, "QUIT")
    r.close()


def relay(sink, domains_extra=None, policy=None, node=None):
    conf = {"node": {"shards": "1"}, "delivery": {"retry_first": "1s", "retry_max": "1s"},
            "domain ours.test": {"route": "127.0.0.1:%d" % sink.port},
            "domain open.test": {"route": "127.0.0.1:%d" % sink.port}}
    for d, kv in (domains_extra or {}).items():
        conf.setdefault("domain " + d, {}).update(kv)
    if policy:
        conf["policy"] = policy
    if node:
        conf["node"].update(node)
    return Node(conf=conf, domains=(), tls=False).start()


def test_routing_refused_by_default():
    sink = Sink().start()
    n = relay(sink)
    try:
        for addr in ROUTED:
            r = greeted(n)
            code, lines = r.cmd("RCPT TO:<%s>" % addr)
            eq(code, 554, "RCPT TO:<%s>" % addr)
            check(lines[0].startswith("554 5.7.1 "), "554 5.7.1: %r" % lines[0])
            check(addr in lines[0], "the reply names the address: %r" % lines[0])
            eq(r.cmd("DATA")[0], 554, "no valid recipient")
            r.close()
        serves(n)
        # Not routing: a quoted local part without @ % !, and + or = (sub-addressing).
        r = greeted(n)
        for addr in ('"john smith"@ours.test', "u+tag@ours.test", "u=x@ours.test"):
            eq(r.cmd("RCPT TO:<%s>" % addr)[0], 250, "RCPT TO:<%s> is not routing" % addr)
        r.close()
    finally:
        n.stop()
        n.cleanup()
        sink.cleanup()


def test_allow_routing_per_domain_relays_unchanged():
    sink = Sink().start()
    n = relay(sink, domains_extra={"open.test": {"allow_routing": "yes"}})
    try:
        wanted = ["u%other.test@open.test", "other.test!u@open.test", '"u@other.test"@open.test']
        r = greeted(n)
        for addr in wanted:
            eq(r.cmd("RCPT TO:<%s>" % addr)[0], 250, "allowed on open.test: %s" % addr)
        eq(r.cmd("RCPT TO:<u%other.test@ours.test>")[0], 554, "still refused on ours.test")
        eq(r.cmd("DATA")[0], 354, "DATA")
        eq(r.cmd("Subject: routed\r\n\r\nhello\r\n.")[0], 250, "queued")
        r.close()
        got = sink.wait(1)
        eq(len(got), 1, "delivered")
        eq(sorted(got[0][1]), sorted(wanted), "relayed with the addresses unchanged")
    finally:
        n.stop()
        n.cleanup()
        sink.cleanup()


def test_quoted_at_recipient_gets_its_own_domains_keys():
    """A quoted local part holding '@' ("u@other.test"@open.test, let in by allow_routing) is
    open.test's recipient for every per-domain key too, not a domain named after its first '@':
    open.test refuses long lines, so the message is refused at the end of data."""
    sink = Sink().start()
    n = relay(sink, domains_extra={"open.test": {"allow_routing": "yes", "long_lines": "refuse"}})
    try:
        r = greeted(n)
        eq(r.cmd('RCPT TO:<"u@other.test"@open.test>')[0], 250, "RCPT")
        eq(r.cmd("DATA")[0], 354, "DATA")
        code, lines = r.cmd("Subject: long\r\n\r\n" + "x" * 1200 + "\r\n.")
        eq(code, 554, "open.test's long_lines = refuse: %r" % lines)
        check("5.6.0" in lines[0], lines[0])
        r.close()
        serves(n)
    finally:
        n.stop()
        n.cleanup()
        sink.cleanup()


def test_allow_routing_policy_default_and_domain_override():
    sink = Sink().start()
    n = relay(sink, policy={"allow_routing": "yes"},
              domains_extra={"ours.test": {"allow_routing": "no"}})
    try:
        r = greeted(n)
        eq(r.cmd("RCPT TO:<a%b@open.test>")[0], 250, "[policy] allow_routing = yes applies")
        eq(r.cmd("RCPT TO:<a%b@ours.test>")[0], 554, "[domain] allow_routing = no overrides")
        r.close()
    finally:
        n.stop()
        n.cleanup()
        sink.cleanup()


def test_bare_postmaster_delivered_to_configured_address():
    sink = Sink().start()
    # The node's hostname (mx.test) is none of its domains.
    n = relay(sink, node={"postmaster": "hostmaster@open.test"})
    try:
        r = greeted(n)
        for pm in ("postmaster", "Postmaster", "POSTMASTER"):
            eq(r.cmd("RCPT TO:<%s>" % pm)[0], 250, "bare <%s>" % pm)
        eq(r.cmd("RCPT TO:<postmaster@elsewhere.test>")[0], 554, "postmaster of a stranger")
        eq(r.cmd("DATA")[0], 354, "DATA")
        eq(r.cmd("Subject: to the postmaster\r\n\r\nhello\r\n.")[0], 250, "queued")
        r.close()
        got = sink.wait(1)
        eq(len(got), 1, "delivered")
        eq(got[0][1], ["hostmaster@open.test"], "to the configured postmaster, once")
        check(b"Subject: to the postmaster" in got[0][2], "the message")
        serves(n)
    finally:
        n.stop()
        n.cleanup()
        sink.cleanup()


def test_bare_postmaster_default_first_domain():
    sink = Sink().start()
    n = relay(sink)   # ours.test is the file's first domain
    try:
        r = greeted(n)
        eq(r.cmd("RCPT TO:<Postmaster>")[0], 250, "bare postmaster without the key")
        eq(r.cmd("DATA")[0], 354, "DATA")
        eq(r.cmd("Subject: pm\r\n\r\nx\r\n.")[0], 250, "queued")
        r.close()
        got = sink.wait(1)
        eq(len(got), 1, "delivered")
        eq(got[0][1], ["postmaster@ours.test"], "postmaster@ the first domain")
    finally:
        n.stop()
        n.cleanup()
        sink.cleanup()


def test_postmaster_no_domain_refused_clearly():
    n = Node(domains=(), tls=False).start()
    try:
        r = greeted(n)
        code, lines = r.cmd("RCPT TO:<postmaster>")
        eq(code, 550, "no domain: nothing can take it")
        check(lines[0].startswith("550 5.1.1") and "serves no domain" in lines[0], lines[0])
        r.close()
    finally:
        n.stop()
        n.cleanup()


def check_config(n):
    return subprocess.run([NODE, "--config", n.conf_path, "--check-config"],
                          capture_output=True, text=True)


def test_postmaster_config_errors():
    n = Node(conf={"node": {"postmaster": "pm@unserved.test"}}, tls=False)
    try:
        r = check_config(n)
        check(r.returncode != 0, "a postmaster outside the domains is refused")
        with open(n.conf_path) as f:
            line = [i + 1 for i, t in enumerate(f) if t.startswith("postmaster")][0]
        check("%s:%d: [node] postmaster: unserved.test is not a served domain" %
              (n.conf_path, line) in r.stderr, "names file, line, key: %r" % r.stderr)
        for bad in ("nobody", "a b@example.test", "@example.test", "x@"):
            n.sections["node"]["postmaster"] = bad
            n.write_conf()
            r = check_config(n)
            check(r.returncode != 0 and "[node] postmaster:" in r.stderr,
                  "%r refused: %r" % (bad, r.stderr))
        n.sections["node"]["postmaster"] = "pm@EXAMPLE.test"
        n.write_conf()
        r = check_config(n)
        eq(r.returncode, 0, "a served domain, any case: %s" % r.stderr)
        n.sections["domain example.test"]["allow_routing"] = "perhaps"
        n.write_conf()
        r = check_config(n)
        check(r.returncode != 0 and "[domain example.test] allow_routing: want yes or no" in
              r.stderr, "allow_routing checked: %r" % r.stderr)
    finally:
        n.cleanup()


if __name__ == "__main__":
    sys.exit(run_suite("routing", globals(), sys.argv[1:]))
