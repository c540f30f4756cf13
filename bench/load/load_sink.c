/*
 * load_sink.c - sluice-load's sink mode: an SMTP server that accepts every message and counts
 * it (a faster smtp-sink), writing one record per message: "message-id TAB sha256-of-body",
 * where the body is what follows the header's empty line after dot-unstuffing (RFC 5321
 * §4.5.2), so a relay's added headers do not change it and a test can compare what arrived
 * with what was sent.
 *
 * One worker thread per call, with its own ring and its own SO_REUSEPORT listener per address
 * (multishot accept). Commands are answered as they come (pipelining, RFC 2920); STARTTLS
 * (RFC 3207) when a certificate is given, with OpenSSL over memory BIOs; input after STARTTLS
 * in the same read is discarded. The end of data is CR LF "." CR LF only.
 *
 * Limits: a command line longer than LOAD_LINE_MAX gets 500 and is discarded; replies waiting
 * to go out stop the reading of more input past SK_OUT_HIGH bytes (a client that never reads
 * cannot make us buffer without bound).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "load.h"

#define SK_RX_CAP    16384u
#define SK_OUT_CAP   16384u
#define SK_OUT_HIGH  8192u
#define SK_HDR_MAX   1024u

enum { OP_ACCEPT = 1, OP_RECV, OP_SEND };

enum sk_dstate { D_BOL, D_MID, D_CR, D_DOT, D_DOTCR };

struct sk_sess {
	int          fd;
	uint32_t     slot;
	bool         closing;
	uint8_t      inflight;
	bool         recv_on, send_on;
	bool         data;                 /* inside DATA */
	bool         quit;                 /* close once the replies are out */
	bool         line_over;            /* discarding an overlong command line */
	bool         tls_hs, tls_on;
	uint8_t     *rx;                   /* recv target (ciphertext under TLS) */
	uint8_t     *pt;                   /* plaintext under TLS */
	uint8_t     *ib;                   /* the input being processed: rx or pt */
	uint32_t     ib_pos, ib_len;
	char        *line;                 /* a command line split across reads */
	uint32_t     line_len;
	char        *out;                  /* plaintext replies before TLS */
	uint32_t     out_len, out_sending;
	uint8_t     *tls_out;
	size_t       tls_out_cap, tls_sending;
	struct load_tls tls;
	/* the message being received */
	uint8_t      dstate;
	bool         in_header, hdr_cr;
	uint32_t     phys_len;
	char        *hdr;                  /* the current logical header line */
	uint32_t     hdr_len;
	char         msgid[256];
	uint32_t     msgid_len;
	EVP_MD_CTX  *md;
	uint64_t     msg_bytes;
};

struct sk_worker {
	struct load_worker *w;
	struct sk_sess    **s;
	uint32_t            ns, cap;
	uint32_t           *freel;
	uint32_t            nfree;
	int                 lfd[LOAD_MAX_LISTEN];
	unsigned            live;
	uint64_t            queued_id;
};

static void sink_sess_close(struct sk_worker *kw, struct sk_sess *s);
static void process(struct sk_worker *kw, struct sk_sess *s);

static void reply(struct sk_sess *s, const char *r, size_t len)
{
	if (s->tls_on) {
		SSL_write(s->tls.ssl, r, (int)len);
		return;
	}
	if (s->out_len + len > SK_OUT_CAP)
		return;   /* cannot happen: input stops at SK_OUT_HIGH, a reply is < 512 bytes */
	memcpy(s->out + s->out_len, r, len);
	s->out_len += (uint32_t)len;
}

#define REPLY(s, lit) reply((s), lit, sizeof(lit) - 1)

static size_t pending_out(struct sk_sess *s)
{
	return s->out_len + (s->tls.ssl ? load_tls_pending_out(&s->tls) : 0);
}

