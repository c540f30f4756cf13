/*
 * sluicectl.c - the command line over sluice-control's REST API (control/api/openapi.yaml).
 *
 *   sluicectl [--control URL] [--token T] [--ca FILE] [--json] COMMAND ...
 *     domain add NAME --route R [--tls may|required|none]   domain list | show NAME | delete NAME
 *     policy set DOMAIN KEY VALUE      rules upload FILE...
 *     node list | add NAME --site S [--ttl SECONDS] | token NAME [--ttl S] | remove NAME
 *     user add NAME --role ROLE [--password-stdin] [--domain D]... [--address A]...
 *     token create [--user U] [--ttl SECONDS] [--description TEXT]
 *     cluster init | cluster status
 *
 * The token comes from --token or SLUICE_TOKEN; the URL from --control or SLUICE_CONTROL
 * (default https://127.0.0.1:8443). Human tables by default, the API's JSON with --json.
 * Exit: 0 ok, 1 the API refused (its message printed), 2 usage, 3 the control is unreachable.
 */
#include <getopt.h>
#include <stdbool.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli_http.h"

#define CLI_OK      0
#define CLI_API     1
#define CLI_USAGE   2

struct cli {
	struct cli_http http;
	bool            json;
};

typedef int cli_cmd_fn(struct cli *c, int argc, char **argv);

static int cli_usage(void)
{
	fprintf(stderr,
		"usage: sluicectl [--control URL] [--token T] [--ca FILE] [--json] COMMAND ...\n"
		"  domain add NAME --route R [--tls T] | domain list | domain show NAME |"
		" domain delete NAME\n"
		"  policy set DOMAIN KEY VALUE | rules upload FILE...\n"
		"  node list | node add NAME --site S [--ttl SECONDS] | node token NAME [--ttl S] |"
		" node remove NAME\n"
		"  user add NAME --role ROLE [--password-stdin] [--domain D]... [--address A]...\n"
		"  token create [--user U] [--ttl SECONDS] [--description TEXT]\n"
		"  cluster init | cluster status\n");
	return CLI_USAGE;
}

/* Sends the request and prints an error; 0 with *resp_r on 2xx, else the exit status. */
static int cli_call(struct cli *c, const char *method, const char *path, json_t *body,
		    json_t **resp_r)
{
	int rc = cli_http_request(&c->http, method, path, body, resp_r);

	json_decref(body);
	return rc;
}

static void cli_print_json(json_t *v)
{
	char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS);

	if (s != NULL)
		puts(s);
	free(s);
}

static const char *cli_str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "-";
}

static void cli_print_domain(json_t *d)
{
	const char *key;
	json_t *v;

	printf("domain       %s\nroute        %s\ntls          %s\nspool_quota  %s\n",
	       cli_str(d, "name"), cli_str(d, "route"), cli_str(d, "tls"), cli_str(d, "spool_quota"));
	json_object_foreach(json_object_get(d, "policy"), key, v)
		printf("policy       %s = %s\n", key, json_string_value(v));
}

