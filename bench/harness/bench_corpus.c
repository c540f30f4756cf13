/*
 * bench_corpus.c - loads the dev corpus (see bench_corpus.h). Start-up code, not a hot path:
 * plain stdio, one malloc per message.
 */
#include "bench_corpus.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef BENCH_CORPUS_DEFAULT
#define BENCH_CORPUS_DEFAULT "../shared/corpus/sa-dev.tar.gz"
#endif

static int read_file(const char *path, uint8_t **data_r, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	struct stat sb;
	uint8_t *p;

	if (f == NULL)
		return -errno;
	if (fstat(fileno(f), &sb) < 0 || (p = malloc((size_t)sb.st_size + 1)) == NULL) {
		fclose(f);
		return -ENOMEM;
	}
	if (fread(p, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
		free(p);
		fclose(f);
		return -EIO;
	}
	fclose(f);
	p[sb.st_size] = 0;
	*data_r = p;
	*len_r = (size_t)sb.st_size;
	return 0;
}

static bool ends_with(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && strcmp(s + n - m, suf) == 0;
}

/* Unpacks the archive once into $TMPDIR/sluice-corpus-<uid>-<size>-<mtime>; returns that dir. */
static int unpack(const char *tgz, char *dir, size_t dirlen)
{
	struct stat sb;
	const char *tmp = getenv("TMPDIR");
	char manifest[4200], cmd[32768], part[4200];

	if (stat(tgz, &sb) < 0)
		return -errno;
	snprintf(dir, dirlen, "%s/sluice-corpus-%u-%lld-%lld", tmp && *tmp ? tmp : "/tmp",
		 (unsigned)getuid(), (long long)sb.st_size, (long long)sb.st_mtime);
	snprintf(manifest, sizeof(manifest), "%s/MANIFEST.tsv", dir);
	if (access(manifest, R_OK) == 0)
		return 0;
	/* Unpack beside and rename, so a concurrent or interrupted run never sees half a tree. */
	snprintf(part, sizeof(part), "%s.part.%d", dir, (int)getpid());
	snprintf(cmd, sizeof(cmd), "mkdir -p '%s' && tar -xzf '%s' -C '%s' && mv -T '%s' '%s' 2>/dev/null"
		 " || { test -f '%s/MANIFEST.tsv'; r=$?; rm -rf '%s'; exit $r; }",
		 part, tgz, part, part, dir, dir, part);
	int st = system(cmd);
	if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return -EIO;
	return 0;
}

int bench_corpus_load(struct bench_corpus **c_r, const char *src, size_t limit)
{
	char dir[4096], path[8400];
	struct bench_corpus *c;
	struct stat sb;
	FILE *man;
	char line[4096];
	int err;

	*c_r = NULL;
	if (src == NULL || *src == 0)
		src = getenv("SLUICE_BENCH_CORPUS");
	if (src == NULL || *src == 0) {
		/* Beside the source tree (the team's layout), else where this workplace keeps it. */
		src = BENCH_CORPUS_DEFAULT;
		if (access(src, R_OK) != 0)
			src = "/work/shared/corpus/sa-dev.tar.gz";
	}
	if (limit == 0 && getenv("SLUICE_BENCH_CORPUS_LIMIT") != NULL)
		limit = strtoul(getenv("SLUICE_BENCH_CORPUS_LIMIT"), NULL, 10);
	if (stat(src, &sb) < 0)
		return -ENOENT;
	if (S_ISDIR(sb.st_mode)) {
		snprintf(dir, sizeof(dir), "%s", src);
	} else if (ends_with(src, ".tar.gz") || ends_with(src, ".tgz")) {
		if ((err = unpack(src, dir, sizeof(dir))) < 0)
			return err;
	} else {
		return -EINVAL;
	}
	snprintf(path, sizeof(path), "%s/MANIFEST.tsv", dir);
	if ((man = fopen(path, "r")) == NULL)
		return -EINVAL;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		fclose(man);
		return -ENOMEM;
	}
	c->source = strdup(src);
	size_t cap = 0;
	err = 0;
	while (fgets(line, sizeof(line), man) != NULL) {
		char *label = strtok(line, "\t\n"), *rel = strtok(NULL, "\t\n");
		uint8_t *data = NULL;
		size_t len = 0;

		if (label == NULL || rel == NULL || strcmp(label, "label") == 0)
			continue;
		if (limit && c->n >= limit)
			break;
		snprintf(path, sizeof(path), "%s/%s", dir, rel);
		if ((err = read_file(path, &data, &len)) < 0) {
			err = -EINVAL;
			break;
		}
		if (c->n == cap) {
			cap = cap ? cap * 2 : 1024;
			void *np = realloc(c->msgs, cap * sizeof(*c->msgs));
			if (np == NULL) {
				free(data);
				err = -ENOMEM;
				break;
			}
			c->msgs = np;
		}
		size_t skip = 0;
		if (len >= 5 && memcmp(data, "From ", 5) == 0) {
			const uint8_t *nl = memchr(data, '\n', len);
			skip = nl ? (size_t)(nl - data) + 1 : len;
		}
		c->msgs[c->n].data = data + skip;
		c->msgs[c->n].len = len - skip;
		c->msgs[c->n].spam = strcmp(label, "spam") == 0;
		c->msgs[c->n].alloc = data;
		c->bytes += len - skip;
		c->n++;
	}
	fclose(man);
	if (err == 0 && c->n == 0)
		err = -EINVAL;
	if (err < 0) {
		bench_corpus_free(&c);
		return err;
	}
	*c_r = c;
	return 0;
}

