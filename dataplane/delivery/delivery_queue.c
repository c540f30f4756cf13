/*
 * delivery_queue.c - the per-shard queue manager: the messages of this shard not yet done, their
 * attempts (one job per recipient domain), the results journaled per recipient, retries on
 * delivery_retry's schedule, expiry, delay warnings and DSNs, the operator's commands, and the
 * consumer of the shard's spool (every durable message, live or recovered, enters here). See
 * delivery.h.
 *
 * Journal rules kept here (spool.h): RCPT_DONE is appended as soon as a recipient's 250 arrives;
 * a failed recipient's RCPT_FAILED is appended right after its DSN was committed (same group
 * commit batch, so one is never durable without the other); DONE comes last, after the DSN is
 * durable (DONE lets the spool delete the record at once). DEFER carries the next attempt in unix
 * seconds so a restart keeps the schedule.
 *
 * XXX: deferred messages are found by a scan of the deferred list every second; a timer heap
 * would scale better past ~100k deferred messages per shard.
 *
 * Shard thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/counter.h"
#include "base/clock.h"
#include "base/log.h"
#include "delivery/delivery_dsn.h"
#include "delivery/delivery_impl.h"
#include "policy/policy.h"
#include "shard/shard_event.h"
#include "spool/spool_event.h"
#include <stdarg.h>

#define DELIVERY_SCAN_MS 1000u

static struct dmsg *msg_find(struct delivery_shard *ds, spool_qid qid);
static void msg_attempt(struct delivery_shard *ds, struct dmsg *m);

uint64_t delivery_rand(struct delivery_shard *ds)
{
	/* xorshift64*: spreads retries and shuffles MX; nothing here needs a secret. */
	uint64_t x = ds->rnd;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	ds->rnd = x;
	return x * UINT64_C(2685821657736338717);
}

/* ---- lists ---- */

static void dl_init(struct dlink *h) { h->next = h->prev = h; }
static bool dl_empty(const struct dlink *h) { return h->next == h; }

static void dl_del(struct dlink *l)
{
	if (l->next == NULL)
		return;
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->next = l->prev = NULL;
}

static void dl_add_tail(struct dlink *h, struct dlink *l)
{
	l->next = h;
	l->prev = h->prev;
	h->prev->next = l;
	h->prev = l;
}

static void msg_set_state(struct delivery_shard *ds, struct dmsg *m, enum dmsg_state st)
{
	dl_del(&m->link);
	m->state = (uint8_t)st;
	dl_add_tail(&ds->list[st], &m->link);
}

/* ---- recipients ---- */

struct slice delivery_addr_domain(const char *addr)
{
	const char *at = strrchr(addr, '@');

	if (at == NULL)
		return (struct slice){ "", 0 };
	return (struct slice){ at + 1, strlen(at + 1) };
}

/* ---- messages ---- */

static void msg_hash_add(struct delivery_shard *ds, struct dmsg *m)
{
	uint32_t h = (uint32_t)(m->qid ^ (m->qid >> 29)) % DELIVERY_HASH;

	m->hnext = ds->hash[h];
	ds->hash[h] = m;
	ds->nmsgs++;
}

static void msg_hash_del(struct delivery_shard *ds, struct dmsg *m)
{
	uint32_t h = (uint32_t)(m->qid ^ (m->qid >> 29)) % DELIVERY_HASH;

	for (struct dmsg **pp = &ds->hash[h]; *pp; pp = &(*pp)->hnext)
		if (*pp == m) {
			*pp = m->hnext;
			ds->nmsgs--;
			return;
		}
}

static struct dmsg *msg_find(struct delivery_shard *ds, spool_qid qid)
{
	struct dmsg *m = ds->hash[(uint32_t)(qid ^ (qid >> 29)) % DELIVERY_HASH];

	while (m && m->qid != qid)
		m = m->hnext;
	return m;
}

static char *dup_slice(struct slice s)
{
	char *p = malloc(s.len + 1);

	if (p) {
		if (s.len)
			memcpy(p, s.p, s.len);   /* an empty slice may have p NULL (a DSN's rules) */
		p[s.len] = '\0';
	}
	return p;
}

static void msg_free(struct delivery_shard *ds, struct dmsg *m)
{
	if (m->jobs || m->body_refs)
		panic("delivery: freeing message with %u jobs, %u body refs", m->jobs, m->body_refs);
	msg_hash_del(ds, m);
	dl_del(&m->link);
	for (uint32_t i = 0; m->rcpt && i < m->nrcpt; i++) {
		free(m->rcpt[i].addr);
		free(m->rcpt[i].diag);
		free(m->rcpt[i].mta);
	}
	free(m->rcpt);
	free(m->from);
	free(m->rules);
	spool_queue_msg_free(&m->rec);
	free(m);
}

