/*
 * conf_node.c - the [node] section: the node's own keys (its names, directories, logging,
 * postmaster) and how the process runs (struct node_ops: user, group, pid file), read by main,
 * which is above this layer. Called by conf.c only.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/cfgval.h"
#include "base/log.h"
#include "conf/conf_impl.h"

static int set_str(char *dst, size_t dstlen, const char *v)
{
	size_t n = strlen(v);

	if (n >= dstlen)
		return -ERANGE;
	memcpy(dst, v, n + 1);
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
			conf_fail(lc, "node", k, "want yes or no, not \"%s\"", v);
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
		conf_fail(lc, "node", k, "bad value \"%s\"%s", v,
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

int conf_node_set(struct load_ctx *lc, const char *k, const char *v)
{
	struct node_config *c = lc->c;
	uint64_t u;
	int r = 0;

	if ((r = parse_node_ops(lc, k, v)) != 0)
		return r > 0;   /* 0 after conf_fail */
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
			return conf_fail(lc, "node", k, "want debug, info, warning or error, not \"%s\"", v);
	} else if (strcmp(k, "log") == 0) {
		if (strcasecmp(v, "stderr") == 0)
			c->log_output = LOG_OUT_STDERR;
		else if (strcasecmp(v, "syslog") == 0)
			c->log_output = LOG_OUT_SYSLOG;
		else
			return conf_fail(lc, "node", k, "want stderr or syslog, not \"%s\"", v);
	} else if (strcmp(k, "log_facility") == 0) {
		int f = log_facility_parse(v);

		if (f < 0)
			return conf_fail(lc, "node", k, "want a syslog facility (mail, daemon, local0 .. "
					 "local7, ...), not \"%s\"", v);
		c->log_facility = (uint8_t)f;
	} else if (strcmp(k, "log_socket") == 0) {
		if (v[0] != '/' || set_str(c->log_socket, sizeof(c->log_socket), v) < 0)
			return conf_fail(lc, "node", k, "want an absolute path of at most %zu bytes, not "
					 "\"%s\"", sizeof(c->log_socket) - 1, v);
	} else if (strcmp(k, "postmaster") == 0) {
		const char *at = strrchr(v, '@');

		if (at == NULL || at == v || at[1] == '\0' || strpbrk(v, " \t<>\"") != NULL ||
		    set_str(c->postmaster, sizeof(c->postmaster), v) < 0)
			return conf_fail(lc, "node", k, "want an address local@domain in a served domain, "
					 "not \"%s\"", v);
		lc->chk.postmaster_line = lc->line;
	} else
		return conf_fail(lc, "node", k, "unknown key");
	if (r < 0)
		return conf_fail(lc, "node", k, "bad value \"%s\"", v);
	return 1;
}

/* What can only be judged once the whole buffer is read: hostname and spool_dir given, the pid
 * file's default, the user and group. */
int conf_node_check(struct load_ctx *lc, char *err, size_t errlen)
{
	struct node_config *c = lc->c;
	const struct load_check *k = &lc->chk;
	const char *path = lc->name;

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

/* A postmaster the node does not serve would be refused as relaying: say so now. */
int conf_node_check_postmaster(struct load_ctx *lc, char *err, size_t errlen)
{
	const char *path = lc->name;
	struct node_config *c = lc->c;
	const char *at = strrchr(c->postmaster, '@');
	struct slice d;

	if (lc->chk.postmaster_line == 0 || at == NULL)
		return 0;
	d = (struct slice){ at + 1, strlen(at + 1) };
	if (node_config_domain(c, d) != NULL)
		return 0;
	snprintf(err, errlen, "%s:%d: [node] postmaster: %s is not a served domain (no [domain %s] "
		 "section): mail to <postmaster> would be refused", path, lc->chk.postmaster_line, at + 1,
		 at + 1);
	return -EINVAL;
}

