/*
 * smtp_cmd.h - the command table and dispatch (after Postfix smtpd's command table and
 * OpenSMTPD's check/proceed split).
 *
 * Dispatch: verb lookup (unknown verbs land on a counted sentinel) -> state mask -> TLS gate ->
 * check (syntax only, no side effects) -> exec. The table is const; counters are per shard,
 * indexed by verb. Shard thread only.
 */
#ifndef SLUICE_SMTP_CMD_H
#define SLUICE_SMTP_CMD_H

#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "smtp/smtp_parse.h"

struct smtp_session;

#define SMTP_CF_PRE_TLS  0x01u   /* allowed before TLS even when TLS would be required */
#define SMTP_CF_LAST     0x02u   /* ends a pipelined group: input after it is discarded */
#define SMTP_CF_NO_ARG   0x04u   /* takes no argument (501 if one is given) */
#define SMTP_CF_NEED_ARG 0x08u   /* needs an argument (501 without) */

/* exec runs after the state and syntax checks passed. */
typedef void smtp_exec_fn(struct smtp_session *s, struct slice arg);

struct smtp_cmd {
	const char     *name;
	enum smtp_verb  verb;
	uint32_t        allowed;     /* mask of enum smtp_state where the verb is legal */
	uint32_t        flags;
	smtp_exec_fn   *exec;
	const char     *state_error; /* the 503 text when the state is wrong */
};

void smtp_cmd_dispatch(struct smtp_session *s, struct slice line);
/* Body bytes in DATA or BDAT state; returns the bytes used (smtp_cmd_data.c). */
size_t smtp_cmd_body_input(struct smtp_session *s, const uint8_t *p, size_t len);

/* The executors, one file per group. */
smtp_exec_fn smtp_cmd_helo, smtp_cmd_ehlo;                                   /* smtp_cmd_helo.c */
smtp_exec_fn smtp_cmd_mail;                                                  /* smtp_cmd_mail.c */
smtp_exec_fn smtp_cmd_rcpt;                                                  /* smtp_cmd_rcpt.c */
smtp_exec_fn smtp_cmd_data, smtp_cmd_bdat;                                   /* smtp_cmd_data.c */
smtp_exec_fn smtp_cmd_rset, smtp_cmd_noop, smtp_cmd_quit, smtp_cmd_vrfy,
	     smtp_cmd_expn, smtp_cmd_help, smtp_cmd_auth;                       /* smtp_cmd_misc.c */
smtp_exec_fn smtp_cmd_starttls;                                              /* smtp_tls.c */

#endif
