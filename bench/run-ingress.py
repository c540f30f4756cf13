#!/usr/bin/python3
"""run-ingress.py - ingress: messages accepted per second with fsync, side by side.

Servers (all on loopback, high ports, private directories under --out):
  sluice     sluice-node, its spool on the same disk as Postfix's queue, group commit
  postfix    Postfix's smtpd into its own queue, fsync on, every message held (no delivery)
  smtp-sink  Postfix's smtp-sink: the protocol ceiling (no disk, no parsing)
Clients: sluice-load (the measure) and Postfix's smtp-source (the cross-check), the same for
every server. Rounds are interleaved (S P K S P K ...); the report gives medians over rounds,
the ratios sluice/postfix and sluice/smtp-sink (of the medians, and the median of the per-round
ratios), and each server's CPU time per accepted message (utime+stime of its process tree,
before/after, from /proc). Then memory per idle connection: the server's RSS/PSS delta with
--idle connections held open by sluice-load idle (a separate process) divided by the count.

Writes OUT/ingress.json, OUT/ingress.md (summary with ratios and the command that reproduces
each figure) and OUT/*.png (gnuplot). Prints the summary. Never asserts a speed: the exit
status is 0 when every leg that could run ran and every message was accepted, 1 otherwise.

  bench/run-ingress.py --build /tmp/build-bench [--rounds 3] [--messages 5000] [--smoke]
                       [--base-build DIR]   (an older build as one more server, sluice-base)
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
sys.path.insert(0, os.path.join(HERE, "peers"))
import peers  # noqa: E402


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("SLUICE_BUILD_ROOT", "/tmp/build-bench"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=5000)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--per-conn", type=int, default=100, help="messages per connection")
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--corpus", default=None, help="message bodies from a corpus instead")
    ap.add_argument("--load-threads", type=int, default=1)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--servers", default="sluice,postfix,smtp-sink")
    ap.add_argument("--base-build", default=None,
                    help="another build of Sluice (e.g. before a redesign): its sluice-node runs "
                         "as the server sluice-base in the same rounds")
    ap.add_argument("--clients", default="sluice-load,smtp-source")
    ap.add_argument("--idle", type=int, default=10000, help="idle connections (0: skip)")
    ap.add_argument("--idle-postfix", type=int, default=200,
                    help="idle connections for Postfix (one smtpd process each)")
    ap.add_argument("--hold", type=float, default=3.0)
    ap.add_argument("--port-base", type=int, default=25250)
    ap.add_argument("--smoke", action="store_true",
                    help="tiny counts: checks that the scenario runs, measures nothing")
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.rounds, a.messages, a.idle, a.idle_postfix, a.hold = 1, 200, 300, 20, 0.5
    if a.out is None:
        a.out = "/tmp/sluice-ingress-" + datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return a


def run_sluice_load(args, exe, peer, out, tag):
    js = os.path.join(out, f"load-{tag}.json")
    cmd = [exe, "--server", f"{peer.host}:{peer.port}", "-c", str(args.concurrency),
           "-n", str(args.messages), "-m", str(args.per_conn), "-t", str(args.load_threads),
           "--id-prefix", tag, "--json", js, "-q"]
    cmd += ["--corpus", args.corpus] if args.corpus else ["-s", str(args.size)]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    try:
        with open(js) as f:
            j = json.load(f)
    except (OSError, ValueError):
        j = {}
    return {"ok": j.get("messages_ok", 0), "failed": j.get("messages_failed", args.messages),
            "msgs_per_s": j.get("msgs_per_s", 0.0), "wall_s": wall,
            "latency_ms": j.get("latency_ms"), "replies": j.get("replies"),
            "rc": r.returncode, "stderr": r.stderr[-300:], "cmd": cmd}


def run_smtp_source(args, peer, out, tag):
    # smtp-source: -s sessions, -m messages, -l payload bytes, -d keep the connection for the
    # next message (it has no per-connection count: the sessions reconnect only on error).
    exe = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    cmd = [exe, "-s", str(args.concurrency), "-m", str(args.messages), "-l", str(args.size),
           "-d", "-f", "load@sluice-load.test", "-t", "rcpt0@bench.test",
           "-M", "source.bench.test", f"{peer.host}:{peer.port}"]
    t0 = time.monotonic()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - t0
    ok = args.messages if r.returncode == 0 else 0
    return {"ok": ok, "failed": args.messages - ok, "msgs_per_s": ok / wall if wall else 0,
            "wall_s": wall, "rc": r.returncode, "stderr": r.stderr[-300:], "cmd": cmd}


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
    if not os.access(exe_load, os.X_OK):
        sys.exit(f"run-ingress: no {exe_load}; build first (ninja -C {args.build})")
    want = [s.strip() for s in args.servers.split(",") if s.strip()]
    clients = [c.strip() for c in args.clients.split(",") if c.strip()]
    pb = args.port_base
    if args.base_build and "sluice-base" not in want:
        want.insert(want.index("sluice") + 1 if "sluice" in want else 0, "sluice-base")
    catalogue = {
        "sluice": lambda: peers.SluiceNode(exe_node, args.out, "127.0.0.2", pb, args.shards, hold=True),
        "sluice-base": lambda: peers.SluiceNode(
            os.path.join(args.base_build or "", "dataplane", "sluice-node"), args.out,
            "127.0.0.3", pb + 4, args.shards, hold=True, name="sluice-base"),
        "postfix": lambda: peers.Postfix(args.out, "127.0.0.1", pb + 1,
                                         smtpd_max=max(100, args.idle_postfix + 10)),
        "smtp-sink": lambda: peers.SmtpSink(args.out, "127.0.0.1", pb + 2),
        "sluice-load-sink": lambda: peers.LoadSink(exe_load, args.out, "127.0.0.1", pb + 3),
    }
    servers, unavailable = [], {}
    for name in want:
        p = catalogue[name]()
        try:
            p.start()
            servers.append(p)
            print(f"started {name} on {p.host}:{p.port} (pid {p.pid()})", flush=True)
        except Exception as e:  # a leg that cannot run is reported, not fatal
            unavailable[name] = str(e)
            print(f"skipping {name}: {e}", flush=True)

    runs = []
    try:
        for rnd in range(args.rounds):
            for p in servers:
                for cl in clients:
                    p.reset()
                    cpu0 = p.cpu()
                    tag = f"r{rnd}-{p.name}-{cl}"
                    if cl == "sluice-load":
                        res = run_sluice_load(args, exe_load, p, args.out, tag)
                    else:
                        res = run_smtp_source(args, p, args.out, tag)
                    time.sleep(0.2)   # let the server finish the last fsync and log lines
                    cpu1 = p.cpu()
                    stored = p.accepted_since_reset()
                    res.update(round=rnd, server=p.name, client=cl, cpu_s=cpu1 - cpu0,
                               server_stored=stored,
                               cpu_us_per_msg=(cpu1 - cpu0) * 1e6 / res["ok"] if res["ok"] else None)
                    runs.append(res)
                    print(f"round {rnd} {p.name:10s} {cl:12s} {res['msgs_per_s']:10.1f} msg/s "
                          f"ok {res['ok']} failed {res['failed']} server cpu "
                          f"{fmt(res['cpu_us_per_msg'])} us/msg"
                          + (f" stored {stored}" if stored is not None else ""), flush=True)
        idle = []
        if args.idle > 0:
            for p in servers:
                n = args.idle_postfix if p.name == "postfix" else args.idle
                idle.append(measure_idle(args, exe_load, p, n))
    finally:
        for p in servers:
            p.stop()

    report(args, servers, unavailable, clients, runs, idle)
    bad = [r for r in runs if r["failed"] or r["rc"] != 0]
    for r in bad:
        print(f"FAILED: {r['server']} {r['client']} round {r['round']}: rc {r['rc']} "
              f"failed {r['failed']} {r.get('replies') or ''} {r['stderr']}", file=sys.stderr)
    return 1 if bad or ("postfix" in unavailable or "smtp-sink" in unavailable) else 0


def measure_idle(args, exe_load, p, n):
    ready = os.path.join(args.out, f"idle-{p.name}.ready")
    if os.path.exists(ready):
        os.unlink(ready)
    time.sleep(0.3)
    rss0, pss0, np0 = p.memory()
    cmd = [exe_load, "idle", "--server", f"{p.host}:{p.port}", "--connections", str(n),
           "--hold", str(args.hold + 2), "-c", "200", "--source", "127.0.0.2-127.0.0.9",
           "--ready-file", ready, "-q", "--json", os.path.join(args.out, f"idle-{p.name}.json")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    end = time.time() + 120
    while not os.path.exists(ready) and proc.poll() is None and time.time() < end:
        time.sleep(0.05)
    held = 0
    if os.path.exists(ready):
        time.sleep(0.05)
        with open(ready) as f:
            held = int(f.read().strip() or 0)
    time.sleep(min(args.hold, 1.0))   # let the server settle its per-connection state
    rss1, pss1, np1 = p.memory()
    try:
        proc.wait(args.hold + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    r = {"server": p.name, "connections": n, "held": held, "rss_before": rss0,
         "rss_held": rss1, "pss_before": pss0, "pss_held": pss1, "procs_before": np0,
         "procs_held": np1, "cmd": cmd,
         "rss_per_conn": (rss1 - rss0) / held if held else None,
         "pss_per_conn": (pss1 - pss0) / held if held else None}
    print(f"idle {p.name:10s} held {held}/{n}: RSS +{(rss1 - rss0) / 1048576:.1f} MiB, "
          f"{fmt(r['rss_per_conn'] and r['rss_per_conn'] / 1024, 2)} KiB/conn RSS, "
          f"{fmt(r['pss_per_conn'] and r['pss_per_conn'] / 1024, 2)} KiB/conn PSS "
          f"({np1} processes)", flush=True)
    return r


def report(args, servers, unavailable, clients, runs, idle):
    names = [p.name for p in servers]
    summary = {}
    for s in names:
        for c in clients:
            rs = [r for r in runs if r["server"] == s and r["client"] == c]
            summary[f"{s}/{c}"] = {
                "msgs_per_s_median": med([r["msgs_per_s"] for r in rs]),
                "msgs_per_s_all": [r["msgs_per_s"] for r in rs],
                "cpu_us_per_msg_median": med([r["cpu_us_per_msg"] for r in rs]),
                "failed": sum(r["failed"] for r in rs),
            }
    ratios = {}
    for c in clients:
        for a, b in (("sluice", "postfix"), ("sluice-base", "postfix"), ("sluice", "sluice-base"),
                     ("sluice", "smtp-sink"), ("postfix", "smtp-sink")):
            ma = summary.get(f"{a}/{c}", {}).get("msgs_per_s_median")
            mb = summary.get(f"{b}/{c}", {}).get("msgs_per_s_median")
            per_round = []
            for rnd in range(args.rounds):
                ra = [r for r in runs if r["server"] == a and r["client"] == c and r["round"] == rnd]
                rb = [r for r in runs if r["server"] == b and r["client"] == c and r["round"] == rnd]
                if ra and rb and rb[0]["msgs_per_s"]:
                    per_round.append(ra[0]["msgs_per_s"] / rb[0]["msgs_per_s"])
            if ma and mb:
                ratios[f"{a}/{b} ({c})"] = {"of_medians": ma / mb,
                                            "median_of_rounds": med(per_round)}
            ca = summary.get(f"{a}/{c}", {}).get("cpu_us_per_msg_median")
            cb = summary.get(f"{b}/{c}", {}).get("cpu_us_per_msg_median")
            if ca and cb:
                ratios[f"cpu {a}/{b} ({c})"] = {"of_medians": ca / cb}
    argv = [os.path.relpath(os.path.abspath(sys.argv[0]))] + sys.argv[1:]
    repro = " ".join(shlex.quote(x) for x in argv)
    doc = {"scenario": "ingress", "when": datetime.datetime.now().isoformat(timespec="seconds"),
           "host": os.uname().nodename, "cpus": os.cpu_count(), "args": vars(args),
           "reproduce": repro, "unavailable": unavailable, "runs": runs,
           "summary": summary, "ratios": ratios, "idle": idle}
    with open(os.path.join(args.out, "ingress.json"), "w") as f:
        json.dump(doc, f, indent=1)

    figs = [] if args.no_plots else plot(args, names, clients, summary, idle)
    msg_desc = f"corpus {args.corpus}" if args.corpus else f"{args.size}-byte messages"
    md = ["# Ingress: messages accepted per second with fsync\n",
          f"{doc['when']}, {doc['cpus']} CPUs, loopback; {args.rounds} interleaved rounds of "
          f"{args.messages} {msg_desc}, {args.concurrency} sessions, {args.per_conn} per "
          f"connection. Reproduce: `{repro}`\n"]
    if unavailable:
        md.append("Not run: " + "; ".join(f"{k}: {v}" for k, v in unavailable.items()) + "\n")
    md.append("| server | client | msg/s (median) | msg/s (rounds) | server CPU us/msg | failed |")
    md.append("|---|---|---:|---|---:|---:|")
    for k, v in summary.items():
        s, c = k.split("/", 1)
        md.append(f"| {s} | {c} | {fmt(v['msgs_per_s_median'])} | "
                  f"{', '.join(fmt(x, 0) for x in v['msgs_per_s_all'])} | "
                  f"{fmt(v['cpu_us_per_msg_median'])} | {v['failed']} |")
    md.append("\n| ratio | of medians | median of per-round ratios |")
    md.append("|---|---:|---:|")
    for k, v in ratios.items():
        md.append(f"| {k} | {fmt(v['of_medians'], 3)} | {fmt(v.get('median_of_rounds'), 3)} |")
    if idle:
        md.append("\n| server | idle connections held | RSS delta MiB | KiB/conn (RSS) | "
                  "KiB/conn (PSS) | processes |")
        md.append("|---|---:|---:|---:|---:|---:|")
        for r in idle:
            md.append(f"| {r['server']} | {r['held']}/{r['connections']} | "
                      f"{fmt((r['rss_held'] - r['rss_before']) / 1048576)} | "
                      f"{fmt(r['rss_per_conn'] and r['rss_per_conn'] / 1024, 2)} | "
                      f"{fmt(r['pss_per_conn'] and r['pss_per_conn'] / 1024, 2)} | "
                      f"{r['procs_held']} |")
        md.append("\nRSS/PSS count user memory only (kernel socket buffers are not in it); "
                  "Postfix holds one smtpd process per connection, so it is measured with "
                  f"{args.idle_postfix} connections and divided by that count.")
    for title, png in figs:
        md.append(f"\n![{title}]({os.path.basename(png)})\n\n{title}. Reproduce: `{repro}`")
    text = "\n".join(md) + "\n"
    with open(os.path.join(args.out, "ingress.md"), "w") as f:
        f.write(text)
    print("\n" + text)
    print(f"written: {args.out}/ingress.json, ingress.md"
          + "".join(f", {os.path.basename(p)}" for _, p in figs))


def plot(args, names, clients, summary, idle):
    gp = shutil.which("gnuplot")
    if gp is None:
        print("gnuplot not found: no plots (apt-get install gnuplot-nox)", file=sys.stderr)
        return []
    figs = []
    dat = os.path.join(args.out, "ingress.dat")
    with open(dat, "w") as f:
        f.write("# server " + " ".join(f'"{c} msg/s" "{c} cpu"' for c in clients) + "\n")
        for s in names:
            row = [s]
            for c in clients:
                v = summary.get(f"{s}/{c}", {})
                row.append(str(v.get("msgs_per_s_median") or 0))
                row.append(str(v.get("cpu_us_per_msg_median") or 0))
            f.write(" ".join(row) + "\n")
    common = ("set terminal pngcairo size 900,500 font ',10'\nset style data histograms\n"
              "set style histogram cluster gap 1\nset style fill solid 0.8 border -1\n"
              "set boxwidth 0.9\nset grid ytics\nset key top right\nset yrange [0:*]\n")
    for what, col0, ylabel, fname in (("messages accepted per second (median)", 2, "msg/s",
                                       "ingress-rate.png"),
                                      ("server CPU per accepted message (median)", 3,
                                       "CPU us / message", "ingress-cpu.png")):
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
    if idle:
        idat = os.path.join(args.out, "idle.dat")
        with open(idat, "w") as f:
            for r in idle:
                f.write(f"{r['server']} {(r['rss_per_conn'] or 0) / 1024} "
                        f"{(r['pss_per_conn'] or 0) / 1024}\n")
        png = os.path.join(args.out, "idle-memory.png")
        script = common + f"set output '{png}'\nset title 'memory per idle connection'\n" \
                          f"set ylabel 'KiB / connection'\nset logscale y\nset yrange [*:*]\n" \
                          f"plot '{idat}' using 2:xtic(1) title 'RSS', '' using 3 title 'PSS'\n"
        r = subprocess.run([gp], input=script, text=True, capture_output=True)
        if r.returncode == 0:
            figs.append(("Memory per idle connection", png))
    return figs


if __name__ == "__main__":
    sys.exit(main())
