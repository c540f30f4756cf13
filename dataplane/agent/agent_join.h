/*
 * agent_join.h - `sluice-node --join TOKEN --control HOST:PORT [--cluster-dir DIR]`: a node
 * joins the cluster (issue 16 item 4, control/wire/README.md "Identity").
 *
 * The token (from `sluicectl node add`) is NAME.SECRET.PIN. The node makes its key and a CSR
 * for CN=NAME (a node asking again keeps its key), POSTs them to the control's /api/v1/join
 * over HTTPS with the control's public key pinned to PIN (its certificate is self-signed: the
 * token is the trust), and writes what comes back into DIR: node.crt, ca.crt and hub_urls (one
 * URL a line), beside node.key. Each file is written whole (write, fsync, rename).
 */
#ifndef SLUICE_AGENT_JOIN_H
#define SLUICE_AGENT_JOIN_H

#define AGENT_JOIN_DIR_DEFAULT "/var/lib/sluice/cluster"
#define AGENT_JOIN_TIMEOUT_S   30

/* Joins and prints what to put in the node's configuration. Returns the process's exit
 * status: 0 joined, 1 refused or failed (the reason on stderr), 2 a malformed token. */
int agent_join(const char *token, const char *control, const char *dir);

#endif
