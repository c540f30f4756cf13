/*
 * fuzz_session.c - libFuzzer target for a whole inbound SMTP session through the real session
 * code: the shard loop on io_uring, the listener, smtp_session.c and every command, STARTTLS and
 * its handshake, DATA/BDAT into a real spool (a temporary directory).
 *
 * One shard thread runs for the life of the process, as in sluice-node; each input is one client
 * connection over loopback TCP. Input:
 *   byte 0, bit 0: after the first STARTTLS line, finish a real TLS handshake (OpenSSL client)
 *                  and send the rest encrypted; otherwise the rest goes as it is, which puts
 *                  plain text or garbage where the server expects a ClientHello (the remote
 *                  crash of issue 14);
 *   byte 0, bit 1: close abruptly (RST) instead of a clean end of input;
 *   the rest:      the client's bytes; each "\xff\xff" is a packet boundary (a separate send).
 * Checks: the node survives (ASan/UBSan abort the process on any memory error), and after the
 * client's end of input the server closes the connection within a bound (no session is left
 * hanging on an event that will never come).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "conf/node_config.h"
#include "net/iplimit.h"
#include "net/listener.h"
#include "shard/shard.h"
#include "smtp/smtp_session.h"
#include "spool/spool.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CLOSE_BOUND_S 20      /* the server must close within this after our EOF */

static struct shard fuzz_shard;
static struct sockaddr_in fuzz_addr;
static SSL_CTX *fuzz_client_ctx;

static void fuzz_spool_cqe(struct shard *sh, const struct io_uring_cqe *cqe)
{
	spool_handle_cqe(sh->spool, cqe);
}

static int fuzz_shard_start(struct shard *sh)
{
	const struct node_config *c = sh->conf;
	struct spool_conf sc = {
		.dir = c->spool_dir,
		.shard_id = sh->id,
		.segment_size = c->spool.segment_size,
		.spill_bytes = c->spool.spill_size,
		.min_free_bytes = c->spool.min_free,          /* 0 in the fuzzer's file */
		.commit_delay_us = c->spool.commit_delay_us,  /* 0: every message syncs at once */
	};
	int r;

	pool_init(&sh->sessions, sizeof(struct smtp_session), c->snap.shard.max_sessions);
	r = spool_open(&sh->spool, &sc, &sh->ring, SHARD_OP_SPOOL);
	if (r < 0)
		return r;
	listener_arm_all(sh);
	return 0;
}

static void fuzz_shard_turn(struct shard *sh)
{
	spool_set_siblings(sh->spool, false);
	spool_flush(sh->spool);
}

static void fuzz_shard_nop(struct shard *sh) { (void)sh; }
static bool fuzz_shard_idle(struct shard *sh) { (void)sh; return true; }

static const struct shard_hooks fuzz_hooks = {
	.start = fuzz_shard_start,
	.turn = fuzz_shard_turn,
	.stop = fuzz_shard_nop,
	.idle = fuzz_shard_idle,
	.abort = fuzz_shard_nop,
	.finish = fuzz_shard_nop,   /* no consumer on the spool: nothing is relayed, it stays */
};

