/*
 * spool.c - the spool writer: one per shard, shard thread only. It owns the shard's segment
 * files, the state journal, group commit on the shard's io_uring ring, and recovery at open.
 *
 * Flow: spool_msg_begin / _write buffer the body in a chain of chunks (4 KiB growing to 64 KiB,
 * never copied again); a body past spill_bytes streams into a segment of its own. spool_msg_commit
 * encodes the envelope and puts the message on the pending list. spool_flush (once per loop turn)
 * turns the pending list into one batch: each record gets its offset (and so its queue id), the
 * records go out as linked WRITEVs followed by one IORING_FSYNC_DATASYNC per file touched, all in
 * one IOSQE_IO_LINK chain, so the syncs run only after every write succeeded and a failure cancels
 * the rest (-ECANCELED): the batch fails as a whole. Only one batch is in flight; commits made
 * meanwhile wait and go together in the next. Done callbacks fire from spool_handle_cqe once the
 * whole chain completed. Errors found before anything is written (no segment could be created,
 * a streamed write failed) are reported through a NOP, so callbacks still come from a CQE.
 *
 * Files (in <dir>/shard-<id>/): seg-<8 hex>.dat, preallocated to segment_size, records appended;
 * journal-<8 hex>.log, preallocated, 32-byte records (spool_record.h); a journal that fills up is
 * replaced by a new one holding a snapshot of every open message's state (synchronously, XXX:
 * a few ms every few hundred thousand events), written and synced before the old one is deleted.
 * One spare segment is created ahead through the ring (OPENAT, then FALLOCATE -> FSYNC -> FSYNC of
 * the directory); if it is not ready at roll time one is created synchronously (XXX: a short
 * stall, rare with the spare).
 *
 * Recovery (spool_open): every segment is scanned; a torn tail is cut off; a damaged range in the
 * middle is skipped (spool_scan.c), logged with the segment and its offsets, counted
 * (spool_stats.damaged_*) and copied to <segment>.damaged-<offset> before the segment may be
 * reclaimed (pinned while the copy cannot be made). A start needs no new space: on a full disk it
 * goes on without a fresh segment (spool_msg_begin says -ENOSPC below min_free_bytes anyway) and,
 * when no new journal can be written, appends to the newest old one.
 *
 * Limits: a segment holds at most 32 GiB (the queue id's offset / 8 is 32 bits); segment numbers
 * are 24 bits (XXX: they wrap after 16M segments, restarting at 1); at most one batch in flight.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/counter.h"
#include "base/clock.h"
#include "base/log.h"
#include "spool_event.h"
#include "spool_impl.h"

#define SPOOL_DEF_SEGMENT   (UINT64_C(64) << 20)
#define SPOOL_DEF_SPILL     (UINT64_C(1) << 20)
#define SPOOL_DEF_MIN_FREE  (UINT64_C(64) << 20)
#define SPOOL_JOURNAL_SIZE  (UINT64_C(4) << 20)
#define SPOOL_CHUNK_MIN     4096u
#define SPOOL_CHUNK_MAX     65536u
#define SPOOL_STATFS_NS     100000000u   /* refresh the free-space figure at most every 100 ms */
#define SPOOL_IOV_MAX       1024u
#define SPOOL_EV_FILE_SIZE  (UINT64_C(4) << 20)    /* an event file's preallocation */
#define SPOOL_EV_REGEN_WIN  (UINT64_C(1) << 24)    /* numbers past the last event recovery
                                                    * takes from record headers (low 32 bits) */
#define SPOOL_EV_SYNC_US    50000u                 /* default conf.event_sync_us */

/* user_data: ud_tag (8) | kind (8) | pointer (48). */
enum { K_WRITE = 1, K_SYNC, K_NOP, K_STREAM, K_SPARE_OPEN, K_SPARE_PREP, K_TIMER, K_EVSYNC,
       K_EVTIMER, K_EVTIMER_RM };

static uint64_t ud_make(const struct spool *sp, unsigned kind, const void *ptr)
{
	uintptr_t p = (uintptr_t)ptr;

	if (p >> 48)
		panic("spool: pointer %p does not fit io_uring user_data", ptr);
	return ((uint64_t)sp->ud_tag << 56) | ((uint64_t)kind << 48) | p;
}

/* An SQE, submitting what is queued when the SQ is full. NULL only if the ring refuses to take
 * submissions at all (the caller fails the operation). */
static struct io_uring_sqe *get_sqe(struct spool *sp)
{
	for (int i = 0; i < 16; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(sp->ring);
		int rc;

		if (sqe)
			return sqe;
		rc = io_uring_submit(sp->ring);
		if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
			return NULL;
	}
	return NULL;
}

static void jpend_add(struct spool *sp, uint8_t ev, spool_qid qid, uint64_t arg);

/* ---- Segments ---- */

static void seg_link(struct spool *sp, struct spool_seg *seg)
{
	seg->next = &sp->segs;
	seg->prev = sp->segs.prev;
	sp->segs.prev->next = seg;
	sp->segs.prev = seg;
	ctr_inc(&sp->st.segments);
}

static void seg_unlink_list(struct spool *sp, struct spool_seg *seg)
{
	if (!seg->next)
		return;
	seg->prev->next = seg->next;
	seg->next->prev = seg->prev;
	seg->next = seg->prev = NULL;
	ctr_dec(&sp->st.segments);
}

/* Removes the file and every index entry of a segment, and frees it. */
static void seg_destroy(struct spool *sp, struct spool_seg *seg)
{
	char name[32];

	if (seg->fd >= 0)
		close(seg->fd);
	spool_seg_name(name, seg->segno);
	if (unlinkat(sp->dfd, name, 0) < 0 && errno != ENOENT)
		log_warn(-errno, "spool: %s/%s: unlink", sp->dir, name);
	if (seg->nrec) {
		spool_qid *del = NULL;
		uint32_t n = 0;

		del = malloc(sizeof(*del) * seg->nrec);
		for (uint32_t k = 0; del && k < sp->ix.cap && n < seg->nrec; k++)
			if (sp->ix.tab[k].qid && sp->ix.tab[k].seg == seg)
				del[n++] = sp->ix.tab[k].qid;
		for (uint32_t i = 0; i < n; i++)
			spool_index_del(&sp->ix, del[i]);
		if (!del) {   /* out of memory: the slow way */
			for (uint32_t k = 0; k < sp->ix.cap; ) {
				if (sp->ix.tab[k].qid && sp->ix.tab[k].seg == seg)
					spool_index_del(&sp->ix, sp->ix.tab[k].qid);
				else
					k++;
			}
		}
		free(del);
	}
	if (seg == sp->cur)
		sp->cur = NULL;
	if (seg->ev_wait)
		sp->ev_reclaim_wait--;
	seg_unlink_list(sp, seg);
	free(seg);
}

/* A sealed segment with nothing in flight closes its descriptor; one whose records are all done
 * (or that has none) is deleted, once the accepted events of its records are durable (recovery
 * would write them again from these records: spool_event.h). */
static void seg_settle(struct spool *sp, struct spool_seg *seg)
{
	if (seg->journal || !seg->sealed || seg->inflight)
		return;
	if (seg->fd >= 0) {
		close(seg->fd);
		seg->fd = -1;
	}
	if (seg->nlive == 0 && !seg->pinned && seg->ev_max > sp->evseq_durable) {
		if (!seg->ev_wait)
			sp->ev_reclaim_wait++;
		seg->ev_wait = true;   /* settled again when the events are synced */
		return;
	}
	if (seg->nlive == 0 && !seg->pinned) {
		if (seg->nrec)
			log_debug("spool: %s: reclaiming segment %08" PRIx32 " (%u done)", sp->dir,
				  seg->segno, seg->nrec);
		seg_destroy(sp, seg);
	}
}

static void seg_seal(struct spool *sp, struct spool_seg *seg)
{
	seg->sealed = true;
	if (seg == sp->cur)
		sp->cur = NULL;
	seg_settle(sp, seg);
}

static uint32_t segno_next(struct spool *sp)
{
	uint32_t n = sp->next_segno++;

	if (sp->next_segno > SPOOL_SEG_MAX)
		sp->next_segno = 1;   /* XXX: wraps after 16M segments */
	return n;
}

/* Creates a preallocated segment synchronously: open, fallocate, fsync, fsync(dir). */
static int seg_create_sync(struct spool *sp, uint32_t segno, uint64_t size, bool journal,
			   struct spool_seg **seg_r)
{
	char name[32];
	struct spool_seg *seg;
	int fd, rc = 0;

	if (journal)
		spool_journal_name(name, segno);
	else
		spool_seg_name(name, segno);
	fd = openat(sp->dfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0) {
		rc = -errno;
		log_warn(rc, "spool: %s/%s: create", sp->dir, name);
		return rc;
	}
	if (fallocate(fd, 0, 0, (off_t)size) < 0 && errno != EOPNOTSUPP)
		rc = -errno;
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	if (!rc && fsync(sp->dfd) < 0)
		rc = -errno;
	if (!rc && !(seg = calloc(1, sizeof(*seg))))
		rc = -ENOMEM;
	if (rc) {
		log_warn(rc, "spool: %s/%s: preallocate %" PRIu64 " bytes", sp->dir, name, size);
		close(fd);
		unlinkat(sp->dfd, name, 0);
		return rc;
	}
	seg->segno = segno;
	seg->fd = fd;
	seg->alloc = size;
	seg->journal = journal;
	if (!journal)
		seg_link(sp, seg);
	*seg_r = seg;
	return 0;
}

/* The spare: created ahead through the ring. */
static void spare_start(struct spool *sp)
{
	struct io_uring_sqe *sqe;

	if (sp->spare_state != SPOOL_SPARE_NONE || sp->closing)
		return;
	if (!(sqe = get_sqe(sp)))
		return;
	sp->spare = calloc(1, sizeof(*sp->spare));
	if (!sp->spare) {
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data64(sqe, ud_make(sp, K_SPARE_PREP, sp));
		sp->spare_err = -ENOMEM;
		sp->spare_left = 1;
		sp->spare_state = SPOOL_SPARE_PREPARING;
		return;
	}
	sp->spare->segno = segno_next(sp);
	sp->spare->fd = -1;
	sp->spare->alloc = sp->conf.segment_size;
	spool_seg_name(sp->spare_name, sp->spare->segno);
	io_uring_prep_openat(sqe, sp->dfd, sp->spare_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC,
			     0640);
	io_uring_sqe_set_data64(sqe, ud_make(sp, K_SPARE_OPEN, sp));
	sp->spare_err = 0;
	sp->spare_state = SPOOL_SPARE_OPENING;
}

static void spare_opened(struct spool *sp, int res)
{
	struct io_uring_sqe *sqe[3];

	if (res < 0) {
		log_warn(res, "spool: %s/%s: create spare segment", sp->dir, sp->spare_name);
		free(sp->spare);
		sp->spare = NULL;
		sp->spare_err = res;
		sp->spare_state = SPOOL_SPARE_FAILED;
		return;
	}
	sp->spare->fd = res;
	if (io_uring_sq_space_left(sp->ring) < 3)
		io_uring_submit(sp->ring);
	for (int i = 0; i < 3; i++)
		if (!(sqe[i] = io_uring_get_sqe(sp->ring))) {
			/* Cannot happen after the submit above unless the ring is broken. */
			panic("spool: no SQE for the spare segment");
		}
	io_uring_prep_fallocate(sqe[0], res, 0, 0, (off_t)sp->spare->alloc);
	io_uring_prep_fsync(sqe[1], res, 0);
	io_uring_prep_fsync(sqe[2], sp->dfd, 0);
	sqe[0]->flags |= IOSQE_IO_LINK;
	sqe[1]->flags |= IOSQE_IO_LINK;
	for (int i = 0; i < 3; i++)
		io_uring_sqe_set_data64(sqe[i], ud_make(sp, K_SPARE_PREP, sp));
	sp->spare_left = 3;
	sp->spare_state = SPOOL_SPARE_PREPARING;
}

static void spare_prepared(struct spool *sp, int res)
{
	/* A filesystem without fallocate still gives a usable (sparse) segment. */
	if (res < 0 && res != -EOPNOTSUPP && !sp->spare_err)
		sp->spare_err = res;
	if (--sp->spare_left)
		return;
	if (sp->spare_err) {
		if (sp->spare) {
			log_warn(sp->spare_err, "spool: %s/%s: preallocate spare segment", sp->dir,
				 sp->spare_name);
			if (sp->spare->fd >= 0)
				close(sp->spare->fd);
			unlinkat(sp->dfd, sp->spare_name, 0);
			free(sp->spare);
			sp->spare = NULL;
		}
		sp->spare_state = SPOOL_SPARE_FAILED;
		sp->spare_fail_ns = clock_mono_ns();
		return;
	}
	sp->spare_state = SPOOL_SPARE_READY;
}

/*
 * Loads the shard's seal key, creating it the first time (8 random bytes and their checksum,
 * written, synced and renamed into place). Every record header written is sealed with it; a
 * spool that has none (a full disk at its very first start) writes no record until it has.
 * 0 or -errno.
 */
