/*
 * delivery_client.h - the outbound SMTP protocol engine (RFC 5321) as a pure state machine: it
 * does no I/O. It takes the server's bytes, and says what to do next: write the bytes it has
 * queued, wait for a reply (with which timeout), do the TLS handshake, hand it body bytes, or that
 * a message or the connection is finished. The caller owns the socket, TLS and timers (the shard's
 * io_uring loop, or a blocking driver in the tests).
 *
 * What it speaks: the banner; EHLO, and HELO when EHLO gets a 5xx; the EHLO keywords PIPELINING
 * (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152), STARTTLS (RFC 3207), SMTPUTF8 (RFC 6531),
 * CHUNKING (RFC 3030: noted, not used: DATA does the job), ENHANCEDSTATUSCODES (RFC 2034);
 * STARTTLS then EHLO again; one transaction per message for all its recipients, with MAIL, every
 * RCPT and DATA in one write when the server pipelines; per-recipient results; DATA only when a
 * recipient was accepted (with PIPELINING, DATA went already: a 354 then gets an empty body, RFC
 * 2920 3.1); the body through delivery_body (CR LF, dot-stuffing); RSET before each further
 * message on the same connection; QUIT.
 *
 * Rules kept from Postfix's smtp(8):
 *   - a message whose body is 8-bit goes with BODY=8BITMIME when offered, and is sent anyway when
 *     not (noted in eightbit_downgrade; Postfix does the same, RFC 6152 leaves it to us);
 *   - a message whose envelope needs SMTPUTF8 fails with 5.6.7 when the server does not offer it;
 *   - a message larger than the server's SIZE fails with 5.3.4 before MAIL is sent;
 *   - any bytes after the 220 to STARTTLS, in the same read, end the session (RFC 3207 5: they
 *     could be injected by a man in the middle, CVE-2011-0411's mirror image).
 *
 * Timeouts: RFC 5321 4.5.3.2, each in struct delivery_client_timeouts; delivery_client_timeout_ms
 * says which one to arm for the wait in progress.
 *
 * One engine per connection, used by one thread. Memory: the struct (about 5 KiB, mostly the
 * reply parser) plus an output buffer that grows to the largest pipelined group or body chunk.
 */
#ifndef SLUICE_DELIVERY_CLIENT_H
#define SLUICE_DELIVERY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "delivery/delivery_body.h"
#include "delivery/delivery_reply.h"

/* RFC 5321 4.5.3.2, in milliseconds. */
struct delivery_client_timeouts {
	uint32_t banner_ms;      /* 5 min: the initial 220 */
	uint32_t helo_ms;        /* 5 min: EHLO/HELO (RFC: none given; Postfix uses 300 s) */
	uint32_t starttls_ms;    /* 5 min: the reply to STARTTLS (and the handshake, caller's) */
	uint32_t mail_ms;        /* 5 min */
	uint32_t rcpt_ms;        /* 5 min */
	uint32_t data_init_ms;   /* 2 min: the 354 */
	uint32_t data_block_ms;  /* 3 min: each write of body bytes */
	uint32_t data_final_ms;  /* 10 min: the reply to the final dot */
	uint32_t rset_ms;        /* 5 min (Postfix: 20 s; RSET is cheap, a slow one means trouble) */
	uint32_t quit_ms;        /* 5 min */
};
extern const struct delivery_client_timeouts delivery_client_timeouts_default;

enum delivery_client_tls {
	DELIVERY_CLIENT_TLS_NONE = 0,      /* never STARTTLS */
	DELIVERY_CLIENT_TLS_MAY,           /* when offered (the default) */
	DELIVERY_CLIENT_TLS_REQUIRED,      /* not offered, or refused: the session fails (4.7.4) */
};

struct delivery_client_conf {
	const char                      *helo_name;   /* our hostname for EHLO; copied */
	enum delivery_client_tls         tls;
	struct delivery_client_timeouts  timeouts;    /* zero fields take the defaults */
	struct delivery_reply_limits     reply;       /* zero: the parser's defaults */
	uint32_t                         line_max;    /* break body lines longer than this with
	                                               * CR LF SP (Postfix: 998); 0: never. Read
	                                               * at each 354: the caller may change it in
	                                               * c->conf between messages */
};

