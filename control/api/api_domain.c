/*
 * api_domain.c - /domains and /domains/NAME/policy: a superadmin manages every domain; a domain
 * admin reads and changes only the domains the store says they own (403 for another's) and
 * cannot create or delete one; an end user sees none.
 */
#include "api/api_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_check.h"
#include "wire/wire.h"

void api_domain_list(struct api_req *r)
{
	json_t *all = store_domain_list(r->st), *mine = json_array(), *d;
	size_t i;

	json_array_foreach(all, i, d)
		if (api_owns_domain(r, store_json_str(d, "name")))
			json_array_append(mine, d);
	json_decref(all);
	api_reply(r, 200, json_pack("{so}", "items", mine));
}

/* Parses, checks with the data plane's parser and stores a domain. */
static void api_domain_put(struct api_req *r, const char *path_name, bool create)
{
	struct api_error e;
	json_t *d = NULL;
	int rc;

	if (api_domain_parse(r->body, r->body_len, path_name, &d, &e) < 0 ||
	    api_check_domain(d, &e) < 0) {
		api_fail_with(r, &e);
		json_decref(d);
		return;
	}
	rc = store_domain_put(r->st, &r->actor, d, create);
	api_reply_stored(r, rc, create ? 201 : 200, store_json_str(d, "name"), store_domain_get);
	json_decref(d);
}

void api_domain_create(struct api_req *r)
{
	api_domain_put(r, NULL, true);
}

/* The domain of the path when the user may act on it; else the response is set. */
static json_t *api_domain_of_path(struct api_req *r)
{
	json_t *d;

	if (!api_owns_domain(r, r->param[0])) {
		api_fail(r, 403, NULL, "not one of your domains");
		return NULL;
	}
	d = store_domain_get(r->st, r->param[0]);
	if (d == NULL)
		api_fail(r, 404, NULL, "no domain %s", r->param[0]);
	return d;
}

void api_domain_get(struct api_req *r)
{
	json_t *d = api_domain_of_path(r);

	if (d != NULL)
		api_reply(r, 200, d);
}

void api_domain_replace(struct api_req *r)
{
	json_t *d = api_domain_of_path(r);

	if (d != NULL) {
		json_decref(d);
		api_domain_put(r, r->param[0], false);
	}
}

void api_domain_delete(struct api_req *r)
{
	int rc = store_domain_delete(r->st, &r->actor, r->param[0]);

	if (rc < 0)
		api_fail_store(r, rc, r->param[0]);
	else
		api_reply(r, 204, NULL);
}

void api_policy_get(struct api_req *r)
{
	json_t *d = api_domain_of_path(r);

	if (d != NULL) {
		api_reply(r, 200, json_incref(json_object_get(d, "policy")));
		json_decref(d);
	}
}

static const struct api_field api_policy_fields[] = {
	{ "value", API_T_STRING, true },
	{ NULL, 0, false },
};

void api_policy_put(struct api_req *r)
{
	json_t *d = api_domain_of_path(r), *body = NULL;
	const char *value;
	struct api_error e;
	int rc;

	if (d == NULL || (body = api_body(r, api_policy_fields)) == NULL)
		goto out;
	value = store_json_str(body, "value");
	if (!wire_policy_key_known(r->param[1])) {
		api_fail(r, 400, "key", "unknown policy key \"%s\"", r->param[1]);
		goto out;
	}
	if (!wire_value_safe(value)) {
		api_fail(r, 400, "value", "want a one-line string");
		goto out;
	}
	json_object_set_new(json_object_get(d, "policy"), r->param[1], json_string(value));
	if (api_check_domain(d, &e) < 0) {
		snprintf(e.field, sizeof(e.field), "value");
		api_fail_with(r, &e);
		goto out;
	}
	rc = store_policy_set(r->st, &r->actor, r->param[0], r->param[1], value);
	if (rc < 0)
		api_fail_store(r, rc, r->param[0]);
	else
		api_reply(r, 200, json_pack("{ssss}", "key", r->param[1], "value", value));
out:
	json_decref(body);
	json_decref(d);
}

void api_policy_delete(struct api_req *r)
{
	json_t *d = api_domain_of_path(r);
	int rc;

	if (d == NULL)
		return;
	json_decref(d);
	rc = store_policy_set(r->st, &r->actor, r->param[0], r->param[1], NULL);
	if (rc < 0)
		api_fail_store(r, rc, r->param[1]);
	else
		api_reply(r, 204, NULL);
}
