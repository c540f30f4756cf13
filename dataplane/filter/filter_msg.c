/*
 * filter_msg.c - scanning one message: the streams per class, the MIME sink that feeds them,
 * header targets, PCRE2 confirmation, metas and the score (see filter.h for what each class
 * sees).
 *
 * Shard thread only. Memory per message: the Hyperscan stream states, two bitmaps of the rule
 * count, the message's header fields (an arena, bounded by the MIME parser's limits), and the
 * confirmation text of classes that need it (at most FILTER_CONFIRM_MAX each). Ended messages go
 * back to a small per-shard free list with their buffers and MIME parser, so a steady stream of
 * messages allocates only the Hyperscan stream states.
 *
 * Header semantics follow SpamAssassin's PerMsgStatus::get and Plugin::Check: all fields of a
 * name, decoded, each ending in "\n", joined; a missing header reads as its [if-unset] value
 * (else empty), which the compiler already matched against each rule (RULES_RF_ABSENT_HIT).
 * Body text follows Message::get_rendered_body_text_array: the Subject first, then the text
 * parts; blank lines split paragraphs, every other run of white space is one space.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

#include "filter_types.h"
#ifdef SLUICE_FILTER_HAVE_MIME
#include "mime.h"
#endif

#define FILTER_MSG_POOL   64u
#define FILTER_MSG_VALUE_MAX (256u * 1024)  /* one header target's value */

void filter_msg_pool_drain(struct filter_shard *fs);

/* --- small buffers ---------------------------------------------------------------------- */

static bool filter_msg_grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t ncap;
	void *np;

	if (need <= *cap)
		return true;
	ncap = *cap ? *cap : 256;
	while (ncap < need)
		ncap *= 2;
	np = realloc(*p, ncap * elem);
	if (!np)
		return false;
	*p = np;
	*cap = ncap;
	return true;
}

static void filter_msg_keep(struct filter_msg *fm, unsigned cls, const uint8_t *p, size_t n)
{
	struct filter_text *t = &fm->txt[cls];

	if (!fm->db->confirm[cls] || t->len >= FILTER_CONFIRM_MAX)
		return;
	if (n > FILTER_CONFIRM_MAX - t->len)
		n = FILTER_CONFIRM_MAX - t->len;
	if (!filter_msg_grow((void **)&t->p, &t->cap, t->len + n, 1)) {
		fm->oom = true;
		return;
	}
	memcpy(t->p + t->len, p, n);
	t->len += n;
}

/* --- matches ---------------------------------------------------------------------------- */

/* A candidate end of line-confirmed rule id: the line holding the match's last byte gets an
 * entry (one per rule and line; the kept text already holds the chunk being scanned). A
 * candidate past the kept text is one the whole-text confirmation could not prove either. */
static void filter_msg_cand_line(struct filter_msg *fm, uint32_t id, unsigned cls,
				 unsigned long long to)
{
	const struct filter_text *t = &fm->txt[cls];
	struct filter_cand_line *e;
	const uint8_t *nl;
	size_t from;

	if (to == 0 || to > t->len)
		return;
	from = 0;
	if (filter_bit(fm->cand, id)) {
		e = &fm->clines[fm->cline[id]];
		if (to <= e->last)
			return;
		/* the same line unless a line ends between the last candidate and this one */
		if (!memchr(t->p + e->last - 1, '\n', (size_t)(to - e->last)))  {
			e->last = (uint32_t)to;
			return;
		}
		from = e->last;
	}
	if (!filter_msg_grow((void **)&fm->clines, &fm->clcap, fm->nclines + 1, sizeof(*fm->clines))) {
		fm->oom = true;
		return;
	}
	nl = from + 1 < to ? memrchr(t->p + from, '\n', (size_t)(to - 1 - from)) : NULL;
	e = &fm->clines[fm->nclines];
	e->id = id;
	e->start = nl ? (uint32_t)(nl + 1 - t->p) : (uint32_t)from;
	e->last = (uint32_t)to;
	fm->cline[id] = (uint32_t)fm->nclines++;
	filter_bit_set(fm->cand, id);
}

static int filter_msg_on_match(unsigned int id, unsigned long long from, unsigned long long to,
			       unsigned int flags, void *ctx)
{
	struct filter_msg *fm = ctx;

	if (id >= fm->db->nrules)
		return 0;
	if (fm->fs->prof && id < fm->fs->prof->nrules)
		fm->fs->prof->rule_reports[id]++;
	if (fm->db->rules[id].lines)
		filter_msg_cand_line(fm, id, fm->db->rules[id].cls, to);
	else if (fm->db->rules[id].kind == RULES_KIND_PREFILTER)
		filter_bit_set(fm->cand, id);
	else
		filter_bit_set(fm->hits, id);
	return 0;
}

static void filter_msg_stream(struct filter_msg *fm, unsigned cls, const uint8_t *p, size_t n)
{
	if (!n)
		return;
	/* kept first: a line-confirmed rule's candidate finds its line in the kept text */
	filter_msg_keep(fm, cls, p, n);
	if (fm->st[cls]) {
		uint64_t t0 = fm->fs->prof ? filter_shard_ns() : 0;

		(void)hs_scan_stream(fm->st[cls], (const char *)p, (unsigned)n, 0, fm->fs->scratch,
				     filter_msg_on_match, fm);
		if (fm->fs->prof)
			fm->fs->prof->ns[cls] += filter_shard_ns() - t0;
	}
}

