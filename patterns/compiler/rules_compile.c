/*
 * rules_compile.c - rule set -> compiled rule-set directory (see rules_compile.h).
 *
 * Scores follow Mail::SpamAssassin::Conf::Parser::fix_tests: a rule without a score line scores
 * 1.0 (T_ rules 0.01; negated with tflags nice); a score of 0 disables the rule, and a meta that
 * reads a disabled or unsupported rule reads 0. Sub-rules (__NAME) run but never add to the
 * score. Every pattern is compiled with HS_FLAG_SINGLEMATCH: a rule hits or not (tflags
 * multiple counts once; XXX).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <hs/hs.h>
#include <math.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rules_compile.h"
#include "rules_meta.h"
#include "rules_regex.h"

struct rules_compile_rule {
	struct rules_rule *r;
	bool      include;
	uint8_t   kind;         /* enum rules_kind */
	uint8_t   cls;
	uint16_t  flags;
	int32_t   score_milli;
	uint32_t  target;
	int       out;          /* index in output order, -1 if not included */
	int       state;        /* topological sort: 0 new, 1 on stack, 2 done */
	struct rules_regex rx;
	struct rules_meta_code code;
	uint32_t  maxhits;      /* tflags multiple maxhits=N (0: no limit) */
	uint32_t  eval;         /* RULES_KIND_EVAL: enum rules_eval */
	bool      disabled;     /* score 0 */
	char     *eval_args;    /* its argument text, without the parentheses */
	char     *hs_orig;      /* rx.hs before rules_compile_relax replaced it */
	bool      tried_relax;  /* the looser first tier was tried */
	bool      tried_plain;  /* Hyperscan's own prefilter of the pattern was tried */
	bool      tried_head;   /* a head of the pattern as the first tier was tried */
	bool      head;         /* ... and is the first tier */
};

struct rules_compile_target {
	char    *name;
	uint8_t  mod;
	uint16_t flags;
};

struct rules_compile_ctx {
	struct rules_set *rs;
	struct rules_compile_rule *cr;
	size_t n;
	int   *order;           /* output order -> cr index */
	size_t norder;
	struct rules_compile_target *tg;
	size_t ntg;
	struct rules_compile_stats *st;
	const struct rules_compile_opts *o;
	hs_platform_info_t plat;
};

static bool rules_compile_has_flag(const char *tflags, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = tflags ? strstr(tflags, word) : NULL; p; p = strstr(p + 1, word))
		if ((p == tflags || !isalnum((unsigned char)p[-1])) &&
		    !isalnum((unsigned char)p[n]) && p[n] != '_')
			return true;
	return false;
}

/* Header names are case-insensitive, except the all-capitals pseudo-headers (ALL, MESSAGEID). */
static void rules_compile_hdr_key(const char *name, char *out, size_t outlen)
{
	bool caps = true;
	size_t i;

	for (const char *p = name; *p; p++)
		if (islower((unsigned char)*p))
			caps = false;
	for (i = 0; name[i] && i + 1 < outlen; i++)
		out[i] = caps && strlen(name) > 1 && strchr(name, '-') == NULL ?
			 name[i] : (char)tolower((unsigned char)name[i]);
	out[i] = '\0';
	/* one-word all-caps names that are real headers in practice (e.g. "MIME-Version" is not
	 * all caps; "TO" would be): only the known pseudo-headers keep their case */
	if (caps && strcmp(out, "ALL") != 0 && strcmp(out, "MESSAGEID") != 0)
		for (i = 0; out[i]; i++)
			out[i] = (char)tolower((unsigned char)out[i]);
}

static int rules_compile_target(struct rules_compile_ctx *c, const char *name, unsigned mod,
				unsigned flags, uint32_t *id_r)
{
	char key[256];
	struct rules_compile_target *nt;

	rules_compile_hdr_key(name, key, sizeof(key));
	for (size_t i = 0; i < c->ntg; i++)
		if (c->tg[i].mod == mod && c->tg[i].flags == flags && strcmp(c->tg[i].name, key) == 0) {
			*id_r = (uint32_t)i;
			return 0;
		}
	if (c->ntg >= RULES_MAX_TARGETS)
		return -E2BIG;
	nt = realloc(c->tg, (c->ntg + 1) * sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	c->tg = nt;
	nt[c->ntg].name = strdup(key);
	if (!nt[c->ntg].name)
		return -ENOMEM;
	nt[c->ntg].mod = (uint8_t)mod;
	nt[c->ntg].flags = (uint16_t)flags;
	*id_r = (uint32_t)c->ntg++;
	return 0;
}

struct rules_compile_eval_name { const char *fn, *args; uint32_t id; };

/* The id of fn(args) in table (n entries), or 0. An entry with args matches only that
 * argument text (blanks around it aside), or text beginning with it when it ends in '*'. */
static uint32_t rules_compile_eval_find(const struct rules_compile_eval_name *table, size_t n,
					const char *fn, size_t fl, const char *args, size_t al)
{
	uint32_t id = 0;

	while (al && (*args == ' ' || *args == '\t'))
		args++, al--;
	while (al && (args[al - 1] == ' ' || args[al - 1] == '\t'))
		al--;
	for (size_t i = 0; i < n; i++) {
		const struct rules_compile_eval_name *e = &table[i];

		if (!e->fn || strlen(e->fn) != fl || strncmp(fn, e->fn, fl) != 0)
			continue;
		if (!e->args && !id)
			id = e->id;
		if (e->args) {
			size_t el = strlen(e->args);
			bool prefix = el && e->args[el - 1] == '*';

			if (prefix ? al >= el - 1 && strncmp(args, e->args, el - 1) == 0 :
				     el == al && strncmp(args, e->args, al) == 0)
				return e->id;   /* an entry for these arguments wins over a generic one */
		}
	}
	return id;
}

/* Is "function(args)" one of the evals the filter implements? Sets *id_r and a copy of args. */
static bool rules_compile_eval_id(const char *call, uint32_t *id_r, char **args_r)
{
	static const struct rules_compile_eval_name core[] = RULES_EVAL_TABLE,
		mime[] = RULES_EVAL_TABLE_MIME, html[] = RULES_EVAL_TABLE_HTML,
		hdr[] = RULES_EVAL_TABLE_HDR;
	static const struct { const struct rules_compile_eval_name *t; size_t n; } tables[] = {
		{ core, sizeof(core) / sizeof(core[0]) }, { mime, sizeof(mime) / sizeof(mime[0]) },
		{ html, sizeof(html) / sizeof(html[0]) }, { hdr, sizeof(hdr) / sizeof(hdr[0]) },
	};
	const char *open = call ? strchr(call, '(') : NULL, *close;
	size_t fl, al;

	if (!open)
		return false;
	close = strrchr(open, ')');
	if (!close)
		return false;
	fl = (size_t)(open - call);
	while (fl && (call[fl - 1] == ' ' || call[fl - 1] == '\t'))
		fl--;
	al = (size_t)(close - open - 1);
	*id_r = 0;
	for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]) && !*id_r; t++)
		*id_r = rules_compile_eval_find(tables[t].t, tables[t].n, call, fl, open + 1, al);
	if (!*id_r)
		return false;
	*args_r = strndup(open + 1, (size_t)(close - open - 1));
	return *args_r != NULL;
}

