/*
 * test_rules.c - the rule-set parser, the Perl -> Hyperscan/PCRE2 translation table, meta
 * expressions, and a small compile (patterns/compiler).
 *
 * The rule parser reads whole files, so "three ways" here is: the text whole, one line per call
 * (as if every line were its own file), and split at random line boundaries; all three must
 * give the same rules.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <hs/hs.h>

#include "rules_compile.h"
#include "rules_meta.h"
#include "rules_parse.h"
#include "rules_regex.h"
#include "filter/filter_types.h"

/* Runs compiled meta code the way the scanner does (filter_meta_eval) over hit counts by rule. */
static double meta_eval_counts(const struct rules_meta_instr *ins, uint32_t n,
			       const uint32_t *counts, uint32_t nrules)
{
	uint64_t bits[(nrules + 63) / 64 + 1];
	uint8_t cnt[nrules + 1];

	memset(bits, 0, sizeof(bits));
	for (uint32_t r = 0; r < nrules; r++) {
		cnt[r] = counts[r] > 255 ? 255 : (uint8_t)counts[r];
		if (counts[r])
			filter_bit_set(bits, r);
	}
	return filter_meta_eval(ins, n, bits, cnt);
}


/* --- parsing ---------------------------------------------------------------------------- */

static const char test_rules_text[] =
	"# a comment\n"
	"   \n"
	"loadplugin Mail::SpamAssassin::Plugin::Check\n"
	"header  SUBJ_FREE   Subject =~ /\\bfree\\b/i\n"
	"header  FROM_NUM    From:addr =~ /^\\d+\\@/\n"
	"header  NO_DATE     Date !~ /\\d/ [if-unset: none]\n"
	"header  HAS_XM      exists:X-Mailer\n"
	"header  EV          eval:check_for_missing_to_header()\n"
	"mimeheader MH_ZIP   Content-Type =~ /zip/\n"
	"body    BODY_HASH   /price \\#1/  # comment after\n"
	"rawbody RAW_X       m{<b>x</b>}is\n"
	"uri     URI_IP      m;^https?://\\d+\\.\\d+;\n"
	"full    FULL_Y      /^X-Y: /m\n"
	"meta    META_A      (SUBJ_FREE && !HAS_XM) || (FROM_NUM + BODY_HASH > 1)\n"
	"score   SUBJ_FREE   1.5\n"
	"score   FROM_NUM    0 1 2 3\n"
	"describe SUBJ_FREE  Subject says free\n"
	"tflags  NO_DATE     nice multiple\n"
	"ifplugin Mail::SpamAssassin::Plugin::Check\n"
	"body    IN_LOADED   /loaded/\n"
	"endif\n"
	"ifplugin Mail::SpamAssassin::Plugin::NotLoaded\n"
	"body    IN_SKIPPED  /skipped/\n"
	"if (version >= 3.004000)\n"
	"body    NESTED      /nested/\n"
	"endif\n"
	"endif\n"
	"if (version >= 9.000000)\n"
	"body    TOO_NEW     /new/\n"
	"else\n"
	"body    OLD_OK      /old/\n"
	"endif\n"
	"if can(Mail::SpamAssassin::Conf::feature_bug6558_free)\n"
	"body    CAN_OK      /can/\n"
	"endif\n"
	"if plugin(Mail::SpamAssassin::Plugin::Check)\n"     /* full name, as loadplugin gave it */
	"body    PLUGIN_OK   /plugin/\n"
	"endif\n"
	"if !plugin(Mail::SpamAssassin::Plugin::Check)\n"
	"body    NOT_PLUGIN  /not plugin/\n"
	"endif\n"
	"lang de describe SUBJ_FREE Betreff\n"
	"priority SUBJ_FREE -100\n"
	"replace_tag  V  (?:v|\\\\/)\n"
	"replace_tag  I  [i1!]\n"
	"replace_inter W1 \\W?\n"
	"body    FUZZ_VI     /<inter W1><V><I>/i\n"
	"replace_rules FUZZ_VI\n"
	"header  REDEF       Subject =~ /first/\n"
	"header  REDEF       Subject =~ /second/\n"
	"required_score 6.5\n";

struct test_rules_want {
	const char *name;
	enum rules_class cls;
	enum rules_def def;
	const char *pattern;   /* NULL: not checked */
	const char *hdr;
	enum rules_hdr_mod mod;
	bool negate;
	const char *unset;
};

