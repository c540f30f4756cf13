/*
 * store_misc.c - rule sets (text and its SHA-256; compiling and shipping them is later work)
 * and reading the audit log (see store.h).
 */
#include "store/store_impl.h"

#include <errno.h>
#include <openssl/sha.h>
#include <sodium.h>
#include <string.h>

json_t *store_ruleset_get(struct store *st, const char *name, bool with_text)
{
	sqlite3_stmt *s = store_stmt(st, "SELECT name, sha256, length(CAST(text AS BLOB)), "
				     "uploaded_by, uploaded_at, text FROM rulesets WHERE name = ?", "s",
				     name);
	json_t *r = NULL;

	if (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		r = json_object();
		json_object_set_new(r, "name", store_col(s, 0));
		json_object_set_new(r, "sha256", store_col(s, 1));
		json_object_set_new(r, "size", store_col(s, 2));
		json_object_set_new(r, "uploaded_by", store_col(s, 3));
		json_object_set_new(r, "uploaded_at", store_col(s, 4));
		if (with_text)
			json_object_set_new(r, "text", store_col(s, 5));
	}
	sqlite3_finalize(s);
	return r;
}

json_t *store_ruleset_list(struct store *st)
{
	sqlite3_stmt *s = store_stmt(st, "SELECT name FROM rulesets ORDER BY name", "");
	json_t *list = json_array();

	while (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		json_t *r = store_ruleset_get(st, (const char *)sqlite3_column_text(s, 0), false);

		if (r != NULL)
			json_array_append_new(list, r);
	}
	sqlite3_finalize(s);
	return list;
}

int store_ruleset_put(struct store *st, const struct store_actor *a, const char *name,
		      const char *text, bool *created_r)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char hex[65], object[300];
	struct store_change c;
	json_t *before, *after;
	int rc;

	SHA256((const unsigned char *)text, strlen(text), md);
	sodium_bin2hex(hex, sizeof(hex), md, sizeof(md));
	rc = store_change_begin(st, &c);
	if (rc < 0)
		return rc;
	before = store_ruleset_get(st, name, false);
	*created_r = before == NULL;
	rc = store_run(st, store_stmt(st, "INSERT INTO rulesets (name, text, sha256, uploaded_by, "
				      "uploaded_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO "
				      "UPDATE SET text = excluded.text, sha256 = excluded.sha256, "
				      "uploaded_by = excluded.uploaded_by, uploaded_at = "
				      "excluded.uploaded_at", "ssssi", name, text, hex, a->user,
				      store_now()));
	if (rc < 0) {
		json_decref(before);
		return store_change_abort(&c, -EIO);
	}
	after = store_ruleset_get(st, name, false);
	snprintf(object, sizeof(object), "ruleset.%s", name);
	rc = store_change_commit(&c, a, before ? "ruleset.update" : "ruleset.create", object, before,
				 after);
	json_decref(before);
	json_decref(after);
	return rc;
}

int store_ruleset_delete(struct store *st, const struct store_actor *a, const char *name)
{
	struct store_change c;
	char object[300];
	json_t *before;
	int rc = store_change_begin(st, &c);

	if (rc < 0)
		return rc;
	before = store_ruleset_get(st, name, false);
	if (before == NULL)
		return store_change_abort(&c, -ENOENT);
	rc = store_run(st, store_stmt(st, "DELETE FROM rulesets WHERE name = ?", "s", name));
	snprintf(object, sizeof(object), "ruleset.%s", name);
	rc = rc ? store_change_abort(&c, -EIO)
		: store_change_commit(&c, a, "ruleset.delete", object, before, NULL);
	json_decref(before);
	return rc;
}

static json_t *store_audit_json(sqlite3_stmt *s, int i)
{
	const char *text = (const char *)sqlite3_column_text(s, i);

	return text ? json_loads(text, 0, NULL) : json_null();
}

json_t *store_audit_list(struct store *st, int64_t after, unsigned limit)
{
	sqlite3_stmt *s = store_stmt(st, "SELECT id, at, actor, action, object, before, after, "
				     "address, version FROM audit WHERE id > ? ORDER BY id LIMIT ?",
				     "ii", after, (int64_t)limit + 1);
	json_t *items = json_array(), *next = json_null();
	unsigned n = 0;

	while (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		json_t *r;

		if (n++ == limit) {
			json_decref(next);
			next = json_integer(json_integer_value(json_object_get(
				json_array_get(items, limit - 1), "id")));
			break;
		}
		r = json_object();
		json_object_set_new(r, "id", store_col(s, 0));
		json_object_set_new(r, "at", store_col(s, 1));
		json_object_set_new(r, "actor", store_col(s, 2));
		json_object_set_new(r, "action", store_col(s, 3));
		json_object_set_new(r, "object", store_col(s, 4));
		json_object_set_new(r, "before", store_audit_json(s, 5));
		json_object_set_new(r, "after", store_audit_json(s, 6));
		json_object_set_new(r, "address", store_col(s, 7));
		json_object_set_new(r, "version", store_col(s, 8));
		json_array_append_new(items, r);
	}
	sqlite3_finalize(s);
	return json_pack("{soso}", "items", items, "next", next);
}
