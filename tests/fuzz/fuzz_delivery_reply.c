/*
 * fuzz_delivery_reply.c - the delivery side's parsers of hostile server input: the reply parser
 * (whole against split feeding must agree, limits must hold), the client engine fed the input as
 * a server's replies (it must never crash, overrun or loop), and the body encoder (its output
 * bound and its CR LF invariant).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "delivery/delivery_body.h"
#include "delivery/delivery_client.h"
#include "delivery/delivery_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

struct outcome {
	int      st;
	size_t   used;
	uint16_t code;
	uint32_t nlines, text_len;
	char     enh[16];
};

static void parse(const uint8_t *p, size_t len, unsigned step, struct outcome *o)
{
	static struct delivery_reply r;
	size_t off = 0;

	delivery_reply_init(&r, NULL);
	o->st = DELIVERY_REPLY_AGAIN;
	while (off < len) {
		size_t n = step ? (len - off < step ? len - off : step) : len - off, used;

		o->st = delivery_reply_feed(&r, p + off, n, &used);
		CHECK(used <= n);
		off += used;
		if (o->st != DELIVERY_REPLY_AGAIN)
			break;
		CHECK(used == n);
	}
	o->used = off;
	CHECK(r.text_len <= DELIVERY_REPLY_TEXT_MAX);
	CHECK(r.nlines <= DELIVERY_REPLY_LINES_MAX);
	CHECK(r.text[r.text_len] == '\0' || o->st != DELIVERY_REPLY_DONE);
	o->code = o->st == DELIVERY_REPLY_DONE ? r.code : 0;
	o->nlines = o->st == DELIVERY_REPLY_DONE ? r.nlines : 0;
	o->text_len = o->st == DELIVERY_REPLY_DONE ? r.text_len : 0;
	memcpy(o->enh, r.enh, sizeof(o->enh));
	if (o->st == DELIVERY_REPLY_DONE) {
		size_t fl;
		const char *f = delivery_reply_first_line(&r, &fl);

		CHECK(f >= r.text && f + fl <= r.text + r.text_len);
		CHECK(r.code >= 200 && r.code <= 559);
	}
}

static void drive_client(const uint8_t *p, size_t len, unsigned step)
{
	static struct delivery_rcpt rc[3] = {
		{ .addr = { "a@x.test", 8 } }, { .addr = { "b@x.test", 8 } }, { .addr = { "c@x.test", 8 } },
	};
	struct delivery_client_msg m = { .mail_from = { "s@y.test", 8 }, .size = 100,
					 .body_8bit = true, .nrcpt = 3, .rcpt = rc };
	struct delivery_client_conf conf = { .helo_name = "fuzz.test", .tls = DELIVERY_CLIENT_TLS_MAY };
	static struct delivery_client c;
	size_t off = 0;
	unsigned guard = 0, begun = 0;

	if (delivery_client_init(&c, &conf) != 0)
		return;
	while (guard++ < 100000) {
		enum delivery_client_ev ev = delivery_client_next(&c);
		const uint8_t *o;
		size_t n;

		(void)delivery_client_timeout_ms(&c);
		switch (ev) {
		case DELIVERY_CLIENT_EV_WRITE:
			delivery_client_output(&c, &o, &n);
			CHECK(n > 0);
			delivery_client_sent(&c, n);
			continue;
		case DELIVERY_CLIENT_EV_READ:
			if (off >= len)
				goto out;
			n = step ? (len - off < step ? len - off : step) : len - off;
			if (delivery_client_input(&c, p + off, n) != 0)
				goto out;
			off += n;
			continue;
		case DELIVERY_CLIENT_EV_STARTTLS:
			delivery_client_tls_done(&c, (len & 1) == 0);
			continue;
		case DELIVERY_CLIENT_EV_READY:
			if (begun++ > 0) {
				delivery_client_quit(&c);
				continue;
			}
			CHECK(delivery_client_begin(&c, &m) == 0);
			continue;
		case DELIVERY_CLIENT_EV_BODY:
			CHECK(delivery_client_body(&c, (const uint8_t *)".x\r\n", 4, true) == 0);
			continue;
		case DELIVERY_CLIENT_EV_MSG_DONE:
			for (unsigned i = 0; i < m.nrcpt; i++)
				CHECK(rc[i].status != DELIVERY_RCPT_PENDING);
			delivery_client_msg_ack(&c);
			continue;
		case DELIVERY_CLIENT_EV_CLOSED:
			goto out;
		}
	}
	abort();   /* the engine looped */
out:
	delivery_client_abort(&c, -104);
	if (c.msg != NULL)
		for (unsigned i = 0; i < m.nrcpt; i++)
			CHECK(rc[i].status != DELIVERY_RCPT_PENDING);
	delivery_client_fini(&c);
}

static void encode(const uint8_t *p, size_t len, unsigned step)
{
	static uint8_t out[2 * 65536 + 16];
	struct delivery_body b;
	size_t off = 0, o = 0;

	uint32_t line_max = step & 1 ? 80 + step : 0;

	if (len > 65536)
		return;
	delivery_body_init(&b, line_max);
	while (off < len) {
		size_t n = step ? (len - off < step ? len - off : step) : len - off;
		size_t w = delivery_body_encode(&b, p + off, n, out + o);

		CHECK(w <= DELIVERY_BODY_ENCODED_MAX(n));
		o += w;
		off += n;
	}
	o += delivery_body_finish(&b, out + o);
	for (size_t i = 0, col = 0; i < o; i++, col++) {
		/* A line holds at most line_max octets before its CR LF. */
		CHECK(line_max == 0 || out[i] == '\r' || out[i] == '\n' || col < line_max);
		if (out[i] == '\n')
			col = (size_t)-1;
		if (out[i] == '\r')
			CHECK(i + 1 < o && out[i + 1] == '\n');
		if (out[i] == '\n')
			CHECK(i > 0 && out[i - 1] == '\r');
	}
	/* The end-of-data mark appears exactly once, at the end. */
	CHECK(o >= 3 && memcmp(out + o - 3, ".\r\n", 3) == 0);
	for (size_t i = 0; i + 5 <= o - 3; i++)
		CHECK(memcmp(out + i, "\r\n.\r\n", 5) != 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct outcome whole, split;
	unsigned step;

	if (size < 1)
		return 0;
	step = 1 + data[0] % 13;
	data++;
	size--;
	parse(data, size, 0, &whole);
	parse(data, size, step, &split);
	CHECK(whole.st == split.st);
	CHECK(whole.used == split.used);
	CHECK(whole.code == split.code && whole.nlines == split.nlines);
	CHECK(whole.text_len == split.text_len);
	CHECK(strcmp(whole.enh, split.enh) == 0);
	drive_client(data, size, step);
	encode(data, size, step);
	return 0;
}
