/*
 * test_spool.c - dataplane/spool: record formats, group commit on a real io_uring ring
 * (SINGLE_ISSUER | DEFER_TASKRUN, as the shards set it up), recovery (torn tails at every byte
 * offset, corruption in the middle), spill, the journal and reclaim, ENOSPC on a small tmpfs,
 * a failed write failing its whole batch, and the reader + sluice-queue on a spool left behind by
 * a killed process. Every test works in its own temporary directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "base/log.h"
#include "spool.h"
#include "spool_impl.h"
#include "spool_record.h"
#include "spool_event.h"

#define UD_TAG 0x5a

/* ---- Harness ---- */

struct env {
	char              dir[256];
	struct io_uring   ring;
	struct spool     *sp;
	struct spool_conf conf;
	bool              tmpfs;   /* e->dir is a tmpfs mounted by the test */
};

struct result {
	spool_qid qid;
	int       err;
	int       calls;
};

static void done_cb(void *arg, spool_qid qid, int err)
{
	struct result *r = arg;

	r->qid = qid;
	r->err = err;
	r->calls++;
}

static void rm_rf(const char *path)
{
	char cmd[1100];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	if (system(cmd) != 0)
		fprintf(stderr, "rm -rf %s failed\n", path);
}

static void ring_init(struct io_uring *ring)
{
	struct io_uring_params p = { .flags = IORING_SETUP_SINGLE_ISSUER |
					      IORING_SETUP_DEFER_TASKRUN };

	assert_int_equal(io_uring_queue_init_params(64, ring, &p), 0);
}

static void env_conf(struct env *e)
{
	memset(&e->conf, 0, sizeof(e->conf));
	e->conf.dir = e->dir;
	e->conf.shard_id = 3;
	e->conf.segment_size = 1 << 20;
	e->conf.spill_bytes = 1 << 20;
	e->conf.min_free_bytes = 1;
}

static void env_open(struct env *e)
{
	assert_int_equal(spool_open(&e->sp, &e->conf, &e->ring, UD_TAG), 0);
}

static void env_close(struct env *e);

static struct env *env_new(void)
{
	struct env *e = calloc(1, sizeof(*e));
	const char *t = getenv("TMPDIR");

	snprintf(e->dir, sizeof(e->dir), "%s/spooltest.XXXXXX", t ? t : "/tmp");
	assert_non_null(mkdtemp(e->dir));
	ring_init(&e->ring);
	env_conf(e);
	return e;
}

static void env_free(struct env *e)
{
	if (e->sp)
		env_close(e);
	if (e->tmpfs)
		umount2(e->dir, MNT_DETACH);
	io_uring_queue_exit(&e->ring);
	rm_rf(e->dir);
	free(e);
}

/* One loop turn of a shard: flush, submit and wait, hand our CQEs to the spool. */
static void turn(struct env *e)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;

	spool_flush(e->sp);
	if (!spool_busy(e->sp))
		return;
	assert_true(io_uring_submit_and_wait(&e->ring, 1) >= 0);
	io_uring_for_each_cqe(&e->ring, head, cqe) {
		assert_int_equal(cqe->user_data >> 56, UD_TAG);
		spool_handle_cqe(e->sp, cqe);
		n++;
	}
	io_uring_cq_advance(&e->ring, n);
}

static void drain(struct env *e)
{
	for (int i = 0; i < 100000 && spool_busy(e->sp); i++)
		turn(e);
	assert_false(spool_busy(e->sp));
}

static void env_close(struct env *e)
{
	drain(e);
	spool_close(&e->sp);
	assert_null(e->sp);
}

static void body_fill(uint8_t *p, size_t len, unsigned seed)
{
	static const char hdr[] = "Message-ID: <%u.%zu@test.example>\r\nSubject: t\r\n\r\n";
	char h[128];
	int hl = snprintf(h, sizeof(h), hdr, seed, len);

	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)('a' + (i * 7 + seed) % 26);
	for (size_t i = 0; i + 1 < len; i += 78) {   /* CR LF lines */
		p[i] = '\r';
		p[i + 1] = '\n';
	}
	if (len >= (size_t)hl)
		memcpy(p, h, (size_t)hl);
}

struct msgspec {
	size_t        len;
	unsigned      seed;
	uint32_t      nrcpt;
	const char   *from;
	struct slice  rcpts[4];
};

static void env_fill(struct spool_envelope *ev, const struct msgspec *ms)
{
	memset(ev, 0, sizeof(*ev));
	ev->role = ms->seed & 1 ? SPOOL_ROLE_FALLBACK : SPOOL_ROLE_PRIMARY;
	ev->body_type = 1;
	ev->tls = true;
	ev->mail_from = (struct slice){ ms->from, strlen(ms->from) };
	ev->nrcpt = ms->nrcpt;
	ev->rcpts = ms->rcpts;
	ev->helo = SLICE_LIT("client.example");
	ev->client_addr = SLICE_LIT("192.0.2.7");
	ev->listener = SLICE_LIT("198.51.100.1:25");
	ev->tls_info = SLICE_LIT("TLSv1.3 TLS_AES_256_GCM_SHA384");
	ev->session_id = SLICE_LIT("sess-1");
	ev->received_ns = 1700000000000000000ull + ms->seed;
	ev->score_milli = -1500 + (int32_t)ms->seed;
	ev->rules_hit = SLICE_LIT("A,B");
}

static struct msgspec spec(size_t len, unsigned seed)
{
	struct msgspec ms = { .len = len, .seed = seed, .nrcpt = 2, .from = "alice@example.org" };

	ms.rcpts[0] = SLICE_LIT("bob@example.net");
	ms.rcpts[1] = SLICE_LIT("carol@example.net");
	return ms;
}

/* Begins, writes (in pieces of `piece` bytes, 0 = whole) and commits one message. */
static int commit_msg(struct env *e, const struct msgspec *ms, size_t piece, struct result *r)
{
	struct spool_envelope ev;
	struct spool_msg *m;
	uint8_t *body = malloc(ms->len + 1);
	int rc = spool_msg_begin(e->sp, &m);

	if (rc) {
		free(body);
		return rc;
	}
	body_fill(body, ms->len, ms->seed);
	for (size_t o = 0; o < ms->len; ) {
		size_t n = piece && piece < ms->len - o ? piece : ms->len - o;

		if ((rc = spool_msg_write(m, body + o, n)) < 0) {
			spool_msg_abort(&m);
			free(body);
			return rc;
		}
		o += n;
	}
	assert_int_equal(spool_msg_size(m), ms->len);
	free(body);
	env_fill(&ev, ms);
	memset(r, 0, sizeof(*r));
	rc = spool_msg_commit(m, &ev, done_cb, r);
	assert_int_equal(r->calls, 0);   /* never from inside commit */
	return rc;
}

static void check_body(const char *dir, spool_qid qid, const struct msgspec *ms)
{
	uint8_t *body, *want = malloc(ms->len + 1);
	size_t len;

	body_fill(want, ms->len, ms->seed);
	assert_int_equal(spool_read_body(dir, qid, &body, &len), 0);
	assert_int_equal(len, ms->len);
	assert_memory_equal(body, want, ms->len);
	free(body);
	free(want);
}

/* ---- Scan helpers ---- */

struct seen {
	spool_qid qid[4096];
	struct spool_entry copy[16];   /* first 16: a few fields kept */
	uint8_t   rstate[16][4];
	bool      done[4096];
	uint32_t  n, queued;
};

static int seen_fn(void *arg, const struct spool_entry *en)
{
	struct seen *s = arg;

	if (s->n < 4096) {
		if (s->n < 16) {
			s->copy[s->n] = *en;
			s->copy[s->n].mail_from = NULL;
			if (en->rcpt_state)
				memcpy(s->rstate[s->n], en->rcpt_state, en->nrcpt < 4 ? en->nrcpt : 4);
		}
		s->done[s->n] = en->done;
		s->qid[s->n++] = en->qid;
	}
	s->queued += !en->done;
	return 0;
}

static int seen_jrec(void *arg, const struct spool_jrec *j)
{
	(void)arg;
	(void)j;
	return 0;
}

static struct seen *scan_all(const char *dir)
{
	struct seen *s = calloc(1, sizeof(*s));

	assert_int_equal(spool_scan(dir, seen_fn, s), 0);
	return s;
}

static int count_files(const char *dir, const char *suffix)
{
	char path[512];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "%s/shard-3", dir);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strlen(de->d_name) > strlen(suffix) &&
		    !strcmp(de->d_name + strlen(de->d_name) - strlen(suffix), suffix))
			n++;
	closedir(d);
	return n;
}

static void seg_path(const struct env *e, uint32_t segno, char *out, size_t len)
{
	snprintf(out, len, "%s/shard-3/seg-%08x.dat", e->dir, segno);
}

/* ---- Record formats ---- */

