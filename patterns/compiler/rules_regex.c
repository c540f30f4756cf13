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
#include <stdio.h>
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

/* The index after the ']' closing the class opened at i, or 0 when it is not closed. */
static size_t rules_regex_class_end(const char *re, size_t n, size_t i)
{
	size_t j = i + 1;

	if (re[j] == '^')
		j++;
	if (re[j] == ']')
		j++;
	while (j < n && re[j] != ']') {
		if (re[j] == '\\')
			j += rules_regex_escape_len(re + j);
		else if (re[j] == '[' && re[j + 1] == ':') {
			const char *c = strstr(re + j + 2, ":]");

			j = c ? (size_t)(c - re) + 2 : j + 1;
		} else
			j++;
	}
	return j < n ? j + 1 : 0;
}


/* How large a Hyperscan pattern text is once its counted repeats of groups are written out as
 * copies ((?:X){2,5}: five X), as Hyperscan's compiler builds them (a repeated character or
 * class it runs as one counter); saturates at RULES_REGEX_SIZE_MAX.
 * Groups nest up to 64 deep; a deeper one counts as its text. */
#define RULES_REGEX_SIZE_MAX 1e12
#define RULES_REGEX_SIZE_DEPTH 64

double rules_regex_expanded_size(const char *hs)
{
	struct { double sum, last; bool grp; } st[RULES_REGEX_SIZE_DEPTH + 1] = { { 0, 0, false } };
	size_t n = strlen(hs), i = 0;
	unsigned d = 0, over = 0;

	while (i < n) {
		size_t k = 1;

		if (hs[i] == '{' && isdigit((unsigned char)hs[i + 1])) {
			char *e;
			unsigned long lo = strtoul(hs + i + 1, &e, 10), hi = lo;

			if (*e == ',' && isdigit((unsigned char)e[1]))
				hi = strtoul(e + 1, &e, 10);
			else if (*e == ',')
				e++;
			if (*e == '}') {
				if (st[d].grp)
					st[d].last *= (double)(hi > 1 ? hi : 1);
				if (st[d].last > RULES_REGEX_SIZE_MAX)
					st[d].last = RULES_REGEX_SIZE_MAX;
				i = (size_t)(e - hs) + 1;
				continue;
			}
		}
		if (hs[i] == '(' && d < RULES_REGEX_SIZE_DEPTH && !over) {
			st[d].sum += st[d].last;
			st[d].last = 0;
			d++;
			st[d].sum = 1;
			st[d].last = 0;
			i++;
			continue;
		}
		if (hs[i] == '(')
			over++;
		if (hs[i] == ')' && over) {
			over--;
		} else if (hs[i] == ')' && d) {
			double w = st[d].sum + st[d].last + 1;

			d--;
			st[d].sum += st[d].last;
			st[d].last = w;
			st[d].grp = true;
			i++;
			continue;
		}
		if (hs[i] == '\\')
			k = rules_regex_escape_len(hs + i);
		else if (hs[i] == '[')
			k = rules_regex_class_end(hs, n, i) ? rules_regex_class_end(hs, n, i) - i : n - i;
		st[d].sum += st[d].last;
		st[d].last = (double)k;
		st[d].grp = false;
		i += k;
	}
	while (d) {
		double w = st[d].sum + st[d].last;

		d--;
		st[d].sum += st[d].last;
		st[d].last = w;
	}
	return st[0].sum + st[0].last > RULES_REGEX_SIZE_MAX ? RULES_REGEX_SIZE_MAX :
	       st[0].sum + st[0].last;
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
			size_t e = rules_regex_class_end(hs, n, i);

			if (e == 0) {
				free(o.p);
				return -EINVAL;
			}
			rules_regex_put(&o, hs + i, e - i);
			i = e;
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


/* --- sharing repeated groups (PCRE2 subroutines) --------------------------------------- */

struct rules_regex_grp {
	size_t   start, end;   /* "(?:" .. ")" inclusive-exclusive */
	uint64_t hash;
	bool     used;
	bool     counted;      /* followed by a counted repeat {m..}: PCRE2 would copy it */
};

static uint64_t rules_regex_fnv(const char *p, size_t n)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
	return h;
}

static int rules_regex_grp_cmp(const void *a, const void *b)
{
	const struct rules_regex_grp *x = a, *y = b;
	size_t lx = x->end - x->start, ly = y->end - y->start;

	if (lx != ly)
		return lx > ly ? -1 : 1;
	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->start < y->start ? -1 : x->start > y->start;
}

/* The non-capturing groups of re, or -EINVAL when it sets options inline (a subroutine runs
 * with the options of where it is defined) or does not parse. */
