/*
 * wire_render.c - control objects into the data plane's INI fragments (wire.h). The key names
 * and value syntax are README.md's "The configuration bucket"; the sections are those
 * dataplane/shard/snapshot.c parses ([domain], [listen], [roles]).
 */
#include "wire/wire.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static int wire_key(const char *prefix, const char *name, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s.%s", prefix, name);

	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int wire_key_domain(const char *domain, char *out, size_t outlen)
{
	return wire_key("domain", domain, out, outlen);
}

int wire_key_node(const char *node, char *out, size_t outlen)
{
	return wire_key("node", node, out, outlen);
}

static int wire_header(struct buf *b, const char *kind, const char *name, uint64_t version)
{
	if (name == NULL)
		return buf_printf(b, "# sluice cfg %s version %llu\n", kind, (unsigned long long)version);
	return buf_printf(b, "# sluice cfg %s.%s version %llu\n", kind, name,
			  (unsigned long long)version);
}

static int wire_line(struct buf *b, const char *key, const char *value)
{
	return value == NULL ? 0 : buf_printf(b, "%s = %s\n", key, value);
}

static int wire_flag(struct buf *b, const char *key, int flag)
{
	return flag < 0 ? 0 : wire_line(b, key, flag ? "yes" : "no");
}

static bool wire_policy_key_role_specific(const char *key)
{
	return strncmp(key, "primary_", 8) == 0 || strncmp(key, "fallback_", 9) == 0;
}

int wire_render_domain(struct buf *b, const struct wire_domain *d, uint64_t version)
{
	int rc = wire_header(b, "domain", d->name, version);

	rc = rc ? rc : buf_printf(b, "[domain %s]\n", d->name);
	rc = rc ? rc : wire_line(b, "route", d->route);
	rc = rc ? rc : wire_line(b, "tls", d->tls);
	rc = rc ? rc : wire_flag(b, "tls_verify", d->tls_verify);
	rc = rc ? rc : wire_line(b, "spool_quota", d->spool_quota);
	rc = rc ? rc : wire_line(b, "long_lines", d->long_lines);
	rc = rc ? rc : wire_flag(b, "allow_routing", d->allow_routing);
	/* The parser applies policy keys in written order and a plain threshold sets both MX
	 * roles: the plain keys go first so a primary_ or fallback_ key is never undone. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; rc == 0 && i < d->npolicy; i++)
			if (wire_policy_key_role_specific(d->policy[i].key) == (pass == 1))
				rc = wire_line(b, d->policy[i].key, d->policy[i].value);
	return rc;
}

int wire_render_node(struct buf *b, const struct wire_node *n, uint64_t version)
{
	int rc = wire_header(b, "node", n->name, version);

	for (size_t i = 0; rc == 0 && i < n->nlisten; i++) {
		const struct wire_listen *l = &n->listen[i];

		rc = buf_printf(b, "[listen %s]\n", l->label);
		rc = rc ? rc : wire_line(b, "address", l->address);
		rc = rc ? rc : wire_line(b, "role", l->role);
		rc = rc ? rc : wire_flag(b, "starttls", l->starttls);
	}
	return rc;
}

int wire_render_roles(struct buf *b, const struct wire_roles *r, uint64_t version)
{
	int rc = wire_header(b, WIRE_KEY_ROLES, NULL, version);

	rc = rc ? rc : buf_printf(b, "[roles]\n");
	rc = rc ? rc : wire_line(b, "log", r->log);
	rc = rc ? rc : wire_line(b, "quarantine", r->quarantine);
	rc = rc ? rc : wire_line(b, "archive", r->archive);
	return rc;
}
