#!/usr/bin/python3
"""Protocol tests against a running sluice-node, with real clients (smtplib, swaks, raw sockets).

Run: tests/proto/test_smtp.py [name-filter ...]   (tests/run does, with the build tree's paths)
"""
import os
import smtplib
import socket
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import Node, Raw, check, eq, run_suite  # noqa: E402

NODE = None


def node():
    global NODE
    if NODE is None:
        NODE = Node(conf={"limits": {"message_size": "64K", "recipients": "5", "errors": "12"}},
                    domains=("example.test", "other.test")).start()
    return NODE


def msg(mid, body="hello\r\n", extra=""):
    return ("From: a@sender.test\r\nTo: b@example.test\r\nSubject: test\r\nMessage-ID: <%s>\r\n%s"
            "\r\n%s" % (mid, extra, body))


def queued_ids():
    return node().queue_ids()


def test_banner_and_ehlo():
    r = Raw(node().primary)
    code, lines = r.reply()
    eq(code, 220, "banner")
    check("mx.test" in lines[0], "banner names the host")
    code, lines = r.cmd("EHLO client.test")
    eq(code, 250, "EHLO")
    caps = {l[4:].split(" ")[0] for l in lines[1:]}
    for c in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "CHUNKING", "STARTTLS",
              "ENHANCEDSTATUSCODES"):
        check(c in caps, "EHLO offers %s (got %s)" % (c, caps))
    check(any(l[4:] == "SIZE 65536" for l in lines), "SIZE shows the configured limit")
    eq(r.cmd("QUIT")[0], 221, "QUIT")
    check(r.closed(), "closed after QUIT")


def test_smtplib_send_is_spooled():
    s = smtplib.SMTP(*node().primary)
    s.ehlo("client.test")
    resp = s.mail("a@sender.test")
    eq(resp[0], 250, "MAIL")
    eq(s.rcpt("b@example.test")[0], 250, "RCPT")
    code, text = s.data(msg("plain-1@test", "line one\r\n.leading dot\r\n"))
    eq(code, 250, "end of data")
    check(b"queued as" in text, "250 names the queue id")
    qid = text.decode().split()[-1]
    s.quit()
    check("plain-1@test" in " ".join(queued_ids()), "message is in the spool")
    body = node().queue("body", qid)
    eq(body.returncode, 0, "sluice-queue body")
    check("\r\n.leading dot\r\n" in body.stdout, "dot-unstuffed once: %r" % body.stdout[-80:])
    check(body.stdout.startswith("Received: from client.test"), "trace header first")


def test_swaks_send():
    r = subprocess.run(["swaks", "--server", "%s:%d" % node().primary, "--from", "s@sender.test",
                        "--to", "x@other.test", "--header", "Message-Id: <swaks-1@test>",
                        "--helo", "swaks.test"], capture_output=True, text=True, timeout=30)
    eq(r.returncode, 0, "swaks exit status (%s)" % r.stdout[-500:])
    check("queued as" in r.stdout, "swaks saw 250 queued")
    check("swaks-1@test" in queued_ids(), "swaks message spooled")


def test_pipelining_replies_in_order():
    r = Raw(node().primary)
    r.reply()
    r.cmd("EHLO client.test")
    r.send("MAIL FROM:<p@sender.test>\r\nRCPT TO:<a@example.test>\r\nRCPT TO:<bad@nowhere.test>\r\n"
           "RCPT TO:<c@other.test>\r\nDATA\r\n")
    codes = [r.reply()[0] for _ in range(5)]
    eq(codes, [250, 250, 554, 250, 354], "pipelined replies")
    r.send(msg("pipe-1@test") + "\r\n.\r\nQUIT\r\n")
    eq(r.reply()[0], 250, "end of data")
    eq(r.reply()[0], 221, "QUIT after pipelined end of data")
    check("pipe-1@test" in queued_ids(), "pipelined message spooled")