/* Can Hyperscan take it (flags include PREFILTER when asked)? */
static bool rules_compile_hs_ok(const char *re, unsigned flags, bool *empty_r)
{
	hs_expr_info_t *info = NULL;
	hs_compile_error_t *err = NULL;

	if (hs_expression_info(re, flags, &info, &err) != HS_SUCCESS) {
		hs_free_compile_error(err);
		return false;
	}
	*empty_r = info->min_width == 0;
	free(info);
	return true;
}

static pcre2_code *rules_compile_pcre(const struct rules_regex *rx)
{
	int ec;
	PCRE2_SIZE eo;

	return pcre2_compile((PCRE2_SPTR)rx->pcre, PCRE2_ZERO_TERMINATED, rx->pcre_opts, &ec, &eo, NULL);
}

/* Gives x a looser first tier (rules_regex_relax), exact or as a prefilter, that PCRE2
 * confirms: for a pattern Hyperscan refuses as it is, or whose database would be too large
 * (bounded repeats of large groups), and for one whose own prefilter fires nearly everywhere.
 * Sets kind PREFILTER and returns true when Hyperscan takes it. */
static bool rules_compile_relax(struct rules_compile_ctx *c, struct rules_compile_rule *x)
{
	unsigned base = (x->rx.hs_flags & ~(unsigned)(HS_FLAG_PREFILTER | HS_FLAG_ALLOWEMPTY)) |
			HS_FLAG_SINGLEMATCH;

	x->tried_relax = true;
	for (int anchors = 0; anchors < 2; anchors++) {
		char *rl = NULL;
		bool e = false;

		if (rules_regex_relax(x->hs_orig ? x->hs_orig : x->rx.hs, anchors, &rl) < 0)
			return false;
		for (int pf = 0; pf < 2; pf++) {
			unsigned fl = base | (pf ? HS_FLAG_PREFILTER : 0);

			if (!rules_compile_hs_ok(rl, fl, &e))
				continue;
			if (!x->hs_orig)
				x->hs_orig = x->rx.hs;
			else
				free(x->rx.hs);
			x->rx.hs = rl;
			x->rx.hs_flags = fl | (e ? HS_FLAG_ALLOWEMPTY : 0);
			x->kind = RULES_KIND_PREFILTER;
			if (c->o->report)
				fprintf(c->o->report, "  looser first tier for %s (bounded repeats%s)%s\n",
					x->r->name, anchors ? ", inner $" : "", pf ? ", as a prefilter" : "");
			return true;
		}
		free(rl);
	}
	return false;
}

/* A pattern PCRE2 finds too large (ReplaceTags expansions repeat their tags hundreds of
 * times) is given to it with each repeated group defined once and called
 * (rules_regex_share): the same matches. */
static void rules_compile_pcre_fit(struct rules_compile_ctx *c, struct rules_compile_rule *x)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *pc = pcre2_compile((PCRE2_SPTR)x->rx.pcre, PCRE2_ZERO_TERMINATED, x->rx.pcre_opts,
				       &ec, &eo, NULL);
	char *sh = NULL;

	if (pc || ec != PCRE2_ERROR_PATTERN_TOO_LARGE) {
		pcre2_code_free(pc);
		return;
	}
	if (rules_regex_share(x->rx.pcre, &sh) == 0) {
		pc = pcre2_compile((PCRE2_SPTR)sh, PCRE2_ZERO_TERMINATED, x->rx.pcre_opts, &ec, &eo, NULL);
		if (pc) {
			if (c->o->report)
				fprintf(c->o->report, "  %s: too large for PCRE2 as written; its repeated "
					"groups are shared as subroutines (%zu -> %zu bytes)\n", x->r->name,
					strlen(x->rx.pcre), strlen(sh));
			free(x->rx.pcre);
			x->rx.pcre = sh;
			sh = NULL;
		}
		pcre2_code_free(pc);
	}
	free(sh);
}

/* For a pattern too long for Hyperscan in every form: a head of it (rules_regex_head), which
 * every match holds, as the first tier, as it is or looser, exact or as a prefilter; PCRE2
 * confirms. Sets kind PREFILTER and returns true when Hyperscan takes one. */
