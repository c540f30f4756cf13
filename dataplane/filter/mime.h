/*
 * mime.h - the streaming MIME parser of the content filter (RFC 5322, RFC 2045-2049, RFC 2047,
 * RFC 2231).
 *
 * The parser takes one message as stored (header + body, canonical CR LF; a bare LF is accepted
 * as a line end too) in pieces of any size, down to one byte, and calls the sink, in message
 * order, with what the rule classes scan:
 *   header       every header field of every entity (the message, each MIME part, each
 *                message/rfc822 inside), unfolded, with RFC 2047 encoded words decoded to UTF-8;
 *   headers_end  after each entity's header block;
 *   body_text    text parts (and the preamble of a multipart): transfer-decoded, converted to
 *                UTF-8, text/html rendered to text; "\n" line ends; SpamAssassin's "body";
 *   rawbody      text parts transfer-decoded only (original charset, HTML source), "\n" line
 *                ends; SpamAssassin's "rawbody";
 *   uri          URIs from text (http, https, ftp, mailto, www.) and HTML attributes (href,
 *                src, action, background);
 *   anomaly      each kind of oddity at most once per message.
 * The text of each part ends with "\n" (one is added if the part's last line had none, as
 * when the line end before a delimiter belongs to the delimiter), so consecutive parts never
 * run together in the consumer's stream.
 * body_text and rawbody come in pieces of at most MIME_TEXT_PIECE bytes, never split inside a
 * UTF-8 sequence; where a piece ends depends only on the message, never on how it was fed.
 * All callback data is valid only during the call.
 *
 * Guarantees, whatever the input: time linear in its size (boundaries are looked for only at
 * line starts, against at most max_depth boundaries of at most MIME_BOUNDARY_MAX bytes);
 * memory bounded by the limits: about 21 KiB per parser (mostly the 4 KiB decode block and the
 * two 4 KiB output pieces) plus the header buffers, which grow with the largest field up to
 * max_header_line (and 3x that for its decoded form), and are given back at mime_parser_reset
 * beyond 8 KiB; no allocation per byte; at most MIME_CHARSET_OPENS iconv_open calls per message.
 * Malformed input is parsed as far as it goes and reported through anomaly(), never fatal.
 *
 * One parser is owned by one thread (a shard) and handles one message at a time.
 */
#ifndef SLUICE_FILTER_MIME_H
#define SLUICE_FILTER_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum mime_anomaly {
	MIME_ANOM_MISSING_BOUNDARY,       /* multipart without boundary, or boundary never seen */
	MIME_ANOM_UNTERMINATED_MULTIPART, /* multipart without its close delimiter */
	MIME_ANOM_DEPTH_EXCEEDED,         /* nesting deeper than max_depth: the rest is opaque */
	MIME_ANOM_PARTS_EXCEEDED,         /* more than max_parts entities: the rest is ignored */
	MIME_ANOM_HEADER_TOO_LONG,        /* a field longer than max_header_line: truncated */
	MIME_ANOM_HEADERS_TOO_MANY,       /* more than max_headers fields in one header block */
	MIME_ANOM_BAD_BASE64,             /* bytes outside the base64 alphabet (skipped) */
	MIME_ANOM_TRUNCATED_BASE64,       /* base64 ending inside a 4-character group */
	MIME_ANOM_BAD_QP,                 /* '=' not followed by two hex digits or a line end */
	MIME_ANOM_BAD_CHARSET,            /* unknown charset: read as windows-1252 */
	MIME_ANOM_BAD_ENCODED_WORD,       /* malformed RFC 2047 word */
	MIME_ANOM_8BIT_HEADER,            /* raw bytes >= 0x80 in a header */
	MIME_ANOM_NO_HEADER_END,          /* header block ended without an empty line */
	MIME_ANOM_COUNT
};

/* "MIME_MISSING_BOUNDARY" etc.; "MIME_UNKNOWN" out of range. */
const char *mime_anomaly_name(enum mime_anomaly a);

struct mime_sink {
	void *arg;
	/* name and value_raw: the field as unfolded (CR LF removed, WSP kept), value trimmed of
	 * surrounding whitespace; value_decoded: the same with RFC 2047 words decoded, always
	 * valid UTF-8 (raw 8-bit text is taken as UTF-8 where valid, else windows-1252). */
	void (*header)(void *arg, unsigned depth, struct slice name, struct slice value_raw,
		       struct slice value_decoded);
	void (*headers_end)(void *arg, unsigned depth);
	void (*body_text)(void *arg, const uint8_t *p, size_t len);
	void (*rawbody)(void *arg, const uint8_t *p, size_t len);
	void (*uri)(void *arg, struct slice uri);
	void (*anomaly)(void *arg, enum mime_anomaly a, const char *name);
	/* raw: the structure and the bodies as they stand in the message (before transfer
	 * decoding), for the evals that look at encoded lines: kind MIME_RAW_BODY, _PREAMBLE or
	 * _EPILOGUE with bytes of the current line (any number of pieces), then eol true (no
	 * bytes) when that line ends with a line end of its own (the one before a delimiter
	 * belongs to the delimiter: a part's last line has none); MIME_RAW_PART_END after a
	 * leaf's (or a preamble's) text was delivered; MIME_RAW_DELIM / MIME_RAW_CLOSE at a
	 * delimiter line; MIME_RAW_HDR_END when a header block ends at a line, eol true if it
	 * was the empty line. */
	void (*raw)(void *arg, unsigned kind, const uint8_t *p, size_t len, bool eol);
};
/* Any callback may be NULL. */

enum mime_raw_kind {
	MIME_RAW_BODY = 1, MIME_RAW_PREAMBLE, MIME_RAW_EPILOGUE, MIME_RAW_PART_END,
	MIME_RAW_DELIM, MIME_RAW_CLOSE, MIME_RAW_HDR_END,
};

struct mime_limits {
	unsigned max_depth;       /* entity nesting (the message is depth 0); default 16 */
	unsigned max_parts;       /* entities per message; default 1000 */
	size_t   max_header_line; /* bytes in one unfolded field; default 64 KiB */
	unsigned max_headers;     /* fields per header block; default 1000 */
	size_t   max_text_bytes;  /* per message, for body_text and for rawbody each; 2 MiB;
				   * text after it is neither converted nor searched for URIs */
};

#define MIME_DEPTH_DEFAULT       16u
#define MIME_PARTS_DEFAULT       1000u
#define MIME_HEADER_LINE_DEFAULT (64u * 1024)
#define MIME_HEADERS_DEFAULT     1000u
#define MIME_TEXT_BYTES_DEFAULT  (2u * 1024 * 1024)

#define MIME_BOUNDARY_MAX 200u   /* RFC 2046 §5.1.1 says 70; longer ones are refused */
#define MIME_TEXT_PIECE   4096u  /* largest body_text / rawbody piece */
#define MIME_URI_MAX      2048u  /* longer URIs are cut to this */

struct mime_parser;

/* Returns 0, -ENOMEM, or -EINVAL (max_depth above 1000). A limit left 0 takes its default.
 * The sink is copied. */
int mime_parser_new(struct mime_parser **p_r, const struct mime_sink *sink,
		    const struct mime_limits *lim);
/* Forgets the message in progress (no callbacks); keeps buffers and the charset cache. */
void mime_parser_reset(struct mime_parser *p);
void mime_parser_feed(struct mime_parser *p, const uint8_t *data, size_t len);
/* The message is complete: flushes everything and reports what was left open. Feeding after
 * end is ignored until mime_parser_reset. */
void mime_parser_end(struct mime_parser *p);
void mime_parser_free(struct mime_parser **p);

#endif
