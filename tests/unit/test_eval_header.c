/*
 * test_eval_header.c - the header block's evals (dataplane/filter/filter_eval_header.c) and the
 * envelope-sender and date evals they touch, against SpamAssassin itself: the rules of
 * tests/unit/data/eval_header/rules.cf compiled here, every message of that folder scanned
 * (whole, one byte at a time, and at random splits), and the rules that fired compared with
 * what SpamAssassin 4.0.1 said of the same message (spamassassin.tsv, written by record.sh).
 * Also: the node's envelope sender goes before the header chain; the freemail wildcard.
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
#include "filter_eval_header.h"
#include "rules_compile.h"
#include "rules_parse.h"

static char test_eh_dir[64], test_eh_data[512];

static char *test_eh_read(const char *path, size_t *len_r)
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

static int test_eh_setup(void **state)
{
	const char *root = getenv("SLUICE_SOURCE_ROOT");
	struct rules_set *rs;
	struct rules_compile_opts o = { 0 };
	struct rules_compile_stats st;
	char err[256] = "", path[600];
	size_t len;
	char *text;
	int rc;

	snprintf(test_eh_data, sizeof(test_eh_data), "%s/tests/unit/data/eval_header", root ? root : ".");
	snprintf(path, sizeof(path), "%s/rules.cf", test_eh_data);
	text = test_eh_read(path, &len);
	if (!text)
		return -1;
	strcpy(test_eh_dir, "/tmp/test_eval_header_XXXXXX");
	if (!mkdtemp(test_eh_dir) || rules_parse_new(&rs) < 0) {
		free(text);
		return -1;
	}
	rc = rules_parse_text(rs, "rules.cf", text, len);
	if (rc == 0)
		rc = rules_parse_finish(rs);
	if (rc == 0 && rs->st.errors)
		rc = -EINVAL;
	if (rc == 0)
		rc = rules_compile_dir(rs, test_eh_dir, &o, &st, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "compile: %s\n", err);
	rules_parse_free(&rs);
	free(text);
	return rc;
}

static int test_eh_teardown(void **state)
{
	static const char *const files[] = RULES_CLASS_FILES;
	char p[256];

	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++) {
		snprintf(p, sizeof(p), "%s/%s", test_eh_dir, files[c]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/%s", test_eh_dir, RULES_META_FILE);
	unlink(p);
	rmdir(test_eh_dir);
	return 0;
}

/* LF -> CR LF, as the session stores messages. */
static char *test_eh_crlf(const char *s, size_t n, size_t *len_r)
{
	char *o = malloc(n * 2 + 1);
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			o[k++] = '\r';
		o[k++] = s[i];
	}
	*len_r = k;
	return o;
}