/* --- body text ------------------------------------------------------------------------- */

static void filter_msg_body_flush(struct filter_msg *fm)
{
	filter_eval_mime_body(fm, fm->bbuf, fm->blen);
	filter_msg_stream(fm, RULES_CLASS_BODY, fm->bbuf, fm->blen);
	fm->blen = 0;
}

static inline void filter_msg_body_emit(struct filter_msg *fm, uint8_t c)
{
	if (fm->blen == sizeof(fm->bbuf))
		filter_msg_body_flush(fm);
	fm->bbuf[fm->blen++] = c;
}

static void filter_msg_body(struct filter_msg *fm, const uint8_t *p, size_t n)
{
	filter_eval_header_body(fm, p, n);
	if (!fm->db->db[RULES_CLASS_BODY] && !fm->db->confirm[RULES_CLASS_BODY] && !fm->db->body_evals)
		return;
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		if (c == '\n') {
			fm->nl++;
			continue;
		}
		if (c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f') {
			fm->ws = true;
			continue;
		}
		if (fm->para) {
			if (fm->nl >= 2)
				filter_msg_body_emit(fm, '\n');
			else if (fm->nl || fm->ws)
				filter_msg_body_emit(fm, ' ');
		}
		filter_msg_body_emit(fm, c);
		fm->para = true;
		fm->nl = 0;
		fm->ws = false;
	}
}

static void filter_msg_body_break(struct filter_msg *fm)
{
	if (fm->nl < 2)
		fm->nl = 2;
}

/* --- header targets ------------------------------------------------------------------- */

static uint64_t filter_msg_name_hash(const char *name, size_t len)
{
	char low[256];

	if (len > sizeof(low))
		len = sizeof(low);
	for (size_t i = 0; i < len; i++)
		low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
	return XXH3_64bits(low, len);
}

static void filter_msg_val(struct filter_msg *fm, const char *p, size_t n)
{
	if (fm->vlen + n > FILTER_MSG_VALUE_MAX)
		n = FILTER_MSG_VALUE_MAX - fm->vlen;
	if (!n)
		return;
	if (!filter_msg_grow((void **)&fm->val, &fm->vcap, fm->vlen + n, 1)) {
		fm->oom = true;
		return;
	}
	memcpy(fm->val + fm->vlen, p, n);
	fm->vlen += n;
}

static const char *filter_msg_trim(const char *p, const char *e, const char **end_r)
{
	while (p < e && (*p == ' ' || *p == '\t'))
		p++;
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	*end_r = e;
	return p;
}

/* SpamAssassin's :addr, :name, :host on one field value. */
static void filter_msg_addr_part(struct filter_msg *fm, unsigned mod, const char *v, size_t n)
{
	const char *e = v + n, *lt = NULL, *a, *ae;
	bool q = false;

	for (const char *p = v; p < e && !lt; p++) {   /* a '<' inside a quoted name is not one */
		if (*p == '"')
			q = !q;
		else if (!q && *p == '<')
			lt = p;
	}

	if (mod == RULES_HDR_NAME) {
		if (lt) {
			a = filter_msg_trim(v, lt, &ae);
			if (ae - a >= 2 && *a == '"' && ae[-1] == '"')
				a++, ae--;
		} else {
			const char *op = memchr(v, '(', n), *cp = op ? memchr(op, ')', (size_t)(e - op)) : NULL;

			a = op && cp ? op + 1 : v;
			ae = op && cp ? cp : v;
		}
		filter_msg_val(fm, a, (size_t)(ae - a));
		return;
	}
	if (lt) {
		const char *gt = memchr(lt, '>', (size_t)(e - lt));

		a = lt + 1;
		ae = gt ? gt : e;
	} else {
		/* the first word, comments and trailing list dropped */
		a = v;
		while (a < e && (*a == ' ' || *a == '\t'))
			a++;
		ae = a;
		while (ae < e && *ae != ' ' && *ae != '\t' && *ae != ',' && *ae != '(')
			ae++;
	}
	a = filter_msg_trim(a, ae, &ae);
	if (mod == RULES_HDR_HOST || mod == RULES_HDR_DOMAIN) {
		const char *at = memchr(a, '@', (size_t)(ae - a));

		if (!at)
			return;
		a = at + 1;
	}
	filter_msg_val(fm, a, (size_t)(ae - a));
}