/* A message from its envelope; rstate (may be NULL) gives recipients already settled. */
static struct dmsg *msg_new(struct delivery_shard *ds, spool_qid qid,
			    const struct spool_envelope *env, uint64_t size, const uint8_t *rstate,
			    uint32_t nrstate)
{
	struct dmsg *m = calloc(1, sizeof(*m));
	bool oom = m == NULL;

	if (oom)
		return NULL;
	m->qid = qid;
	m->action = env->action;
	m->score_milli = env->score_milli;
	m->body_8bit = env->body_type != 0;
	m->smtputf8 = env->smtputf8;
	m->arrival_ns = env->received_ns ? env->received_ns : clock_wall_ns();
	m->size = size;
	m->nrcpt = env->nrcpt;
	oom |= !(m->from = dup_slice(env->mail_from));
	oom |= !(m->rules = dup_slice(env->rules_hit));
	oom |= !(m->rcpt = calloc(env->nrcpt ? env->nrcpt : 1, sizeof(*m->rcpt)));
	for (uint32_t i = 0; !oom && i < env->nrcpt; i++) {
		oom |= !(m->rcpt[i].addr = dup_slice(env->rcpts[i]));
		if (rstate && i < nrstate)
			m->rcpt[i].state = rstate[i];
	}
	if (oom) {
		for (uint32_t i = 0; m->rcpt && i < m->nrcpt; i++)
			free(m->rcpt[i].addr);
		free(m->rcpt);
		free(m->from);
		free(m->rules);
		free(m);
		return NULL;
	}
	msg_hash_add(ds, m);
	return m;
}

static bool msg_is_spam(const struct dmsg *m)
{
	return m->action == POLICY_TAG || m->action == POLICY_QUARANTINE;
}

static unsigned msg_queued(const struct dmsg *m)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < m->nrcpt; i++)
		n += m->rcpt[i].state == SPOOL_RCPT_QUEUED;
	return n;
}

int delivery_msg_body_get(struct delivery_shard *ds, struct dmsg *m)
{
	if (m->body_refs == 0 && m->rec.payload == NULL) {
		int r = spool_queue_read(ds->sh->spool, m->qid, &m->rec);

		if (r < 0)
			return r;
	}
	m->body_refs++;
	return 0;
}

void delivery_msg_body_put(struct dmsg *m)
{
	if (m->body_refs == 0)
		panic("delivery: body_put without get");
	if (--m->body_refs == 0)
		spool_queue_msg_free(&m->rec);
}

/*
 * A message's event (spool_event.h): its log line and typed fields, into the spool's event log
 * with the journal records appended just before it (same batch). addr, relay, reply may be NULL;
 * dur_ms < 0: none.
 */
static void devent(struct delivery_shard *ds, unsigned type, spool_qid qid, uint32_t rcpt,
		   const char *addr, const char *relay, const char *reply, int64_t dur_ms,
		   const char *fmt, ...) __attribute__((format(printf, 9, 10)));

static void devent(struct delivery_shard *ds, unsigned type, spool_qid qid, uint32_t rcpt,
		   const char *addr, const char *relay, const char *reply, int64_t dur_ms,
		   const char *fmt, ...)
{
	uint8_t tlv[4096];
	char text[SHARD_EVENT_MAX];
	size_t len = 0;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(text))
		n = sizeof(text) - 1;
	len += spool_event_tlv(tlv + len, SPOOL_ETLV_TEXT, text, (size_t)n);
	if (addr)
		len += spool_event_tlv(tlv + len, SPOOL_ETLV_RCPT, addr, strnlen(addr, 512));
	if (rcpt != UINT32_MAX) {
		uint8_t v[4] = { (uint8_t)rcpt, (uint8_t)(rcpt >> 8), (uint8_t)(rcpt >> 16),
				 (uint8_t)(rcpt >> 24) };

		len += spool_event_tlv(tlv + len, SPOOL_ETLV_RCPT_IDX, v, 4);
	}
	if (relay)
		len += spool_event_tlv(tlv + len, SPOOL_ETLV_RELAY, relay, strnlen(relay, 300));
	if (reply)
		len += spool_event_tlv(tlv + len, SPOOL_ETLV_REPLY, reply, strnlen(reply, 1000));
	if (dur_ms >= 0) {
		uint32_t d = dur_ms > UINT32_MAX ? UINT32_MAX : (uint32_t)dur_ms;
		uint8_t v[4] = { (uint8_t)d, (uint8_t)(d >> 8), (uint8_t)(d >> 16), (uint8_t)(d >> 24) };

		len += spool_event_tlv(tlv + len, SPOOL_ETLV_DURATION_MS, v, 4);
	}
	if (spool_event_add(ds->sh->spool, type, qid, rcpt, tlv, len) < 0)
		log_warn(-ENOMEM, "delivery: an event of a message was lost");
}

static void journal(struct delivery_shard *ds, struct dmsg *m, enum spool_event ev, uint64_t arg)
{
	int r = spool_journal_append(ds->sh->spool, m->qid, ev, arg);
	char q[SPOOL_QID_STRLEN + 1];

	/* -ENOENT: the spool finished with it already (an operator delete raced us). */
	if (r < 0 && r != -ENOENT)
		log_warn(r, "delivery: journal event %d for a message", (int)ev);
	if (r < 0 || (ev != SPOOL_EV_HOLD && ev != SPOOL_EV_RELEASE && ev != SPOOL_EV_DELETE))
		return;
	spool_qid_format(m->qid, q);
	devent(ds, ev == SPOOL_EV_HOLD ? SPOOL_EVT_QUARANTINED : ev == SPOOL_EV_RELEASE ?
	       SPOOL_EVT_RELEASED : SPOOL_EVT_DELETED, m->qid, UINT32_MAX, NULL, NULL, NULL, -1,
	       "%s: status=%s", q, ev == SPOOL_EV_HOLD ? "held" : ev == SPOOL_EV_RELEASE ?
	       "released" : "deleted");
}

/* ---- DSNs ---- */

/* A DSN is a message of its own: its accepted event says whose notice it is, so a log that
 * follows it by queue id sees where it came from before its delivery events. */
