/*
 * filter_eval.c - the eval: tests Sluice implements natively (enum rules_eval), ported from
 * SpamAssassin 4.0's Plugin::HeaderEval, MIMEEval and HTMLEval, so that SpamAssassin's rule
 * sets keep the tests (and the metas built on them) that score most.
 *
 * Shard thread, at the end of a message, before the metas; reads the message's header fields
 * (struct filter_msg) and the part counts the MIME sink kept. Also counts, while the message
 * streams in, the tags, comments and lengths of its text/html parts from their raw HTML
 * (filter_eval_html_feed: bounded state, linear), for HTMLEval's tag, length and text tests.
 * No allocation.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "filter_types.h"

#define FILTER_EVAL_UNDEF 1e300
#define FILTER_EVAL_TOK   128

/* html_tag_balance's comparisons */
enum filter_eval_cmp { FILTER_CMP_EQ = 1, FILTER_CMP_NE, FILTER_CMP_LT, FILTER_CMP_LE, FILTER_CMP_GT,
		       FILTER_CMP_GE };

char *filter_eval_quoted(char **p)
{
	char q, *e, *a;

	while (**p == ' ' || **p == ',' || **p == '\t')
		(*p)++;
	if (**p != '\'' && **p != '"')
		return NULL;
	q = *(*p)++;
	e = strchr(*p, q);
	if (!e)
		return NULL;
	*e = '\0';
	a = *p;
	*p = e + 1;
	return a;
}

/* html_tag_exists('tag') and html_tag_balance('tag', 'op n'): the tag gets a slot of the db's
 * table (HTMLEval takes [a-zA-Z0-9]+ for balance; HTML::Parser reports names in lower case). A
 * tag or expression HTMLEval would refuse, or a full table, leaves the rule never hitting. */
/* Registers tag (lower case, shorter than FILTER_HTML_TAG_LEN) in the db's table: its slot or
 * -1 when the table is full. */
static int filter_eval_tag_slot(struct filter_db *db, const char *tag)
{
	size_t tl = strlen(tag);
	uint32_t k;

	for (k = 0; k < db->nhtml_tags; k++)
		if (strcmp(db->html_tags[k], tag) == 0)
			return (int)k;
	if (k == FILTER_HTML_TAGS)
		return -1;
	memcpy(db->html_tags[k], tag, tl + 1);
	db->nhtml_tags++;
	return (int)k;
}

/* html_range('length', 'min', 'max') and html_image_only('min', 'max'): numbers, max may be
 * 'inf' (kept as FILTER_EVAL_UNDEF). */
static void filter_eval_prepare_range(struct filter_db *db, struct filter_rule *ru, char *p)
{
	char *a[2], *e;

	if (ru->eval == RULES_EVAL_HTML_LENGTH && !filter_eval_quoted(&p))
		return;
	a[0] = filter_eval_quoted(&p);
	a[1] = filter_eval_quoted(&p);
	if (!a[0])
		return;
	ru->eval_arg[0] = strtod(a[0], &e);
	if (e == a[0] || *e) {
		ru->eval_arg[0] = FILTER_EVAL_UNDEF;
		return;
	}
	if (a[1] && strcmp(a[1], "inf") != 0) {
		ru->eval_arg[1] = strtod(a[1], &e);
		if (e == a[1] || *e) {
			ru->eval_arg[0] = FILTER_EVAL_UNDEF;
			return;
		}
	}
	if (ru->eval == RULES_EVAL_HTML_IMAGE_ONLY)
		ru->eval_tag = filter_eval_tag_slot(db, "img");
	else
		ru->eval_tag = 0;
}

static void filter_eval_prepare_tag(struct filter_db *db, struct filter_rule *ru, char *p)
{
	static const struct { const char *op; uint8_t cmp; } ops[] = {
		{ "==", FILTER_CMP_EQ }, { "!=", FILTER_CMP_NE }, { "<=", FILTER_CMP_LE },
		{ ">=", FILTER_CMP_GE }, { "<", FILTER_CMP_LT }, { ">", FILTER_CMP_GT },
	};
	char *tag = filter_eval_quoted(&p), *expr = NULL;
	size_t tl = tag ? strlen(tag) : 0;

	if (!tl || tl >= FILTER_HTML_TAG_LEN)
		return;
	for (size_t i = 0; i < tl; i++)
		tag[i] = (char)tolower((unsigned char)tag[i]);
	if (ru->eval == RULES_EVAL_HTML_TAG_BALANCE) {
		char *e;

		expr = filter_eval_quoted(&p);
		if (!expr)
			return;
		while (*expr == ' ')
			expr++;
		for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]) && ru->eval_arg[0] == FILTER_EVAL_UNDEF; i++)
			if (strncmp(expr, ops[i].op, strlen(ops[i].op)) == 0) {
				ru->eval_arg[0] = ops[i].cmp;
				expr += strlen(ops[i].op);
			}
		if (ru->eval_arg[0] == FILTER_EVAL_UNDEF)
			return;
		ru->eval_arg[1] = (double)strtol(expr, &e, 10);
		if (e == expr)
			return;
		while (*e == ' ')
			e++;
		if (*e)
			return;
	}
	ru->eval_tag = filter_eval_tag_slot(db, tag);
}

