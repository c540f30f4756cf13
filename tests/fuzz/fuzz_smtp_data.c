/*
 * fuzz_smtp_data.c - libFuzzer target for smtp_data.c, the DATA/BDAT body decoder.
 *
 * Input: byte 0 picks the mode (DOT or BDAT, with or without smtp_data_finish) and byte 1 seeds
 * the split points; the rest is the body stream. It is decoded whole (one call) and cut at split
 * points drawn from the input; both must give identical output, flags, counters, end-of-data
 * position. Per call: used <= len, not done means everything used, output within
 * SMTP_DATA_OUT_MAX(len) (BDAT: 2 * len). Overall: the output never holds a bare CR or bare LF,
 * and is at most 2 * the input. Finally both are compared against a deliberately plain,
 * non-streaming model of the rules in smtp_data.h (kept apart from the unit test's copy on
 * purpose: each file stands alone).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_data.h"
#include "smtp/smtp_limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) abort(); } while (0)

struct result {
	uint8_t *out;
	size_t   out_len, used;
	bool     done;
	unsigned flags;
	uint32_t bare_lf, bare_cr, long_lines;
};

static void decode(enum smtp_data_mode mode, bool finish, const uint8_t *in, size_t len,
		   bool whole, uint32_t seed, struct result *r)
{
	struct smtp_data d;
	size_t pos = 0;

	smtp_data_init(&d, mode);
	r->out = malloc(SMTP_DATA_OUT_MAX(len) + 2);
	r->out_len = 0;
	r->done = false;
	do {
		size_t n = len - pos;
		if (!whole) {
			seed = seed * 1103515245u + 12345u + (pos < len ? in[pos] : 0);
			n = (seed >> 16) % 48;   /* 0 too: an empty call must be harmless */
			if (n > len - pos)
				n = len - pos;
		}
		uint8_t *chunk = malloc(n ? n : 1);   /* private copies: ASan sees overruns */
		uint8_t *out = malloc(SMTP_DATA_OUT_MAX(n));
		memcpy(chunk, in + pos, n);
		size_t olen = (size_t)-1;
		bool done = false;
		size_t used = smtp_data_decode(&d, chunk, n, out, &olen, &done);
		CHECK(used <= n);
		CHECK(done || used == n);
		CHECK(olen <= SMTP_DATA_OUT_MAX(n));
		if (mode == SMTP_DATA_BDAT)
			CHECK(!done && olen <= 2 * n);
		memcpy(r->out + r->out_len, out, olen);
		r->out_len += olen;
		pos += used;
		r->done = done;
		free(chunk);
		free(out);
	} while (pos < len && !r->done);
	if (finish) {
		uint8_t tail[2];
		size_t k = smtp_data_finish(&d, tail);
		CHECK(k <= 2);
		memcpy(r->out + r->out_len, tail, k);
		r->out_len += k;
	}
	r->used = pos;
	r->flags = d.flags;
	r->bare_lf = d.bare_lf;
	r->bare_cr = d.bare_cr;
	r->long_lines = d.long_lines;
	CHECK(d.in_bytes == pos && d.out_bytes == r->out_len);
}

/* The rules of smtp_data.h the plain way, with look-ahead over the whole input. */
static void model(enum smtp_data_mode mode, bool finish, const uint8_t *in, size_t len,
		  struct result *m)
{
	size_t pos = 0;
	bool bol = mode == SMTP_DATA_DOT, pending_cr = false, pending_dot_cr = false;

