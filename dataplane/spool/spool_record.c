/*
 * spool_record.c - encoders and decoders of the spool's on-disk records (format in
 * spool_record.h). Pure functions: no I/O, no allocation, any thread. Decoders never trust a
 * length before checking it against what is available.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "spool_record.h"

static inline void put16(uint8_t *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static inline void put32(uint8_t *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static inline void put64(uint8_t *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static inline uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static inline uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static inline uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

void spool_record_hdr_encode(uint8_t out[SPOOL_RECORD_HDR_SIZE], spool_qid qid, uint16_t flags,
			     uint64_t body_len, uint32_t env_len, uint64_t received_ns,
			     uint64_t payload_sum)
{
	memset(out, 0, SPOOL_RECORD_HDR_SIZE);
	put32(out + 0, SPOOL_RECORD_MAGIC);
	out[4] = SPOOL_RECORD_VERSION;
	out[5] = SPOOL_RECORD_HDR_SIZE;
	put16(out + 6, flags);
	put64(out + 8, body_len);
	put32(out + 16, env_len);
	put64(out + 24, qid);
	put64(out + 32, received_ns);
	put64(out + 40, payload_sum);
	put64(out + 56, XXH3_64bits(out, 56));
}

static uint64_t seal_of(const uint8_t *hdr, uint64_t key)
{
	return XXH3_64bits_withSeed(hdr, 48, key);
}

void spool_record_hdr_set_evseq(uint8_t hdr[SPOOL_RECORD_HDR_SIZE], uint32_t seq32)
{
	put32(hdr + 20, seq32);
	put64(hdr + 56, XXH3_64bits(hdr, 56));
}

void spool_record_hdr_seal(uint8_t hdr[SPOOL_RECORD_HDR_SIZE], uint64_t key)
{
	put64(hdr + 48, seal_of(hdr, key));
	put64(hdr + 56, XXH3_64bits(hdr, 56));
}

bool spool_record_seal_ok(const void *hdr, uint64_t key)
{
	return get64((const uint8_t *)hdr + 48) == seal_of(hdr, key);
}

int spool_record_hdr_decode(const void *p, size_t len, struct spool_record_info *info_r)
{
	const uint8_t *b = p;
	uint8_t hsz;

	if (len < SPOOL_RECORD_HDR_SIZE)
		return all_zero(b, len) ? -ENODATA : -EAGAIN;
	if (get32(b) != SPOOL_RECORD_MAGIC)
		return all_zero(b, SPOOL_RECORD_HDR_SIZE) ? -ENODATA : -EBADMSG;
	hsz = b[5];
	/* A later version may have a longer header; this reader only knows version 1's. */
	if (b[4] != SPOOL_RECORD_VERSION || hsz != SPOOL_RECORD_HDR_SIZE)
		return -EBADMSG;
	if (get64(b + 56) != XXH3_64bits(b, 56))
		return -EBADMSG;
	info_r->flags = get16(b + 6);
	info_r->hdr_size = hsz;
	info_r->body_len = get64(b + 8);
	info_r->env_len = get32(b + 16);
	info_r->qid = get64(b + 24);
	info_r->received_ns = get64(b + 32);
	info_r->payload_sum = get64(b + 40);
	info_r->seal = get64(b + 48);
	info_r->ev_seq32 = get32(b + 20);
	if (info_r->body_len > SPOOL_RECORD_BODY_MAX || info_r->env_len > SPOOL_RECORD_ENV_MAX)
		return -EBADMSG;
	info_r->rec_len = spool_record_align(hsz + info_r->body_len + info_r->env_len);
	return 0;
}

uint64_t spool_record_payload_sum(const void *body, size_t body_len, const void *env,
				  size_t env_len)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, body, body_len);
	XXH3_64bits_update(&st, env, env_len);
	return XXH3_64bits_digest(&st);
}

int spool_record_payload_check(const struct spool_record_info *info, const void *p, size_t len)
{
	const uint8_t *b = p;

	if (len < info->body_len + info->env_len)
		return -EAGAIN;
	if (spool_record_payload_sum(b, info->body_len, b + info->body_len, info->env_len) !=
	    info->payload_sum)
		return -EBADMSG;
	return 0;
}

