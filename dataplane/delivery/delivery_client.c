/*
 * delivery_client.c - see delivery_client.h. Each reply is matched, in order, with the command
 * that asked for it (a FIFO of pending commands: with PIPELINING there are many at once, RFC 2920
 * 3.1). One function settles a recipient, so every path records code, enhanced code and text the
 * same way.
 */
#include "delivery_client.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"

enum cmd_kind {
	CMD_BANNER = 1,
	CMD_EHLO,
	CMD_HELO,
	CMD_STARTTLS,
	CMD_RSET,
	CMD_MAIL,
	CMD_RCPT,
	CMD_DATA,
	CMD_DOT,
	CMD_DOT_EMPTY,   /* the "." after a 354 nobody wanted: its reply is ignored */
	CMD_QUIT,
};

const struct delivery_client_timeouts delivery_client_timeouts_default = {
	.banner_ms = 300000,
	.helo_ms = 300000,
	.starttls_ms = 300000,
	.mail_ms = 300000,
	.rcpt_ms = 300000,
	.data_init_ms = 120000,
	.data_block_ms = 180000,
	.data_final_ms = 600000,
	.rset_ms = 300000,
	.quit_ms = 300000,
};

static const char *const stage_names[] = {
	[DELIVERY_CLIENT_ST_BANNER] = "banner",
	[DELIVERY_CLIENT_ST_EHLO] = "ehlo",
	[DELIVERY_CLIENT_ST_HELO] = "helo",
	[DELIVERY_CLIENT_ST_STARTTLS] = "starttls",
	[DELIVERY_CLIENT_ST_TLS] = "tls",
	[DELIVERY_CLIENT_ST_READY] = "ready",
	[DELIVERY_CLIENT_ST_TRANS] = "transaction",
	[DELIVERY_CLIENT_ST_BODY] = "body",
	[DELIVERY_CLIENT_ST_DOT] = "end of data",
	[DELIVERY_CLIENT_ST_MSG_DONE] = "message done",
	[DELIVERY_CLIENT_ST_QUIT] = "quit",
	[DELIVERY_CLIENT_ST_CLOSED] = "closed",
};

const char *delivery_client_stage_name(enum delivery_client_stage st)
{
	if ((unsigned)st < sizeof(stage_names) / sizeof(stage_names[0]) && stage_names[st] != NULL)
		return stage_names[st];
	return "?";
}

/* ---- EHLO keywords ---- */

static bool kw_eq(const char *p, size_t n, const char *kw)
{
	size_t k = strlen(kw);

	return n == k && strncasecmp(p, kw, k) == 0;
}

uint32_t delivery_client_parse_caps(const char *text, size_t len, uint64_t *size_r)
{
	const char *p = text, *end = text + len;
	uint32_t caps = 0;
	bool first = true;

	*size_r = 0;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p)), *kw, *ke;

		if (eol == NULL)
			eol = end;
		if (first) {
			/* The first line is the greeting, not a keyword (RFC 5321 4.1.1.1). */
			first = false;
			p = eol + 1;
			continue;
		}
		kw = p;
		while (kw < eol && *kw == ' ')
			kw++;
		ke = kw;
		while (ke < eol && *ke != ' ' && *ke != '=')
			ke++;
		if (kw_eq(kw, (size_t)(ke - kw), "PIPELINING"))
			caps |= DELIVERY_CLIENT_CAP_PIPELINING;
		else if (kw_eq(kw, (size_t)(ke - kw), "8BITMIME"))
			caps |= DELIVERY_CLIENT_CAP_8BITMIME;
		else if (kw_eq(kw, (size_t)(ke - kw), "STARTTLS"))
			caps |= DELIVERY_CLIENT_CAP_STARTTLS;
		else if (kw_eq(kw, (size_t)(ke - kw), "SMTPUTF8"))
			caps |= DELIVERY_CLIENT_CAP_SMTPUTF8;
		else if (kw_eq(kw, (size_t)(ke - kw), "CHUNKING"))
			caps |= DELIVERY_CLIENT_CAP_CHUNKING;
		else if (kw_eq(kw, (size_t)(ke - kw), "ENHANCEDSTATUSCODES"))
			caps |= DELIVERY_CLIENT_CAP_ENHANCED;
		else if (kw_eq(kw, (size_t)(ke - kw), "DSN"))
			caps |= DELIVERY_CLIENT_CAP_DSN;
		else if (kw_eq(kw, (size_t)(ke - kw), "SIZE")) {
			/* RFC 1870 4: "SIZE" [SP number]; 0 or none means no fixed limit. */
			const char *q = ke;
			uint64_t v = 0;
			bool ok = true;

			caps |= DELIVERY_CLIENT_CAP_SIZE;
			while (q < eol && *q == ' ')
				q++;
			while (q < eol && *q >= '0' && *q <= '9') {
				if (v > (UINT64_MAX - 9) / 10) {
					ok = false;
					break;
				}
				v = v * 10 + (uint64_t)(*q - '0');
				q++;
			}
			*size_r = ok ? v : 0;
		}
		p = eol + 1;
	}
	return caps;
}

