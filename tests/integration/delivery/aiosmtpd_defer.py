#!/usr/bin/python3
"""A real SMTP server that defers every recipient: aiosmtpd answering RCPT TO with a fixed 4xx.

Usage: aiosmtpd_defer.py PORT REPLY
REPLY is the whole reply line, e.g. "451 4.7.1 Greylisted, come back later". Prints "ready" when
it listens; counts the RCPT commands it refused on stderr. Runs until killed. Loopback only.
"""
import signal
import sys

from aiosmtpd.controller import Controller


class Deferrer:
    def __init__(self, reply):
        self.reply = reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        print("rcpt %s" % address, file=sys.stderr, flush=True)
        return self.reply


def main():
    port = int(sys.argv[1])
    ctl = Controller(Deferrer(sys.argv[2]), hostname="127.0.0.1", port=port,
                     server_hostname="defer.test", ready_timeout=10)
    ctl.start()
    print("ready", flush=True)
    signal.pause()   # SIGTERM from the test ends the process


if __name__ == "__main__":
    main()
