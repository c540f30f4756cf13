/*
 * domain_conf.c - a [domain NAME] section's own keys, its name check and the lookup of the sorted
 * domains. See domain_conf.h.
 */
#include "policy/domain_conf.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/cfgval.h"
#include "policy/policy.h"

int domain_conf_init(struct domain_conf *d, const char *name)
{
	size_t n = strlen(name);

	memset(d, 0, sizeof(*d));
	d->name = malloc(n + 1);
	if (d->name == NULL)
		return -ENOMEM;
	for (size_t i = 0; i <= n; i++)
		d->name[i] = (char)tolower((unsigned char)name[i]);
	d->spool_quota = UINT64_C(1) << 30;
	return 0;
}

void domain_conf_clear(struct domain_conf *d)
{
	free(d->name);
	d->name = NULL;
	policy_free(&d->policy);
}

/* A [domain] name is matched exactly (case aside, and a recipient's trailing dot) against the
 * recipient's domain: a name that is not a host name can never match, and there are no
 * wildcards, so "*.example.com" would silently accept nothing. */
int domain_conf_name_check(const char *name, char *why, size_t whylen)
{
	size_t n = strlen(name), label = 0;

	if (strpbrk(name, "*?") != NULL) {
		snprintf(why, whylen, "wildcards are not supported: a [domain] matches its name exactly; "
			 "give each domain and sub-domain its own section");
		return -EINVAL;
	}
	if (n > 253) {
		snprintf(why, whylen, "a domain name is at most 253 characters");
		return -EINVAL;
	}
	for (size_t i = 0; i <= n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch == '.' || ch == '\0') {
			if (label == 0 || label > 63) {
				snprintf(why, whylen, "the name cannot match any recipient: %s",
					 label ? "a label is longer than 63 characters"
					       : "empty label (a leading, trailing or double dot)");
				return -EINVAL;
			}
			label = 0;
		} else if (isalnum(ch) || ch == '-' || ch == '_' || ch >= 0x80) {
			label++;
		} else {
			snprintf(why, whylen, "the name cannot match any recipient: '%c' is not allowed in "
				 "a domain name", ch);
			return -EINVAL;
		}
	}
	return 0;
}

/* One "host:port [prio]" of a route (item: not empty, no leading blank) into rd. */
static int route_dest_parse(struct route_dest *rd, char *item, char *why, size_t whylen)
{
	char *hp, *prio, *colon, *end;
	unsigned long port, pr = 0;

	hp = strtok_r(item, " \t", &prio);   /* item starts with a non-blank: never NULL */
	colon = hp[0] == '[' ? strstr(hp, "]:") : strrchr(hp, ':');
	if (colon == NULL) {
		snprintf(why, whylen, "\"%s\" lacks a :port", hp);
		return -EINVAL;
	}
	if (hp[0] == '[')
		colon++;
	port = strtoul(colon + 1, &end, 10);
	if (*end != '\0' || colon[1] == '\0') {
		snprintf(why, whylen, "bad port in \"%s\"", hp);
		return -EINVAL;
	}
	if (port == 0 || port > 65535) {
		snprintf(why, whylen, "port out of range in \"%s\" (want 1-65535)", hp);
		return -EINVAL;
	}
	*colon = '\0';
	if (hp[0] == '[') {
		hp++;
		hp[strlen(hp) - 1] = '\0';
	}
	if (*hp == '\0' || strlen(hp) >= sizeof(rd->host)) {
		snprintf(why, whylen, "bad host");
		return -EINVAL;
	}
	while (prio != NULL && isspace((unsigned char)*prio))
		prio++;
	if (prio != NULL && *prio != '\0') {
		pr = strtoul(prio, &end, 10);
		while (isspace((unsigned char)*end))
			end++;
		if (*end != '\0' || pr > 65535) {
			snprintf(why, whylen, "bad priority \"%s\"", prio);
			return -EINVAL;
		}
	}
	strcpy(rd->host, hp);
	rd->port = (uint16_t)port;
	rd->prio = (uint16_t)pr;
	return 0;
}

/* "host:port [prio], host:port [prio]" or "mx". */
static int route_parse(struct domain_conf *d, const char *v, char *why, size_t whylen)
{
	char buf[2048], *save = NULL, *item;

	if (strcasecmp(v, "mx") == 0) {
		d->route_mx = true;
		d->ndest = 0;
		return 0;
	}
	if (strlen(v) >= sizeof(buf)) {
		snprintf(why, whylen, "too long");
		return -EINVAL;
	}
	strcpy(buf, v);
	d->route_mx = false;
	d->ndest = 0;
	for (item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
		while (isspace((unsigned char)*item))
			item++;
		if (*item == '\0') {
			snprintf(why, whylen, "empty destination");
			return -EINVAL;
		}
		if (d->ndest == ROUTE_DEST_MAX) {
			snprintf(why, whylen, "at most %d destinations", ROUTE_DEST_MAX);
			return -EINVAL;
		}
		if (route_dest_parse(&d->dest[d->ndest], item, why, whylen) < 0)
			return -EINVAL;
		d->ndest++;
	}
	if (d->ndest == 0) {
		snprintf(why, whylen, "no destination");
		return -EINVAL;
	}
	return 0;
}

int domain_conf_set(struct domain_conf *d, const char *k, const char *v, char *why,
		    size_t whylen)
{
	if (strcmp(k, "route") == 0) {
		char what[160];

		if (route_parse(d, v, what, sizeof(what)) < 0) {
			snprintf(why, whylen, "%s (want \"host:port [priority], ...\" or \"mx\")", what);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(k, "tls") == 0) {
		if (strcasecmp(v, "may") == 0)
			d->tls = DOMAIN_TLS_MAY;
		else if (strcasecmp(v, "required") == 0)
			d->tls = DOMAIN_TLS_REQUIRED;
		else if (strcasecmp(v, "none") == 0)
			d->tls = DOMAIN_TLS_NONE;
		else {
			snprintf(why, whylen, "want may, required or none, not \"%s\"", v);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(k, "tls_verify") == 0 || strcmp(k, "allow_routing") == 0) {
		bool *b = k[0] == 't' ? &d->tls_verify : &d->allow_routing;

		if (cfgval_bool(v, b) < 0) {
			snprintf(why, whylen, "want yes or no, not \"%s\"", v);
			return -EINVAL;
		}
		d->allow_routing_set |= k[0] == 'a';
		return 0;
	}
	if (strcmp(k, "spool_quota") == 0) {
		if (cfgval_size(v, &d->spool_quota) < 0 || d->spool_quota == 0) {
			snprintf(why, whylen, "want a size (\"500M\", \"1G\"), not \"%s\"", v);
			return -EINVAL;
		}
		return 0;
	}
	return -ENOENT;
}

int domain_conf_cmp(const void *a, const void *b)
{
	return strcmp(((const struct domain_conf *)a)->name, ((const struct domain_conf *)b)->name);
}

const struct domain_conf *domain_conf_find(const struct domain_conf *domains, size_t n,
					   struct slice domain)
{
	size_t lo = 0, hi = n;
	char key[256];

	if (domain.len == 0 || domain.len >= sizeof(key))
		return NULL;
	for (size_t i = 0; i < domain.len; i++)
		key[i] = (char)tolower((unsigned char)domain.p[i]);
	/* A trailing dot names the same domain. */
	if (key[domain.len - 1] == '.')
		domain.len--;
	key[domain.len] = '\0';
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int cmp = strcmp(key, domains[mid].name);

		if (cmp == 0)
			return &domains[mid];
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}
