/*
 * log.h - the logger. One line per call, written with a single write(2) so lines from several
 * threads never interleave. Levels: debug, info (the peer did wrong, normal events), warn (a
 * resource ran out), error (our fault, recovered), fatal (start-up and bad configuration: exits
 * 1), panic (a broken invariant: aborts with a core).
 *
 * Any thread. The error code argument is a positive or negative errno, or 0 for none.
 * XXX: the line goes straight to stderr; once the agent ships events (a later issue) the shards'
 * lines will go through its ring instead so a stalled log reader can never block a shard.
 */
#ifndef SLUICE_BASE_LOG_H
#define SLUICE_BASE_LOG_H

#include <stdarg.h>
#include <stdnoreturn.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level lvl);
void log_set_prefix(const char *prefix);   /* program name, copied */
void log_set_thread_tag(const char *tag);  /* e.g. "shard 3"; thread-local, copied */

void log_msg(enum log_level lvl, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void log_vmsg(enum log_level lvl, int err, const char *fmt, va_list ap);

#define log_debug(...) log_msg(LOG_DEBUG, 0, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, 0, __VA_ARGS__)
#define log_warn(err, ...)  log_msg(LOG_WARN, (err), __VA_ARGS__)
#define log_error(err, ...) log_msg(LOG_ERROR, (err), __VA_ARGS__)

noreturn void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void panic(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