/* ---- Output ---- */

static int out_reserve(struct delivery_client *c, size_t n)
{
	return buf_reserve(&c->out, n);
}

static int out_printf(struct delivery_client *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int out_printf(struct delivery_client *c, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(&c->out, fmt, ap);
	va_end(ap);
	return r;
}

static int pend_push(struct delivery_client *c, enum cmd_kind k, uint32_t arg)
{
	if (c->pend_head == c->npend)
		c->pend_head = c->npend = 0;
	if (c->npend == c->pend_cap) {
		unsigned cap = c->pend_cap ? c->pend_cap * 2 : 16;
		uint8_t *p = realloc(c->pend, cap);
		uint32_t *a;

		if (p == NULL)
			return -ENOMEM;
		c->pend = p;
		a = realloc(c->pend_arg, cap * sizeof(*a));
		if (a == NULL)
			return -ENOMEM;
		c->pend_arg = a;
		c->pend_cap = cap;
	}
	c->pend[c->npend] = (uint8_t)k;
	c->pend_arg[c->npend] = arg;
	c->npend++;
	return 0;
}

static bool pend_any(const struct delivery_client *c) { return c->pend_head < c->npend; }

/* ---- Results ---- */

/* "550 5.1.1 text of all lines joined by spaces", cut to fit. */
static void diag_from_reply(char *out, size_t outlen, const struct delivery_reply *r)
{
	size_t n = (size_t)snprintf(out, outlen, "%03u ", r->code), i;

	for (i = 0; i < r->text_len && n + 1 < outlen; i++)
		out[n++] = r->text[i] == '\n' ? ' ' : r->text[i];
	if (n >= outlen)
		n = outlen - 1;
	out[n] = '\0';
	/* Keep the diagnostic printable: it ends up in a DSN and in logs. */
	for (i = 0; i < n; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			out[i] = ' ';
}

static void enh_default(char *out, unsigned cls)
{
	snprintf(out, 16, "%u.0.0", cls == 2 || cls == 4 || cls == 5 ? cls : 4);
}

static void rcpt_settle_reply(struct delivery_rcpt *rc, const struct delivery_reply *r)
{
	unsigned cls = delivery_reply_class(r);

	rc->status = cls == 2 ? DELIVERY_RCPT_OK : cls == 5 ? DELIVERY_RCPT_FAIL : DELIVERY_RCPT_DEFER;
	rc->code = r->code;
	if (r->has_enh)
		snprintf(rc->enh, sizeof(rc->enh), "%s", r->enh);
	else
		enh_default(rc->enh, rc->status == DELIVERY_RCPT_DEFER ? 4 : cls);
	diag_from_reply(rc->diag, sizeof(rc->diag), r);
}

static void rcpt_settle_local(struct delivery_rcpt *rc, enum delivery_rcpt_status st,
			      const char *enh, const char *text)
{
	rc->status = st;
	rc->code = 0;
	snprintf(rc->enh, sizeof(rc->enh), "%s", enh);
	snprintf(rc->diag, sizeof(rc->diag), "%s", text);
}

/* Every recipient still undecided gets the same local result. */
static void msg_settle_pending(struct delivery_client *c, enum delivery_rcpt_status st,
			       const char *enh, const char *text)
{
	struct delivery_client_msg *m = c->msg;

	if (m == NULL)
		return;
	for (unsigned i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].status == DELIVERY_RCPT_PENDING)
			rcpt_settle_local(&m->rcpt[i], st, enh, text);
}

static void session_fail(struct delivery_client *c, int err, const struct delivery_reply *r,
			 const char *enh, const char *text)
{
	char diag[DELIVERY_DIAG_MAX];

	c->error.stage = c->stage;
	c->error.err = err;
	if (r != NULL) {
		c->error.code = r->code;
		if (r->has_enh)
			snprintf(c->error.enh, sizeof(c->error.enh), "%s", r->enh);
		else
			enh_default(c->error.enh, delivery_reply_class(r));
		diag_from_reply(c->error.text, sizeof(c->error.text), r);
	} else {
		c->error.code = 0;
		snprintf(c->error.enh, sizeof(c->error.enh), "%s", enh);
		snprintf(c->error.text, sizeof(c->error.text), "%s", text);
	}
	/* Whatever the session died of, a recipient not yet decided is tried again later: a 5xx
	 * banner or EHLO says the host refuses, not that the address is bad (RFC 5321 3.8). */
	snprintf(diag, sizeof(diag), "%.200s (during %s)", c->error.text,
		 delivery_client_stage_name(c->error.stage));
	msg_settle_pending(c, DELIVERY_RCPT_DEFER, c->error.enh[0] == '4' ? c->error.enh : "4.4.2",
			   diag);
	c->npend = c->pend_head = 0;
	buf_consume(&c->out, buf_unread(&c->out));
	c->stage = DELIVERY_CLIENT_ST_CLOSED;
}

/* ---- Commands ---- */

static int send_ehlo(struct delivery_client *c, bool helo)
{
	int rc = out_printf(c, "%s %s\r\n", helo ? "HELO" : "EHLO", c->helo_name);

	if (rc == 0)
		rc = pend_push(c, helo ? CMD_HELO : CMD_EHLO, 0);
	c->stage = helo ? DELIVERY_CLIENT_ST_HELO : DELIVERY_CLIENT_ST_EHLO;
	return rc;
}

static int send_rcpt(struct delivery_client *c, unsigned i)
{
	int rc = out_printf(c, "RCPT TO:<%.*s>\r\n", (int)c->msg->rcpt[i].addr.len,
			    c->msg->rcpt[i].addr.p);

	return rc != 0 ? rc : pend_push(c, CMD_RCPT, i);
}

static int send_data(struct delivery_client *c)
{
	int rc = out_printf(c, "DATA\r\n");

	c->data_sent = true;
	return rc != 0 ? rc : pend_push(c, CMD_DATA, 0);
}

/* Without PIPELINING: after MAIL or a RCPT, the next RCPT, or DATA, or the end. */
static int lockstep_next(struct delivery_client *c)
{
	struct delivery_client_msg *m = c->msg;

	while (c->rcpt_next < m->nrcpt && m->rcpt[c->rcpt_next].status != DELIVERY_RCPT_PENDING)
		c->rcpt_next++;
	if (c->rcpt_next < m->nrcpt)
		return send_rcpt(c, c->rcpt_next++);
	if (m->naccepted > 0 && !c->data_sent)
		return send_data(c);
	return 0;
}

static bool addr_ok(struct slice a)
{
	for (size_t i = 0; i < a.len; i++) {
		unsigned char ch = (unsigned char)a.p[i];

		if (ch < 0x20 || ch == 0x7f || ch == '<' || ch == '>')
			return false;
	}
	return a.len <= 512;
}

static void trans_finish(struct delivery_client *c)
{
	/* Accepted by RCPT but no final word (DATA refused oddly): try again later. */
	msg_settle_pending(c, DELIVERY_RCPT_DEFER, "4.3.0", "no final reply to the message");
	c->stage = DELIVERY_CLIENT_ST_MSG_DONE;
}

static int handle_trans_reply(struct delivery_client *c, enum cmd_kind k, uint32_t arg)
{
	struct delivery_client_msg *m = c->msg;
	const struct delivery_reply *r = &c->reply;
	unsigned cls = delivery_reply_class(r);
	bool piped = (c->caps & DELIVERY_CLIENT_CAP_PIPELINING) != 0;
	int rc = 0;

	switch (k) {
	case CMD_RSET:
		if (cls != 2) {
			session_fail(c, -EPROTO, r, NULL, NULL);
			return 0;
		}
		break;
	case CMD_MAIL:
		if (cls == 2) {
			c->mail_ok = true;
			if (!piped)
				rc = lockstep_next(c);
		} else {
			for (unsigned i = 0; i < m->nrcpt; i++)
				if (m->rcpt[i].status == DELIVERY_RCPT_PENDING)
					rcpt_settle_reply(&m->rcpt[i], r);
		}
		break;
	case CMD_RCPT:
		if (c->mail_ok && arg < m->nrcpt) {
			if (cls == 2) {
				m->rcpt[arg].rcpt_accepted = true;
				m->naccepted++;
			} else {
				rcpt_settle_reply(&m->rcpt[arg], r);
			}
		}
		if (!piped && c->mail_ok)
			rc = lockstep_next(c);
		break;
	case CMD_DATA:
		if (r->code == 354) {
			if (c->mail_ok && m->naccepted > 0) {
				delivery_body_init(&c->body, c->conf.line_max);
				c->stage = DELIVERY_CLIENT_ST_BODY;
				return 0;
			}
			/* RFC 2920 3.1: DATA went in the pipeline but nobody was accepted. */
			rc = out_printf(c, ".\r\n");
			if (rc == 0)
				rc = pend_push(c, CMD_DOT_EMPTY, 0);
			return rc;
		}
		if (c->mail_ok)
			for (unsigned i = 0; i < m->nrcpt; i++)
				if (m->rcpt[i].status == DELIVERY_RCPT_PENDING && m->rcpt[i].rcpt_accepted)
					rcpt_settle_reply(&m->rcpt[i], r);
		break;
	case CMD_DOT:
		/* RFC 5321 4.2.5: the final reply is for every accepted recipient. */
		for (unsigned i = 0; i < m->nrcpt; i++)
			if (m->rcpt[i].status == DELIVERY_RCPT_PENDING && m->rcpt[i].rcpt_accepted)
				rcpt_settle_reply(&m->rcpt[i], r);
		if (cls == 3)   /* 3xx to the dot is nonsense: keep the message */
			msg_settle_pending(c, DELIVERY_RCPT_DEFER, "4.5.0", "unexpected 3xx after end of data");
		break;
	case CMD_DOT_EMPTY:
		break;
	default:
		session_fail(c, -EPROTO, r, NULL, NULL);
		return 0;
	}
	if (rc == 0 && !pend_any(c) && c->stage == DELIVERY_CLIENT_ST_TRANS)
		trans_finish(c);
	if (rc == 0 && !pend_any(c) && c->stage == DELIVERY_CLIENT_ST_DOT)
		trans_finish(c);
	return rc;
}

static int handle_reply(struct delivery_client *c, enum cmd_kind k, uint32_t arg)
{
	const struct delivery_reply *r = &c->reply;
	unsigned cls = delivery_reply_class(r);

	c->replies++;
	/* RFC 5321 3.8: 421 may come at any time; the server is closing. */
	if (r->code == 421 && k != CMD_QUIT) {
		session_fail(c, -ECONNRESET, r, NULL, NULL);
		return 0;
	}
	switch (k) {
	case CMD_BANNER:
		if (cls != 2) {
			session_fail(c, -ECONNREFUSED, r, NULL, NULL);
			return 0;
		}
		return send_ehlo(c, false);
	case CMD_EHLO:
	case CMD_HELO:
		if (cls == 5 && k == CMD_EHLO)
			return send_ehlo(c, true);   /* RFC 5321 3.2: fall back to HELO */
		if (cls != 2) {
			session_fail(c, -ECONNREFUSED, r, NULL, NULL);
			return 0;
		}
		if (k == CMD_EHLO) {
			c->caps = delivery_client_parse_caps(r->text, r->text_len, &c->max_size);
		} else {
			c->caps = 0;
			c->max_size = 0;
		}
		if (!c->tls_active && c->conf.tls != DELIVERY_CLIENT_TLS_NONE &&
		    (c->caps & DELIVERY_CLIENT_CAP_STARTTLS) && !c->tls_tried) {
			c->tls_tried = true;
			c->stage = DELIVERY_CLIENT_ST_STARTTLS;
			if (out_printf(c, "STARTTLS\r\n") != 0 || pend_push(c, CMD_STARTTLS, 0) != 0)
				return -ENOMEM;
			return 0;
		}
		if (!c->tls_active && c->conf.tls == DELIVERY_CLIENT_TLS_REQUIRED) {
			session_fail(c, -EPROTONOSUPPORT, NULL, "4.7.4",
				     "TLS is required, but was not offered by host");
			return 0;
		}
		c->stage = DELIVERY_CLIENT_ST_READY;
		return 0;
	case CMD_STARTTLS:
		if (r->code == 220) {
			c->stage = DELIVERY_CLIENT_ST_TLS;
			return 0;
		}
		if (c->conf.tls == DELIVERY_CLIENT_TLS_REQUIRED) {
			session_fail(c, -EPROTONOSUPPORT, r, NULL, NULL);
			return 0;
		}
		/* Opportunistic: go on in plain text, as Postfix does at level "may". */
		c->stage = DELIVERY_CLIENT_ST_READY;
		return 0;
	case CMD_QUIT:
		c->stage = DELIVERY_CLIENT_ST_CLOSED;
		return 0;
	default:
		return handle_trans_reply(c, k, arg);
	}
}

/* ---- The public calls ---- */

int delivery_client_init(struct delivery_client *c, const struct delivery_client_conf *conf)
{
	const struct delivery_client_timeouts *d = &delivery_client_timeouts_default;
	struct delivery_client_timeouts *t;

	memset(c, 0, sizeof(*c));
	c->conf = *conf;
	snprintf(c->helo_name, sizeof(c->helo_name), "%s",
		 conf->helo_name != NULL && conf->helo_name[0] ? conf->helo_name : "localhost");
	c->conf.helo_name = c->helo_name;
	t = &c->conf.timeouts;
#define DEF(f) do { if (t->f == 0) t->f = d->f; } while (0)
	DEF(banner_ms); DEF(helo_ms); DEF(starttls_ms); DEF(mail_ms); DEF(rcpt_ms);
	DEF(data_init_ms); DEF(data_block_ms); DEF(data_final_ms); DEF(rset_ms); DEF(quit_ms);
#undef DEF
	delivery_reply_init(&c->reply, conf->reply.line_max ? &conf->reply : NULL);
	c->stage = DELIVERY_CLIENT_ST_BANNER;
	return pend_push(c, CMD_BANNER, 0);
}

void delivery_client_fini(struct delivery_client *c)
{
	buf_release(&c->out);
	free(c->pend);
	free(c->pend_arg);
	c->pend = NULL;
	c->pend_arg = NULL;
	c->pend_cap = c->npend = c->pend_head = 0;
}

enum delivery_client_ev delivery_client_next(struct delivery_client *c)
{
	switch (c->stage) {
	case DELIVERY_CLIENT_ST_CLOSED:
		return DELIVERY_CLIENT_EV_CLOSED;
	case DELIVERY_CLIENT_ST_TLS:
		return DELIVERY_CLIENT_EV_STARTTLS;
	case DELIVERY_CLIENT_ST_READY:
		return DELIVERY_CLIENT_EV_READY;
	case DELIVERY_CLIENT_ST_MSG_DONE:
		return DELIVERY_CLIENT_EV_MSG_DONE;
	default:
		break;
	}
	if (buf_unread(&c->out) != 0)
		return DELIVERY_CLIENT_EV_WRITE;
	if (c->stage == DELIVERY_CLIENT_ST_BODY)
		return DELIVERY_CLIENT_EV_BODY;
	if (pend_any(c))
		return DELIVERY_CLIENT_EV_READ;
	/* Nothing to send nor to wait for outside the states above: a broken invariant. */
	panic("delivery_client: stuck in stage %s", delivery_client_stage_name(c->stage));
}

uint32_t delivery_client_timeout_ms(const struct delivery_client *c)
{
	const struct delivery_client_timeouts *t = &c->conf.timeouts;

	if (c->stage == DELIVERY_CLIENT_ST_BODY)
		return t->data_block_ms;
	if (c->stage == DELIVERY_CLIENT_ST_TLS)
		return t->starttls_ms;
	if (!pend_any(c))
		return t->quit_ms;
	switch ((enum cmd_kind)c->pend[c->pend_head]) {
	case CMD_BANNER: return t->banner_ms;
	case CMD_EHLO: case CMD_HELO: return t->helo_ms;
	case CMD_STARTTLS: return t->starttls_ms;
	case CMD_RSET: return t->rset_ms;
	case CMD_MAIL: return t->mail_ms;
	case CMD_RCPT: return t->rcpt_ms;
	case CMD_DATA: return t->data_init_ms;
	case CMD_DOT: case CMD_DOT_EMPTY: return t->data_final_ms;
	case CMD_QUIT: return t->quit_ms;
	}
	return t->quit_ms;
}

uint32_t delivery_client_wait_key(const struct delivery_client *c)
{
	unsigned kind = pend_any(c) ? c->pend[c->pend_head] : 0;

	/* STARTTLS's reply and the handshake after it are one stage with one deadline. */
	if (c->stage == DELIVERY_CLIENT_ST_TLS || c->stage == DELIVERY_CLIENT_ST_STARTTLS)
		return ((uint32_t)DELIVERY_CLIENT_ST_STARTTLS + 1u) << 8 | CMD_STARTTLS;
	/* The body: its own stage whatever is still pending. */
	if (c->stage == DELIVERY_CLIENT_ST_BODY)
		kind = 0;
	return ((uint32_t)c->stage + 1u) << 8 | kind;
}

void delivery_client_output(const struct delivery_client *c, const uint8_t **p_r, size_t *len_r)
{
	*p_r = c->out.pos;
	*len_r = buf_unread(&c->out);
}

void delivery_client_sent(struct delivery_client *c, size_t n)
{
	if (n > buf_unread(&c->out))
		panic("delivery_client_sent: %zu bytes sent of %zu queued", n, buf_unread(&c->out));
	buf_consume(&c->out, n);
	c->bytes_out += n;
}

int delivery_client_input(struct delivery_client *c, const uint8_t *p, size_t len)
{
	c->bytes_in += len;
	while (len > 0) {
		enum delivery_reply_status st;
		enum cmd_kind k;
		uint32_t arg;
		size_t used;
		int rc;

		if (c->stage == DELIVERY_CLIENT_ST_CLOSED)
			return c->error.err ? c->error.err : 0;
		if (!pend_any(c) && c->stage == DELIVERY_CLIENT_ST_READY) {
			/* An idle (reused) connection: the server may say 421 and hang up
			 * (RFC 5321 3.8); record its words rather than a protocol error. */
			st = delivery_reply_feed(&c->reply, p, len, &used);
			if (st == DELIVERY_REPLY_AGAIN)
				return 0;
			if (st == DELIVERY_REPLY_DONE) {
				session_fail(c, -ECONNRESET, &c->reply, NULL, NULL);
				return -ECONNRESET;
			}
		}
		if (!pend_any(c)) {
			/* Bytes nobody asked for. After the 220 to STARTTLS they may have been
			 * injected before the handshake (RFC 3207 5): never act on them. */
			session_fail(c, -EPROTO, NULL, "4.5.0",
				     c->stage == DELIVERY_CLIENT_ST_TLS
					     ? "unexpected bytes after the reply to STARTTLS"
					     : "unexpected bytes from the server");
			return -EPROTO;
		}
		st = delivery_reply_feed(&c->reply, p, len, &used);
		p += used;
		len -= used;
		if (st == DELIVERY_REPLY_AGAIN)
			return 0;
		if (st == DELIVERY_REPLY_BAD) {
			session_fail(c, -EPROTO, NULL, "4.5.0", "malformed reply from the server");
			return -EPROTO;
		}
		if (st == DELIVERY_REPLY_TOOLONG) {
			session_fail(c, -EMSGSIZE, NULL, "4.5.0", "reply from the server too long");
			return -EMSGSIZE;
		}
		k = (enum cmd_kind)c->pend[c->pend_head];
		arg = c->pend_arg[c->pend_head];
		c->pend_head++;
		rc = handle_reply(c, k, arg);
		delivery_reply_reset(&c->reply);
		if (rc != 0) {
			session_fail(c, rc, NULL, "4.3.0", "out of memory");
			return rc;
		}
	}
	return 0;
}

void delivery_client_tls_done(struct delivery_client *c, bool ok)
{
	if (c->stage != DELIVERY_CLIENT_ST_TLS)
		panic("delivery_client_tls_done in stage %s", delivery_client_stage_name(c->stage));
	if (!ok) {
		session_fail(c, -ECONNABORTED, NULL, "4.7.5", "TLS handshake failed");
		return;
	}
	c->tls_active = true;
	/* RFC 3207 4.2: forget everything learned before TLS, and ask again. */
	c->caps = 0;
	c->max_size = 0;
	if (send_ehlo(c, false) != 0)
		session_fail(c, -ENOMEM, NULL, "4.3.0", "out of memory");
}

int delivery_client_begin(struct delivery_client *c, struct delivery_client_msg *m)
{
	bool piped = (c->caps & DELIVERY_CLIENT_CAP_PIPELINING) != 0;
	const char *size_p = "", *body_p = "", *utf8_p = "";
	char size_buf[32] = "";
	int rc;

	if (c->stage != DELIVERY_CLIENT_ST_READY)
		return -EBUSY;
	if (m->nrcpt == 0)
		return -EINVAL;
	c->msg = m;
	m->eightbit_downgrade = false;
	m->naccepted = 0;
	for (unsigned i = 0; i < m->nrcpt; i++) {
		struct delivery_rcpt *rc_ = &m->rcpt[i];

		rc_->status = DELIVERY_RCPT_PENDING;
		rc_->rcpt_accepted = false;
		rc_->code = 0;
		rc_->enh[0] = '\0';
		rc_->diag[0] = '\0';
		if (rc_->addr.len == 0 || !addr_ok(rc_->addr))
			rcpt_settle_local(rc_, DELIVERY_RCPT_FAIL, "5.1.3", "bad recipient address syntax");
	}
	c->mail_ok = false;
	c->data_sent = false;
	c->rcpt_next = 0;
	c->stage = DELIVERY_CLIENT_ST_MSG_DONE;
	if (!addr_ok(m->mail_from)) {
		msg_settle_pending(c, DELIVERY_RCPT_FAIL, "5.1.7", "bad sender address syntax");
		return 0;
	}
	if (m->smtputf8 && !(c->caps & DELIVERY_CLIENT_CAP_SMTPUTF8)) {
		msg_settle_pending(c, DELIVERY_RCPT_FAIL, "5.6.7",
				   "SMTPUTF8 is required, but was not offered by host");
		return 0;
	}
	if ((c->caps & DELIVERY_CLIENT_CAP_SIZE) && c->max_size > 0 && m->size > c->max_size) {
		msg_settle_pending(c, DELIVERY_RCPT_FAIL, "5.3.4",
				   "message size exceeds the fixed limit of the host");
		return 0;
	}
	{
		bool any = false;

		for (unsigned i = 0; i < m->nrcpt; i++)
			any |= m->rcpt[i].status == DELIVERY_RCPT_PENDING;
		if (!any)
			return 0;
	}
	c->stage = DELIVERY_CLIENT_ST_TRANS;
	if (c->caps & DELIVERY_CLIENT_CAP_SIZE) {
		snprintf(size_buf, sizeof(size_buf), " SIZE=%llu", (unsigned long long)m->size);
		size_p = size_buf;
	}
	if (m->body_8bit) {
		if (c->caps & DELIVERY_CLIENT_CAP_8BITMIME)
			body_p = " BODY=8BITMIME";
		else
			m->eightbit_downgrade = true;   /* sent as is, as Postfix does */
	}
	if (m->smtputf8)
		utf8_p = " SMTPUTF8";
	/* RFC 2920 3.1: RSET and MAIL and RCPT may sit anywhere in a group, DATA only last. */
	rc = 0;
	if (c->used) {
		rc = out_printf(c, "RSET\r\n");
		if (rc == 0)
			rc = pend_push(c, CMD_RSET, 0);
	}
	c->used = true;
	if (rc == 0)
		rc = out_printf(c, "MAIL FROM:<%.*s>%s%s%s\r\n", (int)m->mail_from.len, m->mail_from.p,
				size_p, body_p, utf8_p);
	if (rc == 0)
		rc = pend_push(c, CMD_MAIL, 0);
	if (piped) {
		for (unsigned i = 0; rc == 0 && i < m->nrcpt; i++)
			if (m->rcpt[i].status == DELIVERY_RCPT_PENDING)
				rc = send_rcpt(c, i);
		if (rc == 0)
			rc = send_data(c);
	}
	if (rc != 0) {
		session_fail(c, rc, NULL, "4.3.0", "out of memory");
		return rc;
	}
	return 0;
}

int delivery_client_body(struct delivery_client *c, const uint8_t *p, size_t len, bool last)
{
	if (c->stage != DELIVERY_CLIENT_ST_BODY)
		panic("delivery_client_body in stage %s", delivery_client_stage_name(c->stage));
	if (out_reserve(c, DELIVERY_BODY_ENCODED_MAX(len) + DELIVERY_BODY_FINISH_MAX) != 0) {
		session_fail(c, -ENOMEM, NULL, "4.3.0", "out of memory");
		return -ENOMEM;
	}
	c->out.last += delivery_body_encode(&c->body, p, len, c->out.last);
	if (last) {
		c->out.last += delivery_body_finish(&c->body, c->out.last);
		c->stage = DELIVERY_CLIENT_ST_DOT;
		if (pend_push(c, CMD_DOT, 0) != 0) {
			session_fail(c, -ENOMEM, NULL, "4.3.0", "out of memory");
			return -ENOMEM;
		}
	}
	return 0;
}

void delivery_client_msg_ack(struct delivery_client *c)
{
	if (c->stage != DELIVERY_CLIENT_ST_MSG_DONE)
		panic("delivery_client_msg_ack in stage %s", delivery_client_stage_name(c->stage));
	c->msg = NULL;
	c->stage = DELIVERY_CLIENT_ST_READY;
}

void delivery_client_quit(struct delivery_client *c)
{
	if (c->stage != DELIVERY_CLIENT_ST_READY)
		panic("delivery_client_quit in stage %s", delivery_client_stage_name(c->stage));
	c->stage = DELIVERY_CLIENT_ST_QUIT;
	c->quit_sent = true;
	if (out_printf(c, "QUIT\r\n") != 0 || pend_push(c, CMD_QUIT, 0) != 0)
		session_fail(c, -ENOMEM, NULL, "4.3.0", "out of memory");
}

void delivery_client_abort(struct delivery_client *c, int err)
{
	if (c->stage == DELIVERY_CLIENT_ST_CLOSED)
		return;
	if (c->stage == DELIVERY_CLIENT_ST_QUIT) {
		/* The server hung up after (or instead of) answering QUIT: nothing is lost. */
		c->stage = DELIVERY_CLIENT_ST_CLOSED;
		return;
	}
	session_fail(c, err, NULL, err == -ETIMEDOUT ? "4.4.1" : "4.4.2",
		     err == -ETIMEDOUT ? "timeout talking to the host" : "lost connection with the host");
}
