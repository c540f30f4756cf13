#!/usr/bin/python3
"""sluice-control's REST API and sluicectl (issue 16, items 1-3, 6) against a real sluice-control
on loopback with a real SQLite file: CRUD of every resource, each role's permissions (a domain
admin reaching for another domain gets 403), bad JSON, unknown fields, oversized bodies, expired
and revoked tokens, the rate limit, every response validated against control/api/openapi.yaml,
a restart keeping everything, the audit record and outbox rows of a change (which must load in
sluice-node's parser), and sluicectl's commands and exit codes.

Run: tests/control/test_api.py [name-filter ...]
"""
import hashlib
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sqlite3
import sys
import tempfile
import time

import jsonschema
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from sluicetest import BUILD, NODE, ROOT, check, eq, free_port, note_sanitizer_reports, run_suite  # noqa: E402

CONTROL = os.path.join(BUILD, "control", "sluice-control")
CTL = os.path.join(BUILD, "control", "cli", "sluicectl")
SPEC = yaml.safe_load(open(os.path.join(ROOT, "control", "api", "openapi.yaml")))
WORK = tempfile.mkdtemp(prefix="sluice-control-")


def _nullable(schema):
    """OpenAPI 3.0's schema dialect into JSON Schema: nullable, $ref to #/components."""
    if isinstance(schema, dict):
        out = {k: _nullable(v) for k, v in schema.items() if k != "nullable"}
        if "$ref" in out:
            out["$ref"] = out["$ref"].replace("#/components/schemas/", "#/definitions/")
        if schema.get("nullable"):
            return {"anyOf": [out, {"type": "null"}]}
        return out
    if isinstance(schema, list):
        return [_nullable(v) for v in schema]
    return schema


DEFS = _nullable(SPEC["components"]["schemas"])


def spec_path(path):
    """The OpenAPI path template that path (under /api/v1) matches."""
    for tmpl in SPEC["paths"]:
        rx = "^" + re.sub(r"\\{[a-z]+\\}", "[^/]+", re.escape(tmpl)) + "$"
        if re.match(rx, path):
            return tmpl
    raise AssertionError("no OpenAPI path for %s" % path)


def validate(method, path, status, body):
    op = SPEC["paths"][spec_path(path.split("?")[0])][method.lower()]
    resp = op["responses"].get(str(status)) or op["responses"].get("default")
    check(resp is not None, "%s %s: status %d not in the OpenAPI document" % (method, path, status))
    if "$ref" in resp:
        resp = SPEC["components"]["responses"][resp["$ref"].split("/")[-1]]
    content = resp.get("content")
    if content is None:
        check(body is None, "%s %s %d: a body the document does not describe" % (method, path, status))
        return
    schema = _nullable(content["application/json"]["schema"])
    schema = dict(schema, definitions=DEFS)
    jsonschema.validate(body, schema)


