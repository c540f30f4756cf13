/*
 * shard.c - the shard thread: ring set-up with the fastest flags the kernel takes, provided
 * receive buffers, the jemalloc arena, the event loop, and messages between threads.
 *
 * The loop (one turn): submit what is queued and wait for at least one completion or the next
 * timer tick; hand every completion to its op's handler; advance the timer wheel; let the spool
 * start its group commit. Nothing in the loop blocks except the wait itself.
 */
#include "shard/shard.h"

#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/runas.h"

#define SHARD_RING_ENTRIES 4096u
#define SHARD_TICK_MS      100u
#define SHARD_EVENTS_CAP   16384u

static shard_cqe_fn *shard_handlers[SHARD_OP_COUNT];
static struct shard_hooks shard_hooks;

void shard_set_handler(enum shard_op op, shard_cqe_fn *fn)
{
	shard_handlers[op] = fn;
}

void shard_set_hooks(const struct shard_hooks *h)
{
	shard_hooks = *h;
}

struct io_uring_sqe *shard_sqe(struct shard *sh)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&sh->ring);

	while (sqe == NULL) {
		/* The SQ is full: hand it to the kernel now; it never stays full for long. */
		int r = io_uring_submit(&sh->ring);

		if (r < 0 && r != -EAGAIN && r != -EBUSY && r != -EINTR)
			panic("shard %u: io_uring_submit: %s", sh->id, strerror(-r));
		sqe = io_uring_get_sqe(&sh->ring);
	}
	return sqe;
}

void shard_buf_recycle(struct shard *sh, unsigned bid)
{
	io_uring_buf_ring_add(sh->br, shard_buf(sh, bid), SHARD_BUF_SIZE, (unsigned short)bid,
			      io_uring_buf_ring_mask(SHARD_BUF_COUNT), 0);
	io_uring_buf_ring_advance(sh->br, 1);
}

/* SINGLE_ISSUER + DEFER_TASKRUN is worth ~20% here (MACHINE.md); older kernels refuse one or
 * both, so try the best set first and fall back. */
static int shard_ring_setup(struct shard *sh)
{
	static const unsigned tries[] = {
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
			IORING_SETUP_COOP_TASKRUN,
		IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
		IORING_SETUP_COOP_TASKRUN,
		0,
	};
	int r = -EINVAL;

	for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
		struct io_uring_params p = { .flags = tries[i] | IORING_SETUP_CQSIZE,
					     .cq_entries = SHARD_RING_ENTRIES * 4 };

		r = io_uring_queue_init_params(SHARD_RING_ENTRIES, &sh->ring, &p);
		if (r == 0) {
			sh->ring_flags = tries[i];
			return 0;
		}
	}
	log_error(r, "shard %u: io_uring_queue_init", sh->id);
	return r;
}

