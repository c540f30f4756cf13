#!/usr/bin/python3
"""Tests of the benchmark tools (bench/): the harness, sluice-load against Postfix's smtp-sink,
sluice-load's own sink, its idle mode, STARTTLS over its memory BIOs, and smoke runs of the
ingress, scaling, scanning (sluice, spamd, rspamd) and relay (sluice, sluice+filter, Postfix)
scenarios. One line per check; exit 1 if any failed. No check asserts a speed.

  /usr/bin/python3 tests/integration/bench/test_bench.py [--build DIR] [--no-scenario]

DIR defaults to $SLUICE_BUILD_ROOT, else /tmp/build-bench. Needs postfix (smtp-sink,
smtp-source), swaks, spamassassin, rspamd, dnsmasq and openssl from .ci/deps. Uses loopback
ports 27100-27130.
"""
import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, os.path.join(ROOT, "bench", "peers"))
import peers  # noqa: E402
ap = argparse.ArgumentParser()
ap.add_argument("--build", default=os.environ.get("SLUICE_BUILD_ROOT", "/tmp/build-bench"))
ap.add_argument("--no-scenario", action="store_true", help="skip the run-ingress smoke run")
args = ap.parse_args()
LOAD = os.path.join(args.build, "bench", "sluice-load")
SELFTEST = os.path.join(args.build, "bench", "bench_selftest")
CORPUS = peers.default_corpus(ROOT)
WORK = tempfile.mkdtemp(prefix="sluice-bench-test.")
os.chmod(WORK, 0o755)   # the Postfix peer's processes (user postfix) must reach their queue
passed = failed = 0
procs = []


def check(name, ok, detail=""):
    global passed, failed
    print(("ok   " if ok else "FAIL ") + name + ("" if ok or not detail else f"  ({detail})"),
          flush=True)
    if ok:
        passed += 1
    else:
        failed += 1
    return ok


def wait_port(port, secs=10):
    end = time.time() + secs
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def port_free(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
        return False
    except OSError:
        return True


def start(cmd, port, **kw):
    p = subprocess.Popen(cmd, **kw)
    procs.append(p)
    if not wait_port(port):
        raise RuntimeError(f"{cmd[0]} did not listen on {port}")
    return p


def stop(p, sig=signal.SIGTERM):
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def load(*a, timeout=120):
    return subprocess.run([LOAD] + list(a), capture_output=True, text=True, timeout=timeout)


def readjson(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def records(path, cols):
    out = {}
    try:
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) == cols:
                    out.setdefault(parts[0], []).append(parts[1:])
    except OSError:
        pass
    return out


def t_harness():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "harness", "selftest.py"),
                        SELFTEST], capture_output=True, text=True, timeout=300)
    check("harness: benchmarks registered from C report their counters (selftest.py)",
          r.returncode == 0, r.stdout[-600:] + r.stderr[-300:])


