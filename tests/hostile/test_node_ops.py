#!/usr/bin/python3
"""What an operator does to a node, and gets wrong (issue 14, items 3, 9 and 14): a second node
on the same spool, an address another process holds, running as an unprivileged user, root
without a user, the command line, the systemd unit and the manual page.

Each start is a real sluice-node; each check of "still serving" is a real SMTP client.

Run: tests/hostile/test_node_ops.py [name-filter ...]
"""
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import (NODE, QUEUE, ROOT, BUILD, Node, check, eq, free_port,  # noqa: E402
                        run_suite, wait_for)

UNIT = os.path.join(ROOT, "dataplane", "sluice-node.service")
MANPAGE = os.path.join(ROOT, "dataplane", "sluice-node.8")
IS_ROOT = os.geteuid() == 0


def msg(mid):
    return ("From: a@sender.test\r\nTo: b@example.test\r\nMessage-ID: <%s>\r\nSubject: ops\r\n"
            "\r\nhello\r\n" % mid)


def send_one(addr, mid, starttls=False):
    """One message over smtplib; returns the reply to the end of data."""
    with smtplib.SMTP(addr[0], addr[1], timeout=15) as s:
        s.ehlo("ops.test")
        if starttls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s.starttls(context=ctx)
            s.ehlo("ops.test")
        s.mail("a@sender.test")
        s.rcpt("b@example.test")
        return s.data(msg(mid))


def run(args, **kw):
    return subprocess.run(args, capture_output=True, text=True, timeout=kw.pop("timeout", 60), **kw)


def proc_status(pid):
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def check_caps_after_start(pid, bounding):
    """The agent (the main thread) keeps CAP_NET_BIND_SERVICE permitted, never effective, for
    the listeners a reload adds; every other thread (the shards: the mail path) holds none."""
    bind = 1 << 10   # CAP_NET_BIND_SERVICE
    st = proc_status(pid)
    eq(int(st["CapPrm"][0], 16), bind, "the agent's permitted set: CAP_NET_BIND_SERVICE only")
    for cap in ("CapInh", "CapEff", "CapAmb"):
        eq(int(st[cap][0], 16), 0, "the agent's " + cap)
    if bounding:
        eq(int(st["CapBnd"][0], 16), bind, "the bounding set: CAP_NET_BIND_SERVICE only")
    shards = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        if int(tid) == pid:
            continue
        t = proc_status(int(tid))
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            eq(int(t[cap][0], 16), 0, "thread %s %s" % (tid, cap))
        shards += 1
    check(shards >= 1, "the shards' threads were looked at")


def port_free(host, p):
    """Whether nothing holds host:p (a bind there works)."""
    s = socket.socket()
    try:
        s.bind((host, p))
        return True
    except OSError:
        return False
    finally:
        s.close()


def start_prefixed(n, prefix, timeout=20):
    """Node.start, but through a wrapper command (setpriv)."""
    n.logf = open(n.log, "ab")
    n.proc = subprocess.Popen(prefix + [NODE, "--config", n.conf_path], stdout=n.logf,
                              stderr=subprocess.STDOUT)
    ok = wait_for(lambda: "ready:" in n.read_log() or n.proc.poll() is not None, timeout)
    if not ok or n.proc.poll() is not None:
        raise RuntimeError("sluice-node did not start: %s" % n.read_log()[-2000:])
    # The node's own pid, not the wrapper's: setpriv execs, so they are the same.
    return n


def unprivileged_node(**conf):
    """A Node that runs as nobody/nogroup; its work directory must be reachable by that user."""
    node = dict({"user": "nobody", "run_as_root": "no"}, **conf)
    n = Node(conf={"node": node})
    os.chmod(n.workdir, 0o755)
    os.chmod(n.conf_path, 0o644)
    # Made for it beforehand, as systemd-tmpfiles does (sluice-node.tmpfiles).
    os.makedirs(n.spool)
    shutil.chown(n.spool, "nobody", "nogroup")
    key = os.path.join(n.workdir, "key.pem")
    if os.path.exists(key):
        shutil.chown(key, group="nogroup")
        os.chmod(key, 0o640)
    return n


