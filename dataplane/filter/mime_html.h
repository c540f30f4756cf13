/*
 * mime_html.h - HTML to text for body rules, and URIs from HTML attributes (after the HTML
 * Living Standard's tokenizer, much simplified).
 *
 * Streaming over UTF-8 input cut anywhere. Tags are removed; the content of script and style
 * is skipped; comments and declarations are skipped; character references (named, decimal,
 * hex) are decoded; white space runs become one space; block elements (p, div, br, tr, li, h1-6,
 * table, ...) end a line; td and th become a space. The values of href, src, action and
 * background attributes are handed to the URI callback, references decoded and blanks removed,
 * cut at MIME_URI_MAX bytes. State is bounded (the attribute value is the largest part); linear
 * time. One renderer per parser; its thread.
 */
#ifndef SLUICE_FILTER_MIME_HTML_H
#define SLUICE_FILTER_MIME_HTML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mime.h"

typedef void mime_html_text_fn(void *arg, const uint8_t *p, size_t n);
typedef void mime_html_uri_fn(void *arg, const char *p, size_t n);

struct mime_html {
	mime_html_text_fn *text;
	mime_html_uri_fn  *uri;
	void              *arg;
	uint8_t st;            /* private */
	uint8_t quote;         /* the quote of the attribute value being read */
	uint8_t namelen, attrlen, entlen, rawlen, rawmatch, dashes;
	bool    closing;       /* </tag> */
	bool    selfclose;     /* <tag/> */
	bool    want_val;      /* the attribute's value is a URI */
	bool    ws_pending;    /* white space seen since the last character written */
	bool    at_bol;        /* nothing written on this line yet */
	char    name[16];
	char    attr[16];
	char    ent[12];
	char    rawend[8];     /* "script" or "style" while their content is skipped */
	size_t  vlen;
	size_t  on;
	uint8_t out[512];
	char    val[MIME_URI_MAX];
};

void mime_html_init(struct mime_html *h, mime_html_text_fn *text, mime_html_uri_fn *uri,
		    void *arg);
void mime_html_feed(struct mime_html *h, const uint8_t *p, size_t n);
/* End of the document: flushes the text (an unfinished tag or comment is dropped). */
void mime_html_end(struct mime_html *h);

#endif
