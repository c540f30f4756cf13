/*
 * control_status.h - the nodes' status on the hub (control/wire/README.md, "Status"): a thread
 * subscribed to sluice.node.*.status on the hub's nats-server records each report in the store
 * (store_node_report: last_seen, the node's software version, its applied cluster version).
 *
 * One thread of its own (connecting, retrying each CONTROL_STATUS_RETRY_MS until the hub is
 * there; nats.c reconnects it after that) and its own store handle on the same database (WAL).
 * The reports arrive on nats.c's delivery thread. A report is checked before it is believed:
 * JSON, a "name" equal to the subject's, a "version" >= 0, a "sluice_version" string; a node
 * the store does not know is ignored (it is told once in the log).
 */
#ifndef SLUICE_CONTROL_STATUS_H
#define SLUICE_CONTROL_STATUS_H

#include <stddef.h>

#define CONTROL_STATUS_SUBJECT  "sluice.node.*.status"
#define CONTROL_STATUS_RETRY_MS 1000u
#define CONTROL_STATUS_MAX      4096u    /* a report longer than this is not one */

struct control_status;

/* Opens the store at db and starts the thread on the hub's client port. 0, or -errno (err). */
int control_status_start(const char *db, int hub_port, struct control_status **cs_r, char *err,
			 size_t errlen);
/* Stops the thread (no report is recorded after it returns) and frees it. */
void control_status_stop(struct control_status **cs);

#endif
