/*
 * test_sync_ca.c - control/sync/ca.c and csr.c: the cluster CA, node certificates issued only
 * for CSRs that ask for nothing but the name, their SANs and usages, the revocation list.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "ca.h"
#include "csr.h"
#include "pem_io.h"

static char *tmpdir(void)
{
	static char path[64];
	snprintf(path, sizeof(path), "/tmp/sluice-ca-XXXXXX");
	assert_non_null(mkdtemp(path));
	return path;
}

static void rmtree(const char *dir)
{
	char cmd[160];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static char *path_of(const char *dir, const char *file)
{
	static char paths[4][256];
	static int next;
	char *p = paths[next++ % 4];
	snprintf(p, 256, "%s/%s", dir, file);
	return p;
}

/* 1 if cert verifies against the CA certificate in ca_path for TLS client use. */
static int verifies(const char *cert_pem, const char *ca_path)
{
	X509 *ca = NULL;
	assert_int_equal(pem_io_read_cert(ca_path, &ca), 0);
	X509 *cert = pem_io_parse_cert(cert_pem);
	assert_non_null(cert);
	X509_STORE *store = X509_STORE_new();
	X509_STORE_add_cert(store, ca);
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_STORE_CTX_init(ctx, store, cert, NULL);
	X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	int ok = X509_verify_cert(ctx);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	X509_free(cert);
	X509_free(ca);
	return ok;
}

