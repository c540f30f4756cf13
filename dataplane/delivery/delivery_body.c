/*
 * delivery_body.c - see delivery_body.h.
 */
#include "delivery_body.h"

#include <string.h>

void delivery_body_init(struct delivery_body *b, uint32_t line_max)
{
	memset(b, 0, sizeof(*b));
	b->bol = true;
	b->line_max = line_max == 0 ? 0 : line_max < 80 ? 80 : line_max;
}

size_t delivery_body_encode(struct delivery_body *b, const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t *o = out;
	size_t i = 0;

	while (i < len) {
		uint8_t c = in[i];

		if (b->pending_cr) {
			b->pending_cr = false;
			*o++ = '\r';
			*o++ = '\n';
			b->bol = true;
			b->col = 0;
			if (c == '\n') {
				i++;
				continue;
			}
			b->bare_fixed++;   /* a bare CR: it ended the line, c starts the next */
		}
		if (b->bol) {
			b->bol = false;
			if (c == '.') {
				*o++ = '.';
				b->col++;
				b->stuffed++;
			}
		}
		if (c == '\r') {
			b->pending_cr = true;
			i++;
			continue;
		}
		if (c == '\n') {
			b->bare_fixed++;
			*o++ = '\r';
			*o++ = '\n';
			b->bol = true;
			b->col = 0;
			i++;
			continue;
		}
		if (b->line_max != 0 && b->col >= b->line_max) {
			/* CR LF SP: the rest goes on a continuation line (never one that starts
			 * with a dot, so no stuffing is needed after it). */
			*o++ = '\r';
			*o++ = '\n';
			*o++ = ' ';
			b->col = 1;
			b->wrapped++;
		}
		/* The common case: copy the run of ordinary bytes up to the next CR or LF at once. */
		{
			size_t j = i + 1;

			size_t lim = len;

			if (b->line_max != 0 && len - i > b->line_max - b->col)
				lim = i + (b->line_max - b->col);
			while (j < lim && in[j] != '\r' && in[j] != '\n')
				j++;
			memcpy(o, in + i, j - i);
			o += j - i;
			b->col += (uint32_t)(j - i);
			if (b->col > b->longest)
				b->longest = b->col;
			i = j;
		}
	}
	b->in_bytes += len;
	b->out_bytes += (size_t)(o - out);
	return (size_t)(o - out);
}

size_t delivery_body_finish(struct delivery_body *b, uint8_t *out)
{
	uint8_t *o = out;

	if (b->pending_cr) {
		/* A CR at the very end: treated as the body's last line end (as CR LF would be). */
		b->pending_cr = false;
		b->bare_fixed++;
		*o++ = '\r';
		*o++ = '\n';
		b->bol = true;
	}
	if (!b->bol) {
		*o++ = '\r';
		*o++ = '\n';
	}
	b->col = 0;
	memcpy(o, ".\r\n", 3);
	o += 3;
	b->bol = true;
	b->out_bytes += (size_t)(o - out);
	return (size_t)(o - out);
}
