/*
 * smtp_cmd.c - the command table and dispatch. See smtp_cmd.h. Dispatch also names the stage of
 * the replies a command gives, for the reject lines (smtp_log.h).
 */
#include "smtp/smtp_cmd.h"

#include "base/counter.h"
#include "base/log.h"
#include "smtp/smtp_log.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_session.h"

#define ST_GREETED (SMTP_ST_READY | SMTP_ST_MAIL | SMTP_ST_RCPT)

static const struct smtp_cmd smtp_cmds[SMTP_VERB_COUNT] = {
	[SMTP_VERB_HELO] = { "HELO", SMTP_VERB_HELO, SMTP_ST_ANY_CMD, SMTP_CF_PRE_TLS | SMTP_CF_NEED_ARG,
			     smtp_cmd_helo, NULL },
	[SMTP_VERB_EHLO] = { "EHLO", SMTP_VERB_EHLO, SMTP_ST_ANY_CMD, SMTP_CF_PRE_TLS | SMTP_CF_NEED_ARG,
			     smtp_cmd_ehlo, NULL },
	[SMTP_VERB_MAIL] = { "MAIL", SMTP_VERB_MAIL, SMTP_ST_READY, SMTP_CF_NEED_ARG, smtp_cmd_mail,
			     NULL },
	[SMTP_VERB_RCPT] = { "RCPT", SMTP_VERB_RCPT, SMTP_ST_MAIL | SMTP_ST_RCPT, SMTP_CF_NEED_ARG,
			     smtp_cmd_rcpt, "Error: need MAIL command" },
	[SMTP_VERB_DATA] = { "DATA", SMTP_VERB_DATA, SMTP_ST_MAIL | SMTP_ST_RCPT, SMTP_CF_NO_ARG,
			     smtp_cmd_data, "Error: need RCPT command" },
	/* BDAT checks its state itself: its chunk must be read whatever the state (RFC 3030 §2). */
	[SMTP_VERB_BDAT] = { "BDAT", SMTP_VERB_BDAT, SMTP_ST_ANY_CMD, SMTP_CF_NEED_ARG, smtp_cmd_bdat,
			     NULL },
	[SMTP_VERB_RSET] = { "RSET", SMTP_VERB_RSET, SMTP_ST_ANY_CMD, SMTP_CF_PRE_TLS | SMTP_CF_NO_ARG,
			     smtp_cmd_rset, NULL },
	[SMTP_VERB_NOOP] = { "NOOP", SMTP_VERB_NOOP, SMTP_ST_ANY_CMD, SMTP_CF_PRE_TLS, smtp_cmd_noop,
			     NULL },
	[SMTP_VERB_QUIT] = { "QUIT", SMTP_VERB_QUIT, SMTP_ST_ANY_CMD, SMTP_CF_PRE_TLS, smtp_cmd_quit,
			     NULL },
	[SMTP_VERB_VRFY] = { "VRFY", SMTP_VERB_VRFY, SMTP_ST_ANY_CMD, SMTP_CF_NEED_ARG, smtp_cmd_vrfy,
			     NULL },
	[SMTP_VERB_EXPN] = { "EXPN", SMTP_VERB_EXPN, SMTP_ST_ANY_CMD, 0, smtp_cmd_expn, NULL },
	[SMTP_VERB_HELP] = { "HELP", SMTP_VERB_HELP, SMTP_ST_ANY_CMD, SMTP_CF_PRE_TLS, smtp_cmd_help,
			     NULL },
	[SMTP_VERB_STARTTLS] = { "STARTTLS", SMTP_VERB_STARTTLS, SMTP_ST_ANY_CMD,
				 SMTP_CF_PRE_TLS | SMTP_CF_LAST | SMTP_CF_NO_ARG, smtp_cmd_starttls,
				 NULL },
	[SMTP_VERB_AUTH] = { "AUTH", SMTP_VERB_AUTH, SMTP_ST_ANY_CMD, 0, smtp_cmd_auth, NULL },
};

static void smtp_cmd_run(struct smtp_session *s, enum smtp_verb verb, struct slice arg)
{
	const struct smtp_cmd *cmd = &smtp_cmds[verb];
	struct shard *sh = s->sh;

	if (verb == SMTP_VERB_HTTP) {
		/* A web client or a proxy pointed at us: no SMTP will follow (Postfix does the same). */
		/* Logged as the reject of stage HTTP, like every refusal. */
		ctr_inc(&sh->ctr.proto_errors);
		smtp_reply(s, 421, "4.7.0", "%s Error: this is an SMTP server", sh->conf->hostname);
		smtp_session_close_after_reply(s);
		return;
	}
	if (verb == SMTP_VERB_UNKNOWN || cmd->exec == NULL) {
		ctr_inc(&sh->ctr.proto_errors);
		smtp_reply(s, 500, "5.5.2", "Error: command not recognized");
		smtp_session_error(s);
		return;
	}
	if (s->draining && (s->state & (SMTP_ST_INIT | SMTP_ST_READY)) && verb != SMTP_VERB_QUIT) {
		smtp_reply(s, 421, "4.3.2", "%s Service shutting down", sh->conf->hostname);
		smtp_session_close_after_reply(s);
		return;
	}
	if (!(cmd->allowed & s->state)) {
		if (cmd->state_error != NULL)
			smtp_reply(s, 503, "5.5.1", "%s", cmd->state_error);
		else if (s->state == SMTP_ST_INIT)
			smtp_reply(s, 503, "5.5.1", "Error: send HELO/EHLO first");
		else if (verb == SMTP_VERB_MAIL)
			smtp_reply(s, 503, "5.5.1", "Error: nested MAIL command");
		else
			smtp_reply(s, 503, "5.5.1", "Error: bad sequence of commands");
		smtp_session_error(s);
		return;
	}
	if ((cmd->flags & SMTP_CF_NO_ARG) && arg.len != 0 && verb != SMTP_VERB_NOOP) {
		smtp_reply(s, 501, "5.5.4", "Syntax: %s", cmd->name);
		smtp_session_error(s);
		return;
	}
	if ((cmd->flags & SMTP_CF_NEED_ARG) && arg.len == 0) {
		smtp_reply(s, 501, "5.5.4", "Syntax: %s %s", cmd->name,
			   verb == SMTP_VERB_MAIL ? "FROM:<address>" :
			   verb == SMTP_VERB_RCPT ? "TO:<address>" :
			   verb == SMTP_VERB_BDAT ? "size [LAST]" : "hostname");
		smtp_session_error(s);
		return;
	}
	cmd->exec(s, arg);
}

/* The stage and the argument a refusal's log line names (smtp_log.c) are set around each
 * command: any reply the command gives is logged with them, whoever wrote it. */
void smtp_cmd_dispatch(struct smtp_session *s, struct slice line)
{
	struct slice arg;
	enum smtp_verb verb = smtp_parse_verb(line, &arg);

	ctr_inc(&s->sh->ctr.cmd_count[verb < 32 ? verb : 0]);
	s->log_cmd_seen = true;
	s->log_stage = smtp_cmds[verb].name ? smtp_cmds[verb].name : smtp_verb_name(verb);
	s->log_arg = verb == SMTP_VERB_MAIL || verb == SMTP_VERB_RCPT ? smtp_log_path_arg(arg) : arg;
	smtp_cmd_run(s, verb, arg);
	/* The session is still ours here: the input loop reads it after every command. */
	s->log_last = s->log_stage;
	s->log_stage = NULL;
	s->log_arg = (struct slice){ 0 };
}