static int test_eh_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The comma-separated list sorted, into out. */
static void test_eh_sorted(const char *list, char *out, size_t outlen)
{
	char buf[FILTER_HITS_MAX], *v[128], *save = NULL;
	size_t n = 0, o = 0;

	snprintf(buf, sizeof(buf), "%s", list);
	for (char *t = strtok_r(buf, ",", &save); t && n < 128; t = strtok_r(NULL, ",", &save))
		v[n++] = t;
	qsort(v, n, sizeof(v[0]), test_eh_cmp);
	out[0] = '\0';
	for (size_t i = 0; i < n; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%s%s", i ? "," : "", v[i]);
}

/* split: 0 whole, 1 a byte at a time, else the seed of random splits */
static void test_eh_scan(struct filter_shard *fs, const char *m, size_t len, unsigned split,
			 const struct filter_envelope *env, char *hits, size_t hlen)
{
	struct filter_msg *fm = NULL;
	struct filter_verdict v;
	size_t off = 0;

	assert_int_equal(filter_msg_begin(fs, &fm), 0);
	if (env)
		filter_msg_set_envelope(fm, env);
	srand(split);
	while (off < len) {
		size_t n = split == 0 ? len : split == 1 ? 1 : 1 + (size_t)rand() % 61;

		if (n > len - off)
			n = len - off;
		filter_msg_feed(fm, (const uint8_t *)m + off, n);
		off += n;
	}
	filter_msg_end(fm, &v);
	filter_msg_free(&fm);
	test_eh_sorted(v.hits, hits, hlen);
}

static void test_eval_header_vs_spamassassin(void **state)
{
	struct filter_db *db = NULL;
	struct filter_shard *fs = NULL;
	char err[256], path[3000], line[2048];
	unsigned n = 0, bad = 0;
	FILE *tsv;

	assert_int_equal(filter_db_load(test_eh_dir, &db, err, sizeof(err)), 0);
	assert_int_equal(filter_shard_new(&fs, db), 0);
	snprintf(path, sizeof(path), "%s/spamassassin.tsv", test_eh_data);
	tsv = fopen(path, "r");
	assert_non_null(tsv);
	while (fgets(line, sizeof(line), tsv)) {
		char *tab = strchr(line, '\t'), *want, *raw, *m, got[FILTER_HITS_MAX], again[FILTER_HITS_MAX];
		size_t rl, ml;

		if (!tab)
			continue;
		*tab = '\0';
		want = tab + 1;
		want[strcspn(want, "\r\n")] = '\0';
		snprintf(path, sizeof(path), "%s/%s", test_eh_data, line);
		raw = test_eh_read(path, &rl);
		assert_non_null(raw);
		m = test_eh_crlf(raw, rl, &ml);
		test_eh_scan(fs, m, ml, 0, NULL, got, sizeof(got));
		if (strcmp(got, want) != 0) {
			fprintf(stderr, "%s: Sluice %s, SpamAssassin %s\n", line, got, want);
			bad++;
		}
		for (unsigned split = 1; split < 12; split++) {
			test_eh_scan(fs, m, ml, split, NULL, again, sizeof(again));
			if (strcmp(again, got) != 0)
				fail_msg("%s: split %u gave %s, whole %s", line, split, again, got);
		}
		free(m);
		free(raw);
		n++;
	}
	fclose(tsv);
	assert_true(n >= 30);
	assert_int_equal(bad, 0);
	filter_shard_free(&fs);
	filter_db_unref(&db);
}

/* On the node the session's MAIL FROM is the envelope sender, before any header. */
static void test_eval_header_node_envelope(void **state)
{
	static const char msg[] =
		"Return-Path: <a@other.example>\r\n"
		"Received: from mail.sender.example (mail.sender.example [198.51.100.7])\r\n"
		"\tby mx.rcpt.example (Postfix) with ESMTP id 1234\r\n"
		"\t(envelope-from <b@other.example>); Tue, 3 Sep 2002 13:33:11 -0700\r\n"
		"From: x@env.example\r\nTo: bob@rcpt.example\r\nSubject: s\r\n"
		"Date: Tue, 3 Sep 2002 13:30:00 -0700\r\n\r\nbody\r\n";
	struct filter_envelope env = { .mail_from = { "Smtp@ENV.example", 16 } };
	struct filter_db *db = NULL;
	struct filter_shard *fs = NULL;
	char err[256], hits[FILTER_HITS_MAX];

	assert_int_equal(filter_db_load(test_eh_dir, &db, err, sizeof(err)), 0);
	assert_int_equal(filter_shard_new(&fs, db), 0);
	test_eh_scan(fs, msg, sizeof(msg) - 1, 0, &env, hits, sizeof(hits));
	assert_non_null(strstr(hits, "HDR_ENVFROM_EXAMPLE"));
	assert_null(strstr(hits, "HDR_DIFF_DOMAINS"));
	test_eh_scan(fs, msg, sizeof(msg) - 1, 0, NULL, hits, sizeof(hits));
	assert_null(strstr(hits, "HDR_ENVFROM_EXAMPLE"));   /* the relay's b@other.example */
	assert_non_null(strstr(hits, "HDR_DIFF_DOMAINS"));
	filter_shard_free(&fs);
	filter_db_unref(&db);
}

static void test_eval_header_glob(void **state)
{
	assert_true(filter_eval_header_glob("gmx.*", "gmx.de"));
	assert_false(filter_eval_header_glob("gmx.*", "gmx.co.uk"));
	assert_true(filter_eval_header_glob("freemail.*.*", "freemail.nx.net"));
	assert_false(filter_eval_header_glob("freemail.*.*", "freemail.nx.cninfo.net"));
	assert_true(filter_eval_header_glob("*.att.ne.jp", "a.att.ne.jp"));
	assert_true(filter_eval_header_glob("ms?.hinet.net", "ms1.hinet.net"));
	assert_false(filter_eval_header_glob("mail2*.com", "mail2.x.com"));
	assert_true(filter_eval_header_fm_welcome("postmaster@gmail.com"));
	assert_true(filter_eval_header_fm_welcome("a=b=c@gmail.com"));
	assert_false(filter_eval_header_fm_welcome("a=b@gmail.com"));
	assert_false(filter_eval_header_fm_welcome("a==b@gmail.com"));
	assert_true(filter_eval_header_fm_welcome("x=y=z=w@gmail.com"));
	assert_false(filter_eval_header_fm_welcome("=a=b@gmail.com"));
	assert_true(filter_eval_header_fm_welcome("bounced-x@yahoo.com"));
	assert_true(filter_eval_header_fm_welcome("Undisclosed.Recipients@yahoo.com"));
	assert_false(filter_eval_header_fm_welcome("alice@gmail.com"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eval_header_vs_spamassassin),
		cmocka_unit_test(test_eval_header_node_envelope),
		cmocka_unit_test(test_eval_header_glob),
	};

	return cmocka_run_group_tests(tests, test_eh_setup, test_eh_teardown);
}
