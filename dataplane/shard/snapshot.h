/*
 * snapshot.h - the node's configuration as an immutable, reference-counted snapshot.
 *
 * A snapshot is built from the INI file by whoever loads it (main at start, the agent on SIGHUP),
 * never changed afterwards, and handed to every shard; each shard switches at a safe point and
 * drops its reference to the old one, which is freed when the last holder lets go (the same idea
 * as Seastar's foreign pointers and RCU). A later issue builds snapshots from the control plane's
 * sync stream instead of a file; the shards will not notice.
 *
 * The file (INI, parsed with inih):
 *   [node]      name, hostname, shards, spool_dir, rules_dir, log_level, banner, log
 *               (stderr|syslog), log_facility, log_socket, postmaster,
 *               user, group, run_as_root, pid_file (struct node_ops; applied by main at start)
 *   [limits]    message_size, recipients, errors, session_time, idle_timeout,
 *               connections_per_ip, max_sessions, command_line, shutdown_grace, bad_commands_drop
 *   [spool]     segment_size, spill_size, min_free, commit_delay
 *   [tls]       cert, key
 *   [listen N]  address, role (primary|fallback), starttls (yes|no)
 *   [policy]    the default policy (keys of policy_conf_set)
 *   [delivery]  hold, retry_first, retry_max, expire, delay_warning, retry_flat, retry_jitter,
 *               concurrency (per destination per shard), connect_timeout, idle_time (an idle
 *               outbound connection is kept this long), helo_name, dns_server, mx_port,
 *               helo/starttls/mail/rcpt/data_init/data_xfer/data_done/rset/quit_timeout (total
 *               deadlines per outbound stage), min_data_rate, long_lines (pass|wrap|refuse)
 *   [domain D]  route (host:port[ prio][, ...] | mx), tls (may|required|none), tls_verify,
 *               spool_quota, allow_routing, long_lines (overrides [delivery]'s), and policy keys
 *               overriding the default
 * A bad file is refused with "FILE:LINE: [section] key: reason": besides bad values, a section
 * or key given twice (the list keys of a policy excepted), a missing hostname or spool_dir, a
 * [domain] name that cannot match a recipient, two listeners on one address, and policy
 * thresholds out of order (tag <= quarantine <= reject, per MX role, after a domain's overrides).
 * A file without any [domain] loads with a warning.
 */
#ifndef SLUICE_SHARD_SNAPSHOT_H
#define SLUICE_SHARD_SNAPSHOT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <openssl/ssl.h>

#include "base/buf.h"

struct policy;
struct filter_db;

enum listen_role { LISTEN_ROLE_PRIMARY = 0, LISTEN_ROLE_FALLBACK = 1 };
const char *listen_role_name(unsigned role);

struct listen_conf {
	char                    name[64];
	char                    address[128];   /* as written, for logs and the Received header */
	struct sockaddr_storage addr;
	socklen_t               addrlen;
	uint8_t                 role;           /* enum listen_role */
	bool                    starttls;
	int64_t                 greet_pause_ms; /* early-talker test; -1: [limits] greet_pause */
};

/* Two listen addresses are the same socket address (family, address, port, IPv6 scope). */
bool listen_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

#define ROUTE_DEST_MAX 8
struct route_dest {
	char     host[256];
	uint16_t port;
	uint16_t prio;       /* lower first; equal priorities in written order */
};

enum domain_tls { DOMAIN_TLS_MAY = 0, DOMAIN_TLS_REQUIRED, DOMAIN_TLS_NONE };

struct domain_conf {
	char             *name;          /* lower case */
	uint8_t           tls;           /* enum domain_tls: STARTTLS on the way out */
	uint8_t           long_lines;    /* 0: as [delivery] long_lines; else that enum + 1 */
	bool              tls_verify;    /* check the destination's certificate */
	uint64_t          spool_quota;   /* bytes queued for this domain, node-wide (default 1G) */
	bool              route_mx;      /* look the MX up instead of fixed destinations */
	unsigned          ndest;
	struct route_dest dest[ROUTE_DEST_MAX];
	struct policy    *policy;        /* owned */
	bool              allow_routing; /* accept %, ! and quoted @ in local parts (README) */
	bool              allow_routing_set; /* while loading: given in this section */
};

struct node_limits {
	uint64_t message_size;
	uint32_t recipients;
	uint32_t errors;
	uint64_t session_ms;
	uint64_t idle_ms;
	uint32_t conn_per_ip;
	uint32_t max_sessions;     /* per shard */
	uint32_t command_line;
	uint64_t shutdown_grace_ms;
	uint64_t greet_pause_ms;   /* wait this long before the 220; talkers get 554 (0: off) */
	uint32_t header_count;     /* header fields per message */
	uint64_t header_size;      /* bytes of the header block */
};

struct spool_tuning {
	uint64_t segment_size, spill_size, min_free;
	uint32_t commit_delay_us;
};

