/*
 * test_wire.c - control/wire: names and values checked, and every fragment rendered the way the
 * data plane's one parser takes it: a base [node] section + the fragments, through
 * node_config_load_buffer, must load and give the domain, routes, policy and listeners they say.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/log.h"
#include "policy/policy.h"
#include "conf/node_config.h"
#include "wire/wire.h"

static const char test_wire_base[] =
	"[node]\nname = n1\nhostname = mx.test\nspool_dir = /nonexistent/sluice-test-wire\n";

static struct node_config *test_wire_load(struct buf *frags, char *err, size_t errlen)
{
	struct buf all = { 0 };
	struct node_config *c = NULL;

	assert_int_equal(buf_append(&all, test_wire_base, sizeof(test_wire_base) - 1), 0);
	assert_int_equal(buf_append(&all, frags->pos, buf_unread(frags)), 0);
	if (node_config_load_buffer("cluster version 7", (const char *)all.pos, buf_unread(&all), &c,
				    err, errlen) < 0)
		c = NULL;
	buf_release(&all);
	return c;
}

static void test_wire_domain_and_node_load(void **state)
{
	static const struct wire_kv policy[] = {
		{ "fallback_reject_score", "8" }, { "ip_block", "192.0.2.0/24, 2001:db8::/32" },
		{ "reject_score", "12" }, { "sender_allow", "@partner.example" },
	};
	struct wire_domain d = {
		.name = "example.com", .route = "10.0.0.5:25 10, 10.0.0.6:2525 20", .tls = "required",
		.tls_verify = 1, .spool_quota = "500M", .long_lines = "wrap", .allow_routing = -1,
		.npolicy = 4, .policy = policy,
	};
	struct wire_domain mx = { .name = "b.example", .route = "mx", .tls_verify = -1,
				  .allow_routing = 1 };
	struct wire_listen listen[] = {
		{ "mx", "127.0.0.1:2525", "primary", 1 }, { "backup", "127.0.0.2:2525", "fallback", 0 },
	};
	struct wire_node n = { .name = "n1", .nlisten = 2, .listen = listen };
	struct buf b = { 0 };
	char err[512] = "";
	struct node_config *c;
	const struct domain_conf *dc;

	assert_int_equal(wire_render_node(&b, &n, 7), 0);
	assert_int_equal(wire_render_domain(&b, &mx, 7), 0);
	assert_int_equal(wire_render_domain(&b, &d, 7), 0);
	assert_non_null(strstr((const char *)b.pos, "# sluice cfg domain.example.com version 7\n"));
	c = test_wire_load(&b, err, sizeof(err));
	if (c == NULL)
		fail_msg("the parser refused the fragments: %s", err);
	assert_int_equal(c->nlisten, 2);
	assert_string_equal(c->listen[0].name, "mx");
	assert_int_equal(c->listen[1].role, LISTEN_ROLE_FALLBACK);
	assert_false(c->listen[1].starttls);
	assert_int_equal(c->ndomains, 2);
	dc = node_config_domain(c, (struct slice){ "Example.COM", 11 });
	assert_non_null(dc);
	assert_int_equal(dc->ndest, 2);
	assert_string_equal(dc->dest[1].host, "10.0.0.6");
	assert_int_equal(dc->dest[1].port, 2525);
	assert_int_equal(dc->dest[1].prio, 20);
	assert_int_equal(dc->tls, DOMAIN_TLS_REQUIRED);
	assert_true(dc->tls_verify);
	assert_int_equal(dc->spool_quota, 500ull << 20);
	assert_int_equal(dc->long_lines, 1 + DELIVERY_LONG_LINES_WRAP);
	assert_int_equal(dc->policy->role[POLICY_ROLE_PRIMARY].at[POLICY_REJECT], 12000);
	assert_int_equal(dc->policy->role[POLICY_ROLE_FALLBACK].at[POLICY_REJECT], 8000);
	assert_int_equal(dc->policy->ip_block.n, 2);
	assert_int_equal(dc->policy->sender_allow.n, 1);
	dc = node_config_domain(c, (struct slice){ "b.example", 9 });
	assert_non_null(dc);
	assert_true(dc->route_mx);
	assert_true(dc->allow_routing);
	node_config_unref(&c);
	buf_release(&b);
}

static void test_wire_keys(void **state)
{
	char key[WIRE_KEY_MAX], tiny[8];

	assert_int_equal(wire_key_domain("example.com", key, sizeof(key)), 0);
	assert_string_equal(key, "domain.example.com");
	assert_int_equal(wire_key_node("mx-1", key, sizeof(key)), 0);
	assert_string_equal(key, "node.mx-1");
	assert_int_equal(wire_key_domain("example.com", tiny, sizeof(tiny)), -ENAMETOOLONG);
}

static void test_wire_checks(void **state)
{
	static const struct { const char *label, *s; bool domain, label_ok, key, value; } t[] = {
		{ "domain", "example.com", true, false, false, true },
		{ "idn a-label", "xn--bcher-kva.example", true, false, false, true },
		{ "upper case", "Example.com", false, false, false, true },
		{ "empty label", "a..b", false, false, false, true },
		{ "hyphen first", "-a.b", false, false, false, true },
		{ "wildcard", "*.example.com", false, false, false, true },
		{ "node label", "mx_1", false, true, false, true },
		{ "threshold", "reject_score", false, true, true, true },
		{ "role threshold", "primary_tag_score", false, true, true, true },
		{ "list", "ip_block", false, true, true, true },
		{ "role list", "fallback_ip_block", false, true, false, true },
		{ "unknown key", "frob_score", false, true, false, true },
		{ "newline", "10.0.0.5:25\n[node]", false, false, false, false },
		{ "comment", "10.0.0.5:25 ; x", false, false, false, false },
		{ "hash", "a#b", false, false, false, false },
		{ "section", "[x]", false, false, false, false },
		{ "empty", "", false, false, false, false },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		if (wire_domain_name_valid(t[i].s) != t[i].domain ||
		    wire_label_valid(t[i].s) != t[i].label_ok ||
		    wire_policy_key_known(t[i].s) != t[i].key || wire_value_safe(t[i].s) != t[i].value)
			fail_msg("case %s", t[i].label);
	}
}

static void test_wire_roles(void **state)
{
	struct wire_roles r = { .log = "n1", .quarantine = NULL, .archive = "n2" };
	struct buf b = { 0 };

	assert_int_equal(wire_render_roles(&b, &r, 3), 0);
	assert_int_equal(buf_append(&b, "", 1), 0);
	assert_string_equal((const char *)b.pos, "# sluice cfg roles version 3\n[roles]\nlog = n1\n"
			    "archive = n2\n");
	b.last--;   /* without the NUL: the parser takes the fragment as a node would */
	{
		/* With the node's own part, as a node's buffer has it (a node must listen). */
		struct wire_listen l = { "mx", "127.0.0.1:2525", "primary", 1 };
		struct wire_node n = { .name = "n1", .nlisten = 1, .listen = &l };
		char err[512] = "";
		struct node_config *c;

		assert_int_equal(wire_render_node(&b, &n, 3), 0);
		c = test_wire_load(&b, err, sizeof(err));

		if (c == NULL)
			fail_msg("the parser refused the roles: %s", err);
		assert_string_equal(c->roles.log, "n1");
		assert_string_equal(c->roles.quarantine, "");
		assert_string_equal(c->roles.archive, "n2");
		node_config_unref(&c);
	}
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wire_domain_and_node_load),
		cmocka_unit_test(test_wire_keys),
		cmocka_unit_test(test_wire_checks),
		cmocka_unit_test(test_wire_roles),
	};

	log_set_level(LOG_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