/* ---- Envelope TLVs ---- */

static size_t tlv_len(size_t n) { return SPOOL_TLV_HDR + n; }

size_t spool_record_env_size(const struct spool_envelope *env)
{
	size_t n = 0;

	n += 3 * tlv_len(1);                       /* role, body type, flags */
	n += tlv_len(env->mail_from.len);
	for (uint32_t i = 0; i < env->nrcpt; i++)
		n += tlv_len(env->rcpts[i].len);
	n += tlv_len(env->helo.len) + tlv_len(env->client_addr.len) +
	     tlv_len(env->client_name.len) + tlv_len(env->listener.len) +
	     tlv_len(env->tls_info.len) + tlv_len(env->session_id.len) +
	     tlv_len(env->rules_hit.len);
	n += tlv_len(8) + tlv_len(4) + tlv_len(1) + tlv_len(4);   /* received, score, action, flags */
	return n;
}

static uint8_t *tlv_put(uint8_t *o, uint16_t tag, const void *v, size_t len)
{
	put16(o, tag);
	put32(o + 2, (uint32_t)len);
	if (len)
		memcpy(o + SPOOL_TLV_HDR, v, len);
	return o + SPOOL_TLV_HDR + len;
}

static uint8_t *tlv_slice(uint8_t *o, uint16_t tag, struct slice s)
{
	return tlv_put(o, tag, s.p, s.len);
}

size_t spool_record_env_encode(const struct spool_envelope *env, uint8_t *out)
{
	uint8_t *o = out;
	uint8_t u8, tmp[8];

	o = tlv_put(o, SPOOL_TLV_ROLE, &env->role, 1);
	o = tlv_put(o, SPOOL_TLV_BODY_TYPE, &env->body_type, 1);
	u8 = (uint8_t)((env->smtputf8 ? 1 : 0) | (env->tls ? 2 : 0));
	o = tlv_put(o, SPOOL_TLV_FLAGS, &u8, 1);
	o = tlv_slice(o, SPOOL_TLV_MAIL_FROM, env->mail_from);
	for (uint32_t i = 0; i < env->nrcpt; i++)
		o = tlv_slice(o, SPOOL_TLV_RCPT, env->rcpts[i]);
	o = tlv_slice(o, SPOOL_TLV_HELO, env->helo);
	o = tlv_slice(o, SPOOL_TLV_CLIENT_ADDR, env->client_addr);
	o = tlv_slice(o, SPOOL_TLV_CLIENT_NAME, env->client_name);
	o = tlv_slice(o, SPOOL_TLV_LISTENER, env->listener);
	o = tlv_slice(o, SPOOL_TLV_TLS_INFO, env->tls_info);
	o = tlv_slice(o, SPOOL_TLV_SESSION_ID, env->session_id);
	put64(tmp, env->received_ns);
	o = tlv_put(o, SPOOL_TLV_RECEIVED_NS, tmp, 8);
	put32(tmp, (uint32_t)env->score_milli);
	o = tlv_put(o, SPOOL_TLV_SCORE_MILLI, tmp, 4);
	o = tlv_put(o, SPOOL_TLV_ACTION, &env->action, 1);
	o = tlv_slice(o, SPOOL_TLV_RULES_HIT, env->rules_hit);
	put32(tmp, env->data_flags);
	o = tlv_put(o, SPOOL_TLV_DATA_FLAGS, tmp, 4);
	return (size_t)(o - out);
}

int spool_record_env_decode(const void *p, size_t len, struct spool_envelope *env_r,
			    struct slice *rcpts, uint32_t rcpt_cap, uint32_t *nrcpt_r)
{
	const uint8_t *b = p;
	size_t pos = 0;
	uint32_t nrcpt = 0;

