/*
 * rules_main.c - sluice-rules: check, compile and test rule sets.
 *
 *   sluice-rules check   [-s SET] FILE...            parse, classify every rule, report
 *   sluice-rules compile [-s SET] -o DIR FILE...     write a compiled rule-set directory
 *   sluice-rules test --db DIR --corpus DIR|MANIFEST.tsv [--results FILE] [--threshold X]
 *                     [--limit N] [--mail-from ADDR [--helo NAME]] [--profile]
 *                                                    score a labelled corpus with the data
 *                                                    plane's scanner, print the confusion
 *                                                    matrix and per-message timing
 *   sluice-rules diff A.tsv B.tsv                    per message, the rules one engine fired
 *                                                    and the other did not (rules_diff.c)
 * Files are read in the order given (give SpamAssassin's .pre files first, as it reads them
 * first, so ifplugin blocks see the plugins they load). SET is the score set (0: no Bayes, no
 * network tests; the default). Exit status: 0 ok, 1 rule errors or a failed compile, 2 usage.
 *
 * What `check` (and `compile`) count as errors, each reported as FILE:LINE: error: ...: a line
 * the parser refuses, a directive SpamAssassin does not know outside an if/ifplugin block (its
 * lint says "failed to parse line"; a warning once a third-party plugin is loaded), a meta
 * naming a rule defined nowhere in the files given (one defined only inside a skipped ifplugin
 * block is fine: it reads 0, as in SpamAssassin without that plugin), and a pattern that is not
 * one (bad delimiters or flags) or that has a PCRE2 syntax error. Warnings (FILE:LINE: warning:
 * ...) do not change the exit status: an eval: Sluice does not implement, a pattern PCRE2 cannot
 * take although Perl does (too large), a pattern neither Hyperscan nor PCRE2 runs.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <ctype.h>
#include <pcre2.h>

#include "filter.h"
#include "rules_compile.h"
#include "rules_diff.h"
#include "rules_directives.h"
#include "rules_parse.h"
#include "rules_update.h"
#include "sluice_build.h"

static void rules_main_usage_to(FILE *f)
{
	fprintf(f,
		"usage: sluice-rules check [-s SET] FILE...\n"
		"       sluice-rules compile [-s SET] -o DIR FILE...\n"
		"       sluice-rules test --db DIR --corpus DIR|MANIFEST.tsv [--results FILE]\n"
		"                         [--threshold SCORE] [--limit N] [--mail-from ADDR [--helo NAME]]\n"
		"                         [--profile]\n"
		"       sluice-rules update -o DIR [--reload PIDFILE] [--state DIR] [--rules DIR]\n"
		"                           [--site DIR] [--add FILE]... [-s SET]\n"
		"       sluice-rules diff [--threshold SCORE] [--top N] [--subrules] [--summary]\n"
		"                         A.tsv B.tsv\n"
		"       sluice-rules --help | --version\n"
		"check    parse and classify every rule; errors (FILE:LINE: error: ...) for a line\n"
		"         that cannot be parsed, an unknown directive, a meta naming an undefined\n"
		"         rule, a pattern that does not compile; warnings for what Sluice skips\n"
		"compile  the same, then write the compiled rule-set directory DIR\n"
		"test     score a labelled corpus with the data plane's scanner\n"
		"update   compile SpamAssassin's rules as it loads them now (sa-update's, else the\n"
		"         distribution's, with the site's .pre and .cf) into DIR, beside the old\n"
		"         ones, and SIGHUP the node whose pid file is given\n"
		"diff     two engines' results on one corpus (test --results, or spamd's): per\n"
		"         message the rules that fired in one only, and the verdicts that differ\n"
		"SET is SpamAssassin's score set, 0..3 (default 0). Exit status: 0 ok, 1 errors,\n"
		"2 usage.\n");
}

static void rules_main_usage(void)
{
	rules_main_usage_to(stderr);
	exit(2);
}

/* --- check: what the parser lets through ------------------------------------------------ */

struct rules_main_names {
	char  **v;
	size_t  n, cap;
};

static int rules_main_names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool rules_main_names_has(const struct rules_main_names *nm, const char *name)
{
	return nm->n && bsearch(&name, nm->v, nm->n, sizeof(*nm->v), rules_main_names_cmp);
}

