/*
 * eval_sa.c - see eval_sa.h.
 */
#include "eval_sa.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "rules_compile.h"
#include "rules_parse.h"

char *eval_sa_read(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *b;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = n >= 0 ? malloc((size_t)n + 1) : NULL;
	if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
		free(b);
		b = NULL;
	}
	fclose(f);
	if (b) {
		b[n] = '\0';
		*len_r = (size_t)n;
	}
	return b;
}

int eval_sa_setup(struct eval_sa *e, const char *set, const char *cf)
{
	const char *root = getenv("SLUICE_SOURCE_ROOT");
	struct rules_set *rs;
	struct rules_compile_opts o = { 0 };
	struct rules_compile_stats st;
	char err[256] = "", path[600];
	size_t len;
	char *text;
	int rc;

	snprintf(e->data, sizeof(e->data), "%s/tests/unit/data/%s", root ? root : ".", set);
	snprintf(path, sizeof(path), "%s/%s", e->data, cf);
	text = eval_sa_read(path, &len);
	if (!text) {
		fprintf(stderr, "%s: cannot read\n", path);
		return -1;
	}
	snprintf(e->dir, sizeof(e->dir), "/tmp/test_eval_XXXXXX");
	if (!mkdtemp(e->dir) || rules_parse_new(&rs) < 0) {
		free(text);
		return -1;
	}
	rc = rules_parse_text(rs, cf, text, len);
	if (rc == 0)
		rc = rules_parse_finish(rs);
	if (rc == 0 && rs->st.errors)
		rc = -EINVAL;
	if (rc == 0)
		rc = rules_compile_dir(rs, e->dir, &o, &st, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "compile %s: %s\n", path, err);
	rules_parse_free(&rs);
	free(text);
	return rc < 0 ? -1 : 0;
}

int eval_sa_teardown(struct eval_sa *e)
{
	static const char *const files[] = RULES_CLASS_FILES;
	char p[256];

	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++) {
		snprintf(p, sizeof(p), "%s/%s", e->dir, files[c]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/%s", e->dir, RULES_META_FILE);
	unlink(p);
	rmdir(e->dir);
	return 0;
}

char *eval_sa_crlf(const char *s, size_t n, size_t *len_r)
{
	char *o = malloc(n * 2 + 1);
	size_t k = 0;

	assert_non_null(o);
	for (size_t i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			o[k++] = '\r';
		o[k++] = s[i];
	}
	*len_r = k;
	return o;
}

static int eval_sa_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void eval_sa_scan(struct filter_shard *fs, const char *m, size_t len, unsigned how,
		  const struct filter_envelope *env, const char *prefix, char *out, size_t outlen)
{
	struct filter_msg *fm = NULL;
	struct filter_verdict v;
	char *names[256], *save = NULL;
	size_t off = 0, n = 0, o = 0;

	assert_int_equal(filter_msg_begin(fs, &fm), 0);
	if (env)
		filter_msg_set_envelope(fm, env);
	srand(how);
	while (off < len) {
		size_t k = how == 0 ? len : how == 1 ? 1 : 1 + (size_t)rand() % 61;

		if (k > len - off)
			k = len - off;
		filter_msg_feed(fm, (const uint8_t *)m + off, k);
		off += k;
	}
	filter_msg_end(fm, &v);
	filter_msg_free(&fm);
	assert_null(strstr(v.hits, "..."));   /* a cut list would compare wrong */
	for (char *t = strtok_r(v.hits, ",", &save); t && n < 256; t = strtok_r(NULL, ",", &save))
		if (!prefix || strncmp(t, prefix, strlen(prefix)) == 0)
			names[n++] = t;
	qsort(names, n, sizeof(names[0]), eval_sa_cmp);
	out[0] = '\0';
	for (size_t i = 0; i < n && o < outlen; i++)
		o += (size_t)snprintf(out + o, outlen - o, "%s%s", i ? "," : "", names[i]);
}

unsigned eval_sa_check(const struct eval_sa *e, unsigned hows, bool lf, const char *prefix,
		       unsigned *n_r)
{
	struct filter_db *db = NULL;
	struct filter_shard *fs = NULL;
	char err[256], path[3000], line[2048], got[FILTER_HITS_MAX];
	unsigned n = 0, bad = 0;
	FILE *tsv;

	assert_int_equal(filter_db_load(e->dir, &db, err, sizeof(err)), 0);
	assert_int_equal(filter_shard_new(&fs, db), 0);
	snprintf(path, sizeof(path), "%s/spamassassin.tsv", e->data);
	tsv = fopen(path, "r");
	assert_non_null(tsv);
	while (fgets(line, sizeof(line), tsv)) {
		char *tab = strchr(line, '\t'), *want, *raw, *m;
		size_t rl, ml;

		if (!tab)
			continue;
		*tab = '\0';
		want = tab + 1;
		want[strcspn(want, "\r\n")] = '\0';
		snprintf(path, sizeof(path), "%s/%s", e->data, line);
		raw = eval_sa_read(path, &rl);
		assert_non_null(raw);
		m = eval_sa_crlf(raw, rl, &ml);
		for (unsigned how = 0; how < hows + (lf ? 1 : 0); how++) {
			bool as_lf = how == hows;

			eval_sa_scan(fs, as_lf ? raw : m, as_lf ? rl : ml, as_lf ? 0 : how, NULL, prefix,
				     got, sizeof(got));
			if (strcmp(got, want) != 0) {
				fprintf(stderr, "%s (%s %u): Sluice %s, SpamAssassin %s\n", line,
					as_lf ? "LF" : "CR LF, way", how, got, want);
				bad++;
				break;
			}
		}
		free(m);
		free(raw);
		n++;
	}
	fclose(tsv);
	filter_shard_free(&fs);
	filter_db_unref(&db);
	*n_r = n;
	return bad;
}
