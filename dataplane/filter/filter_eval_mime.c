/*
 * filter_eval_mime.c - MIMEEval, BodyEval and ImageInfo (see filter_eval_mime.h): the tests
 * SpamAssassin 4.0 computes from a message's MIME structure and its parts' encoded lines.
 *
 * Shard thread. Everything is gathered while the message streams (the hooks at the end of
 * filter_eval_mime.h), in fixed state, with bounded work per byte; filter_eval_mime_test then
 * only compares numbers.
 *
 * What is ported, and from where (Mail::SpamAssassin 4.0.1):
 *   MIMEEval::_check_attachments and _check_mime_header (check_for_mime's values, the
 *     multipart ratio, the us-ascii and unicode tests, the QP counts): per entity, from its
 *     last Content-Type, Content-Transfer-Encoding and Content-Disposition as
 *     Util::parse_content_type reads them; per leaf line, from the lines as they stand in
 *     the message (Node::raw: the line end before a delimiter belongs to the delimiter);
 *   Message::_parse_multipart's flags (mime_epilogue_exists, missing_mime_headers,
 *     missing_mime_head_body_separator);
 *   MIMEEval::check_for_uppercase over the body's paragraphs, check_ma_non_text,
 *     check_base64_length;
 *   BodyEval::_multipart_alternative_difference (the words of the rendered text/plain and
 *     text/html parts of a multipart/alternative), check_blank_line_ratio (rawbody lines),
 *     check_body_length (the body after the header, line ends counted once);
 *   ImageInfo: gif, png and jpeg parts in base64 (dimensions from the decoded header bytes:
 *     GIF's logical screen, PNG's IHDR, JPEG's SOF marker; lengths from the image are only
 *     ever used to skip bytes, never to index a buffer).
 * XXX compromises: ok_locales is taken as SpamAssassin's default "all", so the faraway
 * charset tests never hit; a multipart/alternative nested inside another adds its words to
 * the outer one's; the word table keeps FILTER_EVAL_MIME_WORDS * 3/4 distinct words (more are
 * not counted); lines are not cut at SpamAssassin's MAX_BODY_LINE_LENGTH (2048); a multipart
 * whose boundary never comes is not re-read as SpamAssassin's single part.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filter_types.h"
#include "mime.h"

/* check_for_mime's values */
enum {
	EV_B64_COUNT, EV_B64_TEXT, EV_HTML_COUNT, EV_TEXT_COUNT, EV_FARAWAY, EV_MISSING_BOUNDARY,
	EV_MP_ALT, EV_MP_RATIO, EV_QP_COUNT, EV_QP_LONG, EV_QP_RATIO, EV_ASCII, EV_UNICODE,
	EV_ATTACH, EV_BAD_ISO,
};

static const char *const ev_keys[] = {
	[EV_B64_COUNT] = "mime_base64_count", [EV_B64_TEXT] = "mime_base64_encoded_text",
	[EV_HTML_COUNT] = "mime_body_html_count", [EV_TEXT_COUNT] = "mime_body_text_count",
	[EV_FARAWAY] = "mime_faraway_charset", [EV_MISSING_BOUNDARY] = "mime_missing_boundary",
	[EV_MP_ALT] = "mime_multipart_alternative", [EV_MP_RATIO] = "mime_multipart_ratio",
	[EV_QP_COUNT] = "mime_qp_count", [EV_QP_LONG] = "mime_qp_long_line",
	[EV_QP_RATIO] = "mime_qp_ratio", [EV_ASCII] = "mime_ascii_text_illegal",
	[EV_UNICODE] = "mime_text_unicode_ratio", [EV_ATTACH] = "mime_attachment",
	[EV_BAD_ISO] = "mime_bad_iso_charset",
};

static const char *const ev_flags[] = { "mime_epilogue_exists", "missing_mime_headers",
					 "missing_mime_head_body_separator" };

static const char *const ev_img_types[] = { "all", "gif", "png", "jpeg" };

#define EV_UNDEF 1e300

/* --- arguments -------------------------------------------------------------------------- */

/* Splits "'a', 'b', 3" into at most n unquoted, trimmed strings (in buf); returns the count. */
static int ev_args(char *buf, char **a, int n)
{
	int k = 0;
	char *p = buf;

	while (*p && k < n) {
		char *s, *e;

		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (!*p)
			break;
		if (*p == '\'' || *p == '"') {
			char q = *p++;

			s = p;
			e = strchr(p, q);
			if (!e)
				return -1;
			*e = '\0';
			p = e + 1;
		} else {
			s = p;
			while (*p && *p != ',')
				p++;
			e = p;
			while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
				e--;
			if (*p)
				p++;
			*e = '\0';
		}
		a[k++] = s;
	}
	return k;
}

static bool ev_num(const char *s, double *v_r)
{
	char *e;

	if (!s || !*s)
		return false;
	*v_r = strtod(s, &e);
	return e != s && !*e;
}

static int ev_img_type(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(s, ev_img_types[i]) == 0)
			return i;
	return -1;
}