	memset(m, 0, sizeof(*m));
	m->out = malloc(2 * len + 2);
#define EMIT(c) (m->out[m->out_len++] = (uint8_t)(c))
	while (pos < len) {
		if (bol) {
			bol = false;
			if (in[pos] == '.') {
				if (pos + 1 == len) {
					pos++;
					break;
				}
				if (in[pos + 1] == '\r') {
					if (pos + 2 == len) {
						pos += 2;
						pending_dot_cr = true;
						break;
					}
					if (in[pos + 2] == '\n') {
						pos += 3;
						m->done = true;
						break;
					}
					EMIT('\r');
					EMIT('\n');
					m->bare_cr++;
					pos += 2;
					continue;
				}
				pos++;
				continue;
			}
		}
		uint8_t c = in[pos];
		if (c == '\r') {
			EMIT('\r');
			EMIT('\n');
			if (pos + 1 == len) {
				pos++;
				pending_cr = true;
				break;
			}
			if (in[pos + 1] == '\n') {
				pos += 2;
				bol = mode == SMTP_DATA_DOT;
				continue;
			}
			m->bare_cr++;
			pos++;
			continue;
		}
		if (c == '\n') {
			EMIT('\r');
			EMIT('\n');
			m->bare_lf++;
			pos++;
			continue;
		}
		if (c == 0)
			m->flags |= SMTP_DATA_F_NUL;
		if (c >= 0x80)
			m->flags |= SMTP_DATA_F_8BIT;
		EMIT(c);
		pos++;
	}
	if (finish) {
		if (pending_cr)
			m->bare_cr++;
		if (pending_dot_cr) {
			EMIT('\r');
			EMIT('\n');
			m->bare_cr++;
		}
	}
#undef EMIT
	m->used = pos;
	size_t start = 0;
	for (size_t i = 0; i + 1 < m->out_len; i++) {
		if (m->out[i] == '\r' && m->out[i + 1] == '\n') {
			if (i - start > SMTP_TEXT_LINE_MAX - 2)
				m->long_lines++;
			start = i + 2;
			i++;
		}
	}
	if (m->long_lines)
		m->flags |= SMTP_DATA_F_LONG_LINE;
	if (m->out_len - start > SMTP_TEXT_LINE_MAX - 2) {
		m->flags |= SMTP_DATA_F_LONG_LINE;
		if (finish)
			m->long_lines++;
	}
	if (m->bare_lf)
		m->flags |= SMTP_DATA_F_BARE_LF;
	if (m->bare_cr)
		m->flags |= SMTP_DATA_F_BARE_CR;
}

static void same(const struct result *a, const struct result *b)
{
	CHECK(a->out_len == b->out_len);
	CHECK(a->out_len == 0 || memcmp(a->out, b->out, a->out_len) == 0);
	CHECK(a->used == b->used && a->done == b->done && a->flags == b->flags);
	CHECK(a->bare_lf == b->bare_lf && a->bare_cr == b->bare_cr);
	CHECK(a->long_lines == b->long_lines);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	enum smtp_data_mode mode = (data[0] & 1) ? SMTP_DATA_BDAT : SMTP_DATA_DOT;
	bool finish = mode == SMTP_DATA_BDAT && (data[0] & 2);
	uint32_t seed = data[1];
	const uint8_t *in = data + 2;
	size_t len = size - 2;
	struct result whole, split, m;

	decode(mode, finish, in, len, true, seed, &whole);
	decode(mode, finish, in, len, false, seed, &split);
	model(mode, finish, in, len, &m);
	same(&whole, &split);
	same(&whole, &m);

	CHECK(whole.out_len <= 2 * len);
	for (size_t i = 0; i < whole.out_len; i++) {
		if (whole.out[i] == '\r')
			CHECK(i + 1 < whole.out_len && whole.out[i + 1] == '\n');
		if (whole.out[i] == '\n')
			CHECK(i > 0 && whole.out[i - 1] == '\r');
	}
	/* done only where the input really had CR LF "." CR LF (or "." CR LF at the start) */
	if (whole.done) {
		CHECK(whole.used >= 3);
		CHECK(memcmp(in + whole.used - 3, ".\r\n", 3) == 0);
		CHECK(whole.used == 3 || (in[whole.used - 5] == '\r' && in[whole.used - 4] == '\n'));
	}
	free(whole.out);
	free(split.out);
	free(m.out);
	return 0;
}
