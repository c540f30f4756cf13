/*
 * spool_scan.c - reading the spool: the segment and journal scanners (used by recovery in
 * spool.c and by the reader), queue ids, and the read-only reader API of spool.h (spool_scan,
 * spool_read_body) for the queue tool and other processes.
 *
 * Any thread, any process; never writes. Safe while the daemon appends: a record being written
 * fails its checksum and, lying at the tail, is simply not there yet. A file that vanishes between
 * listing and opening (a reclaimed segment, a rolled journal) is skipped or the listing redone.
 * Reads go through a 1 MiB window so a segment of small records costs a few large preads.
 *
 * Damage: bytes in the middle of a segment that are not a valid record, with a valid record after
 * them, are skipped and reported (struct spool_damage): by the record's own length when its header
 * checksum holds, else up to the next 8-aligned offset where a header, its queue id (it must name
 * that very offset) and the payload checksum all validate. Only bad bytes with nothing valid after
 * them are a torn tail. So one bad byte costs one record, never the records after it.
 */
#include <ctype.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "spool_impl.h"

#define WIN_SIZE (1u << 20)

/* ---- Queue ids ---- */

void spool_qid_format(spool_qid qid, char out[SPOOL_QID_STRLEN + 1])
{
	snprintf(out, SPOOL_QID_STRLEN + 1, "%016" PRIX64, qid);
}

int spool_qid_parse(const char *s, spool_qid *qid_r)
{
	spool_qid q = 0;

	if (!s || strlen(s) != SPOOL_QID_STRLEN)
		return -EINVAL;
	for (int i = 0; i < SPOOL_QID_STRLEN; i++) {
		int c = (unsigned char)s[i], v;

		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'A' && c <= 'F')
			v = c - 'A' + 10;
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return -EINVAL;
		q = (q << 4) | (unsigned)v;
	}
	*qid_r = q;
	return 0;
}

/* ---- Directory helpers ---- */

void spool_seg_name(char out[32], uint32_t segno)
{
	snprintf(out, 32, "seg-%08" PRIx32 ".dat", segno);
}

void spool_journal_name(char out[32], uint32_t n)
{
	snprintf(out, 32, "journal-%08" PRIx32 ".log", n);
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

int spool_dir_list(int dfd, const char *prefix, const char *suffix, uint32_t **nums_r,
		   size_t *n_r)
{
	size_t plen = strlen(prefix), slen = strlen(suffix), n = 0, cap = 0;
	uint32_t *nums = NULL;
	struct dirent *de;
	DIR *d;
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		int err = -errno;

		close(fd);
		return err;
	}
	while ((de = readdir(d))) {
		const char *nm = de->d_name;
		size_t len = strlen(nm);
		uint32_t v = 0;
		bool ok = len == plen + 8 + slen && !strncmp(nm, prefix, plen) &&
			  !strcmp(nm + plen + 8, suffix);

		for (size_t i = 0; ok && i < 8; i++) {
			int c = (unsigned char)nm[plen + i];

			if (isdigit(c))
				v = v * 16 + (uint32_t)(c - '0');
			else if (c >= 'a' && c <= 'f')
				v = v * 16 + (uint32_t)(c - 'a' + 10);
			else
				ok = false;
		}
		if (!ok)
			continue;
		if (n == cap) {
			uint32_t *nn = realloc(nums, (cap = cap ? cap * 2 : 64) * sizeof(*nums));

			if (!nn) {
				free(nums);
				closedir(d);
				return -ENOMEM;
			}
			nums = nn;
		}
		nums[n++] = v;
	}
	closedir(d);
	if (n)
		qsort(nums, n, sizeof(*nums), cmp_u32);
	*nums_r = nums;
	*n_r = n;
	return 0;
}

/* ---- A read window over a file ---- */

struct rwin {
	int      fd;
	uint64_t fsize;
	size_t   cap;      /* of buf: WIN_SIZE, or less for a small file */
	uint8_t *buf;
	uint64_t wstart;
	size_t   wlen;
	uint8_t *big;
	size_t   bigcap;
};

