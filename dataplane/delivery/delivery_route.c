/*
 * delivery_route.c - see delivery_route.h.
 */
#include "delivery_route.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "conf/node_config.h"

/* splitmix64: a tiny, good enough generator for shuffling (not for secrets). */
static uint64_t route_rand(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* Stable insertion sort by prio: n <= DELIVERY_ROUTE_MAX, and stability keeps written order. */
static void route_sort(struct delivery_route *r)
{
	for (unsigned i = 1; i < r->n; i++) {
		struct delivery_route_dest t = r->d[i];
		unsigned j = i;

		while (j > 0 && r->d[j - 1].prio > t.prio) {
			r->d[j] = r->d[j - 1];
			j--;
		}
		r->d[j] = t;
	}
}

static void route_swap(struct delivery_route *r, unsigned a, unsigned b)
{
	struct delivery_route_dest t = r->d[a];

	r->d[a] = r->d[b];
	r->d[b] = t;
}

int delivery_route_fixed(const struct domain_conf *dc, uint32_t rr, struct delivery_route *r)
{
	unsigned i = 0;

	r->n = 0;
	if (dc->route_mx || dc->ndest == 0)
		return -ENOENT;
	for (unsigned k = 0; k < dc->ndest && k < ROUTE_DEST_MAX && r->n < DELIVERY_ROUTE_MAX; k++) {
		struct delivery_route_dest *d = &r->d[r->n++];

		snprintf(d->host, sizeof(d->host), "%s", dc->dest[k].host);
		d->port = dc->dest[k].port ? dc->dest[k].port : 25;
		d->prio = dc->dest[k].prio;
		d->implicit = false;
	}
	route_sort(r);
	/* Rotate each run of equal priority left by rr % run length (round robin). */
	while (i < r->n) {
		unsigned j = i + 1, len, rot;

		while (j < r->n && r->d[j].prio == r->d[i].prio)
			j++;
		len = j - i;
		rot = rr % len;
		for (unsigned s = 0; s < rot; s++)
			for (unsigned k = i; k + 1 < j; k++)
				route_swap(r, k, k + 1);
		i = j;
	}
	return 0;
}

static bool mx_is_null(const char *h)
{
	return h == NULL || h[0] == '\0' || strcmp(h, ".") == 0;
}

static bool host_eq(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	/* Ignore one trailing dot on either side. */
	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

int delivery_route_mx(const char *domain, const struct delivery_route_mx *mx, unsigned nmx,
		      uint16_t port, const char *self, uint64_t rnd, struct delivery_route *r)
{
	unsigned nnull = 0, i;
	uint64_t seed = rnd;
	int self_pref = -1;

	r->n = 0;
	if (port == 0)
		port = 25;
	if (nmx == 0) {
		/* RFC 5321 5.1: no MX: the domain itself is the implicit MX, preference 0. */
		if (domain == NULL || domain[0] == '\0' || strlen(domain) >= DELIVERY_ROUTE_HOST_MAX)
			return -EINVAL;
		snprintf(r->d[0].host, sizeof(r->d[0].host), "%s", domain);
		r->d[0].port = port;
		r->d[0].prio = 0;
		r->d[0].implicit = true;
		r->n = 1;
		return 0;
	}
	if (self != NULL && self[0] != '\0')
		for (i = 0; i < nmx; i++)
			if (!mx_is_null(mx[i].host) && host_eq(mx[i].host, self) &&
			    (self_pref < 0 || mx[i].pref < self_pref))
				self_pref = mx[i].pref;
	for (i = 0; i < nmx; i++) {
		if (mx_is_null(mx[i].host)) {
			nnull++;
			continue;
		}
		/* RFC 5321 5.1: when we are an MX, only the more preferred ones are candidates. */
		if (self_pref >= 0 && mx[i].pref >= self_pref)
			continue;
		if (strlen(mx[i].host) >= DELIVERY_ROUTE_HOST_MAX)
			continue;
		if (r->n == DELIVERY_ROUTE_MAX) {
			/* Full: replace the least preferred if this one is better. */
			unsigned worst = 0;

			for (unsigned k = 1; k < r->n; k++)
				if (r->d[k].prio > r->d[worst].prio)
					worst = k;
			if (r->d[worst].prio <= mx[i].pref)
				continue;
			r->n--;
			route_swap(r, worst, r->n);
		}
		snprintf(r->d[r->n].host, sizeof(r->d[r->n].host), "%s", mx[i].host);
		r->d[r->n].port = port;
		r->d[r->n].prio = mx[i].pref;
		r->d[r->n].implicit = false;
		r->n++;
	}
	if (r->n == 0) {
		if (nnull > 0 && self_pref < 0)
			return -ENXIO;
		return self_pref >= 0 ? -ELOOP : -ENXIO;
	}
	route_sort(r);
	/* Shuffle each run of equal preference (Fisher-Yates), RFC 5321 5.1. */
	for (i = 0; i < r->n;) {
		unsigned j = i + 1;

		while (j < r->n && r->d[j].prio == r->d[i].prio)
			j++;
		for (unsigned k = j - 1; k > i; k--)
			route_swap(r, k, i + (unsigned)(route_rand(&seed) % (k - i + 1)));
		i = j;
	}
	return 0;
}

/* ---- Health ---- */

static uint64_t health_key(const char *host, uint16_t port)
{
	uint64_t h = 0xcbf29ce484222325ull;   /* FNV-1a, case-folded */

	for (const char *p = host; *p; p++) {
		h ^= (uint64_t)(unsigned char)tolower((unsigned char)*p);
		h *= 0x100000001b3ull;
	}
	h ^= port;
	h *= 0x100000001b3ull;
	return h ? h : 1;
}

void delivery_route_health_init(struct delivery_route_health *h, uint32_t fail_threshold,
				uint64_t down_base_ms, uint64_t down_max_ms)
{
	memset(h, 0, sizeof(*h));
	h->fail_threshold = fail_threshold ? fail_threshold : 1;
	h->down_base_ms = down_base_ms ? down_base_ms : 60 * 1000;
	h->down_max_ms = down_max_ms ? down_max_ms : 10 * 60 * 1000;
	if (h->down_max_ms < h->down_base_ms)
		h->down_max_ms = h->down_base_ms;
}

void delivery_route_health_report(struct delivery_route_health *h, const char *host, uint16_t port,
				  bool ok, uint64_t now_ms)
{
	uint64_t key = health_key(host, port);
	struct delivery_route_health_slot *s = &h->slot[key % DELIVERY_ROUTE_HEALTH_SLOTS];

	if (ok) {
		if (s->key == key)
			memset(s, 0, sizeof(*s));
		return;
	}
	if (s->key != key) {
		/* Evicts whatever was there: forgetting a down host only costs a wasted try. */
		s->key = key;
		s->fails = 0;
		s->down_until_ms = 0;
	}
	if (s->fails < UINT32_MAX)
		s->fails++;
	if (s->fails >= h->fail_threshold) {
		uint64_t d = h->down_base_ms;
		uint32_t extra = s->fails - h->fail_threshold;

		while (extra-- > 0 && d < h->down_max_ms)
			d *= 2;
		if (d > h->down_max_ms)
			d = h->down_max_ms;
		s->down_until_ms = now_ms + d;
	}
}

uint64_t delivery_route_health_down_until(const struct delivery_route_health *h, const char *host,
					  uint16_t port, uint64_t now_ms)
{
	uint64_t key = health_key(host, port);
	const struct delivery_route_health_slot *s = &h->slot[key % DELIVERY_ROUTE_HEALTH_SLOTS];

	if (s->key != key || s->down_until_ms <= now_ms)
		return 0;
	return s->down_until_ms;
}

int delivery_route_pick(const struct delivery_route *r, const struct delivery_route_health *h,
			unsigned from, uint64_t now_ms, unsigned *idx_r, uint64_t *retry_at_r)
{
	uint64_t earliest = UINT64_MAX;

	if (from >= r->n)
		return -ENOENT;
	for (unsigned i = from; i < r->n; i++) {
		uint64_t until = h != NULL ? delivery_route_health_down_until(h, r->d[i].host,
									  r->d[i].port, now_ms)
					   : 0;

		if (until == 0) {
			*idx_r = i;
			return 0;
		}
		if (until < earliest)
			earliest = until;
	}
	if (retry_at_r != NULL)
		*retry_at_r = earliest;
	return -EAGAIN;
}
