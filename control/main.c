/*
 * main.c - sluice-control: the cluster's store and REST API on the primary (issue 16).
 *
 *   sluice-control --state DIR [--listen ADDR:PORT] [--init-admin NAME]
 *                  [--rate N] [--burst N] [--stale-after SECONDS] [--hub-port PORT]
 *
 * DIR holds control.db (SQLite) and the TLS key and certificate. On the first start (no user
 * yet) --init-admin NAME creates that superadmin: with the password read from stdin when stdin
 * is not a terminal and not empty, and in any case prints a one-time API token (valid a day) on
 * stdout, "token: T". With --hub-port (the client port of the hub's nats-server on 127.0.0.1)
 * a publisher thread drains the outbox into the KV bucket (control_publish.h). Exit: 0 on
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
#include "control_cert.h"
#include "control_publish.h"
#include "store/store.h"

#define CONTROL_INIT_TOKEN_TTL 86400

static void control_usage(void)
{
	fprintf(stderr, "usage: sluice-control --state DIR [--listen ADDR:PORT] "
		"[--init-admin NAME] [--rate N] [--burst N] [--stale-after SECONDS] "
		"[--hub-port PORT]\n");
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
		default: control_usage();
		}
	}
	if (state == NULL || optind != argc || cfg.rate <= 0 || cfg.burst == 0 || hub_port < 0 ||
	    hub_port > 65535)
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
	if (hub_port > 0) {
		if (control_publish_start(db, hub_port, &pub, err, sizeof(err)) < 0) {
			fprintf(stderr, "sluice-control: %s\n", err);
			store_close(&st);
			return 1;
		}
		cfg.on_commit = control_publish_wake;
		cfg.on_commit_arg = pub;
	}
	fprintf(stderr, "sluice-control: listening on https://%s/api/v1/\n", cfg.listen);
	rc = api_run(&cfg, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "sluice-control: %s\n", err);
	control_publish_stop(&pub);
	store_close(&st);
	return rc < 0 ? 1 : 0;
}
