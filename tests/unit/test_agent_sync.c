/*
 * test_agent_sync.c - dataplane/agent/agent_sync.c's persisted file (spool_dir/cluster-config):
 * a rendered cluster part encoded and decoded gives the same buffer and the same key for every
 * line; fragment text that looks like a marker stays text; a cut or altered file is refused.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent_sync.h"
#include "cfg_map.h"

static int put(struct cfg_map *m, const char *key, const char *value)
{
	return cfg_map_feed(m, key, value, strlen(value), CFG_OP_PUT);
}

static void test_as_round_trip(void **state)
{
	struct cfg_map *m = cfg_map_new("n1");
	struct cfg_render r, back;
	uint64_t version = 0;
	char *text;
	size_t len;

	assert_non_null(m);
	assert_int_equal(put(m, "global", "[limits]\nrecipients = 50"), 0);   /* no newline */
	assert_int_equal(put(m, "node.n1", "[listen mx]\naddress = 127.0.0.1:25\n"), 0);
	assert_int_equal(put(m, "domain.a.example",
			     "# part domain.z 1\n[domain a.example]\nroute = mx\n"), 0);
	assert_int_equal(put(m, "domain.b.example", "[domain b.example]\nroute = 10.0.0.1:25\n"), 0);
	assert_int_equal(put(m, "v", "42"), 1);
	assert_int_equal(cfg_map_render(m, "", 0, &r), 0);
	assert_int_equal(agent_sync_encode(&r, 42, &text, &len), 0);
	static const char head[] = "# sluice cluster-config version 42 parts 4\n# part global 2\n"
				   "[limits]\nrecipients = 50\n# part node.n1 2\n";
	assert_true(len > sizeof(head) && strncmp(text, head, sizeof(head) - 1) == 0);
	assert_int_equal(agent_sync_decode(text, len, &back, &version), 0);
	assert_int_equal(version, 42);
	assert_int_equal(back.len, r.len);
	assert_memory_equal(back.buf, r.buf, r.len);
	assert_int_equal(back.n_parts, r.n_parts);
	for (unsigned line = 1; line <= 12; line++) {
		const char *a = cfg_render_key_of_line(&r, line), *b = cfg_render_key_of_line(&back, line);

		if (a == NULL || b == NULL)
			assert_ptr_equal(a, b);
		else
			assert_string_equal(a, b);
	}
	assert_string_equal(cfg_render_key_of_line(&back, 6), "domain.a.example");

	/* cut short, one byte more, a count that lies, not the header */
	struct cfg_render bad;
	assert_int_equal(agent_sync_decode(text, len - 1, &bad, &version), -EBADMSG);
	char *more = malloc(len + 2);
	memcpy(more, text, len);
	memcpy(more + len, "x\n", 2);
	assert_int_equal(agent_sync_decode(more, len + 2, &bad, &version), -EBADMSG);
	free(more);
	char *lie = strdup(text);
	lie[strlen("# sluice cluster-config version 42 parts ")] = '5';
	assert_int_equal(agent_sync_decode(lie, len, &bad, &version), -EBADMSG);
	free(lie);
	assert_int_equal(agent_sync_decode("[node]\nname = x\n", 16, &bad, &version), -EBADMSG);

	free(text);
	cfg_render_free(&r);
	cfg_render_free(&back);
	cfg_map_free(&m);
}

static void test_as_empty(void **state)
{
	struct cfg_render r = { 0 }, back;
	uint64_t version = 9;
	char *text;
	size_t len;

	assert_int_equal(agent_sync_encode(&r, 0, &text, &len), 0);
	assert_string_equal(text, "# sluice cluster-config version 0 parts 0\n");
	assert_int_equal(agent_sync_decode(text, len, &back, &version), 0);
	assert_int_equal(version, 0);
	assert_int_equal(back.len, 0);
	free(text);
	cfg_render_free(&back);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_as_round_trip),
		cmocka_unit_test(test_as_empty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
