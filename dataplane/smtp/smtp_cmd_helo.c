/*
 * smtp_cmd_helo.c - HELO and EHLO (RFC 5321 §4.1.1.1) and the extensions Sluice offers:
 * PIPELINING (RFC 2920), SIZE (RFC 1870), 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), CHUNKING
 * (RFC 3030), STARTTLS (RFC 3207), ENHANCEDSTATUSCODES (RFC 2034).
 */
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_cmd.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_session.h"

static bool smtp_helo_common(struct smtp_session *s, struct slice arg)
{
	char *h;

	if (smtp_parse_helo_arg(arg) != SMTP_ARG_OK) {
		smtp_reply(s, 501, "5.5.4", "Syntax: EHLO hostname");
		smtp_session_error(s);
		return false;
	}
	h = malloc(arg.len + 1);
	if (h == NULL) {
		smtp_reply(s, 451, "4.3.0", "Error: out of memory");
		return false;
	}
	memcpy(h, arg.p, arg.len);
	h[arg.len] = '\0';
	free(s->helo);
	s->helo = h;
	/* §4.1.4: HELO/EHLO in a transaction aborts it, like RSET. */
	smtp_txn_reset(s);
	smtp_enter_state(s, SMTP_ST_READY);
	return true;
}

void smtp_cmd_helo(struct smtp_session *s, struct slice arg)
{
	if (!smtp_helo_common(s, arg))
		return;
	s->esmtp = false;
	smtp_reply(s, 250, NULL, "%s", s->sh->conf->hostname);
}

void smtp_cmd_ehlo(struct smtp_session *s, struct slice arg)
{
	const struct node_config *c = s->sh->conf;

	if (!smtp_helo_common(s, arg))
		return;
	s->esmtp = true;
	smtp_reply_cont(s, 250, NULL, "%s", c->hostname);
	smtp_reply_cont(s, 250, NULL, "PIPELINING");
	smtp_reply_cont(s, 250, NULL, "SIZE %llu", (unsigned long long)c->limits.message_size);
	smtp_reply_cont(s, 250, NULL, "8BITMIME");
	smtp_reply_cont(s, 250, NULL, "SMTPUTF8");
	smtp_reply_cont(s, 250, NULL, "CHUNKING");
	if (c->tls_ctx != NULL && s->lconf.starttls && !s->tls_active)
		smtp_reply_cont(s, 250, NULL, "STARTTLS");
	smtp_reply(s, 250, NULL, "ENHANCEDSTATUSCODES");
}
