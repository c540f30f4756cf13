/*
 * api_domain_parse.c - a domain's request body into the store's object (api_impl.h). Every value
 * that will become an INI line is checked here with the data plane's own value syntax
 * (base/cfgval.h), and the whole domain again by its parser before it is stored
 * (api_domain.c), so a fragment in the outbox always loads on the nodes.
 */
#include "api/api_impl.h"

#include <errno.h>
#include <string.h>

#include "base/cfgval.h"
#include "wire/wire.h"

static const struct api_field api_domain_fields[] = {
	{ "name", API_T_STRING, false },
	{ "route", API_T_STRING, true },
	{ "tls", API_T_STRING, false },
	{ "tls_verify", API_T_BOOL, false },
	{ "spool_quota", API_T_STRING, false },
	{ "long_lines", API_T_STRING, false },
	{ "allow_routing", API_T_BOOL, false },
	{ "policy", API_T_OBJECT, false },
	{ NULL, 0, false },
};

static bool api_one_of(const char *v, const char *a, const char *b, const char *c)
{
	return strcmp(v, a) == 0 || strcmp(v, b) == 0 || strcmp(v, c) == 0;
}

static int api_domain_check(json_t *d, struct api_error *e)
{
	const char *v, *key;
	json_t *value;
	uint64_t size;

	if (!wire_domain_name_valid(store_json_str(d, "name")))
		return api_json_error(e, "name", "want a domain name in lower case (LDH labels, "
				      "A-label for IDN)");
	v = store_json_str(d, "route");
	if (!wire_value_safe(v))
		return api_json_error(e, "route", "want \"host:port [priority], ...\" or \"mx\"");
	if ((v = store_json_str(d, "tls")) != NULL && !api_one_of(v, "may", "required", "none"))
		return api_json_error(e, "tls", "want may, required or none");
	if ((v = store_json_str(d, "long_lines")) != NULL && !api_one_of(v, "pass", "wrap", "refuse"))
		return api_json_error(e, "long_lines", "want pass, wrap or refuse");
	if ((v = store_json_str(d, "spool_quota")) != NULL &&
	    (cfgval_size(v, &size) < 0 || size == 0 || !wire_value_safe(v)))
		return api_json_error(e, "spool_quota", "want a size (\"500M\", \"1G\")");
	json_object_foreach(json_object_get(d, "policy"), key, value) {
		if (!wire_policy_key_known(key))
			return api_json_error(e, "policy", "unknown policy key \"%s\"", key);
		if (!json_is_string(value) || !wire_value_safe(json_string_value(value)))
			return api_json_error(e, "policy", "%s: want a one-line string", key);
	}
	return 0;
}

int api_domain_parse(const char *body, size_t len, const char *path_name, json_t **domain_r,
		     struct api_error *e)
{
	json_t *d = NULL;
	int rc = api_json_parse(body, len, &d, e);

	if (rc < 0)
		return rc;
	rc = api_json_check(d, api_domain_fields, e);
	if (rc == 0)
		rc = api_body_name(d, path_name, e);
	if (rc == 0 && json_object_get(d, "policy") == NULL)
		json_object_set_new(d, "policy", json_object());
	if (rc == 0)
		rc = api_domain_check(d, e);
	if (rc < 0) {
		json_decref(d);
		return rc;
	}
	*domain_r = d;
	return 0;
}
