/*
 * mime_uri.h - URIs in plain text: http://, https://, ftp://, mailto: and www. (RFC 3986 §3.1
 * schemes; the "www." form as mail readers linkify it, reported with "http://" in front).
 *
 * Streaming: text is cut into words (runs of bytes other than white space, controls, < > " `),
 * each word is kept up to MIME_URI_MAX bytes and looked at once when it ends, so the cost is
 * linear. Trailing punctuation (. , ; : ! ? ) ] } ' ") is not part of the URI. One scanner per
 * parser; its thread.
 */
#ifndef SLUICE_FILTER_MIME_URI_H
#define SLUICE_FILTER_MIME_URI_H

#include <stddef.h>
#include <stdint.h>

#include "mime.h"

typedef void mime_uri_fn(void *arg, const char *p, size_t n);

struct mime_uri_scan {
	size_t  len;                     /* bytes kept of a word cut by the end of a piece */
	uint8_t trig;                    /* it has a ':' or '.' */
	char    word[MIME_URI_MAX];
};

static inline void mime_uri_scan_init(struct mime_uri_scan *s) { s->len = 0; s->trig = 0; }
void mime_uri_scan_feed(struct mime_uri_scan *s, const uint8_t *p, size_t n, mime_uri_fn *fn,
			void *arg);
/* End of the text: the last word is looked at. */
void mime_uri_scan_end(struct mime_uri_scan *s, mime_uri_fn *fn, void *arg);

#endif