# ---- the command line ------------------------------------------------------------------

def test_help_version_and_bad_options():
    with open(os.path.join(ROOT, "meson.build")) as f:
        version = re.search(r"version: '([^']+)'", f.read()).group(1)
    r = run([NODE, "--version"])
    eq(r.returncode, 0, "--version exit")
    eq(r.stdout, "sluice-node %s\n" % version, "--version text")
    eq(r.stderr, "", "--version stderr")
    r = run([NODE, "--help"])
    eq(r.returncode, 0, "--help exit")
    check(r.stdout.startswith("usage: sluice-node --config FILE [--check-config]\n"), r.stdout)
    for opt in ("--config", "--check-config", "--help", "--version", "run_as_root", "SIGHUP"):
        check(opt in r.stdout, "--help mentions %s" % opt)
    eq(r.stderr, "", "--help stderr")
    for bad in (["--bogus"], ["-x"], ["--config"], [], ["--config", "a.ini", "extra"]):
        r = run([NODE] + bad)
        eq(r.returncode, 2, "exit status for %r" % bad)
        check("usage: sluice-node" in r.stderr, "usage on stderr for %r: %r" % (bad, r.stderr))
        eq(r.stdout, "", "nothing on stdout for %r" % bad)


# ---- one node per spool ----------------------------------------------------------------

def test_second_node_on_the_same_spool_is_refused():
    a = Node(tls=False).start()
    try:
        eq(send_one(a.primary, "first@ops")[0], 250, "the first node takes mail")
        segs = sorted(os.listdir(os.path.join(a.spool, "shard-0")))
        with open(os.path.join(a.spool, "sluice-node.lock")) as f:
            eq(f.read().strip(), str(a.proc.pid), "the lock file holds the pid")
        with open(os.path.join(a.spool, "sluice-node.pid")) as f:
            eq(f.read().strip(), str(a.proc.pid), "the pid file")
        # The very same file, as an operator starting it twice would.
        r = run([NODE, "--config", a.conf_path], timeout=30)
        eq(r.returncode, 1, "second node exit status: " + r.stderr)
        check("spool_dir %s is in use by another sluice-node (pid %d holds %s/sluice-node.lock)"
              % (a.spool, a.proc.pid, a.spool) in r.stderr, r.stderr)
        check("ready:" not in r.stderr and "listening" not in r.stderr, "it bound nothing")
        # Another file on the same spool with other addresses: refused the same way.
        b = Node(tls=False, conf={"node": {"spool_dir": a.spool}})
        try:
            r = run([NODE, "--config", b.conf_path], timeout=30)
            eq(r.returncode, 1, "other addresses, same spool")
            check("pid %d holds" % a.proc.pid in r.stderr, r.stderr)
            s = socket.socket()
            check(s.connect_ex(b.primary) != 0, "the second node's address was never bound")
            s.close()
        finally:
            b.cleanup()
        eq(sorted(os.listdir(os.path.join(a.spool, "shard-0"))), segs,
           "the second node touched no segment")
        for i in range(3):
            eq(send_one(a.primary, "after-%d@ops" % i)[0], 250, "the first node still serves")
        check(a.proc.poll() is None, "the first node still runs")
        # A lock taken by a node killed with SIGKILL goes with it.
        a.kill()
        a.start()
        eq(send_one(a.primary, "restarted@ops")[0], 250, "a node starts after a kill -9")
        ids = a.queue_ids()
        for mid in ("first@ops", "after-0@ops", "after-2@ops", "restarted@ops"):
            check(mid in ids, "%s is queued: %s" % (mid, ids))
    finally:
        rc = a.stop()
        eq(rc, 0, "clean stop")
        check(not os.path.exists(os.path.join(a.spool, "sluice-node.pid")),
              "the pid file is removed at a clean stop")
        a.cleanup()


