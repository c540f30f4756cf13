/*
 * test_sync_cfg_map.c - control/sync/cfg_map.c: keys staged until `v` commits them, deletes,
 * a half-published change never visible, the assembled buffer's order and the key of a line;
 * and cfg_watch's reading of the source header.
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

#include "cfg_map.h"
#include "cfg_watch.h"

static int put(struct cfg_map *m, const char *key, const char *value)
{
	return cfg_map_feed(m, key, value, strlen(value), CFG_OP_PUT);
}

static char *render(struct cfg_map *m, const char *base)
{
	struct cfg_render r;
	assert_int_equal(cfg_map_render(m, base, strlen(base), &r), 0);
	char *out = strdup(r.buf);
	cfg_render_free(&r);
	return out;
}

static void test_staged_until_version(void **state)
{
	struct cfg_map *m = cfg_map_new("n1");
	assert_non_null(m);
	assert_int_equal(put(m, "domain.b.example", "[domain b.example]\n"), 0);
	assert_null(cfg_map_get(m, "domain.b.example", NULL));
	assert_int_equal(cfg_map_version(m), 0);
	assert_int_equal(put(m, "v", "1"), 1);
	assert_int_equal(cfg_map_version(m), 1);
	assert_non_null(cfg_map_get(m, "domain.b.example", NULL));

	/* A change half-published: the committed state is still version 1. */
	assert_int_equal(put(m, "domain.a.example", "[domain a.example]\n"), 0);
	assert_int_equal(cfg_map_feed(m, "domain.b.example", NULL, 0, CFG_OP_DEL), 0);
	char *text = render(m, "");
	assert_string_equal(text, "[domain b.example]\n");
	free(text);
	assert_int_equal(put(m, "v", "2\n"), 1);
	text = render(m, "");
	assert_string_equal(text, "[domain a.example]\n");
	free(text);

	/* The same version again (a resend after a restart) applies nothing new. */
	assert_int_equal(put(m, "v", "2"), 0);
	/* A bad version commits nothing. */
	assert_int_equal(put(m, "global", "[limits]\n"), 0);
	assert_int_equal(put(m, "v", "x2"), -EBADMSG);
	assert_int_equal(put(m, "v", ""), -EBADMSG);
	assert_int_equal(put(m, "v", "99999999999999999999999"), -EBADMSG);
	assert_null(cfg_map_get(m, "global", NULL));
	assert_int_equal(put(m, "v", "3"), 1);
	assert_non_null(cfg_map_get(m, "global", NULL));
	/* A purged key is gone too; a deleted `v` is ignored. */
	assert_int_equal(cfg_map_feed(m, "global", NULL, 0, CFG_OP_PURGE), 0);
	assert_int_equal(cfg_map_feed(m, "v", NULL, 0, CFG_OP_DEL), 0);
	assert_int_equal(put(m, "v", "4"), 1);
	assert_null(cfg_map_get(m, "global", NULL));
	/* Deleting a key that was never there. */
	assert_int_equal(cfg_map_feed(m, "domain.zz", NULL, 0, CFG_OP_DEL), 0);
	assert_int_equal(put(m, "v", "5"), 1);
	cfg_map_free(&m);
	assert_null(m);
}

static void test_render_order(void **state)
{
	struct cfg_map *m = cfg_map_new("n1");
	/* Fed out of order, with keys this node does not render. */
	assert_int_equal(put(m, "domain.z.example", "[domain z.example]\nroute = 10.0.0.9:25"), 0);
	assert_int_equal(put(m, "node.n2", "[listen other]\n"), 0);
	assert_int_equal(put(m, "domain.a.example", "[domain a.example]\n"), 0);
	assert_int_equal(put(m, "node.n1", "[listen mx]\naddress = 0.0.0.0:25\n"), 0);
	assert_int_equal(put(m, "roles", "[roles]\nlog = n1\n"), 0);
	assert_int_equal(put(m, "rules.abc", "compiled"), 0);
	assert_int_equal(put(m, "global", "[limits]\n"), 0);
	assert_int_equal(put(m, "v", "7"), 1);
	const char *base = "[node]\nname = n1\n";
	struct cfg_render r;
	assert_int_equal(cfg_map_render(m, base, strlen(base), &r), 0);
	assert_string_equal(r.buf,
		"[node]\nname = n1\n"
		"[limits]\n"
		"[roles]\nlog = n1\n"
		"[listen mx]\naddress = 0.0.0.0:25\n"
		"[domain a.example]\n"
		"[domain z.example]\nroute = 10.0.0.9:25\n");
	assert_int_equal(r.len, strlen(r.buf));
	static const struct { unsigned line; const char *key; } lines[] = {
		{ 1, "base" }, { 2, "base" }, { 3, "global" }, { 4, "roles" }, { 5, "roles" },
		{ 6, "node.n1" }, { 7, "node.n1" }, { 8, "domain.a.example" },
		{ 9, "domain.z.example" }, { 10, "domain.z.example" }, { 11, NULL }, { 0, NULL },
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		const char *k = cfg_render_key_of_line(&r, lines[i].line);
		if (lines[i].key)
			assert_string_equal(k, lines[i].key);
		else
			assert_null(k);
	}
	cfg_render_free(&r);
	cfg_map_free(&m);
}

static void test_source_seq(void **state)
{
	static const struct { const char *header; uint64_t want; } cases[] = {
		{ "KV_cfg:bTMUkJQk 12", 12 }, { "KV_cfg 7", 7 }, { "KV_cfg:x 9 > >", 9 },
		{ "KV_cfg", 0 }, { "KV_cfg x", 0 }, { "KV_cfg 12x", 0 }, { "", 0 }, { NULL, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(cfg_watch_source_seq(cases[i].header), cases[i].want);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_staged_until_version),
		cmocka_unit_test(test_render_order),
		cmocka_unit_test(test_source_seq),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