static int dsn_accepted_event(struct spool_msg *sm, const char *orig_qid,
			      enum delivery_dsn_action action,
			      struct slice to, size_t size)
{
	char text[SPOOL_QID_STRLEN + 600];
	uint8_t tlv[sizeof(text) + 32];
	size_t len = 0;
	int n;

	n = snprintf(text, sizeof(text), "client=localhost[127.0.0.1] dsn=%s orig=%s from=<> "
		     "nrcpt=1 size=%zu to=<%.*s>", action == DELIVERY_DSN_DELAYED ? "delayed" :
		     "failed", orig_qid, size, (int)(to.len > 512 ? 512 : to.len), to.p);
	len += spool_event_tlv(tlv + len, SPOOL_ETLV_TEXT, text, (size_t)n);
	len += spool_event_tlv(tlv + len, SPOOL_ETLV_SID, "dsn", 3);
	return spool_msg_event(sm, tlv, len);
}

struct dsn_commit {
	struct delivery_shard *ds;
	spool_qid              orig;     /* its DONE waits for this commit (0: nothing waits) */
	char                   to[];
};

static void dsn_committed(void *arg, spool_qid qid, int err)
{
	struct dsn_commit *dc = arg;
	struct delivery_shard *ds = dc->ds;
	struct dmsg *orig = dc->orig ? msg_find(ds, dc->orig) : NULL;

	ds->dsn_inflight--;
	if (err == 0) {
		ctr_inc(&ds->ctr.dsn);   /* the spool handed it to delivery_take already */
	} else {
		/* XXX: the DSN is lost with the disk error; the original still ends. */
		log_warn(err, "delivery: a DSN to <%s> could not be spooled", dc->to);
	}
	if (orig && orig->dsn_pending && --orig->dsn_pending == 0 && orig->done_after_dsn &&
	    orig->jobs == 0) {
		journal(ds, orig, SPOOL_EV_DONE, 0);
		msg_free(ds, orig);
	}
	free(dc);
}

/* Composes and spools a DSN for the recipients of m marked want[i]. Returns true when a commit
 * is in flight (the caller's DONE must wait for it). */
static bool dsn_send(struct delivery_shard *ds, struct dmsg *m, enum delivery_dsn_action action,
		     const bool *want)
{
	const struct node_config *c = ds->sh->conf;
	struct delivery_dsn_rcpt *dr;
	struct delivery_dsn_req q = { 0 };
	struct delivery_dsn_out out = { 0 };
	struct spool_msg *sm = NULL;
	struct dsn_commit *dc;
	struct slice to, from = { m->from, strlen(m->from) };
	char qid[SPOOL_QID_STRLEN + 1];
	uint64_t now = clock_wall_ns();
	unsigned n = 0;
	bool loaded = false;
	int r;

	if (from.len == 0 || msg_is_spam(m))
		return false;   /* RFC 5321 6.1; backscatter (delivery_dsn refuses them too) */
	if (!(dr = calloc(m->nrcpt ? m->nrcpt : 1, sizeof(*dr))))
		return false;
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		const struct drcpt *rc = &m->rcpt[i];

		if (!want[i])
			continue;
		dr[n] = (struct delivery_dsn_rcpt){
			.addr = { rc->addr, strlen(rc->addr) },
			.action = action,
			.status = rc->enh[0] ? rc->enh : NULL,
			.remote_mta = { rc->mta ? rc->mta : "", rc->mta ? strlen(rc->mta) : 0 },
			.diag = { rc->diag ? rc->diag : "", rc->diag ? strlen(rc->diag) : 0 },
			.last_attempt_ns = now,
		};
		if (action == DELIVERY_DSN_DELAYED) {
			const struct delivery_tuning *t = &c->delivery;

			dr[n].retry_until_ns = m->arrival_ns + t->expire_ms * 1000000u;
		}
		n++;
	}
	spool_qid_format(m->qid, qid);
	if (n == 0 || delivery_msg_body_get(ds, m) < 0) {
		free(dr);
		return false;
	}
	loaded = true;
	q = (struct delivery_dsn_req){
		.reporting_mta = c->hostname,
		.sender = from,
		.spam = msg_is_spam(m),
		.queue_id = { qid, strlen(qid) },
		.arrival_ns = m->arrival_ns,
		.now_ns = now,
		.orig = m->rec.body,
		.orig_len = m->rec.body_len,
		.nrcpt = n,
		.rcpt = dr,
		.rnd = delivery_rand(ds),
	};
	r = delivery_dsn_compose(&q, &out);
	free(dr);
	if (loaded)
		delivery_msg_body_put(m);
	if (r < 0) {
		if (r != -EPERM)
			log_warn(r, "delivery: %s: cannot compose a DSN", qid);
		return false;
	}
	dc = malloc(sizeof(*dc) + from.len + 1);
	if (dc == NULL || spool_msg_begin(ds->sh->spool, &sm) < 0 ||
	    spool_msg_write(sm, out.data, out.len) < 0) {
		log_warn(-ENOMEM, "delivery: %s: cannot spool a DSN", qid);
		if (sm)
			spool_msg_abort(&sm);
		free(dc);
		delivery_dsn_out_free(&out);
		return false;
	}
	if (dsn_accepted_event(sm, qid, action, from, out.len) < 0) {
		log_warn(-ENOMEM, "delivery: %s: cannot spool a DSN", qid);
		spool_msg_abort(&sm);
		free(dc);
		delivery_dsn_out_free(&out);
		return false;
	}
	dc->ds = ds;
	dc->orig = m->qid;
	memcpy(dc->to, from.p, from.len);
	dc->to[from.len] = '\0';
	to = (struct slice){ dc->to, from.len };
	{
		struct spool_envelope env = {
			.body_type = out.eightbit ? 1 : 0,
			.mail_from = { "", 0 },
			.nrcpt = 1,
			.rcpts = &to,
			.helo = { c->hostname, strlen(c->hostname) },
			.client_addr = { "127.0.0.1", 9 },
			.session_id = { "dsn", 3 },
			.received_ns = now,
		};

		r = spool_msg_commit(sm, &env, dsn_committed, dc);
	}
	delivery_dsn_out_free(&out);
	if (r < 0) {
		log_warn(r, "delivery: %s: cannot spool a DSN", qid);
		free(dc);
		return false;
	}
	ds->dsn_inflight++;
	m->dsn_pending++;
	devent(ds, SPOOL_EVT_DSN, m->qid, UINT32_MAX, dc->to, NULL, NULL, -1,
	       "%s: dsn=%s to=<%s> nrcpt=%u", qid,
	       action == DELIVERY_DSN_DELAYED ? "delayed" : "failed", dc->to, n);
	return true;
}

