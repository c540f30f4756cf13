/*
 * api_join.c - the cluster's identity: /cluster/init makes the CA, /nodes/NAME/join-token gives
 * a one-use token for a node, /join (no login: the token authorizes) signs the node's CSR, and
 * removing a node revokes its certificate (control/wire/README.md "Identity").
 *
 * A join token as the operator sees it is NAME.SECRET.PIN: the node's name (so sluice-node can
 * make its CSR before it has talked to anyone), the secret the store keeps hashed, and the pin
 * of this server's public key, which the node checks the TLS connection against (the control's
 * certificate is self-signed, so the token is what a node trusts on first contact).
 */
#include "api/api_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sync/ca.h"
#include "sync/sync_file.h"

#define API_JOIN_TTL_DEF  3600
#define API_JOIN_TTL_MAX  (30 * 86400)
#define API_JOIN_CERT_DAYS CA_DAYS_DEFAULT
#define API_PEM_MAX       (64 * 1024)

/* The control runs the cluster's identity (--hub); else the response is set. */
static bool api_cluster_runs(struct api_req *r)
{
	if (r->cfg->ca_dir != NULL)
		return true;
	api_fail(r, 409, NULL, "this control runs no cluster (start it with --hub)");
	return false;
}

static void api_ca_crt(const struct api_req *r, char *path, size_t size)
{
	snprintf(path, size, "%s/ca.crt", r->cfg->ca_dir);
}

/* The cluster's CA is made; else the response is set. */
static bool api_cluster_ready(struct api_req *r)
{
	char path[4096];

	if (!api_cluster_runs(r))
		return false;
	api_ca_crt(r, path, sizeof(path));
	if (access(path, R_OK) < 0) {
		api_fail(r, 409, NULL, "no cluster CA yet: run `sluicectl cluster init` first");
		return false;
	}
	return true;
}

void api_cluster_init(struct api_req *r)
{
	char path[4096], fp[CA_FP_LEN + 1], *pem = NULL;
	int rc;

	if (!api_cluster_runs(r))
		return;
	rc = ca_init(r->cfg->ca_dir);
	if (rc == -EEXIST) {
		api_fail(r, 409, NULL, "the cluster CA exists already");
		return;
	}
	api_ca_crt(r, path, sizeof(path));
	if (rc == 0)
		rc = sync_file_read(path, API_PEM_MAX, &pem, NULL);
	if (rc == 0)
		rc = ca_cert_fingerprint(pem, fp);
	free(pem);
	if (rc < 0) {
		api_fail(r, 500, NULL, "cannot make the cluster CA: %s", strerror(-rc));
		return;
	}
	if (r->cfg->on_ca_made != NULL && (rc = r->cfg->on_ca_made(r->cfg->on_ca_made_arg)) < 0)
		fprintf(stderr, "sluice-control: the hub's certificate: %s\n", strerror(-rc));
	api_reply(r, 201, json_pack("{ss}", "ca_fingerprint", fp));
}

static const struct api_field api_join_token_fields[] = {
	{ "ttl", API_T_INT, false },
	{ NULL, 0, false },
};

void api_node_join_token(struct api_req *r)
{
	json_t *body, *node;
	json_int_t ttl;
	char secret[STORE_TOKEN_LEN + 1], token[CA_NAME_MAX + STORE_TOKEN_LEN + 64];
	int rc;

	if ((body = api_body(r, api_join_token_fields)) == NULL)
		return;
	ttl = json_object_get(body, "ttl") ? json_integer_value(json_object_get(body, "ttl"))
					    : API_JOIN_TTL_DEF;
	json_decref(body);
	if (ttl <= 0 || ttl > API_JOIN_TTL_MAX) {
		api_fail(r, 400, "ttl", "want 1 to %d seconds", API_JOIN_TTL_MAX);
		return;
	}
	if (!api_cluster_ready(r))
		return;
	if ((node = store_node_get(r->st, r->param[0])) == NULL) {
		api_fail(r, 404, NULL, "no node %s: add it first", r->param[0]);
		return;
	}
	if (!ca_name_valid(r->param[0])) {
		json_decref(node);
		api_fail(r, 409, NULL, "node %s: a joining node's name must be a lower-case DNS "
			 "label", r->param[0]);
		return;
	}
	rc = store_join_create(r->st, &r->actor, r->param[0], store_json_str(node, "site"), ttl,
			       secret);
	json_decref(node);
	if (rc < 0) {
		api_fail_store(r, rc, r->param[0]);
		return;
	}
	snprintf(token, sizeof(token), "%s.%s.%s", r->param[0], secret, r->cfg->pin);
	api_reply(r, 201, json_pack("{sssssI}", "node", r->param[0], "token", token, "expires",
				    (json_int_t)(time(NULL) + ttl)));
}

