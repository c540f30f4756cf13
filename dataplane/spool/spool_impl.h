/*
 * spool_impl.h - the spool's internals, shared by its files and its unit test (not for other
 * modules: they use spool.h).
 *
 * spool.c owns the writer (one struct spool per shard, shard thread only); spool_index.c the
 * in-memory index of messages and their journal state (used by the writer and by the reader);
 * spool_scan.c the segment and journal scanners (read-only, any process) and the reader API.
 */
#ifndef SLUICE_SPOOL_IMPL_H
#define SLUICE_SPOOL_IMPL_H

#define XXH_STATIC_LINKING_ONLY
#include <sys/uio.h>
#include <xxhash.h>

#include "spool.h"
#include "spool_record.h"

#define SPOOL_QID_SHARD(q)  ((unsigned)((q) >> 56))
#define SPOOL_QID_SEG(q)    ((uint32_t)(((q) >> 32) & 0xffffffu))
#define SPOOL_QID_OFF(q)    ((uint64_t)((uint32_t)(q)) * 8u)
#define SPOOL_SEG_MAX       0xffffffu
/* Record offsets are stored / 8 in 32 bits: a segment holds at most 32 GiB of records. */
#define SPOOL_SEG_OFF_MAX   (UINT64_C(1) << 35)

static inline spool_qid spool_qid_make(unsigned shard, uint32_t segno, uint64_t off)
{
	return ((uint64_t)(shard & 0xff) << 56) | ((uint64_t)(segno & SPOOL_SEG_MAX) << 32) |
	       (off / 8);
}

/* ---- Directory helpers (spool_scan.c) ---- */

/* Numbers n of the files named <prefix><8 hex><suffix> in dfd, sorted ascending (malloc'd). */
int spool_dir_list(int dfd, const char *prefix, const char *suffix, uint32_t **nums_r,
		   size_t *n_r);
void spool_seg_name(char out[32], uint32_t segno);
void spool_journal_name(char out[32], uint32_t n);

/* ---- Segment scanner (spool_scan.c) ---- */

/* A damaged range of a segment: bytes that are not a valid record, with a valid record after
 * them (so not a torn tail). hdr_ok: the first record's header was intact (its lengths were
 * trusted, the payload failed its checksum); else the scanner searched forward for the next
 * record whose header and payload validate. */
struct spool_damage {
	uint64_t off, len;
	bool     hdr_ok;
};
#define SPOOL_DAMAGE_MAX 256   /* ranges remembered per scan; more are counted only */

struct spool_segscan {
	uint64_t file_size;
	uint64_t good_end;     /* end of the last valid record (where appending could resume) */
	uint64_t torn_bytes;   /* non-zero bytes after good_end that were not a valid record */
	uint64_t corrupt_off;  /* first damaged range's offset (if skipped) */
	bool     unresolved;   /* damage with only unsealed records after it (see valid_after) */
	uint64_t unresolved_off;
	uint32_t records;      /* valid records passed to fn */
	uint32_t skipped;      /* damaged ranges in the middle, skipped (resynchronized) */
	uint64_t damaged_bytes;                    /* their total length */
	uint32_t ndamage;                          /* of them, remembered in damage[] */
	struct spool_damage damage[SPOOL_DAMAGE_MAX];
};

/* Called for each valid record: payload = body || envelope, valid during the call. A non-zero
 * return stops the scan and is returned. */
typedef int spool_segscan_fn(void *arg, const struct spool_record_info *info, uint64_t off,
			     const uint8_t *payload);
/*
 * Walks the records of segment (shard, segno) open on fd, read-only. measure_tail: also count the
 * non-zero bytes after the last valid record (reads the preallocated tail). Returns 0, fn's
 * non-zero value, or -errno from reading.
 */
int spool_segscan(int fd, unsigned shard, uint32_t segno, bool measure_tail,
		  spool_segscan_fn *fn, void *arg, struct spool_segscan *r);

/* The same, searching past damage for records sealed with *key (spool_record.h); key NULL: no
 * search (damage whose header is unreadable then ends the scan, with r->unresolved set when
 * valid-looking records follow). */
int spool_segscan_sealed(int fd, unsigned shard, uint32_t segno, bool measure_tail,
			 const uint64_t *key, spool_segscan_fn *fn, void *arg,
			 struct spool_segscan *r);

/* The shard's seal key: the file <shard dir>/seal, 8 bytes of key and their XXH3-64 (both
 * little-endian), written once by the first spool_open. spool_seal_load: 0, -ENOENT, -EBADMSG,
 * -errno. */