int filter_eval_mime_prepare(struct filter_db *db, struct filter_rule *ru, const char *args, size_t len)
{
	char buf[128], *a[3] = { NULL, NULL, NULL };
	int n;

	ru->eval_arg[0] = ru->eval_arg[1] = EV_UNDEF;
	if (ru->eval == RULES_EVAL_MIME_UPPERCASE || ru->eval == RULES_EVAL_MIME_IMAGE_RATIO ||
	    ru->eval == RULES_EVAL_MIME_TVD_VERTICAL)
		db->body_evals = true;
	ru->eval_tag = -1;
	if (len >= sizeof(buf))
		return 0;   /* never hits */
	memcpy(buf, args, len);
	buf[len] = '\0';
	n = ev_args(buf, a, 3);
	if (n < 0)
		return 0;
	switch (ru->eval) {
	case RULES_EVAL_MIME_CHECK:
		for (size_t i = 0; n >= 1 && i < sizeof(ev_keys) / sizeof(ev_keys[0]); i++)
			if (strcmp(a[0], ev_keys[i]) == 0)
				ru->eval_tag = (int)i;
		break;
	case RULES_EVAL_MIME_PARSE_FLAG:
		for (size_t i = 0; n >= 1 && i < sizeof(ev_flags) / sizeof(ev_flags[0]); i++)
			if (strcmp(a[0], ev_flags[i]) == 0)
				ru->eval_tag = (int)i;
		break;
	case RULES_EVAL_MIME_IMAGE_COUNT:
	case RULES_EVAL_MIME_PIXELS:
	case RULES_EVAL_MIME_IMAGE_RATIO:
		if (n < 2 || !ev_num(a[1], &ru->eval_arg[0]))
			break;
		if (n == 3 && !ev_num(a[2], &ru->eval_arg[1]))
			break;
		if (ru->eval == RULES_EVAL_MIME_IMAGE_RATIO && n < 3)
			break;
		ru->eval_tag = ev_img_type(a[0]);
		break;
	case RULES_EVAL_MIME_UNICODE_RATIO: {
		/* MIMEEval wants /^\d{0,3}\.\d{1,3}$/ */
		const char *s = n ? a[0] : "", *dot = strchr(s, '.');
		size_t ip = dot ? (size_t)(dot - s) : 0, fp = dot ? strlen(dot + 1) : 0;
		bool ok = dot && ip <= 3 && fp >= 1 && fp <= 3;

		for (size_t i = 0; ok && s[i]; i++)
			ok = s[i] == '.' ? s + i == dot : (s[i] >= '0' && s[i] <= '9');
		if (ok && ev_num(s, &ru->eval_arg[0]))
			ru->eval_tag = 0;
		break;
	}
	case RULES_EVAL_MIME_ALT_DIFF:
		if (n == 2 && ev_num(a[0], &ru->eval_arg[0]) &&
		    (strcmp(a[1], "undef") == 0 || ev_num(a[1], &ru->eval_arg[1])))
			ru->eval_tag = 0;
		break;
	case RULES_EVAL_MIME_BLANK_RATIO: {
		double ml = 1;

		if (n >= 2 && ev_num(a[0], &ru->eval_arg[0]) && ev_num(a[1], &ru->eval_arg[1])) {
			if (n == 3 && !ev_num(a[2], &ml))
				break;
			ru->eval_tag = ml < 1 ? 1 : ml > 1e9 ? 1000000000 : (int)ml;
		}
		break;
	}
	case RULES_EVAL_MIME_ASCII_ILLEGAL:
	case RULES_EVAL_MIME_FARAWAY:
	case RULES_EVAL_MIME_MA_NON_TEXT:
		ru->eval_tag = 0;
		break;
	default:
		/* (min[, max]) or (min) */
		if (n >= 1 && ev_num(a[0], &ru->eval_arg[0]) && (n < 2 || ev_num(a[1], &ru->eval_arg[1])))
			ru->eval_tag = 0;
		break;
	}
	return 0;
}

void filter_eval_mime_begin(struct filter_msg *fm)
{
	struct filter_eval_mime_state *st = &fm->ev_mime;

	memset(st, 0, offsetof(struct filter_eval_mime_state, words));
	st->nwords = 0;
	st->hdr_st = 1;
	st->tvd = -1;
	st->p_term = '\n';
}

/* --- the word table (multipart_alternative_difference) ------------------------------------ */

static void ev_alt_start(struct filter_eval_mime_state *st)
{
	memset(st->words, 0, sizeof(st->words));
	st->nwords = 0;
	st->words_full = st->alt_pseudo = false;
}

static void ev_word(struct filter_eval_mime_state *st, uint64_t h, bool html)
{
	uint32_t i = (uint32_t)h & (FILTER_EVAL_MIME_WORDS - 1);

	h |= 1;   /* 0 marks a free slot */
	for (;;) {
		struct filter_eval_mime_word *w = &st->words[i];

		if (w->h == h || !w->h) {
			if (!w->h) {
				if (st->nwords >= FILTER_EVAL_MIME_WORDS / 4 * 3) {
					st->words_full = true;
					return;
				}
				w->h = h;
				st->nwords++;
			}
			if (html && w->html < UINT16_MAX)
				w->html++;
			else if (!html && w->text < UINT16_MAX)
				w->text++;
			return;
		}
		i = (i + 1) & (FILTER_EVAL_MIME_WORDS - 1);
	}
}

static bool ev_has_html_word(const struct filter_eval_mime_state *st)
{
	if (st->alt_pseudo)
		return true;
	for (uint32_t i = 0; i < FILTER_EVAL_MIME_WORDS; i++)
		if (st->words[i].html)
			return true;
	return false;
}

/* The outermost multipart/alternative ended: its difference, as BodyEval computes it. */
static void ev_alt_finish(struct filter_eval_mime_state *st)
{
	uint32_t orig = st->alt_pseudo, text = 0, left = st->alt_pseudo;
	double diff;

	for (uint32_t i = 0; i < FILTER_EVAL_MIME_WORDS; i++) {
		const struct filter_eval_mime_word *w = &st->words[i];

		orig += w->html > 0;
		text += w->text > 0;
		left += w->html > 0 && w->text < w->html;
	}
	if (!orig)
		return;
	st->madiff_html = orig;
	st->madiff_text = text;
	diff = (double)left / orig * 100;
	if (diff > st->madiff)
		st->madiff = diff;
}

static inline bool ev_space(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static inline bool ev_wordc(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

static void ev_tok_end(struct filter_eval_mime_state *st)
{
	if (st->tok_in && st->tok_word)
		ev_word(st, st->tok_h, st->l_alt == 2);
	st->tok_in = st->tok_word = false;
}

void filter_eval_mime_text(struct filter_msg *fm, const uint8_t *p, size_t n)
{
	struct filter_eval_mime_state *st = &fm->ev_mime;

	if (!st->in_leaf || !st->l_alt)
		return;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (ev_space(c)) {
			ev_tok_end(st);
			continue;
		}
		if (!st->tok_in) {
			st->tok_in = true;
			st->tok_h = 0xcbf29ce484222325ull;
		}
		st->tok_h = (st->tok_h ^ c) * 0x100000001b3ull;
		st->tok_word |= ev_wordc(c);
	}
}

/* --- entities ------------------------------------------------------------------------------ */

static void ev_lower(char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] >= 'A' && s[i] <= 'Z')
			s[i] = (char)(s[i] | 0x20);
}

