/*
 * shard.h - the shard: one thread pinned to one core, with its own io_uring ring, listeners,
 * provided receive buffers, timer wheel, jemalloc arena, spool and counters (after Seastar's
 * reactor and DPDK's l3fwd lcore loop). Shards share nothing mutable and talk only by messages.
 *
 * Every function here is called on the shard's own thread, except shard_post (any thread) and the
 * start/stop calls made by main.
 *
 * io_uring user_data: the top 8 bits name the operation (enum shard_op), the low 56 bits belong
 * to the operation's owner (usually a pointer to the object the completion is for: objects are
 * never freed while an operation of theirs is in flight).
 */
#ifndef SLUICE_SHARD_H
#define SLUICE_SHARD_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/histo.h"
#include "base/pool.h"
#include "base/spsc.h"
#include "base/timer.h"
#include "shard/snapshot.h"

struct spool;
struct spool_envelope;
struct domain_conf;
struct filter_shard;
struct shard;

enum shard_op {
	SHARD_OP_IGNORE = 0,   /* completions nobody waits for (close, cancel) */
	SHARD_OP_ACCEPT,       /* low bits: struct shard_listener * */
	SHARD_OP_CONN,         /* connection I/O (net/conn.c): SMTP sessions, delivery */
	SHARD_OP_TICK,         /* the timer wheel's tick */
	SHARD_OP_MSG,          /* a message from another thread: low bits struct shard_msg * */
	SHARD_OP_SPOOL,        /* spool writes and syncs (spool.c) */
	SHARD_OP_DNS,          /* c-ares sockets (delivery/) */
	SHARD_OP_COUNT
};

#define SHARD_UD_BITS 56
#define SHARD_UD_MASK ((UINT64_C(1) << SHARD_UD_BITS) - 1)

static inline uint64_t shard_ud(enum shard_op op, uint64_t low)
{
	return ((uint64_t)op << SHARD_UD_BITS) | (low & SHARD_UD_MASK);
}
static inline enum shard_op shard_ud_op(uint64_t ud) { return (enum shard_op)(ud >> SHARD_UD_BITS); }
static inline uint64_t shard_ud_low(uint64_t ud) { return ud & SHARD_UD_MASK; }

/* A completion handler: one per op, set before the shards start (the table is then const). */
typedef void shard_cqe_fn(struct shard *sh, const struct io_uring_cqe *cqe);
void shard_set_handler(enum shard_op op, shard_cqe_fn *fn);

/* Messages between threads ride IORING_OP_MSG_RING: the receiver's ring gets a CQE whose
 * user_data is shard_ud(SHARD_OP_MSG, msg). Ownership of the message moves with it; the receiver
 * calls msg->fn on its own thread, and fn frees the message. */
struct shard_msg;
typedef void shard_msg_fn(struct shard *sh, struct shard_msg *m);
struct shard_msg {
	shard_msg_fn *fn;
};

/* Per-shard counters, written only by the shard (base/counter.h: ctr_inc, ctr_add) and read by
 * the agent while the node runs (ctr_read; `sluice-queue stats` sums them). Array sizes are
 * fixed here so shard/ needs no other module's enums; each names its index below. */
#define SHARD_CTR_STATES   16   /* bit index of enum smtp_state */
#define SHARD_CTR_ACTIONS  8    /* enum policy_action */
#define SHARD_CTR_TLS_VERS 4    /* TLS 1.0, 1.1, 1.2, 1.3 */
struct shard_counters {
	uint64_t conn_accepted, conn_refused_pool, conn_refused_ip, conn_closed;
	uint64_t conn_by_role[2];
	uint64_t msg_accepted_by_role[2], msg_rejected, msg_tempfailed, bytes_accepted;
	uint64_t cmd_count[32], cmd_errors, proto_errors, tls_handshakes, tls_failures;
	uint64_t timeouts, recv_nobufs, events_dropped;
	uint64_t conn_refused_block, early_talkers;   /* ip_block at connect; talked before 220 */
	uint64_t sessions_in_state[SHARD_CTR_STATES];   /* gauge: sessions in each state now */
	uint64_t msg_by_action[SHARD_CTR_ACTIONS][2];   /* at the end of data, by MX role */
	uint64_t replies_4xx, replies_5xx;              /* every refusal (the reject log lines) */
	uint64_t tls_by_version[SHARD_CTR_TLS_VERS];    /* completed inbound handshakes */
	struct histo time_to_250[2];   /* end of data seen to the 250 sent (durable), by MX role */
	struct histo scan_time;        /* the content filter's time on a message, feed and end */
};

/*
 * Work deferred to the end of the current loop step, after the completion, timer or message
 * being handled has returned. It is the one safe place to free an object: a function deep in a
 * call chain may decide that its object is finished, but callers up the stack may still hold it
 * (the remote crash of a session freed by a failed TLS handshake while its recv handler was
 * still running). Deferred entries run in the order queued; an entry may queue others.
 */
struct shard_deferred;
typedef void shard_deferred_fn(struct shard *sh, struct shard_deferred *d);
struct shard_deferred {
	struct shard_deferred *next;
	shard_deferred_fn     *fn;
	bool                   queued;
};

/* One listening socket of this shard (net/listener.c). Each is its own allocation: the accept's
 * completions carry its address, so it lives until the last one (a reload closes listeners
 * while their accept is in flight). */
