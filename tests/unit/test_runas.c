/*
 * test_runas.c - dataplane/base/runas.c and pidlock.c: the spool lock and pid file, handing a
 * tree to a user without following links, dropping root for good, and the port range of
 * cfgval_hostport. The privileged cases need root and skip without it.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/cfgval.h"
#include "base/pidlock.h"
#include "base/runas.h"

#define TEST_UID 65534   /* nobody */
#define TEST_GID 65534   /* nogroup */

static char *tmpdir(void)
{
	static char path[64];

	snprintf(path, sizeof(path), "/tmp/sluice-runas-XXXXXX");
	assert_non_null(mkdtemp(path));
	return path;
}

static void rmtree(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static void test_pidlock(void **state)
{
	char *dir = tmpdir(), path[128], buf[128];
	pid_t holder = -1;
	int fd, fd2, pfd;
	ssize_t n;

	(void)state;
	snprintf(path, sizeof(path), "%s/x.lock", dir);
	assert_int_equal(pidlock_holder(path), -ENOENT);
	fd = pidlock_acquire(path, &holder);
	assert_true(fd >= 0);
	assert_int_equal(holder, 0);
	pfd = open(path, O_RDONLY);
	n = read(pfd, buf, sizeof(buf) - 1);
	close(pfd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_int_equal(atol(buf), getpid());
	/* An OFD lock conflicts with another open of the same file, even in this process: that
	 * is what makes the check work from a second process too. */
	fd2 = pidlock_acquire(path, &holder);
	assert_int_equal(fd2, -EWOULDBLOCK);
	assert_int_equal(holder, getpid());
	assert_int_equal(pidlock_holder(path), getpid());
	/* Closing another descriptor of the file does not drop it (a POSIX lock would go). */
	pfd = open(path, O_RDONLY);
	close(pfd);
	assert_int_equal(pidlock_acquire(path, &holder), -EWOULDBLOCK);
	close(fd);
	assert_int_equal(pidlock_holder(path), 0);
	fd = pidlock_acquire(path, &holder);
	assert_true(fd >= 0);
	close(fd);
	/* Never through a symbolic link. */
	snprintf(buf, sizeof(buf), "%s/l.lock", dir);
	assert_int_equal(symlink(path, buf), 0);
	assert_int_equal(pidlock_acquire(buf, &holder), -ELOOP);
	rmtree(dir);
}

static void test_pidfile(void **state)
{
	char *dir = tmpdir(), path[128], link[128];
	FILE *f;
	long v = 0;

	(void)state;
	snprintf(path, sizeof(path), "%s/x.pid", dir);
	f = fopen(path, "w");
	fputs("99999999 and more\n", f);
	fclose(f);
	assert_int_equal(pidfile_write(path), 0);
	f = fopen(path, "r");
	assert_int_equal(fscanf(f, "%ld", &v), 1);
	fclose(f);
	assert_int_equal(v, getpid());
	/* Removed only while it names us. */
	pidfile_remove(path);
	assert_int_equal(access(path, F_OK), -1);
	f = fopen(path, "w");
	fputs("1\n", f);
	fclose(f);
	pidfile_remove(path);
	assert_int_equal(access(path, F_OK), 0);
	snprintf(link, sizeof(link), "%s/l.pid", dir);
	assert_int_equal(symlink(path, link), 0);
	assert_int_equal(pidfile_write(link), -ELOOP);
	rmtree(dir);
}

static void test_chown_tree(void **state)
{
	char *dir = tmpdir(), p[256], outside[256], why[1024];
	struct stat st;
	FILE *f;

	(void)state;
	if (geteuid() != 0)
		skip();
	snprintf(outside, sizeof(outside), "%s-outside", dir);
	f = fopen(outside, "w");
	fclose(f);
	snprintf(p, sizeof(p), "%s/a/b/c", dir);
	snprintf(why, sizeof(why), "mkdir -p '%s' && touch '%s/a/f' '%s/a/b/c/g'", p, dir, dir);
	assert_int_equal(system(why), 0);
	snprintf(p, sizeof(p), "%s/a/link", dir);
	assert_int_equal(symlink(outside, p), 0);
	snprintf(p, sizeof(p), "%s/a/dirlink", dir);
	assert_int_equal(symlink("/etc", p), 0);
	/* dir, a, a/b, a/b/c, a/f, a/b/c/g, link, dirlink */
	assert_int_equal(runas_chown_tree(dir, TEST_UID, TEST_GID, why, sizeof(why)), 8);
	snprintf(p, sizeof(p), "%s/a/b/c/g", dir);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(st.st_uid, TEST_UID);
	assert_int_equal(st.st_gid, TEST_GID);
	snprintf(p, sizeof(p), "%s/a/link", dir);
	assert_int_equal(lstat(p, &st), 0);
	assert_int_equal(st.st_uid, TEST_UID);   /* the link itself */
	assert_int_equal(stat(outside, &st), 0);
	assert_int_equal(st.st_uid, 0);          /* never what it points to */
	assert_int_equal(stat("/etc/passwd", &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(stat("/etc", &st), 0);
	assert_int_equal(st.st_uid, 0);
	/* Done already: nothing to change the second time. */
	assert_int_equal(runas_chown_tree(dir, TEST_UID, TEST_GID, why, sizeof(why)), 0);
	snprintf(p, sizeof(p), "%s/missing", dir);
	assert_int_equal(runas_chown_tree(p, TEST_UID, TEST_GID, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "missing"));
	unlink(outside);
	rmtree(dir);
}

static void test_drop(void **state)
{
	char why[256];
	int status;
	pid_t pid;

	(void)state;
	assert_int_equal(runas_drop(0, TEST_GID, why, sizeof(why)), -EINVAL);
	assert_int_equal(runas_drop(TEST_UID, 0, why, sizeof(why)), -EINVAL);
	if (geteuid() != 0)
		skip();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uid_t r, e, s;
		gid_t g[4];

		if (runas_drop(TEST_UID, TEST_GID, why, sizeof(why)) < 0)
			_exit(10);
		if (getresuid(&r, &e, &s) < 0 || r != TEST_UID || e != TEST_UID || s != TEST_UID)
			_exit(11);
		if (getgroups(4, g) != 1 || g[0] != TEST_GID)
			_exit(12);
		if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0)
			_exit(13);
		if (runas_has_caps())
			_exit(14);
		if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
			_exit(15);
		if (prctl(PR_CAPBSET_READ, 10 /* CAP_NET_BIND_SERVICE */, 0, 0, 0) != 0)
			_exit(16);
		if (open("/etc/shadow", O_RDONLY) >= 0)
			_exit(17);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_hostport_port_range(void **state)
{
	struct sockaddr_storage ss;
	socklen_t sl;

	(void)state;
	assert_int_equal(cfgval_hostport("127.0.0.1:1", true, &ss, &sl), 0);
	assert_int_equal(cfgval_hostport("127.0.0.1:65535", true, &ss, &sl), 0);
	assert_int_equal(cfgval_hostport("127.0.0.1:0", true, &ss, &sl), -ERANGE);
	assert_int_equal(cfgval_hostport("127.0.0.1:65536", true, &ss, &sl), -ERANGE);
	assert_int_equal(cfgval_hostport("[::1]:99999999999999999999999", true, &ss, &sl), -ERANGE);
	assert_int_equal(cfgval_hostport("127.0.0.1:x", true, &ss, &sl), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pidlock),
		cmocka_unit_test(test_pidfile),
		cmocka_unit_test(test_chown_tree),
		cmocka_unit_test(test_drop),
		cmocka_unit_test(test_hostport_port_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
