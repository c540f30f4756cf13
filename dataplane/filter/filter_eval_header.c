/*
 * filter_eval_header.c - the rest of HeaderEval and RelayEval (freemail reply-to, recipients,
 * forged relays, counts) (see filter_eval_header.h), ported from SpamAssassin 4.0.1's
 * Plugin::HeaderEval, Plugin::FreeMail (check_freemail_replyto) and Util::parse_rfc822_date.
 *
 * The regular expressions SpamAssassin's code applies are compiled once per rule set (struct
 * filter_eval_header_db) and run with the shard's caps (filter_shard_match). The body
 * addresses FreeMail compares with Reply-To are read while the body streams (bounded state:
 * a word, and the first FILTER_EVAL_HDR_EMAILS distinct addresses). Also owns: the date
 * difference of check_for_shifted_date (the core eval calls filter_eval_header_date_diff), where
 * ALL-UNTRUSTED / ALL-EXTERNAL start, the relay's recorded envelope sender, and FreeMail's
 * domain wildcards and default welcomelist (the core's freemail evals use them too).
 * Address lists are parsed loosely (quotes, comments, groups, <>), the first 256 addresses.
 * Shard thread; no allocation on the mail path (address lists and joined fields are on the
 * stack or in a per-thread buffer).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "filter_types.h"

#define HDR_UNDEF 1e300
#define HDR_BUF   8192u

/* SpamAssassin's $IP_ADDRESS, loosely: a dotted quad, or an IPv6 address with "::" or all
 * eight groups */
#define HDR_IP "(?:(?<![\\d.])(?:\\d{1,3}\\.){3}\\d{1,3}(?![\\d.])|[0-9a-fA-F:]*::[0-9a-fA-F:.]*|" \
	       "(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4})"

enum hdr_re {
	RE_IP = 0,
	RE_HM_PICKUP, RE_HM_1, RE_HM_OUT1, RE_HM_OUT2, RE_HM_2, RE_HM_HTTP, RE_HM_YAHOO,
	RE_HM_FORGED, RE_HM_ORIG,
	RE_MSN_PICKUP,
	RE_EZMLM_ML, RE_EZMLM_DL, RE_EZMLM_QMAIL, RE_MSN_GATE,
	RE_EUDORA,
	RE_JUNO_1, RE_JUNO_COOKIE, RE_JUNO_MAIL, RE_JUNO_WEBMAIL, RE_JUNO_WMVER, RE_JUNO_XMAIL,
	RE_GM_1, RE_GM_2, RE_GM_3,
	RE_AOL, RE_AOL_X1, RE_AOL_X2,
	RE_RATWARE_MID,
	RE_FM_BULK,
	RE_RCVD_DATE, RE_D_1, RE_D_2, RE_D_3, RE_D_TIME, RE_D_NUMTZ, RE_D_TZ,
	RE_N
};

static const struct { const char *re; uint32_t opts; } hdr_res[RE_N] = {
	[RE_IP] = { HDR_IP, 0 },
	[RE_HM_PICKUP] = { "from mail pickup service by hotmail\\.com with Microsoft SMTPSVC;", 0 },
	[RE_HM_1] = { "from (?:\\S*\\.)?hotmail.com \\(\\S+\\.hotmail(?:\\.msn)?\\.com[ \\)]", 0 },
	[RE_HM_OUT1] = { "from \\S*\\.outbound\\.protection\\.outlook\\.com \\(\\S+\\.outbound\\.protection\\.outlook\\.com[ \\)]", 0 },
	[RE_HM_OUT2] = { "from \\S*\\.(?:eur|nam)prd\\d+\\.prod\\.outlook\\.com \\(" HDR_IP "\\)", 0 },
	[RE_HM_2] = { "from \\S*\\.hotmail.com \\(\\[" HDR_IP "\\][ \\):]", 0 },
	[RE_HM_HTTP] = { "from \\S+ by \\S+\\.hotmail(?:\\.msn)?\\.com with HTTP\\;", 0 },
	[RE_HM_YAHOO] = { "from \\[66\\.218.\\S+\\] by \\S+\\.yahoo\\.com", 0 },
	[RE_HM_FORGED] = { "(?:from |HELO |helo=)\\S*hotmail\\.com\\b", 0 },
	[RE_HM_ORIG] = { "hotmail\\.com|msonline\\-outlook", 0 },
	[RE_MSN_PICKUP] = { "from mail pickup service by ((?:p\\d\\d\\.)groups\\.msn\\.com)\\b", 0 },
	[RE_EZMLM_ML] = { "^contact \\S+\\@\\S+\\; run by ezmlm$", PCRE2_MULTILINE },
	[RE_EZMLM_DL] = { "^mailing list \\S+\\@\\S+", PCRE2_MULTILINE },
	[RE_EZMLM_QMAIL] = { "qmail \\d+ invoked (?:from network|by .{3,20})\\); \\d+ ... \\d+", 0 },
	[RE_MSN_GATE] = { "from groups\\.msn\\.com \\(\\S+\\.msn\\.com ", 0 },
	[RE_EUDORA] = { "by \\S*whowhere.com\\;", 0 },
	[RE_JUNO_1] = { "from.*\\b(?:juno|untd)\\.com.*[\\[\\(]" HDR_IP "[\\]\\)].*by", 0 },
	[RE_JUNO_COOKIE] = { " cookie\\.(?:juno|untd)\\.com ", 0 },
	[RE_JUNO_MAIL] = { "from.*\\bmail\\.com.*\\[" HDR_IP "\\].*by", 0 },
	[RE_JUNO_WEBMAIL] = { "from (webmail\\S+\\.untd\\.com) \\(\\1 \\[" HDR_IP "\\]\\) by", 0 },
	[RE_JUNO_WMVER] = { "^Webmail Version \\d", 0 },
	[RE_JUNO_XMAIL] = { "\\bmail\\.com", 0 },
	[RE_GM_1] = { "by 10\\.\\S+ with SMTP id \\S+", 0 },
	[RE_GM_2] = { "by 2002\\:a\\d\\d\\:\\w+\\:\\S+ with SMTP id \\S+", 0 },
	[RE_GM_3] = { "by smtp\\.googlemail\\.com with ESMTPSA id \\S+", 0 },
	[RE_AOL] = { " rly-[a-z][a-z]\\d\\d\\.", PCRE2_CASELESS },
	[RE_AOL_X1] = { "\\/AOL-\\d+\\.\\d+\\.\\d+\\)", 0 },
	[RE_AOL_X2] = { "ESMTP id (?:RELAY|MAILRELAY|MAILIN)", 0 },
	[RE_RATWARE_MID] = { "<[A-Z]{28}\\.([^>]+?)>", 0 },
	[RE_FM_BULK] = { "(?:^(?:post|host|domain)master|^double-bounce|^(?:sentto|owner|return|(?:gr)?bounced?)-.+"
			 "|-(?:request|bounces?|admin|owner)|\\b(?:do[._-t]?)?no[._-t]?repl(?:y|ies)|.+=.+)\\@",
			 PCRE2_CASELESS },
	[RE_RCVD_DATE] = { "(\\s.?\\d+ \\S\\S\\S \\d+ \\d+:\\d+:\\d+ \\S+)", 0 },
	[RE_D_1] = { " (\\d+) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\\d{4}) ", PCRE2_CASELESS },
	[RE_D_2] = { " (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) +(\\d+) \\d+:\\d+:\\d+ (\\d{4}) ", PCRE2_CASELESS },
	[RE_D_3] = { " (\\d+) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (\\d{2,3}) ", PCRE2_CASELESS },
	[RE_D_TIME] = { " (\\d?\\d):(\\d\\d)(:(\\d\\d))? ", 0 },
	[RE_D_NUMTZ] = { " ([-+]\\d{4}) ", 0 },
	[RE_D_TZ] = { "\\b([A-Z]{2,4}(?:-DST)?)\\b", 0 },
};

struct filter_eval_header_db {
	pcre2_code *re[RE_N];
};

/* --- load ------------------------------------------------------------------------------- */

int filter_eval_header_init(struct filter_db *db)
{
	struct filter_eval_header_db *h;
	int ec;
	PCRE2_SIZE eo;

	if (db->ev_header)
		return 0;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	db->ev_header = h;
	for (unsigned i = 0; i < RE_N; i++) {
		h->re[i] = pcre2_compile((PCRE2_SPTR)hdr_res[i].re, PCRE2_ZERO_TERMINATED, hdr_res[i].opts,
					 &ec, &eo, NULL);
		if (!h->re[i])
			return -ENOMEM;
		(void)pcre2_jit_compile(h->re[i], PCRE2_JIT_COMPLETE);
	}
	return 0;
}

void filter_eval_header_free(struct filter_db *db)
{
	if (!db || !db->ev_header)
		return;
	for (unsigned i = 0; i < RE_N; i++)
		pcre2_code_free(db->ev_header->re[i]);
	free(db->ev_header);
	db->ev_header = NULL;
}

/* The next quoted argument of "'a', 'b'", or NULL; copied into out. */
static const char *hdr_arg(const char **p, const char *e, char *out, size_t outlen)
{
	const char *s = *p, *q;
	char qc;

	while (s < e && (*s == ' ' || *s == ',' || *s == '\t'))
		s++;
	if (s >= e || (*s != '\'' && *s != '"'))
		return NULL;
	qc = *s++;
	q = memchr(s, qc, (size_t)(e - s));
	if (!q || (size_t)(q - s) >= outlen)
		return NULL;
	memcpy(out, s, (size_t)(q - s));
	out[q - s] = '\0';
	*p = q + 1;
	return out;
}

