/*
 * delivery_conn.c - the outbound side: a job's route (fixed, or MX through c-ares), the
 * destinations (host:port, with the TLS policy) and their connections, each driving one
 * delivery_client engine over io_uring in the shard that owns the message.
 *
 * I/O is the inbound session's (net/conn.h): recv into the shard's provided buffers, one send
 * in flight (output staged meanwhile), TLS through memory BIOs, the conn's count of operations
 * in the ring so nothing is freed while one is in flight, and its deadline timer (connect, each
 * wait, idle reuse). TCP_NODELAY on every socket: the engine writes small pipelined groups.
 *
 * Limits: at most [delivery] concurrency connections per destination per shard; others wait in
 * the destination's queue (FIFO) and take the next connection that becomes free; an idle
 * connection is kept idle_time for reuse, then QUIT. Body bytes are fed to the engine only while
 * less than DCONN_OUT_HIGH is queued, so a large message never sits whole in memory twice.
 *
 * Deadlines: every stage of a session (connect, banner, EHLO, STARTTLS with its handshake, RSET,
 * MAIL, the RCPTs, DATA, the body, the final reply, QUIT) has a total deadline, set when the stage
 * begins (delivery_client_wait_key changes) and not moved by the bytes that come in, so a server
 * that answers one byte at a time is cut off as surely as a silent one. Lengths: [delivery]
 * connect_timeout, helo_timeout (banner and EHLO/HELO), starttls_timeout, mail_timeout,
 * rcpt_timeout, data_init_timeout, data_xfer_timeout (the whole body, plus its size at
 * min_data_rate), data_done_timeout, rset_timeout, quit_timeout (Postfix's smtp_*_timeout
 * defaults).
 *
 * A destination that fails (refused, timeout, bad banner, lost connection) is reported to the
 * route health table and the job moves to the next destination of its route; when none is left
 * the recipients are deferred with the last diagnostic. With tls = may (and no verification), a
 * failed handshake (garbage, a close or a deadline in the middle of it) sends the jobs waiting
 * for that destination at once to a plain-text connection, as Postfix does, and the destination
 * is remembered for DCONN_TLS_FAIL_MS as one whose TLS fails: meanwhile its jobs go in plain text
 * straight away. tls = required defers instead. Likewise with long_lines = pass, a destination
 * that refuses a message's line over 998 octets (a 5xx to the dot that speaks of lines) gets it
 * again at once, wrapped, and wrapped lines for DCONN_WRAP_MS.
 *
 * Lifetime rule (issue 14: nothing is freed while something still refers to it):
 *   - A struct dconn belongs to its destination's list (d->conns) from dconn_new until the reaper
 *     frees it; nothing else frees it, and nothing frees it where it stands.
 *   - dconn_close() is the one way a connection ends. It is idempotent; it takes it off the
 *     durable waiters, closes its conn (conn_close: timer and operations in the ring cancelled,
 *     the socket shut down under a send to a peer that stopped reading), gives its slot back to
 *     the destination, and puts it on ds->dead.
 *   - dconn_reap(), from delivery_conn_turn (the top of the shard's loop turn, where no caller up
 *     the stack holds a connection), frees a dead connection once no io_uring operation of it is
 *     in flight (conn_busy) and no DNS lookup of it is outstanding (dns_wait). A completion or
 *     a DNS answer that comes for a closing connection only drops its count.
 *   - So a connection pointer stays valid for the whole call that holds it: after any call that
 *     can close it (dconn_pump, dconn_closed, dconn_fail_early, job_next_dest, dest_kick), the
 *     caller looks at cn->conn.closing and does nothing more with it when set.
 *   - A timer never fires for a closed connection (dconn_close cancels it, the handler checks).
 *   - A connection never holds a job when it closes: dconn_closed hands it back first. A job is
 *     in exactly one place: a destination's wait queue, a connection (cn->job), or the resolver
 *     (j->dns_wait); the queue frees it in delivery_job_done. Destinations live until the shard
 *     ends (delivery_conn_free_all).
 *   - Waking a destination that got a slot back (dest_kick) is deferred to the turn as well
 *     (ds->kicks), so it never runs inside the stack of the connection that closed.
 * OpenSSL: no callback of ours refers to a connection (memory BIOs, no info/verify callbacks).
 *
 * Shard thread only.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/counter.h"
#include "base/log.h"
#include "base/tls.h"
#include "delivery/delivery_impl.h"
#include "net/conn.h"

#define DCONN_OUT_HIGH (256u * 1024u)
#define DCONN_BODY_CHUNK (64u * 1024u)
/* How long a destination whose TLS handshake failed gets plain text at once (tls = may), and one
 * that refused a long line gets them wrapped (long_lines = pass). */
#define DCONN_TLS_FAIL_MS (60u * 60u * 1000u)
#define DCONN_WRAP_MS (60u * 60u * 1000u)

struct ddest {
	struct ddest *next;
	char          host[DELIVERY_ROUTE_HOST_MAX];
	uint16_t      port;
	uint8_t       tls;
	bool          verify;
	unsigned      nconn;
	struct dconn *conns;
	struct djob  *wq_head, **wq_tail;
	uint64_t      tls_fail_until_ms;  /* tls = may: its handshake failed; plain until then */
	uint64_t      wrap_until_ms;      /* it refused a long line: wrap them until then */
	struct ddest *kick_next;          /* on ds->kicks */
	bool          kick_queued;
};

