/*
 * spool_queue.c - the delivery queue's view of one shard's spool: the hand-off of each durable
 * message to the consumer (the one place where what SMTP accepted enters delivery, live or
 * recovered), the messages not yet done (from the in-memory index, so a restart finds them after
 * recovery) and reading one record back by queue id.
 *
 * Shard thread only (the spool's owner). Reads are synchronous preads of a record this process
 * wrote (see spool.h: XXX a cold read blocks the shard).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "spool_impl.h"
#include "spool_record.h"

static void ent_fill(const struct spool_ient *ie, struct spool_queue_ent *e)
{
	e->qid = ie->qid;
	e->held = (ie->flags & SPOOL_IF_HELD) != 0;
	e->defer_until = ie->defer_until;
	e->nrcpt = ie->nrcpt;
	e->rstate = ie->rstate;
	e->nrstate = ie->rcap;
	e->attempts = ie->attempts;
	e->recovered = false;
}

int spool_queue_each(struct spool *sp, spool_queue_fn *fn, void *arg)
{
	for (uint32_t k = 0; k < sp->ix.cap; k++) {
		const struct spool_ient *ie = &sp->ix.tab[k];
		struct spool_queue_ent e;
		int rc;

		if (!ie->qid || (ie->flags & SPOOL_IF_DONE) || !ie->seg)
			continue;
		ent_fill(ie, &e);
		if ((rc = fn(arg, &e)) != 0)
			return rc;
	}
	return 0;
}

int spool_queue_get(struct spool *sp, spool_qid qid, struct spool_queue_ent *e_r)
{
	const struct spool_ient *ie = spool_index_get(&sp->ix, qid);

	if (!ie || (ie->flags & SPOOL_IF_DONE))
		return -ENOENT;
	ent_fill(ie, e_r);
	return 0;
}

static int pread_all(int fd, void *p, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (uint8_t *)p + got, n - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENOENT;   /* the record is not (all) there */
		got += (size_t)r;
	}
	return 0;
}

int spool_queue_read(struct spool *sp, spool_qid qid, struct spool_queue_msg *m_r)
{
	const struct spool_ient *ie = spool_index_get(&sp->ix, qid);
	struct spool_record_info info;
	uint8_t hdr[SPOOL_RECORD_HDR_SIZE];
	uint32_t nrcpt = 0;
	int fd, rc;
	bool own_fd = false;

	memset(m_r, 0, sizeof(*m_r));
	if (!ie || !ie->seg)
		return -ENOENT;
	fd = ie->seg->fd;
	if (fd < 0) {
		char name[32];

		/* A sealed segment closes its descriptor once nothing is in flight. */
		spool_seg_name(name, SPOOL_QID_SEG(qid));
		fd = openat(sp->dfd, name, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return errno == ENOENT ? -ENOENT : -errno;
		own_fd = true;
	}
	rc = pread_all(fd, hdr, sizeof(hdr), SPOOL_QID_OFF(qid));
	if (rc == 0 && (spool_record_hdr_decode(hdr, sizeof(hdr), &info) < 0 || info.qid != qid))
		rc = -EBADMSG;
	if (rc == 0) {
		size_t n = info.body_len + info.env_len;

		m_r->payload = malloc(n ? n : 1);
		if (!m_r->payload)
			rc = -ENOMEM;
		else
			rc = pread_all(fd, m_r->payload, n, SPOOL_QID_OFF(qid) + info.hdr_size);
	}
	if (own_fd)
		close(fd);
	if (rc == 0 && spool_record_payload_check(&info, m_r->payload, info.body_len + info.env_len))
		rc = -EBADMSG;
	if (rc == 0 && spool_record_env_decode(m_r->payload + info.body_len, info.env_len, &m_r->env,
					       NULL, 0, &nrcpt) < 0)
		rc = -EBADMSG;
	if (rc == 0) {
		m_r->rcpts = calloc(nrcpt ? nrcpt : 1, sizeof(*m_r->rcpts));
		if (!m_r->rcpts)
			rc = -ENOMEM;
		else
			spool_record_env_decode(m_r->payload + info.body_len, info.env_len, &m_r->env,
						m_r->rcpts, nrcpt, &nrcpt);
	}
	if (rc < 0) {
		spool_queue_msg_free(m_r);
		return rc;
	}
	m_r->env.rcpts = m_r->rcpts;
	m_r->env.nrcpt = nrcpt;
	m_r->body = m_r->payload;
	m_r->body_len = info.body_len;
	m_r->received_ns = info.received_ns;
	return 0;
}

void spool_queue_msg_free(struct spool_queue_msg *m)
{
	free(m->payload);
	free(m->rcpts);
	memset(m, 0, sizeof(*m));
}

/* ---- The hand-off ---- */

struct slice *spool_queue_rcpt_scratch(struct spool *sp, uint32_t n)
{
	if (n > sp->handoff_cap) {
		struct slice *v = realloc(sp->handoff_rcpts, n * sizeof(*v));

		if (!v)
			return NULL;
		sp->handoff_rcpts = v;
		sp->handoff_cap = n;
	}
	return sp->handoff_rcpts;
}

void spool_queue_hand_over(struct spool *sp, spool_qid qid, const uint8_t *envp,
			   uint32_t env_len, uint64_t body_len)
{
	struct spool_envelope env;
	struct spool_queue_ent e;
	uint32_t nrcpt = 0;
	int rc;

	if (!sp->consume || spool_queue_get(sp, qid, &e) < 0)
		return;   /* not indexed (out of memory at the commit): the next start has it */
	rc = spool_record_env_decode(envp, env_len, &env, sp->handoff_rcpts, sp->handoff_cap,
				     &nrcpt);
	if (rc == 0 && nrcpt > sp->handoff_cap)   /* more recipients than ever before */
		rc = spool_queue_rcpt_scratch(sp, nrcpt) == NULL ? -ENOMEM :
		     spool_record_env_decode(envp, env_len, &env, sp->handoff_rcpts,
					     sp->handoff_cap, &nrcpt);
	if (rc < 0) {
		log_warn(rc, "spool: %s: a durable message cannot be handed to delivery; the next "
			 "start does", sp->dir);
		return;
	}
	sp->consume(sp->consume_arg, &e, &env, body_len);
}

struct handoff_list {
	spool_qid *v;
	size_t     n, cap;
};

static int handoff_collect(void *arg, const struct spool_queue_ent *e)
{
	struct handoff_list *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 256;
		spool_qid *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = e->qid;
	return 0;
}

int spool_set_consumer(struct spool *sp, spool_consume_fn *fn, void *arg)
{
	struct handoff_list l = { 0 };
	int listed, unreadable = 0;

	sp->consume = fn;
	sp->consume_arg = arg;
	if (fn == NULL)
		return 0;
	/* The ids first: fn may journal, which must not happen under the walk. */
	listed = spool_queue_each(sp, handoff_collect, &l);
	for (size_t i = 0; i < l.n; i++) {
		struct spool_queue_msg rec;
		struct spool_queue_ent e;

		if (spool_queue_get(sp, l.v[i], &e) < 0)
			continue;
		if (spool_queue_read(sp, l.v[i], &rec) < 0) {
			unreadable++;
			continue;
		}
		e.recovered = true;
		if (rec.received_ns)   /* the header's, as the record was written */
			rec.env.received_ns = rec.received_ns;
		fn(arg, &e, &rec.env, rec.body_len);
		spool_queue_msg_free(&rec);
	}
	free(l.v);
	if (listed < 0) {
		log_warn(listed, "spool: %s: not every queued message could be listed", sp->dir);
		return listed;
	}
	return unreadable;
}
