/*
 * log.c - see log.h.
 */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = LOG_INFO;
static char log_prefix[32] = "sluice";
static _Thread_local char log_tag[24];

/* syslog: one socket for the process's life, re-connected in place (never closed, so no thread
 * can ever send on a descriptor number that meanwhile became a client's socket). */
static _Atomic int log_out = LOG_OUT_STDERR;
static _Atomic int log_sfd = -1;
static _Atomic int log_facility = 2;              /* mail */
static _Atomic bool log_connected;
static _Atomic uint64_t log_ndropped;
static _Atomic int64_t log_last_connect;          /* CLOCK_MONOTONIC seconds */
static _Atomic int log_pid;                       /* getpid() is a system call each time */
static pthread_mutex_t log_connect_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)] = "/dev/log";

void log_set_level(enum log_level lvl) { atomic_store_explicit(&log_level, lvl, memory_order_relaxed); }

bool log_enabled(enum log_level lvl)
{
	return (int)lvl >= atomic_load_explicit(&log_level, memory_order_relaxed);
}

void log_set_prefix(const char *prefix)
{
	snprintf(log_prefix, sizeof(log_prefix), "%s", prefix);
}

void log_set_thread_tag(const char *tag)
{
	snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

static const char *const log_level_names[] = { "debug", "info", "warning", "error" };
static const int log_severity[] = { 7, 6, 4, 3 };   /* RFC 5424 §6.2.1 */

static int64_t log_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec;
}

/* Connects the socket to log_sock_path. Caller holds log_connect_mu. */
static int log_connect_locked(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = atomic_load(&log_sfd);

	if (fd < 0) {
		fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return -errno;
		atomic_store(&log_sfd, fd);
	}
	memcpy(sa.sun_path, log_sock_path, sizeof(sa.sun_path));
	atomic_store(&log_last_connect, log_mono_s());
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = -errno;

		/* An AF_UNSPEC connect dissolves the old association: nothing goes to the old path. */
		struct sockaddr un = { .sa_family = AF_UNSPEC };
		(void)connect(fd, &un, sizeof(un));
		atomic_store(&log_connected, false);
		return e;
	}
	atomic_store(&log_connected, true);
	return 0;
}

/* The receiver went away or never was: try again, at most once a second, never waiting. */
static void log_maybe_reconnect(void)
{
	if (log_mono_s() - atomic_load(&log_last_connect) < 1)
		return;
	if (pthread_mutex_trylock(&log_connect_mu) != 0)
		return;
	(void)log_connect_locked();
	pthread_mutex_unlock(&log_connect_mu);
}

int log_set_output(enum log_output out, int facility, const char *socket_path)
{
	int r = 0;

	if (out == LOG_OUT_SYSLOG) {
		atomic_store(&log_pid, (int)getpid());
		pthread_mutex_lock(&log_connect_mu);
		snprintf(log_sock_path, sizeof(log_sock_path), "%s",
			 socket_path != NULL && socket_path[0] ? socket_path : "/dev/log");
		atomic_store(&log_facility, facility & 0x1f);
		r = log_connect_locked();
		pthread_mutex_unlock(&log_connect_mu);
	}
	atomic_store(&log_out, (int)out);
	return r;
}

bool log_output_is_syslog(void)
{
	return atomic_load_explicit(&log_out, memory_order_relaxed) == LOG_OUT_SYSLOG;
}

int log_facility_parse(const char *name)
{
	static const struct { const char *name; int code; } fac[] = {
		{ "kern", 0 }, { "user", 1 }, { "mail", 2 }, { "daemon", 3 }, { "auth", 4 },
		{ "syslog", 5 }, { "lpr", 6 }, { "news", 7 }, { "uucp", 8 }, { "cron", 9 },
		{ "authpriv", 10 }, { "ftp", 11 }, { "local0", 16 }, { "local1", 17 },
		{ "local2", 18 }, { "local3", 19 }, { "local4", 20 }, { "local5", 21 },
		{ "local6", 22 }, { "local7", 23 },
	};

	for (size_t i = 0; i < sizeof(fac) / sizeof(fac[0]); i++)
		if (strcasecmp(name, fac[i].name) == 0)
			return fac[i].code;
	return -EINVAL;
}

