#!/usr/bin/python3
"""sluice-rules check on bad and good rule files (issue 14, item 12): it fails (exit 1, the file
and line named) on a line it cannot parse, a meta that names a rule defined nowhere, and a
pattern that does not compile; an eval: Sluice does not implement is only a warning; the rule sets
we ship and SpamAssassin's own (when installed) check with no error.

Run: tests/integration/test_rules_check.py [name-filter ...]
"""
import glob
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import BUILD, ROOT, check, eq, run_suite  # noqa: E402

RULES = os.path.join(BUILD, "patterns", "sluice-rules")
GOOD = """# a comment
header   T_A      Subject =~ /hello/i
body     T_B      /cheap\\s+pills/
meta     T_M      (T_A && T_B) || !T_A
score    T_M      1.5
describe T_M      both
lang fr  describe T_M  les deux
clear-report-template
report   _SUMMARY_
priority T_M 10
ifplugin Mail::SpamAssassin::Plugin::NotLoaded
body     __FROM_PLUGIN eval:check_something()
some_plugin_directive foo bar
endif
meta     T_P      __FROM_PLUGIN && T_A
"""


def run_check(text, name="t.cf"):
    d = tempfile.mkdtemp(prefix="sluice-rules-")
    path = os.path.join(d, name)
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([RULES, "check", path], capture_output=True, text=True)
    return r, path


def test_good_file_checks_ok():
    r, _ = run_check(GOOD)
    eq(r.returncode, 0, "good file: " + r.stderr)
    check(" 0 errors" in r.stdout, r.stdout)


def test_unparseable_line_is_an_error():
    r, path = run_check(GOOD + "this is not a rule line\n")
    eq(r.returncode, 1, "exit status")
    check("%s:16: error: unknown directive 'this'" % path in r.stderr, r.stderr)
    r, path = run_check(GOOD + "header BROKEN\n")
    eq(r.returncode, 1, "a definition with nothing in it")
    check("%s:16:" % path in r.stderr, r.stderr)


def test_third_party_plugin_directive_is_a_warning():
    r, path = run_check("loadplugin Mail::SpamAssassin::Plugin::SPF\n" + GOOD +
                        "my_plugin_setting 5\n")
    eq(r.returncode, 1, "SpamAssassin's own plugins do not have it: an error")
    r, path = run_check("loadplugin Example::Plugin::Mine /etc/mine.pm\n" + GOOD +
                        "my_plugin_setting 5\n")
    eq(r.returncode, 0, "with a third-party plugin loaded, only a warning: " + r.stderr)
    check("%s:17: warning: unknown directive 'my_plugin_setting'" % path in r.stderr, r.stderr)
    r, path = run_check("loadplugin Example::Plugin::Mine\n" + GOOD + "this is garbage (x)\n")
    eq(r.returncode, 0, "still a word: a warning")


def test_meta_naming_an_undefined_rule_is_an_error():
    r, path = run_check(GOOD + "meta T_X (T_A && NO_SUCH_RULE)\n")
    eq(r.returncode, 1, "exit status")
    check("%s:16: error: meta T_X: names NO_SUCH_RULE" % path in r.stderr, r.stderr)


def test_bad_regex_is_an_error():
    r, path = run_check(GOOD + "body T_R /unbalanced(paren/\n")
    eq(r.returncode, 1, "exit status")
    check("%s:16: error: T_R: the pattern does not compile" % path in r.stderr, r.stderr)
    r, path = run_check(GOOD + "body T_R2 not-delimited\n")
    eq(r.returncode, 1, "not a pattern")
    check("%s:16: error: T_R2: not a pattern" % path in r.stderr, r.stderr)


def test_unknown_eval_is_a_warning():
    r, _ = run_check(GOOD + "header T_E eval:check_we_do_not_have()\n")
    eq(r.returncode, 0, "an unknown eval only warns: " + r.stderr)
    check("T_E" in r.stdout, "listed as unsupported: " + r.stdout)


def test_shipped_rule_sets_check_ok():
    ours = sorted(glob.glob(os.path.join(ROOT, "patterns", "rules", "*.cf")))
    check(ours, "our rule files")
    r = subprocess.run([RULES, "check"] + ours, capture_output=True, text=True)
    eq(r.returncode, 0, "our rules: " + r.stderr[-2000:])
    sa = sorted(glob.glob("/usr/share/spamassassin/*.cf"))
    if not sa:
        print("SKIP rules_check: SpamAssassin's rules are not installed", flush=True)
        return
    pre = sorted(glob.glob("/etc/spamassassin/*.pre")) + sorted(
        glob.glob("/usr/share/spamassassin/*.pre"))
    r = subprocess.run([RULES, "check"] + pre + sa, capture_output=True, text=True)
    eq(r.returncode, 0, "SpamAssassin's rules: " + r.stderr[-2000:])
    check(" error:" not in r.stderr, r.stderr[-2000:])


if __name__ == "__main__":
    sys.exit(run_suite("rules_check", globals(), sys.argv[1:]))
