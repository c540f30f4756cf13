/*
 * counter.h - counters written by one thread (a shard) and read by others (the agent's stats)
 * while the node runs, without a lock or a locked instruction on the mail path.
 *
 * The writer adds with a relaxed load and a relaxed store (a plain load, add and store on x86 and
 * arm64: no lock prefix, no fence); a reader loads relaxed and sees a recent, untorn value.
 * Correct only with ONE writer per counter: each shard owns its own and readers sum them.
 */
#ifndef SLUICE_BASE_COUNTER_H
#define SLUICE_BASE_COUNTER_H

#include <stdint.h>

static inline void ctr_add(uint64_t *c, uint64_t n)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static inline void ctr_inc(uint64_t *c)
{
	ctr_add(c, 1);
}

/* A gauge the writer moves both ways (sessions in a state). */
static inline void ctr_dec(uint64_t *c)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) - 1, __ATOMIC_RELAXED);
}

/* A high-water mark. */
static inline void ctr_max(uint64_t *c, uint64_t v)
{
	if (v > __atomic_load_n(c, __ATOMIC_RELAXED))
		__atomic_store_n(c, v, __ATOMIC_RELAXED);
}

/* Any thread. */
static inline uint64_t ctr_read(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

#endif
