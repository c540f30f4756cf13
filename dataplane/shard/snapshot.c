/*
 * snapshot.c - loading the node configuration file into an immutable snapshot. See snapshot.h.
 *
 * Called at start-up by main and on SIGHUP by the agent thread, never on a shard. Every key is
 * checked here, so a snapshot that exists is valid: shards never meet a bad value.
 */
#include "shard/snapshot.h"

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <ini.h>
#include <netinet/in.h>
#include <pwd.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/cfgval.h"
#include "base/log.h"
#include "base/tls.h"
#include "filter/filter.h"
#include "policy/policy.h"
#include "smtp/smtp_limits.h"

#define SNAPSHOT_MAX_LISTEN  32
#define SNAPSHOT_MAX_DOMAINS 100000

static const char *const listen_role_names[] = { "primary", "fallback" };

const char *listen_role_name(unsigned role)
{
	return role < 2 ? listen_role_names[role] : "?";
}

/* A policy key seen in [policy] or [domain]: applied once the whole file is read, so a domain
 * inherits the default whatever the order of sections. */
struct pending_policy_key {
	long     domain;      /* index into the domains, -1 for [policy] */
	char    *key, *value;
	int      line;
};

/* What the checks of a whole file need that inih does not tell: the line of every section header
 * (inih's handler sees only keys), the keys of the current section, and the lines of keys that
 * later checks name. Filled by load_reader and load_handler. */
struct load_seen {
	char *name;           /* normalised: lower case, "listen NAME" keeps the name's case */
	int   line;
};

struct load_check {
	struct load_seen *sections;        /* except [domain]s: those are in load_ctx.names */
	size_t            nsections, capsections;
	struct load_seen *keys;            /* keys of the current section */
	size_t            nkeys, capkeys;
	int              *domain_line;     /* header line of each domain, by index */
	size_t            capdomain_line;
	int               listen_line[SNAPSHOT_MAX_LISTEN];   /* line of each listener's address */
	int               node_line;       /* the [node] header, 0 without one */
	int               err_line;        /* an error the reader found (inih has no line for it) */
	bool              cont;            /* this line continues the previous key's value */
	bool              prev_key;        /* a key was seen in this section (inih's prev_name) */
	bool              has_hostname, has_spool_dir;
	int               user_line, group_line;
};

struct load_ctx {
	struct node_config        *c;
	char                       err[512];
	FILE                      *f;
	int                        line;          /* lines read so far (inih's reader counts) */
	struct pending_policy_key *pk;
	size_t                     npk, cappk;
	size_t                     capdomains;
	struct hsearch_data        names;         /* domain name -> index, while loading */
	bool                       names_ok;
	int                        postmaster_line;  /* where [node] postmaster was set */
	struct load_check          chk;
};

static int load_fail(struct load_ctx *lc, const char *section, const char *key, const char *fmt,
		     ...) __attribute__((format(printf, 4, 5)));

static int load_fail(struct load_ctx *lc, const char *section, const char *key, const char *fmt,
		     ...)
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

