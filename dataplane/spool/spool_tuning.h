/*
 * spool_tuning.h - the [spool] section: segment and spill sizes, the free-space floor and the
 * group commit's delay. Filled by the one parser (conf/); main turns it into a struct spool_conf
 * per shard.
 */
#ifndef SLUICE_SPOOL_SPOOL_TUNING_H
#define SLUICE_SPOOL_SPOOL_TUNING_H

#include <stddef.h>
#include <stdint.h>

struct spool_tuning {
	uint64_t segment_size, spill_size, min_free;
	uint32_t commit_delay_us;
};

void spool_tuning_defaults(struct spool_tuning *s);
/* A [spool] key. Returns 0, -ENOENT for a key that is not one, or -EINVAL with the reason in why
 * (what follows "[spool] KEY: "). */
int spool_tuning_set(struct spool_tuning *s, const char *key, const char *value, char *why,
		     size_t whylen);

#endif