#define SPOOL_SEAL_FILE     "seal"
#define SPOOL_SEAL_FILE_LEN 16
int spool_seal_load(int dfd, uint64_t *key_r);

typedef int spool_jscan_fn(void *arg, const struct spool_jrec *j);
/* Walks a journal file's records (same torn-tail rule). r->records counts valid ones. */
int spool_jscan(int fd, spool_jscan_fn *fn, void *arg, struct spool_segscan *r);

/* Reader helpers (spool_scan.c). spool_entry_build fills e from a valid record (free it with
 * spool_entry_free); spool_read_record reads and checks the record of qid (payload malloc'd:
 * body || envelope). 0, -ENOENT, -EBADMSG, -ENOMEM, -errno. */
int spool_entry_build(struct spool_entry *e, const struct spool_record_info *info,
		      const uint8_t *payload);
int spool_read_record(const char *dir, spool_qid qid, uint8_t **payload_r,
		      struct spool_record_info *info_r);

/* ---- Index of messages (spool_index.c) ---- */

enum {
	SPOOL_IF_DONE    = 1u << 0,
	SPOOL_IF_HELD    = 1u << 1,
	SPOOL_IF_DELETED = 1u << 2,
	SPOOL_IF_RECORD  = 1u << 3,   /* reader: the record itself was seen */
};

struct spool_seg;

/* ---- Queued octets per recipient domain (spool_quota.c) ---- */

struct spool_qdom {
	struct spool_qdom *next;
	uint64_t           bytes;     /* body octets of the charged messages for this domain */
	uint32_t           len;
	char               name[];
};

#define SPOOL_QUOTA_HASH 256u

/* A message's share of the accounting: the distinct domains of its recipients. */
struct spool_quota_ref {
	struct spool_qdom  *one;      /* the domain, when there is only one (no allocation) */
	struct spool_qdom **many;     /* n > 1: malloc'd */
	uint32_t            n;
	bool                charged;
	uint64_t            bytes;
};

/* Fills ref (uncharged) with the distinct domains of env's recipients, creating their entries
 * in tab. 0 or -ENOMEM (ref is then empty). */
int spool_quota_ref_build(struct spool_qdom **tab, const struct spool_envelope *env,
			  uint64_t bytes, struct spool_quota_ref *ref_r);
/* Adds the message's octets to each of its domains (once). */
void spool_quota_charge(struct spool_quota_ref *ref);
/* Takes them back if charged, and empties ref. */
void spool_quota_release(struct spool_quota_ref *ref);
/* Frees every domain entry of tab. */
void spool_quota_tab_free(struct spool_qdom **tab);

struct spool_ient {
	spool_qid         qid;        /* 0 = empty slot */
	struct spool_seg *seg;        /* writer: the segment holding the record */
	uint8_t          *rstate;     /* per-recipient enum spool_rcpt_state, NULL until an event names one */
	uint64_t          defer_until;
	uint32_t          nrcpt;      /* from the record (0 until it is seen) */
	uint32_t          rcap;       /* entries in rstate */
	uint32_t          flags;      /* SPOOL_IF_* */
	uint32_t          attempts;   /* delivery attempts that deferred (DEFER_INFO) */
	char             *last_reply; /* the last deferral's reply text (malloc'd), or NULL */
	struct spool_quota_ref quota; /* writer: charged from the durable commit to DONE */
};

struct spool_index {
	struct spool_ient *tab;
	uint32_t           cap;       /* power of two, or 0 */
	uint32_t           n;
};

/* Pointers returned are valid until the next put or del. */
struct spool_ient *spool_index_get(const struct spool_index *ix, spool_qid qid);
/* Finds or inserts (zeroed) qid; NULL on ENOMEM. */
struct spool_ient *spool_index_put(struct spool_index *ix, spool_qid qid);
void spool_index_del(struct spool_index *ix, spool_qid qid);
void spool_index_free(struct spool_index *ix);
/* Applies a journal event to an entry (idempotent, in order). 0, -EINVAL (bad event or index),
 * -ENOMEM. */
int spool_index_apply(struct spool_ient *e, const struct spool_jrec *j);
/* Counts of recipients done / failed. */
void spool_index_counts(const struct spool_ient *e, uint32_t *done_r, uint32_t *failed_r);
/* Appends the journal records that rebuild e's state to *out (grown); 0 or -ENOMEM. */
int spool_index_snapshot(const struct spool_ient *e, uint8_t **out, size_t *len, size_t *cap);

