/*
 * fuzz_config.c - libFuzzer target for the node's configuration loader (conf/conf.c over
 * inih): every section and key, the value parsers (sizes, durations, addresses, routes, policy
 * lists and thresholds) and the whole-file checks (duplicates, listeners, thresholds in order,
 * postmaster).
 *
 * The input is the file, loaded from disk and from a buffer (node_config_load_buffer, as the
 * cluster will hand it over): both must agree, word for word on a refusal. Checks: the loader
 * never crashes or leaks (ASan/LSan); a refused file
 * gets a message that starts with the file's name (and, when it names a line, "FILE:LINE: "),
 * so an operator is always told where; a loaded file gives a snapshot that holds what the
 * loader promises (at least one listener, each with an address; domains sorted, lower case and
 * unique; thresholds in order are the policy's business and are checked by its own tests).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/log.h"
#include "conf/node_config.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "check failed: %s\n", #c); abort(); } } while (0)

static char fuzz_path[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	int fd;

	(void)argc; (void)argv;
	snprintf(fuzz_path, sizeof(fuzz_path), "/tmp/sluice-fuzz-config-XXXXXX");
	fd = mkstemp(fuzz_path);
	if (fd < 0)
		abort();
	close(fd);
	log_set_level(LOG_ERROR);   /* the loader's warnings (no domain, ...) are expected here */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct node_config *c = NULL;
	char err[1024] = "";
	size_t plen = strlen(fuzz_path);
	FILE *f = fopen(fuzz_path, "w");

	if (f == NULL)
		abort();
	if (size > 0 && fwrite(data, 1, size, f) != size)
		abort();
	fclose(f);

	struct node_config *b = NULL;
	char berr[1024] = "";
	int rf = node_config_load(fuzz_path, &c, err, sizeof(err));
	int rb = node_config_load_buffer(fuzz_path, (const char *)data, size, &b, berr, sizeof(berr));

	/* the buffer path, under the same name: the same verdict in the same words (a NUL byte
	 * ends the file's reader early and is refused by the buffer's: not compared) */
	if (memchr(data, '\0', size) == NULL) {
		CHECK((rb < 0) == (rf < 0));
		CHECK(rf >= 0 || strcmp(err, berr) == 0);
		CHECK(rf < 0 || (b->nlisten == c->nlisten && b->ndomains == c->ndomains));
	} else {
		CHECK(rb < 0 && b == NULL && strncmp(berr, fuzz_path, plen) == 0);
	}
	node_config_unref(&b);
	if (rf < 0) {
		CHECK(c == NULL);
		/* Where: the file, then a line number or a colon. */
		CHECK(strncmp(err, fuzz_path, plen) == 0);
		CHECK(err[plen] == ':');
		if (isdigit((unsigned char)err[plen + 1])) {
			size_t i = plen + 1;

			while (isdigit((unsigned char)err[i]))
				i++;
			CHECK(err[i] == ':');
		}
		return 0;
	}
	CHECK(c != NULL);
	CHECK(c->nlisten >= 1);
	for (unsigned i = 0; i < c->nlisten; i++)
		CHECK(c->listen[i].addrlen != 0 && c->listen[i].role <= LISTEN_ROLE_FALLBACK);
	for (unsigned i = 0; i < c->ndomains; i++) {
		const char *n = c->domains[i].name;

		for (const char *p = n; *p; p++)
			CHECK(!isupper((unsigned char)*p));
		if (i > 0)
			CHECK(strcmp(c->domains[i - 1].name, n) < 0);
		CHECK(node_config_domain(c, (struct slice){ n, strlen(n) }) == &c->domains[i]);
	}
	node_config_unref(&c);
	CHECK(c == NULL);
	return 0;
}
