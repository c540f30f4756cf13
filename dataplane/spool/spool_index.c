/*
 * spool_index.c - the in-memory index of spooled messages by queue id, with each message's
 * journal state (done, held, per-recipient results, next attempt). Open addressing with linear
 * probing and backward-shift deletion (no tombstones). One owner thread; no locking.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spool_impl.h"

/* Recipient indexes above this in a journal event are refused (a record holds fewer). */
#define SPOOL_RCPT_IDX_MAX (1u << 20)

static inline uint32_t slot_of(spool_qid qid, uint32_t mask)
{
	return (uint32_t)(XXH3_64bits(&qid, sizeof(qid)) & mask);
}

struct spool_ient *spool_index_get(const struct spool_index *ix, spool_qid qid)
{
	uint32_t mask, i;

	if (!ix->cap || !qid)
		return NULL;
	mask = ix->cap - 1;
	for (i = slot_of(qid, mask); ix->tab[i].qid; i = (i + 1) & mask)
		if (ix->tab[i].qid == qid)
			return &ix->tab[i];
	return NULL;
}

static int grow(struct spool_index *ix)
{
	uint32_t ncap = ix->cap ? ix->cap * 2 : 1024, mask = ncap - 1;
	struct spool_ient *nt = calloc(ncap, sizeof(*nt));

	if (!nt)
		return -ENOMEM;
	for (uint32_t k = 0; k < ix->cap; k++) {
		uint32_t i;

		if (!ix->tab[k].qid)
			continue;
		for (i = slot_of(ix->tab[k].qid, mask); nt[i].qid; i = (i + 1) & mask)
			;
		nt[i] = ix->tab[k];
	}
	free(ix->tab);
	ix->tab = nt;
	ix->cap = ncap;
	return 0;
}

struct spool_ient *spool_index_put(struct spool_index *ix, spool_qid qid)
{
	struct spool_ient *e = spool_index_get(ix, qid);
	uint32_t mask, i;

	if (e)
		return e;
	if (!qid)
		return NULL;
	/* Keep the load under 3/4 so probe runs stay short. */
	if ((ix->n + 1) * 4 > ix->cap * 3 && grow(ix) < 0)
		return NULL;
	mask = ix->cap - 1;
	for (i = slot_of(qid, mask); ix->tab[i].qid; i = (i + 1) & mask)
		;
	memset(&ix->tab[i], 0, sizeof(ix->tab[i]));
	ix->tab[i].qid = qid;
	ix->n++;
	return &ix->tab[i];
}

void spool_index_del(struct spool_index *ix, spool_qid qid)
{
	struct spool_ient *e = spool_index_get(ix, qid);
	uint32_t mask, i, j;

	if (!e)
		return;
	free(e->rstate);
	free(e->last_reply);
	spool_quota_release(&e->quota);
	mask = ix->cap - 1;
	i = (uint32_t)(e - ix->tab);
	/* Backward shift: move later members of the probe run into the hole when their home slot
	 * does not lie (cyclically) between the hole and them. */
	for (j = (i + 1) & mask; ix->tab[j].qid; j = (j + 1) & mask) {
		uint32_t home = slot_of(ix->tab[j].qid, mask);

		if (((j - home) & mask) >= ((j - i) & mask)) {
			ix->tab[i] = ix->tab[j];
			i = j;
		}
	}
	memset(&ix->tab[i], 0, sizeof(ix->tab[i]));
	ix->n--;
}

void spool_index_free(struct spool_index *ix)
{
	for (uint32_t k = 0; k < ix->cap; k++)
		if (ix->tab[k].qid) {
			free(ix->tab[k].rstate);
			free(ix->tab[k].last_reply);
			spool_quota_release(&ix->tab[k].quota);
		}
	free(ix->tab);
	memset(ix, 0, sizeof(*ix));
}

static int rstate_set(struct spool_ient *e, uint64_t idx, uint8_t v)
{
	if (idx >= SPOOL_RCPT_IDX_MAX || (e->nrcpt && idx >= e->nrcpt))
		return -EINVAL;
	if (idx >= e->rcap) {
		uint32_t ncap = e->nrcpt ? e->nrcpt : (uint32_t)idx + 1;
		uint8_t *n;

		if (ncap < idx + 1)
			ncap = (uint32_t)idx + 1;
		n = realloc(e->rstate, ncap);
		if (!n)
			return -ENOMEM;
		memset(n + e->rcap, 0, ncap - e->rcap);
		e->rstate = n;
		e->rcap = ncap;
	}
	e->rstate[idx] = v;
	return 0;
}

