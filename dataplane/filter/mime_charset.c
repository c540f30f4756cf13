/*
 * mime_charset.c - charset conversion to UTF-8 with a per-parser iconv cache.
 *
 * Owner: one parser (one shard thread). Names are sanitized before they reach iconv_open: only
 * [A-Za-z0-9._:+()-] and at most MIME_CHARSET_NAME_MAX - 1 bytes, so "//TRANSLIT" suffixes and
 * path-like names from a message never reach glibc's module loader. Conversion is always *to*
 * UTF-8 (glibc's iconv bugs such as CVE-2024-2961 are in the other direction).
 */
#include "mime_charset.h"

#include <errno.h>
#include <string.h>

static const uint16_t cp1252_hi[32] = {
	0x20ac, 0x0081, 0x201a, 0x0192, 0x201e, 0x2026, 0x2020, 0x2021,
	0x02c6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008d, 0x017d, 0x008f,
	0x0090, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014,
	0x02dc, 0x2122, 0x0161, 0x203a, 0x0153, 0x009d, 0x017e, 0x0178,
};

uint32_t mime_charset_1252(uint8_t b)
{
	return b >= 0x80 && b < 0xa0 ? cp1252_hi[b - 0x80] : b;
}

size_t mime_charset_put_utf8(uint32_t cp, uint8_t *o)
{
	if (cp < 0x80) {
		o[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (uint8_t)(0xc0 | cp >> 6);
		o[1] = (uint8_t)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp >= 0xd800 && cp < 0xe000)
		cp = 0xfffd;
	if (cp < 0x10000) {
		o[0] = (uint8_t)(0xe0 | cp >> 12);
		o[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (uint8_t)(0x80 | (cp & 0x3f));
		return 3;
	}
	if (cp > 0x10ffff)
		return mime_charset_put_utf8(0xfffd, o);
	o[0] = (uint8_t)(0xf0 | cp >> 18);
	o[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (uint8_t)(0x80 | (cp & 0x3f));
	return 4;
}

/* Unicode 15 table 3-7: well-formed UTF-8 byte sequences. */
int mime_charset_utf8_len(const uint8_t *p, size_t n)
{
	uint8_t c = p[0], lo = 0x80, hi = 0xbf;
	int len;

	if (c < 0x80)
		return 1;
	if (c < 0xc2)
		return 0;
	if (c < 0xe0) {
		len = 2;
	} else if (c < 0xf0) {
		len = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c < 0xf5) {
		len = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	for (int i = 1; i < len; i++) {
		if ((size_t)i >= n)
			return -1;
		if (p[i] < lo || p[i] > hi)
			return 0;
		lo = 0x80;
		hi = 0xbf;
	}
	return len;
}

void mime_charset_cache_init(struct mime_charset_cache *c)
{
	memset(c, 0, sizeof(*c));
	c->opens_left = MIME_CHARSET_OPENS;
}

void mime_charset_cache_free(struct mime_charset_cache *c)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->e[i].cd != (iconv_t)-1)
			iconv_close(c->e[i].cd);
	c->n = c->next = 0;
}

static const struct {
	const char *name;
	uint8_t     kind;
	const char *iconv_name;
} aliases[] = {
	{ "utf-8", MIME_CHARSET_UTF8, NULL },
	{ "utf8", MIME_CHARSET_UTF8, NULL },
	{ "us-ascii", MIME_CHARSET_UTF8, NULL },
	{ "ascii", MIME_CHARSET_UTF8, NULL },
	{ "ansi_x3.4-1968", MIME_CHARSET_UTF8, NULL },
	{ "iso-8859-1", MIME_CHARSET_1252, NULL },
	{ "iso8859-1", MIME_CHARSET_1252, NULL },
	{ "iso_8859-1", MIME_CHARSET_1252, NULL },
	{ "latin1", MIME_CHARSET_1252, NULL },
	{ "l1", MIME_CHARSET_1252, NULL },
	{ "windows-1252", MIME_CHARSET_1252, NULL },
	{ "cp1252", MIME_CHARSET_1252, NULL },
	{ "x-user-defined", MIME_CHARSET_1252, NULL },
	{ "default", MIME_CHARSET_1252, NULL },
	/* labels mail uses that glibc spells differently */
	{ "ks_c_5601-1987", MIME_CHARSET_ICONV, "CP949" },
	{ "gb2312", MIME_CHARSET_ICONV, "GBK" },
	{ "x-gbk", MIME_CHARSET_ICONV, "GBK" },
	{ "iso-8859-8-i", MIME_CHARSET_ICONV, "ISO-8859-8" },
	{ "x-sjis", MIME_CHARSET_ICONV, "SHIFT_JIS" },
	{ "unicode-1-1-utf-7", MIME_CHARSET_ICONV, "UTF-7" },
	{ "x-mac-roman", MIME_CHARSET_ICONV, "MACINTOSH" },
	{ "x-euc-jp", MIME_CHARSET_ICONV, "EUC-JP" },
};

int mime_charset_open(struct mime_charset_cache *c, const char *name, size_t len,
		      struct mime_charset_conv *conv)
{
	char lname[MIME_CHARSET_NAME_MAX];
	const char *iname;
	size_t i;

	memset(conv, 0, sizeof(*conv));
	conv->kind = MIME_CHARSET_UTF8;
	conv->cd = (iconv_t)-1;
	if (len == 0)
		return 0;
	if (len >= sizeof(lname))
		goto unknown;
	for (i = 0; i < len; i++) {
		char ch = name[i];

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch + 32);
		else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
			   strchr("._:+()-", ch) != NULL) || ch == 0)
			goto unknown;
		lname[i] = ch;
	}
	lname[len] = 0;
	iname = lname;
	for (i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		if (strcmp(lname, aliases[i].name) == 0) {
			if (aliases[i].kind != MIME_CHARSET_ICONV) {
				conv->kind = aliases[i].kind;
				return 0;
			}
			iname = aliases[i].iconv_name;
			break;
		}
	}
	for (i = 0; i < c->n; i++) {
		if (strcmp(c->e[i].name, lname) == 0) {
			if (c->e[i].cd == (iconv_t)-1)
				goto unknown;
			conv->kind = MIME_CHARSET_ICONV;
			conv->cd = c->e[i].cd;
			iconv(conv->cd, NULL, NULL, NULL, NULL);
			return 0;
		}
	}
	/* Not cached: open it and take a slot (round robin once full). */
	if (c->opens_left == 0)
		goto unknown;
	c->opens_left--;
	iconv_t cd = iconv_open("UTF-8", iname);

	if (c->n < MIME_CHARSET_CACHE) {
		i = c->n++;
	} else {
		i = c->next;
		c->next = (c->next + 1) % MIME_CHARSET_CACHE;
		if (c->e[i].cd != (iconv_t)-1)
			iconv_close(c->e[i].cd);
	}
	memcpy(c->e[i].name, lname, len + 1);
	c->e[i].cd = cd;
	if (cd == (iconv_t)-1)
		goto unknown;
	conv->kind = MIME_CHARSET_ICONV;
	conv->cd = cd;
	return 0;
