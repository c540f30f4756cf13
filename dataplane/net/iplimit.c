/*
 * iplimit.c - see iplimit.h.
 */
#include "net/iplimit.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define IPLIMIT_BUCKET     8u
#define IPLIMIT_COUNT_BITS 24u
#define IPLIMIT_COUNT_MASK ((UINT64_C(1) << IPLIMIT_COUNT_BITS) - 1)

static _Atomic uint64_t *iplimit_table;
static uint64_t iplimit_mask;       /* bucket index mask */
static _Atomic uint64_t iplimit_overflows;

int iplimit_init(unsigned slots_log2)
{
	size_t slots = (size_t)1 << slots_log2;

	iplimit_table = calloc(slots, sizeof(*iplimit_table));
	if (iplimit_table == NULL)
		return -ENOMEM;
	iplimit_mask = slots / IPLIMIT_BUCKET - 1;
	return 0;
}

/* A nonzero 40-bit tag in the top bits, and the bucket, from one hash of the address. */
static uint64_t iplimit_hash(const struct sockaddr_storage *addr)
{
	uint64_t h;

	if (addr->ss_family == AF_INET)
		h = XXH3_64bits(&((const struct sockaddr_in *)addr)->sin_addr, 4);
	else
		h = XXH3_64bits(&((const struct sockaddr_in6 *)addr)->sin6_addr, 16);
	return h | (UINT64_C(1) << 63);  /* never a zero tag: zero words are free slots */
}

static _Atomic uint64_t *iplimit_bucket(uint64_t h)
{
	return &iplimit_table[(h & iplimit_mask) * IPLIMIT_BUCKET];
}

#define IPLIMIT_TAG(h) ((h) & ~IPLIMIT_COUNT_MASK)

bool iplimit_acquire(const struct sockaddr_storage *addr, uint32_t limit, uint64_t *key_r)
{
	uint64_t h = iplimit_hash(addr), tag = IPLIMIT_TAG(h);
	_Atomic uint64_t *b = iplimit_bucket(h);

	*key_r = 0;
	for (;;) {
		unsigned free_slot = IPLIMIT_BUCKET;

		for (unsigned i = 0; i < IPLIMIT_BUCKET; i++) {
			uint64_t w = atomic_load_explicit(&b[i], memory_order_relaxed);

			if (w == 0) {
				if (free_slot == IPLIMIT_BUCKET)
					free_slot = i;
				continue;
			}
			if (IPLIMIT_TAG(w) != tag)
				continue;
			if (limit != 0 && (w & IPLIMIT_COUNT_MASK) >= limit)
				return false;
			if ((w & IPLIMIT_COUNT_MASK) == IPLIMIT_COUNT_MASK)
				return false;
			if (atomic_compare_exchange_weak(&b[i], &w, w + 1)) {
				*key_r = h;
				return true;
			}
			goto retry;
		}
		if (free_slot == IPLIMIT_BUCKET) {
			atomic_fetch_add_explicit(&iplimit_overflows, 1, memory_order_relaxed);
			return true;    /* fail open: key 0 releases nothing */
		}
		uint64_t zero = 0;

		if (atomic_compare_exchange_strong(&b[free_slot], &zero, tag | 1)) {
			*key_r = h;
			return true;
		}
retry:;
	}
}

void iplimit_release(uint64_t key)
{
	uint64_t tag = IPLIMIT_TAG(key);
	_Atomic uint64_t *b;

	if (key == 0)
		return;
	b = iplimit_bucket(key);
	for (;;) {
		for (unsigned i = 0; i < IPLIMIT_BUCKET; i++) {
			uint64_t w = atomic_load_explicit(&b[i], memory_order_relaxed);

			if (w == 0 || IPLIMIT_TAG(w) != tag)
				continue;
			uint64_t nw = (w & IPLIMIT_COUNT_MASK) == 1 ? 0 : w - 1;

			if (atomic_compare_exchange_weak(&b[i], &w, nw))
				return;
			goto retry;
		}
		return;     /* not found: a fail-open acquire */
retry:;
	}
}

uint32_t iplimit_count(const struct sockaddr_storage *addr)
{
	uint64_t h = iplimit_hash(addr), tag = IPLIMIT_TAG(h);
	_Atomic uint64_t *b = iplimit_bucket(h);
	uint32_t n = 0;

	for (unsigned i = 0; i < IPLIMIT_BUCKET; i++) {
		uint64_t w = atomic_load_explicit(&b[i], memory_order_relaxed);

		if (w != 0 && IPLIMIT_TAG(w) == tag)
			n += (uint32_t)(w & IPLIMIT_COUNT_MASK);
	}
	return n;
}
