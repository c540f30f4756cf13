/*
 * main.c - sluice-node, the data plane daemon: loads the configuration, takes the spool's lock,
 * opens the listeners, gives up root, starts one shard per core and wires the layers into each
 * shard's loop, then becomes the agent.
 *
 *   sluice-node --config FILE [--check-config]
 *   sluice-node --help | --version
 *
 * Start-up, in this order (each step needs the one before; see README "Running a node"):
 *   1. the file is loaded and checked (exit 2 if bad);
 *   2. as root without [node] user, and without run_as_root = yes, the node refuses (exit 2);
 *   3. spool_dir is created (and its parents) and locked (spool_dir/sluice-node.lock, holding
 *      our pid): a second node on the same spool exits 1 naming the pid that holds it;
 *   4. each listen address is probed: one another process listens on is refused (exit 1);
 *   5. the SO_REUSEPORT listeners are bound (port 25 needs root or CAP_NET_BIND_SERVICE);
 *   6. the pid file is written; as root with a user: the spool is given to user:group, then
 *      setgroups/setgid/setuid and a check that root cannot come back; not as root: every
 *      capability is dropped (systemd's AmbientCapabilities);
 *   7. the shards start (spool recovery runs as the unprivileged user).
 * --check-config does step 1, then checks that spool_dir can be created or written (without
 * changing it, and without the lock: a running node is not disturbed), as root with a user that
 * the user can reach it, and says whether a node holds its lock.
 *
 * Exit status: 0 after a clean SIGTERM/SIGINT stop (every session finished or told 421, the spool
 * flushed), 1 on a start-up failure, 2 on a bad command line or configuration.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/agent_join.h"
#include "agent/agent_sync.h"
#include "base/log.h"
#include "base/pidlock.h"
#include "base/runas.h"
#include "conf/node_config.h"
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
		.events_durable = &sh->events_durable,
		/* Each shard holds its share of a domain's spool_quota (spool_quota.c). */
		.quota_shares = c->shards ? c->shards : (unsigned)sysconf(_SC_NPROCESSORS_ONLN),
	};
	int r;

	pool_init(&sh->sessions, sizeof(struct smtp_session), c->snap.shard.max_sessions);
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

/* What a reload cannot change: said once (by shard 0) so an operator is not misled. */
static void node_warn_fixed(const struct node_config *old, const struct node_config *c)
{
	if (strcmp(old->spool_dir, c->spool_dir) != 0)
		log_warn(0, "reload: [node] spool_dir changed; it takes effect at a restart");
	if (strcmp(old->ops.user, c->ops.user) != 0 || strcmp(old->ops.group, c->ops.group) != 0 ||
	    strcmp(old->ops.pid_file, c->ops.pid_file) != 0)
		log_warn(0, "reload: [node] user, group or pid_file changed; they take effect at a "
			 "restart");
	if (strcmp(old->cluster.dir, c->cluster.dir) != 0 ||
	    strcmp(old->cluster.nats_server, c->cluster.nats_server) != 0 ||
	    old->cluster.nats_port != c->cluster.nats_port ||
	    old->cluster.nats_monitor_port != c->cluster.nats_monitor_port)
		log_warn(0, "reload: [cluster] changed; it takes effect at a restart");
}

/* A reload: a new rule set is swapped in for new messages (those in flight finish with the one
 * they began with). The file was loaded and checked by the agent, so a broken rule set never
 * gets here. The listeners follow in the agent's message (listener_reconcile). */
static void node_shard_config(struct shard *sh, struct node_config *old)
{
	struct filter_db *db = sh->conf->filter_db;
	const struct node_config *c = sh->conf;
	int r;

	if (sh->id == 0)
		node_warn_fixed(old, c);

	if (db == NULL || db == old->filter_db)
		return;
	if (sh->filter == NULL)
		r = filter_shard_new(&sh->filter, db);
	else
		r = filter_shard_set_db(sh->filter, db);
	if (r < 0)
		log_warn(r, "shard %u: the new rule set could not be set up; keeping the old one", sh->id);
}

