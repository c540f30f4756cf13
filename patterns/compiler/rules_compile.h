/*
 * rules_compile.h - from a parsed rule set to a compiled rule-set directory (rules_format.h).
 *
 * Decides for each rule how it runs: Hyperscan as it is, Hyperscan prefilter + PCRE2, or not at
 * all (eval:, a pattern neither engine takes, a score of 0, a meta in a cycle); orders metas after
 * what they read; compiles one database per class (per header target for headers) for the host
 * platform; writes the directory. Compiler-side only; single-threaded; slow (minutes for
 * SpamAssassin's full set), which is why the result is cached and shipped, never built on the
 * mail path.
 */
#ifndef SLUICE_PATTERNS_RULES_COMPILE_H
#define SLUICE_PATTERNS_RULES_COMPILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "rules_format.h"
#include "rules_parse.h"

struct rules_compile_opts {
	unsigned score_set;     /* 0..3; 0 = no Bayes, no network tests (default) */
	bool     check_only;    /* classify and report, write nothing, build no database */
	FILE    *report;        /* progress and the unsupported list, or NULL */
};

struct rules_compile_stats {
	unsigned native[RULES_CLASS_NSCAN];
	unsigned prefilter[RULES_CLASS_NSCAN];
	unsigned pcre_only[RULES_CLASS_NSCAN];    /* too large for Hyperscan: PCRE2 alone */
	unsigned unsupported[RULES_CLASS_NSCAN];  /* regex rules neither engine takes */
	unsigned exists;
	unsigned meta;
	unsigned meta_off;       /* metas in a cycle or with bad syntax */
	unsigned eval;           /* eval: rules Sluice does not implement (unsupported) */
	unsigned eval_native;    /* eval: rules the filter implements (filter_eval.c) */
	unsigned disabled;       /* score 0 */
	unsigned undefined;      /* score/describe without a definition */
	unsigned targets;        /* distinct header targets */
	unsigned features[5];    /* prefilter causes: lookaround, backref, atomic, cond, other */
	double   seconds[RULES_CLASS_NSCAN];
	size_t   bytes[RULES_CLASS_NSCAN];
};

/* Compiles rs into outdir: everything is written into outdir.new, which then takes outdir's
 * place (the previous set is removed), so a failed compile leaves outdir as it was and a
 * reader never sees a mixed set. Returns 0; -EINVAL when nothing could be compiled (err says
 * why); -ENOMEM; -errno from the file system. */
int rules_compile_dir(struct rules_set *rs, const char *outdir, const struct rules_compile_opts *o,
		      struct rules_compile_stats *st_r, char *err, size_t errlen);

/* Prints the counts of st. */
void rules_compile_print_stats(FILE *f, const struct rules_compile_stats *st);

#endif
