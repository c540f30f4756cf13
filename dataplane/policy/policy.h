/*
 * policy.h - what to do with a message: per domain and per MX role (primary, fallback), score
 * thresholds to actions, and allow/block lists of senders and client addresses.
 *
 * A struct policy is one domain's policy (the node's configuration keeps one per domain, made
 * by copying the global one and then applying the domain's keys). It is built off the mail path
 * by policy_conf_set() and then read-only: policy_eval() is pure, so any shard may call it on a
 * shared snapshot.
 *
 * Evaluation order (first that applies wins):
 *   1. client IP on ip_block          -> reject   (POLICY_WHY_IP_BLOCK)
 *   2. sender on sender_block         -> reject   (POLICY_WHY_SENDER_BLOCK)
 *   3. client IP on ip_allow          -> deliver  (POLICY_WHY_IP_ALLOW)
 *   4. sender on sender_allow         -> deliver  (POLICY_WHY_SENDER_ALLOW)
 *   5. the score against the role's thresholds: of the actions whose threshold the score
 *      reaches, the one with the highest threshold (ties: the more severe action)
 *                                     -> tag / quarantine / tempfail / reject (POLICY_WHY_SCORE)
 *   6. otherwise                      -> deliver  (POLICY_WHY_CLEAN)
 * Blocks come before allows so that an allowed sender address (easily forged) cannot carry
 * mail past a blocked network.
 *
 * Defaults (SpamAssassin's required score is 5): tag at 5, quarantine at 8, reject at 15,
 * tempfail off; the same for both roles. Reject means "550 5.7.1" at the end of data.
 *
 * Keys for policy_conf_set (the node's INI handler calls it for each key of a policy section):
 *   tag_score, quarantine_score, reject_score, tempfail_score = NUMBER | off
 *       with an optional "primary_" or "fallback_" prefix for one role only (without it, both)
 *   sender_allow, sender_block = LIST   addresses (a@b.example), domains (@b.example: that
 *       domain exactly), domain suffixes (b.example or .b.example: it and its subdomains)
 *   ip_allow, ip_block = LIST           addresses or CIDR prefixes, IPv4 and IPv6
 *   LIST is separated by commas and/or blanks; each key adds to its list.
 * Limits: POLICY_LIST_MAX entries per list; entries at most 254 bytes.
 */
#ifndef SLUICE_POLICY_POLICY_H
#define SLUICE_POLICY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "base/buf.h"

#define POLICY_LIST_MAX   100000u
#define POLICY_SCORE_OFF  INT32_MAX     /* a threshold that is never reached */

enum policy_action {
	POLICY_DELIVER = 0,
	POLICY_TAG,
	POLICY_QUARANTINE,
	POLICY_REJECT,
	POLICY_TEMPFAIL,
	POLICY_ACTION_COUNT
};

enum policy_role {
	POLICY_ROLE_PRIMARY = 0,
	POLICY_ROLE_FALLBACK = 1,
	POLICY_ROLE_COUNT
};

enum policy_why {
	POLICY_WHY_CLEAN = 0,
	POLICY_WHY_SCORE,
	POLICY_WHY_IP_BLOCK,
	POLICY_WHY_SENDER_BLOCK,
	POLICY_WHY_IP_ALLOW,
	POLICY_WHY_SENDER_ALLOW,
};

/* Thresholds in thousandths of a point (the verdict's score_milli); POLICY_SCORE_OFF = off. */
struct policy_thresholds {
	int32_t at[POLICY_ACTION_COUNT];   /* [POLICY_DELIVER] unused */
};

enum policy_sender_kind {
	POLICY_SENDER_ADDR,     /* a@b.example */
	POLICY_SENDER_DOMAIN,   /* @b.example */
	POLICY_SENDER_SUFFIX,   /* b.example: b.example and *.b.example */
};

struct policy_sender {
	char    *s;             /* lower-case; for SUFFIX without the leading dot */
	uint8_t  kind;
};

struct policy_cidr {
	uint8_t family;         /* AF_INET or AF_INET6 */
	uint8_t bits;
	uint8_t addr[16];       /* masked */
};

struct policy_list {
	void   *v;
	size_t  n, cap;
};

struct policy {
	struct policy_thresholds role[POLICY_ROLE_COUNT];
	struct policy_list sender_allow, sender_block;   /* of struct policy_sender */
	struct policy_list ip_allow, ip_block;           /* of struct policy_cidr */
};

struct policy_result {
	enum policy_action action;
	enum policy_why    why;
	int32_t            threshold_milli;  /* POLICY_WHY_SCORE: the threshold reached */
};

/* The defaults above. Cannot fail. */
void policy_init(struct policy *p);
/* Deep copy (a domain starts from the global policy). Returns 0 or -ENOMEM (dst is then
 * empty but valid). */
int  policy_copy(struct policy *dst, const struct policy *src);
void policy_clear(struct policy *p);

/* Applies one key. Returns 0; -ENOENT for an unknown key; -EINVAL for a bad value (err says
 * which part); -E2BIG when a list is full; -ENOMEM. On error p is unchanged. */
int  policy_conf_set(struct policy *p, const char *key, const char *value, char *err, size_t errlen);

/* Decides. sender: the reverse-path without <> (empty for the null sender); client: the peer
 * address (NULL when unknown: IP lists do not apply); role: POLICY_ROLE_*. Pure. */
enum policy_action policy_eval(const struct policy *p, unsigned role, struct slice sender,
			       const struct sockaddr *client, int32_t score_milli,
			       struct policy_result *r);

/* Heap forms for the configuration snapshot: a policy with the defaults (base NULL) or a copy
 * of base; NULL on -ENOMEM. policy_free clears, frees and sets *p to NULL. */
struct policy *policy_new(const struct policy *base);
void policy_free(struct policy **p);

/* policy_eval for callers that hold the client address as text ("192.0.2.1", "2001:db8::1";
 * anything else: IP lists do not apply). */
enum policy_action policy_decide(const struct policy *p, unsigned role, struct slice sender,
				 const char *client_addr, int32_t score_milli);

/* At connect, before the banner: the client address against ip_block, then ip_allow (blocks
 * first, as in policy_eval). The node checks its default policy here, so a blocked source costs
 * no session; a domain's own lists still apply at the end of data. Pure. */
enum policy_connect { POLICY_CONNECT_NONE = 0, POLICY_CONNECT_BLOCK, POLICY_CONNECT_ALLOW };
enum policy_connect policy_connect_check(const struct policy *p, const struct sockaddr *client);

const char *policy_action_name(enum policy_action a);   /* "deliver", "tag", ... */
const char *policy_why_name(enum policy_why w);         /* "score", "ip_block", ... */

#endif
