/*
 * mime_uri.c - URI extraction from plain text (see mime_uri.h).
 *
 * Speed: every body byte passes here, so the scan jumps from one ':' or '.' to the next (SSE2,
 * 16 bytes a step) and looks only at the words around them, in place; only a word cut by the
 * end of a piece is copied.
 */
#include "mime_uri.h"

#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

enum { C_WORD = 0, C_DELIM = 1, C_TRIG = 2 };

static const uint8_t cls[256] = {
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
	['\x20'] = C_DELIM, ['"'] = C_DELIM, ['<'] = C_DELIM, ['>'] = C_DELIM, ['`'] = C_DELIM,
	[0x7f] = C_DELIM, [':'] = C_TRIG, ['.'] = C_TRIG,
};

static inline char lc(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c; }

static int starts_ci(const char *p, size_t n, const char *lit, size_t ln)
{
	if (n < ln)
		return 0;
	for (size_t i = 0; i < ln; i++)
		if (lc(p[i]) != lit[i])
			return 0;
	return 1;
}

static int is_alnum(char c)
{
	c = lc(c);
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Looks at one word (at most MIME_URI_MAX bytes) for a URI. */
static void word_check(const char *w, size_t n, mime_uri_fn *fn, void *arg)
{
	size_t i, start = n, body = 0;
	int www = 0;

	if (n < 5)
		return;
	for (i = 0; i + 4 <= n && start == n; i++) {
		switch (lc(w[i])) {
		case 'h':
			if (starts_ci(w + i, n - i, "http://", 7))
				start = i, body = 7;
			else if (starts_ci(w + i, n - i, "https://", 8))
				start = i, body = 8;
			break;
		case 'f':
			if (starts_ci(w + i, n - i, "ftp://", 6))
				start = i, body = 6;
			break;
		case 'm':
			if (starts_ci(w + i, n - i, "mailto:", 7))
				start = i, body = 7;
			break;
		case 'w':
			if ((i == 0 || !is_alnum(w[i - 1])) && starts_ci(w + i, n - i, "www.", 4))
				start = i, body = 4, www = 1;
			break;
		}
	}
	if (start == n)
		return;
	while (n > start + body && strchr(".,;:!?)]}'\"", w[n - 1]) != NULL)
		n--;
	if (n <= start + body + (size_t)www)
		return;  /* a scheme and nothing after it */
	if (www) {
		char u[MIME_URI_MAX + 8];

		memcpy(u, "http://", 7);
		memcpy(u + 7, w + start, n - start);
		fn(arg, u, n - start + 7);
		return;
	}
	fn(arg, w + start, n - start);
}

/* The next ':' or '.' at or after i, or n. */
static size_t find_trigger(const uint8_t *p, size_t i, size_t n)
{
#ifdef __SSE2__
	const __m128i colon = _mm_set1_epi8(':'), dot = _mm_set1_epi8('.');

	for (; i + 16 <= n; i += 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)(p + i));
		int m = _mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(v, colon),
						       _mm_cmpeq_epi8(v, dot)));

		if (m)
			return i + (size_t)__builtin_ctz((unsigned)m);
	}
#endif
	for (; i < n; i++)
		if (cls[p[i]] == C_TRIG)
			return i;
	return n;
}

/*
 * A word is a run of non-delimiters; what is looked at is its first MIME_URI_MAX bytes, and
 * only if a ':' or '.' is among them (every pattern has one). Triggers are found in bulk; the
 * word around each is found by scanning back (at most MIME_URI_MAX bytes, never before i, where
 * a word may start) and forward. A word cut by the end of the piece is kept in s->word (its
 * first MIME_URI_MAX bytes) and finished with the next piece.
 */
void mime_uri_scan_feed(struct mime_uri_scan *s, const uint8_t *p, size_t n, mime_uri_fn *fn,
			void *arg)
{
	size_t i = 0, b, e, t;

	if (s->len) {
		/* the word cut at the end of the last piece goes on */
		e = 0;
		while (e < n && cls[p[e]] != C_DELIM)
			e++;
		if (s->len < MIME_URI_MAX) {
			size_t k = e < MIME_URI_MAX - s->len ? e : MIME_URI_MAX - s->len;

			for (size_t j = 0; j < k; j++)
				s->trig |= cls[p[j]];
			memcpy(s->word + s->len, p, k);
			s->len += k;
		}
		if (e == n)
			return;
		if (s->trig)
			word_check(s->word, s->len, fn, arg);
		s->len = 0;
		s->trig = 0;
		i = e;
	}
	for (;;) {
		t = find_trigger(p, i, n);
		if (t == n)
			break;
		b = t;
		while (b > i && cls[p[b - 1]] != C_DELIM && t - b < MIME_URI_MAX)
			b--;
		e = t + 1;
		while (e < n && cls[p[e]] != C_DELIM)
			e++;
		if (b > i && cls[p[b - 1]] != C_DELIM) {
			/* the word began more than MIME_URI_MAX bytes before t: its kept part has
			 * no trigger (t is the first since i) */
			if (e == n) {
				s->len = MIME_URI_MAX;  /* full; nothing more to see in it */
				s->trig = 0;
				return;
			}
			i = e;
			continue;
		}
		if (e == n) {
			size_t k = n - b < MIME_URI_MAX ? n - b : MIME_URI_MAX;

			memcpy(s->word, p + b, k);
			s->len = k;
			s->trig = t - b < MIME_URI_MAX;
			return;
		}
		word_check((const char *)p + b, e - b < MIME_URI_MAX ? e - b : MIME_URI_MAX, fn, arg);
		i = e;
	}
	/* no trigger left: keep the start of a word cut by the end of the piece */
	if (n > i && cls[p[n - 1]] != C_DELIM) {
		b = n;
		while (b > i && cls[p[b - 1]] != C_DELIM && n - b < MIME_URI_MAX)
			b--;
		if (b > i && cls[p[b - 1]] != C_DELIM) {
			s->len = MIME_URI_MAX;
		} else {
			memcpy(s->word, p + b, n - b);
			s->len = n - b;
		}
		s->trig = 0;
	}
}

void mime_uri_scan_end(struct mime_uri_scan *s, mime_uri_fn *fn, void *arg)
{
	if (s->len && s->trig)
		word_check(s->word, s->len, fn, arg);
	s->len = 0;
	s->trig = 0;
}