static const struct test_rules_want test_rules_wants[] = {
	{ "SUBJ_FREE", RULES_CLASS_HEADER, RULES_DEF_REGEX, "/\\bfree\\b/i", "Subject", RULES_HDR_DECODED, false, NULL },
	{ "FROM_NUM", RULES_CLASS_HEADER, RULES_DEF_REGEX, "/^\\d+\\@/", "From", RULES_HDR_ADDR, false, NULL },
	{ "NO_DATE", RULES_CLASS_HEADER, RULES_DEF_REGEX, "/\\d/", "Date", RULES_HDR_DECODED, true, "none" },
	{ "HAS_XM", RULES_CLASS_HEADER, RULES_DEF_EXISTS, NULL, "X-Mailer", RULES_HDR_DECODED, false, NULL },
	{ "EV", RULES_CLASS_HEADER, RULES_DEF_EVAL, NULL, NULL, 0, false, NULL },
	{ "MH_ZIP", RULES_CLASS_HEADER, RULES_DEF_REGEX, "/zip/", "Content-Type", RULES_HDR_DECODED, false, NULL },
	{ "BODY_HASH", RULES_CLASS_BODY, RULES_DEF_REGEX, "/price #1/", NULL, 0, false, NULL },
	{ "RAW_X", RULES_CLASS_RAWBODY, RULES_DEF_REGEX, "m{<b>x</b>}is", NULL, 0, false, NULL },
	{ "URI_IP", RULES_CLASS_URI, RULES_DEF_REGEX, "m;^https?://\\d+\\.\\d+;", NULL, 0, false, NULL },
	{ "FULL_Y", RULES_CLASS_FULL, RULES_DEF_REGEX, "/^X-Y: /m", NULL, 0, false, NULL },
	{ "META_A", RULES_CLASS_META, RULES_DEF_META, NULL, NULL, 0, false, NULL },
	{ "IN_LOADED", RULES_CLASS_BODY, RULES_DEF_REGEX, "/loaded/", NULL, 0, false, NULL },
	{ "OLD_OK", RULES_CLASS_BODY, RULES_DEF_REGEX, "/old/", NULL, 0, false, NULL },
	{ "CAN_OK", RULES_CLASS_BODY, RULES_DEF_REGEX, "/can/", NULL, 0, false, NULL },
	{ "PLUGIN_OK", RULES_CLASS_BODY, RULES_DEF_REGEX, "/plugin/", NULL, 0, false, NULL },
	{ "REDEF", RULES_CLASS_HEADER, RULES_DEF_REGEX, "/second/", "Subject", RULES_HDR_DECODED, false, NULL },
};

static void test_rules_check_set(struct rules_set *rs)
{
	struct rules_rule *r;

	for (size_t i = 0; i < sizeof(test_rules_wants) / sizeof(test_rules_wants[0]); i++) {
		const struct test_rules_want *w = &test_rules_wants[i];

		r = rules_parse_find(rs, w->name);
		if (!r)
			fail_msg("rule %s missing", w->name);
		assert_int_equal(r->cls, w->cls);
		assert_int_equal(r->def, w->def);
		if (w->pattern)
			assert_string_equal(r->pattern, w->pattern);
		if (w->hdr) {
			assert_string_equal(r->hdr, w->hdr);
			assert_int_equal(r->hdr_mod, w->mod);
			assert_int_equal(r->negate, w->negate);
		}
		if (w->unset)
			assert_string_equal(r->unset, w->unset);
	}
	assert_true(rules_parse_find(rs, "MH_ZIP")->hdr_mime);
	assert_null(rules_parse_find(rs, "IN_SKIPPED"));
	assert_null(rules_parse_find(rs, "NESTED"));
	assert_null(rules_parse_find(rs, "TOO_NEW"));
	assert_null(rules_parse_find(rs, "NOT_PLUGIN"));
	r = rules_parse_find(rs, "SUBJ_FREE");
	assert_int_equal(r->nscore, 1);
	assert_true(r->score[0] == 1.5 && r->score[3] == 1.5);
	assert_string_equal(r->describe, "Subject says free");
	r = rules_parse_find(rs, "FROM_NUM");
	assert_int_equal(r->nscore, 4);
	assert_true(r->score[0] == 0 && r->score[2] == 2);
	assert_string_equal(rules_parse_find(rs, "NO_DATE")->tflags, "nice multiple");
	assert_true(rs->required_score == 6.5);
	assert_int_equal(rs->st.eval_rules, 1);
	assert_int_equal(rs->st.errors, 0);
}