/* ---- the end of a message and of an attempt ---- */

/* Every recipient is settled (or the operator deleted it): DONE, once DSNs are durable. */
static void msg_finish(struct delivery_shard *ds, struct dmsg *m, bool deleted)
{
	if (m->dsn_pending) {
		m->done_after_dsn = true;
		dl_del(&m->link);   /* in no list: dsn_committed ends it */
		return;
	}
	journal(ds, m, deleted ? SPOOL_EV_DELETE : SPOOL_EV_DONE, 0);
	msg_free(ds, m);
}

/* Journals RCPT_FAILED for the recipients that failed in this attempt, after their DSN. */
static void msg_flush_failures(struct delivery_shard *ds, struct dmsg *m)
{
	bool *want = calloc(m->nrcpt ? m->nrcpt : 1, sizeof(*want));
	bool any = false;

	for (uint32_t i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].dsn_due) {
			any = true;
			if (want)
				want[i] = true;
		}
	if (!any) {
		free(want);
		return;
	}
	if (want)
		dsn_send(ds, m, DELIVERY_DSN_FAILED, want);
	free(want);
	for (uint32_t i = 0; i < m->nrcpt; i++)
		if (m->rcpt[i].dsn_due) {
			m->rcpt[i].dsn_due = false;
			journal(ds, m, SPOOL_EV_RCPT_FAILED, i);
		}
}

static void rcpt_fail_local(struct dmsg *m, uint32_t i, const char *enh, const char *why)
{
	struct drcpt *rc = &m->rcpt[i];

	rc->state = SPOOL_RCPT_FAILED;
	rc->dsn_due = true;
	snprintf(rc->enh, sizeof(rc->enh), "%s", enh);
	free(rc->diag);
	rc->diag = strdup(why);
}

/* Applies an operator's hold / delete / bounce to a message that is not running. Returns true if
 * the message is gone. */
static bool msg_apply_op(struct delivery_shard *ds, struct dmsg *m, enum delivery_ctl_op op)
{
	switch (op) {
	case DELIVERY_CTL_HOLD:
		if (m->state != DMSG_HELD) {
			journal(ds, m, SPOOL_EV_HOLD, 0);
			msg_set_state(ds, m, DMSG_HELD);
		}
		return false;
	case DELIVERY_CTL_DELETE:
		msg_finish(ds, m, true);
		return true;
	case DELIVERY_CTL_BOUNCE:
		for (uint32_t i = 0; i < m->nrcpt; i++)
			if (m->rcpt[i].state == SPOOL_RCPT_QUEUED)
				rcpt_fail_local(m, i, "5.0.0", "bounced by the operator");
		msg_flush_failures(ds, m);
		msg_finish(ds, m, false);
		return true;
	default:
		return false;
	}
}

