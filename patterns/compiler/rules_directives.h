/*
 * rules_directives.h - whether a word is a SpamAssassin configuration directive (see
 * rules_directives.c). Pure; any thread.
 */
#ifndef SLUICE_PATTERNS_RULES_DIRECTIVES_H
#define SLUICE_PATTERNS_RULES_DIRECTIVES_H

#include <stdbool.h>

bool rules_directives_known(const char *kw);

#endif
