/*
 * test_delivery_dns.c - MX and address lookups through c-ares on our own io_uring ring and timer
 * wheel (as the shard will drive them), against a local dnsmasq started by the test on a high
 * loopback port. Never the internet: c-ares is pointed at the test's server only.
 *
 * Also: a server that never answers (c-ares timeouts driven by the timer wheel) and a port with
 * nothing on it, both -EAGAIN; shutting down with lookups in flight (-ECANCELED, every poll
 * reaped before the free).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/timer.h"
#include "delivery/delivery_dns.h"
#include "delivery/delivery_route.h"
#include "shard/shard.h"

static pid_t dnsmasq_pid;
static int dns_port;

static int free_udp_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), port;

	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &len);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* Starts dnsmasq; returns 0 when it answers, -1 when it cannot run here. */
static int dnsmasq_start(void)
{
	char port_arg[32];
	char *argv[] = {
		(char *)"/usr/sbin/dnsmasq", (char *)"--keep-in-foreground", (char *)"--no-resolv",
		(char *)"--no-hosts", port_arg, (char *)"--listen-address=127.0.0.1",
		(char *)"--bind-interfaces", (char *)"--user=root", (char *)"--pid-file=",
		(char *)"--log-facility=/dev/null", (char *)"--conf-file=/dev/null",
		/* Names under .test not listed here are NXDOMAIN, answered locally. */
		(char *)"--local=/test/",
		(char *)"--mx-host=multi.test,mx1.multi.test,10",
		(char *)"--mx-host=multi.test,mx3.multi.test,10",
		(char *)"--mx-host=multi.test,mx2.multi.test,20",
		(char *)"--host-record=mx1.multi.test,127.0.0.11",
		(char *)"--host-record=mx2.multi.test,127.0.0.12,::1",
		(char *)"--host-record=nomx.test,127.0.0.20",
		(char *)"--mx-host=nullmx.test,.,0",
		NULL,
	};

	if (access(argv[0], X_OK) != 0)
		return -1;
	dns_port = free_udp_port();
	snprintf(port_arg, sizeof(port_arg), "--port=%d", dns_port);
	dnsmasq_pid = fork();
	if (dnsmasq_pid < 0)
		return -1;
	if (dnsmasq_pid == 0) {
		int dn = open("/dev/null", O_WRONLY);

		dup2(dn, 1);
		dup2(dn, 2);
		execv(argv[0], argv);
		_exit(127);
	}
	/* Wait until it answers a query. */
	for (int i = 0; i < 100; i++) {
		static const uint8_t q[] = { 0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
					     4, 'n', 'o', 'm', 'x', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1 };
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)dns_port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		struct timeval tv = { .tv_usec = 100000 };
		uint8_t buf[512];
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		ssize_t n;

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		sendto(fd, q, sizeof(q), 0, (struct sockaddr *)&a, sizeof(a));
		n = recv(fd, buf, sizeof(buf), 0);
		close(fd);
		if (n > 0)
			return 0;
		if (waitpid(dnsmasq_pid, NULL, WNOHANG) == dnsmasq_pid)
			return -1;
		usleep(50000);
	}
	return -1;
}

static int group_setup(void **state)
{
	(void)state;
	if (dnsmasq_start() != 0) {
		fprintf(stderr, "dnsmasq cannot run here; the DNS tests are skipped\n");
		dnsmasq_pid = 0;
	}
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	if (dnsmasq_pid > 0) {
		kill(dnsmasq_pid, SIGTERM);
		waitpid(dnsmasq_pid, NULL, 0);
	}
	return 0;
}

/* ---- a tiny loop: what the shard does for SHARD_OP_DNS and its timer wheel ---- */

struct loop {
	struct io_uring     ring;
	struct timer_wheel  tw;
	struct delivery_dns *dns;
	unsigned            cqes;
};

static uint64_t now_ms(void) { return clock_mono_ns() / 1000000u; }

static void loop_init(struct loop *l, const char *servers, uint32_t timeout_ms, uint32_t tries)
{
	struct delivery_dns_conf conf = { .servers = servers, .timeout_ms = timeout_ms, .tries = tries };

	memset(l, 0, sizeof(*l));
	assert_int_equal(io_uring_queue_init(64, &l->ring, 0), 0);
	timer_wheel_init(&l->tw, now_ms(), 10);
	assert_int_equal(delivery_dns_new(&l->dns, &l->ring, &l->tw, &conf), 0);
}