static void filter_msg_val_field(struct filter_msg *fm, const struct filter_target *t,
				 const struct filter_hdr *h)
{
	const char *raw = fm->arena + h->raw_off, *dec = fm->arena + h->dec_off;

	switch (t->mod) {
	case RULES_HDR_RAW:
		filter_msg_val(fm, raw, h->raw_len);
		filter_msg_val(fm, "\n", 1);
		break;
	case RULES_HDR_DECODED:
		filter_msg_val(fm, dec, h->dec_len);
		filter_msg_val(fm, "\n", 1);
		break;
	case RULES_HDR_NAME:
		if (fm->vlen)
			filter_msg_val(fm, "\n", 1);
		filter_msg_addr_part(fm, t->mod, dec, h->dec_len);
		break;
	default: {
		/* :addr, :host: every address of the list, one a line, as SpamAssassin 4's header
		 * rules read them (elements without an address are skipped) */
		const char *e = dec + h->dec_len, *s = dec;
		bool q = false;
		int angle = 0;

		for (const char *p = dec; p <= e; p++) {
			if (p < e) {
				if (*p == '"')
					q = !q;
				else if (!q && *p == '<')
					angle++;
				else if (!q && *p == '>' && angle)
					angle--;
				if (q || angle || *p != ',')
					continue;
			}
			if (memchr(s, '@', (size_t)(p - s))) {
				if (fm->vlen)
					filter_msg_val(fm, "\n", 1);
				filter_msg_addr_part(fm, t->mod, s, (size_t)(p - s));
			}
			s = p + 1;
		}
		break;
	}
	}
}

static bool filter_msg_name_is(const struct filter_msg *fm, const struct filter_hdr *h, const char *lit)
{
	return strlen(lit) == h->name_len && strncasecmp(fm->arena + h->name_off, lit, h->name_len) == 0;
}

/* Builds the target's value from fields [from, to); returns whether the header is present. */
static bool filter_msg_target_value(struct filter_msg *fm, const struct filter_target *t,
				    uint32_t from, uint32_t to)
{
	bool present = false;

	fm->vlen = 0;
	switch (t->special) {
	case FILTER_SP_UNKNOWN:
		return false;
	case FILTER_SP_ALL_UNTRUSTED:
		from = filter_eval_header_untrusted_from(fm);
		break;
	case FILTER_SP_RELAYS_TRUSTED:
		filter_msg_val(fm, fm->relays_t, fm->relays_t_len);
		return true;
	case FILTER_SP_RELAYS_UNTRUSTED:
		filter_msg_val(fm, fm->relays_u, fm->relays_u_len);
		return true;
	case FILTER_SP_ENVFROM: {
		char env[256];

		if (!filter_eval_envfrom(fm, env, sizeof(env)))
			return false;
		if (t->mod == RULES_HDR_HOST || t->mod == RULES_HDR_DOMAIN) {
			const char *at = strrchr(env, '@');

			filter_msg_val(fm, at ? at + 1 : "", at ? strlen(at + 1) : 0);
		} else {
			filter_msg_val(fm, env, strlen(env));
		}
		if (t->mod == RULES_HDR_DECODED || t->mod == RULES_HDR_RAW)
			filter_msg_val(fm, "\n", 1);
		return true;
	}
	default:
		break;
	}
	for (uint32_t i = from; i < to; i++) {
		const struct filter_hdr *h = &fm->hdrs[i];
		bool take;

		switch (t->special) {
		case FILTER_SP_ALL:
		case FILTER_SP_ALL_UNTRUSTED:
			filter_msg_val(fm, fm->arena + h->name_off, h->name_len);
			filter_msg_val(fm, ": ", 2);
			if (t->mod == RULES_HDR_RAW)
				filter_msg_val(fm, fm->arena + h->raw_off, h->raw_len);
			else
				filter_msg_val(fm, fm->arena + h->dec_off, h->dec_len);
			filter_msg_val(fm, "\n", 1);
			present = true;
			continue;
		case FILTER_SP_TOCC:
			take = filter_msg_name_is(fm, h, "to") || filter_msg_name_is(fm, h, "cc");
			break;
		case FILTER_SP_MESSAGEID:
			take = filter_msg_name_is(fm, h, "message-id") ||
			       filter_msg_name_is(fm, h, "resent-message-id") ||
			       filter_msg_name_is(fm, h, "x-message-id");
			break;
		default:
			take = h->hash == t->hash;
			break;
		}
		if (take) {
			filter_msg_val_field(fm, t, h);
			present = true;
		}
	}
	return present;
}

static int filter_msg_on_hdr_match(unsigned int id, unsigned long long from,
				   unsigned long long to, unsigned int flags, void *ctx)
{
	struct filter_msg *fm = ctx;
	const struct filter_rule *ru;

	if (id >= fm->db->nrules)
		return 0;
	ru = &fm->db->rules[id];
	if (ru->kind == RULES_KIND_PREFILTER) {
		int rc = filter_shard_match(fm, id, ru->pcre, (PCRE2_SPTR)fm->val, fm->vlen, 0);

		if (rc < 0)
			return 0;
	}
	filter_bit_set(fm->cand, id);
	return 0;
}

/* tflags multiple on a header rule that hit: its matches in the value, counted like Perl's
 * m//g up to its maxhits (255 without), added to what other header fields of the target (each
 * MIME part's) gave, for the metas that compare the count. */
/* tflags multiple: n matches so far, more counted like Perl's m//g from start (an empty
 * match moves one byte on), until max. Returns the count. */
