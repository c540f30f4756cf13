/*
 * ca.c - the cluster CA: its key and certificate, issuing node certificates from CSRs that ask
 * for nothing but the name, and the revocation list. See ca.h. OpenSSL 3.
 */
#include "ca.h"
#include "pem_io.h"
#include "sync_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <arpa/inet.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define CA_VALID_DAYS  3650
#define CA_SUBJECT     "Sluice cluster CA"
#define CA_PEM_MAX     (64 * 1024)
#define CA_REVOKED_MAX (16 * 1024 * 1024)

bool ca_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > CA_NAME_MAX || name[0] == '-' || name[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
	}
	return true;
}

static int path_in(char *out, size_t size, const char *dir, const char *file)
{
	return snprintf(out, size, "%s/%s", dir, file) >= (int)size ? -ENAMETOOLONG : 0;
}

/* Adds one X509v3 extension written in OpenSSL's config syntax ("critical,CA:TRUE"). */
static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EINVAL;
	int ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -ENOMEM;
}

/* A random positive 127-bit serial (RFC 5280 §4.1.2.2: at most 20 octets, positive). */
static int set_random_serial(X509 *cert)
{
	unsigned char raw[16];
	if (RAND_bytes(raw, sizeof raw) != 1)
		return -EIO;
	raw[0] &= 0x7f;
	raw[0] |= 0x40;         /* never a leading zero octet: every serial has 32 hex digits */
	BIGNUM *bn = BN_bin2bn(raw, sizeof raw, NULL);
	if (!bn)
		return -ENOMEM;
	ASN1_INTEGER *serial = BN_to_ASN1_INTEGER(bn, NULL);
	BN_free(bn);
	if (!serial)
		return -ENOMEM;
	int ok = X509_set_serialNumber(cert, serial);
	ASN1_INTEGER_free(serial);
	return ok ? 0 : -ENOMEM;
}

static int set_validity(X509 *cert, int days)
{
	/* A few minutes back, so a node whose clock is slightly behind accepts it at once. */
	if (!X509_gmtime_adj(X509_getm_notBefore(cert), -300) ||
	    !X509_time_adj_ex(X509_getm_notAfter(cert), days, 0, NULL))
		return -EINVAL;
	return 0;
}

int ca_init(const char *dir)
{
	char key_path[4096], crt_path[4096], issued[4096];
	int rc;
	if ((rc = path_in(key_path, sizeof key_path, dir, "ca.key")) < 0 ||
	    (rc = path_in(crt_path, sizeof crt_path, dir, "ca.crt")) < 0 ||
	    (rc = path_in(issued, sizeof issued, dir, "issued")) < 0)
		return rc;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return -errno;
	struct stat st;
	if (stat(crt_path, &st) == 0 || stat(key_path, &st) == 0)
		return -EEXIST;
	if (mkdir(issued, 0700) < 0 && errno != EEXIST)
		return -errno;

	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	rc = -ENOMEM;
	if (!key || !cert)
		goto out;
	X509_NAME *name = X509_get_subject_name(cert);
	if (!X509_set_version(cert, X509_VERSION_3) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					(const unsigned char *)CA_SUBJECT, -1, -1, 0) ||
	    !X509_set_issuer_name(cert, name) || !X509_set_pubkey(cert, key))
		goto out;
	if ((rc = set_random_serial(cert)) < 0 || (rc = set_validity(cert, CA_VALID_DAYS)) < 0 ||
	    (rc = add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0")) < 0 ||
	    (rc = add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign")) < 0 ||
	    (rc = add_ext(cert, cert, NID_subject_key_identifier, "hash")) < 0)
		goto out;
	rc = -EIO;
	if (!X509_sign(cert, key, EVP_sha256()))
		goto out;
	if ((rc = pem_io_write_key(key_path, key)) < 0 || (rc = pem_io_write_cert(crt_path, cert)) < 0)
		goto out;
	rc = 0;
out:
	X509_free(cert);
	EVP_PKEY_free(key);
	return rc;
}

/* Checks that the CSR is self-signed with a P-256 key and asks for CN=name and nothing else. */
static int csr_check(X509_REQ *req, const char *node_name)
{
	EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
	if (!pub || X509_REQ_verify(req, pub) != 1)
		return -EBADMSG;
	char group[32];
	size_t glen = 0;
	if (EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC ||
	    !EVP_PKEY_get_utf8_string_param(pub, "group", group, sizeof group, &glen) ||
	    strcmp(group, "prime256v1") != 0)
		return -EPERM;
	if (X509_REQ_get_attr_count(req) != 0)
		return -EPERM;      /* extension requests and any other attribute */
	const X509_NAME *subject = X509_REQ_get_subject_name(req);
	if (X509_NAME_entry_count(subject) != 1)
		return -EPERM;
	const X509_NAME_ENTRY *entry = X509_NAME_get_entry(subject, 0);
	if (OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry)) != NID_commonName)
		return -EPERM;
	const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(entry);
	size_t len = strlen(node_name);
	if ((size_t)ASN1_STRING_length(cn) != len || memcmp(ASN1_STRING_get0_data(cn), node_name, len))
		return -EPERM;
	return 0;
}