/* Fills the file system of dir to the last byte (a file "filler" in it, named into path). */
static void fill_disk(const char *dir, char *path, size_t pathlen)
{
	static uint8_t blk[65536];
	int fd;

	snprintf(path, pathlen, "%s/filler", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	memset(blk, 1, sizeof(blk));
	for (size_t sz = sizeof(blk); sz >= 512; sz /= 8)
		while (write(fd, blk, sz) == (ssize_t)sz)
			;
	close(fd);
}

static void test_record_env_roundtrip(void **state)
{
	struct msgspec ms = spec(10, 5);
	struct spool_envelope ev, got;
	struct slice rc[4];
	uint32_t nrcpt;
	size_t n;
	uint8_t *buf;

	(void)state;
	env_fill(&ev, &ms);
	n = spool_record_env_size(&ev);
	buf = malloc(n);
	assert_int_equal(spool_record_env_encode(&ev, buf), n);
	assert_int_equal(spool_record_env_decode(buf, n, &got, rc, 4, &nrcpt), 0);
	assert_int_equal(nrcpt, 2);
	assert_int_equal(got.role, ev.role);
	assert_true(got.tls);
	assert_false(got.smtputf8);
	assert_int_equal(got.received_ns, ev.received_ns);
	assert_int_equal(got.score_milli, ev.score_milli);
	assert_int_equal(got.mail_from.len, ev.mail_from.len);
	assert_memory_equal(got.mail_from.p, ev.mail_from.p, ev.mail_from.len);
	assert_memory_equal(rc[1].p, "carol@example.net", 17);
	assert_memory_equal(got.tls_info.p, ev.tls_info.p, ev.tls_info.len);
	/* Every truncation of the envelope is refused or decodes a prefix, never over-reads. */
	for (size_t k = 0; k < n; k++) {
		int r = spool_record_env_decode(buf, k, &got, rc, 4, &nrcpt);

		assert_true(r == 0 || r == -EBADMSG);
	}
	free(buf);

	/* An unknown tag is skipped. */
	{
		uint8_t u[] = { 0x99, 0x00, 3, 0, 0, 0, 'x', 'y', 'z',
				SPOOL_TLV_MAIL_FROM, 0, 1, 0, 0, 0, 'a' };

		assert_int_equal(spool_record_env_decode(u, sizeof(u), &got, rc, 4, &nrcpt), 0);
		assert_int_equal(got.mail_from.len, 1);
	}
}

static void test_record_header(void **state)
{
	uint8_t h[SPOOL_RECORD_HDR_SIZE], z[SPOOL_RECORD_HDR_SIZE] = { 0 };
	struct spool_record_info info;

	(void)state;
	spool_record_hdr_encode(h, 0x0300000100000002ull, 0, 100, 50, 7, 0x1234);
	assert_int_equal(spool_record_hdr_decode(h, sizeof(h), &info), 0);
	assert_int_equal(info.body_len, 100);
	assert_int_equal(info.env_len, 50);
	assert_int_equal(info.rec_len, 216);
	assert_int_equal(info.qid, 0x0300000100000002ull);
	assert_int_equal(spool_record_hdr_decode(z, sizeof(z), &info), -ENODATA);
	assert_int_equal(spool_record_hdr_decode(h, 63, &info), -EAGAIN);
	for (size_t i = 0; i < sizeof(h); i++) {
		h[i] ^= 0x40;
		assert_int_equal(spool_record_hdr_decode(h, sizeof(h), &info), -EBADMSG);
		h[i] ^= 0x40;
	}
}

static void test_record_message_id(void **state)
{
	static const struct { const char *label, *in, *want; } cases[] = {
		{ "plain", "Subject: x\r\nMessage-ID: <a@b>\r\n\r\nbody", "<a@b>" },
		{ "case", "message-id:<a@b>\r\n\r\n", "<a@b>" },
		{ "folded", "Message-Id:\r\n <a@b>\r\nX: y\r\n\r\n", "<a@b>" },
		{ "in body only", "Subject: x\r\n\r\nMessage-ID: <a@b>\r\n", NULL },
		{ "absent", "Subject: x\r\n\r\n", NULL },
		{ "empty value", "Message-ID:   \r\n\r\n", NULL },
		{ "bare LF", "Message-ID: <c@d>\n\n", "<c@d>" },
		{ "no end", "Message-ID: <e@f>", "<e@f>" },
		{ "prefix name", "Message-IDX: <a@b>\r\n\r\n", NULL },
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct slice s;
		int r = spool_record_message_id(cases[i].in, strlen(cases[i].in), &s);

		if (!cases[i].want) {
			if (r != -ENOENT)
				fail_msg("%s: found an id", cases[i].label);
			continue;
		}
		if (r != 0)
			fail_msg("%s: no id", cases[i].label);
		if (s.len != strlen(cases[i].want) || memcmp(s.p, cases[i].want, s.len))
			fail_msg("%s: got %.*s", cases[i].label, (int)s.len, s.p);
	}
}

static void test_qid_format(void **state)
{
	char s[SPOOL_QID_STRLEN + 1];
	spool_qid q;

	(void)state;
	spool_qid_format(0x03000001000000A0ull, s);
	assert_string_equal(s, "03000001000000A0");
	assert_int_equal(spool_qid_parse(s, &q), 0);
	assert_int_equal(q, 0x03000001000000A0ull);
	assert_int_equal(spool_qid_parse("03000001000000a0", &q), 0);
	assert_int_equal(spool_qid_parse("3000001000000A0", &q), -EINVAL);
	assert_int_equal(spool_qid_parse("03000001000000AG", &q), -EINVAL);
}

/* ---- Commit ---- */

static void test_commit_durable(void **state)
{
	struct env *e = env_new();
	struct msgspec ms = spec(5000, 1);
	struct spool_stats st;
	struct result r;

	(void)state;
	env_open(e);
	assert_int_equal(commit_msg(e, &ms, 0, &r), 0);
	assert_true(spool_busy(e->sp));
	assert_int_equal(r.calls, 0);
	drain(e);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(SPOOL_QID_SHARD(r.qid), 3);
	spool_get_stats(e->sp, &st);
	assert_int_equal(st.messages_committed, 1);
	assert_int_equal(st.bytes_committed, 5000);
	assert_int_equal(st.queued, 1);
	assert_true(st.syncs >= 1);
	/* Readable by another "process" while the spool is open. */
	check_body(e->dir, r.qid, &ms);
	env_free(e);
}

static void test_group_commit(void **state)
{
	enum { N = 200 };
	struct env *e = env_new();
	struct result r[N + 20];
	struct spool_stats st;

	(void)state;
	env_open(e);
	for (int i = 0; i < N; i++) {
		struct msgspec ms = spec(4096, (unsigned)i);

		assert_int_equal(commit_msg(e, &ms, 1000, &r[i]), 0);
	}
	spool_flush(e->sp);   /* starts the batch: its sync is now in flight */
	for (int i = N; i < N + 20; i++) {
		struct msgspec ms = spec(100, (unsigned)i);

		assert_int_equal(commit_msg(e, &ms, 0, &r[i]), 0);
	}
	drain(e);
	for (int i = 0; i < N + 20; i++) {
		assert_int_equal(r[i].calls, 1);
		assert_int_equal(r[i].err, 0);
	}
	spool_get_stats(e->sp, &st);
	assert_int_equal(st.messages_committed, N + 20);
	assert_true(st.syncs < N + 20);
	assert_true(st.syncs <= 8);
	assert_true(st.batches_max >= 20);
	env_free(e);
}

static void test_commit_delay(void **state)
{
	struct env *e = env_new();
	struct msgspec ms = spec(300, 9);
	struct result r, r2;

	(void)state;
	e->conf.commit_delay_us = 3000;
	env_open(e);
	drain(e);
	/* Nobody else is mid-message: no reason to wait, the batch goes at once. */
	assert_int_equal(commit_msg(e, &ms, 0, &r), 0);
	spool_set_siblings(e->sp, false);
	spool_flush(e->sp);
	assert_false(e->sp->timer_armed);
	assert_non_null(e->sp->batch);
	drain(e);
	assert_int_equal(r.calls, 1);
	/* Others are mid-message: the commit waits for them, up to the delay. */
	assert_int_equal(commit_msg(e, &ms, 0, &r2), 0);
	spool_set_siblings(e->sp, true);
	spool_flush(e->sp);
	assert_true(e->sp->timer_armed);
	assert_null(e->sp->batch);
	drain(e);
	assert_int_equal(r2.calls, 1);
	assert_int_equal(r2.err, 0);
	env_free(e);
}

/* ---- Recovery ---- */

static void test_reopen_recovers(void **state)
{
	enum { N = 60 };
	struct env *e = env_new();
	struct result r[N];
	struct msgspec ms[N];
	struct spool_stats st;
	struct seen *s;

	(void)state;
	e->conf.segment_size = 128 * 1024;   /* several segments */
	env_open(e);
	for (int i = 0; i < N; i++) {
		ms[i] = spec((size_t)(i * 997) % 20000, (unsigned)i);
		ms[i].nrcpt = 1 + (uint32_t)(i % 3);
		ms[i].rcpts[2] = SLICE_LIT("dave@example.com");
		assert_int_equal(commit_msg(e, &ms[i], 333, &r[i]), 0);
		if (i % 7 == 0)
			drain(e);
	}
	env_close(e);
	for (int i = 0; i < N; i++)
		assert_int_equal(r[i].err, 0);

	env_open(e);
	spool_get_stats(e->sp, &st);
	assert_int_equal(st.recovered, N);
	assert_int_equal(st.queued, N);
	assert_int_equal(st.torn_discarded, 0);
	s = scan_all(e->dir);
	assert_int_equal(s->n, N);
	for (int i = 0; i < N; i++) {
		assert_int_equal(s->qid[i], r[i].qid);   /* in order */
		check_body(e->dir, r[i].qid, &ms[i]);
	}
	for (int i = 0; i < 16; i++) {
		assert_int_equal(s->copy[i].nrcpt, ms[i].nrcpt);
		assert_int_equal(s->copy[i].body_len, ms[i].len);
		assert_int_equal(s->copy[i].received_ns, 1700000000000000000ull + (unsigned)i);
		assert_int_equal(s->copy[i].score_milli, -1500 + i);
		assert_int_equal(s->copy[i].role, i & 1);
	}
	free(s);
	/* New queue ids continue after the old ones. */
	{
		struct msgspec m2 = spec(10, 99);
		struct result r2;

		assert_int_equal(commit_msg(e, &m2, 0, &r2), 0);
		drain(e);
		assert_int_equal(r2.err, 0);
		assert_true(SPOOL_QID_SEG(r2.qid) > SPOOL_QID_SEG(r[N - 1].qid));
	}
	env_free(e);
}

static uint8_t *read_file(const char *path, size_t *len_r)
{
	struct stat sb;
	uint8_t *p;
	int fd = open(path, O_RDONLY);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &sb), 0);
	p = malloc((size_t)sb.st_size + 1);
	assert_int_equal(pread(fd, p, (size_t)sb.st_size, 0), sb.st_size);
	close(fd);
	*len_r = (size_t)sb.st_size;
	return p;
}

static void write_file(const char *path, const uint8_t *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, p, len), (ssize_t)len);
	close(fd);
}

/* Three small messages in one segment; returns the pristine segment bytes (trimmed to the
 * records) and the journal's, and the third record's offset and lengths. */
struct torn_fixture {
	uint8_t   *seg, *jrn, *seal;
	size_t     seg_len, jrn_len, seal_len;
	char       jname[256];
	uint32_t   segno;
	uint64_t   off3, rec3, payload3;
	struct result r[3];
};

static void torn_setup(struct env *e, struct torn_fixture *f)
{
	struct msgspec ms[3] = { spec(40, 1), spec(50, 2), spec(30, 3) };
	char path[1024];
	struct spool_record_info info;
	DIR *d;
	struct dirent *de;

	e->conf.segment_size = 64 * 1024;
	env_open(e);
	for (int i = 0; i < 3; i++)
		assert_int_equal(commit_msg(e, &ms[i], 0, &f->r[i]), 0);
	drain(e);
	env_close(e);
	f->segno = SPOOL_QID_SEG(f->r[2].qid);
	f->off3 = SPOOL_QID_OFF(f->r[2].qid);
	seg_path(e, f->segno, path, sizeof(path));
	f->seg = read_file(path, &f->seg_len);
	assert_int_equal(spool_record_hdr_decode(f->seg + f->off3, 64, &info), 0);
	f->rec3 = info.rec_len;
	f->payload3 = 64 + info.body_len + info.env_len;
	assert_true(f->seg_len >= f->off3 + f->rec3);
	f->seg_len = f->off3 + f->rec3;   /* without the preallocated zeros */
	snprintf(path, sizeof(path), "%s/shard-3", e->dir);
	d = opendir(path);
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "journal-", 8))
			snprintf(f->jname, sizeof(f->jname), "%s", de->d_name);
	closedir(d);
	snprintf(path, sizeof(path), "%s/shard-3/%s", e->dir, f->jname);
	f->jrn = read_file(path, &f->jrn_len);
	snprintf(path, sizeof(path), "%s/shard-3/seal", e->dir);
	f->seal = read_file(path, &f->seal_len);
}

/* Puts back the fixture's files (only them) with the segment changed by the caller. */
static void torn_restore(struct env *e, struct torn_fixture *f, const uint8_t *seg, size_t len)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/shard-3", e->dir);
	rm_rf(path);
	assert_int_equal(mkdir(path, 0750), 0);
	seg_path(e, f->segno, path, sizeof(path));
	write_file(path, seg, len);
	snprintf(path, sizeof(path), "%s/shard-3/%s", e->dir, f->jname);
	write_file(path, f->jrn, f->jrn_len);
	snprintf(path, sizeof(path), "%s/shard-3/seal", e->dir);
	write_file(path, f->seal, f->seal_len);
}

static void torn_check(struct env *e, uint32_t want_recovered, bool want_torn)
{
	struct spool_stats st;
	struct msgspec ms = spec(20, 7);
	struct result r;

	env_open(e);
	spool_get_stats(e->sp, &st);
	assert_int_equal(st.recovered, want_recovered);
	assert_int_equal(st.torn_discarded, want_torn ? 1 : 0);
	/* The next append works. */
	assert_int_equal(commit_msg(e, &ms, 0, &r), 0);
	drain(e);
	assert_int_equal(r.err, 0);
	env_close(e);
}

static void test_torn_tail(void **state)
{
	struct env *e = env_new();
	struct torn_fixture f = { 0 };
	uint8_t *buf;

	(void)state;
	/* Hundreds of reopens: on a tmpfs when we may mount one (the fsyncs cost nothing there and
	 * the scanning logic does not depend on the file system), else where we are. */
	e->tmpfs = mount("tmpfs", e->dir, "tmpfs", 0, "size=64m") == 0;
	log_set_level(LOG_ERROR);   /* hundreds of "torn write" warnings */
	torn_setup(e, &f);
	buf = malloc(f.seg_len + 4096);
	/* Cut at every byte offset of the last record. */
	for (uint64_t t = f.off3; t < f.off3 + f.rec3; t++) {
		memcpy(buf, f.seg, t);
		torn_restore(e, &f, buf, t);
		torn_check(e, 2, t > f.off3);
	}
	/* Garble every byte of it (padding is outside the checksums and changes nothing). */
	for (uint64_t t = f.off3; t < f.off3 + f.rec3; t++) {
		memcpy(buf, f.seg, f.seg_len);
		buf[t] ^= 0xff;
		torn_restore(e, &f, buf, f.seg_len);
		if (t < f.off3 + f.payload3)
			torn_check(e, 2, true);
		else
			torn_check(e, 3, false);
	}
	/* A partial record followed by preallocated zeros. */
	memset(buf, 0, f.seg_len + 4096);
	memcpy(buf, f.seg, f.off3 + 70);
	torn_restore(e, &f, buf, f.seg_len + 4096);
	torn_check(e, 2, true);
	/* Zeros only after the records: no tear. */
	memset(buf, 0, f.seg_len + 4096);
	memcpy(buf, f.seg, f.seg_len);
	torn_restore(e, &f, buf, f.seg_len + 4096);
	torn_check(e, 3, false);
	log_set_level(LOG_INFO);
	free(buf);
	free(f.seg);
	free(f.jrn);
	free(f.seal);
	env_free(e);
}

