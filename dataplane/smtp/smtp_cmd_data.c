/*
 * smtp_cmd_data.c - DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030), the body's way into the spool
 * and the filter, the verdict at end of data, and the reply once the message is on disk.
 *
 * Body bytes are decoded once (smtp_data.c: dot-unstuffing, smuggling-safe line ends) into the
 * shard's decode scratch, and from there go to the spool message and the filter's streams in the
 * same pass: nothing is re-read. 250 is sent only from the spool's durable callback.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/clock.h"
#include "base/counter.h"
#include "base/log.h"
#include "filter/filter.h"
#include "policy/policy.h"
#include "smtp/smtp_cmd.h"
#include "smtp/smtp_log.h"
#include "smtp/smtp_reply.h"
#include "smtp/smtp_session.h"

/* RFC 5321 §4.4: the trace header, first in the message. */
static int smtp_body_trace(struct smtp_session *s)
{
	const struct node_config *c = s->sh->conf;
	struct smtp_txn *t = s->txn;
	char hdr[1024], date[64];
	time_t now = time(NULL);
	struct tm tm;
	int n;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	n = snprintf(hdr, sizeof(hdr),
		     "Received: from %.200s (%s)\r\n\tby %s (Sluice) with %s%s id %s.%u\r\n"
		     "\t(%s MX%s%s)%s%.256s%s;\r\n\t%s\r\n",
		     s->helo ? s->helo : "unknown", s->client_addr, c->hostname,
		     t->smtputf8 ? "UTF8SMTP" : s->esmtp ? "ESMTP" : "SMTP", s->tls_active ? "S" : "",
		     s->id, s->messages, listen_role_name(s->role),
		     s->tls_active ? ", " : "",
		     s->tls_active ? conn_tls_version(&s->conn) : "",
		     t->nrcpt == 1 ? "\r\n\tfor <" : "", t->nrcpt == 1 ? t->rcpts[0].p : "",
		     t->nrcpt == 1 ? ">" : "", date);
	if (n < 0 || (size_t)n >= sizeof(hdr))
		return -EINVAL;
	return spool_msg_write(t->msg, hdr, (size_t)n);
}

/* Opens the spool message and the filter streams for a new body. */
static int smtp_body_begin(struct smtp_session *s, enum smtp_data_mode mode)
{
	struct shard *sh = s->sh;
	struct smtp_txn *t = s->txn;
	int r;

	smtp_data_init(&t->dec, mode);
	t->hdr_bol = true;
	r = spool_msg_begin(sh->spool, &t->msg);
	if (r < 0)
		return r;
	r = smtp_body_trace(s);
	if (r < 0)
		return r;
	if (sh->filter != NULL && sh->conf->filter_db != NULL) {
		if (filter_msg_begin(sh->filter, &t->fm) == 0) {
			struct filter_envelope fe = {
				.mail_from = t->mail_from,
				.helo = { s->helo ? s->helo : "", s->helo ? strlen(s->helo) : 0 },
			};

			filter_msg_set_envelope(t->fm, &fe);
		} else {
			t->fm = NULL;     /* unfiltered rather than refused */
			log_warn(-ENOMEM, "%s: message not filtered", s->id);
		}
	}
	return 0;
}

static void smtp_body_fail_reply(struct smtp_session *s, int err)
{
	if (err == -ENOSPC)
		smtp_reply(s, 452, "4.3.1", "Error: insufficient system storage");
	else
		smtp_reply(s, 451, "4.3.0", "Error: local error in processing, try again later");
}

/*
 * Counts the header block as it streams by (the decoder's output: canonical CR LF lines) and
 * holds it to [limits] header_count and header_size: 200,000 fields or a 1 MB header are a
 * resource attack on every parser after us, not mail. The block ends at the blank line, or at
 * the first line that is neither a field ("Name:") nor a continuation (RFC 5322 §2.2, §3.6:
 * what MIME parsers do with a message whose body has no separator). Returns the refusal code,
 * or 0.
 */
