/*
 * delivery_retry.c - see delivery_retry.h.
 */
#include "delivery_retry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/cfgval.h"

void delivery_retry_conf_default(struct delivery_retry_conf *c)
{
	*c = (struct delivery_retry_conf){
		.first_ms = 5 * 60 * 1000ull,
		.max_ms = 60 * 60 * 1000ull,
		.expire_ms = 5 * 24 * 3600 * 1000ull,
		.delay_warning_ms = 4 * 3600 * 1000ull,
		.flat = 2,
		.jitter_pct = 10,
	};
}

int delivery_retry_conf_set(struct delivery_retry_conf *c, const char *key, const char *value)
{
	uint64_t v;
	int rc;

	if (strcmp(key, "retry_first") == 0 || strcmp(key, "retry_max") == 0 ||
	    strcmp(key, "expire") == 0 || strcmp(key, "delay_warning") == 0) {
		rc = cfgval_duration_ms(value, &v);
		if (rc != 0)
			return rc;
		if (strcmp(key, "retry_first") == 0)
			c->first_ms = v;
		else if (strcmp(key, "retry_max") == 0)
			c->max_ms = v;
		else if (strcmp(key, "expire") == 0)
			c->expire_ms = v;
		else
			c->delay_warning_ms = v;
		return 0;
	}
	if (strcmp(key, "retry_flat") == 0) {
		rc = cfgval_uint(value, 0, 100, &v);
		if (rc == 0)
			c->flat = (uint32_t)v;
		return rc;
	}
	if (strcmp(key, "retry_jitter") == 0) {
		rc = cfgval_uint(value, 0, 50, &v);
		if (rc == 0)
			c->jitter_pct = (uint32_t)v;
		return rc;
	}
	return -ENOENT;
}

int delivery_retry_conf_check(const struct delivery_retry_conf *c, char *err, size_t errlen)
{
	const char *why = NULL;

	if (c->first_ms < 1000)
		why = "retry_first must be at least 1s";
	else if (c->max_ms < c->first_ms)
		why = "retry_max must not be below retry_first";
	else if (c->expire_ms <= c->first_ms)
		why = "expire must be above retry_first";
	else if (c->delay_warning_ms != 0 && c->delay_warning_ms >= c->expire_ms)
		why = "delay_warning must be below expire (or 0 for none)";
	else if (c->jitter_pct > 50)
		why = "retry_jitter must be 0..50";
	if (why == NULL)
		return 0;
	snprintf(err, errlen, "%s", why);
	return -EINVAL;
}

uint64_t delivery_retry_delay_ms(const struct delivery_retry_conf *c, unsigned n, uint32_t rnd)
{
	uint64_t d = c->first_ms, spread;
	unsigned shift = n > c->flat ? n - c->flat : 0;

	/* Doubling, saturating at max_ms (and never shifting past 63 bits). */
	while (shift-- > 0 && d < c->max_ms)
		d *= 2;
	if (d > c->max_ms)
		d = c->max_ms;
	/* rnd maps to [-jitter, +jitter] of d. */
	spread = d * c->jitter_pct / 100;
	if (spread > 0) {
		uint64_t off = (uint64_t)rnd % (2 * spread + 1);

		d = d - spread + off;
	}
	if (d > c->max_ms)
		d = c->max_ms;
	if (d < 1000)
		d = 1000;
	return d;
}

void delivery_retry_plan(const struct delivery_retry_conf *c, uint64_t arrival_ms, uint64_t now_ms,
			 unsigned n, bool warned, uint32_t rnd, struct delivery_retry_plan *plan_r)
{
	uint64_t expire_at = arrival_ms + c->expire_ms, next;

	plan_r->warn_now = false;
	plan_r->next_ms = 0;
	if (now_ms >= expire_at) {
		plan_r->verdict = DELIVERY_RETRY_EXPIRED;
		return;
	}
	plan_r->verdict = DELIVERY_RETRY_AGAIN;
	if (!warned && c->delay_warning_ms != 0 && now_ms >= arrival_ms + c->delay_warning_ms)
		plan_r->warn_now = true;
	next = now_ms + delivery_retry_delay_ms(c, n ? n : 1, rnd);
	/* One last try at the expiry time rather than none in the last gap. */
	if (next > expire_at)
		next = expire_at;
	plan_r->next_ms = next;
}
