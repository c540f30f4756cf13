/*
 * bench_smtp_data.c - DATA decoding (dataplane/smtp/smtp_data.h): dot-unstuffing, end-of-data
 * detection and bare CR/LF normalisation over the corpus in wire form, fed in reads of the
 * given size. Items are messages; bytes are wire bytes.
 */
#include <stdlib.h>

#include "bench.h"
#include "bench_corpus.h"
#include "smtp/smtp_data.h"

struct wire {
	uint8_t **msg;
	size_t   *len;
	size_t    n;
	uint64_t  bytes;
};

static struct wire *wire_get(const char **why)
{
	static struct wire w;
	const struct bench_corpus *c = bench_corpus_shared(why);

	if (c == NULL)
		return NULL;
	if (w.n == 0) {
		w.msg = calloc(c->n, sizeof(*w.msg));
		w.len = calloc(c->n, sizeof(*w.len));
		for (size_t i = 0; i < c->n; i++) {
			w.msg[i] = bench_corpus_wire(&c->msgs[i], true, true, &w.len[i]);
			w.bytes += w.len[i];
		}
		w.n = c->n;
	}
	return &w;
}

static void bm_smtp_data(struct bench_state *st, void *arg)
{
	const char *why;
	struct wire *w = wire_get(&why);
	size_t chunk = (size_t)bench_range(st, 0);
	uint8_t *out = malloc(2 * chunk);
	uint64_t msgs = 0, bytes = 0, outb = 0;
	int wrong = 0;

	if (w == NULL) {
		free(out);
		bench_skip_error(st, why);
		return;
	}
	while (bench_keep_running(st)) {
		for (size_t i = 0; i < w->n; i++) {
			struct smtp_data d;
			bool done = false;
			size_t off = 0;

			smtp_data_init(&d, SMTP_DATA_DOT);
			while (off < w->len[i] && !done) {
				size_t len = w->len[i] - off < chunk ? w->len[i] - off : chunk, ol;
				off += smtp_data_decode(&d, w->msg[i] + off, len, out, &ol, &done);
				outb += ol;
			}
			wrong += !done || off != w->len[i];
			bytes += w->len[i];
			msgs++;
		}
	}
	free(out);
	if (wrong) {
		bench_skip_error(st, "a message did not end where its end of data is");
		return;
	}
	bench_do_not_optimize(&outb);
	bench_set_bytes(st, (int64_t)bytes);
	bench_set_items(st, (int64_t)msgs);
	bench_counter(st, "messages", (double)w->n, BENCH_C_DEFAULT);
}

BENCH_INIT(smtp_data)
{
	struct bench *b = bench_register("smtp_data/corpus", bm_smtp_data, NULL);
	bench_arg(bench_arg(b, 16384), 1460);
	bench_unit(b, BENCH_MS);
}
