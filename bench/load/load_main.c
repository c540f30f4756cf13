/*
 * load_main.c - sluice-load: options, worker threads, and the report (a table on stdout and,
 * with --json, a JSON object in a file). See usage() for the modes and options.
 *
 * The main thread parses, prepares the message bodies, starts the workers, waits (signals,
 * the idle hold, the sink's lifetime), joins them and merges their statistics. Workers share
 * nothing mutable but the atomics in struct load_run.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/err.h>

#include "load.h"
#include "sluice_build.h"

static struct load_run the_run;

static void usage(FILE *f)
{
	fputs(
"usage: sluice-load [send] --server ADDR:PORT [options]   send messages\n"
"       sluice-load idle --server ADDR:PORT --connections N --hold SECONDS [options]\n"
"       sluice-load sink --listen ADDR:PORT [--listen ...] [options]\n"
"       sluice-load --help | --version\n"
"\n"
"send:\n"
"  -c, --concurrency N     concurrent sessions (default 10)\n"
"  -n, --messages N        stop after N messages (default 1000 unless --duration)\n"
"  -d, --duration SECONDS  stop starting messages after this long\n"
"  -m, --per-conn N        messages per connection, 0 = unlimited (default 0)\n"
"  -r, --rcpts N           recipients per message (default 1, at most 100)\n"
"  -s, --size BYTES        fixed message size (default 4096), or\n"
"      --corpus PATH       message bodies from a corpus (.tar.gz or directory)\n"
"      --rate N            target messages/s over all sessions (default: open throttle)\n"
"      --starttls          STARTTLS before the first message of each connection\n"
"      --no-pipelining     one command at a time even when PIPELINING is offered\n"
"      --from ADDR         envelope sender (default load@sluice-load.test)\n"
"      --rcpt-domain D     recipients are rcptN@D (default bench.test)\n"
"      --id-prefix P       Message-ID is <P.worker.seq@sluice-load> (default: pid and time)\n"
"      --record FILE       append \"message-id TAB reply-code\" per message (flushed)\n"
"      --record-hash       add \"TAB sha256-of-body\" to each record line\n"
"      --drain SECONDS     time for open sessions to finish after the end (default 30)\n"
"idle:\n"
"      --connections N     connections to open and hold\n"
"  -c, --concurrency N     connections being opened at once (default 100)\n"
"      --hold SECONDS      how long to hold them once all are open (default 10)\n"
"      --open-timeout S    give up on connections not held after S seconds (default 30)\n"
"sink:\n"
"      --listen ADDR:PORT  where to accept (repeatable)\n"
"      --tls-cert FILE, --tls-key FILE   offer STARTTLS\n"
"      --record FILE       append \"message-id TAB sha256-of-body\" per message (flushed)\n"
"  -n, --messages N        exit after N messages per worker (default: run until signalled)\n"
"  -d, --duration SECONDS  exit after this long\n"
"      --hostname NAME     banner and EHLO name (default sink.sluice-load.test)\n"
"common:\n"
"      --source LIST       client source addresses: A,B,... or A-B (IPv4 range)\n"
"      --helo NAME         EHLO name (default load.sluice-load.test)\n"
"  -t, --threads N         worker threads, one io_uring ring each (default 1)\n"
"      --ready-file FILE   idle, sink: written once holding / listening\n"
"      --json FILE         write the report as JSON\n"
"  -q, --quiet             no table\n", f);
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_store(&the_run.stop, true);
}

static int parse_sources(struct load_opts *o, const char *arg)
{
	char buf[1024];
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", arg);
	for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *dash = strchr(tok, '-');
		if (dash != NULL) {
			struct in_addr a, b;
			*dash = 0;
			if (inet_pton(AF_INET, tok, &a) != 1 || inet_pton(AF_INET, dash + 1, &b) != 1)
				return -EINVAL;
			for (uint32_t x = ntohl(a.s_addr); x <= ntohl(b.s_addr); x++) {
				char t[32];
				struct in_addr c = { htonl(x) };
				if (o->nsources == LOAD_MAX_SOURCES)
					return -E2BIG;
				inet_ntop(AF_INET, &c, t, sizeof(t));
				strcat(t, ":0");
				if (load_parse_addr(t, &o->sources[o->nsources++]) < 0)
					return -EINVAL;
			}
		} else {
			char t[80];
			if (o->nsources == LOAD_MAX_SOURCES)
				return -E2BIG;
			snprintf(t, sizeof(t), strchr(tok, ':') ? "[%s]:0" : "%s:0", tok);
			if (load_parse_addr(t, &o->sources[o->nsources++]) < 0)
				return -EINVAL;
		}
	}
	return 0;
}

static int parse_args(struct load_opts *o, int argc, char **argv)
{
	enum { O_CORPUS = 256, O_RATE, O_STARTTLS, O_NOPIPE, O_FROM, O_RDOM, O_IDP, O_RECORD,
	       O_RECHASH, O_DRAIN, O_CONNS, O_HOLD, O_LISTEN, O_CERT, O_KEY, O_HOST, O_SOURCE,
	       O_HELO, O_READY, O_JSON, O_SERVER, O_OPENTO };
	static const struct option lo[] = {
		{ "server", required_argument, NULL, O_SERVER },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "messages", required_argument, NULL, 'n' },
		{ "duration", required_argument, NULL, 'd' },
		{ "per-conn", required_argument, NULL, 'm' },
		{ "rcpts", required_argument, NULL, 'r' },
		{ "size", required_argument, NULL, 's' },
		{ "threads", required_argument, NULL, 't' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "corpus", required_argument, NULL, O_CORPUS },
		{ "rate", required_argument, NULL, O_RATE },
		{ "starttls", no_argument, NULL, O_STARTTLS },
		{ "no-pipelining", no_argument, NULL, O_NOPIPE },
		{ "from", required_argument, NULL, O_FROM },
		{ "rcpt-domain", required_argument, NULL, O_RDOM },
		{ "id-prefix", required_argument, NULL, O_IDP },
		{ "record", required_argument, NULL, O_RECORD },
		{ "record-hash", no_argument, NULL, O_RECHASH },
		{ "drain", required_argument, NULL, O_DRAIN },
		{ "connections", required_argument, NULL, O_CONNS },
		{ "hold", required_argument, NULL, O_HOLD },
		{ "open-timeout", required_argument, NULL, O_OPENTO },
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "tls-cert", required_argument, NULL, O_CERT },
		{ "tls-key", required_argument, NULL, O_KEY },
		{ "hostname", required_argument, NULL, O_HOST },
		{ "source", required_argument, NULL, O_SOURCE },
		{ "helo", required_argument, NULL, O_HELO },
		{ "ready-file", required_argument, NULL, O_READY },
		{ "json", required_argument, NULL, O_JSON },
		{ 0 },
	};
	static char idp[64];
	bool have_server = false, concurrency_set = false;
	int c;

	o->mode = LOAD_SEND;
	if (argc > 1 && argv[1][0] != '-') {
		if (!strcmp(argv[1], "send"))
			o->mode = LOAD_SEND;
		else if (!strcmp(argv[1], "idle"))
			o->mode = LOAD_IDLE;
		else if (!strcmp(argv[1], "sink"))
			o->mode = LOAD_SINK;
		else {
			fprintf(stderr, "sluice-load: unknown mode %s\n", argv[1]);
			return -EINVAL;
		}
		argv++;
		argc--;
	}
	o->threads = 1;
	o->concurrency = 10;
	o->rcpts = 1;
	o->size = 4096;
	o->pipelining = true;
	o->from = "load@sluice-load.test";
	o->rcpt_domain = "bench.test";
	o->helo = "load.sluice-load.test";
	o->hostname = "sink.sluice-load.test";
	o->drain_timeout = 30;
	o->hold = 10;
	o->open_timeout = 30;
	snprintf(idp, sizeof(idp), "sl%d.%ld", (int)getpid(), (long)time(NULL));
	o->id_prefix = idp;
	while ((c = getopt_long(argc, argv, "c:n:d:m:r:s:t:qh", lo, NULL)) != -1) {
		switch (c) {
		case O_SERVER:
			if (load_parse_addr(optarg, &o->server) < 0) {
				fprintf(stderr, "sluice-load: bad address %s\n", optarg);
				return -EINVAL;
			}
			have_server = true;
			break;
		case 'c': o->concurrency = (unsigned)strtoul(optarg, NULL, 10); concurrency_set = true; break;
		case 'n': o->messages = strtoull(optarg, NULL, 10); break;
		case 'd': o->duration = strtod(optarg, NULL); break;
		case 'm': o->per_conn = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'r': o->rcpts = (unsigned)strtoul(optarg, NULL, 10); break;
		case 's': o->size = strtoull(optarg, NULL, 10); break;
		case 't': o->threads = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'q': o->quiet = true; break;
		case 'h': usage(stdout); exit(0);
		case O_CORPUS: o->corpus = optarg; break;
		case O_RATE: o->rate = strtod(optarg, NULL); break;
		case O_STARTTLS: o->starttls = true; break;
		case O_NOPIPE: o->pipelining = false; break;
		case O_FROM: o->from = optarg; break;
		case O_RDOM: o->rcpt_domain = optarg; break;
		case O_IDP: o->id_prefix = optarg; break;
		case O_RECORD: o->record = optarg; break;
		case O_RECHASH: o->record_hash = true; break;
		case O_DRAIN: o->drain_timeout = strtod(optarg, NULL); break;
		case O_CONNS: o->connections = (unsigned)strtoul(optarg, NULL, 10); break;
		case O_HOLD: o->hold = strtod(optarg, NULL); break;
		case O_OPENTO: o->open_timeout = strtod(optarg, NULL); break;
		case O_LISTEN:
			if (o->nlisten == LOAD_MAX_LISTEN || load_parse_addr(optarg, &o->listen[o->nlisten]) < 0) {
				fprintf(stderr, "sluice-load: bad or too many --listen %s\n", optarg);
				return -EINVAL;
			}
			o->nlisten++;
			break;
		case O_CERT: o->tls_cert = optarg; break;
		case O_KEY: o->tls_key = optarg; break;
		case O_HOST: o->hostname = optarg; break;
		case O_SOURCE:
			if (parse_sources(o, optarg) < 0) {
				fprintf(stderr, "sluice-load: bad --source %s\n", optarg);
				return -EINVAL;
			}
			break;
		case O_HELO: o->helo = optarg; break;
		case O_READY: o->ready_file = optarg; break;
		case O_JSON: o->json = optarg; break;
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "sluice-load: unexpected argument %s\n", argv[optind]);
		return -EINVAL;
	}
	if (o->threads == 0 || o->threads > LOAD_MAX_THREADS || o->rcpts == 0 || o->rcpts > 100) {
		fprintf(stderr, "sluice-load: --threads 1..%u, --rcpts 1..100\n", LOAD_MAX_THREADS);
		return -EINVAL;
	}
	if (o->mode == LOAD_SINK) {
		if (o->nlisten == 0) {
			fprintf(stderr, "sluice-load: sink needs --listen\n");
			return -EINVAL;
		}
		return 0;
	}
	if (!have_server) {
		fprintf(stderr, "sluice-load: needs --server ADDR:PORT\n");
		return -EINVAL;
	}
	if (o->mode == LOAD_IDLE) {
		if (!concurrency_set)
			o->concurrency = 100;
		if (o->connections == 0) {
			fprintf(stderr, "sluice-load: idle needs --connections N\n");
			return -EINVAL;
		}
		/* Each worker opens up to `concurrency` at once. */
		o->concurrency = (o->concurrency + o->threads - 1) / o->threads;
		return 0;
	}
	if (o->messages == 0 && o->duration <= 0)
		o->messages = 1000;
	if (o->concurrency == 0 || o->concurrency < o->threads) {
		fprintf(stderr, "sluice-load: --concurrency must be at least --threads\n");
		return -EINVAL;
	}
	return 0;
}

