/*
 * rules_parse.h - the SpamAssassin rule-set parser of sluice-rules.
 *
 * Reads rule sets in SpamAssassin's syntax (Mail::SpamAssassin::Conf): header (with :raw,
 * :addr, :name, :host, exists:, ALL, [if-unset: ...]), mimeheader, body, rawbody, uri, full,
 * meta, score (one or four values), describe, tflags, required_score, loadplugin/tryplugin,
 * ifplugin/if/else/endif, and the ReplaceTags directives (replace_tag/_pre/_post/_inter,
 * replace_rules, replace_start/_end). Every other directive is counted and ignored. Later
 * definitions replace earlier ones, as in SpamAssassin.
 *
 * Compiler-side only (never on the mail path); single-threaded. Limits: a line is at most
 * RULES_PARSE_MAX_LINE bytes (longer ones are errors), at most RULES_MAX_RULES rules, if-nesting
 * at most 32.
 */
#ifndef SLUICE_PATTERNS_RULES_PARSE_H
#define SLUICE_PATTERNS_RULES_PARSE_H

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>

#include "rules_format.h"

#define RULES_PARSE_MAX_LINE  65536u
#define RULES_PARSE_MAX_NEST  32u
#define RULES_PARSE_MAX_ERRS  64u

/* What the rule's definition line said. */
enum rules_def {
	RULES_DEF_NONE = 0,   /* only score/describe/tflags seen */
	RULES_DEF_REGEX,      /* a pattern in pattern */
	RULES_DEF_EXISTS,     /* header exists:Name */
	RULES_DEF_META,       /* expression in meta */
	RULES_DEF_EVAL,       /* eval:...: unsupported by Sluice */
};

struct rules_rule {
	char            *name;
	enum rules_class cls;       /* RULES_CLASS_NONE until defined */
	enum rules_def   def;
	char            *pattern;   /* Perl form, delimiters and flags: "/re/i", "m{re}s";
				     * eval rules: "function(args)" */
	char            *meta;      /* meta expression text */
	char            *hdr;       /* header rules: the header name */
	enum rules_hdr_mod hdr_mod;
	bool             hdr_mime;  /* mimeheader */
	bool             negate;    /* !~ */
	char            *unset;     /* [if-unset: ...] or NULL */
	double           score[4];
	unsigned         nscore;    /* 0: no score line */
	char            *describe;
	char            *tflags;
	const char      *file;      /* where it was defined (interned by the set) */
	unsigned         line;
};

struct rules_parse_stats {
	unsigned lines;
	unsigned comments;          /* comment and blank lines */
	unsigned skipped_blocks;    /* if/ifplugin blocks whose condition was false */
	unsigned skipped_lines;     /* lines inside them */
	unsigned ignored;           /* directives Sluice does not use (lang, priority, ...) */
	unsigned eval_rules;        /* eval: definitions (reported as unsupported) */
	unsigned errors;
};

/* A block skipped because its condition was false, and the rules it would have defined. */
struct rules_skip {
	const char *file;           /* interned */
	unsigned    line;
	char       *cond;           /* "ifplugin ...", "if ...", "else" */
	char      **rules;
	size_t      nrules;
};

struct rules_set {
	struct rules_rule *rules;
	size_t             nrules, cap;
	uint32_t          *index;       /* open addressing over rules, by name */
	size_t             index_cap;
	double             required_score;
	struct rules_parse_stats st;
	char              *errs[RULES_PARSE_MAX_ERRS];
	unsigned           nerrs;
	struct XXH64_state_s *hash;     /* XXH64 of every byte read */
	/* loaded plugins (short names), ReplaceTags tables */
	char             **plugins;
	size_t             nplugins;
	struct rules_kv   *tags, *pre, *post, *inter;
	size_t             ntags, npre, npost, ninter;
	char             **replace;     /* names of rules to run tag replacement on */
	size_t             nreplace;
	char              *rep_start, *rep_end;
	char             **freemail;    /* freemail_domains (lower-case; may hold '*') */
	size_t             nfreemail;
	char             **files;       /* interned file names */
	size_t             nfiles;
	struct rules_skip *skips;       /* false if/ifplugin blocks, in order */
	size_t             nskips, capskips;
	unsigned           include_depth;
};

#define RULES_PARSE_MAX_INCLUDE 8
#define RULES_PARSE_MAX_FILE    (64 << 20)   /* bytes of one rule file */

/* Where SpamAssassin's Perl modules are, to answer "if can(...)" as it would. */
#define RULES_PARSE_PERL_LIB "/usr/share/perl5"

struct rules_kv {
	char *k, *v;
};

/* Returns 0 or -ENOMEM. */
int rules_parse_new(struct rules_set **rs_r);
void rules_parse_free(struct rules_set **rs);

/* Parses one file's text. Syntax errors are recorded (rules_set.errs, st.errors) and parsing
 * goes on; returns 0, or -ENOMEM. */
int rules_parse_text(struct rules_set *rs, const char *file, const char *text, size_t len);

/* Reads and parses a file: 0, -errno from open/read, -EINVAL (not a regular file), -EFBIG (more
 * than RULES_PARSE_MAX_FILE), or -ENOMEM. */
int rules_parse_file(struct rules_set *rs, const char *path);

/* After the last file: applies ReplaceTags. Returns 0 or -ENOMEM. */
int rules_parse_finish(struct rules_set *rs);

/* The rule named name, or NULL. */
struct rules_rule *rules_parse_find(const struct rules_set *rs, const char *name);

/* One line per skipped block: "skipped: FILE:LINE: CONDITION: RULE ..." (the compile report). */
void rules_parse_report_skipped(const struct rules_set *rs, FILE *f);

/* XXH64 of everything read so far. */
uint64_t rules_parse_hash(const struct rules_set *rs);

/* Splits "/re/flags" or "m{re}flags" into the regex text (malloc'd into *re_r) and the flags
 * (into flags_r, NUL-terminated, at most 15 letters). Returns 0, -EINVAL (not a pattern,
 * unterminated, or an unknown flag), or -ENOMEM. */
int rules_parse_delims(const char *pat, char **re_r, char flags_r[16]);

#endif
