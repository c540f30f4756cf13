/*
 * natsconf.h - generates nats-server 2.9 configuration files. Sluice writes every nats-server
 * configuration itself; an operator never edits one.
 *
 * Topology (cluster-design.md, NATS.md "a topology that worked"): every node runs one LEAF
 * server, JetStream domain = the node's name, clients on 127.0.0.1 only, a leafnode remote to
 * the hub with the node's certificate. The primary runs, besides its own leaf, the HUB server:
 * JetStream domain "hub" (a domain of its own, not a node's name, since the hub moves on
 * promotion), the mTLS leafnode listener whose users are the authorized nodes' DNS SANs
 * ("<name>.node.sluice", verify_and_map), and the `cfg` bucket. The primary's own leaf reaches
 * the hub on loopback like any other leaf, so promotion and role moves are the same on every
 * node: the hub is one more server that starts or stops, the leaves are never reconfigured
 * except for the hub URL list.
 *
 * Every server: max_payload 8 MB (enforced by the server a client publishes to, so on every
 * server), ping_interval 5 s and ping_max 2 (a leaf back from another IP address replaces its
 * old link in about 11 s instead of minutes), store_dir and pid file under its state dir.
 * Leaf remotes, leafnode listeners and leafnode authorization are not reloadable in 2.9 (and a
 * reload has the 2.9.10 subscription bug, pitfall 13): a changed file means a server restart
 * (natsproc_restart), never a reload. Any thread; no shared state.
 */
#ifndef SLUICE_SYNC_NATSCONF_H
#define SLUICE_SYNC_NATSCONF_H

#include <stddef.h>

#define NATSCONF_HUB_DOMAIN   "hub"
#define NATSCONF_MAX_PAYLOAD  (8 * 1024 * 1024)
#define NATSCONF_PING_SECONDS 5
#define NATSCONF_PING_MAX     2
#define NATSCONF_RECONNECT_S  2        /* a leaf's delay between attempts to reach the hub */
#define NATSCONF_TLS_TIMEOUT  5        /* seconds for a leafnode TLS handshake */
#define NATSCONF_MAX_LEN      (1024 * 1024)

enum natsconf_role { NATSCONF_HUB, NATSCONF_LEAF };

struct natsconf {
	enum natsconf_role  role;
	const char         *node_name;      /* the node this server runs on (ca_name_valid) */
	const char         *state_dir;      /* jetstream/ and nats-server.pid go under it */
	int                 client_port;    /* on 127.0.0.1 */
	int                 monitor_port;   /* HTTP monitoring (/healthz) on 127.0.0.1 */
	const char         *cert_file;      /* the node's certificate, key and the cluster CA */
	const char         *key_file;
	const char         *ca_file;
	const char         *log_file;       /* NULL: the server logs to its stderr */
	/* HUB only */
	const char         *leaf_listen;    /* "0.0.0.0:7422" */
	const char         *leaf_advertise; /* "host:port" the hub tells leaves (pitfall 6) */
	const char *const  *authorized;     /* node names allowed to link */
	size_t              n_authorized;
	/* LEAF only */
	const char *const  *hub_urls;       /* "tls://10.0.0.1:7422", ... */
	size_t              n_hub_urls;
};

/* The server's name in the NATS network: the node's name for its leaf, "hub_<node>" for the
 * hub ('_' is never in a node name, so the two cannot collide). Into out[size]. */
int natsconf_server_name(const struct natsconf *c, char *out, size_t size);

/* Renders the configuration into a malloc'd NUL-terminated text. Returns 0, -EINVAL (a missing
 * field, an invalid node name, a leaf named "hub", a hub with no listener, a leaf with no hub
 * URL, a port out of range, a string with a quote, backslash or control character), -ENOMEM. */
int natsconf_render(const struct natsconf *c, char **text_r);

/* Renders and writes it to path atomically (sync_file_write), and makes state_dir (0700) if it
 * is not there (its parent must be). 0 or -errno as above. */
int natsconf_write(const struct natsconf *c, const char *path);

#endif