def test_address_held_by_another_process():
    for reuseport, host in ((True, "127.0.0.2"), (False, "127.0.0.2"), (False, "0.0.0.0")):
        n = Node(tls=False)
        holder = socket.socket()
        try:
            holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuseport:
                # The dangerous one: same user, SO_REUSEPORT, so a plain bind would join it.
                holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            holder.bind((host, n.port))
            holder.listen(8)
            r = run([NODE, "--config", n.conf_path], timeout=30)
            eq(r.returncode, 1, "exit status (%s %s)" % (host, reuseport))
            check("[listen primary] address %s:%d: another process listens there"
                  % (n.primary[0], n.port) in r.stderr, r.stderr)
            check("ready:" not in r.stderr, "did not start")
            # Refused without taking the spool for good: the lock went with the process.
            holder.close()
            n.start()
            eq(send_one(n.primary, "free@ops")[0], 250, "starts once the address is free")
            eq(n.stop(), 0, "clean stop")
        finally:
            holder.close()
            n.cleanup()


def test_second_node_on_other_spool_same_addresses():
    """Without the probe its SO_REUSEPORT sockets would join the first node's group (same user)
    and take a share of its connections."""
    a = Node(tls=False).start()
    b = Node(tls=False)
    try:
        b.sections["listen primary"]["address"] = "%s:%d" % a.primary
        b.sections["listen fallback"]["address"] = "%s:%d" % a.fallback
        b.write_conf()
        r = run([NODE, "--config", b.conf_path], timeout=30)
        eq(r.returncode, 1, r.stderr)
        check("[listen primary] address %s:%d: another process listens there" % a.primary
              in r.stderr, r.stderr)
        for i in range(20):     # every connection still lands on the first node
            eq(send_one(a.primary, "only-a-%d@ops" % i)[0], 250, "the first node serves")
        ids = a.queue_ids()
        check(all("only-a-%d@ops" % i in ids for i in range(20)), "all in the first node's spool")
        check(not os.path.exists(os.path.join(b.spool, "shard-0")), "the second made no spool")
    finally:
        eq(a.stop(), 0, "clean stop")
        a.cleanup()
        b.cleanup()


def test_duplicate_listen_address_refused_at_start():
    n = Node(tls=False)
    try:
        n.sections["listen fallback"]["address"] = "%s:%d" % n.primary
        n.write_conf()
        r = run([NODE, "--config", n.conf_path], timeout=30)
        eq(r.returncode, 2, r.stderr)
        check(re.search(r":\d+: \[listen fallback\] address: 127\.0\.0\.2:%d is already the address "
                        r"of \[listen primary\] at line \d+" % n.port, r.stderr), r.stderr)
    finally:
        n.cleanup()


# ---- privileges ------------------------------------------------------------------------

def test_root_without_user_is_refused():
    if not IS_ROOT:
        print("SKIP: not root")
        return
    n = Node(tls=False, conf={"node": {"run_as_root": "no"}})
    try:
        r = run([NODE, "--config", n.conf_path], timeout=30)
        eq(r.returncode, 2, r.stderr)
        check("refusing to run as root: set [node] user = NAME" in r.stderr, r.stderr)
        check(not os.path.exists(n.spool), "nothing was created: " + str(os.path.exists(n.spool)))
        s = socket.socket()
        check(s.connect_ex(n.primary) != 0, "nothing was bound")
        s.close()
        r = run([NODE, "--config", n.conf_path, "--check-config"], timeout=30)
        eq(r.returncode, 0, "--check-config passes, with a warning")
        check("warning: started as root the node would refuse to run" in r.stderr, r.stderr)
        # And the explicit override lets it run.
        n.sections["node"]["run_as_root"] = "yes"
        n.write_conf()
        n.start()
        check("running as root ([node] run_as_root = yes)" in n.read_log(), "warned")
        eq(send_one(n.primary, "root@ops")[0], 250, "runs as root when told")
        eq(n.stop(), 0, "clean stop")
    finally:
        n.cleanup()


