/*
 * listen_conf.c - the [listen NAME] keys. See listen_conf.h.
 */
#include "net/listen_conf.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/cfgval.h"

static const char *const listen_role_names[] = { "primary", "fallback" };

const char *listen_role_name(unsigned role)
{
	return role < 2 ? listen_role_names[role] : "?";
}

void listen_conf_init(struct listen_conf *l, const char *name)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->role = LISTEN_ROLE_PRIMARY;
	l->starttls = true;
	l->greet_pause_ms = -1;
}

static int listen_conf_address(struct listen_conf *l, const char *v, char *why, size_t whylen)
{
	size_t n = strlen(v);
	int r = n < sizeof(l->address) ? 0 : -ERANGE;

	if (r == 0) {
		memcpy(l->address, v, n + 1);
		r = cfgval_hostport(v, true, &l->addr, &l->addrlen);
	}
	if (r == -ERANGE)
		snprintf(why, whylen, "port out of range in \"%s\" (want 1-65535)", v);
	else if (r < 0)
		snprintf(why, whylen, "want a numeric address:port (\"127.0.0.2:25\", \"[::1]:25\"), "
			 "not \"%s\"", v);
	return r < 0 ? -EINVAL : 0;
}

int listen_conf_set(struct listen_conf *l, const char *k, const char *v, char *why, size_t whylen)
{
	bool b;

	if (strcmp(k, "address") == 0)
		return listen_conf_address(l, v, why, whylen);
	if (strcmp(k, "role") == 0) {
		if (strcasecmp(v, "primary") == 0)
			l->role = LISTEN_ROLE_PRIMARY;
		else if (strcasecmp(v, "fallback") == 0)
			l->role = LISTEN_ROLE_FALLBACK;
		else {
			snprintf(why, whylen, "want primary or fallback, not \"%s\"", v);
			return -EINVAL;
		}
		return 0;
	}
	if (strcmp(k, "starttls") == 0) {
		if (cfgval_bool(v, &b) < 0) {
			snprintf(why, whylen, "want yes or no, not \"%s\"", v);
			return -EINVAL;
		}
		l->starttls = b;
		return 0;
	}
	if (strcmp(k, "greet_pause") == 0) {
		uint64_t u;

		if (cfgval_duration_ms(v, &u) < 0 || u > 60000) {
			snprintf(why, whylen, "want a duration from 0 to 60s, not \"%s\"", v);
			return -EINVAL;
		}
		l->greet_pause_ms = (int64_t)u;
		return 0;
	}
	return -ENOENT;
}

bool listen_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}