/* Util::parse_content_type's MIME type of v (NULL: the header is missing). */
static void ev_ctype(const char *v, size_t n, char *out, size_t outlen)
{
	size_t s = 0, e, o = 0;
	char tmp[FILTER_EVAL_MIME_TYPE];
	size_t tn = 0;

	if (v) {
		while (s < n && ev_space((uint8_t)v[s]))
			s++;
		e = s;
		while (e < n && v[e] != ';')
			e++;
		/* ^([^/]+(?:/[^/\s]*)?) */
		{
			size_t k = s;

			while (k < e && v[k] != '/')
				k++;
			if (k < e) {
				k++;
				while (k < e && v[k] != '/' && !ev_space((uint8_t)v[k]))
					k++;
			}
			e = k;
		}
		for (size_t k = s; k < e && tn + 1 < sizeof(tmp); k++)
			tmp[tn++] = v[k];
	}
	tmp[tn] = '\0';
	ev_lower(tmp, tn);
	if (!tn || (strncmp(tmp, "text", 4) == 0 && !ev_wordc((uint8_t)tmp[4]) &&
		    strcmp(tmp, "text/x-vcard") != 0 && strcmp(tmp, "text/calendar") != 0 &&
		    strcmp(tmp, "text/html") != 0)) {
		strcpy(tmp, "text/plain");
		tn = 10;
	}
	for (size_t k = 0; k < tn && o + 1 < outlen; k++) {
		uint8_t c = (uint8_t)tmp[k];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '(' || c == ')' || c == ',' ||
		    (c >= ':' && c <= '?') || c == '@' || (c >= '[' && c <= ']'))
			continue;
		out[o++] = (char)c;
	}
	out[o] = '\0';
}

/* /\bcharset\s*=\s*["']?(.*?)["']?(?:;|$)/i: the charset (lower case) into out; false if none. */
static bool ev_charset(const char *v, size_t n, char *out, size_t outlen)
{
	for (size_t i = 0; i + 7 <= n; i++) {
		size_t k, s, j, o = 0;

		if (strncasecmp(v + i, "charset", 7) != 0 || (i && ev_wordc((uint8_t)v[i - 1])))
			continue;
		k = i + 7;
		while (k < n && ev_space((uint8_t)v[k]))
			k++;
		if (k >= n || v[k] != '=')
			continue;
		k++;
		while (k < n && ev_space((uint8_t)v[k]))
			k++;
		if (k < n && (v[k] == '"' || v[k] == '\''))
			k++;
		s = k;
		for (j = s; j < n; j++) {
			if (v[j] == ';')
				break;
			if ((v[j] == '"' || v[j] == '\'') && (j + 1 == n || v[j + 1] == ';'))
				break;
		}
		for (size_t m = s; m < j && o + 1 < outlen; m++)
			out[o++] = v[m];
		out[o] = '\0';
		ev_lower(out, o);
		return true;
	}
	return false;
}

/* A "boundary=" parameter with a value (Util::parse_content_type's, loosely). */
static bool ev_has_boundary(const char *v, size_t n)
{
	for (size_t i = 0; i + 8 <= n; i++) {
		size_t k;

		if (strncasecmp(v + i, "boundary", 8) != 0 || (i && ev_wordc((uint8_t)v[i - 1])))
			continue;
		k = i + 8;
		while (k < n && ev_space((uint8_t)v[k]))
			k++;
		if (k < n && v[k] == '=') {
			k++;
			while (k < n && ev_space((uint8_t)v[k]))
				k++;
			if (k < n && v[k] != ';' && !(v[k] == '"' && (k + 1 == n || v[k + 1] == '"')))
				return true;
		}
	}
	return false;
}

static bool ev_contains(const char *s, const char *lit)
{
	return strstr(s, lit) != NULL;
}

/* charset =~ /iso-\S+-\S+\b/i && charset !~ /iso-(?:8859-\d{1,2}|2022-(?:jp|kr))\b/ */
static bool ev_bad_iso(const char *cs)
{
	bool bad = false;

	for (const char *p = cs; (p = strstr(p, "iso-")) != NULL && !bad; p++) {
		/* "iso-", one non-blank or more (they may hold '-'), '-', a non-blank */
		if (!p[4] || ev_space((uint8_t)p[4]))
			continue;
		for (const char *d = p + 5; *d && !ev_space((uint8_t)*d) && !bad; d++)
			bad = *d == '-' && d[1] && !ev_space((uint8_t)d[1]);
	}
	if (!bad)
		return false;
	for (const char *p = cs; (p = strstr(p, "iso-")) != NULL; p++) {
		const char *q = p + 4;

		if (strncmp(q, "8859-", 5) == 0 && q[5] >= '0' && q[5] <= '9') {
			size_t k = 6;

			if (q[k] >= '0' && q[k] <= '9')
				k++;
			if (!ev_wordc((uint8_t)q[k]))
				return false;
			/* \d{1,2}\b: with a third digit the first two end no word, and one
			 * digit then another is covered by k == 7 */
		}
		if ((strncmp(q, "2022-jp", 7) == 0 || strncmp(q, "2022-kr", 7) == 0) &&
		    !ev_wordc((uint8_t)q[7]))
			return false;
	}
	return true;
}

/* CHARSETS_LIKELY_TO_FP_AS_CAPS, anchored: [-_a-z0-9]* (koi|jp|...) [-_a-z0-9]* */
static bool ev_caps_fp(const char *cs)
{
	static const char *const parts[] = { "koi", "jp", "jis", "euc", "gb", "big5", "isoir",
					     "cp1251", "windows-1251", "georgianps", "pt154", "tis" };

	for (const char *p = cs; *p; p++)
		if (!ev_wordc((uint8_t)*p) && *p != '-')
			return false;
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
		if (strstr(cs, parts[i]))
			return true;
	return false;
}

void filter_eval_mime_header(struct filter_msg *fm, unsigned depth, const char *name, size_t nlen,
			     const char *val, size_t vlen)
{
	struct filter_eval_mime_state *st = &fm->ev_mime;

	(void)depth;
	st->nfields++;
	if (nlen == 12 && strncasecmp(name, "content-type", 12) == 0) {
		st->ct_len = (uint16_t)(vlen < sizeof(st->ct) ? vlen : sizeof(st->ct));
		memcpy(st->ct, val, st->ct_len);
		st->ct_seen = true;
	} else if (nlen == 25 && strncasecmp(name, "content-transfer-encoding", 25) == 0) {
		st->cte_len = (uint8_t)(vlen < sizeof(st->cte) - 1 ? vlen : sizeof(st->cte) - 1);
		memcpy(st->cte, val, st->cte_len);
		st->cte[st->cte_len] = '\0';
		ev_lower(st->cte, st->cte_len);
	} else if (nlen == 19 && strncasecmp(name, "content-disposition", 19) == 0) {
		char low[16];
		size_t k = vlen < sizeof(low) ? vlen : sizeof(low);

		memcpy(low, val, k);
		ev_lower(low, k);
		st->cd_ai = (k >= 10 && memcmp(low, "attachment", 10) == 0) ||
			    (k >= 6 && memcmp(low, "inline", 6) == 0);
		st->cd_attach = false;
		for (size_t i = 0; i + 10 <= vlen && !st->cd_attach; i++)
			st->cd_attach = strncasecmp(val + i, "attachment", 10) == 0;
	}
}

