#!/usr/bin/python3
"""run-sync.py - configuration sync: from a committed change (the API call returns) to applied on
every node (the node's snapshot swapped), on loopback.

The cluster: sluice-control (its store, API and hub nats-server, --hub), and --nodes sluice-node
processes joined with `sluicectl node add` + `sluice-node --join`, each with its own nats-server
leaf and [cluster] section. Every process's output is read through a pipe by a thread that stamps
each line as it arrives, so "applied" is the moment the node logs `cluster: version N applied`
(after the swap), to well under a millisecond.

Legs, interleaved change by change (S P S P ...):
  sluice  POST /api/v1/domains on one keep-alive HTTPS connection; from its reply to the last
          node's "applied" line: the whole path (API, SQLite commit with audit and outbox, the
          publisher's KV put, the hub, each leaf's sourced replica, the node's watcher, the one
          parser, the swap)
  nats    the peer: NATS alone on the same servers: a JetStream publish of a key nobody renders
          into the hub's bucket (kept connection), from the hub's ack to the replica message
          reaching a watcher on a node's leaf (`sluice-sync-tool watch`): the floor Sluice's path
          stands on
Then a burst of --burst domain changes back to back: from the first call to every node applied.
And each nats-server's RSS and CPU idle (5 s) and during the burst.

Writes OUT/sync.json and OUT/sync.md with the command. Never asserts a speed.

  bench/run-sync.py --build build [--nodes 2] [--changes 200] [--burst 1000] [--port-base 29000]
                    [--smoke]
"""
import argparse
import http.client
import json
import os
import re
import shlex
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("SLUICE_BUILD_ROOT", "build"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--nodes", type=int, default=2)
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--burst", type=int, default=1000)
    ap.add_argument("--port-base", type=int, default=29000)
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds for one change to apply")
    ap.add_argument("--smoke", action="store_true", help="tiny counts: runs, measures nothing")
    a = ap.parse_args()
    if a.smoke:
        a.changes, a.burst, a.nodes = 5, 20, 1
    a.out = a.out or tempfile.mkdtemp(prefix="sluice-sync-bench-")
    return a


class Lines:
    """A process's output, each line stamped (time.time()) as it arrives; copied to a file."""

    def __init__(self, proc, logpath):
        self.lines, self.cond = [], threading.Condition()
        self.log = open(logpath, "w")
        self.t = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self.t.start()

    def _read(self, f):
        for raw in iter(f.readline, b""):
            now = time.time()
            line = raw.decode(errors="replace").rstrip("\n")
            self.log.write(line + "\n")
            self.log.flush()
            with self.cond:
                self.lines.append((now, line))
                self.cond.notify_all()

    def wait(self, pattern, start=0, timeout=30):
        """(stamp, index) of the first line from index start matching pattern, or None."""
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.lines):
                    if rx.search(self.lines[i][1]):
                        return self.lines[i][0], i
                    i += 1
                left = deadline - time.time()
                if left <= 0:
                    return None
                self.cond.wait(left)


class NatsPub:
    """A JetStream publish on the hub's client port, speaking NATS's text protocol (Debian has no
    NATS client for Python): PUB with a reply inbox, then the server's PubAck on it, as nats.c's
    js_Publish waits for it. One connection, kept."""

    def __init__(self, port):
        import socket
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""
        self._line()   # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":false}\r\n'
                          b"SUB _INBOX.bench 1\r\nPING\r\n")
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

    def put(self, subject, payload):
        self.sock.sendall(b"PUB %s _INBOX.bench %d\r\n%s\r\n" % (subject.encode(), len(payload),
                                                                  payload))
        while True:
            line = self._line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG "):
                size = int(line.split()[-1])
                while len(self.buf) < size + 2:
                    self.buf += self.sock.recv(65536)
                ack, self.buf = self.buf[:size], self.buf[size + 2:]
                if b'"error"' in ack:
                    raise RuntimeError("publish refused: %s" % ack)
                return


