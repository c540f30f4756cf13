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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/clock.h"
#include "base/counter.h"
#include "delivery/delivery.h"
#include "policy/policy.h"
#include "smtp/smtp_session.h"
#include "spool/spool.h"

struct agent_stats_buf {
	char  *p;
	size_t len, cap;
	bool   oom;
};

static void asb_printf(struct agent_stats_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (b->oom)
		return;
	for (;;) {
		size_t room = b->cap - b->len;

		va_start(ap, fmt);
		n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? room : 0, fmt, ap);
		va_end(ap);
		if (n < 0) {
			b->oom = true;
			return;
		}
		if (b->p && (size_t)n < room) {
			b->len += (size_t)n;
			return;
		}
		size_t ncap = b->cap ? b->cap * 2 : 16384;
		char *np;

		while (ncap - b->len <= (size_t)n)
			ncap *= 2;
		np = realloc(b->p, ncap);
		if (np == NULL) {
			b->oom = true;
			return;
		}
		b->p = np;
		b->cap = ncap;
	}
}

static void asb_head(struct agent_stats_buf *b, const char *name, const char *type, const char *help)
{
	asb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample: name{shard="N"[,extra]} value. */
static void asb_sample(struct agent_stats_buf *b, const char *name, unsigned shard, const char *extra,
		       uint64_t v)
{
	asb_printf(b, "%s{shard=\"%u\"%s%s} %llu\n", name, shard, extra && *extra ? "," : "",
		   extra ? extra : "", (unsigned long long)v);
}

static const char *const agent_stats_roles[2] = { "primary", "fallback" };

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
	asb_head(b, "sluice_connections_refused_total", "counter",
		 "connections refused before a session, by reason");
	for (unsigned i = 0; i < n; i++) {
		asb_sample(b, "sluice_connections_refused_total", i, "reason=\"max_sessions\"",
			   ctr_read(&shards[i].ctr.conn_refused_pool));
		asb_sample(b, "sluice_connections_refused_total", i, "reason=\"connections_per_ip\"",
			   ctr_read(&shards[i].ctr.conn_refused_ip));
		asb_sample(b, "sluice_connections_refused_total", i, "reason=\"ip_block\"",
			   ctr_read(&shards[i].ctr.conn_refused_block));
	}
	asb_head(b, "sluice_connections_closed_total", "counter", "SMTP sessions ended");
	for (unsigned i = 0; i < n; i++)
		asb_sample(b, "sluice_connections_closed_total", i, NULL, ctr_read(&shards[i].ctr.conn_closed));
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
	asb_head(b, "sluice_received_bytes_total", "counter", "bytes of the messages accepted");
	for (unsigned i = 0; i < n; i++)
		asb_sample(b, "sluice_received_bytes_total", i, NULL, ctr_read(&shards[i].ctr.bytes_accepted));
	asb_head(b, "sluice_refusals_total", "counter", "4xx and 5xx replies (each is a reject log line)");
	for (unsigned i = 0; i < n; i++) {
		asb_sample(b, "sluice_refusals_total", i, "class=\"4xx\"", ctr_read(&shards[i].ctr.replies_4xx));
		asb_sample(b, "sluice_refusals_total", i, "class=\"5xx\"", ctr_read(&shards[i].ctr.replies_5xx));
	}
	asb_head(b, "sluice_tls_handshakes_total", "counter", "inbound STARTTLS handshakes completed, by version");
	for (unsigned i = 0; i < n; i++)
		for (unsigned v = 0; v < SHARD_CTR_TLS_VERS; v++) {
			snprintf(lab, sizeof(lab), "version=\"%s\"", tls_vers[v]);
			asb_sample(b, "sluice_tls_handshakes_total", i, lab,
				   ctr_read(&shards[i].ctr.tls_by_version[v]));
		}
	asb_head(b, "sluice_tls_failures_total", "counter", "inbound TLS handshakes that failed");
	for (unsigned i = 0; i < n; i++)
		asb_sample(b, "sluice_tls_failures_total", i, NULL, ctr_read(&shards[i].ctr.tls_failures));
	asb_head(b, "sluice_protocol_errors_total", "counter",
		 "SMTP commands refused as unknown, malformed or out of sequence");
	for (unsigned i = 0; i < n; i++) {
		asb_sample(b, "sluice_protocol_errors_total", i, "kind=\"syntax\"",
			   ctr_read(&shards[i].ctr.proto_errors));
		asb_sample(b, "sluice_protocol_errors_total", i, "kind=\"client\"",
			   ctr_read(&shards[i].ctr.cmd_errors));
	}
	asb_head(b, "sluice_timeouts_total", "counter", "sessions closed by a timeout");
	for (unsigned i = 0; i < n; i++)
		asb_sample(b, "sluice_timeouts_total", i, NULL, ctr_read(&shards[i].ctr.timeouts));
	asb_head(b, "sluice_early_talkers_total", "counter", "clients that talked before the greeting");
	for (unsigned i = 0; i < n; i++)
		asb_sample(b, "sluice_early_talkers_total", i, NULL, ctr_read(&shards[i].ctr.early_talkers));
	asb_head(b, "sluice_log_events_dropped_total", "counter", "log lines the event ring had no room for");
	for (unsigned i = 0; i < n; i++)
		asb_sample(b, "sluice_log_events_dropped_total", i, NULL, ctr_read(&shards[i].ctr.events_dropped));
}

