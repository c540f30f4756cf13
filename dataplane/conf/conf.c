/*
 * conf.c - the one configuration parser: a named buffer (the INI file's contents, or later the
 * cluster's) into a struct node_config snapshot. See node_config.h.
 *
 * Called at start-up by main and on SIGHUP by the agent thread, never on a shard. This file
 * keeps what is generic: the INI reading (inih, with the line of every key), sections and keys
 * given twice, unknown sections and keys, "NAME:LINE: [section] key: why" and the order of the
 * whole-buffer checks. Each key goes to the setter of the module that owns it (the table below,
 * conf_node.c, conf_policy.c), which checks it: a snapshot that exists is valid, and shards
 * never meet a bad value.
 */
#include "conf/node_config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/cfgval.h"
#include "base/log.h"
#include "base/tls.h"
#include "conf/conf_impl.h"
#include "filter/filter.h"
#include "policy/policy.h"

_Static_assert(offsetof(struct node_config, snap) == 0, "shard/ finds the head at the start");

int conf_fail(struct load_ctx *lc, const char *section, const char *key, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (lc->err[0] != '\0')
		return 0;   /* keep the first error */
	n = snprintf(lc->err, sizeof(lc->err), "[%s] %s: ", section, key);
	va_start(ap, fmt);
	vsnprintf(lc->err + n, sizeof(lc->err) - (size_t)n, fmt, ap);
	va_end(ap);
	return 0;       /* tells inih this line is bad: it returns its number */
}

/* A module's setter for the keys of a section it owns: 0, -ENOENT for a key that is not its,
 * -EINVAL with the reason in why. */
typedef int conf_set_fn(struct node_config *c, const char *key, const char *value, char *why,
			size_t whylen);

static int set_limits_smtp(struct node_config *c, const char *k, const char *v, char *why,
			   size_t whylen)
{
	return smtp_conf_limits_set(&c->limits, k, v, why, whylen);
}

static int set_limits_shard(struct node_config *c, const char *k, const char *v, char *why,
			    size_t whylen)
{
	return shard_conf_set(&c->snap.shard, k, v, why, whylen);
}

static int set_spool(struct node_config *c, const char *k, const char *v, char *why,
		     size_t whylen)
{
	return spool_tuning_set(&c->spool, k, v, why, whylen);
}

static int set_tls(struct node_config *c, const char *k, const char *v, char *why, size_t whylen)
{
	return smtp_conf_tls_set(&c->tls, k, v, why, whylen);
}

static int set_delivery(struct node_config *c, const char *k, const char *v, char *why,
			size_t whylen)
{
	return delivery_tuning_set(&c->delivery, k, v, why, whylen);
}

/* The sections of fixed name whose keys a module owns whole; a section may have several owners,
 * asked in turn. [node], [policy], [listen NAME] and [domain NAME] are dispatched below. */
static const struct conf_section {
	const char  *name;
	conf_set_fn *set;
} conf_sections[] = {
	{ "limits", set_limits_smtp },
	{ "limits", set_limits_shard },
	{ "spool", set_spool },
	{ "tls", set_tls },
	{ "delivery", set_delivery },
	{ "roles", conf_roles_set },
	{ "metrics", conf_metrics_set },
};

/* Asks the owners of section (its name case-insensitive) in turn: false when it has none, else
 * true with *r the first answer other than -ENOENT (-ENOENT: none took the key). */
static bool conf_section_set(struct node_config *c, const char *section, const char *k,
			     const char *v, char *why, size_t whylen, int *r)
{
	bool known = false;

	*r = -ENOENT;
	for (size_t i = 0; i < sizeof(conf_sections) / sizeof(conf_sections[0]) && *r == -ENOENT;
	     i++)
		if (strcasecmp(section, conf_sections[i].name) == 0) {
			known = true;
			*r = conf_sections[i].set(c, k, v, why, whylen);
		}
	return known;
}

static const char *section_arg(const char *section, const char *kind)
{
	size_t n = strlen(kind);

	if (strncasecmp(section, kind, n) != 0 || section[n] != ' ')
		return NULL;
	section += n;
	while (*section == ' ')
		section++;
	return *section != '\0' ? section : NULL;
}

static struct listen_conf *listen_by_name(struct load_ctx *lc, const char *name)
{
	struct node_config *c = lc->c;

