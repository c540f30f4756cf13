/*
 * filter_eval.c - the eval: tests Sluice implements natively (enum rules_eval), ported from
 * SpamAssassin 4.0's Plugin::HeaderEval, MIMEEval and HTMLEval, so that SpamAssassin's rule
 * sets keep the tests (and the metas built on them) that score most.
 *
 * Shard thread, at the end of a message, before the metas; reads the message's header fields
 * (struct filter_msg) and the part counts the MIME sink kept. No allocation.
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "filter_types.h"

#define FILTER_EVAL_UNDEF 1e300
#define FILTER_EVAL_TOK   128

int filter_eval_prepare(struct filter_rule *ru, const char *args, size_t len)
{
	char buf[128];
	char *p = buf;

	ru->eval_arg[0] = ru->eval_arg[1] = FILTER_EVAL_UNDEF;
	if (len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, args, len);
	buf[len] = '\0';
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

/* HeaderEval::_check_date_diff: Date (or Resent-Date) minus the Received times, the one
 * closest to zero; 0 when either is missing. */
static double filter_eval_date_diff(const struct filter_msg *fm)
{
	const char *names[] = { "resent-date", "date" };
	int64_t date = 0, t, best = 0;
	bool have_date = false, have = false;
	unsigned nr = filter_eval_count(fm, "received"), first = 0;
	int64_t times[64];
	unsigned nt = 0;
	size_t n;
	const char *v;

	for (unsigned k = 0; k < 2 && !have_date; k++)
		for (unsigned i = 0; !have_date && (v = filter_eval_hdr(fm, names[k], i, false, &n)); i++)
			have_date = n && filter_eval_date(v, n, &date);
	if (!have_date || !nr)
		return 0;
	/* the local hops a fetchmail set-up adds are not the message's path */
	v = filter_eval_hdr(fm, "received", 0, false, &n);
	if (v && ((filter_eval_has(v, n, "from localhost ") || (filter_eval_has(v, n, "from ") &&
	     filter_eval_has(v, n, "127.0.0.1"))) || (filter_eval_has(v, n, "qmail ") &&
	     filter_eval_has(v, n, "invoked by uid")))) {
		const char *v2 = nr > 1 ? filter_eval_hdr(fm, "received", 1, false, &n) : NULL;

		if (v2 && filter_eval_has(v2, n, "by localhost with ") && filter_eval_has(v2, n, "(fetchmail-"))
			first = 2;
		else
			first = 0;
	}
	for (unsigned i = first; i < nr && nt < 64; i++) {
		v = filter_eval_hdr(fm, "received", i, false, &n);
		if (v && filter_eval_rcvd_date(v, n, &t))
			times[nt++] = t;
	}
	if (!nt)
		return 0;
	if (nt > 1 && date - times[nt - 1] == 0)
		nt--;
	for (unsigned i = 0; i < nt; i++) {
		int64_t d = date - times[i];

		if (!have || llabs(d) < llabs(best)) {
			best = d;
			have = true;
		}
	}
	return (double)best;
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

	if (!at || !at[1])
		return false;
	dom = at + 1;
	if (bsearch(&dom, db->fm_exact, db->nfm_exact, sizeof(char *), filter_eval_strcmp))
		return true;
	for (uint32_t i = 0; i < db->nfm_wild; i++)
		if (fnmatch(db->fm_wild[i], dom, 0) == 0)
			return true;
	return false;
}

/* The first address of a field value (":addr"), lower-cased, into out. */
static bool filter_eval_addr(const char *v, size_t n, char *out, size_t outlen)
{
	const char *e = v + n, *lt = memchr(v, '<', n), *a, *ae;
	size_t k = 0;

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
	if (ae == a || !memchr(a, '@', (size_t)(ae - a)))
		return false;
	for (; a < ae && k + 1 < outlen; a++)
		out[k++] = (char)tolower((unsigned char)*a);
	out[k] = '\0';
	return true;
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
	v = filter_eval_hdr(fm, "x-sender", 0, false, &n);
	if (v && memchr(v, '@', n))
		for (unsigned i = 0; (v = filter_eval_hdr(fm, "received", i, false, &n)) != NULL; i++)
			if (filter_eval_has(v, n, "(fetchmail"))
				return false;
	for (size_t k = 0; k < sizeof(hdrs) / sizeof(hdrs[0]); k++) {
		uint32_t at = filter_eval_index(fm, hdrs[k]);

		if (at == UINT32_MAX)
			continue;
		if (first_rcvd != UINT32_MAX && first_rcvd < at) {
			if (k == 0)
				return false;   /* X-Envelope-From below a Received: not ours to trust */
			continue;
		}
		v = filter_eval_hdr(fm, hdrs[k], 0, false, &n);
		return v && filter_eval_addr(v, n, out, outlen);
	}
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

static bool filter_eval_freemail_in(const struct filter_msg *fm, const struct filter_rule *ru,
				    const char *hdr)
{
	char addr[256];
	size_t n;
	const char *v;

	if (strcasecmp(hdr, "EnvelopeFrom") == 0)
		return filter_eval_envfrom(fm, addr, sizeof(addr)) && filter_eval_is_freemail(fm->db, addr) &&
		       (!ru->eval_re || pcre2_match(ru->eval_re, (PCRE2_SPTR)addr, strlen(addr), 0, 0,
						    fm->fs->md, fm->fs->mctx) >= 0);
	for (unsigned i = 0; (v = filter_eval_hdr(fm, hdr, i, false, &n)) != NULL; i++) {
		if (!filter_eval_addr(v, n, addr, sizeof(addr)) || !filter_eval_is_freemail(fm->db, addr))
			continue;
		if (ru->eval_re && pcre2_match(ru->eval_re, (PCRE2_SPTR)addr, strlen(addr), 0, 0,
					       fm->fs->md, fm->fs->mctx) < 0)
			continue;
		return true;
	}
	return false;
}

/* all_from_addrs: Resent-From if any, else From and the envelope-sender headers. */
static bool filter_eval_freemail_from(const struct filter_msg *fm, const struct filter_rule *ru)
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
		    (hl == dl || r->helo[hl - dl - 1] == '.') && r->rdns[0] == '\0')
			*last = 1;
	}
	return false;   /* every relay: the last one decides, as in RelayEval */
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
				diff = filter_eval_date_diff(fm);
				have_diff = true;
			}
			hit = (ru->eval_arg[0] == FILTER_EVAL_UNDEF || diff >= 3600 * ru->eval_arg[0]) &&
			      (ru->eval_arg[1] == FILTER_EVAL_UNDEF || diff < 3600 * ru->eval_arg[1]);
			break;
		case RULES_EVAL_SUBJ_ALL_CAPS:
			hit = filter_eval_subj_caps(fm);
			break;
		case RULES_EVAL_MISSING_TO:
			v = filter_eval_hdr(fm, "to", 0, false, &n);
			if (filter_eval_blank(v, n))
				v = filter_eval_hdr(fm, "apparently-to", 0, false, &n);
			hit = filter_eval_blank(v, n);
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
		default:
			break;
		}
		if (hit)
			filter_bit_set(fm->hits, i);
	}
}
