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

#endif