static ssize_t pread_full(int fd, void *p, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (uint8_t *)p + got, n - got, (off_t)(off + got));

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* Points *p_r at up to n bytes at off; *got_r = how many exist (fewer at the end of the file).
 * 0 or -errno. */
static int win_get(struct rwin *w, uint64_t off, uint64_t n, const uint8_t **p_r, size_t *got_r)
{
	uint64_t want = off >= w->fsize ? 0 : (w->fsize - off < n ? w->fsize - off : n);
	ssize_t r;

	if (off >= w->wstart && off + want <= w->wstart + w->wlen) {
		*p_r = w->buf + (off - w->wstart);
		*got_r = want;
		return 0;
	}
	if (want <= w->cap) {
		uint64_t fill = w->fsize - off < w->cap ? w->fsize - off : w->cap;

		r = pread_full(w->fd, w->buf, fill, off);
		if (r < 0)
			return (int)r;
		w->wstart = off;
		w->wlen = (size_t)r;
		*p_r = w->buf;
		*got_r = (size_t)r < want ? (size_t)r : want;
		return 0;
	}
	if (want > w->bigcap) {
		uint8_t *nb = realloc(w->big, want);

		if (!nb)
			return -ENOMEM;
		w->big = nb;
		w->bigcap = want;
	}
	r = pread_full(w->fd, w->big, want, off);
	if (r < 0)
		return (int)r;
	*p_r = w->big;
	*got_r = (size_t)r;
	return 0;
}

static int win_open(struct rwin *w, int fd)
{
	struct stat st;

	memset(w, 0, sizeof(*w));
	if (fstat(fd, &st) < 0)
		return -errno;
	w->fd = fd;
	w->fsize = (uint64_t)st.st_size;
	w->cap = w->fsize < WIN_SIZE ? (w->fsize < 4096 ? 4096 : (size_t)w->fsize) : WIN_SIZE;
	w->buf = malloc(w->cap);
	return w->buf ? 0 : -ENOMEM;
}

static void win_close(struct rwin *w)
{
	free(w->buf);
	free(w->big);
}

/* ---- Segments ---- */

/* Checks the record at off: 0 valid (info and payload set), -ENODATA end, -EBADMSG / -EAGAIN bad
 * header, 1 header good but payload bad or short, -errno on read errors (< -EAGAIN... see
 * callers: they compare exactly). */
static int rec_at(struct rwin *w, unsigned shard, uint32_t segno, uint64_t off,
		  struct spool_record_info *info, const uint8_t **payload_r, int *ioerr)
{
	const uint8_t *p;
	size_t got;
	int rc;

	*ioerr = 0;
	if ((rc = win_get(w, off, SPOOL_RECORD_HDR_SIZE, &p, &got)) < 0) {
		*ioerr = rc;
		return -EIO;
	}
	rc = spool_record_hdr_decode(p, got, info);
	if (rc == 0 && info->qid != spool_qid_make(shard, segno, off))
		rc = -EBADMSG;
	if (rc)
		return rc;
	if (off + info->rec_len > w->fsize)
		return 1;
	if ((rc = win_get(w, off + info->hdr_size, info->body_len + info->env_len, &p, &got)) < 0) {
		*ioerr = rc;
		return -EIO;
	}
	if (spool_record_payload_check(info, p, got))
		return 1;
	*payload_r = p;
	return 0;
}

/*
 * The offset of the first valid record (header and payload checksums, a queue id naming this very
 * place, and the seal of key) at an aligned offset from start on, or UINT64_MAX. A record that
 * validates but for its seal (a message body can hold bytes that look like a record; so does a
 * record written before seals existed) is not taken: *unsealed_r gets the first such offset
 * (else UINT64_MAX). Without a key nothing is taken. Holes (the preallocated tail) are skipped
 * with SEEK_DATA; data is searched a window at a time for the magic.
 */
