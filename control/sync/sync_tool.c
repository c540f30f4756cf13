/*
 * sync_tool.c - sluice-sync-tool: the sync library from the command line, one subcommand per
 * operation, for the cluster tests and for an operator looking at a node.
 *
 *   ca-init DIR                           make the cluster CA in DIR
 *   csr NAME KEY OUT                      make KEY (if absent) and a CSR for NAME into OUT
 *   issue DIR CSR NAME DAYS OUT [ADDR..]  issue NAME's certificate (ADDRs: the hub's addresses)
 *   revoke DIR SERIAL                     add an issued certificate to DIR's revocation list
 *   check-revoked DIR CERT                exit 0 if CERT is not revoked, 1 if it is
 *   serial CERT                           print a certificate's serial
 *   natsconf OPTIONS                      write a nats-server configuration (see usage)
 *   serve CONF MONITOR-PORT               run nats-server on CONF under the supervisor until
 *                                         SIGTERM; SIGHUP restarts it (a changed CONF)
 *   setup-hub PORT                        create the cfg bucket on the hub's server
 *   setup-replica PORT                    create the CFG replica on a node's leaf server
 *   put PORT KEY VALUE                    publish on the hub; prints the revision
 *   del PORT KEY                          delete on the hub; prints the revision
 *   watch PORT NODE [OUT]                 watch a node's replica until SIGTERM: one line per
 *                                         message "msg REV put|del|purge KEY LEN PENDING", and
 *                                         "apply VERSION BYTES" when `v` commits a new version
 *                                         (and the assembled configuration written to OUT)
 *
 * Exit status: 0 done, 1 the operation failed (message on stderr), 2 bad usage.
 */
#include "ca.h"
#include "cfg_map.h"
#include "cfg_watch.h"
#include "csr.h"
#include "kv.h"
#include "natsconf.h"
#include "natsproc.h"
#include "sync_conn.h"
#include "sync_file.h"

#include <errno.h>
#include <pthread.h>
#include <getopt.h>
#include <signal.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOOL_PEM_MAX   (64 * 1024)
#define TOOL_LIST_MAX  256

static int failed(const char *what, int err)
{
	fprintf(stderr, "sluice-sync-tool: %s: %s\n", what, strerror(-err));
	return 1;
}

static int cmd_ca_init(int argc, char **argv)
{
	int rc = ca_init(argv[1]);
	return rc < 0 ? failed(argv[1], rc) : 0;
}

/* Writes a PEM made by the library to path and frees it. */
static int write_pem(const char *path, char *pem)
{
	int rc = sync_file_write(path, pem, strlen(pem), 0644);
	free(pem);
	return rc < 0 ? failed(path, rc) : 0;
}

static int cmd_csr(int argc, char **argv)
{
	char *csr = NULL;
	int rc = csr_make(argv[1], argv[2], &csr);
	return rc < 0 ? failed("csr", rc) : write_pem(argv[3], csr);
}

static int cmd_issue(int argc, char **argv)
{
	char *csr = NULL, *cert = NULL;
	int rc = sync_file_read(argv[2], TOOL_PEM_MAX, &csr, NULL);
	if (rc < 0)
		return failed(argv[2], rc);
	int days = atoi(argv[4]);
	const char *const *addrs = (const char *const *)argv + 6;
	rc = argc > 6 ? ca_issue_hub(argv[1], csr, argv[3], days, addrs, (size_t)(argc - 6), &cert)
		      : ca_issue(argv[1], csr, argv[3], days, &cert);
	free(csr);
	if (rc == -EPERM)
		fprintf(stderr, "sluice-sync-tool: issue: the CSR asks for more than CN=%s\n", argv[3]);
	if (rc == -EBADMSG)
		fprintf(stderr, "sluice-sync-tool: issue: not a CSR, or its signature is wrong\n");
	if (rc == -EPERM || rc == -EBADMSG)
		return 1;
	return rc < 0 ? failed("issue", rc) : write_pem(argv[5], cert);
}

static int cmd_revoke(int argc, char **argv)
{
	int rc = ca_revoke(argv[1], argv[2]);
	return rc < 0 ? failed("revoke", rc) : 0;
}

static int cmd_check_revoked(int argc, char **argv)
{
	char *cert = NULL;
	int rc = sync_file_read(argv[2], TOOL_PEM_MAX, &cert, NULL);
	if (rc < 0)
		return failed(argv[2], rc);
	rc = ca_is_revoked(argv[1], cert);
	free(cert);
	if (rc < 0)
		return failed("check-revoked", rc);
	printf("%s\n", rc ? "revoked" : "not revoked");
	return rc ? 1 : 0;
}

static int cmd_serial(int argc, char **argv)
{
	char *cert = NULL, serial[CA_SERIAL_MAX + 1];
	int rc = sync_file_read(argv[1], TOOL_PEM_MAX, &cert, NULL);
	if (rc < 0)
		return failed(argv[1], rc);
	rc = ca_cert_serial(cert, serial);
	free(cert);
	if (rc < 0)
		return failed("serial", rc);
	printf("%s\n", serial);
	return 0;
}

