/*
 * test_conf_cluster.c - dataplane/conf/conf_cluster.c: the [cluster] section through the one
 * parser (node_config_load_buffer): defaults, each key's checks and the whole-section checks,
 * each error naming the buffer's line, the section and the key; no section, no cluster.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "conf/node_config.h"

/* 6 lines; a case appends its [cluster] section from line 7. */
static const char test_cc_base[] =
	"[node]\nname = n1\nhostname = mx.test\nspool_dir = /nonexistent/sluice-test-cc\n"
	"[listen a]\naddress = 127.0.0.1:2525\n";

static int test_cc_load(const char *base, const char *extra, struct node_config **c_r, char *err,
			size_t errlen)
{
	char buf[2048];

	snprintf(buf, sizeof(buf), "%s%s", base, extra);
	*c_r = NULL;
	err[0] = '\0';
	return node_config_load_buffer("T", buf, strlen(buf), c_r, err, errlen);
}

static void test_cc_none(void **state)
{
	struct node_config *c;
	char err[512];

	assert_int_equal(test_cc_load(test_cc_base, "", &c, err, sizeof(err)), 0);
	assert_false(c->cluster.on);
	assert_null(c->cluster_behind);
	assert_false(node_config_behind(c));
	node_config_unref(&c);
}

static void test_cc_defaults_and_keys(void **state)
{
	struct node_config *c;
	char err[512];

	assert_int_equal(test_cc_load(test_cc_base, "[cluster]\ndir = /etc/sluice/cluster\n", &c, err,
				      sizeof(err)), 0);
	assert_true(c->cluster.on);
	assert_string_equal(c->cluster.dir, "/etc/sluice/cluster");
	assert_string_equal(c->cluster.nats_server, "/usr/sbin/nats-server");
	assert_int_equal(c->cluster.nats_port, 4222);
	assert_int_equal(c->cluster.nats_monitor_port, 8222);
	/* The flag is the agent's: a snapshot from the parser alone is never behind. */
	assert_false(node_config_behind(c));
	node_config_unref(&c);

	assert_int_equal(test_cc_load(test_cc_base, "[Cluster]\ndir = /c\nnats_server = /opt/nats\n"
				      "nats_port = 14222\nnats_monitor_port = 18222\n", &c, err,
				      sizeof(err)), 0);
	assert_string_equal(c->cluster.nats_server, "/opt/nats");
	assert_int_equal(c->cluster.nats_port, 14222);
	assert_int_equal(c->cluster.nats_monitor_port, 18222);
	node_config_unref(&c);
}

static void test_cc_errors(void **state)
{
	static const struct {
		const char *label, *base, *extra, *want;
	} cases[] = {
		{ "empty section", test_cc_base, "[cluster]\n",
		  "T:7: [cluster] dir: missing (the directory sluice-node --join wrote" },
		{ "no dir", test_cc_base, "[cluster]\nnats_port = 4333\n", "T:7: [cluster] dir: missing" },
		{ "relative dir", test_cc_base, "[cluster]\ndir = cluster\n",
		  "T:8: [cluster] dir: want an absolute path" },
		{ "quote in dir", test_cc_base, "[cluster]\ndir = /a\"b\n",
		  "T:8: [cluster] dir: want an absolute path of at most 511 bytes without quotes" },
		{ "relative server", test_cc_base, "[cluster]\ndir = /c\nnats_server = nats-server\n",
		  "T:9: [cluster] nats_server: want an absolute path" },
		{ "port 0", test_cc_base, "[cluster]\ndir = /c\nnats_port = 0\n",
		  "T:9: [cluster] nats_port: want a port 1-65535, not \"0\"" },
		{ "port too big", test_cc_base, "[cluster]\ndir = /c\nnats_monitor_port = 65536\n",
		  "T:9: [cluster] nats_monitor_port: want a port 1-65535, not \"65536\"" },
		{ "same ports", test_cc_base, "[cluster]\ndir = /c\nnats_port = 5000\n"
		  "nats_monitor_port = 5000\n",
		  "T:10: [cluster] nats_monitor_port: nats_port and nats_monitor_port are both 5000" },
		{ "same as a default", test_cc_base, "[cluster]\nnats_port = 8222\ndir = /c\n",
		  "T:8: [cluster] nats_port: nats_port and nats_monitor_port are both 8222" },
		{ "unknown key", test_cc_base, "[cluster]\ndir = /c\nhub = tls://x:7422\n",
		  "T:9: [cluster] hub: unknown key" },
		{ "twice", test_cc_base, "[cluster]\ndir = /c\ndir = /d\n",
		  "T:9: [cluster] dir: given twice in this section: first at line 8" },
		{ "section twice", test_cc_base, "[cluster]\ndir = /c\n[cluster]\n",
		  "T:9: [cluster]: section given twice: first at line 7" },
		{ "name not a label",
		  "[node]\nname = N_1\nhostname = mx.test\nspool_dir = /nonexistent/x\n"
		  "[listen a]\naddress = 127.0.0.1:2525\n", "[cluster]\ndir = /c\n",
		  "T:2: [node] name: \"N_1\" cannot name a cluster node" },
		{ "name hub",
		  "[node]\nname = hub\nhostname = mx.test\nspool_dir = /nonexistent/x\n"
		  "[listen a]\naddress = 127.0.0.1:2525\n", "[cluster]\ndir = /c\n",
		  "T:2: [node] name: \"hub\" cannot name a cluster node" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct node_config *c;
		char err[512];
		int r = test_cc_load(cases[i].base, cases[i].extra, &c, err, sizeof(err));

		if (r != -EINVAL || strstr(err, cases[i].want) == NULL)
			fail_msg("%s: got %d \"%s\", want \"%s\"", cases[i].label, r, err, cases[i].want);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cc_none),
		cmocka_unit_test(test_cc_defaults_and_keys),
		cmocka_unit_test(test_cc_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
