/*
 * smtp_tls.c - STARTTLS (RFC 3207) over io_uring: OpenSSL reads and writes memory BIOs; the
 * session's conn moves ciphertext between them and the socket (net/conn.c).
 *
 * RFC 3207 §4.2 and CVE-2011-0411: whatever the client pipelined after STARTTLS in the same read
 * is discarded, never run inside the TLS session. After the handshake the session starts over
 * (no HELO, no transaction).
 */
#include "base/log.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_session.h"

void smtp_cmd_starttls(struct smtp_session *s, struct slice arg)
{
	const struct node_config *c = s->sh->conf;

	if (s->tls_active) {
		smtp_reply(s, 554, "5.5.1", "Error: TLS already active");
		smtp_session_error(s);
		return;
	}
	if (c->tls_ctx == NULL || !s->lconf.starttls) {
		smtp_reply(s, 502, "5.5.1", "Error: command not implemented");
		smtp_session_error(s);
		return;
	}
	if (conn_tls_start(&s->conn, c->tls_ctx, CONN_TLS_SERVER, NULL, false) < 0) {
		smtp_reply(s, 454, "4.7.0", "TLS not available due to temporary reason");
		return;
	}
	smtp_txn_reset(s);
	smtp_reply(s, 220, "2.0.0", "Ready to start TLS");
	/* The 220 goes out in the clear: stage it before TLS takes over the output. */
	smtp_session_flush(s);
	smtp_session_discard_input(s);
	smtp_enter_state(s, SMTP_ST_TLS);
}
