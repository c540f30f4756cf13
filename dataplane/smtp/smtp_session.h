/*
 * smtp_session.h - one inbound SMTP connection: its state machine, its I/O on the shard's ring,
 * and its transaction.
 *
 * Shard thread only. smtp_enter_state() is the one place a session changes state (after
 * OpenSMTPD's smtp_enter_state).
 *
 * Lifetime: a session is freed on its shard, only once no operation of its is in flight (its
 * conn's recv and send, the spool commit), and only at the end of the loop step (shard_defer),
 * never inside a call chain: any function may decide the session is over (smtp_session_abort, a
 * failed TLS handshake, a send error), which only marks it `closing` and closes its conn (what is
 * in flight cancelled, its timer disarmed); every caller up the stack may still read it, and must
 * stop acting on it once it is `closing`. Completions that arrive for a closing session only
 * count down what is in flight.
 *
 * I/O (net/conn.h): one recv at a time from the shard's provided buffers (single-shot, so a
 * session that is waiting for its message to reach the disk simply stops reading: back-pressure
 * without holding buffers), one send at a time from the conn's transmit buffer. Output
 * back-pressure (after Postfix and nginx): while more than SMTP_OUT_HIGH bytes of replies wait to
 * be sent (a client that pipelines without reading), the session runs no more commands and reads
 * nothing; what it read and did not run waits in its stash (at most one read), and runs, in order
 * and before any new input, as soon as the output drains. Memory of an idle session: the struct
 * alone (no buffers are held between reads).
 */
#ifndef SLUICE_SMTP_SESSION_H
#define SLUICE_SMTP_SESSION_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include "base/arena.h"
#include "conf/node_config.h"
#include "net/conn.h"
#include "shard/shard.h"
#include "smtp/smtp_data.h"
#include "smtp/smtp_parse.h"
#include "spool/spool.h"

struct filter_msg;

/* States, as bits so the command table can say where a verb is legal. */
enum smtp_state {
	SMTP_ST_INIT    = 1u << 0,   /* banner sent, no HELO/EHLO yet */
	SMTP_ST_READY   = 1u << 1,   /* greeted, no transaction */
	SMTP_ST_MAIL    = 1u << 2,   /* MAIL accepted, no recipient yet */
	SMTP_ST_RCPT    = 1u << 3,   /* at least one recipient */
	SMTP_ST_DATA    = 1u << 4,   /* reading a DATA body */
	SMTP_ST_BDAT    = 1u << 5,   /* reading a BDAT chunk */
	SMTP_ST_COMMIT  = 1u << 6,   /* end of data; waiting for the spool's fdatasync */
	SMTP_ST_TLS     = 1u << 7,   /* TLS handshake in progress */
	SMTP_ST_CLOSING = 1u << 8,   /* final reply queued; closing */
};
#define SMTP_ST_ANY_CMD (SMTP_ST_INIT | SMTP_ST_READY | SMTP_ST_MAIL | SMTP_ST_RCPT)


struct smtp_txn {
	struct arena        arena;          /* everything below that is a string lives here */
	struct slice        mail_from;
	uint64_t            size_declared;
	uint8_t             body_type;
	bool                smtputf8;
	bool                bdat;            /* the body comes in BDAT chunks */
	bool                bdat_last;
	bool                too_big;         /* past the size limit: swallowing the rest */
	bool                hdr_done;        /* the header block has ended (blank or body line) */
	bool                hdr_bol;         /* the next byte starts a header line */
	bool                hdr_in_name;     /* reading a field name (up to its colon) */
	uint16_t            hdr_refuse;      /* 552/554: a header limit was passed; swallowing */
	uint32_t            hdr_fields;      /* header fields so far */
	uint64_t            hdr_bytes;       /* bytes of the header block so far */
	bool                failed;          /* a BDAT chunk failed: answer the rest with the error */
	uint32_t            nrcpt, caprcpt;
	struct slice       *rcpts;
	uint64_t            bdat_left;       /* bytes of the current chunk still to read */
	uint64_t            bdat_chunk;      /* size of the current chunk */
	struct smtp_data    dec;
	struct spool_msg   *msg;
	struct filter_msg  *fm;
	uint8_t             role;
	int                 write_err;       /* the spool refused body bytes */
	uint16_t            reply_failed;    /* a failed BDAT transaction's reply code */
	uint32_t            state_before_bdat;
	char                tls_info[128];
	int32_t             score_milli;
	uint8_t             action;
	char                rules_hit[512];
	uint64_t            spooled_size;    /* the record's body length (what sluice-queue shows) */
	uint64_t            eod_ns;          /* monotonic: the end of data seen (time to 250) */
	uint64_t            scan_ns;         /* the filter's time on this message so far */
};

