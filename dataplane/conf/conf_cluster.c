/*
 * conf_cluster.c - [cluster]: the node is a member of a Sluice cluster (issue 16) and its agent
 * runs the node's own nats-server leaf and follows the cluster's configuration. Without the
 * section the node is a single node configured by its file alone.
 *
 *   dir = PATH                 the cluster material sluice-node --join writes: node.key,
 *                              node.crt, ca.crt, hub_urls (one "tls://host:port" a line);
 *                              required
 *   nats_server = PATH         the nats-server binary (default /usr/sbin/nats-server)
 *   nats_port = 4222           the leaf's client port, on 127.0.0.1
 *   nats_monitor_port = 8222   its HTTP monitoring port (/healthz), on 127.0.0.1
 *
 * Paths are absolute and go into the generated nats-server configuration between quotes, so a
 * quote, a backslash or a control character is refused here rather than there. With [cluster]
 * the [node] name is the node's identity in the cluster's CA: one DNS label, not "hub" (the
 * hub's JetStream domain). The keys are read at start; a reload that changes them warns.
 * Called by conf.c only.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/cfgval.h"
#include "conf/conf_impl.h"

void conf_cluster_defaults(struct node_config *c)
{
	snprintf(c->cluster.nats_server, sizeof(c->cluster.nats_server), "%s",
		 CONF_CLUSTER_NATS_SERVER);
	c->cluster.nats_port = CONF_CLUSTER_NATS_PORT;
	c->cluster.nats_monitor_port = CONF_CLUSTER_MONITOR_PORT;
}

static bool cluster_path_ok(const char *v, size_t max)
{
	size_t n = strlen(v);

	if (n < 2 || n >= max || v[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f || v[i] == '"' || v[i] == '\\')
			return false;
	return true;
}

int conf_cluster_set(struct load_ctx *lc, const char *k, const char *v)
{
	struct cluster_conf *cc = &lc->c->cluster;
	uint64_t u;
	char *dst;
	size_t max;

	cc->on = true;
	if (strcmp(k, "dir") == 0 || strcmp(k, "nats_server") == 0) {
		dst = k[0] == 'd' ? cc->dir : cc->nats_server;
		max = k[0] == 'd' ? sizeof(cc->dir) : sizeof(cc->nats_server);
		if (!cluster_path_ok(v, max))
			return conf_fail(lc, "cluster", k, "want an absolute path of at most %zu bytes "
					 "without quotes, backslashes or control characters, not \"%s\"",
					 max - 1, v);
		memcpy(dst, v, strlen(v) + 1);
		if (k[0] == 'd')
			lc->chk.cluster_dir_line = lc->line;
		return 1;
	}
	if (strcmp(k, "nats_port") == 0 || strcmp(k, "nats_monitor_port") == 0) {
		bool monitor = k[5] == 'm';

		if (cfgval_uint(v, 1, 65535, &u) < 0)
			return conf_fail(lc, "cluster", k, "want a port 1-65535, not \"%s\"", v);
		*(monitor ? &cc->nats_monitor_port : &cc->nats_port) = (int)u;
		lc->chk.cluster_port_line[monitor] = lc->line;
		return 1;
	}
	return conf_fail(lc, "cluster", k, "unknown key");
}

int conf_cluster_check(struct load_ctx *lc, char *err, size_t errlen)
{
	const struct cluster_conf *cc = &lc->c->cluster;
	const struct load_check *k = &lc->chk;
	const char *path = lc->name;
	const char *name = lc->c->name;

	if (k->cluster_line == 0)
		return 0;
	if (k->cluster_dir_line == 0) {
		snprintf(err, errlen, "%s:%d: [cluster] dir: missing (the directory sluice-node --join "
			 "wrote: node.key, node.crt, ca.crt, hub_urls)", path, k->cluster_line);
		return -EINVAL;
	}
	if (cc->nats_port == cc->nats_monitor_port) {
		int line = k->cluster_port_line[0] > k->cluster_port_line[1] ? k->cluster_port_line[0]
									      : k->cluster_port_line[1];

		snprintf(err, errlen, "%s:%d: [cluster] %s: nats_port and nats_monitor_port are both "
			 "%d", path, line ? line : k->cluster_line,
			 line == k->cluster_port_line[0] ? "nats_port" : "nats_monitor_port", cc->nats_port);
		return -EINVAL;
	}
	if (!conf_node_name_valid(name) || strcmp(name, "hub") == 0) {
		snprintf(err, errlen, "%s:%d: [node] name: \"%s\" cannot name a cluster node (one label "
			 "of a-z, 0-9 and '-', not at an end, at most %d bytes, not \"hub\")", path,
			 k->name_line ? k->name_line : k->cluster_line, name, CONF_NODE_NAME_MAX);
		return -EINVAL;
	}
	return 0;
}
