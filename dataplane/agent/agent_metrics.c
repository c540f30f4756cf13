/*
 * agent_metrics.c - see agent_metrics.h.
 */
#define H2O_USE_LIBUV 0
#include "agent/agent_metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <h2o.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "conf/node_config.h"

#define METRICS_TOKEN_MAX 512
#define METRICS_TEXT_MAX  (64u * 1024 * 1024)

struct metrics_handler {
	h2o_handler_t         super;   /* first: h2o hands us this pointer */
	struct agent_metrics *m;
};

struct agent_metrics {
	h2o_globalconf_t  config;
	h2o_context_t     ctx;
	h2o_accept_ctx_t  accept;
	h2o_socket_t     *sock;
	SSL_CTX          *ssl;
	pthread_t         thread;
	atomic_bool       stop;
	char              token[METRICS_TOKEN_MAX];   /* empty: no token asked for */
	char              ctl_path[108];
	char              listen[128];
};

/* The agent's "counters" answer, without its "ok N" line, into b. 0 or -errno. */
static int metrics_fetch(const struct agent_metrics *m, struct buf *b)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { AGENT_METRICS_FETCH_MS / 1000, (AGENT_METRICS_FETCH_MS % 1000) * 1000 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = 0;
	char chunk[16384], *nl;
	ssize_t n;

	if (fd < 0)
		return -errno;
	memcpy(sa.sun_path, m->ctl_path, sizeof(sa.sun_path));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || write(fd, "counters\n", 9) != 9)
		rc = -errno;
	while (rc == 0 && (n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0)
			rc = -errno;
		else if (buf_unread(b) + (size_t)n > METRICS_TEXT_MAX)
			rc = -EFBIG;
		else if (buf_append(b, chunk, (size_t)n) < 0)
			rc = -ENOMEM;
	}
	close(fd);
	if (rc == 0 && (buf_unread(b) < 3 || memcmp(b->pos, "ok ", 3) != 0 ||
			(nl = memchr(b->pos, '\n', buf_unread(b))) == NULL))
		rc = -EPROTO;   /* "error ..." (the node is stopping), or a cut answer */
	if (rc == 0)
		buf_consume(b, (size_t)((uint8_t *)nl + 1 - b->pos));
	return rc;
}

static int metrics_reply(h2o_req_t *req, int status, const char *reason, const char *type,
			 const char *body, size_t len)
{
	req->res.status = status;
	req->res.reason = reason;
	h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, type,
		       strlen(type));
	h2o_send_inline(req, body, len);
	return 0;
}

static bool metrics_authorized(const struct agent_metrics *m, h2o_req_t *req)
{
	size_t want = strlen(m->token), got;
	ssize_t i;

	if (want == 0)
		return true;
	i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
	if (i < 0)
		return false;
	got = req->headers.entries[i].value.len;
	return got == want + 7 && strncasecmp(req->headers.entries[i].value.base, "Bearer ", 7) == 0
	       && CRYPTO_memcmp(req->headers.entries[i].value.base + 7, m->token, want) == 0;
}

static int metrics_on_req(h2o_handler_t *self, h2o_req_t *req)
{
	struct agent_metrics *m = ((struct metrics_handler *)self)->m;
	struct buf b = { 0 };
	int rc;

	if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/metrics")))
		return metrics_reply(req, 404, "Not Found", "text/plain", H2O_STRLIT("try /metrics\n"));
	if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
		return metrics_reply(req, 405, "Method Not Allowed", "text/plain",
				     H2O_STRLIT("GET only\n"));
	if (!metrics_authorized(m, req)) {
		h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
			       H2O_STRLIT("Bearer"));
		return metrics_reply(req, 401, "Unauthorized", "text/plain",
				     H2O_STRLIT("a bearer token is required\n"));
	}
	rc = metrics_fetch(m, &b);
	if (rc < 0) {
		char why[160];
		int n = snprintf(why, sizeof(why), "the node's agent did not answer: %s\n",
				 strerror(-rc));
		buf_release(&b);
		return metrics_reply(req, 503, "Service Unavailable", "text/plain",
				     h2o_strdup(&req->pool, why, (size_t)n).base, (size_t)n);
	}
	/* h2o_send_inline copies the body into the request's pool before it returns. */
	metrics_reply(req, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
		      (const char *)b.pos, buf_unread(&b));
	buf_release(&b);
	return 0;
}

static void metrics_on_accept(h2o_socket_t *listener, const char *err)
{
	struct agent_metrics *m = listener->data;
	h2o_socket_t *sock;

	if (err != NULL || (sock = h2o_evloop_socket_accept(listener)) == NULL)
		return;
	h2o_accept(&m->accept, sock);
}

static void *metrics_thread(void *arg)
{
	struct agent_metrics *m = arg;

	log_set_thread_tag("metrics");
	while (!atomic_load(&m->stop) && h2o_evloop_run(m->ctx.loop, 500) == 0)
		;
	return NULL;
}

