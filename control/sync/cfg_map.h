/*
 * cfg_map.h - the node's key -> value map of the configuration bucket, and the configuration
 * buffer it yields (cluster-design.md, "The configuration bucket").
 *
 * Messages are fed in replica order (cfg_watch.h). A change is published as its keys, then
 * `v` = N; so keys arriving after the last `v` are staged, and only a `v` with a new version
 * commits them: a change of many keys applies once, whole, and a node that reads the replica
 * while a change is half-published sees the previous version, not a mix.
 *
 * The buffer: the node's local base file, then `global`, `roles`, its own `node.<name>`, and
 * every `domain.*` in key order, each fragment ending in a newline. cfg_render_key_of_line()
 * names the key whose fragment holds a line, for the parse error message.
 *
 * Not thread-safe: one owner (the watcher's callback thread, or whoever it hands messages to).
 */
#ifndef SLUICE_SYNC_CFG_MAP_H
#define SLUICE_SYNC_CFG_MAP_H

#include <stddef.h>
#include <stdint.h>

#include "cfg_watch.h"

#define CFG_MAP_MAX_BYTES (256u * 1024 * 1024)   /* keys and values, committed and staged */
#define CFG_MAP_VERSION_KEY "v"

struct cfg_map;

/* A map for node `node_name` (whose node.<name> key it renders). NULL when out of memory. */
struct cfg_map *cfg_map_new(const char *node_name);
void cfg_map_free(struct cfg_map **m);

/* Feeds one message. Returns 1 when it was `v` with a version other than the committed one
 * (staged keys are now committed: render and apply), 0 when it was staged or `v` did not
 * change, -EBADMSG (`v` is not a decimal number: nothing committed, staged kept), -EFBIG (the
 * map would pass CFG_MAP_MAX_BYTES: the message is dropped), -ENOMEM. */
int cfg_map_feed(struct cfg_map *m, const char *key, const char *value, size_t len,
		 enum cfg_op op);

/* The committed cluster version (0 before the first `v`). */
uint64_t cfg_map_version(const struct cfg_map *m);

/* The committed value of key, or NULL; *len_r gets its length. */
const char *cfg_map_get(const struct cfg_map *m, const char *key, size_t *len_r);

struct cfg_render {
	char   *buf;        /* NUL-terminated, malloc'd */
	size_t  len;
	size_t  n_parts;
	struct cfg_render_part {
		char       *key;        /* "base" for the local file; malloc'd */
		unsigned    first_line; /* 1-based line of the buffer where the fragment starts */
	} *parts;
};

/* Assembles the committed configuration after base (base_len bytes, the node's local file).
 * The result owns its memory (cfg_render_free). 0 or -ENOMEM. */
int cfg_map_render(const struct cfg_map *m, const char *base, size_t base_len,
		   struct cfg_render *r);
void cfg_render_free(struct cfg_render *r);

/* The key whose fragment holds 1-based line `line` of r's buffer, or NULL past its end. */
const char *cfg_render_key_of_line(const struct cfg_render *r, unsigned line);

#endif
