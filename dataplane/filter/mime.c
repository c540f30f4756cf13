/*
 * mime.c - the streaming MIME parser: lines, header blocks, the multipart structure, and the
 * text path of each part (RFC 5322 §2.2, §3.6; RFC 2045 §5-6; RFC 2046 §5.1, §5.2.1).
 *
 * Owner: one shard thread; one message at a time per parser.
 *
 * How input flows:
 *   feed -> lines (CR LF or bare LF ends a line; a CR at the end of a piece is held back)
 *        -> header block: fields unfolded into hb (capped at max_header_line), each delivered
 *           when the first byte of the next line shows it does not continue; a line that is no
 *           field ends the block (NO_HEADER_END) and is read again as the first body line
 *        -> body: at each line start, if a multipart is open and the line starts with '-', up to
 *           LB_MAX bytes are held to compare with the open boundaries (innermost first); the
 *           line end before a delimiter belongs to the delimiter (RFC 2046 §5.1.1), so a line
 *           end is passed on only when the next line turns out not to be one
 *        -> leaf: transfer decoding into dec, which is handed on in blocks of exactly DEC_BLOCK
 *           bytes: so everything after it (rawbody, charset conversion, HTML, URIs, body_text)
 *           sees the same pieces however the message was cut, and the callback transcript is
 *           the same for every split.
 * The preamble of a multipart is read as text/plain: when the boundary never comes (a common
 * spam trick), the whole body is still scanned, as SpamAssassin does. The epilogue is skipped.
 * A message/rfc822 part is descended into: its header block starts right after the part's.
 *
 * XXX compromises: a charset named only in HTML (<meta charset>) is not used; a uuencoded or
 * BinHex body is not decoded; the boundary of a multipart with a base64 or quoted-printable
 * Content-Transfer-Encoding (not allowed, RFC 2045 §6.4) is looked for in the encoded text;
 * SpamAssassin puts the Subject in front of the body text: that is left to the consumer, which
 * has the decoded Subject from header() before any body_text.
 *
 * Limits: max_depth multiparts open at once (their boundaries at most MIME_BOUNDARY_MAX bytes),
 * max_parts entities, max_header_line bytes per field, max_headers fields per block,
 * max_text_bytes of body_text and of rawbody per message. Work per line start is bounded by
 * max_depth * LB_MAX, so time is linear in the input.
 */
#include "mime.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mime_charset.h"
#include "mime_decode.h"
#include "mime_gbuf.h"
#include "mime_header.h"
#include "mime_html.h"
#include "mime_uri.h"

#define LB_MAX    (MIME_BOUNDARY_MAX + 4 + 64)  /* "--" boundary "--" and some blanks */
#define DEC_BLOCK 4096u
#define DEC_CHUNK 1024u                         /* decoder output per step */
#define HDR_KEEP  8192u                         /* header buffers kept between messages */

enum { ST_HDR, ST_BODY, ST_DEAD, ST_ENDED };
enum { LEAF_SKIP, LEAF_TEXT, LEAF_OPAQUE };

struct mime_mp {
	uint16_t blen;
	uint16_t depth;         /* depth of the multipart entity itself */
	bool     seen;          /* a delimiter was found */
	bool     digest;
	char     boundary[MIME_BOUNDARY_MAX];
};

struct mime_out {
	size_t  n;
	size_t  total;          /* bytes delivered this message */
	bool    capped;         /* max_text_bytes reached */
	bool    cr;             /* the last byte put was a CR (made "\n"; an LF after it is dropped) */
	uint8_t last;           /* the last byte put ('\n' at the start of a part) */
	uint8_t b[MIME_TEXT_PIECE];
};

struct mime_parser {
	struct mime_sink   sink;
	struct mime_limits lim;
	uint8_t  st;
	bool     cr;            /* a CR ended the last piece fed */
	bool     bol;           /* at the start of a line */
	bool     fed;           /* any byte of this message seen */
	bool     first_line;    /* the message's first line is next (an mbox "From " is skipped) */
	uint32_t anom;          /* kinds reported this message */
	unsigned nparts;

	/* the header block being read */
	unsigned depth, nheaders;
	bool     hfield;        /* hb holds a field; the next line may continue it */
	bool     hcont;         /* the line being read continues the field */
	bool     have_ct, have_cte, digest_parent;
	uint8_t  cte;
	struct mime_header_ctype ct;
	struct mime_gbuf hb, hdec, htmp;