static int rules_regex_groups(const char *re, struct rules_regex_grp **g_r, size_t *n_r)
{
	size_t n = strlen(re), ng = 0, cap = 0, depth = 0;
	size_t *stack = malloc((n + 1) * sizeof(*stack));
	struct rules_regex_grp *g = NULL;

	if (!stack)
		return -ENOMEM;
	for (size_t i = 0; i < n;) {
		if (re[i] == '\\') {
			i += rules_regex_escape_len(re + i);
		} else if (re[i] == '[') {
			size_t e = rules_regex_class_end(re, n, i);

			i = e ? e : n + 1;
		} else if (re[i] == '(') {
			if (re[i + 1] == '?' && strchr("imsxnU^-", re[i + 2]))
				goto bad;
			stack[depth++] = i++;
		} else if (re[i] == ')') {
			size_t s;

			if (!depth)
				goto bad;
			s = stack[--depth];
			if (re[s + 1] == '?' && re[s + 2] == ':') {
				if (ng == cap) {
					struct rules_regex_grp *ngp = realloc(g, (cap = cap ? cap * 2 : 64) * sizeof(*g));

					if (!ngp) {
						free(g);
						free(stack);
						return -ENOMEM;
					}
					g = ngp;
				}
				g[ng].start = s;
				g[ng].end = i + 1;
				g[ng].hash = rules_regex_fnv(re + s, i + 1 - s);
				g[ng].used = false;
				g[ng].counted = re[i + 1] == '{' && isdigit((unsigned char)re[i + 2]);
				ng++;
			}
			i++;
		} else {
			i++;
		}
	}
	if (depth)
		goto bad;
	free(stack);
	*g_r = g;
	*n_r = ng;
	return 0;
bad:
	free(g);
	free(stack);
	return -EINVAL;
}

/* One round: each text of a group repeated at least twice, outside the groups already taken,
 * is defined once and called. */
static int rules_regex_share_round(const char *re, unsigned round, char **out_r, bool *changed_r)
{
	struct rules_regex_grp *g = NULL;
	size_t ng = 0, nr = 0;
	struct { size_t start, end; unsigned name; } *rep = NULL;
	struct rules_regex_out o = { 0 }, def = { 0 };
	unsigned nnames = 0;
	int rc = rules_regex_groups(re, &g, &ng);

	*changed_r = false;
	if (rc < 0)
		return rc;
	qsort(g, ng, sizeof(*g), rules_regex_grp_cmp);
	rep = calloc(ng + 1, sizeof(*rep));
	if (!rep) {
		free(g);
		return -ENOMEM;
	}
	for (size_t i = 0; i < ng;) {
		size_t j = i, len = g[i].end - g[i].start, free_n = 0;
		bool counted = false;

		while (j < ng && g[j].end - g[j].start == len && g[j].hash == g[i].hash &&
		       memcmp(re + g[j].start, re + g[i].start, len) == 0)
			j++;
		/* occurrences not inside one already replaced */
		for (size_t k = i; k < j; k++) {
			bool inside = false;

			for (size_t r = 0; r < nr && !inside; r++)
				inside = g[k].start >= rep[r].start && g[k].end <= rep[r].end;
			g[k].used = !inside;
			free_n += !inside;
			counted |= !inside && g[k].counted;
		}
		if (len >= 16 && (free_n >= 2 || (free_n && counted))) {
			char name[32];
			int nl = snprintf(name, sizeof(name), "(?<sl%u_%u>", round, nnames);

			rules_regex_put(&def, name, (size_t)nl);
			rules_regex_put(&def, re + g[i].start + 3, len - 3);   /* the body and ')' */
			for (size_t k = i; k < j; k++)
				if (g[k].used) {
					rep[nr].start = g[k].start;
					rep[nr].end = g[k].end;
					rep[nr].name = nnames;
					nr++;
				}
			nnames++;
		}
		i = j;
	}
	if (!nr) {
		free(g);
		free(rep);
		free(def.p);
		*out_r = strdup(re);
		return *out_r ? 0 : -ENOMEM;
	}
	/* replacements in text order */
	for (size_t a = 1; a < nr; a++)
		for (size_t b = a; b > 0 && rep[b - 1].start > rep[b].start; b--) {
			__typeof__(*rep) t = rep[b];

			rep[b] = rep[b - 1];
			rep[b - 1] = t;
		}
	{
		size_t at = 0;

		for (size_t r = 0; r < nr; r++) {
			char call[32];
			int cl = snprintf(call, sizeof(call), "(?&sl%u_%u)", round, rep[r].name);

			rules_regex_put(&o, re + at, rep[r].start - at);
			rules_regex_put(&o, call, (size_t)cl);
			at = rep[r].end;
		}
		rules_regex_put(&o, re + at, strlen(re) - at);
		rules_regex_put(&o, "(?(DEFINE)", 10);
		rules_regex_put(&o, def.p, def.len);
		rules_regex_put(&o, ")", 1);
	}
	free(g);
	free(rep);
	free(def.p);
	if (o.oom) {
		free(o.p);
		return -ENOMEM;
	}
	*out_r = o.p;
	*changed_r = true;
	return 0;
}

