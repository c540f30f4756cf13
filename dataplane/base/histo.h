/*
 * histo.h - a latency histogram written by one thread (a shard) and read by others (the agent's
 * metrics), with base/counter.h's rules: plain relaxed stores by its one writer, relaxed loads
 * by readers, no locked instruction on the mail path. Fixed bounds (HISTO_BOUNDS_US) shared by
 * every histogram, so the exposition and the dashboards read them all the same way.
 */
#ifndef SLUICE_BASE_HISTO_H
#define SLUICE_BASE_HISTO_H

#include <stdint.h>

#include "base/counter.h"

/* Upper bounds in µs of the finite buckets: 50 µs to 60 s; the last bucket is +Inf. */
#define HISTO_BOUNDS_US { 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, \
			  250000, 500000, 1000000, 2500000, 5000000, 10000000, 30000000, \
			  60000000 }
#define HISTO_NBUCKETS 20   /* the bounds above, and +Inf */

struct histo {
	uint64_t bucket[HISTO_NBUCKETS];   /* observations per bucket (not cumulative) */
	uint64_t sum_ns;
};

static inline void histo_observe(struct histo *h, uint64_t ns)
{
	static const uint64_t bounds_us[] = HISTO_BOUNDS_US;
	unsigned k = 0;

	while (k < HISTO_NBUCKETS - 1 && ns > bounds_us[k] * 1000u)
		k++;
	ctr_inc(&h->bucket[k]);
	ctr_add(&h->sum_ns, ns);
}

#endif