struct dconn {
	struct dconn          *next, *prev;
	struct ddest          *dest;
	struct delivery_shard *ds;
	struct conn            conn;              /* fd, output, TLS, I/O, the deadline timer */
	struct delivery_client c;
	bool                   c_init;
	struct djob           *job;
	/* The job's recipients still open, as the engine sees them. */
	struct delivery_rcpt  *crc;
	unsigned              *cmap, ncrc;
	size_t                 body_off;
	bool                   hdr_done, body_held;
	bool                   idle;
	bool                   dns_wait, ever_ready;
	bool                   wait_durable;      /* on ds->durable_waiters */
	uint64_t               wait_jseq;         /* the last message's journal records */
	struct dconn          *wait_next;
	struct sockaddr_storage sa;
	socklen_t              salen;
	struct dconn          *dead_next;         /* on ds->dead once closing */
	uint32_t               wait_key;          /* the stage the deadline is for */
	uint64_t               deadline_ms;       /* 0: none set */
};

static void dconn_pump(struct dconn *cn);
static void job_next_dest(struct djob *j);
static void dconn_connect(struct dconn *cn);
static void dconn_close(struct dconn *cn);

static const struct conn_ops dconn_ops;

static inline struct dconn *dconn_of(struct conn *c)
{
	return CONN_OWNER(c, struct dconn, conn);
}

/* ---- jobs ---- */

/* Settles every recipient not yet decided (status PENDING or DEFER). */
static void job_settle_open(struct djob *j, enum delivery_rcpt_status st, const char *enh,
			    const char *diag, bool keep_diag)
{
	for (unsigned k = 0; k < j->n; k++) {
		struct delivery_rcpt *r = &j->rc[k];

		if (r->status == DELIVERY_RCPT_OK || r->status == DELIVERY_RCPT_FAIL)
			continue;
		if (keep_diag && r->status == DELIVERY_RCPT_DEFER && r->diag[0] &&
		    st == DELIVERY_RCPT_DEFER) {
			continue;
		}
		r->status = st;
		r->code = 0;
		snprintf(r->enh, sizeof(r->enh), "%s", enh);
		snprintf(r->diag, sizeof(r->diag), "%s", diag);
	}
}

static void job_finish(struct djob *j)
{
	j->dest = NULL;
	delivery_job_done(j);
}

static bool job_open(const struct djob *j)
{
	for (unsigned k = 0; k < j->n; k++)
		if (j->rc[k].status == DELIVERY_RCPT_PENDING || j->rc[k].status == DELIVERY_RCPT_DEFER)
			return true;
	return false;
}

/* ---- destinations ---- */

static struct ddest *dest_find(struct delivery_shard *ds, const char *host, uint16_t port,
			       uint8_t tls, bool verify)
{
	for (struct ddest *d = ds->dests; d; d = d->next)
		if (d->port == port && d->tls == tls && d->verify == verify &&
		    strcasecmp(d->host, host) == 0)
			return d;
	return NULL;
}

static struct ddest *dest_get(struct delivery_shard *ds, const char *host, uint16_t port,
			      uint8_t tls, bool verify)
{
	struct ddest *d = dest_find(ds, host, port, tls, verify);

	if (d != NULL)
		return d;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return NULL;
	snprintf(d->host, sizeof(d->host), "%s", host);
	d->port = port;
	d->tls = tls;
	d->verify = verify;
	d->wq_tail = &d->wq_head;
	d->next = ds->dests;
	ds->dests = d;
	return d;
}

static struct djob *dest_pop(struct ddest *d)
{
	struct djob *j = d->wq_head;

	if (j) {
		d->wq_head = j->next;
		if (d->wq_head == NULL)
			d->wq_tail = &d->wq_head;
		j->next = NULL;
	}
	return j;
}

static void dest_push(struct ddest *d, struct djob *j)
{
	j->next = NULL;
	*d->wq_tail = j;
	d->wq_tail = &j->next;
}

static void dest_push_front(struct ddest *d, struct djob *j)
{
	j->next = d->wq_head;
	d->wq_head = j;
	if (j->next == NULL)
		d->wq_tail = &j->next;
}

static struct dconn *dconn_new(struct delivery_shard *ds, struct ddest *d);

/* Wakes the destination at the next turn (a slot came free deep in some call stack). */
static void dest_kick_later(struct delivery_shard *ds, struct ddest *d)
{
	if (d->kick_queued || ds->stopping)
		return;
	d->kick_queued = true;
	d->kick_next = ds->kicks;
	ds->kicks = d;
}

/* Gives the destination's waiting jobs connections: idle ones first, then new ones. */
static void dest_kick(struct delivery_shard *ds, struct ddest *d)
{
	if (ds->stopping)
		return;
	for (struct dconn *cn = d->conns, *cnext; cn && d->wq_head; cn = cnext) {
		cnext = cn->next;
		if (cn->idle && !cn->conn.closing) {
			cn->idle = false;
			conn_deadline_cancel(&cn->conn);
			dconn_pump(cn);   /* takes a job: the connection stays */
		}
	}
	if (d->wq_head && d->nconn == 0 &&
	    delivery_route_health_down_until(&ds->health, d->host, d->port, ds->sh->now_ms)) {
		struct djob *w;

		while ((w = dest_pop(d)) != NULL) {
			w->pos++;
			job_next_dest(w);
		}
		return;
	}
	if (d->wq_head && d->nconn < ds->sh->conf->delivery.concurrency) {
		unsigned waiting = 0;

		for (struct djob *j = d->wq_head; j; j = j->next)
			waiting++;
		/* One new connection per waiting job, up to the limit; connecting ones count. */
		unsigned connecting = 0;

		for (struct dconn *cn = d->conns; cn; cn = cn->next)
			connecting += !cn->ever_ready && !cn->conn.closing;
		while (connecting < waiting && d->nconn < ds->sh->conf->delivery.concurrency) {
			if (dconn_new(ds, d) == NULL)
				break;
			connecting++;
		}
	}
}

