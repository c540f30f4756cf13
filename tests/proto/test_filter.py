#!/usr/bin/python3
"""Content filtering through the running daemon: the shipped rule set compiled by sluice-rules,
policies per domain and per MX role, allow and block lists, the verdict in the log and the spool,
and a rule set swapped in by SIGHUP without dropping a connection.

Run: tests/proto/test_filter.py [name-filter ...]
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import BUILD, ROOT, Node, Raw, check, eq, run_suite  # noqa: E402

RULES = os.path.join(BUILD, "patterns", "sluice-rules")
WORK = tempfile.mkdtemp(prefix="sluice-filter-")

SPAM = ("From: winner@lottery.example\r\nTo: bob@example.test\r\nMessage-ID: <{mid}>\r\n"
        "Subject: YOU HAVE WON $1,000,000 !!! CLAIM NOW\r\n\r\n"
        "Dear Friend, Congratulations!!! You have been selected as a WINNER of our international\r\n"
        "lottery. Send your bank account details to claim your prize. 100% free, no risk, act now!\r\n"
        "Click here: http://win-big.example/claim\r\n")
HAM = ("From: Alice Example <alice@example.org>\r\nTo: Bob <bob@example.test>\r\nMessage-ID: <{mid}>\r\n"
       "Subject: lunch on friday?\r\nDate: Wed, 25 Nov 2026 10:00:00 +0000\r\n\r\n"
       "Shall we meet at noon at the usual place?\r\n-- Alice\r\n")


def compile_rules(outdir, extra=None):
    files = sorted(glob.glob(os.path.join(ROOT, "patterns", "rules", "*.cf")))
    if extra:
        p = os.path.join(WORK, os.path.basename(outdir) + "-extra.cf")
        with open(p, "w") as f:
            f.write(extra)
        files.append(p)
    r = subprocess.run([RULES, "compile", "-o", outdir] + files, capture_output=True, text=True)
    eq(r.returncode, 0, "sluice-rules compile: " + r.stderr[-500:])
    return outdir


DB = None


# The shipped add-on set keeps only rules with evidence on real mail (README), so how much the
# sample scores there is not this suite's business: one rule of its own gives the spam sample a
# known floor for the policy thresholds, with the shipped set compiled around it.
SAMPLE_RULE = ("body     SL_TEST_LOTTERY /selected as a WINNER of our international/\n"
               "score    SL_TEST_LOTTERY 4.0\n")


def db():
    global DB
    if DB is None:
        DB = compile_rules(os.path.join(WORK, "rules"), SAMPLE_RULE)
    return DB


def send(addr, mid, text, sender="winner@lottery.example", source=None):
    r = Raw(addr, source=source)
    r.reply()
    r.cmd("EHLO client.test")
    r.cmd("MAIL FROM:<%s>" % sender)
    r.cmd("RCPT TO:<bob@example.test>")
    r.cmd("DATA")
    r.send(text.replace("{mid}", mid) + ".\r\n")
    code, lines = r.reply()
    r.cmd("QUIT")
    r.close()
    return code, lines[0]


def entries(n):
    out = {}
    for e in json.loads(n.queue("list", "--all", "--json").stdout):
        out[(e.get("message_id") or "").strip("<>")] = e
    return out


def test_actions_by_score_and_role():
    # Thresholds low enough that the spam sample crosses them and the ham does not.
    n = Node(tls=False, conf={"node": {"rules_dir": db()},
                              "policy": {"tag_score": "2", "quarantine_score": "4",
                                         "reject_score": "off",
                                         "fallback_reject_score": "4"}}).start()
    try:
        code, line = send(n.primary, "f-ham@test", HAM, sender="alice@example.org")
        eq(code, 250, "ham accepted")
        code, line = send(n.primary, "f-spam-primary@test", SPAM)
        eq(code, 250, "spam on the primary MX is accepted (and held)")
        code, line = send(n.fallback, "f-spam-fallback@test", SPAM)
        eq(code, 550, "the fallback MX rejects at its lower threshold: " + line)
        check("5.7.1" in line, "550 5.7.1")
        time.sleep(0.3)
        e = entries(n)
        check(e["f-ham@test"]["score_milli"] < 2000, "ham scores low: %s" % e["f-ham@test"])
        check(e["f-spam-primary@test"]["score_milli"] >= 4000, "spam scores high")
        eq(e["f-spam-primary@test"]["role"], "primary", "role in the spool")
        check("f-spam-fallback@test" not in e, "the rejected message is not in the spool")
        log = n.read_log()
        check("action=quarantine" in log, "verdict logged with its action")
        check("reject: END-OF-DATA" in log and "(fallback MX): 550 5.7.1" in log,
              "the rejection is logged with the MX role")
    finally:
        n.stop()
        n.cleanup()


def test_allow_and_block_lists():
    n = Node(tls=False, conf={"node": {"rules_dir": db()},
                              "policy": {"reject_score": "3", "quarantine_score": "off",
                                         "tag_score": "off",
                                         "sender_allow": "@lottery.example",
                                         "ip_block": "127.0.0.7/32"},
                              "domain example.test": {"ip_block": "127.0.0.8/32"}}).start()
    try:
        eq(send(n.primary, "f-allowed@test", SPAM)[0], 250, "an allowed sender passes")
        # The node's own block list ([policy]) refuses at connect, before the banner.
        r = Raw(n.primary, source="127.0.0.7")
        eq(r.reply()[0], 554, "a network blocked node-wide is refused at connect")
        r.close()
        # A domain's block list applies to its mail, at the end of data.
        eq(send(n.primary, "f-blocked@test", HAM, sender="alice@example.org",
                source="127.0.0.8")[0], 550, "a network blocked by the domain is refused")
        eq(send(n.primary, "f-other@test", SPAM, sender="x@spam.example")[0], 550,
           "anyone else over the score is refused")
    finally:
        n.stop()
        n.cleanup()


def test_rules_swapped_on_reload_without_dropping_connections():
    first = compile_rules(os.path.join(WORK, "rules-a"))
    second = compile_rules(os.path.join(WORK, "rules-b"),
                           extra="body SL_TEST_MAGIC /\\bxyzzy-magic-word\\b/i\n"
                                 "score SL_TEST_MAGIC 50\n")
    n = Node(tls=False, conf={"node": {"rules_dir": first},
                              "policy": {"reject_score": "20"}}).start()
    try:
        magic = HAM.replace("Shall we", "xyzzy-magic-word: shall we")
        eq(send(n.primary, "f-before@test", magic, sender="alice@example.org")[0], 250,
           "the old rule set does not know the word")
        r = Raw(n.primary)
        r.reply()
        r.cmd("EHLO client.test")
        n.sections["node"]["rules_dir"] = second
        n.write_conf()
        n.hup()
        deadline = time.time() + 20
        while "reloaded" not in n.read_log() and time.time() < deadline:
            time.sleep(0.05)
        check("reloaded" in n.read_log(), "reload done")
        time.sleep(0.2)
        eq(r.cmd("MAIL FROM:<alice@example.org>")[0], 250, "the open connection survived")
        r.cmd("RCPT TO:<bob@example.test>")
        r.cmd("DATA")
        r.send(magic.replace("{mid}", "f-after@test") + ".\r\n")
        code, lines = r.reply()
        eq(code, 550, "the same connection's next message meets the new rule")
        # A broken rule set directory is refused; the node keeps the last good one.
        n.sections["node"]["rules_dir"] = os.path.join(WORK, "no-such-rules")
        n.write_conf()
        n.hup()
        deadline = time.time() + 20
        while "reload refused" not in n.read_log() and time.time() < deadline:
            time.sleep(0.05)
        check("reload refused" in n.read_log(), "a missing rule set is refused")
        eq(send(n.primary, "f-after2@test", magic, sender="alice@example.org")[0], 550,
           "the last good rule set is still in force")
    finally:
        n.stop()
        n.cleanup()


def test_backtracking_rule_capped_and_logged():
    # A message crafted against a backtracking confirmation: the cap stops PCRE2, the rule
    # counts as no match (the message is not refused), and the node says so once, at info.
    rules = compile_rules(os.path.join(WORK, "rules-cap"),
                          extra="body SL_TEST_BACKTRACK /(?:x+x+)+y(?=z)/\n"
                                "score SL_TEST_BACKTRACK 50\n")
    n = Node(tls=False, conf={"node": {"rules_dir": rules},
                              "policy": {"reject_score": "20"}}).start()
    try:
        eq(send(n.primary, "f-bt-ok@test", HAM.replace("Shall we", "xxyz: shall we"),
                sender="alice@example.org")[0], 550, "the rule matches a plain text")
        crafted = HAM.replace("Shall we", ("x" * 60 + "y!\r\n") * 10 + "shall we")
        eq(send(n.primary, "f-bt-crafted@test", crafted, sender="alice@example.org")[0], 250,
           "a capped confirmation is no match")
        deadline = time.time() + 5
        while "stopped by a cap" not in n.read_log() and time.time() < deadline:
            time.sleep(0.05)
        lines = [x for x in n.read_log().splitlines() if "stopped by a cap" in x]
        eq(len(lines), 1, "one log line for the crafted message: %r" % lines)
        check("first SL_TEST_BACKTRACK" in lines[0] and " info" in lines[0],
              "it names the rule, at info: %r" % lines)
    finally:
        n.stop()
        n.cleanup()


if __name__ == "__main__":
    try:
        rc = run_suite("filter", globals(), sys.argv[1:])
    finally:
        subprocess.run(["rm", "-rf", WORK])
    sys.exit(rc)
