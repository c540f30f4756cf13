/*
 * control_hub.c - the hub's nats-server under sluice-control (control_hub.h). It joins the
 * store (who has joined) and the sync library (certificates, configuration, the child), so it
 * lives here rather than in either.
 */
#include "control_hub.h"

#include <errno.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "control_wait.h"
#include "store/store.h"
#include "sync/ca.h"
#include "sync/csr.h"
#include "sync/natsconf.h"
#include "sync/natsproc.h"
#include "sync/pem_io.h"
#include "sync/sync_file.h"

#define HUB_PATH_MAX   4096
#define HUB_RENEW_DAYS 30     /* a certificate this close to its end is issued again */

struct control_hub {
	const struct control_hub_config *cfg;
	struct store       *st;
	pthread_t           thread;
	struct control_wait wait;
	struct natsproc     proc;
	json_t             *authorized;   /* the list the running server was given; NULL: none */
	char                conf[HUB_PATH_MAX];
	int                 last_error;   /* logged once until the server runs */
};

static void hub_path(const struct control_hub_config *cfg, const char *leaf, char *out)
{
	snprintf(out, HUB_PATH_MAX, "%s/%s", cfg->state_dir, leaf);
}

/* Whether the certificate at path names every address and is not near its end. */
static bool hub_cert_current(const struct control_hub_config *cfg, const char *path)
{
	X509 *x = NULL;
	bool ok;

	if (pem_io_read_cert(path, &x) < 0)
		return false;
	ok = X509_cmp_time(X509_get0_notAfter(x), &(time_t){ time(NULL) +
			   HUB_RENEW_DAYS * 86400L }) > 0;
	for (size_t i = 0; ok && i < cfg->n_addrs; i++)
		ok = X509_check_ip_asc(x, cfg->addrs[i], 0) == 1 ||
		     X509_check_host(x, cfg->addrs[i], 0, 0, NULL) == 1;
	X509_free(x);
	return ok;
}

int control_hub_cert_ensure(const struct control_hub_config *cfg)
{
	char ca[HUB_PATH_MAX], dir[HUB_PATH_MAX], crt[HUB_PATH_MAX], key[HUB_PATH_MAX];
	char *csr = NULL, *pem = NULL;
	int rc;

	hub_path(cfg, "ca", ca);
	hub_path(cfg, "hub", dir);
	hub_path(cfg, "hub/hub.crt", crt);
	hub_path(cfg, "hub/hub.key", key);
	if (access(ca, F_OK) < 0)
		return -ENOENT;
	if (hub_cert_current(cfg, crt))
		return 0;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	rc = csr_make(cfg->node_name, key, &csr);
	if (rc == 0)
		rc = ca_issue_hub(ca, csr, cfg->node_name, CONTROL_HUB_CERT_DAYS, cfg->addrs,
				  cfg->n_addrs, &pem);
	if (rc == 0)
		rc = sync_file_write(crt, pem, strlen(pem), 0644);
	free(csr);
	free(pem);
	return rc;
}

int control_hub_urls(const struct control_hub_config *cfg, char ***urls_r, size_t *n_r)
{
	char **urls = calloc(cfg->n_addrs ? cfg->n_addrs : 1, sizeof(*urls));

	if (urls == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cfg->n_addrs; i++) {
		bool v6 = strchr(cfg->addrs[i], ':') != NULL;
		if (asprintf(&urls[i], v6 ? "tls://[%s]:%d" : "tls://%s:%d", cfg->addrs[i],
			     cfg->leaf_port) < 0) {
			while (i > 0)
				free(urls[--i]);
			free(urls);
			return -ENOMEM;
		}
	}
	*urls_r = urls;
	*n_r = cfg->n_addrs;
	return 0;
}

static void hub_failed(struct control_hub *h, const char *what, int rc)
{
	if (rc != h->last_error)
		fprintf(stderr, "sluice-control: hub: %s: %s (retrying)\n", what, strerror(-rc));
	h->last_error = rc;
}

