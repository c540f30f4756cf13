/*
 * test_sync_natsconf.c - control/sync/natsconf.c: the hub's and a leaf's nats-server
 * configuration (domains, mTLS listener and its users, remotes, limits) and what it refuses.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "natsconf.h"
#include "sync_file.h"

static const char *const users[] = { "n1", "n2" };
static const char *const hubs[] = { "tls://10.0.0.1:7422", "tls://10.0.0.2:7422" };

static struct natsconf hub_conf(void)
{
	return (struct natsconf){
		.role = NATSCONF_HUB, .node_name = "n1", .state_dir = "/var/lib/sluice/hub",
		.client_port = 4222, .monitor_port = 8222,
		.cert_file = "/etc/sluice/node.crt", .key_file = "/etc/sluice/node.key",
		.ca_file = "/etc/sluice/ca.crt",
		.leaf_listen = "0.0.0.0:7422", .leaf_advertise = "10.0.0.1:7422",
		.authorized = users, .n_authorized = 2,
	};
}

static struct natsconf leaf_conf(void)
{
	return (struct natsconf){
		.role = NATSCONF_LEAF, .node_name = "n2", .state_dir = "/var/lib/sluice/nats",
		.client_port = 4223, .monitor_port = 8223,
		.cert_file = "/etc/sluice/node.crt", .key_file = "/etc/sluice/node.key",
		.ca_file = "/etc/sluice/ca.crt", .hub_urls = hubs, .n_hub_urls = 2,
	};
}

static void want_in(const char *text, const char *needle)
{
	if (!strstr(text, needle))
		fail_msg("missing %s in:\n%s", needle, text);
}

static void test_hub(void **state)
{
	struct natsconf c = hub_conf();
	char *text = NULL;
	assert_int_equal(natsconf_render(&c, &text), 0);
	want_in(text, "server_name: \"hub_n1\"\n");
	want_in(text, "listen: \"127.0.0.1:4222\"\n");
	want_in(text, "http: \"127.0.0.1:8222\"\n");
	want_in(text, "max_payload: 8388608\n");
	want_in(text, "ping_interval: \"5s\"\nping_max: 2\n");
	want_in(text, "store_dir: \"/var/lib/sluice/hub/jetstream\"\n  domain: \"hub\"\n");
	want_in(text, "  listen: \"0.0.0.0:7422\"\n  advertise: \"10.0.0.1:7422\"\n");
	want_in(text, "verify_and_map: true\n");
	want_in(text, "{ user: \"n1.node.sluice\" }\n      { user: \"n2.node.sluice\" }\n");
	assert_null(strstr(text, "remotes"));
	free(text);

	/* Nobody authorized: nobody links (an empty list would let the whole CA in). */
	c.n_authorized = 0;
	assert_int_equal(natsconf_render(&c, &text), 0);
	want_in(text, "{ user: \"nobody.invalid\" }");
	assert_null(strstr(text, "node.sluice"));
	free(text);
}

static void test_leaf(void **state)
{
	struct natsconf c = leaf_conf();
	char *text = NULL;
	assert_int_equal(natsconf_render(&c, &text), 0);
	want_in(text, "server_name: \"n2\"\n");
	want_in(text, "domain: \"n2\"\n");
	want_in(text, "reconnect: 2\n");   /* an integer: "2s" crashes 2.9's parser (pitfall 6) */
	want_in(text, "urls: [\"tls://10.0.0.1:7422\", \"tls://10.0.0.2:7422\"]\n");
	want_in(text, "cert_file: \"/etc/sluice/node.crt\"");
	assert_null(strstr(text, "verify_and_map"));
	assert_null(strstr(text, "authorization"));
	free(text);

	char dir[] = "/tmp/sluice-natsconf-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128], state_dir[128], *back = NULL;
	snprintf(path, sizeof(path), "%s/leaf.conf", dir);
	/* natsconf_write makes the state directory: one under the test's own, not /var/lib. */
	snprintf(state_dir, sizeof(state_dir), "%s/nats", dir);
	c.state_dir = state_dir;
	assert_int_equal(natsconf_write(&c, path), 0);
	assert_int_equal(natsconf_render(&c, &text), 0);
	assert_int_equal(sync_file_read(path, 1 << 20, &back, NULL), 0);
	assert_string_equal(back, text);
	free(back);
	free(text);
	unlink(path);
	rmdir(state_dir);
	rmdir(dir);
}

static void test_refused(void **state)
{
	static const char *const bad_user[] = { "Bad" };
	static const char *const bad_url[] = { "tls://x\"y" };
	struct {
		const char     *label;
		struct natsconf c;
	} cases[] = {
		{ "no name", hub_conf() }, { "bad name", hub_conf() }, { "no listener", hub_conf() },
		{ "bad user", hub_conf() }, { "port 0", hub_conf() }, { "big port", leaf_conf() },
		{ "quote in path", leaf_conf() }, { "no hub", leaf_conf() }, { "bad url", leaf_conf() },
		{ "leaf named hub", leaf_conf() }, { "no state", leaf_conf() }, { "newline", leaf_conf() },
	};
	cases[0].c.node_name = NULL;
	cases[1].c.node_name = "n_1";
	cases[2].c.leaf_listen = NULL;
	cases[3].c.authorized = bad_user;
	cases[3].c.n_authorized = 1;
	cases[4].c.client_port = 0;
	cases[5].c.monitor_port = 65536;
	cases[6].c.cert_file = "/etc/\"x";
	cases[7].c.n_hub_urls = 0;
	cases[8].c.hub_urls = bad_url;
	cases[8].c.n_hub_urls = 1;
	cases[9].c.node_name = "hub";
	cases[10].c.state_dir = "";
	cases[11].c.key_file = "/etc/x\nlisten: 0.0.0.0:4222";
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *text = NULL;
		int rc = natsconf_render(&cases[i].c, &text);
		if (rc != -EINVAL)
			fail_msg("%s: got %d, want -EINVAL", cases[i].label, rc);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hub),
		cmocka_unit_test(test_leaf),
		cmocka_unit_test(test_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
