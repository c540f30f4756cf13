/*
 * snapshot.c - loading the node configuration file into an immutable snapshot. See snapshot.h.
 *
 * Called at start-up by main and on SIGHUP by the agent thread, never on a shard. Every key is
 * checked here, so a snapshot that exists is valid: shards never meet a bad value.
 */
#include "shard/snapshot.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
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

static int parse_node(struct load_ctx *lc, const char *k, const char *v)
{
	struct node_config *c = lc->c;
	uint64_t u;
	int r = 0;

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
		d->mx_port = (uint16_t)u;
	} else if (strcmp(k, "helo_name") == 0) {
		r = set_str(d->helo_name, sizeof(d->helo_name), v);
	} else if (strcmp(k, "dns_server") == 0) {
		struct sockaddr_storage ss;
		socklen_t sl;

		/* One numeric address:port, or a c-ares list checked item by item. */
		r = set_str(d->dns_server, sizeof(d->dns_server), v);
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
		if (set_str(l->address, sizeof(l->address), v) < 0 ||
		    cfgval_hostport(v, true, &l->addr, &l->addrlen) < 0)
			return load_fail(lc, section, k,
					 "want a numeric address:port (\"127.0.0.2:25\", \"[::1]:25\"), not \"%s\"", v);
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
		if (*end != '\0' || port == 0 || port > 65535) {
			snprintf(why, whylen, "bad port in \"%s\"", hp);
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
	if (push_policy_key(lc, idx, k, v) < 0)
		return load_fail(lc, section, k, "out of memory");
	return 1;
}

static int load_handler(void *user, const char *section, const char *k, const char *v)
{
	struct load_ctx *lc = user;
	const char *arg;

	if (k == NULL)      /* a section header alone (inih with INI_CALL_HANDLER_ON_NEW_SECTION) */
		return 1;
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

	if (r != NULL)
		lc->line++;
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

int node_config_load(const char *path, struct node_config **conf_r, char *err, size_t errlen)
{
	static _Atomic uint64_t generation;
	struct load_ctx lc = { 0 };
	struct node_config *c;
	int line, r = -EINVAL;
	FILE *f;

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

	f = fopen(path, "r");
	if (f == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	lc.f = f;
	line = ini_parse_stream(load_reader, &lc, load_handler, &lc);
	fclose(f);
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
			snprintf(err, errlen, "%s: [listen %s] has no address", path, c->listen[i].name);
			goto out;
		}
	for (unsigned i = 0; i < c->ndomains; i++)
		if (!c->domains[i].route_mx && c->domains[i].ndest == 0) {
			snprintf(err, errlen, "%s: [domain %s] has no route", path, c->domains[i].name);
			goto out;
		}
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
	if (r < 0)
		goto out;
	qsort(c->domains, c->ndomains, sizeof(*c->domains), domain_cmp);
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
	config_free(c);
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
