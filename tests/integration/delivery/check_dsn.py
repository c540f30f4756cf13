#!/usr/bin/python3
"""Checks a DSN written by delivery_dsn_compose with Python's email package (RFC 3464 shape).

Usage: check_dsn.py failed|full|delayed FILE. Exit 0 when every check holds, else prints what
failed and exits 1. Called by tests/unit/test_delivery.c.
"""
import email
import email.policy
import sys


def fail(msg):
    print("check_dsn:", msg, file=sys.stderr)
    sys.exit(1)


def main():
    mode, path = sys.argv[1], sys.argv[2]
    raw = open(path, "rb").read()
    # Every line ends with CR LF; no bare CR or LF anywhere.
    stripped = raw.replace(b"\r\n", b"")
    if b"\r" in stripped or b"\n" in stripped:
        fail("bare CR or LF in the DSN")
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    if msg.get_content_type() != "multipart/report":
        fail("top type is %s" % msg.get_content_type())
    if msg.get_param("report-type") != "delivery-status":
        fail("report-type is %r" % msg.get_param("report-type"))
    if msg["To"] != "<alice@src.test>":
        fail("To is %r" % msg["To"])
    if "MAILER-DAEMON@gw.sluice.test" not in msg["From"]:
        fail("From is %r" % msg["From"])
    if msg["Auto-Submitted"] != "auto-replied":
        fail("no Auto-Submitted")
    for h in ("Date", "Message-ID", "Subject"):
        if not msg[h]:
            fail("no %s" % h)
    parts = msg.get_payload()
    if not isinstance(parts, list) or len(parts) != 3:
        fail("want 3 parts, got %r" % (len(parts) if isinstance(parts, list) else parts))
    if parts[0].get_content_type() != "text/plain":
        fail("part 1 is %s" % parts[0].get_content_type())
    if parts[1].get_content_type() != "message/delivery-status":
        fail("part 2 is %s" % parts[1].get_content_type())
    # The email package parses message/delivery-status into a list of header blocks:
    # per-message fields first, then one block per recipient.
    blocks = parts[1].get_payload()
    if len(blocks) < 2:
        fail("delivery-status has %d blocks" % len(blocks))
    per_msg = blocks[0]
    if per_msg["Reporting-MTA"] != "dns; gw.sluice.test":
        fail("Reporting-MTA %r" % per_msg["Reporting-MTA"])
    if not per_msg["Arrival-Date"]:
        fail("no Arrival-Date")
    rcpts = blocks[1:]
    first = rcpts[0]
    if first["Final-Recipient"] != "rfc822; bob@d.test":
        fail("Final-Recipient %r" % first["Final-Recipient"])
    if not first["Last-Attempt-Date"]:
        fail("no Last-Attempt-Date")
    if mode in ("failed", "full"):
        if len(rcpts) != 2:
            fail("want 2 recipient blocks, got %d" % len(rcpts))
        if first["Action"] != "failed" or first["Status"] != "5.1.1":
            fail("first recipient %r %r" % (first["Action"], first["Status"]))
        if first["Diagnostic-Code"] != "smtp; 550 5.1.1 no such user":
            fail("Diagnostic-Code %r" % first["Diagnostic-Code"])
        if first["Remote-MTA"] != "dns; mx.d.test":
            fail("Remote-MTA %r" % first["Remote-MTA"])
        second = rcpts[1]
        if second["Final-Recipient"] != "rfc822; carol@d.test" or second["Status"] != "5.0.0":
            fail("second recipient %r" % dict(second.items()))
        if not second["Diagnostic-Code"].startswith("X-Sluice; message expired"):
            fail("second diagnostic %r" % second["Diagnostic-Code"])
        if "Undelivered" not in msg["Subject"]:
            fail("Subject %r" % msg["Subject"])
    else:
        if len(rcpts) != 1 or first["Action"] != "delayed" or first["Status"] != "4.4.1":
            fail("delayed recipient %r" % dict(first.items()))
        if not first["Will-Retry-Until"]:
            fail("no Will-Retry-Until")
    third = parts[2]
    if mode == "full":
        if third.get_content_type() != "message/rfc822":
            fail("part 3 is %s" % third.get_content_type())
        inner = third.get_payload()[0]
        if inner["Message-ID"] != "<m1@src.test>" or "Body line three." not in inner.get_payload():
            fail("the attached message is not the original")
    else:
        if third.get_content_type() != "text/rfc822-headers":
            fail("part 3 is %s" % third.get_content_type())
        text = third.get_payload()
        if "Message-ID: <m1@src.test>" not in text or "Body line" in text:
            fail("the headers part is wrong: %r" % text)
    print("check_dsn: ok (%s)" % mode)


main()