unknown:
	conv->kind = MIME_CHARSET_1252;
	return -ENOENT;
}

/* Output is gathered in a local buffer and handed on when full or at the end of a call. */
struct outq {
	uint8_t              b[2048];
	size_t               n;
	mime_charset_out_fn *out;
	void                *arg;
};

static void outq_flush(struct outq *q)
{
	if (q->n) {
		q->out(q->arg, q->b, q->n);
		q->n = 0;
	}
}

static inline void outq_cp(struct outq *q, uint32_t cp)
{
	if (q->n + 4 > sizeof(q->b))
		outq_flush(q);
	q->n += mime_charset_put_utf8(cp, q->b + q->n);
}

static void outq_bytes(struct outq *q, const uint8_t *p, size_t n)
{
	while (n) {
		size_t k;

		if (q->n == sizeof(q->b))
			outq_flush(q);
		k = sizeof(q->b) - q->n;
		if (k > n)
			k = n;
		memcpy(q->b + q->n, p, k);
		q->n += k;
		p += k;
		n -= k;
	}
}

static size_t ascii_prefix(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i + 8 <= n) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		if (w & 0x8080808080808080ull)
			break;
		i += 8;
	}
	while (i < n && p[i] < 0x80)
		i++;
	return i;
}

/* UTF-8 (and ASCII): valid sequences pass, any other byte is read as windows-1252. Returns the
 * bytes consumed; an incomplete sequence at the end is left unconsumed unless final. */