static unsigned filter_msg_count(struct filter_msg *fm, uint32_t id, const pcre2_code *re,
				 PCRE2_SPTR subj, PCRE2_SIZE len, PCRE2_SIZE start, unsigned n,
				 unsigned max)
{
	PCRE2_SIZE *ov = pcre2_get_ovector_pointer(fm->fs->md);

	while (n < max && start <= len && filter_shard_match(fm, id, re, subj, len, start) >= 0) {
		n++;
		start = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
	}
	return n;
}

static void filter_msg_hdr_count(struct filter_msg *fm, uint32_t id, const struct filter_rule *ru)
{
	unsigned n = filter_msg_count(fm, id, ru->pcre, (PCRE2_SPTR)fm->val, fm->vlen, 0, fm->cnt[id],
				      ru->maxhits ? ru->maxhits : 255);

	fm->cnt[id] = (uint8_t)(n ? n : 1);
}

/* Scans header fields [from, to) for every target of the kind (message or MIME part). */
static void filter_msg_targets(struct filter_msg *fm, uint32_t from, uint32_t to, bool mime)
{
	struct filter_db *db = fm->db;
	uint64_t t0 = fm->fs->prof ? filter_shard_ns() : 0;

	for (uint32_t t = 0; t < db->ntargets; t++) {
		const struct filter_target *tg = &db->targets[t];
		bool present;

		if (((tg->flags & RULES_TF_MIME) != 0) != mime || !tg->nrules)
			continue;
		present = filter_msg_target_value(fm, tg, from, to);
		if (present && tg->db)
			(void)hs_scan(tg->db, fm->val ? fm->val : "", (unsigned)fm->vlen, 0,
				      fm->fs->scratch, filter_msg_on_hdr_match, fm);
		for (uint32_t k = 0; k < tg->nrules; k++) {
			uint32_t id = tg->rules[k];
			const struct filter_rule *ru = &db->rules[id];
			bool m, hit;

			if (ru->kind == RULES_KIND_EXISTS) {
				hit = present;
			} else {
				if (ru->kind == RULES_KIND_PCRE && present &&
				    filter_shard_match(fm, id, ru->pcre, (PCRE2_SPTR)fm->val, fm->vlen, 0) >= 0)
					filter_bit_set(fm->cand, id);
				m = present ? filter_bit(fm->cand, id) : (ru->flags & RULES_RF_ABSENT_HIT) != 0;
				hit = (ru->flags & RULES_RF_NEGATE) ? !m : m;
				/* a MIME part without the header says nothing about the others */
				if (mime && !present)
					hit = false;
			}
			fm->cand[id >> 6] &= ~(1ull << (id & 63));
			if (hit)
				filter_bit_set(fm->hits, id);
			if (hit && present && (ru->flags & RULES_RF_MULTIPLE) && ru->pcre &&
			    !(ru->flags & RULES_RF_NEGATE))
				filter_msg_hdr_count(fm, id, ru);
		}
	}
	if (fm->fs->prof)
		fm->fs->prof->ns[FILTER_PROF_TARGETS] += filter_shard_ns() - t0;
}

static void filter_msg_subject(struct filter_msg *fm)
{
	for (uint32_t i = 0; i < fm->ntop; i++)
		if (filter_msg_name_is(fm, &fm->hdrs[i], "subject")) {
			filter_msg_body(fm, (const uint8_t *)fm->arena + fm->hdrs[i].dec_off,
					fm->hdrs[i].dec_len);
			break;
		}
	fm->body_subj_end = fm->txt[RULES_CLASS_BODY].len + fm->blen;
	filter_msg_body_break(fm);
}

#ifdef SLUICE_FILTER_HAVE_MIME
/* --- the MIME sink ---------------------------------------------------------------------- */

static void filter_msg_on_header(void *arg, unsigned depth, struct slice name, struct slice raw,
				 struct slice dec)
{
	struct filter_msg *fm = arg;
	struct filter_hdr *h;
	size_t need = name.len + raw.len + dec.len;

	filter_eval_mime_header(fm, depth, name.p, name.len, dec.p, dec.len);
	if (slice_eq_nocase(name, "content-type")) {
		const char *v = dec.p;
		size_t n = dec.len;

		while (n && (*v == ' ' || *v == '\t'))
			v++, n--;
		fm->ct_seen = true;
		fm->ct_html = n >= 9 && strncasecmp(v, "text/html", 9) == 0;
		fm->ct_text = n >= 10 && strncasecmp(v, "text/plain", 10) == 0;
		fm->ct_multi = n >= 10 && strncasecmp(v, "multipart/", 10) == 0;
	}
	if (depth > 0 && !fm->db->has_mime_targets)
		return;
	if (depth == 0 && fm->top_done)
		return;
	if (fm->alen + need > UINT32_MAX / 2)
		return;
	if (!filter_msg_grow((void **)&fm->hdrs, &fm->hcap, fm->nhdrs + 1, sizeof(*fm->hdrs)) ||
	    !filter_msg_grow((void **)&fm->arena, &fm->acap, fm->alen + need, 1)) {
		fm->oom = true;
		return;
	}
	h = &fm->hdrs[fm->nhdrs++];
	h->name_off = (uint32_t)fm->alen;
	h->name_len = (uint32_t)name.len;
	memcpy(fm->arena + fm->alen, name.p, name.len);
	fm->alen += name.len;
	h->raw_off = (uint32_t)fm->alen;
	h->raw_len = (uint32_t)raw.len;
	memcpy(fm->arena + fm->alen, raw.p, raw.len);
	fm->alen += raw.len;
	h->dec_off = (uint32_t)fm->alen;
	h->dec_len = (uint32_t)dec.len;
	memcpy(fm->arena + fm->alen, dec.p, dec.len);
	fm->alen += dec.len;
	h->hash = filter_msg_name_hash(name.p, name.len);
}

