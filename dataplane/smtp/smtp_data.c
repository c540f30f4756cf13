/*
 * smtp_data.c - the message body decoder: DATA dot-unstuffing and end-of-data detection
 * (RFC 5321 §4.1.1.4, §4.5.2), BDAT chunks (RFC 3030 §2), and the normalization of bare CR and
 * bare LF to CR LF that closes SMTP smuggling (CVE-2023-51764, CVE-2023-51765, CVE-2023-51766).
 *
 * Pure, bounded, any thread; the state lives in struct smtp_data (one per message in flight).
 *
 * The protocol's view: only CR LF ends a line. So a line starts (and may be dot-stuffed, or be
 * the end-of-data ".") only right after a real CR LF, or at the start of the body. A bare LF or
 * bare CR is an ordinary byte of the current protocol line that we store as CR LF: the line that
 * follows it in the stored text is not unstuffed and cannot end the data. A "." at the start of
 * a protocol line that is followed by anything but CR LF is removed (§4.5.2: "the first character
 * is deleted"), also when what follows is a bare CR or LF: ".\n" stores as CR LF.
 *
 * Output bound: a CR in text is written as CR LF at once (eagerly); the LF that may follow in the
 * next read is then swallowed. That keeps every call within 2 * len, except for the one sequence
 * that cannot be written before the next byte is known: "." CR at the start of a line (end of
 * data if LF follows). If it turns out bare, its CR LF is written in the next call, hence
 * SMTP_DATA_OUT_MAX(len) = 2 * len + 2.
 *
 * Speed: text between specials is found 16 bytes at a time (SSE2 where the target has it) and
 * copied with memcpy; NUL and bytes >= 0x80 stop the scan only until their flag is set.
 */
#include "smtp_data.h"

#include <string.h>

#include "smtp_limits.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

enum {
	ST_BOL = 0,  /* DOT mode: at the start of a protocol line (after a real CR LF) */
	ST_TEXT,     /* inside a line (BDAT mode lives here) */
	ST_CR,       /* a CR was written as CR LF; an LF next is the rest of it, swallowed */
	ST_DOT,      /* "." at the start of a line, consumed, not written */
	ST_DOT_CR,   /* "." CR at the start of a line: LF next ends the data */
	ST_DONE,     /* the end of data was consumed */
};

/* A line longer than this, without its CR LF, is a long line (§4.5.3.1.6). */
#define LONG_AT (SMTP_TEXT_LINE_MAX - 2u)

void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode)
{
	memset(d, 0, sizeof(*d));
	d->mode = (uint8_t)mode;
	d->state = mode == SMTP_DATA_DOT ? ST_BOL : ST_TEXT;
}

/*
 * The first byte in [p, end) that is CR or LF, or NUL while want_nul, or >= 0x80 while want_8bit;
 * end if none. Never reads outside [p, end).
 */
static const uint8_t *scan(const uint8_t *p, const uint8_t *end, bool want_nul, bool want_8bit)
{
#if defined(__SSE2__)
	const __m128i vcr = _mm_set1_epi8('\r');
	const __m128i vlf = _mm_set1_epi8('\n');
	const __m128i vz = _mm_setzero_si128();
	const __m128i znul = want_nul ? _mm_set1_epi8(-1) : vz;
	const unsigned hi = want_8bit ? 0xffffu : 0;

	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i m = _mm_or_si128(_mm_cmpeq_epi8(v, vcr), _mm_cmpeq_epi8(v, vlf));
		m = _mm_or_si128(m, _mm_and_si128(_mm_cmpeq_epi8(v, vz), znul));
		unsigned bits = (unsigned)_mm_movemask_epi8(m) |
				((unsigned)_mm_movemask_epi8(v) & hi);
		if (bits)
			return p + __builtin_ctz(bits);
		p += 16;
	}
#endif
	for (; p < end; p++) {
		uint8_t c = *p;
		if (c == '\r' || c == '\n' || (c == 0 && want_nul) || (c >= 0x80 && want_8bit))
			return p;
	}
	return end;
}