static void ev_line_end(struct filter_eval_mime_state *st, bool nl);
static void ev_img_byte(struct filter_eval_mime_state *st, uint8_t c);

/* ImageInfo's reading of the decoded image (ev_img_byte) */
enum { IM_HEAD, IM_PNG_CHUNK, IM_PNG_IHDR, IM_JPEG_MARK, IM_JPEG_SKIP, IM_JPEG_SOF };

/* A leaf's line begins: what ev_line_end sums is zero again. */
static void ev_line_reset(struct filter_eval_mime_state *st)
{
	st->ln_len = 0;
	st->qp_st = 0;
	st->qp_line = st->qp_run = 0;
	st->qp_since = UINT32_MAX;
	st->qp_ws = false;
	st->qp_tail[0] = st->qp_tail[1] = 0;
	st->uni_st = 0;
	st->uni_line = 0;
	st->ln_illegal = false;
}

/* The leaf whose body was streaming is complete. */
static void ev_leaf_finish(struct filter_eval_mime_state *st)
{
	if (!st->in_leaf)
		return;
	if (st->ln_len)
		ev_line_end(st, false);
	if (st->l_defined) {
		if (strcmp(st->type, "text/html") == 0) {
			st->html_b = st->l_nbytes;
			st->have_html_b = true;
		} else if (strcmp(st->type, "text/plain") == 0) {
			st->text_b = st->l_nbytes;
			st->have_text_b = true;
		}
	}
	if (st->l_alt) {
		ev_tok_end(st);
		if (st->l_alt == 2 && st->html_img && !ev_has_html_word(st))
			st->alt_pseudo = true;
	}
	if (st->l_img) {
		/* Node::decode keeps a last partial group; ImageInfo reads a short GIF header too */
		if (!st->im_done && st->b64_n >= 2) {
			uint32_t acc = st->b64_acc << (6 * (4 - st->b64_n));

			ev_img_byte(st, (uint8_t)(acc >> 16));
			if (st->b64_n == 3)
				ev_img_byte(st, (uint8_t)(acc >> 8));
		}
		if (!st->im_done && st->l_img == 1 && st->im_st == IM_HEAD && st->im_nbuf >= 10 &&
		    (memcmp(st->im_buf, "GIF87a", 6) == 0 || memcmp(st->im_buf, "GIF89a", 6) == 0)) {
			st->im_w = st->im_buf[6] | (uint32_t)st->im_buf[7] << 8;
			st->im_h = st->im_buf[8] | (uint32_t)st->im_buf[9] << 8;
		}
		st->img_count[st->l_img]++;
		st->img_count[0]++;
		if (st->im_w && st->im_h) {
			st->img_area[st->l_img] += (double)st->im_w * st->im_h;
			st->img_area[0] += (double)st->im_w * st->im_h;
		}
	}
	st->in_leaf = false;
}

void filter_eval_mime_headers_end(struct filter_msg *fm, unsigned depth)
{
	struct filter_eval_mime_state *st = &fm->ev_mime;
	char cs[64];
	bool has_cs, leaf;
	const char *t = st->type;

	ev_leaf_finish(st);
	ev_ctype(st->ct_seen ? st->ct : NULL, st->ct_len, st->type, sizeof(st->type));
	if (st->ct_seen) {
		has_cs = ev_charset(st->ct, st->ct_len, cs, sizeof(cs));
	} else {
		strcpy(cs, "us-ascii");
		has_cs = true;
	}

	/* the parse flags of a part after a delimiter (Message::_parse_multipart) */
	if (st->after_delim) {
		if (st->hdr_end_seen) {
			if (st->nfields == 0)
				st->missing_headers = true;
			if (!st->hdr_blank)
				st->missing_sep = true;
		} else if (!st->ending && st->nfields == 0) {
			st->missing_headers = true;   /* a delimiter right after the delimiter */
		}
	}

	if (depth == 0)
		st->top_alt = strcmp(t, "multipart/alternative") == 0;
	else if (depth == 1 && st->kids < 255 && ++st->kids <= 2)
		st->kid_sig |= st->kids == 1 ? strcmp(t, "text/html") == 0
					     : (strcmp(t, "text/calendar") == 0) << 1;
	else if (depth > 1)
		st->deeper = true;

	/* multipart/alternative: the ones this entity is not inside end */
	while (st->nalt && st->alt_depth[st->nalt - 1] >= depth)
		if (--st->nalt == 0)
			ev_alt_finish(st);
	leaf = !((strncmp(t, "multipart/", 10) == 0 && st->ct_seen &&
		  ev_has_boundary(st->ct, st->ct_len)) ||
		 strcmp(t, "message/rfc822") == 0 || strcmp(t, "message/global") == 0);
	if (st->nalt && st->alt_depth[st->nalt - 1] + 1u == depth && leaf &&
	    strncmp(t, "text/", 5) != 0 && strcmp(t, "application/rtf") != 0)
		st->ma_non_text = true;

	/* _check_mime_header */
	if (strcmp(t, "text/html") == 0)
		st->html_count++;
	else if (strncmp(t, "text", 4) == 0)
		st->text_count++;
	if (ev_contains(st->cte, "base64"))
		st->b64_count++;
	else if (ev_contains(st->cte, "quoted-printable"))
		st->qp_hdr_count++;
	if (st->cd_attach)
		st->attach++;
	if (strncmp(t, "text", 4) == 0 && ev_contains(st->cte, "base64") && !st->cd_ai) {
		static const char *const ascii[] = { "us-ascii", "ansi_x3.4-1968", "iso-ir-6",
			"ansi_x3.4-1986", "iso_646.irv:1991", "ascii", "iso646-us", "us", "ibm367",
			"cp367", "csascii" };
		bool ok = !has_cs || !cs[0];

		for (size_t i = 0; !ok && i < sizeof(ascii) / sizeof(ascii[0]); i++)
			ok = strstr(cs, ascii[i]) != NULL;
		if (ok)
			st->b64_text = true;
	}
	if (has_cs && ev_bad_iso(cs))
		st->bad_iso = true;
	if (has_cs && ev_caps_fp(cs))
		st->caps_fp = true;
	if (strcmp(t, "multipart/alternative") == 0) {
		st->multipart_alt = true;
		if (st->nalt < FILTER_EVAL_MIME_ALTS) {
			if (!st->nalt)
				ev_alt_start(st);
			st->alt_depth[st->nalt++] = (uint16_t)depth;
		}
	}

	/* the leaf that follows */
	if (leaf) {
		bool plain = strcmp(t, "text/plain") == 0;

		st->in_leaf = true;
		st->l_html = strcmp(t, "text/html") == 0;
		st->l_text = strncmp(t, "text/", 5) == 0;
		st->l_calendar = strcmp(t, "text/calendar") == 0;
		st->l_ascii = plain && (!has_cs || strcmp(cs, "us-ascii") == 0);
		st->l_unicode = plain && (!st->cte_len || strcmp(st->cte, "7bit") == 0 ||
					  strcmp(st->cte, "8bit") == 0);
		st->l_qp = strcmp(st->cte, "quoted-printable") == 0;
		st->l_b64 = strcmp(st->cte, "base64") == 0 && strcmp(t, "application/ics") != 0;
		st->l_defined = !st->cd_attach;
		st->l_bytes = st->multipart_alt && !st->cd_attach && (plain || st->l_html);
		st->l_nbytes = 0;
		st->l_alt = st->nalt && st->l_text ? (st->l_html ? 2 : 1) : 0;
		st->html_img = false;
		st->img_st = 0;
		st->l_img = 0;
		if (strcmp(st->cte, "base64") == 0) {
			if (strcmp(t, "image/gif") == 0)
				st->l_img = 1;
			else if (strcmp(t, "image/png") == 0)
				st->l_img = 2;
			else if (strcmp(t, "image/jpeg") == 0 || strcmp(t, "image/jpg") == 0)
				st->l_img = 3;
		}
		st->b64_acc = 0;
		st->b64_n = 0;
		st->im_st = 0;
		st->im_pos = st->im_skip = st->im_w = st->im_h = 0;
		st->im_nbuf = 0;
		st->im_done = false;
		ev_line_reset(st);
	}

	st->ct_seen = false;
	st->ct_len = 0;
	st->cte_len = 0;
	st->cte[0] = '\0';
	st->cd_attach = st->cd_ai = false;
	st->nfields = 0;
	st->hdr_blank = st->hdr_end_seen = false;
	st->after_delim = false;
}