/* SpamAssassin 4.0's own plugins: their directives are in rules_directives.c. */
static bool rules_main_core_plugin(const char *name)
{
	static const char *const core[] = {
		"ASN", "AWL", "AccessDB", "AntiVirus", "AskDNS", "AuthRes", "AutoLearnThreshold",
		"Bayes", "BodyEval", "BodyRuleBaseExtractor", "Check", "DCC", "DKIM", "DMARC",
		"DNSEval", "DecodeShortURLs", "ExtractText", "FreeMail", "FromNameSpoof",
		"HTMLEval", "HTTPSMismatch", "HashBL", "HeaderEval", "ImageInfo", "MIMEEval",
		"MIMEHeader", "OLEVBMacro", "OneLineBodyRuleType", "P595Body", "PDFInfo",
		"PhishTag", "Phishing", "Pyzor", "Razor2", "RelayCountry", "RelayEval",
		"ReplaceTags", "ResourceLimits", "Reuse", "Rule2XSBody", "SPF", "Shortcircuit",
		"SpamCop", "Test", "TextCat", "TxRep", "URIDNSBL", "URIDetail", "URIEval",
		"URILocalBL", "VBounce", "WLBLEval", "WelcomeListSubject",
	};
	const char *s = strrchr(name, ':');

	s = s ? s + 1 : name;
	for (size_t i = 0; i < sizeof(core) / sizeof(core[0]); i++)
		if (!strcmp(s, core[i]))
			return strncmp(name, "Mail::SpamAssassin::Plugin::", 28) == 0 || s == name;
	return false;
}

/* A textual pass over the files: every rule name defined anywhere (active or skipped blocks),
 * and the unknown directives outside if/ifplugin blocks: errors, or only warnings once a plugin
 * that is not SpamAssassin's own is loaded (its directives are not known here). Returns the
 * number of errors; *warns_r counts the warnings. */
static unsigned rules_main_scan_files(int argc, char **argv, struct rules_main_names *nm,
				      unsigned *warns_r)
{
	const char *foreign = NULL;   /* the first third-party plugin loaded */
	char *foreign_buf = NULL;
	/* Directives that define a rule name (the DNS ones through SpamAssassin's plugins). */
	static const char *const defs[] = { "header", "mimeheader", "body", "rawbody", "uri",
					    "full", "meta", "askdns", "uridnsbl", "uridnssub",
					    "urirhsbl", "urirhssub", "urinsrhsbl", "urinsrhssub",
					    "urifullnsrhsbl", "urifullnsrhssub" };
	unsigned errs = 0;

	for (int i = 0; i < argc; i++) {
		FILE *f = fopen(argv[i], "r");
		char *line = NULL;
		size_t cap = 0;
		unsigned lineno = 0, depth = 0;

		if (!f)
			continue;   /* the parser reports it */
		while (getline(&line, &cap, f) > 0) {
			char *w = line, *kw, *name;

			lineno++;
			while (*w == ' ' || *w == '\t')
				w++;
			if (*w == '#' || *w == '\n' || *w == '\r' || !*w)
				continue;
			kw = strtok(w, " \t\r\n");
			if (!kw)
				continue;
			if (!strcmp(kw, "lang")) {   /* lang xx DIRECTIVE ... */
				if (!strtok(NULL, " \t\r\n") || !(kw = strtok(NULL, " \t\r\n")))
					continue;
			}
			for (char *c = kw; *c; c++)
				if (*c == '-')
					*c = '_';   /* as SpamAssassin's parser: a-b is a_b */
			if (!strcmp(kw, "loadplugin") || !strcmp(kw, "tryplugin")) {
				char *pl = strtok(NULL, " \t\r\n");

				if (pl && !foreign && !rules_main_core_plugin(pl))
					foreign = foreign_buf = strdup(pl);
				continue;
			}
			if (!strcmp(kw, "if") || !strcmp(kw, "ifplugin") || !strncmp(kw, "if(", 3)) {
				depth++;
				continue;
			}
			if (!strcmp(kw, "endif")) {
				if (depth)
					depth--;
				continue;
			}
			for (size_t k = 0; k < sizeof(defs) / sizeof(defs[0]); k++)
				if (!strcmp(kw, defs[k]) && (name = strtok(NULL, " \t\r\n"))) {
					if (nm->n == nm->cap) {
						size_t nc = nm->cap ? nm->cap * 2 : 1024;
						char **nv = realloc(nm->v, nc * sizeof(*nv));

						if (!nv)
							break;
						nm->v = nv;
						nm->cap = nc;
					}
					if ((nm->v[nm->n] = strdup(name)))
						nm->n++;
					break;
				}
			if (depth == 0 && strcmp(kw, "else") && !rules_directives_known(kw)) {
				bool word = true;

				for (const char *c = kw; *c; c++)
					word &= islower((unsigned char)*c) || isdigit((unsigned char)*c) ||
						*c == '_';
				if (foreign && word) {
					fprintf(stderr, "%s:%u: warning: unknown directive '%s' (ignored; "
						"perhaps one of %s's)\n", argv[i], lineno, kw, foreign);
					(*warns_r)++;
					continue;
				}
				fprintf(stderr, "%s:%u: error: %s '%s': this line cannot be parsed\n",
					argv[i], lineno, word ? "unknown directive" : "not a directive",
					kw);
				errs++;
			}
		}
		free(line);
		fclose(f);
	}
	if (nm->n)
		qsort(nm->v, nm->n, sizeof(*nm->v), rules_main_names_cmp);
	free(foreign_buf);
	return errs;
}