	for (unsigned i = 0; i < c->nlisten; i++)
		if (strcmp(c->listen[i].name, name) == 0)
			return &c->listen[i];
	if (c->nlisten == CONF_MAX_LISTEN)
		return NULL;
	listen_conf_init(&c->listen[c->nlisten], name);
	return &c->listen[c->nlisten++];
}

static int parse_listen(struct load_ctx *lc, const char *section, const char *name, const char *k,
			const char *v)
{
	struct listen_conf *l = listen_by_name(lc, name);
	char why[256];
	int r;

	if (l == NULL)
		return conf_fail(lc, section, k, "too many listen sections (at most %d)",
				 CONF_MAX_LISTEN);
	r = listen_conf_set(l, k, v, why, sizeof(why));
	if (r == -ENOENT)
		return conf_fail(lc, section, k, "unknown key");
	if (r < 0)
		return conf_fail(lc, section, k, "%s", why);
	if (strcmp(k, "address") == 0)
		lc->chk.listen_line[l - lc->c->listen] = lc->line;
	return 1;
}

/* The domain of a [domain NAME] section, created on first sight. Names are kept in a hash table
 * while loading: a node may serve CONF_MAX_DOMAINS domains, and a linear search per key made
 * loading quadratic (3 s for 20,000 domains). */
static struct domain_conf *domain_by_name(struct load_ctx *lc, const char *name, long *idx_r)
{
	struct node_config *c = lc->c;
	struct domain_conf *d;
	char key[256];
	ENTRY want, *found;
	size_t n = strlen(name);

	if (n >= sizeof(key))
		return NULL;
	for (size_t i = 0; i <= n; i++)
		key[i] = (char)tolower((unsigned char)name[i]);
	if (!lc->names_ok) {
		if (hcreate_r(2 * CONF_MAX_DOMAINS, &lc->names) == 0)
			return NULL;
		lc->names_ok = true;
	}
	want.key = key;
	if (hsearch_r(want, FIND, &found, &lc->names) != 0) {
		*idx_r = (long)(uintptr_t)found->data;
		return &c->domains[*idx_r];
	}
	if (c->ndomains == CONF_MAX_DOMAINS)
		return NULL;
	if (c->ndomains == lc->capdomains) {
		size_t cap = lc->capdomains ? lc->capdomains * 2 : 16;

		if (cap > CONF_MAX_DOMAINS)
			cap = CONF_MAX_DOMAINS;
		d = realloc(c->domains, cap * sizeof(*d));
		if (d == NULL)
			return NULL;
		c->domains = d;
		lc->capdomains = cap;
	}
	d = &c->domains[c->ndomains];
	if (domain_conf_init(d, key) < 0)
		return NULL;
	want.key = d->name;        /* the table keeps the pointer: the domain's own copy */
	want.data = (void *)(uintptr_t)c->ndomains;
	if (hsearch_r(want, ENTER, &found, &lc->names) == 0) {
		domain_conf_clear(d);
		return NULL;
	}
	*idx_r = (long)c->ndomains++;
	return d;
}

/* A [domain] key: delivery's, the section's own, or else a policy key, applied once the whole
 * buffer is read. */
static int parse_domain(struct load_ctx *lc, const char *section, const char *name, const char *k,
			const char *v)
{
	long idx;
	struct domain_conf *d = domain_by_name(lc, name, &idx);
	char why[256];
	int r;

	if (d == NULL)
		return conf_fail(lc, section, k, "a name over 255 bytes, more than %d domains, or out "
				 "of memory", CONF_MAX_DOMAINS);
	r = delivery_tuning_domain_set(d, k, v, why, sizeof(why));
	if (r == -ENOENT)
		r = domain_conf_set(d, k, v, why, sizeof(why));
	if (r == -ENOENT && conf_policy_push(lc, idx, k, v) < 0)
		return conf_fail(lc, section, k, "out of memory");
	if (r < 0 && r != -ENOENT)
		return conf_fail(lc, section, k, "%s", why);
	return 1;
}

/* --- whole-buffer checks: duplicates, names, lines (see struct load_check) -------------- */

static int load_seen_add(struct load_seen **v, size_t *n, size_t *cap, const char *name, int line)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		struct load_seen *nv = realloc(*v, c * sizeof(*nv));

		if (nv == NULL)
			return -ENOMEM;
		*v = nv;
		*cap = c;
	}
	(*v)[*n].name = strdup(name);
	if ((*v)[*n].name == NULL)
		return -ENOMEM;
	(*v)[(*n)++].line = line;
	return 0;
}

