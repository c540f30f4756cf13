/*
 * smtp_parse.c - the SMTP command parser: command line assembly across reads (zero-copy when a
 * line arrives whole), the verb split, and the MAIL/RCPT/BDAT/HELO argument grammars.
 *
 * RFC 5321 §2.3.8 (lines end in CR LF; we accept a bare LF as the end of a command line, as every
 * MTA does, but a CR anywhere but right before the LF is refused), §4.1.1.1-3 (HELO/EHLO, MAIL,
 * RCPT), §4.1.2 (Path, Mailbox, Local-part, Domain, address literals, esmtp-param), §4.1.3
 * (IPv4/IPv6/General address literals), §4.5.3.1 (the 512/256/64/255 limits, in smtp_limits.h).
 * RFC 6531 §3.3 (UTF-8 in atoms, quoted strings and domain labels; the SMTPUTF8 parameter),
 * RFC 1870 (SIZE), RFC 6152 (BODY=8BITMIME), RFC 3030 (BODY=BINARYMIME, BDAT),
 * RFC 3461 §4 (RET, ENVID, NOTIFY, ORCPT; xtext), RFC 6533 §3 (ORCPT=utf-8;...).
 *
 * Pure functions over bounded buffers: no allocation, no I/O, no globals but const tables; any
 * thread. Every function reads only inside the slice it is given, whatever the bytes are (the
 * line assembler refuses NUL and bare CR, but these parsers do not rely on it).
 *
 * Strictness: the address grammar is RFC 5321's, not Postfix's liberal one: "a..b@x", ".a@x",
 * "a@x." and a path without angle brackets are refused. The compromises towards real clients are
 * the ones the header names: a bare LF ends a command line, several SP or an HTAB after the verb,
 * one SP after "FROM:"/"TO:", several SP between parameters.
 */
#include "smtp_parse.h"

#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------------------------------------ */
/* Line assembly                                                                               */

void smtp_line_init(struct smtp_line *lb)
{
	lb->len = 0;
	lb->overflow = false;
	lb->bad = false;
	lb->discarded = 0;
}

static void line_reset(struct smtp_line *lb)
{
	lb->len = 0;
	lb->overflow = false;
	lb->bad = false;
	lb->discarded = 0;
}

/* A command line holds neither NUL nor CR (the one CR before the LF is already stripped). */
static bool line_has_bad(const char *p, size_t n)
{
	return memchr(p, '\r', n) != NULL || memchr(p, '\0', n) != NULL;
}

enum smtp_parse_status smtp_line_next(struct smtp_line *lb, const uint8_t *in, size_t len,
				      size_t max, struct slice *line_r, size_t *used_r)
{
	/* A line that straddles reads must fit lb->buf; the LF itself is never stored. */
	size_t hold_max = max < sizeof(lb->buf) ? max : sizeof(lb->buf);
	const uint8_t *lf = len ? memchr(in, '\n', len) : NULL;

	line_r->p = NULL;
	line_r->len = 0;
	if (lf == NULL) {
		*used_r = len;
		if (lb->overflow) {
			lb->discarded = len > UINT32_MAX - lb->discarded ? UINT32_MAX : lb->discarded + (uint32_t)len;
			return SMTP_PARSE_AGAIN;
		}
		if (len == 0)
			return SMTP_PARSE_AGAIN;
		/* Held bytes (no LF yet): at most hold_max - 1, so the LF still fits the limit. */
		if ((size_t)lb->len + len + 1 > hold_max) {
			lb->overflow = true;
			lb->discarded = (uint32_t)(lb->len + len);
			lb->len = 0;
			lb->bad = false;
			return SMTP_PARSE_AGAIN;
		}
		/* Track NUL and CR as they arrive; a CR that ends the held part may still be the CR
		 * of CR LF, so only a CR with something after it is bad here. */
		size_t from = lb->len ? lb->len - 1u : 0;
		memcpy(lb->buf + lb->len, in, len);
		lb->len = (uint16_t)(lb->len + len);
		if (!lb->bad && (memchr(in, '\0', len) != NULL ||
				 memchr(lb->buf + from, '\r', lb->len - 1u - from) != NULL))
			lb->bad = true;
		return SMTP_PARSE_AGAIN;
	}

	size_t n = (size_t)(lf - in);   /* bytes before the LF */
	*used_r = n + 1;
	if (lb->overflow) {
		line_reset(lb);
		return SMTP_PARSE_TOOLONG;
	}

	const char *p;
	size_t plen;
	if (lb->len == 0) {
		/* The whole line is in the input: hand out a slice of it, no copy. */
		if (n + 1 > max) {
			line_reset(lb);
			return SMTP_PARSE_TOOLONG;
		}
		p = (const char *)in;
		plen = n;
	} else {
		if ((size_t)lb->len + n + 1 > hold_max) {
			line_reset(lb);
			return SMTP_PARSE_TOOLONG;
		}
		memcpy(lb->buf + lb->len, in, n);
		p = lb->buf;
		plen = (size_t)lb->len + n;
		lb->len = 0;   /* the bytes stay valid in buf until the next call */
	}
	lb->bad = false;
	lb->overflow = false;
	if (plen && p[plen - 1] == '\r')
		plen--;
	if (line_has_bad(p, plen))
		return SMTP_PARSE_BAD;
	line_r->p = p;
	line_r->len = plen;
	return SMTP_PARSE_DONE;
}