int spool_index_apply(struct spool_ient *e, const struct spool_jrec *j)
{
	switch (j->event) {
	case SPOOL_EV_RCPT_DONE:   return rstate_set(e, j->arg, SPOOL_RCPT_DONE);
	case SPOOL_EV_RCPT_FAILED: return rstate_set(e, j->arg, SPOOL_RCPT_FAILED);
	case SPOOL_EV_DONE:        e->flags |= SPOOL_IF_DONE; return 0;
	case SPOOL_EV_HOLD:        e->flags |= SPOOL_IF_HELD; return 0;
	case SPOOL_EV_RELEASE:     e->flags &= ~(uint32_t)SPOOL_IF_HELD; return 0;
	case SPOOL_EV_DELETE:      e->flags |= SPOOL_IF_DONE | SPOOL_IF_DELETED; return 0;
	case SPOOL_EV_DEFER:       e->defer_until = j->arg; return 0;
	case SPOOL_JEV_DEFER_INFO: {
		char *t = malloc(j->text_len + 1);

		if (!t)
			return -ENOMEM;
		if (j->text_len)
			memcpy(t, j->text, j->text_len);
		t[j->text_len] = 0;
		free(e->last_reply);
		e->last_reply = t;
		e->attempts = j->attempts;
		return 0;
	}
	default:                   return -EINVAL;
	}
}

void spool_index_counts(const struct spool_ient *e, uint32_t *done_r, uint32_t *failed_r)
{
	uint32_t d = 0, f = 0, n = e->rcap;

	if (e->nrcpt && n > e->nrcpt)
		n = e->nrcpt;
	for (uint32_t i = 0; i < n; i++) {
		d += e->rstate[i] == SPOOL_RCPT_DONE;
		f += e->rstate[i] == SPOOL_RCPT_FAILED;
	}
	*done_r = d;
	*failed_r = f;
}

static int snap_put(uint8_t **out, size_t *len, size_t *cap, uint8_t ev, spool_qid qid,
		    uint64_t arg)
{
	struct spool_jrec j = { .event = ev, .qid = qid, .arg = arg };

	if (*len + SPOOL_JREC_SIZE > *cap) {
		size_t ncap = *cap ? *cap * 2 : 64 * SPOOL_JREC_SIZE;
		uint8_t *n = realloc(*out, ncap);

		if (!n)
			return -ENOMEM;
		*out = n;
		*cap = ncap;
	}
	spool_record_jrec_encode(*out + *len, &j);
	*len += SPOOL_JREC_SIZE;
	return 0;
}

int spool_index_snapshot(const struct spool_ient *e, uint8_t **out, size_t *len, size_t *cap)
{
	int err = 0;

	/* A done message needs nothing else: it is never looked at again. */
	if (e->flags & SPOOL_IF_DONE)
		return snap_put(out, len, cap, (e->flags & SPOOL_IF_DELETED) ? SPOOL_EV_DELETE :
				SPOOL_EV_DONE, e->qid, 0);
	for (uint32_t i = 0; i < e->rcap && !err; i++)
		if (e->rstate[i] != SPOOL_RCPT_QUEUED)
			err = snap_put(out, len, cap, e->rstate[i] == SPOOL_RCPT_DONE ?
				       SPOOL_EV_RCPT_DONE : SPOOL_EV_RCPT_FAILED, e->qid, i);
	if (!err && (e->flags & SPOOL_IF_HELD))
		err = snap_put(out, len, cap, SPOOL_EV_HOLD, e->qid, 0);
	if (!err && e->defer_until)
		err = snap_put(out, len, cap, SPOOL_EV_DEFER, e->qid, e->defer_until);
	if (!err && (e->attempts || e->last_reply)) {
		size_t tl = e->last_reply ? strlen(e->last_reply) : 0,
		       need = spool_record_jtext_size(tl);

		if (*len + need > *cap) {
			size_t ncap = (*cap ? *cap : 64 * SPOOL_JREC_SIZE) * 2 + need;
			uint8_t *n = realloc(*out, ncap);

			if (!n)
				return -ENOMEM;
			*out = n;
			*cap = ncap;
		}
		*len += spool_record_jtext_encode(*out + *len, e->qid, e->attempts,
						  e->last_reply ? e->last_reply : "", tl);
	}
	return err;
}
