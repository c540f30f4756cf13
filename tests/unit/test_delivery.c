/*
 * test_delivery.c - the delivery module's pure parts: the reply parser, the body encoder, the
 * SMTP client engine driven by scripted replies, the retry schedule, route ordering and
 * destination health, and DSNs (checked with Python's email package).
 *
 * Every parser case runs three ways: whole, one byte at a time, and at random splits.
 * The client against real servers is in test_delivery_smtp.c; DNS in test_delivery_dns.c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "delivery/delivery_body.h"
#include "delivery/delivery_client.h"
#include "delivery/delivery_dsn.h"
#include "delivery/delivery_reply.h"
#include "delivery/delivery_retry.h"
#include "delivery/delivery_route.h"
#include "conf/node_config.h"

enum split { SPLIT_WHOLE, SPLIT_BYTE, SPLIT_RANDOM, SPLIT_COUNT };
static const char *const split_name[] = { "whole", "byte", "random" };

static uint64_t rng_state = 0x1234567887654321ull;
static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)rng_state;
}

static size_t chunk_len(enum split s, size_t left)
{
	size_t n;

	if (s == SPLIT_WHOLE)
		return left;
	if (s == SPLIT_BYTE)
		return left ? 1 : 0;
	n = 1 + rng() % 17;
	return n < left ? n : left;
}

/* ---------------------------------------------------------------- reply parser */

struct reply_case {
	const char *label;
	const char *in;
	size_t      in_len;             /* 0: strlen */
	int         want;               /* enum delivery_reply_status */
	unsigned    want_code;
	const char *want_enh;           /* "" none */
	unsigned    want_lines;
	const char *want_text;          /* NULL: not checked */
	size_t      want_used;          /* 0: all of the input */
	bool        want_truncated;
};

static char long_line[700];
static char huge_line[5000];
static char many_lines[110 * 10 + 16];

static void build_long_inputs(void)
{
	size_t n = 0;

	memcpy(long_line, "250 ", 4);
	memset(long_line + 4, 'x', 600);
	memcpy(long_line + 604, "\r\n", 3);
	memcpy(huge_line, "250 ", 4);
	memset(huge_line + 4, 'y', sizeof(huge_line) - 5);
	huge_line[sizeof(huge_line) - 1] = '\0';
	for (unsigned i = 0; i < 110; i++)
		n += (size_t)sprintf(many_lines + n, "250-%03u\r\n", i);
	sprintf(many_lines + n, "250 end\r\n");
}

static const struct reply_case reply_cases[] = {
	{ "one line", "250 OK\r\n", 0, DELIVERY_REPLY_DONE, 250, "", 1, "OK", 0, false },
	{ "multi-line ehlo", "250-mx.example.net\r\n250-PIPELINING\r\n250 SIZE 1000\r\n", 0,
	  DELIVERY_REPLY_DONE, 250, "", 3, "mx.example.net\nPIPELINING\nSIZE 1000", 0, false },
	{ "enhanced code", "550 5.1.1 No such user\r\n", 0, DELIVERY_REPLY_DONE, 550, "5.1.1", 1,
	  "5.1.1 No such user", 0, false },
	{ "enhanced code alone", "451 4.3.0\r\n", 0, DELIVERY_REPLY_DONE, 451, "4.3.0", 1, "4.3.0", 0,
	  false },
	{ "enhanced 3-digit parts", "552 5.3.400 big\r\n", 0, DELIVERY_REPLY_DONE, 552, "5.3.400", 1,
	  NULL, 0, false },
	{ "enhanced class mismatch ignored", "550 4.1.1 odd\r\n", 0, DELIVERY_REPLY_DONE, 550, "", 1,
	  "4.1.1 odd", 0, false },
	{ "not an enhanced code", "250 2.1 x\r\n", 0, DELIVERY_REPLY_DONE, 250, "", 1, "2.1 x", 0, false },
	{ "code alone", "250\r\n", 0, DELIVERY_REPLY_DONE, 250, "", 1, "", 0, false },
	{ "bare LF", "220 hi there\n", 0, DELIVERY_REPLY_DONE, 220, "", 1, "hi there", 0, false },
	{ "CR inside text kept", "220 a\rb\r\n", 0, DELIVERY_REPLY_DONE, 220, "", 1, "a\rb", 0, false },
	{ "multi-line enhanced on first", "550-5.7.1 go away\r\n550 5.7.1 really\r\n", 0,
	  DELIVERY_REPLY_DONE, 550, "5.7.1", 2, "5.7.1 go away\n5.7.1 really", 0, false },
	{ "pipelined: stops after the first", "250 ok\r\n354 go\r\n", 0, DELIVERY_REPLY_DONE, 250, "",
	  1, "ok", 8, false },
	{ "line over 512 kept cut", long_line, 0, DELIVERY_REPLY_DONE, 250, "", 1, NULL, 0, true },
	{ "letter in code", "2x0 hi\r\n", 0, DELIVERY_REPLY_BAD, 0, "", 0, NULL, 0, false },
	{ "class 6", "650 hi\r\n", 0, DELIVERY_REPLY_BAD, 0, "", 0, NULL, 0, false },
	{ "class 1", "150 hi\r\n", 0, DELIVERY_REPLY_BAD, 0, "", 0, NULL, 0, false },
	{ "second digit 6", "260 hi\r\n", 0, DELIVERY_REPLY_BAD, 0, "", 0, NULL, 0, false },
	{ "bad separator", "250_hi\r\n", 0, DELIVERY_REPLY_BAD, 0, "", 0, NULL, 0, false },
	{ "codes differ", "250-a\r\n251 b\r\n", 0, DELIVERY_REPLY_BAD, 0, "", 0, NULL, 0, false },
	{ "empty line", "\r\n", 0, DELIVERY_REPLY_BAD, 0, "", 0, NULL, 0, false },
	{ "NUL in code", "25\0 x\r\n", 7, DELIVERY_REPLY_BAD, 0, "", 0, NULL, 0, false },
	{ "line never ends", huge_line, 0, DELIVERY_REPLY_TOOLONG, 0, "", 0, NULL, 0, false },
	{ "endless multi-line", many_lines, 0, DELIVERY_REPLY_TOOLONG, 0, "", 0, NULL, 0, false },
	{ "unfinished", "250-a\r\n250-b\r\n", 0, DELIVERY_REPLY_AGAIN, 0, "", 0, NULL, 0, false },
};

static int reply_run(struct delivery_reply *r, const uint8_t *in, size_t len, enum split s,
		     size_t *used_r)
{
	size_t off = 0;

	*used_r = 0;
	while (off < len) {
		size_t n = chunk_len(s, len - off), used;
		int st = delivery_reply_feed(r, in + off, n, &used);

		assert_true(used <= n);
		off += used;
		*used_r = off;
		if (st != DELIVERY_REPLY_AGAIN)
			return st;
		assert_int_equal(used, n);
	}
	return DELIVERY_REPLY_AGAIN;
}

