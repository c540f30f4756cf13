#!/usr/bin/python3
"""test_node_sync - the node side of the cluster (issue 16, item 5): a real sluice-node with a
[cluster] section runs its own nats-server leaf, follows the hub's cfg bucket through its
replica, and serves what the cluster says, on loopback.

The hub is a nats-server under sluice-sync-tool serve with the cfg bucket (setup-hub); the
node's cluster material (node.key, node.crt, ca.crt, hub_urls) is issued by sluice-sync-tool as
sluice-node --join would leave it. Changes go in with sluice-sync-tool put (keys, then v), as
sluice-control's publisher sends them. Mail is real SMTP (smtplib), relayed to aiosmtpd sinks.

Scenarios: a domain put on the hub is accepted (RCPT 250) within a bounded time; a changed route
applies (the next message reaches the new destination); a bad fragment is refused naming its
key while the node keeps serving; the status message reaches the hub; restarted with the hub
stopped (and again with no nats-server at all) the node serves from spool_dir/cluster-config,
and a domain it does not know gets 451 4.7.1 while it is behind, 554 once caught up.

Run: tests/cluster/test_node_sync.py [name-filter ...]
"""
import json
import os
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from test_nats_cluster import _procs, read, stop  # noqa: E402
from sluicetest import (BUILD, NODE, Node, Sink, check, eq, free_port,  # noqa: E402
                        note_sanitizer_reports, run_suite_around, wait_for)

SUITE = "cluster_node_sync"
TOOL = os.path.join(BUILD, "control", "sync", "sluice-sync-tool")
NATS = shutil.which("nats-server") or "/usr/sbin/nats-server"
APPLY_WAIT = 20      # first link and the source's 3-5 s start (NATS.md pitfall 15) included
WAIT = 10
AGENT_STATUS_WAIT = 15   # a status every 5 s, and one after each apply

_work = tempfile.mkdtemp(prefix="sluice-nodesync-")
PORTS = {}
_node = [None]
_sinks = {}
_version = [0]
_timings = []


def path(*parts):
    return os.path.join(_work, *parts)


def tool(*args):
    r = subprocess.run([TOOL] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=30)
    check(r.returncode == 0, "sluice-sync-tool %s: %s%s" % (" ".join(map(str, args)), r.stdout,
                                                             r.stderr))
    return r.stdout


def start_hub():
    log = path("hub", "serve.log")
    mark = len(read(log))
    _procs["hub"] = subprocess.Popen([TOOL, "serve", path("hub", "nats.conf"),
                                      str(PORTS["hub_monitor"])], stdout=open(log, "a"),
                                     stderr=subprocess.STDOUT)
    ok = wait_for(lambda: "started pid" in read(log)[mark:] or _procs["hub"].poll() is not None,
                  timeout=20)
    check(ok and _procs["hub"].poll() is None, "the hub did not start:\n" + read(log)[-2000:])


def put(key, value):
    tool("put", PORTS["hub_client"], key, value)


def change(**keys):
    """One change as the control publishes it: the keys (None deletes), then v."""
    for k, v in keys.items():
        k = k.replace("__", ".")
        if v is None:
            tool("del", PORTS["hub_client"], k)
        else:
            put(k, v)
    _version[0] += 1
    put("v", str(_version[0]))
    return _version[0]


def domain(name, route):
    return "# sluice cfg domain.%s\n[domain %s]\nroute = %s\n" % (name, name, route)


def node_conf(nats_server=NATS):
    return {"node": {"name": "n1", "shards": "1"},
            "cluster": {"dir": path("n1", "cluster"), "nats_server": nats_server,
                        "nats_port": PORTS["leaf_client"],
                        "nats_monitor_port": PORTS["leaf_monitor"]},
            "delivery": {"retry_first": "1s", "retry_flat": "100"}}


def rcpt(addr):
    """(code, text) of RCPT TO:<addr> in a fresh session."""
    s = smtplib.SMTP(*_node[0].primary, timeout=10)
    try:
        s.ehlo("client.test")
        s.mail("sender@client.test")
        code, text = s.rcpt(addr)
        return code, text.decode(errors="replace")
    finally:
        try:
            s.quit()
        except Exception:  # noqa: BLE001 - gone already
            pass


