/*
 * control_cert.h - sluice-control's TLS certificate. For now a self-signed EC P-256 certificate
 * made with OpenSSL into the state dir on first start; the cluster CA (control/sync) replaces
 * this one function later.
 */
#ifndef SLUICE_CONTROL_CERT_H
#define SLUICE_CONTROL_CERT_H

#include <stddef.h>

/* Makes state_dir/control.crt and control.key unless both exist; fills their paths (each
 * pathlen bytes). 0, or -errno with err set. */
int control_cert_ensure(const char *state_dir, char *cert_r, char *key_r, size_t pathlen,
			char *err, size_t errlen);

/* The pin of the certificate at cert_file: SHA-256 of its public key (DER SubjectPublicKeyInfo),
 * base64url without padding, into pin_r[CONTROL_PIN_LEN + 1]. A join token carries it, so a
 * node can trust the control's self-signed certificate on first contact. 0 or -errno. */
#define CONTROL_PIN_LEN 43
int control_cert_pin(const char *cert_file, char *pin_r);

#endif
