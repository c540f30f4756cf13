/*
 * smtp_session.c - the session's life: start, input, output, suspension, timers, close.
 *
 * Input path: a recv completes into a provided buffer (or TLS turns ciphertext into plaintext in
 * the shard's scratch); smtp_session_input() runs commands and body bytes until the input is used
 * up or the session suspends (end of data waits for the disk); leftovers are copied to the
 * session's stash, the buffer goes back to the kernel, and the replies queued meanwhile are sent
 * in one write (RFC 2920 batching). The next recv is armed only when the session wants input.
 */
#include "smtp/smtp_session.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/tls.h"
#include "filter/filter.h"
#include "net/iplimit.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_reply.h"

#define SMTP_IO_RECV 0u
#define SMTP_IO_SEND 1u
#define SMTP_OUT_HIGH (32u * 1024u)   /* stop reading while this much output waits */

static uint32_t smtp_session_serial;   /* per thread would be nicer; ids carry the shard id */

static inline uint64_t smtp_io_ud(struct smtp_session *s, unsigned kind)
{
	return shard_ud(SHARD_OP_SESSION, (uintptr_t)s | kind);
}

static void smtp_session_arm_recv(struct smtp_session *s);
static void smtp_session_maybe_free(struct smtp_session *s);
static void smtp_session_timer_fire(struct timer *t);

/* ---- output ---- */

static int smtp_obuf_put(struct smtp_obuf *b, const void *p, size_t len)
{
	if (b->len + len > b->cap) {
		uint32_t cap = b->cap ? b->cap : 512;
		uint8_t *np;

		while (cap < b->len + len)
			cap *= 2;
		np = realloc(b->p, cap);
		if (np == NULL)
			return -ENOMEM;
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, len);
	b->len += (uint32_t)len;
	return 0;
}

static void smtp_obuf_free(struct smtp_obuf *b)
{
	free(b->p);
	*b = (struct smtp_obuf){ 0 };
}

void smtp_session_out(struct smtp_session *s, const void *p, size_t len)
{
	if (s->closing)
		return;
	if (smtp_obuf_put(&s->out, p, len) < 0)
		smtp_session_abort(s, "out of memory for replies");
}

/* Moves queued replies into the transmit buffer, through TLS when it is on. */
static int smtp_session_stage(struct smtp_session *s)
{
	if (s->out.len == 0)
		return 0;
	if (s->ssl != NULL && s->tls_active) {
		int n = SSL_write(s->ssl, s->out.p, (int)s->out.len);

		if (n <= 0)
			return -EIO;
		s->out.len = 0;
	} else {
		if (smtp_obuf_put(&s->tx, s->out.p, s->out.len) < 0)
			return -ENOMEM;
		s->out.len = 0;
	}
	return 0;
}

/* TLS output (handshake records and encrypted replies) waits in the write BIO. */
static int smtp_session_pull_tls(struct smtp_session *s)
{
	char tmp[16384];
	int n;

	if (s->wbio == NULL)
		return 0;
	while ((n = BIO_read(s->wbio, tmp, sizeof(tmp))) > 0)
		if (smtp_obuf_put(&s->tx, tmp, (size_t)n) < 0)
			return -ENOMEM;
	return 0;
}

void smtp_session_flush(struct smtp_session *s)
{
	struct io_uring_sqe *sqe;

	if (s->fd < 0)
		return;
	if (!s->send_armed) {
		if (smtp_session_stage(s) < 0 || smtp_session_pull_tls(s) < 0) {
			smtp_session_abort(s, "cannot stage output");
			return;
		}
	}
	if (s->send_armed || s->tx.len == s->tx_sent)
		return;
	sqe = shard_sqe(s->sh);
	io_uring_prep_send(sqe, s->fd, s->tx.p + s->tx_sent, s->tx.len - s->tx_sent, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, smtp_io_ud(s, SMTP_IO_SEND));
	s->send_armed = true;
	s->inflight++;
}

