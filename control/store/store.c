/*
 * store.c - opening and migrating the database, the statement helpers and the change
 * transaction every write goes through, and the outbox (store.h, store_impl.h).
 */
#include "store/store_impl.h"

#include <errno.h>
#include <openssl/sha.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store_migrations.h"
#include "wire/wire.h"

int64_t store_now(void)
{
	return (int64_t)time(NULL);
}

void store_log(struct store *st, const char *what)
{
	fprintf(stderr, "sluice-control: store: %s: %s\n", what, sqlite3_errmsg(st->db));
}

sqlite3_stmt *store_stmt(struct store *st, const char *sql, const char *types, ...)
{
	sqlite3_stmt *s = NULL;
	va_list ap;
	int rc = SQLITE_OK;

	if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK) {
		store_log(st, sql);
		return NULL;
	}
	va_start(ap, types);
	for (int i = 0; types[i] != '\0' && rc == SQLITE_OK; i++) {
		if (types[i] == 's') {
			const char *v = va_arg(ap, const char *);

			rc = v ? sqlite3_bind_text(s, i + 1, v, -1, SQLITE_TRANSIENT)
			       : sqlite3_bind_null(s, i + 1);
		} else if (types[i] == 'i') {
			rc = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
		} else {
			int v = va_arg(ap, int);

			rc = v < 0 ? sqlite3_bind_null(s, i + 1) : sqlite3_bind_int(s, i + 1, v != 0);
		}
	}
	va_end(ap);
	if (rc != SQLITE_OK) {
		store_log(st, "bind");
		sqlite3_finalize(s);
		return NULL;
	}
	return s;
}

int store_run(struct store *st, sqlite3_stmt *s)
{
	int rc;

	if (s == NULL)
		return -EIO;
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	if ((rc & 0xff) == SQLITE_CONSTRAINT)
		return -EEXIST;
	store_log(st, "step");
	return -EIO;
}

int64_t store_int(struct store *st, sqlite3_stmt *s, int64_t dflt)
{
	int64_t v = dflt;

	if (s == NULL)
		return dflt;
	if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_type(s, 0) != SQLITE_NULL)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	(void)st;
	return v;
}

json_t *store_col(sqlite3_stmt *s, int i)
{
	switch (sqlite3_column_type(s, i)) {
	case SQLITE_INTEGER:
		return json_integer(sqlite3_column_int64(s, i));
	case SQLITE_NULL:
		return json_null();
	default:
		return json_string((const char *)sqlite3_column_text(s, i));
	}
}

void store_col_opt(json_t *obj, const char *name, sqlite3_stmt *s, int i)
{
	if (sqlite3_column_type(s, i) != SQLITE_NULL)
		json_object_set_new(obj, name, store_col(s, i));
}

void store_col_flag(json_t *obj, const char *name, sqlite3_stmt *s, int i)
{
	if (sqlite3_column_type(s, i) != SQLITE_NULL)
		json_object_set_new(obj, name, json_boolean(sqlite3_column_int(s, i)));
}

int store_json_flag(json_t *obj, const char *name)
{
	json_t *v = json_object_get(obj, name);

	return json_is_boolean(v) ? json_is_true(v) : -1;
}

const char *store_json_str(json_t *obj, const char *name)
{
	return json_string_value(json_object_get(obj, name));
}

int store_buf_take(struct buf *b, int rc, char **text_r)
{
	if (rc == 0 && (*text_r = strndup((const char *)b->pos, buf_unread(b))) == NULL)
		rc = -ENOMEM;
	buf_release(b);
	return rc;
}

int store_delete_plain(struct store *st, const struct store_actor *a,
		       json_t *(*get)(struct store *, const char *), const char *sql,
		       const char *kind, const char *name)
{
	struct store_change c;
	char action[64];
	json_t *before;
	int rc;

	before = store_change_begin_on(st, &c, get, name, &rc);
	if (before == NULL)
		return rc;
	rc = store_run(st, store_stmt(st, sql, "s", name));
	snprintf(action, sizeof(action), "%s.delete", kind);
	return store_change_end(&c, rc, a, action, kind, name, before, NULL);
}

void store_cols(json_t *obj, sqlite3_stmt *s, int first, ...)
{
	va_list ap;
	const char *name;

	va_start(ap, first);
	for (int i = first; (name = va_arg(ap, const char *)) != NULL; i++)
		json_object_set_new(obj, name, store_col(s, i));
	va_end(ap);
}

