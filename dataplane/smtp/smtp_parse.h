/*
 * smtp_parse.h - the SMTP command parser: line assembly across reads, verb split, and the
 * MAIL/RCPT argument grammar (RFC 5321 §4.1.1.2-3, §4.1.2; RFC 1870 SIZE; RFC 6152 8BITMIME;
 * RFC 3030 BINARYMIME/CHUNKING; RFC 6531 SMTPUTF8; RFC 3461 DSN parameters).
 *
 * Pure functions over bounded buffers; no allocation, no I/O; any thread. The parser never
 * assumes one read is one command: struct smtp_line keeps a partial line between calls.
 */
#ifndef SLUICE_SMTP_PARSE_H
#define SLUICE_SMTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "smtp_limits.h"

enum smtp_parse_status {
	SMTP_PARSE_DONE,     /* a complete line is in *line_r */
	SMTP_PARSE_AGAIN,    /* every input byte was consumed into the partial line; need more */
	SMTP_PARSE_BAD,      /* the line (consumed through its LF) holds a NUL or a bare CR */
	SMTP_PARSE_TOOLONG,  /* the line (consumed through its LF) exceeded the limit */
};

/*
 * The partial-line holder. A line that arrives whole is returned as a slice into the caller's
 * input and never copied; only a line split across reads is copied here. Command lines end at LF;
 * one CR right before the LF is stripped; a CR anywhere else makes the line BAD. An overlong line
 * is swallowed to its LF and reported TOOLONG once; `discarded` says how much of it has been
 * swallowed so far, so that the caller can give up on a line that never ends.
 */
struct smtp_line {
	uint16_t len;         /* bytes held in buf */
	bool     overflow;    /* past max: discarding until LF */
	uint32_t discarded;   /* overflow: bytes swallowed so far (saturating) */
	bool     bad;         /* saw NUL or bare CR in the held part */
	char     buf[SMTP_CMD_LINE_MAX];
};

void smtp_line_init(struct smtp_line *lb);

/*
 * Finds the next line in in[0..len). max is the line limit including CRLF (SMTP_CMD_LINE_MAX, or
 * more if configured, but never above sizeof(lb->buf) for lines that straddle reads; a longer
 * configured limit only applies to lines that arrive whole).
 * Sets *used_r to the input bytes consumed (for DONE/BAD/TOOLONG: through the LF).
 * DONE: *line_r is the line without its CR LF; it points into `in` or into lb->buf and is valid
 * until the next call. AGAIN: *used_r == len.
 */
enum smtp_parse_status smtp_line_next(struct smtp_line *lb, const uint8_t *in, size_t len,
				      size_t max, struct slice *line_r, size_t *used_r);

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO, SMTP_VERB_EHLO, SMTP_VERB_MAIL, SMTP_VERB_RCPT, SMTP_VERB_DATA,
	SMTP_VERB_BDAT, SMTP_VERB_RSET, SMTP_VERB_NOOP, SMTP_VERB_QUIT, SMTP_VERB_VRFY,
	SMTP_VERB_EXPN, SMTP_VERB_HELP, SMTP_VERB_STARTTLS, SMTP_VERB_AUTH,
	SMTP_VERB_HTTP,      /* GET, POST, HEAD, PUT, CONNECT, OPTIONS: a web client or a proxy abuse */
	SMTP_VERB_COUNT
};

/*
 * Splits a line into verb and argument. The verb is matched case-insensitively and must be
 * followed by end of line or by exactly one SP (tolerated: several SP or HTAB; counted in
 * *sloppy_r when not NULL). The argument has trailing SP/HTAB trimmed.
 * "MAIL FROM:" and "RCPT TO:" are still MAIL and RCPT: the argument starts at "FROM:"/"TO:".
 */
enum smtp_verb smtp_parse_verb(struct slice line, struct slice *arg_r);
/* The same, and *sloppy_r (when not NULL) says whether the verb was followed by something other
 * than exactly one SP (several SP, or HTAB), for the caller to count. smtp_parse_verb has no
 * room for that out-parameter, hence this second entry point. */
