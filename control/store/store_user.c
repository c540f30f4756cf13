/*
 * store_user.c - users (argon2id password hashes), their domains and addresses, and API and
 * session tokens (only their SHA-256 is stored: a token is 256 random bits, so a fast hash is
 * enough, and a lookup is one index probe). See store.h.
 */
#include "store/store_impl.h"

#include <errno.h>
#include <sodium.h>
#include <string.h>

static json_t *store_user_strings(struct store *st, const char *sql, const char *name)
{
	sqlite3_stmt *s = store_stmt(st, sql, "s", name);
	json_t *list = json_array();

	while (s != NULL && sqlite3_step(s) == SQLITE_ROW)
		json_array_append_new(list, store_col(s, 0));
	sqlite3_finalize(s);
	return list;
}

json_t *store_user_get(struct store *st, const char *name)
{
	sqlite3_stmt *s = store_stmt(st, "SELECT name, role, created FROM users WHERE name = ?",
				     "s", name);
	json_t *u = NULL;

	if (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		u = json_object();
		store_cols(u, s, 0, "name", "role", "created", NULL);
	}
	sqlite3_finalize(s);
	if (u == NULL)
		return NULL;
	json_object_set_new(u, "domains", store_user_strings(st, "SELECT domain FROM user_domains "
							      "WHERE user = ? ORDER BY domain", name));
	json_object_set_new(u, "addresses", store_user_strings(st, "SELECT address FROM "
								"user_addresses WHERE user = ? ORDER BY address", name));
	return u;
}

json_t *store_user_list(struct store *st)
{
	return store_list(st, "SELECT name FROM users ORDER BY name", store_user_get);
}

static int store_user_set_list(struct store *st, const char *sql, const char *name, json_t *list)
{
	size_t i;
	json_t *v;
	int rc = 0;

	json_array_foreach(list, i, v) {
		if (rc == 0)
			rc = store_run(st, store_stmt(st, sql, "ss", name, json_string_value(v)));
	}
	return rc;
}

