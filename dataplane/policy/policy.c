/*
 * policy.c - policy evaluation, lists, and the configuration keys (see policy.h).
 *
 * policy_eval() runs on shard threads over a read-only policy; everything else runs where the
 * configuration is built (start-up, the agent on reload). Lists are scanned linearly: they are
 * short in practice (operators' exceptions); XXX a sorted prefix table if they grow to many
 * thousands.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "policy.h"

#define POLICY_ENTRY_MAX 254u

static void policy_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void policy_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void policy_init(struct policy *p)
{
	memset(p, 0, sizeof(*p));
	for (unsigned r = 0; r < POLICY_ROLE_COUNT; r++) {
		p->role[r].at[POLICY_DELIVER] = POLICY_SCORE_OFF;
		p->role[r].at[POLICY_TAG] = 5000;
		p->role[r].at[POLICY_QUARANTINE] = 8000;
		p->role[r].at[POLICY_REJECT] = 15000;
		p->role[r].at[POLICY_TEMPFAIL] = POLICY_SCORE_OFF;
	}
}

static void policy_list_free_senders(struct policy_list *l)
{
	struct policy_sender *s = l->v;

	for (size_t i = 0; i < l->n; i++)
		free(s[i].s);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void policy_clear(struct policy *p)
{
	policy_list_free_senders(&p->sender_allow);
	policy_list_free_senders(&p->sender_block);
	free(p->ip_allow.v);
	free(p->ip_block.v);
	memset(&p->ip_allow, 0, sizeof(p->ip_allow));
	memset(&p->ip_block, 0, sizeof(p->ip_block));
}

static int policy_copy_senders(struct policy_list *dst, const struct policy_list *src)
{
	struct policy_sender *d;
	const struct policy_sender *s = src->v;

	memset(dst, 0, sizeof(*dst));
	if (!src->n)
		return 0;
	d = calloc(src->n, sizeof(*d));
	if (!d)
		return -ENOMEM;
	dst->v = d;
	dst->cap = src->n;
	for (size_t i = 0; i < src->n; i++) {
		d[i].kind = s[i].kind;
		d[i].s = strdup(s[i].s);
		if (!d[i].s)
			return -ENOMEM;
		dst->n++;
	}
	return 0;
}

static int policy_copy_cidrs(struct policy_list *dst, const struct policy_list *src)
{
	memset(dst, 0, sizeof(*dst));
	if (!src->n)
		return 0;
	dst->v = malloc(src->n * sizeof(struct policy_cidr));
	if (!dst->v)
		return -ENOMEM;
	memcpy(dst->v, src->v, src->n * sizeof(struct policy_cidr));
	dst->n = dst->cap = src->n;
	return 0;
}

int policy_copy(struct policy *dst, const struct policy *src)
{
	memcpy(dst->role, src->role, sizeof(dst->role));
	if (policy_copy_senders(&dst->sender_allow, &src->sender_allow) < 0 ||
	    policy_copy_senders(&dst->sender_block, &src->sender_block) < 0 ||
	    policy_copy_cidrs(&dst->ip_allow, &src->ip_allow) < 0 ||
	    policy_copy_cidrs(&dst->ip_block, &src->ip_block) < 0) {
		policy_clear(dst);
		return -ENOMEM;
	}
	return 0;
}

/* --- parsing --------------------------------------------------------------------------- */

static int policy_parse_score(const char *v, int32_t *milli_r)
{
	char *e;
	double d;

	while (isspace((unsigned char)*v))
		v++;
	if (strcasecmp(v, "off") == 0 || strcasecmp(v, "none") == 0 || strcasecmp(v, "never") == 0) {
		*milli_r = POLICY_SCORE_OFF;
		return 0;
	}
	errno = 0;
	d = strtod(v, &e);
	while (isspace((unsigned char)*e))
		e++;
	if (e == v || *e || errno || !isfinite(d) || d < -1000 || d > 1000)
		return -EINVAL;
	*milli_r = (int32_t)lround(d * 1000);
	return 0;
}

int policy_cidr_parse(const char *s, struct policy_cidr *c);

