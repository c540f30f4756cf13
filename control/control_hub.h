/*
 * control_hub.h - the hub's nats-server on the primary, supervised by sluice-control (issue 16,
 * control/wire/README.md "Processes and NATS topology").
 *
 * The hub needs the cluster CA (`sluicectl cluster init`) and its own certificate from it,
 * which names every address leaves dial (nats-server 2.9 checks the hub's certificate against
 * the dialled host, control/sync/README.md item 2). Its leafnode authorization is the list of
 * joined nodes (store_node_certified). One thread of its own, with its own store handle on the
 * same database: it starts the server once the certificate is there, writes the configuration
 * again and restarts the server whenever the list changes (a node joined or was removed: 2.9
 * cannot reload leafnode authorization, and a reload would keep a revoked node's link), and
 * restarts it with backoff when it dies (natsproc.h).
 */
#ifndef SLUICE_CONTROL_HUB_H
#define SLUICE_CONTROL_HUB_H

#include <stddef.h>

#define CONTROL_HUB_POLL_MS   500u
#define CONTROL_HUB_CERT_DAYS 365

struct control_hub_config {
	const char        *state_dir;     /* the control's: ca/ and hub/ go under it */
	const char        *db;            /* control.db */
	const char        *node_name;     /* the primary's node name: the server is hub_<name> */
	const char        *leaf_listen;   /* "0.0.0.0:7422" */
	const char *const *addrs;         /* hosts (IP or DNS) leaves dial; the first advertised */
	size_t             n_addrs;
	int                leaf_port;     /* the port of leaf_listen */
	int                client_port;   /* on 127.0.0.1: the publisher's */
	int                monitor_port;  /* on 127.0.0.1: /healthz */
	const char        *nats_server;   /* NULL: NATSPROC_BINARY */
};

struct control_hub;

/* Issues the hub's key and certificate from the CA in state_dir/ca unless a certificate is
 * there that names every address in cfg (hub/hub.crt, hub/hub.key). 0, -ENOENT (no CA yet),
 * -errno. Call on the thread that issues the nodes' certificates (the API's), or before it runs. */
int control_hub_cert_ensure(const struct control_hub_config *cfg);

/* Starts the supervising thread. 0 or -errno with err set. cfg must outlive the hub. */
int control_hub_start(const struct control_hub_config *cfg, struct control_hub **hub_r,
		      char *err, size_t errlen);
/* Something changed (a commit, the CA made): look now rather than at the next poll. Any thread. */
void control_hub_wake(void *arg);
/* Stops the server and the thread, and frees the hub. */
void control_hub_stop(struct control_hub **hub);

/* The hub's leafnode URLs for a joining node: "tls://ADDR:PORT" per address, into a malloc'd
 * array of malloc'd strings (*n_r of them). 0 or -ENOMEM. */
int control_hub_urls(const struct control_hub_config *cfg, char ***urls_r, size_t *n_r);

#endif