static size_t utf8_run(struct outq *q, const uint8_t *p, size_t n, bool final)
{
	size_t i = 0;

	while (i < n) {
		size_t a = ascii_prefix(p + i, n - i);

		outq_bytes(q, p + i, a);
		i += a;
		if (i >= n)
			break;
		int l = mime_charset_utf8_len(p + i, n - i);

		if (l > 0) {
			outq_bytes(q, p + i, (size_t)l);
			i += (size_t)l;
		} else if (l < 0 && !final) {
			break;
		} else {
			outq_cp(q, mime_charset_1252(p[i]));
			i++;
		}
	}
	return i;
}

static size_t cp1252_run(struct outq *q, const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t a = ascii_prefix(p + i, n - i);

		outq_bytes(q, p + i, a);
		i += a;
		if (i < n)
			outq_cp(q, mime_charset_1252(p[i++]));
	}
	return n;
}

static size_t iconv_run(struct mime_charset_conv *conv, struct outq *q, const uint8_t *p,
			size_t n, bool final)
{
	char *in = (char *)(uintptr_t)p;
	size_t inleft = n;

	while (inleft) {
		char *o = (char *)q->b + q->n;
		size_t oleft = sizeof(q->b) - q->n;
		size_t r = iconv(conv->cd, &in, &inleft, &o, &oleft);

		q->n = sizeof(q->b) - oleft;
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG) {
			if (q->n == 0)  /* cannot happen: one character fits 2 KiB */
				break;
			outq_flush(q);
		} else if (errno == EINVAL && !final && inleft < sizeof(conv->pend)) {
			break;  /* incomplete character: wait for more */
		} else {
			/* EILSEQ, or an incomplete character that never completes */
			outq_cp(q, 0xfffd);
			in++;
			inleft--;
		}
	}
	return n - inleft;
}

static size_t conv_run(struct mime_charset_conv *conv, struct outq *q, const uint8_t *p,
		       size_t n, bool final)
{
	switch (conv->kind) {
	case MIME_CHARSET_1252:
		return cp1252_run(q, p, n);
	case MIME_CHARSET_ICONV:
		return iconv_run(conv, q, p, n, final);
	default:
		return utf8_run(q, p, n, final);
	}
}

void mime_charset_feed(struct mime_charset_conv *conv, const uint8_t *in, size_t n,
		       mime_charset_out_fn *out, void *arg)
{
	struct outq q;
	size_t c;

	if (n == 0)
		return;
	if (conv->npend == 0 && conv->kind != MIME_CHARSET_ICONV && ascii_prefix(in, n) == n) {
		out(arg, in, n);  /* the common case: plain ASCII, no copy */
		return;
	}
	q.n = 0;
	q.out = out;
	q.arg = arg;
	if (conv->npend) {
		/* Finish the pending character with the first bytes of this call. */
		uint8_t tmp[sizeof(conv->pend) + 16];
		size_t take = n < 16 ? n : 16, tn = conv->npend + take;

		memcpy(tmp, conv->pend, conv->npend);
		memcpy(tmp + conv->npend, in, take);
		c = conv_run(conv, &q, tmp, tn, false);
		if (c < conv->npend) {
			/* still incomplete: then all of in was taken (see iconv_run) */
			memmove(conv->pend, tmp + c, tn - c);
			conv->npend = (uint8_t)(tn - c);
			outq_flush(&q);
			return;
		}
		in += c - conv->npend;
		n -= c - conv->npend;
		conv->npend = 0;
	}
	c = conv_run(conv, &q, in, n, false);
	if (c < n) {
		memcpy(conv->pend, in + c, n - c);
		conv->npend = (uint8_t)(n - c);
	}
	outq_flush(&q);
}

void mime_charset_end(struct mime_charset_conv *conv, mime_charset_out_fn *out, void *arg)
{
	struct outq q;

	q.n = 0;
	q.out = out;
	q.arg = arg;
	if (conv->npend) {
		conv_run(conv, &q, conv->pend, conv->npend, true);
		conv->npend = 0;
	}
	if (conv->kind == MIME_CHARSET_ICONV) {
		char *o = (char *)q.b + q.n;
		size_t oleft = sizeof(q.b) - q.n;

		if (q.n + 64 > sizeof(q.b)) {
			outq_flush(&q);
			o = (char *)q.b;
			oleft = sizeof(q.b);
		}
		iconv(conv->cd, NULL, NULL, &o, &oleft);
		q.n = sizeof(q.b) - oleft;
		iconv(conv->cd, NULL, NULL, NULL, NULL);
	}
	outq_flush(&q);
}
