/*
 * arena.c - see arena.h.
 */
#include "arena.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct arena_chunk {
	struct arena_chunk *next;
	size_t              used, size;
	_Alignas(8) uint8_t data[];
};

void arena_init(struct arena *a, size_t chunk_size)
{
	a->head = NULL;
	a->chunk_size = chunk_size ? chunk_size : 1024;
	a->total = 0;
}

void *arena_alloc(struct arena *a, size_t len)
{
	struct arena_chunk *c = a->head;
	size_t need = (len + 7) & ~(size_t)7;

	if (c == NULL || c->size - c->used < need) {
		size_t size = need > a->chunk_size ? need : a->chunk_size;

		c = malloc(sizeof(*c) + size);
		if (c == NULL)
			return NULL;
		c->used = 0;
		c->size = size;
		c->next = a->head;
		a->head = c;
	}
	void *p = c->data + c->used;

	c->used += need;
	a->total += need;
	return p;
}

char *arena_strndup(struct arena *a, const char *p, size_t len)
{
	char *s = arena_alloc(a, len + 1);

	if (s != NULL) {
		memcpy(s, p, len);
		s[len] = '\0';
	}
	return s;
}

void arena_reset(struct arena *a)
{
	struct arena_chunk *c = a->head;

	if (c == NULL)
		return;
	while (c->next != NULL) {
		struct arena_chunk *next = c->next;

		free(c);
		c = next;
	}
	c->used = 0;
	a->head = c;
	a->total = 0;
}

void arena_destroy(struct arena *a)
{
	while (a->head != NULL) {
		struct arena_chunk *next = a->head->next;

		free(a->head);
		a->head = next;
	}
	a->total = 0;
}
