/*
 * conf_impl.h - what the parser's files share while one buffer is read (conf.c, conf_node.c,
 * conf_policy.c). Not for outside conf/.
 */
#ifndef SLUICE_CONF_CONF_IMPL_H
#define SLUICE_CONF_CONF_IMPL_H

#include <search.h>
#include <stdbool.h>
#include <stddef.h>

#include "conf/node_config.h"

#define CONF_MAX_LISTEN  32
#define CONF_MAX_DOMAINS 100000

/* A policy key seen in [policy] or [domain]: applied once the whole buffer is read, so a domain
 * inherits the default whatever the order of sections. */
struct pending_policy_key {
	long     domain;      /* index into the domains, -1 for [policy] */
	char    *key, *value;
	int      line;
};

/* A section or key seen, with its line. */
struct load_seen {
	char *name;           /* normalised: lower case, "listen NAME" keeps the name's case */
	int   line;
};

/* What the checks of a whole buffer need that inih does not tell: the line of every section
 * header (inih's handler sees only keys), the keys of the current section, and the lines of keys
 * that later checks name. */
struct load_check {
	struct load_seen *sections;        /* except [domain]s: those are in load_ctx.names */
	size_t            nsections, capsections;
	struct load_seen *keys;            /* keys of the current section */
	size_t            nkeys, capkeys;
	int              *domain_line;     /* header line of each domain, by index */
	size_t            capdomain_line;
	int               listen_line[CONF_MAX_LISTEN];   /* line of each listener's address */
	int               node_line;       /* the [node] header, 0 without one */
	int               err_line;        /* an error the reader found (inih has no line for it) */
	bool              cont;            /* this line continues the previous key's value */
	bool              prev_key;        /* a key was seen in this section (inih's prev_name) */
	bool              has_hostname, has_spool_dir;
	int               user_line, group_line, postmaster_line;
	int               name_line;            /* [node] name */
	int               cluster_line;         /* the [cluster] header, 0 without one */
	int               cluster_dir_line;
	int               cluster_port_line[2]; /* nats_port, nats_monitor_port */
};

struct load_ctx {
	struct node_config        *c;
	const char                *name;          /* the buffer's, for errors */
	char                       err[512];      /* "[section] key: reason" of the first error */
	const char                *pos, *end;     /* what the reader has not read yet */
	int                        line;          /* lines read so far (inih's reader counts) */
	struct pending_policy_key *pk;
	size_t                     npk, cappk;
	size_t                     capdomains;
	struct hsearch_data        names;         /* domain name -> index, while loading */
	bool                       names_ok;
	struct load_check          chk;
};

/* Records the first error, "[section] key: " and the reason; returns 0 (inih: a bad line). */
int conf_fail(struct load_ctx *lc, const char *section, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* [node]: one key (returns 1, or 0 after conf_fail), and the section's whole checks once the
 * buffer is read (0, or -EINVAL with "NAME:LINE: ..." in err). */
int conf_node_set(struct load_ctx *lc, const char *key, const char *value);
/* [roles] (conf_roles.c): 0, -ENOENT (not its key), -EINVAL with the reason in why. */
int conf_roles_set(struct node_config *c, const char *key, const char *value, char *why,
		   size_t whylen);
/* [metrics] (conf_metrics.c): a key as conf_roles_set; the section's checks once the buffer is
 * read (0, or -EINVAL with the reason in why). */
int conf_metrics_set(struct node_config *c, const char *key, const char *value, char *why,
		     size_t whylen);
int conf_metrics_check(struct node_config *c, char *why, size_t whylen);
int conf_node_check(struct load_ctx *lc, char *err, size_t errlen);
/* A node name as the cluster's CA issues them: one DNS label of a-z, 0-9 and '-' (conf_roles.c). */
bool conf_node_name_valid(const char *v);

/* [cluster] (conf_cluster.c): the defaults, one key (1, or 0 after conf_fail), and the section's
 * whole checks once the buffer is read (0, or -EINVAL with "NAME:LINE: ..." in err). */
void conf_cluster_defaults(struct node_config *c);
int conf_cluster_set(struct load_ctx *lc, const char *key, const char *value);
int conf_cluster_check(struct load_ctx *lc, char *err, size_t errlen);
/* [node] postmaster must be in a served domain (once the domains are sorted). */
int conf_node_check_postmaster(struct load_ctx *lc, char *err, size_t errlen);

/* [policy] and a domain's policy keys: kept while reading (0 or -ENOMEM), applied and checked
 * once the buffer is read (0, or -EINVAL/-ENOMEM with the reason in err). */
int conf_policy_push(struct load_ctx *lc, long domain, const char *key, const char *value);
int conf_policy_apply(struct load_ctx *lc, char *err, size_t errlen);
void conf_policy_free(struct load_ctx *lc);

#endif
