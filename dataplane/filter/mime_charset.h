/*
 * mime_charset.h - text in any charset to UTF-8, streaming (RFC 2046 §4.1.2, RFC 2978 names).
 *
 * UTF-8 and US-ASCII are validated in code; ISO-8859-1 and windows-1252 are mapped in code (as
 * windows-1252, the WHATWG rule, since mail labelled latin1 is mostly 1252); everything else
 * goes through glibc's iconv. Invalid or mislabelled bytes never stop the text: a byte that is
 * not valid UTF-8 in "UTF-8" text is read as windows-1252, an illegal sequence in an iconv
 * charset becomes U+FFFD. Output is always valid UTF-8, delivered in whole characters.
 *
 * The cache holds MIME_CHARSET_CACHE iconv descriptors (negative results too, so a bogus name
 * costs one iconv_open per parser, not one per part); it belongs to one parser, one thread.
 */
#ifndef SLUICE_FILTER_MIME_CHARSET_H
#define SLUICE_FILTER_MIME_CHARSET_H

#include <iconv.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIME_CHARSET_CACHE    8u
#define MIME_CHARSET_NAME_MAX 40u
#define MIME_CHARSET_OPENS    64u  /* per message: iconv_open costs ~1 us; a message naming
				       * thousands of charsets gets windows-1252 after these */

enum mime_charset_kind { MIME_CHARSET_UTF8, MIME_CHARSET_1252, MIME_CHARSET_ICONV };

struct mime_charset_cache {
	struct {
		char    name[MIME_CHARSET_NAME_MAX];
		iconv_t cd;      /* (iconv_t)-1: the name is unknown */
	} e[MIME_CHARSET_CACHE];
	unsigned n, next;
	unsigned opens_left;   /* iconv_open calls still allowed for this message */
};

struct mime_charset_conv {
	uint8_t kind;
	uint8_t npend;       /* bytes of an incomplete character kept for the next call */
	uint8_t pend[14];
	iconv_t cd;
};

typedef void mime_charset_out_fn(void *arg, const uint8_t *p, size_t n);

void mime_charset_cache_init(struct mime_charset_cache *c);
void mime_charset_cache_free(struct mime_charset_cache *c);
/* A new message: renews the iconv_open allowance. */
static inline void mime_charset_cache_message(struct mime_charset_cache *c)
{
	c->opens_left = MIME_CHARSET_OPENS;
}

/* Sets *conv up for the named charset (len 0: none given, read as UTF-8 with the 1252
 * fallback). Returns 0, or -ENOENT for an unknown name, or a new name once the message's
 * allowance of iconv_open calls is spent (conv then reads windows-1252). */
int mime_charset_open(struct mime_charset_cache *c, const char *name, size_t len,
		      struct mime_charset_conv *conv);
void mime_charset_feed(struct mime_charset_conv *conv, const uint8_t *in, size_t n,
		       mime_charset_out_fn *out, void *arg);
/* End of the text: flushes an incomplete character (as U+FFFD or 1252) and resets the state. */
void mime_charset_end(struct mime_charset_conv *conv, mime_charset_out_fn *out, void *arg);

/* Writes the UTF-8 form of cp (at most 4 bytes); returns the length. */
size_t mime_charset_put_utf8(uint32_t cp, uint8_t *out);
/* windows-1252 byte to code point */
uint32_t mime_charset_1252(uint8_t b);
/* Length of the valid UTF-8 sequence at p (1..4), 0 if invalid, -1 if a valid prefix is cut
 * by the end of the n available bytes. */
int mime_charset_utf8_len(const uint8_t *p, size_t n);

#endif
