#!/usr/bin/python3
"""A real SMTP server for the delivery client's tests: aiosmtpd, optionally with STARTTLS.

Usage: aiosmtpd_server.py PORT OUTDIR [--tls CERT KEY]
Each message accepted is written to OUTDIR/N.msg as:
    line 1: the MAIL FROM address
    line 2: the recipients, comma-separated
    then the message content as aiosmtpd received it (dot-unstuffed, CR LF kept).
Also OUTDIR/N.tls holds "yes" or "no": whether the session was encrypted.
Runs until killed. Loopback only.
"""
import os
import signal
import ssl
import sys

from aiosmtpd.controller import Controller


class Recorder:
    def __init__(self, outdir):
        self.outdir = outdir
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(self.outdir, "%d" % self.n)
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.mail_from.encode() + b"\n")
            f.write(",".join(envelope.rcpt_tos).encode() + b"\n")
            f.write(envelope.original_content)
        with open(base + ".tls", "w") as f:
            f.write("yes" if session.ssl is not None else "no")
        os.rename(base + ".tmp", base + ".msg")
        return "250 2.0.0 Ok: stored as %d" % self.n


def main():
    port = int(sys.argv[1])
    outdir = sys.argv[2]
    kwargs = {}
    if len(sys.argv) > 3 and sys.argv[3] == "--tls":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(sys.argv[4], sys.argv[5])
        kwargs.update(tls_context=ctx, require_starttls=False)
    ctl = Controller(Recorder(outdir), hostname="127.0.0.1", port=port,
                     server_hostname="aiosmtpd.test", ready_timeout=10, **kwargs)
    ctl.start()
    print("ready", flush=True)
    signal.pause()   # SIGTERM from the test ends the process


main()
