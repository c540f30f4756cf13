/*
 * api_server.c - the HTTPS server (h2o evloop + OpenSSL), the route table, authentication
 * (bearer token or session cookie), the per-token rate limit, body limits and the JSON replies.
 * One thread: everything here runs on the loop (api.h).
 */
#define H2O_USE_LIBUV 0
#include <h2o.h>

#include "api/api_impl.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/cfgval.h"

#define API_PREFIX "/api/v1/"

static const struct api_route api_routes[] = {
	{ "POST",   "login",                 API_R_ANON,  false, api_login },
	{ "POST",   "logout",                API_R_ANY,   false, api_logout },
	{ "GET",    "domains",               API_R_SUPER | API_R_DOMAIN, false, api_domain_list },
	{ "POST",   "domains",               API_R_SUPER, false, api_domain_create },
	{ "GET",    "domains/*",             API_R_SUPER | API_R_DOMAIN, false, api_domain_get },
	{ "PUT",    "domains/*",             API_R_SUPER | API_R_DOMAIN, false, api_domain_replace },
	{ "DELETE", "domains/*",             API_R_SUPER, false, api_domain_delete },
	{ "GET",    "domains/*/policy",      API_R_SUPER | API_R_DOMAIN, false, api_policy_get },
	{ "PUT",    "domains/*/policy/*",    API_R_SUPER | API_R_DOMAIN, false, api_policy_put },
	{ "DELETE", "domains/*/policy/*",    API_R_SUPER | API_R_DOMAIN, false, api_policy_delete },
	{ "GET",    "rulesets",              API_R_SUPER, false, api_ruleset_list },
	{ "GET",    "rulesets/*",            API_R_SUPER, false, api_ruleset_get },
	{ "PUT",    "rulesets/*",            API_R_SUPER, true,  api_ruleset_put },
	{ "DELETE", "rulesets/*",            API_R_SUPER, false, api_ruleset_delete },
	{ "GET",    "users",                 API_R_SUPER, false, api_user_list },
	{ "POST",   "users",                 API_R_SUPER, false, api_user_create },
	{ "GET",    "users/*",               API_R_ANY,   false, api_user_get },
	{ "PUT",    "users/*",               API_R_SUPER, false, api_user_replace },
	{ "DELETE", "users/*",               API_R_SUPER, false, api_user_delete },
	{ "GET",    "tokens",                API_R_ANY,   false, api_token_list },
	{ "POST",   "tokens",                API_R_ANY,   false, api_token_create },
	{ "GET",    "tokens/*",              API_R_ANY,   false, api_token_get },
	{ "DELETE", "tokens/*",              API_R_ANY,   false, api_token_delete },
	{ "GET",    "nodes",                 API_R_SUPER, false, api_node_list },
	{ "POST",   "nodes",                 API_R_SUPER, false, api_node_create },
	{ "GET",    "nodes/*",               API_R_SUPER, false, api_node_get },
	{ "PUT",    "nodes/*",               API_R_SUPER, false, api_node_replace },
	{ "DELETE", "nodes/*",               API_R_SUPER, false, api_node_delete },
	{ "POST",   "nodes/*/report",        API_R_SUPER, false, api_node_report },
	{ "POST",   "nodes/*/join-token",    API_R_SUPER, false, api_node_join_token },
	{ "POST",   "join",                  API_R_ANON,  false, api_join },
	{ "POST",   "cluster/init",          API_R_SUPER, false, api_cluster_init },
	{ "GET",    "roles",                 API_R_SUPER, false, api_roles_get },
	{ "PUT",    "roles",                 API_R_SUPER, false, api_roles_put },
	{ "GET",    "cluster",               API_R_SUPER, false, api_cluster_get },
	{ "GET",    "audit",                 API_R_SUPER, false, api_audit_list },
	{ "GET",    "metrics",               API_R_SUPER, false, api_metrics },
};

/* A token bucket per token id. XXX: a fixed table; two tokens hashing to one slot share a
 * fresh bucket whenever they alternate, which only ever lets more requests through. */
#define API_RATE_SLOTS 1024
struct api_rate {
	int64_t token_id;
	double  tokens;
	double  at;       /* seconds, CLOCK_MONOTONIC */
};

struct api_server {
	h2o_handler_t             super;   /* first: h2o hands us this pointer */
	const struct api_config  *cfg;
	struct api_rate           rate[API_RATE_SLOTS];
};

static volatile sig_atomic_t api_stop;

/* --- replies ---------------------------------------------------------------------------- */

void api_reply(struct api_req *r, int status, json_t *body)
{
	json_decref(r->resp);
	r->status = status;
	r->resp = body;
}

void api_fail(struct api_req *r, int status, const char *field, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	json_t *body;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	body = json_pack("{ss}", "error", msg);
	if (field != NULL && *field != '\0')
		json_object_set_new(body, "field", json_string(field));
	api_reply(r, status, body);
}

