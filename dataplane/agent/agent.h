/*
 * agent.h - the agent: the node's one thread that is not a shard (today the main thread after
 * start-up). It owns signals (SIGTERM: drain and stop; SIGHUP: reload), writes the shards' events
 * to the log, hands a cluster node's configuration versions to the shards (agent_sync.h: the
 * same swap as SIGHUP) and starts the metrics endpoint; the event shipper is to come. It talks
 * to shards only through messages (shard_post) and their event rings.
 */
#ifndef SLUICE_AGENT_H
#define SLUICE_AGENT_H

#include "shard/shard.h"

/* Blocks SIGTERM, SIGINT, SIGHUP (taken by the agent's signalfd) and ignores SIGPIPE; call before
 * any thread starts so every thread inherits the mask. */
void agent_block_signals(void);
/* Applies the configuration's log keys (log_level, log, log_facility, log_socket) to the logger.
 * The agent calls it when it starts and after each reload; main may call it right after loading
 * the configuration so that the start-up lines go to syslog too. */
struct node_config;
void agent_log_apply(const struct node_config *c);
/* Runs until SIGTERM/SIGINT has stopped every shard. Returns 0, or 1 if a shard failed. */
int agent_run(const char *config_path, struct shard *shards, unsigned nshards);

#endif
