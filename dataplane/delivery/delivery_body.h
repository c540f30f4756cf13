/*
 * delivery_body.h - the streaming encoder for a message body on its way out in DATA: canonical
 * CR LF line ends and dot-stuffing (RFC 5321 4.5.2), then the end-of-data mark "CRLF.CRLF".
 *
 * The spool holds canonical CR LF already, but the encoder does not trust it: a bare LF and a
 * bare CR each become CR LF (as Postfix's smtp client does), so what we send can never be read as
 * an early end of data by a server, whatever the spooled bytes are (SMTP smuggling). A line that
 * begins with '.' gets one more '.'.
 *
 * Optionally (line_max > 0), a line longer than line_max octets is broken by inserting CR LF SP,
 * as Postfix's smtp_line_length_limit (998) does: RFC 5321 4.5.3.1.6 lets a server refuse lines
 * over 1000 octets, and the inserted space keeps a broken header a folded one.
 *
 * Works on chunks cut anywhere (a CR at the end of one chunk and an LF at the start of the next
 * are one line end). Any thread; no allocation.
 */
#ifndef SLUICE_DELIVERY_BODY_H
#define SLUICE_DELIVERY_BODY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct delivery_body {
	bool     bol;         /* at the beginning of a line */
	bool     pending_cr;  /* the last input byte was a CR (not yet known to be bare) */
	uint32_t line_max;    /* 0: no limit */
	uint32_t col;         /* octets on the current output line */
	uint64_t in_bytes, out_bytes;
	uint64_t bare_fixed;  /* bare CRs and LFs turned into CR LF */
	uint64_t stuffed;     /* dots added */
	uint64_t wrapped;     /* long lines broken */
	uint32_t longest;     /* the longest line sent, CR LF excluded (with line_max 0: over 998
	                       * means the next hop may refuse it) */
};

/* The most bytes delivery_body_encode writes for len input bytes. */
#define DELIVERY_BODY_ENCODED_MAX(len) (2u * (size_t)(len) + 2u)
/* The most bytes delivery_body_finish writes. */
#define DELIVERY_BODY_FINISH_MAX 5u

/* line_max: 0 for no limit, else at least 80 (smaller values are raised to 80); 998 is usual. */
void delivery_body_init(struct delivery_body *b, uint32_t line_max);
/* Encodes len bytes into out, which must hold DELIVERY_BODY_ENCODED_MAX(len) bytes; returns the
 * count written. */
size_t delivery_body_encode(struct delivery_body *b, const uint8_t *in, size_t len, uint8_t *out);
/* Ends the body: a last line end if the body did not end with one, then ".\r\n". out must hold
 * DELIVERY_BODY_FINISH_MAX bytes; returns the count written. */
size_t delivery_body_finish(struct delivery_body *b, uint8_t *out);

#endif
