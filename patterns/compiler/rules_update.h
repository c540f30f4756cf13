/*
 * rules_update.h - `sluice-rules update` (rules_update.c): recompile SpamAssassin's rules as
 * SpamAssassin would load them now, swap them in, and reload a running node.
 */
#ifndef SLUICE_RULES_UPDATE_H
#define SLUICE_RULES_UPDATE_H

/* argv[0] is "update". Returns the exit status (0, 1, or exits 2 on a usage error). */
int rules_update_main(int argc, char **argv);

#endif