static uint64_t valid_after(struct rwin *w, unsigned shard, uint32_t segno, uint64_t start,
			    const uint64_t *key, uint64_t *unsealed_r)
{
	uint64_t o = spool_record_align(start);

	*unsealed_r = UINT64_MAX;
	while (o + SPOOL_RECORD_HDR_SIZE <= w->fsize) {
		const uint8_t *p;
		size_t got, i;
		off_t d = lseek(w->fd, (off_t)o, SEEK_DATA);

		if (d < 0 && errno == ENXIO)
			return UINT64_MAX;   /* only holes from here on */
		if (d > 0 && (uint64_t)d > o)
			o = spool_record_align((uint64_t)d);
		if (o + SPOOL_RECORD_HDR_SIZE > w->fsize)
			break;
		if (win_get(w, o, w->fsize - o < w->cap ? w->fsize - o : w->cap, &p, &got) < 0 ||
		    got < 4)
			return UINT64_MAX;
		for (i = 0; i + 4 <= got; i += 8) {
			struct spool_record_info info;
			const uint8_t *pl, *h;
			size_t hg;
			uint32_t magic;
			int ioerr;

			memcpy(&magic, p + i, 4);
			if (le32toh(magic) != SPOOL_RECORD_MAGIC)
				continue;
			if (rec_at(w, shard, segno, o + i, &info, &pl, &ioerr) == 0 &&
			    win_get(w, o + i, SPOOL_RECORD_HDR_SIZE, &h, &hg) == 0 &&
			    hg == SPOOL_RECORD_HDR_SIZE) {
				if (key && spool_record_seal_ok(h, *key))
					return o + i;
				if (*unsealed_r == UINT64_MAX)
					*unsealed_r = o + i;
			}
			/* rec_at moved the window: look again from the next slot. */
			i += 8;
			break;
		}
		o += i;
	}
	return UINT64_MAX;
}

/* End of the last non-zero byte in [from, to), or from. */
static uint64_t nonzero_end_range(struct rwin *w, uint64_t from, uint64_t to)
{
	uint64_t end = from;

	for (uint64_t o = from; o < to; ) {
		const uint8_t *p;
		size_t got;

		if (win_get(w, o, to - o < w->cap ? to - o : w->cap, &p, &got) < 0 || got == 0)
			break;
		for (size_t i = got; i > 0; i--)
			if (p[i - 1]) {
				end = o + i;
				break;
			}
		o += got;
	}
	return end;
}

/* End of the last non-zero byte in [from, fsize), or from. The preallocated tail of a segment is
 * unwritten extents, which SEEK_DATA skips without reading 64 MiB of zeros. */
static uint64_t nonzero_end(struct rwin *w, uint64_t from)
{
	uint64_t end = from, o = from;

	while (o < w->fsize) {
		off_t d = lseek(w->fd, (off_t)o, SEEK_DATA), h;

		if (d < 0) {
			/* ENXIO: only holes left; else no SEEK_DATA here: read it all. */
			if (errno != ENXIO) {
				uint64_t e = nonzero_end_range(w, o, w->fsize);

				if (e > o)
					end = e;
			}
			break;
		}
		h = lseek(w->fd, d, SEEK_HOLE);
		if (h < 0 || (uint64_t)h > w->fsize)
			h = (off_t)w->fsize;
		if ((uint64_t)h <= (uint64_t)d)
			break;
		{
			uint64_t e = nonzero_end_range(w, (uint64_t)d, (uint64_t)h);

			if (e > (uint64_t)d)
				end = e;
		}
		o = (uint64_t)h;
	}
	return end;
}

