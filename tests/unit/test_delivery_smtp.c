/*
 * test_delivery_smtp.c - the delivery client engine against real servers on loopback:
 * Postfix's smtp-sink (PIPELINING), Python's aiosmtpd (no PIPELINING, STARTTLS), and scripted
 * misbehaving servers (tests/integration/delivery/misbehave.py): 4xx and 5xx on some recipients,
 * a connection dropped in the middle of DATA, an endless multi-line reply, EHLO refused, 421.
 *
 * The engine does no I/O; here a small blocking driver (poll + send/recv, OpenSSL for STARTTLS)
 * plays the shard's part. Servers are started and stopped by the test, by pid.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "delivery/delivery_client.h"

static const char *src_root(void)
{
	const char *r = getenv("SLUICE_SOURCE_ROOT");

	return r ? r : ".";
}

static int free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static int tcp_connect(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

/* Starts argv[0] with stdout to /dev/null; waits until port accepts. Returns the pid. */
static pid_t spawn(int port, char *const argv[])
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		int dn = open("/dev/null", O_WRONLY);

		dup2(dn, 1);
		setpgid(0, 0);
		execv(argv[0], argv);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		int fd = tcp_connect(port);

		if (fd >= 0) {
			close(fd);
			return pid;
		}
		usleep(50 * 1000);
	}
	kill(pid, SIGKILL);
	fail_msg("%s did not start listening on %d", argv[0], port);
	return -1;
}

static void stop(pid_t pid)
{
	kill(-pid, SIGTERM);
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

static char *mkdtemp_dir(void)
{
	char *d = strdup("/tmp/sluice-delivery-XXXXXX");

	assert_non_null(mkdtemp(d));
	return d;
}

static void rm_rf(const char *dir)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

static char *slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *p;
	long n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	p = malloc((size_t)n + 1);
	assert_non_null(p);
	assert_int_equal(fread(p, 1, (size_t)n, f), (size_t)n);
	p[n] = '\0';
	fclose(f);
	*len_r = (size_t)n;
	return p;
}

/* ---- the driver: plays the shard ---- */

struct drive {
	int       port;
	SSL_CTX  *tls;
	unsigned  nmsg;
	struct delivery_client_msg **msgs;
	const uint8_t *body;
	size_t    body_len;
	/* results */
	int       closed_err;          /* the engine's error.err at the end */
	unsigned  done;                /* messages that reached MSG_DONE */
	unsigned  reads, writes;
	double    secs;
	struct delivery_client c;
};

static int io_send(int fd, SSL *ssl, const uint8_t *p, size_t n)
{
	if (ssl != NULL) {
		int r = SSL_write(ssl, p, (int)n);

		return r > 0 ? r : -EIO;
	}
	{
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);

		return r >= 0 ? (int)r : -errno;
	}
}

static int io_recv(int fd, SSL *ssl, uint8_t *p, size_t n, uint32_t timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };

	if (ssl == NULL || SSL_pending(ssl) == 0) {
		int r = poll(&pfd, 1, (int)timeout_ms);

		if (r == 0)
			return -ETIMEDOUT;
		if (r < 0)
			return -errno;
	}
	if (ssl != NULL) {
		int r = SSL_read(ssl, p, (int)n);

		return r > 0 ? r : 0;
	}
	{
		ssize_t r = recv(fd, p, n, 0);

		return r >= 0 ? (int)r : -errno;
	}
}