struct smtp_session {
	struct shard          *sh;
	struct smtp_session   *next, *prev;      /* the shard's list of sessions */
	struct conn            conn;             /* fd, replies (conn.out), TLS, I/O, its timer */
	uint32_t               state;            /* enum smtp_state, one bit */
	uint8_t                role;             /* enum listen_role of the address it came to */
	uint8_t                inflight;         /* the spool commit in flight (conn counts its I/O) */
	bool                   commit_pending;
	bool                   esmtp, tls_active;
	bool                   suspended;        /* not reading input (waiting for the disk) */
	bool                   close_after_send;
	bool                   closing;
	bool                   draining;         /* shutdown asked: 421 at the next command */
	bool                   discard_rest;     /* STARTTLS: drop the rest of this input */
	bool                   greet_pending;    /* early-talker pause: no 220 sent yet */
	uint32_t               errors;
	uint32_t               messages;
	uint64_t               started_ms, deadline_ms;
	uint64_t               iplimit_key;
	char                   id[16];           /* session id for logs: shard + counter */
	char                   client_addr[INET6_ADDRSTRLEN];
	char                  *helo;             /* malloc'd */
	struct smtp_line       line;
	struct buf             stash;            /* input read and not yet run (at most one read) */
	struct smtp_txn       *txn;
	struct shard_deferred  reap;             /* the free at the end of the loop step */
	/* What the reject line says (smtp_log.c). */
	uint16_t               client_port;
	const char            *log_stage;        /* the command being answered; NULL between */
	const char            *log_last;         /* the last command answered */
	struct slice           log_arg;          /* its argument or address: helo=, from= or to= */
	bool                   log_cmd_seen;     /* a command was read (else the stage is CONNECT) */
	/* The listener it came to, as the snapshot said at accept: a reload may change or remove
	 * that listener while the session goes on (a copy: no reference shared across shards). */
	struct listen_conf     lconf;
};

/* Sets up the handler for connection completions (once, before the shards start). */
void smtp_session_setup(void);
/* Starts a session on an accepted socket (the listener's accept hook). */
void smtp_session_start(struct shard *sh, struct shard_listener *l, int fd,
			const struct sockaddr_storage *peer, socklen_t peerlen);

void smtp_enter_state(struct smtp_session *s, enum smtp_state st);
/* "INIT", "READY", "MAIL", ... for logs. */
const char *smtp_state_name(uint32_t st);
/* Queues bytes of reply. */
void smtp_session_out(struct smtp_session *s, const void *p, size_t len);
/* Sends what is queued (if no send is in flight). */
void smtp_session_flush(struct smtp_session *s);
/* Queues nothing more: sends what is queued, then closes. */
void smtp_session_close_after_reply(struct smtp_session *s);
/* Closes at once (client gone, fatal error): marks the session closing; it is freed at the end of
 * the loop step once nothing of it is in flight. */
void smtp_session_abort(struct smtp_session *s, const char *why);
/* Stops reading input until smtp_session_resume (the commit path). */
void smtp_session_suspend(struct smtp_session *s);
void smtp_session_resume(struct smtp_session *s);
/* Counts a client error; past the limit, 421 and close. Returns true if the session goes. */
bool smtp_session_error(struct smtp_session *s);
/* Drops the rest of the current input (after STARTTLS: RFC 3207 §4.2 / CVE-2011-0411). */
void smtp_session_discard_input(struct smtp_session *s);

/* The transaction: created at MAIL, gone at RSET / end of message / HELO. */
struct smtp_txn *smtp_txn_begin(struct smtp_session *s);
void smtp_txn_reset(struct smtp_session *s);

/* Shutdown (SIGTERM): idle sessions get 421 now, busy ones at their next command. */
void smtp_sessions_drain(struct shard *sh);
void smtp_sessions_abort_all(struct shard *sh);
unsigned smtp_sessions_count(const struct shard *sh);

#endif