static unsigned smtp_header_account(struct smtp_session *s, const uint8_t *p, size_t len)
{
	const struct node_limits *lim = &s->sh->conf->limits;
	struct smtp_txn *t = s->txn;
	size_t i = 0;

	while (i < len && !t->hdr_done) {
		if (t->hdr_bol) {
			t->hdr_bol = false;
			if (p[i] == '\r' || p[i] == '\n') {
				t->hdr_done = true;
				break;
			}
			if (p[i] != ' ' && p[i] != '\t')
				t->hdr_in_name = true;
		}
		while (t->hdr_in_name && i < len) {
			uint8_t c = p[i];

			if (c == ':') {
				t->hdr_in_name = false;
				t->hdr_fields++;
			} else if (c <= ' ' || c >= 0x7f) {
				t->hdr_done = true;       /* not a field: the body starts here */
				return 0;
			}
			i++;
			t->hdr_bytes++;
		}
		if (i >= len)
			break;
		const uint8_t *nl = memchr(p + i, '\n', len - i);
		size_t n = nl != NULL ? (size_t)(nl - (p + i)) + 1 : len - i;

		t->hdr_bytes += n;
		i += n;
		if (nl != NULL)
			t->hdr_bol = true;
	}
	if (t->hdr_fields > lim->header_count)
		return 554;
	if (t->hdr_bytes > lim->header_size)
		return 552;
	return 0;
}

/* A message past a limit: the rest of its body is read to the end, but nothing is kept. */
static void smtp_body_drop(struct smtp_txn *t)
{
	spool_msg_abort(&t->msg);
	if (t->fm != NULL)
		filter_msg_free(&t->fm);
}

/* The refusal of a message past the size or a header limit (too_big or hdr_refuse), at its
 * end or at its BDAT chunk. */
static void smtp_body_limit_reply(struct smtp_session *s)
{
	if (s->txn->too_big)
		smtp_reply(s, 552, "5.3.4", "Error: message size exceeds fixed limit");
	else if (s->txn->hdr_refuse == 554)
		smtp_reply(s, 554, "5.6.0", "Error: too many header fields (at most %u)",
			   s->sh->conf->limits.header_count);
	else
		smtp_reply(s, 552, "5.3.4", "Error: message header size exceeds limit");
}

static void smtp_body_bytes(struct smtp_session *s, const uint8_t *p, size_t len)
{
	struct smtp_txn *t = s->txn;

	if (t->too_big || t->hdr_refuse || t->msg == NULL || len == 0)
		return;
	if (!t->hdr_done) {
		unsigned refuse = smtp_header_account(s, p, len);

		if (refuse != 0) {
			t->hdr_refuse = (uint16_t)refuse;
			smtp_body_drop(t);
			return;
		}
	}
	if (t->dec.out_bytes > s->sh->conf->limits.message_size) {
		t->too_big = true;
		smtp_body_drop(t);
		return;
	}
	int r = spool_msg_write(t->msg, p, len);

	if (r < 0) {
		t->write_err = r;
		spool_msg_abort(&t->msg);
		return;
	}
	if (t->fm != NULL) {
		uint64_t t0 = clock_mono_ns();

		filter_msg_feed(t->fm, p, len);
		t->scan_ns += clock_mono_ns() - t0;
	}
}

static void smtp_committed(void *arg, spool_qid qid, int err)
{
	struct smtp_session *s = arg;
	struct shard *sh = s->sh;
	struct smtp_txn *t = s->txn;
	char q[SPOOL_QID_STRLEN + 1];

	s->commit_pending = false;
	s->inflight--;
	if (err == 0) {
		spool_qid_format(qid, q);
		ctr_inc(&sh->ctr.msg_accepted_by_role[s->role & 1]);
		ctr_inc(&sh->ctr.msg_by_action[t->action % SHARD_CTR_ACTIONS][s->role & 1]);
		ctr_add(&sh->ctr.bytes_accepted, t->dec.out_bytes);
		/* Durable, and the spool handed it to the relay queue already (spool.h). */
		smtp_reply(s, 250, "2.0.0", "Ok: queued as %s", q);
		histo_observe(&sh->ctr.time_to_250[s->role & 1], clock_mono_ns() - t->eod_ns);
	} else {
		log_warn(err, "%s: message not stored", s->id);
		ctr_inc(&sh->ctr.msg_tempfailed);
		s->log_stage = "END-OF-DATA";
		smtp_body_fail_reply(s, err);
		s->log_stage = NULL;
	}
	s->messages++;
	smtp_txn_reset(s);
	smtp_enter_state(s, SMTP_ST_READY);
	smtp_session_resume(s);
}