	/* the body */
	bool     eol_pending;   /* a line end not yet passed on */
	bool     lb_on;         /* holding a line start that may be a delimiter */
	uint16_t lbn;
	uint8_t  leaf, lcte;
	bool     lhtml;
	uint8_t  rkind;         /* enum mime_raw_kind of the body bytes (sink.raw) */
	unsigned dflags;
	struct mime_decode_b64   b64;
	struct mime_decode_qp    qp;
	struct mime_charset_conv conv;
	size_t   decn;
	unsigned nmp;
	struct mime_mp *mp;     /* lim.max_depth entries */
	struct mime_out raw, text;
	struct mime_html html;
	struct mime_uri_scan uris;
	struct mime_charset_cache cs;
	uint8_t  lb[LB_MAX];
	uint8_t  dec[DEC_BLOCK];
};

static const char *const anomaly_names[MIME_ANOM_COUNT] = {
	[MIME_ANOM_MISSING_BOUNDARY] = "MIME_MISSING_BOUNDARY",
	[MIME_ANOM_UNTERMINATED_MULTIPART] = "MIME_UNTERMINATED_MULTIPART",
	[MIME_ANOM_DEPTH_EXCEEDED] = "MIME_DEPTH_EXCEEDED",
	[MIME_ANOM_PARTS_EXCEEDED] = "MIME_PARTS_EXCEEDED",
	[MIME_ANOM_HEADER_TOO_LONG] = "MIME_HEADER_TOO_LONG",
	[MIME_ANOM_HEADERS_TOO_MANY] = "MIME_HEADERS_TOO_MANY",
	[MIME_ANOM_BAD_BASE64] = "MIME_BAD_BASE64",
	[MIME_ANOM_TRUNCATED_BASE64] = "MIME_TRUNCATED_BASE64",
	[MIME_ANOM_BAD_QP] = "MIME_BAD_QP",
	[MIME_ANOM_BAD_CHARSET] = "MIME_BAD_CHARSET",
	[MIME_ANOM_BAD_ENCODED_WORD] = "MIME_BAD_ENCODED_WORD",
	[MIME_ANOM_8BIT_HEADER] = "MIME_8BIT_HEADER",
	[MIME_ANOM_NO_HEADER_END] = "MIME_NO_HEADER_END",
};

const char *mime_anomaly_name(enum mime_anomaly a)
{
	if ((unsigned)a >= MIME_ANOM_COUNT)
		return "MIME_UNKNOWN";
	return anomaly_names[a];
}

static void anomaly(struct mime_parser *p, enum mime_anomaly a)
{
	if (p->anom & (1u << a))
		return;
	p->anom |= 1u << a;
	if (p->sink.anomaly)
		p->sink.anomaly(p->sink.arg, a, anomaly_names[a]);
}

static void body_bytes(struct mime_parser *p, const uint8_t *d, size_t n);
static void body_eol(struct mime_parser *p);

/* --- text output ------------------------------------------------------------------------- */

/* Bytes at the end of b[0..n) that start a UTF-8 sequence the buffer does not complete. */
static size_t utf8_cut_tail(const uint8_t *b, size_t n)
{
	for (size_t k = 1; k <= 3 && k <= n; k++) {
		uint8_t c = b[n - k];

		if ((c & 0xc0) == 0x80)
			continue;
		if (c >= 0xc0) {
			size_t need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;

			return need > k ? k : 0;
		}
		return 0;
	}
	return 0;
}

static void out_flush(struct mime_parser *p, struct mime_out *o, bool final)
{
	size_t n = o->n, keep = final ? 0 : utf8_cut_tail(o->b, n), send = n - keep;
	void (*cb)(void *, const uint8_t *, size_t) = o == &p->text ? p->sink.body_text
								     : p->sink.rawbody;

	if (!o->capped && send) {
		size_t allow = p->lim.max_text_bytes - o->total;

		if (send > allow) {
			send = allow;
			while (send > 0 && (o->b[send] & 0xc0) == 0x80)
				send--;
			o->capped = true;
		}
		if (send && cb)
			cb(p->sink.arg, o->b, send);
		o->total += send;
	}
	if (o->capped)
		keep = 0;
	memmove(o->b, o->b + n - keep, keep);
	o->n = keep;
}

