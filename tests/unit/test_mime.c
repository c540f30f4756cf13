/*
 * test_mime.c - dataplane/filter/mime*: the streaming MIME parser.
 *
 * Each table case is a message (written with "\n" line ends, sent as CR LF unless .lf) and the
 * transcript of callbacks it must produce. Every case runs whole, one byte at a time, and at
 * random splits, and the three transcripts must be identical. Every callback's data is checked
 * as it comes (body text is valid UTF-8 without CR, pieces are within MIME_TEXT_PIECE, ...).
 * The corpus case parses the 3,000 messages of /work/shared/corpus/sa-dev.tar.gz (skipped if
 * the tarball is missing) whole and split, and wants text from every message with a text part.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "filter/mime.h"
#include "filter/mime_charset.h"

/* --- transcript ------------------------------------------------------------------------- */

struct ts {
	char  *s;
	size_t n, cap;
	bool   raw;          /* record rawbody */
	size_t text_bytes;   /* body_text bytes seen */
	size_t raw_bytes;
	unsigned headers_open;  /* header callbacks since the last headers_end (for checks) */
};

static void ts_put(struct ts *t, const char *p, size_t n)
{
	if (t->n + n + 1 > t->cap) {
		while (t->n + n + 1 > t->cap)
			t->cap = t->cap ? t->cap * 2 : 4096;
		t->s = realloc(t->s, t->cap);
		assert_non_null(t->s);
	}
	memcpy(t->s + t->n, p, n);
	t->n += n;
	t->s[t->n] = 0;
}

static void ts_printf(struct ts *t, const char *fmt, ...)
{
	char b[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	ts_put(t, b, (size_t)n < sizeof(b) ? (size_t)n : sizeof(b) - 1);
}

static bool valid_utf8(const uint8_t *p, size_t n)
{
	size_t i = 0;

	while (i < n) {
		int l = mime_charset_utf8_len(p + i, n - i);

		if (l <= 0)
			return false;
		i += (size_t)l;
	}
	return true;
}

static void cb_header(void *arg, unsigned depth, struct slice name, struct slice raw,
		      struct slice dec)
{
	struct ts *t = arg;

	assert_true(name.len > 0);
	assert_null(memchr(name.p, ':', name.len));
	assert_null(memchr(raw.p, '\n', raw.len));
	assert_true(valid_utf8((const uint8_t *)dec.p, dec.len));
	ts_printf(t, "H%u ", depth);
	ts_put(t, name.p, name.len);
	ts_put(t, ": ", 2);
	ts_put(t, dec.p, dec.len);
	if (raw.len != dec.len || memcmp(raw.p, dec.p, raw.len) != 0) {
		ts_put(t, " <= ", 4);
		ts_put(t, raw.p, raw.len);
	}
	ts_put(t, "\n", 1);
}

static void cb_headers_end(void *arg, unsigned depth)
{
	ts_printf(arg, "E%u\n", depth);
}

static void cb_body_text(void *arg, const uint8_t *p, size_t n)
{
	struct ts *t = arg;

	assert_true(n > 0 && n <= MIME_TEXT_PIECE);
	assert_true(valid_utf8(p, n));
	assert_null(memchr(p, '\r', n));
	t->text_bytes += n;
	ts_put(t, "T[", 2);
	ts_put(t, (const char *)p, n);
	ts_put(t, "]\n", 2);
}

static void cb_rawbody(void *arg, const uint8_t *p, size_t n)
{
	struct ts *t = arg;

	assert_true(n > 0 && n <= MIME_TEXT_PIECE);
	assert_null(memchr(p, '\r', n));
	t->raw_bytes += n;
	if (t->raw) {
		ts_put(t, "R[", 2);
		ts_put(t, (const char *)p, n);
		ts_put(t, "]\n", 2);
	}
}

static void cb_uri(void *arg, struct slice u)
{
	struct ts *t = arg;

	assert_true(u.len > 0 && u.len <= MIME_URI_MAX + 7);
	ts_put(t, "U ", 2);
	ts_put(t, u.p, u.len);
	ts_put(t, "\n", 1);
}

static void cb_anomaly(void *arg, enum mime_anomaly a, const char *name)
{
	assert_true(a < MIME_ANOM_COUNT);
	assert_string_equal(name, mime_anomaly_name(a));
	ts_printf(arg, "A %s\n", name);
}

/* --- running a message -------------------------------------------------------------------- */

static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

enum split { SPLIT_WHOLE, SPLIT_BYTE, SPLIT_RANDOM };

/* Feeds msg to p (reset first) whole, a byte at a time or at random splits, then ends it. */
static void feed(struct mime_parser *p, const uint8_t *msg, size_t n, enum split how)
{
	size_t i = 0;

	mime_parser_reset(p);
	while (i < n) {
		size_t k = n - i;

		if (how == SPLIT_BYTE)
			k = 1;
		else if (how == SPLIT_RANDOM)
			k = 1 + (size_t)(rng() % (rng() % 4 == 0 ? 4096 : 64));
		if (k > n - i)
			k = n - i;
		mime_parser_feed(p, msg + i, k);
		i += k;
	}
	mime_parser_end(p);
}

/* Parses msg with p (reset first) and returns the transcript (caller frees). */
static char *run(struct mime_parser *p, struct ts *t, const uint8_t *msg, size_t n,
		 enum split how)
{
	t->n = 0;
	t->text_bytes = t->raw_bytes = 0;
	if (t->s)
		t->s[0] = 0;
	feed(p, msg, n, how);
	return strdup(t->s ? t->s : "");
}

static uint8_t *crlf(const char *in, size_t *n_r)
{
	size_t n = strlen(in), k = 0;
	uint8_t *o = malloc(2 * n + 1);

	assert_non_null(o);
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			o[k++] = '\r';
		o[k++] = (uint8_t)in[i];
	}
	*n_r = k;
	return o;
}