static void smtp_session_on_send(struct smtp_session *s, int res)
{
	s->send_armed = false;
	s->inflight--;
	if (res < 0) {
		if (!s->closing)
			log_info("%s: send failed (%s): client gone", s->id, strerror(-res));
		s->closing = true;
		smtp_session_maybe_free(s);
		return;
	}
	s->tx_sent += (uint32_t)res;
	if (s->tx_sent == s->tx.len) {
		s->tx.len = 0;
		s->tx_sent = 0;
		if (s->tx.cap > 4096)      /* do not keep a big buffer on an idle session */
			smtp_obuf_free(&s->tx);
	}
	if (s->closing) {
		smtp_session_maybe_free(s);
		return;
	}
	smtp_session_flush(s);
	if (s->close_after_send && !s->send_armed && s->out.len == 0) {
		s->closing = true;
		smtp_session_maybe_free(s);
		return;
	}
	/* Output back-pressure lifted: read again. */
	if (!s->send_armed && !s->suspended && !s->recv_armed)
		smtp_session_arm_recv(s);
}

void smtp_session_close_after_reply(struct smtp_session *s)
{
	s->close_after_send = true;
	smtp_enter_state(s, SMTP_ST_CLOSING);
	smtp_session_flush(s);
	if (!s->send_armed) {
		s->closing = true;
		smtp_session_maybe_free(s);
	}
}

/* ---- lifecycle ---- */

void smtp_enter_state(struct smtp_session *s, enum smtp_state st)
{
	bool was_body = s->state & (SMTP_ST_DATA | SMTP_ST_BDAT);
	bool is_body = st & (SMTP_ST_DATA | SMTP_ST_BDAT);

	/* Sessions in the middle of a body will commit soon: the group commit waits for them
	 * (main.c), like PostgreSQL's commit_delay with commit_siblings. */
	s->sh->bodies_in_flight += (int)is_body - (int)was_body;
	s->state = st;
}