static int cmd_natsconf(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "role", required_argument, NULL, 'r' },
		{ "name", required_argument, NULL, 'n' },
		{ "state", required_argument, NULL, 's' },
		{ "client-port", required_argument, NULL, 'p' },
		{ "monitor-port", required_argument, NULL, 'm' },
		{ "cert", required_argument, NULL, 'c' },
		{ "key", required_argument, NULL, 'k' },
		{ "ca", required_argument, NULL, 'a' },
		{ "listen", required_argument, NULL, 'l' },
		{ "advertise", required_argument, NULL, 'A' },
		{ "authorize", required_argument, NULL, 'u' },
		{ "hub", required_argument, NULL, 'h' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *authorized[TOOL_LIST_MAX], *hubs[TOOL_LIST_MAX], *out = NULL;
	struct natsconf c = { .role = NATSCONF_LEAF, .authorized = authorized, .hub_urls = hubs };
	int o;
	optind = 1;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (o) {
		case 'r':
			if (strcmp(optarg, "hub") == 0)
				c.role = NATSCONF_HUB;
			else if (strcmp(optarg, "leaf") != 0)
				return 2;
			break;
		case 'n': c.node_name = optarg; break;
		case 's': c.state_dir = optarg; break;
		case 'p': c.client_port = atoi(optarg); break;
		case 'm': c.monitor_port = atoi(optarg); break;
		case 'c': c.cert_file = optarg; break;
		case 'k': c.key_file = optarg; break;
		case 'a': c.ca_file = optarg; break;
		case 'l': c.leaf_listen = optarg; break;
		case 'A': c.leaf_advertise = optarg; break;
		case 'u':
			if (c.n_authorized == TOOL_LIST_MAX)
				return 2;
			authorized[c.n_authorized++] = optarg;
			break;
		case 'h':
			if (c.n_hub_urls == TOOL_LIST_MAX)
				return 2;
			hubs[c.n_hub_urls++] = optarg;
			break;
		case 'o': out = optarg; break;
		default: return 2;
		}
	}
	if (!out)
		return 2;
	int rc = natsconf_write(&c, out);
	return rc < 0 ? failed("natsconf", rc) : 0;
}

static volatile sig_atomic_t tool_signal;

static void on_signal(int sig)
{
	tool_signal = sig;
}

static int cmd_serve(int argc, char **argv)
{
	struct natsproc p = { .binary = getenv("SLUICE_NATS_SERVER"), .conf_path = argv[1],
			      .monitor_port = atoi(argv[2]) };
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	int rc = natsproc_start(&p, NATSPROC_START_MS);
	if (rc < 0)
		return failed("start nats-server", rc);
	printf("started pid %ld\n", (long)p.pid);
	fflush(stdout);
	for (;;) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		int sig = tool_signal;
		tool_signal = 0;
		if (sig == SIGTERM || sig == SIGINT)
			break;
		if (sig == SIGHUP)
			rc = natsproc_restart(&p, NATSPROC_STOP_MS) == 0 ? 1 : -EIO;
		else
			rc = natsproc_poll(&p);
		if (rc == 1)
			printf("restarted pid %ld\n", (long)p.pid);
		else if (rc < 0)
			printf("restart failed: %s\n", strerror(-rc));
		fflush(stdout);
	}
	natsproc_stop(&p, NATSPROC_STOP_MS);
	return 0;
}

/* Connects to the local server on argv[1] and runs fn on the connection. */
static int with_conn(const char *port, int (*fn)(natsConnection *nc, int argc, char **argv),
		     int argc, char **argv)
{
	natsConnection *nc = NULL;
	int rc = sync_conn_open(atoi(port), &nc);
	if (rc < 0)
		return failed("connect", rc);
	rc = fn(nc, argc, argv);
	sync_conn_close(&nc);
	nats_Close();
	return rc;
}

static int do_setup_hub(natsConnection *nc, int argc, char **argv)
{
	int rc = kv_setup_hub(nc);
	return rc < 0 ? failed("setup-hub", rc) : 0;
}

static int do_setup_replica(natsConnection *nc, int argc, char **argv)
{
	int rc = kv_setup_replica(nc);
	return rc < 0 ? failed("setup-replica", rc) : 0;
}

static int do_publish(natsConnection *nc, int argc, char **argv)
{
	struct kv_pub *pub = NULL;
	int rc = kv_pub_open(nc, &pub);
	if (rc < 0)
		return failed("open bucket", rc);
	uint64_t rev = 0;
	const char *value = argc > 3 ? argv[3] : NULL;
	rc = kv_publish(pub, argv[2], value, value ? strlen(value) : 0, &rev);
	kv_pub_close(&pub);
	if (rc < 0)
		return failed("publish", rc);
	printf("%llu\n", (unsigned long long)rev);
	return 0;
}

