/*
 * api_user.c - /users, /tokens, /login and /logout. A superadmin manages everyone; any other
 * user reads only themselves and manages only their own tokens. A token's scope is its user's
 * role (checked on every request, so a changed role applies at once).
 */
#include "api/api_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wire/wire.h"

#define API_TOKEN_TTL_DEF   (90 * 86400)
#define API_TOKEN_TTL_MAX   (3650LL * 86400)
#define API_SESSION_TTL     (12 * 3600)

static bool api_is_self(const struct api_req *r, const char *name)
{
	return strcmp(store_json_str(r->user, "name"), name) == 0;
}

void api_user_list(struct api_req *r)
{
	api_reply(r, 200, json_pack("{so}", "items", store_user_list(r->st)));
}

void api_user_get(struct api_req *r)
{
	json_t *u;

	if (r->role != API_R_SUPER && !api_is_self(r, r->param[0])) {
		api_fail(r, 403, NULL, "only your own user");
		return;
	}
	u = store_user_get(r->st, r->param[0]);
	if (u == NULL)
		api_fail(r, 404, NULL, "no user %s", r->param[0]);
	else
		api_reply(r, 200, u);
}

static const struct api_field api_user_fields[] = {
	{ "name", API_T_STRING, false },
	{ "role", API_T_STRING, true },
	{ "password", API_T_STRING, false },
	{ "domains", API_T_STRINGS, false },
	{ "addresses", API_T_STRINGS, false },
	{ NULL, 0, false },
};

static int api_user_check(json_t *u, struct api_error *e)
{
	const char *role = store_json_str(u, "role"), *name = store_json_str(u, "name");
	json_t *domains = json_object_get(u, "domains"), *v;
	json_t *addresses = json_object_get(u, "addresses");
	size_t i;

	if (name == NULL || strlen(name) == 0 || strlen(name) > 64 || !wire_value_safe(name))
		return api_json_error(e, "name", "want 1-64 printable characters");
	if (strcmp(role, "superadmin") != 0 && strcmp(role, "domainadmin") != 0 &&
	    strcmp(role, "enduser") != 0)
		return api_json_error(e, "role", "want superadmin, domainadmin or enduser");
	if (json_array_size(domains) && strcmp(role, "domainadmin") != 0)
		return api_json_error(e, "domains", "only a domain admin owns domains");
	if (json_array_size(addresses) && strcmp(role, "enduser") != 0)
		return api_json_error(e, "addresses", "only an end user owns addresses");
	json_array_foreach(domains, i, v)
		if (!wire_domain_name_valid(json_string_value(v)))
			return api_json_error(e, "domains", "\"%s\" is not a domain name",
					      json_string_value(v));
	json_array_foreach(addresses, i, v)
		if (strchr(json_string_value(v), '@') == NULL || !wire_value_safe(json_string_value(v)))
			return api_json_error(e, "addresses", "\"%s\" is not an address",
					      json_string_value(v));
	return 0;
}

static void api_user_put(struct api_req *r, const char *path_name, bool create)
{
	struct api_error e;
	json_t *u = api_body(r, api_user_fields);
	char *password = NULL;
	int rc;

	if (u == NULL)
		return;
	if (api_body_name(u, path_name, &e) < 0 || api_user_check(u, &e) < 0)
		goto bad;
	if (store_json_str(u, "password") != NULL)
		password = strdup(store_json_str(u, "password"));
	json_object_del(u, "password");
	rc = store_user_put(r->st, &r->actor, u, password, create);
	if (password != NULL)
		memset(password, 0, strlen(password));
	free(password);
	api_reply_stored(r, rc, create ? 201 : 200, store_json_str(u, "name"), store_user_get);
	json_decref(u);
	return;
bad:
	api_fail_with(r, &e);
	json_decref(u);
}

void api_user_create(struct api_req *r)
{
	api_user_put(r, NULL, true);
}

void api_user_replace(struct api_req *r)
{
	api_user_put(r, r->param[0], false);
}

void api_user_delete(struct api_req *r)
{
	int rc;

	if (api_is_self(r, r->param[0])) {
		api_fail(r, 409, NULL, "you cannot delete yourself");
		return;
	}
	rc = store_user_delete(r->st, &r->actor, r->param[0]);
	if (rc < 0)
		api_fail_store(r, rc, r->param[0]);
	else
		api_reply(r, 204, NULL);
}

/* --- tokens ----------------------------------------------------------------------------- */

void api_token_list(struct api_req *r)
{
	const char *only = r->role == API_R_SUPER ? NULL : store_json_str(r->user, "name");

	api_reply(r, 200, json_pack("{so}", "items", store_token_list(r->st, only)));
}