/* Checks the metas' names and compiles every pattern with PCRE2. Returns the number of errors;
 * *warns_r gets the warnings. */
static unsigned rules_main_check_rules(const struct rules_set *rs,
				       const struct rules_main_names *nm, unsigned *warns_r)
{
	unsigned errs = 0;

	for (size_t i = 0; i < rs->nrules; i++) {
		const struct rules_rule *r = &rs->rules[i];

		if (r->def == RULES_DEF_META && r->meta) {
			const char *p = r->meta;

			while (*p) {
				const char *st;
				char name[256];
				const struct rules_rule *d;

				if (!isalpha((unsigned char)*p) && *p != '_') {
					if (isdigit((unsigned char)*p))
						while (isalnum((unsigned char)*p) || *p == '.')
							p++;   /* a number (or a hex one) */
					else
						p++;
					continue;
				}
				st = p;
				while (isalnum((unsigned char)*p) || *p == '_')
					p++;
				if ((size_t)(p - st) >= sizeof(name))
					continue;
				memcpy(name, st, (size_t)(p - st));
				name[p - st] = 0;
				d = rules_parse_find(rs, name);
				if ((d && d->def != RULES_DEF_NONE) || rules_main_names_has(nm, name))
					continue;
				fprintf(stderr, "%s:%u: error: meta %s: names %s, which no file defines\n",
					r->file, r->line, r->name, name);
				errs++;
			}
		}
		if (r->def == RULES_DEF_REGEX && r->pattern) {
			char *re = NULL, flags[16] = "";
			uint32_t opt = 0;
			int ec;
			PCRE2_SIZE eo;
			pcre2_code *pc;

			if (rules_parse_delims(r->pattern, &re, flags) < 0) {
				fprintf(stderr, "%s:%u: error: %s: not a pattern (want /re/flags or "
					"m{re}flags): %.80s\n", r->file, r->line, r->name, r->pattern);
				errs++;
				continue;
			}
			for (const char *f = flags; *f; f++)
				opt |= *f == 'i' ? PCRE2_CASELESS : *f == 'm' ? PCRE2_MULTILINE :
				       *f == 's' ? PCRE2_DOTALL : *f == 'x' ? PCRE2_EXTENDED : 0;
			pc = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, opt, &ec, &eo, NULL);
			if (!pc) {
				PCRE2_UCHAR msg[256];

				pcre2_get_error_message(ec, msg, sizeof(msg));
				/* Perl takes some that PCRE2 cannot (\C, huge repeats): those SpamAssassin
				 * ships are only warned about; a syntax error is an error. */
				if (ec == PCRE2_ERROR_MISSING_CLOSING_PARENTHESIS ||
				    ec == PCRE2_ERROR_UNMATCHED_CLOSING_PARENTHESIS ||
				    ec == PCRE2_ERROR_MISSING_SQUARE_BRACKET ||
				    ec == PCRE2_ERROR_QUANTIFIER_OUT_OF_ORDER ||
				    ec == PCRE2_ERROR_QUANTIFIER_INVALID ||
				    ec == PCRE2_ERROR_END_BACKSLASH ||
				    ec == PCRE2_ERROR_CLASS_RANGE_ORDER) {
					fprintf(stderr, "%s:%u: error: %s: the pattern does not compile at "
						"offset %zu: %s\n", r->file, r->line, r->name, (size_t)eo,
						(const char *)msg);
					errs++;
				} else {
					fprintf(stderr, "%s:%u: warning: %s: PCRE2 refuses the pattern at "
						"offset %zu: %s\n", r->file, r->line, r->name, (size_t)eo,
						(const char *)msg);
					(*warns_r)++;
				}
			}
			pcre2_code_free(pc);
			free(re);
		}
	}
	return errs;
}