static void post_send(struct sk_worker *kw, struct sk_sess *s, const void *p, size_t len)
{
	struct io_uring_sqe *sqe = load_ring_sqe(&kw->w->ring);

	io_uring_prep_send(sqe, s->fd, p, len, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, LOAD_UD(s->slot, OP_SEND));
	s->send_on = true;
	s->inflight++;
}

static void kick(struct sk_worker *kw, struct sk_sess *s)
{
	if (s->send_on || s->closing)
		return;
	if (s->out_len > 0) {
		/* Plaintext first: it holds the 220 to STARTTLS, which precedes any TLS record. */
		s->out_sending = s->out_len;
		post_send(kw, s, s->out, s->out_len);
		return;
	}
	if (s->tls.ssl != NULL) {
		size_t n = load_tls_pending_out(&s->tls);
		if (n > 0) {
			if (n > s->tls_out_cap) {
				uint8_t *p = realloc(s->tls_out, n);
				if (p == NULL) {
					sink_sess_close(kw, s);
					return;
				}
				s->tls_out = p;
				s->tls_out_cap = n;
			}
			s->tls_sending = load_tls_take_out(&s->tls, s->tls_out, n);
			post_send(kw, s, s->tls_out, s->tls_sending);
			return;
		}
	}
	if (s->quit)
		sink_sess_close(kw, s);
}

static void post_recv(struct sk_worker *kw, struct sk_sess *s)
{
	if (s->recv_on || s->closing || s->quit)
		return;
	struct io_uring_sqe *sqe = load_ring_sqe(&kw->w->ring);
	io_uring_prep_recv(sqe, s->fd, s->rx, SK_RX_CAP, 0);
	io_uring_sqe_set_data64(sqe, LOAD_UD(s->slot, OP_RECV));
	s->recv_on = true;
	s->inflight++;
}

/* ---- the message ---- */

static void hdr_done(struct sk_sess *s)
{
	if (s->msgid_len == 0 && s->hdr_len >= 11 && strncasecmp(s->hdr, "Message-ID:", 11) == 0) {
		const char *p = s->hdr + 11, *e = s->hdr + s->hdr_len;
		while (p < e && (*p == ' ' || *p == '\t'))
			p++;
		while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		size_t n = (size_t)(e - p) < sizeof(s->msgid) - 1 ? (size_t)(e - p) : sizeof(s->msgid) - 1;
		memcpy(s->msgid, p, n);
		s->msgid_len = (uint32_t)n;
	}
	s->hdr_len = 0;
}

/* The unstuffed message, in pieces: the header is scanned for Message-ID, the body hashed. */
static void emit(struct sk_sess *s, const uint8_t *p, size_t n)
{
	size_t i = 0;

	s->msg_bytes += n;
	while (s->in_header && i < n) {
		uint8_t c = p[i++];
		if (c == '\n' && s->hdr_cr) {
			s->hdr_cr = false;
			if (s->phys_len == 0) {
				hdr_done(s);
				s->in_header = false;   /* the empty line: the body starts next */
				break;
			}
			s->phys_len = 0;
			continue;
		}
		if (s->hdr_cr) {
			/* A CR inside a header line: keep it as text. */
			s->hdr_cr = false;
			s->phys_len++;
		}
		if (c == '\r') {
			s->hdr_cr = true;
			continue;
		}
		if (s->phys_len == 0 && c != ' ' && c != '\t')
			hdr_done(s);   /* a new field starts; the previous one is complete */
		s->phys_len++;
		if (s->hdr_len < SK_HDR_MAX)
			s->hdr[s->hdr_len++] = (char)c;
	}
	if (!s->in_header && i < n)
		EVP_DigestUpdate(s->md, p + i, n - i);
}

static void data_begin(struct sk_sess *s)
{
	s->data = true;
	s->dstate = D_BOL;
	s->in_header = true;
	s->hdr_cr = false;
	s->phys_len = 0;
	s->hdr_len = 0;
	s->msgid_len = 0;
	s->msg_bytes = 0;
	EVP_DigestInit_ex(s->md, EVP_sha256(), NULL);
}

