/*
 * delivery_tuning.c - the [delivery] keys and a domain's long_lines. See delivery_tuning.h.
 */
#include "delivery/delivery_tuning.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "base/cfgval.h"
#include "base/tls.h"

void delivery_tuning_defaults(struct delivery_tuning *t)
{
	*t = (struct delivery_tuning){
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

/* The key of a duration field ("retry_first", ...; "delay_warning" may be 0), or NULL. */
static uint64_t *duration_key(struct delivery_tuning *t, const char *k, bool *zero_ok_r)
{
	static const struct { const char *key; size_t off; } keys[] = {
		{ "retry_first", offsetof(struct delivery_tuning, retry_first_ms) },
		{ "retry_max", offsetof(struct delivery_tuning, retry_max_ms) },
		{ "expire", offsetof(struct delivery_tuning, expire_ms) },
		{ "delay_warning", offsetof(struct delivery_tuning, delay_warning_ms) },
		{ "connect_timeout", offsetof(struct delivery_tuning, connect_timeout_ms) },
		{ "idle_time", offsetof(struct delivery_tuning, idle_ms) },
	};

	*zero_ok_r = strcmp(k, "delay_warning") == 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(k, keys[i].key) == 0)
			return (uint64_t *)(void *)((char *)t + keys[i].off);
	return NULL;
}

/* The key of a stage's total deadline, or NULL. */
static uint32_t *stage_timeout_key(struct delivery_tuning *t, const char *k)
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
			return (uint32_t *)(void *)((char *)t + keys[i].off);
	return NULL;
}

/* pass, wrap or refuse; -EINVAL with the reason in why. */
static int long_lines_parse(const char *v, enum delivery_long_lines *ll_r, char *why,
			    size_t whylen)
{
	if (strcmp(v, "pass") == 0)
		*ll_r = DELIVERY_LONG_LINES_PASS;
	else if (strcmp(v, "wrap") == 0)
		*ll_r = DELIVERY_LONG_LINES_WRAP;
	else if (strcmp(v, "refuse") == 0)
		*ll_r = DELIVERY_LONG_LINES_REFUSE;
	else {
		snprintf(why, whylen, "want pass, wrap or refuse, not \"%s\"", v);
		return -EINVAL;
	}
	return 0;
}

/* [delivery] dns_server: one numeric address:port, or a c-ares list checked item by item. */
static int dns_server_set(struct delivery_tuning *t, const char *v, char *why, size_t whylen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	size_t n = strlen(v);
	int r;

	if (n >= sizeof(t->dns_server))
		return -ERANGE;
	memcpy(t->dns_server, v, n + 1);
	if (strchr(v, ',') != NULL)
		return 0;
	r = cfgval_hostport(v, true, &ss, &sl);
	if (r == -ERANGE)
		snprintf(why, whylen, "port out of range in \"%s\" (want 1-65535)", v);
	else if (r < 0)
		snprintf(why, whylen, "want a numeric address:port (\"127.0.0.1:53\"), not \"%s\"", v);
	return r < 0 ? -EINVAL : 0;
}

int delivery_tuning_set(struct delivery_tuning *t, const char *k, const char *v, char *why,
			size_t whylen)
{
	uint64_t u = 0, *dur;
	uint32_t *stage;
	bool zero_ok;
	int r;

	if ((dur = duration_key(t, k, &zero_ok)) != NULL) {
		r = cfgval_duration_ms(v, &u);
		if (r == 0 && !zero_ok && u == 0)
			r = -ERANGE;
		if (r == 0)
			*dur = u;
	} else if (strcmp(k, "hold") == 0) {
		r = cfgval_bool(v, &t->hold);
	} else if (strcmp(k, "retry_flat") == 0) {
		r = cfgval_uint(v, 0, 100, &u);
		t->retry_flat = (uint32_t)u;
	} else if (strcmp(k, "retry_jitter") == 0) {
		r = cfgval_uint(v, 0, 50, &u);
		t->retry_jitter_pct = (uint32_t)u;
	} else if (strcmp(k, "concurrency") == 0) {
		r = cfgval_uint(v, 1, 10000, &u);
		t->concurrency = (uint32_t)u;
	} else if (strcmp(k, "mx_port") == 0) {
		r = cfgval_uint(v, 1, 65535, &u);
		if (r == -ERANGE) {
			snprintf(why, whylen, "port %s out of range (want 1-65535)", v);
			return -EINVAL;
		}
		t->mx_port = (uint16_t)u;
	} else if (strcmp(k, "helo_name") == 0) {
		size_t n = strlen(v);

		r = n < sizeof(t->helo_name) ? 0 : -ERANGE;
		if (r == 0)
			memcpy(t->helo_name, v, n + 1);
	} else if (strcmp(k, "dns_server") == 0) {
		r = dns_server_set(t, v, why, whylen);
		if (r == -EINVAL)
			return r;
	} else if ((stage = stage_timeout_key(t, k)) != NULL) {
		r = cfgval_duration_ms(v, &u);
		if (r == 0 && (u == 0 || u > 24u * 3600u * 1000u))
			r = -ERANGE;   /* 1 ms .. 1 day */
		if (r == 0)
			*stage = (uint32_t)u;
	} else if (strcmp(k, "min_data_rate") == 0) {
		r = cfgval_size(v, &u);
		if (r == 0 && u == 0)
			r = -ERANGE;
		t->min_data_rate = u;
	} else if (strcmp(k, "long_lines") == 0) {
		enum delivery_long_lines ll;

		if (long_lines_parse(v, &ll, why, whylen) < 0)
			return -EINVAL;
		t->long_lines = (uint8_t)ll;
		r = 0;
	} else
		return -ENOENT;
	return r < 0 ? cfgval_bad_value(r, v, true, why, whylen) : 0;
}

int delivery_tuning_domain_set(struct domain_conf *d, const char *k, const char *v, char *why,
			       size_t whylen)
{
	enum delivery_long_lines ll;

	if (strcmp(k, "long_lines") != 0)
		return -ENOENT;
	if (long_lines_parse(v, &ll, why, whylen) < 0)
		return -EINVAL;
	d->long_lines = (uint8_t)(1 + ll);
	return 0;
}

int delivery_tuning_finish(struct delivery_tuning *t, const char *hostname, char *why,
			   size_t whylen)
{
	if (t->retry_first_ms > t->retry_max_ms) {
		snprintf(why, whylen, "[delivery] retry_first is longer than retry_max");
		return -EINVAL;
	}
	if (t->expire_ms <= t->retry_first_ms) {
		snprintf(why, whylen, "[delivery] expire must be longer than retry_first");
		return -EINVAL;
	}
	if (t->helo_name[0] == '\0')
		snprintf(t->helo_name, sizeof(t->helo_name), "%s", hostname);
	return 0;
}

int delivery_tuning_tls_load(const struct domain_conf *domains, size_t ndomains,
			     SSL_CTX **client_r, SSL_CTX **verify_r, char *why, size_t whylen)
{
	char err[256];
	bool verify = false;

	for (size_t i = 0; i < ndomains; i++)
		verify |= domains[i].tls_verify;
	*verify_r = NULL;
	*client_r = tls_client_ctx_new(0, NULL, err, sizeof(err));
	if (*client_r != NULL &&
	    (!verify || (*verify_r = tls_client_ctx_new(1, NULL, err, sizeof(err))) != NULL))
		return 0;
	if (*client_r != NULL)
		tls_ctx_free(client_r);
	snprintf(why, whylen, "cannot set up outbound TLS: %s", err);
	return -EINVAL;
}
