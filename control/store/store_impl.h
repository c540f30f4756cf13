/*
 * store_impl.h - what the store's files share: the connection, statements with bound values,
 * rows into jansson values, and the change transaction (store.h's "every change").
 */
#ifndef SLUICE_CONTROL_STORE_IMPL_H
#define SLUICE_CONTROL_STORE_IMPL_H

#include <sqlite3.h>

#include "base/buf.h"
#include "store/store.h"

struct store {
	sqlite3 *db;
};

/* Prepares sql and binds the arguments named by types, one letter each: 's' text (NULL binds
 * NULL), 'i' int64_t, 'b' int (a flag; negative binds NULL). NULL on error (logged). */
sqlite3_stmt *store_stmt(struct store *st, const char *sql, const char *types, ...);
/* Runs a statement that returns no rows and finalizes it. 0, -EEXIST (a constraint), -EIO. */
int store_run(struct store *st, sqlite3_stmt *s);
/* Steps and finalizes a statement that returns one integer; dflt when no row. */
int64_t store_int(struct store *st, sqlite3_stmt *s, int64_t dflt);
/* Column i as a JSON value: text -> string, integer -> integer, NULL -> null. */
json_t *store_col(sqlite3_stmt *s, int i);
/* Sets obj[name] from column i unless it is NULL (optional fields are left out). */
void store_col_opt(json_t *obj, const char *name, sqlite3_stmt *s, int i);
/* Column i as a flag (tls_verify...): JSON true/false, left out when NULL. */
void store_col_flag(json_t *obj, const char *name, sqlite3_stmt *s, int i);
/* Every object a query of names (one column) names, each read with get, as an array. */
json_t *store_list(struct store *st, const char *sql, json_t *(*get)(struct store *, const char *));
/* A rendering's outcome: with rc 0 the buffer's text into *text_r (malloc'ed). Releases b.
 * rc, or -ENOMEM. */
int store_buf_take(struct buf *b, int rc, char **text_r);
/* Deletes the object get finds by name with sql (one text parameter, the name), audited as
 * "KIND.delete" (a kind that publishes nothing: users, rule sets). 0, -ENOENT, -EIO. */
int store_delete_plain(struct store *st, const struct store_actor *a,
		       json_t *(*get)(struct store *, const char *), const char *sql,
		       const char *kind, const char *name);
/* Sets obj[name] = column i for each name from column first on (store_col); NULL ends them. */
void store_cols(json_t *obj, sqlite3_stmt *s, int first, ...);
int64_t store_now(void);
void store_log(struct store *st, const char *what);

/* One change in flight: BEGIN IMMEDIATE ... COMMIT. */
struct store_change {
	struct store *st;
	uint64_t      version;  /* the version this change publishes, if it publishes */
	json_t       *keys;     /* array of [key, fragment|null], in order */
};
int  store_change_begin(struct store *st, struct store_change *c);
/* Begins a change on an object that must exist: its state before (get by name), or NULL with
 * the transaction closed and *rc_r = -ENOENT (or the error of beginning). */
json_t *store_change_begin_on(struct store *st, struct store_change *c,
			      json_t *(*get)(struct store *, const char *), const char *name,
			      int *rc_r);
/* Queues a key for the outbox: text NULL deletes it. Takes text (malloc'ed) over. 0, -ENOMEM. */
int  store_change_key(struct store_change *c, const char *key, char *text);
/* Writes the audit row (before/after may be NULL), the outbox rows and the version when keys
 * were queued, and commits. Steals neither before nor after. 0 or -EIO (rolled back). */
int  store_change_commit(struct store_change *c, const struct store_actor *a, const char *action,
			 const char *object, json_t *before, json_t *after);
/* Ends a change: with rc < 0 rolls back and returns rc, else commits as store_change_commit
 * with the object named "KIND.NAME". Releases before and after either way. */
int  store_change_end(struct store_change *c, int rc, const struct store_actor *a,
		      const char *action, const char *kind, const char *name, json_t *before,
		      json_t *after);
/* Rolls back; returns rc so callers can `return store_change_abort(&c, rc);`. */
int  store_change_abort(struct store_change *c, int rc);

/* Random bytes as base64url (no padding) into out (STORE_TOKEN_LEN + 1), and the SHA-256 hex of
 * a token (65 bytes). */
void store_token_random(char *out);
void store_token_hash(const char *token, char *hex_r);

#endif
