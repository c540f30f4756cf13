/*
 * rules_diff.c - `sluice-rules diff`: two engines' results on the same corpus, message by
 * message: the rules that fired in one and not the other, and the verdicts that differ.
 *
 *   sluice-rules diff [--threshold X] [--top N] [--subrules] [--summary] A.tsv B.tsv
 *
 * Each file has one line per message, tab-separated: label, path, score, rules (comma-
 * separated; the line `sluice-rules test --results` writes, and the one bench/scan-accuracy.sh
 * writes from spamd's X-Spam-Status). Messages are matched by path; a score that is not a
 * number (spamd's ERR) leaves the message out of the verdict counts. Sub-rules (__X) are left
 * out unless --subrules: spamd does not report them.
 *
 * Prints, per message whose rules or verdict differ: path, label, both scores, `-RULE` for
 * each rule only A fired and `+RULE` for each only B fired; then per rule how many messages
 * (spam / ham) it fired on in one engine only, most first; then the totals. --summary prints
 * only the per-rule list and the totals. Exit status: 0 when both agree on every message's
 * rules, 1 when they differ, 2 on a usage error or a file that cannot be read.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_diff.h"

struct rules_diff_msg {
	char   *label, *path;
	double  score;
	bool    scored;        /* score was a number */
	char  **rules;         /* sorted */
	size_t  nrules;
};

struct rules_diff_set {
	struct rules_diff_msg *m;
	size_t n, cap;
};

/* per rule: messages it fired on in one engine only, by label */
struct rules_diff_count {
	char    *name;
	unsigned a_spam, a_ham, b_spam, b_ham;
};

struct rules_diff_counts {
	struct rules_diff_count *c;
	size_t n, cap;
};

static int rules_diff_strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int rules_diff_msg_cmp(const void *a, const void *b)
{
	return strcmp(((const struct rules_diff_msg *)a)->path, ((const struct rules_diff_msg *)b)->path);
}

static void rules_diff_set_free(struct rules_diff_set *s)
{
	for (size_t i = 0; i < s->n; i++) {
		free(s->m[i].label);
		free(s->m[i].path);
		for (size_t k = 0; k < s->m[i].nrules; k++)
			free(s->m[i].rules[k]);
		free(s->m[i].rules);
	}
	free(s->m);
	memset(s, 0, sizeof(*s));
}

/* Splits the comma-separated list into m->rules (sorted, sub-rules only with subrules). */
static int rules_diff_split(struct rules_diff_msg *m, char *list, bool subrules)
{
	size_t cap = 0;

	if (strcmp(list, "none") == 0)   /* spamd's tests=none */
		return 0;
	for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		while (*t == ' ')
			t++;
		if (!*t || (!subrules && strncmp(t, "__", 2) == 0))
			continue;
		if (m->nrules == cap) {
			char **nr = realloc(m->rules, (cap = cap ? cap * 2 : 16) * sizeof(*nr));

			if (!nr)
				return -ENOMEM;
			m->rules = nr;
		}
		if (!(m->rules[m->nrules] = strdup(t)))
			return -ENOMEM;
		m->nrules++;
	}
	if (m->nrules)
		qsort(m->rules, m->nrules, sizeof(*m->rules), rules_diff_strp_cmp);
	return 0;
}

/* Reads path into s, sorted by message path. Returns 0, -errno, or -EINVAL (bad line, named
 * on stderr). */