static void out_append(struct mime_parser *p, struct mime_out *o, const uint8_t *d, size_t n)
{
	if (n)
		o->last = d[n - 1];
	while (n && !o->capped) {
		size_t k = sizeof(o->b) - o->n;

		if (k > n)
			k = n;
		memcpy(o->b + o->n, d, k);
		o->n += k;
		d += k;
		n -= k;
		if (o->n == sizeof(o->b))
			out_flush(p, o, false);
	}
}

/* Appends with CR LF and bare CR made "\n". */
static void out_put(struct mime_parser *p, struct mime_out *o, const uint8_t *d, size_t n)
{
	size_t i = 0;

	if (o->cr && n && d[0] == '\n')
		i = 1;
	if (n)
		o->cr = false;
	while (i < n) {
		const uint8_t *q = memchr(d + i, '\r', n - i);
		size_t j = q ? (size_t)(q - d) : n;

		out_append(p, o, d + i, j - i);
		if (q == NULL)
			break;
		out_append(p, o, (const uint8_t *)"\n", 1);
		i = j + 1;
		if (i == n)
			o->cr = true;
		else if (d[i] == '\n')
			i++;
	}
}

static void uri_out(void *arg, const char *u, size_t n)
{
	struct mime_parser *p = arg;

	if (p->sink.uri)
		p->sink.uri(p->sink.arg, (struct slice){ u, n });
}

/* UTF-8 text for body_text (plain text, or what HTML rendered). */
static void text_put(void *arg, const uint8_t *d, size_t n)
{
	struct mime_parser *p = arg;

	mime_uri_scan_feed(&p->uris, d, n, uri_out, p);
	out_put(p, &p->text, d, n);
}

static void conv_out(void *arg, const uint8_t *d, size_t n)
{
	struct mime_parser *p = arg;

	if (p->lhtml)
		mime_html_feed(&p->html, d, n);
	else
		text_put(p, d, n);
}

/* A block of transfer-decoded text. */
static void text_stage(struct mime_parser *p, const uint8_t *d, size_t n)
{
	/* Once max_text_bytes of text came out, the rest is not converted, rendered or looked
	 * at for URIs: that bounds the work a message can cause here. */
	if (!p->raw.capped)
		out_put(p, &p->raw, d, n);
	if (!p->text.capped)
		mime_charset_feed(&p->conv, d, n, conv_out, p);
}

static void dec_put(struct mime_parser *p, const uint8_t *d, size_t n)
{
	while (n) {
		size_t k;

		if (p->decn == 0 && n >= DEC_BLOCK) {
			text_stage(p, d, DEC_BLOCK);
			d += DEC_BLOCK;
			n -= DEC_BLOCK;
			continue;
		}
		k = DEC_BLOCK - p->decn;
		if (k > n)
			k = n;
		memcpy(p->dec + p->decn, d, k);
		p->decn += k;
		d += k;
		n -= k;
		if (p->decn == DEC_BLOCK) {
			p->decn = 0;
			text_stage(p, p->dec, DEC_BLOCK);
		}
	}
}

/* --- leaves: the content of one part ----------------------------------------------------- */

static void leaf_begin(struct mime_parser *p, uint8_t kind, uint8_t cte, const char *cs,
		       size_t cslen, bool html)
{
	p->leaf = kind;
	p->lcte = cte;
	p->rkind = MIME_RAW_BODY;
	p->dflags = 0;
	p->decn = 0;
	mime_decode_b64_init(&p->b64);
	mime_decode_qp_init(&p->qp);
	if (kind != LEAF_TEXT)
		return;
	if (mime_charset_open(&p->cs, cs, cslen, &p->conv) < 0)
		anomaly(p, MIME_ANOM_BAD_CHARSET);
	p->lhtml = html;
	if (html)
		mime_html_init(&p->html, text_put, uri_out, p);
	p->raw.cr = p->text.cr = false;
	p->raw.last = p->text.last = '\n';
	mime_uri_scan_init(&p->uris);
}