def all_owned_by(top, uid, gid):
    bad = []
    for d, dirs, files in os.walk(top):
        for name in [d] + [os.path.join(d, x) for x in dirs + files]:
            st = os.lstat(name)
            if st.st_uid != uid or st.st_gid != gid:
                bad.append((name, st.st_uid, st.st_gid))
    return bad


def test_runs_as_an_unprivileged_user():
    if not IS_ROOT:
        print("SKIP: not root")
        return
    import grp
    import pwd
    uid = pwd.getpwnam("nobody").pw_uid
    gid = grp.getgrnam("nogroup").gr_gid
    # First a spool written by root (as before this change): the switch must take it over.
    n = Node(conf={"node": {"run_as_root": "yes"}})
    os.chmod(n.workdir, 0o755)
    n.start()
    eq(send_one(n.primary, "as-root@ops")[0], 250, "a message spooled by root")
    eq(n.stop(), 0, "clean stop")
    check(os.stat(n.spool).st_uid == 0, "the spool belongs to root so far")
    try:
        n.sections["node"].update({"user": "nobody", "run_as_root": "no"})
        n.write_conf()
        os.chmod(n.conf_path, 0o644)
        key = os.path.join(n.workdir, "key.pem")
        shutil.chown(key, group="nogroup")
        os.chmod(key, 0o640)
        n.start()
        pid = n.proc.pid
        st = proc_status(pid)
        eq(st["Uid"], [str(uid)] * 4, "real, effective, saved and fs uid")
        eq(st["Gid"], [str(gid)] * 4, "real, effective, saved and fs gid")
        eq(st.get("Groups", []), [str(gid)], "supplementary groups")
        check_caps_after_start(pid, bounding=True)
        eq(st["NoNewPrivs"], ["1"], "no_new_privs")
        # Every thread, not only the main one.
        for tid in os.listdir("/proc/%d/task" % pid):
            eq(proc_status(int(tid))["Uid"], [str(uid)] * 4, "thread %s uid" % tid)
        log = n.read_log()
        check("running as nobody (uid %d, gid %d)" % (uid, gid) in log, log[-1500:])
        check("entries given to nobody" in log, "the root-owned spool was given over")
        eq(all_owned_by(n.spool, uid, gid), [], "everything in the spool belongs to nobody")
        # It still does its job: plain and STARTTLS, and the message spooled by root is there.
        eq(send_one(n.primary, "as-nobody@ops")[0], 250, "accepts mail")
        eq(send_one(n.fallback, "as-nobody-tls@ops", starttls=True)[0], 250, "STARTTLS")
        ids = n.queue_ids()
        for mid in ("as-root@ops", "as-nobody@ops", "as-nobody-tls@ops"):
            check(mid in ids, "%s queued: %s" % (mid, ids))
        eq(all_owned_by(n.spool, uid, gid), [], "what it wrote belongs to nobody too")
        # A reload re-reads the file and the TLS key as nobody.
        n.sections["domain new.test"] = {"route": "127.0.0.1:9"}
        n.write_conf()
        n.hup()
        check(wait_for(lambda: "reloaded" in n.read_log() or "reload refused" in n.read_log(), 10),
              "reload logged")
        check("reload refused" not in n.read_log(), n.read_log()[-800:])
        with smtplib.SMTP(*n.primary, timeout=10) as s:
            s.ehlo("ops.test")
            s.mail("a@sender.test")
            eq(s.rcpt("x@new.test")[0], 250, "the reloaded domain is served")
        eq(send_one(n.fallback, "after-reload-tls@ops", starttls=True)[0], 250,
           "STARTTLS after the reload")
        # A key nobody cannot read is said at start, not only when the reload fails.
        rc = n.stop()
        eq(rc, 0, "clean stop as nobody")
        check(not os.path.exists(os.path.join(n.spool, "sluice-node.pid")), "pid file removed")
        os.chmod(key, 0o600)
        n.start()
        check("key.pem is not readable by uid %d: a reload will fail" % uid in n.read_log(),
              n.read_log()[-800:])
        eq(n.stop(), 0, "clean stop")
    finally:
        n.cleanup()


