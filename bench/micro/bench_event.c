/*
 * bench_event.c - event encoding on the shard (dataplane/shard/shard_event.h): one log event
 * per message, formatted into the shard's event ring, then drained as the agent would, in
 * bursts of the given size. One thread plays both sides (the cost of formatting and of the ring
 * itself; cross-core traffic is not in it). Items are events.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "shard/shard.h"
#include "shard/shard_event.h"

static void take(void *arg, const struct shard_event *ev)
{
	*(uint64_t *)arg += ev->len;
}

static void bm_event(struct bench_state *st, void *arg)
{
	unsigned burst = (unsigned)bench_range(st, 0);
	struct shard *sh = calloc(1, sizeof(*sh));
	uint64_t bytes = 0, n = 0, seq = 0;

	if (sh == NULL || spsc_init(&sh->events, 16384) < 0) {
		free(sh);
		bench_skip_error(st, "spsc_init");
		return;
	}
	while (bench_keep_running(st)) {
		for (unsigned i = 0; i < burst; i++, seq++)
			shard_event(sh, "qid=%016llX role=primary client=192.0.2.%u helo=mail%u.example.org "
				    "from=<sender%llu@example.org> rcpts=1 size=%u score=%d.%03d action=deliver "
				    "tls=TLSv1.3 rules=HTML_MESSAGE,MIME_QP_LONG_LINE,DKIM_SIGNED",
				    (unsigned long long)seq, (unsigned)(seq & 255), (unsigned)(seq & 1023),
				    (unsigned long long)seq, 4096u + (unsigned)(seq & 4095),
				    (int)(seq % 10), (int)(seq % 1000));
		n += shard_event_drain(sh, take, &bytes, burst);
	}
	if (n != (uint64_t)bench_iterations(st) * burst || sh->ctr.events_dropped) {
		bench_skip_error(st, "events lost");
	} else {
		bench_set_items(st, (int64_t)n);
		bench_set_bytes(st, (int64_t)bytes);
	}
	spsc_destroy(&sh->events);
	free(sh);
}

BENCH_INIT(event)
{
	bench_arg(bench_arg(bench_register("event/log_line", bm_event, NULL), 1), 256);
}
