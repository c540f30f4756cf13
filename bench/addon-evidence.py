#!/usr/bin/python3
"""addon-evidence.py - does each rule of Sluice's own add-on set (patterns/rules/) earn its place
on top of SpamAssassin's rules? (issue 20, item 1: a rule stays only where it lowers neither
recall nor raises false positives on both dev sets.)

Compiles SpamAssassin's rules (as bench/scan-accuracy.sh does: Debian's, the site's, Bayes off)
once alone and once with the add-on set after them (`sluice-rules update --add`), scores both dev
corpora with each, and reports per set:
  - spam caught and ham misjudged, SpamAssassin's rules alone and with the add-on set;
  - per scored add-on rule: the spam and ham it fires on, and its marginal effect with
    SpamAssassin's rules: spam messages that are caught only because of its score (total at or
    above the threshold, below it without the rule's score) and ham messages misjudged only
    because of it; then its verdict: "earns" (gains spam on a set, misjudges no ham on
    either), "harmful" (misjudges ham on a set), "neutral" (changes no verdict).
The effect is that of the rule's own score; a meta is a rule of its own with its own score.

  bench/addon-evidence.py --build BUILD [--work DIR] [--corpus-dir DIR] [--out FILE.md]
Needs the corpora ../shared/corpus/sa-dev.tar.gz and sa-hardham-dev.tar.gz (extracted to
WORK once). Takes a few CPU-minutes (two compiles of SpamAssassin's rules).
"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tarfile

THR = 5.0
SRC = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def sh(cmd, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode not in (0,):
        sys.exit("%s: exit %d\n%s%s" % (" ".join(cmd[:3]), r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
    return r


def results(path):
    out = {}
    for line in open(path):
        f = line.rstrip("\n").split("\t")
        out[f[1]] = (f[0], float(f[2]), set(x for x in (f[3] if len(f) > 3 else "").split(",") if x))
    return out


def addon_scores():
    """name -> score (set 0: the first value) of every scored rule in patterns/rules/."""
    sc = {}
    for p in sorted(glob.glob(os.path.join(SRC, "patterns", "rules", "*.cf"))):
        for line in open(p):
            m = re.match(r"\s*score\s+(\S+)\s+(-?[0-9.]+)", line)
            if m and not m.group(1).startswith("__"):
                sc[m.group(1)] = float(m.group(2))
    return sc


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--work", default="/tmp/addon-evidence")
    ap.add_argument("--corpus-dir", default=os.path.join(SRC, "..", "shared", "corpus"))
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rules_bin = os.path.join(a.build, "patterns", "sluice-rules")
    os.makedirs(a.work, exist_ok=True)
    site = os.path.join(a.work, "site")
    shutil.rmtree(site, ignore_errors=True)
    os.makedirs(site)
    for p in glob.glob("/etc/spamassassin/*.pre") + glob.glob("/etc/spamassassin/*.cf"):
        shutil.copy(p, site)
    with open(os.path.join(site, "local.cf"), "a") as f:
        f.write("\n# added by bench/addon-evidence.py\nuse_bayes 0\nbayes_auto_learn 0\n")
    addon = sorted(glob.glob(os.path.join(SRC, "patterns", "rules", "*.cf")))
    dbs = {"sa": os.path.join(a.work, "db-sa"), "sa+addon": os.path.join(a.work, "db-sa-addon")}
    for name, db in dbs.items():
        cmd = [rules_bin, "update", "-o", db, "--site", site, "--if-changed"]
        for p in addon if name == "sa+addon" else []:
            cmd += ["--add", p]
        print("compiling %s ..." % name, flush=True)
        sh(cmd)
    scores = addon_scores()
    report = []
    per_rule = {r: {} for r in scores}
    for tar in ("sa-dev", "sa-hardham-dev"):
        d = os.path.join(a.work, tar)
        if not os.path.exists(os.path.join(d, "MANIFEST.tsv")):
            os.makedirs(d, exist_ok=True)
            with tarfile.open(os.path.join(a.corpus_dir, tar + ".tar.gz")) as tf:
                tf.extractall(d)
        res = {}
        for name, db in dbs.items():
            out = os.path.join(d, "results-%s.tsv" % name)
            sh([rules_bin, "test", "--db", db, "--corpus", os.path.join(d, "MANIFEST.tsv"),
                "--results", out])
            res[name] = results(out)
        for name in dbs:
            r = res[name]
            spam = [v for v in r.values() if v[0] == "spam"]
            ham = [v for v in r.values() if v[0] == "ham"]
            caught = sum(1 for v in spam if v[1] >= THR)
            fp = sum(1 for v in ham if v[1] >= THR)
            report.append("| %s | %s | %s | %s |" % (
                tar, name,
                "%.1f%% (%d/%d)" % (100.0 * caught / len(spam), caught, len(spam)) if spam else "-",
                "%.2f%% (%d/%d)" % (100.0 * fp / len(ham), fp, len(ham)) if ham else "-"))
        for rule, s in scores.items():
            st = {"spam": 0, "ham": 0, "gain": 0, "fp": 0}
            for label, total, fired in res["sa+addon"].values():
                if rule not in fired:
                    continue
                st[label] += 1
                if total >= THR and total - s < THR:
                    st["gain" if label == "spam" else "fp"] += 1
            per_rule[rule][tar] = st
    lines = ["# Sluice's add-on rules on top of SpamAssassin's (threshold %.1f)" % THR, "",
             "| dev set | rules | spam caught | ham misjudged |", "|---|---|---:|---:|"] + report
    lines += ["", "Per rule: fires on spam/ham; spam caught only with it / ham misjudged only with it",
              "", "| rule | score | sa-dev | sa-hardham-dev | verdict |", "|---|---:|---|---|---|"]
    verdicts = {}
    for rule in sorted(scores):
        sets = per_rule[rule]
        fp = sum(x["fp"] for x in sets.values())
        gain = sum(x["gain"] for x in sets.values())
        v = "harmful" if fp else "earns" if gain else "neutral"
        verdicts[rule] = v
        cell = lambda x: "%d/%d; +%d / %d FP" % (x["spam"], x["ham"], x["gain"], x["fp"])  # noqa: E731
        lines.append("| %s | %.2f | %s | %s | %s |" % (rule, scores[rule], cell(sets["sa-dev"]),
                                                        cell(sets["sa-hardham-dev"]), v))
    lines += ["", "earns %d, neutral %d, harmful %d" % tuple(
        sum(1 for v in verdicts.values() if v == k) for k in ("earns", "neutral", "harmful"))]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
