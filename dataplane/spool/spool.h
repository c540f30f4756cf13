/*
 * spool.h - the durable per-shard spool: append-only segment files of message records, group
 * commit, a state journal, recovery, and a reader for the queue tool.
 *
 * One struct spool per shard, used only by that shard's thread (the reader API at the bottom is
 * for other processes: it opens the files read-only and never writes).
 *
 * Durability contract: spool_msg_commit's callback reports err == 0 only after the record's bytes
 * and every byte before it in the segment are on disk (fdatasync completed). Every message
 * committed in the same loop turn shares one fdatasync (group commit); a message committed while a
 * sync is in flight rides the next one. A failed write or sync fails every message in its batch
 * (-ENOSPC, -EIO, ...) and they are never reported durable; the segment is then sealed and a new
 * one started.
 *
 * Record layout on disk (little-endian; see spool_record.h): header | body | envelope, 8-byte
 * aligned; the header carries its own checksum (so its lengths can be trusted), a checksum of
 * body and envelope, and a seal keyed with the shard's secret (recovery searches past a damaged
 * record only for sealed ones). Records never span segments.
 */
#ifndef SLUICE_SPOOL_H
#define SLUICE_SPOOL_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

struct spool;
struct spool_msg;

/* Queue id: shard (8 bits) | segment number (24 bits) | record offset / 8 (32 bits).
 * Printed as 16 upper-case hex digits. */
typedef uint64_t spool_qid;
#define SPOOL_QID_STRLEN 16
void spool_qid_format(spool_qid qid, char out[SPOOL_QID_STRLEN + 1]);
int spool_qid_parse(const char *s, spool_qid *qid_r);

enum spool_role { SPOOL_ROLE_PRIMARY = 0, SPOOL_ROLE_FALLBACK = 1 };

/* What the session knew at the end of DATA. Strings are slices the spool copies into the record. */
struct spool_envelope {
	uint8_t       role;           /* enum spool_role: the MX role of the listener */
	uint8_t       body_type;      /* enum smtp_body_type */
	bool          smtputf8;
	bool          tls;
	struct slice  mail_from;      /* without brackets; empty for the null sender */
	uint32_t      nrcpt;
	const struct slice *rcpts;    /* nrcpt recipients, without brackets */
	struct slice  helo;
	struct slice  client_addr;    /* "192.0.2.1" or "2001:db8::1" */
	struct slice  client_name;    /* reverse name if known, else empty */
	struct slice  listener;       /* the local address:port the mail came to */
	struct slice  tls_info;       /* "TLSv1.3 TLS_AES_256_GCM_SHA384", empty without TLS */
	struct slice  session_id;     /* the log's session id */
	uint64_t      received_ns;    /* wall clock at end of data */
	/* The filter's verdict (content filtering issue): score in thousandths, action, rule names. */
	int32_t       score_milli;
	uint8_t       action;         /* 0 = deliver; see filter/verdict.h once it exists */
	struct slice  rules_hit;      /* comma-separated rule names */
	uint32_t      data_flags;     /* SMTP_DATA_F_* */
};

struct spool_conf {
	const char *dir;              /* per-shard directory is <dir>/shard-<id>/ */
	unsigned    shard_id;
	uint64_t    segment_size;     /* roll to a new segment past this (default 64 MiB) */
	uint64_t    spill_bytes;      /* bodies larger than this go to a segment of their own as they
	                               * stream in (default 1 MiB) */
	uint64_t    min_free_bytes;   /* below this free space, refuse new messages (default 64 MiB) */
	uint32_t    commit_delay_us;  /* extra wait to gather a bigger batch (default 0); only
	                               * taken while spool_set_siblings says more are coming */
	uint64_t   *events_durable;   /* if set: the spool stores there (atomically) the number of
	                               * its last durable event, for the agent (spool_event.h) */
	uint32_t    event_sync_us;    /* how long written events may wait for their own fdatasync
	                               * (default 50 ms): one sync covers many batches' events */
	unsigned    quota_shares;     /* spools sharing each domain's quota (the node's shards):
	                               * this one holds quota / quota_shares (0 counts as 1) */
};

