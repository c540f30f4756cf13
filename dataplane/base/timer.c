/*
 * timer.c - see timer.h.
 */
#include "timer.h"

#include <stddef.h>

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms, uint32_t tick_ms)
{
	*w = (struct timer_wheel){ .origin_ms = now_ms, .tick_ms = tick_ms ? tick_ms : 100 };
}

void timer_init(struct timer *t, timer_fn *fn)
{
	t->next = NULL;
	t->pprev = NULL;
	t->expires = 0;
	t->fn = fn;
}

static void timer_unlink(struct timer_wheel *w, struct timer *t)
{
	*t->pprev = t->next;
	if (t->next != NULL)
		t->next->pprev = t->pprev;
	t->next = NULL;
	t->pprev = NULL;
	w->armed--;
}

void timer_arm(struct timer_wheel *w, struct timer *t, uint64_t delay_ms)
{
	struct timer **slot;
	uint64_t ticks = (delay_ms + w->tick_ms - 1) / w->tick_ms;

	if (t->pprev != NULL)
		timer_unlink(w, t);
	/* +1: the current tick may be partly gone, and a timer must never fire early. */
	t->expires = w->now + ticks + 1;
	slot = &w->slots[t->expires % TIMER_SLOTS];
	t->next = *slot;
	if (t->next != NULL)
		t->next->pprev = &t->next;
	t->pprev = slot;
	*slot = t;
	w->armed++;
}

void timer_cancel(struct timer_wheel *w, struct timer *t)
{
	if (t->pprev != NULL)
		timer_unlink(w, t);
}

void timer_wheel_advance(struct timer_wheel *w, uint64_t now_ms)
{
	uint64_t target = now_ms < w->origin_ms ? 0 : (now_ms - w->origin_ms) / w->tick_ms;

	while (w->now < target) {
		struct timer **slot;
		struct timer *t, *due = NULL;

		w->now++;
		if (w->armed == 0) {
			w->now = target;
			break;
		}
		/* Take the due timers off the slot first: callbacks may re-arm into this slot. */
		slot = &w->slots[w->now % TIMER_SLOTS];
		t = *slot;
		while (t != NULL) {
			struct timer *next = t->next;

			if (t->expires <= w->now) {
				timer_unlink(w, t);
				t->next = due;
				due = t;
			}
			t = next;
		}
		while (due != NULL) {
			t = due;
			due = t->next;
			t->next = NULL;
			t->fn(t);
		}
	}
}

uint64_t timer_wheel_idle_ms(const struct timer_wheel *w, uint64_t now_ms, uint64_t max_ms)
{
	uint64_t next_tick_ms;

	if (w->armed == 0)
		return max_ms;
	next_tick_ms = w->origin_ms + (w->now + 1) * w->tick_ms;
	if (next_tick_ms <= now_ms)
		return 0;
	return next_tick_ms - now_ms < max_ms ? next_tick_ms - now_ms : max_ms;
}