static void msg_attempt_end(struct delivery_shard *ds, struct dmsg *m)
{
	const struct delivery_tuning *t = &ds->sh->conf->delivery;
	struct delivery_retry_conf rc = {
		.first_ms = t->retry_first_ms, .max_ms = t->retry_max_ms, .expire_ms = t->expire_ms,
		.delay_warning_ms = t->delay_warning_ms, .flat = t->retry_flat,
		.jitter_pct = t->retry_jitter_pct,
	};
	struct delivery_retry_plan plan;
	uint64_t now_wall = clock_wall_ns() / 1000000u;
	uint8_t op = m->pending_op;

	m->pending_op = 0;
	if (op == DELIVERY_CTL_DELETE + 1 || op == DELIVERY_CTL_BOUNCE + 1) {
		msg_flush_failures(ds, m);
		msg_apply_op(ds, m, (enum delivery_ctl_op)(op - 1));
		return;
	}
	msg_flush_failures(ds, m);
	if (msg_queued(m) == 0) {
		msg_finish(ds, m, false);
		return;
	}
	m->attempts++;
	delivery_retry_plan(&rc, m->arrival_ns / 1000000u, now_wall, m->attempts, m->warned,
			    (uint32_t)delivery_rand(ds), &plan);
	if (plan.verdict == DELIVERY_RETRY_EXPIRED) {
		for (uint32_t i = 0; i < m->nrcpt; i++)
			if (m->rcpt[i].state == SPOOL_RCPT_QUEUED) {
				struct drcpt *r = &m->rcpt[i];
				char why[300], q[SPOOL_QID_STRLEN + 1];

				snprintf(why, sizeof(why), "delivery time expired%s%.256s",
					 r->diag ? ": " : "", r->diag ? r->diag : "");
				rcpt_fail_local(m, i, "4.4.7", why);
				ctr_inc(&ds->ctr.rcpt_expired);
				spool_qid_format(m->qid, q);
				devent(ds, SPOOL_EVT_EXPIRED, m->qid, i, r->addr, "none", why, -1,
				       "%s: to=<%s> relay=none status=expired (%s)", q, r->addr,
				       why);
			}
		msg_flush_failures(ds, m);
		msg_finish(ds, m, false);
		return;
	}
	if (plan.warn_now && !m->warned) {
		bool *want = calloc(m->nrcpt, sizeof(*want));

		m->warned = true;
		for (uint32_t i = 0; want && i < m->nrcpt; i++)
			want[i] = m->rcpt[i].state == SPOOL_RCPT_QUEUED;
		if (want)
			dsn_send(ds, m, DELIVERY_DSN_DELAYED, want);
		free(want);
	}
	{
		/* With the attempt count and the last reply, for sluice-queue list (as mailq). */
		const char *why = NULL;
		int r;

		for (uint32_t i = 0; i < m->nrcpt && !why; i++)
			if (m->rcpt[i].state == SPOOL_RCPT_QUEUED)
				why = m->rcpt[i].diag;
		r = spool_journal_defer(ds->sh->spool, m->qid, plan.next_ms / 1000u, m->attempts, why);
		if (r < 0 && r != -ENOENT)
			log_warn(r, "delivery: journal event %d for a message", (int)SPOOL_EV_DEFER);
	}
	ctr_inc(&ds->ctr.msg_deferred);
	m->next_ms = ds->sh->now_ms + (plan.next_ms > now_wall ? plan.next_ms - now_wall : 0);
	msg_set_state(ds, m, op == DELIVERY_CTL_HOLD + 1 ? DMSG_HELD : DMSG_DEFERRED);
	if (op == DELIVERY_CTL_HOLD + 1)
		journal(ds, m, SPOOL_EV_HOLD, 0);
}

void delivery_job_done(struct djob *j)
{
	struct delivery_shard *ds = j->ds;
	struct dmsg *m = j->m;
	char qid[SPOOL_QID_STRLEN + 1];
	uint64_t dur = ds->sh->now_ms - j->started_ms;

	if (j->n > 0)   /* an attempt was made (not the empty job of a message with none due) */
		histo_observe(&ds->ctr.attempt_time, dur * 1000000u);
	spool_qid_format(m->qid, qid);
	for (unsigned k = 0; k < j->n; k++) {
		struct drcpt *r = &m->rcpt[j->ridx[k]];
		const struct delivery_rcpt *res = &j->rc[k];

		r->busy = false;
		if (res->status == DELIVERY_RCPT_PENDING)
			continue;   /* never started (shutting down) */
		free(r->diag);
		r->diag = res->diag[0] ? strdup(res->diag) : NULL;
		snprintf(r->enh, sizeof(r->enh), "%s", res->enh);
		free(r->mta);
		r->mta = j->mta[0] ? strdup(j->mta) : NULL;
		if (res->status == DELIVERY_RCPT_OK) {
			r->state = SPOOL_RCPT_DONE;
			journal(ds, m, SPOOL_EV_RCPT_DONE, j->ridx[k]);
			ctr_inc(&ds->ctr.rcpt_sent);
			devent(ds, SPOOL_EVT_DELIVERED, m->qid, j->ridx[k], r->addr,
			       j->mta[0] ? j->mta : "none", res->diag, (int64_t)dur,
			       "%s: to=<%s> relay=%s status=sent (%s)", qid, r->addr,
			       j->mta[0] ? j->mta : "none", res->diag);
		} else if (res->status == DELIVERY_RCPT_FAIL) {
			r->state = SPOOL_RCPT_FAILED;
			r->dsn_due = true;
			ctr_inc(&ds->ctr.rcpt_bounced);
			devent(ds, SPOOL_EVT_BOUNCED, m->qid, j->ridx[k], r->addr,
			       j->mta[0] ? j->mta : "none", res->diag, (int64_t)dur,
			       "%s: to=<%s> relay=%s status=bounced (%s)", qid, r->addr,
			       j->mta[0] ? j->mta : "none", res->diag);
		} else {
			ctr_inc(&ds->ctr.rcpt_deferred);
			devent(ds, SPOOL_EVT_DEFERRED, m->qid, j->ridx[k], r->addr,
			       j->mta[0] ? j->mta : "none", res->diag, (int64_t)dur,
			       "%s: to=<%s> relay=%s status=deferred (%s)", qid, r->addr,
			       j->mta[0] ? j->mta : "none", res->diag);
		}
	}
	free(j->ridx);
	free(j->rc);
	free(j->hdr);
	free(j);
	if (--m->jobs == 0)
		msg_attempt_end(ds, m);
}

/* ---- attempts ---- */

static bool same_domain(const char *a, const char *b)
{
	struct slice x = delivery_addr_domain(a), y = delivery_addr_domain(b);

	return x.len == y.len && strncasecmp(x.p, y.p, x.len) == 0;
}

static struct djob *job_new(struct delivery_shard *ds, struct dmsg *m, uint32_t first)
{
	const struct node_config *c = ds->sh->conf;
	struct slice dom = delivery_addr_domain(m->rcpt[first].addr);
	const struct domain_conf *dc = node_config_domain(c, dom);
	struct djob *j = calloc(1, sizeof(*j));
	unsigned n = 0;

