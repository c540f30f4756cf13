/*
 * queue_tool.c - sluice-queue, the operator's view of a node's spool (after Postfix's mailq,
 * postcat, postsuper and qshape). Reading is safe while sluice-node runs: it uses the reader API
 * of spool.h (a record being written is simply not listed yet). Changes to the queue go to the
 * running node through its control socket (<spool>/control.sock); only `salvage --reinject`
 * writes into the spool itself, and only while the node is stopped.
 *
 *   sluice-queue [-d SPOOLDIR] list [--all] [--json] [--domain D] [--sender S]
 *                [--older-than DURATION] [--state queued|held|deferred|done]
 *   sluice-queue [-d SPOOLDIR] show [--headers] QID...|-   envelope, then the message
 *   sluice-queue [-d SPOOLDIR] body QID...|-                the raw message on stdout
 *   sluice-queue [-d SPOOLDIR] flush|hold|release|delete|bounce|requeue QID...|-|--domain D|--all
 *   sluice-queue [-d SPOOLDIR] shape [--sender] [--state S]  messages by domain and age (qshape)
 *   sluice-queue [-d SPOOLDIR] ids                          qid<TAB>message-id per queued message
 *   sluice-queue [-d SPOOLDIR] stats                        counts per shard
 *   sluice-queue [-d SPOOLDIR] salvage [--reinject]         damaged spool ranges (see README)
 *
 * "-" in place of queue ids reads them from standard input (white space separated), as
 * postsuper does. Exit codes: 0 ok, 1 a command that acted on nothing or on fewer messages than
 * named (each one is named on stderr: "QID: no such message"), or an unreadable spool, 2 usage.
 * XXX: the default directory should come from the node config's [node] spool_dir; for now -d,
 * else /var/spool/sluice.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "base/cfgval.h"
#include "base/pidlock.h"
#include "sluice_build.h"
#include "spool_impl.h"

#define DEFAULT_SPOOL_DIR "/var/spool/sluice"

static const char *prog = "sluice-queue";

static void usage(FILE *f)
{
	fprintf(f,
		"usage: %s [-d SPOOLDIR] COMMAND [ARGS]\n"
		"       %s --help | --version\n"
		"commands:\n"
		"  list [--all] [--json] [--domain D] [--sender S] [--older-than DURATION]\n"
		"       [--state queued|held|deferred|done]\n"
		"                         queued messages, with the attempt count, next retry and\n"
		"                         last reply of deferred ones (--all: done ones too);\n"
		"                         --sender ADDR, @DOMAIN or <> (the null sender)\n"
		"  show [--headers] QID...|-\n"
		"                         envelope, headers and body (--headers: the headers only)\n"
		"  body QID...|-          the raw message on stdout\n"
		"  flush|hold|release|delete|bounce QID...|-|--domain D|--all\n"
		"                         change the queue of the running node (flush: retry now;\n"
		"                         with no argument, flush means --all)\n"
		"  requeue QID...|-|--domain D|--all\n"
		"                         release if held, then retry now from the first\n"
		"                         destination (postsuper -r)\n"
		"  shape [--sender] [--state queued|held|deferred]\n"
		"                         messages per recipient (or sender) domain and age, as\n"
		"                         Postfix's qshape (minutes)\n"
		"  ids                    one line per queued message: qid<TAB>message-id\n"
		"  stats [--shards]       counts per shard, damaged ranges; and the running node's\n"
		"                         live counters (summed, or --shards: per shard)\n"
		"  salvage [--reinject]   damaged spool ranges; --reinject (node stopped) queues\n"
		"                         again those whose envelope survived\n"
		"QID is 16 hex digits; - reads queue ids from standard input.\n"
		"SPOOLDIR defaults to %s.\n"
		"Exit status: 0 ok, 1 nothing acted on / no such message / unreadable, 2 usage.\n",
		prog, prog, DEFAULT_SPOOL_DIR);
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

static uint64_t now_wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int die_err(int rc, const char *what, const char *dir)
{
	fprintf(stderr, "%s: %s: %s: %s\n", prog, dir, what, strerror(-rc));
	return 1;
}

/* ---- queue id arguments: QID... or - (ids on stdin) ---- */

struct qids {
	spool_qid *v;
	char     (*s)[SPOOL_QID_STRLEN + 1];
	size_t     n, cap;
};

static int qids_add(struct qids *q, const char *arg)
{
	spool_qid qid;

	if (spool_qid_parse(arg, &qid) < 0) {
		fprintf(stderr, "%s: %s: not a queue id (16 hex digits)\n", prog, arg);
		return 2;
	}
	if (q->n == q->cap) {
		size_t cap = q->cap ? q->cap * 2 : 16;
		spool_qid *v = realloc(q->v, cap * sizeof(*v));
		char (*ns)[SPOOL_QID_STRLEN + 1];

		if (!v)
			return die_err(-ENOMEM, "queue ids", "-");
		q->v = v;
		if (!(ns = realloc(q->s, cap * sizeof(*ns))))
			return die_err(-ENOMEM, "queue ids", "-");
		q->s = ns;
		q->cap = cap;
	}
	q->v[q->n] = qid;
	spool_qid_format(qid, q->s[q->n]);
	q->n++;
	return 0;
}

/* Collects the queue ids of argv (each a QID, or "-": read from stdin). 0, or an exit code. */
static int qids_collect(struct qids *q, int argc, char **argv, const char *cmd)
{
	int rc;

	memset(q, 0, sizeof(*q));
	for (int i = 0; i < argc; i++) {
		if (strcmp(argv[i], "-") == 0) {
			char tok[128];

			while (scanf("%127s", tok) == 1)
				if ((rc = qids_add(q, tok)) != 0)
					return rc;
			continue;
		}
		if ((rc = qids_add(q, argv[i])) != 0)
			return rc;
	}
	if (q->n == 0) {
		fprintf(stderr, "%s: %s needs at least one queue id (or - to read them from "
			"standard input)\n", prog, cmd);
		return 2;
	}
	return 0;
}

static void qids_free(struct qids *q)
{
	free(q->v);
	free(q->s);
	memset(q, 0, sizeof(*q));
}

/* ---- list ---- */

struct list_ctx {
	bool        all, json, first;
	uint64_t    bytes, count;
	const char *domain;        /* only messages with a recipient in it */
	const char *sender;        /* address, @domain, or <> */
	uint64_t    older_ns;      /* only messages that arrived before this (wall), 0: any */
	const char *state;         /* queued, held, deferred, done, or NULL */
};