json_t *store_list(struct store *st, const char *sql, json_t *(*get)(struct store *, const char *))
{
	sqlite3_stmt *s = store_stmt(st, sql, "");
	json_t *list = json_array();

	while (s != NULL && sqlite3_step(s) == SQLITE_ROW) {
		json_t *o = get(st, (const char *)sqlite3_column_text(s, 0));

		if (o != NULL)
			json_array_append_new(list, o);
	}
	sqlite3_finalize(s);
	return list;
}

/* --- opening and migrations ------------------------------------------------------------ */

unsigned store_schema_version(void)
{
	return store_migrations_count;
}

static int store_exec(struct store *st, const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) == SQLITE_OK)
		return 0;
	fprintf(stderr, "sluice-control: store: %s\n", msg ? msg : "error");
	sqlite3_free(msg);
	return -EIO;
}

static int store_migrate(struct store *st, char *err, size_t errlen)
{
	int64_t have = 0;
	bool exists = store_int(st, store_stmt(st, "SELECT count(*) FROM sqlite_master WHERE "
					       "type = 'table' AND name = 'schema_version'", ""), 0) > 0;

	if (exists)
		have = store_int(st, store_stmt(st, "SELECT max(version) FROM schema_version", ""), 0);
	if (have > (int64_t)store_migrations_count) {
		snprintf(err, errlen, "the database's schema is version %lld, newer than this "
			 "sluice-control knows (%u): run the newer sluice-control", (long long)have,
			 store_migrations_count);
		return -EPROTO;
	}
	for (unsigned i = (unsigned)have; i < store_migrations_count; i++) {
		const struct store_migration *m = &store_migrations[i];
		int rc = store_exec(st, "BEGIN IMMEDIATE");

		rc = rc ? rc : store_exec(st, m->sql);
		rc = rc ? rc : store_run(st, store_stmt(st, "INSERT INTO schema_version (version) "
							"VALUES (?)", "i", (int64_t)m->version));
		rc = rc ? rc : store_exec(st, "COMMIT");
		if (rc < 0) {
			sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
			snprintf(err, errlen, "migration %03u_%s failed: %s", m->version, m->name,
				 sqlite3_errmsg(st->db));
			return -EIO;
		}
	}
	return 0;
}

int store_open(const char *path, struct store **st_r, char *err, size_t errlen)
{
	struct store *st = calloc(1, sizeof(*st));
	int rc;

	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	if (sodium_init() < 0) {
		snprintf(err, errlen, "libsodium failed to start");
		free(st);
		return -EIO;
	}
	if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path, st->db ? sqlite3_errmsg(st->db) : "cannot open");
		store_close(&st);
		return -EIO;
	}
	sqlite3_busy_timeout(st->db, 5000);
	/* WAL: the publisher and readers never wait for a writer; synchronous=FULL: a change the
	 * API acknowledged survives a power cut (it is the only copy until it is published). */
	rc = store_exec(st, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; "
			"PRAGMA foreign_keys = ON;");
	if (rc == 0)
		rc = store_migrate(st, err, errlen);
	else
		snprintf(err, errlen, "%s: %s", path, sqlite3_errmsg(st->db));
	if (rc < 0) {
		store_close(&st);
		return rc;
	}
	*st_r = st;
	return 0;
}

void store_close(struct store **st)
{
	if (*st == NULL)
		return;
	sqlite3_close((*st)->db);
	free(*st);
	*st = NULL;
}

uint64_t store_cluster_version(struct store *st)
{
	return (uint64_t)store_int(st, store_stmt(st, "SELECT version FROM cluster", ""), 0);
}

/* --- the change transaction ------------------------------------------------------------ */

int store_change_begin(struct store *st, struct store_change *c)
{
	c->st = st;
	c->keys = json_array();
	if (c->keys == NULL)
		return -ENOMEM;
	if (store_exec(st, "BEGIN IMMEDIATE") < 0) {
		json_decref(c->keys);
		return -EIO;
	}
	c->version = store_cluster_version(st) + 1;
	return 0;
}

json_t *store_change_begin_on(struct store *st, struct store_change *c,
			      json_t *(*get)(struct store *, const char *), const char *name,
			      int *rc_r)
{
	json_t *before;

	*rc_r = store_change_begin(st, c);
	if (*rc_r < 0)
		return NULL;
	before = get(st, name);
	if (before == NULL)
		*rc_r = store_change_abort(c, -ENOENT);
	return before;
}

int store_change_key(struct store_change *c, const char *key, char *text)
{
	json_t *row = json_pack("[ss?]", key, text);

	free(text);
	return row && json_array_append_new(c->keys, row) == 0 ? 0 : -ENOMEM;
}