static int shard_bufs_setup(struct shard *sh)
{
	struct io_uring_buf_reg reg = { 0 };
	size_t ring_bytes = SHARD_BUF_COUNT * sizeof(struct io_uring_buf);
	int r;

	sh->br = mmap(NULL, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
	if (sh->br == MAP_FAILED) {
		sh->br = NULL;
		return -errno;
	}
	sh->bufs = malloc((size_t)SHARD_BUF_COUNT * SHARD_BUF_SIZE);
	if (sh->bufs == NULL)
		return -ENOMEM;
	reg.ring_addr = (unsigned long)sh->br;
	reg.ring_entries = SHARD_BUF_COUNT;
	reg.bgid = SHARD_BUF_GROUP;
	r = io_uring_register_buf_ring(&sh->ring, &reg, 0);
	if (r < 0) {
		log_error(r, "shard %u: provided buffer rings are needed (kernel 5.19+)", sh->id);
		return r;
	}
	io_uring_buf_ring_init(sh->br);
	for (unsigned i = 0; i < SHARD_BUF_COUNT; i++)
		io_uring_buf_ring_add(sh->br, shard_buf(sh, i), SHARD_BUF_SIZE, (unsigned short)i,
				      io_uring_buf_ring_mask(SHARD_BUF_COUNT), (int)i);
	io_uring_buf_ring_advance(sh->br, SHARD_BUF_COUNT);
	return 0;
}

/* Each shard allocates from its own jemalloc arena: no allocator lock is ever shared. */
static void shard_arena_setup(struct shard *sh)
{
	unsigned arena;
	size_t sz = sizeof(arena);

	if (mallctl("arenas.create", &arena, &sz, NULL, 0) != 0 ||
	    mallctl("thread.arena", NULL, NULL, &arena, sizeof(arena)) != 0) {
		log_warn(0, "shard %u: no private jemalloc arena; sharing the default", sh->id);
		return;
	}
	sh->arena = arena;
}

static void shard_pin(struct shard *sh)
{
	cpu_set_t set;

	if (sh->cpu == -1u)
		return;
	CPU_ZERO(&set);
	CPU_SET(sh->cpu, &set);
	if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
		log_warn(0, "shard %u: cannot pin to CPU %u", sh->id, sh->cpu);
}

struct shard_boot {
	struct shard *sh;
	const int    *listen_fds;
	unsigned      nlisten;
	sem_t         done;
	int           result;
};

void shard_defer(struct shard *sh, struct shard_deferred *d, shard_deferred_fn *fn)
{
	if (d->queued)
		return;
	d->queued = true;
	d->fn = fn;
	d->next = NULL;
	if (sh->deferred == NULL)
		sh->deferred_tail = &sh->deferred;
	*sh->deferred_tail = d;
	sh->deferred_tail = &d->next;
}

static void shard_run_deferred(struct shard *sh)
{
	while (sh->deferred != NULL) {
		struct shard_deferred *d = sh->deferred;

		sh->deferred = d->next;
		d->queued = false;
		d->fn(sh, d);       /* may free d, may queue more */
	}
}

/* What the thread set up for itself, after its ring is gone (the event ring stays until
 * shard_release: the agent drains it after the thread has exited). A session still live here
 * is a leak the sanitizer build reports. */
static void shard_free_local(struct shard *sh)
{
	if (sh->br != NULL)
		munmap(sh->br, SHARD_BUF_COUNT * sizeof(struct io_uring_buf));
	sh->br = NULL;
	free(sh->bufs);
	sh->bufs = NULL;
	free(sh->scratch);
	sh->scratch = sh->decode = NULL;
	for (unsigned i = 0; i < sh->nlisteners; i++)
		free(sh->listeners[i]);
	free(sh->listeners);
	sh->listeners = NULL;
	sh->nlisteners = 0;
	while (sh->closing_listeners != NULL) {   /* the ring that owed them a CQE is gone */
		struct shard_listener *l = sh->closing_listeners;

		sh->closing_listeners = l->next_closing;
		free(l);
	}
	pool_destroy(&sh->sessions);
}

void shard_release(struct shard *sh)
{
	spsc_destroy(&sh->events);
}

static void shard_dispatch(struct shard *sh, const struct io_uring_cqe *cqe)
{
	enum shard_op op = shard_ud_op(cqe->user_data);

	if (op == SHARD_OP_MSG) {
		struct shard_msg *m = (struct shard_msg *)(uintptr_t)shard_ud_low(cqe->user_data);

		m->fn(sh, m);
	} else if (op < SHARD_OP_COUNT && shard_handlers[op] != NULL) {
		shard_handlers[op](sh, cqe);
	}
	shard_run_deferred(sh);
}

static void shard_loop(struct shard *sh)
{
	bool aborted = false;

	for (;;) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts;
		uint64_t wait_ms;
		unsigned head, n = 0;
		int r;

		if (sh->stopping) {
			if (shard_hooks.idle(sh))
				break;
			if (!aborted && sh->now_ms >= sh->stop_deadline_ms) {
				log_info("shard %u: grace period over; closing what is left", sh->id);
				shard_hooks.abort(sh);
				aborted = true;
			}
		}
		shard_hooks.turn(sh);
		shard_run_deferred(sh);
		wait_ms = timer_wheel_idle_ms(&sh->timers, sh->now_ms, sh->stopping ? 50 : 1000);
		ts.tv_sec = (long long)(wait_ms / 1000);
		ts.tv_nsec = (long long)(wait_ms % 1000) * 1000000;
		r = io_uring_submit_and_wait_timeout(&sh->ring, &cqe, 1, &ts, NULL);
		if (r < 0 && r != -ETIME && r != -EINTR && r != -EAGAIN && r != -EBUSY)
			panic("shard %u: io_uring wait: %s", sh->id, strerror(-r));

		io_uring_for_each_cqe(&sh->ring, head, cqe) {
			shard_dispatch(sh, cqe);
			n++;
		}
		io_uring_cq_advance(&sh->ring, n);
		sh->now_ms = clock_mono_ns() / 1000000;
		timer_wheel_advance(&sh->timers, sh->now_ms);
		shard_run_deferred(sh);
	}
}

