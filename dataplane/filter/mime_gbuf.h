/*
 * mime_gbuf.h - a byte buffer that grows (doubling) up to a hard cap and then truncates.
 *
 * Used for the header field being unfolded and its decoded form. Growth is amortized (no
 * allocation per byte) and the memory is kept until the parser is freed. Owner: one parser.
 */
#ifndef SLUICE_FILTER_MIME_GBUF_H
#define SLUICE_FILTER_MIME_GBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct mime_gbuf {
	uint8_t *p;
	size_t   len, cap;
	size_t   max;        /* len never exceeds max */
	bool     truncated;  /* an append did not fit (max reached or no memory) */
};

/* Makes room for n more bytes if the cap allows; returns the room there is (may be < n). */
static inline size_t mime_gbuf_room(struct mime_gbuf *g, size_t n)
{
	size_t want = g->len + n;

	if (want > g->max)
		want = g->max;
	if (want > g->cap) {
		size_t c = g->cap ? g->cap : 256;
		uint8_t *np;

		while (c < want)
			c *= 2;
		if (c > g->max)
			c = g->max;
		np = realloc(g->p, c);
		if (np != NULL) {
			g->p = np;
			g->cap = c;
		}
	}
	return g->cap - g->len;
}

static inline void mime_gbuf_put(struct mime_gbuf *g, const void *p, size_t n)
{
	size_t room = mime_gbuf_room(g, n);

	if (room < n) {
		g->truncated = true;
		n = room;
	}
	if (n) {
		memcpy(g->p + g->len, p, n);
		g->len += n;
	}
}

static inline void mime_gbuf_clear(struct mime_gbuf *g)
{
	g->len = 0;
	g->truncated = false;
}

/* Gives back memory beyond keep bytes (so one huge header does not stay with the parser). */
static inline void mime_gbuf_trim(struct mime_gbuf *g, size_t keep)
{
	if (g->cap > keep) {
		free(g->p);
		g->p = NULL;
		g->cap = 0;
	}
	mime_gbuf_clear(g);
}

static inline void mime_gbuf_free(struct mime_gbuf *g)
{
	free(g->p);
	g->p = NULL;
	g->len = g->cap = 0;
}

#endif
