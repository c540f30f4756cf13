/*
 * rules_format.h - the on-disk format of a compiled rule set (a wire format shared by the
 * compiler, which writes it, and dataplane/filter, which loads it; no code here).
 *
 * A compiled rule set is a directory:
 *   header.hsdb  rawbody.hsdb  body.hsdb  uri.hsdb  full.hsdb   Hyperscan databases per class
 *   rules.meta                                                   rules, scores, metas, PCRE2
 * Every file starts with struct rules_file_hdr. The Hyperscan files hold sections (one for the
 * streamed classes; one per header target for the header class, scanned in block mode) as
 *   u32 target, u32 len, len bytes of hs_serialize_database() output.
 * rules.meta holds the records below, little-endian, packed, in this order:
 *   struct rules_meta_hdr, ntargets x target, nrules x rule (in evaluation order: every meta
 *   rule comes after the rules it reads), u32 n + n x str: the freemail_domains list.
 * Strings are u16 length + bytes (no NUL). Everything is checked on load: a loader never trusts
 * a length or an index in these files.
 *
 * The data plane never compiles a Hyperscan database: it deserializes these and refuses files
 * whose Hyperscan version or platform differ from its own (the node then asks for a recompile).
 */
#ifndef SLUICE_PATTERNS_RULES_FORMAT_H
#define SLUICE_PATTERNS_RULES_FORMAT_H

#include <stdint.h>

#define RULES_FORMAT_MAGIC    "SLUICERS"  /* 8 bytes, no NUL */
#define RULES_FORMAT_VERSION  3u

/* Rule classes; the value is also the index of the class's file. */
enum rules_class {
	RULES_CLASS_HEADER = 0,  /* one block-mode database per header target */
	RULES_CLASS_BODY,        /* rendered text, whitespace collapsed, one paragraph a line */
	RULES_CLASS_RAWBODY,     /* transfer-decoded body, not rendered */
	RULES_CLASS_URI,         /* each URI on its own line */
	RULES_CLASS_FULL,        /* the whole message as received */
	RULES_CLASS_NSCAN,       /* classes with a Hyperscan file */
	RULES_CLASS_META = RULES_CLASS_NSCAN,
	RULES_CLASS_NONE,        /* not a rule that runs (kept only so metas can name it) */
};

#define RULES_CLASS_FILES { "header.hsdb", "body.hsdb", "rawbody.hsdb", "uri.hsdb", "full.hsdb" }
#define RULES_META_FILE   "rules.meta"
#define RULES_META_CLASS  0xffu   /* rules_file_hdr.cls of rules.meta */

struct rules_file_hdr {
	char     magic[8];
	uint32_t format_version;
	uint32_t cls;             /* enum rules_class, or RULES_META_CLASS */
	char     hs_version[80];  /* hs_version() of the compiler, NUL-padded */
	uint64_t hs_tune;         /* hs_platform_info_t the databases were compiled for */
	uint64_t hs_cpu_features;
	uint64_t ruleset_hash;    /* XXH64 of the rule-set source text, in file order */
	uint32_t nsections;       /* Hyperscan files: sections; rules.meta: 0 */
	uint32_t reserved;
} __attribute__((packed));

/* How a header rule takes its header (SpamAssassin's modifiers). */
enum rules_hdr_mod {
	RULES_HDR_DECODED = 0,   /* Name: RFC 2047 decoded, unfolded */
	RULES_HDR_RAW,           /* Name:raw */
	RULES_HDR_ADDR,          /* Name:addr: the first address */
	RULES_HDR_NAME,          /* Name:name: the first display name */
	RULES_HDR_HOST,          /* Name:host: the domain of :addr */
	RULES_HDR_DOMAIN,        /* Name:domain: same as :host here (no public suffix list) */
};

/* Target flags. */
#define RULES_TF_MIME     0x1u   /* mimeheader: headers of MIME parts, not of the message */

/* target record: u16 flags, u8 mod, u8 pad, str name (lower-case; ALL, ToCc, MESSAGEID,
 * EnvelopeFrom keep their spelling) */

/* Rule kinds. */
enum rules_kind {
	RULES_KIND_HS = 0,       /* Hyperscan, exact */
	RULES_KIND_PREFILTER,    /* Hyperscan with HS_FLAG_PREFILTER, confirmed by PCRE2 */
	RULES_KIND_EXISTS,       /* header exists:Name (target only, no regex) */
	RULES_KIND_META,         /* expression over other rules */
	RULES_KIND_OFF,          /* defined but never hits (eval:, unsupported, disabled) */
	RULES_KIND_EVAL,         /* an eval: test Sluice implements natively (enum rules_eval) */
	RULES_KIND_PCRE,         /* too large for Hyperscan even as a prefilter: PCRE2 alone over
				  * the class's text at the end of the message */
};