static bool rules_compile_head(struct rules_compile_ctx *c, struct rules_compile_rule *x)
{
	static const size_t wants[] = { 24, 16, 12, 8, 6, 4, 3 };
	unsigned base = (x->rx.hs_flags & ~(unsigned)(HS_FLAG_PREFILTER | HS_FLAG_ALLOWEMPTY)) |
			HS_FLAG_SINGLEMATCH;
	const char *orig = x->hs_orig ? x->hs_orig : x->rx.hs;

	static const size_t bigs[] = { 1500, 600, 200 };

	x->tried_head = true;
	for (size_t k = 0; k < sizeof(bigs) / sizeof(bigs[0]) * sizeof(wants) / sizeof(wants[0]); k++) {
		size_t w = k % (sizeof(wants) / sizeof(wants[0])), b = k / (sizeof(wants) / sizeof(wants[0]));
		char *head = NULL, *forms[3] = { NULL, NULL, NULL };
		bool done = false;

		if (rules_regex_head(orig, wants[w], bigs[b], &head) < 0)
			continue;
		forms[0] = head;
		(void)rules_regex_relax(head, false, &forms[1]);
		(void)rules_regex_relax(head, true, &forms[2]);
		for (int f = 0; f < 3 && !done; f++)
			for (int pf = 0; pf < 2 && forms[f] && !done; pf++) {
				unsigned fl = base | (pf ? HS_FLAG_PREFILTER : 0);
				bool e = false;

				if (!rules_compile_hs_ok(forms[f], fl, &e) || e)
					continue;   /* one that matches the empty string says nothing */
				if (!x->hs_orig)
					x->hs_orig = x->rx.hs;
				else
					free(x->rx.hs);
				x->rx.hs = forms[f];
				forms[f] = NULL;
				x->rx.hs_flags = fl;
				x->kind = RULES_KIND_PREFILTER;
				x->head = true;
				done = true;
				if (c->o->report)
					fprintf(c->o->report, "  first tier for %s: a head of it, %zu bytes of "
						"%zu, at least %zu characters%s\n", x->r->name, strlen(x->rx.hs),
						strlen(x->hs_orig), wants[w], pf ? ", as a prefilter" : "");
			}
		for (int f = 0; f < 3; f++)
			free(forms[f]);
		if (done)
			return true;
	}
	return false;
}

/* Group repeats that add this much to a pattern as Hyperscan builds it
 * (rules_regex_expanded_size), and at least RULES_COMPILE_COPIES_RATIO times its text, make it
 * one Hyperscan takes whole only after tens of seconds, or refuses as too large after them
 * (the ReplaceTags forms of __FILL_THIS_FORM_*): its looser first tier is taken straight away. */
#define RULES_COMPILE_COPIES_MIN   8000.0
#define RULES_COMPILE_COPIES_RATIO 5.0

static bool rules_compile_copies(const struct rules_compile_rule *x)
{
	double len = (double)strlen(x->rx.hs), size = rules_regex_expanded_size(x->rx.hs);

	return size - len >= RULES_COMPILE_COPIES_MIN && size >= RULES_COMPILE_COPIES_RATIO * len;
}

/* Native, prefilter or not at all; fills kind and the final hs flags. */
static void rules_compile_classify(struct rules_compile_ctx *c, struct rules_compile_rule *x)
{
	bool empty = false;
	unsigned base = x->rx.hs_flags | HS_FLAG_SINGLEMATCH;
	pcre2_code *pc;

	rules_compile_pcre_fit(c, x);
	if (rules_compile_copies(x)) {
		pc = rules_compile_pcre(&x->rx);
		if (pc && rules_compile_relax(c, x)) {
			pcre2_code_free(pc);
			return;
		}
		pcre2_code_free(pc);
	}

	if (!(x->rx.features & RULES_RX_NEEDS_PREFILTER) && rules_compile_hs_ok(x->rx.hs, base, &empty)) {
		x->kind = RULES_KIND_HS;
		x->rx.hs_flags = base | (empty ? HS_FLAG_ALLOWEMPTY : 0);
		return;
	}
	pc = rules_compile_pcre(&x->rx);
	x->tried_plain = true;
	if (pc && rules_compile_hs_ok(x->rx.hs, base | HS_FLAG_PREFILTER, &empty)) {
		x->kind = RULES_KIND_PREFILTER;
		x->rx.hs_flags = base | HS_FLAG_PREFILTER | (empty ? HS_FLAG_ALLOWEMPTY : 0);
		for (unsigned b = 0; b < 5; b++)
			if (x->rx.features & (1u << b))
				c->st->features[b]++;
	} else if (pc && rules_compile_relax(c, x)) {
		/* PREFILTER with a looser first tier */
	} else if (pc && rules_compile_head(c, x)) {
		/* PREFILTER with a head of it as the first tier */
	} else {
		x->kind = pc ? RULES_KIND_PCRE : RULES_KIND_OFF;
	}
	pcre2_code_free(pc);
}

/* Does the rule's pattern match its header's value when the header is missing? */
static bool rules_compile_absent_hit(const struct rules_compile_rule *x)
{
	const char *v = x->r->unset ? x->r->unset : "";
	pcre2_code *pc = rules_compile_pcre(&x->rx);
	pcre2_match_data *md;
	int rc;

	if (!pc)
		return false;
	md = pcre2_match_data_create_from_pattern(pc, NULL);
	rc = md ? pcre2_match(pc, (PCRE2_SPTR)v, strlen(v), 0, 0, md, NULL) : -1;
	pcre2_match_data_free(md);
	pcre2_code_free(pc);
	return rc >= 0;
}

