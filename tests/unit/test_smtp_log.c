/*
 * test_smtp_log.c - the pieces of the log lines that can be tested alone: the score format (one
 * decimal, rounded half away from zero, as X-Spam-Status), the address taken from a MAIL/RCPT
 * argument that may not parse, syslog facility names, and the logger's own syslog client: the
 * datagram's form, a full receiver (dropped and counted, never waited for), a receiver that
 * went away (-ENOTCONN: the caller writes elsewhere) and came back.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <errno.h>
#include <cmocka.h>

#include "base/log.h"
#include "shard/shard_event.h"
#include "smtp/smtp_log.h"

static void test_score_format(void **state)
{
	static const struct { int32_t milli; const char *want; } cases[] = {
		{ 0, "0.0" }, { 5200, "5.2" }, { 5249, "5.2" }, { 5250, "5.3" }, { 49, "0.0" },
		{ 50, "0.1" }, { -49, "0.0" }, { -50, "-0.1" }, { -500, "-0.5" }, { -12345, "-12.3" },
		{ 1000000, "1000.0" }, { INT32_MAX, "2147483.6" }, { INT32_MIN, "-2147483.6" },
	};
	char buf[32];
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		shard_event_score(buf, sizeof(buf), cases[i].milli);
		assert_string_equal(buf, cases[i].want);
	}
}

static void test_path_arg(void **state)
{
	static const struct { const char *arg, *want; } cases[] = {
		{ "FROM:<a@b.test> SIZE=10", "a@b.test" },
		{ "TO:<x@y.test>", "x@y.test" },
		{ "TO: <x@y.test>", "x@y.test" },
		{ "FROM:<>", "" },
		{ "FROM:<bad address@b.test>", "bad address@b.test" },
		{ "TO:<unclosed", "unclosed" },
		{ "TO:junk NOTIFY=NEVER", "junk" },
		{ "nocolon", "nocolon" },
		{ "TO:", "" },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct slice a = { cases[i].arg, strlen(cases[i].arg) }, r = smtp_log_path_arg(a);

		assert_int_equal(r.len, strlen(cases[i].want));
		assert_memory_equal(r.p, cases[i].want, r.len);
	}
}

static void test_facility_names(void **state)
{
	(void)state;
	assert_int_equal(log_facility_parse("mail"), 2);
	assert_int_equal(log_facility_parse("DAEMON"), 3);
	assert_int_equal(log_facility_parse("local0"), 16);
	assert_int_equal(log_facility_parse("local7"), 23);
	assert_int_equal(log_facility_parse("local8"), -EINVAL);
	assert_int_equal(log_facility_parse(""), -EINVAL);
}

static int bind_dgram(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void test_syslog_client(void **state)
{
	char dir[] = "/tmp/sluice-log-XXXXXX", path[200], got[4096], want[300];
	int fd, n, sent = 0;
	uint64_t dropped;
	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/log.sock", dir);
	fd = bind_dgram(path);
	log_set_prefix("test-node");
	log_set_thread_tag("shard 7");
	log_set_level(LOG_INFO);
	assert_int_equal(log_set_output(LOG_OUT_SYSLOG, log_facility_parse("local1"), path), 0);
	assert_true(log_output_is_syslog());

	/* The form: <PRI>TAG[PID]: [thread] level: text, one datagram, no newline. */
	log_warn(-ENOSPC, "disk %s", "full");
	n = (int)recv(fd, got, sizeof(got) - 1, 0);
	assert_true(n > 0);
	got[n] = '\0';
	snprintf(want, sizeof(want), "<%d>test-node[%d]: [shard 7] warning: disk full: %s",
		 17 * 8 + 4, (int)getpid(), strerror(ENOSPC));
	assert_string_equal(got, want);
	log_debug("below the level: not sent");
	assert_true(recv(fd, got, sizeof(got), 0) < 0);

	/* A receiver that does not read: lines are dropped and counted, never waited for. */
	dropped = log_dropped();
	for (int i = 0; i < 2000; i++)
		if (log_syslog_line(LOG_INFO, "agent", "x", 1) == 0)
			sent++;
	assert_true(sent > 0 && sent < 2000);
	assert_int_equal(log_dropped() - dropped, (uint64_t)(2000 - sent));
	while (recv(fd, got, sizeof(got), 0) > 0)
		;
	assert_int_equal(log_syslog_line(LOG_INFO, "agent", "again", 5), 0);
	n = (int)recv(fd, got, sizeof(got) - 1, 0);
	assert_true(n > 0);
	got[n] = '\0';
	assert_non_null(strstr(got, "[agent] info: again"));

	/* The receiver goes away: -ENOTCONN, so the caller writes the line elsewhere. */
	close(fd);
	unlink(path);
	assert_int_equal(log_syslog_line(LOG_INFO, NULL, "lost", 4), -ENOTCONN);
	/* ... and comes back: reconnected at most once a second, by whoever logs next. */
	fd = bind_dgram(path);
	sleep(1);
	usleep(100 * 1000);
	assert_int_equal(log_syslog_line(LOG_INFO, NULL, "back", 4), 0);
	n = (int)recv(fd, got, sizeof(got) - 1, 0);
	assert_true(n > 0);
	got[n] = '\0';
	assert_non_null(strstr(got, "info: back"));

	assert_int_equal(log_set_output(LOG_OUT_STDERR, 0, NULL), 0);
	assert_false(log_output_is_syslog());
	close(fd);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_score_format),
		cmocka_unit_test(test_path_arg),
		cmocka_unit_test(test_facility_names),
		cmocka_unit_test(test_syslog_client),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
