/*
 * mime_html.c - HTML to text and attribute URIs (see mime_html.h).
 *
 * XXX: the named character references known are HTML 4's Latin-1 set and the common
 * punctuation ones (about 130 of HTML's 2,231); an unknown name is kept as text, which is what
 * body rules written against SpamAssassin's renderer expect for rare names anyway.
 * XXX: where SpamAssassin's renderer differs and this one does not follow (yet): text that its
 * font checks find invisible does not trim the space before a white space tag; xmp, plaintext
 * and textarea contents are parsed as markup (HTML::Parser reads them as literal text).
 */
#include "mime_html.h"

#include <string.h>

#include "mime_charset.h"

enum {
	H_TEXT, H_ENT, H_LT, H_ENDLT, H_NAME, H_ATTRS, H_ANAME, H_AFTER_ANAME, H_BEFORE_VAL,
	H_VAL_Q, H_VAL_U, H_BANG, H_BANG_DASH, H_COMMENT, H_BOGUS, H_RAW, H_RAW_END,
};

#define ENT_MAX 10

/* HTML 4 names for U+00A0..U+00FF, in order */
static const char *const latin1_names[96] = {
	"nbsp", "iexcl", "cent", "pound", "curren", "yen", "brvbar", "sect", "uml", "copy",
	"ordf", "laquo", "not", "shy", "reg", "macr", "deg", "plusmn", "sup2", "sup3", "acute",
	"micro", "para", "middot", "cedil", "sup1", "ordm", "raquo", "frac14", "frac12",
	"frac34", "iquest", "Agrave", "Aacute", "Acirc", "Atilde", "Auml", "Aring", "AElig",
	"Ccedil", "Egrave", "Eacute", "Ecirc", "Euml", "Igrave", "Iacute", "Icirc", "Iuml",
	"ETH", "Ntilde", "Ograve", "Oacute", "Ocirc", "Otilde", "Ouml", "times", "Oslash",
	"Ugrave", "Uacute", "Ucirc", "Uuml", "Yacute", "THORN", "szlig", "agrave", "aacute",
	"acirc", "atilde", "auml", "aring", "aelig", "ccedil", "egrave", "eacute", "ecirc",
	"euml", "igrave", "iacute", "icirc", "iuml", "eth", "ntilde", "ograve", "oacute",
	"ocirc", "otilde", "ouml", "divide", "oslash", "ugrave", "uacute", "ucirc", "uuml",
	"yacute", "thorn", "yuml",
};