static double hdr_num(const char *a)
{
	char *e;
	double v;

	if (!a || strcmp(a, "undef") == 0)
		return HDR_UNDEF;
	v = strtod(a, &e);
	return e == a ? HDR_UNDEF : v;
}

int filter_eval_header_prepare(struct filter_db *db, struct filter_rule *ru, const char *args, size_t len)
{
	const char *p = args, *e = args + len;
	char a[3][64];
	const char *v[3];
	int rc = filter_eval_header_init(db);

	if (rc < 0)
		return rc;
	ru->eval_arg[0] = ru->eval_arg[1] = HDR_UNDEF;
	for (unsigned k = 0; k < 3; k++)
		v[k] = hdr_arg(&p, e, a[k], sizeof(a[k]));
	switch (ru->eval) {
	case RULES_EVAL_HDR_SIMILAR_RECIPS:
		ru->eval_arg[0] = hdr_num(v[0]);
		ru->eval_arg[1] = hdr_num(v[1]);
		break;
	case RULES_EVAL_HDR_ILLEGAL_CHARS:
	case RULES_EVAL_HDR_COUNT_RANGE:
		if (!v[0] || !v[1] || !v[2])
			return -EINVAL;
		ru->eval_hdr = strdup(v[0]);
		if (!ru->eval_hdr)
			return -ENOMEM;
		ru->eval_arg[0] = hdr_num(v[1]);
		ru->eval_arg[1] = hdr_num(v[2]);
		break;
	case RULES_EVAL_HDR_TO_IN_SUBJECT:
		/* 'user' or 'address'; anything else never hits */
		ru->eval_arg[0] = v[0] && strcmp(v[0], "user") == 0 ? 1 :
				  v[0] && strcmp(v[0], "address") == 0 ? 2 : 0;
		break;
	default:
		break;
	}
	return 0;
}

void filter_eval_header_begin(struct filter_msg *fm)
{
	struct filter_eval_header_state *s = &fm->ev_header;

	s->rcvd_trusted = 0;
	s->tlen = 0;
	s->tover = false;
	memset(s->back, 0, sizeof(s->back));
	s->pend = 0;
	s->nemails = 0;
	s->emails_over = false;
	s->hotmail = s->sorted = -1;
	s->similar = 0;
}

/* --- header access ---------------------------------------------------------------------- */

static bool hdr_is(const struct filter_msg *fm, const struct filter_hdr *h, const char *name)
{
	return strlen(name) == h->name_len && strncasecmp(fm->arena + h->name_off, name, h->name_len) == 0;
}

static const char *hdr_get(const struct filter_msg *fm, const char *name, unsigned idx, bool raw, size_t *len_r)
{
	for (uint32_t i = 0; i < fm->ntop; i++) {
		const struct filter_hdr *h = &fm->hdrs[i];

		if (!hdr_is(fm, h, name) || idx--)
			continue;
		*len_r = raw ? h->raw_len : h->dec_len;
		return fm->arena + (raw ? h->raw_off : h->dec_off);
	}
	return NULL;
}

/* White space as SpamAssassin's unfolding leaves it: the parser keeps a fold's WSP, SpamAssassin
 * makes "\n\s+" one space; a run with a tab or of two blanks or more is taken for a fold. */
static size_t hdr_unfold(const char *v, size_t n, char *out, size_t o, size_t cap)
{
	for (size_t k = 0; k < n && o + 2 < cap; k++) {
		if (v[k] == ' ' || v[k] == '\t') {
			size_t j = k;
			bool tab = false;

			while (j < n && (v[j] == ' ' || v[j] == '\t'))
				tab |= v[j++] == '\t';
			if (tab || j - k > 1) {
				out[o++] = ' ';
				k = j - 1;
				continue;
			}
		}
		out[o++] = v[k] == '\r' || v[k] == '\n' ? ' ' : v[k];
	}
	return o;
}

/* $pms->get('Name'): every field's value and "\n", joined; collapse: then s/\s+/ /g. */
static size_t hdr_joined(const struct filter_msg *fm, const char *name, bool collapse, char *out, size_t cap)
{
	size_t o = 0, n;
	const char *v;

	for (unsigned i = 0; (v = hdr_get(fm, name, i, false, &n)) != NULL && o + 2 < cap; i++) {
		o = hdr_unfold(v, n, out, o, cap);
		out[o++] = '\n';
	}
	if (collapse) {
		size_t w = 0;

		for (size_t r = 0; r < o; r++) {
			bool ws = isspace((unsigned char)out[r]);

			if (ws && w && out[w - 1] == ' ')
				continue;
			out[w++] = ws ? ' ' : out[r];
		}
		o = w;
	}
	out[o] = '\0';
	return o;
}

static bool hdr_match(struct filter_msg *fm, const struct filter_rule *ru, enum hdr_re re, const char *s, size_t n)
{
	uint32_t id = ru ? (uint32_t)(ru - fm->db->rules) : UINT32_MAX;

	return filter_shard_match(fm, id, fm->db->ev_header->re[re], (PCRE2_SPTR)s, n, 0) >= 0;
}

/* The match's group k (after a successful hdr_match), or false. */
static bool hdr_group(const struct filter_msg *fm, unsigned k, size_t *off_r, size_t *len_r)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(fm->fs->md);

	if (k >= pcre2_get_ovector_count(fm->fs->md) || ov[2 * k] == PCRE2_UNSET)
		return false;
	*off_r = ov[2 * k];
	*len_r = ov[2 * k + 1] - ov[2 * k];
	return true;
}

/* --- addresses (parse_header_addresses, the common forms) ------------------------------- */

struct hdr_addrs {
	char     a[256][FILTER_EVAL_HDR_EMAIL_LEN];
	unsigned n;
};

/* One address of a list: "Name <a@b>", "a@b (Name)", "group: a@b". */
static void hdr_addr_one(const char *s, const char *e, struct hdr_addrs *out)
{
	const char *lt = NULL, *gt, *a, *ae;
	int depth = 0;
	bool q = false;
	char buf[FILTER_EVAL_HDR_EMAIL_LEN];
	size_t k = 0;

	if (e <= s)
		return;
	for (const char *p = s; p < e; p++) {
		if (*p == '"' && (p == s || p[-1] != '\\'))
			q = !q;
		else if (!q && *p == '<' && !lt)
			lt = p;
	}
	if (lt) {
		a = lt + 1;
		gt = memchr(a, '>', (size_t)(e - a));
		ae = gt ? gt : e;
	} else {
		const char *colon = memchr(s, ':', (size_t)(e - s)), *at = memchr(s, '@', (size_t)(e - s));

		a = colon && at && colon < at ? colon + 1 : s;
		ae = e;
	}
	for (const char *p = a; p < ae && k + 1 < sizeof(buf); p++) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && depth)
			depth--;
		else if (!depth && !isspace((unsigned char)*p) && *p != ';')
			buf[k++] = *p;
	}
	buf[k] = '\0';
	if (!k || !strchr(buf, '@') || buf[0] == '@' || out->n >= 256)
		return;
	memcpy(out->a[out->n++], buf, k + 1);
}

/* Every address of field h (its raw value, as SpamAssassin parses it). */
static void hdr_addrs_field(const struct filter_msg *fm, const struct filter_hdr *h, struct hdr_addrs *out)
{
	const char *v = fm->arena + h->raw_off, *s = v, *e = v + h->raw_len;
	int depth = 0, angle = 0;
	bool q = false;

	for (const char *p = v; p <= e; p++) {
		if (p < e) {
			if (*p == '"' && (p == v || p[-1] != '\\'))
				q = !q;
			if (q)
				continue;
			depth += *p == '(' ? 1 : *p == ')' && depth ? -1 : 0;
			angle += *p == '<' ? 1 : *p == '>' && angle ? -1 : 0;
			if (*p != ',' || depth || angle)
				continue;
		}
		hdr_addr_one(s, p, out);
		s = p + 1;
	}
}

/* Every address of every field named name. */
static void hdr_addrs(const struct filter_msg *fm, const char *name, struct hdr_addrs *out)
{
	for (uint32_t i = 0; i < fm->ntop; i++)
		if (hdr_is(fm, &fm->hdrs[i], name))
			hdr_addrs_field(fm, &fm->hdrs[i], out);
}

/* The first address of the first field named name, lower-cased; "" when none. */
static void hdr_first_addr(const struct filter_msg *fm, const char *name, char *out, size_t outlen)
{
	struct hdr_addrs a;
	size_t k;

	a.n = 0;
	out[0] = '\0';
	hdr_addrs(fm, name, &a);
	if (!a.n)
		return;
	for (k = 0; a.a[0][k] && k + 1 < outlen; k++)
		out[k] = (char)tolower((unsigned char)a.a[0][k]);
	out[k] = '\0';
}

static bool hdr_ends_word(const char *s, const char *suffix)
{
	size_t l = strlen(s), sl = strlen(suffix);

	/* /\bsuffix$/i with suffix starting with a word character */
	return l >= sl && strcasecmp(s + l - sl, suffix) == 0 &&
	       (l == sl || !(isalnum((unsigned char)s[l - sl - 1]) || s[l - sl - 1] == '_'));
}

