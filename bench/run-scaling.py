#!/usr/bin/python3
"""run-scaling.py - scaling of ingress: shard count and message size, messages/s per core.

For every message size, runs sluice-node with each shard count, and smtp-sink as the ceiling,
interleaved over rounds (same client: sluice-load), and reports for each: messages/s, the
server's CPU time per message, the cores it used (CPU seconds / wall seconds) and messages/s
per core used (messages / server CPU seconds). Medians over rounds.

Writes OUT/scaling.json, OUT/scaling.md and OUT/scaling-*.png; prints the summary. Never
asserts a speed; exits 1 only when a leg could not run or messages failed.

  bench/run-scaling.py --build /tmp/build-bench [--shards 1,2] [--sizes 1024,4096,65536]
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("SLUICE_BUILD_ROOT", "/tmp/build-bench"))
    ap.add_argument("--out", default="/tmp/sluice-scaling-" +
                    datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    ap.add_argument("--shards", default="1,2")
    ap.add_argument("--sizes", default="1024,4096,65536")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=3000)
    ap.add_argument("--concurrency", type=int, default=40)
    ap.add_argument("--per-conn", type=int, default=100)
    ap.add_argument("--load-threads", type=int, default=1)
    ap.add_argument("--port-base", type=int, default=25260)
    ap.add_argument("--no-sink", action="store_true", help="leave out the smtp-sink ceiling")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.rounds, a.messages, a.sizes = 1, 100, "1024,8192"
    os.makedirs(a.out, exist_ok=True)
    load = os.path.join(a.build, "bench", "sluice-load")
    node = os.path.join(a.build, "dataplane", "sluice-node")
    shards = [int(x) for x in a.shards.split(",")]
    sizes = [int(x) for x in a.sizes.split(",")]
    servers = []
    for i, n in enumerate(shards):
        s = peers.SluiceNode(node, a.out + f"/s{n}", "127.0.0.2", a.port_base + i, n, hold=True)
        s.name = f"sluice-{n}shard"
        servers.append(s)
    if not a.no_sink:
        servers.append(peers.SmtpSink(a.out, "127.0.0.1", a.port_base + len(shards)))
    started, unavailable = [], {}
    for s in servers:
        try:
            os.makedirs(getattr(s, "dir", a.out), exist_ok=True)
            s.start()
            started.append(s)
            print(f"started {s.name} on {s.host}:{s.port}", flush=True)
        except Exception as e:
            unavailable[s.name] = str(e)
            print(f"skipping {s.name}: {e}", flush=True)
    runs = []
    try:
        for rnd in range(a.rounds):
            for size in sizes:
                for s in started:
                    js = os.path.join(a.out, f"load-r{rnd}-{s.name}-{size}.json")
                    cmd = [load, "--server", f"{s.host}:{s.port}", "-c", str(a.concurrency),
                           "-n", str(a.messages), "-m", str(a.per_conn), "-s", str(size),
                           "-t", str(a.load_threads), "--json", js, "-q"]
                    cpu0 = s.cpu()
                    t0 = time.monotonic()
                    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                    wall = time.monotonic() - t0
                    time.sleep(0.2)
                    cpu = s.cpu() - cpu0
                    try:
                        with open(js) as f:
                            j = json.load(f)
                    except (OSError, ValueError):
                        j = {}
                    ok = j.get("messages_ok", 0)
                    el = j.get("elapsed_s") or wall
                    run = {"round": rnd, "server": s.name, "size": size, "ok": ok,
                           "failed": j.get("messages_failed", a.messages), "rc": r.returncode,
                           "msgs_per_s": j.get("msgs_per_s", 0), "mb_per_s": j.get("mb_per_s", 0),
                           "cpu_s": cpu, "cores": cpu / el if el else 0,
                           "msgs_per_core_s": ok / cpu if cpu > 0 else None,
                           "cpu_us_per_msg": cpu * 1e6 / ok if ok else None}
                    runs.append(run)
                    print(f"round {rnd} {s.name:14s} {size:7d} B {run['msgs_per_s']:9.1f} msg/s "
                          f"{run['cores']:.2f} cores {run['msgs_per_core_s'] or 0:9.1f} msg/s/core",
                          flush=True)
    finally:
        for s in started:
            s.stop()
    summary = []
    for s in started:
        for size in sizes:
            rs = [r for r in runs if r["server"] == s.name and r["size"] == size]
            med = lambda k: statistics.median([r[k] for r in rs if r[k] is not None]) \
                if any(r[k] is not None for r in rs) else None
            summary.append({"server": s.name, "size": size, "msgs_per_s": med("msgs_per_s"),
                            "mb_per_s": med("mb_per_s"), "cores": med("cores"),
                            "msgs_per_core_s": med("msgs_per_core_s"),
                            "cpu_us_per_msg": med("cpu_us_per_msg"),
                            "failed": sum(r["failed"] for r in rs)})
    repro = " ".join(shlex.quote(x) for x in [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    doc = {"scenario": "scaling", "when": datetime.datetime.now().isoformat(timespec="seconds"),
           "cpus": os.cpu_count(), "args": vars(a), "reproduce": repro,
           "unavailable": unavailable, "runs": runs, "summary": summary}
    with open(os.path.join(a.out, "scaling.json"), "w") as f:
        json.dump(doc, f, indent=1)
    f2 = lambda x, nd=1: "n/a" if x is None else f"{x:,.{nd}f}"
    md = ["# Scaling: shard count and message size\n",
          f"{doc['when']}, {doc['cpus']} CPUs, loopback, sluice-load with {a.concurrency} "
          f"sessions, {a.per_conn} messages per connection, {a.rounds} interleaved rounds of "
          f"{a.messages} messages. Reproduce: `{repro}`\n"]
    if unavailable:
        md.append("Not run: " + "; ".join(f"{k}: {v}" for k, v in unavailable.items()) + "\n")
    md += ["| server | size B | msg/s | MB/s | server cores used | msg/s per core | "
           "CPU us/msg | failed |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for x in summary:
        md.append(f"| {x['server']} | {x['size']} | {f2(x['msgs_per_s'])} | {f2(x['mb_per_s'], 2)} | "
                  f"{f2(x['cores'], 2)} | {f2(x['msgs_per_core_s'])} | {f2(x['cpu_us_per_msg'])} | "
                  f"{x['failed']} |")
    gp = shutil.which("gnuplot")
    if gp and summary:
        for key, title, fname in (("msgs_per_s", "messages per second", "scaling-rate.png"),
                                  ("msgs_per_core_s", "messages per second per core used",
                                   "scaling-per-core.png")):
            png = os.path.join(a.out, fname)
            dat = os.path.join(a.out, f"scaling-{key}.dat")
            names = [s.name for s in started]
            with open(dat, "w") as f:
                for size in sizes:
                    row = [str(size)] + [str(next((x[key] or 0) for x in summary
                                                  if x["server"] == n and x["size"] == size))
                                         for n in names]
                    f.write(" ".join(row) + "\n")
            plots = ", ".join(f"'{dat}' using 1:{i + 2} with linespoints title '{n}'"
                              for i, n in enumerate(names))
            script = (f"set terminal pngcairo size 900,500 font ',10'\nset output '{png}'\n"
                      f"set title '{title}'\nset xlabel 'message size (bytes)'\nset logscale x 2\n"
                      f"set grid\nset yrange [0:*]\nplot {plots}\n")
            if subprocess.run([gp], input=script, text=True, capture_output=True).returncode == 0:
                md.append(f"\n![{title}]({fname})\n\n{title.capitalize()}. Reproduce: `{repro}`")
    text = "\n".join(md) + "\n"
    with open(os.path.join(a.out, "scaling.md"), "w") as f:
        f.write(text)
    print("\n" + text)
    bad = any(r["failed"] or r["rc"] for r in runs) or not started
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
