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

#include "filter.h"
#include "rules_compile.h"
#include "rules_parse.h"

static char test_eval_mime_dir[64];
static char test_eval_mime_data[512];

static char *test_eval_mime_slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t cap = 0, n = 0, r;

	if (!f)
		return NULL;
	do {
		if (n + 4096 + 1 > cap) {
			cap = (n + 4096 + 1) * 2;
			p = realloc(p, cap);
			assert_non_null(p);
		}
		r = fread(p + n, 1, 4096, f);
		n += r;
	} while (r > 0);
	fclose(f);
	p[n] = '\0';
	*len_r = n;
	return p;
}

static int test_eval_mime_setup(void **state)
{
	const char *root = getenv("SLUICE_SOURCE_ROOT");
	struct rules_set *rs;
	struct rules_compile_opts o = { 0 };
	struct rules_compile_stats st;
	char err[256] = "", path[600];
	size_t len;
	char *text;
	int rc;

	(void)state;
	snprintf(test_eval_mime_data, sizeof(test_eval_mime_data), "%s/tests/unit/data/eval_mime",
		 root ? root : ".");
	snprintf(path, sizeof(path), "%s/evals.cf", test_eval_mime_data);
	text = test_eval_mime_slurp(path, &len);
	if (!text)
		return -1;
	strcpy(test_eval_mime_dir, "/tmp/test_eval_mime_XXXXXX");
	if (!mkdtemp(test_eval_mime_dir) || rules_parse_new(&rs) < 0) {
		free(text);
		return -1;
	}
	rc = rules_parse_text(rs, "evals.cf", text, len);
	if (rc == 0)
		rc = rules_parse_finish(rs);
	if (rc == 0 && rs->st.errors)
		rc = -EINVAL;
	if (rc == 0)
		rc = rules_compile_dir(rs, test_eval_mime_dir, &o, &st, err, sizeof(err));
	if (rc == 0 && st.eval_native == 0)
		rc = -EINVAL;
	if (rc < 0)
		fprintf(stderr, "compile: %s\n", err);
	rules_parse_free(&rs);
	free(text);
	return rc < 0 ? -1 : 0;
}

static int test_eval_mime_teardown(void **state)
{
	static const char *const files[] = RULES_CLASS_FILES;
	char p[256];

	(void)state;
	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++) {
		snprintf(p, sizeof(p), "%s/%s", test_eval_mime_dir, files[c]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/%s", test_eval_mime_dir, RULES_META_FILE);
	unlink(p);
	rmdir(test_eval_mime_dir);
	return 0;
}

/* LF -> CR LF, as the session stores messages. */
static char *test_eval_mime_crlf(const char *s, size_t n, size_t *len_r)
{
	char *o = malloc(n * 2 + 1);
	size_t k = 0;

	assert_non_null(o);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			o[k++] = '\r';
		o[k++] = s[i];
	}
	*len_r = k;
	return o;
}

/* Scans m (how: 0 whole, 1 byte by byte, 2 random pieces); the EV_* hits into out. */
static void test_eval_mime_scan(struct filter_shard *fs, const char *m, size_t len, int how,
				char *out, size_t outlen)
{
	struct filter_msg *fm = NULL;
	struct filter_verdict v;
	size_t off = 0, o = 0;
	char *save = NULL, *t;

	assert_int_equal(filter_msg_begin(fs, &fm), 0);
	srand(7);
	while (off < len) {
		size_t n = how == 0 ? len : how == 1 ? 1 : 1 + (size_t)rand() % 113;

		if (n > len - off)
			n = len - off;
		filter_msg_feed(fm, (const uint8_t *)m + off, n);
		off += n;
	}
	filter_msg_end(fm, &v);
	filter_msg_free(&fm);
	assert_null(strstr(v.hits, "..."));
	out[0] = '\0';
	for (t = strtok_r(v.hits, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t tl = strlen(t);

		if (strncmp(t, "EV_", 3) != 0 || o + tl + 2 > outlen)
			continue;
		if (o)
			out[o++] = ',';
		memcpy(out + o, t, tl + 1);
		o += tl;
	}
}

static void test_eval_mime_against_sa(void **state)
{
	char path[2700], line[2048], got[2048];
	struct filter_db *db = NULL;
	struct filter_shard *fs = NULL;
	char err[256];
	unsigned n = 0, bad = 0;
	FILE *f;

	(void)state;
	assert_int_equal(filter_db_load(test_eval_mime_dir, &db, err, sizeof(err)), 0);
	assert_int_equal(filter_shard_new(&fs, db), 0);
	snprintf(path, sizeof(path), "%s/spamassassin.tsv", test_eval_mime_data);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *tab = strchr(line, '\t'), *want, *raw, *m;
		size_t rl, ml;

		if (!tab)
			continue;
		*tab = '\0';
		want = tab + 1;
		want[strcspn(want, "\r\n")] = '\0';
		snprintf(path, sizeof(path), "%s/%s", test_eval_mime_data, line);
		raw = test_eval_mime_slurp(path, &rl);
		assert_non_null(raw);
		m = test_eval_mime_crlf(raw, rl, &ml);
		for (int how = 0; how < 3; how++) {
			test_eval_mime_scan(fs, m, ml, how, got, sizeof(got));
			if (strcmp(got, want) != 0) {
				fprintf(stderr, "%s (%s): SpamAssassin %s, Sluice %s\n", line,
					how == 0 ? "whole" : how == 1 ? "bytes" : "random", want, got);
				bad++;
			}
		}
		/* and as stored with LF, whole */
		test_eval_mime_scan(fs, raw, rl, 0, got, sizeof(got));
		if (strcmp(got, want) != 0) {
			fprintf(stderr, "%s (LF): SpamAssassin %s, Sluice %s\n", line, want, got);
			bad++;
		}
		free(m);
		free(raw);
		n++;
	}
	fclose(f);
	assert_true(n >= 30);
	assert_int_equal(bad, 0);
	filter_shard_free(&fs);
	filter_db_unref(&db);
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
	assert_int_equal(filter_db_load(test_eval_mime_dir, &db, err, sizeof(err)), 0);
	assert_int_equal(filter_shard_new(&fs, db), 0);
	snprintf(path, sizeof(path), "%s/spamassassin.tsv", test_eval_mime_data);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		char *tab = strchr(line, '\t'), *raw;
		size_t rl;

		if (!tab)
			continue;
		*tab = '\0';
		snprintf(path, sizeof(path), "%s/%s", test_eval_mime_data, line);
		raw = test_eval_mime_slurp(path, &rl);
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
			test_eval_mime_scan(fs, m, ml, 0, whole, sizeof(whole));
			test_eval_mime_scan(fs, m, ml, 2, split, sizeof(split));
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
