/*
 * filter_types.h - the filter's internal structures (filter_db.c, filter_shard.c, filter_msg.c
 * share them; nothing outside dataplane/filter includes this).
 */
#ifndef SLUICE_FILTER_FILTER_TYPES_H
#define SLUICE_FILTER_FILTER_TYPES_H

#define PCRE2_CODE_UNIT_WIDTH 8

#include <hs/hs.h>
#include <pcre2.h>
#include <stdatomic.h>

#include "filter.h"
#include "filter_eval_header.h"
#include "filter_eval_htmlx.h"
#include "filter_eval_mime.h"
#include "../../patterns/compiler/rules_format.h"

/* Header targets whose value is not one header's. */
enum filter_special {
	FILTER_SP_NONE = 0,
	FILTER_SP_ALL,          /* every header "Name: value\n" */
	FILTER_SP_TOCC,         /* To and Cc */
	FILTER_SP_MESSAGEID,    /* Message-Id, Resent-Message-Id, X-Message-Id */
	FILTER_SP_ENVFROM,      /* the envelope sender (else Return-Path) */
	FILTER_SP_RELAYS_TRUSTED,   /* X-Spam-Relays-Trusted, -Internal (filter_relay.c) */
	FILTER_SP_RELAYS_UNTRUSTED, /* X-Spam-Relays-Untrusted, -External */
	FILTER_SP_UNKNOWN,      /* SpamAssassin's other computed pseudo-headers (X-Spam-DKIM,
				 * ALL-TRUSTED ...): Sluice does not compute them: absent */
	FILTER_SP_ALL_UNTRUSTED,    /* ALL-UNTRUSTED, ALL-EXTERNAL: the fields from the first
				     * untrusted relay's Received on (filter_eval_header.c) */
};

struct filter_target {
	char          *name;       /* lower-case, or ALL / MESSAGEID */
	uint64_t       hash;       /* of name, to match header fields quickly */
	uint8_t        mod;        /* enum rules_hdr_mod */
	uint8_t        special;    /* enum filter_special */
	uint16_t       flags;      /* RULES_TF_* */
	hs_database_t *db;         /* NULL: only exists rules or no pattern rules */
	uint32_t      *rules;      /* header rules (regex and exists) of this target */
	uint32_t       nrules;
};

struct filter_rule {
	char       *name;
	char       *describe;
	uint8_t     cls;
	uint8_t     kind;
	uint16_t    flags;
	int32_t     score_milli;
	uint32_t    target;
	pcre2_code *pcre;           /* prefilter confirmation */
	struct rules_meta_instr *meta;
	uint32_t    nmeta;
	uint32_t    eval;           /* RULES_KIND_EVAL: enum rules_eval */
	double      eval_arg[2];
	char       *eval_hdr;       /* freemail evals: the header to take addresses from */
	int         eval_tag;       /* HTML tag evals: the slot in filter_db.html_tags, or -1 */
	pcre2_code *eval_re;        /* freemail evals: what the address must also match;
				     * forged Yahoo: the Received forms Yahoo writes */
	pcre2_code *eval_re2;       /* forged Yahoo: Yahoo's bulk mailer */
	uint8_t     maxhits;        /* header rules, tflags multiple: the count's cap, 0: 255 */
	bool        lines;          /* line-confirmed prefilter rule (RULES_LINE_CONFIRMED) */
};

#define FILTER_HTML_TAGS    16u   /* distinct tag names the evals may ask about */
#define FILTER_HTML_TAG_LEN 16u   /* longest tag name + 1 */
#define FILTER_HTML_PARTS   8u    /* HTML parts whose length is kept (the rest: not tested) */