static void load_seen_clear(struct load_seen *v, size_t *n)
{
	for (size_t i = 0; i < *n; i++)
		free(v[i].name);
	*n = 0;
}

static int load_seen_line(const struct load_seen *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return v[i].line;
	return 0;
}

/* The reader's error: inih is stopped (the reader returns NULL), so the line is kept here. */
static int load_fail_line(struct load_ctx *lc, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int load_fail_line(struct load_ctx *lc, const char *fmt, ...)
{
	va_list ap;

	if (lc->err[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(lc->err, sizeof(lc->err), fmt, ap);
		va_end(ap);
		lc->chk.err_line = lc->line;
	}
	return -EINVAL;
}

/* A section header at lc->line: given twice is an error naming both lines. */
static int load_check_section(struct load_ctx *lc, const char *section)
{
	struct load_check *k = &lc->chk;
	const char *arg;
	char norm[300], why[200];
	int first;

	load_seen_clear(k->keys, &k->nkeys);
	k->prev_key = false;
	if ((arg = section_arg(section, "domain")) != NULL) {
		struct domain_conf *d;
		long idx;

		if (domain_conf_name_check(arg, why, sizeof(why)) < 0)
			return load_fail_line(lc, "[%s]: %s", section, why);
		d = domain_by_name(lc, arg, &idx);
		if (d == NULL)
			return 0;   /* too many or no memory: the first key says so, with its line */
		if ((size_t)idx >= k->capdomain_line) {
			size_t cap = k->capdomain_line ? k->capdomain_line * 2 : 64;
			int *nl = realloc(k->domain_line, cap * sizeof(*nl));

			if (nl == NULL)
				return load_fail_line(lc, "[%s]: out of memory", section);
			memset(nl + k->capdomain_line, 0, (cap - k->capdomain_line) * sizeof(*nl));
			k->domain_line = nl;
			k->capdomain_line = cap;
		}
		if (k->domain_line[idx] != 0)
			return load_fail_line(lc, "[%s]: section given twice: [domain %s] is at line %d",
					      section, d->name, k->domain_line[idx]);
		k->domain_line[idx] = lc->line;
		return 0;
	}
	if ((arg = section_arg(section, "listen")) != NULL) {
		snprintf(norm, sizeof(norm), "listen %s", arg);
		(void)listen_by_name(lc, arg);   /* so that one without keys is "missing an address" */
	} else {
		size_t i;

		for (i = 0; section[i] != '\0' && i < sizeof(norm) - 1; i++)
			norm[i] = (char)tolower((unsigned char)section[i]);
		norm[i] = '\0';
	}
	first = load_seen_line(k->sections, k->nsections, norm);
	if (first != 0)
		return load_fail_line(lc, "[%s]: section given twice: first at line %d", section, first);
	if (strcmp(norm, "node") == 0)
		k->node_line = lc->line;
	if (strcmp(norm, "cluster") == 0) {
		k->cluster_line = lc->line;
		lc->c->cluster.on = true;   /* even empty: then "dir: missing" */
	}
	if (load_seen_add(&k->sections, &k->nsections, &k->capsections, norm, lc->line) < 0)
		return load_fail_line(lc, "[%s]: out of memory", section);
	return 0;
}

/* Looks at each line before inih does, by inih's own rules (r55: after leading blanks, ';' or '#'
 * or nothing is a comment; a non-blank line with leading blanks after a key continues its
 * value; '[' opens a section whose name ends at ']'). Returns 0, or -EINVAL to stop. */
static int load_check_line(struct load_ctx *lc, const char *line)
{
	struct load_check *k = &lc->chk;
	const char *start = line, *end;
	char section[256];
	size_t n;

	k->cont = false;
	if (lc->line == 1 && memcmp(start, "\xEF\xBB\xBF", 3) == 0)
		start += 3;
	while (isspace((unsigned char)*start))
		start++;
	if (*start == '\0' || *start == ';' || *start == '#')
		return 0;
	if (k->prev_key && start > line) {
		k->cont = true;
		return 0;
	}
	if (*start != '[') {
		if (strpbrk(start, "=:") != NULL)
			k->prev_key = true;
		return 0;
	}
	for (end = start + 1; *end != '\0' && *end != ']'; end++)
		if (*end == ';' && isspace((unsigned char)end[-1]))
			return 0;   /* inih: a syntax error, reported with its line */
	if (*end != ']')
		return 0;
	n = (size_t)(end - start - 1);
	if (n >= sizeof(section))
		n = sizeof(section) - 1;
	memcpy(section, start + 1, n);
	section[n] = '\0';
	return load_check_section(lc, section);
}

/* The list keys of a policy add to their list each time; any other key given twice in one
 * section is an error (which one was meant?). Returns 0 or -EINVAL (lc->err set). */
static int load_check_key(struct load_ctx *lc, const char *section, const char *key)
{
	static const char *const lists[] = { "sender_allow", "sender_block", "ip_allow", "ip_block" };
	struct load_check *k = &lc->chk;
	bool list = false;
	int first;

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		list |= strcmp(key, lists[i]) == 0;
	if (k->cont) {
		/* inih takes an indented line after a key as more of that key's value: only a list
		 * can have more, anywhere else it is a mistake ("  role = fallback" under address). */
		if (list)
			return 0;
		conf_fail(lc, section, key, "an indented line continues the value of %s (line %d): "
			  "un-indent it, or write the value on one line", key,
			  load_seen_line(k->keys, k->nkeys, key));
		return -EINVAL;
	}
	if (strcasecmp(section, "node") == 0) {
		k->has_hostname |= strcmp(key, "hostname") == 0;
		if (strcmp(key, "name") == 0)
			k->name_line = lc->line;
		if (strcmp(key, "spool_dir") == 0) {
			k->has_spool_dir = true;
			lc->c->ops.spool_dir_line = lc->line;
		}
	}
	if (list)
		return 0;
	first = load_seen_line(k->keys, k->nkeys, key);
	if (first != 0) {
		conf_fail(lc, section, key, "given twice in this section: first at line %d", first);
		return -EINVAL;
	}
	if (load_seen_add(&k->keys, &k->nkeys, &k->capkeys, key, lc->line) < 0) {
		conf_fail(lc, section, key, "out of memory");
		return -EINVAL;
	}
	return 0;
}

static void load_check_free(struct load_check *k)
{
	load_seen_clear(k->sections, &k->nsections);
	load_seen_clear(k->keys, &k->nkeys);
	free(k->sections);
	free(k->keys);
	free(k->domain_line);
}

/* inih's handler: one key, to the module that owns its section. */
static int load_handler(void *user, const char *section, const char *k, const char *v)
{
	struct load_ctx *lc = user;
	const char *arg;
	char why[256];
	int r;

	if (k == NULL)      /* a section header alone (inih with INI_CALL_HANDLER_ON_NEW_SECTION) */
		return 1;
	if (load_check_key(lc, section, k) < 0)
		return 0;
	if (strcasecmp(section, "node") == 0)
		return conf_node_set(lc, k, v);
	if (strcasecmp(section, "cluster") == 0)
		return conf_cluster_set(lc, k, v);
	if (conf_section_set(lc->c, section, k, v, why, sizeof(why), &r)) {
		if (r == -ENOENT)
			return conf_fail(lc, section, k, "unknown key");
		if (r < 0)
			return conf_fail(lc, section, k, "%s", why);
		return 1;
	}
	if (strcasecmp(section, "policy") == 0 && strcmp(k, "allow_routing") == 0) {
		if (cfgval_bool(v, &lc->c->allow_routing) < 0)
			return conf_fail(lc, section, k, "want yes or no, not \"%s\"", v);
		return 1;
	}
	if (strcasecmp(section, "policy") == 0) {
		if (conf_policy_push(lc, -1, k, v) < 0)
			return conf_fail(lc, section, k, "out of memory");
		return 1;
	}
	if ((arg = section_arg(section, "listen")) != NULL)
		return parse_listen(lc, section, arg, k, v);
	if ((arg = section_arg(section, "domain")) != NULL)
		return parse_domain(lc, section, arg, k, v);
	return conf_fail(lc, section, k, "unknown section [%s]", section);
}

/* inih's reader over the buffer, as fgets would read a file: up to num - 1 bytes, through a LF.
 * inih's handler is not told the line number; counting the reader's calls gives it. */
static char *load_reader(char *str, int num, void *stream)
{
	struct load_ctx *lc = stream;
	size_t n = 0;

	if (lc->pos == lc->end || num < 2)
		return NULL;
	while (lc->pos + n < lc->end && n < (size_t)num - 1 && lc->pos[n++] != '\n')
		;
	memcpy(str, lc->pos, n);
	str[n] = '\0';
	lc->pos += n;
	lc->line++;
	if (load_check_line(lc, str) < 0)
		return NULL;    /* stops inih; the error is in lc->err, its line in chk.err_line */
	return str;
}

static void node_config_free(struct node_config *c)
{
	if (c == NULL)
		return;
	for (unsigned i = 0; i < c->ndomains; i++)
		domain_conf_clear(&c->domains[i]);
	free(c->domains);
	free(c->listen);
	policy_free(&c->default_policy);
	if (c->filter_db != NULL)
		filter_db_unref(&c->filter_db);
	if (c->tls_ctx != NULL)
		tls_ctx_free(&c->tls_ctx);
	if (c->tls_client_ctx != NULL)
		tls_ctx_free(&c->tls_client_ctx);
	if (c->tls_client_verify_ctx != NULL)
		tls_ctx_free(&c->tls_client_verify_ctx);
	free(c->path);
	free(c);
}

/* Every module's defaults, and the node's own. */
static void config_defaults(struct node_config *c)
{
	atomic_init(&c->snap.refs, 1);
	c->snap.free_fn = node_config_free;
	shard_conf_defaults(&c->snap.shard);
	snprintf(c->name, sizeof(c->name), "node");
	if (gethostname(c->hostname, sizeof(c->hostname)) != 0)
		snprintf(c->hostname, sizeof(c->hostname), "localhost");
	snprintf(c->spool_dir, sizeof(c->spool_dir), "/var/spool/sluice");
	c->log_level = 1;
	c->log_facility = 2;   /* mail, as Postfix */
	smtp_conf_limits_defaults(&c->limits);
	spool_tuning_defaults(&c->spool);
	delivery_tuning_defaults(&c->delivery);
	conf_cluster_defaults(c);
}

/* Reads the buffer into lc->c: inih's verdict with its line, then the sections that must be
 * whole (listeners with an address, domains with a route). 0, or -EINVAL with err set. */
static int load_read(struct load_ctx *lc, char *err, size_t errlen)
{
	struct node_config *c = lc->c;
	const char *path = lc->name;
	int line = ini_parse_stream(load_reader, lc, load_handler, lc);

	if (line == 0 && lc->chk.err_line != 0)
		line = lc->chk.err_line;
	if (line != 0) {
		if (line < 0)
			snprintf(err, errlen, "%s: cannot read", path);
		else if (lc->err[0] != '\0')
			snprintf(err, errlen, "%s:%d: %s", path, line, lc->err);
		else
			snprintf(err, errlen, "%s:%d: syntax error (want \"key = value\" or \"[section]\")",
				 path, line);
		return -EINVAL;
	}
	if (c->nlisten == 0) {
		snprintf(err, errlen, "%s: no [listen NAME] section: the node would accept no mail", path);
		return -EINVAL;
	}
	for (unsigned i = 0; i < c->nlisten; i++)
		if (c->listen[i].addrlen == 0) {
			char norm[80];

			snprintf(norm, sizeof(norm), "listen %s", c->listen[i].name);
			snprintf(err, errlen, "%s:%d: [listen %s] address: missing: the section has no address",
				 path, load_seen_line(lc->chk.sections, lc->chk.nsections, norm),
				 c->listen[i].name);
			return -EINVAL;
		}
	for (unsigned i = 0; i < c->ndomains; i++)
		if (!c->domains[i].route_mx && c->domains[i].ndest == 0) {
			snprintf(err, errlen, "%s:%d: [domain %s] route: missing: the domain has no route "
				 "(want \"host:port [priority], ...\" or \"mx\")", path,
				 i < lc->chk.capdomain_line ? lc->chk.domain_line[i] : 0, c->domains[i].name);
			return -EINVAL;
		}
	return 0;
}

/* SO_REUSEPORT would let both bind: one address's connections split between two roles. */
static int check_listen_addresses(struct load_ctx *lc, char *err, size_t errlen)
{
	const struct node_config *c = lc->c;

	for (unsigned j = 1; j < c->nlisten; j++)
		for (unsigned i = 0; i < j; i++)
			if (listen_addr_same(&c->listen[i].addr, &c->listen[j].addr)) {
				snprintf(err, errlen, "%s:%d: [listen %s] address: %s is already the address "
					 "of [listen %s] at line %d", lc->name, lc->chk.listen_line[j],
					 c->listen[j].name, c->listen[j].address, c->listen[i].name,
					 lc->chk.listen_line[i]);
				return -EINVAL;
			}
	return 0;
}

/* Before the domains are sorted (file order): each domain's allow_routing from [policy] unless
 * it says, and the default postmaster, postmaster@ the first domain of the file. */
static void finish_routing_postmaster(struct node_config *c)
{
	for (unsigned i = 0; i < c->ndomains; i++)
		if (!c->domains[i].allow_routing_set)
			c->domains[i].allow_routing = c->allow_routing;
	if (c->postmaster[0] == '\0' && c->ndomains > 0)
		snprintf(c->postmaster, sizeof(c->postmaster), "postmaster@%s", c->domains[0].name);
}

/* The whole-buffer checks, in the order their errors take precedence, and what each module builds
 * once its sections are whole (TLS contexts, policies, the rule set). */
static int load_finish(struct load_ctx *lc, char *err, size_t errlen)
{
	struct node_config *c = lc->c;
	const char *path = lc->name;
	char why[512];
	int r;

	if (check_listen_addresses(lc, err, errlen) < 0 || conf_node_check(lc, err, errlen) < 0 ||
	    conf_cluster_check(lc, err, errlen) < 0)
		return -EINVAL;
	if (c->banner[0] == '\0')
		snprintf(c->banner, sizeof(c->banner), "ESMTP Sluice");
	if (smtp_conf_tls_load(&c->tls, &c->tls_ctx, why, sizeof(why)) < 0 ||
	    delivery_tuning_finish(&c->delivery, c->hostname, why, sizeof(why)) < 0 ||
	    delivery_tuning_tls_load(c->domains, c->ndomains, &c->tls_client_ctx,
				     &c->tls_client_verify_ctx, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		return -EINVAL;
	}
	if (conf_metrics_check(c, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: %s", path, why);
		return -EINVAL;
	}
	r = conf_policy_apply(lc, err, errlen);
	if (r < 0)
		return r;
	finish_routing_postmaster(c);
	if (c->ndomains == 0)
		log_warn(0, "%s: no [domain] section: every recipient will be refused (554 5.7.1)", path);
	if (c->ndomains > 1)      /* with none, domains is NULL: qsort must not see it */
		qsort(c->domains, c->ndomains, sizeof(*c->domains), domain_conf_cmp);
	if (conf_node_check_postmaster(lc, err, errlen) < 0)
		return -EINVAL;
	if (c->rules_dir[0] != '\0' && filter_db_load(c->rules_dir, &c->filter_db, why,
						      sizeof(why)) < 0) {
		snprintf(err, errlen, "%s: [node] rules_dir %s: %s", path, c->rules_dir, why);
		return -EINVAL;
	}
	return 0;
}

int node_config_load_buffer(const char *name, const char *buf, size_t len,
			    struct node_config **conf_r, char *err, size_t errlen)
{
	static _Atomic uint64_t generation;
	struct load_ctx lc = { .name = name, .pos = buf, .end = len ? buf + len : buf };
	struct node_config *c;
	const char *nul = len ? memchr(buf, '\0', len) : NULL;   /* buf may be NULL when empty */
	int r;

	if (nul != NULL) {
		/* a file cannot hold one either: the INI reader would stop there */
		snprintf(err, errlen, "%s: a NUL byte at offset %zu", name, (size_t)(nul - buf));
		return -EINVAL;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->listen = calloc(CONF_MAX_LISTEN, sizeof(*c->listen))) == NULL ||
	    (c->path = strdup(name)) == NULL) {
		snprintf(err, errlen, "%s: out of memory", name);
		node_config_free(c);
		return -ENOMEM;
	}
	config_defaults(c);
	lc.c = c;
	r = load_read(&lc, err, errlen);
	if (r == 0)
		r = load_finish(&lc, err, errlen);
	conf_policy_free(&lc);
	if (lc.names_ok)
		hdestroy_r(&lc.names);
	load_check_free(&lc.chk);
	if (r < 0) {
		node_config_free(c);
		return r;
	}
	c->generation = ++generation;
	*conf_r = c;
	return 0;
}

int node_config_load(const char *path, struct node_config **conf_r, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	int r;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -EINVAL;
	}
	do {
		if (len == cap) {
			char *nb = realloc(buf, cap = cap ? cap * 2 : 16384);

			if (nb == NULL) {
				free(buf);
				fclose(f);
				snprintf(err, errlen, "%s: out of memory", path);
				return -ENOMEM;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	/* a read error (a directory, say) reads as the end, as inih's reader took it */
	fclose(f);
	r = node_config_load_buffer(path, buf, len, conf_r, err, errlen);
	free(buf);
	return r;
}
