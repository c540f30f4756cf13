#!/usr/bin/python3
"""The node scores as `sluice-rules test` does (issue 20, "How it is checked"): the same messages,
sent over SMTP to a node running SpamAssassin's rule set (compiled by `sluice-rules update` as a
fresh install compiles it), get the same score and the same rules as `sluice-rules test` gives
them with the envelope the node saw (--mail-from, --helo).

The messages: a spread sample of both dev corpora when ../shared/corpus is there (every 25th of
sa-dev, every 5th of sa-hardham-dev), and every .eml the unit tests keep. The compiled rule set is
kept in the build directory (`update --if-changed`), so only the first run pays for the compile."""
import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import sluicetest as st  # noqa: E402
from sluicetest import check, eq  # noqa: E402

RULES = os.path.join(st.BUILD, "patterns", "sluice-rules")
SA_DB = os.path.join(st.BUILD, "test-sa-rules")
SENDER = "newsletter@sender.example"
HELO = "client.test"


def corpus_dir():
    for d in (os.path.join(st.ROOT, "..", "shared", "corpus"), "/work/shared/corpus"):
        if os.path.exists(os.path.join(d, "sa-dev.tar.gz")):
            return d
    return None


def sample(work):
    """(label, path relative to work) of the messages to send, written under work."""
    out = []
    cdir = corpus_dir()
    for name, every in (("sa-dev", 25), ("sa-hardham-dev", 5)):
        if cdir is None or not os.path.exists(os.path.join(cdir, name + ".tar.gz")):
            continue
        with tarfile.open(os.path.join(cdir, name + ".tar.gz")) as tf:
            members = sorted((m for m in tf.getmembers() if m.isfile() and m.name.endswith(".eml")),
                             key=lambda m: m.name)
            for m in members[::every]:
                m.name = os.path.join(name, m.name.lstrip("./"))
                tf.extract(m, work)
                label = "spam" if "/spam/" in m.name else "ham"
                out.append((label, m.name))
    for i, p in enumerate(sorted(glob.glob(os.path.join(st.ROOT, "tests", "unit", "data", "**",
                                                        "*.eml"), recursive=True))):
        name = os.path.join("unit", "%03d-%s" % (i, os.path.basename(p)))
        os.makedirs(os.path.join(work, "unit"), exist_ok=True)
        shutil.copyfile(p, os.path.join(work, name))
        out.append(("ham", name))
    return out


def stored_form(path):
    """The message as it reaches the node over SMTP: no mbox From line, and every line end (a
    bare CR or LF too) CR LF, as smtplib sends it. Both the node and sluice-rules test are given
    exactly these bytes (the file is rewritten so), so any difference is the scanner's."""
    raw = open(path, "rb").read()
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1] if b"\n" in raw else b""
    return re.sub(rb"\r\n|\r|\n", b"\r\n", raw)


def test_node_scores_as_sluice_rules_test():
    r = subprocess.run([RULES, "update", "-o", SA_DB, "--if-changed"], capture_output=True, text=True)
    eq(r.returncode, 0, "compiling SpamAssassin's rules: " + r.stdout[-2000:] + r.stderr[-2000:])
    work = tempfile.mkdtemp(prefix="sluice-verdict-")
    n = None
    try:
        msgs = sample(work)
        check(len(msgs) >= 5, "messages to send: %d" % len(msgs))
        for _, p in msgs:
            data = stored_form(os.path.join(work, p))
            with open(os.path.join(work, p), "wb") as f:
                f.write(data)
        manifest = os.path.join(work, "MANIFEST.tsv")
        with open(manifest, "w") as f:
            f.write("label\tpath\n")
            for label, p in msgs:
                f.write("%s\t%s\n" % (label, p))
        results = os.path.join(work, "results.tsv")
        r = subprocess.run([RULES, "test", "--db", SA_DB, "--corpus", manifest, "--results", results,
                            "--mail-from", SENDER, "--helo", HELO], capture_output=True, text=True)
        eq(r.returncode, 0, "sluice-rules test: " + r.stdout + r.stderr)
        want = {}
        for line in open(results):
            f = line.rstrip("\n").split("\t")
            want[f[1]] = (round(float(f[2]) + 1e-9, 1), f[3] if len(f) > 3 else "")

        # every message tagged and delivered nowhere (the route is a closed port): only the
        # accept line's score and tests are read
        n = st.Node(conf={"node": {"rules_dir": SA_DB, "shards": "1"},
                          "policy": {"tag_score": "-1000", "quarantine_score": "off",
                                     "reject_score": "off"},
                          "limits": {"header_count": "10000", "header_size": "4M"}}).start()
        pat = re.compile(r"accept: .* score=(-?[0-9.]+) action=\S+ tests=(\S*) to=<m(\d+)@example\.test>")
        refused = []
        for i, (_, p) in enumerate(msgs):
            try:
                st.send(n.primary, SENDER, ["m%d@example.test" % i],
                        open(os.path.join(work, p), "rb").read())
            except Exception as e:  # noqa: BLE001 - a refusal is reported below
                refused.append("%s: %s" % (p, e))
        check(st.wait_for(lambda: len(pat.findall(n.read_log())) + len(refused) >= len(msgs), 60),
              "accepted lines: %d of %d\n%s" % (len(pat.findall(n.read_log())), len(msgs),
                                                n.read_log()[-2000:]))
        eq(refused, [], "every message accepted")
        got = {int(i): (float(sc), tests) for sc, tests, i in pat.findall(n.read_log())}
        bad = []
        for i, (_, p) in enumerate(msgs):
            wsc, wtests = want[p]
            gsc, gtests = got[i]
            # the log's list is cut with "..." when long: compare what it has
            wl = sorted(t for t in wtests.split(",") if t and t != "none")
            gl = [t for t in gtests.split(",") if t and t != "none" and not t.endswith("...")]
            if abs(gsc - wsc) > 0.051 or (not gtests.endswith("...") and sorted(gl) != wl) or \
                    not set(gl) <= set(wl):
                bad.append("%s: node %.1f %s, sluice-rules test %.1f %s" % (p, gsc, gtests, wsc, wtests))
        eq(bad, [], "node and sluice-rules test agree on %d messages" % len(msgs))
        spam = sum(1 for i, _ in enumerate(msgs) if got[i][0] >= 5.0)
        check(0 < spam < len(msgs) or len(msgs) < 20, "the sample has both verdicts: %d spam" % spam)
        eq(n.stop(), 0, "clean stop")
    finally:
        if n is not None:
            n.cleanup()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(st.run_suite("node_verdict", globals()))
