/*
 * bench_corpus.h - the benchmark corpus: loads the messages of the dev corpus
 * (shared/corpus/sa-dev.tar.gz, or a directory with the same layout: MANIFEST.tsv and the .eml
 * files it names) into memory, once, for benchmarks and the load generator.
 *
 * A .tar.gz is unpacked with tar(1) into a cache directory under $TMPDIR (reused by later runs
 * while the archive is unchanged). The mbox "From " line each stored message begins with is
 * dropped; nothing else is changed (line endings stay as stored: LF).
 *
 * Single-threaded load; the loaded corpus is read-only and may then be shared by any thread.
 * Source selection: the argument, else $SLUICE_BENCH_CORPUS, else the default path compiled in
 * (BENCH_CORPUS_DEFAULT). $SLUICE_BENCH_CORPUS_LIMIT caps the message count (smoke runs).
 */
#ifndef SLUICE_BENCH_CORPUS_H
#define SLUICE_BENCH_CORPUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct bench_corpus_msg {
	const uint8_t *data;    /* the message, without the mbox From line */
	size_t         len;
	bool           spam;
	uint8_t       *alloc;   /* private: the allocation (data minus the From line) */
};

struct bench_corpus {
	struct bench_corpus_msg *msgs;
	size_t                   n;
	uint64_t                 bytes;   /* sum of len */
	char                    *source;  /* what was loaded (path) */
};

/* src may be NULL (see above). limit 0 = all (or $SLUICE_BENCH_CORPUS_LIMIT).
 * Returns 0, -ENOENT (no corpus there), -EINVAL (no MANIFEST.tsv or an unreadable entry),
 * -ENOMEM, or -EIO (tar failed). */
int bench_corpus_load(struct bench_corpus **c_r, const char *src, size_t limit);
void bench_corpus_free(struct bench_corpus **c);

/* A message in SMTP DATA form: CR LF line ends (a bare CR or LF becomes CR LF), dot-stuffed,
 * followed by the end of data "." CR LF when with_end. Canonical (the spool's form) when
 * stuff is false and with_end false. malloc'd; NULL on ENOMEM. */
uint8_t *bench_corpus_wire(const struct bench_corpus_msg *m, bool stuff, bool with_end,
			   size_t *len_r);

/* The process-wide corpus for benchmarks: loaded on first use, NULL if there is none (the
 * benchmark then calls bench_skip_error with the reason in *why_r). Thread-safe. */
const struct bench_corpus *bench_corpus_shared(const char **why_r);

#endif
