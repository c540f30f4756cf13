/*
 * load_client.c - sluice-load's client sessions: the send mode (many sessions, each sending
 * messages: MAIL, RCPT..., DATA, body, "."; pipelined when asked and advertised (RFC 2920);
 * STARTTLS (RFC 3207) over memory BIOs) and the idle mode (connect, banner, EHLO, hold).
 *
 * One worker thread per call, with its own ring; sessions never leave their worker. Every
 * command sent pushes the reply it expects onto the session's queue, so pipelined and
 * lock-step sessions share one reply handler. Each session has at most one recv and one send in
 * flight; a slot is reused only when both have completed.
 *
 * Accounting: a message is claimed before its MAIL is sent and ends exactly once, as ok (2xx
 * after the final dot) or failed (any other reply, or the connection lost mid-transaction).
 */
#include <errno.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "load.h"

#define CL_IN_CAP   4096u
#define CL_RX_CAP   2048u
#define CL_OBUF_CAP 8192u
#define CL_MAX_RCPTS 100u

enum { OP_CONNECT = 1, OP_RECV, OP_SEND };

enum cl_state { CL_FREE, CL_CONNECTING, CL_OPEN, CL_HOLD, CL_CLOSING };

enum cl_expect { EX_BANNER, EX_EHLO, EX_STARTTLS, EX_MAIL, EX_RCPT, EX_DATA, EX_DOT, EX_RSET,
		 EX_QUIT };

static const uint8_t expect_stage[] = {
	[EX_BANNER] = LOAD_ST_BANNER, [EX_EHLO] = LOAD_ST_EHLO, [EX_STARTTLS] = LOAD_ST_STARTTLS,
	[EX_MAIL] = LOAD_ST_MAIL, [EX_RCPT] = LOAD_ST_RCPT, [EX_DATA] = LOAD_ST_DATA,
	[EX_DOT] = LOAD_ST_DOT, [EX_RSET] = LOAD_ST_RSET, [EX_QUIT] = LOAD_ST_QUIT,
};

struct cl_sess {
	int          fd;
	uint32_t     slot;
	uint8_t      state;
	uint8_t      inflight;
	bool         recv_on, send_on;
	bool         tls_hs, tls_on;      /* handshaking / established */
	bool         cap_pipelining, cap_starttls;
	bool         reconnect;           /* after close, open a new connection */
	bool         waiting;
	bool         in_txn;
	bool         txn_failed;
	bool         dot_in_flight;
	bool         opening;             /* idle: counted in cw->opening */
	uint16_t     src;                 /* source address index */
	/* the queue of replies we wait for */
	uint8_t      expq[CL_MAX_RCPTS + 8];
	unsigned     exp_head, exp_n;
	/* received plaintext, reply lines */
	char        *in;
	uint32_t     in_len;
	uint8_t     *rx;
	/* outgoing: staging iovecs (commands in obuf, the body from the shared corpus) */
	char        *obuf[2];
	unsigned     ocur;                /* obuf index being staged */
	size_t       olen;
	struct iovec siov[6];
	int          siovcnt;
	struct iovec fiov[6];             /* in flight */
	int          fiovcnt;
	struct msghdr mh;
	uint8_t     *tls_out;
	size_t       tls_out_cap;
	struct load_tls tls;
	/* the transaction */
	unsigned     msgs_conn;
	unsigned     rcpt_sent, rcpt_ok;
	uint64_t     seq;
	const struct load_body *body;
	char         msgid[128];
	unsigned     msgid_len;
	uint64_t     t_conn, t_open, t_dot, wake_ns;
};

struct cl_worker {
	struct load_worker *w;
	struct cl_sess     *s;
	unsigned            nsess;
	unsigned            active;       /* sessions not CL_FREE */
	uint32_t           *waitq;        /* slots waiting for a wake time */
	unsigned            nwait;
	uint64_t            started;      /* messages this worker started */
	uint64_t            seq;
	double              rate;         /* per worker, messages/s */
	uint64_t            t_end;        /* duration mode: no new message after this */
	uint64_t            t_kill;       /* force-close everything after this */
	uint64_t            t_open_end;   /* idle: stop opening after this */
	unsigned            to_open;      /* idle: connections still to open */
	unsigned            opening;      /* idle: connections not yet held */
	bool                idle_reported;
	unsigned            next_src;
	unsigned            fails_in_row; /* connect failures since the last success */
};