int rules_regex_share(const char *pcre, char **out_r)
{
	char *cur = strdup(pcre);
	bool any = false;

	*out_r = NULL;
	if (!cur)
		return -ENOMEM;
	for (unsigned round = 0; round < 4; round++) {
		char *next = NULL;
		bool changed = false;
		int rc = rules_regex_share_round(cur, round, &next, &changed);

		free(cur);
		if (rc < 0)
			return rc;
		cur = next;
		any |= changed;
		if (!changed)
			break;
	}
	if (!any) {
		free(cur);
		return -EINVAL;
	}
	*out_r = cur;
	return 0;
}

/* --- a head of the pattern as a first tier ---------------------------------------------- */

struct rules_regex_item {
	size_t   start, atom_end, end;   /* the atom [start, atom_end), its quantifier to end */
	unsigned min;                    /* least repeat count */
	bool     group;                  /* a plain or non-capturing group (not lookaround) */
	size_t   width;                  /* least width of one atom */
};

/* The ')' closing the group opened at i, or 0. */
static size_t rules_regex_group_end(const char *re, size_t n, size_t i)
{
	size_t depth = 0;

	while (i < n) {
		if (re[i] == '\\') {
			i += rules_regex_escape_len(re + i);
		} else if (re[i] == '[') {
			i = rules_regex_class_end(re, n, i);
			if (!i)
				return 0;
		} else if (re[i] == '(') {
			depth++;
			i++;
		} else if (re[i] == ')') {
			if (--depth == 0)
				return i;
			i++;
		} else {
			i++;
		}
	}
	return 0;
}

static size_t rules_regex_min_width(const char *re, size_t s, size_t e, int depth);

/* One item at i (< e); false when it does not parse. */
static bool rules_regex_item(const char *re, size_t i, size_t e, struct rules_regex_item *it, int depth)
{
	size_t n = e, q;

	memset(it, 0, sizeof(*it));
	it->start = i;
	it->width = 1;
	it->min = 1;
	if (re[i] == '\\') {
		q = i + rules_regex_escape_len(re + i);
		if (strchr("bBAzZGK", re[i + 1]))
			it->width = 0;
	} else if (re[i] == '[') {
		q = rules_regex_class_end(re, n, i);
		if (!q)
			return false;
	} else if (re[i] == '(') {
		size_t c = rules_regex_group_end(re, n, i), body = i + 1;

		if (!c)
			return false;
		q = c + 1;
		if (re[i + 1] == '?') {
			if (re[i + 2] == ':' || re[i + 2] == '>')
				body = i + 3;
			else if (re[i + 2] == '=' || re[i + 2] == '!' ||
				 (re[i + 2] == '<' && (re[i + 3] == '=' || re[i + 3] == '!')))
				body = 0;   /* lookaround: no width */
			else
				return false;   /* options, conditionals, recursion: not cut */
		}
		if (body) {
			it->group = true;
			it->width = depth < 64 ? rules_regex_min_width(re, body, c, depth + 1) : 0;
		} else {
			it->width = 0;
		}
	} else if (re[i] == '^' || re[i] == '$') {
		q = i + 1;
		it->width = 0;
	} else if (re[i] == '|' || re[i] == ')') {
		return false;
	} else {
		q = i + 1;
	}
	it->atom_end = q;
	if (q < n && (re[q] == '?' || re[q] == '*')) {
		it->min = 0;
		q++;
	} else if (q < n && re[q] == '+') {
		q++;
	} else if (q < n && re[q] == '{' && isdigit((unsigned char)re[q + 1])) {
		char *x;
		unsigned long lo = strtoul(re + q + 1, &x, 10);

		while (*x && *x != '}')
			x++;
		if (*x == '}') {
			it->min = lo > 1000 ? 1000 : (unsigned)lo;
			q = (size_t)(x - re) + 1;
		}
	}
	if (q < n && (re[q] == '?' || re[q] == '+') && q > it->atom_end)
		q++;   /* lazy or possessive */
	it->end = q;
	return true;
}

