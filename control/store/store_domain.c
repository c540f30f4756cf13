/*
 * store_domain.c - domains and their policy keys (store.h), and their rendering into the
 * domain.<name> fragment of the configuration bucket (control/wire).
 */
#include "store/store_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wire/wire.h"

json_t *store_domain_get(struct store *st, const char *name)
{
	sqlite3_stmt *s = store_stmt(st, "SELECT name, route, tls, tls_verify, spool_quota, "
				     "long_lines, allow_routing FROM domains WHERE name = ?", "s", name);
	json_t *d = NULL, *policy;

	if (s == NULL)
		return NULL;
	if (sqlite3_step(s) == SQLITE_ROW) {
		d = json_object();
		json_object_set_new(d, "name", store_col(s, 0));
		json_object_set_new(d, "route", store_col(s, 1));
		store_col_opt(d, "tls", s, 2);
		store_col_flag(d, "tls_verify", s, 3);
		store_col_opt(d, "spool_quota", s, 4);
		store_col_opt(d, "long_lines", s, 5);
		store_col_flag(d, "allow_routing", s, 6);
	}
	sqlite3_finalize(s);
	if (d == NULL)
		return NULL;
	policy = json_object();
	s = store_stmt(st, "SELECT key, value FROM domain_policy WHERE domain = ? ORDER BY key", "s",
		       name);
	while (s != NULL && sqlite3_step(s) == SQLITE_ROW)
		json_object_set_new(policy, (const char *)sqlite3_column_text(s, 0), store_col(s, 1));
	sqlite3_finalize(s);
	json_object_set_new(d, "policy", policy);
	return d;
}

json_t *store_domain_list(struct store *st)
{
	return store_list(st, "SELECT name FROM domains ORDER BY name", store_domain_get);
}

int store_domain_render(json_t *domain, uint64_t version, char **text_r)
{
	json_t *policy = json_object_get(domain, "policy");
	size_t n = json_object_size(policy), i = 0;
	struct wire_kv *kv = calloc(n ? n : 1, sizeof(*kv));
	struct wire_domain d = {
		.name = store_json_str(domain, "name"),
		.route = store_json_str(domain, "route"),
		.tls = store_json_str(domain, "tls"),
		.tls_verify = store_json_flag(domain, "tls_verify"),
		.spool_quota = store_json_str(domain, "spool_quota"),
		.long_lines = store_json_str(domain, "long_lines"),
		.allow_routing = store_json_flag(domain, "allow_routing"),
	};
	struct buf b = { 0 };
	const char *key;
	json_t *value;
	int rc;

	if (kv == NULL)
		return -ENOMEM;
	/* Policy keys in key order, so the same domain always renders the same text. */
	json_object_foreach(policy, key, value) {
		kv[i].key = key;
		kv[i++].value = json_string_value(value);
	}
	for (size_t a = 1; a < i; a++)
		for (size_t z = a; z > 0 && strcmp(kv[z - 1].key, kv[z].key) > 0; z--) {
			struct wire_kv t = kv[z];

			kv[z] = kv[z - 1];
			kv[z - 1] = t;
		}
	d.npolicy = i;
	d.policy = kv;
	rc = wire_render_domain(&b, &d, version);
	free(kv);
	return store_buf_take(&b, rc, text_r);
}

/* Queues domain.<name> for the outbox: its fragment as it now is, or a delete. */
static int store_domain_publish(struct store_change *c, const char *name, json_t *now)
{
	char key[WIRE_KEY_MAX], *text = NULL;
	int rc = wire_key_domain(name, key, sizeof(key));

	if (rc == 0 && now != NULL)
		rc = store_domain_render(now, c->version, &text);
	return rc ? rc : store_change_key(c, key, text);
}

/* Ends a domain change: publishes it and commits with the audit row. */
static int store_domain_finish(struct store_change *c, int rc, const struct store_actor *a,
			       const char *action, const char *name, json_t *before)
{
	json_t *after = rc < 0 ? NULL : store_domain_get(c->st, name);

	if (rc == 0)
		rc = store_domain_publish(c, name, after);
	return store_change_end(c, rc, a, action, "domain", name, before, after);
}

int store_domain_put(struct store *st, const struct store_actor *a, json_t *domain, bool create)
{
	const char *name = store_json_str(domain, "name"), *key;
	struct store_change c;
	json_t *before, *value;
	int rc = store_change_begin(st, &c);

	if (rc < 0)
		return rc;
	before = store_domain_get(st, name);
	if (create != (before == NULL)) {
		json_decref(before);
		return store_change_abort(&c, create ? -EEXIST : -ENOENT);
	}
	rc = store_run(st, store_stmt(st, "INSERT INTO domains (name, route, tls, tls_verify, "
				      "spool_quota, long_lines, allow_routing, created, updated) "
				      "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE "
				      "SET route = excluded.route, tls = excluded.tls, tls_verify = "
				      "excluded.tls_verify, spool_quota = excluded.spool_quota, "
				      "long_lines = excluded.long_lines, allow_routing = "
				      "excluded.allow_routing, updated = excluded.updated", "sssbssbii",
				      name, store_json_str(domain, "route"),
				      store_json_str(domain, "tls"), store_json_flag(domain, "tls_verify"),
				      store_json_str(domain, "spool_quota"),
				      store_json_str(domain, "long_lines"),
				      store_json_flag(domain, "allow_routing"), store_now(), store_now()));
	rc = rc ? rc : store_run(st, store_stmt(st, "DELETE FROM domain_policy WHERE domain = ?",
						"s", name));
	json_object_foreach(json_object_get(domain, "policy"), key, value) {
		if (rc == 0)
			rc = store_run(st, store_stmt(st, "INSERT INTO domain_policy (domain, key, "
						      "value) VALUES (?, ?, ?)", "sss", name, key,
						      json_string_value(value)));
	}
	return store_domain_finish(&c, rc, a, create ? "domain.create" : "domain.update", name,
				   before);
}

int store_domain_delete(struct store *st, const struct store_actor *a, const char *name)
{
	struct store_change c;
	json_t *before;
	int rc;

	before = store_change_begin_on(st, &c, store_domain_get, name, &rc);
	if (before == NULL)
		return rc;
	rc = store_run(st, store_stmt(st, "DELETE FROM domains WHERE name = ?", "s", name));
	return store_domain_finish(&c, rc, a, "domain.delete", name, before);
}

int store_policy_set(struct store *st, const struct store_actor *a, const char *domain,
		     const char *key, const char *value)
{
	struct store_change c;
	json_t *before;
	int rc = store_change_begin(st, &c);

	if (rc < 0)
		return rc;
	before = store_domain_get(st, domain);
	if (before == NULL || (value == NULL &&
			       json_object_get(json_object_get(before, "policy"), key) == NULL)) {
		json_decref(before);
		return store_change_abort(&c, -ENOENT);
	}
	if (value != NULL)
		rc = store_run(st, store_stmt(st, "INSERT INTO domain_policy (domain, key, value) "
					      "VALUES (?, ?, ?) ON CONFLICT (domain, key) DO UPDATE "
					      "SET value = excluded.value", "sss", domain, key, value));
	else
		rc = store_run(st, store_stmt(st, "DELETE FROM domain_policy WHERE domain = ? AND "
					      "key = ?", "ss", domain, key));
	rc = rc ? rc : store_run(st, store_stmt(st, "UPDATE domains SET updated = ? WHERE name = ?",
						"is", store_now(), domain));
	return store_domain_finish(&c, rc, a, value ? "policy.set" : "policy.delete", domain,
				   before);
}
