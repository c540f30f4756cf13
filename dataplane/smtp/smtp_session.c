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

#include "base/counter.h"
#include "base/log.h"
#include "base/tls.h"
#include "filter/filter.h"
#include "net/iplimit.h"
#include "policy/policy.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_log.h"
#include "smtp/smtp_reply.h"

#define SMTP_IO_RECV 0u
#define SMTP_IO_SEND 1u
#define SMTP_OUT_HIGH (32u * 1024u)   /* run and read nothing more while this much output waits */
#define SMTP_LINGER_MS 10000u         /* a client that never reads its last reply */

static uint32_t smtp_session_serial;   /* per thread would be nicer; ids carry the shard id */

static inline uint64_t smtp_io_ud(struct smtp_session *s, unsigned kind)
{
	return shard_ud(SHARD_OP_SESSION, (uintptr_t)s | kind);
}

static void smtp_session_arm_recv(struct smtp_session *s);
static void smtp_session_maybe_free(struct smtp_session *s);
static void smtp_session_timer_fire(struct timer *t);

/* ---- output ---- */

void smtp_session_out(struct smtp_session *s, const void *p, size_t len)
{
	if (s->closing)
		return;
	if (buf_append(&s->out, p, len) < 0)
		smtp_session_abort(s, "out of memory for replies");
}

/* Moves queued replies into the transmit buffer, through TLS when it is on. */
static int smtp_session_stage(struct smtp_session *s)
{
	if (buf_unread(&s->out) == 0)
		return 0;
	if (s->ssl != NULL && s->tls_active) {
		int n = SSL_write(s->ssl, s->out.pos, (int)buf_unread(&s->out));

		if (n <= 0)
			return -EIO;
	} else if (buf_append(&s->tx, s->out.pos, buf_unread(&s->out)) < 0) {
		return -ENOMEM;
	}
	buf_consume(&s->out, buf_unread(&s->out));
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
		if (buf_append(&s->tx, tmp, (size_t)n) < 0)
			return -ENOMEM;
	return 0;
}

/* Replies waiting to go out (queued and not yet sent). */
static size_t smtp_session_pending_out(const struct smtp_session *s)
{
	return buf_unread(&s->tx) + buf_unread(&s->out);
}

/* A client pipelining faster than it reads: run nothing more until the replies drain. */
static bool smtp_session_out_blocked(const struct smtp_session *s)
{
	return smtp_session_pending_out(s) >= SMTP_OUT_HIGH;
}

/* Whether to read more input now: only when all that was read has run. */
static bool smtp_session_wants_input(const struct smtp_session *s)
{
	return !s->closing && !s->close_after_send && !s->suspended && s->stash == NULL &&
	       !smtp_session_out_blocked(s);
}

void smtp_session_flush(struct smtp_session *s)
{
	struct io_uring_sqe *sqe;

	if (s->fd < 0 || s->closing)
		return;
	if (!s->send_armed) {
		if (smtp_session_stage(s) < 0 || smtp_session_pull_tls(s) < 0) {
			smtp_session_abort(s, "cannot stage output");
			return;
		}
	}
	/* tx stays where it is until this send completes: nothing appends to it meanwhile */
	if (s->send_armed || buf_unread(&s->tx) == 0)
		return;
	sqe = shard_sqe(s->sh);
	io_uring_prep_send(sqe, s->fd, s->tx.pos, buf_unread(&s->tx), MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, smtp_io_ud(s, SMTP_IO_SEND));
	s->send_armed = true;
	s->inflight++;
}

static void smtp_session_progress(struct smtp_session *s);

