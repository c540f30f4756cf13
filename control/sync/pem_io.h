/*
 * pem_io.h - PEM in and out for the CA and the node's CSR: keys, certificates and CSRs between
 * OpenSSL objects, strings and files (keys written 0600, atomically). Any thread.
 */
#ifndef SLUICE_SYNC_PEM_IO_H
#define SLUICE_SYNC_PEM_IO_H

#include <openssl/evp.h>
#include <openssl/x509.h>

/* 0 or -errno (-EBADMSG: the file is not the PEM object asked for). */
int pem_io_read_key(const char *path, EVP_PKEY **key_r);
int pem_io_read_cert(const char *path, X509 **cert_r);
int pem_io_write_key(const char *path, EVP_PKEY *key);     /* mode 0600 */
int pem_io_write_cert(const char *path, X509 *cert);       /* mode 0644 */

/* From a PEM string; NULL if it is not one. */
X509 *pem_io_parse_cert(const char *pem);
X509_REQ *pem_io_parse_csr(const char *pem);

/* To a malloc'd PEM string; NULL when out of memory. */
char *pem_io_cert_to_pem(X509 *cert);
char *pem_io_csr_to_pem(X509_REQ *req);

#endif