static void test_reply_cases(void **state)
{
	(void)state;
	build_long_inputs();
	for (size_t i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		const struct reply_case *c = &reply_cases[i];
		size_t len = c->in_len ? c->in_len : strlen(c->in);

		for (int s = 0; s < SPLIT_COUNT; s++) {
			struct delivery_reply r;
			size_t used;
			int st;

			delivery_reply_init(&r, NULL);
			st = reply_run(&r, (const uint8_t *)c->in, len, s, &used);
			if (st != c->want)
				fail_msg("%s (%s): status %d, want %d", c->label, split_name[s], st, c->want);
			if (st != DELIVERY_REPLY_DONE)
				continue;
			if (r.code != c->want_code || r.nlines != c->want_lines)
				fail_msg("%s (%s): code %u lines %u", c->label, split_name[s], r.code, r.nlines);
			if (strcmp(r.enh, c->want_enh) != 0 || r.has_enh != (c->want_enh[0] != 0))
				fail_msg("%s (%s): enh '%s'", c->label, split_name[s], r.enh);
			if (c->want_text != NULL && strcmp(r.text, c->want_text) != 0)
				fail_msg("%s (%s): text '%s'", c->label, split_name[s], r.text);
			if (used != (c->want_used ? c->want_used : len))
				fail_msg("%s (%s): used %zu", c->label, split_name[s], used);
			if (r.truncated != c->want_truncated)
				fail_msg("%s (%s): truncated %d", c->label, split_name[s], r.truncated);
			if (c->want_truncated)
				assert_int_equal(r.text_len, DELIVERY_REPLY_LINE_MAX);
		}
	}
}

/* A reply past the limits is refused in bounded work, and the parser stays refusing. */
static void test_reply_limits(void **state)
{
	struct delivery_reply_limits lim = { .line_max = 64, .line_hard = 128, .lines_max = 3 };
	struct delivery_reply r;
	uint8_t buf[256];
	size_t used;

	(void)state;
	delivery_reply_init(&r, &lim);
	assert_int_equal(delivery_reply_feed(&r, (const uint8_t *)"250-a\r\n250-b\r\n250-c\r\n", 21, &used),
			 DELIVERY_REPLY_TOOLONG);
	assert_int_equal(delivery_reply_feed(&r, (const uint8_t *)"250 d\r\n", 7, &used),
			 DELIVERY_REPLY_TOOLONG);
	delivery_reply_reset(&r);
	memset(buf, 'z', sizeof(buf));
	memcpy(buf, "220 ", 4);
	assert_int_equal(delivery_reply_feed(&r, buf, sizeof(buf), &used), DELIVERY_REPLY_TOOLONG);
	assert_true(used <= 129);
	/* Pipelined replies parse one after the other from one buffer. */
	{
		const char *in = "250 a\r\n250-b\r\n250 c\r\n354 d\r\n";
		size_t off = 0, len = strlen(in);
		unsigned codes[3], n = 0;

		delivery_reply_init(&r, NULL);
		while (off < len) {
			assert_int_equal(delivery_reply_feed(&r, (const uint8_t *)in + off, len - off, &used),
					 DELIVERY_REPLY_DONE);
			codes[n++] = r.code;
			off += used;
			delivery_reply_reset(&r);
		}
		assert_int_equal(n, 3);
		assert_int_equal(codes[0], 250);
		assert_int_equal(codes[1], 250);
		assert_int_equal(codes[2], 354);
	}
	{
		size_t n;
		const char *p;

		delivery_reply_init(&r, NULL);
		assert_int_equal(delivery_reply_feed(&r, (const uint8_t *)"550-5.1.1 gone\r\n550 more\r\n",
						     26, &used), DELIVERY_REPLY_DONE);
		p = delivery_reply_first_line(&r, &n);
		assert_int_equal(n, 4);
		assert_memory_equal(p, "gone", 4);
	}
}

/* ---------------------------------------------------------------- body encoder */

struct body_case {
	const char *label;
	const char *in;
	const char *want;
};

static const struct body_case body_cases[] = {
	{ "canonical", "a\r\nb\r\n", "a\r\nb\r\n.\r\n" },
	{ "no final line end", "a\r\nb", "a\r\nb\r\n.\r\n" },
	{ "bare LF", "a\nb\n", "a\r\nb\r\n.\r\n" },
	{ "bare CR", "a\rb\r", "a\r\nb\r\n.\r\n" },
	{ "dot at start", ".x\r\n..y\r\n", "..x\r\n...y\r\n.\r\n" },
	{ "lone dot line", "a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n" },
	{ "smuggling with bare LF", "a\n.\nMAIL FROM:<x>\n", "a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n" },
	{ "smuggling with bare CR", "a\r.\rb", "a\r\n..\r\nb\r\n.\r\n" },
	{ "dot after CR LF split", "x\r\n.", "x\r\n..\r\n.\r\n" },
	{ "CR CR LF", "x\r\r\n", "x\r\n\r\n.\r\n" },
	{ "empty", "", ".\r\n" },
	{ "just a dot", ".", "..\r\n.\r\n" },
	{ "dot inside line", "a.b\r\n", "a.b\r\n.\r\n" },
};

static size_t body_run_max(const uint8_t *in, size_t len, enum split s, uint8_t *out,
			   uint32_t line_max)
{
	struct delivery_body b;
	size_t off = 0, o = 0;

	delivery_body_init(&b, line_max);
	while (off < len) {
		size_t n = chunk_len(s, len - off);

		o += delivery_body_encode(&b, in + off, n, out + o);
		off += n;
	}
	o += delivery_body_finish(&b, out + o);
	assert_int_equal(b.out_bytes, o);
	assert_int_equal(b.in_bytes, len);
	return o;
}

static size_t body_run(const uint8_t *in, size_t len, enum split s, uint8_t *out)
{
	return body_run_max(in, len, s, out, 0);
}

static void test_body_cases(void **state)
{
	uint8_t out[256];

	(void)state;
	for (size_t i = 0; i < sizeof(body_cases) / sizeof(body_cases[0]); i++) {
		const struct body_case *c = &body_cases[i];

		for (int s = 0; s < SPLIT_COUNT; s++) {
			size_t n = body_run((const uint8_t *)c->in, strlen(c->in), s, out);

			if (n != strlen(c->want) || memcmp(out, c->want, n) != 0)
				fail_msg("%s (%s): got '%.*s'", c->label, split_name[s], (int)n, out);
		}
	}
}

/* Lines past line_max are broken with CR LF SP; short ones are left alone. */
static void test_body_wrap(void **state)
{
	uint8_t in[300], out[700];
	char want[700];
	size_t n, w = 0;

	(void)state;
	memset(in, 'x', 250);
	in[0] = '.';
	memcpy(in + 250, "\r\nshort\r\n", 9);
	/* 80 per line: ".." + 78 x, then SP + 79 x three times... */
	w += (size_t)sprintf(want + w, "..");
	memset(want + w, 'x', 78);
	w += 78;
	for (int left = 249 - 78; left > 0; left -= 79) {
		int k = left < 79 ? left : 79;

		w += (size_t)sprintf(want + w, "\r\n ");
		memset(want + w, 'x', (size_t)k);
		w += (size_t)k;
	}
	w += (size_t)sprintf(want + w, "\r\nshort\r\n.\r\n");
	for (int s = 0; s < SPLIT_COUNT; s++) {
		n = body_run_max(in, 259, s, out, 80);
		if (n != w || memcmp(out, want, n) != 0)
			fail_msg("wrap (%s): got '%.*s'", split_name[s], (int)n, out);
		/* Off: untouched. */
		n = body_run_max(in, 259, s, out, 0);
		assert_int_equal(n, 260 + 3);
	}
}

