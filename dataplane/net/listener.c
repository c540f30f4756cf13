/*
 * listener.c - see listener.h.
 *
 * Multishot accept delivers one CQE per connection with IORING_CQE_F_MORE while it stays armed;
 * a CQE without F_MORE means it stopped (error, or cancelled) and is re-armed unless we are
 * closing. The peer address is read with getpeername: multishot accept has one address buffer
 * for all its completions.
 */
#include "net/listener.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "conf/node_config.h"

static listener_accept_fn *listener_accept;

int listener_probe(const struct sockaddr_storage *addr, socklen_t addrlen)
{
	int fd, one = 1, r = 0;

	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (addr->ss_family == AF_INET6 &&
	     setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (const struct sockaddr *)addr, addrlen) < 0)
		r = -errno;
	close(fd);
	return r;
}

int listener_open(const struct sockaddr_storage *addr, socklen_t addrlen, int backlog)
{
	int fd, one = 1, r;

	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
		goto fail;
	if (addr->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		goto fail;
	if (bind(fd, (const struct sockaddr *)addr, addrlen) < 0 || listen(fd, backlog) < 0)
		goto fail;
	return fd;
fail:
	r = -errno;
	close(fd);
	return r;
}

static void listener_arm(struct shard_listener *l)
{
	struct io_uring_sqe *sqe = shard_sqe(l->sh);

	io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, shard_ud(SHARD_OP_ACCEPT, (uintptr_t)l));
	l->armed = true;
}

/* Frees a closed listener whose accept can post nothing more. */
static void listener_free_closed(struct shard_listener *l)
{
	struct shard *sh = l->sh;

	for (struct shard_listener **pp = &sh->closing_listeners; *pp; pp = &(*pp)->next_closing)
		if (*pp == l) {
			*pp = l->next_closing;
			break;
		}
	free(l);
}

static void listener_on_cqe(struct shard *sh, const struct io_uring_cqe *cqe)
{
	struct shard_listener *l = (struct shard_listener *)(uintptr_t)shard_ud_low(cqe->user_data);
	struct sockaddr_storage peer;
	socklen_t peerlen = sizeof(peer);
	int fd = cqe->res;

	if (!(cqe->flags & IORING_CQE_F_MORE)) {
		l->armed = false;
		if (!l->closing)
			listener_arm(l);
	}
	if (l->closing) {
		if (fd >= 0)
			close(fd);
		if (!l->armed)
			listener_free_closed(l);   /* its last completion */
		return;
	}
	if (fd < 0) {
		/* EMFILE/ENFILE/ENOMEM: a resource ran out; the client waits in the backlog. */
		if (fd != -ECANCELED)
			log_warn(fd, "accept on %s", sh->conf->listen[l->index].address);
		return;
	}
	if (getpeername(fd, (struct sockaddr *)&peer, &peerlen) < 0) {
		close(fd);    /* the client already left */
		return;
	}
	listener_accept(sh, l, fd, &peer, peerlen);
}

void listener_setup(listener_accept_fn *fn)
{
	listener_accept = fn;
	shard_set_handler(SHARD_OP_ACCEPT, listener_on_cqe);
}

void listener_arm_all(struct shard *sh)
{
	for (unsigned i = 0; i < sh->nlisteners; i++)
		if (!sh->listeners[i]->armed && !sh->listeners[i]->closing)
			listener_arm(sh->listeners[i]);
}

/* Stops one listener: cancels its accept and closes its socket. It is freed with its accept's
 * last completion (or now, when none is in flight). */
static void listener_close(struct shard_listener *l)
{
	struct shard *sh = l->sh;

	if (l->closing)
		return;
	l->closing = true;
	if (l->armed) {
		struct io_uring_sqe *sqe = shard_sqe(sh);

		io_uring_prep_cancel64(sqe, shard_ud(SHARD_OP_ACCEPT, (uintptr_t)l), 0);
		io_uring_sqe_set_data64(sqe, shard_ud(SHARD_OP_IGNORE, 0));
	}
	/* Closing our descriptor leaves the others of the SO_REUSEPORT group accepting until their
	 * shards close theirs. */
	close(l->fd);
	l->fd = -1;
	l->next_closing = sh->closing_listeners;
	sh->closing_listeners = l;
	if (!l->armed)
		listener_free_closed(l);
}

void listener_close_all(struct shard *sh)
{
	for (unsigned i = 0; i < sh->nlisteners; i++)
		listener_close(sh->listeners[i]);
	sh->nlisteners = 0;
}

int listener_reconcile(struct shard *sh, const struct node_config *conf, const int *fds)
{
	struct shard_listener **next = calloc(conf->nlisten ? conf->nlisten : 1, sizeof(*next));
	unsigned added = 0, kept = 0, closed = 0;

	if (next == NULL) {
		for (unsigned i = 0; fds != NULL && i < conf->nlisten; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < conf->nlisten; i++) {
		const struct listen_conf *lc = &conf->listen[i];

		for (unsigned k = 0; k < sh->nlisteners && next[i] == NULL; k++)
			if (sh->listeners[k] != NULL && listen_addr_same(&sh->listeners[k]->addr, &lc->addr)) {
				next[i] = sh->listeners[k];
				sh->listeners[k] = NULL;
				kept++;
			}
		if (next[i] != NULL) {
			next[i]->index = i;
			if (fds != NULL && fds[i] >= 0)
				close(fds[i]);   /* the agent bound one we already have */
			continue;
		}
		if (fds == NULL || fds[i] < 0 || (next[i] = calloc(1, sizeof(*next[i]))) == NULL) {
			log_error(0, "shard %u: [listen %s] %s: no socket for it", sh->id, lc->name,
				  lc->address);
			if (fds != NULL && fds[i] >= 0)
				close(fds[i]);
			continue;
		}
		*next[i] = (struct shard_listener){ .sh = sh, .fd = fds[i], .index = i,
						    .addr = lc->addr, .addrlen = lc->addrlen };
		added++;
	}
	for (unsigned k = 0; k < sh->nlisteners; k++)
		if (sh->listeners[k] != NULL) {
			listener_close(sh->listeners[k]);
			closed++;
		}
	free(sh->listeners);
	sh->listeners = next;
	sh->nlisteners = 0;
	/* keep the array dense: a listen entry that got no socket is left out */
	for (unsigned i = 0; i < conf->nlisten; i++)
		if (next[i] != NULL)
			next[sh->nlisteners++] = next[i];
	if (!sh->stopping)
		listener_arm_all(sh);
	if ((added || closed) && sh->id == 0)
		log_info("listeners: %u opened, %u closed, %u kept", added, closed, kept);
	return 0;
}