static bool rcpt_in_domain(const char *rcpt, const char *domain)
{
	const char *at = strrchr(rcpt, '@');

	return at != NULL && strcasecmp(at + 1, domain) == 0;
}

static bool sender_match(const char *from, const char *want)
{
	if (!strcmp(want, "<>") || !want[0])
		return !from[0];
	if (want[0] == '@')
		return rcpt_in_domain(from, want + 1);
	return strcasecmp(from, want) == 0;
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
	if (c->sender && !sender_match(e->mail_from, c->sender))
		return false;
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
	char qid[SPOOL_QID_STRLEN + 1], tm[64], nx[64];
	bool deferred = !e->done && e->defer_until != 0;

	if (e->done && !c->all)
		return 0;
	if (!list_match(c, e))
		return 0;
	spool_qid_format(e->qid, qid);
	c->bytes += e->body_len;
	c->count++;
	if (deferred)
		fmt_time(e->defer_until * 1000000000u, nx, sizeof(nx), true);
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
		printf(", \"score_milli\": %" PRId32 ", \"action\": %u, \"deferred\": %s, "
		       "\"attempts\": %" PRIu32 ", \"next_retry\": ", e->score_milli, e->action,
		       deferred ? "true" : "false", e->attempts);
		if (deferred)
			json_str(nx);
		else
			printf("null");
		printf(", \"last_reply\": ");
		if (e->last_reply)
			json_str(e->last_reply);
		else
			printf("null");
		printf(", \"recipients\": [");
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
	/* As mailq: why it is still here, in parentheses, before the recipients. */
	if (deferred && e->attempts)
		printf("%56s (attempts %" PRIu32 ", next retry %s%s%s)\n", "", e->attempts, nx,
		       e->last_reply && e->last_reply[0] ? ": " : "",
		       e->last_reply ? e->last_reply : "");
	else if (deferred)   /* journaled before the attempt count was */
		printf("%56s (next retry %s)\n", "", nx);
	for (uint32_t i = 0; i < e->nrcpt; i++)
		printf("%56s %s (%s)\n", "", e->rcpts[i], rcpt_state_name(e, i));
	putchar('\n');
	return 0;
}

static int parse_state(const char *cmd, const char *v, bool done_ok)
{
	if (strcmp(v, "queued") && strcmp(v, "held") && strcmp(v, "deferred") &&
	    (!done_ok || strcmp(v, "done"))) {
		fprintf(stderr, "%s: %s: --state wants queued, held, deferred%s\n", prog, cmd,
			done_ok ? " or done" : "");
		return 2;
	}
	return 0;
}

/* The damaged ranges the node copied aside and nobody salvaged yet (for list's last line). */
static unsigned damaged_copies(const char *dir)
{
	unsigned n = 0;

	for (unsigned sh = 0; sh < 256; sh++) {
		char sd[4096];
		struct dirent *de;
		DIR *d;

		snprintf(sd, sizeof(sd), "%s/shard-%u", dir, sh);
		if (!(d = opendir(sd)))
			continue;
		while ((de = readdir(d))) {
			char salv[300];
			const char *p = strstr(de->d_name, ".damaged-");

			if (!p || strncmp(de->d_name, "seg-", 4) || strlen(p) != 9 + 16)
				continue;
			snprintf(salv, sizeof(salv), "%.*s.salvaged-%s", (int)(p - de->d_name),
				 de->d_name, p + 9);
			n += faccessat(dirfd(d), salv, F_OK, 0) != 0;
		}
		closedir(d);
	}
	return n;
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
		else if (!strcmp(argv[i], "--sender") && i + 1 < argc)
			c.sender = argv[++i];
		else if (!strcmp(argv[i], "--older-than") && i + 1 < argc) {
			uint64_t ms;

			if (cfgval_duration_ms(argv[++i], &ms) < 0) {
				fprintf(stderr, "%s: list: bad duration %s (want 30s, 10m, 1h, 2d)\n",
					prog, argv[i]);
				return 2;
			}
			c.older_ns = now_wall_ns() - ms * 1000000u;
		} else if (!strcmp(argv[i], "--state") && i + 1 < argc) {
			c.state = argv[++i];
			if (parse_state("list", c.state, true))
				return 2;
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
	else if (rc == 0) {
		unsigned dmg = damaged_copies(dir);

		printf(c.count ? "-- %" PRIu64 " Kbytes in %" PRIu64 " Request%s.\n" :
		       "Mail queue is empty\n", (c.bytes + 1023) / 1024, c.count,
		       c.count == 1 ? "" : "s");
		if (dmg)
			printf("-- %u damaged spool range%s not salvaged: see sluice-queue salvage\n",
			       dmg, dmg == 1 ? "" : "s");
	}
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
	uint32_t            nrcpt, attempts;
	uint64_t            defer_until;
	char               *last_reply;
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
	f->attempts = e->attempts;
	f->defer_until = e->defer_until;
	if (e->last_reply)
		f->last_reply = strdup(e->last_reply);
	if (e->rcpt_state && (f->rcpt_state = malloc(e->nrcpt)))
		memcpy(f->rcpt_state, e->rcpt_state, e->nrcpt);
	return 1;
}

static int read_or_complain(const char *dir, spool_qid qid, const char *arg, uint8_t **payload,
			    struct spool_record_info *info)
{
	int rc = spool_read_record(dir, qid, payload, info);

	if (rc == -ENOENT) {
		fprintf(stderr, "%s: no such message\n", arg);
		return 1;
	}
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", arg,
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

/* The length of the header section of body[0..len): up to and including the empty line. */
static size_t header_len(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; ) {
		const uint8_t *nl = memchr(b + i, '\n', len - i);
		size_t e = nl ? (size_t)(nl - b) : len;

		if (e == i || (e == i + 1 && b[i] == '\r'))
			return e < len ? e + 1 : len;
		i = e + 1;
	}
	return len;
}

static int show_one(const char *dir, spool_qid qid, const char *qs, bool headers_only)
{
	struct spool_record_info info;
	struct spool_envelope env;
	struct find_ctx f = { .qid = qid };
	struct slice *rcpts = NULL;
	uint32_t nrcpt = 0;
	uint8_t *payload;
	char tm[64];
	int rc;

	if ((rc = read_or_complain(dir, qid, qs, &payload, &info)) != 0)
		return rc;
	if (headers_only) {
		size_t hl = header_len(payload, info.body_len);

		rc = fwrite(payload, 1, hl, stdout) == hl ? 0 : 1;
		free(payload);
		return rc;
	}
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
	       SPOOL_QID_SHARD(qid), SPOOL_QID_SEG(qid), SPOOL_QID_OFF(qid));
	printf("queue_id: %s\n", qs);
	printf("state: %s\n", !f.found ? "unknown" : f.done ? "done" : f.held ? "held" :
	       f.defer_until ? "deferred" : "queued");
	printf("message_size: %" PRIu64 "\n", info.body_len);
	printf("arrival_time: %s\n", tm);
	if (f.defer_until && !f.done) {
		fmt_time(f.defer_until * 1000000000u, tm, sizeof(tm), true);
		printf("attempts: %" PRIu32 "\n", f.attempts);
		printf("next_retry: %s\n", tm);
		printf("last_reply: %s\n", f.last_reply ? f.last_reply : "");
	}
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
	free(f.last_reply);
	free(payload);
	return 0;
}