static void data_end(struct sk_worker *kw, struct sk_sess *s)
{
	unsigned char md[32];
	unsigned mdlen = 0;
	char hex[65], r[96];

	if (s->in_header)
		hdr_done(s);
	EVP_DigestFinal_ex(s->md, md, &mdlen);
	for (unsigned i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	kw->w->st.sink_msgs++;
	kw->w->st.sink_bytes += s->msg_bytes;
	kw->w->st.last_ns = load_now_ns();
	load_record_line(&kw->w->rec, s->msgid_len ? s->msgid : "-", s->msgid_len ? s->msgid_len : 1,
			 hex, NULL);
	s->data = false;
	int n = snprintf(r, sizeof(r), "250 2.0.0 Ok: queued as S%u.%llu\r\n", kw->w->id,
			 (unsigned long long)kw->queued_id++);
	reply(s, r, (size_t)n);
}

/* Unstuffs DATA input until the end of data; returns the bytes consumed. */
static size_t data_feed(struct sk_worker *kw, struct sk_sess *s, const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		switch (s->dstate) {
		case D_MID: {
			const uint8_t *cr = memchr(p + i, '\r', n - i);
			size_t end = cr ? (size_t)(cr - p) + 1 : n;
			emit(s, p + i, end - i);
			if (cr)
				s->dstate = D_CR;
			i = end;
			break;
		}
		case D_BOL:
			if (p[i] == '.') {
				s->dstate = D_DOT;   /* either the end or a stuffed dot: not emitted */
				i++;
			} else {
				s->dstate = D_MID;
			}
			break;
		case D_CR:
			if (p[i] == '\n') {
				emit(s, p + i, 1);
				s->dstate = D_BOL;
				i++;
			} else {
				s->dstate = D_MID;   /* a bare CR is text; never an end of line */
			}
			break;
		case D_DOT:
			if (p[i] == '\r') {
				s->dstate = D_DOTCR;
				i++;
			} else {
				s->dstate = D_MID;
			}
			break;
		case D_DOTCR:
			if (p[i] == '\n') {
				data_end(kw, s);
				return i + 1;
			}
			emit(s, (const uint8_t *)"\r", 1);
			s->dstate = D_CR;
			break;
		}
	}
	return n;
}

/* ---- commands ---- */

static void command(struct sk_worker *kw, struct sk_sess *s, const char *l, size_t len)
{
	const struct load_opts *o = &kw->w->run->o;
	char v[5] = { 0 };
	char r[512];

	kw->w->st.sink_cmds++;
	if (len > 0 && l[len - 1] == '\r')
		len--;
	for (size_t i = 0; i < 4 && i < len; i++)
		v[i] = (char)(l[i] | 0x20);
	if (len >= 4 && (len == 4 || l[4] == ' ')) {
		if (!memcmp(v, "ehlo", 4)) {
			int n = snprintf(r, sizeof(r), "250-%s\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n"
					 "250-8BITMIME\r\n%s250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n",
					 o->hostname, kw->w->run->tls_server && !s->tls_on ? "250-STARTTLS\r\n" : "");
			reply(s, r, (size_t)n);
			return;
		}
		if (!memcmp(v, "helo", 4)) {
			int n = snprintf(r, sizeof(r), "250 %s\r\n", o->hostname);
			reply(s, r, (size_t)n);
			return;
		}
		if (!memcmp(v, "mail", 4)) {
			REPLY(s, "250 2.1.0 Ok\r\n");
			return;
		}
		if (!memcmp(v, "rcpt", 4)) {
			REPLY(s, "250 2.1.5 Ok\r\n");
			return;
		}
		if (!memcmp(v, "data", 4) && len == 4) {
			REPLY(s, "354 End data with <CR><LF>.<CR><LF>\r\n");
			data_begin(s);
			return;
		}
		if (!memcmp(v, "rset", 4) || !memcmp(v, "noop", 4)) {
			REPLY(s, "250 2.0.0 Ok\r\n");
			return;
		}
		if (!memcmp(v, "quit", 4)) {
			REPLY(s, "221 2.0.0 Bye\r\n");
			s->quit = true;
			return;
		}
	}
	if (len == 8 && strncasecmp(l, "STARTTLS", 8) == 0 && kw->w->run->tls_server && !s->tls_on &&
	    !s->tls_hs) {
		REPLY(s, "220 2.0.0 Ready to start TLS\r\n");
		s->ib_pos = s->ib_len;   /* RFC 3207 §4: nothing pipelined after STARTTLS counts */
		if (load_tls_start(&s->tls, kw->w->run->tls_server, true) < 0) {
			s->quit = true;
			return;
		}
		s->tls_hs = true;
		return;
	}
	kw->w->st.sink_bad_cmds++;
	REPLY(s, "502 5.5.2 Error: command not recognized\r\n");
}

