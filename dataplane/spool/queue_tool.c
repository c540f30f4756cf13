/*
 * queue_tool.c - sluice-queue, the operator's view of a node's spool (after Postfix's mailq and
 * postcat). Read-only: it uses the reader API of spool.h, so it is safe while sluice-node runs
 * (a record being written is simply not listed yet).
 *
 *   sluice-queue [-d SPOOLDIR] list [--all] [--json]   queued messages (--all: done ones too)
 *   sluice-queue [-d SPOOLDIR] show QID                envelope, then the message
 *   sluice-queue [-d SPOOLDIR] body QID                the raw message on stdout
 *   sluice-queue [-d SPOOLDIR] ids                     qid<TAB>message-id per queued message
 *   sluice-queue [-d SPOOLDIR] stats                   counts per shard
 *
 * Exit codes: 0 ok, 1 not found or unreadable (the message says which), 2 usage.
 * XXX: the default directory should come from the node config's [node] spool_dir once the config
 * loader exists; for now -d, else /var/spool/sluice.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/un.h>

#include "base/cfgval.h"
#include "spool_impl.h"

#define DEFAULT_SPOOL_DIR "/var/spool/sluice"

static const char *prog = "sluice-queue";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [-d SPOOLDIR] COMMAND\n"
		"commands:\n"
		"  list [--all] [--json] [--domain D] [--older-than DURATION]\n"
		"       [--state queued|held|deferred|done]\n"
		"                         queued messages (--all includes done ones)\n"
		"  flush [QID|--domain D] retry now (all deferred messages by default)\n"
		"  hold|release|delete|bounce QID|--domain D|--all\n"
		"                         change the queue of the running node\n"
		"  show QID               envelope, headers and body of one message\n"
		"  body QID               the raw message on stdout\n"
		"  ids                    one line per queued message: qid<TAB>message-id\n"
		"  stats                  counts per shard\n"
		"SPOOLDIR defaults to %s.\n", prog, DEFAULT_SPOOL_DIR);
}

static const char *role_name(uint8_t role)
{
	return role == SPOOL_ROLE_PRIMARY ? "primary" : role == SPOOL_ROLE_FALLBACK ? "fallback" :
	       "unknown";
}

static const char *rcpt_state_name(const struct spool_entry *e, uint32_t i)
{
	uint8_t s = e->rcpt_state ? e->rcpt_state[i] : SPOOL_RCPT_QUEUED;

	if (s == SPOOL_RCPT_DONE)
		return "delivered";
	if (s == SPOOL_RCPT_FAILED)
		return "failed";
	return e->done ? "done" : "queued";
}

static void fmt_time(uint64_t ns, char *out, size_t len, bool iso)
{
	time_t t = (time_t)(ns / 1000000000u);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, len, iso ? "%Y-%m-%dT%H:%M:%SZ" : "%a %b %d %H:%M:%S", &tm);
}

static int die_err(int rc, const char *what, const char *dir)
{
	fprintf(stderr, "%s: %s: %s: %s\n", prog, dir, what, strerror(-rc));
	return 1;
}

/* ---- list ---- */

struct list_ctx {
	bool        all, json, first;
	uint64_t    bytes, count;
	const char *domain;        /* only messages with a recipient in it */
	uint64_t    older_ns;      /* only messages that arrived before this (wall), 0: any */
	const char *state;         /* queued, held, deferred, done, or NULL */
};

static bool rcpt_in_domain(const char *rcpt, const char *domain)
{
	const char *at = strrchr(rcpt, '@');

	return at != NULL && strcasecmp(at + 1, domain) == 0;
}

static bool list_match(const struct list_ctx *c, const struct spool_entry *e)
{
	if (c->domain) {
		bool any = false;

		for (uint32_t i = 0; i < e->nrcpt && !any; i++)
			any = rcpt_in_domain(e->rcpts[i], c->domain);
		if (!any)
			return false;
	}
	if (c->older_ns && e->received_ns >= c->older_ns)
		return false;
	if (c->state) {
		bool queued = !e->done && !e->held;

		if (!strcmp(c->state, "queued"))
			return queued;
		if (!strcmp(c->state, "deferred"))
			return queued && e->defer_until != 0;
		if (!strcmp(c->state, "held"))
			return !e->done && e->held;
		if (!strcmp(c->state, "done"))
			return e->done;
	}
	return true;
}

