/*
 * agent_metrics.h - the node's Prometheus endpoint (issue 18): GET /metrics on [metrics] listen
 * answers the live counters in the text exposition format (version 0.0.4).
 *
 * A thread of its own running an h2o event loop (the HTTP library sluice-control's API uses),
 * plain HTTP on loopback, HTTPS with a bearer token elsewhere (conf_metrics.c refuses the
 * section otherwise). A scrape asks the agent for the text on the node's own control socket
 * ("counters", agent.c), exactly as `sluice-queue stats` does: the metrics thread touches no
 * shard state, and the shards keep writing their counters with no shared atomics (the agent
 * reads them relaxed, base/counter.h). It serves only while the agent answers.
 */
#ifndef SLUICE_AGENT_METRICS_H
#define SLUICE_AGENT_METRICS_H

#define AGENT_METRICS_FETCH_MS 5000   /* a scrape waits this long for the agent */

struct node_config;
struct agent_metrics;

/* Binds conf's [metrics] listen and starts the thread. 0 (also when [metrics] is absent: *m_r
 * NULL), or -errno, logged: the node runs on without the endpoint. */
int agent_metrics_start(const struct node_config *conf, struct agent_metrics **m_r);
/* Stops the thread and closes the listener. */
void agent_metrics_stop(struct agent_metrics **m);

#endif
