// bench_runner.cc - the C++ side of bench.h: forwards the C API to Google Benchmark 1.7.
// The only C++ in bench/. Registration runs on the main thread before bench_main; the state
// calls run on Google Benchmark's threads, each on its own benchmark::State.
#include "bench.h"

#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <string>

using benchmark::Counter;
using benchmark::State;
using benchmark::internal::Benchmark;

namespace {

std::atomic<int> g_errors{0};

inline State *S(struct bench_state *st) { return reinterpret_cast<State *>(st); }
inline const State *S(const struct bench_state *st) { return reinterpret_cast<const State *>(st); }
inline Benchmark *B(struct bench *b) { return reinterpret_cast<Benchmark *>(b); }
inline struct bench *W(Benchmark *b) { return reinterpret_cast<struct bench *>(b); }

}  // namespace

extern "C" {

struct bench *bench_register(const char *name, bench_fn *fn, void *arg)
{
	Benchmark *b = benchmark::RegisterBenchmark(name, [fn, arg](State &st) {
		fn(reinterpret_cast<struct bench_state *>(&st), arg);
	});
	return W(b);
}

struct bench *bench_arg(struct bench *b, int64_t a) { return W(B(b)->Arg(a)); }

struct bench *bench_args(struct bench *b, const int64_t *a, size_t n)
{
	return W(B(b)->Args(std::vector<int64_t>(a, a + n)));
}

struct bench *bench_range_mult(struct bench *b, int64_t lo, int64_t hi, int mult)
{
	return W(B(b)->RangeMultiplier(mult)->Range(lo, hi));
}

struct bench *bench_arg_names(struct bench *b, const char *const *names, size_t n)
{
	std::vector<std::string> v;
	for (size_t i = 0; i < n; i++)
		v.emplace_back(names[i]);
	return W(B(b)->ArgNames(v));
}

struct bench *bench_unit(struct bench *b, enum bench_unit u)
{
	static const benchmark::TimeUnit map[] = { benchmark::kNanosecond, benchmark::kMicrosecond,
						   benchmark::kMillisecond, benchmark::kSecond };
	return W(B(b)->Unit(map[u]));
}

struct bench *bench_iterations_fixed(struct bench *b, int64_t n) { return W(B(b)->Iterations(n)); }
struct bench *bench_min_time(struct bench *b, double s) { return W(B(b)->MinTime(s)); }
struct bench *bench_real_time(struct bench *b) { return W(B(b)->UseRealTime()); }
struct bench *bench_threads(struct bench *b, int n) { return W(B(b)->Threads(n)); }

bool bench_keep_running(struct bench_state *st) { return S(st)->KeepRunning(); }
bool bench_keep_running_batch(struct bench_state *st, int64_t n) { return S(st)->KeepRunningBatch(n); }
int64_t bench_range(const struct bench_state *st, size_t i) { return S(st)->range(i); }
int64_t bench_iterations(const struct bench_state *st) { return S(st)->iterations(); }
int bench_thread_index(const struct bench_state *st) { return S(st)->thread_index(); }
int bench_thread_count(const struct bench_state *st) { return S(st)->threads(); }
void bench_pause(struct bench_state *st) { S(st)->PauseTiming(); }
void bench_resume(struct bench_state *st) { S(st)->ResumeTiming(); }

void bench_skip_error(struct bench_state *st, const char *msg)
{
	g_errors.fetch_add(1);
	S(st)->SkipWithError(msg);
}

void bench_set_label(struct bench_state *st, const char *label) { S(st)->SetLabel(label); }
void bench_set_bytes(struct bench_state *st, int64_t bytes) { S(st)->SetBytesProcessed(bytes); }
void bench_set_items(struct bench_state *st, int64_t items) { S(st)->SetItemsProcessed(items); }

void bench_counter(struct bench_state *st, const char *name, double value, unsigned flags)
{
	int f = 0;
	if (flags & BENCH_C_RATE)
		f |= Counter::kIsRate;
	if (flags & BENCH_C_AVG_THREADS)
		f |= Counter::kAvgThreads;
	if (flags & BENCH_C_ITER_INVARIANT)
		f |= Counter::kIsIterationInvariant;
	if (flags & BENCH_C_AVG_ITER)
		f |= Counter::kAvgIterations;
	if (flags & BENCH_C_INVERT)
		f |= Counter::kInvert;
	S(st)->counters[name] = Counter(value, static_cast<Counter::Flags>(f),
					(flags & BENCH_C_1024) ? Counter::kIs1024 : Counter::kIs1000);
}

void bench_do_not_optimize(const void *p) { benchmark::DoNotOptimize(p); }

void bench_context(const char *key, const char *value) { benchmark::AddCustomContext(key, value); }

int bench_main(int argc, char **argv)
{
	benchmark::Initialize(&argc, argv);
	if (benchmark::ReportUnrecognizedArguments(argc, argv))
		return 1;
	size_t n = benchmark::RunSpecifiedBenchmarks();
	benchmark::Shutdown();
	if (n == 0)
		std::fprintf(stderr, "bench: no benchmark matched the filter\n");
	return g_errors.load() ? 1 : 0;
}

}  // extern "C"
