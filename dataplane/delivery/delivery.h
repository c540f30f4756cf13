/*
 * delivery.h - relay delivery in the shard that owns the message: the per-shard queue manager
 * (delivery_queue.c) and the outbound SMTP connections (delivery_conn.c), built on the pure
 * building blocks of this folder (client engine, reply parser, body encoder, DSNs, retry
 * schedule, routes, c-ares on the shard's ring).
 *
 * What happens to a message: delivery_shard_start registers the queue as the consumer of the
 * shard's spool (spool_set_consumer), which hands it every message once durable (after the fsync,
 * before the 250) with the envelope decoded from the record, and at start every message recovery
 * found not done; SMTP and delivery meet only there. The
 * queue groups its recipients by domain, one job per domain group; a job walks the domain's
 * route (fixed destinations from the configuration, or MX records) and runs one SMTP transaction
 * on a connection to the destination (reused, at most [delivery] concurrency per destination per
 * shard). Every remote verdict is journaled (SPOOL_EV_RCPT_DONE / RCPT_FAILED); when every
 * recipient is settled the message is DONE and the spool reclaims it. A deferred message is
 * retried on delivery_retry's schedule (journal DEFER), warned about after delay_warning, and
 * bounced at expiry. Failures get an RFC 3464 DSN to the envelope sender, injected as a new
 * message into this shard's spool, except for a null sender or a spam verdict.
 *
 * The verdict's action (enum policy_action): deliver; tag (delivered with X-Spam-Flag and
 * X-Spam-Status prepended); quarantine (held in the spool, journal HOLD, never delivered until
 * released; the quarantine role of a later issue takes it from there).
 *
 * The spool quota per domain is the spool's (spool_quota.c: where the queued octets are
 * counted); RCPT asks it.
 *
 * Crash safety: nothing here is the only copy of anything. A restart reloads every not-done
 * message from the spool index; a recipient whose 250 came just before the crash (its
 * RCPT_DONE not yet durable) is delivered again (RFC 5321 6.1 allows that).
 *
 * Everything here runs on the shard's thread, except delivery_ctl_* (the agent builds the
 * message and posts it; the shard applies it).
 */
#ifndef SLUICE_DELIVERY_H
#define SLUICE_DELIVERY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/histo.h"
#include "conf/node_config.h"
#include "shard/shard.h"
#include "spool/spool.h"

/* Sets the SHARD_OP_DELIVERY and SHARD_OP_DNS handlers (once, before the shards start). */
void delivery_setup(void);

/* After spool_open: sets up DNS, becomes the spool's consumer (which loads this shard's not-done
 * messages). 0 or -errno. */
int delivery_shard_start(struct shard *sh);
/* Once per loop turn: starts the attempts that became due. */
void delivery_shard_turn(struct shard *sh);
/* SIGTERM: start nothing new; idle connections QUIT; transactions in flight finish. */
void delivery_shard_stop(struct shard *sh);
/* True when no connection, lookup or DSN commit is left. */
bool delivery_shard_idle(struct shard *sh);
/* The grace period is over: cut every connection (the spool still has the messages). */
void delivery_shard_abort(struct shard *sh);
/* After the loop, before spool_close: stops consuming, frees everything. */
void delivery_shard_finish(struct shard *sh);

/* ---- Live counters (written by the shard, read by the agent while it runs) ---- */

struct delivery_counters {
	uint64_t rcpt_sent, rcpt_bounced, rcpt_deferred, rcpt_expired;  /* per recipient attempt */
	uint64_t msg_deferred;        /* messages put back for a retry */
	uint64_t dsn;                 /* DSNs made (bounces, delay warnings) */
	uint64_t connections;         /* outbound connections opened */
	struct histo attempt_time;    /* one delivery attempt: the job's start to its end */
};
/* A copy of the shard's delivery counters (all zero before delivery_shard_start). Any thread,
 * while the shard runs. */
void delivery_get_counters(const struct shard *sh, struct delivery_counters *out);

/* The queue per recipient domain, for the agent's "counters": each shard walks its messages
 * when the agent's message reaches it and fills its part; the agent merges the parts once
 * remaining is 0. A message counts once per domain it still has a recipient in (held ones
 * too: quarantine); oldest is its arrival (wall ns). */
struct delivery_domain_depth {
	char     domain[256];
	uint64_t messages, oldest_ns;
};
struct delivery_depth_part {
	struct delivery_domain_depth *v;   /* malloc'ed by the shard, freed by the agent */
	size_t                        n;
};
struct delivery_depth_req {
	_Atomic unsigned            remaining;
	struct delivery_depth_part *parts;   /* one per shard */
};
struct delivery_depth_msg {
	struct shard_msg           base;
	struct delivery_depth_req *req;
	unsigned                   idx;      /* the shard's part */
};
/* Builds the message (base.fn set). NULL on ENOMEM. */
struct delivery_depth_msg *delivery_depth_msg_new(struct delivery_depth_req *req, unsigned idx);

/* ---- Operator commands (the agent's control socket) ---- */

enum delivery_ctl_op {
	DELIVERY_CTL_FLUSH = 0,   /* retry now */
	DELIVERY_CTL_HOLD,
	DELIVERY_CTL_RELEASE,
	DELIVERY_CTL_DELETE,
	DELIVERY_CTL_BOUNCE,
	DELIVERY_CTL_COUNT
};
/* "flush", ... ; -1 for an unknown name. */
int delivery_ctl_op_parse(const char *name);

/* What the agent waits for: one per request, shared by the shards it was posted to. */
struct delivery_ctl_req {
	_Atomic unsigned remaining;   /* shards still to answer */
	_Atomic uint64_t count;       /* messages acted on */
};

/* Posted to a shard; freed by it. qid 0 and domain[0] == 0: every message of the shard. */
struct delivery_ctl_msg {
	struct shard_msg         base;
	enum delivery_ctl_op     op;
	spool_qid                qid;
	char                     domain[256];
	struct delivery_ctl_req *req;
};
/* Builds the message (base.fn set). NULL on ENOMEM. */
struct delivery_ctl_msg *delivery_ctl_msg_new(enum delivery_ctl_op op, spool_qid qid,
					      const char *domain, struct delivery_ctl_req *req);

#endif
