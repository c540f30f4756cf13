/*
 * filter_eval_htmlx.c - the rest of HTMLEval (font, image ratio, obfuscation, tag ratios, title) and the URI tests (see filter_eval_htmlx.h).
 */
#include "filter_types.h"

int filter_eval_htmlx_prepare(struct filter_db *db, struct filter_rule *ru, const char *args, size_t len)
{
	(void)db, (void)ru, (void)args, (void)len;
	return 0;
}

void filter_eval_htmlx_begin(struct filter_msg *fm)
{
	fm->ev_htmlx.unused = false;
}

bool filter_eval_htmlx_test(struct filter_msg *fm, const struct filter_rule *ru)
{
	(void)fm, (void)ru;
	return false;
}