static const struct {
	const char *name;
	uint32_t    cp;
} other_names[] = {
	{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' },
	{ "AMP", '&' }, { "LT", '<' }, { "GT", '>' }, { "QUOT", '"' }, { "NBSP", 0xa0 },
	{ "OElig", 0x152 }, { "oelig", 0x153 }, { "Scaron", 0x160 }, { "scaron", 0x161 },
	{ "Yuml", 0x178 }, { "fnof", 0x192 }, { "circ", 0x2c6 }, { "tilde", 0x2dc },
	{ "ensp", 0x2002 }, { "emsp", 0x2003 }, { "thinsp", 0x2009 }, { "zwnj", 0x200c },
	{ "zwj", 0x200d }, { "lrm", 0x200e }, { "rlm", 0x200f }, { "ndash", 0x2013 },
	{ "mdash", 0x2014 }, { "lsquo", 0x2018 }, { "rsquo", 0x2019 }, { "sbquo", 0x201a },
	{ "ldquo", 0x201c }, { "rdquo", 0x201d }, { "bdquo", 0x201e }, { "dagger", 0x2020 },
	{ "Dagger", 0x2021 }, { "bull", 0x2022 }, { "hellip", 0x2026 }, { "permil", 0x2030 },
	{ "lsaquo", 0x2039 }, { "rsaquo", 0x203a }, { "euro", 0x20ac }, { "trade", 0x2122 },
	{ "larr", 0x2190 }, { "rarr", 0x2192 }, { "uarr", 0x2191 }, { "darr", 0x2193 },
	{ "hearts", 0x2665 }, { "diams", 0x2666 }, { "spades", 0x2660 }, { "clubs", 0x2663 },
};

static bool ent_lookup(const char *e, size_t n, uint32_t *cp_r)
{
	if (n >= 2 && e[0] == '#') {
		uint32_t cp = 0;
		size_t i = 1;
		bool hex = (e[1] | 0x20) == 'x';

		if (hex)
			i++;
		if (i >= n)
			return false;
		for (; i < n; i++) {
			int d;

			if (e[i] >= '0' && e[i] <= '9')
				d = e[i] - '0';
			else if (hex && (e[i] | 0x20) >= 'a' && (e[i] | 0x20) <= 'f')
				d = (e[i] | 0x20) - 'a' + 10;
			else
				return false;
			cp = cp * (hex ? 16 : 10) + (uint32_t)d;
			if (cp > 0x10ffff)
				cp = 0x110000;  /* saturate */
		}
		if (cp == 0 || cp > 0x10ffff)
			cp = 0xfffd;
		else if (cp >= 0x80 && cp < 0xa0)
			cp = mime_charset_1252((uint8_t)cp);  /* HTML: C1 references mean 1252 */
		*cp_r = cp;
		return true;
	}
	for (size_t i = 0; i < 96; i++)
		if (strlen(latin1_names[i]) == n && memcmp(latin1_names[i], e, n) == 0) {
			*cp_r = 0xa0 + (uint32_t)i;
			return true;
		}
	for (size_t i = 0; i < sizeof(other_names) / sizeof(other_names[0]); i++)
		if (strlen(other_names[i].name) == n && memcmp(other_names[i].name, e, n) == 0) {
			*cp_r = other_names[i].cp;
			return true;
		}
	return false;
}

static inline bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static inline bool is_alpha(uint8_t c)
{
	c |= 0x20;
	return c >= 'a' && c <= 'z';
}

static inline bool is_alnum(uint8_t c)
{
	return is_alpha(c) || (c >= '0' && c <= '9');
}

static inline char lower(uint8_t c)
{
	return (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
}

static void out_flush(struct mime_html *h)
{
	if (h->on) {
		h->text(h->arg, h->out, h->on);
		h->on = 0;
	}
}

static inline void out_byte(struct mime_html *h, uint8_t c)
{
	if (h->on == sizeof(h->out))
		out_flush(h);
	h->out[h->on++] = c;
}

/*
 * The text follows SpamAssassin's HTML.pm (display_text): the text between two pieces of markup
 * is one element, its white space runs made one space; a white space element (a tag of
 * ws_tags, start or end) trims the trailing space of the text element just before it, and the
 * text element just after it loses its leading space. Only the space at the end of the last
 * text element can still be trimmed (sp_trail); one of an earlier element is kept (sp_commit).
 */
static void elem_begin(struct mime_html *h)
{
	if (h->in_elem)
		return;
	h->in_elem = true;
	if (h->sp_trail) {
		h->sp_commit = true;
		h->sp_trail = false;
	}
	h->lead_trim = h->prev == MIME_HTML_PREV_WS;
	h->prev = MIME_HTML_PREV_TEXT;
}

/* A white space run of text. */
static void put_ws(struct mime_html *h)
{
	elem_begin(h);
	if (!h->lead_trim)
		h->sp_trail = true;
}

/* Visible text: a pending white space run becomes one space first. */
static void put_text(struct mime_html *h, const uint8_t *p, size_t n)
{
	elem_begin(h);
	if (h->sp_commit || h->sp_trail)
		out_byte(h, ' ');
	h->sp_commit = h->sp_trail = false;
	h->lead_trim = false;
	while (n) {
		size_t k;

		if (h->on == sizeof(h->out))
			out_flush(h);
		k = sizeof(h->out) - h->on;
		if (k > n)
			k = n;
		memcpy(h->out + h->on, p, k);
		h->on += k;
		p += k;
		n -= k;
	}
}

/* Markup begins: the text element before it, if any, is complete. */
static void elem_end(struct mime_html *h)
{
	h->in_elem = false;
}

/* A white space element: "\n", " " or "\n\n". */
static void put_ws_elem(struct mime_html *h, const char *s)
{
	if (h->prev == MIME_HTML_PREV_TEXT)
		h->sp_trail = false;
	if (h->sp_commit || h->sp_trail)
		out_byte(h, ' ');
	h->sp_commit = h->sp_trail = false;
	for (; *s; s++)
		out_byte(h, (uint8_t)*s);
	h->prev = MIME_HTML_PREV_WS;
	h->in_elem = false;
}

static void put_cp(struct mime_html *h, uint32_t cp)
{
	uint8_t u[4];

	if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v' ||
	    cp == 0xa0) {
		put_ws(h);
		return;
	}
	put_text(h, u, mime_charset_put_utf8(cp, u));
}

/* An '&' that was not a reference: its text as it was. */
static void ent_literal(struct mime_html *h, bool semi)
{
	put_text(h, (const uint8_t *)"&", 1);
	if (h->entlen)
		put_text(h, (const uint8_t *)h->ent, h->entlen);
	if (semi)
		put_text(h, (const uint8_t *)";", 1);
}

static int tag_in(const char *name, const char *const *list)
{
	for (; *list; list++)
		if ((*list)[0] == name[0] && strcmp(name, *list) == 0)
			return 1;
	return 0;
}

/* HTML.pm's html_whitespace(), for start and end tags alike */
static const char *const ws_nl_tags[] = { "br", "div", NULL };
static const char *const ws_sp_tags[] = {
	"dd", "dt", "embed", "h1", "h2", "h3", "h4", "h5", "h6", "li", "td", "th", NULL,
};
static const char *const ws_para_tags[] = {
	"blockquote", "hr", "listing", "p", "plaintext", "pre", "title", "xmp", NULL,
};

static void tag_end(struct mime_html *h)
{
	h->name[h->namelen] = 0;
	if (h->namelen <= 10) {
		if (tag_in(h->name, ws_nl_tags))
			put_ws_elem(h, "\n");
		else if (tag_in(h->name, ws_sp_tags))
			put_ws_elem(h, " ");
		else if (tag_in(h->name, ws_para_tags))
			put_ws_elem(h, "\n\n");
	}
	h->st = H_TEXT;
	if (!h->closing && !h->selfclose &&
	    (strcmp(h->name, "script") == 0 || strcmp(h->name, "style") == 0)) {
		h->rawend[0] = '<';
		h->rawend[1] = '/';
		memcpy(h->rawend + 2, h->name, h->namelen);  /* "</" + at most "script" */
		h->rawlen = (uint8_t)(2 + h->namelen);
		h->rawmatch = 0;
		h->st = H_RAW;
	}
}

static void attr_name_end(struct mime_html *h)
{
	h->attr[h->attrlen] = 0;
	h->want_val = strcmp(h->attr, "href") == 0 || strcmp(h->attr, "src") == 0 ||
		      strcmp(h->attr, "action") == 0 || strcmp(h->attr, "background") == 0;
	h->vlen = 0;
}

/* Decodes references in place (the decoded form is never longer), drops blanks the way
 * browsers do for URLs, and hands the value on. */
static void val_end(struct mime_html *h)
{
	char *v = h->val;
	size_t n = h->vlen, o = 0, i = 0, s, e;

	if (!h->want_val)
		return;
	h->want_val = false;
	while (i < n) {
		uint8_t c = (uint8_t)v[i];

		if (c == '&') {
			size_t j = i + 1;
			uint32_t cp;

			while (j < n && j - i - 1 < ENT_MAX && (is_alnum((uint8_t)v[j]) || (v[j] == '#' && j == i + 1)))
				j++;
			if (j > i + 1 && ent_lookup(v + i + 1, j - i - 1, &cp)) {
				uint8_t u[4];
				size_t k = mime_charset_put_utf8(cp, u);

				if (j < n && v[j] == ';')
					j++;
				if (k <= j - i) {
					memcpy(v + o, u, k);
					o += k;
					i = j;
					continue;
				}
			}
		}
		if (c != '\t' && c != '\n' && c != '\r')
			v[o++] = (char)c;
		i++;
	}
	s = 0;
	e = o;
	while (s < e && (uint8_t)v[s] <= ' ')
		s++;
	while (e > s && (uint8_t)v[e - 1] <= ' ')
		e--;
	if (e > s)
		h->uri(h->arg, v + s, e - s);
}

void mime_html_init(struct mime_html *h, mime_html_text_fn *text, mime_html_uri_fn *uri,
		    void *arg)
{
	memset(h, 0, offsetof(struct mime_html, out));
	h->text = text;
	h->uri = uri;
	h->arg = arg;
	h->st = H_TEXT;
	h->prev = MIME_HTML_PREV_NONE;
}

void mime_html_feed(struct mime_html *h, const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];

		switch (h->st) {
		case H_TEXT: {
			size_t j = i;

			while (j < n && p[j] != '<' && p[j] != '&' && !is_ws(p[j]))
				j++;
			if (j > i) {
				put_text(h, p + i, j - i);
				i = j;
				continue;
			}
			if (c == '<') {
				h->st = H_LT;
			} else if (c == '&') {
				h->st = H_ENT;
				h->entlen = 0;
			} else {
				put_ws(h);
			}
			i++;
			continue;
		}
		case H_ENT:
			if (h->entlen < ENT_MAX && (is_alnum(c) || (c == '#' && h->entlen == 0))) {
				h->ent[h->entlen++] = (char)c;
				i++;
				continue;
			}
			{
				uint32_t cp;
				bool semi = c == ';';

				h->st = H_TEXT;
				if (h->entlen && ent_lookup(h->ent, h->entlen, &cp))
					put_cp(h, cp);
				else
					ent_literal(h, semi);
				if (semi)
					i++;
			}
			continue;  /* c is read again as text unless it was the ';' */
		case H_LT:
			if (is_alpha(c)) {
				elem_end(h);
				h->st = H_NAME;
				h->closing = h->selfclose = false;
				h->namelen = 0;
			} else if (c == '/') {
				h->st = H_ENDLT;
				i++;
			} else if (c == '!') {
				elem_end(h);
				h->st = H_BANG;
				i++;
			} else if (c == '?') {
				elem_end(h);
				h->st = H_BOGUS;
				i++;
			} else {
				h->st = H_TEXT;
				put_text(h, (const uint8_t *)"<", 1);
			}
			continue;
		case H_ENDLT:
			elem_end(h);
			if (is_alpha(c)) {
				h->st = H_NAME;
				h->closing = true;
				h->selfclose = false;
				h->namelen = 0;
			} else {
				h->st = c == '>' ? H_TEXT : H_BOGUS;
				i++;
			}
			continue;
		case H_NAME:
			if (is_ws(c) || c == '/' || c == '>') {
				h->st = H_ATTRS;
				continue;
			}
			if (h->namelen < sizeof(h->name) - 1)
				h->name[h->namelen++] = lower(c);
			i++;
			continue;
		case H_ATTRS:
			i++;
			if (is_ws(c))
				continue;
			if (c == '/') {
				h->selfclose = true;
			} else if (c == '>') {
				tag_end(h);
			} else {
				h->selfclose = false;
				h->attr[0] = lower(c);
				h->attrlen = 1;
				h->st = H_ANAME;
			}
			continue;
		case H_ANAME:
			if (c == '=' || is_ws(c) || c == '/' || c == '>') {
				attr_name_end(h);
				if (c == '=') {
					h->st = H_BEFORE_VAL;
					i++;
				} else {
					h->st = is_ws(c) ? H_AFTER_ANAME : H_ATTRS;
					if (is_ws(c))
						i++;
				}
				continue;
			}
			if (h->attrlen < sizeof(h->attr) - 1)
				h->attr[h->attrlen++] = lower(c);
			i++;
			continue;
		case H_AFTER_ANAME:
			if (is_ws(c)) {
				i++;
			} else if (c == '=') {
				h->st = H_BEFORE_VAL;
				i++;
			} else {
				h->want_val = false;
				h->st = H_ATTRS;
			}
			continue;
		case H_BEFORE_VAL:
			if (is_ws(c)) {
				i++;
			} else if (c == '"' || c == '\'') {
				h->quote = c;
				h->st = H_VAL_Q;
				i++;
			} else if (c == '>') {
				h->want_val = false;
				h->st = H_ATTRS;
			} else {
				h->st = H_VAL_U;
			}
			continue;
		case H_VAL_Q: {
			const uint8_t *q = memchr(p + i, h->quote, n - i);
			size_t j = q ? (size_t)(q - p) : n;

			if (h->want_val && h->vlen < sizeof(h->val)) {
				size_t k = j - i;

				if (k > sizeof(h->val) - h->vlen)
					k = sizeof(h->val) - h->vlen;
				memcpy(h->val + h->vlen, p + i, k);
				h->vlen += k;
			}
			i = j;
			if (q) {
				val_end(h);
				h->st = H_ATTRS;
				i++;
			}
			continue;
		}
		case H_VAL_U:
			if (is_ws(c) || c == '>') {
				val_end(h);
				h->st = H_ATTRS;
				continue;
			}
			if (h->want_val && h->vlen < sizeof(h->val))
				h->val[h->vlen++] = (char)c;
			i++;
			continue;
		case H_BANG:
			i++;
			if (c == '-')
				h->st = H_BANG_DASH;
			else
				h->st = c == '>' ? H_TEXT : H_BOGUS;
			continue;
		case H_BANG_DASH:
			i++;
			if (c == '-') {
				h->st = H_COMMENT;
				h->dashes = 0;
			} else {
				h->st = c == '>' ? H_TEXT : H_BOGUS;
			}
			continue;
		case H_COMMENT: {
			/* skip to the next '-' or '>' in bulk */
			size_t j = i;

			while (j < n && p[j] != '-' && p[j] != '>')
				j++;
			if (j > i) {
				h->dashes = 0;
				i = j;
				continue;
			}
			i++;
			if (c == '-') {
				if (h->dashes < 2)
					h->dashes++;
			} else if (h->dashes >= 2) {
				h->st = H_TEXT;
			} else {
				h->dashes = 0;
			}
			continue;
		}
		case H_BOGUS: {
			const uint8_t *q = memchr(p + i, '>', n - i);

			if (q == NULL) {
				i = n;
			} else {
				i = (size_t)(q - p) + 1;
				h->st = H_TEXT;
			}
			continue;
		}
		case H_RAW:
			if (h->rawmatch == 0) {
				const uint8_t *q = memchr(p + i, '<', n - i);

				if (q == NULL) {
					i = n;
					continue;
				}
				i = (size_t)(q - p);
				c = '<';
			}
			i++;
			if (lower(c) == h->rawend[h->rawmatch]) {
				if (++h->rawmatch == h->rawlen)
					h->st = H_RAW_END;
			} else {
				h->rawmatch = c == '<';
			}
			continue;
		case H_RAW_END:
			if (is_ws(c) || c == '/' || c == '>') {
				h->st = c == '>' ? H_TEXT : H_BOGUS;
				i++;
			} else {
				h->st = H_RAW;
				h->rawmatch = 0;  /* c is read again */
			}
			continue;
		}
	}
	out_flush(h);
}

void mime_html_end(struct mime_html *h)
{
	if (h->st == H_ENT)
		ent_literal(h, false);
	else if (h->st == H_LT)
		put_text(h, (const uint8_t *)"<", 1);
	h->st = H_TEXT;
	if (h->sp_commit || h->sp_trail)
		out_byte(h, ' ');
	h->sp_commit = h->sp_trail = false;
	out_flush(h);
}