def t_smtp_sink():
    port = 27100
    for p in (port,):
        if not port_free(p):
            check(f"port {p} free", False, "a leftover server is listening")
            return
    out = open(os.path.join(WORK, "smtp-sink.out"), "w")
    sink = start(["smtp-sink", "-c", "-u", "postfix", f"127.0.0.1:{port}", "256"], port,
                 stdout=out, stderr=subprocess.STDOUT)
    n = 1234
    rec = os.path.join(WORK, "send-smtp-sink.rec")
    js = os.path.join(WORK, "send-smtp-sink.json")
    r = load("--server", f"127.0.0.1:{port}", "-c", "8", "-n", str(n), "-m", "50", "-r", "2",
             "--record", rec, "--json", js, "-q", "--id-prefix", "t1")
    j = readjson(js)
    check("sluice-load vs smtp-sink: exit 0", r.returncode == 0, r.stderr[-300:])
    check("sluice-load vs smtp-sink: reports exactly the messages sent",
          j.get("messages_ok") == n and j.get("messages_failed") == 0,
          f"ok {j.get('messages_ok')} failed {j.get('messages_failed')}")
    check("sluice-load vs smtp-sink: every recipient accepted", j.get("rcpts_ok") == 2 * n)
    recs = records(rec, 2)
    check("sluice-load record: one 250 line per message, unique ids",
          len(recs) == n and all(v == [["250"]] for v in recs.values()), f"{len(recs)} ids")
    time.sleep(0.3)
    stop(sink)
    out.close()
    with open(os.path.join(WORK, "smtp-sink.out")) as f:
        counters = f.read().replace("\r", "\n").split()
    mesg = [int(x.split("=")[1]) for x in counters if x.startswith("mesg=")]
    check("smtp-sink counted exactly the messages sluice-load reports", mesg and mesg[-1] == n,
          f"smtp-sink mesg={mesg[-1] if mesg else None}")
    # Lock-step (no pipelining), one message per connection, corpus bodies.
    sink = start(["smtp-sink", "-u", "postfix", f"127.0.0.1:{port}", "256"], port,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    js = os.path.join(WORK, "send-smtp-sink2.json")
    r = load("--server", f"127.0.0.1:{port}", "-c", "4", "-n", "200", "-m", "1",
             "--no-pipelining", "--corpus", CORPUS, "--json", js, "-q")
    j = readjson(js)
    check("sluice-load lock-step, 1 msg/connection, corpus: all accepted",
          r.returncode == 0 and j.get("messages_ok") == 200 and j.get("connections", 0) >= 200,
          f"{j.get('messages_ok')} ok, {j.get('connections')} connections {r.stderr[-200:]}")
    stop(sink)


def t_own_sink():
    port = 27101
    rec_sink = os.path.join(WORK, "sink.rec")
    js_sink = os.path.join(WORK, "sink.json")
    cert, key = os.path.join(WORK, "cert.pem"), os.path.join(WORK, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "2", "-subj", "/CN=sink.test"], capture_output=True,
                   check=True)
    sink = start([LOAD, "sink", "--listen", f"127.0.0.1:{port}", "--record", rec_sink,
                  "--json", js_sink, "--tls-cert", cert, "--tls-key", key, "-t", "2", "-q"], port,
                 stderr=subprocess.DEVNULL)
    sent = {}
    # 1. sluice-load with corpus bodies, pipelined, with body hashes.
    rec1 = os.path.join(WORK, "send1.rec")
    r = load("--server", f"127.0.0.1:{port}", "-c", "10", "-n", "777", "-m", "20", "--corpus",
             CORPUS, "--record", rec1, "--record-hash", "--id-prefix", "s1", "-q")
    check("sluice-load -> sink (corpus, pipelined): exit 0", r.returncode == 0, r.stderr[-300:])
    for k, v in records(rec1, 3).items():
        sent[k] = v[0][1]
    # 2. STARTTLS, lock-step.
    rec2 = os.path.join(WORK, "send2.rec")
    js2 = os.path.join(WORK, "send2.json")
    r = load("--server", f"127.0.0.1:{port}", "-c", "5", "-n", "150", "-m", "10", "--starttls",
             "--no-pipelining", "--record", rec2, "--record-hash", "--id-prefix", "s2",
             "--json", js2, "-q")
    j = readjson(js2)
    check("sluice-load STARTTLS -> sink: all accepted, one handshake per connection",
          r.returncode == 0 and j.get("messages_ok") == 150 and
          j.get("tls_ok") == j.get("connections") and j.get("tls_failed") == 0,
          f"{j.get('messages_ok')} ok, tls {j.get('tls_ok')}/{j.get('connections')}")
    for k, v in records(rec2, 3).items():
        sent[k] = v[0][1]
    # 3. another client: swaks, with a folded Message-ID and lines that need dot-stuffing.
    body = "Line one\r\n.starts with a dot\r\n..two dots\r\nend\r\n"
    eml = os.path.join(WORK, "swaks.eml")
    with open(eml, "w", newline="") as f:
        f.write("Message-ID:\r\n <swaks.1@test>\r\nSubject: folded\r\n\r\n" + body)
    r = subprocess.run(["swaks", "--server", f"127.0.0.1:{port}", "--to", "a@bench.test",
                        "--from", "b@bench.test", "--data", eml, "-tls"],
                       capture_output=True, text=True, timeout=60)
    check("swaks (STARTTLS) -> sink: accepted", r.returncode == 0, r.stdout[-300:])
    import hashlib
    # swaks ends the data with an empty line of its own before the final dot.
    sent["<swaks.1@test>"] = hashlib.sha256((body + "\r\n").encode()).hexdigest()
    # 4. smtp-source: no Message-ID header; counted all the same.
    r = subprocess.run(["smtp-source", "-s", "3", "-m", "30", "-l", "1000", "-d",
                        f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60)
    check("smtp-source -> sink: exit 0", r.returncode == 0, r.stderr[-200:])
    time.sleep(0.3)
    stop(sink)
    got = records(rec_sink, 2)
    total = sum(len(v) for v in got.values())
    want_total = 777 + 150 + 1 + 30
    check("sink counts exactly (records)", total == want_total, f"{total} != {want_total}")
    js = readjson(js_sink)
    check("sink counts exactly (report)", js.get("messages_ok") == want_total,
          f"{js.get('messages_ok')}")
    others = [k for k in got if k not in sent]
    check("sink: smtp-source's 30 messages recorded under their own Message-IDs",
          len(others) == 30 and "-" not in got, f"{len(others)} others")
    missing = [k for k in sent if k not in got]
    check("sink: every Message-ID sent arrived once", not missing and
          all(len(got[k]) == 1 for k in sent), f"missing {missing[:3]}")
    wrong = [k for k in sent if k in got and got[k][0][0] != sent[k]]
    check("sink: body SHA-256 equals the sender's (after unstuffing)", not wrong,
          f"{len(wrong)} differ, e.g. {wrong[:2]}")


def t_idle():
    port = 27102
    sink = start([LOAD, "sink", "--listen", f"127.0.0.1:{port}", "-q"], port,
                 stderr=subprocess.DEVNULL)
    ready = os.path.join(WORK, "idle.ready")
    js = os.path.join(WORK, "idle.json")
    p = subprocess.Popen([LOAD, "idle", "--server", f"127.0.0.1:{port}", "--connections", "500",
                          "--hold", "1", "--source", "127.0.0.2-127.0.0.9", "--ready-file", ready,
                          "--json", js, "-q"], stderr=subprocess.DEVNULL)
    end = time.time() + 60
    while not os.path.exists(ready) and time.time() < end and p.poll() is None:
        time.sleep(0.05)
    time.sleep(0.1)
    est = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
                         capture_output=True, text=True).stdout.splitlines()
    srcs = {line.split()[-2].rsplit(":", 1)[0] for line in est if line.split()}
    p.wait(60)
    j = readjson(js)
    check("idle: 500 connections held", j.get("idle_held") == 500 and p.returncode == 0,
          f"held {j.get('idle_held')} rc {p.returncode}")
    check("idle: connections really open while held (ss)", len(est) >= 500, f"{len(est)}")
    check("idle: client sources spread over 127.0.0.2-9", len(srcs) == 8, f"{sorted(srcs)}")
    stop(sink)


