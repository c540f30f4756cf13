/*
 * filter_eval_header.h - the evals of ids RULES_EVAL_HDR_FIRST.. (patterns/compiler/rules_format.h):
 * the rest of HeaderEval and RelayEval (freemail reply-to, recipients, forged relays, counts), after SpamAssassin 4.0's plugins of those names.
 *
 * Shard thread; the per-message state is struct filter_eval_header_state inside struct filter_msg
 * (reset by filter_eval_header_begin at each message).
 */
#ifndef SLUICE_FILTER_EVAL_HEADER_H
#define SLUICE_FILTER_EVAL_HEADER_H

#include <stdbool.h>
#include <stddef.h>

struct filter_db;
struct filter_rule;
struct filter_msg;

struct filter_eval_header_state {
	bool unused;
};

/* At load: parses the arguments of rule ru (an eval of this block). 0 or -EINVAL/-ENOMEM. */
int  filter_eval_header_prepare(struct filter_db *db, struct filter_rule *ru, const char *args, size_t len);
/* At each message's start: resets the state. */
void filter_eval_header_begin(struct filter_msg *fm);
/* At the message's end, before the metas: does rule ru hit? */
bool filter_eval_header_test(struct filter_msg *fm, const struct filter_rule *ru);

#endif