static const struct shard_hooks node_hooks = {
	.start = node_shard_start,
	.turn = node_shard_turn,
	.stop = node_shard_stop,
	.idle = node_shard_idle,
	.abort = node_shard_abort,
	.finish = node_shard_finish,
	.config = node_shard_config,
};

static void usage(FILE *f)
{
	fprintf(f, "usage: sluice-node --config FILE [--check-config]\n"
		   "       sluice-node --join TOKEN --control HOST:PORT [--cluster-dir DIR]\n"
		   "       sluice-node --help | --version\n");
}

static void help(void)
{
	usage(stdout);
	printf("\n"
	       "The Sluice data plane: accepts SMTP for the configured domains, filters it, spools it\n"
	       "and relays it to each domain's route. Runs in the foreground, logs to stderr.\n"
	       "\n"
	       "  -c, --config FILE    the configuration (INI); see sluice-node(8) and the README\n"
	       "  -k, --check-config   check FILE and that spool_dir can be created or written, then\n"
	       "                       exit (0: good, 2: bad); never disturbs a running node\n"
	       "  --join TOKEN         join the cluster: the token `sluicectl node add` printed;\n"
	       "                       --control HOST:PORT is sluice-control's API, --cluster-dir\n"
	       "                       where the certificate goes (default " AGENT_JOIN_DIR_DEFAULT ")\n"
	       "  -h, --help           this text\n"
	       "  -V, --version        the version\n"
	       "\n"
	       "Started as root, the node binds its listeners, gives spool_dir to [node] user and\n"
	       "switches to that user; without [node] user it refuses to run as root unless\n"
	       "[node] run_as_root = yes. One node per spool: a second one exits naming the pid that\n"
	       "holds spool_dir/sluice-node.lock.\n"
	       "\n"
	       "Signals: SIGTERM/SIGINT stop gracefully, SIGHUP reloads FILE.\n"
	       "Exit status: 0 after a clean stop, 1 when start-up fails, 2 on a bad command line\n"
	       "or configuration.\n");
}

/* --check-config: can spool_dir be created (the nearest existing parent takes a new entry) or
 * written (it takes a file)? O_TMPFILE makes a file no one can see and that vanishes on close, so
 * the spool of a running node is not changed. Run as root with [node] user, the node gives the
 * directory to that user at start, so only root's view is checked. Returns 0 or -errno with
 * why. */
static int check_spool_dir(const char *dir, char *why, size_t whylen)
{
	char path[PATH_MAX];
	struct stat st;
	bool exists;
	int fd;

	snprintf(path, sizeof(path), "%s", dir);
	exists = stat(path, &st) == 0;
	if (exists && !S_ISDIR(st.st_mode)) {
		snprintf(why, whylen, "%s is not a directory", dir);
		return -ENOTDIR;
	}
	while (!exists) {
		char *slash;

		if (errno != ENOENT && errno != ENOTDIR) {
			snprintf(why, whylen, "%s: %s", path, strerror(errno));
			return -errno;
		}
		slash = strrchr(path, '/');
		if (slash == NULL)
			snprintf(path, sizeof(path), ".");
		else if (slash == path)
			path[1] = '\0';
		else
			*slash = '\0';
		if (stat(path, &st) == 0) {
			if (!S_ISDIR(st.st_mode)) {
				snprintf(why, whylen, "cannot be created: %s is not a directory", path);
				return -ENOTDIR;
			}
			break;
		}
	}
	fd = open(path, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL) {
		/* A file system without O_TMPFILE: ask, as this user. */
		if (access(path, W_OK | X_OK) == 0)
			return 0;
	}
	if (exists)
		snprintf(why, whylen, "cannot be written: %s", strerror(errno));
	else
		snprintf(why, whylen, "does not exist and cannot be created in %s: %s", path,
			 strerror(errno));
	return -errno;
}

/* --check-config as root with [node] user: the node will own spool_dir, but every directory
 * above it must let that user through. A child switches to the user and tries. */
