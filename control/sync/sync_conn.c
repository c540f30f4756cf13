/*
 * sync_conn.c - connecting to a local nats-server with nats.c, and its statuses as -errno.
 */
#include "sync_conn.h"

#include <errno.h>
#include <stdio.h>

int sync_conn_errno(natsStatus s)
{
	switch (s) {
	case NATS_OK: return 0;
	case NATS_TIMEOUT: return -ETIMEDOUT;
	case NATS_NOT_FOUND: return -ENOENT;
	case NATS_NO_MEMORY: return -ENOMEM;
	case NATS_INVALID_ARG: return -EINVAL;
	case NATS_NO_SERVER: return -ECONNREFUSED;
	case NATS_CONNECTION_CLOSED:
	case NATS_CONNECTION_DISCONNECTED:
	case NATS_STALE_CONNECTION: return -ENOTCONN;
	default: return -EIO;
	}
}

int sync_conn_open(int port, natsConnection **nc_r)
{
	char url[64];
	snprintf(url, sizeof url, "nats://127.0.0.1:%d", port);
	natsOptions *opts = NULL;
	natsStatus s = natsOptions_Create(&opts);
	if (s == NATS_OK)
		s = natsOptions_SetURL(opts, url);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(opts, SYNC_CONN_TIMEOUT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(opts, -1);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectWait(opts, SYNC_CONN_RECONNECT_MS);
	if (s == NATS_OK)
		s = natsConnection_Connect(nc_r, opts);
	natsOptions_Destroy(opts);
	return sync_conn_errno(s);
}

void sync_conn_close(natsConnection **nc)
{
	if (!*nc)
		return;
	natsConnection_Destroy(*nc);
	*nc = NULL;
}
