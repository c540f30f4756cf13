/*
 * rules_regex.h - translation of SpamAssassin's Perl regexes for Hyperscan and PCRE2.
 *
 * Input: the text between the delimiters and the flags (i m s x; o g are dropped). Output: one
 * pattern for Hyperscan and one for PCRE2 with flag words for each. What is rewritten:
 *   x        whitespace and #-comments outside classes removed (both outputs)
 *   \Q..\E   quoted as escaped literals (both)
 *   lines    (body, rawbody, uri: SpamAssassin matches those a line at a time; Sluice scans one
 *            stream with a line per paragraph/URI) \A -> ^, \z \Z -> $, and MULTILINE on
 *   (?<n>..) named groups become plain groups for Hyperscan
 *   (?#...)  comments dropped
 * What needs prefiltering (Hyperscan cannot do it exactly): lookaround, back-references, atomic
 * groups, possessive quantifiers, conditionals, \G \K, recursion. For those the Hyperscan output
 * is relaxed to a superset (atomic -> plain group, possessive -> greedy) and compiled with
 * HS_FLAG_PREFILTER; PCRE2 confirms. Compiler-side only; pure functions.
 */
#ifndef SLUICE_PATTERNS_RULES_REGEX_H
#define SLUICE_PATTERNS_RULES_REGEX_H

#include <stdbool.h>
#include <stdint.h>

/* Features found (bit mask). */
#define RULES_RX_LOOKAROUND  0x01u
#define RULES_RX_BACKREF     0x02u
#define RULES_RX_ATOMIC      0x04u   /* atomic groups or possessive quantifiers */
#define RULES_RX_COND        0x08u
#define RULES_RX_OTHER       0x10u   /* \G \K recursion code (?|...) */
#define RULES_RX_NEEDS_PREFILTER 0x1fu

struct rules_regex {
	char     *hs;          /* for hs_compile (relaxed when features need the prefilter) */
	unsigned  hs_flags;    /* HS_FLAG_CASELESS/MULTILINE/DOTALL (no SINGLEMATCH etc.) */
	char     *pcre;        /* for pcre2_compile */
	uint32_t  pcre_opts;   /* PCRE2_CASELESS/MULTILINE/DOTALL */
	unsigned  features;
};

/* Translates re (between delimiters) with flags (letters). lines: the class is matched a line
 * at a time. Returns 0, -EINVAL (a trailing backslash, an unterminated class or group comment),
 * or -ENOMEM. On success the caller frees with rules_regex_clear(). */
int rules_regex_translate(const char *re, const char *flags, bool lines, struct rules_regex *out);
void rules_regex_clear(struct rules_regex *rx);

/* A looser form of a Hyperscan pattern text, for a first tier that PCRE2 confirms: every
 * bounded repeat that can repeat more than once, X{m,n} X{m} X{m,} (m or n at least 2),
 * becomes X+ (X* when m is 0), which Hyperscan compiles as a loop instead of m or n copies;
 * with anchors, every '$' but a last one is dropped too (Hyperscan refuses embedded end
 * anchors in a prefilter). Whatever the pattern matched, the looser form matches too. Returns
 * 0 and a malloc'd *out_r, -EINVAL (an unterminated class), or -ENOMEM. */
int rules_regex_relax(const char *hs, bool anchors, char **out_r);

/* The size of a Hyperscan pattern text with its counted repeats of groups written out as
 * copies ((?:X){2,5} as five X): what Hyperscan's compiler builds, and what its compile time
 * grows with. */
double rules_regex_expanded_size(const char *hs);

/* The same PCRE2 pattern with every group "(?:X)" whose text occurs at least twice, or once
 * under a counted repeat {m,n} (which PCRE2 compiles as copies), and is at least 16 bytes,
 * defined once, in a (?(DEFINE)...) at the end, and called as a subroutine
 * "(?&slR_N)" (PCRE2 runs a subroutine call like the group itself, backtracking into it), in up
 * to four rounds (groups inside those defined). For a pattern PCRE2 finds too large only for
 * its repeats, as ReplaceTags expansions are. Returns 0 and a malloc'd *out_r; -EINVAL when
 * nothing repeats, the pattern sets options inline (a subroutine would run with the options of
 * the DEFINE), or it does not parse; -ENOMEM. */
int rules_regex_share(const char *pcre, char **out_r);

/* A head of a Hyperscan pattern text, for a first tier when the whole is too long for
 * Hyperscan: the items of a run of the top-level sequence from its start, up to want bytes of
 * least width, cutting into a group longer than big bytes (each of its alternatives in turn), or the heads of the
 * top-level alternatives. Every match of the pattern holds a match of the head (ending inside
 * it); of the runs, the one with the most least width is taken. Returns 0 and a malloc'd
 * *out_r, -EINVAL when nothing parses, -ENOMEM. */
int rules_regex_head(const char *hs, size_t want, size_t big, char **out_r);

#endif