def t_refused():
    r = load("--server", "127.0.0.1:27119", "-c", "2", "-n", "5", "-q", timeout=60)
    check("sluice-load: a closed port fails the run (non-zero exit)", r.returncode != 0)


def t_scenario():
    out = os.path.join(WORK, "ingress")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run-ingress.py"), "--smoke",
                        "--build", args.build, "--out", out, "--port-base", "27110"],
                       capture_output=True, text=True, timeout=600)
    doc = readjson(os.path.join(out, "ingress.json"))
    check("run-ingress --smoke: exit 0", r.returncode == 0, (r.stdout + r.stderr)[-600:])
    legs = {(x["server"], x["client"]) for x in doc.get("runs", [])}
    check("run-ingress --smoke: postfix and smtp-sink legs ran with both clients",
          {("postfix", "sluice-load"), ("postfix", "smtp-source"), ("smtp-sink", "sluice-load"),
           ("smtp-sink", "smtp-source")} <= legs, f"{sorted(legs)}")
    pf = [x for x in doc.get("runs", []) if x["server"] == "postfix"]
    check("run-ingress --smoke: Postfix's hold queue has every accepted message",
          pf and all(x["server_stored"] == x["ok"] for x in pf),
          f"{[(x['ok'], x['server_stored']) for x in pf]}")
    check("run-ingress --smoke: report and plots written",
          os.path.exists(os.path.join(out, "ingress.md")) and
          (shutil.which("gnuplot") is None or os.path.exists(os.path.join(out, "ingress-rate.png"))))