def rcpt_code(addr):
    try:
        return rcpt(addr)[0]
    except (OSError, smtplib.SMTPException):
        return None


def send(rcpt_addr, subject):
    s = smtplib.SMTP(*_node[0].primary, timeout=10)
    try:
        s.ehlo("client.test")
        s.sendmail("sender@client.test", [rcpt_addr],
                   "From: sender@client.test\r\nTo: %s\r\nSubject: %s\r\n\r\nhello\r\n"
                   % (rcpt_addr, subject))
    finally:
        s.quit()


def node_log():
    return _node[0].read_log()


def start_node(conf=None):
    n = _node[0]
    note_sanitizer_reports(n.read_log())   # of the run that just stopped (the ASan build)
    if conf is not None:
        n.sections = n.sections_base.copy()
        for sec, kv in conf.items():
            n.sections[sec] = dict(n.sections_base.get(sec, {}), **kv)
        n.write_conf()
    n.start(timeout=30)


class NatsSub:
    """A core NATS subscriber on the hub's client port, speaking the text protocol itself
    (Debian has no NATS client for Python)."""

    def __init__(self, port, subject):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        self._line()   # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB %s 1\r\nPING\r\n'
                          % subject.encode())
        while self._line() != b"PONG":
            pass

    def _line(self):
        while b"\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise OSError("the hub closed the connection")
            self.buf += data
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def next(self, timeout):
        """(subject, payload bytes) of the next message, or None."""
        self.sock.settimeout(timeout)
        deadline = time.time() + timeout
        try:
            while time.time() < deadline:
                line = self._line()
                if line == b"PING":
                    self.sock.sendall(b"PONG\r\n")
                    continue
                if not line.startswith(b"MSG "):
                    continue
                parts = line.split()
                size = int(parts[-1])
                while len(self.buf) < size + 2:
                    self.buf += self.sock.recv(65536)
                payload, self.buf = self.buf[:size], self.buf[size + 2:]
                return parts[1].decode(), payload
        except socket.timeout:
            return None
        return None

    def close(self):
        self.sock.close()


def setup():
    for k in ("hub_client", "hub_monitor", "leafnode", "leaf_client", "leaf_monitor"):
        PORTS[k] = free_port()
    ca = path("ca")
    tool("ca-init", ca)
    os.makedirs(path("p"))
    tool("csr", "p", path("p", "node.key"), path("p", "node.csr"))
    tool("issue", ca, path("p", "node.csr"), "p", 365, path("p", "node.crt"), "127.0.0.1")
    # What sluice-node --join leaves in [cluster] dir.
    cdir = path("n1", "cluster")
    os.makedirs(cdir)
    tool("csr", "n1", os.path.join(cdir, "node.key"), path("n1", "node.csr"))
    tool("issue", ca, path("n1", "node.csr"), "n1", 365, os.path.join(cdir, "node.crt"))
    shutil.copy(path("ca", "ca.crt"), os.path.join(cdir, "ca.crt"))
    with open(os.path.join(cdir, "hub_urls"), "w") as f:
        f.write("# written by sluice-node --join\ntls://127.0.0.1:%d\n" % PORTS["leafnode"])
    os.makedirs(path("hub", "state"))
    tool("natsconf", "--role", "hub", "--name", "p", "--state", path("hub", "state"),
         "--client-port", PORTS["hub_client"], "--monitor-port", PORTS["hub_monitor"],
         "--cert", path("p", "node.crt"), "--key", path("p", "node.key"),
         "--ca", path("ca", "ca.crt"), "--listen", "127.0.0.1:%d" % PORTS["leafnode"],
         "--advertise", "127.0.0.1:%d" % PORTS["leafnode"], "--authorize", "n1",
         "--out", path("hub", "nats.conf"))
    start_hub()
    tool("setup-hub", PORTS["hub_client"])
    for k in ("a", "b"):
        _sinks[k] = Sink().start()
    os.makedirs(path("n1", "node"))
    n = Node(conf=node_conf(), workdir=path("n1", "node"), domains=(), tls=False)
    n.sections_base = {k: dict(v) for k, v in n.sections.items()}
    _node[0] = n
    n.start(timeout=30)


