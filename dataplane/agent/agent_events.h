/*
 * agent_events.h - the agent's event sinks: each reads every shard's event log (spool_event.h)
 * up to the shard's last durable event and keeps its own cursor per shard, fsynced, so a restart
 * or a kill -9 resumes it where it was. The first sink is the local log ("log"): one line per
 * event, today's formats with the event's id. A sink never stalls mail: behind, it only lets the
 * event log grow on disk (the spool's min_free still guards the disk), counts its backlog and
 * raises an alarm in the log.
 *
 * Agent thread only.
 */
#ifndef SLUICE_AGENT_EVENTS_H
#define SLUICE_AGENT_EVENTS_H

#include <stdbool.h>
#include <stdint.h>

#include "shard/shard.h"
#include "shard/shard_event.h"

struct agent_events;

/* line(arg, shard, ev): how the log sink writes one line (agent.c's logger), from the shard's
 * tag. 0 or -ENOMEM. */
typedef void agent_events_line_fn(const struct shard *sh, const struct shard_event *ev);
int agent_events_open(struct agent_events **ae_r, const struct shard *shards, unsigned n,
		      agent_events_line_fn *line);
/* Hands each sink the events it has not seen, up to each shard's durable number (final: every
 * event on disk: the shards have stopped). Then the caller flushes its output and calls
 * agent_events_commit, which saves the cursors and removes event files every sink has passed. */
void agent_events_drain(struct agent_events *ae, const struct shard *shards, unsigned n,
			bool final);
void agent_events_commit(struct agent_events *ae);
void agent_events_close(struct agent_events **ae);

/* Sinks, for the live counters: their names and backlogs (events not yet taken, every shard). */
unsigned agent_events_nsinks(void);
const char *agent_events_sink_name(unsigned i);
uint64_t agent_events_backlog(unsigned i);

#endif
