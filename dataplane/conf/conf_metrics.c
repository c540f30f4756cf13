/*
 * conf_metrics.c - [metrics]: the node's Prometheus endpoint (agent_metrics.c). The section
 * turns it on; listen defaults to 127.0.0.1:9525. Off loopback the counters are not for anyone
 * who can reach the port: the endpoint then needs TLS (cert, key) and a bearer token
 * (token_file, its first line), and the load refuses the section without them.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "base/cfgval.h"
#include "conf/conf_impl.h"

#define METRICS_LISTEN_DEFAULT "127.0.0.1:9525"

static int metrics_path(char *dst, size_t size, const char *v, char *why, size_t whylen)
{
	if (v[0] != '/' || strlen(v) >= size) {
		snprintf(why, whylen, "want an absolute path of at most %zu bytes", size - 1);
		return -EINVAL;
	}
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

int conf_metrics_set(struct node_config *c, const char *k, const char *v, char *why,
		     size_t whylen)
{
	struct metrics_conf *m = &c->metrics;
	socklen_t len;

	m->enabled = true;
	if (m->listen[0] == '\0')
		snprintf(m->listen, sizeof(m->listen), "%s", METRICS_LISTEN_DEFAULT);
	if (strcmp(k, "listen") == 0) {
		if (strlen(v) >= sizeof(m->listen) ||
		    cfgval_hostport(v, true, &m->addr, &len) < 0) {
			snprintf(why, whylen, "want a numeric address:port, like %s",
				 METRICS_LISTEN_DEFAULT);
			return -EINVAL;
		}
		memcpy(m->listen, v, strlen(v) + 1);
		m->addr_set = true;
		return 0;
	}
	if (strcmp(k, "cert") == 0)
		return metrics_path(m->cert, sizeof(m->cert), v, why, whylen);
	if (strcmp(k, "key") == 0)
		return metrics_path(m->key, sizeof(m->key), v, why, whylen);
	if (strcmp(k, "token_file") == 0)
		return metrics_path(m->token_file, sizeof(m->token_file), v, why, whylen);
	return -ENOENT;
}

static bool metrics_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	return ss->ss_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

int conf_metrics_check(struct node_config *c, char *why, size_t whylen)
{
	struct metrics_conf *m = &c->metrics;
	socklen_t len;

	if (!m->enabled)
		return 0;
	if (!m->addr_set && cfgval_hostport(m->listen, true, &m->addr, &len) < 0) {
		snprintf(why, whylen, "[metrics] listen: %s does not parse", m->listen);
		return -EINVAL;
	}
	if ((m->cert[0] != '\0') != (m->key[0] != '\0')) {
		snprintf(why, whylen, "[metrics] cert and key go together");
		return -EINVAL;
	}
	if (!metrics_loopback(&m->addr) && (m->cert[0] == '\0' || m->token_file[0] == '\0')) {
		snprintf(why, whylen, "[metrics] listen %s is not a loopback address: it needs cert, "
			 "key and token_file (TLS and a bearer token)", m->listen);
		return -EINVAL;
	}
	return 0;
}