static int body_one(const char *dir, spool_qid qid, const char *qs)
{
	struct spool_record_info info;
	uint8_t *payload;
	int rc;

	if ((rc = read_or_complain(dir, qid, qs, &payload, &info)) != 0)
		return rc;
	rc = fwrite(payload, 1, info.body_len, stdout) == info.body_len ? 0 : 1;
	free(payload);
	return rc;
}

static int cmd_show(const char *dir, int argc, char **argv, bool body)
{
	bool headers = false;
	struct qids q;
	int rc, worst = 0;

	if (!body && argc && !strcmp(argv[0], "--headers")) {
		headers = true;
		argc--;
		argv++;
	}
	if ((rc = qids_collect(&q, argc, argv, body ? "body" : "show")) != 0)
		return rc;
	for (size_t i = 0; i < q.n; i++) {
		rc = body ? body_one(dir, q.v[i], q.s[i]) : show_one(dir, q.v[i], q.s[i], headers);
		if (rc > worst)
			worst = rc;
		fflush(stdout);
	}
	qids_free(&q);
	return worst;
}

/* ---- stats ---- */

struct shard_stats {
	uint64_t queued, done, held, bytes_queued, deferred;
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
	s->deferred += !e->held && e->defer_until != 0;
	return 0;
}

/* ---- damaged ranges (salvage) ---- */

struct damaged {
	unsigned shard;
	uint32_t segno;
	uint64_t off, len;
	bool     copied;      /* a <segment>.damaged-<off> file holds the bytes */
	bool     in_segment;  /* the segment still holds them */
	bool     hdr_ok;
};

struct damaged_list {
	struct damaged *v;
	size_t          n, cap;
};

static struct damaged *damaged_find(struct damaged_list *l, unsigned shard, uint32_t segno,
				    uint64_t off, bool add)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->v[i].shard == shard && l->v[i].segno == segno && l->v[i].off == off)
			return &l->v[i];
	if (!add)
		return NULL;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct damaged *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return NULL;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = (struct damaged){ .shard = shard, .segno = segno, .off = off };
	return &l->v[l->n++];
}

static int seg_nop(void *arg, const struct spool_record_info *info, uint64_t off,
		   const uint8_t *payload)
{
	(void)arg; (void)info; (void)off; (void)payload;
	return 0;
}

/* The damaged ranges a scan of one shard's segments finds (not salvaged yet). */
static void damaged_scan_shard(int dfd, unsigned sh, struct damaged_list *l)
{
	struct spool_segscan *r = malloc(sizeof(*r));
	uint32_t *nums = NULL;
	size_t nseg = 0;
	uint64_t key = 0;
	bool have_key = spool_seal_load(dfd, &key) == 0;

	if (!r || spool_dir_list(dfd, "seg-", ".dat", &nums, &nseg) < 0) {
		free(r);
		return;
	}
	for (size_t i = 0; i < nseg; i++) {
		char sn[32], salv[96];
		int fd;

		spool_seg_name(sn, nums[i]);
		if ((fd = openat(dfd, sn, O_RDONLY | O_CLOEXEC)) < 0)
			continue;   /* reclaimed since the listing */
		if (spool_segscan_sealed(fd, sh, nums[i], false, have_key ? &key : NULL, seg_nop,
					 NULL, r) == 0)
			for (uint32_t k = 0; k < r->ndamage; k++) {
				struct damaged *x;

				snprintf(salv, sizeof(salv), "%s.salvaged-%016" PRIx64, sn,
					 r->damage[k].off);
				if (faccessat(dfd, salv, F_OK, 0) == 0 ||
				    !(x = damaged_find(l, sh, nums[i], r->damage[k].off, true)))
					continue;
				x->in_segment = true;
				x->hdr_ok = r->damage[k].hdr_ok;
				x->len = r->damage[k].len;
			}
		close(fd);
	}
	free(nums);
	free(r);
}

/* Every damaged range of the spool: the copies the node made (.damaged-<off>) and what a scan of
 * the segments finds (damage the node could not copy, or not yet seen by a start). A range with
 * a .salvaged-<off> file is done and not listed. */
