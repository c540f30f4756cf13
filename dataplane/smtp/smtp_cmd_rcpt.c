/*
 * smtp_cmd_rcpt.c - RCPT TO (RFC 5321 §4.1.1.3): only the node's own domains are accepted
 * (anything else is relaying: 554 5.7.1), at most limits.recipients per message (452 4.5.3,
 * §4.5.3.1.10); a domain over its spool quota gets 451 4.3.1 (the relay queue says which).
 *
 * Sender-specified routing is relaying too: a local part holding '%' or '!' (user%other@ours,
 * other!user@ours), or a quoted one holding '@' ("user@other"@ours), is a route through the
 * customer's server, which may still honour it (RFC 5321 §3.6.1 and Appendix F.2 deprecate it).
 * Refused with 554 5.7.1 unless the domain sets allow_routing = yes (Postfix's
 * allow_untrusted_routing = no); with it the address is relayed unchanged.
 *
 * A bare <Postmaster> (§4.5.1: case-insensitive, no domain) is accepted whatever the node's
 * hostname, and goes to [node] postmaster (snapshot.c: default postmaster@ the first domain).
 *
 * A cluster node that is behind the cluster's configuration (node_config_behind: starting up,
 * or unable to confirm it has the hub's latest version) cannot tell a stranger's domain from one
 * the cluster added since: it answers 451 4.7.1 for a domain it does not know (and for
 * <postmaster> while it serves none), never a 5xx, so the sender retries.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "smtp/smtp_cmd.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_session.h"

static int smtp_rcpt_add(struct smtp_txn *t, struct slice addr)
{
	if (t->nrcpt == t->caprcpt) {
		uint32_t cap = t->caprcpt ? t->caprcpt * 2 : 8;
		struct slice *n = arena_alloc(&t->arena, cap * sizeof(*n));

		if (n == NULL)
			return -1;
		if (t->nrcpt > 0)
			memcpy(n, t->rcpts, t->nrcpt * sizeof(*n));
		t->rcpts = n;
		t->caprcpt = cap;
	}
	t->rcpts[t->nrcpt].p = arena_strndup(&t->arena, addr.p, addr.len);
	if (t->rcpts[t->nrcpt].p == NULL)
		return -1;
	t->rcpts[t->nrcpt].len = addr.len;
	t->nrcpt++;
	return 0;
}

/* Whether addr is a recipient already (the domain compared without case). Linear: used only for
 * the postmaster rewrite, so a client cannot make it quadratic. */
static bool smtp_rcpt_has(const struct smtp_txn *t, struct slice addr)
{
	const char *at = memrchr(addr.p, '@', addr.len);
	size_t local = at ? (size_t)(at - addr.p) : addr.len;

	for (uint32_t i = 0; i < t->nrcpt; i++)
		if (t->rcpts[i].len == addr.len && memcmp(t->rcpts[i].p, addr.p, local) == 0 &&
		    strncasecmp(t->rcpts[i].p + local, addr.p + local, addr.len - local) == 0)
			return true;
	return false;
}

/* Whether the local part routes further: '%' or '!' anywhere (quoted or not), '@' inside
 * quotes (an unquoted local part cannot hold one: the parser ends it there). */
static bool smtp_rcpt_is_routed(struct slice local)
{
	for (size_t i = 0; i < local.len; i++)
		if (local.p[i] == '%' || local.p[i] == '!' || local.p[i] == '@')
			return true;
	return false;
}

void smtp_cmd_rcpt(struct smtp_session *s, struct slice arg)
{
	const struct node_config *c = s->sh->conf;
	struct smtp_txn *t = s->txn;
	struct smtp_rcpt_args ra;
	enum smtp_arg_err e = smtp_parse_rcpt_arg(arg, &ra);
	const struct domain_conf *dc;
	struct slice domain;

	if (e != SMTP_ARG_OK) {
		const struct smtp_reply_def *rd = smtp_parse_err_reply(e, true);

		smtp_reply(s, rd->code, rd->enhanced, "%s", rd->text);
		smtp_session_error(s);
		return;
	}
	if (ra.path.utf8 && !t->smtputf8) {
		smtp_reply(s, 553, "5.6.7", "Error: non-ASCII address needs SMTPUTF8");
		smtp_session_error(s);
		return;
	}
	if (t->nrcpt >= c->limits.recipients) {
		smtp_reply(s, 452, "4.5.3", "Error: too many recipients");
		return;
	}
	if (ra.postmaster) {
		const char *at = strrchr(c->postmaster, '@');

		if (at == NULL && node_config_behind(c)) {
			smtp_reply(s, 451, "4.7.1", "<%.*s>: Recipient address rejected: this node has "
				   "not caught up with the cluster's configuration, try again later",
				   (int)ra.path.addr.len, ra.path.addr.p);
			return;
		}
		if (at == NULL) {
			/* No domain at all: nothing could take it. */
			smtp_reply(s, 550, "5.1.1", "<%.*s>: Recipient address rejected: this node "
				   "serves no domain", (int)ra.path.addr.len, ra.path.addr.p);
			smtp_session_error(s);
			return;
		}
		ra.path.addr = (struct slice){ c->postmaster, strlen(c->postmaster) };
		domain = (struct slice){ at + 1, strlen(at + 1) };
	} else
		domain = ra.path.domain;
	dc = node_config_domain(c, domain);
	if (dc == NULL && node_config_behind(c)) {
		smtp_reply(s, 451, "4.7.1", "<%.*s>: Recipient address rejected: this node has not "
			   "caught up with the cluster's configuration, try again later",
			   (int)ra.path.addr.len, ra.path.addr.p);
		return;
	}
	if (dc == NULL) {
		smtp_reply(s, 554, "5.7.1", "<%.*s>: Relay access denied", (int)ra.path.addr.len,
			   ra.path.addr.p);
		smtp_session_error(s);
		return;
	}
	if (!ra.postmaster && !dc->allow_routing && smtp_rcpt_is_routed(ra.path.local)) {
		smtp_reply(s, 554, "5.7.1", "<%.*s>: Relay access denied: sender-specified routing "
			   "(%%, ! or @ in the local part)", (int)ra.path.addr.len, ra.path.addr.p);
		smtp_session_error(s);
		return;
	}
	if (spool_domain_over_quota(s->sh->spool, (struct slice){ dc->name, strlen(dc->name) },
				    dc->spool_quota)) {
		/* Its destination is not taking mail fast enough: spool no more for it. */
		smtp_reply(s, 451, "4.3.1", "<%.*s>: Error: queue for this domain is full, try again "
			   "later", (int)ra.path.addr.len, ra.path.addr.p);
		return;
	}
	if (ra.postmaster && smtp_rcpt_has(t, ra.path.addr)) {
		/* <postmaster> twice, or after the address it stands for, is one recipient. */
		smtp_reply(s, 250, "2.1.5", "Ok");
		return;
	}
	if (smtp_rcpt_add(t, ra.path.addr) < 0) {
		smtp_reply(s, 451, "4.3.0", "Error: out of memory, try again later");
		return;
	}
	smtp_enter_state(s, SMTP_ST_RCPT);
	smtp_reply(s, 250, "2.1.5", "Ok");
}