static int cli_domain(struct cli *c, int argc, char **argv)
{
	json_t *resp = NULL, *d;
	char path[512];
	size_t i;
	int rc;

	if (argc >= 1 && strcmp(argv[0], "list") == 0 && argc == 1) {
		if ((rc = cli_call(c, "GET", "domains", NULL, &resp)) != 0)
			return rc;
		if (c->json)
			cli_print_json(resp);
		else {
			printf("%-40s %-40s %s\n", "DOMAIN", "ROUTE", "POLICY KEYS");
			json_array_foreach(json_object_get(resp, "items"), i, d)
				printf("%-40s %-40s %zu\n", cli_str(d, "name"), cli_str(d, "route"),
				       json_object_size(json_object_get(d, "policy")));
		}
	} else if (argc == 2 && (strcmp(argv[0], "show") == 0 || strcmp(argv[0], "delete") == 0)) {
		bool show = argv[0][0] == 's';

		snprintf(path, sizeof(path), "domains/%s", argv[1]);
		if ((rc = cli_call(c, show ? "GET" : "DELETE", path, NULL, &resp)) != 0)
			return rc;
		if (c->json && resp)
			cli_print_json(resp);
		else if (show)
			cli_print_domain(resp);
		else
			printf("deleted %s\n", argv[1]);
	} else if (argc >= 2 && strcmp(argv[0], "add") == 0) {
		const char *route = NULL, *tls = NULL;
		json_t *body;

		for (int i2 = 2; i2 < argc; i2++) {
			if (strcmp(argv[i2], "--route") == 0 && i2 + 1 < argc)
				route = argv[++i2];
			else if (strcmp(argv[i2], "--tls") == 0 && i2 + 1 < argc)
				tls = argv[++i2];
			else
				return cli_usage();
		}
		if (route == NULL)
			return cli_usage();
		body = json_pack("{ssss}", "name", argv[1], "route", route);
		if (tls != NULL)
			json_object_set_new(body, "tls", json_string(tls));
		if ((rc = cli_call(c, "POST", "domains", body, &resp)) != 0)
			return rc;
		if (c->json)
			cli_print_json(resp);
		else
			printf("added %s\n", argv[1]);
	} else {
		return cli_usage();
	}
	json_decref(resp);
	return CLI_OK;
}

static int cli_policy(struct cli *c, int argc, char **argv)
{
	json_t *resp = NULL;
	char path[1024];
	int rc;

	if (argc != 4 || strcmp(argv[0], "set") != 0)
		return cli_usage();
	snprintf(path, sizeof(path), "domains/%s/policy/%s", argv[1], argv[2]);
	if ((rc = cli_call(c, "PUT", path, json_pack("{ss}", "value", argv[3]), &resp)) != 0)
		return rc;
	if (c->json)
		cli_print_json(resp);
	else
		printf("%s: %s = %s\n", argv[1], argv[2], argv[3]);
	json_decref(resp);
	return CLI_OK;
}