struct shard_listener {
	struct shard          *sh;
	struct shard_listener *next_closing;   /* closed, waiting for its accept's last CQE */
	int                    fd;
	unsigned               index;          /* into the current snapshot's listen array */
	bool                   armed;          /* a multishot accept is in flight */
	bool                   closing;
	struct sockaddr_storage addr;          /* what it is bound to, to match on reload */
	socklen_t              addrlen;
};

#define SHARD_BUF_SIZE  (16u * 1024u)   /* one provided receive buffer */
#define SHARD_BUF_COUNT 512u            /* per shard: 8 MiB, a power of two */
#define SHARD_BUF_GROUP 0

struct shard {
	unsigned               id;
	unsigned               cpu;          /* pinned to this CPU, or -1u */
	struct io_uring        ring;
	unsigned               ring_flags;   /* what the kernel accepted */
	uint64_t               now_ms;       /* CLOCK_MONOTONIC, sampled once per loop turn */
	struct timer_wheel     timers;
	struct node_config    *conf;         /* the snapshot this shard uses; ref held */
	struct shard_listener **listeners;      /* the open ones, by listen index */
	unsigned               nlisteners;
	struct shard_listener *closing_listeners;

	/* Provided receive buffers (IORING_REGISTER_PBUF_RING). */
	struct io_uring_buf_ring *br;
	uint8_t               *bufs;

	/* Scratch for one loop step, never holding state across turns: TLS plaintext
	 * (SHARD_BUF_SIZE), and decoded body bytes (2 x SHARD_BUF_SIZE: decoding can double). */
	uint8_t               *scratch;
	uint8_t               *decode;

	struct pool            sessions;     /* capped: conf->limits.max_sessions_per_shard */
	int                    bodies_in_flight; /* sessions reading a DATA or BDAT body */
	void                  *session_list; /* struct smtp_session list, for shutdown and reload */
	struct spool          *spool;
	struct filter_shard   *filter;
	struct spsc            events;       /* message events to the agent (shard_event.c) */
	unsigned               arena;        /* jemalloc arena index */

	struct shard_counters  ctr;
	bool                   stopping;     /* SIGTERM: draining */
	uint64_t               stop_deadline_ms;
	_Atomic bool           exited;
	pthread_t              thread;
	void                  *delivery;     /* delivery/ state (a later issue) */
	struct shard_deferred *deferred, **deferred_tail;   /* see shard_defer */
	uint64_t               events_durable;   /* the spool's last durable event (atomic; the
	                                          * agent's event sinks read up to it) */
};

/*
 * What the layers above plug into the loop (set once by main before any shard starts). Each hook
 * runs on the shard's thread.
 *   start:  after the ring is up: open the spool, arm listeners, ... Returns 0 or -errno.
 *   turn:   once per loop turn, right before the ring is submitted (the spool's group commit).
 *   stop:   SIGTERM: stop accepting and wind sessions down.
 *   idle:   true when nothing is left to finish (no sessions, nothing being written).
 *   abort:  the grace period is over: close whatever is left.
 *   finish: after the loop, before the ring goes: close the spool, free per-shard state.
 *   config: a new snapshot is in place (sh->conf); old is still valid during the call.
 * (The SMTP server and the relay queue meet in the shard's spool, not here: spool.h's
 * spool_set_consumer and spool_domain_over_quota.)
 */
struct shard_hooks {
	int  (*start)(struct shard *sh);
	void (*turn)(struct shard *sh);
	void (*stop)(struct shard *sh);
	bool (*idle)(struct shard *sh);
	void (*abort)(struct shard *sh);
	void (*finish)(struct shard *sh);
	void (*config)(struct shard *sh, struct node_config *old);
};
void shard_set_hooks(const struct shard_hooks *h);

/* Starts shard id's thread, which sets up its ring (a SINGLE_ISSUER ring must be created by the
 * thread that uses it), buffers and arena, then runs hooks.start, and only then returns: 0, or
 * -errno after the thread logged why. listen_fds[0..nlisten): one bound socket per snapshot
 * listen entry, in order, owned by the shard from here on (main binds them in order so
 * SO_REUSEPORT groups form). cpu: -1 for no pinning. */
int shard_start(struct shard *sh, unsigned id, int cpu, struct node_config *conf,
		const int *listen_fds, unsigned nlisten);
/* Asks the shard to drain and stop (any thread, through from_ring). */
int shard_request_stop(struct io_uring *from_ring, struct shard *sh);
void shard_join(struct shard *sh);
/* After shard_join and the last drain of its events: frees what is left of the shard. */
void shard_release(struct shard *sh);

/* Any thread: hands m to shard `to`. from_ring is the caller's own ring (every thread that sends
 * has one). Returns 0 or -errno (the message is still the caller's then). */
int shard_post(struct io_uring *from_ring, struct shard *to, struct shard_msg *m);

/* An SQE from the shard's ring; submits to make room when the SQ is full. Never NULL. */
struct io_uring_sqe *shard_sqe(struct shard *sh);

/* Provided buffers: the address of buffer bid, and giving it back to the kernel. */
static inline uint8_t *shard_buf(struct shard *sh, unsigned bid)
{
	return sh->bufs + (size_t)bid * SHARD_BUF_SIZE;
}
void shard_buf_recycle(struct shard *sh, unsigned bid);

/* Queues d to run fn at the end of this loop step (once, however often it is queued). */
void shard_defer(struct shard *sh, struct shard_deferred *d, shard_deferred_fn *fn);

/* Swaps in a new configuration snapshot at a safe point (between completions). Takes a ref. */
void shard_set_config(struct shard *sh, struct node_config *conf);

#endif
