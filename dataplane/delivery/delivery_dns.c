/*
 * delivery_dns.c - see delivery_dns.h.
 *
 * A watch is one socket c-ares opened, for as long as it is open. It outlives the socket while a
 * poll of it is in flight (the kernel holds a reference to the file until the poll completes):
 * a closed socket's watch is marked dead, its poll removed, and the watch freed when the poll's
 * completion comes back. So a completion never reaches freed memory, and a new socket that gets
 * the same descriptor number gets a new watch.
 */
#include "delivery_dns.h"

#include <ares.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "shard/shard.h"

struct dns_watch {
	struct delivery_dns *d;
	struct dns_watch    *next;
	int                  fd;
	bool                 want_r, want_w;
	bool                 inflight;    /* a POLL_ADD is with the kernel */
	bool                 removing;    /* a POLL_REMOVE for it was queued */
	bool                 dead;        /* c-ares closed the socket */
	bool                 busy;        /* inside handle_cqe: not to be freed under our feet */
	unsigned             armed_mask;
};

struct delivery_dns {
	struct io_uring    *ring;
	struct timer_wheel *tw;
	struct timer        timer;
	ares_channel        channel;
	struct dns_watch   *watches;
	unsigned            inflight;     /* polls with the kernel */
	unsigned            pending;      /* lookups not yet called back */
	bool                shut;
};

struct dns_query {
	struct delivery_dns  *d;
	delivery_dns_mx_fn   *mx_fn;
	delivery_dns_addr_fn *addr_fn;
	void                 *arg;
};

static pthread_once_t dns_once = PTHREAD_ONCE_INIT;
static int dns_lib_status;

static void dns_lib_init(void)
{
	dns_lib_status = ares_library_init(ARES_LIB_INIT_ALL);
}

static struct io_uring_sqe *dns_sqe(struct delivery_dns *d)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(d->ring);

	if (sqe == NULL) {
		io_uring_submit(d->ring);
		sqe = io_uring_get_sqe(d->ring);
		if (sqe == NULL)
			panic("delivery_dns: no SQE after submitting");
	}
	return sqe;
}

static void watch_unlink_free(struct dns_watch *w)
{
	struct dns_watch **pp = &w->d->watches;

	while (*pp != NULL && *pp != w)
		pp = &(*pp)->next;
	if (*pp == w)
		*pp = w->next;
	free(w);
}

static void watch_remove_poll(struct dns_watch *w)
{
	struct io_uring_sqe *sqe;

	if (!w->inflight || w->removing)
		return;
	sqe = dns_sqe(w->d);
	io_uring_prep_poll_remove(sqe, shard_ud(SHARD_OP_DNS, (uint64_t)(uintptr_t)w));
	io_uring_sqe_set_data64(sqe, shard_ud(SHARD_OP_IGNORE, 0));
	w->removing = true;
}

/* Makes the kernel watch what c-ares wants now. */
static void watch_sync(struct dns_watch *w)
{
	unsigned mask = (w->want_r ? POLLIN : 0) | (w->want_w ? POLLOUT : 0);
	struct io_uring_sqe *sqe;

	if (w->dead || mask == 0) {
		watch_remove_poll(w);
		return;
	}
	if (w->inflight) {
		/* A poll for other events is out: take it back; its completion re-arms. */
		if (w->armed_mask != mask)
			watch_remove_poll(w);
		return;
	}
	sqe = dns_sqe(w->d);
	io_uring_prep_poll_add(sqe, w->fd, mask);
	io_uring_sqe_set_data64(sqe, shard_ud(SHARD_OP_DNS, (uint64_t)(uintptr_t)w));
	w->inflight = true;
	w->removing = false;
	w->armed_mask = mask;
	w->d->inflight++;
}

static void dns_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
	struct delivery_dns *d = data;
	struct dns_watch *w;

	for (w = d->watches; w != NULL; w = w->next)
		if (w->fd == fd && !w->dead)
			break;
	if (!readable && !writable) {
		if (w == NULL)
			return;
		w->dead = true;
		w->want_r = w->want_w = false;
		if (w->inflight)
			watch_remove_poll(w);
		else if (!w->busy)
			watch_unlink_free(w);
		return;
	}
	if (w == NULL) {
		w = calloc(1, sizeof(*w));
		if (w == NULL) {
			/* XXX: c-ares cannot be told; the lookup on this socket will time out. */
			log_warn(-ENOMEM, "delivery_dns: no memory to watch a resolver socket");
			return;
		}
		w->d = d;
		w->fd = fd;
		w->next = d->watches;
		d->watches = w;
	}
	w->want_r = readable != 0;
	w->want_w = writable != 0;
	if (!w->busy)
		watch_sync(w);
}

