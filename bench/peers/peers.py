"""peers.py - the servers a benchmark scenario compares, each set up in a private directory on
loopback and on a high port (never port 25, never the system's own configuration):

  SluiceNode   sluice-node --config FILE (INI written here); ready when it says "ready" on
               stderr or its port accepts
  Postfix      a private Postfix instance (own main.cf/master.cf/queue under the work dir,
               started with `postfix -c DIR`), smtpd into its own queue, fsync on (Postfix's
               default), delivery on hold: every message is put on the hold queue at DATA
               (smtpd_data_restrictions = check_client_access static:HOLD), and
               defer_transports covers every transport in case one slips through
  SmtpSink     Postfix's smtp-sink (the protocol ceiling: no disk, no parsing)
  LoadSink     sluice-load sink (a faster smtp-sink, with per-message records)
  PostfixRelay a private Postfix relaying the bench domain to a sink (transport_maps to
               smtp:[HOST]:PORT, its queue fsynced, default settings otherwise)
  SluiceRelay  sluice-node with `[domain D] route = HOST:PORT` of the sink, optionally with
               the content filter on ([node] rules_dir)
  NxResolver   dnsmasq answering NXDOMAIN to every name at once (no upstream)
  Rspamd       a private rspamd (normal worker only) using an NxResolver

and the process measurements the scenarios take: CPU time of a server's process tree
(utime+stime+cutime+cstime of every live process in it, from /proc/PID/stat, so children that
came and went are counted through their parent's cutime/cstime) and its memory (RSS and PSS,
summed over the tree, from /proc/PID/smaps_rollup).

Facts this relies on (see shared/notes/MACHINE.md): Postfix refuses inet_interfaces that are not
an interface address (127.0.0.2 is not, though Linux accepts binding it), so Postfix listens on
127.0.0.1; postfix(1) prints why it failed only to a terminal, so start-up errors are read from
its maillog file.
"""
import os
import shutil
import socket
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def default_corpus(root):
    """The dev corpus: $SLUICE_BENCH_CORPUS, beside the source tree (the team's layout), or where
    this workplace keeps it."""
    env = os.environ.get("SLUICE_BENCH_CORPUS")
    if env:
        return env
    beside = os.path.join(os.path.dirname(root), "shared", "corpus", "sa-dev.tar.gz")
    return beside if os.path.exists(beside) else "/work/shared/corpus/sa-dev.tar.gz"


def port_open(host, port, timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_holder(port):
    """Who listens on port, as ss prints it (for an error that says what to kill)."""
    try:
        r = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True,
                           timeout=5)
        return " ".join(r.stdout.split()) or "nobody listed by ss"
    except (OSError, subprocess.SubprocessError):
        return "ss not available"


def claim_port(host, port, hint="", secs=5.0):
    """Refuses to start a server on a port something else answers on. A server this run
    stopped a moment ago may still be closing: wait a few seconds before calling it taken."""
    end = time.time() + secs
    while port_open(host, port):
        if time.time() > end:
            raise RuntimeError(f"{host}:{port} is already taken{hint}: {port_holder(port)}")
        time.sleep(0.1)


def wait_port(host, port, secs=15.0, proc=None):
    end = time.time() + secs
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        if port_open(host, port):
            return True
        time.sleep(0.05)
    return False


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def proc_tree(pid):
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def tree_cpu_seconds(pid):
    """utime+stime+cutime+cstime over the live process tree rooted at pid."""
    total = 0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        # fields[0] is field 3 (state): utime=14, stime=15, cutime=16, cstime=17
        total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


def tree_memory(pid):
    """(rss_bytes, pss_bytes, nprocs) summed over the tree."""
    rss = pss = n = 0
    for p in proc_tree(pid):
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1]) * 1024
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1]) * 1024
            n += 1
        except OSError:
            continue
    return rss, pss, n