/* ------------------------------------------------------------------------------------------ */
/* Verbs                                                                                       */

static const char *const verb_names[SMTP_VERB_COUNT] = {
	[SMTP_VERB_UNKNOWN] = "UNKNOWN", [SMTP_VERB_HELO] = "HELO", [SMTP_VERB_EHLO] = "EHLO",
	[SMTP_VERB_MAIL] = "MAIL", [SMTP_VERB_RCPT] = "RCPT", [SMTP_VERB_DATA] = "DATA",
	[SMTP_VERB_BDAT] = "BDAT", [SMTP_VERB_RSET] = "RSET", [SMTP_VERB_NOOP] = "NOOP",
	[SMTP_VERB_QUIT] = "QUIT", [SMTP_VERB_VRFY] = "VRFY", [SMTP_VERB_EXPN] = "EXPN",
	[SMTP_VERB_HELP] = "HELP", [SMTP_VERB_STARTTLS] = "STARTTLS", [SMTP_VERB_AUTH] = "AUTH",
	[SMTP_VERB_HTTP] = "HTTP",
};

const char *smtp_verb_name(enum smtp_verb v)
{
	if ((unsigned)v >= SMTP_VERB_COUNT)
		return "UNKNOWN";
	return verb_names[v];
}

/* Four bytes folded to lower case: exact for comparisons against lower-case letters, because
 * b | 0x20 equals a lower-case letter only when b is that letter in either case. */
static uint32_t fold4(const char *p)
{
	return ((uint32_t)(uint8_t)p[0] | (uint32_t)(uint8_t)p[1] << 8 |
		(uint32_t)(uint8_t)p[2] << 16 | (uint32_t)(uint8_t)p[3] << 24) | 0x20202020u;
}

