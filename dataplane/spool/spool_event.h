/*
 * spool_event.h - the per-shard event log: a message's events (accepted, each delivery result,
 * deferred, bounced, expired, DSN sent, quarantined, released, deleted) as typed, checksummed
 * records with an id (node, shard, sequence), written by the shard's spool in the same group
 * commit as the state they describe (spool.c), read by the agent for its sinks.
 *
 * Files: <dir>/shard-<id>/events-<8 hex>.ev, numbered upwards, preallocated, records appended;
 * a new file at every start and when one is full. Each file begins with a FILE record whose seq
 * is the last event number before it (so a file says where the numbering stands even when it
 * holds no event yet). The writer only appends to the newest file; the agent removes a file once
 * every sink's cursor has passed it, never the newest.
 *
 * Record (little-endian), 8-byte aligned; 48 zero bytes mark the end of the records:
 *
 *   off size field
 *     0   4  magic    "SLEV"
 *     4   1  version  SPOOL_EVENT_VERSION
 *     5   1  type     enum spool_evtype
 *     6   2  flags    SPOOL_EVF_*
 *     8   4  len      payload bytes (then zero padding to 8)
 *    12   4  shard
 *    16   8  seq      per shard, from 1, contiguous (the FILE record: the last seq before it)
 *    24   8  qid      the message (0 for FILE / VOID)
 *    32   8  wall_ms  when it happened (CLOCK_REALTIME, ms)
 *    40   8  sum      XXH3-64 of bytes 0..39 and the payload
 *
 * Payload: TLVs, tag u16 | len u32 | bytes (as the spool envelope), unknown tags skipped.
 *
 * The rule, "an event exists if and only if its state change does" (spool.c does it):
 *  - Event numbers are given at group-commit time, in the order the batch writes the state
 *    (segment records, then the journal). A batch writes its events with a plain write linked
 *    after the state's syncs (so an event on disk always has its state), and its callbacks (the
 *    250s) wait for that write, not for a sync of the events: the event log's content can be
 *    written again from the state, so it is synced lazily, one fdatasync for every batch of
 *    the last conf.event_sync_us (50 ms), which then publishes the number the agent may read
 *    up to (its sinks never see an event that a crash could take back). What would drop the
 *    state an unsynced event is rebuilt from waits for that sync: a journal roll (its
 *    snapshot's EVDURABLE), a segment's reclaim (the highest accepted number of its records)
 *    and an event file's roll (recovery reads only the newest file) sync first. Only one batch
 *    is in flight; the first event of each carries SPOOL_EVF_FIRST.
 *  - Each state change that has an event says which: a message record carries the low 32 bits
 *    of its accepted event's number in its header (spool_record.h, bytes 20..23); a journal
 *    record that has an event is followed, in the same write, by a marker record
 *    (SPOOL_JEV_EVMARK: number, type, recipient).
 *  - Recovery finds the last valid event (torn bytes after it are cut: after a power loss, the
 *    unsynced tail of several batches may be gone or partly written) and the last batch's
 *    first one. An event of that last batch whose state is not on disk (no record, no marker
 *    naming its number; only files written before events waited for their state's sync can
 *    hold one) is overwritten in place by a VOID record of the same size: it never happened,
 *    and no sink has seen it (they read only up to the durable number). Not when its state
 *    was there and went since: a journal snapshot says which events had completed
 *    (SPOOL_JEV_EVDURABLE: the markers before it were compacted away), and an accepted event
 *    whose segment file is gone had its record (reclaimed once the message was done). Every record or marker
 *    naming a number past the last event is state without its event, and the event is written
 *    again from the state (SPOOL_EVF_RECOVERED: the state's own fields; details only the lost
 *    record had, such as the remote reply, are gone); a number between them with no state
 *    becomes a VOID record, so numbers stay contiguous (the log sink writes a "void" line).
 *  - A failed batch (write or sync error) rewinds the numbering to its first event and zeroes the
 *    event bytes it may have written: its messages got a 4xx, its journal events ride again.
 */
#ifndef SLUICE_SPOOL_EVENT_H
#define SLUICE_SPOOL_EVENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define SPOOL_EVENT_MAGIC   0x56454c53u   /* "SLEV" little-endian */
#define SPOOL_EVENT_VERSION 1
#define SPOOL_EVENT_HDR     48
#define SPOOL_EVENT_MAX     (UINT32_C(1) << 20)   /* payload limit a reader trusts */