/* The eval: functions Sluice implements (dataplane/filter/filter_eval.c), after
 * SpamAssassin's Plugin::HeaderEval, MIMEEval and HTMLEval. An eval rule record carries the
 * id in its pcre_flags field and the argument text in its pcre source field. */
enum rules_eval {
	RULES_EVAL_OUTLOOK_MSGID = 1,  /* check_outlook_message_id() */
	RULES_EVAL_SHIFTED_DATE,       /* check_for_shifted_date(min, max): hours, or 'undef' */
	RULES_EVAL_SUBJ_ALL_CAPS,      /* subject_is_all_caps() */
	RULES_EVAL_MISSING_TO,         /* check_for_missing_to_header() */
	RULES_EVAL_HTML_MESSAGE,       /* html_test('html') */
	RULES_EVAL_MIME_HTML_ONLY,     /* check_for_mime_html_only() */
	RULES_EVAL_MIME_HTML_MOSTLY,   /* check_for_mime_html() (some HTML part) */
	RULES_EVAL_ALL_TRUSTED,        /* check_all_trusted(): relays, all of them trusted */
	RULES_EVAL_NO_RELAYS,          /* check_no_relays() */
	RULES_EVAL_FREEMAIL_FROM,      /* check_freemail_from() */
	RULES_EVAL_FREEMAIL_HEADER,    /* check_freemail_header('Header'[, 'regex']) */
	RULES_EVAL_HELO_IP_MISMATCH,   /* helo_ip_mismatch() (RelayEval) */
	RULES_EVAL_NO_RDNS_DOTCOM_HELO,/* check_for_no_rdns_dotcom_helo() (RelayEval) */
	RULES_EVAL_EQUAL_FROM_DOMAINS, /* check_equal_from_domains(): From and envelope differ */
	RULES_EVAL_HTML_TAG_EXISTS,    /* html_tag_exists('tag') (HTMLEval) */
	RULES_EVAL_HTML_TAG_BALANCE,   /* html_tag_balance('tag', 'op n'): opened - closed */
	RULES_EVAL_ENV_HDR_FROM_MATCH, /* check_for_matching_env_and_hdr_from() (HeaderEval) */
	RULES_EVAL_HTML_LENGTH,        /* html_range('length', min, max): HTML source length */
	RULES_EVAL_HTML_IMAGE_ONLY,    /* html_image_only(min, max): an img, and that length */
	RULES_EVAL_FORGED_YAHOO,       /* check_for_forged_yahoo_received_headers() */
	RULES_EVAL_HTML_LINK_IMAGE,    /* html_text_match('anchor', '<img>'): an img inside an a */
	RULES_EVAL_HTML_COMMENT,       /* html_text_match('comment', '<!.*?>') */
	RULES_EVAL_HTML_COMMENT_SAVED, /* html_text_match('comment', '<!-- saved from url=...') */
	RULES_EVAL_CORE_END,
	/* Further evals come in blocks of ids by plugin family, each block implemented in its own
	 * file of dataplane/filter/ and named in its own table below; a block's ids stay below the
	 * next block's first. */
	RULES_EVAL_MIME_FIRST = 64,    /* filter_eval_mime.c: MIMEEval, BodyEval, ImageInfo */
	RULES_EVAL_MIME_CHECK = RULES_EVAL_MIME_FIRST + 1, /* check_for_mime('mime_...') */
	RULES_EVAL_MIME_PARSE_FLAG,    /* check_msg_parse_flags('flag') */
	RULES_EVAL_MIME_MP_RATIO,      /* check_mime_multipart_ratio(min, max) */
	RULES_EVAL_MIME_ASCII_ILLEGAL, /* check_for_ascii_text_illegal() */
	RULES_EVAL_MIME_UNICODE_RATIO, /* check_abundant_unicode_ratio(ratio) */
	RULES_EVAL_MIME_FARAWAY,       /* check_for_faraway_charset() */
	RULES_EVAL_MIME_UPPERCASE,     /* check_for_uppercase(min, max) */
	RULES_EVAL_MIME_MA_NON_TEXT,   /* check_ma_non_text() */
	RULES_EVAL_MIME_B64_LENGTH,    /* check_base64_length(min[, max]) */
	RULES_EVAL_MIME_QP_RATIO,      /* check_qp_ratio(min) */
	RULES_EVAL_MIME_ALT_DIFF,      /* multipart_alternative_difference(min, max) (BodyEval) */
	RULES_EVAL_MIME_ALT_DIFF_COUNT,/* multipart_alternative_difference_count(ratio, minhtml) */
	RULES_EVAL_MIME_BLANK_RATIO,   /* check_blank_line_ratio(min, max[, minlines]) */
	RULES_EVAL_MIME_BODY_LENGTH,   /* check_body_length(max) */
	RULES_EVAL_MIME_IMAGE_COUNT,   /* image_count(type, min[, max]) (ImageInfo) */
	RULES_EVAL_MIME_PIXELS,        /* pixel_coverage(type, min[, max]) */
	RULES_EVAL_MIME_IMAGE_RATIO,   /* image_to_text_ratio(type, min, max) */
	RULES_EVAL_MIME_TVD_VERTICAL,  /* tvd_vertical_words(min, max) (BodyEval) */
	RULES_EVAL_MIME_END,
	RULES_EVAL_HTML_FIRST = 128,   /* filter_eval_htmlx.c: the rest of HTMLEval, URI tests */
	RULES_EVAL_HTMLX_TEST = RULES_EVAL_HTML_FIRST + 1, /* html_test('font_low_contrast'...) */
	RULES_EVAL_HTMLX_RANGE,        /* html_range('max_size'|'..._ratio', min, max) */
	RULES_EVAL_HTMLX_IMAGE_RATIO,  /* html_image_ratio(min, max): text / image area */
	RULES_EVAL_HTMLX_EVAL,         /* html_eval('length', 'op n') */
	RULES_EVAL_HTMLX_TITLE120,     /* html_text_match('title', '.{120}') */
	RULES_EVAL_HTMLX_TITLE_SUBJ,   /* html_title_subject_ratio(r): title / Subject length */
	RULES_EVAL_HTMLX_CHARSET_FARAWAY, /* html_charset_faraway() */
	RULES_EVAL_HTML_END,
	RULES_EVAL_HDR_FIRST = 192,    /* filter_eval_header.c: the rest of HeaderEval, RelayEval */
	RULES_EVAL_HDR_FREEMAIL_REPLYTO = RULES_EVAL_HDR_FIRST + 1, /* check_freemail_replyto('replyto') */
	RULES_EVAL_HDR_FREEMAIL_REPLY,     /* check_freemail_replyto('reply') */
	RULES_EVAL_HDR_SORTED_RECIPS,      /* sorted_recipients() */
	RULES_EVAL_HDR_SIMILAR_RECIPS,     /* similar_recipients(min, max) */
	RULES_EVAL_HDR_FAKE_AOL,           /* check_for_fake_aol_relay_in_rcvd() */
	RULES_EVAL_HDR_FORGED_HOTMAIL,     /* check_for_forged_hotmail_received_headers() */
	RULES_EVAL_HDR_NO_HOTMAIL,         /* check_for_no_hotmail_received_headers() */
	RULES_EVAL_HDR_FORGED_EUDORAMAIL,  /* check_for_forged_eudoramail_received_headers() */
	RULES_EVAL_HDR_FORGED_GMAIL,       /* check_for_forged_gmail_received_headers() */
	RULES_EVAL_HDR_FORGED_JUNO,        /* check_for_forged_juno_received_headers() */
	RULES_EVAL_HDR_ILLEGAL_CHARS,      /* check_illegal_chars('Header', ratio, count) */
	RULES_EVAL_HDR_COUNT_RANGE,        /* check_header_count_range('Header', min, max) */
	RULES_EVAL_HDR_UNRESOLVED_TEMPLATE,/* check_unresolved_template() */
	RULES_EVAL_HDR_TO_IN_SUBJECT,      /* check_for_to_in_subject('user' | 'address') */
	RULES_EVAL_HDR_RCVD_REMOVER,       /* gated_through_received_hdr_remover() */
	RULES_EVAL_HDR_RATWARE_NAME_ID,    /* check_ratware_name_id() */
	RULES_EVAL_HDR_RATWARE_EFROM,      /* check_ratware_envelope_from() */
	RULES_EVAL_HDR_FORGED_TRAIL,       /* check_for_forged_received_trail() (RelayEval) */
	RULES_EVAL_HDR_MAILFROM_RCVD,      /* check_mailfrom_matches_rcvd() (WLBLEval) */
	RULES_EVAL_HDR_END,
	RULES_EVAL_MAX = 255,
};