def stop_process(proc, timeout):
    """SIGTERM, then SIGKILL if it has not gone after timeout seconds."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Peer:
    """A server in a run. Subclasses start self.proc; a peer whose process is not its server's
    whole tree (Postfix) overrides pid() and stop()."""
    name = "peer"
    host = "127.0.0.1"
    port = 0
    available = True
    why = ""
    proc = None
    stop_timeout = 10

    def pid(self):
        return self.proc.pid

    def stop(self):
        stop_process(self.proc, self.stop_timeout)

    def cpu(self):
        return tree_cpu_seconds(self.pid())

    def memory(self):
        return tree_memory(self.pid())

    def accepted_since_reset(self):
        """Messages the server itself says it stored since the last reset, or None."""
        return None

    def reset(self):
        pass


class SmtpSink(Peer):
    name = "smtp-sink"

    def __init__(self, workdir, host="127.0.0.1", port=25252, backlog=4096):
        self.host, self.port, self.workdir = host, port, workdir
        self.backlog = backlog
        self.proc = None

    def start(self):
        claim_port(self.host, self.port, " (a leftover server?)")
        exe = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        self.log = open(os.path.join(self.workdir, "smtp-sink.log"), "w")
        # -u: drop root; -m: serve up to 15,000 connections at once (default 256, the rest
        # wait in the listen queue, which would spoil the idle-connection measurement).
        self.proc = subprocess.Popen([exe, "-u", "postfix", "-m", "15000", f"{self.host}:{self.port}",
                                      str(self.backlog)], stdout=self.log, stderr=self.log)
        if not wait_port(self.host, self.port, 10, self.proc):
            raise RuntimeError("smtp-sink did not start")

    stop_timeout = 5


class LoadSink(Peer):
    name = "sluice-load-sink"

    def __init__(self, exe, workdir, host="127.0.0.1", port=25253, threads=1):
        self.exe, self.workdir, self.host, self.port, self.threads = exe, workdir, host, port, threads
        self.proc = None

    def start(self):
        claim_port(self.host, self.port)
        self.log = open(os.path.join(self.workdir, "load-sink.log"), "w")
        self.proc = subprocess.Popen([self.exe, "sink", "--listen", f"{self.host}:{self.port}",
                                      "-t", str(self.threads), "-q"], stdout=self.log,
                                     stderr=self.log)
        if not wait_port(self.host, self.port, 10, self.proc):
            raise RuntimeError("sluice-load sink did not start")

    stop_timeout = 10


MASTER_CF = """\
{host}:{port} inet n - y - {smtpd_max} smtpd
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       y       1000?   1       tlsmgr
rewrite   unix  -       -       y       -       -       trivial-rewrite
bounce    unix  -       -       y       -       0       bounce
defer     unix  -       -       y       -       0       bounce
trace     unix  -       -       y       -       0       bounce
verify    unix  -       -       y       -       1       verify
flush     unix  n       -       y       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       y       -       -       smtp
relay     unix  -       -       y       -       -       smtp
showq     unix  n       -       y       -       -       showq
error     unix  -       -       y       -       -       error
retry     unix  -       -       y       -       -       error
discard   unix  -       -       y       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       y       -       -       lmtp
anvil     unix  -       -       y       -       1       anvil
scache    unix  -       -       y       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
myhostname = postfix.bench.test
mydestination =
relay_domains = {domain}
mynetworks = 127.0.0.0/8
inet_interfaces = {host}
inet_protocols = ipv4
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
# Accepted messages stay in the queue: HOLD at DATA puts each on the hold queue; nothing is
# delivered. Queue files are fsynced before the 250 (Postfix's default).
smtpd_data_restrictions = check_client_access static:HOLD
defer_transports = smtp, relay, local, virtual, lmtp
smtputf8_enable = no
biff = no
default_process_limit = {proc_limit}
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
anvil_rate_time_unit = 60s
"""


class Postfix(Peer):
    name = "postfix"

    def __init__(self, workdir, host="127.0.0.1", port=25251, domain="bench.test",
                 smtpd_max=100):
        self.dir = os.path.join(workdir, "postfix")
        self.host, self.port, self.domain = host, port, domain
        self.smtpd_max = smtpd_max
        self.etc = os.path.join(self.dir, "etc")

    def _postfix(self, *args, check=True):
        r = subprocess.run(["postfix", "-c", self.etc] + list(args), capture_output=True,
                           text=True)
        if check and r.returncode != 0:
            log = ""
            try:
                with open(os.path.join(self.dir, "maillog")) as f:
                    log = "".join(f.readlines()[-5:])
            except OSError:
                pass
            raise RuntimeError(f"postfix {' '.join(args)} failed: {r.stderr} {log}")
        return r

    def start(self):
        claim_port(self.host, self.port, " (a leftover postfix?)")
        if shutil.which("postfix") is None:
            raise RuntimeError("postfix is not installed (.ci/deps installs it)")
        d = os.path.dirname(os.path.abspath(self.dir))
        while d != "/":
            if not os.stat(d).st_mode & 0o001:
                raise RuntimeError(f"{d} is not searchable by others: Postfix's processes run as"
                                   " user postfix and could not reach their queue")
            d = os.path.dirname(d)
        shutil.rmtree(self.dir, ignore_errors=True)
        for d in ("etc", "queue", "data"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        os.chmod(self.dir, 0o755)
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(host=self.host, port=self.port, smtpd_max=self.smtpd_max))
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(MAIN_CF.format(dir=self.dir, host=self.host, domain=self.domain,
                                   proc_limit=max(100, self.smtpd_max + 20)))
        self._postfix("start")
        if not wait_port(self.host, self.port, 15):
            raise RuntimeError("postfix did not start listening")
        with open(os.path.join(self.dir, "queue", "pid", "master.pid")) as f:
            self.master = int(f.read().split()[0])

    def pid(self):
        return self.master

    def hold_count(self):
        n = 0
        for _, _, files in os.walk(os.path.join(self.dir, "queue", "hold")):
            n += len(files)
        return n

    def accepted_since_reset(self):
        return self.hold_count()

    def reset(self):
        """Empties the hold queue (outside the measured time), so every run starts alike."""
        subprocess.run(["postsuper", "-c", self.etc, "-d", "ALL", "hold"], capture_output=True)

    def stop(self):
        self._postfix("stop", check=False)
        end = time.time() + 10
        while time.time() < end and port_open(self.host, self.port):
            time.sleep(0.1)


SLUICE_INI = """\
[node]
hostname = mx.bench.test
spool_dir = {spool}
shards = {shards}
run_as_root = yes
{node_extra}
[limits]
# The peers run without per-client limits too (Postfix: connection count and rate limits 0);
# the idle measurement holds 10,000 connections from 8 source addresses.
connections_per_ip = 0
max_sessions = 20000

