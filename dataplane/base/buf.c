/*
 * buf.c - the growable side of base/buf.h: one heap byte buffer for replies, requests, DSNs
 * and text the tree builds.
 */
#include "buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

int buf_reserve(struct buf *b, size_t n)
{
	size_t unread = buf_unread(b), cap = buf_capacity(b), ncap;
	uint8_t *np;

	if (buf_room(b) >= n)
		return 0;
	if (cap - unread >= n) {
		buf_compact(b);
		return 0;
	}
	ncap = cap ? cap : 256;
	while (ncap - unread < n) {
		if (ncap > SIZE_MAX / 2)
			return -ENOMEM;
		ncap *= 2;
	}
	buf_compact(b);
	np = realloc(b->start, ncap);
	if (np == NULL)
		return -ENOMEM;
	b->start = b->pos = np;
	b->last = np + unread;
	b->end = np + ncap;
	return 0;
}

int buf_append(struct buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (buf_reserve(b, n) < 0)
		return -ENOMEM;
	memcpy(b->last, p, n);
	b->last += n;
	return 0;
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list again;
	int n;

	va_copy(again, ap);
	n = vsnprintf((char *)b->last, buf_room(b), fmt, ap);
	if (n >= 0 && (size_t)n >= buf_room(b)) {
		if (buf_reserve(b, (size_t)n + 1) < 0) {
			va_end(again);
			return -ENOMEM;
		}
		n = vsnprintf((char *)b->last, buf_room(b), fmt, again);
	}
	va_end(again);
	if (n < 0)
		return -EINVAL;
	b->last += n;
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return r;
}

void buf_consume(struct buf *b, size_t n)
{
	if (n >= buf_unread(b)) {
		b->pos = b->last = b->start;   /* also an empty buffer with no allocation yet */
		return;
	}
	b->pos += n;
}

void buf_release(struct buf *b)
{
	free(b->start);
	*b = (struct buf){ 0 };
}
