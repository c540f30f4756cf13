/*
 * csr.h - the node side of joining: its key and its certificate signing request. The CSR asks
 * for the subject CN=<name> and nothing else; the CA decides every extension (ca.h).
 * Any thread.
 */
#ifndef SLUICE_SYNC_CSR_H
#define SLUICE_SYNC_CSR_H

/* Makes an EC P-256 key at key_path (0600) unless one is there already (a node asking again
 * keeps its key), and a CSR for CN=name signed by it, as a malloc'd PEM in *csr_pem_r.
 * Returns 0, -EINVAL (not a valid node name), -EBADMSG (key_path holds no usable key), -errno. */
int csr_make(const char *name, const char *key_path, char **csr_pem_r);

#endif
