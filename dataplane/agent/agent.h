/*
 * agent.h - the agent: the node's one thread that is not a shard (today the main thread after
 * start-up). It owns signals (SIGTERM: drain and stop; SIGHUP: reload), writes the shards' events
 * to the log, and will carry the sync client, the event shipper and the metrics endpoint of later
 * issues. It talks to shards only through messages (shard_post) and their event rings.
 */
#ifndef SLUICE_AGENT_H
#define SLUICE_AGENT_H

#include "shard/shard.h"

/* Blocks SIGTERM, SIGINT, SIGHUP (taken by the agent's signalfd) and ignores SIGPIPE; call before
 * any thread starts so every thread inherits the mask. */
void agent_block_signals(void);
/* Runs until SIGTERM/SIGINT has stopped every shard. Returns 0, or 1 if a shard failed. */
int agent_run(const char *config_path, struct shard *shards, unsigned nshards);

#endif
