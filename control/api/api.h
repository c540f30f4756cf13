/*
 * api.h - sluice-control's REST API: JSON over HTTPS (h2o's evloop with OpenSSL), under
 * /api/v1/, described by openapi.yaml beside this file.
 *
 * One thread runs the loop; each request is handled to the end on it (the store is local
 * SQLite, so a request waits for the disk, never for the network). Limits: request bodies
 * (body_max, rule sets rules_max; past it 413), requests per token (a token bucket of `rate`
 * per second and `burst`; past it 429 with Retry-After).
 */
#ifndef SLUICE_CONTROL_API_H
#define SLUICE_CONTROL_API_H

#include <stddef.h>
#include <stdint.h>

struct store;

struct api_config {
	const char   *listen;       /* "127.0.0.1:8443", "[::1]:8443" */
	const char   *cert_file;    /* PEM chain and key for TLS */
	const char   *key_file;
	struct store *st;
	size_t        body_max;     /* bytes of a JSON request body */
	size_t        rules_max;    /* bytes of a rule set upload */
	double        rate;         /* requests per second per token */
	unsigned      burst;
	int64_t       stale_after;  /* seconds: a node not seen for longer is warned about */
	/* Called on the loop after a request that may have committed a change (a method other
	 * than GET answered 2xx): the publisher's wake-up. NULL: nobody to tell. */
	void        (*on_commit)(void *arg);
	void         *on_commit_arg;
	/* The cluster's identity (api_join.c). ca_dir NULL: cluster/init, join-token and join
	 * answer 409. */
	const char   *ca_dir;       /* the cluster CA: cluster/init makes it, join issues from it */
	const char   *pin;          /* base64url SHA-256 of this server's public key (join tokens) */
	char *const  *hub_urls;     /* the hub's leafnode URLs, told to a joining node */
	size_t        n_hub_urls;
	/* Called on the loop after cluster/init made the CA: the hub's certificate. */
	int         (*on_ca_made)(void *arg);
	void         *on_ca_made_arg;
};

/* Listens and serves until SIGINT or SIGTERM. 0, or -errno at start (err says why). */
int api_run(const struct api_config *cfg, char *err, size_t errlen);

#endif