/* What the engine asks of the caller. */
enum delivery_client_ev {
	DELIVERY_CLIENT_EV_WRITE = 1,  /* write delivery_client_output()'s bytes, then _sent() */
	DELIVERY_CLIENT_EV_READ,       /* wait for server bytes (arm delivery_client_timeout_ms()),
	                                * then _input() */
	DELIVERY_CLIENT_EV_STARTTLS,   /* do the TLS handshake now, then _tls_done() */
	DELIVERY_CLIENT_EV_READY,      /* idle: _begin() a message, or _quit() */
	DELIVERY_CLIENT_EV_BODY,       /* give body bytes with _body() */
	DELIVERY_CLIENT_EV_MSG_DONE,   /* the message's results are in its rcpts: _msg_ack() */
	DELIVERY_CLIENT_EV_CLOSED,     /* the session is over (QUIT done, or failed: see error) */
};

/* Where the session is; also names the step a failure happened in. */
enum delivery_client_stage {
	DELIVERY_CLIENT_ST_BANNER = 0,
	DELIVERY_CLIENT_ST_EHLO,
	DELIVERY_CLIENT_ST_HELO,
	DELIVERY_CLIENT_ST_STARTTLS,
	DELIVERY_CLIENT_ST_TLS,        /* handshake in the caller's hands */
	DELIVERY_CLIENT_ST_READY,
	DELIVERY_CLIENT_ST_TRANS,      /* RSET/MAIL/RCPT/DATA sent, replies pending */
	DELIVERY_CLIENT_ST_BODY,
	DELIVERY_CLIENT_ST_DOT,        /* waiting for the final reply */
	DELIVERY_CLIENT_ST_MSG_DONE,
	DELIVERY_CLIENT_ST_QUIT,
	DELIVERY_CLIENT_ST_CLOSED,
};
const char *delivery_client_stage_name(enum delivery_client_stage st);

/* EHLO keywords seen (RFC 5321 4.1.1.1). */
#define DELIVERY_CLIENT_CAP_PIPELINING   (1u << 0)
#define DELIVERY_CLIENT_CAP_SIZE         (1u << 1)
#define DELIVERY_CLIENT_CAP_8BITMIME     (1u << 2)
#define DELIVERY_CLIENT_CAP_STARTTLS     (1u << 3)
#define DELIVERY_CLIENT_CAP_SMTPUTF8     (1u << 4)
#define DELIVERY_CLIENT_CAP_CHUNKING     (1u << 5)
#define DELIVERY_CLIENT_CAP_ENHANCED     (1u << 6)
#define DELIVERY_CLIENT_CAP_DSN          (1u << 7)
/* Parses one EHLO reply's text (as delivery_reply keeps it: the greeting line, then one keyword
 * line each). Returns the CAP_ mask; *size_r gets SIZE's value (0: none given or unlimited). */
uint32_t delivery_client_parse_caps(const char *text, size_t len, uint64_t *size_r);

enum delivery_rcpt_status {
	DELIVERY_RCPT_PENDING = 0,
	DELIVERY_RCPT_OK,          /* the final reply was 2xx: delivered */
	DELIVERY_RCPT_DEFER,       /* 4xx, or the session broke: try again later */
	DELIVERY_RCPT_FAIL,        /* 5xx: bounce this recipient */
};

#define DELIVERY_DIAG_MAX 256
/* One recipient of a message and its result. The caller fills addr; the engine the rest. */
struct delivery_rcpt {
	struct slice              addr;          /* without brackets; must stay valid meanwhile */
	enum delivery_rcpt_status status;
	bool                      rcpt_accepted; /* its RCPT got 2xx (internal, kept for logs) */
	uint16_t                  code;          /* the deciding reply's code; 0: local decision */
	char                      enh[16];       /* "5.1.1" (from the reply, or ours) */
	char                      diag[DELIVERY_DIAG_MAX];  /* "550 5.1.1 no such user" */
};

struct delivery_client_msg {
	struct slice          mail_from;   /* empty for the null sender */
	uint64_t              size;        /* body octets as spooled (for SIZE=) */
	bool                  body_8bit;   /* wants BODY=8BITMIME */
	bool                  smtputf8;    /* the envelope has UTF-8 addresses */
	unsigned              nrcpt;
	struct delivery_rcpt *rcpt;
	/* Out, set by the engine. */
	bool                  eightbit_downgrade;  /* 8-bit body sent without 8BITMIME */
	unsigned              naccepted;           /* RCPTs that got 2xx */
};

struct delivery_client {
	struct delivery_client_conf conf;
	char                        helo_name[256];
	enum delivery_client_stage  stage;
	uint32_t                    caps;
	uint64_t                    max_size;       /* SIZE's value; 0: none */
	bool                        tls_active;
	bool                        tls_tried;
	bool                        used;           /* a transaction ran: RSET before the next */
	bool                        quit_sent;

