/*
 * log.c - see log.h.
 */
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum log_level log_level = LOG_INFO;
static char log_prefix[32] = "sluice";
static _Thread_local char log_tag[24];

void log_set_level(enum log_level lvl) { log_level = lvl; }

void log_set_prefix(const char *prefix)
{
	snprintf(log_prefix, sizeof(log_prefix), "%s", prefix);
}

void log_set_thread_tag(const char *tag)
{
	snprintf(log_tag, sizeof(log_tag), "%s", tag);
}

static const char *const log_level_names[] = { "debug", "info", "warning", "error" };

void log_vmsg(enum log_level lvl, int err, const char *fmt, va_list ap)
{
	char line[2048];
	struct timespec ts;
	struct tm tm;
	size_t n;
	int r;

	if (lvl < log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(line + n, sizeof(line) - n, ".%03ldZ %s%s%s%s %s: ", ts.tv_nsec / 1000000,
		     log_prefix, log_tag[0] ? "[" : "", log_tag, log_tag[0] ? "]" : "",
		     log_level_names[lvl]);
	if (r > 0)
		n += (size_t)r;
	if (n < sizeof(line)) {
		r = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
		if (r > 0)
			n += (size_t)r;
	}
	if (n < sizeof(line) && err != 0) {
		r = snprintf(line + n, sizeof(line) - n, ": %s", strerror(err < 0 ? -err : err));
		if (r > 0)
			n += (size_t)r;
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* One write per line: lines from several threads never interleave. */
	while (write(STDERR_FILENO, line, n) < 0 && errno == EINTR)
		;
}

void log_msg(enum log_level lvl, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(lvl, err, fmt, ap);
	va_end(ap);
}

void fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}

void panic(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(LOG_ERROR, 0, fmt, ap);
	va_end(ap);
	abort();
}