/* "if can(...)" as the installed SpamAssassin answers it (UNIVERSAL::can: the package loaded
 * and the sub defined in its module), and the report of every skipped block with its rules. */
static void test_rules_parse_can_and_skipped(void **state)
{
	static const char text[] =
		"loadplugin Mail::SpamAssassin::Plugin::MIMEEval\n"
		"ifplugin Mail::SpamAssassin::Plugin::MIMEEval\n"
		"  if can(Mail::SpamAssassin::Plugin::MIMEEval::has_check_for_ascii_text_illegal)\n"
		"    body CAN_HAS eval:check_for_ascii_text_illegal()\n"
		"  endif\n"
		"  if can(Mail::SpamAssassin::Plugin::MIMEEval::has_no_such_method_at_all)\n"
		"    body CAN_NOT /x/\n"
		"  endif\n"
		"endif\n"
		"if can(Mail::SpamAssassin::Plugin::NotLoaded::has_check_x)\n"
		"  header NOT_LOADED Subject =~ /x/\n"
		"  meta NOT_LOADED_META NOT_LOADED\n"
		"endif\n"
		"if can(Mail::SpamAssassin::Conf::feature_bug6558_free)\n"
		"  body FEATURE /y/\n"
		"else\n"
		"  body NO_FEATURE /z/\n"
		"endif\n"
		"if can(../../etc/passwd::x)\n"
		"  body PATH /p/\n"
		"endif\n";
	bool have_sa = access(RULES_PARSE_PERL_LIB "/Mail/SpamAssassin/Plugin/MIMEEval.pm", R_OK) == 0;
	struct rules_set *rs;
	char *out = NULL;
	size_t outlen = 0;
	FILE *f;

	(void)state;
	assert_int_equal(rules_parse_new(&rs), 0);
	assert_int_equal(rules_parse_text(rs, "c.cf", text, strlen(text)), 0);
	assert_int_equal(rules_parse_finish(rs), 0);
	assert_non_null(rules_parse_find(rs, "CAN_HAS"));
	assert_non_null(rules_parse_find(rs, "FEATURE"));
	assert_null(rules_parse_find(rs, "NO_FEATURE"));
	assert_null(rules_parse_find(rs, "NOT_LOADED"));
	assert_null(rules_parse_find(rs, "PATH"));
	if (have_sa)     /* without the modules a loaded plugin's has_* is taken as present */
		assert_null(rules_parse_find(rs, "CAN_NOT"));
	f = open_memstream(&out, &outlen);
	assert_non_null(f);
	rules_parse_report_skipped(rs, f);
	fclose(f);
	assert_non_null(strstr(out, "skipped: c.cf:10: if can(Mail::SpamAssassin::Plugin::NotLoaded"
				   "::has_check_x): NOT_LOADED NOT_LOADED_META\n"));
	assert_non_null(strstr(out, "skipped: c.cf:16: else: NO_FEATURE\n"));
	assert_non_null(strstr(out, "skipped: c.cf:19: if can(../../etc/passwd::x): PATH\n"));
	if (have_sa)
		assert_non_null(strstr(out, "c.cf:6: if can(Mail::SpamAssassin::Plugin::MIMEEval::"
					   "has_no_such_method_at_all): CAN_NOT\n"));
	free(out);
	rules_parse_free(&rs);
}

static void test_rules_parse_whole(void **state)
{
	struct rules_set *rs;

	assert_int_equal(rules_parse_new(&rs), 0);
	assert_int_equal(rules_parse_text(rs, "t.cf", test_rules_text, strlen(test_rules_text)), 0);
	assert_int_equal(rules_parse_finish(rs), 0);
	test_rules_check_set(rs);
	/* skipped blocks: NotLoaded (its nested if is inside it, not counted again), TOO_NEW,
	 * !plugin(Check) */
	assert_int_equal(rs->st.skipped_blocks, 3);
	assert_true(rs->st.ignored >= 2);  /* lang, priority */
	/* ReplaceTags: <inter W1> goes between the tags and at the start (SpamAssassin's split) */
	assert_string_equal(rules_parse_find(rs, "FUZZ_VI")->pattern,
			    "m\x01\\W?(?:v|\\\\/)\\W?[i1!]\x01i");
	rules_parse_free(&rs);
	assert_null(rs);
}

