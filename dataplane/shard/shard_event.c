/*
 * shard_event.c - see shard_event.h. The spsc ring carries pointers to slots of a per-shard
 * array; a slot is reused once the agent has taken it (slot i belongs to ring position i mod N,
 * so the producer never hands out a slot the consumer still reads).
 */
#include "shard/shard_event.h"

#include "base/counter.h"
#include "base/clock.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define SHARD_EVENT_SLOTS 16384u   /* == the events ring's capacity (shard.c) */

static _Thread_local struct shard_event *shard_event_slots;

void shard_event(struct shard *sh, const char *fmt, ...)
{
	uint32_t head = atomic_load_explicit(&sh->events.head, memory_order_relaxed);
	struct shard_event *ev;
	va_list ap;
	int n;

	if (shard_event_slots == NULL) {
		shard_event_slots = calloc(sh->events.mask + 1, sizeof(*shard_event_slots));
		if (shard_event_slots == NULL) {
			ctr_inc(&sh->ctr.events_dropped);
			return;
		}
	}
	ev = &shard_event_slots[head & sh->events.mask];
	ev->wall_ms = clock_wall_ns() / 1000000;
	va_start(ap, fmt);
	n = vsnprintf(ev->text, sizeof(ev->text), fmt, ap);
	va_end(ap);
	ev->len = (unsigned short)(n < 0 ? 0 : (size_t)n >= sizeof(ev->text) ? sizeof(ev->text) - 1 : (size_t)n);
	/* The ring position and the slot index move together, so a full ring means a busy slot. */
	if (!spsc_push(&sh->events, ev))
		ctr_inc(&sh->ctr.events_dropped);
}

size_t shard_event_drain(struct shard *sh, void (*fn)(void *arg, const struct shard_event *ev),
			 void *arg, size_t max)
{
	size_t n = 0;
	struct shard_event *ev;

	while (n < max && (ev = spsc_peek(&sh->events)) != NULL) {
		fn(arg, ev);
		spsc_release(&sh->events);
		n++;
	}
	return n;
}

int shard_event_score(char *buf, size_t len, int32_t milli)
{
	int64_t t = ((int64_t)milli + (milli >= 0 ? 50 : -50)) / 100;   /* tenths */
	int64_t a = t < 0 ? -t : t;

	return snprintf(buf, len, "%s%lld.%lld", t < 0 ? "-" : "", (long long)(a / 10),
			(long long)(a % 10));
}
