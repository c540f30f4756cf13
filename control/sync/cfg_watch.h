/*
 * cfg_watch.h - the node's watcher of its configuration replica: an ordered consumer bound by
 * name to the stream CFG on the node's own leaf server (kv.h), delivering every message from
 * the start, in order. nats.c 3.4.1's kvStore_Watch cannot do this on a replica (pitfall 2), so
 * the watcher reads the KV layout itself: the subject $KV.cfg.<key>, the KV-Operation header
 * (DEL, PURGE). The ordered consumer recreates itself on a gap or a server restart and goes on
 * after the last message it delivered, so the callback sees each message once, in order, for
 * the life of the watch (across the node's leaf server restarting).
 *
 * The callback runs on nats.c's delivery thread for the subscription, one message at a time;
 * cfg_watch_stop waits until no callback is running.
 */
#ifndef SLUICE_SYNC_CFG_WATCH_H
#define SLUICE_SYNC_CFG_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

enum cfg_op { CFG_OP_PUT, CFG_OP_DEL, CFG_OP_PURGE };

/* One message of the replica: key, value (not NUL-terminated; NULL with len 0 for DEL and
 * PURGE), the hub's revision (KV_cfg's sequence, from the Nats-Stream-Source header the
 * source adds; the replica's own sequence if absent) and how many messages the replica holds
 * after this one (0: the watcher has caught up). */
typedef void cfg_watch_fn(const char *key, const char *value, size_t len, enum cfg_op op,
			  uint64_t revision, uint64_t pending, void *arg);

struct cfg_watch;

/* Starts watching (nc connected to the node's own leaf server). Returns 0, -ENOENT (no CFG
 * stream: kv_setup_replica first), -errno. */
int cfg_watch_start(natsConnection *nc, cfg_watch_fn *cb, void *arg, struct cfg_watch **w_r);

/* Stops: no callback runs after it returns. *w is set to NULL. */
void cfg_watch_stop(struct cfg_watch **w);

/* The origin sequence in a Nats-Stream-Source header value ("KV_cfg:<hash> 12" from 2.9.10;
 * later servers add " <filter> <transform>"): 0 if there is none. Exposed for the tests. */
uint64_t cfg_watch_source_seq(const char *header);

#endif
