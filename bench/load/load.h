/*
 * load.h - sluice-load, the SMTP load generator and sink: shared types.
 *
 * Three modes, each run by N worker threads with one io_uring ring each (no sharing on the hot
 * path: every worker owns its sessions, its counters and its latency samples; the main thread
 * merges them after the workers have joined):
 *   send  many concurrent client sessions sending messages (load_client.c)
 *   idle  N connections that read the banner, send EHLO and hold (load_client.c)
 *   sink  a server that accepts and counts, with per-Message-ID records (load_sink.c)
 *
 * Limits: a reply line or command line longer than LOAD_LINE_MAX is an error (counted, the
 * connection closed); a message is at most what the corpus or --size gives.
 */
#ifndef SLUICE_LOAD_H
#define SLUICE_LOAD_H

#include <liburing.h>
#include <pthread.h>
#include <time.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define LOAD_LINE_MAX     2048u
#define LOAD_MAX_SOURCES  64u
#define LOAD_MAX_LISTEN   8u
#define LOAD_MAX_THREADS  64u

enum load_mode { LOAD_SEND, LOAD_IDLE, LOAD_SINK };

/* The stage a reply answered, for the table of non-2xx replies. */
enum load_stage {
	LOAD_ST_CONNECT, LOAD_ST_BANNER, LOAD_ST_EHLO, LOAD_ST_STARTTLS, LOAD_ST_TLS, LOAD_ST_MAIL,
	LOAD_ST_RCPT, LOAD_ST_DATA, LOAD_ST_DOT, LOAD_ST_RSET, LOAD_ST_QUIT, LOAD_ST_COUNT
};
extern const char *const load_stage_names[LOAD_ST_COUNT];

struct load_addr {
	struct sockaddr_storage sa;
	socklen_t               len;
	char                    text[64];
};

/* One prepared message body: the corpus message in SMTP wire form (CR LF, dot-stuffed, its own
 * Message-ID header renamed so ours is the only one), and the SHA-256 of its body part as a sink
 * sees it after unstuffing (for loss checks). */
struct load_body {
	uint8_t *wire;
	size_t   len;
	size_t   raw_len;     /* size once unstuffed: what counts as message bytes */
	char     sha256[65];
};

struct load_opts {
	enum load_mode   mode;
	unsigned         threads;
	/* send / idle */
	struct load_addr server;
	unsigned         concurrency;     /* sessions (send) or simultaneous opens (idle) */
	uint64_t         messages;        /* 0 = until duration */
	double           duration;        /* seconds; 0 = until messages */
	unsigned         per_conn;        /* messages per connection; 0 = unlimited */
	unsigned         rcpts;
	size_t           size;            /* fixed body size when no corpus */
	const char      *corpus;
	const char      *from;
	const char      *rcpt_domain;
	const char      *helo;
	const char      *id_prefix;
	bool             starttls;
	bool             pipelining;
	double           rate;            /* messages/s over all threads; 0 = open throttle */
	struct load_addr sources[LOAD_MAX_SOURCES];
	unsigned         nsources;
	const char      *record;          /* message-id TAB reply-code [TAB sha256] per message */
	bool             record_hash;
	double           drain_timeout;   /* seconds to let sessions finish after the end */
	unsigned         connections;     /* idle: connections to hold */
	double           hold;            /* idle: seconds */
	double           open_timeout;    /* idle: seconds to get every connection held */
	const char      *ready_file;      /* idle/sink: written (path) once ready */
	/* sink */
	struct load_addr listen[LOAD_MAX_LISTEN];
	unsigned         nlisten;
	const char      *tls_cert, *tls_key;
	const char      *hostname;
	/* output */
	const char      *json;
	bool             quiet;
};

/* Latency samples in microseconds, appended; sorted for percentiles at the end. */
struct load_samples {
	uint32_t *v;
	size_t    n, cap;
};
void load_samples_add(struct load_samples *s, uint64_t ns);
void load_samples_merge(struct load_samples *dst, const struct load_samples *src);
/* q in [0,1]; sorts on first call. Returns milliseconds. */
double load_samples_pct(struct load_samples *s, double q);
void load_samples_free(struct load_samples *s);

enum load_lat { LOAD_LAT_CONNECT, LOAD_LAT_BANNER, LOAD_LAT_DATA, LOAD_LAT_COUNT };

