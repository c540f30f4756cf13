/*
 * delivery_route.h - the order in which a domain's destinations are tried, and which of them to
 * skip for a while because they just failed.
 *
 * Two sources of destinations:
 *   - a fixed route from the configuration (struct domain_conf's dest[]): lower priority first;
 *     destinations of equal priority are rotated by a round-robin counter the caller keeps per
 *     domain (0 keeps the written order), so load spreads over them;
 *   - MX records (RFC 5321 5.1): by preference, equal preferences shuffled; no MX at all means the
 *     implicit MX (the domain itself, for its A/AAAA); a null MX (RFC 7505: one record, target
 *     ".") means the domain takes no mail: a permanent failure (556 5.1.10); if our own name is
 *     among them, it and every record not preferred to it are dropped (we must not relay to
 *     ourselves or to a less preferred MX).
 *
 * Destination health: a small direct-mapped table per shard, keyed by host:port. After
 * fail_threshold consecutive failures a destination is down for down_base_ms, doubling with each
 * further failure up to down_max_ms; a success clears it. A collision in the table only forgets
 * state (a down host gets tried again), never marks a good host down.
 *
 * Pure functions and per-shard state; the shard's thread only. No allocation.
 */
#ifndef SLUICE_DELIVERY_ROUTE_H
#define SLUICE_DELIVERY_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

struct domain_conf;

#define DELIVERY_ROUTE_MAX 16
#define DELIVERY_ROUTE_HOST_MAX 256

struct delivery_route_dest {
	char     host[DELIVERY_ROUTE_HOST_MAX];   /* a host name or an address literal */
	uint16_t port;
	uint16_t prio;                            /* route priority or MX preference */
	bool     implicit;                        /* the implicit MX: the domain itself */
};

struct delivery_route {
	unsigned                   n;
	struct delivery_route_dest d[DELIVERY_ROUTE_MAX];
};

/* The fixed route of a domain. 0, or -ENOENT when it has no destinations (or routes by MX). */
int delivery_route_fixed(const struct domain_conf *dc, uint32_t rr,
			 struct delivery_route *route_r);

/* One MX record as the resolver gave it (host without the trailing dot; "" or "." is null). */
struct delivery_route_mx {
	const char *host;
	uint16_t    pref;
};

/*
 * Orders MX records for delivery to domain on port (25). self: our own host name (NULL: none).
 * rnd: seeds the shuffle of equal preferences. Returns 0; -ENXIO for a null MX (RFC 7505: fail
 * the recipients with 556 5.1.10); -ELOOP when every usable record is us or less preferred than
 * us (fail with 5.4.6, as Postfix's "mail for X loops back to myself"); -EINVAL for a domain name
 * that does not fit. Records beyond DELIVERY_ROUTE_MAX (the least preferred) are dropped.
 */
int delivery_route_mx(const char *domain, const struct delivery_route_mx *mx, unsigned nmx,
		      uint16_t port, const char *self, uint64_t rnd, struct delivery_route *route_r);

#define DELIVERY_ROUTE_HEALTH_SLOTS 256

struct delivery_route_health_slot {
	uint64_t key;             /* 0: empty */
	uint64_t down_until_ms;
	uint32_t fails;           /* consecutive */
};

struct delivery_route_health {
	uint32_t fail_threshold;
	uint64_t down_base_ms, down_max_ms;
	struct delivery_route_health_slot slot[DELIVERY_ROUTE_HEALTH_SLOTS];
};

/* 0 arguments take the defaults: 1 failure, 60 s, 10 min. */
void delivery_route_health_init(struct delivery_route_health *h, uint32_t fail_threshold,
				uint64_t down_base_ms, uint64_t down_max_ms);
/* A connection or session to host:port failed (ok false: refused, timeout, 4xx/5xx banner,
 * 421...) or worked (ok true: a transaction completed). */
void delivery_route_health_report(struct delivery_route_health *h, const char *host, uint16_t port,
				  bool ok, uint64_t now_ms);
/* 0 when host:port may be tried now, else the time it comes back. */
uint64_t delivery_route_health_down_until(const struct delivery_route_health *h, const char *host,
					  uint16_t port, uint64_t now_ms);

/*
 * The first destination at index >= from that is not down. 0 with *idx_r; -EAGAIN when every
 * remaining one is down (*retry_at_r: the earliest time one comes back; defer until then);
 * -ENOENT when from is past the end (every destination was tried).
 */
int delivery_route_pick(const struct delivery_route *r, const struct delivery_route_health *h,
			unsigned from, uint64_t now_ms, unsigned *idx_r, uint64_t *retry_at_r);

#endif
