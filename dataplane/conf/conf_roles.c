/*
 * conf_roles.c - [roles]: which node holds each data role (log, quarantine, archive), as the
 * cluster's configuration places them (control/wire/README.md: the key `roles`). The agent's
 * event sinks read it to know where a role's events go.
 *
 * A value is a node name as the cluster's CA issues them (one DNS label: a-z, 0-9 and '-', not
 * at an end, at most 63 bytes); empty: the role is placed nowhere yet (its events wait).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "conf/conf_impl.h"

bool conf_node_name_valid(const char *v)
{
	size_t n = strlen(v);

	if (n > CONF_NODE_NAME_MAX || (n && (v[0] == '-' || v[n - 1] == '-')))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((v[i] >= 'a' && v[i] <= 'z') || (v[i] >= '0' && v[i] <= '9') || v[i] == '-'))
			return false;
	return true;
}

int conf_roles_set(struct node_config *c, const char *k, const char *v, char *why, size_t whylen)
{
	char *dst;

	if (strcmp(k, "log") == 0)
		dst = c->roles.log;
	else if (strcmp(k, "quarantine") == 0)
		dst = c->roles.quarantine;
	else if (strcmp(k, "archive") == 0)
		dst = c->roles.archive;
	else
		return -ENOENT;
	if (!conf_node_name_valid(v)) {
		snprintf(why, whylen, "\"%s\" is not a node name (a-z, 0-9 and '-', not at an end, "
			 "at most %d bytes)", v, CONF_NODE_NAME_MAX);
		return -EINVAL;
	}
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}