/* ---- The hand-off (spool_queue.c) ---- */

struct spool;
/* The spool's scratch of n recipient slices (grown, kept until close); NULL on ENOMEM. */
struct slice *spool_queue_rcpt_scratch(struct spool *sp, uint32_t n);
/* A committed message is durable (batch_finish, before its callback): decodes its envelope
 * (env_len bytes at envp, the ones the record holds) and hands it to the consumer, if any. */
void spool_queue_hand_over(struct spool *sp, spool_qid qid, const uint8_t *envp,
			   uint32_t env_len, uint64_t body_len);

/* ---- The writer (spool.c) ---- */

struct spool_chunk {
	struct spool_chunk *next;
	struct spool_msg   *msg;      /* for a streamed (spill) write in flight */
	uint32_t            cap, len;
	uint8_t             data[];
};

struct spool_seg {
	struct spool_seg *next, *prev;
	uint32_t segno;
	int      fd;                  /* -1 once closed */
	uint64_t off;                 /* next append offset */
	uint64_t alloc;               /* preallocated size */
	uint32_t nrec;                /* records indexed or in flight */
	uint32_t nlive;               /* of those, not done */
	uint32_t inflight;            /* batches (or streamed writes) using fd */
	bool     sealed, spill, journal;
	bool     pinned;              /* holds damage not yet copied aside: never reclaimed */
	bool     ev_wait;             /* done, waiting for ev_max to be durable to be reclaimed */
	uint64_t ev_max;              /* the highest accepted event number of its records */
};

struct spool_msg {
	XXH3_state_t        xs;       /* body || envelope checksum, first for its alignment */
	struct spool        *sp;
	struct spool_msg    *next;    /* pending list or batch list */
	struct spool_chunk  *head, *tail;
	uint64_t             size;
	/* spill: the body streams into a segment of its own */
	struct spool_seg    *spill;
	uint64_t             spill_off;   /* file offset of the next streamed byte */
	uint32_t             inflight;    /* streamed writes in flight */
	int                  err;         /* first streamed write error */
	bool                 aborted;
	/* commit */
	spool_done_fn       *done;
	void                *arg;
	uint8_t             *meta;        /* header (64) | envelope | padding */
	uint32_t             env_len, nrcpt;
	uint64_t             payload_sum, received_ns, commit_ns;
	spool_qid            qid;
	struct spool_seg    *seg;         /* where the record went */
	/* its accepted event (spool_msg_event): the caller's TLVs, and the number it got */
	uint8_t             *ev_tlv;
	uint32_t             ev_len;
	uint64_t             ev_seq;
	struct spool_quota_ref quota; /* built at commit, moved to the index entry when durable */
};

/* An event that rides the journal (spool_event_add), waiting for its number at the next batch. */
struct spool_evq {
	struct spool_evq *next;
	uint8_t           type;
	spool_qid         qid;
	uint32_t          rcpt;
	uint64_t          wall_ms;
	size_t            jmark;      /* offset of its marker in jpend (or in the batch's jbuf) */
	bool              marked;
	uint32_t          len;
	uint8_t           tlv[];
};

struct spool_wop {
	struct spool_batch *b;
	int                 fd;
	uint64_t            off, len;
	uint32_t            iov0, niov;
};

struct spool_batch {
	struct spool_msg  *msgs, **msgs_tail;
	uint32_t           nmsgs;
	struct iovec      *iov;
	uint32_t           niov, iov_cap;
	struct spool_wop  *wops;
	uint32_t           nwop, wop_cap;
	struct spool_seg **segs;       /* fsync targets (each once) */
	uint64_t          *seg_start;  /* their append offset before this batch */
	uint32_t           nsegs, segs_cap;
	uint8_t           *jbuf;       /* journal bytes written by this batch */
	size_t             jlen, jcap;
	uint64_t           jseq;       /* the journal records up to this one are in it */
	/* events: written (not synced) after the state's syncs, in the same chain (spool_event.h) */
	uint8_t           *evbuf;
	size_t             evlen, evcap;
	uint64_t           ev_first, ev_last, ev_start;   /* numbers given; file offset */
	struct spool_evq  *evq;        /* the journal events numbered in this batch */
	struct spool_wop   evwop;
	uint32_t           outstanding;
	int                err;
	uint64_t           start_ns;
};

enum spool_spare_state { SPOOL_SPARE_NONE, SPOOL_SPARE_OPENING, SPOOL_SPARE_PREPARING,
			 SPOOL_SPARE_READY, SPOOL_SPARE_FAILED };

