#!/usr/bin/python3
"""Configuration that loads but is wrong (issue 14, item 11): each broken file is run through
`sluice-node --check-config` and through a real start, and the message must name the file, the
exact line, the section and the key.

Run: tests/proto/test_config.py [name-filter ...]
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import NODE, Node, check, eq, free_port, run_suite  # noqa: E402

WORK = tempfile.mkdtemp(prefix="sluice-config-")
SPOOL = os.path.join(WORK, "spool")


def base(port=None, spool=SPOOL):
    """A good file of 9 lines; tests append to it or replace a line."""
    return ("[node]\n"                                  # 1
            "hostname = mx.test\n"                      # 2
            "spool_dir = %s\n"                          # 3
            "run_as_root = yes\n"                       # 4
            "shards = 1\n"                              # 5
            "[listen a]\n"                              # 6
            "address = 127.0.0.2:%d\n"                  # 7
            "[domain d.test]\n"                         # 8
            "route = 127.0.0.1:25\n"                    # 9
            % (spool, port or free_port()))


def write(text, name="node.ini"):
    p = os.path.join(WORK, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def check_config(text, runas=None):
    p = write(text)
    cmd = [NODE, "--config", p, "--check-config"]
    if runas:
        cmd = ["setpriv", "--reuid", runas[0], "--regid", runas[1], "--clear-groups"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    return r.returncode, (r.stdout + r.stderr).replace(p, "FILE")


def start(text, timeout=20):
    """A real start of a broken file: it must exit by itself."""
    p = write(text)
    r = subprocess.run([NODE, "--config", p], capture_output=True, text=True, timeout=timeout)
    return r.returncode, (r.stdout + r.stderr).replace(p, "FILE")


def expect(text, want, rc=2, also_start=True):
    """Both ways: the exit status and the message, with file, line, section and key."""
    got_rc, out = check_config(text)
    eq(got_rc, rc, "--check-config exit status for %r: %s" % (want, out))
    check(want in out, "--check-config: want %r in %r" % (want, out))
    if also_start:
        got_rc, out = start(text)
        eq(got_rc, rc, "start exit status for %r: %s" % (want, out[-500:]))
        check(want in out, "start: want %r in %r" % (want, out[-500:]))
        check("ready:" not in out, "a broken file never gets to ready")


def test_good_file_is_good():
    rc, out = check_config(base())
    eq(rc, 0, out)
    check("1 listen addresses, 1 domains" in out, out)


def test_duplicate_sections():
    expect(base() + "[node]\nname = again\n",
           "FILE:10: [node]: section given twice: first at line 1")
    expect(base() + "[limits]\nrecipients = 5\n[spool]\n[limits]\nerrors = 3\n",
           "FILE:13: [limits]: section given twice: first at line 10")
    expect(base() + "[listen a]\nrole = fallback\n",
           "FILE:10: [listen a]: section given twice: first at line 6")
    # A domain is one domain in any case, so this is the same section again.
    expect(base() + "[domain D.Test]\ntag_score = 3\n",
           "FILE:10: [domain D.Test]: section given twice: [domain d.test] is at line 8")
    # An empty duplicate counts too: it is the header that is wrong.
    expect(base() + "[policy]\n[policy]\n", "FILE:11: [policy]: section given twice: first at line 10")


def test_duplicate_keys():
    expect(base() + "route = 127.0.0.1:26\n",
           "FILE:10: [domain d.test] route: given twice in this section: first at line 9")
    expect(base().replace("shards = 1\n", "shards = 1\nhostname = other.test\n"),
           "FILE:6: [node] hostname: given twice in this section: first at line 2")
    expect(base() + "[limits]\nmessage_size = 10M\n; a comment\n\nmessage_size = 20M\n",
           "FILE:14: [limits] message_size: given twice in this section: first at line 11")
    expect(base() + "[policy]\ntag_score = 4\nfallback_tag_score = 3\ntag_score = 5\n",
           "FILE:13: [policy] tag_score: given twice in this section: first at line 11")
    # The same key in two sections is no duplicate.
    rc, out = check_config(base() + "[domain e.test]\nroute = 127.0.0.1:25\n")
    eq(rc, 0, out)
    # List keys add to their list each time they are given: no error.
    rc, out = check_config(base() + "[policy]\nip_block = 192.0.2.1\nip_block = 192.0.2.2\n"
                           "sender_allow = a@b.test\nsender_allow = c@d.test\n"
                           "ip_allow = 10.0.0.0/8\nip_allow = 10.1.0.0/16\n"
                           "sender_block = @x.test\nsender_block = y.test\n")
    eq(rc, 0, "repeated list keys: " + out)


def test_indented_line_continues_a_value():
    """inih reads an indented line after a key as more of its value: a classic slip."""
    expect(base() + "[listen b]\naddress = 127.0.0.3:2525\n  role = fallback\n",
           "FILE:12: [listen b] address: an indented line continues the value of address (line 11)")
    # A list may go on over several lines.
    rc, out = check_config(base() + "[policy]\nip_block = 192.0.2.1\n    192.0.2.2, 192.0.2.3\n")
    eq(rc, 0, "a list continued: " + out)


def test_missing_hostname_and_spool_dir():
    expect(base().replace("hostname = mx.test\n", ""),
           "FILE:1: [node] hostname: missing (the name this MX gives in its banner")
    expect(base().replace("spool_dir = %s\n" % SPOOL, ""),
           "FILE:1: [node] spool_dir: missing (where accepted mail is kept)")
    no_node = base().split("[listen a]\n", 1)[1]
    expect("[listen a]\n" + no_node, "FILE: [node] hostname: missing, and there is no [node] section")


def test_zero_domains_warns():
    text = base().replace("[domain d.test]\nroute = 127.0.0.1:25\n", "")
    rc, out = check_config(text)
    eq(rc, 0, "zero domains is allowed: " + out)
    check("warning: FILE: no [domain] section: every recipient will be refused" in out, out)
    check("0 domains" in out, out)


def test_ports_out_of_range():
    b = base(port=2525)
    expect(b.replace("127.0.0.2:2525", "127.0.0.2:65536"),
           "FILE:7: [listen a] address: port out of range in \"127.0.0.2:65536\" (want 1-65535)")
    expect(b.replace("127.0.0.2:2525", "127.0.0.2:0"),
           "FILE:7: [listen a] address: port out of range in \"127.0.0.2:0\" (want 1-65535)")
    expect(b.replace("127.0.0.2:2525", "[::1]:99999"),
           "FILE:7: [listen a] address: port out of range in \"[::1]:99999\" (want 1-65535)")
    expect(b.replace("route = 127.0.0.1:25", "route = 127.0.0.1:25 10, 127.0.0.1:70000 20"),
           "FILE:9: [domain d.test] route: port out of range in \"127.0.0.1:70000\" (want 1-65535)")
    expect(b + "[delivery]\nmx_port = 0\n",
           "FILE:11: [delivery] mx_port: port 0 out of range (want 1-65535)")
    expect(b + "[delivery]\ndns_server = 127.0.0.1:65536\n",
           "FILE:11: [delivery] dns_server: port out of range in \"127.0.0.1:65536\" (want 1-65535)")


def test_roles_section():
    # The cluster's configuration places the data roles on nodes ([roles], control/wire): a good
    # section loads, a role may be placed nowhere yet, and a bad key or name is named.
    b = base()
    rc, out = check_config(b + "[roles]\nlog = n1\nquarantine = node-2\narchive =\n")
    eq(rc, 0, "a [roles] section loads: " + out)
    expect(b + "[roles]\nlogs = n1\n", "FILE:11: [roles] logs: unknown key", also_start=False)
    expect(b + "[roles]\nlog = N1\n",
           "FILE:11: [roles] log: \"N1\" is not a node name (a-z, 0-9 and '-', not at an end, "
           "at most 63 bytes)", also_start=False)
    expect(b + "[roles]\nquarantine = -n1\n", "FILE:11: [roles] quarantine: \"-n1\" is not a "
           "node name", also_start=False)
    expect(b + "[roles]\narchive = %s\n" % ("a" * 64), "FILE:11: [roles] archive:",
           also_start=False)


def test_cluster_section():
    # [cluster] (conf_cluster.c): a cluster member's keys; the node's name is then its identity.
    b = base()
    rc, out = check_config(b + "[cluster]\ndir = /etc/sluice/cluster\nnats_port = 14222\n")
    eq(rc, 0, "a [cluster] section loads: " + out)
    expect(b + "[cluster]\nnats_port = 14222\n", "FILE:10: [cluster] dir: missing",
           also_start=False)
    expect(b + "[cluster]\ndir = rel/dir\n", "FILE:11: [cluster] dir: want an absolute path",
           also_start=False)
    expect(b + "[cluster]\ndir = /c\nnats_monitor_port = 4222\n",
           "FILE:12: [cluster] nats_monitor_port: nats_port and nats_monitor_port are both 4222",
           also_start=False)
    expect(b.replace("[node]\n", "[node]\nname = Hub_1\n") + "[cluster]\ndir = /c\n",
           "FILE:2: [node] name: \"Hub_1\" cannot name a cluster node", also_start=False)


def test_thresholds_out_of_order():
    # [policy] against the built-in defaults (tag 5, quarantine 8, reject 15).
    expect(base() + "[policy]\ntag_score = 9\n",
           "FILE:11: [policy] tag_score: thresholds out of order for the primary MX: "
           "tag_score 9 is above quarantine_score 8 (quarantine_score is the built-in default); "
           "want tag_score <= quarantine_score <= reject_score where set")
    expect(base() + "[policy]\nreject_score = 12\nquarantine_score = 12.5\n",
           "FILE:12: [policy] quarantine_score: thresholds out of order for the primary MX: "
           "quarantine_score 12.5 is above reject_score 12 (reject_score at line 11)")
    # A tie is allowed: the severer action takes it (the way to skip quarantine on one role).
    rc, out = check_config(base() + "[policy]\ntag_score = 2\nquarantine_score = 4\n"
                           "fallback_reject_score = 4\n")
    eq(rc, 0, "a tie: " + out)
    # One role only.
    expect(base() + "[policy]\nfallback_reject_score = 6\n",
           "FILE:11: [policy] fallback_reject_score: thresholds out of order for the fallback MX: "
           "quarantine_score 8 is above reject_score 6")
    # A domain's override against the [policy] it inherits, named at the domain's line.
    expect(base() + "quarantine_score = 3\n[policy]\ntag_score = 4\n",
           "FILE:10: [domain d.test] quarantine_score: thresholds out of order for the primary MX: "
           "tag_score 4 is above quarantine_score 3 (tag_score at line 12)")
    # Off thresholds are skipped: tag 9 with quarantine off is fine (9 < 15).
    rc, out = check_config(base() + "[policy]\ntag_score = 9\nquarantine_score = off\n")
    eq(rc, 0, "off skipped: " + out)
    # A domain may turn one off and so repair its order; the default still has to be right.
    rc, out = check_config(base() + "tag_score = 1\nquarantine_score = 2\nreject_score = 3\n")
    eq(rc, 0, "a domain with its own order: " + out)


def test_domain_names_that_match_nothing():
    expect(base() + "[domain *.example.test]\nroute = mx\n",
           "FILE:10: [domain *.example.test]: wildcards are not supported")
    expect(base() + "[domain example.*]\nroute = mx\n",
           "FILE:10: [domain example.*]: wildcards are not supported")
    expect(base() + "[domain .example.test]\nroute = mx\n",
           "FILE:10: [domain .example.test]: the name cannot match any recipient: empty label")
    expect(base() + "[domain example.test.]\nroute = mx\n",
           "FILE:10: [domain example.test.]: the name cannot match any recipient: empty label")
    expect(base() + "[domain exa mple.test]\nroute = mx\n",
           "FILE:10: [domain exa mple.test]: the name cannot match any recipient: ' ' is not allowed")
    expect(base() + "[domain user@example.test]\nroute = mx\n",
           "FILE:10: [domain user@example.test]: the name cannot match any recipient: '@'")
    expect(base() + "[domain %s.test]\nroute = mx\n" % ("a" * 64),
           "a label is longer than 63 characters")
    # A domain section with nothing in it has no route.
    expect(base() + "[domain e.test]\n",
           "FILE:10: [domain e.test] route: missing: the domain has no route")


def test_listen_addresses():
    b = base(port=2525)
    expect(b + "[listen b]\nrole = fallback\naddress = 127.0.0.2:2525\n",
           "FILE:12: [listen b] address: 127.0.0.2:2525 is already the address of [listen a] "
           "at line 7")
    expect(b + "[listen b]\n", "FILE:10: [listen b] address: missing")
    # The same port on another address is fine.
    rc, out = check_config(b + "[listen b]\naddress = 127.0.0.3:2525\n")
    eq(rc, 0, out)


def test_user_and_group():
    expect(base() + "[node]\n", "FILE:10: [node]: section given twice")
    expect(base().replace("shards = 1\n", "shards = 1\nuser = no-such-user-here\n"),
           "FILE:6: [node] user: no such user \"no-such-user-here\"")
    expect(base().replace("shards = 1\n", "shards = 1\ngroup = nogroup\n"),
           "FILE:6: [node] group: needs [node] user")
    expect(base().replace("shards = 1\n", "shards = 1\nuser = nobody\ngroup = no-such-group\n"),
           "FILE:7: [node] group: no such group \"no-such-group\"")
    expect(base().replace("shards = 1\n", "shards = 1\nuser = root\n"),
           "FILE:6: [node] user: \"root\" is root (uid 0)")
    expect(base().replace("shards = 1\n", "shards = 1\nrun_as_root = maybe\n"),
           "FILE:6: [node] run_as_root: given twice")
    expect(base().replace("run_as_root = yes\n", "run_as_root = maybe\n"),
           "FILE:4: [node] run_as_root: want yes or no, not \"maybe\"")
    expect(base().replace("shards = 1\n", "shards = 1\npid_file = relative.pid\n"),
           "FILE:6: [node] pid_file: bad value \"relative.pid\" (want an absolute path)")


def test_spool_dir_that_cannot_be_made():
    """--check-config finds it (start would only fail later); nothing is created."""
    afile = os.path.join(WORK, "a-file")
    with open(afile, "w") as f:
        f.write("x")
    text = base(spool=os.path.join(afile, "spool"))
    rc, out = check_config(text)
    eq(rc, 2, out)
    check("FILE:3: [node] spool_dir: %s/spool cannot be created: %s is not a directory"
          % (afile, afile) in out, out)
    rc, out = start(text)
    eq(rc, 1, out)
    check("FILE:3: [node] spool_dir: %s/spool: Not a directory" % afile in out, out)
    deep = os.path.join(WORK, "not", "yet", "there")
    rc, out = check_config(base(spool=deep))
    eq(rc, 0, "a spool that can be created: " + out)
    check(not os.path.exists(os.path.join(WORK, "not")), "--check-config created nothing")
    # ... and a start does create it, parents included (not started here: mkdir -p is all).
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return
    # As an unprivileged user: a directory it cannot write, and one it cannot create.
    ro = os.path.join(WORK, "readonly")
    os.makedirs(ro, exist_ok=True)
    os.chmod(ro, 0o755)
    os.chmod(WORK, 0o755)
    text = base(spool=ro)
    p = write(text)
    os.chmod(p, 0o644)
    rc, out = check_config(text, runas=("nobody", "nogroup"))
    eq(rc, 2, out)
    check("FILE:3: [node] spool_dir: %s cannot be written: Permission denied" % ro in out, out)
    rc, out = check_config(base(spool=os.path.join(ro, "sub")), runas=("nobody", "nogroup"))
    eq(rc, 2, out)
    check("FILE:3: [node] spool_dir: %s/sub does not exist and cannot be created in %s: "
          "Permission denied" % (ro, ro) in out, out)
    # As root with a user: the node will own the spool, but the user must get through to it.
    closed = tempfile.mkdtemp(prefix="closed-", dir=WORK)     # 0700, root's
    spool = os.path.join(closed, "spool")
    text = base(spool=spool).replace("run_as_root = yes\n", "user = nobody\n")
    rc, out = check_config(text)
    eq(rc, 2, out)
    check("FILE:3: [node] spool_dir: %s is out of reach of user nobody: %s is closed to it"
          % (spool, closed) in out, out)
    rc, out = start(text)
    eq(rc, 1, out)
    check("spool_dir %s is out of reach of uid 65534" % spool in out, out)
    os.chmod(closed, 0o755)
    rc, out = check_config(text)
    eq(rc, 0, "reachable now: " + out)


def test_check_config_beside_a_running_node():
    """--check-config of the running node's own file: it neither takes the lock nor fails, and
    leaves the spool as it was."""
    n = Node(tls=False).start()
    try:
        before = sorted(os.listdir(n.spool))
        st = os.stat(n.spool)
        r = subprocess.run([NODE, "--config", n.conf_path, "--check-config"], capture_output=True,
                           text=True, timeout=30)
        eq(r.returncode, 0, r.stdout + r.stderr)
        check("a node is running on this spool (pid %d)" % n.proc.pid in r.stdout, r.stdout)
        eq(sorted(os.listdir(n.spool)), before, "the spool's entries")
        eq(os.stat(n.spool).st_mtime_ns, st.st_mtime_ns, "the spool directory was not written")
        check(n.proc.poll() is None, "the node still runs")
    finally:
        eq(n.stop(), 0, "clean stop")
        n.cleanup()


def test_cleanup():
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run_suite("config", globals(), sys.argv[1:]))
