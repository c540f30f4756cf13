/*
 * spool_record.h - the on-disk formats of the spool: the message record (header | body |
 * envelope, 8-byte aligned), the TLV envelope, and the journal record. Pure functions over byte
 * buffers: no I/O, no allocation, any thread. Every decoder takes a length and never reads past
 * it (fuzzed by tests/fuzz/fuzz_spool_record.c).
 *
 * Message record (all integers little-endian):
 *
 *   off size field
 *     0   4  magic        "SLRC" (0x43524c53)
 *     4   1  version      SPOOL_RECORD_VERSION
 *     5   1  hdr_size     64 (lets a later version grow the header; readers skip what they
 *                         do not know, the checksum covers hdr_size bytes minus the last 8)
 *     6   2  flags        SPOOL_RECORD_F_*
 *     8   8  body_len
 *    16   4  env_len
 *    20   4  ev_seq32     low 32 bits of the message's accepted event number (spool_event.h),
 *                         0 when it has none (records before the event log, DSNs)
 *    24   8  qid          shard | segment | offset/8: must match where the record lies
 *    32   8  received_ns  wall clock at end of data
 *    40   8  payload_sum  XXH3-64 of body || envelope
 *    48   8  seal         XXH3-64 of bytes 0..47 seeded with the shard's secret seal key (the
 *                         file shard-N/seal), 0 in records written before seals existed
 *    56   8  hdr_sum      XXH3-64 of bytes 0..55
 *
 * The seal is what lets recovery search past a damaged record safely: a record found by
 * searching (not reached by the lengths of the records before it) is taken only if its seal
 * holds, and a message body, which a client wrote, cannot carry one without the key.
 *
 * then body_len bytes of body (canonical CR LF), env_len bytes of envelope, and zero padding to
 * the next multiple of 8. A record that starts with 64 zero bytes marks the end of the records
 * (segments are preallocated with zeros).
 *
 * Envelope: a sequence of TLVs, tag u16 | len u32 | len bytes, no padding. Unknown tags are
 * skipped (so later issues can add fields); RCPT repeats once per recipient, in order.
 *
 * Journal record (32 bytes): magic "SLJR" u32 | event u8 | version u8 | reserved u16 |
 * qid u64 | arg u64 | sum u64 (XXH3-64 of bytes 0..23). 32 zero bytes mark the end.
 */
#ifndef SLUICE_SPOOL_RECORD_H
#define SLUICE_SPOOL_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "spool.h"

#define SPOOL_RECORD_MAGIC    0x43524c53u  /* "SLRC" little-endian */
#define SPOOL_RECORD_VERSION  1
#define SPOOL_RECORD_HDR_SIZE 64
#define SPOOL_RECORD_ALIGN    8
/* Limits a reader enforces before it trusts a header: no sane message is larger. */
#define SPOOL_RECORD_BODY_MAX (UINT64_C(1) << 36)   /* 64 GiB */
#define SPOOL_RECORD_ENV_MAX  (UINT32_C(64) << 20)  /* 64 MiB */

#define SPOOL_RECORD_F_SPILL  0x0001u   /* the record is alone in its segment (streamed body) */

struct spool_record_hdr {
	uint32_t magic;
	uint8_t  version;
	uint8_t  hdr_size;
	uint16_t flags;
	uint64_t body_len;
	uint32_t env_len;
	uint32_t reserved0;
	uint64_t qid;
	uint64_t received_ns;
	uint64_t payload_sum;
	uint64_t reserved1;
	uint64_t hdr_sum;
} __attribute__((packed));

_Static_assert(sizeof(struct spool_record_hdr) == SPOOL_RECORD_HDR_SIZE, "record header size");

/* The decoded, host-order view of a header that passed spool_record_hdr_decode. */
struct spool_record_info {
	uint16_t flags;
	uint8_t  hdr_size;
	uint64_t body_len;
	uint32_t env_len;
	spool_qid qid;
	uint64_t received_ns;
	uint64_t payload_sum;
	uint64_t rec_len;   /* hdr_size + body + env, rounded up to 8 */
	uint64_t seal;      /* bytes 48..55 as written */
	uint32_t ev_seq32;  /* bytes 20..23 */
};