/* Splits the text at line boundaries: every line (every == 1) or at random. Conditionals must
 * not span calls, so this only cuts where the if-depth is 0. */
static void test_rules_parse_split(bool random)
{
	struct rules_set *rs;
	const char *p = test_rules_text, *end = p + strlen(p), *start = p;
	int depth = 0;

	assert_int_equal(rules_parse_new(&rs), 0);
	while (p < end) {
		const char *nl = strchr(p, '\n');

		if (!strncmp(p, "if", 2))
			depth++;
		if (!strncmp(p, "endif", 5))
			depth--;
		p = nl + 1;
		if (depth == 0 && (!random || rand() % 3 == 0 || p == end)) {
			assert_int_equal(rules_parse_text(rs, "t.cf", start, (size_t)(p - start)), 0);
			start = p;
		}
	}
	if (start < end)
		assert_int_equal(rules_parse_text(rs, "t.cf", start, (size_t)(end - start)), 0);
	assert_int_equal(rules_parse_finish(rs), 0);
	test_rules_check_set(rs);
	rules_parse_free(&rs);
}

static void test_rules_parse_lines(void **state)
{
	test_rules_parse_split(false);
}

static void test_rules_parse_random(void **state)
{
	srand(7);
	for (int i = 0; i < 20; i++)
		test_rules_parse_split(true);
}

static const struct {
	const char *label, *text;
	unsigned errors;
} test_rules_bad[] = {
	{ "header without op", "header X Subject /x/\n", 1 },
	{ "bad name", "body 9X /x/\n", 1 },
	{ "score with 2 values", "score X 1 2\n", 1 },
	{ "score not a number", "score X abc\n", 1 },
	{ "unknown modifier", "header X From:bogus =~ /x/\n", 1 },
	{ "endif without if", "endif\n", 1 },
	{ "unclosed if", "ifplugin Foo\nbody X /x/\n", 1 },
	{ "ok", "body X /x/\nscore X 1\n", 0 },
};

static void test_rules_parse_errors(void **state)
{
	for (size_t i = 0; i < sizeof(test_rules_bad) / sizeof(test_rules_bad[0]); i++) {
		struct rules_set *rs;

		assert_int_equal(rules_parse_new(&rs), 0);
		assert_int_equal(rules_parse_text(rs, "bad.cf", test_rules_bad[i].text,
						  strlen(test_rules_bad[i].text)), 0);
		if (rs->st.errors != test_rules_bad[i].errors)
			fail_msg("%s: %u errors, want %u", test_rules_bad[i].label, rs->st.errors,
				 test_rules_bad[i].errors);
		rules_parse_free(&rs);
	}
}

/* --- delimiters and translation ---------------------------------------------------------- */

static const struct {
	const char *in, *re, *flags;
	int rc;
} test_rules_delims[] = {
	{ "/abc/", "abc", "", 0 },
	{ "/a\\/b/i", "a\\/b", "i", 0 },
	{ "m{a}b}ism", "a}b", "ism", 0 },
	{ "m!x!x", "x", "x", 0 },
	{ "m;y;", "y", "", 0 },
	{ "/z/og", "z", "", 0 },
	{ "/z/q", NULL, NULL, -EINVAL },
	{ "abc", NULL, NULL, -EINVAL },
	{ "/unterminated", NULL, NULL, -EINVAL },
};

static void test_rules_delims_table(void **state)
{
	for (size_t i = 0; i < sizeof(test_rules_delims) / sizeof(test_rules_delims[0]); i++) {
		char *re = NULL, flags[16];
		int rc = rules_parse_delims(test_rules_delims[i].in, &re, flags);

		if (rc != test_rules_delims[i].rc)
			fail_msg("%s: rc %d want %d", test_rules_delims[i].in, rc, test_rules_delims[i].rc);
		if (rc == 0) {
			assert_string_equal(re, test_rules_delims[i].re);
			assert_string_equal(flags, test_rules_delims[i].flags);
		}
		free(re);
	}
}

