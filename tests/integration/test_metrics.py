#!/usr/bin/python3
"""The node's and the control plane's Prometheus endpoints (issue 18, item 1): [metrics] serves
the node's live counters at /metrics; a real Prometheus server scrapes it and its queries equal
what happened (messages sent over SMTP, by MX role; time to 250 observed per message); promtool's
linter accepts the exposition; off loopback the section needs TLS and a bearer token (refused at
load otherwise); with them, a scrape without the token is 401 and Prometheus with it gets the
series; a stopped node's port is closed. sluice-control's /api/v1/metrics (superadmin token,
HTTPS) gives the cluster version and each node's health and lag, as Prometheus reads them.

Real components: sluice-node, sluice-control, Python's smtplib, Debian's prometheus and promtool, curl.
Everything on loopback; every wait is bounded.

Run: tests/integration/test_metrics.py [name-filter ...]
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import (NODE, Node, check, eq, free_port, make_cert, run_suite, send,  # noqa: E402
                        wait_for)

SUITE = "metrics"
WORK = tempfile.mkdtemp(prefix="sluice-metrics-")
MSG = "From: a@client.test\r\nTo: b@example.test\r\nSubject: hello\r\n\r\nhello\r\n"


def get(url, token=None, cafile=None):
    import ssl
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    if ctx:
        ctx.check_hostname = False
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


class Prometheus:
    """A Prometheus server of its own, scraping one target every second."""

    def __init__(self, target, scheme="http", token_file=None, ca=None, path="/metrics"):
        self.dir = tempfile.mkdtemp(prefix="prom-", dir=WORK)
        self.port = free_port()
        job = {"job_name": "sluice", "scrape_interval": "1s", "scrape_timeout": "900ms",
               "scheme": scheme, "metrics_path": path,
               "static_configs": [{"targets": [target]}]}
        if token_file:
            job["authorization"] = {"type": "Bearer", "credentials_file": token_file}
        if ca:
            job["tls_config"] = {"ca_file": ca, "insecure_skip_verify": True}
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            json.dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [job]}, f)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file", os.path.join(self.dir, "prometheus.yml"),
             "--storage.tsdb.path", os.path.join(self.dir, "data"),
             "--web.listen-address", "127.0.0.1:%d" % self.port], stdout=self.log,
            stderr=subprocess.STDOUT)
        check(wait_for(lambda: self.ready(), timeout=30), "prometheus did not start: %s"
              % open(os.path.join(self.dir, "prometheus.log")).read()[-2000:])

    def ready(self):
        try:
            return get("http://127.0.0.1:%d/-/ready" % self.port)[0] == 200
        except OSError:
            return False

    def query(self, q):
        """The instant vector's values: {frozenset(labels): value}."""
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (self.port, urllib.parse.quote(q))
        status, _, body = get(url)
        eq(status, 200, "query %s: %s" % (q, body))
        return {frozenset(r["metric"].items()): float(r["value"][1])
                for r in json.loads(body)["data"]["result"]}

    def value(self, q):
        v = self.query(q)
        return next(iter(v.values())) if len(v) == 1 else None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


def metrics_node(metrics, tls=False):
    return Node(conf={"metrics": metrics}, tls=tls, workdir=tempfile.mkdtemp(dir=WORK))


def test_prometheus_scrape_equals_what_was_sent():
    port = free_port()
    n = metrics_node({"listen": "127.0.0.1:%d" % port})
    n.start()
    prom = None
    try:
        status, ctype, text = get("http://127.0.0.1:%d/metrics" % port)
        eq(status, 200, "scrape")
        check(ctype.startswith("text/plain; version=0.0.4"), "exposition format: %s" % ctype)
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                              text=True, timeout=30)
        eq(lint.returncode, 0, "promtool check metrics: %s%s" % (lint.stdout, lint.stderr))
        eq(lint.stdout + lint.stderr, "", "no lint remarks")
        prom = Prometheus("127.0.0.1:%d" % port)
        check(wait_for(lambda: prom.value('up{job="sluice"}') == 1.0, timeout=20),
              "prometheus scrapes the node: %s" % prom.query("up"))
        for _ in range(3):
            send(n.primary, "a@client.test", ["b@example.test"], MSG)
        for _ in range(2):
            send(n.fallback, "a@client.test", ["b@example.test"], MSG)

        def by_role():
            got = prom.query("sum by (role) (sluice_messages_total)")
            return {dict(k)["role"]: v for k, v in got.items()}
        check(wait_for(lambda: by_role() == {"primary": 3.0, "fallback": 2.0}, timeout=20),
              "messages by MX role as sent: %s" % by_role())
        conns = prom.query("sum by (role) (sluice_connections_total)")
        eq({dict(k)["role"]: v for k, v in conns.items()}, {"primary": 3.0, "fallback": 2.0},
           "connections by role")
        check(wait_for(lambda: prom.value("sum(sluice_spool_messages_committed_total)") == 5.0,
                       timeout=20), "5 messages made durable")
        t250 = prom.query("sum by (role) (sluice_time_to_250_seconds_count)")
        eq({dict(k)["role"]: v for k, v in t250.items()}, {"primary": 3.0, "fallback": 2.0},
           "a time-to-250 observation per message, by role")
        check(prom.value("sum(sluice_time_to_250_seconds_sum)") > 0, "time to 250 adds up")
        check(prom.value('sum(sluice_time_to_250_seconds_bucket{le="+Inf"})') == 5.0,
              "+Inf bucket holds every observation")
        # The route is a closed port: every attempt fails fast, and each is observed.
        check(wait_for(lambda: (prom.value("sum(sluice_delivery_attempt_seconds_count)") or 0)
                       >= 1, timeout=20), "delivery attempts observed")
        shards = prom.query("count by (shard) (sluice_connections_total)")
        eq(len(shards), 2, "a series per shard: %s" % shards)
    finally:
        if prom:
            prom.stop()
        n.stop()
    try:
        get("http://127.0.0.1:%d/metrics" % port)
        check(False, "a stopped node's metrics port still answers")
    except OSError:
        pass