/* --- FreeMail --------------------------------------------------------------------------- */

bool filter_eval_header_glob(const char *pat, const char *dom)
{
	for (; *pat; pat++, dom++) {
		if (*pat == '*') {
			/* [^.]*: the shortest run first, never across a dot */
			for (const char *d = dom;; d++) {
				if (filter_eval_header_glob(pat + 1, d))
					return true;
				if (!*d || *d == '.')
					return false;
			}
		}
		if (!*dom || (*pat != '?' && *pat != *dom))
			return false;
	}
	return !*dom;
}

static bool hdr_hexrun(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]) && !((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'f'))
			return false;
	return true;
}

bool filter_eval_header_fm_welcome(const char *addr)
{
	static const char *const exact[] = { "abuse", "support", "sales", "info", "helpdesk", "contact",
					     "kontakt", "postmaster", "hostmaster", "domainmaster" };
	const char *at = strrchr(addr, '@');
	size_t l = at ? (size_t)(at - addr) : 0;

	if (!at)
		return false;
	for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++)
		if (strlen(exact[i]) == l && strncasecmp(addr, exact[i], l) == 0)
			return true;
	if (strncasecmp(addr, "undisclosed", 11) == 0 && l >= 11)
		return true;
	if (l == 24 && strncasecmp(addr, "request-", 8) == 0 && hdr_hexrun(addr + 8, 16))
		return true;
	if (strncasecmp(addr, "bounce-", 7) == 0 || strncasecmp(addr, "bounced-", 8) == 0)
		return true;
	if ((l == 17 && hdr_hexrun(addr, 8) && addr[8] == '.' && hdr_hexrun(addr + 9, 8)) ||
	    (l == 36 && hdr_hexrun(addr, 8) && addr[8] == '-' && hdr_hexrun(addr + 9, 4) && addr[13] == '-' &&
	     hdr_hexrun(addr + 14, 4) && addr[18] == '-' && hdr_hexrun(addr + 19, 4) && addr[23] == '-' &&
	     hdr_hexrun(addr + 24, 12)))
		return true;
	/* .+=.+=.+ : a '=' after the first byte, another at least two bytes later and before
	 * the last byte of the local part */
	{
		size_t first = 0, last = 0;

		for (size_t i = 1; i < l; i++)
			if (addr[i] == '=') {
				if (!first)
					first = i;
				if (i + 1 < l)
					last = i;
			}
		return first && last >= first + 2;
	}
}

static int hdr_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* FreeMail's _is_freemail: the domain listed, and the address not one of the default
 * welcomelist's (abuse@, postmaster@, ...). */
static bool hdr_is_freemail(struct filter_msg *fm, const char *addr)
{
	const struct filter_db *db = fm->db;
	const char *at = strrchr(addr, '@'), *dom;
	bool listed = false;

	if (!at || !at[1])
		return false;
	dom = at + 1;
	if (bsearch(&dom, db->fm_exact, db->nfm_exact, sizeof(char *), hdr_strcmp))
		listed = true;
	for (uint32_t i = 0; !listed && i < db->nfm_wild; i++)
		listed = filter_eval_header_glob(db->fm_wild[i], dom);
	return listed && !filter_eval_header_fm_welcome(addr);
}

/* [a-z0-9!#$%&'*+/=?^_`{|}~-] */
static bool hdr_local_char(uint8_t c)
{
	static const uint8_t punct[32] = {
		['!' - 32] = 1, ['#' - 32] = 1, ['$' - 32] = 1, ['%' - 32] = 1, ['&' - 32] = 1,
		['\'' - 32] = 1, ['*' - 32] = 1, ['+' - 32] = 1, ['/' - 32] = 1, ['=' - 32] = 1,
		['?' - 32] = 1, ['-' - 32] = 1,
	};

	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	if (c >= 32 && c < 64)
		return punct[c - 32];
	return c == '^' || c == '_' || c == '`' || c == '{' || c == '|' || c == '}' || c == '~';
}

/* Keeps addr (lower-cased) among the distinct body addresses. */
static void hdr_email_add(struct filter_eval_header_state *s, const char *addr)
{
	for (unsigned i = 0; i < s->nemails; i++)
		if (strcmp(s->emails[i], addr) == 0)
			return;
	if (s->nemails == FILTER_EVAL_HDR_EMAILS) {
		s->emails_over = true;
		return;
	}
	strcpy(s->emails[s->nemails++], addr);
}

/* FreeMail's email_regex over one word (a run of address characters): the address it finds,
 * lower-cased into out, or false. The domain: 2 to 5 labels, the last alphabetic. */
static bool hdr_word_email(const char *w, size_t n, char *out)
{
	const char *at = memchr(w, '@', n), *ls, *de, *d;
	size_t ll, dl, labels = 0, o = 0, lastlab = 0;

	if (!at || at == w)
		return false;
	/* the local part: back from '@' over local characters and single dots */
	ls = at;
	while (ls > w && (hdr_local_char((uint8_t)ls[-1]) || (ls[-1] == '.' && ls - 1 > w && ls[-2] != '.' &&
							       hdr_local_char((uint8_t)ls[-2]))))
		ls--;
	while (ls < at && *ls == '.')
		ls++;
	ll = (size_t)(at - ls);
	if (!ll || ll > 64 || at[-1] == '.')
		return false;
	/* the domain: [a-z0-9-] labels separated by single dots */
	d = at + 1;
	de = d;
	while (de < w + n && (isalnum((unsigned char)*de) || *de == '-' || (*de == '.' && de + 1 < w + n &&
									 isalnum((unsigned char)de[1])))) {
		if (*de == '.') {
			labels++;
			if (labels == 5)
				break;
		}
		de++;
	}
	dl = (size_t)(de - d);
	if (!labels || ll + 1 + dl >= FILTER_EVAL_HDR_EMAIL_LEN)
		return false;
	for (size_t i = 0; i < dl; i++)
		if (d[i] == '.')
			lastlab = i + 1;
	if (dl - lastlab < 2)
		return false;
	for (size_t i = lastlab; i < dl; i++)
		if (!isalpha((unsigned char)d[i]))
			return false;
	for (const char *p = ls; p < de; p++)
		out[o++] = (char)tolower((unsigned char)*p);
	out[o] = '\0';
	return true;
}

/* The word that held the pending address is resolved: it counts unless stripped. */
static void hdr_pend_resolve(struct filter_eval_header_state *s, bool strip)
{
	if (!strip)
		hdr_email_add(s, s->pend_addr);
	s->pend = 0;
}

/* A word ended at byte c: an address in it waits for what follows. */
static void hdr_word_end(struct filter_eval_header_state *s, uint8_t c)
{
	char addr[FILTER_EVAL_HDR_EMAIL_LEN];
	bool mailto = memcmp(s->back + 1, "mailto:", 7) == 0 || strncasecmp(s->back + 1, "mailto:", 7) == 0;
	bool url = s->tlen >= 2 && s->tok[0] == '/' && s->tok[1] == '/' && s->back[7] == ':';

	if (!s->tover && !url && hdr_word_email(s->tok, s->tlen, addr)) {
		strcpy(s->pend_addr, addr);
		{
			/* the address ends before the word does: the next byte is inside the word */
			size_t alen = strlen(addr);
			bool at_end = s->tlen >= alen && strncasecmp(s->tok + s->tlen - alen, addr, alen) == 0;

			if (!at_end || mailto) {
				hdr_email_add(s, addr);
			} else if (c == '>') {
				/* "<a@b>": stripped */
			} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
				s->pend = 1;
				s->pend_ws = 1;
				s->pend_word = 0;
			} else {
				hdr_email_add(s, addr);
			}
		}
	}
	s->tlen = 0;
	s->tover = false;
}

void filter_eval_header_body(struct filter_msg *fm, const uint8_t *p, size_t n)
{
	struct filter_eval_header_state *s = &fm->ev_header;

	if (!fm->db->ev_header)
		return;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
		bool alpha = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';

		if (s->pend == 1) {
			if (ws && s->pend_ws < 10) {
				s->pend_ws++;
			} else if (alpha) {
				s->pend = 2;
				s->pend_wbuf[0] = (char)(c | 0x20);
				s->pend_word = 1;
			} else {
				hdr_pend_resolve(s, false);
			}
		} else if (s->pend == 2) {
			if (alpha && s->pend_word < 11) {
				if (s->pend_word < sizeof(s->pend_wbuf))
					s->pend_wbuf[s->pend_word] = (char)(c | 0x20);
				s->pend_word++;
			} else if (c == ':' && s->pend_word >= 2) {
				/* "a@b wrote:" is stripped, "a@b fax:", "tel:", "phone:", "email:" not */
				static const char *const keep[] = { "fax", "facsi", "tel", "phone", "email", "mail", "e" };
				bool k = false;
				size_t wl = s->pend_word < sizeof(s->pend_wbuf) ? s->pend_word : sizeof(s->pend_wbuf);

				for (size_t j = 0; j < sizeof(keep) / sizeof(keep[0]) - 1; j++)
					k |= wl >= strlen(keep[j]) && strncmp(s->pend_wbuf, keep[j], strlen(keep[j])) == 0;
				hdr_pend_resolve(s, !k);
			} else {
				hdr_pend_resolve(s, false);
			}
		}
		if (hdr_local_char(c) || c == '.' || c == '@') {
			if (s->tlen < sizeof(s->tok) - 1)
				s->tok[s->tlen++] = (char)c;
			else
				s->tover = true;
			continue;
		}
		if (s->tlen) {
			s->tok[s->tlen] = '\0';
			hdr_word_end(s, c);
		}
		memmove(s->back, s->back + 1, sizeof(s->back) - 1);
		s->back[sizeof(s->back) - 1] = (char)c;
	}
}

