/*
 * mime_decode.h - streaming, tolerant Content-Transfer-Encoding decoders: base64 (RFC 2045
 * §6.8) and quoted-printable (RFC 2045 §6.7).
 *
 * Both keep their state between calls, so input may be cut anywhere. Both skip what they cannot
 * decode and say so in a flag instead of failing: junk in base64 is dropped, a bad '=' escape in
 * quoted-printable is kept literally. Output never exceeds input + 3 bytes per call. Pure, any
 * thread, no allocation.
 */
#ifndef SLUICE_FILTER_MIME_DECODE_H
#define SLUICE_FILTER_MIME_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MIME_DECODE_F_BAD       0x01u  /* junk skipped (base64) or bad escape kept (QP) */
#define MIME_DECODE_F_TRUNCATED 0x02u  /* base64 ended inside a 4-character group */

struct mime_decode_b64 {
	uint32_t acc;
	uint8_t  n;     /* characters in the current group, 0..3 */
	uint8_t  pad;   /* an '=' ended a group: more '=' are expected, not junk */
};

struct mime_decode_qp {
	uint8_t st;     /* private */
	uint8_t h1;     /* the first hex digit after '=' */
};

static inline void mime_decode_b64_init(struct mime_decode_b64 *s) { *s = (struct mime_decode_b64){ 0 }; }
static inline void mime_decode_qp_init(struct mime_decode_qp *s) { *s = (struct mime_decode_qp){ 0 }; }

/* Decodes n bytes (line ends among them are whitespace and skipped); out must hold n + 3.
 * Returns the bytes written; ORs MIME_DECODE_F_* into *flags. */
size_t mime_decode_b64(struct mime_decode_b64 *s, const uint8_t *in, size_t n, uint8_t *out,
		       unsigned *flags);
/* The end of the encoded data: writes the bytes of a partial group (at most 2). */
size_t mime_decode_b64_end(struct mime_decode_b64 *s, uint8_t *out, unsigned *flags);

/* Decodes n bytes of one line's text (no line end in it); out must hold n + 3. */
size_t mime_decode_qp(struct mime_decode_qp *s, const uint8_t *in, size_t n, uint8_t *out,
		      unsigned *flags);
/* A line end in the encoded text: writes "\n" for a hard break, nothing for a soft one (a line
 * ending in '=' and maybe whitespace). out must hold 4. */
size_t mime_decode_qp_eol(struct mime_decode_qp *s, uint8_t *out, unsigned *flags);
size_t mime_decode_qp_end(struct mime_decode_qp *s, uint8_t *out, unsigned *flags);

/* One-shot base64 for RFC 2047 "B" words: decodes n bytes into out (room for n), returns the
 * length; ORs flags. */
size_t mime_decode_b64_block(const uint8_t *in, size_t n, uint8_t *out, unsigned *flags);

/* hex digit value or -1 */
int mime_decode_hexval(uint8_t c);

#endif