static int damaged_collect(const char *dir, struct damaged_list *l)
{
	for (unsigned sh = 0; sh < 256; sh++) {
		char sd[4096];
		DIR *d;
		struct dirent *de;
		int dfd;

		snprintf(sd, sizeof(sd), "%s/shard-%u", dir, sh);
		if (!(d = opendir(sd)))
			continue;
		dfd = dirfd(d);
		while ((de = readdir(d))) {
			uint32_t segno;
			uint64_t off;
			int n = 0;
			struct stat sb;
			struct damaged *x;
			char salv[96];

			if (sscanf(de->d_name, "seg-%8" SCNx32 ".dat.damaged-%16" SCNx64 "%n", &segno,
				   &off, &n) != 2 || de->d_name[n] != '\0')
				continue;
			snprintf(salv, sizeof(salv), "seg-%08" PRIx32 ".dat.salvaged-%016" PRIx64,
				 segno, off);
			if (faccessat(dfd, salv, F_OK, 0) == 0)
				continue;
			if (fstatat(dfd, de->d_name, &sb, 0) < 0 || !(x = damaged_find(l, sh, segno,
										   off, true)))
				continue;
			x->copied = true;
			x->len = (uint64_t)sb.st_size;
		}
		closedir(d);
		dfd = open(sd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			continue;
		damaged_scan_shard(dfd, sh, l);
		close(dfd);
	}
	return 0;
}

static void stats_live(const char *dir, bool per_shard);

static int cmd_stats(const char *dir, bool per_shard)
{
	struct shard_stats *st = calloc(256, sizeof(*st));
	struct damaged_list dl = { 0 };
	uint64_t tq = 0, tb = 0, dbytes = 0;
	int rc;

	if (!st)
		return die_err(-ENOMEM, "stats", dir);
	rc = spool_scan(dir, stats_one, st);
	if (rc < 0) {
		free(st);
		return die_err(rc, "scan", dir);
	}
	damaged_collect(dir, &dl);
	for (unsigned i = 0; i < 256; i++) {
		char sd[4096];
		uint32_t *nums;
		size_t nseg = 0, nd = 0;
		uint64_t db = 0;
		int dfd;

		snprintf(sd, sizeof(sd), "%s/shard-%u", dir, i);
		dfd = open(sd, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			continue;
		if (spool_dir_list(dfd, "seg-", ".dat", &nums, &nseg) == 0)
			free(nums);
		close(dfd);
		for (size_t k = 0; k < dl.n; k++)
			if (dl.v[k].shard == i) {
				nd++;
				db += dl.v[k].len;
			}
		printf("shard %u: segments %zu queued %" PRIu64 " deferred %" PRIu64 " held %" PRIu64
		       " done-not-reclaimed %" PRIu64 " bytes %" PRIu64 " damaged %zu (%" PRIu64
		       " bytes)\n", i, nseg, st[i].queued, st[i].deferred, st[i].held, st[i].done,
		       st[i].bytes_queued, nd, db);
		tq += st[i].queued;
		tb += st[i].bytes_queued;
		dbytes += db;
	}
	printf("total: queued %" PRIu64 " bytes %" PRIu64 " damaged %zu (%" PRIu64 " bytes)\n", tq,
	       tb, dl.n, dbytes);
	free(dl.v);
	free(st);
	stats_live(dir, per_shard);
	return 0;
}

/* ---- commands to the running node (its control socket) ---- */

static int control_path(const char *dir, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if ((size_t)snprintf(sa->sun_path, sizeof(sa->sun_path), "%s/control.sock", dir) >=
	    sizeof(sa->sun_path)) {
		fprintf(stderr, "%s: %s: path too long for a socket\n", prog, dir);
		return -ENAMETOOLONG;
	}
	return 0;
}

/*
 * Whether a node answers on the control socket. A connect alone does not tell: a node that just
 * exited may leave its listening socket alive a moment (its io_uring is torn down after the
 * process), taking connections nobody reads. So a request no node acts on is sent, and any reply
 * means a node runs; the connection closing without one means none does; no answer within 5 s
 * counts as running (the safe side: salvage --reinject must never write beside a live node).
 * salvage_lock (below) is the real test; this one also catches a node too old to lock.
 */
static bool node_running(const char *dir)
{
	struct sockaddr_un sa;
	struct pollfd pfd;
	char c;
	int fd;
	bool up = true;

	if (control_path(dir, &sa) < 0)
		return true;   /* cannot tell: assume it runs */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return errno != ENOENT && errno != ECONNREFUSED;
	}
	if (write(fd, "status\n", 7) != 7) {
		close(fd);
		return errno != EPIPE && errno != ECONNRESET;
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	if (poll(&pfd, 1, 5000) == 1)
		up = read(fd, &c, 1) == 1;
	close(fd);
	return up;
}

/* Sends one request line; *count_r = N of "ok N". 0, or 1 (the error was printed). */
static int control_send(const char *dir, const char *cmd, const char *line, uint64_t *count_r)
{
	struct sockaddr_un sa;
	char reply[512];
	size_t got = 0;
	int fd, n;

	if (control_path(dir, &sa) < 0)
		return 1;
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
	while (got < sizeof(reply) - 1 &&
	       (n = (int)read(fd, reply + got, sizeof(reply) - 1 - got)) > 0) {
		got += (size_t)n;
		if (memchr(reply, '\n', got))
			break;
	}
	close(fd);
	reply[got] = '\0';
	reply[strcspn(reply, "\r\n")] = '\0';
	if (strncmp(reply, "ok ", 3) == 0) {
		*count_r = strtoull(reply + 3, NULL, 10);
		return 0;
	}
	if (strcmp(reply, "error no such queue id") == 0) {
		*count_r = 0;   /* a shard the node does not have: acted on nothing */
		return 0;
	}
	fprintf(stderr, "%s: %s: %s\n", prog, cmd, got ? reply : "no reply from the node");
	return 1;
}

/* One counter sample of the node's "counters" reply, summed over shards. */
struct stats_sample {
	char               key[256];   /* name{labels} without the shard label */
	unsigned long long v;
	double             d;          /* a _sum, which is not an integer */
	bool               is_double;
};

/* "name{shard="N",rest} value" -> key "name{rest}" (or "name"). */
static void stats_key(const char *line, size_t len, char *key, size_t keylen)
{
	const char *brace = memchr(line, '{', len), *sp = memchr(line, ' ', len);
	const char *close = brace ? memchr(brace, '}', len - (size_t)(brace - line)) : NULL;

	if (!brace || !close || !sp || sp < close) {
		snprintf(key, keylen, "%.*s", (int)(sp ? sp - line : (ptrdiff_t)len), line);
		return;
	}
	const char *rest = brace + 1;

	if (strncmp(rest, "shard=\"", 7) == 0) {
		rest = memchr(rest + 7, '"', (size_t)(close - rest - 7));
		rest = rest ? rest + 1 : close;
		if (*rest == ',')
			rest++;
	}
	if (rest >= close)
		snprintf(key, keylen, "%.*s", (int)(brace - line), line);
	else
		snprintf(key, keylen, "%.*s{%.*s}", (int)(brace - line), line, (int)(close - rest), rest);
}

/* The running node's live counters ("counters" on the control socket): summed over the shards,
 * or as sent (per shard). Says so, and returns, when no node answers. */
static void stats_live(const char *dir, bool per_shard)
{
	struct sockaddr_un sa;
	struct buf rb = { 0 };
	char *buf;
	size_t len;
	struct stats_sample *smp = NULL;
	size_t nsmp = 0, capsmp = 0;
	ssize_t n;
	int fd;

	if (control_path(dir, &sa) < 0)
		return;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    write(fd, "counters\n", 9) != 9) {
		printf("live counters: no node running on %s\n", dir);
		if (fd >= 0)
			close(fd);
		return;
	}
	/* the whole reply, NUL-terminated */
	while (buf_reserve(&rb, 65536 + 1) == 0 && (n = read(fd, rb.last, buf_room(&rb) - 1)) > 0)
		rb.last += n;
	close(fd);
	buf = (char *)rb.start;
	len = buf_unread(&rb);
	if (buf)
		buf[len] = '\0';
	if (len < 3 || strncmp(buf, "ok ", 3) != 0) {
		printf("live counters: %.*s\n", len ? (int)strcspn(buf, "\n") : 22,
		       len ? buf : "no reply from the node");
		buf_release(&rb);
		return;
	}
	printf("live counters of the running node%s:\n", per_shard ? ", per shard" : " (all shards)");
	for (char *line = strchr(buf, '\n'); line && *++line; line = strchr(line, '\n')) {
		size_t ll = strcspn(line, "\n");
		const char *val = memrchr(line, ' ', ll);
		char key[256];
		size_t k;

		if (*line == '#' || !val)
			continue;
		if (per_shard) {
			printf("  %.*s\n", (int)ll, line);
			continue;
		}
		stats_key(line, ll, key, sizeof(key));
		for (k = 0; k < nsmp && strcmp(smp[k].key, key) != 0; k++)
			;
		if (k == nsmp) {
			if (nsmp == capsmp) {
				struct stats_sample *ns = realloc(smp, (capsmp = capsmp ? capsmp * 2 : 128) *
									   sizeof(*ns));
				if (!ns)
					break;
				smp = ns;
			}
			memset(&smp[nsmp], 0, sizeof(smp[nsmp]));
			snprintf(smp[nsmp].key, sizeof(smp[nsmp].key), "%s", key);
			nsmp++;
		}
		if (memchr(val, '.', ll - (size_t)(val - line))) {
			smp[k].is_double = true;
			smp[k].d += strtod(val + 1, NULL);
		} else {
			smp[k].v += strtoull(val + 1, NULL, 10);
		}
	}
	for (size_t k = 0; k < nsmp; k++) {
		if (smp[k].is_double)
			printf("  %s %.6f\n", smp[k].key, smp[k].d + (double)smp[k].v);
		else
			printf("  %s %llu\n", smp[k].key, smp[k].v);
	}
	free(smp);
	buf_release(&rb);
}

/* Sends "<op> <target>" for each op of ops (requeue: release, then flush); the message counts
 * as acted on if any op moved it. */
static int control_target(const char *dir, const char *cmd, const char *const *ops, int nops,
			  const char *target, uint64_t *count_r)
{
	uint64_t total = 0;

	for (int k = 0; k < nops; k++) {
		char line[512];
		uint64_t c = 0;

		snprintf(line, sizeof(line), "%s %s\n", ops[k], target);
		if (control_send(dir, cmd, line, &c))
			return 1;
		/* requeue: a message both released and flushed is one message */
		total = c > total ? c : total;
	}
	*count_r = total;
	return 0;
}

static int cmd_control(const char *dir, const char *cmd, int argc, char **argv)
{
	static const char *const requeue_ops[] = { "release", "flush" };
	const char *const *ops = requeue_ops;
	const char *one[1] = { cmd };
	int nops = 2, rc = 0;
	uint64_t count = 0;
	char target[300];

	if (strcmp(cmd, "requeue")) {
		ops = one;
		nops = 1;
	}
	if ((argc == 0 && !strcmp(cmd, "flush")) || (argc == 1 && !strcmp(argv[0], "--all"))) {
		snprintf(target, sizeof(target), "all");
	} else if (argc == 2 && !strcmp(argv[0], "--domain")) {
		if (!argv[1][0] || strlen(argv[1]) >= 256 || strpbrk(argv[1], " \t\r\n")) {
			fprintf(stderr, "%s: %s: bad domain %s\n", prog, cmd, argv[1]);
			return 2;
		}
		snprintf(target, sizeof(target), "domain %s", argv[1]);
	} else if (argc == 0) {
		fprintf(stderr, "%s: %s: want QID..., -, --domain D or --all\n", prog, cmd);
		return 2;
	} else {
		struct qids q;
		size_t acted = 0;

		if ((rc = qids_collect(&q, argc, argv, cmd)) != 0)
			return rc;
		for (size_t i = 0; i < q.n; i++) {
			uint64_t c = 0;

			if (control_target(dir, cmd, ops, nops, q.s[i], &c)) {
				qids_free(&q);
				return 1;
			}
			if (c)
				acted++;
			else
				fprintf(stderr, "%s: no such message%s\n", q.s[i],
					!strcmp(cmd, "flush") ? " waiting for a retry" :
					!strcmp(cmd, "release") ? " on hold" : "");
		}
		printf("%s: %zu message%s\n", cmd, acted, acted == 1 ? "" : "s");
		rc = acted == q.n ? 0 : 1;
		qids_free(&q);
		return rc;
	}
	if (control_target(dir, cmd, ops, nops, target, &count))
		return 1;
	printf("%s: %" PRIu64 " message%s\n", cmd, count, count == 1 ? "" : "s");
	return count ? 0 : 1;
}

/* ---- shape (after Postfix's qshape) ---- */

#define SHAPE_NB 10
static const unsigned shape_min[SHAPE_NB] = { 5, 10, 20, 40, 80, 160, 320, 640, 1280, 0 };

struct shape_row {
	char     name[256];
	uint64_t total, b[SHAPE_NB];
};

struct shape_ctx {
	bool              by_sender;
	const char       *state;
	uint64_t          now_ns;
	struct shape_row  tot;
	struct shape_row *rows;
	size_t            n, cap;
};

static void shape_add(struct shape_ctx *c, const char *domain, unsigned bucket)
{
	struct shape_row *r = NULL;

	for (size_t i = 0; i < c->n; i++)
		if (!strcasecmp(c->rows[i].name, domain)) {
			r = &c->rows[i];
			break;
		}
	if (!r) {
		if (c->n == c->cap) {
			size_t cap = c->cap ? c->cap * 2 : 64;
			struct shape_row *v = realloc(c->rows, cap * sizeof(*v));

			if (!v)
				return;
			c->rows = v;
			c->cap = cap;
		}
		r = &c->rows[c->n++];
		memset(r, 0, sizeof(*r));
		snprintf(r->name, sizeof(r->name), "%s", domain);
	}
	r->total++;
	r->b[bucket]++;
}

static int shape_one(void *arg, const struct spool_entry *e)
{
	struct shape_ctx *c = arg;
	uint64_t age_min;
	unsigned bucket = SHAPE_NB - 1;

	if (e->done)
		return 0;
	if (c->state) {
		struct list_ctx lc = { .state = c->state };

		if (!list_match(&lc, e))
			return 0;
	}
	age_min = c->now_ns > e->received_ns ? (c->now_ns - e->received_ns) / 60000000000u : 0;
	for (unsigned i = 0; i + 1 < SHAPE_NB; i++)
		if (age_min < shape_min[i]) {
			bucket = i;
			break;
		}
	c->tot.total++;
	c->tot.b[bucket]++;
	if (c->by_sender) {
		const char *at = strrchr(e->mail_from, '@');

		shape_add(c, at ? at + 1 : e->mail_from[0] ? e->mail_from : "MAILER-DAEMON", bucket);
		return 0;
	}
	/* Once per recipient domain still to deliver, as qshape counts. */
	for (uint32_t i = 0; i < e->nrcpt; i++) {
		const char *at = strrchr(e->rcpts[i], '@'), *dom = at ? at + 1 : e->rcpts[i];
		bool seen = false;

		if (e->rcpt_state && e->rcpt_state[i] != SPOOL_RCPT_QUEUED)
			continue;
		for (uint32_t k = 0; k < i && !seen; k++) {
			const char *ak = strrchr(e->rcpts[k], '@');

			seen = (!e->rcpt_state || e->rcpt_state[k] == SPOOL_RCPT_QUEUED) &&
			       !strcasecmp(ak ? ak + 1 : e->rcpts[k], dom);
		}
		if (!seen)
			shape_add(c, dom, bucket);
	}
	return 0;
}

static int shape_cmp(const void *a, const void *b)
{
	const struct shape_row *x = a, *y = b;

	if (x->total != y->total)
		return x->total > y->total ? -1 : 1;
	return strcasecmp(x->name, y->name);
}

static void shape_print(const struct shape_row *r)
{
	printf("%32s %6" PRIu64, r->name, r->total);
	for (unsigned i = 0; i < SHAPE_NB; i++)
		printf(" %5" PRIu64, r->b[i]);
	putchar('\n');
}

static int cmd_shape(const char *dir, int argc, char **argv)
{
	struct shape_ctx c = { .now_ns = now_wall_ns() };
	int rc;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--sender"))
			c.by_sender = true;
		else if (!strcmp(argv[i], "--state") && i + 1 < argc) {
			c.state = argv[++i];
			if (parse_state("shape", c.state, false))
				return 2;
		} else {
			fprintf(stderr, "%s: shape: unknown option %s\n", prog, argv[i]);
			return 2;
		}
	}
	snprintf(c.tot.name, sizeof(c.tot.name), "TOTAL");
	rc = spool_scan(dir, shape_one, &c);
	if (rc < 0) {
		free(c.rows);
		return die_err(rc, "scan", dir);
	}
	printf("%32s %6s", "", "T");
	for (unsigned i = 0; i + 1 < SHAPE_NB; i++)
		printf(" %5u", shape_min[i]);
	printf(" %5u+\n", shape_min[SHAPE_NB - 2]);
	shape_print(&c.tot);
	if (c.n)
		qsort(c.rows, c.n, sizeof(*c.rows), shape_cmp);
	for (size_t i = 0; i < c.n; i++)
		shape_print(&c.rows[i]);
	free(c.rows);
	return 0;
}

