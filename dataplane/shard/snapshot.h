/*
 * snapshot.h - a configuration snapshot's reference count, as the shards hold it.
 *
 * A snapshot (struct node_config, conf/node_config.h) is immutable once built; every shard holds
 * a reference to the one it uses and switches to a new one at a safe point (shard_set_config),
 * dropping the old, which is freed when the last holder lets go (the same idea as Seastar's
 * foreign pointers and RCU). shard/ knows only this head, which a node_config begins with: the
 * count, how the builder frees it, and the shard loop's own settings.
 */
#ifndef SLUICE_SHARD_SNAPSHOT_H
#define SLUICE_SHARD_SNAPSHOT_H

#include <stdatomic.h>

#include "shard/shard_conf.h"

struct node_config;

struct snapshot {
	_Atomic unsigned  refs;
	void            (*free_fn)(struct node_config *c);   /* the builder's, at the last unref */
	struct shard_conf shard;
};

/* A node_config's head (its first member). */
static inline struct snapshot *snapshot_of(struct node_config *c)
{
	return (struct snapshot *)(void *)c;
}

struct node_config *node_config_ref(struct node_config *c);
/* Drops a reference and clears *c; the last one frees the snapshot. */
void node_config_unref(struct node_config **c);

#endif
