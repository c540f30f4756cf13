/*
 * delivery_dsn.c - see delivery_dsn.h. The text parts are built with a small growing buffer;
 * every string from the outside (addresses, diagnostics, host names) is cleaned of control
 * characters before it goes into a header field, so nothing can end a field early.
 */
#include "delivery_dsn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The report being built (base/buf.h's growable buffer), kept NUL-terminated; one failed
 * allocation spoils it (checked once at the end). */
struct sbuf {
	struct buf b;
	bool       oom;
};

/* Room for n more bytes and the NUL after them. */
static bool sb_grow(struct sbuf *b, size_t n)
{
	if (b->oom)
		return false;
	if (buf_reserve(&b->b, n + 1) < 0) {
		b->oom = true;
		return false;
	}
	return true;
}

static inline void sb_byte(struct sbuf *b, char c)
{
	*b->b.last++ = (uint8_t)c;
}

static inline void sb_end(struct sbuf *b)
{
	*b->b.last = '\0';
}

static void sb_put(struct sbuf *b, const void *p, size_t n)
{
	if (!sb_grow(b, n))
		return;
	memcpy(b->b.last, p, n);
	b->b.last += n;
	sb_end(b);
}

static void sb_str(struct sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;

	if (b->oom)
		return;
	va_start(ap, fmt);
	if (buf_vprintf(&b->b, fmt, ap) < 0)   /* it leaves the NUL after the text */
		b->oom = true;
	va_end(ap);
}

/* A value for a header field: control characters become spaces, at most max octets. */
static void sb_clean(struct sbuf *b, struct slice s, size_t max)
{
	size_t n = s.len < max ? s.len : max;

	if (!sb_grow(b, n))
		return;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s.p[i];

		sb_byte(b, c < 0x20 || c == 0x7f ? ' ' : (char)c);
	}
	sb_end(b);
}

/* Copies text with every line end made CR LF (a bare CR or LF included). */
static void sb_crlf(struct sbuf *b, const uint8_t *p, size_t n)
{
	size_t i = 0;

	if (!sb_grow(b, 2 * n))
		return;
	while (i < n) {
		if (p[i] == '\r' || p[i] == '\n') {
			sb_byte(b, '\r');
			sb_byte(b, '\n');
			if (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n')
				i++;
			i++;
			continue;
		}
		sb_byte(b, (char)p[i++]);
	}
	sb_end(b);
}

static bool has_8bit(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] & 0x80)
			return true;
	return false;
}

void delivery_dsn_date(uint64_t wall_ns, char out[40])
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
					      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	time_t t = (time_t)(wall_ns / 1000000000u);
	struct tm tm;

	gmtime_r(&t, &tm);
	snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
		 months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* RFC 3464 2.3.4 / RFC 3463 2: class "." 1-3 digits "." 1-3 digits, class 2, 4 or 5. */
static bool status_valid(const char *s)
{
	unsigned n;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
		return false;
	s += 2;
	for (n = 0; *s >= '0' && *s <= '9'; s++)
		n++;
	if (n < 1 || n > 3 || *s++ != '.')
		return false;
	for (n = 0; *s >= '0' && *s <= '9'; s++)
		n++;
	return n >= 1 && n <= 3 && *s == '\0';
}

static const char *action_name(enum delivery_dsn_action a)
{
	switch (a) {
	case DELIVERY_DSN_FAILED: return "failed";
	case DELIVERY_DSN_DELAYED: return "delayed";
	case DELIVERY_DSN_DELIVERED: return "delivered";
	case DELIVERY_DSN_RELAYED: return "relayed";
	}
	return "failed";
}

static bool is_smtp_reply(struct slice d)
{
	return d.len >= 3 && d.p[0] >= '2' && d.p[0] <= '5' && d.p[1] >= '0' && d.p[1] <= '9' &&
	       d.p[2] >= '0' && d.p[2] <= '9' && (d.len == 3 || d.p[3] == ' ' || d.p[3] == '-');
}

/* The original's header: up to and including the line end before the first empty line. */
static size_t header_len(const uint8_t *p, size_t n)
{
	if ((n >= 1 && p[0] == '\n') || (n >= 2 && p[0] == '\r' && p[1] == '\n'))
		return 0;   /* the message starts with an empty line: no header */
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n')
			continue;
		if (i + 1 < n && p[i + 1] == '\n')
			return i + 1;
		if (i + 2 < n && p[i + 1] == '\r' && p[i + 2] == '\n')
			return i + 1;
	}
	return n;
}