size_t smtp_data_decode(struct smtp_data *d, const uint8_t *in, size_t len, uint8_t *out,
			size_t *out_len_r, bool *done_r)
{
	const uint8_t *p = in;
	const uint8_t *const end = in + len;
	uint8_t *o = out;
	unsigned st = d->state;
	unsigned flags = d->flags;
	uint32_t line = d->line_len;
	uint32_t long_lines = d->long_lines, bare_lf = d->bare_lf, bare_cr = d->bare_cr;
	uint32_t longest = d->longest_line;
	const unsigned bol = d->mode == SMTP_DATA_DOT ? ST_BOL : ST_TEXT;

	*done_r = false;

/* Writes CR LF and closes the output line. */
#define END_LINE()                                                      \
	do {                                                            \
		o[0] = '\r';                                            \
		o[1] = '\n';                                            \
		o += 2;                                                 \
		if (line > LONG_AT) {                                   \
			long_lines++;                                   \
			flags |= SMTP_DATA_F_LONG_LINE;                 \
		}                                                       \
		if (line > longest)                                     \
			longest = line;                                 \
		line = 0;                                               \
	} while (0)

	while (p < end) {
		switch (st) {
		case ST_TEXT: {
			const uint8_t *q = scan(p, end, !(flags & SMTP_DATA_F_NUL),
						!(flags & SMTP_DATA_F_8BIT));
			size_t run = (size_t)(q - p);
			memcpy(o, p, run);
			o += run;
			/* a line can be longer than 4 GiB only in a BDAT stream; saturate */
			line = run > UINT32_MAX - line ? UINT32_MAX : line + (uint32_t)run;
			p = q;
			if (p == end)
				goto out;
			uint8_t c = *p++;
			if (c == '\r') {
				END_LINE();
				if (p == end) {
					st = ST_CR;
					goto out;
				}
				if (*p == '\n') {
					p++;
					st = bol;
				} else {
					bare_cr++;
					flags |= SMTP_DATA_F_BARE_CR;
				}
			} else if (c == '\n') {
				END_LINE();
				bare_lf++;
				flags |= SMTP_DATA_F_BARE_LF;
			} else {
				/* NUL or 8-bit: the first one of its kind sets its flag, then the
				 * scanner stops looking for it */
				flags |= c ? SMTP_DATA_F_8BIT : SMTP_DATA_F_NUL;
				*o++ = c;
				if (line < UINT32_MAX)
					line++;
			}
			break;
		}
		case ST_CR:
			if (*p == '\n') {
				p++;
				st = bol;
			} else {
				bare_cr++;
				flags |= SMTP_DATA_F_BARE_CR;
				st = ST_TEXT;
			}
			break;
		case ST_BOL:
			if (*p == '.') {
				p++;
				st = ST_DOT;
			} else
				st = ST_TEXT;
			break;
		case ST_DOT:
			/* the dot is dropped whatever follows; only "." CR LF is the end */
			if (*p == '\r') {
				p++;
				st = ST_DOT_CR;
			} else
				st = ST_TEXT;
			break;
		case ST_DOT_CR:
			if (*p == '\n') {
				p++;
				st = ST_DONE;
				*done_r = true;
				goto out;
			}
			/* ".\r" then not LF: a bare CR on a stuffed line */
			END_LINE();
			bare_cr++;
			flags |= SMTP_DATA_F_BARE_CR;
			st = ST_TEXT;
			break;
		default: /* ST_DONE: nothing more belongs to this message */
			*done_r = true;
			goto out;
		}
	}
#undef END_LINE
out:
	if (line > LONG_AT)
		flags |= SMTP_DATA_F_LONG_LINE;
	if (line > longest)
		longest = line;
	d->longest_line = longest;
	d->state = (uint8_t)st;
	d->flags = (uint8_t)flags;
	d->line_len = line;
	d->long_lines = long_lines;
	d->bare_lf = bare_lf;
	d->bare_cr = bare_cr;
	size_t used = (size_t)(p - in), n = (size_t)(o - out);
	d->in_bytes += used;
	d->out_bytes += n;
	*out_len_r = n;
	if (st == ST_DONE)
		*done_r = true;
	return used;
}

size_t smtp_data_finish(struct smtp_data *d, uint8_t *out)
{
	size_t n = 0;

	switch (d->state) {
	case ST_CR:
		/* its CR LF is already written; it was bare after all */
		d->bare_cr++;
		d->flags |= SMTP_DATA_F_BARE_CR;
		break;
	case ST_DOT_CR:
		/* DOT mode only; a held "." CR that never saw its LF */
		out[0] = '\r';
		out[1] = '\n';
		n = 2;
		d->bare_cr++;
		d->flags |= SMTP_DATA_F_BARE_CR;
		break;
	default:
		break;
	}
	/* the last line of a chunked body may lack its CR LF; it still counts */
	if (d->line_len > LONG_AT) {
		d->long_lines++;
		d->flags |= SMTP_DATA_F_LONG_LINE;
	}
	d->line_len = 0;
	if (d->state != ST_DONE)
		d->state = ST_TEXT;
	d->out_bytes += n;
	return n;
}