void filter_eval_header_uri(struct filter_msg *fm, const char *p, size_t n)
{
	char addr[FILTER_EVAL_HDR_EMAIL_LEN];

	if (!fm->db->ev_header || n < 8 || strncasecmp(p, "mailto:", 7) != 0)
		return;
	p += 7, n -= 7;
	for (size_t i = 0; i < n; i++)
		if (!(hdr_local_char((uint8_t)p[i]) || p[i] == '.' || p[i] == '@')) {
			n = i;
			break;
		}
	if (hdr_word_email(p, n, addr) && strncasecmp(p, addr, strlen(addr)) == 0)
		hdr_email_add(&fm->ev_header, addr);
}

/* FreeMail::check_freemail_replyto */
static bool hdr_freemail_replyto(struct filter_msg *fm, bool reply)
{
	struct hdr_addrs from, rt;
	struct filter_eval_header_state *s = &fm->ev_header;
	char env[256];
	bool from_fm = false, rt_fm = false, from_not_in_rt = true;
	unsigned nbody_fm = 0;

	if (s->tlen) {   /* the body's last word */
		s->tok[s->tlen] = '\0';
		hdr_word_end(s, ' ');
	}
	if (s->pend)
		hdr_pend_resolve(s, false);
	if (filter_eval_envfrom(fm, env, sizeof(env)) && hdr_match(fm, NULL, RE_FM_BULK, env, strlen(env)))
		return false;
	from.n = rt.n = 0;
	hdr_addrs(fm, "from", &from);
	hdr_addrs(fm, "reply-to", &rt);
	for (unsigned i = 0; i < from.n; i++) {
		for (char *c = from.a[i]; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		from_fm |= hdr_is_freemail(fm, from.a[i]);
	}
	for (unsigned i = 0; i < rt.n; i++) {
		for (char *c = rt.a[i]; *c; c++)
			*c = (char)tolower((unsigned char)*c);
		rt_fm |= hdr_is_freemail(fm, rt.a[i]);
	}
	for (unsigned i = 0; i < from.n; i++)
		for (unsigned k = 0; k < rt.n; k++)
			if (strcmp(from.a[i], rt.a[k]) == 0)
				from_not_in_rt = false;
	if (from_fm && rt_fm && from_not_in_rt)
		return true;
	if (!reply && !rt_fm)
		return false;
	if (reply && ((rt.n && !rt_fm) || !from_fm))
		return false;
	/* the body: at most 4 distinct addresses, at most 2 of them freemail */
	if (s->emails_over)
		return false;
	for (unsigned i = 0; i < s->nemails; i++)
		nbody_fm += hdr_is_freemail(fm, s->emails[i]);
	if (nbody_fm >= 3)
		return false;
	for (unsigned i = 0; i < s->nemails; i++) {
		const struct hdr_addrs *r = (!reply || rt_fm) ? &rt : &from;

		if (!hdr_is_freemail(fm, s->emails[i]))
			continue;
		for (unsigned k = 0; k < r->n; k++)
			if (strcmp(s->emails[i], r->a[k]) != 0)
				return true;
	}
	return false;
}

/* --- recipients (HeaderEval::_check_recipients) ------------------------------------------ */

static void hdr_recips(struct filter_msg *fm, bool *sorted_r, double *similar_r)
{
	struct hdr_addrs in, ad;
	unsigned hits = 0, comb = 0;

	in.n = ad.n = 0;
	/* ToCc: To and Cc in the order of the fields; Bcc when they hold fewer than 5 */
	for (uint32_t i = 0; i < fm->ntop; i++)
		if (hdr_is(fm, &fm->hdrs[i], "to") || hdr_is(fm, &fm->hdrs[i], "cc"))
			hdr_addrs_field(fm, &fm->hdrs[i], &in);
	if (in.n < 5)
		hdr_addrs(fm, "bcc", &in);
	for (unsigned i = 0; i < in.n && ad.n < 256; i++)
		if (!ad.n || strcasecmp(ad.a[ad.n - 1], in.a[i]) != 0)
			strcpy(ad.a[ad.n++], in.a[i]);
	*sorted_r = ad.n >= 7;
	for (unsigned i = 1; i < ad.n && *sorted_r; i++)
		if (strcmp(ad.a[i - 1], ad.a[i]) > 0)
			*sorted_r = false;
	*similar_r = 0;
	if (ad.n < 5)
		return;
	for (unsigned i = 0; i < ad.n; i++)
		for (unsigned j = i + 1; j < ad.n; j++) {
			const char *hi = strchr(ad.a[i], '@') + 1, *hj = strchr(ad.a[j], '@') + 1;

			/* substr($_, 0, 2) of the user part and of the host */
			hits += strncmp(ad.a[i], ad.a[j], 2) == 0;
			hits += strncmp(hi, hj, 2) == 0 && strcmp(hi, hj) != 0;
			comb++;
		}
	*similar_r = (double)hits / comb;
}

/* --- relays forged (HeaderEval) --------------------------------------------------------- */

static char *hdr_buf(void)
{
	static _Thread_local char b[HDR_BUF];

	return b;
}

/* HeaderEval::gated_through_received_hdr_remover */
static bool hdr_rcvd_remover(struct filter_msg *fm)
{
	char *b = hdr_buf();
	size_t n;

	n = hdr_joined(fm, "mailing-list", false, b, HDR_BUF);
	if (n && hdr_match(fm, NULL, RE_EZMLM_ML, b, n)) {
		size_t dn = hdr_joined(fm, "delivered-to", false, b, HDR_BUF);
		bool dl = hdr_match(fm, NULL, RE_EZMLM_DL, b, dn);

		n = hdr_joined(fm, "received", false, b, HDR_BUF);
		if (dl && hdr_match(fm, NULL, RE_EZMLM_QMAIL, b, n))
			return true;
	}
	if (!hdr_get(fm, "received", 0, false, &n))
		return true;
	n = hdr_joined(fm, "received", false, b, HDR_BUF);
	return hdr_match(fm, NULL, RE_MSN_GATE, b, n);
}

/* HeaderEval::check_for_msn_groups_headers */
static bool hdr_msn_groups(struct filter_msg *fm)
{
	char to[HDR_BUF / 4], list[128], server[128], mid[512];
	const char *p, *e;
	size_t n, o, l, tn;
	char *b = hdr_buf();

	tn = hdr_joined(fm, "to", false, to, sizeof(to));
	/* <(\S+)@groups.msn.com> */
	p = strcasestr(to, "@groups.msn.com>");
	if (!p)
		return false;
	e = p;
	while (p > to && !isspace((unsigned char)p[-1]))
		p--;
	p = memchr(p, '<', (size_t)(e - p)) ? (const char *)memrchr(p, '<', (size_t)(e - p)) + 1 : NULL;
	if (!p || p == e || (size_t)(e - p) >= sizeof(list) || tn == 0)
		return false;
	memcpy(list, p, (size_t)(e - p));
	list[e - p] = '\0';
	n = hdr_joined(fm, "received", false, b, HDR_BUF);
	if (!hdr_match(fm, NULL, RE_MSN_PICKUP, b, n) || !hdr_group(fm, 1, &o, &l) || l >= sizeof(server))
		return false;
	memcpy(server, b + o, l);
	server[l] = '\0';
	hdr_joined(fm, "message-id", false, mid, sizeof(mid));
	if (strcmp(list, "notifications") == 0) {
		const char *at = strchr(mid, '@');

		return mid[0] == '<' && at && at > mid + 1 && strncmp(at + 1, server, l) == 0 && at[1 + l] == '>';
	}
	{
		char env[256], want[200];

		if (strncmp(mid, "<", 1) != 0 || strncmp(mid + 1, list, strlen(list)) != 0 || mid[1 + strlen(list)] != '-' ||
		    !strstr(mid, "@groups.msn.com>"))
			return false;
		if (!filter_eval_envfrom(fm, env, sizeof(env)))
			return false;
		snprintf(want, sizeof(want), "%s-bounce@groups.msn.com", list);
		return strstr(env, want) != NULL;
	}
}

/* HeaderEval::_check_for_forged_hotmail_received_headers: 1 forged (HELO'd as hotmail.com),
 * 2 a hotmail.com From without Hotmail's relays, 0 neither. */
static int hdr_hotmail(struct filter_msg *fm)
{
	char *b = hdr_buf(), from[256], v[512];
	size_t n, vn;
	bool ip, orig;

	n = hdr_joined(fm, "received", true, b, HDR_BUF);
	if (hdr_match(fm, NULL, RE_HM_PICKUP, b, n))
		return 0;
	if (hdr_msn_groups(fm))
		return 0;
	vn = hdr_joined(fm, "x-originating-ip", false, v, sizeof(v));
	ip = hdr_get(fm, "x-originating-ip", 0, false, &(size_t){ 0 }) && hdr_match(fm, NULL, RE_IP, v, vn);
	vn = hdr_joined(fm, "x-originatororg", false, v, sizeof(v));
	orig = hdr_get(fm, "x-originatororg", 0, false, &(size_t){ 0 }) && hdr_match(fm, NULL, RE_HM_ORIG, v, vn);
	if (hdr_rcvd_remover(fm))
		return 0;
	n = hdr_joined(fm, "received", true, b, HDR_BUF);
	if (ip && (hdr_match(fm, NULL, RE_HM_1, b, n) || hdr_match(fm, NULL, RE_HM_2, b, n) ||
		   hdr_match(fm, NULL, RE_HM_HTTP, b, n) || hdr_match(fm, NULL, RE_HM_YAHOO, b, n)))
		return 0;
	if (orig && (hdr_match(fm, NULL, RE_HM_OUT1, b, n) || hdr_match(fm, NULL, RE_HM_OUT2, b, n)))
		return 0;
	if (hdr_match(fm, NULL, RE_HM_FORGED, b, n))
		return 1;
	hdr_first_addr(fm, "from", from, sizeof(from));
	return hdr_ends_word(from, "hotmail.com") ? 2 : 0;
}

static bool hdr_eudoramail(struct filter_msg *fm)
{
	char *b = hdr_buf(), from[256], v[512];
	size_t n, vn;
	bool ip;

	hdr_first_addr(fm, "from", from, sizeof(from));
	if (!hdr_ends_word(from, "eudoramail.com"))
		return false;
	vn = hdr_joined(fm, "x-sender-ip", false, v, sizeof(v));
	ip = hdr_get(fm, "x-sender-ip", 0, false, &(size_t){ 0 }) && hdr_match(fm, NULL, RE_IP, v, vn);
	if (hdr_rcvd_remover(fm))
		return false;
	n = hdr_joined(fm, "received", true, b, HDR_BUF);
	return !(hdr_match(fm, NULL, RE_EUDORA, b, n) && ip);
}

static bool hdr_juno(struct filter_msg *fm)
{
	char *b = hdr_buf(), from[256], xorig[512], xm[512];
	size_t n, xon, xmn;

	hdr_first_addr(fm, "from", from, sizeof(from));
	if (!hdr_ends_word(from, "juno.com"))
		return false;
	if (hdr_rcvd_remover(fm))
		return false;
	xon = hdr_joined(fm, "x-originating-ip", false, xorig, sizeof(xorig));
	xmn = hdr_joined(fm, "x-mailer", false, xm, sizeof(xm));
	n = hdr_joined(fm, "received", false, b, HDR_BUF);
	if (xon) {
		if (!hdr_match(fm, NULL, RE_JUNO_1, b, n) && !hdr_match(fm, NULL, RE_JUNO_COOKIE, b, n))
			return true;
		return strstr(xm, "Juno ") == NULL;
	}
	if (hdr_match(fm, NULL, RE_JUNO_MAIL, b, n)) {
		if (!hdr_match(fm, NULL, RE_JUNO_XMAIL, xm, xmn))
			return true;
	} else if (hdr_match(fm, NULL, RE_JUNO_WEBMAIL, b, n)) {
		if (!hdr_match(fm, NULL, RE_JUNO_WMVER, xm, xmn))
			return true;
	} else {
		return true;
	}
	return !hdr_match(fm, NULL, RE_IP, xorig, xon);
}

static bool hdr_gmail(struct filter_msg *fm)
{
	char *b = hdr_buf(), from[256];
	size_t n, gms = 0, gss = 0, k;
	const char *v;

	hdr_first_addr(fm, "from", from, sizeof(from));
	if (!hdr_ends_word(from, "gmail.com"))
		return false;
	n = hdr_joined(fm, "x-received", false, b, HDR_BUF);
	if (hdr_match(fm, NULL, RE_GM_1, b, n) || hdr_match(fm, NULL, RE_GM_2, b, n))
		return false;
	n = hdr_joined(fm, "received", false, b, HDR_BUF);
	if (hdr_match(fm, NULL, RE_GM_3, b, n))
		return false;
	for (unsigned i = 0; (v = hdr_get(fm, "x-gm-message-state", i, false, &k)) != NULL; i++)
		gms += k + 1;
	for (unsigned i = 0; (v = hdr_get(fm, "x-google-smtp-source", i, false, &k)) != NULL; i++)
		gss += k + 1;
	return !(gms >= 60 && gss >= 60);
}

static bool hdr_fake_aol(struct filter_msg *fm)
{
	char *b = hdr_buf();
	size_t n = hdr_joined(fm, "received", true, b, HDR_BUF);

	if (!hdr_match(fm, NULL, RE_AOL, b, n))
		return false;
	return !hdr_match(fm, NULL, RE_AOL_X1, b, n) && !hdr_match(fm, NULL, RE_AOL_X2, b, n);
}

/* --- the other header tests ------------------------------------------------------------- */

static bool hdr_utf8_valid(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = s[i];
		size_t k;
		uint32_t cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			k = 1, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			k = 2, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			k = 3, cp = c & 0x07;
		else
			return false;
		for (size_t j = 1; j <= k; j++) {
			if (i + j >= n || (s[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + j] & 0x3f);
		}
		if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		i += k + 1;
	}
	return true;
}

/* HeaderEval::check_illegal_chars over Header:raw (ALL: the whole header block) */
static bool hdr_illegal(struct filter_msg *fm, const struct filter_rule *ru)
{
	bool all = strcmp(ru->eval_hdr, "ALL") == 0, subj = strcasecmp(ru->eval_hdr, "Subject") == 0;
	size_t len = 0, illegal = 0, nonascii = 0, ctl = 0, exempt = 0;
	bool valid = true, nonblank = false;

	for (uint32_t i = 0; i < fm->ntop; i++) {
		const struct filter_hdr *h = &fm->hdrs[i];
		const uint8_t *v = (const uint8_t *)fm->arena + h->raw_off;

		if (!all && !hdr_is(fm, h, ru->eval_hdr))
			continue;
		/* "Name: value\n" for ALL, "value\n" for one header */
		len += h->raw_len + 1 + (all ? h->name_len + 2 : 0);
		if (all)
			nonblank = true;
		valid &= hdr_utf8_valid(v, h->raw_len);
		for (size_t k = 0; k < h->raw_len; k++) {
			uint8_t c = v[k];

			nonblank |= !isspace(c);
			nonascii += c >= 0x80;
			ctl += c <= 0x08 || c == 0x0b || c == 0x0c || (c >= 0x0e && c <= 0x1f);
			illegal += c <= 0x08 || c == 0x0b || c == 0x0c || (c >= 0x0e && c <= 0x1f) || c >= 0x7f;
			exempt += c == 0xa2 || c == 0xa3 || c == 0xae;
		}
	}
	if (!len || !nonblank)
		return false;
	if (nonascii && valid && !ctl)
		return false;
	if (illegal > 0 && subj && exempt == 1)
		illegal--;
	return (double)illegal / (double)len >= ru->eval_arg[0] && (double)illegal >= ru->eval_arg[1];
}

/* HeaderEval::check_header_count_range: distinct values of the message's fields */
static bool hdr_count_range(struct filter_msg *fm, const struct filter_rule *ru)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < fm->ntop; i++) {
		const struct filter_hdr *h = &fm->hdrs[i];
		bool dup = false;

		if (!hdr_is(fm, h, ru->eval_hdr))
			continue;
		for (uint32_t k = 0; k < i && !dup; k++) {
			const struct filter_hdr *o = &fm->hdrs[k];

			dup = hdr_is(fm, o, ru->eval_hdr) && o->dec_len == h->dec_len &&
			      memcmp(fm->arena + o->dec_off, fm->arena + h->dec_off, h->dec_len) == 0;
		}
		n += !dup;
	}
	return n >= ru->eval_arg[0] && n <= ru->eval_arg[1];
}