/*
 * Opens (creating if needed) the shard's spool and recovers it: replays every segment and the
 * journal, discards a torn record at a segment's tail (truncating it away), and rebuilds the index
 * of messages not yet done. Submissions go on `ring`; every SQE the spool queues carries
 * user_data with ud_tag in its top 8 bits, and the shard hands each such CQE to
 * spool_handle_cqe. Returns 0 or -errno (with a log line naming the file); -EINVAL if the ring's
 * SQ has fewer than 16 entries (a batch's linked chain must fit in it whole).
 */
int spool_open(struct spool **sp_r, const struct spool_conf *conf, struct io_uring *ring,
	       uint8_t ud_tag);
/* Flushes and waits for everything in flight (blocking: shutdown only), then frees. The shard
 * should first drive its loop until !spool_busy(): CQEs of other ud_tags that this call reaps
 * while it waits are dropped (with a warning). */
void spool_close(struct spool **sp);

/* Starts a message. -ENOSPC when the disk is below min_free_bytes (say 452 4.3.1), -ENOMEM. */
int spool_msg_begin(struct spool *sp, struct spool_msg **m_r);
/* Appends body bytes (already decoded: canonical CR LF). 0, -ENOMEM, -ENOSPC, -EIO. */
int spool_msg_write(struct spool_msg *m, const void *p, size_t len);
uint64_t spool_msg_size(const struct spool_msg *m);

typedef void spool_done_fn(void *arg, spool_qid qid, int err);
/*
 * Seals the message with its envelope and queues it for the next group commit. The message
 * belongs to the spool from here on; done(arg, qid, err) is called exactly once from a later
 * spool_handle_cqe (never from inside this call): err == 0 means durable, else the message is
 * gone and the client must get a 4xx. Returns 0, or -errno with nothing queued and no callback
 * (the message is freed).
 */
int spool_msg_commit(struct spool_msg *m, const struct spool_envelope *env, spool_done_fn *done,
		     void *arg);
/* Drops a message that will not be committed (RSET, too big, client gone). */
void spool_msg_abort(struct spool_msg **m);

/* Whether other messages are being received right now (PostgreSQL's commit_siblings): the
 * commit delay is only worth taking when someone else will join the batch. Set each turn. */
void spool_set_siblings(struct spool *sp, bool busy);

/* The shard calls this once per loop turn, before it submits and waits: it starts the pending
 * batch's writes and its fdatasync if no sync is in flight. */
void spool_flush(struct spool *sp);
/* True while writes or syncs are in flight or queued (shutdown waits for false). */
bool spool_busy(const struct spool *sp);
void spool_handle_cqe(struct spool *sp, const struct io_uring_cqe *cqe);

/* The state journal: what happened to a message after it was spooled. Appended records ride the
 * next group commit; they are replayed on open. */
enum spool_event {
	SPOOL_EV_RCPT_DONE = 1,   /* arg: recipient index; delivered */
	SPOOL_EV_RCPT_FAILED,     /* arg: recipient index; permanently failed (bounced) */
	SPOOL_EV_DONE,            /* every recipient settled; the record may be reclaimed */
	SPOOL_EV_HOLD,            /* operator hold, or quarantine until the role exists */
	SPOOL_EV_RELEASE,
	SPOOL_EV_DELETE,          /* operator delete: done without delivery */
	SPOOL_EV_DEFER,           /* arg: next attempt, unix seconds */
};
int spool_journal_append(struct spool *sp, spool_qid qid, enum spool_event ev, uint64_t arg);
/* A deferral: DEFER (next attempt, unix seconds) and the details mailq shows, the attempt count
 * and the last reply's text (the remote server's words, or why no server was reached; NULL or
 * "" for none; cut to 256 printable characters). Same returns as spool_journal_append. */
int spool_journal_defer(struct spool *sp, spool_qid qid, uint64_t next_s, uint32_t attempts,
			const char *reply);