	memset(env_r, 0, sizeof(*env_r));
	env_r->rcpts = rcpts;
	while (pos < len) {
		uint16_t tag;
		uint32_t vlen;
		const uint8_t *v;
		struct slice s;

		if (len - pos < SPOOL_TLV_HDR)
			return -EBADMSG;
		tag = get16(b + pos);
		vlen = get32(b + pos + 2);
		pos += SPOOL_TLV_HDR;
		if (vlen > len - pos)
			return -EBADMSG;
		v = b + pos;
		pos += vlen;
		s = (struct slice){ (const char *)v, vlen };

		switch (tag) {
		case SPOOL_TLV_ROLE:
		case SPOOL_TLV_BODY_TYPE:
		case SPOOL_TLV_FLAGS:
		case SPOOL_TLV_ACTION:
			if (vlen != 1)
				return -EBADMSG;
			if (tag == SPOOL_TLV_ROLE)
				env_r->role = v[0];
			else if (tag == SPOOL_TLV_BODY_TYPE)
				env_r->body_type = v[0];
			else if (tag == SPOOL_TLV_ACTION)
				env_r->action = v[0];
			else {
				env_r->smtputf8 = v[0] & 1;
				env_r->tls = (v[0] & 2) != 0;
			}
			break;
		case SPOOL_TLV_RECEIVED_NS:
			if (vlen != 8)
				return -EBADMSG;
			env_r->received_ns = get64(v);
			break;
		case SPOOL_TLV_SCORE_MILLI:
		case SPOOL_TLV_DATA_FLAGS:
			if (vlen != 4)
				return -EBADMSG;
			if (tag == SPOOL_TLV_SCORE_MILLI)
				env_r->score_milli = (int32_t)get32(v);
			else
				env_r->data_flags = get32(v);
			break;
		case SPOOL_TLV_MAIL_FROM:   env_r->mail_from = s; break;
		case SPOOL_TLV_HELO:        env_r->helo = s; break;
		case SPOOL_TLV_CLIENT_ADDR: env_r->client_addr = s; break;
		case SPOOL_TLV_CLIENT_NAME: env_r->client_name = s; break;
		case SPOOL_TLV_LISTENER:    env_r->listener = s; break;
		case SPOOL_TLV_TLS_INFO:    env_r->tls_info = s; break;
		case SPOOL_TLV_SESSION_ID:  env_r->session_id = s; break;
		case SPOOL_TLV_RULES_HIT:   env_r->rules_hit = s; break;
		case SPOOL_TLV_RCPT:
			if (nrcpt < rcpt_cap)
				rcpts[nrcpt] = s;
			if (nrcpt == UINT32_MAX)
				return -EBADMSG;
			nrcpt++;
			break;
		default:
			break;   /* a later version's field: skip it */
		}
	}
	*nrcpt_r = nrcpt;
	env_r->nrcpt = nrcpt < rcpt_cap ? nrcpt : rcpt_cap;
	return 0;
}

/* ---- Message-ID (RFC 5322 section 3.6.4; header fields and folding: section 2.2) ---- */

/* Returns the end of the line starting at i (the index of its LF, or len). */
static size_t line_end(const uint8_t *b, size_t i, size_t len)
{
	const uint8_t *nl = memchr(b + i, '\n', len - i);

	return nl ? (size_t)(nl - b) : len;
}

int spool_record_message_id(const void *body, size_t len, struct slice *id_r)
{
	static const char name[] = "message-id:";
	const uint8_t *b = body;
	size_t i = 0;

	while (i < len) {
		size_t e = line_end(b, i, len);
		size_t ll = e - i;

		if (ll > 0 && b[e - 1] == '\r' && e - 1 >= i)
			ll--;
		if (ll == 0)
			return -ENOENT;   /* the empty line: end of the header section */
		if (ll >= sizeof(name) - 1 && strncasecmp((const char *)b + i, name,
							  sizeof(name) - 1) == 0) {
			size_t vs = i + sizeof(name) - 1, ve = i + ll;

			/* Continuation lines start with white space. */
			while (e < len) {
				size_t n = e + 1, ne;

				if (n >= len || (b[n] != ' ' && b[n] != '\t'))
					break;
				ne = line_end(b, n, len);
				ve = ne;
				if (ve > n && b[ve - 1] == '\r')
					ve--;
				e = ne;
			}
			while (vs < ve && (b[vs] == ' ' || b[vs] == '\t' || b[vs] == '\r' ||
					   b[vs] == '\n'))
				vs++;
			while (ve > vs && (b[ve - 1] == ' ' || b[ve - 1] == '\t' ||
					   b[ve - 1] == '\r' || b[ve - 1] == '\n'))
				ve--;
			if (ve == vs)
				return -ENOENT;
			*id_r = (struct slice){ (const char *)b + vs, ve - vs };
			return 0;
		}
		i = e + 1;
	}
	return -ENOENT;
}

