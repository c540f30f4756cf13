/*
 * log.h - the logger. One line per call, written with a single write(2) (stderr) or a single
 * datagram (syslog), so lines from several threads never interleave. Levels: debug, info (the
 * peer did wrong, normal events), warn (a resource ran out), error (our fault, recovered), fatal
 * (start-up and bad configuration: exits 1), panic (a broken invariant: aborts with a core).
 *
 * Any thread. The error code argument is a positive or negative errno, or 0 for none.
 *
 * Output: stderr (the default) or syslog. syslog is not glibc's syslog(3): that one sends with a
 * blocking send(2) under a process-wide lock, and cannot be pointed at another socket than
 * /dev/log. Here the line goes as one datagram on our own non-blocking AF_UNIX socket connected
 * to log_socket (default /dev/log: journald and rsyslog both read it), in the classic BSD form
 * "<PRI>TAG[PID]: text" (RFC 3164 §4.1 without the timestamp, which both receivers fill in).
 *
 * Never blocking a shard, and the compromise:
 *  - syslog: a datagram the receiver has no room for (EAGAIN) is dropped and counted
 *    (log_dropped()); a receiver that went away (journald restarted) is reconnected at most once
 *    a second by whichever thread notices first (a trylock, never a wait); while there is no
 *    receiver the lines go to stderr. No lock is taken on the path of a line.
 *  - stderr: write(2) on a pipe or a terminal blocks when the reader stalls. The lines a shard
 *    writes per message or per refusal (shard_event: the accepted, reject and delivery lines) do
 *    not come here from the shard: they go through the shard's event ring and the agent thread
 *    writes them, so a stalled stderr stalls only the agent (the ring then fills and events are
 *    dropped and counted, the shard goes on). XXX: the other lines a shard writes directly
 *    (warnings, TLS failures, closes) still write(2) from the shard; with stderr on a pipe
 *    whose reader stops, those writes block that shard. Use log = syslog in production, or let
 *    systemd's journal read stderr (it does not stop reading).
 */
#ifndef SLUICE_BASE_LOG_H
#define SLUICE_BASE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdnoreturn.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

void log_set_level(enum log_level lvl);    /* any thread, at any time (a reload) */
bool log_enabled(enum log_level lvl);      /* whether a line at lvl would be written */
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

/* ---- where lines go ---- */

enum log_output { LOG_OUT_STDERR = 0, LOG_OUT_SYSLOG = 1 };

/* Switches the output. For syslog: facility is a syslog facility number (log_facility_parse),
 * socket_path the datagram socket (NULL or "" for /dev/log). Returns 0, or -errno when the
 * socket cannot be reached now (the output is syslog all the same: lines go to stderr until a
 * reconnect succeeds). Called by one thread at a time (start-up, the agent's reload). */
int log_set_output(enum log_output out, int facility, const char *socket_path);
bool log_output_is_syslog(void);
/* "mail" -> 2, "daemon" -> 3, "local0".."local7" -> 16..23, ...; -EINVAL for an unknown name. */
int log_facility_parse(const char *name);
/* One already formatted line (no newline) to syslog at lvl, tagged like log_msg's lines with tag
 * (NULL: the calling thread's). For the agent's event writer. Returns 0, -EAGAIN (dropped and
 * counted) or -ENOTCONN (no receiver: the caller writes it elsewhere). */
int log_syslog_line(enum log_level lvl, const char *tag, const char *text, size_t len);
/* Lines dropped because the syslog receiver had no room (since start). */
uint64_t log_dropped(void);

#endif
