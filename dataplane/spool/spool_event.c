/*
 * spool_event.c - the event log's format and its reader; see spool_event.h. Pure functions and
 * read-only file access: any thread (the writer is in spool.c).
 */
#include "spool_event.h"

#define XXH_STATIC_LINKING_ONLY
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

static const char *const evtype_names[SPOOL_EVT_NTYPES] = {
	"file", "void", "accepted", "delivered", "bounced", "deferred", "expired", "dsn",
	"quarantined", "released", "deleted",
};

const char *spool_evtype_name(unsigned type)
{
	return type < SPOOL_EVT_NTYPES ? evtype_names[type] : "unknown";
}

size_t spool_event_tlv(uint8_t *out, uint16_t tag, const void *p, size_t len)
{
	put16(out, tag);
	put32(out + 2, (uint32_t)len);
	if (len)
		memcpy(out + 6, p, len);
	return 6 + len;
}

int spool_event_tlv_find(const void *payload, size_t len, uint16_t tag, struct slice *v_r)
{
	const uint8_t *p = payload;
	size_t off = 0;

	while (off + 6 <= len) {
		uint16_t t = get16(p + off);
		uint32_t l = get32(p + off + 2);

		if (l > len - off - 6)
			return -ENOENT;
		if (t == tag) {
			*v_r = (struct slice){ (const char *)p + off + 6, l };
			return 0;
		}
		off += 6 + (size_t)l;
	}
	return -ENOENT;
}

static uint64_t ev_sum(const uint8_t *hdr, const void *p1, size_t l1, const void *p2, size_t l2)
{
	XXH3_state_t st;

	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, hdr, 40);
	if (l1)
		XXH3_64bits_update(&st, p1, l1);
	if (l2)
		XXH3_64bits_update(&st, p2, l2);
	return XXH3_64bits_digest(&st);
}

size_t spool_event_encode(uint8_t *out, unsigned type, unsigned flags, unsigned shard,
			  uint64_t seq, uint64_t qid, uint64_t wall_ms, const void *p1, size_t l1,
			  const void *p2, size_t l2)
{
	size_t len = l1 + l2, total = spool_event_size(len);

	put32(out, SPOOL_EVENT_MAGIC);
	out[4] = SPOOL_EVENT_VERSION;
	out[5] = (uint8_t)type;
	put16(out + 6, (uint16_t)flags);
	put32(out + 8, (uint32_t)len);
	put32(out + 12, shard);
	put64(out + 16, seq);
	put64(out + 24, qid);
	put64(out + 32, wall_ms);
	if (l1)
		memcpy(out + SPOOL_EVENT_HDR, p1, l1);
	if (l2)
		memcpy(out + SPOOL_EVENT_HDR + l1, p2, l2);
	memset(out + SPOOL_EVENT_HDR + len, 0, total - SPOOL_EVENT_HDR - len);
	put64(out + 40, ev_sum(out, out + SPOOL_EVENT_HDR, len, NULL, 0));
	return total;
}

void spool_event_add_flags(uint8_t *rec, unsigned flags)
{
	uint32_t len = get32(rec + 8);

	put16(rec + 6, (uint16_t)(get16(rec + 6) | flags));
	put64(rec + 40, ev_sum(rec, rec + SPOOL_EVENT_HDR, len, NULL, 0));
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

int spool_event_decode(const void *p, size_t len, struct spool_evinfo *ev_r)
{
	const uint8_t *b = p;
	uint32_t plen;

	if (len < SPOOL_EVENT_HDR)
		return all_zero(b, len) ? -ENODATA : -EAGAIN;
	if (get32(b) != SPOOL_EVENT_MAGIC)
		return all_zero(b, SPOOL_EVENT_HDR) ? -ENODATA : -EBADMSG;
	if (b[4] != SPOOL_EVENT_VERSION)
		return -EBADMSG;
	plen = get32(b + 8);
	if (plen > SPOOL_EVENT_MAX)
		return -EBADMSG;
	if (len < spool_event_size(plen))
		return -EAGAIN;
	if (get64(b + 40) != ev_sum(b, b + SPOOL_EVENT_HDR, plen, NULL, 0))
		return -EBADMSG;
	ev_r->type = b[5];
	ev_r->flags = get16(b + 6);
	ev_r->len = plen;
	ev_r->shard = get32(b + 12);
	ev_r->seq = get64(b + 16);
	ev_r->qid = get64(b + 24);
	ev_r->wall_ms = get64(b + 32);
	ev_r->payload = b + SPOOL_EVENT_HDR;
	ev_r->rec_len = spool_event_size(plen);
	return 0;
}

void spool_event_file_name(char out[32], uint32_t n)
{
	snprintf(out, 32, "events-%08x.ev", n);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int spool_event_files(int dfd, uint32_t **nums_r, size_t *n_r)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	uint32_t *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;

	if (!d) {
		int rc = -errno;

		if (fd >= 0)
			close(fd);
		return rc;
	}
	while ((de = readdir(d))) {
		unsigned x;
		char tail[8];

		if (strlen(de->d_name) != 18 || sscanf(de->d_name, "events-%8x.%3s", &x, tail) != 2 ||
		    strcmp(tail, "ev") != 0)
			continue;
		if (n == cap) {
			uint32_t *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));

			if (!nv) {
				free(v);
				closedir(d);
				return -ENOMEM;
			}
			v = nv;
		}
		v[n++] = x;
	}
	closedir(d);
	if (n)   /* v is NULL with no file */
		qsort(v, n, sizeof(*v), cmp_u32);
	*nums_r = v;
	*n_r = n;
	return 0;
}