static void drive_run(struct drive *d, const struct delivery_client_conf *conf)
{
	struct timespec t0, t1;
	unsigned next_msg = 0;
	size_t body_off = 0;
	SSL *ssl = NULL;
	int fd;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	fd = tcp_connect(d->port);
	assert_true(fd >= 0);
	/* As the shard will: commands and replies are small, Nagle only adds delay. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	assert_int_equal(delivery_client_init(&d->c, conf), 0);
	for (;;) {
		enum delivery_client_ev ev = delivery_client_next(&d->c);
		uint8_t buf[4096];
		const uint8_t *p;
		size_t n;
		int r;

		if (ev == DELIVERY_CLIENT_EV_CLOSED)
			break;
		switch (ev) {
		case DELIVERY_CLIENT_EV_WRITE:
			delivery_client_output(&d->c, &p, &n);
			r = io_send(fd, ssl, p, n);
			d->writes++;
			if (r < 0)
				delivery_client_abort(&d->c, r);
			else
				delivery_client_sent(&d->c, (size_t)r);
			break;
		case DELIVERY_CLIENT_EV_READ:
			/* The engine's timeout for this wait (the test sets short ones). */
			r = io_recv(fd, ssl, buf, sizeof(buf), delivery_client_timeout_ms(&d->c));
			d->reads++;
			if (r < 0)
				delivery_client_abort(&d->c, r);
			else if (r == 0)
				delivery_client_abort(&d->c, -ECONNRESET);
			else
				delivery_client_input(&d->c, buf, (size_t)r);
			break;
		case DELIVERY_CLIENT_EV_STARTTLS:
			assert_non_null(d->tls);
			ssl = SSL_new(d->tls);
			SSL_set_fd(ssl, fd);
			delivery_client_tls_done(&d->c, SSL_connect(ssl) == 1);
			break;
		case DELIVERY_CLIENT_EV_READY:
			if (next_msg < d->nmsg) {
				assert_int_equal(delivery_client_begin(&d->c, d->msgs[next_msg++]), 0);
				body_off = 0;
			} else {
				delivery_client_quit(&d->c);
			}
			break;
		case DELIVERY_CLIENT_EV_BODY: {
			/* Uneven chunks, as spool reads would come. */
			size_t chunk = 1 + (size_t)rand() % 700;

			if (chunk > d->body_len - body_off)
				chunk = d->body_len - body_off;
			assert_int_equal(delivery_client_body(&d->c, d->body + body_off, chunk,
							      body_off + chunk == d->body_len), 0);
			body_off += chunk;
			break;
		}
		case DELIVERY_CLIENT_EV_MSG_DONE:
			d->done++;
			delivery_client_msg_ack(&d->c);
			break;
		default:
			fail_msg("unexpected event %d", ev);
		}
	}
	d->closed_err = d->c.error.err;
	if (ssl != NULL) {
		SSL_shutdown(ssl);
		SSL_free(ssl);
	}
	close(fd);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	d->secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
}

static struct delivery_client_conf test_conf(enum delivery_client_tls tls)
{
	struct delivery_client_conf c = { .helo_name = "relay.sluice.test", .tls = tls };

	/* Short timeouts: a test must not hang for the RFC's minutes. */
	c.timeouts = (struct delivery_client_timeouts){
		.banner_ms = 5000, .helo_ms = 5000, .starttls_ms = 5000, .mail_ms = 5000,
		.rcpt_ms = 5000, .data_init_ms = 5000, .data_block_ms = 5000, .data_final_ms = 5000,
		.rset_ms = 5000, .quit_ms = 5000,
	};
	return c;
}

/* The body as spooled, with traps: leading dots, a lone dot line, bare LF, no final line end. */
static const char body_in[] =
	"From: a@src.test\r\nTo: b@d.test\r\nSubject: delivery test\r\n\r\n"
	".leading dot\r\n"
	".\r\n"
	"bare LF line\n"
	"..two dots\r\n"
	"8-bit: caf\xc3\xa9\r\n"
	"last line without an end";
/* What a server must have received, dot-unstuffed. */
static const char body_unstuffed[] =
	"From: a@src.test\r\nTo: b@d.test\r\nSubject: delivery test\r\n\r\n"
	".leading dot\r\n"
	".\r\n"
	"bare LF line\r\n"
	"..two dots\r\n"
	"8-bit: caf\xc3\xa9\r\n"
	"last line without an end\r\n";
/* ... and on the wire, still stuffed, with the end mark. */
static const char body_wire[] =
	"From: a@src.test\r\nTo: b@d.test\r\nSubject: delivery test\r\n\r\n"
	"..leading dot\r\n"
	"..\r\n"
	"bare LF line\r\n"
	"...two dots\r\n"
	"8-bit: caf\xc3\xa9\r\n"
	"last line without an end\r\n"
	".\r\n";

#define R(a) { .addr = { (a), sizeof(a) - 1 } }

/* ---- Postfix's smtp-sink: pipelining, many messages on one connection ---- */