static void agent_stats_spool(struct agent_stats_buf *b, const struct shard *shards, unsigned n)
{
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
	asb_head(b, "sluice_spool_messages_committed_total", "counter", "messages made durable (fsynced)");
	for (unsigned i = 0; i < n; i++)
		asb_sample(b, "sluice_spool_messages_committed_total", i, NULL, st[i].messages_committed);
	asb_head(b, "sluice_spool_committed_bytes_total", "counter", "bytes made durable");
	for (unsigned i = 0; i < n; i++)
		asb_sample(b, "sluice_spool_committed_bytes_total", i, NULL, st[i].bytes_committed);
	asb_head(b, "sluice_spool_fsyncs_total", "counter", "fsync and fdatasync calls of group commits");
	for (unsigned i = 0; i < n; i++)
		asb_sample(b, "sluice_spool_fsyncs_total", i, NULL, st[i].syncs);
	asb_head(b, "sluice_spool_commit_errors_total", "counter", "messages whose commit failed (451 to the client)");
	for (unsigned i = 0; i < n; i++)
		asb_sample(b, "sluice_spool_commit_errors_total", i, NULL, st[i].commit_errors);
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
	asb_head(b, "sluice_spool_queued_messages", "gauge", "messages in the spool not yet done");
	for (unsigned i = 0; i < n; i++)
		asb_sample(b, "sluice_spool_queued_messages", i, NULL, st[i].queued);
	asb_head(b, "sluice_spool_segments", "gauge", "spool segment files");
	for (unsigned i = 0; i < n; i++)
		asb_sample(b, "sluice_spool_segments", i, NULL, st[i].segments);
	free(st);
}

static void agent_stats_delivery(struct agent_stats_buf *b, const struct shard *shards, unsigned n)
{
	asb_head(b, "sluice_delivery_recipients_total", "counter",
		 "recipient delivery attempts by result (sent, bounced, deferred, expired)");
	for (unsigned i = 0; i < n; i++) {
		struct delivery_counters dc;

		delivery_get_counters(&shards[i], &dc);
		asb_sample(b, "sluice_delivery_recipients_total", i, "result=\"sent\"", dc.rcpt_sent);
		asb_sample(b, "sluice_delivery_recipients_total", i, "result=\"bounced\"", dc.rcpt_bounced);
		asb_sample(b, "sluice_delivery_recipients_total", i, "result=\"deferred\"", dc.rcpt_deferred);
		asb_sample(b, "sluice_delivery_recipients_total", i, "result=\"expired\"", dc.rcpt_expired);
	}
	asb_head(b, "sluice_delivery_deferrals_total", "counter", "messages put back for a retry");
	for (unsigned i = 0; i < n; i++) {
		struct delivery_counters dc;

		delivery_get_counters(&shards[i], &dc);
		asb_sample(b, "sluice_delivery_deferrals_total", i, NULL, dc.msg_deferred);
	}
	asb_head(b, "sluice_delivery_dsn_total", "counter", "delivery status notifications made");
	for (unsigned i = 0; i < n; i++) {
		struct delivery_counters dc;

		delivery_get_counters(&shards[i], &dc);
		asb_sample(b, "sluice_delivery_dsn_total", i, NULL, dc.dsn);
	}
	asb_head(b, "sluice_delivery_connections_total", "counter", "outbound SMTP connections opened");
	for (unsigned i = 0; i < n; i++) {
		struct delivery_counters dc;

		delivery_get_counters(&shards[i], &dc);
		asb_sample(b, "sluice_delivery_connections_total", i, NULL, dc.connections);
	}
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
		free(b.p);
		return -ENOMEM;
	}
	*text_r = b.p;
	*len_r = b.len;
	*lines_r = 0;
	for (size_t i = 0; i < b.len; i++)
		*lines_r += b.p[i] == '\n';
	return 0;
}
