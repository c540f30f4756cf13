/*
 * agent.c - see agent.h.
 *
 * The loop wakes on a signal (signalfd read on the agent's own ring), on a connection to the
 * control socket, or every 50 ms to drain the shards' event rings. Reload builds a new snapshot
 * off the mail path; a file that does not load is refused with its line and the shards keep the
 * old one.
 *
 * The control socket, <spool_dir>/control.sock (mode 0600: root's, or the node user's), takes one
 * request line and gives one reply line (sluice-queue speaks it):
 *     flush|hold|release|delete|bounce all|QID|domain D   ->   "ok N" | "error REASON"
 *     counters   ->   "ok N" and N lines: the live counters (agent_stats.c)
 * A request for a QID goes to the shard that owns it (the qid's top 8 bits), others to every
 * shard, as a struct delivery_ctl_msg: only a shard writes its journal. The reply waits until
 * every shard has answered (the request's counters are atomics the shards update).
 * XXX: the request line is read with a 1 s timeout on the agent's thread; a client that connects
 * and says nothing stalls event draining that long.
 */
#include "agent/agent.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/agent_events.h"
#include "agent/agent_metrics.h"
#include "agent/agent_stats.h"
#include "agent/agent_sync.h"
#include "base/log.h"
#include "base/runas.h"
#include "conf/node_config.h"
#include "delivery/delivery.h"
#include "net/listener.h"
#include "shard/shard_event.h"
#include "spool/spool.h"

#define AGENT_UD_SIGNAL  1
#define AGENT_UD_CONTROL 2
#define AGENT_UD_SYNC    3

/* A control request waiting for the shards' answers: an operator command, or "counters"
 * (depth set: the queue per domain each shard computes). */
struct agent_ctl {
	struct agent_ctl          *next;
	int                        fd;
	struct delivery_ctl_req    req;
	struct delivery_depth_req *depth;
};

struct agent_reload_msg {
	struct shard_msg    base;
	struct node_config *conf;      /* one reference, the message's */
	int                *fds;       /* per listen entry: this shard's new socket, or -1 */
};

static void agent_reload_apply(struct shard *sh, struct shard_msg *m)
{
	struct agent_reload_msg *rm = (struct agent_reload_msg *)m;

	shard_set_config(sh, rm->conf);
	if (listener_reconcile(sh, sh->conf, rm->fds) < 0)
		log_error(-ENOMEM, "shard %u: reload: the listeners stay as they were", sh->id);
	node_config_unref(&rm->conf);
	free(rm->fds);
	free(rm);
}

/* The running configuration, as the agent last handed it to the shards. */
static struct node_config *agent_running;

/* The sockets a reload needs that the running configuration has not: per shard, per listen
 * entry of conf (fds[shard * nlisten + i], -1 where the address is open already). Binding a
 * port under 1024 takes CAP_NET_BIND_SERVICE, which this thread keeps permitted for it
 * (runas.h): raised around the binds only. Returns 0, or -errno with the listener in err (and
 * nothing left open). */