/* Consumes input until it runs out or too many replies wait to go out. */
static void process(struct sk_worker *kw, struct sk_sess *s)
{
	while (!s->closing && !s->quit) {
		if (s->ib_pos == s->ib_len) {
			if (!s->tls_on)
				break;
			int n = SSL_read(s->tls.ssl, s->pt, SK_RX_CAP);
			if (n <= 0)
				break;
			s->ib = s->pt;
			s->ib_pos = 0;
			s->ib_len = (uint32_t)n;
		}
		if (s->out_len > SK_OUT_HIGH || (s->tls.ssl && load_tls_pending_out(&s->tls) > SK_OUT_HIGH))
			break;
		const uint8_t *p = s->ib + s->ib_pos;
		size_t n = s->ib_len - s->ib_pos;
		if (s->data) {
			s->ib_pos += (uint32_t)data_feed(kw, s, p, n);
			continue;
		}
		const uint8_t *nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) + 1 : n;
		s->ib_pos += (uint32_t)take;
		if (s->line_over) {
			if (nl)
				s->line_over = false;
			continue;
		}
		if (nl && s->line_len == 0) {
			command(kw, s, (const char *)p, take - 1);   /* whole line in the buffer */
			continue;
		}
		if (s->line_len + take > LOAD_LINE_MAX) {
			kw->w->st.sink_bad_cmds++;
			REPLY(s, "500 5.5.2 Error: line too long\r\n");
			s->line_len = 0;
			s->line_over = nl == NULL;
			continue;
		}
		memcpy(s->line + s->line_len, p, take);
		s->line_len += (uint32_t)take;
		if (nl) {
			command(kw, s, s->line, s->line_len - 1);
			s->line_len = 0;
		}
	}
	kick(kw, s);
	if (s->ib_pos == s->ib_len && pending_out(s) <= SK_OUT_HIGH)
		post_recv(kw, s);
}

static void on_recv(struct sk_worker *kw, struct sk_sess *s, int res)
{
	s->recv_on = false;
	if (s->closing)
		return;
	if (res <= 0) {
		sink_sess_close(kw, s);
		return;
	}
	if (s->tls_hs || s->tls_on) {
		load_tls_feed(&s->tls, s->rx, (size_t)res);
		if (s->tls_hs) {
			int r = SSL_do_handshake(s->tls.ssl);
			if (r == 1) {
				s->tls_hs = false;
				s->tls_on = true;
				kw->w->st.tls_ok++;
			} else {
				int e = SSL_get_error(s->tls.ssl, r);
				if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
					kw->w->st.tls_failed++;
					sink_sess_close(kw, s);
					return;
				}
			}
		}
		s->ib_pos = s->ib_len = 0;   /* plaintext comes from SSL_read in process() */
	} else {
		s->ib = s->rx;
		s->ib_pos = 0;
		s->ib_len = (uint32_t)res;
	}
	process(kw, s);
	if (s->tls_hs && !s->recv_on)
		post_recv(kw, s);
}

