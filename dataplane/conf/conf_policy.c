/*
 * conf_policy.c - the policy keys of [policy] and of each [domain]: kept in file order while the
 * buffer is read, then applied with policy_conf_set (the default first, every domain on top of a
 * copy of it, whatever the order of sections) and checked for thresholds in order, naming the
 * lines of the keys at fault.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf_impl.h"
#include "policy/policy.h"

int conf_policy_push(struct load_ctx *lc, long domain, const char *k, const char *v)
{
	struct pending_policy_key *pk;

	if (lc->npk == lc->cappk) {
		size_t cap = lc->cappk ? lc->cappk * 2 : 32;

		pk = realloc(lc->pk, cap * sizeof(*pk));
		if (pk == NULL)
			return -ENOMEM;
		lc->pk = pk;
		lc->cappk = cap;
	}
	pk = &lc->pk[lc->npk++];
	pk->domain = domain;
	pk->key = strdup(k);
	pk->value = strdup(v);
	pk->line = lc->line;
	return 0;
}

void conf_policy_free(struct load_ctx *lc)
{
	for (size_t i = 0; i < lc->npk; i++) {
		free(lc->pk[i].key);
		free(lc->pk[i].value);
	}
	free(lc->pk);
	lc->pk = NULL;
	lc->npk = lc->cappk = 0;
}

/* Applies the policy keys: [policy] to the default, then each domain's on top of a copy. */
static int apply_policies(struct load_ctx *lc, char *err, size_t errlen)
{
	struct node_config *c = lc->c;
	const char *path = lc->name;
	char why[256];

	c->default_policy = policy_new(NULL);
	if (c->default_policy == NULL)
		goto nomem;
	for (size_t i = 0; i < lc->npk; i++) {
		struct pending_policy_key *pk = &lc->pk[i];

		if (pk->domain >= 0)
			continue;
		if (policy_conf_set(c->default_policy, pk->key, pk->value, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%d: [policy] %s: %s", path, pk->line, pk->key, why);
			return -EINVAL;
		}
	}
	/* Every domain starts from the finished default, then takes its own keys in file order. */
	for (unsigned d = 0; d < c->ndomains; d++) {
		c->domains[d].policy = policy_new(c->default_policy);
		if (c->domains[d].policy == NULL)
			goto nomem;
	}
	for (size_t i = 0; i < lc->npk; i++) {
		struct pending_policy_key *pk = &lc->pk[i];
		struct domain_conf *dc;

		if (pk->domain < 0)
			continue;
		dc = &c->domains[pk->domain];
		if (policy_conf_set(dc->policy, pk->key, pk->value, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%d: [domain %s] %s: %s", path, pk->line, dc->name,
				 pk->key, why);
			return -EINVAL;
		}
	}
	return 0;
nomem:
	snprintf(err, errlen, "%s: out of memory", path);
	return -ENOMEM;
}

/* The last key that set threshold `name` (tag_score, ...) for role r in domain dom's section
 * (-1: [policy]), role prefixes understood; NULL when none did. */
static const struct pending_policy_key *threshold_key(const struct load_ctx *lc, long dom,
						       unsigned r, const char *name)
{
	for (size_t i = lc->npk; i-- > 0;) {
		const struct pending_policy_key *pk = &lc->pk[i];
		const char *key = pk->key;

		if (pk->domain != dom)
			continue;
		if (strncmp(key, "primary_", 8) == 0) {
			if (r != POLICY_ROLE_PRIMARY)
				continue;
			key += 8;
		} else if (strncmp(key, "fallback_", 9) == 0) {
			if (r != POLICY_ROLE_FALLBACK)
				continue;
			key += 9;
		}
		if (strcmp(key, name) == 0)
			return pk;
	}
	return NULL;
}

/* tag <= quarantine <= reject where set (off ones skipped), for each MX role of [policy] and of
 * each domain after its overrides. The wrong way round, the milder action wins over the
 * severer one for the highest scores (the highest threshold reached wins), which nobody means.
 * A tie is allowed: the severer action takes it, the documented way to skip one (policy.h). */
static int check_thresholds(struct load_ctx *lc, const char *path, char *err, size_t errlen)
{
	static const struct { enum policy_action a; const char *key; } order[] = {
		{ POLICY_TAG, "tag_score" },
		{ POLICY_QUARANTINE, "quarantine_score" },
		{ POLICY_REJECT, "reject_score" },
	};
	static const char *const roles[] = { "primary", "fallback" };
	struct node_config *c = lc->c;

	for (long d = -1; d < (long)c->ndomains; d++) {
		const struct policy *p = d < 0 ? c->default_policy : c->domains[d].policy;

		for (unsigned r = 0; r < POLICY_ROLE_COUNT; r++) {
			int prev = -1;

			for (int i = 0; i < 3; i++) {
				const struct pending_policy_key *pa, *pb, *blame, *other;
				const char *okey;
				char where[300], about[200];
				int32_t va, vb;

				if (p->role[r].at[order[i].a] == POLICY_SCORE_OFF)
					continue;
				if (prev < 0 || p->role[r].at[order[prev].a] <= p->role[r].at[order[i].a]) {
					prev = i;
					continue;
				}
				va = p->role[r].at[order[prev].a];
				vb = p->role[r].at[order[i].a];
				/* Blame the later of the two keys in this section (the default passed, so one
				 * of them is here); name the other's line, or say it is the default. */
				pa = threshold_key(lc, d, r, order[prev].key);
				pb = threshold_key(lc, d, r, order[i].key);
				blame = pa == NULL || (pb != NULL && pb->line > pa->line) ? pb : pa;
				other = blame == pa ? pb : pa;
				okey = blame == pa ? order[i].key : order[prev].key;
				if (other == NULL && d >= 0)
					other = threshold_key(lc, -1, r, okey);
				if (d < 0)
					snprintf(where, sizeof(where), "%s:%d: [policy]", path,
						 blame ? blame->line : 0);
				else
					snprintf(where, sizeof(where), "%s:%d: [domain %s]", path,
						 blame ? blame->line : lc->chk.domain_line[d], c->domains[d].name);
				if (other != NULL)
					snprintf(about, sizeof(about), "%s at line %d", other->key, other->line);
				else
					snprintf(about, sizeof(about), "%s is the built-in default", okey);
				snprintf(err, errlen, "%s %s: thresholds out of order for the %s MX: %s %g is "
					 "above %s %g (%s); want tag_score <= quarantine_score <= reject_score "
					 "where set", where, blame ? blame->key : order[i].key, roles[r],
					 order[prev].key, va / 1000.0, order[i].key, vb / 1000.0, about);
				return -EINVAL;
			}
		}
	}
	return 0;
}

int conf_policy_apply(struct load_ctx *lc, char *err, size_t errlen)
{
	int r = apply_policies(lc, err, errlen);

	return r < 0 ? r : check_thresholds(lc, lc->name, err, errlen);
}
