/*
 * main.c - sluice-control: the cluster's store and REST API on the primary (issue 16).
 *
 *   sluice-control --state DIR [--listen ADDR:PORT] [--init-admin NAME]
 *                  [--rate N] [--burst N] [--stale-after SECONDS] [--hub-port PORT]
 *                  [--hub ADDR:PORT [--hub-address HOST]... [--hub-monitor PORT]
 *                   [--node NAME] [--nats-server PATH]]
 *
 * DIR holds control.db (SQLite) and the TLS key and certificate. On the first start (no user
 * yet) --init-admin NAME creates that superadmin: with the password read from stdin when stdin
 * is not a terminal and not empty, and in any case prints a one-time API token (valid a day) on
 * stdout, "token: T". With --hub-port (the client port of the hub's nats-server on 127.0.0.1)
 * a publisher thread drains the outbox into the KV bucket (control_publish.h) and another
 * records the nodes' status reports (control_status.h). With --hub (the
 * hub's mutual-TLS leafnode listener; --hub-port is then its client port) sluice-control also
 * runs the hub's nats-server itself (control_hub.h) and the cluster's identity endpoints
 * (cluster/init, join tokens, join): --hub-address names each host leaves dial (default: the
 * listener's address, or 127.0.0.1 for a wildcard), --hub-monitor its monitoring port (default
 * --hub-port + 4000), --node the primary's own node name (default "primary"). Exit: 0 on
 * SIGTERM, 1 on a start-up error, 2 on bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api/api.h"
#include "base/cfgval.h"
#include "control_cert.h"
#include "control_hub.h"
#include "control_publish.h"
#include "control_status.h"
#include "store/store.h"

#define CONTROL_INIT_TOKEN_TTL 86400

static void control_usage(void)
{
	fprintf(stderr, "usage: sluice-control --state DIR [--listen ADDR:PORT] "
		"[--init-admin NAME] [--rate N] [--burst N] [--stale-after SECONDS] "
		"[--hub-port PORT]\n"
		"       [--hub ADDR:PORT [--hub-address HOST]... [--hub-monitor PORT] [--node NAME] "
		"[--nats-server PATH]]\n");
	exit(2);
}

/* The first superadmin, when the store has no user yet. */
static int control_init_admin(struct store *st, const char *name)
{
	struct store_actor actor = { "-", "local" };
	char password[1024] = "", token[STORE_TOKEN_LEN + 1];
	json_t *users = store_user_list(st), *u;
	size_t n = json_array_size(users);
	int64_t id;
	int rc;

	json_decref(users);
	if (n > 0)
		return 0;
	if (!isatty(0) && fgets(password, sizeof(password), stdin) != NULL)
		password[strcspn(password, "\r\n")] = '\0';
	u = json_pack("{sssss[]s[]}", "name", name, "role", "superadmin", "domains", "addresses");
	rc = store_user_put(st, &actor, u, password[0] ? password : NULL, true);
	json_decref(u);
	memset(password, 0, sizeof(password));
	if (rc == 0)
		rc = store_token_create(st, &actor, name, STORE_TOKEN_API, CONTROL_INIT_TOKEN_TTL,
					"first start", token, &id);
	if (rc < 0) {
		fprintf(stderr, "sluice-control: cannot create the user %s: %s\n", name,
			strerror(-rc));
		return rc;
	}
	printf("superadmin %s created\ntoken: %s\n", name, token);
	fflush(stdout);
	return 0;
}

#define CONTROL_HUB_ADDRS_MAX 16

static struct control_hub *control_on_commit_hub;

/* A committed change: the publisher sends it; the hub looks whether a node joined or left. */
static void control_on_commit(void *pub)
{
	if (pub != NULL)
		control_publish_wake(pub);
	if (control_on_commit_hub != NULL)
		control_hub_wake(control_on_commit_hub);
}

/* cluster/init made the CA: the hub's certificate, then the hub can start. */
static int control_on_ca_made(void *arg)
{
	int rc = control_hub_cert_ensure(arg);

	if (rc == 0 && control_on_commit_hub != NULL)
		control_hub_wake(control_on_commit_hub);
	return rc;
}