/* Runs until done() or the deadline; returns false on the deadline. */
static bool loop_run(struct loop *l, bool (*done)(void *), void *arg, uint64_t max_ms)
{
	uint64_t end = now_ms() + max_ms;

	while (!done(arg)) {
		struct __kernel_timespec ts;
		struct io_uring_cqe *cqe;
		uint64_t wait = timer_wheel_idle_ms(&l->tw, now_ms(), 50);
		unsigned head, n = 0;

		if (now_ms() > end)
			return false;
		io_uring_submit(&l->ring);
		ts.tv_sec = 0;
		ts.tv_nsec = (long long)(wait ? wait : 1) * 1000000;
		io_uring_wait_cqe_timeout(&l->ring, &cqe, &ts);
		io_uring_for_each_cqe(&l->ring, head, cqe) {
			if (shard_ud_op(cqe->user_data) == SHARD_OP_DNS)
				delivery_dns_handle_cqe(l->dns, cqe);
			else
				assert_int_equal(shard_ud_op(cqe->user_data), SHARD_OP_IGNORE);
			n++;
		}
		io_uring_cq_advance(&l->ring, n);
		l->cqes += n;
		timer_wheel_advance(&l->tw, now_ms());
	}
	return true;
}

static bool not_busy(void *arg) { return !delivery_dns_busy(((struct loop *)arg)->dns); }

static void loop_fini(struct loop *l)
{
	delivery_dns_shutdown(l->dns);
	assert_true(loop_run(l, not_busy, l, 2000));
	delivery_dns_free(&l->dns);
	assert_null(l->dns);
	io_uring_queue_exit(&l->ring);
}

/* ---- results ---- */

struct mx_res {
	bool                   called;
	int                    calls;
	int                    err;
	unsigned               n;
	struct delivery_dns_mx mx[DELIVERY_DNS_MX_MAX];
};

static void on_mx(void *arg, int err, const struct delivery_dns_mx *mx, unsigned n)
{
	struct mx_res *r = arg;

	r->called = true;
	r->calls++;
	r->err = err;
	r->n = n;
	memcpy(r->mx, mx, n * sizeof(*mx));
}

struct addr_res {
	bool     called;
	int      err;
	unsigned n;
	char     text[DELIVERY_DNS_ADDR_MAX][INET6_ADDRSTRLEN];
};

static void on_addr(void *arg, int err, const struct delivery_dns_addr *a, unsigned n)
{
	struct addr_res *r = arg;

	r->called = true;
	r->err = err;
	r->n = n;
	for (unsigned i = 0; i < n; i++) {
		if (a[i].ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((const struct sockaddr_in *)&a[i].ss)->sin_addr, r->text[i],
				  sizeof(r->text[i]));
		else
			inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)&a[i].ss)->sin6_addr,
				  r->text[i], sizeof(r->text[i]));
	}
}

struct all {
	bool *flags[8];
	unsigned n;
};

static bool all_called(void *arg)
{
	struct all *a = arg;

	for (unsigned i = 0; i < a->n; i++)
		if (!*a->flags[i])
			return false;
	return true;
}

static bool addr_has(const struct addr_res *r, const char *s)
{
	for (unsigned i = 0; i < r->n; i++)
		if (strcmp(r->text[i], s) == 0)
			return true;
	return false;
}

