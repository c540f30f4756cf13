/*
 * load_util.c - sluice-load's building blocks: the ring set-up with feature probing, latency
 * samples, the record file, TLS over memory BIOs, address parsing, and message preparation.
 * Everything here is either start-up code or per-worker (no shared mutable state).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_corpus.h"
#include "load.h"

const char *const load_stage_names[LOAD_ST_COUNT] = {
	"connect", "banner", "ehlo", "starttls", "tls", "mail", "rcpt", "data", "dot", "rset",
	"quit",
};

/* ---- ring ---- */

int load_ring_init(struct io_uring *ring, unsigned entries, unsigned *flags_r)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	struct io_uring_params p;
	int err = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		memset(&p, 0, sizeof(p));
		p.flags = tries[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
		p.cq_entries = entries * 4;
		err = io_uring_queue_init_params(entries, ring, &p);
		if (err == -EINVAL) {
			/* Older kernels: no SUBMIT_ALL either. */
			memset(&p, 0, sizeof(p));
			p.flags = tries[i] | IORING_SETUP_CQSIZE;
			p.cq_entries = entries * 4;
			err = io_uring_queue_init_params(entries, ring, &p);
		}
		if (err == 0) {
			*flags_r = p.flags;
			return 0;
		}
	}
	return err;
}

struct io_uring_sqe *load_ring_sqe(struct io_uring *ring)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(ring);

	if (sqe == NULL) {
		io_uring_submit(ring);
		sqe = io_uring_get_sqe(ring);
		if (sqe == NULL) {
			fprintf(stderr, "sluice-load: io_uring SQ stuck full\n");
			abort();
		}
	}
	return sqe;
}

const char *load_ring_flags_str(unsigned flags)
{
	if (flags & IORING_SETUP_DEFER_TASKRUN)
		return "single_issuer+defer_taskrun+coop_taskrun";
	if (flags & IORING_SETUP_COOP_TASKRUN)
		return "coop_taskrun";
	return "plain";
}

/* ---- samples ---- */

