/*
 * smtp_data.h - the message body decoder for DATA (RFC 5321 §4.1.1.4, §4.5.2) and BDAT
 * (RFC 3030).
 *
 * DATA: removes dot-stuffing and finds the end of data. The only end of data is CR LF "." CR LF,
 * where the first CR LF ends the last line of the body (or the DATA command itself, for an empty
 * body). SMTP smuggling (CVE-2023-51764 and kin): a bare LF or a bare CR never ends a line for
 * the protocol, so "\n.\n", "\r.\r", "\r\n.\n", "\n.\r\n" and the like never end data and a
 * line after a bare LF or CR is not dot-unstuffed. Decision: bare CR and bare LF are NORMALIZED
 * to CR LF in the stored message (flagged, counted, visible to filter rules as
 * SMTP_DATA_F_BARE_*), so the spool only ever holds canonical CR LF text and the relay's
 * dot-stuffing on the way out can never be confused by a line a downstream server reads
 * differently.
 *
 * BDAT: the chunk is the body as is; no dot handling; bare CR/LF are normalized the same way
 * (state carries across chunks, so a CR ending one chunk and an LF starting the next are one
 * CR LF).
 *
 * Pure, bounded, any thread. Over a whole message the output never exceeds 2 * input (every bare
 * byte becomes two). One call can write 2 more than 2 * its len: a "." CR at the start of a line
 * that ends one read is held back (it may be the end of data), and when the next read does not
 * start with LF that CR turns out bare and is written as CR LF then. Size out with
 * SMTP_DATA_OUT_MAX(len).
 */
#ifndef SLUICE_SMTP_DATA_H
#define SLUICE_SMTP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum smtp_data_mode { SMTP_DATA_DOT, SMTP_DATA_BDAT };

#define SMTP_DATA_F_BARE_LF    0x01u  /* saw an LF not preceded by CR */
#define SMTP_DATA_F_BARE_CR    0x02u  /* saw a CR not followed by LF */
#define SMTP_DATA_F_LONG_LINE  0x04u  /* a line longer than SMTP_TEXT_LINE_MAX (CRLF inclusive) */
#define SMTP_DATA_F_NUL        0x08u  /* saw a NUL byte */
#define SMTP_DATA_F_8BIT       0x10u  /* saw a byte >= 0x80 */

struct smtp_data {
	uint8_t  mode;
	uint8_t  state;       /* private */
	uint8_t  flags;       /* SMTP_DATA_F_* seen so far */
	uint32_t line_len;    /* bytes in the current line so far */
	uint64_t out_bytes;   /* decoded bytes produced so far (the message size) */
	uint64_t in_bytes;    /* input bytes consumed so far */
	uint32_t long_lines;
	uint32_t bare_lf, bare_cr;
	uint32_t longest_line; /* octets of the longest line so far, CR LF excluded, the current
	                        * one included (over 998: RFC 5321 4.5.3.1.6's limit; [delivery]
	                        * long_lines = refuse answers 554 5.6.0 at end of data) */
};

/* Room smtp_data_decode may need in out for len input bytes (see above for the + 2). */
#define SMTP_DATA_OUT_MAX(len) (2 * (size_t)(len) + 2)

void smtp_data_init(struct smtp_data *d, enum smtp_data_mode mode);

/*
 * Decodes in[0..len) into out (room for SMTP_DATA_OUT_MAX(len) = 2 * len + 2; BDAT mode never
 * writes more than 2 * len). Returns the input bytes consumed. In DOT
 * mode, when the end of data is consumed *done_r is set and decoding stops right after it: the
 * bytes after it are the client's next pipelined commands. *out_len_r is the bytes written.
 * In BDAT mode every byte is consumed and *done_r is never set; call smtp_data_finish at the
 * end of the LAST chunk to flush a pending CR.
 */
size_t smtp_data_decode(struct smtp_data *d, const uint8_t *in, size_t len, uint8_t *out,
			size_t *out_len_r, bool *done_r);

/* BDAT LAST: flushes a CR held back at the end of the last chunk (as CR LF). Returns bytes
 * written to out (0..2). */
size_t smtp_data_finish(struct smtp_data *d, uint8_t *out);

#endif
