#!/usr/bin/python3
"""The harness's own test: runs bench_selftest (benchmarks registered from C) and checks that
Google Benchmark reports what the C code set: arguments, iterations, bytes and items processed,
custom counters with their flags, labels, context, and that an error reaches the exit status.
Usage: selftest.py PATH/TO/bench_selftest. Prints one line per check; exits 1 on any failure."""
import json
import os
import subprocess
import sys

exe = sys.argv[1]
failed = 0
passed = 0


def check(name, ok, detail=""):
    global failed, passed
    passed += 1 if ok else 0
    print(("ok   " if ok else "FAIL ") + name + (f" ({detail})" if detail and not ok else ""))
    if not ok:
        failed += 1


env = dict(os.environ)
env.pop("SLUICE_BENCH_SELFTEST_FAIL", None)
r = subprocess.run([exe, "--benchmark_format=json", "--benchmark_min_time=0.01"],
                   capture_output=True, text=True, env=env, timeout=120)
check("exit status 0", r.returncode == 0, r.stderr[-500:])
try:
    doc = json.loads(r.stdout)
except ValueError as e:
    doc = {"benchmarks": [], "context": {}}
    check("output is JSON", False, str(e))
bm = {b["name"]: b for b in doc.get("benchmarks", [])}
check("context key from C", doc.get("context", {}).get("selftest_context") == "present")
for n in (64, 1024):
    b = bm.get(f"selftest_sum/{n}")
    check(f"selftest_sum/{n} ran", b is not None and b.get("iterations", 0) > 0)
    if b is None:
        continue
    it, t = b["iterations"], b["real_time"]
    check(f"selftest_sum/{n} time unit us", b.get("time_unit") == "us")
    check(f"selftest_sum/{n} calls == iterations", b.get("calls") == it, f"{b.get('calls')} vs {it}")
    check(f"selftest_sum/{n} tag from arg", b.get("tag") == 42)
    check(f"selftest_sum/{n} per_call invariant/avg == 3", abs(b.get("per_call", 0) - 3.0) < 1e-9)
    check(f"selftest_sum/{n} label", b.get("label") == "selftest-label")
    # bytes_per_second = iterations * n / (cpu seconds); check it is consistent with the time.
    secs = b["cpu_time"] * it / 1e6
    bps = b.get("bytes_per_second", 0)
    check(f"selftest_sum/{n} bytes_per_second", bps > 0 and abs(bps * secs / (it * n) - 1) < 0.05,
          f"{bps} over {secs}s")
    ips = b.get("items_per_second", 0)
    check(f"selftest_sum/{n} items_per_second", ips > 0 and abs(ips * secs / it - 1) < 0.05)
    check(f"selftest_sum/{n} rate counter", abs(b.get("sum_rate", 0) - ips) / ips < 1e-6)
b = bm.get("selftest_batch/x:7/y:9/iterations:64")
check("selftest_batch named args and fixed iterations", b is not None and b.get("iterations") == 64,
      ",".join(bm))
if b:
    check("selftest_batch batches == 64/16", b.get("batches") == 4)
    check("selftest_batch args reach C", b.get("a0") == 7 and b.get("a1") == 9)

env["SLUICE_BENCH_SELFTEST_FAIL"] = "1"
r = subprocess.run([exe, "--benchmark_format=json", "--benchmark_filter=selftest_fail"],
                   capture_output=True, text=True, env=env, timeout=60)
check("an error gives exit status 1", r.returncode == 1)
try:
    b = json.loads(r.stdout)["benchmarks"][0]
    check("error reported in JSON", b.get("error_occurred") is True
          and "deliberate" in b.get("error_message", ""))
except (ValueError, IndexError, KeyError) as e:
    check("error reported in JSON", False, str(e))
r = subprocess.run([exe, "--no_such_flag"], capture_output=True, text=True, timeout=60)
check("an unknown flag gives exit status 1", r.returncode == 1)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
