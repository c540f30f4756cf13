/*
 * timer.h - a hashed timing wheel (after Varghese & Lauck; the same shape as Linux's and
 * Seastar's timer sets). One wheel per shard, advanced once per loop turn from a single io_uring
 * timeout, so protocol timeouts cost no syscall and no SQE per session. Arming and cancelling are
 * O(1); a session re-arms its idle timer on every command. One owner thread.
 *
 * Resolution is the tick (default 100 ms): a timer fires no earlier than asked, and at most one
 * tick late.
 */
#ifndef SLUICE_BASE_TIMER_H
#define SLUICE_BASE_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#define TIMER_SLOTS 512u

struct timer;
typedef void timer_fn(struct timer *t);

struct timer {
	struct timer  *next;
	struct timer **pprev;     /* NULL when not armed */
	uint64_t       expires;   /* in ticks */
	timer_fn      *fn;
};

struct timer_wheel {
	uint64_t      now;        /* ticks processed so far */
	uint64_t      origin_ms;  /* clock value of tick 0 */
	uint32_t      tick_ms;
	uint32_t      armed;
	struct timer *slots[TIMER_SLOTS];
};

void timer_wheel_init(struct timer_wheel *w, uint64_t now_ms, uint32_t tick_ms);
void timer_init(struct timer *t, timer_fn *fn);
/* Arms (or re-arms) t to fire after delay_ms. */
void timer_arm(struct timer_wheel *w, struct timer *t, uint64_t delay_ms);
void timer_cancel(struct timer_wheel *w, struct timer *t);
static inline bool timer_armed(const struct timer *t) { return t->pprev != 0; }
/* Fires every timer due at now_ms. A callback may arm or cancel any timer, itself included. */
void timer_wheel_advance(struct timer_wheel *w, uint64_t now_ms);
/* Milliseconds until the next tick that has work, capped at max_ms; max_ms if nothing is armed. */
uint64_t timer_wheel_idle_ms(const struct timer_wheel *w, uint64_t now_ms, uint64_t max_ms);

#endif
