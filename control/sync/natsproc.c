/*
 * natsproc.c - the nats-server child: fork/exec, /healthz over a plain HTTP/1.0 request on
 * loopback, reaping, restart with doubling backoff, stop. See natsproc.h.
 */
#include "natsproc.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define NATSPROC_STEP_MS 50

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* One GET /healthz; 0 on "HTTP/1.x 200", -errno otherwise. */
static int healthz_once(int port, int timeout_ms)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int rc = 0;
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0 && errno != EINPROGRESS) {
		rc = -errno;
		goto out;
	}
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	if (poll(&pfd, 1, timeout_ms) != 1) {
		rc = -ETIMEDOUT;
		goto out;
	}
	int soerr = 0;
	socklen_t sl = sizeof soerr;
	getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
	if (soerr) {
		rc = -soerr;
		goto out;
	}
	static const char req[] = "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
	if (send(fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)(sizeof req - 1)) {
		rc = -EIO;
		goto out;
	}
	char head[16];
	size_t got = 0;
	pfd.events = POLLIN;
	while (got < 12) {
		if (poll(&pfd, 1, timeout_ms) != 1) {
			rc = -ETIMEDOUT;
			goto out;
		}
		ssize_t n = recv(fd, head + got, 12 - got, 0);
		if (n <= 0) {
			rc = -EIO;
			goto out;
		}
		got += (size_t)n;
	}
	rc = memcmp(head, "HTTP/1.", 7) == 0 && memcmp(head + 8, " 200", 4) == 0 ? 0 : -EAGAIN;
out:
	close(fd);
	return rc;
}

int natsproc_healthy(int monitor_port, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;
	int rc;
	while ((rc = healthz_once(monitor_port, NATSPROC_STEP_MS * 4)) < 0 && now_ms() < deadline)
		sleep_ms(NATSPROC_STEP_MS);
	return rc;
}

static int spawn(struct natsproc *p)
{
	const char *bin = p->binary ? p->binary : NATSPROC_BINARY;
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)        /* the supervisor died before prctl took effect */
			_exit(1);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		/* The supervisor's sockets and files (a listener, the store) are not the server's. */
		close_range(3, ~0U, 0);
		execl(bin, bin, "-c", p->conf_path, (char *)NULL);
		_exit(127);
	}
	p->pid = pid;
	p->started_ms = now_ms();
	return 0;
}

/* Reaps the child if it has exited; true if it is gone. */
static bool reaped(struct natsproc *p)
{
	int status;
	if (p->pid == 0)
		return true;
	if (waitpid(p->pid, &status, WNOHANG) != p->pid)
		return false;
	p->pid = 0;
	p->last_status = status;
	return true;
}

static int kill_and_reap(struct natsproc *p, int timeout_ms)
{
	if (p->pid == 0)
		return 0;
	kill(p->pid, SIGTERM);
	int64_t deadline = now_ms() + timeout_ms;
	while (!reaped(p)) {
		if (now_ms() >= deadline) {
			kill(p->pid, SIGKILL);
			int status;
			waitpid(p->pid, &status, 0);
			p->last_status = status;
			p->pid = 0;
			break;
		}
		sleep_ms(NATSPROC_STEP_MS / 5);
	}
	return 0;
}

static int start_and_wait(struct natsproc *p, int timeout_ms)
{
	int rc = spawn(p);
	if (rc < 0)
		return rc;
	int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		if (healthz_once(p->monitor_port, NATSPROC_STEP_MS * 4) == 0)
			return 0;
		if (reaped(p))
			return -ECHILD;
		if (now_ms() >= deadline) {
			kill_and_reap(p, 0);
			return -ETIMEDOUT;
		}
		sleep_ms(NATSPROC_STEP_MS);
	}
}

int natsproc_start(struct natsproc *p, int timeout_ms)
{
	if (p->pid != 0)
		return -EALREADY;
	p->restarts = 0;
	p->backoff_ms = NATSPROC_BACKOFF_MIN;
	p->restart_at_ms = 0;
	return start_and_wait(p, timeout_ms);
}

int natsproc_poll(struct natsproc *p)
{
	if (p->pid != 0) {
		if (!reaped(p))
			return 0;
		int64_t ran = now_ms() - p->started_ms;
		if (ran >= NATSPROC_STABLE_MS)
			p->backoff_ms = NATSPROC_BACKOFF_MIN;
		p->restart_at_ms = now_ms() + p->backoff_ms;
		return 0;
	}
	if (p->restart_at_ms == 0 || now_ms() < p->restart_at_ms)
		return 0;
	p->restarts++;
	int rc = start_and_wait(p, NATSPROC_START_MS);
	if (rc < 0) {
		p->backoff_ms = p->backoff_ms * 2 > NATSPROC_BACKOFF_MAX ? NATSPROC_BACKOFF_MAX
									  : p->backoff_ms * 2;
		p->restart_at_ms = now_ms() + p->backoff_ms;
		return rc;
	}
	p->restart_at_ms = 0;
	p->backoff_ms = p->backoff_ms * 2 > NATSPROC_BACKOFF_MAX ? NATSPROC_BACKOFF_MAX
								  : p->backoff_ms * 2;
	return 1;
}

int natsproc_restart(struct natsproc *p, int timeout_ms)
{
	kill_and_reap(p, timeout_ms);
	p->restart_at_ms = 0;
	return start_and_wait(p, NATSPROC_START_MS);
}

int natsproc_stop(struct natsproc *p, int timeout_ms)
{
	p->restart_at_ms = 0;
	return kill_and_reap(p, timeout_ms);
}