def t_other_scenarios():
    node = os.path.join(args.build, "dataplane", "sluice-node")
    out = os.path.join(WORK, "scaling")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run-scaling.py"), "--smoke",
                        "--build", args.build, "--out", out, "--port-base", "27113"],
                       capture_output=True, text=True, timeout=600)
    doc = readjson(os.path.join(out, "scaling.json"))
    check("run-scaling --smoke: exit 0 and a summary", r.returncode == 0 and doc.get("summary"),
          (r.stdout + r.stderr)[-400:])
    if os.access(node, os.X_OK):
        check("run-scaling --smoke: the sluice legs ran",
              not any(k.startswith("sluice") for k in doc.get("unavailable", {})),
              f"{doc.get('unavailable')}")
    out = os.path.join(WORK, "scan")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run-scan.py"), "--smoke",
                        "--build", args.build, "--out", out, "--port", "27118",
                        "--rspamd-port", "27121", "--dns-port", "27122"],
                       capture_output=True, text=True, timeout=600)
    doc = readjson(os.path.join(out, "scan.json"))
    legs = {x["server"]: x for x in doc.get("runs", [])}
    check("run-scan --smoke: sluice and spamd scanned every message",
          r.returncode == 0 and legs.get("sluice", {}).get("ok") == 20 and
          (shutil.which("spamd") is None or legs.get("spamd", {}).get("ok") == 20),
          (r.stdout + r.stderr)[-400:])
    if shutil.which("rspamd"):
        rs = legs.get("rspamd", {})
        check("run-scan --smoke: rspamd (own config, NXDOMAIN resolver) scanned every message",
              rs.get("ok") == 20 and rs.get("cpu_s", 0) > 0,
              f"{doc.get('skipped')} {rs.get('ok')} {rs.get('stderr')}")
        acc = rs.get("accuracy") or {}
        check("run-scan --smoke: accuracy counted over the whole subset for every scanner",
              all(sum((x.get("accuracy") or {}).get(k, 0) for k in ("spam", "ham")) == 20
                  for x in legs.values()) and acc.get("spam", 0) > 0,
              f"{[(k, v.get('accuracy')) for k, v in legs.items()]}")
        check("run-scan --smoke: sluice/rspamd ratios reported",
              "msgs_per_core sluice/rspamd" in doc.get("ratios", {}), f"{doc.get('ratios')}")
        # rspamd renames its processes ("rspamd: main process"), so look at the ports.
        check("run-scan --smoke: rspamd and its resolver stopped (ports 27121, 27122 closed)",
              port_free(27121) and port_free(27122))


def relay_rules_db():
    """The shipped add-on set plus one rule on sluice-load's synthetic Subject: the add-on set
    keeps only rules with evidence on real mail, and none of them need fire on a load message,
    so this one shows that the filtering leg scans (a score is logged only if a rule fired)."""
    rules = os.path.join(args.build, "patterns", "sluice-rules")
    extra = os.path.join(WORK, "relay-load-rule.cf")
    with open(extra, "w") as f:
        f.write("header SL_TEST_LOAD_SUBJECT Subject =~ /^sluice-load \\d+ bytes$/\n"
                "score  SL_TEST_LOAD_SUBJECT 0.5\n")
    cfs = sorted(glob.glob(os.path.join(ROOT, "patterns", "rules", "*.cf")))
    db = os.path.join(WORK, "relay-rules")
    r = subprocess.run([rules, "compile", "-o", db] + cfs + [extra], capture_output=True, text=True)
    check("run-relay --smoke: the rules for the filtering leg compile", r.returncode == 0,
          r.stderr[-400:])
    return db


