/*
 * store_node.c - nodes with their listeners and health, role placement and join tokens (see
 * store.h). A node's listeners are published as node.<name>; the placement as "roles".
 */
#include "store/store_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wire/wire.h"

static const char *const store_role_names[] = { "log", "quarantine", "archive" };
#define STORE_NROLES (sizeof(store_role_names) / sizeof(store_role_names[0]))

static json_t *store_node_listen(struct store *st, const char *name)
{
	sqlite3_stmt *s = store_stmt(st, "SELECT label, address, role, starttls FROM node_listen "
				     "WHERE node = ? ORDER BY label", "s", name);
	json_t *list = json_array();

	while (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		json_t *l = json_object();

		store_cols(l, s, 0, "label", "address", "role", NULL);
		store_col_flag(l, "starttls", s, 3);
		json_array_append_new(list, l);
	}
	sqlite3_finalize(s);
	return list;
}

json_t *store_node_get(struct store *st, const char *name)
{
	sqlite3_stmt *s = store_stmt(st, "SELECT name, site, fingerprint, last_seen, version, "
				     "applied_version, created, serial FROM nodes WHERE name = ?",
				     "s", name);
	json_t *n = NULL;

	if (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		n = json_object();
		store_cols(n, s, 0, "name", "site", NULL);
		store_col_opt(n, "fingerprint", s, 2);
		store_col_opt(n, "last_seen", s, 3);
		store_col_opt(n, "version", s, 4);
		store_col_opt(n, "applied_version", s, 5);
		json_object_set_new(n, "created", store_col(s, 6));
		store_col_opt(n, "serial", s, 7);
	}
	sqlite3_finalize(s);
	if (n != NULL)
		json_object_set_new(n, "listen", store_node_listen(st, name));
	return n;
}

json_t *store_node_list(struct store *st)
{
	return store_list(st, "SELECT name FROM nodes ORDER BY name", store_node_get);
}

/* node.<name>: the node's [listen] sections, or a delete. */
static int store_node_publish(struct store_change *c, const char *name, json_t *now)
{
	json_t *listen = json_object_get(now, "listen"), *l;
	size_t n = json_array_size(listen), i;
	struct wire_listen *wl = calloc(n ? n : 1, sizeof(*wl));
	struct wire_node wn = { .name = name, .nlisten = n, .listen = wl };
	char key[WIRE_KEY_MAX], *text = NULL;
	struct buf b = { 0 };
	int rc = wire_key_node(name, key, sizeof(key));

	if (wl == NULL)
		return -ENOMEM;
	json_array_foreach(listen, i, l) {
		wl[i].label = store_json_str(l, "label");
		wl[i].address = store_json_str(l, "address");
		wl[i].role = store_json_str(l, "role");
		wl[i].starttls = store_json_flag(l, "starttls");
	}
	if (rc == 0 && now != NULL)
		rc = store_buf_take(&b, wire_render_node(&b, &wn, c->version), &text);
	free(wl);
	return rc ? rc : store_change_key(c, key, text);
}

static int store_node_finish(struct store_change *c, int rc, const struct store_actor *a,
			     const char *action, const char *name, json_t *before)
{
	json_t *after = rc < 0 ? NULL : store_node_get(c->st, name);

	if (rc == 0)
		rc = store_node_publish(c, name, after);
	return store_change_end(c, rc, a, action, "node", name, before, after);
}

int store_node_put(struct store *st, const struct store_actor *a, json_t *node, bool create)
{
	const char *name = store_json_str(node, "name");
	struct store_change c;
	json_t *before, *l;
	size_t i;
	int rc = store_change_begin(st, &c);

	if (rc < 0)
		return rc;
	before = store_node_get(st, name);
	if (create != (before == NULL)) {
		json_decref(before);
		return store_change_abort(&c, create ? -EEXIST : -ENOENT);
	}
	rc = store_run(st, store_stmt(st, "INSERT INTO nodes (name, site, fingerprint, created) "
				      "VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET site = "
				      "excluded.site, fingerprint = coalesce(excluded.fingerprint, "
				      "fingerprint)", "sssi",
				      name, store_json_str(node, "site"),
				      store_json_str(node, "fingerprint"), store_now()));
	rc = rc ? rc : store_run(st, store_stmt(st, "DELETE FROM node_listen WHERE node = ?", "s",
						name));
	json_array_foreach(json_object_get(node, "listen"), i, l) {
		if (rc == 0)
			rc = store_run(st, store_stmt(st, "INSERT INTO node_listen (node, label, "
						      "address, role, starttls) VALUES (?, ?, ?, "
						      "?, ?)", "ssssb", name,
						      store_json_str(l, "label"),
						      store_json_str(l, "address"),
						      store_json_str(l, "role"),
						      store_json_flag(l, "starttls")));
	}
	return store_node_finish(&c, rc, a, create ? "node.create" : "node.update", name, before);
}

int store_node_delete(struct store *st, const struct store_actor *a, const char *name)
{
	struct store_change c;
	json_t *before;
	int rc;

	before = store_change_begin_on(st, &c, store_node_get, name, &rc);
	if (before == NULL)
		return rc;
	if (store_int(st, store_stmt(st, "SELECT count(*) FROM roles WHERE node = ?", "s", name),
		      0) > 0) {
		json_decref(before);
		return store_change_abort(&c, -EBUSY);
	}
	rc = store_run(st, store_stmt(st, "DELETE FROM nodes WHERE name = ?", "s", name));
	return store_node_finish(&c, rc, a, "node.delete", name, before);
}

int store_node_report(struct store *st, const char *name, const char *version, uint64_t applied)
{
	int rc = store_run(st, store_stmt(st, "UPDATE nodes SET last_seen = ?, version = ?, "
					  "applied_version = ? WHERE name = ?", "isis", store_now(),
					  version, (int64_t)applied, name));

	if (rc < 0)
		return -EIO;
	return sqlite3_changes(st->db) ? 0 : -ENOENT;
}