static void leaf_bytes(struct mime_parser *p, const uint8_t *d, size_t n)
{
	uint8_t tmp[DEC_CHUNK + 4];

	if (p->sink.raw && n)
		p->sink.raw(p->sink.arg, p->rkind, d, n, false);
	if (p->leaf == LEAF_SKIP || n == 0)
		return;
	if (p->lcte == MIME_HEADER_CTE_IDENTITY) {
		if (p->leaf == LEAF_TEXT)
			dec_put(p, d, n);
		return;
	}
	if (p->leaf == LEAF_OPAQUE && p->lcte != MIME_HEADER_CTE_B64)
		return;  /* a non-text QP part: nothing to check cheaply */
	while (n) {
		size_t k = n < DEC_CHUNK ? n : DEC_CHUNK, r;

		if (p->lcte == MIME_HEADER_CTE_B64)
			r = mime_decode_b64(&p->b64, d, k, tmp, &p->dflags);
		else
			r = mime_decode_qp(&p->qp, d, k, tmp, &p->dflags);
		if (p->leaf == LEAF_TEXT)
			dec_put(p, tmp, r);
		d += k;
		n -= k;
	}
}

static void leaf_eol(struct mime_parser *p)
{
	uint8_t tmp[8];
	size_t r;

	if (p->sink.raw)
		p->sink.raw(p->sink.arg, p->rkind, NULL, 0, true);
	if (p->leaf != LEAF_TEXT)
		return;
	if (p->lcte == MIME_HEADER_CTE_IDENTITY) {
		dec_put(p, (const uint8_t *)"\n", 1);
	} else if (p->lcte == MIME_HEADER_CTE_QP) {
		r = mime_decode_qp_eol(&p->qp, tmp, &p->dflags);
		dec_put(p, tmp, r);
	}
}

static void leaf_end(struct mime_parser *p)
{
	uint8_t tmp[8];
	size_t r = 0;

	if (p->leaf == LEAF_SKIP)
		return;
	if (p->lcte == MIME_HEADER_CTE_B64)
		r = mime_decode_b64_end(&p->b64, tmp, &p->dflags);
	else if (p->lcte == MIME_HEADER_CTE_QP)
		r = mime_decode_qp_end(&p->qp, tmp, &p->dflags);
	if (p->leaf == LEAF_TEXT) {
		dec_put(p, tmp, r);
		if (p->decn)
			text_stage(p, p->dec, p->decn);
		p->decn = 0;
		if (!p->text.capped)
			mime_charset_end(&p->conv, conv_out, p);
		if (p->lhtml)
			mime_html_end(&p->html);
		mime_uri_scan_end(&p->uris, uri_out, p);
		/* A part's text ends its line, so that the next part's text (one stream for the
		 * consumer) never runs on from it. */
		if (p->raw.last != '\n')
			out_put(p, &p->raw, (const uint8_t *)"\n", 1);
		if (p->text.last != '\n')
			out_put(p, &p->text, (const uint8_t *)"\n", 1);
		out_flush(p, &p->raw, true);
		out_flush(p, &p->text, true);
	}
	if (p->lcte == MIME_HEADER_CTE_B64) {
		if (p->dflags & MIME_DECODE_F_BAD)
			anomaly(p, MIME_ANOM_BAD_BASE64);
		if (p->dflags & MIME_DECODE_F_TRUNCATED)
			anomaly(p, MIME_ANOM_TRUNCATED_BASE64);
	} else if (p->lcte == MIME_HEADER_CTE_QP && (p->dflags & MIME_DECODE_F_BAD)) {
		anomaly(p, MIME_ANOM_BAD_QP);
	}
	p->leaf = LEAF_SKIP;
	if (p->sink.raw)
		p->sink.raw(p->sink.arg, MIME_RAW_PART_END, NULL, 0, false);
}

/* --- entities ---------------------------------------------------------------------------- */

static void new_entity(struct mime_parser *p, unsigned depth, bool digest_parent)
{
	if (++p->nparts > p->lim.max_parts) {
		anomaly(p, MIME_ANOM_PARTS_EXCEEDED);
		p->st = ST_DEAD;
		return;
	}
	p->st = ST_HDR;
	p->depth = depth;
	p->nheaders = 0;
	p->hfield = p->hcont = false;
	p->have_ct = p->have_cte = false;
	p->cte = MIME_HEADER_CTE_IDENTITY;
	p->digest_parent = digest_parent;
	mime_gbuf_clear(&p->hb);
}

