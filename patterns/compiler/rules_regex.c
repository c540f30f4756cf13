/*
 * rules_regex.c - Perl regex -> Hyperscan and PCRE2 (see rules_regex.h).
 *
 * One pass over the pattern that tracks escapes, character classes and x-mode; it writes the
 * Hyperscan text and the PCRE2 text side by side, since the two differ only where Hyperscan
 * needs a relaxed or renamed construct.
 */
#include <ctype.h>
#include <errno.h>
#include <hs/hs.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "rules_regex.h"

struct rules_regex_out {
	char  *p;
	size_t len, cap;
	bool   oom;
};

static void rules_regex_put(struct rules_regex_out *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = (o->len + n + 1) * 2 + 32;
		char *np = realloc(o->p, cap);

		if (!np) {
			o->oom = true;
			return;
		}
		o->p = np;
		o->cap = cap;
	}
	memcpy(o->p + o->len, s, n);
	o->len += n;
	o->p[o->len] = '\0';
}

static void rules_regex_both(struct rules_regex_out *h, struct rules_regex_out *pc, const char *s,
			     size_t n)
{
	rules_regex_put(h, s, n);
	rules_regex_put(pc, s, n);
}

/* A literal byte, escaped so that it means itself in either engine. */
static void rules_regex_literal(struct rules_regex_out *h, struct rules_regex_out *pc,
				unsigned char c)
{
	char tmp[8];

	if (isalnum(c) || c == '_' || c == ' ')
		tmp[0] = (char)c, tmp[1] = '\0';
	else if (c >= 0x21 && c < 0x7f)
		tmp[0] = '\\', tmp[1] = (char)c, tmp[2] = '\0';
	else {
		static const char hex[] = "0123456789abcdef";

		tmp[0] = '\\', tmp[1] = 'x', tmp[2] = hex[c >> 4], tmp[3] = hex[c & 15], tmp[4] = '\0';
	}
	rules_regex_both(h, pc, tmp, strlen(tmp));
}

/* Is the Hyperscan text so far empty up to an alternative or group start (where '^' is an
 * ordinary anchor)? */
static bool rules_regex_at_start(const struct rules_regex_out *h)
{
	size_t n = h->len;

	if (n == 0)
		return true;
	if (h->p[n - 1] == '(' || h->p[n - 1] == '|' || h->p[n - 1] == '^')
		return true;
	if (n >= 3 && h->p[n - 1] == ':' && h->p[n - 2] == '?' && h->p[n - 3] == '(')
		return true;
	/* after an inline flag group such as "(?i)" */
	if (h->p[n - 1] == ')') {
		size_t k = n - 1;

		while (k > 0 && (isalpha((unsigned char)h->p[k - 1]) || h->p[k - 1] == '-'))
			k--;
		if (k >= 2 && h->p[k - 1] == '?' && h->p[k - 2] == '(')
			return rules_regex_at_start(&(struct rules_regex_out){ .p = h->p, .len = k - 2 });
	}
	return false;
}

void rules_regex_clear(struct rules_regex *rx)
{
	free(rx->hs);
	free(rx->pcre);
	rx->hs = rx->pcre = NULL;
}