static void *worker_main(void *arg)
{
	struct load_worker *w = arg;

	w->err = w->run->o.mode == LOAD_SINK ? load_sink_run(w) : load_client_run(w);
	return NULL;
}

static void merge(struct load_stats *t, const struct load_stats *s)
{
	const uint64_t *a = (const uint64_t *)s;
	uint64_t *b = (uint64_t *)t;

	/* Every field up to first_ns is a counter. */
	for (size_t i = 0; i < offsetof(struct load_stats, first_ns) / sizeof(uint64_t); i++)
		b[i] += a[i];
	if (s->first_ns && (t->first_ns == 0 || s->first_ns < t->first_ns))
		t->first_ns = s->first_ns;
	if (s->last_ns > t->last_ns)
		t->last_ns = s->last_ns;
	for (int st = 0; st < LOAD_ST_COUNT; st++)
		for (int c = 0; c < 600; c++)
			t->replies[st][c] += s->replies[st][c];
	for (int l = 0; l < LOAD_LAT_COUNT; l++)
		load_samples_merge(&t->lat[l], &s->lat[l]);
}

static const char *const lat_names[LOAD_LAT_COUNT] = { "connect", "banner", "data_to_250" };

static void report(struct load_run *run, struct load_stats *t, double elapsed, double held_rss_note)
{
	const struct load_opts *o = &run->o;
	FILE *j = NULL;
	static const double qs[] = { 0.5, 0.9, 0.99, 0.999, 1.0 };
	static const char *const qn[] = { "p50", "p90", "p99", "p999", "max" };
	const char *mode = o->mode == LOAD_SEND ? "send" : o->mode == LOAD_IDLE ? "idle" : "sink";
	uint64_t msgs = o->mode == LOAD_SINK ? t->sink_msgs : t->msgs_ok;
	uint64_t bytes = o->mode == LOAD_SINK ? t->sink_bytes : t->bytes_ok;
	uint64_t conns = o->mode == LOAD_SINK ? t->sink_conns : t->conns_ok;
	double mps = elapsed > 0 ? (double)msgs / elapsed : 0;
	double mbs = elapsed > 0 ? (double)bytes / elapsed / 1e6 : 0;
	double cps = elapsed > 0 ? (double)conns / elapsed : 0;
	(void)held_rss_note;

	if (!o->quiet) {
		if (o->mode == LOAD_SINK)
			printf("sluice-load sink on %s (%u threads, ring %s)\n", o->listen[0].text,
			       o->threads, load_ring_flags_str(run->ring_flags));
		else
			printf("sluice-load %s to %s: %u sessions, %u threads, pipelining %s, tls %s, ring %s\n",
			       mode, o->server.text, o->mode == LOAD_IDLE ? o->connections : o->concurrency,
			       o->threads, o->pipelining ? "on" : "off", o->starttls ? "on" : "off",
			       load_ring_flags_str(run->ring_flags));
		printf("  elapsed          %10.3f s\n", elapsed);
		printf("  messages ok      %10llu   %10.1f msg/s   %8.2f MB/s\n",
		       (unsigned long long)msgs, mps, mbs);
		if (o->mode == LOAD_SEND)
			printf("  messages failed  %10llu\n", (unsigned long long)t->msgs_failed);
		printf("  connections      %10llu   %10.1f conn/s   failed %llu, closed early %llu\n",
		       (unsigned long long)conns, cps, (unsigned long long)t->conns_failed,
		       (unsigned long long)t->conns_closed_early);
		if (o->starttls || o->tls_cert)
			printf("  tls handshakes   %10llu   failed %llu\n", (unsigned long long)t->tls_ok,
			       (unsigned long long)t->tls_failed);
		if (o->mode == LOAD_IDLE)
			printf("  idle held        %10llu\n", (unsigned long long)t->idle_held);
		if (o->mode == LOAD_SINK)
			printf("  commands         %10llu   bad %llu\n", (unsigned long long)t->sink_cmds,
			       (unsigned long long)t->sink_bad_cmds);
		if (o->mode != LOAD_SINK) {
			printf("  latency ms           p50       p90       p99     p99.9       max         n\n");
			for (int l = 0; l < LOAD_LAT_COUNT; l++) {
				printf("  %-14s", lat_names[l]);
				for (int q = 0; q < 5; q++)
					printf(" %9.3f", load_samples_pct(&t->lat[l], qs[q]));
				printf(" %9zu\n", t->lat[l].n);
			}
		}
		bool any = false;
		for (int st = 0; st < LOAD_ST_COUNT; st++)
			for (int c = 0; c < 600; c++)
				if (t->replies[st][c]) {
					if (!any)
						printf("  replies not as expected (stage code count; code 0 = no reply):\n");
					any = true;
					printf("    %-9s %03d %llu\n", load_stage_names[st], c,
					       (unsigned long long)t->replies[st][c]);
				}
		if (t->protocol_errors)
			printf("  protocol errors  %10llu\n", (unsigned long long)t->protocol_errors);
		fflush(stdout);
	}
	if (o->json == NULL)
		return;
	if ((j = fopen(o->json, "w")) == NULL) {
		perror(o->json);
		return;
	}
	fprintf(j, "{\n  \"tool\": \"sluice-load\", \"mode\": \"%s\", \"target\": \"%s\",\n", mode,
		o->mode == LOAD_SINK ? o->listen[0].text : o->server.text);
	fprintf(j, "  \"threads\": %u, \"concurrency\": %u, \"pipelining\": %s, \"starttls\": %s, "
		"\"rcpts\": %u, \"per_conn\": %u, \"rate\": %g, \"ring\": \"%s\",\n", o->threads,
		o->mode == LOAD_IDLE ? o->connections : o->concurrency, o->pipelining ? "true" : "false",
		o->starttls ? "true" : "false", o->rcpts, o->per_conn, o->rate,
		load_ring_flags_str(run->ring_flags));
	fprintf(j, "  \"elapsed_s\": %.6f, \"messages_ok\": %llu, \"messages_failed\": %llu, "
		"\"bytes_ok\": %llu,\n", elapsed, (unsigned long long)msgs,
		(unsigned long long)t->msgs_failed, (unsigned long long)bytes);
	fprintf(j, "  \"msgs_per_s\": %.3f, \"mb_per_s\": %.3f, \"connections\": %llu, "
		"\"conn_per_s\": %.3f, \"conns_failed\": %llu, \"conns_closed_early\": %llu,\n", mps, mbs,
		(unsigned long long)conns, cps, (unsigned long long)t->conns_failed,
		(unsigned long long)t->conns_closed_early);
	fprintf(j, "  \"rcpts_ok\": %llu, \"rcpts_failed\": %llu, \"tls_ok\": %llu, \"tls_failed\": %llu, "
		"\"idle_held\": %llu, \"protocol_errors\": %llu, \"sink_commands\": %llu, "
		"\"sink_bad_commands\": %llu,\n", (unsigned long long)t->rcpts_ok,
		(unsigned long long)t->rcpts_failed, (unsigned long long)t->tls_ok,
		(unsigned long long)t->tls_failed, (unsigned long long)t->idle_held,
		(unsigned long long)t->protocol_errors, (unsigned long long)t->sink_cmds,
		(unsigned long long)t->sink_bad_cmds);
	fprintf(j, "  \"latency_ms\": {");
	for (int l = 0; l < LOAD_LAT_COUNT; l++) {
		fprintf(j, "%s\n    \"%s\": {", l ? "," : "", lat_names[l]);
		for (int q = 0; q < 5; q++)
			fprintf(j, "\"%s\": %.4f, ", qn[q], load_samples_pct(&t->lat[l], qs[q]));
		fprintf(j, "\"n\": %zu}", t->lat[l].n);
	}
	fprintf(j, "\n  },\n  \"replies\": {");
	bool first = true;
	for (int st = 0; st < LOAD_ST_COUNT; st++)
		for (int c = 0; c < 600; c++)
			if (t->replies[st][c]) {
				fprintf(j, "%s\"%s %03d\": %llu", first ? "" : ", ", load_stage_names[st], c,
					(unsigned long long)t->replies[st][c]);
				first = false;
			}
	fprintf(j, "}\n}\n");
	fclose(j);
}