void bench_corpus_free(struct bench_corpus **cp)
{
	struct bench_corpus *c = *cp;

	if (c == NULL)
		return;
	for (size_t i = 0; i < c->n; i++) {
		free(c->msgs[i].alloc);
	}
	free(c->msgs);
	free(c->source);
	free(c);
	*cp = NULL;
}

static pthread_once_t shared_once = PTHREAD_ONCE_INIT;
static struct bench_corpus *shared_corpus;
static char shared_why[256];

static void shared_load(void)
{
	int err = bench_corpus_load(&shared_corpus, NULL, 0);

	if (err < 0)
		snprintf(shared_why, sizeof(shared_why),
			 "no corpus (%s; set SLUICE_BENCH_CORPUS): %s",
			 getenv("SLUICE_BENCH_CORPUS") ? getenv("SLUICE_BENCH_CORPUS")
						       : BENCH_CORPUS_DEFAULT, strerror(-err));
}

const struct bench_corpus *bench_corpus_shared(const char **why_r)
{
	pthread_once(&shared_once, shared_load);
	if (why_r != NULL)
		*why_r = shared_why;
	return shared_corpus;
}

uint8_t *bench_corpus_wire(const struct bench_corpus_msg *m, bool stuff, bool with_end,
			   size_t *len_r)
{
	/* At most twice the input (a bare byte becomes two), plus the end of data. */
	uint8_t *w = malloc(m->len * 2 + 8);
	const uint8_t *in = m->data;
	size_t n = 0, i = 0;

	if (w == NULL)
		return NULL;
	while (i < m->len) {
		size_t s = i;
		while (i < m->len && in[i] != '\n' && in[i] != '\r')
			i++;
		size_t e = i;
		if (i < m->len && in[i] == '\r')
			i++;
		if (i < m->len && in[i] == '\n')
			i++;
		if (stuff && e > s && in[s] == '.')
			w[n++] = '.';
		memcpy(w + n, in + s, e - s);
		n += e - s;
		w[n++] = '\r';
		w[n++] = '\n';
	}
	if (with_end) {
		memcpy(w + n, ".\r\n", 3);
		n += 3;
	}
	*len_r = n;
	return w;
}