int filter_eval_prepare(struct filter_db *db, struct filter_rule *ru, const char *args, size_t len)
{
	char buf[128];
	char *p = buf;

	ru->eval_arg[0] = ru->eval_arg[1] = FILTER_EVAL_UNDEF;
	ru->eval_tag = -1;
	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, args, len);
	buf[len] = '\0';
	if (ru->eval >= RULES_EVAL_HDR_FIRST)
		return filter_eval_header_prepare(db, ru, args, len);
	if (ru->eval >= RULES_EVAL_HTML_FIRST)
		return filter_eval_htmlx_prepare(db, ru, args, len);
	if (ru->eval >= RULES_EVAL_MIME_FIRST)
		return filter_eval_mime_prepare(db, ru, args, len);
	if (ru->eval == RULES_EVAL_HTML_TAG_EXISTS || ru->eval == RULES_EVAL_HTML_TAG_BALANCE) {
		filter_eval_prepare_tag(db, ru, p);
		return 0;
	}
	if (ru->eval == RULES_EVAL_HTML_LINK_IMAGE) {
		db->html_a = filter_eval_tag_slot(db, "a");
		db->html_img = filter_eval_tag_slot(db, "img");
		ru->eval_tag = db->html_a >= 0 && db->html_img >= 0 ? 0 : -1;
		return 0;
	}
	if (ru->eval == RULES_EVAL_HTML_COMMENT || ru->eval == RULES_EVAL_HTML_COMMENT_SAVED) {
		db->html_comments = true;
		return 0;
	}
	if (ru->eval == RULES_EVAL_FORGED_YAHOO) {
		/* HeaderEval's Received forms that Yahoo's own servers write ($IP_ADDRESS loosely) */
		static const char yahoo[] =
			"by web\\S+\\.mail\\S*\\.yahoo\\.com via HTTP"
			"|by sonic\\S+\\.consmr\\.mail\\S*\\.yahoo\\.com with HTTP"
			"|by smtp\\S+\\.yahoo\\.com with SMTP"
			"|from \\[(?:\\d{1,3}(?:\\.\\d{1,3}){3}|[0-9a-fA-F]*:[0-9a-fA-F:.]+)\\] by "
			"\\S+\\.(?:groups|scd|dcn)\\.yahoo\\.com with NNFMP"
			"|by \\w+\\.\\w+\\.yahoo\\.com \\(\\d+\\.\\d+\\.\\d+\\/\\d+\\.\\d+\\.\\d+\\)(?: with ESMTP)? id \\w+";
		static const char bulk[] = "\\bmailer\\d+\\.bulk\\.scd\\.yahoo\\.com\\b";
		int ec;
		PCRE2_SIZE eo;

		ru->eval_re = pcre2_compile((PCRE2_SPTR)yahoo, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
		ru->eval_re2 = pcre2_compile((PCRE2_SPTR)bulk, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
		return ru->eval_re && ru->eval_re2 ? 0 : -ENOMEM;
	}
	if (ru->eval == RULES_EVAL_HTML_LENGTH || ru->eval == RULES_EVAL_HTML_IMAGE_ONLY) {
		filter_eval_prepare_range(db, ru, p);
		return 0;
	}
	if (ru->eval == RULES_EVAL_FREEMAIL_FROM || ru->eval == RULES_EVAL_FREEMAIL_HEADER) {
		/* ('Header', 'regex') or ('regex') or (): quoted, comma-separated */
		char *a[2] = { NULL, NULL };
		int na = 0, ec;
		PCRE2_SIZE eo;
		const char *re;

		while (*p && na < 2) {
			char q, *e;

			while (*p == ' ' || *p == ',')
				p++;
			if (*p != '\'' && *p != '"')
				break;
			q = *p++;
			e = strchr(p, q);
			if (!e)
				return -EINVAL;
			*e = '\0';
			a[na++] = p;
			p = e + 1;
		}
		if (ru->eval == RULES_EVAL_FREEMAIL_HEADER) {
			if (!a[0])
				return -EINVAL;
			ru->eval_hdr = strdup(a[0]);
			if (!ru->eval_hdr)
				return -ENOMEM;
			re = a[1];
		} else {
			re = a[0];
		}
		if (re && *re) {
			ru->eval_re = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, 0, &ec, &eo, NULL);
			if (!ru->eval_re)
				return -EINVAL;
		}
		return 0;
	}
	if (ru->eval != RULES_EVAL_SHIFTED_DATE)
		return 0;
	if (filter_eval_header_init(db) < 0)   /* its date parser */
		return -ENOMEM;
	/* '-6', '-3' or 'undef' */
	for (int k = 0; k < 2; k++) {
		char *e;

		while (*p == ' ' || *p == '\'' || *p == '"' || *p == ',')
			p++;
		if (strncmp(p, "undef", 5) == 0) {
			p += 5;
			continue;
		}
		ru->eval_arg[k] = strtod(p, &e);
		if (e == p)
			return -EINVAL;
		p = e;
	}
	return 0;
}

/* --- header access ---------------------------------------------------------------------- */

static bool filter_eval_is(const struct filter_msg *fm, const struct filter_hdr *h, const char *name)
{
	return strlen(name) == h->name_len && strncasecmp(fm->arena + h->name_off, name, h->name_len) == 0;
}

/* The idx-th field named name (decoded or raw) among the message's fields, or NULL. */
static const char *filter_eval_hdr(const struct filter_msg *fm, const char *name, unsigned idx,
				   bool raw, size_t *len_r)
{
	for (uint32_t i = 0; i < fm->ntop; i++) {
		const struct filter_hdr *h = &fm->hdrs[i];

		if (!filter_eval_is(fm, h, name) || idx--)
			continue;
		*len_r = raw ? h->raw_len : h->dec_len;
		return fm->arena + (raw ? h->raw_off : h->dec_off);
	}
	return NULL;
}

static unsigned filter_eval_count(const struct filter_msg *fm, const char *name)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < fm->ntop; i++)
		n += filter_eval_is(fm, &fm->hdrs[i], name);
	return n;
}

/* --- dates (Mail::SpamAssassin::Util::parse_rfc822_date, the common forms) ----------------- */

static int filter_eval_month(const char *t)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";

	for (int m = 0; m < 12; m++)
		if (strncasecmp(t, months + 3 * m, 3) == 0)
			return m;
	return -1;
}

static int filter_eval_zone(const char *t, size_t n, long *off_r)
{
	static const struct { const char *z; int h; } zones[] = {
		{ "GMT", 0 }, { "UT", 0 }, { "UTC", 0 }, { "Z", 0 }, { "EST", -5 }, { "EDT", -4 },
		{ "CST", -6 }, { "CDT", -5 }, { "MST", -7 }, { "MDT", -6 }, { "PST", -8 }, { "PDT", -7 },
	};

	if ((t[0] == '+' || t[0] == '-') && n >= 5 && isdigit((unsigned char)t[1]) &&
	    isdigit((unsigned char)t[2]) && isdigit((unsigned char)t[3]) && isdigit((unsigned char)t[4])) {
		long v = ((t[1] - '0') * 10 + (t[2] - '0')) * 3600 + ((t[3] - '0') * 10 + (t[4] - '0')) * 60;

		*off_r = t[0] == '-' ? -v : v;
		return 1;
	}
	for (size_t i = 0; i < sizeof(zones) / sizeof(zones[0]); i++)
		if (strlen(zones[i].z) == n && strncasecmp(t, zones[i].z, n) == 0) {
			*off_r = zones[i].h * 3600L;
			return 1;
		}
	return 0;
}