void filter_eval_mime_ending(struct filter_msg *fm)
{
	fm->ev_mime.ending = true;
}

/* --- lines of a leaf ---------------------------------------------------------------------- */

static void ev_line_end(struct filter_eval_mime_state *st, bool nl)
{
	uint64_t len = (uint64_t)st->ln_len + nl;

	if (st->l_bytes)
		st->l_nbytes += len;
	if (st->l_b64 && len > st->b64_len)
		st->b64_len = len > UINT32_MAX ? UINT32_MAX : (uint32_t)len;
	if (st->l_qp && !(st->ln_len >= 6 && memcmp(st->ln_start, "SPAM: ", 6) == 0)) {
		if (len > 78 + 1)
			st->qp_long = true;
		st->qp_bytes += len;
		if (st->qp_line) {
			uint32_t trailing = st->qp_since == 0 ? st->qp_run : 0;

			st->qp_chars += (int64_t)st->qp_line - trailing;
		}
	}
	if (st->l_ascii && st->ln_illegal)
		st->ascii_illegal = true;
	if (st->l_unicode) {
		st->normal_chars += len - 8ull * st->uni_line;
		st->unicode_chars += st->uni_line;
	}
	ev_line_reset(st);
}

static inline bool ev_hexu(uint8_t c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* m/=(?:09|3[0-9ABCEF]|[2456][0-9A-F]|7[0-9A-E])/g, and the trailing (=09|=20)+\s*$ */
static void ev_qp_byte(struct filter_eval_mime_state *st, uint8_t c)
{
	bool ws = c == ' ' || c == '\t' || c == '\f' || c == '\v' || c == '\r';

	switch (st->qp_st) {
	case 1:
		if (c == '0' || (c >= '2' && c <= '7')) {
			st->qp_d1 = c;
			st->qp_st = 2;
		} else {
			st->qp_st = c == '=' ? 1 : 0;
		}
		break;
	case 2: {
		uint8_t d = st->qp_d1;
		bool ok = (d == '0' && c == '9') || (d == '3' && ev_hexu(c) && c != 'D') ||
			  ((d == '2' || d == '4' || d == '5' || d == '6') && ev_hexu(c)) ||
			  (d == '7' && ev_hexu(c) && c != 'F');

		if (ok) {
			st->qp_line++;
			st->qp_st = 0;
		} else {
			st->qp_st = c == '=' ? 1 : 0;
		}
		break;
	}
	default:
		st->qp_st = c == '=' ? 1 : 0;
		break;
	}
	/* the trailing run: qp_since counts non-blank bytes since the last =09 / =20 ended */
	if (ws) {
		st->qp_ws = true;
	} else {
		if (st->qp_ws) {
			st->qp_ws = false;
			st->qp_run = 0;
			st->qp_since = UINT32_MAX;
		}
		if (st->qp_since != UINT32_MAX && ++st->qp_since > 3)
			st->qp_run = 0;
		/* "=09" or "=20" ends at c */
		if (st->qp_tail[0] == '=' && ((c == '9' && st->qp_tail[1] == '0') ||
					       (c == '0' && st->qp_tail[1] == '2'))) {
			st->qp_run = st->qp_since == 3 && st->qp_run ? st->qp_run + 1 : 1;
			st->qp_since = 0;
		}
	}
	st->qp_tail[0] = st->qp_tail[1];
	st->qp_tail[1] = c;
}

static void ev_b64_bytes(struct filter_eval_mime_state *st, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n && !st->im_done; i++) {
		uint8_t c = p[i];
		int v;

		if (c >= 'A' && c <= 'Z')
			v = c - 'A';
		else if (c >= 'a' && c <= 'z')
			v = c - 'a' + 26;
		else if (c >= '0' && c <= '9')
			v = c - '0' + 52;
		else if (c == '+')
			v = 62;
		else if (c == '/')
			v = 63;
		else
			continue;
		st->b64_acc = st->b64_acc << 6 | (uint32_t)v;
		if (++st->b64_n == 4) {
			ev_img_byte(st, (uint8_t)(st->b64_acc >> 16));
			ev_img_byte(st, (uint8_t)(st->b64_acc >> 8));
			ev_img_byte(st, (uint8_t)st->b64_acc);
			st->b64_n = 0;
			st->b64_acc = 0;
		}
	}
}

