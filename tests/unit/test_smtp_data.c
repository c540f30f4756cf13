/*
 * test_smtp_data.c - unit tests for smtp_data.c: the DATA/BDAT body decoder.
 *
 * Table-driven: each case gives the input as the client sends it after "DATA" CR LF (or as the
 * BDAT chunks' concatenation) and the wanted decoded text, end-of-data position, flags and
 * counters. Every case runs whole, one byte at a time, and at random splits (several seeds);
 * each run must give the same answer. The output buffer of each call is allocated with exactly
 * SMTP_DATA_OUT_MAX(len) bytes, so an ASan build catches any write past it.
 *
 * Then a differential test: random inputs over a hostile alphabet (CR, LF, ".", NUL, 8-bit,
 * text) against a deliberately simple, non-streaming model of the rules in smtp_data.h.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_data.h"
#include "smtp/smtp_limits.h"

#define BIN(s) .input = (const uint8_t *)(s), .input_len = sizeof(s) - 1
#define OUT(s) .want_out = (s), .want_out_len = sizeof(s) - 1

struct data_case {
	const char    *label;
	enum smtp_data_mode mode;
	const uint8_t *input;
	size_t         input_len;
	const char    *want_out;
	size_t         want_out_len;
	bool           want_done;
	size_t         want_used;     /* DOT mode with want_done: where the end of data ends */
	unsigned       want_flags;
	uint32_t       want_bare_lf, want_bare_cr, want_long;
	bool           finish;        /* BDAT LAST: call smtp_data_finish at the end */
};

/* Long-line cases are built at run time; these hold them. */
static uint8_t long_in[6][2100];
static char long_out[6][2100];