/* longest: the longest line sent (the stuffed dot counted), whole, bytewise, random splits. */
static void test_body_longest(void **state)
{
	static uint8_t in[2600], out[2 * 2600 + 8];

	(void)state;
	in[0] = '.';
	memset(in + 1, 'x', 1499);               /* ".xxx": 1501 on the wire */
	memcpy(in + 1500, "\r\nab\nc\r", 8);   /* then short lines, a bare LF and a bare CR */
	memset(in + 1508, 'y', 999);
	for (int s = 0; s < SPLIT_COUNT; s++) {
		struct delivery_body b;
		size_t off = 0, len = 2507;

		for (int wrap = 0; wrap < 2; wrap++) {
			delivery_body_init(&b, wrap ? 998 : 0);
			off = 0;
			while (off < len) {
				size_t n = chunk_len((enum split)s, len - off);

				delivery_body_encode(&b, in + off, n, out);
				off += n;
			}
			delivery_body_finish(&b, out);
			if (b.longest != (wrap ? 998u : 1501u))
				fail_msg("longest (%s, wrap %d): %u", split_name[s], wrap, b.longest);
		}
	}
}

/* Property: for random input, the output has only CR LF line ends, ends with CRLF.CRLF exactly
 * once, and un-stuffing it gives the input with its line ends made CR LF. */