/* Seconds since the epoch, or false when the text is not a date. */
static bool filter_eval_date(const char *s, size_t n, int64_t *t_r)
{
	char buf[256];
	int day = -1, mon = -1, year = -1, hh = -1, mm = -1, ss = 0, depth = 0;
	long off = 0;
	size_t bn = 0;
	char *p, *save = NULL;
	struct tm tm;

	for (size_t i = 0; i < n && bn < sizeof(buf) - 1; i++) {   /* drop (comments) */
		if (s[i] == '(')
			depth++;
		else if (s[i] == ')' && depth)
			depth--;
		else if (!depth)
			buf[bn++] = s[i] == ',' ? ' ' : s[i];
	}
	buf[bn] = '\0';
	for (p = strtok_r(buf, " \t\r\n", &save); p; p = strtok_r(NULL, " \t\r\n", &save)) {
		size_t l = strlen(p);

		if (strchr(p, ':') && hh < 0) {
			if (sscanf(p, "%d:%d:%d", &hh, &mm, &ss) < 2)
				return false;
		} else if (isalpha((unsigned char)p[0]) && l >= 3 && mon < 0 && filter_eval_month(p) >= 0 &&
			   (l == 3 || isalpha((unsigned char)p[3]))) {
			mon = filter_eval_month(p);
		} else if (isdigit((unsigned char)p[0]) && l <= 2 && day < 0 && mon < 0) {
			day = atoi(p);
		} else if (isdigit((unsigned char)p[0]) && l <= 2 && day < 0) {
			day = atoi(p);                        /* "Jul 1 ..." */
		} else if (isdigit((unsigned char)p[0]) && (l == 4 || l == 2) && year < 0 && mon >= 0) {
			year = atoi(p);
			if (l == 2)
				year += year < 50 ? 2000 : 1900;
		} else if (hh >= 0) {
			filter_eval_zone(p, l, &off);
		}
	}
	if (day < 1 || day > 31 || mon < 0 || year < 1970 || year > 2200 || hh < 0 || hh > 23 ||
	    mm < 0 || mm > 59 || ss < 0 || ss > 60)
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = year - 1900;
	tm.tm_mon = mon;
	tm.tm_mday = day;
	tm.tm_hour = hh;
	tm.tm_min = mm;
	tm.tm_sec = ss;
	*t_r = (int64_t)timegm(&tm) - off;
	return true;
}

/* The date of a Received field: what follows its last ';'. */
static bool filter_eval_rcvd_date(const char *v, size_t n, int64_t *t_r)
{
	const char *semi = NULL;

	for (size_t i = n; i > 0; i--)
		if (v[i - 1] == ';') {
			semi = v + i;
			break;
		}
	if (semi)
		return filter_eval_date(semi, n - (size_t)(semi - v), t_r);
	return filter_eval_date(v, n, t_r);
}

static bool filter_eval_has(const char *v, size_t n, const char *lit)
{
	return memmem(v, n, lit, strlen(lit)) != NULL;
}

/* HeaderEval::check_outlook_message_id: Outlook's Message-Id carries a timestamp that must
 * agree with Date or the last Received within a small fudge. */
static bool filter_eval_outlook_msgid(const struct filter_msg *fm)
{
	const double x = 0.0023283064365387, y = 27111902.8329849;
	const char *v = filter_eval_hdr(fm, "message-id", 0, false, &(size_t){ 0 });
	size_t n = 0;
	int64_t t = 0;
	long long token, expected;
	char hex[9];
	unsigned nr;

	if (!v)
		return false;
	v = filter_eval_hdr(fm, "message-id", 0, false, &n);
	/* <XXXX XXXXXXXX $XXXXXXXX$XXXXXXXX@ */
	if (n < 33 || v[0] != '<' || v[13] != '$' || v[22] != '$' || v[31] != '@')
		return false;
	for (size_t i = 1; i < 31; i++)
		if (i != 13 && i != 22 && !(isdigit((unsigned char)v[i]) || (v[i] >= 'a' && v[i] <= 'f')))
			return false;
	memcpy(hex, v + 5, 8);
	hex[8] = '\0';
	token = strtoll(hex, NULL, 16);
	v = filter_eval_hdr(fm, "date", 0, false, &n);
	if (!v || !filter_eval_date(v, n, &t))
		t = 0;
	expected = (long long)((double)t * x + y);
	if (llabs(token - expected) < 250)
		return false;
	nr = filter_eval_count(fm, "received");
	t = 0;
	if (nr) {
		v = filter_eval_hdr(fm, "received", nr - 1, false, &n);
		if (!v || !filter_eval_rcvd_date(v, n, &t))
			t = 0;
	}
	expected = (long long)((double)t * x + y);
	return llabs(token - expected) >= 250;
}

/* HeaderEval::subject_is_all_caps */
static bool filter_eval_subj_caps(const struct filter_msg *fm)
{
	static const char *const prefixes[] = { "re:", "fwd:", "fw:", "aw:", "antwort:", "wg:", "sv:",
						"vb:", "vs:", "vl:" };
	size_t n = 0, rn = 0, letters = 0;
	const char *v = filter_eval_hdr(fm, "subject", 0, false, &n), *e, *raw;
	bool again = true, space = false;

	if (!v)
		return false;
	e = v + n;
	while (v < e && isspace((unsigned char)*v))
		v++;
	while (e > v && isspace((unsigned char)e[-1]))
		e--;
	while (again) {
		again = false;
		for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
			size_t l = strlen(prefixes[i]);

			if ((size_t)(e - v) >= l && strncasecmp(v, prefixes[i], l) == 0) {
				v += l;
				while (v < e && isspace((unsigned char)*v))
					v++;
				again = true;
			}
		}
	}
	for (const char *p = v; p < e; p++)
		space |= isspace((unsigned char)*p) != 0;
	if (!space || e - v < 10)
		return false;
	raw = filter_eval_hdr(fm, "subject", 0, true, &rn);
	if (raw) {
		static const char *const fp[] = { "koi", "jp", "jis", "euc", "gb", "big5", "isoir",
						  "cp1251", "windows-1251", "georgianps", "pt154", "tis" };

		for (size_t i = 0; i + 2 < rn; i++)
			if (raw[i] == '=' && raw[i + 1] == '?')
				for (size_t k = 0; k < sizeof(fp) / sizeof(fp[0]); k++)
					if (memmem(raw + i, rn - i < 40 ? rn - i : 40, fp[k], strlen(fp[k])))
						return false;
	}
	for (const char *p = v; p < e; p++) {
		if (*p >= 'a' && *p <= 'z')
			return false;
		letters += *p >= 'A' && *p <= 'Z';
	}
	return letters > 0;
}

