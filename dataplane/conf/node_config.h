/*
 * node_config.h - the node's configuration as one immutable snapshot, and the one parser that
 * builds it.
 *
 * A snapshot is built from a named buffer (the INI file's contents under its path, or later the
 * cluster's "config version N") by node_config_load_buffer, never changed afterwards, and handed
 * to every shard, which switches at a safe point (shard/snapshot.h: the reference count and the
 * swap). Each part is declared, defaulted, set key by key and checked by the module that owns it;
 * this layer reads the INI, dispatches each section's keys to their owner, and keeps what is
 * generic: line numbers, duplicates, unknown sections and keys, and the order of the whole-file
 * checks (conf.c).
 *
 * The file (INI, parsed with inih):
 *   [node]      name, hostname, shards, spool_dir, rules_dir, log_level, banner, log
 *               (stderr|syslog), log_facility, log_socket, postmaster,
 *               user, group, run_as_root, pid_file (struct node_ops; applied by main at start)
 *                                                                   conf/conf_node.c
 *   [limits]    message_size, recipients, errors, session_time, idle_timeout, connections_per_ip,
 *               command_line, greet_pause, header_count, header_size    smtp/smtp_conf.c
 *               max_sessions, shutdown_grace                            shard/shard_conf.c
 *   [spool]     segment_size, spill_size, min_free, commit_delay       spool/spool_tuning.c
 *   [tls]       cert, key                                               smtp/smtp_conf.c
 *   [listen N]  address, role (primary|fallback), starttls (yes|no), greet_pause
 *                                                                       net/listen_conf.c
 *   [policy]    the default policy (keys of policy_conf_set), allow_routing  conf/conf_policy.c
 *   [delivery]  hold, retry_first, retry_max, expire, delay_warning, retry_flat, retry_jitter,
 *               concurrency (per destination per shard), connect_timeout, idle_time (an idle
 *               outbound connection is kept this long), helo_name, dns_server, mx_port,
 *               helo/starttls/mail/rcpt/data_init/data_xfer/data_done/rset/quit_timeout (total
 *               deadlines per outbound stage), min_data_rate, long_lines (pass|wrap|refuse)
 *                                                                   delivery/delivery_tuning.c
 *   [cluster]   dir, nats_server, nats_port, nats_monitor_port (a cluster member)
 *                                                                   conf/conf_cluster.c
 *   [domain D]  route (host:port[ prio][, ...] | mx), tls (may|required|none), tls_verify,
 *               spool_quota, allow_routing (policy/domain_conf.c), long_lines (overrides
 *               [delivery]'s; delivery_tuning.c), and policy keys overriding the default
 * A bad file is refused with "NAME:LINE: [section] key: reason": besides bad values, a section
 * or key given twice (the list keys of a policy excepted), a missing hostname or spool_dir, a
 * [domain] name that cannot match a recipient, two listeners on one address, and policy
 * thresholds out of order (tag <= quarantine <= reject, per MX role, after a domain's overrides).
 * A file without any [domain] loads with a warning.
 */
#ifndef SLUICE_CONF_NODE_CONFIG_H
#define SLUICE_CONF_NODE_CONFIG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <openssl/ssl.h>

#include "base/buf.h"
#include "delivery/delivery_tuning.h"
#include "net/listen_conf.h"
#include "policy/domain_conf.h"
#include "shard/snapshot.h"
#include "smtp/smtp_conf.h"
#include "spool/spool_tuning.h"

#define CONF_NODE_NAME_MAX 63   /* a node name is one DNS label (the cluster CA's rule) */
#define CONF_CLUSTER_NATS_SERVER  "/usr/sbin/nats-server"
#define CONF_CLUSTER_NATS_PORT    4222
#define CONF_CLUSTER_MONITOR_PORT 8222

struct policy;
struct filter_db;