/* A DNS name for a SAN: letters, digits, '-' and '.', no empty label. */
static bool host_valid(const char *h)
{
	size_t n = strlen(h);
	if (n == 0 || n > 253 || h[0] == '.' || h[n - 1] == '.' || strstr(h, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = h[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '.'))
			return false;
	}
	return true;
}

/* "DNS:a.node.sluice,URI:sluice:node:a[,IP:10.0.0.1][,DNS:mx1.example]" */
static int san_value(char *out, size_t size, const char *node_name, const char *const *hub_addrs,
		     size_t n_hub_addrs)
{
	size_t used = (size_t)snprintf(out, size, "DNS:%s%s,URI:%s%s", node_name, CA_DNS_SUFFIX,
				       CA_URI_PREFIX, node_name);
	for (size_t i = 0; i < n_hub_addrs && used < size; i++) {
		const char *a = hub_addrs[i];
		unsigned char bin[16];
		bool ip = inet_pton(AF_INET, a, bin) == 1 || inet_pton(AF_INET6, a, bin) == 1;
		if (!ip && !host_valid(a))
			return -EINVAL;
		used += (size_t)snprintf(out + used, size - used, ",%s:%s", ip ? "IP" : "DNS", a);
	}
	return used < size ? 0 : -ENAMETOOLONG;
}

static int issue(const char *dir, const char *csr_pem, const char *node_name, int days,
		 const char *const *hub_addrs, size_t n_hub_addrs, char **cert_pem_r)
{
	if (!ca_name_valid(node_name) || days <= 0 || days > CA_DAYS_MAX)
		return -EINVAL;
	char san[2048];
	int rc = san_value(san, sizeof san, node_name, hub_addrs, n_hub_addrs);
	if (rc < 0)
		return rc;
	char key_path[4096], crt_path[4096];
	if ((rc = path_in(key_path, sizeof key_path, dir, "ca.key")) < 0 ||
	    (rc = path_in(crt_path, sizeof crt_path, dir, "ca.crt")) < 0)
		return rc;

	X509_REQ *req = pem_io_parse_csr(csr_pem);
	if (!req)
		return -EBADMSG;
	EVP_PKEY *ca_key = NULL;
	X509 *ca_cert = NULL, *cert = NULL;
	if ((rc = csr_check(req, node_name)) < 0)
		goto out;
	if ((rc = pem_io_read_key(key_path, &ca_key)) < 0 ||
	    (rc = pem_io_read_cert(crt_path, &ca_cert)) < 0)
		goto out;
	rc = -ENOMEM;
	if (!(cert = X509_new()))
		goto out;
	X509_NAME *subject = X509_NAME_new();
	if (!subject)
		goto out;
	int ok = X509_NAME_add_entry_by_txt(subject, "CN", MBSTRING_UTF8,
					    (const unsigned char *)node_name, -1, -1, 0) &&
		 X509_set_subject_name(cert, subject);
	X509_NAME_free(subject);
	if (!ok || !X509_set_version(cert, X509_VERSION_3) ||
	    !X509_set_issuer_name(cert, X509_get_subject_name(ca_cert)) ||
	    !X509_set_pubkey(cert, X509_REQ_get0_pubkey(req)))
		goto out;
	if ((rc = set_random_serial(cert)) < 0 || (rc = set_validity(cert, days)) < 0 ||
	    (rc = add_ext(cert, ca_cert, NID_basic_constraints, "critical,CA:FALSE")) < 0 ||
	    (rc = add_ext(cert, ca_cert, NID_key_usage, "critical,digitalSignature,keyAgreement")) < 0 ||
	    (rc = add_ext(cert, ca_cert, NID_ext_key_usage, "serverAuth,clientAuth")) < 0 ||
	    (rc = add_ext(cert, ca_cert, NID_subject_alt_name, san)) < 0 ||
	    (rc = add_ext(cert, ca_cert, NID_subject_key_identifier, "hash")) < 0 ||
	    (rc = add_ext(cert, ca_cert, NID_authority_key_identifier, "keyid:always")) < 0)
		goto out;
	rc = -EIO;
	if (!X509_sign(cert, ca_key, EVP_sha256()))
		goto out;
	char *pem = pem_io_cert_to_pem(cert);
	rc = -ENOMEM;
	if (!pem)
		goto out;
	char serial[CA_SERIAL_MAX + 1], issued[4096];
	if ((rc = ca_cert_serial(pem, serial)) < 0 ||
	    (rc = snprintf(issued, sizeof issued, "%s/issued/%s.pem", dir, serial)) >= (int)sizeof issued ||
	    (rc = sync_file_write(issued, pem, strlen(pem), 0644)) < 0) {
		free(pem);
		rc = rc > 0 ? -ENAMETOOLONG : rc;
		goto out;
	}
	*cert_pem_r = pem;
	rc = 0;
out:
	X509_free(cert);
	X509_free(ca_cert);
	EVP_PKEY_free(ca_key);
	X509_REQ_free(req);
	return rc;
}

