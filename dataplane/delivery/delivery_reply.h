/*
 * delivery_reply.h - a bounded, resumable parser for the replies of the servers we relay to
 * (RFC 5321 4.2: "250-first", ..., "250 last"), with the enhanced status code (RFC 3463, RFC 2034)
 * of the first line pulled out.
 *
 * The parser keeps its state between reads and never assumes one read is one reply: feed it
 * whatever arrived; it stops at the end of one reply and says how many bytes it used, so
 * pipelined replies that came in one read are parsed one after the other.
 *
 * Limits (a hostile or broken server must cost bounded memory and time):
 *   - a line up to line_max octets (RFC 5321 4.5.3.1.5: 512 with CRLF) is kept whole; a longer
 *     one is tolerated and kept cut at line_max, up to line_hard octets; past that without an end
 *     of line the reply is TOOLONG;
 *   - at most lines_max lines per reply, else TOOLONG;
 *   - the text of all lines is kept in text[] (DELIVERY_REPLY_TEXT_MAX); what does not fit is
 *     dropped and `truncated` says so.
 * A line ends at LF; a CR before it is dropped (servers that end lines with a bare LF exist, and
 * the reply direction carries no smuggling risk). Any other byte below 0x20 except TAB is kept as
 * it is: the text is for logs and DSNs, never interpreted beyond the EHLO keywords.
 *
 * Used by the delivery client on the shard's thread; no I/O, no allocation.
 */
#ifndef SLUICE_DELIVERY_REPLY_H
#define SLUICE_DELIVERY_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DELIVERY_REPLY_LINE_MAX   512u   /* RFC 5321 4.5.3.1.5 */
#define DELIVERY_REPLY_LINE_HARD  4096u  /* tolerated, with truncation, before TOOLONG */
#define DELIVERY_REPLY_LINES_MAX  100u
#define DELIVERY_REPLY_TEXT_MAX   4096u  /* text of every line, '\n'-separated */

enum delivery_reply_status {
	DELIVERY_REPLY_DONE = 0,   /* one whole reply parsed; *used_r says how far */
	DELIVERY_REPLY_AGAIN,      /* every byte used; the reply goes on in the next read */
	DELIVERY_REPLY_BAD,        /* not a reply: bad code, separator, or codes that differ */
	DELIVERY_REPLY_TOOLONG,    /* a line past line_hard or more than lines_max lines */
};

struct delivery_reply_limits {
	uint32_t line_max;
	uint32_t line_hard;
	uint32_t lines_max;
};

struct delivery_reply {
	/* Results, valid after DONE. */
	uint16_t code;             /* 200..599 */
	bool     has_enh;          /* the first line's text began with an RFC 3463 code */
	char     enh[16];          /* "5.1.1", NUL-terminated; empty without one */
	uint32_t nlines;
	bool     truncated;        /* some line or the text was cut */
	uint32_t text_len;
	char     text[DELIVERY_REPLY_TEXT_MAX + 1];  /* lines without code and separator, '\n'
	                                              * between them, NUL-terminated */

	/* Parser state. */
	struct delivery_reply_limits lim;
	uint8_t  state;
	uint8_t  ndigits;
	uint16_t line_code;
	bool     last_line;
	bool     pending_cr;
	uint32_t line_len;         /* octets of this line's text seen (kept or not) */
	uint32_t line_start;       /* offset of this line's text in text[] */
};

/* lim NULL: the defaults above. Limits are clamped to sane minimums (line_max >= 8). */
void delivery_reply_init(struct delivery_reply *r, const struct delivery_reply_limits *lim);
/* Gets ready for the next reply, keeping the limits. */
void delivery_reply_reset(struct delivery_reply *r);
/*
 * Feeds bytes. Returns DONE with *used_r <= len (the rest belongs to the next reply: reset and
 * feed it again), AGAIN with *used_r == len, or BAD / TOOLONG (the connection should be dropped;
 * further calls keep returning the same). After DONE, further calls return DONE with *used_r = 0
 * until reset.
 */
enum delivery_reply_status delivery_reply_feed(struct delivery_reply *r, const uint8_t *p,
					       size_t len, size_t *used_r);

/* The reply's class: 2, 3, 4 or 5. */
static inline unsigned delivery_reply_class(const struct delivery_reply *r) { return r->code / 100; }

/* The first line's text after the enhanced code (for a one-line diagnostic), and its length. */
const char *delivery_reply_first_line(const struct delivery_reply *r, size_t *len_r);

#endif
