/*
 * agent_events.c - see agent_events.h.
 *
 * Cursor file, one per sink per shard: <spool_dir>/shard-<id>/events-<sink>.cursor, two 32-byte
 * slots written in turn (pwrite, fdatasync), so a torn write leaves the other: magic "SLEC" u32 |
 * event file number u32 | offset in it u64 | last event taken u64 | XXH3-64 of bytes 0..23. The
 * valid slot with the higher number wins. A cursor is saved after the sink's output for that
 * drain was written (the log: after its write(2)), so a kill -9 in between repeats at most one
 * drain's lines, with the same ids (the dedup key: node/shard/seq); nothing is ever skipped.
 *
 * The log sink writes "SID: accept: qid=Q <the accepted line's text> id=NODE/SHARD/SEQ" for
 * an accepted event and "<text> id=NODE/SHARD/SEQ" for the others (their text is today's line:
 * "Q: to=<R> relay=H status=sent (...)", "Q: dsn=...", "Q: status=held"); a VOID writes
 * "NOQUEUE: void: ... id=...", so the ids in the log stay contiguous per shard.
 * Paused (for tests and maintenance) while <spool_dir>/events-log.pause exists.
 */
#include "agent/agent_events.h"

#define XXH_STATIC_LINKING_ONLY
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "base/clock.h"
#include "base/log.h"
#include "conf/node_config.h"
#include "spool/spool.h"
#include "spool/spool_event.h"

#define AGENT_EV_BURST      20000u        /* events per shard per drain */
#define AGENT_EV_ALARM      100000u       /* a sink this far behind raises the alarm */
#define AGENT_EV_ALARM_NS   (UINT64_C(60) * 1000000000u)
#define AGENT_EV_CURSOR_MAGIC 0x43454c53u /* "SLEC" */

enum { AGENT_SINK_LOG, AGENT_NSINKS };
static const char *const agent_sink_names[AGENT_NSINKS] = { "log" };

struct agent_ev_cursor {
	struct spool_evreader rd;
	bool                  opened;
	int                   cfd;          /* the cursor file */
	unsigned              slot;
	uint64_t              saved_seq;
	uint64_t              backlog;
	uint32_t              oldest;       /* the oldest event file not yet removed (0: unknown) */
};

struct agent_events {
	unsigned                 n;
	char                    *spool_dir;
	char                     node[64];
	agent_events_line_fn    *line;
	struct agent_ev_cursor (*cur)[AGENT_NSINKS];   /* [shard][sink] */
	bool                     alarmed[AGENT_NSINKS];
	uint64_t                 alarm_ns[AGENT_NSINKS];
};

static uint64_t agent_backlog[AGENT_NSINKS];

unsigned agent_events_nsinks(void)
{
	return AGENT_NSINKS;
}

const char *agent_events_sink_name(unsigned i)
{
	return i < AGENT_NSINKS ? agent_sink_names[i] : "?";
}

uint64_t agent_events_backlog(unsigned i)
{
	return i < AGENT_NSINKS ? agent_backlog[i] : 0;
}

