/*
 * agent_sync.h - the node side of the cluster (issue 16, item 5): with a [cluster] section the
 * agent runs the node's own nats-server leaf, follows the cluster's configuration in its local
 * replica, and turns each committed version into a snapshot for the shards, through the same
 * swap as a SIGHUP reload (agent.c). control/wire/README.md has the formats.
 *
 * Threads. A sync thread (started by agent_sync_open) owns the nats-server child (natsproc: its
 * start waits up to 15 s for /healthz, too long for the agent's loop), the NATS connection, the
 * hub check and the status messages. The watcher's callback (nats.c's delivery thread) owns the
 * cfg_map: on a committed `v` it renders the cluster part (global, roles, node.<name>,
 * domain.*), puts it in a slot under the lock (a newer version replaces one not yet taken) and
 * writes the eventfd the agent's ring reads. Everything else here runs on the agent's thread:
 * the base file + cluster part through the one parser, the key of a refused line, the
 * persisted copy, the "behind" flag.
 *
 * Behind. The node is behind until it knows it runs the hub's latest version: the hub answered
 * (a JetStream request to domain "hub" across the leaf link) within AGENT_SYNC_HUB_FRESH_MS with
 * a last revision the replica has delivered, nothing is pending in the replica, and the last
 * committed version is the applied one. So it is behind at start-up, while the hub cannot be
 * asked (the link down: it cannot tell whether the replica is stale), and while the latest
 * version is refused. Shards read the flag through their snapshot (node_config_behind).
 *
 * Persisted: spool_dir/cluster-config holds the cluster part last applied, its version and the
 * key of each fragment (write, fsync, rename). At start (agent_sync_boot, before NATS is up) it
 * is loaded after the current base file, so the node filters with it even when its nats-server
 * cannot start or the hub is away.
 */
#ifndef SLUICE_AGENT_SYNC_H
#define SLUICE_AGENT_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct node_config;
struct agent_sync;

#define AGENT_SYNC_FILE           "cluster-config"     /* in spool_dir */
#define AGENT_SYNC_NATS_DIR       "nats"               /* in spool_dir: conf, store, pid */
#define AGENT_SYNC_STATUS_MS      5000                 /* a status message this often */
#define AGENT_SYNC_HUB_CHECK_MS   2000                 /* the hub's revision asked this often */
#define AGENT_SYNC_HUB_FRESH_MS   7000                 /* an answer older than this: can't tell */
#define AGENT_SYNC_MAX_BYTES      (256u * 1024 * 1024) /* base file, persisted part */
#define AGENT_SYNC_MAX_HUB_URLS   16

/* main, before the listeners are bound (and --check-config). Without [cluster]: nothing. With
 * it: when spool_dir/cluster-config exists and loads after the base file at path, *conf is
 * replaced by that snapshot; either way it points to the behind flag, which starts set.
 * Returns 0 (loaded, or no file yet), -EINVAL (the file does not load after this base file:
 * logged with the key and line; *conf stays the base file's), -EBADMSG (not such a file) or
 * -errno (unreadable); a node starts in every case, with what it has. */
int agent_sync_boot(const char *path, struct node_config **conf);

/* The agent, with [cluster] in conf: starts the sync thread. 0, or -errno (logged). */
int agent_sync_open(const char *path, const struct node_config *conf, struct agent_sync **as_r);
/* Becomes readable (8 bytes) when the watcher has committed a new version. */
int agent_sync_eventfd(const struct agent_sync *as);

/* After the eventfd: the snapshot of the newest committed version, to hand to the shards, or
 * NULL (nothing new, the same as running, or refused: logged with the key of the bad line).
 * The caller reports the outcome with agent_sync_applied. */
struct node_config *agent_sync_take(struct agent_sync *as);
/* SIGHUP: the base file again with the newest cluster part (or, if that is refused, the
 * running one). NULL when refused (logged). */
struct node_config *agent_sync_reload(struct agent_sync *as);
/* The shards have it (ok) or it could not be handed over (its listeners): on ok the cluster
 * part is persisted and the status says the new version. */
void agent_sync_applied(struct agent_sync *as, bool ok);

/* From the agent's loop: the behind flag, and a status message after a change of it. */
void agent_sync_tick(struct agent_sync *as);

/* Stops the watcher, the sync thread and the nats-server child. *as is set to NULL. */
void agent_sync_close(struct agent_sync **as);

/* Exposed for the tests: the persisted file's format both ways. */
struct cfg_render;
int agent_sync_encode(const struct cfg_render *r, uint64_t version, char **text_r, size_t *len_r);
int agent_sync_decode(const char *text, size_t len, struct cfg_render *r, uint64_t *version_r);

#endif