static void on_send(struct sk_worker *kw, struct sk_sess *s, int res)
{
	s->send_on = false;
	if (s->closing)
		return;
	if (res < 0) {
		sink_sess_close(kw, s);
		return;
	}
	if (s->out_sending) {
		/* Replies added while this send was in flight sit after the part sent. */
		memmove(s->out, s->out + res, s->out_len - (uint32_t)res);
		s->out_len -= (uint32_t)res;
		s->out_sending = 0;
	} else if ((size_t)res < s->tls_sending) {
		/* A short send of TLS records: send the rest before anything new. */
		s->tls_sending -= (size_t)res;
		memmove(s->tls_out, s->tls_out + res, s->tls_sending);
		post_send(kw, s, s->tls_out, s->tls_sending);
		return;
	}
	process(kw, s);   /* resumes input held back by the reply limit, then sends */
}

static struct sk_sess *sink_sess_new(struct sk_worker *kw, int fd)
{
	struct sk_sess *s;
	uint32_t slot;

	if (kw->nfree > 0) {
		slot = kw->freel[--kw->nfree];
		s = kw->s[slot];
	} else {
		if (kw->ns == kw->cap) {
			uint32_t cap = kw->cap ? kw->cap * 2 : 256;
			struct sk_sess **ns = realloc(kw->s, cap * sizeof(*ns));
			uint32_t *nf = realloc(kw->freel, cap * sizeof(*nf));
			if (ns == NULL || nf == NULL)
				return NULL;
			kw->s = ns;
			kw->freel = nf;
			kw->cap = cap;
		}
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			return NULL;
		uint8_t *mem = malloc(2 * SK_RX_CAP + LOAD_LINE_MAX + SK_OUT_CAP + SK_HDR_MAX);
		s->md = EVP_MD_CTX_new();
		if (mem == NULL || s->md == NULL) {
			free(mem);
			EVP_MD_CTX_free(s->md);
			free(s);
			return NULL;
		}
		s->rx = mem;
		s->pt = mem + SK_RX_CAP;
		s->line = (char *)mem + 2 * SK_RX_CAP;
		s->out = s->line + LOAD_LINE_MAX;
		s->hdr = s->out + SK_OUT_CAP;
		slot = kw->ns++;
		kw->s[slot] = s;
	}
	EVP_MD_CTX *md = s->md;
	uint8_t *rx = s->rx, *pt = s->pt, *tls_out = s->tls_out;
	char *line = s->line, *out = s->out, *hdr = s->hdr;
	size_t tls_out_cap = s->tls_out_cap;
	memset(s, 0, sizeof(*s));
	s->md = md;
	s->rx = rx;
	s->pt = pt;
	s->line = line;
	s->out = out;
	s->hdr = hdr;
	s->tls_out = tls_out;
	s->tls_out_cap = tls_out_cap;
	s->ib = rx;
	s->fd = fd;
	s->slot = slot;
	kw->live++;
	return s;
}

static void sink_sess_close(struct sk_worker *kw, struct sk_sess *s)
{
	if (s->fd < 0)
		return;
	if (!s->closing) {
		s->closing = true;
		shutdown(s->fd, SHUT_RDWR);
	}
	if (s->inflight > 0)
		return;
	close(s->fd);
	s->fd = -1;
	load_tls_free(&s->tls);
	kw->freel[kw->nfree++] = s->slot;
	kw->live--;
}

static void arm_accept(struct sk_worker *kw, unsigned i)
{
	struct io_uring_sqe *sqe = load_ring_sqe(&kw->w->ring);

	io_uring_prep_multishot_accept(sqe, kw->lfd[i], NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, LOAD_UD(UINT32_MAX - i, OP_ACCEPT));
}

