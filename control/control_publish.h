/*
 * control_publish.h - the publisher: drains the store's outbox into the hub's KV bucket.
 *
 * One thread of its own, with its own store handle on the same database (WAL). It connects to
 * the hub's nats-server on 127.0.0.1 (retrying until it is there), makes sure the bucket exists,
 * then publishes every outbox row in seq order and removes a row only after the server's ack.
 * On a NATS error it backs off (CONTROL_PUBLISH_BACKOFF_MIN_MS doubling to _MAX_MS) and retries
 * the same row: a row is never dropped. When the outbox is empty it sleeps until the API
 * signals a commit (control_publish_wake) or CONTROL_PUBLISH_IDLE_MS passes.
 */
#ifndef SLUICE_CONTROL_PUBLISH_H
#define SLUICE_CONTROL_PUBLISH_H

#include <stddef.h>

#define CONTROL_PUBLISH_BACKOFF_MIN_MS 100u
#define CONTROL_PUBLISH_BACKOFF_MAX_MS 5000u
#define CONTROL_PUBLISH_IDLE_MS        1000u

struct control_publish;

/* Opens the store at db and starts the thread publishing to the hub's client port. 0, or
 * -errno (err says why). */
int control_publish_start(const char *db, int hub_port, struct control_publish **pub_r,
			  char *err, size_t errlen);
/* A change was committed: publish now. Any thread; arg is the struct control_publish. */
void control_publish_wake(void *arg);
/* Stops the thread (a publish in flight finishes or times out first) and frees it. */
void control_publish_stop(struct control_publish **pub);

/* The delay after a failure that followed a delay of prev_ms (0: the first failure). */
unsigned control_publish_backoff(unsigned prev_ms);

#endif