struct node_config {
	struct snapshot      snap;           /* first: the reference count, the shard's own part */
	uint64_t             generation;     /* bumps on every reload */
	char                *path;           /* the name the buffer was given */
	char                 name[64];
	char                 hostname[256];
	char                 banner[256];
	char                 spool_dir[512];
	char                 rules_dir[512]; /* compiled rule set; empty = no content filter */
	unsigned             shards;         /* 0 = one per online CPU */
	int                  log_level;
	struct node_limits   limits;
	struct spool_tuning  spool;
	struct smtp_tls_conf tls;
	SSL_CTX             *tls_ctx;        /* NULL without [tls] */
	SSL_CTX             *tls_client_ctx; /* outbound STARTTLS, no verification */
	SSL_CTX             *tls_client_verify_ctx; /* outbound, verifying (NULL: no domain asks) */
	struct delivery_tuning delivery;
	struct listen_conf  *listen;
	unsigned             nlisten;
	struct domain_conf  *domains;        /* sorted by name */
	unsigned             ndomains;
	struct policy       *default_policy;
	struct filter_db    *filter_db;      /* NULL without rules_dir */
	uint8_t              log_output;     /* [node] log: enum log_output (stderr | syslog) */
	uint8_t              log_facility;   /* [node] log_facility: syslog facility (mail) */
	char                 log_socket[108];/* [node] log_socket: syslog socket; empty: /dev/log */
	char                 postmaster[320];/* [node] postmaster: where bare <postmaster> goes; default
					      * postmaster@ the first domain; empty: no domain */
	bool                 allow_routing;  /* [policy] allow_routing: the domains' default */
	/* [roles]: the node holding each data role (conf_roles.c); empty: placed nowhere. */
	struct role_placement {
		char log[CONF_NODE_NAME_MAX + 1], quarantine[CONF_NODE_NAME_MAX + 1];
		char archive[CONF_NODE_NAME_MAX + 1];
	} roles;
	/* [metrics] (conf_metrics.c): the Prometheus endpoint; read at start only. */
	struct metrics_conf {
		bool                    enabled;     /* the section is there */
		bool                    addr_set;
		char                    listen[128]; /* default 127.0.0.1:9525 */
		struct sockaddr_storage addr;
		char                    cert[512], key[512]; /* TLS; required off loopback */
		char                    token_file[512];     /* bearer token; required off loopback */
	} metrics;
	/* [cluster] (conf_cluster.c): on in a cluster member; read at start (a reload warns). */
	struct cluster_conf {
		bool on;                     /* a [cluster] section was given */
		char dir[512];               /* node.key node.crt ca.crt hub_urls */
		char nats_server[512];
		int  nats_port;              /* the leaf's client port on 127.0.0.1 */
		int  nats_monitor_port;
	} cluster;
	/* The agent's "behind" flag (agent_sync.c), set before the snapshot reaches a shard; NULL
	 * outside a cluster. While it holds, RCPT answers 451 4.7.1 for a domain it does not know,
	 * which the cluster may have added since (node_config_behind). */
	const _Atomic bool  *cluster_behind;
	/* How the process runs: read by main at start only (a reload that changes them warns). */
	struct node_ops {
		char  user[64], group[64];   /* [node] user/group; empty: no switch */
		uid_t uid;                   /* resolved at load when user is set */
		gid_t gid;                   /* group, or the user's primary group */
		bool  run_as_root;           /* [node] run_as_root: root without user is allowed */
		char  pid_file[512];         /* default spool_dir/sluice-node.pid */
		int   spool_dir_line;        /* for --check-config's messages */
	} ops;
};

/* The parser: the INI text buf[0..len) under name, which stands for the source in errors
 * ("NAME:LINE: [section] key: reason") and in node_config.path. Returns 0 with a snapshot
 * holding one reference in *conf_r, or -EINVAL (-ENOMEM) with the reason in err. */
int node_config_load_buffer(const char *name, const char *buf, size_t len,
			    struct node_config **conf_r, char *err, size_t errlen);
/* Reads the file at path and hands it to node_config_load_buffer under its path. Same returns. */
int node_config_load(const char *path, struct node_config **conf_r, char *err, size_t errlen);

/* The served domain for a recipient domain (case-insensitive), or NULL: not ours (relaying). */
static inline const struct domain_conf *node_config_domain(const struct node_config *c,
							   struct slice domain)
{
	return domain_conf_find(c->domains, c->ndomains, domain);
}

/* Whether the node is behind the cluster's configuration (see cluster_behind): a domain it
 * does not know may be one it has not heard of yet. */
static inline bool node_config_behind(const struct node_config *c)
{
	return c->cluster_behind != NULL &&
	       atomic_load_explicit(c->cluster_behind, memory_order_relaxed);
}

#endif
