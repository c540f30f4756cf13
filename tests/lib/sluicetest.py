"""sluicetest - the harness the protocol and integration suites share.

Starts a real sluice-node from the build tree with a generated config on loopback, waits for it to
listen, and stops it (SIGTERM, expecting exit status 0) or kills it (SIGKILL). Each suite is a file
of functions named test_*; run_suite() runs them in order and prints one line per test, then
"SUITE: N passed, M failed" for tests/run to add up. Only Debian's /usr/bin/python3 and its
standard library are used.
"""
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = os.environ.get("SLUICE_SOURCE_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("SLUICE_BUILD_ROOT") or os.path.join(ROOT, "build")
NODE = os.path.join(BUILD, "dataplane", "sluice-node")
QUEUE = os.path.join(BUILD, "dataplane", "spool", "sluice-queue")

_port = [int(os.environ.get("SLUICE_TEST_PORT_BASE", "0")) or 20000 + (os.getpid() % 20000)]


def free_port():
    """A TCP port nobody listens on (we bind to check, on every address we use)."""
    while True:
        _port[0] += 1
        if _port[0] > 60000:
            _port[0] = 20000
        p = _port[0]
        ok = True
        for addr in ("127.0.0.1", "127.0.0.2", "127.0.0.3"):
            s = socket.socket()
            try:
                s.bind((addr, p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return p


def make_cert(dirname):
    """A self-signed certificate for STARTTLS tests (openssl from Debian)."""
    cert = os.path.join(dirname, "cert.pem")
    key = os.path.join(dirname, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=mx.test"],
                       check=True, capture_output=True)
    return cert, key


class Node:
    """A running sluice-node. conf: dict of section -> dict of key -> value."""

    def __init__(self, conf=None, workdir=None, primary="127.0.0.2", fallback="127.0.0.3",
                 domains=("example.test",), tls=True, extra=""):
        self.workdir = workdir or tempfile.mkdtemp(prefix="sluice-test-")
        self.port = free_port()
        self.primary = (primary, self.port)
        self.fallback = (fallback, self.port)
        self.spool = os.path.join(self.workdir, "spool")
        self.log = os.path.join(self.workdir, "node.log")
        self.conf_path = os.path.join(self.workdir, "node.ini")
        sections = {
            "node": {"name": "test", "hostname": "mx.test", "spool_dir": self.spool,
                     "shards": "2", "run_as_root": "yes"},
            "limits": {},
            "listen primary": {"address": "%s:%d" % self.primary, "role": "primary"},
            "listen fallback": {"address": "%s:%d" % self.fallback, "role": "fallback"},
        }
        if tls:
            cert, key = make_cert(self.workdir)
            sections["tls"] = {"cert": cert, "key": key}
        for d in domains:
            sections["domain " + d] = {"route": "127.0.0.1:9"}
        for sec, kv in (conf or {}).items():
            sections.setdefault(sec, {}).update(kv)
        self.sections = sections
        self.extra = extra
        self.write_conf()
        self.proc = None

    def write_conf(self, sections=None, extra=None):
        sections = sections or self.sections
        with open(self.conf_path, "w") as f:
            for sec, kv in sections.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
                f.write("\n")
            f.write(self.extra if extra is None else extra)

    def start(self, timeout=20):
        readies = self.read_log().count("ready:")   # the log is appended to across restarts
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([NODE, "--config", self.conf_path], stdout=self.logf,
                                     stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("sluice-node exited with %s:\n%s" % (self.proc.returncode,
                                                                       self.read_log()[-3000:]))
            if self.read_log().count("ready:") > readies:
                return self
            time.sleep(0.05)
        raise RuntimeError("sluice-node did not become ready:\n" + self.read_log()[-3000:])

    def read_log(self):
        try:
            with open(self.log, "r", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stop(self, timeout=30):
        """SIGTERM; returns the exit status."""
        if self.proc is None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            raise RuntimeError("sluice-node did not stop within %ss" % timeout)
        finally:
            self.logf.close()
        self.proc = None
        return rc

    def kill(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.logf.close()
            self.proc = None

    def hup(self):
        self.proc.send_signal(signal.SIGHUP)

    def cleanup(self):
        self.kill()
        note_sanitizer_reports(self.read_log())
        shutil.rmtree(self.workdir, ignore_errors=True)

    def queue(self, *args):
        """Runs sluice-queue; stdout is decoded with its CR LF kept (no newline translation)."""
        r = subprocess.run([QUEUE, "-d", self.spool] + list(args), capture_output=True)
        r.stdout = r.stdout.decode("utf-8", errors="replace")
        r.stderr = r.stderr.decode("utf-8", errors="replace")
        return r

    def queue_ids(self):
        """Message-IDs (without <>) of the queued messages, as a list (duplicates kept)."""
        r = self.queue("ids")
        if r.returncode != 0:
            raise RuntimeError("sluice-queue ids: %s %s" % (r.returncode, r.stderr))
        out = []
        for line in r.stdout.splitlines():
            parts = line.split("\t")
            if len(parts) >= 2:
                out.append(parts[1].strip().strip("<>"))
        return out


class Raw:
    """A raw SMTP client over a socket: send bytes, read replies."""

    def __init__(self, addr, timeout=10, source=None):
        self.s = socket.create_connection(addr, timeout=timeout,
                                          source_address=(source, 0) if source else None)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.s.sendall(data)

    def reply(self):
        """One whole (possibly multi-line) reply: (code, [lines])."""
        lines = []
        while True:
            while b"\r\n" not in self.buf:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise EOFError("connection closed; partial: %r" % self.buf)
                self.buf += chunk
            line, self.buf = self.buf.split(b"\r\n", 1)
            line = line.decode(errors="replace")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), lines

    def cmd(self, c):
        self.send(c + "\r\n")
        return self.reply()

    def closed(self, timeout=5):
        """True if the server closes the connection (after any pending data)."""
        self.s.settimeout(timeout)
        try:
            while True:
                d = self.s.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def starttls(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.s = ctx.wrap_socket(self.s, server_hostname="mx.test")
        self.buf = b""

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


class SendLoop(threading.Thread):
    """A client for the crash tests: sends messages over smtplib, `per_conn` per connection,
    reconnecting whenever the node is gone, until `stop` is set. make(idx, seq) returns
    (message-id, body); every message that got its 250 is appended to `accepted` as
    record(mid, body). An attempt cut off by a kill is neither counted nor retried (the next
    message has a new Message-ID), so the test can tell 250s from maybes."""

    def __init__(self, idx, addr, accepted, stop, make, record=lambda mid, body: mid,
                 per_conn=50, helo="crash.test"):
        super().__init__(daemon=True)
        self.idx, self.addr, self.accepted, self.stop = idx, addr, accepted, stop
        self.make, self.record, self.per_conn, self.helo = make, record, per_conn, helo
        self.attempts = 0

    def run(self):
        import smtplib
        seq = 0
        while not self.stop.is_set():
            try:
                s = smtplib.SMTP(*self.addr, timeout=10)
                s.ehlo(self.helo)
            except (OSError, smtplib.SMTPException):
                time.sleep(0.05)
                continue
            try:
                for _ in range(self.per_conn):
                    if self.stop.is_set():
                        break
                    seq += 1
                    mid, body = self.make(self.idx, seq)
                    self.attempts += 1
                    s.sendmail("c@sender.test", ["r@example.test"],
                               "Message-ID: <%s>\r\nSubject: crash\r\n\r\n%s" % (mid, body))
                    # sendmail returned: the server said 250 after DATA.
                    self.accepted.append(self.record(mid, body))
                s.quit()
            except (OSError, smtplib.SMTPException, EOFError):
                pass   # killed mid-way: this attempt's message may or may not be stored


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def eq(a, b, what=""):
    if a != b:
        raise AssertionError("%s: got %r, want %r" % (what, a, b))


# Reports of the sanitizer build (tests/run runs the suites again against it): a node's log is
# checked when it is cleaned up, and the test that ran it fails.
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "WARNING: ThreadSanitizer")
SANITIZER_REPORTS = []


def note_sanitizer_reports(log):
    for mark in SANITIZER_MARKS:
        i = log.find(mark)
        if i >= 0:
            SANITIZER_REPORTS.append(log[max(0, i - 200):i + 3000])
            return


def run_suite(name, module_globals, only=None):
    tests = [(n, f) for n, f in module_globals.items() if n.startswith("test_") and callable(f)]
    if only:
        tests = [(n, f) for n, f in tests if any(o in n for o in only)]
    passed = failed = 0
    for n, f in tests:
        t0 = time.time()
        reports = len(SANITIZER_REPORTS)
        try:
            f()
            if len(SANITIZER_REPORTS) > reports:
                raise AssertionError("sanitizer report:\n" + SANITIZER_REPORTS[reports])
            passed += 1
            print("PASS %s.%s (%.1fs)" % (name, n, time.time() - t0), flush=True)
        except Exception as e:  # noqa: BLE001 - a test's failure of any kind is reported
            failed += 1
            print("FAIL %s.%s: %s" % (name, n, e), flush=True)
            traceback.print_exc(limit=4, file=sys.stdout)
    print("%s: %d passed, %d failed" % (name, passed, failed), flush=True)
    return 1 if failed else 0


def run_suite_around(name, module_globals, setup, teardown, needs=("nats-server",), why=None):
    """A suite that needs programs (and maybe more: why, a reason it cannot run, or None): the
    SKIP line and "0 passed, 0 failed" when one is missing, else setup, the tests, teardown
    (always, even when setup fails). The process's exit status."""
    missing = [p for p in needs if not shutil.which(p)]
    if missing and why is None:
        why = "%s not installed" % ", ".join(missing)
    if why:
        print("SKIP %s: %s" % (name, why))
        print("%s: 0 passed, 0 failed" % name)
        return 0
    try:
        setup()
        return run_suite(name, module_globals, sys.argv[1:])
    finally:
        teardown()


# ---- Destinations for relay tests (additions for tests/integration/test_relay*.py) ----

DELIVERY_HELPERS = os.path.join(ROOT, "tests", "integration", "delivery")
PY = "/usr/bin/python3"


class Sink:
    """aiosmtpd as a relay destination (tests/integration/delivery/aiosmtpd_server.py): each
    message it accepts becomes OUTDIR/N.msg (sender line, recipients line, then the content).
    tls=(cert, key) offers STARTTLS."""

    def __init__(self, port=None, tls=None):
        self.port = port or free_port()
        self.outdir = tempfile.mkdtemp(prefix="sluice-sink-")
        self.tls = tls
        self.proc = None
        self.runs = 0

    def start(self, timeout=15):
        # Each start writes to a directory of its own: the server numbers files from 1.
        self.runs += 1
        rundir = os.path.join(self.outdir, "run%03d" % self.runs)
        os.mkdir(rundir)
        args = [PY, os.path.join(DELIVERY_HELPERS, "aiosmtpd_server.py"), str(self.port),
                rundir]
        if self.tls:
            args += ["--tls", self.tls[0], self.tls[1]]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError("aiosmtpd did not start")
        return self

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None

    def messages(self):
        """[(sender, [recipients], content bytes, tls bool)], in arrival order."""
        out = []
        for run in sorted(os.listdir(self.outdir)):
            rundir = os.path.join(self.outdir, run)
            names = [n for n in os.listdir(rundir) if n.endswith(".msg")]
            for n in sorted(names, key=lambda x: int(x.split(".")[0])):
                with open(os.path.join(rundir, n), "rb") as f:
                    data = f.read()
                sender, rcpts, content = data.split(b"\n", 2)
                tls = False
                try:
                    with open(os.path.join(rundir, n[:-4] + ".tls")) as f:
                        tls = f.read().strip() == "yes"
                except OSError:
                    pass
                out.append((sender.decode(), rcpts.decode().split(","), content, tls))
        return out

    def wait(self, count, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = self.messages()
            if len(m) >= count:
                return m
            time.sleep(0.05)
        return self.messages()

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.outdir, ignore_errors=True)


class ScriptDest:
    """A scripted SMTP destination in a thread of the test, for misbehaviour on purpose.
    rcpt(addr, conn_no) -> reply line for RCPT (default 250); data_end(conn_no, txn_no) -> reply
    line after the final dot (default 250); drop_in_data(txn_no) -> True to close the
    connection after the first body bytes; endless=True answers EHLO with 250- lines forever.
    Records every accepted message as (sender, recipients, raw dot-stuffed body bytes)."""

    def __init__(self, rcpt=None, data_end=None, drop_in_data=None, endless=False):
        import threading
        self.port = free_port()
        self.rcpt = rcpt or (lambda addr, n: "250 2.1.5 Ok")
        self.data_end = data_end or (lambda n, t: "250 2.0.0 Ok")
        self.drop_in_data = drop_in_data or (lambda t: False)
        self.endless = endless
        self.accepted = []
        self.transactions = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", self.port))
        self.ls.listen(64)
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        import threading
        while not self.stopped:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                n = self.connections
            threading.Thread(target=self._serve, args=(c, n), daemon=True).start()

    def _serve(self, c, n):
        f = c.makefile("rb")
        try:
            c.sendall(b"220 script.test ESMTP\r\n")
            sender, rcpts = None, []
            while True:
                line = f.readline()
                if not line:
                    return
                verb = line[:4].upper()
                if verb == b"EHLO":
                    if self.endless:
                        while True:
                            c.sendall(b"250-ENDLESS padding padding padding padding\r\n" * 64)
                    c.sendall(b"250-script.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                              b"250 ENHANCEDSTATUSCODES\r\n")
                elif verb == b"HELO":
                    c.sendall(b"250 script.test\r\n")
                elif verb == b"MAIL":
                    sender = line[line.index(b"<") + 1:line.index(b">")].decode()
                    rcpts = []
                    c.sendall(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    addr = line[line.index(b"<") + 1:line.index(b">")].decode()
                    r = self.rcpt(addr, n)
                    if r.startswith("2"):
                        rcpts.append(addr)
                    c.sendall(r.encode() + b"\r\n")
                elif verb == b"DATA":
                    if not rcpts:
                        c.sendall(b"554 5.5.1 no valid recipients\r\n")
                        continue
                    with self.lock:
                        self.transactions += 1
                        t = self.transactions
                    c.sendall(b"354 go ahead\r\n")
                    body = b""
                    if self.drop_in_data(t):
                        f.readline()
                        return
                    while True:
                        bl = f.readline()
                        if not bl:
                            return
                        if bl == b".\r\n":
                            break
                        body += bl
                    r = self.data_end(n, t)
                    if r.startswith("2"):
                        with self.lock:
                            self.accepted.append((sender, list(rcpts), body))
                    c.sendall(r.encode() + b"\r\n")
                elif verb == b"RSET":
                    sender, rcpts = None, []
                    c.sendall(b"250 2.0.0 Ok\r\n")
                elif verb == b"QUIT":
                    c.sendall(b"221 2.0.0 Bye\r\n")
                    return
                else:
                    c.sendall(b"502 5.5.2 what\r\n")
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def wait(self, count, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline and len(self.accepted) < count:
            time.sleep(0.05)
        return list(self.accepted)

    def stop(self):
        self.stopped = True
        try:
            self.ls.close()
        except OSError:
            pass


def relay_node(routes, delivery=None, domains_extra=None, shards="1", **kw):
    """A Node whose domains relay to the given routes: {domain: route}. delivery: [delivery]
    keys over short test defaults (retries in a second or two)."""
    d = {"retry_first": "1s", "retry_max": "2s", "retry_jitter": "0", "idle_time": "1s",
         "connect_timeout": "3s"}
    d.update(delivery or {})
    conf = {"node": {"shards": shards}, "delivery": d}
    for dom, route in routes.items():
        conf["domain " + dom] = {"route": route}
        conf["domain " + dom].update((domains_extra or {}).get(dom, {}))
    return Node(conf=conf, domains=tuple(routes), tls=kw.pop("tls", False), **kw)


def send(addr, sender, rcpts, data, timeout=10):
    """One message with smtplib; returns the reply (code, text) to the end of data, or raises."""
    import smtplib
    s = smtplib.SMTP(*addr, timeout=timeout)
    try:
        s.ehlo("client.test")
        s.sendmail(sender, rcpts, data)
        return s
    finally:
        try:
            s.quit()
        except Exception:  # noqa: BLE001 - the connection may be gone already
            pass


def wait_for(cond, timeout=20, step=0.05):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    return cond()