static int rules_diff_read(const char *path, struct rules_diff_set *s, bool subrules)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t lcap = 0;
	ssize_t len;
	unsigned lineno = 0;
	int r = 0;

	if (!f) {
		r = -errno;
		fprintf(stderr, "sluice-rules diff: %s: %s\n", path, strerror(errno));
		return r;
	}
	while ((len = getline(&line, &lcap, f)) > 0) {
		char *fld[4] = { NULL }, *end;
		struct rules_diff_msg *m;
		unsigned nf = 0;

		lineno++;
		while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (!len)
			continue;
		/* strsep keeps the empty rules field */
		for (char *p = line; p && nf < 4; nf++)
			fld[nf] = strsep(&p, "\t");
		if (nf < 3) {
			fprintf(stderr, "sluice-rules diff: %s:%u: expected label, path, score, rules\n",
				path, lineno);
			r = -EINVAL;
			break;
		}
		if (s->n == s->cap) {
			struct rules_diff_msg *nm = realloc(s->m, (s->cap = s->cap ? s->cap * 2 : 1024) * sizeof(*nm));

			if (!nm) {
				r = -ENOMEM;
				break;
			}
			s->m = nm;
		}
		m = &s->m[s->n];
		memset(m, 0, sizeof(*m));
		m->label = strdup(fld[0]);
		m->path = strdup(fld[1]);
		s->n++;
		if (!m->label || !m->path) {
			r = -ENOMEM;
			break;
		}
		m->score = strtod(fld[2], &end);
		m->scored = end != fld[2] && *end == '\0';
		if (fld[3] && (r = rules_diff_split(m, fld[3], subrules)) < 0)
			break;
	}
	free(line);
	if (ferror(f) && !r)
		r = -EIO;
	fclose(f);
	if (!r && s->n)
		qsort(s->m, s->n, sizeof(*s->m), rules_diff_msg_cmp);
	for (size_t i = 1; !r && i < s->n; i++)
		if (strcmp(s->m[i - 1].path, s->m[i].path) == 0) {
			fprintf(stderr, "sluice-rules diff: %s: %s is listed twice\n", path, s->m[i].path);
			r = -EINVAL;
		}
	return r;
}

static struct rules_diff_count *rules_diff_count_of(struct rules_diff_counts *cs, const char *name)
{
	for (size_t i = 0; i < cs->n; i++)
		if (strcmp(cs->c[i].name, name) == 0)
			return &cs->c[i];
	if (cs->n == cs->cap) {
		struct rules_diff_count *nc = realloc(cs->c, (cs->cap = cs->cap ? cs->cap * 2 : 64) * sizeof(*nc));

		if (!nc)
			return NULL;
		cs->c = nc;
	}
	memset(&cs->c[cs->n], 0, sizeof(cs->c[cs->n]));
	if (!(cs->c[cs->n].name = strdup(name)))
		return NULL;
	return &cs->c[cs->n++];
}