static const struct {
	const char *label, *re, *flags;
	bool lines;
	const char *want_hs, *want_pcre;
	unsigned want_features, want_hs_flags;
} test_rules_tr[] = {
	{ "plain", "foo", "", false, "foo", "foo", 0, 0 },
	{ "caseless", "foo", "i", false, "foo", "foo", 0, HS_FLAG_CASELESS },
	{ "multiline dotall", "a.b", "ms", false, "a.b", "a.b", 0, HS_FLAG_MULTILINE | HS_FLAG_DOTALL },
	{ "lines adds multiline", "^a$", "", true, "^a$", "^a$", 0, HS_FLAG_MULTILINE },
	{ "lines anchors", "\\Aa\\z|b\\Z", "", true, "^a$|b$", "^a$|b$", 0, HS_FLAG_MULTILINE },
	{ "anchors kept outside lines", "\\Aa\\z", "", false, "\\Aa\\z", "\\Aa\\z", 0, 0 },
	{ "x strips", "a b # c\n d", "x", false, "abd", "abd", 0, 0 },
	{ "x keeps class space", "[ ]a", "x", false, "[ ]a", "[ ]a", 0, 0 },
	{ "x keeps escaped", "a\\ b", "x", false, "a\\ b", "a\\ b", 0, 0 },
	{ "quote", "\\Qa.b*\\E", "", false, "a\\.b\\*", "a\\.b\\*", 0, 0 },
	{ "comment group", "a(?#note)b", "", false, "ab", "ab", 0, 0 },
	{ "named group", "(?<n>a)b", "", false, "(a)b", "(?<n>a)b", 0, 0 },
	{ "lookahead", "a(?=b)", "", false, "a(?=b)", "a(?=b)", RULES_RX_LOOKAROUND, 0 },
	{ "lookbehind", "(?<!x)a", "", false, "(?<!x)a", "(?<!x)a", RULES_RX_LOOKAROUND, 0 },
	{ "backref", "(a)\\1", "", false, "(a)\\1", "(a)\\1", RULES_RX_BACKREF, 0 },
	{ "atomic", "(?>a+)b", "", false, "(?:a+)b", "(?>a+)b", RULES_RX_ATOMIC, 0 },
	{ "possessive", "a++b", "", false, "a+b", "a++b", RULES_RX_ATOMIC, 0 },
	{ "class bracket", "[]a]\\1", "", false, "[]a]\\1", "[]a]\\1", RULES_RX_BACKREF, 0 },
	{ "posix class", "[[:alpha:]]+", "", false, "[[:alpha:]]+", "[[:alpha:]]+", 0, 0 },
	{ "escape in class no backref", "[\\1]", "", false, "[\\1]", "[\\1]", 0, 0 },
	{ "hex brace", "\\x{41}", "", false, "\\x{41}", "\\x{41}", 0, 0 },
	{ "embedded anchor", "^a.*^b", "ms", false, "^a.*b", "^a.*^b", RULES_RX_OTHER,
	  HS_FLAG_MULTILINE | HS_FLAG_DOTALL },
	{ "anchor in alternation", "(?:^|\\s)x|^y", "", false, "(?:^|\\s)x|^y", "(?:^|\\s)x|^y", 0, 0 },
	{ "anchor after flags", "(?i)^x", "", false, "(?i)^x", "(?i)^x", 0, 0 },
};

static void test_rules_translate_table(void **state)
{
	for (size_t i = 0; i < sizeof(test_rules_tr) / sizeof(test_rules_tr[0]); i++) {
		struct rules_regex rx;
		int rc = rules_regex_translate(test_rules_tr[i].re, test_rules_tr[i].flags,
					       test_rules_tr[i].lines, &rx);

		if (rc != 0)
			fail_msg("%s: rc %d", test_rules_tr[i].label, rc);
		if (strcmp(rx.hs, test_rules_tr[i].want_hs) != 0 ||
		    strcmp(rx.pcre, test_rules_tr[i].want_pcre) != 0 ||
		    rx.features != test_rules_tr[i].want_features ||
		    rx.hs_flags != test_rules_tr[i].want_hs_flags)
			fail_msg("%s: hs '%s' pcre '%s' features %#x flags %#x", test_rules_tr[i].label,
				 rx.hs, rx.pcre, rx.features, rx.hs_flags);
		rules_regex_clear(&rx);
	}
}

static void test_rules_translate_bad(void **state)
{
	static const char *const bad[] = { "a\\", "[abc", "(?#open", "(?<n" };
	struct rules_regex rx;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(rules_regex_translate(bad[i], "", false, &rx), -EINVAL);
}

/* The looser first tier: bounded repeats become loops, classes and escapes stay as they are,
 * and with anchors an inner '$' goes; the looser form matches wherever the pattern did. */
