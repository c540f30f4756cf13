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


def compile_db(rules_bin, db, site, adds):
    cmd = [rules_bin, "update", "-o", db, "--site", site, "--if-changed"]
    for p in adds:
        cmd += ["--add", p]
    sh(cmd)


def score_sets(a, rules_bin, dbs):
    """{set: {db name: results}} over both dev corpora."""
    out = {}
    for tar in ("sa-dev", "sa-hardham-dev"):
        d = os.path.join(a.work, tar)
        if not os.path.exists(os.path.join(d, "MANIFEST.tsv")):
            os.makedirs(d, exist_ok=True)
            with tarfile.open(os.path.join(a.corpus_dir, tar + ".tar.gz")) as tf:
                tf.extractall(d)
        out[tar] = {}
        for name, db in dbs.items():
            res = os.path.join(d, "results-%s.tsv" % name)
            sh([rules_bin, "test", "--db", db, "--corpus", os.path.join(d, "MANIFEST.tsv"),
                "--results", res])
            out[tar][name] = results(res)
    return out


def totals(r):
    spam = [v for v in r.values() if v[0] == "spam"]
    ham = [v for v in r.values() if v[0] == "ham"]
    caught = sum(1 for v in spam if v[1] >= THR)
    fp = sum(1 for v in ham if v[1] >= THR)
    return (caught, len(spam), fp, len(ham))


def fmt_totals(t):
    caught, ns, fp, nh = t
    return ("%.1f%% (%d/%d)" % (100.0 * caught / ns, caught, ns) if ns else "-",
            "%.2f%% (%d/%d)" % (100.0 * fp / nh, fp, nh) if nh else "-")


def rule_effects(res, scores, dropped):
    """rule -> {set: counts} for the scored add-on rules still in, from the sa+addon results."""
    per_rule = {}
    for rule, s in scores.items():
        if rule in dropped:
            continue
        per_rule[rule] = {}
        for tar, byname in res.items():
            # where the rule's own score flips the verdict: a spam caught (gain) or lost
            # (loss), a ham misjudged (fp) or saved (saved; a negative score's work)
            st = {"spam": 0, "ham": 0, "gain": 0, "loss": 0, "fp": 0, "saved": 0}
            for label, total, fired in byname["sa+addon"].values():
                if rule not in fired:
                    continue
                st[label] += 1
                with_it, without = total >= THR, total - s >= THR
                if with_it != without:
                    if label == "spam":
                        st["gain" if with_it else "loss"] += 1
                    else:
                        st["fp" if with_it else "saved"] += 1
            per_rule[rule][tar] = st
    return per_rule


def set_harm(res, scores, dropped, eff):
    """A kept rule to drop because the kept set, on top of SpamAssassin's, misjudges a ham or
    loses a spam that SpamAssassin's rules alone do not; None when it does neither."""
    suspects = {}
    for byname in res.values():
        alone, both = byname["sa"], byname["sa+addon"]
        for path, (label, total, fired) in both.items():
            base = alone.get(path)
            if base is None:
                continue
            worse = (label == "ham" and total >= THR and base[1] < THR) or \
                    (label == "spam" and total < THR and base[1] >= THR)
            for r in fired if worse else ():
                if r in scores and r not in dropped:
                    suspects[r] = suspects.get(r, 0) + 1
    if not suspects:
        return None

    def worth(r):
        sets = eff.get(r, {})
        return sum(x["gain"] + x["saved"] - x["fp"] - x["loss"] for x in sets.values())
    # the least useful first; among equals the one in most bad verdicts, then the name
    return min(suspects, key=lambda r: (worth(r), -suspects[r], r))


