/*
 * test_timer.c - the timing wheel: never early, at most one tick late, re-arming and cancelling
 * from callbacks, delays longer than one turn of the wheel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "base/timer.h"

struct probe {
	struct timer t;
	uint64_t     armed_at, delay, fired_at;
	int          fired;
};

static uint64_t now_ms;

static void probe_fire(struct timer *t)
{
	struct probe *p = (struct probe *)t;

	p->fired++;
	p->fired_at = now_ms;
}

static void test_never_early_at_most_a_tick_late(void **state)
{
	struct timer_wheel w;
	struct probe p[300];
	(void)state;
	now_ms = 1000;
	timer_wheel_init(&w, now_ms, 100);
	srand(7);
	for (int i = 0; i < 300; i++) {
		timer_init(&p[i].t, probe_fire);
		p[i].delay = (uint64_t)(rand() % 120000);    /* up to 2 minutes: > one wheel turn */
		p[i].armed_at = now_ms;
		p[i].fired = 0;
		timer_arm(&w, &p[i].t, p[i].delay);
	}
	while (now_ms < 1000 + 125000) {
		now_ms += 1 + (uint64_t)(rand() % 37);
		timer_wheel_advance(&w, now_ms);
	}
	for (int i = 0; i < 300; i++) {
		assert_int_equal(p[i].fired, 1);
		assert_true(p[i].fired_at >= p[i].armed_at + p[i].delay);
		assert_true(p[i].fired_at <= p[i].armed_at + p[i].delay + 2 * 100 + 37);
	}
	assert_int_equal(w.armed, 0);
}

static struct timer_wheel *rw;
static int rearms;

static void rearm_fire(struct timer *t)
{
	if (++rearms < 5)
		timer_arm(rw, t, 50);
}

static void test_rearm_and_cancel(void **state)
{
	struct timer_wheel w;
	struct timer a, b;
	(void)state;
	rw = &w;
	now_ms = 0;
	timer_wheel_init(&w, 0, 10);
	timer_init(&a, rearm_fire);
	timer_init(&b, rearm_fire);
	timer_arm(&w, &a, 50);
	timer_arm(&w, &b, 30);
	timer_cancel(&w, &b);
	assert_false(timer_armed(&b));
	for (now_ms = 0; now_ms < 2000; now_ms += 5)
		timer_wheel_advance(&w, now_ms);
	assert_int_equal(rearms, 5);
	assert_int_equal(w.armed, 0);
	assert_int_equal(timer_wheel_idle_ms(&w, now_ms, 777), 777);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_never_early_at_most_a_tick_late),
		cmocka_unit_test(test_rearm_and_cancel),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
