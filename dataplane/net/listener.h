/*
 * listener.h - listening sockets and accept: one SO_REUSEPORT socket per shard per listen
 * address, each with a multishot accept on its shard's ring. The kernel spreads connections over
 * the shards of a group by its 4-tuple hash (MACHINE.md: about even).
 *
 * listener_open runs in main before the shards start, and in the agent for the addresses a
 * reload adds; everything else on the owning shard.
 */
#ifndef SLUICE_NET_LISTENER_H
#define SLUICE_NET_LISTENER_H

#include <sys/socket.h>

#include "shard/shard.h"

/* Whether anyone else holds addr: binds a socket without SO_REUSEPORT (SO_REUSEADDR only, so a
 * connection in TIME_WAIT from a previous run does not count) and closes it. A listener of any
 * process on addr, or on the wildcard address of its port, makes it fail: our SO_REUSEPORT
 * sockets would otherwise join another process's group (same user) and share its connections,
 * or fail later with a less clear error. Returns 0, -EADDRINUSE, or another -errno from bind. */
int listener_probe(const struct sockaddr_storage *addr, socklen_t addrlen);

/* Opens a listening socket bound to addr with SO_REUSEPORT. Returns the fd or -errno. */
int listener_open(const struct sockaddr_storage *addr, socklen_t addrlen, int backlog);

/* What happens to an accepted connection: the SMTP server's session start. It owns fd from
 * then on (it must close it, even when it refuses the client). peer is the client's address. */
typedef void listener_accept_fn(struct shard *sh, struct shard_listener *l, int fd,
				const struct sockaddr_storage *peer, socklen_t peerlen);

/* Registers the accept handler (once, before the shards start). */
void listener_setup(listener_accept_fn *fn);
/* Arms a multishot accept on each of the shard's listeners. */
void listener_arm_all(struct shard *sh);
/* Stops accepting: cancels the accepts and closes the sockets (SIGTERM). */
void listener_close_all(struct shard *sh);

/* A reload (conf is the snapshot the shard switches to): an address the shard listens on
 * already keeps its socket and its accept (its sessions, and connections in the backlog, are
 * untouched), one no longer listed is closed, one new to it takes fds[i] (bound by the agent;
 * -1 for those it had; closed here when not needed). fds may be NULL when nothing is new.
 * Listener indexes follow conf. 0, or -ENOMEM (the old listeners stay). */
int listener_reconcile(struct shard *sh, const struct node_config *conf, const int *fds);

#endif