static int set_str(char *dst, size_t dstlen, const char *v)
{
	size_t n = strlen(v);

	if (n >= dstlen)
		return -ERANGE;
	memcpy(dst, v, n + 1);
	return 0;
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

static int parse_node_ops(struct load_ctx *lc, const char *k, const char *v);

static int parse_node(struct load_ctx *lc, const char *k, const char *v)
{
	struct node_config *c = lc->c;
	uint64_t u;
	int r = 0;

	if ((r = parse_node_ops(lc, k, v)) != 0)
		return r > 0;
	if (strcmp(k, "name") == 0)
		r = set_str(c->name, sizeof(c->name), v);
	else if (strcmp(k, "hostname") == 0)
		r = set_str(c->hostname, sizeof(c->hostname), v);
	else if (strcmp(k, "banner") == 0)
		r = set_str(c->banner, sizeof(c->banner), v);
	else if (strcmp(k, "spool_dir") == 0)
		r = set_str(c->spool_dir, sizeof(c->spool_dir), v);
	else if (strcmp(k, "rules_dir") == 0)
		r = set_str(c->rules_dir, sizeof(c->rules_dir), v);
	else if (strcmp(k, "shards") == 0) {
		r = cfgval_uint(v, 0, 256, &u);
		if (r == 0)
			c->shards = (unsigned)u;
	} else if (strcmp(k, "log_level") == 0) {
		static const char *const lv[] = { "debug", "info", "warning", "error" };

		r = -EINVAL;
		for (int i = 0; i < 4; i++)
			if (strcasecmp(v, lv[i]) == 0) {
				c->log_level = i;
				r = 0;
			}
		if (r < 0)
			return load_fail(lc, "node", k, "want debug, info, warning or error, not \"%s\"", v);
	} else if (strcmp(k, "log") == 0) {
		if (strcasecmp(v, "stderr") == 0)
			c->log_output = LOG_OUT_STDERR;
		else if (strcasecmp(v, "syslog") == 0)
			c->log_output = LOG_OUT_SYSLOG;
		else
			return load_fail(lc, "node", k, "want stderr or syslog, not \"%s\"", v);
	} else if (strcmp(k, "log_facility") == 0) {
		int f = log_facility_parse(v);

		if (f < 0)
			return load_fail(lc, "node", k, "want a syslog facility (mail, daemon, local0 .. "
					 "local7, ...), not \"%s\"", v);
		c->log_facility = (uint8_t)f;
	} else if (strcmp(k, "log_socket") == 0) {
		if (v[0] != '/' || set_str(c->log_socket, sizeof(c->log_socket), v) < 0)
			return load_fail(lc, "node", k, "want an absolute path of at most %zu bytes, not "
					 "\"%s\"", sizeof(c->log_socket) - 1, v);
	} else if (strcmp(k, "postmaster") == 0) {
		const char *at = strrchr(v, '@');

		if (at == NULL || at == v || at[1] == '\0' || strpbrk(v, " \t<>\"") != NULL ||
		    set_str(c->postmaster, sizeof(c->postmaster), v) < 0)
			return load_fail(lc, "node", k, "want an address local@domain in a served domain, "
					 "not \"%s\"", v);
		lc->postmaster_line = lc->line;
	} else
		return load_fail(lc, "node", k, "unknown key");
	if (r < 0)
		return load_fail(lc, "node", k, "bad value \"%s\"", v);
	return 1;
}

static int parse_limits(struct load_ctx *lc, const char *k, const char *v)
{
	struct node_limits *l = &lc->c->limits;
	uint64_t u;
	int r;

	if (strcmp(k, "message_size") == 0) {
		r = cfgval_size(v, &u);
		if (r == 0 && (u < 1024 || u > (UINT64_C(1) << 32)))
			r = -ERANGE;
		l->message_size = u;
	} else if (strcmp(k, "recipients") == 0) {
		r = cfgval_uint(v, 1, 100000, &u);
		l->recipients = (uint32_t)u;
	} else if (strcmp(k, "errors") == 0) {
		r = cfgval_uint(v, 1, 1000, &u);
		l->errors = (uint32_t)u;
	} else if (strcmp(k, "session_time") == 0) {
		r = cfgval_duration_ms(v, &u);
		l->session_ms = u;
	} else if (strcmp(k, "idle_timeout") == 0) {
		r = cfgval_duration_ms(v, &u);
		l->idle_ms = u;
	} else if (strcmp(k, "connections_per_ip") == 0) {
		r = cfgval_uint(v, 0, 1000000, &u);
		l->conn_per_ip = (uint32_t)u;
	} else if (strcmp(k, "max_sessions") == 0) {
		r = cfgval_uint(v, 1, 1000000, &u);
		l->max_sessions = (uint32_t)u;
	} else if (strcmp(k, "command_line") == 0) {
		r = cfgval_uint(v, SMTP_CMD_LINE_MAX, 65536, &u);
		l->command_line = (uint32_t)u;
	} else if (strcmp(k, "shutdown_grace") == 0) {
		r = cfgval_duration_ms(v, &u);
		l->shutdown_grace_ms = u;
	} else if (strcmp(k, "greet_pause") == 0) {
		r = cfgval_duration_ms(v, &u);
		if (r == 0 && u > 60000)
			r = -ERANGE;
		l->greet_pause_ms = u;
	} else if (strcmp(k, "header_count") == 0) {
		r = cfgval_uint(v, 10, 1000000, &u);
		l->header_count = (uint32_t)u;
	} else if (strcmp(k, "header_size") == 0) {
		r = cfgval_size(v, &u);
		if (r == 0 && (u < 1024 || u > (UINT64_C(1) << 32)))
			r = -ERANGE;
		l->header_size = u;
	} else
		return load_fail(lc, "limits", k, "unknown key");
	if (r < 0)
		return load_fail(lc, "limits", k, "bad value \"%s\"%s", v,
				 r == -ERANGE ? " (out of range)" : "");
	return 1;
}

static int parse_spool(struct load_ctx *lc, const char *k, const char *v)
{
	struct spool_tuning *s = &lc->c->spool;
	uint64_t u;
	int r;

	if (strcmp(k, "segment_size") == 0) {
		r = cfgval_size(v, &u);
		if (r == 0 && (u < (1u << 20) || u > (UINT64_C(1) << 34)))
			r = -ERANGE;
		s->segment_size = u;
	} else if (strcmp(k, "spill_size") == 0) {
		r = cfgval_size(v, &u);
		s->spill_size = u;
	} else if (strcmp(k, "min_free") == 0) {
		r = cfgval_size(v, &u);
		s->min_free = u;
	} else if (strcmp(k, "commit_delay") == 0) {
		/* In microseconds ("500us") or any duration; at most 100 ms. */
		size_t n = strlen(v);

		if (n > 2 && strcmp(v + n - 2, "us") == 0) {
			char num[32];

			snprintf(num, sizeof(num), "%.*s", (int)(n - 2), v);
			r = cfgval_uint(num, 0, 100000, &u);
		} else {
			r = cfgval_duration_ms(v, &u);
			u *= 1000;
		}
		if (r == 0 && u > 100000)
			r = -ERANGE;
		s->commit_delay_us = (uint32_t)u;
	} else
		return load_fail(lc, "spool", k, "unknown key");
	if (r < 0)
		return load_fail(lc, "spool", k, "bad value \"%s\"", v);
	return 1;
}

static int parse_tls(struct load_ctx *lc, const char *k, const char *v)
{
	struct node_config *c = lc->c;
	int r;

	if (strcmp(k, "cert") == 0)
		r = set_str(c->tls_cert, sizeof(c->tls_cert), v);
	else if (strcmp(k, "key") == 0)
		r = set_str(c->tls_key, sizeof(c->tls_key), v);
	else
		return load_fail(lc, "tls", k, "unknown key");
	if (r < 0)
		return load_fail(lc, "tls", k, "path too long");
	return 1;
}

/* The [delivery] key of a stage's total deadline, or NULL. */
static uint32_t *delivery_timeout_key(struct delivery_tuning *d, const char *k)
{
	static const struct { const char *key; size_t off; } keys[] = {
		{ "helo_timeout", offsetof(struct delivery_tuning, helo_timeout_ms) },
		{ "starttls_timeout", offsetof(struct delivery_tuning, starttls_timeout_ms) },
		{ "mail_timeout", offsetof(struct delivery_tuning, mail_timeout_ms) },
		{ "rcpt_timeout", offsetof(struct delivery_tuning, rcpt_timeout_ms) },
		{ "data_init_timeout", offsetof(struct delivery_tuning, data_init_timeout_ms) },
		{ "data_xfer_timeout", offsetof(struct delivery_tuning, data_xfer_timeout_ms) },
		{ "data_done_timeout", offsetof(struct delivery_tuning, data_done_timeout_ms) },
		{ "rset_timeout", offsetof(struct delivery_tuning, rset_timeout_ms) },
		{ "quit_timeout", offsetof(struct delivery_tuning, quit_timeout_ms) },
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(k, keys[i].key) == 0)
			return (uint32_t *)(void *)((char *)d + keys[i].off);
	return NULL;
}

static int parse_delivery(struct load_ctx *lc, const char *k, const char *v)
{
	struct delivery_tuning *d = &lc->c->delivery;
	uint64_t u = 0;
	int r;

	if (strcmp(k, "retry_first") == 0 || strcmp(k, "retry_max") == 0 ||
	    strcmp(k, "expire") == 0 || strcmp(k, "delay_warning") == 0 ||
	    strcmp(k, "connect_timeout") == 0 || strcmp(k, "idle_time") == 0) {
		r = cfgval_duration_ms(v, &u);
		if (r == 0 && strcmp(k, "delay_warning") != 0 && u == 0)
			r = -ERANGE;
		if (r == 0) {
			if (k[0] == 'r')
				*(k[6] == 'f' ? &d->retry_first_ms : &d->retry_max_ms) = u;
			else if (k[0] == 'e')
				d->expire_ms = u;
			else if (k[0] == 'd')
				d->delay_warning_ms = u;
			else if (k[0] == 'c')
				d->connect_timeout_ms = u;
			else
				d->idle_ms = u;
		}
	} else if (strcmp(k, "hold") == 0) {
		bool b = false;

		r = cfgval_bool(v, &b);
		d->hold = b;
	} else if (strcmp(k, "retry_flat") == 0) {
		r = cfgval_uint(v, 0, 100, &u);
		d->retry_flat = (uint32_t)u;
	} else if (strcmp(k, "retry_jitter") == 0) {
		r = cfgval_uint(v, 0, 50, &u);
		d->retry_jitter_pct = (uint32_t)u;
	} else if (strcmp(k, "concurrency") == 0) {
		r = cfgval_uint(v, 1, 10000, &u);
		d->concurrency = (uint32_t)u;
	} else if (strcmp(k, "mx_port") == 0) {
		r = cfgval_uint(v, 1, 65535, &u);
		if (r == -ERANGE)
			return load_fail(lc, "delivery", k, "port %s out of range (want 1-65535)", v);
		d->mx_port = (uint16_t)u;
	} else if (strcmp(k, "helo_name") == 0) {
		r = set_str(d->helo_name, sizeof(d->helo_name), v);
	} else if (strcmp(k, "dns_server") == 0) {
		struct sockaddr_storage ss;
		socklen_t sl;

		/* One numeric address:port, or a c-ares list checked item by item. */
		r = set_str(d->dns_server, sizeof(d->dns_server), v);
		if (r == 0 && strchr(v, ',') == NULL && cfgval_hostport(v, true, &ss, &sl) == -ERANGE)
			return load_fail(lc, "delivery", k, "port out of range in \"%s\" (want 1-65535)",
					 v);
		if (r == 0 && strchr(v, ',') == NULL && cfgval_hostport(v, true, &ss, &sl) < 0)
			return load_fail(lc, "delivery", k,
					 "want a numeric address:port (\"127.0.0.1:53\"), not \"%s\"", v);
	} else if (delivery_timeout_key(d, k) != NULL) {
		r = cfgval_duration_ms(v, &u);
		if (r == 0 && (u == 0 || u > 24u * 3600u * 1000u))
			r = -ERANGE;   /* 1 ms .. 1 day */
		if (r == 0)
			*delivery_timeout_key(d, k) = (uint32_t)u;
	} else if (strcmp(k, "min_data_rate") == 0) {
		r = cfgval_size(v, &u);
		if (r == 0 && u == 0)
			r = -ERANGE;
		d->min_data_rate = u;
	} else if (strcmp(k, "long_lines") == 0) {
		if (strcmp(v, "pass") == 0)
			d->long_lines = DELIVERY_LONG_LINES_PASS;
		else if (strcmp(v, "wrap") == 0)
			d->long_lines = DELIVERY_LONG_LINES_WRAP;
		else if (strcmp(v, "refuse") == 0)
			d->long_lines = DELIVERY_LONG_LINES_REFUSE;
		else
			return load_fail(lc, "delivery", k, "want pass, wrap or refuse, not \"%s\"", v);
		r = 0;
	} else
		return load_fail(lc, "delivery", k, "unknown key");
	if (r < 0)
		return load_fail(lc, "delivery", k, "bad value \"%s\"%s", v,
				 r == -ERANGE ? " (out of range)" : "");
	return 1;
}

static struct listen_conf *listen_by_name(struct load_ctx *lc, const char *name)
{
	struct node_config *c = lc->c;

	for (unsigned i = 0; i < c->nlisten; i++)
		if (strcmp(c->listen[i].name, name) == 0)
			return &c->listen[i];
	if (c->nlisten == SNAPSHOT_MAX_LISTEN)
		return NULL;
	struct listen_conf *l = &c->listen[c->nlisten++];

	memset(l, 0, sizeof(*l));
	snprintf(l->name, sizeof(l->name), "%s", name);
	l->role = LISTEN_ROLE_PRIMARY;
	l->starttls = true;
	l->greet_pause_ms = -1;
	return l;
}

static int parse_listen(struct load_ctx *lc, const char *section, const char *name, const char *k,
			const char *v)
{
	struct listen_conf *l = listen_by_name(lc, name);
	bool b;

	if (l == NULL)
		return load_fail(lc, section, k, "too many listen sections (at most %d)",
				 SNAPSHOT_MAX_LISTEN);
	if (strcmp(k, "address") == 0) {
		int r = set_str(l->address, sizeof(l->address), v);

		if (r == 0)
			r = cfgval_hostport(v, true, &l->addr, &l->addrlen);
		if (r == -ERANGE)
			return load_fail(lc, section, k, "port out of range in \"%s\" (want 1-65535)", v);
		if (r < 0)
			return load_fail(lc, section, k,
					 "want a numeric address:port (\"127.0.0.2:25\", \"[::1]:25\"), not \"%s\"", v);
		lc->chk.listen_line[l - lc->c->listen] = lc->line;
	} else if (strcmp(k, "role") == 0) {
		if (strcasecmp(v, "primary") == 0)
			l->role = LISTEN_ROLE_PRIMARY;
		else if (strcasecmp(v, "fallback") == 0)
			l->role = LISTEN_ROLE_FALLBACK;
		else
			return load_fail(lc, section, k, "want primary or fallback, not \"%s\"", v);
	} else if (strcmp(k, "starttls") == 0) {
		if (cfgval_bool(v, &b) < 0)
			return load_fail(lc, section, k, "want yes or no, not \"%s\"", v);
		l->starttls = b;
	} else if (strcmp(k, "greet_pause") == 0) {
		uint64_t u;

		if (cfgval_duration_ms(v, &u) < 0 || u > 60000)
			return load_fail(lc, section, k, "want a duration from 0 to 60s, not \"%s\"", v);
		l->greet_pause_ms = (int64_t)u;
	} else
		return load_fail(lc, section, k, "unknown key");
	return 1;
}

/* The domain of a [domain NAME] section, created on first sight. Names are kept in a hash table
 * while loading: a node may serve SNAPSHOT_MAX_DOMAINS domains, and a linear search per key made
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
		if (hcreate_r(2 * SNAPSHOT_MAX_DOMAINS, &lc->names) == 0)
			return NULL;
		lc->names_ok = true;
	}
	want.key = key;
	if (hsearch_r(want, FIND, &found, &lc->names) != 0) {
		*idx_r = (long)(uintptr_t)found->data;
		return &c->domains[*idx_r];
	}
	if (c->ndomains == SNAPSHOT_MAX_DOMAINS)
		return NULL;
	if (c->ndomains == lc->capdomains) {
		size_t cap = lc->capdomains ? lc->capdomains * 2 : 16;

		if (cap > SNAPSHOT_MAX_DOMAINS)
			cap = SNAPSHOT_MAX_DOMAINS;
		d = realloc(c->domains, cap * sizeof(*d));
		if (d == NULL)
			return NULL;
		c->domains = d;
		lc->capdomains = cap;
	}
	d = &c->domains[c->ndomains];
	memset(d, 0, sizeof(*d));
	d->name = strdup(key);
	d->spool_quota = UINT64_C(1) << 30;
	if (d->name == NULL)
		return NULL;
	want.key = d->name;        /* the table keeps the pointer: the domain's own copy */
	want.data = (void *)(uintptr_t)c->ndomains;
	if (hsearch_r(want, ENTER, &found, &lc->names) == 0) {
		free(d->name);
		return NULL;
	}
	*idx_r = (long)c->ndomains++;
	return d;
}

