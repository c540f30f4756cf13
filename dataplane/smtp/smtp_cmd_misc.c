/*
 * smtp_cmd_misc.c - RSET, NOOP, QUIT, VRFY, EXPN, HELP, AUTH (RFC 5321 §4.1.1.5-10).
 */
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_session.h"

void smtp_cmd_rset(struct smtp_session *s, struct slice arg)
{
	smtp_txn_reset(s);
	if (s->state != SMTP_ST_INIT)
		smtp_enter_state(s, SMTP_ST_READY);
	smtp_reply(s, 250, "2.0.0", "Ok");
}

void smtp_cmd_noop(struct smtp_session *s, struct slice arg)
{
	smtp_reply(s, 250, "2.0.0", "Ok");
}

void smtp_cmd_quit(struct smtp_session *s, struct slice arg)
{
	smtp_reply(s, 221, "2.0.0", "Bye");
	smtp_session_close_after_reply(s);
}

/* §3.5.3: 252 says "cannot verify, will try"; a gateway cannot know its domains' users. */
void smtp_cmd_vrfy(struct smtp_session *s, struct slice arg)
{
	smtp_reply(s, 252, "2.5.2", "Cannot VRFY user, but will accept message and attempt delivery");
}

void smtp_cmd_expn(struct smtp_session *s, struct slice arg)
{
	smtp_reply(s, 502, "5.5.1", "Error: EXPN not supported");
	smtp_session_error(s);
}

void smtp_cmd_help(struct smtp_session *s, struct slice arg)
{
	smtp_reply_cont(s, 214, "2.0.0", "Commands: HELO EHLO MAIL RCPT DATA BDAT RSET NOOP QUIT");
	smtp_reply(s, 214, "2.0.0", "VRFY HELP STARTTLS; see RFC 5321");
}

/* An MX for other people's domains takes no submissions: AUTH is not offered. */
void smtp_cmd_auth(struct smtp_session *s, struct slice arg)
{
	smtp_reply(s, 503, "5.5.1", "Error: authentication not enabled");
	smtp_session_error(s);
}