struct filter_db {
	atomic_uint         refs;
	uint64_t            hash;
	int32_t             required_milli;
	uint32_t            nrules;
	struct filter_rule *rules;
	uint32_t            ntargets;
	struct filter_target *targets;
	hs_database_t      *db[RULES_CLASS_NSCAN];   /* streamed classes; [HEADER] unused */
	bool                confirm[RULES_CLASS_NSCAN]; /* class has prefilter rules */
	uint32_t            first_meta;              /* rules [first_meta, nrules) are metas or
						      * anything after them, in eval order */
	bool                has_mime_targets;
	/* RULES_KIND_PCRE rules of the streamed classes, run at the end of the message */
	uint32_t           *pcre_only;
	uint32_t            npcre_only;
	/* freemail_domains: exact names sorted for bsearch, and the ones with wildcards */
	char              **fm_exact, **fm_wild;
	uint32_t            nfm_exact, nfm_wild;
	/* the HTML tag names the html_tag_* evals ask about (filter_eval_prepare fills it) */
	char                html_tags[FILTER_HTML_TAGS][FILTER_HTML_TAG_LEN];
	uint32_t            nhtml_tags;
	int                 html_a, html_img;       /* their slots, for an img inside an a; -1 */
	bool                html_comments;          /* an eval reads HTML comments */
	struct filter_eval_header_db *ev_header;    /* filter_eval_header.c's patterns, or NULL */
	bool                body_evals;             /* an eval reads the body stream (so it is
						     * made without body rules too) */
	bool                htmlx;                  /* an eval of filter_eval_htmlx.c */
};

#define FILTER_MSG_BBUF 4096u

/* The start and end tags of text/html parts, counted for html_tag_exists and html_tag_balance
 * (filter_eval.c) from the raw HTML: a tokenizer after HTML::Parser's, which SpamAssassin
 * uses: comments, declarations and the content of script and style hold no tags, a '>' inside
 * a quoted attribute value does not end the tag. Counts are per part, as SpamAssassin keeps
 * one result per HTML part. */
struct filter_html_tags {
	bool     in_part;      /* the current leaf is text/html */
	uint8_t  st;           /* tokenizer state */
	bool     closing;      /* </name> */
	uint8_t  nlen;         /* bytes of name; FILTER_HTML_TAG_LEN: too long, matches nothing */
	uint8_t  quote;        /* quote character of the attribute value being skipped */
	uint8_t  dashes;       /* '-' run inside a comment */
	uint8_t  raw;          /* 0, or 1 + the index of "script" / "style" whose content is skipped */
	uint8_t  rawmatch;     /* bytes of "</script" matched */
	char     name[FILTER_HTML_TAG_LEN];
	int32_t  inside[FILTER_HTML_TAGS];   /* this part: opened - closed, never below 0 */
	uint32_t seen_part;                  /* slots seen in this part */
	uint32_t seen;                       /* slots seen in any HTML part */
	uint64_t vals[FILTER_HTML_TAGS];     /* bit v: a part where the tag was seen ended with
					      * inside == v (63: 63 or more) */
	uint32_t len;                        /* this part: bytes of HTML source (HTML.pm's
					      * "length") */
	/* the first FILTER_HTML_PARTS non-empty HTML parts: length and slots seen */
	uint32_t part_len[FILTER_HTML_PARTS];
	uint32_t part_seen[FILTER_HTML_PARTS];
	uint32_t nparts;
	/* comments (HTML::Parser's "<!--...-->"), for html_text_match('comment', ...) */
	uint8_t  clen;                       /* bytes of the comment's start kept in cbuf */
	bool     cfirst;                     /* still on the comment's first line */
	char     cbuf[24];
	bool     comment;                    /* '<!.*?>': a comment with a '>' on its first line */
	bool     comment_saved;              /* a comment starting " saved from url=(dddd)" */
	bool     link_img;                   /* an img start tag inside an a element */
};

struct mime_parser;

struct filter_hdr {
	uint32_t name_off, name_len;
	uint32_t raw_off, raw_len;
	uint32_t dec_off, dec_len;
	uint64_t hash;                 /* of the lower-cased name */
};

struct filter_text {
	uint8_t *p;
	size_t   len, cap;
};

