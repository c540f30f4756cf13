/*
 * csr.c - the node's key and CSR (see csr.h). OpenSSL 3.
 */
#include "csr.h"
#include "ca.h"
#include "pem_io.h"

#include <errno.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

int csr_make(const char *name, const char *key_path, char **csr_pem_r)
{
	if (!ca_name_valid(name))
		return -EINVAL;
	EVP_PKEY *key = NULL;
	int rc = pem_io_read_key(key_path, &key);
	if (rc == -ENOENT) {
		if (!(key = EVP_EC_gen("P-256")))
			return -ENOMEM;
		rc = pem_io_write_key(key_path, key);
	}
	if (rc < 0) {
		EVP_PKEY_free(key);
		return rc;
	}
	X509_REQ *req = X509_REQ_new();
	rc = -ENOMEM;
	if (req && X509_REQ_set_version(req, X509_REQ_VERSION_1) &&
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN", MBSTRING_UTF8,
				       (const unsigned char *)name, -1, -1, 0) &&
	    X509_REQ_set_pubkey(req, key) && X509_REQ_sign(req, key, EVP_sha256())) {
		*csr_pem_r = pem_io_csr_to_pem(req);
		rc = *csr_pem_r ? 0 : -ENOMEM;
	}
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return rc;
}
