#!/usr/bin/python3
"""run-scan.py - content scanning throughput: Sluice's scanner vs SpamAssassin (spamd) and rspamd.

Both scan the same messages of the dev corpus (an evenly spread subset: ham and spam), in
interleaved rounds:
  sluice   `sluice-rules test` (the data plane's scanner: MIME parse, Hyperscan per class,
           PCRE2 confirmation, metas, verdict) on one core, with a compiled rule set (--db; by
           default the shipped rules compiled here; pass the SpamAssassin rules compiled by
           bench/scan-accuracy.sh for like-for-like)
  spamd    a private spamd on loopback (local tests only, -L), --children children, fed by
           spamc with as many messages in flight as children
  rspamd   a private rspamd 3.4 (Debian's, its shipped configuration) on loopback: normal
           worker only (--rspamd-workers, default --children), its config, run dir, databases
           and log under OUT/rspamd, DNS pointed at a dnsmasq started here that answers
           NXDOMAIN at once (without it rspamd is bound by DNS timeouts); no Redis, so no Bayes.
           Fed by one rspamc with as many requests in flight as workers.
The legs are interleaved (sluice spamd rspamd, sluice spamd rspamd, ...). For each: messages/s,
CPU ms per message (the scanner's own CPU: sluice-rules' rusage; spamd's and rspamd's process
trees from /proc; the clients spamc/rspamc are not counted), messages/s per core, and accuracy
on the subset (spam caught / ham misjudged: sluice at its threshold 5, spamd at its threshold 5,
rspamd's action "add header" or "reject" counts as spam).

The profile (sluice only, after the rounds): one more pass with `sluice-rules test --profile`:
per-message CPU mean/p50/p99/max, and the time by part (Hyperscan per class, header targets,
relays, PCRE2 confirmations, evals, metas) and by rule for PCRE2.

The hostile case (sluice only, after the rounds): messages crafted to make one rule slow (long
runs of one character that backtracking rules love, an endless header line, a form of blanks
for __FILL_THIS_FORM_*, see hostile_messages) scanned by `sluice-rules test`: their CPU per
message beside the corpus's, their PCRE2 runs and how many a cap stopped (filter_shard.c).

Writes OUT/scan.json, OUT/scan.md, OUT/scan-*.png; prints the summary.
  bench/run-scan.py --build /tmp/build-bench [--limit 300] [--rounds 3] [--db DIR]
                    [--scanners sluice,spamd,rspamd]
"""
import argparse
import concurrent.futures
import datetime
import json
import os
import re
import resource
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.environ.get("SLUICE_BUILD_ROOT", "/tmp/build-bench"))
    ap.add_argument("--out", default="/tmp/sluice-scan-" +
                    datetime.datetime.now().strftime("%Y%m%d-%H%M%S"))
    ap.add_argument("--corpus", default=peers.default_corpus(ROOT))
    ap.add_argument("--limit", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--db", default=None, help="a compiled rule-set directory for sluice")
    ap.add_argument("--children", type=int, default=2)
    ap.add_argument("--port", type=int, default=25290, help="spamd's port")
    ap.add_argument("--rspamd-workers", type=int, default=None, help="default: --children")
    ap.add_argument("--rspamd-port", type=int, default=None, help="default: --port + 1")
    ap.add_argument("--dns-port", type=int, default=None, help="dnsmasq's; default: --port + 3")
    ap.add_argument("--scanners", default="sluice,spamd,rspamd")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()
    if a.smoke:
        a.limit, a.rounds = 20, 1
    a.rspamd_workers = a.rspamd_workers or a.children
    a.rspamd_port = a.rspamd_port or a.port + 1
    a.dns_port = a.dns_port or a.port + 3
    want = {x.strip() for x in a.scanners.split(",") if x.strip()}
    os.makedirs(a.out, exist_ok=True)
    os.chmod(a.out, 0o755)
    rules = os.path.join(a.build, "patterns", "sluice-rules")

    # The corpus and an evenly spread subset of it (the manifest lists ham, then spam).
    cdir = os.path.join(a.out, "corpus")
    if not os.path.exists(os.path.join(cdir, "MANIFEST.tsv")):
        os.makedirs(cdir, exist_ok=True)
        subprocess.run(["tar", "-xzf", a.corpus, "-C", cdir], check=True)
    with open(os.path.join(cdir, "MANIFEST.tsv")) as f:
        lines = f.read().splitlines()
    head, entries = lines[0], lines[1:]
    step = max(1, len(entries) // a.limit)
    subset = entries[::step][:a.limit]
    sub_manifest = os.path.join(cdir, "SUBSET.tsv")
    with open(sub_manifest, "w") as f:
        f.write("\n".join([head] + subset) + "\n")
    paths = [os.path.join(cdir, e.split("\t")[1]) for e in subset]
    labels = {p: e.split("\t")[0] for p, e in zip(paths, subset)}

    db = a.db
    if db is None:
        db = os.path.join(a.out, "db-shipped")
        shutil.rmtree(db, ignore_errors=True)
        rule_dir = os.path.join(ROOT, "patterns", "rules")
        subprocess.run([rules, "compile", "-o", db] +
                       sorted(os.path.join(rule_dir, x) for x in os.listdir(rule_dir)
                              if x.endswith(".cf")), check=True, capture_output=True)

    skipped = {}
    hostile = profile = None
    spamd = rspamd = dns = None
    runs = []
    try:
        if "spamd" in want:
            spamd = start_spamd(a)
            if spamd is None:
                skipped["spamd"] = "not installed"
        if "rspamd" in want:
            try:
                dns = peers.NxResolver(a.out, "127.0.0.1", a.dns_port)
                dns.start()
                rspamd = peers.Rspamd(a.out, "127.0.0.1", a.rspamd_port, a.rspamd_workers,
                                      a.dns_port)
                t0 = time.monotonic()
                rspamd.start(paths[0])
                settle(rspamd)
                print(f"rspamd ready in {time.monotonic() - t0:.1f} s (pid {rspamd.pid()})",
                      flush=True)
            except Exception as e:  # a leg that cannot run is reported, not fatal
                skipped["rspamd"] = str(e)
                print(f"skipping rspamd: {e}", file=sys.stderr, flush=True)
                if rspamd is not None:
                    rspamd.stop()
                rspamd = None
        for rnd in range(a.rounds):
            n0 = len(runs)
            if "sluice" in want:
                # sluice: one process, one core; its own CPU from rusage.
                ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.monotonic()
                r = subprocess.run([rules, "test", "--db", db, "--corpus", sub_manifest],
                                   capture_output=True, text=True, timeout=1200)
                wall = time.monotonic() - t0
                ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
                runs.append(leg(rnd, "sluice", len(paths) if r.returncode == 0 else 0, wall, cpu,
                                r.returncode, r.stderr[-300:], sluice_accuracy(r.stdout)))
            if spamd is not None:
                cpu0 = peers.tree_cpu_seconds(spamd[0].pid)
                t0 = time.monotonic()
                verdicts = feed_spamd(a, paths)
                wall = time.monotonic() - t0
                cpu = peers.tree_cpu_seconds(spamd[0].pid) - cpu0
                ok = sum(v is not None for v in verdicts.values())
                runs.append(leg(rnd, "spamd", ok, wall, cpu, 0 if ok == len(paths) else 1, "",
                                accuracy(verdicts, labels)))
            if rspamd is not None:
                cpu0 = rspamd.cpu()
                t0 = time.monotonic()
                verdicts, err = feed_rspamd(a, paths)
                wall = time.monotonic() - t0
                cpu = rspamd.cpu() - cpu0
                ok = sum(v is not None for v in verdicts.values())
                runs.append(leg(rnd, "rspamd", ok, wall, cpu, 0 if ok == len(paths) else 1, err,
                                accuracy(verdicts, labels)))
            for x in runs[n0:]:
                acc = x["accuracy"] or {}
                print(f"round {rnd} {x['server']:7s} {x['msgs_per_s']:9.1f} msg/s "
                      f"{x['cpu_ms_per_msg'] or 0:8.2f} ms CPU/msg  ok {x['ok']}  spam caught "
                      f"{acc.get('spam_caught', '?')}/{acc.get('spam', '?')} ham misjudged "
                      f"{acc.get('ham_misjudged', '?')}/{acc.get('ham', '?')}", flush=True)
        if "sluice" in want:
            profile = run_profile(rules, db, sub_manifest)
            hostile = run_hostile(a, rules, db)
    finally:
        if spamd is not None:
            stop_spamd(spamd)
        if rspamd is not None:
            rspamd.stop()
        if dns is not None:
            dns.stop()
    return report(a, db, runs, skipped, hostile, profile)


def run_profile(rules, db, manifest):
    """One more sluice pass with `sluice-rules test --profile` (not a timed round: the profile
    reads the clock around every part): per-message CPU mean/p50/p99/max, and where the time
    goes by part (Hyperscan per class, header targets, relays, PCRE2 confirmations, evals,
    metas), by rule for PCRE2, and the rules Hyperscan reports most often."""
    r = subprocess.run([rules, "test", "--db", db, "--corpus", manifest, "--profile"],
                       capture_output=True, text=True, timeout=1200)
    out = {"rc": r.returncode, "parts_us": {}, "pcre2_us": {}, "reports_per_msg": {}}
    m = re.search(r"mean (\d+) us, p50 (\d+) us, p99 (\d+) us, max (\d+) us", r.stdout)
    if m:
        out.update(cpu_us_mean=int(m.group(1)), cpu_us_p50=int(m.group(2)),
                   cpu_us_p99=int(m.group(3)), cpu_us_max=int(m.group(4)))
    for line in r.stdout.splitlines():
        m = re.match(r"^  pcre2 (\S+)\s+([\d.]+) us\s+([\d.]+) runs$", line)
        if m:
            out["pcre2_us"][m.group(1)] = {"us": float(m.group(2)), "runs": float(m.group(3))}
            continue
        m = re.match(r"^  reports (\S+)\s+([\d.]+) per message$", line)
        if m:
            out["reports_per_msg"][m.group(1)] = float(m.group(2))
            continue
        m = re.match(r"^  (\S.*?)\s+([\d.]+)$", line)
        if m:
            out["parts_us"][m.group(1)] = float(m.group(2))
    print(f"profile: {out}", flush=True)
    return out


def hostile_messages(n):
    """(name, bytes) of messages crafted against backtracking rules, each body about n bytes."""
    def msg(name, body, subject="hostile case"):
        return (name, (f"From: crafted <a@example.net>\r\nTo: b@example.org\r\n"
                       f"Subject: {subject}\r\nDate: Tue, 1 Dec 2026 12:00:00 +0000\r\n"
                       f"Message-ID: <{name}@example.net>\r\n\r\n{body}\r\n").encode())
    return [
        msg("x-run", "x" * n),
        msg("x-run-y", "x" * n + "y"),
        msg("words-spaces", "a " * (n // 2)),
        msg("blank-runs", " \t" * (n // 2)),
        msg("digits", "1" * n),
        msg("equals", "=" * n),
        msg("dots", "." * n),
        msg("form-blanks", "Name: ________ Password: ________ Account: ________\r\n" * (n // 56)),
        msg("uri-labels", "http://" + "x." * (n // 2) + "com/"),
        msg("html-tags", "<html><body>" + "<a href=\"x\"><b>" * (n // 16) + "</body></html>"),
        msg("long-subject", "short body", subject="x" * min(n, 16000)),
    ]


def run_hostile(a, rules, db):
    """Scans the hostile case with sluice; its CPU per message, PCRE2 runs and capped runs."""
    hdir = os.path.join(a.out, "hostile")
    os.makedirs(os.path.join(hdir, "ham"), exist_ok=True)
    lines = ["label\tpath\tbytes\tsha256"]
    for name, data in hostile_messages(60000):
        with open(os.path.join(hdir, "ham", name + ".eml"), "wb") as f:
            f.write(data)
        lines.append(f"ham\tham/{name}.eml\t{len(data)}\t-")
    with open(os.path.join(hdir, "MANIFEST.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    r = subprocess.run([rules, "test", "--db", db, "--corpus", hdir], capture_output=True,
                       text=True, timeout=1200)
    out = {"rc": r.returncode, "messages": len(lines) - 1}
    m = re.search(r"mean (\d+) us, p50 (\d+) us, p99 (\d+) us, max (\d+) us", r.stdout)
    if m:
        out.update(cpu_us_mean=int(m.group(1)), cpu_us_max=int(m.group(4)))
    m = re.search(r"PCRE2 runs \(confirmations and evals\): (\d+), [\d.]+ per message; .*: (\d+)",
                  r.stdout)
    if m:
        out.update(pcre2_runs=int(m.group(1)), pcre2_capped=int(m.group(2)))
    out["capped_by"] = sorted(set(re.findall(r"\(first ([^)]*)\)", r.stderr)))
    print(f"hostile: {out}", flush=True)
    return out


def leg(rnd, name, ok, wall, cpu, rc, err, acc=None):
    return {"round": rnd, "server": name, "ok": ok, "wall_s": wall, "cpu_s": cpu, "rc": rc,
            "msgs_per_s": ok / wall if wall else 0,
            "cpu_ms_per_msg": cpu * 1e3 / ok if ok else None,
            "msgs_per_core_s": ok / cpu if cpu > 0 else None, "stderr": err, "accuracy": acc}


def accuracy(verdicts, labels):
    """verdicts: path -> True (said spam), False (said ham), None (no answer)."""
    acc = {"spam": 0, "ham": 0, "spam_caught": 0, "ham_misjudged": 0}
    for p, v in verdicts.items():
        if v is None:
            continue
        if labels[p] == "spam":
            acc["spam"] += 1
            acc["spam_caught"] += v
        else:
            acc["ham"] += 1
            acc["ham_misjudged"] += v
    return acc


def sluice_accuracy(out):
    """From sluice-rules test's table: '  spam (  500)   349   151 ...', '  ham  ( 2500) ...'."""
    acc = {}
    for label in ("spam", "ham"):
        m = re.search(rf"^\s*{label}\s*\(\s*(\d+)\)\s+(\d+)\s+(\d+)", out, re.M)
        if not m:
            return None
        acc[label] = int(m.group(1))
        acc["spam_caught" if label == "spam" else "ham_misjudged"] = int(m.group(2))
    return acc


def settle(peer, quiet=0.05, secs=240):
    """Waits until the peer's process tree is idle (less than `quiet` s of CPU in 1 s): rspamd
    answers while its hs_helper still compiles the Hyperscan databases in the background."""
    end = time.time() + secs
    last = peer.cpu()
    while time.time() < end:
        time.sleep(1)
        now = peer.cpu()
        if now - last < quiet:
            return
        last = now


def feed_rspamd(a, paths):
    """One rspamc, --rspamd-workers requests in flight. Returns ({path: said spam}, error)."""
    r = subprocess.run(["rspamc", "-h", f"127.0.0.1:{a.rspamd_port}", "-n",
                        str(a.rspamd_workers), "-t", "60", "symbols"] + paths,
                       capture_output=True, text=True, errors="replace", timeout=3600)
    verdicts = dict.fromkeys(paths)
    cur = None
    for line in r.stdout.splitlines():
        m = re.match(r"Results for file: (.*) \([\d.]+ seconds\)$", line)
        if m:
            cur = m.group(1)
        elif line.startswith("Action: ") and cur in verdicts:
            verdicts[cur] = line[8:].strip() in ("add header", "reject")
            cur = None
    return verdicts, (r.stderr[-300:] if r.returncode else "")


def start_spamd(a):
    if shutil.which("spamd") is None:
        print("spamd not installed: leg skipped", file=sys.stderr)
        return None
    if peers.port_open("127.0.0.1", a.port):
        raise RuntimeError(f"port {a.port} is taken (a leftover spamd?)")
    pidf = os.path.join(a.out, "spamd.pid")
    log = open(os.path.join(a.out, "spamd.log"), "w")
    # -L: local tests only (no DNS, no network); -x: no per-user configuration.
    p = subprocess.Popen(["spamd", "-L", "-x", "-i", "127.0.0.1", "-p", str(a.port),
                          "-m", str(a.children), "--min-spare", str(a.children),
                          "--max-spare", str(a.children), "-u", "debian-spamd", "-r", pidf,
                          "--syslog=stderr"], stdout=log, stderr=log)
    end = time.time() + 120
    while time.time() < end:
        if p.poll() is not None:
            raise RuntimeError("spamd exited; see " + log.name)
        if subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(a.port), "-K"],
                          capture_output=True).returncode == 0:
            return (p, log)
        time.sleep(0.5)
    p.kill()
    raise RuntimeError("spamd did not answer in 120 s")


def stop_spamd(s):
    s[0].terminate()
    try:
        s[0].wait(20)
    except subprocess.TimeoutExpired:
        s[0].kill()


def feed_spamd(a, paths):
    def one(path):
        with open(path, "rb") as f:
            data = f.read()
        if data.startswith(b"From "):
            data = data.split(b"\n", 1)[1]
        r = subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(a.port), "-c", "-x"],
                           input=data, capture_output=True)
        # -c: 0 ham, 1 spam; anything else is an error
        return r.returncode == 1 if r.returncode in (0, 1) else None
    with concurrent.futures.ThreadPoolExecutor(a.children) as ex:
        return dict(zip(paths, ex.map(one, paths)))


def report(a, db, runs, skipped, hostile=None, profile=None):
    med = lambda xs: statistics.median(xs) if xs else None
    names = [n for n in ("sluice", "spamd", "rspamd") if any(r["server"] == n for r in runs)]
    summary = {}
    for name in names:
        rs = [r for r in runs if r["server"] == name]
        summary[name] = {k: med([r[k] for r in rs if r[k] is not None])
                         for k in ("msgs_per_s", "cpu_ms_per_msg", "msgs_per_core_s")}
        acc = [r["accuracy"] for r in rs if r["accuracy"]]
        if acc:   # the verdicts do not change between rounds; take the last round's
            x = acc[-1]
            summary[name]["accuracy"] = dict(x, spam_caught_pct=100 * x["spam_caught"] /
                                             x["spam"] if x["spam"] else None,
                                             ham_misjudged_pct=100 * x["ham_misjudged"] /
                                             x["ham"] if x["ham"] else None)
    ratios = {}
    for peer in ("spamd", "rspamd"):
        if "sluice" in summary and peer in summary:
            s, p = summary["sluice"], summary[peer]
            if not (s["msgs_per_s"] and p["msgs_per_s"] and s["cpu_ms_per_msg"] and
                    p["cpu_ms_per_msg"] and s["msgs_per_core_s"] and p["msgs_per_core_s"]):
                continue
            ratios.update({f"msgs_per_s sluice/{peer}": s["msgs_per_s"] / p["msgs_per_s"],
                           f"cpu_per_msg {peer}/sluice": p["cpu_ms_per_msg"] / s["cpu_ms_per_msg"],
                           f"msgs_per_core sluice/{peer}":
                               s["msgs_per_core_s"] / p["msgs_per_core_s"]})
    repro = " ".join(shlex.quote(x) for x in [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    doc = {"scenario": "scan", "when": datetime.datetime.now().isoformat(timespec="seconds"),
           "cpus": os.cpu_count(), "args": vars(a), "db": db, "reproduce": repro, "runs": runs,
           "summary": summary, "ratios": ratios, "skipped": skipped,
           "hostile": hostile, "profile": profile}
    with open(os.path.join(a.out, "scan.json"), "w") as f:
        json.dump(doc, f, indent=1)
    f2 = lambda x, nd=1: "n/a" if x is None else f"{x:,.{nd}f}"
    md = ["# Scanning: Sluice's scanner vs SpamAssassin and rspamd\n",
          f"{doc['when']}, {doc['cpus']} CPUs; {a.rounds} interleaved rounds over the same "
          f"{a.limit} corpus messages; sluice rule set {db}; spamd -L with {a.children} "
          f"children; rspamd 3.4 (shipped configuration, no Redis, DNS answering NXDOMAIN) with "
          f"{a.rspamd_workers} normal workers. Reproduce: `{repro}`\n",
          "| scanner | msg/s | CPU ms/msg | msg/s per core | spam caught | ham misjudged |",
          "|---|---:|---:|---:|---:|---:|"]
    for k, v in summary.items():
        acc = v.get("accuracy")
        sc = hm = "n/a"
        if acc:
            sc = f"{f2(acc['spam_caught_pct'])}% ({acc['spam_caught']}/{acc['spam']})"
            hm = f"{f2(acc['ham_misjudged_pct'], 2)}% ({acc['ham_misjudged']}/{acc['ham']})"
        md.append(f"| {k} | {f2(v['msgs_per_s'])} | {f2(v['cpu_ms_per_msg'], 3)} | "
                  f"{f2(v['msgs_per_core_s'])} | {sc} | {hm} |")
    if ratios:
        md += ["", "| ratio | value |", "|---|---:|"]
        md += [f"| {k} | {f2(v, 2)} |" for k, v in ratios.items()]
    if profile and profile.get("parts_us"):
        if "cpu_us_mean" in profile:
            md.append(f"\nsluice per message (CPU, one pass with --profile): mean "
                      f"{profile['cpu_us_mean']} us, p50 {profile['cpu_us_p50']} us, p99 "
                      f"{profile['cpu_us_p99']} us, max {profile['cpu_us_max']} us")
        md += ["", "| sluice, where the time goes | us/msg |", "|---|---:|"]
        md += [f"| {k} | {f2(v)} |" for k, v in profile["parts_us"].items()]
        if profile["pcre2_us"]:
            md += ["", "| PCRE2 by rule (top) | us/msg | runs/msg |", "|---|---:|---:|"]
            md += [f"| {k} | {f2(v['us'])} | {f2(v['runs'], 2)} |"
                   for k, v in profile["pcre2_us"].items()]
    if hostile and "cpu_us_mean" in hostile:
        md.append(f"\nHostile case (sluice, {hostile['messages']} crafted messages of about 60 KB): "
                  f"CPU per message mean {hostile['cpu_us_mean']} us, max {hostile['cpu_us_max']} "
                  f"us; PCRE2 runs {hostile.get('pcre2_runs', 'n/a')}, stopped by a cap "
                  f"{hostile.get('pcre2_capped', 'n/a')}"
                  + (f" ({', '.join(hostile['capped_by'])})" if hostile["capped_by"] else ""))
    if skipped:
        md.append("\nNot run: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    md.append("\nsluice runs on one core, and its figures include its start-up and rule-set load; "
              "spamd and rspamd run on their children/workers (their clients' CPU is not "
              "counted). The rule sets differ unless --db is SpamAssassin's own "
              "rules compiled by sluice-rules (bench/scan-accuracy.sh leaves them in "
              "$WORK/db-spamassassin): then the sluice/spamd ratio compares engines on the same "
              "rules, else the products as shipped. Accuracy: spamd and sluice at threshold 5; "
              "rspamd's \"add header\" or \"reject\" counts as spam (\"greylist\" and "
              "\"rewrite subject\" do not); rspamd runs without Redis, so without Bayes, "
              "and its network tests get NXDOMAIN.")
    gp = shutil.which("gnuplot")
    if gp and summary:
        dat = os.path.join(a.out, "scan.dat")
        with open(dat, "w") as f:
            for k, v in summary.items():
                f.write(f"{k} {v['msgs_per_core_s'] or 0}\n")
        png = os.path.join(a.out, "scan-per-core.png")
        script = (f"set terminal pngcairo size 700,450 font ',10'\nset output '{png}'\n"
                  "set title 'messages scanned per second per core'\nset style fill solid 0.8\n"
                  "set boxwidth 0.6\nset logscale y\nset grid ytics\n"
                  f"plot '{dat}' using 0:2:xtic(1) with boxes notitle\n")
        if subprocess.run([gp], input=script, text=True, capture_output=True).returncode == 0:
            md.append(f"\n![messages per second per core]({os.path.basename(png)})\n\n"
                      f"Messages scanned per second per core. Reproduce: `{repro}`")
    text = "\n".join(md) + "\n"
    with open(os.path.join(a.out, "scan.md"), "w") as f:
        f.write(text)
    print("\n" + text)
    return 1 if any(r["rc"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
