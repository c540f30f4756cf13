/*
 * snapshot.c - a configuration snapshot's reference count. See snapshot.h.
 */
#include "shard/snapshot.h"

#include <stddef.h>

struct node_config *node_config_ref(struct node_config *c)
{
	atomic_fetch_add_explicit(&snapshot_of(c)->refs, 1, memory_order_relaxed);
	return c;
}

void node_config_unref(struct node_config **cp)
{
	struct node_config *c = *cp;
	struct snapshot *s;

	*cp = NULL;
	if (c == NULL)
		return;
	s = snapshot_of(c);
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
		s->free_fn(c);
}