static char *cli_slurp(const char *file)
{
	FILE *f = fopen(file, "rb");
	char *text = NULL;
	size_t len = 0;

	if (f == NULL)
		return NULL;
	FILE *m = open_memstream(&text, &len);
	char chunk[65536];
	size_t n;

	while (m != NULL && (n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		fwrite(chunk, 1, n, m);
	if (m != NULL)
		fclose(m);
	fclose(f);
	return text;
}

static int cli_rules(struct cli *c, int argc, char **argv)
{
	int rc = CLI_OK;

	if (argc < 2 || strcmp(argv[0], "upload") != 0)
		return cli_usage();
	for (int i = 1; i < argc && rc == CLI_OK; i++) {
		const char *base = strrchr(argv[i], '/') ? strrchr(argv[i], '/') + 1 : argv[i];
		char *text = cli_slurp(argv[i]), path[512];
		json_t *resp = NULL;

		if (text == NULL) {
			fprintf(stderr, "sluicectl: %s: cannot read\n", argv[i]);
			return CLI_USAGE;
		}
		snprintf(path, sizeof(path), "rulesets/%s", base);
		rc = cli_call(c, "PUT", path, json_pack("{ss}", "text", text), &resp);
		free(text);
		if (rc == CLI_OK) {
			if (c->json)
				cli_print_json(resp);
			else
				printf("%s  %s\n", cli_str(resp, "sha256"), base);
		}
		json_decref(resp);
	}
	return rc;
}

static int cli_node_list(struct cli *c)
{
	json_t *resp = NULL, *n;
	size_t i;
	int rc;

	if ((rc = cli_call(c, "GET", "nodes", NULL, &resp)) != 0)
		return rc;
	if (c->json)
		cli_print_json(resp);
	else {
		printf("%-20s %-16s %-12s %-10s %s\n", "NODE", "SITE", "HEALTH", "APPLIED", "LAG");
		json_array_foreach(json_object_get(resp, "items"), i, n) {
			json_t *applied = json_object_get(n, "applied_version");
			json_t *lag = json_object_get(n, "lag");

			char lagtext[24] = "-";

			if (lag && !json_is_null(lag))
				snprintf(lagtext, sizeof(lagtext), "%lld",
					 (long long)json_integer_value(lag));
			printf("%-20s %-16s %-12s %-10lld %s\n", cli_str(n, "name"),
			       cli_str(n, "site"), cli_str(n, "health"),
			       applied ? (long long)json_integer_value(applied) : 0LL, lagtext);
		}
	}
	json_decref(resp);
	return CLI_OK;
}

/* A join token for node name, printed with what to run on the node. */
static int cli_node_token(struct cli *c, const char *name, long long ttl)
{
	json_t *body = json_object(), *resp = NULL;
	char path[512];
	int rc;

	if (ttl > 0)
		json_object_set_new(body, "ttl", json_integer(ttl));
	snprintf(path, sizeof(path), "nodes/%s/join-token", name);
	if ((rc = cli_call(c, "POST", path, body, &resp)) != 0)
		return rc;
	if (c->json)
		cli_print_json(resp);
	else
		printf("join token for %s (one use, until %lld):\n  %s\non the node:\n  sluice-node "
		       "--join %s --control HOST:PORT\n", name,
		       (long long)json_integer_value(json_object_get(resp, "expires")),
		       cli_str(resp, "token"), cli_str(resp, "token"));
	json_decref(resp);
	return CLI_OK;
}

/* node list | node add NAME --site S [--ttl SECONDS] | node token NAME [--ttl SECONDS] |
 * node remove NAME */
static int cli_node(struct cli *c, int argc, char **argv)
{
	const char *site = NULL;
	long long ttl = 0;
	json_t *resp = NULL;
	char path[512];
	int rc;

	if (argc == 1 && strcmp(argv[0], "list") == 0)
		return cli_node_list(c);
	if (argc < 2)
		return cli_usage();
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--site") == 0 && i + 1 < argc)
			site = argv[++i];
		else if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc)
			ttl = atoll(argv[++i]);
		else
			return cli_usage();
	}
	if (strcmp(argv[0], "add") == 0 && site != NULL) {
		rc = cli_call(c, "POST", "nodes", json_pack("{ssss}", "name", argv[1], "site", site),
			      &resp);
		json_decref(resp);
		if (rc == 0 && (rc = cli_node_token(c, argv[1], ttl)) != 0)
			fprintf(stderr, "sluicectl: %s is added without a join token: `sluicectl node "
				"token %s` makes one\n", argv[1], argv[1]);
		return rc;
	}
	if (strcmp(argv[0], "token") == 0 && site == NULL)
		return cli_node_token(c, argv[1], ttl);
	if (strcmp(argv[0], "remove") == 0 && site == NULL && ttl == 0) {
		snprintf(path, sizeof(path), "nodes/%s", argv[1]);
		if ((rc = cli_call(c, "DELETE", path, NULL, &resp)) != 0)
			return rc;
		json_decref(resp);
		if (!c->json)
			printf("removed %s; its certificate is revoked\n", argv[1]);
		return CLI_OK;
	}
	return cli_usage();
}

static int cli_user(struct cli *c, int argc, char **argv)
{
	json_t *body, *resp = NULL, *domains = json_array(), *addresses = json_array();
	const char *role = NULL;
	char password[1024] = "";
	int rc;

	if (argc < 2 || strcmp(argv[0], "add") != 0) {
		json_decref(domains);
		json_decref(addresses);
		return cli_usage();
	}
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--role") == 0 && i + 1 < argc)
			role = argv[++i];
		else if (strcmp(argv[i], "--domain") == 0 && i + 1 < argc)
			json_array_append_new(domains, json_string(argv[++i]));
		else if (strcmp(argv[i], "--address") == 0 && i + 1 < argc)
			json_array_append_new(addresses, json_string(argv[++i]));
		else if (strcmp(argv[i], "--password-stdin") == 0 &&
			 fgets(password, sizeof(password), stdin) != NULL)
			password[strcspn(password, "\r\n")] = '\0';
		else
			role = NULL, i = argc;
	}
	if (role == NULL) {
		json_decref(domains);
		json_decref(addresses);
		return cli_usage();
	}
	body = json_pack("{sssssoso}", "name", argv[1], "role", role, "domains", domains,
			 "addresses", addresses);
	if (password[0] != '\0')
		json_object_set_new(body, "password", json_string(password));
	memset(password, 0, sizeof(password));
	if ((rc = cli_call(c, "POST", "users", body, &resp)) != 0)
		return rc;
	if (c->json)
		cli_print_json(resp);
	else
		printf("added %s (%s)\n", argv[1], role);
	json_decref(resp);
	return CLI_OK;
}

