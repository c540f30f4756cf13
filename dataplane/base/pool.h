/*
 * pool.h - a capped pool of fixed-size objects (sessions, transactions, scan streams).
 *
 * Objects come from the calling thread's allocator (the shard's jemalloc arena) and are kept on a
 * free list when put back, so steady state allocates nothing. The cap turns overload into a clean
 * "no" (a 421 at accept), never into unbounded memory. One owner thread; no locking.
 */
#ifndef SLUICE_BASE_POOL_H
#define SLUICE_BASE_POOL_H

#include <stddef.h>
#include <stdint.h>

struct pool {
	size_t   obj_size;
	uint32_t cap;
	uint32_t live;      /* objects handed out */
	uint32_t idle;      /* objects on the free list */
	void    *free_list;
};

void pool_init(struct pool *p, size_t obj_size, uint32_t cap);
/* Returns a zeroed object, or NULL when the cap is reached or memory ran out. */
void *pool_get(struct pool *p);
void pool_put(struct pool *p, void *obj);
/* Frees the idle objects; live ones are the caller's to put back first. */
void pool_destroy(struct pool *p);

#endif
