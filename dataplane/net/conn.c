/*
 * conn.c - a connection's plumbing on the shard's ring (see conn.h): arming recv, send and
 * connect, their completions, the memory-BIO TLS, the deadline and the cancel-then-free.
 *
 * Shard thread only.
 */
#include "net/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <unistd.h>

#include "base/counter.h"
#include "base/log.h"

#define CONN_IO_RECV    0u
#define CONN_IO_SEND    1u
#define CONN_IO_CONNECT 2u
#define CONN_KEEP_BYTES 4096u   /* an empty buffer larger than this is freed (conn_shrink) */

static inline uint64_t conn_ud(struct conn *c, unsigned kind)
{
	return shard_ud(SHARD_OP_CONN, (uintptr_t)c | kind);
}

static void conn_deadline_fire(struct timer *t)
{
	struct conn *c = CONN_OWNER(t, struct conn, deadline);

	if (!c->closing)
		c->ops->deadline(c);
}

static void conn_retry_fire(struct timer *t)
{
	struct conn *c = CONN_OWNER(t, struct conn, retry);

	if (c->closing)
		return;
	if (c->ops->recv_retry != NULL)
		c->ops->recv_retry(c);
	else
		conn_recv(c);
}

void conn_init(struct conn *c, struct shard *sh, const struct conn_ops *ops)
{
	*c = (struct conn){ .sh = sh, .ops = ops, .fd = -1 };
	timer_init(&c->deadline, conn_deadline_fire);
	timer_init(&c->retry, conn_retry_fire);
}