int policy_cidr_parse(const char *s, struct policy_cidr *c)
{
	char addr[64];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	unsigned max, bits;

	if (n == 0 || n >= sizeof(addr))
		return -EINVAL;
	memcpy(addr, s, n);
	addr[n] = '\0';
	memset(c, 0, sizeof(*c));
	if (inet_pton(AF_INET, addr, c->addr) == 1) {
		c->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, c->addr) == 1) {
		c->family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	bits = max;
	if (slash) {
		char *e;
		unsigned long b;

		if (!isdigit((unsigned char)slash[1]))
			return -EINVAL;
		b = strtoul(slash + 1, &e, 10);
		if (*e || b > max)
			return -EINVAL;
		bits = (unsigned)b;
	}
	c->bits = (uint8_t)bits;
	for (unsigned i = 0; i < 16; i++) {
		unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;

		c->addr[i] &= (uint8_t)(keep ? 0xff << (8 - keep) : 0);
	}
	return 0;
}

static int policy_sender_parse(const char *s, struct policy_sender *ps)
{
	size_t n = strlen(s);
	const char *at = strchr(s, '@');
	char *low;

	if (n == 0 || n > POLICY_ENTRY_MAX)
		return -EINVAL;
	if (at == s) {
		ps->kind = POLICY_SENDER_DOMAIN;
		s++;
	} else if (at) {
		if (strchr(at + 1, '@') || !at[1])
			return -EINVAL;
		ps->kind = POLICY_SENDER_ADDR;
	} else {
		ps->kind = POLICY_SENDER_SUFFIX;
		if (*s == '.')
			s++;
	}
	if (!*s || (ps->kind != POLICY_SENDER_ADDR && strchr(s, '@')))
		return -EINVAL;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == ',')
			return -EINVAL;
	low = strdup(s);
	if (!low)
		return -ENOMEM;
	for (char *p = low; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	ps->s = low;
	return 0;
}

static int policy_list_grow(struct policy_list *l, size_t add, size_t elem)
{
	void *nv;
	size_t cap;

	if (l->n + add > POLICY_LIST_MAX)
		return -E2BIG;
	if (l->n + add <= l->cap)
		return 0;
	cap = l->cap ? l->cap : 8;
	while (cap < l->n + add)
		cap *= 2;
	nv = realloc(l->v, cap * elem);
	if (!nv)
		return -ENOMEM;
	l->v = nv;
	l->cap = cap;
	return 0;
}

