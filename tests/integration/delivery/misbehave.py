#!/usr/bin/python3
"""Scripted SMTP servers that misbehave on purpose, for the delivery client's tests.

Usage: misbehave.py MODE PORT OUTDIR [--bad N] [--delay SECONDS]
Modes:
  mixed     PIPELINING, 8BITMIME, SIZE; RCPT to a local part starting with "defer" gets
            450 4.2.1, with "fail" 550 5.1.1, others 250; the raw DATA bytes (still
            dot-stuffed, up to and including the final dot) go to OUTDIR/N.raw, and each
            recv() of the command phase to OUTDIR/N.reads (one repr per line).
  dropdata  as mixed, but closes the connection after the first bytes of the body.
  endless   answers EHLO with "250-" lines without end (until the client goes away).
  ehlo5xx   refuses EHLO with 502, takes HELO; no extensions; otherwise as mixed.
  mail421   says 421 to MAIL and closes.
  tlsgarbage  as mixed, offers STARTTLS; answers 220 to it, then sends bytes that are no TLS
            record in reply to the ClientHello, and closes.
  tlsclose  as mixed, offers STARTTLS; answers 220 to it and closes at once (mid-handshake).
  tlshang   as mixed, offers STARTTLS; answers 220 to it, then reads and never answers.
  trickle   as mixed, but every reply goes out one byte at a time, --delay seconds apart
            (default 1).
  trickledot as mixed, but only the reply to the final dot trickles.
  nolong    as mixed, but a message with a line over 998 octets gets "500 5.5.0 Line too
            long" to the final dot (and is not kept).
  resetdata as mixed, but resets the connection (RST) after the first bytes of the body.
  stallbody as mixed (with SIZE 30000000), but stops reading after the 354 for 5 s, with a
            small receive buffer: the client's body stalls.
  idle421   as mixed, but after each accepted message says "421 4.4.2 idle" and closes.
--bad N: only the first N connections misbehave; later ones are "mixed" (STARTTLS still offered
in the tls* modes, a STARTTLS then gets 454). Each connection and each STARTTLS is logged to OUTDIR/log ("conn N",
"starttls N", "plain N": a transaction on a connection without TLS).
One connection at a time; runs until killed. Loopback only.
"""
import os
import socket
import struct
import sys
import time


BIG = [False]   # stallbody: SIZE 30000000 on every connection (its body must not fit buffers)


def log(outdir, line):
    with open(os.path.join(outdir, "log"), "a") as f:
        f.write(line + "\n")