static void test_corrupt_middle(void **state)
{
	struct env *e = env_new();
	struct torn_fixture f = { 0 };
	uint64_t off2;
	uint8_t *buf;
	struct seen *s;
	char path[512];

	(void)state;
	torn_setup(e, &f);
	off2 = SPOOL_QID_OFF(f.r[1].qid);
	buf = malloc(f.seg_len);

	/* A bad body byte in the middle record: skipped by its trusted length. */
	memcpy(buf, f.seg, f.seg_len);
	buf[off2 + 64 + 5] ^= 1;
	torn_restore(e, &f, buf, f.seg_len);
	s = scan_all(e->dir);   /* the reader skips it too */
	assert_int_equal(s->n, 2);
	assert_int_equal(s->qid[0], f.r[0].qid);
	assert_int_equal(s->qid[1], f.r[2].qid);
	free(s);
	env_open(e);
	{
		struct spool_stats st;

		spool_get_stats(e->sp, &st);
		assert_int_equal(st.recovered, 2);
		assert_int_equal(st.torn_discarded, 0);
	}
	env_close(e);

	/* A bad header in the middle: resynchronized at the next valid record; the damaged
	 * bytes are copied aside once, the segment is no longer moved away. */
	memcpy(buf, f.seg, f.seg_len);
	buf[off2 + 9] ^= 1;
	torn_restore(e, &f, buf, f.seg_len);
	env_open(e);
	{
		struct spool_stats st;

		spool_get_stats(e->sp, &st);
		assert_int_equal(st.recovered, 2);
		assert_int_equal(st.damaged_ranges, 1);
		assert_int_equal(st.damaged_bytes, SPOOL_QID_OFF(f.r[2].qid) - off2);
	}
	env_close(e);
	seg_path(e, f.segno, path, sizeof(path));
	strcat(path, ".corrupt");
	assert_int_not_equal(access(path, F_OK), 0);
	{
		char dpath[600];
		size_t dlen;
		uint8_t *d;

		seg_path(e, f.segno, path, sizeof(path));
		snprintf(dpath, sizeof(dpath), "%s.damaged-%016" PRIx64, path, off2);
		d = read_file(dpath, &dlen);
		assert_int_equal(dlen, SPOOL_QID_OFF(f.r[2].qid) - off2);
		assert_memory_equal(d, buf + off2, dlen);
		free(d);
	}
	free(buf);
	free(f.seg);
	free(f.jrn);
	free(f.seal);
	env_free(e);
}

/* A client's body that carries a well-formed record (right queue id for where it lands, both
 * checksums) must not be taken when the real header before it is lost: searching past damage
 * takes only sealed records. Without the seal key, nothing after the damage is queued and the
 * segment is kept whole. */
static void test_resync_ignores_forged_record(void **state)
{
	struct env *e = env_new();
	struct msgspec ma = spec(40, 1), mb, mc = spec(30, 3);
	struct result ra, rb, rc;
	struct spool_envelope ev, fev;
	struct spool_msg *m;
	struct slice frc = SLICE_LIT("victim@evil.test");
	uint8_t body[1024], fenv[512], *seg;
	size_t seg_len, fenv_len, k;
	uint64_t offb, foff;
	spool_qid fq;
	uint32_t segno;
	char path[600], spath[600];
	struct seen *s;
	struct spool_stats st;
	struct spool_record_info info;

	(void)state;
	log_set_level((enum log_level)(LOG_ERROR + 1));
	e->conf.segment_size = 64 * 1024;
	env_open(e);
	assert_int_equal(commit_msg(e, &ma, 0, &ra), 0);
	drain(e);
	segno = SPOOL_QID_SEG(ra.qid);
	env_fill(&ev, &ma);
	offb = SPOOL_QID_OFF(ra.qid) + spool_record_align(64 + ma.len + spool_record_env_size(&ev));
	/* B: text, then a forged record aligned where it will lie in the segment, then text. */
	memset(body, 'x', sizeof(body));
	memcpy(body, "Subject: forged\r\n\r\n", 19);
	k = 200;
	while ((offb + 64 + k) % 8)
		k++;
	foff = offb + 64 + k;
	fq = spool_qid_make(3, segno, foff);
	memset(&fev, 0, sizeof(fev));
	fev.mail_from = SLICE_LIT("evil@evil.test");
	fev.nrcpt = 1;
	fev.rcpts = &frc;
	fenv_len = spool_record_env_encode(&fev, fenv);
	memcpy(body + k + 64, "hi\r\n", 4);
	memcpy(body + k + 64 + 4, fenv, fenv_len);
	spool_record_hdr_encode(body + k, fq, 0, 4, (uint32_t)fenv_len, 1,
				spool_record_payload_sum(body + k + 64, 4, fenv, fenv_len));
	memset(body + k + spool_record_align(64 + 4 + fenv_len), 'y', 16);
	assert_int_equal(spool_msg_begin(e->sp, &m), 0);
	assert_int_equal(spool_msg_write(m, body, sizeof(body)), 0);
	mb = spec(sizeof(body), 2);    /* ev points into it until the commit */
	env_fill(&ev, &mb);
	memset(&rb, 0, sizeof(rb));
	assert_int_equal(spool_msg_commit(m, &ev, done_cb, &rb), 0);
	drain(e);
	assert_int_equal(SPOOL_QID_OFF(rb.qid), offb);
	assert_int_equal(commit_msg(e, &mc, 0, &rc), 0);
	drain(e);
	env_close(e);
	seg_path(e, segno, path, sizeof(path));
	seg = read_file(path, &seg_len);
	assert_int_equal(spool_record_hdr_decode(seg + foff, 64, &info), 0);   /* well-formed */
	assert_int_equal(info.qid, fq);
	memset(seg + offb, 0, 64);   /* B's header lost */
	write_file(path, seg, seg_len);
	s = scan_all(e->dir);
	assert_int_equal(s->n, 2);
	assert_true(s->qid[0] == ra.qid && s->qid[1] == rc.qid);
	free(s);
	env_open(e);
	spool_get_stats(e->sp, &st);
	assert_int_equal(st.recovered, 2);
	assert_int_equal(st.damaged_ranges, 1);
	{
		struct spool_queue_ent qe;

		assert_int_equal(spool_queue_get(e->sp, fq, &qe), -ENOENT);
		assert_int_equal(spool_queue_get(e->sp, rc.qid, &qe), 0);
	}
	env_close(e);
	/* Without the key: nothing after the damage is taken, nothing is cut. */
	write_file(path, seg, seg_len);
	snprintf(spath, sizeof(spath), "%s/shard-3/seal", e->dir);
	{
		char dmg[700];

		snprintf(dmg, sizeof(dmg), "%s.damaged-%016" PRIx64, path, offb);
		unlink(dmg);
	}
	assert_int_equal(unlink(spath), 0);
	s = scan_all(e->dir);
	assert_int_equal(s->n, 1);
	free(s);
	env_open(e);
	spool_get_stats(e->sp, &st);
	assert_int_equal(st.recovered, 1);
	assert_int_equal(st.damaged_ranges, 1);
	env_close(e);
	{
		struct stat sb;

		assert_int_equal(stat(path, &sb), 0);
		assert_true((size_t)sb.st_size >= seg_len);   /* kept whole */
	}
	log_set_level(LOG_INFO);
	free(seg);
	env_free(e);
}

/* Damage that cannot be copied aside (a full disk) pins its segment: never reclaimed, even with
 * every record done, until a start that can copy it; then the segment goes as usual. */
static void test_damage_pins_segment_on_full_disk(void **state)
{
	struct env *e = env_new();
	struct torn_fixture f = { 0 };
	char path[600], fill[600], dpath[700];
	uint64_t off2;
	uint8_t *buf;

	(void)state;
	if (mount("tmpfs", e->dir, "tmpfs", 0, "size=2m") < 0) {
		print_message("  (skipped: mount tmpfs refused: %s)\n", strerror(errno));
		env_free(e);
		skip();
		return;
	}
	e->tmpfs = true;
	log_set_level((enum log_level)(LOG_ERROR + 1));
	torn_setup(e, &f);
	off2 = SPOOL_QID_OFF(f.r[1].qid);
	buf = malloc(f.seg_len);
	memcpy(buf, f.seg, f.seg_len);
	buf[off2 + 9] ^= 1;
	torn_restore(e, &f, buf, f.seg_len);
	seg_path(e, f.segno, path, sizeof(path));
	snprintf(dpath, sizeof(dpath), "%s.damaged-%016" PRIx64, path, off2);
	fill_disk(e->dir, fill, sizeof(fill));
	e->conf.segment_size = 64 << 20;
	env_open(e);
	assert_int_not_equal(access(dpath, F_OK), 0);   /* no room for the copy */
	assert_int_equal(spool_journal_append(e->sp, f.r[0].qid, SPOOL_EV_DONE, 0), 0);
	assert_int_equal(spool_journal_append(e->sp, f.r[2].qid, SPOOL_EV_DONE, 0), 0);
	drain(e);
	assert_int_equal(access(path, F_OK), 0);        /* all done, still kept */
	env_close(e);
	assert_int_equal(unlink(fill), 0);
	e->conf.segment_size = 1 << 20;
	env_open(e);
	{
		size_t dlen;
		uint8_t *d = read_file(dpath, &dlen);

		assert_int_equal(dlen, SPOOL_QID_OFF(f.r[2].qid) - off2);
		assert_memory_equal(d, buf + off2, dlen);
		free(d);
	}
	assert_int_not_equal(access(path, F_OK), 0);    /* copied: reclaimed */
	env_close(e);
	log_set_level(LOG_INFO);
	free(buf);
	free(f.seg);
	free(f.jrn);
	free(f.seal);
	env_free(e);
}

/* One corrupt byte at each of many positions of the middle record of five: every other record
 * is recovered exactly once (by the writer's recovery and by the reader), the middle one only
 * when the byte fell in its padding (outside both checksums), and the damage is counted. */
static void test_resync_every_byte(void **state)
{
	struct msgspec ms[5] = { spec(40, 1), spec(333, 2), spec(700, 3), spec(30, 4), spec(90, 5) };
	struct env *e = env_new();
	struct result r[5];
	struct spool_record_info info;
	uint8_t *seg, *buf;
	size_t seg_len;
	char path[1024], jname[256] = "", jpath[1300], spath[1100];
	uint8_t *jrn, *seal;
	size_t jrn_len, seal_len;
	uint64_t off2, rec2, pay2;
	uint32_t segno;
	unsigned tried = 0;
	DIR *d;
	struct dirent *de;

	(void)state;
	e->tmpfs = mount("tmpfs", e->dir, "tmpfs", 0, "size=64m") == 0;
	log_set_level((enum log_level)(LOG_ERROR + 1));   /* hundreds of damage reports */
	e->conf.segment_size = 64 * 1024;
	env_open(e);
	for (int i = 0; i < 5; i++)
		assert_int_equal(commit_msg(e, &ms[i], 0, &r[i]), 0);
	drain(e);
	env_close(e);
	segno = SPOOL_QID_SEG(r[0].qid);
	for (int i = 1; i < 5; i++)
		assert_int_equal(SPOOL_QID_SEG(r[i].qid), segno);
	seg_path(e, segno, path, sizeof(path));
	seg = read_file(path, &seg_len);
	off2 = SPOOL_QID_OFF(r[2].qid);
	assert_int_equal(spool_record_hdr_decode(seg + off2, 64, &info), 0);
	rec2 = info.rec_len;
	pay2 = 64 + info.body_len + info.env_len;
	snprintf(path, sizeof(path), "%s/shard-3", e->dir);
	d = opendir(path);
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "journal-", 8))
			snprintf(jname, sizeof(jname), "%s", de->d_name);
	closedir(d);
	snprintf(jpath, sizeof(jpath), "%s/shard-3/%s", e->dir, jname);
	jrn = read_file(jpath, &jrn_len);
	snprintf(spath, sizeof(spath), "%s/shard-3/seal", e->dir);
	seal = read_file(spath, &seal_len);
	buf = malloc(seg_len);
	/* Every header byte, every 7th payload byte, every padding byte. */
	for (uint64_t t = 0; t < rec2; t += t < 64 || t + 8 >= pay2 ? 1 : 7) {
		struct seen *s;
		struct spool_stats st;
		unsigned want = t >= pay2 ? 5 : 4, got[5] = { 0 };

		memcpy(buf, seg, seg_len);
		buf[off2 + t] ^= (uint8_t)(0x01 << (t % 8));
		snprintf(path, sizeof(path), "%s/shard-3", e->dir);
		rm_rf(path);
		assert_int_equal(mkdir(path, 0750), 0);
		seg_path(e, segno, path, sizeof(path));
		write_file(path, buf, seg_len);
		write_file(jpath, jrn, jrn_len);
		write_file(spath, seal, seal_len);
		s = scan_all(e->dir);
		assert_int_equal(s->n, want);
		for (uint32_t k = 0; k < s->n; k++)
			for (int i = 0; i < 5; i++)
				got[i] += s->qid[k] == r[i].qid;
		for (int i = 0; i < 5; i++)
			assert_int_equal(got[i], i == 2 ? (want == 5) : 1);
		free(s);
		env_open(e);
		spool_get_stats(e->sp, &st);
		assert_int_equal(st.recovered, want);
		assert_int_equal(st.damaged_ranges, want == 5 ? 0 : 1);
		assert_int_equal(st.torn_discarded, 0);
		env_close(e);
		for (int i = 0; i < 5; i++)
			if (i != 2)
				check_body(e->dir, r[i].qid, &ms[i]);
		tried++;
	}
	print_message("  %u positions in a %" PRIu64 "-byte record\n", tried, rec2);
	log_set_level(LOG_INFO);
	free(buf);
	free(seg);
	free(jrn);
	free(seal);
	env_free(e);
}

/* The deferral details: attempt count and last reply text, through the reader, a reopen (replay)
 * and a second reopen (the snapshot the first one wrote). */
struct defer_seen {
	spool_qid qid;
	uint32_t  attempts;
	char      reply[300];
	uint64_t  defer_until;
};

static int defer_fn(void *arg, const struct spool_entry *en)
{
	struct defer_seen *d = arg;

	if (en->qid == d->qid) {
		d->attempts = en->attempts;
		d->defer_until = en->defer_until;
		snprintf(d->reply, sizeof(d->reply), "%s", en->last_reply ? en->last_reply : "(none)");
	}
	return 0;
}