struct filter_msg {
	struct filter_shard *fs;
	struct filter_db    *db;
	struct filter_msg   *next;        /* free list */
	hs_stream_t         *st[RULES_CLASS_NSCAN];
	uint64_t            *hits, *cand;
	uint8_t             *cnt;          /* tflags multiple: match counts (capped at 255) */
	size_t               nwords, wcap;
	struct mime_parser  *mp;          /* NULL without the MIME parser */
	/* header fields: the message's, then those of the MIME part being read */
	struct filter_hdr   *hdrs;
	uint32_t             nhdrs, ntop;
	size_t               hcap;
	char                *arena;
	size_t               alen, acap;
	bool                 top_done;
	/* the value being scanned for a header target */
	char                *val;
	size_t               vlen, vcap;
	/* X-Spam-Relays-Trusted / -Untrusted (filter_relay.c) */
	char                 relays_t[1024], relays_u[2048];
	size_t               relays_t_len, relays_u_len;
	unsigned             n_trusted, n_untrusted;
	uint32_t             relays_u_nordns;   /* bit i: untrusted relay i has no rDNS and its
					         * MTA looked (Received.pm's no_reverse_dns) */
	/* e-mail addresses in body text become mailto: URIs (SpamAssassin's uri list does so) */
	char                 atok[128];
	size_t               atok_len;
	bool                 atok_over;
	/* body normalizer */
	uint8_t              bbuf[FILTER_MSG_BBUF];
	size_t               blen;
	unsigned             nl;
	bool                 ws, para;
	struct filter_text   txt[RULES_CLASS_NSCAN];
	size_t               body_subj_end;  /* body text: where the Subject line ends */
	char                 env_from[256];
	size_t               env_from_len;
	bool                 has_env;
	uint32_t             anomaly_mask;
	/* for the evals: leaf text parts by type, the current entity's Content-Type */
	unsigned             n_html, n_text;
	bool                 ct_seen, ct_html, ct_text, ct_multi;
	struct filter_html_tags html;
	/* the eval blocks' own state (filter_eval_mime.c, _htmlx.c, _header.c) */
	struct filter_eval_mime_state   ev_mime;
	struct filter_eval_htmlx_state  ev_htmlx;
	struct filter_eval_header_state ev_header;
	bool                 ended, oom;
	/* PCRE2 runs stopped by the shard's caps (filter_shard_match), the first such rule */
	uint32_t             pcre_capped;
	uint32_t             capped_rule;
	/* candidate lines of line-confirmed rules, in the order Hyperscan reported them: one
	 * entry per rule and line; cline[id] is the rule's latest entry while its cand bit is set */
	struct filter_cand_line *clines;
	size_t               nclines, clcap;
	uint32_t            *cline;
};

/* A line holding candidate ends of a line-confirmed rule: PCRE2 runs over that line alone, as
 * SpamAssassin runs a body rule over one paragraph (a uri rule over one URI). */
struct filter_cand_line {
	uint32_t id;
	uint32_t start;    /* offset of the line's first byte in the class's kept text */
	uint32_t last;     /* the last candidate end seen on the line */
};

struct filter_shard {
	struct filter_db     *db;
	hs_scratch_t         *scratch;
	pcre2_match_data     *md;
	pcre2_match_context  *mctx;
	pcre2_jit_stack      *jit;
	struct filter_msg    *free_list;    /* ended messages kept for reuse */
	unsigned              nfree;
	/* every pcre2_match of a confirmation or an eval, and those stopped by the match, depth
	 * or JIT-stack cap (counted as no match: filter_shard_match) */
	uint64_t              pcre_calls;
	uint64_t              pcre_capped;
	struct filter_prof   *prof;         /* NULL unless filter_shard_profile turned it on */
};

