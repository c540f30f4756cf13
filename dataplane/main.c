/*
 * main.c - sluice-node, the data plane daemon: loads the configuration, opens the listeners,
 * starts one shard per core and wires the layers into each shard's loop, then becomes the agent.
 *
 *   sluice-node --config FILE [--check-config] [--version]
 *
 * Exit status: 0 after a clean SIGTERM/SIGINT stop (every session finished or told 421, the spool
 * flushed), 1 on a start-up failure, 2 on a bad command line or configuration.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "base/log.h"
#include "delivery/delivery.h"
#include "filter/filter.h"
#include "net/iplimit.h"
#include "net/listener.h"
#include "shard/shard.h"
#include "smtp/smtp_session.h"
#include "spool/spool.h"
#include "sluice_build.h"

static void node_spool_cqe(struct shard *sh, const struct io_uring_cqe *cqe)
{
	spool_handle_cqe(sh->spool, cqe);
}

static int node_shard_start(struct shard *sh)
{
	const struct node_config *c = sh->conf;
	struct spool_conf sc = {
		.dir = c->spool_dir,
		.shard_id = sh->id,
		.segment_size = c->spool.segment_size,
		.spill_bytes = c->spool.spill_size,
		.min_free_bytes = c->spool.min_free,
		.commit_delay_us = c->spool.commit_delay_us,
	};
	int r;

	pool_init(&sh->sessions, sizeof(struct smtp_session), c->limits.max_sessions);
	r = spool_open(&sh->spool, &sc, &sh->ring, SHARD_OP_SPOOL);
	if (r < 0)
		return r;
	if (c->filter_db != NULL) {
		r = filter_shard_new(&sh->filter, c->filter_db);
		if (r < 0) {
			log_error(r, "shard %u: cannot set up the content filter", sh->id);
			return r;
		}
	}
	r = delivery_shard_start(sh);
	if (r < 0) {
		log_error(r, "shard %u: cannot start delivery", sh->id);
		return r;
	}
	listener_arm_all(sh);
	return 0;
}

static void node_shard_turn(struct shard *sh)
{
	delivery_shard_turn(sh);
	spool_set_siblings(sh->spool, sh->bodies_in_flight > 0);
	spool_flush(sh->spool);
}

static void node_shard_stop(struct shard *sh)
{
	listener_close_all(sh);
	smtp_sessions_drain(sh);
	delivery_shard_stop(sh);
}

static bool node_shard_idle(struct shard *sh)
{
	return smtp_sessions_count(sh) == 0 && delivery_shard_idle(sh) && !spool_busy(sh->spool);
}

static void node_shard_abort(struct shard *sh)
{
	smtp_sessions_abort_all(sh);
	delivery_shard_abort(sh);
}

static void node_shard_finish(struct shard *sh)
{
	struct spool_stats st;

	spool_get_stats(sh->spool, &st);
	log_info("shard %u: %llu connections, %llu messages accepted (%llu bytes) in %llu syncs "
		 "(%.1f ms each on average, largest batch %llu)", sh->id,
		 (unsigned long long)sh->ctr.conn_accepted,
		 (unsigned long long)st.messages_committed, (unsigned long long)st.bytes_committed,
		 (unsigned long long)st.syncs,
		 st.syncs ? (double)st.sync_ns_total / (double)st.syncs / 1e6 : 0.0,
		 (unsigned long long)st.batches_max);
	delivery_shard_finish(sh);
	spool_close(&sh->spool);
	if (sh->filter != NULL)
		filter_shard_free(&sh->filter);
}

/* A reload: a new rule set is swapped in for new messages (those in flight finish with the one
 * they began with). The file was loaded and checked by the agent, so a broken rule set never
 * gets here. XXX: listeners are fixed at start. */
static void node_shard_config(struct shard *sh, struct node_config *old)
{
	struct filter_db *db = sh->conf->filter_db;
	int r;

	if (db == NULL || db == old->filter_db)
		return;
	if (sh->filter == NULL)
		r = filter_shard_new(&sh->filter, db);
	else
		r = filter_shard_set_db(sh->filter, db);
	if (r < 0)
		log_warn(r, "shard %u: the new rule set could not be set up; keeping the old one", sh->id);
}

static void node_shard_queued(struct shard *sh, uint64_t qid, const struct spool_envelope *env,
			      uint64_t size)
{
	delivery_enqueue(sh, qid, env, size);
}

static const struct shard_hooks node_hooks = {
	.start = node_shard_start,
	.turn = node_shard_turn,
	.stop = node_shard_stop,
	.idle = node_shard_idle,
	.abort = node_shard_abort,
	.finish = node_shard_finish,
	.config = node_shard_config,
	.queued = node_shard_queued,
	.over_quota = delivery_domain_over_quota,
};

static void usage(FILE *f)
{
	fprintf(f, "usage: sluice-node --config FILE [--check-config]\n"
		   "       sluice-node --version\n");
}

static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check-config", no_argument, NULL, 'k' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL;
	bool check = false;
	struct node_config *conf;
	struct shard *shards;
	unsigned nshards, ncpu;
	char err[1024];
	int o, r;

	log_set_prefix("sluice-node");
	while ((o = getopt_long(argc, argv, "c:kVh", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 'k': check = true; break;
		case 'V': printf("sluice-node %s\n", SLUICE_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (path == NULL || optind != argc) {
		usage(stderr);
		return 2;
	}
	if (node_config_load(path, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice-node: %s\n", err);
		return 2;
	}
	if (check) {
		printf("%s: ok: %u listen addresses, %u domains%s\n", path, conf->nlisten,
		       conf->ndomains, conf->filter_db ? ", content filter on" : "");
		node_config_unref(&conf);
		return 0;
	}
	log_set_level((enum log_level)conf->log_level);
	raise_nofile();
	agent_block_signals();
	if (mkdir(conf->spool_dir, 0750) < 0 && errno != EEXIST)
		fatal("spool_dir %s: %s", conf->spool_dir, strerror(errno));
	if (iplimit_init(19) < 0)
		fatal("out of memory");

	ncpu = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
	nshards = conf->shards ? conf->shards : ncpu;
	shards = calloc(nshards, sizeof(*shards));
	if (shards == NULL)
		fatal("out of memory");

	listener_setup(smtp_session_start);
	smtp_session_setup();
	delivery_setup();
	shard_set_handler(SHARD_OP_SPOOL, node_spool_cqe);
	shard_set_hooks(&node_hooks);

	for (unsigned i = 0; i < nshards; i++) {
		int fds[64];

		for (unsigned l = 0; l < conf->nlisten; l++) {
			fds[l] = listener_open(&conf->listen[l].addr, conf->listen[l].addrlen, 4096);
			if (fds[l] < 0)
				fatal("[listen %s] %s: %s", conf->listen[l].name, conf->listen[l].address,
				      strerror(-fds[l]));
		}
		r = shard_start(&shards[i], i, nshards <= ncpu ? (int)i : -1, conf, fds);
		if (r < 0)
			fatal("shard %u did not start: %s", i, strerror(-r));
	}
	for (unsigned l = 0; l < conf->nlisten; l++)
		log_info("listening on %s (%s MX)", conf->listen[l].address,
			 listen_role_name(conf->listen[l].role));
	log_info("ready: %u shards, %u domains, spool %s%s", nshards, conf->ndomains,
		 conf->spool_dir, conf->filter_db ? ", content filter on" : "");
	node_config_unref(&conf);

	r = agent_run(path, shards, nshards);
	log_info("stopped");
	free(shards);
	return r;
}
