/*
 * mime_decode.c - streaming base64 and quoted-printable decoders (RFC 2045 §6.7, §6.8).
 *
 * Tolerance follows what mail readers do: base64 skips every byte outside its alphabet (the
 * flag says whether any was more than whitespace) and resumes after '=' padding, since
 * concatenated base64 blobs are common in the wild; quoted-printable keeps a malformed '='
 * escape as literal text. Pure, any thread.
 */
#include "mime_decode.h"

/* 0..63: alphabet; 64: whitespace (skipped silently); 65: '='; 66: junk */
enum { B64_WS = 64, B64_PAD = 65, B64_JUNK = 66 };

static const uint8_t b64_tab[256] = {
#define J B64_JUNK
	J, J, J, J, J, J, J, J, J, 64, 64, 64, 64, 64, J, J,
	J, J, J, J, J, J, J, J, J, J, J, J, J, J, J, J,
	64, J, J, J, J, J, J, J, J, J, J, 62, J, J, J, 63,
	52, 53, 54, 55, 56, 57, 58, 59, 60, 61, J, J, J, 65, J, J,
	J, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
	15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, J, J, J, J, J,
	J, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
	41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, J, J, J, J, J,
	J, J, J, J, J, J, J, J, J, J, J, J, J, J, J, J,
	J, J, J, J, J, J, J, J, J, J, J, J, J, J, J, J,
	J, J, J, J, J, J, J, J, J, J, J, J, J, J, J, J,
	J, J, J, J, J, J, J, J, J, J, J, J, J, J, J, J,
	J, J, J, J, J, J, J, J, J, J, J, J, J, J, J, J,
	J, J, J, J, J, J, J, J, J, J, J, J, J, J, J, J,
	J, J, J, J, J, J, J, J, J, J, J, J, J, J, J, J,
	J, J, J, J, J, J, J, J, J, J, J, J, J, J, J, J,
#undef J
};