int store_node_set_cert(struct store *st, const struct store_actor *a, const char *name,
			const char *fingerprint, const char *serial)
{
	struct store_change c;
	json_t *before;
	int rc;

	before = store_change_begin_on(st, &c, store_node_get, name, &rc);
	if (before == NULL)
		return rc;
	rc = store_run(st, store_stmt(st, "UPDATE nodes SET fingerprint = ?, serial = ? WHERE "
				      "name = ?", "sss", fingerprint, serial, name));
	return store_node_finish(&c, rc, a, "node.join", name, before);
}

json_t *store_node_certified(struct store *st)
{
	sqlite3_stmt *s = store_stmt(st, "SELECT name FROM nodes WHERE serial IS NOT NULL "
				     "ORDER BY name", "");
	json_t *names = json_array();

	while (s != NULL && sqlite3_step(s) == SQLITE_ROW)
		json_array_append_new(names, store_col(s, 0));
	sqlite3_finalize(s);
	return names;
}

/* --- roles ------------------------------------------------------------------------------ */

json_t *store_roles_get(struct store *st)
{
	json_t *r = json_object();

	for (size_t i = 0; i < STORE_NROLES; i++)
		json_object_set_new(r, store_role_names[i], json_null());
	sqlite3_stmt *s = store_stmt(st, "SELECT role, node FROM roles", "");
	while (s != NULL && sqlite3_step(s) == SQLITE_ROW)
		json_object_set_new(r, (const char *)sqlite3_column_text(s, 0), store_col(s, 1));
	sqlite3_finalize(s);
	return r;
}

int store_roles_set(struct store *st, const struct store_actor *a, json_t *roles,
		    const char **bad_r)
{
	struct store_change c;
	struct wire_roles wr;
	struct buf b = { 0 };
	json_t *before, *after;
	char *text = NULL;
	int rc = store_change_begin(st, &c);

	if (rc < 0)
		return rc;
	before = store_roles_get(st);
	for (size_t i = 0; rc == 0 && i < STORE_NROLES; i++) {
		const char *role = store_role_names[i];
		json_t *v = json_object_get(roles, role);

		if (v == NULL)
			continue;
		if (json_is_null(v)) {
			rc = store_run(st, store_stmt(st, "DELETE FROM roles WHERE role = ?", "s", role));
			continue;
		}
		if (store_int(st, store_stmt(st, "SELECT count(*) FROM nodes WHERE name = ?", "s",
					     json_string_value(v)), 0) == 0) {
			*bad_r = role;
			rc = -ENOENT;
			break;
		}
		rc = store_run(st, store_stmt(st, "INSERT INTO roles (role, node) VALUES (?, ?) ON "
					      "CONFLICT (role) DO UPDATE SET node = excluded.node", "ss",
					      role, json_string_value(v)));
	}
	if (rc < 0) {
		json_decref(before);
		return store_change_abort(&c, rc == -ENOENT ? rc : -EIO);
	}
	after = store_roles_get(st);
	wr = (struct wire_roles){ store_json_str(after, "log"), store_json_str(after, "quarantine"),
				  store_json_str(after, "archive") };
	rc = store_buf_take(&b, wire_render_roles(&b, &wr, c.version), &text);
	rc = rc ? rc : store_change_key(&c, WIRE_KEY_ROLES, text);
	rc = rc ? store_change_abort(&c, rc)
		: store_change_commit(&c, a, "roles.set", WIRE_KEY_ROLES, before, after);
	json_decref(before);
	json_decref(after);
	return rc;
}

/* --- join tokens ------------------------------------------------------------------------ */

int store_join_create(struct store *st, const struct store_actor *a, const char *node,
		      const char *site, int64_t ttl, char *token_r)
{
	struct store_change c;
	char hash[65];
	int rc = store_change_begin(st, &c);

	if (rc < 0)
		return rc;
	store_token_random(token_r);
	store_token_hash(token_r, hash);
	rc = store_run(st, store_stmt(st, "INSERT INTO join_tokens (node, site, hash, created, "
				      "expires) VALUES (?, ?, ?, ?, ?)", "sssii", node, site, hash,
				      store_now(), store_now() + ttl));
	return store_change_end(&c, rc, a, "join.create", "join", node, NULL,
				json_pack("{ssss}", "node", node, "site", site));
}

int store_join_consume(struct store *st, const char *token, json_t **info_r)
{
	char hash[65];
	sqlite3_stmt *s;
	int rc = -ENOENT;
	int64_t id = 0;

	store_token_hash(token, hash);
	s = store_stmt(st, "SELECT id, node, site, expires, used FROM join_tokens WHERE hash = ?",
		       "s", hash);
	if (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		id = sqlite3_column_int64(s, 0);
		rc = sqlite3_column_int(s, 4) ? -EALREADY
		     : sqlite3_column_int64(s, 3) <= store_now() ? -EKEYEXPIRED : 0;
		if (rc == 0)
			*info_r = json_pack("{soso}", "node", store_col(s, 1), "site", store_col(s, 2));
	}
	sqlite3_finalize(s);
	if (rc < 0)
		return rc;
	/* One use: a second request with the same token finds used = 1 (the UPDATE is atomic). */
	rc = store_run(st, store_stmt(st, "UPDATE join_tokens SET used = 1 WHERE id = ? AND used = 0",
				      "i", id));
	if (rc < 0 || sqlite3_changes(st->db) == 0) {
		json_decref(*info_r);
		*info_r = NULL;
		return rc < 0 ? -EIO : -EALREADY;
	}
	return 0;
}
