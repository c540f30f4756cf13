/*
 * smtp_conf.c - [limits] and [tls] for the SMTP server. See smtp_conf.h.
 */
#include "smtp/smtp_conf.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/cfgval.h"
#include "base/tls.h"
#include "smtp/smtp_limits.h"

void smtp_conf_limits_defaults(struct node_limits *l)
{
	*l = (struct node_limits){
		.message_size = SMTP_DEF_MESSAGE_SIZE,
		.recipients = SMTP_DEF_RECIPIENTS,
		.errors = SMTP_DEF_ERRORS,
		.session_ms = SMTP_DEF_SESSION_MS,
		.idle_ms = SMTP_DEF_IDLE_MS,
		.conn_per_ip = SMTP_DEF_CONN_PER_IP,
		.command_line = SMTP_CMD_LINE_MAX,
		.greet_pause_ms = 0,
		.header_count = SMTP_DEF_HEADER_COUNT,
		.header_size = SMTP_DEF_HEADER_SIZE,
	};
}

/* A size from 1 KiB to 4 GiB. */
static int limits_size(const char *v, uint64_t *u)
{
	int r = cfgval_size(v, u);

	if (r == 0 && (*u < 1024 || *u > (UINT64_C(1) << 32)))
		r = -ERANGE;
	return r;
}

int smtp_conf_limits_set(struct node_limits *l, const char *k, const char *v, char *why,
			 size_t whylen)
{
	uint64_t u;
	int r;

	if (strcmp(k, "message_size") == 0) {
		r = limits_size(v, &u);
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
	} else if (strcmp(k, "command_line") == 0) {
		r = cfgval_uint(v, SMTP_CMD_LINE_MAX, 65536, &u);
		l->command_line = (uint32_t)u;
	} else if (strcmp(k, "greet_pause") == 0) {
		r = cfgval_duration_ms(v, &u);
		if (r == 0 && u > 60000)
			r = -ERANGE;
		l->greet_pause_ms = u;
	} else if (strcmp(k, "header_count") == 0) {
		r = cfgval_uint(v, 10, 1000000, &u);
		l->header_count = (uint32_t)u;
	} else if (strcmp(k, "header_size") == 0) {
		r = limits_size(v, &u);
		l->header_size = u;
	} else
		return -ENOENT;
	return r < 0 ? cfgval_bad_value(r, v, true, why, whylen) : 0;
}

int smtp_conf_tls_set(struct smtp_tls_conf *t, const char *k, const char *v, char *why,
		      size_t whylen)
{
	char *dst;
	size_t n = strlen(v);

	if (strcmp(k, "cert") == 0)
		dst = t->cert;
	else if (strcmp(k, "key") == 0)
		dst = t->key;
	else
		return -ENOENT;
	if (n >= sizeof(t->cert)) {
		snprintf(why, whylen, "path too long");
		return -EINVAL;
	}
	memcpy(dst, v, n + 1);
	return 0;
}

int smtp_conf_tls_load(const struct smtp_tls_conf *t, SSL_CTX **ctx_r, char *why, size_t whylen)
{
	char err[256];

	*ctx_r = NULL;
	if ((t->cert[0] != '\0') != (t->key[0] != '\0')) {
		snprintf(why, whylen, "[tls] needs both cert and key");
		return -EINVAL;
	}
	if (t->cert[0] == '\0')
		return 0;
	*ctx_r = tls_server_ctx_new(t->cert, t->key, err, sizeof(err));
	if (*ctx_r == NULL) {
		snprintf(why, whylen, "[tls] cannot load %s / %s: %s", t->cert, t->key, err);
		return -EINVAL;
	}
	return 0;
}