/* ---- routes ---- */

static void job_next_dest(struct djob *j)
{
	struct delivery_shard *ds = j->ds;
	const struct delivery_route_dest *rd;
	uint64_t retry_at = 0;
	unsigned idx;
	int r;

	if (ds->stopping || !job_open(j)) {
		job_finish(j);
		return;
	}
	r = delivery_route_pick(&j->route, &ds->health, j->pos, ds->sh->now_ms, &idx, &retry_at);
	if (r < 0) {
		job_settle_open(j, DELIVERY_RCPT_DEFER, "4.4.1",
				r == -EAGAIN ? "destination temporarily marked down after a failure"
					     : "no destination could be reached", true);
		job_finish(j);
		return;
	}
	j->pos = idx;
	rd = &j->route.d[idx];
	if (j->tls == DOMAIN_TLS_MAY && !j->tls_verify) {
		/* A destination whose handshake failed lately gets plain text at once. */
		struct ddest *may = dest_find(ds, rd->host, rd->port, DOMAIN_TLS_MAY, false);

		if (may != NULL && may->tls_fail_until_ms > ds->sh->now_ms)
			j->tls = DOMAIN_TLS_NONE;
	}
	j->dest = dest_get(ds, rd->host, rd->port, j->tls, j->tls_verify);
	if (j->dest == NULL) {
		job_settle_open(j, DELIVERY_RCPT_DEFER, "4.3.0", "out of memory", false);
		job_finish(j);
		return;
	}
	snprintf(j->mta, sizeof(j->mta), "%s:%u", rd->host, rd->port);
	dest_push(j->dest, j);
	dest_kick(ds, j->dest);
}

static void job_mx_done(void *arg, int err, const struct delivery_dns_mx *mx, unsigned nmx)
{
	struct djob *j = arg;
	struct delivery_shard *ds = j->ds;
	const struct node_config *c = ds->sh->conf;
	int r;

	j->dns_wait = false;
	if (err == 0 && nmx == 0) {
		/* RFC 5321 5.1: no MX, the domain itself is the implicit MX. */
		j->route.n = 1;
		snprintf(j->route.d[0].host, sizeof(j->route.d[0].host), "%s", j->domain);
		j->route.d[0].port = c->delivery.mx_port;
		j->route.d[0].prio = 0;
		j->route.d[0].implicit = true;
		j->routed = true;
	} else if (err == 0) {
		struct delivery_route_mx v[DELIVERY_DNS_MX_MAX];

		if (nmx > DELIVERY_DNS_MX_MAX)
			nmx = DELIVERY_DNS_MX_MAX;
		for (unsigned i = 0; i < nmx; i++)
			v[i] = (struct delivery_route_mx){ .host = mx[i].host, .pref = mx[i].pref };
		r = delivery_route_mx(j->domain, v, nmx, c->delivery.mx_port, c->hostname,
				      delivery_rand(ds), &j->route);
		if (r == -ENXIO) {
			job_settle_open(j, DELIVERY_RCPT_FAIL, "5.1.10",
					"556 5.1.10 the domain accepts no mail (null MX)", false);
		} else if (r == -ELOOP) {
			job_settle_open(j, DELIVERY_RCPT_FAIL, "5.4.6",
					"mail for the domain loops back to myself", false);
		} else if (r < 0) {
			job_settle_open(j, DELIVERY_RCPT_FAIL, "5.1.2", "bad domain name", false);
		} else {
			j->routed = true;
		}
	} else if (err == -ENOENT) {
		job_settle_open(j, DELIVERY_RCPT_FAIL, "5.1.2", "the domain does not exist (NXDOMAIN)",
				false);
	} else {
		job_settle_open(j, DELIVERY_RCPT_DEFER, "4.4.3", "MX lookup failed, will retry", false);
	}
	if (!j->routed) {
		job_finish(j);
		return;
	}
	j->pos = 0;
	job_next_dest(j);
}

void delivery_conn_job_start(struct delivery_shard *ds, struct djob *j)
{
	if (ds->stopping) {
		job_finish(j);
		return;
	}
	if (!j->routed) {
		int r = -ENOENT;

		if (j->route_mx && ds->dns != NULL) {
			j->dns_wait = true;
			r = delivery_dns_mx(ds->dns, j->domain, job_mx_done, j);
			if (r == 0)
				return;
			j->dns_wait = false;
		}
		job_settle_open(j, r == -EINVAL ? DELIVERY_RCPT_FAIL : DELIVERY_RCPT_DEFER,
				r == -EINVAL ? "5.1.2" : "4.4.3",
				r == -EINVAL ? "bad domain name" : "no route to the domain (no resolver)",
				false);
		job_finish(j);
		return;
	}
	j->pos = 0;
	job_next_dest(j);
}

/* ---- connection output ---- */

static void dconn_flush(struct dconn *cn)
{
	if (conn_flush(&cn->conn) < 0) {
		delivery_client_abort(&cn->c, -ENOMEM);
		dconn_pump(cn);
	}
}

/* ---- connection life ---- */