/* name, argument text (NULL: any; exact, or a prefix when it ends in '*'), id */
#define RULES_EVAL_TABLE { \
	{ "check_outlook_message_id", NULL, RULES_EVAL_OUTLOOK_MSGID }, \
	{ "check_for_shifted_date", NULL, RULES_EVAL_SHIFTED_DATE }, \
	{ "subject_is_all_caps", NULL, RULES_EVAL_SUBJ_ALL_CAPS }, \
	{ "check_for_missing_to_header", NULL, RULES_EVAL_MISSING_TO }, \
	{ "check_for_mime_html_only", NULL, RULES_EVAL_MIME_HTML_ONLY }, \
	{ "check_for_mime_html", NULL, RULES_EVAL_MIME_HTML_MOSTLY }, \
	{ "check_all_trusted", NULL, RULES_EVAL_ALL_TRUSTED }, \
	{ "check_no_relays", NULL, RULES_EVAL_NO_RELAYS }, \
	{ "check_freemail_from", NULL, RULES_EVAL_FREEMAIL_FROM }, \
	{ "check_freemail_header", NULL, RULES_EVAL_FREEMAIL_HEADER }, \
	{ "helo_ip_mismatch", NULL, RULES_EVAL_HELO_IP_MISMATCH }, \
	{ "check_for_no_rdns_dotcom_helo", NULL, RULES_EVAL_NO_RDNS_DOTCOM_HELO }, \
	{ "check_equal_from_domains", NULL, RULES_EVAL_EQUAL_FROM_DOMAINS }, \
	{ "html_tag_exists", NULL, RULES_EVAL_HTML_TAG_EXISTS }, \
	{ "html_tag_balance", NULL, RULES_EVAL_HTML_TAG_BALANCE }, \
	{ "check_for_matching_env_and_hdr_from", NULL, RULES_EVAL_ENV_HDR_FROM_MATCH }, \
	{ "html_image_only", NULL, RULES_EVAL_HTML_IMAGE_ONLY }, \
	{ "check_for_forged_yahoo_received_headers", NULL, RULES_EVAL_FORGED_YAHOO }, \
	/* html_test('html') is HTML_MESSAGE; html_range's 'length'; html_text_match's three */ \
	{ "html_test", "'html'", RULES_EVAL_HTML_MESSAGE }, \
	{ "html_test", "\"html\"", RULES_EVAL_HTML_MESSAGE }, \
	{ "html_range", "'length'*", RULES_EVAL_HTML_LENGTH }, \
	{ "html_range", "\"length\"*", RULES_EVAL_HTML_LENGTH }, \
	{ "html_text_match", "'anchor', '<img>'", RULES_EVAL_HTML_LINK_IMAGE }, \
	{ "html_text_match", "'comment', '<!.*?>'", RULES_EVAL_HTML_COMMENT }, \
	{ "html_text_match", "'comment', '<!-- saved from url=\\(\\d{4}\\)'", RULES_EVAL_HTML_COMMENT_SAVED }, \
}
#define RULES_EVAL_TABLE_MIME { \
	{ "check_for_mime", NULL, RULES_EVAL_MIME_CHECK }, \
	{ "check_msg_parse_flags", "'mime_epilogue_exists'", RULES_EVAL_MIME_PARSE_FLAG }, \
	{ "check_msg_parse_flags", "'missing_mime_headers'", RULES_EVAL_MIME_PARSE_FLAG }, \
	{ "check_msg_parse_flags", "'missing_mime_head_body_separator'", RULES_EVAL_MIME_PARSE_FLAG }, \
	{ "check_mime_multipart_ratio", NULL, RULES_EVAL_MIME_MP_RATIO }, \
	{ "check_for_ascii_text_illegal", NULL, RULES_EVAL_MIME_ASCII_ILLEGAL }, \
	{ "check_abundant_unicode_ratio", NULL, RULES_EVAL_MIME_UNICODE_RATIO }, \
	{ "check_for_faraway_charset", NULL, RULES_EVAL_MIME_FARAWAY }, \
	{ "check_for_uppercase", NULL, RULES_EVAL_MIME_UPPERCASE }, \
	{ "check_ma_non_text", NULL, RULES_EVAL_MIME_MA_NON_TEXT }, \
	{ "check_base64_length", NULL, RULES_EVAL_MIME_B64_LENGTH }, \
	{ "check_qp_ratio", NULL, RULES_EVAL_MIME_QP_RATIO }, \
	{ "multipart_alternative_difference", NULL, RULES_EVAL_MIME_ALT_DIFF }, \
	{ "multipart_alternative_difference_count", NULL, RULES_EVAL_MIME_ALT_DIFF_COUNT }, \
	{ "check_blank_line_ratio", NULL, RULES_EVAL_MIME_BLANK_RATIO }, \
	{ "check_body_length", NULL, RULES_EVAL_MIME_BODY_LENGTH }, \
	{ "tvd_vertical_words", NULL, RULES_EVAL_MIME_TVD_VERTICAL }, \
	{ "image_count", NULL, RULES_EVAL_MIME_IMAGE_COUNT }, \
	{ "pixel_coverage", NULL, RULES_EVAL_MIME_PIXELS }, \
	{ "image_to_text_ratio", NULL, RULES_EVAL_MIME_IMAGE_RATIO }, \
}
#define RULES_EVAL_TABLE_HTML { \
	{ "html_test", "'font_low_contrast'", RULES_EVAL_HTMLX_TEST }, \
	{ "html_test", "'font_invalid_color'", RULES_EVAL_HTMLX_TEST }, \
	{ "html_test", "'font_face_bad'", RULES_EVAL_HTMLX_TEST }, \
	{ "html_test", "'form_action_mailto'", RULES_EVAL_HTMLX_TEST }, \
	{ "html_test", "'embeds'", RULES_EVAL_HTMLX_TEST }, \
	{ "html_range", "'max_size'*", RULES_EVAL_HTMLX_RANGE }, \
	{ "html_range", "'closed_extra_ratio'*", RULES_EVAL_HTMLX_RANGE }, \
	{ "html_range", "'bad_tag_ratio'*", RULES_EVAL_HTMLX_RANGE }, \
	{ "html_range", "'non_element_ratio'*", RULES_EVAL_HTMLX_RANGE }, \
	{ "html_range", "'obfuscation_ratio'*", RULES_EVAL_HTMLX_RANGE }, \
	{ "html_image_ratio", NULL, RULES_EVAL_HTMLX_IMAGE_RATIO }, \
	{ "html_eval", "'length'*", RULES_EVAL_HTMLX_EVAL }, \
	{ "html_text_match", "'title', '.{120}'", RULES_EVAL_HTMLX_TITLE120 }, \
	{ "html_title_subject_ratio", NULL, RULES_EVAL_HTMLX_TITLE_SUBJ }, \
	{ "html_charset_faraway", NULL, RULES_EVAL_HTMLX_CHARSET_FARAWAY }, \
}
#define RULES_EVAL_TABLE_HDR { \
	{ "check_freemail_replyto", "'replyto'", RULES_EVAL_HDR_FREEMAIL_REPLYTO }, \
	{ "check_freemail_replyto", "", RULES_EVAL_HDR_FREEMAIL_REPLYTO }, \
	{ "check_freemail_replyto", "'reply'", RULES_EVAL_HDR_FREEMAIL_REPLY }, \
	{ "sorted_recipients", NULL, RULES_EVAL_HDR_SORTED_RECIPS }, \
	{ "similar_recipients", NULL, RULES_EVAL_HDR_SIMILAR_RECIPS }, \
	{ "check_for_fake_aol_relay_in_rcvd", NULL, RULES_EVAL_HDR_FAKE_AOL }, \
	{ "check_for_forged_hotmail_received_headers", NULL, RULES_EVAL_HDR_FORGED_HOTMAIL }, \
	{ "check_for_no_hotmail_received_headers", NULL, RULES_EVAL_HDR_NO_HOTMAIL }, \
	{ "check_for_forged_eudoramail_received_headers", NULL, RULES_EVAL_HDR_FORGED_EUDORAMAIL }, \
	{ "check_for_forged_gmail_received_headers", NULL, RULES_EVAL_HDR_FORGED_GMAIL }, \
	{ "check_for_forged_juno_received_headers", NULL, RULES_EVAL_HDR_FORGED_JUNO }, \
	{ "check_illegal_chars", NULL, RULES_EVAL_HDR_ILLEGAL_CHARS }, \
	{ "check_header_count_range", NULL, RULES_EVAL_HDR_COUNT_RANGE }, \
	{ "check_unresolved_template", NULL, RULES_EVAL_HDR_UNRESOLVED_TEMPLATE }, \
	{ "check_for_to_in_subject", NULL, RULES_EVAL_HDR_TO_IN_SUBJECT }, \
	{ "gated_through_received_hdr_remover", NULL, RULES_EVAL_HDR_RCVD_REMOVER }, \
	{ "check_ratware_name_id", NULL, RULES_EVAL_HDR_RATWARE_NAME_ID }, \
	{ "check_ratware_envelope_from", NULL, RULES_EVAL_HDR_RATWARE_EFROM }, \
	{ "check_for_forged_received_trail", NULL, RULES_EVAL_HDR_FORGED_TRAIL }, \
	{ "check_mailfrom_matches_rcvd", NULL, RULES_EVAL_HDR_MAILFROM_RCVD }, \
}

