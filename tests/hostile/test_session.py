#!/usr/bin/python3
"""Hostile clients against one SMTP session: a failed or garbage TLS handshake, pipelining far
ahead of reading, lines that never end, header floods, talking before the greeting, a blocked
source. Each asserts the replies (codes and order), that the node is still up and serving another
client afterwards, and that what it accepted is in the spool. tests/run runs this file against the
normal build and again against the sanitizer (ASan + UBSan) build."""
import os
import random
import socket
import ssl
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import sluicetest as st  # noqa: E402
from sluicetest import check, eq  # noqa: E402

_node = None


def node():
    """One node for the tests that need no special configuration."""
    global _node
    if _node is None or _node.proc is None or _node.proc.poll() is not None:
        if _node is not None:
            _node.cleanup()
        _node = st.Node().start()
    return _node


def still_serving(n, mid=None):
    """The node is up and a fresh client gets a message through; it is then in the spool."""
    check(n.proc is not None and n.proc.poll() is None, "node died: rc=%s\n%s" % (
        n.proc.returncode if n.proc else None, n.read_log()[-2000:]))
    mid = mid or "alive-%d-%d@hostile.test" % (os.getpid(), random.randrange(1 << 30))
    st.send(n.primary, "a@sender.test", ["r@example.test"],
            "Message-ID: <%s>\r\nSubject: alive\r\n\r\nstill here\r\n" % mid)
    check(st.wait_for(lambda: mid in n.queue_ids(), 10), "message %s not in the spool" % mid)


def to_starttls(n):
    r = st.Raw(n.primary)
    eq(r.reply()[0], 220, "banner")
    eq(r.cmd("EHLO hostile.test")[0], 250, "EHLO")
    eq(r.cmd("STARTTLS")[0], 220, "STARTTLS")
    return r


def read_all(sock, timeout=5):
    """Everything the server sends until it closes (or goes quiet for `timeout`)."""
    sock.settimeout(timeout)
    out = b""
    try:
        while True:
            d = sock.recv(65536)
            if not d:
                break
            out += d
    except (socket.timeout, TimeoutError, ConnectionResetError):
        pass
    return out


# ---- 1. the remote crash: plain text or garbage where the ClientHello should be ----

def test_starttls_then_plaintext():
    n = node()
    for junk in (b"NOOP\r\n", b"QUIT\r\n", b"EHLO again\r\nMAIL FROM:<a@b>\r\n"):
        r = to_starttls(n)
        r.send(junk)
        data = read_all(r.s)
        # At most a TLS alert (a record starting 0x15), never an SMTP reply in clear text.
        check(not data.startswith(b"2") and not data.startswith(b"5"),
              "clear-text reply inside the handshake: %r" % data[:80])
        r.close()
    still_serving(n)


def test_starttls_then_random_bytes():
    n = node()
    rnd = random.Random(14)
    for i in range(40):
        r = to_starttls(n)
        size = rnd.choice((1, 5, 17, 300, 4096, 20000))
        blob = bytes(rnd.randrange(256) for _ in range(size))
        if i % 4 == 0:
            blob = b"\x16\x03\x01" + blob     # looks like a handshake record, then garbage
        try:
            r.send(blob)
            if i % 3 == 0:
                r.s.shutdown(socket.SHUT_WR)
            read_all(r.s, timeout=2)
        except OSError:
            pass
        r.close()
    still_serving(n)


def test_starttls_close_mid_handshake():
    n = node()
    for _ in range(10):
        r = to_starttls(n)
        r.close()                         # gone before the ClientHello
        r = to_starttls(n)
        # A real ClientHello, then the client vanishes while the server's flight is going out.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(incoming, outgoing, server_hostname="mx.test")
        try:
            obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        r.send(outgoing.read())
        time.sleep(0.05)
        r.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        r.close()                         # RST
    still_serving(n)


def test_tls_then_session_continues():
    """A real handshake still works, and the session after it runs commands in TLS."""
    n = node()
    r = to_starttls(n)
    r.starttls()
    code, lines = r.cmd("EHLO hostile.test")
    eq(code, 250, "EHLO after TLS")
    check(not any("STARTTLS" in x for x in lines), "STARTTLS offered again inside TLS")
    eq(r.cmd("QUIT")[0], 221, "QUIT")
    still_serving(n)


