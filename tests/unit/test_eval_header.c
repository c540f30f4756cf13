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

#include "eval_sa.h"
#include "filter.h"
#include "filter_eval_header.h"

static struct eval_sa test_eh;

static int test_eh_setup(void **state)
{
	(void)state;
	return eval_sa_setup(&test_eh, "eval_header", "rules.cf");
}

static int test_eh_teardown(void **state)
{
	(void)state;
	return eval_sa_teardown(&test_eh);
}

static void test_eval_header_vs_spamassassin(void **state)
{
	unsigned n;

	(void)state;
	assert_int_equal(eval_sa_check(&test_eh, 12, false, NULL, &n), 0);
	assert_true(n >= 30);
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

	assert_int_equal(filter_db_load(test_eh.dir, &db, err, sizeof(err)), 0);
	assert_int_equal(filter_shard_new(&fs, db), 0);
	eval_sa_scan(fs, msg, sizeof(msg) - 1, 0, &env, NULL, hits, sizeof(hits));
	assert_non_null(strstr(hits, "HDR_ENVFROM_EXAMPLE"));
	assert_null(strstr(hits, "HDR_DIFF_DOMAINS"));
	eval_sa_scan(fs, msg, sizeof(msg) - 1, 0, NULL, NULL, hits, sizeof(hits));
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