static void json_str(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static int list_one(void *arg, const struct spool_entry *e)
{
	struct list_ctx *c = arg;
	char qid[SPOOL_QID_STRLEN + 1], tm[64];

	if (e->done && !c->all)
		return 0;
	if (!list_match(c, e))
		return 0;
	spool_qid_format(e->qid, qid);
	c->bytes += e->body_len;
	c->count++;
	if (c->json) {
		fmt_time(e->received_ns, tm, sizeof(tm), true);
		printf("%s\n  {\"qid\": \"%s\", \"size\": %" PRIu64 ", \"arrival\": \"%s\", "
		       "\"role\": \"%s\", \"state\": \"%s\", \"sender\": ", c->first ? "" : ",",
		       qid, e->body_len, tm, role_name(e->role),
		       e->done ? "done" : e->held ? "held" : "queued");
		json_str(e->mail_from);
		printf(", \"message_id\": ");
		if (e->message_id)
			json_str(e->message_id);
		else
			printf("null");
		printf(", \"client_addr\": ");
		json_str(e->client_addr);
		printf(", \"helo\": ");
		json_str(e->helo);
		printf(", \"session_id\": ");
		json_str(e->session_id);
		printf(", \"score_milli\": %" PRId32 ", \"action\": %u, \"recipients\": [",
		       e->score_milli, e->action);
		for (uint32_t i = 0; i < e->nrcpt; i++) {
			printf("%s{\"address\": ", i ? ", " : "");
			json_str(e->rcpts[i]);
			printf(", \"state\": \"%s\"}", rcpt_state_name(e, i));
		}
		printf("]}");
		c->first = false;
		return 0;
	}
	fmt_time(e->received_ns, tm, sizeof(tm), false);
	/* Postfix marks a held message with '!' after the queue id. */
	printf("%s%c %9" PRIu64 " %-19s %-8s %s\n", qid, e->held ? '!' : e->done ? '-' : ' ',
	       e->body_len, tm, role_name(e->role), e->mail_from[0] ? e->mail_from : "<>");
	for (uint32_t i = 0; i < e->nrcpt; i++)
		printf("%56s %s (%s)\n", "", e->rcpts[i], rcpt_state_name(e, i));
	putchar('\n');
	return 0;
}

static int cmd_list(const char *dir, int argc, char **argv)
{
	struct list_ctx c = { .first = true };
	int rc;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--all"))
			c.all = true;
		else if (!strcmp(argv[i], "--json"))
			c.json = true;
		else if (!strcmp(argv[i], "--domain") && i + 1 < argc)
			c.domain = argv[++i];
		else if (!strcmp(argv[i], "--older-than") && i + 1 < argc) {
			uint64_t ms;
			struct timespec ts;

			if (cfgval_duration_ms(argv[++i], &ms) < 0) {
				fprintf(stderr, "%s: list: bad duration %s (want 30s, 10m, 1h, 2d)\n",
					prog, argv[i]);
				return 2;
			}
			clock_gettime(CLOCK_REALTIME, &ts);
			c.older_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec -
				     ms * 1000000u;
		} else if (!strcmp(argv[i], "--state") && i + 1 < argc) {
			c.state = argv[++i];
			if (strcmp(c.state, "queued") && strcmp(c.state, "held") &&
			    strcmp(c.state, "deferred") && strcmp(c.state, "done")) {
				fprintf(stderr, "%s: list: --state wants queued, held, deferred or done\n",
					prog);
				return 2;
			}
			if (!strcmp(c.state, "done"))
				c.all = true;
		} else {
			fprintf(stderr, "%s: list: unknown option %s\n", prog, argv[i]);
			return 2;
		}
	}
	if (c.json)
		printf("[");
	else
		printf("%-18s%9s %-19s %-8s %s\n", "-Queue ID-", "-Size-", "---Arrival Time----",
		       "-Role-", "-Sender/Recipient-------");
	rc = spool_scan(dir, list_one, &c);
	if (c.json)
		printf("%s]\n", c.first ? "" : "\n");
	else if (rc == 0)
		printf(c.count ? "-- %" PRIu64 " Kbytes in %" PRIu64 " Request%s.\n" :
		       "Mail queue is empty\n", (c.bytes + 1023) / 1024, c.count,
		       c.count == 1 ? "" : "s");
	if (rc < 0)
		return die_err(rc, "scan", dir);
	return 0;
}

