/*
 * filter_verdict.c - the verdict as SpamAssassin's X-Spam-Status value. Any thread; pure.
 */
#include <stdio.h>
#include <stdlib.h>

#include "filter.h"

bool filter_verdict_is_spam(const struct filter_verdict *v)
{
	return v->score_milli >= v->required_milli;
}

static void filter_verdict_milli(char *out, size_t len, int32_t m)
{
	/* one decimal, rounded half away from zero, as SpamAssassin prints */
	int32_t t = (m >= 0 ? m + 50 : m - 50) / 100;

	snprintf(out, len, "%s%d.%d", t < 0 ? "-" : "", abs(t) / 10, abs(t) % 10);
}

int filter_verdict_status(const struct filter_verdict *v, char *buf, size_t len)
{
	char s[32], r[32];

	filter_verdict_milli(s, sizeof(s), v->score_milli);
	filter_verdict_milli(r, sizeof(r), v->required_milli);
	return snprintf(buf, len, "%s, score=%s required=%s tests=%s",
			filter_verdict_is_spam(v) ? "Yes" : "No", s, r, v->nhits ? v->hits : "none");
}
