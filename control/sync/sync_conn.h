/*
 * sync_conn.h - the NATS client connection to a server on this host (the hub's or the node's
 * own leaf server, both on 127.0.0.1 without authentication: only local processes reach them),
 * and nats.c's status codes as -errno. Any thread.
 */
#ifndef SLUICE_SYNC_CONN_H
#define SLUICE_SYNC_CONN_H

#include <nats/nats.h>

#define SYNC_CONN_TIMEOUT_MS   2000    /* connect and JetStream API requests */
#define SYNC_CONN_RECONNECT_MS 250     /* between reconnect attempts; it retries forever */

/* Connects to nats://127.0.0.1:port. Returns 0 or -errno (-ECONNREFUSED: no server there). */
int sync_conn_open(int port, natsConnection **nc_r);
/* Closes and destroys the connection; *nc is set to NULL. */
void sync_conn_close(natsConnection **nc);

/* NATS_OK -> 0, NATS_TIMEOUT -> -ETIMEDOUT, NATS_NOT_FOUND -> -ENOENT, no server or closed ->
 * -ENOTCONN, NATS_NO_MEMORY -> -ENOMEM, bad arguments -> -EINVAL, anything else -> -EIO. */
int sync_conn_errno(natsStatus s);

#endif