/* Rule flags. */
#define RULES_RF_NEGATE      0x01u  /* header !~ (hits when the pattern does not match) */
#define RULES_RF_SUBRULE     0x02u  /* __NAME: not scored, not reported */
#define RULES_RF_ABSENT_HIT  0x04u  /* header rule: its pattern matches the if-unset value */
#define RULES_RF_NICE        0x08u  /* tflags nice */
#define RULES_RF_MULTIPLE    0x10u  /* tflags multiple: metas see the match count */
#define RULES_RF_NOSUBJECT   0x20u  /* tflags nosubject: body rule skips the Subject line */
#define RULES_RF_ENDS_AT     0x40u  /* line-confirmed: every match ends at a candidate end and
					    * nothing after its end decides it (no lookahead, \b \B $
					    * \z \Z): PCRE2 gets the line up to the last candidate */

/* Prefilter rules of the classes whose text is one unit a line (body: one paragraph a line, as
 * SpamAssassin matches body rules per paragraph; uri: one URI a line), except tflags multiple,
 * are "line-confirmed": their Hyperscan form is compiled without HS_FLAG_SINGLEMATCH, so it
 * reports every candidate end, and the filter runs PCRE2 over each line holding a candidate
 * end, that line alone (as SpamAssassin matches one paragraph, or one URI, at a time: no match
 * crosses a line, and ^ $ and lookarounds see the line's edges). Other prefilter rules report
 * their first candidate and are confirmed over the class's whole text. */