static void le32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void le64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* Opens the reader of sink k on shard i at its saved cursor. 0 or -errno (tried again later). */
static int cursor_open(struct agent_events *ae, unsigned i, unsigned k)
{
	struct agent_ev_cursor *c = &ae->cur[i][k];
	char dir[600], name[700];
	uint8_t b[64];
	uint32_t fileno = 0;
	uint64_t off = 0, seq = 0;
	int rc;

	snprintf(dir, sizeof(dir), "%s/shard-%u", ae->spool_dir, i);
	snprintf(name, sizeof(name), "%s/events-%s.cursor", dir, agent_sink_names[k]);
	c->cfd = open(name, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (c->cfd < 0)
		return -errno;
	ssize_t got = pread(c->cfd, b, sizeof(b), 0);

	if (got >= 32) {
		for (unsigned s = 0; s < (unsigned)got / 32; s++) {
			const uint8_t *p = b + 32 * s;

			if (rd32(p) != AGENT_EV_CURSOR_MAGIC || rd64(p + 24) != XXH3_64bits(p, 24))
				continue;
			if (rd64(p + 16) >= seq) {
				fileno = rd32(p + 4);
				off = rd64(p + 8);
				seq = rd64(p + 16);
				c->slot = s ^ 1;   /* the next write takes the other one */
			}
		}
	}
	if ((rc = spool_evreader_open(&c->rd, dir, fileno, off, seq)) < 0) {
		close(c->cfd);
		c->cfd = -1;
		return rc;
	}
	c->saved_seq = seq;
	c->opened = true;
	if (seq)
		log_info("events: sink %s resumes shard %u after event %" PRIu64,
			 agent_sink_names[k], i, seq);
	return 0;
}

static void cursor_save(struct agent_ev_cursor *c)
{
	uint8_t p[32];

	if (c->rd.seq == c->saved_seq)
		return;
	le32(p, AGENT_EV_CURSOR_MAGIC);
	le32(p + 4, c->rd.fileno);
	le64(p + 8, c->rd.off);
	le64(p + 16, c->rd.seq);
	le64(p + 24, XXH3_64bits(p, 24));
	if (pwrite(c->cfd, p, sizeof(p), 32 * c->slot) != (ssize_t)sizeof(p) || fdatasync(c->cfd) < 0) {
		log_warn(-errno, "events: cannot save a sink's cursor (tried again next time)");
		return;
	}
	c->slot ^= 1;
	c->saved_seq = c->rd.seq;
}

int agent_events_open(struct agent_events **ae_r, const struct shard *shards, unsigned n,
		      agent_events_line_fn *line)
{
	struct agent_events *ae = calloc(1, sizeof(*ae));
	const struct node_config *c = shards[0].conf;

	if (!ae || !(ae->cur = calloc(n ? n : 1, sizeof(*ae->cur))) ||
	    !(ae->spool_dir = strdup(c->spool_dir))) {
		if (ae)
			free(ae->cur);
		free(ae);
		return -ENOMEM;
	}
	ae->n = n;
	ae->line = line;
	snprintf(ae->node, sizeof(ae->node), "%.63s", c->name[0] ? c->name : c->hostname);
	for (unsigned i = 0; i < n; i++)
		for (unsigned k = 0; k < AGENT_NSINKS; k++) {
			ae->cur[i][k].cfd = -1;
			/* now, with the shards' spools open: tried again at each drain if not */
			(void)cursor_open(ae, i, k);
		}
	*ae_r = ae;
	return 0;
}

/* The log sink's line for one event. */
static void sink_log(struct agent_events *ae, const struct shard *sh, const struct spool_evinfo *ev)
{
	struct shard_event out;
	struct slice text = { "", 0 }, sid;
	char q[SPOOL_QID_STRLEN + 1];
	int n;

	if (ev->type == SPOOL_EVT_FILE)
		return;
	(void)spool_event_tlv_find(ev->payload, ev->len, SPOOL_ETLV_TEXT, &text);
	if (text.len > SHARD_EVENT_MAX - 200)
		text.len = SHARD_EVENT_MAX - 200;
	out.wall_ms = ev->wall_ms;
	if (ev->type == SPOOL_EVT_VOID) {
		/* numbers stay contiguous in the log too */
		n = snprintf(out.text, sizeof(out.text), "NOQUEUE: void: a number whose state was "
			     "lost in a crash id=%s/%u/%" PRIu64, ae->node, ev->shard, ev->seq);
	} else if (ev->type == SPOOL_EVT_ACCEPTED) {
		if (spool_event_tlv_find(ev->payload, ev->len, SPOOL_ETLV_SID, &sid) < 0 || sid.len > 64)
			sid = (struct slice){ "NOQUEUE", 7 };
		spool_qid_format(ev->qid, q);
		n = snprintf(out.text, sizeof(out.text), "%.*s: accept: qid=%s %.*s id=%s/%u/%" PRIu64,
			     (int)sid.len, sid.p, q, (int)text.len, text.p, ae->node, ev->shard, ev->seq);
	} else {
		n = snprintf(out.text, sizeof(out.text), "%.*s id=%s/%u/%" PRIu64, (int)text.len,
			     text.p, ae->node, ev->shard, ev->seq);
	}
	out.len = (unsigned short)(n < 0 ? 0 : (size_t)n >= sizeof(out.text) ? sizeof(out.text) - 1
							 : (size_t)n);
	ae->line(sh, &out);
}

void agent_events_drain(struct agent_events *ae, const struct shard *shards, unsigned n,
			bool final)
{
	char pause[600];
	struct stat st;
	bool paused[AGENT_NSINKS];

	snprintf(pause, sizeof(pause), "%s/events-log.pause", ae->spool_dir);
	paused[AGENT_SINK_LOG] = !final && stat(pause, &st) == 0;
	for (unsigned k = 0; k < AGENT_NSINKS; k++) {
		uint64_t backlog = 0;

		for (unsigned i = 0; i < n && i < ae->n; i++) {
			struct agent_ev_cursor *c = &ae->cur[i][k];
			uint64_t limit = final ? UINT64_MAX :
					 __atomic_load_n(&shards[i].events_durable, __ATOMIC_ACQUIRE);
			struct spool_evinfo ev;
			unsigned got = 0;
			int r;

			if (!c->opened && cursor_open(ae, i, k) < 0)
				continue;
			while (!paused[k] && got < AGENT_EV_BURST &&
			       (r = spool_evreader_next(&c->rd, limit, &ev)) == 1) {
				if (k == AGENT_SINK_LOG)
					sink_log(ae, &shards[i], &ev);
				got++;
			}
			if (!final && limit > c->rd.seq)
				backlog += limit - c->rd.seq;
		}
		agent_backlog[k] = backlog;
		if (backlog >= AGENT_EV_ALARM) {
			uint64_t now = clock_mono_ns();

			if (!ae->alarmed[k] || now - ae->alarm_ns[k] > AGENT_EV_ALARM_NS) {
				log_warn(0, "events: sink %s is %" PRIu64 " events behind (mail goes "
					 "on; the event log grows on disk until it catches up)",
					 agent_sink_names[k], backlog);
				ae->alarmed[k] = true;
				ae->alarm_ns[k] = now;
			}
		} else if (ae->alarmed[k] && backlog < AGENT_EV_ALARM / 2) {
			log_info("events: sink %s caught up (%" PRIu64 " events behind)",
				 agent_sink_names[k], backlog);
			ae->alarmed[k] = false;
		}
	}
}

/* Removes the event files of shard i every sink has passed (never the one a sink reads, so never
 * the newest, which the shard writes). */
static void files_reclaim(struct agent_events *ae, unsigned i)
{
	uint32_t low = UINT32_MAX;

	for (unsigned k = 0; k < AGENT_NSINKS; k++) {
		struct agent_ev_cursor *c = &ae->cur[i][k];

		if (!c->opened || c->rd.fd < 0)
			return;
		if (c->rd.fileno < low)
			low = c->rd.fileno;
	}
	struct agent_ev_cursor *c0 = &ae->cur[i][0];

	if (c0->oldest == 0) {
		uint32_t *nums = NULL;
		size_t nn = 0;

		if (spool_event_files(c0->rd.dfd, &nums, &nn) < 0 || nn == 0) {
			free(nums);
			return;
		}
		c0->oldest = nums[0];
		free(nums);
	}
	while (c0->oldest < low) {
		char name[32];

		spool_event_file_name(name, c0->oldest);
		if (unlinkat(c0->rd.dfd, name, 0) < 0 && errno != ENOENT)
			log_warn(-errno, "events: shard %u: remove %s", i, name);
		c0->oldest++;
	}
}

void agent_events_commit(struct agent_events *ae)
{
	for (unsigned i = 0; i < ae->n; i++) {
		for (unsigned k = 0; k < AGENT_NSINKS; k++)
			if (ae->cur[i][k].opened)
				cursor_save(&ae->cur[i][k]);
		files_reclaim(ae, i);
	}
}

void agent_events_close(struct agent_events **aep)
{
	struct agent_events *ae = *aep;

	if (!ae)
		return;
	*aep = NULL;
	for (unsigned i = 0; i < ae->n; i++)
		for (unsigned k = 0; k < AGENT_NSINKS; k++) {
			struct agent_ev_cursor *c = &ae->cur[i][k];

			if (c->opened)
				spool_evreader_close(&c->rd);
			if (c->cfd >= 0)
				close(c->cfd);
		}
	free(ae->cur);
	free(ae->spool_dir);
	free(ae);
}
