/*
 * api_json.c - request bodies: one JSON object, every field known, typed and present when
 * required; the errors name the field (api_impl.h).
 */
#include "api/api_impl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int api_json_error(struct api_error *e, const char *field, const char *fmt, ...)
{
	va_list ap;

	e->status = 400;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	snprintf(e->field, sizeof(e->field), "%s", field ? field : "");
	return -EINVAL;
}

int api_json_parse(const char *body, size_t len, json_t **obj_r, struct api_error *e)
{
	json_error_t je;
	json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);

	if (obj == NULL)
		return api_json_error(e, NULL, "bad JSON: %s (at byte %d)", je.text, je.position);
	if (!json_is_object(obj)) {
		json_decref(obj);
		return api_json_error(e, NULL, "bad JSON: want an object");
	}
	*obj_r = obj;
	return 0;
}

json_t *api_body(struct api_req *r, const struct api_field *fields)
{
	struct api_error e;
	json_t *obj = NULL;

	if (api_json_parse(r->body, r->body_len, &obj, &e) == 0 &&
	    api_json_check(obj, fields, &e) == 0)
		return obj;
	json_decref(obj);
	api_fail_with(r, &e);
	return NULL;
}

int api_body_name(json_t *obj, const char *path_name, struct api_error *e)
{
	const char *name = json_string_value(json_object_get(obj, "name"));

	if (name == NULL && path_name == NULL)
		return api_json_error(e, "name", "missing");
	if (name == NULL)
		return json_object_set_new(obj, "name", json_string(path_name)) == 0 ? 0
		       : api_json_error(e, "name", "out of memory");
	if (path_name != NULL && strcmp(name, path_name) != 0)
		return api_json_error(e, "name", "differs from the path's (an object is renamed by "
				      "creating the new one and deleting the old)");
	return 0;
}

static bool api_type_ok(json_t *v, enum api_type t)
{
	size_t i;
	json_t *item;

	switch (t) {
	case API_T_STRING:
		return json_is_string(v);
	case API_T_STRING_OR_NULL:
		return json_is_string(v) || json_is_null(v);
	case API_T_BOOL:
		return json_is_boolean(v);
	case API_T_INT:
		return json_is_integer(v);
	case API_T_OBJECT:
		return json_is_object(v);
	case API_T_ARRAY:
		return json_is_array(v);
	case API_T_STRINGS:
		if (!json_is_array(v))
			return false;
		json_array_foreach(v, i, item)
			if (!json_is_string(item))
				return false;
		return true;
	}
	return false;
}

static const char *const api_type_names[] = {
	[API_T_STRING] = "a string", [API_T_BOOL] = "true or false", [API_T_INT] = "an integer",
	[API_T_OBJECT] = "an object", [API_T_ARRAY] = "an array",
	[API_T_STRINGS] = "an array of strings", [API_T_STRING_OR_NULL] = "a string or null",
};

int api_json_check(json_t *obj, const struct api_field *fields, struct api_error *e)
{
	const char *key;
	json_t *v;

	json_object_foreach(obj, key, v) {
		const struct api_field *f = fields;

		while (f->name != NULL && strcmp(f->name, key) != 0)
			f++;
		if (f->name == NULL)
			return api_json_error(e, key, "unknown field");
		if (!api_type_ok(v, f->type))
			return api_json_error(e, key, "want %s", api_type_names[f->type]);
	}
	for (const struct api_field *f = fields; f->name != NULL; f++)
		if (f->required && json_object_get(obj, f->name) == NULL)
			return api_json_error(e, f->name, "missing");
	return 0;
}