static void smtp_session_on_send(struct smtp_session *s, int res)
{
	s->send_armed = false;
	s->inflight--;
	if (s->closing) {
		smtp_session_maybe_free(s);
		return;
	}
	if (res < 0) {
		log_info("%s: send failed (%s): client gone", s->id, strerror(-res));
		smtp_session_abort(s, NULL);
		return;
	}
	buf_consume(&s->tx, (size_t)res);
	if (buf_unread(&s->tx) == 0 && buf_capacity(&s->tx) > 4096)
		buf_release(&s->tx);       /* do not keep a big buffer on an idle session */
	if (s->close_after_send) {
		smtp_session_flush(s);
		if (!s->send_armed && !s->closing) {
			s->closing = true;
			smtp_session_maybe_free(s);
		}
		return;
	}
	/* Output drained (or draining): run what waited, then read again. */
	smtp_session_progress(s);
}

void smtp_session_close_after_reply(struct smtp_session *s)
{
	if (s->closing)
		return;
	s->close_after_send = true;
	smtp_enter_state(s, SMTP_ST_CLOSING);
	smtp_session_flush(s);
	if (s->closing)
		return;
	if (!s->send_armed) {
		s->closing = true;
		smtp_session_maybe_free(s);
		return;
	}
	/* A client that never reads its last reply is not waited for forever. */
	timer_arm(&s->sh->timers, &s->timer, SMTP_LINGER_MS);
}

/* ---- lifecycle ---- */

static const char *const smtp_state_names[] = {
	"INIT", "READY", "MAIL", "RCPT", "DATA", "BDAT", "COMMIT", "TLS", "CLOSING",
};

const char *smtp_state_name(uint32_t st)
{
	for (unsigned i = 0; i < sizeof(smtp_state_names) / sizeof(smtp_state_names[0]); i++)
		if (st == 1u << i)
			return smtp_state_names[i];
	return "?";
}