int ca_issue(const char *dir, const char *csr_pem, const char *node_name, int days,
	     char **cert_pem_r)
{
	return issue(dir, csr_pem, node_name, days, NULL, 0, cert_pem_r);
}

int ca_issue_hub(const char *dir, const char *csr_pem, const char *node_name, int days,
		 const char *const *hub_addrs, size_t n_hub_addrs, char **cert_pem_r)
{
	return issue(dir, csr_pem, node_name, days, hub_addrs, n_hub_addrs, cert_pem_r);
}

int ca_cert_fingerprint(const char *cert_pem, char *fp_r)
{
	X509 *cert = pem_io_parse_cert(cert_pem);
	if (!cert)
		return -EBADMSG;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	int ok = X509_digest(cert, EVP_sha256(), md, &len);
	X509_free(cert);
	if (!ok || len * 2 != CA_FP_LEN)
		return -EIO;
	for (unsigned int i = 0; i < len; i++)
		sprintf(fp_r + 2 * i, "%02x", md[i]);
	return 0;
}

int ca_cert_serial(const char *cert_pem, char *serial_r)
{
	X509 *cert = pem_io_parse_cert(cert_pem);
	if (!cert)
		return -EBADMSG;
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	X509_free(cert);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	BN_free(bn);
	if (!hex)
		return -ENOMEM;
	int rc = strlen(hex) > CA_SERIAL_MAX ? -ERANGE : 0;
	if (rc == 0)
		strcpy(serial_r, hex);
	OPENSSL_free(hex);
	return rc;
}

/* Whether the revoked file (text, NUL-terminated) has a line whose field `field` is value. */
static bool revoked_has(const char *list, int field, const char *value)
{
	size_t vlen = strlen(value);
	for (const char *line = list; *line;) {
		const char *p = line;
		for (int f = 0; f < field && *p && *p != '\n'; f++) {
			p = strpbrk(p, " \n");
			if (!p || *p == '\n')
				break;
			p++;
		}
		if (p && strncmp(p, value, vlen) == 0 && (p[vlen] == ' ' || p[vlen] == '\n' || !p[vlen]))
			return true;
		const char *nl = strchr(line, '\n');
		if (!nl)
			break;
		line = nl + 1;
	}
	return false;
}

static int revoked_read(const char *dir, char **list_r)
{
	char path[4096];
	int rc = path_in(path, sizeof path, dir, "revoked");
	if (rc < 0)
		return rc;
	rc = sync_file_read(path, CA_REVOKED_MAX, list_r, NULL);
	if (rc == -ENOENT)
		rc = (*list_r = strdup("")) ? 0 : -ENOMEM;
	return rc;
}

int ca_revoke(const char *dir, const char *serial)
{
	char path[4096];
	for (const char *p = serial; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'A' && *p <= 'F')))
			return -EINVAL;
	if (snprintf(path, sizeof path, "%s/issued/%s.pem", dir, serial) >= (int)sizeof path)
		return -ENAMETOOLONG;
	char *pem = NULL, *list = NULL;
	int rc = sync_file_read(path, CA_PEM_MAX, &pem, NULL);
	if (rc < 0)
		return rc;
	char fp[CA_FP_LEN + 1], name[CA_NAME_MAX + 1] = "";
	if ((rc = ca_cert_fingerprint(pem, fp)) < 0 || (rc = revoked_read(dir, &list)) < 0)
		goto out;
	if (revoked_has(list, 1, fp))
		goto out;
	X509 *cert = pem_io_parse_cert(pem);
	if (cert) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, name, sizeof name);
		X509_free(cert);
	}
	size_t old = strlen(list);
	char *grown = realloc(list, old + strlen(serial) + sizeof fp + sizeof name + 4);
	if (!grown) {
		rc = -ENOMEM;
		goto out;
	}
	list = grown;
	sprintf(list + old, "%s %s %s\n", serial, fp, name);
	if ((rc = path_in(path, sizeof path, dir, "revoked")) == 0)
		rc = sync_file_write(path, list, strlen(list), 0644);
out:
	free(list);
	free(pem);
	return rc;
}

int ca_is_revoked(const char *dir, const char *cert_pem)
{
	char fp[CA_FP_LEN + 1];
	char *list = NULL;
	int rc = ca_cert_fingerprint(cert_pem, fp);
	if (rc < 0 || (rc = revoked_read(dir, &list)) < 0)
		return rc;
	rc = revoked_has(list, 1, fp) ? 1 : 0;
	free(list);
	return rc;
}
