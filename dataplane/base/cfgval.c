/*
 * cfgval.c - see cfgval.h.
 */
#include "cfgval.h"

#include <ctype.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int cfgval_number(const char *s, uint64_t *v_r, const char **end_r)
{
	char *end;
	unsigned long long v;

	while (isspace((unsigned char)*s))
		s++;
	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	*v_r = v;
	*end_r = end;
	return 0;
}

static int cfgval_scale(uint64_t v, uint64_t mul, uint64_t *r)
{
	if (mul != 0 && v > UINT64_MAX / mul)
		return -ERANGE;
	*r = v * mul;
	return 0;
}

static const char *cfgval_skip_space(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return s;
}

int cfgval_size(const char *s, uint64_t *bytes_r)
{
	const char *end;
	uint64_t v, mul = 1;
	int r = cfgval_number(s, &v, &end);

	if (r < 0)
		return r;
	switch (toupper((unsigned char)*end)) {
	case 'K': mul = 1024; end++; break;
	case 'M': mul = 1024 * 1024; end++; break;
	case 'G': mul = 1024 * 1024 * 1024; end++; break;
	default: break;
	}
	if (toupper((unsigned char)*end) == 'B' || (mul > 1 && *end == 'i' && end[1] == 'B'))
		end += *end == 'i' ? 2 : 1;
	if (*cfgval_skip_space(end) != '\0')
		return -EINVAL;
	return cfgval_scale(v, mul, bytes_r);
}

int cfgval_duration_ms(const char *s, uint64_t *ms_r)
{
	const char *end;
	uint64_t v, mul;
	int r = cfgval_number(s, &v, &end);

	if (r < 0)
		return r;
	if (strncmp(end, "ms", 2) == 0) {
		mul = 1;
		end += 2;
	} else {
		switch (*end) {
		case 's': mul = 1000; end++; break;
		case 'm': mul = 60 * 1000; end++; break;
		case 'h': mul = 3600 * 1000; end++; break;
		case 'd': mul = 86400 * 1000; end++; break;
		default: mul = 1000; break;
		}
	}
	if (*cfgval_skip_space(end) != '\0')
		return -EINVAL;
	return cfgval_scale(v, mul, ms_r);
}

int cfgval_bool(const char *s, bool *b_r)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*b_r = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*b_r = false;
			return 0;
		}
	}
	return -EINVAL;
}

int cfgval_uint(const char *s, uint64_t min, uint64_t max, uint64_t *v_r)
{
	const char *end;
	uint64_t v;
	int r = cfgval_number(s, &v, &end);

	if (r < 0)
		return r;
	if (*cfgval_skip_space(end) != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*v_r = v;
	return 0;
}

int cfgval_hostport(const char *s, bool numeric_only, struct sockaddr_storage *addr_r,
		    socklen_t *len_r)
{
	char host[256];
	const char *colon, *hs = s;
	size_t hlen;
	uint64_t port;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res;
	int r;

	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':')
			return -EINVAL;
		hs = s + 1;
		hlen = (size_t)(rb - hs);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return -EINVAL;
		hlen = (size_t)(colon - s);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		return -EINVAL;
	memcpy(host, hs, hlen);
	host[hlen] = '\0';
	r = cfgval_uint(colon + 1, 1, 65535, &port);
	if (r < 0)
		return r;
	hints.ai_flags = numeric_only ? AI_NUMERICHOST : 0;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return -EINVAL;
	memcpy(addr_r, res->ai_addr, res->ai_addrlen);
	*len_r = res->ai_addrlen;
	freeaddrinfo(res);
	if (addr_r->ss_family == AF_INET)
		((struct sockaddr_in *)addr_r)->sin_port = htons((uint16_t)port);
	else
		((struct sockaddr_in6 *)addr_r)->sin6_port = htons((uint16_t)port);
	return 0;
}

int cfgval_bad_value(int r, const char *value, bool range_note, char *why, size_t whylen)
{
	snprintf(why, whylen, "bad value \"%s\"%s", value,
		 range_note && r == -ERANGE ? " (out of range)" : "");
	return -EINVAL;
}
