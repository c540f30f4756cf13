/*
 * test_store.c - control/store on a real SQLite file: migrations (and a newer schema refused),
 * a change writing its rows, the cluster version, the audit row and the outbox rows in one
 * transaction; the outbox drained in order by store_outbox_next/done; conflicts and absent
 * objects; passwords and tokens (expired, revoked); one-use join tokens.
 */
#include <errno.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/store.h"

static const struct store_actor test_store_actor = { "root", "192.0.2.7" };

struct test_store {
	char          dir[64];
	char          path[128];
	struct store *st;
};

static int test_store_setup(void **state)
{
	struct test_store *t = calloc(1, sizeof(*t));
	char err[256];

	snprintf(t->dir, sizeof(t->dir), "/tmp/sluice-test-store-XXXXXX");
	assert_non_null(mkdtemp(t->dir));
	snprintf(t->path, sizeof(t->path), "%s/control.db", t->dir);
	assert_int_equal(store_open(t->path, &t->st, err, sizeof(err)), 0);
	*state = t;
	return 0;
}

static int test_store_teardown(void **state)
{
	struct test_store *t = *state;
	char cmd[200];

	store_close(&t->st);
	assert_null(t->st);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", t->dir);
	assert_int_equal(system(cmd), 0);
	free(t);
	return 0;
}

static json_t *test_store_domain(const char *name, const char *route)
{
	return json_pack("{sssss{ss}}", "name", name, "route", route, "policy", "reject_score", "12");
}

static void test_store_domain_change(void **state)
{
	struct test_store *t = *state;
	struct store_outbox_row row;
	json_t *d = test_store_domain("example.com", "10.0.0.5:25"), *audit, *a;

	assert_int_equal(store_cluster_version(t->st), 0);
	assert_int_equal(store_domain_put(t->st, &test_store_actor, d, true), 0);
	assert_int_equal(store_domain_put(t->st, &test_store_actor, d, true), -EEXIST);
	assert_int_equal(store_cluster_version(t->st), 1);
	assert_int_equal(store_policy_set(t->st, &test_store_actor, "example.com", "tag_score", "4"), 0);
	assert_int_equal(store_policy_set(t->st, &test_store_actor, "nope.example", "tag_score", "4"),
			 -ENOENT);
	assert_int_equal(store_domain_delete(t->st, &test_store_actor, "example.com"), 0);
	assert_int_equal(store_domain_delete(t->st, &test_store_actor, "example.com"), -ENOENT);
	assert_int_equal(store_cluster_version(t->st), 3);

	/* The outbox: each change's key, then v, in order; a delete has no value. */
	static const struct { uint64_t v; const char *key, *value_starts; } want[] = {
		{ 1, "domain.example.com", "# sluice cfg domain.example.com version 1\n[domain example.com]\n"
		  "route = 10.0.0.5:25\nreject_score = 12\n" },
		{ 1, "v", "1" },
		{ 2, "domain.example.com", "# sluice cfg domain.example.com version 2\n" },
		{ 2, "v", "2" },
		{ 3, "domain.example.com", NULL },
		{ 3, "v", "3" },
	};
	assert_int_equal(store_outbox_pending(t->st), 6);
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_int_equal(store_outbox_next(t->st, &row), 1);
		assert_int_equal(row.version, want[i].v);
		assert_string_equal(row.key, want[i].key);
		if (want[i].value_starts == NULL)
			assert_null(row.value);
		else
			assert_memory_equal(row.value, want[i].value_starts, strlen(want[i].value_starts));
		assert_int_equal(store_outbox_done(t->st, row.seq), 0);
		store_outbox_row_clear(&row);
	}
	assert_int_equal(store_outbox_next(t->st, &row), 0);

	/* The audit rows: who, what, from where, before and after. */
	audit = store_audit_list(t->st, 0, 10);
	assert_int_equal(json_array_size(json_object_get(audit, "items")), 3);
	a = json_array_get(json_object_get(audit, "items"), 1);
	assert_string_equal(store_json_str(a, "action"), "policy.set");
	assert_string_equal(store_json_str(a, "actor"), "root");
	assert_string_equal(store_json_str(a, "address"), "192.0.2.7");
	assert_null(json_object_get(json_object_get(json_object_get(a, "before"), "policy"), "tag_score"));
	assert_string_equal(store_json_str(json_object_get(json_object_get(a, "after"), "policy"),
					   "tag_score"), "4");
	assert_true(json_is_null(json_object_get(json_array_get(json_object_get(audit, "items"), 2),
						 "after")));
	json_decref(audit);
	audit = store_audit_list(t->st, 0, 2);
	assert_int_equal(json_integer_value(json_object_get(audit, "next")), 2);
	json_decref(audit);
	json_decref(d);
}

