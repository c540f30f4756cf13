/*
 * pidlock.h - one daemon per directory: an exclusive lock on a lock file that holds the owner's
 * pid (so a second daemon can say which process it found), and a pid file for init scripts and
 * operators.
 *
 * The lock is an open file description lock (F_OFD_SETLK): it belongs to the descriptor, is
 * released by the kernel when the process dies however it dies (kill -9 included), and is not
 * dropped when some other descriptor of the same file is closed, as a POSIX record lock would be.
 * Start-up only (main). Mail-agnostic.
 */
#ifndef SLUICE_BASE_PIDLOCK_H
#define SLUICE_BASE_PIDLOCK_H

#include <sys/types.h>

/* Takes the lock on path (created 0644 if missing, never through a symbolic link) and writes
 * our pid into it. Returns the descriptor, to be kept open for the life of the process;
 * -EWOULDBLOCK when another process holds it (*holder_r: its pid as written in the file, or 0
 * when unknown); another -errno on failure. */
int pidlock_acquire(const char *path, pid_t *holder_r);

/* Without taking it: the pid of the process that holds the lock on path, 0 when nobody does,
 * or -errno (-ENOENT: no lock file). */
pid_t pidlock_holder(const char *path);

/* Writes "PID\n" to path (replacing it; never through a symbolic link). Returns 0 or -errno. */
int pidfile_write(const char *path);
/* Removes path if it still names this process. */
void pidfile_remove(const char *path);

#endif
