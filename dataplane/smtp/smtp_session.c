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

#define SMTP_OUT_HIGH (32u * 1024u)   /* run and read nothing more while this much output waits */
#define SMTP_LINGER_MS 10000u         /* a client that never reads its last reply */

static uint32_t smtp_session_serial;   /* per thread would be nicer; ids carry the shard id */

static void smtp_session_maybe_free(struct smtp_session *s);
static const struct conn_ops smtp_session_conn_ops;

static inline struct smtp_session *smtp_session_of(struct conn *c)
{
	return CONN_OWNER(c, struct smtp_session, conn);
}

/* ---- output ---- */

void smtp_session_out(struct smtp_session *s, const void *p, size_t len)
{
	if (s->closing)
		return;
	if (conn_write(&s->conn, p, len) < 0)
		smtp_session_abort(s, "out of memory for replies");
}

/* A client pipelining faster than it reads: run nothing more until the replies drain. */
static bool smtp_session_out_blocked(const struct smtp_session *s)
{
	return conn_pending(&s->conn) >= SMTP_OUT_HIGH;
}

/* Whether to read more input now: only when all that was read has run. */
static bool smtp_session_wants_input(const struct smtp_session *s)
{
	return !s->closing && !s->close_after_send && !s->suspended &&
	       buf_unread(&s->stash) == 0 && !smtp_session_out_blocked(s);
}

void smtp_session_flush(struct smtp_session *s)
{
	if (s->closing)
		return;
	if (conn_flush(&s->conn) < 0)
		smtp_session_abort(s, "cannot stage output");
}

static void smtp_session_progress(struct smtp_session *s);