static const struct data_case data_cases[] = {
	/* --- the ordinary --- */
	{ .label = "empty body", BIN(".\r\n"), OUT(""), .want_done = true },
	{ .label = "one line", BIN("hello\r\n.\r\n"), OUT("hello\r\n"), .want_done = true },
	{ .label = "headers and body", BIN("Subject: x\r\n\r\nbody\r\n.\r\n"),
	  OUT("Subject: x\r\n\r\nbody\r\n"), .want_done = true },
	{ .label = "pipelined QUIT stays unread", BIN("a\r\n.\r\nQUIT\r\n"), OUT("a\r\n"),
	  .want_done = true, .want_used = 6 },
	{ .label = "empty line body", BIN("\r\n.\r\n"), OUT("\r\n"), .want_done = true },
	{ .label = "two empty lines", BIN("\r\n\r\n.\r\n"), OUT("\r\n\r\n"), .want_done = true },
	{ .label = "no end yet", BIN("hello\r\nworld"), OUT("hello\r\nworld") },
	{ .label = "nothing", BIN(""), OUT("") },

	/* --- dot-stuffing (§4.5.2) --- */
	{ .label = "stuffed dot line", BIN("..\r\n.\r\n"), OUT(".\r\n"), .want_done = true },
	{ .label = "stuffed text", BIN("..foo\r\n.\r\n"), OUT(".foo\r\n"), .want_done = true },
	{ .label = "three dots", BIN("...\r\n.\r\n"), OUT("..\r\n"), .want_done = true },
	{ .label = "unstuffed leading dot is deleted", BIN(".foo\r\n.\r\n"), OUT("foo\r\n"),
	  .want_done = true },
	{ .label = "dot mid line kept", BIN("a.b\r\n.\r\n"), OUT("a.b\r\n"), .want_done = true },
	{ .label = "stuffed after text", BIN("x\r\n..\r\ny\r\n.\r\n"), OUT("x\r\n.\r\ny\r\n"),
	  .want_done = true },
	{ .label = "body without CRLF before dot", BIN("abc.\r\n"), OUT("abc.\r\n") },
	{ .label = "body without CRLF then real end", BIN("abc.\r\n.\r\n"), OUT("abc.\r\n"),
	  .want_done = true },
	{ .label = "dot space is not the end", BIN(". \r\n.\r\n"), OUT(" \r\n"), .want_done = true },
	{ .label = "dot at end of input held", BIN("a\r\n."), OUT("a\r\n") },
	{ .label = "dot CR at end of input held", BIN("a\r\n.\r"), OUT("a\r\n") },

	/* --- SMTP smuggling: none of these ends the data --- */
	{ .label = "LF.LF", BIN("a\n.\nMAIL FROM:<x@y>\r\n.\r\n"),
	  OUT("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), .want_done = true,
	  .want_flags = SMTP_DATA_F_BARE_LF, .want_bare_lf = 2 },
	{ .label = "CR.CR", BIN("a\r.\rMAIL FROM:<x@y>\r\n.\r\n"),
	  OUT("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), .want_done = true,
	  .want_flags = SMTP_DATA_F_BARE_CR, .want_bare_cr = 2 },
	{ .label = "CRLF.LF", BIN("a\r\n.\nMAIL FROM:<x@y>\r\n.\r\n"),
	  OUT("a\r\n\r\nMAIL FROM:<x@y>\r\n"), .want_done = true,
	  .want_flags = SMTP_DATA_F_BARE_LF, .want_bare_lf = 1 },
	{ .label = "LF.CRLF", BIN("a\n.\r\nMAIL FROM:<x@y>\r\n.\r\n"),
	  OUT("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), .want_done = true,
	  .want_flags = SMTP_DATA_F_BARE_LF, .want_bare_lf = 1 },
	{ .label = "CRLF.CR", BIN("a\r\n.\rMAIL FROM:<x@y>\r\n.\r\n"),
	  OUT("a\r\n\r\nMAIL FROM:<x@y>\r\n"), .want_done = true,
	  .want_flags = SMTP_DATA_F_BARE_CR, .want_bare_cr = 1 },
	{ .label = "CR.CRLF", BIN("a\r.\r\nMAIL FROM:<x@y>\r\n.\r\n"),
	  OUT("a\r\n.\r\nMAIL FROM:<x@y>\r\n"), .want_done = true,
	  .want_flags = SMTP_DATA_F_BARE_CR, .want_bare_cr = 1 },
	{ .label = "CRLF.CRCRLF", BIN("a\r\n.\r\r\nMAIL FROM:<x@y>\r\n.\r\n"),
	  OUT("a\r\n\r\n\r\nMAIL FROM:<x@y>\r\n"), .want_done = true,
	  .want_flags = SMTP_DATA_F_BARE_CR, .want_bare_cr = 1 },
	{ .label = "CR CRLF . CRLF ends (real CRLF before the dot)", BIN("a\r\r\n.\r\nX"),
	  OUT("a\r\n\r\n"), .want_done = true, .want_used = 7,
	  .want_flags = SMTP_DATA_F_BARE_CR, .want_bare_cr = 1 },
	{ .label = "LF CRLF . CRLF ends", BIN("a\n\r\n.\r\nX"), OUT("a\r\n\r\n"),
	  .want_done = true, .want_used = 7, .want_flags = SMTP_DATA_F_BARE_LF,
	  .want_bare_lf = 1 },
	{ .label = "LF.LF alone never ends", BIN("\n.\n"), OUT("\r\n.\r\n"),
	  .want_flags = SMTP_DATA_F_BARE_LF, .want_bare_lf = 2 },
	{ .label = "CR.CR alone never ends", BIN("\r.\r"), OUT("\r\n.\r\n"),
	  .want_flags = SMTP_DATA_F_BARE_CR, .want_bare_cr = 1 /* the last CR is pending */ },
	{ .label = "dot LF at start", BIN(".\nX\r\n.\r\n"), OUT("\r\nX\r\n"), .want_done = true,
	  .want_flags = SMTP_DATA_F_BARE_LF, .want_bare_lf = 1 },
	{ .label = "dot CR at start", BIN(".\rX\r\n.\r\n"), OUT("\r\nX\r\n"), .want_done = true,
	  .want_flags = SMTP_DATA_F_BARE_CR, .want_bare_cr = 1 },
	{ .label = "dot CR CR LF at start", BIN(".\r\r\n.\r\n"), OUT("\r\n\r\n"),
	  .want_done = true, .want_flags = SMTP_DATA_F_BARE_CR,
	  .want_bare_cr = 1 },
	{ .label = "line after bare LF not unstuffed", BIN("a\n..b\r\n.\r\n"),
	  OUT("a\r\n..b\r\n"), .want_done = true,
	  .want_flags = SMTP_DATA_F_BARE_LF, .want_bare_lf = 1 },
	{ .label = "line after bare CR not unstuffed", BIN("a\r..b\r\n.\r\n"),
	  OUT("a\r\n..b\r\n"), .want_done = true,
	  .want_flags = SMTP_DATA_F_BARE_CR, .want_bare_cr = 1 },
	{ .label = "LF LF", BIN("\n\n.\r\n"), OUT("\r\n\r\n.\r\n"),
	  .want_flags = SMTP_DATA_F_BARE_LF, .want_bare_lf = 2 },
	{ .label = "CR CR", BIN("a\r\r.\r\n"), OUT("a\r\n\r\n.\r\n"),
	  .want_flags = SMTP_DATA_F_BARE_CR, .want_bare_cr = 2 },
	{ .label = "LF CR", BIN("a\n\r.\r\n"), OUT("a\r\n\r\n.\r\n"),
	  .want_flags = SMTP_DATA_F_BARE_LF | SMTP_DATA_F_BARE_CR, .want_bare_lf = 1,
	  .want_bare_cr = 1 },
	{ .label = "CRLF pending CR at end", BIN("a\r"), OUT("a\r\n") },

	/* --- NUL tricks --- */
	{ .label = "dot NUL CRLF", BIN("a\r\n.\0\r\n.\r\n"), OUT("a\r\n\0\r\n"),
	  .want_done = true, .want_flags = SMTP_DATA_F_NUL },
	{ .label = "NUL dot CRLF", BIN("a\r\n\0.\r\n.\r\n"), OUT("a\r\n\0.\r\n"),
	  .want_done = true, .want_flags = SMTP_DATA_F_NUL },
	{ .label = "CR NUL LF", BIN("a\r\0\n.\r\n.\r\n"), OUT("a\r\n\0\r\n.\r\n"),
	  .want_done = true,
	  .want_flags = SMTP_DATA_F_NUL | SMTP_DATA_F_BARE_CR | SMTP_DATA_F_BARE_LF,
	  .want_bare_cr = 1, .want_bare_lf = 1 },
	{ .label = "dot CR NUL LF", BIN("a\r\n.\r\0\n\r\n.\r\n"), OUT("a\r\n\r\n\0\r\n\r\n"),
	  .want_done = true,
	  .want_flags = SMTP_DATA_F_NUL | SMTP_DATA_F_BARE_CR | SMTP_DATA_F_BARE_LF,
	  .want_bare_cr = 1, .want_bare_lf = 1 },
	{ .label = "8bit", BIN("caf\xc3\xa9\r\n.\r\n"), OUT("caf\xc3\xa9\r\n"), .want_done = true,
	  .want_flags = SMTP_DATA_F_8BIT },
	{ .label = "8bit and NUL many", BIN("\x80\x00\xff\x00x\x80\r\n.\r\n"),
	  OUT("\x80\x00\xff\x00x\x80\r\n"), .want_done = true,
	  .want_flags = SMTP_DATA_F_8BIT | SMTP_DATA_F_NUL },

	/* --- BDAT --- */
	{ .label = "bdat plain", .mode = SMTP_DATA_BDAT, BIN("abc\r\ndef\r\n"),
	  OUT("abc\r\ndef\r\n"), .finish = true },
	{ .label = "bdat no final CRLF", .mode = SMTP_DATA_BDAT, BIN("abc\r\ndef"),
	  OUT("abc\r\ndef"), .finish = true },
	{ .label = "bdat CR at chunk end, finished", .mode = SMTP_DATA_BDAT, BIN("abc\r"),
	  OUT("abc\r\n"), .want_flags = SMTP_DATA_F_BARE_CR, .want_bare_cr = 1, .finish = true },
	{ .label = "bdat CR at chunk end, not finished", .mode = SMTP_DATA_BDAT, BIN("abc\r"),
	  OUT("abc\r\n") },
	{ .label = "bdat CR LF across chunks", .mode = SMTP_DATA_BDAT, BIN("abc\r\ndef"),
	  OUT("abc\r\ndef"), .finish = true },
	{ .label = "bdat bare LF and CR", .mode = SMTP_DATA_BDAT, BIN("a\nb\rc"),
	  OUT("a\r\nb\r\nc"), .want_flags = SMTP_DATA_F_BARE_LF | SMTP_DATA_F_BARE_CR,
	  .want_bare_lf = 1, .want_bare_cr = 1, .finish = true },
	{ .label = "bdat has no end of data", .mode = SMTP_DATA_BDAT, BIN("a\r\n.\r\nb"),
	  OUT("a\r\n.\r\nb"), .finish = true },
	{ .label = "bdat no unstuffing", .mode = SMTP_DATA_BDAT, BIN("..x\r\n.\r\n"),
	  OUT("..x\r\n.\r\n"), .finish = true },
	{ .label = "bdat binary", .mode = SMTP_DATA_BDAT, BIN("\0\x01\xfe\r\n"),
	  OUT("\0\x01\xfe\r\n"), .want_flags = SMTP_DATA_F_NUL | SMTP_DATA_F_8BIT,
	  .finish = true },
	{ .label = "bdat empty", .mode = SMTP_DATA_BDAT, BIN(""), OUT(""), .finish = true },
	{ .label = "bdat CR CR", .mode = SMTP_DATA_BDAT, BIN("\r\r"), OUT("\r\n\r\n"),
	  .want_flags = SMTP_DATA_F_BARE_CR, .want_bare_cr = 2, .finish = true },
};

/* The long-line cases: exactly at, one under and one over SMTP_TEXT_LINE_MAX. */
static struct data_case long_cases[6];

static void build_long_cases(void)
{
	/* text length n + CR LF; n = 998 is exactly 1000 with CR LF */
	static const size_t lens[3] = { 997, 998, 999 };
	for (int i = 0; i < 3; i++) {
		size_t n = lens[i];
		memset(long_in[i], 'x', n);
		memcpy(long_in[i] + n, "\r\n.\r\n", 5);
		memset(long_out[i], 'x', n);
		memcpy(long_out[i] + n, "\r\n", 2);
		long_cases[i] = (struct data_case){
			.label = i == 0 ? "line 999" : i == 1 ? "line 1000" : "line 1001",
			.input = long_in[i], .input_len = n + 5, .want_out = long_out[i],
			.want_out_len = n + 2, .want_done = true, .want_used = n + 5,
			.want_flags = n > 998 ? SMTP_DATA_F_LONG_LINE : 0, .want_long = n > 998,
		};
	}
	/* a stuffed line: the removed dot does not count */
	long_in[3][0] = '.';
	memset(long_in[3] + 1, 'x', 998);
	memcpy(long_in[3] + 999, "\r\n.\r\n", 5);
	memset(long_out[3], 'x', 998);
	memcpy(long_out[3] + 998, "\r\n", 2);
	long_cases[3] = (struct data_case){ .label = "stuffed 1000 is not long",
		.input = long_in[3], .input_len = 1004, .want_out = long_out[3], .want_out_len = 1000,
		.want_done = true, .want_used = 1004 };
	/* BDAT last line without CR LF, over the limit */
	memset(long_in[4], 'y', 999);
	memset(long_out[4], 'y', 999);
	long_cases[4] = (struct data_case){ .label = "bdat unterminated long line",
		.mode = SMTP_DATA_BDAT, .input = long_in[4], .input_len = 999,
		.want_out = long_out[4], .want_out_len = 999, .want_flags = SMTP_DATA_F_LONG_LINE,
		.want_long = 1, .finish = true };
	/* two long lines split by a bare LF: each output line counts */
	memset(long_in[5], 'z', 2001);
	long_in[5][999] = '\n';
	memcpy(long_in[5] + 2001, "\r\n.\r\n", 5);
	memset(long_out[5], 'z', 2004);
	memcpy(long_out[5] + 999, "\r\n", 2);
	memcpy(long_out[5] + 2002, "\r\n", 2);
	long_cases[5] = (struct data_case){ .label = "two long lines around a bare LF",
		.input = long_in[5], .input_len = 2006, .want_out = long_out[5], .want_out_len = 2004,
		.want_done = true, .want_used = 2006,
		.want_flags = SMTP_DATA_F_LONG_LINE | SMTP_DATA_F_BARE_LF, .want_long = 2,
		.want_bare_lf = 1 };
}

struct data_result {
	uint8_t *out;
	size_t   out_len;
	size_t   used;
	bool     done;
	struct smtp_data d;
};

static void fail_case(const char *label, const char *how, const char *what)
{
	print_error("case '%s' (%s): %s\n", label, how, what);
	fail();
}

/*
 * Runs the decoder over in[0..len) cut into chunks by next_chunk. Stops at the end of data
 * (the rest is the next command, not ours). Checks the per-call contract on the way.
 */
static void run_chunks(const struct data_case *c, const char *how, size_t (*next_chunk)(size_t),
		       struct data_result *r)
{
	size_t pos = 0;

	smtp_data_init(&r->d, c->mode);
	r->out = malloc(SMTP_DATA_OUT_MAX(c->input_len) + 1);
	r->out_len = 0;
	r->done = false;
	while (pos < c->input_len && !r->done) {
		size_t n = next_chunk(c->input_len - pos);
		if (n > c->input_len - pos)
			n = c->input_len - pos;
		uint8_t *buf = malloc(SMTP_DATA_OUT_MAX(n));
		uint8_t *in = malloc(n ? n : 1);   /* a private copy: ASan sees reads past it */
		size_t olen = 999999, used;
		bool done = true;
		memcpy(in, c->input + pos, n);
		used = smtp_data_decode(&r->d, in, n, buf, &olen, &done);
		if (used > n)
			fail_case(c->label, how, "used > len");
		if (!done && used != n)
			fail_case(c->label, how, "not done but did not consume everything");
		if (olen > SMTP_DATA_OUT_MAX(n))
			fail_case(c->label, how, "output over SMTP_DATA_OUT_MAX");
		if (c->mode == SMTP_DATA_BDAT && (olen > 2 * n || done))
			fail_case(c->label, how, "BDAT wrote over 2 * len or said done");
		memcpy(r->out + r->out_len, buf, olen);
		r->out_len += olen;
		pos += used;
		r->done = done;
		free(buf);
		free(in);
	}
	if (c->finish) {
		uint8_t tail[2];
		size_t k = smtp_data_finish(&r->d, tail);
		if (k > 2)
			fail_case(c->label, how, "finish wrote over 2");
		memcpy(r->out + r->out_len, tail, k);
		r->out_len += k;
	}
	r->used = pos;
}

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* splitmix64: seeded, so a failing split is reproducible */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static size_t chunk_whole(size_t left) { return left; }
static size_t chunk_byte(size_t left) { (void)left; return 1; }
static size_t chunk_random(size_t left)
{
	/* mostly small cuts, sometimes empty calls, sometimes big ones */
	uint64_t r = rng();
	if ((r & 15) == 0)
		return 0;
	if ((r & 15) == 1)
		return left;
	return 1 + (size_t)((r >> 8) % 9);
}

static void check_result(const struct data_case *c, const char *how, const struct data_result *r)
{
	char msg[256];

	if (r->out_len != c->want_out_len || memcmp(r->out, c->want_out, r->out_len) != 0) {
		snprintf(msg, sizeof(msg), "output differs (got %zu bytes, want %zu)", r->out_len,
			 c->want_out_len);
		fail_case(c->label, how, msg);
	}
	if (r->done != c->want_done)
		fail_case(c->label, how, "done differs");
	/* want_used is given only when bytes follow the end of data */
	size_t want_used = c->want_done && c->want_used ? c->want_used : c->input_len;
	if (r->used != want_used) {
		snprintf(msg, sizeof(msg), "used %zu, want %zu", r->used, want_used);
		fail_case(c->label, how, msg);
	}
	if (r->d.flags != c->want_flags) {
		snprintf(msg, sizeof(msg), "flags 0x%x, want 0x%x", r->d.flags, c->want_flags);
		fail_case(c->label, how, msg);
	}
	if (r->d.bare_lf != c->want_bare_lf || r->d.bare_cr != c->want_bare_cr ||
	    r->d.long_lines != c->want_long) {
		snprintf(msg, sizeof(msg), "counters lf %u cr %u long %u", r->d.bare_lf, r->d.bare_cr,
			 r->d.long_lines);
		fail_case(c->label, how, msg);
	}
	if (r->d.in_bytes != r->used || r->d.out_bytes != r->out_len)
		fail_case(c->label, how, "in_bytes/out_bytes disagree");
	/* the output is canonical: every CR is followed by LF and every LF preceded by CR */
	for (size_t i = 0; i < r->out_len; i++) {
		if (r->out[i] == '\r' && (i + 1 == r->out_len || r->out[i + 1] != '\n'))
			fail_case(c->label, how, "bare CR in output");
		if (r->out[i] == '\n' && (i == 0 || r->out[i - 1] != '\r'))
			fail_case(c->label, how, "bare LF in output");
	}
}

static void run_case_all_ways(const struct data_case *c)
{
	struct data_result r;
	static const uint64_t seeds[] = { 1, 2, 3, 42, 1234567, 0xdeadbeef };

	run_chunks(c, "whole", chunk_whole, &r);
	check_result(c, "whole", &r);
	free(r.out);
	run_chunks(c, "bytewise", chunk_byte, &r);
	check_result(c, "bytewise", &r);
	free(r.out);
	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++) {
		char how[64];
		snprintf(how, sizeof(how), "random seed %llu", (unsigned long long)seeds[s]);
		rng_state = seeds[s];
		run_chunks(c, how, chunk_random, &r);
		check_result(c, how, &r);
		free(r.out);
	}
}

static void test_data_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(data_cases) / sizeof(data_cases[0]); i++)
		run_case_all_ways(&data_cases[i]);
}

