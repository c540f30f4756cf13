/*
 * filter_eval_mime.h - the evals of ids RULES_EVAL_MIME_FIRST.. (patterns/compiler/rules_format.h):
 * MIMEEval, BodyEval and ImageInfo, after SpamAssassin 4.0's plugins of those names.
 *
 * Shard thread; the per-message state is struct filter_eval_mime_state inside struct filter_msg
 * (reset by filter_eval_mime_begin at each message). It is fixed in size: the message streams
 * through the hooks below (called by filter_msg.c and, through the MIME sink's raw callback,
 * by mime.c), each of which does bounded work per byte and keeps only counts, flags, the
 * header values of the entity being read, and one table of word hashes for
 * multipart_alternative_difference.
 */
#ifndef SLUICE_FILTER_EVAL_MIME_H
#define SLUICE_FILTER_EVAL_MIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct filter_db;
struct filter_rule;
struct filter_msg;

#define FILTER_EVAL_MIME_CT    256u   /* bytes of an entity's last Content-Type kept */
#define FILTER_EVAL_MIME_TYPE  64u    /* a MIME type, as SpamAssassin's parse_content_type */
#define FILTER_EVAL_MIME_WORDS 2048u  /* slots of the word table (a power of 2) */
#define FILTER_EVAL_MIME_ALTS  8u     /* multipart/alternative nesting followed */

/* multipart_alternative_difference's words: hash, and the times it was seen in the HTML and
 * in the other text parts of one multipart/alternative */
struct filter_eval_mime_word {
	uint64_t h;
	uint16_t html, text;
};

struct filter_eval_mime_state {
	/* the entity whose header block is being read: its last Content-Type,
	 * Content-Transfer-Encoding and Content-Disposition (SpamAssassin reads the last) */
	char     ct[FILTER_EVAL_MIME_CT];
	uint16_t ct_len;
	bool     ct_seen;
	char     cte[32];
	uint8_t  cte_len;
	bool     cd_attach, cd_ai;       /* "attachment" in it; it starts attachment|inline */
	uint32_t nfields;                /* header fields of the entity */
	bool     hdr_end_seen;           /* its header block ended at a line (not a delimiter) */
	bool     hdr_blank;              /* ... at the empty line */
	bool     after_delim;            /* it follows a multipart delimiter */

	/* the leaf whose body is streaming */
	bool     in_leaf;
	char     type[FILTER_EVAL_MIME_TYPE];
	bool     l_html, l_text;         /* text/html, text/ */
	bool     l_ascii;                /* text/plain in us-ascii (or no charset) */
	bool     l_unicode;              /* text/plain, CTE none, 7bit or 8bit */
	bool     l_qp;                   /* CTE exactly quoted-printable */
	bool     l_b64;                  /* CTE exactly base64 (and not application/ics) */
	bool     l_bytes;                /* counts for the multipart ratio */
	bool     l_defined;              /* not an attachment: the ratio may use it */
	bool     l_calendar;
	uint8_t  l_img;                  /* ImageInfo: 0, 1 gif, 2 png, 3 jpeg */
	uint8_t  l_alt;                  /* inside a multipart/alternative: 0, 1 text, 2 HTML */
	uint64_t l_nbytes;
	/* the current line of the leaf */
	uint32_t ln_len;
	char     ln_start[6];
	uint8_t  qp_st, qp_d1;
	uint32_t qp_line, qp_run, qp_since;
	bool     qp_ws;
	uint8_t  qp_tail[2];
	uint8_t  uni_st;
	uint32_t uni_line;
	bool     ln_illegal;

	/* MIMEEval's _check_attachments results */
	uint32_t html_count, text_count, b64_count, qp_hdr_count, attach;
	bool     b64_text, bad_iso, multipart_alt, caps_fp;
	bool     qp_long;
	uint64_t qp_bytes;
	int64_t  qp_chars;
	uint64_t normal_chars, unicode_chars;
	bool     ascii_illegal;
	bool     have_html_b, have_text_b;
	uint64_t html_b, text_b;        /* the last text/html and text/plain leaves' bytes */
	uint32_t b64_len;                /* longest base64 line */
	/* check_msg_parse_flags */
	bool     epilogue, missing_headers, missing_sep;
	bool     ending;                 /* mime_parser_end is running */

