/*
 * cli_http.c - see cli_http.h.
 */
#include "cli/cli_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_HTTP_TIMEOUT_S 30L

struct cli_http_body {
	char  *p;
	size_t len;
};

static size_t cli_http_write(char *p, size_t size, size_t n, void *arg)
{
	struct cli_http_body *b = arg;
	char *np = realloc(b->p, b->len + size * n + 1);

	if (np == NULL)
		return 0;
	memcpy(np + b->len, p, size * n);
	b->len += size * n;
	np[b->len] = '\0';
	b->p = np;
	return size * n;
}

int cli_http_init(struct cli_http *h)
{
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0 || (h->curl = curl_easy_init()) == NULL) {
		fprintf(stderr, "sluicectl: cannot start libcurl\n");
		return -1;
	}
	return 0;
}

void cli_http_cleanup(struct cli_http *h)
{
	if (h->curl != NULL)
		curl_easy_cleanup(h->curl);
	h->curl = NULL;
	curl_global_cleanup();
}

int cli_http_request(struct cli_http *h, const char *method, const char *path, json_t *body,
		     json_t **resp_r)
{
	CURL *c = h->curl;
	struct curl_slist *hdr = NULL;
	struct cli_http_body got = { 0 };
	char *url = NULL, *text = body ? json_dumps(body, JSON_COMPACT) : NULL, auth[512];
	long status = 0;
	CURLcode cc;
	int rc;

	if (asprintf(&url, "%s/api/v1/%s", h->url, path) < 0)
		return CLI_HTTP_UNREACHABLE;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, CLI_HTTP_TIMEOUT_S);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, cli_http_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
	if (h->ca != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->ca);
	if (h->token != NULL) {
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s", h->token);
		hdr = curl_slist_append(hdr, auth);
	}
	if (text != NULL) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	free(text);
	free(url);
	*resp_r = NULL;
	if (cc != CURLE_OK) {
		fprintf(stderr, "sluicectl: cannot reach %s: %s\n", h->url, curl_easy_strerror(cc));
		free(got.p);
		return CLI_HTTP_UNREACHABLE;
	}
	json_t *resp = got.len ? json_loadb(got.p, got.len, 0, NULL) : NULL;

	free(got.p);
	if (status >= 200 && status < 300) {
		*resp_r = resp;
		return 0;
	}
	rc = CLI_HTTP_API_ERROR;
	const char *err = json_string_value(json_object_get(resp, "error"));
	const char *field = json_string_value(json_object_get(resp, "field"));

	fprintf(stderr, "sluicectl: %ld: %s%s%s%s\n", status, err ? err : "no error message",
		field ? " (field " : "", field ? field : "", field ? ")" : "");
	json_decref(resp);
	return rc;
}
