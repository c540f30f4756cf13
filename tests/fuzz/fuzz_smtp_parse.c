/*
 * fuzz_smtp_parse.c - libFuzzer target for smtp_parse.c.
 *
 * Input: byte 0 picks the line limit, byte 1 seeds the split points, the rest is the client's
 * byte stream. The stream goes through smtp_line_next twice, whole and cut at split points
 * drawn from the input; for limits up to sizeof(lb->buf) both runs must report the same
 * sequence of lines and statuses. Every line goes through smtp_parse_verb and then through every
 * argument parser (not only its own verb's, for coverage). Invariants: used <= len, AGAIN
 * consumes everything, slices stay inside the input, the holder or the argument, a DONE line
 * has no CR, LF or NUL and fits the limit, and whatever a parser accepts obeys its grammar's
 * limits.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/smtp_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static bool inside(struct slice s, const void *base, size_t len)
{
	const char *b = base;
	return s.len == 0 || (s.p >= b && s.p + s.len <= b + len);
}

static void check_path(const struct smtp_path *p, struct slice arg, bool postmaster)
{
	CHECK(inside(p->addr, arg.p, arg.len));
	CHECK(inside(p->local, arg.p, arg.len));
	CHECK(inside(p->domain, arg.p, arg.len));
	if (p->is_null) {
		CHECK(p->addr.len == 0);
		return;
	}
	CHECK(p->local.len >= 1 && p->local.len <= SMTP_LOCAL_MAX);
	CHECK(p->domain.len <= SMTP_DOMAIN_MAX);
	CHECK(p->addr.len <= SMTP_PATH_MAX - 2);
	if (postmaster) {
		CHECK(p->domain.len == 0 && slice_eq_nocase(p->addr, "postmaster"));
		return;
	}
	CHECK(p->domain.len >= 1);
	CHECK(p->addr.p == p->local.p && p->domain.p == p->local.p + p->local.len + 1);
	CHECK(p->addr.len == p->local.len + 1 + p->domain.len);
	CHECK(p->local.p[p->local.len] == '@');
	bool hi = false;
	for (size_t i = 0; i < p->addr.len; i++) {
		uint8_t b = (uint8_t)p->addr.p[i];
		CHECK(b >= 0x20 && b != 0x7f);
		hi |= b >= 0x80;
	}
	if (hi)
		CHECK(p->utf8);
}

static void parse_args(struct slice arg)
{
	struct smtp_mail_args m;
	struct smtp_rcpt_args r;
	enum smtp_arg_err e;
	uint64_t size;
	bool last;

	e = smtp_parse_mail_arg(arg, &m);
	CHECK((unsigned)e < SMTP_ARG_COUNT);
	CHECK(smtp_parse_err_reply(e, false) != NULL);
	if (e == SMTP_ARG_OK) {
		check_path(&m.path, arg, false);
		CHECK(!m.path.utf8 || m.smtputf8);
		CHECK(inside(m.ret, arg.p, arg.len) && inside(m.envid, arg.p, arg.len));
		CHECK(m.envid.len <= 100);
		CHECK(m.has_size || m.size == 0);
		CHECK(m.body <= SMTP_BODY_BINARYMIME);
	}
	e = smtp_parse_rcpt_arg(arg, &r);
	CHECK((unsigned)e < SMTP_ARG_COUNT);
	CHECK(smtp_parse_err_reply(e, true) != NULL);
	if (e == SMTP_ARG_OK) {
		CHECK(!r.path.is_null);
		check_path(&r.path, arg, r.postmaster);
		CHECK(inside(r.notify, arg.p, arg.len) && inside(r.orcpt, arg.p, arg.len));
		CHECK(r.orcpt.len <= 500);
	}
	e = smtp_parse_bdat_arg(arg, &size, &last);
	CHECK((unsigned)e < SMTP_ARG_COUNT);
	if (e == SMTP_ARG_OK)
		CHECK(size <= SMTP_BDAT_CHUNK_MAX);
	e = smtp_parse_helo_arg(arg);
	if (e == SMTP_ARG_OK) {
		CHECK(arg.len > 0);
		for (size_t i = 0; i < arg.len; i++)
			CHECK((uint8_t)arg.p[i] > ' ' && (uint8_t)arg.p[i] != 0x7f);
	}
}

/* Events of one run, to compare whole against split: status and line bytes, concatenated. */
struct events {
	uint8_t *buf;
	size_t   len, cap;
};

