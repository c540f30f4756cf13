/*
 * bench_mime.c - the streaming MIME parser and decoders (dataplane/filter/mime.h) over the
 * corpus in canonical form, fed in reads of the given size, with a sink that takes every
 * callback (headers, body text, raw body, URIs). Items are messages.
 */
#include <stdlib.h>

#include "bench.h"
#include "bench_corpus.h"
#include "filter/mime.h"

struct counts {
	uint64_t headers, text, raw, uris, anomalies;
};

static void on_header(void *arg, unsigned depth, struct slice n, struct slice r, struct slice d)
{
	((struct counts *)arg)->headers++;
}
static void on_text(void *arg, const uint8_t *p, size_t len) { ((struct counts *)arg)->text += len; }
static void on_raw(void *arg, const uint8_t *p, size_t len) { ((struct counts *)arg)->raw += len; }
static void on_uri(void *arg, struct slice u) { ((struct counts *)arg)->uris++; }
static void on_anom(void *arg, enum mime_anomaly a, const char *name)
{
	((struct counts *)arg)->anomalies++;
}

static void bm_mime(struct bench_state *st, void *arg)
{
	const char *why;
	const struct bench_corpus *c = bench_corpus_shared(&why);
	size_t chunk = (size_t)bench_range(st, 0);
	struct counts k = { 0 };
	struct mime_sink sink = { .arg = &k, .header = on_header, .body_text = on_text,
				  .rawbody = on_raw, .uri = on_uri, .anomaly = on_anom };
	struct mime_parser *p;
	uint8_t **msg;
	size_t *len;
	uint64_t msgs = 0, bytes = 0;

	if (c == NULL) {
		bench_skip_error(st, why);
		return;
	}
	msg = calloc(c->n, sizeof(*msg));
	len = calloc(c->n, sizeof(*len));
	for (size_t i = 0; i < c->n; i++)
		msg[i] = bench_corpus_wire(&c->msgs[i], false, false, &len[i]);
	if (mime_parser_new(&p, &sink, NULL) < 0) {
		bench_skip_error(st, "mime_parser_new failed");
		return;
	}
	while (bench_keep_running(st)) {
		for (size_t i = 0; i < c->n; i++) {
			mime_parser_reset(p);
			for (size_t off = 0; off < len[i]; off += chunk)
				mime_parser_feed(p, msg[i] + off, len[i] - off < chunk ? len[i] - off : chunk);
			mime_parser_end(p);
			bytes += len[i];
			msgs++;
		}
	}
	mime_parser_free(&p);
	for (size_t i = 0; i < c->n; i++)
		free(msg[i]);
	free(msg);
	free(len);
	if (k.headers == 0 && msgs > 0) {
		bench_skip_error(st, "the parser reported no header at all");
		return;
	}
	bench_set_bytes(st, (int64_t)bytes);
	bench_set_items(st, (int64_t)msgs);
	bench_counter(st, "headers_per_msg", msgs ? (double)k.headers / (double)msgs : 0, 0);
	bench_counter(st, "text_bytes_per_msg", msgs ? (double)k.text / (double)msgs : 0, 0);
	bench_counter(st, "uris_per_msg", msgs ? (double)k.uris / (double)msgs : 0, 0);
}

BENCH_INIT(mime)
{
	struct bench *b = bench_register("mime/corpus", bm_mime, NULL);
	bench_arg(bench_arg(b, 16384), 1460);
	bench_unit(b, BENCH_MS);
}