struct load_stats {
	uint64_t msgs_ok, msgs_failed, bytes_ok, rcpts_ok, rcpts_failed;
	uint64_t conns_ok, conns_failed, conns_closed_early, tls_ok, tls_failed;
	uint64_t protocol_errors;          /* replies we could not parse, lines too long */
	uint64_t idle_held;
	uint64_t sink_msgs, sink_bytes, sink_conns, sink_cmds, sink_bad_cmds;
	uint64_t first_ns, last_ns;        /* first connect, last message done */
	uint64_t replies[LOAD_ST_COUNT][600]; /* non-2xx (and unexpected) replies by code */
	struct load_samples lat[LOAD_LAT_COUNT];
};

/* The record file: whole lines, appended with one write(2) per flush (O_APPEND), so lines from
 * several workers never interleave and a reader sees only complete lines. */
struct load_record {
	int    fd;
	char  *buf;
	size_t len, cap;
};
void load_record_line(struct load_record *r, const char *a, size_t alen, const char *b,
		      const char *c);
void load_record_flush(struct load_record *r);

struct load_run;   /* shared, read-only after start (except the atomics) */

struct load_worker {
	struct load_run    *run;
	unsigned            id;
	struct io_uring     ring;
	struct load_stats   st;
	struct load_record  rec;
	void               *priv;         /* the mode's state */
	pthread_t           thread;
	int                 err;
};

struct load_run {
	struct load_opts     o;
	struct load_body    *bodies;
	size_t               nbodies;
	SSL_CTX             *tls_client, *tls_server;
	unsigned             ring_flags;   /* what load_ring_init got (worker 0) */
	atomic_uint_fast64_t claimed;      /* messages started (count mode) */
	atomic_uint_fast64_t idle_ready;   /* idle: connections that reached the hold */
	atomic_uint          idle_done;    /* idle: workers done opening */
	atomic_bool          stop;         /* signal or end of the run */
	uint64_t             t0_ns;
	int                  record_fd;
};

/* Creates the ring with the best flags this kernel takes: SINGLE_ISSUER + DEFER_TASKRUN +
 * COOP_TASKRUN, else COOP_TASKRUN, else none. Call on the thread that will use the ring.
 * Returns 0 or -errno; *flags_r gets the flags in force. */
int load_ring_init(struct io_uring *ring, unsigned entries, unsigned *flags_r);
/* An SQE, submitting first if the SQ is full. Never NULL (panics if the ring is broken). */
struct io_uring_sqe *load_ring_sqe(struct io_uring *ring);
const char *load_ring_flags_str(unsigned flags);

/* user_data: session slot (32 bits) | op (8 bits). */
#define LOAD_UD(slot, op) (((uint64_t)(slot) << 8) | (uint64_t)(op))
#define LOAD_UD_SLOT(ud)  ((uint32_t)((ud) >> 8))
#define LOAD_UD_OP(ud)    ((uint8_t)((ud) & 0xff))

/* TLS over memory BIOs: the ring moves the ciphertext, OpenSSL never touches the socket. */
struct load_tls {
	SSL *ssl;
	BIO *rbio, *wbio;   /* rbio: bytes from the peer; wbio: bytes to send */
};
int load_tls_start(struct load_tls *t, SSL_CTX *ctx, bool server);
void load_tls_free(struct load_tls *t);
/* Feeds ciphertext received from the peer. */
void load_tls_feed(struct load_tls *t, const void *p, size_t len);
/* Ciphertext waiting to go out (0 if none). */
size_t load_tls_pending_out(struct load_tls *t);
/* Moves up to cap bytes of pending ciphertext into out. */
size_t load_tls_take_out(struct load_tls *t, void *out, size_t cap);

int load_parse_addr(const char *s, struct load_addr *a);

/* Prepares the message bodies (corpus, or one synthetic body of o->size bytes). */
int load_msg_prepare(struct load_run *run);
void load_msg_free(struct load_run *run);
/* The SHA-256 of p[0..len) as 64 hex digits. */
void load_sha256_hex(const void *p, size_t len, char out[65]);

int load_client_run(struct load_worker *w);
int load_sink_run(struct load_worker *w);

static inline uint64_t load_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

#endif