class Bench:
    def __init__(self, a):
        self.a, self.procs, self.out = a, [], a.out
        b = a.build
        self.control = os.path.join(b, "control", "sluice-control")
        self.ctl = os.path.join(b, "control", "cli", "sluicectl")
        self.node = os.path.join(b, "dataplane", "sluice-node")
        self.tool = os.path.join(b, "control", "sync", "sluice-sync-tool")
        pb = a.port_base
        self.ports = {"api": pb, "hub_client": pb + 1, "hub_monitor": pb + 2, "leafnode": pb + 3}
        self.token = None

    def path(self, *p):
        return os.path.join(self.out, *p)

    def spawn(self, args, log, stdin=None):
        p = subprocess.Popen([str(x) for x in args], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT,
                             stdin=subprocess.PIPE if stdin else subprocess.DEVNULL)
        if stdin:
            p.stdin.write(stdin.encode())
            p.stdin.close()
        self.procs.append(p)
        return p, Lines(p, self.path(log))

    def ctl_run(self, *args):
        r = subprocess.run([self.ctl, "--control", "https://127.0.0.1:%d" % self.ports["api"],
                            "--ca", self.path("control", "control.crt")] + list(args),
                           capture_output=True, text=True, timeout=60,
                           env=dict(os.environ, SLUICE_TOKEN=self.token))
        if r.returncode != 0:
            raise RuntimeError("sluicectl %s: %s%s" % (" ".join(args), r.stdout, r.stderr))
        return r.stdout

    def start(self):
        os.makedirs(self.path("control"), mode=0o700)
        p = self.ports
        proc, self.control_lines = self.spawn(
            [self.control, "--state", self.path("control"), "--listen",
             "127.0.0.1:%d" % p["api"], "--init-admin", "admin", "--hub-port", p["hub_client"],
             "--hub", "127.0.0.1:%d" % p["leafnode"], "--hub-monitor", p["hub_monitor"],
             "--node", "n0", "--rate", "100000", "--burst", "100000"],   # no 429 in the burst
            "control.log", stdin="bench-password\n")
        got = self.control_lines.wait(r"^token: ", timeout=20)
        if got is None:
            raise RuntimeError("sluice-control did not start")
        self.token = self.control_lines.lines[got[1]][1].split()[1]
        # The token is printed before the API listens: wait until it answers.
        for _ in range(200):
            try:
                self.ctl_run("cluster", "status")
                break
            except RuntimeError:
                time.sleep(0.05)
        self.ctl_run("cluster", "init")
        self.node_lines = []
        for i in range(self.a.nodes):
            name = "n%d" % i
            out = self.ctl_run("node", "add", name, "--site", "s%d" % i)
            token = re.search(r"^\s+(\S+\.\S+\.\S+)$", out, re.M).group(1)
            d = self.path(name)
            os.makedirs(d)
            subprocess.run([self.node, "--join", token, "--control",
                            "127.0.0.1:%d" % p["api"], "--cluster-dir", os.path.join(d, "cluster")],
                           check=True, capture_output=True, timeout=60)
            base = self.a.port_base + 10 + 10 * i
            with open(os.path.join(d, "node.ini"), "w") as f:
                f.write("[node]\nname = %s\nhostname = %s.bench.test\nspool_dir = %s/spool\n"
                        "run_as_root = yes\nshards = 1\n\n[cluster]\ndir = %s/cluster\n"
                        "nats_port = %d\nnats_monitor_port = %d\n\n[listen primary]\n"
                        "address = 127.0.0.1:%d\nrole = primary\n"
                        % (name, name, d, d, base, base + 1, base + 2))
            self.node_ports = getattr(self, "node_ports", []) + [base]
            _, lines = self.spawn([self.node, "--config", os.path.join(d, "node.ini")],
                                  name + ".log")
            if lines.wait(r"cluster: watching the replica", timeout=60) is None:
                raise RuntimeError("%s does not watch its replica: see %s" % (name, d))
            self.node_lines.append(lines)
        # The peer's watcher, on the first node's leaf: NATS's own replication, same servers.
        _, self.watch = self.spawn([self.tool, "watch", self.node_ports[0], "bench-peer"],
                                   "peer-watch.log")
        self.http = None
        self.nats = None

    def api_post(self, path, body):
        if self.http is None:
            ctx = ssl.create_default_context(cafile=self.path("control", "control.crt"))
            self.http = http.client.HTTPSConnection("127.0.0.1", self.ports["api"], context=ctx,
                                                    timeout=30)
        self.http.request("POST", "/api/v1/" + path, body=json.dumps(body),
                          headers={"Authorization": "Bearer " + self.token,
                                   "Content-Type": "application/json"})
        r = self.http.getresponse()
        r.read()
        if r.status != 201:
            raise RuntimeError("POST %s: %d" % (path, r.status))

    def version(self):
        out = self.ctl_run("--json", "cluster", "status")
        return int(re.search(r'"version":\s*(\d+)', out).group(1))

    def applied_all(self, version, marks, timeout):
        """The last node's stamp for version applied, or None."""
        last = 0.0
        for lines, mark in zip(self.node_lines, marks):
            got = lines.wait(r"cluster: version %d applied" % version, start=mark, timeout=timeout)
            if got is None:
                return None
            last = max(last, got[0])
        return last

    def marks(self):
        return [len(x.lines) for x in self.node_lines]

    def sluice_change(self, k, version):
        marks = self.marks()
        self.api_post("domains", {"name": "s%d.bench.test" % k, "route": "127.0.0.1:9"})
        t0 = time.time()
        t1 = self.applied_all(version, marks, self.a.timeout)
        return None if t1 is None else (t1 - t0) * 1000

    def peer_change(self, k):
        if self.nats is None:
            self.nats = NatsPub(self.ports["hub_client"])
        mark = len(self.watch.lines)
        key = "bench.peer.%d" % k
        self.nats.put("$KV.cfg." + key, b"x" * 200)
        t0 = time.time()
        got = self.watch.wait(r"^msg \d+ put %s " % re.escape(key), start=mark,
                              timeout=self.a.timeout)
        return None if got is None else (got[0] - t0) * 1000

    def nats_pids(self):
        r = subprocess.run(["pgrep", "-f", "nats-server.*%s" % re.escape(self.out)],
                           capture_output=True, text=True)
        return [int(x) for x in r.stdout.split()]

    @staticmethod
    def proc_usage(pid):
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
        fields = st[st.rindex(")") + 2:].split()
        cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
        with open("/proc/%d/status" % pid) as f:
            rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) * 1024
        return cpu, rss

    def usage(self):
        out = {}
        for pid in self.nats_pids():
            try:
                out[pid] = self.proc_usage(pid)
            except OSError:
                pass
        return out

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else None