/* ---- ids ---- */

static int ids_one(void *arg, const struct spool_entry *e)
{
	char qid[SPOOL_QID_STRLEN + 1];

	(void)arg;
	if (e->done)
		return 0;
	spool_qid_format(e->qid, qid);
	printf("%s\t%s\n", qid, e->message_id ? e->message_id : "");
	return 0;
}

/* ---- show / body ---- */

struct find_ctx {
	spool_qid           qid;
	bool                found, done, held;
	uint8_t            *rcpt_state;
	uint32_t            nrcpt;
};

static int find_one(void *arg, const struct spool_entry *e)
{
	struct find_ctx *f = arg;

	if (e->qid != f->qid)
		return 0;
	f->found = true;
	f->done = e->done;
	f->held = e->held;
	f->nrcpt = e->nrcpt;
	if (e->rcpt_state && (f->rcpt_state = malloc(e->nrcpt)))
		memcpy(f->rcpt_state, e->rcpt_state, e->nrcpt);
	return 1;
}

static int parse_qid_arg(int argc, char **argv, const char *cmd, spool_qid *qid_r)
{
	if (argc != 1) {
		fprintf(stderr, "%s: %s needs one queue id\n", prog, cmd);
		return 2;
	}
	if (spool_qid_parse(argv[0], qid_r) < 0) {
		fprintf(stderr, "%s: %s: not a queue id (16 hex digits)\n", prog, argv[0]);
		return 2;
	}
	return 0;
}

static int read_or_complain(const char *dir, spool_qid qid, const char *arg, uint8_t **payload,
			    struct spool_record_info *info)
{
	int rc = spool_read_record(dir, qid, payload, info);

	if (rc == -ENOENT) {
		fprintf(stderr, "%s: %s: no such message in %s\n", prog, arg, dir);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "%s: %s: %s\n", prog, arg,
			rc == -EBADMSG ? "record is damaged or still being written" :
			strerror(-rc));
		return 1;
	}
	return 0;
}

static void show_slice(const char *name, struct slice s)
{
	printf("%s: %.*s\n", name, (int)s.len, s.p);
}

