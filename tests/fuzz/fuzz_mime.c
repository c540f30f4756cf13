/*
 * fuzz_mime.c - libFuzzer target for the streaming MIME parser (dataplane/filter/mime*.c).
 *
 * Input: byte 0 picks the limits (the defaults, or tiny ones that make every limit trip) and
 * seeds the split points; the rest is the message. It is parsed whole, then one parser is
 * reused for the same message cut at pseudo-random points (one byte at a time for short
 * inputs); the two callback transcripts must be identical, byte for byte. Checked in every
 * callback: body_text is valid UTF-8 with no CR, pieces are 1..MIME_TEXT_PIECE bytes, header
 * names have no ':' and decoded values are valid UTF-8, depths stay within max_depth, URIs are
 * within MIME_URI_MAX + 7; and body_text / rawbody totals stay within max_text_bytes. The raw
 * callback (the encoded lines, for the evals) goes into the transcript byte by byte, since
 * its pieces follow the input's; its bytes never hold a line end.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filter/mime.h"
#include "filter/mime_charset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) abort(); } while (0)

struct ts {
	uint8_t *s;
	size_t   n, cap;
	size_t   text, raw;
	unsigned max_depth;
	unsigned raw_kind;   /* the kind of the last raw bytes put, 0 after an event */
};

static void put(struct ts *t, const void *p, size_t n)
{
	if (t->n + n > t->cap) {
		while (t->n + n > t->cap)
			t->cap = t->cap ? t->cap * 2 : 65536;
		t->s = realloc(t->s, t->cap);
		CHECK(t->s != NULL);
	}
	memcpy(t->s + t->n, p, n);
	t->n += n;
}

static void put_tag(struct ts *t, char tag, size_t n)
{
	put(t, &tag, 1);
	put(t, &n, sizeof(n));
}

static bool utf8_ok(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		int l = mime_charset_utf8_len(p + i, n - i);

		if (l <= 0)
			return false;
		i += (size_t)l;
	}
	return true;
}

static void on_header(void *arg, unsigned depth, struct slice name, struct slice raw,
		      struct slice dec)
{
	struct ts *t = arg;

	CHECK(depth <= t->max_depth);
	CHECK(name.len > 0 && memchr(name.p, ':', name.len) == NULL);
	CHECK(memchr(raw.p, '\n', raw.len) == NULL);
	CHECK(utf8_ok((const uint8_t *)dec.p, dec.len));
	put_tag(t, 'H', depth);
	put(t, name.p, name.len);
	put_tag(t, 'r', raw.len);
	put(t, raw.p, raw.len);
	put_tag(t, 'd', dec.len);
	put(t, dec.p, dec.len);
}

static void on_headers_end(void *arg, unsigned depth)
{
	struct ts *t = arg;

	CHECK(depth <= t->max_depth);
	put_tag(t, 'E', depth);
}

static void on_text(void *arg, const uint8_t *p, size_t n)
{
	struct ts *t = arg;

	CHECK(n > 0 && n <= MIME_TEXT_PIECE);
	CHECK(utf8_ok(p, n));
	CHECK(memchr(p, '\r', n) == NULL);
	t->text += n;
	put_tag(t, 'T', n);
	put(t, p, n);
}

static void on_raw(void *arg, const uint8_t *p, size_t n)
{
	struct ts *t = arg;

	CHECK(n > 0 && n <= MIME_TEXT_PIECE);
	CHECK(memchr(p, '\r', n) == NULL);
	t->raw += n;
	put_tag(t, 'R', n);
	put(t, p, n);
}

static void on_uri(void *arg, struct slice u)
{
	struct ts *t = arg;

	CHECK(u.len > 0 && u.len <= MIME_URI_MAX + 7);
	put_tag(t, 'U', u.len);
	put(t, u.p, u.len);
}

static void on_anomaly(void *arg, enum mime_anomaly a, const char *name)
{
	struct ts *t = arg;

	CHECK(a < MIME_ANOM_COUNT && strcmp(name, mime_anomaly_name(a)) == 0);
	put_tag(t, 'A', a);
}

static void on_encoded(void *arg, unsigned kind, const uint8_t *p, size_t n, bool eol)
{
	struct ts *t = arg;

	CHECK(kind >= MIME_RAW_BODY && kind <= MIME_RAW_HDR_END);
	if (kind <= MIME_RAW_EPILOGUE && !eol) {
		CHECK(n > 0 && memchr(p, '\n', n) == NULL);
		if (t->raw_kind != kind)
			put_tag(t, 'b', kind);
		t->raw_kind = kind;
		put(t, p, n);
		return;
	}
	CHECK(n == 0);
	put_tag(t, eol ? 'l' : 'k', kind);
	t->raw_kind = 0;
}

static struct ts ts_whole, ts_split;

static struct mime_parser *make(struct ts *t, const struct mime_limits *lim)
{
	struct mime_sink sink = {
		.arg = t, .header = on_header, .headers_end = on_headers_end, .body_text = on_text,
		.rawbody = on_raw, .uri = on_uri, .anomaly = on_anomaly, .raw = on_encoded,
	};
	struct mime_parser *p;

	CHECK(mime_parser_new(&p, &sink, lim) == 0);
	return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct mime_parser *pw[2], *ps[2];
	static const struct mime_limits tiny = {
		.max_depth = 3, .max_parts = 12, .max_header_line = 80, .max_headers = 10,
		.max_text_bytes = 5000,
	};
	const struct mime_limits *lims[2] = { NULL, &tiny };
	unsigned which, seed;
	size_t text_cap;

	if (size < 1)
		return 0;
	which = data[0] & 1;
	seed = data[0] * 2654435761u + 1;
	data++;
	size--;
	if (pw[which] == NULL) {
		pw[which] = make(&ts_whole, lims[which]);
		ps[which] = make(&ts_split, lims[which]);
	}
	ts_whole.max_depth = ts_split.max_depth = which ? tiny.max_depth : MIME_DEPTH_DEFAULT;
	text_cap = which ? tiny.max_text_bytes : MIME_TEXT_BYTES_DEFAULT;

	ts_whole.n = ts_whole.text = ts_whole.raw = 0;
	ts_whole.raw_kind = ts_split.raw_kind = 0;
	mime_parser_reset(pw[which]);
	mime_parser_feed(pw[which], data, size);
	mime_parser_end(pw[which]);

	ts_split.n = ts_split.text = ts_split.raw = 0;
	mime_parser_reset(ps[which]);
	for (size_t i = 0; i < size;) {
		size_t k;

		seed = seed * 1103515245u + 12345u;
		k = size < 512 ? 1 : 1 + (seed >> 16) % 97;
		if (k > size - i)
			k = size - i;
		mime_parser_feed(ps[which], data + i, k);
		i += k;
	}
	mime_parser_end(ps[which]);
	mime_parser_feed(ps[which], data, size);  /* ignored after end */

	CHECK(ts_whole.text <= text_cap && ts_whole.raw <= text_cap);
	CHECK(ts_whole.n == ts_split.n);
	CHECK(ts_whole.n == 0 || memcmp(ts_whole.s, ts_split.s, ts_whole.n) == 0);
	return 0;
}
