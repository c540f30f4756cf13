/*
 * rules_update.c - `sluice-rules update`: recompiles SpamAssassin's rule set as SpamAssassin
 * itself would load it now (after `sa-update`, or after a package upgrade), writes the new
 * databases beside the old ones, and tells a running node to reload.
 *
 *   sluice-rules update -o DIR [--reload PIDFILE] [--state DIR] [--rules DIR] [--site DIR]
 *                       [--add FILE]... [-s SET] [--if-changed]
 *
 * The files, in SpamAssassin's order (Mail::SpamAssassin::read_pre/read_cf):
 *   1. the site's .pre files (--site, default /etc/spamassassin), sorted by name;
 *   2. the rules: the newest version directory of sa-update's state (--state, default
 *      /var/lib/spamassassin: VERSION/CHANNEL.cf, which `include`s the files in CHANNEL/) when there is
 *      one, else the distribution's rules (--rules, default /usr/share/spamassassin): its .pre
 *      files, then its .cf files, sorted;
 *   3. the site's .cf files (local.cf and the rest), sorted;
 *   4. the add-on files (--add: Sluice's own set, the .cf files of patterns/rules/), last, so
 *      that they only add to SpamAssassin's rules.
 * Then `sluice-rules compile -o DIR` runs on that list (the same process image, as a child):
 * the compile writes DIR.new and swaps it in, so a failed compile leaves DIR as it was. With
 * --reload, the node whose pid file is given gets SIGHUP once the new DIR is in place; its
 * reload loads and checks it, and keeps its old rules if it refuses them. No pid file means no
 * node is running: nothing to signal, not an error (it loads DIR when it starts).
 *
 * A compile that succeeds leaves DIR/SOURCE: a hash of what went into it (the files in order,
 * their text, every file under sa-update's version directory, which the channel files include,
 * the score set and the sluice-rules executable itself). With --if-changed, nothing is done
 * (no compile, no reload) when DIR/SOURCE already holds that hash: the node's unit runs it at
 * every start, and the daily timer after sa-update.
 *
 * Exit status: 0, 1 (compile failed or the node could not be signalled), 2 usage.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include "rules_update.h"

#define RULES_UPDATE_MAX_FILES 4096

struct rules_update_list {
	char  *v[RULES_UPDATE_MAX_FILES];
	size_t n;
};

static int rules_update_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds dir's regular files ending in suffix, sorted by name. Returns how many, or -errno. */
static int rules_update_add_dir(struct rules_update_list *l, const char *dir, const char *suffix)
{
	size_t sl = strlen(suffix), first = l->n;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (d == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		size_t nl = strlen(de->d_name);
		char path[4096];
		struct stat st;

		if (nl <= sl || strcmp(de->d_name + nl - sl, suffix) != 0 || de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		if (l->n == RULES_UPDATE_MAX_FILES) {
			closedir(d);
			return -E2BIG;
		}
		l->v[l->n] = strdup(path);
		if (l->v[l->n] == NULL) {
			closedir(d);
			return -ENOMEM;
		}
		l->n++;
	}
	closedir(d);
	qsort(l->v + first, l->n - first, sizeof(l->v[0]), rules_update_strcmp);
	return (int)(l->n - first);
}

/* The newest sa-update version directory under state ("4.000001", ...) holding a .cf file, into
 * out; false when there is none. */
static bool rules_update_state_dir(const char *state, char *out, size_t outlen)
{
	struct dirent *de;
	double best = -1;
	DIR *d = opendir(state);

	if (d == NULL)
		return false;
	while ((de = readdir(d)) != NULL) {
		char path[4096], *end;
		double v = strtod(de->d_name, &end);
		struct rules_update_list probe = { .n = 0 };
		int n;

		if (end == de->d_name || *end != '\0' || v <= best)
			continue;
		snprintf(path, sizeof(path), "%s/%s", state, de->d_name);
		n = rules_update_add_dir(&probe, path, ".cf");
		for (size_t i = 0; i < probe.n; i++)
			free(probe.v[i]);
		if (n > 0) {
			best = v;
			snprintf(out, outlen, "%s", path);
		}
	}
	closedir(d);
	return best >= 0;
}

/* Adds path's bytes to h; -errno when it cannot be read. */
static int rules_update_hash_file(XXH3_state_t *h, const char *path)
{
	char buf[65536];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		return -errno;
	(void)XXH3_128bits_update(h, path, strlen(path) + 1);
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		(void)XXH3_128bits_update(h, buf, n);
	fclose(f);
	return 0;
}

/* Adds every regular file under dir (sorted, recursively: sa-update's channel directories). */
static int rules_update_hash_tree(XXH3_state_t *h, const char *dir, int depth)
{
	struct dirent **de;
	int n = scandir(dir, &de, NULL, alphasort), r = 0;

	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		char path[4096];
		struct stat st;

		if (r == 0 && de[i]->d_name[0] != '.') {
			snprintf(path, sizeof(path), "%s/%s", dir, de[i]->d_name);
			if (stat(path, &st) < 0)
				;   /* gone since the listing: nothing to hash */
			else if (S_ISDIR(st.st_mode) && depth < 4)
				r = rules_update_hash_tree(h, path, depth + 1);
			else if (S_ISREG(st.st_mode))
				r = rules_update_hash_file(h, path);
		}
		free(de[i]);
	}
	free(de);
	return r;
}