static void rcpt_fields(struct sbuf *b, const struct delivery_dsn_rcpt *r, bool *eightbit)
{
	char date[40];
	const char *status = r->status;
	bool utf8 = has_8bit((const uint8_t *)r->addr.p, r->addr.len);

	if (!status_valid(status))
		status = r->action == DELIVERY_DSN_FAILED ? "5.0.0"
			 : r->action == DELIVERY_DSN_DELAYED ? "4.0.0" : "2.0.0";
	sb_str(b, "\r\n");
	/* RFC 6533 3: a UTF-8 address is of type utf-8 (and makes the DSN 8-bit). */
	sb_str(b, utf8 ? "Final-Recipient: utf-8; " : "Final-Recipient: rfc822; ");
	*eightbit |= utf8;
	sb_clean(b, r->addr, 512);
	sb_printf(b, "\r\nAction: %s\r\nStatus: %s\r\n", action_name(r->action), status);
	if (r->remote_mta.len > 0) {
		sb_str(b, "Remote-MTA: dns; ");
		sb_clean(b, r->remote_mta, 255);
		sb_str(b, "\r\n");
	}
	if (r->diag.len > 0) {
		sb_str(b, is_smtp_reply(r->diag) ? "Diagnostic-Code: smtp; " : "Diagnostic-Code: X-Sluice; ");
		*eightbit |= has_8bit((const uint8_t *)r->diag.p, r->diag.len);
		sb_clean(b, r->diag, 900);
		sb_str(b, "\r\n");
	}
	if (r->last_attempt_ns != 0) {
		delivery_dsn_date(r->last_attempt_ns, date);
		sb_printf(b, "Last-Attempt-Date: %s\r\n", date);
	}
	if (r->action == DELIVERY_DSN_DELAYED && r->retry_until_ns != 0) {
		delivery_dsn_date(r->retry_until_ns, date);
		sb_printf(b, "Will-Retry-Until: %s\r\n", date);
	}
}

