/*
 * conn.h - one TCP connection on the shard's io_uring ring: its fd, its output buffers, its TLS
 * through memory BIOs, its receive and send arming, its deadline, and the cancel-then-free of its
 * lifetime. Embedded in the SMTP server's session (smtp/) and the outbound delivery connection
 * (delivery/); the agent's sockets are meant to use it too.
 *
 * Shard thread only. io_uring user_data: shard_ud(SHARD_OP_CONN, conn | kind).
 *
 * I/O: one recv at a time, single-shot, from the shard's provided buffers (an owner that stops
 * arming stops reading: back-pressure without holding buffers); one send at a time, of `tx`.
 * The owner queues plaintext in `out`; conn_flush, when no send is in flight, moves it to `tx`
 * (encrypted in one SSL_write once TLS is up, so pipelined replies make one record) with what
 * the TLS engine wrote (handshake records), and sends `tx`. Nothing touches `tx` while its send
 * is in flight; a partial send leaves the rest for the next flush. A recv that finds no provided
 * buffer free (-ENOBUFS) is retried a tick later on a timer of its own.
 *
 * TLS: the conn moves ciphertext between the socket and the BIOs. Decrypting is the owner's call
 * (conn_tls_handshake, conn_tls_read) and not a callback, because only the owner knows whether
 * it can run more input now (the SMTP session's pipelining back-pressure).
 *
 * Lifetime: the owner ends the conn with conn_close (idempotent): no more operations are armed,
 * the timers stop and what is in flight is cancelled. The conn counts its operations in the ring;
 * once the last completion of a closing conn is in, it calls the owner's `quiet` hook, and the
 * owner (the one owner of the memory) calls conn_fini and frees its object, never inside a call
 * chain that may still hold it (shard_defer, or the delivery's turn). conn_busy says whether
 * anything is still in flight.
 */
#ifndef SLUICE_NET_CONN_H
#define SLUICE_NET_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <openssl/ssl.h>

#include "base/buf.h"
#include "base/timer.h"
#include "shard/shard.h"

struct conn;

/* What the conn tells its owner. Every hook may close the conn; the conn does nothing more with
 * it after a hook returns but count completions. */
struct conn_ops {
	/* Bytes came in. Without TLS, p and len are the bytes (valid during the call only). With a
	 * TLS session started, the ciphertext is already in the read BIO: p is NULL, len its size,
	 * and the owner decrypts when it is ready to. */
	void (*input)(struct conn *c, const uint8_t *p, size_t len);
	/* The stream ended: 0 (the peer closed) or -errno (ECONNRESET, ...). */
	void (*input_end)(struct conn *c, int err);
	/* A send completed (err 0: its bytes left tx, maybe not all) or failed (-errno). */
	void (*sent)(struct conn *c, int err);
	/* conn_connect's outcome: 0 or -errno. NULL for accepted sockets. */
	void (*connected)(struct conn *c, int err);
	/* The deadline (conn_deadline_in) passed. */
	void (*deadline)(struct conn *c);
	/* A tick after a recv found no free buffer: arm it again if input is still wanted. NULL:
	 * the conn re-arms it. */
	void (*recv_retry)(struct conn *c);
	/* A closing conn's last completion came in: the owner may conn_fini and free it now (not
	 * in this call's stack). NULL: the owner polls conn_busy. */
	void (*quiet)(struct conn *c);
};

enum conn_tls_role { CONN_TLS_SERVER, CONN_TLS_CLIENT };

struct conn {
	struct shard          *sh;
	const struct conn_ops *ops;
	int                    fd;               /* -1: none yet, or handed to the ring's close */
	uint8_t                inflight;         /* recv + send + connect in the ring */
	bool                   recv_armed, send_armed, connecting, connected;
	bool                   closing;
	bool                   tls_up;           /* handshake done: out is encrypted */
	struct buf             out;              /* plaintext queued by the owner */
	struct buf             tx;               /* wire bytes; pos: the next to send */
	SSL                   *ssl;              /* owns rbio and wbio */
	BIO                   *rbio, *wbio;
	struct timer           deadline;
	struct timer           retry;            /* -ENOBUFS: recv again at the next tick */
};

