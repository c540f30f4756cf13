/*
 * bench_filter.c - the content scanner (dataplane/filter/filter.h): Hyperscan streams per rule
 * class, metas and the verdict, over the corpus, one message after another on one shard's
 * scratch. "Per class": each shipped rule file is compiled on its own (header, body, uri), so a
 * run prices one class's scanning (plus the MIME parse every class needs); "all" is the whole
 * shipped set. The rule sets are compiled once per process with sluice-rules (off the timed
 * path) into a temporary directory. Items are messages.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "bench_corpus.h"
#include "filter/filter.h"

#ifndef BENCH_SLUICE_RULES
#define BENCH_SLUICE_RULES "sluice-rules"
#endif
#ifndef BENCH_RULES_DIR
#define BENCH_RULES_DIR "patterns/rules"
#endif

struct ruleset {
	const char *name;
	const char *files;   /* space-separated, relative to BENCH_RULES_DIR */
	char        dir[512];
	bool        tried;
	int         err;
};

static struct ruleset sets[] = {
	{ .name = "header", .files = "10_sluice_headers.cf" },
	{ .name = "body",   .files = "20_sluice_body.cf" },
	{ .name = "all",    .files = "10_sluice_headers.cf 20_sluice_body.cf 50_sluice_meta.cf" },
};

static int compile_set(struct ruleset *rs)
{
	const char *t = getenv("TMPDIR");
	char cmd[4096], files[1024] = "", tmp[600];

	if (rs->tried)
		return rs->err;
	rs->tried = true;
	snprintf(rs->dir, sizeof(rs->dir), "%s/sluice-bench-rules.XXXXXX", t && *t ? t : "/tmp");
	if (mkdtemp(rs->dir) == NULL)
		return rs->err = -1;
	snprintf(tmp, sizeof(tmp), "%s", rs->files);
	for (char *save = NULL, *f = strtok_r(tmp, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
		strncat(files, " '" BENCH_RULES_DIR "/", sizeof(files) - strlen(files) - 1);
		strncat(files, f, sizeof(files) - strlen(files) - 1);
		strncat(files, "'", sizeof(files) - strlen(files) - 1);
	}
	snprintf(cmd, sizeof(cmd), "'%s' compile -o '%s/db' %s >/dev/null", BENCH_SLUICE_RULES,
		 rs->dir, files);
	int st = system(cmd);
	rs->err = st == 0 ? 0 : -1;
	strncat(rs->dir, "/db", sizeof(rs->dir) - strlen(rs->dir) - 1);
	return rs->err;
}

static void bm_filter(struct bench_state *st, void *arg)
{
	struct ruleset *rs = arg;
	const char *why;
	const struct bench_corpus *c = bench_corpus_shared(&why);
	struct filter_db *db = NULL;
	struct filter_shard *fs = NULL;
	char err[256];
	uint8_t **msg;
	size_t *len;
	uint64_t msgs = 0, bytes = 0, spam_hit = 0, spam_total = 0, ham_hit = 0;

	if (c == NULL) {
		bench_skip_error(st, why);
		return;
	}
	if (compile_set(rs) < 0) {
		bench_skip_error(st, "sluice-rules compile failed");
		return;
	}
	if (filter_db_load(rs->dir, &db, err, sizeof(err)) < 0 || filter_shard_new(&fs, db) < 0) {
		bench_skip_error(st, err);
		filter_db_unref(&db);
		return;
	}
	msg = calloc(c->n, sizeof(*msg));
	len = calloc(c->n, sizeof(*len));
	for (size_t i = 0; i < c->n; i++)
		msg[i] = bench_corpus_wire(&c->msgs[i], false, false, &len[i]);
	while (bench_keep_running(st)) {
		for (size_t i = 0; i < c->n; i++) {
			struct filter_msg *fm;
			struct filter_verdict v;

			if (filter_msg_begin(fs, &fm) < 0) {
				bench_skip_error(st, "filter_msg_begin: ENOMEM");
				goto out;
			}
			for (size_t off = 0; off < len[i]; off += 16384)
				filter_msg_feed(fm, msg[i] + off, len[i] - off < 16384 ? len[i] - off : 16384);
			filter_msg_end(fm, &v);
			filter_msg_free(&fm);
			bool spam = filter_verdict_is_spam(&v) || v.nhits > 0;
			if (c->msgs[i].spam) {
				spam_total++;
				spam_hit += spam;
			} else {
				ham_hit += spam;
			}
			bytes += len[i];
			msgs++;
		}
	}
	bench_set_bytes(st, (int64_t)bytes);
	bench_set_items(st, (int64_t)msgs);
	bench_counter(st, "rules", (double)filter_db_nrules(db), 0);
	/* Share of messages with at least one scored hit: shows the class did match something. */
	bench_counter(st, "spam_hit_frac", spam_total ? (double)spam_hit / (double)spam_total : 0, 0);
	bench_counter(st, "ham_hit_frac", msgs > spam_total ? (double)ham_hit / (double)(msgs - spam_total) : 0, 0);
out:
	for (size_t i = 0; i < c->n; i++)
		free(msg[i]);
	free(msg);
	free(len);
	filter_shard_free(&fs);
	filter_db_unref(&db);
}

BENCH_INIT(filter)
{
	for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++) {
		char name[64];
		snprintf(name, sizeof(name), "filter/%s", sets[i].name);
		bench_unit(bench_register(name, bm_filter, &sets[i]), BENCH_MS);
	}
}