def test_session_time_in_handshake_no_cleartext():
    """The session deadline while the client sits in the handshake: the node closes without a
    clear-text 421 (which the client's TLS would read as a broken record)."""
    n = st.Node(conf={"limits": {"session_time": "2s", "idle_timeout": "2s"}}).start()
    try:
        r = to_starttls(n)
        r.send(b"\x16\x03\x01\x00")      # the start of a record, never finished
        t0 = time.time()
        data = read_all(r.s, timeout=8)
        check(time.time() - t0 < 7, "not closed at the session deadline")
        check(b"421" not in data, "clear-text 421 inside a TLS handshake: %r" % data)
        check("timeout in state TLS" in n.read_log(), "timeout not logged by state name")
        still_serving(n)
    finally:
        n.cleanup()


# ---- 2. pipelining back-pressure ----

class Reader(threading.Thread):
    """Reads replies as they come, while the main thread writes: a client that does read."""

    def __init__(self, sock, want, timeout=60):
        super().__init__(daemon=True)
        self.sock, self.want, self.timeout = sock, want, timeout
        self.codes = []
        self.buf = b""

    def run(self):
        self.sock.settimeout(self.timeout)
        try:
            while len(self.codes) < self.want:
                d = self.sock.recv(1 << 16)
                if not d:
                    return
                self.buf += d
                *lines, self.buf = self.buf.split(b"\r\n")
                for ln in lines:
                    if len(ln) >= 4 and ln[3:4] == b" ":
                        self.codes.append(int(ln[:3]))
        except OSError:
            return


def pipeline(n, payload, want, read_first=True):
    s = socket.create_connection(n.primary, timeout=30)
    rd = Reader(s, want + 1)
    rd.start()
    s.sendall(payload)
    rd.join(60)
    s.close()
    return rd.codes[1:]                    # without the banner


def test_pipelined_vrfy_then_message():
    """5,000 VRFY and a message in one write: every reply, in order, the 250 last."""
    n = node()
    mid = "vrfy-%d@hostile.test" % os.getpid()
    payload = (b"EHLO hostile.test\r\n" + b"VRFY postmaster\r\n" * 5000 +
               b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<r@example.test>\r\nDATA\r\n" +
               ("Message-ID: <%s>\r\n\r\nhi\r\n.\r\nQUIT\r\n" % mid).encode())
    codes = pipeline(n, payload, 1 + 5000 + 5)
    eq(len(codes), 5006, "replies")
    eq(codes[0], 250, "EHLO")
    check(all(c == 252 for c in codes[1:5001]), "VRFY replies out of order")
    eq(codes[5001:], [250, 250, 354, 250, 221], "the transaction after the VRFYs")
    check(mid in n.queue_ids(), "the message is not in the spool")
    still_serving(n)


def test_pipelined_inside_tls():
    """The same back-pressure inside TLS: 5,000 VRFY and a message pipelined after the handshake
    (the replies pass 32 KiB, so the session stops and resumes with TLS holding the input)."""
    n = node()
    r = to_starttls(n)
    r.starttls()
    mid = "tls-vrfy-%d@hostile.test" % os.getpid()
    payload = (b"EHLO hostile.test\r\n" + b"VRFY postmaster\r\n" * 5000 +
               b"MAIL FROM:<a@sender.test>\r\nRCPT TO:<r@example.test>\r\nDATA\r\n" +
               ("Message-ID: <%s>\r\n\r\nhi\r\n.\r\nQUIT\r\n" % mid).encode())
    r.s.sendall(payload)
    codes = []
    while len(codes) < 5006:
        code, _ = r.reply()
        codes.append(code)
    eq(codes[0], 250, "EHLO")
    check(all(c == 252 for c in codes[1:5001]), "VRFY replies out of order")
    eq(codes[5001:], [250, 250, 354, 250, 221], "the transaction after the VRFYs")
    check(mid in n.queue_ids(), "the message is not in the spool")
    r.close()
    still_serving(n)


def test_pipelined_noop_rset_10000():
    n = node()
    payload = b"EHLO hostile.test\r\n" + b"NOOP\r\nRSET\r\n" * 5000 + b"QUIT\r\n"
    codes = pipeline(n, payload, 1 + 10000 + 1)
    eq(len(codes), 10002, "replies (none lost)")
    check(all(c == 250 for c in codes[:10001]), "a NOOP/RSET reply is not 250")
    eq(codes[-1], 221, "QUIT last")
    still_serving(n)