int spool_segscan_sealed(int fd, unsigned shard, uint32_t segno, bool measure_tail,
			 const uint64_t *key, spool_segscan_fn *fn, void *arg, struct spool_segscan *r)
{
	struct rwin w;
	uint64_t off = 0, next_good = 0, unsealed = UINT64_MAX;
	int rc, ioerr = 0;

	memset(r, 0, sizeof(*r));
	if ((rc = win_open(&w, fd)) < 0)
		return rc;
	r->file_size = w.fsize;
	while (off < w.fsize) {
		struct spool_record_info info;
		const uint8_t *payload = NULL;
		uint64_t end;
		bool hdr_ok = false;

		rc = rec_at(&w, shard, segno, off, &info, &payload, &ioerr);
		if (rc == -EIO && ioerr) {
			rc = ioerr;
			goto out;
		}
		if (rc == 0) {
			r->records++;
			if ((rc = fn(arg, &info, off, payload)) != 0)
				goto out;
			off += info.rec_len;
			r->good_end = off;
			continue;
		}
		/*
		 * Not a valid record: the end (zeros), a torn tail (nothing valid after it), or
		 * damage in the middle (a valid record follows). Damage is skipped: by the record's
		 * own length when its header is intact and a valid record starts right there (the
		 * lengths of a checksummed header reached through the records before it are the
		 * writer's), else to the next offset where a sealed record validates. The last
		 * search's answer is reused while it lies ahead, so a run of bad records costs one
		 * pass over the file, not one each.
		 */
		if (rc == 1 && off + info.rec_len < w.fsize) {
			struct spool_record_info ni;
			const uint8_t *np;
			int e2;

			end = off + info.rec_len;
			hdr_ok = rec_at(&w, shard, segno, end, &ni, &np, &e2) == 0;
		}
		if (!hdr_ok) {
			if (next_good != UINT64_MAX && next_good <= off)
				next_good = valid_after(&w, shard, segno, off + 8, key, &unsealed);
			if (next_good == UINT64_MAX) {
				/* Unsealed records after it: not a torn tail, but nothing we may
				 * take. The caller keeps the bytes (and does not truncate). */
				if (unsealed != UINT64_MAX && !r->unresolved) {
					r->unresolved = true;
					r->unresolved_off = off;
				}
				break;
			}
			end = next_good;
		}
		if (!r->skipped)
			r->corrupt_off = off;
		r->skipped++;
		r->damaged_bytes += end - off;
		if (r->ndamage < SPOOL_DAMAGE_MAX)
			r->damage[r->ndamage++] = (struct spool_damage){ off, end - off, hdr_ok };
		off = end;
	}
	rc = 0;
	if (measure_tail)
		r->torn_bytes = nonzero_end(&w, r->good_end) - r->good_end;
out:
	win_close(&w);
	return rc;
}

int spool_segscan(int fd, unsigned shard, uint32_t segno, bool measure_tail,
		  spool_segscan_fn *fn, void *arg, struct spool_segscan *r)
{
	return spool_segscan_sealed(fd, shard, segno, measure_tail, NULL, fn, arg, r);
}

/* ---- Seal keys ---- */