/* ---- salvage ---- */

static int read_range(const char *path, uint64_t off, uint64_t len, uint8_t **buf_r)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t *b;
	ssize_t got;

	if (fd < 0)
		return -errno;
	if (len > SPOOL_RECORD_BODY_MAX || !(b = malloc(len ? len : 1))) {
		close(fd);
		return -ENOMEM;
	}
	got = pread(fd, b, len, (off_t)off);
	close(fd);
	if (got != (ssize_t)len) {
		free(b);
		return got < 0 ? -errno : -EIO;
	}
	*buf_r = b;
	return 0;
}

static bool addr_sane(struct slice s, bool null_ok)
{
	bool at = false;

	if (!s.len)
		return null_ok;
	for (size_t i = 0; i < s.len; i++) {
		unsigned char c = (unsigned char)s.p[i];

		if (c <= 0x20 || c == 0x7f || c == '<' || c == '>')
			return false;
		at |= c == '@';
	}
	return at;
}

/* What survived in a damaged range b[0..len) (it starts where the damaged record did): the
 * envelope and body. With an intact header, its lengths say where they are; else the envelope is
 * found by its first three TLVs (role, body type, flags: fixed tags and lengths) and runs to the
 * end of the range less its zero padding, and the body lies between the 64-byte header and it.
 * 0 (env filled, rcpts malloc'd, body slice), or -ENOENT. */
