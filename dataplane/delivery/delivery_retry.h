/*
 * delivery_retry.h - when to try a deferred message again, when to warn its sender that it is
 * late, and when to give up (RFC 5321 4.5.4.1: retry at least 30 minutes apart once past the
 * first attempts, give up after 4-5 days).
 *
 * The schedule: the first `retry_flat` retries come `retry_first` apart, then the gap doubles on
 * each failure up to `retry_max`; each gap is spread by +-jitter_pct percent so that a burst of
 * messages deferred together (a destination down) does not come back as one burst. The last try
 * is pulled in to the expiry time, so a message is tried once more just before it bounces.
 *
 * Configuration keys (per node, or per domain): retry_first = 5m, retry_max = 1h, expire = 5d,
 * delay_warning = 4h (0: never warn), retry_flat = 2, retry_jitter = 10 (percent).
 *
 * Pure functions: the caller passes the clock and a random number. Any thread.
 */
#ifndef SLUICE_DELIVERY_RETRY_H
#define SLUICE_DELIVERY_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct delivery_retry_conf {
	uint64_t first_ms;          /* retry_first */
	uint64_t max_ms;            /* retry_max */
	uint64_t expire_ms;         /* expire: from arrival */
	uint64_t delay_warning_ms;  /* delay_warning: from arrival; 0 = off */
	uint32_t flat;              /* retry_flat: retries at first_ms before the doubling starts */
	uint32_t jitter_pct;        /* retry_jitter: 0..50 */
};

void delivery_retry_conf_default(struct delivery_retry_conf *c);
/* Sets one key from its text. 0, -ENOENT (not a retry key), -EINVAL/-ERANGE (bad value). */
int delivery_retry_conf_set(struct delivery_retry_conf *c, const char *key, const char *value);
/* 0, or -EINVAL with the reason in err: retry_first > retry_max, expire <= retry_first, ... */
int delivery_retry_conf_check(const struct delivery_retry_conf *c, char *err, size_t errlen);

/* The gap after the n-th failed attempt (n >= 1), jitter applied with rnd (any 32-bit value);
 * never above max_ms and never below 1 s. */
uint64_t delivery_retry_delay_ms(const struct delivery_retry_conf *c, unsigned n, uint32_t rnd);

enum delivery_retry_verdict {
	DELIVERY_RETRY_AGAIN = 0,   /* try again at *next_ms_r */
	DELIVERY_RETRY_EXPIRED,     /* past expire: bounce what is left (a DSN, Action: failed) */
};

struct delivery_retry_plan {
	enum delivery_retry_verdict verdict;
	uint64_t next_ms;          /* AGAIN: when, on the caller's clock */
	bool     warn_now;         /* send the delayed DSN now (Action: delayed) */
};

/*
 * After the n-th failed attempt (n >= 1) of a message that arrived at arrival_ms, now now_ms
 * (one clock, wall or monotonic, for both). warned: the delay warning went already.
 */
void delivery_retry_plan(const struct delivery_retry_conf *c, uint64_t arrival_ms, uint64_t now_ms,
			 unsigned n, bool warned, uint32_t rnd, struct delivery_retry_plan *plan_r);

#endif
