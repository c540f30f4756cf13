/*
 * delivery_dns.h - asynchronous MX and address lookups (c-ares) driven by the shard's io_uring
 * and timer wheel, so a lookup never blocks the shard's thread.
 *
 * How: c-ares's socket-state callback says which sockets it wants watched; each is watched with a
 * one-shot IORING_OP_POLL_ADD whose user_data is shard_ud(SHARD_OP_DNS, watch); the shard hands
 * every SHARD_OP_DNS completion to delivery_dns_handle_cqe, which calls ares_process_fd and
 * re-arms the poll. c-ares's own timeouts (retries, server rotation) ride one timer on the wheel,
 * re-armed from ares_timeout after every call into c-ares. POLL_REMOVE requests carry
 * shard_ud(SHARD_OP_IGNORE, 0).
 *
 * The module takes a ring and a timer wheel rather than the shard, so it can run (and be tested)
 * on any ring; the shard passes &sh->ring and &sh->timers. Submission is left to the ring's owner
 * (the shard submits once per loop turn).
 *
 * Lookups are absolute (no search list, no /etc/hosts: "b" lookups only), as an MTA's are.
 * Each lookup's callback is called exactly once, from inside handle_cqe, the timer, or
 * delivery_dns_shutdown (-ECANCELED); never from inside the call that started it... except when
 * c-ares fails at once (e.g. a bad name), which c-ares reports synchronously.
 *
 * One instance per shard; the shard's thread only.
 */
#ifndef SLUICE_DELIVERY_DNS_H
#define SLUICE_DELIVERY_DNS_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/timer.h"

struct delivery_dns;

struct delivery_dns_conf {
	const char *servers;     /* "127.0.0.1:5353,[::1]:53" (c-ares CSV); NULL: resolv.conf */
	uint32_t    timeout_ms;  /* first try's timeout (c-ares doubles it per round); 0: 2000 */
	uint32_t    tries;       /* 0: 3 */
};

#define DELIVERY_DNS_NAME_MAX 256
#define DELIVERY_DNS_MX_MAX   32
#define DELIVERY_DNS_ADDR_MAX 16

struct delivery_dns_mx {
	char     host[DELIVERY_DNS_NAME_MAX];   /* without the trailing dot; "" for the root */
	uint16_t pref;
};

struct delivery_dns_addr {
	struct sockaddr_storage ss;    /* port 0: the caller sets it */
	socklen_t               len;
};

/*
 * err: 0 (nmx >= 1 records, unsorted: see delivery_route_mx), or 0 with nmx == 0 (the name
 * exists but has no MX: the implicit MX applies); -ENOENT (NXDOMAIN: permanent); -EAGAIN
 * (SERVFAIL, refused, timeout: try later); -EBADMSG (a malformed answer: try later);
 * -ECANCELED (shut down); -ENOMEM.
 */
typedef void delivery_dns_mx_fn(void *arg, int err, const struct delivery_dns_mx *mx, unsigned nmx);
/*
 * err: 0 with n >= 1 addresses (IPv6 and IPv4 as the answers came); -ENODATA (the name has no
 * address); -ENOENT (NXDOMAIN); -EAGAIN; -ECANCELED; -ENOMEM.
 */
typedef void delivery_dns_addr_fn(void *arg, int err, const struct delivery_dns_addr *a,
				  unsigned n);

/* Returns 0, -ENOMEM, or -EINVAL (c-ares refused the options or the server list). */
int delivery_dns_new(struct delivery_dns **d_r, struct io_uring *ring, struct timer_wheel *tw,
		     const struct delivery_dns_conf *conf);

/* Starts a lookup. 0 (fn will be called), or -errno with no callback: -EINVAL (bad name),
 * -ESHUTDOWN (after shutdown), -ENOMEM. */
int delivery_dns_mx(struct delivery_dns *d, const char *domain, delivery_dns_mx_fn *fn, void *arg);
/* family: AF_INET, AF_INET6 or AF_UNSPEC (both). */
int delivery_dns_addr(struct delivery_dns *d, const char *host, int family,
		      delivery_dns_addr_fn *fn, void *arg);

/* Every completion whose user_data has SHARD_OP_DNS in its top bits. */
void delivery_dns_handle_cqe(struct delivery_dns *d, const struct io_uring_cqe *cqe);

/* Lookups in progress (not yet called back). */
unsigned delivery_dns_pending(const struct delivery_dns *d);

/* Cancels every lookup (callbacks with -ECANCELED) and asks the ring to drop the polls. The
 * caller then keeps feeding completions until delivery_dns_busy() is false, and frees. */
void delivery_dns_shutdown(struct delivery_dns *d);
bool delivery_dns_busy(const struct delivery_dns *d);
/* Only once not busy (a broken invariant otherwise: panics). */
void delivery_dns_free(struct delivery_dns **d);

#endif
