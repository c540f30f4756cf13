/*
 * spool_tuning.c - the [spool] keys. See spool_tuning.h.
 */
#include "spool/spool_tuning.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/cfgval.h"

void spool_tuning_defaults(struct spool_tuning *s)
{
	*s = (struct spool_tuning){
		.segment_size = 64u << 20,
		.spill_size = 1u << 20,
		.min_free = 64u << 20,
		/* Taken only while other sessions are mid-body: it cut fdatasyncs 3x and CPU per
		 * message by a third here, for at most 1 ms of latency (see README). */
		.commit_delay_us = 1000,
	};
}

/* In microseconds ("500us") or any duration; at most 100 ms. */
static int commit_delay_us(const char *v, uint64_t *u)
{
	size_t n = strlen(v);
	int r;

	if (n > 2 && strcmp(v + n - 2, "us") == 0) {
		char num[32];

		snprintf(num, sizeof(num), "%.*s", (int)(n - 2), v);
		r = cfgval_uint(num, 0, 100000, u);
	} else {
		r = cfgval_duration_ms(v, u);
		*u *= 1000;
	}
	if (r == 0 && *u > 100000)
		r = -ERANGE;
	return r;
}

int spool_tuning_set(struct spool_tuning *s, const char *k, const char *v, char *why,
		     size_t whylen)
{
	uint64_t u;
	int r;

	if (strcmp(k, "segment_size") == 0) {
		r = cfgval_size(v, &u);
		if (r == 0 && (u < (1u << 20) || u > (UINT64_C(1) << 34)))
			r = -ERANGE;
		s->segment_size = u;
	} else if (strcmp(k, "spill_size") == 0) {
		r = cfgval_size(v, &u);
		s->spill_size = u;
	} else if (strcmp(k, "min_free") == 0) {
		r = cfgval_size(v, &u);
		s->min_free = u;
	} else if (strcmp(k, "commit_delay") == 0) {
		r = commit_delay_us(v, &u);
		s->commit_delay_us = (uint32_t)u;
	} else
		return -ENOENT;
	return r < 0 ? cfgval_bad_value(r, v, false, why, whylen) : 0;
}