enum spool_evtype {
	SPOOL_EVT_FILE = 0,        /* file header, not an event */
	SPOOL_EVT_VOID,            /* a number whose state never became durable */
	SPOOL_EVT_ACCEPTED,        /* the message is durable (before its 250) */
	SPOOL_EVT_DELIVERED,       /* one recipient, with the attempt: relay, reply, duration */
	SPOOL_EVT_BOUNCED,         /* one recipient failed permanently (attempt details) */
	SPOOL_EVT_DEFERRED,        /* one recipient's attempt failed temporarily */
	SPOOL_EVT_EXPIRED,         /* one recipient given up: the queue lifetime passed */
	SPOOL_EVT_DSN,             /* a delivery status notification was queued */
	SPOOL_EVT_QUARANTINED,     /* held (quarantine / operator hold) */
	SPOOL_EVT_RELEASED,
	SPOOL_EVT_DELETED,         /* operator delete */
	SPOOL_EVT_NTYPES
};
/* "accepted", "delivered", ...: the name sinks write. */
const char *spool_evtype_name(unsigned type);

#define SPOOL_EVF_RECOVERED 0x0001u   /* written again at recovery from the state */
#define SPOOL_EVF_FIRST     0x0002u   /* the first event of its group commit */

enum spool_etlv_tag {
	SPOOL_ETLV_TEXT = 1,       /* the log line's text (see agent_events.c for how it is used) */
	SPOOL_ETLV_SID,            /* the SMTP session id */
	SPOOL_ETLV_CLIENT_PORT,    /* u16 */
	SPOOL_ETLV_ENV,            /* the message record's envelope TLVs (spool_record.h) */
	SPOOL_ETLV_RCPT,           /* the recipient's address */
	SPOOL_ETLV_RCPT_IDX,       /* u32 */
	SPOOL_ETLV_RELAY,          /* the destination host[:port] */
	SPOOL_ETLV_REPLY,          /* the remote reply (or why none) */
	SPOOL_ETLV_DURATION_MS,    /* u32: the attempt */
	SPOOL_ETLV_SIZE,           /* u64: the message's size */
};

/* Appends one TLV at out (room for 6 + len bytes); returns the bytes written. */
size_t spool_event_tlv(uint8_t *out, uint16_t tag, const void *p, size_t len);
/* The first TLV with tag in payload[0..len): 0 and a slice into payload, or -ENOENT. */
int spool_event_tlv_find(const void *payload, size_t len, uint16_t tag, struct slice *v_r);

/* Encoded size of a record with a payload of len bytes (header + payload + padding). */
static inline size_t spool_event_size(size_t len)
{
	return SPOOL_EVENT_HDR + ((len + 7) & ~(size_t)7);
}
/* Writes a record into out (spool_event_size(len of both parts) bytes, zero padded); the payload
 * is p1 || p2. Returns the bytes written. */
size_t spool_event_encode(uint8_t *out, unsigned type, unsigned flags, unsigned shard,
			  uint64_t seq, uint64_t qid, uint64_t wall_ms, const void *p1, size_t l1,
			  const void *p2, size_t l2);

struct spool_evinfo {
	uint8_t        type;
	uint16_t       flags;
	uint32_t       shard;
	uint64_t       seq, qid, wall_ms;
	const uint8_t *payload;    /* valid until the next call on its reader / buffer */
	uint32_t       len;
	size_t         rec_len;    /* bytes the record takes in the file */
};
/* Adds flags to an encoded record (its checksum again). */
void spool_event_add_flags(uint8_t *rec, unsigned flags);
/* Checks the record at p[0..len). 0, -ENODATA (48 zero bytes: end), -EAGAIN (fewer bytes than the
 * record: a short read or a torn tail), -EBADMSG. */
int spool_event_decode(const void *p, size_t len, struct spool_evinfo *ev_r);

void spool_event_file_name(char out[32], uint32_t n);
/* The numbers of the event files in the shard directory dfd, ascending (malloc'd). 0 or -errno. */
int spool_event_files(int dfd, uint32_t **nums_r, size_t *n_r);

/* ---- A reader (any thread, read-only): one per sink per shard ---- */
struct spool_evreader {
	int      dfd;          /* the shard directory */
	int      fd;           /* the current file, or -1 */
	uint32_t fileno;
	uint64_t off;          /* of the next record in fileno */
	uint64_t seq;          /* the last event consumed */
	uint8_t *buf;          /* a window of the file: [buf_off, buf_off + buf_len) */
	size_t   buf_len, buf_cap;
	uint64_t buf_off;
	bool     end_checked;  /* caught up: looked for a later file once already */
};
/* Opens a reader on shard directory path at (fileno, off) having consumed seq; fileno 0: from the
 * oldest file. 0 or -errno. */
int spool_evreader_open(struct spool_evreader *r, const char *shard_dir, uint32_t fileno,
			uint64_t off, uint64_t seq);
void spool_evreader_close(struct spool_evreader *r);
/* The next event numbered at most limit (the shard's durable number): 1 (ev_r filled, its payload
 * valid until the next call; the reader has moved past it), 0 (none yet), -errno. FILE records
 * are skipped; VOIDs are returned. */
int spool_evreader_next(struct spool_evreader *r, uint64_t limit, struct spool_evinfo *ev_r);

#endif
