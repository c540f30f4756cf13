/*
 * test_sync_natsproc.c - control/sync/natsproc.c against Debian's nats-server: start and
 * /healthz, a bad configuration, restart after a kill with backoff, restart on demand, stop.
 * Skips when nats-server is not installed.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "natsproc.h"
#include "sync_file.h"

static char dir[64];
static char conf[128];
static int monitor_port;

/* A loopback port nobody listens on. */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	socklen_t len = sizeof(sa);
	getsockname(fd, (struct sockaddr *)&sa, &len);
	close(fd);
	return ntohs(sa.sin_port);
}

static int setup(void **state)
{
	if (access(NATSPROC_BINARY, X_OK) != 0)
		return 0;
	snprintf(dir, sizeof(dir), "/tmp/sluice-natsproc-XXXXXX");
	assert_non_null(mkdtemp(dir));
	monitor_port = free_port();
	char text[512];
	int n = snprintf(text, sizeof(text), "listen: \"127.0.0.1:%d\"\nhttp: \"127.0.0.1:%d\"\n",
			 free_port(), monitor_port);
	snprintf(conf, sizeof(conf), "%s/nats.conf", dir);
	assert_int_equal(sync_file_write(conf, text, (size_t)n, 0644), 0);
	return 0;
}

static int teardown(void **state)
{
	if (dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
	}
	return 0;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	nanosleep(&ts, NULL);
}

static void test_lifecycle(void **state)
{
	if (!dir[0])
		skip();
	struct natsproc p = { .conf_path = conf, .monitor_port = monitor_port };
	assert_int_equal(natsproc_start(&p, NATSPROC_START_MS), 0);
	assert_true(p.pid > 0);
	assert_int_equal(natsproc_start(&p, NATSPROC_START_MS), -EALREADY);
	assert_int_equal(natsproc_healthy(monitor_port, 1000), 0);
	assert_int_equal(natsproc_poll(&p), 0);

	/* Killed: reaped at the next poll, started again after the backoff. */
	pid_t first = p.pid;
	assert_int_equal(kill(first, SIGKILL), 0);
	int restarted = 0;
	for (int i = 0; i < 200 && !restarted; i++) {
		int rc = natsproc_poll(&p);
		assert_true(rc >= 0);
		restarted = rc;
		sleep_ms(25);
	}
	assert_int_equal(restarted, 1);
	assert_int_equal(p.restarts, 1);
	assert_true(p.pid > 0 && p.pid != first);
	assert_true(p.backoff_ms > NATSPROC_BACKOFF_MIN);   /* a crash loop slows down */
	assert_int_equal(natsproc_healthy(monitor_port, 1000), 0);

	/* On demand (a changed configuration). */
	pid_t second = p.pid;
	assert_int_equal(natsproc_restart(&p, NATSPROC_STOP_MS), 0);
	assert_true(p.pid > 0 && p.pid != second);

	/* Stopped: nothing restarts it, nothing answers. */
	assert_int_equal(natsproc_stop(&p, NATSPROC_STOP_MS), 0);
	assert_int_equal(p.pid, 0);
	assert_int_equal(natsproc_poll(&p), 0);
	assert_int_equal(p.pid, 0);
	assert_true(natsproc_healthy(monitor_port, 200) < 0);
	assert_int_equal(natsproc_stop(&p, NATSPROC_STOP_MS), 0);
}

static void test_bad_config(void **state)
{
	if (!dir[0])
		skip();
	char bad[160];
	snprintf(bad, sizeof(bad), "%s/bad.conf", dir);
	assert_int_equal(sync_file_write(bad, "leafnodes { reconnect: \n", 24, 0644), 0);
	struct natsproc p = { .conf_path = bad, .monitor_port = free_port() };
	assert_int_equal(natsproc_start(&p, NATSPROC_START_MS), -ECHILD);
	assert_int_equal(p.pid, 0);
	/* A binary that is not there. */
	struct natsproc q = { .binary = "/nonexistent/nats-server", .conf_path = conf,
			      .monitor_port = free_port() };
	assert_int_equal(natsproc_start(&q, NATSPROC_START_MS), -ECHILD);
	assert_int_equal(WEXITSTATUS(q.last_status), 127);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lifecycle),
		cmocka_unit_test(test_bad_config),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
