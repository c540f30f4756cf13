#!/usr/bin/python3
"""sluice-control's publisher (issue 16, item 1): the outbox reaches the hub's KV bucket and, by
the leaf's source, a node's replica, in order, keys before `v`; a change made while the hub is
down waits in the store (the API still answers) and goes out when it is back, also after a
restart of sluice-control; a domain deleted becomes a delete marker, then `v`.

On loopback only: a hub nats-server and one leaf nats-server (configurations, certificates and
supervision from sluice-sync-tool), a watcher on the leaf's replica, and sluice-control with
--hub-port. Every wait is bounded; a source starts 3-5 s after its leaf link comes up (NATS.md
pitfall 15), so waits after the hub's restart allow for it.

Run: tests/control/test_publish.py [name-filter ...]
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "cluster"))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
import test_api  # noqa: E402
# The cluster suite's process registry and helpers (it spawns in namespaces; these run on
# loopback, so only spawn is ours).
from test_nats_cluster import _procs, read, stop  # noqa: E402
from sluicetest import BUILD, check, eq, free_port, run_suite_around, wait_for  # noqa: E402

SUITE = "control_publish"
TOOL = os.path.join(BUILD, "control", "sync", "sluice-sync-tool")
WAIT = 10            # a change reaching the replica with everything up
WAIT_RELINK = 20     # after the hub's restart: reconnect, relink, the source's 3-5 s

_work = tempfile.mkdtemp(prefix="sluice-publish-")
PORTS = {}
_control = [None]


def path(*parts):
    return os.path.join(_work, *parts)


def tool(*args):
    r = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True, timeout=30)
    check(r.returncode == 0, "sluice-sync-tool %s: %s%s" % (" ".join(map(str, args)), r.stdout,
                                                             r.stderr))
    return r.stdout


def spawn(key, args, log):
    _procs[key] = subprocess.Popen([TOOL] + [str(a) for a in args], stdout=open(log, "a"),
                                   stderr=subprocess.STDOUT)


def serve(key, conf, monitor_port):
    log = path(key, "serve.log")
    start = len(read(log))
    spawn(key, ["serve", conf, monitor_port], log)
    ok = wait_for(lambda: "started pid" in read(log)[start:] or _procs[key].poll() is not None,
                  timeout=20)
    check(ok and _procs[key].poll() is None, "%s did not start:\n%s" % (key, read(log)[-2000:]))


def start_hub():
    serve("hub", path("hub", "nats.conf"), PORTS["hub_monitor"])


def stop_hub():
    stop("hub")


def watched():
    """The replica as the watcher saw it: [(op, key)] in order, and the versions applied."""
    msgs, applied = [], []
    for line in read(path("a", "watch.log")).splitlines():
        m = re.match(r"msg \d+ (\w+) (\S+) \d+ \d+$", line)
        if m:
            msgs.append((m.group(1), m.group(2)))
        m = re.match(r"apply (\d+) \d+$", line)
        if m:
            applied.append(int(m.group(1)))
    return msgs, applied


def applied(version, timeout):
    return wait_for(lambda: version in watched()[1], timeout=timeout)


def cluster():
    return _control[0].api("GET", "cluster")


def control_start():
    os.makedirs(path("control"), mode=0o700, exist_ok=True)
    c = test_api.Control(state=path("control"), extra=["--hub-port", str(PORTS["hub_client"])])
    c.start()
    if _control[0] is not None:   # a restart: the first start's token still holds
        c.token = _control[0].token
    _control[0] = c
    return c


def ctl_ok(*args):
    rc, out, err = _control[0].ctl(*args)
    eq(rc, 0, "sluicectl %s: %s%s" % (" ".join(args), out, err))


def add_domain(name):
    ctl_ok("domain", "add", name, "--route", "10.0.0.5:25")


def since(mark):
    return watched()[0][mark:]


def setup():
    for k in ("hub_client", "hub_monitor", "leafnode", "leaf_client", "leaf_monitor"):
        PORTS[k] = free_port()
    ca = path("ca")
    tool("ca-init", ca)
    for name, hub_addrs in (("p", ["127.0.0.1"]), ("a", [])):
        os.makedirs(path(name), exist_ok=True)
        tool("csr", name, path(name, "node.key"), path(name, "node.csr"))
        tool("issue", ca, path(name, "node.csr"), name, 365, path(name, "node.crt"), *hub_addrs)
    os.makedirs(path("hub", "state"), exist_ok=True)
    tool("natsconf", "--role", "hub", "--name", "p", "--state", path("hub", "state"),
         "--client-port", PORTS["hub_client"], "--monitor-port", PORTS["hub_monitor"],
         "--cert", path("p", "node.crt"), "--key", path("p", "node.key"),
         "--ca", path("ca", "ca.crt"), "--listen", "127.0.0.1:%d" % PORTS["leafnode"],
         "--advertise", "127.0.0.1:%d" % PORTS["leafnode"], "--authorize", "p",
         "--authorize", "a", "--out", path("hub", "nats.conf"))
    tool("natsconf", "--role", "leaf", "--name", "a", "--state", path("a", "state"),
         "--client-port", PORTS["leaf_client"], "--monitor-port", PORTS["leaf_monitor"],
         "--cert", path("a", "node.crt"), "--key", path("a", "node.key"),
         "--ca", path("ca", "ca.crt"), "--hub", "tls://127.0.0.1:%d" % PORTS["leafnode"],
         "--out", path("a", "nats.conf"))
    start_hub()
    tool("setup-hub", PORTS["hub_client"])
    serve("a", path("a", "nats.conf"), PORTS["leaf_monitor"])
    tool("setup-replica", PORTS["leaf_client"])
    spawn("watch", ["watch", PORTS["leaf_client"], "a", path("a", "applied.ini")],
          path("a", "watch.log"))
    control_start()


def teardown():
    if _control[0] is not None:
        _control[0].stop()
    for key in list(_procs):
        stop(key)
    shutil.rmtree(test_api.WORK, ignore_errors=True)
    if not os.environ.get("SLUICE_KEEP_TMP"):
        shutil.rmtree(_work, ignore_errors=True)


def test_domain_add_reaches_the_replica():
    mark = len(watched()[0])
    add_domain("one.example")
    version = cluster()["version"]
    check(applied(version, WAIT), "version %d not applied on the leaf: %s" % (version, watched()))
    eq(since(mark), [("put", "domain.one.example"), ("put", "v")], "the key, then v")
    conf = read(path("a", "applied.ini"))
    check("# sluice cfg domain.one.example version %d\n" % version in conf, conf)
    check("10.0.0.5:25" in conf, conf)
    got = cluster()
    eq(got["outbox_pending"], 0, "outbox drained")
    eq(got["published_version"], version, "published_version")


def test_hub_down_changes_wait_then_arrive_in_order():
    mark = len(watched()[0])
    stop_hub()
    add_domain("two.example")
    ctl_ok("domain", "add", "three.example", "--route", "10.0.0.6:25")
    got = cluster()
    check(got["outbox_pending"] > 0, "rows wait while the hub is down: %s" % got)
    check(got["published_version"] < got["version"], "not published yet: %s" % got)
    version = got["version"]
    start_hub()
    check(applied(version, WAIT_RELINK), "version %d not applied after the hub came back: %s"
          % (version, watched()))
    eq(since(mark), [("put", "domain.two.example"), ("put", "v"),
                     ("put", "domain.three.example"), ("put", "v")], "both, in order")
    check(wait_for(lambda: cluster()["outbox_pending"] == 0, timeout=WAIT), "outbox drained")
    eq(cluster()["published_version"], version, "published_version")


def test_retried_from_the_store_after_a_restart():
    mark = len(watched()[0])
    stop_hub()
    add_domain("four.example")
    version = cluster()["version"]
    _control[0].stop()
    control_start()
    check(cluster()["outbox_pending"] > 0, "the change is still in the outbox")
    start_hub()
    check(applied(version, WAIT_RELINK), "version %d not applied after the restart: %s"
          % (version, watched()))
    eq(since(mark), [("put", "domain.four.example"), ("put", "v")], "published once in order")
    check(wait_for(lambda: cluster()["outbox_pending"] == 0, timeout=WAIT), "outbox drained")


def test_domain_delete_is_a_delete_marker_then_v():
    mark = len(watched()[0])
    ctl_ok("domain", "delete", "one.example")
    version = cluster()["version"]
    check(applied(version, WAIT), "version %d not applied: %s" % (version, watched()))
    eq(since(mark), [("del", "domain.one.example"), ("put", "v")], "delete marker, then v")
    check("domain.one.example" not in read(path("a", "applied.ini")), "gone from the replica")
    eq(cluster()["published_version"], version, "published_version")


def main():
    return run_suite_around(SUITE, globals(), setup, teardown)


if __name__ == "__main__":
    sys.exit(main())
