/*
 * api_node.c - /nodes (with health: last seen, applied version, lag), /roles and /cluster (the
 * version, the node count and the operators' warnings: one node, most nodes in one site, a
 * node not seen for a while). Superadmin only.
 */
#include "api/api_impl.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include "base/cfgval.h"
#include "wire/wire.h"

void api_node_health(const struct api_req *r, json_t *n, uint64_t version, int64_t now)
{
	json_t *seen = json_object_get(n, "last_seen"), *applied = json_object_get(n,
										     "applied_version");
	const char *health = "ok";

	if (seen == NULL)
		health = "never seen";
	else if (now - json_integer_value(seen) > r->cfg->stale_after)
		health = "stale";
	json_object_set_new(n, "health", json_string(health));
	json_object_set_new(n, "lag", applied ? json_integer((json_int_t)version -
							     json_integer_value(applied))
				     : json_null());
}

void api_node_list(struct api_req *r)
{
	json_t *list = store_node_list(r->st), *n;
	uint64_t version = store_cluster_version(r->st);
	size_t i;

	json_array_foreach(list, i, n)
		api_node_health(r, n, version, time(NULL));
	api_reply(r, 200, json_pack("{so}", "items", list));
}

void api_node_get(struct api_req *r)
{
	json_t *n = store_node_get(r->st, r->param[0]);

	if (n == NULL) {
		api_fail(r, 404, NULL, "no node %s", r->param[0]);
		return;
	}
	api_node_health(r, n, store_cluster_version(r->st), time(NULL));
	api_reply(r, 200, n);
}

static const struct api_field api_node_fields[] = {
	{ "name", API_T_STRING, false },
	{ "site", API_T_STRING, true },
	{ "fingerprint", API_T_STRING, false },
	{ "listen", API_T_ARRAY, false },
	{ NULL, 0, false },
};

static const struct api_field api_listen_fields[] = {
	{ "label", API_T_STRING, true },
	{ "address", API_T_STRING, true },
	{ "role", API_T_STRING, true },
	{ "starttls", API_T_BOOL, false },
	{ NULL, 0, false },
};

static int api_node_check(json_t *n, struct api_error *e)
{
	const char *fp = store_json_str(n, "fingerprint");
	json_t *l;
	size_t i;

	if (!wire_label_valid(store_json_str(n, "name")))
		return api_json_error(e, "name", "want 1-63 of a-z, 0-9, '-' and '_'");
	if (!wire_value_safe(store_json_str(n, "site")) || strlen(store_json_str(n, "site")) > 64)
		return api_json_error(e, "site", "want 1-64 printable characters");
	if (fp != NULL && (strlen(fp) > 128 || !wire_value_safe(fp)))
		return api_json_error(e, "fingerprint", "want a hex fingerprint");
	json_array_foreach(json_object_get(n, "listen"), i, l) {
		struct sockaddr_storage ss;
		socklen_t len;
		const char *role;

		if (!json_is_object(l))
			return api_json_error(e, "listen", "want objects");
		if (api_json_check(l, api_listen_fields, e) < 0) {
			/* Name the field inside the listener: listen.address, ... */
			char inner[64];

			snprintf(inner, sizeof(inner), "%.63s", e->field);
			snprintf(e->field, sizeof(e->field), "listen.%s", inner);
			return -EINVAL;
		}
		role = store_json_str(l, "role");
		if (!wire_label_valid(store_json_str(l, "label")))
			return api_json_error(e, "listen.label", "want 1-63 of a-z, 0-9, '-' and '_'");
		if (!wire_value_safe(store_json_str(l, "address")) ||
		    cfgval_hostport(store_json_str(l, "address"), true, &ss, &len) < 0)
			return api_json_error(e, "listen.address", "want a numeric address:port");
		if (strcmp(role, "primary") != 0 && strcmp(role, "fallback") != 0)
			return api_json_error(e, "listen.role", "want primary or fallback");
	}
	return 0;
}

static void api_node_put(struct api_req *r, const char *path_name, bool create)
{
	struct api_error e;
	json_t *n = api_body(r, api_node_fields);
	int rc;

	if (n == NULL)
		return;
	if (json_object_get(n, "listen") == NULL)
		json_object_set_new(n, "listen", json_array());
	if (api_body_name(n, path_name, &e) < 0 || api_node_check(n, &e) < 0)
		goto bad;
	rc = store_node_put(r->st, &r->actor, n, create);
	api_reply_stored(r, rc, create ? 201 : 200, store_json_str(n, "name"), store_node_get);
	json_decref(n);
	return;
bad:
	api_fail_with(r, &e);
	json_decref(n);
}