static void ev_line_bytes(struct filter_eval_mime_state *st, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n && st->ln_len + i < 6; i++)
		st->ln_start[st->ln_len + i] = (char)p[i];
	st->ln_len = st->ln_len + n > UINT32_MAX - 1 ? UINT32_MAX - 1 : st->ln_len + (uint32_t)n;
	if (st->l_img && !st->im_done)
		ev_b64_bytes(st, p, n);
	if (!st->l_qp && !st->l_ascii && !st->l_unicode)
		return;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (st->l_qp)
			ev_qp_byte(st, c);
		if (st->l_ascii && (c == 0 || c == '\r' || c >= 0x80))
			st->ln_illegal = true;
		if (st->l_unicode) {
			/* &#x[0-9A-F]{4}; */
			uint8_t s = st->uni_st;
			bool ok = (s == 0 && c == '&') || (s == 1 && c == '#') || (s == 2 && c == 'x') ||
				  (s >= 3 && s <= 6 && ev_hexu(c)) || (s == 7 && c == ';');

			if (!ok)
				st->uni_st = c == '&';
			else if (s == 7) {
				st->uni_line++;
				st->uni_st = 0;
			} else {
				st->uni_st = (uint8_t)(s + 1);
			}
		}
	}
}

void filter_eval_mime_raw(void *arg, unsigned kind, const uint8_t *p, size_t n, bool eol)
{
	struct filter_msg *fm = arg;
	struct filter_eval_mime_state *st = &fm->ev_mime;

	switch (kind) {
	case MIME_RAW_BODY:
		if (!st->in_leaf)
			break;
		if (eol)
			ev_line_end(st, true);
		else
			ev_line_bytes(st, p, n);
		break;
	case MIME_RAW_EPILOGUE:
		/* Message::_parse_multipart: a line with /[^\s.]/ after the close delimiter */
		for (size_t i = 0; i < n && !st->epilogue; i++)
			st->epilogue = !ev_space(p[i]) && p[i] != '.';
		break;
	case MIME_RAW_PART_END:
		ev_leaf_finish(st);
		break;
	case MIME_RAW_DELIM:
	case MIME_RAW_CLOSE:
		ev_leaf_finish(st);
		st->after_delim = kind == MIME_RAW_DELIM;
		break;
	case MIME_RAW_HDR_END:
		st->hdr_end_seen = true;
		st->hdr_blank = eol;
		break;
	default:
		break;
	}
}

/* --- rawbody, body, the message's bytes ------------------------------------------------- */

/* An img start tag in the HTML source (HTML.pm's "inside img"): "<img" then a blank, '/' or
 * '>', outside any other tag. img_st: 0 text, 1 "<", 2 inside another tag, 3.. "<i", "<im",
 * "<img". */
static void ev_img_tag(struct filter_eval_mime_state *st, uint8_t c)
{
	uint8_t lc = c >= 'A' && c <= 'Z' ? c | 0x20 : c;
	bool alpha = lc >= 'a' && lc <= 'z';

	switch (st->img_st) {
	case 0:
		st->img_st = c == '<';
		break;
	case 1:
		st->img_st = lc == 'i' ? 3 : alpha || c == '/' || c == '!' ? 2 : c == '<' ? 1 : 0;
		break;
	case 3:
	case 4:
		if (lc == (st->img_st == 3 ? 'm' : 'g'))
			st->img_st++;
		else
			st->img_st = c == '>' ? 0 : 2;
		break;
	case 5:
		if (ev_space(c) || c == '/' || c == '>')
			st->html_img = true;
		st->img_st = c == '>' ? 0 : 2;
		break;
	default:
		if (c == '>')
			st->img_st = 0;
		break;
	}
}

void filter_eval_mime_rawbody(struct filter_msg *fm, const uint8_t *p, size_t n)
{
	struct filter_eval_mime_state *st = &fm->ev_mime;
	size_t i = 0;

	if (!st->in_leaf || !st->l_text || st->l_calendar)
		return;
	st->raw_len += n;
	/* lines, and those with no \S (check_blank_line_ratio) */
	while (i < n) {
		const uint8_t *nl;

		if (!st->raw_nonblank) {
			while (i < n && p[i] != '\n' && ev_space(p[i]))
				i++;
			if (i < n && p[i] != '\n')
				st->raw_nonblank = true;
		}
		nl = i < n ? memchr(p + i, '\n', n - i) : NULL;
		if (!nl)
			break;
		st->raw_lines++;
		st->raw_blank += !st->raw_nonblank;
		st->raw_nonblank = false;
		i = (size_t)(nl - p) + 1;
	}
	/* BodyEval looks for an img only in the HTML of an alternative */
	if (st->l_alt == 2)
		for (i = 0; i < n; i++)
			ev_img_tag(st, p[i]);
}

/* A paragraph of the body ended: check_for_uppercase's counts. */
static void ev_para_end(struct filter_eval_mime_state *st)
{
	bool b64 = false;

	if (st->p_space) {
		/* /^(?:[A-Za-z0-9+\/=]{60,76} ){2}/: lingering base64 */
		size_t k = 0, n = st->p_len < sizeof(st->p_head) ? st->p_len : sizeof(st->p_head);
		int words = 0;

		while (words < 2) {
			size_t s = k;

			while (k < n && (ev_wordc((uint8_t)st->p_head[k]) || st->p_head[k] == '+' ||
					 st->p_head[k] == '/' || st->p_head[k] == '=') && st->p_head[k] != '_')
				k++;
			if (k - s < 60 || k - s > 76 || k >= n || st->p_head[k] != ' ')
				break;
			k++;
			words++;
		}
		b64 = words == 2;
		if (!b64) {
			st->up_len += st->p_len;
			st->up_lower += st->p_lower;
			st->up_upper += st->p_upper;
		}
	}
	/* BodyEval's tvd_vertical_words: spaces against the rest, per line of SpamAssassin's text
	 * array, which keeps each line's "\n" (the Subject's too) and the last one's trailing
	 * white space as one space (p_term) */
	{
		uint32_t len = st->p_len + (st->p_term != 0), sp = st->p_spaces + (st->p_term == ' ');
		uint32_t non = len - sp;

		if (len > 5) {
			int32_t pct = sp > non || non == 0 ? 100 : (int32_t)(100ull * sp / non);

			if (pct > st->tvd)
				st->tvd = pct;
		}
	}
	st->p_term = '\n';
	st->p_len = st->p_lower = st->p_upper = st->p_spaces = 0;
	st->p_space = false;
}