struct spool {
	struct spool_conf  conf;
	bool               siblings;    /* other messages are on their way: worth waiting for */
	uint64_t           jseq;        /* journal records appended so far */
	uint64_t           jseq_durable;/* ... and of those, synced */
	char              *dir;        /* <dir>/shard-<id> */
	int                dfd;
	struct io_uring   *ring;
	uint8_t            ud_tag;
	uint32_t           sq_cap;     /* most SQEs one batch may use */

	struct spool_seg   segs;       /* list head (sentinel) of every live segment */
	struct spool_seg  *cur;        /* the segment being appended to, or NULL */
	struct spool_seg  *jcur;       /* the journal */
	uint32_t           next_segno, next_jno;
	uint64_t           journal_size;

	struct spool_index ix;
	struct spool_qdom *qtab[SPOOL_QUOTA_HASH];   /* queued octets per domain (spool_quota.c) */
	spool_consume_fn  *consume;   /* the hand-off (spool_set_consumer), or NULL */
	void              *consume_arg;
	struct slice      *handoff_rcpts;   /* scratch for the envelope decoded for it */
	uint32_t           handoff_cap;

	struct spool_msg  *pending, **pending_tail;
	uint32_t           npending;
	uint64_t           oldest_pending_ns;
	uint8_t           *jpend;      /* journal records waiting for the next batch */
	size_t             jpend_len, jpend_cap;
	bool               jneed_roll;
	uint64_t           jroll_fail_ns;  /* last failed journal roll (retried after a second) */
	struct spool_batch *batch;     /* the one in flight, or NULL */
	uint32_t           nfailing;   /* failed batches waiting for their NOP's CQE */
	uint32_t           stream_inflight;

	enum spool_spare_state spare_state;
	struct spool_seg  *spare;
	int                spare_err, spare_left;
	uint64_t           spare_fail_ns;
	char               spare_name[32];

	bool               timer_armed, closing;
	struct __kernel_timespec timer_ts;

	uint64_t           free_bytes, free_checked_ns;
	struct spool_stats st;
	uint64_t           seal_key;   /* seals every record header written (spool_record.h) */
	bool               have_seal;  /* else no record may be written (seal_ensure) */

	/* The event log (spool_event.h): the newest file, the numbers given, written (in the
	 * page cache, after their state was synced) and durable (the file synced since). */
	int                evfd;
	uint32_t           evno;
	uint64_t           evoff, evalloc;
	uint64_t           evseq, evseq_written, evseq_durable;
	uint64_t           ev_unsynced_ns;    /* when evseq_written last passed evseq_durable */
	uint64_t           ev_sync_target;    /* the sync in flight makes this one durable */
	uint64_t           ev_sync_ns;        /* the delay before a sync (conf.event_sync_us) */
	bool               ev_sync_inflight, ev_timer_armed, ev_timer_cancel;
	bool               ev_sync_failed;    /* the last one failed: no longer counted as busy */
	struct __kernel_timespec ev_timer_ts;
	uint32_t           ev_reclaim_wait;   /* segments with ev_wait set */
	uint64_t           ev_last_wall_ms;   /* recovery: the last event's time */
	struct spool_evq  *evq, **evq_tail;
	struct spool_regen *regen;     /* recovery: state past ev_base */
	size_t             nregen, regen_cap;
	uint64_t           ev_base;     /* recovery: state numbered past this is collected */
	uint32_t           ev_doubt_fileno;   /* recovery: the last batch's events on disk, */
	uint64_t          *ev_doubt_off;      /* numbered ev_base + 1 ..., their offsets and */
	uint32_t          *ev_doubt_len;      /* payload lengths in that file */
	size_t             ev_ndoubt, ev_doubt_cap;
	uint8_t           *ev_doubt_type;
	spool_qid         *ev_doubt_qid;
	uint64_t           ev_confirmed;      /* recovery: the journal's EVDURABLE */
	uint32_t          *ev_segs;           /* recovery: the segments there were at the start */
	size_t             ev_nsegs;
};

/* Recovery: a state change whose event number is past the last event on disk. */
struct spool_regen {
	uint64_t  seq;
	uint8_t   type;
	spool_qid qid;
	uint32_t  rcpt;
	uint8_t  *env;       /* ACCEPTED: a copy of the record's envelope (malloc'd) */
	uint32_t  env_len;
	uint64_t  size, received_ns;
};

#endif
