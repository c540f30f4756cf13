/*
 * delivery_stats.c - what delivery shows of itself while the node runs: its counters (written by
 * the shard with base/counter.h's stores, copied by any thread) and the queue per recipient
 * domain (computed on the shard's thread when the agent asks: see delivery.h).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/counter.h"
#include "delivery/delivery_impl.h"

void delivery_get_counters(const struct shard *sh, struct delivery_counters *out)
{
	const struct delivery_shard *ds = __atomic_load_n(&sh->delivery, __ATOMIC_ACQUIRE);
	const uint64_t *from;
	uint64_t *to = (uint64_t *)out;

	memset(out, 0, sizeof(*out));
	if (ds == NULL)
		return;
	from = (const uint64_t *)&ds->ctr;
	_Static_assert(sizeof(struct delivery_counters) % sizeof(uint64_t) == 0, "counters only");
	for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
		to[i] = ctr_read(&from[i]);
}

/* The entry of domain d in the open-addressing table v (cap a power of two), or NULL when the
 * table is full. */
static struct delivery_domain_depth *depth_slot(struct delivery_domain_depth *v, size_t cap,
						struct slice d)
{
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < d.len; i++)
		h = (h ^ (uint8_t)(d.p[i] | 0x20)) * 1099511628211ull;
	for (size_t k = 0; k < cap; k++) {
		struct delivery_domain_depth *e = &v[(h + k) & (cap - 1)];

		if (e->domain[0] == '\0') {
			size_t n = d.len < sizeof(e->domain) - 1 ? d.len : sizeof(e->domain) - 1;

			for (size_t i = 0; i < n; i++)
				e->domain[i] = (char)(d.p[i] >= 'A' && d.p[i] <= 'Z' ? d.p[i] + 32 : d.p[i]);
			e->domain[n] = '\0';
			return e;
		}
		if (strlen(e->domain) == d.len && strncasecmp(e->domain, d.p, d.len) == 0)
			return e;
	}
	return NULL;
}

static void depth_apply(struct shard *sh, struct shard_msg *base)
{
	struct delivery_depth_msg *dm = (struct delivery_depth_msg *)base;
	struct delivery_depth_part *part = &dm->req->parts[dm->idx];
	struct delivery_shard *ds = delivery_of(sh);
	struct delivery_domain_depth *v = NULL;
	size_t cap = 64;

	/* at most one domain per recipient: the table never needs more than twice that */
	if (ds != NULL) {
		size_t nr = 0;

		for (int st = 0; st < DMSG_NSTATES; st++)
			for (struct dlink *l = ds->list[st].next; l != &ds->list[st]; l = l->next)
				nr += ((struct dmsg *)l)->nrcpt;
		while (cap < 2 * nr)
			cap *= 2;
		v = calloc(cap, sizeof(*v));
	}
	for (int st = 0; v != NULL && st < DMSG_NSTATES; st++)
		for (struct dlink *l = ds->list[st].next; l != &ds->list[st]; l = l->next) {
			struct dmsg *m = (struct dmsg *)l;

			for (uint32_t i = 0; i < m->nrcpt; i++) {
				struct slice d = delivery_addr_domain(m->rcpt[i].addr);
				struct delivery_domain_depth *e;
				bool seen = false;

				if (m->rcpt[i].state != SPOOL_RCPT_QUEUED)
					continue;
				/* once per message and domain */
				for (uint32_t k = 0; k < i && !seen; k++) {
					struct slice o = delivery_addr_domain(m->rcpt[k].addr);

					seen = m->rcpt[k].state == SPOOL_RCPT_QUEUED && o.len == d.len &&
					       strncasecmp(o.p, d.p, d.len) == 0;
				}
				if (seen || (e = depth_slot(v, cap, d)) == NULL)
					continue;
				e->messages++;
				if (e->oldest_ns == 0 || m->arrival_ns < e->oldest_ns)
					e->oldest_ns = m->arrival_ns;
			}
		}
	/* packed, for the agent */
	part->n = 0;
	for (size_t k = 0; v != NULL && k < cap; k++)
		if (v[k].domain[0] != '\0')
			v[part->n++] = v[k];
	part->v = v;
	atomic_fetch_sub(&dm->req->remaining, 1);
	free(dm);
}

struct delivery_depth_msg *delivery_depth_msg_new(struct delivery_depth_req *req, unsigned idx)
{
	struct delivery_depth_msg *dm = calloc(1, sizeof(*dm));

	if (dm == NULL)
		return NULL;
	dm->base.fn = depth_apply;
	dm->req = req;
	dm->idx = idx;
	return dm;
}