/* "host:port [prio], host:port [prio]" or "mx". */
static int parse_route(struct domain_conf *d, const char *v, char *why, size_t whylen)
{
	char buf[2048], *save = NULL, *item;

	if (strcasecmp(v, "mx") == 0) {
		d->route_mx = true;
		d->ndest = 0;
		return 0;
	}
	if (strlen(v) >= sizeof(buf)) {
		snprintf(why, whylen, "too long");
		return -EINVAL;
	}
	strcpy(buf, v);
	d->route_mx = false;
	d->ndest = 0;
	for (item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
		struct route_dest *rd;
		char *hp, *prio, *colon, *end;
		unsigned long port, pr = 0;

		while (isspace((unsigned char)*item))
			item++;
		hp = strtok_r(item, " \t", &prio);
		if (hp == NULL) {
			snprintf(why, whylen, "empty destination");
			return -EINVAL;
		}
		if (d->ndest == ROUTE_DEST_MAX) {
			snprintf(why, whylen, "at most %d destinations", ROUTE_DEST_MAX);
			return -EINVAL;
		}
		rd = &d->dest[d->ndest];
		colon = hp[0] == '[' ? strstr(hp, "]:") : strrchr(hp, ':');
		if (colon == NULL) {
			snprintf(why, whylen, "\"%s\" lacks a :port", hp);
			return -EINVAL;
		}
		if (hp[0] == '[')
			colon++;
		port = strtoul(colon + 1, &end, 10);
		if (*end != '\0' || colon[1] == '\0') {
			snprintf(why, whylen, "bad port in \"%s\"", hp);
			return -EINVAL;
		}
		if (port == 0 || port > 65535) {
			snprintf(why, whylen, "port out of range in \"%s\" (want 1-65535)", hp);
			return -EINVAL;
		}
		*colon = '\0';
		if (hp[0] == '[') {
			hp++;
			hp[strlen(hp) - 1] = '\0';
		}
		if (*hp == '\0' || strlen(hp) >= sizeof(rd->host)) {
			snprintf(why, whylen, "bad host");
			return -EINVAL;
		}
		while (prio != NULL && isspace((unsigned char)*prio))
			prio++;
		if (prio != NULL && *prio != '\0') {
			pr = strtoul(prio, &end, 10);
			while (isspace((unsigned char)*end))
				end++;
			if (*end != '\0' || pr > 65535) {
				snprintf(why, whylen, "bad priority \"%s\"", prio);
				return -EINVAL;
			}
		}
		strcpy(rd->host, hp);
		rd->port = (uint16_t)port;
		rd->prio = (uint16_t)pr;
		d->ndest++;
	}
	if (d->ndest == 0) {
		snprintf(why, whylen, "no destination");
		return -EINVAL;
	}
	return 0;
}