int spool_seal_load(int dfd, uint64_t *key_r)
{
	uint8_t b[SPOOL_SEAL_FILE_LEN];
	uint64_t k, sum;
	ssize_t n;
	int fd = openat(dfd, SPOOL_SEAL_FILE, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = pread(fd, b, sizeof(b), 0);
	close(fd);
	if (n != (ssize_t)sizeof(b))
		return n < 0 ? -errno : -EBADMSG;
	memcpy(&k, b, 8);
	memcpy(&sum, b + 8, 8);
	if (le64toh(sum) != XXH3_64bits(b, 8))
		return -EBADMSG;
	*key_r = le64toh(k);
	return 0;
}

/* ---- Journals ---- */

int spool_jscan(int fd, spool_jscan_fn *fn, void *arg, struct spool_segscan *r)
{
	struct rwin w;
	uint64_t off = 0, next_good = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	if ((rc = win_open(&w, fd)) < 0)
		return rc;
	r->file_size = w.fsize;
	while (off < w.fsize) {
		struct spool_jrec j;
		const uint8_t *p;
		size_t got;

		if ((rc = win_get(&w, off, SPOOL_JREC_SIZE, &p, &got)) < 0)
			goto out;
		/* Zeros (-ENODATA) end the records only if nothing valid follows: a lost write in
		 * the middle must not hide the events after it (an operator's delete, a DONE). */
		rc = spool_record_jrec_decode(p, got, &j);
		if (rc == 0 && j.event == SPOOL_JEV_DEFER_INFO) {
			/* Text blocks follow (a bad one makes the record bad: the blocks are then
			 * stepped over one by one, as they never decode). */
			size_t blocks = spool_record_jtext_blocks(&j);

			if ((rc = win_get(&w, off + SPOOL_JREC_SIZE, blocks, &p, &got)) < 0)
				goto out;
			rc = spool_record_jtext_check(&j, p, got) == 0 ? 0 : -EBADMSG;
			if (rc == 0) {
				r->records++;
				if ((rc = fn(arg, &j)) != 0)
					goto out;
				off += SPOOL_JREC_SIZE + blocks;
				r->good_end = off;
				continue;
			}
		}
		if (rc == 0) {
			r->records++;
			if ((rc = fn(arg, &j)) != 0)
				goto out;
			off += SPOOL_JREC_SIZE;
			r->good_end = off;
			continue;
		}
		/* Fixed-size records: a bad one in the middle is skipped, one at the tail is torn
		 * (the last search's answer is reused while it lies ahead). */
		if (next_good != UINT64_MAX && next_good <= off) {
			next_good = UINT64_MAX;
			for (uint64_t o = off + SPOOL_JREC_SIZE; o + SPOOL_JREC_SIZE <= w.fsize;
			     o += SPOOL_JREC_SIZE) {
				struct spool_jrec j2;

				/* The preallocated tail is holes: skip them (every 64 KiB). */
				if (o == off + SPOOL_JREC_SIZE || (o & 0xffff) == 0) {
					off_t d = lseek(w.fd, (off_t)o, SEEK_DATA);

					if (d < 0 && errno == ENXIO)
						break;
					if (d > 0 && (uint64_t)d > o) {
						o = ((uint64_t)d + SPOOL_JREC_SIZE - 1) /
						    SPOOL_JREC_SIZE * SPOOL_JREC_SIZE;
						if (o + SPOOL_JREC_SIZE > w.fsize)
							break;
					}
				}
				if (win_get(&w, o, SPOOL_JREC_SIZE, &p, &got) < 0)
					break;
				if (spool_record_jrec_decode(p, got, &j2) == 0) {
					next_good = o;
					break;
				}
			}
		}
		if (next_good == UINT64_MAX)
			break;
		if (!r->skipped)
			r->corrupt_off = off;
		r->skipped++;
		off += SPOOL_JREC_SIZE;
	}
	rc = 0;
	r->torn_bytes = nonzero_end(&w, r->good_end) - r->good_end;
out:
	win_close(&w);
	return rc;
}

/* ---- The reader ---- */

struct reader {
	struct spool_index ix;
	unsigned           shard;
	spool_iter_fn     *fn;
	void              *arg;
	int                ret;
};

static int reader_jrec(void *arg, const struct spool_jrec *j)
{
	struct reader *rd = arg;
	struct spool_ient *e;

	if (j->event == SPOOL_JEV_HIGHWATER || j->event == SPOOL_JEV_EVMARK ||
	    j->event == SPOOL_JEV_EVDURABLE)
		return 0;
	e = spool_index_put(&rd->ix, j->qid);
	if (!e)
		return -ENOMEM;
	(void)spool_index_apply(e, j);   /* a bad event in a checksummed record: ignore it */
	return 0;
}

static char *dup_slice(struct slice s)
{
	char *c = malloc(s.len + 1);

	if (c) {
		if (s.len)
			memcpy(c, s.p, s.len);
		c[s.len] = 0;
	}
	return c;
}

void spool_entry_free(struct spool_entry *e)
{
	if (e->rcpts)
		for (uint32_t i = 0; i < e->nrcpt; i++)
			free(e->rcpts[i]);
	free(e->rcpts);
	free(e->rcpt_state);
	free(e->mail_from);
	free(e->message_id);
	free(e->client_addr);
	free(e->helo);
	free(e->session_id);
	free(e->last_reply);
	memset(e, 0, sizeof(*e));
}

int spool_entry_build(struct spool_entry *e, const struct spool_record_info *info,
		      const uint8_t *payload)
{
	struct spool_envelope env;
	struct slice *rcpts = NULL, mid;
	uint32_t nrcpt = 0;
	bool oom = false;

	memset(e, 0, sizeof(*e));
	if (spool_record_env_decode(payload + info->body_len, info->env_len, &env, NULL, 0,
				    &nrcpt) < 0)
		return -EBADMSG;
	if (nrcpt) {
		rcpts = calloc(nrcpt, sizeof(*rcpts));
		if (!rcpts)
			return -ENOMEM;
		spool_record_env_decode(payload + info->body_len, info->env_len, &env, rcpts,
					nrcpt, &nrcpt);
	}
	e->qid = info->qid;
	e->body_len = info->body_len;
	e->received_ns = info->received_ns;
	e->role = env.role;
	e->nrcpt = nrcpt;
	e->score_milli = env.score_milli;
	e->action = env.action;
	e->rcpts = calloc(nrcpt ? nrcpt : 1, sizeof(char *));
	oom |= !e->rcpts;
	for (uint32_t i = 0; e->rcpts && i < nrcpt; i++)
		oom |= !(e->rcpts[i] = dup_slice(rcpts[i]));
	oom |= !(e->mail_from = dup_slice(env.mail_from));
	oom |= !(e->client_addr = dup_slice(env.client_addr));
	oom |= !(e->helo = dup_slice(env.helo));
	oom |= !(e->session_id = dup_slice(env.session_id));
	if (spool_record_message_id(payload, info->body_len, &mid) == 0 &&
	    (e->message_id = malloc(mid.len + 1))) {
		size_t k = 0;

		/* Unfold: drop the CR LF of continuation lines. */
		for (size_t i = 0; i < mid.len; i++)
			if (mid.p[i] != '\r' && mid.p[i] != '\n')
				e->message_id[k++] = mid.p[i];
		e->message_id[k] = 0;
	}
	free(rcpts);
	if (oom) {
		spool_entry_free(e);
		return -ENOMEM;
	}
	return 0;
}

static int reader_rec(void *arg, const struct spool_record_info *info, uint64_t off,
		      const uint8_t *payload)
{
	struct reader *rd = arg;
	struct spool_entry e;
	struct spool_ient *st;
	int rc;

	if (spool_entry_build(&e, info, payload) < 0)
		return 0;   /* a checksummed record with an undecodable envelope: skip it */
	st = spool_index_get(&rd->ix, info->qid);
	if (st) {
		st->nrcpt = e.nrcpt;
		e.done = st->flags & SPOOL_IF_DONE;
		e.held = (st->flags & SPOOL_IF_HELD) != 0;
		e.defer_until = st->defer_until;
		e.attempts = st->attempts;
		if (st->last_reply)
			e.last_reply = strdup(st->last_reply);   /* NULL on ENOMEM: shown as none */
		spool_index_counts(st, &e.rcpt_done, &e.rcpt_failed);
		if (st->rcap && e.nrcpt && (e.rcpt_state = calloc(e.nrcpt, 1)))
			memcpy(e.rcpt_state, st->rstate, st->rcap < e.nrcpt ? st->rcap : e.nrcpt);
	}
	rc = rd->fn(rd->arg, &e);
	spool_entry_free(&e);
	if (rc)
		rd->ret = rc;
	return rc;
}

static int open_shard_dirs(const char *dir, uint32_t **ids_r, size_t *n_r, int *dfd_r)
{
	size_t n = 0, cap = 0;
	uint32_t *ids = NULL;
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		unsigned v;
		char tail;

		if (sscanf(de->d_name, "shard-%u%c", &v, &tail) != 1 || v > 255)
			continue;
		if (n == cap) {
			uint32_t *ni = realloc(ids, (cap = cap ? cap * 2 : 16) * sizeof(*ids));

			if (!ni) {
				free(ids);
				closedir(d);
				return -ENOMEM;
			}
			ids = ni;
		}
		ids[n++] = v;
	}
	closedir(d);
	if (n)
		qsort(ids, n, sizeof(*ids), cmp_u32);
	*dfd_r = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*dfd_r < 0) {
		free(ids);
		return -errno;
	}
	*ids_r = ids;
	*n_r = n;
	return 0;
}

