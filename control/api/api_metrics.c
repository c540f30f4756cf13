/*
 * api_metrics.c - GET /api/v1/metrics: the control plane in Prometheus' text exposition format
 * (issue 18): the cluster's version and how much of it is published, each node's health, the
 * version it applied and its lag, and the API's responses by class. Superadmins only (a bearer
 * token, as any API call): Prometheus scrapes with `authorization: {credentials_file: ...}`.
 * The label sets are bounded by the nodes, which an operator adds one by one.
 */
#include "api/api_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"

static unsigned long long api_responses[6];   /* by status class, 1xx..5xx; [0]: other */

void api_metrics_count(int status)
{
	api_responses[status >= 100 && status < 600 ? status / 100 : 0]++;
}

static void put(struct buf *b, bool *oom, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void put(struct buf *b, bool *oom, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (!*oom && buf_vprintf(b, fmt, ap) < 0)
		*oom = true;
	va_end(ap);
}

static void head(struct buf *b, bool *oom, const char *name, const char *type, const char *help)
{
	put(b, oom, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void api_metrics(struct api_req *r)
{
	static const char *const healths[] = { "ok", "stale", "never seen" };
	json_t *nodes = store_node_list(r->st), *n;
	uint64_t version = store_cluster_version(r->st);
	int64_t now = time(NULL);
	struct buf b = { 0 };
	bool oom = false;
	size_t i;

	head(&b, &oom, "sluice_control_cluster_version", "gauge",
	     "the cluster's configuration version (every change bumps it)");
	put(&b, &oom, "sluice_control_cluster_version %llu\n", (unsigned long long)version);
	head(&b, &oom, "sluice_control_published_version", "gauge",
	     "the last version whose v the hub acked");
	put(&b, &oom, "sluice_control_published_version %llu\n",
	    (unsigned long long)store_outbox_published(r->st));
	head(&b, &oom, "sluice_control_outbox_pending", "gauge",
	     "configuration changes not yet acked by the hub");
	put(&b, &oom, "sluice_control_outbox_pending %llu\n",
	    (unsigned long long)store_outbox_pending(r->st));
	json_array_foreach(nodes, i, n)
		api_node_health(r, n, version, now);
	head(&b, &oom, "sluice_control_nodes", "gauge", "nodes by health");
	for (size_t h = 0; h < sizeof(healths) / sizeof(healths[0]); h++) {
		unsigned count = 0;

		json_array_foreach(nodes, i, n)
			count += strcmp(store_json_str(n, "health"), healths[h]) == 0;
		put(&b, &oom, "sluice_control_nodes{health=\"%s\"} %u\n", healths[h], count);
	}
	head(&b, &oom, "sluice_control_node_applied_version", "gauge",
	     "the configuration version each node last reported applied");
	json_array_foreach(nodes, i, n)
		put(&b, &oom, "sluice_control_node_applied_version{node=\"%s\"} %lld\n",
		    store_json_str(n, "name"),
		    (long long)json_integer_value(json_object_get(n, "applied_version")));
	head(&b, &oom, "sluice_control_node_lag", "gauge",
	     "versions a node is behind the cluster (absent: it never reported)");
	json_array_foreach(nodes, i, n)
		if (json_is_integer(json_object_get(n, "lag")))
			put(&b, &oom, "sluice_control_node_lag{node=\"%s\"} %lld\n",
			    store_json_str(n, "name"),
			    (long long)json_integer_value(json_object_get(n, "lag")));
	head(&b, &oom, "sluice_control_node_last_seen_seconds", "gauge",
	     "seconds since each node last reported (absent: never)");
	json_array_foreach(nodes, i, n)
		if (json_is_integer(json_object_get(n, "last_seen")))
			put(&b, &oom, "sluice_control_node_last_seen_seconds{node=\"%s\"} %lld\n",
			    store_json_str(n, "name"),
			    (long long)(now - json_integer_value(json_object_get(n, "last_seen"))));
	head(&b, &oom, "sluice_control_api_responses_total", "counter",
	     "API responses by status class");
	for (unsigned c = 1; c <= 5; c++)
		put(&b, &oom, "sluice_control_api_responses_total{code=\"%uxx\"} %llu\n", c,
		    api_responses[c]);
	json_decref(nodes);
	if (oom || buf_append(&b, "", 1) < 0) {
		buf_release(&b);
		api_fail(r, 500, NULL, "out of memory");
		return;
	}
	r->status = 200;
	r->resp_text = strdup((const char *)b.pos);
	buf_release(&b);
	if (r->resp_text == NULL)
		api_fail(r, 500, NULL, "out of memory");
}