static void test_data_long_lines(void **state)
{
	(void)state;
	build_long_cases();
	for (size_t i = 0; i < sizeof(long_cases) / sizeof(long_cases[0]); i++)
		run_case_all_ways(&long_cases[i]);
}

/* Once done, the decoder takes nothing more. */
static void test_data_after_done(void **state)
{
	struct smtp_data d;
	uint8_t out[32];
	size_t olen;
	bool done;

	(void)state;
	smtp_data_init(&d, SMTP_DATA_DOT);
	assert_int_equal(smtp_data_decode(&d, (const uint8_t *)".\r\nQUIT\r\n", 9, out, &olen,
					  &done), 3);
	assert_true(done);
	assert_int_equal(olen, 0);
	assert_int_equal(smtp_data_decode(&d, (const uint8_t *)"QUIT\r\n", 6, out, &olen, &done), 0);
	assert_true(done);
	assert_int_equal(olen, 0);
}

/* The + 2 in SMTP_DATA_OUT_MAX: "." CR held at the end of one read, then bare CRs. */
static void test_data_out_max_is_tight(void **state)
{
	struct smtp_data d;
	uint8_t out[8];
	size_t olen;
	bool done;

	(void)state;
	smtp_data_init(&d, SMTP_DATA_DOT);
	assert_int_equal(smtp_data_decode(&d, (const uint8_t *)".\r", 2, out, &olen, &done), 2);
	assert_int_equal(olen, 0);
	assert_false(done);
	assert_int_equal(smtp_data_decode(&d, (const uint8_t *)"\r", 1, out, &olen, &done), 1);
	assert_int_equal(olen, 4);   /* the held CR as CR LF, then this CR as CR LF */
	assert_int_equal(olen, SMTP_DATA_OUT_MAX(1));
	assert_memory_equal(out, "\r\n\r\n", 4);
}

