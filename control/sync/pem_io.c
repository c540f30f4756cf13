/*
 * pem_io.c - PEM in and out through memory BIOs; files go through sync_file (atomic writes).
 */
#include "pem_io.h"
#include "sync_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

#define PEM_IO_MAX (64 * 1024)

static char *bio_to_string(BIO *bio)
{
	char *data = NULL;
	long len = BIO_get_mem_data(bio, &data);
	char *out = len >= 0 ? malloc((size_t)len + 1) : NULL;
	if (out) {
		memcpy(out, data, (size_t)len);
		out[len] = '\0';
	}
	return out;
}

static BIO *string_bio(const char *pem)
{
	return BIO_new_mem_buf(pem, -1);
}

X509 *pem_io_parse_cert(const char *pem)
{
	BIO *bio = string_bio(pem);
	X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	return cert;
}

X509_REQ *pem_io_parse_csr(const char *pem)
{
	BIO *bio = string_bio(pem);
	X509_REQ *req = bio ? PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	return req;
}

char *pem_io_cert_to_pem(X509 *cert)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *out = bio && PEM_write_bio_X509(bio, cert) ? bio_to_string(bio) : NULL;
	BIO_free(bio);
	return out;
}

char *pem_io_csr_to_pem(X509_REQ *req)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *out = bio && PEM_write_bio_X509_REQ(bio, req) ? bio_to_string(bio) : NULL;
	BIO_free(bio);
	return out;
}

int pem_io_read_key(const char *path, EVP_PKEY **key_r)
{
	char *pem = NULL;
	int rc = sync_file_read(path, PEM_IO_MAX, &pem, NULL);
	if (rc < 0)
		return rc;
	BIO *bio = string_bio(pem);
	*key_r = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
	BIO_free(bio);
	OPENSSL_cleanse(pem, strlen(pem));
	free(pem);
	return *key_r ? 0 : -EBADMSG;
}

int pem_io_read_cert(const char *path, X509 **cert_r)
{
	char *pem = NULL;
	int rc = sync_file_read(path, PEM_IO_MAX, &pem, NULL);
	if (rc < 0)
		return rc;
	*cert_r = pem_io_parse_cert(pem);
	free(pem);
	return *cert_r ? 0 : -EBADMSG;
}

int pem_io_write_key(const char *path, EVP_PKEY *key)
{
	BIO *bio = BIO_new(BIO_s_mem());
	if (!bio)
		return -ENOMEM;
	int rc = -ENOMEM;
	if (PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL)) {
		char *data = NULL;
		long len = BIO_get_mem_data(bio, &data);
		rc = sync_file_write(path, data, (size_t)len, 0600);
	}
	BIO_free(bio);
	return rc;
}

int pem_io_write_cert(const char *path, X509 *cert)
{
	char *pem = pem_io_cert_to_pem(cert);
	if (!pem)
		return -ENOMEM;
	int rc = sync_file_write(path, pem, strlen(pem), 0644);
	free(pem);
	return rc;
}