def test_wrong_path_and_method():
    port = free_port()
    n = metrics_node({"listen": "127.0.0.1:%d" % port})
    n.start()
    try:
        eq(get("http://127.0.0.1:%d/" % port)[0], 404, "only /metrics")
        r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
                            "http://127.0.0.1:%d/metrics" % port], capture_output=True,
                           text=True, timeout=30)
        eq(r.stdout, "405", "GET only")
    finally:
        n.stop()


def test_off_loopback_needs_tls_and_a_token():
    n = metrics_node({"listen": "0.0.0.0:%d" % free_port()})
    r = subprocess.run([NODE, "--config", n.conf_path, "--check-config"], capture_output=True,
                       text=True, timeout=30)
    eq(r.returncode, 2, "refused: %s" % r.stderr)
    check("[metrics]" in r.stderr and "token_file" in r.stderr and "not a loopback" in r.stderr,
          "names the section and what is missing: %s" % r.stderr)
    n = metrics_node({"listen": "127.0.0.1:x"})
    r = subprocess.run([NODE, "--config", n.conf_path, "--check-config"], capture_output=True,
                       text=True, timeout=30)
    eq(r.returncode, 2, "a bad address is refused")
    check("[metrics] listen" in r.stderr and ":" in r.stderr, r.stderr)


def test_tls_and_bearer_token():
    d = tempfile.mkdtemp(dir=WORK)
    cert, key = make_cert(d)
    token_file = os.path.join(d, "token")
    token = "t0ken-" + os.urandom(12).hex()
    with open(token_file, "w") as f:
        f.write(token + "\n")
    port = free_port()
    n = metrics_node({"listen": "127.0.0.1:%d" % port, "cert": cert, "key": key,
                      "token_file": token_file})
    n.start()
    prom = None
    try:
        url = "https://127.0.0.1:%d/metrics" % port
        eq(get(url, cafile=cert)[0], 401, "no token")
        eq(get(url, token="wrong-" + token[6:], cafile=cert)[0], 401, "a wrong token")
        status, _, text = get(url, token=token, cafile=cert)
        eq(status, 200, "the token")
        check("sluice_connections_total" in text, "the counters")
        prom = Prometheus("127.0.0.1:%d" % port, scheme="https", token_file=token_file, ca=cert)
        check(wait_for(lambda: prom.value('up{job="sluice"}') == 1.0, timeout=20),
              "prometheus scrapes over TLS with the token: %s" % prom.query("up"))
    finally:
        if prom:
            prom.stop()
        n.stop()


def test_control_plane_metrics():
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "control"))
    import test_api
    c = test_api.Control(state=tempfile.mkdtemp(dir=WORK)).start()
    prom = None
    try:
        c.api("POST", "nodes", {"name": "n1", "site": "s1"}, want=201)
        c.api("POST", "nodes", {"name": "n2", "site": "s2"}, want=201)
        c.api("POST", "nodes/n1/report", {"version": "test", "applied_version": 1})
        cert = os.path.join(c.state, "control.crt")
        url = "https://127.0.0.1:%d/api/v1/metrics" % c.port
        eq(get(url, cafile=cert)[0], 401, "a token is required")
        status, ctype, text = get(url, token=c.token, cafile=cert)
        eq(status, 200, "scrape")
        check(ctype.startswith("text/plain; version=0.0.4"), ctype)
        lint = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                              text=True, timeout=30)
        eq(lint.returncode, 0, "promtool: %s%s" % (lint.stdout, lint.stderr))
        token_file = os.path.join(c.state, "prom.token")
        with open(token_file, "w") as f:
            f.write(c.token)
        prom = Prometheus("127.0.0.1:%d" % c.port, scheme="https", token_file=token_file,
                          ca=cert, path="/api/v1/metrics")
        check(wait_for(lambda: prom.value('up{job="sluice"}') == 1.0, timeout=20),
              "prometheus scrapes the control: %s" % prom.query("up"))
        version = c.api("GET", "cluster")["version"]
        check(wait_for(lambda: prom.value("sluice_control_cluster_version") == version,
                       timeout=20), "the cluster version")
        nodes = prom.query("sluice_control_nodes")
        eq({dict(k)["health"]: v for k, v in nodes.items()},
           {"ok": 1.0, "stale": 0.0, "never seen": 1.0}, "nodes by health")
        eq(prom.value('sluice_control_node_lag{node="n1"}'), float(version - 1), "n1's lag")
        eq(prom.query('sluice_control_node_lag{node="n2"}'), {}, "n2 never reported: no lag")
    finally:
        if prom:
            prom.stop()
        c.stop()


def main():
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        print("SKIP %s: prometheus not installed (.ci/deps installs it)" % SUITE)
        print("%s: 0 passed, 0 failed" % SUITE)
        return 0
    try:
        return run_suite(SUITE, globals(), sys.argv[1:])
    finally:
        if not os.environ.get("SLUICE_KEEP_TMP"):
            shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