static struct mime_parser *new_parser(struct ts *t, const struct mime_limits *lim)
{
	static struct mime_sink sink = {
		.header = cb_header, .headers_end = cb_headers_end, .body_text = cb_body_text,
		.rawbody = cb_rawbody, .uri = cb_uri, .anomaly = cb_anomaly,
	};
	struct mime_parser *p = NULL;

	sink.arg = t;
	assert_int_equal(mime_parser_new(&p, &sink, lim), 0);
	assert_non_null(p);
	return p;
}

/* Runs msg whole, byte by byte and at 4 random splittings; all transcripts must agree.
 * Returns the whole one (caller frees). */
static char *run_all_ways(struct mime_parser *p, struct ts *t, const uint8_t *msg, size_t n,
			  const char *label)
{
	char *whole = run(p, t, msg, n, SPLIT_WHOLE);
	char *other;

	other = run(p, t, msg, n, SPLIT_BYTE);
	if (strcmp(whole, other) != 0)
		fail_msg("%s: byte-at-a-time differs:\n--- whole\n%s--- bytes\n%s", label, whole,
			 other);
	free(other);
	for (int r = 0; r < 4; r++) {
		other = run(p, t, msg, n, SPLIT_RANDOM);
		if (strcmp(whole, other) != 0)
			fail_msg("%s: random split differs:\n--- whole\n%s--- split\n%s", label,
				 whole, other);
		free(other);
	}
	return whole;
}

/* --- the table ---------------------------------------------------------------------------- */

struct mime_case {
	const char *label;
	const char *in;
	const char *want;
	bool        lf;        /* send as written (bare LF) instead of CR LF */
	bool        raw;       /* record rawbody */
	struct mime_limits lim;
};

