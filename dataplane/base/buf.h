/*
 * buf.h - byte buffers and non-owning slices (after nginx's ngx_buf_t and ngx_str_t).
 *
 * A buffer is four pointers into one allocation: start <= pos <= last <= end. Bytes between
 * pos and last are unread; last..end is free space. A slice points into a buffer it does not
 * own and is valid only as long as the buffer's bytes are. Any thread; no locking.
 */
#ifndef SLUICE_BASE_BUF_H
#define SLUICE_BASE_BUF_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

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

/* --- growable (heap) buffers: base/buf.c --------------------------------------------------
 * A zeroed struct buf is an empty growable buffer; it allocates on the first append. Appending
 * may move the bytes (compaction, realloc): never while another party (the kernel, for a send
 * in flight) reads from pos. */

/* Room for n more bytes at last: the unread bytes moved to the start if that is enough, else
 * the allocation doubled (from 256). 0 or -ENOMEM (the buffer as it was). */
int  buf_reserve(struct buf *b, size_t n);
int  buf_append(struct buf *b, const void *p, size_t n);
/* Appends the formatted text (a NUL after it, outside the unread bytes). */
int  buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int  buf_vprintf(struct buf *b, const char *fmt, va_list ap);
/* n bytes read from pos; an emptied buffer starts again at its start. */
void buf_consume(struct buf *b, size_t n);
/* Frees the allocation: back to an empty growable buffer. */
void buf_release(struct buf *b);

static inline size_t buf_capacity(const struct buf *b) { return (size_t)(b->end - b->start); }

static inline int slice_eq_nocase(struct slice s, const char *lit)
{
	size_t n = strlen(lit);

	return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

#endif