/* The domain of a recipient: after its last '@' (a quoted local part, "a@b"@ours, may hold one
 * when allow_routing lets it in). Empty without one. */
static struct slice smtp_rcpt_domain(struct slice rcpt)
{
	const char *at = memrchr(rcpt.p, '@', rcpt.len);

	if (at == NULL)
		return (struct slice){ 0 };
	return (struct slice){ at + 1, rcpt.len - (size_t)(at + 1 - rcpt.p) };
}

/* The verdict and what it means for this message (content filtering issue: policy per domain and
 * per MX role). XXX: a message for several domains with different policies takes the first
 * recipient's domain policy; splitting it per policy is left to the policy work. */
static enum policy_action smtp_decide(struct smtp_session *s)
{
	const struct node_config *c = s->sh->conf;
	struct smtp_txn *t = s->txn;
	const struct domain_conf *d;
	const struct policy *pol = c->default_policy;
	struct filter_verdict v = { 0 };

	if (t->fm != NULL) {
		uint64_t t0 = clock_mono_ns();

		filter_msg_end(t->fm, &v);
		filter_msg_free(&t->fm);
		t->scan_ns += clock_mono_ns() - t0;
		histo_observe(&s->sh->ctr.scan_time, t->scan_ns);
		t->score_milli = v.score_milli;
		snprintf(t->rules_hit, sizeof(t->rules_hit), "%s", v.hits);
		if (v.pcre_capped)   /* the message was crafted, or a rule backtracks badly */
			log_info("%s: filter: %u PCRE2 runs stopped by a cap (first %s), counted as no match",
				 s->id, v.pcre_capped, v.capped_rule);
	}
	d = node_config_domain(c, smtp_rcpt_domain(t->rcpts[0]));
	if (d != NULL && d->policy != NULL)
		pol = d->policy;
	return policy_decide(pol, s->role, t->mail_from, s->client_addr, t->score_milli);
}

/* long_lines = refuse for any recipient's domain ([domain] over [delivery]): the message has one
 * body for all of them, so one refusing domain refuses it. */
static bool smtp_long_lines_refused(const struct smtp_session *s)
{
	const struct node_config *c = s->sh->conf;
	const struct smtp_txn *t = s->txn;

	for (uint32_t i = 0; i < t->nrcpt; i++)
		if (delivery_long_lines_for(&c->delivery,
					    node_config_domain(c, smtp_rcpt_domain(t->rcpts[i]))) ==
		    DELIVERY_LONG_LINES_REFUSE)
			return true;
	return false;
}