/* [delivery]: the relay's queue and client. */
struct delivery_tuning {
	uint64_t retry_first_ms, retry_max_ms, expire_ms, delay_warning_ms;
	uint32_t retry_flat, retry_jitter_pct;
	uint32_t concurrency;            /* connections per destination per shard */
	uint64_t connect_timeout_ms;
	uint64_t idle_ms;                /* an idle outbound connection waits this long for reuse */
	uint16_t mx_port;                /* 25; tests use another */
	char     helo_name[256];         /* default: [node] hostname */
	char     dns_server[256];        /* c-ares server list; empty: /etc/resolv.conf */
	bool     hold;                   /* accept and spool, start no delivery (maintenance) */
	/* Total deadline per outbound stage; 0: the client's default (Postfix's smtp_*_timeout). */
	uint32_t helo_timeout_ms, starttls_timeout_ms, mail_timeout_ms, rcpt_timeout_ms;
	uint32_t data_init_timeout_ms, data_xfer_timeout_ms, data_done_timeout_ms;
	uint32_t rset_timeout_ms, quit_timeout_ms;
	uint8_t  long_lines;             /* enum delivery_long_lines */
	uint64_t min_data_rate;          /* bytes/s: the body's deadline grows by size / this;
	                                  * 0: DELIVERY_MIN_DATA_RATE_DEF */
};
#define DELIVERY_MIN_DATA_RATE_DEF 16384u

/* [delivery] long_lines: a body line over 998 octets (RFC 5321 4.5.3.1.6). */
enum delivery_long_lines {
	DELIVERY_LONG_LINES_PASS = 0,    /* relayed as it is (keeps DKIM signatures) */
	DELIVERY_LONG_LINES_WRAP,        /* broken with CR LF SP on the way out */
	DELIVERY_LONG_LINES_REFUSE,      /* the message gets 554 5.6.0 at end of data */
};
/* What long_lines is for a recipient domain (d may be NULL: not ours, e.g. a DSN's). */
static inline enum delivery_long_lines delivery_long_lines_for(const struct delivery_tuning *t,
								const struct domain_conf *d)
{
	return d != NULL && d->long_lines ? (enum delivery_long_lines)(d->long_lines - 1)
					  : (enum delivery_long_lines)t->long_lines;
}

struct node_config {
	_Atomic unsigned     refs;
	uint64_t             generation;     /* bumps on every reload */
	char                *path;
	char                 name[64];
	char                 hostname[256];
	char                 banner[256];
	char                 spool_dir[512];
	char                 rules_dir[512]; /* compiled rule set; empty = no content filter */
	unsigned             shards;         /* 0 = one per online CPU */
	int                  log_level;
	struct node_limits   limits;
	struct spool_tuning  spool;
	char                 tls_cert[512], tls_key[512];
	SSL_CTX             *tls_ctx;        /* NULL without [tls] */
	SSL_CTX             *tls_client_ctx; /* outbound STARTTLS, no verification */
	SSL_CTX             *tls_client_verify_ctx; /* outbound, verifying (NULL: no domain asks) */
	struct delivery_tuning delivery;
	struct listen_conf  *listen;
	unsigned             nlisten;
	struct domain_conf  *domains;        /* sorted by name */
	unsigned             ndomains;
	struct policy       *default_policy;
	struct filter_db    *filter_db;      /* NULL without rules_dir */
	uint8_t              log_output;     /* [node] log: enum log_output (stderr | syslog) */
	uint8_t              log_facility;   /* [node] log_facility: syslog facility (mail) */
	char                 log_socket[108];/* [node] log_socket: syslog socket; empty: /dev/log */
	char                 postmaster[320];/* [node] postmaster: where bare <postmaster> goes; default
					      * postmaster@ the first domain; empty: no domain */
	bool                 allow_routing;  /* [policy] allow_routing: the domains' default */
	/* How the process runs: read by main at start only (a reload that changes them warns). */
	struct node_ops {
		char  user[64], group[64];   /* [node] user/group; empty: no switch */
		uid_t uid;                   /* resolved at load when user is set */
		gid_t gid;                   /* group, or the user's primary group */
		bool  run_as_root;           /* [node] run_as_root: root without user is allowed */
		char  pid_file[512];         /* default spool_dir/sluice-node.pid */
		int   spool_dir_line;        /* for --check-config's messages */
	} ops;
};

/* Loads and checks a file. Returns 0, or -EINVAL with the reason in err. */
int node_config_load(const char *path, struct node_config **conf_r, char *err, size_t errlen);
/* The same parser on a buffer (the cluster hands the node its configuration as one): name
 * stands for the file's path in errors ("NAME:LINE: [section] key: reason") and in
 * node_config.path. Same returns. */
int node_config_load_buffer(const char *name, const char *buf, size_t len,
			    struct node_config **conf_r, char *err, size_t errlen);
struct node_config *node_config_ref(struct node_config *c);
void node_config_unref(struct node_config **c);
/* The served domain for a recipient domain (case-insensitive), or NULL: not ours (relaying). */
const struct domain_conf *node_config_domain(const struct node_config *c, struct slice domain);

#endif