static bool filter_eval_blank(const char *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++)
		if (!isspace((unsigned char)v[i]))
			return false;
	return true;
}

/* --- FreeMail (Mail::SpamAssassin::Plugin::FreeMail) ------------------------------------ */

static int filter_eval_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool filter_eval_is_freemail(const struct filter_db *db, const char *addr)
{
	const char *at = strrchr(addr, '@'), *dom;

	if (!at || !at[1] || filter_eval_header_fm_welcome(addr))
		return false;
	dom = at + 1;
	if (bsearch(&dom, db->fm_exact, db->nfm_exact, sizeof(char *), filter_eval_strcmp))
		return true;
	for (uint32_t i = 0; i < db->nfm_wild; i++)
		if (filter_eval_header_glob(db->fm_wild[i], dom))
			return true;
	return false;
}

/* The first address of a field value (":addr"), lower-cased, into out. */
static bool filter_eval_addr(const char *v, size_t n, char *out, size_t outlen)
{
	const char *end = v + n;

	/* a list: the first element that holds an address ("a@b, "Name" <c@d>" is a@b; an
	 * empty "<>" or a bare comma is skipped, as SpamAssassin's parser skips what is no
	 * address) */
	while (v < end) {
		const char *e = end, *lt, *a, *ae;
		size_t k = 0;
		bool q = false;

		for (const char *p = v; p < end; p++) {
			if (*p == '"')
				q = !q;
			else if (!q && *p == ',') {
				lt = memchr(v, '<', (size_t)(p - v));
				/* a comma inside <...> belongs to it */
				if (lt && !memchr(lt, '>', (size_t)(p - lt)))
					continue;
				e = p;
				break;
			}
		}
		if (e <= v) {   /* an empty element */
			v = e + 1;
			continue;
		}
		lt = memchr(v, '<', (size_t)(e - v));
		if (lt) {
			a = lt + 1;
			ae = memchr(a, '>', (size_t)(e - a));
			if (!ae)
				ae = e;
		} else {
			a = v;
			while (a < e && isspace((unsigned char)*a))
				a++;
			ae = a;
			while (ae < e && !isspace((unsigned char)*ae) && *ae != ',' && *ae != '(')
				ae++;
		}
		while (a < ae && isspace((unsigned char)*a))
			a++;
		while (ae > a && isspace((unsigned char)ae[-1]))
			ae--;
		if (ae > a && memchr(a, '@', (size_t)(ae - a))) {
			for (; a < ae && k + 1 < outlen; a++)
				out[k++] = (char)tolower((unsigned char)*a);
			out[k] = '\0';
			return true;
		}
		v = e + 1;
	}
	return false;
}

/* Index of the first field named name among the message's, or UINT32_MAX. */
static uint32_t filter_eval_index(const struct filter_msg *fm, const char *name)
{
	for (uint32_t i = 0; i < fm->ntop; i++)
		if (filter_eval_is(fm, &fm->hdrs[i], name))
			return i;
	return UINT32_MAX;
}

bool filter_eval_envfrom(const struct filter_msg *fm, char *out, size_t outlen)
{
	static const char *const hdrs[] = { "x-envelope-from", "envelope-sender", "return-path" };
	uint32_t first_rcvd = filter_eval_index(fm, "received");
	size_t n;
	const char *v;

	if (fm->has_env) {
		if (fm->env_from_len >= outlen || !fm->env_from_len)
			return false;
		for (size_t i = 0; i < fm->env_from_len; i++)
			out[i] = (char)tolower((unsigned char)fm->env_from[i]);
		out[fm->env_from_len] = '\0';
		return true;
	}
	/* SpamAssassin's first source: the envelope-from the last untrusted relay recorded */
	if (filter_eval_header_relay_envfrom(fm, out, outlen))
		return true;
	v = filter_eval_hdr(fm, "x-sender", 0, false, &n);
	if (v && filter_eval_addr(v, n, out, outlen) && out[0] != '@' && strchr(out, '@')[1])
		for (unsigned i = 0; (v = filter_eval_hdr(fm, "received", i, false, &n)) != NULL; i++)
			if (filter_eval_has(v, n, "(fetchmail"))
				return false;
	for (size_t k = 0; k < sizeof(hdrs) / sizeof(hdrs[0]); k++) {
		bool below = false;

		v = filter_eval_hdr(fm, hdrs[k], 0, false, &n);
		if (!v || !filter_eval_addr(v, n, out, outlen))
			continue;
		/* any such field below a Received (/^Received:.*?^Name:/sm over ALL) */
		for (uint32_t i = first_rcvd; first_rcvd != UINT32_MAX && i < fm->ntop; i++)
			below |= filter_eval_is(fm, &fm->hdrs[i], hdrs[k]);
		if (!below)
			return true;
		if (k == 0)
			return false;   /* X-Envelope-From below a Received: not ours to trust */
	}
	out[0] = '\0';
	return false;
}

/* The registrable-ish domain SpamAssassin compares: the last two labels. */
static const char *filter_eval_last2(const char *addr)
{
	const char *at = strrchr(addr, '@'), *d, *p, *dot1 = NULL, *dot2 = NULL;

	if (!at)
		return "";
	d = at + 1;
	for (p = d; *p; p++)
		if (*p == '.') {
			dot2 = dot1;
			dot1 = p;
		}
	return dot2 ? dot2 + 1 : d;
}

static bool filter_eval_from_domains_differ(const struct filter_msg *fm)
{
	char from[256], env[256];
	size_t n;
	const char *v = filter_eval_hdr(fm, "from", 0, false, &n), *a, *b;

	if (!v || !filter_eval_addr(v, n, from, sizeof(from)) || !filter_eval_envfrom(fm, env, sizeof(env)))
		return false;
	a = filter_eval_last2(from);
	b = filter_eval_last2(env);
	if (!*a || !*b)
		return false;
	return strcasecmp(a, b) != 0;
}