static void test_smtp_sink(void **state)
{
	int port = free_port();
	char addr[64], *argv[] = { (char *)"/usr/sbin/smtp-sink", (char *)"-u", (char *)"nobody",
				   (char *)"-c", addr, (char *)"100", NULL };
	struct delivery_rcpt rc[5] = { R("r1@d.test"), R("r2@d.test"), R("r3@d.test"),
				       R("r4@d.test"), R("r5@d.test") };
	struct delivery_client_msg m = { .mail_from = SLICE_LIT("s@src.test"),
					 .size = sizeof(body_in) - 1, .body_8bit = true, .nrcpt = 5,
					 .rcpt = rc };
	struct delivery_client_msg *msgs[50];
	struct delivery_client_conf conf = test_conf(DELIVERY_CLIENT_TLS_MAY);
	struct drive *d = calloc(1, sizeof(*d));
	pid_t pid;

	(void)state;
	if (access(argv[0], X_OK) != 0)
		skip();
	snprintf(addr, sizeof(addr), "127.0.0.1:%d", port);
	pid = spawn(port, argv);
	for (int i = 0; i < 50; i++)
		msgs[i] = &m;   /* the same message again: results are checked at the end */
	d->port = port;
	d->nmsg = 50;
	d->msgs = msgs;
	d->body = (const uint8_t *)body_in;
	d->body_len = sizeof(body_in) - 1;
	drive_run(d, &conf);
	stop(pid);
	assert_int_equal(d->closed_err, 0);
	assert_int_equal(d->done, 50);
	assert_true(d->c.caps & DELIVERY_CLIENT_CAP_PIPELINING);
	assert_true(d->c.caps & DELIVERY_CLIENT_CAP_8BITMIME);
	assert_false(m.eightbit_downgrade);
	for (int i = 0; i < 5; i++)
		assert_int_equal(rc[i].status, DELIVERY_RCPT_OK);
	/* Pipelining: about two reads per message (MAIL..DATA replies, final reply), not 8. */
	assert_true(d->reads <= 2 * 50 + 4);
	fprintf(stderr, "smtp-sink: 50 messages x 5 recipients on one connection in %.3f s "
			"(%.0f msg/s), %u reads, %u writes\n", d->secs, 50 / d->secs, d->reads, d->writes);
	delivery_client_fini(&d->c);
	free(d);
}

/* ---- aiosmtpd: lock-step (no PIPELINING), then STARTTLS ---- */

static void check_stored(const char *dir, int n, const char *from, const char *rcpts, const char *tls)
{
	char path[512], *p, *nl;
	size_t len, want_head;

	snprintf(path, sizeof(path), "%s/%d.msg", dir, n);
	p = slurp(path, &len);
	assert_non_null(p);
	nl = strchr(p, '\n');
	assert_non_null(nl);
	assert_int_equal((size_t)(nl - p), strlen(from));
	assert_memory_equal(p, from, strlen(from));
	assert_memory_equal(nl + 1, rcpts, strlen(rcpts));
	want_head = (size_t)(nl + 1 - p) + strlen(rcpts) + 1;
	assert_int_equal(len - want_head, sizeof(body_unstuffed) - 1);
	assert_memory_equal(p + want_head, body_unstuffed, sizeof(body_unstuffed) - 1);
	free(p);
	snprintf(path, sizeof(path), "%s/%d.tls", dir, n);
	p = slurp(path, &len);
	assert_non_null(p);
	assert_string_equal(p, tls);
	free(p);
}