static void filter_msg_on_headers_end(void *arg, unsigned depth)
{
	struct filter_msg *fm = arg;

	filter_eval_mime_headers_end(fm, depth);
	/* leaf text parts by type (MIMEEval's counts); no Content-Type means text/plain */
	if (!fm->ct_seen || fm->ct_text)
		fm->n_text++;
	else if (fm->ct_html)
		fm->n_html++;
	/* the entity before this one ends; the text that follows is this one's */
	filter_eval_html_part(fm, fm->ct_html);
	fm->ct_seen = fm->ct_html = fm->ct_text = fm->ct_multi = false;

	if (depth == 0 && !fm->top_done) {
		fm->top_done = true;
		fm->ntop = fm->nhdrs;
		{
			uint64_t t0 = fm->fs->prof ? filter_shard_ns() : 0;

			filter_relay_build(fm);
			if (fm->fs->prof)
				fm->fs->prof->ns[FILTER_PROF_RELAYS] += filter_shard_ns() - t0;
		}
		filter_msg_targets(fm, 0, fm->ntop, false);
		/* mimeheader rules see every part, the message itself included (MIMEHeader.pm walks
		 * find_parts(qr/./), which starts at the root) */
		if (fm->db->has_mime_targets)
			filter_msg_targets(fm, 0, fm->ntop, true);
		filter_msg_subject(fm);
		return;
	}
	if (depth > 0) {
		if (fm->db->has_mime_targets)
			filter_msg_targets(fm, fm->ntop, fm->nhdrs, true);
		fm->nhdrs = fm->ntop;
		filter_msg_body_break(fm);
	}
}

static bool filter_msg_addr_char(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '-' || c == '_' || c == '+' || c == '@' || c == '%' || c == '=';
}

static void filter_msg_on_uri(void *arg, struct slice uri);

/* The address-like word that just ended: "local@host.tld" -> mailto: URI. */
static void filter_msg_addr_end(struct filter_msg *fm)
{
	char *t = fm->atok, *at;
	size_t n = fm->atok_len;

	fm->atok_len = 0;
	if (fm->atok_over) {
		fm->atok_over = false;
		return;
	}
	while (n && (t[n - 1] == '.' || t[n - 1] == '-'))
		n--;
	while (n && (*t == '.' || *t == '-' || *t == '='))
		t++, n--;
	at = memchr(t, '@', n);
	if (!at || at == t || memchr(at + 1, '@', n - (size_t)(at + 1 - t)) ||
	    !memchr(at + 1, '.', n - (size_t)(at + 1 - t)) || (size_t)(at - t) + 3 > n) {
		return;
	}
	{
		char u[sizeof(fm->atok) + 8];

		memcpy(u, "mailto:", 7);
		memcpy(u + 7, t, n);
		filter_msg_on_uri(fm, (struct slice){ u, n + 7 });
	}
}

static void filter_msg_on_body_text(void *arg, const uint8_t *p, size_t len)
{
	struct filter_msg *fm = arg;

	filter_eval_mime_text(fm, p, len);
	filter_eval_htmlx_rendered(fm, p, len);
	if (fm->db->db[RULES_CLASS_URI] || fm->db->confirm[RULES_CLASS_URI]) {
		for (size_t i = 0; i < len; i++) {
			if (filter_msg_addr_char(p[i])) {
				if (fm->atok_len < sizeof(fm->atok))
					fm->atok[fm->atok_len++] = (char)p[i];
				else
					fm->atok_over = true;
			} else if (fm->atok_len || fm->atok_over) {
				filter_msg_addr_end(fm);
			}
		}
	}
	filter_msg_body(fm, p, len);
}

static void filter_msg_on_rawbody(void *arg, const uint8_t *p, size_t len)
{
	filter_eval_html_feed(arg, p, len);
	filter_eval_mime_rawbody(arg, p, len);
	filter_msg_stream(arg, RULES_CLASS_RAWBODY, p, len);
}

static void filter_msg_on_uri(void *arg, struct slice uri)
{
	struct filter_msg *fm = arg;
	const char *colon = memchr(uri.p, ':', uri.len);
	const char *slash = memchr(uri.p, '/', uri.len);

	if (!fm->db->db[RULES_CLASS_URI] && !fm->db->confirm[RULES_CLASS_URI])
		return;
	/* "www.example.com/x" is read as http, as SpamAssassin's uri list does */
	if (!colon || (slash && slash < colon))
		filter_msg_stream(fm, RULES_CLASS_URI, (const uint8_t *)"http://", 7);
	filter_msg_stream(fm, RULES_CLASS_URI, (const uint8_t *)uri.p, uri.len);
	filter_msg_stream(fm, RULES_CLASS_URI, (const uint8_t *)"\n", 1);
}