static bool filter_eval_freemail_in(struct filter_msg *fm, const struct filter_rule *ru,
				    const char *hdr)
{
	char addr[256];
	size_t n;
	const char *v;

	if (strcasecmp(hdr, "EnvelopeFrom") == 0)
		return filter_eval_envfrom(fm, addr, sizeof(addr)) && filter_eval_is_freemail(fm->db, addr) &&
		       (!ru->eval_re || filter_shard_match(fm, (uint32_t)(ru - fm->db->rules), ru->eval_re,
							   (PCRE2_SPTR)addr, strlen(addr), 0) >= 0);
	for (unsigned i = 0; (v = filter_eval_hdr(fm, hdr, i, false, &n)) != NULL; i++) {
		if (!filter_eval_addr(v, n, addr, sizeof(addr)) || !filter_eval_is_freemail(fm->db, addr))
			continue;
		if (ru->eval_re && filter_shard_match(fm, (uint32_t)(ru - fm->db->rules), ru->eval_re,
						      (PCRE2_SPTR)addr, strlen(addr), 0) < 0)
			continue;
		return true;
	}
	return false;
}

/* all_from_addrs: Resent-From if any, else From and the envelope-sender headers. */
static bool filter_eval_freemail_from(struct filter_msg *fm, const struct filter_rule *ru)
{
	static const char *const hdrs[] = { "from", "envelope-sender", "resent-sender",
					    "x-envelope-from", "EnvelopeFrom" };

	if (filter_eval_count(fm, "resent-from"))
		return filter_eval_freemail_in(fm, ru, "resent-from");
	for (size_t i = 0; i < sizeof(hdrs) / sizeof(hdrs[0]); i++)
		if (filter_eval_freemail_in(fm, ru, hdrs[i]))
			return true;
	return false;
}

/* --- relays (Plugin::RelayEval), read back from the X-Spam-Relays-Untrusted text ---------- */

struct filter_eval_relay {
	char ip[48], rdns[FILTER_EVAL_TOK], helo[FILTER_EVAL_TOK];
	bool no_rdns;     /* Received.pm's no_reverse_dns: the MTA looked and found no name */
};

static void filter_eval_field(const char *s, const char *e, const char *key, char *out, size_t outlen)
{
	const char *p = filter_eval_has(s, (size_t)(e - s), key) ? memmem(s, (size_t)(e - s), key, strlen(key)) : NULL;
	size_t n = 0;

	if (p)
		for (p += strlen(key); p < e && *p != ' ' && n + 1 < outlen; p++)
			out[n++] = *p;
	out[n] = '\0';
}

/* Calls fn for each untrusted relay, newest first, until it returns true. */
static bool filter_eval_relays(const struct filter_msg *fm, bool (*fn)(const struct filter_eval_relay *, void *),
			       void *arg)
{
	const char *p = fm->relays_u, *e = fm->relays_u + fm->relays_u_len;
	unsigned idx = 0;

	while (p < e) {
		const char *open = memchr(p, '[', (size_t)(e - p)), *close;
		struct filter_eval_relay r;

		if (!open)
			break;
		close = memchr(open, ']', (size_t)(e - open));
		if (!close)
			break;
		filter_eval_field(open, close, " ip=", r.ip, sizeof(r.ip));
		filter_eval_field(open, close, " rdns=", r.rdns, sizeof(r.rdns));
		filter_eval_field(open, close, " helo=", r.helo, sizeof(r.helo));
		r.no_rdns = idx < 32 && (fm->relays_u_nordns & (1u << idx));
		idx++;
		if (fn(&r, arg))
			return true;
		p = close + 1;
	}
	return false;
}

static bool filter_eval_is_ipv4(const char *s, unsigned char ip[4])
{
	unsigned a, b, c, d;
	char tail;

	if (sscanf(s, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) != 4 || a > 255 || b > 255 || c > 255 || d > 255)
		return false;
	ip[0] = (unsigned char)a, ip[1] = (unsigned char)b, ip[2] = (unsigned char)c, ip[3] = (unsigned char)d;
	return true;
}

static bool filter_eval_ip_private(const unsigned char ip[4])
{
	return ip[0] == 127 || ip[0] == 10 || (ip[0] == 172 && (ip[1] & 0xf0) == 16) ||
	       (ip[0] == 192 && ip[1] == 168) || (ip[0] == 169 && ip[1] == 254) || ip[0] == 0;
}

static bool filter_eval_helo_mismatch_one(const struct filter_eval_relay *r, void *arg)
{
	unsigned char h[4], i[4];

	if (!filter_eval_is_ipv4(r->helo, h) || filter_eval_ip_private(h))
		return false;
	if (!filter_eval_is_ipv4(r->ip, i) || filter_eval_ip_private(i) || strcmp(r->helo, r->ip) == 0)
		return false;
	return memcmp(h, i, 3) != 0;   /* the first three octets differ */
}

static bool filter_eval_dotcom_one(const struct filter_eval_relay *r, void *arg)
{
	static const char *const doms[] = { "lycos.com", "lycos.co.uk", "hotmail.com", "localhost.com",
					    "excite.com", "caramail.com", "cs.com", "aol.com", "msn.com",
					    "yahoo.com", "drizzle.com" };
	int *last = arg;
	unsigned char ip[4];
	size_t hl = strlen(r->helo);

	if (filter_eval_is_ipv4(r->ip, ip) && filter_eval_ip_private(ip))
		return false;
	*last = 0;
	for (size_t k = 0; k < sizeof(doms) / sizeof(doms[0]); k++) {
		size_t dl = strlen(doms[k]);

		if (hl >= dl && strcasecmp(r->helo + hl - dl, doms[k]) == 0 &&
		    (hl == dl || r->helo[hl - dl - 1] == '.') && r->no_rdns)
			*last = 1;
	}
	return false;   /* every relay: the last one decides, as in RelayEval */
}

/* --- HTML tags (HTMLEval's html_tag_exists, html_tag_balance) ---------------------------- */

enum filter_eval_hst {
	FILTER_HST_TEXT = 0,
	FILTER_HST_LT,        /* "<" */
	FILTER_HST_LT_SLASH,  /* "</" */
	FILTER_HST_BANG,      /* "<!" */
	FILTER_HST_BANG_DASH, /* "<!-" */
	FILTER_HST_COMMENT,   /* "<!--" up to "-->" */
	FILTER_HST_DECL,      /* "<!x", "<?" up to ">" */
	FILTER_HST_NAME,      /* the tag's name */
	FILTER_HST_ATTR,      /* after the name, up to ">" */
	FILTER_HST_ATTR_EQ,   /* "=": a quoted value may follow */
	FILTER_HST_QUOTED,    /* inside a quoted attribute value */
	FILTER_HST_RAW,       /* the content of script or style, up to their end tag */
};