/* The source hash of this update, as 32 hex digits into out[33]. */
static int rules_update_source(const struct rules_update_list *l, const char *statedir, const char *set,
			       const char *self, char out[33])
{
	XXH3_state_t *h = XXH3_createState();
	XXH128_hash_t d;
	int r;

	if (h == NULL)
		return -ENOMEM;
	(void)XXH3_128bits_reset(h);
	(void)XXH3_128bits_update(h, set ? set : "0", strlen(set ? set : "0") + 1);
	r = rules_update_hash_file(h, self);
	for (size_t i = 0; r == 0 && i < l->n; i++)
		r = rules_update_hash_file(h, l->v[i]);
	if (r == 0 && statedir != NULL)
		r = rules_update_hash_tree(h, statedir, 0);
	d = XXH3_128bits_digest(h);
	XXH3_freeState(h);
	snprintf(out, 33, "%016llx%016llx", (unsigned long long)d.high64, (unsigned long long)d.low64);
	return r;
}

/* Does dir/SOURCE hold src? */
static bool rules_update_same_source(const char *dir, const char *src)
{
	char path[4096], have[64] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/SOURCE", dir);
	f = fopen(path, "r");
	if (f == NULL)
		return false;
	if (fgets(have, sizeof(have), f) == NULL)
		have[0] = '\0';
	fclose(f);
	have[strcspn(have, "\n")] = '\0';
	return strcmp(have, src) == 0;
}

/* Writes dir/SOURCE (through a temporary file and rename). */
static int rules_update_write_source(const char *dir, const char *src)
{
	char path[4096], tmp[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/SOURCE", dir);
	snprintf(tmp, sizeof(tmp), "%s/SOURCE.tmp", dir);
	f = fopen(tmp, "w");
	if (f == NULL)
		return -errno;
	fprintf(f, "%s\n", src);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		int e = errno;

		fclose(f);
		unlink(tmp);
		return -e;
	}
	fclose(f);
	return rename(tmp, path) < 0 ? -errno : 0;
}

static void rules_update_usage(void)
{
	fprintf(stderr, "usage: sluice-rules update -o DIR [--reload PIDFILE] [--state DIR] "
			"[--rules DIR] [--site DIR] [--add FILE]... [-s SET] [--if-changed]\n");
	exit(2);
}