/* The header block has ended: sets up the body by the entity's Content-Type. */
static void body_begin(struct mime_parser *p)
{
	struct mime_header_ctype *ct = &p->ct;

	if (!p->have_ct) {
		memset(ct, 0, offsetof(struct mime_header_ctype, boundary));
		ct->major = p->digest_parent ? MIME_HEADER_CT_MESSAGE : MIME_HEADER_CT_TEXT;
	}
	p->st = ST_BODY;
	p->eol_pending = false;
	p->lb_on = false;
	switch (ct->major) {
	case MIME_HEADER_CT_MULTIPART:
		if (!ct->has_boundary) {
			anomaly(p, MIME_ANOM_MISSING_BOUNDARY);
			leaf_begin(p, LEAF_TEXT, p->cte, ct->charset, ct->charset_len, false);
		} else if (p->depth + 1 > p->lim.max_depth || p->nmp >= p->lim.max_depth) {
			anomaly(p, MIME_ANOM_DEPTH_EXCEEDED);
			leaf_begin(p, LEAF_OPAQUE, p->cte, NULL, 0, false);
		} else {
			struct mime_mp *m = &p->mp[p->nmp++];

			m->blen = ct->boundary_len;
			m->depth = (uint16_t)p->depth;
			m->seen = false;
			m->digest = ct->digest;
			memcpy(m->boundary, ct->boundary, ct->boundary_len);
			/* the preamble, as text */
			leaf_begin(p, LEAF_TEXT, MIME_HEADER_CTE_IDENTITY, NULL, 0, false);
			p->rkind = MIME_RAW_PREAMBLE;
		}
		break;
	case MIME_HEADER_CT_MESSAGE:
		if (p->cte != MIME_HEADER_CTE_IDENTITY) {
			leaf_begin(p, LEAF_OPAQUE, p->cte, NULL, 0, false);
		} else if (p->depth + 1 > p->lim.max_depth) {
			anomaly(p, MIME_ANOM_DEPTH_EXCEEDED);
			leaf_begin(p, LEAF_OPAQUE, p->cte, NULL, 0, false);
		} else {
			new_entity(p, p->depth + 1, false);
		}
		break;
	case MIME_HEADER_CT_TEXT:
		leaf_begin(p, LEAF_TEXT, p->cte, ct->charset, ct->charset_len, ct->html);
		break;
	default:
		leaf_begin(p, LEAF_OPAQUE, p->cte, NULL, 0, false);
		break;
	}
}

/* Returns the index of the innermost open multipart whose delimiter line l is, or -1. */
static int boundary_match(const struct mime_parser *p, const uint8_t *l, size_t n, bool *close_r)
{
	if (n < 3 || l[0] != '-' || l[1] != '-')
		return -1;
	for (unsigned k = p->nmp; k-- > 0;) {
		const struct mime_mp *m = &p->mp[k];
		size_t i = 2 + (size_t)m->blen;
		bool close = false;

		if (n < i || memcmp(l + 2, m->boundary, m->blen) != 0)
			continue;
		if (i + 2 <= n && l[i] == '-' && l[i + 1] == '-') {
			close = true;
			i += 2;
		}
		while (i < n && (l[i] == ' ' || l[i] == '\t'))
			i++;
		if (i == n) {
			*close_r = close;
			return (int)k;
		}
	}
	return -1;
}

static void boundary_hit(struct mime_parser *p, unsigned k, bool close)
{
	if (p->st == ST_HDR) {
		/* the part's header block never ended */
		anomaly(p, MIME_ANOM_NO_HEADER_END);
		if (p->sink.headers_end)
			p->sink.headers_end(p->sink.arg, p->depth);
	} else {
		p->eol_pending = false;  /* it belongs to the delimiter */
		leaf_end(p);
	}
	if (p->sink.raw)
		p->sink.raw(p->sink.arg, close ? MIME_RAW_CLOSE : MIME_RAW_DELIM, NULL, 0, false);
	while (p->nmp > k + 1) {
		p->nmp--;
		anomaly(p, p->mp[p->nmp].seen ? MIME_ANOM_UNTERMINATED_MULTIPART
					      : MIME_ANOM_MISSING_BOUNDARY);
	}
	if (close) {
		/* the epilogue: skipped, but the outer boundaries are still looked for */
		p->nmp = k;
		p->st = ST_BODY;
		p->eol_pending = false;
		p->lb_on = false;
		p->leaf = LEAF_SKIP;
		p->rkind = MIME_RAW_EPILOGUE;
	} else {
		p->mp[k].seen = true;
		new_entity(p, p->mp[k].depth + 1u, p->mp[k].digest);
	}
}

/* --- header block ------------------------------------------------------------------------ */

