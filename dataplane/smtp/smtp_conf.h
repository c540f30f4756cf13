/*
 * smtp_conf.h - the SMTP server's configuration: [limits] (the session and message limits) and
 * [tls] (the certificate offered with STARTTLS). Filled by the one parser (conf/) through the
 * setters below; read-only in a snapshot.
 */
#ifndef SLUICE_SMTP_SMTP_CONF_H
#define SLUICE_SMTP_SMTP_CONF_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

struct node_limits {
	uint64_t message_size;
	uint32_t recipients;
	uint32_t errors;
	uint64_t session_ms;
	uint64_t idle_ms;
	uint32_t conn_per_ip;
	uint32_t command_line;
	uint64_t greet_pause_ms;   /* wait this long before the 220; talkers get 554 (0: off) */
	uint32_t header_count;     /* header fields per message */
	uint64_t header_size;      /* bytes of the header block */
};

struct smtp_tls_conf {
	char cert[512], key[512];  /* both or neither */
};

void smtp_conf_limits_defaults(struct node_limits *l);
/* A [limits] key. Returns 0, -ENOENT when key is not SMTP's, or -EINVAL with the reason in why
 * (what follows "[limits] KEY: "). */
int smtp_conf_limits_set(struct node_limits *l, const char *key, const char *value, char *why,
			 size_t whylen);
/* A [tls] key: the same returns. */
int smtp_conf_tls_set(struct smtp_tls_conf *t, const char *key, const char *value, char *why,
		      size_t whylen);
/* The whole [tls] section: both files or neither, and they load. *ctx_r is the server context,
 * NULL without [tls]. Returns 0, or -EINVAL with the reason (starting "[tls]") in why. */
int smtp_conf_tls_load(const struct smtp_tls_conf *t, SSL_CTX **ctx_r, char *why, size_t whylen);

#endif
