/*
 * smtp_log.h - what an operator reads about inbound mail: one line per refusal, one line per
 * accepted message (after Postfix's "NOQUEUE: reject:" and "client=... from=... size=..." lines).
 *
 *   SID: reject: STAGE from IP:PORT to LISTEN (primary|fallback MX): CODE ENH TEXT; helo=<H>
 *        from=<F> to=<R>[ nrcpt=N score=S action=A tests=T]
 *   SID: accept: qid=Q from IP:PORT to LISTEN (ROLE MX): helo=<H> tls=VERSION/CIPHER|none
 *        from=<F> nrcpt=N size=BYTES score=S action=A tests=T to=<R1>,<R2>...
 *
 * (each one line). STAGE is upper case: CONNECT (before any command), HELO, EHLO, MAIL, RCPT,
 * DATA, BDAT, END-OF-DATA, STARTTLS (during the handshake), another verb, or UNKNOWN (a line
 * that could not be read as a command). A field not known yet is "<>". IPv6 addresses are
 * written [ADDR]:PORT. Without a session (refused at connect), SID is NOQUEUE. The optional tail
 * of a reject line comes with END-OF-DATA when the content filter decided. The accepted line's
 * size is the record's, the same number sluice-queue list shows; its recipient list comes last
 * and is cut (ending "...") when the line would pass SHARD_EVENT_MAX; nrcpt is the count.
 * score is one decimal, rounded (shard_event_score), as in X-Spam-Status.
 *
 * Shard thread only. The reject lines go through the shard's event ring (shard_event), never
 * straight to the output: the shard never blocks on the log. The accepted line is the message's
 * accepted event, durable with the message (spool_event.h), written by the agent's log sink. Reject lines are info level: they are not
 * written when log_level is warning or error.
 */
#ifndef SLUICE_SMTP_LOG_H
#define SLUICE_SMTP_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

struct shard;
struct smtp_session;
struct listen_conf;

/* The reject line for a 4xx/5xx reply of a session (smtp_reply.c calls it for every one). text
 * is the reply's text after the enhanced code. */
void smtp_log_reject(struct smtp_session *s, unsigned code, const char *enh, const char *text,
		     size_t textlen);
/* The same line for a refusal before a session exists (per-IP limit, pool full, pre-greeting,
 * ip_block at connect): stage CONNECT, SID NOQUEUE, helo, from and to "<>". client_ip is the
 * text form ("192.0.2.1", "2001:db8::1"); enh may be NULL. */
void smtp_log_reject_connect(struct shard *sh, const char *client_ip, uint16_t port,
			     const struct listen_conf *lc, unsigned code, const char *enh,
			     const char *text);
/* The accepted event of a message about to be committed (smtp_cmd_data.c): the line above
 * without its "SID: accept: qid=Q " (the agent's log sink writes those: the queue id is given
 * by the group commit) and the session id and client port, as the message's accepted event
 * (spool_msg_event; spool_event.h). 0 or -ENOMEM. */
struct spool_msg;
int smtp_log_accepted_event(struct smtp_session *s, struct spool_msg *m);

/* The address in a MAIL or RCPT argument, for from= / to= even when it does not parse:
 * "FROM:<a@b> SIZE=1" -> "a@b", "TO: junk" -> "junk". */
struct slice smtp_log_path_arg(struct slice arg);

#endif