void api_fail_with(struct api_req *r, const struct api_error *e)
{
	api_fail(r, e->status ? e->status : 400, e->field, "%s", e->msg);
}

void api_fail_store(struct api_req *r, int rc, const char *what)
{
	if (rc == -ENOENT)
		api_fail(r, 404, NULL, "no such object: %s", what);
	else if (rc == -EEXIST)
		api_fail(r, 409, NULL, "%s exists already", what);
	else if (rc == -EBUSY)
		api_fail(r, 409, NULL, "%s is in use", what);
	else
		api_fail(r, 500, NULL, "the store failed (%s)", strerror(-rc));
}

void api_reply_stored(struct api_req *r, int rc, int status, const char *name,
		      json_t *(*get)(struct store *, const char *))
{
	if (rc < 0)
		api_fail_store(r, rc, name);
	else
		api_reply(r, status, get(r->st, name));
}

bool api_owns_domain(const struct api_req *r, const char *domain)
{
	json_t *v;
	size_t i;

	if (r->role == API_R_SUPER)
		return true;
	if (r->role != API_R_DOMAIN)
		return false;
	json_array_foreach(json_object_get(r->user, "domains"), i, v)
		if (strcmp(json_string_value(v), domain) == 0)
			return true;
	return false;
}

/* --- routing ---------------------------------------------------------------------------- */

/* Decodes %XX; NULL on a bad escape, a NUL or a '/' inside a segment. */
static char *api_segment(const char *p, size_t len)
{
	char *out = malloc(len + 1), *o = out;

	if (out == NULL)
		return NULL;
	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)p[i];

		if (c == '%') {
			unsigned v;

			if (i + 2 >= len || !isxdigit((unsigned char)p[i + 1]) ||
			    !isxdigit((unsigned char)p[i + 2]) || sscanf(p + i + 1, "%2x", &v) != 1)
				goto bad;
			c = (int)v;
			i += 2;
		}
		if (c == 0 || c == '/')
			goto bad;
		*o++ = (char)c;
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

/* Matches path (after /api/v1/) against a route pattern, filling params. 1 match, 0 not. */
static int api_match(const char *pattern, const char *path, size_t len, char **param)
{
	unsigned np = 0;
	size_t i = 0;

	while (*pattern != '\0') {
		const char *seg_end = strchr(pattern, '/');
		size_t plen = seg_end ? (size_t)(seg_end - pattern) : strlen(pattern);
		size_t s = i;

		while (i < len && path[i] != '/')
			i++;
		if (i == s)
			return 0;
		if (plen == 1 && pattern[0] == '*') {
			if (np < API_PARAM_MAX && (param[np] = api_segment(path + s, i - s)) != NULL)
				np++;
			else
				return 0;
		} else if (plen != i - s || memcmp(pattern, path + s, plen) != 0) {
			return 0;
		}
		pattern += plen;
		if (*pattern == '/') {
			pattern++;
			if (i == len || path[i] != '/')
				return 0;
			i++;
		}
	}
	return i == len;
}

static void api_params_free(char **param)
{
	for (unsigned i = 0; i < API_PARAM_MAX; i++) {
		free(param[i]);
		param[i] = NULL;
	}
}

/* --- authentication and rate -------------------------------------------------------------- */

static const char *api_header(h2o_req_t *req, const h2o_token_t *token, size_t *len_r)
{
	ssize_t i = h2o_find_header(&req->headers, token, -1);

	if (i < 0)
		return NULL;
	*len_r = req->headers.entries[i].value.len;
	return req->headers.entries[i].value.base;
}

/* The token from "Authorization: Bearer T" or the cookie sluice_session=T, into out. */
static bool api_credential(h2o_req_t *req, char *out, size_t outlen)
{
	size_t len;
	const char *v = api_header(req, H2O_TOKEN_AUTHORIZATION, &len);

	if (v != NULL && len > 7 && strncasecmp(v, "Bearer ", 7) == 0) {
		snprintf(out, outlen, "%.*s", (int)(len - 7), v + 7);
		return true;
	}
	v = api_header(req, H2O_TOKEN_COOKIE, &len);
	for (size_t i = 0; v != NULL && i < len; ) {
		size_t j = i;

		while (j < len && v[j] != ';')
			j++;
		while (i < j && v[i] == ' ')
			i++;
		if (j - i > 15 && memcmp(v + i, "sluice_session=", 15) == 0) {
			snprintf(out, outlen, "%.*s", (int)(j - i - 15), v + i + 15);
			return true;
		}
		i = j + 1;
	}
	return false;
}

static unsigned api_role_of(json_t *user)
{
	const char *role = store_json_str(user, "role");

	return strcmp(role, "superadmin") == 0 ? API_R_SUPER
	       : strcmp(role, "domainadmin") == 0 ? API_R_DOMAIN : API_R_ENDUSER;
}