static void smtp_end_of_data(struct smtp_session *s)
{
	struct shard *sh = s->sh;
	struct smtp_txn *t = s->txn;
	struct spool_envelope env;
	enum policy_action act;
	const char *stage_was = s->log_stage;   /* BDAT 0 LAST ends the message inside BDAT */
	int r;

	s->log_stage = "END-OF-DATA";    /* the reject line's stage (smtp_log.h) */
	t->eod_ns = clock_mono_ns();
	if (t->too_big || t->hdr_refuse) {
		smtp_body_limit_reply(s);
		goto done;
	}
	if (t->msg == NULL) {
		smtp_body_fail_reply(s, t->write_err);
		goto done;
	}
	if (t->dec.longest_line > SMTP_TEXT_LINE_MAX - 2 && smtp_long_lines_refused(s)) {
		/* long_lines = refuse ([delivery], or a recipient's [domain]): RFC 5321 4.5.3.1.6.
		 * The reply's own reject line is the log line. */
		smtp_reply(s, 554, "5.6.0", "Error: message has a line of %u octets (at most 998)",
			   t->dec.longest_line);
		goto done;
	}
	act = smtp_decide(s);
	t->action = (uint8_t)act;
	if (act == POLICY_REJECT || act == POLICY_TEMPFAIL)
		ctr_inc(&sh->ctr.msg_by_action[act % SHARD_CTR_ACTIONS][s->role & 1]);
	if (act == POLICY_REJECT) {
		ctr_inc(&sh->ctr.msg_rejected);
		/* The reply's reject line carries the score, the action and the rules. */
		smtp_reply(s, 550, "5.7.1", "Error: message content rejected");
		goto done;
	}
	if (act == POLICY_TEMPFAIL) {
		ctr_inc(&sh->ctr.msg_tempfailed);
		smtp_reply(s, 451, "4.7.1", "Error: try again later");
		goto done;
	}
	env = (struct spool_envelope){
		.role = s->role,
		.body_type = t->body_type,
		.smtputf8 = t->smtputf8,
		.tls = s->tls_active,
		.mail_from = t->mail_from,
		.nrcpt = t->nrcpt,
		.rcpts = t->rcpts,
		.helo = { s->helo ? s->helo : "", s->helo ? strlen(s->helo) : 0 },
		.client_addr = { s->client_addr, strlen(s->client_addr) },
		.listener = { s->lconf.address, strlen(s->lconf.address) },
		.session_id = { s->id, strlen(s->id) },
		.received_ns = clock_wall_ns(),
		.score_milli = t->score_milli,
		.action = t->action,
		.rules_hit = { t->rules_hit, strlen(t->rules_hit) },
		.data_flags = t->dec.flags,
	};
	if (s->tls_active) {
		snprintf(t->tls_info, sizeof(t->tls_info), "%s %s", conn_tls_version(&s->conn),
			 conn_tls_cipher(&s->conn));
		env.tls_info = (struct slice){ t->tls_info, strlen(t->tls_info) };
	}
	t->spooled_size = spool_msg_size(t->msg);
	r = smtp_log_accepted_event(s, t->msg);
	if (r < 0) {
		spool_msg_abort(&t->msg);
		smtp_body_fail_reply(s, r);
		goto done;
	}
	r = spool_msg_commit(t->msg, &env, smtp_committed, s);
	t->msg = NULL;           /* the spool's now, whatever happened */
	if (r < 0) {
		smtp_body_fail_reply(s, r);
		goto done;
	}
	s->commit_pending = true;
	s->inflight++;
	s->log_stage = stage_was;
	smtp_enter_state(s, SMTP_ST_COMMIT);
	smtp_session_suspend(s);
	return;
done:
	s->log_stage = stage_was;
	s->messages++;
	smtp_txn_reset(s);
	smtp_enter_state(s, SMTP_ST_READY);
}

void smtp_cmd_data(struct smtp_session *s, struct slice arg)
{
	struct smtp_txn *t = s->txn;
	int r;

	if (t->bdat) {
		smtp_reply(s, 503, "5.5.1", "Error: DATA after BDAT");
		smtp_session_error(s);
		return;
	}
	if (t->nrcpt == 0) {
		smtp_reply(s, 554, "5.5.1", "Error: no valid recipients");
		smtp_session_error(s);
		return;
	}
	r = smtp_body_begin(s, SMTP_DATA_DOT);
	if (r < 0) {
		if (t->msg != NULL)
			spool_msg_abort(&t->msg);
		smtp_body_fail_reply(s, r);
		return;
	}
	smtp_enter_state(s, SMTP_ST_DATA);
	smtp_reply(s, 354, NULL, "End data with <CR><LF>.<CR><LF>");
}

