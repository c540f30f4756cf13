#!/usr/bin/python3
"""test_nats_cluster - the cluster's NATS plumbing in network namespaces the test creates.

A hub namespace holds the primary: the hub server (JetStream domain "hub", the mTLS leafnode
listener, the cfg bucket) and the primary's own leaf server on loopback; two leaf namespaces
hold one node each, joined to the hub's namespace by veth pairs on a bridge. Every
configuration and certificate comes from sluice-sync-tool (the CA, CSRs, natsconf), every server
runs under its supervisor (sluice-sync-tool serve), and each node's replica is read by a watcher
(sluice-sync-tool watch: an ordered consumer on CFG feeding cfg_map).

Scenarios: a put on the hub reaches every replica in revision order; a leaf cut off, written to
while cut, its server killed and restarted by its supervisor while cut, converges on heal; a leaf
whose address changes relinks with no configuration change; a certificate from another CA is
refused; a revoked node (removed from the hub's authorization, hub restarted) cannot link.
Skipped, with a SKIP line, only when network namespaces are unavailable.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import sluicetest as st  # noqa: E402

SUITE = "cluster_nats"
TOOL = os.path.join(st.BUILD, "control", "sync", "sluice-sync-tool")
TAG = "snp%d" % (os.getpid() % 100000)
NS = {"hub": TAG + "h", "a": TAG + "a", "b": TAG + "b"}
SUBNET = "10.77.0."
HUB_IP = SUBNET + "1"
LEAF_IP = {"a": SUBNET + "11", "b": SUBNET + "12"}
HUB_PORTS = (4222, 8222)          # client, monitor; in the hub's namespace
LEAF_PORTS = (4223, 8223)         # every node's own leaf server (namespaces do not share ports)
LEAF_LISTEN = 7422
HUB_URL = "tls://%s:%d" % (HUB_IP, LEAF_LISTEN)
# The primary's own leaf reaches the hub on loopback.
LOCAL_HUB_URL = "tls://127.0.0.1:%d" % LEAF_LISTEN
NODES = ("p", "a", "b")           # p: the primary, in the hub's namespace

_work = None
_procs = {}
_hub_revision = [0]


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError("%s: %s%s" % (" ".join(args), r.stdout, r.stderr))
    return r


def nsx(ns, *args, check=True):
    return sh("ip", "netns", "exec", ns, *args, check=check)


def tool(*args, ns=None, check=True):
    cmd = [TOOL] + [str(a) for a in args]
    if ns:
        cmd = ["ip", "netns", "exec", ns] + cmd
    return sh(*cmd, check=check)


def netns_available():
    if os.geteuid() != 0 or not shutil.which("ip"):
        return "needs root and iproute2"
    probe = TAG + "x"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return "ip netns add: " + r.stderr.strip()
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def node_ns(name):
    return NS["hub"] if name == "p" else NS[name]


def path(*parts):
    return os.path.join(_work, *parts)


def make_network():
    for ns in NS.values():
        sh("ip", "netns", "add", ns)
        nsx(ns, "ip", "link", "set", "lo", "up")
        # Pitfall 16: deleting a first address would take the others with it.
        nsx(ns, "sysctl", "-qw", "net.ipv4.conf.all.promote_secondaries=1")
    hub = NS["hub"]
    nsx(hub, "ip", "link", "add", "br0", "type", "bridge")
    nsx(hub, "ip", "addr", "add", HUB_IP + "/24", "dev", "br0")
    nsx(hub, "ip", "link", "set", "br0", "up")
    for leaf in ("a", "b"):
        outer, inner = TAG + leaf + "h", TAG + leaf + "n"
        sh("ip", "link", "add", outer, "type", "veth", "peer", "name", inner)
        sh("ip", "link", "set", outer, "netns", hub)
        sh("ip", "link", "set", inner, "netns", NS[leaf])
        nsx(hub, "ip", "link", "set", outer, "master", "br0", "up")
        nsx(NS[leaf], "ip", "link", "set", inner, "name", "eth0")
        nsx(NS[leaf], "sysctl", "-qw", "net.ipv4.conf.eth0.promote_secondaries=1")
        nsx(NS[leaf], "ip", "addr", "add", LEAF_IP[leaf] + "/24", "dev", "eth0")
        nsx(NS[leaf], "ip", "link", "set", "eth0", "up")


def link(leaf, up):
    """The leaf's port on the hub's bridge: down cuts it off, the leaf keeps its address."""
    nsx(NS["hub"], "ip", "link", "set", TAG + leaf + "h", "up" if up else "down")


def issue(ca, name, hub_addrs=()):
    d = path(name)
    os.makedirs(d, exist_ok=True)
    tool("csr", name, os.path.join(d, "node.key"), os.path.join(d, "node.csr"))
    tool("issue", ca, os.path.join(d, "node.csr"), name, 365, os.path.join(d, "node.crt"),
         *hub_addrs)


def write_hub_conf(authorized):
    args = ["natsconf", "--role", "hub", "--name", "p", "--state", path("hub", "state"),
            "--client-port", HUB_PORTS[0], "--monitor-port", HUB_PORTS[1],
            "--cert", path("p", "node.crt"), "--key", path("p", "node.key"),
            "--ca", path("ca", "ca.crt"), "--listen", "0.0.0.0:%d" % LEAF_LISTEN,
            "--advertise", "%s:%d" % (HUB_IP, LEAF_LISTEN), "--out", path("hub", "nats.conf")]
    for n in authorized:
        args += ["--authorize", n]
    tool(*args)


def write_leaf_conf(name, cert_dir=None, ca_file=None, ports=LEAF_PORTS, conf=None):
    d = path(name)
    cert_dir = cert_dir or d
    hub_url = LOCAL_HUB_URL if name == "p" else HUB_URL
    tool("natsconf", "--role", "leaf", "--name", name, "--state", os.path.join(d, "state"),
         "--client-port", ports[0], "--monitor-port", ports[1],
         "--cert", os.path.join(cert_dir, "node.crt"), "--key", os.path.join(cert_dir, "node.key"),
         "--ca", ca_file or path("ca", "ca.crt"), "--hub", hub_url,
         "--out", conf or os.path.join(d, "nats.conf"))


def spawn(key, ns, args, log):
    out = open(log, "a")
    p = subprocess.Popen(["ip", "netns", "exec", ns, TOOL] + [str(a) for a in args],
                         stdout=out, stderr=subprocess.STDOUT)
    _procs[key] = p
    return p


def serve(key, ns, conf, monitor_port, log):
    p = spawn(key, ns, ["serve", conf, monitor_port], log)
    assert st.wait_for(lambda: "started pid" in read(log) or p.poll() is not None, timeout=20) \
        and p.poll() is None, \
        "%s did not start:\n%s" % (key, read(log)[-2000:])


def stop(key):
    p = _procs.pop(key, None)
    if p and p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def read(f):
    try:
        with open(f, errors="replace") as fh:
            return fh.read()
    except FileNotFoundError:
        return ""


def monitor(ns, port, what):
    r = nsx(ns, "/usr/bin/python3", "-c",
            "import urllib.request,sys;sys.stdout.write(urllib.request.urlopen("
            "'http://127.0.0.1:%d/%s',timeout=2).read().decode())" % (port, what), check=False)
    if r.returncode != 0:
        return None
    return json.loads(r.stdout)


def hub_leaf_ips():
    z = monitor(NS["hub"], HUB_PORTS[1], "leafz")
    return sorted(l["ip"] for l in (z or {}).get("leafs") or [])


def put(key, value):
    rev = int(tool("put", HUB_PORTS[0], key, value, ns=NS["hub"]).stdout.strip())
    assert rev > _hub_revision[0], "revision went from %d to %d" % (_hub_revision[0], rev)
    _hub_revision[0] = rev
    return rev


def change(n, keys):
    """One cluster change: its keys, then v = n (cluster-design.md's publishing order)."""
    for k, v in keys:
        put(k, "# sluice cfg %s version %d\n%s" % (k, n, v))
    return put("v", str(n))


def watch_log(name):
    return path(name, "watch.log")


def watched(name):
    """(revisions seen, versions applied) from a node's watcher."""
    revs, applied = [], []
    for line in read(watch_log(name)).splitlines():
        m = re.match(r"msg (\d+) (\w+) (\S+) (\d+) (\d+)$", line)
        if m:
            revs.append(int(m.group(1)))
        m = re.match(r"apply (\d+) (\d+)$", line)
        if m:
            applied.append(int(m.group(1)))
    return revs, applied


def converged(name, version):
    revs, applied = watched(name)
    return applied and applied[-1] == version and revs and revs[-1] == _hub_revision[0]


def in_order(name):
    revs, _ = watched(name)
    assert revs == sorted(set(revs)), "%s saw revisions out of order or twice: %s" % (name, revs)
    return revs


def setup():
    global _work
    _work = tempfile.mkdtemp(prefix="sluice-cluster-")
    make_network()
    ca = path("ca")
    tool("ca-init", ca)
    # The primary's certificate also names the addresses leaves dial the hub at.
    issue(ca, "p", hub_addrs=(HUB_IP, "127.0.0.1"))
    for n in ("a", "b", "c"):
        issue(ca, n)
    os.makedirs(path("hub", "state"), exist_ok=True)
    # c is authorized: a certificate for it from another CA must fail on the CA alone.
    write_hub_conf(["p", "a", "b", "c"])
    serve("hub", NS["hub"], path("hub", "nats.conf"), HUB_PORTS[1], path("hub", "serve.log"))
    tool("setup-hub", HUB_PORTS[0], ns=NS["hub"])
    for n in NODES:
        write_leaf_conf(n)
        serve(n, node_ns(n), path(n, "nats.conf"), LEAF_PORTS[1], path(n, "serve.log"))
        tool("setup-replica", LEAF_PORTS[0], ns=node_ns(n))
        spawn("watch-" + n, node_ns(n), ["watch", LEAF_PORTS[0], n], watch_log(n))


def teardown():
    for key in list(_procs):
        stop(key)
    for ns in NS.values():
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    if _work and not os.environ.get("SLUICE_KEEP_TMP"):
        shutil.rmtree(_work, ignore_errors=True)


def test_put_reaches_every_replica():
    assert st.wait_for(lambda: len(hub_leaf_ips()) == 3, timeout=30), \
        "leaves linked: %s\n%s" % (hub_leaf_ips(), read(path("hub", "serve.log"))[-3000:])
    change(1, [("domain.example.com", "[domain example.com]\nroute = 10.0.0.5:25"),
               ("global", "[limits]")])
    for n in NODES:
        assert st.wait_for(lambda: converged(n, 1), timeout=30), \
            "%s: %s\n%s" % (n, watched(n), read(watch_log(n))[-2000:])
    seen = [in_order(n) for n in NODES]
    assert seen[0] == seen[1] == seen[2], seen


def test_cut_leaf_restart_and_heal():
    link("a", False)
    change(2, [("domain.cut.example", "[domain cut.example]\nroute = 10.0.0.6:25")])
    assert st.wait_for(lambda: converged("b", 2) and converged("p", 2), timeout=20)
    assert not converged("a", 2)
    before, _ = watched("a")
    # Its server dies while cut off; the supervisor restarts it; the replica is on its disk.
    pid = int(read(path("a", "state", "nats-server.pid")).strip())
    nsx(NS["a"], "kill", "-9", str(pid))
    assert st.wait_for(lambda: "restarted pid" in read(path("a", "serve.log")), timeout=20), \
        read(path("a", "serve.log"))[-2000:]
    assert st.wait_for(lambda: (monitor(NS["a"], LEAF_PORTS[1], "jsz?streams=true") or {})
                       .get("messages", 0) >= len(before), timeout=10)
    change(3, [("domain.cut.example", "[domain cut.example]\nroute = 10.0.0.7:25")])
    time.sleep(1)
    assert not converged("a", 3)
    link("a", True)
    t0 = time.time()
    assert st.wait_for(lambda: converged("a", 3), timeout=45), \
        "a after heal: %s (hub at %d)" % (watched("a"), _hub_revision[0])
    print("  a converged %.1fs after heal" % (time.time() - t0))
    for n in NODES:
        assert converged(n, 3), n
        in_order(n)


def test_leaf_changes_address():
    old, new = LEAF_IP["a"], SUBNET + "21"
    nsx(NS["a"], "ip", "addr", "add", new + "/24", "dev", "eth0")
    nsx(NS["a"], "ip", "addr", "del", old + "/24", "dev", "eth0")
    # Its old link times out (ping_interval 5 s, ping_max 2) and it links from the new address.
    assert st.wait_for(lambda: new in hub_leaf_ips(), timeout=45), hub_leaf_ips()
    change(4, [("domain.moved.example", "[domain moved.example]")])
    assert st.wait_for(lambda: converged("a", 4), timeout=30), watched("a")
    assert old not in hub_leaf_ips()
    in_order("a")


def test_other_ca_refused():
    rogue = path("rogue")
    tool("ca-init", rogue)
    d = path("c-rogue")
    os.makedirs(d)
    tool("csr", "c", os.path.join(d, "node.key"), os.path.join(d, "node.csr"))
    tool("issue", rogue, os.path.join(d, "node.csr"), "c", 365, os.path.join(d, "node.crt"))
    # It trusts the real CA (so it would accept the hub): only the hub can refuse it.
    conf = os.path.join(d, "nats.conf")
    write_leaf_conf("c", cert_dir=d, ports=(4230, 8230), conf=conf)
    links = len(hub_leaf_ips())
    serve("rogue", NS["b"], conf, 8230, os.path.join(d, "serve.log"))
    time.sleep(8)
    log = read(path("hub", "serve.log"))
    stop("rogue")
    assert len(hub_leaf_ips()) == links, hub_leaf_ips()
    assert re.search(r"TLS (leafnode )?handshake error.*(certificate|unknown authority)", log), \
        log[-3000:]


def test_revoked_node_cannot_link():
    serial = tool("serial", path("b", "node.crt")).stdout.strip()
    tool("revoke", path("ca"), serial)
    r = tool("check-revoked", path("ca"), path("b", "node.crt"), check=False)
    assert r.returncode == 1 and "revoked" in r.stdout, r.stdout
    assert tool("check-revoked", path("ca"), path("a", "node.crt"), check=False).returncode == 0
    # nats-server 2.9 reads no CRL on leafnode links: revoking is the hub's authorization
    # without the node, and a restart (a reload keeps existing links, pitfall 14).
    write_hub_conf(["p", "a", "c"])
    _procs["hub"].send_signal(signal.SIGHUP)
    assert st.wait_for(lambda: "restarted pid" in read(path("hub", "serve.log")), timeout=20)
    assert st.wait_for(lambda: len(hub_leaf_ips()) == 2, timeout=30), hub_leaf_ips()
    time.sleep(6)   # b's retries (reconnect 2 s) are refused the whole time
    assert LEAF_IP["b"] not in hub_leaf_ips(), hub_leaf_ips()
    assert "Authorization Violation" in read(path("b", "serve.log")), \
        read(path("b", "serve.log"))[-2000:]
    change(5, [("domain.after.example", "[domain after.example]")])
    assert st.wait_for(lambda: converged("a", 5) and converged("p", 5), timeout=30)
    time.sleep(2)
    _, applied = watched("b")
    assert applied[-1] == 4, applied


def main():
    why = netns_available()
    if why:
        print("SKIP %s: network namespaces unavailable (%s)" % (SUITE, why))
        print("%s: 0 passed, 0 failed" % SUITE)
        return 0
    try:
        setup()
        return st.run_suite(SUITE, globals())
    finally:
        teardown()


if __name__ == "__main__":
    sys.exit(main())