static bool hdr_unresolved_template(const struct filter_msg *fm)
{
	static const char *const skip[] = { "x-vms-to", "x-uidl", "x-face", "to", "cc", "from", "subject",
					    "references", "in-reply-to", "message-id", "x-message-id",
					    "resent-message-id", "x-original-message-id" };

	for (uint32_t i = 0; i < fm->ntop; i++) {
		const struct filter_hdr *h = &fm->hdrs[i];
		const char *v = fm->arena + h->dec_off;
		bool found = false, skipped = false;

		for (size_t k = 0; k + 2 < h->dec_len; k++)
			if (v[k] == '%' && v[k + 1] >= 'A' && v[k + 1] <= 'Z' &&
			    ((v[k + 2] >= 'A' && v[k + 2] <= 'Z') || v[k + 2] == '_' || v[k + 2] == '-'))
				found = true;
		if (!found)
			continue;
		for (size_t s = 0; s < sizeof(skip) / sizeof(skip[0]); s++)
			skipped |= hdr_is(fm, h, skip[s]);
		if (!skipped)
			return true;
	}
	return false;
}

/* HeaderEval::check_for_to_in_subject */
static bool hdr_to_in_subject(struct filter_msg *fm, const struct filter_rule *ru)
{
	char to[256], subj[1024];
	size_t tl, sl;
	const char *s;

	/* :addr keeps the case */
	{
		struct hdr_addrs a;

		a.n = 0;
		hdr_addrs(fm, "to", &a);
		if (!a.n)
			return false;
		strcpy(to, a.a[0]);
	}
	sl = hdr_joined(fm, "subject", false, subj, sizeof(subj));
	while (sl && subj[sl - 1] == '\n')
		subj[--sl] = '\0';
	if (ru->eval_arg[0] == 2) {
		/* /\b\Qaddr\E\b/i */
		tl = strlen(to);
		for (s = subj; (s = strcasestr(s, to)) != NULL; s++) {
			bool b0 = s == subj || !(isalnum((unsigned char)s[-1]) || s[-1] == '_') ||
				  !(isalnum((unsigned char)to[0]) || to[0] == '_');
			bool b1 = !(isalnum((unsigned char)s[tl]) || s[tl] == '_') ||
				  !(isalnum((unsigned char)to[tl - 1]) || to[tl - 1] == '_');

			if (b0 && b1)
				return true;
		}
		return false;
	}
	if (ru->eval_arg[0] != 1)
		return false;
	*strchr(to, '@') = '\0';
	tl = strlen(to);
	if (!tl)
		return false;
	/* ^(?:re|fw):\s*(?:\w+\s+)?TO$ */
	if (sl >= 3 && (strncasecmp(subj, "re:", 3) == 0 || strncasecmp(subj, "fw:", 3) == 0)) {
		const char *r = subj + 3, *e = subj + sl;

		while (r < e && isspace((unsigned char)*r))
			r++;
		if ((size_t)(e - r) >= tl && strncasecmp(e - tl, to, tl) == 0) {
			const char *w = r, *we = e - tl;

			if (w == we)
				return true;
			while (w < we && (isalnum((unsigned char)*w) || *w == '_'))
				w++;
			if (w > r && w < we) {
				while (w < we && isspace((unsigned char)*w))
					w++;
				if (w == we)
					return true;
			}
		}
	}
	/* ^TO\s*[,:;!?-](?:$|\s) (TO's case kept) */
	if (sl >= tl && strncmp(subj, to, tl) == 0) {
		const char *r = subj + tl;

		while (*r && isspace((unsigned char)*r))
			r++;
		if (*r && strchr(",:;!?-", *r) && (r[1] == '\0' || isspace((unsigned char)r[1])))
			return true;
	}
	/* ^TO$ */
	if (sl == tl && strncasecmp(subj, to, tl) == 0)
		return true;
	/* ^,\s*TO[,:;!?-]$ */
	if (sl && subj[0] == ',') {
		const char *r = subj + 1;

		while (*r && isspace((unsigned char)*r))
			r++;
		if (strlen(r) == tl + 1 && strncasecmp(r, to, tl) == 0 && strchr(",:;!?-", r[tl]))
			return true;
	}
	return false;
}

