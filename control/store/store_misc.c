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
		store_cols(r, s, 0, "name", "sha256", "size", "uploaded_by", "uploaded_at", NULL);
		if (with_text)
			json_object_set_new(r, "text", store_col(s, 5));
	}
	sqlite3_finalize(s);
	return r;
}

/* A rule set without its text, as lists show it. */
static json_t *store_ruleset_brief(struct store *st, const char *name)
{
	return store_ruleset_get(st, name, false);
}

json_t *store_ruleset_list(struct store *st)
{
	return store_list(st, "SELECT name FROM rulesets ORDER BY name", store_ruleset_brief);
}

int store_ruleset_put(struct store *st, const struct store_actor *a, const char *name,
		      const char *text, bool *created_r)
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	char hex[65];
	struct store_change c;
	json_t *before;
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
	return store_change_end(&c, rc, a, before ? "ruleset.update" : "ruleset.create", "ruleset",
				name, before, rc < 0 ? NULL : store_ruleset_get(st, name, false));
}

int store_ruleset_delete(struct store *st, const struct store_actor *a, const char *name)
{
	return store_delete_plain(st, a, store_ruleset_brief, "DELETE FROM rulesets WHERE name = ?",
				  "ruleset", name);
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
		store_cols(r, s, 0, "id", "at", "actor", "action", "object", NULL);
		json_object_set_new(r, "before", store_audit_json(s, 5));
		json_object_set_new(r, "after", store_audit_json(s, 6));
		store_cols(r, s, 7, "address", "version", NULL);
		json_array_append_new(items, r);
	}
	sqlite3_finalize(s);
	return json_pack("{soso}", "items", items, "next", next);
}
