/*
 * agent_stats.h - the node's live counters as text (agent_stats.c).
 */
#ifndef SLUICE_AGENT_STATS_H
#define SLUICE_AGENT_STATS_H

#include <stddef.h>

#include "shard/shard.h"

/* Every shard's counters, in Prometheus' text exposition format (one sample per shard and label
 * set, with # HELP and # TYPE lines). *text_r is malloc'ed, *len_r bytes, *lines_r lines in all.
 * 0 or -ENOMEM. Agent thread, while the shards run. */
int agent_stats_text(const struct shard *shards, unsigned n, char **text_r, size_t *len_r,
		     unsigned *lines_r);

#endif