/* Replays every journal of the shard into rd->ix. A journal that vanished (rolled) while we
 * listed means a newer one exists: list again. */
static int reader_journals(int sdfd, struct reader *rd)
{
	for (int attempt = 0; attempt < 5; attempt++) {
		uint32_t *nums;
		size_t n;
		bool vanished = false;
		int rc = spool_dir_list(sdfd, "journal-", ".log", &nums, &n);

		if (rc < 0)
			return rc;
		spool_index_free(&rd->ix);
		for (size_t i = 0; i < n && !vanished && rc == 0; i++) {
			char name[32];
			struct spool_segscan r;
			int fd;

			spool_journal_name(name, nums[i]);
			fd = openat(sdfd, name, O_RDONLY | O_CLOEXEC);
			if (fd < 0) {
				if (errno == ENOENT)
					vanished = true;
				else
					rc = -errno;
				continue;
			}
			rc = spool_jscan(fd, reader_jrec, rd, &r);
			close(fd);
		}
		free(nums);
		if (rc < 0)
			return rc;
		if (!vanished)
			return 0;
	}
	return -EAGAIN;
}

int spool_scan(const char *dir, spool_iter_fn *fn, void *arg)
{
	uint32_t *shards = NULL;
	size_t nshards = 0;
	int dfd = -1, rc;

	if ((rc = open_shard_dirs(dir, &shards, &nshards, &dfd)) < 0)
		return rc;
	for (size_t s = 0; s < nshards && rc == 0; s++) {
		struct reader rd = { .shard = shards[s], .fn = fn, .arg = arg };
		uint64_t key = 0;
		bool have_key;
		char name[32];
		uint32_t *segs = NULL;
		size_t nsegs = 0;
		int sdfd;

		snprintf(name, sizeof(name), "shard-%u", shards[s]);
		sdfd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (sdfd < 0)
			continue;
		rc = reader_journals(sdfd, &rd);
		if (rc == 0)
			rc = spool_dir_list(sdfd, "seg-", ".dat", &segs, &nsegs);
		have_key = spool_seal_load(sdfd, &key) == 0;
		for (size_t i = 0; i < nsegs && rc == 0; i++) {
			struct spool_segscan r;
			char sn[32];
			int fd;

			spool_seg_name(sn, segs[i]);
			fd = openat(sdfd, sn, O_RDONLY | O_CLOEXEC);
			if (fd < 0)
				continue;   /* reclaimed since the listing: its messages are done */
			rc = spool_segscan_sealed(fd, shards[s], segs[i], false,
						  have_key ? &key : NULL, reader_rec, &rd, &r);
			close(fd);
			if (rd.ret)
				rc = rd.ret;
		}
		free(segs);
		spool_index_free(&rd.ix);
		close(sdfd);
	}
	free(shards);
	close(dfd);
	return rc;
}

