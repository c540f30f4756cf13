/*
 * mime_header.h - header field values: RFC 2047 encoded words, and the Content-Type and
 * Content-Transfer-Encoding fields that steer the parser (RFC 2045 §5, §6; RFC 2231 §3-4).
 *
 * Pure functions over one unfolded value; any thread. Tolerant of what mail really contains:
 * parameters without ';' between them, spaces around '=', encoded words with spaces inside,
 * RFC 2231 continuations in any order (up to MIME_HEADER_PIECES pieces).
 */
#ifndef SLUICE_FILTER_MIME_HEADER_H
#define SLUICE_FILTER_MIME_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mime.h"
#include "mime_charset.h"
#include "mime_gbuf.h"

#define MIME_HEADER_PIECES 16u

#define MIME_HEADER_F_BAD_EW      0x01u  /* malformed encoded word (kept as text) */
#define MIME_HEADER_F_BAD_CHARSET 0x02u  /* encoded word in an unknown charset */

/* Decodes value v (n bytes, unfolded) into out as UTF-8: encoded words decoded and converted,
 * white space between adjacent encoded words dropped (RFC 2047 §6.2), other text taken as UTF-8
 * where valid and windows-1252 elsewhere. tmp is scratch. Returns MIME_HEADER_F_* flags. */
unsigned mime_header_decode(struct mime_charset_cache *cc, const char *v, size_t n,
			    struct mime_gbuf *out, struct mime_gbuf *tmp);

enum mime_header_major {
	MIME_HEADER_CT_TEXT,
	MIME_HEADER_CT_MULTIPART,
	MIME_HEADER_CT_MESSAGE,   /* message/rfc822 or message/global: a message inside */
	MIME_HEADER_CT_OTHER,
};

struct mime_header_ctype {
	uint8_t major;            /* enum mime_header_major */
	bool    html;             /* text/html */
	bool    digest;           /* multipart/digest: parts default to message/rfc822 */
	bool    has_boundary;     /* a usable boundary (1..MIME_BOUNDARY_MAX bytes) */
	uint8_t charset_len;
	uint16_t boundary_len;
	char    boundary[MIME_BOUNDARY_MAX];
	char    charset[MIME_CHARSET_NAME_MAX];
};

/* Parses a Content-Type value into *ct (fully overwritten). A value it cannot read is
 * text/plain. */
void mime_header_ctype(const char *v, size_t n, struct mime_header_ctype *ct);

enum mime_header_cte { MIME_HEADER_CTE_IDENTITY, MIME_HEADER_CTE_B64, MIME_HEADER_CTE_QP };

enum mime_header_cte mime_header_cte(const char *v, size_t n);

#endif