static const struct mime_case mime_cases[] = {
	{
		.label = "plain",
		.in = "From: a@example.com\n"
			"Subject: hello\n"
			" world\n"
			"\n"
			"Line one\n"
			"Line two\n",
		.want = "H0 From: a@example.com\n"
			"H0 Subject: hello world\n"
			"E0\n"
			"T[Line one\n"
			"Line two\n"
			"]\n",
	},
	{
		.label = "rfc2047 words",
		.in = "Subject: =?UTF-8?B?Y2Fmw6k=?= =?ISO-8859-1?Q?na=EFve_caf=E9?=\n"
			"To: =?utf-8?q?a?= b =?utf-8?q?c?=\n"
			"X-Split: =?UTF-8?B?4oI=?=\n"
			" =?UTF-8?B?rA==?=\n"
			"X-Lang: =?utf-8*en?q?hi?=\n"
			"\n"
			"body\n",
		.want = "H0 Subject: caf\xc3\xa9na\xc3\xafve caf\xc3\xa9 <= =?UTF-8?B?Y2Fmw6k=?= =?ISO-8859-1?Q?na=EFve_caf=E9?=\n"
			"H0 To: a b c <= =?utf-8?q?a?= b =?utf-8?q?c?=\n"
			"H0 X-Split: \xe2\x82\xac <= =?UTF-8?B?4oI=?= =?UTF-8?B?rA==?=\n"
			"H0 X-Lang: hi <= =?utf-8*en?q?hi?=\n"
			"E0\n"
			"T[body\n"
			"]\n",
	},
	{
		.label = "bad encoded words",
		.in = "Subject: =?x-unknown-cs?q?caf=E9?= and =?utf-8?x?bad?= end\n"
			"\n"
			"x\n",
		.want = "A MIME_BAD_ENCODED_WORD\n"
			"A MIME_BAD_CHARSET\n"
			"H0 Subject: caf\xc3\xa9 and =?utf-8?x?bad?= end <= =?x-unknown-cs?q?caf=E9?= and =?utf-8?x?bad?= end\n"
			"E0\n"
			"T[x\n"
			"]\n",
	},
	{
		.label = "8bit header",
		.in = "Subject: caf\xc3\xa9 na\xefve\n"
			"\n"
			"x\n",
		.want = "A MIME_8BIT_HEADER\n"
			"H0 Subject: caf\xc3\xa9 na\xc3\xafve <= caf\xc3\xa9 na\xefve\n"
			"E0\n"
			"T[x\n"
			"]\n",
	},
	{
		.label = "alternative",
		.in = "Content-Type: multipart/alternative; boundary=\"b1\"\n"
			"\n"
			"preamble\n"
			"--b1\n"
			"Content-Type: text/plain; charset=us-ascii\n"
			"Content-Transfer-Encoding: quoted-printable\n"
			"\n"
			"Visit http://example.com/a=3Db, now.=\n"
			" Soft\n"
			"--b1\n"
			"Content-Type: text/html; charset=\"utf-8\"\n"
			"Content-Transfer-Encoding: base64\n"
			"\n"
			"PGh0bWw+PGhlYWQ+PHN0eWxlPnB7eH08L3N0eWxlPjxzY3JpcHQ+dmFyIGE9IjxwPiI7PC9zY3Jp\n"
			"cHQ+PHRpdGxlPlQ8L3RpdGxlPjwvaGVhZD48Ym9keT48cD5IZWxsbyZuYnNwOzxiPlc8L2I+b3Js\n"
			"ZCAmYW1wOyAmIzE2OTsgJiN4MjYzQTs8L3A+PGEgaHJlZj0iaHR0cDovL2UuY29tLz9hPTEmYW1w\n"
			"O2I9MiI+bGluazwvYT48aW1nIHNyYz0naHR0cDovL2ltZy5leGFtcGxlL2kuZ2lmJz48IS0tIGhp\n"
			"ZGRlbiAtLT48YnI+Q2FmJmVhY3V0ZTsgJmJvZ3VzOyBlbmQ8L2JvZHk+PC9odG1sPg==\n"
			"--b1--\n"
			"epilogue\n",
		.want = "H0 Content-Type: multipart/alternative; boundary=\"b1\"\n"
			"E0\n"
			"T[preamble\n"
			"]\n"
			"H1 Content-Type: text/plain; charset=us-ascii\n"
			"H1 Content-Transfer-Encoding: quoted-printable\n"
			"E1\n"
			"U http://example.com/a=b\n"
			"T[Visit http://example.com/a=b, now. Soft\n"
			"]\n"
			"H1 Content-Type: text/html; charset=\"utf-8\"\n"
			"H1 Content-Transfer-Encoding: base64\n"
			"E1\n"
			"U http://e.com/?a=1&b=2\n"
			"U http://img.example/i.gif\n"
			"T[\n"
			"\n"
			"T\n"
			"\n"
			"\n"
			"\n"
			"Hello World & \xc2\xa9 \xe2\x98\xba\n"
			"\n"
			"link\n"
			"Caf\xc3\xa9 &bogus; end\n"
			"]\n",
	},
	{
		.label = "nested",
		.in = "Content-Type: multipart/mixed; boundary=outer\n"
			"\n"
			"--outer\n"
			"Content-Type: multipart/alternative; boundary=\"inner\"\n"
			"\n"
			"--inner\n"
			"Content-Type: text/plain\n"
			"\n"
			"inner text\n"
			"--inner--\n"
			"--outer\n"
			"Content-Type: image/gif\n"
			"Content-Transfer-Encoding: base64\n"
			"\n"
			"R0lGODlhAQABAIAAAP///wAAACwAAAAAAQABAAACAkQBADs=\n"
			"--outer\n"
			"Content-Type: message/rfc822\n"
			"\n"
			"Subject: inside\n"
			"Content-Type: text/plain; charset=koi8-r\n"
			"\n"
			"\xf0\xd2\xc9\xd7\xc5\xd4\n"
			"--outer--\n",
		.want = "H0 Content-Type: multipart/mixed; boundary=outer\n"
			"E0\n"
			"H1 Content-Type: multipart/alternative; boundary=\"inner\"\n"
			"E1\n"
			"H2 Content-Type: text/plain\n"
			"E2\n"
			"T[inner text\n"
			"]\n"
			"H1 Content-Type: image/gif\n"
			"H1 Content-Transfer-Encoding: base64\n"
			"E1\n"
			"H1 Content-Type: message/rfc822\n"
			"E1\n"
			"H2 Subject: inside\n"
			"H2 Content-Type: text/plain; charset=koi8-r\n"
			"E2\n"
			"T[\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82\n"
			"]\n",
	},
	{
		.label = "boundary never seen",
		.in = "Content-Type: multipart/mixed; boundary=\"zzz\"\n"
			"\n"
			"Buy now at www.example.net!\n"
			"--other\n"
			"text\n",
		.want = "H0 Content-Type: multipart/mixed; boundary=\"zzz\"\n"
			"E0\n"
			"U http://www.example.net\n"
			"T[Buy now at www.example.net!\n"
			"--other\n"
			"text\n"
			"]\n"
			"A MIME_MISSING_BOUNDARY\n",
	},
	{
		.label = "multipart without boundary",
		.in = "Content-Type: multipart/mixed\n"
			"\n"
			"hello\n",
		.want = "H0 Content-Type: multipart/mixed\n"
			"E0\n"
			"A MIME_MISSING_BOUNDARY\n"
			"T[hello\n"
			"]\n",
	},
	{
		.label = "unterminated multipart",
		.in = "Content-Type: multipart/mixed; boundary=b\n"
			"\n"
			"--b\n"
			"\n"
			"part one\n",
		.want = "H0 Content-Type: multipart/mixed; boundary=b\n"
			"E0\n"
			"E1\n"
			"T[part one\n"
			"]\n"
			"A MIME_UNTERMINATED_MULTIPART\n",
	},
	{
		.label = "rfc2231 boundary and charset",
		.in = "Content-Type: multipart/mixed;\n"
			" boundary*1=\"def\";\n"
			" boundary*0=\"abc\"\n"
			"\n"
			"--abcdef\n"
			"Content-Type: text/plain; charset*=us-ascii'en'utf%2D8\n"
			"\n"
			"x\xc3\xa9\n"
			"--abcdef--\n",
		.want = "H0 Content-Type: multipart/mixed; boundary*1=\"def\"; boundary*0=\"abc\"\n"
			"E0\n"
			"H1 Content-Type: text/plain; charset*=us-ascii'en'utf%2D8\n"
			"E1\n"
			"T[x\xc3\xa9\n"
			"]\n",
	},
	{
		.label = "unquoted boundary, blanks after delimiters",
		.in = "Content-Type: multipart/mixed; boundary=simple\n"
			"\n"
			"--simple   \n"
			"Content-Type: text/plain\n"
			"\n"
			"a\n"
			"--simple--  \n"
			"after\n",
		.want = "H0 Content-Type: multipart/mixed; boundary=simple\n"
			"E0\n"
			"H1 Content-Type: text/plain\n"
			"E1\n"
			"T[a\n"
			"]\n",
	},
	{
		.label = "bad and truncated base64",
		.in = "Content-Type: text/plain\n"
			"Content-Transfer-Encoding: base64\n"
			"\n"
			"aGVs*bG8g\n"
			"d29y!bGQ\n",
		.want = "H0 Content-Type: text/plain\n"
			"H0 Content-Transfer-Encoding: base64\n"
			"E0\n"
			"T[hello world\n"
			"]\n"
			"A MIME_BAD_BASE64\n"
			"A MIME_TRUNCATED_BASE64\n",
	},
	{
		.label = "bad quoted-printable",
		.in = "Content-Transfer-Encoding: quoted-printable\n"
			"\n"
			"a=ZZb =4 =41=\n",
		.want = "H0 Content-Transfer-Encoding: quoted-printable\n"
			"E0\n"
			"T[a=ZZb =4 A\n"
			"]\n"
			"A MIME_BAD_QP\n",
	},
	{
		.label = "charsets",
		.in = "Content-Type: multipart/mixed; boundary=c\n"
			"\n"
			"--c\n"
			"Content-Type: text/plain; charset=windows-1251\n"
			"\n"
			"\xcf\xf0\xe8\xe2\xe5\xf2\n"
			"--c\n"
			"Content-Type: text/plain; charset=x-no-such\n"
			"\n"
			"caf\xe9\n"
			"--c\n"
			"Content-Type: text/plain; charset=utf-8\n"
			"\n"
			"ok \xe9t\xc3\xa9\n"
			"--c\n"
			"Content-Type: text/plain; charset=utf-16le\n"
			"Content-Transfer-Encoding: base64\n"
			"\n"
			"aABpAA==\n"
			"--c--\n",
		.want = "H0 Content-Type: multipart/mixed; boundary=c\n"
			"E0\n"
			"H1 Content-Type: text/plain; charset=windows-1251\n"
			"E1\n"
			"T[\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82\n"
			"]\n"
			"H1 Content-Type: text/plain; charset=x-no-such\n"
			"E1\n"
			"A MIME_BAD_CHARSET\n"
			"T[caf\xc3\xa9\n"
			"]\n"
			"H1 Content-Type: text/plain; charset=utf-8\n"
			"E1\n"
			"T[ok \xc3\xa9t\xc3\xa9\n"
			"]\n"
			"H1 Content-Type: text/plain; charset=utf-16le\n"
			"H1 Content-Transfer-Encoding: base64\n"
			"E1\n"
			"T[hi\n"
			"]\n",
	},
	{
		.label = "no header end",
		.in = "Subject: x\n"
			"this is body text\n"
			"more\n",
		.want = "H0 Subject: x\n"
			"A MIME_NO_HEADER_END\n"
			"E0\n"
			"T[this is body text\n"
			"more\n"
			"]\n",
	},
	{
		.label = "bare LF and CR",
		.in = "Subject: lf\n"
			"\n"
			"line1\n"
			"line2\r\n"
			"line3\rline4\n",
		.want = "H0 Subject: lf\n"
			"E0\n"
			"T[line1\n"
			"line2\n"
			"line3\n"
			"line4\n"
			"]\n",
		.lf = true,
	},
	{
		.label = "html entities, comments, script",
		.in = "Content-Type: text/html\n"
			"\n"
			"<p>A&#65;&#x42;&#150;&lt;tag&gt; &unknown; &amp</p><div>x<!-- <p>no</p> -->y</div>\n"
			"<SCRIPT type=\"text/javascript\">document.write(\"<b>hidden</b>\")</SCRIPT>\n"
			"<pre>  two   spaces </pre>\n",
		.want = "H0 Content-Type: text/html\n"
			"E0\n"
			"T[\n"
			"\n"
			"AAB\xe2\x80\x93<tag> &unknown; &\n"
			"\n"
			"\n"
			"xy\n"
			"\n"
			"\n"
			"two spaces\n"
			"\n"
			"]\n",
	},
	{
		.label = "text uris",
		.in = "Subject: u\n"
			"\n"
			"See (http://a.example/x?y=1). Mail mailto:me@example.org, or WWW.Example.COM/path;\n"
			"ftp://files.example/f and https://secure.example, http:// alone, xwww.no.\n",
		.want = "H0 Subject: u\n"
			"E0\n"
			"U http://a.example/x?y=1\n"
			"U mailto:me@example.org\n"
			"U http://WWW.Example.COM/path\n"
			"U ftp://files.example/f\n"
			"U https://secure.example\n"
			"T[See (http://a.example/x?y=1). Mail mailto:me@example.org, or WWW.Example.COM/path;\n"
			"ftp://files.example/f and https://secure.example, http:// alone, xwww.no.\n"
			"]\n",
	},
	{
		.label = "depth limit",
		.in = "Content-Type: multipart/mixed; boundary=a\n"
			"\n"
			"--a\n"
			"Content-Type: multipart/mixed; boundary=b\n"
			"\n"
			"--b\n"
			"Content-Type: multipart/mixed; boundary=c\n"
			"\n"
			"--c\n"
			"Content-Type: text/plain\n"
			"\n"
			"deep\n"
			"--c--\n"
			"--b--\n"
			"--a--\n",
		.want = "H0 Content-Type: multipart/mixed; boundary=a\n"
			"E0\n"
			"H1 Content-Type: multipart/mixed; boundary=b\n"
			"E1\n"
			"H2 Content-Type: multipart/mixed; boundary=c\n"
			"E2\n"
			"A MIME_DEPTH_EXCEEDED\n",
		.lim = { .max_depth = 2 },
	},
	{
		.label = "parts limit",
		.in = "Content-Type: multipart/mixed; boundary=p\n"
			"\n"
			"--p\n"
			"\n"
			"one\n"
			"--p\n"
			"\n"
			"two\n"
			"--p\n"
			"\n"
			"three\n"
			"--p--\n",
		.want = "H0 Content-Type: multipart/mixed; boundary=p\n"
			"E0\n"
			"E1\n"
			"T[one\n"
			"]\n"
			"E1\n"
			"T[two\n"
			"]\n"
			"A MIME_PARTS_EXCEEDED\n",
		.lim = { .max_parts = 3 },
	},
	{
		.label = "header limits",
		.in = "Subject: 0123456789abcdef\n"
			"A: 1\n"
			"B: 2\n"
			"C: 3\n"
			"\n"
			"x\n",
		.want = "A MIME_HEADER_TOO_LONG\n"
			"H0 Subject: 0123456\n"
			"H0 A: 1\n"
			"A MIME_HEADERS_TOO_MANY\n"
			"E0\n"
			"T[x\n"
			"]\n",
		.lim = { .max_header_line = 16, .max_headers = 2 },
	},
	{
		.label = "text cap",
		.in = "Content-Type: text/plain; charset=utf-8\n"
			"\n"
			"aaaaaaaaa\xc3\xa9 bbbbbbbbbbbb\n",
		.want = "H0 Content-Type: text/plain; charset=utf-8\n"
			"E0\n"
			"R[aaaaaaaaa]\n"
			"T[aaaaaaaaa]\n",
		.raw = true,
		.lim = { .max_text_bytes = 10 },
	},
	{
		.label = "digest",
		.in = "Content-Type: multipart/digest; boundary=d\n"
			"\n"
			"--d\n"
			"\n"
			"Subject: first\n"
			"\n"
			"one\n"
			"--d--\n",
		.want = "H0 Content-Type: multipart/digest; boundary=d\n"
			"E0\n"
			"E1\n"
			"H2 Subject: first\n"
			"E2\n"
			"T[one\n"
			"]\n",
	},
	{
		.label = "last line without CRLF",
		.in = "Subject: x\n"
			"\n"
			"last line",
		.want = "H0 Subject: x\n"
			"E0\n"
			"T[last line\n"
			"]\n",
		.lf = true,
	},
	{
		.label = "headers only",
		.in = "Subject: only\n",
		.want = "H0 Subject: only\n"
			"E0\n",
	},
	{
		.label = "header without line end",
		.in = "Subject: only",
		.want = "H0 Subject: only\n"
			"A MIME_NO_HEADER_END\n"
			"E0\n",
		.lf = true,
	},
	{
		.label = "empty message",
		.in = "",
		.want = "",
	},
	{
		.label = "mbox From line",
		.in = "From someone Mon Jan  1 00:00:00 2024\n"
			"Subject: s\n"
			"\n"
			"b\n",
		.want = "H0 Subject: s\n"
			"E0\n"
			"T[b\n"
			"]\n",
		.lf = true,
	},
	{
		.label = "delimiter inside part headers",
		.in = "Content-Type: multipart/mixed; boundary=q\n"
			"\n"
			"--q\n"
			"Content-Type: text/plain\n"
			"--q\n"
			"Content-Type: text/plain\n"
			"\n"
			"ok\n"
			"--q--\n",
		.want = "H0 Content-Type: multipart/mixed; boundary=q\n"
			"E0\n"
			"H1 Content-Type: text/plain\n"
			"A MIME_NO_HEADER_END\n"
			"E1\n"
			"H1 Content-Type: text/plain\n"
			"E1\n"
			"T[ok\n"
			"]\n",
	},
	{
		.label = "rawbody of html",
		.in = "Content-Type: text/html; charset=iso-8859-1\n"
			"Content-Transfer-Encoding: quoted-printable\n"
			"\n"
			"<b>caf=E9</b>=\n"
			"<br>\n",
		.want = "H0 Content-Type: text/html; charset=iso-8859-1\n"
			"H0 Content-Transfer-Encoding: quoted-printable\n"
			"E0\n"
			"R[<b>caf\xe9</b><br>\n"
			"]\n"
			"T[caf\xc3\xa9\n"
			"]\n",
		.raw = true,
	},
	{
		.label = "windows-1252 default for 8-bit text",
		.in = "Subject: s\n"
			"\n"
			"\x93quoted\x94 \x80 5\n",
		.want = "H0 Subject: s\n"
			"E0\n"
			"T[\xe2\x80\x9cquoted\xe2\x80\x9d \xe2\x82\xac 5\n"
			"]\n",
	},
	{
		.label = "message/rfc822 with bad base64 encoding is opaque",
		.in = "Content-Type: message/rfc822\n"
			"Content-Transfer-Encoding: base64\n"
			"\n"
			"U3ViamVjdDogeA==\n",
		.want = "H0 Content-Type: message/rfc822\n"
			"H0 Content-Transfer-Encoding: base64\n"
			"E0\n",
	},
	{
		.label = "close delimiter inside nested part closes it",
		.in = "Content-Type: multipart/mixed; boundary=o\n"
			"\n"
			"--o\n"
			"Content-Type: multipart/mixed; boundary=i\n"
			"\n"
			"--i\n"
			"\n"
			"x\n"
			"--o\n"
			"\n"
			"y\n"
			"--o--\n",
		.want = "H0 Content-Type: multipart/mixed; boundary=o\n"
			"E0\n"
			"H1 Content-Type: multipart/mixed; boundary=i\n"
			"E1\n"
			"E2\n"
			"T[x\n"
			"]\n"
			"A MIME_UNTERMINATED_MULTIPART\n"
			"E1\n"
			"T[y\n"
			"]\n",
	},
	{
		.label = "html attribute uris",
		.in = "Content-Type: text/html\n"
			"\n"
			"<form action=http://f.example/post method=post><body background=\"  http://bg.example/b.png  \"><a href='jav&#x61;script:x'>j</a><a HREF=\n"
			"\"http://split.example/&lt;x&gt;\">s</a><a href=\"\">e</a><a title=\"http://not.example\">t</a>\n",
		.want = "H0 Content-Type: text/html\n"
			"E0\n"
			"U http://f.example/post\n"
			"U http://bg.example/b.png\n"
			"U javascript:x\n"
			"U http://split.example/<x>\n"
			"T[jset \n"
			"]\n",
	},
	{
		.label = "stateful charset in a header",
		.in = "Subject: =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=\n"
			"\n"
			"x\n",
		.want = "H0 Subject: \xe3\x83\x86\xe3\x82\xb9\xe3\x83\x88 <= =?ISO-2022-JP?B?GyRCJUYlOSVIGyhC?=\n"
			"E0\n"
			"T[x\n"
			"]\n",
	},
	{
		.label = "quoted-printable html",
		.in = "Content-Type: text/html\n"
			"Content-Transfer-Encoding: quoted-printable\n"
			"\n"
			"<a href=3D\"http://q.example/?a=3D1\">Click =\n"
			"here</a>=0D=0A<p>x\n",
		.want = "H0 Content-Type: text/html\n"
			"H0 Content-Transfer-Encoding: quoted-printable\n"
			"E0\n"
			"U http://q.example/?a=1\n"
			"T[Click here\n"
			"\n"
			"x \n"
			"]\n",
	},
};