static void smtp_session_on_sent(struct conn *c, int err)
{
	struct smtp_session *s = smtp_session_of(c);

	if (err < 0) {
		log_info("%s: send failed (%s): client gone", s->id, strerror(-err));
		smtp_session_abort(s, NULL);
		return;
	}
	conn_shrink(&s->conn);       /* do not keep a big buffer on an idle session */
	if (s->close_after_send) {
		smtp_session_flush(s);
		if (!s->conn.send_armed && !s->closing) {
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
	if (!s->conn.send_armed) {
		s->closing = true;
		smtp_session_maybe_free(s);
		return;
	}
	/* A client that never reads its last reply is not waited for forever. */
	conn_deadline_in(&s->conn, SMTP_LINGER_MS);
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
		panic("%s: session reaped with its commit in flight", s->id);
	conn_fini(&s->conn);
	smtp_txn_reset(s);
	if (s->txn != NULL) {
		arena_destroy(&s->txn->arena);
		free(s->txn);
		s->txn = NULL;
	}
	buf_release(&s->stash);
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
	conn_close(&s->conn);
	if (s->inflight != 0 || conn_busy(&s->conn))
		return;
	shard_defer(s->sh, &s->reap, smtp_session_reap);
}

/* The conn's last completion came in (the session was closing). */
static void smtp_session_on_quiet(struct conn *c)
{
	smtp_session_maybe_free(smtp_session_of(c));
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
	conn_deadline_in(&s->conn, due > now ? due - now : 0);
}

static void smtp_session_greet(struct smtp_session *s)
{
	const struct node_config *conf = s->sh->conf;

	s->greet_pending = false;
	smtp_reply(s, 220, NULL, "%s %s", conf->hostname, conf->banner);
	smtp_session_arm_timer(s);
	smtp_session_flush(s);
}

static void smtp_session_on_deadline(struct conn *c)
{
	struct smtp_session *s = smtp_session_of(c);

	if (s->closing)
		return;
	if (s->close_after_send) {
		/* The last reply was never read. */
		smtp_session_abort(s, "client does not read its last reply");
		return;
	}
	if (s->greet_pending) {
		/* Quiet through the pause: a well-behaved client. */
		smtp_session_greet(s);
		return;
	}
	ctr_inc(&s->sh->ctr.timeouts);
	if (s->commit_pending) {        /* never cut a session whose message is being written */
		conn_deadline_in(&s->conn, 1000);
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
	s->sh = sh;
	conn_init(&s->conn, sh, &smtp_session_conn_ops);
	conn_attach(&s->conn, fd);
	s->iplimit_key = ipkey;
	s->client_port = smtp_session_peer(peer, s->client_addr, sizeof(s->client_addr));
	s->lconf = *lc;
	s->role = lc->role;
	s->started_ms = sh->now_ms;
	s->deadline_ms = sh->now_ms + conf->limits.session_ms;
	snprintf(s->id, sizeof(s->id), "%02X%08X", sh->id & 0xff, ++smtp_session_serial);
	smtp_line_init(&s->line);
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
		conn_deadline_in(&s->conn, pause_ms);
	} else {
		smtp_session_greet(s);
	}
	conn_recv(&s->conn);
}

/* ---- input ---- */

/* Keeps what the session could not run yet (it reads nothing more until that has run, so the
 * stash holds at most one read's worth). */
static void smtp_session_keep(struct smtp_session *s, const uint8_t *p, size_t len)
{
	if (buf_append(&s->stash, p, len) < 0)
		smtp_session_abort(s, "out of memory for pipelined input");
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
	buf_release(&s->stash);
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
	while (buf_unread(&s->stash) > 0 && !s->suspended && !s->closing && !s->close_after_send &&
	       !smtp_session_out_blocked(s)) {
		struct buf st = s->stash;

		/* Take it off the session first: running it may stash again. */
		s->stash = (struct buf){ 0 };
		smtp_session_input(s, st.pos, buf_unread(&st));
		buf_release(&st);
	}
}

/* Decrypts what TLS has and runs it, until TLS wants more, the session suspends, or its output
 * backs up. */
static void smtp_session_run_tls(struct smtp_session *s)
{
	struct shard *sh = s->sh;

	if (s->state == SMTP_ST_TLS) {
		int r = conn_tls_handshake(&s->conn);

		if (r == 0)
			return;
		if (r < 0) {
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
			int v = conn_tls_version_id(&s->conn);   /* TLS1_VERSION 0x301 .. TLS1_3_VERSION 0x304 */

			if (v >= TLS1_VERSION && v <= TLS1_3_VERSION)
				ctr_inc(&sh->ctr.tls_by_version[v - TLS1_VERSION]);
		}
		s->tls_active = true;
		/* RFC 3207 §4.2: forget everything learnt before TLS; the client starts over. */
		free(s->helo);
		s->helo = NULL;
		s->esmtp = false;
		smtp_enter_state(s, SMTP_ST_INIT);
		log_debug("%s: TLS established: %s %s", s->id, conn_tls_version(&s->conn),
			  conn_tls_cipher(&s->conn));
	}
	while (!s->suspended && !s->closing && !s->close_after_send &&
	       buf_unread(&s->stash) == 0 && !smtp_session_out_blocked(s)) {
		int n = conn_tls_read(&s->conn, sh->scratch, SHARD_BUF_SIZE);

		if (n <= 0) {
			if (n == 0)
				break;
			if (n == -ECONNRESET) {
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
		if (s->conn.ssl != NULL && buf_unread(&s->stash) == 0 && !s->closing)
			smtp_session_run_tls(s);
	}
	if (s->closing) {
		smtp_session_maybe_free(s);
		return;
	}
	smtp_session_flush(s);
	if (smtp_session_wants_input(s))
		conn_recv(&s->conn);
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

/* The stream ended (0: the client closed) or broke. */
static void smtp_session_on_input_end(struct conn *c, int err)
{
	struct smtp_session *s = smtp_session_of(c);

	if (s->state & (SMTP_ST_DATA | SMTP_ST_BDAT))
		log_info("%s: client gone in the middle of a message", s->id);
	else if (err < 0 && err != -ECONNRESET)
		log_info("%s: recv: %s", s->id, strerror(-err));
	smtp_session_abort(s, NULL);
}

/* Bytes came in (p NULL: ciphertext, already in the TLS read BIO). */
static void smtp_session_on_input(struct conn *c, const uint8_t *p, size_t len)
{
	struct smtp_session *s = smtp_session_of(c);

	if (s->close_after_send)
		return;     /* its last reply is queued: whatever it says now is not run */
	if (s->greet_pending) {
		smtp_session_early_talker(s, p, len);   /* no TLS before the greeting: p is set */
		return;
	}
	smtp_session_arm_timer(s);    /* any input, a command or a piece of body, is activity */
	/* With TLS (p NULL), smtp_session_progress decrypts and runs it. */
	if (p != NULL && buf_unread(&s->stash) > 0)
		smtp_session_keep(s, p, len);   /* input still waiting to run comes first (in order) */
	else if (p != NULL)
		smtp_session_input(s, p, len);
	smtp_session_progress(s);
}

/* No receive buffer was free a tick ago: read again if the session still wants input. */
static void smtp_session_on_recv_retry(struct conn *c)
{
	struct smtp_session *s = smtp_session_of(c);

	if (smtp_session_wants_input(s))
		conn_recv(&s->conn);
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

static const struct conn_ops smtp_session_conn_ops = {
	.input = smtp_session_on_input,
	.input_end = smtp_session_on_input_end,
	.sent = smtp_session_on_sent,
	.deadline = smtp_session_on_deadline,
	.recv_retry = smtp_session_on_recv_retry,
	.quiet = smtp_session_on_quiet,
};

void smtp_session_setup(void)
{
	conn_setup();
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
		    buf_unread(&s->conn.out) == 0) {
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
