/*
 * test_eval_mime.c - MIMEEval, BodyEval and ImageInfo evals (dataplane/filter/filter_eval_mime.c)
 * against SpamAssassin itself: tests/unit/data/eval_mime/evals.cf is compiled with the compiler
 * library, each message there is scanned (stored as the node stores it, CR LF; fed whole, one
 * byte at a time and at random splits), and the EV_* rules that fire must be those
 * SpamAssassin 4.0.1 fired on it (spamassassin.tsv, written by record.sh there).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "eval_sa.h"
#include "filter.h"

static struct eval_sa test_eval_mime;

static int test_eval_mime_setup(void **state)
{
	(void)state;
	return eval_sa_setup(&test_eval_mime, "eval_mime", "evals.cf");
}

static int test_eval_mime_teardown(void **state)
{
	(void)state;
	return eval_sa_teardown(&test_eval_mime);
}

/* The EV_ rules, CR LF whole, a byte at a time and in random pieces, and as stored with LF. */
static void test_eval_mime_against_sa(void **state)
{
	unsigned n;

	(void)state;
	assert_int_equal(eval_sa_check(&test_eval_mime, 3, true, "EV_", &n), 0);
	assert_true(n >= 30);
}

/* Hostile variants of the messages: bytes changed to ones the evals look at, cut short, a
 * piece repeated. Nothing may crash or read out of bounds (the sanitizer builds), and the
 * result must not depend on how the message was cut into pieces. */
static void test_eval_mime_mutations(void **state)
{
	static const char alphabet[] = "-=\n\r<>B /.&#x0Ag9\xff\x00\t\"';";
	char path[2700], line[2048], whole[2048], split[2048];
	struct filter_db *db = NULL;
	struct filter_shard *fs = NULL;
	char err[256];
	unsigned seed = 1;
	FILE *f;

	(void)state;
	assert_int_equal(filter_db_load(test_eval_mime.dir, &db, err, sizeof(err)), 0);
	assert_int_equal(filter_shard_new(&fs, db), 0);
	snprintf(path, sizeof(path), "%s/spamassassin.tsv", test_eval_mime.data);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *tab = strchr(line, '\t'), *raw;
		size_t rl;

		if (!tab)
			continue;
		*tab = '\0';
		snprintf(path, sizeof(path), "%s/%s", test_eval_mime.data, line);
		raw = eval_sa_read(path, &rl);
		assert_non_null(raw);
		for (int k = 0; k < 40; k++) {
			char *m = malloc(rl * 2 + 2);
			size_t ml = rl;

			assert_non_null(m);
			memcpy(m, raw, rl);
			srand(seed++);
			for (int c = 1 + rand() % 8; c > 0 && ml; c--)
				m[(size_t)rand() % ml] = alphabet[(size_t)rand() % (sizeof(alphabet) - 1)];
			if (ml && rand() % 3 == 0)
				ml = (size_t)rand() % ml;
			if (ml > 1 && rand() % 3 == 0) {
				size_t from = (size_t)rand() % ml, n = (size_t)rand() % (ml - from);

				memcpy(m + ml, m + from, n);
				ml += n;
			}
			eval_sa_scan(fs, m, ml, 0, NULL, "EV_", whole, sizeof(whole));
			eval_sa_scan(fs, m, ml, 7, NULL, "EV_", split, sizeof(split));
			if (strcmp(whole, split) != 0)
				fprintf(stderr, "%s mutation %d: whole %s, pieces %s\n", line, k, whole, split);
			assert_string_equal(whole, split);
			free(m);
		}
		free(raw);
	}
	fclose(f);
	filter_shard_free(&fs);
	filter_db_unref(&db);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eval_mime_against_sa),
		cmocka_unit_test(test_eval_mime_mutations),
	};

	return cmocka_run_group_tests(tests, test_eval_mime_setup, test_eval_mime_teardown);
}
