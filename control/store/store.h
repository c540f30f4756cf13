/*
 * store.h - the control plane's store: SQLite in WAL mode, one file under the state dir.
 *
 * Owns every object of the cluster (domains and their policy keys, rule sets, users, API and
 * session tokens, nodes and their listeners, role placement, join tokens), the audit log and
 * the outbox. Objects cross this interface as jansson objects shaped as the REST API shows them
 * (control/api/openapi.yaml), already checked by the caller for types and fields; the store
 * checks existence and conflicts.
 *
 * Every change is one transaction: the rows, the cluster version bumped (when a key of the
 * configuration bucket changes), an audit row (who, what, object, before/after JSON, from where)
 * and the outbox rows (each changed key with its rendered fragment, or a delete, then "v" = the
 * new version; control/wire/README.md). Changes to users and tokens are audited but publish
 * nothing: they are not part of any node's configuration.
 *
 * Threads: a store is one SQLite connection opened serialized; calls may come from any thread
 * but are meant for the API's loop and the publisher. Another process may open the same file
 * (WAL). Returns: 0 or -errno as documented; -EIO is a database error (logged to stderr).
 */
#ifndef SLUICE_CONTROL_STORE_H
#define SLUICE_CONTROL_STORE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct store;

/* Who makes a change and from where, for the audit log. */
struct store_actor {
	const char *user;      /* a user name, or "-" (the system) */
	const char *address;   /* the client's address, or "local" */
};

/* Opens (creating it) and migrates the database. -EPROTO: the file's schema is newer than this
 * binary knows (err says both versions); -EIO: SQLite refused (err says why). */
int  store_open(const char *path, struct store **st_r, char *err, size_t errlen);
void store_close(struct store **st);
uint64_t store_cluster_version(struct store *st);
/* The schema version this binary migrates to. */
unsigned store_schema_version(void);

/* A JSON string field, or NULL; a flag field as 1, 0, or -1 (absent or not a boolean). */
const char *store_json_str(json_t *obj, const char *name);
int store_json_flag(json_t *obj, const char *name);

/* --- domains (store_domain.c) -------------------------------------------------------------
 * A domain: {"name", "route", "tls"?, "tls_verify"?, "spool_quota"?, "long_lines"?,
 * "allow_routing"?, "policy": {KEY: VALUE}}. */
json_t *store_domain_get(struct store *st, const char *name);   /* NULL: no such domain */
json_t *store_domain_list(struct store *st);                    /* array, by name */
/* Creates (-EEXIST if it exists) or replaces (-ENOENT if it does not) the domain, its policy
 * keys included. */
int store_domain_put(struct store *st, const struct store_actor *a, json_t *domain, bool create);
int store_domain_delete(struct store *st, const struct store_actor *a, const char *name);
/* Sets one policy key (value NULL: removes it; -ENOENT also when the key was not set). */
int store_policy_set(struct store *st, const struct store_actor *a, const char *domain,
		     const char *key, const char *value);
/* The domain's INI fragment as the outbox holds it, at the given version. 0, -ENOENT, -ENOMEM. */
int store_domain_render(json_t *domain, uint64_t version, char **text_r);

/* --- users and tokens (store_user.c) ------------------------------------------------------
 * A user: {"name", "role": superadmin|domainadmin|enduser, "domains": [...] (a domain admin's),
 * "addresses": [...] (an end user's), "created"}. */
json_t *store_user_get(struct store *st, const char *name);
json_t *store_user_list(struct store *st);
/* password NULL: keep the current one (on create: no password, tokens only). Hashed with
 * argon2id (crypto_pwhash_str). 0, -EEXIST, -ENOENT, -ENOMEM (hashing). */
int store_user_put(struct store *st, const struct store_actor *a, json_t *user,
		   const char *password, bool create);
int store_user_delete(struct store *st, const struct store_actor *a, const char *name);
/* 0: the password is the user's; -EACCES: not (or no such user, or no password set). */
int store_user_check_password(struct store *st, const char *name, const char *password);

#define STORE_TOKEN_LEN 43   /* 32 random bytes, base64url without padding */
enum store_token_kind { STORE_TOKEN_API, STORE_TOKEN_SESSION };
/* A new random token for the user, valid ttl seconds; only its SHA-256 is stored. token_r gets
 * the text (STORE_TOKEN_LEN + 1 bytes). 0, -ENOENT (no such user). */
int store_token_create(struct store *st, const struct store_actor *a, const char *user,
		       enum store_token_kind kind, int64_t ttl, const char *description,
		       char *token_r, int64_t *id_r);