static void smtp_session_unlink(struct smtp_session *s)
{
	struct shard *sh = s->sh;

	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		sh->session_list = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

static void smtp_session_maybe_free(struct smtp_session *s)
{
	struct shard *sh = s->sh;

	if (s->fd >= 0 && s->recv_armed) {
		/* The recv must come back before the fd goes; cancel it. */
		struct io_uring_sqe *sqe = shard_sqe(sh);

		io_uring_prep_cancel64(sqe, smtp_io_ud(s, SMTP_IO_RECV), 0);
		io_uring_sqe_set_data64(sqe, shard_ud(SHARD_OP_IGNORE, 0));
	}
	if (s->inflight != 0)
		return;
	timer_cancel(&sh->timers, &s->timer);
	smtp_txn_reset(s);
	if (s->txn != NULL) {
		arena_destroy(&s->txn->arena);
		free(s->txn);
		s->txn = NULL;
	}
	if (s->fd >= 0) {
		struct io_uring_sqe *sqe = shard_sqe(sh);

		io_uring_prep_close(sqe, s->fd);
		io_uring_sqe_set_data64(sqe, shard_ud(SHARD_OP_IGNORE, 0));
		s->fd = -1;
	}
	if (s->ssl != NULL)
		SSL_free(s->ssl);   /* frees both BIOs */
	smtp_obuf_free(&s->out);
	smtp_obuf_free(&s->tx);
	free(s->stash);
	free(s->helo);
	iplimit_release(s->iplimit_key);
	smtp_enter_state(s, SMTP_ST_CLOSING);   /* keeps bodies_in_flight right */
	smtp_session_unlink(s);
	sh->ctr.conn_closed++;
	pool_put(&sh->sessions, s);
}

void smtp_session_abort(struct smtp_session *s, const char *why)
{
	if (s->closing)
		return;
	if (why != NULL)
		log_info("%s: closing: %s", s->id, why);
	s->closing = true;
	smtp_enter_state(s, SMTP_ST_CLOSING);
	smtp_session_maybe_free(s);
}

bool smtp_session_error(struct smtp_session *s)
{
	s->sh->ctr.cmd_errors++;
	if (++s->errors < s->sh->conf->limits.errors)
		return false;
	smtp_reply(s, 421, "4.7.0", "%s Error: too many errors", s->sh->conf->hostname);
	smtp_session_close_after_reply(s);
	return true;
}

static void smtp_session_arm_timer(struct smtp_session *s)
{
	const struct node_limits *lim = &s->sh->conf->limits;
	uint64_t now = s->sh->now_ms, due = now + lim->idle_ms;

	if (s->deadline_ms < due)
		due = s->deadline_ms;
	timer_arm(&s->sh->timers, &s->timer, due > now ? due - now : 0);
}

static void smtp_session_timer_fire(struct timer *t)
{
	struct smtp_session *s = (struct smtp_session *)((char *)t - offsetof(struct smtp_session, timer));

	if (s->recv_retry) {
		s->recv_retry = false;
		smtp_session_arm_timer(s);
		smtp_session_arm_recv(s);
		return;
	}
	s->sh->ctr.timeouts++;
	if (s->commit_pending) {        /* never cut a session whose message is being written */
		timer_arm(&s->sh->timers, &s->timer, 1000);
		return;
	}
	log_info("%s: %s timeout in state %#x", s->id,
		 s->sh->now_ms >= s->deadline_ms ? "session" : "idle", s->state);
	smtp_reply(s, 421, "4.4.2", "%s Error: timeout exceeded", s->sh->conf->hostname);
	smtp_session_close_after_reply(s);
}

void smtp_session_start(struct shard *sh, struct shard_listener *l, int fd,
			const struct sockaddr_storage *peer, socklen_t peerlen)
{
	const struct node_config *conf = sh->conf;
	struct smtp_session *s;
	uint64_t ipkey;
	int one = 1;

	(void)peerlen;
	if (!iplimit_acquire(peer, conf->limits.conn_per_ip, &ipkey)) {
		static const char msg[] = "421 4.7.0 Error: too many connections from your address\r\n";

		sh->ctr.conn_refused_ip++;
		/* A fresh socket's send buffer is empty: this write cannot block. */
		(void)!write(fd, msg, sizeof(msg) - 1);
		close(fd);
		return;
	}
	s = pool_get(&sh->sessions);
	if (s == NULL) {
		static const char msg[] = "421 4.3.2 Error: too many sessions, try again later\r\n";

		sh->ctr.conn_refused_pool++;
		(void)!write(fd, msg, sizeof(msg) - 1);
		close(fd);
		iplimit_release(ipkey);
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->sh = sh;
	s->fd = fd;
	s->iplimit_key = ipkey;
	s->client_port = ntohs(peer->ss_family == AF_INET ? ((const struct sockaddr_in *)peer)->sin_port
			       : ((const struct sockaddr_in6 *)peer)->sin6_port);
	s->listener = (uint16_t)l->index;
	s->role = conf->listen[l->index].role;
	s->started_ms = sh->now_ms;
	s->deadline_ms = sh->now_ms + conf->limits.session_ms;
	snprintf(s->id, sizeof(s->id), "%02X%08X", sh->id & 0xff, ++smtp_session_serial);
	if (peer->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)peer)->sin_addr, s->client_addr,
			  sizeof(s->client_addr));
	else
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)peer)->sin6_addr, s->client_addr,
			  sizeof(s->client_addr));
	smtp_line_init(&s->line);
	timer_init(&s->timer, smtp_session_timer_fire);
	s->next = sh->session_list;
	if (s->next != NULL)
		s->next->prev = s;
	sh->session_list = s;
	sh->ctr.conn_accepted++;
	sh->ctr.conn_by_role[s->role & 1]++;
	log_debug("%s: connect from %s to %s (%s MX)", s->id, s->client_addr,
		  conf->listen[l->index].address, listen_role_name(s->role));
	smtp_enter_state(s, SMTP_ST_INIT);
	if (sh->stopping) {
		smtp_reply(s, 421, "4.3.2", "%s Service shutting down", conf->hostname);
		smtp_session_close_after_reply(s);
		return;
	}
	smtp_reply(s, 220, NULL, "%s %s", conf->hostname, conf->banner);
	smtp_session_arm_timer(s);
	smtp_session_flush(s);
	smtp_session_arm_recv(s);
}

