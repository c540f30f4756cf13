/*
 * control_publish.c - the outbox → KV publisher thread (control_publish.h). It joins the store
 * and sync libraries, so it lives here rather than in either.
 */
#include "control_publish.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/store.h"
#include "sync/kv.h"
#include "sync/sync_conn.h"

struct control_publish {
	struct store   *st;
	int             hub_port;
	pthread_t       thread;
	pthread_mutex_t lock;
	pthread_cond_t  cond;      /* signalled on a commit and on stop */
	bool            changed;   /* a commit since the thread last looked */
	bool            stopping;
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

/* Sleeps ms, or less on stop (and on a commit when wake_on_change). False: stopping. */
static bool publish_wait(struct control_publish *p, unsigned ms, bool wake_on_change)
{
	struct timespec until;
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&p->lock);
	while (!p->stopping && !(wake_on_change && p->changed))
		if (pthread_cond_timedwait(&p->cond, &p->lock, &until) == ETIMEDOUT)
			break;
	if (wake_on_change)
		p->changed = false;
	bool go_on = !p->stopping;
	pthread_mutex_unlock(&p->lock);
	return go_on;
}

/* After a failure: log it (once per kind of failure) and back off. */
static bool publish_failed(struct control_publish *p, const char *what, int rc)
{
	if (rc != p->last_error)
		fprintf(stderr, "sluice-control: publish: %s: %s (retrying)\n", what, strerror(-rc));
	p->last_error = rc;
	p->backoff_ms = control_publish_backoff(p->backoff_ms);
	return publish_wait(p, p->backoff_ms, false);
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
			if (!publish_wait(p, CONTROL_PUBLISH_IDLE_MS, true))
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
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&p->cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_mutex_init(&p->lock, NULL);
	/* SIGTERM and SIGINT are the API loop's: this thread and nats.c's (started from it) keep
	 * them blocked. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	rc = -pthread_create(&p->thread, NULL, publish_thread, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		snprintf(err, errlen, "publisher thread: %s", strerror(-rc));
		pthread_cond_destroy(&p->cond);
		pthread_mutex_destroy(&p->lock);
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
	pthread_mutex_lock(&p->lock);
	p->changed = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}

void control_publish_stop(struct control_publish **pub)
{
	struct control_publish *p = *pub;
	if (p == NULL)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	store_close(&p->st);
	free(p);
	*pub = NULL;
}
