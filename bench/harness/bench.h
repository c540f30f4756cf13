/*
 * bench.h - the C face of Google Benchmark. Every Sluice benchmark is written in C against this
 * header; bench_runner.cc (the only C++ in bench/) forwards each call to benchmark::State and
 * benchmark::internal::Benchmark, so runs take Google Benchmark's own flags
 * (--benchmark_filter, --benchmark_min_time, --benchmark_format=json, --benchmark_out, ...) and
 * write its console and JSON formats.
 *
 * Registration happens before bench_main runs: a file registers its benchmarks from a
 * BENCH_INIT() block (a constructor). Benchmarks are built straight into the program (not via a
 * static library) so the linker keeps the constructors.
 *
 * Threads: registration on the main thread before bench_main; a benchmark function runs on
 * Google Benchmark's thread(s) and uses only its own struct bench_state.
 *
 * A benchmark body:
 *
 *	static void bm_copy(struct bench_state *st, void *arg)
 *	{
 *		size_t n = (size_t)bench_range(st, 0);
 *		...set-up, not timed...
 *		while (bench_keep_running(st))
 *			memcpy(dst, src, n);
 *		bench_set_bytes(st, bench_iterations(st) * n);
 *	}
 *	BENCH_INIT(copy) { bench_arg(bench_register("copy", bm_copy, NULL), 4096); }
 */
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bench;        /* a registered benchmark (benchmark::internal::Benchmark) */
struct bench_state;  /* one run of it (benchmark::State) */

typedef void bench_fn(struct bench_state *st, void *arg);

/* ---- registration (before bench_main) ---- */

/* Registers fn under name; arg is passed to every run. Never NULL (aborts on ENOMEM, as
 * registration happens at start-up). The name is copied. */
struct bench *bench_register(const char *name, bench_fn *fn, void *arg);
/* One run per call with range(0) = a. */
struct bench *bench_arg(struct bench *b, int64_t a);
/* One run with range(0..n-1) = a[0..n-1]. */
struct bench *bench_args(struct bench *b, const int64_t *a, size_t n);
/* Runs for lo, lo*mult, ..., hi (Google Benchmark's RangeMultiplier + Range). */
struct bench *bench_range_mult(struct bench *b, int64_t lo, int64_t hi, int mult);
/* Names the arguments in the output ("size", "shards"). */
struct bench *bench_arg_names(struct bench *b, const char *const *names, size_t n);

enum bench_unit { BENCH_NS, BENCH_US, BENCH_MS, BENCH_S };
struct bench *bench_unit(struct bench *b, enum bench_unit u);
/* Fixed iteration count (else Google Benchmark picks one from --benchmark_min_time). */
struct bench *bench_iterations_fixed(struct bench *b, int64_t n);
struct bench *bench_min_time(struct bench *b, double seconds);
/* Wall-clock time instead of the main thread's CPU time (for anything that waits on I/O). */
struct bench *bench_real_time(struct bench *b);
/* Runs the function on n threads at once. */
struct bench *bench_threads(struct bench *b, int n);

/* ---- inside a benchmark ---- */

bool bench_keep_running(struct bench_state *st);
/* Batches n iterations per call (may overshoot by up to n; see Google Benchmark). */
bool bench_keep_running_batch(struct bench_state *st, int64_t n);
int64_t bench_range(const struct bench_state *st, size_t i);
int64_t bench_iterations(const struct bench_state *st);
int bench_thread_index(const struct bench_state *st);
int bench_thread_count(const struct bench_state *st);
void bench_pause(struct bench_state *st);
void bench_resume(struct bench_state *st);
/* Marks the run failed with msg; the function must then return without further iterations
 * (call it before the loop, or break out of it). */
void bench_skip_error(struct bench_state *st, const char *msg);
void bench_set_label(struct bench_state *st, const char *label);
/* Totals over the whole run; reported as bytes_per_second / items_per_second. */
void bench_set_bytes(struct bench_state *st, int64_t bytes);
void bench_set_items(struct bench_state *st, int64_t items);

/* Custom counters (benchmark::Counter flags). A counter set again replaces the old value. */
#define BENCH_C_DEFAULT        0x0u
#define BENCH_C_RATE           0x1u  /* divided by the run's time */
#define BENCH_C_AVG_THREADS    0x2u
#define BENCH_C_ITER_INVARIANT 0x4u  /* multiplied by the iteration count */
#define BENCH_C_AVG_ITER       0x8u  /* divided by the iteration count */
#define BENCH_C_INVERT         0x80000000u
#define BENCH_C_1024           0x40000000u  /* k = 1024 in the console output */
void bench_counter(struct bench_state *st, const char *name, double value, unsigned flags);

/* Keeps the compiler from discarding a value or from eliding stores to memory. */
void bench_do_not_optimize(const void *p);
static inline void bench_clobber(void) { __asm__ __volatile__("" : : : "memory"); }

/* Adds a key/value to the output's context block (e.g. the corpus used). */
void bench_context(const char *key, const char *value);

/* Initialises from argv (Google Benchmark's flags), rejects unknown flags, runs the selected
 * benchmarks. Returns the exit status: 0, or 1 for bad flags or when a benchmark called
 * bench_skip_error (so a smoke run catches a broken benchmark). */
int bench_main(int argc, char **argv);

#define BENCH_INIT(name) \
	static void bench_init_##name(void) __attribute__((constructor)); \
	static void bench_init_##name(void)

#ifdef __cplusplus
}
#endif

#endif
