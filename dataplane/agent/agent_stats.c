/*
 * agent_stats.c - the node's live counters, read while it runs: each shard's struct
 * shard_counters and its spool's counters (written by the shard alone, read here with relaxed
 * loads: base/counter.h), written per shard in Prometheus' text exposition format (the metrics
 * endpoint of a later issue serves the same text). `sluice-queue stats` asks for them on the
 * control socket ("counters") and prints them.
 *
 * Agent thread. Only while the shards run (the agent stops answering before they stop).
 */
#include "agent/agent_stats.h"
#include "agent/agent_events.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/counter.h"
#include "base/histo.h"
#include "delivery/delivery.h"
#include "policy/policy.h"
#include "smtp/smtp_session.h"
#include "spool/spool.h"

struct agent_stats_buf {
	struct buf b;
	bool       oom;
};

static void asb_printf(struct agent_stats_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void asb_printf(struct agent_stats_buf *b, const char *fmt, ...)
{
	va_list ap;

	if (b->oom)
		return;
	va_start(ap, fmt);
	if (buf_vprintf(&b->b, fmt, ap) < 0)
		b->oom = true;
	va_end(ap);
}

static void asb_head(struct agent_stats_buf *b, const char *name, const char *type, const char *help)
{
	asb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A histogram's samples for one shard and label set (base/histo.h): cumulative buckets, sum,
 * count. The # HELP and # TYPE lines are the caller's, once per name. */
static void asb_histo(struct agent_stats_buf *b, const char *name, unsigned shard,
		      const char *extra, const struct histo *h)
{
	static const uint64_t bounds_us[] = HISTO_BOUNDS_US;
	const char *sep = extra && *extra ? "," : "";
	uint64_t cum = 0;

	extra = extra ? extra : "";
	for (unsigned k = 0; k < HISTO_NBUCKETS; k++) {
		cum += ctr_read(&h->bucket[k]);
		if (k < HISTO_NBUCKETS - 1)
			asb_printf(b, "%s_bucket{shard=\"%u\"%s%s,le=\"%g\"} %llu\n", name, shard, sep,
				   extra, (double)bounds_us[k] / 1e6, (unsigned long long)cum);
		else
			asb_printf(b, "%s_bucket{shard=\"%u\"%s%s,le=\"+Inf\"} %llu\n", name, shard,
				   sep, extra, (unsigned long long)cum);
	}
	asb_printf(b, "%s_sum{shard=\"%u\"%s%s} %.9f\n", name, shard, sep, extra,
		   (double)ctr_read(&h->sum_ns) / 1e9);
	asb_printf(b, "%s_count{shard=\"%u\"%s%s} %llu\n", name, shard, sep, extra,
		   (unsigned long long)cum);
}

/* One sample: name{shard="N"[,extra]} value. */
static void asb_sample(struct agent_stats_buf *b, const char *name, unsigned shard, const char *extra,
		       uint64_t v)
{
	asb_printf(b, "%s{shard=\"%u\"%s%s} %llu\n", name, shard, extra && *extra ? "," : "",
		   extra ? extra : "", (unsigned long long)v);
}

static const char *const agent_stats_roles[2] = { "primary", "fallback" };

/* A family of scalar counters: entries with help start a family, those after it without help
 * are more label sets of it; off is where each shard's value sits in its struct; type NULL
 * is a counter. */
struct agent_stats_field {
	const char *name, *labels, *help, *type;
	size_t      off;
};

/* Writes each family: # HELP, then its label sets shard by shard. Shard i's struct is at
 * base + i * stride (an array of shards' counters, or of struct shard). */
static void asb_fields(struct agent_stats_buf *b, const struct agent_stats_field *fs, size_t nf,
		       const void *base, size_t stride, unsigned n)
{
	for (size_t k = 0; k < nf; k++) {
		size_t last = k;

		if (fs[k].help == NULL)
			continue;
		while (last + 1 < nf && fs[last + 1].help == NULL)
			last++;
		asb_head(b, fs[k].name, fs[k].type ? fs[k].type : "counter", fs[k].help);
		for (unsigned i = 0; i < n; i++)
			for (size_t f = k; f <= last; f++)
				asb_sample(b, fs[f].name, i, fs[f].labels,
					   ctr_read((const uint64_t *)((const char *)base + i * stride + fs[f].off)));
	}
}

#define SC(f) (offsetof(struct shard, ctr) + offsetof(struct shard_counters, f))
static const struct agent_stats_field agent_stats_shard_fields[] = {
	{ "sluice_connections_refused_total", "reason=\"max_sessions\"",
	  "connections refused before a session, by reason", NULL, SC(conn_refused_pool) },
	{ "sluice_connections_refused_total", "reason=\"connections_per_ip\"", NULL, NULL,
	  SC(conn_refused_ip) },
	{ "sluice_connections_refused_total", "reason=\"ip_block\"", NULL, NULL,
	  SC(conn_refused_block) },
	{ "sluice_connections_closed_total", NULL, "SMTP sessions ended", NULL, SC(conn_closed) },
	{ "sluice_received_bytes_total", NULL, "bytes of the messages accepted", NULL,
	  SC(bytes_accepted) },
	{ "sluice_refusals_total", "class=\"4xx\"", "4xx and 5xx replies (each is a reject log line)", NULL,
	  SC(replies_4xx) },
	{ "sluice_refusals_total", "class=\"5xx\"", NULL, NULL, SC(replies_5xx) },
	{ "sluice_tls_failures_total", NULL, "inbound TLS handshakes that failed", NULL,
	  SC(tls_failures) },
	{ "sluice_protocol_errors_total", "kind=\"syntax\"",
	  "SMTP commands refused as unknown, malformed or out of sequence", NULL, SC(proto_errors) },
	{ "sluice_protocol_errors_total", "kind=\"client\"", NULL, NULL, SC(cmd_errors) },
	{ "sluice_timeouts_total", NULL, "sessions closed by a timeout", NULL, SC(timeouts) },
	{ "sluice_early_talkers_total", NULL, "clients that talked before the greeting", NULL,
	  SC(early_talkers) },
	{ "sluice_log_events_dropped_total", NULL, "log lines the event ring had no room for", NULL,
	  SC(events_dropped) },
};
#undef SC

static void agent_stats_smtp(struct agent_stats_buf *b, const struct shard *shards, unsigned n)
{
	static const char *const tls_vers[SHARD_CTR_TLS_VERS] = { "TLSv1", "TLSv1.1", "TLSv1.2",
								    "TLSv1.3" };
	char lab[96];

	asb_head(b, "sluice_connections_total", "counter", "SMTP connections accepted, by MX role");
	for (unsigned i = 0; i < n; i++)
		for (unsigned r = 0; r < 2; r++) {
			snprintf(lab, sizeof(lab), "role=\"%s\"", agent_stats_roles[r]);
			asb_sample(b, "sluice_connections_total", i, lab,
				   ctr_read(&shards[i].ctr.conn_by_role[r]));
		}
	asb_head(b, "sluice_sessions", "gauge", "SMTP sessions open now, by state");
	for (unsigned i = 0; i < n; i++)
		for (unsigned st = 0; st < SHARD_CTR_STATES; st++) {
			const char *name = smtp_state_name(1u << st);

			if (strcmp(name, "?") == 0)
				continue;
			snprintf(lab, sizeof(lab), "state=\"%s\"", name);
			asb_sample(b, "sluice_sessions", i, lab, ctr_read(&shards[i].ctr.sessions_in_state[st]));
		}
	asb_head(b, "sluice_messages_total", "counter",
		 "messages at the end of data, by the policy's action and MX role");
	for (unsigned i = 0; i < n; i++)
		for (unsigned a = 0; a < POLICY_ACTION_COUNT && a < SHARD_CTR_ACTIONS; a++)
			for (unsigned r = 0; r < 2; r++) {
				snprintf(lab, sizeof(lab), "action=\"%s\",role=\"%s\"",
					 policy_action_name((enum policy_action)a), agent_stats_roles[r]);
				asb_sample(b, "sluice_messages_total", i, lab,
					   ctr_read(&shards[i].ctr.msg_by_action[a][r]));
			}
	asb_head(b, "sluice_tls_handshakes_total", "counter", "inbound STARTTLS handshakes completed, by version");
	for (unsigned i = 0; i < n; i++)
		for (unsigned v = 0; v < SHARD_CTR_TLS_VERS; v++) {
			snprintf(lab, sizeof(lab), "version=\"%s\"", tls_vers[v]);
			asb_sample(b, "sluice_tls_handshakes_total", i, lab,
				   ctr_read(&shards[i].ctr.tls_by_version[v]));
		}
	asb_fields(b, agent_stats_shard_fields,
		   sizeof(agent_stats_shard_fields) / sizeof(agent_stats_shard_fields[0]), shards,
		   sizeof(*shards), n);
	asb_head(b, "sluice_time_to_250_seconds", "histogram",
		 "from the end of a message's data to its 250 (durable), by MX role");
	for (unsigned i = 0; i < n; i++)
		for (unsigned r = 0; r < 2; r++) {
			snprintf(lab, sizeof(lab), "role=\"%s\"", agent_stats_roles[r]);
			asb_histo(b, "sluice_time_to_250_seconds", i, lab, &shards[i].ctr.time_to_250[r]);
		}
	asb_head(b, "sluice_scan_seconds", "histogram",
		 "the content filter's time on a message (the body as it arrives, and its end)");
	for (unsigned i = 0; i < n; i++)
		asb_histo(b, "sluice_scan_seconds", i, NULL, &shards[i].ctr.scan_time);
}

static void agent_stats_spool(struct agent_stats_buf *b, const struct shard *shards, unsigned n)
{
#define SP(f) offsetof(struct spool_stats, f)
	static const struct agent_stats_field spool_counters[] = {
		{ "sluice_spool_messages_committed_total", NULL, "messages made durable (fsynced)", NULL,
		  SP(messages_committed) },
		{ "sluice_spool_committed_bytes_total", NULL, "bytes made durable", NULL, SP(bytes_committed) },
		{ "sluice_spool_fsyncs_total", NULL, "fsync and fdatasync calls of group commits", NULL,
		  SP(syncs) },
		{ "sluice_spool_commit_errors_total", NULL, "messages whose commit failed (451 to the client)",
		  NULL, SP(commit_errors) },
	}, spool_gauges[] = {
		{ "sluice_spool_queued_messages", NULL, "messages in the spool not yet done", "gauge",
		  SP(queued) },
		{ "sluice_spool_segments", NULL, "spool segment files", "gauge", SP(segments) },
	};
#undef SP
	static const uint64_t bounds_us[] = SPOOL_COMMIT_BUCKETS_US;
	struct spool_stats *st = calloc(n ? n : 1, sizeof(*st));
	char lab[64];

	if (st == NULL) {
		b->oom = true;
		return;
	}
	for (unsigned i = 0; i < n; i++)
		if (shards[i].spool != NULL && !atomic_load(&shards[i].exited))
			spool_get_stats(shards[i].spool, &st[i]);
	asb_fields(b, spool_counters, sizeof(spool_counters) / sizeof(spool_counters[0]), st,
		   sizeof(*st), n);
	asb_head(b, "sluice_spool_commit_seconds", "histogram",
		 "group commit latency, from the batch's first message to its last fsync");
	for (unsigned i = 0; i < n; i++) {
		uint64_t cum = 0;

		for (unsigned k = 0; k < SPOOL_COMMIT_NBUCKETS; k++) {
			cum += st[i].commit_hist[k];
			if (k < sizeof(bounds_us) / sizeof(bounds_us[0]))
				snprintf(lab, sizeof(lab), "le=\"%g\"", (double)bounds_us[k] / 1e6);
			else
				snprintf(lab, sizeof(lab), "le=\"+Inf\"");
			asb_sample(b, "sluice_spool_commit_seconds_bucket", i, lab, cum);
		}
		asb_printf(b, "sluice_spool_commit_seconds_sum{shard=\"%u\"} %.9f\n", i,
			   (double)st[i].sync_ns_total / 1e9);
		asb_sample(b, "sluice_spool_commit_seconds_count", i, NULL, cum);
	}
	asb_fields(b, spool_gauges, sizeof(spool_gauges) / sizeof(spool_gauges[0]), st, sizeof(*st), n);
	free(st);
}

static void agent_stats_delivery(struct agent_stats_buf *b, const struct shard *shards, unsigned n)
{
#define DC(f) offsetof(struct delivery_counters, f)
	static const struct agent_stats_field fields[] = {
		{ "sluice_delivery_recipients_total", "result=\"sent\"",
		  "recipient delivery attempts by result (sent, bounced, deferred, expired)", NULL, DC(rcpt_sent) },
		{ "sluice_delivery_recipients_total", "result=\"bounced\"", NULL, NULL,
		  DC(rcpt_bounced) },
		{ "sluice_delivery_recipients_total", "result=\"deferred\"", NULL, NULL,
		  DC(rcpt_deferred) },
		{ "sluice_delivery_recipients_total", "result=\"expired\"", NULL, NULL,
		  DC(rcpt_expired) },
		{ "sluice_delivery_deferrals_total", NULL, "messages put back for a retry", NULL,
		  DC(msg_deferred) },
		{ "sluice_delivery_dsn_total", NULL, "delivery status notifications made", NULL,
		  DC(dsn) },
		{ "sluice_delivery_connections_total", NULL, "outbound SMTP connections opened", NULL,
		  DC(connections) },
	};
#undef DC
	struct delivery_counters *dc = calloc(n ? n : 1, sizeof(*dc));

	if (dc == NULL) {
		b->oom = true;
		return;
	}
	for (unsigned i = 0; i < n; i++)
		delivery_get_counters(&shards[i], &dc[i]);
	asb_fields(b, fields, sizeof(fields) / sizeof(fields[0]), dc, sizeof(*dc), n);
	asb_head(b, "sluice_delivery_attempt_seconds", "histogram",
		 "one delivery attempt: connection, transaction and the replies");
	for (unsigned i = 0; i < n; i++)
		asb_histo(b, "sluice_delivery_attempt_seconds", i, NULL, &dc[i].attempt_time);
	free(dc);
}

/* A label value as the exposition format writes it: \ " and newline escaped. */
static const char *label_escape(const char *v, char *out, size_t outlen)
{
	size_t o = 0;

	for (; *v && o + 3 < outlen; v++) {
		if (*v == '\\' || *v == '"' || *v == '\n') {
			out[o++] = '\\';
			out[o++] = *v == '\n' ? 'n' : *v;
		} else {
			out[o++] = *v;
		}
	}
	out[o] = '\0';
	return out;
}

static int depth_by_domain(const void *a, const void *b)
{
	return strcmp(((const struct delivery_domain_depth *)a)->domain,
		      ((const struct delivery_domain_depth *)b)->domain);
}

static int depth_by_messages(const void *a, const void *b)
{
	const struct delivery_domain_depth *x = a, *y = b;

	if (x->messages != y->messages)
		return x->messages > y->messages ? -1 : 1;
	return strcmp(x->domain, y->domain);
}

/* The queue per recipient domain, summed over shards: the largest AGENT_STATS_DOMAINS, then
 * "other" for the rest (a bounded label set however many domains a node serves). */
static void agent_stats_domains(struct agent_stats_buf *b, const struct delivery_depth_part *parts,
				unsigned n)
{
	struct delivery_domain_depth *all, other = { .domain = "other" };
	size_t total = 0, m = 0;
	uint64_t now = clock_wall_ns();

	for (unsigned i = 0; parts && i < n; i++)
		total += parts[i].n;
	all = malloc((total ? total : 1) * sizeof(*all));
	if (all == NULL) {
		b->oom = true;
		return;
	}
	for (unsigned i = 0; parts && i < n; i++)
		if (parts[i].n)
			memcpy(all + m, parts[i].v, parts[i].n * sizeof(*all)), m += parts[i].n;
	if (m)
		qsort(all, m, sizeof(*all), depth_by_domain);
	total = 0;
	for (size_t k = 0; k < m; k++) {
		if (total && strcmp(all[total - 1].domain, all[k].domain) == 0) {
			all[total - 1].messages += all[k].messages;
			if (all[k].oldest_ns < all[total - 1].oldest_ns)
				all[total - 1].oldest_ns = all[k].oldest_ns;
			continue;
		}
		all[total++] = all[k];
	}
	if (total)
		qsort(all, total, sizeof(*all), depth_by_messages);
	for (size_t k = AGENT_STATS_DOMAINS; k < total; k++) {
		other.messages += all[k].messages;
		if (other.oldest_ns == 0 || all[k].oldest_ns < other.oldest_ns)
			other.oldest_ns = all[k].oldest_ns;
	}
	asb_head(b, "sluice_queue_messages", "gauge",
		 "queued messages per recipient domain (the largest, then other)");
	for (size_t k = 0; k < total && k < AGENT_STATS_DOMAINS; k++) {
		char esc[520];

		asb_printf(b, "sluice_queue_messages{domain=\"%s\"} %llu\n",
			   label_escape(all[k].domain, esc, sizeof(esc)), (unsigned long long)all[k].messages);
	}
	if (total > AGENT_STATS_DOMAINS)
		asb_printf(b, "sluice_queue_messages{domain=\"other\"} %llu\n",
			   (unsigned long long)other.messages);
	asb_head(b, "sluice_queue_oldest_seconds", "gauge", "age of the oldest queued message per domain");
	for (size_t k = 0; k < total && k < AGENT_STATS_DOMAINS + 1; k++) {
		const struct delivery_domain_depth *e = k < AGENT_STATS_DOMAINS ? &all[k] : &other;
		char esc[520];

		asb_printf(b, "sluice_queue_oldest_seconds{domain=\"%s\"} %.3f\n",
			   label_escape(e->domain, esc, sizeof(esc)),
			   e->oldest_ns && now > e->oldest_ns ? (double)(now - e->oldest_ns) / 1e9 : 0.0);
	}
	free(all);
}

int agent_stats_text(const struct shard *shards, unsigned n, const struct delivery_depth_part *depth,
		     char **text_r, size_t *len_r, unsigned *lines_r)
{
	struct agent_stats_buf b = { 0 };

	agent_stats_smtp(&b, shards, n);
	agent_stats_spool(&b, shards, n);
	agent_stats_delivery(&b, shards, n);
	agent_stats_domains(&b, depth, n);
	asb_head(&b, "sluice_events_backlog", "gauge",
		 "events a sink has not taken yet (every shard's event log)");
	for (unsigned k = 0; k < agent_events_nsinks(); k++)
		asb_printf(&b, "sluice_events_backlog{sink=\"%s\"} %llu\n", agent_events_sink_name(k),
			   (unsigned long long)agent_events_backlog(k));
	if (b.oom) {
		buf_release(&b.b);
		return -ENOMEM;
	}
	*len_r = buf_unread(&b.b);
	*text_r = (char *)b.b.start;   /* pos is start: nothing was consumed */
	*lines_r = 0;
	for (size_t i = 0; i < *len_r; i++)
		*lines_r += b.b.pos[i] == '\n';
	return 0;
}