int spool_read_record(const char *dir, spool_qid qid, uint8_t **payload_r,
		      struct spool_record_info *info_r)
{
	char path[4096], sn[32];
	struct rwin w;
	const uint8_t *p = NULL;
	int fd, rc, ioerr;

	spool_seg_name(sn, SPOOL_QID_SEG(qid));
	snprintf(path, sizeof(path), "%s/shard-%u/%s", dir, SPOOL_QID_SHARD(qid), sn);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	if ((rc = win_open(&w, fd)) < 0) {
		close(fd);
		return rc;
	}
	rc = rec_at(&w, SPOOL_QID_SHARD(qid), SPOOL_QID_SEG(qid), SPOOL_QID_OFF(qid), info_r, &p,
		    &ioerr);
	if (rc == -EIO && ioerr)
		rc = ioerr;
	else if (rc == -ENODATA || (rc == -EAGAIN && SPOOL_QID_OFF(qid) >= w.fsize))
		rc = -ENOENT;
	else if (rc == 1 || rc == -EAGAIN)
		rc = -EBADMSG;
	if (rc == 0) {
		size_t n = info_r->body_len + info_r->env_len;

		*payload_r = malloc(n ? n : 1);
		if (!*payload_r)
			rc = -ENOMEM;
		else
			memcpy(*payload_r, p, n);
	}
	win_close(&w);
	close(fd);
	return rc;
}

int spool_read_body(const char *dir, spool_qid qid, uint8_t **body_r, size_t *len_r)
{
	struct spool_record_info info;
	uint8_t *payload;
	int rc = spool_read_record(dir, qid, &payload, &info);

	if (rc < 0)
		return rc;
	*body_r = payload;   /* the envelope after the body is simply not counted */
	*len_r = info.body_len;
	return 0;
}