static int cmd_setup_hub(int argc, char **argv)
{
	return with_conn(argv[1], do_setup_hub, argc, argv);
}

static int cmd_setup_replica(int argc, char **argv)
{
	return with_conn(argv[1], do_setup_replica, argc, argv);
}

static int cmd_publish(int argc, char **argv)
{
	return with_conn(argv[1], do_publish, argc, argv);
}

struct tool_watch {
	struct cfg_map *map;
	const char     *out;    /* where an applied configuration goes, or NULL */
};

static void on_watch(const char *key, const char *value, size_t len, enum cfg_op op,
		     uint64_t revision, uint64_t pending, void *arg)
{
	static const char *const ops[] = { "put", "del", "purge" };
	struct tool_watch *tw = arg;
	struct cfg_map *map = tw->map;
	printf("msg %llu %s %s %zu %llu\n", (unsigned long long)revision, ops[op], key, len,
	       (unsigned long long)pending);
	int rc = cfg_map_feed(map, key, value, len, op);
	if (rc == 1) {
		struct cfg_render r;
		if (cfg_map_render(map, "", 0, &r) == 0) {
			int wrc = tw->out ? sync_file_write(tw->out, r.buf, r.len, 0644) : 0;
			printf("apply %llu %zu\n", (unsigned long long)cfg_map_version(map), r.len);
			if (wrc < 0)
				printf("cannot write %s: %s\n", tw->out, strerror(-wrc));
			cfg_render_free(&r);
		}
	} else if (rc < 0) {
		printf("refused %s: %s\n", key, strerror(-rc));
	}
	fflush(stdout);
}

static int do_watch(natsConnection *nc, int argc, char **argv)
{
	struct cfg_map *map = cfg_map_new(argv[2]);
	if (!map)
		return failed("watch", -ENOMEM);
	struct tool_watch tw = { map, argc > 3 ? argv[3] : NULL };
	struct cfg_watch *w = NULL;
	int rc = cfg_watch_start(nc, on_watch, &tw, &w);
	if (rc < 0) {
		cfg_map_free(&map);
		return failed("watch", rc);
	}
	int sig;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigwait(&set, &sig);
	cfg_watch_stop(&w);
	cfg_map_free(&map);
	return 0;
}

static int cmd_watch(int argc, char **argv)
{
	/* Blocked before nats.c starts its threads, so sigwait here gets them. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	return with_conn(argv[1], do_watch, argc, argv);
}

struct tool_cmd {
	const char *name;
	int         min_args;     /* arguments after the subcommand's name */
	int         max_args;
	int       (*run)(int argc, char **argv);    /* argv[0] is the subcommand */
	const char *usage;
};

static const struct tool_cmd tool_cmds[] = {
	{ "ca-init", 1, 1, cmd_ca_init, "ca-init DIR" },
	{ "csr", 3, 3, cmd_csr, "csr NAME KEY OUT" },
	{ "issue", 5, 5 + TOOL_LIST_MAX, cmd_issue, "issue DIR CSR NAME DAYS OUT [HUB-ADDR...]" },
	{ "revoke", 2, 2, cmd_revoke, "revoke DIR SERIAL" },
	{ "check-revoked", 2, 2, cmd_check_revoked, "check-revoked DIR CERT" },
	{ "serial", 1, 1, cmd_serial, "serial CERT" },
	{ "natsconf", 1, 64, cmd_natsconf,
	  "natsconf --role hub|leaf --name N --state DIR --client-port P --monitor-port P\n"
	  "         --cert F --key F --ca F [--listen ADDR --advertise ADDR --authorize NAME...]\n"
	  "         [--hub URL...] --out PATH" },
	{ "serve", 2, 2, cmd_serve, "serve CONF MONITOR-PORT" },
	{ "setup-hub", 1, 1, cmd_setup_hub, "setup-hub PORT" },
	{ "setup-replica", 1, 1, cmd_setup_replica, "setup-replica PORT" },
	{ "put", 3, 3, cmd_publish, "put PORT KEY VALUE" },
	{ "del", 2, 2, cmd_publish, "del PORT KEY" },
	{ "watch", 2, 3, cmd_watch, "watch PORT NODE [OUT]" },
};

static int usage(void)
{
	fprintf(stderr, "usage:\n");
	for (size_t i = 0; i < sizeof tool_cmds / sizeof tool_cmds[0]; i++)
		fprintf(stderr, "  sluice-sync-tool %s\n", tool_cmds[i].usage);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return usage();
	for (size_t i = 0; i < sizeof tool_cmds / sizeof tool_cmds[0]; i++) {
		const struct tool_cmd *cmd = &tool_cmds[i];
		if (strcmp(argv[1], cmd->name) != 0)
			continue;
		int nargs = argc - 2;
		if (nargs < cmd->min_args || nargs > cmd->max_args)
			return usage();
		int rc = cmd->run(argc - 1, argv + 1);
		return rc == 2 ? usage() : rc;
	}
	return usage();
}
