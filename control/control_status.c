/*
 * control_status.c - the nodes' status reports into the store (control_status.h). It joins the
 * store and sync libraries, so it lives here beside control_publish.c.
 */
#include "control_status.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control_wait.h"
#include "store/store.h"
#include "sync/sync_conn.h"

struct control_status {
	struct store     *st;
	int               hub_port;
	pthread_t         thread;
	struct control_wait wait;        /* woken on stop */
	char              unknown[64];   /* the last unknown node told of, so it is told once */
};

/* One report: checked, then recorded. */
static void status_on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *arg)
{
	struct control_status *cs = arg;
	const char *subject = natsMsg_GetSubject(msg), *name, *sw;
	const char *data = natsMsg_GetData(msg);
	int len = natsMsg_GetDataLength(msg);
	char want[128];
	json_t *j = NULL, *v;
	int rc;

	if (len <= 0 || (unsigned)len > CONTROL_STATUS_MAX ||
	    (j = json_loadb(data, (size_t)len, 0, NULL)) == NULL)
		goto out;
	name = json_string_value(json_object_get(j, "name"));
	sw = json_string_value(json_object_get(j, "sluice_version"));
	v = json_object_get(j, "version");
	if (name == NULL || sw == NULL || !json_is_integer(v) || json_integer_value(v) < 0 ||
	    (size_t)snprintf(want, sizeof(want), "sluice.node.%s.status", name) >= sizeof(want) ||
	    strcmp(want, subject) != 0)
		goto out;   /* not a report, or one node speaking for another */
	rc = store_node_report(cs->st, name, sw, (uint64_t)json_integer_value(v));
	if (rc == -ENOENT && strcmp(cs->unknown, name) != 0) {
		fprintf(stderr, "sluice-control: status from node %s, which is not in the store: "
			"ignored\n", name);
		snprintf(cs->unknown, sizeof(cs->unknown), "%s", name);
	} else if (rc < 0 && rc != -ENOENT) {
		fprintf(stderr, "sluice-control: status from node %s: %s\n", name, strerror(-rc));
	}
out:
	json_decref(j);
	natsMsg_Destroy(msg);
}

static void *status_thread(void *arg)
{
	struct control_status *cs = arg;
	natsConnection *nc = NULL;
	natsSubscription *sub = NULL;
	int rc, last = 0;

	do {
		rc = sync_conn_open(cs->hub_port, &nc);
		if (rc == 0 && natsConnection_Subscribe(&sub, nc, CONTROL_STATUS_SUBJECT, status_on_msg,
							cs) != NATS_OK)
			rc = -EIO;
		if (rc == 0)
			break;
		if (rc != last)
			fprintf(stderr, "sluice-control: status: the hub's server: %s (retrying)\n",
				strerror(-rc));
		last = rc;
		sync_conn_close(&nc);
	} while (control_wait_for(&cs->wait, CONTROL_STATUS_RETRY_MS, false));
	while (sub != NULL && control_wait_for(&cs->wait, 60000, false))
		;
	if (sub != NULL) {
		/* A drain's completion waits for a callback in progress; Unsubscribe does not. */
		if (natsSubscription_Drain(sub) == NATS_OK)
			natsSubscription_WaitForDrainCompletion(sub, 5000);
		natsSubscription_Destroy(sub);
	}
	sync_conn_close(&nc);
	return NULL;
}

int control_status_start(const char *db, int hub_port, struct control_status **cs_r, char *err,
			 size_t errlen)
{
	struct control_status *cs = calloc(1, sizeof(*cs));
	int rc;

	if (cs == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	rc = store_open(db, &cs->st, err, errlen);
	if (rc < 0) {
		free(cs);
		return rc;
	}
	cs->hub_port = hub_port;
	control_wait_init(&cs->wait);
	rc = control_thread_start(&cs->thread, status_thread, cs);
	if (rc < 0) {
		snprintf(err, errlen, "status thread: %s", strerror(-rc));
		control_wait_destroy(&cs->wait);
		store_close(&cs->st);
		free(cs);
		return rc;
	}
	*cs_r = cs;
	return 0;
}

void control_status_stop(struct control_status **csp)
{
	struct control_status *cs = *csp;

	if (cs == NULL)
		return;
	control_wait_stop(&cs->wait);
	pthread_join(cs->thread, NULL);
	store_close(&cs->st);
	control_wait_destroy(&cs->wait);
	free(cs);
	*csp = NULL;
}