def t_relay_scenario():
    node = os.path.join(args.build, "dataplane", "sluice-node")
    out = os.path.join(WORK, "relay")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run-relay.py"), "--smoke",
                        "--filter", "--rules-db", relay_rules_db(), "--build", args.build,
                        "--out", out, "--port-base", "27123"],
                       capture_output=True, text=True, timeout=600)
    doc = readjson(os.path.join(out, "relay.json"))
    runs = doc.get("runs", [])
    legs = {(x["relay"], x["client"]) for x in runs}
    want = {("postfix", "sluice-load"), ("postfix", "smtp-source")}
    if os.access(node, os.X_OK):
        want |= {(s, c) for s in ("sluice", "sluice+filter")
                 for c in ("sluice-load", "smtp-source")}
    check("run-relay --smoke --filter: every relay ran with both clients", want <= legs,
          f"{sorted(legs)} {doc.get('unavailable')} {(r.stdout + r.stderr)[-300:]}")
    pf = [x for x in runs if x["relay"] == "postfix"]
    check("run-relay --smoke: Postfix relayed every message to the sink (counted there)",
          pf and all(x["status"] == "ok" and x["delivered"] == 100 for x in pf),
          f"{[(x['delivered'], x['status']) for x in pf]}")
    sl = [x for x in runs if x["relay"].startswith("sluice")]
    check("run-relay --smoke: Sluice (plain and filtering) relayed every message to the sink",
          sl and all(x["status"] == "ok" and x["delivered"] == 100 for x in sl),
          f"{[(x['relay'], x['delivered'], x['status']) for x in sl]}")
    check("run-relay --smoke: exit 0", r.returncode == 0, (r.stdout + r.stderr)[-400:])
    ld = [x for x in runs if x["client"] == "sluice-load" and x["status"] == "ok"]
    check("run-relay --smoke: end-to-end rate, relay CPU and DATA->250 p50/p99 for each leg",
          ld and all(x["e2e_msgs_per_s"] and x["cpu_us_per_msg"] is not None and
                     (x["data_to_250_ms"] or {}).get("p99") is not None for x in ld),
          f"{[(x['relay'], x['e2e_msgs_per_s'], x['data_to_250_ms']) for x in ld]}")
    if os.access(node, os.X_OK):
        try:
            with open(os.path.join(out, "sluice-filter", "sluice-node.log")) as f:
                scores = [w for w in f.read().split() if w.startswith("score=")]
        except OSError:
            scores = []
        check("run-relay --smoke: the filtering node ran its rules (non-zero scores logged)",
              any(w not in ("score=0.000", "score=0.0") for w in scores), f"{len(scores)} scores logged")
    check("run-relay --smoke: report and plots written",
          os.path.exists(os.path.join(out, "relay.md")) and
          (shutil.which("gnuplot") is None or os.path.exists(os.path.join(out, "relay-rate.png"))))


def t_sync_scenario():
    out = os.path.join(WORK, "sync")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "bench", "run-sync.py"), "--smoke",
                        "--build", args.build, "--out", out, "--port-base", "27140"],
                       capture_output=True, text=True, timeout=300)
    check("run-sync --smoke: exit 0", r.returncode == 0, (r.stdout + r.stderr)[-600:])
    doc = readjson(os.path.join(out, "sync.json"))
    single = doc.get("single", {})
    check("run-sync --smoke: every change applied on the node, and the peer's reached the replica",
          single.get("sluice", {}).get("n") == 5 and single.get("nats", {}).get("n") == 5,
          f"{single}")
    check("run-sync --smoke: latencies are positive and the ratio is given",
          all((single.get(k) or {}).get("p50_ms", 0) > 0 for k in ("sluice", "nats")) and
          single.get("ratio_p50"), f"{single}")
    check("run-sync --smoke: the burst applied, nats-server RSS and CPU measured",
          doc.get("burst", {}).get("applied_s") and doc.get("nats_burst"), f"{doc.get('burst')}")


def main():
    for exe in (LOAD, SELFTEST):
        if not os.access(exe, os.X_OK):
            print(f"FAIL missing {exe} (build {args.build} first)")
            return 1
    tests = [t_harness, t_smtp_sink, t_own_sink, t_idle, t_refused]
    if not args.no_scenario:
        tests += [t_scenario, t_other_scenarios, t_relay_scenario, t_sync_scenario]
    try:
        for t in tests:
            try:
                t()
            except Exception as e:  # a crashed check is a failed check
                check(f"{t.__name__} ran", False, repr(e))
    finally:
        for p in procs:
            stop(p, signal.SIGKILL)
        shutil.rmtree(WORK, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