	if (j == NULL)
		return NULL;
	j->started_ms = ds->sh->now_ms;
	for (uint32_t i = first; i < m->nrcpt; i++)
		n += m->rcpt[i].state == SPOOL_RCPT_QUEUED && !m->rcpt[i].busy &&
		     same_domain(m->rcpt[i].addr, m->rcpt[first].addr);
	j->ridx = calloc(n, sizeof(*j->ridx));
	j->rc = calloc(n, sizeof(*j->rc));
	if (!j->ridx || !j->rc) {
		free(j->ridx);
		free(j->rc);
		free(j);
		return NULL;
	}
	j->ds = ds;
	j->m = m;
	snprintf(j->domain, sizeof(j->domain), "%.*s", (int)dom.len, dom.p);
	/* A domain we do not serve (a DSN's recipient) goes by MX with the defaults. */
	j->route_mx = dc == NULL || dc->route_mx;
	j->tls = dc ? dc->tls : DOMAIN_TLS_MAY;
	j->tls_verify = dc ? dc->tls_verify : false;
	j->long_lines = (uint8_t)delivery_long_lines_for(&c->delivery, dc);
	for (uint32_t i = first; i < m->nrcpt; i++)
		if (m->rcpt[i].state == SPOOL_RCPT_QUEUED && !m->rcpt[i].busy &&
		    same_domain(m->rcpt[i].addr, m->rcpt[first].addr)) {
			m->rcpt[i].busy = true;
			j->ridx[j->n] = i;
			j->rc[j->n].addr = (struct slice){ m->rcpt[i].addr, strlen(m->rcpt[i].addr) };
			j->n++;
		}
	if (!j->route_mx && dc != NULL) {
		if (delivery_route_fixed(dc, ds->rr++, &j->route) == 0)
			j->routed = true;
	}
	if (m->action == POLICY_TAG) {
		char buf[700], sc[32];
		int len;

		shard_event_score(sc, sizeof(sc), m->score_milli);   /* as every log line writes it */
		len = snprintf(buf, sizeof(buf), "X-Spam-Flag: YES\r\nX-Spam-Status: Yes, "
			       "score=%s tests=%.500s\r\n", sc, m->rules[0] ? m->rules : "none");

		if (len > 0 && (size_t)len < sizeof(buf) && (j->hdr = malloc((size_t)len))) {
			memcpy(j->hdr, buf, (size_t)len);
			j->hdr_len = (size_t)len;
		}
	}
	j->cm = (struct delivery_client_msg){
		.mail_from = { m->from, strlen(m->from) },
		.size = m->size + j->hdr_len,
		.body_8bit = m->body_8bit,
		.smtputf8 = m->smtputf8,
		.nrcpt = j->n,
		.rcpt = j->rc,
	};
	return j;
}

static void msg_attempt(struct delivery_shard *ds, struct dmsg *m)
{
	struct djob *jobs = NULL, **tail = &jobs;

	if (msg_queued(m) == 0) {
		/* Settled before a crash, but not yet DONE. */
		msg_finish(ds, m, false);
		return;
	}
	msg_set_state(ds, m, DMSG_RUNNING);
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		struct djob *j;

		if (m->rcpt[i].state != SPOOL_RCPT_QUEUED || m->rcpt[i].busy)
			continue;
		j = job_new(ds, m, i);
		if (j == NULL)
			break;   /* out of memory: the rest waits for the next attempt */
		m->jobs++;
		*tail = j;
		tail = &j->next;
	}
	if (m->jobs == 0) {
		/* Nothing could start (out of memory): try again later. */
		m->jobs = 1;
		{
			struct djob *none = calloc(1, sizeof(*none));

			if (none == NULL) {
				m->jobs = 0;
				m->next_ms = ds->sh->now_ms + 1000;
				msg_set_state(ds, m, DMSG_DEFERRED);
				return;
			}
			none->ds = ds;
			none->m = m;
			delivery_job_done(none);
		}
		return;
	}
	/* Started after the whole list is built: a job may finish at once (no route). */
	while (jobs) {
		struct djob *j = jobs;

		jobs = j->next;
		j->next = NULL;
		delivery_conn_job_start(ds, j);
	}
}

/* ---- the shard's side ---- */

/* A recovered message goes where its journal left it: held, deferred, or ready. */
static void msg_place_recovered(struct delivery_shard *ds, struct dmsg *m,
				const struct spool_queue_ent *e)
{
	uint64_t now_s = clock_wall_ns() / 1000000000u;

	/* The attempt count is journaled with each deferral, so the backoff goes on where it was,
	 * also for a message whose retry came due while the node was down. XXX: "warned" is not
	 * journaled: a delay warning may go twice. */
	m->attempts = e->attempts;
	ds->load.loaded++;
	if (e->held) {
		ds->load.held++;
		msg_set_state(ds, m, DMSG_HELD);
	} else if (e->defer_until > now_s) {
		m->attempts = e->attempts ? e->attempts : 1;
		m->next_ms = ds->sh->now_ms + (e->defer_until - now_s) * 1000u;
		msg_set_state(ds, m, DMSG_DEFERRED);
	} else {
		msg_set_state(ds, m, DMSG_READY);
	}
}

/* The spool's consumer (spool_set_consumer): a message durable in this shard's spool, just
 * committed (before its 250, or a DSN of ours) or found at start. env's strings are copied. */
