/*
 * control_wait.h - how sluice-control's background threads (the publisher, the hub's
 * supervisor) sleep: until a timeout, a wake-up from another thread (a commit), or stop.
 */
#ifndef SLUICE_CONTROL_WAIT_H
#define SLUICE_CONTROL_WAIT_H

#include <pthread.h>
#include <stdbool.h>

struct control_wait {
	pthread_mutex_t lock;
	pthread_cond_t  cond;      /* on CLOCK_MONOTONIC */
	bool            woken;     /* a wake-up since the thread last looked */
	bool            stopping;
};

void control_wait_init(struct control_wait *w);
void control_wait_destroy(struct control_wait *w);
/* Sleeps ms, or less on stop (and on a wake-up when on_wake; the wake-up is then consumed).
 * False: stopping. */
bool control_wait_for(struct control_wait *w, unsigned ms, bool on_wake);
void control_wait_wake(struct control_wait *w);
void control_wait_stop(struct control_wait *w);

/* Creates a thread with SIGTERM and SIGINT blocked (they are the API loop's; nats.c's threads,
 * started from it, inherit the mask). 0 or -errno. */
int control_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);

#endif