static const struct api_field api_join_fields[] = {
	{ "token", API_T_STRING, true },
	{ "csr", API_T_STRING, true },
	{ NULL, 0, false },
};

/* The secret of a token as sluice-node sends it: NAME.SECRET(.PIN), or the secret alone. */
static const char *api_join_secret(const char *token, char *out, size_t size)
{
	const char *dot = strchr(token, '.');
	const char *s = dot ? dot + 1 : token, *end = strchr(s, '.');
	size_t n = end ? (size_t)(end - s) : strlen(s);

	if (n == 0 || n >= size)
		return NULL;
	memcpy(out, s, n);
	out[n] = '\0';
	return out;
}

static json_t *api_hub_urls(const struct api_config *cfg)
{
	json_t *a = json_array();

	for (size_t i = 0; i < cfg->n_hub_urls; i++)
		json_array_append_new(a, json_string(cfg->hub_urls[i]));
	return a;
}

void api_join(struct api_req *r)
{
	json_t *body, *info = NULL;
	char secret[STORE_TOKEN_LEN + 8], path[4096], fp[CA_FP_LEN + 1];
	char serial[CA_SERIAL_MAX + 1], *cert = NULL, *ca = NULL;
	const char *node;
	int rc;

	if ((body = api_body(r, api_join_fields)) == NULL)
		return;
	if (!api_cluster_ready(r))
		goto out;
	if (api_join_secret(store_json_str(body, "token"), secret, sizeof(secret)) == NULL) {
		api_fail(r, 400, "token", "want the token `sluicectl node add` printed");
		goto out;
	}
	rc = store_join_consume(r->st, secret, &info);
	if (rc < 0) {
		/* 403, not 401: there is no login that would help; the operator makes a new token. */
		api_fail(r, 403, "token", "%s", rc == -EKEYEXPIRED ? "the join token has expired"
			 : rc == -EALREADY ? "the join token was used already"
			 : "no such join token");
		goto out;
	}
	node = store_json_str(info, "node");
	snprintf(path, sizeof(path), "join:%s", node);
	r->actor.user = path;   /* the audit's "who": the token's node */
	rc = ca_issue(r->cfg->ca_dir, store_json_str(body, "csr"), node, API_JOIN_CERT_DAYS, &cert);
	if (rc < 0) {
		api_fail(r, 400, "csr", "%s (the token is used up: make a new one)",
			 rc == -EPERM ? "the CSR must ask for CN=<the token's node> and nothing else"
			 : rc == -EBADMSG ? "not a CSR signed by its own EC P-256 key"
			 : strerror(-rc));
		goto out;
	}
	rc = ca_cert_fingerprint(cert, fp);
	rc = rc ? rc : ca_cert_serial(cert, serial);
	rc = rc ? rc : store_node_set_cert(r->st, &r->actor, node, fp, serial);
	api_ca_crt(r, path, sizeof(path));
	rc = rc ? rc : sync_file_read(path, API_PEM_MAX, &ca, NULL);
	if (rc < 0)
		api_fail_store(r, rc, node);
	else
		api_reply(r, 200, json_pack("{ssssssso}", "name", node, "certificate", cert, "ca", ca,
					    "hub_urls", api_hub_urls(r->cfg)));
out:
	free(cert);
	free(ca);
	json_decref(info);
	json_decref(body);
}

int api_node_revoke(struct api_req *r, json_t *node)
{
	const char *serial = store_json_str(node, "serial");

	if (serial == NULL || r->cfg->ca_dir == NULL)
		return 0;
	return ca_revoke(r->cfg->ca_dir, serial);
}