static const struct api_field api_token_fields[] = {
	{ "user", API_T_STRING, false },
	{ "ttl", API_T_INT, false },
	{ "description", API_T_STRING, false },
	{ NULL, 0, false },
};

void api_token_create(struct api_req *r)
{
	json_t *body = NULL, *t;
	const char *user;
	char token[STORE_TOKEN_LEN + 1];
	json_int_t ttl;
	int64_t id;
	int rc;

	if ((body = api_body(r, api_token_fields)) == NULL)
		return;
	user = store_json_str(body, "user");
	if (user == NULL)
		user = store_json_str(r->user, "name");
	ttl = json_object_get(body, "ttl") ? json_integer_value(json_object_get(body, "ttl"))
					    : API_TOKEN_TTL_DEF;
	if (r->role != API_R_SUPER && !api_is_self(r, user))
		api_fail(r, 403, "user", "only a superadmin makes tokens for others");
	else if (ttl <= 0 || ttl > API_TOKEN_TTL_MAX)
		api_fail(r, 400, "ttl", "want 1 to %lld seconds", API_TOKEN_TTL_MAX);
	else if (store_json_str(body, "description") &&
		 strlen(store_json_str(body, "description")) > 200)
		api_fail(r, 400, "description", "at most 200 bytes");
	else if ((rc = store_token_create(r->st, &r->actor, user, STORE_TOKEN_API, ttl,
					  store_json_str(body, "description"), token, &id)) < 0)
		api_fail(r, rc == -ENOENT ? 400 : 500, "user", rc == -ENOENT ? "no such user"
			 : "cannot store the token");
	else {
		t = store_token_get(r->st, id);
		json_object_set_new(t, "token", json_string(token));
		api_reply(r, 201, t);
	}
	json_decref(body);
}

/* The token of the path, when the user may see it; else the response is set. */
static json_t *api_token_of_path(struct api_req *r, int64_t *id_r)
{
	char *end;
	long long id = strtoll(r->param[0], &end, 10);
	json_t *t;

	if (*end != '\0' || id <= 0) {
		api_fail(r, 404, NULL, "no token %s", r->param[0]);
		return NULL;
	}
	t = store_token_get(r->st, id);
	if (t == NULL || strcmp(store_json_str(t, "kind"), "api") != 0 ||
	    (r->role != API_R_SUPER && !api_is_self(r, store_json_str(t, "user")))) {
		api_fail(r, 404, NULL, "no token %s", r->param[0]);
		json_decref(t);
		return NULL;
	}
	*id_r = id;
	return t;
}

void api_token_get(struct api_req *r)
{
	int64_t id;
	json_t *t = api_token_of_path(r, &id);

	if (t != NULL)
		api_reply(r, 200, t);
}

void api_token_delete(struct api_req *r)
{
	int64_t id;
	json_t *t = api_token_of_path(r, &id);
	int rc;

	if (t == NULL)
		return;
	json_decref(t);
	rc = store_token_revoke(r->st, &r->actor, id);
	if (rc < 0)
		api_fail_store(r, rc, r->param[0]);
	else
		api_reply(r, 204, NULL);
}

/* --- sessions --------------------------------------------------------------------------- */

static const struct api_field api_login_fields[] = {
	{ "name", API_T_STRING, true },
	{ "password", API_T_STRING, true },
	{ NULL, 0, false },
};

void api_login(struct api_req *r)
{
	json_t *body = NULL;
	char token[STORE_TOKEN_LEN + 1];
	const char *name;
	int64_t id;

	if ((body = api_body(r, api_login_fields)) == NULL)
		return;
	name = store_json_str(body, "name");
	r->actor.user = name;
	if (store_user_check_password(r->st, name, store_json_str(body, "password")) < 0)
		api_fail(r, 401, NULL, "wrong name or password");
	else if (store_token_create(r->st, &r->actor, name, STORE_TOKEN_SESSION, API_SESSION_TTL,
				    "web session", token, &id) < 0)
		api_fail(r, 500, NULL, "cannot store the session");
	else {
		/* The web's cookie: not readable by scripts, HTTPS only, never sent cross-site. */
		snprintf(r->set_cookie, sizeof(r->set_cookie), "sluice_session=%s; Path=/api; "
			 "Max-Age=%d; HttpOnly; Secure; SameSite=Strict", token, API_SESSION_TTL);
		api_reply(r, 200, json_pack("{soss}", "user", store_user_get(r->st, name), "expires",
					    "12h"));
	}
	json_decref(body);
}

void api_logout(struct api_req *r)
{
	store_token_revoke(r->st, &r->actor, r->token_id);
	snprintf(r->set_cookie, sizeof(r->set_cookie), "sluice_session=; Path=/api; Max-Age=0; "
		 "HttpOnly; Secure; SameSite=Strict");
	api_reply(r, 204, NULL);
}