/* Writes the configuration for this authorization list. */
static int hub_write_conf(struct control_hub *h, json_t *names)
{
	const struct control_hub_config *cfg = h->cfg;
	size_t n = json_array_size(names);
	const char **auth = calloc(n ? n : 1, sizeof(*auth));
	char state[HUB_PATH_MAX], crt[HUB_PATH_MAX], key[HUB_PATH_MAX], ca[HUB_PATH_MAX];
	char log[HUB_PATH_MAX], advertise[300];
	int rc;

	if (auth == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		auth[i] = json_string_value(json_array_get(names, i));
	hub_path(cfg, "hub/state", state);
	hub_path(cfg, "hub/hub.crt", crt);
	hub_path(cfg, "hub/hub.key", key);
	hub_path(cfg, "ca/ca.crt", ca);
	hub_path(cfg, "hub/nats-server.log", log);
	snprintf(advertise, sizeof(advertise), strchr(cfg->addrs[0], ':') ? "[%s]:%d" : "%s:%d",
		 cfg->addrs[0], cfg->leaf_port);
	struct natsconf c = {
		.role = NATSCONF_HUB, .node_name = cfg->node_name, .state_dir = state,
		.client_port = cfg->client_port, .monitor_port = cfg->monitor_port,
		.cert_file = crt, .key_file = key, .ca_file = ca, .log_file = log, .leaf_listen = cfg->leaf_listen,
		.leaf_advertise = advertise, .authorized = auth, .n_authorized = n,
	};
	rc = natsconf_write(&c, h->conf);
	free(auth);
	return rc;
}

/* One look: start the server once the certificate is there, restart it on a new list. */
static void hub_step(struct control_hub *h)
{
	char crt[HUB_PATH_MAX];
	json_t *names;
	int rc;

	hub_path(h->cfg, "hub/hub.crt", crt);
	if (access(crt, R_OK) < 0)
		return;   /* no CA yet: `sluicectl cluster init` makes it and the certificate */
	names = store_node_certified(h->st);
	if (h->proc.pid != 0 && h->authorized != NULL && json_equal(names, h->authorized)) {
		json_decref(names);
		rc = natsproc_poll(&h->proc);
		if (rc < 0)
			hub_failed(h, "restart after a death", rc);
		return;
	}
	rc = hub_write_conf(h, names);
	if (rc == 0)
		rc = h->proc.pid != 0 ? natsproc_restart(&h->proc, NATSPROC_STOP_MS)
				      : natsproc_start(&h->proc, NATSPROC_START_MS);
	if (rc < 0) {
		json_decref(names);
		hub_failed(h, h->conf, rc);
		return;
	}
	fprintf(stderr, "sluice-control: hub: nats-server pid %ld, %zu node(s) authorized\n",
		(long)h->proc.pid, json_array_size(names));
	json_decref(h->authorized);
	h->authorized = names;
	h->last_error = 0;
}

static void *hub_thread(void *arg)
{
	struct control_hub *h = arg;

	do
		hub_step(h);
	while (control_wait_for(&h->wait, CONTROL_HUB_POLL_MS, true));
	natsproc_stop(&h->proc, NATSPROC_STOP_MS);
	return NULL;
}

int control_hub_start(const struct control_hub_config *cfg, struct control_hub **hub_r,
		      char *err, size_t errlen)
{
	struct control_hub *h = calloc(1, sizeof(*h));
	char dir[HUB_PATH_MAX];
	int rc;

	if (h == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (cfg->n_addrs == 0 || !ca_name_valid(cfg->node_name)) {
		snprintf(err, errlen, "hub: want a node name and at least one address");
		free(h);
		return -EINVAL;
	}
	hub_path(cfg, "hub", dir);
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", dir, strerror(-rc));
		free(h);
		return rc;
	}
	if ((rc = store_open(cfg->db, &h->st, err, errlen)) < 0) {
		free(h);
		return rc;
	}
	h->cfg = cfg;
	hub_path(cfg, "hub/nats.conf", h->conf);
	h->proc = (struct natsproc){ .binary = cfg->nats_server, .conf_path = h->conf,
				     .monitor_port = cfg->monitor_port };
	control_wait_init(&h->wait);
	if ((rc = control_thread_start(&h->thread, hub_thread, h)) < 0) {
		snprintf(err, errlen, "hub thread: %s", strerror(-rc));
		control_wait_destroy(&h->wait);
		store_close(&h->st);
		free(h);
		return rc;
	}
	*hub_r = h;
	return 0;
}

void control_hub_wake(void *arg)
{
	struct control_hub *h = arg;
	control_wait_wake(&h->wait);
}

void control_hub_stop(struct control_hub **hub)
{
	struct control_hub *h = *hub;

	if (h == NULL)
		return;
	control_wait_stop(&h->wait);
	pthread_join(h->thread, NULL);
	control_wait_destroy(&h->wait);
	json_decref(h->authorized);
	store_close(&h->st);
	free(h);
	*hub = NULL;
}