/* HeaderEval::check_ratware_name_id */
static bool hdr_ratware_name_id(struct filter_msg *fm, const struct filter_rule *ru)
{
	char *b = hdr_buf(), id[256], from[1024];
	size_t n = 0, o = 0, l = 0;
	const char *p;

	for (uint32_t i = 0; i < fm->ntop && n + 2 < HDR_BUF; i++) {
		const struct filter_hdr *h = &fm->hdrs[i];

		if (hdr_is(fm, h, "message-id") || hdr_is(fm, h, "resent-message-id") || hdr_is(fm, h, "x-message-id")) {
			n = hdr_unfold(fm->arena + h->dec_off, h->dec_len, b, n, HDR_BUF);
			b[n++] = '\n';
		}
	}
	if (!hdr_match(fm, ru, RE_RATWARE_MID, b, n) || !hdr_group(fm, 1, &o, &l) || l + 3 > sizeof(id))
		return false;
	id[0] = '<';
	memcpy(id + 1, b + o, l);
	id[l + 1] = '>';
	id[l + 2] = '\0';
	hdr_joined(fm, "from", false, from, sizeof(from));
	for (p = from; (p = strstr(p, id)) != NULL; p++) {
		const char *q = p;

		while (q > from && isspace((unsigned char)q[-1]))
			q--;
		if (q - from >= 3 && q[-1] == '"') {
			const char *r = q - 1;

			while (r > from && r[-1] != '"')
				r--;
			if (r > from && r < q - 1)
				return true;
		}
	}
	return false;
}

/* HeaderEval::check_ratware_envelope_from: the envelope sender is "dom.user@..." of To's */
static bool hdr_ratware_efrom(struct filter_msg *fm)
{
	char to[256], env[256], *at, *dom;
	const char *p, *d;
	size_t dl, ul;
	int dots = 0;

	hdr_first_addr(fm, "to", to, sizeof(to));
	if (!to[0] || !filter_eval_envfrom(fm, env, sizeof(env)) || !env[0])
		return false;
	if (strncasecmp(env, "srs", 3) == 0 && isdigit((unsigned char)env[3]) && env[4] && strchr("=+-", env[4]))
		return false;
	at = strchr(to, '@');
	if (!at || at == to || !at[1])
		return false;
	*at = '\0';
	dom = at + 1;
	/* trim_domain, the common case: the last two labels */
	d = dom + strlen(dom);
	for (p = d; p > dom; p--)
		if (p[-1] == '.' && ++dots == 2)
			break;
	d = p;
	/* is_domain_valid: a TLD of letters that is delegated (RFC 2606's are not) */
	{
		static const char *const reserved[] = { "example", "test", "invalid", "localhost", "local",
						       "localdomain", "lan", "home", "internal" };
		const char *tld = strrchr(d, '.');

		if (!tld || tld == d || strlen(tld + 1) < 2)
			return false;
		for (const char *c = tld + 1; *c; c++)
			if (!isalpha((unsigned char)*c))
				return false;
		for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
			if (strcasecmp(tld + 1, reserved[i]) == 0)
				return false;
	}
	dl = strlen(d);
	ul = strlen(to);
	for (p = env; (p = strcasestr(p, d)) != NULL; p++) {
		bool b0 = p == env || !(isalnum((unsigned char)p[-1]) || p[-1] == '_');

		if (b0 && p[dl] && strncasecmp(p + dl + 1, to, ul) == 0 && p[dl + 1 + ul] == '@')
			return true;
	}
	return false;
}

/* --- dates (Util::parse_rfc822_date, HeaderEval::_check_date_diff) ----------------------- */

static int hdr_month(const char *m)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";

	for (int i = 0; i < 12; i++)
		if (strncasecmp(m, months + 3 * i, 3) == 0)
			return i + 1;
	return 0;
}

static long hdr_tz(const char *z, size_t n)
{
	static const struct { const char *z; int off; } tz[] = {
		{ "UT", 0 }, { "UTC", 0 }, { "NDT", -230 }, { "AST", -400 }, { "ADT", -300 }, { "NST", -330 },
		{ "EST", -500 }, { "EDT", -400 }, { "CST", -600 }, { "CDT", -500 }, { "MST", -700 },
		{ "MDT", -600 }, { "PST", -800 }, { "PDT", -700 }, { "HST", -1000 }, { "AKST", -900 },
		{ "AKDT", -800 }, { "HADT", -900 }, { "HAST", -1000 }, { "GMT", 0 }, { "BST", 100 },
		{ "IST", 100 }, { "WET", 0 }, { "WEST", 100 }, { "CET", 100 }, { "CEST", 200 }, { "EET", 200 },
		{ "EEST", 300 }, { "MSK", 300 }, { "MSD", 400 }, { "MET", 100 }, { "MEZ", 100 },
		{ "MEST", 200 }, { "MESZ", 200 }, { "BRST", -200 }, { "BRT", -300 }, { "AEST", 1000 },
		{ "AEDT", 1100 }, { "ACST", 930 }, { "ACDT", 1030 }, { "AWST", 800 }, { "NZST", 1200 },
		{ "NZDT", 1300 }, { "JST", 900 }, { "KST", 900 }, { "HKT", 800 }, { "SGT", 800 },
		{ "PHT", 800 }, { "IDT", 300 },
	};

	for (size_t i = 0; i < sizeof(tz) / sizeof(tz[0]); i++)
		if (strlen(tz[i].z) == n && strncmp(z, tz[i].z, n) == 0)
			return tz[i].off;
	return LONG_MIN;
}

/* Replaces the last match (group 0) of buf with one space. */
static size_t hdr_cut(const struct filter_msg *fm, char *buf, size_t n)
{
	size_t o, l;

	if (!hdr_group(fm, 0, &o, &l))
		return n;
	buf[o] = ' ';
	memmove(buf + o + 1, buf + o + l, n - o - l + 1);
	return n - l + 1;
}

static long hdr_atol(const char *s, size_t n)
{
	long v = 0;

	for (size_t i = 0; i < n && i < 9; i++)
		v = v * 10 + (s[i] - '0');
	return v;
}

