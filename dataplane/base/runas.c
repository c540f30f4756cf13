/*
 * runas.c - see runas.h. Linux only: capset/capget through syscall(2) (no libcap), prctl(2).
 */
#include "runas.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RUNAS_MAX_DEPTH 16

static int runas_capget(struct __user_cap_data_struct d[2])
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };

	memset(d, 0, 2 * sizeof(*d));
	return syscall(SYS_capget, &h, d) < 0 ? -errno : 0;
}

int runas_has_caps(void)
{
	struct __user_cap_data_struct d[2];

	if (runas_capget(d) < 0)
		return 0;
	return (d[0].effective | d[1].effective | d[0].permitted | d[1].permitted) != 0;
}

int runas_drop_caps(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];

	/* Ambient capabilities go first: they must stay a subset of permitted and inheritable. */
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capset, &h, d) < 0)
		return -errno;
	return runas_has_caps() ? -EPERM : 0;
}

/* The calling thread's capability sets: permitted and effective to mask (within what it has),
 * inheritable and ambient empty. */
static int runas_caps_set(uint64_t permitted, uint64_t effective)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct d[2];
	int r = runas_capget(d);

	if (r < 0)
		return r;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	permitted &= (uint64_t)d[0].permitted | (uint64_t)d[1].permitted << 32;
	effective &= permitted;
	d[0].permitted = (uint32_t)permitted;
	d[1].permitted = (uint32_t)(permitted >> 32);
	d[0].effective = (uint32_t)effective;
	d[1].effective = (uint32_t)(effective >> 32);
	d[0].inheritable = d[1].inheritable = 0;
	return syscall(SYS_capset, &h, d) < 0 ? -errno : 0;
}

#define RUNAS_BIND_MASK (1ull << CAP_NET_BIND_SERVICE)

int runas_keep_bind_only(void)
{
	struct __user_cap_data_struct d[2];
	int r = runas_caps_set(RUNAS_BIND_MASK, 0);

	if (r < 0)
		return r;
	if ((r = runas_capget(d)) < 0)
		return r;
	return (d[0].effective | d[1].effective | d[1].permitted |
		(d[0].permitted & ~(uint32_t)RUNAS_BIND_MASK)) != 0 ? -EPERM : 0;
}

int runas_bind_cap(int on)
{
	struct __user_cap_data_struct d[2];
	int r = runas_capget(d);

	if (r < 0)
		return r;
	if (on && !(d[0].permitted & RUNAS_BIND_MASK))
		return -EPERM;
	return runas_caps_set((uint64_t)d[0].permitted | (uint64_t)d[1].permitted << 32,
			      on ? RUNAS_BIND_MASK : 0);
}

int runas_drop(uid_t uid, gid_t gid, char *why, size_t whylen)
{
	return runas_drop_keep_bind(uid, gid, 0, why, whylen);
}

