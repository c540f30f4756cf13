/*
 * bench_selftest.c - benchmarks that exercise every part of the C API, for the harness's own
 * test (selftest.py runs this program with --benchmark_format=json and checks each counter).
 * SLUICE_BENCH_SELFTEST_FAIL=1 registers one more benchmark that reports an error, to check
 * that the failure reaches the exit status.
 */
#include <stdlib.h>

#include "bench.h"

static void bm_selftest_sum(struct bench_state *st, void *arg)
{
	int64_t n = bench_range(st, 0);
	uint64_t sum = 0;
	const int *tag = arg;

	while (bench_keep_running(st)) {
		for (int64_t i = 0; i < n; i++)
			sum += (uint64_t)i;
		bench_do_not_optimize(&sum);
	}
	bench_set_bytes(st, bench_iterations(st) * n);
	bench_set_items(st, bench_iterations(st));
	bench_counter(st, "calls", (double)bench_iterations(st), BENCH_C_DEFAULT);
	bench_counter(st, "per_call", 3.0, BENCH_C_ITER_INVARIANT | BENCH_C_AVG_ITER);
	bench_counter(st, "tag", (double)*tag, BENCH_C_DEFAULT);
	bench_counter(st, "sum_rate", (double)bench_iterations(st), BENCH_C_RATE);
	bench_set_label(st, "selftest-label");
}

static void bm_selftest_batch(struct bench_state *st, void *arg)
{
	int64_t batches = 0;

	while (bench_keep_running_batch(st, 16)) {
		batches++;
		bench_pause(st);
		bench_clobber();
		bench_resume(st);
	}
	bench_counter(st, "batches", (double)batches, BENCH_C_DEFAULT);
	bench_counter(st, "a0", (double)bench_range(st, 0), BENCH_C_DEFAULT);
	bench_counter(st, "a1", (double)bench_range(st, 1), BENCH_C_DEFAULT);
}

static void bm_selftest_fail(struct bench_state *st, void *arg)
{
	bench_skip_error(st, "selftest: deliberate failure");
}

static const int selftest_tag = 42;

BENCH_INIT(selftest)
{
	static const char *const names[] = { "x", "y" };
	static const int64_t xy[] = { 7, 9 };

	bench_context("selftest_context", "present");
	bench_unit(bench_arg(bench_arg(bench_register("selftest_sum", bm_selftest_sum,
						      (void *)&selftest_tag), 64), 1024), BENCH_US);
	bench_iterations_fixed(bench_arg_names(bench_args(bench_register("selftest_batch",
		bm_selftest_batch, NULL), xy, 2), names, 2), 64);
	if (getenv("SLUICE_BENCH_SELFTEST_FAIL") != NULL)
		bench_register("selftest_fail", bm_selftest_fail, NULL);
}