static bool has_8bit(const uint8_t *s, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t w;

		memcpy(&w, s + i, 8);
		if (w & 0x8080808080808080ull)
			return true;
	}
	for (; i < n; i++)
		if (s[i] & 0x80)
			return true;
	return false;
}

static inline bool is_wsp(uint8_t c) { return c == ' ' || c == '\t'; }

/* "=?" anywhere (inline: memmem's set-up costs more than the search on short values) */
static bool has_ew_start(const char *s, size_t n)
{
	for (size_t i = 0; i + 1 < n; i++)
		if (s[i] == '=' && s[i + 1] == '?')
			return true;
	return false;
}

/* RFC 5322 §3.6.8 field-name (printable ASCII but ':'), then blanks (obsolete §4.5.8), ':'. */
static bool field_ok(const uint8_t *f, size_t n)
{
	size_t i = 0;

	while (i < n && f[i] > 32 && f[i] < 127 && f[i] != ':')
		i++;
	if (i == 0)
		return false;
	while (i < n && is_wsp(f[i]))
		i++;
	return i < n && f[i] == ':';
}

static void hdr_emit(struct mime_parser *p)
{
	const uint8_t *f = p->hb.p;
	size_t n = p->hb.len, ne, vs, ve;
	const uint8_t *colon = memchr(f, ':', n);
	struct slice name, raw, dec;

	p->hfield = false;
	if (p->hb.truncated)
		anomaly(p, MIME_ANOM_HEADER_TOO_LONG);
	if (colon == NULL) {  /* cannot happen: field_ok() passed it */
		mime_gbuf_clear(&p->hb);
		return;
	}
	ne = (size_t)(colon - f);
	while (ne > 0 && is_wsp(f[ne - 1]))
		ne--;
	vs = (size_t)(colon - f) + 1;
	ve = n;
	while (vs < ve && (is_wsp(f[vs]) || f[vs] == '\r'))
		vs++;
	while (ve > vs && (is_wsp(f[ve - 1]) || f[ve - 1] == '\r'))
		ve--;
	name = (struct slice){ (const char *)f, ne };
	raw = (struct slice){ (const char *)f + vs, ve - vs };
	bool eight = has_8bit(f + vs, ve - vs);

	if (eight || has_8bit(f, ne))
		anomaly(p, MIME_ANOM_8BIT_HEADER);
	if (++p->nheaders > p->lim.max_headers) {
		anomaly(p, MIME_ANOM_HEADERS_TOO_MANY);
		mime_gbuf_clear(&p->hb);
		return;
	}
	if (!p->have_ct && slice_eq_nocase(name, "content-type")) {
		p->have_ct = true;
		mime_header_ctype(raw.p, raw.len, &p->ct);
	} else if (!p->have_cte && slice_eq_nocase(name, "content-transfer-encoding")) {
		p->have_cte = true;
		p->cte = (uint8_t)mime_header_cte(raw.p, raw.len);
	}
	dec = raw;
	if (eight || has_ew_start(raw.p, raw.len)) {
		unsigned fl = mime_header_decode(&p->cs, raw.p, raw.len, &p->hdec, &p->htmp);

		if (fl & MIME_HEADER_F_BAD_EW)
			anomaly(p, MIME_ANOM_BAD_ENCODED_WORD);
		if (fl & MIME_HEADER_F_BAD_CHARSET)
			anomaly(p, MIME_ANOM_BAD_CHARSET);
		dec = (struct slice){ (const char *)p->hdec.p, p->hdec.len };
		if (dec.p == NULL)
			dec = (struct slice){ "", 0 };
	}
	if (p->sink.header)
		p->sink.header(p->sink.arg, p->depth, name, raw, dec);
	mime_gbuf_clear(&p->hb);
}

static void hdr_block_end(struct mime_parser *p, bool blank)
{
	if (!blank)
		anomaly(p, MIME_ANOM_NO_HEADER_END);
	if (p->sink.raw)
		p->sink.raw(p->sink.arg, MIME_RAW_HDR_END, NULL, 0, blank);
	if (p->sink.headers_end)
		p->sink.headers_end(p->sink.arg, p->depth);
	body_begin(p);
}

static void hdr_bytes(struct mime_parser *p, const uint8_t *d, size_t n)
{
	if (p->bol) {
		p->bol = false;
		p->hcont = false;
		if (p->hfield) {
			if (is_wsp(d[0]))
				p->hcont = true;  /* folded (RFC 5322 §2.2.3): CR LF dropped, WSP kept */
			else
				hdr_emit(p);
		}
	}
	mime_gbuf_put(&p->hb, d, n);
}