void filter_eval_mime_body(struct filter_msg *fm, const uint8_t *p, size_t n)
{
	struct filter_eval_mime_state *st = &fm->ev_mime;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (c == '\n') {
			ev_para_end(st);
			continue;
		}
		st->body_len++;
		if (st->p_len < sizeof(st->p_head))
			st->p_head[st->p_len] = (char)c;
		if (st->p_len < UINT32_MAX)
			st->p_len++;
		if (c == ' ')
			st->p_spaces++;
		if (c == ' ' && st->p_len > 1)
			st->p_space = true;
		else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			st->p_lower++;
		else if (c >= 'A' && c <= 'Z')
			st->p_upper++;
	}
}

void filter_eval_mime_feed(struct filter_msg *fm, const uint8_t *p, size_t n)
{
	struct filter_eval_mime_state *st = &fm->ev_mime;
	size_t i = 0;

	/* the header ends at the first empty line (LF or CR LF) */
	while (st->hdr_st != 3 && i < n) {
		uint8_t c = p[i++];

		if (c == '\n')
			st->hdr_st = st->hdr_st ? 3 : 1;
		else if (c == '\r' && st->hdr_st == 1)
			st->hdr_st = 2;
		else
			st->hdr_st = 0;
		st->last_byte = c;
	}
	if (i < n) {
		const uint8_t *q = p + i, *e = p + n;

		st->body_bytes += n - i;
		/* CR LF counts as one, as in a message stored with LF */
		while ((q = memchr(q, '\n', (size_t)(e - q))) != NULL) {
			if ((q > p ? q[-1] : st->last_byte) == '\r')
				st->body_bytes--;
			q++;
		}
		st->last_byte = p[n - 1];
	}
}

/* --- ImageInfo -------------------------------------------------------------------------- */

static uint32_t ev_be32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* One decoded byte of the image (all its lengths only say how many bytes to skip). */
static void ev_img_byte(struct filter_eval_mime_state *st, uint8_t c)
{
	if (st->im_done)
		return;
	if (st->im_st == IM_JPEG_SKIP) {
		if (--st->im_skip == 0)
			st->im_st = IM_JPEG_MARK;
		return;
	}
	st->im_buf[st->im_nbuf++] = c;
	switch (st->im_st) {
	case IM_HEAD:
		if (st->l_img == 1 && st->im_nbuf == 13) {
			const uint8_t *b = st->im_buf;

			if (memcmp(b, "GIF87a", 6) == 0 || memcmp(b, "GIF89a", 6) == 0) {
				st->im_w = b[6] | (uint32_t)b[7] << 8;
				st->im_h = b[8] | (uint32_t)b[9] << 8;
			}
			st->im_done = true;
		} else if (st->l_img == 2 && st->im_nbuf == 8) {
			st->im_done = memcmp(st->im_buf, "\x89PNG\r\n\x1a\n", 8) != 0;
			st->im_st = IM_PNG_CHUNK;
			st->im_nbuf = 0;
		} else if (st->l_img == 3 && st->im_nbuf == 2) {
			st->im_done = st->im_buf[0] != 0xff || st->im_buf[1] != 0xd8;
			st->im_st = IM_JPEG_MARK;
			st->im_nbuf = 0;
		}
		break;
	case IM_PNG_CHUNK:
		/* ImageInfo reads 8 bytes at a time until IEND or a 13-byte IHDR */
		if (st->im_nbuf == 8) {
			if (memcmp(st->im_buf + 4, "IEND", 4) == 0)
				st->im_done = true;
			else if (memcmp(st->im_buf + 4, "IHDR", 4) == 0 && ev_be32(st->im_buf) == 13)
				st->im_st = IM_PNG_IHDR;
			st->im_nbuf = 0;
		}
		break;
	case IM_PNG_IHDR:
		if (st->im_nbuf == 8) {
			st->im_w = ev_be32(st->im_buf);
			st->im_h = ev_be32(st->im_buf + 4);
			st->im_done = true;
		}
		break;
	case IM_JPEG_MARK:
		if (st->im_nbuf == 4) {
			uint8_t xx = st->im_buf[0], mark = st->im_buf[1];
			uint32_t len = (uint32_t)st->im_buf[2] << 8 | st->im_buf[3];

			st->im_nbuf = 0;
			if (xx != 0xff || mark == 0xda || mark == 0xd9 || len < 2) {
				st->im_done = true;
			} else if ((mark >= 0xc0 && mark <= 0xc3) || (mark >= 0xc5 && mark <= 0xc7) ||
				   (mark >= 0xc9 && mark <= 0xcb) || (mark >= 0xcd && mark <= 0xcf)) {
				st->im_st = IM_JPEG_SOF;
			} else if (len > 2) {
				st->im_skip = len - 2;
				st->im_st = IM_JPEG_SKIP;
			}
		}
		break;
	case IM_JPEG_SOF:
		if (st->im_nbuf == 5) {
			st->im_h = (uint32_t)st->im_buf[1] << 8 | st->im_buf[2];
			st->im_w = (uint32_t)st->im_buf[3] << 8 | st->im_buf[4];
			st->im_done = true;
		}
		break;
	default:
		st->im_done = true;
		break;
	}
	if (st->im_nbuf >= sizeof(st->im_buf))
		st->im_done = true;
}

/* --- the tests ------------------------------------------------------------------------------ */

/* ImageInfo::result_check */
static bool ev_result(double min, double max, double v, bool nomaxequal)
{
	if (v < min)
		return false;
	if (max != EV_UNDEF && v > max)
		return false;
	if (nomaxequal && v == max)
		return false;
	return true;
}

