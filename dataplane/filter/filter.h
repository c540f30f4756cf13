/*
 * filter.h - the content scanner: compiled rule sets, per-shard scan state, per-message scans,
 * and the verdict.
 *
 * Threads: a struct filter_db is immutable once loaded and shared read-only by every shard; its
 * reference count is atomic, so the agent can load a new one and hand it to the shards while
 * they still scan messages with the old one (each message keeps the db it began with). A
 * struct filter_shard (Hyperscan scratch, PCRE2 match data) and every struct filter_msg made
 * from it belong to one shard thread.
 *
 * What is scanned (rule classes, SpamAssassin's names; see patterns/compiler/rules_format.h):
 *   full     the message as fed: one Hyperscan stream
 *   header   each header target (a header name with a modifier) in block mode, once the
 *            message's header block is complete; mimeheader targets once per MIME part
 *   body     rendered text from the MIME parser, Subject first, whitespace runs collapsed to
 *            one space, one paragraph a line: one stream
 *   rawbody  decoded, unrendered text parts: one stream
 *   uri      each URI on its own line: one stream
 * Rules Hyperscan could take only as a prefilter are confirmed with PCRE2 at the end of the
 * message against the class's text, which is kept (up to FILTER_CONFIRM_MAX bytes a class) only
 * when the rule set has such rules in that class. Metas and the score are computed at the end.
 * Rule hits are bits by rule id; nothing is allocated per match or per byte.
 *
 * Limits: FILTER_CONFIRM_MAX per class for confirmation text; the MIME parser's limits
 * (mime.h); header targets as the rule set defines them.
 */
#ifndef SLUICE_FILTER_FILTER_H
#define SLUICE_FILTER_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "base/buf.h"

#define FILTER_CONFIRM_MAX  (1u << 20)
#define FILTER_HITS_MAX     512u

struct filter_db;
struct filter_shard;
struct filter_msg;

struct filter_verdict {
	int32_t  score_milli;      /* sum of the scores of the rules that hit, in 1/1000 */
	int32_t  required_milli;   /* the rule set's required_score (SpamAssassin's 5.0) */
	uint32_t nhits;            /* scored rules that hit (sub-rules __X not counted) */
	char     hits[FILTER_HITS_MAX]; /* comma-separated names, cut with "..." when too long */
	bool     anomalies;        /* the MIME parser reported something odd */
	uint32_t anomaly_mask;     /* bit per enum mime_anomaly */
	uint64_t ruleset_hash;     /* which rule set gave this verdict */
	uint32_t pcre_capped;      /* PCRE2 runs stopped by a cap (counted as no match) */
	char     capped_rule[64];  /* the first rule so stopped, "" if none */
};

/* What the session knows about the message besides its bytes (the EnvelopeFrom pseudo-header
 * and later rules on the client). All optional; copied. */
struct filter_envelope {
	struct slice mail_from;    /* reverse-path without <>; empty for the null sender */
	struct slice helo;
	const struct sockaddr *client;
};

/* --- rule sets (filter_db.c) ------------------------------------------------------------ */

/* Loads the compiled rule set in dir (written by sluice-rules compile). Refuses files whose
 * magic, format version, Hyperscan version or platform differ from this process's, files from
 * different rule sets, and anything malformed. Returns 0 and *db_r with one reference; -ENOENT
 * or another -errno from reading; -EINVAL (err says why: a mismatch or a malformed file);
 * -ENOMEM. Off the mail path (it compiles the PCRE2 confirmations). */
int  filter_db_load(const char *dir, struct filter_db **db_r, char *err, size_t errlen);
struct filter_db *filter_db_ref(struct filter_db *db);
/* Drops a reference and sets *db to NULL; the last one frees. Any thread. */
void filter_db_unref(struct filter_db **db);
uint32_t filter_db_nrules(const struct filter_db *db);
uint64_t filter_db_hash(const struct filter_db *db);
int32_t  filter_db_required_milli(const struct filter_db *db);

/* --- per shard (filter_shard.c) ---------------------------------------------------------- */

/* Scratch for db (which the shard references). Returns 0 or -ENOMEM. */
int  filter_shard_new(struct filter_shard **fs_r, struct filter_db *db);
void filter_shard_free(struct filter_shard **fs);
/* Hot reload: new messages use db from now on; messages begun before keep theirs. Grows the
 * scratch so it serves both. Returns 0, or -ENOMEM with the old db still in place. */
int  filter_shard_set_db(struct filter_shard *fs, struct filter_db *db);
struct filter_db *filter_shard_db(const struct filter_shard *fs);
/* The shard's PCRE2 runs (confirmations and evals) and those stopped by the match, depth or
 * JIT-stack cap since the shard began. */
void filter_shard_pcre_stats(const struct filter_shard *fs, uint64_t *calls_r, uint64_t *capped_r);
/* Where the scan time goes (sluice-rules test --profile, bench/run-scan.py): off by default;
 * on, every message scanned from fs adds its monotonic-clock nanoseconds per part (Hyperscan per
 * class, header targets, PCRE2 confirmations, evals, metas) and per rule that PCRE2 ran for.
 * Returns 0 or -ENOMEM. The print lists the parts and the top rules by PCRE2 time, per message
 * over nmsg messages. */
int  filter_shard_profile(struct filter_shard *fs, bool on);
void filter_shard_profile_print(const struct filter_shard *fs, FILE *f, uint64_t nmsg, unsigned top);

/* --- per message (filter_msg.c) ---------------------------------------------------------- */

/* Begins a message with the shard's current db. Returns 0 or -ENOMEM. */
int  filter_msg_begin(struct filter_shard *fs, struct filter_msg **fm_r);
void filter_msg_set_envelope(struct filter_msg *fm, const struct filter_envelope *env);
/* The message as stored (header + body, canonical CR LF) in pieces of any size. */
void filter_msg_feed(struct filter_msg *fm, const uint8_t *p, size_t len);
/* End of data: closes the streams, confirms, runs metas, scores. Call once. */
void filter_msg_end(struct filter_msg *fm, struct filter_verdict *v_r);
/* Frees a message whether or not it was ended. */
void filter_msg_free(struct filter_msg **fm);

/* --- verdict (filter_verdict.c) ---------------------------------------------------------- */

/* "Yes, score=7.3 required=5.0 tests=A,B" (SpamAssassin's X-Spam-Status value; no field name,
 * no line end). Returns the length it needed (like snprintf). */
int  filter_verdict_status(const struct filter_verdict *v, char *buf, size_t len);
bool filter_verdict_is_spam(const struct filter_verdict *v);

#endif
