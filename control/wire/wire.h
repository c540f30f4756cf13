/*
 * wire.h - the formats the control plane and the node's agent share (README.md here): the
 * configuration bucket's key names and the rendering of control objects into the data plane's
 * INI fragments. Pure functions, any thread; nothing here does I/O.
 *
 * A fragment begins with "# sluice cfg <key> version <N>" and holds sections in the exact syntax
 * sluice-node's parser (dataplane/shard/snapshot.c) accepts. Values are checked with
 * wire_value_safe() before they are stored, so a value can never end its line, start a comment
 * or open a section of its own.
 */
#ifndef SLUICE_CONTROL_WIRE_H
#define SLUICE_CONTROL_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

#define WIRE_KEY_VERSION "v"
#define WIRE_KEY_ROLES   "roles"
#define WIRE_KEY_GLOBAL  "global"
#define WIRE_KEY_MAX     300          /* "domain." + a 255-byte domain, with room */
#define WIRE_VALUE_MAX   4096         /* one INI value (a policy list) */

struct wire_kv {
	const char *key;
	const char *value;
};

/* One [domain NAME] section. NULL strings and negative flags are left out (the node's default). */
struct wire_domain {
	const char           *name;        /* lower case, A-label */
	const char           *route;       /* "host:port [prio], ..." or "mx" */
	const char           *tls;         /* may | required | none */
	int                   tls_verify;  /* 0, 1, or -1: unset */
	const char           *spool_quota; /* "1G" */
	const char           *long_lines;  /* pass | wrap | refuse */
	int                   allow_routing;
	size_t                npolicy;
	const struct wire_kv *policy;      /* policy keys (wire_policy_key_known); rendered in this
					    * order, the plain ones before the primary_/fallback_ */
};

struct wire_listen {
	const char *label;     /* the [listen LABEL] name */
	const char *address;   /* numeric "addr:port" */
	const char *role;      /* primary | fallback */
	int         starttls;  /* 0, 1, or -1: unset */
};

struct wire_node {
	const char               *name;
	size_t                    nlisten;
	const struct wire_listen *listen;
};

/* Node names per role; NULL: the role is not placed. */
struct wire_roles {
	const char *log, *quarantine, *archive;
};

/* "domain.<name>", "node.<name>" into out. 0, or -ENAMETOOLONG. */
int wire_key_domain(const char *domain, char *out, size_t outlen);
int wire_key_node(const char *node, char *out, size_t outlen);

/* Appends the fragment to b (a growable buffer). 0 or -ENOMEM. */
int wire_render_domain(struct buf *b, const struct wire_domain *d, uint64_t version);
int wire_render_node(struct buf *b, const struct wire_node *n, uint64_t version);
int wire_render_roles(struct buf *b, const struct wire_roles *r, uint64_t version);

/* A name the data plane can serve as a [domain] (and a KV key can hold): LDH labels, dots
 * between, at most 253 bytes, lower case. */
bool wire_domain_name_valid(const char *name);
/* A node or listen label: [a-z0-9_-], 1-63 bytes (KV keys and DNS SANs take it as it is). */
bool wire_label_valid(const char *label);
/* A policy key sluice-node accepts in [policy] and [domain]: a threshold (tag_score,
 * quarantine_score, reject_score, tempfail_score), optionally with primary_ or fallback_, or a
 * list (sender_allow, sender_block, ip_allow, ip_block). */
bool wire_policy_key_known(const char *key);
/* Printable UTF-8 text of at most WIRE_VALUE_MAX bytes with no line break, no ';' or '#' (INI
 * comments) and no '[' at the start. */
bool wire_value_safe(const char *value);

#endif
