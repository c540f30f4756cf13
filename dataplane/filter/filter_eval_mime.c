/*
 * filter_eval_mime.c - MIMEEval, BodyEval and ImageInfo (see filter_eval_mime.h).
 */
#include "filter_types.h"

int filter_eval_mime_prepare(struct filter_db *db, struct filter_rule *ru, const char *args, size_t len)
{
	(void)db, (void)ru, (void)args, (void)len;
	return 0;
}

void filter_eval_mime_begin(struct filter_msg *fm)
{
	fm->ev_mime.unused = false;
}

bool filter_eval_mime_test(struct filter_msg *fm, const struct filter_rule *ru)
{
	(void)fm, (void)ru;
	return false;
}