static void test_name_valid(void **state)
{
	static const struct { const char *name; bool want; } cases[] = {
		{ "a", true }, { "mx-1", true }, { "node42", true },
		{ "", false }, { "-a", false }, { "a-", false }, { "A", false }, { "a.b", false },
		{ "a_b", false }, { "a b", false },
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", true },   /* 63 */
		{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false },  /* 64 */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(ca_name_valid(cases[i].name), cases[i].want);
}

static void test_init_and_issue(void **state)
{
	char *dir = tmpdir();
	char *ca = strdup(path_of(dir, "ca"));
	assert_int_equal(ca_init(ca), 0);
	assert_int_equal(ca_init(ca), -EEXIST);
	struct stat st;
	assert_int_equal(stat(path_of(ca, "ca.key"), &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	char *csr = NULL, *cert = NULL;
	char *key = strdup(path_of(dir, "n1.key"));
	assert_int_equal(csr_make("n1", key, &csr), 0);
	assert_int_equal(stat(key, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(ca_issue(ca, csr, "n1", 365, &cert), 0);
	assert_true(verifies(cert, path_of(ca, "ca.crt")));

	X509 *x = pem_io_parse_cert(cert);
	assert_non_null(x);
	char cn[64];
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn));
	assert_string_equal(cn, "n1");
	assert_int_equal(X509_check_host(x, "n1.node.sluice", 0, 0, NULL), 1);
	assert_int_equal(X509_check_host(x, "n2.node.sluice", 0, 0, NULL), 0);
	GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	bool uri = false;
	for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
		if (gn->type == GEN_URI)
			uri = strcmp((const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier),
				     "sluice:node:n1") == 0;
	}
	GENERAL_NAMES_free(sans);
	assert_true(uri);
	uint32_t xku = X509_get_extended_key_usage(x);
	assert_true(xku & XKU_SSL_CLIENT);
	assert_true(xku & XKU_SSL_SERVER);
	assert_false(X509_check_ca(x));
	X509_free(x);

	/* The same key asks again: csr_make keeps it. */
	char *csr2 = NULL;
	assert_int_equal(csr_make("n1", key, &csr2), 0);
	X509_REQ *r1 = pem_io_parse_csr(csr), *r2 = pem_io_parse_csr(csr2);
	assert_int_equal(EVP_PKEY_eq(X509_REQ_get0_pubkey(r1), X509_REQ_get0_pubkey(r2)), 1);
	X509_REQ_free(r1);
	X509_REQ_free(r2);

	/* The hub's certificate also names the addresses leaves dial. */
	char *hub = NULL;
	const char *addrs[] = { "10.0.0.1", "hub.example" };
	assert_int_equal(ca_issue_hub(ca, csr, "n1", 365, addrs, 2, &hub), 0);
	x = pem_io_parse_cert(hub);
	assert_int_equal(X509_check_ip_asc(x, "10.0.0.1", 0), 1);
	assert_int_equal(X509_check_host(x, "hub.example", 0, 0, NULL), 1);
	X509_free(x);
	const char *bad_addr[] = { "bad host" };
	char *none = NULL;
	assert_int_equal(ca_issue_hub(ca, csr, "n1", 365, bad_addr, 1, &none), -EINVAL);

	free(hub);
	free(csr2);
	free(cert);
	free(csr);
	free(key);
	free(ca);
	rmtree(dir);
}

/* A CSR made by hand with the subject and extensions given. */
static char *custom_csr(EVP_PKEY *key, const char *const *fields, size_t n, bool with_ext)
{
	X509_REQ *req = X509_REQ_new();
	X509_NAME *name = X509_REQ_get_subject_name(req);
	for (size_t i = 0; i < n; i += 2)
		X509_NAME_add_entry_by_txt(name, fields[i], MBSTRING_UTF8,
					   (const unsigned char *)fields[i + 1], -1, -1, 0);
	X509_REQ_set_pubkey(req, key);
	if (with_ext) {
		STACK_OF(X509_EXTENSION) *exts = sk_X509_EXTENSION_new_null();
		sk_X509_EXTENSION_push(exts, X509V3_EXT_conf_nid(NULL, NULL, NID_basic_constraints,
								 "critical,CA:TRUE"));
		X509_REQ_add_extensions(req, exts);
		sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	}
	X509_REQ_sign(req, key, EVP_sha256());
	char *pem = pem_io_csr_to_pem(req);
	X509_REQ_free(req);
	return pem;
}

static void test_issue_refuses(void **state)
{
	char *dir = tmpdir();
	char *ca = strdup(path_of(dir, "ca"));
	assert_int_equal(ca_init(ca), 0);
	EVP_PKEY *ec = EVP_EC_gen("P-256"), *ec384 = EVP_EC_gen("P-384");
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	const char *just_cn[] = { "CN", "n1" };
	const char *with_o[] = { "CN", "n1", "O", "evil" };
	const char *other[] = { "CN", "n2" };
	const char *no_cn[] = { "O", "n1" };
	struct {
		const char *label;
		char       *csr;
		const char *name;
		int         days;
		int         want;
	} cases[] = {
		{ "plain", custom_csr(ec, just_cn, 2, false), "n1", 365, 0 },
		{ "extra field", custom_csr(ec, with_o, 4, false), "n1", 365, -EPERM },
		{ "other name", custom_csr(ec, other, 2, false), "n1", 365, -EPERM },
		{ "no CN", custom_csr(ec, no_cn, 2, false), "n1", 365, -EPERM },
		{ "asks for CA", custom_csr(ec, just_cn, 2, true), "n1", 365, -EPERM },
		{ "P-384", custom_csr(ec384, just_cn, 2, false), "n1", 365, -EPERM },
		{ "RSA", custom_csr(rsa, just_cn, 2, false), "n1", 365, -EPERM },
		{ "bad name", custom_csr(ec, just_cn, 2, false), "N1", 365, -EINVAL },
		{ "no days", custom_csr(ec, just_cn, 2, false), "n1", 0, -EINVAL },
		{ "too many days", custom_csr(ec, just_cn, 2, false), "n1", 5000, -EINVAL },
		{ "garbage", strdup("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n"), "n1", 365, -EBADMSG },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *cert = NULL;
		int rc = ca_issue(ca, cases[i].csr, cases[i].name, cases[i].days, &cert);
		if (rc != cases[i].want)
			fail_msg("%s: got %d, want %d", cases[i].label, rc, cases[i].want);
		free(cert);
	}
	/* A CSR whose signature no longer matches (one byte of the signed body changed). */
	char *tampered = custom_csr(ec, just_cn, 2, false);
	X509_REQ *req = pem_io_parse_csr(tampered);
	unsigned char *der = NULL;
	int len = i2d_X509_REQ(req, &der);
	X509_REQ_free(req);
	for (int i = 0; i + 2 < len; i++)
		if (der[i] == 'n' && der[i + 1] == '1') {
			der[i + 1] = '2';
			break;
		}
	const unsigned char *p = der;
	req = d2i_X509_REQ(NULL, &p, len);
	assert_non_null(req);
	free(tampered);
	tampered = pem_io_csr_to_pem(req);
	X509_REQ_free(req);
	OPENSSL_free(der);
	char *cert = NULL;
	assert_int_equal(ca_issue(ca, tampered, "n2", 365, &cert), -EBADMSG);
	free(tampered);
	/* No CA in the directory. */
	char *csr = custom_csr(ec, just_cn, 2, false);
	assert_int_equal(ca_issue(path_of(dir, "none"), csr, "n1", 365, &cert), -ENOENT);
	free(csr);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		free(cases[i].csr);
	EVP_PKEY_free(ec);
	EVP_PKEY_free(ec384);
	EVP_PKEY_free(rsa);
	free(ca);
	rmtree(dir);
}

static void test_other_ca_and_revoke(void **state)
{
	char *dir = tmpdir();
	char *ca = strdup(path_of(dir, "ca")), *rogue = strdup(path_of(dir, "rogue"));
	assert_int_equal(ca_init(ca), 0);
	assert_int_equal(ca_init(rogue), 0);
	char *csr = NULL, *good = NULL, *bad = NULL, *other = NULL;
	assert_int_equal(csr_make("n1", path_of(dir, "n1.key"), &csr), 0);
	assert_int_equal(ca_issue(ca, csr, "n1", 30, &good), 0);
	assert_int_equal(ca_issue(ca, csr, "n1", 30, &other), 0);
	assert_int_equal(ca_issue(rogue, csr, "n1", 30, &bad), 0);
	assert_false(verifies(bad, path_of(ca, "ca.crt")) == 1);

	char serial[CA_SERIAL_MAX + 1], fp[CA_FP_LEN + 1];
	assert_int_equal(ca_cert_serial(good, serial), 0);
	assert_int_equal(strlen(serial), 32);
	assert_int_equal(ca_cert_fingerprint(good, fp), 0);
	assert_int_equal(strlen(fp), CA_FP_LEN);
	assert_int_equal(ca_is_revoked(ca, good), 0);
	assert_int_equal(ca_revoke(ca, serial), 0);
	assert_int_equal(ca_revoke(ca, serial), 0);
	assert_int_equal(ca_is_revoked(ca, good), 1);
	assert_int_equal(ca_is_revoked(ca, other), 0);
	assert_int_equal(ca_revoke(ca, "0123456789ABCDEF"), -ENOENT);
	assert_int_equal(ca_revoke(ca, "../x"), -EINVAL);
	char other_serial[CA_SERIAL_MAX + 1];
	assert_int_equal(ca_cert_serial(other, other_serial), 0);
	assert_int_equal(ca_revoke(ca, other_serial), 0);
	assert_int_equal(ca_is_revoked(ca, good), 1);
	assert_int_equal(ca_is_revoked(ca, other), 1);
	assert_int_equal(ca_is_revoked(ca, bad), 0);
	free(csr);
	free(good);
	free(bad);
	free(other);
	free(ca);
	free(rogue);
	rmtree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_init_and_issue),
		cmocka_unit_test(test_issue_refuses),
		cmocka_unit_test(test_other_ca_and_revoke),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