class Control:
    def __init__(self, state=None, extra=()):
        self.state = state or tempfile.mkdtemp(prefix="state-", dir=WORK)
        self.port = free_port()
        self.extra = list(extra)
        self.proc = None
        self.token = None

    def start(self, init_admin="root", password="secret-pw"):
        first = not os.path.exists(os.path.join(self.state, "control.db"))
        self.log = open(os.path.join(self.state, "control.log"), "ab")
        self.proc = subprocess.Popen([CONTROL, "--state", self.state, "--listen",
                                      "127.0.0.1:%d" % self.port, "--init-admin", init_admin]
                                     + self.extra, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log)
        self.proc.stdin.write((password + "\n").encode())
        self.proc.stdin.close()
        self.token = None
        if first:   # the first start prints the superadmin and a one-time token
            check(self.proc.stdout.readline().decode().startswith("superadmin"), "first start")
            self.token = self.proc.stdout.readline().decode().split()[1]
        for _ in range(100):
            try:
                self.request("GET", "/api/v1/cluster", token="x")
                return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError("sluice-control did not start")

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None
            self.log.close()
            note_sanitizer_reports(open(os.path.join(self.state, "control.log"), errors="replace").read())

    def request(self, method, path, body=None, token=None, raw=None, headers=None):
        ctx = ssl.create_default_context(cafile=os.path.join(self.state, "control.crt"))
        c = http.client.HTTPSConnection("127.0.0.1", self.port, context=ctx, timeout=30)
        h = dict(headers or {})
        tok = self.token if token is None else token
        if tok:
            h["Authorization"] = "Bearer " + tok
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read()
        c.close()
        return r, (json.loads(text) if text else None)

    def api(self, method, path, body=None, want=200, token=None, raw=None, headers=None):
        r, got = self.request(method, "/api/v1/" + path, body, token, raw, headers)
        eq(r.status, want, "%s %s (%s)" % (method, path, got))
        validate(method, "/" + path, r.status, got)
        return got

    def ctl(self, *args, token=None, stdin=None):
        env = dict(os.environ, SLUICE_TOKEN=token or self.token)
        p = subprocess.run([CTL, "--control", "https://127.0.0.1:%d" % self.port, "--ca",
                            os.path.join(self.state, "control.crt")] + list(args),
                           capture_output=True, text=True, env=env, input=stdin, timeout=30)
        return p.returncode, p.stdout, p.stderr


def with_control(fn, extra=()):
    c = Control(extra=extra).start()
    try:
        fn(c)
    finally:
        c.stop()


DOMAIN = {"name": "example.com", "route": "10.0.0.5:25 10, 10.0.0.6:25 20", "tls": "required",
          "spool_quota": "500M", "policy": {"reject_score": "12", "ip_block": "192.0.2.0/24",
                                            "fallback_reject_score": "8"}}


def test_domains_crud():
    def run(c):
        got = c.api("POST", "domains", DOMAIN, want=201)
        eq(got["policy"]["reject_score"], "12", "policy kept")
        c.api("POST", "domains", DOMAIN, want=409)
        eq([d["name"] for d in c.api("GET", "domains")["items"]], ["example.com"], "list")
        eq(c.api("GET", "domains/example.com")["route"], DOMAIN["route"], "get")
        c.api("PUT", "domains/example.com", dict(DOMAIN, route="mx"))
        eq(c.api("GET", "domains/example.com")["route"], "mx", "replaced")
        c.api("PUT", "domains/example.com/policy/tag_score", {"value": "4"})
        eq(c.api("GET", "domains/example.com/policy")["tag_score"], "4", "policy set")
        c.api("DELETE", "domains/example.com/policy/tag_score", want=204)
        c.api("DELETE", "domains/example.com/policy/tag_score", want=404)
        c.api("GET", "domains/nope.example", want=404)
        c.api("DELETE", "domains/example.com", want=204)
        c.api("DELETE", "domains/example.com", want=404)
    with_control(run)


def test_bad_requests():
    def run(c):
        e = c.api("POST", "domains", raw="{not json", want=400)
        check("bad JSON" in e["error"], e)
        e = c.api("POST", "domains", dict(DOMAIN, colour="red"), want=400)
        eq(e["field"], "colour", "unknown field named")
        e = c.api("POST", "domains", {"name": "a.example"}, want=400)
        eq(e["field"], "route", "missing field named")
        e = c.api("POST", "domains", dict(DOMAIN, tls_verify="yes"), want=400)
        eq(e["field"], "tls_verify", "ill-typed field named")
        e = c.api("POST", "domains", dict(DOMAIN, route="10.0.0.5"), want=400)
        eq(e["field"], "route", "the data plane's parser refuses the route")
        e = c.api("POST", "domains", dict(DOMAIN, policy={"frobnicate": "1"}), want=400)
        eq(e["field"], "policy", "unknown policy key")
        e = c.api("POST", "domains", dict(DOMAIN, route="10.0.0.5:25\n[node]"), want=400)
        eq(e["field"], "route", "a line break cannot inject a section")
        c.api("PUT", "domains/example.com/policy/tag_score", {"value": "50"}, want=404)
        c.api("POST", "domains", DOMAIN, want=201)
        e = c.api("PUT", "domains/example.com/policy/tag_score", {"value": "50"}, want=400)
        check("out of order" in e["error"], e)
        big = dict(DOMAIN, name="big.example", route="10.0.0.5:25", policy={"sender_block": "a@b." + "x" * 70000})
        c.api("POST", "domains", big, want=413)
        r, _ = c.request("GET", "/api/v1/nothing")
        eq(r.status, 404, "unknown resource")
    with_control(run)