def test_unprivileged_start_with_a_capability_drops_it():
    """What systemd does (User=sluice, AmbientCapabilities=CAP_NET_BIND_SERVICE): a port under
    1024 binds, and then the node holds no capability at all."""
    if not IS_ROOT or shutil.which("setpriv") is None:
        print("SKIP: needs root and setpriv")
        return
    port = next((p for p in range(700, 1000)
                 if port_free("127.0.0.2", p) and port_free("127.0.0.3", p)), None)
    check(port is not None, "a free port under 1024")
    n = unprivileged_node()
    try:
        n.sections["listen primary"]["address"] = "127.0.0.2:%d" % port
        n.sections["listen fallback"]["address"] = "127.0.0.3:%d" % port
        n.primary, n.fallback = ("127.0.0.2", port), ("127.0.0.3", port)
        n.write_conf()
        # Without the capability: refused with a clear reason.
        r = run(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", NODE,
                 "--config", n.conf_path], timeout=30)
        eq(r.returncode, 1, r.stderr)
        check("[listen primary] address 127.0.0.2:%d: Permission denied" % port in r.stderr,
              r.stderr)
        start_prefixed(n, ["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                           "--inh-caps", "+net_bind_service",
                           "--ambient-caps", "+net_bind_service"])
        st = proc_status(n.proc.pid)
        eq(st["Uid"][0], str(65534), "runs as nobody")
        check_caps_after_start(n.proc.pid, bounding=False)
        eq(send_one(n.primary, "port-%d@ops" % port)[0], 250, "serves on port %d" % port)
        # A reload adds a listener on another port under 1024: the agent binds it with the
        # capability it kept, raised only for that.
        port2 = next(p for p in range(port + 1, 1024) if port_free("127.0.0.4", p))
        n.sections["listen extra"] = {"address": "127.0.0.4:%d" % port2, "role": "primary"}
        n.write_conf()
        before = n.read_log().count("reloaded")
        n.hup()
        check(wait_for(lambda: n.read_log().count("reloaded") > before, 10), n.read_log()[-1500:])
        time.sleep(0.3)
        eq(send_one(("127.0.0.4", port2), "port2-%d@ops" % port2)[0], 250,
           "serves on port %d, added by a reload" % port2)
        check_caps_after_start(n.proc.pid, bounding=False)
        eq(n.stop(), 0, "clean stop")
        # A user that is not the one the node was started as: it cannot switch.
        n.sections["node"]["user"] = "daemon"
        n.write_conf()
        r = run(["setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups", NODE,
                 "--config", n.conf_path], timeout=30)
        eq(r.returncode, 2, r.stderr)
        check("[node] user = daemon" in r.stderr and "cannot switch" in r.stderr, r.stderr)
    finally:
        n.cleanup()


# ---- systemd and the manual page -------------------------------------------------------

def unit_for_build(dirname, name="sluice-node.service"):
    """The unit with the build tree's paths, and a MANPATH in which man:sluice-node(8) and
    man:sluice-rules(1) exist."""
    with open(os.path.join(ROOT, "dataplane", name)) as f:
        text = f.read()
    text = text.replace("@bindir@/sluice-rules", os.path.join(BUILD, "patterns", "sluice-rules"))
    text = text.replace("@bindir@", os.path.join(BUILD, "dataplane")).replace("@sysconfdir@", "/etc")
    path = os.path.join(dirname, name)
    with open(path, "w") as f:
        f.write(text)
    os.makedirs(os.path.join(dirname, "man", "man8"), exist_ok=True)
    os.makedirs(os.path.join(dirname, "man", "man1"), exist_ok=True)
    shutil.copy(MANPAGE, os.path.join(dirname, "man", "man8", "sluice-node.8"))
    shutil.copy(os.path.join(ROOT, "patterns", "compiler", "sluice-rules.1"),
                os.path.join(dirname, "man", "man1", "sluice-rules.1"))
    return path, dict(os.environ, MANPATH=os.path.join(dirname, "man"))


