/*
 * smtp_limits.h - every SMTP limit in one place. The RFC 5321 §4.5.3.1 minimums are the defaults;
 * the configurable ones are defaults of struct node_limits (smtp/smtp_conf.h).
 */
#ifndef SLUICE_SMTP_LIMITS_H
#define SLUICE_SMTP_LIMITS_H

#define SMTP_CMD_LINE_MAX   512u   /* §4.5.3.1.4: command line, verb to CRLF inclusive */
#define SMTP_TEXT_LINE_MAX  1000u  /* §4.5.3.1.6: text line, CRLF inclusive */
#define SMTP_PATH_MAX       256u   /* §4.5.3.1.3: reverse/forward path, brackets inclusive */
#define SMTP_LOCAL_MAX      64u    /* §4.5.3.1.1: local part */
#define SMTP_DOMAIN_MAX     255u   /* §4.5.3.1.2: domain */
#define SMTP_PARAM_LINE_MAX 512u   /* MAIL/RCPT with ESMTP parameters: still one command line */
#define SMTP_REPLY_LINE_MAX 512u   /* §4.5.3.1.5: reply line, CRLF inclusive */
#define SMTP_BDAT_CHUNK_MAX (64ull << 20) /* a BDAT chunk size we will even parse */

/* Configurable, with these defaults. */
#define SMTP_DEF_MESSAGE_SIZE   (25ull << 20)
#define SMTP_DEF_RECIPIENTS     100u      /* §4.5.3.1.8: at least 100 must be accepted */
#define SMTP_DEF_ERRORS         10u
#define SMTP_DEF_SESSION_MS     (600u * 1000u)
#define SMTP_DEF_IDLE_MS        (300u * 1000u)  /* §4.5.3.2.7: server timeout 5 minutes */
#define SMTP_DEF_CONN_PER_IP    50u
#define SMTP_DEF_HEADER_COUNT   1000u     /* header fields per message; past it 554 5.6.0 */
#define SMTP_DEF_HEADER_SIZE    (256u << 10)   /* the header block; past it 552 5.3.4 */

/* A command line that overflows is swallowed to its LF and answered 500; one that never ends is
 * cut off once this much of it has been swallowed (500, then close). */
#define SMTP_LINE_DISCARD_MAX   (64u << 10)

#endif