static int push_policy_key(struct load_ctx *lc, long domain, const char *k, const char *v)
{
	struct pending_policy_key *pk;

	if (lc->npk == lc->cappk) {
		size_t cap = lc->cappk ? lc->cappk * 2 : 32;

		pk = realloc(lc->pk, cap * sizeof(*pk));
		if (pk == NULL)
			return -ENOMEM;
		lc->pk = pk;
		lc->cappk = cap;
	}
	pk = &lc->pk[lc->npk++];
	pk->domain = domain;
	pk->key = strdup(k);
	pk->value = strdup(v);
	pk->line = lc->line;
	return 0;
}

static int parse_domain(struct load_ctx *lc, const char *section, const char *name, const char *k,
			const char *v)
{
	long idx;
	struct domain_conf *d = domain_by_name(lc, name, &idx);
	char why[160];

	if (d == NULL)
		return load_fail(lc, section, k, "a name over 255 bytes, more than %d domains, or out "
				 "of memory", SNAPSHOT_MAX_DOMAINS);
	if (strcmp(k, "long_lines") == 0) {
		if (strcmp(v, "pass") == 0 || strcmp(v, "wrap") == 0 || strcmp(v, "refuse") == 0)
			d->long_lines = 1 + (v[0] == 'p' ? DELIVERY_LONG_LINES_PASS :
					     v[0] == 'w' ? DELIVERY_LONG_LINES_WRAP
							 : DELIVERY_LONG_LINES_REFUSE);
		else
			return load_fail(lc, section, k, "want pass, wrap or refuse, not \"%s\"", v);
		return 1;
	}
	if (strcmp(k, "route") == 0) {
		if (parse_route(d, v, why, sizeof(why)) < 0)
			return load_fail(lc, section, k, "%s (want \"host:port [priority], ...\" or \"mx\")",
					 why);
		return 1;
	}
	if (strcmp(k, "tls") == 0) {
		if (strcasecmp(v, "may") == 0)
			d->tls = DOMAIN_TLS_MAY;
		else if (strcasecmp(v, "required") == 0)
			d->tls = DOMAIN_TLS_REQUIRED;
		else if (strcasecmp(v, "none") == 0)
			d->tls = DOMAIN_TLS_NONE;
		else
			return load_fail(lc, section, k, "want may, required or none, not \"%s\"", v);
		return 1;
	}
	if (strcmp(k, "tls_verify") == 0) {
		if (cfgval_bool(v, &d->tls_verify) < 0)
			return load_fail(lc, section, k, "want yes or no, not \"%s\"", v);
		return 1;
	}
	if (strcmp(k, "spool_quota") == 0) {
		if (cfgval_size(v, &d->spool_quota) < 0 || d->spool_quota == 0)
			return load_fail(lc, section, k, "want a size (\"500M\", \"1G\"), not \"%s\"", v);
		return 1;
	}
	if (strcmp(k, "allow_routing") == 0) {
		if (cfgval_bool(v, &d->allow_routing) < 0)
			return load_fail(lc, section, k, "want yes or no, not \"%s\"", v);
		d->allow_routing_set = true;
		return 1;
	}
	if (push_policy_key(lc, idx, k, v) < 0)
		return load_fail(lc, section, k, "out of memory");
	return 1;
}