def test_systemd_unit():
    with open(UNIT) as f:
        text = f.read()
    for want in ("ProtectSystem=strict", "ReadWritePaths=/var/spool/sluice", "ProtectHome=yes",
                 "PrivateTmp=yes", "NoNewPrivileges=yes",
                 "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                 "AmbientCapabilities=CAP_NET_BIND_SERVICE", "RestrictAddressFamilies=",
                 "LimitNOFILE=", "ExecReload=/bin/kill -HUP $MAINPID", "User=sluice"):
        check(want in text, "the unit has %s" % want)
    with open(os.path.join(BUILD, "dataplane", "sluice-node.service")) as f:
        built = f.read()
    check("@bindir@" not in built and "/sluice-node --config " in built, "meson filled the paths")
    if shutil.which("systemd-analyze") is None:
        print("SKIP: no systemd-analyze")
        return
    d = tempfile.mkdtemp(prefix="sluice-unit-")
    try:
        path, env = unit_for_build(d)
        r = run(["systemd-analyze", "verify", path], env=env)
        eq(r.returncode, 0, "systemd-analyze verify: " + r.stdout + r.stderr)
        eq((r.stdout + r.stderr).strip(), "", "no warnings")
        r = run(["systemd-analyze", "security", "--offline=yes", path], env=env)
        m = re.search(r"Overall exposure level for sluice-node.service: ([0-9.]+)", r.stdout)
        check(m and float(m.group(1)) <= 2.5, "exposure: %s" % (m and m.group(1)))
        check("ExecStartPre=+" in open(path).read() and "--if-changed" in open(path).read(),
              "the node's start compiles the rules first when they changed")
        # the daily recompile after sa-update, and its timer
        upath, env = unit_for_build(d, "sluice-rules-update.service")
        shutil.copy(os.path.join(ROOT, "dataplane", "sluice-rules-update.timer"), d)
        r = run(["systemd-analyze", "verify", upath, os.path.join(d, "sluice-rules-update.timer")],
                env=env)
        eq(r.returncode, 0, "systemd-analyze verify (rules update): " + r.stdout + r.stderr)
        eq((r.stdout + r.stderr).strip(), "", "no warnings (rules update)")
    finally:
        shutil.rmtree(d, ignore_errors=True)


def syscall_groups():
    """systemd-analyze syscall-filter, as {"@group": set of names and @groups}."""
    out = run(["systemd-analyze", "syscall-filter"]).stdout
    groups, cur = {}, None
    for line in out.splitlines():
        if line.startswith("@"):
            cur = groups.setdefault(line.strip(), set())
        elif cur is not None and line.strip() and not line.strip().startswith("#"):
            cur.add(line.strip())
    return groups


def expand(name, groups, seen=None):
    seen = seen if seen is not None else set()
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    out = set()
    for m in groups.get(name, ()):
        out |= expand(m, groups, seen)
    return out