static void dconn_unwait(struct dconn *cn)
{
	struct dconn **pp = &cn->ds->durable_waiters;

	if (!cn->wait_durable)
		return;
	while (*pp != cn)
		pp = &(*pp)->wait_next;
	*pp = cn->wait_next;
	cn->wait_durable = false;
	cn->wait_next = NULL;
}

/* Frees a dead connection: nothing refers to it any more (see the lifetime rule). */
static void dconn_destroy(struct dconn *cn)
{
	struct delivery_shard *ds = cn->ds;
	struct ddest *d = cn->dest;

	if (!cn->conn.closing || conn_busy(&cn->conn) || cn->dns_wait || cn->job != NULL)
		panic("delivery: freeing a live connection (inflight %u, dns %d, job %p)",
		      cn->conn.inflight, cn->dns_wait, (void *)cn->job);
	conn_fini(&cn->conn);
	if (cn->c_init)
		delivery_client_fini(&cn->c);
	free(cn->crc);
	free(cn->cmap);
	if (cn->prev)
		cn->prev->next = cn->next;
	else
		d->conns = cn->next;
	if (cn->next)
		cn->next->prev = cn->prev;
	ds->nconns--;
	free(cn);
}

/* Frees the dead connections nothing refers to any more. Only from the turn. */
static void dconn_reap(struct delivery_shard *ds)
{
	struct dconn **pp = &ds->dead;

	while (*pp != NULL) {
		struct dconn *cn = *pp;

		if (conn_busy(&cn->conn) || cn->dns_wait) {
			pp = &cn->dead_next;
			continue;
		}
		*pp = cn->dead_next;
		dconn_destroy(cn);
	}
}

/* Each loop turn: dead connections are freed, destinations that got a slot back take their
 * waiting jobs, and connections whose last results reached the disk take their next message. */
void delivery_conn_turn(struct delivery_shard *ds)
{
	uint64_t durable = spool_journal_durable_seq(ds->sh->spool);
	struct dconn **pp = &ds->durable_waiters;
	struct ddest *kicks = ds->kicks;

	dconn_reap(ds);
	/* The list as it is now: a kick that frees a slot again queues for the next turn. */
	ds->kicks = NULL;
	while (kicks != NULL) {
		struct ddest *d = kicks;

		kicks = d->kick_next;
		d->kick_next = NULL;
		d->kick_queued = false;
		dest_kick(ds, d);
	}
	while (*pp != NULL) {
		struct dconn *cn = *pp;

		if (cn->wait_jseq > durable && !ds->stopping) {
			pp = &cn->wait_next;
			continue;
		}
		*pp = cn->wait_next;
		cn->wait_durable = false;
		cn->wait_next = NULL;
		dconn_pump(cn);
	}
}

/* Ends the connection (the only way; idempotent). The memory stays until dconn_reap. */
static void dconn_close(struct dconn *cn)
{
	struct delivery_shard *ds = cn->ds;

	if (cn->conn.closing)
		return;
	if (cn->job != NULL)
		panic("delivery: closing a connection that holds a job");
	cn->idle = false;
	dconn_unwait(cn);
	conn_close(&cn->conn);
	cn->dest->nconn--;
	cn->dead_next = ds->dead;
	ds->dead = cn;
	dest_kick_later(ds, cn->dest);
}

/* Hands the transaction's results back to the job. */
static void dconn_job_results(struct dconn *cn)
{
	struct djob *j = cn->job;

	for (unsigned k = 0; k < cn->ncrc; k++)
		if (cn->crc[k].status != DELIVERY_RCPT_PENDING)
			j->rc[cn->cmap[k]] = cn->crc[k];
		else if (j->rc[cn->cmap[k]].status == DELIVERY_RCPT_PENDING)
			j->rc[cn->cmap[k]] = cn->crc[k];
	cn->ncrc = 0;
	if (cn->body_held) {
		delivery_msg_body_put(j->m);
		cn->body_held = false;
	}
	cn->job = NULL;
}

/* The engine says the session is over (QUIT done, or a failure). The connection is closed
 * first, then its job and the jobs waiting for its destination move on. */
static void dconn_closed(struct dconn *cn)
{
	struct delivery_shard *ds = cn->ds;
	struct ddest *d = cn->dest;
	struct djob *j = cn->job;
	bool failed = cn->c_init ? cn->c.error.err != 0 : true;
	bool idle_close = cn->c_init && cn->c.error.err == -ECONNRESET && j == NULL && cn->ever_ready;
	/* The handshake failed (garbage, a close or the deadline in the middle of it). The job
	 * that would use this connection is not on it yet (it is taken at READY), so the decision
	 * is the destination's: with tls = may and no verification, plain text at once. */
	bool tls_retry = failed && cn->c_init && cn->c.error.stage == DELIVERY_CLIENT_ST_TLS &&
			 d->tls == DOMAIN_TLS_MAY && !d->verify;
	struct djob *w;

	if (cn->conn.closing)
		return;
	if (tls_retry) {
		d->tls_fail_until_ms = ds->sh->now_ms + DCONN_TLS_FAIL_MS;
		log_info("delivery: %s:%u: %s (during tls); retrying in plain text", d->host, d->port,
			 cn->c.error.text);
	} else if (failed && !idle_close) {
		delivery_route_health_report(&ds->health, d->host, d->port, false, ds->sh->now_ms);
		if (cn->c_init)
			log_info("delivery: %s:%u: %s (%s)", d->host, d->port, cn->c.error.text,
				 delivery_client_stage_name(cn->c.error.stage));
	}
	if (j != NULL)
		dconn_job_results(cn);
	dconn_close(cn);
	if (j != NULL) {
		if (tls_retry)
			j->tls = DOMAIN_TLS_NONE;   /* as Postfix: opportunistic TLS falls back */
		else if (failed)
			j->pos++;
		if (failed)
			job_next_dest(j);
		else
			job_finish(j);
	}
	if (tls_retry) {
		/* Everyone waiting for it goes in plain text, now, to the same host. */
		while ((w = dest_pop(d)) != NULL) {
			w->tls = DOMAIN_TLS_NONE;
			job_next_dest(w);
		}
	} else if (failed && !cn->ever_ready) {
		/* The destination is unreachable (and now marked down): whoever waits for it moves
		 * on, rather than each trying a connection of its own. */
		char diag[DELIVERY_DIAG_MAX];

		snprintf(diag, sizeof(diag), "%.200s (during %s)",
			 cn->c_init ? cn->c.error.text : "connection failed",
			 cn->c_init ? delivery_client_stage_name(cn->c.error.stage) : "connect");
		while ((w = dest_pop(d)) != NULL) {
			job_settle_open(w, DELIVERY_RCPT_DEFER, "4.4.1", diag, false);
			w->pos++;
			job_next_dest(w);
		}
	}
}

