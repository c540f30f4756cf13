/*
 * pool.c - see pool.h.
 */
#include "pool.h"

#include <stdlib.h>
#include <string.h>

void pool_init(struct pool *p, size_t obj_size, uint32_t cap)
{
	p->obj_size = obj_size < sizeof(void *) ? sizeof(void *) : obj_size;
	p->cap = cap;
	p->live = 0;
	p->idle = 0;
	p->free_list = NULL;
}

void *pool_get(struct pool *p)
{
	void *obj;

	if (p->live >= p->cap)
		return NULL;
	if (p->free_list != NULL) {
		obj = p->free_list;
		p->free_list = *(void **)obj;
		p->idle--;
	} else {
		obj = malloc(p->obj_size);
		if (obj == NULL)
			return NULL;
	}
	memset(obj, 0, p->obj_size);
	p->live++;
	return obj;
}

void pool_put(struct pool *p, void *obj)
{
	*(void **)obj = p->free_list;
	p->free_list = obj;
	p->live--;
	p->idle++;
}

void pool_destroy(struct pool *p)
{
	while (p->free_list != NULL) {
		void *next = *(void **)p->free_list;

		free(p->free_list);
		p->free_list = next;
	}
	p->idle = 0;
}