/* 0: the request may go on; else the seconds to wait (429). */
static int api_rate_take(struct api_server *srv, int64_t token_id)
{
	struct api_rate *b = &srv->rate[(uint64_t)token_id % API_RATE_SLOTS];
	struct timespec ts;
	double now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	if (b->token_id != token_id) {
		b->token_id = token_id;
		b->tokens = srv->cfg->burst;
		b->at = now;
	}
	b->tokens += (now - b->at) * srv->cfg->rate;
	if (b->tokens > srv->cfg->burst)
		b->tokens = srv->cfg->burst;
	b->at = now;
	if (b->tokens >= 1) {
		b->tokens -= 1;
		return 0;
	}
	return (int)ceil((1 - b->tokens) / srv->cfg->rate);
}

static bool api_authenticate(struct api_server *srv, h2o_req_t *req, struct api_req *r,
			     int *retry_r)
{
	char token[256];
	int rc, wait;

	if (!api_credential(req, token, sizeof(token))) {
		api_fail(r, 401, NULL, "authentication required (a bearer token or a session)");
		return false;
	}
	rc = store_token_auth(r->st, token, &r->token_id, &r->user);
	if (rc < 0) {
		api_fail(r, 401, NULL, "%s", rc == -EKEYEXPIRED ? "token expired"
			 : rc == -EKEYREVOKED ? "token revoked" : "unknown token");
		return false;
	}
	if ((wait = api_rate_take(srv, r->token_id)) > 0) {
		*retry_r = wait;
		api_fail(r, 429, NULL, "too many requests: at most %g per second", srv->cfg->rate);
		return false;
	}
	r->role = api_role_of(r->user);
	r->actor.user = store_json_str(r->user, "name");
	return true;
}

/* --- the handler ------------------------------------------------------------------------ */

static void api_peer(h2o_req_t *req, char *out, size_t outlen)
{
	struct sockaddr_storage ss;
	socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);

	snprintf(out, outlen, "unknown");
	if (len == 0)
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)outlen);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)outlen);
}

static void api_dispatch(struct api_server *srv, h2o_req_t *req, struct api_req *r,
			 int *retry_r)
{
	const char *path = req->path_normalized.base + sizeof(API_PREFIX) - 1;
	size_t len = req->path_normalized.len - (sizeof(API_PREFIX) - 1);
	const struct api_route *route = NULL;
	bool path_known = false;

	if (req->path_normalized.len < sizeof(API_PREFIX) - 1 ||
	    memcmp(req->path_normalized.base, API_PREFIX, sizeof(API_PREFIX) - 1) != 0) {
		api_fail(r, 404, NULL, "not under " API_PREFIX);
		return;
	}
	while (len > 0 && path[len - 1] == '/')
		len--;
	for (size_t i = 0; i < sizeof(api_routes) / sizeof(api_routes[0]); i++) {
		if (!api_match(api_routes[i].path, path, len, r->param)) {
			api_params_free(r->param);
			continue;
		}
		path_known = true;
		if (h2o_memis(req->method.base, req->method.len, api_routes[i].method,
			      strlen(api_routes[i].method))) {
			route = &api_routes[i];
			break;
		}
		api_params_free(r->param);
	}
	if (route == NULL) {
		api_fail(r, path_known ? 405 : 404, NULL, path_known ? "method not allowed"
			 : "no such resource");
		return;
	}
	if (r->body_len > (route->big_body ? srv->cfg->rules_max : srv->cfg->body_max)) {
		api_fail(r, 413, NULL, "request body over %zu bytes",
			 route->big_body ? srv->cfg->rules_max : srv->cfg->body_max);
		return;
	}
	if (!(route->roles & API_R_ANON)) {
		if (!api_authenticate(srv, req, r, retry_r))
			return;
		if (!(route->roles & r->role)) {
			api_fail(r, 403, NULL, "your role may not do this");
			return;
		}
	}
	route->fn(r);
}