static void dns_timer_rearm(struct delivery_dns *d)
{
	struct timeval tv, *tvp;
	uint64_t ms;

	if (d->channel == NULL) {
		timer_cancel(d->tw, &d->timer);
		return;
	}
	tvp = ares_timeout(d->channel, NULL, &tv);
	if (tvp == NULL) {
		timer_cancel(d->tw, &d->timer);
		return;
	}
	ms = (uint64_t)tvp->tv_sec * 1000u + (uint64_t)tvp->tv_usec / 1000u;
	timer_arm(d->tw, &d->timer, ms ? ms : 1);
}

static void dns_timer_fire(struct timer *t)
{
	struct delivery_dns *d = (struct delivery_dns *)((char *)t - offsetof(struct delivery_dns, timer));

	if (d->channel != NULL)
		ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
	dns_timer_rearm(d);
}

int delivery_dns_new(struct delivery_dns **d_r, struct io_uring *ring, struct timer_wheel *tw,
		     const struct delivery_dns_conf *conf)
{
	struct ares_options opt;
	struct delivery_dns *d;
	int mask, st;

	pthread_once(&dns_once, dns_lib_init);
	if (dns_lib_status != ARES_SUCCESS)
		return -ENOMEM;
	d = calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->ring = ring;
	d->tw = tw;
	timer_init(&d->timer, dns_timer_fire);

	memset(&opt, 0, sizeof(opt));
	opt.sock_state_cb = dns_sock_state;
	opt.sock_state_cb_data = d;
	opt.timeout = conf != NULL && conf->timeout_ms ? (int)conf->timeout_ms : 2000;
	opt.tries = conf != NULL && conf->tries ? (int)conf->tries : 3;
	opt.lookups = (char *)"b";      /* DNS only: an MTA does not read /etc/hosts */
	opt.domains = NULL;
	opt.ndomains = 0;               /* no search list: every name is absolute */
	mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_LOOKUPS |
	       ARES_OPT_DOMAINS;
	st = ares_init_options(&d->channel, &opt, mask);
	if (st != ARES_SUCCESS) {
		log_warn(0, "delivery_dns: ares_init_options: %s", ares_strerror(st));
		free(d);
		return st == ARES_ENOMEM ? -ENOMEM : -EINVAL;
	}
	if (conf != NULL && conf->servers != NULL) {
		st = ares_set_servers_ports_csv(d->channel, conf->servers);
		if (st != ARES_SUCCESS) {
			ares_destroy(d->channel);
			free(d);
			return st == ARES_ENOMEM ? -ENOMEM : -EINVAL;
		}
	}
	*d_r = d;
	return 0;
}

static int dns_err(int status)
{
	switch (status) {
	case ARES_SUCCESS: return 0;
	case ARES_ENODATA: return -ENODATA;
	case ARES_ENOTFOUND: return -ENOENT;
	case ARES_ENOMEM: return -ENOMEM;
	case ARES_EDESTRUCTION:
	case ARES_ECANCELLED: return -ECANCELED;
	case ARES_EBADRESP:
	case ARES_EFORMERR: return -EBADMSG;
	case ARES_EBADNAME: return -EINVAL;
	default: return -EAGAIN;   /* SERVFAIL, REFUSED, timeout, connection refused, ... */
	}
}

static void dns_mx_done(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
	struct dns_query *q = arg;
	struct delivery_dns_mx mx[DELIVERY_DNS_MX_MAX];
	struct ares_mx_reply *list = NULL, *r;
	unsigned n = 0;
	int err = dns_err(status);

	(void)timeouts;
	if (status == ARES_SUCCESS) {
		int st = ares_parse_mx_reply(abuf, alen, &list);

		if (st == ARES_SUCCESS) {
			for (r = list; r != NULL && n < DELIVERY_DNS_MX_MAX; r = r->next) {
				size_t len = strlen(r->host);

				if (len >= DELIVERY_DNS_NAME_MAX)
					continue;
				memcpy(mx[n].host, r->host, len + 1);
				if (len > 0 && mx[n].host[len - 1] == '.')
					mx[n].host[len - 1] = '\0';
				mx[n].pref = r->priority;
				n++;
			}
			ares_free_data(list);
		} else if (st != ARES_ENODATA) {
			err = dns_err(st);
		}
	}
	/* NODATA: the name exists without MX records: the implicit MX (RFC 5321 5.1). */
	if (err == -ENODATA)
		err = 0;
	q->d->pending--;
	q->mx_fn(q->arg, err, mx, err == 0 ? n : 0);
	free(q);
}