/* ---- Reader ---- */

#define EVR_WINDOW (256u * 1024u)

static int evr_open_file(struct spool_evreader *r, uint32_t fileno)
{
	char name[32];
	int fd;

	spool_event_file_name(name, fileno);
	fd = openat(r->dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (r->fd >= 0)
		close(r->fd);
	r->fd = fd;
	r->fileno = fileno;
	r->buf_len = 0;
	r->buf_off = 0;
	r->end_checked = false;
	return 0;
}

int spool_evreader_open(struct spool_evreader *r, const char *shard_dir, uint32_t fileno,
			uint64_t off, uint64_t seq)
{
	memset(r, 0, sizeof(*r));
	r->fd = -1;
	r->dfd = open(shard_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->dfd < 0)
		return -errno;
	r->seq = seq;
	if (fileno == 0) {
		uint32_t *nums = NULL;
		size_t n = 0;

		if (spool_event_files(r->dfd, &nums, &n) == 0 && n)
			fileno = nums[0];
		free(nums);
		off = 0;
	}
	r->fileno = fileno;
	r->off = off;
	if (fileno && evr_open_file(r, fileno) < 0)
		r->off = 0;   /* gone: found again below */
	return 0;
}

void spool_evreader_close(struct spool_evreader *r)
{
	if (r->fd >= 0)
		close(r->fd);
	if (r->dfd >= 0)
		close(r->dfd);
	free(r->buf);
	memset(r, 0, sizeof(*r));
	r->fd = r->dfd = -1;
}

/* Makes [off, off + want) available in the window if the file has it; returns the bytes
 * available from off (may be fewer). */
static ssize_t evr_fill(struct spool_evreader *r, size_t want)
{
	if (r->off >= r->buf_off && r->off + want <= r->buf_off + r->buf_len)
		return (ssize_t)(r->buf_off + r->buf_len - r->off);
	if (want < EVR_WINDOW)
		want = EVR_WINDOW;
	if (r->buf_cap < want) {
		uint8_t *nb = realloc(r->buf, want);

		if (!nb)
			return -ENOMEM;
		r->buf = nb;
		r->buf_cap = want;
	}
	ssize_t n = pread(r->fd, r->buf, r->buf_cap, (off_t)r->off);

	if (n < 0)
		return -errno;
	r->buf_off = r->off;
	r->buf_len = (size_t)n;
	return n;
}

/* Whether a file after the current one exists: the current one is then complete. */
static bool evr_next_file(struct spool_evreader *r)
{
	uint32_t *nums = NULL;
	size_t n = 0;
	bool moved = false;

	if (spool_event_files(r->dfd, &nums, &n) < 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (nums[i] > r->fileno || r->fd < 0) {
			if (evr_open_file(r, nums[i]) == 0) {
				r->off = 0;
				moved = true;
			}
			break;
		}
	free(nums);
	return moved;
}

int spool_evreader_next(struct spool_evreader *r, uint64_t limit, struct spool_evinfo *ev_r)
{
	for (;;) {
		ssize_t have;
		int rc;

		if (r->seq >= limit) {
			/* Caught up. Once per file: at its end with a later file there (a restart
			 * began one), move on, so the old one can be removed. */
			struct spool_evinfo peek;

			if (r->end_checked || r->fd < 0)
				return 0;
			r->end_checked = true;
			if ((have = evr_fill(r, SPOOL_EVENT_HDR)) >= 0 &&
			    spool_event_decode(r->buf + (r->off - r->buf_off), (size_t)have,
					       &peek) < 0) {
				r->buf_len = 0;
				if (evr_next_file(r))
					continue;
			}
			r->buf_len = 0;
			return 0;
		}
		if (r->fd < 0) {
			if (!evr_next_file(r))
				return 0;
			continue;
		}
		if ((have = evr_fill(r, SPOOL_EVENT_HDR)) < 0)
			return (int)have;
		rc = spool_event_decode(r->buf + (r->off - r->buf_off), (size_t)have, ev_r);
		if (rc == -EAGAIN && have >= SPOOL_EVENT_HDR) {
			/* a record longer than the window: read it whole */
			const uint8_t *h = r->buf + (r->off - r->buf_off);
			size_t need = spool_event_size(get32(h + 8));

			if (need <= SPOOL_EVENT_MAX + SPOOL_EVENT_HDR + 8) {
				if ((have = evr_fill(r, need)) < 0)
					return (int)have;
				rc = spool_event_decode(r->buf + (r->off - r->buf_off), (size_t)have,
							ev_r);
			}
		}
		if (rc < 0) {
			/* The end of what this file holds so far. Once a later file exists, this one
			 * is complete (the writer moved on): go there; bytes here that are not a
			 * record are a torn tail recovery cut. */
			r->buf_len = 0;   /* read it again next time: it may be written by then */
			if (evr_next_file(r))
				continue;
			return 0;
		}
		if (ev_r->type == SPOOL_EVT_FILE) {
			if (ev_r->seq > r->seq)
				r->seq = ev_r->seq;   /* events before it were removed: go on from here */
			r->off += ev_r->rec_len;
			continue;
		}
		if (ev_r->seq <= r->seq) {   /* consumed already */
			r->off += ev_r->rec_len;
			continue;
		}
		if (ev_r->seq > limit) {
			r->buf_len = 0;   /* not durable yet: a failed batch may still rewrite it */
			return 0;
		}
		r->off += ev_r->rec_len;
		r->seq = ev_r->seq;
		r->end_checked = false;
		return 1;
	}
}