static void dconn_fail_early(struct dconn *cn, int err, const char *why)
{
	/* No engine yet (lookup or connect failed): the same as a session failure. */
	struct ddest *d = cn->dest;

	log_info("delivery: %s:%u: %s: %s", d->host, d->port, why, strerror(-err));
	if (!cn->c_init) {
		struct delivery_client_conf cc = { .helo_name = "x" };

		if (delivery_client_init(&cn->c, &cc) == 0) {
			cn->c_init = true;
			delivery_client_abort(&cn->c, err);
			snprintf(cn->c.error.text, sizeof(cn->c.error.text), "%s: %s", why,
				 strerror(-err));
			cn->c.error.stage = DELIVERY_CLIENT_ST_BANNER;
		}
	}
	dconn_closed(cn);
}

/* Arms the timer for the wait in progress: its stage's total deadline, set when the stage began. */
static void dconn_arm_deadline(struct dconn *cn)
{
	struct shard *sh = cn->ds->sh;
	uint32_t key = delivery_client_wait_key(&cn->c);

	if (key != cn->wait_key || cn->deadline_ms == 0) {
		uint64_t rate = sh->conf->delivery.min_data_rate;

		cn->wait_key = key;
		cn->deadline_ms = sh->now_ms + delivery_client_timeout_ms(&cn->c);
		/* The body's deadline is for the whole of it: a large message gets its size at
		 * min_data_rate on top (fixed now, so a slow reader cannot stretch it). */
		if (cn->c.stage == DELIVERY_CLIENT_ST_BODY && cn->job != NULL)
			cn->deadline_ms += cn->job->cm.size * 1000u /
					   (rate ? rate : DELIVERY_MIN_DATA_RATE_DEF);
	}
	conn_deadline_in(&cn->conn, cn->deadline_ms > sh->now_ms ? cn->deadline_ms - sh->now_ms : 1);
}

static void dconn_on_deadline(struct conn *c)
{
	struct dconn *cn = dconn_of(c);

	if (cn->idle) {
		cn->idle = false;
		delivery_client_quit(&cn->c);
		dconn_pump(cn);
		return;
	}
	if (!cn->c_init) {
		dconn_fail_early(cn, -ETIMEDOUT, "connect");
		return;
	}
	/* The stage's deadline (a byte now and then does not move it). */
	log_info("delivery: %s:%u: deadline of the %s stage passed", cn->dest->host, cn->dest->port,
		 delivery_client_stage_name(cn->c.stage));
	delivery_client_abort(&cn->c, -ETIMEDOUT);
	dconn_pump(cn);
}

static int dconn_init_engine(struct dconn *cn)
{
	const struct node_config *c = cn->ds->sh->conf;
	const struct delivery_tuning *t = &c->delivery;
	struct delivery_client_conf cc = {
		.helo_name = t->helo_name,
		.tls = cn->dest->tls == DOMAIN_TLS_NONE ? DELIVERY_CLIENT_TLS_NONE :
		       cn->dest->tls == DOMAIN_TLS_REQUIRED ? DELIVERY_CLIENT_TLS_REQUIRED :
							      DELIVERY_CLIENT_TLS_MAY,
		/* [delivery] long_lines: wrap breaks lines over 998 octets (RFC 5321 4.5.3.1.6),
		 * pass sends them as they are (a DKIM signature survives). */
		.line_max = t->long_lines == DELIVERY_LONG_LINES_WRAP ? 998 : 0,
		/* Zero (not configured) takes the engine's defaults, Postfix's. */
		.timeouts = {
			.banner_ms = t->helo_timeout_ms,
			.helo_ms = t->helo_timeout_ms,
			.starttls_ms = t->starttls_timeout_ms,
			.mail_ms = t->mail_timeout_ms,
			.rcpt_ms = t->rcpt_timeout_ms,
			.data_init_ms = t->data_init_timeout_ms,
			.data_block_ms = t->data_xfer_timeout_ms,
			.data_final_ms = t->data_done_timeout_ms,
			.rset_ms = t->rset_timeout_ms,
			.quit_ms = t->quit_timeout_ms,
		},
	};
	int r = delivery_client_init(&cn->c, &cc);

	if (r == 0)
		cn->c_init = true;
	return r;
}

