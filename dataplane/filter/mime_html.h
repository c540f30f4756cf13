/*
 * mime_html.h - HTML to text for body rules, and URIs from HTML attributes (after the HTML
 * Living Standard's tokenizer, much simplified).
 *
 * Streaming over UTF-8 input cut anywhere. Tags are removed; the content of script and style
 * is skipped; comments and declarations are skipped; character references (named, decimal,
 * hex) are decoded. The text is laid out as SpamAssassin's renderer (Mail::SpamAssassin::HTML)
 * lays it out, so that the consumer's paragraph rule (a blank line ends a paragraph, every other
 * run of white space is one space, Message::get_body_text_array_common) finds the same lines:
 * white space runs in text become one space; br and div (start or end tag) put "\n"; li, td,
 * th, dt, dd, embed and h1-h6 put " "; p, hr, blockquote, pre, listing, plaintext, xmp and
 * title put "\n\n"; such a tag trims the trailing space of the text just before it, and the
 * text just after it loses its leading space. Other tags (tr, table, ul, section, ...) put
 * nothing, as there. So "a<br>b" is one line and "a<br><br>b" or "<p>a</p>b" two. The values of
 * href, src, action and background attributes are handed to the URI callback, references
 * decoded and blanks removed, cut at MIME_URI_MAX bytes. State is bounded (the attribute value
 * is the largest part); linear time; no allocation. One renderer per parser; its thread.
 * tests/unit/data/html_sa_render.pl records SpamAssassin's rendering of the test cases.
 */
#ifndef SLUICE_FILTER_MIME_HTML_H
#define SLUICE_FILTER_MIME_HTML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mime.h"

enum { MIME_HTML_PREV_NONE, MIME_HTML_PREV_TEXT, MIME_HTML_PREV_WS };

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
	uint8_t prev;          /* MIME_HTML_PREV_*: the last element, as HTML.pm keeps them */
	bool    in_elem;       /* a text element is open (no markup since its first byte) */
	bool    lead_trim;     /* its leading white space is dropped (it follows a white space tag) */
	bool    sp_trail;      /* one space owed, at the end of the last text element */
	bool    sp_commit;     /* one space owed, from an earlier element */
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