int mime_decode_hexval(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

size_t mime_decode_b64(struct mime_decode_b64 *s, const uint8_t *in, size_t n, uint8_t *out,
		       unsigned *flags)
{
	uint8_t *o = out;
	uint32_t acc = s->acc;
	unsigned k = s->n;
	size_t i = 0;

	while (i < n) {
		/* Fast path: whole groups of four alphabet characters. */
		if (k == 0) {
			while (i + 4 <= n) {
				uint8_t a = b64_tab[in[i]], b = b64_tab[in[i + 1]];
				uint8_t c = b64_tab[in[i + 2]], d = b64_tab[in[i + 3]];

				if ((a | b | c | d) & 0xc0)
					break;
				acc = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | d;
				o[0] = (uint8_t)(acc >> 16);
				o[1] = (uint8_t)(acc >> 8);
				o[2] = (uint8_t)acc;
				o += 3;
				i += 4;
				s->pad = 0;
			}
			if (i >= n)
				break;
		}
		uint8_t v = b64_tab[in[i++]];

		if (v < 64) {
			s->pad = 0;
			acc = acc << 6 | v;
			if (++k == 4) {
				*o++ = (uint8_t)(acc >> 16);
				*o++ = (uint8_t)(acc >> 8);
				*o++ = (uint8_t)acc;
				k = 0;
			}
		} else if (v == B64_WS) {
			continue;
		} else if (v == B64_PAD) {
			if (k == 2) {
				*o++ = (uint8_t)(acc >> 4);
				s->pad = 1;
			} else if (k == 3) {
				*o++ = (uint8_t)(acc >> 10);
				*o++ = (uint8_t)(acc >> 2);
				s->pad = 1;
			} else if (k == 1) {
				*flags |= MIME_DECODE_F_TRUNCATED;
			} else if (!s->pad) {
				*flags |= MIME_DECODE_F_BAD;
			}
			k = 0;
			acc = 0;
		} else {
			*flags |= MIME_DECODE_F_BAD;
		}
	}
	s->acc = acc;
	s->n = (uint8_t)k;
	return (size_t)(o - out);
}

size_t mime_decode_b64_end(struct mime_decode_b64 *s, uint8_t *out, unsigned *flags)
{
	size_t r = 0;

	if (s->n == 2) {
		out[r++] = (uint8_t)(s->acc >> 4);
	} else if (s->n == 3) {
		out[r++] = (uint8_t)(s->acc >> 10);
		out[r++] = (uint8_t)(s->acc >> 2);
	}
	if (s->n)
		*flags |= MIME_DECODE_F_TRUNCATED;
	mime_decode_b64_init(s);
	return r;
}

size_t mime_decode_b64_block(const uint8_t *in, size_t n, uint8_t *out, unsigned *flags)
{
	struct mime_decode_b64 s;
	size_t r;

	mime_decode_b64_init(&s);
	r = mime_decode_b64(&s, in, n, out, flags);
	return r + mime_decode_b64_end(&s, out + r, flags);
}

enum { QP_TEXT, QP_EQ, QP_HEX1, QP_EQ_WS };

size_t mime_decode_qp(struct mime_decode_qp *s, const uint8_t *in, size_t n, uint8_t *out,
		      unsigned *flags)
{
	uint8_t *o = out;
	size_t i = 0;

	while (i < n) {
		uint8_t c = in[i];
		int h;

		switch (s->st) {
		case QP_TEXT: {
			/* Copy the run up to the next '='. */
			size_t j = i;

			while (j < n && in[j] != '=')
				j++;
			for (; i < j; i++)
				*o++ = in[i];
			if (i < n) {
				s->st = QP_EQ;
				i++;
			}
			continue;
		}
		case QP_EQ:
			if (mime_decode_hexval(c) >= 0) {
				s->h1 = c;
				s->st = QP_HEX1;
				i++;
			} else if (c == ' ' || c == '\t') {
				s->st = QP_EQ_WS;
				i++;
			} else {
				/* keep the '=' and read c again as text */
				*flags |= MIME_DECODE_F_BAD;
				*o++ = '=';
				s->st = QP_TEXT;
			}
			continue;
		case QP_HEX1:
			if ((h = mime_decode_hexval(c)) >= 0) {
				*o++ = (uint8_t)(mime_decode_hexval(s->h1) << 4 | h);
				i++;
			} else {
				*flags |= MIME_DECODE_F_BAD;
				*o++ = '=';
				*o++ = s->h1;
			}
			s->st = QP_TEXT;
			continue;
		case QP_EQ_WS:
			if (c == ' ' || c == '\t') {
				i++;
			} else {
				/* '=' then blanks then text: the blanks are lost (XXX: rare) */
				*flags |= MIME_DECODE_F_BAD;
				*o++ = '=';
				s->st = QP_TEXT;
			}
			continue;
		}
	}
	return (size_t)(o - out);
}

size_t mime_decode_qp_eol(struct mime_decode_qp *s, uint8_t *out, unsigned *flags)
{
	size_t r = 0;

	switch (s->st) {
	case QP_TEXT:
		out[r++] = '\n';
		break;
	case QP_EQ:
	case QP_EQ_WS:
		break;  /* soft line break (§6.7 rule 5) */
	case QP_HEX1:
		*flags |= MIME_DECODE_F_BAD;
		out[r++] = '=';
		out[r++] = s->h1;
		out[r++] = '\n';
		break;
	}
	s->st = QP_TEXT;
	return r;
}

size_t mime_decode_qp_end(struct mime_decode_qp *s, uint8_t *out, unsigned *flags)
{
	size_t r = 0;

	if (s->st == QP_HEX1) {
		*flags |= MIME_DECODE_F_BAD;
		out[r++] = '=';
		out[r++] = s->h1;
	}
	s->st = QP_TEXT;
	return r;
}