static void dconn_addr_done(void *arg, int err, const struct delivery_dns_addr *a, unsigned n)
{
	struct dconn *cn = arg;

	cn->dns_wait = false;
	if (cn->conn.closing)
		return;   /* the reaper frees it */
	if (err < 0 || n == 0) {
		dconn_fail_early(cn, err < 0 ? err : -ENODATA, "address lookup");
		return;
	}
	memcpy(&cn->sa, &a[0].ss, a[0].len);
	cn->salen = a[0].len;
	if (cn->sa.ss_family == AF_INET)
		((struct sockaddr_in *)&cn->sa)->sin_port = htons(cn->dest->port);
	else
		((struct sockaddr_in6 *)&cn->sa)->sin6_port = htons(cn->dest->port);
	dconn_connect(cn);
}

static void dconn_connect(struct dconn *cn)
{
	int r = conn_connect(&cn->conn, (struct sockaddr *)&cn->sa, cn->salen);

	if (r < 0) {
		dconn_fail_early(cn, r, "socket");
		return;
	}
	conn_deadline_in(&cn->conn, cn->ds->sh->conf->delivery.connect_timeout_ms);
}

static struct dconn *dconn_new(struct delivery_shard *ds, struct ddest *d)
{
	struct dconn *cn = calloc(1, sizeof(*cn));
	struct sockaddr_in *s4;
	struct sockaddr_in6 *s6;

