/*
 * filter_shard.c - per-shard scan state: one Hyperscan scratch serving every database of the
 * rule sets the shard's messages use, and PCRE2 match data and JIT stack for confirmations.
 *
 * Shard thread only. A reload grows the scratch (hs_alloc_scratch keeps it usable for the
 * databases it already served), so messages begun with the old rule set finish with it.
 *
 * Every PCRE2 run goes through filter_shard_match, under three caps so that a message crafted
 * against one backtracking rule costs a bounded amount of work: a match limit
 * (FILTER_SHARD_MATCH_LIMIT steps, which the JIT honours too), a depth limit (the interpreter's
 * nesting, for a pattern the JIT could not compile) and the JIT stack (FILTER_SHARD_JIT_STACK).
 * A run stopped by a cap is counted, per shard and per message, and is no match.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "filter_types.h"

#define FILTER_SHARD_JIT_STACK (512u * 1024)

int filter_shard_new(struct filter_shard **fs_r, struct filter_db *db)
{
	struct filter_shard *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return -ENOMEM;
	fs->md = pcre2_match_data_create(8, NULL);   /* groups: filter_eval_header.c reads them */
	fs->mctx = pcre2_match_context_create(NULL);
	fs->jit = pcre2_jit_stack_create(32 * 1024, FILTER_SHARD_JIT_STACK, NULL);
	if (!fs->md || !fs->mctx || !fs->jit || filter_db_scratch(db, &fs->scratch) < 0) {
		filter_shard_free(&fs);
		return -ENOMEM;
	}
	pcre2_jit_stack_assign(fs->mctx, NULL, fs->jit);
	/* bounded work for a confirmation, whatever the pattern (catastrophic backtracking) */
	pcre2_set_match_limit(fs->mctx, FILTER_SHARD_MATCH_LIMIT);
	pcre2_set_depth_limit(fs->mctx, FILTER_SHARD_DEPTH_LIMIT);
	fs->db = filter_db_ref(db);
	*fs_r = fs;
	return 0;
}

void filter_msg_pool_drain(struct filter_shard *fs);

void filter_shard_free(struct filter_shard **fsp)
{
	struct filter_shard *fs = *fsp;

	if (!fs)
		return;
	filter_msg_pool_drain(fs);
	(void)filter_shard_profile(fs, false);
	hs_free_scratch(fs->scratch);
	pcre2_match_data_free(fs->md);
	pcre2_match_context_free(fs->mctx);
	pcre2_jit_stack_free(fs->jit);
	filter_db_unref(&fs->db);
	free(fs);
	*fsp = NULL;
}

int filter_shard_set_db(struct filter_shard *fs, struct filter_db *db)
{
	if (filter_db_scratch(db, &fs->scratch) < 0)
		return -ENOMEM;
	filter_db_unref(&fs->db);
	fs->db = filter_db_ref(db);
	return 0;
}

struct filter_db *filter_shard_db(const struct filter_shard *fs)
{
	return fs->db;
}

int filter_shard_match(struct filter_msg *fm, uint32_t id, const pcre2_code *re, PCRE2_SPTR subj,
		       PCRE2_SIZE len, PCRE2_SIZE start)
{
	struct filter_shard *fs = fm->fs;
	uint64_t t0 = fs->prof ? filter_shard_ns() : 0;
	int rc = pcre2_match(re, subj ? subj : (PCRE2_SPTR)"", len, start, 0, fs->md, fs->mctx);

	fs->pcre_calls++;
	if (fs->prof && id < fs->prof->nrules) {
		fs->prof->rule_ns[id] += filter_shard_ns() - t0;
		fs->prof->rule_calls[id]++;
	}
	switch (rc) {
	case PCRE2_ERROR_MATCHLIMIT:
	case PCRE2_ERROR_DEPTHLIMIT:
	case PCRE2_ERROR_HEAPLIMIT:
	case PCRE2_ERROR_JIT_STACKLIMIT:
		/* No match: the rule is scored only on a match PCRE2 proved, and a text crafted
		 * to be slow must not be able to turn a rule on (or, for a negated one, off). */
		fs->pcre_capped++;
		if (fm->pcre_capped++ == 0)
			fm->capped_rule = id;
		return PCRE2_ERROR_NOMATCH;
	default:
		return rc;
	}
}