static int rules_diff_count_cmp(const void *a, const void *b)
{
	const struct rules_diff_count *x = a, *y = b;
	unsigned nx = x->a_spam + x->a_ham + x->b_spam + x->b_ham;
	unsigned ny = y->a_spam + y->a_ham + y->b_spam + y->b_ham;

	if (nx != ny)
		return nx > ny ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Counts rule name, fired in one engine only (in_a: in A), on a message labelled label. */
static int rules_diff_note(struct rules_diff_counts *cs, const char *name, bool in_a, const char *label)
{
	struct rules_diff_count *c = rules_diff_count_of(cs, name);
	bool spam = strcmp(label, "spam") == 0;

	if (!c)
		return -ENOMEM;
	if (in_a)
		spam ? c->a_spam++ : c->a_ham++;
	else
		spam ? c->b_spam++ : c->b_ham++;
	return 0;
}

static void rules_diff_usage(void)
{
	fprintf(stderr, "usage: sluice-rules diff [--threshold SCORE] [--top N] [--subrules] [--summary] A.tsv B.tsv\n");
	exit(2);
}

int rules_diff_main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "threshold", required_argument, NULL, 't' },
		{ "top", required_argument, NULL, 'n' },
		{ "subrules", no_argument, NULL, 'S' },
		{ "summary", no_argument, NULL, 's' },
		{ NULL, 0, NULL, 0 },
	};
	struct rules_diff_set a = { 0 }, b = { 0 };
	struct rules_diff_counts cs = { 0 };
	double thr = 5.0;
	long top = 30;
	bool subrules = false, summary = false;
	unsigned both = 0, only_a = 0, only_b = 0, rules_differ = 0, verdict_differ = 0, scored = 0;
	unsigned a_spam_b_ham = 0, a_ham_b_spam = 0;
	int c, r;

	while ((c = getopt_long(argc, argv, "t:n:Ss", lo, NULL)) != -1) {
		switch (c) {
		case 't': thr = atof(optarg); break;
		case 'n': top = atol(optarg); break;
		case 'S': subrules = true; break;
		case 's': summary = true; break;
		default: rules_diff_usage();
		}
	}
	if (argc - optind != 2)
		rules_diff_usage();
	if (rules_diff_read(argv[optind], &a, subrules) < 0 || rules_diff_read(argv[optind + 1], &b, subrules) < 0) {
		rules_diff_set_free(&a);
		rules_diff_set_free(&b);
		return 2;
	}
	r = 0;
	for (size_t i = 0, j = 0; (i < a.n || j < b.n) && r == 0;) {
		int k = i == a.n ? 1 : j == b.n ? -1 : strcmp(a.m[i].path, b.m[j].path);
		const struct rules_diff_msg *x, *y;
		bool vdiff = false, rdiff = false;

		if (k < 0) {
			only_a++, i++;
			continue;
		}
		if (k > 0) {
			only_b++, j++;
			continue;
		}
		x = &a.m[i++];
		y = &b.m[j++];
		both++;
		if (x->scored && y->scored) {
			bool xs = x->score >= thr, ys = y->score >= thr;

			scored++;
			vdiff = xs != ys;
			if (vdiff)
				xs ? a_spam_b_ham++ : a_ham_b_spam++;
		}
		/* the two sorted lists, merged */
		for (size_t p = 0, q = 0; p < x->nrules || q < y->nrules;) {
			int d = p == x->nrules ? 1 : q == y->nrules ? -1 : strcmp(x->rules[p], y->rules[q]);

			if (d == 0) {
				p++, q++;
				continue;
			}
			if (!rdiff && !summary)
				printf("%s\t%s\t%.1f/%.1f%s\t", x->path, x->label, x->score, y->score,
				       vdiff ? " VERDICT" : "");
			rdiff = true;
			if (!summary)
				printf(" %c%s", d < 0 ? '-' : '+', d < 0 ? x->rules[p] : y->rules[q]);
			if (rules_diff_note(&cs, d < 0 ? x->rules[p] : y->rules[q], d < 0, x->label) < 0) {
				r = -ENOMEM;
				break;
			}
			d < 0 ? p++ : q++;
		}
		if (vdiff && !rdiff && !summary)
			printf("%s\t%s\t%.1f/%.1f VERDICT\t(same rules)", x->path, x->label, x->score, y->score);
		if ((rdiff || vdiff) && !summary)
			putchar('\n');
		rules_differ += rdiff;
		verdict_differ += vdiff;
	}
	if (r == 0) {
		if (cs.n)
			qsort(cs.c, cs.n, sizeof(*cs.c), rules_diff_count_cmp);
		printf("rules firing in one engine only (messages: A only spam/ham, B only spam/ham):\n");
		for (size_t i = 0; i < cs.n && (long)i < top; i++)
			printf("  %-32s A %u/%u  B %u/%u\n", cs.c[i].name, cs.c[i].a_spam, cs.c[i].a_ham,
			       cs.c[i].b_spam, cs.c[i].b_ham);
		if ((long)cs.n > top)
			printf("  ... %zu more\n", cs.n - (size_t)top);
		printf("%u messages in both (%u in A only, %u in B only); rules differ on %u; verdict "
		       "(threshold %.1f) differs on %u of %u scored: %u spam in A only, %u in B only; "
		       "agreement %.2f%%\n", both, only_a, only_b, rules_differ, thr, verdict_differ,
		       scored, a_spam_b_ham, a_ham_b_spam,
		       scored ? 100.0 * (double)(scored - verdict_differ) / (double)scored : 100.0);
	}
	for (size_t i = 0; i < cs.n; i++)
		free(cs.c[i].name);
	free(cs.c);
	rules_diff_set_free(&a);
	rules_diff_set_free(&b);
	if (r < 0) {
		fprintf(stderr, "sluice-rules diff: %s\n", strerror(-r));
		return 2;
	}
	return rules_differ || verdict_differ || only_a || only_b ? 1 : 0;
}
