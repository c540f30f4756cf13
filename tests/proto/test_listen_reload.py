#!/usr/bin/python3
"""Reloadable listeners (issue 15, item 2): a SIGHUP that adds, removes or changes a listen
address (or its MX role) opens and closes the sockets in every shard, while sessions open on the
addresses that stay see nothing; a session on a removed address finishes its message. A reload
whose new address cannot be bound is refused as a whole, and the node keeps listening where it
did."""
import os
import re
import smtplib
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import sluicetest as st  # noqa: E402
from sluicetest import check, eq  # noqa: E402


def open_session(addr, rcpt="r@example.test"):
    """A session stopped after RCPT: it must survive the reloads around it."""
    s = smtplib.SMTP(*addr, timeout=10)
    s.ehlo("client.test")
    eq(s.mail("a@sender.test")[0], 250, "MAIL")
    eq(s.rcpt(rcpt)[0], 250, "RCPT")
    return s


def finish(s, mid):
    code, _ = s.data("Message-ID: <%s>\r\nSubject: reload\r\n\r\nstill here\r\n" % mid)
    s.quit()
    return code


def accepted_role(n, mid_prefix_rcpt):
    """The MX role the accept line of the message to rcpt names."""
    m = re.findall(r"accept: .* to \S+ \((primary|fallback) MX\): .* to=<%s>" % re.escape(mid_prefix_rcpt),
                   n.read_log())
    return m[-1] if m else None


def reload(n):
    def handled():
        log = n.read_log()
        return log.count("reloaded") + log.count("reload refused")
    before = handled()
    n.write_conf()
    n.hup()
    check(st.wait_for(lambda: handled() > before, 10),
          "the reload was handled:\n" + n.read_log()[-1500:])
    time.sleep(0.3)   # every shard has applied it (they switch between two events)


def connects(addr):
    try:
        c = socket.create_connection(addr, timeout=2)
    except OSError:
        return False
    try:
        return c.recv(100).startswith(b"220")
    finally:
        c.close()


def test_add_change_remove_listeners_while_sessions_run():
    n = st.Node(conf={"node": {"shards": "2"}}).start()
    port = n.port
    extra = ("127.0.0.4", port)
    try:
        check(not connects(extra), "nothing on 127.0.0.4 yet")
        on_primary = open_session(n.primary, "p1@example.test")
        on_fallback = open_session(n.fallback, "f1@example.test")

        # 1. add a listener
        n.sections["listen extra"] = {"address": "%s:%d" % extra, "role": "fallback"}
        reload(n)
        check("listeners: 1 opened, 0 closed, 2 kept" in n.read_log(), n.read_log()[-1500:])
        for i in range(6):   # several connections: both shards' sockets of the new group work
            st.send(extra, "a@sender.test", ["x%d@example.test" % i], "Subject: x\r\n\r\nhi\r\n")
        check(st.wait_for(lambda: accepted_role(n, "x5@example.test") == "fallback", 5),
              "the new listener's mail is fallback MX:\n" + n.read_log()[-1500:])

        # 2. the primary address becomes a fallback one: the open session keeps its role
        n.sections["listen primary"]["role"] = "fallback"
        reload(n)
        st.send(n.primary, "a@sender.test", ["p2@example.test"], "Subject: x\r\n\r\nhi\r\n")
        check(st.wait_for(lambda: accepted_role(n, "p2@example.test") == "fallback", 5),
              "a new session on the changed address has the new role")

        # 3. remove the fallback listener: refused from now on; its open session finishes
        del n.sections["listen fallback"]
        reload(n)
        check("0 opened, 1 closed, 2 kept" in n.read_log(), n.read_log()[-1500:])
        check(st.wait_for(lambda: not connects(n.fallback), 5), "127.0.0.3 no longer listens")
        check(connects(n.primary) and connects(extra), "the others still do")

        eq(finish(on_primary, "open-p@test"), 250, "the session opened before the reloads")
        eq(finish(on_fallback, "open-f@test"), 250, "the session on the removed address")
        check(st.wait_for(lambda: accepted_role(n, "p1@example.test") == "primary", 5),
              "the old session kept the role it came with")
        eq(n.stop(), 0, "clean stop")
        check("ERROR" not in n.read_log() and "error:" not in n.read_log(), n.read_log()[-2000:])
    finally:
        n.cleanup()


def test_a_reload_that_cannot_bind_is_refused():
    n = st.Node().start()
    squat = socket.socket()
    try:
        squat.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squat.bind(("127.0.0.5", n.port))
        squat.listen(1)
        n.sections["listen taken"] = {"address": "127.0.0.5:%d" % n.port, "role": "primary"}
        n.sections["listen other"] = {"address": "127.0.0.6:%d" % n.port, "role": "primary"}
        n.sections["policy"] = {"tag_score": "3"}
        reload(n)
        check(re.search(r"reload refused, keeping the running configuration: .*\[listen taken\] "
                        r"address 127\.0\.0\.5:\d+: another process listens there", n.read_log()),
              n.read_log()[-1500:])
        check(not connects(("127.0.0.6", n.port)), "nothing of the refused reload was opened")
        eq(st.send(n.primary, "a@sender.test", ["r@example.test"], "Subject: x\r\n\r\nhi\r\n")
           is not None, True, "the node still serves its old addresses")
        eq(n.stop(), 0, "clean stop")
    finally:
        squat.close()
        n.cleanup()


if __name__ == "__main__":
    sys.exit(st.run_suite("listen_reload", globals()))