/* The SHARD_OP_CONN completion handler (once, before the shards start; any number of times). */
void conn_setup(void);

/* A zeroed or reused struct conn, before anything else: no fd, no buffers, no TLS. */
void conn_init(struct conn *c, struct shard *sh, const struct conn_ops *ops);
/* An accepted, connected socket (TCP_NODELAY set here). */
void conn_attach(struct conn *c, int fd);
/* Opens a socket and arms its connect (TCP_NODELAY set); ops->connected tells the outcome.
 * 0 or -errno (no socket then). */
int  conn_connect(struct conn *c, const struct sockaddr *sa, socklen_t salen);

/* Arms one recv unless one is armed, the conn is closing or not connected. */
void conn_recv(struct conn *c);
/* Queues plaintext for the next flush. 0 or -ENOMEM. */
int  conn_write(struct conn *c, const void *p, size_t len);
/* Stages and sends (see above) unless a send is in flight, the conn is closing or not
 * connected. 0, or -ENOMEM / -EIO (TLS refused the bytes): the owner closes. */
int  conn_flush(struct conn *c);
/* Bytes queued and not yet sent (out and tx). */
static inline size_t conn_pending(const struct conn *c)
{
	return buf_unread(&c->tx) + buf_unread(&c->out);
}
/* Frees empty buffers past a few KiB (an idle connection keeps no big buffer). */
void conn_shrink(struct conn *c);

/* The deadline: fires ops->deadline after ms (re-arming moves it). */
void conn_deadline_in(struct conn *c, uint64_t ms);
void conn_deadline_cancel(struct conn *c);

/* Starts TLS on the conn (memory BIOs; the handshake runs at conn_tls_handshake). A client names
 * host for SNI (not an IP literal) and, with verify, checks the certificate against it. 0 or
 * -ENOMEM (no TLS state is left). */
int  conn_tls_start(struct conn *c, SSL_CTX *ctx, enum conn_tls_role role, const char *host,
		    bool verify);
static inline bool conn_tls_handshaking(const struct conn *c) { return c->ssl != NULL && !c->tls_up; }
/* Runs the handshake on what came in; its records wait for the next flush. 1 done (tls_up),
 * 0 it wants more input, -EPROTO it failed (the reason is in OpenSSL's error queue: tls_errors). */
int  conn_tls_handshake(struct conn *c);
/* Decrypts into dst. > 0 bytes, 0 it wants more input, -ECONNRESET the peer closed TLS
 * (close_notify), -EPROTO an error (reason in OpenSSL's error queue). */
int  conn_tls_read(struct conn *c, void *dst, size_t cap);
/* What the handshake negotiated ("TLSv1.3", its cipher); only once tls_up. */
const char *conn_tls_version(const struct conn *c);
const char *conn_tls_cipher(const struct conn *c);
/* SSL_version(): TLS1_VERSION .. TLS1_3_VERSION. */
int  conn_tls_version_id(const struct conn *c);

/* Ends the conn (idempotent): no more arming, timers stopped, in-flight operations cancelled
 * (and the socket shut down under a send, so one to a peer that stopped reading comes back). */
void conn_close(struct conn *c);
static inline bool conn_busy(const struct conn *c) { return c->inflight != 0; }
/* Releases what the conn holds (the fd through the ring, TLS, buffers). Only once !conn_busy:
 * an invariant, it panics otherwise. */
void conn_fini(struct conn *c);

/* The owner of a conn embedded as `member` in a struct of `type`. */
#define CONN_OWNER(c, type, member) ((type *)(void *)((char *)(c) - offsetof(type, member)))

#endif
