/*
 * tls.h - OpenSSL contexts. The server context takes a certificate chain and key from files,
 * speaks TLS 1.2 and 1.3 only, and never asks clients for certificates. Any thread builds one;
 * an SSL_CTX is then shared read-only by every shard (OpenSSL makes that safe).
 */
#ifndef SLUICE_BASE_TLS_H
#define SLUICE_BASE_TLS_H

#include <openssl/ssl.h>

/* Returns a context, or NULL with a reason (OpenSSL's error queue, flattened) in err. */
SSL_CTX *tls_server_ctx_new(const char *cert_file, const char *key_file, char *err, size_t errlen);
/* A client context for outbound relaying: opportunistic, verification as asked. */
SSL_CTX *tls_client_ctx_new(int verify, const char *ca_file, char *err, size_t errlen);
void tls_ctx_free(SSL_CTX **ctx);
/* Flattens OpenSSL's error queue into buf; returns buf. */
const char *tls_errors(char *buf, size_t len);

#endif