#define V4(a, b, c, d) \
	((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

static enum smtp_verb verb_lookup(const char *p, size_t n)
{
	if (n == 4) {
		switch (fold4(p)) {
		case V4('h', 'e', 'l', 'o'): return SMTP_VERB_HELO;
		case V4('e', 'h', 'l', 'o'): return SMTP_VERB_EHLO;
		case V4('m', 'a', 'i', 'l'): return SMTP_VERB_MAIL;
		case V4('r', 'c', 'p', 't'): return SMTP_VERB_RCPT;
		case V4('d', 'a', 't', 'a'): return SMTP_VERB_DATA;
		case V4('b', 'd', 'a', 't'): return SMTP_VERB_BDAT;
		case V4('r', 's', 'e', 't'): return SMTP_VERB_RSET;
		case V4('n', 'o', 'o', 'p'): return SMTP_VERB_NOOP;
		case V4('q', 'u', 'i', 't'): return SMTP_VERB_QUIT;
		case V4('v', 'r', 'f', 'y'): return SMTP_VERB_VRFY;
		case V4('e', 'x', 'p', 'n'): return SMTP_VERB_EXPN;
		case V4('h', 'e', 'l', 'p'): return SMTP_VERB_HELP;
		case V4('a', 'u', 't', 'h'): return SMTP_VERB_AUTH;
		case V4('p', 'o', 's', 't'): return SMTP_VERB_HTTP;
		case V4('h', 'e', 'a', 'd'): return SMTP_VERB_HTTP;
		default: return SMTP_VERB_UNKNOWN;
		}
	}
	/* HTTP methods are case-sensitive; matching them loosely only catches more abuse. */
	if ((n == 3 && (strncasecmp(p, "GET", 3) == 0 || strncasecmp(p, "PUT", 3) == 0)) ||
	    (n == 7 && (strncasecmp(p, "CONNECT", 7) == 0 || strncasecmp(p, "OPTIONS", 7) == 0)))
		return SMTP_VERB_HTTP;
	if (n == 8 && strncasecmp(p, "STARTTLS", 8) == 0)
		return SMTP_VERB_STARTTLS;
	return SMTP_VERB_UNKNOWN;
}

static bool is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

enum smtp_verb smtp_parse_verb_sloppy(struct slice line, struct slice *arg_r, bool *sloppy_r)
{
	const char *p = line.p;
	size_t n = line.len, i = 0;
	bool sloppy = false;

	while (i < n && !is_wsp(p[i]))
		i++;
	enum smtp_verb v = verb_lookup(p, i);
	size_t a = i;
	if (a < n) {
		/* exactly one SP is the grammar; more, or an HTAB, is tolerated and counted */
		if (p[a] != ' ')
			sloppy = true;
		a++;
		while (a < n && is_wsp(p[a])) {
			sloppy = true;
			a++;
		}
	}
	size_t e = n;
	while (e > a && is_wsp(p[e - 1]))
		e--;
	arg_r->p = n ? p + a : p;   /* no arithmetic on an empty slice's pointer, maybe NULL */
	arg_r->len = e - a;
	if (sloppy_r)
		*sloppy_r = sloppy;
	return v;
}

enum smtp_verb smtp_parse_verb(struct slice line, struct slice *arg_r)
{
	return smtp_parse_verb_sloppy(line, arg_r, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Character classes                                                                           */

static bool is_alpha(uint8_t c)
{
	return (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
}

static bool is_digit(uint8_t c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(uint8_t c)
{
	return is_alpha(c) || is_digit(c);
}

static bool is_hex(uint8_t c)
{
	return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* RFC 5322 §3.2.3 atext, ASCII part. */
static bool is_atext(uint8_t c)
{
	return is_alnum(c) || (c != 0 && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/*
 * The length of the well-formed UTF-8 sequence (RFC 3629 §4, as RFC 6531 §3.3's UTF8-non-ascii)
 * at p, which holds a byte >= 0x80; 0 if it is not one (overlong, surrogate, > U+10FFFF, cut).
 */
static size_t utf8_seq(const uint8_t *p, size_t avail)
{
	uint8_t c = p[0];
	size_t n;
	uint8_t lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else
		return 0;
	if (avail < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Address grammar (RFC 5321 §4.1.2, §4.1.3, RFC 6531 §3.3)                                    */

struct cursor {
	const uint8_t *p;
	size_t         n;
	size_t         i;
};

static int peek(const struct cursor *c)
{
	return c->i < c->n ? c->p[c->i] : -1;
}

/*
 * Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str] or a U-label
 * (RFC 6531), which we take as any mix of Let-dig, "-" and UTF-8 characters that neither starts
 * nor ends with "-". Returns false on a syntax error.
 */
static bool parse_domain(struct cursor *c)
{
	for (;;) {
		size_t start = c->i;
		bool last_hyphen = false;

		while (c->i < c->n) {
			uint8_t b = c->p[c->i];
			if (is_alnum(b)) {
				last_hyphen = false;
				c->i++;
			} else if (b == '-') {
				if (c->i == start)
					return false;
				last_hyphen = true;
				c->i++;
			} else if (b >= 0x80) {
				size_t k = utf8_seq(c->p + c->i, c->n - c->i);
				if (k == 0)
					return false;
				last_hyphen = false;
				c->i += k;
			} else
				break;
		}
		if (c->i == start || last_hyphen)
			return false;
		if (peek(c) != '.')
			return true;
		c->i++;
	}
}

/* Snum = 1*3DIGIT representing 0-255; IPv4-address-literal = Snum 3("." Snum). */
static bool parse_ipv4(const uint8_t *p, size_t n, size_t *used_r)
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		if (part) {
			if (i >= n || p[i] != '.')
				return false;
			i++;
		}
		unsigned v = 0, d = 0;
		while (i < n && is_digit(p[i]) && d < 3) {
			v = v * 10 + (p[i] - '0');
			i++;
			d++;
		}
		if (d == 0 || v > 255)
			return false;
	}
	*used_r = i;
	return true;
}

/*
 * IPv6-addr (RFC 5321 §4.1.3): IPv6-full / IPv6-comp / IPv6v4-full / IPv6v4-comp. Written out
 * rather than inet_pton(3) because the grammar is stricter: "::" must stand for at least two
 * groups of zeros, and the embedded IPv4 part follows Snum.
 */
static bool parse_ipv6(const uint8_t *p, size_t n)
{
	size_t i = 0;
	int groups = 0;
	bool comp = false;

	if (n >= 2 && p[0] == ':' && p[1] == ':') {
		comp = true;
		i = 2;
		if (i == n)
			return true;   /* "::" alone */
	}
	for (;;) {
		/* an IPv4 tail is allowed where two groups remain */
		size_t used;
		size_t h = 0;
		while (i + h < n && h < 5 && is_hex(p[i + h]))
			h++;
		if (i + h < n && p[i + h] == '.') {
			if (!parse_ipv4(p + i, n - i, &used) || i + used != n)
				return false;
			groups += 2;
			break;
		}
		if (h == 0 || h > 4)
			return false;
		i += h;
		groups++;
		if (i == n)
			break;
		if (p[i] != ':')
			return false;
		i++;
		if (i < n && p[i] == ':') {
			if (comp)
				return false;
			comp = true;
			i++;
			if (i == n)
				break;
		} else if (i == n)
			return false;   /* a trailing single ":" */
	}
	/* full forms have exactly 8 groups; "::" stands for at least 2, so at most 6 besides */
	return comp ? groups <= 6 : groups == 8;
}

/* address-literal = "[" ( IPv4 / "IPv6:" IPv6-addr / Standardized-tag ":" 1*dcontent ) "]" */
static bool parse_addr_literal(struct cursor *c)
{
	size_t open = c->i;   /* at '[' */
	const uint8_t *close = memchr(c->p + open + 1, ']', c->n - open - 1);

	if (close == NULL)
		return false;
	const uint8_t *p = c->p + open + 1;
	size_t n = (size_t)(close - p), used;
	c->i = (size_t)(close - c->p) + 1;
	if (n == 0)
		return false;
	if (is_digit(p[0]))
		return parse_ipv4(p, n, &used) && used == n;
	if (n >= 5 && strncasecmp((const char *)p, "IPv6:", 5) == 0)
		return parse_ipv6(p + 5, n - 5);
	/* General-address-literal: Standardized-tag = Ldh-str (ends with Let-dig), ":", dcontent */
	size_t t = 0;
	while (t < n && (is_alnum(p[t]) || p[t] == '-'))
		t++;
	if (t == 0 || t >= n || p[t] != ':' || !is_alnum(p[t - 1]) || t + 1 == n)
		return false;
	for (size_t k = t + 1; k < n; k++)   /* dcontent = %d33-90 / %d94-126 */
		if (p[k] < 33 || p[k] > 126 || (p[k] >= 91 && p[k] <= 93))
			return false;
	return true;
}

/* Dot-string = Atom *("." Atom), atext widened by UTF8-non-ascii (RFC 6531). */
static bool parse_dot_string(struct cursor *c)
{
	for (;;) {
		size_t start = c->i;
		while (c->i < c->n) {
			uint8_t b = c->p[c->i];
			if (b < 0x80) {
				if (!is_atext(b))
					break;
				c->i++;
			} else {
				size_t k = utf8_seq(c->p + c->i, c->n - c->i);
				if (k == 0)
					return false;
				c->i += k;
			}
		}
		if (c->i == start)
			return false;
		if (peek(c) != '.')
			return true;
		c->i++;
	}
}

/* Quoted-string = DQUOTE *QcontentSMTP DQUOTE (RFC 5321 §4.1.2, RFC 6531 qtextSMTP). */
static bool parse_quoted(struct cursor *c)
{
	c->i++;   /* the opening DQUOTE */
	while (c->i < c->n) {
		uint8_t b = c->p[c->i];
		if (b == '"') {
			c->i++;
			return true;
		}
		if (b == '\\') {
			if (c->i + 1 >= c->n || c->p[c->i + 1] < 32 || c->p[c->i + 1] > 126)
				return false;
			c->i += 2;
		} else if (b >= 0x80) {
			size_t k = utf8_seq(c->p + c->i, c->n - c->i);
			if (k == 0)
				return false;
			c->i += k;
		} else if (b >= 32 && b <= 126) {
			c->i++;
		} else
			return false;
	}
	return false;
}

static struct slice sl(const struct cursor *c, size_t from, size_t to)
{
	return (struct slice){ (const char *)c->p + from, to - from };
}

/*
 * Path = "<" [ A-d-l ":" ] Mailbox ">", the reverse-path "<>" when allow_null, and RCPT's
 * "<Postmaster>" when postmaster_r is not NULL. c->i is at "<"; on success it is after ">".
 */
static enum smtp_arg_err parse_path(struct cursor *c, struct smtp_path *path, bool allow_null,
				    bool *postmaster_r, enum smtp_arg_err bad)
{
	size_t open = c->i;

	if (peek(c) != '<')
		return bad;
	c->i++;
	if (peek(c) == '>') {
		if (!allow_null)
			return bad;
		c->i++;
		path->is_null = true;
		path->addr = path->local = path->domain = sl(c, open + 1, open + 1);
		return SMTP_ARG_OK;
	}
	/* A-d-l = At-domain *( "," At-domain ): accepted and dropped (§4.1.1.3, Appendix C) */
	if (peek(c) == '@') {
		for (;;) {
			c->i++;   /* '@' */
			size_t ds = c->i;
			if (!parse_domain(c))
				return bad;
			if (c->i - ds > SMTP_DOMAIN_MAX)
				return SMTP_ARG_DOMAIN_TOO_LONG;
			if (peek(c) == ',') {
				c->i++;
				if (peek(c) != '@')
					return bad;
				continue;
			}
			if (peek(c) != ':')
				return bad;
			c->i++;
			break;
		}
	}
	size_t ls = c->i;
	int first = peek(c);
	if (first == '"') {
		if (!parse_quoted(c))
			return bad;
	} else if (!parse_dot_string(c))
		return bad;
	size_t le = c->i;

	if (peek(c) == '>' && postmaster_r != NULL && ls == open + 1 &&
	    le - ls == 10 && strncasecmp((const char *)c->p + ls, "postmaster", 10) == 0) {
		c->i++;
		*postmaster_r = true;
		path->addr = path->local = sl(c, ls, le);
		path->domain = sl(c, le, le);
		return SMTP_ARG_OK;
	}
	if (peek(c) != '@')
		return bad;
	c->i++;
	size_t ds = c->i;
	if (peek(c) == '[') {
		if (!parse_addr_literal(c))
			return bad;
	} else if (!parse_domain(c))
		return bad;
	size_t de = c->i;
	if (peek(c) != '>')
		return bad;
	c->i++;

	if (le - ls > SMTP_LOCAL_MAX)
		return SMTP_ARG_LOCAL_TOO_LONG;
	if (de - ds > SMTP_DOMAIN_MAX)
		return SMTP_ARG_DOMAIN_TOO_LONG;
	if (c->i - open > SMTP_PATH_MAX)
		return SMTP_ARG_PATH_TOO_LONG;
	path->addr = sl(c, ls, de);
	path->local = sl(c, ls, le);
	path->domain = sl(c, ds, de);
	return SMTP_ARG_OK;
}

static bool has_8bit(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] >= 0x80)
			return true;
	return false;
}

/* "FROM:" / "TO:" (case-insensitive), one optional SP, then the path. */
static enum smtp_arg_err parse_lead(struct cursor *c, const char *kw, size_t kwlen,
				    enum smtp_arg_err bad)
{
	if (c->n < kwlen || strncasecmp((const char *)c->p, kw, kwlen) != 0)
		return SMTP_ARG_SYNTAX;
	c->i = kwlen;
	if (peek(c) == ' ')
		c->i++;
	if (c->i == c->n)
		return SMTP_ARG_SYNTAX;
	if (peek(c) != '<')
		return bad;
	return SMTP_ARG_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* ESMTP parameters (RFC 5321 §4.1.2 esmtp-param)                                              */

struct param {
	struct slice kw;
	struct slice val;
	bool         has_val;
};

/*
 * The next esmtp-param: SP+ esmtp-keyword ["=" esmtp-value]. Returns 1 with *pm set, 0 at the
 * end, or -1 on a syntax error. esmtp-value = 1*(%d33-60 / %d62-126), widened by UTF-8 (RFC 6531).
 */
static int next_param(struct cursor *c, struct param *pm)
{
	if (c->i == c->n)
		return 0;
	if (peek(c) != ' ')
		return -1;
	while (peek(c) == ' ')
		c->i++;
	if (c->i == c->n)
		return 0;   /* trailing SP (the verb parser trims them; be robust anyway) */
	size_t ks = c->i;
	if (!is_alnum(c->p[c->i]))
		return -1;
	while (c->i < c->n && (is_alnum(c->p[c->i]) || c->p[c->i] == '-'))
		c->i++;
	pm->kw = sl(c, ks, c->i);
	pm->has_val = false;
	pm->val = sl(c, c->i, c->i);
	if (peek(c) != '=')
		return (c->i == c->n || peek(c) == ' ') ? 1 : -1;
	c->i++;
	size_t vs = c->i;
	while (c->i < c->n && c->p[c->i] != ' ') {
		uint8_t b = c->p[c->i];
		if (b >= 0x80) {
			size_t k = utf8_seq(c->p + c->i, c->n - c->i);
			if (k == 0)
				return -1;
			c->i += k;
		} else if (b >= 33 && b <= 126 && b != '=')
			c->i++;
		else
			return -1;
	}
	if (c->i == vs)
		return -1;
	pm->has_val = true;
	pm->val = sl(c, vs, c->i);
	return 1;
}

/* xtext (RFC 3461 §4): %d33-126 except "+" and "=", or "+" and two upper-case hex digits. */
static bool is_uhex(uint8_t c)
{
	return is_digit(c) || (c >= 'A' && c <= 'F');
}

static bool is_xtext(struct slice s)
{
	const uint8_t *p = (const uint8_t *)s.p;

	if (s.len == 0)
		return false;
	for (size_t i = 0; i < s.len; i++) {
		if (p[i] == '+') {
			if (i + 2 >= s.len || !is_uhex(p[i + 1]) || !is_uhex(p[i + 2]))
				return false;
			i += 2;
		} else if (p[i] < 33 || p[i] > 126 || p[i] == '=')
			return false;
	}
	return true;
}

/* SIZE=1*20DIGIT (RFC 1870); a value beyond 2^64-1 saturates (the size check then refuses it). */
static bool parse_size(struct slice v, uint64_t *size_r)
{
	uint64_t n = 0;

	if (v.len == 0 || v.len > 20)
		return false;
	for (size_t i = 0; i < v.len; i++) {
		if (!is_digit((uint8_t)v.p[i]))
			return false;
		unsigned d = (unsigned)(v.p[i] - '0');
		if (n > (UINT64_MAX - d) / 10)
			n = UINT64_MAX;
		else
			n = n * 10 + d;
	}
	*size_r = n;
	return true;
}

/* NOTIFY = "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ), each at most once (RFC 3461 §4.1). */
static bool is_notify(struct slice v)
{
	if (slice_eq_nocase(v, "NEVER"))
		return true;
	unsigned seen = 0;
	size_t i = 0;
	for (;;) {
		size_t s = i;
		while (i < v.len && v.p[i] != ',')
			i++;
		struct slice w = { v.p + s, i - s };
		unsigned bit;
		if (slice_eq_nocase(w, "SUCCESS"))
			bit = 1;
		else if (slice_eq_nocase(w, "FAILURE"))
			bit = 2;
		else if (slice_eq_nocase(w, "DELAY"))
			bit = 4;
		else
			return false;
		if (seen & bit)
			return false;
		seen |= bit;
		if (i == v.len)
			return true;
		i++;
	}
}

/*
 * ORCPT = addr-type ";" xtext (RFC 3461 §4.2; addr-type is an atom), at most 500 characters.
 * For addr-type "utf-8" (RFC 6533 §3) the address may be utf-8-addr-unitext, which next_param
 * has already checked is printable ASCII or well-formed UTF-8 without "=".
 */
static bool is_orcpt(struct slice v)
{
	const char *semi = memchr(v.p, ';', v.len);

	if (v.len > 500 || semi == NULL || semi == v.p)
		return false;
	struct slice type = { v.p, (size_t)(semi - v.p) };
	struct slice addr = { semi + 1, v.len - type.len - 1 };
	for (size_t i = 0; i < type.len; i++)
		if (!is_atext((uint8_t)type.p[i]))
			return false;
	if (addr.len == 0)
		return false;
	if (slice_eq_nocase(type, "utf-8"))
		return true;
	return is_xtext(addr);
}

enum {
	P_SIZE = 1u << 0, P_BODY = 1u << 1, P_SMTPUTF8 = 1u << 2, P_RET = 1u << 3,
	P_ENVID = 1u << 4, P_NOTIFY = 1u << 5, P_ORCPT = 1u << 6,
};

static enum smtp_arg_err mail_param(const struct param *pm, struct smtp_mail_args *out,
				    unsigned *seen)
{
	unsigned bit;

	if (slice_eq_nocase(pm->kw, "SIZE"))
		bit = P_SIZE;
	else if (slice_eq_nocase(pm->kw, "BODY"))
		bit = P_BODY;
	else if (slice_eq_nocase(pm->kw, "SMTPUTF8"))
		bit = P_SMTPUTF8;
	else if (slice_eq_nocase(pm->kw, "RET"))
		bit = P_RET;
	else if (slice_eq_nocase(pm->kw, "ENVID"))
		bit = P_ENVID;
	else
		return SMTP_ARG_UNKNOWN_PARAM;
	if (*seen & bit)
		return SMTP_ARG_DUP_PARAM;
	*seen |= bit;

	switch (bit) {
	case P_SIZE:
		if (!pm->has_val || !parse_size(pm->val, &out->size))
			return SMTP_ARG_BAD_PARAM;
		out->has_size = true;
		return SMTP_ARG_OK;
	case P_BODY:
		if (slice_eq_nocase(pm->val, "7BIT"))
			out->body = SMTP_BODY_7BIT;
		else if (slice_eq_nocase(pm->val, "8BITMIME"))
			out->body = SMTP_BODY_8BITMIME;
		else if (slice_eq_nocase(pm->val, "BINARYMIME"))
			out->body = SMTP_BODY_BINARYMIME;
		else
			return SMTP_ARG_BAD_PARAM;
		return SMTP_ARG_OK;
	case P_SMTPUTF8:
		if (pm->has_val)   /* RFC 6531 §3.4: the parameter has no value */
			return SMTP_ARG_BAD_PARAM;
		out->smtputf8 = true;
		return SMTP_ARG_OK;
	case P_RET:
		if (!slice_eq_nocase(pm->val, "FULL") && !slice_eq_nocase(pm->val, "HDRS"))
			return SMTP_ARG_BAD_PARAM;
		out->ret = pm->val;
		return SMTP_ARG_OK;
	default: /* P_ENVID: xtext, at most 100 characters (RFC 3461 §4.4) */
		if (!pm->has_val || pm->val.len > 100 || !is_xtext(pm->val))
			return SMTP_ARG_BAD_PARAM;
		out->envid = pm->val;
		return SMTP_ARG_OK;
	}
}

enum smtp_arg_err smtp_parse_mail_arg(struct slice arg, struct smtp_mail_args *out)
{
	struct cursor c = { (const uint8_t *)arg.p, arg.len, 0 };
	enum smtp_arg_err e;

	memset(out, 0, sizeof(*out));
	e = parse_lead(&c, "FROM:", 5, SMTP_ARG_BAD_SENDER);
	if (e)
		return e;
	size_t ps = c.i;
	e = parse_path(&c, &out->path, true, NULL, SMTP_ARG_BAD_SENDER);
	if (e)
		return e;
	out->path.utf8 = has_8bit(c.p + ps, c.i - ps);

	struct param pm;
	unsigned seen = 0;
	int r;
	while ((r = next_param(&c, &pm)) > 0) {
		e = mail_param(&pm, out, &seen);
		if (e)
			return e;
	}
	if (r < 0)
		return SMTP_ARG_SYNTAX;
	/* RFC 6531 §3.4: a non-ASCII address needs the SMTPUTF8 parameter */
	if (out->path.utf8 && !out->smtputf8)
		return SMTP_ARG_UTF8_NEEDS_SMTPUTF8;
	return SMTP_ARG_OK;
}

static enum smtp_arg_err rcpt_param(const struct param *pm, struct smtp_rcpt_args *out,
				    unsigned *seen)
{
	unsigned bit;

	if (slice_eq_nocase(pm->kw, "NOTIFY"))
		bit = P_NOTIFY;
	else if (slice_eq_nocase(pm->kw, "ORCPT"))
		bit = P_ORCPT;
	else
		return SMTP_ARG_UNKNOWN_PARAM;
	if (*seen & bit)
		return SMTP_ARG_DUP_PARAM;
	*seen |= bit;
	if (bit == P_NOTIFY) {
		if (!pm->has_val || !is_notify(pm->val))
			return SMTP_ARG_BAD_PARAM;
		out->notify = pm->val;
	} else {
		if (!pm->has_val || !is_orcpt(pm->val))
			return SMTP_ARG_BAD_PARAM;
		out->orcpt = pm->val;
	}
	return SMTP_ARG_OK;
}

enum smtp_arg_err smtp_parse_rcpt_arg(struct slice arg, struct smtp_rcpt_args *out)
{
	struct cursor c = { (const uint8_t *)arg.p, arg.len, 0 };
	enum smtp_arg_err e;

	memset(out, 0, sizeof(*out));
	e = parse_lead(&c, "TO:", 3, SMTP_ARG_BAD_RCPT);
	if (e)
		return e;
	size_t ps = c.i;
	e = parse_path(&c, &out->path, false, &out->postmaster, SMTP_ARG_BAD_RCPT);
	if (e)
		return e;
	out->path.utf8 = has_8bit(c.p + ps, c.i - ps);

	struct param pm;
	unsigned seen = 0;
	int r;
	while ((r = next_param(&c, &pm)) > 0) {
		e = rcpt_param(&pm, out, &seen);
		if (e)
			return e;
	}
	return r < 0 ? SMTP_ARG_SYNTAX : SMTP_ARG_OK;
}

enum smtp_arg_err smtp_parse_bdat_arg(struct slice arg, uint64_t *size_r, bool *last_r)
{
	const uint8_t *p = (const uint8_t *)arg.p;
	size_t n = arg.len, i = 0;
	uint64_t v = 0;

	*size_r = 0;
	*last_r = false;
	while (i < n && is_digit(p[i])) {
		unsigned d = (unsigned)(p[i] - '0');
		v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
		i++;
	}
	if (i == 0)
		return SMTP_ARG_SYNTAX;
	if (i < n) {
		if (p[i] != ' ')
			return SMTP_ARG_SYNTAX;
		while (i < n && p[i] == ' ')
			i++;
		if (n - i != 4 || strncasecmp((const char *)p + i, "LAST", 4) != 0)
			return SMTP_ARG_SYNTAX;
		*last_r = true;
	}
	*size_r = v;
	return v > SMTP_BDAT_CHUNK_MAX ? SMTP_ARG_BAD_PARAM : SMTP_ARG_OK;
}

enum smtp_arg_err smtp_parse_helo_arg(struct slice arg)
{
	if (arg.len == 0)
		return SMTP_ARG_SYNTAX;
	for (size_t i = 0; i < arg.len; i++) {
		uint8_t b = (uint8_t)arg.p[i];
		if (b <= ' ' || b == 0x7f)
			return SMTP_ARG_SYNTAX;
	}
	return SMTP_ARG_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Replies                                                                                     */

static const struct smtp_reply_def err_replies[SMTP_ARG_COUNT][2] = {
	/* [e][0] for MAIL (or any), [e][1] for RCPT */
	[SMTP_ARG_OK] = { { 250, "2.0.0", "OK" }, { 250, "2.0.0", "OK" } },
	[SMTP_ARG_SYNTAX] = { { 501, "5.5.4", "Syntax error in parameters or arguments" },
			      { 501, "5.5.4", "Syntax error in parameters or arguments" } },
	[SMTP_ARG_BAD_SENDER] = { { 501, "5.1.7", "Bad sender address syntax" },
				  { 501, "5.1.7", "Bad sender address syntax" } },
	[SMTP_ARG_BAD_RCPT] = { { 501, "5.1.3", "Bad recipient address syntax" },
				{ 501, "5.1.3", "Bad recipient address syntax" } },
	[SMTP_ARG_PATH_TOO_LONG] = { { 501, "5.1.7", "Path too long" },
				     { 501, "5.1.3", "Path too long" } },
	[SMTP_ARG_LOCAL_TOO_LONG] = { { 501, "5.1.7", "Local part too long" },
				      { 501, "5.1.3", "Local part too long" } },
	[SMTP_ARG_DOMAIN_TOO_LONG] = { { 501, "5.1.7", "Domain too long" },
				       { 501, "5.1.3", "Domain too long" } },
	[SMTP_ARG_UNKNOWN_PARAM] = { { 555, "5.5.4", "Unsupported parameter" },
				     { 555, "5.5.4", "Unsupported parameter" } },
	[SMTP_ARG_BAD_PARAM] = { { 501, "5.5.4", "Bad parameter value" },
				 { 501, "5.5.4", "Bad parameter value" } },
	[SMTP_ARG_DUP_PARAM] = { { 501, "5.5.4", "Duplicate parameter" },
				 { 501, "5.5.4", "Duplicate parameter" } },
	[SMTP_ARG_UTF8_NEEDS_SMTPUTF8] = {
		{ 553, "5.6.7", "Non-ASCII address requires SMTPUTF8" },
		{ 553, "5.6.7", "Non-ASCII address requires SMTPUTF8" } },
};

const struct smtp_reply_def *smtp_parse_err_reply(enum smtp_arg_err e, bool is_rcpt)
{
	if ((unsigned)e >= SMTP_ARG_COUNT)
		e = SMTP_ARG_SYNTAX;
	return &err_replies[e][is_rcpt ? 1 : 0];
}
