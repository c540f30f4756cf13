/*
 * rules_diff.h - `sluice-rules diff` (rules_diff.c): two engines' per-message results on one
 * corpus, compared rule by rule.
 */
#ifndef SLUICE_RULES_DIFF_H
#define SLUICE_RULES_DIFF_H

/* argv[0] is "diff". Returns the exit status (0 same, 1 different, 2 usage or unreadable). */
int rules_diff_main(int argc, char **argv);

#endif