/* Least width of the alternation [s, e). */
static size_t rules_regex_min_width(const char *re, size_t s, size_t e, int depth)
{
	size_t best = SIZE_MAX, cur = 0, i = s;

	while (i <= e) {
		struct rules_regex_item it;

		if (i == e || re[i] == '|') {
			if (cur < best)
				best = cur;
			cur = 0;
			i++;
			continue;
		}
		if (!rules_regex_item(re, i, e, &it, depth))
			return 0;
		cur += it.width * it.min;
		i = it.end;
	}
	return best == SIZE_MAX ? 0 : best;
}

static bool rules_regex_head_alt(const char *re, size_t s, size_t e, size_t want, size_t big,
				 struct rules_regex_out *o, int depth);

/* The head of the sequence [s, e) (no top-level '|'): its items from the first, until want
 * bytes of least width, cutting into the last if it is a big group that occurs at least once;
 * every match of the sequence begins with a match of the head. */
static bool rules_regex_head_seq(const char *re, size_t s, size_t e, size_t want, size_t big,
				 struct rules_regex_out *o, int depth)
{
	size_t acc = 0;

	for (size_t i = s; i < e && acc < want;) {
		struct rules_regex_item it;

		if (!rules_regex_item(re, i, e, &it, depth))
			return false;
		if (it.end - it.start > big) {
			if (!it.group || !it.min || depth > 32)
				break;   /* the head ends before it */
			rules_regex_put(o, "(?:", 3);
			if (!rules_regex_head_alt(re, re[it.start + 1] == '?' ? it.start + 3 : it.start + 1,
						  it.atom_end - 1, want - acc, big, o, depth + 1))
				return false;
			rules_regex_put(o, ")", 1);
			return true;
		}
		rules_regex_put(o, re + it.start, it.end - it.start);
		acc += it.width * it.min;
		i = it.end;
	}
	return true;
}

static bool rules_regex_head_alt(const char *re, size_t s, size_t e, size_t want, size_t big,
				 struct rules_regex_out *o, int depth)
{
	size_t i = s, a = s;

	while (i <= e) {
		if (i == e || re[i] == '|') {
			if (!rules_regex_head_seq(re, a, i, want, big, o, depth))
				return false;
			if (i < e)
				rules_regex_put(o, "|", 1);
			a = ++i;
			continue;
		}
		if (re[i] == '\\')
			i += rules_regex_escape_len(re + i);
		else if (re[i] == '[') {
			i = rules_regex_class_end(re, e, i);
			if (!i)
				return false;
		} else if (re[i] == '(') {
			size_t c = rules_regex_group_end(re, e, i);

			if (!c)
				return false;
			i = c + 1;
		} else
			i++;
	}
	return true;
}

int rules_regex_head(const char *hs, size_t want, size_t big, char **out_r)
{
	size_t n = strlen(hs), best_w = 0;
	char *best = NULL;
	bool alt = false;

	*out_r = NULL;
	/* a top-level alternation: the head of each alternative */
	for (size_t i = 0; i < n;) {
		if (hs[i] == '|') {
			alt = true;
			break;
		}
		if (hs[i] == '\\')
			i += rules_regex_escape_len(hs + i);
		else if (hs[i] == '[') {
			i = rules_regex_class_end(hs, n, i);
			if (!i)
				return -EINVAL;
		} else if (hs[i] == '(') {
			size_t c = rules_regex_group_end(hs, n, i);

			if (!c)
				return -EINVAL;
			i = c + 1;
		} else
			i++;
	}
	/* else the best head of any suffix of the top-level items: a match of the pattern holds
	 * a match of each */
	for (size_t i = 0; i < n;) {
		struct rules_regex_item it;
		struct rules_regex_out o = { 0 };
		size_t w;

		if (alt ? i > 0 : false)
			break;
		if (!(alt ? rules_regex_head_alt(hs, 0, n, want, big, &o, 0) :
			    rules_regex_head_seq(hs, i, n, want, big, &o, 0)) || o.oom || !o.p) {
			free(o.p);
			if (alt || !rules_regex_item(hs, i, n, &it, 0))
				break;
			i = it.end;
			continue;
		}
		w = rules_regex_min_width(o.p, 0, o.len, 0);
		if (w > best_w) {
			free(best);
			best = o.p;
			best_w = w;
		} else {
			free(o.p);
		}
		if (alt || !rules_regex_item(hs, i, n, &it, 0))
			break;
		i = it.end;
	}
	if (!best)
		return -EINVAL;
	*out_r = best;
	return 0;
}
