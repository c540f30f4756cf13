/*
 * agent.c - see agent.h.
 *
 * The loop wakes on a signal (signalfd read on the agent's own ring) or every 50 ms to drain the
 * shards' event rings. Reload builds a new snapshot off the mail path; a file that does not load
 * is refused with its line and the shards keep the old one.
 */
#include "agent/agent.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "base/log.h"
#include "shard/shard_event.h"

struct agent_reload_msg {
	struct shard_msg    base;
	struct node_config *conf;      /* one reference, the message's */
};

static void agent_reload_apply(struct shard *sh, struct shard_msg *m)
{
	struct agent_reload_msg *rm = (struct agent_reload_msg *)m;

	shard_set_config(sh, rm->conf);
	node_config_unref(&rm->conf);
	free(rm);
}

void agent_block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void agent_write_event(void *arg, const struct shard_event *ev)
{
	(void)arg;
	log_info("%.*s", (int)ev->len, ev->text);
}

static void agent_drain_events(struct shard *shards, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!atomic_load(&shards[i].exited) || shards[i].events.slots != NULL)
			shard_event_drain(&shards[i], agent_write_event, NULL, 4096);
}

static void agent_reload(struct io_uring *ring, const char *path, struct shard *shards, unsigned n)
{
	struct node_config *conf;
	char err[1024];
	unsigned sent = 0;

	if (node_config_load(path, &conf, err, sizeof(err)) < 0) {
		log_error(0, "reload refused, keeping the running configuration: %s", err);
		return;
	}
	for (unsigned i = 0; i < n; i++) {
		struct agent_reload_msg *m = malloc(sizeof(*m));

		if (m == NULL)
			continue;
		m->base.fn = agent_reload_apply;
		m->conf = node_config_ref(conf);
		if (shard_post(ring, &shards[i], &m->base) < 0) {
			node_config_unref(&m->conf);
			free(m);
			continue;
		}
		sent++;
	}
	log_info("reloaded %s (generation %llu) on %u of %u shards", path,
		 (unsigned long long)conf->generation, sent, n);
	node_config_unref(&conf);
}

int agent_run(const char *config_path, struct shard *shards, unsigned nshards)
{
	struct io_uring ring;
	struct signalfd_siginfo si;
	sigset_t set;
	bool stopping = false, read_armed = false;
	int sfd, r;

	log_set_thread_tag("agent");
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (sfd < 0)
		fatal("signalfd: %s", strerror(errno));
	r = io_uring_queue_init(64, &ring, 0);
	if (r < 0)
		fatal("agent: io_uring_queue_init: %s", strerror(-r));

	for (;;) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 50 * 1000000 };
		unsigned exited = 0;

		if (!read_armed) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			io_uring_prep_read(sqe, sfd, &si, sizeof(si), 0);
			io_uring_sqe_set_data64(sqe, 1);
			read_armed = true;
		}
		r = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
		while (io_uring_peek_cqe(&ring, &cqe) == 0) {
			bool is_signal = cqe->user_data == 1 && cqe->res == (int)sizeof(si);

			if (cqe->user_data == 1)
				read_armed = false;
			io_uring_cqe_seen(&ring, cqe);
			if (!is_signal)
				continue;
			if (si.ssi_signo == SIGHUP) {
				log_info("SIGHUP: reloading %s", config_path);
				agent_reload(&ring, config_path, shards, nshards);
			} else if (!stopping) {
				log_info("%s: stopping: no new connections; finishing sessions in progress",
					 strsignal((int)si.ssi_signo));
				stopping = true;
				for (unsigned i = 0; i < nshards; i++)
					shard_request_stop(&ring, &shards[i]);
			}
		}
		agent_drain_events(shards, nshards);
		for (unsigned i = 0; i < nshards; i++)
			exited += atomic_load(&shards[i].exited);
		if (exited == nshards)
			break;
	}
	for (unsigned i = 0; i < nshards; i++) {
		shard_join(&shards[i]);
		shard_event_drain(&shards[i], agent_write_event, NULL, SIZE_MAX);
	}
	io_uring_queue_exit(&ring);
	close(sfd);
	return 0;
}