def test_tokens_expired_revoked_absent():
    def run(c):
        c.api("GET", "cluster", token="", want=401)
        c.api("GET", "cluster", token="not-a-token", want=401)
        t = c.api("POST", "tokens", {"ttl": 3, "description": "short"}, want=201)
        c.api("GET", "cluster", token=t["token"])
        time.sleep(3.2)
        e = c.api("GET", "cluster", token=t["token"], want=401)
        check("expired" in e["error"], e)
        t = c.api("POST", "tokens", {"description": "to revoke"}, want=201)
        c.api("GET", "tokens/%d" % t["id"])
        c.api("DELETE", "tokens/%d" % t["id"], want=204)
        e = c.api("GET", "cluster", token=t["token"], want=401)
        check("revoked" in e["error"], e)
        check(any(x["id"] == t["id"] and x["revoked"] for x in c.api("GET", "tokens")["items"]),
              "listed as revoked")
    with_control(run)


def test_roles_permissions():
    def run(c):
        c.api("POST", "domains", DOMAIN, want=201)
        c.api("POST", "domains", dict(DOMAIN, name="other.example"), want=201)
        c.api("POST", "users", {"name": "dana", "role": "domainadmin", "domains": ["example.com"],
                                "password": "pw-dana"}, want=201)
        c.api("POST", "users", {"name": "eve", "role": "enduser", "addresses": ["eve@example.com"]},
              want=201)
        e = c.api("POST", "users", {"name": "x", "role": "enduser", "domains": ["a.example"]}, want=400)
        eq(e["field"], "domains", "an end user owns no domains")
        dana = c.api("POST", "tokens", {"user": "dana"}, want=201)["token"]
        eve = c.api("POST", "tokens", {"user": "eve"}, want=201)["token"]
        eq([d["name"] for d in c.api("GET", "domains", token=dana)["items"]], ["example.com"],
           "a domain admin lists only their domains")
        c.api("GET", "domains/example.com", token=dana)
        c.api("PUT", "domains/example.com/policy/tag_score", {"value": "3"}, token=dana)
        c.api("GET", "domains/other.example", token=dana, want=403)
        c.api("PUT", "domains/other.example", DOMAIN, token=dana, want=403)
        c.api("PUT", "domains/other.example/policy/tag_score", {"value": "3"}, token=dana, want=403)
        c.api("POST", "domains", dict(DOMAIN, name="new.example"), token=dana, want=403)
        c.api("DELETE", "domains/example.com", token=dana, want=403)
        c.api("GET", "users", token=dana, want=403)
        c.api("GET", "nodes", token=dana, want=403)
        c.api("GET", "domains", token=eve, want=403)
        c.api("GET", "domains/example.com", token=eve, want=403)
        eq(c.api("GET", "users/eve", token=eve)["addresses"], ["eve@example.com"], "own user")
        c.api("GET", "users/dana", token=eve, want=403)
        c.api("POST", "tokens", {"user": "dana"}, token=eve, want=403)
        c.api("GET", "audit", token=eve, want=403)
        eq(len(c.api("GET", "tokens", token=eve)["items"]), 1, "an end user sees their own tokens")
        c.api("PUT", "users/dana", {"role": "domainadmin", "domains": ["other.example"]})
        c.api("GET", "domains/example.com", token=dana, want=403)
        c.api("GET", "domains/other.example", token=dana)
        c.api("DELETE", "users/eve", want=204)
        c.api("GET", "users/eve", want=404)
        c.api("GET", "cluster", token=eve, want=401)
    with_control(run)