int rules_update_main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reload", required_argument, NULL, 'r' },
		{ "state", required_argument, NULL, 'S' },
		{ "rules", required_argument, NULL, 'R' },
		{ "site", required_argument, NULL, 'T' },
		{ "add", required_argument, NULL, 'a' },
		{ "if-changed", no_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL, *pidfile = NULL, *state = "/var/lib/spamassassin";
	const char *rules = "/usr/share/spamassassin", *site = "/etc/spamassassin", *set = NULL;
	const char *adds[64];
	size_t nadd = 0;
	struct rules_update_list l = { .n = 0 };
	char statedir[4096], self[4096], src[33];
	bool have_state, if_changed = false;
	char **args;
	size_t na = 0;
	pid_t child;
	int c, status, rc = 0;
	ssize_t sn;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:s:", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 's': set = optarg; break;
		case 'r': pidfile = optarg; break;
		case 'S': state = optarg; break;
		case 'R': rules = optarg; break;
		case 'T': site = optarg; break;
		case 'i': if_changed = true; break;
		case 'a':
			if (nadd == sizeof(adds) / sizeof(adds[0]))
				rules_update_usage();
			adds[nadd++] = optarg;
			break;
		default: rules_update_usage();
		}
	}
	if (out == NULL || optind != argc)
		rules_update_usage();

	(void)rules_update_add_dir(&l, site, ".pre");     /* a site without .pre files is fine */
	have_state = rules_update_state_dir(state, statedir, sizeof(statedir));
	if (have_state) {
		printf("rules: %s (sa-update)\n", statedir);
		(void)rules_update_add_dir(&l, statedir, ".pre");
		if (rules_update_add_dir(&l, statedir, ".cf") <= 0)
			rc = 1;
	} else {
		int n;

		printf("rules: %s (no sa-update rules under %s)\n", rules, state);
		(void)rules_update_add_dir(&l, rules, ".pre");
		n = rules_update_add_dir(&l, rules, ".cf");
		if (n <= 0) {
			fprintf(stderr, "sluice-rules: update: no rule files in %s: %s\n", rules,
				n < 0 ? strerror(-n) : "none");
			rc = 1;
		}
	}
	(void)rules_update_add_dir(&l, site, ".cf");
	for (size_t i = 0; i < nadd && l.n < RULES_UPDATE_MAX_FILES; i++)
		l.v[l.n++] = strdup(adds[i]);
	if (rc != 0)
		goto done;

	/* sluice-rules compile [-s SET] -o DIR FILE... in a child: the compiler as it is. */
	sn = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (sn < 0) {
		fprintf(stderr, "sluice-rules: update: /proc/self/exe: %s\n", strerror(errno));
		rc = 1;
		goto done;
	}
	self[sn] = '\0';
	if (rules_update_source(&l, have_state ? statedir : NULL, set, self, src) < 0) {
		fprintf(stderr, "sluice-rules: update: cannot read the rule files: %s\n", strerror(errno));
		rc = 1;
		goto done;
	}
	if (if_changed && rules_update_same_source(out, src)) {
		printf("rules: unchanged, %s is up to date (source %s)\n", out, src);
		goto done;
	}
	args = calloc(l.n + 8, sizeof(*args));
	if (args == NULL) {
		rc = 1;
		goto done;
	}
	args[na++] = "sluice-rules";
	args[na++] = "compile";
	if (set != NULL) {
		args[na++] = "-s";
		args[na++] = (char *)set;
	}
	args[na++] = "-o";
	args[na++] = (char *)out;
	for (size_t i = 0; i < l.n; i++)
		args[na++] = l.v[i];
	args[na] = NULL;
	fflush(stdout);
	child = fork();
	if (child == 0) {
		execv(self, args);
		_exit(127);
	}
	free(args);
	if (child < 0 || waitpid(child, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0) {
		fprintf(stderr, "sluice-rules: update: the compile failed; %s is as it was\n", out);
		rc = 1;
		goto done;
	}
	if (rules_update_write_source(out, src) < 0)   /* only costs a recompile next time */
		fprintf(stderr, "sluice-rules: update: %s/SOURCE: %s\n", out, strerror(errno));
	if (pidfile != NULL) {
		FILE *f = fopen(pidfile, "r");
		long pid = 0;

		if (f == NULL && errno == ENOENT) {
			/* no node running: it loads the new rules when it starts */
			printf("reload: no %s: no node running, nothing to reload\n", pidfile);
		} else if (f == NULL || fscanf(f, "%ld", &pid) != 1 || pid <= 1) {
			fprintf(stderr, "sluice-rules: update: %s: no pid to signal\n", pidfile);
			rc = 1;
		} else if (kill((pid_t)pid, SIGHUP) < 0) {
			fprintf(stderr, "sluice-rules: update: SIGHUP to %ld: %s\n", pid, strerror(errno));
			rc = 1;
		} else {
			printf("reload: SIGHUP sent to sluice-node (pid %ld)\n", pid);
		}
		if (f != NULL)
			fclose(f);
	}
done:
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i]);
	return rc;
}