[listen primary]
address = {host}:{port}
role = primary

[domain {domain}]
route = {route}
{extra}"""


class SluiceNode(Peer):
    name = "sluice"

    def __init__(self, exe, workdir, host="127.0.0.2", port=25250, shards=2,
                 domain="bench.test", route="127.0.0.1:9", node_extra="", hold=False,
                 name="sluice"):
        self.exe, self.host, self.port, self.shards = exe, host, port, shards
        self.name = name   # "sluice-base": an older build beside this one (--base-build)
        # hold: spool and start no delivery, like the Postfix peer with everything on hold.
        self.extra = "\n[delivery]\nhold = yes\n" if hold else ""
        self.node_extra = node_extra   # more [node] lines, e.g. "rules_dir = DIR\n"
        self.dir = os.path.join(workdir, name.replace("+", "-"))
        self.domain, self.route = domain, route
        self.proc = None

    def start(self):
        if not self.exe or not os.access(self.exe, os.X_OK):
            raise RuntimeError(f"no sluice-node at {self.exe}")
        claim_port(self.host, self.port, " (a leftover daemon?)")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(os.path.join(self.dir, "spool"))
        self.conf = os.path.join(self.dir, "sluice.ini")
        with open(self.conf, "w") as f:
            f.write(SLUICE_INI.format(spool=os.path.join(self.dir, "spool"), shards=self.shards,
                                      host=self.host, port=self.port, domain=self.domain,
                                      route=self.route, node_extra=self.node_extra,
                                      extra=self.extra))
        self.logpath = os.path.join(self.dir, "sluice-node.log")
        self.log = open(self.logpath, "w")
        self.proc = subprocess.Popen([self.exe, "--config", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        end = time.time() + 15
        while time.time() < end:
            if self.proc.poll() is not None:
                with open(self.logpath) as f:
                    tail = f.read()[-400:]
                raise RuntimeError(f"sluice-node exited with {self.proc.returncode}: {tail}")
            if port_open(self.host, self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("sluice-node did not start listening in 15 s")

    stop_timeout = 15


# --- The relay scenario's peers: Postfix as a store-and-forward relay --------------------------

RELAY_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
myhostname = postfix.bench.test
mydestination =
relay_domains = {domain}
# Everything for the relay domain goes to the sink; the queue is fsynced before the 250
# (Postfix's default) and delivery runs with the default concurrency and connection cache.
transport_maps = inline:{{ {domain}=smtp:[{sink_host}]:{sink_port} }}
mynetworks = 127.0.0.0/8
inet_interfaces = {host}
inet_protocols = ipv4
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtputf8_enable = no
biff = no
default_process_limit = {proc_limit}
# The Sluice node runs without per-client limits too (connections_per_ip = 0).
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
anvil_rate_time_unit = 60s
"""