/* smtp_data_finish in DOT mode (not its use, but defined): a held "." CR comes out as CR LF. */
static void test_data_finish_dot_cr(void **state)
{
	struct smtp_data d;
	uint8_t out[8];
	size_t olen;
	bool done;

	(void)state;
	smtp_data_init(&d, SMTP_DATA_DOT);
	assert_int_equal(smtp_data_decode(&d, (const uint8_t *)"a\r\n.\r", 5, out, &olen, &done), 5);
	assert_int_equal(olen, 3);
	assert_int_equal(smtp_data_finish(&d, out), 2);
	assert_memory_equal(out, "\r\n", 2);
	assert_int_equal(d.bare_cr, 1);
	assert_int_equal(d.out_bytes, 5);
}

/* ---- differential test against a simple non-streaming model ---- */

struct model_result {
	uint8_t  out[4096];
	size_t   out_len, used;
	bool     done;
	unsigned flags;
	uint32_t bare_lf, bare_cr, long_lines;
};

/* The rules of smtp_data.h, written the plain way with look-ahead over the whole input. */
static void model(enum smtp_data_mode mode, const uint8_t *in, size_t len, bool finish,
		  struct model_result *m)
{
	size_t pos = 0;
	bool bol = mode == SMTP_DATA_DOT, pending_cr = false, pending_dot_cr = false;

