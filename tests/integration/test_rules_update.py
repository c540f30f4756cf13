#!/usr/bin/python3
"""`sluice-rules update` (issue 20, item 1): SpamAssassin's rules recompiled as SpamAssassin would
load them (the site's .pre, sa-update's newest version directory with its `include`d channel
files, else the distribution's rules, then the site's .cf), written beside the old databases and
swapped in, and a running node reloaded onto them; a compile that fails leaves the node's rules
as they were. Small stand-in trees play /etc/spamassassin, /usr/share/spamassassin and
/var/lib/spamassassin, so the compile takes a second, not minutes."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import sluicetest as st  # noqa: E402
from sluicetest import check, eq  # noqa: E402

RULES = os.path.join(st.BUILD, "patterns", "sluice-rules")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def update(work, *extra):
    return subprocess.run([RULES, "update", "-o", os.path.join(work, "db"),
                           "--site", os.path.join(work, "etc"),
                           "--rules", os.path.join(work, "usr"),
                           "--state", os.path.join(work, "var")] + list(extra),
                          capture_output=True, text=True)


def tests_hit(n, word):
    """Sends a message with word in its body; returns the tests= of its accepted line."""
    mid = "upd-%s-%d@test" % (word, time.time_ns())
    pat = re.compile(r"accept: .* tests=(\S+) to=<r@example.test>")
    before = len(pat.findall(n.read_log()))      # counted before the message is sent
    st.send(n.primary, "a@sender.test", ["r@example.test"],
            "Message-ID: <%s>\r\nSubject: update\r\n\r\nhello %s\r\n" % (mid, word))
    check(st.wait_for(lambda: len(pat.findall(n.read_log())) > before, 10),
          "no accepted line:\n" + n.read_log()[-1500:])
    hits = pat.findall(n.read_log())
    return hits[-1].split(",")


def test_update_compiles_swaps_and_reloads():
    work = tempfile.mkdtemp(prefix="sluice-upd-")
    n = None
    try:
        write(os.path.join(work, "etc", "init.pre"), "# site .pre\n")
        write(os.path.join(work, "etc", "local.cf"),
              "body SITE_RULE /\\bsiteword\\b/\nscore SITE_RULE 0.5\n")
        write(os.path.join(work, "usr", "10_dist.cf"),
              "body DIST_RULE /\\bdistword\\b/\nscore DIST_RULE 0.5\n")
        r = update(work)
        eq(r.returncode, 0, "first update: " + r.stdout + r.stderr)
        check("(no sa-update rules under" in r.stdout, r.stdout)
        n = st.Node(conf={"node": {"rules_dir": os.path.join(work, "db")}}).start()
        check("DIST_RULE" in tests_hit(n, "distword"), "the distribution's rule runs")
        check("SITE_RULE" in tests_hit(n, "siteword"), "the site's local.cf runs")

        # sa-update ran: its newest version directory replaces the distribution's rules.
        write(os.path.join(work, "var", "3.004006", "old.cf"), "body OLD_RULE /oldword/\n")
        write(os.path.join(work, "var", "4.000001", "updates_spamassassin_org.cf"),
              "include updates_spamassassin_org/20_new.cf\n")
        write(os.path.join(work, "var", "4.000001", "updates_spamassassin_org", "20_new.cf"),
              "body NEW_RULE /\\bnewword\\b/\nscore NEW_RULE 0.5\n")
        reloads = n.read_log().count("reloaded")
        r = update(work, "--reload", os.path.join(n.spool, "sluice-node.pid"))
        eq(r.returncode, 0, "update after sa-update: " + r.stdout + r.stderr)
        check("4.000001 (sa-update)" in r.stdout, r.stdout)
        check("SIGHUP sent" in r.stdout, r.stdout)
        check(st.wait_for(lambda: n.read_log().count("reloaded") > reloads, 20),
              "the node reloaded:\n" + n.read_log()[-1500:])
        check("NEW_RULE" in tests_hit(n, "newword"), "the included channel file's rule runs")
        check("DIST_RULE" not in tests_hit(n, "distword"), "sa-update's rules replace the dist's")
        check("SITE_RULE" in tests_hit(n, "siteword"), "the site's rules still run")

        # A broken update: the compile fails, nothing is swapped and the node is not signalled.
        write(os.path.join(work, "var", "4.000001", "updates_spamassassin_org", "30_bad.cf"),
              "body BAD_RULE /unclosed(/\n")
        write(os.path.join(work, "var", "4.000001", "updates_spamassassin_org.cf"),
              "include updates_spamassassin_org/20_new.cf\n"
              "include updates_spamassassin_org/30_bad.cf\n")
        reloads = n.read_log().count("reloaded")
        r = update(work, "--reload", os.path.join(n.spool, "sluice-node.pid"))
        eq(r.returncode, 1, "a broken update fails: " + r.stdout + r.stderr)
        check("is as it was" in r.stderr, r.stderr)
        time.sleep(0.5)
        eq(n.read_log().count("reloaded"), reloads, "no reload after a failed compile")
        check("NEW_RULE" in tests_hit(n, "newword"), "the node keeps the rules it had")
        eq(n.stop(), 0, "clean stop")
    finally:
        if n is not None:
            n.cleanup()
        shutil.rmtree(work, ignore_errors=True)


def test_update_if_changed():
    """--if-changed compiles only when a rule file, sa-update's tree or the compiler changed,
    and then neither recompiles nor signals."""
    work = tempfile.mkdtemp(prefix="sluice-upd-")
    try:
        write(os.path.join(work, "usr", "10_dist.cf"), "body DIST_RULE /distword/\n")
        r = update(work, "--if-changed")
        eq(r.returncode, 0, "first: " + r.stdout + r.stderr)
        check("unchanged" not in r.stdout, "the first run compiles: " + r.stdout)
        src = open(os.path.join(work, "db", "SOURCE")).read().strip()
        check(re.fullmatch(r"[0-9a-f]{32}", src) is not None, "SOURCE holds a hash: " + src)
        meta = os.path.join(work, "db", "rules.meta")
        mtime = os.stat(meta).st_mtime_ns
        # unchanged: no compile, and no reload either (a pid file that names nobody is not read)
        r = update(work, "--if-changed", "--reload", os.path.join(work, "no-such.pid"))
        eq(r.returncode, 0, "unchanged: " + r.stdout + r.stderr)
        check("unchanged" in r.stdout, r.stdout)
        eq(os.stat(meta).st_mtime_ns, mtime, "the databases were not rewritten")
        # a rule file changes: compiled again
        write(os.path.join(work, "usr", "10_dist.cf"), "body DIST_RULE /distword2/\n")
        r = update(work, "--if-changed")
        eq(r.returncode, 0, "changed: " + r.stdout + r.stderr)
        check("unchanged" not in r.stdout, r.stdout)
        check(open(os.path.join(work, "db", "SOURCE")).read().strip() != src, "new hash")
        # sa-update writes a tree under its state dir: an included file counts too
        write(os.path.join(work, "var", "4.000001", "ch.cf"), "include ch/20.cf\n")
        write(os.path.join(work, "var", "4.000001", "ch", "20.cf"), "body NEW_RULE /newword/\n")
        r = update(work, "--if-changed")
        check("unchanged" not in r.stdout, "sa-update's rules: " + r.stdout)
        src = open(os.path.join(work, "db", "SOURCE")).read().strip()
        write(os.path.join(work, "var", "4.000001", "ch", "20.cf"), "body NEW_RULE /newword3/\n")
        r = update(work, "--if-changed")
        check("unchanged" not in r.stdout, "an included file changed: " + r.stdout)
        check(open(os.path.join(work, "db", "SOURCE")).read().strip() != src, "new hash: " + r.stdout + r.stderr)
        # without --if-changed it always compiles
        r = update(work)
        check("unchanged" not in r.stdout, r.stdout)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_update_usage_and_missing_rules():
    work = tempfile.mkdtemp(prefix="sluice-upd-")
    try:
        r = subprocess.run([RULES, "update"], capture_output=True, text=True)
        eq(r.returncode, 2, "no -o is a usage error")
        os.makedirs(os.path.join(work, "usr"))
        r = update(work)
        eq(r.returncode, 1, "no rule files: " + r.stdout + r.stderr)
        check("no rule files in" in r.stderr, r.stderr)
        check(not os.path.exists(os.path.join(work, "db")), "nothing written")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(st.run_suite("rules_update", globals()))