static void write_ready(const char *path, const char *what)
{
	if (path != NULL) {
		FILE *f = fopen(path, "w");
		if (f != NULL) {
			fprintf(f, "%s\n", what);
			fclose(f);
		}
	}
}

int main(int argc, char **argv)
{
	struct load_run *run = &the_run;
	struct load_opts *o = &run->o;
	struct load_worker *w;
	struct sigaction sa = { .sa_handler = on_signal };
	struct rlimit rl;
	int rc = 0;

	if (argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
		printf("sluice-load %s\n", SLUICE_VERSION);
		return 0;
	}
	if (parse_args(o, argc, argv) < 0)
		return 2;
	/* As many descriptors as we may: idle holds thousands of connections. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	run->record_fd = -1;
	if (o->record != NULL &&
	    (run->record_fd = open(o->record, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644)) < 0) {
		perror(o->record);
		return 1;
	}
	if (o->mode == LOAD_SEND && load_msg_prepare(run) < 0)
		return 1;
	if (o->starttls) {
		run->tls_client = SSL_CTX_new(TLS_client_method());
		if (run->tls_client == NULL)
			return 1;
		SSL_CTX_set_verify(run->tls_client, SSL_VERIFY_NONE, NULL);
	}
	if (o->tls_cert != NULL) {
		run->tls_server = SSL_CTX_new(TLS_server_method());
		if (run->tls_server == NULL ||
		    SSL_CTX_use_certificate_chain_file(run->tls_server, o->tls_cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(run->tls_server, o->tls_key ? o->tls_key : o->tls_cert,
						SSL_FILETYPE_PEM) != 1) {
			char e[256];
			ERR_error_string_n(ERR_get_error(), e, sizeof(e));
			fprintf(stderr, "sluice-load: TLS certificate %s: %s\n", o->tls_cert, e);
			return 1;
		}
	}
	w = calloc(o->threads, sizeof(*w));
	if (w == NULL)
		return 1;
	run->t0_ns = load_now_ns();
	for (unsigned i = 0; i < o->threads; i++) {
		w[i].run = run;
		w[i].id = i;
		w[i].rec.fd = run->record_fd;
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
			fprintf(stderr, "sluice-load: cannot start thread %u\n", i);
			atomic_store(&run->stop, true);
			o->threads = i;
			rc = 1;
			break;
		}
	}
	if (o->mode == LOAD_IDLE) {
		while (atomic_load(&run->idle_done) < o->threads && !atomic_load(&run->stop))
			usleep(20000);
		uint64_t held = atomic_load(&run->idle_ready);
		fprintf(stderr, "sluice-load: idle: %llu connections held\n", (unsigned long long)held);
		char what[64];
		snprintf(what, sizeof(what), "%llu", (unsigned long long)held);
		write_ready(o->ready_file, what);
		uint64_t until = load_now_ns() + (uint64_t)(o->hold * 1e9);
		while (load_now_ns() < until && !atomic_load(&run->stop))
			usleep(20000);
		atomic_store(&run->stop, true);
	} else if (o->mode == LOAD_SINK) {
		while (atomic_load(&run->idle_done) < o->threads)
			usleep(5000);
		if (!atomic_load(&run->stop)) {
			fprintf(stderr, "sluice-load: sink ready on %s\n", o->listen[0].text);
			write_ready(o->ready_file, "ready");
		}
		uint64_t until = o->duration > 0 ? load_now_ns() + (uint64_t)(o->duration * 1e9) : UINT64_MAX;
		while (!atomic_load(&run->stop) && load_now_ns() < until)
			usleep(20000);
		atomic_store(&run->stop, true);
	}
	struct load_stats *tot = calloc(1, sizeof(*tot));
	if (tot == NULL)
		return 1;
	for (unsigned i = 0; i < o->threads; i++) {
		pthread_join(w[i].thread, NULL);
		if (w[i].err < 0)
			rc = 1;
		merge(tot, &w[i].st);
	}
	uint64_t end = tot->last_ns ? tot->last_ns : load_now_ns();
	double elapsed = (double)(end - run->t0_ns) / 1e9;
	if (o->mode == LOAD_SINK)
		elapsed = tot->first_ns && tot->last_ns > tot->first_ns ?
			(double)(tot->last_ns - tot->first_ns) / 1e9 : 0;
	report(run, tot, elapsed, 0);
	if (o->mode == LOAD_SEND && (tot->msgs_failed > 0 || tot->protocol_errors > 0))
		rc = rc ? rc : 3;   /* the run completed, but not every message got a 2xx */
	if (o->mode == LOAD_IDLE && tot->idle_held < o->connections)
		rc = rc ? rc : 3;
	if (run->record_fd >= 0)
		close(run->record_fd);
	for (unsigned i = 0; i < o->threads; i++) {
		for (int l = 0; l < LOAD_LAT_COUNT; l++)
			load_samples_free(&w[i].st.lat[l]);
		free(w[i].rec.buf);
	}
	for (int l = 0; l < LOAD_LAT_COUNT; l++)
		load_samples_free(&tot->lat[l]);
	free(tot);
	free(w);
	load_msg_free(run);
	SSL_CTX_free(run->tls_client);
	SSL_CTX_free(run->tls_server);
	return rc;
}