def summary(xs):
    return {"n": len(xs), "p50_ms": pct(xs, 0.5), "p99_ms": pct(xs, 0.99),
            "max_ms": max(xs) if xs else None, "mean_ms": statistics.mean(xs) if xs else None}


def main():
    a = parse()
    b = Bench(a)
    res = {"nodes": a.nodes}
    try:
        b.start()
        time.sleep(2)
        u0 = b.usage()
        time.sleep(5)
        u1 = b.usage()
        res["nats_idle"] = [{"pid": p, "rss_bytes": u1[p][1],
                             "cpu_percent": (u1[p][0] - u0[p][0]) / 5 * 100}
                            for p in u1 if p in u0]
        version = b.version()
        sluice, peer = [], []
        for k in range(a.changes):
            version += 1
            ms = b.sluice_change(k, version)
            if ms is None:
                raise RuntimeError("version %d was not applied on every node" % version)
            sluice.append(ms)
            ms = b.peer_change(k)
            if ms is None:
                raise RuntimeError("the peer's put %d did not reach the replica" % k)
            peer.append(ms)
        res["single"] = {"sluice": summary(sluice), "nats": summary(peer)}
        res["single"]["ratio_p50"] = res["single"]["sluice"]["p50_ms"] / res["single"]["nats"]["p50_ms"]
        res["single"]["ratio_p99"] = res["single"]["sluice"]["p99_ms"] / res["single"]["nats"]["p99_ms"]
        marks = b.marks()
        u0 = b.usage()
        t0 = time.time()
        for k in range(a.burst):
            b.api_post("domains", {"name": "burst%d.bench.test" % k, "route": "127.0.0.1:9"})
        t_calls = time.time()
        last = b.applied_all(version + a.burst, marks, 120)
        u1 = b.usage()
        if last is None:
            raise RuntimeError("the burst's last version was not applied on every node")
        res["burst"] = {"changes": a.burst, "calls_s": t_calls - t0, "applied_s": last - t0,
                        "after_last_call_ms": (last - t_calls) * 1000}
        res["nats_burst"] = [{"pid": p, "rss_bytes": u1[p][1],
                              "cpu_s": u1[p][0] - u0[p][0]} for p in u1 if p in u0]
    finally:
        b.stop()
    cmd = "bench/run-sync.py " + " ".join(shlex.quote(x) for x in sys.argv[1:])
    res["command"] = cmd
    with open(os.path.join(a.out, "sync.json"), "w") as f:
        json.dump(res, f, indent=2)
    s, n = res["single"]["sluice"], res["single"]["nats"]
    md = ["# Configuration sync: API return -> applied on every node (%d nodes, loopback)\n" % a.nodes,
          "Reproduce: `%s`\n" % cmd,
          "| leg | changes | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|",
          "| sluice (API -> every node's swap) | %d | %.2f | %.2f | %.2f |"
          % (s["n"], s["p50_ms"], s["p99_ms"], s["max_ms"]),
          "| nats (put ack -> replica message) | %d | %.2f | %.2f | %.2f |"
          % (n["n"], n["p50_ms"], n["p99_ms"], n["max_ms"]),
          "\nratio sluice/nats: p50 %.2f, p99 %.2f\n" % (res["single"]["ratio_p50"],
                                                       res["single"]["ratio_p99"]),
          "burst of %d domain changes: calls %.2f s, applied on every node %.2f s after the "
          "first call (%.0f ms after the last)\n" % (a.burst, res["burst"]["calls_s"],
                                                   res["burst"]["applied_s"],
                                                   res["burst"]["after_last_call_ms"])]
    md.append("| nats-server | RSS idle MB | CPU idle % | RSS after burst MB | CPU in burst s |")
    md.append("|---|---|---|---|---|")
    idle = {x["pid"]: x for x in res["nats_idle"]}
    for x in res["nats_burst"]:
        i = idle.get(x["pid"], {})
        md.append("| %d | %.1f | %.2f | %.1f | %.2f |" % (x["pid"], i.get("rss_bytes", 0) / 1e6,
                                                         i.get("cpu_percent", 0),
                                                         x["rss_bytes"] / 1e6, x["cpu_s"]))
    with open(os.path.join(a.out, "sync.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    print("written: %s/sync.json, sync.md" % a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