def test_pipelining_split_bytes():
    """The whole transaction one byte per write: the parser keeps state between reads."""
    r = Raw(node().primary)
    r.reply()
    data = ("EHLO x.test\r\nMAIL FROM:<p@sender.test>\r\nRCPT TO:<a@example.test>\r\nDATA\r\n" +
            msg("split-1@test") + ".\r\nQUIT\r\n").encode()
    r.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(data)):
        r.send(data[i:i + 1])
    codes = [r.reply()[0] for _ in range(6)]
    eq(codes, [250, 250, 250, 354, 250, 221], "replies")
    check("split-1@test" in queued_ids(), "spooled")


def test_starttls_then_mail():
    s = smtplib.SMTP(*node().primary)
    s.ehlo("client.test")
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    eq(s.starttls(context=ctx)[0], 220, "STARTTLS")
    s.ehlo("client.test")
    check(not s.has_extn("starttls"), "no STARTTLS offered inside TLS")
    s.sendmail("t@sender.test", ["b@example.test"], msg("tls-1@test"))
    s.quit()
    check("tls-1@test" in queued_ids(), "TLS message spooled")


def test_starttls_injection_discarded():
    """Commands pipelined after STARTTLS in the same packet must not run inside TLS."""
    r = Raw(node().primary)
    r.reply()
    r.cmd("EHLO client.test")
    r.send("STARTTLS\r\nMAIL FROM:<evil@sender.test>\r\n")
    eq(r.reply()[0], 220, "STARTTLS")
    r.starttls()
    # If the injected MAIL had run, RCPT would be accepted; it must need EHLO/MAIL first.
    code, _ = r.cmd("RCPT TO:<a@example.test>")
    eq(code, 503, "RCPT after injected MAIL")
    eq(r.cmd("EHLO client.test")[0], 250, "EHLO in TLS")
    eq(r.cmd("RCPT TO:<a@example.test>")[0], 503, "still no MAIL")
    r.close()


def test_size_declared_too_big():
    r = Raw(node().primary)
    r.reply()
    r.cmd("EHLO client.test")
    code, lines = r.cmd("MAIL FROM:<a@sender.test> SIZE=100000000")
    eq(code, 552, "MAIL SIZE over the limit")
    check("5.3.4" in lines[0], "enhanced code 5.3.4")


def test_size_actual_too_big():
    r = Raw(node().primary)
    r.reply()
    r.cmd("EHLO client.test")
    r.cmd("MAIL FROM:<a@sender.test>")
    r.cmd("RCPT TO:<a@example.test>")
    eq(r.cmd("DATA")[0], 354, "DATA")
    line = "x" * 70 + "\r\n"
    r.send(msg("big-1@test", line * 2000) + ".\r\n")
    code, lines = r.reply()
    eq(code, 552, "oversized body")
    eq(r.cmd("NOOP")[0], 250, "session goes on")
    check("big-1@test" not in queued_ids(), "oversized message not spooled")


def test_too_many_recipients():
    r = Raw(node().primary)
    r.reply()
    r.cmd("EHLO client.test")
    r.cmd("MAIL FROM:<a@sender.test>")
    codes = [r.cmd("RCPT TO:<r%d@example.test>" % i)[0] for i in range(6)]
    eq(codes, [250] * 5 + [452], "recipient limit")


def test_unknown_domain_is_relaying():
    r = Raw(node().primary)
    r.reply()
    r.cmd("EHLO client.test")
    r.cmd("MAIL FROM:<a@sender.test>")
    code, lines = r.cmd("RCPT TO:<victim@elsewhere.test>")
    eq(code, 554, "relay attempt")
    check("5.7.1" in lines[0], "5.7.1")
    eq(r.cmd("RCPT TO:<ok@Example.TEST>")[0], 250, "our domain, any case")
    eq(r.cmd("RCPT TO:<sub@x.example.test>")[0], 554, "subdomain is not ours")


