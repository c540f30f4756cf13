/*
 * test_policy.c - dataplane/policy: defaults, configuration keys (role prefixes, lists, bad
 * values leave the policy unchanged), evaluation order, CIDR matching for IPv4, IPv6 and
 * IPv4-mapped clients, sender forms.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "policy.h"

static struct sockaddr_storage test_policy_sa(const char *ip)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, ip, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, ip, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		fail_msg("bad test address %s", ip);
	return ss;
}

static enum policy_action test_policy_eval(const struct policy *p, unsigned role, const char *sender,
					   const char *ip, double score, enum policy_why *why)
{
	struct sockaddr_storage ss;
	struct policy_result r;
	enum policy_action a;

	if (ip)
		ss = test_policy_sa(ip);
	a = policy_eval(p, role, (struct slice){ sender, strlen(sender) },
			ip ? (struct sockaddr *)&ss : NULL, (int32_t)(score * 1000), &r);
	assert_int_equal(a, r.action);
	if (why)
		*why = r.why;
	return a;
}

static void test_policy_defaults(void **state)
{
	struct policy p;
	static const struct { double score; enum policy_action want; } t[] = {
		{ -3, POLICY_DELIVER }, { 4.999, POLICY_DELIVER }, { 5, POLICY_TAG }, { 7.9, POLICY_TAG },
		{ 8, POLICY_QUARANTINE }, { 14.9, POLICY_QUARANTINE }, { 15, POLICY_REJECT }, { 100, POLICY_REJECT },
	};

	policy_init(&p);
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		for (unsigned role = 0; role < POLICY_ROLE_COUNT; role++)
			if (test_policy_eval(&p, role, "a@b.example", "192.0.2.1", t[i].score, NULL) != t[i].want)
				fail_msg("score %g role %u", t[i].score, role);
	policy_clear(&p);
}

static void test_policy_keys(void **state)
{
	struct policy p;
	char err[128];
	enum policy_why why;

	policy_init(&p);
	assert_int_equal(policy_conf_set(&p, "tag_score", "3", err, sizeof(err)), 0);
	assert_int_equal(policy_conf_set(&p, "quarantine_score", "6.5", err, sizeof(err)), 0);
	assert_int_equal(policy_conf_set(&p, "reject_score", "12", err, sizeof(err)), 0);
	assert_int_equal(policy_conf_set(&p, "fallback_reject_score", "7", err, sizeof(err)), 0);
	assert_int_equal(policy_conf_set(&p, "primary_tempfail_score", "10", err, sizeof(err)), 0);
	/* primary: tag 3, quarantine 6.5, tempfail 10, reject 12 */
	assert_int_equal(test_policy_eval(&p, POLICY_ROLE_PRIMARY, "", NULL, 3, &why), POLICY_TAG);
	assert_int_equal(why, POLICY_WHY_SCORE);
	assert_int_equal(test_policy_eval(&p, POLICY_ROLE_PRIMARY, "", NULL, 7, NULL), POLICY_QUARANTINE);
	assert_int_equal(test_policy_eval(&p, POLICY_ROLE_PRIMARY, "", NULL, 11, NULL), POLICY_TEMPFAIL);
	assert_int_equal(test_policy_eval(&p, POLICY_ROLE_PRIMARY, "", NULL, 12, NULL), POLICY_REJECT);
	/* fallback: reject already at 7, no tempfail */
	assert_int_equal(test_policy_eval(&p, POLICY_ROLE_FALLBACK, "", NULL, 6.6, NULL), POLICY_QUARANTINE);
	assert_int_equal(test_policy_eval(&p, POLICY_ROLE_FALLBACK, "", NULL, 7, NULL), POLICY_REJECT);
	assert_int_equal(test_policy_eval(&p, POLICY_ROLE_FALLBACK, "", NULL, 11, NULL), POLICY_REJECT);
	/* off */
	assert_int_equal(policy_conf_set(&p, "reject_score", "off", err, sizeof(err)), 0);
	assert_int_equal(test_policy_eval(&p, POLICY_ROLE_FALLBACK, "", NULL, 500, NULL), POLICY_QUARANTINE);
	policy_clear(&p);
}

static const struct {
	const char *key, *value;
	int rc;
} test_policy_bad[] = {
	{ "tag_score", "", -EINVAL },
	{ "tag_score", "abc", -EINVAL },
	{ "tag_score", "5x", -EINVAL },
	{ "tag_score", "1e9", -EINVAL },
	{ "tag_score", "nan", -EINVAL },
	{ "secondary_tag_score", "5", -ENOENT },
	{ "fallback_sender_allow", "a@b", -ENOENT },
	{ "bogus", "1", -ENOENT },
	{ "ip_allow", "10.0.0.0/33", -EINVAL },
	{ "ip_allow", "10.0.0.0/", -EINVAL },
	{ "ip_allow", "10.0.0.0/8, nonsense", -EINVAL },
	{ "ip_block", "::1/129", -EINVAL },
	{ "sender_allow", "a@b@c", -EINVAL },
	{ "sender_allow", "a@", -EINVAL },
	{ "sender_allow", "@", -EINVAL },
	{ "sender_block", "@a@b", -EINVAL },
};