static int rules_compile_one(struct rules_compile_ctx *c, struct rules_compile_rule *x)
{
	struct rules_rule *r = x->r;
	struct rules_compile_stats *st = c->st;
	double s;
	char *re, flags[16];
	int rc;

	x->out = -1;
	if (r->def == RULES_DEF_NONE) {
		st->undefined++;
		return 0;
	}
	if (r->nscore)
		s = r->score[c->o->score_set];
	else
		s = strncmp(r->name, "T_", 2) == 0 ? 0.01 : 1.0;
	if (!r->nscore && rules_compile_has_flag(r->tflags, "nice"))
		s = -s;
	/* score 0 disables a rule whatever it is: not "unsupported" in the report */
	if (r->nscore && s == 0) {
		st->disabled++;
		x->disabled = true;
		return 0;
	}
	if (r->def == RULES_DEF_EVAL && !rules_compile_eval_id(r->pattern, &x->eval, &x->eval_args)) {
		st->eval++;
		return 0;
	}
	x->score_milli = (int32_t)lround(s * 1000);
	x->cls = (uint8_t)r->cls;
	if (strncmp(r->name, "__", 2) == 0)
		x->flags |= RULES_RF_SUBRULE;
	if (rules_compile_has_flag(r->tflags, "nice"))
		x->flags |= RULES_RF_NICE;
	if (rules_compile_has_flag(r->tflags, "multiple"))
		x->flags |= RULES_RF_MULTIPLE;
	if (rules_compile_has_flag(r->tflags, "nosubject"))
		x->flags |= RULES_RF_NOSUBJECT;
	if (r->negate)
		x->flags |= RULES_RF_NEGATE;
	if (r->def == RULES_DEF_EVAL) {
		x->kind = RULES_KIND_EVAL;
		x->include = true;
		st->eval_native++;
		return 0;
	}
	if (r->def == RULES_DEF_META) {
		x->kind = RULES_KIND_META;
		x->include = true;
		st->meta++;
		return 0;
	}
	if (r->def == RULES_DEF_EXISTS) {
		x->kind = RULES_KIND_EXISTS;
		x->include = true;
		st->exists++;
		return rules_compile_target(c, r->hdr, RULES_HDR_DECODED, 0, &x->target);
	}
	/* a regex rule */
	if (rules_parse_delims(r->pattern, &re, flags) < 0) {
		st->unsupported[r->cls]++;
		if (c->o->report)
			fprintf(c->o->report, "  not a pattern: %s (%s:%u)\n", r->name, r->file, r->line);
		return 0;
	}
	rc = rules_regex_translate(re, flags, r->cls == RULES_CLASS_BODY ||
				   r->cls == RULES_CLASS_RAWBODY || r->cls == RULES_CLASS_URI, &x->rx);
	free(re);
	if (rc == -ENOMEM)
		return rc;
	if (rc < 0) {
		st->unsupported[r->cls]++;
		return 0;
	}
	rules_compile_classify(c, x);
	/* tflags multiple: Hyperscan finds the first match, PCRE2 counts them (up to maxhits; a
	 * header rule in its header's value, a streamed class's at the end). tflags nosubject: the
	 * body text without its first line, the Subject; Hyperscan cannot tell where a match
	 * starts, so PCRE2 confirms from the end of the Subject line. Both run as prefilters. */
	if (x->kind == RULES_KIND_HS && ((x->flags & RULES_RF_MULTIPLE) ||
	    ((x->flags & RULES_RF_NOSUBJECT) && r->cls == RULES_CLASS_BODY))) {
		pcre2_code *pc = rules_compile_pcre(&x->rx);
		bool e = false;

		if (pc && rules_compile_hs_ok(x->rx.hs, x->rx.hs_flags | HS_FLAG_PREFILTER, &e)) {
			x->kind = RULES_KIND_PREFILTER;
			x->rx.hs_flags |= HS_FLAG_PREFILTER;
		}
		pcre2_code_free(pc);
	}
	if (x->flags & RULES_RF_MULTIPLE) {
		const char *mh = r->tflags ? strstr(r->tflags, "maxhits=") : NULL;

		x->maxhits = mh ? (uint32_t)atoi(mh + 8) : 0;
	}
	if (x->kind == RULES_KIND_OFF) {
		st->unsupported[r->cls]++;
		if (c->o->report)
			fprintf(c->o->report, "  unsupported regex: %s (%s:%u)\n", r->name, r->file, r->line);
		rules_regex_clear(&x->rx);
		return 0;
	}
	if (x->kind == RULES_KIND_HS)
		st->native[r->cls]++;
	else if (x->kind == RULES_KIND_PCRE)
		st->pcre_only[r->cls]++;
	else
		st->prefilter[r->cls]++;
	x->include = true;
	if (r->cls == RULES_CLASS_HEADER) {
		if (rules_compile_absent_hit(x))
			x->flags |= RULES_RF_ABSENT_HIT;
		return rules_compile_target(c, r->hdr, r->hdr_mod, r->hdr_mime ? RULES_TF_MIME : 0,
					    &x->target);
	}
	return 0;
}

/* --- meta ordering ---------------------------------------------------------------------- */

static struct rules_compile_rule *rules_compile_lookup(struct rules_compile_ctx *c, const char *name)
{
	struct rules_rule *r = rules_parse_find(c->rs, name);

	if (!r)
		return NULL;
	return &c->cr[r - c->rs->rules];
}

static int rules_compile_resolve(void *arg, const char *name)
{
	struct rules_compile_ctx *c = arg;
	struct rules_compile_rule *x = rules_compile_lookup(c, name);

	return x && x->include && x->out >= 0 ? x->out : -1;
}

/* Depth-first: a meta goes after every meta it reads. A cycle turns the metas on it off. */
static bool rules_compile_visit(struct rules_compile_ctx *c, struct rules_compile_rule *x, int depth)
{
	const char *p = x->r->meta;

	if (x->state == 2)
		return x->include;
	if (x->state == 1 || depth > 1000)
		return false;
	x->state = 1;
	while (*p) {
		if (isalpha((unsigned char)*p) || *p == '_') {
			char name[256];
			size_t n = 0;
			struct rules_compile_rule *d;

			while (isalnum((unsigned char)*p) || *p == '_') {
				if (n < sizeof(name) - 1)
					name[n++] = *p;
				p++;
			}
			name[n] = '\0';
			d = rules_compile_lookup(c, name);
			if (d && d->include && d->kind == RULES_KIND_META && !rules_compile_visit(c, d, depth + 1)) {
				if (d->state == 1 || d->include == false) {
					/* a cycle through d: the dependency reads 0 (it stays off) */
				}
			}
		} else {
			p++;
		}
	}
	x->state = 2;
	c->order[c->norder] = (int)(x - c->cr);
	x->out = (int)c->norder++;
	return true;
}

/* --- output ----------------------------------------------------------------------------- */

struct rules_compile_buf {
	uint8_t *p;
	size_t   len, cap;
	bool     oom;
};

