/*
 * agent_join.c - see agent_join.h. Runs before anything else of the node: no shard, no agent
 * thread, no spool; plain blocking calls (libcurl's easy interface).
 */
#include "agent/agent_join.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sync/ca.h"
#include "sync/csr.h"
#include "sync/sync_file.h"

#define JOIN_PATH_MAX  4096
#define JOIN_REPLY_MAX (256 * 1024)
#define JOIN_PIN_MAX   64

struct join_reply {
	char   *data;
	size_t  len;
	bool    too_big;
};

static size_t join_collect(char *p, size_t size, size_t n, void *arg)
{
	struct join_reply *r = arg;
	size_t add = size * n;
	char *grown;

	if (r->len + add > JOIN_REPLY_MAX) {
		r->too_big = true;
		return 0;
	}
	if ((grown = realloc(r->data, r->len + add + 1)) == NULL)
		return 0;
	r->data = grown;
	memcpy(r->data + r->len, p, add);
	r->len += add;
	r->data[r->len] = '\0';
	return add;
}

/* NAME.SECRET.PIN into the name and curl's pin ("sha256//" + standard base64 with padding). */
static int join_parse_token(const char *token, char *name, char *pin)
{
	const char *dot = strchr(token, '.'), *last = strrchr(token, '.');
	size_t n = dot ? (size_t)(dot - token) : 0, plen = last ? strlen(last + 1) : 0, i;

	if (dot == NULL || last == dot || n == 0 || n > CA_NAME_MAX || plen == 0 ||
	    plen + 12 > JOIN_PIN_MAX)
		return -EINVAL;
	memcpy(name, token, n);
	name[n] = '\0';
	if (!ca_name_valid(name))
		return -EINVAL;
	strcpy(pin, "sha256//");
	for (i = 0; i < plen; i++) {
		char c = last[1 + i];
		pin[8 + i] = c == '-' ? '+' : c == '_' ? '/' : c;
	}
	while (i % 4 != 0)
		pin[8 + i++] = '=';
	pin[8 + i] = '\0';
	return 0;
}

static int join_write(const char *dir, const char *leaf, const char *text, mode_t mode)
{
	char path[JOIN_PATH_MAX];
	int rc;

	snprintf(path, sizeof(path), "%s/%s", dir, leaf);
	rc = sync_file_write(path, text, strlen(text), mode);
	if (rc < 0)
		fprintf(stderr, "sluice-node: --join: %s: %s\n", path, strerror(-rc));
	return rc;
}

/* Writes the certificate, the CA and the hub's URLs from the control's answer. */
static int join_store(const char *dir, json_t *resp)
{
	const char *crt = json_string_value(json_object_get(resp, "certificate"));
	const char *ca = json_string_value(json_object_get(resp, "ca"));
	json_t *urls = json_object_get(resp, "hub_urls"), *u;
	size_t i, len = 0;
	char *list;
	int rc;

	if (crt == NULL || ca == NULL || !json_is_array(urls)) {
		fprintf(stderr, "sluice-node: --join: the control's answer lacks the certificate, "
			"the CA or the hub's URLs\n");
		return -EBADMSG;
	}
	json_array_foreach(urls, i, u)
		len += json_string_length(u) + 1;
	if ((list = calloc(1, len + 1)) == NULL)
		return -ENOMEM;
	json_array_foreach(urls, i, u) {
		strcat(list, json_string_value(u) ? json_string_value(u) : "");
		strcat(list, "\n");
	}
	rc = join_write(dir, "ca.crt", ca, 0644);
	rc = rc ? rc : join_write(dir, "node.crt", crt, 0644);
	rc = rc ? rc : join_write(dir, "hub_urls", list, 0644);
	free(list);
	return rc;
}

/* POSTs body to https://control/api/v1/join with the public key pinned. The HTTP status, or
 * -1 (the reason printed). */
static long join_post(const char *control, const char *pin, const char *body,
		      struct join_reply *reply)
{
	char url[JOIN_PATH_MAX], cerr[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	CURL *h = curl_easy_init();
	long status = -1;
	CURLcode cc;

	if (h == NULL || hdr == NULL) {
		fprintf(stderr, "sluice-node: --join: out of memory\n");
		goto out;
	}
	snprintf(url, sizeof(url), "https://%s/api/v1/join", control);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	/* The control's certificate is its own (self-signed): the pin from the token is the
	 * whole trust, and curl refuses the connection before sending anything if it differs. */
	curl_easy_setopt(h, CURLOPT_PINNEDPUBLICKEY, pin);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)AGENT_JOIN_TIMEOUT_S);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, join_collect);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, reply);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		fprintf(stderr, "sluice-node: --join: %s: %s\n", url,
			cc == CURLE_SSL_PINNEDPUBKEYNOTMATCH
			? "the control's public key is not the one the token names (wrong host, or "
			  "not the control that made the token)"
			: reply->too_big ? "the answer is too large" : cerr[0] ? cerr
			: curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
out:
	curl_slist_free_all(hdr);
	curl_easy_cleanup(h);
	return status;
}

int agent_join(const char *token, const char *control, const char *dir)
{
	char name[CA_NAME_MAX + 1], pin[JOIN_PIN_MAX], key[JOIN_PATH_MAX], *csr = NULL;
	char *body = NULL;
	struct join_reply reply = { 0 };
	json_t *resp = NULL;
	long status;
	int rc = 1;

	if (join_parse_token(token, name, pin) < 0) {
		fprintf(stderr, "sluice-node: --join: want the token `sluicectl node add` printed "
			"(NAME.SECRET.PIN)\n");
		return 2;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "sluice-node: --join: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(key, sizeof(key), "%s/node.key", dir);
	if ((rc = csr_make(name, key, &csr)) < 0) {
		fprintf(stderr, "sluice-node: --join: %s: %s\n", key, strerror(-rc));
		return 1;
	}
	rc = 1;
	resp = json_pack("{ssss}", "token", token, "csr", csr);
	body = resp ? json_dumps(resp, JSON_COMPACT) : NULL;
	json_decref(resp);
	resp = NULL;
	if (body == NULL || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		goto out;
	status = join_post(control, pin, body, &reply);
	curl_global_cleanup();
	if (status < 0)
		goto out;
	resp = reply.data ? json_loads(reply.data, 0, NULL) : NULL;
	if (status != 200) {
		const char *e = json_string_value(json_object_get(resp, "error"));
		fprintf(stderr, "sluice-node: --join: the control refused (HTTP %ld): %s\n", status,
			e ? e : "no reason given");
		goto out;
	}
	if (join_store(dir, resp) < 0)
		goto out;
	printf("joined the cluster as %s: certificate, CA and hub in %s\n"
	       "the node's configuration needs:\n"
	       "  [node]\n  name = %s\n  [cluster]\n  dir = %s\n", name, dir, name, dir);
	rc = 0;
out:
	json_decref(resp);
	free(reply.data);
	free(body);
	free(csr);
	return rc;
}