def serve(conn, mode, outdir, counter, cno, delay):
    reads = []
    tlsmode = mode.startswith("tls")
    log(outdir, "conn %d" % cno)

    slow = [mode == "trickle"]

    def send(b):
        if not slow[0]:
            conn.sendall(b)
            return
        for i in range(len(b)):
            conn.sendall(b[i:i + 1])
            time.sleep(delay)

    buf = b""

    def readline():
        nonlocal buf
        while b"\n" not in buf:
            d = conn.recv(65536)
            if not d:
                raise EOFError
            reads.append(d)
            buf += d
        line, _, buf = buf.partition(b"\n")
        return line.rstrip(b"\r")

    send(b"220 misbehave.test ESMTP\r\n")
    rcpts = []
    while True:
        line = readline()
        verb = line[:4].upper()
        if verb == b"EHLO":
            if mode == "ehlo5xx":
                send(b"502 5.5.1 EHLO not implemented\r\n")
                continue
            if mode == "endless":
                i = 0
                try:
                    while i < 10000000:
                        send(b"250-KEYWORD%08d padding padding padding\r\n" % i)
                        i += 1
                except OSError:
                    return
                return
            send(b"250-misbehave.test\r\n250-PIPELINING\r\n" +
                 (b"250-SIZE 30000000\r\n" if BIG[0] else b"250-SIZE 1000000\r\n") +
                 (b"250-STARTTLS\r\n" if tlsmode else b"") +
                 b"250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n")
        elif verb == b"STAR" and tlsmode:
            log(outdir, "starttls %d" % cno)
            if mode == "tlsok":
                send(b"454 4.7.0 TLS not available now\r\n")
                continue
            send(b"220 2.0.0 Ready to start TLS\r\n")
            if mode == "tlsclose":
                return
            hello = conn.recv(65536)
            if mode == "tlshang":
                while conn.recv(65536):
                    pass
                return
            if hello:
                # Not a TLS record: a plain-text line and noise, as a broken middlebox sends.
                send(b"250 this is not TLS\r\n" + bytes(range(0, 256)) * 2)
            time.sleep(0.2)
            return
        elif verb == b"HELO":
            send(b"250 misbehave.test\r\n")
        elif verb == b"MAIL":
            if mode == "mail421":
                send(b"421 4.3.2 going down\r\n")
                return
            rcpts = []
            reads_at_mail = len(reads)
            send(b"250 2.1.0 Ok\r\n")
        elif verb == b"RCPT":
            addr = line[line.index(b"<") + 1:line.index(b">")].decode()
            local = addr.split("@")[0]
            if local.startswith("defer"):
                send(b"450 4.2.1 mailbox busy\r\n")
            elif local.startswith("fail"):
                send(b"550 5.1.1 no such user\r\n")
            else:
                rcpts.append(addr)
                send(b"250 2.1.5 Ok\r\n")
        elif verb == b"DATA":
            if not rcpts:
                send(b"554 5.5.1 no valid recipients\r\n")
                continue
            send(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            log(outdir, "plain %d" % cno)
            counter[0] += 1
            n = counter[0]
            with open(os.path.join(outdir, "%d.reads" % n), "w") as f:
                for r in reads[reads_at_mail - 1:]:
                    f.write(repr(r) + "\n")
            raw = buf
            buf = b""
            if mode == "stallbody":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                time.sleep(5)   # past the client's deadline; then serve the next
                return
            if mode == "resetdata":
                while len(raw) < 10:
                    d = conn.recv(65536)
                    if not d:
                        break
                    raw += d
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            if mode == "dropdata":
                while len(raw) < 10:
                    d = conn.recv(65536)
                    if not d:
                        break
                    raw += d
                conn.shutdown(socket.SHUT_RDWR)
                return
            chunks, tail = [raw], b"\r\n" + raw
            while b"\r\n.\r\n" not in tail:
                d = conn.recv(262144)
                if not d:
                    raise EOFError
                chunks.append(d)
                tail = tail[-4:] + d   # the end mark may straddle two reads
            raw = b"".join(chunks)
            end = (b"\r\n" + raw).index(b"\r\n.\r\n") + 3
            buf = raw[end:]
            raw = raw[:end]
            if mode == "nolong" and max(len(x) for x in raw.split(b"\r\n")) > 998:
                log(outdir, "refused %d" % n)
                send(b"500 5.5.0 Line too long\r\n")
                continue
            with open(os.path.join(outdir, "%d.tmp" % n), "wb") as f:
                f.write(raw)
            os.rename(os.path.join(outdir, "%d.tmp" % n), os.path.join(outdir, "%d.raw" % n))
            slow[0] = slow[0] or mode == "trickledot"
            send(b"250 2.0.0 Ok: queued as M%d\r\n" % n)
            if mode == "idle421":
                time.sleep(0.1)
                send(b"421 4.4.2 idle\r\n")
                return
        elif verb == b"RSET":
            rcpts = []
            send(b"250 2.0.0 Ok\r\n")
        elif verb == b"QUIT":
            send(b"221 2.0.0 Bye\r\n")
            return
        elif verb == b"NOOP":
            send(b"250 2.0.0 Ok\r\n")
        else:
            send(b"502 5.5.2 what\r\n")


def main():
    mode, port, outdir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    bad, delay = None, 1.0
    opts = sys.argv[4:]
    while opts:
        if opts[0] == "--bad":
            bad = int(opts[1])
        elif opts[0] == "--delay":
            delay = float(opts[1])
        else:
            sys.exit("misbehave.py: unknown option " + opts[0])
        opts = opts[2:]
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if mode == "stallbody":
        BIG[0] = True
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    print("ready", flush=True)
    counter = [0]
    cno = 0
    while True:
        conn, _ = ls.accept()
        cno += 1
        m = mode
        if bad is not None and cno > bad:
            m = "tlsok" if mode.startswith("tls") else "mixed"
        try:
            serve(conn, m, outdir, counter, cno, delay)
        except (EOFError, OSError):
            pass
        finally:
            conn.close()


main()