/* The DEFER_INFO record alone: text made printable, a damaged text block refused, and a journal
 * scan stepping over a damaged one to the records after it (text blocks never decode). */
struct jcount {
	unsigned n, info;
	char     text[300];
};

static int jcount_fn(void *arg, const struct spool_jrec *j)
{
	struct jcount *c = arg;

	c->n++;
	if (j->event == SPOOL_JEV_DEFER_INFO) {
		c->info++;
		snprintf(c->text, sizeof(c->text), "%.*s", (int)j->text_len, j->text);
	}
	return 0;
}

static void test_jtext_record(void **state)
{
	uint8_t buf[4096];
	struct spool_jrec a = { .event = SPOOL_EV_DEFER, .qid = 0x0300000100000008ull, .arg = 5 };
	struct spool_jrec j;
	struct spool_segscan r;
	struct jcount c = { 0 };
	size_t n, off;
	int fd;

	(void)state;
	n = spool_record_jtext_encode(buf, a.qid, 7, "451 \x01\xff ok SLJR\x01\x00", 13);
	assert_int_equal(n, spool_record_jtext_size(13));
	assert_int_equal(n % SPOOL_JREC_SIZE, 0);
	assert_int_equal(spool_record_jrec_decode(buf, n, &j), 0);
	assert_int_equal(j.event, SPOOL_JEV_DEFER_INFO);
	assert_int_equal(spool_record_jtext_check(&j, buf + 32, n - 32), 0);
	assert_int_equal(j.attempts, 7);
	assert_int_equal(j.text_len, 13);
	assert_memory_equal(j.text, "451 ?? ok SLJR", 13);
	/* No text block decodes as a record. */
	for (size_t o = 32; o < n; o += 32)
		assert_int_not_equal(spool_record_jrec_decode(buf + o, n - o, &j), 0);
	assert_int_equal(spool_record_jrec_decode(buf, n, &j), 0);
	assert_int_equal(spool_record_jtext_check(&j, buf + 32, 8), -EAGAIN);
	buf[40] ^= 1;
	assert_int_equal(spool_record_jtext_check(&j, buf + 32, n - 32), -EBADMSG);
	buf[40] ^= 1;
	/* A journal: DEFER | INFO (text damaged) | DEFER | INFO (good) | DEFER. */
	off = 0;
	spool_record_jrec_encode(buf + off, &a);
	off += 32;
	off += spool_record_jtext_encode(buf + off, a.qid, 1, "first try, a long text that spans "
					 "two blocks of text", 52);
	buf[off - 20] ^= 2;
	spool_record_jrec_encode(buf + off, &a);
	off += 32;
	off += spool_record_jtext_encode(buf + off, a.qid, 2, "second", 6);
	spool_record_jrec_encode(buf + off, &a);
	off += 32;
	fd = memfd_create("jrn", 0);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, off), (ssize_t)off);
	assert_int_equal(spool_jscan(fd, jcount_fn, &c, &r), 0);
	close(fd);
	assert_int_equal(c.n, 4);
	assert_int_equal(c.info, 1);
	assert_string_equal(c.text, "second");
	assert_true(r.skipped >= 1);
	assert_int_equal(r.good_end, off);
	/* A lost (zeroed) block in the middle hides nothing after it; zeros at the end do end it. */
	memset(buf, 0, sizeof(buf));
	spool_record_jrec_encode(buf, &a);
	spool_record_jrec_encode(buf + 96, &a);
	memset(&c, 0, sizeof(c));
	fd = memfd_create("jrn", 0);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	assert_int_equal(spool_jscan(fd, jcount_fn, &c, &r), 0);
	close(fd);
	assert_int_equal(c.n, 2);
	assert_int_equal(r.good_end, 128);
	assert_int_equal(r.skipped, 2);
	assert_int_equal(r.torn_bytes, 0);
}

static void test_defer_info(void **state)
{
	struct env *e = env_new();
	struct msgspec ms = spec(100, 1);
	struct result r;
	char longtxt[400];

	(void)state;
	env_open(e);
	assert_int_equal(commit_msg(e, &ms, 0, &r), 0);
	drain(e);
	assert_int_equal(r.err, 0);
	assert_int_equal(spool_journal_defer(e->sp, r.qid, 1000, 1, "451 first"), 0);
	assert_int_equal(spool_journal_defer(e->sp, r.qid, 2000, 3,
					     "451 4.3.0 Try again\r\nlater"), 0);
	assert_int_equal(spool_journal_defer(e->sp, r.qid + 8, 1, 1, "x"), -ENOENT);
	drain(e);
	for (int round = 0; round < 3; round++) {
		struct defer_seen d = { .qid = r.qid };
		struct spool_queue_ent qe;

		assert_int_equal(spool_scan(e->dir, defer_fn, &d), 0);
		assert_int_equal(d.attempts, 3);
		assert_int_equal(d.defer_until, 2000);
		assert_string_equal(d.reply, "451 4.3.0 Try again??later");
		if (round < 2) {
			env_close(e);
			env_open(e);
			assert_int_equal(spool_queue_get(e->sp, r.qid, &qe), 0);
			assert_int_equal(qe.attempts, 3);
		}
	}
	/* Long text is cut; an empty one is kept as empty. */
	memset(longtxt, 'z', sizeof(longtxt) - 1);
	longtxt[sizeof(longtxt) - 1] = 0;
	assert_int_equal(spool_journal_defer(e->sp, r.qid, 3000, 4, longtxt), 0);
	drain(e);
	{
		struct defer_seen d = { .qid = r.qid };

		assert_int_equal(spool_scan(e->dir, defer_fn, &d), 0);
		assert_int_equal(d.attempts, 4);
		assert_int_equal(strlen(d.reply), SPOOL_JTEXT_MAX);
	}
	assert_int_equal(spool_journal_defer(e->sp, r.qid, 4000, 5, NULL), 0);
	drain(e);
	env_close(e);
	{
		struct defer_seen d = { .qid = r.qid };

		assert_int_equal(spool_scan(e->dir, defer_fn, &d), 0);
		assert_int_equal(d.attempts, 5);
		assert_string_equal(d.reply, "");
	}
	env_free(e);
}

/* ---- Spill ---- */

static void test_spill(void **state)
{
	struct env *e = env_new();
	struct msgspec big = spec(1000003, 11), small = spec(500, 12), big2 = spec(300000, 13);
	struct result r1, r2, r3;
	struct spool_msg *m;
	uint8_t chunk[7000];

	(void)state;
	e->conf.spill_bytes = 64 * 1024;
	e->conf.segment_size = 256 * 1024;
	env_open(e);
	drain(e);   /* the spare is ready */
	assert_int_equal(commit_msg(e, &big, 4099, &r1), 0);
	assert_int_equal(commit_msg(e, &small, 0, &r2), 0);
	drain(e);
	assert_int_equal(r1.err, 0);
	assert_int_equal(r2.err, 0);
	assert_int_equal(SPOOL_QID_OFF(r1.qid), 0);   /* alone in its segment */
	assert_int_not_equal(SPOOL_QID_SEG(r1.qid), SPOOL_QID_SEG(r2.qid));
	check_body(e->dir, r1.qid, &big);

	/* A spilled message aborted mid-stream leaves no segment behind. */
	{
		int before = count_files(e->dir, ".dat");

		assert_int_equal(spool_msg_begin(e->sp, &m), 0);
		memset(chunk, 'x', sizeof(chunk));
		for (int i = 0; i < 40; i++)
			assert_int_equal(spool_msg_write(m, chunk, sizeof(chunk)), 0);
		assert_non_null(m->spill);
		spool_msg_abort(&m);
		drain(e);
		assert_int_equal(count_files(e->dir, ".dat"), before);
	}
	/* A second spilled message, written in pieces of a whole chunk. */
	assert_int_equal(commit_msg(e, &big2, 65536, &r3), 0);
	drain(e);
	assert_int_equal(r3.err, 0);
	env_close(e);

	env_open(e);
	{
		struct spool_stats st;

		spool_get_stats(e->sp, &st);
		assert_int_equal(st.recovered, 3);
		assert_int_equal(st.torn_discarded, 0);
	}
	check_body(e->dir, r1.qid, &big);
	check_body(e->dir, r2.qid, &small);
	check_body(e->dir, r3.qid, &big2);
	env_free(e);
}


/* A streamed write of a spilled body fails after commit: the message fails (from a CQE), its
 * segment goes, and the spool goes on. */
static void test_spill_write_error(void **state)
{
	struct env *e = env_new();
	struct msgspec ms = spec(20, 1);
	struct spool_envelope ev;
	struct result r = { 0 }, r2;
	struct spool_msg *m;
	uint8_t chunk[10000];
	char path[512];
	int before, ro;

	(void)state;
	log_set_level(LOG_ERROR);
	e->conf.spill_bytes = 64 * 1024;
	env_open(e);
	drain(e);
	before = count_files(e->dir, ".dat");
	assert_int_equal(spool_msg_begin(e->sp, &m), 0);
	memset(chunk, 'y', sizeof(chunk));
	for (int i = 0; i < 8; i++)
		assert_int_equal(spool_msg_write(m, chunk, sizeof(chunk)), 0);
	assert_non_null(m->spill);
	/* The streamed writes are queued, not yet submitted: make them fail. */
	seg_path(e, m->spill->segno, path, sizeof(path));
	ro = open(path, O_RDONLY);
	assert_true(dup2(ro, m->spill->fd) >= 0);
	close(ro);
	env_fill(&ev, &ms);
	assert_int_equal(spool_msg_commit(m, &ev, done_cb, &r), 0);
	drain(e);
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, -EBADF);
	assert_int_equal(count_files(e->dir, ".dat"), before);
	assert_int_equal(commit_msg(e, &ms, 0, &r2), 0);
	drain(e);
	assert_int_equal(r2.err, 0);
	log_set_level(LOG_INFO);
	env_free(e);
}

/* ---- Journal ---- */

static void test_journal_replay(void **state)
{
	struct env *e = env_new();
	struct result r[3];
	struct msgspec ms[3];
	struct seen *s;

	(void)state;
	env_open(e);
	for (int i = 0; i < 3; i++) {
		ms[i] = spec(200, (unsigned)i);
		ms[i].nrcpt = 3;
		ms[i].rcpts[2] = SLICE_LIT("dave@example.com");
		assert_int_equal(commit_msg(e, &ms[i], 0, &r[i]), 0);
	}
	drain(e);
	assert_int_equal(spool_journal_append(e->sp, r[0].qid, SPOOL_EV_RCPT_DONE, 0), 0);
	assert_int_equal(spool_journal_append(e->sp, r[0].qid, SPOOL_EV_RCPT_FAILED, 2), 0);
	assert_int_equal(spool_journal_append(e->sp, r[0].qid, SPOOL_EV_HOLD, 0), 0);
	assert_int_equal(spool_journal_append(e->sp, r[1].qid, SPOOL_EV_HOLD, 0), 0);
	assert_int_equal(spool_journal_append(e->sp, r[1].qid, SPOOL_EV_RELEASE, 0), 0);
	assert_int_equal(spool_journal_append(e->sp, r[1].qid, SPOOL_EV_DEFER, 1234567), 0);
	assert_int_equal(spool_journal_append(e->sp, r[2].qid, SPOOL_EV_DONE, 0), 0);
	assert_int_equal(spool_journal_append(e->sp, r[2].qid + 1, SPOOL_EV_DONE, 0), -ENOENT);
	assert_int_equal(spool_journal_append(e->sp, r[1].qid, SPOOL_EV_RCPT_DONE, 3), -EINVAL);
	assert_int_equal(spool_journal_append(e->sp, r[1].qid, 42, 0), -EINVAL);
	drain(e);
	{
		struct spool_stats st;

		spool_get_stats(e->sp, &st);
		assert_int_equal(st.queued, 2);
	}
	/* The reader sees the journal while the spool is open... */
	s = scan_all(e->dir);
	assert_int_equal(s->n, 3);
	assert_true(s->copy[0].held);
	assert_int_equal(s->copy[0].rcpt_done, 1);
	assert_int_equal(s->copy[0].rcpt_failed, 1);
	assert_int_equal(s->rstate[0][0], SPOOL_RCPT_DONE);
	assert_int_equal(s->rstate[0][1], SPOOL_RCPT_QUEUED);
	assert_int_equal(s->rstate[0][2], SPOOL_RCPT_FAILED);
	assert_false(s->copy[1].held);
	assert_true(s->done[2]);
	assert_int_equal(s->queued, 2);
	free(s);
	env_close(e);

	/* A torn journal record at the tail (half of a DONE for r[1]) is discarded. */
	{
		char path[1024];
		struct spool_segscan sc;
		struct spool_jrec j = { .event = SPOOL_EV_DONE, .qid = r[1].qid };
		uint8_t rec[SPOOL_JREC_SIZE];
		int fd;

		uint32_t *nums;
		size_t n;
		int dfd;

		snprintf(path, sizeof(path), "%s/shard-3", e->dir);
		dfd = open(path, O_RDONLY | O_DIRECTORY);
		assert_int_equal(spool_dir_list(dfd, "journal-", ".log", &nums, &n), 0);
		close(dfd);
		assert_int_equal(n, 1);
		snprintf(path, sizeof(path), "%s/shard-3/journal-%08x.log", e->dir, nums[0]);
		free(nums);
		fd = open(path, O_RDWR);
		assert_true(fd >= 0);
		assert_int_equal(spool_jscan(fd, seen_jrec, NULL, &sc), 0);
		spool_record_jrec_encode(rec, &j);
		assert_int_equal(pwrite(fd, rec, 20, (off_t)sc.good_end), 20);
		close(fd);
	}
	/* ...and the writer replays it on open (and compacts it into a new journal). */
	log_set_level(LOG_ERROR);
	env_open(e);
	log_set_level(LOG_INFO);
	{
		struct spool_stats st;
		struct spool_ient *en = spool_index_get(&e->sp->ix, r[1].qid);

		spool_get_stats(e->sp, &st);
		assert_int_equal(st.recovered, 2);
		assert_int_equal(st.torn_discarded, 1);
		assert_non_null(en);
		assert_int_equal(en->defer_until, 1234567);
		en = spool_index_get(&e->sp->ix, r[0].qid);
		assert_true(en->flags & SPOOL_IF_HELD);
	}
	assert_int_equal(count_files(e->dir, ".log"), 1);
	env_close(e);
	env_open(e);   /* twice: the compacted journal alone gives the same state */
	s = scan_all(e->dir);
	assert_true(s->copy[0].held);
	assert_int_equal(s->copy[0].rcpt_failed, 1);
	assert_int_equal(s->queued, 2);
	free(s);
	/* Done: now the sealed segment of the three goes at once. */
	assert_int_equal(spool_journal_append(e->sp, r[0].qid, SPOOL_EV_DELETE, 0), 0);
	{
		char path[512];

		seg_path(e, SPOOL_QID_SEG(r[0].qid), path, sizeof(path));
		assert_int_equal(access(path, F_OK), 0);
		assert_int_equal(spool_journal_append(e->sp, r[1].qid, SPOOL_EV_DONE, 0), 0);
		assert_int_equal(access(path, F_OK), -1);
	}
	drain(e);
	s = scan_all(e->dir);
	assert_int_equal(s->n, 0);
	free(s);
	env_free(e);
}