/* The token's owner (store_user_get's shape) in *user_r, and its id; marks it used now.
 * -ENOENT: no such token; -EKEYEXPIRED; -EKEYREVOKED. */
int store_token_auth(struct store *st, const char *token, int64_t *id_r, json_t **user_r);
/* A token: {"id", "user", "kind", "description", "created", "expires", "revoked", "last_used"}. */
json_t *store_token_get(struct store *st, int64_t id);
json_t *store_token_list(struct store *st, const char *user);   /* user NULL: everyone's */
int store_token_revoke(struct store *st, const struct store_actor *a, int64_t id);

/* --- nodes, roles, join tokens (store_node.c) ---------------------------------------------
 * A node: {"name", "site", "fingerprint"?, "serial"? (its certificate's, once joined), "listen":
 * [{"label", "address", "role", "starttls"?}], "last_seen"?, "version"?, "applied_version"?,
 * "created"}. */
json_t *store_node_get(struct store *st, const char *name);
json_t *store_node_list(struct store *st);
/* Creates or replaces name, site, fingerprint and listeners (health is kept). */
int store_node_put(struct store *st, const struct store_actor *a, json_t *node, bool create);
/* -EBUSY: the node holds a role. */
int store_node_delete(struct store *st, const struct store_actor *a, const char *name);
/* What a node reports (its software version, the cluster version it applied): sets last_seen
 * to now. Health, not a change: no audit, no version. 0, -ENOENT. */
int store_node_report(struct store *st, const char *name, const char *version, uint64_t applied);
/* A node has joined with the certificate of this fingerprint and serial (node.join, audited).
 * 0, -ENOENT. */
int store_node_set_cert(struct store *st, const struct store_actor *a, const char *name,
			const char *fingerprint, const char *serial);
/* The names of the nodes holding a certificate (joined, not removed), sorted: the hub's
 * authorization list. A JSON array of strings. */
json_t *store_node_certified(struct store *st);
/* {"log": NODE|null, "quarantine": ..., "archive": ...}. */
json_t *store_roles_get(struct store *st);
/* Places each role present in roles (a null value unplaces it). -ENOENT: a node named does not
 * exist (*bad_r names the role). */
int store_roles_set(struct store *st, const struct store_actor *a, json_t *roles,
		    const char **bad_r);
/* A one-use join token for a node to be (random 32 bytes, base64url; stored hashed). */
int store_join_create(struct store *st, const struct store_actor *a, const char *node,
		      const char *site, int64_t ttl, char *token_r);
/* Uses the token up: *info_r = {"node", "site"}. -ENOENT, -EKEYEXPIRED, -EALREADY (used). */
int store_join_consume(struct store *st, const char *token, json_t **info_r);

/* --- rule sets, audit (store_misc.c) ------------------------------------------------------
 * A rule set: {"name", "sha256", "size", "uploaded_by", "uploaded_at", "text"? (get only)}. */
int store_ruleset_put(struct store *st, const struct store_actor *a, const char *name,
		      const char *text, bool *created_r);
json_t *store_ruleset_get(struct store *st, const char *name, bool with_text);
json_t *store_ruleset_list(struct store *st);
int store_ruleset_delete(struct store *st, const struct store_actor *a, const char *name);
/* {"items": [audit rows with id > after, oldest first, at most limit], "next": ID|null}. An
 * audit row: {"id", "at", "actor", "action", "object", "before", "after", "address",
 * "version"}; before/after are the JSON objects (null for none). */
json_t *store_audit_list(struct store *st, int64_t after, unsigned limit);

/* --- the outbox, for the publisher (control/control_publish.c) ------------------------
 * Rows come in seq order: each change's keys, then its "v". The publisher puts the key (or
 * deletes it when value is NULL), waits for the server's ack, and only then calls
 * store_outbox_done(seq); after a restart it starts again from store_outbox_next (puts are
 * idempotent, so a row sent twice does no harm). */
struct store_outbox_row {
	int64_t  seq;
	uint64_t version;
	char    *key;
	char    *value;   /* NULL: delete the key */
};
/* The oldest row: 1 (row filled; release it with store_outbox_row_clear), 0 (empty), -EIO. */
int  store_outbox_next(struct store *st, struct store_outbox_row *row_r);
/* Removes the row seq (and any before it). 0 or -EIO. */
int  store_outbox_done(struct store *st, int64_t seq);
void store_outbox_row_clear(struct store_outbox_row *row);
/* How many rows wait (for the cluster's warnings and tests). */
int64_t store_outbox_pending(struct store *st);
/* The last version wholly published (its "v" acked): the cluster version when the outbox is
 * empty, else one before its oldest row's. */
uint64_t store_outbox_published(struct store *st);

#endif