static void sess_close(struct cl_worker *cw, struct cl_sess *s);
static void sess_reap(struct cl_worker *cw, struct cl_sess *s);
static void next_message(struct cl_worker *cw, struct cl_sess *s);
static void start_conn(struct cl_worker *cw, struct cl_sess *s);

static const char dot_crlf[] = ".\r\n";

/* ---- output ---- */

static void stage(struct cl_sess *s, const void *p, size_t len)
{
	char *ob = s->obuf[s->ocur];

	if (s->olen + len > CL_OBUF_CAP) {
		fprintf(stderr, "sluice-load: command buffer overflow\n");
		abort();
	}
	memcpy(ob + s->olen, p, len);
	if (s->siovcnt > 0 && (char *)s->siov[s->siovcnt - 1].iov_base +
	    s->siov[s->siovcnt - 1].iov_len == ob + s->olen) {
		s->siov[s->siovcnt - 1].iov_len += len;
	} else {
		s->siov[s->siovcnt].iov_base = ob + s->olen;
		s->siov[s->siovcnt].iov_len = len;
		s->siovcnt++;
	}
	s->olen += len;
}

static void stage_ref(struct cl_sess *s, const void *p, size_t len)
{
	s->siov[s->siovcnt].iov_base = (void *)p;
	s->siov[s->siovcnt].iov_len = len;
	s->siovcnt++;
}