int delivery_dsn_compose(const struct delivery_dsn_req *q, struct delivery_dsn_out *out_r)
{
	struct sbuf b = { 0 };
	char date[40], boundary[80];
	bool any_failed = false, eightbit = false, full;
	size_t full_max = q->full_max ? q->full_max : DELIVERY_DSN_FULL_MAX_DEFAULT, hlen;
	const uint8_t *orig = q->orig != NULL ? q->orig : (const uint8_t *)"";
	uint64_t rnd = q->rnd;

	memset(out_r, 0, sizeof(*out_r));
	/* RFC 5321 6.1 and RFC 3461 6.2: no DSN to the null sender, ever. */
	if (q->sender.len == 0 || (q->sender.len == 2 && memcmp(q->sender.p, "<>", 2) == 0))
		return -EPERM;
	/* Backscatter: mail judged spam nearly always has a forged sender. */
	if (q->spam)
		return -EPERM;
	if (q->nrcpt == 0 || q->rcpt == NULL || q->reporting_mta == NULL || !q->reporting_mta[0])
		return -EINVAL;
	for (unsigned i = 0; i < q->nrcpt; i++)
		any_failed |= q->rcpt[i].action == DELIVERY_DSN_FAILED;

	/* A boundary that appears nowhere in the original (RFC 2046 5.1.1). */
	for (;;) {
		char probe[84];

		snprintf(boundary, sizeof(boundary), "=_sluice_%016llx_%.*s", (unsigned long long)rnd,
			 (int)(q->queue_id.len < 20 ? q->queue_id.len : 20),
			 q->queue_id.p ? q->queue_id.p : "");
		for (char *c = boundary; *c; c++)
			if (!((*c >= '0' && *c <= '9') || (*c >= 'A' && *c <= 'Z') ||
			      (*c >= 'a' && *c <= 'z') || *c == '=' || *c == '_'))
				*c = '_';
		snprintf(probe, sizeof(probe), "--%s", boundary);
		if (q->orig_len == 0 || memmem(orig, q->orig_len, probe, strlen(probe)) == NULL)
			break;
		rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
	}

	full = q->ret_full && q->orig_len <= full_max;
	hlen = full ? q->orig_len : header_len(orig, q->orig_len);
	eightbit = has_8bit(orig, hlen);

	/* The header. */
	delivery_dsn_date(q->now_ns, date);
	sb_printf(&b, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n", q->reporting_mta);
	sb_str(&b, "To: <");
	sb_clean(&b, q->sender, 512);
	sb_str(&b, ">\r\n");
	sb_printf(&b, "Subject: %s\r\n", any_failed ? "Undelivered Mail Returned to Sender"
						    : "Delayed Mail (still being retried)");
	sb_printf(&b, "Date: %s\r\n", date);
	sb_printf(&b, "Message-ID: <dsn.%016llx.%llu@%s>\r\n", (unsigned long long)rnd,
		  (unsigned long long)(q->now_ns / 1000000u), q->reporting_mta);
	/* RFC 3834 5: an automatic reply; well-behaved responders will not answer it. */
	sb_str(&b, "Auto-Submitted: auto-replied\r\n");
	sb_str(&b, "MIME-Version: 1.0\r\n");
	sb_printf(&b, "Content-Type: multipart/report; report-type=delivery-status;\r\n"
		      "\tboundary=\"%s\"\r\n", boundary);
	sb_str(&b, "\r\nThis is a MIME-encapsulated message.\r\n\r\n");

	/* 1. For a person. */
	sb_printf(&b, "--%s\r\nContent-Description: Notification\r\n"
		      "Content-Type: text/plain; charset=utf-8\r\n\r\n", boundary);
	sb_printf(&b, "This is the mail system at host %s.\r\n\r\n", q->reporting_mta);
	if (any_failed)
		sb_str(&b, "Your message could not be delivered to one or more recipients.\r\n"
			   "It is attached below.\r\n\r\n");
	else
		sb_str(&b, "Your message has not been delivered yet to the recipients below.\r\n"
			   "The mail system will keep trying; you do not need to send it again.\r\n\r\n");
	for (unsigned i = 0; i < q->nrcpt; i++) {
		const struct delivery_dsn_rcpt *r = &q->rcpt[i];

		sb_str(&b, "<");
		sb_clean(&b, r->addr, 512);
		sb_printf(&b, ">: %s", action_name(r->action));
		if (r->diag.len > 0) {
			sb_str(&b, ": ");
			sb_clean(&b, r->diag, 900);
		}
		sb_str(&b, "\r\n");
	}
	sb_str(&b, "\r\n");

	/* 2. For programs (RFC 3464 2.2: per-message fields, then a block per recipient). */
	sb_printf(&b, "--%s\r\nContent-Description: Delivery report\r\n"
		      "Content-Type: message/delivery-status\r\n\r\n", boundary);
	sb_printf(&b, "Reporting-MTA: dns; %s\r\n", q->reporting_mta);
	if (q->queue_id.len > 0) {
		sb_str(&b, "X-Sluice-Queue-ID: ");
		sb_clean(&b, q->queue_id, 64);
		sb_str(&b, "\r\n");
	}
	if (q->arrival_ns != 0) {
		delivery_dsn_date(q->arrival_ns, date);
		sb_printf(&b, "Arrival-Date: %s\r\n", date);
	}
	for (unsigned i = 0; i < q->nrcpt; i++)
		rcpt_fields(&b, &q->rcpt[i], &eightbit);
	sb_str(&b, "\r\n");

	/* 3. The original: the whole of it, or its header. */
	sb_printf(&b, "--%s\r\nContent-Description: %s\r\nContent-Type: %s\r\n", boundary,
		  full ? "Undelivered Message" : "Undelivered Message Headers",
		  full ? "message/rfc822" : "text/rfc822-headers");
	if (has_8bit(orig, hlen))
		sb_str(&b, "Content-Transfer-Encoding: 8bit\r\n");
	sb_str(&b, "\r\n");
	sb_crlf(&b, orig, hlen);
	if (buf_unread(&b.b) >= 2 && memcmp(b.b.last - 2, "\r\n", 2) != 0)
		sb_str(&b, "\r\n");
	sb_printf(&b, "\r\n--%s--\r\n", boundary);

	if (b.oom) {
		buf_release(&b.b);
		return -ENOMEM;
	}
	out_r->data = (char *)b.b.start;   /* nothing consumed: pos is start */
	out_r->len = buf_unread(&b.b);
	out_r->eightbit = eightbit;
	out_r->full = full;
	return 0;
}

void delivery_dsn_out_free(struct delivery_dsn_out *o)
{
	free(o->data);
	o->data = NULL;
	o->len = 0;
}