static void conn_nodelay(int fd)
{
	int one = 1;

	/* Replies and pipelined command groups are small: Nagle would hold them. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void conn_attach(struct conn *c, int fd)
{
	conn_nodelay(fd);
	c->fd = fd;
	c->connected = true;
}

int conn_connect(struct conn *c, const struct sockaddr *sa, socklen_t salen)
{
	struct io_uring_sqe *sqe;

	c->fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return -errno;
	conn_nodelay(c->fd);
	sqe = shard_sqe(c->sh);
	io_uring_prep_connect(sqe, c->fd, sa, salen);
	io_uring_sqe_set_data64(sqe, conn_ud(c, CONN_IO_CONNECT));
	c->connecting = true;
	c->inflight++;
	return 0;
}

/* ---- output ---- */

int conn_write(struct conn *c, const void *p, size_t len)
{
	return buf_append(&c->out, p, len);
}

/* Moves what the TLS engine wrote (records of the handshake, of the data) to tx. */
static int conn_pull_tls(struct conn *c)
{
	size_t pending;

	while ((pending = BIO_ctrl_pending(c->wbio)) > 0) {
		int n;

		if (pending > INT_MAX)
			pending = INT_MAX;
		if (buf_reserve(&c->tx, pending) < 0)
			return -ENOMEM;
		n = BIO_read(c->wbio, c->tx.last, (int)pending);
		if (n <= 0)
			break;
		c->tx.last += n;
	}
	return 0;
}

/* out -> tx: through TLS once it is up; else as they are (by swapping the buffers when tx is
 * empty, so the bytes are not copied). */
static int conn_stage(struct conn *c)
{
	if (buf_unread(&c->out) > 0) {
		if (c->tls_up) {
			if (SSL_write(c->ssl, c->out.pos, (int)buf_unread(&c->out)) <= 0)
				return -EIO;
			buf_consume(&c->out, buf_unread(&c->out));
		} else if (buf_unread(&c->tx) == 0) {
			struct buf t = c->tx;

			c->tx = c->out;
			c->out = t;
			c->out.pos = c->out.last = c->out.start;
		} else {
			if (buf_append(&c->tx, c->out.pos, buf_unread(&c->out)) < 0)
				return -ENOMEM;
			buf_consume(&c->out, buf_unread(&c->out));
		}
	}
	return c->wbio != NULL ? conn_pull_tls(c) : 0;
}

int conn_flush(struct conn *c)
{
	struct io_uring_sqe *sqe;
	int r;

	if (c->send_armed || c->closing || !c->connected)
		return 0;
	r = conn_stage(c);
	if (r < 0)
		return r;
	if (buf_unread(&c->tx) == 0)
		return 0;
	sqe = shard_sqe(c->sh);
	io_uring_prep_send(sqe, c->fd, c->tx.pos, buf_unread(&c->tx), MSG_NOSIGNAL);
	io_uring_sqe_set_data64(sqe, conn_ud(c, CONN_IO_SEND));
	c->send_armed = true;
	c->inflight++;
	return 0;
}

void conn_shrink(struct conn *c)
{
	if (buf_unread(&c->tx) == 0 && buf_capacity(&c->tx) > CONN_KEEP_BYTES)
		buf_release(&c->tx);
	if (buf_unread(&c->out) == 0 && buf_capacity(&c->out) > CONN_KEEP_BYTES)
		buf_release(&c->out);
}

/* ---- input ---- */

void conn_recv(struct conn *c)
{
	struct io_uring_sqe *sqe;

	if (c->recv_armed || c->closing || !c->connected)
		return;
	sqe = shard_sqe(c->sh);
	io_uring_prep_recv(sqe, c->fd, NULL, 0, 0);
	sqe->flags |= IOSQE_BUFFER_SELECT;
	sqe->buf_group = SHARD_BUF_GROUP;
	io_uring_sqe_set_data64(sqe, conn_ud(c, CONN_IO_RECV));
	c->recv_armed = true;
	c->inflight++;
}

/* ---- deadline ---- */

void conn_deadline_in(struct conn *c, uint64_t ms)
{
	if (!c->closing)
		timer_arm(&c->sh->timers, &c->deadline, ms);
}

void conn_deadline_cancel(struct conn *c)
{
	timer_cancel(&c->sh->timers, &c->deadline);
}

/* ---- TLS ---- */

int conn_tls_start(struct conn *c, SSL_CTX *ctx, enum conn_tls_role role, const char *host,
		   bool verify)
{
	struct in6_addr ip;

	if (ctx == NULL || (c->ssl = SSL_new(ctx)) == NULL)
		return -ENOMEM;
	c->rbio = BIO_new(BIO_s_mem());
	c->wbio = BIO_new(BIO_s_mem());
	if (c->rbio == NULL || c->wbio == NULL) {
		BIO_free(c->rbio);
		BIO_free(c->wbio);
		SSL_free(c->ssl);
		c->ssl = NULL;
		c->rbio = c->wbio = NULL;
		return -ENOMEM;
	}
	/* Memory BIOs: an empty read BIO must say "retry", not "end of file". */
	BIO_set_mem_eof_return(c->rbio, -1);
	SSL_set_bio(c->ssl, c->rbio, c->wbio);
	if (role == CONN_TLS_SERVER) {
		SSL_set_accept_state(c->ssl);
		return 0;
	}
	SSL_set_connect_state(c->ssl);
	if (host != NULL && inet_pton(AF_INET, host, &ip) != 1 && inet_pton(AF_INET6, host, &ip) != 1) {
		SSL_set_tlsext_host_name(c->ssl, host);
		if (verify)
			SSL_set1_host(c->ssl, host);
	}
	return 0;
}

int conn_tls_handshake(struct conn *c)
{
	int r = SSL_do_handshake(c->ssl);

	if (r == 1) {
		c->tls_up = true;
		return 1;
	}
	r = SSL_get_error(c->ssl, r);
	return r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE ? 0 : -EPROTO;
}

int conn_tls_read(struct conn *c, void *dst, size_t cap)
{
	int n = SSL_read(c->ssl, dst, cap > INT_MAX ? INT_MAX : (int)cap);

	if (n > 0)
		return n;
	switch (SSL_get_error(c->ssl, n)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		return -ECONNRESET;
	default:
		return -EPROTO;
	}
}

const char *conn_tls_version(const struct conn *c)
{
	return SSL_get_version(c->ssl);
}

const char *conn_tls_cipher(const struct conn *c)
{
	return SSL_get_cipher_name(c->ssl);
}

int conn_tls_version_id(const struct conn *c)
{
	return SSL_version(c->ssl);
}

/* ---- close ---- */

void conn_close(struct conn *c)
{
	struct shard *sh = c->sh;

	if (c->closing)
		return;
	c->closing = true;
	timer_cancel(&sh->timers, &c->deadline);
	timer_cancel(&sh->timers, &c->retry);
	if (c->fd >= 0 && (c->recv_armed || c->send_armed || c->connecting)) {
		/* The socket's operations must come back before the fd goes; a send to a peer that
		 * does not read would never come back on its own. */
		struct io_uring_sqe *sqe = shard_sqe(sh);

		io_uring_prep_cancel_fd(sqe, c->fd, IORING_ASYNC_CANCEL_ALL);
		io_uring_sqe_set_data64(sqe, shard_ud(SHARD_OP_IGNORE, 0));
		if (c->send_armed)
			shutdown(c->fd, SHUT_RDWR);
	}
}

void conn_fini(struct conn *c)
{
	struct shard *sh = c->sh;

	if (c->inflight != 0)
		panic("conn: freed with %u operations in flight", c->inflight);
	timer_cancel(&sh->timers, &c->deadline);
	timer_cancel(&sh->timers, &c->retry);
	if (c->fd >= 0) {
		struct io_uring_sqe *sqe = shard_sqe(sh);

		io_uring_prep_close(sqe, c->fd);
		io_uring_sqe_set_data64(sqe, shard_ud(SHARD_OP_IGNORE, 0));
		c->fd = -1;
	}
	if (c->ssl != NULL)
		SSL_free(c->ssl);   /* frees both BIOs */
	c->ssl = NULL;
	c->rbio = c->wbio = NULL;
	buf_release(&c->out);
	buf_release(&c->tx);
}

/* ---- completions ---- */

/* A completion of a closing conn: the last one hands it back to its owner. */
static void conn_settle(struct conn *c)
{
	if (c->inflight == 0 && c->ops->quiet != NULL)
		c->ops->quiet(c);
}

static void conn_on_recv(struct conn *c, const struct io_uring_cqe *cqe)
{
	struct shard *sh = c->sh;
	int res = cqe->res;
	bool has_buf = cqe->flags & IORING_CQE_F_BUFFER;
	unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;

	c->recv_armed = false;
	c->inflight--;
	if (has_buf && (c->closing || res <= 0)) {
		shard_buf_recycle(sh, bid);
		has_buf = false;
	}
	if (c->closing) {
		conn_settle(c);
		return;
	}
	if (!has_buf) {
		if (res == -ENOBUFS) {
			/* Every provided buffer is in use: try again on the next tick. */
			ctr_inc(&sh->ctr.recv_nobufs);
			timer_arm(&sh->timers, &c->retry, 1);
			return;
		}
		c->ops->input_end(c, res);
		return;
	}
	if (c->ssl != NULL) {
		/* Ciphertext goes into OpenSSL's memory BIO; the buffer returns to the kernel now. */
		BIO_write(c->rbio, shard_buf(sh, bid), res);
		shard_buf_recycle(sh, bid);
		c->ops->input(c, NULL, (size_t)res);
		return;
	}
	c->ops->input(c, shard_buf(sh, bid), (size_t)res);
	shard_buf_recycle(sh, bid);
}

static void conn_on_send(struct conn *c, int res)
{
	c->send_armed = false;
	c->inflight--;
	if (c->closing) {
		conn_settle(c);
		return;
	}
	if (res >= 0)
		buf_consume(&c->tx, (size_t)res);
	c->ops->sent(c, res < 0 ? res : 0);
}

static void conn_on_connect(struct conn *c, int res)
{
	c->connecting = false;
	c->inflight--;
	if (c->closing) {
		conn_settle(c);
		return;
	}
	c->connected = res == 0;
	c->ops->connected(c, res);
}

static void conn_on_cqe(struct shard *sh, const struct io_uring_cqe *cqe)
{
	uint64_t low = shard_ud_low(cqe->user_data);
	struct conn *c = (struct conn *)(uintptr_t)(low & ~UINT64_C(7));

	(void)sh;
	switch (low & 7) {
	case CONN_IO_RECV: conn_on_recv(c, cqe); break;
	case CONN_IO_SEND: conn_on_send(c, cqe->res); break;
	case CONN_IO_CONNECT: conn_on_connect(c, cqe->res); break;
	default: panic("conn: bad completion tag %u", (unsigned)(low & 7));
	}
}

void conn_setup(void)
{
	shard_set_handler(SHARD_OP_CONN, conn_on_cqe);
}