int store_user_put(struct store *st, const struct store_actor *a, json_t *user,
		   const char *password, bool create)
{
	const char *name = store_json_str(user, "name");
	char hash[crypto_pwhash_STRBYTES];
	struct store_change c;
	json_t *before;
	int rc;

	/* Hashed before the transaction: argon2id takes a while and the write lock must not. */
	if (password != NULL && crypto_pwhash_str(hash, password, strlen(password),
						  crypto_pwhash_OPSLIMIT_INTERACTIVE,
						  crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return -ENOMEM;
	rc = store_change_begin(st, &c);
	if (rc < 0)
		return rc;
	before = store_user_get(st, name);
	if (create != (before == NULL)) {
		json_decref(before);
		return store_change_abort(&c, create ? -EEXIST : -ENOENT);
	}
	if (create)
		rc = store_run(st, store_stmt(st, "INSERT INTO users (name, pwhash, role, created) "
					      "VALUES (?, ?, ?, ?)", "sssi", name,
					      password ? hash : NULL, store_json_str(user, "role"),
					      store_now()));
	else
		rc = store_run(st, store_stmt(st, "UPDATE users SET role = ?, pwhash = "
					      "coalesce(?, pwhash) WHERE name = ?", "sss",
					      store_json_str(user, "role"), password ? hash : NULL,
					      name));
	rc = rc ? rc : store_run(st, store_stmt(st, "DELETE FROM user_domains WHERE user = ?", "s",
						name));
	rc = rc ? rc : store_run(st, store_stmt(st, "DELETE FROM user_addresses WHERE user = ?", "s",
						name));
	rc = rc ? rc : store_user_set_list(st, "INSERT INTO user_domains (user, domain) VALUES "
					   "(?, ?)", name, json_object_get(user, "domains"));
	rc = rc ? rc : store_user_set_list(st, "INSERT INTO user_addresses (user, address) VALUES "
					   "(?, ?)", name, json_object_get(user, "addresses"));
	return store_change_end(&c, rc, a, create ? "user.create" : "user.update", "user", name,
				before, rc < 0 ? NULL : store_user_get(st, name));
}

int store_user_delete(struct store *st, const struct store_actor *a, const char *name)
{
	return store_delete_plain(st, a, store_user_get, "DELETE FROM users WHERE name = ?", "user",
				  name);
}

int store_user_check_password(struct store *st, const char *name, const char *password)
{
	sqlite3_stmt *s = store_stmt(st, "SELECT pwhash FROM users WHERE name = ? AND pwhash IS NOT "
				     "NULL", "s", name);
	int rc = -EACCES;

	if (s != NULL && sqlite3_step(s) == SQLITE_ROW &&
	    crypto_pwhash_str_verify((const char *)sqlite3_column_text(s, 0), password,
				     strlen(password)) == 0)
		rc = 0;
	sqlite3_finalize(s);
	return rc;
}

/* --- tokens ----------------------------------------------------------------------------- */

#define STORE_TOKEN_COLS "id, user, kind, description, created, expires, revoked, last_used"

static json_t *store_token_row(sqlite3_stmt *s)
{
	json_t *t = json_object();

	store_cols(t, s, 0, "id", "user", "kind", "description", "created", "expires", NULL);
	json_object_set_new(t, "revoked", json_boolean(sqlite3_column_int(s, 6)));
	json_object_set_new(t, "last_used", store_col(s, 7));
	return t;
}

json_t *store_token_get(struct store *st, int64_t id)
{
	sqlite3_stmt *s = store_stmt(st, "SELECT " STORE_TOKEN_COLS " FROM tokens WHERE id = ?", "i",
				     id);
	json_t *t = NULL;

	if (s != NULL && sqlite3_step(s) == SQLITE_ROW)
		t = store_token_row(s);
	sqlite3_finalize(s);
	return t;
}

json_t *store_token_list(struct store *st, const char *user)
{
	sqlite3_stmt *s = store_stmt(st, "SELECT " STORE_TOKEN_COLS " FROM tokens WHERE "
				     "kind = 'api' AND (?1 IS NULL OR user = ?1) ORDER BY id", "s",
				     user);
	json_t *list = json_array();

	while (s != NULL && sqlite3_step(s) == SQLITE_ROW)
		json_array_append_new(list, store_token_row(s));
	sqlite3_finalize(s);
	return list;
}

int store_token_create(struct store *st, const struct store_actor *a, const char *user,
		       enum store_token_kind kind, int64_t ttl, const char *description,
		       char *token_r, int64_t *id_r)
{
	const char *kname = kind == STORE_TOKEN_SESSION ? "session" : "api";
	struct store_change c;
	char hash[65], id[24];
	int rc = store_change_begin(st, &c);

	if (rc < 0)
		return rc;
	if (store_int(st, store_stmt(st, "SELECT count(*) FROM users WHERE name = ?", "s", user),
		      0) == 0)
		return store_change_abort(&c, -ENOENT);
	store_token_random(token_r);
	store_token_hash(token_r, hash);
	rc = store_run(st, store_stmt(st, "INSERT INTO tokens (user, hash, kind, description, "
				      "created, expires) VALUES (?, ?, ?, ?, ?, ?)", "ssssii", user,
				      hash, kname, description ? description : "", store_now(),
				      store_now() + ttl));
	if (rc < 0)
		return store_change_abort(&c, -EIO);
	*id_r = sqlite3_last_insert_rowid(st->db);
	snprintf(id, sizeof(id), "%lld", (long long)*id_r);
	return store_change_end(&c, 0, a, kind == STORE_TOKEN_SESSION ? "session.create"
				: "token.create", "token", id, NULL, store_token_get(st, *id_r));
}

int store_token_auth(struct store *st, const char *token, int64_t *id_r, json_t **user_r)
{
	char hash[65];
	sqlite3_stmt *s;
	int rc = -ENOENT;
	char user[256] = "";

	store_token_hash(token, hash);
	s = store_stmt(st, "SELECT id, user, expires, revoked FROM tokens WHERE hash = ?", "s", hash);
	if (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		*id_r = sqlite3_column_int64(s, 0);
		snprintf(user, sizeof(user), "%s", (const char *)sqlite3_column_text(s, 1));
		rc = sqlite3_column_int(s, 3) ? -EKEYREVOKED
		     : sqlite3_column_int64(s, 2) <= store_now() ? -EKEYEXPIRED : 0;
	}
	sqlite3_finalize(s);
	if (rc < 0)
		return rc;
	store_run(st, store_stmt(st, "UPDATE tokens SET last_used = ? WHERE id = ?", "ii",
				 store_now(), *id_r));
	*user_r = store_user_get(st, user);
	return *user_r ? 0 : -ENOENT;
}

int store_token_revoke(struct store *st, const struct store_actor *a, int64_t id)
{
	struct store_change c;
	char name[24];
	json_t *before;
	int rc = store_change_begin(st, &c);

	if (rc < 0)
		return rc;
	before = store_token_get(st, id);
	if (before == NULL)
		return store_change_abort(&c, -ENOENT);
	rc = store_run(st, store_stmt(st, "UPDATE tokens SET revoked = 1 WHERE id = ?", "i", id));
	snprintf(name, sizeof(name), "%lld", (long long)id);
	return store_change_end(&c, rc, a, "token.revoke", "token", name, before,
				rc < 0 ? NULL : store_token_get(st, id));
}
