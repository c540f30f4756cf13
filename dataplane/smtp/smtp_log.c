/*
 * smtp_log.c - the reject and accepted lines. See smtp_log.h for the formats.
 *
 * Shard thread only. Fields that come from the client (HELO, addresses, reply texts quoting
 * them) are written with control bytes replaced by '?', so a client cannot forge a line; each is
 * cut to a bound so one line stays one event.
 */
#include "smtp/smtp_log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "policy/policy.h"
#include "shard/shard_event.h"
#include "smtp/smtp_session.h"
#include "spool/spool.h"
#include "spool/spool_event.h"

#define SMTP_LOG_FIELD_MAX 256u   /* a path's worth (RFC 5321 §4.5.3.1.3) */

struct lbuf {
	char   p[SHARD_EVENT_MAX];
	size_t n;
};

static void lb_puts(struct lbuf *b, const char *s, size_t len)
{
	for (size_t i = 0; i < len && b->n < sizeof(b->p) - 1; i++) {
		unsigned char c = (unsigned char)s[i];

		b->p[b->n++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
	}
	b->p[b->n] = '\0';
}

static void lb_printf(struct lbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void lb_printf(struct lbuf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (b->n >= sizeof(b->p) - 1)
		return;
	va_start(ap, fmt);
	r = vsnprintf(b->p + b->n, sizeof(b->p) - b->n, fmt, ap);
	va_end(ap);
	if (r > 0)
		b->n += (size_t)r < sizeof(b->p) - b->n ? (size_t)r : sizeof(b->p) - b->n - 1;
}

/* "<field>", cut at SMTP_LOG_FIELD_MAX with "..." */
static void lb_field(struct lbuf *b, const char *name, const char *s, size_t len)
{
	lb_printf(b, "%s<", name);
	if (s != NULL) {
		lb_puts(b, s, len < SMTP_LOG_FIELD_MAX ? len : SMTP_LOG_FIELD_MAX);
		if (len > SMTP_LOG_FIELD_MAX)
			lb_puts(b, "...", 3);
	}
	lb_puts(b, ">", 1);
}

/* "from IP:PORT to LISTEN (ROLE MX): " */
static void lb_peer(struct lbuf *b, const char *ip, uint16_t port, const struct listen_conf *lc)
{
	bool v6 = strchr(ip, ':') != NULL;

	lb_printf(b, "from %s%s%s:%u to %s (%s MX): ", v6 ? "[" : "", ip, v6 ? "]" : "",
		  (unsigned)port, lc ? lc->address : "?", lc ? listen_role_name(lc->role) : "?");
}

static const char *smtp_log_stage(const struct smtp_session *s, unsigned code)
{
	if (s->log_stage != NULL)
		return s->log_stage;
	if (s->state & SMTP_ST_TLS)
		return "STARTTLS";
	if (s->state & SMTP_ST_DATA)
		return "DATA";
	if (s->state & SMTP_ST_BDAT)
		return "BDAT";
	if (s->state & SMTP_ST_COMMIT)
		return "END-OF-DATA";
	if (code == 500)
		return "UNKNOWN";     /* only a line that could not be read is answered 500 here */
	if (!s->log_cmd_seen)
		return "CONNECT";
	return s->log_last != NULL ? s->log_last : "UNKNOWN";
}

void smtp_log_reject(struct smtp_session *s, unsigned code, const char *enh, const char *text,
		     size_t textlen)
{
	const struct smtp_txn *t = s->txn;
	const char *stage;
	struct slice helo = { s->helo, s->helo ? strlen(s->helo) : 0 }, from = { 0 }, to = { 0 };
	struct lbuf b;

	if (!log_enabled(LOG_INFO))
		return;
	stage = smtp_log_stage(s, code);
	if (t != NULL && t->mail_from.p != NULL)
		from = t->mail_from;
	if (t != NULL && t->nrcpt > 0)
		to = t->rcpts[0];
	if (s->log_stage != NULL && s->log_arg.p != NULL) {
		if (strcmp(stage, "HELO") == 0 || strcmp(stage, "EHLO") == 0)
			helo = s->log_arg;
		else if (strcmp(stage, "MAIL") == 0)
			from = s->log_arg;
		else if (strcmp(stage, "RCPT") == 0)
			to = s->log_arg;
	}
	b.n = 0;
	lb_printf(&b, "%s: reject: %s ", s->id, stage);
	lb_peer(&b, s->client_addr, s->client_port, &s->lconf);
	lb_printf(&b, "%u", code);
	if (enh != NULL)
		lb_printf(&b, " %s", enh);
	lb_puts(&b, " ", 1);
	lb_puts(&b, text, textlen < SMTP_LOG_FIELD_MAX ? textlen : SMTP_LOG_FIELD_MAX);
	lb_puts(&b, "; ", 2);
	lb_field(&b, "helo=", helo.p, helo.len);
	lb_field(&b, " from=", from.p, from.len);
	lb_field(&b, " to=", to.p, to.len);
	if (strcmp(stage, "END-OF-DATA") == 0 && t != NULL) {
		char sc[32];

		lb_printf(&b, " nrcpt=%u", t->nrcpt);
		if (t->action != POLICY_DELIVER) {
			shard_event_score(sc, sizeof(sc), t->score_milli);
			lb_printf(&b, " score=%s action=%s tests=%s", sc,
				  policy_action_name((enum policy_action)t->action),
				  t->rules_hit[0] ? t->rules_hit : "none");
		}
	}
	shard_event(s->sh, "%s", b.p);
}

void smtp_log_reject_connect(struct shard *sh, const char *client_ip, uint16_t port,
			     const struct listen_conf *lc, unsigned code, const char *enh,
			     const char *text)
{
	struct lbuf b;

	if (!log_enabled(LOG_INFO))
		return;
	b.n = 0;
	lb_puts(&b, "NOQUEUE: reject: CONNECT ", 25);
	lb_peer(&b, client_ip, port, lc);
	lb_printf(&b, "%u", code);
	if (enh != NULL)
		lb_printf(&b, " %s", enh);
	lb_puts(&b, " ", 1);
	lb_puts(&b, text, strlen(text) < SMTP_LOG_FIELD_MAX ? strlen(text) : SMTP_LOG_FIELD_MAX);
	lb_puts(&b, "; helo=<> from=<> to=<>", 23);
	shard_event(sh, "%s", b.p);
}

int smtp_log_accepted_event(struct smtp_session *s, struct spool_msg *m)
{
	const struct smtp_txn *t = s->txn;
	char sc[32], tls[160];
	uint8_t tlv[SHARD_EVENT_MAX + 128], port[2] = { (uint8_t)s->client_port,
						       (uint8_t)(s->client_port >> 8) };
	size_t len = 0;
	struct lbuf b;

	shard_event_score(sc, sizeof(sc), t->score_milli);
	if (s->tls_active && t->tls_info[0] != '\0') {
		char *sp;

		snprintf(tls, sizeof(tls), "%s", t->tls_info);
		if ((sp = strchr(tls, ' ')) != NULL)
			*sp = '/';
	} else
		snprintf(tls, sizeof(tls), "none");
	b.n = 0;
	lb_peer(&b, s->client_addr, s->client_port, &s->lconf);
	lb_field(&b, "helo=", s->helo, s->helo ? strlen(s->helo) : 0);
	lb_printf(&b, " tls=%s", tls);
	lb_field(&b, " from=", t->mail_from.p, t->mail_from.len);
	lb_printf(&b, " nrcpt=%u size=%llu score=%s action=%s tests=%s", t->nrcpt,
		  (unsigned long long)t->spooled_size, sc,
		  policy_action_name((enum policy_action)t->action),
		  t->rules_hit[0] ? t->rules_hit : "none");
	lb_puts(&b, " to=", 4);
	for (uint32_t i = 0; i < t->nrcpt; i++) {
		/* Whole addresses only; "..." says the list was cut (nrcpt has the count). The
		 * sink puts "SID: accept: qid=Q " before it: room kept for that. */
		if (b.n + t->rcpts[i].len + 8 + 64 >= sizeof(b.p)) {
			lb_puts(&b, "...", 3);
			break;
		}
		lb_printf(&b, "%s", i ? "," : "");
		lb_field(&b, "", t->rcpts[i].p, t->rcpts[i].len);
	}
	len += spool_event_tlv(tlv + len, SPOOL_ETLV_TEXT, b.p, b.n);
	len += spool_event_tlv(tlv + len, SPOOL_ETLV_SID, s->id, strnlen(s->id, 64));
	len += spool_event_tlv(tlv + len, SPOOL_ETLV_CLIENT_PORT, port, 2);
	return spool_msg_event(m, tlv, len);
}

struct slice smtp_log_path_arg(struct slice arg)
{
	const char *p = memchr(arg.p, ':', arg.len), *end = arg.p + arg.len, *e;

	if (p == NULL)
		return arg;
	p++;
	while (p < end && *p == ' ')
		p++;
	if (p < end && *p == '<') {
		p++;
		e = memchr(p, '>', (size_t)(end - p));
		if (e == NULL)
			e = end;
	} else {
		e = memchr(p, ' ', (size_t)(end - p));
		if (e == NULL)
			e = end;
	}
	return (struct slice){ p, (size_t)(e - p) };
}