static void test_mime_table(void **state)
{
	(void)state;
	rng_state = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < sizeof(mime_cases) / sizeof(mime_cases[0]); i++) {
		const struct mime_case *c = &mime_cases[i];
		struct ts t = { .raw = c->raw };
		struct mime_parser *p = new_parser(&t, &c->lim);
		uint8_t *msg;
		size_t n;
		char *got;

		if (c->lf) {
			n = strlen(c->in);
			msg = malloc(n + 1);
			memcpy(msg, c->in, n + 1);
		} else {
			msg = crlf(c->in, &n);
		}
		got = run_all_ways(p, &t, msg, n, c->label);
		if (strcmp(got, c->want) != 0)
			fail_msg("case '%s':\n--- want\n%s--- got\n%s", c->label, c->want, got);
		free(got);
		free(msg);
		free(t.s);
		mime_parser_free(&p);
		assert_null(p);
	}
}

/* --- large and hostile inputs ------------------------------------------------------------- */

static char *b64enc(const uint8_t *in, size_t n)
{
	static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *o = malloc(n * 2 + 16), *q = o;
	size_t col = 0;

	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) |
			     (i + 2 < n ? in[i + 2] : 0);

		*q++ = a[v >> 18 & 63];
		*q++ = a[v >> 12 & 63];
		*q++ = i + 1 < n ? a[v >> 6 & 63] : '=';
		*q++ = i + 2 < n ? a[v & 63] : '=';
		if ((col += 4) == 76) {
			*q++ = '\n';
			col = 0;
		}
	}
	*q++ = '\n';
	*q = 0;
	return o;
}