static int cli_token(struct cli *c, int argc, char **argv)
{
	json_t *body = json_object(), *resp = NULL;
	int rc;

	if (argc < 1 || strcmp(argv[0], "create") != 0) {
		json_decref(body);
		return cli_usage();
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			json_object_set_new(body, "user", json_string(argv[++i]));
		else if (strcmp(argv[i], "--ttl") == 0 && i + 1 < argc)
			json_object_set_new(body, "ttl", json_integer(atoll(argv[++i])));
		else if (strcmp(argv[i], "--description") == 0 && i + 1 < argc)
			json_object_set_new(body, "description", json_string(argv[++i]));
		else {
			json_decref(body);
			return cli_usage();
		}
	}
	if ((rc = cli_call(c, "POST", "tokens", body, &resp)) != 0)
		return rc;
	if (c->json)
		cli_print_json(resp);
	else
		printf("%s\n", cli_str(resp, "token"));
	json_decref(resp);
	return CLI_OK;
}

static int cli_cluster(struct cli *c, int argc, char **argv)
{
	json_t *resp = NULL, *w;
	size_t i;
	int rc;

	if (argc == 1 && strcmp(argv[0], "init") == 0) {
		if ((rc = cli_call(c, "POST", "cluster/init", json_object(), &resp)) != 0)
			return rc;
		if (c->json)
			cli_print_json(resp);
		else
			printf("cluster CA made, SHA-256 fingerprint %s\n",
			       cli_str(resp, "ca_fingerprint"));
		json_decref(resp);
		return CLI_OK;
	}
	if (argc != 1 || strcmp(argv[0], "status") != 0)
		return cli_usage();
	if ((rc = cli_call(c, "GET", "cluster", NULL, &resp)) != 0)
		return rc;
	if (c->json)
		cli_print_json(resp);
	else {
		printf("version   %lld\nnodes     %lld\n",
		       (long long)json_integer_value(json_object_get(resp, "version")),
		       (long long)json_integer_value(json_object_get(resp, "nodes")));
		json_array_foreach(json_object_get(resp, "warnings"), i, w)
			printf("warning   %s\n", json_string_value(w));
	}
	json_decref(resp);
	return CLI_OK;
}

static const struct {
	const char *name;
	cli_cmd_fn *fn;
} cli_cmds[] = {
	{ "domain", cli_domain }, { "policy", cli_policy }, { "rules", cli_rules },
	{ "node", cli_node }, { "user", cli_user }, { "token", cli_token },
	{ "cluster", cli_cluster },
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "control", required_argument, NULL, 'c' },
		{ "token", required_argument, NULL, 't' },
		{ "ca", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli c = { .http = { .url = getenv("SLUICE_CONTROL"), .token = getenv("SLUICE_TOKEN") } };
	int o, rc;

	while ((o = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		switch (o) {
		case 'c': c.http.url = optarg; break;
		case 't': c.http.token = optarg; break;
		case 'a': c.http.ca = optarg; break;
		case 'j': c.json = true; break;
		default: return cli_usage();
		}
	}
	if (c.http.url == NULL)
		c.http.url = "https://127.0.0.1:8443";
	if (optind >= argc)
		return cli_usage();
	for (size_t i = 0; i < sizeof(cli_cmds) / sizeof(cli_cmds[0]); i++) {
		if (strcmp(argv[optind], cli_cmds[i].name) != 0)
			continue;
		if (cli_http_init(&c.http) < 0)
			return CLI_HTTP_UNREACHABLE;
		rc = cli_cmds[i].fn(&c, argc - optind - 1, argv + optind + 1);
		cli_http_cleanup(&c.http);
		return rc;
	}
	return cli_usage();
}