int runas_drop_keep_bind(uid_t uid, gid_t gid, int keep_bind, char *why, size_t whylen)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg, groups[4];
	int n;

	if (uid == 0 || gid == 0) {
		snprintf(why, whylen, "will not switch to uid %u gid %u (root)", (unsigned)uid,
			 (unsigned)gid);
		return -EINVAL;
	}
	/* The bounding set too, so that nothing executed later could get a capability back from
	 * a file (no_new_privs below says the same; two locks). */
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if ((!keep_bind || cap != CAP_NET_BIND_SERVICE) &&
		    prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) {
			snprintf(why, whylen, "PR_CAPBSET_DROP: %s", strerror(errno));
			return -errno;
		}
	/* Groups first: once the uid is not 0 they can no longer be changed. */
	if (setgroups(1, &gid) < 0) {
		snprintf(why, whylen, "setgroups(%u): %s", (unsigned)gid, strerror(errno));
		return -errno;
	}
	if (setresgid(gid, gid, gid) < 0) {
		snprintf(why, whylen, "setresgid(%u): %s", (unsigned)gid, strerror(errno));
		return -errno;
	}
	/* to keep CAP_NET_BIND_SERVICE across the uid switch, which clears the permitted set */
	if (keep_bind && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) {
		snprintf(why, whylen, "PR_SET_KEEPCAPS: %s", strerror(errno));
		return -errno;
	}
	if (setresuid(uid, uid, uid) < 0) {
		snprintf(why, whylen, "setresuid(%u): %s", (unsigned)uid, strerror(errno));
		return -errno;
	}
	/* Trust nothing: check that the switch happened and cannot be undone. */
	if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid ||
	    getresgid(&rg, &eg, &sg) < 0 || rg != gid || eg != gid || sg != gid) {
		snprintf(why, whylen, "the ids did not change");
		return -EPERM;
	}
	n = getgroups(4, groups);
	if (n < 0 || n > 1 || (n == 1 && groups[0] != gid)) {
		snprintf(why, whylen, "supplementary groups are still set");
		return -EPERM;
	}
	if (setuid(0) == 0 || seteuid(0) == 0 || setgid(0) == 0 || setegid(0) == 0) {
		snprintf(why, whylen, "root could be regained after the switch");
		return -EPERM;
	}
	if (keep_bind) {
		(void)prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
		if (runas_keep_bind_only() < 0) {
			snprintf(why, whylen, "capabilities other than CAP_NET_BIND_SERVICE are left "
				 "after the switch");
			return -EPERM;
		}
	} else if (runas_has_caps() && runas_drop_caps() < 0) {
		snprintf(why, whylen, "capabilities are left after the switch");
		return -EPERM;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(why, whylen, "PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
		return -errno;
	}
	/* A set-id switch makes the process undumpable; panic() wants its core. */
	(void)prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
	return 0;
}

static int runas_chown_at(int dfd, const char *path, uid_t uid, gid_t gid, int depth, char *why,
			  size_t whylen)
{
	struct dirent *de;
	DIR *d;
	int fd, n = 0, r;

	if (depth > RUNAS_MAX_DEPTH) {
		snprintf(why, whylen, "%s: deeper than %d levels", path, RUNAS_MAX_DEPTH);
		return -ELOOP;
	}
	fd = dup(dfd);
	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		snprintf(why, whylen, "%s: %s", path, strerror(-r));
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;   /* gone meanwhile */
			r = -errno;
			goto fail;
		}
		if (st.st_uid != uid || st.st_gid != gid) {
			if (fchownat(dfd, de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0) {
				r = -errno;
				goto fail;
			}
			n++;
		}
		if (S_ISDIR(st.st_mode)) {
			char sub[4096];
			int sfd = openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sfd < 0) {
				r = -errno;
				goto fail;
			}
			snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
			r = runas_chown_at(sfd, sub, uid, gid, depth + 1, why, whylen);
			close(sfd);
			if (r < 0) {
				closedir(d);
				return r;
			}
			n += r;
		}
	}
	closedir(d);
	return n;
fail:
	snprintf(why, whylen, "%s/%s: %s", path, de->d_name, strerror(-r));
	closedir(d);
	return r;
}

int runas_chown_tree(const char *dir, uid_t uid, gid_t gid, char *why, size_t whylen)
{
	struct stat st;
	int fd, n = 0, r;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(why, whylen, "%s: %s", dir, strerror(-r));
		if (fd >= 0)
			close(fd);
		return r;
	}
	if (st.st_uid != uid || st.st_gid != gid) {
		if (fchown(fd, uid, gid) < 0) {
			r = -errno;
			snprintf(why, whylen, "%s: %s", dir, strerror(-r));
			close(fd);
			return r;
		}
		n++;
	}
	r = runas_chown_at(fd, dir, uid, gid, 0, why, whylen);
	close(fd);
	return r < 0 ? r : n + r;
}