def teardown():
    if _node[0] is not None:
        _node[0].stop()
        note_sanitizer_reports(_node[0].read_log())
    for s in _sinks.values():
        s.cleanup()
    for key in list(_procs):
        stop(key)
    if not os.environ.get("SLUICE_KEEP_TMP"):
        shutil.rmtree(_work, ignore_errors=True)


def test_domain_put_is_accepted():
    # Nothing in the bucket yet: once the node has asked the hub, it is caught up, and a
    # stranger's domain is relaying.
    check(wait_for(lambda: rcpt_code("x@stranger.test") == 554, timeout=APPLY_WAIT),
          "caught up with an empty bucket, a stranger gets 554: %s\n%s"
          % (rcpt("x@stranger.test"), node_log()[-3000:]))
    t0 = time.time()
    v = change(domain__d1__test=domain("d1.test", "127.0.0.1:%d" % _sinks["a"].port))
    check(wait_for(lambda: rcpt_code("u@d1.test") == 250, timeout=APPLY_WAIT, step=0.02),
          "d1.test accepted: %s\n%s" % (rcpt("u@d1.test"), node_log()[-3000:]))
    _timings.append(("put v -> RCPT 250", time.time() - t0))
    # The shard swaps before the agent logs and persists.
    check(wait_for(lambda: "cluster: version %d applied" % v in node_log(), timeout=WAIT),
          node_log()[-2000:])
    saved = read(path("n1", "node", "spool", "cluster-config"))
    check(saved.startswith("# sluice cluster-config version %d parts 1\n" % v), saved)
    check("# part domain.d1.test 3\n" in saved, saved)


def test_changed_route_applies():
    send("u@d1.test", "to a")
    got = _sinks["a"].wait(1, timeout=WAIT)
    eq(len(got), 1, "delivered to the first route")
    t0 = time.time()
    v = change(domain__d1__test=domain("d1.test", "127.0.0.1:%d" % _sinks["b"].port))
    check(wait_for(lambda: "cluster: version %d applied" % v in node_log(), timeout=WAIT,
                   step=0.02), node_log()[-2000:])
    _timings.append(("route change put v -> applied (log)", time.time() - t0))
    send("u@d1.test", "to b")
    got = _sinks["b"].wait(1, timeout=WAIT)
    eq(len(got), 1, "the next message goes to the new route")
    eq(len(_sinks["a"].messages()), 1, "nothing more to the old route")


def test_bad_fragment_is_refused_naming_its_key():
    good = _version[0]
    v = change(domain__bad__test="# from the control\n[domain bad.test]\nroute = 127.0.0.1:9\n"
               "tag_score = lots\n")
    check(wait_for(lambda: "cluster version %d refused" % v in node_log(), timeout=WAIT),
          node_log()[-2000:])
    line = [l for l in node_log().splitlines() if "cluster version %d refused" % v in l][-1]
    check("key domain.bad.test, its line 4:" in line and "tag_score" in line, line)
    eq(rcpt_code("u@d1.test"), 250, "the last good version still serves d1.test")
    # Refused, so the node does not run the hub's version: it is behind, bad.test waits.
    eq(rcpt("u@bad.test")[0], 451, "a domain of the refused version")
    check("cluster: version %d applied" % v not in node_log(), "not applied")
    saved = read(path("n1", "node", "spool", "cluster-config"))
    check(saved.startswith("# sluice cluster-config version %d " % good), saved[:200])
    # The control repairs it: the next version applies whole.
    v = change(domain__bad__test=domain("bad.test", "127.0.0.1:%d" % _sinks["a"].port))
    check(wait_for(lambda: rcpt_code("u@bad.test") == 250, timeout=WAIT), node_log()[-2000:])
    check(wait_for(lambda: rcpt_code("x@stranger.test") == 554, timeout=WAIT), "caught up again")


def rcpt_at(addr, rcpt_addr):
    try:
        s = smtplib.SMTP(*addr, timeout=5)
    except OSError:
        return None
    try:
        s.ehlo("client.test")
        s.mail("sender@client.test")
        return s.rcpt(rcpt_addr)[0]
    finally:
        s.quit()


