#!/usr/bin/python3
"""run-relay.py - relay end to end: client -> relay -> sink, messages delivered per second.

Relays (loopback, high ports, private directories under --out), each relaying the domain
bench.test to its own sink:
  sluice         sluice-node with `[domain bench.test] route = 127.0.0.1:SINKPORT`: spooled
                 with group commit (fsync) before the 250, then delivered by its relay client
  sluice+filter  the same with the content filter on (`[node] rules_dir` = the shipped rules,
                 patterns/rules/*.cf, compiled once into OUT/db-rules by sluice-rules, or the
                 databases in --rules-db, e.g. SpamAssassin's as `sluice-rules update` writes
                 them: the default rule set); --filter
  postfix        a private Postfix as the same relay: relay_domains = bench.test, transport_maps
                 to smtp:[127.0.0.1]:SINKPORT, its queue fsynced, default settings otherwise
Sink: `sluice-load sink --record FILE`, started afresh for every leg on the relay's sink port;
a message has arrived when its record line is written (the sink answers 250 after writing it).
Clients: sluice-load (the measure; its report gives end of DATA -> 250 at the relay) and
Postfix's smtp-source (the cross-check). Rounds are interleaved (S P [F] S P [F] ...).

Per leg: messages delivered at the sink (the leg ends when all the relay accepted have arrived
or --timeout seconds after the client finished), end-to-end messages/s (client start to the last
arrival, polled every 2 ms), the relay's CPU per message (utime+stime of its whole process tree
from /proc, before the client starts and 0.3 s after the last arrival, so post-delivery clean-up
is counted), and sluice-load's p50/p99 end of DATA -> 250. The report gives medians over rounds
and the ratios sluice/postfix. A relay that accepts but does not deliver is reported as "did not
deliver", not a crash.

Writes OUT/relay.json, OUT/relay.md (with the command that reproduces each figure) and
OUT/relay-*.png (gnuplot). Exit status: 0 when every leg delivered every accepted message,
1 otherwise. Never asserts a speed.

  bench/run-relay.py --build /tmp/build-bench [--rounds 3] [--messages 2000] [--filter] [--smoke]
                     [--base-build DIR]   (an older build as one more relay, sluice-base)
"""
import argparse
import datetime
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "peers"))
import peers  # noqa: E402


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("SLUICE_BUILD_ROOT", "/tmp/build-bench"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--per-conn", type=int, default=100,
                    help="messages per connection (sluice-load; smtp-source keeps its sessions)")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--relays", default="sluice,postfix")
    ap.add_argument("--base-build", default=None,
                    help="another build of Sluice (e.g. before a redesign): its sluice-node runs "
                         "as the relay sluice-base in the same rounds")
    ap.add_argument("--clients", default="sluice-load,smtp-source")
    ap.add_argument("--filter", action="store_true",
                    help="also run sluice+filter (the shipped rules, compiled once into OUT)")
    ap.add_argument("--rules-db", default=None,
                    help="compiled rules for sluice+filter instead of the shipped set (a directory "
                         "sluice-rules compile or update wrote)")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds to wait for arrivals after the client finished")
    ap.add_argument("--warmup", type=int, default=200,
                    help="messages through each relay before the rounds (not measured)")
    ap.add_argument("--port-base", type=int, default=25260)
    ap.add_argument("--smoke", action="store_true",
                    help="tiny counts: checks that the scenario runs, measures nothing")
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.rounds, a.messages, a.per_conn, a.timeout, a.warmup = 1, 100, 20, 60.0, 20
    if a.out is None:
        a.out = "/tmp/sluice-relay-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return a


class ArrivalCounter:
    """Counts record lines of a sink as they are written, reading only what is new."""

    def __init__(self, path):
        self.path, self.f, self.n = path, None, 0

    def count(self):
        if self.f is None:
            try:
                self.f = open(self.path, "rb")
            except OSError:
                return 0
        while True:
            chunk = self.f.read(1 << 16)
            if not chunk:
                return self.n
            self.n += chunk.count(b"\n")

    def close(self):
        if self.f:
            self.f.close()