def test_client_that_does_not_read():
    """600,000 NOOPs written before a single reply is read: once the replies fill the sockets,
    the node stops reading, and once the client reads, every reply arrives, in order."""
    n = node()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # the replies back up sooner
    s.settimeout(60)
    s.connect(n.primary)
    count = 600000
    payload = b"NOOP\r\n" * count + b"QUIT\r\n"
    done = threading.Event()

    def writer():
        try:
            s.sendall(payload)
        except OSError:
            pass
        done.set()

    threading.Thread(target=writer, daemon=True).start()
    time.sleep(1.5)
    # The node stopped reading: what the client wrote waits in the sockets (the client's
    # Send-Q, the node's Recv-Q), not in the node's memory.
    port = s.getsockname()[1]
    unread = 0
    for flt in (["src", "127.0.0.1:%d" % port], ["dst", "127.0.0.1:%d" % port]):
        out = subprocess.run(["ss", "-tnH", "state", "established"] + flt,
                             capture_output=True, text=True).stdout.split()
        if len(out) >= 2:
            unread += int(out[1]) if flt[0] == "src" else int(out[0])
    check(unread > 500000, "the node kept reading a client that does not read (%d bytes "
          "unread)" % unread)
    rd = Reader(s, count + 2, timeout=60)
    rd.run()
    s.close()
    eq(len(rd.codes), count + 2, "replies")
    eq(rd.codes[0], 220, "banner")
    check(all(c == 250 for c in rd.codes[1:-1]), "NOOP replies")
    eq(rd.codes[-1], 221, "QUIT")
    still_serving(n)


# ---- 7. limits ----

def test_line_without_end():
    """10 MB with no newline: 500 and close long before the end, not an endless read."""
    n = node()
    s = socket.create_connection(n.primary, timeout=20)
    s.recv(1000)                                   # banner
    sent = [0]

    def writer():
        chunk = b"A" * 65536
        try:
            for _ in range(160):
                s.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass

    w = threading.Thread(target=writer, daemon=True)
    w.start()
    data = read_all(s, timeout=10)
    w.join(10)
    check(data.startswith(b"500 5.5.2"), "no 500 for an endless line: %r" % data[:100])
    check(sent[0] < 10 * 1024 * 1024, "the node read all 10 MB")
    s.close()
    still_serving(n)


def message_with(headers, body=b"body\r\n"):
    return b"".join(headers) + b"\r\n" + body


def send_raw_message(n, msg, bdat=False):
    r = st.Raw(n.primary)
    r.reply()
    r.cmd("EHLO hostile.test")
    eq(r.cmd("MAIL FROM:<a@sender.test>")[0], 250, "MAIL")
    eq(r.cmd("RCPT TO:<r@example.test>")[0], 250, "RCPT")
    if bdat:
        r.send(b"BDAT %d LAST\r\n" % len(msg) + msg)
    else:
        eq(r.cmd("DATA")[0], 354, "DATA")
        r.send(msg + b".\r\n")
    code, lines = r.reply()
    return r, code, lines


def test_header_count_limit():
    n = node()
    mid = "many-%d@hostile.test" % os.getpid()
    hdrs = [b"Message-ID: <%s>\r\n" % mid.encode()] + [b"X-H: %d\r\n" % i for i in range(200000)]
    for bdat in (False, True):
        r, code, lines = send_raw_message(n, message_with(hdrs), bdat)
        eq(code, 554, "200,000 header fields (%s)" % ("BDAT" if bdat else "DATA"))
        check("5.6.0" in lines[0], lines[0])
        # The session goes on: the next message is taken.
        eq(r.cmd("RSET")[0], 250, "RSET after the refusal")
        r.close()
    check(mid not in n.queue_ids(), "a refused message is in the spool")
    still_serving(n)