void smtp_enter_state(struct smtp_session *s, enum smtp_state st)
{
	bool was_body = s->state & (SMTP_ST_DATA | SMTP_ST_BDAT);
	bool is_body = st & (SMTP_ST_DATA | SMTP_ST_BDAT);

	/* Sessions in the middle of a body will commit soon: the group commit waits for them
	 * (main.c), like PostgreSQL's commit_delay with commit_siblings. */
	s->sh->bodies_in_flight += (int)is_body - (int)was_body;
	if (s->state != 0)
		ctr_dec(&s->sh->ctr.sessions_in_state[__builtin_ctz(s->state) % SHARD_CTR_STATES]);
	ctr_inc(&s->sh->ctr.sessions_in_state[__builtin_ctz(st) % SHARD_CTR_STATES]);
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

/* The end of the loop step: nobody up the stack holds the session any more. */
static void smtp_session_reap(struct shard *sh, struct shard_deferred *d)
{
	struct smtp_session *s = (struct smtp_session *)((char *)d - offsetof(struct smtp_session, reap));

	if (s->inflight != 0)
		panic("%s: session reaped with %u operations in flight", s->id, s->inflight);
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
	s->ssl = NULL;
	buf_release(&s->out);
	buf_release(&s->tx);
	free(s->stash);
	free(s->helo);
	iplimit_release(s->iplimit_key);
	smtp_enter_state(s, SMTP_ST_CLOSING);   /* keeps bodies_in_flight right */
	ctr_dec(&sh->ctr.sessions_in_state[__builtin_ctz(SMTP_ST_CLOSING)]);
	s->state = 0;
	smtp_session_unlink(s);
	ctr_inc(&sh->ctr.conn_closed);
	pool_put(&sh->sessions, s);
}

/* A closing session: cancels what can be cancelled; once nothing is in flight, the free is
 * queued for the end of the loop step. Safe to call any number of times. */
static void smtp_session_maybe_free(struct smtp_session *s)
{
	struct shard *sh = s->sh;

	timer_cancel(&sh->timers, &s->timer);
	if (s->fd >= 0 && !s->cancel_sent && (s->recv_armed || s->send_armed)) {
		/* The socket's operations must come back before the fd goes; a send to a client that
		 * does not read would never come back on its own. */
		struct io_uring_sqe *sqe = shard_sqe(sh);

		io_uring_prep_cancel_fd(sqe, s->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, shard_ud(SHARD_OP_IGNORE, 0));
		s->cancel_sent = true;
	}
	if (s->inflight != 0)
		return;
	shard_defer(sh, &s->reap, smtp_session_reap);
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
	ctr_inc(&s->sh->ctr.cmd_errors);
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

	if (s->closing || s->close_after_send || s->greet_pending)
		return;
	if (s->deadline_ms < due)
		due = s->deadline_ms;
	timer_arm(&s->sh->timers, &s->timer, due > now ? due - now : 0);
}

static void smtp_session_greet(struct smtp_session *s)
{
	const struct node_config *conf = s->sh->conf;

	s->greet_pending = false;
	smtp_reply(s, 220, NULL, "%s %s", conf->hostname, conf->banner);
	smtp_session_arm_timer(s);
	smtp_session_flush(s);
}

static void smtp_session_timer_fire(struct timer *t)
{
	struct smtp_session *s = (struct smtp_session *)((char *)t - offsetof(struct smtp_session, timer));

	if (s->closing)
		return;
	if (s->close_after_send) {
		/* The last reply was never read. */
		smtp_session_abort(s, "client does not read its last reply");
		return;
	}
	if (s->recv_retry) {
		s->recv_retry = false;
		smtp_session_arm_timer(s);
		if (smtp_session_wants_input(s))
			smtp_session_arm_recv(s);
		return;
	}
	if (s->greet_pending) {
		/* Quiet through the pause: a well-behaved client. */
		smtp_session_greet(s);
		return;
	}
	ctr_inc(&s->sh->ctr.timeouts);
	if (s->commit_pending) {        /* never cut a session whose message is being written */
		timer_arm(&s->sh->timers, &s->timer, 1000);
		return;
	}
	log_info("%s: %s timeout in state %s from %s after %llu ms", s->id,
		 s->sh->now_ms >= s->deadline_ms ? "session" : "idle", smtp_state_name(s->state),
		 s->client_addr, (unsigned long long)(s->sh->now_ms - s->started_ms));
	if (s->state == SMTP_ST_TLS) {
		/* Mid-handshake there is no channel for a reply: a 421 in clear text would be read
		 * as a broken record by the client. Just close. */
		smtp_session_abort(s, NULL);
		return;
	}
	smtp_reply(s, 421, "4.4.2", "%s Error: timeout exceeded", s->sh->conf->hostname);
	smtp_session_close_after_reply(s);
}

/* The client's address as text (into ip, INET6_ADDRSTRLEN bytes; "?" if not IP) and its port. */
static uint16_t smtp_session_peer(const struct sockaddr_storage *peer, char *ip, size_t iplen)
{
	snprintf(ip, iplen, "?");
	if (peer->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)peer;

		inet_ntop(AF_INET, &a->sin_addr, ip, (socklen_t)iplen);
		return ntohs(a->sin_port);
	}
	if (peer->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)peer;

		inet_ntop(AF_INET6, &a->sin6_addr, ip, (socklen_t)iplen);
		return ntohs(a->sin6_port);
	}
	return 0;
}

/* Refusals before any session exists (a blocked source, the per-IP limit, a full pool): one
 * write on a fresh socket, whose send buffer is empty, so it cannot block. */
