/*
 * shard_conf.h - the shard loop's own configuration: the session pool's cap and the stop grace,
 * set from [limits] max_sessions and shutdown_grace by the one parser (conf/).
 */
#ifndef SLUICE_SHARD_SHARD_CONF_H
#define SLUICE_SHARD_SHARD_CONF_H

#include <stddef.h>
#include <stdint.h>

struct shard_conf {
	uint32_t max_sessions;       /* per shard */
	uint64_t shutdown_grace_ms;  /* sessions get this long to finish at stop */
};

void shard_conf_defaults(struct shard_conf *sc);
/* A [limits] key. Returns 0, -ENOENT when key is not the shard's, or -EINVAL with the reason in
 * why (what follows "[limits] KEY: "). */
int shard_conf_set(struct shard_conf *sc, const char *key, const char *value, char *why,
		   size_t whylen);

#endif