static void stagef(struct cl_sess *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void stagef(struct cl_sess *s, const char *fmt, ...)
{
	char tmp[600];
	va_list ap;

	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	stage(s, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

static void expect(struct cl_sess *s, enum cl_expect e)
{
	s->expq[(s->exp_head + s->exp_n) % sizeof(s->expq)] = (uint8_t)e;
	s->exp_n++;
}

static void post_send(struct cl_worker *cw, struct cl_sess *s)
{
	struct io_uring_sqe *sqe = load_ring_sqe(&cw->w->ring);

	memset(&s->mh, 0, sizeof(s->mh));
	s->mh.msg_iov = s->fiov;
	s->mh.msg_iovlen = (size_t)s->fiovcnt;
	io_uring_prep_sendmsg(sqe, s->fd, &s->mh, MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, LOAD_UD(s->slot, OP_SEND));
	s->send_on = true;
	s->inflight++;
}

/* TLS: sends what OpenSSL has written to the outgoing BIO. */
static void tls_kick(struct cl_worker *cw, struct cl_sess *s)
{
	size_t n;

	if (s->send_on || s->state == CL_CLOSING || (n = load_tls_pending_out(&s->tls)) == 0)
		return;
	if (n > s->tls_out_cap) {
		uint8_t *p = realloc(s->tls_out, n);
		if (p == NULL) {
			sess_close(cw, s);
			return;
		}
		s->tls_out = p;
		s->tls_out_cap = n;
	}
	n = load_tls_take_out(&s->tls, s->tls_out, s->tls_out_cap);
	s->fiov[0].iov_base = s->tls_out;
	s->fiov[0].iov_len = n;
	s->fiovcnt = 1;
	post_send(cw, s);
}

static void flush(struct cl_worker *cw, struct cl_sess *s)
{
	if (s->siovcnt == 0 || s->state == CL_CLOSING)
		return;
	if (s->tls_on) {
		for (int i = 0; i < s->siovcnt; i++) {
			if (SSL_write(s->tls.ssl, s->siov[i].iov_base, (int)s->siov[i].iov_len) <= 0) {
				cw->w->st.tls_failed++;
				sess_close(cw, s);
				return;
			}
		}
		s->siovcnt = 0;
		s->olen = 0;
		tls_kick(cw, s);
		return;
	}
	if (s->send_on)
		return;   /* goes out when the send in flight completes */
	memcpy(s->fiov, s->siov, sizeof(s->siov[0]) * (size_t)s->siovcnt);
	s->fiovcnt = s->siovcnt;
	s->siovcnt = 0;
	s->olen = 0;
	s->ocur ^= 1;   /* the in-flight iovecs still point into the other buffer */
	post_send(cw, s);
}

static void post_recv(struct cl_worker *cw, struct cl_sess *s)
{
	struct io_uring_sqe *sqe;

	if (s->recv_on || s->state == CL_CLOSING)
		return;
	sqe = load_ring_sqe(&cw->w->ring);
	io_uring_prep_recv(sqe, s->fd, s->rx, CL_RX_CAP, 0);
	io_uring_sqe_set_data64(sqe, LOAD_UD(s->slot, OP_RECV));
	s->recv_on = true;
	s->inflight++;
}

/* ---- accounting ---- */

static void count_reply(struct cl_worker *cw, enum load_stage st, int code)
{
	cw->w->st.replies[st][code >= 0 && code < 600 ? code : 0]++;
}

static void record(struct cl_worker *cw, struct cl_sess *s, int code)
{
	char c[8];

	if (cw->w->rec.fd < 0)
		return;
	snprintf(c, sizeof(c), "%03d", code);
	load_record_line(&cw->w->rec, s->msgid, s->msgid_len, c,
			 cw->w->run->o.record_hash ? s->body->sha256 : NULL);
}

static void msg_end(struct cl_worker *cw, struct cl_sess *s, bool ok, int code)
{
	struct load_stats *st = &cw->w->st;

	if (!s->in_txn)
		return;
	s->in_txn = false;
	if (ok) {
		st->msgs_ok++;
		st->bytes_ok += s->body->raw_len + s->msgid_len + 14;
	} else {
		st->msgs_failed++;
	}
	st->last_ns = load_now_ns();
	record(cw, s, code);
}

/* ---- the session ---- */

static bool work_left(struct cl_worker *cw)
{
	const struct load_opts *o = &cw->w->run->o;

	if (atomic_load(&cw->w->run->stop))
		return false;
	if (o->mode == LOAD_IDLE)
		return false;
	if (o->messages && atomic_load(&cw->w->run->claimed) >= o->messages)
		return false;
	if (o->duration > 0 && load_now_ns() >= cw->t_end)
		return false;
	return true;
}

static void send_quit(struct cl_worker *cw, struct cl_sess *s, bool reconnect)
{
	s->reconnect = reconnect;
	stage(s, "QUIT\r\n", 6);
	expect(s, EX_QUIT);
	flush(cw, s);
}

static void wait_until(struct cl_worker *cw, struct cl_sess *s, uint64_t when)
{
	s->wake_ns = when;
	if (!s->waiting) {
		s->waiting = true;
		cw->waitq[cw->nwait++] = s->slot;
	}
}

static void send_ehlo(struct cl_worker *cw, struct cl_sess *s)
{
	s->cap_pipelining = s->cap_starttls = false;
	stagef(s, "EHLO %s\r\n", cw->w->run->o.helo);
	expect(s, EX_EHLO);
	flush(cw, s);
}

static void send_rcpt(struct cl_worker *cw, struct cl_sess *s)
{
	const struct load_opts *o = &cw->w->run->o;

	stagef(s, "RCPT TO:<rcpt%u@%s>\r\n", s->rcpt_sent, o->rcpt_domain);
	s->rcpt_sent++;
	expect(s, EX_RCPT);
}

static void next_message(struct cl_worker *cw, struct cl_sess *s)
{
	const struct load_opts *o = &cw->w->run->o;
	struct load_run *run = cw->w->run;
	uint64_t now = load_now_ns();

	if (o->per_conn && s->msgs_conn >= o->per_conn) {
		send_quit(cw, s, work_left(cw));
		return;
	}
	if (!work_left(cw)) {
		send_quit(cw, s, false);
		return;
	}
	if (cw->rate > 0) {
		double allowed = (double)(now - run->t0_ns) * cw->rate / 1e9 + 1;
		if ((double)cw->started >= allowed) {
			wait_until(cw, s, run->t0_ns + (uint64_t)((double)cw->started * 1e9 / cw->rate));
			return;
		}
	}
	if (o->messages && atomic_fetch_add(&run->claimed, 1) >= o->messages) {
		send_quit(cw, s, false);
		return;
	}
	if (!o->messages)
		atomic_fetch_add(&run->claimed, 1);
	cw->started++;
	s->seq = cw->seq++;
	s->body = &run->bodies[(s->seq * 7919 + cw->w->id) % run->nbodies];
	s->msgid_len = (unsigned)snprintf(s->msgid, sizeof(s->msgid), "<%s.%u.%llu@sluice-load>",
					  o->id_prefix, cw->w->id, (unsigned long long)s->seq);
	s->in_txn = true;
	s->txn_failed = false;
	s->rcpt_sent = s->rcpt_ok = 0;
	s->msgs_conn++;
	stagef(s, "MAIL FROM:<%s>\r\n", o->from);
	expect(s, EX_MAIL);
	if (o->pipelining && s->cap_pipelining) {
		while (s->rcpt_sent < o->rcpts)
			send_rcpt(cw, s);
		stage(s, "DATA\r\n", 6);
		expect(s, EX_DATA);
	}
	flush(cw, s);
}

static void send_rset(struct cl_worker *cw, struct cl_sess *s)
{
	stage(s, "RSET\r\n", 6);
	expect(s, EX_RSET);
	flush(cw, s);
}

static void tls_begin(struct cl_worker *cw, struct cl_sess *s)
{
	if (load_tls_start(&s->tls, cw->w->run->tls_client, false) < 0) {
		cw->w->st.tls_failed++;
		sess_close(cw, s);
		return;
	}
	s->tls_hs = true;
	SSL_do_handshake(s->tls.ssl);
	tls_kick(cw, s);
}

/* A complete reply (the final line's code). */
static void on_reply(struct cl_worker *cw, struct cl_sess *s, int code)
{
	const struct load_opts *o = &cw->w->run->o;
	struct load_stats *st = &cw->w->st;
	enum cl_expect e;

	if (s->exp_n == 0) {
		st->protocol_errors++;
		sess_close(cw, s);
		return;
	}
	e = s->expq[s->exp_head];
	s->exp_head = (s->exp_head + 1) % sizeof(s->expq);
	s->exp_n--;
	if (code == 421 && e != EX_QUIT) {
		/* The server is closing: everything queued is lost. */
		count_reply(cw, expect_stage[e], code);
		msg_end(cw, s, false, code);
		s->reconnect = work_left(cw);
		sess_close(cw, s);
		return;
	}
	switch (e) {
	case EX_BANNER:
		load_samples_add(&st->lat[LOAD_LAT_BANNER], load_now_ns() - s->t_open);
		if (code != 220) {
			count_reply(cw, LOAD_ST_BANNER, code);
			send_quit(cw, s, false);
			return;
		}
		send_ehlo(cw, s);
		return;
	case EX_EHLO:
		if (code != 250) {
			count_reply(cw, LOAD_ST_EHLO, code);
			send_quit(cw, s, false);
			return;
		}
		if (o->starttls && !s->tls_on) {
			if (!s->cap_starttls) {
				count_reply(cw, LOAD_ST_STARTTLS, 0);
				st->tls_failed++;
				send_quit(cw, s, false);
				return;
			}
			stage(s, "STARTTLS\r\n", 10);
			expect(s, EX_STARTTLS);
			flush(cw, s);
			return;
		}
		if (o->mode == LOAD_IDLE) {
			s->state = CL_HOLD;
			st->idle_held++;
			atomic_fetch_add(&cw->w->run->idle_ready, 1);
			s->opening = false;
			cw->opening--;
			return;
		}
		next_message(cw, s);
		return;
	case EX_STARTTLS:
		if (code != 220) {
			count_reply(cw, LOAD_ST_STARTTLS, code);
			st->tls_failed++;
			send_quit(cw, s, false);
			return;
		}
		tls_begin(cw, s);   /* parse_replies drops what followed the 220 (RFC 3207 §4) */
		return;
	case EX_MAIL:
		if (code / 100 != 2) {
			count_reply(cw, LOAD_ST_MAIL, code);
			s->txn_failed = true;
			if (!(o->pipelining && s->cap_pipelining)) {
				msg_end(cw, s, false, code);
				send_rset(cw, s);
			}
			return;
		}
		if (!(o->pipelining && s->cap_pipelining)) {
			send_rcpt(cw, s);
			flush(cw, s);
		}
		return;
	case EX_RCPT:
		if (code / 100 == 2) {
			s->rcpt_ok++;
			st->rcpts_ok++;
		} else {
			count_reply(cw, LOAD_ST_RCPT, code);
			st->rcpts_failed++;
		}
		if (!(o->pipelining && s->cap_pipelining)) {
			if (s->rcpt_sent < o->rcpts) {
				send_rcpt(cw, s);
			} else if (s->rcpt_ok > 0) {
				stage(s, "DATA\r\n", 6);
				expect(s, EX_DATA);
			} else {
				msg_end(cw, s, false, code);
				send_rset(cw, s);
				return;
			}
			flush(cw, s);
		}
		return;
	case EX_DATA:
		if (code != 354) {
			count_reply(cw, LOAD_ST_DATA, code);
			msg_end(cw, s, false, code);
			send_rset(cw, s);
			return;
		}
		stage(s, "Message-ID: ", 12);
		stage(s, s->msgid, s->msgid_len);
		stage(s, "\r\n", 2);
		stage_ref(s, s->body->wire, s->body->len);
		stage_ref(s, dot_crlf, 3);
		expect(s, EX_DOT);
		s->t_dot = 0;
		s->dot_in_flight = true;
		flush(cw, s);
		return;
	case EX_DOT:
		load_samples_add(&st->lat[LOAD_LAT_DATA], load_now_ns() - (s->t_dot ? s->t_dot : load_now_ns()));
		if (code / 100 != 2)
			count_reply(cw, LOAD_ST_DOT, code);
		msg_end(cw, s, code / 100 == 2, code);
		next_message(cw, s);
		return;
	case EX_RSET:
		if (code / 100 != 2) {
			count_reply(cw, LOAD_ST_RSET, code);
			send_quit(cw, s, work_left(cw));
			return;
		}
		next_message(cw, s);
		return;
	case EX_QUIT:
		if (code != 221)
			count_reply(cw, LOAD_ST_QUIT, code);
		sess_close(cw, s);
		return;
	}
}

/* Splits s->in into reply lines; handles each complete reply. */
static void parse_replies(struct cl_worker *cw, struct cl_sess *s)
{
	size_t off = 0;

	while (s->state != CL_CLOSING) {
		char *nl = memchr(s->in + off, '\n', s->in_len - off);
		if (nl == NULL)
			break;
		char *line = s->in + off;
		size_t len = (size_t)(nl - line);
		off += len + 1;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len < 3 || line[0] < '1' || line[0] > '5' || line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9' || (len > 3 && line[3] != ' ' && line[3] != '-')) {
			cw->w->st.protocol_errors++;
			sess_close(cw, s);
			return;
		}
		int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
		if (len > 4) {
			if (len - 4 >= 10 && strncasecmp(line + 4, "PIPELINING", 10) == 0)
				s->cap_pipelining = true;
			if (len - 4 >= 8 && strncasecmp(line + 4, "STARTTLS", 8) == 0)
				s->cap_starttls = true;
		}
		if (len > 3 && line[3] == '-')
			continue;
		on_reply(cw, s, code);
		if (s->tls_hs) {
			off = s->in_len;   /* plaintext after the 220 to STARTTLS is not trusted */
			break;
		}
	}
	if (s->state == CL_CLOSING)
		return;
	memmove(s->in, s->in + off, s->in_len - off);
	s->in_len -= (uint32_t)off;
	if (s->in_len >= CL_IN_CAP - 1) {
		cw->w->st.protocol_errors++;   /* a reply line longer than we take */
		sess_close(cw, s);
	}
}

static void on_recv(struct cl_worker *cw, struct cl_sess *s, int res)
{
	s->recv_on = false;
	if (s->state == CL_CLOSING)
		return;
	if (res <= 0) {
		/* EOF or error outside a QUIT: the server went away. */
		if (!(s->exp_n > 0 && s->expq[s->exp_head] == EX_QUIT)) {
			cw->w->st.conns_closed_early++;
			msg_end(cw, s, false, 0);
			s->reconnect = work_left(cw);
		}
		sess_close(cw, s);
		return;
	}
	if (s->tls_hs || s->tls_on) {
		load_tls_feed(&s->tls, s->rx, (size_t)res);
		if (s->tls_hs) {
			int r = SSL_do_handshake(s->tls.ssl);
			if (r == 1) {
				s->tls_hs = false;
				s->tls_on = true;
				cw->w->st.tls_ok++;
				tls_kick(cw, s);
				send_ehlo(cw, s);
			} else {
				int e = SSL_get_error(s->tls.ssl, r);
				if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
					cw->w->st.tls_failed++;
					count_reply(cw, LOAD_ST_TLS, 0);
					sess_close(cw, s);
					return;
				}
				tls_kick(cw, s);
			}
		}
		if (s->tls_on) {
			for (;;) {
				int n = SSL_read(s->tls.ssl, s->in + s->in_len, (int)(CL_IN_CAP - 1 - s->in_len));
				if (n <= 0)
					break;
				s->in_len += (uint32_t)n;
				parse_replies(cw, s);
				if (s->state == CL_CLOSING)
					return;
			}
			tls_kick(cw, s);
		}
	} else {
		size_t n = (size_t)res;
		if (n > CL_IN_CAP - 1 - s->in_len) {
			cw->w->st.protocol_errors++;
			sess_close(cw, s);
			return;
		}
		memcpy(s->in + s->in_len, s->rx, n);
		s->in_len += (uint32_t)n;
		parse_replies(cw, s);
	}
	post_recv(cw, s);
}

static void on_send(struct cl_worker *cw, struct cl_sess *s, int res)
{
	s->send_on = false;
	if (s->state == CL_CLOSING)
		return;
	if (res < 0) {
		cw->w->st.conns_closed_early++;
		msg_end(cw, s, false, 0);
		s->reconnect = work_left(cw);
		sess_close(cw, s);
		return;
	}
	/* Short send: advance and send the rest. */
	size_t n = (size_t)res;
	int i = 0;
	while (i < s->fiovcnt && n >= s->fiov[i].iov_len)
		n -= s->fiov[i++].iov_len;
	if (i < s->fiovcnt) {
		s->fiov[i].iov_base = (char *)s->fiov[i].iov_base + n;
		s->fiov[i].iov_len -= n;
		memmove(s->fiov, s->fiov + i, sizeof(s->fiov[0]) * (size_t)(s->fiovcnt - i));
		s->fiovcnt -= i;
		post_send(cw, s);
		return;
	}
	s->fiovcnt = 0;
	if (s->tls_hs || s->tls_on) {
		tls_kick(cw, s);
		if (!s->send_on && s->dot_in_flight) {
			s->dot_in_flight = false;
			s->t_dot = load_now_ns();
		}
		return;
	}
	if (s->dot_in_flight) {
		s->dot_in_flight = false;
		s->t_dot = load_now_ns();
	}
	flush(cw, s);
}

static void on_connect(struct cl_worker *cw, struct cl_sess *s, int res)
{
	struct load_stats *st = &cw->w->st;
	uint64_t now = load_now_ns();

	if (s->state == CL_CLOSING)
		return;
	if (res < 0) {
		st->conns_failed++;
		count_reply(cw, LOAD_ST_CONNECT, 0);
		/* 200 failures in a row (10 ms apart): the server is gone; end the run. */
		if (++cw->fails_in_row > 200 && !atomic_load(&cw->w->run->stop)) {
			fprintf(stderr, "sluice-load: cannot connect to %s: %s\n",
				cw->w->run->o.server.text, strerror(-res));
			atomic_store(&cw->w->run->stop, true);
			cw->w->err = res;
		}
		s->reconnect = cw->w->run->o.mode == LOAD_IDLE ? false : work_left(cw);
		s->wake_ns = now + 10 * 1000000ull;   /* back off a little before trying again */
		sess_close(cw, s);
		return;
	}
	st->conns_ok++;
	cw->fails_in_row = 0;
	if (st->first_ns == 0)
		st->first_ns = now;
	load_samples_add(&st->lat[LOAD_LAT_CONNECT], now - s->t_conn);
	s->t_open = now;
	s->state = CL_OPEN;
	expect(s, EX_BANNER);
	post_recv(cw, s);
}

static void start_conn(struct cl_worker *cw, struct cl_sess *s)
{
	const struct load_opts *o = &cw->w->run->o;
	int one = 1;

	s->fd = socket(o->server.sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		fprintf(stderr, "sluice-load: socket: %s\n", strerror(errno));
		cw->w->st.conns_failed++;
		s->state = CL_FREE;
		cw->active--;
		if (s->opening) {
			s->opening = false;
			cw->opening--;
		}
		return;
	}
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (o->nsources > 0) {
		const struct load_addr *src = &o->sources[cw->next_src++ % o->nsources];
		/* Pick the port at connect time, per source address: 8 sources give 8 times the
		 * ephemeral ports of one. */
		setsockopt(s->fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(s->fd, (const struct sockaddr *)&src->sa, src->len) < 0)
			fprintf(stderr, "sluice-load: bind %s: %s\n", src->text, strerror(errno));
	}
	s->state = CL_CONNECTING;
	s->exp_head = s->exp_n = 0;
	s->in_len = 0;
	s->siovcnt = s->fiovcnt = 0;
	s->olen = 0;
	s->msgs_conn = 0;
	s->tls_on = s->tls_hs = false;
	s->reconnect = false;
	s->in_txn = false;
	s->dot_in_flight = false;
	s->t_conn = load_now_ns();
	struct io_uring_sqe *sqe = load_ring_sqe(&cw->w->ring);
	io_uring_prep_connect(sqe, s->fd, (const struct sockaddr *)&o->server.sa, o->server.len);
	io_uring_sqe_set_data64(sqe, LOAD_UD(s->slot, OP_CONNECT));
	s->inflight++;
}

/* Ends the connection. Only marks it: the slot is recycled by sess_reap, which the event loop
 * calls once the handler that closed it has returned (so no handler ever sees its session
 * reopened under it). */
static void sess_close(struct cl_worker *cw, struct cl_sess *s)
{
	if (s->state == CL_FREE || s->state == CL_CLOSING)
		return;
	msg_end(cw, s, false, 0);
	s->state = CL_CLOSING;
	if (s->fd >= 0)
		shutdown(s->fd, SHUT_RDWR);
}

/* Recycles a closing session once none of its operations is in flight: reconnects it if there
 * is work left, else frees the slot. */
static void sess_reap(struct cl_worker *cw, struct cl_sess *s)
{
	if (s->state != CL_CLOSING || s->inflight > 0)
		return;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	load_tls_free(&s->tls);
	s->tls_on = s->tls_hs = false;
	if (s->opening) {
		s->opening = false;
		cw->opening--;
	}
	if (s->waiting && !(s->reconnect && work_left(cw) && s->wake_ns > load_now_ns())) {
		/* Off the wait list: a closed slot must not be woken. */
		for (unsigned i = 0; i < cw->nwait; i++)
			if (cw->waitq[i] == s->slot) {
				cw->waitq[i] = cw->waitq[--cw->nwait];
				break;
			}
		s->waiting = false;
	}
	if (s->reconnect && work_left(cw)) {
		if (s->wake_ns > load_now_ns()) {
			s->state = CL_FREE;   /* keeps its place in active: restarts on wake */
			wait_until(cw, s, s->wake_ns);
			return;
		}
		start_conn(cw, s);
		return;
	}
	s->state = CL_FREE;
	cw->active--;
}

static void on_cqe(struct cl_worker *cw, struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	struct cl_sess *s = &cw->s[LOAD_UD_SLOT(ud)];

	s->inflight--;
	switch (LOAD_UD_OP(ud)) {
	case OP_CONNECT:
		on_connect(cw, s, cqe->res);
		break;
	case OP_RECV:
		on_recv(cw, s, cqe->res);
		break;
	case OP_SEND:
		on_send(cw, s, cqe->res);
		break;
	}
	sess_reap(cw, s);
}

static void run_waiters(struct cl_worker *cw, uint64_t now)
{
	unsigned n = cw->nwait;

	cw->nwait = 0;
	for (unsigned i = 0; i < n; i++) {
		struct cl_sess *s = &cw->s[cw->waitq[i]];
		if (s->wake_ns > now && !atomic_load(&cw->w->run->stop)) {
			cw->waitq[cw->nwait++] = s->slot;
			continue;
		}
		s->waiting = false;
		if (s->state == CL_FREE) {
			/* a reconnect after a back-off */
			if (work_left(cw))
				start_conn(cw, s);
			else
				cw->active--;
		} else if (s->state == CL_OPEN) {
			next_message(cw, s);
			sess_reap(cw, s);
		}
	}
}

static uint64_t next_wake(const struct cl_worker *cw)
{
	uint64_t w = UINT64_MAX;

	for (unsigned i = 0; i < cw->nwait; i++)
		if (cw->s[cw->waitq[i]].wake_ns < w)
			w = cw->s[cw->waitq[i]].wake_ns;
	return w;
}

/* Idle mode: opens up to `concurrency` connections at a time until all are open or failed. */
static void idle_open_more(struct cl_worker *cw)
{
	const struct load_opts *o = &cw->w->run->o;

	while (cw->to_open > 0 && cw->opening < o->concurrency && !atomic_load(&cw->w->run->stop)) {
		struct cl_sess *s = &cw->s[cw->nsess - cw->to_open];
		cw->to_open--;
		cw->opening++;
		s->opening = true;
		cw->active++;
		start_conn(cw, s);
	}
}

int load_client_run(struct load_worker *w)
{
	struct load_run *run = w->run;
	const struct load_opts *o = &run->o;
	struct cl_worker cw = { .w = w };
	unsigned share;
	int err;

	if (o->mode == LOAD_IDLE) {
		share = o->connections / o->threads + (w->id < o->connections % o->threads);
	} else {
		share = o->concurrency / o->threads + (w->id < o->concurrency % o->threads);
	}
	if ((err = load_ring_init(&w->ring, 2048, &run->ring_flags)) < 0) {
		fprintf(stderr, "sluice-load: io_uring: %s\n", strerror(-err));
		return err;
	}
	cw.nsess = share;
	cw.s = calloc(share ? share : 1, sizeof(*cw.s));
	cw.waitq = calloc(share ? share : 1, sizeof(*cw.waitq));
	if (cw.s == NULL || cw.waitq == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < share; i++) {
		struct cl_sess *s = &cw.s[i];
		char *mem = malloc(CL_IN_CAP + CL_RX_CAP + (o->mode == LOAD_SEND ? 2 * CL_OBUF_CAP : 2 * 512));
		if (mem == NULL)
			return -ENOMEM;
		s->slot = i;
		s->fd = -1;
		s->in = mem;
		s->rx = (uint8_t *)mem + CL_IN_CAP;
		s->obuf[0] = mem + CL_IN_CAP + CL_RX_CAP;
		s->obuf[1] = s->obuf[0] + (o->mode == LOAD_SEND ? CL_OBUF_CAP : 512);
	}
	cw.rate = o->rate > 0 ? o->rate / o->threads : 0;
	cw.next_src = w->id;
	cw.t_end = o->duration > 0 ? run->t0_ns + (uint64_t)(o->duration * 1e9) : UINT64_MAX;
	cw.t_kill = UINT64_MAX;
	cw.t_open_end = run->t0_ns + (uint64_t)(o->open_timeout * 1e9);
	if (o->mode == LOAD_IDLE) {
		cw.to_open = share;
		idle_open_more(&cw);
	} else {
		for (unsigned i = 0; i < share; i++) {
			cw.active++;
			start_conn(&cw, &cw.s[i]);
		}
	}

	bool quitting = false;
	while (cw.active > 0) {
		uint64_t now = load_now_ns();
		struct io_uring_cqe *cqe;
		unsigned head, count = 0;

		if (o->mode == LOAD_IDLE) {
			if (!cw.idle_reported && now >= cw.t_open_end) {
				/* Opening took too long (a server that stops accepting or answering):
				 * give up on what is not held yet and hold the rest. */
				cw.to_open = 0;
				for (unsigned i = 0; i < cw.nsess; i++)
					if (cw.s[i].opening) {
						cw.w->st.conns_failed++;
						sess_close(&cw, &cw.s[i]);
						sess_reap(&cw, &cw.s[i]);
					}
			}
			idle_open_more(&cw);
			if (cw.to_open == 0 && cw.opening == 0 && !cw.idle_reported) {
				cw.idle_reported = true;
				atomic_fetch_add(&run->idle_done, 1);
			}
			if (atomic_load(&run->stop) && !quitting) {
				/* The hold is over: say goodbye on every held connection. */
				quitting = true;
				for (unsigned i = 0; i < cw.nsess; i++)
					if (cw.s[i].state == CL_HOLD) {
						cw.s[i].state = CL_OPEN;
						send_quit(&cw, &cw.s[i], false);
						sess_reap(&cw, &cw.s[i]);
					}
			}
		}
		if (cw.t_kill == UINT64_MAX && (atomic_load(&run->stop) || now >= cw.t_end ||
		    (o->messages && atomic_load(&run->claimed) >= o->messages)))
			cw.t_kill = now + (uint64_t)(o->drain_timeout * 1e9);
		if (now >= cw.t_kill) {
			/* Drain time is over: whatever is still open is failed. */
			for (unsigned i = 0; i < cw.nsess; i++) {
				struct cl_sess *s = &cw.s[i];
				s->reconnect = false;
				if (s->state != CL_FREE && s->state != CL_CLOSING)
					sess_close(&cw, s);
				sess_reap(&cw, s);
			}
			cw.t_kill = UINT64_MAX - 1;
		}
		if (cw.nwait)
			run_waiters(&cw, now);
		if (cw.active == 0)
			break;

		uint64_t wake = next_wake(&cw), wait_ns = 50 * 1000000ull;
		if (wake != UINT64_MAX)
			wait_ns = wake > now ? (wake - now < wait_ns ? wake - now : wait_ns) : 0;
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = (long long)wait_ns };
		if (wait_ns == 0)
			io_uring_submit_and_get_events(&w->ring);
		else
			io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
		io_uring_for_each_cqe(&w->ring, head, cqe) {
			on_cqe(&cw, cqe);
			count++;
		}
		io_uring_cq_advance(&w->ring, count);
		load_record_flush(&w->rec);
	}
	load_record_flush(&w->rec);
	for (unsigned i = 0; i < cw.nsess; i++) {
		free(cw.s[i].in);
		free(cw.s[i].tls_out);
	}
	free(cw.s);
	free(cw.waitq);
	io_uring_queue_exit(&w->ring);
	return w->err;
}