static void smtp_session_refuse(struct shard *sh, struct shard_listener *l, int fd,
				const struct sockaddr_storage *peer, unsigned code, const char *enh,
				const char *text)
{
	char ip[INET6_ADDRSTRLEN], line[256];
	uint16_t port = smtp_session_peer(peer, ip, sizeof(ip));
	int n;

	smtp_log_reject_connect(sh, ip, port, &sh->conf->listen[l->index], code, enh, text);
	n = snprintf(line, sizeof(line), "%u %s %s\r\n", code, enh, text);
	if (n > 0)
		(void)!write(fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
	close(fd);
}

void smtp_session_start(struct shard *sh, struct shard_listener *l, int fd,
			const struct sockaddr_storage *peer, socklen_t peerlen)
{
	const struct node_config *conf = sh->conf;
	const struct listen_conf *lc = &conf->listen[l->index];
	enum policy_connect pc;
	struct smtp_session *s;
	uint64_t ipkey, pause_ms;
	int one = 1;

	(void)peerlen;
	/* The node's own block list first: a blocked source costs no session and no banner. */
	pc = policy_connect_check(conf->default_policy, (const struct sockaddr *)peer);
	if (pc == POLICY_CONNECT_BLOCK) {
		ctr_inc(&sh->ctr.conn_refused_block);
		smtp_session_refuse(sh, l, fd, peer, 554, "5.7.1",
				    "Error: access denied for your address");
		return;
	}
	if (!iplimit_acquire(peer, conf->limits.conn_per_ip, &ipkey)) {
		ctr_inc(&sh->ctr.conn_refused_ip);
		smtp_session_refuse(sh, l, fd, peer, 421, "4.7.0",
				    "Error: too many connections from your address");
		return;
	}
	s = pool_get(&sh->sessions);
	if (s == NULL) {
		ctr_inc(&sh->ctr.conn_refused_pool);
		iplimit_release(ipkey);
		smtp_session_refuse(sh, l, fd, peer, 421, "4.3.2",
				    "Error: too many sessions, try again later");
		return;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	s->sh = sh;
	s->fd = fd;
	s->iplimit_key = ipkey;
	s->client_port = smtp_session_peer(peer, s->client_addr, sizeof(s->client_addr));
	s->lconf = *lc;
	s->role = lc->role;
	s->started_ms = sh->now_ms;
	s->deadline_ms = sh->now_ms + conf->limits.session_ms;
	snprintf(s->id, sizeof(s->id), "%02X%08X", sh->id & 0xff, ++smtp_session_serial);
	smtp_line_init(&s->line);
	timer_init(&s->timer, smtp_session_timer_fire);
	s->next = sh->session_list;
	if (s->next != NULL)
		s->next->prev = s;
	sh->session_list = s;
	ctr_inc(&sh->ctr.conn_accepted);
	ctr_inc(&sh->ctr.conn_by_role[s->role & 1]);
	log_debug("%s: connect from %s to %s (%s MX)", s->id, s->client_addr, lc->address,
		  listen_role_name(s->role));
	smtp_enter_state(s, SMTP_ST_INIT);
	if (sh->stopping) {
		smtp_reply(s, 421, "4.3.2", "%s Service shutting down", conf->hostname);
		smtp_session_close_after_reply(s);
		return;
	}
	/* postscreen's pre-greeting test: a client that talks before the 220 is a bot that does
	 * not wait for replies. Sources on the node's ip_allow skip it. */
	pause_ms = lc->greet_pause_ms >= 0 ? (uint64_t)lc->greet_pause_ms : conf->limits.greet_pause_ms;
	if (pause_ms > 0 && pc != POLICY_CONNECT_ALLOW) {
		s->greet_pending = true;
		timer_arm(&sh->timers, &s->timer, pause_ms);
	} else {
		smtp_session_greet(s);
	}
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

/* Keeps what the session could not run yet (it reads nothing more until that has run, so the
 * stash holds at most one read's worth). */
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

/* Runs commands and body bytes. Returns the bytes used: fewer than len when the session
 * suspended, started closing, or its output backed up. */
static size_t smtp_session_run(struct smtp_session *s, const uint8_t *p, size_t len)
{
	size_t off = 0;

	/* After a final reply (QUIT, 421) nothing more of the input is run. */
	while (off < len && !s->suspended && !s->closing && !s->close_after_send &&
	       !s->discard_rest && !smtp_session_out_blocked(s)) {
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
			if (s->line.overflow && s->line.discarded > SMTP_LINE_DISCARD_MAX) {
				/* A "line" that never ends: not SMTP; do not read it forever. */
				ctr_inc(&s->sh->ctr.proto_errors);
				smtp_reply(s, 500, "5.5.2", "Error: line too long");
				smtp_session_close_after_reply(s);
			}
			break;
		case SMTP_PARSE_DONE:
			off += used;
			smtp_cmd_dispatch(s, line);
			break;
		case SMTP_PARSE_TOOLONG:
			off += used;
			ctr_inc(&s->sh->ctr.proto_errors);
			smtp_reply(s, 500, "5.5.2", "Error: line too long");
			smtp_session_error(s);
			break;
		case SMTP_PARSE_BAD:
			off += used;
			ctr_inc(&s->sh->ctr.proto_errors);
			smtp_reply(s, 500, "5.5.2", "Error: bad character (bare CR or NUL) in command");
			smtp_session_error(s);
			break;
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

/* Feeds plaintext input; keeps what could not be run yet. */
static void smtp_session_input(struct smtp_session *s, const uint8_t *p, size_t len)
{
	size_t used;

	s->discard_rest = false;
	used = smtp_session_run(s, p, len);
	if (s->close_after_send || s->closing)
		return;              /* the rest is the input of a session that is over */
	if (s->discard_rest) {
		if (len > used)
			log_info("%s: discarded %zu bytes sent with STARTTLS (injection attempt)", s->id,
				 len - used);
		s->discard_rest = false;
		return;
	}
	if (used < len)
		smtp_session_keep(s, p + used, len - used);
}

/* Runs the stash (input that waited for the disk or for the output to drain). */
static void smtp_session_run_stash(struct smtp_session *s)
{
	while (s->stash != NULL && !s->suspended && !s->closing && !s->close_after_send &&
	       !smtp_session_out_blocked(s)) {
		uint8_t *st = s->stash;
		size_t pos = s->stash_pos, len = s->stash_len;

		/* Take it off the session first: running it may stash again. */
		s->stash = NULL;
		s->stash_len = s->stash_pos = 0;
		smtp_session_input(s, st + pos, len - pos);
		free(st);
	}
}

/* Decrypts what TLS has and runs it, until TLS wants more, the session suspends, or its output
 * backs up. */
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

			ctr_inc(&sh->ctr.tls_failures);
			tls_errors(why, sizeof(why));
			log_info("%s: TLS handshake failed from %s: %s", s->id, s->client_addr, why);
			/* The alert, if OpenSSL made one, then close; the caller still holds s. */
			smtp_session_close_after_reply(s);
			return;
		}
		ctr_inc(&sh->ctr.tls_handshakes);
		{
			int v = SSL_version(s->ssl);   /* TLS1_VERSION 0x301 .. TLS1_3_VERSION 0x304 */

			if (v >= TLS1_VERSION && v <= TLS1_3_VERSION)
				ctr_inc(&sh->ctr.tls_by_version[v - TLS1_VERSION]);
		}
		s->tls_active = true;
		/* RFC 3207 §4.2: forget everything learnt before TLS; the client starts over. */
		free(s->helo);
		s->helo = NULL;
		s->esmtp = false;
		smtp_enter_state(s, SMTP_ST_INIT);
		log_debug("%s: TLS established: %s %s", s->id, SSL_get_version(s->ssl),
			  SSL_get_cipher_name(s->ssl));
	}
	while (!s->suspended && !s->closing && !s->close_after_send && s->stash == NULL &&
	       !smtp_session_out_blocked(s)) {
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

/*
 * Makes what progress the session can, in order: the input it holds back first, then what TLS
 * has buffered, then sends the replies and reads again if it wants input. Every completion ends
 * here (or in a close), so nothing that was read ever waits for an event that is not coming.
 */
static void smtp_session_progress(struct smtp_session *s)
{
	if (s->closing) {
		smtp_session_maybe_free(s);
		return;
	}
	if (!s->greet_pending) {
		smtp_session_run_stash(s);
		if (s->ssl != NULL && s->stash == NULL && !s->closing)
			smtp_session_run_tls(s);
	}
	if (s->closing) {
		smtp_session_maybe_free(s);
		return;
	}
	smtp_session_flush(s);
	if (smtp_session_wants_input(s))
		smtp_session_arm_recv(s);
}

/* Input before our 220: the client does not wait for replies. Counted and logged, 554, close. */
static void smtp_session_early_talker(struct smtp_session *s, const uint8_t *p, size_t len)
{
	char shown[64];
	size_t n = 0;

	for (size_t i = 0; i < len && n + 4 < sizeof(shown); i++)
		shown[n++] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
	shown[n] = '\0';
	ctr_inc(&s->sh->ctr.early_talkers);
	s->greet_pending = false;
	log_info("%s: early talker from %s: %zu bytes %llu ms before the greeting: \"%s\"", s->id,
		 s->client_addr, len, (unsigned long long)(s->sh->now_ms - s->started_ms), shown);
	smtp_reply(s, 554, "5.5.1", "%s Error: SMTP protocol synchronization (talked before the "
		   "greeting)", s->sh->conf->hostname);
	smtp_session_close_after_reply(s);
}

static void smtp_session_on_recv(struct smtp_session *s, const struct io_uring_cqe *cqe)
{
	struct shard *sh = s->sh;
	int res = cqe->res;
	bool has_buf = cqe->flags & IORING_CQE_F_BUFFER;
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

	s->recv_armed = false;
	s->inflight--;
	if (has_buf && (s->closing || res <= 0)) {
		shard_buf_recycle(sh, bid);
		has_buf = false;
	}
	if (s->closing) {
		smtp_session_maybe_free(s);
		return;
	}
	if (!has_buf) {
		if (res == -ENOBUFS) {
			/* Every provided buffer is in use: try again on the next tick. */
			ctr_inc(&sh->ctr.recv_nobufs);
			s->recv_retry = true;
			timer_arm(&sh->timers, &s->timer, 1);
			return;
		}
		if (s->state & (SMTP_ST_DATA | SMTP_ST_BDAT))
			log_info("%s: client gone in the middle of a message", s->id);
		else if (res < 0 && res != -ECONNRESET)
			log_info("%s: recv: %s", s->id, strerror(-res));
		smtp_session_abort(s, NULL);
		return;
	}
	if (s->close_after_send) {
		/* Its last reply is queued: whatever it says now is not run. */
		shard_buf_recycle(sh, bid);
		return;
	}
	if (s->greet_pending) {
		smtp_session_early_talker(s, shard_buf(sh, bid), (size_t)res);
		shard_buf_recycle(sh, bid);
		return;
	}
	smtp_session_arm_timer(s);    /* any input, a command or a piece of body, is activity */
	if (s->ssl != NULL) {
		/* Ciphertext goes into OpenSSL's memory BIO; the buffer returns to the kernel now. */
		BIO_write(s->rbio, shard_buf(sh, bid), res);
		shard_buf_recycle(sh, bid);
	} else if (s->stash != NULL) {
		/* Input still waiting to run comes first (kept in order). */
		smtp_session_keep(s, shard_buf(sh, bid), (size_t)res);
		shard_buf_recycle(sh, bid);
	} else {
		smtp_session_input(s, shard_buf(sh, bid), (size_t)res);
		shard_buf_recycle(sh, bid);
	}
	smtp_session_progress(s);
}

void smtp_session_suspend(struct smtp_session *s)
{
	s->suspended = true;
}

void smtp_session_resume(struct smtp_session *s)
{
	s->suspended = false;
	smtp_session_progress(s);
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
		s->greet_pending = false;
		if ((s->state & (SMTP_ST_INIT | SMTP_ST_READY)) && !s->commit_pending &&
		    buf_unread(&s->out) == 0) {
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
		if (s->close_after_send) {
			/* Its last reply is still not read: the grace period is over. */
			smtp_session_abort(s, "shutting down");
			continue;
		}
		smtp_reply(s, 421, "4.3.2", "%s Service shutting down", sh->conf->hostname);
		smtp_session_close_after_reply(s);
	}
}

unsigned smtp_sessions_count(const struct shard *sh)
{
	return sh->sessions.live;
}