static void delivery_take(void *arg, const struct spool_queue_ent *e,
			  const struct spool_envelope *env, uint64_t body_len)
{
	struct delivery_shard *ds = arg;
	struct dmsg *m = msg_new(ds, e->qid, env, body_len, e->rstate, e->nrstate);

	if (m == NULL) {
		/* It stays in the spool: the next start delivers it. */
		log_warn(-ENOMEM, "delivery: cannot queue a message; it waits for a restart");
		ds->load.bad += e->recovered;
		return;
	}
	if (e->recovered) {
		msg_place_recovered(ds, m, e);
		return;
	}
	if (env->action == POLICY_QUARANTINE) {
		journal(ds, m, SPOOL_EV_HOLD, 0);
		msg_set_state(ds, m, DMSG_HELD);
		return;
	}
	msg_set_state(ds, m, DMSG_READY);
}

/* Deferred messages whose time came go back to the ready list. */
static void retry_scan(struct timer *t)
{
	struct delivery_shard *ds = (struct delivery_shard *)((char *)t -
							      offsetof(struct delivery_shard, retry_timer));
	struct dlink *h = &ds->list[DMSG_DEFERRED], *l, *next;

	for (l = h->next; l != h; l = next) {
		struct dmsg *m = (struct dmsg *)l;

		next = l->next;
		if (m->next_ms <= ds->sh->now_ms)
			msg_set_state(ds, m, DMSG_READY);
	}
	if (!ds->stopping)
		timer_arm(&ds->sh->timers, &ds->retry_timer, DELIVERY_SCAN_MS);
}

void delivery_shard_turn(struct shard *sh)
{
	struct delivery_shard *ds = delivery_of(sh);
	struct dlink *h;
	unsigned budget = 512;   /* bounds one turn's work; the rest waits for the next */

	if (ds == NULL)
		return;
	delivery_conn_turn(ds);
	/* [delivery] hold: messages wait, ready, until a reload lifts it (Postfix's hold queue for
	 * a whole node: maintenance, or a benchmark of acceptance alone). */
	if (ds->stopping || sh->conf->delivery.hold)
		return;
	h = &ds->list[DMSG_READY];
	while (!dl_empty(h) && budget--)
		msg_attempt(ds, (struct dmsg *)h->next);
}

/* ---- start-up: the spool's not-done messages ---- */

/* Registers delivery_take on the shard's spool, which hands it the recovered messages first. */
static void load_queue(struct delivery_shard *ds)
{
	struct shard *sh = ds->sh;
	int unreadable = spool_set_consumer(sh->spool, delivery_take, ds);

	if (unreadable > 0)
		ds->load.bad += (unsigned)unreadable;
	if (ds->load.loaded || ds->load.bad)
		log_info("shard %u: delivery: %u queued messages (%u held) from the spool%s", sh->id,
			 ds->load.loaded, ds->load.held, ds->load.bad ? ", some unreadable" : "");
}

int delivery_shard_start(struct shard *sh)
{
	const struct node_config *c = sh->conf;
	struct delivery_shard *ds = calloc(1, sizeof(*ds));
	struct delivery_dns_conf dc = { .servers = c->delivery.dns_server[0] ?
						   c->delivery.dns_server : NULL };
	uint64_t down = c->delivery.retry_first_ms < 60000 ? c->delivery.retry_first_ms : 60000;
	int r;

	if (ds == NULL)
		return -ENOMEM;
	ds->sh = sh;
	ds->rnd = (clock_mono_ns() ^ ((uint64_t)sh->id << 32) ^ (uint64_t)(uintptr_t)ds) | 1;
	for (int i = 0; i < DMSG_NSTATES; i++)
		dl_init(&ds->list[i]);
	/* A destination that failed is skipped until the next retry would come anyway. */
	delivery_route_health_init(&ds->health, 1, down ? down : 1000,
				   c->delivery.retry_max_ms < 600000 ? c->delivery.retry_max_ms
								     : 600000);
	r = delivery_dns_new(&ds->dns, &sh->ring, &sh->timers, &dc);
	if (r < 0) {
		/* Fixed routes still work; MX routes defer until a restart fixes it. */
		log_warn(r, "shard %u: delivery: no DNS resolver (MX routes will defer)", sh->id);
		ds->dns = NULL;
	}
	__atomic_store_n(&sh->delivery, ds, __ATOMIC_RELEASE);   /* the agent reads its counters */
	timer_init(&ds->retry_timer, retry_scan);
	timer_arm(&sh->timers, &ds->retry_timer, DELIVERY_SCAN_MS);
	load_queue(ds);
	return 0;
}

void delivery_shard_stop(struct shard *sh)
{
	struct delivery_shard *ds = delivery_of(sh);

	if (ds == NULL || ds->stopping)
		return;
	ds->stopping = true;
	timer_cancel(&sh->timers, &ds->retry_timer);
	delivery_conn_stop(ds);
	if (ds->dns)
		delivery_dns_shutdown(ds->dns);
}

bool delivery_shard_idle(struct shard *sh)
{
	struct delivery_shard *ds = delivery_of(sh);

	return ds == NULL || (ds->nconns == 0 && ds->dsn_inflight == 0 &&
			      (ds->dns == NULL || !delivery_dns_busy(ds->dns)));
}

void delivery_shard_abort(struct shard *sh)
{
	struct delivery_shard *ds = delivery_of(sh);

	if (ds != NULL) {
		ds->aborted = true;
		delivery_conn_abort(ds);
	}
}