static void on_accept(struct sk_worker *kw, struct io_uring_cqe *cqe, unsigned li)
{
	int one = 1;

	if (!(cqe->flags & IORING_CQE_F_MORE) && !atomic_load(&kw->w->run->stop))
		arm_accept(kw, li);
	if (cqe->res < 0)
		return;
	struct sk_sess *s = sink_sess_new(kw, cqe->res);
	if (s == NULL) {
		close(cqe->res);
		return;
	}
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	kw->w->st.sink_conns++;
	if (kw->w->st.first_ns == 0)
		kw->w->st.first_ns = load_now_ns();
	int n = snprintf(s->out, SK_OUT_CAP, "220 %s ESMTP sluice-load sink\r\n", kw->w->run->o.hostname);
	s->out_len = (uint32_t)n;
	kick(kw, s);
	post_recv(kw, s);
}

static int listen_on(const struct load_addr *a)
{
	int one = 1;
	int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&a->sa, a->len) < 0 || listen(fd, 4096) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

int load_sink_run(struct load_worker *w)
{
	struct load_run *run = w->run;
	const struct load_opts *o = &run->o;
	struct sk_worker kw = { .w = w };
	int err;

	if ((err = load_ring_init(&w->ring, 2048, &run->ring_flags)) < 0) {
		fprintf(stderr, "sluice-load: io_uring: %s\n", strerror(-err));
		atomic_fetch_add(&run->idle_done, 1);
		return err;
	}
	for (unsigned i = 0; i < o->nlisten; i++) {
		if ((kw.lfd[i] = listen_on(&o->listen[i])) < 0) {
			fprintf(stderr, "sluice-load: listen %s: %s\n", o->listen[i].text,
				strerror(-kw.lfd[i]));
			for (unsigned j = 0; j < i; j++)
				close(kw.lfd[j]);
			atomic_store(&run->stop, true);
			atomic_fetch_add(&run->idle_done, 1);
			return kw.lfd[i];
		}
		arm_accept(&kw, i);
	}
	io_uring_submit(&w->ring);
	atomic_fetch_add(&run->idle_done, 1);   /* this worker listens */

	while (!atomic_load(&run->stop)) {
		struct io_uring_cqe *cqe;
		unsigned head, count = 0;
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 50 * 1000000 };

		io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			uint64_t ud = io_uring_cqe_get_data64(cqe);
			uint32_t slot = LOAD_UD_SLOT(ud);
			count++;
			if (LOAD_UD_OP(ud) == OP_ACCEPT) {
				on_accept(&kw, cqe, UINT32_MAX - slot);
				continue;
			}
			struct sk_sess *s = kw.s[slot];
			s->inflight--;
			if (LOAD_UD_OP(ud) == OP_RECV)
				on_recv(&kw, s, cqe->res);
			else
				on_send(&kw, s, cqe->res);
			if (s->closing)
				sink_sess_close(&kw, s);
		}
		io_uring_cq_advance(&w->ring, count);
		load_record_flush(&w->rec);
		if (o->messages && w->st.sink_msgs >= o->messages)
			atomic_store(&run->stop, true);
	}
	load_record_flush(&w->rec);
	for (unsigned i = 0; i < o->nlisten; i++)
		close(kw.lfd[i]);
	/* Exiting: the kernel reaps the connections; the ring goes with the process. */
	for (uint32_t i = 0; i < kw.ns; i++) {
		if (kw.s[i]->fd >= 0)
			close(kw.s[i]->fd);
		load_tls_free(&kw.s[i]->tls);
		EVP_MD_CTX_free(kw.s[i]->md);
		free(kw.s[i]->rx);
		free(kw.s[i]->tls_out);
		free(kw.s[i]);
	}
	free(kw.s);
	free(kw.freel);
	io_uring_queue_exit(&w->ring);
	return 0;
}
