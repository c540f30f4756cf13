/*
 * smtp_reply.h - building replies into a session's output (RFC 5321 §4.2, RFC 2034 enhanced
 * status codes, which Sluice always sends since it always offers ENHANCEDSTATUSCODES).
 *
 * Replies are only queued here; the session sends what has queued when it has read all the input
 * it has (RFC 2920 §3.2: the server may batch replies to a pipelined group, and must not hold them
 * once its input is empty). Shard thread only.
 */
#ifndef SLUICE_SMTP_REPLY_H
#define SLUICE_SMTP_REPLY_H

#include <stdarg.h>
#include <stdint.h>

struct smtp_session;

/* One reply line: "CODE ENH text". fmt may be NULL for none. Multi-line replies use cont=1 for
 * every line but the last. Texts longer than a reply line are cut (never a protocol error). */
void smtp_reply(struct smtp_session *s, unsigned code, const char *enh, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void smtp_reply_cont(struct smtp_session *s, unsigned code, const char *enh, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void smtp_vreply(struct smtp_session *s, unsigned code, const char *enh, int last,
		 const char *fmt, va_list ap);

#endif
