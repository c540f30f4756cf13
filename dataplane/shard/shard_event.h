/*
 * shard_event.h - the one place where a message's events leave the shard. Today an event is a
 * log line that the agent thread writes; the cluster issue turns the same records into events
 * shipped to the log role (with a durable local journal when it is unreachable).
 *
 * The shard writes fixed-size records into its own single-producer ring and never waits: when
 * the agent falls behind and the ring is full, the event is dropped and counted
 * (ctr.events_dropped) rather than stall mail. Producer: the shard; consumer: the agent.
 */
#ifndef SLUICE_SHARD_EVENT_H
#define SLUICE_SHARD_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "shard/shard.h"

#define SHARD_EVENT_MAX 1000u

struct shard_event {
	uint64_t       wall_ms;     /* when it happened (CLOCK_REALTIME) */
	unsigned short len;
	char           text[SHARD_EVENT_MAX];
};

/* Shard thread. A printf-style line, cut at SHARD_EVENT_MAX. */
void shard_event(struct shard *sh, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Agent thread: takes up to max events, calls fn on each; returns how many. */
size_t shard_event_drain(struct shard *sh, void (*fn)(void *arg, const struct shard_event *ev),
			 void *arg, size_t max);
/* A score in thousandths as every log line and X-Spam-Status write it: one decimal, rounded half
 * away from zero, as SpamAssassin prints ("5.2", "-0.5", "0.0"). Returns snprintf's count. */
int shard_event_score(char *buf, size_t len, int32_t milli);

#endif