def verdict(sets):
    harm = sum(x["fp"] + x["loss"] for x in sets.values())
    good = sum(x["gain"] + x["saved"] for x in sets.values())
    return "harmful" if harm else "earns" if good else "neutral"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--work", default="/tmp/addon-evidence")
    ap.add_argument("--corpus-dir", default=os.path.join(SRC, "..", "shared", "corpus"))
    ap.add_argument("--out", default=None)
    ap.add_argument("--prune", action="store_true",
                    help="drop the harmful rules (score 0 in an overlay), score again, until none "
                         "is harmful; then the neutral ones; then, while the set as a whole "
                         "misjudges a ham or loses a spam SpamAssassin's rules alone do not, "
                         "the least useful rule firing there; report the set that is left")
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
    overlay = os.path.join(a.work, "zz_dropped.cf")
    dbs = {"sa": os.path.join(a.work, "db-sa"), "sa+addon": os.path.join(a.work, "db-sa-addon")}
    scores = addon_scores()
    dropped, first, phase = set(), None, "harmful"
    print("compiling SpamAssassin's rules ...", flush=True)
    compile_db(rules_bin, dbs["sa"], site, [])
    for _ in range(12):
        with open(overlay, "w") as f:
            f.write("# rules dropped by bench/addon-evidence.py --prune\n")
            for r in sorted(dropped):
                f.write("score %s 0\n" % r)
        print("compiling with the add-on set (%d rules dropped) ..." % len(dropped), flush=True)
        compile_db(rules_bin, dbs["sa+addon"], site, addon + [overlay])
        res = score_sets(a, rules_bin, dbs)
        eff = rule_effects(res, scores, dropped)
        if first is None:
            first = (res, eff)
        if not a.prune:
            break
        harmful = {r for r, sets in eff.items() if verdict(sets) == "harmful"}
        if harmful:              # their absence changes the others' effect: score again
            dropped |= harmful
            continue
        if phase == "harmful":   # then the rules that change no verdict go too, once
            phase = "neutral"
            neutral = {r for r, sets in eff.items() if verdict(sets) == "neutral"}
            if neutral:
                dropped |= neutral
                continue
        # the set as a whole: several rules together may misjudge a ham (or lose a spam) that
        # none does alone; of the rules firing there, the one worth least goes
        worst = set_harm(res, scores, dropped, eff)
        if worst:
            dropped.add(worst)
            continue
        break
    res0, eff0 = first
    lines = ["# Sluice's add-on rules on top of SpamAssassin's (threshold %.1f)" % THR, "",
             "| dev set | rules | spam caught | ham misjudged |", "|---|---|---:|---:|"]
    for tar, b in res0.items():
        for name in ("sa", "sa+addon"):
            c, f = fmt_totals(totals(b[name]))
            lines.append("| %s | %s | %s | %s |" % (tar, "SpamAssassin's" if name == "sa" else
                                                     "SpamAssassin's + the whole add-on set", c, f))
    if a.prune:
        for tar, b in res.items():
            c, f = fmt_totals(totals(b["sa+addon"]))
            lines.append("| %s | SpamAssassin's + the rules kept (%d of %d) | %s | %s |" % (
                tar, len(scores) - len(dropped), len(scores), c, f))
    lines += ["", "Per rule, with the whole add-on set: fires on spam/ham; spam caught because of its "
              "score (net), ham misjudged because of it (net; negative: saved); harmful: loses a "
              "spam or misjudges a ham on a set", "",
              "| rule | score | sa-dev | sa-hardham-dev | verdict | kept |", "|---|---:|---|---|---|---|"]
    cell = lambda x: "%d/%d; %+d spam, %+d FP" % (  # noqa: E731
        x["spam"], x["ham"], x["gain"] - x["loss"], x["fp"] - x["saved"])
    counts = {}
    for rule in sorted(scores):
        sets = eff0[rule]
        v = verdict(sets)
        counts[v] = counts.get(v, 0) + 1
        lines.append("| %s | %.2f | %s | %s | %s | %s |" % (
            rule, scores[rule], cell(sets["sa-dev"]), cell(sets["sa-hardham-dev"]), v,
            "no" if rule in dropped else "yes"))
    lines += ["", "with the whole set: earns %d, neutral %d, harmful %d" % (
        counts.get("earns", 0), counts.get("neutral", 0), counts.get("harmful", 0))]
    if a.prune:
        lines += ["kept: %s" % " ".join(sorted(set(scores) - dropped)),
                  "dropped: %s" % " ".join(sorted(dropped))]
        with open(os.path.join(a.work, "dropped.txt"), "w") as f:
            f.write("\n".join(sorted(dropped)) + "\n")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