static void aiosmtpd_run(bool tls)
{
	int port = free_port();
	char *dir = mkdtemp_dir(), script[512], portstr[16], cert[600], key[600], cmd[2048];
	char *argv[8] = { (char *)"/usr/bin/python3", script, portstr, dir, NULL };
	struct delivery_rcpt rc1[2] = { R("one@d.test"), R("two@d.test") };
	struct delivery_rcpt rc2[1] = { R("three@d.test") };
	struct delivery_client_msg m1 = { .mail_from = SLICE_LIT("s@src.test"), .size = 300,
					  .body_8bit = true, .nrcpt = 2, .rcpt = rc1 };
	struct delivery_client_msg m2 = { .mail_from = SLICE_LIT(""), .size = 300, .nrcpt = 1,
					  .rcpt = rc2 };
	struct delivery_client_msg *msgs[2] = { &m1, &m2 };
	struct delivery_client_conf conf = test_conf(tls ? DELIVERY_CLIENT_TLS_REQUIRED
							 : DELIVERY_CLIENT_TLS_NONE);
	struct drive *d = calloc(1, sizeof(*d));
	pid_t pid;

	snprintf(script, sizeof(script), "%s/tests/integration/delivery/aiosmtpd_server.py", src_root());
	snprintf(portstr, sizeof(portstr), "%d", port);
	if (tls) {
		snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
		snprintf(key, sizeof(key), "%s/key.pem", dir);
		snprintf(cmd, sizeof(cmd),
			 "openssl req -x509 -newkey rsa:2048 -nodes -keyout %s -out %s -days 1 "
			 "-subj /CN=aiosmtpd.test >/dev/null 2>&1", key, cert);
		assert_int_equal(system(cmd), 0);
		argv[4] = (char *)"--tls";
		argv[5] = cert;
		argv[6] = key;
		argv[7] = NULL;
		d->tls = SSL_CTX_new(TLS_client_method());
		assert_non_null(d->tls);
		SSL_CTX_set_verify(d->tls, SSL_VERIFY_NONE, NULL);
	}
	pid = spawn(port, argv);
	d->port = port;
	d->nmsg = 2;
	d->msgs = msgs;
	d->body = (const uint8_t *)body_in;
	d->body_len = sizeof(body_in) - 1;
	drive_run(d, &conf);
	stop(pid);
	assert_int_equal(d->closed_err, 0);
	assert_int_equal(d->done, 2);
	assert_false(d->c.caps & DELIVERY_CLIENT_CAP_PIPELINING);
	assert_true(d->c.caps & DELIVERY_CLIENT_CAP_8BITMIME);
	assert_true(d->c.caps & DELIVERY_CLIENT_CAP_SIZE);
	assert_int_equal(d->c.tls_active, tls);
	assert_int_equal(rc1[0].status, DELIVERY_RCPT_OK);
	assert_int_equal(rc1[1].status, DELIVERY_RCPT_OK);
	assert_int_equal(rc2[0].status, DELIVERY_RCPT_OK);
	assert_non_null(strstr(rc2[0].diag, "stored as 2"));
	check_stored(dir, 1, "s@src.test", "one@d.test,two@d.test", tls ? "yes" : "no");
	/* aiosmtpd keeps the null sender as "<>". */
	check_stored(dir, 2, "<>", "three@d.test", tls ? "yes" : "no");
	if (d->tls != NULL)
		SSL_CTX_free(d->tls);
	delivery_client_fini(&d->c);
	free(d);
	rm_rf(dir);
	free(dir);
}

static void test_aiosmtpd_plain(void **state)
{
	(void)state;
	aiosmtpd_run(false);
}

static void test_aiosmtpd_starttls(void **state)
{
	(void)state;
	aiosmtpd_run(true);
}

/* ---- the misbehaving ones ---- */

struct misbehave {
	pid_t pid;
	int   port;
	char *dir;
};

static void misbehave_start(struct misbehave *mb, const char *mode)
{
	char script[512], portstr[16];
	char *argv[] = { (char *)"/usr/bin/python3", script, (char *)mode, portstr, NULL, NULL };

	mb->port = free_port();
	mb->dir = mkdtemp_dir();
	argv[4] = mb->dir;
	snprintf(script, sizeof(script), "%s/tests/integration/delivery/misbehave.py", src_root());
	snprintf(portstr, sizeof(portstr), "%d", mb->port);
	mb->pid = spawn(mb->port, argv);
}

static void misbehave_stop(struct misbehave *mb)
{
	stop(mb->pid);
	rm_rf(mb->dir);
	free(mb->dir);
}