/* A URI the MIME parser found (not one made of a body address): FreeMail's mailto: list. */
static void filter_msg_on_mime_uri(void *arg, struct slice uri)
{
	filter_eval_header_uri(arg, uri.p, uri.len);
	filter_msg_on_uri(arg, uri);
}

static void filter_msg_on_anomaly(void *arg, enum mime_anomaly a, const char *name)
{
	struct filter_msg *fm = arg;

	if ((unsigned)a < 32)
		fm->anomaly_mask |= 1u << a;
}
#endif

/* --- the message ---------------------------------------------------------------------- */

static void filter_msg_destroy(struct filter_msg *fm)
{
	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++) {
		if (fm->st[c])
			hs_close_stream(fm->st[c], NULL, NULL, NULL);
		free(fm->txt[c].p);
	}
#ifdef SLUICE_FILTER_HAVE_MIME
	mime_parser_free(&fm->mp);
#endif
	filter_db_unref(&fm->db);
	free(fm->hits);
	free(fm->cand);
	free(fm->cnt);
	free(fm->cline);
	free(fm->clines);
	free(fm->hdrs);
	free(fm->arena);
	free(fm->val);
	free(fm);
}

void filter_msg_pool_drain(struct filter_shard *fs)
{
	while (fs->free_list) {
		struct filter_msg *fm = fs->free_list;

		fs->free_list = fm->next;
		filter_msg_destroy(fm);
	}
	fs->nfree = 0;
}

int filter_msg_begin(struct filter_shard *fs, struct filter_msg **fm_r)
{
	struct filter_db *db = fs->db;
	struct filter_msg *fm = fs->free_list;
	size_t nwords = (db->nrules + 63) / 64 + 1;

	if (fm) {
		fs->free_list = fm->next;
		fs->nfree--;
	} else {
		fm = calloc(1, sizeof(*fm));
		if (!fm)
			return -ENOMEM;
#ifdef SLUICE_FILTER_HAVE_MIME
		{
			struct mime_sink sink = {
				.arg = fm,
				.header = filter_msg_on_header,
				.headers_end = filter_msg_on_headers_end,
				.body_text = filter_msg_on_body_text,
				.rawbody = filter_msg_on_rawbody,
				.uri = filter_msg_on_mime_uri,
				.anomaly = filter_msg_on_anomaly,
				.raw = filter_eval_mime_raw,
			};
			struct mime_limits lim = {
				.max_depth = MIME_DEPTH_DEFAULT,
				.max_parts = MIME_PARTS_DEFAULT,
				.max_header_line = MIME_HEADER_LINE_DEFAULT,
				.max_headers = MIME_HEADERS_DEFAULT,
				.max_text_bytes = MIME_TEXT_BYTES_DEFAULT,
			};

			if (mime_parser_new(&fm->mp, &sink, &lim) < 0) {
				free(fm);
				return -ENOMEM;
			}
		}
#endif
	}
	fm->fs = fs;
	fm->next = NULL;
	if (nwords > fm->wcap) {
		uint64_t *h = realloc(fm->hits, nwords * 8), *c;
		uint8_t *k;
		uint32_t *l;

		if (h)
			fm->hits = h;
		c = h ? realloc(fm->cand, nwords * 8) : NULL;
		if (c)
			fm->cand = c;
		k = c ? realloc(fm->cnt, nwords * 64) : NULL;
		if (k)
			fm->cnt = k;
		l = k ? realloc(fm->cline, nwords * 64 * sizeof(*l)) : NULL;
		if (l)
			fm->cline = l;
		if (!h || !c || !k || !l) {
			filter_msg_destroy(fm);
			return -ENOMEM;
		}
		fm->wcap = nwords;
	}
	fm->nwords = nwords;
	memset(fm->hits, 0, nwords * 8);
	memset(fm->cand, 0, nwords * 8);
	memset(fm->cnt, 0, nwords * 64);
	fm->db = filter_db_ref(db);
	fm->nhdrs = fm->ntop = 0;
	fm->alen = fm->vlen = fm->blen = 0;
	fm->nl = 0;
	fm->ws = fm->para = false;
	fm->top_done = false;
	fm->has_env = false;
	fm->env_from_len = 0;
	fm->anomaly_mask = 0;
	fm->ended = fm->oom = false;
	fm->pcre_capped = 0;
	fm->capped_rule = UINT32_MAX;
	fm->nclines = 0;
	fm->n_html = fm->n_text = 0;
	fm->body_subj_end = 0;
	fm->atok_len = 0;
	fm->atok_over = false;
	fm->relays_t_len = fm->relays_u_len = 0;
	fm->relays_t[0] = fm->relays_u[0] = '\0';
	fm->n_trusted = fm->n_untrusted = 0;
	fm->ct_seen = fm->ct_html = fm->ct_text = fm->ct_multi = false;
	memset(&fm->html, 0, sizeof(fm->html));
	filter_eval_mime_begin(fm);
	filter_eval_htmlx_begin(fm);
	filter_eval_header_begin(fm);
	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++) {
		fm->txt[c].len = 0;
		fm->st[c] = NULL;
		if (db->db[c] && c != RULES_CLASS_HEADER &&
		    hs_open_stream(db->db[c], 0, &fm->st[c]) != HS_SUCCESS) {
			filter_msg_destroy(fm);
			return -ENOMEM;
		}
	}
	*fm_r = fm;
	return 0;
}

