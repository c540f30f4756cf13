/*
 * listen_conf.h - a [listen NAME] section: the address a listener binds, its MX role, whether it
 * offers STARTTLS and its early-talker pause. Filled by the one parser (conf/); a reload that
 * changes the set is applied by listener.c.
 */
#ifndef SLUICE_NET_LISTEN_CONF_H
#define SLUICE_NET_LISTEN_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

enum listen_role { LISTEN_ROLE_PRIMARY = 0, LISTEN_ROLE_FALLBACK = 1 };
const char *listen_role_name(unsigned role);

struct listen_conf {
	char                    name[64];
	char                    address[128];   /* as written, for logs and the Received header */
	struct sockaddr_storage addr;
	socklen_t               addrlen;
	uint8_t                 role;           /* enum listen_role */
	bool                    starttls;
	int64_t                 greet_pause_ms; /* early-talker test; -1: [limits] greet_pause */
};

/* A new section's defaults: primary, STARTTLS offered, [limits]' greet pause, no address. */
void listen_conf_init(struct listen_conf *l, const char *name);
/* A key of l's section. Returns 0, -ENOENT for a key that is not one, or -EINVAL with the reason
 * in why (what follows "[listen NAME] KEY: "). */
int listen_conf_set(struct listen_conf *l, const char *key, const char *value, char *why,
		    size_t whylen);
/* Two listen addresses are the same socket address (family, address, port, IPv6 scope). */
bool listen_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#endif