static void ev_add(struct events *ev, uint8_t tag, const void *p, size_t n)
{
	CHECK(ev->len + n + 9 <= ev->cap);
	ev->buf[ev->len++] = tag;
	memcpy(ev->buf + ev->len, &n, sizeof(n));
	ev->len += sizeof(n);
	if (n)
		memcpy(ev->buf + ev->len, p, n);
	ev->len += n;
}

static void run(const uint8_t *in, size_t len, size_t max, uint32_t seed, bool whole,
		struct events *ev)
{
	struct smtp_line lb;
	size_t pos = 0;

	smtp_line_init(&lb);
	while (pos < len) {
		size_t n = len - pos;
		if (!whole) {
			/* split points from the input itself and the seed */
			seed = seed * 1103515245u + 12345u + in[pos];
			n = 1 + (seed >> 16) % 64;
			if (n > len - pos)
				n = len - pos;
		}
		/* a private copy so ASan sees any read past the chunk */
		uint8_t *chunk = malloc(n);
		memcpy(chunk, in + pos, n);
		size_t off = 0;
		while (off < n) {
			struct slice line, arg;
			size_t used = (size_t)-1;
			enum smtp_parse_status st = smtp_line_next(&lb, chunk + off, n - off, max,
								   &line, &used);
			CHECK(used <= n - off);
			off += used;
			if (st == SMTP_PARSE_AGAIN) {
				CHECK(off == n);
				break;
			}
			CHECK(used >= 1 && chunk[off - 1] == '\n');
			if (st != SMTP_PARSE_DONE) {
				CHECK(st == SMTP_PARSE_BAD || st == SMTP_PARSE_TOOLONG);
				ev_add(ev, (uint8_t)st, NULL, 0);
				continue;
			}
			CHECK(inside(line, chunk, n) || inside(line, lb.buf, sizeof(lb.buf)));
			CHECK(line.len + 1 <= max);
			CHECK(line.len == 0 || (!memchr(line.p, '\r', line.len) &&
						!memchr(line.p, '\n', line.len) &&
						!memchr(line.p, '\0', line.len)));
			ev_add(ev, (uint8_t)st, line.p, line.len);

			bool sloppy;
			enum smtp_verb v = smtp_parse_verb_sloppy(line, &arg, &sloppy);
			CHECK((unsigned)v < SMTP_VERB_COUNT && smtp_verb_name(v) != NULL);
			CHECK(inside(arg, line.p, line.len));
			CHECK(arg.len == 0 || (arg.p[arg.len - 1] != ' ' && arg.p[arg.len - 1] != '\t'));
			parse_args(arg);
		}
		free(chunk);
		pos += n;
	}
	uint8_t ovf = lb.overflow;
	ev_add(ev, 'E', &ovf, 1);
	ev_add(ev, 'H', lb.buf, lb.overflow ? 0 : lb.len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const size_t maxes[] = { SMTP_CMD_LINE_MAX, SMTP_CMD_LINE_MAX, 64, 2, 1, 1000 };

	if (size < 2)
		return 0;
	size_t max = maxes[data[0] % (sizeof(maxes) / sizeof(maxes[0]))];
	uint32_t seed = data[1];
	const uint8_t *in = data + 2;
	size_t len = size - 2;

	/* whole-run lines are slices; events copy them, so size the log by the input */
	struct events a = { malloc(len * 10 + 64), 0, len * 10 + 64 };
	struct events b = { malloc(len * 10 + 64), 0, len * 10 + 64 };
	run(in, len, max, seed, true, &a);
	run(in, len, max, seed, false, &b);
	/* lines over sizeof(lb->buf) are whole-only by contract */
	if (max <= sizeof(((struct smtp_line *)0)->buf))
		CHECK(a.len == b.len && memcmp(a.buf, b.buf, a.len) == 0);
	free(a.buf);
	free(b.buf);

	/* and the input as a single argument, straight into every parser */
	struct slice arg = { (const char *)in, len };
	char *copy = malloc(len ? len : 1);
	memcpy(copy, in, len);
	arg.p = copy;
	parse_args(arg);
	struct slice va;
	smtp_parse_verb(arg, &va);
	CHECK(inside(va, copy, len));
	free(copy);
	return 0;
}
