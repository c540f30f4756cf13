/*
 * bench_spool.c - the spool's append with group commit (dataplane/spool/spool.h): messages of
 * the given size are written and committed in batches of the given count per loop turn, and
 * the loop turns until every batch's fdatasync has completed and every callback ran, as a shard
 * would. Real time (it waits on the disk). Items are durable messages; syncs_per_msg shows how
 * many messages one fdatasync covered. The spool lives in $TMPDIR (the disk under test).
 */
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"
#include "spool.h"

#define UD_TAG 0x5b

struct done_count {
	uint64_t ok, failed;
};

static void on_done(void *arg, spool_qid qid, int err)
{
	struct done_count *d = arg;

	if (err == 0)
		d->ok++;
	else
		d->failed++;
}

static void turn(struct io_uring *ring, struct spool *sp)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	spool_flush(sp);
	if (!spool_busy(sp))
		return;
	io_uring_submit_and_wait(ring, 1);
	io_uring_for_each_cqe(ring, head, cqe) {
		spool_handle_cqe(sp, cqe);
		n++;
	}
	io_uring_cq_advance(ring, n);
}

static void bm_spool(struct bench_state *st, void *arg)
{
	size_t size = (size_t)bench_range(st, 0);
	unsigned batch = (unsigned)bench_range(st, 1);
	const char *t = getenv("TMPDIR");
	char dir[512], cmd[600];
	struct io_uring ring;
	struct io_uring_params p = { .flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN };
	struct spool *sp = NULL;
	struct spool_conf conf = { .shard_id = 0, .segment_size = 64 << 20, .spill_bytes = 1 << 20,
				   .min_free_bytes = 1 };
	struct done_count dc = { 0 };
	uint8_t *body = malloc(size);
	struct slice rcpt = SLICE_LIT("rcpt0@bench.test");
	struct spool_envelope env = {
		.mail_from = SLICE_LIT("load@sluice-load.test"), .nrcpt = 1, .rcpts = &rcpt,
		.helo = SLICE_LIT("load.test"), .client_addr = SLICE_LIT("127.0.0.1"),
		.listener = SLICE_LIT("127.0.0.2:25"), .session_id = SLICE_LIT("bench"),
	};
	struct spool_stats ss0, ss1;

	snprintf(dir, sizeof(dir), "%s/sluice-bench-spool.XXXXXX", t && *t ? t : "/tmp");
	if (body == NULL || mkdtemp(dir) == NULL) {
		free(body);
		bench_skip_error(st, "no temporary directory");
		return;
	}
	for (size_t i = 0; i < size; i++)
		body[i] = (i % 78 == 76) ? '\r' : (i % 78 == 77) ? '\n' : (uint8_t)('a' + i % 26);
	conf.dir = dir;
	if (io_uring_queue_init_params(256, &ring, &p) < 0 &&
	    io_uring_queue_init(256, &ring, 0) < 0) {
		bench_skip_error(st, "io_uring");
		goto out_free;
	}
	if (spool_open(&sp, &conf, &ring, UD_TAG) < 0) {
		bench_skip_error(st, "spool_open failed");
		goto out_ring;
	}
	spool_get_stats(sp, &ss0);
	while (bench_keep_running(st)) {
		for (unsigned i = 0; i < batch; i++) {
			struct spool_msg *m;
			env.received_ns = (uint64_t)i;
			if (spool_msg_begin(sp, &m) < 0 || spool_msg_write(m, body, size) < 0 ||
			    spool_msg_commit(m, &env, on_done, &dc) < 0) {
				bench_skip_error(st, "spool append failed");
				goto out_spool;
			}
		}
		while (spool_busy(sp))
			turn(&ring, sp);
	}
	spool_get_stats(sp, &ss1);
	if (dc.failed || dc.ok != (uint64_t)bench_iterations(st) * batch) {
		bench_skip_error(st, "not every message was reported durable");
		goto out_spool;
	}
	bench_set_items(st, (int64_t)dc.ok);
	bench_set_bytes(st, (int64_t)(dc.ok * size));
	bench_counter(st, "syncs_per_msg",
		      dc.ok ? (double)(ss1.syncs - ss0.syncs) / (double)dc.ok : 0, 0);
	bench_counter(st, "sync_us_avg", ss1.syncs > ss0.syncs ?
		      (double)(ss1.sync_ns_total - ss0.sync_ns_total) / 1e3 / (double)(ss1.syncs - ss0.syncs) : 0, 0);
out_spool:
	spool_close(&sp);
out_ring:
	io_uring_queue_exit(&ring);
out_free:
	free(body);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_spool: could not remove %s\n", dir);
}

BENCH_INIT(spool)
{
	static const char *const names[] = { "size", "batch" };
	struct bench *b = bench_register("spool/append_commit", bm_spool, NULL);
	static const int64_t cases[][2] = { { 4096, 1 }, { 4096, 16 }, { 4096, 64 }, { 65536, 16 } };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		bench_args(b, cases[i], 2);
	bench_arg_names(b, names, 2);
	bench_real_time(b);
	bench_unit(b, BENCH_US);
}