enum smtp_verb smtp_parse_verb_sloppy(struct slice line, struct slice *arg_r, bool *sloppy_r);
const char *smtp_verb_name(enum smtp_verb v);

enum smtp_body_type { SMTP_BODY_7BIT = 0, SMTP_BODY_8BITMIME, SMTP_BODY_BINARYMIME };

/* Errors from the argument parsers, each with its reply (see smtp_parse_err_reply). */
enum smtp_arg_err {
	SMTP_ARG_OK = 0,
	SMTP_ARG_SYNTAX,          /* 501 5.5.4 syntax error in parameters or arguments */
	SMTP_ARG_BAD_SENDER,      /* 501 5.1.7 bad sender address syntax */
	SMTP_ARG_BAD_RCPT,        /* 501 5.1.3 bad recipient address syntax */
	SMTP_ARG_PATH_TOO_LONG,   /* 501 5.1.3 (RCPT) / 5.1.7 (MAIL) path too long */
	SMTP_ARG_LOCAL_TOO_LONG,  /* 501 5.1.3 / 5.1.7 local part too long */
	SMTP_ARG_DOMAIN_TOO_LONG, /* 501 5.1.3 / 5.1.7 domain too long */
	SMTP_ARG_UNKNOWN_PARAM,   /* 555 5.5.4 unsupported parameter */
	SMTP_ARG_BAD_PARAM,       /* 501 5.5.4 bad parameter value */
	SMTP_ARG_DUP_PARAM,       /* 501 5.5.4 duplicate parameter */
	SMTP_ARG_UTF8_NEEDS_SMTPUTF8, /* 553 5.6.7 non-ASCII address without SMTPUTF8 */
	SMTP_ARG_COUNT
};

struct smtp_reply_def {
	uint16_t    code;       /* 501 */
	const char *enhanced;   /* "5.5.4" */
	const char *text;       /* "Syntax error in parameters" */
};
/* is_rcpt picks 5.1.3 over 5.1.7 where they differ. */
const struct smtp_reply_def *smtp_parse_err_reply(enum smtp_arg_err e, bool is_rcpt);

/*
 * A parsed path. addr is "local@domain" without brackets and without a source route (RFC 5321
 * §4.1.1.3: "@a,@b:" is accepted and dropped); a quoted local part is kept quoted as sent.
 * For MAIL FROM:<> addr is empty and is_null is set. Slices point into the argument.
 */
struct smtp_path {
	struct slice addr;
	struct slice local;
	struct slice domain;     /* empty only for the null path, or "postmaster" without domain */
	bool         is_null;
	bool         utf8;       /* holds bytes >= 0x80 */
};

struct smtp_mail_args {
	struct smtp_path    path;
	uint64_t            size;        /* SIZE= value, 0 if absent */
	bool                has_size;
	enum smtp_body_type body;
	bool                smtputf8;
	struct slice        ret;         /* DSN RET=FULL|HDRS, empty if absent */
	struct slice        envid;       /* DSN ENVID= (xtext, kept encoded) */
};

struct smtp_rcpt_args {
	struct smtp_path path;
	bool             postmaster;    /* RCPT TO:<Postmaster> without a domain (§4.5.1) */
	struct slice     notify;        /* DSN NOTIFY= */
	struct slice     orcpt;         /* DSN ORCPT= */
};

/* arg is what smtp_parse_verb returned ("FROM:<a@b> SIZE=10"). FROM: and TO: are matched
 * case-insensitively; one space after the colon is tolerated (common, Postfix allows it). */
enum smtp_arg_err smtp_parse_mail_arg(struct slice arg, struct smtp_mail_args *out);
enum smtp_arg_err smtp_parse_rcpt_arg(struct slice arg, struct smtp_rcpt_args *out);

/* "BDAT <size> [LAST]" (RFC 3030). */
enum smtp_arg_err smtp_parse_bdat_arg(struct slice arg, uint64_t *size_r, bool *last_r);

/* HELO/EHLO argument: a domain or an address literal; we are liberal (many clients send junk)
 * but refuse empty and anything with control characters or spaces in the middle. */
enum smtp_arg_err smtp_parse_helo_arg(struct slice arg);

#endif