static int rules_main_load(int argc, char **argv, struct rules_set **rs_r)
{
	struct rules_main_names nm = { 0 };
	struct rules_set *rs;
	unsigned extra, warns = 0;
	int rc = rules_parse_new(&rs);

	if (rc < 0)
		return rc;
	for (int i = 0; i < argc; i++) {
		rc = rules_parse_file(rs, argv[i]);
		if (rc < 0) {
			fprintf(stderr, "sluice-rules: %s: %s\n", argv[i], strerror(-rc));
			rules_parse_free(&rs);
			return rc;
		}
	}
	rc = rules_parse_finish(rs);
	if (rc < 0) {
		rules_parse_free(&rs);
		return rc;
	}
	for (unsigned i = 0; i < rs->nerrs; i++)
		fprintf(stderr, "%s\n", rs->errs[i]);
	if (rs->st.errors > rs->nerrs)
		fprintf(stderr, "... %u more errors\n", rs->st.errors - rs->nerrs);
	extra = rules_main_scan_files(argc, argv, &nm, &warns);
	extra += rules_main_check_rules(rs, &nm, &warns);
	for (size_t i = 0; i < nm.n; i++)
		free(nm.v[i]);
	free(nm.v);
	rs->st.errors += extra;
	printf("read %zu files, %u lines: %zu rules named; %u comment/blank lines, %u if/ifplugin "
	       "blocks skipped (%u lines), %u other directives ignored, %u eval rules, %u errors, "
	       "%u warnings\n",
	       rs->nfiles, rs->st.lines, rs->nrules, rs->st.comments, rs->st.skipped_blocks,
	       rs->st.skipped_lines, rs->st.ignored, rs->st.eval_rules, rs->st.errors, warns);
	rules_parse_report_skipped(rs, stdout);
	*rs_r = rs;
	return 0;
}

static int rules_main_compile(int argc, char **argv, bool check)
{
	struct rules_compile_opts o = { .report = stdout, .check_only = check };
	const char *out = NULL;
	struct rules_set *rs;
	struct rules_compile_stats st;
	char err[512] = "";
	int c, rc;

	while ((c = getopt(argc, argv, "s:o:q")) != -1) {
		switch (c) {
		case 's': o.score_set = (unsigned)atoi(optarg); break;
		case 'o': out = optarg; break;
		case 'q': o.report = NULL; break;
		default: rules_main_usage();
		}
	}
	if (optind >= argc || (!check && !out))
		rules_main_usage();
	if (rules_main_load(argc - optind, argv + optind, &rs) < 0)
		return 1;
	rc = rules_compile_dir(rs, out, &o, &st, err, sizeof(err));
	rules_compile_print_stats(stdout, &st);
	if (rc < 0)
		fprintf(stderr, "sluice-rules: %s\n", err[0] ? err : strerror(-rc));
	else if (!check)
		printf("wrote %s (rule-set hash %016llx)\n", out,
		       (unsigned long long)rules_parse_hash(rs));
	rc = rc < 0 || rs->st.errors ? 1 : 0;
	rules_parse_free(&rs);
	return rc;
}

/* --- test --------------------------------------------------------------------------------- */

struct rules_main_msg {
	char  *label, *path;
};

static char *rules_main_slurp(const char *path, size_t *len_r)
{
	FILE *f = fopen(path, "rb");
	char *p = NULL;
	size_t cap = 0, len = 0, n;

	if (!f)
		return NULL;
	do {
		if (len + 65536 > cap) {
			char *np = realloc(p, cap = (len + 65536) * 2);

			if (!np) {
				free(p);
				fclose(f);
				return NULL;
			}
			p = np;
		}
		n = fread(p + len, 1, cap - len, f);
		len += n;
	} while (n > 0);
	fclose(f);
	*len_r = len;
	return p;
}

/* The message as the session stores it: without the mbox "From " line, CR LF line ends. */
static uint8_t *rules_main_canon(const char *raw, size_t len, size_t *out_r)
{
	uint8_t *o = malloc(len * 2 + 2);
	size_t n = 0, i = 0;

	if (!o)
		return NULL;
	if (len >= 5 && memcmp(raw, "From ", 5) == 0) {
		const char *nl = memchr(raw, '\n', len);

		i = nl ? (size_t)(nl - raw) + 1 : len;
	}
	for (; i < len; i++) {
		if (raw[i] == '\n' && (n == 0 || o[n - 1] != '\r'))
			o[n++] = '\r';
		o[n++] = (uint8_t)raw[i];
	}
	*out_r = n;
	return o;
}