static inline uint64_t spool_record_align(uint64_t n)
{
	return (n + (SPOOL_RECORD_ALIGN - 1)) & ~(uint64_t)(SPOOL_RECORD_ALIGN - 1);
}

/* Fills out[64] with a header (computing hdr_sum); payload_sum is the caller's XXH3 of body ||
 * envelope. */
void spool_record_hdr_encode(uint8_t out[SPOOL_RECORD_HDR_SIZE], spool_qid qid, uint16_t flags,
			     uint64_t body_len, uint32_t env_len, uint64_t received_ns,
			     uint64_t payload_sum);
/* Sets ev_seq32 of an encoded header (before sealing it). */
void spool_record_hdr_set_evseq(uint8_t hdr[SPOOL_RECORD_HDR_SIZE], uint32_t seq32);
/* Sets the seal of an encoded header (and its hdr_sum again) with the shard's key. */
void spool_record_hdr_seal(uint8_t hdr[SPOOL_RECORD_HDR_SIZE], uint64_t key);
/* Whether the 64 bytes of an encoded header carry the seal of key. */
bool spool_record_seal_ok(const void *hdr, uint64_t key);

/*
 * Checks the header in p[0..len). Returns 0 (info_r filled: its lengths can be trusted), -ENODATA
 * if the first 64 bytes are all zero (end of records), -EAGAIN if len < 64 and not all zero
 * (a partial header), -EBADMSG if the magic, version, size or checksum is wrong or the lengths
 * exceed the limits above.
 */
int spool_record_hdr_decode(const void *p, size_t len, struct spool_record_info *info_r);
/* Checks the payload: p points at the byte after the header, len bytes are available. 0, -EAGAIN
 * if fewer than body_len + env_len bytes are available, -EBADMSG on checksum mismatch. */
int spool_record_payload_check(const struct spool_record_info *info, const void *p, size_t len);
uint64_t spool_record_payload_sum(const void *body, size_t body_len, const void *env,
				  size_t env_len);

/* ---- Envelope TLVs ---- */

enum spool_tlv_tag {
	SPOOL_TLV_ROLE = 1,         /* u8 */
	SPOOL_TLV_BODY_TYPE,        /* u8 */
	SPOOL_TLV_FLAGS,            /* u8: bit 0 smtputf8, bit 1 tls */
	SPOOL_TLV_MAIL_FROM,        /* bytes */
	SPOOL_TLV_RCPT,             /* bytes, repeated */
	SPOOL_TLV_HELO,
	SPOOL_TLV_CLIENT_ADDR,
	SPOOL_TLV_CLIENT_NAME,
	SPOOL_TLV_LISTENER,
	SPOOL_TLV_TLS_INFO,
	SPOOL_TLV_SESSION_ID,
	SPOOL_TLV_RECEIVED_NS,      /* u64 */
	SPOOL_TLV_SCORE_MILLI,      /* i32 */
	SPOOL_TLV_ACTION,           /* u8 */
	SPOOL_TLV_RULES_HIT,
	SPOOL_TLV_DATA_FLAGS,       /* u32 */
};
#define SPOOL_TLV_HDR 6

/* The encoded size of env (exact). */
size_t spool_record_env_size(const struct spool_envelope *env);
/* Writes the TLVs into out (spool_record_env_size(env) bytes); returns the count written. */
size_t spool_record_env_encode(const struct spool_envelope *env, uint8_t *out);
/*
 * Decodes an envelope. Strings become slices into p. Recipients: *nrcpt_r gets the count in the
 * record; the first rcpt_cap of them are stored in rcpts (call again with a bigger array if
 * needed). env_r->rcpts is set to rcpts and env_r->nrcpt to min(count, rcpt_cap).
 * Returns 0, or -EBADMSG if a TLV runs past len or a fixed-size field has the wrong length.
 */