/* --hub's listener, port and default address; --hub-port is required with it. */
static int control_hub_args(struct control_hub_config *hc, int hub_port, const char **addrs,
			    char *host, size_t hostlen)
{
	struct sockaddr_storage ss;
	socklen_t len;
	const char *colon = strrchr(hc->leaf_listen, ':');

	if (hub_port <= 0 || colon == NULL || cfgval_hostport(hc->leaf_listen, true, &ss, &len) < 0)
		return -EINVAL;
	hc->leaf_port = atoi(colon + 1);
	hc->client_port = hub_port;
	if (hc->monitor_port == 0)
		hc->monitor_port = hub_port + 4000;
	if (hc->monitor_port <= 0 || hc->monitor_port > 65535)
		return -EINVAL;
	if (hc->n_addrs == 0) {
		size_t n = (size_t)(colon - hc->leaf_listen);
		const char *h = hc->leaf_listen;
		if (*h == '[' && n >= 2) {
			h++;
			n -= 2;
		}
		if (n >= hostlen)
			return -EINVAL;
		memcpy(host, h, n);
		host[n] = '\0';
		if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0)
			strcpy(host, "127.0.0.1");
		addrs[hc->n_addrs++] = host;
	}
	hc->addrs = addrs;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "init-admin", required_argument, NULL, 'i' },
		{ "rate", required_argument, NULL, 'r' },
		{ "burst", required_argument, NULL, 'b' },
		{ "stale-after", required_argument, NULL, 'a' },
		{ "hub-port", required_argument, NULL, 'p' },
		{ "hub", required_argument, NULL, 'H' },
		{ "hub-address", required_argument, NULL, 'A' },
		{ "hub-monitor", required_argument, NULL, 'M' },
		{ "node", required_argument, NULL, 'n' },
		{ "nats-server", required_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct api_config cfg = {
		.listen = "127.0.0.1:8443", .body_max = 64 * 1024, .rules_max = 8 * 1024 * 1024,
		.rate = 50, .burst = 200, .stale_after = 300,
	};
	const char *state = NULL, *init_admin = NULL;
	char db[4096], cert[4096], key[4096], err[512] = "";
	struct store *st = NULL;
	struct control_publish *pub = NULL;
	struct control_hub *hub = NULL;
	struct control_hub_config hc = { .node_name = "primary" };
	const char *hub_addrs[CONTROL_HUB_ADDRS_MAX];
	char ca_dir[4096], pin[CONTROL_PIN_LEN + 1], **hub_urls = NULL, listen_host[256];
	size_t n_hub_urls = 0;
	struct control_status *status = NULL;
	int c, rc, hub_port = 0;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's': state = optarg; break;
		case 'l': cfg.listen = optarg; break;
		case 'i': init_admin = optarg; break;
		case 'r': cfg.rate = atof(optarg); break;
		case 'b': cfg.burst = (unsigned)atoi(optarg); break;
		case 'a': cfg.stale_after = atoll(optarg); break;
		case 'p': hub_port = atoi(optarg); break;
		case 'H': hc.leaf_listen = optarg; break;
		case 'A':
			if (hc.n_addrs == CONTROL_HUB_ADDRS_MAX)
				control_usage();
			hub_addrs[hc.n_addrs++] = optarg;
			break;
		case 'M': hc.monitor_port = atoi(optarg); break;
		case 'n': hc.node_name = optarg; break;
		case 'N': hc.nats_server = optarg; break;
		default: control_usage();
		}
	}
	if (state == NULL || optind != argc || cfg.rate <= 0 || cfg.burst == 0 || hub_port < 0 ||
	    hub_port > 65535)
		control_usage();
	if (hc.leaf_listen != NULL && control_hub_args(&hc, hub_port, hub_addrs, listen_host,
						       sizeof(listen_host)) < 0)
		control_usage();
	if (mkdir(state, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "sluice-control: %s: %s\n", state, strerror(errno));
		return 1;
	}
	snprintf(db, sizeof(db), "%s/control.db", state);
	if (store_open(db, &st, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice-control: %s: %s\n", db, err);
		return 1;
	}
	if (init_admin != NULL && control_init_admin(st, init_admin) < 0) {
		store_close(&st);
		return 1;
	}
	if (control_cert_ensure(state, cert, key, sizeof(cert), err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice-control: %s\n", err);
		store_close(&st);
		return 1;
	}
	cfg.cert_file = cert;
	cfg.key_file = key;
	cfg.st = st;
	if (hc.leaf_listen != NULL) {
		hc.state_dir = state;
		hc.db = db;
		snprintf(ca_dir, sizeof(ca_dir), "%s/ca", state);
		rc = control_cert_pin(cert, pin);
		rc = rc ? rc : control_hub_urls(&hc, &hub_urls, &n_hub_urls);
		/* A CA made by an earlier run: the hub's certificate now, before the API runs. */
		rc = rc ? rc : control_hub_cert_ensure(&hc);
		if (rc == -ENOENT)
			rc = 0;
		rc = rc ? rc : control_hub_start(&hc, &hub, err, sizeof(err));
		if (rc < 0) {
			fprintf(stderr, "sluice-control: hub: %s\n", err[0] ? err : strerror(-rc));
			store_close(&st);
			return 1;
		}
		cfg.ca_dir = ca_dir;
		cfg.pin = pin;
		cfg.hub_urls = hub_urls;
		cfg.n_hub_urls = n_hub_urls;
		cfg.on_ca_made = control_on_ca_made;
		cfg.on_ca_made_arg = &hc;
		control_on_commit_hub = hub;
	}
	if (hub_port > 0) {
		if (control_publish_start(db, hub_port, &pub, err, sizeof(err)) < 0) {
			fprintf(stderr, "sluice-control: %s\n", err);
			store_close(&st);
			return 1;
		}
		if (control_status_start(db, hub_port, &status, err, sizeof(err)) < 0) {
			fprintf(stderr, "sluice-control: %s\n", err);
			control_publish_stop(&pub);
			control_hub_stop(&hub);
			store_close(&st);
			return 1;
		}
	}
	cfg.on_commit = control_on_commit;
	cfg.on_commit_arg = pub;
	fprintf(stderr, "sluice-control: listening on https://%s/api/v1/\n", cfg.listen);
	rc = api_run(&cfg, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "sluice-control: %s\n", err);
	control_status_stop(&status);
	control_publish_stop(&pub);
	control_hub_stop(&hub);
	for (size_t i = 0; i < n_hub_urls; i++)
		free(hub_urls[i]);
	free(hub_urls);
	store_close(&st);
	return rc < 0 ? 1 : 0;
}