def test_login_session():
    def run(c):
        r, got = c.request("POST", "/api/v1/login", {"name": "root", "password": "wrong"}, token="")
        eq(r.status, 401, "wrong password")
        r, got = c.request("POST", "/api/v1/login", {"name": "root", "password": "secret-pw"}, token="")
        eq(r.status, 200, "login")
        validate("POST", "/login", 200, got)
        cookie = r.getheader("Set-Cookie")
        for attr in ("HttpOnly", "Secure", "SameSite=Strict"):
            check(attr in cookie, "cookie has " + attr)
        session = cookie.split(";")[0]
        h = {"Cookie": session}
        c.api("GET", "cluster", token="", headers=h)
        c.api("POST", "logout", token="", headers=h, want=204)
        c.api("GET", "cluster", token="", headers=h, want=401)
    with_control(run)


def test_nodes_roles_cluster_warnings():
    def run(c):
        w = c.api("GET", "cluster")["warnings"]
        node = {"name": "mx1", "site": "paris", "listen": [
            {"label": "mx", "address": "127.0.0.1:2525", "role": "primary", "starttls": True},
            {"label": "mx2", "address": "127.0.0.2:2525", "role": "fallback"}]}
        c.api("POST", "nodes", node, want=201)
        c.api("POST", "nodes", node, want=409)
        e = c.api("POST", "nodes", dict(node, name="mx9", listen=[{"label": "a", "address": "nowhere",
                                                                      "role": "primary"}]), want=400)
        eq(e["field"], "listen.address", "bad listen address named")
        w = c.api("GET", "cluster")["warnings"]
        check(any("no redundancy" in x for x in w), w)
        check(any("never been seen" in x for x in w), w)
        c.api("POST", "nodes", dict(node, name="mx2", listen=[]), want=201)
        c.api("POST", "nodes", dict(node, name="mx3", site="berlin", listen=[]), want=201)
        w = c.api("GET", "cluster")["warnings"]
        check(not any("no redundancy" in x for x in w), w)
        check(any("more than half" in x and "paris" in x for x in w), w)
        c.api("POST", "nodes/mx1/report", {"version": "0.1.0", "applied_version": 1})
        n = c.api("GET", "nodes/mx1")
        eq(n["health"], "ok", "just seen")
        eq(n["lag"], c.api("GET", "cluster")["version"] - 1, "lag")
        time.sleep(2.2)
        eq(c.api("GET", "nodes/mx1")["health"], "stale", "not seen for a while")
        check(any("mx1 not seen for" in x for x in c.api("GET", "cluster")["warnings"]), "stale warned")
        c.api("PUT", "roles", {"log": "mx1", "quarantine": "mx2"})
        e = c.api("PUT", "roles", {"archive": "ghost"}, want=400)
        eq(e["field"], "archive", "unknown node named")
        eq(c.api("GET", "roles"), {"log": "mx1", "quarantine": "mx2", "archive": None}, "roles")
        c.api("DELETE", "nodes/mx1", want=409)
        c.api("PUT", "roles", {"log": None})
        c.api("DELETE", "nodes/mx3", want=204)
        c.api("PUT", "nodes/mx2", {"site": "london", "listen": []})
        eq(c.api("GET", "nodes/mx2")["site"], "london", "replaced")
        eq(len(c.api("GET", "nodes")["items"]), 2, "list")
    with_control(run, extra=["--stale-after", "1"])


