/*
 * smtp_cmd_mail.c - MAIL FROM (RFC 5321 §4.1.1.2) with SIZE (RFC 1870), BODY (RFC 6152, 3030),
 * SMTPUTF8 (RFC 6531) and the DSN parameters (RFC 3461, parsed and kept).
 */
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_session.h"

void smtp_cmd_mail(struct smtp_session *s, struct slice arg)
{
	const struct node_config *c = s->sh->conf;
	struct smtp_mail_args ma;
	enum smtp_arg_err e = smtp_parse_mail_arg(arg, &ma);
	struct smtp_txn *t;

	if (e != SMTP_ARG_OK) {
		const struct smtp_reply_def *rd = smtp_parse_err_reply(e, false);

		smtp_reply(s, rd->code, rd->enhanced, "%s", rd->text);
		smtp_session_error(s);
		return;
	}
	if (!s->esmtp && (ma.has_size || ma.body != SMTP_BODY_7BIT || ma.smtputf8)) {
		/* Parameters are an extension: a HELO client may not use them. */
		smtp_reply(s, 555, "5.5.4", "Error: MAIL parameters need EHLO");
		smtp_session_error(s);
		return;
	}
	if (ma.has_size && ma.size > c->limits.message_size) {
		smtp_reply(s, 552, "5.3.4", "Error: message size exceeds fixed limit");
		return;
	}
	t = smtp_txn_begin(s);
	if (t == NULL) {
		smtp_reply(s, 451, "4.3.0", "Error: out of memory, try again later");
		return;
	}
	t->mail_from.p = arena_strndup(&t->arena, ma.path.addr.p, ma.path.addr.len);
	t->mail_from.len = ma.path.addr.len;
	if (t->mail_from.p == NULL) {
		smtp_txn_reset(s);
		smtp_reply(s, 451, "4.3.0", "Error: out of memory, try again later");
		return;
	}
	t->size_declared = ma.size;
	t->body_type = (uint8_t)ma.body;
	t->smtputf8 = ma.smtputf8;
	smtp_enter_state(s, SMTP_ST_MAIL);
	smtp_reply(s, 250, "2.1.0", "Ok");
}