static int agent_bind_new(const struct node_config *conf, unsigned nshards, int **fds_r, char *err,
			  size_t errlen)
{
	size_t total = (size_t)nshards * conf->nlisten;
	int *fds = malloc((total ? total : 1) * sizeof(*fds)), r = 0;
	bool raised = false;

	*fds_r = NULL;
	if (fds == NULL)
		return -ENOMEM;
	for (size_t k = 0; k < total; k++)
		fds[k] = -1;
	for (unsigned i = 0; r == 0 && i < conf->nlisten; i++) {
		const struct listen_conf *lc = &conf->listen[i];
		bool open_already = false;

		for (unsigned j = 0; agent_running && j < agent_running->nlisten && !open_already; j++)
			open_already = listen_addr_same(&agent_running->listen[j].addr, &lc->addr);
		if (open_already)
			continue;
		if (!raised && geteuid() != 0)
			raised = runas_bind_cap(1) == 0;   /* without it, ports >= 1024 still bind */
		r = listener_probe(&lc->addr, lc->addrlen);
		if (r == -EADDRINUSE) {
			snprintf(err, errlen, "[listen %s] address %s: another process listens there",
				 lc->name, lc->address);
			break;
		}
		for (unsigned sh = 0; r == 0 && sh < nshards; sh++) {
			int fd = listener_open(&lc->addr, lc->addrlen, 4096);

			if (fd < 0)
				r = fd;
			else
				fds[(size_t)sh * conf->nlisten + i] = fd;
		}
		if (r < 0)
			snprintf(err, errlen, "[listen %s] address %s: %s", lc->name, lc->address,
				 strerror(-r));
	}
	if (raised)
		(void)runas_bind_cap(0);
	if (r < 0) {
		for (size_t k = 0; k < total; k++)
			if (fds[k] >= 0)
				close(fds[k]);
		free(fds);
		return r;
	}
	*fds_r = fds;
	return 0;
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

/*
 * The shards' events go to the log in one write(2) per drain, not one per line: at thousands of
 * messages a second a syscall per line was a tenth of the node's CPU per message. Lines keep the
 * logger's format, with the time the shard stamped on the event.
 */
struct agent_logbuf {
	char     buf[256 * 1024];
	size_t   len;
	uint64_t sec;          /* the second whose prefix is cached */
	char     prefix[32];   /* "2026-11-25T08:12:41" */
};

static struct agent_logbuf agent_log;

static void agent_log_flush(void)
{
	size_t off = 0;

	while (off < agent_log.len) {
		ssize_t n = write(STDERR_FILENO, agent_log.buf + off, agent_log.len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;   /* the log is gone; events are not worth blocking the agent for */
		off += (size_t)n;
	}
	agent_log.len = 0;
}

/* arg: the shard the event came from, whose tag the line carries (it happened there). */
static void agent_write_event(void *arg, const struct shard_event *ev)
{
	const struct shard *sh = arg;
	uint64_t sec = ev->wall_ms / 1000;
	char tag[16];
	int n;

	snprintf(tag, sizeof(tag), "shard %u", sh->id);
	/* syslog: one datagram per event (the receiver stamps the time); stderr when it is gone. */
	if (log_output_is_syslog() && log_syslog_line(LOG_INFO, tag, ev->text, ev->len) != -ENOTCONN)
		return;
	if (sizeof(agent_log.buf) - agent_log.len < SHARD_EVENT_MAX + 128)
		agent_log_flush();
	if (sec != agent_log.sec || agent_log.prefix[0] == '\0') {
		time_t t = (time_t)sec;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(agent_log.prefix, sizeof(agent_log.prefix), "%Y-%m-%dT%H:%M:%S", &tm);
		agent_log.sec = sec;
	}
	n = snprintf(agent_log.buf + agent_log.len, sizeof(agent_log.buf) - agent_log.len,
		     "%s.%03uZ sluice-node[%s] info: %.*s\n", agent_log.prefix,
		     (unsigned)(ev->wall_ms % 1000), tag, (int)ev->len, ev->text);
	if (n > 0)
		agent_log.len += (size_t)n < sizeof(agent_log.buf) - agent_log.len ?
				 (size_t)n : sizeof(agent_log.buf) - agent_log.len - 1;
}

static void agent_event_line(const struct shard *sh, const struct shard_event *ev)
{
	agent_write_event((void *)sh, ev);
}

/* The refusal lines from the rings, then the message events from the event logs (their sinks'
 * cursors are saved once the lines are written). */
static void agent_drain_events(struct agent_events *ae, struct shard *shards, unsigned n,
			       bool final)
{
	for (unsigned i = 0; i < n; i++)
		if (!atomic_load(&shards[i].exited) || shards[i].events.slots != NULL)
			shard_event_drain(&shards[i], agent_write_event, &shards[i],
					  final ? SIZE_MAX : 4096);
	if (ae)
		agent_events_drain(ae, shards, n, final);
	agent_log_flush();
	if (ae)
		agent_events_commit(ae);
}

void agent_log_apply(const struct node_config *c)
{
	static bool warned;
	int r;

	log_set_level((enum log_level)c->log_level);
	r = log_set_output((enum log_output)c->log_output, c->log_facility, c->log_socket);
	if (r < 0 && !warned) {
		/* Once: the lines go to stderr meanwhile, and the logger keeps trying. */
		warned = true;
		log_warn(r, "log = syslog: cannot reach %s yet; writing to stderr until it answers",
			 c->log_socket[0] ? c->log_socket : "/dev/log");
	}
}

/* Hands conf to every shard: the one swap of a SIGHUP reload and of a cluster version. The
 * sockets of listeners it adds are bound first; if they cannot be, nothing changes. Takes no
 * reference of conf. Returns 0, or -errno (logged, naming what and the listener). */
static int agent_apply(struct io_uring *ring, struct node_config *conf, struct shard *shards,
		       unsigned n, const char *what)
{
	char err[1024];
	unsigned sent = 0;
	int *fds, r;

	r = agent_bind_new(conf, n, &fds, err, sizeof(err));
	if (r < 0) {
		log_error(0, "reload refused, keeping the running configuration: %s: %s", what, err);
		return r;
	}
	for (unsigned i = 0; i < n; i++) {
		struct agent_reload_msg *m = malloc(sizeof(*m));
		int *mine = malloc((conf->nlisten ? conf->nlisten : 1) * sizeof(*mine));

		if (m == NULL || mine == NULL) {
			free(m);
			free(mine);
			for (unsigned l = 0; l < conf->nlisten; l++)
				if (fds[(size_t)i * conf->nlisten + l] >= 0)
					close(fds[(size_t)i * conf->nlisten + l]);
			continue;
		}
		memcpy(mine, fds + (size_t)i * conf->nlisten, conf->nlisten * sizeof(*mine));
		m->base.fn = agent_reload_apply;
		m->conf = node_config_ref(conf);
		m->fds = mine;
		if (shard_post(ring, &shards[i], &m->base) < 0) {
			for (unsigned l = 0; l < conf->nlisten; l++)
				if (mine[l] >= 0)
					close(mine[l]);
			node_config_unref(&m->conf);
			free(mine);
			free(m);
			continue;
		}
		sent++;
	}
	free(fds);
	node_config_unref(&agent_running);
	agent_running = node_config_ref(conf);
	agent_log_apply(conf);   /* log_level, log and its facility follow a reload */
	log_info("reloaded %s (generation %llu) on %u of %u shards", what,
		 (unsigned long long)conf->generation, sent, n);
	return 0;
}

/* SIGHUP: the file again (in a cluster, with the cluster's part: agent_sync_reload). */
static void agent_reload(struct io_uring *ring, const char *path, struct agent_sync *as,
			 struct shard *shards, unsigned n)
{
	struct node_config *conf = NULL;
	char err[1024];
	int r;

	if (as != NULL) {
		conf = agent_sync_reload(as);
		if (conf == NULL)
			return;   /* logged, with the key of the bad line */
	} else if (node_config_load(path, &conf, err, sizeof(err)) < 0) {
		log_error(0, "reload refused, keeping the running configuration: %s", err);
		return;
	}
	if (agent_running != NULL && agent_running->cluster.on != conf->cluster.on)
		log_warn(0, "reload: [cluster] %s; it takes effect at a restart",
			 conf->cluster.on ? "added" : "removed");
	r = agent_apply(ring, conf, shards, n, as != NULL ? conf->path : path);
	if (as != NULL)
		agent_sync_applied(as, r == 0);
	node_config_unref(&conf);
}

/* The watcher committed a version: its snapshot, through the same swap. */
static void agent_sync_version(struct io_uring *ring, struct agent_sync *as, struct shard *shards,
			       unsigned n)
{
	struct node_config *conf = agent_sync_take(as);
	int r;

	if (conf == NULL)
		return;
	r = agent_apply(ring, conf, shards, n, conf->path);
	agent_sync_applied(as, r == 0);
	node_config_unref(&conf);
}

static int agent_ctl_open(const char *spool_dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control.sock", spool_dir) >=
	    sizeof(sa.sun_path)) {
		log_warn(-ENAMETOOLONG, "agent: no control socket: %s is too long", spool_dir);
		return -1;
	}
	unlink(sa.sun_path);   /* a stale one from a killed node */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(sa.sun_path, 0600) < 0 || listen(fd, 64) < 0) {
		log_warn(-errno, "agent: no control socket at %s", sa.sun_path);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

static void agent_ctl_reply(int fd, const char *fmt, unsigned long long n, const char *why)
{
	char line[300];
	int len = why ? snprintf(line, sizeof(line), "error %s\n", why)
		      : snprintf(line, sizeof(line), fmt, n);

	(void)!write(fd, line, (size_t)len);
	close(fd);
}

/* "counters": posts the queue-per-domain request to every shard; the reply waits for them. */
static void agent_ctl_counters_start(struct io_uring *ring, int fd, struct shard *shards, unsigned n,
				     struct agent_ctl **pending)
{
	struct agent_ctl *ac = calloc(1, sizeof(*ac));
	struct delivery_depth_req *dr = calloc(1, sizeof(*dr));

	if (ac == NULL || dr == NULL || (dr->parts = calloc(n ? n : 1, sizeof(*dr->parts))) == NULL) {
		free(ac);
		free(dr);
		agent_ctl_reply(fd, NULL, 0, "out of memory");
		return;
	}
	ac->fd = fd;
	ac->depth = dr;
	atomic_init(&ac->req.remaining, 0);
	atomic_init(&dr->remaining, n);
	for (unsigned i = 0; i < n; i++) {
		struct delivery_depth_msg *m = delivery_depth_msg_new(dr, i);

		if (m == NULL || shard_post(ring, &shards[i], &m->base) < 0) {
			free(m);
			atomic_fetch_sub(&dr->remaining, 1);
		}
	}
	ac->next = *pending;
	*pending = ac;
}

/* "ok N" and N lines of the live counters (agent_stats.c), then close. */
static void agent_ctl_counters_reply(struct agent_ctl *ac, const struct shard *shards, unsigned n)
{
	char *text = NULL, head[32];
	size_t len = 0, off = 0;
	unsigned lines = 0;
	struct timeval tv = { .tv_sec = 1 };

	if (agent_stats_text(shards, n, ac->depth->parts, &text, &len, &lines) < 0) {
		agent_ctl_reply(ac->fd, NULL, 0, "out of memory");
		return;
	}
	/* a client that stops reading is cut off by the send timeout, the agent not stuck */
	setsockopt(ac->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	snprintf(head, sizeof(head), "ok %u\n", lines);
	(void)!write(ac->fd, head, strlen(head));
	while (off < len) {
		ssize_t w = write(ac->fd, text + off, len - off);

		if (w <= 0)
			break;
		off += (size_t)w;
	}
	free(text);
	close(ac->fd);
}

static void agent_ctl_free(struct agent_ctl *ac, unsigned n)
{
	if (ac->depth != NULL) {
		for (unsigned i = 0; i < n; i++)
			free(ac->depth->parts[i].v);
		free(ac->depth->parts);
		free(ac->depth);
	}
	free(ac);
}

/* Reads one request and posts it; the reply goes out once every shard answered. */
static void agent_ctl_accept(struct io_uring *ring, int lfd, struct shard *shards, unsigned n,
			     bool stopping, struct agent_ctl **pending)
{
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) >= 0) {
		struct timeval tv = { .tv_sec = 1 };
		char line[512], verb[32] = "", arg1[300] = "", arg2[300] = "";
		size_t got = 0;
		ssize_t r;
		struct agent_ctl *ac;
		spool_qid qid = 0;
		const char *domain = NULL;
		int op;
		unsigned first = 0, last = n;

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		while (got < sizeof(line) - 1 && (r = read(fd, line + got, sizeof(line) - 1 - got)) > 0) {
			got += (size_t)r;
			if (memchr(line, '\n', got))
				break;
		}
		line[got] = '\0';
		line[strcspn(line, "\r\n")] = '\0';
		if (strcmp(line, "counters") == 0) {
			if (stopping)
				agent_ctl_reply(fd, NULL, 0, "the node is stopping");
			else
				agent_ctl_counters_start(ring, fd, shards, n, pending);
			continue;
		}
		if (sscanf(line, "%31s %299s %299s", verb, arg1, arg2) < 2 ||
		    (op = delivery_ctl_op_parse(verb)) < 0) {
			agent_ctl_reply(fd, NULL, 0, "bad request (want: OP all|QID|domain D)");
			continue;
		}
		if (stopping) {
			agent_ctl_reply(fd, NULL, 0, "the node is stopping");
			continue;
		}
		if (strcmp(arg1, "domain") == 0 && arg2[0])
			domain = arg2;
		else if (strcmp(arg1, "all") != 0) {
			if (spool_qid_parse(arg1, &qid) < 0 || (qid >> 56) >= n) {
				agent_ctl_reply(fd, NULL, 0, "no such queue id");
				continue;
			}
			first = (unsigned)(qid >> 56);
			last = first + 1;
		}
		ac = calloc(1, sizeof(*ac));
		if (ac == NULL) {
			agent_ctl_reply(fd, NULL, 0, "out of memory");
			continue;
		}
		ac->fd = fd;
		atomic_init(&ac->req.remaining, last - first);
		atomic_init(&ac->req.count, 0);
		for (unsigned i = first; i < last; i++) {
			struct delivery_ctl_msg *m = delivery_ctl_msg_new((enum delivery_ctl_op)op, qid,
									  domain, &ac->req);

			if (m == NULL || shard_post(ring, &shards[i], &m->base) < 0) {
				free(m);
				atomic_fetch_sub(&ac->req.remaining, 1);
			}
		}
		ac->next = *pending;
		*pending = ac;
	}
}

static void agent_ctl_finish(struct agent_ctl **pending, bool all, const struct shard *shards,
			     unsigned n)
{
	for (struct agent_ctl **pp = pending; *pp; ) {
		struct agent_ctl *ac = *pp;
		bool answered = atomic_load(&ac->req.remaining) == 0 &&
				(ac->depth == NULL || atomic_load(&ac->depth->remaining) == 0);

		if (!answered && !all) {
			pp = &ac->next;
			continue;
		}
		if (answered && ac->depth != NULL)
			agent_ctl_counters_reply(ac, shards, n);
		else if (answered)
			agent_ctl_reply(ac->fd, "ok %llu\n",
					(unsigned long long)atomic_load(&ac->req.count), NULL);
		else
			agent_ctl_reply(ac->fd, NULL, 0, "the node stopped");
		*pp = ac->next;
		if (answered)
			agent_ctl_free(ac, n);
		/* else: a shard may still touch req: leaked on purpose at exit (XXX) */
	}
}

int agent_run(const char *config_path, struct shard *shards, unsigned nshards)
{
	struct agent_ctl *pending = NULL;
	bool ctl_armed = false;
	int lfd = agent_ctl_open(shards[0].conf->spool_dir);
	struct io_uring ring;
	struct signalfd_siginfo si;
	sigset_t set;
	bool stopping = false, read_armed = false;
	struct agent_events *ae = NULL;
	struct agent_metrics *metrics = NULL;
	struct agent_sync *as = NULL;
	bool sync_armed = false;
	uint64_t sync_count;
	int sfd, r;

	log_set_thread_tag("agent");
	agent_log_apply(shards[0].conf);   /* main may have done it already: it is idempotent */
	/* what main started the shards with (only the agent's reloads change it later) */
	agent_running = node_config_ref(shards[0].conf);
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
	if (agent_events_open(&ae, shards, nshards, agent_event_line) < 0)
		fatal("agent: out of memory for the event sinks");
	(void)agent_metrics_start(shards[0].conf, &metrics);   /* logged; mail goes on without */
	if (shards[0].conf->cluster.on && agent_sync_open(config_path, shards[0].conf, &as) < 0)
		log_error(0, "cluster: not following the cluster's configuration: filtering with %s",
			  shards[0].conf->path);

	for (;;) {
		struct io_uring_cqe *cqe;
		struct __kernel_timespec ts = { .tv_sec = 0, .tv_nsec = 50 * 1000000 };
		unsigned exited = 0;

		if (!read_armed) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			io_uring_prep_read(sqe, sfd, &si, sizeof(si), 0);
			io_uring_sqe_set_data64(sqe, AGENT_UD_SIGNAL);
			read_armed = true;
		}
		if (lfd >= 0 && !ctl_armed) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			io_uring_prep_poll_add(sqe, lfd, POLLIN);
			io_uring_sqe_set_data64(sqe, AGENT_UD_CONTROL);
			ctl_armed = true;
		}
		if (as != NULL && !sync_armed) {
			struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

			io_uring_prep_read(sqe, agent_sync_eventfd(as), &sync_count, sizeof(sync_count), 0);
			io_uring_sqe_set_data64(sqe, AGENT_UD_SYNC);
			sync_armed = true;
		}
		r = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
		while (io_uring_peek_cqe(&ring, &cqe) == 0) {
			bool is_signal = cqe->user_data == AGENT_UD_SIGNAL && cqe->res == (int)sizeof(si);

			if (cqe->user_data == AGENT_UD_SIGNAL)
				read_armed = false;
			if (cqe->user_data == AGENT_UD_SYNC) {
				sync_armed = false;
				io_uring_cqe_seen(&ring, cqe);
				if (!stopping)
					agent_sync_version(&ring, as, shards, nshards);
				continue;
			}
			if (cqe->user_data == AGENT_UD_CONTROL) {
				ctl_armed = false;
				io_uring_cqe_seen(&ring, cqe);
				agent_ctl_accept(&ring, lfd, shards, nshards, stopping, &pending);
				continue;
			}
			io_uring_cqe_seen(&ring, cqe);
			if (!is_signal)
				continue;
			if (si.ssi_signo == SIGHUP) {
				log_info("SIGHUP: reloading %s", config_path);
				agent_reload(&ring, config_path, as, shards, nshards);
			} else if (!stopping) {
				log_info("%s: stopping: no new connections; finishing sessions in progress",
					 strsignal((int)si.ssi_signo));
				stopping = true;
				for (unsigned i = 0; i < nshards; i++)
					shard_request_stop(&ring, &shards[i]);
			}
		}
		agent_drain_events(ae, shards, nshards, false);
		agent_ctl_finish(&pending, false, shards, nshards);
		if (as != NULL)
			agent_sync_tick(as);
		for (unsigned i = 0; i < nshards; i++)
			exited += atomic_load(&shards[i].exited);
		if (exited == nshards)
			break;
	}
	agent_metrics_stop(&metrics);   /* before the control socket stops answering */
	for (unsigned i = 0; i < nshards; i++)
		shard_join(&shards[i]);
	agent_drain_events(ae, shards, nshards, true);   /* everything on disk is durable now */
	for (unsigned i = 0; i < nshards; i++)
		shard_release(&shards[i]);
	agent_events_close(&ae);
	agent_sync_close(&as);   /* after the shards: its nats-server child stops too */
	agent_log_flush();
	if (log_dropped() != 0)
		log_warn(0, "%llu log lines dropped: the syslog receiver had no room for them",
			 (unsigned long long)log_dropped());
	agent_ctl_finish(&pending, true, shards, nshards);
	if (lfd >= 0)
		close(lfd);   /* the file stays; the next start replaces it */
	io_uring_queue_exit(&ring);
	close(sfd);
	node_config_unref(&agent_running);
	return 0;
}
