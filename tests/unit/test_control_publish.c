/*
 * test_control_publish.c - control/control_publish.c: the back-off after failures (from the
 * minimum, doubling, capped), and a publisher started and stopped with no hub listening (it
 * keeps retrying without losing the outbox, and stops cleanly).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "control_publish.h"
#include "store/store.h"

static void test_backoff(void **state)
{
	(void)state;
	unsigned ms = control_publish_backoff(0);
	assert_int_equal(ms, CONTROL_PUBLISH_BACKOFF_MIN_MS);
	assert_int_equal(control_publish_backoff(ms), 2 * CONTROL_PUBLISH_BACKOFF_MIN_MS);
	for (int i = 0; i < 40; i++) {
		unsigned next = control_publish_backoff(ms);
		assert_true(next >= ms);
		assert_true(next <= CONTROL_PUBLISH_BACKOFF_MAX_MS);
		ms = next;
	}
	assert_int_equal(ms, CONTROL_PUBLISH_BACKOFF_MAX_MS);
	assert_int_equal(control_publish_backoff(CONTROL_PUBLISH_BACKOFF_MAX_MS),
			 CONTROL_PUBLISH_BACKOFF_MAX_MS);
}

/* A port nothing listens on: the publisher retries, the row stays, stop returns. */
static void test_no_hub_keeps_rows(void **state)
{
	(void)state;
	char dir[] = "/tmp/sluice-publish-XXXXXX", db[64], err[256];
	assert_non_null(mkdtemp(dir));
	snprintf(db, sizeof db, "%s/control.db", dir);
	struct store *st = NULL;
	assert_int_equal(store_open(db, &st, err, sizeof err), 0);
	struct store_actor a = { "-", "local" };
	json_t *d = json_pack("{sssss{}}", "name", "example.org", "route", "10.0.0.5:25",
			      "policy");
	assert_int_equal(store_domain_put(st, &a, d, true), 0);
	json_decref(d);
	int64_t pending = store_outbox_pending(st);
	assert_true(pending >= 2);
	assert_int_equal(store_outbox_published(st), 0);

	struct control_publish *pub = NULL;
	assert_int_equal(control_publish_start(db, 1, &pub, err, sizeof err), 0);
	control_publish_wake(pub);
	usleep(300 * 1000);
	control_publish_stop(&pub);
	assert_null(pub);
	assert_int_equal(store_outbox_pending(st), pending);

	assert_int_equal(store_outbox_done(st, INT64_MAX), 0);
	assert_int_equal(store_outbox_published(st), store_cluster_version(st));
	store_close(&st);
	unlink(db);
	char side[80];
	snprintf(side, sizeof side, "%s-wal", db);
	unlink(side);
	snprintf(side, sizeof side, "%s-shm", db);
	unlink(side);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_no_hub_keeps_rows),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