uint64_t filter_shard_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int filter_shard_profile(struct filter_shard *fs, bool on)
{
	struct filter_prof *p = fs->prof;

	if (p) {
		free(p->rule_ns);
		free(p->rule_calls);
		free(p->rule_reports);
		free(p);
		fs->prof = NULL;
	}
	if (!on)
		return 0;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->nrules = fs->db->nrules;
	p->rule_ns = calloc(p->nrules + 1, sizeof(*p->rule_ns));
	p->rule_calls = calloc(p->nrules + 1, sizeof(*p->rule_calls));
	p->rule_reports = calloc(p->nrules + 1, sizeof(*p->rule_reports));
	if (!p->rule_ns || !p->rule_calls || !p->rule_reports) {
		free(p->rule_ns);
		free(p->rule_calls);
		free(p->rule_reports);
		free(p);
		return -ENOMEM;
	}
	fs->prof = p;
	return 0;
}

/* The rule ids with a non-zero used[], the top of them by key (descending) first, into ord.
 * Returns how many of those top ones there are. A selection sort: top is small. */
static uint32_t filter_prof_rank(uint32_t *ord, const uint64_t *used, const uint64_t *key,
				 uint32_t nrules, unsigned top)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < nrules; i++)
		if (used[i])
			ord[n++] = i;
	for (uint32_t k = 0; k < n && k < top; k++) {
		uint32_t best = k, t;

		for (uint32_t j = k + 1; j < n; j++)
			if (key[ord[j]] > key[ord[best]])
				best = j;
		t = ord[k];
		ord[k] = ord[best];
		ord[best] = t;
	}
	return n < top ? n : top;
}

void filter_shard_profile_print(const struct filter_shard *fs, FILE *f, uint64_t nmsg, unsigned top)
{
	static const char *const parts[FILTER_PROF_NPARTS] = {
		"hyperscan header (targets' values, block mode)", "hyperscan body", "hyperscan rawbody",
		"hyperscan uri", "hyperscan full", "header targets (values, Hyperscan, PCRE2)",
		"relays (Received parsing)", "PCRE2 confirmations (streamed classes)", "evals",
		"metas and score", "total (MIME parse included)",
	};
	const struct filter_prof *p = fs->prof;
	const struct filter_db *db = fs->db;
	uint32_t *ord;
	uint32_t n = 0;
	double d = nmsg ? (double)nmsg * 1000.0 : 1.0;

	if (!p || db->nrules != p->nrules)
		return;
	fprintf(f, "profile, us per message (monotonic clock, %llu messages):\n",
		(unsigned long long)nmsg);
	for (unsigned k = 0; k < FILTER_PROF_NPARTS; k++)
		if (k != FILTER_PROF_HS_HEADER)   /* the header targets' line covers it */
			fprintf(f, "  %-46s %9.1f\n", parts[k], (double)p->ns[k] / d);
	ord = calloc(p->nrules + 1, sizeof(*ord));
	if (!ord)
		return;
	n = filter_prof_rank(ord, p->rule_calls, p->rule_ns, p->nrules, top);
	for (uint32_t k = 0; k < n; k++)
		fprintf(f, "  pcre2 %-40s %9.1f us %8.2f runs\n", db->rules[ord[k]].name,
			(double)p->rule_ns[ord[k]] / d, (double)p->rule_calls[ord[k]] / (nmsg ? (double)nmsg : 1.0));
	n = filter_prof_rank(ord, p->rule_reports, p->rule_reports, p->nrules, top);
	for (uint32_t k = 0; k < n; k++)
		fprintf(f, "  reports %-38s %9.2f per message\n", db->rules[ord[k]].name,
			(double)p->rule_reports[ord[k]] / (nmsg ? (double)nmsg : 1.0));
	free(ord);
}

void filter_shard_pcre_stats(const struct filter_shard *fs, uint64_t *calls_r, uint64_t *capped_r)
{
	*calls_r = fs->pcre_calls;
	*capped_r = fs->pcre_capped;
}