/* ---- input ---- */

static void smtp_session_arm_recv(struct smtp_session *s)
{
	struct io_uring_sqe *sqe;

	if (s->recv_armed || s->closing || s->fd < 0)
		return;
	sqe = shard_sqe(s->sh);
	io_uring_prep_recv(sqe, s->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = SHARD_BUF_GROUP;
	io_uring_sqe_set_data64(sqe, smtp_io_ud(s, SMTP_IO_RECV));
	s->recv_armed = true;
	s->inflight++;
}

/* Keeps what the session could not take yet; bounded by one read's worth. */
static void smtp_session_keep(struct smtp_session *s, const uint8_t *p, size_t len)
{
	size_t have = s->stash_len - s->stash_pos;
	uint8_t *np;

	if (len == 0)
		return;
	np = malloc(have + len);
	if (np == NULL) {
		smtp_session_abort(s, "out of memory for pipelined input");
		return;
	}
	if (have > 0)
		memcpy(np, s->stash + s->stash_pos, have);
	memcpy(np + have, p, len);
	free(s->stash);
	s->stash = np;
	s->stash_pos = 0;
	s->stash_len = (uint32_t)(have + len);
}

/* Runs commands and body bytes. Returns the bytes used; fewer than len only when the session
 * suspended or started closing. */
static size_t smtp_session_run(struct smtp_session *s, const uint8_t *p, size_t len)
{
	size_t off = 0;

	/* After a final reply (QUIT, 421) nothing more of the input is run. */
	while (off < len && !s->suspended && !s->closing && !s->close_after_send &&
	       !s->discard_rest) {
		struct slice line;
		size_t used;

		if (s->state & (SMTP_ST_DATA | SMTP_ST_BDAT)) {
			off += smtp_cmd_body_input(s, p + off, len - off);
			continue;
		}
		switch (smtp_line_next(&s->line, p + off, len - off, s->sh->conf->limits.command_line,
				       &line, &used)) {
		case SMTP_PARSE_AGAIN:
			off += used;
			break;
		case SMTP_PARSE_DONE:
			off += used;
			smtp_cmd_dispatch(s, line);
			break;
		case SMTP_PARSE_TOOLONG:
			off += used;
			s->sh->ctr.proto_errors++;
			smtp_reply(s, 500, "5.5.2", "Error: line too long");
			smtp_session_error(s);
			break;
		case SMTP_PARSE_BAD:
			off += used;
			s->sh->ctr.proto_errors++;
			smtp_reply(s, 500, "5.5.2", "Error: bad character (bare CR or NUL) in command");
			smtp_session_error(s);
			break;
		}
		if (s->out.len >= SMTP_OUT_HIGH) {
			/* A client pipelining faster than it reads: stop until the replies go out. */
			smtp_session_flush(s);
			if (s->send_armed && off < len) {
				smtp_session_keep(s, p + off, len - off);
				return len;
			}
		}
	}
	return off;
}

void smtp_session_discard_input(struct smtp_session *s)
{
	free(s->stash);
	s->stash = NULL;
	s->stash_len = s->stash_pos = 0;
	smtp_line_init(&s->line);
	s->discard_rest = true;
}

/* Feeds plaintext input; keeps what could not be used. */
static void smtp_session_input(struct smtp_session *s, const uint8_t *p, size_t len)
{
	size_t used;

	s->discard_rest = false;
	used = smtp_session_run(s, p, len);
	if (s->close_after_send)
		return;              /* the rest is the input of a session that is over */
	if (s->discard_rest) {
		if (len > used + 0)
			log_info("%s: discarded %zu bytes sent with STARTTLS (injection attempt)", s->id,
				 len - used);
		s->discard_rest = false;
		return;
	}
	if (used < len && !s->closing)
		smtp_session_keep(s, p + used, len - used);
}

/* Runs the stash (input that arrived while suspended). */
static void smtp_session_run_stash(struct smtp_session *s)
{
	while (s->stash != NULL && !s->suspended && !s->closing) {
		uint8_t *st = s->stash;
		size_t pos = s->stash_pos, len = s->stash_len;

		/* Take it off the session first: running it may stash again. */
		s->stash = NULL;
		s->stash_len = s->stash_pos = 0;
		smtp_session_input(s, st + pos, len - pos);
		free(st);
	}
}

/* Decrypts what TLS has and runs it, until TLS wants more or the session suspends. */
static void smtp_session_run_tls(struct smtp_session *s)
{
	struct shard *sh = s->sh;

	if (s->state == SMTP_ST_TLS) {
		int r = SSL_do_handshake(s->ssl);

		if (r != 1) {
			int e = SSL_get_error(s->ssl, r);

			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				return;
			char why[256];

			sh->ctr.tls_failures++;
			tls_errors(why, sizeof(why));
			log_info("%s: TLS handshake failed: %s", s->id, why);
			smtp_session_flush(s);      /* the alert, if any */
			s->close_after_send = true;
			if (!s->send_armed)
				smtp_session_abort(s, NULL);
			return;
		}
		sh->ctr.tls_handshakes++;
		s->tls_active = true;
		/* RFC 3207 §4.2: forget everything learnt before TLS; the client starts over. */
		free(s->helo);
		s->helo = NULL;
		s->esmtp = false;
		smtp_enter_state(s, SMTP_ST_INIT);
		log_debug("%s: TLS established: %s %s", s->id, SSL_get_version(s->ssl),
			  SSL_get_cipher_name(s->ssl));
	}
	while (!s->suspended && !s->closing) {
		int n = SSL_read(s->ssl, sh->scratch, (int)SHARD_BUF_SIZE);

		if (n <= 0) {
			int e = SSL_get_error(s->ssl, n);

			if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
				break;
			if (e == SSL_ERROR_ZERO_RETURN) {
				smtp_session_abort(s, "TLS closed by client");
				return;
			}
			char why[256];

			tls_errors(why, sizeof(why));
			log_info("%s: TLS read error: %s", s->id, why);
			smtp_session_abort(s, NULL);
			return;
		}
		smtp_session_input(s, sh->scratch, (size_t)n);
	}
}

static void smtp_session_on_recv(struct smtp_session *s, const struct io_uring_cqe *cqe)
{
	struct shard *sh = s->sh;
	int res = cqe->res;
	unsigned bid;

	s->recv_armed = false;
	s->inflight--;
	if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
		if (res == -ENOBUFS) {
			/* Every provided buffer is in use: try again on the next tick. */
			sh->ctr.recv_nobufs++;
			if (!s->closing) {
				s->recv_retry = true;
				timer_arm(&sh->timers, &s->timer, 1);
			}
			return;
		}
		if (s->closing) {
			smtp_session_maybe_free(s);
			return;
		}
		if (res == 0 || res < 0) {
			if (s->state & (SMTP_ST_DATA | SMTP_ST_BDAT))
				log_info("%s: client gone in the middle of a message", s->id);
			else if (res < 0 && res != -ECONNRESET)
				log_info("%s: recv: %s", s->id, strerror(-res));
			smtp_session_abort(s, NULL);
			return;
		}
	}
	bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
	if (!s->closing && res > 0)
		smtp_session_arm_timer(s);    /* any input, a command or a piece of body, is activity */
	if (s->closing || res <= 0) {
		shard_buf_recycle(sh, bid);
		if (res <= 0 && !s->closing)
			smtp_session_abort(s, NULL);
		else
			smtp_session_maybe_free(s);
		return;
	}
	if (s->ssl != NULL) {
		/* Ciphertext goes into OpenSSL's memory BIO; the buffer returns to the kernel now. */
		BIO_write(s->rbio, shard_buf(sh, bid), res);
		shard_buf_recycle(sh, bid);
		smtp_session_run_tls(s);
	} else {
		smtp_session_input(s, shard_buf(sh, bid), (size_t)res);
		shard_buf_recycle(sh, bid);
	}
	if (s->closing) {
		smtp_session_maybe_free(s);
		return;
	}
	smtp_session_flush(s);
	if (!s->suspended && !(s->send_armed && s->out.len >= SMTP_OUT_HIGH))
		smtp_session_arm_recv(s);
}