void smtp_cmd_bdat(struct smtp_session *s, struct slice arg)
{
	struct smtp_txn *t = s->txn;
	uint64_t size;
	bool last;
	int r;

	if (smtp_parse_bdat_arg(arg, &size, &last) != SMTP_ARG_OK) {
		/* Without a size we cannot find where the chunk ends: nothing more can be read. */
		smtp_reply(s, 501, "5.5.4", "Syntax: BDAT size [LAST]");
		ctr_inc(&s->sh->ctr.proto_errors);
		smtp_session_close_after_reply(s);
		return;
	}
	if (!(s->state & SMTP_ST_RCPT) || t == NULL || t->nrcpt == 0) {
		/* RFC 3030 §2: the chunk is still read, then refused. */
		t = smtp_txn_begin(s);
		if (t == NULL) {
			smtp_session_abort(s, "out of memory");
			return;
		}
		t->failed = true;
		t->reply_failed = s->state & SMTP_ST_MAIL ? 554 : 503;
	} else if (!t->bdat) {
		t->bdat = true;
		r = smtp_body_begin(s, SMTP_DATA_BDAT);
		if (r < 0) {
			if (t->msg != NULL)
				spool_msg_abort(&t->msg);
			t->failed = true;
			t->reply_failed = r == -ENOSPC ? 452 : 451;
		}
	}
	t->bdat_chunk = size;
	t->bdat_left = size;
	t->bdat_last = last;
	t->state_before_bdat = s->state;
	smtp_enter_state(s, SMTP_ST_BDAT);
	if (size == 0)
		smtp_cmd_body_input(s, NULL, 0);
}

static void smtp_bdat_chunk_done(struct smtp_session *s)
{
	struct smtp_txn *t = s->txn;

	if (t->failed) {
		switch (t->reply_failed) {
		case 503: smtp_reply(s, 503, "5.5.1", "Error: need RCPT command"); break;
		case 554: smtp_reply(s, 554, "5.5.1", "Error: no valid recipients"); break;
		case 452: smtp_reply(s, 452, "4.3.1", "Error: insufficient system storage"); break;
		default: smtp_reply(s, 451, "4.3.0", "Error: local error in processing"); break;
		}
		bool greeted = t->state_before_bdat != SMTP_ST_INIT;

		smtp_txn_reset(s);
		smtp_enter_state(s, greeted ? SMTP_ST_READY : SMTP_ST_INIT);
		smtp_session_error(s);
		return;
	}
	if (t->bdat_last) {
		uint8_t tail[2];
		size_t n = smtp_data_finish(&t->dec, tail);

		smtp_body_bytes(s, tail, n);
		smtp_end_of_data(s);
		return;
	}
	smtp_enter_state(s, SMTP_ST_RCPT);
	if (t->too_big || t->hdr_refuse) {
		/* Tell the client now; the transaction is over (RFC 3030 §2: a 5xx ends it). */
		smtp_body_limit_reply(s);
		smtp_txn_reset(s);
		smtp_enter_state(s, SMTP_ST_READY);
		return;
	}
	smtp_reply(s, 250, "2.0.0", "%llu bytes received", (unsigned long long)t->bdat_chunk);
}

size_t smtp_cmd_body_input(struct smtp_session *s, const uint8_t *p, size_t len)
{
	struct smtp_txn *t = s->txn;
	size_t used, out_len;
	bool done = false;

	if (len > SHARD_BUF_SIZE)
		len = SHARD_BUF_SIZE;        /* the decode scratch holds twice this */
	if (s->state == SMTP_ST_DATA) {
		used = smtp_data_decode(&t->dec, p, len, s->sh->decode, &out_len, &done);
		smtp_body_bytes(s, s->sh->decode, out_len);
		if (done)
			smtp_end_of_data(s);
		return used;
	}
	/* BDAT */
	used = len < t->bdat_left ? len : (size_t)t->bdat_left;
	if (used > 0 && !t->failed) {
		smtp_data_decode(&t->dec, p, used, s->sh->decode, &out_len, &done);
		smtp_body_bytes(s, s->sh->decode, out_len);
	}
	t->bdat_left -= used;
	if (t->bdat_left == 0)
		smtp_bdat_chunk_done(s);
	return used;
}