struct salvaged {
	bool                  searched;   /* found by searching (the header was damaged) */
	struct spool_envelope env;
	struct slice         *rcpts;
	uint32_t              nrcpt;
	const uint8_t        *body, *envp;
	size_t                body_len, env_len;
	uint64_t              received_ns;
};

/* Whether p[0..len) is one envelope as the spool writes it: each single field exactly once (an
 * envelope quoted in a body, followed by the real one, has them twice). */
static bool env_single(const uint8_t *p, size_t len)
{
	unsigned seen[SPOOL_TLV_DATA_FLAGS + 1] = { 0 };

	for (size_t o = 0; o + SPOOL_TLV_HDR <= len; ) {
		uint16_t tag = (uint16_t)(p[o] | p[o + 1] << 8);
		uint32_t vlen = (uint32_t)p[o + 2] | (uint32_t)p[o + 3] << 8 |
				(uint32_t)p[o + 4] << 16 | (uint32_t)p[o + 5] << 24;

		if (tag <= SPOOL_TLV_DATA_FLAGS && tag != SPOOL_TLV_RCPT && seen[tag]++)
			return false;
		if (vlen > len - o - SPOOL_TLV_HDR)
			return false;
		o += SPOOL_TLV_HDR + vlen;
	}
	return seen[SPOOL_TLV_ROLE] == 1 && seen[SPOOL_TLV_MAIL_FROM] == 1;
}

static int env_try(const uint8_t *p, size_t len, struct salvaged *s)
{
	uint32_t n = 0;

	if (spool_record_env_decode(p, len, &s->env, NULL, 0, &n) < 0 || n == 0 || n > 100000 ||
	    !env_single(p, len))
		return -ENOENT;
	if (!(s->rcpts = calloc(n, sizeof(*s->rcpts))))
		return -ENOMEM;
	spool_record_env_decode(p, len, &s->env, s->rcpts, n, &n);
	s->nrcpt = n;
	if (!addr_sane(s->env.mail_from, true))
		goto bad;
	for (uint32_t i = 0; i < n; i++)
		if (!addr_sane(s->rcpts[i], false))
			goto bad;
	s->envp = p;
	s->env_len = len;
	return 0;
bad:
	free(s->rcpts);
	s->rcpts = NULL;
	return -ENOENT;
}