def test_bad_syntax_replies():
    r = Raw(node().primary)
    r.reply()
    eq(r.cmd("MAIL FROM:<a@b.test>")[0], 503, "MAIL before EHLO")
    eq(r.cmd("FOO bar")[0], 500, "unknown command")
    r.cmd("EHLO client.test")
    eq(r.cmd("MAIL FROM:<a@b")[0], 501, "unterminated path")
    eq(r.cmd("MAIL FROM:a@b.test")[0], 501, "path without brackets")
    eq(r.cmd("MAIL FROM:<a@b.test> FOO=BAR")[0], 555, "unknown parameter")
    eq(r.cmd("RCPT TO:<a@example.test>")[0], 503, "RCPT before MAIL")
    eq(r.cmd("DATA")[0], 503, "DATA before MAIL")
    eq(r.cmd("MAIL FROM:<" + "l" * 65 + "@b.test>")[0], 501, "local part over 64")
    eq(r.cmd("X" * 600)[0], 500, "command line over 512")
    eq(r.cmd("VRFY someone")[0], 252, "VRFY")
    eq(r.cmd("HELP")[0], 214, "HELP")
    eq(r.cmd("NOOP")[0], 250, "NOOP")


def test_error_limit_disconnects():
    r = Raw(node().primary)
    r.reply()
    codes = []
    for _ in range(12):
        codes.append(r.cmd("BOGUS")[0])
    eq(codes[:11], [500] * 11, "errors before the limit")
    eq(codes[11], 500, "the last error is still answered")
    code, lines = r.reply()
    eq(code, 421, "then 421")
    check(r.closed(), "and the connection closes")


def test_nothing_runs_after_quit():
    """Commands pipelined after QUIT (or after a 421) are not run and get no reply."""
    r = Raw(node().primary)
    r.reply()
    r.send("EHLO client.test\r\nQUIT\r\nMAIL FROM:<a@sender.test>\r\nNOOP\r\n")
    eq(r.reply()[0], 250, "EHLO")
    eq(r.reply()[0], 221, "QUIT")
    check(r.closed(), "closed")
    eq(r.buf, b"", "no reply after the 221")


def test_http_request_dropped():
    r = Raw(node().primary)
    r.reply()
    r.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    eq(r.reply()[0], 421, "HTTP gets 421")
    check(r.closed(), "closed")


SMUGGLE_ENDS = [
    ("lf-dot-lf", b"\n.\n"),
    ("cr-dot-cr", b"\r.\r"),
    ("crlf-dot-lf", b"\r\n.\n"),
    ("lf-dot-crlf", b"\n.\r\n"),
    ("crlf-dot-cr", b"\r\n.\r"),
    ("cr-dot-crlf", b"\r.\r\n"),
    ("crlf-dot-cr-crlf", b"\r\n.\r\r\n"),
    ("crlf-dot-nul-crlf", b"\r\n.\x00\r\n"),
]


def test_smuggling_variants_never_end_data():
    for name, end in SMUGGLE_ENDS:
        mid = "outer-%s@test" % name
        inner = "inner-%s@test" % name
        r = Raw(node().primary)
        r.reply()
        r.cmd("EHLO client.test")
        r.cmd("MAIL FROM:<a@sender.test>")
        r.cmd("RCPT TO:<a@example.test>")
        eq(r.cmd("DATA")[0], 354, "DATA")
        smuggled = ("MAIL FROM:<smuggler@sender.test>\r\nRCPT TO:<a@example.test>\r\nDATA\r\n" +
                    msg(inner)).encode()
        r.send(msg(mid, "before").encode() + end + smuggled + b"\r\n.\r\n")
        code, lines = r.reply()
        eq(code, 250, "%s: one message accepted" % name)
        eq(r.cmd("NOOP")[0], 250, "%s: next reply is ours (no smuggled replies)" % name)
        r.close()
        ids = queued_ids()
        check(mid in ids, "%s: outer message spooled" % name)
        check(inner not in ids, "%s: no second message smuggled through" % name)
        qid = lines[0].split()[-1]
        body = node().queue("body", qid).stdout
        check("smuggler@sender.test" in body, "%s: the smuggled text stays in the body" % name)
        check("\n" not in body.replace("\r\n", ""), "%s: no bare LF stored" % name)
        check("\r" not in body.replace("\r\n", ""), "%s: no bare CR stored" % name)