def test_node_fragment_opens_and_closes_a_listener():
    extra = ("127.0.0.4", free_port())
    v = change(node__n1="# sluice cfg node.n1\n[listen extra]\naddress = %s:%d\nrole = fallback\n"
               % extra)
    check(wait_for(lambda: rcpt_at(extra, "u@d1.test") == 250, timeout=WAIT),
          "version %d's listener serves\n%s" % (v, node_log()[-2000:]))
    eq(rcpt_code("u@d1.test"), 250, "the base file's listener still serves")
    change(node__n1=None)
    check(wait_for(lambda: rcpt_at(extra, "u@d1.test") is None, timeout=WAIT),
          "the listener closed with its fragment")


def test_sighup_reloads_the_file_with_the_cluster_part():
    mark = len(node_log())
    _node[0].hup()
    check(wait_for(lambda: "reloaded cluster version %d" % _version[0] in node_log()[mark:],
                   timeout=WAIT), node_log()[-2000:])
    eq(rcpt_code("u@d1.test"), 250, "the cluster's domains stay after a SIGHUP")
    eq(rcpt_code("x@stranger.test"), 554, "still caught up")


def test_status_reaches_the_hub():
    sub = NatsSub(PORTS["hub_client"], "sluice.node.*.status")
    try:
        msg = sub.next(timeout=12)
        check(msg is not None, "a status message within 12 s")
        subject, payload = msg
        eq(subject, "sluice.node.n1.status")
        st = json.loads(payload)
        eq(st["name"], "n1")
        eq(st["version"], _version[0], "the applied version")
        eq(st["behind"], False)
        check(st["sluice_version"] and st["applied_at"].endswith("Z"), st)
        eq(st["apply_error"], None)
        # After a change the status follows at once, not a period later.
        v = change(domain__d2__test=domain("d2.test", "127.0.0.1:9"))
        t0 = time.time()
        while time.time() - t0 < WAIT:
            m = sub.next(timeout=WAIT)
            if m and json.loads(m[1])["version"] == v:
                break
        else:
            raise AssertionError("no status with version %d" % v)
        _timings.append(("put v -> status with that version at the hub", time.time() - t0))
    finally:
        sub.close()


def test_restart_without_the_hub_serves_the_saved_version():
    eq(_node[0].stop(), 0, "a clean stop")
    stop("hub")
    start_node()
    check("cluster: starting with version %d" % _version[0] in node_log(), node_log()[-2000:])
    eq(rcpt_code("u@d1.test"), 250, "d1.test from spool_dir/cluster-config")
    eq(rcpt_code("u@d2.test"), 250, "d2.test too")
    code, text = rcpt("x@new.test")
    eq(code, 451, "a domain it does not know, while behind: " + text)
    check("4.7.1" in text, text)
    # Still behind a while later: the hub cannot confirm anything.
    time.sleep(3)
    eq(rcpt_code("x@new.test"), 451, "behind while the hub is away")
    # The hub back, a domain added meanwhile... is served, and strangers are relaying again.
    start_hub()
    v = change(domain__new__test=domain("new.test", "127.0.0.1:9"))
    check(wait_for(lambda: rcpt_code("x@new.test") == 250, timeout=APPLY_WAIT + 10),
          "version %d after the hub's return\n%s" % (v, node_log()[-2000:]))
    check(wait_for(lambda: rcpt_code("x@stranger.test") == 554, timeout=WAIT), "caught up")


def test_restart_without_nats_server_serves_the_saved_version():
    eq(_node[0].stop(), 0, "a clean stop")
    start_node(node_conf(nats_server="/nonexistent/nats-server"))
    eq(rcpt_code("x@new.test"), 250, "new.test from spool_dir/cluster-config")
    code, text = rcpt("x@stranger.test")
    eq(code, 451, "behind: no nats-server, so nothing is confirmed: " + text)
    check(wait_for(lambda: "nats-server /nonexistent/nats-server did not start" in node_log(),
                   timeout=WAIT), node_log()[-2000:])
    # Back to a working server: caught up again.
    eq(_node[0].stop(), 0, "a clean stop")
    start_node(node_conf())
    check(wait_for(lambda: rcpt_code("x@stranger.test") == 554, timeout=APPLY_WAIT),
          node_log()[-2000:])


