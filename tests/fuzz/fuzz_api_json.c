/*
 * fuzz_api_json.c - libFuzzer target for the REST API's request parsing of one resource: a
 * domain's body (control/api/api_domain_parse.c: JSON, fields, types, values). Checks: no crash
 * or leak; a refusal is a 400 with a message; an accepted domain has a valid name, a route and
 * a policy object, and renders into a fragment whose every value stays on its line.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_impl.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s\n", #c); abort(); } } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct api_error e = { 0 };
	json_t *d = NULL;
	char *frag = NULL;
	int rc = api_domain_parse((const char *)data, size, size % 2 ? "example.com" : NULL, &d, &e);

	if (rc < 0) {
		CHECK(e.status == 400 && e.msg[0] != '\0');
		return 0;
	}
	CHECK(wire_domain_name_valid(store_json_str(d, "name")));
	CHECK(store_json_str(d, "route") != NULL);
	CHECK(json_is_object(json_object_get(d, "policy")));
	CHECK(store_domain_render(d, 1, &frag) == 0);
	/* One comment line, the section line, then one line per value: nothing opened a section. */
	CHECK(strncmp(frag, "# sluice cfg domain.", 20) == 0);
	CHECK(strstr(strchr(frag, '\n') + 1, "\n[") == NULL);
	free(frag);
	json_decref(d);
	return 0;
}