static int salvage_parse(const uint8_t *b, size_t len, struct salvaged *s)
{
	static const uint8_t lead[] = { 1, 0, 1, 0, 0, 0 };
	struct spool_record_info info;

	memset(s, 0, sizeof(*s));
	if (len < SPOOL_RECORD_HDR_SIZE)
		return -ENOENT;
	if (spool_record_hdr_decode(b, len, &info) == 0 &&
	    SPOOL_RECORD_HDR_SIZE + info.body_len + info.env_len <= len &&
	    env_try(b + SPOOL_RECORD_HDR_SIZE + info.body_len, info.env_len, s) == 0) {
		s->body = b + SPOOL_RECORD_HDR_SIZE;
		s->body_len = info.body_len;
		s->received_ns = info.received_ns;
		return 0;
	}
	/* The last match wins: a body may quote bytes that look like an envelope's start. */
	for (size_t o = len; o-- > SPOOL_RECORD_HDR_SIZE; ) {
		if (len - o < 3 * (SPOOL_TLV_HDR + 1) || memcmp(b + o, lead, sizeof(lead)) ||
		    b[o + 7] != 2 || b[o + 14] != 3)
			continue;
		for (size_t pad = 0; pad < SPOOL_RECORD_ALIGN && pad < len - o; pad++) {
			bool zeros = true;

			for (size_t k = len - pad; k < len; k++)
				zeros &= b[k] == 0;
			if (zeros && env_try(b + o, len - o - pad, s) == 0) {
				s->body = b + SPOOL_RECORD_HDR_SIZE;
				s->body_len = o - SPOOL_RECORD_HDR_SIZE;
				s->received_ns = s->env.received_ns;
				s->searched = true;
				return 0;
			}
		}
	}
	return -ENOENT;
}

static int write_all(int fd, const void *p, size_t n, uint64_t off)
{
	for (size_t w = 0; w < n; ) {
		ssize_t k = pwrite(fd, (const uint8_t *)p + w, n - w, (off_t)(off + w));

		if (k < 0 && errno != EINTR)
			return -errno;
		if (k > 0)
			w += (size_t)k;
	}
	return 0;
}

static int hw_jrec(void *arg, const struct spool_jrec *j)
{
	uint32_t *hi = arg;
	uint32_t seg = j->event == SPOOL_JEV_HIGHWATER ? (uint32_t)j->arg : SPOOL_QID_SEG(j->qid);

	if (j->arg <= SPOOL_SEG_MAX && seg > *hi && seg <= SPOOL_SEG_MAX)
		*hi = seg;
	return 0;
}

/* The highest segment number the shard ever used (segment files, damaged copies, journals). */
static uint32_t shard_highest(int dfd)
{
	uint32_t hi = 0, *nums;
	size_t n;
	DIR *d;
	struct dirent *de;
	int fd2 = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (spool_dir_list(dfd, "seg-", ".dat", &nums, &n) == 0) {
		if (n)
			hi = nums[n - 1];
		free(nums);
	}
	if (fd2 >= 0 && (d = fdopendir(fd2))) {
		while ((de = readdir(d))) {
			uint32_t s;

			if (sscanf(de->d_name, "seg-%8" SCNx32 ".dat.", &s) == 1 && s > hi &&
			    s <= SPOOL_SEG_MAX)
				hi = s;
		}
		closedir(d);
	} else if (fd2 >= 0) {
		close(fd2);
	}
	if (spool_dir_list(dfd, "journal-", ".log", &nums, &n) == 0) {
		for (size_t i = 0; i < n; i++) {
			char jn[32];
			struct spool_segscan *r = malloc(sizeof(*r));
			int fd;

			spool_journal_name(jn, nums[i]);
			if (r && (fd = openat(dfd, jn, O_RDONLY | O_CLOEXEC)) >= 0) {
				spool_jscan(fd, hw_jrec, &hi, r);
				close(fd);
			}
			free(r);
		}
		free(nums);
	}
	return hi;
}

/* Writes the salvaged message as the only record of a new segment of its shard (the node must
 * be stopped: its next start queues it), then marks the range salvaged. 0 or -errno. */
