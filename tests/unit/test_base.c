/*
 * test_base.c - dataplane/base: configuration values, arenas, pools, the SPSC ring.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "base/arena.h"
#include "base/cfgval.h"
#include "base/pool.h"
#include "base/spsc.h"

static void test_cfgval_size(void **state)
{
	static const struct { const char *label, *in; int want_r; uint64_t want; } cases[] = {
		{ "bytes", "1000", 0, 1000 },
		{ "K", "4K", 0, 4096 },
		{ "M lower", "25m", 0, 25u << 20 },
		{ "G", "1G", 0, 1u << 30 },
		{ "MiB", "2MiB", 0, 2u << 20 },
		{ "spaces", " 7 ", 0, 7 },
		{ "junk", "7x", -EINVAL, 0 },
		{ "empty", "", -EINVAL, 0 },
		{ "negative", "-1", -EINVAL, 0 },
		{ "overflow", "99999999999999999999", -ERANGE, 0 },
		{ "overflow by suffix", "99999999999999G", -ERANGE, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 12345;
		int r = cfgval_size(cases[i].in, &v);

		assert_int_equal(r, cases[i].want_r);
		assert_int_equal(v, r == 0 ? cases[i].want : 12345);
	}
}

static void test_cfgval_duration(void **state)
{
	static const struct { const char *in; int want_r; uint64_t want; } cases[] = {
		{ "300", 0, 300000 }, { "5m", 0, 300000 }, { "250ms", 0, 250 }, { "2h", 0, 7200000 },
		{ "5d", 0, 432000000 }, { "1s", 0, 1000 }, { "1y", -EINVAL, 0 }, { "m", -EINVAL, 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t v = 0;

		assert_int_equal(cfgval_duration_ms(cases[i].in, &v), cases[i].want_r);
		if (cases[i].want_r == 0)
			assert_int_equal(v, cases[i].want);
	}
}

static void test_cfgval_misc(void **state)
{
	struct sockaddr_storage ss;
	socklen_t len;
	uint64_t v;
	bool b;
	(void)state;
	assert_int_equal(cfgval_bool("Yes", &b), 0);
	assert_true(b);
	assert_int_equal(cfgval_bool("off", &b), 0);
	assert_false(b);
	assert_int_equal(cfgval_bool("maybe", &b), -EINVAL);
	assert_int_equal(cfgval_uint("10", 1, 5, &v), -ERANGE);
	assert_int_equal(cfgval_uint("5", 1, 5, &v), 0);
	assert_int_equal(cfgval_hostport("127.0.0.2:2525", true, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 2525);
	assert_int_equal(cfgval_hostport("[::1]:25", true, &ss, &len), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(cfgval_hostport("127.0.0.1", true, &ss, &len), -EINVAL);
	assert_int_equal(cfgval_hostport("127.0.0.1:0", true, &ss, &len), -ERANGE);
	assert_int_equal(cfgval_hostport("127.0.0.1:70000", true, &ss, &len), -ERANGE);
	assert_int_equal(cfgval_hostport("name.invalid:25", true, &ss, &len), -EINVAL);
}

static void test_arena(void **state)
{
	struct arena a;
	char *s[100];
	(void)state;
	arena_init(&a, 256);
	for (int i = 0; i < 100; i++) {
		char tmp[32];
		int n = snprintf(tmp, sizeof(tmp), "string %d", i);

		s[i] = arena_strndup(&a, tmp, (size_t)n);
		assert_non_null(s[i]);
		assert_int_equal(((uintptr_t)s[i]) & 7, 0);
	}
	for (int i = 0; i < 100; i++) {
		char tmp[32];

		snprintf(tmp, sizeof(tmp), "string %d", i);
		assert_string_equal(s[i], tmp);
	}
	void *big = arena_alloc(&a, 10000);      /* larger than a chunk */
	assert_non_null(big);
	memset(big, 1, 10000);
	arena_reset(&a);
	assert_int_equal(a.total, 0);
	assert_non_null(arena_alloc(&a, 8));
	arena_destroy(&a);
	assert_null(a.head);
}

static void test_pool_cap(void **state)
{
	struct pool p;
	void *objs[4];
	(void)state;
	pool_init(&p, 64, 3);
	for (int i = 0; i < 3; i++) {
		objs[i] = pool_get(&p);
		assert_non_null(objs[i]);
		memset(objs[i], 0xab, 64);
	}
	assert_null(pool_get(&p));      /* the cap says no */
	pool_put(&p, objs[1]);
	objs[3] = pool_get(&p);
	assert_ptr_equal(objs[3], objs[1]);   /* reused from the free list... */
	for (int i = 0; i < 64; i++)            /* ...and zeroed */
		assert_int_equal(((uint8_t *)objs[3])[i], 0);
	pool_put(&p, objs[0]);
	pool_put(&p, objs[2]);
	pool_put(&p, objs[3]);
	assert_int_equal(p.live, 0);
	pool_destroy(&p);
}

static void test_spsc(void **state)
{
	struct spsc q;
	uintptr_t i;
	(void)state;
	assert_int_equal(spsc_init(&q, 5), 0);       /* rounds to 8 */
	for (i = 1; i <= 8; i++)
		assert_true(spsc_push(&q, (void *)i));
	assert_false(spsc_push(&q, (void *)9));
	assert_ptr_equal(spsc_peek(&q), (void *)1);
	spsc_release(&q);
	assert_true(spsc_push(&q, (void *)9));
	for (i = 2; i <= 9; i++)
		assert_ptr_equal(spsc_pop(&q), (void *)i);
	assert_null(spsc_pop(&q));
	spsc_destroy(&q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cfgval_size),
		cmocka_unit_test(test_cfgval_duration),
		cmocka_unit_test(test_cfgval_misc),
		cmocka_unit_test(test_arena),
		cmocka_unit_test(test_pool_cap),
		cmocka_unit_test(test_spsc),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