	/* The error that ended the session or the transaction (code 0: local: timeout, lost, ...). */
	struct {
		enum delivery_client_stage stage;
		uint16_t                   code;
		char                       enh[16];
		char                       text[DELIVERY_DIAG_MAX];
		int                        err;      /* -EPROTO, -EMSGSIZE, -ECONNRESET, ... or 0 */
	} error;

	/* The message in flight. */
	struct delivery_client_msg *msg;
	struct delivery_body        body;

	/* Replies still owed by the server, in order (pipelining). */
	uint8_t                    *pend;           /* enum cmd kinds */
	uint32_t                   *pend_arg;       /* the recipient index for RCPT */
	unsigned                    npend, pend_head, pend_cap;
	unsigned                    rcpt_next;      /* without pipelining: the next RCPT to send */
	bool                        data_sent;
	bool                        mail_ok;

	/* Bytes to write. */
	struct buf                  out;

	struct delivery_reply       reply;

	/* Counters, for the shard's. */
	uint64_t                    replies, bytes_in, bytes_out;
};

/* Starts a session (waiting for the banner). Returns 0 or -ENOMEM. */
int delivery_client_init(struct delivery_client *c, const struct delivery_client_conf *conf);
/* Frees what init allocated (the struct itself is the caller's). */
void delivery_client_fini(struct delivery_client *c);

/* What to do now (see enum delivery_client_ev). Cheap; call after every other call. */
enum delivery_client_ev delivery_client_next(struct delivery_client *c);
/* The milliseconds to arm for the current wait (READ, WRITE of body bytes, STARTTLS). */
uint32_t delivery_client_timeout_ms(const struct delivery_client *c);
/* Names the wait in progress (never 0): it changes when the session moves to another stage or
 * waits for another kind of reply (banner, EHLO, STARTTLS and its handshake, RSET, MAIL, the
 * RCPTs, DATA, the body, the final reply, QUIT), not when bytes come in. A caller that keeps one
 * deadline per key, set when the key changes, has a total deadline per stage that a server
 * answering one byte at a time cannot stretch (timeout_ms() gives its length). */
uint32_t delivery_client_wait_key(const struct delivery_client *c);

/* The queued bytes, and how many the caller managed to write. */
void delivery_client_output(const struct delivery_client *c, const uint8_t **p_r, size_t *len_r);
void delivery_client_sent(struct delivery_client *c, size_t n);

/*
 * Server bytes. Every byte is used (a reply split across reads is kept in the parser). Returns 0,
 * or -errno when the session must end (the connection should be closed; next() says CLOSED and
 * the message's undecided recipients are DEFER): -EPROTO (not SMTP, unexpected bytes after the
 * 220 to STARTTLS, a reply nobody asked for), -EMSGSIZE (reply too long), -ECONNRESET (a reply
 * on an idle connection, typically "421 timeout": error holds it). While READY the caller may
 * keep a read posted on the idle connection and feed whatever comes here.
 */
int delivery_client_input(struct delivery_client *c, const uint8_t *p, size_t len);

/* After EV_STARTTLS: ok true once the handshake is done (the engine sends EHLO again); false when
 * it failed (the session is over; with TLS_MAY the caller may reconnect without STARTTLS by
 * setting conf.tls = NONE). */
void delivery_client_tls_done(struct delivery_client *c, bool ok);

/* Starts a message (in EV_READY). The msg and its rcpts stay the caller's and must live until
 * EV_MSG_DONE/CLOSED. Returns 0, -EBUSY (not READY), -EINVAL (no recipients), -ENOMEM. A message
 * the server cannot take (SIZE, SMTPUTF8) is settled at once: next() says MSG_DONE. */
int delivery_client_begin(struct delivery_client *c, struct delivery_client_msg *msg);
/* Body bytes (in EV_BODY), any chunk size; last = true ends the body (len may be 0 then).
 * Returns 0 or -ENOMEM. */
int delivery_client_body(struct delivery_client *c, const uint8_t *p, size_t len, bool last);
/* After EV_MSG_DONE: back to READY (the next message gets RSET first). */
void delivery_client_msg_ack(struct delivery_client *c);
/* Ends the session politely (in READY). */
void delivery_client_quit(struct delivery_client *c);

/*
 * The connection broke or a timeout fired (err: -ETIMEDOUT, -ECONNRESET, ...): the session is
 * over; the message's undecided recipients become DEFER with 4.4.2 (lost) or 4.4.1 (timeout),
 * except after the final dot where the outcome is unknown: still DEFER (RFC 5321 6.1 prefers a
 * duplicate to a loss).
 */
void delivery_client_abort(struct delivery_client *c, int err);

#endif
