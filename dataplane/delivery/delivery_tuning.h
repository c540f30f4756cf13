/*
 * delivery_tuning.h - the [delivery] section (the relay's queue and client) and a domain's
 * long_lines override. Filled by the one parser (conf/) through the setters below; read-only in a
 * snapshot.
 */
#ifndef SLUICE_DELIVERY_DELIVERY_TUNING_H
#define SLUICE_DELIVERY_DELIVERY_TUNING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "policy/domain_conf.h"

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

/* RFC 5321 4.5.4.1 and Postfix's defaults, scaled: see delivery_retry.h. */
void delivery_tuning_defaults(struct delivery_tuning *t);
/* A [delivery] key. Returns 0, -ENOENT for a key that is not one, or -EINVAL with the reason in
 * why (what follows "[delivery] KEY: "). */
int delivery_tuning_set(struct delivery_tuning *t, const char *key, const char *value, char *why,
			size_t whylen);
/* A [domain] key of delivery's (long_lines): the same returns. */
int delivery_tuning_domain_set(struct domain_conf *d, const char *key, const char *value,
			       char *why, size_t whylen);
/* The whole section, once read: the retry schedule in order, the HELO name defaulting to the
 * node's hostname. Returns 0, or -EINVAL with the reason (starting "[delivery]") in why. */
int delivery_tuning_finish(struct delivery_tuning *t, const char *hostname, char *why,
			   size_t whylen);
/* The outbound STARTTLS contexts: one without verification, and one verifying when a domain asks
 * for it (else NULL). Returns 0, or -EINVAL with the reason in why (both NULL then). */
int delivery_tuning_tls_load(const struct domain_conf *domains, size_t ndomains,
			     SSL_CTX **client_r, SSL_CTX **verify_r, char *why, size_t whylen);

#endif