static void test_reclaim_runtime(void **state)
{
	enum { N = 40 };
	struct env *e = env_new();
	struct result r[N];
	uint32_t first_seg;
	char path[512];
	int i;

	(void)state;
	e->conf.segment_size = 16 * 1024;
	env_open(e);
	for (i = 0; i < N; i++) {
		struct msgspec ms = spec(3000, (unsigned)i);

		assert_int_equal(commit_msg(e, &ms, 0, &r[i]), 0);
		drain(e);
	}
	first_seg = SPOOL_QID_SEG(r[0].qid);
	assert_true(SPOOL_QID_SEG(r[N - 1].qid) > first_seg);   /* it rolled */
	seg_path(e, first_seg, path, sizeof(path));
	for (i = 0; i < N && SPOOL_QID_SEG(r[i].qid) == first_seg; i++) {
		assert_int_equal(access(path, F_OK), 0);
		assert_int_equal(spool_journal_append(e->sp, r[i].qid, SPOOL_EV_DONE, 0), 0);
	}
	assert_int_equal(access(path, F_OK), -1);   /* sealed and all done: reclaimed */
	assert_int_equal(spool_journal_append(e->sp, r[0].qid, SPOOL_EV_DONE, 0), -ENOENT);
	drain(e);
	env_close(e);
	env_open(e);
	{
		struct spool_stats st;

		spool_get_stats(e->sp, &st);
		assert_int_equal(st.recovered, N - i);
	}
	env_free(e);
}

/* Queue ids stay unique even after every segment was reclaimed. */
static void test_qid_unique_after_reclaim(void **state)
{
	struct env *e = env_new();
	struct msgspec ms = spec(100, 1);
	struct result r1, r2;

	(void)state;
	env_open(e);
	assert_int_equal(commit_msg(e, &ms, 0, &r1), 0);
	drain(e);
	assert_int_equal(spool_journal_append(e->sp, r1.qid, SPOOL_EV_DONE, 0), 0);
	drain(e);
	env_close(e);
	env_open(e);   /* the segment is reclaimed here */
	{
		char path[512];

		seg_path(e, SPOOL_QID_SEG(r1.qid), path, sizeof(path));
		assert_int_equal(access(path, F_OK), -1);
	}
	env_close(e);
	env_open(e);
	assert_int_equal(commit_msg(e, &ms, 0, &r2), 0);
	drain(e);
	assert_true(SPOOL_QID_SEG(r2.qid) > SPOOL_QID_SEG(r1.qid));
	env_free(e);
}


/* The journal fills up and is replaced by a compacted one, at runtime. */
static void test_journal_roll(void **state)
{
	struct env *e = env_new();
	struct result r[3];
	uint32_t jno0;
	struct seen *s;

	(void)state;
	e->conf.segment_size = 64 * 1024;   /* a 64 KiB journal: 2048 records */
	env_open(e);
	for (int i = 0; i < 3; i++) {
		struct msgspec ms = spec(100, (unsigned)i);

		assert_int_equal(commit_msg(e, &ms, 0, &r[i]), 0);
	}
	drain(e);
	jno0 = e->sp->jcur->segno;
	for (int i = 0; i < 5001; i++) {
		assert_int_equal(spool_journal_append(e->sp, r[i % 2].qid,
						      i % 4 < 2 ? SPOOL_EV_HOLD : SPOOL_EV_RELEASE,
						      0), 0);
		if (i % 97 == 0)
			drain(e);
	}
	assert_int_equal(spool_journal_append(e->sp, r[2].qid, SPOOL_EV_RCPT_DONE, 1), 0);
	drain(e);
	assert_true(e->sp->jcur->segno > jno0);
	assert_int_equal(count_files(e->dir, ".log"), 1);
	/* i = 5000: qid 0 HOLD; i = 4999: qid 1 RELEASE. */
	s = scan_all(e->dir);
	assert_true(s->copy[0].held);
	assert_false(s->copy[1].held);
	assert_int_equal(s->copy[2].rcpt_done, 1);
	free(s);
	env_close(e);
	env_open(e);
	assert_true(spool_index_get(&e->sp->ix, r[0].qid)->flags & SPOOL_IF_HELD);
	assert_false(spool_index_get(&e->sp->ix, r[1].qid)->flags & SPOOL_IF_HELD);
	env_free(e);
}

/* The reader while a batch is in flight: no error, the new records are there or not. */
static void test_scan_during_writes(void **state)
{
	struct env *e = env_new();
	struct result r[40];
	struct seen *s;

	(void)state;
	env_open(e);
	for (int i = 0; i < 20; i++) {
		struct msgspec ms = spec(3000, (unsigned)i);

		assert_int_equal(commit_msg(e, &ms, 0, &r[i]), 0);
	}
	drain(e);
	for (int i = 20; i < 40; i++) {
		struct msgspec ms = spec(3000, (unsigned)i);

		assert_int_equal(commit_msg(e, &ms, 0, &r[i]), 0);
	}
	spool_flush(e->sp);
	io_uring_submit(&e->ring);   /* the writes run; their completions wait for us */
	s = scan_all(e->dir);
	assert_true(s->n >= 20 && s->n <= 40);
	free(s);
	drain(e);
	s = scan_all(e->dir);
	assert_int_equal(s->n, 40);
	free(s);
	env_free(e);
}

/* ---- Failures ---- */

static void test_write_error_fails_batch(void **state)
{
	struct env *e = env_new();
	struct result ok1, bad[5], ok2[2];
	struct spool_stats st;
	char path[512];
	int ro;

	(void)state;
	log_set_level(LOG_ERROR);
	env_open(e);
	{
		struct msgspec ms = spec(1000, 1);

		assert_int_equal(commit_msg(e, &ms, 0, &ok1), 0);
		drain(e);
		assert_int_equal(ok1.err, 0);
	}
	/* Swap the segment's descriptor for a read-only one: the next writes fail (EBADF). */
	seg_path(e, e->sp->cur->segno, path, sizeof(path));
	ro = open(path, O_RDONLY);
	assert_true(ro >= 0);
	assert_true(dup2(ro, e->sp->cur->fd) >= 0);
	close(ro);
	for (int i = 0; i < 5; i++) {
		struct msgspec ms = spec(2000, 10 + (unsigned)i);

		assert_int_equal(commit_msg(e, &ms, 0, &bad[i]), 0);
	}
	drain(e);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(bad[i].calls, 1);
		assert_int_equal(bad[i].err, -EBADF);
	}
	spool_get_stats(e->sp, &st);
	assert_int_equal(st.commit_errors, 5);
	assert_int_equal(st.messages_committed, 1);
	/* The spool goes on in a new segment. */
	for (int i = 0; i < 2; i++) {
		struct msgspec ms = spec(3000, 20 + (unsigned)i);

		assert_int_equal(commit_msg(e, &ms, 0, &ok2[i]), 0);
	}
	drain(e);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(ok2[i].err, 0);
		assert_int_not_equal(SPOOL_QID_SEG(ok2[i].qid), SPOOL_QID_SEG(ok1.qid));
	}
	env_close(e);
	env_open(e);
	spool_get_stats(e->sp, &st);
	assert_int_equal(st.recovered, 3);
	log_set_level(LOG_INFO);
	env_free(e);
}

static void test_enospc(void **state)
{
	struct env *e = env_new();
	enum { MAXM = 2000 };
	struct result *r = calloc(MAXM, sizeof(*r));
	int n = 0, begin_enospc = 0, cb_enospc = 0, commit_enospc = 0;
	struct spool_msg *m;
	struct seen *s;

	(void)state;
	if (mount("tmpfs", e->dir, "tmpfs", 0, "size=4m") < 0) {
		print_message("  (skipped: mount tmpfs refused: %s)\n", strerror(errno));
		free(r);
		env_free(e);
		skip();
		return;
	}
	log_set_level(LOG_ERROR);
	e->conf.segment_size = 256 * 1024;
	e->conf.min_free_bytes = 1 << 20;
	env_open(e);
	/* Phase 1: begin refuses below min_free_bytes. */
	while (n < MAXM) {
		struct msgspec ms = spec(8192, (unsigned)n);
		int rc = commit_msg(e, &ms, 0, &r[n]);

		if (rc == -ENOSPC) {
			begin_enospc++;
			break;
		}
		assert_int_equal(rc, 0);
		n++;
		drain(e);
		if (n % 16 == 0)
			e->sp->free_checked_ns = 0;   /* as if 100 ms had passed */
	}
	assert_int_equal(begin_enospc, 1);
	/* commit refuses too: begun while there was room, committed after it went. */
	e->conf.min_free_bytes = e->sp->conf.min_free_bytes = 1;
	e->sp->free_checked_ns = 0;
	assert_int_equal(spool_msg_begin(e->sp, &m), 0);
	assert_int_equal(spool_msg_write(m, "Subject: x\r\n\r\nhi\r\n", 19), 0);
	e->sp->conf.min_free_bytes = 1ull << 40;
	e->sp->free_checked_ns = 0;
	{
		struct msgspec ms = spec(1, 1);
		struct spool_envelope ev;
		struct result rr = { 0 };

		env_fill(&ev, &ms);
		assert_int_equal(spool_msg_commit(m, &ev, done_cb, &rr), -ENOSPC);
		drain(e);
		assert_int_equal(rr.calls, 0);
		commit_enospc++;
	}
	/* Phase 2: with the check off, the disk itself fills: segment preallocation fails and
	 * the batch reports -ENOSPC; nothing is reported durable that is not. */
	e->sp->conf.min_free_bytes = 1;
	for (int guard = 0; n < MAXM && !cb_enospc && guard < 1000; guard++) {
		for (int k = 0; k < 8 && n < MAXM; k++) {
			struct msgspec ms = spec(8192, (unsigned)n);
			int rc = commit_msg(e, &ms, 0, &r[n]);

			if (rc == -ENOSPC) {
				commit_enospc++;
				continue;
			}
			assert_int_equal(rc, 0);
			n++;
		}
		drain(e);
		for (int k = 0; k < n; k++)
			if (r[k].err == -ENOSPC)
				cb_enospc++;
	}
	assert_true(cb_enospc > 0);
	env_close(e);
	s = scan_all(e->dir);
	{
		int durable = 0, found = 0;

		for (int k = 0; k < n; k++) {
			bool in = false;

			assert_int_equal(r[k].calls, 1);
			for (uint32_t j = 0; j < s->n && !in; j++)
				in = s->qid[j] == r[k].qid;
			if (r[k].err == 0) {
				durable++;
				assert_true(in);
				found++;
			}
		}
		assert_int_equal(s->n, (uint32_t)durable);
		assert_int_equal(found, durable);
		print_message("  tmpfs 4m: %d durable, %d refused by callback, %d at commit\n",
			      durable, n - durable, commit_enospc);
	}
	free(s);
	log_set_level(LOG_INFO);
	assert_int_equal(umount2(e->dir, MNT_DETACH), 0);
	free(r);
	env_free(e);
}