static int cmd_show(const char *dir, int argc, char **argv)
{
	struct spool_record_info info;
	struct spool_envelope env;
	struct find_ctx f = { 0 };
	struct slice *rcpts = NULL;
	uint32_t nrcpt = 0;
	uint8_t *payload;
	char tm[64];
	int rc;

	if ((rc = parse_qid_arg(argc, argv, "show", &f.qid)) != 0)
		return rc;
	if ((rc = read_or_complain(dir, f.qid, argv[0], &payload, &info)) != 0)
		return rc;
	spool_scan(dir, find_one, &f);   /* the journal state, if any */
	spool_record_env_decode(payload + info.body_len, info.env_len, &env, NULL, 0, &nrcpt);
	if (nrcpt && !(rcpts = calloc(nrcpt, sizeof(*rcpts)))) {
		free(payload);
		return die_err(-ENOMEM, "show", dir);
	}
	if (spool_record_env_decode(payload + info.body_len, info.env_len, &env, rcpts, nrcpt,
				    &nrcpt) < 0)
		printf("*** the envelope does not decode ***\n");
	fmt_time(info.received_ns, tm, sizeof(tm), true);
	printf("*** ENVELOPE RECORDS shard-%u/seg-%08" PRIx32 ".dat offset %" PRIu64 " ***\n",
	       SPOOL_QID_SHARD(f.qid), SPOOL_QID_SEG(f.qid), SPOOL_QID_OFF(f.qid));
	printf("queue_id: %s\n", argv[0]);
	printf("state: %s\n", !f.found ? "unknown" : f.done ? "done" : f.held ? "held" :
	       "queued");
	printf("message_size: %" PRIu64 "\n", info.body_len);
	printf("arrival_time: %s\n", tm);
	printf("role: %s\n", role_name(env.role));
	printf("sender: %.*s\n", (int)env.mail_from.len, env.mail_from.p);
	for (uint32_t i = 0; i < env.nrcpt; i++) {
		uint8_t s = f.rcpt_state && i < f.nrcpt ? f.rcpt_state[i] : SPOOL_RCPT_QUEUED;

		printf("recipient: %.*s (%s)\n", (int)rcpts[i].len, rcpts[i].p,
		       s == SPOOL_RCPT_DONE ? "delivered" : s == SPOOL_RCPT_FAILED ? "failed" :
		       f.done ? "done" : "queued");
	}
	show_slice("helo", env.helo);
	show_slice("client_address", env.client_addr);
	show_slice("client_name", env.client_name);
	show_slice("listener", env.listener);
	printf("tls: %s\n", env.tls ? "yes" : "no");
	if (env.tls)
		show_slice("tls_info", env.tls_info);
	printf("smtputf8: %s\n", env.smtputf8 ? "yes" : "no");
	printf("body_type: %u\n", env.body_type);
	show_slice("session_id", env.session_id);
	printf("score: %.3f\n", env.score_milli / 1000.0);
	printf("action: %u\n", env.action);
	show_slice("rules_hit", env.rules_hit);
	printf("data_flags: 0x%" PRIx32 "\n", env.data_flags);
	printf("*** MESSAGE CONTENTS ***\n");
	fwrite(payload, 1, info.body_len, stdout);
	if (info.body_len && payload[info.body_len - 1] != '\n')
		putchar('\n');
	printf("*** END OF MESSAGE ***\n");
	free(rcpts);
	free(f.rcpt_state);
	free(payload);
	return 0;
}

static int cmd_body(const char *dir, int argc, char **argv)
{
	struct spool_record_info info;
	spool_qid qid;
	uint8_t *payload;
	int rc;

	if ((rc = parse_qid_arg(argc, argv, "body", &qid)) != 0)
		return rc;
	if ((rc = read_or_complain(dir, qid, argv[0], &payload, &info)) != 0)
		return rc;
	rc = fwrite(payload, 1, info.body_len, stdout) == info.body_len ? 0 : 1;
	free(payload);
	return rc;
}

/* ---- stats ---- */

struct shard_stats {
	uint64_t queued, done, held, bytes_queued;
};

static int stats_one(void *arg, const struct spool_entry *e)
{
	struct shard_stats *st = arg;
	struct shard_stats *s = &st[SPOOL_QID_SHARD(e->qid)];

	if (e->done) {
		s->done++;
		return 0;
	}
	s->queued++;
	s->bytes_queued += e->body_len;
	s->held += e->held;
	return 0;
}

