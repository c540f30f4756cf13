/*
 * fuzz_spool_event.c - the event log's readers of bytes from disk (spool_event.h), which after a
 * crash or a bad disk may be anything: the record decoder, the TLV finder, and the agent's reader
 * walking files of records.
 *
 * The first input byte picks a mode:
 *   even: the input is raw bytes given to the decoder and the TLV finder (never a crash or an
 *         over-read; what decodes lies inside the input and encodes back to the same bytes);
 *   odd:  the input is cut into pieces that become records with valid checksums in one or two
 *         event files (so the fuzzer gets past them), a few bytes are then flipped or a file cut,
 *         and a reader walks them: it never crashes, returns sequence numbers that only go up
 *         and never past its limit, and without damage returns every event in order.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool/spool_event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)
#define MAX_EVENTS 48

static void raw_mode(const uint8_t *p, size_t len)
{
	/* A copy of exactly len bytes, so ASan sees any over-read. */
	uint8_t *c = malloc(len ? len : 1);
	struct spool_evinfo ev;
	struct slice v;
	int r;

	CHECK(c);
	memcpy(c, p, len);
	r = spool_event_decode(c, len, &ev);
	CHECK(r == 0 || r == -ENODATA || r == -EAGAIN || r == -EBADMSG);
	if (r == 0) {
		uint8_t *re;

		CHECK(ev.rec_len == spool_event_size(ev.len) && ev.rec_len <= len);
		CHECK(ev.payload == c + SPOOL_EVENT_HDR);
		re = calloc(1, ev.rec_len);
		CHECK(re);
		CHECK(spool_event_encode(re, ev.type, ev.flags, ev.shard, ev.seq, ev.qid, ev.wall_ms,
					 ev.payload, ev.len, NULL, 0) == ev.rec_len);
		CHECK(memcmp(re, c, SPOOL_EVENT_HDR + ev.len) == 0);
		free(re);
		for (uint16_t tag = 0; tag <= SPOOL_ETLV_SIZE + 1; tag++)
			if (spool_event_tlv_find(ev.payload, ev.len, tag, &v) == 0)
				CHECK((const uint8_t *)v.p >= ev.payload &&
				      (const uint8_t *)v.p + v.len <= ev.payload + ev.len);
	}
	for (uint16_t tag = 0; tag <= SPOOL_ETLV_SIZE + 1; tag++)
		if (spool_event_tlv_find(c, len, tag, &v) == 0)
			CHECK((const uint8_t *)v.p >= c && (const uint8_t *)v.p + v.len <= c + len);
	free(c);
}

/* One shard directory, made once: every run writes its files there again. */
static const char *shard_dir(void)
{
	static char dir[] = "/tmp/fuzz-spool-event-XXXXXX";
	static bool made;

	if (!made) {
		CHECK(mkdtemp(dir) != NULL);
		made = true;
	}
	return dir;
}

static void write_file(const char *dir, uint32_t n, const uint8_t *p, size_t len)
{
	char name[32], path[128];
	int fd;

	spool_event_file_name(name, n);
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, p, len) == (ssize_t)len);
	close(fd);
}

static void clear_files(const char *dir)
{
	char name[32], path[128];

	for (uint32_t n = 1; n <= 2; n++) {
		spool_event_file_name(name, n);
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		(void)unlink(path);
	}
}

static void file_mode(const uint8_t *p, size_t len)
{
	/* Layout: [flips u8] [cut u16] [split u8] [limit u8] then pieces: [type u8][len u8][bytes].
	 * Events get seq 1, 2, ...; file 1 holds those before split, file 2 the rest. */
	const char *dir = shard_dir();
	uint8_t *f[2] = { NULL, NULL };
	size_t flen[2] = { 0, 0 }, cap[2] = { 0, 0 }, pos = 5;
	uint32_t nev = 0;
	uint8_t flips, split, limit;
	uint16_t cut;
	bool damaged;
	struct spool_evreader rd;
	struct spool_evinfo ev;
	uint64_t last = 0, seen = 0;
	int r;

	if (len < pos)
		return;
	flips = p[0] & 3;
	cut = (uint16_t)(p[1] | p[2] << 8);
	split = p[3];
	limit = p[4];
	for (int i = 0; i < 2; i++) {
		/* Each file begins with its FILE record: the last seq before it. */
		cap[i] = 4096;
		f[i] = calloc(1, cap[i]);
		CHECK(f[i]);
	}
	flen[0] = spool_event_encode(f[0], SPOOL_EVT_FILE, 0, 3, 0, 0, 0, NULL, 0, NULL, 0);
	while (pos + 2 <= len && nev < MAX_EVENTS) {
		unsigned type = SPOOL_EVT_VOID + p[pos] % (SPOOL_EVT_NTYPES - SPOOL_EVT_VOID);
		size_t pl = p[pos + 1], need;
		int which;

		pos += 2;
		if (pl > len - pos)
			break;
		if (nev == split && flen[1] == 0)
			flen[1] = spool_event_encode(f[1], SPOOL_EVT_FILE, 0, 3, nev, 0, 0, NULL, 0,
						     NULL, 0);
		which = flen[1] ? 1 : 0;
		need = flen[which] + spool_event_size(pl) + SPOOL_EVENT_HDR;
		if (need > cap[which]) {
			cap[which] = need * 2;
			f[which] = realloc(f[which], cap[which]);
			CHECK(f[which]);
		}
		flen[which] += spool_event_encode(f[which] + flen[which], type, 0, 3, nev + 1,
						  1000 + nev, 0, p + pos, pl, NULL, 0);
		pos += pl;
		nev++;
	}
	/* The end mark: 48 zero bytes, as a preallocated file has. */
	for (int i = 0; i < 2; i++) {
		memset(f[i] + flen[i], 0, SPOOL_EVENT_HDR);
		flen[i] += SPOOL_EVENT_HDR;
	}
	for (uint8_t i = 0; i < flips && pos + 3 <= len; i++, pos += 3) {
		int which = p[pos] & 1;

		f[which][(p[pos + 1] | p[pos + 2] << 8) % flen[which]] ^= 0x5a;
	}
	damaged = flips || (cut && cut < flen[0]);
	if (cut && cut < flen[0])
		flen[0] = cut;

	clear_files(dir);
	write_file(dir, 1, f[0], flen[0]);
	if (flen[1] > SPOOL_EVENT_HDR)
		write_file(dir, 2, f[1], flen[1]);
	CHECK(spool_evreader_open(&rd, dir, 0, 0, 0) == 0);
	/* A limit below the count stops there; the reader must never hand out more. */
	for (int steps = 0; steps < 4 * MAX_EVENTS + 8; steps++) {
		r = spool_evreader_next(&rd, limit ? limit : UINT64_MAX, &ev);
		CHECK(r == 0 || r == 1 || r < 0);
		if (r != 1)
			break;
		CHECK(ev.seq > last && ev.type != SPOOL_EVT_FILE);
		CHECK(!limit || ev.seq <= limit);
		CHECK(ev.len <= SPOOL_EVENT_MAX);
		if (!damaged) {
			CHECK(ev.seq == last + 1 && ev.qid == 1000 + last && ev.shard == 3);
		}
		last = ev.seq;
		seen++;
	}
	if (!damaged) {
		uint64_t want = limit && limit < nev ? limit : nev;

		CHECK(seen == want);
	}
	spool_evreader_close(&rd);
	free(f[0]);
	free(f[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		file_mode(data + 1, size - 1);
	else
		raw_mode(data + 1, size - 1);
	return 0;
}
