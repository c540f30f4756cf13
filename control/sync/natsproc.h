/*
 * natsproc.h - supervises one nats-server child: starts it on a generated configuration
 * (natsconf.h), waits until its monitoring port's /healthz answers 200, restarts it with
 * backoff when it dies, restarts it on demand (a changed configuration: leaf remotes,
 * listeners and leafnode authorization are not reloadable in 2.9), and stops it.
 *
 * One thread owns a struct natsproc (sluice-control's main loop, the node's agent). The child
 * gets PR_SET_PDEATHSIG SIGTERM, so a supervisor that dies does not leave a server behind
 * holding the ports and the JetStream store. Functions return 0 or -errno.
 */
#ifndef SLUICE_SYNC_NATSPROC_H
#define SLUICE_SYNC_NATSPROC_H

#include <stdint.h>
#include <sys/types.h>

#define NATSPROC_BINARY        "/usr/sbin/nats-server"
#define NATSPROC_START_MS      15000   /* start to healthy, at most */
#define NATSPROC_STOP_MS       5000    /* SIGTERM to exit, then SIGKILL */
#define NATSPROC_BACKOFF_MIN   500     /* first restart delay after a death, ms */
#define NATSPROC_BACKOFF_MAX   30000   /* doubling up to this */
#define NATSPROC_STABLE_MS     60000   /* a run this long resets the backoff */

struct natsproc {
	const char *binary;          /* nats-server (NULL: NATSPROC_BINARY) */
	const char *conf_path;
	int         monitor_port;    /* its http port on 127.0.0.1 */
	pid_t       pid;             /* 0 while not running */
	int64_t     started_ms;      /* monotonic time of the last start */
	int64_t     restart_at_ms;   /* while dead: when the next start is due */
	uint32_t    backoff_ms;
	uint32_t    restarts;        /* restarts after a death, since natsproc_start */
	int         last_status;     /* wait status of the last death */
};

/* Whether a server answers 200 on http://127.0.0.1:port/healthz within timeout_ms. */
int natsproc_healthy(int monitor_port, int timeout_ms);

/* Starts the server and waits up to timeout_ms for /healthz. -ETIMEDOUT (the child is killed),
 * -ECHILD (it exited before it was healthy: a bad configuration, a port in use), -errno. */
int natsproc_start(struct natsproc *p, int timeout_ms);

/* Called periodically (every few hundred ms): reaps a dead child, and starts it again once its
 * backoff is over. Returns 1 if it restarted the server now, 0 otherwise, -errno when the
 * restart failed (the next attempt is scheduled with a longer backoff). */
int natsproc_poll(struct natsproc *p);

/* Stops the server (SIGTERM, SIGKILL after timeout_ms) and starts it again at once. */
int natsproc_restart(struct natsproc *p, int timeout_ms);

/* Stops the server: SIGTERM, then SIGKILL after timeout_ms; reaps it. 0 if none was running. */
int natsproc_stop(struct natsproc *p, int timeout_ms);

#endif