/* --- whole-file checks: duplicates, names, lines (see struct load_check) ---------------- */

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

/* A [domain] name is matched exactly (case aside, and a recipient's trailing dot) against the
 * recipient's domain: a name that is not a host name can never match, and there are no
 * wildcards, so "*.example.com" would silently accept nothing. */
static int domain_name_check(const char *name, char *why, size_t whylen)
{
	size_t n = strlen(name), label = 0;

	if (strpbrk(name, "*?") != NULL) {
		snprintf(why, whylen, "wildcards are not supported: a [domain] matches its name exactly; "
			 "give each domain and sub-domain its own section");
		return -EINVAL;
	}
	if (n > 253) {
		snprintf(why, whylen, "a domain name is at most 253 characters");
		return -EINVAL;
	}
	for (size_t i = 0; i <= n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (ch == '.' || ch == '\0') {
			if (label == 0 || label > 63) {
				snprintf(why, whylen, "the name cannot match any recipient: %s",
					 label ? "a label is longer than 63 characters"
					       : "empty label (a leading, trailing or double dot)");
				return -EINVAL;
			}
			label = 0;
		} else if (isalnum(ch) || ch == '-' || ch == '_' || ch >= 0x80) {
			label++;
		} else {
			snprintf(why, whylen, "the name cannot match any recipient: '%c' is not allowed in "
				 "a domain name", ch);
			return -EINVAL;
		}
	}
	return 0;
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

		if (domain_name_check(arg, why, sizeof(why)) < 0)
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
		load_fail(lc, section, key, "an indented line continues the value of %s (line %d): "
			  "un-indent it, or write the value on one line", key,
			  load_seen_line(k->keys, k->nkeys, key));
		return -EINVAL;
	}
	if (strcasecmp(section, "node") == 0) {
		k->has_hostname |= strcmp(key, "hostname") == 0;
		if (strcmp(key, "spool_dir") == 0) {
			k->has_spool_dir = true;
			lc->c->ops.spool_dir_line = lc->line;
		}
	}
	if (list)
		return 0;
	first = load_seen_line(k->keys, k->nkeys, key);
	if (first != 0) {
		load_fail(lc, section, key, "given twice in this section: first at line %d", first);
		return -EINVAL;
	}
	if (load_seen_add(&k->keys, &k->nkeys, &k->capkeys, key, lc->line) < 0) {
		load_fail(lc, section, key, "out of memory");
		return -EINVAL;
	}
	return 0;
}

/* [node] user, group, run_as_root, pid_file. Returns 0 when k is none of them, 1 when it was
 * taken, -1 after load_fail. The names are resolved once the whole file is read. */
static int parse_node_ops(struct load_ctx *lc, const char *k, const char *v)
{
	struct node_ops *o = &lc->c->ops;
	int r;

	if (strcmp(k, "user") == 0) {
		r = set_str(o->user, sizeof(o->user), v);
		lc->chk.user_line = lc->line;
	} else if (strcmp(k, "group") == 0) {
		r = set_str(o->group, sizeof(o->group), v);
		lc->chk.group_line = lc->line;
	} else if (strcmp(k, "run_as_root") == 0) {
		if (cfgval_bool(v, &o->run_as_root) < 0) {
			load_fail(lc, "node", k, "want yes or no, not \"%s\"", v);
			return -1;
		}
		return 1;
	} else if (strcmp(k, "pid_file") == 0) {
		r = set_str(o->pid_file, sizeof(o->pid_file), v);
		if (r == 0 && v[0] != '/')
			r = -EINVAL;
	} else
		return 0;
	if (r < 0 || v[0] == '\0') {
		load_fail(lc, "node", k, "bad value \"%s\"%s", v,
			  strcmp(k, "pid_file") == 0 ? " (want an absolute path)" : "");
		return -1;
	}
	return 1;
}

/* Names to ids, with the line of the key that names them. getpwnam_r/getgrnam_r read the
 * system's databases (NSS), so this also runs on a reload after privileges were dropped. */
static int resolve_ops(struct load_ctx *lc, const char *path, char *err, size_t errlen)
{
	struct node_ops *o = &lc->c->ops;
	struct passwd pw, *pwr = NULL;
	struct group gr, *grr = NULL;
	char buf[4096];
	int e;

	if (o->group[0] != '\0' && o->user[0] == '\0') {
		snprintf(err, errlen, "%s:%d: [node] group: needs [node] user", path, lc->chk.group_line);
		return -EINVAL;
	}
	if (o->user[0] == '\0')
		return 0;
	e = getpwnam_r(o->user, &pw, buf, sizeof(buf), &pwr);
	if (pwr == NULL) {
		snprintf(err, errlen, "%s:%d: [node] user: no such user \"%s\"%s%s", path,
			 lc->chk.user_line, o->user, e ? ": " : "", e ? strerror(e) : "");
		return -EINVAL;
	}
	if (pw.pw_uid == 0) {
		snprintf(err, errlen, "%s:%d: [node] user: \"%s\" is root (uid 0); name an unprivileged "
			 "user, or set run_as_root = yes without user", path, lc->chk.user_line, o->user);
		return -EINVAL;
	}
	o->uid = pw.pw_uid;
	o->gid = pw.pw_gid;
	if (o->group[0] == '\0')
		return 0;
	e = getgrnam_r(o->group, &gr, buf, sizeof(buf), &grr);
	if (grr == NULL) {
		snprintf(err, errlen, "%s:%d: [node] group: no such group \"%s\"%s%s", path,
			 lc->chk.group_line, o->group, e ? ": " : "", e ? strerror(e) : "");
		return -EINVAL;
	}
	if (gr.gr_gid == 0) {
		snprintf(err, errlen, "%s:%d: [node] group: \"%s\" is root's group (gid 0)", path,
			 lc->chk.group_line, o->group);
		return -EINVAL;
	}
	o->gid = gr.gr_gid;
	return 0;
}

bool listen_addr_same(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;

		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;

	return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
}

static bool listen_same_addr(const struct listen_conf *a, const struct listen_conf *b)
{
	return listen_addr_same(&a->addr, &b->addr);
}