/* filter_shard_profile's sums, in nanoseconds. */
enum filter_prof_part {
	FILTER_PROF_HS_HEADER = 0,   /* [RULES_CLASS_*]: Hyperscan over the class's text */
	FILTER_PROF_HS_END = RULES_CLASS_NSCAN,
	FILTER_PROF_TARGETS = FILTER_PROF_HS_END,  /* header targets: values, Hyperscan, PCRE2 */
	FILTER_PROF_RELAYS,          /* filter_relay_build */
	FILTER_PROF_CONFIRM,         /* PCRE2 confirmations of the streamed classes */
	FILTER_PROF_EVAL,            /* filter_eval_run */
	FILTER_PROF_META,            /* metas and the score */
	FILTER_PROF_TOTAL,           /* filter_msg_feed .. filter_msg_end */
	FILTER_PROF_NPARTS,
};

struct filter_prof {
	uint64_t  ns[FILTER_PROF_NPARTS];
	uint32_t  nrules;
	uint64_t *rule_ns, *rule_calls;   /* PCRE2 per rule id (of the shard's db when it began) */
	uint64_t *rule_reports;           /* Hyperscan match reports per rule id, streamed classes */
};

/* filter_shard.c: the monotonic clock in ns, for the profile. */
uint64_t filter_shard_ns(void);

/* The caps of one PCRE2 run: the match limit bounds backtracking steps (the JIT honours it
 * too), the depth limit the interpreter's nesting, the JIT stack the JIT's. */
#define FILTER_SHARD_MATCH_LIMIT 1000000u
#define FILTER_SHARD_DEPTH_LIMIT 50000u

/* filter_shard.c: pcre2_match with the shard's match data and caps, for rule id of fm's rule
 * set (or UINT32_MAX for none). Returns pcre2_match's result; a run stopped by a cap is counted
 * (shard and message) and returned as PCRE2_ERROR_NOMATCH: a rule is only scored on a match
 * PCRE2 proved, and a crafted text must not turn a rule on. */
int filter_shard_match(struct filter_msg *fm, uint32_t id, const pcre2_code *re, PCRE2_SPTR subj,
		       PCRE2_SIZE len, PCRE2_SIZE start);

/* filter_db.c: does the shard's scratch serve db? (allocates/grows it) */
int filter_db_scratch(struct filter_db *db, hs_scratch_t **scratch);

/* filter_eval.c: the eval: tests Sluice implements natively, run at the end of the message
 * before the metas (sets hit bits). */
void filter_eval_run(struct filter_msg *fm);
/* The envelope sender as SpamAssassin's EnvelopeFrom: the session's, else X-Envelope-From,
 * Envelope-Sender or Return-Path when written above every Received field (and none when
 * fetchmail picked up an X-Sender message). Lower-cased address into out; false if none. */
bool filter_eval_envfrom(const struct filter_msg *fm, char *out, size_t outlen);
/* The next quoted argument of "'a', 'b'" (terminated in place), or NULL: the evals'
 * argument lists. */
char *filter_eval_quoted(char **p);
/* Parses an eval's argument text at load into ru->eval_arg (and db->html_tags). */
int filter_eval_prepare(struct filter_db *db, struct filter_rule *ru, const char *args, size_t len);
/* The HTML tag counter: a text/html part begins (html true) or another entity does; raw HTML
 * of the current part; the message ends. */
void filter_eval_html_part(struct filter_msg *fm, bool html);
void filter_eval_html_feed(struct filter_msg *fm, const uint8_t *p, size_t n);

/* filter_relay.c: fills the relays_* fields from the message's Received fields. */
void filter_relay_build(struct filter_msg *fm);

/* filter_meta.c */
double filter_meta_eval(const struct rules_meta_instr *ins, uint32_t n, const uint64_t *hits,
			const uint8_t *cnt);

static inline bool filter_bit(const uint64_t *bits, uint32_t i)
{
	return (bits[i >> 6] >> (i & 63)) & 1;
}

static inline void filter_bit_set(uint64_t *bits, uint32_t i)
{
	bits[i >> 6] |= 1ull << (i & 63);
}

#endif