def test_bdat_chunks():
    r = Raw(node().primary)
    r.reply()
    r.cmd("EHLO client.test")
    r.cmd("MAIL FROM:<a@sender.test>")
    r.cmd("RCPT TO:<a@example.test>")
    m = msg("bdat-1@test", "chunked body\r\n.not stuffed\r\n").encode()
    half = len(m) // 2
    r.send(b"BDAT %d\r\n" % half + m[:half])
    eq(r.reply()[0], 250, "first chunk")
    r.send(b"BDAT %d LAST\r\n" % (len(m) - half) + m[half:])
    code, lines = r.reply()
    eq(code, 250, "last chunk")
    qid = lines[0].split()[-1]
    body = node().queue("body", qid).stdout
    check("\r\n.not stuffed\r\n" in body, "BDAT bodies are not unstuffed")


def test_bdat_without_mail_consumes_chunk():
    r = Raw(node().primary)
    r.reply()
    r.cmd("EHLO client.test")
    r.send(b"BDAT 12\r\nNOOP\r\nNOOP\r\n")   # the 12 bytes are data, not commands
    eq(r.reply()[0], 503, "BDAT outside a transaction")
    eq(r.cmd("NOOP")[0], 250, "and the stream is still in step")


def test_mx_role_travels_with_message():
    for addr, role in ((node().primary, "primary"), (node().fallback, "fallback")):
        s = smtplib.SMTP(*addr)
        s.sendmail("a@sender.test", ["b@example.test"], msg("role-%s@test" % role))
        s.quit()
    out = node().queue("list", "--json").stdout
    import json
    roles = {}
    for e in json.loads(out):
        roles[(e.get("message_id") or "").strip("<>")] = e.get("role")
    eq(roles.get("role-primary@test"), "primary", "primary role")
    eq(roles.get("role-fallback@test"), "fallback", "fallback role")


def test_null_sender_and_postmaster():
    r = Raw(node().primary)
    r.reply()
    r.cmd("EHLO client.test")
    eq(r.cmd("MAIL FROM:<>")[0], 250, "null sender")
    eq(r.cmd("RCPT TO:<Postmaster>")[0], 250, "bare postmaster, whatever the hostname (5321 4.5.1)")
    eq(r.cmd("RCPT TO:<postmaster@example.test>")[0], 250, "postmaster of a domain")


def test_smtputf8():
    r = Raw(node().primary)
    r.reply()
    r.cmd("EHLO client.test")
    eq(r.cmd("MAIL FROM:<j\u00f6rg@sender.test>")[0], 553, "UTF-8 sender without SMTPUTF8")
    eq(r.cmd("MAIL FROM:<j\u00f6rg@sender.test> SMTPUTF8")[0], 250, "UTF-8 with SMTPUTF8")
    eq(r.cmd("RCPT TO:<m\u00fcller@example.test>")[0], 250, "UTF-8 recipient")


def test_zz_stop_exits_cleanly():
    n = node()
    r = Raw(n.primary)
    r.reply()
    r.cmd("EHLO client.test")
    rc = n.stop()
    eq(rc, 0, "exit status after SIGTERM")
    code, _ = r.reply()
    eq(code, 421, "idle session told 421 on shutdown")


if __name__ == "__main__":
    try:
        rc = run_suite("proto", globals(), sys.argv[1:])
    finally:
        if NODE is not None:
            NODE.cleanup()
    sys.exit(rc)