static int api_on_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct api_server *srv = (struct api_server *)self;
	struct api_req r = {
		.cfg = srv->cfg, .st = srv->cfg->st,
		.body = req->entity.base ? req->entity.base : "", .body_len = req->entity.len,
		.query = "", .actor = { .user = "-" },
	};
	char *query = NULL, retry[16];
	int retry_after = 0;

	if (req->query_at != SIZE_MAX)
		r.query = query = strndup(req->path.base + req->query_at + 1,
					  req->path.len - req->query_at - 1);
	api_peer(req, r.address, sizeof(r.address));
	r.actor.address = r.address;
	api_dispatch(srv, req, &r, &retry_after);
	if (srv->cfg->on_commit != NULL && r.status >= 200 && r.status < 300 &&
	    !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
		srv->cfg->on_commit(srv->cfg->on_commit_arg);
	api_params_free(r.param);
	free(query);
	req->res.status = r.status ? r.status : 500;
	req->res.reason = "";
	if (r.set_cookie[0] != '\0')
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_SET_COOKIE, NULL,
			       h2o_strdup(&req->pool, r.set_cookie, SIZE_MAX).base,
			       strlen(r.set_cookie));
	if (retry_after > 0) {
		int n = snprintf(retry, sizeof(retry), "%d", retry_after);

		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL,
			       h2o_strdup(&req->pool, retry, n).base, (size_t)n);
	}
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
		       H2O_STRLIT("no-store"));
	api_metrics_count(req->res.status);
	if (r.resp_text != NULL) {
		json_decref(r.resp);
		json_decref(r.user);
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
			       H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
		h2o_send_inline(req, r.resp_text, strlen(r.resp_text));
		free(r.resp_text);
		return 0;
	}
	if (r.resp == NULL) {
		json_decref(r.user);
		h2o_send_inline(req, "", 0);
		return 0;
	}
	char *text = json_dumps(r.resp, JSON_COMPACT);
	json_decref(r.resp);
	json_decref(r.user);
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
		       H2O_STRLIT("application/json"));
	if (text == NULL) {
		h2o_send_inline(req, H2O_STRLIT("{\"error\":\"out of memory\"}"));
		return 0;
	}
	h2o_send_inline(req, text, strlen(text));
	free(text);
	return 0;
}

/* --- the loop --------------------------------------------------------------------------- */

static h2o_accept_ctx_t api_accept_ctx;

static void api_on_accept(h2o_socket_t *listener, const char *err)
{
	h2o_socket_t *sock;

	if (err != NULL || (sock = h2o_evloop_socket_accept(listener)) == NULL)
		return;
	h2o_accept(&api_accept_ctx, sock);
}

static void api_on_signal(int sig)
{
	(void)sig;
	api_stop = 1;
}

static int api_listen_fd(const char *listen_addr, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, on = 1;

	if (cfgval_hostport(listen_addr, true, &ss, &len) < 0) {
		snprintf(err, errlen, "--listen %s: want a numeric address:port", listen_addr);
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) < 0 ||
	    bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0) {
		int e = errno;

		snprintf(err, errlen, "--listen %s: %s", listen_addr, strerror(e));
		if (fd >= 0)
			close(fd);
		return -e;
	}
	return fd;
}

int api_run(const struct api_config *cfg, char *err, size_t errlen)
{
	static h2o_globalconf_t config;
	static h2o_context_t ctx;
	struct api_server *srv;
	h2o_hostconf_t *host;
	h2o_socket_t *sock;
	SSL_CTX *ssl;
	int fd = api_listen_fd(cfg->listen, err, errlen);

	if (fd < 0)
		return fd;
	ssl = SSL_CTX_new(TLS_server_method());
	if (ssl == NULL || SSL_CTX_set_min_proto_version(ssl, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_use_certificate_chain_file(ssl, cfg->cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ssl, cfg->key_file, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "TLS: cannot load %s and %s", cfg->cert_file, cfg->key_file);
		SSL_CTX_free(ssl);
		close(fd);
		return -EINVAL;
	}
	h2o_config_init(&config);
	/* h2o refuses bodies past this with its own 413 (text); below it, ours (JSON) answers. */
	config.max_request_entity_size = (cfg->rules_max > cfg->body_max ? cfg->rules_max
					  : cfg->body_max) * 2;
	host = h2o_config_register_host(&config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	srv = (struct api_server *)h2o_create_handler(h2o_config_register_path(host, "/", 0),
						      sizeof(*srv));
	srv->super.on_req = api_on_req;
	srv->cfg = cfg;
	memset(srv->rate, 0, sizeof(srv->rate));
	for (size_t i = 0; i < API_RATE_SLOTS; i++)
		srv->rate[i].token_id = -1;
	h2o_context_init(&ctx, h2o_evloop_create(), &config);
	api_accept_ctx.ctx = &ctx;
	api_accept_ctx.hosts = config.hosts;
	api_accept_ctx.ssl_ctx = ssl;
	h2o_ssl_register_alpn_protocols(ssl, h2o_http2_alpn_protocols);
	sock = h2o_evloop_socket_create(ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
	h2o_socket_read_start(sock, api_on_accept);
	signal(SIGPIPE, SIG_IGN);
	struct sigaction sa = { .sa_handler = api_on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	while (!api_stop && h2o_evloop_run(ctx.loop, 500) == 0)
		;
	h2o_socket_read_stop(sock);
	h2o_socket_close(sock);
	h2o_context_dispose(&ctx);
	h2o_config_dispose(&config);
	SSL_CTX_free(ssl);
	return 0;
}
