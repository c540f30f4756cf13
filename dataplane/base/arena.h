/*
 * arena.h - a bump allocator whose objects all die together (nginx's ngx_pool_t, Dovecot's data
 * stacks): an SMTP transaction's sender, recipients and parameters live in one and go at RSET or
 * at the end of the message. Chunks come from the thread's allocator (the shard's jemalloc arena);
 * the first chunk is kept across resets so a steady stream of small transactions allocates
 * nothing. One owner thread.
 */
#ifndef SLUICE_BASE_ARENA_H
#define SLUICE_BASE_ARENA_H

#include <stddef.h>

struct arena_chunk;

struct arena {
	struct arena_chunk *head;      /* current chunk; older ones chained behind it */
	size_t              chunk_size;
	size_t              total;     /* bytes handed out since the last reset */
};

void arena_init(struct arena *a, size_t chunk_size);
/* 8-byte aligned memory, or NULL when out of memory. */
void *arena_alloc(struct arena *a, size_t len);
/* A NUL-terminated copy of p[0..len), or NULL. */
char *arena_strndup(struct arena *a, const char *p, size_t len);
/* Frees everything but the first chunk. */
void arena_reset(struct arena *a);
void arena_destroy(struct arena *a);

#endif