/* A spool on a full disk opens: no new segment, no new journal (the old one takes the records),
 * new messages are refused, journal events still become durable and survive a reopen. */
static void test_open_full_disk(void **state)
{
	struct env *e = env_new();
	struct result r[3];
	struct spool_stats st;
	struct spool_msg *m;
	char path[600];

	(void)state;
	if (mount("tmpfs", e->dir, "tmpfs", 0, "size=4m") < 0) {
		print_message("  (skipped: mount tmpfs refused: %s)\n", strerror(errno));
		env_free(e);
		skip();
		return;
	}
	e->tmpfs = true;
	log_set_level(LOG_ERROR);
	e->conf.segment_size = 1 << 20;
	e->conf.min_free_bytes = 1;
	env_open(e);
	for (int i = 0; i < 3; i++) {
		struct msgspec ms = spec(2000, (unsigned)i);

		assert_int_equal(commit_msg(e, &ms, 0, &r[i]), 0);
	}
	drain(e);
	env_close(e);
	/* Fill the disk to the last byte. */
	fill_disk(e->dir, path, sizeof(path));
	e->conf.segment_size = 64 << 20;
	e->conf.min_free_bytes = 1 << 20;
	env_open(e);
	spool_get_stats(e->sp, &st);
	assert_int_equal(st.recovered, 3);
	assert_true(st.no_segment);
	assert_int_equal(spool_msg_begin(e->sp, &m), -ENOSPC);
	assert_int_equal(spool_journal_append(e->sp, r[1].qid, SPOOL_EV_DONE, 0), 0);
	{
		uint64_t want = spool_journal_seq(e->sp);

		drain(e);
		assert_true(spool_journal_durable_seq(e->sp) >= want);
	}
	env_close(e);
	env_open(e);
	spool_get_stats(e->sp, &st);
	assert_int_equal(st.recovered, 2);
	env_close(e);
	/* Space back: a segment is taken again and mail is accepted. */
	assert_int_equal(unlink(path), 0);
	e->conf.segment_size = 1 << 20;
	env_open(e);
	{
		struct msgspec ms = spec(100, 9);
		struct result rr;

		assert_int_equal(commit_msg(e, &ms, 0, &rr), 0);
		drain(e);
		assert_int_equal(rr.err, 0);
	}
	env_close(e);
	log_set_level(LOG_INFO);
	env_free(e);
}

/* ---- A spool left behind by a killed process ---- */

static int run(const char *cmd, char *out, size_t outlen)
{
	FILE *p = popen(cmd, "r");
	size_t n = 0;
	int st;

	assert_non_null(p);
	while (out && n + 1 < outlen && !feof(p)) {
		size_t k = fread(out + n, 1, outlen - 1 - n, p);

		if (!k)
			break;
		n += k;
	}
	if (out)
		out[n] = 0;
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_killed_process_ids(void **state)
{
	enum { N = 25 };
	struct env *e = env_new();
	const char *br = getenv("SLUICE_BUILD_ROOT");
	char tool[512], cmd[1024], *out = malloc(1 << 16);
	int st, lines = 0;
	pid_t pid;
	struct seen *s;

	(void)state;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct result r[N + 5];

		io_uring_queue_exit(&e->ring);
		ring_init(&e->ring);
		env_open(e);
		for (int i = 0; i < N; i++) {
			struct msgspec ms = spec(2000 + (size_t)i, (unsigned)i);

			if (commit_msg(e, &ms, 0, &r[i]))
				_exit(3);
		}
		drain(e);
		for (int i = 0; i < N; i++)
			if (r[i].err)
				_exit(4);
		/* Five more left in flight or pending: not reported, may or may not be there. */
		for (int i = N; i < N + 5; i++) {
			struct msgspec ms = spec(100, (unsigned)i);

			commit_msg(e, &ms, 0, &r[i]);
		}
		raise(SIGKILL);
		_exit(5);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);

	s = scan_all(e->dir);
	assert_int_equal(s->n, N);   /* the five never flushed are simply not there */
	free(s);
	snprintf(tool, sizeof(tool), "%s/dataplane/spool/sluice-queue", br ? br : ".");
	if (access(tool, X_OK) != 0) {
		print_message("  (sluice-queue not built at %s; tool checks skipped)\n", tool);
	} else {
		snprintf(cmd, sizeof(cmd), "%s -d %s ids", tool, e->dir);
		assert_int_equal(run(cmd, out, 1 << 16), 0);
		for (char *p = out; (p = strchr(p, '\n')); p++)
			lines++;
		assert_int_equal(lines, N);
		assert_non_null(strstr(out, "\t<0.2000@test.example>\n"));
		snprintf(cmd, sizeof(cmd), "%s -d %s list", tool, e->dir);
		assert_int_equal(run(cmd, out, 1 << 16), 0);
		assert_non_null(strstr(out, "25 Requests"));
		assert_non_null(strstr(out, "carol@example.net (queued)"));
		snprintf(cmd, sizeof(cmd), "%s -d %s list --json", tool, e->dir);
		assert_int_equal(run(cmd, out, 1 << 16), 0);
		assert_non_null(strstr(out, "\"sender\": \"alice@example.org\""));
		snprintf(cmd, sizeof(cmd), "%s -d %s show 0300000000000000 2>/dev/null", tool, e->dir);
		assert_int_equal(run(cmd, out, 1 << 16), 1);
		snprintf(cmd, sizeof(cmd), "%s -d %s body nothex 2>/dev/null", tool, e->dir);
		assert_int_equal(run(cmd, out, 1 << 16), 2);
		snprintf(cmd, sizeof(cmd), "%s -d %s frob 2>/dev/null", tool, e->dir);
		assert_int_equal(run(cmd, out, 1 << 16), 2);
		snprintf(cmd, sizeof(cmd), "%s -d %s ids | head -1 | cut -f1", tool, e->dir);
		assert_int_equal(run(cmd, out, 1 << 16), 0);
		out[SPOOL_QID_STRLEN] = 0;
		snprintf(cmd, sizeof(cmd), "%s -d %s body %s | wc -c", tool, e->dir, out);
		assert_int_equal(run(cmd, out, 1 << 16), 0);
		assert_int_equal(atoi(out), 2000);
		snprintf(cmd, sizeof(cmd), "%s -d %s stats", tool, e->dir);
		assert_int_equal(run(cmd, out, 1 << 16), 0);
		assert_non_null(strstr(out, "shard 3: segments"));
		assert_non_null(strstr(out, "total: queued 25"));
	}
	/* The writer recovers it too. */
	env_open(e);
	{
		struct spool_stats sst;

		spool_get_stats(e->sp, &sst);
		assert_int_equal(sst.recovered, N);
	}
	free(out);
	env_free(e);
}

/* ---- Cost (informational: CPU per 4 KiB message, all spool work included) ---- */

static double cpu_s(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void test_cost(void **state)
{
	enum { N = 20000, BATCH = 50 };
	struct env *e = env_new();
	static struct result r[BATCH];
	struct msgspec ms = spec(4096, 1);
	struct spool_stats st;
	uint8_t body[4096];
	struct spool_envelope ev;
	double c0, t0;
	struct timespec ts;

	(void)state;
	body_fill(body, sizeof(body), 1);
	env_fill(&ev, &ms);
	e->conf.segment_size = 16 << 20;
	env_open(e);
	drain(e);
	c0 = cpu_s();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	for (int i = 0; i < N; i += BATCH) {
		for (int k = 0; k < BATCH; k++) {
			struct spool_msg *m;

			assert_int_equal(spool_msg_begin(e->sp, &m), 0);
			/* as a session would: in 1 KiB reads */
			for (int o = 0; o < 4096; o += 1024)
				assert_int_equal(spool_msg_write(m, body + o, 1024), 0);
			assert_int_equal(spool_msg_commit(m, &ev, done_cb, &r[k]), 0);
		}
		drain(e);
		if (i % 2000 == 0)
			for (int k = 0; k < BATCH; k++)
				assert_int_equal(r[k].err, 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &ts);
	spool_get_stats(e->sp, &st);
	print_message("  %d x 4 KiB in batches of %d: %.1f us CPU/msg, %.0f msg/s wall, %" PRIu64
		      " fdatasyncs, %.0f us per batch (writes + syncs)\n", N, BATCH,
		      (cpu_s() - c0) * 1e6 / N, N / ((double)ts.tv_sec + ts.tv_nsec / 1e9 - t0),
		      st.syncs, (double)st.sync_ns_total / 1e3 / (N / BATCH));
	assert_int_equal(st.messages_committed, N);
	env_free(e);
}

/* ---- The event log (spool_event.h) ---- */

/* Commits one message with an accepted event whose text is `text`. */
static int commit_msg_ev(struct env *e, const struct msgspec *ms, const char *text,
			 struct result *r)
{
	struct spool_envelope ev;
	struct spool_msg *m;
	uint8_t tlv[256];
	size_t tl = spool_event_tlv(tlv, SPOOL_ETLV_TEXT, text, strlen(text));
	int rc = spool_msg_begin(e->sp, &m);

	if (rc)
		return rc;
	assert_int_equal(spool_msg_write(m, "body\r\n", 6), 0);
	assert_int_equal(spool_msg_event(m, tlv, tl), 0);
	env_fill(&ev, ms);
	memset(r, 0, sizeof(*r));
	return spool_msg_commit(m, &ev, done_cb, r);
}

/* Every event of shard 3 from the oldest file: types[i], flags[i], qids[i] for seq i + 1. */
static size_t read_events(struct env *e, uint8_t *types, uint16_t *flags, spool_qid *qids,
			  size_t max)
{
	struct spool_evreader rd;
	struct spool_evinfo ev;
	char dir[300];
	size_t n = 0;

	snprintf(dir, sizeof(dir), "%s/shard-3", e->dir);
	assert_int_equal(spool_evreader_open(&rd, dir, 0, 0, 0), 0);
	while (n < max && spool_evreader_next(&rd, UINT64_MAX, &ev) == 1) {
		assert_int_equal(ev.seq, n + 1);   /* contiguous from 1 */
		assert_int_equal(ev.shard, 3);
		types[n] = ev.type;
		flags[n] = ev.flags;
		qids[n] = ev.qid;
		n++;
	}
	spool_evreader_close(&rd);
	return n;
}

static void test_events_numbered_with_state(void **state)
{
	struct env *e = env_new();
	struct msgspec ms = spec(6, 1);
	struct result r[3];
	uint8_t types[16];
	uint16_t flags[16];
	spool_qid qids[16];
	uint8_t tlv[64];
	size_t tl = spool_event_tlv(tlv, SPOOL_ETLV_TEXT, "sent", 4);

	(void)state;
	env_open(e);
	for (int i = 0; i < 3; i++)
		assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[i]), 0);
	drain(e);
	assert_int_equal(spool_event_durable_seq(e->sp), 3);
	assert_int_equal(spool_journal_append(e->sp, r[0].qid, SPOOL_EV_RCPT_DONE, 0), 0);
	assert_int_equal(spool_event_add(e->sp, SPOOL_EVT_DELIVERED, r[0].qid, 0, tlv, tl), 0);
	assert_int_equal(spool_journal_append(e->sp, r[1].qid, SPOOL_EV_HOLD, 0), 0);
	assert_int_equal(spool_event_add(e->sp, SPOOL_EVT_QUARANTINED, r[1].qid, UINT32_MAX, tlv,
					 tl), 0);
	assert_int_equal(spool_event_durable_seq(e->sp), 3);   /* not before its batch */
	drain(e);
	assert_int_equal(spool_event_durable_seq(e->sp), 5);
	assert_int_equal(read_events(e, types, flags, qids, 16), 5);
	assert_int_equal(types[0], SPOOL_EVT_ACCEPTED);
	assert_int_equal(qids[2], r[2].qid);
	assert_int_equal(types[3], SPOOL_EVT_DELIVERED);
	assert_int_equal(types[4], SPOOL_EVT_QUARANTINED);
	assert_false(flags[4] & SPOOL_EVF_RECOVERED);
	/* A journal roll carries the pending events' markers into the snapshot. */
	assert_int_equal(spool_journal_append(e->sp, r[1].qid, SPOOL_EV_RELEASE, 0), 0);
	assert_int_equal(spool_event_add(e->sp, SPOOL_EVT_RELEASED, r[1].qid, UINT32_MAX, tlv, tl),
			 0);
	e->sp->jneed_roll = true;
	drain(e);
	assert_int_equal(spool_event_durable_seq(e->sp), 6);
	env_close(e);
	/* A restart numbers on from there, in a new file. */
	env_open(e);
	assert_int_equal(spool_event_durable_seq(e->sp), 6);
	assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[0]), 0);
	drain(e);
	assert_int_equal(read_events(e, types, flags, qids, 16), 7);
	assert_int_equal(types[5], SPOOL_EVT_RELEASED);
	assert_int_equal(types[6], SPOOL_EVT_ACCEPTED);
	env_free(e);
}

/* A crash between the state's sync and the events': the events are written again from the
 * state at the next start, with their numbers (the iff rule of spool_event.h). */