static void test_misbehave_mixed(void **state)
{
	struct misbehave mb;
	struct delivery_rcpt rc[4] = { R("ok1@d.test"), R("defer1@d.test"), R("fail1@d.test"),
				       R("ok2@d.test") };
	struct delivery_client_msg m = { .mail_from = SLICE_LIT("s@src.test"), .size = 300,
					 .body_8bit = true, .nrcpt = 4, .rcpt = rc };
	struct delivery_client_msg *msgs[1] = { &m };
	struct delivery_client_conf conf = test_conf(DELIVERY_CLIENT_TLS_MAY);
	struct drive *d = calloc(1, sizeof(*d));
	char path[512], *raw, *reads;
	size_t len;

	(void)state;
	misbehave_start(&mb, "mixed");
	d->port = mb.port;
	d->nmsg = 1;
	d->msgs = msgs;
	d->body = (const uint8_t *)body_in;
	d->body_len = sizeof(body_in) - 1;
	drive_run(d, &conf);
	assert_int_equal(d->closed_err, 0);
	assert_int_equal(d->done, 1);
	assert_int_equal(rc[0].status, DELIVERY_RCPT_OK);
	assert_int_equal(rc[1].status, DELIVERY_RCPT_DEFER);
	assert_string_equal(rc[1].enh, "4.2.1");
	assert_string_equal(rc[1].diag, "450 4.2.1 mailbox busy");
	assert_int_equal(rc[2].status, DELIVERY_RCPT_FAIL);
	assert_string_equal(rc[2].enh, "5.1.1");
	assert_int_equal(rc[3].status, DELIVERY_RCPT_OK);
	assert_non_null(strstr(rc[3].diag, "queued as M1"));
	assert_int_equal(m.naccepted, 2);
	/* The exact bytes on the wire: CR LF everywhere, every leading dot doubled. */
	snprintf(path, sizeof(path), "%s/1.raw", mb.dir);
	raw = slurp(path, &len);
	assert_non_null(raw);
	assert_int_equal(len, sizeof(body_wire) - 1);
	assert_memory_equal(raw, body_wire, len);
	free(raw);
	/* PIPELINING: MAIL, the four RCPTs and DATA came in one read. */
	snprintf(path, sizeof(path), "%s/1.reads", mb.dir);
	reads = slurp(path, &len);
	assert_non_null(reads);
	{
		char *first_line_end = strchr(reads, '\n');

		assert_non_null(first_line_end);
		*first_line_end = '\0';
		assert_non_null(strstr(reads, "MAIL FROM:<s@src.test> SIZE=300 BODY=8BITMIME"));
		assert_non_null(strstr(reads, "RCPT TO:<ok2@d.test>"));
		assert_non_null(strstr(reads, "DATA"));
	}
	free(reads);
	misbehave_stop(&mb);
	delivery_client_fini(&d->c);
	free(d);
}

static void test_misbehave_dropdata(void **state)
{
	struct misbehave mb;
	struct delivery_rcpt rc[2] = { R("ok1@d.test"), R("fail1@d.test") };
	struct delivery_client_msg m = { .mail_from = SLICE_LIT("s@src.test"), .size = 100,
					 .nrcpt = 2, .rcpt = rc };
	struct delivery_client_msg *msgs[1] = { &m };
	struct delivery_client_conf conf = test_conf(DELIVERY_CLIENT_TLS_MAY);
	struct drive *d = calloc(1, sizeof(*d));
	static uint8_t big[256 * 1024];

	(void)state;
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (i % 78 == 77) ? '\n' : (uint8_t)('a' + i % 26);
	misbehave_start(&mb, "dropdata");
	d->port = mb.port;
	d->nmsg = 1;
	d->msgs = msgs;
	d->body = big;
	d->body_len = sizeof(big);
	drive_run(d, &conf);
	assert_true(d->closed_err != 0);
	assert_int_equal(d->done, 0);
	/* The session broke in DATA: the accepted recipient is deferred, the refused one failed. */
	assert_int_equal(rc[0].status, DELIVERY_RCPT_DEFER);
	assert_true(rc[0].enh[0] == '4');
	assert_int_equal(rc[1].status, DELIVERY_RCPT_FAIL);
	misbehave_stop(&mb);
	delivery_client_fini(&d->c);
	free(d);
}

static void test_misbehave_endless(void **state)
{
	struct misbehave mb;
	struct delivery_client_conf conf = test_conf(DELIVERY_CLIENT_TLS_MAY);
	struct drive *d = calloc(1, sizeof(*d));

	(void)state;
	misbehave_start(&mb, "endless");
	d->port = mb.port;
	drive_run(d, &conf);
	assert_int_equal(d->closed_err, -EMSGSIZE);
	assert_int_equal(d->c.error.stage, DELIVERY_CLIENT_ST_EHLO);
	/* Bounded: it gave up after about lines_max lines, not after megabytes. */
	assert_true(d->c.bytes_in < 64 * 1024);
	assert_true(d->secs < 5.0);
	misbehave_stop(&mb);
	delivery_client_fini(&d->c);
	free(d);
}