static int check_user_reach(const struct node_config *conf, char *why, size_t whylen)
{
	char parent[sizeof(conf->spool_dir)], *slash;
	int status;
	pid_t pid;

	snprintf(parent, sizeof(parent), "%s", conf->spool_dir);
	slash = strrchr(parent, '/');
	if (slash == NULL)
		snprintf(parent, sizeof(parent), ".");
	else
		slash[slash == parent] = '\0';
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return 0;   /* cannot tell */
	if (pid == 0) {
		char w[256];

		if (runas_drop(conf->ops.uid, conf->ops.gid, w, sizeof(w)) < 0)
			_exit(3);
		_exit(access(parent, X_OK) == 0 ? 0 : errno == ENOENT ? 0 : 1);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 1) {
		snprintf(why, whylen, "%s is out of reach of user %s: %s is closed to it",
			 conf->spool_dir, conf->ops.user, parent);
		return -EACCES;
	}
	return 0;
}

static int check_config(const char *path, const struct node_config *conf)
{
	char why[PATH_MAX + 128], lock[sizeof(conf->spool_dir) + 32];
	pid_t holder;

	if (check_spool_dir(conf->spool_dir, why, sizeof(why)) < 0) {
		fprintf(stderr, "sluice-node: %s:%d: [node] spool_dir: %s %s\n", path,
			conf->ops.spool_dir_line, conf->spool_dir, why);
		return 2;
	}
	if (geteuid() == 0 && conf->ops.user[0] != '\0' &&
	    check_user_reach(conf, why, sizeof(why)) < 0) {
		fprintf(stderr, "sluice-node: %s:%d: [node] spool_dir: %s\n", path,
			conf->ops.spool_dir_line, why);
		return 2;
	}
	if (geteuid() == 0 && conf->ops.user[0] == '\0' && !conf->ops.run_as_root)
		fprintf(stderr, "sluice-node: %s: warning: started as root the node would refuse to run: "
			"set [node] user (or run_as_root = yes)\n", path);
	printf("%s: ok: %u listen addresses, %u domains%s\n", path, conf->nlisten,
	       conf->ndomains, conf->filter_db ? ", content filter on" : "");
	snprintf(lock, sizeof(lock), "%s/sluice-node.lock", conf->spool_dir);
	holder = pidlock_holder(lock);
	if (holder > 0)
		printf("%s: a node is running on this spool (pid %ld)\n", path, (long)holder);
	else if (holder == -ESRCH)
		printf("%s: a node is running on this spool\n", path);
	return 0;
}

/* Step 2: who we are and who we will be. */
static void node_check_identity(const struct node_config *conf)
{
	const struct node_ops *o = &conf->ops;

	if (geteuid() == 0) {
		if (o->user[0] == '\0' && !o->run_as_root) {
			log_error(0, "%s: refusing to run as root: set [node] user = NAME (an unprivileged "
				  "user that will own %s), or run_as_root = yes to insist", conf->path,
				  conf->spool_dir);
			exit(2);
		}
		return;
	}
	if (o->user[0] != '\0' && (o->uid != geteuid() || o->gid != getegid())) {
		log_error(0, "%s: [node] user = %s (uid %u gid %u), but started as uid %u gid %u without "
			  "root: cannot switch; start as root or as that user", conf->path, o->user,
			  (unsigned)o->uid, (unsigned)o->gid, (unsigned)geteuid(), (unsigned)getegid());
		exit(2);
	}
}

/* mkdir -p: the parents 0755, dir itself 0750. Returns 0 or -1 with errno set. */
static int node_mkdirs(const char *dir)
{
	char p[PATH_MAX];
	size_t n = strlen(dir);

	if (n >= sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p, dir, n + 1);
	for (char *s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -1;
		*s = '/';
	}
	return mkdir(p, 0750) < 0 && errno != EEXIST ? -1 : 0;
}

/* Steps 3 and 6 need the lock held for the life of the process: the descriptor stays open. */
static int node_lock_spool(const struct node_config *conf)
{
	char lock[sizeof(conf->spool_dir) + 32];
	pid_t holder;
	int fd;

	if (node_mkdirs(conf->spool_dir) < 0)
		fatal("%s:%d: [node] spool_dir: %s: %s", conf->path, conf->ops.spool_dir_line,
		      conf->spool_dir, strerror(errno));
	snprintf(lock, sizeof(lock), "%s/sluice-node.lock", conf->spool_dir);
	fd = pidlock_acquire(lock, &holder);
	if (fd == -EWOULDBLOCK) {
		if (holder > 0)
			fatal("spool_dir %s is in use by another sluice-node (pid %ld holds %s): one node "
			      "per spool", conf->spool_dir, (long)holder, lock);
		fatal("spool_dir %s is in use by another sluice-node (%s is locked): one node per "
		      "spool", conf->spool_dir, lock);
	}
	if (fd < 0)
		fatal("cannot lock %s: %s", lock, strerror(-fd));
	return fd;
}