static void test_events_recovered_from_state(void **state)
{
	struct env *e = env_new();
	struct msgspec ms = spec(6, 1);
	struct result r[3];
	uint8_t types[16], tlv[64];
	uint16_t flags[16];
	spool_qid qids[16];
	size_t tl = spool_event_tlv(tlv, SPOOL_ETLV_TEXT, "sent", 4);
	char path[400];
	uint32_t *nums;
	size_t n;
	struct stat st;
	int dfd;

	(void)state;
	env_open(e);
	for (int i = 0; i < 3; i++)
		assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[i]), 0);
	drain(e);
	assert_int_equal(spool_journal_append(e->sp, r[0].qid, SPOOL_EV_RCPT_DONE, 1), 0);
	assert_int_equal(spool_event_add(e->sp, SPOOL_EVT_DELIVERED, r[0].qid, 1, tlv, tl), 0);
	drain(e);
	assert_int_equal(spool_event_durable_seq(e->sp), 4);
	/* the state stays, the events past the second are lost: cut the event file there */
	snprintf(path, sizeof(path), "%s/shard-3", e->dir);
	dfd = open(path, O_RDONLY | O_DIRECTORY);
	assert_int_equal(spool_event_files(dfd, &nums, &n), 0);
	close(dfd);
	assert_int_equal(n, 1);
	snprintf(path, sizeof(path), "%s/shard-3/events-%08x.ev", e->dir, nums[0]);
	free(nums);
	spool_close(&e->sp);   /* with nothing in flight: as if killed after the syncs */
	assert_int_equal(stat(path, &st), 0);
	{
		/* FILE record + 2 accepted events (their size: the payload is TEXT + SIZE + ENV) */
		uint8_t *b = read_file(path, &n);
		size_t off = 0;
		struct spool_evinfo ev;

		for (int k = 0; k < 3; k++) {
			assert_int_equal(spool_event_decode(b + off, n - off, &ev), 0);
			off += ev.rec_len;
		}
		memset(b + off, 0, n - off);
		memset(b + off, 0x5a, 20);   /* and a torn write after it */
		write_file(path, b, n);
		free(b);
	}
	log_set_level(LOG_ERROR);
	env_open(e);
	log_set_level(LOG_INFO);
	assert_int_equal(spool_event_durable_seq(e->sp), 4);
	assert_int_equal(read_events(e, types, flags, qids, 16), 4);
	assert_int_equal(types[2], SPOOL_EVT_ACCEPTED);
	assert_true(flags[2] & SPOOL_EVF_RECOVERED);
	assert_int_equal(qids[2], r[2].qid);
	assert_int_equal(types[3], SPOOL_EVT_DELIVERED);
	assert_true(flags[3] & SPOOL_EVF_RECOVERED);
	assert_int_equal(qids[3], r[0].qid);
	assert_false(flags[1] & SPOOL_EVF_RECOVERED);
	/* once only: a second start finds them on disk */
	env_close(e);
	env_open(e);
	assert_int_equal(spool_event_durable_seq(e->sp), 4);
	assert_int_equal(read_events(e, types, flags, qids, 16), 4);
	env_free(e);
}

/* A crash after the last batch's events were written but before its state was: those events
 * never happened. They become VOIDs in place (same numbers, same size), the others stay. */
static void test_events_without_state_voided(void **state)
{
	struct env *e = env_new();
	struct msgspec ms = spec(6, 1);
	struct result r[3];
	uint8_t types[16];
	uint16_t flags[16];
	spool_qid qids[16];
	char path[400];
	int fd;

	(void)state;
	env_open(e);
	assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[0]), 0);
	assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[1]), 0);
	drain(e);
	assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[2]), 0);
	drain(e);
	assert_int_equal(spool_event_durable_seq(e->sp), 3);
	spool_close(&e->sp);
	/* the third message's record never reached the disk: zero it */
	seg_path(e, SPOOL_QID_SEG(r[2].qid), path, sizeof(path));
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	{
		uint8_t z[4096] = { 0 };

		assert_int_equal(pwrite(fd, z, sizeof(z), (off_t)SPOOL_QID_OFF(r[2].qid)),
				 (ssize_t)sizeof(z));
	}
	close(fd);
	log_set_level(LOG_ERROR);
	env_open(e);
	log_set_level(LOG_INFO);
	assert_int_equal(spool_event_durable_seq(e->sp), 3);
	assert_int_equal(read_events(e, types, flags, qids, 16), 3);
	assert_int_equal(types[0], SPOOL_EVT_ACCEPTED);
	assert_int_equal(types[1], SPOOL_EVT_ACCEPTED);
	assert_int_equal(types[2], SPOOL_EVT_VOID);
	/* the batch before the last is whole: never in doubt */
	env_close(e);
	env_open(e);
	assert_int_equal(read_events(e, types, flags, qids, 16), 3);
	assert_int_equal(types[1], SPOOL_EVT_ACCEPTED);
	env_free(e);
}

/* The last batch's journal events lose their markers when the journal is compacted; its
 * snapshot says their batch completed, so they stay (not made void) at the next start. */
static void test_events_kept_after_journal_roll(void **state)
{
	struct env *e = env_new();
	struct msgspec ms = spec(6, 1);
	struct result r[2];
	uint8_t types[16], tlv[64];
	uint16_t flags[16];
	spool_qid qids[16];
	size_t tl = spool_event_tlv(tlv, SPOOL_ETLV_TEXT, "sent", 4);

	(void)state;
	env_open(e);
	for (int i = 0; i < 2; i++)
		assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[i]), 0);
	drain(e);
	assert_int_equal(spool_journal_append(e->sp, r[0].qid, SPOOL_EV_RCPT_DONE, 0), 0);
	assert_int_equal(spool_event_add(e->sp, SPOOL_EVT_DELIVERED, r[0].qid, 0, tlv, tl), 0);
	drain(e);
	{
		uint32_t jno = e->sp->jcur->segno;

		e->sp->jneed_roll = true;   /* compacted: the marker of event 3 is gone */
		spool_flush(e->sp);
		assert_true(e->sp->jcur->segno > jno);
	}
	spool_close(&e->sp);
	log_set_level(LOG_ERROR);
	env_open(e);
	log_set_level(LOG_INFO);
	assert_int_equal(read_events(e, types, flags, qids, 16), 3);
	assert_int_equal(types[2], SPOOL_EVT_DELIVERED);
	assert_int_equal(qids[2], r[0].qid);
	env_free(e);
}

/* ---- The event log's lazy sync: a power loss between the state's sync and the events' ---- */

/* Turns until no batch is pending or in flight (a held event sync may stay waiting). */
static void drain_state(struct env *e)
{
	for (int i = 0; i < 100000 && (e->sp->pending || e->sp->jpend_len || e->sp->batch ||
				       e->sp->nfailing); i++)
		turn(e);
	assert_null(e->sp->batch);
}

/* The held sync's delay is over: turns until it made every written event durable. */
static void ev_sync_due(struct env *e)
{
	e->sp->ev_unsynced_ns = 0;
	e->sp->ev_sync_ns = 0;
	for (int i = 0; i < 1000 && spool_event_durable_seq(e->sp) < e->sp->evseq_written; i++)
		turn(e);
	assert_int_equal(spool_event_durable_seq(e->sp), e->sp->evseq_written);
}

static void events_path(const struct env *e, uint32_t n, char *out, size_t len)
{
	snprintf(out, len, "%s/shard-3/events-%08x.ev", e->dir, n);
}

/* Zeroes [from, to) of a file: what a power loss leaves of pages written and never synced (the
 * file's preallocated zeros were synced when it was made). */
static void zero_range(const char *path, uint64_t from, uint64_t to)
{
	int fd = open(path, O_RDWR);
	uint8_t *z = calloc(1, to > from ? to - from : 1);

	assert_true(fd >= 0);
	if (to > from)
		assert_int_equal(pwrite(fd, z, to - from, (off_t)from), (ssize_t)(to - from));
	close(fd);
	free(z);
}

/*
 * The events of several batches are written, their state synced and their 250s given, but the
 * event file is not synced yet; power is lost. Whatever part of that unsynced tail survives (none,
 * its first event, or its later events behind a hole: writeback has no order), the next start has
 * every event exactly once, numbers dense, the lost ones written again from the state, and a
 * sink that had read up to the durable number reads each of the others once.
 */
static void test_events_lazy_sync_power_loss(void **state)
{
	(void)state;
	for (int pattern = 0; pattern < 3; pattern++) {
		struct env *e = env_new();
		struct msgspec ms = spec(6, 1);
		struct result r[6];
		uint8_t types[32], tlv[64];
		uint16_t flags[32];
		spool_qid qids[32], want[8];
		size_t tl = spool_event_tlv(tlv, SPOOL_ETLV_TEXT, "sent", 4);
		struct spool_evreader rd;
		struct spool_evinfo ev;
		uint64_t durable_off, written_off, first_len;
		uint32_t evno;
		char path[400], dir[300];

		env_open(e);
		for (int i = 0; i < 3; i++)
			assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[i]), 0);
		drain(e);
		assert_int_equal(spool_event_durable_seq(e->sp), 3);
		durable_off = e->sp->evoff;
		evno = e->sp->evno;
		/* a sink caught up to the durable number */
		snprintf(dir, sizeof(dir), "%s/shard-3", e->dir);
		assert_int_equal(spool_evreader_open(&rd, dir, 0, 0, 0), 0);
		for (int i = 0; i < 3; i++)
			assert_int_equal(spool_evreader_next(&rd, spool_event_durable_seq(e->sp),
							     &ev), 1);
		assert_int_equal(spool_evreader_next(&rd, spool_event_durable_seq(e->sp), &ev), 0);

		/* Three more batches; the event file's sync is held back. */
		e->sp->ev_sync_ns = UINT64_C(3600) * 1000000000u;
		assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[3]), 0);
		assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[4]), 0);
		drain_state(e);
		assert_int_equal(spool_journal_append(e->sp, r[0].qid, SPOOL_EV_RCPT_DONE, 0), 0);
		assert_int_equal(spool_event_add(e->sp, SPOOL_EVT_DELIVERED, r[0].qid, 0, tlv, tl),
				 0);
		drain_state(e);
		assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[5]), 0);
		drain_state(e);
		for (int i = 3; i < 6; i++) {
			assert_int_equal(r[i].calls, 1);   /* the 250s did not wait for it */
			assert_int_equal(r[i].err, 0);
		}
		assert_int_equal(e->sp->evseq_written, 7);
		assert_int_equal(spool_event_durable_seq(e->sp), 3);   /* the sinks wait for it */
		assert_int_equal(spool_evreader_next(&rd, spool_event_durable_seq(e->sp), &ev), 0);
		written_off = e->sp->evoff;
		assert_true(written_off > durable_off);
		{
			uint8_t *b;
			size_t n;

			events_path(e, evno, path, sizeof(path));
			b = read_file(path, &n);
			assert_int_equal(spool_event_decode(b + durable_off, n - durable_off, &ev),
					 0);
			assert_int_equal(ev.seq, 4);
			first_len = ev.rec_len;
			free(b);
		}
		/* Power lost: no close (its sync), the unsynced bytes as the disk may hold them. */
		e->sp->evseq_written = e->sp->evseq_durable;   /* spool_free's sync: as if never */
		spool_close(&e->sp);
		if (pattern == 0)
			zero_range(path, durable_off, written_off);
		else if (pattern == 1)
			zero_range(path, durable_off + first_len, written_off);
		else
			zero_range(path, durable_off, durable_off + first_len);

		log_set_level(LOG_ERROR);
		env_open(e);
		log_set_level(LOG_INFO);
		assert_int_equal(spool_event_durable_seq(e->sp), 7);
		assert_int_equal(read_events(e, types, flags, qids, 32), 7);
		want[0] = r[0].qid, want[1] = r[1].qid, want[2] = r[2].qid, want[3] = r[3].qid;
		want[4] = r[4].qid, want[5] = r[0].qid, want[6] = r[5].qid;
		for (int i = 0; i < 7; i++) {
			assert_int_equal(types[i], i == 5 ? SPOOL_EVT_DELIVERED : SPOOL_EVT_ACCEPTED);
			assert_int_equal(qids[i], want[i]);
			/* kept as written, or written again from the state */
			assert_int_equal(!!(flags[i] & SPOOL_EVF_RECOVERED),
					 i >= (pattern == 1 ? 4 : 3));
		}
		/* the sink reads each of them once */
		for (int i = 3; i < 7; i++) {
			assert_int_equal(spool_evreader_next(&rd, spool_event_durable_seq(e->sp),
							     &ev), 1);
			assert_int_equal(ev.seq, (uint64_t)i + 1);
			assert_int_equal(ev.qid, want[i]);
		}
		assert_int_equal(spool_evreader_next(&rd, UINT64_MAX, &ev), 0);
		spool_evreader_close(&rd);
		/* and a second start writes nothing again */
		env_close(e);
		env_open(e);
		assert_int_equal(spool_event_durable_seq(e->sp), 7);
		assert_int_equal(read_events(e, types, flags, qids, 32), 7);
		env_free(e);
	}
}