static void test_policy_bad_values(void **state)
{
	for (size_t i = 0; i < sizeof(test_policy_bad) / sizeof(test_policy_bad[0]); i++) {
		struct policy p;
		char err[128] = "";
		int rc;

		policy_init(&p);
		rc = policy_conf_set(&p, test_policy_bad[i].key, test_policy_bad[i].value, err, sizeof(err));
		if (rc != test_policy_bad[i].rc)
			fail_msg("%s = %s: rc %d, want %d", test_policy_bad[i].key, test_policy_bad[i].value,
				 rc, test_policy_bad[i].rc);
		assert_true(err[0] != '\0');
		/* unchanged: defaults, empty lists */
		assert_int_equal(p.role[0].at[POLICY_TAG], 5000);
		assert_int_equal(p.ip_allow.n + p.ip_block.n + p.sender_allow.n + p.sender_block.n, 0);
		policy_clear(&p);
	}
}

static void test_policy_lists(void **state)
{
	struct policy p, *copy;
	char err[128];
	enum policy_why why;
	static const struct {
		const char *sender, *ip;
		double score;
		enum policy_action want;
		enum policy_why why;
	} t[] = {
		{ "x@spam.example", "198.51.100.7", 0, POLICY_REJECT, POLICY_WHY_SENDER_BLOCK },
		{ "X@SPAM.EXAMPLE", "198.51.100.7", 0, POLICY_REJECT, POLICY_WHY_SENDER_BLOCK },
		{ "x@sub.spam.example", "198.51.100.7", 0, POLICY_DELIVER, POLICY_WHY_CLEAN }, /* @domain: exact */
		{ "boss@corp.example", "198.51.100.7", 20, POLICY_DELIVER, POLICY_WHY_SENDER_ALLOW },
		{ "other@corp.example", "198.51.100.7", 20, POLICY_REJECT, POLICY_WHY_SCORE },
		{ "a@partner.example", "198.51.100.7", 20, POLICY_DELIVER, POLICY_WHY_SENDER_ALLOW },
		{ "a@mx.partner.example", "198.51.100.7", 20, POLICY_DELIVER, POLICY_WHY_SENDER_ALLOW },
		{ "a@notpartner.example", "198.51.100.7", 20, POLICY_REJECT, POLICY_WHY_SCORE },
		{ "a@x.example", "10.1.2.3", 20, POLICY_DELIVER, POLICY_WHY_IP_ALLOW },
		{ "a@x.example", "11.1.2.3", 20, POLICY_REJECT, POLICY_WHY_SCORE },
		{ "a@x.example", "10.9.9.9", 0, POLICY_REJECT, POLICY_WHY_IP_BLOCK },  /* block wins */
		{ "boss@corp.example", "203.0.113.200", 0, POLICY_REJECT, POLICY_WHY_IP_BLOCK },
		{ "a@x.example", "203.0.113.127", 0, POLICY_DELIVER, POLICY_WHY_CLEAN },
		{ "a@x.example", "2001:db8:1::5", 20, POLICY_DELIVER, POLICY_WHY_IP_ALLOW },
		{ "a@x.example", "2001:db8:2::5", 20, POLICY_REJECT, POLICY_WHY_SCORE },
		{ "a@x.example", "::ffff:10.1.2.3", 20, POLICY_DELIVER, POLICY_WHY_IP_ALLOW },
		{ "", "198.51.100.7", 6, POLICY_TAG, POLICY_WHY_SCORE },   /* null sender */
	};

	policy_init(&p);
	assert_int_equal(policy_conf_set(&p, "sender_block", "@spam.example", err, sizeof(err)), 0);
	assert_int_equal(policy_conf_set(&p, "sender_allow", "Boss@Corp.example, .partner.example", err,
					 sizeof(err)), 0);
	assert_int_equal(policy_conf_set(&p, "ip_allow", "10.0.0.0/8 2001:db8:1::/48", err, sizeof(err)), 0);
	assert_int_equal(policy_conf_set(&p, "ip_block", "10.9.0.0/16", err, sizeof(err)), 0);
	assert_int_equal(policy_conf_set(&p, "ip_block", "203.0.113.128/25", err, sizeof(err)), 0);
	assert_int_equal(p.ip_block.n, 2);
	copy = policy_new(&p);
	assert_non_null(copy);
	policy_clear(&p);   /* the copy owns its own lists */
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		enum policy_action a = test_policy_eval(copy, POLICY_ROLE_PRIMARY, t[i].sender, t[i].ip,
							t[i].score, &why);

		if (a != t[i].want || why != t[i].why)
			fail_msg("%s from %s score %g: %s (%s), want %s (%s)", t[i].sender, t[i].ip, t[i].score,
				 policy_action_name(a), policy_why_name(why), policy_action_name(t[i].want),
				 policy_why_name(t[i].why));
	}
	/* the string form used by the session */
	assert_int_equal(policy_decide(copy, 0, (struct slice){ "a@x.example", 11 }, "10.9.1.1", 0),
			 POLICY_REJECT);
	assert_int_equal(policy_decide(copy, 0, (struct slice){ "a@x.example", 11 }, "not-an-ip", 6000),
			 POLICY_TAG);
	policy_free(&copy);
	assert_null(copy);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policy_defaults),
		cmocka_unit_test(test_policy_keys),
		cmocka_unit_test(test_policy_bad_values),
		cmocka_unit_test(test_policy_lists),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