/* Multi-byte text far longer than one piece: the text comes out exactly, in pieces that never
 * split a character (checked in cb_body_text), the same for every split. */
static void test_mime_long_text(void **state)
{
	static const char *const units[] = { "a", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", " ", "\n" };
	struct ts t = { 0 };
	struct mime_parser *p = new_parser(&t, NULL);
	size_t n = 0, mn;
	uint8_t *text = malloc(60000), *msg;
	char *b64, *src, *got, *want;

	(void)state;
	rng_state = 12345;
	while (n < 50000) {
		const char *u = units[rng() % 6];

		memcpy(text + n, u, strlen(u));
		n += strlen(u);
	}
	text[n++] = '\n';  /* else the parser ends the part's line itself */
	b64 = b64enc(text, n);
	src = malloc(strlen(b64) + 200);
	sprintf(src, "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n%s", b64);
	msg = crlf(src, &mn);
	got = run_all_ways(p, &t, msg, mn, "long text");
	/* the transcript is the text, in pieces */
	want = malloc(n + 1);
	size_t w = 0;

	for (char *q = strstr(got, "T["); q != NULL; q = strstr(q, "]\nT[")) {
		char *e;

		q += q[0] == 'T' ? 2 : 4;
		e = strstr(q, "]\nT[");
		if (e == NULL)
			e = got + strlen(got) - 2;
		memcpy(want + w, q, (size_t)(e - q));
		w += (size_t)(e - q);
		q = e;
		if (*e != ']' || e[2] != 'T')
			break;
	}
	assert_int_equal(w, n);
	assert_memory_equal(want, text, n);
	assert_int_equal(t.text_bytes, n);
	free(got);
	free(want);
	free(msg);
	free(src);
	free(b64);
	free(text);
	free(t.s);
	mime_parser_free(&p);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Hostile shapes of about 2 MB each: each must parse (whole and split), and in time linear in
 * its size: 2 MB in well under a second even on a loaded machine. */
static void test_mime_hostile(void **state)
{
	struct ts t = { 0 };
	struct mime_parser *p = new_parser(&t, NULL);
	size_t cap = 2u << 20, n;
	uint8_t *m = malloc(cap + 4096);
	int shape;

	(void)state;
	for (shape = 0; shape < 7; shape++) {
		const char *label = "";
		double t0;
		char *got;

		n = 0;
		switch (shape) {
		case 0:  /* a nesting bomb */
			label = "nesting bomb";
			while (n < cap)
				n += (size_t)sprintf((char *)m + n, "Content-Type: multipart/mixed; boundary=\"b%zu\"\r\n\r\n--b%zu\r\n", n, n);
			break;
		case 1:  /* 16 open multiparts with long, nearly matching boundaries, and lines of dashes */
			label = "near-miss delimiters";
			for (int d = 0; d < 16; d++)
				n += (size_t)sprintf((char *)m + n, "Content-Type: multipart/mixed; boundary=\"%0190d\"\r\n\r\n--%0190d\r\n", d, d);
			while (n < cap) {
				n += (size_t)sprintf((char *)m + n, "--%0189d\r\n", 7);
				memset(m + n, '-', 300);
				n += 300;
				m[n++] = '\r';
				m[n++] = '\n';
			}
			break;
		case 2:  /* binary garbage */
			label = "binary garbage";
			rng_state = 777;
			while (n < cap)
				m[n++] = (uint8_t)rng();
			break;
		case 3:  /* one huge header line */
			label = "huge header";
			n = (size_t)sprintf((char *)m, "Subject: ");
			memset(m + n, 'x', cap);
			n += cap;
			break;
		case 4:  /* millions of tiny headers */
			label = "many headers";
			while (n < cap)
				n += (size_t)sprintf((char *)m + n, "X: =?utf-8?q?=C3=A9?= =?x?b?=\r\n");
			break;
		case 5:  /* a parts bomb */
			label = "parts bomb";
			n = (size_t)sprintf((char *)m, "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
			while (n < cap)
				n += (size_t)sprintf((char *)m + n, "--p\r\n\r\n<a href=x>\r\n");
			break;
		case 6:  /* HTML that never closes its tags, comments and attribute quotes */
			label = "html tar pit";
			n = (size_t)sprintf((char *)m, "Content-Type: text/html\r\n\r\n");
			while (n < cap)
				n += (size_t)sprintf((char *)m + n, "<a href=\"&#x41;&amp <!-- <script> &#99999999999;\r\n");
			break;
		}
		t0 = now_s();
		got = run(p, &t, m, n, SPLIT_WHOLE);
		double dt = now_s() - t0;
		char *split = run(p, &t, m, n, SPLIT_RANDOM);

		if (strcmp(got, split) != 0)
			fail_msg("%s: split transcript differs", label);
		if (dt > 2.0)
			fail_msg("%s: %.2f s for %zu bytes", label, dt, n);
		print_message("%-22s %zu bytes: %.0f MB/s\n", label, n, (double)n / dt / 1e6);
		if (shape == 0)
			assert_non_null(strstr(got, "A MIME_DEPTH_EXCEEDED"));
		if (shape == 3)
			assert_non_null(strstr(got, "A MIME_HEADER_TOO_LONG"));
		if (shape == 4)
			assert_non_null(strstr(got, "A MIME_HEADERS_TOO_MANY"));
		if (shape == 5)
			assert_non_null(strstr(got, "A MIME_PARTS_EXCEEDED"));
		free(got);
		free(split);
	}
	free(m);
	free(t.s);
	mime_parser_free(&p);
}

/* One parser, many messages: reset forgets everything of the last one, even mid-message. */
static void test_mime_reuse(void **state)
{
	struct ts t = { 0 };
	struct mime_parser *p = new_parser(&t, NULL);
	static const char a[] = "Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/html; charset=koi8-r\r\n\r\n<p>\xf0\xd2";
	static const char b[] = "Subject: again\r\n\r\nplain\r\n";
	char *first, *second;

	(void)state;
	first = run(p, &t, (const uint8_t *)b, sizeof(b) - 1, SPLIT_WHOLE);
	mime_parser_reset(p);
	mime_parser_feed(p, (const uint8_t *)a, sizeof(a) - 1);  /* abandoned, no end */
	second = run(p, &t, (const uint8_t *)b, sizeof(b) - 1, SPLIT_WHOLE);
	assert_string_equal(first, "H0 Subject: again\nE0\nT[plain\n]\n");
	assert_string_equal(first, second);
	/* feeding after end is ignored */
	mime_parser_feed(p, (const uint8_t *)"more", 4);
	mime_parser_end(p);
	assert_string_equal(t.s, first);
	free(first);
	free(second);
	free(t.s);
	mime_parser_free(&p);
	mime_parser_free(&p);  /* NULL is fine */

	struct mime_limits bad = { .max_depth = 100000 };

	assert_int_equal(mime_parser_new(&p, NULL, &bad), -EINVAL);
	assert_null(p);
	assert_string_equal(mime_anomaly_name(MIME_ANOM_BAD_QP), "MIME_BAD_QP");
	assert_string_equal(mime_anomaly_name(MIME_ANOM_COUNT), "MIME_UNKNOWN");
}

/* --- the corpus ---------------------------------------------------------------------------- */

static uint8_t *load_eml(const char *path, size_t *n_r)
{
	FILE *f = fopen(path, "rb");
	uint8_t *b, *o;
	long n, i = 0;
	size_t k = 0;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	b = malloc((size_t)n + 1);
	o = malloc(2 * (size_t)n + 2);
	if (fread(b, 1, (size_t)n, f) != (size_t)n)
		n = 0;
	fclose(f);
	if (n > 5 && memcmp(b, "From ", 5) == 0)  /* the mbox separator is no part of it */
		while (i < n && b[i++] != '\n')
			;
	for (; i < n; i++) {  /* stored as LF; the spool holds CR LF */
		if (b[i] == '\n' && (k == 0 || o[k - 1] != '\r'))
			o[k++] = '\r';
		o[k++] = b[i];
	}
	free(b);
	*n_r = k;
	return o;
}

/* Whether the message has a text part, judged apart from the parser: no Content-Type at the
 * top (text/plain by default), a top-level text/ type, or a text/ part header line anywhere. */
static bool has_text_part(const uint8_t *m, size_t n)
{
	const char *s = (const char *)m;
	const char *end = memmem(s, n, "\r\n\r\n", 4);
	size_t hn = end ? (size_t)(end - s) : n;
	const char *ct = NULL;

	for (size_t i = 0; i + 13 < hn; i++)
		if ((i == 0 || s[i - 1] == '\n') && strncasecmp(s + i, "content-type:", 13) == 0) {
			ct = s + i + 13;
			break;
		}
	if (ct == NULL)
		return true;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, "text/", 5) == 0)
		return true;
	for (size_t i = 0; i + 19 < n; i++)
		if (s[i] == '\n' && strncasecmp(s + i + 1, "content-type: text/", 19) == 0)
			return true;
	return false;
}

static void test_mime_corpus(void **state)
{
	const char *root = getenv("SLUICE_SOURCE_ROOT");
	char tarball[512], dir[] = "/tmp/test_mime_corpus.XXXXXX", cmd[1200], line[1024];
	struct ts t = { 0 };
	struct mime_parser *p;
	FILE *man;
	unsigned nmsg = 0, ntext = 0;

	(void)state;
	snprintf(tarball, sizeof(tarball), "%s/../shared/corpus/sa-dev.tar.gz", root ? root : "/work/main");
	if (access(tarball, R_OK) != 0)
		snprintf(tarball, sizeof(tarball), "/work/shared/corpus/sa-dev.tar.gz");
	if (access(tarball, R_OK) != 0) {
		print_message("corpus %s missing: skipped\n", tarball);
		skip();
	}
	assert_non_null(mkdtemp(dir));
	snprintf(cmd, sizeof(cmd), "tar -xzf '%s' -C '%s'", tarball, dir);
	assert_int_equal(system(cmd), 0);
	snprintf(cmd, sizeof(cmd), "%s/MANIFEST.tsv", dir);
	man = fopen(cmd, "r");
	assert_non_null(man);
	p = new_parser(&t, NULL);
	rng_state = 424242;
	while (fgets(line, sizeof(line), man)) {
		char *tab1 = strchr(line, '\t'), *tab2, path[1200];
		uint8_t *m;
		size_t n = 0;
		char *whole, *split;

		if (tab1 == NULL || strncmp(line, "label", 5) == 0)
			continue;
		tab2 = strchr(tab1 + 1, '\t');
		if (tab2 == NULL)
			continue;
		*tab2 = 0;
		snprintf(path, sizeof(path), "%s/%s", dir, tab1 + 1);
		m = load_eml(path, &n);
		assert_non_null(m);
		whole = run(p, &t, m, n, SPLIT_WHOLE);
		size_t text = t.text_bytes, raw = t.raw_bytes;

		split = run(p, &t, m, n, SPLIT_RANDOM);
		if (strcmp(whole, split) != 0)
			fail_msg("%s: split transcript differs", path);
		if (has_text_part(m, n)) {
			ntext++;
			/* HTML of images only renders to nothing; its source is still rawbody */
			if (text == 0 && !(raw > 0 && memmem(m, n, "text/html", 9) != NULL))
				fail_msg("%s: has a text part but no text came out:\n%s", path, whole);
		}
		nmsg++;
		free(whole);
		free(split);
		free(m);
	}
	fclose(man);
	print_message("corpus: %u messages, %u with text parts\n", nmsg, ntext);
	assert_int_equal(nmsg, 3000);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
	free(t.s);
	mime_parser_free(&p);
}

/* --- HTML rendered as SpamAssassin renders it ----------------------------------------------- */

#include "data/html_sa_cases.h"

struct html_text {
	char  *s;
	size_t n, cap;
};

static void html_cb_text(void *arg, const uint8_t *p, size_t n)
{
	struct html_text *t = arg;

	if (t->n + n + 1 > t->cap) {
		t->cap = 2 * (t->n + n + 1);
		t->s = realloc(t->s, t->cap);
		assert_non_null(t->s);
	}
	memcpy(t->s + t->n, p, n);
	t->n += n;
	t->s[t->n] = 0;
}

static bool sa_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Message::get_body_text_array_common: s/\n+\s*\n+/\n/, then s/\s+/ /, in place. */
static void sa_normalize(char *s)
{
	size_t o = 0, i = 0;

	while (s[i]) {
		size_t j = i, nls = 0, first = 0, last = 0;

		if (!sa_space(s[i])) {
			s[o++] = s[i++];
			continue;
		}
		while (s[j] && sa_space(s[j])) {
			if (s[j] == '\n') {
				if (nls++ == 0)
					first = j;
				last = j;
			}
			j++;
		}
		if (nls >= 2) {
			if (first > i)
				s[o++] = ' ';
			s[o++] = '\n';
			if (last + 1 < j)
				s[o++] = ' ';
		} else {
			s[o++] = ' ';
		}
		i = j;
	}
	s[o] = 0;
}

static void html_render(struct mime_parser *p, struct html_text *t, const uint8_t *m, size_t n,
			enum split how)
{
	t->n = 0;
	if (t->s)
		t->s[0] = 0;
	feed(p, m, n, how);
	if (!t->s)
		html_cb_text(t, (const uint8_t *)"", 0);
	sa_normalize(t->s);
}

/* The white space at the very end is not compared: a part's text always ends a line here
 * (mime.c), where SpamAssassin puts the "\n" in front of the next part instead. */
static void rtrim(char *s)
{
	size_t n = strlen(s);

	while (n && sa_space(s[n - 1]))
		s[--n] = 0;
}

/* Compares line by line, so that a failure names the first line that differs. */
static void html_compare(const char *label, const char *how, const char *got, const char *want)
{
	unsigned line = 1;

	while (*got || *want) {
		size_t gl = strcspn(got, "\n"), wl = strcspn(want, "\n");

		if (gl != wl || memcmp(got, want, gl) != 0 || got[gl] != want[wl])
			fail_msg("%s (%s): line %u is \"%.*s\"%s, SpamAssassin's is \"%.*s\"%s", label,
				 how, line, (int)gl, got, got[gl] ? "\\n" : "", (int)wl, want,
				 want[wl] ? "\\n" : "");
		got += gl + (got[gl] != 0);
		want += wl + (want[wl] != 0);
		line++;
	}
}

static void test_mime_html_sa(void **state)
{
	static struct mime_sink sink = { .body_text = html_cb_text };
	static const char *const hows[] = { "whole", "byte by byte", "random split" };
	struct html_text t = { 0 };
	struct mime_parser *p = NULL;
	static char want[8192];

	(void)state;
	sink.arg = &t;
	assert_int_equal(mime_parser_new(&p, &sink, NULL), 0);
	for (size_t c = 0; c < sizeof(html_sa_cases) / sizeof(html_sa_cases[0]); c++) {
		const struct html_sa_case *hc = &html_sa_cases[c];
		static const char head[] = "Content-Type: text/html; charset=us-ascii\r\n\r\n";
		size_t hl = strlen(hc->html), n = sizeof(head) - 1 + hl + 2;
		uint8_t *m = malloc(n);

		assert_non_null(m);
		memcpy(m, head, sizeof(head) - 1);
		memcpy(m + sizeof(head) - 1, hc->html, hl);
		memcpy(m + n - 2, "\r\n", 2);
		for (int how = SPLIT_WHOLE; how <= SPLIT_RANDOM; how++) {
			for (int r = 0; r < (how == SPLIT_RANDOM ? 4 : 1); r++) {
				html_render(p, &t, m, n, (enum split)how);
				snprintf(want, sizeof(want), "%s", hc->want);
				rtrim(t.s);
				rtrim(want);
				html_compare(hc->label, hows[how], t.s, want);
			}
		}
		free(m);
	}
	free(t.s);
	mime_parser_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mime_table),
		cmocka_unit_test(test_mime_long_text),
		cmocka_unit_test(test_mime_reuse),
		cmocka_unit_test(test_mime_hostile),
		cmocka_unit_test(test_mime_corpus),
		cmocka_unit_test(test_mime_html_sa),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