static const char *const filter_eval_rawtags[] = { "script", "style" };

/* The 22 bytes after "<!--" are " saved from url=(dddd)" (Internet Explorer's mark of a page
 * saved from the web). */
static bool filter_eval_saved_url(const char *c)
{
	return memcmp(c, " saved from url=(", 17) == 0 && isdigit((unsigned char)c[17]) &&
	       isdigit((unsigned char)c[18]) && isdigit((unsigned char)c[19]) &&
	       isdigit((unsigned char)c[20]) && c[21] == ')';
}

/* A tag ended ('>'): count it if an eval asks about it; script and style switch to raw text. */
static void filter_eval_html_tag(struct filter_msg *fm)
{
	struct filter_html_tags *h = &fm->html;
	const struct filter_db *db = fm->db;

	h->st = FILTER_HST_TEXT;
	filter_eval_htmlx_tag(fm, h->name, h->nlen, h->closing);
	if (h->nlen >= FILTER_HTML_TAG_LEN)
		return;
	h->name[h->nlen] = '\0';
	for (uint32_t k = 0; k < db->nhtml_tags; k++) {
		if (strcmp(db->html_tags[k], h->name) != 0)
			continue;
		h->seen_part |= 1u << k;
		h->inside[k] += h->closing ? -1 : 1;
		if (h->inside[k] < 0)
			h->inside[k] = 0;   /* HTML.pm: an extra close does not go below 0 */
		/* HTML.pm adds "<img>" to the anchor text of an img inside an a */
		if ((int)k == db->html_img && !h->closing && db->html_a >= 0 && h->inside[db->html_a] > 0)
			h->link_img = true;
		break;
	}
	if (!h->closing)
		for (unsigned r = 0; r < 2; r++)
			if (strcmp(h->name, filter_eval_rawtags[r]) == 0) {
				h->st = FILTER_HST_RAW;
				h->raw = (uint8_t)(r + 1);
				h->rawmatch = 0;
			}
}

void filter_eval_html_feed(struct filter_msg *fm, const uint8_t *p, size_t n)
{
	struct filter_html_tags *h = &fm->html;

	if (!h->in_part)
		return;
	h->len += (uint32_t)(n < UINT32_MAX - h->len ? n : UINT32_MAX - h->len);
	if (!fm->db->nhtml_tags && !fm->db->html_comments && !fm->db->htmlx)
		return;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		bool space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
		bool alpha = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';

		if (h->st >= FILTER_HST_ATTR && h->st <= FILTER_HST_QUOTED)
			filter_eval_htmlx_attr(fm, c);
		switch (h->st) {
		case FILTER_HST_TEXT:
			if (c == '<')
				h->st = FILTER_HST_LT;
			else
				filter_eval_htmlx_text(fm, c);
			break;
		case FILTER_HST_LT:
		case FILTER_HST_LT_SLASH:
			if (alpha) {
				h->closing = h->st == FILTER_HST_LT_SLASH;
				h->name[0] = (char)(c | 0x20);
				h->nlen = 1;
				h->st = FILTER_HST_NAME;
			} else if (h->st == FILTER_HST_LT && c == '/') {
				h->st = FILTER_HST_LT_SLASH;
			} else if (h->st == FILTER_HST_LT && c == '!') {
				filter_eval_htmlx_markup(fm);
				h->st = FILTER_HST_BANG;
			} else if (h->st == FILTER_HST_LT && c == '?') {
				filter_eval_htmlx_markup(fm);
				h->st = FILTER_HST_DECL;
			} else {
				filter_eval_htmlx_text_lt(fm, h->st == FILTER_HST_LT_SLASH, c);
				h->st = c == '<' ? FILTER_HST_LT : FILTER_HST_TEXT;
			}
			break;
		case FILTER_HST_BANG:
			h->st = c == '-' ? FILTER_HST_BANG_DASH : c == '>' ? FILTER_HST_TEXT : FILTER_HST_DECL;
			filter_eval_htmlx_decl(fm, c, true);
			break;
		case FILTER_HST_BANG_DASH:
			h->dashes = 0;
			h->clen = 0;
			h->cfirst = true;
			h->st = c == '-' ? FILTER_HST_COMMENT : c == '>' ? FILTER_HST_TEXT : FILTER_HST_DECL;
			break;
		case FILTER_HST_COMMENT:
			if (c == '\n')
				h->cfirst = false;
			else if (c == '>' && h->cfirst)
				h->comment = true;
			if (h->clen < sizeof(h->cbuf)) {
				h->cbuf[h->clen++] = (char)c;
				if (h->clen == 22)
					h->comment_saved |= filter_eval_saved_url(h->cbuf);
			}
			if (c == '>' && h->dashes >= 2)
				h->st = FILTER_HST_TEXT;
			h->dashes = c == '-' ? (uint8_t)(h->dashes < 2 ? h->dashes + 1 : 2) : 0;
			break;
		case FILTER_HST_DECL:
			filter_eval_htmlx_decl(fm, c, false);
			if (c == '>')
				h->st = FILTER_HST_TEXT;
			break;
		case FILTER_HST_NAME:
			if (c == '>') {
				filter_eval_html_tag(fm);
			} else if (space || c == '/') {
				h->st = FILTER_HST_ATTR;
			} else if (h->nlen < FILTER_HTML_TAG_LEN) {
				h->name[h->nlen++] = (char)(c >= 'A' && c <= 'Z' ? c | 0x20 : c);
			}
			break;
		case FILTER_HST_ATTR:
			if (c == '>')
				filter_eval_html_tag(fm);
			else if (c == '=')
				h->st = FILTER_HST_ATTR_EQ;
			break;
		case FILTER_HST_ATTR_EQ:
			if (c == '"' || c == '\'') {
				h->quote = c;
				h->st = FILTER_HST_QUOTED;
			} else if (c == '>') {
				filter_eval_html_tag(fm);
			} else if (!space) {
				h->st = FILTER_HST_ATTR;
			}
			break;
		case FILTER_HST_QUOTED:
			if (c == h->quote)
				h->st = FILTER_HST_ATTR;
			break;
		case FILTER_HST_RAW: {
			/* "</script" or "</style", any case, ends the raw text: the end tag follows */
			const char *t = filter_eval_rawtags[h->raw - 1];
			uint8_t want = h->rawmatch == 0 ? '<' : h->rawmatch == 1 ? '/' : (uint8_t)t[h->rawmatch - 2];
			uint8_t lc = c >= 'A' && c <= 'Z' ? c | 0x20 : c;

			if (lc == want) {
				h->rawmatch++;
				if (h->rawmatch == strlen(t) + 2) {
					memcpy(h->name, t, strlen(t));
					h->nlen = (uint8_t)strlen(t);
					h->closing = true;
					h->raw = 0;
					h->st = FILTER_HST_NAME;
				}
			} else {
				h->rawmatch = c == '<';
			}
			break;
		}
		default:
			h->st = FILTER_HST_TEXT;
			break;
		}
	}
}