	/* multipart/alternative: depths of those open, the words of the outermost */
	uint16_t alt_depth[FILTER_EVAL_MIME_ALTS];
	uint8_t  nalt;
	bool     ma_non_text;
	bool     words_full, alt_pseudo, html_img;
	uint8_t  img_st;                 /* "<img" matched in this HTML part */
	uint64_t tok_h;
	bool     tok_in, tok_word;
	double   madiff;
	uint32_t madiff_html, madiff_text;
	/* Message::content_summary is (multipart/alternative, text/html, text/calendar): no
	 * difference (an invitation) */
	bool     top_alt, deeper;
	uint8_t  kids, kid_sig;

	/* rawbody: lines (blank ones) and length; body: length */
	uint64_t raw_lines, raw_blank, raw_len, body_len;
	bool     raw_nonblank;
	/* check_for_uppercase over the body's paragraphs */
	uint64_t up_len, up_lower, up_upper;
	uint32_t p_len, p_lower, p_upper;
	bool     p_space;
	uint32_t p_spaces;           /* ' ' in the paragraph (tvd_vertical_words) */
	int32_t  tvd;                /* the highest space ratio of a paragraph over 5 bytes; -1 */
	char     p_term;             /* what ends the paragraph in SpamAssassin's text: '\n', ' '
				      * or nothing (the last one) */
	char     p_head[160];
	/* the message's body length (line ends counted once) */
	uint64_t body_bytes;
	uint8_t  hdr_st;                 /* 0 in a header line, 1 at a line start, 2 CR there, 3 body */
	uint8_t  last_byte;
	bool     finished;               /* the test has closed what was open */

	/* ImageInfo: the image being decoded */
	uint32_t b64_acc;
	uint8_t  b64_n;
	uint8_t  im_st;
	uint32_t im_pos, im_skip, im_w, im_h;
	uint8_t  im_buf[16];
	uint8_t  im_nbuf;
	bool     im_done;
	uint32_t img_count[4];           /* all, gif, png, jpeg */
	double   img_area[4];

	struct filter_eval_mime_word words[FILTER_EVAL_MIME_WORDS];
	uint32_t nwords;
};

/* At load: parses the arguments of rule ru (an eval of this block). 0 or -EINVAL/-ENOMEM. */
int  filter_eval_mime_prepare(struct filter_db *db, struct filter_rule *ru, const char *args, size_t len);
/* At each message's start: resets the state. */
void filter_eval_mime_begin(struct filter_msg *fm);
/* At the message's end, before the metas: does rule ru hit? */
bool filter_eval_mime_test(struct filter_msg *fm, const struct filter_rule *ru);

/* The hooks, in message order. feed: every byte of the message as stored; header: a field of
 * the entity at depth (decoded value); headers_end: its header block is complete; raw: the
 * MIME sink's raw callback (mime.h), arg is the struct filter_msg; text: body_text (UTF-8,
 * HTML rendered); rawbody: rawbody (decoded); body: the normalized body stream the body class
 * scans; ending: mime_parser_end is about to run. */
void filter_eval_mime_feed(struct filter_msg *fm, const uint8_t *p, size_t n);
void filter_eval_mime_header(struct filter_msg *fm, unsigned depth, const char *name, size_t nlen,
			     const char *val, size_t vlen);
void filter_eval_mime_headers_end(struct filter_msg *fm, unsigned depth);
void filter_eval_mime_raw(void *arg, unsigned kind, const uint8_t *p, size_t n, bool eol);
void filter_eval_mime_text(struct filter_msg *fm, const uint8_t *p, size_t n);
void filter_eval_mime_rawbody(struct filter_msg *fm, const uint8_t *p, size_t n);
void filter_eval_mime_body(struct filter_msg *fm, const uint8_t *p, size_t n);
void filter_eval_mime_ending(struct filter_msg *fm);

#endif