def client_cmd(args, exe_load, client, relay, tag, js, messages):
    if client == "sluice-load":
        return [exe_load, "--server", f"{relay.host}:{relay.port}", "-c", str(args.concurrency),
                "-n", str(messages), "-m", str(args.per_conn), "-s", str(args.size),
                "--id-prefix", tag, "--json", js, "-q"]
    exe = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    # -s sessions, -m messages, -l payload bytes, -d keep the connection for the next message.
    return [exe, "-s", str(args.concurrency), "-m", str(messages), "-l", str(args.size),
            "-d", "-f", "load@sluice-load.test", "-t", "rcpt0@bench.test",
            "-M", "source.bench.test", f"{relay.host}:{relay.port}"]


def run_leg(args, exe_load, relay, client, rnd, messages=None):
    messages = messages or args.messages
    tag = f"{'r' if isinstance(rnd, int) else ''}{rnd}-{relay.name.replace('+', '-')}-{client}"
    rec = os.path.join(args.out, f"sink-{tag}.rec")
    js = os.path.join(args.out, f"load-{tag}.json")
    for p in (rec, js):
        if os.path.exists(p):
            os.unlink(p)
    sink = peers.LoadSink(exe_load, args.out, "127.0.0.1", relay.sink_port)
    relay.reset()
    start_sink(sink, rec)
    counter = ArrivalCounter(rec)
    cmd = client_cmd(args, exe_load, client, relay, tag, js, messages)
    err = open(os.path.join(args.out, f"client-{tag}.err"), "w+")
    try:
        cpu0 = relay.cpu()
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        expected, t_last, deadline, t_client = messages, None, None, None
        while True:
            n = counter.count()
            now = time.monotonic()
            if n >= expected and t_last is None:
                t_last = now
            if t_client is None and proc.poll() is not None:
                t_client = now
                deadline = now + args.timeout
                if client == "sluice-load":
                    expected = readjson(js).get("messages_ok", 0)
                else:   # smtp-source reports nothing per message: all or an error
                    expected = messages if proc.returncode == 0 else n
                if n >= expected:
                    t_last = t_last or now
            if t_client is not None and (n >= expected or now > deadline):
                break
            if t_client is None and now - t0 > 1800:
                proc.kill()
            time.sleep(0.002)
        # The relay may still be finishing (removing queue files, QUIT): count that CPU too.
        time.sleep(0.3)
        cpu1 = relay.cpu()
        delivered = counter.count()
    finally:
        counter.close()
        sink.stop()
        err.seek(0)
        errtext = err.read()[-300:]
        err.close()
    j = readjson(js) if client == "sluice-load" else {}
    lat = (j.get("latency_ms") or {}).get("data_to_250") or {}
    if delivered >= expected and expected > 0:
        status = "ok"
    elif delivered == 0 and expected > 0:
        status = "did not deliver"
    else:
        status = f"delivered {delivered} of {expected}"
    if proc.returncode != 0:
        status = f"client exit {proc.returncode}; {status}"
    wall = (t_last - t0) if t_last is not None and delivered else None
    res = {"round": rnd, "relay": relay.name, "client": client, "cmd": cmd, "rc": proc.returncode,
           "sent": messages, "accepted": expected, "delivered": delivered, "status": status,
           "client_s": t_client - t0, "e2e_s": wall,
           "e2e_msgs_per_s": delivered / wall if wall else None,
           "accept_msgs_per_s": j.get("msgs_per_s") if j else
           (expected / (t_client - t0) if t_client > t0 else None),
           "cpu_s": cpu1 - cpu0,
           "cpu_us_per_msg": (cpu1 - cpu0) * 1e6 / delivered if delivered else None,
           "data_to_250_ms": {"p50": lat.get("p50"), "p99": lat.get("p99")} if lat else None,
           "replies": j.get("replies"), "stderr": errtext}
    return res


def start_sink(sink, rec):
    """sluice-load sink with a record file (peers.LoadSink does not take one)."""
    peers.claim_port(sink.host, sink.port)
    sink.log = open(os.path.join(sink.workdir, "load-sink.log"), "a")
    sink.proc = subprocess.Popen([sink.exe, "sink", "--listen", f"{sink.host}:{sink.port}",
                                  "-t", "1", "--record", rec, "-q"], stdout=sink.log,
                                 stderr=sink.log)
    if not peers.wait_port(sink.host, sink.port, 10, sink.proc):
        raise RuntimeError("sluice-load sink did not start")