/* What can only be judged once the whole file is read (before the policies are applied). */
static int check_whole_file(struct load_ctx *lc, const char *path, char *err, size_t errlen)
{
	struct node_config *c = lc->c;
	const struct load_check *k = &lc->chk;

	/* SO_REUSEPORT would let both bind: one address's connections split between two roles. */
	for (unsigned j = 1; j < c->nlisten; j++)
		for (unsigned i = 0; i < j; i++)
			if (listen_same_addr(&c->listen[i], &c->listen[j])) {
				snprintf(err, errlen, "%s:%d: [listen %s] address: %s is already the address "
					 "of [listen %s] at line %d", path, k->listen_line[j],
					 c->listen[j].name, c->listen[j].address, c->listen[i].name,
					 k->listen_line[i]);
				return -EINVAL;
			}
	if (!k->has_hostname || !k->has_spool_dir) {
		const char *key = !k->has_hostname ? "hostname" : "spool_dir";
		const char *what = !k->has_hostname
			? "the name this MX gives in its banner, EHLO and Received headers"
			: "where accepted mail is kept";

		if (k->node_line != 0)
			snprintf(err, errlen, "%s:%d: [node] %s: missing (%s)", path, k->node_line, key,
				 what);
		else
			snprintf(err, errlen, "%s: [node] %s: missing, and there is no [node] section (%s)",
				 path, key, what);
		return -EINVAL;
	}
	if (c->ops.pid_file[0] == '\0' &&
	    (size_t)snprintf(c->ops.pid_file, sizeof(c->ops.pid_file), "%s/sluice-node.pid",
			     c->spool_dir) >= sizeof(c->ops.pid_file)) {
		snprintf(err, errlen, "%s:%d: [node] spool_dir: too long", path, k->node_line);
		return -EINVAL;
	}
	return resolve_ops(lc, path, err, errlen);
}

/* The last key that set threshold `name` (tag_score, ...) for role r in domain dom's section
 * (-1: [policy]), role prefixes understood; NULL when none did. */
static const struct pending_policy_key *threshold_key(const struct load_ctx *lc, long dom,
						       unsigned r, const char *name)
{
	for (size_t i = lc->npk; i-- > 0;) {
		const struct pending_policy_key *pk = &lc->pk[i];
		const char *key = pk->key;

		if (pk->domain != dom)
			continue;
		if (strncmp(key, "primary_", 8) == 0) {
			if (r != POLICY_ROLE_PRIMARY)
				continue;
			key += 8;
		} else if (strncmp(key, "fallback_", 9) == 0) {
			if (r != POLICY_ROLE_FALLBACK)
				continue;
			key += 9;
		}
		if (strcmp(key, name) == 0)
			return pk;
	}
	return NULL;
}

/* tag <= quarantine <= reject where set (off ones skipped), for each MX role of [policy] and of
 * each domain after its overrides. The wrong way round, the milder action wins over the
 * severer one for the highest scores (the highest threshold reached wins), which nobody means.
 * A tie is allowed: the severer action takes it, the documented way to skip one (policy.h). */