static void hdr_eol(struct mime_parser *p)
{
	bool close;
	int k;

	if (p->bol) {
		/* the empty line (RFC 5322 §2.1) */
		if (p->hfield)
			hdr_emit(p);
		p->first_line = false;
		hdr_block_end(p, true);
		return;
	}
	p->bol = true;
	if (p->hcont)
		return;
	/* the first line of a field is in hb */
	if (p->first_line) {
		p->first_line = false;
		if (p->hb.len >= 5 && memcmp(p->hb.p, "From ", 5) == 0) {
			mime_gbuf_clear(&p->hb);  /* an mbox separator line */
			return;
		}
	}
	if (p->nmp && (k = boundary_match(p, p->hb.p, p->hb.len, &close)) >= 0) {
		mime_gbuf_clear(&p->hb);
		boundary_hit(p, (unsigned)k, close);
		return;
	}
	if (!field_ok(p->hb.p, p->hb.len)) {
		/* not a field: the body has begun without the empty line; read the line again
		 * as body, unless the body is itself a header block (message/rfc822) */
		hdr_block_end(p, false);
		if (p->st == ST_BODY) {
			body_bytes(p, p->hb.p, p->hb.len);
			body_eol(p);
		}
		mime_gbuf_clear(&p->hb);
		return;
	}
	p->hfield = true;
}

/* --- body lines -------------------------------------------------------------------------- */

static void body_line_start(struct mime_parser *p)
{
	if (p->eol_pending) {
		p->eol_pending = false;
		leaf_eol(p);
	}
}

static void body_bytes(struct mime_parser *p, const uint8_t *d, size_t n)
{
	if (n == 0)
		return;
	if (p->bol) {
		p->bol = false;
		if (p->nmp && d[0] == '-') {
			p->lb_on = true;
			p->lbn = 0;
		} else {
			body_line_start(p);
		}
	}
	if (p->lb_on) {
		if (p->lbn + n <= LB_MAX) {
			memcpy(p->lb + p->lbn, d, n);
			p->lbn = (uint16_t)(p->lbn + n);
			return;
		}
		/* too long to be a delimiter */
		p->lb_on = false;
		body_line_start(p);
		leaf_bytes(p, p->lb, p->lbn);
	}
	leaf_bytes(p, d, n);
}

static void body_eol(struct mime_parser *p)
{
	if (p->bol) {
		body_line_start(p);
		p->eol_pending = true;
		return;
	}
	p->bol = true;
	if (p->lb_on) {
		bool close;
		int k;

		p->lb_on = false;
		k = boundary_match(p, p->lb, p->lbn, &close);
		if (k >= 0) {
			boundary_hit(p, (unsigned)k, close);
			return;
		}
		body_line_start(p);
		leaf_bytes(p, p->lb, p->lbn);
	}
	p->eol_pending = true;
}

/* --- lines ------------------------------------------------------------------------------- */

static void line_bytes(struct mime_parser *p, const uint8_t *d, size_t n)
{
	if (n == 0)
		return;
	if (p->st == ST_HDR)
		hdr_bytes(p, d, n);
	else if (p->st == ST_BODY)
		body_bytes(p, d, n);
}

static void line_eol(struct mime_parser *p)
{
	if (p->st == ST_HDR)
		hdr_eol(p);
	else if (p->st == ST_BODY)
		body_eol(p);
}

void mime_parser_feed(struct mime_parser *p, const uint8_t *d, size_t len)
{
	size_t i = 0;

	if (len == 0 || p->st >= ST_DEAD)
		return;
	p->fed = true;
	if (p->cr) {
		p->cr = false;
		if (d[0] == '\n') {
			line_eol(p);
			i = 1;
		} else {
			line_bytes(p, (const uint8_t *)"\r", 1);
		}
	}
	while (i < len && p->st < ST_DEAD) {
		const uint8_t *nl = memchr(d + i, '\n', len - i);
		size_t e;

		if (nl == NULL) {
			e = len;
			if (d[e - 1] == '\r') {
				p->cr = true;
				e--;
			}
			line_bytes(p, d + i, e - i);
			break;
		}
		e = (size_t)(nl - d);
		line_bytes(p, d + i, (e > i && d[e - 1] == '\r') ? e - 1 - i : e - i);
		line_eol(p);
		i = e + 1;
	}
}

