/*
 * shard_conf.c - [limits] max_sessions and shutdown_grace. See shard_conf.h.
 */
#include "shard/shard_conf.h"

#include <errno.h>
#include <string.h>

#include "base/cfgval.h"

void shard_conf_defaults(struct shard_conf *sc)
{
	*sc = (struct shard_conf){ .max_sessions = 20000, .shutdown_grace_ms = 10000 };
}

int shard_conf_set(struct shard_conf *sc, const char *key, const char *value, char *why,
		   size_t whylen)
{
	uint64_t u;
	int r;

	if (strcmp(key, "max_sessions") == 0) {
		r = cfgval_uint(value, 1, 1000000, &u);
		sc->max_sessions = (uint32_t)u;
	} else if (strcmp(key, "shutdown_grace") == 0) {
		r = cfgval_duration_ms(value, &u);
		sc->shutdown_grace_ms = u;
	} else
		return -ENOENT;
	return r < 0 ? cfgval_bad_value(r, value, true, why, whylen) : 0;
}