	memset(m, 0, sizeof(*m));
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
	/* long lines, from the output: terminated lines, and the last one only when finished */
	size_t start = 0;
	for (size_t i = 0; i + 1 < m->out_len + 1; i++) {
		if (i + 1 < m->out_len && m->out[i] == '\r' && m->out[i + 1] == '\n') {
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

static void test_data_differential(void **state)
{
	static const uint8_t alphabet[] = { '\r', '\n', '.', 'a', '\r', '\n', '.', '\0', 0x80, ' ' };
	static uint8_t input[1500];
	static struct model_result m;

	(void)state;
	rng_state = 7;
	for (int iter = 0; iter < 20000; iter++) {
		size_t len = (size_t)(rng() % 40);
		if (iter % 100 == 0)
			len = 1100 + (size_t)(rng() % 300);   /* reach the long-line limit too */
		for (size_t i = 0; i < len; i++) {
			uint64_t r = rng();
			input[i] = (len > 1000 && (r & 3)) ? 'x' : alphabet[(r >> 4) % sizeof(alphabet)];
		}
		enum smtp_data_mode mode = (iter & 1) ? SMTP_DATA_BDAT : SMTP_DATA_DOT;
		bool finish = mode == SMTP_DATA_BDAT && (iter & 2);
		model(mode, input, len, finish, &m);

		struct data_case c = { .label = "differential", .mode = mode, .input = input,
			.input_len = len, .want_out = (const char *)m.out, .want_out_len = m.out_len,
			.want_done = m.done, .want_used = m.used, .want_flags = m.flags,
			.want_bare_lf = m.bare_lf, .want_bare_cr = m.bare_cr,
			.want_long = m.long_lines, .finish = finish };
		struct data_result r;
		rng_state ^= 0x5555;
		uint64_t keep = rng_state;
		run_chunks(&c, "differential random", chunk_random, &r);
		rng_state = keep;
		if (r.out_len != m.out_len || memcmp(r.out, m.out, m.out_len) != 0 ||
		    r.done != m.done || r.used != m.used || r.d.flags != m.flags ||
		    r.d.bare_lf != m.bare_lf || r.d.bare_cr != m.bare_cr ||
		    r.d.long_lines != m.long_lines) {
			print_error("differential iteration %d (mode %d, len %zu) disagrees with the "
				    "model: out %zu/%zu done %d/%d used %zu/%zu flags %x/%x\n",
				    iter, mode, len, r.out_len, m.out_len, r.done, m.done, r.used,
				    m.used, r.d.flags, m.flags);
			fail();
		}
		free(r.out);
	}
}

/* ---- longest_line: the longest stored line, CR LF excluded (for [delivery] long_lines) ---- */

struct longest_case {
	const char         *label;
	enum smtp_data_mode mode;
	size_t              run1, run2;     /* two lines of 'a' * run1 and 'b' * run2 */
	const char         *sep;            /* between them */
	const char         *tail;           /* after the second */
	bool                stuff;          /* the first line starts with a stuffed dot */
	bool                finish;
	uint32_t            want;
};

static const struct longest_case longest_cases[] = {
	{ "empty body", SMTP_DATA_DOT, 0, 0, "", ".\r\n", false, false, 0 },
	{ "short lines", SMTP_DATA_DOT, 5, 7, "\r\n", "\r\n.\r\n", false, false, 7 },
	{ "998 is the limit", SMTP_DATA_DOT, 998, 10, "\r\n", "\r\n.\r\n", false, false, 998 },
	{ "999 is over", SMTP_DATA_DOT, 10, 999, "\r\n", "\r\n.\r\n", false, false, 999 },
	{ "the longest of two", SMTP_DATA_DOT, 3000, 1200, "\r\n", "\r\n.\r\n", false, false,
	  3000 },
	{ "a stuffing dot does not count, a text dot does", SMTP_DATA_DOT, 998, 1, "\r\n", "\r\n.\r\n", true,
	  false, 999 },
	{ "bare LF ends a stored line", SMTP_DATA_DOT, 600, 600, "\n", "\r\n.\r\n", false, false,
	  600 },
	{ "bare CR ends a stored line", SMTP_DATA_DOT, 700, 500, "\r", "\r\n.\r\n", false, false,
	  700 },
	{ "no line end yet counts", SMTP_DATA_DOT, 10, 1500, "\r\n", "", false, false, 1500 },
	{ "bdat last line without CR LF", SMTP_DATA_BDAT, 20, 1001, "\r\n", "", false, true, 1001 },
	{ "bdat short", SMTP_DATA_BDAT, 20, 30, "\r\n", "\r\n", false, true, 30 },
};

static void test_data_longest_line(void **state)
{
	static const uint64_t seeds[] = { 1, 7, 99, 0xfeed };

	(void)state;
	for (size_t i = 0; i < sizeof(longest_cases) / sizeof(longest_cases[0]); i++) {
		const struct longest_case *lc = &longest_cases[i];
		size_t cap = lc->run1 + lc->run2 + 16, n = 0;
		uint8_t *in = malloc(cap);
		struct data_case c = { .label = lc->label, .mode = lc->mode, .finish = lc->finish };
		struct data_result r;

		if (lc->stuff) {
			/* "..aaa": the first dot is stuffing (removed), the second is text */
			in[n++] = '.';
			in[n++] = '.';
		}
		memset(in + n, 'a', lc->run1);
		n += lc->run1;
		memcpy(in + n, lc->sep, strlen(lc->sep));
		n += strlen(lc->sep);
		memset(in + n, 'b', lc->run2);
		n += lc->run2;
		memcpy(in + n, lc->tail, strlen(lc->tail));
		n += strlen(lc->tail);
		c.input = in;
		c.input_len = n;
		for (int how = 0; how < 2 + (int)(sizeof(seeds) / sizeof(seeds[0])); how++) {
			char msg[128];

			if (how >= 2)
				rng_state = seeds[how - 2];
			run_chunks(&c, how == 0 ? "whole" : how == 1 ? "bytewise" : "random", how == 0 ?
				   chunk_whole : how == 1 ? chunk_byte : chunk_random, &r);
			if (r.d.longest_line != lc->want) {
				snprintf(msg, sizeof(msg), "longest_line %u, want %u", r.d.longest_line,
					 lc->want);
				fail_case(lc->label, how == 0 ? "whole" : how == 1 ? "bytewise" : "random",
					  msg);
			}
			/* It agrees with the long-line flag the decoder already kept. */
			if ((r.d.longest_line > SMTP_TEXT_LINE_MAX - 2) !=
			    ((r.d.flags & SMTP_DATA_F_LONG_LINE) != 0))
				fail_case(lc->label, "flag", "longest_line and SMTP_DATA_F_LONG_LINE disagree");
			free(r.out);
		}
		free(in);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_data_table),
		cmocka_unit_test(test_data_long_lines),
		cmocka_unit_test(test_data_after_done),
		cmocka_unit_test(test_data_out_max_is_tight),
		cmocka_unit_test(test_data_finish_dot_cr),
		cmocka_unit_test(test_data_differential),
		cmocka_unit_test(test_data_longest_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
