/*
 * spsc.h - a single-producer single-consumer ring of pointers (after DPDK's rte_ring in its
 * SP/SC mode and Seastar's cross-shard queues). Exactly one thread pushes and exactly one thread
 * pops; head and tail live on their own cache lines. The capacity is a power of two.
 */
#ifndef SLUICE_BASE_SPSC_H
#define SLUICE_BASE_SPSC_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

struct spsc {
	_Alignas(64) _Atomic uint32_t head;   /* next slot the producer writes */
	_Alignas(64) _Atomic uint32_t tail;   /* next slot the consumer reads */
	_Alignas(64) uint32_t mask;
	void **slots;
};

/* Returns 0 or -ENOMEM. cap is rounded up to a power of two. */
int spsc_init(struct spsc *q, uint32_t cap);
void spsc_destroy(struct spsc *q);

/* Producer side. Returns false when the ring is full. */
static inline bool spsc_push(struct spsc *q, void *item)
{
	uint32_t head = atomic_load_explicit(&q->head, memory_order_relaxed);
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_acquire);

	if (head - tail > q->mask)
		return false;
	q->slots[head & q->mask] = item;
	atomic_store_explicit(&q->head, head + 1, memory_order_release);
	return true;
}

/* Consumer side. Returns NULL when the ring is empty. */
static inline void *spsc_pop(struct spsc *q)
{
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);
	void *item;

	if (tail == head)
		return NULL;
	item = q->slots[tail & q->mask];
	atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
	return item;
}

/* Consumer side, for items that point into memory the producer reuses: look first, and release
 * the slot with spsc_release only after the item has been read. */
static inline void *spsc_peek(struct spsc *q)
{
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);
	uint32_t head = atomic_load_explicit(&q->head, memory_order_acquire);

	return tail == head ? NULL : q->slots[tail & q->mask];
}

static inline void spsc_release(struct spsc *q)
{
	uint32_t tail = atomic_load_explicit(&q->tail, memory_order_relaxed);

	atomic_store_explicit(&q->tail, tail + 1, memory_order_release);
}

#endif