/* parse_rfc822_date: seconds since the epoch, or false */
static bool hdr_parse_date(struct filter_msg *fm, const char *date, size_t dn, int64_t *t_r)
{
	char buf[512];
	size_t n = 0, o = 0, l = 0;
	long yyyy = 0, dd = 0, mon = 0, hh = 0, mm = 0, ss = 0, tz = LONG_MIN;
	struct tm tm;
	int64_t t;

	/* " $date ", ", *" -> " ", "\s+" -> " " */
	buf[n++] = ' ';
	for (size_t i = 0; i < dn && n + 3 < sizeof(buf); i++) {
		char c = date[i];

		if (c == ',') {
			while (i + 1 < dn && date[i + 1] == ' ')
				i++;
			c = ' ';
		}
		if (isspace((unsigned char)c)) {
			if (buf[n - 1] == ' ')
				continue;
			c = ' ';
		}
		buf[n++] = c;
	}
	if (buf[n - 1] != ' ')
		buf[n++] = ' ';
	buf[n] = '\0';
	if (hdr_match(fm, NULL, RE_D_1, buf, n)) {
		hdr_group(fm, 1, &o, &l), dd = hdr_atol(buf + o, l);
		hdr_group(fm, 2, &o, &l), mon = hdr_month(buf + o);
		hdr_group(fm, 3, &o, &l), yyyy = hdr_atol(buf + o, l);
	} else if (hdr_match(fm, NULL, RE_D_2, buf, n)) {
		hdr_group(fm, 2, &o, &l), dd = hdr_atol(buf + o, l);
		hdr_group(fm, 1, &o, &l), mon = hdr_month(buf + o);
		hdr_group(fm, 3, &o, &l), yyyy = hdr_atol(buf + o, l);
	} else if (hdr_match(fm, NULL, RE_D_3, buf, n)) {
		hdr_group(fm, 1, &o, &l), dd = hdr_atol(buf + o, l);
		hdr_group(fm, 2, &o, &l), mon = hdr_month(buf + o);
		hdr_group(fm, 3, &o, &l), yyyy = hdr_atol(buf + o, l);
		if (l == 2 && yyyy < 50)
			yyyy += 2000;
		else
			yyyy += 1900;
	} else {
		return false;
	}
	n = hdr_cut(fm, buf, n);
	if (hdr_match(fm, NULL, RE_D_TIME, buf, n)) {
		hdr_group(fm, 1, &o, &l), hh = hdr_atol(buf + o, l);
		hdr_group(fm, 2, &o, &l), mm = hdr_atol(buf + o, l);
		if (hdr_group(fm, 4, &o, &l))
			ss = hdr_atol(buf + o, l);
		n = hdr_cut(fm, buf, n);
	}
	if (hdr_match(fm, NULL, RE_D_NUMTZ, buf, n)) {
		hdr_group(fm, 1, &o, &l);
		tz = (buf[o] == '-' ? -1 : 1) * hdr_atol(buf + o + 1, 4);
	} else if (hdr_match(fm, NULL, RE_D_TZ, buf, n)) {
		hdr_group(fm, 1, &o, &l);
		tz = hdr_tz(buf + o, l);
	}
	if (tz == LONG_MIN)
		tz = 0;
	if (ss > 59)
		ss = 59;
	if (mm > 59)
		mm = 59;
	if (hh > 23)
		hh = 23;
	{
		long max_dd = 31;

		if (mon == 4 || mon == 6 || mon == 9 || mon == 11)
			max_dd = 30;
		else if (mon == 2)
			max_dd = (!(yyyy % 4) && ((yyyy % 100) || !(yyyy % 400))) ? 29 : 28;
		if (dd > max_dd) {
			dd = 1;
			if (++mon > 12) {
				mon = 1;
				yyyy++;
			}
		}
	}
	if (yyyy > 2037)
		yyyy = 2037;
	else if (yyyy < 1970)
		yyyy = 1970;
	/* Time::Local croaks on a day 0 or a month 0: no date */
	if (dd < 1 || mon < 1)
		return false;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = (int)yyyy - 1900;
	tm.tm_mon = (int)mon - 1;
	tm.tm_mday = (int)dd;
	tm.tm_hour = (int)hh;
	tm.tm_min = (int)mm;
	tm.tm_sec = (int)ss;
	t = (int64_t)timegm(&tm);
	{
		long off = ((labs(tz) / 100) * 60 + labs(tz) % 100) * 60;

		if (tz < 0)
			t += off;
		else if (t < off)
			t = 0;
		else
			t -= off;
	}
	*t_r = t;
	return true;
}

double filter_eval_header_date_diff(struct filter_msg *fm)
{
	static const char *const names[] = { "resent-date", "date" };
	char *b = hdr_buf(), line[1024];
	const char *lines[64];
	size_t lens[64], nl = 0, n, o = 0, l = 0;
	unsigned first = 0;
	int64_t date = 0, times[64], best = 0;
	unsigned nt = 0;
	bool have = false;
	const char *v;

	if (!fm->db->ev_header)
		return 0;
	for (unsigned k = 0; k < 2 && !have; k++)
		for (unsigned i = 0; !have && (v = hdr_get(fm, names[k], i, false, &n)) != NULL; i++) {
			size_t un;

			if (!n)
				continue;
			un = hdr_unfold(v, n, line, 0, sizeof(line));
			have = hdr_parse_date(fm, line, un, &date);
		}
	if (!have)
		return 0;
	/* get('Received') split on "\n", blank ones dropped */
	n = hdr_joined(fm, "received", false, b, HDR_BUF);
	for (size_t s = 0; s < n && nl < 64;) {
		const char *e = memchr(b + s, '\n', n - s);
		size_t ln = e ? (size_t)(e - (b + s)) : n - s;
		bool blank = true;

		for (size_t k = 0; k < ln; k++)
			blank &= isspace((unsigned char)b[s + k]) != 0;
		if (!blank) {
			lines[nl] = b + s;
			lens[nl++] = ln;
		}
		s += ln + 1;
	}
	if (!nl)
		return 0;
	/* a fetchmail set-up's local hops: the first (local delivery) and the pick-up */
	{
		static const char *const local[] = { "from localhost ", "from localhost\t" };
		bool is_local = false;

		for (size_t k = 0; k < 2; k++)
			is_local |= memmem(lines[0], lens[0], local[k], strlen(local[k])) != NULL;
		/* (?:\S+ ){1,2}\S*\b127\.0\.0\.1\b after "from ", or qmail's "invoked by uid" */
		if (!is_local) {
			const char *f = memmem(lines[0], lens[0], "from ", 5), *ip;

			if (f && (ip = memmem(f, lens[0] - (size_t)(f - lines[0]), "127.0.0.1", 9)) != NULL) {
				unsigned spaces = 0;

				for (const char *q = f + 5; q < ip; q++)
					spaces += *q == ' ';
				is_local = spaces >= 1 && spaces <= 2;
			}
			is_local |= memmem(lines[0], lens[0], "qmail ", 6) && memmem(lines[0], lens[0], " invoked by uid ", 16);
		}
		if (is_local && nl > 1 && memmem(lines[1], lens[1], "by localhost with ", 18) &&
		    memmem(lines[1], lens[1], "(fetchmail-", 11))
			first = 2;
		else if (!is_local && memmem(lines[0], lens[0], "by localhost with ", 18) &&
			 memmem(lines[0], lens[0], "(fetchmail-", 11))
			first = 1;
	}
	for (unsigned i = first; i < nl; i++) {
		int64_t t;

		if (!hdr_match(fm, NULL, RE_RCVD_DATE, lines[i], lens[i]) || !hdr_group(fm, 1, &o, &l))
			continue;
		if (l >= sizeof(line))
			continue;
		memcpy(line, lines[i] + o, l);
		if (hdr_parse_date(fm, line, l, &t) && nt < 64)
			times[nt++] = t;
	}
	if (!nt)
		return 0;
	if (nt > 1 && date - times[nt - 1] == 0)
		nt--;
	have = false;
	for (unsigned i = 0; i < nt; i++) {
		int64_t d = date - times[i];

		if (!have || llabs(d) < llabs(best)) {
			best = d;
			have = true;
		}
	}
	return (double)best;
}

/* --- relays ----------------------------------------------------------------------------- */

uint32_t filter_eval_header_untrusted_from(const struct filter_msg *fm)
{
	uint32_t seen = 0;

	for (uint32_t i = 0; i < fm->ntop; i++)
		if (hdr_is(fm, &fm->hdrs[i], "received") && seen++ == fm->ev_header.rcvd_trusted)
			return i;
	return fm->ntop;
}

static bool hdr_relay_envfrom(const char *relay, const char *end, char *out, size_t outlen)
{
	const char *p = memmem(relay, (size_t)(end - relay), " envfrom=", 9);
	size_t k = 0;

	if (!p)
		return false;
	for (p += 9; p < end && *p != ' ' && k + 1 < outlen; p++)
		out[k++] = (char)tolower((unsigned char)*p);
	out[k] = '\0';
	return k && strchr(out, '@') && out[0] != '@';
}

bool filter_eval_header_relay_envfrom(const struct filter_msg *fm, char *out, size_t outlen)
{
	const char *e;

	if (fm->n_untrusted) {
		e = memchr(fm->relays_u, ']', fm->relays_u_len);
		return e && hdr_relay_envfrom(fm->relays_u, e, out, outlen);
	}
	if (fm->n_trusted) {
		const char *s = fm->relays_t + fm->relays_t_len;

		while (s > fm->relays_t && s[-1] != '[')
			s--;
		return hdr_relay_envfrom(s, fm->relays_t + fm->relays_t_len, out, outlen);
	}
	return false;
}

