/*
 * agent_stats.h - the node's live counters as text (agent_stats.c).
 */
#ifndef SLUICE_AGENT_STATS_H
#define SLUICE_AGENT_STATS_H

#include <stddef.h>

#include "shard/shard.h"

/* Every shard's counters, in Prometheus' text exposition format (one sample per shard and label
 * set, with # HELP and # TYPE lines; the queue per domain summed over shards). *text_r is malloc'ed, *len_r bytes, *lines_r lines in all.
 * 0 or -ENOMEM. Agent thread, while the shards run. */
struct delivery_depth_part;
/* depth: the shards' queue per domain (n parts), merged into the top AGENT_STATS_DOMAINS domains
 * by queued messages and "other" for the rest. */
#define AGENT_STATS_DOMAINS 20
int agent_stats_text(const struct shard *shards, unsigned n, const struct delivery_depth_part *depth,
		     char **text_r, size_t *len_r, unsigned *lines_r);

#endif