static void dns_addr_done(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
	struct dns_query *q = arg;
	struct delivery_dns_addr a[DELIVERY_DNS_ADDR_MAX];
	unsigned n = 0;
	int err = dns_err(status);

	(void)timeouts;
	if (status == ARES_SUCCESS && res != NULL) {
		for (struct ares_addrinfo_node *nd = res->nodes; nd != NULL && n < DELIVERY_DNS_ADDR_MAX;
		     nd = nd->ai_next) {
			if (nd->ai_addr == NULL || nd->ai_addrlen > sizeof(a[n].ss))
				continue;
			if (nd->ai_family != AF_INET && nd->ai_family != AF_INET6)
				continue;
			memset(&a[n].ss, 0, sizeof(a[n].ss));
			memcpy(&a[n].ss, nd->ai_addr, nd->ai_addrlen);
			a[n].len = nd->ai_addrlen;
			n++;
		}
		if (n == 0)
			err = -ENODATA;
	}
	if (res != NULL)
		ares_freeaddrinfo(res);
	q->d->pending--;
	q->addr_fn(q->arg, err, a, err == 0 ? n : 0);
	free(q);
}

static bool name_ok(const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	if (n == 0 || n >= DELIVERY_DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] <= 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

int delivery_dns_mx(struct delivery_dns *d, const char *domain, delivery_dns_mx_fn *fn, void *arg)
{
	struct dns_query *q;

	if (d->shut)
		return -ESHUTDOWN;
	if (!name_ok(domain))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->d = d;
	q->mx_fn = fn;
	q->arg = arg;
	d->pending++;
	ares_query(d->channel, domain, 1 /* C_IN */, 15 /* T_MX */, dns_mx_done, q);
	dns_timer_rearm(d);
	return 0;
}

int delivery_dns_addr(struct delivery_dns *d, const char *host, int family,
		      delivery_dns_addr_fn *fn, void *arg)
{
	struct ares_addrinfo_hints hints;
	struct dns_query *q;

	if (d->shut)
		return -ESHUTDOWN;
	if (!name_ok(host) || (family != AF_INET && family != AF_INET6 && family != AF_UNSPEC))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (q == NULL)
		return -ENOMEM;
	q->d = d;
	q->addr_fn = fn;
	q->arg = arg;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = family;
	/* NOSORT: RFC 6724 sorting in c-ares connects probe sockets; the caller orders anyway. */
	hints.ai_flags = ARES_AI_NOSORT;
	d->pending++;
	ares_getaddrinfo(d->channel, host, NULL, &hints, dns_addr_done, q);
	dns_timer_rearm(d);
	return 0;
}

void delivery_dns_handle_cqe(struct delivery_dns *d, const struct io_uring_cqe *cqe)
{
	struct dns_watch *w = (struct dns_watch *)(uintptr_t)shard_ud_low(cqe->user_data);
	ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

	if (w == NULL)
		return;
	if (w->d != d)
		panic("delivery_dns: a completion for another resolver");
	w->inflight = false;
	w->removing = false;
	d->inflight--;
	if (w->dead) {
		watch_unlink_free(w);
		return;
	}
	if (cqe->res > 0) {
		if (cqe->res & (POLLIN | POLLERR | POLLHUP))
			rfd = w->fd;
		if (cqe->res & (POLLOUT | POLLERR | POLLHUP))
			wfd = w->fd;
	} else if (cqe->res != -ECANCELED && cqe->res != 0) {
		/* Let c-ares read and find the error itself (it then closes the socket). */
		rfd = w->fd;
	}
	if ((rfd != ARES_SOCKET_BAD || wfd != ARES_SOCKET_BAD) && d->channel != NULL) {
		w->busy = true;
		ares_process_fd(d->channel, rfd, wfd);
		w->busy = false;
	}
	if (w->dead) {
		if (!w->inflight)
			watch_unlink_free(w);
	} else {
		watch_sync(w);
	}
	dns_timer_rearm(d);
}

unsigned delivery_dns_pending(const struct delivery_dns *d) { return d->pending; }

void delivery_dns_shutdown(struct delivery_dns *d)
{
	if (d->shut)
		return;
	d->shut = true;
	if (d->channel != NULL) {
		/* Calls every lookup back with ARES_EDESTRUCTION and closes the sockets (each close
		 * comes to dns_sock_state, which removes its poll). */
		ares_destroy(d->channel);
		d->channel = NULL;
	}
	timer_cancel(d->tw, &d->timer);
	for (struct dns_watch *w = d->watches, *next; w != NULL; w = next) {
		next = w->next;
		w->dead = true;
		if (w->inflight)
			watch_remove_poll(w);
		else
			watch_unlink_free(w);
	}
}

bool delivery_dns_busy(const struct delivery_dns *d) { return d->inflight > 0; }

void delivery_dns_free(struct delivery_dns **dp)
{
	struct delivery_dns *d = *dp;

	if (d == NULL)
		return;
	delivery_dns_shutdown(d);
	if (d->inflight > 0)
		panic("delivery_dns_free with %u polls in flight", d->inflight);
	free(d);
	*dp = NULL;
}