def readjson(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(x, nd=1):
    return "n/a" if x is None else f"{x:,.{nd}f}"


def main():
    args = parse()
    os.makedirs(args.out, exist_ok=True)
    os.chmod(args.out, 0o755)   # Postfix's processes (user postfix) must reach their queue
    exe_load = os.path.join(args.build, "bench", "sluice-load")
    exe_node = os.path.join(args.build, "dataplane", "sluice-node")
    exe_rules = os.path.join(args.build, "patterns", "sluice-rules")
    if not os.access(exe_load, os.X_OK):
        sys.exit(f"run-relay: no {exe_load}; build first (ninja -C {args.build})")
    want = [s.strip() for s in args.relays.split(",") if s.strip()]
    if args.filter and "sluice+filter" not in want:
        want.insert(want.index("sluice") + 1 if "sluice" in want else 0, "sluice+filter")
    if args.base_build and "sluice-base" not in want:
        want.insert(want.index("sluice") + 1 if "sluice" in want else 0, "sluice-base")
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    pb = args.port_base
    unavailable = {}
    db = None
    if "sluice+filter" in want and args.rules_db:
        db = os.path.abspath(args.rules_db)
    elif "sluice+filter" in want:
        db = os.path.join(args.out, "db-rules")
        shutil.rmtree(db, ignore_errors=True)
        rule_dir = os.path.join(ROOT, "patterns", "rules")
        cfs = sorted(os.path.join(rule_dir, x) for x in os.listdir(rule_dir) if x.endswith(".cf"))
        r = subprocess.run([exe_rules, "compile", "-o", db] + cfs, capture_output=True, text=True)
        if r.returncode != 0:
            unavailable["sluice+filter"] = f"sluice-rules compile failed: {r.stderr[-300:]}"
            want.remove("sluice+filter")
    catalogue = {
        "sluice": lambda: peers.SluiceRelay(exe_node, args.out, "127.0.0.2", pb, args.shards,
                                            route=f"127.0.0.1:{pb + 3}"),
        "sluice+filter": lambda: peers.SluiceRelay(exe_node, args.out, "127.0.0.2", pb + 1,
                                                   args.shards, route=f"127.0.0.1:{pb + 4}",
                                                   rules_dir=db, name="sluice+filter"),
        "postfix": lambda: peers.PostfixRelay(args.out, "127.0.0.1", pb + 2,
                                              sink_port=pb + 5),
        "sluice-base": lambda: peers.SluiceRelay(
            os.path.join(args.base_build or "", "dataplane", "sluice-node"), args.out,
            "127.0.0.3", pb + 6, args.shards, route=f"127.0.0.1:{pb + 7}", name="sluice-base"),
    }
    sink_ports = {"sluice": pb + 3, "sluice+filter": pb + 4, "postfix": pb + 5,
                  "sluice-base": pb + 7}
    relays = []
    for name in want:
        p = catalogue[name]()
        p.sink_port = sink_ports[name]
        try:
            p.start()
            relays.append(p)
            print(f"started {name} on {p.host}:{p.port} (pid {p.pid()}), sink 127.0.0.1:"
                  f"{p.sink_port}", flush=True)
        except Exception as e:  # a leg that cannot run is reported, not fatal
            unavailable[name] = str(e)
            print(f"skipping {name}: {e}", flush=True)

    runs = []
    try:
        # Warm-up: Postfix forks its smtpd/cleanup/smtp processes on demand, and the first
        # connections of any relay pay for cold caches; none of it is measured.
        if args.warmup > 0:
            for p in relays:
                try:
                    w = run_leg(args, exe_load, p, "sluice-load", "warmup", args.warmup)
                    print(f"warm-up {p.name}: {w['status']}", flush=True)
                except Exception as e:
                    print(f"warm-up {p.name}: {e}", flush=True)
        for rnd in range(args.rounds):
            for p in relays:
                for cl in clients:
                    try:
                        res = run_leg(args, exe_load, p, cl, rnd)
                    except Exception as e:  # one broken leg is reported, not fatal
                        res = {"round": rnd, "relay": p.name, "client": cl, "rc": -1,
                               "sent": args.messages, "accepted": 0, "delivered": 0,
                               "status": f"error: {e}", "e2e_msgs_per_s": None,
                               "accept_msgs_per_s": None, "cpu_us_per_msg": None,
                               "data_to_250_ms": None, "replies": None, "stderr": ""}
                    runs.append(res)
                    lat = res["data_to_250_ms"] or {}
                    print(f"round {rnd} {p.name:13s} {cl:11s} {fmt(res['e2e_msgs_per_s']):>8s} "
                          f"msg/s e2e, delivered {res['delivered']}/{res['accepted']} "
                          f"({res['status']}), relay CPU {fmt(res['cpu_us_per_msg'])} us/msg, "
                          f"DATA->250 p50 {fmt(lat.get('p50'), 2)} p99 {fmt(lat.get('p99'), 2)}"
                          " ms", flush=True)
    finally:
        for p in relays:
            p.stop()

    report(args, [p.name for p in relays], unavailable, clients, runs, db)
    bad = [r for r in runs if r["status"] != "ok" or r["rc"] != 0]
    for r in bad:
        print(f"NOT OK: {r['relay']} {r['client']} round {r['round']}: {r['status']}, client rc "
              f"{r['rc']} {r.get('replies') or ''} {r['stderr']}", file=sys.stderr)
    return 1 if bad or "postfix" in unavailable else 0


def report(args, names, unavailable, clients, runs, db):
    summary = {}
    for s in names:
        for c in clients:
            rs = [r for r in runs if r["relay"] == s and r["client"] == c]
            summary[f"{s}/{c}"] = {
                "e2e_msgs_per_s_median": med([r["e2e_msgs_per_s"] for r in rs]),
                "e2e_msgs_per_s_all": [r["e2e_msgs_per_s"] for r in rs],
                "accept_msgs_per_s_median": med([r["accept_msgs_per_s"] for r in rs]),
                "cpu_us_per_msg_median": med([r["cpu_us_per_msg"] for r in rs]),
                "data_to_250_p50_ms": med([(r["data_to_250_ms"] or {}).get("p50") for r in rs]),
                "data_to_250_p99_ms": med([(r["data_to_250_ms"] or {}).get("p99") for r in rs]),
                "delivered": sum(r["delivered"] for r in rs),
                "accepted": sum(r["accepted"] for r in rs),
                "status": sorted({r["status"] for r in rs}),
            }
    ratios = {}
    for c in clients:
        for a in ("sluice", "sluice+filter", "sluice-base"):
            sa, sb = summary.get(f"{a}/{c}"), summary.get(f"postfix/{c}")
            if not sa or not sb:
                continue
            ma, mb = sa["e2e_msgs_per_s_median"], sb["e2e_msgs_per_s_median"]
            per_round = []
            for rnd in range(args.rounds):
                ra = [r for r in runs if r["relay"] == a and r["client"] == c and r["round"] == rnd]
                rb = [r for r in runs if r["relay"] == "postfix" and r["client"] == c and
                      r["round"] == rnd]
                if ra and rb and ra[0]["e2e_msgs_per_s"] and rb[0]["e2e_msgs_per_s"]:
                    per_round.append(ra[0]["e2e_msgs_per_s"] / rb[0]["e2e_msgs_per_s"])
            ratios[f"e2e msg/s {a}/postfix ({c})"] = {
                "of_medians": ma / mb if ma and mb else None,
                "median_of_rounds": med(per_round)}
            ca, cb = sa["cpu_us_per_msg_median"], sb["cpu_us_per_msg_median"]
            ratios[f"CPU per message {a}/postfix ({c})"] = {
                "of_medians": ca / cb if ca and cb else None, "median_of_rounds": None}
    argv = [os.path.relpath(os.path.abspath(sys.argv[0]))] + sys.argv[1:]
    repro = " ".join(shlex.quote(x) for x in argv)
    doc = {"scenario": "relay", "when": datetime.datetime.now().isoformat(timespec="seconds"),
           "host": os.uname().nodename, "cpus": os.cpu_count(), "args": vars(args),
           "rules_db": db, "reproduce": repro, "unavailable": unavailable, "runs": runs,
           "summary": summary, "ratios": ratios}
    with open(os.path.join(args.out, "relay.json"), "w") as f:
        json.dump(doc, f, indent=1)

    figs = [] if args.no_plots else plot(args, names, clients, summary)
    md = ["# Relay end to end: client -> relay -> sink\n",
          f"{doc['when']}, {doc['cpus']} CPUs, loopback, everything on one machine; "
          f"{args.rounds} interleaved rounds of {args.messages} {args.size}-byte messages, "
          f"{args.concurrency} sessions ({args.per_conn} messages per connection for "
          f"sluice-load), sink `sluice-load sink`. Reproduce: `{repro}`\n"]
    if unavailable:
        md.append("Not run: " + "; ".join(f"{k}: {v}" for k, v in unavailable.items()) + "\n")
    md.append("| relay | client | e2e msg/s (median) | e2e msg/s (rounds) | accepted msg/s | "
              "relay CPU us/msg | DATA->250 p50 ms | p99 ms | delivered/accepted | status |")
    md.append("|---|---|---:|---|---:|---:|---:|---:|---:|---|")
    for k, v in summary.items():
        s, c = k.split("/", 1)
        md.append(f"| {s} | {c} | {fmt(v['e2e_msgs_per_s_median'])} | "
                  f"{', '.join(fmt(x, 0) for x in v['e2e_msgs_per_s_all'])} | "
                  f"{fmt(v['accept_msgs_per_s_median'])} | {fmt(v['cpu_us_per_msg_median'])} | "
                  f"{fmt(v['data_to_250_p50_ms'], 2)} | {fmt(v['data_to_250_p99_ms'], 2)} | "
                  f"{v['delivered']}/{v['accepted']} | {', '.join(v['status'])} |")
    if ratios:
        md.append("\n| ratio | of medians | median of per-round ratios |")
        md.append("|---|---:|---:|")
        for k, v in ratios.items():
            md.append(f"| {k} | {fmt(v['of_medians'], 3)} | {fmt(v['median_of_rounds'], 3)} |")
    md.append("\ne2e msg/s: messages delivered at the sink divided by the time from the client's "
              "start to the last arrival. Relay CPU: the relay's whole process tree (Postfix: "
              "master and every daemon, including exited ones through the master's "
              "cutime/cstime) per delivered message. DATA->250 is sluice-load's (smtp-source "
              "reports no latency). Client, relay and sink share the 2 cores.")
    for title, png in figs:
        md.append(f"\n![{title}]({os.path.basename(png)})\n\n{title}. Reproduce: `{repro}`")
    text = "\n".join(md) + "\n"
    with open(os.path.join(args.out, "relay.md"), "w") as f:
        f.write(text)
    print("\n" + text)
    print(f"written: {args.out}/relay.json, relay.md"
          + "".join(f", {os.path.basename(p)}" for _, p in figs))


def plot(args, names, clients, summary):
    gp = shutil.which("gnuplot")
    if gp is None:
        print("gnuplot not found: no plots (apt-get install gnuplot-nox)", file=sys.stderr)
        return []
    figs = []
    dat = os.path.join(args.out, "relay.dat")
    with open(dat, "w") as f:
        for s in names:
            row = [s]
            for c in clients:
                v = summary.get(f"{s}/{c}", {})
                row.append(str(v.get("e2e_msgs_per_s_median") or 0))
                row.append(str(v.get("cpu_us_per_msg_median") or 0))
            f.write(" ".join(row) + "\n")
    common = ("set terminal pngcairo size 900,500 font ',10'\nset style data histograms\n"
              "set style histogram cluster gap 1\nset style fill solid 0.8 border -1\n"
              "set boxwidth 0.9\nset grid ytics\nset key top right\nset yrange [0:*]\n")
    for what, col0, ylabel, fname in (("messages relayed end to end per second (median)", 2,
                                       "msg/s", "relay-rate.png"),
                                      ("relay CPU per delivered message (median)", 3,
                                       "CPU us / message", "relay-cpu.png")):
        png = os.path.join(args.out, fname)
        cols = ", ".join(f"'{dat}' using {col0 + 2 * i}:xtic(1) title '{c}'"
                         for i, c in enumerate(clients))
        script = common + f"set output '{png}'\nset title '{what}'\nset ylabel '{ylabel}'\n" \
                          f"plot {cols}\n"
        r = subprocess.run([gp], input=script, text=True, capture_output=True)
        if r.returncode == 0:
            figs.append((what.capitalize(), png))
        else:
            print(f"gnuplot: {r.stderr}", file=sys.stderr)
    return figs


if __name__ == "__main__":
    sys.exit(main())