uint64_t log_dropped(void)
{
	return atomic_load(&log_ndropped);
}

int log_syslog_line(enum log_level lvl, const char *tag, const char *text, size_t len)
{
	char dg[2200];
	int fd = atomic_load_explicit(&log_sfd, memory_order_relaxed);
	int n;

	if (fd < 0)
		return -ENOTCONN;
	if (!atomic_load_explicit(&log_connected, memory_order_relaxed)) {
		log_maybe_reconnect();
		if (!atomic_load(&log_connected))
			return -ENOTCONN;
	}
	if (tag == NULL)
		tag = log_tag;
	n = snprintf(dg, sizeof(dg), "<%d>%s[%d]: %s%s%s%s: ",
		     atomic_load_explicit(&log_facility, memory_order_relaxed) * 8 + log_severity[lvl],
		     log_prefix, atomic_load_explicit(&log_pid, memory_order_relaxed), tag[0] ? "[" : "", tag, tag[0] ? "] " : "",
		     log_level_names[lvl]);
	if (n < 0)
		return -EINVAL;
	if (len > sizeof(dg) - (size_t)n)
		len = sizeof(dg) - (size_t)n;
	memcpy(dg + n, text, len);
	for (;;) {
		if (send(fd, dg, (size_t)n + len, MSG_DONTWAIT | MSG_NOSIGNAL) >= 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
			atomic_fetch_add_explicit(&log_ndropped, 1, memory_order_relaxed);
			return -EAGAIN;
		}
		/* ECONNREFUSED, ENOTCONN, ENOENT: the receiver is gone (journald restarting). */
		atomic_store(&log_connected, false);
		log_maybe_reconnect();
		if (!atomic_load(&log_connected))
			return -ENOTCONN;
	}
}

static void log_stderr_line(enum log_level lvl, const char *text, size_t len)
{
	char line[2200];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s%s%s%s %s: ", ts.tv_nsec / 1000000,
		     log_prefix, log_tag[0] ? "[" : "", log_tag, log_tag[0] ? "]" : "",
		     log_level_names[lvl]);
	if (r > 0)
		n += (size_t)r;
	if (len > sizeof(line) - 1 - n)
		len = sizeof(line) - 1 - n;
	memcpy(line + n, text, len);
	n += len;
	line[n++] = '\n';
	/* One write per line: lines from several threads never interleave. */
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
}

static void log_vmsg_to(enum log_level lvl, int err, bool also_stderr, const char *fmt, va_list ap)
{
	char text[2048];
	size_t n = 0;
	int r;

	r = vsnprintf(text, sizeof(text), fmt, ap);
	if (r > 0)
		n = (size_t)r < sizeof(text) ? (size_t)r : sizeof(text) - 1;
	if (err != 0 && n < sizeof(text) - 1) {
		r = snprintf(text + n, sizeof(text) - n, ": %s", strerror(err < 0 ? -err : err));
		if (r > 0)
			n += (size_t)r < sizeof(text) - n ? (size_t)r : sizeof(text) - n - 1;
	}
	if (log_output_is_syslog()) {
		r = log_syslog_line(lvl, NULL, text, n);
		if (r != -ENOTCONN && !also_stderr)
			return;
	}
	log_stderr_line(lvl, text, n);
}

void log_vmsg(enum log_level lvl, int err, const char *fmt, va_list ap)
{
	if (!log_enabled(lvl))
		return;
	log_vmsg_to(lvl, err, false, fmt, ap);
}

void log_msg(enum log_level lvl, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, err, fmt, ap);
	va_end(ap);
}

/* The last words also go to stderr with syslog on: whoever started the program sees them. */
void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg_to(LOG_ERROR, 0, true, fmt, ap);
	va_end(ap);
	exit(1);
}

void panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg_to(LOG_ERROR, 0, true, fmt, ap);
	va_end(ap);
	abort();
}