static void test_misbehave_ehlo5xx(void **state)
{
	struct misbehave mb;
	struct delivery_rcpt rc[3] = { R("ok1@d.test"), R("defer@d.test"), R("ok2@d.test") };
	struct delivery_client_msg m = { .mail_from = SLICE_LIT("s@src.test"), .size = 300,
					 .body_8bit = true, .nrcpt = 3, .rcpt = rc };
	struct delivery_client_msg *msgs[2] = { &m, &m };
	struct delivery_client_conf conf = test_conf(DELIVERY_CLIENT_TLS_MAY);
	struct drive *d = calloc(1, sizeof(*d));
	char path[512], *raw;
	size_t len;

	(void)state;
	misbehave_start(&mb, "ehlo5xx");
	d->port = mb.port;
	d->nmsg = 2;
	d->msgs = msgs;
	d->body = (const uint8_t *)body_in;
	d->body_len = sizeof(body_in) - 1;
	drive_run(d, &conf);
	assert_int_equal(d->closed_err, 0);
	assert_int_equal(d->done, 2);
	assert_int_equal(d->c.caps, 0);
	assert_true(m.eightbit_downgrade);   /* HELO: no 8BITMIME, sent anyway and noted */
	assert_int_equal(rc[0].status, DELIVERY_RCPT_OK);
	assert_int_equal(rc[1].status, DELIVERY_RCPT_DEFER);
	assert_int_equal(rc[2].status, DELIVERY_RCPT_OK);
	snprintf(path, sizeof(path), "%s/2.raw", mb.dir);   /* the second, after RSET */
	raw = slurp(path, &len);
	assert_non_null(raw);
	assert_memory_equal(raw, body_wire, sizeof(body_wire) - 1);
	free(raw);
	misbehave_stop(&mb);
	delivery_client_fini(&d->c);
	free(d);
}

static void test_misbehave_421(void **state)
{
	struct misbehave mb;
	struct delivery_rcpt rc[2] = { R("a@d.test"), R("b@d.test") };
	struct delivery_client_msg m = { .mail_from = SLICE_LIT("s@src.test"), .nrcpt = 2, .rcpt = rc };
	struct delivery_client_msg *msgs[1] = { &m };
	struct delivery_client_conf conf = test_conf(DELIVERY_CLIENT_TLS_MAY);
	struct drive *d = calloc(1, sizeof(*d));

	(void)state;
	misbehave_start(&mb, "mail421");
	d->port = mb.port;
	d->nmsg = 1;
	d->msgs = msgs;
	d->body = (const uint8_t *)"x";
	d->body_len = 1;
	drive_run(d, &conf);
	assert_int_equal(d->c.error.code, 421);
	assert_int_equal(rc[0].status, DELIVERY_RCPT_DEFER);
	assert_string_equal(rc[0].enh, "4.3.2");
	assert_int_equal(rc[1].status, DELIVERY_RCPT_DEFER);
	misbehave_stop(&mb);
	delivery_client_fini(&d->c);
	free(d);
}

/* TLS required against a server that does not offer it: no mail goes in clear. */
static void test_tls_required_not_offered(void **state)
{
	struct misbehave mb;
	struct delivery_rcpt rc[1] = { R("a@d.test") };
	struct delivery_client_msg m = { .mail_from = SLICE_LIT("s@src.test"), .nrcpt = 1, .rcpt = rc };
	struct delivery_client_msg *msgs[1] = { &m };
	struct delivery_client_conf conf = test_conf(DELIVERY_CLIENT_TLS_REQUIRED);
	struct drive *d = calloc(1, sizeof(*d));

	(void)state;
	misbehave_start(&mb, "mixed");
	d->port = mb.port;
	d->nmsg = 1;
	d->msgs = msgs;
	drive_run(d, &conf);
	assert_int_equal(d->done, 0);
	assert_string_equal(d->c.error.enh, "4.7.4");
	assert_int_equal(d->c.error.stage, DELIVERY_CLIENT_ST_EHLO);
	misbehave_stop(&mb);
	delivery_client_fini(&d->c);
	free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_smtp_sink),
		cmocka_unit_test(test_aiosmtpd_plain),
		cmocka_unit_test(test_aiosmtpd_starttls),
		cmocka_unit_test(test_misbehave_mixed),
		cmocka_unit_test(test_misbehave_dropdata),
		cmocka_unit_test(test_misbehave_endless),
		cmocka_unit_test(test_misbehave_ehlo5xx),
		cmocka_unit_test(test_misbehave_421),
		cmocka_unit_test(test_tls_required_not_offered),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
