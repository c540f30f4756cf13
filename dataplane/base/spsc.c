/*
 * spsc.c - see spsc.h.
 */
#include "spsc.h"

#include <errno.h>

int spsc_init(struct spsc *q, uint32_t cap)
{
	uint32_t n = 1;

	while (n < cap)
		n <<= 1;
	q->slots = calloc(n, sizeof(*q->slots));
	if (q->slots == NULL)
		return -ENOMEM;
	q->mask = n - 1;
	atomic_init(&q->head, 0);
	atomic_init(&q->tail, 0);
	return 0;
}

void spsc_destroy(struct spsc *q)
{
	free(q->slots);
	q->slots = NULL;
}