static int check_thresholds(struct load_ctx *lc, const char *path, char *err, size_t errlen)
{
	static const struct { enum policy_action a; const char *key; } order[] = {
		{ POLICY_TAG, "tag_score" },
		{ POLICY_QUARANTINE, "quarantine_score" },
		{ POLICY_REJECT, "reject_score" },
	};
	static const char *const roles[] = { "primary", "fallback" };
	struct node_config *c = lc->c;

	for (long d = -1; d < (long)c->ndomains; d++) {
		const struct policy *p = d < 0 ? c->default_policy : c->domains[d].policy;

		for (unsigned r = 0; r < POLICY_ROLE_COUNT; r++) {
			int prev = -1;

			for (int i = 0; i < 3; i++) {
				const struct pending_policy_key *pa, *pb, *blame, *other;
				const char *okey;
				char where[300], about[200];
				int32_t va, vb;

				if (p->role[r].at[order[i].a] == POLICY_SCORE_OFF)
					continue;
				if (prev < 0 || p->role[r].at[order[prev].a] <= p->role[r].at[order[i].a]) {
					prev = i;
					continue;
				}
				va = p->role[r].at[order[prev].a];
				vb = p->role[r].at[order[i].a];
				/* Blame the later of the two keys in this section (the default passed, so one
				 * of them is here); name the other's line, or say it is the default. */
				pa = threshold_key(lc, d, r, order[prev].key);
				pb = threshold_key(lc, d, r, order[i].key);
				blame = pa == NULL || (pb != NULL && pb->line > pa->line) ? pb : pa;
				other = blame == pa ? pb : pa;
				okey = blame == pa ? order[i].key : order[prev].key;
				if (other == NULL && d >= 0)
					other = threshold_key(lc, -1, r, okey);
				if (d < 0)
					snprintf(where, sizeof(where), "%s:%d: [policy]", path,
						 blame ? blame->line : 0);
				else
					snprintf(where, sizeof(where), "%s:%d: [domain %s]", path,
						 blame ? blame->line : lc->chk.domain_line[d], c->domains[d].name);
				if (other != NULL)
					snprintf(about, sizeof(about), "%s at line %d", other->key, other->line);
				else
					snprintf(about, sizeof(about), "%s is the built-in default", okey);
				snprintf(err, errlen, "%s %s: thresholds out of order for the %s MX: %s %g is "
					 "above %s %g (%s); want tag_score <= quarantine_score <= reject_score "
					 "where set", where, blame ? blame->key : order[i].key, roles[r],
					 order[prev].key, va / 1000.0, order[i].key, vb / 1000.0, about);
				return -EINVAL;
			}
		}
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

static int load_handler(void *user, const char *section, const char *k, const char *v)
{
	struct load_ctx *lc = user;
	const char *arg;

	if (k == NULL)      /* a section header alone (inih with INI_CALL_HANDLER_ON_NEW_SECTION) */
		return 1;
	if (load_check_key(lc, section, k) < 0)
		return 0;
	if (strcasecmp(section, "node") == 0)
		return parse_node(lc, k, v);
	if (strcasecmp(section, "limits") == 0)
		return parse_limits(lc, k, v);
	if (strcasecmp(section, "spool") == 0)
		return parse_spool(lc, k, v);
	if (strcasecmp(section, "tls") == 0)
		return parse_tls(lc, k, v);
	if (strcasecmp(section, "delivery") == 0)
		return parse_delivery(lc, k, v);
	if (strcasecmp(section, "policy") == 0 && strcmp(k, "allow_routing") == 0) {
		if (cfgval_bool(v, &lc->c->allow_routing) < 0)
			return load_fail(lc, section, k, "want yes or no, not \"%s\"", v);
		return 1;
	}
	if (strcasecmp(section, "policy") == 0) {
		if (push_policy_key(lc, -1, k, v) < 0)
			return load_fail(lc, section, k, "out of memory");
		return 1;
	}
	if ((arg = section_arg(section, "listen")) != NULL)
		return parse_listen(lc, section, arg, k, v);
	if ((arg = section_arg(section, "domain")) != NULL)
		return parse_domain(lc, section, arg, k, v);
	return load_fail(lc, section, k, "unknown section [%s]", section);
}

/* inih's handler is not told the line number; counting the reader's calls gives it. */
static char *load_reader(char *str, int num, void *stream)
{
	struct load_ctx *lc = stream;
	char *r = fgets(str, num, lc->f);

	if (r != NULL) {
		lc->line++;
		if (load_check_line(lc, r) < 0)
			return NULL;    /* stops inih; the error is in lc->err, its line in chk.err_line */
	}
	return r;
}

static int domain_cmp(const void *a, const void *b)
{
	return strcmp(((const struct domain_conf *)a)->name, ((const struct domain_conf *)b)->name);
}

static void config_free(struct node_config *c)
{
	if (c == NULL)
		return;
	for (unsigned i = 0; i < c->ndomains; i++) {
		free(c->domains[i].name);
		policy_free(&c->domains[i].policy);
	}
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

static void config_defaults(struct node_config *c)
{
	snprintf(c->name, sizeof(c->name), "node");
	if (gethostname(c->hostname, sizeof(c->hostname)) != 0)
		snprintf(c->hostname, sizeof(c->hostname), "localhost");
	snprintf(c->spool_dir, sizeof(c->spool_dir), "/var/spool/sluice");
	c->log_level = 1;
	c->log_facility = 2;   /* mail, as Postfix */
	c->limits = (struct node_limits){
		.message_size = SMTP_DEF_MESSAGE_SIZE,
		.recipients = SMTP_DEF_RECIPIENTS,
		.errors = SMTP_DEF_ERRORS,
		.session_ms = SMTP_DEF_SESSION_MS,
		.idle_ms = SMTP_DEF_IDLE_MS,
		.conn_per_ip = SMTP_DEF_CONN_PER_IP,
		.max_sessions = 20000,
		.command_line = SMTP_CMD_LINE_MAX,
		.shutdown_grace_ms = 10000,
		.greet_pause_ms = 0,
		.header_count = SMTP_DEF_HEADER_COUNT,
		.header_size = SMTP_DEF_HEADER_SIZE,
	};
	c->spool = (struct spool_tuning){
		.segment_size = 64u << 20,
		.spill_size = 1u << 20,
		.min_free = 64u << 20,
		/* Taken only while other sessions are mid-body: it cut fdatasyncs 3x and CPU per
		 * message by a third here, for at most 1 ms of latency (see README). */
		.commit_delay_us = 1000,
	};
	/* RFC 5321 4.5.4.1 and Postfix's defaults, scaled: see delivery_retry.h. */
	c->delivery = (struct delivery_tuning){
		.retry_first_ms = 5 * 60 * 1000,
		.retry_max_ms = 60 * 60 * 1000,
		.expire_ms = UINT64_C(5) * 24 * 3600 * 1000,
		.delay_warning_ms = 4 * 3600 * 1000,
		.retry_flat = 2,
		.retry_jitter_pct = 10,
		.concurrency = 10,
		.connect_timeout_ms = 30000,
		.idle_ms = 5000,
		.mx_port = 25,
	};
}

/* Applies the policy keys: [policy] to the default, then each domain's on top of a copy. */
static int apply_policies(struct load_ctx *lc, const char *path, char *err, size_t errlen)
{
	struct node_config *c = lc->c;
	char why[256];

	c->default_policy = policy_new(NULL);
	if (c->default_policy == NULL)
		goto nomem;
	for (size_t i = 0; i < lc->npk; i++) {
		struct pending_policy_key *pk = &lc->pk[i];

		if (pk->domain >= 0)
			continue;
		if (policy_conf_set(c->default_policy, pk->key, pk->value, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%d: [policy] %s: %s", path, pk->line, pk->key, why);
			return -EINVAL;
		}
	}
	/* Every domain starts from the finished default, then takes its own keys in file order. */
	for (unsigned d = 0; d < c->ndomains; d++) {
		c->domains[d].policy = policy_new(c->default_policy);
		if (c->domains[d].policy == NULL)
			goto nomem;
	}
	for (size_t i = 0; i < lc->npk; i++) {
		struct pending_policy_key *pk = &lc->pk[i];
		struct domain_conf *dc;

		if (pk->domain < 0)
			continue;
		dc = &c->domains[pk->domain];
		if (policy_conf_set(dc->policy, pk->key, pk->value, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s:%d: [domain %s] %s: %s", path, pk->line, dc->name,
				 pk->key, why);
			return -EINVAL;
		}
	}
	return 0;
nomem:
	snprintf(err, errlen, "%s: out of memory", path);
	return -ENOMEM;
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

/* A postmaster the node does not serve would be refused as relaying: say so now. */
static int check_postmaster(struct load_ctx *lc, const char *path, char *err, size_t errlen)
{
	struct node_config *c = lc->c;
	const char *at = strrchr(c->postmaster, '@');
	struct slice d;

	if (lc->postmaster_line == 0 || at == NULL)
		return 0;
	d = (struct slice){ at + 1, strlen(at + 1) };
	if (node_config_domain(c, d) != NULL)
		return 0;
	snprintf(err, errlen, "%s:%d: [node] postmaster: %s is not a served domain (no [domain %s] "
		 "section): mail to <postmaster> would be refused", path, lc->postmaster_line, at + 1,
		 at + 1);
	return -EINVAL;
}

/* The parser, on an open stream f; path names the source in every error (a file's path, or
 * the name a buffer was given). */
static int node_config_load_stream(const char *path, FILE *f, struct node_config **conf_r, char *err,
				   size_t errlen)
{
	static _Atomic uint64_t generation;
	struct load_ctx lc = { 0 };
	struct node_config *c;
	int line, r = -EINVAL;

	c = calloc(1, sizeof(*c));
	if (c == NULL || (c->listen = calloc(SNAPSHOT_MAX_LISTEN, sizeof(*c->listen))) == NULL) {
		snprintf(err, errlen, "%s: out of memory", path);
		free(c);
		return -ENOMEM;
	}
	atomic_init(&c->refs, 1);
	c->path = strdup(path);
	config_defaults(c);
	lc.c = c;

	lc.f = f;
	line = ini_parse_stream(load_reader, &lc, load_handler, &lc);
	if (line == 0 && lc.chk.err_line != 0)
		line = lc.chk.err_line;
	if (line != 0) {
		if (line < 0)
			snprintf(err, errlen, "%s: cannot read", path);
		else if (lc.err[0] != '\0')
			snprintf(err, errlen, "%s:%d: %s", path, line, lc.err);
		else
			snprintf(err, errlen, "%s:%d: syntax error (want \"key = value\" or \"[section]\")",
				 path, line);
		goto out;
	}
	if (c->nlisten == 0) {
		snprintf(err, errlen, "%s: no [listen NAME] section: the node would accept no mail", path);
		goto out;
	}
	for (unsigned i = 0; i < c->nlisten; i++)
		if (c->listen[i].addrlen == 0) {
			char norm[80];

			snprintf(norm, sizeof(norm), "listen %s", c->listen[i].name);
			snprintf(err, errlen, "%s:%d: [listen %s] address: missing: the section has no address",
				 path, load_seen_line(lc.chk.sections, lc.chk.nsections, norm),
				 c->listen[i].name);
			goto out;
		}
	for (unsigned i = 0; i < c->ndomains; i++)
		if (!c->domains[i].route_mx && c->domains[i].ndest == 0) {
			snprintf(err, errlen, "%s:%d: [domain %s] route: missing: the domain has no route "
				 "(want \"host:port [priority], ...\" or \"mx\")", path,
				 i < lc.chk.capdomain_line ? lc.chk.domain_line[i] : 0, c->domains[i].name);
			goto out;
		}
	if (check_whole_file(&lc, path, err, errlen) < 0)
		goto out;
	if (c->banner[0] == '\0')
		snprintf(c->banner, sizeof(c->banner), "ESMTP Sluice");
	if ((c->tls_cert[0] != '\0') != (c->tls_key[0] != '\0')) {
		snprintf(err, errlen, "%s: [tls] needs both cert and key", path);
		goto out;
	}
	if (c->tls_cert[0] != '\0') {
		char why[256];

		c->tls_ctx = tls_server_ctx_new(c->tls_cert, c->tls_key, why, sizeof(why));
		if (c->tls_ctx == NULL) {
			snprintf(err, errlen, "%s: [tls] cannot load %s / %s: %s", path, c->tls_cert,
				 c->tls_key, why);
			goto out;
		}
	}
	if (c->delivery.retry_first_ms > c->delivery.retry_max_ms) {
		snprintf(err, errlen, "%s: [delivery] retry_first is longer than retry_max", path);
		goto out;
	}
	if (c->delivery.expire_ms <= c->delivery.retry_first_ms) {
		snprintf(err, errlen, "%s: [delivery] expire must be longer than retry_first", path);
		goto out;
	}
	if (c->delivery.helo_name[0] == '\0')
		snprintf(c->delivery.helo_name, sizeof(c->delivery.helo_name), "%s", c->hostname);
	{
		char why[256];
		bool verify = false;

		for (unsigned i = 0; i < c->ndomains; i++)
			verify |= c->domains[i].tls_verify;
		c->tls_client_ctx = tls_client_ctx_new(0, NULL, why, sizeof(why));
		if (c->tls_client_ctx == NULL ||
		    (verify && (c->tls_client_verify_ctx = tls_client_ctx_new(1, NULL, why,
									       sizeof(why))) == NULL)) {
			snprintf(err, errlen, "%s: cannot set up outbound TLS: %s", path, why);
			goto out;
		}
	}
	r = apply_policies(&lc, path, err, errlen);
	if (r == 0)
		r = check_thresholds(&lc, path, err, errlen);
	if (r < 0)
		goto out;
	finish_routing_postmaster(c);
	if (c->ndomains == 0)
		log_warn(0, "%s: no [domain] section: every recipient will be refused (554 5.7.1)", path);
	if (c->ndomains > 1)      /* with none, domains is NULL: qsort must not see it */
		qsort(c->domains, c->ndomains, sizeof(*c->domains), domain_cmp);
	if (check_postmaster(&lc, path, err, errlen) < 0) {
		r = -EINVAL;
		goto out;
	}
	if (c->rules_dir[0] != '\0') {
		char why[256];

		if (filter_db_load(c->rules_dir, &c->filter_db, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s: [node] rules_dir %s: %s", path, c->rules_dir, why);
			r = -EINVAL;
			goto out;
		}
	}
	c->generation = ++generation;
	*conf_r = c;
	r = 0;
	c = NULL;
out:
	for (size_t i = 0; i < lc.npk; i++) {
		free(lc.pk[i].key);
		free(lc.pk[i].value);
	}
	free(lc.pk);
	if (lc.names_ok)
		hdestroy_r(&lc.names);
	load_check_free(&lc.chk);
	config_free(c);
	return r;
}

int node_config_load(const char *path, struct node_config **conf_r, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	int r;

	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -EINVAL;
	}
	r = node_config_load_stream(path, f, conf_r, err, errlen);
	fclose(f);
	return r;
}

int node_config_load_buffer(const char *name, const char *buf, size_t len,
			    struct node_config **conf_r, char *err, size_t errlen)
{
	FILE *f;
	int r;

	if (memchr(buf, '\0', len) != NULL) {
		/* a file cannot hold one either: the INI reader would stop there */
		snprintf(err, errlen, "%s: a NUL byte at offset %zu", name,
			 (size_t)((const char *)memchr(buf, '\0', len) - buf));
		return -EINVAL;
	}
	f = len ? fmemopen((void *)buf, len, "r") : fopen("/dev/null", "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", name, strerror(errno));
		return -ENOMEM;
	}
	r = node_config_load_stream(name, f, conf_r, err, errlen);
	fclose(f);
	return r;
}

struct node_config *node_config_ref(struct node_config *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
	return c;
}

void node_config_unref(struct node_config **cp)
{
	struct node_config *c = *cp;

	*cp = NULL;
	if (c != NULL && atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1)
		config_free(c);
}

const struct domain_conf *node_config_domain(const struct node_config *c, struct slice domain)
{
	size_t lo = 0, hi = c->ndomains;
	char key[256];

	if (domain.len == 0 || domain.len >= sizeof(key))
		return NULL;
	for (size_t i = 0; i < domain.len; i++)
		key[i] = (char)tolower((unsigned char)domain.p[i]);
	/* A trailing dot names the same domain. */
	if (key[domain.len - 1] == '.')
		domain.len--;
	key[domain.len] = '\0';
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int cmp = strcmp(key, c->domains[mid].name);

		if (cmp == 0)
			return &c->domains[mid];
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}