static double rules_main_now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rules_main_dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int rules_main_test(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "db", required_argument, NULL, 'd' },
		{ "corpus", required_argument, NULL, 'c' },
		{ "results", required_argument, NULL, 'r' },
		{ "threshold", required_argument, NULL, 't' },
		{ "limit", required_argument, NULL, 'l' },
		{ "mail-from", required_argument, NULL, 'f' },
		{ "helo", required_argument, NULL, 'H' },
		{ "profile", no_argument, NULL, 'p' },
		{ NULL, 0, NULL, 0 },
	};
	const char *dbdir = NULL, *corpus = NULL, *results = NULL;
	const char *mail_from = NULL, *helo = NULL;
	bool profile = false;
	double threshold = -1e9;
	long limit = -1;
	char manifest[4096], base[4096], err[512], line[8192];
	struct filter_db *db = NULL;
	struct filter_shard *fs = NULL;
	FILE *mf, *rf = NULL;
	struct stat stt;
	unsigned tp = 0, fn = 0, fp = 0, tn = 0, errs = 0;
	double *lat = NULL, total_cpu = 0, total_wall = 0;
	size_t nlat = 0, latcap = 0, bytes = 0;
	int c, rc;

	while ((c = getopt_long(argc, argv, "d:c:r:t:l:p", lo, NULL)) != -1) {
		switch (c) {
		case 'd': dbdir = optarg; break;
		case 'c': corpus = optarg; break;
		case 'r': results = optarg; break;
		case 't': threshold = atof(optarg); break;
		case 'l': limit = atol(optarg); break;
		case 'f': mail_from = optarg; break;
		case 'H': helo = optarg; break;
		case 'p': profile = true; break;
		default: rules_main_usage();
		}
	}
	if (!dbdir || !corpus)
		rules_main_usage();
	if (stat(corpus, &stt) == 0 && S_ISDIR(stt.st_mode)) {
		snprintf(manifest, sizeof(manifest), "%s/MANIFEST.tsv", corpus);
		snprintf(base, sizeof(base), "%s", corpus);
	} else {
		const char *sl = strrchr(corpus, '/');

		snprintf(manifest, sizeof(manifest), "%s", corpus);
		snprintf(base, sizeof(base), "%.*s", sl ? (int)(sl - corpus) : 1, sl ? corpus : ".");
	}
	rc = filter_db_load(dbdir, &db, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "sluice-rules: %s: %s\n", dbdir, err);
		return 1;
	}
	if (threshold < -1e8)
		threshold = filter_db_required_milli(db) / 1000.0;
	if (filter_shard_new(&fs, db) < 0) {
		fprintf(stderr, "sluice-rules: out of memory\n");
		filter_db_unref(&db);
		return 1;
	}
	if (profile && filter_shard_profile(fs, true) < 0) {
		fprintf(stderr, "sluice-rules: out of memory\n");
		filter_shard_free(&fs);
		filter_db_unref(&db);
		return 1;
	}
	mf = fopen(manifest, "r");
	if (!mf) {
		fprintf(stderr, "sluice-rules: %s: %s\n", manifest, strerror(errno));
		filter_shard_free(&fs);
		filter_db_unref(&db);
		return 1;
	}
	if (results) {
		rf = fopen(results, "w");
		if (!rf)
			fprintf(stderr, "sluice-rules: %s: %s\n", results, strerror(errno));
	}
	while (fgets(line, sizeof(line), mf) && limit != 0) {
		char *label = strtok(line, "\t\n"), *path = strtok(NULL, "\t\n");
		char full[8192];
		char *raw;
		size_t rlen, clen;
		uint8_t *msg;
		struct filter_msg *fm = NULL;
		struct filter_verdict v;
		double c0, w0, cpu, score;
		bool spam, said;

		if (!label || !path || (strcmp(label, "spam") != 0 && strcmp(label, "ham") != 0))
			continue;  /* the header line */
		snprintf(full, sizeof(full), "%s/%s", base, path);
		raw = rules_main_slurp(full, &rlen);
		msg = raw ? rules_main_canon(raw, rlen, &clen) : NULL;
		free(raw);
		if (!msg) {
			fprintf(stderr, "sluice-rules: %s: cannot read\n", full);
			errs++;
			continue;
		}
		c0 = rules_main_now(CLOCK_THREAD_CPUTIME_ID);
		w0 = rules_main_now(CLOCK_MONOTONIC);
		if (filter_msg_begin(fs, &fm) < 0) {
			free(msg);
			errs++;
			continue;
		}
		if (mail_from != NULL) {
			/* the envelope a node's session hands the scanner (smtp_cmd_data.c) */
			struct filter_envelope fe = {
				.mail_from = { mail_from, strlen(mail_from) },
				.helo = { helo ? helo : "", helo ? strlen(helo) : 0 },
			};

			filter_msg_set_envelope(fm, &fe);
		}
		filter_msg_feed(fm, msg, clen);
		filter_msg_end(fm, &v);
		filter_msg_free(&fm);
		cpu = rules_main_now(CLOCK_THREAD_CPUTIME_ID) - c0;
		total_wall += rules_main_now(CLOCK_MONOTONIC) - w0;
		total_cpu += cpu;
		bytes += clen;
		free(msg);
		if (nlat == latcap) {
			double *nl = realloc(lat, (latcap = latcap ? latcap * 2 : 1024) * sizeof(*nl));

			if (!nl)
				break;
			lat = nl;
		}
		lat[nlat++] = cpu;
		score = v.score_milli / 1000.0;
		spam = strcmp(label, "spam") == 0;
		said = score >= threshold;
		tp += spam && said;
		fn += spam && !said;
		fp += !spam && said;
		tn += !spam && !said;
		if (rf)
			fprintf(rf, "%s\t%s\t%.3f\t%s\n", label, path, score, v.hits);
		if (v.pcre_capped)
			fprintf(stderr, "sluice-rules: %s: %u PCRE2 runs stopped by a cap (first %s), "
				"counted as no match\n", path, v.pcre_capped, v.capped_rule);
		if (limit > 0)
			limit--;
	}
	fclose(mf);
	if (rf)
		fclose(rf);
	printf("threshold %.1f, %zu messages (%zu bytes), %u unreadable\n", threshold, nlat, bytes, errs);
	printf("                 said spam   said ham\n");
	printf("  spam (%5u)   %9u  %9u    spam caught %.1f%%\n", tp + fn, tp, fn,
	       tp + fn ? 100.0 * tp / (tp + fn) : 0);
	printf("  ham  (%5u)   %9u  %9u    ham misjudged %.2f%%\n", fp + tn, fp, tn,
	       fp + tn ? 100.0 * fp / (fp + tn) : 0);
	if (nlat) {
		qsort(lat, nlat, sizeof(*lat), rules_main_dbl_cmp);
		printf("scan CPU per message (MIME + scan + verdict): mean %.0f us, p50 %.0f us, p99 %.0f us, "
		       "max %.0f us; %.1f MB/s; wall %.2f s\n",
		       1e6 * total_cpu / (double)nlat, 1e6 * lat[nlat / 2], 1e6 * lat[nlat * 99 / 100],
		       1e6 * lat[nlat - 1], total_cpu > 0 ? (double)bytes / total_cpu / 1e6 : 0, total_wall);
	}
	{
		uint64_t calls, capped;

		filter_shard_pcre_stats(fs, &calls, &capped);
		printf("PCRE2 runs (confirmations and evals): %llu, %.1f per message; stopped by a cap "
		       "(match limit, depth limit, JIT stack): %llu\n", (unsigned long long)calls,
		       nlat ? (double)calls / (double)nlat : 0, (unsigned long long)capped);
	}
	if (profile)
		filter_shard_profile_print(fs, stdout, nlat, 20);
	free(lat);
	filter_shard_free(&fs);
	filter_db_unref(&db);
	return errs ? 1 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		rules_main_usage();
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		rules_main_usage_to(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
		printf("sluice-rules %s\n", SLUICE_VERSION);
		return 0;
	}
	if (strcmp(argv[1], "check") == 0)
		return rules_main_compile(argc - 1, argv + 1, true);
	if (strcmp(argv[1], "compile") == 0)
		return rules_main_compile(argc - 1, argv + 1, false);
	if (strcmp(argv[1], "update") == 0)
		return rules_update_main(argc - 1, argv + 1);
	if (strcmp(argv[1], "test") == 0)
		return rules_main_test(argc - 1, argv + 1);
	if (strcmp(argv[1], "diff") == 0)
		return rules_diff_main(argc - 1, argv + 1);
	rules_main_usage();
	return 2;
}
