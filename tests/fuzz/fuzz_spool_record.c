/*
 * fuzz_spool_record.c - the spool's readers of bytes from disk, which after a crash or a bad
 * disk may be anything: the record header, payload and TLV envelope decoders, the Message-ID
 * finder, the journal record decoder, and the segment and journal scanners over a file.
 *
 * The first input byte picks a mode:
 *   even: the input is raw bytes given to every decoder (must never crash or over-read; a
 *         decoded envelope re-encodes to one that decodes to the same fields);
 *   odd:  the input is cut into pieces that become records with valid checksums (so the fuzzer
 *         gets past them), a few bytes are then flipped or the file cut, and the scanners run
 *         over it in a memfd: they must never crash, and without damage must see every record.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "spool/spool_impl.h"
#include "spool/spool_record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static bool slice_same(struct slice a, struct slice b)
{
	return a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len));
}

static void env_roundtrip(const uint8_t *p, size_t len)
{
	struct spool_envelope env, env2;
	struct slice rc[8], rc2[8];
	uint32_t n = 0, n2 = 0;
	uint8_t *buf;
	size_t sz;

	if (spool_record_env_decode(p, len, &env, rc, 8, &n) < 0)
		return;
	CHECK(env.nrcpt <= 8 && env.nrcpt <= n);
	sz = spool_record_env_size(&env);
	buf = malloc(sz ? sz : 1);
	CHECK(buf);
	CHECK(spool_record_env_encode(&env, buf) == sz);
	CHECK(spool_record_env_decode(buf, sz, &env2, rc2, 8, &n2) == 0);
	CHECK(n2 == env.nrcpt);
	CHECK(env2.role == env.role && env2.body_type == env.body_type);
	CHECK(env2.smtputf8 == env.smtputf8 && env2.tls == env.tls);
	CHECK(env2.received_ns == env.received_ns && env2.score_milli == env.score_milli);
	CHECK(env2.action == env.action && env2.data_flags == env.data_flags);
	CHECK(slice_same(env2.mail_from, env.mail_from) && slice_same(env2.helo, env.helo));
	CHECK(slice_same(env2.session_id, env.session_id));
	for (uint32_t i = 0; i < n2; i++)
		CHECK(slice_same(rc2[i], rc[i]));
	free(buf);
}

static void raw_mode(const uint8_t *p, size_t len)
{
	struct spool_record_info info;
	struct spool_jrec j;
	struct slice id;
	/* Copies of exactly len bytes, so ASan sees any over-read. */
	uint8_t *c = malloc(len ? len : 1);

	CHECK(c);
	memcpy(c, p, len);
	if (spool_record_hdr_decode(c, len, &info) == 0) {
		CHECK(info.rec_len >= SPOOL_RECORD_HDR_SIZE + info.body_len + info.env_len);
		(void)spool_record_payload_check(&info, c + SPOOL_RECORD_HDR_SIZE,
						 len - SPOOL_RECORD_HDR_SIZE);
	}
	env_roundtrip(c, len);
	if (spool_record_message_id(c, len, &id) == 0)
		CHECK(id.len > 0 && (const uint8_t *)id.p >= c && (const uint8_t *)id.p + id.len <= c + len);
	for (size_t o = 0; o + SPOOL_JREC_SIZE <= len; o += SPOOL_JREC_SIZE)
		if (spool_record_jrec_decode(c + o, len - o, &j) == 0 &&
		    spool_record_jtext_check(&j, c + o + SPOOL_JREC_SIZE,
					     len - o - SPOOL_JREC_SIZE) == 0)
			CHECK(j.text_len <= SPOOL_JTEXT_MAX &&
			      (const uint8_t *)j.text + j.text_len <= c + len);
	(void)spool_record_jrec_decode(c, len, &j);
	free(c);
}

struct scan_ctx {
	uint32_t seen;
};