void filter_msg_set_envelope(struct filter_msg *fm, const struct filter_envelope *env)
{
	size_t n = env->mail_from.len < sizeof(fm->env_from) ? env->mail_from.len : sizeof(fm->env_from);

	memcpy(fm->env_from, env->mail_from.p ? env->mail_from.p : "", n);
	fm->env_from_len = n;
	fm->has_env = true;
}

void filter_msg_feed(struct filter_msg *fm, const uint8_t *p, size_t len)
{
	uint64_t t0;

	if (fm->ended || !len)
		return;
	t0 = fm->fs->prof ? filter_shard_ns() : 0;
	filter_eval_mime_feed(fm, p, len);
	filter_msg_stream(fm, RULES_CLASS_FULL, p, len);
#ifdef SLUICE_FILTER_HAVE_MIME
	mime_parser_feed(fm->mp, p, len);
#else
	/* without the MIME parser the raw message is the body */
	filter_msg_stream(fm, RULES_CLASS_RAWBODY, p, len);
	filter_msg_body(fm, p, len);
#endif
	if (fm->fs->prof)
		fm->fs->prof->ns[FILTER_PROF_TOTAL] += filter_shard_ns() - t0;
}

/* Where a confirmation starts in its class's text: after the Subject line for a body rule
 * with tflags nosubject, else at 0. */
static PCRE2_SIZE filter_msg_start(const struct filter_msg *fm, const struct filter_rule *ru)
{
	if (!(ru->flags & RULES_RF_NOSUBJECT) || ru->cls != RULES_CLASS_BODY)
		return 0;
	return fm->body_subj_end < fm->txt[RULES_CLASS_BODY].len ? fm->body_subj_end :
								    fm->txt[RULES_CLASS_BODY].len;
}

static void filter_msg_confirm(struct filter_msg *fm)
{
	struct filter_db *db = fm->db;

	/* line-confirmed rules: each line holding a candidate end, alone, until one matches */
	for (size_t k = 0; k < fm->nclines; k++) {
		const struct filter_cand_line *e = &fm->clines[k];
		const struct filter_rule *ru = &db->rules[e->id];
		const struct filter_text *t = &fm->txt[ru->cls];
		const uint8_t *end;

		if (filter_bit(fm->hits, e->id))
			continue;
		/* tflags nosubject: the Subject is the body text's first line */
		if ((ru->flags & RULES_RF_NOSUBJECT) && ru->cls == RULES_CLASS_BODY &&
		    e->last <= fm->body_subj_end)
			continue;
		if (ru->flags & RULES_RF_ENDS_AT)
			end = t->p + e->last;   /* no match on the line ends later */
		else if (!(end = memchr(t->p + e->last - 1, '\n', t->len - (e->last - 1))))
			end = t->p + t->len;
		if (filter_shard_match(fm, e->id, ru->pcre, t->p + e->start,
				       (size_t)(end - t->p) - e->start, 0) >= 0)
			filter_bit_set(fm->hits, e->id);
	}

	/* rules only PCRE2 can run: over the kept text of their class */
	for (uint32_t k = 0; k < db->npcre_only; k++) {
		const struct filter_rule *ru = &db->rules[db->pcre_only[k]];
		const struct filter_text *t = &fm->txt[ru->cls];

		if (filter_shard_match(fm, db->pcre_only[k], ru->pcre, t->p, t->len, filter_msg_start(fm, ru)) >= 0)
			filter_bit_set(fm->hits, db->pcre_only[k]);
	}

	for (size_t w = 0; w < fm->nwords; w++) {
		uint64_t bits = fm->cand[w];

		while (bits) {
			uint32_t id = (uint32_t)(w * 64 + (unsigned)__builtin_ctzll(bits));
			const struct filter_rule *ru;
			const struct filter_text *t;

			bits &= bits - 1;
			if (id >= db->nrules)
				continue;
			ru = &db->rules[id];
			if (ru->kind != RULES_KIND_PREFILTER || !ru->pcre || ru->cls >= RULES_CLASS_NSCAN ||
			    ru->lines)
				continue;
			t = &fm->txt[ru->cls];
			if (filter_shard_match(fm, id, ru->pcre, t->p, t->len, filter_msg_start(fm, ru)) < 0)
				continue;
			filter_bit_set(fm->hits, id);
			if (ru->flags & RULES_RF_MULTIPLE) {
				/* the first match is found: the rest up to maxhits */
				PCRE2_SIZE *ov = pcre2_get_ovector_pointer(fm->fs->md);

				fm->cnt[id] = (uint8_t)filter_msg_count(fm, id, ru->pcre, t->p, t->len,
					ov[1] > ov[0] ? ov[1] : ov[0] + 1, 1,
					ru->target && ru->target < 255 ? ru->target : 255);
			}
		}
	}
}

