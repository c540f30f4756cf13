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
#include <unistd.h>

#include <cmocka.h>

#include "eval_sa.h"
#include "filter.h"

static struct eval_sa test_htmlx;

static int test_htmlx_setup(void **state)
{
	(void)state;
	return eval_sa_setup(&test_htmlx, "eval_html", "rules.cf");
}

static int test_htmlx_teardown(void **state)
{
	(void)state;
	return eval_sa_teardown(&test_htmlx);
}

/* The HX_ rules, whole, a byte at a time and at ten random splits. */
static void test_htmlx_spamassassin(void **state)
{
	unsigned n;

	(void)state;
	assert_int_equal(eval_sa_check(&test_htmlx, 12, false, "HX_", &n), 0);
	assert_true(n >= 30);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_htmlx_spamassassin),
	};

	return cmocka_run_group_tests(tests, test_htmlx_setup, test_htmlx_teardown);
}
