/*
 * runas.h - running a daemon with no more privilege than it needs: switching from root to an
 * unprivileged user once the privileged work is done (binding port 25, opening what only root
 * may open), dropping capabilities a non-root start was given (systemd's AmbientCapabilities),
 * and handing a directory tree to the user that will write it.
 *
 * Called by main at start-up, before any other thread exists: capabilities are per thread, and
 * the rest of the process must never see the privileged state; the one kept for a reload's new
 * listeners (CAP_NET_BIND_SERVICE, permitted only, in the agent's thread) is dropped by every
 * other thread as it starts. Mail-agnostic.
 */
#ifndef SLUICE_BASE_RUNAS_H
#define SLUICE_BASE_RUNAS_H

#include <stddef.h>
#include <sys/types.h>

/* As root: the capability bounding set emptied, supplementary groups to just gid, then real/effective/saved gid and uid to gid/uid,
 * then checks that none of it can be undone (setuid(0) and setgid(0) fail, no capability is
 * left, every id is the new one) and sets no_new_privs. The process stays dumpable, so panic()
 * still leaves a core. Returns 0, or -errno with what failed in why; the caller must exit then. */
int runas_drop(uid_t uid, gid_t gid, char *why, size_t whylen);

/* runas_drop, but CAP_NET_BIND_SERVICE stays in the permitted set (not effective) when
 * keep_bind: the agent binds the listeners a reload adds (runas_bind_cap around the bind), and
 * every other thread drops it when it starts (runas_drop_caps). */
int runas_drop_keep_bind(uid_t uid, gid_t gid, int keep_bind, char *why, size_t whylen);

/* Not as root: keeps CAP_NET_BIND_SERVICE permitted (if held) and nothing else; nothing
 * effective. 0, or -errno (-EPERM: something else is left). This thread only. */
int runas_keep_bind_only(void);

/* Raises (on) or lowers CAP_NET_BIND_SERVICE in this thread's effective set, around a bind.
 * -EPERM when it is not permitted. */
int runas_bind_cap(int on);

/* Not as root: clears every capability (effective, permitted, inheritable, ambient) this
 * thread holds, e.g. CAP_NET_BIND_SERVICE once the listeners are bound. Returns 0 or -errno. */
int runas_drop_caps(void);

/* True if the calling thread holds any capability in its effective or permitted set. */
int runas_has_caps(void);

/* Gives dir and everything under it to uid:gid (lchown semantics: a symbolic link is never
 * followed, only dir itself may be one). At most 16 levels deep. Returns the number of entries
 * changed, or -errno with the path that failed in why. */
int runas_chown_tree(const char *dir, uid_t uid, gid_t gid, char *why, size_t whylen);

#endif