/* Commits one message of len body bytes with an accepted event. */
static int commit_body_ev(struct env *e, const struct msgspec *ms, size_t len, struct result *r)
{
	struct spool_envelope ev;
	struct spool_msg *m;
	uint8_t tlv[64], *body = malloc(len);
	size_t tl = spool_event_tlv(tlv, SPOOL_ETLV_TEXT, "accepted", 8);
	int rc = spool_msg_begin(e->sp, &m);

	if (rc) {
		free(body);
		return rc;
	}
	body_fill(body, len, ms->seed);
	assert_int_equal(spool_msg_write(m, body, len), 0);
	free(body);
	assert_int_equal(spool_msg_event(m, tlv, tl), 0);
	env_fill(&ev, ms);
	memset(r, 0, sizeof(*r));
	return spool_msg_commit(m, &ev, done_cb, r);
}

/*
 * What drops the state an unsynced event is written again from waits for the event's sync: a
 * done message's segment is reclaimed only once its accepted event is durable; a journal roll
 * (which compacts the markers away) and an event file's roll sync the events first.
 */
static void test_events_sync_before_state_goes(void **state)
{
	struct env *e = env_new();
	struct msgspec ms = spec(6, 1);
	struct result r[3];
	uint8_t types[16], tlv[64];
	uint16_t flags[16];
	spool_qid qids[16];
	size_t tl = spool_event_tlv(tlv, SPOOL_ETLV_TEXT, "sent", 4);
	char path[400];
	struct stat st;
	uint32_t segno, evno;

	(void)state;
	e->conf.spill_bytes = 64 * 1024;   /* a body past it: a segment of its own, sealed */
	env_open(e);
	drain(e);   /* the spare is ready */
	e->sp->ev_sync_ns = UINT64_C(3600) * 1000000000u;
	assert_int_equal(commit_body_ev(e, &ms, 100 * 1024, &r[0]), 0);
	assert_non_null(e->sp->pending->spill);
	drain_state(e);
	assert_int_equal(r[0].err, 0);
	segno = SPOOL_QID_SEG(r[0].qid);
	seg_path(e, segno, path, sizeof(path));
	assert_int_equal(spool_event_durable_seq(e->sp), 0);
	/* delivered, done: its segment would go, but its accepted event is not durable yet */
	assert_int_equal(spool_journal_append(e->sp, r[0].qid, SPOOL_EV_RCPT_DONE, 0), 0);
	assert_int_equal(spool_journal_append(e->sp, r[0].qid, SPOOL_EV_RCPT_DONE, 1), 0);
	assert_int_equal(spool_event_add(e->sp, SPOOL_EVT_DELIVERED, r[0].qid, 0, tlv, tl), 0);
	assert_int_equal(spool_journal_append(e->sp, r[0].qid, SPOOL_EV_DONE, 0), 0);
	drain_state(e);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(e->sp->ev_reclaim_wait, 1);
	/* the sync comes (its delay over): then the segment goes */
	ev_sync_due(e);
	assert_int_equal(spool_event_durable_seq(e->sp), 2);
	spool_flush(e->sp);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(e->sp->ev_reclaim_wait, 0);

	/* A journal roll syncs the events whose markers it drops. */
	e->sp->ev_sync_ns = UINT64_C(3600) * 1000000000u;
	assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[1]), 0);
	drain_state(e);
	assert_int_equal(spool_journal_append(e->sp, r[1].qid, SPOOL_EV_HOLD, 0), 0);
	assert_int_equal(spool_event_add(e->sp, SPOOL_EVT_QUARANTINED, r[1].qid, UINT32_MAX, tlv,
					 tl), 0);
	drain_state(e);
	assert_int_equal(spool_event_durable_seq(e->sp), 2);
	e->sp->jneed_roll = true;
	spool_flush(e->sp);
	assert_int_equal(spool_event_durable_seq(e->sp), 4);

	/* An event file's roll syncs the old file's events first. */
	assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[2]), 0);
	drain_state(e);
	assert_int_equal(spool_event_durable_seq(e->sp), 4);
	evno = e->sp->evno;
	e->sp->evalloc = e->sp->evoff;   /* full: the next batch's events go to a new file */
	assert_int_equal(commit_msg_ev(e, &ms, "accepted", &r[2]), 0);
	drain_state(e);
	assert_int_equal(e->sp->evno, evno + 1);
	assert_int_equal(spool_event_durable_seq(e->sp), 5);
	ev_sync_due(e);
	assert_int_equal(spool_event_durable_seq(e->sp), 6);
	env_close(e);
	env_open(e);
	assert_int_equal(read_events(e, types, flags, qids, 16), 6);
	for (int i = 0; i < 6; i++)
		assert_false(flags[i] & SPOOL_EVF_RECOVERED);
	assert_int_equal(types[1], SPOOL_EVT_DELIVERED);
	assert_int_equal(types[3], SPOOL_EVT_QUARANTINED);
	env_free(e);
}

/* ---- The hand-off to delivery and the per-domain quota ---- */

struct handoff {
	struct result *r;          /* the commit's callback: not called yet at the hand-off */
	int            calls, done_before;
	spool_qid      qid;
	bool           recovered, held;
	uint64_t       body_len, received_ns;
	uint32_t       nrcpt;
	char           from[64], rcpt1[64];
};

static void handoff_fn(void *arg, const struct spool_queue_ent *qe,
		       const struct spool_envelope *env, uint64_t body_len)
{
	struct handoff *h = arg;

	h->calls++;
	h->done_before += h->r ? h->r->calls : 0;
	h->qid = qe->qid;
	h->recovered = qe->recovered;
	h->held = qe->held;
	h->body_len = body_len;
	h->received_ns = env->received_ns;
	h->nrcpt = env->nrcpt;
	snprintf(h->from, sizeof(h->from), "%.*s", (int)env->mail_from.len, env->mail_from.p);
	snprintf(h->rcpt1, sizeof(h->rcpt1), "%.*s", (int)env->rcpts[env->nrcpt - 1].len,
		 env->rcpts[env->nrcpt - 1].p);
}

static void test_consumer_before_callback(void **state)
{
	struct env *e = env_new();
	struct msgspec ms = spec(1000, 5);
	struct handoff h = { 0 };
	struct result r;

	(void)state;
	env_open(e);
	assert_int_equal(spool_set_consumer(e->sp, handoff_fn, &h), 0);
	assert_int_equal(h.calls, 0);   /* nothing recovered */
	assert_int_equal(commit_msg(e, &ms, 0, &r), 0);
	h.r = &r;
	drain(e);
	/* Once, durable, before the callback that sends the 250, with the envelope committed. */
	assert_int_equal(r.calls, 1);
	assert_int_equal(r.err, 0);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.done_before, 0);
	assert_int_equal(h.qid, r.qid);
	assert_false(h.recovered);
	assert_false(h.held);
	assert_int_equal(h.body_len, 1000);
	assert_int_equal(h.received_ns, 1700000000000000005ull);
	assert_int_equal(h.nrcpt, 2);
	assert_string_equal(h.from, "alice@example.org");
	assert_string_equal(h.rcpt1, "carol@example.net");
	/* Unregistered: the next commit goes to no one. */
	assert_int_equal(spool_set_consumer(e->sp, NULL, NULL), 0);
	assert_int_equal(commit_msg(e, &ms, 0, &r), 0);
	drain(e);
	assert_int_equal(r.calls, 1);
	assert_int_equal(h.calls, 1);
	env_free(e);
}

static void test_consumer_gets_recovered(void **state)
{
	struct env *e = env_new();
	struct msgspec ms = spec(300, 2);
	struct handoff h = { 0 };
	struct result r[3];

	(void)state;
	env_open(e);
	for (int i = 0; i < 3; i++)
		assert_int_equal(commit_msg(e, &ms, 0, &r[i]), 0);
	drain(e);
	assert_int_equal(spool_journal_append(e->sp, r[0].qid, SPOOL_EV_DONE, 0), 0);
	assert_int_equal(spool_journal_append(e->sp, r[1].qid, SPOOL_EV_HOLD, 0), 0);
	assert_int_equal(spool_journal_append(e->sp, r[2].qid, SPOOL_EV_DONE, 0), 0);
	drain(e);
	spool_close(&e->sp);
	env_open(e);
	/* Only the one not done, read back from its record, with its journaled state. */
	assert_int_equal(spool_set_consumer(e->sp, handoff_fn, &h), 0);
	assert_int_equal(h.calls, 1);
	assert_int_equal(h.qid, r[1].qid);
	assert_true(h.recovered);
	assert_true(h.held);
	assert_int_equal(h.body_len, 300);
	assert_string_equal(h.rcpt1, "carol@example.net");
	env_free(e);
}

static void test_domain_quota(void **state)
{
	struct env *e = env_new();
	struct msgspec one = spec(1000, 1), two = spec(500, 2);
	struct slice net = SLICE_LIT("example.net"), a = SLICE_LIT("a.test"),
		     b = SLICE_LIT("B.TEST");
	struct result r1, r2;

	(void)state;
	e->conf.quota_shares = 2;
	env_open(e);
	two.nrcpt = 3;
	two.rcpts[0] = SLICE_LIT("x@a.test");
	two.rcpts[1] = SLICE_LIT("y@b.test");
	two.rcpts[2] = SLICE_LIT("z@A.test");
	assert_int_equal(commit_msg(e, &one, 0, &r1), 0);
	assert_int_equal(commit_msg(e, &two, 0, &r2), 0);
	assert_int_equal(spool_domain_queued_bytes(e->sp, net), 0);   /* not durable yet */
	drain(e);
	/* Once per message and domain, whatever the case of the domain. */
	assert_int_equal(spool_domain_queued_bytes(e->sp, net), 1000);
	assert_int_equal(spool_domain_queued_bytes(e->sp, a), 500);
	assert_int_equal(spool_domain_queued_bytes(e->sp, b), 500);
	/* This spool holds half of each quota. */
	assert_true(spool_domain_over_quota(e->sp, net, 2000));
	assert_false(spool_domain_over_quota(e->sp, net, 2002));
	assert_false(spool_domain_over_quota(e->sp, SLICE_LIT("other.test"), 0));
	/* A recipient settled is still queued bytes; DONE takes them back. */
	assert_int_equal(spool_journal_append(e->sp, r2.qid, SPOOL_EV_RCPT_DONE, 0), 0);
	assert_int_equal(spool_domain_queued_bytes(e->sp, a), 500);
	assert_int_equal(spool_journal_append(e->sp, r1.qid, SPOOL_EV_DONE, 0), 0);
	assert_int_equal(spool_domain_queued_bytes(e->sp, net), 0);
	drain(e);
	/* Recovery counts what is left, before any consumer. */
	spool_close(&e->sp);
	env_open(e);
	assert_int_equal(spool_domain_queued_bytes(e->sp, net), 0);
	assert_int_equal(spool_domain_queued_bytes(e->sp, a), 500);
	assert_int_equal(spool_domain_queued_bytes(e->sp, b), 500);
	assert_int_equal(spool_journal_append(e->sp, r2.qid, SPOOL_EV_DELETE, 0), 0);
	assert_int_equal(spool_domain_queued_bytes(e->sp, a), 0);
	assert_int_equal(spool_domain_queued_bytes(e->sp, b), 0);
	env_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_record_env_roundtrip),
		cmocka_unit_test(test_record_header),
		cmocka_unit_test(test_record_message_id),
		cmocka_unit_test(test_qid_format),
		cmocka_unit_test(test_commit_durable),
		cmocka_unit_test(test_group_commit),
		cmocka_unit_test(test_commit_delay),
		cmocka_unit_test(test_reopen_recovers),
		cmocka_unit_test(test_torn_tail),
		cmocka_unit_test(test_corrupt_middle),
		cmocka_unit_test(test_resync_every_byte),
		cmocka_unit_test(test_damage_pins_segment_on_full_disk),
		cmocka_unit_test(test_resync_ignores_forged_record),
		cmocka_unit_test(test_defer_info),
		cmocka_unit_test(test_jtext_record),
		cmocka_unit_test(test_spill),
		cmocka_unit_test(test_spill_write_error),
		cmocka_unit_test(test_journal_replay),
		cmocka_unit_test(test_reclaim_runtime),
		cmocka_unit_test(test_qid_unique_after_reclaim),
		cmocka_unit_test(test_journal_roll),
		cmocka_unit_test(test_scan_during_writes),
		cmocka_unit_test(test_write_error_fails_batch),
		cmocka_unit_test(test_enospc),
		cmocka_unit_test(test_open_full_disk),
		cmocka_unit_test(test_killed_process_ids),
		cmocka_unit_test(test_cost),
		cmocka_unit_test(test_events_numbered_with_state),
		cmocka_unit_test(test_events_recovered_from_state),
		cmocka_unit_test(test_events_without_state_voided),
		cmocka_unit_test(test_events_kept_after_journal_roll),
		cmocka_unit_test(test_events_lazy_sync_power_loss),
		cmocka_unit_test(test_events_sync_before_state_goes),
		cmocka_unit_test(test_consumer_before_callback),
		cmocka_unit_test(test_consumer_gets_recovered),
		cmocka_unit_test(test_domain_quota),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
