/*
 * control_publish.c - the outbox → KV publisher thread (control_publish.h). It joins the store
 * and sync libraries, so it lives here rather than in either.
 */
#include "control_publish.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control_wait.h"
#include "store/store.h"
#include "sync/kv.h"
#include "sync/sync_conn.h"

struct control_publish {
	struct store   *st;
	int             hub_port;
	pthread_t       thread;
	struct control_wait wait;  /* woken on a commit and on stop */
	natsConnection *nc;
	struct kv_pub  *kv;
	unsigned        backoff_ms;
	int             last_error;   /* logged once until a publish succeeds */
};

unsigned control_publish_backoff(unsigned prev_ms)
{
	if (prev_ms < CONTROL_PUBLISH_BACKOFF_MIN_MS)
		return CONTROL_PUBLISH_BACKOFF_MIN_MS;
	if (prev_ms >= CONTROL_PUBLISH_BACKOFF_MAX_MS / 2)
		return CONTROL_PUBLISH_BACKOFF_MAX_MS;
	return prev_ms * 2;
}

/* After a failure: log it (once per kind of failure) and back off. */
static bool publish_failed(struct control_publish *p, const char *what, int rc)
{
	if (rc != p->last_error)
		fprintf(stderr, "sluice-control: publish: %s: %s (retrying)\n", what, strerror(-rc));
	p->last_error = rc;
	p->backoff_ms = control_publish_backoff(p->backoff_ms);
	return control_wait_for(&p->wait, p->backoff_ms, false);
}

/* Connected, with the bucket open. False: stopping. */
static bool publish_connect(struct control_publish *p)
{
	while (p->kv == NULL) {
		int rc = 0;
		if (p->nc == NULL)
			rc = sync_conn_open(p->hub_port, &p->nc);
		if (rc == 0)
			rc = kv_setup_hub(p->nc);
		if (rc == 0)
			rc = kv_pub_open(p->nc, &p->kv);
		if (rc < 0 && !publish_failed(p, "the hub's server", rc))
			return false;
	}
	return true;
}

/* Publishes the oldest row. 1: one was published, 0: the outbox is empty, -errno. */
static int publish_one(struct control_publish *p)
{
	struct store_outbox_row row;
	int rc = store_outbox_next(p->st, &row);
	if (rc <= 0)
		return rc;
	rc = kv_publish(p->kv, row.key, row.value, row.value ? strlen(row.value) : 0, NULL);
	if (rc == 0)
		rc = store_outbox_done(p->st, row.seq);
	store_outbox_row_clear(&row);
	return rc < 0 ? rc : 1;
}

static void *publish_thread(void *arg)
{
	struct control_publish *p = arg;
	while (publish_connect(p)) {
		int rc = publish_one(p);
		if (rc > 0) {
			p->backoff_ms = 0;
			p->last_error = 0;
		} else if (rc == 0) {
			if (!control_wait_for(&p->wait, CONTROL_PUBLISH_IDLE_MS, true))
				break;
		} else if (!publish_failed(p, "the oldest outbox row", rc)) {
			break;
		}
	}
	kv_pub_close(&p->kv);
	sync_conn_close(&p->nc);
	return NULL;
}

int control_publish_start(const char *db, int hub_port, struct control_publish **pub_r,
			  char *err, size_t errlen)
{
	struct control_publish *p = calloc(1, sizeof *p);
	if (p == NULL) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	int rc = store_open(db, &p->st, err, errlen);
	if (rc < 0) {
		free(p);
		return rc;
	}
	p->hub_port = hub_port;
	control_wait_init(&p->wait);
	rc = control_thread_start(&p->thread, publish_thread, p);
	if (rc < 0) {
		snprintf(err, errlen, "publisher thread: %s", strerror(-rc));
		control_wait_destroy(&p->wait);
		store_close(&p->st);
		free(p);
		return rc;
	}
	*pub_r = p;
	return 0;
}

void control_publish_wake(void *arg)
{
	struct control_publish *p = arg;
	control_wait_wake(&p->wait);
}

void control_publish_stop(struct control_publish **pub)
{
	struct control_publish *p = *pub;
	if (p == NULL)
		return;
	control_wait_stop(&p->wait);
	pthread_join(p->thread, NULL);
	control_wait_destroy(&p->wait);
	store_close(&p->st);
	free(p);
	*pub = NULL;
}
