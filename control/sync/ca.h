/*
 * ca.h - the cluster's certificate authority, on the primary (in sluice-control's state dir).
 *
 * A node *is* its certificate: CN = the node's name, DNS SAN "<name>.node.sluice" (the name the
 * hub's leafnode listener maps to an authorized user, verify_and_map), URI SAN
 * "sluice:node:<name>", extended key usage clientAuth + serverAuth, valid `days` (1 year by
 * default). The CA key is EC P-256, the CA certificate valid 10 years.
 *
 * The directory holds: ca.key (0600), ca.crt, issued/<SERIAL>.pem (every certificate issued, so
 * a serial can be revoked by fingerprint), and revoked (one line per revoked certificate:
 * "<SERIAL> <sha256 fingerprint> <name>"). nats-server 2.9 reads no CRL for leafnode links:
 * revoking means removing the node from the hub's authorization and restarting the hub (see
 * natsconf.h); the list is what the control and the nodes check a presented certificate against.
 *
 * Any thread, but one writer per directory at a time (the caller serializes: sluice-control's
 * store lock). Every function returns 0 or -errno; the meanings of each errno are listed.
 */
#ifndef SLUICE_SYNC_CA_H
#define SLUICE_SYNC_CA_H

#include <stdbool.h>
#include <stddef.h>

#define CA_NAME_MAX     63      /* a node name is one DNS label: [a-z0-9-], not at the ends */
#define CA_SERIAL_MAX   40      /* hex digits of a serial, plus room */
#define CA_FP_LEN       64      /* hex digits of a SHA-256 fingerprint */
#define CA_DAYS_DEFAULT 365
#define CA_DAYS_MAX     3650
#define CA_DNS_SUFFIX   ".node.sluice"
#define CA_URI_PREFIX   "sluice:node:"

/* Whether name is a valid node name (lower case, so the DNS SAN and the KV key need no mapping). */
bool ca_name_valid(const char *name);

/* Makes the CA in dir (created 0700 if absent). -EEXIST if dir already holds a CA. */
int ca_init(const char *dir);

/* Issues a node certificate for the CSR. The CSR must be signed by its own key (EC P-256), ask
 * for the subject CN=node_name and nothing else (no other subject field, no extension, no
 * attribute): the CA decides every extension. Returns 0 with a malloc'd PEM in *cert_pem_r;
 * -EINVAL (bad name or days), -EBADMSG (not a CSR, or its signature does not verify), -EPERM
 * (it asks for another name or for anything beyond the name), -ENOENT (no CA in dir). */
int ca_issue(const char *dir, const char *csr_pem, const char *node_name, int days,
	     char **cert_pem_r);

/* The same for the node that runs the hub: its certificate also names the addresses (IP or DNS,
 * e.g. "10.0.0.1", "127.0.0.1", "mx1.example") that leaves dial its leafnode listener at, since
 * a leaf checks the hub's certificate against the host of the URL it dialled. */
int ca_issue_hub(const char *dir, const char *csr_pem, const char *node_name, int days,
		 const char *const *hub_addrs, size_t n_hub_addrs, char **cert_pem_r);

/* Adds an issued certificate (by serial, hex as ca_cert_serial gives it) to dir/revoked.
 * -ENOENT if dir never issued that serial; 0 if it is already revoked. */
int ca_revoke(const char *dir, const char *serial);

/* 1 if the certificate's fingerprint is in dir/revoked, 0 if not, -errno. */
int ca_is_revoked(const char *dir, const char *cert_pem);

/* The SHA-256 fingerprint of a PEM certificate, lower-case hex, into fp_r[CA_FP_LEN + 1]. */
int ca_cert_fingerprint(const char *cert_pem, char *fp_r);
/* The serial of a PEM certificate, upper-case hex, into serial_r[CA_SERIAL_MAX + 1]. */
int ca_cert_serial(const char *cert_pem, char *serial_r);

#endif