void mime_parser_end(struct mime_parser *p)
{
	if (p->st == ST_ENDED)
		return;
	if (p->st == ST_DEAD) {
		p->st = ST_ENDED;
		return;
	}
	if (p->cr) {
		p->cr = false;
		line_bytes(p, (const uint8_t *)"\r", 1);
	}
	/* a last line without its line end still counts as a line */
	bool unterminated = !p->bol;

	if (unterminated)
		line_eol(p);
	if (p->st == ST_HDR) {
		if (p->hfield)
			hdr_emit(p);
		/* A message may end after its header fields (RFC 5322 §3.5 makes the body
		 * optional); a part may not (RFC 2046 §5.1.1). */
		if (p->fed && (p->depth > 0 || p->nmp > 0 || unterminated))
			anomaly(p, MIME_ANOM_NO_HEADER_END);
		if (p->fed && p->sink.headers_end)
			p->sink.headers_end(p->sink.arg, p->depth);
	} else if (p->st == ST_BODY) {
		body_line_start(p);
		leaf_end(p);
	}
	while (p->st != ST_DEAD && p->nmp > 0) {
		p->nmp--;
		anomaly(p, p->mp[p->nmp].seen ? MIME_ANOM_UNTERMINATED_MULTIPART
					      : MIME_ANOM_MISSING_BOUNDARY);
	}
	p->st = ST_ENDED;
}

/* --- life cycle -------------------------------------------------------------------------- */

void mime_parser_reset(struct mime_parser *p)
{
	p->cr = false;
	p->bol = true;
	p->fed = false;
	p->first_line = true;
	p->anom = 0;
	p->nparts = 0;
	p->nmp = 0;
	p->leaf = LEAF_SKIP;
	p->rkind = MIME_RAW_BODY;
	p->decn = 0;
	p->eol_pending = p->lb_on = false;
	p->raw.n = p->raw.total = 0;
	p->text.n = p->text.total = 0;
	p->raw.capped = p->text.capped = false;
	mime_gbuf_trim(&p->hb, HDR_KEEP);
	mime_gbuf_trim(&p->hdec, HDR_KEEP);
	mime_gbuf_trim(&p->htmp, HDR_KEEP);
	mime_charset_cache_message(&p->cs);
	new_entity(p, 0, false);
}

int mime_parser_new(struct mime_parser **p_r, const struct mime_sink *sink,
		    const struct mime_limits *lim)
{
	struct mime_parser *p;
	struct mime_limits l = {
		.max_depth = MIME_DEPTH_DEFAULT,
		.max_parts = MIME_PARTS_DEFAULT,
		.max_header_line = MIME_HEADER_LINE_DEFAULT,
		.max_headers = MIME_HEADERS_DEFAULT,
		.max_text_bytes = MIME_TEXT_BYTES_DEFAULT,
	};

	*p_r = NULL;
	if (lim != NULL) {
		if (lim->max_depth > 1000)
			return -EINVAL;
		if (lim->max_depth)
			l.max_depth = lim->max_depth;
		if (lim->max_parts)
			l.max_parts = lim->max_parts;
		if (lim->max_header_line)
			l.max_header_line = lim->max_header_line;
		if (lim->max_headers)
			l.max_headers = lim->max_headers;
		if (lim->max_text_bytes)
			l.max_text_bytes = lim->max_text_bytes;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->mp = calloc(l.max_depth, sizeof(*p->mp));
	if (p->mp == NULL) {
		free(p);
		return -ENOMEM;
	}
	if (sink != NULL)
		p->sink = *sink;
	p->lim = l;
	p->hb.max = l.max_header_line;
	/* decoded: at most 3 bytes of UTF-8 per raw byte (a 1252 byte or U+FFFD) */
	p->hdec.max = 3 * l.max_header_line + 16;
	p->htmp.max = l.max_header_line;
	mime_charset_cache_init(&p->cs);
	mime_parser_reset(p);
	*p_r = p;
	return 0;
}

void mime_parser_free(struct mime_parser **pp)
{
	struct mime_parser *p = *pp;

	if (p == NULL)
		return;
	mime_charset_cache_free(&p->cs);
	mime_gbuf_free(&p->hb);
	mime_gbuf_free(&p->hdec);
	mime_gbuf_free(&p->htmp);
	free(p->mp);
	free(p);
	*pp = NULL;
}