static void rules_compile_put(struct rules_compile_buf *b, const void *p, size_t n)
{
	if (b->oom || n == 0)   /* an empty string may come as NULL */
		return;
	if (b->len + n > b->cap) {
		size_t cap = (b->len + n) * 2 + 4096;
		uint8_t *np = realloc(b->p, cap);

		if (!np) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void rules_compile_u32(struct rules_compile_buf *b, uint32_t v)
{
	rules_compile_put(b, &v, 4);
}

static void rules_compile_str(struct rules_compile_buf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;
	uint16_t l = (uint16_t)(n > 65535 ? 65535 : n);

	rules_compile_put(b, &l, 2);
	rules_compile_put(b, s, l);
}

static void rules_compile_hdr(struct rules_compile_ctx *c, struct rules_compile_buf *b,
			      uint32_t cls, uint32_t nsections)
{
	struct rules_file_hdr h;

	memset(&h, 0, sizeof(h));
	memcpy(h.magic, RULES_FORMAT_MAGIC, 8);
	h.format_version = RULES_FORMAT_VERSION;
	h.cls = cls;
	strncpy(h.hs_version, hs_version(), sizeof(h.hs_version) - 1);
	h.hs_tune = c->plat.tune;
	h.hs_cpu_features = c->plat.cpu_features;
	h.ruleset_hash = rules_parse_hash(c->rs);
	h.nsections = nsections;
	rules_compile_put(b, &h, sizeof(h));
}

static int rules_compile_write(const char *dir, const char *name, const struct rules_compile_buf *b)
{
	char path[4096], tmp[4200];
	int fd, rc = 0;
	size_t off = 0;

	if (b->oom)
		return -ENOMEM;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (off < b->len) {
		ssize_t n = write(fd, b->p + off, b->len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		off += (size_t)n;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0)
		unlink(tmp);
	return rc;
}

/* Removes a compiled rule-set directory (only the files this compiler writes). */
static void rules_compile_rmdir(const char *dir)
{
	static const char *const files[] = RULES_CLASS_FILES;
	char p[4200];

	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[c]);
		unlink(p);
		snprintf(p, sizeof(p), "%s/%s.tmp", dir, files[c]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/%s", dir, RULES_META_FILE);
	unlink(p);
	snprintf(p, sizeof(p), "%s/%s.tmp", dir, RULES_META_FILE);
	unlink(p);
	snprintf(p, sizeof(p), "%s/SOURCE", dir);   /* what went in: sluice-rules update's and
						      * bench/scan-accuracy.sh's cache key */
	unlink(p);
	snprintf(p, sizeof(p), "%s/SOURCE.tmp", dir);
	unlink(p);
	rmdir(dir);
}

static double rules_compile_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Does nothing after a match's end decide it: no lookahead, \b \B $ \z \Z (outside classes)? */
static bool rules_compile_no_lookafter(const char *re)
{
	for (size_t i = 0; re[i];) {
		if (re[i] == '\\') {
			if (re[i + 1] && strchr("bBzZ", re[i + 1]))
				return false;
			i += re[i + 1] ? 2 : 1;
		} else if (re[i] == '[') {
			i++;
			if (re[i] == '^')
				i++;
			if (re[i] == ']')
				i++;
			while (re[i] && re[i] != ']')
				i += re[i] == '\\' && re[i + 1] ? 2 : 1;
			if (re[i])
				i++;
		} else if (re[i] == '$' || (re[i] == '(' && re[i + 1] == '?' &&
			   (re[i + 2] == '=' || re[i + 2] == '!' || re[i + 2] == '(' || re[i + 2] == 'R' ||
			    re[i + 2] == '&' || isdigit((unsigned char)re[i + 2])))) {
			return false;   /* also conditionals and calls: not looked into */
		} else {
			i++;
		}
	}
	return true;
}

/* Confirmed by PCRE2 only on the lines holding a candidate end (RULES_LINE_CONFIRMED)? */
static bool rules_compile_line_confirmed(const struct rules_compile_rule *x)
{
	return x->kind == RULES_KIND_PREFILTER && RULES_LINE_CONFIRMED(x->cls, x->flags);
}

/* Compiles the rules in idx[0..n) into one database; a rule Hyperscan refuses is demoted
 * (native -> prefilter -> off) and the compile retried. *db_r is NULL when no rule is left. */
static int rules_compile_db(struct rules_compile_ctx *c, int *idx, size_t n, unsigned mode,
			    hs_database_t **db_r, char *err, size_t errlen)
{
	const char **ex = malloc(n * sizeof(*ex));
	unsigned *fl = malloc(n * sizeof(*fl)), *ids = malloc(n * sizeof(*ids));
	int rc = 0;

	*db_r = NULL;
	if (!ex || !fl || !ids) {
		rc = -ENOMEM;
		goto out;
	}
	for (int attempt = 0; attempt < 200; attempt++) {
		size_t m = 0;
		hs_compile_error_t *ce = NULL;
		int bad;

		for (size_t i = 0; i < n; i++) {
			struct rules_compile_rule *x = &c->cr[idx[i]];

			if (x->kind != RULES_KIND_HS && x->kind != RULES_KIND_PREFILTER)
				continue;
			ex[m] = x->rx.hs;
			fl[m] = x->rx.hs_flags;
			/* a line-confirmed prefilter rule reports every candidate end: the filter
			 * confirms only the lines holding one (rules_format.h) */
			if (rules_compile_line_confirmed(x))
				fl[m] &= ~(unsigned)HS_FLAG_SINGLEMATCH;
			ids[m] = (unsigned)x->out;
			m++;
		}
		if (m == 0)
			goto out;
		if (hs_compile_multi(ex, fl, ids, (unsigned)m, mode, &c->plat, db_r, &ce) == HS_SUCCESS)
			goto out;
		bad = ce ? ce->expression : -1;
		if (bad < 0 || (size_t)bad >= m) {
			snprintf(err, errlen, "hyperscan: %s", ce ? ce->message : "compile failed");
			hs_free_compile_error(ce);
			rc = -EINVAL;
			goto out;
		}
		/* find the rule with output id ids[bad] and demote it */
		for (size_t i = 0; i < n; i++) {
			struct rules_compile_rule *x = &c->cr[idx[i]];

			if (x->out != (int)ids[bad])
				continue;
			if (c->o->report)
				fprintf(c->o->report, "  demoted %s: %s\n", x->r->name, ce->message);
			c->st->native[x->cls] -= x->kind == RULES_KIND_HS;
			c->st->prefilter[x->cls] -= x->kind == RULES_KIND_PREFILTER;
			{
				/* native -> a looser first tier -> Hyperscan's prefilter -> PCRE2 alone */
				pcre2_code *pc = rules_compile_pcre(&x->rx);
				unsigned base = (x->rx.hs_flags & ~(unsigned)(HS_FLAG_PREFILTER |
					HS_FLAG_ALLOWEMPTY)) | HS_FLAG_SINGLEMATCH;
				const char *orig = x->hs_orig ? x->hs_orig : x->rx.hs;
				bool e = false;

				if (pc && !x->tried_relax && rules_compile_relax(c, x)) {
					c->st->prefilter[x->cls]++;
				} else if (pc && !x->tried_plain &&
					   rules_compile_hs_ok(orig, base | HS_FLAG_PREFILTER, &e)) {
					x->tried_plain = true;
					if (x->hs_orig) {
						free(x->rx.hs);
						x->rx.hs = x->hs_orig;
						x->hs_orig = NULL;
					}
					x->kind = RULES_KIND_PREFILTER;
					x->rx.hs_flags = base | HS_FLAG_PREFILTER | (e ? HS_FLAG_ALLOWEMPTY : 0);
					c->st->prefilter[x->cls]++;
				} else if (pc && !x->tried_head && rules_compile_head(c, x)) {
					c->st->prefilter[x->cls]++;
				} else if (pc) {
					x->kind = RULES_KIND_PCRE;
					c->st->pcre_only[x->cls]++;
				} else {
					x->kind = RULES_KIND_OFF;
					c->st->unsupported[x->cls]++;
				}
				pcre2_code_free(pc);
			}
			break;
		}
		hs_free_compile_error(ce);
	}
	snprintf(err, errlen, "hyperscan: too many rules refused");
	rc = -EINVAL;
out:
	free(ex);
	free(fl);
	free(ids);
	return rc;
}

static void rules_compile_section(struct rules_compile_buf *b, uint32_t target, hs_database_t *db)
{
	char *bytes = NULL;
	size_t len = 0;

	if (hs_serialize_database(db, &bytes, &len) != HS_SUCCESS) {
		b->oom = true;
		return;
	}
	rules_compile_u32(b, target);
	rules_compile_u32(b, (uint32_t)len);
	rules_compile_put(b, bytes, len);
	free(bytes);
}

/* Builds and writes cls's file. */
static int rules_compile_class(struct rules_compile_ctx *c, const char *dir, unsigned cls,
			       char *err, size_t errlen)
{
	static const char *const files[] = RULES_CLASS_FILES;
	struct rules_compile_buf sections = { 0 }, file = { 0 };
	int *idx = malloc((c->norder + 1) * sizeof(*idx));
	uint32_t nsec = 0;
	double t0 = rules_compile_now();
	int rc = 0;

	if (!idx)
		return -ENOMEM;
	if (cls == RULES_CLASS_HEADER) {
		for (size_t t = 0; t < c->ntg && rc == 0; t++) {
			size_t n = 0;
			hs_database_t *db = NULL;

			for (size_t i = 0; i < c->norder; i++) {
				struct rules_compile_rule *x = &c->cr[c->order[i]];

				if (x->cls == RULES_CLASS_HEADER && x->target == t &&
				    (x->kind == RULES_KIND_HS || x->kind == RULES_KIND_PREFILTER))
					idx[n++] = c->order[i];
			}
			if (!n)
				continue;
			rc = rules_compile_db(c, idx, n, HS_MODE_BLOCK, &db, err, errlen);
			if (db) {
				rules_compile_section(&sections, (uint32_t)t, db);
				hs_free_database(db);
				nsec++;
			}
		}
	} else {
		size_t n = 0;
		hs_database_t *db = NULL;

		for (size_t i = 0; i < c->norder; i++) {
			struct rules_compile_rule *x = &c->cr[c->order[i]];

			if (x->cls == cls && (x->kind == RULES_KIND_HS || x->kind == RULES_KIND_PREFILTER))
				idx[n++] = c->order[i];
		}
		if (n) {
			if (c->o->report)
				fprintf(c->o->report, "compiling %s: %zu rules\n", files[cls], n);
			rc = rules_compile_db(c, idx, n, HS_MODE_STREAM, &db, err, errlen);
		}
		if (db) {
			rules_compile_section(&sections, 0, db);
			hs_free_database(db);
			nsec++;
		}
	}
	free(idx);
	c->st->seconds[cls] = rules_compile_now() - t0;
	if (rc == 0) {
		rules_compile_hdr(c, &file, cls, nsec);
		rules_compile_put(&file, sections.p, sections.len);
		if (sections.oom)
			file.oom = true;
		c->st->bytes[cls] = file.len;
		rc = rules_compile_write(dir, files[cls], &file);
	}
	free(sections.p);
	free(file.p);
	return rc;
}

static int rules_compile_meta_file(struct rules_compile_ctx *c, const char *dir)
{
	struct rules_compile_buf b = { 0 };
	struct rules_meta_hdr mh = {
		.ntargets = (uint32_t)c->ntg,
		.nrules = (uint32_t)c->norder,
		.required_milli = (int32_t)lround(c->rs->required_score * 1000),
		.score_set = c->o->score_set,
	};
	int rc;

	rules_compile_hdr(c, &b, RULES_META_CLASS, 0);
	rules_compile_put(&b, &mh, sizeof(mh));
	for (size_t t = 0; t < c->ntg; t++) {
		uint16_t f = c->tg[t].flags;
		uint8_t mod = c->tg[t].mod, pad = 0;

		rules_compile_put(&b, &f, 2);
		rules_compile_put(&b, &mod, 1);
		rules_compile_put(&b, &pad, 1);
		rules_compile_str(&b, c->tg[t].name);
	}
	for (size_t i = 0; i < c->norder; i++) {
		struct rules_compile_rule *x = &c->cr[c->order[i]];
		uint8_t cls = x->cls, kind = x->kind;
		uint16_t flags = x->flags;

		/* a first tier that reports where the whole would end (the pattern itself, looser or
		 * as Hyperscan's prefilter; not a head of it) */
		if (rules_compile_line_confirmed(x) && !x->head && rules_compile_no_lookafter(x->rx.pcre))
			flags |= RULES_RF_ENDS_AT;
		uint32_t cap = x->maxhits < 255 ? x->maxhits : 255;
		uint32_t target = x->cls == RULES_CLASS_HEADER ? x->target | cap << 24 : x->maxhits;

		rules_compile_put(&b, &cls, 1);
		rules_compile_put(&b, &kind, 1);
		rules_compile_put(&b, &flags, 2);
		rules_compile_put(&b, &x->score_milli, 4);
		rules_compile_u32(&b, target);
		rules_compile_str(&b, x->r->name);
		rules_compile_str(&b, x->r->describe);
		if (kind == RULES_KIND_PREFILTER || kind == RULES_KIND_PCRE) {
			rules_compile_u32(&b, x->rx.pcre_opts);
			rules_compile_u32(&b, (uint32_t)strlen(x->rx.pcre));
			rules_compile_put(&b, x->rx.pcre, strlen(x->rx.pcre));
		} else if (kind == RULES_KIND_EVAL) {
			rules_compile_u32(&b, x->eval);
			rules_compile_u32(&b, (uint32_t)strlen(x->eval_args));
			rules_compile_put(&b, x->eval_args, strlen(x->eval_args));
		} else {
			rules_compile_u32(&b, 0);
			rules_compile_u32(&b, 0);
		}
		if (kind == RULES_KIND_META) {
			rules_compile_u32(&b, x->code.n);
			rules_compile_put(&b, x->code.ins, x->code.n * sizeof(*x->code.ins));
		} else {
			rules_compile_u32(&b, 0);
		}
	}
	/* the FreeMail plugin's domain list, for the freemail evals */
	rules_compile_u32(&b, (uint32_t)c->rs->nfreemail);
	for (size_t i = 0; i < c->rs->nfreemail; i++)
		rules_compile_str(&b, c->rs->freemail[i]);
	rc = rules_compile_write(dir, RULES_META_FILE, &b);
	free(b.p);
	return rc;
}

/* The evals Sluice does not run, by why: the groups of later work (network tests, Bayes, SPF,
 * DKIM and the like, the user's lists), and what is simply not implemented yet. By the eval's
 * function name (SpamAssassin's plugins name them consistently). */
static const char *rules_compile_eval_group(const char *call)
{
	static const struct { const char *prefix, *group; } groups[] = {
		{ "check_rbl", "network: DNS block lists" },
		{ "check_dns_sender", "network: DNS block lists" },
		{ "check_uridnsbl", "network: URI block lists" },
		{ "check_uri_host_listed", "network: URI block lists" },
		{ "check_hashbl", "network: URI block lists" },
		{ "check_razor", "network: Razor, Pyzor, DCC" },
		{ "check_pyzor", "network: Razor, Pyzor, DCC" },
		{ "check_dcc", "network: Razor, Pyzor, DCC" },
		{ "short_url", "network: Razor, Pyzor, DCC" },
		{ "check_bayes", "Bayes" },
		{ "check_for_spf", "SPF" },
		{ "check_for_def_spf", "SPF" },
		{ "check_dkim", "DKIM, ARC, DMARC" },
		{ "check_for_dkim", "DKIM, ARC, DMARC" },
		{ "check_for_def_dkim", "DKIM, ARC, DMARC" },
		{ "check_arc", "DKIM, ARC, DMARC" },
		{ "check_dmarc", "DKIM, ARC, DMARC" },
		{ "check_from_in", "user lists (welcome/block lists, auto welcome list)" },
		{ "check_to_in", "user lists (welcome/block lists, auto welcome list)" },
		{ "check_uri_host_in", "user lists (welcome/block lists, auto welcome list)" },
		{ "check_subject_in", "user lists (welcome/block lists, auto welcome list)" },
		{ "check_welcomelist_bounce", "user lists (welcome/block lists, auto welcome list)" },
		{ "check_whitelist_bounce", "user lists (welcome/block lists, auto welcome list)" },
		{ "check_access_database", "user lists (welcome/block lists, auto welcome list)" },
		{ "check_senders_reputation", "user lists (welcome/block lists, auto welcome list)" },
		{ "check_shortcircuit", "user lists (welcome/block lists, auto welcome list)" },
	};

	for (size_t i = 0; call && i < sizeof(groups) / sizeof(groups[0]); i++)
		if (strncmp(call, groups[i].prefix, strlen(groups[i].prefix)) == 0)
			return groups[i].group;
	return NULL;
}

/* "unsupported eval:" lines, one per group, the not-implemented ones last. */
static void rules_compile_report_evals(const struct rules_compile_ctx *c, FILE *f)
{
	static const char *const order[] = {
		"network: DNS block lists", "network: URI block lists", "network: Razor, Pyzor, DCC",
		"Bayes", "SPF", "DKIM, ARC, DMARC",
		"user lists (welcome/block lists, auto welcome list)", NULL,
	};

	for (size_t g = 0; g < sizeof(order) / sizeof(order[0]); g++) {
		unsigned n = 0;

		for (size_t i = 0; i < c->n; i++) {
			const struct rules_rule *r = c->cr[i].r;
			const char *grp;

			if (r->def != RULES_DEF_EVAL || c->cr[i].include || c->cr[i].disabled)
				continue;
			grp = rules_compile_eval_group(r->pattern);
			if (order[g] ? grp == NULL || strcmp(grp, order[g]) != 0 : grp != NULL)
				continue;
			if (n++ == 0)
				fprintf(f, "unsupported eval: %s: rules:",
					order[g] ? order[g] : "not implemented yet");
			fprintf(f, " %s", r->name);
		}
		if (n)
			fprintf(f, " (%u)\n", n);
	}
}

int rules_compile_dir(struct rules_set *rs, const char *outdir, const struct rules_compile_opts *o,
		      struct rules_compile_stats *st, char *err, size_t errlen)
{
	struct rules_compile_ctx c = { .rs = rs, .n = rs->nrules, .st = st, .o = o };
	char tmpdir[4096], olddir[4096];
	int rc = 0;

	memset(st, 0, sizeof(*st));
	if (o->score_set > 3) {
		snprintf(err, errlen, "score set must be 0..3");
		return -EINVAL;
	}
	if (hs_populate_platform(&c.plat) != HS_SUCCESS) {
		snprintf(err, errlen, "hs_populate_platform failed");
		return -EINVAL;
	}
	c.cr = calloc(c.n + 1, sizeof(*c.cr));
	c.order = calloc(c.n + 1, sizeof(*c.order));
	if (!c.cr || !c.order) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c.n && rc == 0; i++) {
		c.cr[i].r = &rs->rules[i];
		rc = rules_compile_one(&c, &c.cr[i]);
	}
	if (rc < 0)
		goto out;
	if (o->report)
		rules_compile_report_evals(&c, o->report);
	/* output order: the rules that scan first, in file order, then the metas, each after
	 * what it reads */
	for (size_t i = 0; i < c.n; i++)
		if (c.cr[i].include && c.cr[i].kind != RULES_KIND_META) {
			c.order[c.norder] = (int)i;
			c.cr[i].out = (int)c.norder++;
		}
	for (size_t i = 0; i < c.n; i++)
		if (c.cr[i].include && c.cr[i].kind == RULES_KIND_META)
			rules_compile_visit(&c, &c.cr[i], 0);
	for (size_t i = 0; i < c.norder; i++) {
		struct rules_compile_rule *x = &c.cr[c.order[i]];
		char merr[128];
		int mrc;

		if (x->kind != RULES_KIND_META)
			continue;
		mrc = rules_meta_compile(x->r->meta, rules_compile_resolve, &c, &x->code, merr, sizeof(merr));
		if (mrc == -ENOMEM) {
			rc = mrc;
			goto out;
		}
		/* a meta that reads a meta after it (a cycle) reads 0 there: resolve gave -1 only
		 * for rules not yet placed, so check the code only reads earlier rules */
		for (uint32_t k = 0; mrc == 0 && k < x->code.n; k++)
			if (x->code.ins[k].op == RULES_OP_RULE && x->code.ins[k].arg >= (uint32_t)x->out)
				x->code.ins[k] = (struct rules_meta_instr){ .op = RULES_OP_CONST };
		if (mrc < 0) {
			st->meta_off++;
			st->meta--;
			x->kind = RULES_KIND_OFF;
			if (o->report)
				fprintf(o->report, "  meta %s: %s\n", x->r->name, merr);
		}
	}
	st->targets = (unsigned)c.ntg;
	if (o->check_only)
		goto out;
	if (c.norder == 0) {
		snprintf(err, errlen, "no rule to compile");
		rc = -EINVAL;
		goto out;
	}
	/* Everything goes into DIR.new, which then replaces DIR in two renames: a compile that
	 * fails leaves DIR as it was, and a loader never sees a half-written set. */
	snprintf(tmpdir, sizeof(tmpdir), "%s.new", outdir);
	snprintf(olddir, sizeof(olddir), "%s.old", outdir);
	rules_compile_rmdir(tmpdir);
	if (mkdir(tmpdir, 0755) < 0) {
		rc = -errno;
		snprintf(err, errlen, "mkdir %s: %s", tmpdir, strerror(errno));
		goto out;
	}
	for (unsigned cls = 0; cls < RULES_CLASS_NSCAN && rc == 0; cls++)
		rc = rules_compile_class(&c, tmpdir, cls, err, errlen);
	if (rc == 0)
		rc = rules_compile_meta_file(&c, tmpdir);
	if (rc == 0) {
		rules_compile_rmdir(olddir);
		if (rename(outdir, olddir) < 0 && errno != ENOENT)
			rc = -errno;
		else if (rename(tmpdir, outdir) < 0)
			rc = -errno;
		else
			rules_compile_rmdir(olddir);
	}
	if (rc < 0) {
		if (!err[0])
			snprintf(err, errlen, "writing %s: %s", outdir, strerror(-rc));
		rules_compile_rmdir(tmpdir);
	}
out:
	if (c.cr)
		for (size_t i = 0; i < c.n; i++) {
			rules_regex_clear(&c.cr[i].rx);
			rules_meta_clear(&c.cr[i].code);
			free(c.cr[i].eval_args);
			free(c.cr[i].hs_orig);
		}
	for (size_t t = 0; t < c.ntg; t++)
		free(c.tg[t].name);
	free(c.tg);
	free(c.cr);
	free(c.order);
	return rc;
}

void rules_compile_print_stats(FILE *f, const struct rules_compile_stats *st)
{
	static const char *const names[] = { "header", "body", "rawbody", "uri", "full" };
	unsigned tn = 0, tp = 0, tu = 0;

	unsigned to = 0;

	fprintf(f, "%-8s %7s %10s %10s %12s %9s %10s\n", "class", "native", "prefilter", "pcre-only",
		"unsupported", "seconds", "bytes");
	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++) {
		fprintf(f, "%-8s %7u %10u %10u %12u %9.1f %10zu\n", names[c], st->native[c], st->prefilter[c],
			st->pcre_only[c], st->unsupported[c], st->seconds[c], st->bytes[c]);
		tn += st->native[c];
		tp += st->prefilter[c];
		to += st->pcre_only[c];
		tu += st->unsupported[c];
	}
	fprintf(f, "%-8s %7u %10u %10u %12u\n", "total", tn, tp, to, tu);
	fprintf(f, "prefilter causes: lookaround %u, backref %u, atomic/possessive %u, cond %u, other %u\n",
		st->features[0], st->features[1], st->features[2], st->features[3], st->features[4]);
	fprintf(f, "exists %u, meta %u (off %u), eval native %u, eval unsupported %u, disabled (score 0) "
		"%u, score/describe only %u, header targets %u\n", st->exists, st->meta, st->meta_off,
		st->eval_native, st->eval, st->disabled, st->undefined, st->targets);
}
