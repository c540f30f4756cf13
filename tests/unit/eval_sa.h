/*
 * eval_sa.h - what the eval tests (test_eval_*.c) share: the rules of
 * tests/unit/data/<set>/rules.cf (or another file there) compiled into a temporary directory, a message scanned whole,
 * a byte at a time or in random pieces, and every message of the set's spamassassin.tsv (what
 * SpamAssassin 4.0.1 said of it, written by the set's record.sh) checked against Sluice.
 */
#ifndef SLUICE_TESTS_EVAL_SA_H
#define SLUICE_TESTS_EVAL_SA_H

#include <stdbool.h>
#include <stddef.h>

#include "filter.h"

struct eval_sa {
	char dir[64];      /* the compiled rule set */
	char data[512];    /* tests/unit/data/<set> */
};

/* Compiles the set's rule file cf (rules.cf, ...). 0, or -1 (said on stderr): for cmocka's group setup. */
int  eval_sa_setup(struct eval_sa *e, const char *set, const char *cf);
int  eval_sa_teardown(struct eval_sa *e);

/* A file's bytes, NUL-terminated (NULL if it cannot be read). */
char *eval_sa_read(const char *path, size_t *len_r);
/* LF -> CR LF, as the session stores messages (a CR LF stays one). */
char *eval_sa_crlf(const char *s, size_t n, size_t *len_r);

/* Scans m: how 0 whole, 1 a byte at a time, else the seed of random pieces of 1..61 bytes.
 * The rules that hit whose names start with prefix (NULL: all), sorted, comma-separated, into
 * out. env: the session's envelope, or NULL. */
void eval_sa_scan(struct filter_shard *fs, const char *m, size_t len, unsigned how,
		  const struct filter_envelope *env, const char *prefix, char *out, size_t outlen);

/* Every message of spamassassin.tsv, CR LF, scanned in each way 0 .. hows-1 (and once as
 * stored, LF, when lf): the disagreements with SpamAssassin, each printed. *n_r: messages. */
unsigned eval_sa_check(const struct eval_sa *e, unsigned hows, bool lf, const char *prefix,
		       unsigned *n_r);

#endif