void load_samples_add(struct load_samples *s, uint64_t ns)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 4096;
		uint32_t *v = realloc(s->v, cap * sizeof(*v));
		if (v == NULL)
			return;   /* a lost sample only thins the percentiles */
		s->v = v;
		s->cap = cap;
	}
	uint64_t us = ns / 1000;
	s->v[s->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

void load_samples_merge(struct load_samples *dst, const struct load_samples *src)
{
	if (src->n == 0)
		return;
	uint32_t *v = realloc(dst->v, (dst->n + src->n) * sizeof(*v));
	if (v == NULL)
		return;
	memcpy(v + dst->n, src->v, src->n * sizeof(*v));
	dst->v = v;
	dst->n += src->n;
	dst->cap = dst->n;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

double load_samples_pct(struct load_samples *s, double q)
{
	if (s->n == 0)
		return 0;
	if (s->cap != (size_t)-1) {
		qsort(s->v, s->n, sizeof(*s->v), cmp_u32);
		s->cap = (size_t)-1;   /* sorted; no more adds */
	}
	size_t i = (size_t)(q * (double)(s->n - 1) + 0.5);
	return s->v[i < s->n ? i : s->n - 1] / 1000.0;
}

void load_samples_free(struct load_samples *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/* ---- record file ---- */

void load_record_line(struct load_record *r, const char *a, size_t alen, const char *b,
		      const char *c)
{
	size_t blen = strlen(b), clen = c ? strlen(c) : 0;
	size_t need = alen + blen + clen + 3;

	if (r->fd < 0)
		return;
	if (r->len + need > r->cap) {
		load_record_flush(r);
		if (need > r->cap) {
			char *nb = realloc(r->buf, need + 65536);
			if (nb == NULL)
				return;
			r->buf = nb;
			r->cap = need + 65536;
		}
	}
	char *p = r->buf + r->len;
	memcpy(p, a, alen);
	p += alen;
	*p++ = '\t';
	memcpy(p, b, blen);
	p += blen;
	if (c) {
		*p++ = '\t';
		memcpy(p, c, clen);
		p += clen;
	}
	*p++ = '\n';
	r->len = (size_t)(p - r->buf);
}

void load_record_flush(struct load_record *r)
{
	size_t off = 0;

	while (r->fd >= 0 && off < r->len) {
		ssize_t n = write(r->fd, r->buf + off, r->len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			perror("sluice-load: record file");
			break;
		}
		off += (size_t)n;
	}
	r->len = 0;
}

/* ---- TLS over memory BIOs ---- */

int load_tls_start(struct load_tls *t, SSL_CTX *ctx, bool server)
{
	t->ssl = SSL_new(ctx);
	t->rbio = BIO_new(BIO_s_mem());
	t->wbio = BIO_new(BIO_s_mem());
	if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
		load_tls_free(t);
		return -ENOMEM;
	}
	/* An empty memory BIO reports "retry", not EOF. */
	BIO_set_mem_eof_return(t->rbio, -1);
	BIO_set_mem_eof_return(t->wbio, -1);
	SSL_set_bio(t->ssl, t->rbio, t->wbio);
	if (server)
		SSL_set_accept_state(t->ssl);
	else
		SSL_set_connect_state(t->ssl);
	return 0;
}

void load_tls_free(struct load_tls *t)
{
	if (t->ssl != NULL) {
		SSL_free(t->ssl);  /* frees the BIOs too */
	} else {
		BIO_free(t->rbio);
		BIO_free(t->wbio);
	}
	memset(t, 0, sizeof(*t));
}

void load_tls_feed(struct load_tls *t, const void *p, size_t len)
{
	BIO_write(t->rbio, p, (int)len);
}

size_t load_tls_pending_out(struct load_tls *t)
{
	return BIO_ctrl_pending(t->wbio);
}

size_t load_tls_take_out(struct load_tls *t, void *out, size_t cap)
{
	int n = BIO_read(t->wbio, out, (int)(cap > INT32_MAX ? INT32_MAX : cap));

	return n > 0 ? (size_t)n : 0;
}

/* ---- addresses ---- */

int load_parse_addr(const char *s, struct load_addr *a)
{
	char host[128];
	const char *port;
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
				  .ai_socktype = SOCK_STREAM }, *res;

	memset(a, 0, sizeof(*a));
	if (s[0] == '[') {
		const char *e = strchr(s, ']');
		if (e == NULL || e[1] != ':' || (size_t)(e - s - 1) >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, (size_t)(e - s - 1));
		host[e - s - 1] = 0;
		port = e + 2;
	} else {
		const char *c = strrchr(s, ':');
		if (c == NULL) {
			snprintf(host, sizeof(host), "%s", s);
			port = "0";
		} else {
			if ((size_t)(c - s) >= sizeof(host))
				return -EINVAL;
			memcpy(host, s, (size_t)(c - s));
			host[c - s] = 0;
			port = c + 1;
		}
	}
	if (getaddrinfo(host, port, &hints, &res) != 0)
		return -EINVAL;
	memcpy(&a->sa, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	snprintf(a->text, sizeof(a->text), "%s", s);
	return 0;
}

/* ---- messages ---- */

void load_sha256_hex(const void *p, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	EVP_Digest(p, len, md, &mdlen, EVP_sha256(), NULL);
	for (unsigned i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
	out[64] = 0;
}

/*
 * Converts a stored message into wire form: every line ends in CR LF (a bare CR or LF becomes
 * CR LF), a line starting with "." gets another, a last line without an end gets CR LF, and a
 * Message-ID header of its own is renamed X-Original-Message-ID (ours comes first).
 * *raw_r gets the unstuffed text (what the receiver stores), for the body hash.
 */
static int to_wire(const uint8_t *in, size_t len, struct load_body *b, uint8_t **raw_r,
		   size_t *rawlen_r)
{
	/* Output is at most twice the input: a bare CR or LF (1 byte) becomes CR LF, "." LF
	 * becomes ".." CR LF, and the rename adds 11 bytes to a line of at least 12. */
	uint8_t *w = malloc(len * 2 + 64), *raw = malloc(len * 2 + 64);
	size_t wn = 0, rn = 0, i = 0;
	bool in_header = true;

	if (w == NULL || raw == NULL) {
		free(w);
		free(raw);
		return -ENOMEM;
	}
	while (i < len) {
		size_t s = i;
		while (i < len && in[i] != '\n' && in[i] != '\r')
			i++;
		size_t e = i;
		if (i < len && in[i] == '\r')
			i++;
		if (i < len && in[i] == '\n')
			i++;
		if (in_header && e == s) {
			in_header = false;
		} else if (in_header && e - s >= 11 && strncasecmp((const char *)in + s, "Message-ID:", 11) == 0) {
			memcpy(raw + rn, "X-Original-", 11);
			rn += 11;
			memcpy(w + wn, "X-Original-", 11);
			wn += 11;
		}
		if (e > s && in[s] == '.')
			w[wn++] = '.';
		memcpy(w + wn, in + s, e - s);
		wn += e - s;
		memcpy(raw + rn, in + s, e - s);
		rn += e - s;
		memcpy(w + wn, "\r\n", 2);
		wn += 2;
		memcpy(raw + rn, "\r\n", 2);
		rn += 2;
	}
	b->wire = w;
	b->len = wn;
	b->raw_len = rn;
	*raw_r = raw;
	*rawlen_r = rn;
	return 0;
}

static int body_finish(struct load_body *b, const uint8_t *in, size_t len)
{
	uint8_t *raw;
	size_t rawlen;
	int err = to_wire(in, len, b, &raw, &rawlen);

	if (err < 0)
		return err;
	/* The body part as the receiver sees it: after the first empty line. Our own headers go
	 * in front of this text, so its header part is what follows them. */
	const uint8_t *body = raw;
	size_t blen = rawlen;
	if (rawlen >= 2 && raw[0] == '\r' && raw[1] == '\n') {
		body = raw + 2;
		blen = rawlen - 2;
	} else {
		const uint8_t *p = memmem(raw, rawlen, "\r\n\r\n", 4);
		if (p != NULL) {
			body = p + 4;
			blen = rawlen - (size_t)(p + 4 - raw);
		} else {
			blen = 0;
		}
	}
	load_sha256_hex(body, blen, b->sha256);
	free(raw);
	return 0;
}

int load_msg_prepare(struct load_run *run)
{
	const struct load_opts *o = &run->o;
	int err;

	if (o->corpus != NULL) {
		struct bench_corpus *c;
		if ((err = bench_corpus_load(&c, o->corpus, 0)) < 0) {
			fprintf(stderr, "sluice-load: corpus %s: %s\n", o->corpus, strerror(-err));
			return err;
		}
		run->bodies = calloc(c->n, sizeof(*run->bodies));
		if (run->bodies == NULL) {
			bench_corpus_free(&c);
			return -ENOMEM;
		}
		for (size_t i = 0; i < c->n; i++) {
			if ((err = body_finish(&run->bodies[i], c->msgs[i].data, c->msgs[i].len)) < 0) {
				bench_corpus_free(&c);
				return err;
			}
			run->nbodies++;
		}
		bench_corpus_free(&c);
		return 0;
	}
	/* Synthetic: a Subject, an empty line, then text lines of 76 characters up to size. */
	size_t size = o->size;
	uint8_t *txt = malloc(size + 512 + strlen(o->rcpt_domain));
	size_t n = 0;
	if (txt == NULL)
		return -ENOMEM;
	n += (size_t)sprintf((char *)txt, "From: <load@sluice-load.test>\nTo: <rcpt@%s>\n"
			     "Date: Thu, 01 Jan 2026 00:00:00 +0000\n"
			     "Subject: sluice-load %zu bytes\n\n", o->rcpt_domain, size);
	for (unsigned line = 0; n < size; line++) {
		size_t room = size - n;
		size_t ll = room > 77 ? 76 : (room > 1 ? room - 1 : 0);
		for (size_t k = 0; k < ll; k++)
			txt[n + k] = (uint8_t)('a' + (line + k) % 26);
		n += ll;
		txt[n++] = '\n';
	}
	run->bodies = calloc(1, sizeof(*run->bodies));
	if (run->bodies == NULL) {
		free(txt);
		return -ENOMEM;
	}
	err = body_finish(&run->bodies[0], txt, n);
	free(txt);
	if (err == 0)
		run->nbodies = 1;
	return err;
}

void load_msg_free(struct load_run *run)
{
	for (size_t i = 0; i < run->nbodies; i++)
		free(run->bodies[i].wire);
	free(run->bodies);
	run->bodies = NULL;
	run->nbodies = 0;
}
