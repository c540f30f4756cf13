/*
 * rules_meta.h - SpamAssassin meta expressions compiled to postfix code (rules_format.h ops).
 *
 * Grammar (Perl precedence): or := and ('||' and)*; and := eq ('&&' eq)*; eq := rel (('=='|'!=')
 * rel)*; rel := add (('<'|'>'|'<='|'>=') add)*; add := mul (('+'|'-') mul)*; mul := un (('*'|'/')
 * un)*; un := '!' un | '-' un | '(' or ')' | NUMBER | RULE_NAME. A rule name is resolved by the
 * caller to an index; an unknown name (a rule not defined, or one Sluice cannot run) is the
 * constant 0, as SpamAssassin treats a rule that did not hit. Compiler-side only; pure.
 */
#ifndef SLUICE_PATTERNS_RULES_META_H
#define SLUICE_PATTERNS_RULES_META_H

#include <stddef.h>
#include <stdint.h>

#include "rules_format.h"

/* Returns the rule's index, or -1 when unknown. */
typedef int rules_meta_resolve_fn(void *arg, const char *name);

struct rules_meta_code {
	struct rules_meta_instr *ins;
	uint32_t                 n;
	unsigned                 unknown;   /* names that resolved to -1 */
};

/* Compiles expr. Returns 0; -EINVAL on a syntax error (err says where), -E2BIG when the code
 * would exceed RULES_META_MAX_INSTR or the stack RULES_META_STACK; -ENOMEM. */
int rules_meta_compile(const char *expr, rules_meta_resolve_fn *resolve, void *arg,
		       struct rules_meta_code *code_r, char *err, size_t errlen);
void rules_meta_clear(struct rules_meta_code *code);

/* The compiled code is evaluated on the mail path by filter_meta_eval (dataplane/filter). */

#endif