int spool_record_env_decode(const void *p, size_t len, struct spool_envelope *env_r,
			    struct slice *rcpts, uint32_t rcpt_cap, uint32_t *nrcpt_r);

/*
 * Finds the Message-ID header in the header section of body[0..len) (up to the first empty line),
 * unfolding continuation lines, and returns its value without the surrounding white space (the
 * angle brackets are kept). Returns 0 and a slice into body, or -ENOENT. A folded value is
 * returned as the raw span (with the CR LF and white space inside it).
 */
int spool_record_message_id(const void *body, size_t len, struct slice *id_r);

/* ---- Journal records ---- */

#define SPOOL_JREC_MAGIC   0x524a4c53u   /* "SLJR" little-endian */
#define SPOOL_JREC_VERSION 1
#define SPOOL_JREC_SIZE    32
/* Internal journal events beside enum spool_event (never passed to spool_journal_append). */
#define SPOOL_JEV_HIGHWATER 100   /* arg: the highest segment number ever used */

/* The deferral details (after each DEFER): the attempt count and the last reply's text (the
 * remote server's words, what mailq shows). One 32-byte record whose arg packs
 * text_len u16 | attempts u16 | text_sum u32 (low 32 bits of XXH3-64 of the text), followed by
 * text_len bytes of text in 32-byte blocks, zero padded. The text is printable ASCII only (the
 * encoder replaces anything else by '?'), so a text block can never decode as a record: its byte
 * 5 is never SPOOL_JREC_VERSION. */
#define SPOOL_JEV_DEFER_INFO 101
#define SPOOL_JTEXT_MAX      256
/* The marker of an event that rides the journal (spool_event.h), right after the state records
 * it describes, in the same write: arg = number (40 bits) | type << 40 | recipient << 48
 * (0xffff: none or too large). State replay ignores it. */
#define SPOOL_JEV_EVMARK     102
#define SPOOL_EVMARK_SEQ(a)  ((a) & ((UINT64_C(1) << 40) - 1))
#define SPOOL_EVMARK_TYPE(a) ((unsigned)(((a) >> 40) & 0xff))
#define SPOOL_EVMARK_RCPT(a) ((uint32_t)((a) >> 48))
/* At the head of every journal snapshot: arg = the last event whose batch had completed (every
 * event up to it is whole, with its state, even if that state was compacted away since). State
 * replay ignores it. */
#define SPOOL_JEV_EVDURABLE  103

struct spool_jrec {
	uint8_t     event;
	spool_qid   qid;
	uint64_t    arg;
	/* SPOOL_JEV_DEFER_INFO only, filled by the scanner: the checked text (not NUL-terminated,
	 * valid during the callback) and the attempt count. */
	const char *text;
	uint32_t    text_len, attempts;
};

void spool_record_jrec_encode(uint8_t out[SPOOL_JREC_SIZE], const struct spool_jrec *j);
/* 0, -ENODATA (all zero: end), -EAGAIN (fewer than 32 bytes, not all zero), -EBADMSG. */
int spool_record_jrec_decode(const void *p, size_t len, struct spool_jrec *j_r);

/* Encodes a DEFER_INFO record with its text (cut to SPOOL_JTEXT_MAX, made printable) into out,
 * which has room for spool_record_jtext_size(len) bytes; returns the bytes written. */
size_t spool_record_jtext_size(size_t text_len);
size_t spool_record_jtext_encode(uint8_t *out, spool_qid qid, uint32_t attempts,
				 const char *text, size_t text_len);
/* For a decoded DEFER_INFO header j: the bytes of text blocks that follow it. */
size_t spool_record_jtext_blocks(const struct spool_jrec *j);
/* Checks the text blocks p[0..len) after the header j and fills j->text, text_len, attempts.
 * 0, -EAGAIN (fewer bytes than the blocks), -EBADMSG (checksum, or a byte not printable). */
int spool_record_jtext_check(struct spool_jrec *j, const void *p, size_t len);

#endif
