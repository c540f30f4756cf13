/*
 * test_eval_htmlx.c - the HTMLEval evals of dataplane/filter/filter_eval_htmlx.c: the rules of
 * tests/unit/data/eval_html/rules.cf compiled here, each message of that folder scanned (whole,
 * one byte at a time, at random splits), and the rules that fired compared with what
 * SpamAssassin 4.0.1 fired on it (spamassassin.tsv, written by record.sh there).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "filter.h"
#include "rules_compile.h"
#include "rules_parse.h"

static char test_htmlx_dir[64];
static char test_htmlx_data[512];

static char *test_htmlx_read(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *b;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)n + 1);
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	if (b) {
		b[n] = '\0';
		*len_r = (size_t)n;
	}
	return b;
}

static int test_htmlx_setup(void **state)
{
	const char *src = getenv("SLUICE_SOURCE_ROOT");
	struct rules_set *rs;
	struct rules_compile_opts o = { 0 };
	struct rules_compile_stats st;
	char err[256] = "", path[600];
	char *text;
	size_t len;
	int rc;

	(void)state;
	snprintf(test_htmlx_data, sizeof(test_htmlx_data), "%s/tests/unit/data/eval_html",
		 src ? src : ".");
	snprintf(path, sizeof(path), "%s/rules.cf", test_htmlx_data);
	text = test_htmlx_read(path, &len);
	if (!text)
		return -1;
	strcpy(test_htmlx_dir, "/tmp/test_htmlx_XXXXXX");
	if (!mkdtemp(test_htmlx_dir) || rules_parse_new(&rs) < 0) {
		free(text);
		return -1;
	}
	rc = rules_parse_text(rs, "rules.cf", text, len);
	if (rc == 0)
		rc = rules_parse_finish(rs);
	if (rc == 0)
		rc = rules_compile_dir(rs, test_htmlx_dir, &o, &st, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "compile: %s\n", err);
	rules_parse_free(&rs);
	free(text);
	return rc < 0 ? -1 : 0;
}

static int test_htmlx_teardown(void **state)
{
	static const char *const files[] = RULES_CLASS_FILES;
	char p[256];

	(void)state;
	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++) {
		snprintf(p, sizeof(p), "%s/%s", test_htmlx_dir, files[c]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/%s", test_htmlx_dir, RULES_META_FILE);
	unlink(p);
	rmdir(test_htmlx_dir);
	return 0;
}

static int test_htmlx_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The HX_ rules of a verdict, sorted, comma-separated. */
static void test_htmlx_hits(const char *hits, char *out, size_t outlen)
{
	char buf[FILTER_HITS_MAX], *names[64], *save = NULL;
	size_t n = 0;

	snprintf(buf, sizeof(buf), "%s", hits);
	for (char *t = strtok_r(buf, ",", &save); t && n < 64; t = strtok_r(NULL, ",", &save))
		if (strncmp(t, "HX_", 3) == 0)
			names[n++] = t;
	qsort(names, n, sizeof(names[0]), test_htmlx_cmp);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		strncat(out, names[i], outlen - strlen(out) - 1);
		if (i + 1 < n)
			strncat(out, ",", outlen - strlen(out) - 1);
	}
}

/* LF -> CR LF, as the session stores messages. */
static char *test_htmlx_crlf(const char *s, size_t n, size_t *len_r)
{
	char *o = malloc(n * 2 + 1);
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n')
			o[k++] = '\r';
		o[k++] = s[i];
	}
	*len_r = k;
	return o;
}

static void test_htmlx_scan(struct filter_shard *fs, const char *m, size_t len, unsigned how,
			    char *out, size_t outlen)
{
	struct filter_msg *fm = NULL;
	struct filter_verdict v;
	size_t off = 0;

	assert_int_equal(filter_msg_begin(fs, &fm), 0);
	srand(how);
	while (off < len) {
		size_t n = how == 0 ? len : how == 1 ? 1 : 1 + (size_t)rand() % 61;

		if (n > len - off)
			n = len - off;
		filter_msg_feed(fm, (const uint8_t *)m + off, n);
		off += n;
	}
	filter_msg_end(fm, &v);
	filter_msg_free(&fm);
	test_htmlx_hits(v.hits, out, outlen);
}

static void test_htmlx_spamassassin(void **state)
{
	struct filter_db *db = NULL;
	struct filter_shard *fs = NULL;
	char err[256], path[1600], line[1024];
	FILE *tsv;
	unsigned cases = 0, bad = 0;

	(void)state;
	assert_int_equal(filter_db_load(test_htmlx_dir, &db, err, sizeof(err)), 0);
	assert_int_equal(filter_shard_new(&fs, db), 0);
	snprintf(path, sizeof(path), "%s/spamassassin.tsv", test_htmlx_data);
	tsv = fopen(path, "r");
	assert_non_null(tsv);
	while (fgets(line, sizeof(line), tsv)) {
		char *tab = strchr(line, '\t'), *want, *raw, *m, got[FILTER_HITS_MAX];
		size_t rlen, mlen;

		if (!tab)
			continue;
		*tab = '\0';
		want = tab + 1;
		want[strcspn(want, "\r\n")] = '\0';
		snprintf(path, sizeof(path), "%s/%s", test_htmlx_data, line);
		raw = test_htmlx_read(path, &rlen);
		assert_non_null(raw);
		m = test_htmlx_crlf(raw, rlen, &mlen);
		for (unsigned how = 0; how < 12; how++) {
			test_htmlx_scan(fs, m, mlen, how, got, sizeof(got));
			if (strcmp(got, want) != 0) {
				fprintf(stderr, "%s (split %u): sluice %s, spamassassin %s\n", line, how,
					got, want);
				bad++;
				break;
			}
		}
		cases++;
		free(m);
		free(raw);
	}
	fclose(tsv);
	filter_shard_free(&fs);
	filter_db_unref(&db);
	assert_true(cases >= 30);
	assert_int_equal(bad, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_htmlx_spamassassin),
	};

	return cmocka_run_group_tests(tests, test_htmlx_setup, test_htmlx_teardown);
}