	if (cn == NULL)
		return NULL;
	cn->ds = ds;
	cn->dest = d;
	conn_init(&cn->conn, ds->sh, &dconn_ops);
	cn->next = d->conns;
	if (d->conns)
		d->conns->prev = cn;
	d->conns = cn;
	d->nconn++;
	ds->nconns++;
	ctr_inc(&ds->ctr.connections);
	log_debug("delivery: connecting to %s:%u (%u connections)", d->host, d->port, d->nconn);
	s4 = (struct sockaddr_in *)&cn->sa;
	s6 = (struct sockaddr_in6 *)&cn->sa;
	if (inet_pton(AF_INET, d->host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		s4->sin_port = htons(d->port);
		cn->salen = sizeof(*s4);
		dconn_connect(cn);
	} else if (inet_pton(AF_INET6, d->host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(d->port);
		cn->salen = sizeof(*s6);
		dconn_connect(cn);
	} else {
		int r = -ENOENT;

		/* Set before the call: c-ares may answer from inside it (a bad name, a cached or
		 * numeric answer), and the answer clears it. */
		cn->dns_wait = true;
		if (ds->dns)
			r = delivery_dns_addr(ds->dns, d->host, AF_UNSPEC, dconn_addr_done, cn);
		if (r < 0) {
			cn->dns_wait = false;
			dconn_fail_early(cn, r, "address lookup");
		}
	}
	/* NULL when it failed at once (closed; its failure moved the waiting jobs on). */
	return cn->conn.closing ? NULL : cn;
}

/* ---- TLS ---- */

static void dconn_tls_step(struct dconn *cn)
{
	int r = conn_tls_handshake(&cn->conn);
	char why[256];

	if (r == 0)
		return;
	if (r == 1) {
		delivery_client_tls_done(&cn->c, true);
		return;
	}
	tls_errors(why, sizeof(why));
	log_info("delivery: %s:%u: TLS handshake failed: %s", cn->dest->host, cn->dest->port, why);
	delivery_client_tls_done(&cn->c, false);
}

static int dconn_tls_start(struct dconn *cn)
{
	const struct node_config *c = cn->ds->sh->conf;
	SSL_CTX *ctx = cn->dest->verify ? c->tls_client_verify_ctx : c->tls_client_ctx;

	return conn_tls_start(&cn->conn, ctx, CONN_TLS_CLIENT, cn->dest->host, cn->dest->verify);
}

/* ---- the engine's pump ---- */

/* Starts the next waiting job's transaction. false when there is none. */
static bool dconn_begin(struct dconn *cn)
{
	struct delivery_shard *ds = cn->ds;
	struct djob *j;
	int r;

	while ((j = dest_pop(cn->dest)) != NULL) {
		unsigned n = 0;

		if (delivery_msg_body_get(ds, j->m) < 0) {
			job_settle_open(j, DELIVERY_RCPT_DEFER, "4.3.0",
					"the message could not be read from the spool", false);
			job_finish(j);
			continue;
		}
		free(cn->crc);
		free(cn->cmap);
		cn->crc = calloc(j->n, sizeof(*cn->crc));
		cn->cmap = calloc(j->n, sizeof(*cn->cmap));
		if (!cn->crc || !cn->cmap) {
			delivery_msg_body_put(j->m);
			job_settle_open(j, DELIVERY_RCPT_DEFER, "4.3.0", "out of memory", false);
			job_finish(j);
			continue;
		}
		for (unsigned k = 0; k < j->n; k++)
			if (j->rc[k].status == DELIVERY_RCPT_PENDING ||
			    j->rc[k].status == DELIVERY_RCPT_DEFER) {
				cn->crc[n] = (struct delivery_rcpt){ .addr = j->rc[k].addr };
				cn->cmap[n++] = k;
			}
		cn->ncrc = n;
		cn->job = j;
		cn->body_held = true;
		cn->body_off = 0;
		cn->hdr_done = j->hdr == NULL;
		j->cm.rcpt = cn->crc;
		j->cm.nrcpt = n;
		j->cm.size = j->m->rec.body_len + j->hdr_len;
		/* long_lines is the recipient domain's (the engine reads line_max at each 354); with
		 * pass, a destination that refused a long line lately gets them wrapped. */
		cn->c.conf.line_max = j->long_lines == DELIVERY_LONG_LINES_WRAP ||
				      cn->dest->wrap_until_ms > ds->sh->now_ms ? 998 : 0;
		cn->c.body.longest = 0;   /* this message's, once its body goes */
		r = delivery_client_begin(&cn->c, &j->cm);
		if (r < 0) {
			dconn_job_results(cn);
			job_settle_open(j, DELIVERY_RCPT_DEFER, "4.3.0", "out of memory", false);
			job_finish(j);
			continue;
		}
		return true;
	}
	return false;
}

/* A refusal's text that is about line length. */
static bool speaks_of_long_lines(const char *diag)
{
	return strcasestr(diag, "line") != NULL &&
	       (strcasestr(diag, "long") != NULL || strcasestr(diag, "length") != NULL ||
		strstr(diag, "998") != NULL || strstr(diag, "1000") != NULL);
}

/*
 * long_lines = pass and the final reply refused a message that had a line over 998 octets with
 * words about lines ("500 5.5.0 line too long", "554 5.6.0 message contains long lines"): those
 * recipients are tried again at once with the lines wrapped (RFC 5321 4.5.3.1.6 lets the server
 * refuse them; Postfix would have wrapped), and the destination gets wrapped lines for a while.
 * Returns true when the job should run again. Once wrapped, a refusal is final as any other.
 */
static bool dconn_long_line_refused(struct dconn *cn)
{
	struct shard *sh = cn->ds->sh;
	bool any = false;

	if (cn->c.conf.line_max != 0 || cn->c.body.longest <= 998)
		return false;
	for (unsigned k = 0; k < cn->ncrc; k++) {
		struct delivery_rcpt *r = &cn->crc[k];
		char why[DELIVERY_DIAG_MAX];

		if (r->status != DELIVERY_RCPT_FAIL || !r->rcpt_accepted || r->code < 500 ||
		    !speaks_of_long_lines(r->diag))
			continue;
		snprintf(why, sizeof(why), "%.180s (lines over 998 octets: wrapping them)", r->diag);
		snprintf(r->diag, sizeof(r->diag), "%s", why);
		snprintf(r->enh, sizeof(r->enh), "4.6.0");
		r->status = DELIVERY_RCPT_DEFER;
		any = true;
	}
	if (any) {
		cn->dest->wrap_until_ms = sh->now_ms + DCONN_WRAP_MS;
		log_info("delivery: %s:%u: refused a line of %u octets; sending again with lines "
			 "wrapped", cn->dest->host, cn->dest->port, cn->c.body.longest);
	}
	return any;
}

static void dconn_pump(struct dconn *cn)
{
	struct delivery_shard *ds = cn->ds;
	struct shard *sh = ds->sh;

	for (;;) {
		enum delivery_client_ev ev;

		if (cn->conn.closing)
			return;
		ev = delivery_client_next(&cn->c);
		switch (ev) {
		case DELIVERY_CLIENT_EV_WRITE: {
			const uint8_t *p;
			size_t n;

			delivery_client_output(&cn->c, &p, &n);
			if (conn_write(&cn->conn, p, n) < 0) {
				delivery_client_abort(&cn->c, -ENOMEM);
				continue;
			}
			delivery_client_sent(&cn->c, n);
			continue;
		}
		case DELIVERY_CLIENT_EV_BODY: {
			struct djob *j = cn->job;
			size_t left, chunk;

			if (conn_pending(&cn->conn) >= DCONN_OUT_HIGH)
				break;   /* the send completion pumps again */
			if (!cn->hdr_done) {
				cn->hdr_done = true;
				if (delivery_client_body(&cn->c, (const uint8_t *)j->hdr, j->hdr_len,
							 false) < 0)
					continue;
			}
			left = j->m->rec.body_len - cn->body_off;
			chunk = left < DCONN_BODY_CHUNK ? left : DCONN_BODY_CHUNK;
			delivery_client_body(&cn->c, j->m->rec.body + cn->body_off, chunk,
					     chunk == left);
			cn->body_off += chunk;
			continue;
		}
		case DELIVERY_CLIENT_EV_READ:
			conn_recv(&cn->conn);
			break;
		case DELIVERY_CLIENT_EV_STARTTLS:
			if (cn->conn.ssl == NULL) {
				if (dconn_tls_start(cn) < 0) {
					delivery_client_tls_done(&cn->c, false);
					continue;
				}
				dconn_tls_step(cn);
				continue;
			}
			conn_recv(&cn->conn);
			break;
		case DELIVERY_CLIENT_EV_READY:
			cn->ever_ready = true;
			/* The next message waits until this connection's last results are on disk, so
			 * a crash can make a connection deliver at most one message twice. */
			if (!ds->stopping &&
			    spool_journal_durable_seq(sh->spool) < cn->wait_jseq) {
				if (!cn->wait_durable) {
					cn->wait_durable = true;
					cn->wait_next = ds->durable_waiters;
					ds->durable_waiters = cn;
				}
				dconn_flush(cn);
				return;
			}
			if (!ds->stopping && dconn_begin(cn))
				continue;
			if (ds->stopping) {
				delivery_client_quit(&cn->c);
				continue;
			}
			/* Idle: kept for reuse a few seconds, reading so a 421 or close is seen. */
			cn->idle = true;
			cn->deadline_ms = 0;   /* the next stage starts a deadline of its own */
			conn_recv(&cn->conn);
			dconn_flush(cn);
			conn_deadline_in(&cn->conn, sh->conf->delivery.idle_ms);
			return;
		case DELIVERY_CLIENT_EV_MSG_DONE: {
			struct djob *j = cn->job;
			bool again = dconn_long_line_refused(cn);

			delivery_route_health_report(&ds->health, cn->dest->host, cn->dest->port, true,
						     sh->now_ms);
			dconn_job_results(cn);
			if (again && !ds->stopping)
				dest_push_front(cn->dest, j);   /* next on this connection, wrapped */
			else
				job_finish(j);
			cn->wait_jseq = spool_journal_seq(sh->spool);
			delivery_client_msg_ack(&cn->c);
			continue;
		}
		case DELIVERY_CLIENT_EV_CLOSED:
			dconn_closed(cn);
			return;
		}
		break;
	}
	dconn_flush(cn);
	if (!cn->conn.closing && !cn->idle)
		dconn_arm_deadline(cn);
}

/* ---- completions ---- */

/* Bytes came in (p NULL: ciphertext, already in the TLS read BIO). */
static void dconn_on_input(struct conn *c, const uint8_t *p, size_t len)
{
	struct dconn *cn = dconn_of(c);
	struct shard *sh = cn->ds->sh;

	if (p != NULL) {
		delivery_client_input(&cn->c, p, len);
	} else if (conn_tls_handshaking(c)) {
		dconn_tls_step(cn);
	} else {
		for (;;) {
			int n = conn_tls_read(c, sh->scratch, SHARD_BUF_SIZE);

			if (n <= 0) {
				if (n < 0)
					delivery_client_abort(&cn->c, -ECONNRESET);
				break;
			}
			if (delivery_client_input(&cn->c, sh->scratch, (size_t)n) < 0)
				break;
		}
	}
	if (cn->idle && delivery_client_next(&cn->c) != DELIVERY_CLIENT_EV_READY)
		cn->idle = false;
	if (cn->idle) {
		conn_recv(c);
		return;
	}
	dconn_pump(cn);
}

static void dconn_on_input_end(struct conn *c, int err)
{
	struct dconn *cn = dconn_of(c);

	delivery_client_abort(&cn->c, err == 0 ? -ECONNRESET : err);
	dconn_pump(cn);
}

static void dconn_on_sent(struct conn *c, int err)
{
	struct dconn *cn = dconn_of(c);

	if (err < 0) {
		delivery_client_abort(&cn->c, err);
		dconn_pump(cn);
		return;
	}
	dconn_flush(cn);
	if (!cn->idle && !cn->conn.closing)
		dconn_pump(cn);
}

static void dconn_on_connected(struct conn *c, int err)
{
	struct dconn *cn = dconn_of(c);

	conn_deadline_cancel(c);
	if (err < 0) {
		dconn_fail_early(cn, err, "connect");
		return;
	}
	if (dconn_init_engine(cn) < 0) {
		dconn_fail_early(cn, -ENOMEM, "start");
		return;
	}
	dconn_pump(cn);
}

/* Freed by the turn's reaper (dconn_reap polls conn_busy): no quiet hook. The ENOBUFS retry is
 * the conn's own. */
static const struct conn_ops dconn_ops = {
	.input = dconn_on_input,
	.input_end = dconn_on_input_end,
	.sent = dconn_on_sent,
	.connected = dconn_on_connected,
	.deadline = dconn_on_deadline,
};

void delivery_conn_setup(void)
{
	conn_setup();
}

/* ---- shutdown ---- */

void delivery_conn_stop(struct delivery_shard *ds)
{
	struct ddest *d, *dn;

	for (d = ds->dests; d; d = dn) {
		struct djob *j;

		dn = d->next;
		while ((j = dest_pop(d)) != NULL)
			job_finish(j);   /* untouched recipients: the next start tries them */
	}
	for (d = ds->dests; d; d = dn) {
		struct dconn *cn, *cnext;

		dn = d->next;
		for (cn = d->conns; cn; cn = cnext) {
			cnext = cn->next;
			if (cn->idle) {
				cn->idle = false;
				conn_deadline_cancel(&cn->conn);
				delivery_client_quit(&cn->c);
				dconn_pump(cn);
			}
		}
	}
}

void delivery_conn_abort(struct delivery_shard *ds)
{
	struct ddest *d, *dn;

	for (d = ds->dests; d; d = dn) {
		struct dconn *cn, *cnext;

		dn = d->next;
		for (cn = d->conns; cn; cn = cnext) {
			cnext = cn->next;
			if (cn->conn.closing)
				continue;
			if (cn->c_init) {
				delivery_client_abort(&cn->c, -ECANCELED);
				dconn_pump(cn);
			} else {
				dconn_fail_early(cn, -ECANCELED, "shutting down");
			}
		}
	}
}

void delivery_conn_free_all(struct delivery_shard *ds)
{
	dconn_reap(ds);
	if (ds->nconns)
		log_warn(0, "delivery: %u connections still busy at exit (left allocated)", ds->nconns);
	while (ds->dests && ds->nconns == 0) {
		struct ddest *d = ds->dests;
		struct djob *j;

		ds->dests = d->next;
		while ((j = dest_pop(d)) != NULL) {
			free(j->ridx);
			free(j->rc);
			free(j->hdr);
			free(j);
		}
		/* Connections are gone by now (idle waited for them). */
		free(d);
	}
}
