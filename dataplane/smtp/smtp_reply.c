/*
 * smtp_reply.c - see smtp_reply.h. Every 4xx and 5xx reply is also the one place a refusal is
 * logged (smtp_log_reject), whoever wrote it: a new refusal needs no logging of its own.
 */
#include "smtp/smtp_reply.h"

#include "base/counter.h"

#include <stdio.h>

#include "smtp/smtp_limits.h"
#include "smtp/smtp_log.h"
#include "smtp/smtp_session.h"

void smtp_vreply(struct smtp_session *s, unsigned code, const char *enh, int last,
		 const char *fmt, va_list ap)
{
	char line[SMTP_REPLY_LINE_MAX];
	int n, m = 0, text;

	n = snprintf(line, sizeof(line), "%03u%c", code, last ? ' ' : '-');
	if (enh != NULL)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%s%s", enh, fmt ? " " : "");
	text = n;
	if (fmt != NULL)
		m = vsnprintf(line + n, sizeof(line) - (size_t)n - 2, fmt, ap);
	if (m < 0)
		m = 0;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	if (code >= 400 && last && !s->closing) {
		ctr_inc(code >= 500 ? &s->sh->ctr.replies_5xx : &s->sh->ctr.replies_4xx);
		smtp_log_reject(s, code, enh, line + text, (size_t)(n - text));
	}
	line[n++] = '\r';
	line[n++] = '\n';
	smtp_session_out(s, line, (size_t)n);
}

void smtp_reply(struct smtp_session *s, unsigned code, const char *enh, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_vreply(s, code, enh, 1, fmt, ap);
	va_end(ap);
}

void smtp_reply_cont(struct smtp_session *s, unsigned code, const char *enh, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	smtp_vreply(s, code, enh, 0, fmt, ap);
	va_end(ap);
}