/* Journal records are numbered in append order: the number of the last one appended, and the
 * highest number known to be on disk (every record up to it is). A caller that must not act
 * before its records are durable remembers spool_journal_seq() and waits for the other. */
uint64_t spool_journal_seq(const struct spool *sp);
uint64_t spool_journal_durable_seq(const struct spool *sp);

/* ---- Events (spool_event.h: the format, the rule and the reader) ---- */

/* The accepted event of a message not committed yet: the caller's TLVs (SPOOL_ETLV_*, copied);
 * the spool adds the envelope and numbers it when the batch is built. Without it a message has
 * no accepted event. 0 or -ENOMEM. */
int spool_msg_event(struct spool_msg *m, const void *tlv, size_t len);
/*
 * An event about a message's state after it was spooled (enum spool_evtype), described by the
 * journal records appended just before it in this loop turn (spool_journal_append/_defer):
 * both ride the next batch; rcpt is the recipient's index or UINT32_MAX. tlv: the payload
 * (copied). 0 or -ENOMEM (the event is lost; the state is not).
 */
int spool_event_add(struct spool *sp, unsigned type, spool_qid qid, uint32_t rcpt,
		    const void *tlv, size_t len);
/* The number of the last durable event (any thread): synced, so the agent's sinks may read up
 * to it. Events are written once their state is durable and synced lazily (at most
 * conf.event_sync_us later), so this lags the 250s by up to that long. */
uint64_t spool_event_durable_seq(const struct spool *sp);

/* ---- Delivery's view of this shard's queue (spool_queue.c; the owning shard only) ---- */

/* One not-done message of this shard as the index knows it. */
struct spool_queue_ent {
	spool_qid       qid;
	bool            held;
	uint64_t        defer_until;   /* unix seconds of the last DEFER event, 0 if none */
	uint32_t        nrcpt;
	const uint8_t  *rstate;        /* per-recipient enum spool_rcpt_state, or NULL (all
	                                * queued); valid during the callback only */
	uint32_t        nrstate;
	uint32_t        attempts;      /* deferred attempts journaled (spool_journal_defer) */
	bool            recovered;     /* found at start (spool_set_consumer), not just committed */
};
typedef int spool_queue_fn(void *arg, const struct spool_queue_ent *e);
/* Walks the messages of this shard that are not done (after spool_open: the recovered ones and
 * every one committed since). A non-zero return from fn stops the walk and is returned. fn must
 * not append to the journal or commit (the index would move under the walk). */
int spool_queue_each(struct spool *sp, spool_queue_fn *fn, void *arg);
/* The index's state of one message (rstate as above); 0, or -ENOENT when it is done or unknown. */
int spool_queue_get(struct spool *sp, spool_qid qid, struct spool_queue_ent *e_r);

/* One record read back for delivery. */
struct spool_queue_msg {
	uint8_t              *payload;   /* malloc'd: body || envelope */
	const uint8_t        *body;
	size_t                body_len;
	struct spool_envelope env;       /* slices into payload; env.rcpts is rcpts below */
	struct slice         *rcpts;     /* malloc'd */
	uint64_t              received_ns;
};
/*
 * Reads and checks the record of qid (a message of this shard). Synchronous pread: the record
 * was written by this process, so it is usually in the page cache (XXX: a cold read of a large
 * message blocks the shard; an io_uring read would not). 0, -ENOENT (no such message or its
 * segment is gone), -EBADMSG (checksum), -ENOMEM, -errno.
 */
int spool_queue_read(struct spool *sp, spool_qid qid, struct spool_queue_msg *m_r);
void spool_queue_msg_free(struct spool_queue_msg *m);

/* ---- The hand-off: where SMTP's messages meet delivery (spool_queue.c) ---- */

/* One durable message for the consumer: its state in the index (all recipients queued and not
 * held for a fresh one), the envelope decoded from its record (slices valid during the call
 * only) and its body's octets. */
typedef void spool_consume_fn(void *arg, const struct spool_queue_ent *e,
			      const struct spool_envelope *env, uint64_t body_len);