def test_rulesets_audit_outbox():
    def run(c):
        rs = c.api("PUT", "rulesets/local.cf", {"text": "body R /x/\nscore R 1\n"}, want=201)
        eq(rs["sha256"], hashlib.sha256(b"body R /x/\nscore R 1\n").hexdigest(), "sha256")
        eq(rs["uploaded_by"], "root", "who")
        c.api("PUT", "rulesets/local.cf", {"text": "x"}, want=200)
        eq(c.api("GET", "rulesets/local.cf")["text"], "x", "text kept")
        eq(len(c.api("GET", "rulesets")["items"]), 1, "list")
        c.api("DELETE", "rulesets/local.cf", want=204)
        c.api("GET", "rulesets/local.cf", want=404)
        v0 = c.api("GET", "cluster")["version"]
        c.api("POST", "domains", DOMAIN, want=201)
        eq(c.api("GET", "cluster")["version"], v0 + 1, "a change bumps the version")
        page = c.api("GET", "audit?limit=1000")
        row = [r for r in page["items"] if r["action"] == "domain.create"][-1]
        eq(row["actor"], "root", "who")
        eq(row["address"], "127.0.0.1", "from where")
        eq(row["object"], "domain.example.com", "object")
        eq(row["before"], None, "before")
        eq(row["after"]["route"], DOMAIN["route"], "after")
        eq(row["version"], v0 + 1, "version")
        p1 = c.api("GET", "audit?limit=2")
        check(p1["next"] is not None, "paged")
        p2 = c.api("GET", "audit?limit=2&after=%d" % p1["next"])
        check(p2["items"][0]["id"] > p1["items"][-1]["id"], "next page follows")
        c.api("GET", "audit?limit=0", want=400)
        db = sqlite3.connect(os.path.join(c.state, "control.db"))
        rows = db.execute("SELECT version, key, value FROM outbox ORDER BY seq").fetchall()
        db.close()
        mine = [r for r in rows if r[0] == v0 + 1]
        eq([r[1] for r in mine], ["domain.example.com", "v"], "the change's keys, then v")
        eq(mine[1][2], str(v0 + 1), "v is the version")
        frag = mine[0][2]
        check(frag.startswith("# sluice cfg domain.example.com version %d\n" % (v0 + 1)), frag)
        # The data plane's own parser takes the fragment after a node's base file.
        spool = os.path.join(WORK, "spool-check")
        os.makedirs(spool, exist_ok=True)
        conf = os.path.join(WORK, "node.ini")
        with open(conf, "w") as f:
            f.write("[node]\nhostname = mx.test\nspool_dir = %s\nrun_as_root = yes\nshards = 1\n"
                    "[listen a]\naddress = 127.0.0.2:%d\n" % (spool, free_port()) + frag)
        p = subprocess.run([NODE, "--config", conf, "--check-config"], capture_output=True, text=True)
        eq(p.returncode, 0, "sluice-node --check-config: %s %s" % (p.stdout, p.stderr))
    with_control(run)


def test_rate_limit():
    def run(c):
        statuses = [c.request("GET", "/api/v1/cluster")[0] for _ in range(8)]
        codes = [r.status for r in statuses]
        check(429 in codes, codes)
        limited = [r for r in statuses if r.status == 429][0]
        check(int(limited.getheader("Retry-After")) >= 1, "Retry-After")
        time.sleep(1.2)
        c.api("GET", "cluster")
    with_control(run, extra=["--rate", "1", "--burst", "3"])


def test_restart_keeps_everything():
    c = Control().start()
    try:
        c.api("POST", "domains", DOMAIN, want=201)
        c.api("POST", "users", {"name": "dana", "role": "domainadmin", "domains": ["example.com"]}, want=201)
        c.api("POST", "nodes", {"name": "mx1", "site": "a"}, want=201)
        v = c.api("GET", "cluster")["version"]
        c.stop()
        token = c.token
        c.start()
        eq(c.token, None, "no second superadmin on restart")
        c.token = token
        eq(c.api("GET", "domains/example.com")["policy"], DOMAIN["policy"], "domain kept")
        eq(c.api("GET", "users/dana")["domains"], ["example.com"], "user kept")
        eq(c.api("GET", "cluster")["version"], v, "version kept")
        eq(c.api("GET", "nodes")["items"][0]["name"], "mx1", "node kept")
    finally:
        c.stop()