void smtp_session_suspend(struct smtp_session *s)
{
	s->suspended = true;
}

void smtp_session_resume(struct smtp_session *s)
{
	s->suspended = false;
	if (s->closing) {
		smtp_session_maybe_free(s);
		return;
	}
	smtp_session_run_stash(s);
	if (s->ssl != NULL && !s->suspended && !s->closing)
		smtp_session_run_tls(s);
	if (s->closing) {
		smtp_session_maybe_free(s);
		return;
	}
	smtp_session_flush(s);
	if (!s->suspended)
		smtp_session_arm_recv(s);
}

static void smtp_session_on_cqe(struct shard *sh, const struct io_uring_cqe *cqe)
{
	uint64_t low = shard_ud_low(cqe->user_data);
	struct smtp_session *s = (struct smtp_session *)(uintptr_t)(low & ~UINT64_C(7));

	(void)sh;
	if ((low & 7) == SMTP_IO_RECV)
		smtp_session_on_recv(s, cqe);
	else
		smtp_session_on_send(s, cqe->res);
}

void smtp_session_setup(void)
{
	shard_set_handler(SHARD_OP_SESSION, smtp_session_on_cqe);
}

/* ---- the transaction ---- */

struct smtp_txn *smtp_txn_begin(struct smtp_session *s)
{
	struct smtp_txn *t = s->txn;