static void die(const char *what)
{
	fprintf(stderr, "fuzz_session: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint16_t free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		die("free port");
	close(fd);
	return ntohs(a.sin_port);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char dir[] = "/tmp/sluice-fuzz-session-XXXXXX", path[512], cmd[1024], err[1024];
	struct node_config *conf;
	uint16_t port = free_port();
	FILE *f;
	int fd;

	(void)argc; (void)argv;
	/* SSL_write and SSL_shutdown write to a socket the server may have closed: without this a
	 * SIGPIPE would end the fuzzer silently. */
	signal(SIGPIPE, SIG_IGN);
	if (mkdtemp(dir) == NULL)
		die("mkdtemp");
	snprintf(cmd, sizeof(cmd), "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s/key.pem "
		 "-out %s/cert.pem -days 2 -subj /CN=mx.test >/dev/null 2>&1", dir, dir);
	if (system(cmd) != 0)
		die("openssl req");
	snprintf(path, sizeof(path), "%s/node.ini", dir);
	f = fopen(path, "w");
	if (f == NULL)
		die(path);
	fprintf(f, "[node]\nname = fuzz\nhostname = mx.test\nspool_dir = %s/spool\nshards = 1\n"
		   "log_level = error\n"
		   "[limits]\nmessage_size = 64K\nerrors = 20\nidle_timeout = 5s\nrecipients = 8\n"
		   "header_count = 50\nheader_size = 8K\n"
		   "[spool]\nsegment_size = 1M\nmin_free = 0\ncommit_delay = 0\n"
		   "[tls]\ncert = %s/cert.pem\nkey = %s/key.pem\n"
		   "[listen p]\naddress = 127.0.0.1:%u\nrole = primary\n"
		   "[domain example.test]\nroute = 127.0.0.1:9\n", dir, dir, dir, port);
	fclose(f);
	snprintf(path, sizeof(path), "%s/spool", dir);
	mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/node.ini", dir);
	if (node_config_load(path, &conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz_session: %s\n", err);
		exit(1);
	}
	log_set_level(LOG_ERROR);
	if (iplimit_init(10) < 0)
		die("iplimit");
	listener_setup(smtp_session_start);
	smtp_session_setup();
	shard_set_handler(SHARD_OP_SPOOL, fuzz_spool_cqe);
	shard_set_hooks(&fuzz_hooks);
	fd = listener_open(&conf->listen[0].addr, conf->listen[0].addrlen, 128);
	if (fd < 0) {
		errno = -fd;
		die("listener_open");
	}
	if (shard_start(&fuzz_shard, 0, -1, conf, &fd, 1) < 0)
		die("shard_start");
	memcpy(&fuzz_addr, &conf->listen[0].addr, sizeof(fuzz_addr));
	node_config_unref(&conf);

	fuzz_client_ctx = SSL_CTX_new(TLS_client_method());
	if (fuzz_client_ctx == NULL)
		die("SSL_CTX_new");
	SSL_CTX_set_verify(fuzz_client_ctx, SSL_VERIFY_NONE, NULL);
	return 0;
}

/* The next packet: up to the next "\xff\xff" (or the end). */
static size_t next_packet(const uint8_t *p, size_t len, size_t *skip_r)
{
	for (size_t i = 0; i + 1 < len; i++)
		if (p[i] == 0xff && p[i + 1] == 0xff) {
			*skip_r = 2;
			return i;
		}
	*skip_r = 0;
	return len;
}

static void send_all(int fd, SSL *ssl, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = ssl != NULL ? SSL_write(ssl, p, (int)len) : send(fd, p, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;          /* the server closed: fine, it may */
		p += n;
		len -= (size_t)n;
	}
}

/* Reads until the STARTTLS reply ("220 2.0.0") has come, or the server stops talking (on
 * loopback its replies come at once: a short wait tells a refused STARTTLS). */
static bool wait_starttls_reply(int fd)
{
	struct timeval quick = { .tv_usec = 100000 }, normal = { .tv_sec = 2 };
	char buf[4096];
	size_t have = 0;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &quick, sizeof(quick));
	for (;;) {
		ssize_t n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);

		if (n <= 0)
			return false;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &normal, sizeof(normal));
		have += (size_t)n;
		buf[have] = '\0';
		if (strstr(buf, "220 2.0.0") != NULL)
			return true;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &quick, sizeof(quick));
		if (have > sizeof(buf) / 2) {      /* keep the tail */
			memmove(buf, buf + have - 64, 64);
			have = 64;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct timeval tv = { .tv_sec = 2 };
	bool real_tls, rst;
	const uint8_t *p;
	size_t len;
	SSL *ssl = NULL;
	int fd, one = 1;
	char buf[65536];

	if (size < 1)
		return 0;
	real_tls = data[0] & 1;
	rst = data[0] & 2;
	p = data + 1;
	len = size - 1;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		die("socket");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&fuzz_addr, sizeof(fuzz_addr)) < 0) {
		/* A signal (libFuzzer's timers) may cut a blocking connect short; the connection
		 * goes on in the kernel: wait for it and take its outcome. */
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		int err = 0;
		socklen_t elen = sizeof(err);

		if (errno != EINTR)
			die("connect");
		while (poll(&pfd, 1, 5000) < 0 && errno == EINTR)
			;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0 || err != 0) {
			errno = err;
			die("connect");
		}
	}

	while (len > 0) {
		size_t skip, n = next_packet(p, len, &skip);
		const uint8_t *tls_at = NULL;

		if (real_tls && ssl == NULL)
			tls_at = memmem(p, n, "STARTTLS\r\n", 10);
		if (tls_at != NULL) {
			size_t head = (size_t)(tls_at - p) + 10;

			send_all(fd, NULL, p, head);
			p += head;
			len -= head;
			if (!wait_starttls_reply(fd))
				break;
			ssl = SSL_new(fuzz_client_ctx);
			SSL_set_fd(ssl, fd);
			if (SSL_connect(ssl) != 1) {
				ERR_clear_error();
				break;
			}
			continue;
		}
		send_all(fd, ssl, p, n);
		p += n + skip;
		len -= n + skip;
	}

	if (rst) {
		struct linger lg = { .l_onoff = 1, .l_linger = 0 };

		setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	} else {
		/* Our end of input: the server must close within the bound, whatever state it is
		 * in (a message being committed finishes first). */
		time_t until = time(NULL) + FUZZ_CLOSE_BOUND_S;

		if (ssl != NULL)
			SSL_shutdown(ssl);
		shutdown(fd, SHUT_WR);
		for (;;) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);

			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
				       errno != EINTR))
				break;
			if (time(NULL) > until) {
				fprintf(stderr, "fuzz_session: the server did not close the connection "
					"within %d s of the client's end of input\n", FUZZ_CLOSE_BOUND_S);
				abort();
			}
		}
	}
	if (ssl != NULL)
		SSL_free(ssl);
	ERR_clear_error();
	close(fd);
	return 0;
}