def test_newer_schema_refused():
    c = Control().start()
    c.stop()
    db = sqlite3.connect(os.path.join(c.state, "control.db"))
    db.execute("INSERT INTO schema_version (version) VALUES (999)")
    db.commit()
    db.close()
    p = subprocess.run([CONTROL, "--state", c.state, "--listen", "127.0.0.1:%d" % free_port()],
                       capture_output=True, text=True, timeout=20)
    eq(p.returncode, 1, "refused")
    check("newer than this sluice-control knows" in p.stderr, p.stderr)


def test_sluicectl():
    def run(c):
        rc, out, err = c.ctl("domain", "add", "example.com", "--route", "10.0.0.5:25")
        eq(rc, 0, "domain add: " + err)
        rc, out, err = c.ctl("domain", "add", "example.com", "--route", "10.0.0.5:25")
        eq(rc, 1, "conflict is an API error")
        check("exists" in err, err)
        rc, out, _ = c.ctl("domain", "list")
        check(rc == 0 and "example.com" in out and "DOMAIN" in out, out)
        rc, out, _ = c.ctl("--json", "domain", "show", "example.com")
        eq(json.loads(out)["route"], "10.0.0.5:25", "--json")
        rc, out, err = c.ctl("policy", "set", "example.com", "reject_score", "9")
        eq(rc, 0, err)
        rc, out, err = c.ctl("policy", "set", "example.com", "nonsense", "9")
        eq(rc, 1, "bad key")
        check("nonsense" in err, err)
        rules = os.path.join(WORK, "70_local.cf")
        with open(rules, "w") as f:
            f.write("body LOCAL /x/\n")
        rc, out, err = c.ctl("rules", "upload", rules)
        check(rc == 0 and "70_local.cf" in out, out + err)
        c.api("POST", "nodes", {"name": "mx1", "site": "a"}, want=201)
        rc, out, _ = c.ctl("node", "list")
        check(rc == 0 and "mx1" in out, out)
        rc, out, err = c.ctl("user", "add", "dana", "--role", "domainadmin", "--domain",
                             "example.com", "--password-stdin", stdin="pw\n")
        eq(rc, 0, err)
        rc, out, err = c.ctl("token", "create", "--user", "dana", "--ttl", "600")
        eq(rc, 0, err)
        dana = out.strip()
        rc, out, _ = c.ctl("domain", "list", token=dana)
        check(rc == 0 and "example.com" in out, out)
        rc, out, _ = c.ctl("cluster", "status")
        check(rc == 0 and "no redundancy" in out, out)
        rc, out, _ = c.ctl("--json", "cluster", "status")
        check("warnings" in json.loads(out), out)
        rc, out, err = c.ctl("domain", "delete", "example.com")
        eq(rc, 0, err)
        eq(c.ctl("frobnicate")[0], 2, "usage")
        eq(c.ctl("domain", "add", "x.example")[0], 2, "usage: no --route")
        eq(c.ctl("domain", "list", token="bad")[0], 1, "401 is an API error")
        p = subprocess.run([CTL, "--control", "https://127.0.0.1:%d" % free_port(), "domain", "list"],
                           capture_output=True, text=True, env=dict(os.environ, SLUICE_TOKEN="x"))
        eq(p.returncode, 3, "unreachable")
        p = subprocess.run([CTL, "--control", "https://127.0.0.1:%d" % c.port, "domain", "list"],
                           capture_output=True, text=True, env=dict(os.environ, SLUICE_TOKEN="x"))
        eq(p.returncode, 3, "an unverifiable certificate without --ca")
    with_control(run)


if __name__ == "__main__":
    try:
        rc = run_suite("control", globals(), sys.argv[1:])
    finally:
        shutil.rmtree(WORK, ignore_errors=True)
    sys.exit(rc)