static int on_rec(void *arg, const struct spool_record_info *info, uint64_t off,
		  const uint8_t *payload)
{
	struct scan_ctx *s = arg;
	struct spool_entry e;

	if (spool_entry_build(&e, info, payload) == 0)
		spool_entry_free(&e);
	s->seen++;
	(void)off;
	return 0;
}

static int on_jrec(void *arg, const struct spool_jrec *j)
{
	(void)j;
	((struct scan_ctx *)arg)->seen++;
	return 0;
}

static void scan_mode(const uint8_t *p, size_t len)
{
	/* Layout of the input: [flips u8] [cut u16] then pieces: [blen u8][elen u8][bytes...]. */
	uint8_t *file = NULL;
	size_t flen = 0, pos = 3, cap = 0;
	uint32_t nrec = 0;
	uint8_t flips;
	uint16_t cut;
	const uint64_t key = 0x5eed5eed5eed5eedull;
	bool damaged;
	struct spool_segscan r;
	struct scan_ctx s = { 0 };
	int fd;

	if (len < 3)
		return;
	flips = p[0] & 3;
	cut = (uint16_t)(p[1] | p[2] << 8);
	while (pos + 2 <= len && nrec < 64) {
		size_t bl = p[pos], el = p[pos + 1], need;
		uint64_t rl;

		pos += 2;
		if (bl + el > len - pos)
			break;
		rl = spool_record_align(SPOOL_RECORD_HDR_SIZE + bl + el);
		need = flen + rl;
		if (need > cap) {
			cap = need * 2;
			file = realloc(file, cap);
			CHECK(file);
		}
		memset(file + flen, 0, rl);
		memcpy(file + flen + SPOOL_RECORD_HDR_SIZE, p + pos, bl + el);
		spool_record_hdr_encode(file + flen, spool_qid_make(1, 7, flen), 0, bl, (uint32_t)el,
					0, spool_record_payload_sum(p + pos, bl, p + pos + bl, el));
		spool_record_hdr_seal(file + flen, key);
		pos += bl + el;
		flen += rl;
		nrec++;
	}
	/* Damage: flip a few bytes at positions taken from the rest of the input, then maybe cut. */
	for (uint8_t i = 0; i < flips && pos + 2 <= len && flen; i++, pos += 2)
		file[(p[pos] | p[pos + 1] << 8) % flen] ^= 0x5a;
	damaged = flips || (cut && cut < flen);
	if (cut && cut < flen)
		flen = cut;
	fd = memfd_create("seg", 0);
	CHECK(fd >= 0);
	CHECK(write(fd, file ? file : (uint8_t *)"", flen) == (ssize_t)flen);
	CHECK(spool_segscan(fd, 1, 7, true, on_rec, &s, &r) == 0);
	CHECK(r.good_end <= flen && s.seen == r.records);
	if (!damaged)
		CHECK(s.seen == nrec && !r.torn_bytes && !r.skipped);
	/* Again searching past damage for sealed records: never more than were written, and
	 * every damaged range lies inside the file. */
	memset(&s, 0, sizeof(s));
	CHECK(spool_segscan_sealed(fd, 1, 7, true, &key, on_rec, &s, &r) == 0);
	CHECK(r.good_end <= flen && s.seen == r.records && s.seen <= nrec);
	for (uint32_t i = 0; i < r.ndamage; i++)
		CHECK(r.damage[i].len > 0 && r.damage[i].off + r.damage[i].len <= flen);
	if (!damaged)
		CHECK(s.seen == nrec && !r.torn_bytes && !r.skipped);
	/* The same bytes as a journal. */
	memset(&s, 0, sizeof(s));
	CHECK(spool_jscan(fd, on_jrec, &s, &r) == 0);
	CHECK(r.good_end <= flen);
	close(fd);
	free(file);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		scan_mode(data + 1, size - 1);
	else
		raw_mode(data + 1, size - 1);
	return 0;
}