static int metrics_read_token(const char *path, char *out)
{
	FILE *f = fopen(path, "re");
	int rc = 0;

	if (f == NULL)
		return -errno;
	if (fgets(out, METRICS_TOKEN_MAX, f) == NULL)
		out[0] = '\0';
	fclose(f);
	out[strcspn(out, "\r\n")] = '\0';
	if (strlen(out) < 16)
		rc = -EINVAL;   /* an empty or guessable token is no protection */
	return rc;
}

static int metrics_listen(const struct metrics_conf *mc)
{
	socklen_t len = mc->addr.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
						       : sizeof(struct sockaddr_in);
	int fd = socket(mc->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&mc->addr, len) < 0 || listen(fd, 64) < 0) {
		int rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

static void metrics_free(struct agent_metrics *m)
{
	if (m->sock != NULL) {
		h2o_socket_read_stop(m->sock);
		h2o_socket_close(m->sock);
		h2o_evloop_run(m->ctx.loop, 0);   /* let the close complete */
	}
	if (m->ctx.loop != NULL)
		h2o_context_dispose(&m->ctx);
	h2o_config_dispose(&m->config);
	SSL_CTX_free(m->ssl);
	free(m);
}

int agent_metrics_start(const struct node_config *conf, struct agent_metrics **m_r)
{
	const struct metrics_conf *mc = &conf->metrics;
	struct agent_metrics *m;
	struct metrics_handler *h;
	h2o_hostconf_t *host;
	sigset_t block, old;
	int fd, rc;

	*m_r = NULL;
	if (!mc->enabled)
		return 0;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return -ENOMEM;
	snprintf(m->listen, sizeof(m->listen), "%s", mc->listen);
	h2o_config_init(&m->config);
	if ((size_t)snprintf(m->ctl_path, sizeof(m->ctl_path), "%s/control.sock",
			     conf->spool_dir) >= sizeof(m->ctl_path)) {
		log_error(-ENAMETOOLONG, "[metrics]: %s is too long for the control socket; no "
			  "metrics endpoint", conf->spool_dir);
		metrics_free(m);
		return -ENAMETOOLONG;
	}
	if (mc->token_file[0] != '\0' && (rc = metrics_read_token(mc->token_file, m->token)) < 0) {
		log_error(rc, "[metrics] token_file %s: want a token of 16 bytes or more on its "
			  "first line; no metrics endpoint", mc->token_file);
		metrics_free(m);
		return rc;
	}
	if (mc->cert[0] != '\0') {
		m->ssl = SSL_CTX_new(TLS_server_method());
		if (m->ssl == NULL || SSL_CTX_set_min_proto_version(m->ssl, TLS1_2_VERSION) != 1 ||
		    SSL_CTX_use_certificate_chain_file(m->ssl, mc->cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(m->ssl, mc->key, SSL_FILETYPE_PEM) != 1) {
			log_error(-EINVAL, "[metrics] cert %s / key %s: not usable; no metrics "
				  "endpoint", mc->cert, mc->key);
			metrics_free(m);
			return -EINVAL;
		}
	}
	if ((fd = metrics_listen(mc)) < 0) {
		log_error(fd, "[metrics] listen %s: no metrics endpoint", mc->listen);
		metrics_free(m);
		return fd;
	}
	host = h2o_config_register_host(&m->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
	h = (struct metrics_handler *)h2o_create_handler(h2o_config_register_path(host, "/", 0),
							 sizeof(*h));
	h->super.on_req = metrics_on_req;
	h->m = m;
	h2o_context_init(&m->ctx, h2o_evloop_create(), &m->config);
	m->accept = (h2o_accept_ctx_t){ .ctx = &m->ctx, .hosts = m->config.hosts,
					.ssl_ctx = m->ssl };
	m->sock = h2o_evloop_socket_create(m->ctx.loop, fd, H2O_SOCKET_FLAG_DONT_READ);
	m->sock->data = m;
	h2o_socket_read_start(m->sock, metrics_on_accept);
	/* The agent's signals stay the agent's. */
	sigfillset(&block);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	rc = -pthread_create(&m->thread, NULL, metrics_thread, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		log_error(rc, "[metrics] thread: no metrics endpoint");
		metrics_free(m);
		return rc;
	}
	log_info("metrics on %s://%s/metrics%s", m->ssl ? "https" : "http", m->listen,
		 m->token[0] ? " (bearer token)" : "");
	*m_r = m;
	return 0;
}

void agent_metrics_stop(struct agent_metrics **mp)
{
	struct agent_metrics *m = *mp;

	if (m == NULL)
		return;
	atomic_store(&m->stop, true);
	pthread_join(m->thread, NULL);
	metrics_free(m);
	*mp = NULL;
}
