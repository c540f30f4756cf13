/*
 * filter_shard.c - per-shard scan state: one Hyperscan scratch serving every database of the
 * rule sets the shard's messages use, and PCRE2 match data and JIT stack for confirmations.
 *
 * Shard thread only. A reload grows the scratch (hs_alloc_scratch keeps it usable for the
 * databases it already served), so messages begun with the old rule set finish with it.
 */
#include <errno.h>
#include <stdlib.h>

#include "filter_types.h"

#define FILTER_SHARD_JIT_STACK (512u * 1024)

int filter_shard_new(struct filter_shard **fs_r, struct filter_db *db)
{
	struct filter_shard *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return -ENOMEM;
	fs->md = pcre2_match_data_create(1, NULL);
	fs->mctx = pcre2_match_context_create(NULL);
	fs->jit = pcre2_jit_stack_create(32 * 1024, FILTER_SHARD_JIT_STACK, NULL);
	if (!fs->md || !fs->mctx || !fs->jit || filter_db_scratch(db, &fs->scratch) < 0) {
		filter_shard_free(&fs);
		return -ENOMEM;
	}
	pcre2_jit_stack_assign(fs->mctx, NULL, fs->jit);
	/* bounded work for a confirmation, whatever the pattern (catastrophic backtracking) */
	pcre2_set_match_limit(fs->mctx, 1000000);
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
