/*
 * fuzz_rules.c - libFuzzer target for the rule-set parser (patterns/compiler/rules_parse.c) and
 * what runs on each parsed rule before Hyperscan: delimiter splitting, the Perl regex
 * translation and the first-tier forms made from it (looser, shared, head), and meta expression
 * compilation and evaluation. Hyperscan's own compile is left
 * out (slow, and not our parser).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules_meta.h"
#include "rules_parse.h"
#include "rules_regex.h"
#include "filter/filter_types.h"

/* Runs compiled meta code the way the scanner does (filter_meta_eval) over hit counts by rule. */
static double meta_eval_counts(const struct rules_meta_instr *ins, uint32_t n,
			       const uint32_t *counts, uint32_t nrules)
{
	uint64_t bits[(nrules + 63) / 64 + 1];
	uint8_t cnt[nrules + 1];

	memset(bits, 0, sizeof(bits));
	for (uint32_t r = 0; r < nrules; r++) {
		cnt[r] = counts[r] > 255 ? 255 : (uint8_t)counts[r];
		if (counts[r])
			filter_bit_set(bits, r);
	}
	return filter_meta_eval(ins, n, bits, cnt);
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fuzz_rules_resolve(void *arg, const char *name)
{
	const struct rules_set *rs = arg;
	const struct rules_rule *r = rules_parse_find(rs, name);

	return r ? (int)(r - rs->rules) : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rules_set *rs;
	uint32_t *hits;

	if (rules_parse_new(&rs) < 0)
		return 0;
	/* two "files": the input split where a NUL is, so per-file state (if-nesting) is covered */
	{
		const uint8_t *nul = memchr(data, 0, size);
		size_t first = nul ? (size_t)(nul - data) : size;

		rules_parse_text(rs, "fuzz1.cf", (const char *)data, first);
		if (nul)
			rules_parse_text(rs, "fuzz2.cf", (const char *)nul + 1, size - first - 1);
	}
	rules_parse_finish(rs);
	hits = calloc(rs->nrules + 1, sizeof(*hits));
	for (size_t i = 0; hits && i < rs->nrules; i++)
		hits[i] = (uint32_t)(i & 1);
	for (size_t i = 0; i < rs->nrules; i++) {
		struct rules_rule *r = &rs->rules[i];

		if (r->pattern) {
			char *re = NULL, flags[16];

			if (rules_parse_delims(r->pattern, &re, flags) == 0) {
				struct rules_regex rx;

				if (rules_regex_translate(re, flags, i & 1, &rx) == 0) {
					char *o = NULL;

					if (!rx.hs || !rx.pcre)
						abort();
					/* the compiler's first-tier forms parse the same texts */
					if (rules_regex_relax(rx.hs, i & 1, &o) == 0 && !o)
						abort();
					free(o);
					o = NULL;
					if (rules_regex_share(rx.pcre, &o) == 0 && !o)
						abort();
					free(o);
					o = NULL;
					if (rules_regex_head(rx.hs, 8, 200, &o) == 0 && !o)
						abort();
					free(o);
					rules_regex_clear(&rx);
				}
				free(re);
			}
		}
		if (r->meta && hits) {
			struct rules_meta_code code;
			char err[64];

			if (rules_meta_compile(r->meta, fuzz_rules_resolve, rs, &code, err, sizeof(err)) == 0) {
				(void)meta_eval_counts(code.ins, code.n, hits, (uint32_t)rs->nrules);
				rules_meta_clear(&code);
			}
		}
	}
	free(hits);
	rules_parse_free(&rs);
	return 0;
}
