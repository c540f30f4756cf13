/*
 * bench_main.c - main() for every benchmark program: hands argv to Google Benchmark.
 */
#include "bench.h"

int main(int argc, char **argv)
{
	return bench_main(argc, argv);
}