static double ev_mp_ratio(const struct filter_eval_mime_state *st)
{
	if (st->multipart_alt && st->have_text_b && st->have_html_b && st->html_b > 0)
		return (double)st->text_b / (double)st->html_b;
	return 1.0;
}

static bool ev_check_for_mime(const struct filter_msg *fm, const struct filter_eval_mime_state *st,
			      int key)
{
	switch (key) {
	case EV_B64_COUNT:    return st->b64_count > 0;
	case EV_B64_TEXT:     return st->b64_text;
	case EV_HTML_COUNT:   return st->html_count > 0;
	case EV_TEXT_COUNT:   return st->text_count > 0;
	case EV_FARAWAY:      return false;   /* ok_locales all */
	case EV_MISSING_BOUNDARY:
		/* a multipart opened and never closed; SpamAssassin stops reading after 1000
		 * parts, as the MIME parser does, leaving the one it was in open */
		return (fm->anomaly_mask >> MIME_ANOM_UNTERMINATED_MULTIPART) & 1 ||
		       (fm->anomaly_mask >> MIME_ANOM_PARTS_EXCEEDED) & 1;
	case EV_MP_ALT:       return st->multipart_alt;
	case EV_MP_RATIO:     return ev_mp_ratio(st) != 0;
	case EV_QP_COUNT:     return st->qp_bytes ? st->qp_chars != 0 : st->qp_hdr_count > 0;
	case EV_QP_LONG:      return st->qp_long;
	case EV_QP_RATIO:     return st->qp_bytes && st->qp_chars != 0;
	case EV_ASCII:        return st->ascii_illegal;
	case EV_UNICODE:      return st->normal_chars && st->unicode_chars;
	case EV_ATTACH:       return st->attach > 0;
	case EV_BAD_ISO:      return st->bad_iso;
	default:              return false;
	}
}

/* The message has ended: what is still open is complete. */
static void ev_finish(struct filter_eval_mime_state *st)
{
	if (st->finished)
		return;
	st->finished = true;
	ev_leaf_finish(st);
	if (st->nalt) {
		st->nalt = 0;
		ev_alt_finish(st);
	}
	if (st->top_alt && st->kids == 2 && st->kid_sig == 3 && !st->deeper) {
		st->madiff = 0;
		st->madiff_html = st->madiff_text = 0;
	}
	if (st->p_len)
		ev_para_end(st);
	if (st->raw_nonblank) {
		st->raw_lines++;
		st->raw_nonblank = false;
	}
}

bool filter_eval_mime_test(struct filter_msg *fm, const struct filter_rule *ru)
{
	struct filter_eval_mime_state *st = &fm->ev_mime;
	double a0 = ru->eval_arg[0], a1 = ru->eval_arg[1];

	if (!st->finished)   /* how the last line ends: what the body text still holds back */
		st->p_term = fm->nl >= 2 ? '\n' : (fm->nl || fm->ws) ? ' ' : 0;
	ev_finish(st);
	if (ru->eval_tag < 0)
		return false;
	switch (ru->eval) {
	case RULES_EVAL_MIME_CHECK:
		return ev_check_for_mime(fm, st, ru->eval_tag);
	case RULES_EVAL_MIME_PARSE_FLAG:
		return ru->eval_tag == 0 ? st->epilogue : ru->eval_tag == 1 ? st->missing_headers
									    : st->missing_sep;
	case RULES_EVAL_MIME_MP_RATIO: {
		double r = ev_mp_ratio(st);

		return a1 != EV_UNDEF && r >= a0 && r < a1;
	}
	case RULES_EVAL_MIME_ASCII_ILLEGAL:
		return st->ascii_illegal;
	case RULES_EVAL_MIME_UNICODE_RATIO:
		return st->normal_chars && (double)st->unicode_chars / (double)st->normal_chars >= a0;
	case RULES_EVAL_MIME_FARAWAY:
		return false;   /* ok_locales all */
	case RULES_EVAL_MIME_UPPERCASE: {
		double pct = 0;

		if (a1 == EV_UNDEF)
			return false;
		if (!st->caps_fp && st->up_len >= 200 && st->up_upper + st->up_lower)
			pct = (double)st->up_upper / (double)(st->up_upper + st->up_lower) * 100;
		return pct > a0 && pct <= a1;
	}
	case RULES_EVAL_MIME_TVD_VERTICAL:
		/* min <= ratio < max, a max of 100 or more taken as 101 */
		return st->tvd >= a0 && st->tvd < (a1 >= 100 ? 101 : a1);
	case RULES_EVAL_MIME_MA_NON_TEXT:
		return st->ma_non_text;
	case RULES_EVAL_MIME_B64_LENGTH:
		if (a1 != EV_UNDEF && st->b64_len > a1)
			return false;
		return st->b64_len >= a0;
	case RULES_EVAL_MIME_QP_RATIO: {
		double r = st->qp_bytes ? (double)st->qp_chars / (double)st->qp_bytes : 0;

		return r >= a0;
	}
	case RULES_EVAL_MIME_ALT_DIFF:
		return (a0 == 0 || st->madiff > a0) && (a1 == EV_UNDEF || st->madiff <= a1);
	case RULES_EVAL_MIME_ALT_DIFF_COUNT:
		if (a1 == EV_UNDEF || !(st->madiff_html > a1))
			return false;
		return (double)st->madiff_text / st->madiff_html > a0;
	case RULES_EVAL_MIME_BLANK_RATIO: {
		double r = st->raw_lines < (uint64_t)ru->eval_tag ? -1 :
			   100.0 * (double)st->raw_blank / (double)st->raw_lines;

		return (a0 == 0 && r <= a1) || (r > a0 && r <= a1);
	}
	case RULES_EVAL_MIME_BODY_LENGTH:
		return st->hdr_st == 3 ? (double)st->body_bytes <= a0 : 0 <= a0;
	case RULES_EVAL_MIME_IMAGE_COUNT:
		return ev_result(a0, a1, st->img_count[ru->eval_tag], false);
	case RULES_EVAL_MIME_PIXELS:
		return ev_result(a0, a1, st->img_area[ru->eval_tag], false);
	case RULES_EVAL_MIME_IMAGE_RATIO: {
		double len = ru->cls == RULES_CLASS_RAWBODY ? (double)st->raw_len : (double)st->body_len;
		double pc = st->img_area[ru->eval_tag];

		if (!(len > 0) || !(pc > 0))
			return false;
		return ev_result(a0, a1, len / pc, true);
	}
	default:
		return false;
	}
}