#define RULES_LINE_CONFIRMED(cls, flags) \
	(((cls) == RULES_CLASS_BODY || (cls) == RULES_CLASS_URI) && !((flags) & RULES_RF_MULTIPLE))

/* rule record: u8 cls, u8 kind, u16 flags, i32 score_milli, u32 target (header rules: the
 * target in the low 24 bits, a tflags multiple rule's maxhits (0: none, at most 255) in the
 * high 8; for a tflags multiple rule of another class its maxhits, 0 for no limit; else 0),
 * str name, str describe, u32 pcre_flags (PCRE2 compile options), u32 len + pcre source
 * (prefilter rules; eval rules: enum rules_eval and the argument text; else 0), u32 ninstr +
 * ninstr x struct rules_meta_instr (meta rules). */

/* Meta expressions are compiled to postfix code over a small stack of doubles. */
enum rules_meta_op {
	RULES_OP_RULE = 1,   /* push the hit count of rule arg (index in rule order) */
	RULES_OP_CONST,      /* push val */
	RULES_OP_NOT,
	RULES_OP_NEG,
	RULES_OP_AND,
	RULES_OP_OR,
	RULES_OP_ADD,
	RULES_OP_SUB,
	RULES_OP_MUL,
	RULES_OP_DIV,
	RULES_OP_GT,
	RULES_OP_GE,
	RULES_OP_LT,
	RULES_OP_LE,
	RULES_OP_EQ,
	RULES_OP_NE,
};

#define RULES_META_MAX_INSTR 4096u
#define RULES_META_STACK     64u    /* the compiler refuses deeper expressions */

struct rules_meta_instr {
	uint32_t op;
	uint32_t arg;
	double   val;
} __attribute__((packed));

struct rules_meta_hdr {
	uint32_t ntargets;
	uint32_t nrules;
	int32_t  required_milli;    /* required_score of the rule set (SpamAssassin's 5.0 default) */
	uint32_t score_set;         /* which of four scores was taken (0: no Bayes, no network) */
} __attribute__((packed));

#define RULES_MAX_RULES   65536u
#define RULES_MAX_TARGETS 4096u

#endif