void filter_eval_html_part(struct filter_msg *fm, bool html)
{
	struct filter_html_tags *h = &fm->html;

	filter_eval_htmlx_part(fm, html, h->len);
	if (h->in_part) {
		for (uint32_t k = 0; k < FILTER_HTML_TAGS; k++)
			if (h->seen_part & (1u << k))
				h->vals[k] |= 1ull << (h->inside[k] < 63 ? h->inside[k] : 63);
		h->seen |= h->seen_part;
		/* SpamAssassin renders (and keeps results for) non-empty parts only */
		if (h->len && h->nparts < FILTER_HTML_PARTS) {
			h->part_len[h->nparts] = h->len;
			h->part_seen[h->nparts++] = h->seen_part;
		}
	}
	h->len = 0;
	h->in_part = html;
	h->st = FILTER_HST_TEXT;
	h->raw = h->rawmatch = 0;
	h->seen_part = 0;
	memset(h->inside, 0, sizeof(h->inside));
}

static bool filter_eval_html_balance(const struct filter_msg *fm, const struct filter_rule *ru)
{
	uint64_t vals;
	double want = ru->eval_arg[1];

	if (ru->eval_tag < 0 || ru->eval_arg[0] == FILTER_EVAL_UNDEF)
		return false;
	vals = fm->html.vals[ru->eval_tag];
	for (unsigned v = 0; v < 64; v++) {
		bool ok;

		if (!(vals & (1ull << v)))
			continue;
		switch ((int)ru->eval_arg[0]) {
		case FILTER_CMP_EQ: ok = v == want; break;
		case FILTER_CMP_NE: ok = v != want; break;
		case FILTER_CMP_LT: ok = v < want; break;
		case FILTER_CMP_LE: ok = v <= want; break;
		case FILTER_CMP_GT: ok = v > want; break;
		default:            ok = v >= want; break;
		}
		if (ok)
			return true;
	}
	return false;
}

/* html_range('length', min, max) (min < length <= max) in some HTML part; html_image_only:
 * the same in a part with an img tag. */
static bool filter_eval_html_length(const struct filter_msg *fm, const struct filter_rule *ru)
{
	const struct filter_html_tags *h = &fm->html;

	if (ru->eval_tag < 0 || ru->eval_arg[0] == FILTER_EVAL_UNDEF)
		return false;
	for (uint32_t p = 0; p < h->nparts; p++) {
		if (ru->eval == RULES_EVAL_HTML_IMAGE_ONLY && !(h->part_seen[p] & (1u << ru->eval_tag)))
			continue;
		if (h->part_len[p] > ru->eval_arg[0] &&
		    (ru->eval_arg[1] == FILTER_EVAL_UNDEF || h->part_len[p] <= ru->eval_arg[1]))
			return true;
	}
	return false;
}

/* All fields named name, values joined by '\n' with white space runs made one space (as
 * HeaderEval reads get('Received') after s/\s+/ /gs), cut to outlen - 1 bytes. */
static size_t filter_eval_joined(const struct filter_msg *fm, const char *name, char *out, size_t outlen)
{
	size_t o = 0, n;
	const char *v;
	bool ws = false;

	for (unsigned i = 0; (v = filter_eval_hdr(fm, name, i, false, &n)) != NULL; i++) {
		ws |= i > 0;
		for (size_t k = 0; k < n && o + 2 < outlen; k++) {
			if (v[k] == ' ' || v[k] == '\t' || v[k] == '\n' || v[k] == '\r') {
				ws = true;
				continue;
			}
			if (ws && o)
				out[o++] = ' ';
			ws = false;
			out[o++] = v[k];
		}
	}
	out[o] = '\0';
	return o;
}

/* HeaderEval::gated_through_received_hdr_remover: no Received field, or a list manager that
 * removes them (ezmlm, MSN groups). */
static bool filter_eval_rcvd_removed(const struct filter_msg *fm, const char *rcvd, size_t rn)
{
	size_t n;
	const char *ml = filter_eval_hdr(fm, "mailing-list", 0, false, &n);

	if (!filter_eval_count(fm, "received"))
		return true;
	if (ml && n > 8 && memmem(ml, n, "; run by ezmlm", 14)) {
		const char *dl = filter_eval_hdr(fm, "delivered-to", 0, false, &n);

		if (dl && n > 13 && strncmp(dl, "mailing list ", 13) == 0 &&
		    memmem(rcvd, rn, "qmail ", 6) && memmem(rcvd, rn, " invoked ", 9))
			return true;
	}
	return memmem(rcvd, rn, "from groups.msn.com (", 21) != NULL;
}

/* HeaderEval::check_for_forged_yahoo_received_headers: a yahoo.com From address, and no
 * Received field or relay of Yahoo's own. */