static void test_store_users_tokens(void **state)
{
	struct test_store *t = *state;
	json_t *u = json_pack("{sssss[s]s[]}", "name", "dana", "role", "domainadmin", "domains",
			      "example.com", "addresses"), *who = NULL, *got;
	char token[STORE_TOKEN_LEN + 1], old[STORE_TOKEN_LEN + 1];
	int64_t id, got_id;

	assert_int_equal(store_user_put(t->st, &test_store_actor, u, "pw", true), 0);
	assert_int_equal(store_user_put(t->st, &test_store_actor, u, NULL, true), -EEXIST);
	assert_int_equal(store_user_check_password(t->st, "dana", "pw"), 0);
	assert_int_equal(store_user_check_password(t->st, "dana", "wrong"), -EACCES);
	assert_int_equal(store_user_check_password(t->st, "nobody", "pw"), -EACCES);
	/* A user or token change is audited but publishes nothing. */
	assert_int_equal(store_cluster_version(t->st), 0);
	assert_int_equal(store_token_create(t->st, &test_store_actor, "dana", STORE_TOKEN_API, 60,
					    "t", token, &id), 0);
	assert_int_equal(strlen(token), STORE_TOKEN_LEN);
	assert_int_equal(store_token_auth(t->st, token, &got_id, &who), 0);
	assert_int_equal(got_id, id);
	assert_string_equal(json_string_value(json_array_get(json_object_get(who, "domains"), 0)),
			    "example.com");
	json_decref(who);
	assert_int_equal(store_token_auth(t->st, "not a token", &got_id, &who), -ENOENT);
	assert_int_equal(store_token_revoke(t->st, &test_store_actor, id), 0);
	assert_int_equal(store_token_auth(t->st, token, &got_id, &who), -EKEYREVOKED);
	memcpy(old, token, sizeof(old));
	assert_int_equal(store_token_create(t->st, &test_store_actor, "dana", STORE_TOKEN_API, 0,
					    "t", token, &id), 0);
	assert_string_not_equal(old, token);
	assert_int_equal(store_token_auth(t->st, token, &got_id, &who), -EKEYEXPIRED);
	assert_int_equal(store_token_create(t->st, &test_store_actor, "ghost", STORE_TOKEN_API, 60,
					    "t", token, &id), -ENOENT);
	got = store_user_list(t->st);
	assert_int_equal(json_array_size(got), 1);
	json_decref(got);
	assert_int_equal(store_user_delete(t->st, &test_store_actor, "dana"), 0);
	assert_null(store_user_get(t->st, "dana"));
	assert_int_equal(store_outbox_pending(t->st), 0);
	json_decref(u);
}

static void test_store_nodes_roles_join(void **state)
{
	struct test_store *t = *state;
	json_t *n = json_pack("{sssss[{ssssss}]}", "name", "mx1", "site", "paris", "listen", "label",
			      "mx", "address", "127.0.0.1:2525", "role", "primary");
	json_t *roles = json_pack("{ss}", "log", "mx1"), *bad = json_pack("{ss}", "archive", "x");
	json_t *info = NULL, *got;
	const char *which = NULL;
	char token[STORE_TOKEN_LEN + 1];

	assert_int_equal(store_node_put(t->st, &test_store_actor, n, true), 0);
	assert_int_equal(store_roles_set(t->st, &test_store_actor, roles, &which), 0);
	assert_int_equal(store_roles_set(t->st, &test_store_actor, bad, &which), -ENOENT);
	assert_string_equal(which, "archive");
	assert_int_equal(store_node_delete(t->st, &test_store_actor, "mx1"), -EBUSY);
	assert_int_equal(store_node_report(t->st, "mx1", "0.1.0", 2), 0);
	assert_int_equal(store_node_report(t->st, "ghost", "0.1.0", 2), -ENOENT);
	got = store_node_get(t->st, "mx1");
	assert_int_equal(json_integer_value(json_object_get(got, "applied_version")), 2);
	json_decref(got);
	assert_int_equal(store_cluster_version(t->st), 2);

	assert_int_equal(store_join_create(t->st, &test_store_actor, "mx2", "berlin", 3600, token), 0);
	assert_int_equal(store_join_consume(t->st, token, &info), 0);
	assert_string_equal(store_json_str(info, "node"), "mx2");
	json_decref(info);
	assert_int_equal(store_join_consume(t->st, token, &info), -EALREADY);
	assert_int_equal(store_join_consume(t->st, "nope", &info), -ENOENT);
	assert_int_equal(store_join_create(t->st, &test_store_actor, "mx3", "berlin", 0, token), 0);
	assert_int_equal(store_join_consume(t->st, token, &info), -EKEYEXPIRED);
	json_decref(n);
	json_decref(roles);
	json_decref(bad);
}

static void test_store_newer_schema(void **state)
{
	struct test_store *t = *state;
	struct store *again = NULL;
	sqlite3 *db;
	char err[256] = "";

	store_close(&t->st);
	assert_int_equal(sqlite3_open(t->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO schema_version VALUES (99)", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(t->path, &again, err, sizeof(err)), -EPROTO);
	assert_null(again);
	assert_non_null(strstr(err, "newer than this sluice-control knows"));
}

static void test_store_reopen_keeps(void **state)
{
	struct test_store *t = *state;
	json_t *d = test_store_domain("a.example", "mx"), *got;
	char err[256];

	assert_int_equal(store_domain_put(t->st, &test_store_actor, d, true), 0);
	store_close(&t->st);
	assert_int_equal(store_open(t->path, &t->st, err, sizeof(err)), 0);
	got = store_domain_get(t->st, "a.example");
	assert_non_null(got);
	assert_true(json_equal(got, d));
	assert_int_equal(store_cluster_version(t->st), 1);
	json_decref(got);
	json_decref(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_store_domain_change, test_store_setup,
						test_store_teardown),
		cmocka_unit_test_setup_teardown(test_store_users_tokens, test_store_setup,
						test_store_teardown),
		cmocka_unit_test_setup_teardown(test_store_nodes_roles_join, test_store_setup,
						test_store_teardown),
		cmocka_unit_test_setup_teardown(test_store_newer_schema, test_store_setup,
						test_store_teardown),
		cmocka_unit_test_setup_teardown(test_store_reopen_keeps, test_store_setup,
						test_store_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