/* ---- Journal records ---- */

void spool_record_jrec_encode(uint8_t out[SPOOL_JREC_SIZE], const struct spool_jrec *j)
{
	memset(out, 0, SPOOL_JREC_SIZE);
	put32(out, SPOOL_JREC_MAGIC);
	out[4] = j->event;
	out[5] = SPOOL_JREC_VERSION;
	put64(out + 8, j->qid);
	put64(out + 16, j->arg);
	put64(out + 24, XXH3_64bits(out, 24));
}

int spool_record_jrec_decode(const void *p, size_t len, struct spool_jrec *j_r)
{
	const uint8_t *b = p;

	if (len < SPOOL_JREC_SIZE)
		return all_zero(b, len) ? -ENODATA : -EAGAIN;
	if (get32(b) != SPOOL_JREC_MAGIC)
		return all_zero(b, SPOOL_JREC_SIZE) ? -ENODATA : -EBADMSG;
	if (b[5] != SPOOL_JREC_VERSION || get64(b + 24) != XXH3_64bits(b, 24))
		return -EBADMSG;
	j_r->event = b[4];
	j_r->text = NULL;
	j_r->text_len = j_r->attempts = 0;
	j_r->qid = get64(b + 8);
	j_r->arg = get64(b + 16);
	return 0;
}

/* ---- Deferral details (DEFER_INFO + text blocks) ---- */

size_t spool_record_jtext_size(size_t text_len)
{
	if (text_len > SPOOL_JTEXT_MAX)
		text_len = SPOOL_JTEXT_MAX;
	return SPOOL_JREC_SIZE + (text_len + SPOOL_JREC_SIZE - 1) / SPOOL_JREC_SIZE *
	       SPOOL_JREC_SIZE;
}

size_t spool_record_jtext_encode(uint8_t *out, spool_qid qid, uint32_t attempts,
				 const char *text, size_t text_len)
{
	size_t total = spool_record_jtext_size(text_len);
	uint8_t *t = out + SPOOL_JREC_SIZE;
	struct spool_jrec j = { .event = SPOOL_JEV_DEFER_INFO, .qid = qid };

	if (text_len > SPOOL_JTEXT_MAX)
		text_len = SPOOL_JTEXT_MAX;
	memset(t, 0, total - SPOOL_JREC_SIZE);
	for (size_t i = 0; i < text_len; i++) {
		unsigned char c = (unsigned char)text[i];

		t[i] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	j.arg = (uint64_t)text_len | (uint64_t)(attempts > 0xffff ? 0xffff : attempts) << 16 |
		(uint64_t)(uint32_t)XXH3_64bits(t, text_len) << 32;
	spool_record_jrec_encode(out, &j);
	return total;
}

size_t spool_record_jtext_blocks(const struct spool_jrec *j)
{
	size_t n = (size_t)(j->arg & 0xffff);

	return (n + SPOOL_JREC_SIZE - 1) / SPOOL_JREC_SIZE * SPOOL_JREC_SIZE;
}

int spool_record_jtext_check(struct spool_jrec *j, const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t n = (size_t)(j->arg & 0xffff), blocks = spool_record_jtext_blocks(j);

	if (n > SPOOL_JTEXT_MAX)
		return -EBADMSG;
	if (len < blocks)
		return -EAGAIN;
	for (size_t i = 0; i < n; i++)
		if (b[i] < 0x20 || b[i] >= 0x7f)
			return -EBADMSG;
	if ((uint32_t)XXH3_64bits(b, n) != (uint32_t)(j->arg >> 32))
		return -EBADMSG;
	j->text = (const char *)b;
	j->text_len = (uint32_t)n;
	j->attempts = (uint32_t)((j->arg >> 16) & 0xffff);
	return 0;
}