/* Parses every item of value first, then appends them all: an error leaves the list as it was. */
static int policy_set_list(struct policy_list *l, bool ip, const char *value, char *err, size_t errlen)
{
	char *copy = strdup(value), *save = NULL, *tok;
	size_t start = l->n;
	int rc = 0;

	if (!copy)
		return -ENOMEM;
	for (tok = strtok_r(copy, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		rc = policy_list_grow(l, 1, ip ? sizeof(struct policy_cidr) : sizeof(struct policy_sender));
		if (rc < 0)
			break;
		if (ip) {
			rc = policy_cidr_parse(tok, &((struct policy_cidr *)l->v)[l->n]);
		} else {
			rc = policy_sender_parse(tok, &((struct policy_sender *)l->v)[l->n]);
		}
		if (rc < 0) {
			if (rc == -EINVAL)
				policy_errf(err, errlen, "bad %s '%s'", ip ? "address or prefix" : "sender", tok);
			break;
		}
		l->n++;
	}
	if (rc < 0) {
		if (!ip)
			for (size_t i = start; i < l->n; i++)
				free(((struct policy_sender *)l->v)[i].s);
		l->n = start;
		if (rc == -E2BIG)
			policy_errf(err, errlen, "list longer than %u entries", POLICY_LIST_MAX);
	}
	free(copy);
	return rc;
}

int policy_conf_set(struct policy *p, const char *key, const char *value, char *err, size_t errlen)
{
	static const struct { const char *name; enum policy_action a; } scores[] = {
		{ "tag_score", POLICY_TAG },
		{ "quarantine_score", POLICY_QUARANTINE },
		{ "reject_score", POLICY_REJECT },
		{ "tempfail_score", POLICY_TEMPFAIL },
	};
	unsigned r0 = 0, r1 = POLICY_ROLE_COUNT;
	const char *k = key;

	if (!key || !value)
		return -EINVAL;
	if (strncmp(k, "primary_", 8) == 0) {
		k += 8;
		r0 = POLICY_ROLE_PRIMARY;
		r1 = r0 + 1;
	} else if (strncmp(k, "fallback_", 9) == 0) {
		k += 9;
		r0 = POLICY_ROLE_FALLBACK;
		r1 = r0 + 1;
	}
	for (unsigned i = 0; i < sizeof(scores) / sizeof(scores[0]); i++) {
		int32_t m;

		if (strcmp(k, scores[i].name) != 0)
			continue;
		if (policy_parse_score(value, &m) < 0) {
			policy_errf(err, errlen, "%s: expected a number between -1000 and 1000, or off", key);
			return -EINVAL;
		}
		for (unsigned r = r0; r < r1; r++)
			p->role[r].at[scores[i].a] = m;
		return 0;
	}
	if (k != key) {
		policy_errf(err, errlen, "%s: unknown key", key);
		return -ENOENT;
	}
	if (strcmp(key, "sender_allow") == 0)
		return policy_set_list(&p->sender_allow, false, value, err, errlen);
	if (strcmp(key, "sender_block") == 0)
		return policy_set_list(&p->sender_block, false, value, err, errlen);
	if (strcmp(key, "ip_allow") == 0)
		return policy_set_list(&p->ip_allow, true, value, err, errlen);
	if (strcmp(key, "ip_block") == 0)
		return policy_set_list(&p->ip_block, true, value, err, errlen);
	policy_errf(err, errlen, "%s: unknown key", key);
	return -ENOENT;
}

/* --- evaluation ------------------------------------------------------------------------ */

static bool policy_ip_on(const struct policy_list *l, const struct sockaddr *sa)
{
	const struct policy_cidr *c = l->v;
	uint8_t a[16];
	int fam;

	if (!sa || !l->n)
		return false;
	if (sa->sa_family == AF_INET) {
		fam = AF_INET;
		memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
		static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

		if (memcmp(b, mapped, 12) == 0) {   /* ::ffff:a.b.c.d is an IPv4 client */
			fam = AF_INET;
			memcpy(a, b + 12, 4);
		} else {
			fam = AF_INET6;
			memcpy(a, b, 16);
		}
	} else {
		return false;
	}
	for (size_t i = 0; i < l->n; i++) {
		unsigned bits = c[i].bits, full = bits / 8, rest = bits % 8;

		if (c[i].family != fam)
			continue;
		if (memcmp(a, c[i].addr, full) != 0)
			continue;
		if (rest && ((a[full] ^ c[i].addr[full]) & (uint8_t)(0xff << (8 - rest))))
			continue;
		return true;
	}
	return false;
}

static bool policy_sender_on(const struct policy_list *l, struct slice sender)
{
	const struct policy_sender *s = l->v;
	const char *at;
	struct slice dom;

	if (!l->n || !sender.len || !sender.p)
		return false;
	at = NULL;
	for (size_t i = sender.len; i > 0; i--)
		if (sender.p[i - 1] == '@') {
			at = sender.p + i - 1;
			break;
		}
	dom = at ? (struct slice){ at + 1, sender.len - (size_t)(at + 1 - sender.p) } : (struct slice){ NULL, 0 };
	for (size_t i = 0; i < l->n; i++) {
		size_t n = strlen(s[i].s);

		switch (s[i].kind) {
		case POLICY_SENDER_ADDR:
			if (sender.len == n && strncasecmp(sender.p, s[i].s, n) == 0)
				return true;
			break;
		case POLICY_SENDER_DOMAIN:
			if (dom.len == n && strncasecmp(dom.p, s[i].s, n) == 0)
				return true;
			break;
		case POLICY_SENDER_SUFFIX:
			if (dom.len == n && strncasecmp(dom.p, s[i].s, n) == 0)
				return true;
			if (dom.len > n && dom.p[dom.len - n - 1] == '.' &&
			    strncasecmp(dom.p + dom.len - n, s[i].s, n) == 0)
				return true;
			break;
		}
	}
	return false;
}

enum policy_action policy_eval(const struct policy *p, unsigned role, struct slice sender,
			       const struct sockaddr *client, int32_t score_milli,
			       struct policy_result *r)
{
	struct policy_result res = { POLICY_DELIVER, POLICY_WHY_CLEAN, 0 };
	const struct policy_thresholds *t = &p->role[role < POLICY_ROLE_COUNT ? role : 0];
	/* severity order for ties: reject > tempfail > quarantine > tag */
	static const enum policy_action sev[] = { POLICY_REJECT, POLICY_TEMPFAIL, POLICY_QUARANTINE,
						  POLICY_TAG };

	if (policy_ip_on(&p->ip_block, client)) {
		res.action = POLICY_REJECT;
		res.why = POLICY_WHY_IP_BLOCK;
	} else if (policy_sender_on(&p->sender_block, sender)) {
		res.action = POLICY_REJECT;
		res.why = POLICY_WHY_SENDER_BLOCK;
	} else if (policy_ip_on(&p->ip_allow, client)) {
		res.why = POLICY_WHY_IP_ALLOW;
	} else if (policy_sender_on(&p->sender_allow, sender)) {
		res.why = POLICY_WHY_SENDER_ALLOW;
	} else {
		int32_t best = 0;
		bool any = false;

		for (unsigned i = 0; i < sizeof(sev) / sizeof(sev[0]); i++) {
			int32_t th = t->at[sev[i]];

			if (th == POLICY_SCORE_OFF || score_milli < th)
				continue;
			if (!any || th > best) {
				best = th;
				res.action = sev[i];
				any = true;
			}
		}
		if (any) {
			res.why = POLICY_WHY_SCORE;
			res.threshold_milli = best;
		}
	}
	if (r)
		*r = res;
	return res.action;
}

struct policy *policy_new(const struct policy *base)
{
	struct policy *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	if (!base) {
		policy_init(p);
	} else if (policy_copy(p, base) < 0) {
		free(p);
		return NULL;
	}
	return p;
}

void policy_free(struct policy **pp)
{
	if (!*pp)
		return;
	policy_clear(*pp);
	free(*pp);
	*pp = NULL;
}

enum policy_action policy_decide(const struct policy *p, unsigned role, struct slice sender,
				 const char *client_addr, int32_t score_milli)
{
	struct sockaddr_storage ss;
	const struct sockaddr *sa = NULL;

	memset(&ss, 0, sizeof(ss));
	if (client_addr) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET, client_addr, &s4->sin_addr) == 1) {
			s4->sin_family = AF_INET;
			sa = (const struct sockaddr *)&ss;
		} else if (inet_pton(AF_INET6, client_addr, &s6->sin6_addr) == 1) {
			s6->sin6_family = AF_INET6;
			sa = (const struct sockaddr *)&ss;
		}
	}
	return policy_eval(p, role, sender, sa, score_milli, NULL);
}

enum policy_connect policy_connect_check(const struct policy *p, const struct sockaddr *client)
{
	if (p == NULL)
		return POLICY_CONNECT_NONE;
	if (policy_ip_on(&p->ip_block, client))
		return POLICY_CONNECT_BLOCK;
	if (policy_ip_on(&p->ip_allow, client))
		return POLICY_CONNECT_ALLOW;
	return POLICY_CONNECT_NONE;
}

const char *policy_action_name(enum policy_action a)
{
	static const char *const names[] = { "deliver", "tag", "quarantine", "reject", "tempfail" };

	return (unsigned)a < POLICY_ACTION_COUNT ? names[a] : "unknown";
}

const char *policy_why_name(enum policy_why w)
{
	static const char *const names[] = { "clean", "score", "ip_block", "sender_block", "ip_allow",
					     "sender_allow" };

	return (unsigned)w <= POLICY_WHY_SENDER_ALLOW ? names[w] : "unknown";
}