static bool filter_eval_forged_yahoo(struct filter_msg *fm, const struct filter_rule *ru)
{
	char from[256], rcvd[8192];
	const char *rd;
	size_t n, fl, rn;
	const char *v = filter_eval_hdr(fm, "from", 0, false, &n), *rf, *rt;

	if (!v || !filter_eval_addr(v, n, from, sizeof(from)))
		return false;
	fl = strlen(from);
	if (fl < 9 || strcasecmp(from + fl - 9, "yahoo.com") != 0 ||
	    (fl > 9 && (isalnum((unsigned char)from[fl - 10]) || from[fl - 10] == '_')))
		return false;
	rf = filter_eval_hdr(fm, "resent-from", 0, false, &n);
	rf = rf && !filter_eval_blank(rf, n) ? rf : NULL;
	rt = filter_eval_hdr(fm, "resent-to", 0, false, &n);
	rt = rt && !filter_eval_blank(rt, n) ? rt : NULL;
	rn = filter_eval_joined(fm, "received", rcvd, sizeof(rcvd));
	if (rf && rt && filter_eval_count(fm, "x-received"))
		rn = filter_eval_joined(fm, "x-received", rcvd, sizeof(rcvd));
	if (filter_eval_rcvd_removed(fm, rcvd, rn))
		return false;
	/* bounces from Yahoo: its rDNS on a trusted relay or the first untrusted one */
	for (rd = fm->relays_t; (rd = strstr(rd, " rdns=")) != NULL; rd++) {
		const char *e = strchr(rd + 6, ' ');

		if (e && e - (rd + 6) > 10 && strncasecmp(e - 10, ".yahoo.com", 10) == 0)
			return false;
	}
	rd = strstr(fm->relays_u, " rdns=");
	if (rd && (!strchr(fm->relays_u, ']') || rd < strchr(fm->relays_u, ']'))) {
		const char *e = strchr(rd + 6, ' ');

		if (e && e - (rd + 6) > 10 && strncasecmp(e - 10, ".yahoo.com", 10) == 0)
			return false;
	}
	if (filter_shard_match(fm, (uint32_t)(ru - fm->db->rules), ru->eval_re, (PCRE2_SPTR)rcvd, rn, 0) >= 0)
		return false;
	if (fl > 16 && strcasecmp(from + fl - 16, "@reply.yahoo.com") == 0 &&
	    filter_shard_match(fm, (uint32_t)(ru - fm->db->rules), ru->eval_re2, (PCRE2_SPTR)rcvd, rn,
			       0) >= 0)
		return false;
	return true;
}

/* HeaderEval: lc EnvelopeFrom:addr eq lc From:addr; two missing addresses match too. */
static bool filter_eval_env_hdr_from_match(const struct filter_msg *fm)
{
	char from[256] = "", env[256] = "";
	size_t n;
	const char *v = filter_eval_hdr(fm, "from", 0, false, &n);

	if (!v || !filter_eval_addr(v, n, from, sizeof(from)))
		from[0] = '\0';
	if (!filter_eval_envfrom(fm, env, sizeof(env)))
		env[0] = '\0';
	return strcasecmp(from, env) == 0;
}

void filter_eval_run(struct filter_msg *fm)
{
	const struct filter_db *db = fm->db;
	bool have_diff = false;
	double diff = 0;

	for (uint32_t i = 0; i < db->nrules; i++) {
		const struct filter_rule *ru = &db->rules[i];
		bool hit = false;
		size_t n = 0;
		const char *v;

		if (ru->kind != RULES_KIND_EVAL)
			continue;
		switch (ru->eval) {
		case RULES_EVAL_OUTLOOK_MSGID:
			hit = filter_eval_outlook_msgid(fm);
			break;
		case RULES_EVAL_SHIFTED_DATE:
			if (!have_diff) {
				diff = filter_eval_header_date_diff(fm);
				have_diff = true;
			}
			hit = (ru->eval_arg[0] == FILTER_EVAL_UNDEF || diff >= 3600 * ru->eval_arg[0]) &&
			      (ru->eval_arg[1] == FILTER_EVAL_UNDEF || diff < 3600 * ru->eval_arg[1]);
			break;
		case RULES_EVAL_SUBJ_ALL_CAPS:
			hit = filter_eval_subj_caps(fm);
			break;
		case RULES_EVAL_MISSING_TO:
			/* get('To') is "\n" for a blank field: only an absent one is missing */
			v = filter_eval_hdr(fm, "to", 0, false, &n);
			if (!v)
				v = filter_eval_hdr(fm, "apparently-to", 0, false, &n);
			hit = v == NULL;
			break;
		case RULES_EVAL_HTML_MESSAGE:
		case RULES_EVAL_MIME_HTML_MOSTLY:
			hit = fm->n_html > 0;
			break;
		case RULES_EVAL_ALL_TRUSTED:
			hit = fm->n_trusted && !fm->n_untrusted;
			break;
		case RULES_EVAL_NO_RELAYS:
			hit = !fm->n_trusted && !fm->n_untrusted;
			break;
		case RULES_EVAL_FREEMAIL_FROM:
			hit = filter_eval_freemail_from(fm, ru);
			break;
		case RULES_EVAL_FREEMAIL_HEADER:
			hit = ru->eval_hdr && filter_eval_freemail_in(fm, ru, ru->eval_hdr);
			break;
		case RULES_EVAL_HELO_IP_MISMATCH:
			hit = filter_eval_relays(fm, filter_eval_helo_mismatch_one, NULL);
			break;
		case RULES_EVAL_NO_RDNS_DOTCOM_HELO: {
			int last = 0;

			filter_eval_relays(fm, filter_eval_dotcom_one, &last);
			hit = last != 0;
			break;
		}
		case RULES_EVAL_EQUAL_FROM_DOMAINS:
			hit = filter_eval_from_domains_differ(fm);
			break;
		case RULES_EVAL_MIME_HTML_ONLY:
			hit = fm->n_html > 0 && fm->n_text == 0;
			break;
		case RULES_EVAL_HTML_TAG_EXISTS:
			hit = ru->eval_tag >= 0 && (fm->html.seen & (1u << ru->eval_tag));
			break;
		case RULES_EVAL_HTML_TAG_BALANCE:
			hit = filter_eval_html_balance(fm, ru);
			break;
		case RULES_EVAL_HTML_LENGTH:
		case RULES_EVAL_HTML_IMAGE_ONLY:
			hit = filter_eval_html_length(fm, ru);
			break;
		case RULES_EVAL_HTML_LINK_IMAGE:
			hit = ru->eval_tag >= 0 && fm->html.link_img;
			break;
		case RULES_EVAL_HTML_COMMENT:
			hit = fm->html.comment;
			break;
		case RULES_EVAL_HTML_COMMENT_SAVED:
			hit = fm->html.comment_saved;
			break;
		case RULES_EVAL_FORGED_YAHOO:
			hit = filter_eval_forged_yahoo(fm, ru);
			break;
		case RULES_EVAL_ENV_HDR_FROM_MATCH:
			hit = filter_eval_env_hdr_from_match(fm);
			break;
		default:
			if (ru->eval >= RULES_EVAL_HDR_FIRST)
				hit = filter_eval_header_test(fm, ru);
			else if (ru->eval >= RULES_EVAL_HTML_FIRST)
				hit = filter_eval_htmlx_test(fm, ru);
			else if (ru->eval >= RULES_EVAL_MIME_FIRST)
				hit = filter_eval_mime_test(fm, ru);
			break;
		}
		if (hit)
			filter_bit_set(fm->hits, i);
	}
}