static void test_rules_relax(void **state)
{
	static const struct { const char *in; bool anchors; const char *want; } t[] = {
		{ "(?:ab|c){3}x{0,5}y{1,}z{2,}w{1}v{0,1}", false, "(?:ab|c)+x*y{1,}z+w{1}v{0,1}" },
		{ "[{3}]\\{3}\\x{41}{2}\\p{L}{0,9}", false, "[{3}]\\{3}\\x{41}+\\p{L}*" },
		{ "[]{2}][[:alpha:]{2}]{4,6}", false, "[]{2}][[:alpha:]{2}]+" },
		{ "(?:$|\\W)a{2}$", true, "(?:|\\W)a+$" },
		{ "(?:$|\\W)a$", false, "(?:$|\\W)a$" },
		{ "a{,3}b{x}", false, "a{,3}b{x}" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *out = NULL;

		assert_int_equal(rules_regex_relax(t[i].in, t[i].anchors, &out), 0);
		if (strcmp(out, t[i].want) != 0)
			fail_msg("relax '%s': '%s', want '%s'", t[i].in, out, t[i].want);
		free(out);
	}
	{
		char *out = NULL;

		assert_int_equal(rules_regex_relax("[ab", false, &out), -EINVAL);
		assert_null(out);
	}
}

/* Group repeats count as copies, a repeated character or class as itself. */
static void test_rules_expanded_size(void **state)
{
	(void)state;
	assert_true(rules_regex_expanded_size("abc") == 3.0);
	assert_true(rules_regex_expanded_size("a{1000}[xy]{50}") == 5.0);
	/* "(" + "ab" + ")" = 4 bytes, five times, then "c" */
	assert_true(rules_regex_expanded_size("(ab){2,5}c") == 21.0);
	/* nested: the inner group (4 bytes) three times in the outer (1 + 12 + 1), twice */
	assert_true(rules_regex_expanded_size("((ab){3}){2}") == 28.0);
	assert_true(rules_regex_expanded_size("[(]{9}\\({9}") == 5.0);
}

/* A ReplaceTags-like tag: one letter in many spellings, a group longer than 16 bytes. */
static void test_rules_tag(char *out, size_t cap, char c)
{
	size_t n = strlen(out);

	snprintf(out + n, cap - n, "(?:%c|[%c]\\xcc\\x81|%c\\xcc\\x80|[#%c])", c, c, c, c);
}

static bool test_rules_pcre_matches(const char *re, const char *subj)
{
	int ec;
	PCRE2_SIZE eo;
	pcre2_code *pc = pcre2_compile((PCRE2_SPTR)re, PCRE2_ZERO_TERMINATED, PCRE2_CASELESS, &ec, &eo, NULL);
	pcre2_match_data *md;
	int rc;

	if (!pc)
		fail_msg("PCRE2 refuses '%s': %d at %zu", re, ec, (size_t)eo);
	md = pcre2_match_data_create_from_pattern(pc, NULL);
	rc = pcre2_match(pc, (PCRE2_SPTR)subj, strlen(subj), 0, 0, md, NULL);
	pcre2_match_data_free(md);
	pcre2_code_free(pc);
	return rc >= 0;
}

/* Sharing repeated groups as PCRE2 subroutines keeps the matches; inline options refuse it. */
static void test_rules_share(void **state)
{
	static const char *const subj[] = { "pay me now", "xx PAY  ME", "send me", "sendme",
					    "abcdefghijklmnopq x abcdefghijklmnopq", "hello" };
	char re[4096] = "(?:^|\\s)(?:", *out = NULL;
	const char *w1 = "pay", *w2 = "send";

	assert_int_equal(rules_regex_share("(?:abcdefghijklmnop)x(?:abcdefghijklmnop)", &out), 0);
	assert_string_equal(out, "(?&sl0_0)x(?&sl0_0)(?(DEFINE)(?<sl0_0>abcdefghijklmnop))");
	free(out);
	assert_int_equal(rules_regex_share("(?:abcdefghijklmnopq|rst){3}", &out), 0);
	assert_string_equal(out, "(?&sl0_0){3}(?(DEFINE)(?<sl0_0>abcdefghijklmnopq|rst))");
	free(out);
	assert_int_equal(rules_regex_share("(?i)(?:abcdefghijklmnopq)(?:abcdefghijklmnopq)", &out),
			 -EINVAL);
	assert_int_equal(rules_regex_share("(?:abc)(?:abc)", &out), -EINVAL);   /* too short */
	for (const char *p = w1; *p; p++)
		test_rules_tag(re, sizeof(re), *p);
	strcat(re, "\\s+");
	test_rules_tag(re, sizeof(re), 'm');
	test_rules_tag(re, sizeof(re), 'e');
	strcat(re, "|");
	for (const char *p = w2; *p; p++)
		test_rules_tag(re, sizeof(re), *p);
	strcat(re, "\\s?");
	test_rules_tag(re, sizeof(re), 'm');
	test_rules_tag(re, sizeof(re), 'e');
	strcat(re, ")");
	assert_int_equal(rules_regex_share(re, &out), 0);
	assert_true(strlen(out) < strlen(re));
	for (size_t i = 0; i < sizeof(subj) / sizeof(subj[0]); i++)
		if (test_rules_pcre_matches(re, subj[i]) != test_rules_pcre_matches(out, subj[i]))
			fail_msg("shared form of '%s' differs on '%s': '%s'", re, subj[i], out);
	free(out);
}

/* A head of a long pattern: every match of the pattern holds one, and it is shorter. */
static void test_rules_head(void **state)
{
	static const char *const hit[] = { "so pay me now", "send me", "SEND  ME" };
	char re[8192] = "(?:^|\\s)(?:", *out = NULL;
	const char *words[] = { "pay", "send", "transfer" };

	for (size_t w = 0; w < 3; w++) {
		if (w)
			strcat(re, "|");
		for (const char *p = words[w]; *p; p++)
			test_rules_tag(re, sizeof(re), *p);
		strcat(re, "\\s*");
		test_rules_tag(re, sizeof(re), 'm');
		test_rules_tag(re, sizeof(re), 'e');
	}
	strcat(re, ")\\b");
	assert_int_equal(rules_regex_head(re, 3, 200, &out), 0);
	assert_true(strlen(out) < strlen(re));
	for (size_t i = 0; i < sizeof(hit) / sizeof(hit[0]); i++) {
		assert_true(test_rules_pcre_matches(re, hit[i]));
		if (!test_rules_pcre_matches(out, hit[i]))
			fail_msg("head '%s' misses '%s'", out, hit[i]);
	}
	assert_false(test_rules_pcre_matches(out, "hello world"));
	free(out);
	assert_int_equal(rules_regex_head("(?:ab", 3, 200, &out), -EINVAL);
}

/* --- meta ---------------------------------------------------------------------------------- */

static int test_rules_resolve(void *arg, const char *name)
{
	if (name[0] >= 'A' && name[0] <= 'D' && name[1] == '\0')
		return name[0] - 'A';
	return -1;
}

static const struct {
	const char *expr;
	uint32_t hits[4];   /* A B C D */
	double want;
} test_rules_metas[] = {
	{ "A && B", { 1, 1, 0, 0 }, 1 },
	{ "A && B", { 1, 0, 0, 0 }, 0 },
	{ "A || B", { 0, 1, 0, 0 }, 1 },
	{ "!A", { 0, 0, 0, 0 }, 1 },
	{ "A + B + C > 1", { 1, 0, 1, 0 }, 1 },
	{ "A + B + C > 1", { 1, 0, 0, 0 }, 0 },
	{ "A + B * 2", { 1, 1, 0, 0 }, 3 },
	{ "(A + B) * 2", { 1, 1, 0, 0 }, 4 },
	{ "A - B - C", { 1, 1, 1, 0 }, -1 },
	{ "A && !(B || C)", { 1, 0, 0, 0 }, 1 },
	{ "A && !(B || C)", { 1, 0, 1, 0 }, 0 },
	{ "A >= 1 && B <= 0 && C == 0 && D != 1", { 1, 0, 0, 0 }, 1 },
	{ "A < B", { 0, 1, 0, 0 }, 1 },
	{ "UNKNOWN || A", { 0, 0, 0, 0 }, 0 },
	{ "UNKNOWN || A", { 1, 0, 0, 0 }, 1 },
	{ "-A + 2", { 1, 0, 0, 0 }, 1 },
	{ "A / 2", { 1, 0, 0, 0 }, 0.5 },
	{ "A / B", { 1, 0, 0, 0 }, 0 },
	{ "1.5 * A", { 1, 0, 0, 0 }, 1.5 },
};

static void test_rules_meta_table(void **state)
{
	for (size_t i = 0; i < sizeof(test_rules_metas) / sizeof(test_rules_metas[0]); i++) {
		struct rules_meta_code code;
		char err[128];
		double v;

		assert_int_equal(rules_meta_compile(test_rules_metas[i].expr, test_rules_resolve, NULL,
						    &code, err, sizeof(err)), 0);
		v = meta_eval_counts(code.ins, code.n, test_rules_metas[i].hits, 4);
		if (v != test_rules_metas[i].want)
			fail_msg("%s: %g, want %g", test_rules_metas[i].expr, v, test_rules_metas[i].want);
		rules_meta_clear(&code);
	}
}

static void test_rules_meta_bad(void **state)
{
	static const char *const bad[] = { "", "A &&", "(A", "A B", "A ) ", "&& A", "A $ B" };
	struct rules_meta_code code;
	char err[128], deep[1024];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (rules_meta_compile(bad[i], test_rules_resolve, NULL, &code, err, sizeof(err)) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
	memset(deep, '(', 300);
	deep[300] = 'A';
	deep[301] = '\0';
	assert_int_not_equal(rules_meta_compile(deep, test_rules_resolve, NULL, &code, err, sizeof(err)), 0);
}

/* --- compile -------------------------------------------------------------------------- */

static void test_rules_compile_small(void **state)
{
	static const char text[] =
		"header H1 Subject =~ /free/i\n"
		"header H2 Subject =~ /(?<!not )cheap/i\n"      /* lookbehind: prefilter */
		"body   B1 /(\\w+) \\1/\n"                         /* back-reference: prefilter */
		"body   B2 /viagra/i\n"
		"body   B3 eval:foo()\n"
		"header B5 eval:subject_is_all_caps()\n"
		"body   B6 /x(?R)?y/\n"                           /* recursion: PCRE2 only */
		"body   B4 /x/\n"
		"score  B4 0\n"                                   /* disabled */
		"uri    U1 /\\.ru\\b/\n"
		"meta   M1 H1 && B2\n"
		"meta   M2 M1 || M3\n"                            /* M3 later in the file */
		"meta   M3 U1\n";
	char dir[] = "/tmp/test_rules_XXXXXX", err[256] = "";
	struct rules_set *rs;
	struct rules_compile_opts o = { 0 };
	struct rules_compile_stats st;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(rules_parse_new(&rs), 0);
	assert_int_equal(rules_parse_text(rs, "s.cf", text, strlen(text)), 0);
	assert_int_equal(rules_parse_finish(rs), 0);
	assert_int_equal(rules_compile_dir(rs, dir, &o, &st, err, sizeof(err)), 0);
	assert_int_equal(st.native[RULES_CLASS_HEADER], 1);
	assert_int_equal(st.prefilter[RULES_CLASS_HEADER], 1);
	assert_int_equal(st.native[RULES_CLASS_BODY], 1);
	assert_int_equal(st.prefilter[RULES_CLASS_BODY], 1);
	assert_int_equal(st.native[RULES_CLASS_URI], 1);
	assert_int_equal(st.eval, 1);
	assert_int_equal(st.eval_native, 1);
	assert_int_equal(st.pcre_only[RULES_CLASS_BODY], 1);
	assert_int_equal(st.disabled, 1);
	assert_int_equal(st.meta, 3);
	assert_true(st.features[0] == 1 && st.features[1] == 1);
	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++) {
		static const char *const files[] = RULES_CLASS_FILES;
		char path[512];

		snprintf(path, sizeof(path), "%s/%s", dir, files[c]);
		assert_int_equal(access(path, R_OK), 0);
		unlink(path);
	}
	{
		char path[512];

		snprintf(path, sizeof(path), "%s/%s", dir, RULES_META_FILE);
		assert_int_equal(access(path, R_OK), 0);
		unlink(path);
	}
	rmdir(dir);
	rules_parse_free(&rs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rules_parse_whole),
		cmocka_unit_test(test_rules_parse_can_and_skipped),
		cmocka_unit_test(test_rules_parse_lines),
		cmocka_unit_test(test_rules_parse_random),
		cmocka_unit_test(test_rules_parse_errors),
		cmocka_unit_test(test_rules_delims_table),
		cmocka_unit_test(test_rules_translate_table),
		cmocka_unit_test(test_rules_translate_bad),
		cmocka_unit_test(test_rules_relax),
		cmocka_unit_test(test_rules_expanded_size),
		cmocka_unit_test(test_rules_share),
		cmocka_unit_test(test_rules_head),
		cmocka_unit_test(test_rules_meta_table),
		cmocka_unit_test(test_rules_meta_bad),
		cmocka_unit_test(test_rules_compile_small),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