class PostfixRelay(Postfix):
    """A private Postfix relaying `domain` to sink_host:sink_port: smtpd -> cleanup -> queue
    (fsynced) -> qmgr -> smtp. Default settings otherwise (no hold, no deferral)."""
    name = "postfix"

    def __init__(self, workdir, host="127.0.0.1", port=25261, domain="bench.test",
                 sink_host="127.0.0.1", sink_port=25263, smtpd_max=100):
        super().__init__(workdir, host, port, domain, smtpd_max)
        self.dir = os.path.join(workdir, "postfix-relay")
        self.etc = os.path.join(self.dir, "etc")
        self.sink_host, self.sink_port = sink_host, sink_port

    def start(self):
        claim_port(self.host, self.port, " (a leftover postfix?)")
        if shutil.which("postfix") is None:
            raise RuntimeError("postfix is not installed (.ci/deps installs it)")
        shutil.rmtree(self.dir, ignore_errors=True)
        for d in ("etc", "queue", "data"):
            os.makedirs(os.path.join(self.dir, d), exist_ok=True)
        os.chmod(self.dir, 0o755)
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        with open(os.path.join(self.etc, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(host=self.host, port=self.port, smtpd_max=self.smtpd_max))
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            f.write(RELAY_MAIN_CF.format(dir=self.dir, host=self.host, domain=self.domain,
                                         sink_host=self.sink_host, sink_port=self.sink_port,
                                         proc_limit=max(100, self.smtpd_max + 20)))
        self._postfix("start")
        if not wait_port(self.host, self.port, 15):
            raise RuntimeError("postfix did not start listening")
        with open(os.path.join(self.dir, "queue", "pid", "master.pid")) as f:
            self.master = int(f.read().split()[0])

    def queued(self):
        """Messages still in the queue (incoming, active, deferred, hold)."""
        n = 0
        for q in ("incoming", "active", "deferred", "hold", "maildrop"):
            for _, _, files in os.walk(os.path.join(self.dir, "queue", q)):
                n += len(files)
        return n

    def accepted_since_reset(self):
        return None

    def reset(self):
        """Drops whatever a timed-out round left queued (outside the measured time)."""
        subprocess.run(["postsuper", "-c", self.etc, "-d", "ALL"], capture_output=True)


class SluiceRelay(SluiceNode):
    """sluice-node relaying `domain` to route (the sink); rules_dir turns the content filter
    on (a directory compiled by sluice-rules compile)."""

    def __init__(self, exe, workdir, host="127.0.0.2", port=25260, shards=2,
                 domain="bench.test", route="127.0.0.1:25263", rules_dir=None, name="sluice"):
        super().__init__(exe, workdir, host, port, shards, domain, route,
                         f"rules_dir = {rules_dir}\n" if rules_dir else "", name=name)
        self.rules_dir = rules_dir


# --- The scanning scenario's peers: rspamd behind a resolver that answers at once ---------------

class NxResolver:
    """dnsmasq on loopback answering NXDOMAIN to every name at once (no upstream, no hosts
    file, no /etc/dnsmasq.conf), so that a scanner's DNS lookups cost a round trip, not a
    timeout: nothing leaves the machine."""

    def __init__(self, workdir, host="127.0.0.1", port=25293):
        self.workdir, self.host, self.port = workdir, host, port
        self.proc = None

    def start(self):
        exe = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
        if not os.access(exe, os.X_OK):
            raise RuntimeError("dnsmasq is not installed (.ci/deps: dnsmasq-base)")
        claim_port(self.host, self.port)
        self.log = open(os.path.join(self.workdir, "dnsmasq.log"), "w")
        self.proc = subprocess.Popen(
            [exe, "-k", "-C", "/dev/null", "--no-resolv", "--no-hosts", "--address=/#/",
             "-p", str(self.port), f"--listen-address={self.host}", "--bind-interfaces",
             "--pid-file=", "-u", "nobody"], stdout=self.log, stderr=self.log)
        if not wait_port(self.host, self.port, 10, self.proc):
            raise RuntimeError("dnsmasq did not start; see " + self.log.name)

    def stop(self):
        stop_process(self.proc, 5)


class Rspamd(Peer):
    """A private rspamd (Debian's 3.4 with its shipped configuration) on loopback: only the
    normal worker (controller and proxy off; fuzzy storage is off by default), its local
    configuration, run dir, databases and log under workdir/rspamd, DNS pointed at an
    NxResolver. Redis is absent, so Bayes and the Redis-backed modules stay off. Started in
    the foreground (-f) so that its process tree is ours to measure."""
    name = "rspamd"

    def __init__(self, workdir, host="127.0.0.1", port=25291, workers=2, dns_port=25293):
        self.dir = os.path.join(workdir, "rspamd")
        self.host, self.port, self.workers, self.dns_port = host, port, workers, dns_port
        self.proc = None

    def start(self, ready_msg, secs=180):
        if shutil.which("rspamd") is None:
            raise RuntimeError("rspamd is not installed (.ci/deps installs it)")
        claim_port(self.host, self.port, " (a leftover rspamd?)")
        shutil.rmtree(self.dir, ignore_errors=True)
        etc = os.path.join(self.dir, "etc")
        for d in ("etc/local.d", "etc/override.d", "run", "db", "log"):
            os.makedirs(os.path.join(self.dir, d))
        files = {
            "local.d/options.inc": f'dns {{ nameserver = ["{self.host}:{self.dns_port}"]; '
                                   'timeout = 1s; retransmits = 1; }\n',
            "local.d/logging.inc": 'level = "warning";\n',
            "override.d/worker-normal.inc": f'bind_socket = "{self.host}:{self.port}";\n'
                                            f'count = {self.workers};\n',
            "override.d/worker-controller.inc": "enabled = false;\n",
            "override.d/worker-proxy.inc": "enabled = false;\n",
        }
        for name, text in files.items():
            with open(os.path.join(etc, name), "w") as f:
                f.write(text)
        for root, dirs, fs in os.walk(self.dir):
            for x in dirs + fs:
                shutil.chown(os.path.join(root, x), "_rspamd", "_rspamd")
        shutil.chown(self.dir, "_rspamd", "_rspamd")
        self.logf = open(os.path.join(self.dir, "stdout.log"), "w")
        self.proc = subprocess.Popen(
            ["rspamd", "-f", "-c", "/etc/rspamd/rspamd.conf", "-u", "_rspamd", "-g", "_rspamd",
             "--var", f"LOCAL_CONFDIR={etc}", "--var", f"RUNDIR={self.dir}/run",
             "--var", f"DBDIR={self.dir}/db", "--var", f"LOGDIR={self.dir}/log"],
            stdout=self.logf, stderr=self.logf)
        # Ready when a scan answers; it compiles its Hyperscan databases at first start.
        end = time.time() + secs
        while time.time() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"rspamd exited with {self.proc.returncode}; see {self.dir}/log")
            r = subprocess.run(["rspamc", "-h", f"{self.host}:{self.port}", "-t", "5",
                                "symbols", ready_msg], capture_output=True)
            if r.returncode == 0 and b"Action:" in r.stdout:
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"rspamd did not answer in {secs} s")

    stop_timeout = 20