void api_node_create(struct api_req *r)
{
	api_node_put(r, NULL, true);
}

void api_node_replace(struct api_req *r)
{
	api_node_put(r, r->param[0], false);
}

/* Removing a joined node revokes its certificate: the hub, restarted without it, refuses its
 * link (control_hub.c), and the revocation list says so to anyone checking. */
void api_node_delete(struct api_req *r)
{
	json_t *before = store_node_get(r->st, r->param[0]);
	int rc = store_node_delete(r->st, &r->actor, r->param[0]);

	if (rc == 0 && (rc = api_node_revoke(r, before)) < 0)
		api_fail(r, 500, NULL, "node %s removed, but its certificate could not be revoked: "
			 "%s", r->param[0], strerror(-rc));
	else if (rc == -EBUSY)
		api_fail(r, 409, NULL, "node %s holds a role: place it elsewhere first", r->param[0]);
	else if (rc < 0)
		api_fail_store(r, rc, r->param[0]);
	else
		api_reply(r, 204, NULL);
	json_decref(before);
}

static const struct api_field api_report_fields[] = {
	{ "version", API_T_STRING, true },
	{ "applied_version", API_T_INT, true },
	{ NULL, 0, false },
};

void api_node_report(struct api_req *r)
{
	json_t *body = api_body(r, api_report_fields);
	int rc;

	if (body == NULL)
		return;
	rc = store_node_report(r->st, r->param[0], store_json_str(body, "version"),
			       (uint64_t)json_integer_value(json_object_get(body, "applied_version")));
	json_decref(body);
	if (rc < 0)
		api_fail_store(r, rc, r->param[0]);
	else
		api_node_get(r);
}

void api_roles_get(struct api_req *r)
{
	api_reply(r, 200, store_roles_get(r->st));
}

static const struct api_field api_roles_fields[] = {
	{ "log", API_T_STRING_OR_NULL, false },
	{ "quarantine", API_T_STRING_OR_NULL, false },
	{ "archive", API_T_STRING_OR_NULL, false },
	{ NULL, 0, false },
};

void api_roles_put(struct api_req *r)
{
	json_t *body = api_body(r, api_roles_fields);
	const char *bad = NULL;
	int rc;

	if (body == NULL)
		return;
	rc = store_roles_set(r->st, &r->actor, body, &bad);
	if (rc == -ENOENT)
		api_fail(r, 400, bad, "no such node");
	else if (rc < 0)
		api_fail_store(r, rc, "roles");
	else
		api_reply(r, 200, store_roles_get(r->st));
	json_decref(body);
}

/* The warnings issue 16 item 6 asks for. */
static json_t *api_cluster_warnings(struct api_req *r, json_t *nodes)
{
	json_t *warnings = json_array(), *sites = json_object(), *n, *count;
	size_t nn = json_array_size(nodes), i;
	const char *site;
	int64_t now = time(NULL);

	if (nn == 0)
		json_array_append_new(warnings, json_string("no nodes: no mail is filtered"));
	if (nn == 1)
		json_array_append_new(warnings, json_string("no redundancy: an outage stops all "
							     "mail, and there is no backup"));
	json_array_foreach(nodes, i, n) {
		json_t *seen = json_object_get(n, "last_seen");

		site = store_json_str(n, "site");
		count = json_object_get(sites, site);
		json_object_set_new(sites, site, json_integer(json_integer_value(count) + 1));
		if (seen == NULL)
			json_array_append_new(warnings, json_sprintf("node %s has never been seen",
								     store_json_str(n, "name")));
		else if (now - json_integer_value(seen) > r->cfg->stale_after)
			json_array_append_new(warnings, json_sprintf(
				"node %s not seen for %llds", store_json_str(n, "name"),
				(long long)(now - json_integer_value(seen))));
	}
	json_object_foreach(sites, site, count)
		if (nn > 1 && (size_t)json_integer_value(count) * 2 > nn)
			json_array_append_new(warnings, json_sprintf(
				"more than half of the nodes (%lld of %zu) are in site %s: losing it "
				"stops most mail", (long long)json_integer_value(count), nn, site));
	json_decref(sites);
	return warnings;
}

void api_cluster_get(struct api_req *r)
{
	json_t *nodes = store_node_list(r->st);

	api_reply(r, 200, json_pack("{sIsIsIsIso}",
				    "version", (json_int_t)store_cluster_version(r->st),
				    "nodes", (json_int_t)json_array_size(nodes),
				    "outbox_pending", (json_int_t)store_outbox_pending(r->st),
				    "published_version", (json_int_t)store_outbox_published(r->st),
				    "warnings", api_cluster_warnings(r, nodes)));
	json_decref(nodes);
}