static int salvage_reinject(const char *dir, const struct damaged *x, const struct salvaged *s,
			    spool_qid *qid_r)
{
	char sd[4096], sn[32], mark[96], dmg[96];
	uint8_t hdr[SPOOL_RECORD_HDR_SIZE], pad[SPOOL_RECORD_ALIGN] = { 0 };
	uint64_t rec_len = spool_record_align(SPOOL_RECORD_HDR_SIZE + s->body_len + s->env_len);
	uint32_t segno;
	spool_qid qid;
	int dfd, fd, rc = 0;

	snprintf(sd, sizeof(sd), "%s/shard-%u", dir, x->shard);
	if ((dfd = open(sd, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	segno = shard_highest(dfd) + 1;
	if (segno > SPOOL_SEG_MAX) {
		close(dfd);
		return -EOVERFLOW;
	}
	qid = spool_qid_make(x->shard, segno, 0);
	spool_seg_name(sn, segno);
	fd = openat(dfd, sn, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0) {
		rc = -errno;
		close(dfd);
		return rc;
	}
	spool_record_hdr_encode(hdr, qid, 0, s->body_len, (uint32_t)s->env_len,
				s->received_ns ? s->received_ns : now_wall_ns(),
				spool_record_payload_sum(s->body, s->body_len, s->envp, s->env_len));
	{
		uint64_t key;

		if (spool_seal_load(dfd, &key) == 0)
			spool_record_hdr_seal(hdr, key);
	}
	if (!rc)
		rc = write_all(fd, hdr, sizeof(hdr), 0);
	if (!rc)
		rc = write_all(fd, s->body, s->body_len, SPOOL_RECORD_HDR_SIZE);
	if (!rc)
		rc = write_all(fd, s->envp, s->env_len, SPOOL_RECORD_HDR_SIZE + s->body_len);
	if (!rc)
		rc = write_all(fd, pad, rec_len - SPOOL_RECORD_HDR_SIZE - s->body_len - s->env_len,
			       SPOOL_RECORD_HDR_SIZE + s->body_len + s->env_len);
	if (!rc && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc) {
		unlinkat(dfd, sn, 0);
		close(dfd);
		return rc;
	}
	if (fsync(dfd) < 0)
		rc = -errno;
	/* Mark it salvaged: the copy is renamed (kept), or an empty marker says so. */
	snprintf(dmg, sizeof(dmg), "seg-%08" PRIx32 ".dat.damaged-%016" PRIx64, x->segno, x->off);
	snprintf(mark, sizeof(mark), "seg-%08" PRIx32 ".dat.salvaged-%016" PRIx64, x->segno, x->off);
	if (!rc && x->copied && renameat(dfd, dmg, dfd, mark) < 0)
		rc = -errno;
	if (!rc && !x->copied) {
		int m = openat(dfd, mark, O_WRONLY | O_CREAT | O_CLOEXEC, 0640);

		if (m < 0)
			rc = -errno;
		else
			close(m);
	}
	if (!rc && fsync(dfd) < 0)
		rc = -errno;
	close(dfd);
	*qid_r = qid;
	return rc;
}

static int cmd_salvage(const char *dir, int argc, char **argv)
{
	struct damaged_list dl = { 0 };
	bool reinject = false;
	unsigned done = 0, lost = 0;
	int worst = 0;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--reinject"))
			reinject = true;
		else {
			fprintf(stderr, "%s: salvage: unknown option %s\n", prog, argv[i]);
			return 2;
		}
	}
	if (reinject) {
		/* The node's own lock (spool_dir/sluice-node.lock), held while we write, so that no
		 * node starts on the spool meanwhile; released when the tool exits. */
		char lock[PATH_MAX];
		pid_t holder = 0;
		int lfd;

		snprintf(lock, sizeof(lock), "%s/sluice-node.lock", dir);
		lfd = pidlock_acquire(lock, &holder);
		if (lfd == -EWOULDBLOCK) {
			fprintf(stderr, "%s: salvage --reinject writes into the spool: stop sluice-node "
				"first (pid %ld holds %s)\n", prog, (long)holder, lock);
			return 1;
		}
		if (lfd < 0) {
			fprintf(stderr, "%s: %s: %s\n", prog, lock, strerror(-lfd));
			return 1;
		}
		if (node_running(dir)) {
			fprintf(stderr, "%s: salvage --reinject writes into the spool: stop sluice-node "
				"first (its control socket %s/control.sock answers)\n", prog, dir);
			return 1;
		}
	}
	damaged_collect(dir, &dl);
	if (!dl.n) {
		printf("no damaged ranges\n");
		free(dl.v);
		return reinject ? 1 : 0;   /* --reinject acted on nothing */
	}
	for (size_t i = 0; i < dl.n; i++) {
		const struct damaged *x = &dl.v[i];
		char path[4200];
		struct salvaged s;
		uint8_t *b = NULL;
		int rc;

		if (x->copied)
			snprintf(path, sizeof(path), "%s/shard-%u/seg-%08" PRIx32 ".dat.damaged-%016"
				 PRIx64, dir, x->shard, x->segno, x->off);
		else
			snprintf(path, sizeof(path), "%s/shard-%u/seg-%08" PRIx32 ".dat", dir,
				 x->shard, x->segno);
		printf("shard-%u/seg-%08" PRIx32 ".dat bytes %" PRIu64 "..%" PRIu64 " (%" PRIu64
		       " bytes)%s%s\n", x->shard, x->segno, x->off, x->off + x->len, x->len,
		       x->copied ? ", copy in " : ", only in the segment",
		       x->copied ? strrchr(path, '/') + 1 : "");
		rc = read_range(path, x->copied ? 0 : x->off, x->len, &b);
		if (rc < 0) {
			printf("  unreadable: %s\n", strerror(-rc));
			worst = 1;
			continue;
		}
		if (salvage_parse(b, x->len, &s) < 0) {
			printf("  envelope lost: cannot be re-injected (the bytes stay for "
			       "inspection)\n");
			lost++;
			free(b);
			continue;
		}
		printf("  sender: %.*s\n", (int)s.env.mail_from.len, s.env.mail_from.p);
		for (uint32_t k = 0; k < s.nrcpt; k++)
			printf("  recipient: %.*s\n", (int)s.rcpts[k].len, s.rcpts[k].p);
		printf("  body: %zu bytes (may hold the damaged byte)\n", s.body_len);
		if (s.searched)
			printf("  (the header was damaged: the envelope was found by searching; check "
			       "it before --reinject)\n");
		if (reinject) {
			spool_qid q = 0;
			char qs[SPOOL_QID_STRLEN + 1];

			rc = salvage_reinject(dir, x, &s, &q);
			if (rc < 0) {
				printf("  re-inject failed: %s\n", strerror(-rc));
				worst = 1;
			} else {
				spool_qid_format(q, qs);
				printf("  re-injected as %s (queued at the next start)\n", qs);
				done++;
			}
		}
		free(s.rcpts);
		free(b);
	}
	printf("%zu damaged range%s, %u with the envelope lost%s", dl.n, dl.n == 1 ? "" : "s",
	       lost, reinject ? "" : "\n");
	if (reinject)
		printf(", %u re-injected\n", done);
	free(dl.v);
	if (reinject && done == 0)
		return 1;   /* acted on nothing */
	return worst;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dir = DEFAULT_SPOOL_DIR, *cmd;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "+d:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'd':
			dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("sluice-queue %s\n", SLUICE_VERSION);
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
	if (!strcmp(cmd, "help")) {
		usage(stdout);
		return 0;
	}
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
		return cmd_show(dir, argc, argv, false);
	if (!strcmp(cmd, "body"))
		return cmd_show(dir, argc, argv, true);
	if (!strcmp(cmd, "flush") || !strcmp(cmd, "hold") || !strcmp(cmd, "release") ||
	    !strcmp(cmd, "delete") || !strcmp(cmd, "bounce") || !strcmp(cmd, "requeue"))
		return cmd_control(dir, cmd, argc, argv);
	if (!strcmp(cmd, "shape"))
		return cmd_shape(dir, argc, argv);
	if (!strcmp(cmd, "salvage"))
		return cmd_salvage(dir, argc, argv);
	if (!strcmp(cmd, "stats") && argc == 1 && !strcmp(argv[0], "--shards"))
		return cmd_stats(dir, true);
	if (!strcmp(cmd, "ids") || !strcmp(cmd, "stats")) {
		if (argc) {
			fprintf(stderr, "%s: %s takes no arguments\n", prog, cmd);
			return 2;
		}
		if (!strcmp(cmd, "stats"))
			return cmd_stats(dir, false);
		rc = spool_scan(dir, ids_one, NULL);
		return rc < 0 ? die_err(rc, "scan", dir) : 0;
	}
	fprintf(stderr, "%s: unknown command %s\n", prog, cmd);
	usage(stderr);
	return 2;
}
