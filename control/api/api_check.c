/*
 * api_check.c - see api_check.h. The base is the smallest file the parser takes; the parser's
 * message names the key ("NAME:LINE: [domain D] KEY: reason"), which becomes the error's field.
 */
#include "api/api_check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/api_impl.h"
#include "base/log.h"
#include "conf/node_config.h"

static const char api_check_base[] =
	"[node]\nname = control-check\nhostname = control.check\nspool_dir = /nonexistent/sluice-control-check\n"
	"[listen check]\naddress = 127.0.0.1:25\n";

/* The key a parser message names after "] ", as the field; "route" when it names none. */
static void api_check_field(const char *msg, char *field, size_t len)
{
	const char *p = strstr(msg, "] ");
	size_t n;

	if (p == NULL) {
		snprintf(field, len, "route");
		return;
	}
	p += 2;
	n = strcspn(p, ":");
	snprintf(field, len, "%.*s", (int)n, p);
	if (strchr(field, ' ') != NULL || n == 0)
		snprintf(field, len, "route");
	else if (strcmp(field, "route") != 0 && strcmp(field, "tls") != 0 &&
		 strcmp(field, "tls_verify") != 0 && strcmp(field, "spool_quota") != 0 &&
		 strcmp(field, "long_lines") != 0 && strcmp(field, "allow_routing") != 0)
		snprintf(field, len, "policy");
}

int api_check_domain(json_t *domain, struct api_error *e)
{
	struct node_config *c = NULL;
	char *frag = NULL, *buf, err[512] = "";
	size_t blen = sizeof(api_check_base) - 1, flen;
	int rc = store_domain_render(domain, 0, &frag);

	if (rc < 0)
		return api_json_error(e, NULL, "cannot render the domain");
	flen = strlen(frag);
	buf = malloc(blen + flen);
	if (buf == NULL) {
		free(frag);
		return api_json_error(e, NULL, "out of memory");
	}
	memcpy(buf, api_check_base, blen);
	memcpy(buf + blen, frag, flen);
	rc = node_config_load_buffer("domain", buf, blen + flen, &c, err, sizeof(err));
	free(buf);
	free(frag);
	if (rc == 0) {
		node_config_unref(&c);
		return 0;
	}
	api_json_error(e, NULL, "%s", err);
	api_check_field(err, e->field, sizeof(e->field));
	return -EINVAL;
}