/* Step 4. A node killed a moment ago may still hold its addresses: io_uring releases the files
 * of a dead process's ring asynchronously, after the process is gone (and after its spool lock).
 * So an address in use is tried again for a while before it is refused. */
static void node_probe_listeners(const struct node_config *conf)
{
	const int wait_ms = 3000, step_ms = 50;

	for (unsigned l = 0; l < conf->nlisten; l++) {
		const struct listen_conf *lc = &conf->listen[l];
		int r;

		for (int waited = 0;; waited += step_ms) {
			r = listener_probe(&lc->addr, lc->addrlen);
			if (r != -EADDRINUSE || waited >= wait_ms)
				break;
			usleep(step_ms * 1000);
		}
		if (r == -EADDRINUSE)
			fatal("[listen %s] address %s: another process listens there (a second node, or "
			      "another MTA: see ss -ltnp)", lc->name, lc->address);
		if (r < 0)
			fatal("[listen %s] address %s: %s", lc->name, lc->address, strerror(-r));
	}
}

/* Step 6. Returns with no privilege left, or exits. */
static void node_drop_privileges(const char *path, const struct node_config *conf)
{
	const struct node_ops *o = &conf->ops;
	char why[PATH_MAX + 128];
	int r;

	/* First the pid file: in spool_dir (the default) it is given to the user with the rest, so
	 * the node can remove it when it stops. */
	r = pidfile_write(o->pid_file);
	if (r == -ENOSPC || r == -EDQUOT)
		/* A full spool disk must not stop the node (it delivers what it holds); the spool
		 * lock, taken already, is what keeps a second node out. */
		log_warn(r, "[node] pid_file %s: not written; starting without it", o->pid_file);
	else if (r < 0)
		fatal("[node] pid_file %s: %s", o->pid_file, strerror(-r));
	if (geteuid() == 0 && o->user[0] != '\0') {
		r = runas_chown_tree(conf->spool_dir, o->uid, o->gid, why, sizeof(why));
		if (r < 0)
			fatal("cannot give spool_dir to %s: %s", o->user, why);
		if (r > 0)
			log_info("spool_dir %s: %d entries given to %s", conf->spool_dir, r, o->user);
	}
	/* CAP_NET_BIND_SERVICE stays permitted (never effective but around a bind) in this thread
	 * alone, the agent's, for the listeners a reload adds; the shards drop it as they start. */
	if (geteuid() == 0 && o->user[0] != '\0') {
		if (runas_drop_keep_bind(o->uid, o->gid, 1, why, sizeof(why)) < 0)
			fatal("cannot switch to user %s: %s", o->user, why);
		log_info("running as %s (uid %u, gid %u)", o->user, (unsigned)o->uid, (unsigned)o->gid);
	} else if (geteuid() != 0 && runas_has_caps()) {
		r = runas_keep_bind_only();
		if (r < 0)
			fatal("cannot drop capabilities: %s", strerror(-r));
	} else if (geteuid() == 0) {
		log_warn(0, "running as root ([node] run_as_root = yes)");
	}
	if (geteuid() != 0 && access(conf->spool_dir, R_OK | W_OK | X_OK) < 0)
		fatal("spool_dir %s is out of reach of uid %u: %s (a parent directory closed to it?)",
		      conf->spool_dir, (unsigned)geteuid(), strerror(errno));
	/* A reload (SIGHUP) reads these again as this user: say now what it could not read. */
	if (geteuid() != 0) {
		const char *const files[] = { path, conf->tls.cert, conf->tls.key, conf->rules_dir };

		for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
			if (files[i][0] != '\0' && access(files[i], i == 3 ? R_OK | X_OK : R_OK) < 0)
				log_warn(-errno, "%s is not readable by uid %u: a reload will fail", files[i],
					 (unsigned)geteuid());
	}
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
		{ "join", required_argument, NULL, 'J' },
		{ "control", required_argument, NULL, 'C' },
		{ "cluster-dir", required_argument, NULL, 'D' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = NULL, *join = NULL, *control = NULL, *cluster_dir = AGENT_JOIN_DIR_DEFAULT;
	bool check = false;
	struct node_config *conf;
	struct shard *shards;
	unsigned nshards, ncpu;
	char pid_file[sizeof(conf->ops.pid_file)];
	int *fds;
	char err[1024];
	int o, r;

	log_set_prefix("sluice-node");
	while ((o = getopt_long(argc, argv, "c:kVh", opts, NULL)) != -1) {
		switch (o) {
		case 'c': path = optarg; break;
		case 'k': check = true; break;
		case 'V': printf("sluice-node %s\n", SLUICE_VERSION); return 0;
		case 'h': help(); return 0;
		case 'J': join = optarg; break;
		case 'C': control = optarg; break;
		case 'D': cluster_dir = optarg; break;
		default: usage(stderr); return 2;
		}
	}
	if (join != NULL && control != NULL && path == NULL && !check && optind == argc)
		return agent_join(join, control, cluster_dir);
	if (path == NULL || optind != argc || join != NULL || control != NULL) {
		usage(stderr);
		return 2;
	}
	if (node_config_load(path, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "sluice-node: %s\n", err);
		return 2;
	}
	if (check) {
		/* In a cluster a reload loads the file with the cluster's part: check that too. */
		if (conf->cluster.on && agent_sync_boot(path, &conf) == -EINVAL) {
			fprintf(stderr, "sluice-node: %s: the cluster's configuration in %s/%s does not "
				"load after this file (see above)\n", path, conf->spool_dir,
				AGENT_SYNC_FILE);
			node_config_unref(&conf);
			return 2;
		}
		r = check_config(path, conf);
		node_config_unref(&conf);
		return r;
	}
	agent_log_apply(conf);   /* level and output (stderr or syslog) for the start-up lines too */
	node_check_identity(conf);
	raise_nofile();
	agent_block_signals();
	(void)node_lock_spool(conf);
	/* A cluster node starts with the version it last applied (its listeners included), even
	 * when its nats-server cannot start or the hub is away. */
	(void)agent_sync_boot(path, &conf);
	node_probe_listeners(conf);
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

	/* Every listener is bound before privileges go; the shards start after. */
	fds = calloc((size_t)nshards * conf->nlisten + 1, sizeof(*fds));
	if (fds == NULL)
		fatal("out of memory");
	for (unsigned i = 0; i < nshards; i++)
		for (unsigned l = 0; l < conf->nlisten; l++) {
			int fd = listener_open(&conf->listen[l].addr, conf->listen[l].addrlen, 4096);

			if (fd < 0)
				fatal("[listen %s] %s: %s", conf->listen[l].name, conf->listen[l].address,
				      strerror(-fd));
			fds[i * conf->nlisten + l] = fd;
		}
	node_drop_privileges(path, conf);
	snprintf(pid_file, sizeof(pid_file), "%s", conf->ops.pid_file);
	for (unsigned i = 0; i < nshards; i++) {
		r = shard_start(&shards[i], i, nshards <= ncpu ? (int)i : -1, conf,
				&fds[i * conf->nlisten], conf->nlisten);
		if (r < 0)
			fatal("shard %u did not start: %s", i, strerror(-r));
	}
	free(fds);
	for (unsigned l = 0; l < conf->nlisten; l++)
		log_info("listening on %s (%s MX)", conf->listen[l].address,
			 listen_role_name(conf->listen[l].role));
	log_info("ready: %u shards, %u domains, spool %s%s", nshards, conf->ndomains,
		 conf->spool_dir, conf->filter_db ? ", content filter on" : "");
	node_config_unref(&conf);

	r = agent_run(path, shards, nshards);
	pidfile_remove(pid_file);
	log_info("stopped");
	free(shards);
	return r;
}