def test_systemd_syscall_filter_lets_the_node_work():
    """The unit's SystemCallFilter= against what the node really calls (strace) while it starts
    as the unit starts it, takes mail over TLS, reloads and stops."""
    if not IS_ROOT or not all(shutil.which(x) for x in ("systemd-analyze", "strace", "setpriv")):
        print("SKIP: needs root, systemd-analyze, strace and setpriv")
        return
    if "ASAN_OPTIONS" in os.environ:
        # The sanitizer runtime makes system calls of its own and its leak check refuses to run
        # under ptrace: the list is the normal build's (this test runs there too).
        print("SKIP: the sanitizer build's system calls are not the node's")
        return
    groups = syscall_groups()
    allowed, mode = set(), None
    with open(UNIT) as f:
        for line in f:
            if not line.startswith("SystemCallFilter="):
                continue
            v = line.split("=", 1)[1].strip()
            deny = v.startswith("~")
            names = set()
            for item in v.lstrip("~").split():
                names |= expand(item, groups)
            if mode is None:
                mode = "deny" if deny else "allow"
            allowed = allowed - names if deny else allowed | names
    eq(mode, "allow", "the filter is an allow list")
    n = unprivileged_node()
    trace = os.path.join(n.workdir, "strace.out")
    pid = None
    try:
        start_prefixed(n, ["strace", "-f", "-qq", "-o", trace, "-e", "trace=all",
                           "setpriv", "--reuid", "nobody", "--regid", "nogroup", "--clear-groups",
                           "--inh-caps", "+net_bind_service", "--ambient-caps", "+net_bind_service"],
                       timeout=60)
        with open(os.path.join(n.spool, "sluice-node.pid")) as f:
            pid = int(f.read())     # the node, a child of strace: signals go to it
        eq(send_one(n.primary, "traced@ops", starttls=True)[0], 250, "mail under strace")
        os.kill(pid, signal.SIGHUP)
        check(wait_for(lambda: "reloaded" in n.read_log(), 20), "reload under strace")
        os.kill(pid, signal.SIGTERM)
        eq(n.proc.wait(60), 0, "clean stop under strace")
        n.proc = None
        n.logf.close()
        used = set()
        started = False
        with open(trace) as f:
            for line in f:
                m = re.match(r"\d+\s+([a-z0-9_]+)\(", line)
                if not m:
                    continue
                if m.group(1) == "execve" and NODE in line:
                    started = True      # setpriv's own calls (setresuid, ...) are not the node's
                    continue
                if started:
                    used.add(m.group(1))
        check(started and len(used) > 20, "the trace saw the node: %d calls" % len(used))
        missing = sorted(used - allowed)
        eq(missing, [], "system calls the unit's filter would refuse")
    finally:
        if pid is not None and n.proc is not None:
            try:
                os.kill(pid, signal.SIGKILL)    # killing strace alone would leave it running
            except ProcessLookupError:
                pass
        n.cleanup()


def test_manual_page():
    with open(MANPAGE) as f:
        page = f.read()
    r = run([NODE, "--help"])
    for opt in re.findall(r"--[a-z-]+", r.stdout):
        check(r"\-\-" + opt[2:] in page, "the manual page documents %s" % opt)
    for key in ("user", "group", "run_as_root", "pid_file", "hostname", "spool_dir"):
        check(re.search(r"\b%s\b" % key, page), "the manual page documents [node] %s" % key)
    if shutil.which("groff"):
        r = run(["groff", "-man", "-Tutf8", "-ww", "-z", MANPAGE], env=dict(os.environ, LC_ALL="C.UTF-8"))
        eq(r.returncode, 0, "groff exit")
        eq(r.stderr, "", "groff warnings")
    else:
        print("SKIP: no groff")
    if shutil.which("man"):
        r = run(["man", "--warnings", "-l", MANPAGE],
                env=dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MANPAGER="cat", PAGER="cat"))
        eq(r.returncode, 0, "man -l exit")
        eq(r.stderr, "", "man -l warnings")
        check("sluice-node - the Sluice inbound mail filtering gateway" in r.stdout, r.stdout[:300])
        check("EXIT STATUS" in r.stdout, "sections render")
    with open(os.path.join(ROOT, "dataplane", "meson.build")) as f:
        m = f.read()
    check("install_man('sluice-node.8')" in m, "meson installs the manual page")


if __name__ == "__main__":
    sys.exit(run_suite("node_ops", globals(), sys.argv[1:]))