/*
 * Registers the shard's consumer (delivery) and hands it every message recovery found not done
 * (e->recovered), read back from its record. From then on each committed message is handed to it
 * once, when durable: after its fsync, before its commit callback (so the queue has it before the
 * 250 goes out). fn may append to the journal and commit. Returns the number of recovered
 * messages whose record could not be read back (they stay in the spool, logged), or -ENOMEM when
 * not every one could be listed (those handed over still were).
 */
int spool_set_consumer(struct spool *sp, spool_consume_fn *fn, void *arg);

/* Whether this spool holds its share of a domain's quota already (RCPT: 451 4.3.1): the body
 * octets of its not-done messages with a recipient in the domain (counted once per message,
 * from the durable commit to DONE, recovered ones included) against quota / quota_shares.
 * domain: as in the recipients, compared case-insensitively. */
bool spool_domain_over_quota(const struct spool *sp, struct slice domain, uint64_t quota);
/* Those octets (tests, counters). */
uint64_t spool_domain_queued_bytes(const struct spool *sp, struct slice domain);

/* Upper bounds of the group commit latency histogram (begin of the batch to its last fsync),
 * in microseconds; a last bucket takes the rest. */
#define SPOOL_COMMIT_BUCKETS_US { 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, \
				  250000, 1000000 }
#define SPOOL_COMMIT_NBUCKETS 13
/* Written by the spool's shard only (base/counter.h), read by any thread with spool_get_stats
 * while the node runs. */
struct spool_stats {
	uint64_t messages_committed, bytes_committed, syncs, sync_ns_total;
	uint64_t batches_max, commit_errors, torn_discarded, recovered;
	uint64_t segments, queued;
	uint64_t commit_hist[SPOOL_COMMIT_NBUCKETS];   /* batches per latency bucket */
	/* Damaged ranges skipped at recovery (valid records after them were queued) and their
	 * bytes; each is logged and kept for sluice-queue salvage. */
	uint64_t damaged_ranges, damaged_bytes;
	bool     no_segment;   /* start-up found no room for a new segment (full disk) */
};
/* A copy, field by field (any thread). */
void spool_get_stats(const struct spool *sp, struct spool_stats *st);

/* ---- For the queue tool and recovery (read-only, any process) ---- */

enum spool_rcpt_state { SPOOL_RCPT_QUEUED = 0, SPOOL_RCPT_DONE = 1, SPOOL_RCPT_FAILED = 2 };

struct spool_entry {
	spool_qid    qid;
	uint64_t     body_len;
	uint64_t     received_ns;
	uint8_t      role;
	bool         done, held;
	uint32_t     nrcpt, rcpt_done, rcpt_failed;
	uint8_t     *rcpt_state;     /* nrcpt enum spool_rcpt_state values (malloc'd, may be NULL) */
	char        *mail_from;      /* NUL-terminated copies, freed by spool_entry_free */
	char       **rcpts;
	char        *message_id;     /* the Message-ID header's value, if any, else NULL */
	char        *client_addr, *helo, *session_id;
	int32_t      score_milli;
	uint8_t      action;
	uint64_t     defer_until;    /* unix seconds of the next attempt (journal DEFER), 0 if none */
	uint32_t     attempts;       /* deferred attempts (spool_journal_defer), 0 if none */
	char        *last_reply;     /* the last deferral's reply text, or NULL */
};
/* Frees the strings of an entry (spool_scan frees the entries it passes to fn after fn returns). */
void spool_entry_free(struct spool_entry *e);
typedef int spool_iter_fn(void *arg, const struct spool_entry *e);
/* Walks every valid record of every shard under dir, in order, with the journal applied.
 * Stops early if fn returns non-zero (and returns that). Torn tails are skipped, not modified. */
int spool_scan(const char *dir, spool_iter_fn *fn, void *arg);
/* Reads one message's body (malloc'd, *len_r) by queue id. 0, -ENOENT, -EBADMSG. */
int spool_read_body(const char *dir, spool_qid qid, uint8_t **body_r, size_t *len_r);

#endif