void delivery_shard_finish(struct shard *sh)
{
	struct delivery_shard *ds = delivery_of(sh);

	if (ds == NULL)
		return;
	spool_set_consumer(sh->spool, NULL, NULL);   /* spool_close's last batches find no one */
	log_info("shard %u: delivery: %llu recipients delivered, %llu bounced, %llu deferrals, "
		 "%llu DSNs, %llu connections; %u messages left queued", sh->id,
		 (unsigned long long)ds->ctr.rcpt_sent, (unsigned long long)ds->ctr.rcpt_bounced,
		 (unsigned long long)ds->ctr.msg_deferred, (unsigned long long)ds->ctr.dsn,
		 (unsigned long long)ds->ctr.connections, ds->nmsgs);
	timer_cancel(&sh->timers, &ds->retry_timer);
	delivery_conn_free_all(ds);
	if (ds->dns) {
		if (delivery_dns_busy(ds->dns))
			log_warn(0, "shard %u: delivery: DNS still busy at exit", sh->id);
		else
			delivery_dns_free(&ds->dns);
	}
	for (uint32_t h = 0; h < DELIVERY_HASH; h++)
		while (ds->hash[h]) {
			struct dmsg *m = ds->hash[h];

			m->jobs = 0;
			if (m->body_refs) {
				m->body_refs = 1;
				delivery_msg_body_put(m);
			}
			msg_free(ds, m);
		}
	free(ds);
	sh->delivery = NULL;
}

/* ---- operator commands ---- */

static const char *const ctl_names[DELIVERY_CTL_COUNT] = {
	"flush", "hold", "release", "delete", "bounce",
};

int delivery_ctl_op_parse(const char *name)
{
	for (int i = 0; i < DELIVERY_CTL_COUNT; i++)
		if (strcmp(name, ctl_names[i]) == 0)
			return i;
	return -1;
}

static bool ctl_match(const struct dmsg *m, const struct delivery_ctl_msg *c)
{
	if (c->qid)
		return m->qid == c->qid;
	if (c->domain[0] == '\0')
		return true;
	for (uint32_t i = 0; i < m->nrcpt; i++) {
		struct slice d = delivery_addr_domain(m->rcpt[i].addr);

		if (m->rcpt[i].state == SPOOL_RCPT_QUEUED && d.len == strlen(c->domain) &&
		    strncasecmp(d.p, c->domain, d.len) == 0)
			return true;
	}
	return false;
}

static void ctl_apply(struct shard *sh, struct shard_msg *base)
{
	struct delivery_ctl_msg *c = (struct delivery_ctl_msg *)base;
	struct delivery_shard *ds = delivery_of(sh);
	struct dmsg **v = NULL;
	size_t n = 0;
	uint64_t count = 0;

	if (ds != NULL && c->op == DELIVERY_CTL_FLUSH) {
		/* "Retry now" means now: forget which destinations looked down. */
		for (unsigned i = 0; i < DELIVERY_ROUTE_HEALTH_SLOTS; i++)
			ds->health.slot[i] = (struct delivery_route_health_slot){ 0 };
	}
	if (ds != NULL && ds->nmsgs && (v = malloc(ds->nmsgs * sizeof(*v)))) {
		for (int st = 0; st < DMSG_NSTATES; st++)
			for (struct dlink *l = ds->list[st].next; l != &ds->list[st]; l = l->next)
				if (n < ds->nmsgs && ctl_match((struct dmsg *)l, c))
					v[n++] = (struct dmsg *)l;
	}
	for (size_t i = 0; i < n; i++) {
		struct dmsg *m = v[i];

		switch (c->op) {
		case DELIVERY_CTL_FLUSH:
			if (m->state == DMSG_DEFERRED) {
				msg_set_state(ds, m, DMSG_READY);
				count++;
			}
			break;
		case DELIVERY_CTL_RELEASE:
			if (m->state == DMSG_HELD) {
				journal(ds, m, SPOOL_EV_RELEASE, 0);
				msg_set_state(ds, m, DMSG_READY);
				count++;
			}
			break;
		case DELIVERY_CTL_HOLD:
			if (m->state == DMSG_HELD)
				break;
			/* fall through */
		case DELIVERY_CTL_DELETE:
		case DELIVERY_CTL_BOUNCE:
			count++;
			if (m->state == DMSG_RUNNING)
				m->pending_op = (uint8_t)(c->op + 1);   /* when the attempt ends */
			else
				msg_apply_op(ds, m, c->op);
			break;
		default:
			break;
		}
	}
	free(v);
	if (c->req) {
		atomic_fetch_add(&c->req->count, count);
		atomic_fetch_sub(&c->req->remaining, 1);
	}
	if (count)
		log_info("shard %u: operator %s: %llu messages", sh->id, ctl_names[c->op],
			 (unsigned long long)count);
	free(c);
}

struct delivery_ctl_msg *delivery_ctl_msg_new(enum delivery_ctl_op op, spool_qid qid,
					      const char *domain, struct delivery_ctl_req *req)
{
	struct delivery_ctl_msg *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	c->base.fn = ctl_apply;
	c->op = op;
	c->qid = qid;
	if (domain)
		snprintf(c->domain, sizeof(c->domain), "%s", domain);
	c->req = req;
	return c;
}

static void dns_cqe(struct shard *sh, const struct io_uring_cqe *cqe)
{
	struct delivery_shard *ds = delivery_of(sh);

	if (ds && ds->dns)
		delivery_dns_handle_cqe(ds->dns, cqe);
}

void delivery_setup(void)
{
	delivery_conn_setup();
	shard_set_handler(SHARD_OP_DNS, dns_cqe);
}
