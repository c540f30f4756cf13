/*
 * domain_conf.h - a served domain ([domain NAME]): its route out, outbound TLS, spool quota,
 * routing syntax and its policy (the default's, with the section's overrides). Filled by the one
 * parser (conf/), which hands this file the section's own keys, delivery the long_lines key
 * (delivery_tuning.h) and policy_conf_set the rest; read-only in a snapshot, where the domains
 * are sorted by name for domain_conf_find.
 */
#ifndef SLUICE_POLICY_DOMAIN_CONF_H
#define SLUICE_POLICY_DOMAIN_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

struct policy;

#define ROUTE_DEST_MAX 8
struct route_dest {
	char     host[256];
	uint16_t port;
	uint16_t prio;       /* lower first; equal priorities in written order */
};

enum domain_tls { DOMAIN_TLS_MAY = 0, DOMAIN_TLS_REQUIRED, DOMAIN_TLS_NONE };

struct domain_conf {
	char             *name;          /* lower case */
	uint8_t           tls;           /* enum domain_tls: STARTTLS on the way out */
	uint8_t           long_lines;    /* 0: as [delivery] long_lines; else that enum + 1 */
	bool              tls_verify;    /* check the destination's certificate */
	uint64_t          spool_quota;   /* bytes queued for this domain, node-wide (default 1G) */
	bool              route_mx;      /* look the MX up instead of fixed destinations */
	unsigned          ndest;
	struct route_dest dest[ROUTE_DEST_MAX];
	struct policy    *policy;        /* owned */
	bool              allow_routing; /* accept %, ! and quoted @ in local parts (README) */
	bool              allow_routing_set; /* while loading: given in this section */
};

/* A new domain: name (copied, lower-cased) and the defaults. Returns 0 or -ENOMEM. */
int domain_conf_init(struct domain_conf *d, const char *name);
/* Frees what d owns (its name and policy). */
void domain_conf_clear(struct domain_conf *d);
/* A [domain] name must be one a recipient's domain can match exactly: no wildcards, labels of
 * 1 to 63 host-name characters. Returns 0, or -EINVAL with the reason in why. */
int domain_conf_name_check(const char *name, char *why, size_t whylen);
/* One of the section's own keys (route, tls, tls_verify, spool_quota, allow_routing). Returns 0,
 * -ENOENT for another key (a policy key, say), or -EINVAL with the reason in why (what follows
 * "[domain NAME] KEY: "). */
int domain_conf_set(struct domain_conf *d, const char *key, const char *value, char *why,
		    size_t whylen);
/* qsort's order for domain_conf_find. */
int domain_conf_cmp(const void *a, const void *b);
/* The domain of domains[0..n) (sorted) a recipient domain names (case-insensitive, a trailing dot
 * ignored), or NULL. */
const struct domain_conf *domain_conf_find(const struct domain_conf *domains, size_t n,
					   struct slice domain);

#endif
