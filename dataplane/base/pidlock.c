/*
 * pidlock.c - see pidlock.h.
 */
#include "pidlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static pid_t pidlock_read_pid(int fd)
{
	char buf[32];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
	long v;

	if (n <= 0)
		return 0;
	buf[n] = '\0';
	v = strtol(buf, NULL, 10);
	return v > 0 ? (pid_t)v : 0;
}

static int pidlock_write_pid(int fd)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());

	if (ftruncate(fd, 0) < 0 || pwrite(fd, buf, (size_t)n, 0) != n)
		return errno ? -errno : -EIO;
	return 0;
}

int pidlock_acquire(const char *path, pid_t *holder_r)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd, r;

	*holder_r = 0;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0) {
		r = (errno == EAGAIN || errno == EACCES) ? -EWOULDBLOCK : -errno;
		if (r == -EWOULDBLOCK)
			*holder_r = pidlock_read_pid(fd);
		close(fd);
		return r;
	}
	r = pidlock_write_pid(fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

pid_t pidlock_holder(const char *path)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	pid_t pid = 0;

	if (fd < 0)
		return -errno;
	/* F_OFD_GETLK reports l_pid -1: the pid comes from the file. A read-only descriptor
	 * can ask about a write lock without taking anything. */
	if (fcntl(fd, F_OFD_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
		pid = pidlock_read_pid(fd);
		if (pid == 0)
			pid = -ESRCH;   /* held, by whom we cannot tell */
	}
	close(fd);
	return pid;
}

int pidfile_write(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644), r;

	if (fd < 0)
		return -errno;
	r = pidlock_write_pid(fd);
	if (close(fd) < 0 && r == 0)
		r = -errno;
	return r;
}

void pidfile_remove(const char *path)
{
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd < 0)
		return;
	if (pidlock_read_pid(fd) == getpid())
		(void)unlink(path);
	close(fd);
}
