/*
 * mime_header.c - RFC 2047 decoding, Content-Type (RFC 2045 §5.1, RFC 2231) and
 * Content-Transfer-Encoding (RFC 2045 §6.1) parsing.
 *
 * Everything here is linear in the value's length and writes into bounded buffers. Any thread.
 */
#include "mime_header.h"

#include <strings.h>

#include "mime_decode.h"

static inline bool is_wsp(uint8_t c) { return c == ' ' || c == '\t'; }

/* Appends UTF-8 to out, cutting at a character boundary if the cap is reached. */
static void put_utf8(void *arg, const uint8_t *p, size_t n)
{
	struct mime_gbuf *g = arg;
	size_t room = mime_gbuf_room(g, n);

	if (room < n) {
		g->truncated = true;
		n = room;
		while (n > 0 && (p[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(g->p + g->len, p, n);
	g->len += n;
}

struct ew {
	const char *charset;
	size_t      charset_len;
	char        enc;       /* 'b' or 'q' */
	const char *text;
	size_t      text_len;
	size_t      end;       /* offset just after "?=" */
};

/* Parses "=?charset?e?text?=" at v[i]. */
static bool ew_parse(const char *v, size_t n, size_t i, struct ew *w)
{
	size_t j = i + 2, k;

	w->charset = v + j;
	while (j < n && v[j] != '?' && !is_wsp((uint8_t)v[j]) && j - (i + 2) < MIME_CHARSET_NAME_MAX + 16)
		j++;
	if (j >= n || v[j] != '?' || j == i + 2)
		return false;
	w->charset_len = j - (i + 2);
	/* RFC 2231 §5: charset*language */
	for (k = 0; k < w->charset_len; k++)
		if (w->charset[k] == '*') {
			w->charset_len = k;
			break;
		}
	if (j + 2 >= n || v[j + 2] != '?')
		return false;
	w->enc = (char)(v[j + 1] | 0x20);
	if (w->enc != 'b' && w->enc != 'q')
		return false;
	j += 3;
	/* The text has no '?' (§5), which also keeps the scan linear: a failed scan stops at a
	 * '?' and nothing it passed can start another word. */
	w->text = v + j;
	while (j < n && v[j] != '?')
		j++;
	if (j + 1 >= n || v[j + 1] != '=')
		return false;
	w->text_len = (size_t)(v + j - w->text);
	w->end = j + 2;
	return true;
}

/* Decodes an encoded word's text into tmp (bytes in the word's charset). */
static void ew_text(const struct ew *w, struct mime_gbuf *tmp, unsigned *fl)
{
	size_t room = mime_gbuf_room(tmp, w->text_len);
	uint8_t *o = tmp->p + tmp->len;
	const uint8_t *t = (const uint8_t *)w->text;
	size_t n = w->text_len, r = 0;

	if (room < n) {
		tmp->truncated = true;
		n = room;
	}
	if (w->enc == 'b') {
		unsigned df = 0;

		/* room for n is enough: k characters never decode to more than 3k/4 bytes */
		r = mime_decode_b64_block(t, n, o, &df);
		if (df)
			*fl |= MIME_HEADER_F_BAD_EW;
	} else {
		for (size_t i = 0; i < n; i++) {
			uint8_t c = t[i];
			int h1, h2;

			if (c == '_') {
				o[r++] = ' ';
			} else if (c == '=' && i + 2 < n &&
				   (h1 = mime_decode_hexval(t[i + 1])) >= 0 &&
				   (h2 = mime_decode_hexval(t[i + 2])) >= 0) {
				o[r++] = (uint8_t)(h1 << 4 | h2);
				i += 2;
			} else {
				if (c == '=')
					*fl |= MIME_HEADER_F_BAD_EW;
				o[r++] = c;
			}
		}
	}
	tmp->len += r;
}

struct ew_pending {
	const char *charset;
	size_t      charset_len;
};

static void ew_flush(struct mime_charset_cache *cc, struct ew_pending *pw, struct mime_gbuf *out,
		     struct mime_gbuf *tmp, unsigned *fl)
{
	struct mime_charset_conv conv;

	if (pw->charset == NULL)
		return;
	if (mime_charset_open(cc, pw->charset, pw->charset_len, &conv) < 0)
		*fl |= MIME_HEADER_F_BAD_CHARSET;
	mime_charset_feed(&conv, tmp->p, tmp->len, put_utf8, out);
	mime_charset_end(&conv, put_utf8, out);
	mime_gbuf_clear(tmp);
	pw->charset = NULL;
}

static void put_text(struct mime_gbuf *out, const char *p, size_t n)
{
	struct mime_charset_conv conv = { .kind = MIME_CHARSET_UTF8, .cd = (iconv_t)-1 };

	mime_charset_feed(&conv, (const uint8_t *)p, n, put_utf8, out);
	mime_charset_end(&conv, put_utf8, out);
}

unsigned mime_header_decode(struct mime_charset_cache *cc, const char *v, size_t n,
			    struct mime_gbuf *out, struct mime_gbuf *tmp)
{
	struct ew_pending pw = { 0 };
	unsigned fl = 0;
	size_t i = 0, lit = 0;  /* literal text starts at lit */
	bool after_ew = false;

	mime_gbuf_clear(out);
	mime_gbuf_clear(tmp);
	while (i < n) {
		const char *q = memchr(v + i, '=', n - i);
		struct ew w;

		if (q == NULL)
			break;
		i = (size_t)(q - v);
		if (i + 1 >= n || v[i + 1] != '?') {
			i++;
			continue;
		}
		if (!ew_parse(v, n, i, &w)) {
			fl |= MIME_HEADER_F_BAD_EW;
			i += 2;
			continue;
		}
		/* v[lit..i) is literal text; dropped if only white space between two words */
		bool ws_only = true;

		for (size_t k = lit; k < i; k++)
			if (!is_wsp((uint8_t)v[k]) && v[k] != '\r' && v[k] != '\n') {
				ws_only = false;
				break;
			}
		if (!(after_ew && ws_only)) {
			ew_flush(cc, &pw, out, tmp, &fl);
			put_text(out, v + lit, i - lit);
		}
		if (pw.charset != NULL && (pw.charset_len != w.charset_len ||
					   strncasecmp(pw.charset, w.charset, w.charset_len) != 0))
			ew_flush(cc, &pw, out, tmp, &fl);
		/* Adjacent words in one charset are joined before conversion: encoders split
		 * multi-byte characters across words. */
		pw.charset = w.charset;
		pw.charset_len = w.charset_len;
		ew_text(&w, tmp, &fl);
		i = lit = w.end;
		after_ew = true;
	}
	ew_flush(cc, &pw, out, tmp, &fl);
	put_text(out, v + lit, n - lit);
	return fl;
}

/* --- Content-Type ------------------------------------------------------------------------ */

static size_t skip_cfws(const char *v, size_t n, size_t i)
{
	for (;;) {
		while (i < n && (is_wsp((uint8_t)v[i]) || v[i] == '\r' || v[i] == '\n'))
			i++;
		if (i < n && v[i] == '(') {
			/* comment, nesting ignored (RFC 5322 §3.2.2 allows it; mail rarely does) */
			while (i < n && v[i] != ')') {
				if (v[i] == '\\' && i + 1 < n)
					i++;
				i++;
			}
			if (i < n)
				i++;
			continue;
		}
		return i;
	}
}

struct piece {
	const char *p;
	size_t      n;
	bool        quoted, ext, set;
};

struct param {
	struct piece whole;                      /* name= (no section) */
	struct piece sec[MIME_HEADER_PIECES];    /* name*N= */
};

static size_t piece_put(const struct piece *pc, bool first, char *out, size_t o, size_t cap,
			bool *over)
{
	const char *p = pc->p;
	size_t n = pc->n;

	if (pc->ext && first) {
		/* charset'language'value: the value's charset is ignored (boundary and charset
		 * names are ASCII) */
		const char *a = memchr(p, '\'', n), *b;

		if (a != NULL && (b = memchr(a + 1, '\'', (size_t)(p + n - a - 1))) != NULL) {
			n -= (size_t)(b + 1 - p);
			p = b + 1;
		}
	}
	for (size_t i = 0; i < n; i++) {
		char c = p[i];
		int h1, h2;

		if (pc->quoted && c == '\\' && i + 1 < n) {
			c = p[++i];
		} else if (pc->ext && c == '%' && i + 2 < n &&
			   (h1 = mime_decode_hexval((uint8_t)p[i + 1])) >= 0 &&
			   (h2 = mime_decode_hexval((uint8_t)p[i + 2])) >= 0) {
			c = (char)(h1 << 4 | h2);
			i += 2;
		}
		if (o >= cap) {
			*over = true;
			return o;
		}
		out[o++] = c;
	}
	return o;
}

/* Joins a parameter's value into out; returns its length, or cap + 1 if too long. */
static size_t param_join(const struct param *pm, char *out, size_t cap)
{
	bool over = false;
	size_t o = 0;

	if (pm->whole.set) {
		o = piece_put(&pm->whole, true, out, 0, cap, &over);
	} else {
		for (unsigned k = 0; k < MIME_HEADER_PIECES && pm->sec[k].set; k++)
			o = piece_put(&pm->sec[k], k == 0, out, o, cap, &over);
	}
	return over ? cap + 1 : o;
}

static bool tok_eq(const char *p, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(p, lit, n) == 0;
}

void mime_header_ctype(const char *v, size_t n, struct mime_header_ctype *ct)
{
	struct param bnd, cs;
	size_t i, t0, t1, s0, s1;

	memset(ct, 0, sizeof(*ct));
	memset(&bnd, 0, sizeof(bnd));
	memset(&cs, 0, sizeof(cs));
	ct->major = MIME_HEADER_CT_TEXT;

	i = skip_cfws(v, n, 0);
	t0 = i;
	while (i < n && v[i] != '/' && v[i] != ';' && !is_wsp((uint8_t)v[i]) && v[i] != '(')
		i++;
	t1 = i;
	i = skip_cfws(v, n, i);
	s0 = s1 = i;
	if (i < n && v[i] == '/') {
		i = s0 = skip_cfws(v, n, i + 1);
		while (i < n && v[i] != ';' && !is_wsp((uint8_t)v[i]) && v[i] != '(')
			i++;
		s1 = i;
	}
	if (tok_eq(v + t0, t1 - t0, "text")) {
		ct->html = tok_eq(v + s0, s1 - s0, "html");
	} else if (tok_eq(v + t0, t1 - t0, "multipart")) {
		ct->major = MIME_HEADER_CT_MULTIPART;
		ct->digest = tok_eq(v + s0, s1 - s0, "digest");
	} else if (tok_eq(v + t0, t1 - t0, "message") &&
		   (tok_eq(v + s0, s1 - s0, "rfc822") || tok_eq(v + s0, s1 - s0, "global"))) {
		ct->major = MIME_HEADER_CT_MESSAGE;
	} else if (t1 > t0) {
		ct->major = MIME_HEADER_CT_OTHER;
	}

	/* parameters */
	while (i < n) {
		size_t n0, n1, star, vs, ve;
		struct param *pm = NULL;
		struct piece pc = { 0 };
		long sec = -1;

		while (i < n && (v[i] == ';' || is_wsp((uint8_t)v[i]) || v[i] == '\r' || v[i] == '\n'))
			i++;
		i = skip_cfws(v, n, i);
		n0 = i;
		while (i < n && v[i] != '=' && v[i] != ';' && !is_wsp((uint8_t)v[i]))
			i++;
		n1 = i;
		i = skip_cfws(v, n, i);
		if (i >= n || v[i] != '=') {
			if (i == n1 && i < n)
				i++;  /* make progress on a stray character */
			continue;
		}
		i = skip_cfws(v, n, i + 1);
		if (i < n && v[i] == '"') {
			pc.quoted = true;
			vs = ++i;
			while (i < n && v[i] != '"') {
				if (v[i] == '\\' && i + 1 < n)
					i++;
				i++;
			}
			ve = i;
			if (i < n)
				i++;
		} else {
			vs = i;
			while (i < n && v[i] != ';' && !is_wsp((uint8_t)v[i]))
				i++;
			ve = i;
		}
		pc.p = v + vs;
		pc.n = ve - vs;
		pc.set = true;
		/* name, name*, name*N, name*N* (RFC 2231 §3, §4) */
		star = n0;
		while (star < n1 && v[star] != '*')
			star++;
		if (tok_eq(v + n0, star - n0, "boundary"))
			pm = &bnd;
		else if (tok_eq(v + n0, star - n0, "charset"))
			pm = &cs;
		if (pm == NULL)
			continue;
		if (star < n1) {
			size_t k = star + 1;

			if (k < n1 && v[k] >= '0' && v[k] <= '9') {
				sec = 0;
				while (k < n1 && v[k] >= '0' && v[k] <= '9' && sec < 1000)
					sec = sec * 10 + (v[k++] - '0');
				if (k < n1 && v[k] == '*') {
					pc.ext = true;
					k++;
				}
			} else {
				pc.ext = true;  /* name*= */
			}
			if (k != n1)
				continue;  /* not a parameter name we know */
		}
		if (sec < 0) {
			if (!pm->whole.set)
				pm->whole = pc;
		} else if (sec < (long)MIME_HEADER_PIECES && !pm->sec[sec].set) {
			pm->sec[sec] = pc;
		}
	}

	size_t bl = param_join(&bnd, ct->boundary, sizeof(ct->boundary));

	if (bl > 0 && bl <= sizeof(ct->boundary)) {
		ct->has_boundary = true;
		ct->boundary_len = (uint16_t)bl;
	}
	size_t cl = param_join(&cs, ct->charset, sizeof(ct->charset));

	/* trim blanks some senders leave inside the quotes */
	while (cl > 0 && cl <= sizeof(ct->charset) && is_wsp((uint8_t)ct->charset[cl - 1]))
		cl--;
	if (cl <= sizeof(ct->charset)) {
		ct->charset_len = (uint8_t)cl;
	} else {
		ct->charset[0] = '?';  /* too long to be a name: unknown */
		ct->charset_len = 1;
	}
}

enum mime_header_cte mime_header_cte(const char *v, size_t n)
{
	size_t i = skip_cfws(v, n, 0), j;

	if (i < n && v[i] == '"')
		i++;
	j = i;
	while (j < n && v[j] != ';' && v[j] != '"' && !is_wsp((uint8_t)v[j]) && v[j] != '(')
		j++;
	if (tok_eq(v + i, j - i, "base64"))
		return MIME_HEADER_CTE_B64;
	if (tok_eq(v + i, j - i, "quoted-printable"))
		return MIME_HEADER_CTE_QP;
	return MIME_HEADER_CTE_IDENTITY;
}