def test_check_config_loads_the_cluster_part():
    # --check-config (and so systemctl reload) checks the file with the cluster's part, as the
    # reload will load them: a base file that clashes with a fragment is refused by its key.
    n = _node[0]
    good = subprocess.run([NODE, "--config", n.conf_path, "--check-config"], capture_output=True,
                          text=True, timeout=30)
    eq(good.returncode, 0, good.stdout + good.stderr)
    check("4 domains" in good.stdout or "5 domains" in good.stdout, good.stdout)
    clash = path("n1", "clash.ini")
    with open(n.conf_path) as f, open(clash, "w") as g:
        g.write(f.read() + "[domain d1.test]\nroute = 127.0.0.1:9\n")
    bad = subprocess.run([NODE, "--config", clash, "--check-config"], capture_output=True,
                         text=True, timeout=30)
    out = bad.stdout + bad.stderr
    eq(bad.returncode, 2, out)
    check("key domain.d1.test, its line 2:" in out and "section given twice" in out, out)


def test_hub_lost_while_running_makes_the_node_behind():
    eq(rcpt_code("x@stranger.test"), 554, "caught up before")
    stop("hub")
    t0 = time.time()
    check(wait_for(lambda: rcpt_code("x@stranger.test") == 451, timeout=20, step=0.2),
          "behind once the hub cannot confirm\n" + node_log()[-2000:])
    _timings.append(("hub stopped -> behind (451)", time.time() - t0))
    eq(rcpt_code("u@d1.test"), 250, "known domains go on")
    start_hub()
    t0 = time.time()
    check(wait_for(lambda: rcpt_code("x@stranger.test") == 554, timeout=APPLY_WAIT + 10,
                   step=0.2), "caught up once the hub is back\n" + node_log()[-2000:])
    _timings.append(("hub restarted -> caught up (554)", time.time() - t0))


def test_apply_latency():
    # From starting the put of `v` (sluice-sync-tool: a process, a connection, the hub's ack:
    # 10-20 ms of it) to the node accepting the new domain: an upper bound of commit -> applied.
    lat = []
    for i in range(40):
        d = "lat%d.test" % i
        put("domain." + d, domain(d, "127.0.0.1:9"))
        _version[0] += 1
        t0 = time.time()
        put("v", str(_version[0]))
        check(wait_for(lambda: rcpt_code("u@" + d) == 250, timeout=WAIT, step=0.001), d)
        lat.append(time.time() - t0)
    lat.sort()
    print("  latencies (ms): " + " ".join("%.0f" % (x * 1000) for x in lat))
    _timings.append(("put v -> RCPT 250, p50 of 40", lat[len(lat) // 2]))
    _timings.append(("put v -> RCPT 250, p90 of 40", lat[len(lat) * 9 // 10]))
    _timings.append(("put v -> RCPT 250, max of 40", lat[-1]))


def test_control_records_the_status():
    # sluice-control on the same hub: its change reaches the node, the node's status reaches its
    # store (control_status.c): the node's applied version and last_seen, end to end.
    sys.path.insert(0, os.path.join(HERE, "..", "control"))
    import test_api  # noqa: E402 - only here: it makes its own work directory
    c = test_api.Control(state=path("control"), extra=["--hub-port", str(PORTS["hub_client"])])
    os.makedirs(path("control"), mode=0o700)
    c.start()
    try:
        c.api("POST", "nodes", {"name": "n1", "site": "lab", "listen": []}, want=201)
        version = c.api("GET", "cluster")["version"]
        check(wait_for(lambda: "cluster: version %d applied" % version in node_log(),
                       timeout=APPLY_WAIT), "the control's version %d on the node\n%s"
              % (version, node_log()[-2000:]))

        def recorded():
            n = c.api("GET", "nodes/n1")
            return n if n.get("applied_version") == version and n.get("last_seen") else None
        n = wait_for(recorded, timeout=AGENT_STATUS_WAIT, step=0.2)
        check(n, "status recorded: %s" % c.api("GET", "nodes/n1"))
        eq(n["health"], "ok", "just seen")
    finally:
        c.stop()
        shutil.rmtree(test_api.WORK, ignore_errors=True)


def test_timings():
    for what, secs in _timings:
        print("  %s: %.0f ms" % (what, secs * 1000))


def main():
    return run_suite_around(SUITE, globals(), setup, teardown)


if __name__ == "__main__":
    sys.exit(main())
