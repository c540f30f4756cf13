/*
 * kv.h - JetStream set-up for the configuration bucket, and the publisher on the hub.
 *
 * On the hub (domain "hub"): the KV bucket `cfg` (history 5, file storage), i.e. the stream
 * KV_cfg on subjects $KV.cfg.>. On every node's leaf server: the sourced replica stream CFG
 * (no subjects of its own) sourcing KV_cfg from domain "hub" (APIPrefix $JS.hub.API,
 * DeliverPrefix "" since nats.c 3.4.1 segfaults on NULL, pitfall 3). A source, not a mirror:
 * 2.9 cannot promote a mirror (pitfall 1), and nats.c cannot watch one (pitfall 2). The node
 * reads CFG with cfg_watch.h. A source created before the leaf link is up starts flowing 3-5 s
 * after the link comes up (pitfall 15).
 *
 * One thread per struct kv_pub (the control's publisher loop). Functions return 0 or -errno.
 */
#ifndef SLUICE_SYNC_KV_H
#define SLUICE_SYNC_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#define KV_BUCKET         "cfg"
#define KV_STREAM         "KV_cfg"
#define KV_SUBJECT_PREFIX "$KV.cfg."
#define KV_REPLICA_STREAM "CFG"
#define KV_HISTORY        5
#define KV_HUB_API_PREFIX "$JS.hub.API"
#define KV_KEY_MAX        255
#define KV_VALUE_MAX      (8 * 1024 * 1024 - 4096)  /* max_payload less room for headers */

/* Creates the bucket on the hub's server (nc is connected to it) if it is not there. */
int kv_setup_hub(natsConnection *nc);

/* Creates the replica stream CFG on a node's leaf server (nc is connected to it), or updates
 * it to this configuration. Works while the hub is unreachable: the source starts flowing
 * when the link is up. */
int kv_setup_replica(natsConnection *nc);

struct kv_pub;

/* Opens the bucket for publishing (nc connected to the hub's server). -ENOENT: no bucket. */
int kv_pub_open(natsConnection *nc, struct kv_pub **pub_r);

/* Puts value (len bytes) under key, or deletes key when value is NULL, and waits for the
 * server's ack; *rev_r (may be NULL) gets the revision. -EINVAL: a key KV does not allow
 * ([-/_=.a-zA-Z0-9], no empty token, at most KV_KEY_MAX bytes) or a value over
 * KV_VALUE_MAX; -ETIMEDOUT: no ack (the
 * caller retries; a put is idempotent). */
int kv_publish(struct kv_pub *pub, const char *key, const char *value, size_t len,
	       uint64_t *rev_r);

void kv_pub_close(struct kv_pub **pub);

/* Whether key is a valid KV key (the same test as kv_publish's). */
bool kv_key_valid(const char *key);

#endif