def test_header_size_limit():
    n = node()
    big = b"X-Big: " + b"x" * 70 + b"".join(b"\r\n\t" + b"y" * 70 for _ in range(15000)) + b"\r\n"
    for bdat in (False, True):
        r, code, lines = send_raw_message(n, message_with([b"Subject: big\r\n", big]), bdat)
        eq(code, 552, "a 1 MB header (%s)" % ("BDAT" if bdat else "DATA"))
        check("5.3.4" in lines[0], lines[0])
        r.close()
    # A big body under a small header is fine.
    r, code, _ = send_raw_message(n, message_with([b"Subject: ok\r\n"], b"z" * 70 + b"\r\n") * 1)
    eq(code, 250, "a normal message")
    r.close()
    still_serving(n)


def test_header_limits_configurable():
    n = st.Node(conf={"limits": {"header_count": "20"}}).start()
    try:
        r, code, _ = send_raw_message(n, message_with([b"X-H: %d\r\n" % i for i in range(21)]))
        eq(code, 554, "21 fields with header_count = 20")
        r.close()
        r, code, _ = send_raw_message(n, message_with([b"X-H: %d\r\n" % i for i in range(20)]))
        eq(code, 250, "20 fields with header_count = 20")
        r.close()
    finally:
        n.cleanup()


# ---- 8. early talkers and blocked sources at connect ----

def test_early_talker():
    n = st.Node(conf={"listen fallback": {"greet_pause": "1s"},
                      "policy": {"ip_block": "127.0.0.5", "ip_allow": "127.0.0.6"}}).start()
    try:
        # Talks first on the fallback MX: 554 instead of the banner, its transaction not taken.
        mid = "early-%d@hostile.test" % os.getpid()
        s = socket.create_connection(n.fallback, timeout=10)
        s.sendall(b"EHLO bot.test\r\nMAIL FROM:<a@sender.test>\r\nRCPT TO:<r@example.test>\r\n"
                  b"DATA\r\nMessage-ID: <%s>\r\n\r\nspam\r\n.\r\nQUIT\r\n" % mid.encode())
        data = read_all(s, timeout=5)
        s.close()
        check(data.startswith(b"554 5.5.1"), "early talker not refused: %r" % data[:100])
        eq(data.count(b"\r\n"), 1, "one reply, then close")
        check(mid not in n.queue_ids(), "the early talker's message was queued")
        check(st.wait_for(lambda: "early talker from 127.0.0.1" in n.read_log(), 5),
              "early talker not logged")
        # A client that waits gets the banner after the pause and is served.
        t0 = time.time()
        st.send(n.fallback, "a@sender.test", ["r@example.test"], "Subject: patient\r\n\r\nok\r\n")
        check(time.time() - t0 >= 0.9, "no pause before the fallback MX's banner")
        # The primary MX has no pause.
        t0 = time.time()
        r = st.Raw(n.primary)
        eq(r.reply()[0], 220, "primary banner")
        check(time.time() - t0 < 0.9, "the primary MX paused too")
        r.close()
        # ip_allow skips the pause.
        t0 = time.time()
        r = st.Raw(n.fallback, source="127.0.0.6")
        eq(r.reply()[0], 220, "allowed source's banner")
        check(time.time() - t0 < 0.9, "an ip_allow source was made to wait")
        r.close()
        # ip_block at connect: refused before any banner, on both MX addresses.
        for addr in (n.primary, n.fallback):
            r = st.Raw(addr, source="127.0.0.5")
            code, lines = r.reply()
            eq(code, 554, "blocked source at connect")
            check("5.7.1" in lines[0], lines[0])
            check(r.closed(), "blocked source not disconnected")
        check(st.wait_for(lambda: "reject: CONNECT from 127.0.0.5:" in n.read_log(), 5),
              "connect refusal not logged")
        still_serving(n)
    finally:
        n.cleanup()


def test_greet_pause_default_for_all():
    n = st.Node(conf={"limits": {"greet_pause": "500ms"}}).start()
    try:
        s = socket.create_connection(n.primary, timeout=10)
        s.sendall(b"EHLO bot.test\r\n")
        data = read_all(s, timeout=3)
        s.close()
        check(data.startswith(b"554"), "early talker on the primary MX: %r" % data[:80])
        still_serving(n)
    finally:
        n.cleanup()


def teardown():
    if _node is not None:
        _node.cleanup()


if __name__ == "__main__":
    try:
        rc = st.run_suite("hostile.session", globals())
    finally:
        teardown()
    sys.exit(rc)
