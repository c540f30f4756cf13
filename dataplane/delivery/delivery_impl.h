/*
 * delivery_impl.h - what delivery_queue.c (messages, attempts, results, DSNs, operator commands)
 * and delivery_conn.c (routes, destinations, connections) share. Not for other modules.
 *
 * Ownership: a struct dmsg is the queue's; a struct djob (one domain group of one message, one
 * attempt) is made by the queue, run by the connection side, and handed back through
 * delivery_job_done, which frees it. A message is never freed while a job of it is alive
 * (dmsg.jobs), nor its body while a transaction reads it (dmsg.body_refs). Shard thread only.
 */
#ifndef SLUICE_DELIVERY_IMPL_H
#define SLUICE_DELIVERY_IMPL_H

#include "delivery/delivery.h"
#include "delivery/delivery_client.h"
#include "delivery/delivery_dns.h"
#include "delivery/delivery_retry.h"
#include "delivery/delivery_route.h"

struct dlink {
	struct dlink *next, *prev;
};

enum dmsg_state { DMSG_READY = 0, DMSG_RUNNING, DMSG_DEFERRED, DMSG_HELD, DMSG_NSTATES };

struct drcpt {
	char    *addr;
	uint8_t  state;          /* enum spool_rcpt_state */
	bool     busy;           /* in a job of the attempt running now */
	bool     dsn_due;        /* failed in this attempt: journaled after its DSN is committed */
	char     enh[16];
	char    *diag;           /* the last diagnostic (malloc'd), for DSNs and logs */
	char    *mta;            /* the host that gave it */
};

struct dmsg {
	struct dlink  link;      /* first: the list of its state */
	struct dmsg  *hnext;     /* the qid hash */
	spool_qid     qid;
	uint8_t       state;     /* enum dmsg_state */
	uint8_t       action;    /* enum policy_action */
	uint8_t       pending_op; /* DELIVERY_CTL_x + 1, asked while an attempt runs */
	bool          body_8bit, smtputf8, warned;
	int32_t       score_milli;
	char         *rules;
	char         *from;      /* "" for the null sender */
	uint64_t      arrival_ns;  /* wall */
	uint64_t      next_ms;     /* monotonic: the next attempt (DEFERRED) */
	uint64_t      size;        /* body octets */
	uint32_t      nrcpt;
	struct drcpt *rcpt;
	unsigned      attempts;
	unsigned      jobs;        /* alive */
	unsigned      dsn_pending; /* DSN commits in flight; DONE waits for them */
	bool          done_after_dsn;
	/* The body while transactions read it. */
	struct spool_queue_msg rec;
	unsigned      body_refs;
};

struct ddest;
struct dconn;

struct djob {
	struct djob           *next;        /* in a destination's wait queue */
	struct delivery_shard *ds;
	struct dmsg           *m;
	char                   domain[256];
	bool                   route_mx;
	uint8_t                tls;         /* enum domain_tls */
	bool                   tls_verify;
	unsigned               n;
	uint32_t              *ridx;        /* n indexes into m->rcpt */
	struct delivery_rcpt  *rc;          /* n results */
	struct delivery_client_msg cm;
	struct delivery_route  route;
	unsigned               pos;         /* the destination being tried */
	bool                   routed, dns_wait;
	char                   mta[DELIVERY_ROUTE_HOST_MAX + 8];
	char                  *hdr;         /* prepended header (tag), or NULL */
	size_t                 hdr_len;
	struct ddest          *dest;
	uint8_t                long_lines;  /* enum delivery_long_lines for its domain */
	uint64_t               started_ms;  /* shard clock when it was made (the attempt's duration) */
};

#define DELIVERY_HASH 16384u

struct delivery_shard {
	struct shard               *sh;
	struct delivery_dns        *dns;
	struct delivery_route_health health;
	uint64_t                    rnd;
	bool                        stopping, aborted;

	struct dmsg                *hash[DELIVERY_HASH];
	struct dlink                list[DMSG_NSTATES];
	uint32_t                    nmsgs;
	struct timer                retry_timer;

	struct ddest               *dests;
	struct dconn               *durable_waiters; /* ready, waiting for their journal */
	unsigned                    nconns;
	unsigned                    dsn_inflight;
	uint32_t                    rr;
	struct {                                 /* what the spool handed over at start */
		unsigned loaded, held, bad;
	}                           load;

	struct delivery_counters    ctr;         /* base/counter.h: read by the agent */
	/* Closed connections not yet freed, and destinations to wake: both handled at the next
	 * delivery_conn_turn (see delivery_conn.c's lifetime rule). */
	struct dconn               *dead;
	struct ddest               *kicks;
};

static inline struct delivery_shard *delivery_of(struct shard *sh)
{
	return (struct delivery_shard *)sh->delivery;
}

uint64_t delivery_rand(struct delivery_shard *ds);
/* The domain of a recipient address: after its last '@' ("" without one). */
struct slice delivery_addr_domain(const char *addr);

/* Queue side (delivery_queue.c). */
void delivery_job_done(struct djob *j);
/* Loads the message's body for a transaction (refcounted). 0 or -errno (the job defers). */
int delivery_msg_body_get(struct delivery_shard *ds, struct dmsg *m);
void delivery_msg_body_put(struct dmsg *m);

/* Connection side (delivery_conn.c). */
void delivery_conn_job_start(struct delivery_shard *ds, struct djob *j);
/* The connection layer's completion handler (net/conn.h), once before the shards start. */
void delivery_conn_setup(void);
void delivery_conn_stop(struct delivery_shard *ds);
void delivery_conn_turn(struct delivery_shard *ds);
void delivery_conn_abort(struct delivery_shard *ds);
void delivery_conn_free_all(struct delivery_shard *ds);

#endif
