/*
 * buf.h - byte buffers and non-owning slices (after nginx's ngx_buf_t and ngx_str_t).
 *
 * A buffer is four pointers into one allocation: start <= pos <= last <= end. Bytes between
 * pos and last are unread; last..end is free space. A slice points into a buffer it does not
 * own and is valid only as long as the buffer's bytes are. Any thread; no locking.
 */
#ifndef SLUICE_BASE_BUF_H
#define SLUICE_BASE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct buf {
	uint8_t *start;
	uint8_t *pos;
	uint8_t *last;
	uint8_t *end;
};

struct slice {
	const char *p;
	size_t      len;
};

#define SLICE_LIT(s) ((struct slice){ (s), sizeof(s) - 1 })

static inline void buf_init(struct buf *b, void *mem, size_t size)
{
	b->start = b->pos = b->last = mem;
	b->end = b->start + size;
}

static inline size_t buf_unread(const struct buf *b) { return (size_t)(b->last - b->pos); }
static inline size_t buf_room(const struct buf *b) { return (size_t)(b->end - b->last); }

/* Moves the unread bytes to the start, so the free space is all at the end. */
static inline void buf_compact(struct buf *b)
{
	size_t n = buf_unread(b);

	if (b->pos != b->start) {
		memmove(b->start, b->pos, n);
		b->pos = b->start;
		b->last = b->start + n;
	}
}

/* Appends as much of p as fits; returns the count appended. */
static inline size_t buf_put(struct buf *b, const void *p, size_t len)
{
	size_t n = len < buf_room(b) ? len : buf_room(b);

	memcpy(b->last, p, n);
	b->last += n;
	return n;
}

static inline int slice_eq_nocase(struct slice s, const char *lit)
{
	size_t n = strlen(lit);

	return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

#endif
