/*
 * spool_quota.c - the body octets this shard's spool holds per recipient domain, for the
 * per-domain spool_quota (RCPT answers 451 4.3.1 past it). A message counts once per distinct
 * domain of its recipients, from the moment it is durable (or found at recovery) until its
 * journal says DONE (delivered, bounced, expired or deleted): the same span as the spool's
 * queued count. Each shard holds quota / quota_shares (the shards share nothing, so a domain
 * whose mail lands unevenly may be refused a little early on one of them).
 *
 * Shard thread only (the spool's owner). Domain entries live until the spool closes.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "spool_impl.h"

/* After the recipient's last '@'; empty without one (as the delivery side reads it). */
static struct slice rcpt_domain(struct slice rcpt)
{
	const char *at = rcpt.len ? memrchr(rcpt.p, '@', rcpt.len) : NULL;

	if (at == NULL)
		return (struct slice){ "", 0 };
	return (struct slice){ at + 1, rcpt.len - (size_t)(at + 1 - rcpt.p) };
}

static uint32_t dom_hash(struct slice d)
{
	uint32_t h = 2166136261u;

	for (size_t i = 0; i < d.len; i++)
		h = (h ^ (uint32_t)(unsigned char)(d.p[i] | 0x20)) * 16777619u;
	return h % SPOOL_QUOTA_HASH;
}

static struct spool_qdom *dom_get(struct spool_qdom *const *tab, struct slice d)
{
	struct spool_qdom *q;

	for (q = tab[dom_hash(d)]; q; q = q->next)
		if (q->len == d.len && strncasecmp(q->name, d.p, d.len) == 0)
			return q;
	return NULL;
}

static struct spool_qdom *dom_put(struct spool_qdom **tab, struct slice d)
{
	struct spool_qdom *q = dom_get(tab, d);
	uint32_t h;

	if (q || !(q = calloc(1, sizeof(*q) + d.len + 1)))
		return q;
	memcpy(q->name, d.p, d.len);
	q->len = (uint32_t)d.len;
	h = dom_hash(d);
	q->next = tab[h];
	tab[h] = q;
	return q;
}

static struct spool_qdom *ref_at(const struct spool_quota_ref *ref, uint32_t i)
{
	return ref->n == 1 ? ref->one : ref->many[i];
}

int spool_quota_ref_build(struct spool_qdom **tab, const struct spool_envelope *env,
			  uint64_t bytes, struct spool_quota_ref *ref_r)
{
	struct spool_qdom *first = NULL, **many = NULL;
	uint32_t n = 0;

	*ref_r = (struct spool_quota_ref){ .bytes = bytes };
	for (uint32_t i = 0; i < env->nrcpt; i++) {
		struct spool_qdom *q = dom_put(tab, rcpt_domain(env->rcpts[i]));
		bool seen = q == first;

		if (q == NULL) {
			free(many);
			return -ENOMEM;
		}
		for (uint32_t k = 0; many && k < n && !seen; k++)
			seen = many[k] == q;
		if (seen)
			continue;
		if (n == 0) {
			first = q;
		} else {
			if (many == NULL) {
				/* A second domain: room for every recipient's, the worst case. */
				if (!(many = malloc(env->nrcpt * sizeof(*many))))
					return -ENOMEM;
				many[0] = first;
			}
			many[n] = q;
		}
		n++;
	}
	ref_r->one = first;
	ref_r->many = many;
	ref_r->n = n;
	return 0;
}

void spool_quota_charge(struct spool_quota_ref *ref)
{
	if (ref->charged)
		return;
	ref->charged = true;
	for (uint32_t i = 0; i < ref->n; i++)
		ref_at(ref, i)->bytes += ref->bytes;
}

void spool_quota_release(struct spool_quota_ref *ref)
{
	for (uint32_t i = 0; ref->charged && i < ref->n; i++) {
		struct spool_qdom *q = ref_at(ref, i);

		q->bytes = q->bytes > ref->bytes ? q->bytes - ref->bytes : 0;
	}
	free(ref->many);
	memset(ref, 0, sizeof(*ref));
}

void spool_quota_tab_free(struct spool_qdom **tab)
{
	for (uint32_t h = 0; h < SPOOL_QUOTA_HASH; h++)
		while (tab[h]) {
			struct spool_qdom *q = tab[h];

			tab[h] = q->next;
			free(q);
		}
}

uint64_t spool_domain_queued_bytes(const struct spool *sp, struct slice domain)
{
	const struct spool_qdom *q = dom_get(sp->qtab, domain);

	return q ? q->bytes : 0;
}

bool spool_domain_over_quota(const struct spool *sp, struct slice domain, uint64_t quota)
{
	unsigned shares = sp->conf.quota_shares ? sp->conf.quota_shares : 1;

	const struct spool_qdom *q = dom_get(sp->qtab, domain);

	return q != NULL && q->bytes >= quota / shares;
}