static void *shard_thread(void *arg)
{
	struct shard_boot *boot = arg;
	struct shard *sh = boot->sh;
	char tag[16];
	int r;

	snprintf(tag, sizeof(tag), "shard %u", sh->id);
	log_set_thread_tag(tag);
	/* the mail path holds no capability: the one the agent keeps for a reload's listeners
	 * (runas.h) goes here, for this thread (root with run_as_root keeps root's) */
	if (geteuid() != 0 && runas_has_caps() && runas_drop_caps() < 0) {
		boot->result = -EPERM;
		sem_post(&boot->done);
		return NULL;
	}
	shard_pin(sh);
	shard_arena_setup(sh);
	sh->now_ms = clock_mono_ns() / 1000000;
	timer_wheel_init(&sh->timers, sh->now_ms, SHARD_TICK_MS);
	sh->scratch = malloc(3 * SHARD_BUF_SIZE + 64);   /* + SMTP_DATA_OUT_MAX slack */
	sh->decode = sh->scratch + SHARD_BUF_SIZE;
	r = sh->scratch != NULL ? 0 : -ENOMEM;
	if (r == 0)
		r = spsc_init(&sh->events, SHARD_EVENTS_CAP);
	if (r == 0)
		r = shard_ring_setup(sh);
	if (r == 0)
		r = shard_bufs_setup(sh);
	if (r == 0) {
		unsigned n = boot->nlisten;

		sh->listeners = calloc(n ? n : 1, sizeof(*sh->listeners));
		if (sh->listeners == NULL)
			r = -ENOMEM;
		for (unsigned i = 0; r == 0 && i < n; i++) {
			struct shard_listener *l = calloc(1, sizeof(*l));

			if (l == NULL) {
				r = -ENOMEM;
				break;
			}
			/* bound by the caller: the socket says to what, for a reload to match */
			*l = (struct shard_listener){ .sh = sh, .fd = boot->listen_fds[i], .index = i,
						      .addrlen = sizeof(l->addr) };
			if (getsockname(l->fd, (struct sockaddr *)&l->addr, &l->addrlen) < 0) {
				r = -errno;
				free(l);
				break;
			}
			sh->listeners[sh->nlisteners++] = l;
		}
	}
	if (r == 0)
		r = shard_hooks.start(sh);
	boot->result = r;
	sem_post(&boot->done);      /* boot is the starter's: gone after this */
	if (r < 0)
		return NULL;

	shard_loop(sh);
	shard_hooks.finish(sh);
	shard_run_deferred(sh);
	io_uring_queue_exit(&sh->ring);
	shard_free_local(sh);
	node_config_unref(&sh->conf);
	atomic_store(&sh->exited, true);
	return NULL;
}

int shard_start(struct shard *sh, unsigned id, int cpu, struct node_config *conf,
		const int *listen_fds, unsigned nlisten)
{
	struct shard_boot boot = { .sh = sh, .listen_fds = listen_fds, .nlisten = nlisten };
	int r;

	memset(sh, 0, sizeof(*sh));
	sh->id = id;
	sh->cpu = (unsigned)cpu;
	sh->conf = node_config_ref(conf);
	pool_init(&sh->sessions, 1, snapshot_of(conf)->shard.max_sessions);   /* the size is set by
									       * the SMTP layer */
	sem_init(&boot.done, 0, 0);
	r = pthread_create(&sh->thread, NULL, shard_thread, &boot);
	if (r != 0) {
		sem_destroy(&boot.done);
		return -r;
	}
	while (sem_wait(&boot.done) != 0)
		;
	sem_destroy(&boot.done);
	if (boot.result < 0) {
		pthread_join(sh->thread, NULL);
		return boot.result;
	}
	return 0;
}

void shard_join(struct shard *sh)
{
	pthread_join(sh->thread, NULL);
}

int shard_post(struct io_uring *from_ring, struct shard *to, struct shard_msg *m)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(from_ring);
	int r;

	if (sqe == NULL) {
		io_uring_submit(from_ring);
		sqe = io_uring_get_sqe(from_ring);
		if (sqe == NULL)
			return -EBUSY;
	}
	io_uring_prep_msg_ring(sqe, to->ring.ring_fd, 0, shard_ud(SHARD_OP_MSG, (uintptr_t)m), 0);
	/* The sender sees its own completion of the send; nobody waits for it. */
	io_uring_sqe_set_data64(sqe, shard_ud(SHARD_OP_IGNORE, 0));
	r = io_uring_submit(from_ring);
	return r < 0 ? r : 0;
}

static void shard_stop_msg(struct shard *sh, struct shard_msg *m)
{
	free(m);
	if (sh->stopping)
		return;
	sh->stopping = true;
	sh->stop_deadline_ms = sh->now_ms + snapshot_of(sh->conf)->shard.shutdown_grace_ms;
	log_info("shard %u: stopping", sh->id);
	shard_hooks.stop(sh);
}

int shard_request_stop(struct io_uring *from_ring, struct shard *sh)
{
	struct shard_msg *m = malloc(sizeof(*m));
	int r;

	if (m == NULL)
		return -ENOMEM;
	m->fn = shard_stop_msg;
	r = shard_post(from_ring, sh, m);
	if (r < 0)
		free(m);
	return r;
}

void shard_set_config(struct shard *sh, struct node_config *conf)
{
	struct node_config *old = sh->conf;

	sh->conf = node_config_ref(conf);
	if (shard_hooks.config != NULL)
		shard_hooks.config(sh, old);
	node_config_unref(&old);
}