static void test_dns_lookups(void **state)
{
	struct loop l;
	char servers[64];
	struct mx_res multi = { 0 }, nomx = { 0 }, nullmx = { 0 }, nosuch = { 0 };
	struct addr_res a_mx1 = { 0 }, a_mx2 = { 0 }, a_nosuch = { 0 }, a_v4only = { 0 };
	struct all all = { { &multi.called, &nomx.called, &nullmx.called, &nosuch.called,
			     &a_mx1.called, &a_mx2.called, &a_nosuch.called, &a_v4only.called }, 8 };

	(void)state;
	if (dnsmasq_pid <= 0)
		skip();
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", dns_port);
	loop_init(&l, servers, 1000, 2);
	/* Everything at once: c-ares multiplexes them on its sockets, we on the ring. */
	assert_int_equal(delivery_dns_mx(l.dns, "multi.test", on_mx, &multi), 0);
	assert_int_equal(delivery_dns_mx(l.dns, "nomx.test", on_mx, &nomx), 0);
	assert_int_equal(delivery_dns_mx(l.dns, "nullmx.test", on_mx, &nullmx), 0);
	assert_int_equal(delivery_dns_mx(l.dns, "nosuch.test", on_mx, &nosuch), 0);
	assert_int_equal(delivery_dns_addr(l.dns, "mx1.multi.test", AF_UNSPEC, on_addr, &a_mx1), 0);
	assert_int_equal(delivery_dns_addr(l.dns, "mx2.multi.test", AF_UNSPEC, on_addr, &a_mx2), 0);
	assert_int_equal(delivery_dns_addr(l.dns, "nosuch.test", AF_UNSPEC, on_addr, &a_nosuch), 0);
	assert_int_equal(delivery_dns_addr(l.dns, "mx2.multi.test", AF_INET, on_addr, &a_v4only), 0);
	assert_int_equal(delivery_dns_pending(l.dns), 8);
	/* Nothing is called back from inside the calls that started the lookups. */
	assert_false(multi.called);
	assert_true(loop_run(&l, all_called, &all, 5000));
	assert_int_equal(delivery_dns_pending(l.dns), 0);
	assert_true(l.cqes > 0);

	assert_int_equal(multi.err, 0);
	assert_int_equal(multi.n, 3);
	assert_int_equal(multi.calls, 1);
	{
		struct delivery_route_mx rmx[3];
		struct delivery_route r;

		for (unsigned i = 0; i < 3; i++) {
			rmx[i].host = multi.mx[i].host;
			rmx[i].pref = multi.mx[i].pref;
		}
		assert_int_equal(delivery_route_mx("multi.test", rmx, 3, 25, NULL, 42, &r), 0);
		assert_int_equal(r.n, 3);
		assert_int_equal(r.d[0].prio, 10);
		assert_int_equal(r.d[1].prio, 10);
		assert_string_equal(r.d[2].host, "mx2.multi.test");
	}
	/* No MX: 0 records, the implicit MX applies. */
	assert_int_equal(nomx.err, 0);
	assert_int_equal(nomx.n, 0);
	/* Null MX: one record, root target. */
	assert_int_equal(nullmx.err, 0);
	assert_int_equal(nullmx.n, 1);
	assert_string_equal(nullmx.mx[0].host, "");
	{
		struct delivery_route_mx rmx = { nullmx.mx[0].host, nullmx.mx[0].pref };
		struct delivery_route r;

		assert_int_equal(delivery_route_mx("nullmx.test", &rmx, 1, 25, NULL, 0, &r), -ENXIO);
	}
	assert_int_equal(nosuch.err, -ENOENT);

	assert_int_equal(a_mx1.err, 0);
	assert_int_equal(a_mx1.n, 1);
	assert_string_equal(a_mx1.text[0], "127.0.0.11");
	assert_int_equal(a_mx2.err, 0);
	assert_int_equal(a_mx2.n, 2);
	assert_true(addr_has(&a_mx2, "127.0.0.12"));
	assert_true(addr_has(&a_mx2, "::1"));
	assert_int_equal(a_v4only.n, 1);
	assert_string_equal(a_v4only.text[0], "127.0.0.12");
	assert_int_equal(a_nosuch.err, -ENOENT);

	/* A bad name never reaches c-ares. */
	assert_int_equal(delivery_dns_mx(l.dns, "bad name.test", on_mx, &multi), -EINVAL);
	assert_int_equal(delivery_dns_mx(l.dns, "", on_mx, &multi), -EINVAL);
	loop_fini(&l);
}

/* A server that never answers: c-ares's retries and timeouts ride the timer wheel. */
static void test_dns_timeout(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int mute = socket(AF_INET, SOCK_DGRAM, 0);
	char servers[64];
	struct loop l;
	struct mx_res r = { 0 };
	uint64_t t0;

	(void)state;
	assert_int_equal(bind(mute, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(mute, (struct sockaddr *)&a, &len);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", ntohs(a.sin_port));
	loop_init(&l, servers, 200, 2);
	t0 = now_ms();
	assert_int_equal(delivery_dns_mx(l.dns, "multi.test", on_mx, &r), 0);
	assert_true(loop_run(&l, all_called, &(struct all){ { &r.called }, 1 }, 5000));
	assert_int_equal(r.err, -EAGAIN);
	/* Two tries of 200 ms and 400 ms (c-ares doubles per round): not at once, not forever. */
	assert_true(now_ms() - t0 >= 150);
	assert_true(now_ms() - t0 < 3000);
	loop_fini(&l);
	close(mute);
}

/* Shutting down with lookups in flight: each is called back once with -ECANCELED. */
static void test_dns_shutdown(void **state)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int mute = socket(AF_INET, SOCK_DGRAM, 0);
	char servers[64];
	struct loop l;
	struct mx_res r1 = { 0 }, r2 = { 0 };

	(void)state;
	assert_int_equal(bind(mute, (struct sockaddr *)&a, sizeof(a)), 0);
	getsockname(mute, (struct sockaddr *)&a, &len);
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", ntohs(a.sin_port));
	loop_init(&l, servers, 5000, 3);
	assert_int_equal(delivery_dns_mx(l.dns, "a.test", on_mx, &r1), 0);
	assert_int_equal(delivery_dns_mx(l.dns, "b.test", on_mx, &r2), 0);
	io_uring_submit(&l.ring);
	delivery_dns_shutdown(l.dns);
	assert_true(r1.called && r2.called);
	assert_int_equal(r1.err, -ECANCELED);
	assert_int_equal(r2.calls, 1);
	assert_int_equal(delivery_dns_mx(l.dns, "c.test", on_mx, &r1), -ESHUTDOWN);
	assert_true(loop_run(&l, not_busy, &l, 2000));
	delivery_dns_free(&l.dns);
	io_uring_queue_exit(&l.ring);
	close(mute);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dns_lookups),
		cmocka_unit_test(test_dns_timeout),
		cmocka_unit_test(test_dns_shutdown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