static int filter_msg_cmp_name(const void *a, const void *b, void *arg)
{
	const struct filter_db *db = arg;

	return strcmp(db->rules[*(const uint32_t *)a].name, db->rules[*(const uint32_t *)b].name);
}

void filter_msg_end(struct filter_msg *fm, struct filter_verdict *v)
{
	struct filter_db *db = fm->db;
	struct filter_prof *prof = fm->fs->prof;
	uint32_t shown[256];
	unsigned nshown = 0;
	size_t off = 0;
	uint64_t t0 = prof ? filter_shard_ns() : 0, t1;

	memset(v, 0, sizeof(*v));
	v->required_milli = db->required_milli;
	v->ruleset_hash = db->hash;
	if (fm->ended)
		return;
	fm->ended = true;
#ifdef SLUICE_FILTER_HAVE_MIME
	filter_eval_mime_ending(fm);
	mime_parser_end(fm->mp);
	if (!fm->top_done)
		filter_msg_on_headers_end(fm, 0);
#else
	if (!fm->top_done) {
		fm->top_done = true;
		filter_msg_targets(fm, 0, 0, false);
	}
#endif
#ifdef SLUICE_FILTER_HAVE_MIME
	if (fm->atok_len || fm->atok_over)
		filter_msg_addr_end(fm);
#endif
	filter_msg_body_flush(fm);
	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++)
		if (fm->st[c]) {
			t1 = prof ? filter_shard_ns() : 0;
			(void)hs_close_stream(fm->st[c], fm->fs->scratch, filter_msg_on_match, fm);
			fm->st[c] = NULL;
			if (prof)
				prof->ns[c] += filter_shard_ns() - t1;
		}
	t1 = prof ? filter_shard_ns() : 0;
	filter_msg_confirm(fm);
	if (prof) {
		prof->ns[FILTER_PROF_CONFIRM] += filter_shard_ns() - t1;
		t1 = filter_shard_ns();
	}
	filter_eval_html_part(fm, false);
	filter_eval_run(fm);
	if (prof) {
		prof->ns[FILTER_PROF_EVAL] += filter_shard_ns() - t1;
		t1 = filter_shard_ns();
	}
	for (uint32_t i = db->first_meta; i < db->nrules; i++) {
		const struct filter_rule *ru = &db->rules[i];

		if (ru->kind == RULES_KIND_META && filter_meta_eval(ru->meta, ru->nmeta, fm->hits, fm->cnt) != 0)
			filter_bit_set(fm->hits, i);
	}
	for (uint32_t i = 0; i < db->nrules; i++) {
		const struct filter_rule *ru = &db->rules[i];

		if (!filter_bit(fm->hits, i) || (ru->flags & RULES_RF_SUBRULE) || ru->kind == RULES_KIND_OFF)
			continue;
		v->score_milli += ru->score_milli;
		v->nhits++;
		if (nshown < sizeof(shown) / sizeof(shown[0]))
			shown[nshown++] = i;
	}
	qsort_r(shown, nshown, sizeof(shown[0]), filter_msg_cmp_name, db);
	for (unsigned k = 0; k < nshown; k++) {
		const char *name = db->rules[shown[k]].name;
		size_t n = strlen(name) + (k ? 1 : 0);

		if (off + n + 4 >= sizeof(v->hits)) {
			memcpy(v->hits + off, k ? ",..." : "...", k ? 5 : 4);
			off += k ? 4 : 3;
			break;
		}
		if (k)
			v->hits[off++] = ',';
		memcpy(v->hits + off, name, strlen(name));
		off += strlen(name);
	}
	v->hits[off] = '\0';
	v->anomaly_mask = fm->anomaly_mask;
	v->anomalies = fm->anomaly_mask != 0;
	v->pcre_capped = fm->pcre_capped;
	if (fm->pcre_capped && fm->capped_rule < db->nrules)
		snprintf(v->capped_rule, sizeof(v->capped_rule), "%s", db->rules[fm->capped_rule].name);
	if (prof) {
		prof->ns[FILTER_PROF_META] += filter_shard_ns() - t1;
		prof->ns[FILTER_PROF_TOTAL] += filter_shard_ns() - t0;
	}
}

void filter_msg_free(struct filter_msg **fmp)
{
	struct filter_msg *fm = *fmp;
	struct filter_shard *fs;

	if (!fm)
		return;
	*fmp = NULL;
	fs = fm->fs;
	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++)
		if (fm->st[c]) {
			hs_close_stream(fm->st[c], NULL, NULL, NULL);
			fm->st[c] = NULL;
		}
	filter_db_unref(&fm->db);
#ifdef SLUICE_FILTER_HAVE_MIME
	mime_parser_reset(fm->mp);
#endif
	if (fs->nfree >= FILTER_MSG_POOL || fm->oom) {
		filter_msg_destroy(fm);
		return;
	}
	fm->next = fs->free_list;
	fs->free_list = fm;
	fs->nfree++;
}