	if (t == NULL) {
		t = calloc(1, sizeof(*t));
		if (t == NULL)
			return NULL;
		arena_init(&t->arena, 2048);
		s->txn = t;
	}
	t->role = s->role;
	return t;
}

void smtp_txn_reset(struct smtp_session *s)
{
	struct smtp_txn *t = s->txn;
	struct arena keep;

	if (t == NULL)
		return;
	if (t->msg != NULL)
		spool_msg_abort(&t->msg);
	if (t->fm != NULL)
		filter_msg_free(&t->fm);
	keep = t->arena;
	arena_reset(&keep);
	memset(t, 0, sizeof(*t));
	t->arena = keep;
}

/* ---- shutdown ---- */

void smtp_sessions_drain(struct shard *sh)
{
	struct smtp_session *s = sh->session_list, *next;

	for (; s != NULL; s = next) {
		next = s->next;
		s->draining = true;
		if (s->closing)
			continue;
		if ((s->state & (SMTP_ST_INIT | SMTP_ST_READY)) && !s->commit_pending &&
		    s->out.len == 0) {
			smtp_reply(s, 421, "4.3.2", "%s Service shutting down", sh->conf->hostname);
			smtp_session_close_after_reply(s);
		}
	}
}

void smtp_sessions_abort_all(struct shard *sh)
{
	struct smtp_session *s = sh->session_list, *next;

	for (; s != NULL; s = next) {
		next = s->next;
		if (s->closing || s->commit_pending)
			continue;
		smtp_reply(s, 421, "4.3.2", "%s Service shutting down", sh->conf->hostname);
		smtp_session_close_after_reply(s);
	}
}

unsigned smtp_sessions_count(const struct shard *sh)
{
	return sh->sessions.live;
}