static int seal_ensure(struct spool *sp)
{
	uint8_t b[SPOOL_SEAL_FILE_LEN];
	uint64_t k, sum;
	int rc, fd;

	if (sp->have_seal)
		return 0;
	rc = spool_seal_load(sp->dfd, &sp->seal_key);
	if (rc == 0) {
		sp->have_seal = true;
		return 0;
	}
	if (rc != -ENOENT)
		log_error(rc, "spool: %s/%s: unreadable; writing a new one (damaged records "
			  "sealed with the old key can no longer be searched past)", sp->dir,
			  SPOOL_SEAL_FILE);
	if (getrandom(&k, sizeof(k), 0) != (ssize_t)sizeof(k))
		return -errno;
	k = htole64(k);
	memcpy(b, &k, 8);
	sum = htole64(XXH3_64bits(b, 8));
	memcpy(b + 8, &sum, 8);
	fd = openat(sp->dfd, SPOOL_SEAL_FILE ".tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0640);
	if (fd < 0)
		return -errno;
	rc = write(fd, b, sizeof(b)) == (ssize_t)sizeof(b) ? 0 : (errno ? -errno : -ENOSPC);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (!rc && renameat(sp->dfd, SPOOL_SEAL_FILE ".tmp", sp->dfd, SPOOL_SEAL_FILE) < 0)
		rc = -errno;
	if (!rc && fsync(sp->dfd) < 0)
		rc = -errno;
	if (rc) {
		unlinkat(sp->dfd, SPOOL_SEAL_FILE ".tmp", 0);
		log_warn(rc, "spool: %s: cannot write the seal key; no message is accepted until "
			 "it can", sp->dir);
		return rc;
	}
	sp->seal_key = le64toh(k);
	sp->have_seal = true;
	return 0;
}

/* A fresh segment for appending or for a spilled body. -EAGAIN while the spare is on its way. */
static int seg_take(struct spool *sp, struct spool_seg **seg_r)
{
	struct spool_seg *seg;
	int rc;

	if ((rc = seal_ensure(sp)) < 0)
		return rc;

	if (sp->spare_state == SPOOL_SPARE_READY) {
		seg = sp->spare;
		sp->spare = NULL;
		sp->spare_state = SPOOL_SPARE_NONE;
		seg_link(sp, seg);
	} else if (sp->spare_state == SPOOL_SPARE_OPENING ||
		   sp->spare_state == SPOOL_SPARE_PREPARING) {
		return -EAGAIN;
	} else {
		/* XXX: synchronous open + fallocate + fsync(dir): only when the spare is missing. */
		sp->spare_state = SPOOL_SPARE_NONE;
		rc = seg_create_sync(sp, segno_next(sp), sp->conf.segment_size, false, &seg);
		if (rc < 0)
			return rc;
	}
	/* The journal remembers the highest segment number ever used, so queue ids stay unique
	 * even after every segment was reclaimed. It rides the batch of the segment's first
	 * record. */
	jpend_add(sp, SPOOL_JEV_HIGHWATER, 0, seg->segno);
	spare_start(sp);
	*seg_r = seg;
	return 0;
}

/* ---- The event log (spool_event.h) ---- */

/* Every event up to seq is on disk (synced). */
static void ev_publish(struct spool *sp, uint64_t seq)
{
	if (seq < sp->evseq_durable)
		return;   /* an older sync, finishing after a roll's */
	sp->evseq_durable = seq;
	if (seq >= sp->evseq_written) {
		sp->evseq_written = seq;
		sp->ev_unsynced_ns = 0;
	}
	if (sp->conf.events_durable)
		__atomic_store_n(sp->conf.events_durable, seq, __ATOMIC_RELEASE);
}

/* Makes every written event durable now, synchronously: before a journal roll drops their
 * markers, and before the event file rolls (recovery reads only the newest one). 0 or -errno. */
static int ev_sync_now(struct spool *sp)
{
	uint64_t seq = sp->evseq_written;

	if (seq <= sp->evseq_durable || sp->evfd < 0)
		return 0;
	if (fdatasync(sp->evfd) < 0)
		return -errno;
	ctr_inc(&sp->st.syncs);
	ev_publish(sp, seq);
	return 0;
}

uint64_t spool_event_durable_seq(const struct spool *sp)
{
	return __atomic_load_n(&sp->evseq_durable, __ATOMIC_ACQUIRE);
}

static int ev_grow(uint8_t **buf, size_t *cap, size_t len, size_t need)
{
	if (len + need <= *cap)
		return 0;
	size_t ncap = *cap ? *cap * 2 : 8192;

	while (ncap < len + need)
		ncap *= 2;
	uint8_t *n = realloc(*buf, ncap);

	if (!n)
		return -ENOMEM;
	*buf = n;
	*cap = ncap;
	return 0;
}

/* Writes all of p at off of fd (synchronously). 0 or -errno. */
static int pwrite_all(int fd, const void *p, size_t len, uint64_t off)
{
	for (size_t w = 0; w < len; ) {
		ssize_t n = pwrite(fd, (const uint8_t *)p + w, len - w, (off_t)(off + w));

		if (n < 0 && errno != EINTR)
			return -errno;
		if (n > 0)
			w += (size_t)n;
	}
	return 0;
}

/*
 * Starts a new event file (synchronously: at open, and when the current one is full; XXX: a
 * short stall, two fdatasyncs and a directory fsync every few thousand messages: a spare made
 * ahead through the ring, as for segments, would avoid it),
 * with room for need bytes and a FILE record saying the last number before it. The old file's
 * events are synced first and the new file's FILE record before it is named: recovery trusts
 * only the newest file with a FILE record, and a reader that moves on lets the agent remove the
 * old one. 0 or -errno (the old file stays current).
 */
static int ev_roll(struct spool *sp, size_t need, uint64_t last_before)
{
	uint64_t size = SPOOL_EV_FILE_SIZE;
	uint8_t hdr[SPOOL_EVENT_HDR];
	char name[32];
	int fd, rc;

	if ((rc = ev_sync_now(sp)) < 0)
		return rc;
	while (size < 2 * (need + sizeof(hdr)))
		size *= 2;
	spool_event_file_name(name, sp->evno + 1);
	fd = openat(sp->dfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	spool_event_encode(hdr, SPOOL_EVT_FILE, 0, sp->conf.shard_id, last_before, 0,
			   clock_wall_ns() / 1000000u, NULL, 0, NULL, 0);
	/* Preallocated by fallocate: unwritten extents read as zeros (the end of the records). The
	 * events are synced a few times a second, not per batch, so the extents each sync converts
	 * cost less than writing and flushing SPOOL_EV_FILE_SIZE of zeros at every roll. Without
	 * room (a full disk) or without fallocate, the file grows as it is written. */
	if (fallocate(fd, 0, 0, (off_t)size) < 0) {
		if (errno != ENOSPC && errno != EOPNOTSUPP)
			rc = -errno;
		else if (ftruncate(fd, 0) < 0)
			rc = -errno;
	}
	if (!rc)
		rc = pwrite_all(fd, hdr, sizeof(hdr), 0);
	if (!rc && fdatasync(fd) < 0)
		rc = -errno;
	if (!rc && fsync(sp->dfd) < 0)
		rc = -errno;
	if (rc) {
		close(fd);
		unlinkat(sp->dfd, name, 0);
		return rc;
	}
	if (sp->evfd >= 0)
		close(sp->evfd);
	sp->evfd = fd;
	sp->evno++;
	sp->evoff = sizeof(hdr);
	sp->evalloc = size;
	return 0;
}

int spool_msg_event(struct spool_msg *m, const void *tlv, size_t len)
{
	uint8_t *c = malloc(len ? len : 1);

	if (!c)
		return -ENOMEM;
	if (len)
		memcpy(c, tlv, len);
	free(m->ev_tlv);
	m->ev_tlv = c;
	m->ev_len = (uint32_t)len;
	return 0;
}

static uint64_t evmark_arg(const struct spool_evq *q, uint64_t seq)
{
	return SPOOL_EVMARK_SEQ(seq) | (uint64_t)q->type << 40 |
	       (uint64_t)(q->rcpt > 0xfffe ? 0xffff : q->rcpt) << 48;
}

int spool_event_add(struct spool *sp, unsigned type, spool_qid qid, uint32_t rcpt,
		    const void *tlv, size_t len)
{
	struct spool_evq *q = malloc(sizeof(*q) + len);

	if (!q)
		return -ENOMEM;
	*q = (struct spool_evq){ .type = (uint8_t)type, .qid = qid, .rcpt = rcpt,
				 .wall_ms = clock_wall_ns() / 1000000u, .len = (uint32_t)len };
	if (len)
		memcpy(q->tlv, tlv, len);
	/* Its marker follows the state records appended so far; numbered at the batch. */
	q->jmark = sp->jpend_len;
	jpend_add(sp, SPOOL_JEV_EVMARK, qid, evmark_arg(q, 0));
	q->marked = sp->jpend_len == q->jmark + SPOOL_JREC_SIZE;
	*sp->evq_tail = q;
	sp->evq_tail = &q->next;
	return 0;
}

/* Numbers the pending journal events (in order, after what was numbered before) and encodes
 * them into *buf; their markers in jbuf (NULL: none to patch) get the numbers. The list moves to
 * *taken_r. 0 or -ENOMEM (nothing numbered). */
static int ev_number_pending(struct spool *sp, uint8_t *jbuf, uint8_t **buf, size_t *len,
			     size_t *cap, struct spool_evq **taken_r)
{
	size_t need = 0;

	for (struct spool_evq *q = sp->evq; q; q = q->next)
		need += spool_event_size(q->len);
	if (ev_grow(buf, cap, *len, need) < 0)
		return -ENOMEM;
	for (struct spool_evq *q = sp->evq; q; q = q->next) {
		uint64_t seq = ++sp->evseq;

		if (q->marked && jbuf) {
			struct spool_jrec j = { .event = SPOOL_JEV_EVMARK, .qid = q->qid,
						.arg = evmark_arg(q, seq) };

			spool_record_jrec_encode(jbuf + q->jmark, &j);
		}
		*len += spool_event_encode(*buf + *len, q->type, 0, sp->conf.shard_id, seq, q->qid,
					   q->wall_ms, q->tlv, q->len, NULL, 0);
	}
	*taken_r = sp->evq;
	sp->evq = NULL;
	sp->evq_tail = &sp->evq;
	return 0;
}

static void evq_free(struct spool_evq *q)
{
	while (q) {
		struct spool_evq *n = q->next;

		free(q);
		q = n;
	}
}

/* ---- The journal ---- */

static void jpend_add(struct spool *sp, uint8_t ev, spool_qid qid, uint64_t arg)
{
	struct spool_jrec j = { .event = ev, .qid = qid, .arg = arg };

	sp->jseq++;
	if (sp->jpend_len + SPOOL_JREC_SIZE > sp->jpend_cap) {
		size_t ncap = sp->jpend_cap ? sp->jpend_cap * 2 : 4096;
		uint8_t *n = realloc(sp->jpend, ncap);

		if (!n) {
			/* The state is in the index: the next journal roll writes it. */
			sp->jneed_roll = true;
			return;
		}
		sp->jpend = n;
		sp->jpend_cap = ncap;
	}
	spool_record_jrec_encode(sp->jpend + sp->jpend_len, &j);
	sp->jpend_len += SPOOL_JREC_SIZE;
}

/*
 * Replaces the journal with a new one holding a snapshot of every message's state (synchronous:
 * called at open, and from spool_flush when no batch is in flight). The new file is synced, and
 * its name in the directory, before the old one is deleted; replay reads every journal in order,
 * so a crash in between only replays the same state twice.
 */
static int journal_roll(struct spool *sp)
{
	uint8_t *snap = NULL;
	size_t len = 0, cap = 0;
	struct spool_seg *j, *old = sp->jcur;
	uint64_t size = sp->journal_size;
	struct spool_jrec hw = { .event = SPOOL_JEV_HIGHWATER,
				 .arg = sp->next_segno > 1 ? sp->next_segno - 1 : SPOOL_SEG_MAX };
	int rc;

	/* The old journal's markers go: the events they could be written again from must be on
	 * disk first (the snapshot's EVDURABLE says they are). */
	if ((rc = ev_sync_now(sp)) < 0)
		return rc;
	snap = malloc(cap = 64 * SPOOL_JREC_SIZE);
	if (!snap)
		return -ENOMEM;
	spool_record_jrec_encode(snap, &hw);
	len = SPOOL_JREC_SIZE;
	{
		/* the markers of completed batches go with the old journal: say they were whole */
		struct spool_jrec ed = { .event = SPOOL_JEV_EVDURABLE, .arg = sp->evseq_durable };

		spool_record_jrec_encode(snap + len, &ed);
		len += SPOOL_JREC_SIZE;
	}
	for (uint32_t k = 0; k < sp->ix.cap && !rc; k++)
		if (sp->ix.tab[k].qid)
			rc = spool_index_snapshot(&sp->ix.tab[k], &snap, &len, &cap);
	if (rc) {
		free(snap);
		return rc;
	}
	/* The pending events' markers go with the snapshot (its state is theirs), numbered as
	 * ev_number_pending numbers them below; the events are written once it is synced. */
	{
		uint64_t seq = sp->evseq;

		for (struct spool_evq *q = sp->evq; q && !rc; q = q->next) {
			struct spool_jrec mk = { .event = SPOOL_JEV_EVMARK, .qid = q->qid,
						 .arg = evmark_arg(q, ++seq) };

			if (len + SPOOL_JREC_SIZE > cap) {
				uint8_t *n = realloc(snap, cap * 2);

				if (!n) {
					rc = -ENOMEM;
					break;
				}
				snap = n;
				cap *= 2;
			}
			spool_record_jrec_encode(snap + len, &mk);
			len += SPOOL_JREC_SIZE;
		}
	}
	if (rc) {
		free(snap);
		return rc;
	}
	while (size < 2 * len)
		size *= 2;
	rc = seg_create_sync(sp, sp->next_jno, size, true, &j);
	if (rc) {
		free(snap);
		return rc;
	}
	sp->next_jno++;
	for (size_t w = 0; w < len && !rc; ) {
		ssize_t n = pwrite(j->fd, snap + w, len - w, (off_t)w);

		if (n < 0 && errno != EINTR)
			rc = -errno;
		else if (n > 0)
			w += (size_t)n;
	}
	if (!rc && fdatasync(j->fd) < 0)
		rc = -errno;
	free(snap);
	if (rc) {
		char name[32];

		spool_journal_name(name, j->segno);
		log_warn(rc, "spool: %s/%s: write journal snapshot", sp->dir, name);
		close(j->fd);
		unlinkat(sp->dfd, name, 0);
		free(j);
		return rc;
	}
	j->off = len;
	sp->jcur = j;
	if (sp->evq) {
		uint8_t *eb = NULL;
		size_t el = 0, ec = 0;
		struct spool_evq *taken = NULL;
		uint64_t first = sp->evseq + 1;

		rc = ev_number_pending(sp, NULL, &eb, &el, &ec, &taken);
		if (!rc && el)
			spool_event_add_flags(eb, SPOOL_EVF_FIRST);
		if (!rc && (sp->evfd < 0 || sp->evoff + el > sp->evalloc))
			rc = ev_roll(sp, el, first - 1);
		if (!rc)
			rc = pwrite_all(sp->evfd, eb, el, sp->evoff);
		if (!rc && fdatasync(sp->evfd) < 0)
			rc = -errno;
		if (!rc) {
			sp->evoff += el;
			ev_publish(sp, sp->evseq);
		} else {
			/* XXX: their markers are durable: the next start writes them again */
			log_error(rc, "spool: %s: cannot write %" PRIu64 " events after a journal "
				  "roll", sp->dir, sp->evseq - first + 1);
		}
		rc = 0;
		free(eb);
		evq_free(taken);
	}
	if (old) {
		char name[32];

		spool_journal_name(name, old->segno);
		close(old->fd);
		if (unlinkat(sp->dfd, name, 0) < 0)
			log_warn(-errno, "spool: %s/%s: unlink old journal", sp->dir, name);
		free(old);
	}
	/* Everything pending is in the snapshot (its effects are in the index), synced. */
	sp->jpend_len = 0;
	sp->jneed_roll = false;
	sp->jseq_durable = sp->jseq;
	return 0;
}

int spool_journal_append(struct spool *sp, spool_qid qid, enum spool_event ev, uint64_t arg)
{
	struct spool_jrec j = { .event = (uint8_t)ev, .qid = qid, .arg = arg };
	struct spool_ient *e = spool_index_get(&sp->ix, qid);
	struct spool_seg *seg;
	bool was_done;
	int rc;

	if (!e)
		return -ENOENT;
	if (ev < SPOOL_EV_RCPT_DONE || ev > SPOOL_EV_DEFER)
		return -EINVAL;
	if ((ev == SPOOL_EV_RCPT_DONE || ev == SPOOL_EV_RCPT_FAILED) && arg >= e->nrcpt)
		return -EINVAL;
	was_done = e->flags & SPOOL_IF_DONE;
	if ((rc = spool_index_apply(e, &j)) < 0)
		return rc;
	jpend_add(sp, j.event, qid, arg);
	seg = e->seg;
	if (!was_done && (e->flags & SPOOL_IF_DONE)) {
		ctr_dec(&sp->st.queued);
		spool_quota_release(&e->quota);
		if (seg && seg->nlive)
			seg->nlive--;
		if (seg)
			seg_settle(sp, seg);   /* may delete the segment and e with it */
	}
	return 0;
}

int spool_journal_defer(struct spool *sp, spool_qid qid, uint64_t next_s, uint32_t attempts,
			const char *reply)
{
	size_t tl = reply ? strlen(reply) : 0, need = spool_record_jtext_size(tl);
	struct spool_ient *e;
	struct spool_jrec j = { .event = SPOOL_JEV_DEFER_INFO, .qid = qid };
	uint8_t *rec;
	int rc = spool_journal_append(sp, qid, SPOOL_EV_DEFER, next_s);

	if (rc < 0 || !(e = spool_index_get(&sp->ix, qid)))
		return rc;
	if (!(rec = malloc(need)))
		return 0;   /* the details are for the operator: DEFER itself is journaled */
	spool_record_jtext_encode(rec, qid, attempts, reply ? reply : "", tl);
	j.arg = 0;
	if (spool_record_jrec_decode(rec, SPOOL_JREC_SIZE, &j) == 0 &&
	    spool_record_jtext_check(&j, rec + SPOOL_JREC_SIZE, need - SPOOL_JREC_SIZE) == 0 &&
	    spool_index_apply(e, &j) == 0) {
		if (sp->jpend_len + need > sp->jpend_cap) {
			size_t ncap = (sp->jpend_cap ? sp->jpend_cap : 4096) * 2 + need;
			uint8_t *n = realloc(sp->jpend, ncap);

			if (!n) {
				sp->jneed_roll = true;   /* the index has it: the roll writes it */
				free(rec);
				return 0;
			}
			sp->jpend = n;
			sp->jpend_cap = ncap;
		}
		memcpy(sp->jpend + sp->jpend_len, rec, need);
		sp->jpend_len += need;
		sp->jseq++;
	}
	free(rec);
	return 0;
}

/* ---- Free space ---- */

static bool space_low(struct spool *sp)
{
	uint64_t now = clock_mono_ns();

	if (!sp->conf.min_free_bytes)
		return false;
	if (!sp->free_checked_ns || now - sp->free_checked_ns >= SPOOL_STATFS_NS) {
		struct statvfs sv;

		if (fstatvfs(sp->dfd, &sv) == 0)
			sp->free_bytes = (uint64_t)sv.f_bavail * sv.f_frsize;
		sp->free_checked_ns = now;
	}
	return sp->free_bytes < sp->conf.min_free_bytes;
}

/* ---- Messages ---- */

static void chunks_free(struct spool_chunk *c)
{
	while (c) {
		struct spool_chunk *n = c->next;

		free(c);
		c = n;
	}
}

static void msg_destroy(struct spool_msg *m)
{
	chunks_free(m->head);
	free(m->meta);
	free(m->ev_tlv);
	spool_quota_release(&m->quota);   /* empty unless it never became durable */
	if (m->spill) {
		m->spill->nrec = 0;
		m->spill->nlive = 0;
		m->spill->sealed = true;
		seg_settle(m->sp, m->spill);
	}
	free(m);
}

int spool_msg_begin(struct spool *sp, struct spool_msg **m_r)
{
	struct spool_msg *m;

	if (space_low(sp))
		return -ENOSPC;
	m = aligned_alloc(64, (sizeof(*m) + 63) & ~(size_t)63);
	if (!m)
		return -ENOMEM;
	memset(m, 0, sizeof(*m));
	XXH3_64bits_reset(&m->xs);
	m->sp = sp;
	*m_r = m;
	return 0;
}

uint64_t spool_msg_size(const struct spool_msg *m)
{
	return m->size;
}

/* Writes a full chunk of a spilled body at its place in the spill segment. */
static void stream_chunk(struct spool_msg *m, struct spool_chunk *c)
{
	struct spool *sp = m->sp;
	struct io_uring_sqe *sqe = get_sqe(sp);

	if (!sqe) {
		if (!m->err)
			m->err = -EBUSY;
		free(c);
		return;
	}
	c->msg = m;
	c->next = NULL;
	io_uring_prep_write(sqe, m->spill->fd, c->data, c->len, m->spill_off);
	io_uring_sqe_set_data64(sqe, ud_make(sp, K_STREAM, c));
	m->spill_off += c->len;
	m->inflight++;
	sp->stream_inflight++;
}

/* Streams every full chunk (all but a partly filled tail) of a spilled message. */
static void stream_full_chunks(struct spool_msg *m)
{
	while (m->head && m->head->len == m->head->cap) {
		struct spool_chunk *c = m->head;

		m->head = c->next;
		if (!m->head)
			m->tail = NULL;
		stream_chunk(m, c);
	}
}

static int spill_start(struct spool_msg *m)
{
	struct spool_seg *seg;
	int rc = seg_take(m->sp, &seg);

	if (rc == -EAGAIN)
		return 0;   /* the spare is on its way: keep buffering, try again on the next write */
	if (rc < 0)
		return rc;
	seg->spill = true;
	m->spill = seg;
	m->qid = spool_qid_make(m->sp->conf.shard_id, seg->segno, 0);
	m->spill_off = SPOOL_RECORD_HDR_SIZE;
	stream_full_chunks(m);
	return 0;
}

int spool_msg_write(struct spool_msg *m, const void *p, size_t len)
{
	const uint8_t *s = p;

	if (m->err)
		return m->err;
	XXH3_64bits_update(&m->xs, p, len);
	m->size += len;
	while (len) {
		struct spool_chunk *c = m->tail;
		size_t n;

		if (!c || c->len == c->cap) {
			uint32_t cap = !c ? SPOOL_CHUNK_MIN :
				       (c->cap >= SPOOL_CHUNK_MAX / 2 ? SPOOL_CHUNK_MAX : c->cap * 2);

			if (m->spill)
				cap = SPOOL_CHUNK_MAX;
			c = malloc(sizeof(*c) + cap);
			if (!c)
				return m->err = -ENOMEM;
			c->next = NULL;
			c->msg = NULL;
			c->cap = cap;
			c->len = 0;
			if (m->tail)
				m->tail->next = c;
			else
				m->head = c;
			m->tail = c;
		}
		n = c->cap - c->len < len ? c->cap - c->len : len;
		memcpy(c->data + c->len, s, n);
		c->len += (uint32_t)n;
		s += n;
		len -= n;
		if (m->spill && c->len == c->cap)
			stream_full_chunks(m);
	}
	if (!m->spill && m->size > m->sp->conf.spill_bytes) {
		int rc = spill_start(m);

		if (rc < 0)
			m->err = rc;
	}
	return m->err;
}

void spool_msg_abort(struct spool_msg **mp)
{
	struct spool_msg *m = *mp;

	if (!m)
		return;
	*mp = NULL;
	if (m->inflight) {
		/* Streamed writes still point into chunks: the last completion frees it. */
		chunks_free(m->head);
		m->head = m->tail = NULL;
		m->aborted = true;
		return;
	}
	msg_destroy(m);
}

int spool_msg_commit(struct spool_msg *m, const struct spool_envelope *env, spool_done_fn *done,
		     void *arg)
{
	struct spool *sp = m->sp;
	size_t env_len = spool_record_env_size(env);
	uint64_t rec_len, pad;
	int rc = m->err;

	if (!rc && space_low(sp))
		rc = -ENOSPC;
	if (!rc && (env_len > SPOOL_RECORD_ENV_MAX || m->size > SPOOL_RECORD_BODY_MAX))
		rc = -EFBIG;
	rec_len = spool_record_align(SPOOL_RECORD_HDR_SIZE + m->size + env_len);
	pad = rec_len - SPOOL_RECORD_HDR_SIZE - m->size - env_len;
	if (!rc && !(m->meta = calloc(1, SPOOL_RECORD_HDR_SIZE + env_len + pad)))
		rc = -ENOMEM;
	if (!rc)
		rc = spool_quota_ref_build(sp->qtab, env, m->size, &m->quota);
	if (rc) {
		spool_msg_abort(&m);
		return rc;
	}
	spool_record_env_encode(env, m->meta + SPOOL_RECORD_HDR_SIZE);
	XXH3_64bits_update(&m->xs, m->meta + SPOOL_RECORD_HDR_SIZE, env_len);
	m->payload_sum = XXH3_64bits_digest(&m->xs);
	m->env_len = (uint32_t)env_len;
	m->nrcpt = env->nrcpt;
	m->received_ns = env->received_ns ? env->received_ns : clock_wall_ns();
	m->done = done;
	m->arg = arg;
	m->commit_ns = clock_mono_ns();
	m->next = NULL;
	if (!sp->pending)
		sp->oldest_pending_ns = m->commit_ns;
	*sp->pending_tail = m;
	sp->pending_tail = &m->next;
	sp->npending++;
	return 0;
}

/* ---- Batches ---- */

static void batch_free(struct spool_batch *b)
{
	free(b->iov);
	free(b->wops);
	free(b->segs);
	free(b->seg_start);
	free(b->jbuf);
	free(b->evbuf);
	evq_free(b->evq);
	free(b);
}

static int batch_add_seg(struct spool_batch *b, struct spool_seg *seg)
{
	for (uint32_t i = 0; i < b->nsegs; i++)
		if (b->segs[i] == seg)
			return 0;
	if (b->nsegs == b->segs_cap) {
		uint32_t ncap = b->segs_cap ? b->segs_cap * 2 : 8;
		struct spool_seg **ns = realloc(b->segs, ncap * sizeof(*ns));
		uint64_t *nst;

		if (!ns)
			return -ENOMEM;
		b->segs = ns;
		if (!(nst = realloc(b->seg_start, ncap * sizeof(*nst))))
			return -ENOMEM;
		b->seg_start = nst;
		b->segs_cap = ncap;
	}
	b->segs[b->nsegs] = seg;
	b->seg_start[b->nsegs] = seg->off;
	b->nsegs++;
	seg->inflight++;
	return 0;
}

/* Adds one buffer written at off of fd, extending the last write when it is contiguous. */
static int batch_add_iov(struct spool_batch *b, int fd, uint64_t off, void *base, size_t len)
{
	struct spool_wop *w = b->nwop ? &b->wops[b->nwop - 1] : NULL;

	if (!len)
		return 0;
	if (b->niov == b->iov_cap) {
		uint32_t ncap = b->iov_cap ? b->iov_cap * 2 : 64;
		struct iovec *ni = realloc(b->iov, ncap * sizeof(*ni));

		if (!ni)
			return -ENOMEM;
		b->iov = ni;
		b->iov_cap = ncap;
	}
	if (!w || w->fd != fd || w->off + w->len != off || w->niov >= SPOOL_IOV_MAX) {
		if (b->nwop == b->wop_cap) {
			uint32_t ncap = b->wop_cap ? b->wop_cap * 2 : 16;
			struct spool_wop *nw = realloc(b->wops, ncap * sizeof(*nw));

			if (!nw)
				return -ENOMEM;
			b->wops = nw;
			b->wop_cap = ncap;
		}
		w = &b->wops[b->nwop++];
		*w = (struct spool_wop){ .fd = fd, .off = off, .iov0 = b->niov };
	}
	b->iov[b->niov++] = (struct iovec){ base, len };
	w->niov++;
	w->len += len;
	return 0;
}

static uint32_t msg_nchunks(const struct spool_msg *m)
{
	uint32_t n = 0;

	for (const struct spool_chunk *c = m->head; c; c = c->next)
		n++;
	return n;
}

/*
 * Places m in batch b: gives it its offset and queue id (rolling to a new segment if it does not
 * fit) and adds its writes. 0, -EAGAIN (wait for the spare; m untouched), -errno (m untouched,
 * fail it).
 */
static int batch_place(struct spool *sp, struct spool_batch *b, struct spool_msg *m,
		       bool *rolled)
{
	uint64_t rec_len = spool_record_align(SPOOL_RECORD_HDR_SIZE + m->size + m->env_len);
	uint64_t tail_len = rec_len - SPOOL_RECORD_HDR_SIZE - m->size;   /* envelope + pad */
	struct spool_seg *seg;
	uint64_t off, pos;
	int rc;

	if ((rc = seal_ensure(sp)) < 0)
		return rc;
	if (m->spill) {
		seg = m->spill;
		off = 0;
	} else {
		seg = sp->cur;
		if (!seg || (seg->off > 0 && (seg->off + rec_len > seg->alloc ||
					      seg->off + rec_len > SPOOL_SEG_OFF_MAX))) {
			if (*rolled)
				return -EAGAIN;   /* one roll per batch keeps the SQE count bounded */
			if ((rc = seg_take(sp, &seg)) < 0)
				return rc;
			if (sp->cur)
				seg_seal(sp, sp->cur);
			sp->cur = seg;
			*rolled = true;
		}
		off = seg->off;
		m->qid = spool_qid_make(sp->conf.shard_id, seg->segno, off);
	}
	if ((rc = batch_add_seg(b, seg)) < 0)
		return rc;
	spool_record_hdr_encode(m->meta, m->qid, m->spill ? SPOOL_RECORD_F_SPILL : 0, m->size,
				m->env_len, m->received_ns, m->payload_sum);
	if (m->ev_tlv) {
		/* Its accepted event: numbered in the order the records are written (spool_event.h). */
		uint8_t sz[8];
		size_t need = spool_event_size(m->ev_len + 6 + m->env_len + 6 + 8);
		uint8_t *tail;

		if (ev_grow(&b->evbuf, &b->evcap, b->evlen, need + 14) < 0)
			panic("spool: out of memory building a batch");   /* XXX: as below */
		m->ev_seq = ++sp->evseq;
		if (!b->ev_first)
			b->ev_first = m->ev_seq;
		for (int i = 0; i < 8; i++)
			sz[i] = (uint8_t)(m->size >> (8 * i));
		/* payload: the caller's TLVs || SIZE || ENV (the record's own envelope bytes) */
		tail = malloc(6 + 8 + 6 + m->env_len);
		if (!tail)
			panic("spool: out of memory building a batch");
		size_t tl = spool_event_tlv(tail, SPOOL_ETLV_SIZE, sz, 8);

		tl += spool_event_tlv(tail + tl, SPOOL_ETLV_ENV, m->meta + SPOOL_RECORD_HDR_SIZE,
				      m->env_len);
		b->evlen += spool_event_encode(b->evbuf + b->evlen, SPOOL_EVT_ACCEPTED, 0,
					       sp->conf.shard_id, m->ev_seq, m->qid,
					       m->received_ns / 1000000u, m->ev_tlv, m->ev_len,
					       tail, tl);
		free(tail);
		spool_record_hdr_set_evseq(m->meta, (uint32_t)m->ev_seq);
		if (m->ev_seq > seg->ev_max)
			seg->ev_max = m->ev_seq;
	}
	spool_record_hdr_seal(m->meta, sp->seal_key);
	rc = batch_add_iov(b, seg->fd, off, m->meta, SPOOL_RECORD_HDR_SIZE);
	pos = m->spill ? m->spill_off : off + SPOOL_RECORD_HDR_SIZE;
	for (struct spool_chunk *c = m->head; c && !rc; c = c->next) {
		rc = batch_add_iov(b, seg->fd, pos, c->data, c->len);
		pos += c->len;
	}
	if (!rc)
		rc = batch_add_iov(b, seg->fd, pos, m->meta + SPOOL_RECORD_HDR_SIZE, tail_len);
	if (rc)
		panic("spool: out of memory building a batch");   /* XXX: see batch_reserve */
	if (!m->spill)
		seg->off = off + rec_len;
	seg->nrec++;
	seg->nlive++;
	m->seg = seg;
	return 0;
}

static void batch_fail_nop(struct spool *sp, struct spool_batch *b, int err);

static void batch_submit(struct spool *sp, struct spool_batch *b)
{
	uint32_t nstate = b->nwop + b->nsegs, k = 0;
	/* The events: one plain write at the end of the chain, once the state is durable (so an
	 * event on disk always has its state); synced later, for many batches at once (ev_sync). */
	uint32_t nev = b->evlen ? 1 : 0, n = nstate + nev;

	if (io_uring_sq_space_left(sp->ring) < n)
		io_uring_submit(sp->ring);
	if (io_uring_sq_space_left(sp->ring) < n)
		panic("spool: the ring takes no submissions (%u SQEs needed)", n);

	for (uint32_t i = 0; i < b->nwop; i++) {
		struct spool_wop *w = &b->wops[i];
		struct io_uring_sqe *sqe = io_uring_get_sqe(sp->ring);

		w->b = b;
		io_uring_prep_writev(sqe, w->fd, &b->iov[w->iov0], w->niov, w->off);
		sqe->flags |= IOSQE_IO_LINK;
		io_uring_sqe_set_data64(sqe, ud_make(sp, K_WRITE, w));
		k++;
	}
	for (uint32_t i = 0; i < b->nsegs; i++) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(sp->ring);

		io_uring_prep_fsync(sqe, b->segs[i]->fd, IORING_FSYNC_DATASYNC);
		if (++k < n)
			sqe->flags |= IOSQE_IO_LINK;
		io_uring_sqe_set_data64(sqe, ud_make(sp, K_SYNC, b));
	}
	if (b->evlen) {
		struct io_uring_sqe *sqe = io_uring_get_sqe(sp->ring);

		b->evwop = (struct spool_wop){ .b = b, .fd = sp->evfd, .off = b->ev_start,
					       .len = b->evlen };
		io_uring_prep_write(sqe, sp->evfd, b->evbuf, (unsigned)b->evlen, b->ev_start);
		io_uring_sqe_set_data64(sqe, ud_make(sp, K_WRITE, &b->evwop));
		k += nev;
	}
	b->outstanding = n;
	b->start_ns = clock_mono_ns();
	sp->batch = b;
}

/* Every message of b fails with err, reported from the CQE of a NOP. */
static void batch_fail_nop(struct spool *sp, struct spool_batch *b, int err)
{
	struct io_uring_sqe *sqe = get_sqe(sp);

	b->err = err;
	if (!sqe)
		panic("spool: the ring takes no submissions");
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data64(sqe, ud_make(sp, K_NOP, b));
	b->outstanding = 1;
	sp->nfailing++;
}

static void arm_timer(struct spool *sp, uint64_t ns)
{
	struct io_uring_sqe *sqe;

	if (sp->timer_armed || !(sqe = get_sqe(sp)))
		return;
	sp->timer_ts.tv_sec = (long long)(ns / 1000000000u);
	sp->timer_ts.tv_nsec = (long long)(ns % 1000000000u);
	io_uring_prep_timeout(sqe, &sp->timer_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, ud_make(sp, K_TIMER, sp));
	sp->timer_armed = true;
}

uint64_t spool_journal_seq(const struct spool *sp)
{
	return sp->jseq;
}

uint64_t spool_journal_durable_seq(const struct spool *sp)
{
	return sp->jseq_durable;
}

void spool_set_siblings(struct spool *sp, bool busy)
{
	sp->siblings = busy;
}

/* The lazy sync of the event log: once written events have waited ev_sync_ns (or at close), one
 * fdatasync of the file, beside the batches, makes them durable for the sinks. */
static void ev_sync_poll(struct spool *sp)
{
	struct io_uring_sqe *sqe;
	uint64_t now, due;

	if (sp->closing && sp->ev_timer_armed && !sp->ev_timer_cancel && (sqe = get_sqe(sp))) {
		/* closing syncs at once: the delay's timer goes (its CQE must come before the end) */
		io_uring_prep_timeout_remove(sqe, ud_make(sp, K_EVTIMER, sp), 0);
		io_uring_sqe_set_data64(sqe, ud_make(sp, K_EVTIMER_RM, sp));
		sp->ev_timer_cancel = true;
	}
	if (sp->ev_sync_inflight || sp->evseq_written <= sp->evseq_durable || sp->evfd < 0)
		return;
	now = clock_mono_ns();
	due = sp->ev_unsynced_ns + sp->ev_sync_ns;
	if (now < due && !sp->closing) {
		if (!sp->ev_timer_armed && (sqe = get_sqe(sp))) {
			sp->ev_timer_ts.tv_sec = (long long)((due - now) / 1000000000u);
			sp->ev_timer_ts.tv_nsec = (long long)((due - now) % 1000000000u);
			io_uring_prep_timeout(sqe, &sp->ev_timer_ts, 0, 0);
			io_uring_sqe_set_data64(sqe, ud_make(sp, K_EVTIMER, sp));
			sp->ev_timer_armed = true;
		}
		return;
	}
	if (!(sqe = get_sqe(sp)))
		return;   /* tried again next turn */
	io_uring_prep_fsync(sqe, sp->evfd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data64(sqe, ud_make(sp, K_EVSYNC, sp));
	sp->ev_sync_inflight = true;
	sp->ev_sync_target = sp->evseq_written;
}

/* Segments that waited for their events to be durable (seg_settle). */
static void ev_reclaim(struct spool *sp)
{
	struct spool_seg *seg, *next;

	for (seg = sp->segs.next; seg != &sp->segs && sp->ev_reclaim_wait; seg = next) {
		next = seg->next;
		if (seg->ev_wait && seg->ev_max <= sp->evseq_durable) {
			seg->ev_wait = false;
			sp->ev_reclaim_wait--;
			seg_settle(sp, seg);
		}
	}
}

static void batch_flush(struct spool *sp);

void spool_flush(struct spool *sp)
{
	if (sp->ev_reclaim_wait)
		ev_reclaim(sp);
	batch_flush(sp);
	ev_sync_poll(sp);   /* after the batch: it may have rolled the event file */
}

static void batch_flush(struct spool *sp)
{
	struct spool_batch *b, *fail = NULL;
	struct spool_msg **pp, *m;
	uint32_t budget;
	bool rolled = false;
	int fail_err = 0, place_err = 0;

	if (sp->batch)
		return;   /* one sync in flight: the pending ones go together next */
	if ((sp->jneed_roll || (sp->jcur && sp->jcur->off + sp->jpend_len > sp->jcur->alloc)) &&
	    (!sp->jroll_fail_ns || clock_mono_ns() - sp->jroll_fail_ns > 1000000000u)) {
		int rc = journal_roll(sp);

		sp->jroll_fail_ns = rc < 0 ? clock_mono_ns() : 0;
		if (rc < 0)
			log_warn(rc, "spool: %s: journal roll failed; retrying in a second", sp->dir);
	}
	if (!sp->pending && !sp->jpend_len)
		return;
	if (sp->pending && sp->conf.commit_delay_us && sp->siblings && !sp->closing) {
		uint64_t due = sp->oldest_pending_ns + (uint64_t)sp->conf.commit_delay_us * 1000u;
		uint64_t now = clock_mono_ns();

		if (now < due) {
			arm_timer(sp, due - now);
			return;
		}
	}
	/* The whole chain must sit in the SQ at once (a link cannot span two submissions): a batch
	 * uses at most sq_cap - 4 SQEs and batch_submit empties the SQ first if need be. */
	budget = sp->sq_cap - 6;   /* and two for the events */
	b = calloc(1, sizeof(*b));
	if (!b)
		return;
	b->msgs_tail = &b->msgs;
	pp = &sp->pending;
	while ((m = *pp)) {
		uint32_t need = (msg_nchunks(m) + 2) / SPOOL_IOV_MAX + 3 + 1;
		int rc;

		if (m->inflight) {        /* streamed writes still on their way */
			pp = &m->next;
			continue;
		}
		if (b->nwop + b->nsegs + need + 2 > budget)
			break;
		if (m->err)
			rc = m->err;
		else if (place_err && !m->spill)
			rc = place_err;   /* no segment to append to: fail the rest alike */
		else if ((rc = batch_place(sp, b, m, &rolled)) < 0 && rc != -EAGAIN)
			place_err = rc;
		if (rc == -EAGAIN)
			break;
		*pp = m->next;
		sp->npending--;
		m->next = NULL;
		if (rc < 0) {
			if (!fail && !(fail = calloc(1, sizeof(*fail))))
				panic("spool: out of memory failing a batch");
			if (!fail->msgs)
				fail->msgs_tail = &fail->msgs;
			*fail->msgs_tail = m;
			fail->msgs_tail = &m->next;
			fail->nmsgs++;
			if (!fail_err)
				fail_err = rc;
			continue;
		}
		*b->msgs_tail = m;
		b->msgs_tail = &m->next;
		b->nmsgs++;
	}
	sp->pending_tail = &sp->pending;
	for (m = sp->pending; m; m = m->next)
		sp->pending_tail = &m->next;
	if (sp->pending)
		sp->oldest_pending_ns = sp->pending->commit_ns;
	if (fail)
		batch_fail_nop(sp, fail, fail_err);
	/* The journal's records ride along (after any HIGHWATER that batch_place just added). */
	if (sp->jpend_len && sp->jcur && !sp->jneed_roll &&
	    sp->jcur->off + sp->jpend_len <= sp->jcur->alloc) {
		b->jbuf = sp->jpend;
		b->jlen = sp->jpend_len;
		b->jcap = sp->jpend_cap;
		b->jseq = sp->jseq;
		sp->jpend = NULL;
		sp->jpend_len = sp->jpend_cap = 0;
		if (sp->evq) {
			uint64_t first = sp->evseq + 1;

			if (ev_number_pending(sp, b->jbuf, &b->evbuf, &b->evlen, &b->evcap,
					      &b->evq) < 0)
				panic("spool: out of memory building a batch");
			if (!b->ev_first)
				b->ev_first = first;
		}
		if (batch_add_seg(b, sp->jcur) < 0 ||
		    batch_add_iov(b, sp->jcur->fd, sp->jcur->off, b->jbuf, b->jlen) < 0)
			panic("spool: out of memory building a batch");
		sp->jcur->off += b->jlen;
	}
	if (!b->nwop) {
		batch_free(b);
		return;
	}
	if (b->evlen) {
		int rc = 0;

		b->ev_last = sp->evseq;
		spool_event_add_flags(b->evbuf, SPOOL_EVF_FIRST);
		if (sp->evfd < 0 || sp->evoff + b->evlen > sp->evalloc)
			rc = ev_roll(sp, b->evlen, b->ev_first - 1);
		b->ev_start = sp->evoff;
		if (rc < 0) {
			/* No room for the events: the state must not go without them. */
			log_warn(rc, "spool: %s: cannot start a new event file", sp->dir);
			b->evlen = 0;   /* nothing of them was written */
			batch_fail_nop(sp, b, rc);
			return;
		}
		sp->evoff += b->evlen;
	}
	batch_submit(sp, b);
}

bool spool_busy(const struct spool *sp)
{
	return sp->pending || sp->jpend_len || sp->batch || sp->nfailing || sp->stream_inflight ||
	       sp->timer_armed || sp->spare_state == SPOOL_SPARE_OPENING ||
	       sp->spare_state == SPOOL_SPARE_PREPARING || sp->ev_sync_inflight ||
	       (sp->evseq_written > sp->evseq_durable && !sp->ev_sync_failed);
	/* (a timer left armed: spool_close; events a failing sync left: spool_free tries once
	 * more, and the next start writes them again from the state if they are lost) */
}

/* A group commit's latency: the total, and its histogram bucket. */
static void spool_note_commit(struct spool *sp, uint64_t ns)
{
	static const uint64_t bounds_us[] = SPOOL_COMMIT_BUCKETS_US;
	unsigned k = 0;

	while (k < sizeof(bounds_us) / sizeof(bounds_us[0]) && ns > bounds_us[k] * 1000)
		k++;
	ctr_add(&sp->st.sync_ns_total, ns);
	ctr_inc(&sp->st.commit_hist[k]);
}

static void batch_finish(struct spool *sp, struct spool_batch *b)
{
	int err = b->err;
	struct spool_msg *m, *next;
	uint32_t nb = b->nmsgs;

	if (b == sp->batch) {
		sp->batch = NULL;
		spool_note_commit(sp, clock_mono_ns() - b->start_ns);
	} else {
		sp->nfailing--;
	}
	if (err == -ECANCELED)
		err = -EIO;
	for (uint32_t i = 0; i < b->nsegs; i++)
		b->segs[i]->inflight--;
	if (err) {
		ctr_add(&sp->st.commit_errors, nb);
		for (m = b->msgs; m; m = m->next) {
			if (m->seg) {
				m->seg->nrec--;
				m->seg->nlive--;
			}
		}
		for (uint32_t i = 0; i < b->nsegs; i++) {
			struct spool_seg *seg = b->segs[i];

			if (seg->journal) {
				sp->jneed_roll = true;   /* rewrite the state in a new journal */
				continue;
			}
			if (seg->spill)
				continue;
			/* Cut what this batch may have left half-written; the segment takes no more
			 * records (the next batch rolls). Best effort: recovery discards it anyway. */
			if (seg->fd >= 0 && ftruncate(seg->fd, (off_t)b->seg_start[i]) < 0)
				log_warn(-errno, "spool: %s: truncate segment %08" PRIx32 " after a "
					 "failed write", sp->dir, seg->segno);
			seg->off = b->seg_start[i];
			seg->sealed = true;   /* settled below */
			if (seg == sp->cur)
				sp->cur = NULL;
		}
		if (nb)
			log_warn(err, "spool: %s: a batch of %u messages failed", sp->dir, nb);
		if (b->ev_first) {
			/* Its numbers go again (nothing was numbered after them: one batch at a
			 * time), its event bytes are zeroed (recovery must not find them), and its
			 * journal events ride again, ahead of the newer ones (spool_event.h). */
			struct spool_evq **tail = &b->evq;

			sp->evseq = b->ev_first - 1;
			if (b->evlen) {
				if (fallocate(sp->evfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					      (off_t)b->ev_start, (off_t)b->evlen) < 0 ||
				    fdatasync(sp->evfd) < 0)
					log_error(-errno, "spool: %s: cannot clear the events of a "
						  "failed batch", sp->dir);
				sp->evoff = b->ev_start;
			}
			for (struct spool_evq *q = b->evq; q; q = q->next) {
				q->jmark = sp->jpend_len;
				jpend_add(sp, SPOOL_JEV_EVMARK, q->qid, evmark_arg(q, 0));
				q->marked = sp->jpend_len == q->jmark + SPOOL_JREC_SIZE;
				tail = &q->next;
			}
			if (b->evq) {
				*tail = sp->evq;
				if (!sp->evq)
					sp->evq_tail = tail;
				sp->evq = b->evq;
				b->evq = NULL;
			}
		}
	} else {
		for (m = b->msgs; m; m = m->next) {
			struct spool_ient *e = spool_index_put(&sp->ix, m->qid);

			if (e) {
				e->seg = m->seg;
				e->nrcpt = m->nrcpt;
				e->quota = m->quota;
				m->quota = (struct spool_quota_ref){ 0 };
				spool_quota_charge(&e->quota);
			} else {
				/* Durable, just not indexed until the next start. */
				log_error(-ENOMEM, "spool: %s: cannot index a committed message",
					  sp->dir);
				m->seg->nlive--;
			}
			ctr_inc(&sp->st.queued);
			ctr_inc(&sp->st.messages_committed);
			ctr_add(&sp->st.bytes_committed, m->size);
		}
		ctr_max(&sp->st.batches_max, nb);
		if (b->jlen && b->jseq > sp->jseq_durable)
			sp->jseq_durable = b->jseq;
		if (b->ev_last > sp->evseq_written) {
			/* written, their state durable: synced later with others (ev_sync_poll) */
			if (sp->evseq_written == sp->evseq_durable)
				sp->ev_unsynced_ns = clock_mono_ns();
			sp->evseq_written = b->ev_last;
		}
	}
	for (m = b->msgs; m; m = m->next)
		if (m->spill) {
			m->spill->sealed = true;
			if (!err)
				m->spill = NULL;   /* the segment now belongs to the index */
			else
				m->spill->nrec = m->spill->nlive = 0;   /* msg_destroy removes it */
		}
	for (uint32_t i = 0; i < b->nsegs; i++)
		if (!err || !b->segs[i]->spill)
			seg_settle(sp, b->segs[i]);
	/* Callbacks last: they may begin, commit and append again. */
	m = b->msgs;
	b->msgs = NULL;
	batch_free(b);
	for (; m; m = next) {
		next = m->next;
		m->seg = NULL;   /* may be gone already */
		if (!err)
			spool_queue_hand_over(sp, m->qid, m->meta + SPOOL_RECORD_HDR_SIZE, m->env_len,
					      m->size);
		m->done(m->arg, m->qid, err);
		msg_destroy(m);
	}
}

static void batch_err(struct spool_batch *b, int err)
{
	/* The first real error wins over the -ECANCELED of the ops linked after it. */
	if (!b->err || (b->err == -ECANCELED && err != -ECANCELED))
		b->err = err;
}

void spool_handle_cqe(struct spool *sp, const struct io_uring_cqe *cqe)
{
	uint64_t ud = io_uring_cqe_get_data64(cqe);
	unsigned kind = (unsigned)((ud >> 48) & 0xff);
	void *ptr = (void *)(uintptr_t)(ud & ((UINT64_C(1) << 48) - 1));
	int res = cqe->res;

	switch (kind) {
	case K_WRITE: {
		struct spool_wop *w = ptr;
		struct spool_batch *b = w->b;

		if (res < 0)
			batch_err(b, res);
		else if ((uint64_t)res != w->len)
			batch_err(b, -ENOSPC);   /* a short write to a regular file: out of space */
		if (--b->outstanding == 0)
			batch_finish(sp, b);
		break;
	}
	case K_SYNC: {
		struct spool_batch *b = ptr;

		if (res < 0)
			batch_err(b, res);
		else
			ctr_inc(&sp->st.syncs);
		if (--b->outstanding == 0)
			batch_finish(sp, b);
		break;
	}
	case K_NOP:
		batch_finish(sp, ptr);
		break;
	case K_STREAM: {
		struct spool_chunk *c = ptr;
		struct spool_msg *m = c->msg;

		if (res < 0 && !m->err)
			m->err = res;
		else if (res >= 0 && (uint32_t)res != c->len && !m->err)
			m->err = -ENOSPC;
		free(c);
		m->inflight--;
		sp->stream_inflight--;
		if (m->aborted && !m->inflight)
			msg_destroy(m);
		break;
	}
	case K_SPARE_OPEN:
		spare_opened(sp, res);
		break;
	case K_SPARE_PREP:
		spare_prepared(sp, res);
		break;
	case K_TIMER:
		sp->timer_armed = false;
		break;
	case K_EVTIMER:
		sp->ev_timer_armed = false;
		break;
	case K_EVTIMER_RM:
		sp->ev_timer_cancel = false;
		break;
	case K_EVSYNC:
		sp->ev_sync_inflight = false;
		if (res < 0) {
			/* XXX: after a failed fdatasync the kernel may have dropped the pages; they
			 * are retried (and rewritten from the state at the next start if lost) */
			log_error(res, "spool: %s: sync the event log", sp->dir);
			sp->ev_unsynced_ns = clock_mono_ns();   /* again after a delay */
			sp->ev_sync_failed = true;
			break;
		}
		sp->ev_sync_failed = false;
		ctr_inc(&sp->st.syncs);
		ev_publish(sp, sp->ev_sync_target);
		if (sp->evseq_written > sp->evseq_durable)
			sp->ev_unsynced_ns = clock_mono_ns();   /* written while it ran */
		break;
	default:
		panic("spool: CQE with unknown kind %u", kind);
	}
}

void spool_get_stats(const struct spool *sp, struct spool_stats *st)
{
	const uint64_t *from = (const uint64_t *)&sp->st;
	uint64_t *to = (uint64_t *)st;

	/* every counter is a uint64_t before the flag */
	_Static_assert(offsetof(struct spool_stats, no_segment) % sizeof(uint64_t) == 0,
		       "spool_stats: counters first");
	for (size_t i = 0; i < offsetof(struct spool_stats, no_segment) / sizeof(uint64_t); i++)
		to[i] = ctr_read(&from[i]);
	st->no_segment = __atomic_load_n(&sp->st.no_segment, __ATOMIC_RELAXED);
}

/* ---- Open and recovery ---- */

struct rec_list {
	spool_qid *qid;
	uint32_t  *nrcpt;
	struct spool_quota_ref *quota;   /* moved to the index entry, charged if not done */
	uint32_t   n, cap;
	struct spool *sp;
};

/* ---- Recovery of the event log (spool_event.h: the rule) ---- */

static int regen_add(struct spool *sp, const struct spool_regen *g)
{
	if (sp->nregen == sp->regen_cap) {
		size_t ncap = sp->regen_cap ? sp->regen_cap * 2 : 64;
		struct spool_regen *n = realloc(sp->regen, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		sp->regen = n;
		sp->regen_cap = ncap;
	}
	sp->regen[sp->nregen++] = *g;
	return 0;
}

/* The last event number on disk: the newest file with a FILE record, scanned to its last valid
 * record; the bytes after it (a torn write) are cut. 0 or -errno. */
static int ev_recover_scan(struct spool *sp)
{
	uint32_t *nums = NULL;
	size_t n = 0;
	int rc = spool_event_files(sp->dfd, &nums, &n);

	sp->evfd = -1;
	if (rc < 0) {
		log_error(rc, "spool: %s: list event files", sp->dir);
		return rc;
	}
	if (n)
		sp->evno = nums[n - 1];
	for (size_t i = n; i-- > 0; ) {
		char name[32];
		struct stat stt;
		uint8_t *buf = NULL;
		uint64_t off = 0, last = 0, wall = 0;
		bool have = false;
		int fd;

		spool_event_file_name(name, nums[i]);
		if ((fd = openat(sp->dfd, name, O_RDWR | O_CLOEXEC)) < 0 || fstat(fd, &stt) < 0) {
			rc = -errno;
			log_error(rc, "spool: %s/%s: open", sp->dir, name);
			if (fd >= 0)
				close(fd);
			break;
		}
		if (stt.st_size > 0 && !(buf = malloc((size_t)stt.st_size))) {
			close(fd);
			rc = -ENOMEM;
			break;
		}
		if (stt.st_size > 0 && pread(fd, buf, (size_t)stt.st_size, 0) != stt.st_size) {
			rc = -EIO;
			log_error(rc, "spool: %s/%s: read", sp->dir, name);
			free(buf);
			close(fd);
			break;
		}
		sp->ev_ndoubt = 0;
		for (;;) {
			struct spool_evinfo ev;

			if (spool_event_decode(buf + off, (size_t)stt.st_size - off, &ev) < 0)
				break;
			if (!have && ev.type != SPOOL_EVT_FILE)
				break;   /* a file begins with its FILE record */
			if (have && ev.seq != last + 1)
				break;   /* not contiguous: what follows is not trusted */
			if (ev.flags & SPOOL_EVF_FIRST)
				sp->ev_ndoubt = 0;   /* a later batch: the ones before were whole */
			if (ev.type != SPOOL_EVT_FILE) {
				if (sp->ev_ndoubt == sp->ev_doubt_cap) {
					size_t nc = sp->ev_doubt_cap ? sp->ev_doubt_cap * 2 : 64;
					uint64_t *no = realloc(sp->ev_doubt_off, nc * sizeof(*no));
					uint32_t *nl;
					uint8_t *nt;
					spool_qid *nq;

					if (no)
						sp->ev_doubt_off = no;
					nl = no ? realloc(sp->ev_doubt_len, nc * sizeof(*nl)) : NULL;
					if (nl)
						sp->ev_doubt_len = nl;
					nt = nl ? realloc(sp->ev_doubt_type, nc) : NULL;
					if (nt)
						sp->ev_doubt_type = nt;
					nq = nt ? realloc(sp->ev_doubt_qid, nc * sizeof(*nq)) : NULL;
					if (!nq) {
						rc = -ENOMEM;
						break;
					}
					sp->ev_doubt_qid = nq;
					sp->ev_doubt_cap = nc;
				}
				sp->ev_doubt_off[sp->ev_ndoubt] = off;
				sp->ev_doubt_len[sp->ev_ndoubt] = ev.len;
				sp->ev_doubt_type[sp->ev_ndoubt] = ev.type;
				sp->ev_doubt_qid[sp->ev_ndoubt] = ev.qid;
				sp->ev_ndoubt++;
			}
			have = true;
			last = ev.seq;
			wall = ev.wall_ms;
			off += ev.rec_len;
		}
		sp->ev_doubt_fileno = nums[i];
		free(buf);
		/* the tail (torn bytes, and the preallocated zeros) goes: this file is written no
		 * more, and a reader stops at its end */
		if (have && off < (uint64_t)stt.st_size && ftruncate(fd, (off_t)off) < 0)
			log_warn(-errno, "spool: %s/%s: truncate", sp->dir, name);
		close(fd);
		if (rc)
			break;
		if (have) {
			sp->evseq = last;
			sp->ev_last_wall_ms = wall;
			break;
		}
	}
	free(nums);
	sp->ev_base = sp->evseq - sp->ev_ndoubt;
	return rc;
}

static int regen_cmp(const void *a, const void *b)
{
	const struct spool_regen *x = a, *y = b;

	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static const char *regen_status(unsigned type)
{
	switch (type) {
	case SPOOL_EVT_DELIVERED: return "sent";
	case SPOOL_EVT_BOUNCED:   return "bounced";
	case SPOOL_EVT_DEFERRED:  return "deferred";
	case SPOOL_EVT_EXPIRED:   return "expired";
	default:                  return spool_evtype_name(type);
	}
}

/* One event written again from its state: TLVs into out (room for 2 KiB + the envelope). */
static size_t regen_payload(struct spool *sp, const struct spool_regen *g, uint8_t *out)
{
	char text[1200], q[SPOOL_QID_STRLEN + 1];
	size_t len = 0;
	int n;

	spool_qid_format(g->qid, q);
	if (g->type == SPOOL_EVT_ACCEPTED) {
		struct spool_envelope env = { 0 };
		uint32_t nrcpt = 0;
		uint8_t sz[8];

		(void)spool_record_env_decode(g->env, g->env_len, &env, NULL, 0, &nrcpt);
		n = snprintf(text, sizeof(text), "from %.*s to %.*s: helo=<%.*s> from=<%.*s> "
			     "nrcpt=%u size=%" PRIu64 " (recovered after a crash)",
			     (int)(env.client_addr.len > 64 ? 64 : env.client_addr.len),
			     env.client_addr.p ? env.client_addr.p : "",
			     (int)(env.listener.len > 64 ? 64 : env.listener.len),
			     env.listener.p ? env.listener.p : "",
			     (int)(env.helo.len > 256 ? 256 : env.helo.len), env.helo.p ? env.helo.p : "",
			     (int)(env.mail_from.len > 256 ? 256 : env.mail_from.len),
			     env.mail_from.p ? env.mail_from.p : "", nrcpt, g->size);
		for (size_t i = 0; i < (size_t)n && i < sizeof(text); i++)
			if ((unsigned char)text[i] < 0x20)
				text[i] = '?';
		len += spool_event_tlv(out + len, SPOOL_ETLV_TEXT, text,
				       (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
		if (env.session_id.len && env.session_id.len < 64)
			len += spool_event_tlv(out + len, SPOOL_ETLV_SID, env.session_id.p,
					       env.session_id.len);
		for (int i = 0; i < 8; i++)
			sz[i] = (uint8_t)(g->size >> (8 * i));
		len += spool_event_tlv(out + len, SPOOL_ETLV_SIZE, sz, 8);
		len += spool_event_tlv(out + len, SPOOL_ETLV_ENV, g->env, g->env_len);
		return len;
	}
	if (g->rcpt != 0xffff && g->type >= SPOOL_EVT_DELIVERED && g->type <= SPOOL_EVT_EXPIRED) {
		struct spool_queue_msg m;
		char addr[300] = "?";

		if (spool_queue_read(sp, g->qid, &m) == 0) {
			if (g->rcpt < m.env.nrcpt)
				snprintf(addr, sizeof(addr), "%.*s", (int)(m.rcpts[g->rcpt].len > 256 ?
					 256 : m.rcpts[g->rcpt].len), m.rcpts[g->rcpt].p);
			spool_queue_msg_free(&m);
		}
		for (char *c = addr; *c; c++)
			if ((unsigned char)*c < 0x20)
				*c = '?';
		n = snprintf(text, sizeof(text), "%s: to=<%s> relay=? status=%s (recovered after a "
			     "crash: the attempt's details were lost)", q, addr, regen_status(g->type));
		len += spool_event_tlv(out + len, SPOOL_ETLV_RCPT, addr, strlen(addr));
	} else {
		n = snprintf(text, sizeof(text), "%s: %s (recovered after a crash)", q,
			     spool_evtype_name(g->type));
	}
	len += spool_event_tlv(out + len, SPOOL_ETLV_TEXT, text, (size_t)n);
	return len;
}

/* After the segments and the journal were read: a new event file for this run, and in it the
 * events of state past the last event (VOID for numbers with no state). 0 or -errno. */
static int ev_recover_write(struct spool *sp)
{
	uint64_t last = sp->evseq, max = last;
	uint8_t *buf = NULL, *pl = NULL;
	size_t len = 0, cap = 0, k = 0;
	int rc;

	if (sp->nregen)   /* regen is NULL with none */
		qsort(sp->regen, sp->nregen, sizeof(*sp->regen), regen_cmp);
	if (sp->nregen && sp->regen[sp->nregen - 1].seq > max)
		max = sp->regen[sp->nregen - 1].seq;
	if (sp->ev_ndoubt) {
		/* The last batch's events on disk whose state is not: overwritten by VOIDs. */
		char name[32];
		int fd;
		size_t voided = 0;

		spool_event_file_name(name, sp->ev_doubt_fileno);
		fd = openat(sp->dfd, name, O_RDWR | O_CLOEXEC);
		for (size_t d = 0; fd >= 0 && d < sp->ev_ndoubt; d++) {
			uint64_t seq = sp->ev_base + 1 + d;
			bool have = false;
			uint8_t *v;
			size_t vl;

			while (k < sp->nregen && sp->regen[k].seq < seq)
				k++;
			have = k < sp->nregen && sp->regen[k].seq == seq;
			/* whole: its batch completed (a journal snapshot says so), or its state was
			 * there and went since (a message record whose segment was reclaimed) */
			if (!have && seq <= sp->ev_confirmed)
				have = true;
			if (!have && sp->ev_doubt_type[d] == SPOOL_EVT_ACCEPTED) {
				uint32_t segno = SPOOL_QID_SEG(sp->ev_doubt_qid[d]);

				have = true;
				for (size_t z = 0; z < sp->ev_nsegs; z++)
					if (sp->ev_segs[z] == segno)
						have = false;   /* there, without the record */
			}
			if (have)
				continue;
			vl = spool_event_size(sp->ev_doubt_len[d]);
			if (!(v = calloc(2, vl))) {
				rc = -ENOMEM;
				close(fd);
				goto out;
			}
			/* zeros as its payload: the same size, so the records after it stay put */
			spool_event_encode(v, SPOOL_EVT_VOID, 0, sp->conf.shard_id, seq, 0,
					   sp->ev_last_wall_ms, v + vl, sp->ev_doubt_len[d], NULL, 0);
			if ((rc = pwrite_all(fd, v, vl, sp->ev_doubt_off[d])) < 0)
				log_error(rc, "spool: %s/%s: void an event", sp->dir, name);
			free(v);
			voided++;
		}
		if (fd >= 0) {
			if (voided && fdatasync(fd) < 0)
				log_error(-errno, "spool: %s/%s: sync", sp->dir, name);
			close(fd);
		}
		if (voided)
			log_info("spool: %s: %zu events of the last batch had no state on disk: made "
				 "void", sp->dir, voided);
		k = 0;
	}
	size_t from_state = 0;

	for (uint64_t seq = last + 1; seq <= max; seq++) {
		struct spool_regen *g = NULL;
		size_t pn = 0;

		while (k < sp->nregen && sp->regen[k].seq < seq)
			k++;
		if (k < sp->nregen && sp->regen[k].seq == seq)
			g = &sp->regen[k];
		if (g) {
			from_state++;
			if (!(pl = realloc(pl, 4096 + g->env_len))) {
				rc = -ENOMEM;
				goto out;
			}
			pn = regen_payload(sp, g, pl);
		}
		if (ev_grow(&buf, &cap, len, spool_event_size(pn)) < 0) {
			rc = -ENOMEM;
			goto out;
		}
		len += spool_event_encode(buf + len, g ? g->type : SPOOL_EVT_VOID,
					  g ? SPOOL_EVF_RECOVERED : 0, sp->conf.shard_id, seq,
					  g ? g->qid : 0, g ? (g->received_ns ? g->received_ns / 1000000u :
					  sp->ev_last_wall_ms) : sp->ev_last_wall_ms, pl, pn, NULL, 0);
	}
	if ((rc = ev_roll(sp, len, last)) < 0) {
		log_error(rc, "spool: %s: cannot start an event file", sp->dir);
		goto out;
	}
	if (len) {
		spool_event_add_flags(buf, SPOOL_EVF_FIRST);
		if ((rc = pwrite_all(sp->evfd, buf, len, sp->evoff)) < 0 ||
		    (fdatasync(sp->evfd) < 0 && (rc = -errno) < 0)) {
			log_error(rc, "spool: %s: write recovered events", sp->dir);
			goto out;
		}
		sp->evoff += len;
		log_info("spool: %s: %" PRIu64 " events written again after a crash (%zu from the "
			 "state, %" PRIu64 " numbers void)", sp->dir, max - last, from_state,
			 max - last - from_state);
	}
	sp->evseq = max;
	ev_publish(sp, max);
out:
	free(buf);
	free(pl);
	for (size_t i = 0; i < sp->nregen; i++)
		free(sp->regen[i].env);
	free(sp->regen);
	sp->regen = NULL;
	sp->nregen = sp->regen_cap = 0;
	free(sp->ev_doubt_off);
	free(sp->ev_doubt_len);
	free(sp->ev_doubt_type);
	free(sp->ev_doubt_qid);
	free(sp->ev_segs);
	sp->ev_segs = NULL;
	sp->ev_nsegs = 0;
	sp->ev_doubt_off = NULL;
	sp->ev_doubt_len = NULL;
	sp->ev_doubt_type = NULL;
	sp->ev_doubt_qid = NULL;
	sp->ev_ndoubt = sp->ev_doubt_cap = 0;
	return rc;
}

static int collect_rec(void *arg, const struct spool_record_info *info, uint64_t off,
		       const uint8_t *payload)
{
	struct rec_list *l = arg;
	struct spool_envelope env;
	struct spool_quota_ref quota = { 0 };
	const uint8_t *ep = payload + info->body_len;
	uint32_t nrcpt = 0;

	if (spool_record_env_decode(ep, info->env_len, &env, NULL, 0, &nrcpt) < 0)
		nrcpt = 0;   /* checksummed but undecodable: queued with no recipients */
	if (nrcpt) {
		/* Its domains for the quota (charged once recovery knows it is not done). */
		struct slice *rcpts = spool_queue_rcpt_scratch(l->sp, nrcpt);

		if (!rcpts)
			return -ENOMEM;
		spool_record_env_decode(ep, info->env_len, &env, rcpts, nrcpt, &nrcpt);
		if (spool_quota_ref_build(l->sp->qtab, &env, info->body_len, &quota) < 0)
			return -ENOMEM;
	}
	if (l->n == l->cap) {
		uint32_t ncap = l->cap ? l->cap * 2 : 256;
		spool_qid *nq = realloc(l->qid, ncap * sizeof(*nq));
		struct spool_quota_ref *nquota;
		uint32_t *nr;

		if (nq)
			l->qid = nq;
		if (nq && (nr = realloc(l->nrcpt, ncap * sizeof(*nr))))
			l->nrcpt = nr;
		else
			nr = NULL;
		if (!nr || !(nquota = realloc(l->quota, ncap * sizeof(*nquota)))) {
			spool_quota_release(&quota);
			return -ENOMEM;
		}
		l->quota = nquota;
		l->cap = ncap;
	}
	l->qid[l->n] = info->qid;
	l->nrcpt[l->n] = nrcpt;
	l->quota[l->n] = quota;
	l->n++;
	if (info->ev_seq32) {
		struct spool *sp = l->sp;
		uint32_t d = info->ev_seq32 - (uint32_t)sp->ev_base;

		/* a number past the last event, and a record of about that time (the low 32 bits
		 * of old records' numbers come round again) */
		if (d && d < SPOOL_EV_REGEN_WIN &&
		    info->received_ns / 1000000u + 86400000u >= sp->ev_last_wall_ms) {
			struct spool_regen g = { .seq = sp->ev_base + d, .type = SPOOL_EVT_ACCEPTED,
						 .qid = info->qid, .size = info->body_len,
						 .received_ns = info->received_ns,
						 .env_len = info->env_len };

			if (!(g.env = malloc(info->env_len ? info->env_len : 1)))
				return -ENOMEM;
			memcpy(g.env, payload + info->body_len, info->env_len);
			if (regen_add(sp, &g) < 0) {
				free(g.env);
				return -ENOMEM;
			}
		}
	}
	return 0;
}

/*
 * Keeps the bytes of a damaged range for an operator (sluice-queue salvage): copied into
 * <segment>.damaged-<offset, 16 hex digits> beside the segment, written and synced before the
 * segment may ever be reclaimed. A range already copied (or salvaged: .salvaged-<offset>) is
 * left alone, so every start may find the same damage again. Logs the range either way.
 * Returns 0, or -errno when the copy could not be made (full disk): the caller then keeps the
 * whole segment (pinned) and the next start tries again.
 */
static int damage_keep(struct spool *sp, int fd, const char *segname,
		       const struct spool_damage *d)
{
	char name[80], tmp[96];
	uint8_t *buf = NULL;
	int out = -1, rc = 0;

	snprintf(name, sizeof(name), "%s.salvaged-%016" PRIx64, segname, d->off);
	if (faccessat(sp->dfd, name, F_OK, 0) == 0) {
		log_info("spool: %s/%s: damaged bytes %" PRIu64 "..%" PRIu64 " skipped (salvaged "
			 "already: %s)", sp->dir, segname, d->off, d->off + d->len, name);
		return 0;
	}
	snprintf(name, sizeof(name), "%s.damaged-%016" PRIx64, segname, d->off);
	if (faccessat(sp->dfd, name, F_OK, 0) == 0) {
		log_error(-EBADMSG, "spool: %s/%s: damaged bytes %" PRIu64 "..%" PRIu64 " (%" PRIu64
			  " bytes, header %s) skipped; the valid records after them are queued; "
			  "kept in %s (see sluice-queue salvage)", sp->dir, segname, d->off,
			  d->off + d->len, d->len, d->hdr_ok ? "intact" : "damaged", name);
		return 0;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp", name);
	out = openat(sp->dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (out < 0)
		rc = -errno;
	if (!rc && !(buf = malloc(1u << 16)))
		rc = -ENOMEM;
	for (uint64_t o = 0; !rc && o < d->len; ) {
		size_t n = d->len - o < (1u << 16) ? (size_t)(d->len - o) : (1u << 16);
		ssize_t got = pread(fd, buf, n, (off_t)(d->off + o));

		if (got <= 0) {
			rc = got < 0 ? -errno : -EIO;
			break;
		}
		for (ssize_t w = 0; w < got && !rc; ) {
			ssize_t k = write(out, buf + w, (size_t)(got - w));

			if (k < 0 && errno != EINTR)
				rc = -errno;
			else if (k > 0)
				w += k;
		}
		o += (uint64_t)got;
	}
	free(buf);
	if (!rc && fsync(out) < 0)
		rc = -errno;
	if (out >= 0)
		close(out);
	if (!rc && renameat(sp->dfd, tmp, sp->dfd, name) < 0)
		rc = -errno;
	if (!rc && fsync(sp->dfd) < 0)
		rc = -errno;
	if (rc) {
		unlinkat(sp->dfd, tmp, 0);
		log_error(rc, "spool: %s/%s: damaged bytes %" PRIu64 "..%" PRIu64 " (%" PRIu64
			  " bytes, header %s) skipped; the valid records after them are queued; "
			  "could not copy them aside, so the segment is kept as it is until a start "
			  "that can (see sluice-queue salvage)", sp->dir, segname, d->off,
			  d->off + d->len, d->len, d->hdr_ok ? "intact" : "damaged");
		return rc;
	}
	log_error(-EBADMSG, "spool: %s/%s: damaged bytes %" PRIu64 "..%" PRIu64 " (%" PRIu64
		  " bytes, header %s) skipped; the valid records after them are queued; copied "
		  "to %s (see sluice-queue salvage)", sp->dir, segname, d->off, d->off + d->len,
		  d->len, d->hdr_ok ? "intact" : "damaged", name);
	return 0;
}

static int recover_segment(struct spool *sp, uint32_t segno, uint32_t *highest)
{
	struct rec_list l = { .sp = sp };
	struct spool_segscan r;
	bool pinned = false;
	struct spool_seg *seg;
	char name[32];
	int fd, rc;

	spool_seg_name(name, segno);
	fd = openat(sp->dfd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		log_error(rc, "spool: %s/%s: open", sp->dir, name);
		return rc;
	}
	rc = spool_segscan_sealed(fd, sp->conf.shard_id, segno, true,
				  sp->have_seal ? &sp->seal_key : NULL, collect_rec, &l, &r);
	if (rc < 0) {
		log_error(rc, "spool: %s/%s: read", sp->dir, name);
		goto out;
	}
	if (segno > *highest)
		*highest = segno;
	for (uint32_t i = 0; i < r.ndamage; i++)
		if (damage_keep(sp, fd, name, &r.damage[i]) < 0)
			pinned = true;
	if (r.skipped) {
		ctr_add(&sp->st.damaged_ranges, r.skipped);
		ctr_add(&sp->st.damaged_bytes, r.damaged_bytes);
		if (r.skipped > r.ndamage) {
			pinned = true;   /* ranges past those we could name: keep it all */
			log_error(-EBADMSG, "spool: %s/%s: %u damaged ranges (%" PRIu64 " bytes); "
				  "only the first %u were copied aside", sp->dir, name, r.skipped,
				  r.damaged_bytes, r.ndamage);
		}
	}
	if (r.unresolved) {
		/* Records follow the damage but carry no seal we know (written before seals, or
		 * under a lost key): not queued, and nothing is cut or reclaimed. */
		pinned = true;
		ctr_inc(&sp->st.damaged_ranges);
		ctr_add(&sp->st.damaged_bytes, r.file_size - r.unresolved_off);
		log_error(-EBADMSG, "spool: %s/%s: damaged record at offset %" PRIu64 "; the records "
			  "after it carry no seal this spool knows, so they are not queued; the "
			  "segment is kept as it is for an operator", sp->dir, name,
			  r.unresolved_off);
	} else if (r.torn_bytes) {
		log_warn(0, "spool: %s/%s: torn write at the tail: discarded %" PRIu64 " bytes after "
			 "offset %" PRIu64, sp->dir, name, r.torn_bytes, r.good_end);
		ctr_inc(&sp->st.torn_discarded);
	}
	/* Sealed for good: drop the torn tail and the unused preallocation. */
	if (!r.unresolved && r.file_size > r.good_end && ftruncate(fd, (off_t)r.good_end) < 0) {
		rc = -errno;
		log_error(rc, "spool: %s/%s: truncate to %" PRIu64, sp->dir, name, r.good_end);
		goto out;
	}
	if (!r.records && !pinned) {
		if (unlinkat(sp->dfd, name, 0) < 0)
			log_warn(-errno, "spool: %s/%s: unlink empty segment", sp->dir, name);
		goto out;
	}
	if (!(seg = calloc(1, sizeof(*seg)))) {
		rc = -ENOMEM;
		goto out;
	}
	seg->segno = segno;
	seg->fd = -1;
	seg->off = r.good_end;
	seg->alloc = r.good_end;
	seg->sealed = true;
	seg->pinned = pinned;
	seg_link(sp, seg);
	for (uint32_t i = 0; i < l.n; i++) {
		struct spool_ient *e = spool_index_put(&sp->ix, l.qid[i]);

		if (!e) {
			rc = -ENOMEM;
			goto out;
		}
		if (e->seg)
			continue;   /* cannot happen: offsets are unique within a segment */
		e->seg = seg;
		e->nrcpt = l.nrcpt[i];
		e->quota = l.quota[i];
		l.quota[i] = (struct spool_quota_ref){ 0 };
		seg->nrec++;
		seg->nlive++;
	}
out:
	close(fd);
	for (uint32_t i = 0; i < l.n; i++)
		spool_quota_release(&l.quota[i]);
	free(l.qid);
	free(l.nrcpt);
	free(l.quota);
	return rc;
}

struct jreplay {
	struct spool *sp;
	uint32_t     *highest;
};

static int replay_jrec(void *arg, const struct spool_jrec *j)
{
	struct jreplay *jr = arg;
	struct spool_ient *e;
	uint32_t segno;

	if (j->event == SPOOL_JEV_HIGHWATER) {
		if (j->arg <= SPOOL_SEG_MAX && j->arg > *jr->highest)
			*jr->highest = (uint32_t)j->arg;
		return 0;
	}
	if (j->event == SPOOL_JEV_EVDURABLE) {
		if (j->arg > jr->sp->ev_confirmed)
			jr->sp->ev_confirmed = j->arg;
		return 0;
	}
	if (j->event == SPOOL_JEV_EVMARK) {
		uint64_t seq = SPOOL_EVMARK_SEQ(j->arg);
		struct spool_regen g = { .seq = seq, .type = (uint8_t)SPOOL_EVMARK_TYPE(j->arg),
					 .qid = j->qid, .rcpt = SPOOL_EVMARK_RCPT(j->arg) };

		if (seq > jr->sp->ev_base && seq - jr->sp->ev_base < SPOOL_EV_REGEN_WIN &&
		    g.type < SPOOL_EVT_NTYPES && regen_add(jr->sp, &g) < 0)
			return -ENOMEM;
		return 0;
	}
	segno = SPOOL_QID_SEG(j->qid);
	if (SPOOL_QID_SHARD(j->qid) == jr->sp->conf.shard_id && segno > *jr->highest)
		*jr->highest = segno;
	e = spool_index_get(&jr->sp->ix, j->qid);
	if (!e)
		return 0;   /* its segment was reclaimed */
	if (spool_index_apply(e, j) == -ENOMEM)
		return -ENOMEM;
	return 0;
}

/*
 * journal_roll failed at open (a full disk: the new journal needs room). Instead of refusing to
 * start, append to the newest existing journal (number jno, scanned as *last): its preallocated
 * room past the last valid record needs no new space. With no journal at all, start without one:
 * journal records wait in memory and a roll is retried every second. Returns 0 or -errno.
 */
static int journal_keep_last(struct spool *sp, int err, uint32_t jno,
			     const struct spool_segscan *last)
{
	struct spool_seg *j;
	char name[32];
	int fd;

	if (!jno) {
		log_warn(err, "spool: %s: cannot create the journal; starting without one "
			 "(retried every second)", sp->dir);
		sp->jneed_roll = true;
		sp->jroll_fail_ns = clock_mono_ns();
		return 0;
	}
	spool_journal_name(name, jno);
	fd = openat(sp->dfd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0 || !(j = calloc(1, sizeof(*j)))) {
		int rc = fd < 0 ? -errno : -ENOMEM;

		if (fd >= 0)
			close(fd);
		log_error(rc, "spool: %s/%s: reopen the journal", sp->dir, name);
		return rc;
	}
	j->segno = jno;
	j->fd = fd;
	j->off = spool_record_align(last->good_end);
	j->off = (j->off + SPOOL_JREC_SIZE - 1) / SPOOL_JREC_SIZE * SPOOL_JREC_SIZE;
	j->alloc = last->file_size;
	j->journal = true;
	sp->jcur = j;
	log_warn(err, "spool: %s: cannot write a new journal; appending to %s (%" PRIu64 " of %"
		 PRIu64 " bytes used)", sp->dir, name, j->off, j->alloc);
	return 0;
}

static int recover(struct spool *sp)
{
	struct spool_segscan last_j = { 0 };
	uint32_t *nums = NULL, highest = 0;
	size_t n = 0;
	int rc;
	struct spool_seg *seg, *next;

	if ((rc = ev_recover_scan(sp)) < 0)
		return rc;
	if ((rc = spool_dir_list(sp->dfd, "seg-", ".dat", &nums, &n)) < 0) {
		log_error(rc, "spool: %s: list segments", sp->dir);
		return rc;
	}
	sp->ev_segs = nums;   /* kept until the events are recovered (ev_recover_write) */
	sp->ev_nsegs = n;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = recover_segment(sp, nums[i], &highest);
	nums = NULL;
	if (rc)
		return rc;

	if ((rc = spool_dir_list(sp->dfd, "journal-", ".log", &nums, &n)) < 0) {
		log_error(rc, "spool: %s: list journals", sp->dir);
		return rc;
	}
	for (size_t i = 0; i < n && rc == 0; i++) {
		struct jreplay jr = { sp, &highest };
		struct spool_segscan r;
		char name[32];
		int fd;

		spool_journal_name(name, nums[i]);
		if ((fd = openat(sp->dfd, name, O_RDONLY | O_CLOEXEC)) < 0) {
			rc = -errno;
			log_error(rc, "spool: %s/%s: open", sp->dir, name);
			break;
		}
		rc = spool_jscan(fd, replay_jrec, &jr, &r);
		close(fd);
		if (rc < 0) {
			log_error(rc, "spool: %s/%s: read", sp->dir, name);
			break;
		}
		if (r.skipped)
			log_error(-EBADMSG, "spool: %s/%s: %u corrupt journal records skipped, the "
				  "first at offset %" PRIu64, sp->dir, name, r.skipped,
				  r.corrupt_off);
		if (r.torn_bytes) {
			log_warn(0, "spool: %s/%s: torn write at the tail: discarded %" PRIu64
				 " bytes after offset %" PRIu64, sp->dir, name, r.torn_bytes,
				 r.good_end);
			ctr_inc(&sp->st.torn_discarded);
		}
		if (nums[i] >= sp->next_jno)
			sp->next_jno = nums[i] + 1;
		last_j = r;
	}
	if (rc) {
		free(nums);
		return rc;
	}
	/* Events of state past the last event, before a settle may reclaim their records. */
	if ((rc = ev_recover_write(sp)) < 0 && rc == -ENOMEM) {
		free(nums);
		return rc;
	}
	rc = 0;

	/* Done messages no longer count; segments with nothing left go. */
	for (uint32_t k = 0; k < sp->ix.cap; k++) {
		struct spool_ient *e = &sp->ix.tab[k];

		if (!e->qid)
			continue;
		if (e->flags & SPOOL_IF_DONE) {
			e->seg->nlive--;
			spool_quota_release(&e->quota);
		} else {
			ctr_inc(&sp->st.queued);
			spool_quota_charge(&e->quota);
		}
	}
	for (seg = sp->segs.next; seg != &sp->segs; seg = next) {
		next = seg->next;
		seg_settle(sp, seg);
	}
	__atomic_store_n(&sp->st.recovered, sp->st.queued, __ATOMIC_RELAXED);
	sp->next_segno = highest + 1 > SPOOL_SEG_MAX ? 1 : highest + 1;
	if (!sp->next_jno)
		sp->next_jno = 1;

	/* A fresh segment to append to, then a fresh journal holding the state (which also records
	 * the segment number), then the old journals go. */
	/* On a full disk neither needs to succeed: the node starts, delivers what it holds (its
	 * results go to the old journal's preallocated room) and answers 452 4.3.1 until space is
	 * free; the first batch after that takes a segment as usual. */
	if ((rc = seg_create_sync(sp, segno_next(sp), sp->conf.segment_size, false, &sp->cur)) < 0) {
		log_warn(rc, "spool: %s: no room for a new %" PRIu64 "-byte segment; starting "
			 "without one (new mail is refused until space is free)", sp->dir,
			 sp->conf.segment_size);
		sp->cur = NULL;
		sp->st.no_segment = true;
		sp->spare_fail_ns = clock_mono_ns();
	}
	if ((rc = journal_roll(sp)) < 0) {
		rc = journal_keep_last(sp, rc, n ? nums[n - 1] : 0, &last_j);
		n = 0;   /* every old journal stays: they are replayed again at the next start */
		if (rc < 0)
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		char name[32];

		spool_journal_name(name, nums[i]);
		if (unlinkat(sp->dfd, name, 0) < 0 && errno != ENOENT)
			log_warn(-errno, "spool: %s/%s: unlink old journal", sp->dir, name);
	}
	if (sp->st.recovered || sp->st.torn_discarded || sp->st.damaged_ranges)
		log_info("spool: %s: recovered %" PRIu64 " queued messages in %" PRIu64 " segments (%" PRIu64
			 " torn tails discarded, %" PRIu64 " damaged ranges skipped, %" PRIu64
			 " bytes)", sp->dir, sp->st.queued, sp->st.segments - (sp->cur ? 1 : 0),
			 sp->st.torn_discarded, sp->st.damaged_ranges, sp->st.damaged_bytes);
out:
	free(nums);
	return rc;
}

static int mkdir_p(const char *path)
{
	if (mkdir(path, 0750) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

static void spool_free(struct spool *sp)
{
	struct spool_seg *seg, *next;

	for (seg = sp->segs.next; seg && seg != &sp->segs; seg = next) {
		next = seg->next;
		if (seg->fd >= 0)
			close(seg->fd);
		free(seg);
	}
	if (sp->jcur) {
		close(sp->jcur->fd);
		free(sp->jcur);
	}
	if (sp->spare) {
		if (sp->spare->fd >= 0)
			close(sp->spare->fd);
		if (sp->dfd >= 0)
			unlinkat(sp->dfd, sp->spare_name, 0);
		free(sp->spare);
	}
	spool_index_free(&sp->ix);
	spool_quota_tab_free(sp->qtab);
	free(sp->handoff_rcpts);
	free(sp->jpend);
	if (sp->evfd >= 0) {
		int rc = ev_sync_now(sp);

		if (rc < 0)
			log_error(rc, "spool: %s: sync the event log at close", sp->dir);
		close(sp->evfd);
	}
	evq_free(sp->evq);
	for (size_t i = 0; i < sp->nregen; i++)
		free(sp->regen[i].env);
	free(sp->regen);
	free(sp->ev_doubt_off);
	free(sp->ev_doubt_len);
	free(sp->ev_doubt_type);
	free(sp->ev_doubt_qid);
	free(sp->ev_segs);
	if (sp->dfd >= 0)
		close(sp->dfd);
	free(sp->dir);
	free(sp);
}

int spool_open(struct spool **sp_r, const struct spool_conf *conf, struct io_uring *ring,
	       uint8_t ud_tag)
{
	struct spool *sp;
	size_t dlen;
	int rc;

	/* A batch needs room in the SQ for its whole link chain. */
	if (!conf->dir || conf->shard_id > 255 || ring->sq.ring_entries < 16)
		return -EINVAL;
	if (!(sp = calloc(1, sizeof(*sp))))
		return -ENOMEM;
	sp->conf = *conf;
	if (!sp->conf.segment_size)
		sp->conf.segment_size = SPOOL_DEF_SEGMENT;
	if (!sp->conf.spill_bytes)
		sp->conf.spill_bytes = SPOOL_DEF_SPILL;
	if (!sp->conf.min_free_bytes)
		sp->conf.min_free_bytes = SPOOL_DEF_MIN_FREE;
	if (sp->conf.segment_size > SPOOL_SEG_OFF_MAX)
		sp->conf.segment_size = SPOOL_SEG_OFF_MAX;
	sp->ring = ring;
	sp->ud_tag = ud_tag;
	sp->sq_cap = ring->sq.ring_entries;
	/* Small spools (tests, tiny disks) get a smaller journal; it grows when a snapshot needs. */
	sp->journal_size = sp->conf.segment_size / 4 < SPOOL_JOURNAL_SIZE ?
			   sp->conf.segment_size / 4 : SPOOL_JOURNAL_SIZE;
	if (sp->journal_size < 64 * 1024)
		sp->journal_size = 64 * 1024;
	sp->segs.next = sp->segs.prev = &sp->segs;
	sp->pending_tail = &sp->pending;
	sp->evq_tail = &sp->evq;
	sp->evfd = -1;
	sp->dfd = -1;
	sp->ev_sync_ns = (uint64_t)(conf->event_sync_us ? conf->event_sync_us : SPOOL_EV_SYNC_US) *
			 1000u;
	dlen = strlen(conf->dir) + 16;
	if (!(sp->dir = malloc(dlen))) {
		free(sp);
		return -ENOMEM;
	}
	snprintf(sp->dir, dlen, "%s/shard-%u", conf->dir, conf->shard_id);
	if ((rc = mkdir_p(conf->dir)) < 0 || (rc = mkdir_p(sp->dir)) < 0) {
		log_error(rc, "spool: %s: mkdir", sp->dir);
		goto fail;
	}
	sp->dfd = open(sp->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (sp->dfd < 0) {
		rc = -errno;
		log_error(rc, "spool: %s: open", sp->dir);
		goto fail;
	}
	(void)seal_ensure(sp);   /* a full disk: recovery goes on without searching past damage */
	if ((rc = recover(sp)) < 0)
		goto fail;
	spare_start(sp);
	*sp_r = sp;
	return 0;
fail:
	spool_free(sp);
	return rc;
}

void spool_close(struct spool **spp)
{
	struct spool *sp = *spp;
	int idle = 0;

	if (!sp)
		return;
	*spp = NULL;
	sp->closing = true;
	/* The shard should have driven the loop until !spool_busy(); whatever is left is drained
	 * here, blocking. CQEs of other modules seen meanwhile are dropped (shutdown only). */
	while ((spool_busy(sp) || sp->ev_timer_armed || sp->ev_timer_cancel) && idle < 3) {
		struct io_uring_cqe *cqe;
		unsigned head, n = 0;

		spool_flush(sp);
		if (!sp->batch && !sp->nfailing && !sp->stream_inflight && !sp->timer_armed &&
		    !sp->ev_sync_inflight && !sp->ev_timer_armed && !sp->ev_timer_cancel &&
		    sp->spare_state != SPOOL_SPARE_OPENING &&
		    sp->spare_state != SPOOL_SPARE_PREPARING) {
			idle++;   /* pending work that cannot start (e.g. journal roll failing) */
			continue;
		}
		if (io_uring_submit_and_wait(sp->ring, 1) < 0)
			break;
		io_uring_for_each_cqe(sp->ring, head, cqe) {
			if ((uint8_t)(cqe->user_data >> 56) == sp->ud_tag)
				spool_handle_cqe(sp, cqe);
			else
				log_warn(0, "spool: %s: dropped a foreign CQE at shutdown", sp->dir);
			n++;
		}
		io_uring_cq_advance(sp->ring, n);
	}
	if (spool_busy(sp))
		log_error(-EBUSY, "spool: %s: closed with %u messages not written", sp->dir,
			  sp->npending);
	if (sp->spare_state == SPOOL_SPARE_READY && sp->spare) {
		close(sp->spare->fd);
		unlinkat(sp->dfd, sp->spare_name, 0);
		free(sp->spare);
		sp->spare = NULL;
	}
	spool_free(sp);
}