static void test_body_property(void **state)
{
	static const char alphabet[] = { 'a', '.', '\r', '\n', 'b' };
	uint8_t in[200], out[2 * 200 + 8], norm[2 * 200 + 8], unst[2 * 200 + 8];

	(void)state;
	for (int iter = 0; iter < 3000; iter++) {
		size_t len = rng() % sizeof(in), n, nn = 0, nu = 0, i;

		for (i = 0; i < len; i++)
			in[i] = (uint8_t)alphabet[rng() % sizeof(alphabet)];
		n = body_run(in, len, (enum split)(iter % SPLIT_COUNT), out);
		/* Reference normalization: CR LF, CR, LF each -> CR LF; then a final CR LF. */
		for (i = 0; i < len; i++) {
			if (in[i] == '\r' || in[i] == '\n') {
				norm[nn++] = '\r';
				norm[nn++] = '\n';
				if (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n')
					i++;
			} else {
				norm[nn++] = in[i];
			}
		}
		if (nn > 0 && !(nn >= 2 && norm[nn - 2] == '\r' && norm[nn - 1] == '\n')) {
			norm[nn++] = '\r';
			norm[nn++] = '\n';
		}
		/* Every CR is followed by LF and every LF preceded by CR. */
		for (i = 0; i < n; i++) {
			if (out[i] == '\r')
				assert_true(i + 1 < n && out[i + 1] == '\n');
			if (out[i] == '\n')
				assert_true(i > 0 && out[i - 1] == '\r');
		}
		assert_true(n >= 3 && memcmp(out + n - 3, ".\r\n", 3) == 0);
		/* Un-stuff: a line starting with '.' loses it; the lone "." line is the end. */
		for (i = 0; i < n - 3;) {
			size_t e = i;

			while (!(out[e] == '\r' && out[e + 1] == '\n'))
				e++;
			if (out[i] == '.') {
				assert_true(e > i + 1 || out[i] != '.' || e - i >= 2);  /* ".." at least */
				i++;
			}
			memcpy(unst + nu, out + i, e + 2 - i);
			nu += e + 2 - i;
			i = e + 2;
		}
		assert_int_equal(nu, nn);
		assert_memory_equal(unst, norm, nn);
	}
}

/* ---------------------------------------------------------------- client engine, scripted */

struct script {
	struct delivery_client c;
	char                   sent[16384];
	size_t                 sent_len;
};

/* Takes everything the engine queued. */
static const char *drain(struct script *s)
{
	s->sent_len = 0;
	while (delivery_client_next(&s->c) == DELIVERY_CLIENT_EV_WRITE) {
		const uint8_t *p;
		size_t n;

		delivery_client_output(&s->c, &p, &n);
		assert_true(s->sent_len + n < sizeof(s->sent));
		memcpy(s->sent + s->sent_len, p, n);
		s->sent_len += n;
		delivery_client_sent(&s->c, n);
	}
	s->sent[s->sent_len] = '\0';
	return s->sent;
}

/* Feeds the server's bytes at random splits. */
static int feed(struct script *s, const char *server)
{
	size_t len = strlen(server), off = 0;

	while (off < len) {
		size_t n = chunk_len(SPLIT_RANDOM, len - off);
		int rc = delivery_client_input(&s->c, (const uint8_t *)server + off, n);

		if (rc != 0)
			return rc;
		off += n;
	}
	return 0;
}

static void script_start(struct script *s, enum delivery_client_tls tls, const char *ehlo_reply)
{
	struct delivery_client_conf conf = { .helo_name = "relay.test", .tls = tls };

	memset(s, 0, sizeof(*s));
	assert_int_equal(delivery_client_init(&s->c, &conf), 0);
	assert_int_equal(delivery_client_next(&s->c), DELIVERY_CLIENT_EV_READ);
	assert_int_equal(delivery_client_timeout_ms(&s->c), 300000);
	assert_int_equal(feed(s, "220 mx.test ESMTP\r\n"), 0);
	assert_string_equal(drain(s), "EHLO relay.test\r\n");
	if (ehlo_reply != NULL)
		assert_int_equal(feed(s, ehlo_reply), 0);
}

#define RCPT(a) { .addr = { (a), sizeof(a) - 1 } }

static void test_client_pipelined(void **state)
{
	struct script s;
	struct delivery_rcpt rc[3] = { RCPT("ok@d.test"), RCPT("later@d.test"), RCPT("bad@d.test") };
	struct delivery_client_msg m = { .mail_from = SLICE_LIT("s@src.test"), .size = 1234,
					 .body_8bit = true, .nrcpt = 3, .rcpt = rc };

	(void)state;
	script_start(&s, DELIVERY_CLIENT_TLS_MAY,
		     "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10000\r\n250-8BITMIME\r\n"
		     "250-ENHANCEDSTATUSCODES\r\n250 CHUNKING\r\n");
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_READY);
	assert_int_equal(s.c.caps, DELIVERY_CLIENT_CAP_PIPELINING | DELIVERY_CLIENT_CAP_SIZE |
				   DELIVERY_CLIENT_CAP_8BITMIME | DELIVERY_CLIENT_CAP_ENHANCED |
				   DELIVERY_CLIENT_CAP_CHUNKING);
	assert_int_equal(s.c.max_size, 10000);
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	/* One write: MAIL, every RCPT and DATA (RFC 2920). */
	assert_string_equal(drain(&s), "MAIL FROM:<s@src.test> SIZE=1234 BODY=8BITMIME\r\n"
				       "RCPT TO:<ok@d.test>\r\nRCPT TO:<later@d.test>\r\n"
				       "RCPT TO:<bad@d.test>\r\nDATA\r\n");
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_READ);
	assert_int_equal(delivery_client_timeout_ms(&s.c), 300000);
	assert_int_equal(feed(&s, "250 2.1.0 ok\r\n250 2.1.5 ok\r\n450 4.2.0 busy\r\n"
				  "550 5.1.1 no such user\r\n354 go ahead\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_BODY);
	assert_int_equal(delivery_client_timeout_ms(&s.c), 180000);
	assert_int_equal(delivery_client_body(&s.c, (const uint8_t *)"Subject: x\r\n\r\n.hi\n", 18,
					      true), 0);
	assert_string_equal(drain(&s), "Subject: x\r\n\r\n..hi\r\n.\r\n");
	assert_int_equal(delivery_client_timeout_ms(&s.c), 600000);
	assert_int_equal(feed(&s, "250 2.0.0 queued as X\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_MSG_DONE);
	assert_int_equal(rc[0].status, DELIVERY_RCPT_OK);
	assert_string_equal(rc[0].enh, "2.0.0");
	assert_int_equal(rc[1].status, DELIVERY_RCPT_DEFER);
	assert_int_equal(rc[1].code, 450);
	assert_string_equal(rc[1].diag, "450 4.2.0 busy");
	assert_int_equal(rc[2].status, DELIVERY_RCPT_FAIL);
	assert_string_equal(rc[2].enh, "5.1.1");
	assert_int_equal(m.naccepted, 1);
	assert_false(m.eightbit_downgrade);

	/* Reuse: RSET goes first in the next group. */
	delivery_client_msg_ack(&s.c);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_READY);
	m.body_8bit = false;
	m.nrcpt = 1;
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	assert_string_equal(drain(&s), "RSET\r\nMAIL FROM:<s@src.test> SIZE=1234\r\n"
				       "RCPT TO:<ok@d.test>\r\nDATA\r\n");
	assert_int_equal(feed(&s, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), 0);
	assert_int_equal(delivery_client_body(&s.c, (const uint8_t *)"x", 1, false), 0);
	assert_int_equal(delivery_client_body(&s.c, NULL, 0, true), 0);
	assert_string_equal(drain(&s), "x\r\n.\r\n");
	assert_int_equal(feed(&s, "451 4.3.0 try later\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_MSG_DONE);
	assert_int_equal(rc[0].status, DELIVERY_RCPT_DEFER);
	delivery_client_msg_ack(&s.c);
	delivery_client_quit(&s.c);
	assert_string_equal(drain(&s), "QUIT\r\n");
	assert_int_equal(feed(&s, "221 bye\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_CLOSED);
	assert_int_equal(s.c.error.err, 0);
	delivery_client_fini(&s.c);
}

static void test_client_lockstep(void **state)
{
	struct script s;
	struct delivery_rcpt rc[3] = { RCPT("a@d.test"), RCPT("b@d.test"), RCPT("c@d.test") };
	struct delivery_client_msg m = { .mail_from = SLICE_LIT(""), .size = 10, .body_8bit = true,
					 .nrcpt = 3, .rcpt = rc };

	(void)state;
	/* EHLO refused: HELO, then no extensions at all. */
	script_start(&s, DELIVERY_CLIENT_TLS_MAY, "502 5.5.1 what\r\n");
	assert_string_equal(drain(&s), "HELO relay.test\r\n");
	assert_int_equal(feed(&s, "250 hello\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_READY);
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	assert_true(m.eightbit_downgrade);   /* 8-bit, no 8BITMIME: sent as is */
	assert_string_equal(drain(&s), "MAIL FROM:<>\r\n");
	assert_int_equal(feed(&s, "250 ok\r\n"), 0);
	assert_string_equal(drain(&s), "RCPT TO:<a@d.test>\r\n");
	assert_int_equal(feed(&s, "550 no\r\n"), 0);
	assert_string_equal(drain(&s), "RCPT TO:<b@d.test>\r\n");
	assert_int_equal(feed(&s, "250 ok\r\n"), 0);
	assert_string_equal(drain(&s), "RCPT TO:<c@d.test>\r\n");
	assert_int_equal(delivery_client_timeout_ms(&s.c), 300000);
	assert_int_equal(feed(&s, "452 full\r\n"), 0);
	assert_string_equal(drain(&s), "DATA\r\n");
	assert_int_equal(delivery_client_timeout_ms(&s.c), 120000);
	assert_int_equal(feed(&s, "354 go\r\n"), 0);
	assert_int_equal(delivery_client_body(&s.c, (const uint8_t *)"hi\r\n", 4, true), 0);
	assert_string_equal(drain(&s), "hi\r\n.\r\n");
	assert_int_equal(feed(&s, "250 ok\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_MSG_DONE);
	assert_int_equal(rc[0].status, DELIVERY_RCPT_FAIL);
	assert_string_equal(rc[0].enh, "5.0.0");
	assert_int_equal(rc[1].status, DELIVERY_RCPT_OK);
	assert_int_equal(rc[2].status, DELIVERY_RCPT_DEFER);
	delivery_client_msg_ack(&s.c);

	/* Nobody accepted: no DATA at all without pipelining. */
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	assert_string_equal(drain(&s), "RSET\r\nMAIL FROM:<>\r\n");
	assert_int_equal(feed(&s, "250 ok\r\n250 ok\r\n"), 0);
	for (int i = 0; i < 3; i++) {
		assert_true(strncmp(drain(&s), "RCPT", 4) == 0);
		assert_int_equal(feed(&s, "550 5.1.1 no\r\n"), 0);
	}
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_MSG_DONE);
	for (int i = 0; i < 3; i++)
		assert_int_equal(rc[i].status, DELIVERY_RCPT_FAIL);
	delivery_client_msg_ack(&s.c);

	/* MAIL refused: every recipient gets its reply. */
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	assert_string_equal(drain(&s), "RSET\r\nMAIL FROM:<>\r\n");
	assert_int_equal(feed(&s, "250 ok\r\n451 4.7.1 greylisted\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_MSG_DONE);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(rc[i].status, DELIVERY_RCPT_DEFER);
		assert_string_equal(rc[i].enh, "4.7.1");
	}
	delivery_client_fini(&s.c);
}

static void test_client_pipelined_none_accepted(void **state)
{
	struct script s;
	struct delivery_rcpt rc[2] = { RCPT("a@d.test"), RCPT("b@d.test") };
	struct delivery_client_msg m = { .mail_from = SLICE_LIT("x@y.test"), .nrcpt = 2, .rcpt = rc };

	(void)state;
	script_start(&s, DELIVERY_CLIENT_TLS_NONE, "250-mx\r\n250 PIPELINING\r\n");
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	drain(&s);
	/* A server that says 354 although nobody was accepted gets an empty body (RFC 2920 3.1). */
	assert_int_equal(feed(&s, "250 ok\r\n550 no\r\n550 no\r\n354 go\r\n"), 0);
	assert_string_equal(drain(&s), ".\r\n");
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_READ);
	assert_int_equal(feed(&s, "554 no valid recipients\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_MSG_DONE);
	assert_int_equal(rc[0].status, DELIVERY_RCPT_FAIL);
	assert_int_equal(rc[1].status, DELIVERY_RCPT_FAIL);
	delivery_client_msg_ack(&s.c);
	/* The usual: 503/554 to DATA. */
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	drain(&s);
	assert_int_equal(feed(&s, "250 ok\r\n250 ok\r\n450 no\r\n550 no\r\n554 5.5.1 no rcpts\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_MSG_DONE);
	assert_int_equal(rc[0].status, DELIVERY_RCPT_DEFER);
	assert_int_equal(rc[1].status, DELIVERY_RCPT_FAIL);
	delivery_client_fini(&s.c);
}

static void test_client_local_refusals(void **state)
{
	struct script s;
	struct delivery_rcpt rc[2] = { RCPT("a@d.test"), RCPT("b\r\nRSET@d.test") };
	struct delivery_client_msg m = { .mail_from = SLICE_LIT("x@y.test"), .size = 2000,
					 .nrcpt = 2, .rcpt = rc };

	(void)state;
	script_start(&s, DELIVERY_CLIENT_TLS_MAY, "250-mx\r\n250 SIZE 1000\r\n");
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_MSG_DONE);
	assert_int_equal(rc[0].status, DELIVERY_RCPT_FAIL);
	assert_string_equal(rc[0].enh, "5.3.4");
	assert_string_equal(rc[1].enh, "5.1.3");   /* CR LF in an address is never sent */
	assert_int_equal(buf_unread(&s.c.out), 0);
	delivery_client_msg_ack(&s.c);
	m.size = 10;
	m.smtputf8 = true;
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_MSG_DONE);
	assert_string_equal(rc[0].enh, "5.6.7");
	delivery_client_msg_ack(&s.c);
	m.smtputf8 = false;
	m.nrcpt = 0;
	assert_int_equal(delivery_client_begin(&s.c, &m), -EINVAL);
	delivery_client_fini(&s.c);
}

static void test_client_starttls(void **state)
{
	struct script s;
	int rc;

	(void)state;
	script_start(&s, DELIVERY_CLIENT_TLS_MAY, "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
	assert_string_equal(drain(&s), "STARTTLS\r\n");
	assert_int_equal(feed(&s, "220 ready\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_STARTTLS);
	delivery_client_tls_done(&s.c, true);
	assert_true(s.c.tls_active);
	assert_int_equal(s.c.caps, 0);   /* forgotten until the new EHLO */
	assert_string_equal(drain(&s), "EHLO relay.test\r\n");
	assert_int_equal(feed(&s, "250-mx\r\n250 PIPELINING\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_READY);
	delivery_client_fini(&s.c);

	/* Bytes after the 220 in the same read: injected, never acted on. */
	script_start(&s, DELIVERY_CLIENT_TLS_MAY, "250-mx\r\n250 STARTTLS\r\n");
	drain(&s);
	rc = delivery_client_input(&s.c, (const uint8_t *)"220 go\r\n250 fake\r\n", 18);
	assert_int_equal(rc, -EPROTO);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_CLOSED);
	delivery_client_fini(&s.c);

	/* Required but not offered. */
	script_start(&s, DELIVERY_CLIENT_TLS_REQUIRED, "250-mx\r\n250 PIPELINING\r\n");
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_CLOSED);
	assert_string_equal(s.c.error.enh, "4.7.4");
	delivery_client_fini(&s.c);

	/* Offered, refused, opportunistic: go on in plain text. */
	script_start(&s, DELIVERY_CLIENT_TLS_MAY, "250-mx\r\n250 STARTTLS\r\n");
	drain(&s);
	assert_int_equal(feed(&s, "454 4.7.0 TLS not available\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_READY);
	assert_false(s.c.tls_active);
	delivery_client_fini(&s.c);

	/* Handshake failed. */
	script_start(&s, DELIVERY_CLIENT_TLS_MAY, "250-mx\r\n250 STARTTLS\r\n");
	drain(&s);
	assert_int_equal(feed(&s, "220 go\r\n"), 0);
	delivery_client_tls_done(&s.c, false);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_CLOSED);
	assert_string_equal(s.c.error.enh, "4.7.5");
	delivery_client_fini(&s.c);
}

/* One deadline per stage: the wait key moves with the stage and the kind of reply awaited, never
 * with bytes that only add to a reply (a server answering a byte at a time). */
static void test_client_wait_key(void **state)
{
	struct script s;
	struct delivery_client_conf conf = {
		.helo_name = "relay.test", .tls = DELIVERY_CLIENT_TLS_MAY,
		.timeouts = { .banner_ms = 1111, .helo_ms = 2222, .starttls_ms = 3333, .mail_ms = 4444,
			      .rcpt_ms = 5555, .data_init_ms = 6666, .data_block_ms = 7777,
			      .data_final_ms = 8888 },
	};
	struct delivery_rcpt rc[2] = { RCPT("a@d.test"), RCPT("b@d.test") };
	struct delivery_client_msg m = { .mail_from = SLICE_LIT("s@src.test"), .size = 5,
					 .nrcpt = 2, .rcpt = rc };
	uint32_t banner, ehlo, tls, mail, rcpt, data, body, dot;
	const char *banner_bytes = "220 mx.test ESMTP\r\n";

	(void)state;
	memset(&s, 0, sizeof(s));
	assert_int_equal(delivery_client_init(&s.c, &conf), 0);
	banner = delivery_client_wait_key(&s.c);
	assert_int_not_equal(banner, 0);
	assert_int_equal(delivery_client_timeout_ms(&s.c), 1111);
	/* Byte by byte: the same wait until the reply is whole. */
	for (size_t i = 0; i + 1 < strlen(banner_bytes); i++) {
		assert_int_equal(delivery_client_input(&s.c, (const uint8_t *)banner_bytes + i, 1), 0);
		assert_int_equal(delivery_client_wait_key(&s.c), banner);
	}
	assert_int_equal(delivery_client_input(&s.c, (const uint8_t *)"\n", 1), 0);
	drain(&s);
	ehlo = delivery_client_wait_key(&s.c);
	assert_int_not_equal(ehlo, banner);
	assert_int_equal(delivery_client_timeout_ms(&s.c), 2222);
	assert_int_equal(feed(&s, "250-mx\r\n250-PIPELINING\r"), 0);
	assert_int_equal(delivery_client_wait_key(&s.c), ehlo);
	assert_int_equal(feed(&s, "\n250 STARTTLS\r\n"), 0);
	assert_string_equal(drain(&s), "STARTTLS\r\n");
	tls = delivery_client_wait_key(&s.c);
	assert_int_not_equal(tls, ehlo);
	assert_int_equal(delivery_client_timeout_ms(&s.c), 3333);
	/* STARTTLS's reply and the handshake: one stage, one deadline. */
	assert_int_equal(feed(&s, "220 go\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_STARTTLS);
	assert_int_equal(delivery_client_wait_key(&s.c), tls);
	assert_int_equal(delivery_client_timeout_ms(&s.c), 3333);
	delivery_client_tls_done(&s.c, true);
	assert_string_equal(drain(&s), "EHLO relay.test\r\n");
	assert_int_not_equal(delivery_client_wait_key(&s.c), tls);
	assert_int_equal(feed(&s, "250-mx\r\n250 PIPELINING\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_READY);
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	drain(&s);
	mail = delivery_client_wait_key(&s.c);
	assert_int_equal(delivery_client_timeout_ms(&s.c), 4444);
	assert_int_equal(feed(&s, "250 ok\r\n"), 0);
	rcpt = delivery_client_wait_key(&s.c);
	assert_int_not_equal(rcpt, mail);
	assert_int_equal(delivery_client_timeout_ms(&s.c), 5555);
	/* The RCPTs together are one stage. */
	assert_int_equal(feed(&s, "250 ok\r\n"), 0);
	assert_int_equal(delivery_client_wait_key(&s.c), rcpt);
	assert_int_equal(feed(&s, "250 ok\r\n"), 0);
	data = delivery_client_wait_key(&s.c);
	assert_int_not_equal(data, rcpt);
	assert_int_equal(delivery_client_timeout_ms(&s.c), 6666);
	assert_int_equal(feed(&s, "354 go\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_BODY);
	body = delivery_client_wait_key(&s.c);
	assert_int_not_equal(body, data);
	assert_int_equal(delivery_client_timeout_ms(&s.c), 7777);
	assert_int_equal(delivery_client_body(&s.c, (const uint8_t *)"hi\r\n", 4, false), 0);
	drain(&s);
	assert_int_equal(delivery_client_wait_key(&s.c), body);
	assert_int_equal(delivery_client_body(&s.c, NULL, 0, true), 0);
	drain(&s);
	dot = delivery_client_wait_key(&s.c);
	assert_int_not_equal(dot, body);
	assert_int_equal(delivery_client_timeout_ms(&s.c), 8888);
	assert_int_equal(feed(&s, "250 done\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_MSG_DONE);
	delivery_client_fini(&s.c);
}

static void test_client_failures(void **state)
{
	struct script s;
	struct delivery_rcpt rc[2] = { RCPT("a@d.test"), RCPT("b@d.test") };
	struct delivery_client_msg m = { .mail_from = SLICE_LIT("x@y.test"), .nrcpt = 2, .rcpt = rc };
	struct delivery_client_conf conf = { .helo_name = "relay.test" };
	char endless[200 * 12 + 16];
	size_t n = 0;

	(void)state;
	/* A 554 banner: the session ends; a 5xx here is about the host, not the recipients. */
	memset(&s, 0, sizeof(s));
	assert_int_equal(delivery_client_init(&s.c, &conf), 0);
	assert_int_equal(feed(&s, "554 5.7.1 go away\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_CLOSED);
	assert_int_equal(s.c.error.code, 554);
	assert_int_equal(s.c.error.stage, DELIVERY_CLIENT_ST_BANNER);
	delivery_client_fini(&s.c);

	/* An endless multi-line EHLO reply: bounded, then the session ends. */
	script_start(&s, DELIVERY_CLIENT_TLS_MAY, NULL);
	for (int i = 0; i < 200; i++)
		n += (size_t)sprintf(endless + n, "250-XX%04d\r\n", i);
	assert_int_equal(delivery_client_input(&s.c, (const uint8_t *)endless, n), -EMSGSIZE);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_CLOSED);
	delivery_client_fini(&s.c);

	/* 421 in the middle of the transaction: every undecided recipient is deferred. */
	script_start(&s, DELIVERY_CLIENT_TLS_MAY, "250-mx\r\n250 PIPELINING\r\n");
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	drain(&s);
	assert_int_equal(feed(&s, "250 ok\r\n550 5.1.1 no\r\n421 4.3.2 shutting down\r\n"), 0);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_CLOSED);
	assert_int_equal(rc[0].status, DELIVERY_RCPT_FAIL);
	assert_int_equal(rc[1].status, DELIVERY_RCPT_DEFER);
	assert_string_equal(rc[1].enh, "4.3.2");
	delivery_client_fini(&s.c);

	/* The connection drops after the final dot: unknown outcome, so deferred. */
	script_start(&s, DELIVERY_CLIENT_TLS_MAY, "250-mx\r\n250 PIPELINING\r\n");
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	drain(&s);
	assert_int_equal(feed(&s, "250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"), 0);
	assert_int_equal(delivery_client_body(&s.c, (const uint8_t *)"x\r\n", 3, true), 0);
	drain(&s);
	delivery_client_abort(&s.c, -ECONNRESET);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_CLOSED);
	assert_int_equal(rc[0].status, DELIVERY_RCPT_DEFER);
	assert_string_equal(rc[0].enh, "4.4.2");
	assert_int_equal(rc[1].status, DELIVERY_RCPT_DEFER);
	delivery_client_fini(&s.c);

	/* Garbage instead of a reply; and a reply nobody asked for. */
	script_start(&s, DELIVERY_CLIENT_TLS_MAY, NULL);
	assert_int_equal(feed(&s, "HTTP/1.1 400 Bad\r\n"), -EPROTO);
	delivery_client_fini(&s.c);
	script_start(&s, DELIVERY_CLIENT_TLS_MAY, "250-mx\r\n250 PIPELINING\r\n");
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	drain(&s);
	assert_int_equal(feed(&s, "250 a\r\n250 b\r\n250 c\r\n354 d\r\n250 extra\r\n"), -EPROTO);
	assert_int_equal(rc[0].status, DELIVERY_RCPT_DEFER);
	delivery_client_fini(&s.c);

	/* An idle, reused connection timed out by the server. */
	script_start(&s, DELIVERY_CLIENT_TLS_MAY, "250 mx\r\n");
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_READY);
	assert_int_equal(feed(&s, "421 4.4.2 mx.test Error: timeout exceeded\r\n"), -ECONNRESET);
	assert_int_equal(delivery_client_next(&s.c), DELIVERY_CLIENT_EV_CLOSED);
	assert_int_equal(s.c.error.code, 421);
	assert_string_equal(s.c.error.enh, "4.4.2");
	delivery_client_fini(&s.c);

	/* A timeout while waiting for RCPT replies. */
	script_start(&s, DELIVERY_CLIENT_TLS_MAY, "250 mx\r\n");
	assert_int_equal(delivery_client_begin(&s.c, &m), 0);
	drain(&s);
	delivery_client_abort(&s.c, -ETIMEDOUT);
	assert_string_equal(rc[0].enh, "4.4.1");
	delivery_client_fini(&s.c);
}

static void test_client_caps(void **state)
{
	uint64_t size;
	const char *t = "mx greets\nsize 52428800\n8bitmime\nSTARTTLS\nSMTPUTF8\nAUTH PLAIN\nDSN";

	(void)state;
	assert_int_equal(delivery_client_parse_caps(t, strlen(t), &size),
			 DELIVERY_CLIENT_CAP_SIZE | DELIVERY_CLIENT_CAP_8BITMIME |
				 DELIVERY_CLIENT_CAP_STARTTLS | DELIVERY_CLIENT_CAP_SMTPUTF8 |
				 DELIVERY_CLIENT_CAP_DSN);
	assert_int_equal(size, 52428800);
	/* The greeting line is not a keyword; SIZE without a number means no limit. */
	t = "PIPELINING\nSIZE\nPIPELININGX";
	assert_int_equal(delivery_client_parse_caps(t, strlen(t), &size), DELIVERY_CLIENT_CAP_SIZE);
	assert_int_equal(size, 0);
	t = "x\nSIZE 99999999999999999999999";
	delivery_client_parse_caps(t, strlen(t), &size);
	assert_int_equal(size, 0);
}

/* ---------------------------------------------------------------- retry */

static void test_retry(void **state)
{
	struct delivery_retry_conf c;
	struct delivery_retry_plan p;
	char err[128];
	const uint64_t M = 60000, H = 3600000;

	(void)state;
	delivery_retry_conf_default(&c);
	assert_int_equal(delivery_retry_conf_check(&c, err, sizeof(err)), 0);
	c.jitter_pct = 0;
	assert_int_equal(delivery_retry_delay_ms(&c, 1, 0), 5 * M);
	assert_int_equal(delivery_retry_delay_ms(&c, 2, 0), 5 * M);
	assert_int_equal(delivery_retry_delay_ms(&c, 3, 0), 10 * M);
	assert_int_equal(delivery_retry_delay_ms(&c, 4, 0), 20 * M);
	assert_int_equal(delivery_retry_delay_ms(&c, 5, 0), 40 * M);
	assert_int_equal(delivery_retry_delay_ms(&c, 6, 0), 60 * M);
	assert_int_equal(delivery_retry_delay_ms(&c, 1000, 0), 60 * M);
	/* Jitter stays within +-10% and under the cap, and it does vary. */
	c.jitter_pct = 10;
	{
		uint64_t lo = UINT64_MAX, hi = 0;

		for (uint32_t r = 0; r < 2000; r++) {
			uint64_t d = delivery_retry_delay_ms(&c, 3, rng());

			assert_true(d >= 9 * M && d <= 11 * M);
			lo = d < lo ? d : lo;
			hi = d > hi ? d : hi;
			assert_true(delivery_retry_delay_ms(&c, 50, rng()) <= 60 * M);
		}
		assert_true(hi - lo > M);
	}
	/* Keys. */
	assert_int_equal(delivery_retry_conf_set(&c, "retry_first", "1m"), 0);
	assert_int_equal(c.first_ms, M);
	assert_int_equal(delivery_retry_conf_set(&c, "retry_max", "2h"), 0);
	assert_int_equal(delivery_retry_conf_set(&c, "expire", "3d"), 0);
	assert_int_equal(c.expire_ms, 72 * H);
	assert_int_equal(delivery_retry_conf_set(&c, "delay_warning", "0"), 0);
	assert_int_equal(delivery_retry_conf_set(&c, "nonsense", "1"), -ENOENT);
	assert_true(delivery_retry_conf_set(&c, "expire", "soon") < 0);
	assert_true(delivery_retry_conf_set(&c, "retry_jitter", "90") < 0);
	assert_int_equal(delivery_retry_conf_check(&c, err, sizeof(err)), 0);
	c.max_ms = 30000;
	assert_int_equal(delivery_retry_conf_check(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "retry_max"));

	/* Plans. */
	delivery_retry_conf_default(&c);
	c.jitter_pct = 0;
	delivery_retry_plan(&c, 1000, 1000 + 10 * M, 1, false, 0, &p);
	assert_int_equal(p.verdict, DELIVERY_RETRY_AGAIN);
	assert_int_equal(p.next_ms, 1000 + 15 * M);
	assert_false(p.warn_now);
	delivery_retry_plan(&c, 1000, 1000 + 4 * H, 9, false, 0, &p);
	assert_true(p.warn_now);
	delivery_retry_plan(&c, 1000, 1000 + 4 * H, 9, true, 0, &p);
	assert_false(p.warn_now);
	/* The last gap is pulled in to the expiry time. */
	delivery_retry_plan(&c, 1000, 1000 + 120 * H - 10 * M, 99, true, 0, &p);
	assert_int_equal(p.verdict, DELIVERY_RETRY_AGAIN);
	assert_int_equal(p.next_ms, 1000 + 120 * H);
	delivery_retry_plan(&c, 1000, 1000 + 120 * H, 100, true, 0, &p);
	assert_int_equal(p.verdict, DELIVERY_RETRY_EXPIRED);
	c.delay_warning_ms = 0;
	delivery_retry_plan(&c, 1000, 1000 + 100 * H, 9, false, 0, &p);
	assert_false(p.warn_now);
}

/* ---------------------------------------------------------------- routes */

static void test_route_fixed(void **state)
{
	struct domain_conf dc = { .name = (char *)"d.test", .ndest = 4 };
	struct delivery_route r;

	(void)state;
	snprintf(dc.dest[0].host, sizeof(dc.dest[0].host), "backup");
	dc.dest[0].port = 2525;
	dc.dest[0].prio = 20;
	snprintf(dc.dest[1].host, sizeof(dc.dest[1].host), "a");
	dc.dest[1].prio = 10;
	snprintf(dc.dest[2].host, sizeof(dc.dest[2].host), "b");
	dc.dest[2].prio = 10;
	snprintf(dc.dest[3].host, sizeof(dc.dest[3].host), "c");
	dc.dest[3].prio = 10;
	assert_int_equal(delivery_route_fixed(&dc, 0, &r), 0);
	assert_int_equal(r.n, 4);
	assert_string_equal(r.d[0].host, "a");
	assert_string_equal(r.d[1].host, "b");
	assert_string_equal(r.d[2].host, "c");
	assert_string_equal(r.d[3].host, "backup");
	assert_int_equal(r.d[3].port, 2525);
	assert_int_equal(r.d[0].port, 25);
	/* Round robin within the equal priorities; the backup stays last. */
	assert_int_equal(delivery_route_fixed(&dc, 1, &r), 0);
	assert_string_equal(r.d[0].host, "b");
	assert_string_equal(r.d[1].host, "c");
	assert_string_equal(r.d[2].host, "a");
	assert_string_equal(r.d[3].host, "backup");
	assert_int_equal(delivery_route_fixed(&dc, 5, &r), 0);
	assert_string_equal(r.d[0].host, "c");
	dc.route_mx = true;
	assert_int_equal(delivery_route_fixed(&dc, 0, &r), -ENOENT);
}

static void test_route_mx(void **state)
{
	const struct delivery_route_mx mx[] = {
		{ "mx3.d.test", 30 }, { "mx1a.d.test", 10 }, { "mx1b.d.test", 10 }, { "mx2.d.test", 20 },
	};
	struct delivery_route r;
	unsigned first_a = 0, first_b = 0;

	(void)state;
	for (uint64_t seed = 0; seed < 200; seed++) {
		assert_int_equal(delivery_route_mx("d.test", mx, 4, 25, NULL, seed * 7919, &r), 0);
		assert_int_equal(r.n, 4);
		assert_int_equal(r.d[0].prio, 10);
		assert_int_equal(r.d[1].prio, 10);
		assert_string_equal(r.d[2].host, "mx2.d.test");
		assert_string_equal(r.d[3].host, "mx3.d.test");
		if (strcmp(r.d[0].host, "mx1a.d.test") == 0)
			first_a++;
		else if (strcmp(r.d[0].host, "mx1b.d.test") == 0)
			first_b++;
	}
	/* Equal preferences are shuffled: both orders happen, about evenly. */
	assert_int_equal(first_a + first_b, 200);
	assert_true(first_a > 50 && first_b > 50);

	/* No MX: the implicit MX. */
	assert_int_equal(delivery_route_mx("d.test", NULL, 0, 25, NULL, 0, &r), 0);
	assert_int_equal(r.n, 1);
	assert_true(r.d[0].implicit);
	assert_string_equal(r.d[0].host, "d.test");
	/* Null MX (RFC 7505). */
	{
		const struct delivery_route_mx nul[] = { { "", 0 } }, dot[] = { { ".", 0 } };

		assert_int_equal(delivery_route_mx("d.test", nul, 1, 25, NULL, 0, &r), -ENXIO);
		assert_int_equal(delivery_route_mx("d.test", dot, 1, 25, NULL, 0, &r), -ENXIO);
	}
	/* We are an MX: only the more preferred ones remain; none left is a loop. */
	assert_int_equal(delivery_route_mx("d.test", mx, 4, 25, "MX2.d.test.", 1, &r), 0);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.d[0].prio, 10);
	assert_int_equal(r.d[1].prio, 10);
	assert_int_equal(delivery_route_mx("d.test", mx, 4, 25, "mx1a.d.test", 1, &r), -ELOOP);
	/* More than fit: the most preferred are kept. */
	{
		struct delivery_route_mx many[40];
		char names[40][32];

		for (unsigned i = 0; i < 40; i++) {
			snprintf(names[i], sizeof(names[i]), "mx%u.d.test", i);
			many[i].host = names[i];
			many[i].pref = (uint16_t)(100 - i);
		}
		assert_int_equal(delivery_route_mx("d.test", many, 40, 25, NULL, 3, &r), 0);
		assert_int_equal(r.n, DELIVERY_ROUTE_MAX);
		assert_int_equal(r.d[0].prio, 61);
		assert_int_equal(r.d[DELIVERY_ROUTE_MAX - 1].prio, 76);
	}
}

static void test_route_health(void **state)
{
	struct delivery_route_health *h = malloc(sizeof(*h));
	const struct delivery_route_mx mx[] = { { "a.test", 10 }, { "b.test", 20 } };
	struct delivery_route r;
	unsigned idx;
	uint64_t at = 0;

	(void)state;
	delivery_route_health_init(h, 2, 1000, 8000);
	assert_int_equal(delivery_route_mx("d.test", mx, 2, 25, NULL, 0, &r), 0);
	assert_int_equal(delivery_route_pick(&r, h, 0, 0, &idx, &at), 0);
	assert_int_equal(idx, 0);
	/* One failure is under the threshold. */
	delivery_route_health_report(h, "a.test", 25, false, 100);
	assert_int_equal(delivery_route_health_down_until(h, "a.test", 25, 100), 0);
	delivery_route_health_report(h, "A.TEST", 25, false, 100);
	assert_int_equal(delivery_route_health_down_until(h, "a.test", 25, 100), 1100);
	assert_int_equal(delivery_route_health_down_until(h, "a.test", 26, 100), 0);
	assert_int_equal(delivery_route_pick(&r, h, 0, 200, &idx, &at), 0);
	assert_int_equal(idx, 1);
	/* Doubling, capped. */
	for (int i = 0; i < 10; i++)
		delivery_route_health_report(h, "a.test", 25, false, 200);
	assert_int_equal(delivery_route_health_down_until(h, "a.test", 25, 200), 8200);
	delivery_route_health_report(h, "b.test", 25, false, 300);
	delivery_route_health_report(h, "b.test", 25, false, 300);
	assert_int_equal(delivery_route_pick(&r, h, 0, 400, &idx, &at), -EAGAIN);
	assert_int_equal(at, 1300);
	/* Back after its time; a success clears the count. */
	assert_int_equal(delivery_route_pick(&r, h, 0, 1300, &idx, &at), 0);
	assert_int_equal(idx, 1);
	delivery_route_health_report(h, "a.test", 25, true, 1400);
	assert_int_equal(delivery_route_pick(&r, h, 0, 1400, &idx, &at), 0);
	assert_int_equal(idx, 0);
	assert_int_equal(delivery_route_pick(&r, h, 2, 1400, &idx, &at), -ENOENT);
	free(h);
}

/* ---------------------------------------------------------------- DSN */

static const char orig_msg[] =
	"Received: from client.test\r\n"
	"From: Alice <alice@src.test>\r\n"
	"To: bob@d.test\r\n"
	"Subject: hello\r\n"
	"Message-ID: <m1@src.test>\r\n"
	"\r\n"
	"Body line one.\r\n"
	"--=_sluice_0000000000000001_0100000200000040\r\n"
	"Body line three.\r\n";

/* Runs the Python checker on a DSN; returns its exit status. */
static int check_dsn_python(const struct delivery_dsn_out *o, const char *mode)
{
	char path[] = "/tmp/sluice-dsn-XXXXXX", cmd[1024];
	const char *root = getenv("SLUICE_SOURCE_ROOT");
	int fd = mkstemp(path), st;

	assert_true(fd >= 0);
	assert_int_equal(write(fd, o->data, o->len), (ssize_t)o->len);
	close(fd);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s/tests/integration/delivery/check_dsn.py %s %s",
		 root ? root : ".", mode, path);
	st = system(cmd);
	unlink(path);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_dsn(void **state)
{
	struct delivery_dsn_rcpt rc[2] = {
		{ .addr = SLICE_LIT("bob@d.test"), .action = DELIVERY_DSN_FAILED, .status = "5.1.1",
		  .remote_mta = SLICE_LIT("mx.d.test"), .diag = SLICE_LIT("550 5.1.1 no such user"),
		  .last_attempt_ns = 1764000000ull * 1000000000ull },
		{ .addr = SLICE_LIT("carol@d.test"), .action = DELIVERY_DSN_FAILED, .status = "bogus",
		  .diag = SLICE_LIT("message expired\r\nInjected: header"),
		  .last_attempt_ns = 1764000000ull * 1000000000ull },
	};
	struct delivery_dsn_req q = {
		.reporting_mta = "gw.sluice.test", .sender = SLICE_LIT("alice@src.test"),
		.queue_id = SLICE_LIT("0100000200000040"), .arrival_ns = 1763600000ull * 1000000000ull,
		.now_ns = 1764000000ull * 1000000000ull, .orig = (const uint8_t *)orig_msg,
		.orig_len = sizeof(orig_msg) - 1, .nrcpt = 2, .rcpt = rc, .rnd = 1,
	};
	struct delivery_dsn_out o;

	(void)state;
	/* The rules. */
	q.sender = SLICE_LIT("");
	assert_int_equal(delivery_dsn_compose(&q, &o), -EPERM);
	assert_null(o.data);
	q.sender = SLICE_LIT("<>");
	assert_int_equal(delivery_dsn_compose(&q, &o), -EPERM);
	q.sender = SLICE_LIT("alice@src.test");
	q.spam = true;
	assert_int_equal(delivery_dsn_compose(&q, &o), -EPERM);
	q.spam = false;
	q.nrcpt = 0;
	assert_int_equal(delivery_dsn_compose(&q, &o), -EINVAL);
	q.nrcpt = 2;

	/* Failed, headers only. The boundary must dodge the one planted in the body. */
	assert_int_equal(delivery_dsn_compose(&q, &o), 0);
	assert_false(o.full);
	assert_false(o.eightbit);
	assert_non_null(strstr(o.data, "Action: failed\r\n"));
	assert_non_null(strstr(o.data, "Status: 5.0.0\r\n"));   /* "bogus" replaced */
	assert_null(strstr(o.data, "\r\nInjected:"));
	assert_null(strstr(o.data, "Body line one"));
	assert_null(strstr(o.data, "boundary=\"=_sluice_0000000000000001_"));
	assert_int_equal(check_dsn_python(&o, "failed"), 0);
	delivery_dsn_out_free(&o);

	/* RET=FULL and small: the whole message. */
	q.ret_full = true;
	assert_int_equal(delivery_dsn_compose(&q, &o), 0);
	assert_true(o.full);
	assert_int_equal(check_dsn_python(&o, "full"), 0);
	delivery_dsn_out_free(&o);
	/* RET=FULL but too big: the header only. */
	q.full_max = 64;
	assert_int_equal(delivery_dsn_compose(&q, &o), 0);
	assert_false(o.full);
	delivery_dsn_out_free(&o);
	q.ret_full = false;

	/* Delayed. */
	rc[0].action = DELIVERY_DSN_DELAYED;
	rc[0].status = "4.4.1";
	rc[0].diag = SLICE_LIT("connect to mx.d.test: timed out");
	rc[0].retry_until_ns = 1764400000ull * 1000000000ull;
	q.nrcpt = 1;
	assert_int_equal(delivery_dsn_compose(&q, &o), 0);
	assert_non_null(strstr(o.data, "Action: delayed\r\n"));
	assert_non_null(strstr(o.data, "Will-Retry-Until: "));
	assert_non_null(strstr(o.data, "Subject: Delayed Mail"));
	assert_int_equal(check_dsn_python(&o, "delayed"), 0);
	delivery_dsn_out_free(&o);

	{
		char d[40];

		delivery_dsn_date(0, d);
		assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 +0000");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reply_cases),
		cmocka_unit_test(test_reply_limits),
		cmocka_unit_test(test_body_cases),
		cmocka_unit_test(test_body_wrap),
		cmocka_unit_test(test_body_property),
		cmocka_unit_test(test_client_pipelined),
		cmocka_unit_test(test_client_lockstep),
		cmocka_unit_test(test_client_pipelined_none_accepted),
		cmocka_unit_test(test_client_local_refusals),
		cmocka_unit_test(test_client_starttls),
		cmocka_unit_test(test_client_failures),
		cmocka_unit_test(test_client_caps),
		cmocka_unit_test(test_retry),
		cmocka_unit_test(test_route_fixed),
		cmocka_unit_test(test_route_mx),
		cmocka_unit_test(test_route_health),
		cmocka_unit_test(test_dsn),
		cmocka_unit_test(test_client_wait_key),
		cmocka_unit_test(test_body_longest),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