/* RelayEval::hostname_to_domain, lower-cased, in place */
static void hdr_host_domain(char *h)
{
	char *last = strrchr(h, '.'), *p;
	size_t n = 0, labels = 1;
	bool alpha = false;

	for (p = h; *p; p++) {
		*p = (char)tolower((unsigned char)*p);
		alpha |= isalpha((unsigned char)*p) != 0;
		labels += *p == '.';
	}
	if (!alpha || labels < 2)
		return;
	/* the last label of 3 or more (non-blank) characters, or ie, fr, de: two labels; else three */
	{
		const char *t = last + 1;
		bool keep2 = strlen(t) >= 3 || strstr(t, "ie") || strstr(t, "fr") || strstr(t, "de");
		size_t want = keep2 ? 2 : labels > 2 ? 3 : labels;

		for (p = h + strlen(h); p > h; p--)
			if (p[-1] == '.' && ++n == want)
				break;
		memmove(h, p, strlen(p) + 1);
	}
}

/* /^\w+(?:[\w.-]+\.)+\w+$/ */
static bool hdr_hostlike(const char *s)
{
	const char *lastdot = strrchr(s, '.');

	if (!lastdot || !s[0] || !(isalnum((unsigned char)s[0]) || s[0] == '_') || !lastdot[1])
		return false;
	for (const char *p = s; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '.' || *p == '-'))
			return false;
	for (const char *p = lastdot + 1; *p; p++)
		if (!(isalnum((unsigned char)*p) || *p == '_'))
			return false;
	/* \w+ then at least one more character before the last dot */
	return lastdot - s >= 2;
}

static void hdr_relay_field(const char *s, const char *e, const char *key, char *out, size_t outlen)
{
	const char *p = memmem(s, (size_t)(e - s), key, strlen(key));
	size_t n = 0;

	if (p)
		for (p += strlen(key); p < e && *p != ' ' && n + 1 < outlen; p++)
			out[n++] = *p;
	out[n] = '\0';
}

/* RelayEval::check_for_forged_received_trail: more than one untrusted relay whose "by" is not
 * the domain the next newer relay found for its client */
static bool hdr_forged_trail(const struct filter_msg *fm)
{
	const char *p = fm->relays_u, *e = fm->relays_u + fm->relays_u_len;
	char prev[128] = "", by[128], rdns[128], ip[48];
	bool have_prev = false;
	unsigned mismatch = 0;

	while (p < e) {
		const char *open = memchr(p, '[', (size_t)(e - p)), *close;

		if (!open || !(close = memchr(open, ']', (size_t)(e - open))))
			break;
		hdr_relay_field(open, close, " by=", by, sizeof(by));
		hdr_relay_field(open, close, " rdns=", rdns, sizeof(rdns));
		hdr_relay_field(open, close, " ip=", ip, sizeof(ip));
		hdr_host_domain(by);
		hdr_host_domain(rdns);
		p = close + 1;
		if (hdr_hostlike(by) && have_prev && hdr_hostlike(prev) && strcmp(by, prev) != 0 &&
		    !(strcmp(by, "msn.com") == 0 && strcmp(prev, "hotmail.com") == 0))
			mismatch++;
		/* localhost through 127.0.0.1 is no claim */
		have_prev = !((strcmp(rdns, "localhost") == 0 || strcmp(rdns, "localhost.localdomain") == 0) &&
			      strcmp(ip, "127.0.0.1") == 0);
		strcpy(prev, rdns);
	}
	return mismatch > 1;
}

/* RegistryBoundaries::split_domain's domain, loosely: the last two labels, three when the last
 * two are a registry's second level (co.uk, com.au, ne.jp: a common second-level word under a
 * two-letter country code). Lower-cased into out. */
static void hdr_reg_domain(const char *host, char *out, size_t outlen)
{
	static const char *const sld[] = { "com", "net", "org", "gov", "edu", "mil", "co", "ac", "info",
					   "biz", "int", "nom", "sch", "name", "gob", "pro", "web", "go",
					   "or", "ne", "med", "ltd", "plc", "gen", "ind", "asso", "tm",
					   "lg", "ed", "gr", "ad", "nic" };
	const char *s = host, *p, *dots[3] = { NULL, NULL, NULL };
	size_t k = 0, n = 0;

	while (*s == '.')
		s++;
	for (p = s + strlen(s); p > s; p--)
		if (p[-1] == '.') {
			dots[n++] = p - 1;
			if (n == 3)
				break;
		}
	p = s;
	if (n >= 2) {
		const char *tld = dots[0] + 1, *second = dots[1] + 1;
		size_t sl = (size_t)(dots[0] - second);
		bool two = false;

		if (strlen(tld) == 2)
			for (size_t i = 0; i < sizeof(sld) / sizeof(sld[0]) && !two; i++)
				two = strlen(sld[i]) == sl && strncasecmp(second, sld[i], sl) == 0;
		p = two ? (n == 3 ? dots[2] + 1 : s) : second;
	}
	for (; *p; p++) {
		if (k + 1 >= outlen)
			break;
		out[k++] = (char)tolower((unsigned char)*p);
	}
	while (k && out[k - 1] == '.')
		k--;
	out[k] = '\0';
}

/* WLBLEval::check_mailfrom_matches_rcvd: the envelope sender's domain is that of the first
 * untrusted relay's rDNS (of any trusted relay's when all are trusted) */
static bool hdr_mailfrom_rcvd(const struct filter_msg *fm)
{
	char env[256], ad[256], rd[256], rdns[FILTER_EVAL_HDR_EMAIL_LEN];
	const char *at, *p, *e;
	bool first_only = fm->n_untrusted > 0;

	if (!filter_eval_envfrom(fm, env, sizeof(env)) || !env[0])
		return false;
	at = strrchr(env, '@');
	if (!at || !at[1] || !strchr(at + 1, '.') || at[1] == '.' || at[strlen(at) - 1] == '.')
		return false;
	hdr_reg_domain(at + 1, ad, sizeof(ad));
	p = first_only ? fm->relays_u : fm->relays_t;
	e = p + (first_only ? fm->relays_u_len : fm->relays_t_len);
	while (p < e) {
		const char *open = memchr(p, '[', (size_t)(e - p)), *close;

		if (!open || !(close = memchr(open, ']', (size_t)(e - open))))
			break;
		hdr_relay_field(open, close, " rdns=", rdns, sizeof(rdns));
		if (rdns[0]) {
			hdr_reg_domain(rdns, rd, sizeof(rd));
			if (strcmp(ad, rd) == 0)
				return true;
		}
		if (first_only)
			break;
		p = close + 1;
	}
	return false;
}

/* --- the tests -------------------------------------------------------------------------- */

bool filter_eval_header_test(struct filter_msg *fm, const struct filter_rule *ru)
{
	bool sorted;
	double similar;

	if (!fm->db->ev_header)
		return false;
	switch (ru->eval) {
	case RULES_EVAL_HDR_FREEMAIL_REPLYTO:
		return hdr_freemail_replyto(fm, false);
	case RULES_EVAL_HDR_FREEMAIL_REPLY:
		return hdr_freemail_replyto(fm, true);
	case RULES_EVAL_HDR_SORTED_RECIPS:
	case RULES_EVAL_HDR_SIMILAR_RECIPS:
		if (fm->ev_header.sorted < 0) {
			hdr_recips(fm, &sorted, &similar);
			fm->ev_header.sorted = sorted;
			fm->ev_header.similar = similar;
		}
		if (ru->eval == RULES_EVAL_HDR_SORTED_RECIPS)
			return fm->ev_header.sorted;
		similar = fm->ev_header.similar;
		return (ru->eval_arg[0] == HDR_UNDEF || similar >= ru->eval_arg[0]) &&
		       (ru->eval_arg[1] == HDR_UNDEF || similar < ru->eval_arg[1]);
	case RULES_EVAL_HDR_FAKE_AOL:
		return hdr_fake_aol(fm);
	case RULES_EVAL_HDR_FORGED_HOTMAIL:
	case RULES_EVAL_HDR_NO_HOTMAIL:
		if (fm->ev_header.hotmail < 0)
			fm->ev_header.hotmail = (int8_t)hdr_hotmail(fm);
		return fm->ev_header.hotmail == (ru->eval == RULES_EVAL_HDR_FORGED_HOTMAIL ? 1 : 2);
	case RULES_EVAL_HDR_FORGED_EUDORAMAIL:
		return hdr_eudoramail(fm);
	case RULES_EVAL_HDR_FORGED_GMAIL:
		return hdr_gmail(fm);
	case RULES_EVAL_HDR_FORGED_JUNO:
		return hdr_juno(fm);
	case RULES_EVAL_HDR_ILLEGAL_CHARS:
		return ru->eval_hdr && hdr_illegal(fm, ru);
	case RULES_EVAL_HDR_COUNT_RANGE:
		return ru->eval_hdr && hdr_count_range(fm, ru);
	case RULES_EVAL_HDR_UNRESOLVED_TEMPLATE:
		return hdr_unresolved_template(fm);
	case RULES_EVAL_HDR_TO_IN_SUBJECT:
		return hdr_to_in_subject(fm, ru);
	case RULES_EVAL_HDR_RCVD_REMOVER:
		return hdr_rcvd_remover(fm);
	case RULES_EVAL_HDR_RATWARE_NAME_ID:
		return hdr_ratware_name_id(fm, ru);
	case RULES_EVAL_HDR_RATWARE_EFROM:
		return hdr_ratware_efrom(fm);
	case RULES_EVAL_HDR_FORGED_TRAIL:
		return hdr_forged_trail(fm);
	case RULES_EVAL_HDR_MAILFROM_RCVD:
		return hdr_mailfrom_rcvd(fm);
	default:
		return false;
	}
}
