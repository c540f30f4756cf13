/*
 * api_misc.c - /rulesets (the uploaded text and its SHA-256; compiling and shipping it is later
 * work) and /audit (paged, oldest first). Superadmin only.
 */
#include "api/api_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>


void api_ruleset_list(struct api_req *r)
{
	api_reply(r, 200, json_pack("{so}", "items", store_ruleset_list(r->st)));
}

void api_ruleset_get(struct api_req *r)
{
	json_t *rs = store_ruleset_get(r->st, r->param[0], true);

	if (rs == NULL)
		api_fail(r, 404, NULL, "no rule set %s", r->param[0]);
	else
		api_reply(r, 200, rs);
}

static const struct api_field api_ruleset_fields[] = {
	{ "text", API_T_STRING, true },
	{ NULL, 0, false },
};

void api_ruleset_put(struct api_req *r)
{
	json_t *body = api_body(r, api_ruleset_fields);
	bool created;
	int rc;

	if (body == NULL) {
		return;
	} else if (strlen(r->param[0]) > 128 || r->param[0][0] == '.' ||
		   strspn(r->param[0], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			  "0123456789_-.") != strlen(r->param[0])) {
		api_fail(r, 400, "name", "want a file name of letters, digits, '.', '-' and '_'");
	} else if ((rc = store_ruleset_put(r->st, &r->actor, r->param[0],
					   store_json_str(body, "text"), &created)) < 0) {
		api_fail_store(r, rc, r->param[0]);
	} else {
		api_reply(r, created ? 201 : 200, store_ruleset_get(r->st, r->param[0], false));
	}
	json_decref(body);
}

void api_ruleset_delete(struct api_req *r)
{
	int rc = store_ruleset_delete(r->st, &r->actor, r->param[0]);

	if (rc < 0)
		api_fail_store(r, rc, r->param[0]);
	else
		api_reply(r, 204, NULL);
}

/* Query "after=ID&limit=N" (both optional: from the start, 100 rows, at most 1000). */
void api_audit_list(struct api_req *r)
{
	long long after = 0, limit = 100;
	const char *p = r->query;

	while (p != NULL && *p != '\0') {
		char *end;

		if (strncmp(p, "after=", 6) == 0)
			after = strtoll(p + 6, &end, 10);
		else if (strncmp(p, "limit=", 6) == 0)
			limit = strtoll(p + 6, &end, 10);
		else {
			api_fail(r, 400, NULL, "unknown query parameter (want after, limit)");
			return;
		}
		if (*end != '\0' && *end != '&') {
			api_fail(r, 400, strncmp(p, "after", 5) == 0 ? "after" : "limit",
				 "want an integer");
			return;
		}
		p = *end == '&' ? end + 1 : end;
	}
	if (limit < 1 || limit > 1000 || after < 0) {
		api_fail(r, 400, limit < 1 || limit > 1000 ? "limit" : "after", "out of range");
		return;
	}
	api_reply(r, 200, store_audit_list(r->st, after, (unsigned)limit));
}