int rules_regex_translate(const char *re, const char *flags, bool lines, struct rules_regex *out)
{
	struct rules_regex_out h = { 0 }, pc = { 0 };
	bool x = strchr(flags, 'x') != NULL;
	bool in_class = false;
	size_t class_start = 0;
	size_t n = strlen(re);
	int rc = 0;

	memset(out, 0, sizeof(*out));
	for (size_t i = 0; i < n && rc == 0;) {
		unsigned char c = (unsigned char)re[i];

		if (c == '\\') {
			unsigned char d = (unsigned char)re[i + 1];

			if (!d) {
				rc = -EINVAL;
				break;
			}
			if (!in_class && d == 'Q') {
				i += 2;
				while (i < n && !(re[i] == '\\' && re[i + 1] == 'E'))
					rules_regex_literal(&h, &pc, (unsigned char)re[i++]);
				if (i < n)
					i += 2;
				continue;
			}
			if (d == 'E') {  /* a stray \E means nothing */
				i += 2;
				continue;
			}
			if (!in_class && lines && d == 'A') {
				rules_regex_both(&h, &pc, "^", 1);
				i += 2;
				continue;
			}
			if (!in_class && lines && (d == 'z' || d == 'Z')) {
				rules_regex_both(&h, &pc, "$", 1);
				i += 2;
				continue;
			}
			if (!in_class && ((d >= '1' && d <= '9') || d == 'g' || d == 'k'))
				out->features |= RULES_RX_BACKREF;
			if (!in_class && (d == 'G' || d == 'K'))
				out->features |= RULES_RX_OTHER;
			rules_regex_both(&h, &pc, re + i, 2);
			i += 2;
			/* \x{..} \p{..} \N{..} \o{..}: copy the braces whole */
			if ((d == 'x' || d == 'p' || d == 'P' || d == 'N' || d == 'o') && re[i] == '{') {
				const char *e = strchr(re + i, '}');

				if (!e) {
					rc = -EINVAL;
					break;
				}
				rules_regex_both(&h, &pc, re + i, (size_t)(e - (re + i)) + 1);
				i = (size_t)(e - re) + 1;
			} else if (d == 'c' && re[i]) {
				rules_regex_both(&h, &pc, re + i, 1);
				i++;
			}
			continue;
		}
		if (in_class) {
			if (c == '[' && (re[i + 1] == ':' || re[i + 1] == '.' || re[i + 1] == '=')) {
				char term[3] = { re[i + 1], ']', '\0' };
				const char *e = strstr(re + i + 2, term);

				if (e) {
					rules_regex_both(&h, &pc, re + i, (size_t)(e - (re + i)) + 2);
					i = (size_t)(e - re) + 2;
					continue;
				}
			}
			if (c == ']' && i != class_start)
				in_class = false;
			rules_regex_both(&h, &pc, re + i, 1);
			i++;
			continue;
		}
		if (x && (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v')) {
			i++;
			continue;
		}
		if (x && c == '#') {
			while (i < n && re[i] != '\n')
				i++;
			continue;
		}
		if (c == '[') {
			in_class = true;
			rules_regex_both(&h, &pc, "[", 1);
			i++;
			if (re[i] == '^') {
				rules_regex_both(&h, &pc, "^", 1);
				i++;
			}
			class_start = i;  /* a ']' right here is a literal */
			continue;
		}
		if (c == '(' && re[i + 1] == '?') {
			const char *g = re + i + 2;

			if (g[0] == '#') {
				const char *e = strchr(g, ')');

				if (!e) {
					rc = -EINVAL;
					break;
				}
				i = (size_t)(e - re) + 1;
				continue;
			}
			if (g[0] == '=' || g[0] == '!' || (g[0] == '<' && (g[1] == '=' || g[1] == '!')))
				out->features |= RULES_RX_LOOKAROUND;
			else if (g[0] == '>') {
				out->features |= RULES_RX_ATOMIC;
				rules_regex_put(&h, "(?:", 3);
				rules_regex_put(&pc, "(?>", 3);
				i += 3;
				continue;
			} else if (g[0] == '(')
				out->features |= RULES_RX_COND;
			else if (g[0] == '|' || g[0] == '{' || g[0] == '?' || g[0] == 'R' || g[0] == '&' ||
				 isdigit((unsigned char)g[0]) || g[0] == '+' || (g[0] == 'P' && g[1] == '>') ||
				 (g[0] == 'P' && g[1] == '='))
				out->features |= RULES_RX_OTHER;
			else if ((g[0] == '<' && g[1] != '=' && g[1] != '!') || g[0] == '\'' ||
				 (g[0] == 'P' && g[1] == '<')) {
				/* a named group: a plain one for Hyperscan */
				char close = g[0] == '\'' ? '\'' : '>';
				const char *e = strchr(g + 1 + (g[0] == 'P'), close);

				if (!e) {
					rc = -EINVAL;
					break;
				}
				rules_regex_put(&h, "(", 1);
				rules_regex_put(&pc, re + i, (size_t)(e - (re + i)) + 1);
				i = (size_t)(e - re) + 1;
				continue;
			}
			rules_regex_both(&h, &pc, "(?", 2);
			i += 2;
			continue;
		}
		if (c == '^' && !rules_regex_at_start(&h)) {
			/* an anchor after something that consumed text (".*^Received:" with /m):
			 * Hyperscan refuses embedded start anchors; dropping it is a superset for
			 * the prefilter, and PCRE2 confirms with the anchor */
			out->features |= RULES_RX_OTHER;
			rules_regex_put(&pc, "^", 1);
			i++;
			continue;
		}
		if ((c == '*' || c == '+' || c == '?' || c == '}') && re[i + 1] == '+') {
			/* possessive: greedy for Hyperscan's prefilter, exact for PCRE2 */
			out->features |= RULES_RX_ATOMIC;
			rules_regex_put(&h, re + i, 1);
			rules_regex_put(&pc, re + i, 2);
			i += 2;
			continue;
		}
		rules_regex_both(&h, &pc, re + i, 1);
		i++;
	}
	if (rc == 0 && in_class)
		rc = -EINVAL;
	if (rc == 0 && (h.oom || pc.oom))
		rc = -ENOMEM;
	if (rc < 0) {
		free(h.p);
		free(pc.p);
		return rc;
	}
	out->hs = h.p ? h.p : strdup("");
	out->pcre = pc.p ? pc.p : strdup("");
	if (!out->hs || !out->pcre) {
		rules_regex_clear(out);
		return -ENOMEM;
	}
	if (strchr(flags, 'i')) {
		out->hs_flags |= HS_FLAG_CASELESS;
		out->pcre_opts |= PCRE2_CASELESS;
	}
	if (strchr(flags, 'm') || lines) {
		out->hs_flags |= HS_FLAG_MULTILINE;
		out->pcre_opts |= PCRE2_MULTILINE;
	}
	if (strchr(flags, 's')) {
		out->hs_flags |= HS_FLAG_DOTALL;
		out->pcre_opts |= PCRE2_DOTALL;
	}
	return 0;
}

/* Copies an escape at p (a backslash and what it takes) into o; returns its length. */
static size_t rules_regex_escape_len(const char *p)
{
	size_t n = 2;

	if (!p[1])
		return 1;
	if (strchr("xpPNogk", p[1]) && p[2] == '{') {
		const char *c = strchr(p + 3, '}');

		n = c ? (size_t)(c - p) + 1 : strlen(p);
	}
	return n;
}

int rules_regex_relax(const char *hs, bool anchors, char **out_r)
{
	struct rules_regex_out o = { 0 };
	size_t n = strlen(hs), i = 0;

	*out_r = NULL;
	while (i < n) {
		if (hs[i] == '\\') {
			size_t k = rules_regex_escape_len(hs + i);

			rules_regex_put(&o, hs + i, k);
			i += k;
		} else if (hs[i] == '[') {
			size_t j = i + 1;

			if (hs[j] == '^')
				j++;
			if (hs[j] == ']')
				j++;
			while (j < n && hs[j] != ']') {
				if (hs[j] == '\\')
					j += rules_regex_escape_len(hs + j);
				else if (hs[j] == '[' && hs[j + 1] == ':') {
					const char *c = strstr(hs + j + 2, ":]");

					j = c ? (size_t)(c - hs) + 2 : j + 1;
				} else
					j++;
			}
			if (j >= n) {
				free(o.p);
				return -EINVAL;
			}
			rules_regex_put(&o, hs + i, j + 1 - i);
			i = j + 1;
		} else if (hs[i] == '{' && isdigit((unsigned char)hs[i + 1])) {
			char *e;
			unsigned long lo = strtoul(hs + i + 1, &e, 10), hi = lo;
			bool unbounded = false;

			if (*e == ',') {
				if (e[1] == '}') {
					unbounded = true;
					e++;
				} else if (isdigit((unsigned char)e[1])) {
					hi = strtoul(e + 1, &e, 10);
				} else {
					e = NULL;
				}
			}
			if (e && *e == '}' && (unbounded ? lo >= 2 : hi >= 2)) {
				/* X{m,n} -> X* or X+: every string it matched still matches */
				rules_regex_put(&o, lo ? "+" : "*", 1);
				i = (size_t)(e - hs) + 1;
			} else {
				rules_regex_put(&o, hs + i, 1);
				i++;
			}
		} else if (anchors && hs[i] == '$' && i + 1 < n) {
			i++;   /* an assertion dropped matches more, never less */
		} else {
			rules_regex_put(&o, hs + i, 1);
			i++;
		}
	}
	if (o.oom || !o.p) {
		free(o.p);
		return o.oom ? -ENOMEM : -EINVAL;
	}
	*out_r = o.p;
	return 0;
}