static int cmd_stats(const char *dir)
{
	struct shard_stats *st = calloc(256, sizeof(*st));
	uint64_t tq = 0, tb = 0;
	int rc;

	if (!st)
		return die_err(-ENOMEM, "stats", dir);
	rc = spool_scan(dir, stats_one, st);
	if (rc < 0) {
		free(st);
		return die_err(rc, "scan", dir);
	}
	for (unsigned i = 0; i < 256; i++) {
		char sd[4096];
		uint32_t *nums;
		size_t nseg = 0;
		int dfd;

		snprintf(sd, sizeof(sd), "%s/shard-%u", dir, i);
		dfd = open(sd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			continue;
		if (spool_dir_list(dfd, "seg-", ".dat", &nums, &nseg) == 0)
			free(nums);
		close(dfd);
		printf("shard %u: segments %zu queued %" PRIu64 " held %" PRIu64
		       " done-not-reclaimed %" PRIu64 " bytes %" PRIu64 "\n", i, nseg,
		       st[i].queued, st[i].held, st[i].done, st[i].bytes_queued);
		tq += st[i].queued;
		tb += st[i].bytes_queued;
	}
	printf("total: queued %" PRIu64 " bytes %" PRIu64 "\n", tq, tb);
	free(st);
	return 0;
}

/* ---- commands to the running node (its control socket) ---- */

static int cmd_control(const char *dir, const char *cmd, int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char line[512], reply[512];
	size_t got = 0;
	spool_qid qid;
	int fd, n;

	if (argc == 0 && !strcmp(cmd, "flush"))
		snprintf(line, sizeof(line), "%s all\n", cmd);
	else if (argc == 1 && !strcmp(argv[0], "--all"))
		snprintf(line, sizeof(line), "%s all\n", cmd);
	else if (argc == 2 && !strcmp(argv[0], "--domain") && argv[1][0] &&
		 strlen(argv[1]) < 256 && !strpbrk(argv[1], " \t\r\n"))
		snprintf(line, sizeof(line), "%s domain %s\n", cmd, argv[1]);
	else if (argc == 1 && spool_qid_parse(argv[0], &qid) == 0)
		snprintf(line, sizeof(line), "%s %s\n", cmd, argv[0]);
	else {
		fprintf(stderr, "%s: %s: want QID, --domain D or --all\n", prog, cmd);
		return 2;
	}
	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control.sock", dir) >=
	    sizeof(sa.sun_path)) {
		fprintf(stderr, "%s: %s: path too long for a socket\n", prog, dir);
		return 1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "%s: %s: %s (is sluice-node running?)\n", prog, sa.sun_path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	if (write(fd, line, strlen(line)) != (ssize_t)strlen(line)) {
		fprintf(stderr, "%s: %s: write: %s\n", prog, sa.sun_path, strerror(errno));
		close(fd);
		return 1;
	}
	while (got < sizeof(reply) - 1 && (n = (int)read(fd, reply + got, sizeof(reply) - 1 - got)) > 0) {
		got += (size_t)n;
		if (memchr(reply, '\n', got))
			break;
	}
	close(fd);
	reply[got] = '\0';
	reply[strcspn(reply, "\r\n")] = '\0';
	if (strncmp(reply, "ok ", 3) == 0) {
		printf("%s: %s message%s\n", cmd, reply + 3, strcmp(reply + 3, "1") ? "s" : "");
		return 0;
	}
	fprintf(stderr, "%s: %s: %s\n", prog, cmd, got ? reply : "no reply from the node");
	return 1;
}

int main(int argc, char **argv)
{
	const char *dir = DEFAULT_SPOOL_DIR, *cmd;
	int opt, rc;

	while ((opt = getopt(argc, argv, "+d:h")) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = argv[optind++];
	{
		struct stat sb;

		errno = 0;

		if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode)) {
			fprintf(stderr, "%s: %s: %s\n", prog, dir,
				errno ? strerror(errno) : "not a directory");
			return 1;
		}
	}
	argc -= optind;
	argv += optind;
	if (!strcmp(cmd, "list"))
		return cmd_list(dir, argc, argv);
	if (!strcmp(cmd, "show"))
		return cmd_show(dir, argc, argv);
	if (!strcmp(cmd, "body"))
		return cmd_body(dir, argc, argv);
	if (!strcmp(cmd, "flush") || !strcmp(cmd, "hold") || !strcmp(cmd, "release") ||
	    !strcmp(cmd, "delete") || !strcmp(cmd, "bounce"))
		return cmd_control(dir, cmd, argc, argv);
	if (!strcmp(cmd, "ids") || !strcmp(cmd, "stats")) {
		if (argc) {
			fprintf(stderr, "%s: %s takes no arguments\n", prog, cmd);
			return 2;
		}
		if (!strcmp(cmd, "stats"))
			return cmd_stats(dir);
		rc = spool_scan(dir, ids_one, NULL);
		return rc < 0 ? die_err(rc, "scan", dir) : 0;
	}
	fprintf(stderr, "%s: unknown command %s\n", prog, cmd);
	usage(stderr);
	return 2;
}
