/*
 * delivery_reply.c - see delivery_reply.h. A byte-at-a-time state machine: no lookahead, so a
 * reply split anywhere parses the same as one fed whole.
 */
#include "delivery_reply.h"

#include <string.h>

enum {
	ST_CODE,      /* the three digits */
	ST_SEP,       /* '-', ' ', or the end of the line */
	ST_TEXT,
	ST_DONE,
	ST_BAD,
	ST_TOOLONG,
};

static const struct delivery_reply_limits reply_defaults = {
	.line_max = DELIVERY_REPLY_LINE_MAX,
	.line_hard = DELIVERY_REPLY_LINE_HARD,
	.lines_max = DELIVERY_REPLY_LINES_MAX,
};

void delivery_reply_init(struct delivery_reply *r, const struct delivery_reply_limits *lim)
{
	r->lim = lim != NULL ? *lim : reply_defaults;
	if (r->lim.line_max < 8)
		r->lim.line_max = 8;
	if (r->lim.line_hard < r->lim.line_max)
		r->lim.line_hard = r->lim.line_max;
	if (r->lim.lines_max < 1)
		r->lim.lines_max = 1;
	delivery_reply_reset(r);
}

void delivery_reply_reset(struct delivery_reply *r)
{
	r->code = 0;
	r->has_enh = false;
	r->enh[0] = '\0';
	r->nlines = 0;
	r->truncated = false;
	r->text_len = 0;
	r->text[0] = '\0';
	r->state = ST_CODE;
	r->ndigits = 0;
	r->line_code = 0;
	r->last_line = false;
	r->pending_cr = false;
	r->line_len = 0;
	r->line_start = 0;
}

static void reply_put(struct delivery_reply *r, char c)
{
	/* Keep at most line_max octets of one line's text; the rest is counted but dropped. */
	if (r->text_len - r->line_start >= r->lim.line_max || r->text_len >= DELIVERY_REPLY_TEXT_MAX) {
		r->truncated = true;
		return;
	}
	r->text[r->text_len++] = c;
}

static unsigned enh_digits(const char *p, const char *end, unsigned max)
{
	unsigned n = 0;

	while (p + n < end && n < max && p[n] >= '0' && p[n] <= '9')
		n++;
	return n;
}

/* RFC 3463 2: class "." subject "." detail, subject and detail 1-3 digits, then SP or the end.
 * Only when the class agrees with the reply code (RFC 2034 4), as Postfix also insists. */
static void reply_parse_enh(struct delivery_reply *r)
{
	const char *p = r->text, *end = r->text + r->text_len, *s = p;
	unsigned cls = r->code / 100, n;

	if (cls != 2 && cls != 4 && cls != 5)
		return;
	if (end - p < 5 || p[0] != (char)('0' + cls) || p[1] != '.')
		return;
	p += 2;
	n = enh_digits(p, end, 3);
	if (n == 0 || p + n >= end || p[n] != '.')
		return;
	p += n + 1;
	n = enh_digits(p, end, 3);
	if (n == 0)
		return;
	p += n;
	if (p < end && *p != ' ' && *p != '\n')
		return;
	memcpy(r->enh, s, (size_t)(p - s));
	r->enh[p - s] = '\0';
	r->has_enh = true;
}

/* Returns true when the reply is complete. */
static bool reply_end_line(struct delivery_reply *r)
{
	r->nlines++;
	if (r->nlines == 1) {
		r->text[r->text_len] = '\0';
		reply_parse_enh(r);
	}
	if (r->last_line) {
		r->text[r->text_len] = '\0';
		r->state = ST_DONE;
		return true;
	}
	if (r->nlines >= r->lim.lines_max) {
		r->state = ST_TOOLONG;
		return false;
	}
	if (r->text_len < DELIVERY_REPLY_TEXT_MAX)
		r->text[r->text_len++] = '\n';
	else
		r->truncated = true;
	r->line_start = r->text_len;
	r->line_len = 0;
	r->ndigits = 0;
	r->line_code = 0;
	r->pending_cr = false;
	r->state = ST_CODE;
	return false;
}

enum delivery_reply_status delivery_reply_feed(struct delivery_reply *r, const uint8_t *p,
					       size_t len, size_t *used_r)
{
	size_t i;

	*used_r = 0;
	if (r->state == ST_DONE)
		return DELIVERY_REPLY_DONE;
	if (r->state == ST_BAD)
		return DELIVERY_REPLY_BAD;
	if (r->state == ST_TOOLONG)
		return DELIVERY_REPLY_TOOLONG;
	for (i = 0; i < len; i++) {
		uint8_t c = p[i];

		if (++r->line_len > r->lim.line_hard) {
			r->state = ST_TOOLONG;
			break;
		}
		switch (r->state) {
		case ST_CODE:
			if (c < '0' || c > '9' ||
			    (r->ndigits == 0 && (c < '2' || c > '5')) ||
			    (r->ndigits == 1 && c > '5')) {
				r->state = ST_BAD;
				break;
			}
			r->line_code = (uint16_t)(r->line_code * 10 + (c - '0'));
			if (++r->ndigits == 3) {
				/* RFC 5321 4.2.1: every line of a reply has the same code. */
				if (r->nlines == 0)
					r->code = r->line_code;
				else if (r->line_code != r->code) {
					r->state = ST_BAD;
					break;
				}
				r->state = ST_SEP;
			}
			break;
		case ST_SEP:
			if (c == '-') {
				r->last_line = false;
				r->state = ST_TEXT;
			} else if (c == ' ') {
				r->last_line = true;
				r->state = ST_TEXT;
			} else if (c == '\r') {
				/* "250\r\n": a last line with no text (RFC 5321 4.2 allows it). */
				r->last_line = true;
				r->pending_cr = true;
				r->state = ST_TEXT;
			} else if (c == '\n') {
				r->last_line = true;
				if (reply_end_line(r)) {
					*used_r = i + 1;
					return DELIVERY_REPLY_DONE;
				}
			} else {
				r->state = ST_BAD;
			}
			break;
		case ST_TEXT:
			if (c == '\n') {
				r->pending_cr = false;
				if (reply_end_line(r)) {
					*used_r = i + 1;
					return DELIVERY_REPLY_DONE;
				}
				break;
			}
			if (r->pending_cr) {
				/* A CR not followed by LF is text. */
				reply_put(r, '\r');
				r->pending_cr = false;
			}
			if (c == '\r')
				r->pending_cr = true;
			else
				reply_put(r, (char)c);
			break;
		default:
			break;
		}
		if (r->state == ST_BAD || r->state == ST_TOOLONG)
			break;
	}
	*used_r = i < len ? i : len;
	if (r->state == ST_BAD)
		return DELIVERY_REPLY_BAD;
	if (r->state == ST_TOOLONG)
		return DELIVERY_REPLY_TOOLONG;
	return DELIVERY_REPLY_AGAIN;
}

const char *delivery_reply_first_line(const struct delivery_reply *r, size_t *len_r)
{
	const char *p = r->text, *nl;
	size_t n = r->text_len;

	if (r->has_enh) {
		size_t skip = strlen(r->enh);

		p += skip;
		n -= skip;
		if (n > 0 && *p == ' ') {
			p++;
			n--;
		}
	}
	nl = memchr(p, '\n', n);
	if (nl != NULL)
		n = (size_t)(nl - p);
	*len_r = n;
	return p;
}