static char *store_dump(json_t *v)
{
	return v ? json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

int store_change_commit(struct store_change *c, const struct store_actor *a, const char *action,
			const char *object, json_t *before, json_t *after)
{
	struct store *st = c->st;
	size_t n = json_array_size(c->keys);
	uint64_t version = n ? c->version : c->version - 1;
	char *b = store_dump(before), *f = store_dump(after), vtext[24];
	int rc = 0;

	for (size_t i = 0; rc == 0 && i < n; i++) {
		json_t *row = json_array_get(c->keys, i);

		rc = store_run(st, store_stmt(st, "INSERT INTO outbox (version, key, value) VALUES "
					      "(?, ?, ?)", "iss", (int64_t)version,
					      json_string_value(json_array_get(row, 0)),
					      json_string_value(json_array_get(row, 1))));
	}
	if (rc == 0 && n) {
		snprintf(vtext, sizeof(vtext), "%llu", (unsigned long long)version);
		rc = store_run(st, store_stmt(st, "INSERT INTO outbox (version, key, value) VALUES "
					      "(?, ?, ?)", "iss", (int64_t)version, WIRE_KEY_VERSION,
					      vtext));
		rc = rc ? rc : store_run(st, store_stmt(st, "UPDATE cluster SET version = ?", "i",
							(int64_t)version));
	}
	rc = rc ? rc : store_run(st, store_stmt(st, "INSERT INTO audit (at, actor, action, object, "
						"before, after, address, version) VALUES "
						"(?, ?, ?, ?, ?, ?, ?, ?)", "issssssi",
						store_now(), a->user, action, object, b, f,
						a->address, (int64_t)version));
	free(b);
	free(f);
	if (rc == 0)
		rc = store_exec(st, "COMMIT");
	if (rc < 0)
		return store_change_abort(c, -EIO);
	json_decref(c->keys);
	c->keys = NULL;
	return 0;
}

int store_change_end(struct store_change *c, int rc, const struct store_actor *a,
		     const char *action, const char *kind, const char *name, json_t *before,
		     json_t *after)
{
	char object[320];

	snprintf(object, sizeof(object), "%s.%s", kind, name);
	rc = rc < 0 ? store_change_abort(c, rc)
		    : store_change_commit(c, a, action, object, before, after);
	json_decref(before);
	json_decref(after);
	return rc;
}

int store_change_abort(struct store_change *c, int rc)
{
	sqlite3_exec(c->st->db, "ROLLBACK", NULL, NULL, NULL);
	json_decref(c->keys);
	c->keys = NULL;
	return rc;
}

/* --- tokens ----------------------------------------------------------------------------- */

void store_token_random(char *out)
{
	unsigned char raw[32];

	randombytes_buf(raw, sizeof(raw));
	sodium_bin2base64(out, STORE_TOKEN_LEN + 1, raw, sizeof(raw),
			  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

void store_token_hash(const char *token, char *hex_r)
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)token, strlen(token), md);
	sodium_bin2hex(hex_r, 65, md, sizeof(md));
}

/* --- the outbox ------------------------------------------------------------------------ */

int store_outbox_next(struct store *st, struct store_outbox_row *row_r)
{
	sqlite3_stmt *s = store_stmt(st, "SELECT seq, version, key, value FROM outbox ORDER BY seq "
				     "LIMIT 1", "");
	int rc;

	if (s == NULL)
		return -EIO;
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(s, 3);

		row_r->seq = sqlite3_column_int64(s, 0);
		row_r->version = (uint64_t)sqlite3_column_int64(s, 1);
		row_r->key = strdup((const char *)sqlite3_column_text(s, 2));
		row_r->value = v ? strdup(v) : NULL;
		rc = row_r->key && (v == NULL || row_r->value) ? 1 : -ENOMEM;
		if (rc < 0)
			store_outbox_row_clear(row_r);
	} else {
		rc = rc == SQLITE_DONE ? 0 : -EIO;
	}
	sqlite3_finalize(s);
	return rc;
}

int store_outbox_done(struct store *st, int64_t seq)
{
	return store_run(st, store_stmt(st, "DELETE FROM outbox WHERE seq <= ?", "i", seq)) < 0
	       ? -EIO : 0;
}

void store_outbox_row_clear(struct store_outbox_row *row)
{
	free(row->key);
	free(row->value);
	row->key = row->value = NULL;
}

int64_t store_outbox_pending(struct store *st)
{
	return store_int(st, store_stmt(st, "SELECT count(*) FROM outbox", ""), 0);
}

uint64_t store_outbox_published(struct store *st)
{
	return (uint64_t)store_int(st, store_stmt(st, "SELECT coalesce((SELECT min(version) - 1 "
				   "FROM outbox), (SELECT version FROM cluster))", ""), 0);
}
