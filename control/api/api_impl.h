/*
 * api_impl.h - what the API's files share: a request as the handlers see it, the route table's
 * shape (STYLE.md's command table: method, path pattern, roles allowed, handler), errors and the
 * checking of JSON bodies.
 */
#ifndef SLUICE_CONTROL_API_IMPL_H
#define SLUICE_CONTROL_API_IMPL_H

#include <jansson.h>
#include <stdbool.h>

#include "api/api.h"
#include "store/store.h"

/* Roles, as a mask in a route's `roles`. */
#define API_R_SUPER   0x1u
#define API_R_DOMAIN  0x2u
#define API_R_ENDUSER 0x4u
#define API_R_ANON    0x8u   /* no authentication (login) */
#define API_R_ANY     (API_R_SUPER | API_R_DOMAIN | API_R_ENDUSER)

#define API_PARAM_MAX 2

/* An error for the client: {"error": msg, "field": field} with status. */
struct api_error {
	int         status;
	char        msg[256];
	char        field[128];
};

struct api_req {
	const struct api_config *cfg;
	struct store            *st;
	const char              *method;
	char                    *param[API_PARAM_MAX];   /* the path's '*' segments, decoded */
	const char              *query;                  /* after '?', or "" */
	const char              *body;
	size_t                   body_len;
	json_t                  *user;        /* the authenticated user (store_user_get's shape) */
	int64_t                  token_id;
	unsigned                 role;        /* API_R_* of the user */
	struct store_actor       actor;
	char                     address[64];
	/* The response. */
	int                      status;
	json_t                  *resp;
	char                    *resp_text;   /* instead of resp: a text/plain body (metrics) */
	char                     set_cookie[160];
};

typedef void api_handler_fn(struct api_req *r);

struct api_route {
	const char     *method;
	const char     *path;       /* under /api/v1/; '*' matches one segment */
	unsigned        roles;
	bool            big_body;   /* up to rules_max instead of body_max */
	api_handler_fn *fn;
};

/* The handlers, by file. */
api_handler_fn api_domain_list, api_domain_create, api_domain_get, api_domain_replace,
	api_domain_delete, api_policy_get, api_policy_put, api_policy_delete;
api_handler_fn api_user_list, api_user_create, api_user_get, api_user_replace, api_user_delete,
	api_token_list, api_token_create, api_token_get, api_token_delete, api_login, api_logout;
api_handler_fn api_node_list, api_node_create, api_node_get, api_node_replace, api_node_delete,
	api_node_report, api_roles_get, api_roles_put, api_cluster_get;
api_handler_fn api_cluster_init, api_node_join_token, api_join, api_metrics;
/* Counts a response for the metrics (the API's thread only). */
void api_metrics_count(int status);
api_handler_fn api_ruleset_list, api_ruleset_put, api_ruleset_get, api_ruleset_delete,
	api_audit_list;

/* Adds health fields to a node: "health" (ok | stale | never seen) and "lag" (versions behind). */
void api_node_health(const struct api_req *r, json_t *n, uint64_t version, int64_t now);

/* Revokes the certificate a node (store_node_get's object, NULL: none) joined with, if any.
 * 0 or -errno. */
int api_node_revoke(struct api_req *r, json_t *node);

/* Sets the response: status and a JSON body (taken over; NULL: no body). */
void api_reply(struct api_req *r, int status, json_t *body);
/* Sets an error response; field may be NULL. */
void api_fail(struct api_req *r, int status, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void api_fail_with(struct api_req *r, const struct api_error *e);
/* A store error as its response: -ENOENT 404, -EEXIST 409, -EBUSY 409, else 500. */
void api_fail_store(struct api_req *r, int rc, const char *what);

/* After a store put: the error for rc < 0, else status with the object get reads by name. */
void api_reply_stored(struct api_req *r, int rc, int status, const char *name,
		      json_t *(*get)(struct store *, const char *));
/* The user may act on this domain: a superadmin, or a domain admin owning it. */
bool api_owns_domain(const struct api_req *r, const char *domain);

/* --- JSON bodies (api_json.c) ------------------------------------------------------------ */
enum api_type { API_T_STRING, API_T_BOOL, API_T_INT, API_T_OBJECT, API_T_ARRAY, API_T_STRINGS,
		API_T_STRING_OR_NULL };
struct api_field {
	const char   *name;
	enum api_type type;
	bool          required;
};
/* Parses body as one JSON object. 0 or -EINVAL (e: 400 "bad JSON: ..."). */
int api_json_parse(const char *body, size_t len, json_t **obj_r, struct api_error *e);
/* Checks obj against fields (a NULL name ends them): an unknown field, a missing required one
 * or one of the wrong type is a 400 naming it. 0 or -EINVAL. */
int api_json_check(json_t *obj, const struct api_field *fields, struct api_error *e);
/* The request's body, parsed and checked against fields; NULL with the error response set. */
json_t *api_body(struct api_req *r, const struct api_field *fields);
/* The object's "name" for PUT .../NAME (path_name) or POST (NULL): taken from the path when
 * absent, else it must match it; missing on POST is an error. 0 or -EINVAL (e set). */
int api_body_name(json_t *obj, const char *path_name, struct api_error *e);
int api_json_error(struct api_error *e, const char *field, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A domain request body (POST /domains or PUT /domains/NAME: path_name is NAME, or NULL) into
 * store_domain_put's object, every value checked (wire_* and the data plane's value syntax).
 * 0 or -EINVAL (e says which field). The fuzz target tests/fuzz/fuzz_api_json.c calls it. */
int api_domain_parse(const char *body, size_t len, const char *path_name, json_t **domain_r,
		     struct api_error *e);

#endif
