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
#include <time.h>

#include "store/store.h"
#include "sync/sync_conn.h"

struct control_status {
	struct store     *st;
	int               hub_port;
	pthread_t         thread;
	pthread_mutex_t   lock;
	pthread_cond_t    cond;
	bool              stopping;
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

/* Sleeps ms or until stop. False: stopping. */
static bool status_wait(struct control_status *cs, unsigned ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&cs->lock);
	while (!cs->stopping)
		if (pthread_cond_timedwait(&cs->cond, &cs->lock, &until) == ETIMEDOUT)
			break;
	bool go_on = !cs->stopping;
	pthread_mutex_unlock(&cs->lock);
	return go_on;
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
	} while (status_wait(cs, CONTROL_STATUS_RETRY_MS));
	while (sub != NULL && status_wait(cs, 60000))
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
	pthread_condattr_t ca;
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
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cs->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&cs->lock, NULL);
	rc = -pthread_create(&cs->thread, NULL, status_thread, cs);
	if (rc < 0) {
		snprintf(err, errlen, "status thread: %s", strerror(-rc));
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
	pthread_mutex_lock(&cs->lock);
	cs->stopping = true;
	pthread_cond_signal(&cs->cond);
	pthread_mutex_unlock(&cs->lock);
	pthread_join(cs->thread, NULL);
	store_close(&cs->st);
	pthread_mutex_destroy(&cs->lock);
	pthread_cond_destroy(&cs->cond);
	free(cs);
	*csp = NULL;
}
