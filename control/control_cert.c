/*
 * control_cert.c - see control_cert.h. Valid a year, CN and SAN "control" plus localhost and
 * the loopback addresses, so sluicectl on the host can check it with --ca.
 */
#include "control_cert.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>
#include <unistd.h>

static int control_cert_write(const char *path, int mode, EVP_PKEY *key, X509 *crt)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
	int ok;

	if (f == NULL) {
		if (fd >= 0)
			close(fd);
		return -errno;
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
		 : PEM_write_X509(f, crt);
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
	fclose(f);
	return ok ? 0 : -EIO;
}

static int control_cert_make(const char *cert, const char *key)
{
	EVP_PKEY *pk = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509V3_CTX v3;
	X509_EXTENSION *ext;
	int rc = -EIO;

	if (pk == NULL || x == NULL)
		goto out;
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), (long)time(NULL));
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400);
	X509_set_pubkey(x, pk);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"control", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
				  "DNS:control, DNS:localhost, IP:127.0.0.1, IP:::1");
	if (ext == NULL || !X509_add_ext(x, ext, -1)) {
		X509_EXTENSION_free(ext);
		goto out;
	}
	X509_EXTENSION_free(ext);
	if (!X509_sign(x, pk, EVP_sha256()))
		goto out;
	rc = control_cert_write(key, 0600, pk, NULL);
	rc = rc ? rc : control_cert_write(cert, 0644, NULL, x);
out:
	X509_free(x);
	EVP_PKEY_free(pk);
	return rc;
}

int control_cert_ensure(const char *state_dir, char *cert_r, char *key_r, size_t pathlen,
			char *err, size_t errlen)
{
	int rc;

	snprintf(cert_r, pathlen, "%s/control.crt", state_dir);
	snprintf(key_r, pathlen, "%s/control.key", state_dir);
	if (access(cert_r, R_OK) == 0 && access(key_r, R_OK) == 0)
		return 0;
	rc = control_cert_make(cert_r, key_r);
	if (rc < 0)
		snprintf(err, errlen, "cannot make the TLS certificate in %s: %s", state_dir,
			 strerror(-rc));
	return rc;
}

int control_cert_pin(const char *cert_file, char *pin_r)
{
	FILE *f = fopen(cert_file, "re");
	X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	unsigned char *der = NULL, md[32];
	int len = x ? i2d_PUBKEY(X509_get0_pubkey(x), &der) : -1;
	int rc = len > 0 && SHA256(der, (size_t)len, md) ? 0 : f ? -EBADMSG : -errno;

	if (rc == 0)
		sodium_bin2base64(pin_r, CONTROL_PIN_LEN + 1, md, sizeof(md),
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	OPENSSL_free(der);
	X509_free(x);
	if (f)
		fclose(f);
	return rc;
}
