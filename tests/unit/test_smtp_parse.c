/*
 * test_smtp_parse.c - unit tests for smtp_parse.c: line assembly, verbs, and the MAIL, RCPT,
 * BDAT and HELO argument grammars.
 *
 * Table-driven. Line cases are streams of bytes with the wanted sequence of results; each runs
 * whole, one byte at a time, and at random splits (several seeds), and must give the same
 * sequence every way. Argument cases run twice over: the argument straight into its parser, and
 * as a full command line ("MAIL " arg CR LF) through smtp_line_next (whole, bytewise, random
 * splits), smtp_parse_verb and then the parser, which must agree.
 *
 * Long arguments are written with templates: {xN} is N "x", {dN} is a domain of exactly N
 * octets made of labels of at most 63.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "smtp/smtp_parse.h"

static uint64_t rng_state;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static const uint64_t seeds[] = { 1, 2, 3, 42, 1234567, 0xdeadbeef };
#define NSEEDS (sizeof(seeds) / sizeof(seeds[0]))

enum split { SPLIT_WHOLE, SPLIT_BYTE, SPLIT_RANDOM };

static size_t next_chunk(enum split how, size_t left)
{
	if (how == SPLIT_WHOLE)
		return left;
	if (how == SPLIT_BYTE)
		return 1;
	uint64_t r = rng();
	if ((r & 15) == 0)
		return left;
	return 1 + (size_t)((r >> 8) % 13);
}

/* Expands {xN} and {dN} (see the file comment) into out. */
static size_t expand(const char *t, char *out, size_t cap)
{
	size_t o = 0;

	while (*t) {
		if (t[0] == '{' && (t[1] == 'x' || t[1] == 'd')) {
			char kind = t[1];
			char *e;
			size_t n = strtoul(t + 2, &e, 10);
			assert_true(*e == '}');
			t = e + 1;
			assert_true(o + n < cap);
			if (kind == 'x') {
				memset(out + o, 'x', n);
				o += n;
				continue;
			}
			size_t rem = n;
			while (rem > 0) {
				size_t take = rem <= 63 ? rem : (rem - 64 >= 1 ? 63 : 62);
				memset(out + o, 'd', take);
				o += take;
				rem -= take;
				if (rem > 0) {
					out[o++] = '.';
					rem--;
				}
			}
			continue;
		}
		assert_true(o + 1 < cap);
		out[o++] = *t++;
	}
	out[o] = 0;
	return o;
}

/* ------------------------------------------------------------------------------------------ */
/* Line assembly                                                                               */

struct line_case {
	const char *label;
	const char *input;       /* template; may hold \0 via input_len */
	size_t      input_len;   /* 0: strlen; else the raw size (a template only before a NUL) */
	size_t      max;         /* 0: SMTP_CMD_LINE_MAX */
	bool        whole_only;  /* lines over sizeof(lb->buf) are whole-only by contract */
	const char *want;        /* events: "D<line>|" DONE, "B|" BAD, "T|" TOOLONG; then
				  * "+<n>" when n bytes are held at the end, "+T" when discarding */
};

static const struct line_case line_cases[] = {
	{ "one line", "HELO x\r\n", 0, 0, false, "DHELO x|" },
	{ "bare LF ends a command line", "HELO x\n", 0, 0, false, "DHELO x|" },
	{ "two lines", "A\r\nB\r\n", 0, 0, false, "DA|DB|" },
	{ "empty line", "\r\n", 0, 0, false, "D|" },
	{ "empty line bare LF", "\n", 0, 0, false, "D|" },
	{ "bare CR inside", "A\rB\r\nC\r\n", 0, 0, false, "B|DC|" },
	{ "CR CR LF", "A\r\r\n", 0, 0, false, "B|" },
	{ "CR only line", "\r\r\n", 0, 0, false, "B|" },
	{ "NUL inside", "A\0B\r\nC\r\n", 8, 0, false, "B|DC|" },
	{ "NUL at end", "A\0\r\n", 4, 0, false, "B|" },
	{ "partial held", "HELO x\r\nQUI", 0, 0, false, "DHELO x|+3" },
	{ "partial CR held", "QUIT\r", 0, 0, false, "+5" },
	{ "nothing", "", 0, 0, false, "" },
	{ "510 + CRLF = 512", "{x510}\r\n", 0, 0, false, "D{x510}|" },
	{ "511 + CRLF = 513", "{x511}\r\n", 0, 0, false, "T|" },
	{ "511 + LF = 512", "{x511}\n", 0, 0, false, "D{x511}|" },
	{ "512 + LF = 513", "{x512}\n", 0, 0, false, "T|" },
	{ "512 + CRLF", "{x512}\r\nQUIT\r\n", 0, 0, false, "T|DQUIT|" },
	{ "overlong then next", "{x600}\r\nQUIT\r\n", 0, 0, false, "T|DQUIT|" },
	{ "very long reported once", "{x5000}\r\nNOOP\r\n", 0, 0, false, "T|DNOOP|" },
	{ "overlong still discarding", "{x700}", 0, 0, false, "+T" },
	{ "exactly 511 held", "{x511}", 0, 0, false, "+511" },
	{ "512 held is over", "{x512}", 0, 0, false, "+T" },
	{ "overlong with NUL is TOOLONG", "{x600}\0\r\n", 9, 0, false, "T|" },
	{ "max 100: 98 + CRLF", "{x98}\r\n", 0, 100, false, "D{x98}|" },
	{ "max 100: 99 + CRLF", "{x99}\r\n", 0, 100, false, "T|" },
	{ "max 1000 whole line", "{x700}\r\nQUIT\r\n", 0, 1000, true, "D{x700}|DQUIT|" },
	{ "max 1000: 999 + CRLF", "{x999}\r\n", 0, 1000, true, "T|" },
	{ "bad then good then partial", "A\rB\nC\nD", 0, 0, false, "B|DC|+1" },
	{ "many lines", "RSET\r\nNOOP\r\nQUIT\r\n\r\nX\n", 0, 0, false,
	  "DRSET|DNOOP|DQUIT|D|DX|" },
};

static void line_run(const struct line_case *c, enum split how, const char *in, size_t len,
		     char *ev, size_t evcap)
{
	struct smtp_line lb;
	size_t pos = 0, e = 0, max = c->max ? c->max : SMTP_CMD_LINE_MAX;

	smtp_line_init(&lb);
	ev[0] = 0;
	while (pos < len) {
		size_t n = next_chunk(how, len - pos);
		if (n > len - pos)
			n = len - pos;
		uint8_t *chunk = malloc(n ? n : 1);   /* its own allocation: ASan sees overreads */
		size_t off = 0;
		memcpy(chunk, in + pos, n);
		for (;;) {
			struct slice line;
			size_t used = 12345;
			enum smtp_parse_status st = smtp_line_next(&lb, chunk + off, n - off, max,
								   &line, &used);
			if (used > n - off) {
				print_error("case '%s': used %zu > len %zu\n", c->label, used, n - off);
				fail();
			}
			off += used;
			if (st == SMTP_PARSE_AGAIN) {
				assert_int_equal(off, n);
				break;
			}
			if (st == SMTP_PARSE_DONE) {
				const char *lp = line.p;
				bool in_input = line.len == 0 ||
					((const uint8_t *)lp >= chunk && (const uint8_t *)lp + line.len <= chunk + n);
				bool in_buf = line.len == 0 ||
					(lp >= lb.buf && lp + line.len <= lb.buf + sizeof(lb.buf));
				if (!in_input && !in_buf) {
					print_error("case '%s': line outside input and buffer\n", c->label);
					fail();
				}
				/* zero-copy: a line whole in one read is never copied */
				if (how == SPLIT_WHOLE && !in_input) {
					print_error("case '%s': whole line was copied\n", c->label);
					fail();
				}
				assert_true(e + line.len + 3 < evcap);
				ev[e++] = 'D';
				memcpy(ev + e, line.p, line.len);
				e += line.len;
				ev[e++] = '|';
			} else {
				assert_true(e + 3 < evcap);
				ev[e++] = st == SMTP_PARSE_BAD ? 'B' : 'T';
				ev[e++] = '|';
			}
			ev[e] = 0;
			if (off == n)
				break;
		}
		free(chunk);
		pos += n;
	}
	if (lb.overflow)
		e += (size_t)snprintf(ev + e, evcap - e, "+T");
	else if (lb.len)
		e += (size_t)snprintf(ev + e, evcap - e, "+%u", (unsigned)lb.len);
}

static void test_line_table(void **state)
{
	static char in[8192], want[8192], ev[8192];

	(void)state;
	for (size_t i = 0; i < sizeof(line_cases) / sizeof(line_cases[0]); i++) {
		const struct line_case *c = &line_cases[i];
		size_t len;
		if (c->input_len && c->input[0] == '{') {
			/* a template with a NUL: expand up to the NUL, then copy the rest raw */
			size_t t = strlen(c->input);
			len = expand(c->input, in, sizeof(in));
			memcpy(in + len, c->input + t, c->input_len - t);
			len += c->input_len - t;
		} else if (c->input_len) {
			memcpy(in, c->input, c->input_len);
			len = c->input_len;
		} else
			len = expand(c->input, in, sizeof(in));
		expand(c->want, want, sizeof(want));

		line_run(c, SPLIT_WHOLE, in, len, ev, sizeof(ev));
		if (strcmp(ev, want) != 0) {
			print_error("case '%s' whole: got '%.80s', want '%.80s'\n", c->label, ev, want);
			fail();
		}
		if (c->whole_only)
			continue;
		line_run(c, SPLIT_BYTE, in, len, ev, sizeof(ev));
		if (strcmp(ev, want) != 0) {
			print_error("case '%s' bytewise: got '%.80s', want '%.80s'\n", c->label, ev,
				    want);
			fail();
		}
		for (size_t s = 0; s < NSEEDS; s++) {
			rng_state = seeds[s];
			line_run(c, SPLIT_RANDOM, in, len, ev, sizeof(ev));
			if (strcmp(ev, want) != 0) {
				print_error("case '%s' seed %llu: got '%.80s', want '%.80s'\n", c->label,
					    (unsigned long long)seeds[s], ev, want);
				fail();
			}
		}
	}
}

/* A line longer than lb->buf that straddles reads is TOOLONG even when max allows it. */
static void test_line_straddle_over_buf(void **state)
{
	static char in[700];
	struct smtp_line lb;
	struct slice line;
	size_t used;

	(void)state;
	memset(in, 'x', 698);
	memcpy(in + 698, "\r\n", 2);
	smtp_line_init(&lb);
	assert_int_equal(smtp_line_next(&lb, (const uint8_t *)in, 300, 1000, &line, &used),
			 SMTP_PARSE_AGAIN);
	assert_int_equal(used, 300);
	assert_int_equal(smtp_line_next(&lb, (const uint8_t *)in + 300, 400, 1000, &line, &used),
			 SMTP_PARSE_TOOLONG);
	assert_int_equal(used, 400);
	/* and the holder is clean for the next line */
	assert_int_equal(smtp_line_next(&lb, (const uint8_t *)"QUIT\r\n", 6, 1000, &line, &used),
			 SMTP_PARSE_DONE);
	assert_int_equal(line.len, 4);
}

/* ------------------------------------------------------------------------------------------ */
/* Verbs                                                                                       */

struct verb_case {
	const char    *line;
	enum smtp_verb want;
	const char    *want_arg;
	bool           want_sloppy;
};

static const struct verb_case verb_cases[] = {
	{ "HELO example.com", SMTP_VERB_HELO, "example.com", false },
	{ "helo example.com", SMTP_VERB_HELO, "example.com", false },
	{ "EHLO  x", SMTP_VERB_EHLO, "x", true },
	{ "EHLO\tx", SMTP_VERB_EHLO, "x", true },
	{ "EhLo x \t ", SMTP_VERB_EHLO, "x", false },
	{ "MAIL FROM:<a@b>", SMTP_VERB_MAIL, "FROM:<a@b>", false },
	{ "mail from:<a@b> SIZE=1  ", SMTP_VERB_MAIL, "from:<a@b> SIZE=1", false },
	{ "RCPT TO:<a@b>", SMTP_VERB_RCPT, "TO:<a@b>", false },
	{ "DATA", SMTP_VERB_DATA, "", false },
	{ "DATA ", SMTP_VERB_DATA, "", false },
	{ "BDAT 10 LAST", SMTP_VERB_BDAT, "10 LAST", false },
	{ "RSET", SMTP_VERB_RSET, "", false },
	{ "NOOP hello", SMTP_VERB_NOOP, "hello", false },
	{ "QUIT", SMTP_VERB_QUIT, "", false },
	{ "VRFY x", SMTP_VERB_VRFY, "x", false },
	{ "EXPN x", SMTP_VERB_EXPN, "x", false },
	{ "HELP", SMTP_VERB_HELP, "", false },
	{ "STARTTLS", SMTP_VERB_STARTTLS, "", false },
	{ "starttls", SMTP_VERB_STARTTLS, "", false },
	{ "AUTH PLAIN xyz", SMTP_VERB_AUTH, "PLAIN xyz", false },
	{ "GET / HTTP/1.1", SMTP_VERB_HTTP, "/ HTTP/1.1", false },
	{ "POST /x HTTP/1.0", SMTP_VERB_HTTP, "/x HTTP/1.0", false },
	{ "HEAD /", SMTP_VERB_HTTP, "/", false },
	{ "PUT /", SMTP_VERB_HTTP, "/", false },
	{ "CONNECT mx:25 HTTP/1.1", SMTP_VERB_HTTP, "mx:25 HTTP/1.1", false },
	{ "OPTIONS *", SMTP_VERB_HTTP, "*", false },
	{ "MAILFROM:<a@b>", SMTP_VERB_UNKNOWN, "", false },
	{ "MAIL:", SMTP_VERB_UNKNOWN, "", false },
	{ "", SMTP_VERB_UNKNOWN, "", false },
	{ " HELO x", SMTP_VERB_UNKNOWN, "HELO x", false },
	{ "HEL", SMTP_VERB_UNKNOWN, "", false },
	{ "HELOX y", SMTP_VERB_UNKNOWN, "y", false },
	{ "XYZZY", SMTP_VERB_UNKNOWN, "", false },
	{ "STARTTLSX", SMTP_VERB_UNKNOWN, "", false },
	{ "H\xc5LO x", SMTP_VERB_UNKNOWN, "x", false },
	{ "HE@O x", SMTP_VERB_UNKNOWN, "x", false },
};

static void test_verb_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(verb_cases) / sizeof(verb_cases[0]); i++) {
		const struct verb_case *c = &verb_cases[i];
		struct slice line = { c->line, strlen(c->line) }, arg, arg2;
		bool sloppy = !c->want_sloppy;
		enum smtp_verb v = smtp_parse_verb_sloppy(line, &arg, &sloppy);
		enum smtp_verb v2 = smtp_parse_verb(line, &arg2);
		if (v != c->want || v2 != v || sloppy != c->want_sloppy ||
		    arg.len != strlen(c->want_arg) || memcmp(arg.p, c->want_arg, arg.len) != 0 ||
		    arg2.p != arg.p || arg2.len != arg.len) {
			print_error("verb case '%s': got %s '%.*s' sloppy %d\n", c->line,
				    smtp_verb_name(v), (int)arg.len, arg.p, sloppy);
			fail();
		}
		if (arg.len)
			assert_true(arg.p >= line.p && arg.p + arg.len <= line.p + line.len);
	}
	assert_string_equal(smtp_verb_name(SMTP_VERB_STARTTLS), "STARTTLS");
	assert_string_equal(smtp_verb_name(SMTP_VERB_COUNT), "UNKNOWN");
	for (int v = 0; v < SMTP_VERB_COUNT; v++)
		assert_non_null(smtp_verb_name((enum smtp_verb)v));
}

/* ------------------------------------------------------------------------------------------ */
/* Argument grammars                                                                           */

enum arg_kind { K_MAIL, K_RCPT, K_BDAT, K_HELO };

struct arg_case {
	const char       *label;
	enum arg_kind     kind;
	const char       *arg;        /* template */
	enum smtp_arg_err want_err;
	const char       *want_addr;  /* template; NULL: not checked */
	const char       *want_domain;
	bool              want_null, want_utf8, want_postmaster;
	uint64_t          want_size;
	bool              want_has_size, want_last;
	enum smtp_body_type want_body;
	bool              want_smtputf8;
	const char       *want_ret, *want_envid, *want_notify, *want_orcpt;
};

#define MAIL(l, a, e) .label = (l), .kind = K_MAIL, .arg = (a), .want_err = (e)
#define RCPT(l, a, e) .label = (l), .kind = K_RCPT, .arg = (a), .want_err = (e)
#define BDAT(l, a, e) .label = (l), .kind = K_BDAT, .arg = (a), .want_err = (e)
#define HELO(l, a, e) .label = (l), .kind = K_HELO, .arg = (a), .want_err = (e)
#define OK SMTP_ARG_OK

static const struct arg_case arg_cases[] = {
	/* --- MAIL: paths --- */
	{ MAIL("plain", "FROM:<a@b.c>", OK), .want_addr = "a@b.c", .want_domain = "b.c" },
	{ MAIL("lower case from", "from:<a@b.c>", OK), .want_addr = "a@b.c" },
	{ MAIL("one space after colon", "FROM: <a@b.c>", OK), .want_addr = "a@b.c" },
	{ MAIL("two spaces after colon", "FROM:  <a@b.c>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("null path", "FROM:<>", OK), .want_addr = "", .want_null = true },
	{ MAIL("null path with size", "FROM:<> SIZE=100", OK), .want_null = true, .want_size = 100,
	  .want_has_size = true },
	{ MAIL("source route dropped", "FROM:<@r1.x,@r2.y:a@b.c>", OK), .want_addr = "a@b.c",
	  .want_domain = "b.c" },
	{ MAIL("one hop route", "FROM:<@r1:a@b>", OK), .want_addr = "a@b" },
	{ MAIL("quoted local", "FROM:<\"a b\"@c.d>", OK), .want_addr = "\"a b\"@c.d" },
	{ MAIL("quoted pair", "FROM:<\"a\\\"b\"@c.d>", OK), .want_addr = "\"a\\\"b\"@c.d" },
	{ MAIL("empty quoted", "FROM:<\"\"@c.d>", OK), .want_addr = "\"\"@c.d" },
	{ MAIL("quoted with @ and >", "FROM:<\"a@b>c\"@d>", OK), .want_addr = "\"a@b>c\"@d" },
	{ MAIL("atext specials", "FROM:<a!#$%&'*+-/=?^_`{|}~z@b>", OK) },
	{ MAIL("dotted local and hyphen domain", "FROM:<a.b.c@d-e.f>", OK), .want_addr = "a.b.c@d-e.f" },
	{ MAIL("digits domain", "FROM:<a@123.com>", OK) },
	{ MAIL("single label", "FROM:<a@localhost>", OK) },
	{ MAIL("ipv4 literal", "FROM:<a@[192.0.2.1]>", OK), .want_domain = "[192.0.2.1]" },
	{ MAIL("ipv4 literal zeros", "FROM:<a@[0.0.0.0]>", OK) },
	{ MAIL("ipv6 loopback", "FROM:<a@[IPv6:::1]>", OK) },
	{ MAIL("ipv6 lower tag", "FROM:<a@[ipv6:2001:db8::1]>", OK) },
	{ MAIL("ipv6 full", "FROM:<a@[IPv6:1:2:3:4:5:6:7:8]>", OK) },
	{ MAIL("ipv6 trailing comp", "FROM:<a@[IPv6:1:2:3::]>", OK) },
	{ MAIL("ipv6 v4 comp", "FROM:<a@[IPv6:::ffff:192.0.2.1]>", OK) },
	{ MAIL("ipv6 v4 full", "FROM:<a@[IPv6:1:2:3:4:5:6:192.0.2.1]>", OK) },
	{ MAIL("general literal", "FROM:<a@[x-tag:stuff!here]>", OK) },
	{ MAIL("utf8 with SMTPUTF8", "FROM:<\xce\xb4@b> SMTPUTF8", OK), .want_utf8 = true,
	  .want_smtputf8 = true },
	{ MAIL("utf8 domain", "FROM:<a@\xce\xb4\xce\xbf\xce\xba.gr> SMTPUTF8", OK),
	  .want_utf8 = true, .want_smtputf8 = true },
	{ MAIL("utf8 quoted", "FROM:<\"\xc3\xa9 x\"@b> SMTPUTF8", OK), .want_utf8 = true,
	  .want_smtputf8 = true },
	{ MAIL("utf8 in route only", "FROM:<@\xc3\xa9.x:a@b>", SMTP_ARG_UTF8_NEEDS_SMTPUTF8) },
	{ MAIL("utf8 without SMTPUTF8", "FROM:<\xce\xb4@b>", SMTP_ARG_UTF8_NEEDS_SMTPUTF8) },
	{ MAIL("utf8 before a bad param", "FROM:<\xce\xb4@b> FOO", SMTP_ARG_UNKNOWN_PARAM) },

	/* --- MAIL: limits (§4.5.3.1) --- */
	{ MAIL("local 64", "FROM:<{x64}@b>", OK) },
	{ MAIL("local 65", "FROM:<{x65}@b>", SMTP_ARG_LOCAL_TOO_LONG) },
	{ MAIL("quoted local 64", "FROM:<\"{x62}\"@b>", OK) },
	{ MAIL("quoted local 65", "FROM:<\"{x63}\"@b>", SMTP_ARG_LOCAL_TOO_LONG) },
	{ MAIL("path 256", "FROM:<a@{d252}>", OK) },
	{ MAIL("path 257", "FROM:<a@{d253}>", SMTP_ARG_PATH_TOO_LONG) },
	{ MAIL("path 256 with route", "FROM:<@r:a@{d249}>", OK) },
	{ MAIL("path 257 with route", "FROM:<@r:a@{d250}>", SMTP_ARG_PATH_TOO_LONG) },
	{ MAIL("domain 255 (path over)", "FROM:<a@{d255}>", SMTP_ARG_PATH_TOO_LONG) },
	{ MAIL("domain 256", "FROM:<a@{d256}>", SMTP_ARG_DOMAIN_TOO_LONG) },
	{ MAIL("route domain 256", "FROM:<@{d256}:a@b>", SMTP_ARG_DOMAIN_TOO_LONG) },

	/* --- MAIL: bad paths --- */
	{ MAIL("empty", "", SMTP_ARG_SYNTAX) },
	{ MAIL("no colon", "FROM", SMTP_ARG_SYNTAX) },
	{ MAIL("nothing after colon", "FROM:", SMTP_ARG_SYNTAX) },
	{ MAIL("space before colon", "FROM :<a@b>", SMTP_ARG_SYNTAX) },
	{ MAIL("TO on MAIL", "TO:<a@b>", SMTP_ARG_SYNTAX) },
	{ MAIL("no brackets", "FROM:a@b", SMTP_ARG_BAD_SENDER) },
	{ MAIL("unclosed", "FROM:<a@b", SMTP_ARG_BAD_SENDER) },
	{ MAIL("junk after path", "FROM:<a@b>x", SMTP_ARG_SYNTAX) },
	{ MAIL("double dot", "FROM:<a..b@c>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("leading dot", "FROM:<.a@c>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("trailing dot local", "FROM:<a.@c>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("trailing dot domain", "FROM:<a@c.>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("hyphen first label", "FROM:<a@-c>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("hyphen last label", "FROM:<a@c->", SMTP_ARG_BAD_SENDER) },
	{ MAIL("underscore domain", "FROM:<a@c_d.e>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("empty domain", "FROM:<a@>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("empty local", "FROM:<@c>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("no domain", "FROM:<a>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("postmaster is not a sender", "FROM:<postmaster>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("two ats", "FROM:<a@b@c>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("space in local", "FROM:<a b@c>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("control in local", "FROM:<a\x01@c>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("ipv4 octet 256", "FROM:<a@[1.2.3.256]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("ipv4 three parts", "FROM:<a@[1.2.3]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("ipv4 five parts", "FROM:<a@[1.2.3.4.5]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("ipv4 four digits", "FROM:<a@[1.2.3.0004]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("ipv6 seven groups", "FROM:<a@[IPv6:1:2:3:4:5:6:7]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("ipv6 two comps", "FROM:<a@[IPv6:1::2::3]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("ipv6 comp for one group", "FROM:<a@[IPv6:1:2:3:4:5:6:7::]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("ipv6 five hex", "FROM:<a@[IPv6:12345::1]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("ipv6 trailing colon", "FROM:<a@[IPv6:1:2:3:4:5:6:7:8:]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("ipv6 without tag", "FROM:<a@[::1]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("empty literal", "FROM:<a@[]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("general literal no content", "FROM:<a@[tag:]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("general literal tag ends hyphen", "FROM:<a@[tag-:x]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("general literal backslash", "FROM:<a@[tag:a\\b]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("unterminated literal", "FROM:<a@[1.2.3.4>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("unterminated quote", "FROM:<\"ab@c>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("control in quote", "FROM:<\"a\x01\"@c>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("invalid utf8", "FROM:<a\xff@b> SMTPUTF8", SMTP_ARG_BAD_SENDER) },
	{ MAIL("overlong utf8", "FROM:<a\xc0\x80@b> SMTPUTF8", SMTP_ARG_BAD_SENDER) },
	{ MAIL("surrogate utf8", "FROM:<a\xed\xa0\x80@b> SMTPUTF8", SMTP_ARG_BAD_SENDER) },
	{ MAIL("cut utf8", "FROM:<a@b\xce> SMTPUTF8", SMTP_ARG_BAD_SENDER) },
	{ MAIL("utf8 4-byte", "FROM:<\xf0\x9f\x98\x80@b> SMTPUTF8", OK), .want_utf8 = true,
	  .want_smtputf8 = true },
	{ MAIL("utf8 U+10FFFF", "FROM:<\xf4\x8f\xbf\xbf@b> SMTPUTF8", OK), .want_utf8 = true,
	  .want_smtputf8 = true },
	{ MAIL("utf8 over U+10FFFF", "FROM:<\xf4\x90\x80\x80@b> SMTPUTF8", SMTP_ARG_BAD_SENDER) },
	{ MAIL("utf8 overlong 3-byte", "FROM:<\xe0\x80\xaf@b> SMTPUTF8", SMTP_ARG_BAD_SENDER) },
	{ MAIL("utf8 overlong 4-byte", "FROM:<\xf0\x80\x80\xaf@b> SMTPUTF8", SMTP_ARG_BAD_SENDER) },
	{ MAIL("utf8 bad continuation", "FROM:<\xe2\x82x@b> SMTPUTF8", SMTP_ARG_BAD_SENDER) },
	{ MAIL("utf8 bad in quoted", "FROM:<\"\xff\"@b> SMTPUTF8", SMTP_ARG_BAD_SENDER) },
	{ MAIL("quoted pair control", "FROM:<\"a\\\x01\"@b>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("ipv6 unspecified", "FROM:<a@[IPv6:::]>", OK) },
	{ MAIL("ipv6 junk after group", "FROM:<a@[IPv6:1:2:3:4:5:6:7:8x]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("ipv6 v4 not last", "FROM:<a@[IPv6:::1.2.3.4:1]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("ipv6 v4 comp too many", "FROM:<a@[IPv6:1:2:3:4:5::1.2.3.4]>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("value bad utf8", "FROM:<a@b> ENVID=\xc3(", SMTP_ARG_SYNTAX) },
	{ MAIL("route without colon", "FROM:<@r1,a@b>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("route empty mailbox", "FROM:<@r1:>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("route empty domain", "FROM:<@:a@b>", SMTP_ARG_BAD_SENDER) },
	{ MAIL("route comma no at", "FROM:<@r1,r2:a@b>", SMTP_ARG_BAD_SENDER) },

	/* --- MAIL: parameters --- */
	{ MAIL("size", "FROM:<a@b> SIZE=12345", OK), .want_size = 12345, .want_has_size = true },
	{ MAIL("size zero", "FROM:<a@b> SIZE=0", OK), .want_size = 0, .want_has_size = true },
	{ MAIL("size 2^64-1", "FROM:<a@b> SIZE=18446744073709551615", OK),
	  .want_size = UINT64_MAX, .want_has_size = true },
	{ MAIL("size 20 digits saturates", "FROM:<a@b> SIZE=99999999999999999999", OK),
	  .want_size = UINT64_MAX, .want_has_size = true },
	{ MAIL("size 21 digits", "FROM:<a@b> SIZE=100000000000000000000", SMTP_ARG_BAD_PARAM) },
	{ MAIL("size lower case", "FROM:<a@b> size=7", OK), .want_size = 7, .want_has_size = true },
	{ MAIL("size no value", "FROM:<a@b> SIZE", SMTP_ARG_BAD_PARAM) },
	{ MAIL("size empty value", "FROM:<a@b> SIZE=", SMTP_ARG_SYNTAX) },
	{ MAIL("size letters", "FROM:<a@b> SIZE=12a", SMTP_ARG_BAD_PARAM) },
	{ MAIL("size negative", "FROM:<a@b> SIZE=-1", SMTP_ARG_BAD_PARAM) },
	{ MAIL("size twice", "FROM:<a@b> SIZE=1 SIZE=2", SMTP_ARG_DUP_PARAM) },
	{ MAIL("body 7bit", "FROM:<a@b> BODY=7bit", OK), .want_body = SMTP_BODY_7BIT },
	{ MAIL("body 8bitmime", "FROM:<a@b> BODY=8BITMIME", OK), .want_body = SMTP_BODY_8BITMIME },
	{ MAIL("body binarymime", "FROM:<a@b> BODY=BINARYMIME", OK),
	  .want_body = SMTP_BODY_BINARYMIME },
	{ MAIL("body bad", "FROM:<a@b> BODY=9BIT", SMTP_ARG_BAD_PARAM) },
	{ MAIL("body no value", "FROM:<a@b> BODY", SMTP_ARG_BAD_PARAM) },
	{ MAIL("body twice", "FROM:<a@b> BODY=8BITMIME BODY=7BIT", SMTP_ARG_DUP_PARAM) },
	{ MAIL("smtputf8", "FROM:<a@b> SMTPUTF8", OK), .want_smtputf8 = true },
	{ MAIL("smtputf8 with value", "FROM:<a@b> SMTPUTF8=yes", SMTP_ARG_BAD_PARAM) },
	{ MAIL("smtputf8 twice", "FROM:<a@b> SMTPUTF8 smtputf8", SMTP_ARG_DUP_PARAM) },
	{ MAIL("ret hdrs envid", "FROM:<a@b> RET=HDRS ENVID=abc+2Bdef", OK), .want_ret = "HDRS",
	  .want_envid = "abc+2Bdef" },
	{ MAIL("ret full", "FROM:<a@b> RET=full", OK), .want_ret = "full" },
	{ MAIL("ret bad", "FROM:<a@b> RET=ALL", SMTP_ARG_BAD_PARAM) },
	{ MAIL("ret no value", "FROM:<a@b> RET", SMTP_ARG_BAD_PARAM) },
	{ MAIL("envid 100", "FROM:<a@b> ENVID={x100}", OK) },
	{ MAIL("envid 101", "FROM:<a@b> ENVID={x101}", SMTP_ARG_BAD_PARAM) },
	{ MAIL("envid bad hex", "FROM:<a@b> ENVID=a+zz", SMTP_ARG_BAD_PARAM) },
	{ MAIL("envid lower hex", "FROM:<a@b> ENVID=a+2b", SMTP_ARG_BAD_PARAM) },
	{ MAIL("envid cut hex", "FROM:<a@b> ENVID=a+2", SMTP_ARG_BAD_PARAM) },
	{ MAIL("envid utf8", "FROM:<a@b> ENVID=\xc3\xa9", SMTP_ARG_BAD_PARAM) },
	{ MAIL("equals in value", "FROM:<a@b> ENVID=a=b", SMTP_ARG_SYNTAX) },
	{ MAIL("all together", "FROM:<a@b> SIZE=10 BODY=8BITMIME SMTPUTF8 RET=FULL ENVID=x", OK),
	  .want_size = 10, .want_has_size = true, .want_body = SMTP_BODY_8BITMIME,
	  .want_smtputf8 = true, .want_ret = "FULL", .want_envid = "x" },
	{ MAIL("two spaces between params", "FROM:<a@b>  SIZE=1", OK), .want_size = 1,
	  .want_has_size = true },
	{ MAIL("no space before param", "FROM:<a@b>SIZE=1", SMTP_ARG_SYNTAX) },
	{ MAIL("tab before param", "FROM:<a@b>\tSIZE=1", SMTP_ARG_SYNTAX) },
	{ MAIL("unknown param", "FROM:<a@b> FOO=1", SMTP_ARG_UNKNOWN_PARAM) },
	{ MAIL("unknown keyword only", "FROM:<a@b> XYZ", SMTP_ARG_UNKNOWN_PARAM) },
	{ MAIL("rcpt param on mail", "FROM:<a@b> NOTIFY=NEVER", SMTP_ARG_UNKNOWN_PARAM) },
	{ MAIL("auth is unknown here", "FROM:<a@b> AUTH=<>", SMTP_ARG_UNKNOWN_PARAM) },
	{ MAIL("first error wins", "FROM:<a@b> SIZE=1 FOO=1 SIZE=2", SMTP_ARG_UNKNOWN_PARAM) },
	{ MAIL("keyword starts with hyphen", "FROM:<a@b> -X=1", SMTP_ARG_SYNTAX) },
	{ MAIL("keyword underscore", "FROM:<a@b> X_Y=1", SMTP_ARG_SYNTAX) },
	{ MAIL("control in value", "FROM:<a@b> X=\x01", SMTP_ARG_SYNTAX) },
	{ MAIL("keyword with hyphen ok syntax", "FROM:<a@b> X-Y=1", SMTP_ARG_UNKNOWN_PARAM) },

	/* --- RCPT --- */
	{ RCPT("plain", "TO:<a@b.c>", OK), .want_addr = "a@b.c", .want_domain = "b.c" },
	{ RCPT("lower to", "to:<a@b.c>", OK), .want_addr = "a@b.c" },
	{ RCPT("one space", "TO: <a@b.c>", OK), .want_addr = "a@b.c" },
	{ RCPT("postmaster", "TO:<Postmaster>", OK), .want_addr = "Postmaster", .want_domain = "",
	  .want_postmaster = true },
	{ RCPT("postmaster upper", "to:<POSTMASTER>", OK), .want_postmaster = true },
	{ RCPT("postmaster with domain", "TO:<postmaster@b>", OK), .want_addr = "postmaster@b" },
	{ RCPT("postmaster routed", "TO:<@x:Postmaster>", SMTP_ARG_BAD_RCPT) },
	{ RCPT("postmaster quoted", "TO:<\"postmaster\">", SMTP_ARG_BAD_RCPT) },
	{ RCPT("other local without domain", "TO:<post>", SMTP_ARG_BAD_RCPT) },
	{ RCPT("null path", "TO:<>", SMTP_ARG_BAD_RCPT) },
	{ RCPT("no brackets", "TO:a@b", SMTP_ARG_BAD_RCPT) },
	{ RCPT("FROM on RCPT", "FROM:<a@b>", SMTP_ARG_SYNTAX) },
	{ RCPT("utf8 is reported", "TO:<\xce\xb4@b>", OK), .want_utf8 = true },
	{ RCPT("route dropped", "TO:<@x,@y:a@b>", OK), .want_addr = "a@b" },
	{ RCPT("local 65", "TO:<{x65}@b>", SMTP_ARG_LOCAL_TOO_LONG) },
	{ RCPT("path 257", "TO:<a@{d253}>", SMTP_ARG_PATH_TOO_LONG) },
	{ RCPT("domain 256", "TO:<a@{d256}>", SMTP_ARG_DOMAIN_TOO_LONG) },
	{ RCPT("notify never", "TO:<a@b> NOTIFY=NEVER", OK), .want_notify = "NEVER" },
	{ RCPT("notify list", "TO:<a@b> NOTIFY=SUCCESS,FAILURE,DELAY", OK),
	  .want_notify = "SUCCESS,FAILURE,DELAY" },
	{ RCPT("notify lower", "TO:<a@b> NOTIFY=delay", OK), .want_notify = "delay" },
	{ RCPT("notify never plus", "TO:<a@b> NOTIFY=NEVER,SUCCESS", SMTP_ARG_BAD_PARAM) },
	{ RCPT("notify repeated item", "TO:<a@b> NOTIFY=SUCCESS,SUCCESS", SMTP_ARG_BAD_PARAM) },
	{ RCPT("notify trailing comma", "TO:<a@b> NOTIFY=SUCCESS,", SMTP_ARG_BAD_PARAM) },
	{ RCPT("notify unknown", "TO:<a@b> NOTIFY=ALWAYS", SMTP_ARG_BAD_PARAM) },
	{ RCPT("notify no value", "TO:<a@b> NOTIFY", SMTP_ARG_BAD_PARAM) },
	{ RCPT("notify twice", "TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER", SMTP_ARG_DUP_PARAM) },
	{ RCPT("orcpt", "TO:<a@b> ORCPT=rfc822;a+40b.c", OK), .want_orcpt = "rfc822;a+40b.c" },
	{ RCPT("orcpt utf-8", "TO:<a@b> ORCPT=utf-8;\xce\xb4@b", OK),
	  .want_orcpt = "utf-8;\xce\xb4@b" },
	{ RCPT("orcpt utf8 in rfc822", "TO:<a@b> ORCPT=rfc822;\xce\xb4@b", SMTP_ARG_BAD_PARAM) },
	{ RCPT("orcpt bad type", "TO:<a@b> ORCPT=rfc(822);a", SMTP_ARG_BAD_PARAM) },
	{ RCPT("orcpt no type", "TO:<a@b> ORCPT=;a@b", SMTP_ARG_BAD_PARAM) },
	{ RCPT("orcpt no semicolon", "TO:<a@b> ORCPT=rfc822", SMTP_ARG_BAD_PARAM) },
	{ RCPT("orcpt empty address", "TO:<a@b> ORCPT=rfc822;", SMTP_ARG_BAD_PARAM) },
	{ RCPT("orcpt cut hex", "TO:<a@b> ORCPT=rfc822;a+4", SMTP_ARG_BAD_PARAM) },
	{ RCPT("orcpt twice", "TO:<a@b> ORCPT=rfc822;a ORCPT=rfc822;b", SMTP_ARG_DUP_PARAM) },
	{ RCPT("both dsn params", "TO:<a@b> NOTIFY=FAILURE ORCPT=rfc822;x", OK),
	  .want_notify = "FAILURE", .want_orcpt = "rfc822;x" },
	{ RCPT("size on rcpt", "TO:<a@b> SIZE=1", SMTP_ARG_UNKNOWN_PARAM) },
	{ RCPT("junk after path", "TO:<a@b>junk", SMTP_ARG_SYNTAX) },

	/* --- BDAT (RFC 3030) --- */
	{ BDAT("size", "100", OK), .want_size = 100 },
	{ BDAT("size last", "100 LAST", OK), .want_size = 100, .want_last = true },
	{ BDAT("zero last", "0 LAST", OK), .want_size = 0, .want_last = true },
	{ BDAT("last lower", "5 last", OK), .want_size = 5, .want_last = true },
	{ BDAT("two spaces", "5  LAST", OK), .want_size = 5, .want_last = true },
	{ BDAT("chunk max", "67108864", OK), .want_size = 67108864 },
	{ BDAT("chunk max + 1", "67108865", SMTP_ARG_BAD_PARAM), .want_size = 67108865 },
	{ BDAT("huge saturates", "99999999999999999999999", SMTP_ARG_BAD_PARAM),
	  .want_size = UINT64_MAX },
	{ BDAT("empty", "", SMTP_ARG_SYNTAX) },
	{ BDAT("last only", "LAST", SMTP_ARG_SYNTAX) },
	{ BDAT("bad word", "100 FIRST", SMTP_ARG_SYNTAX) },
	{ BDAT("negative", "-1", SMTP_ARG_SYNTAX) },
	{ BDAT("junk after digits", "1x", SMTP_ARG_SYNTAX) },
	{ BDAT("junk after last", "100 LAST x", SMTP_ARG_SYNTAX) },
	{ BDAT("lastx", "100 LASTX", SMTP_ARG_SYNTAX) },

	/* --- HELO/EHLO --- */
	{ HELO("domain", "mx.example.com", OK) },
	{ HELO("literal", "[192.0.2.1]", OK) },
	{ HELO("junk is tolerated", "my_box!", OK) },
	{ HELO("utf8", "\xce\xb4.example", OK) },
	{ HELO("empty", "", SMTP_ARG_SYNTAX) },
	{ HELO("space inside", "a b", SMTP_ARG_SYNTAX) },
	{ HELO("control", "a\x01z", SMTP_ARG_SYNTAX) },
	{ HELO("del", "a\x7fz", SMTP_ARG_SYNTAX) },
};

struct arg_result {
	enum smtp_arg_err err;
	struct smtp_mail_args mail;
	struct smtp_rcpt_args rcpt;
	uint64_t size;
	bool last;
};

static void parse_arg(enum arg_kind kind, struct slice arg, struct arg_result *r)
{
	memset(r, 0, sizeof(*r));
	switch (kind) {
	case K_MAIL: r->err = smtp_parse_mail_arg(arg, &r->mail); break;
	case K_RCPT: r->err = smtp_parse_rcpt_arg(arg, &r->rcpt); break;
	case K_BDAT: r->err = smtp_parse_bdat_arg(arg, &r->size, &r->last); break;
	case K_HELO: r->err = smtp_parse_helo_arg(arg); break;
	}
}

static bool slice_is(struct slice s, const char *want)
{
	return s.len == strlen(want) && (s.len == 0 || memcmp(s.p, want, s.len) == 0);
}

static bool slice_inside(struct slice s, struct slice in)
{
	return s.len == 0 || (s.p >= in.p && s.p + s.len <= in.p + in.len);
}

static void check_arg(const struct arg_case *c, const char *how, struct slice arg,
		      const struct arg_result *r)
{
	static char want[1024];
	const struct smtp_path *path = c->kind == K_RCPT ? &r->rcpt.path : &r->mail.path;

#define CHECK(cond, what)                                                               \
	do {                                                                            \
		if (!(cond)) {                                                          \
			print_error("case '%s' (%s): %s (err %d, want %d)\n", c->label, how, \
				    (what), r->err, c->want_err);                       \
			fail();                                                         \
		}                                                                       \
	} while (0)

	CHECK(r->err == c->want_err, "error code");
	if (c->kind == K_BDAT) {
		CHECK(r->size == c->want_size || c->want_err == SMTP_ARG_SYNTAX, "bdat size");
		CHECK(r->last == c->want_last, "bdat last");
	}
	if (c->want_err != SMTP_ARG_OK || c->kind == K_BDAT || c->kind == K_HELO)
		return;
	if (c->want_addr) {
		expand(c->want_addr, want, sizeof(want));
		CHECK(slice_is(path->addr, want), "addr");
	}
	if (c->want_domain)
		CHECK(slice_is(path->domain, c->want_domain), "domain");
	CHECK(path->is_null == c->want_null, "is_null");
	CHECK(path->utf8 == c->want_utf8, "utf8");
	CHECK(slice_inside(path->addr, arg) && slice_inside(path->local, arg) &&
	      slice_inside(path->domain, arg), "path slices inside the argument");
	if (!path->is_null && !c->want_postmaster) {
		/* addr is local "@" domain, contiguous */
		CHECK(path->addr.p == path->local.p &&
		      path->addr.len == path->local.len + 1 + path->domain.len &&
		      path->domain.p == path->local.p + path->local.len + 1, "addr = local@domain");
	}
	if (c->kind == K_MAIL) {
		CHECK(r->mail.size == c->want_size && r->mail.has_size == c->want_has_size, "size");
		CHECK(r->mail.body == c->want_body, "body");
		CHECK(r->mail.smtputf8 == c->want_smtputf8, "smtputf8");
		CHECK(slice_is(r->mail.ret, c->want_ret ? c->want_ret : ""), "ret");
		if (c->want_envid)
			CHECK(slice_is(r->mail.envid, c->want_envid), "envid");
		CHECK(slice_inside(r->mail.ret, arg) && slice_inside(r->mail.envid, arg), "slices");
	} else {
		CHECK(r->rcpt.postmaster == c->want_postmaster, "postmaster");
		CHECK(slice_is(r->rcpt.notify, c->want_notify ? c->want_notify : ""), "notify");
		CHECK(slice_is(r->rcpt.orcpt, c->want_orcpt ? c->want_orcpt : ""), "orcpt");
		CHECK(slice_inside(r->rcpt.notify, arg) && slice_inside(r->rcpt.orcpt, arg),
		      "slices");
	}
#undef CHECK
}

static const char *const kind_verb[] = { "MAIL", "RCPT", "BDAT", "EHLO" };
static const enum smtp_verb kind_want_verb[] = { SMTP_VERB_MAIL, SMTP_VERB_RCPT, SMTP_VERB_BDAT,
						 SMTP_VERB_EHLO };

/* The argument as a full command line through smtp_line_next, split as how says. */
static void pipeline(const struct arg_case *c, enum split how, const char *how_name,
		     const char *argtext, size_t arglen)
{
	static char line[1200];
	size_t len = (size_t)snprintf(line, sizeof(line), "%s %.*s\r\n", kind_verb[c->kind],
				      (int)arglen, argtext);
	struct smtp_line lb;
	size_t pos = 0;
	bool got = false;

	assert_true(len <= SMTP_CMD_LINE_MAX);
	smtp_line_init(&lb);
	while (pos < len && !got) {
		size_t n = next_chunk(how, len - pos);
		if (n > len - pos)
			n = len - pos;
		struct slice ln, arg;
		size_t used;
		enum smtp_parse_status st = smtp_line_next(&lb, (const uint8_t *)line + pos, n,
							   SMTP_CMD_LINE_MAX, &ln, &used);
		pos += used;
		if (st == SMTP_PARSE_AGAIN)
			continue;
		if (st != SMTP_PARSE_DONE) {
			print_error("case '%s' (%s): line status %d\n", c->label, how_name, st);
			fail();
		}
		got = true;
		assert_int_equal(pos, len);
		enum smtp_verb v = smtp_parse_verb(ln, &arg);
		assert_int_equal(v, kind_want_verb[c->kind]);
		struct arg_result r;
		parse_arg(c->kind, arg, &r);
		check_arg(c, how_name, arg, &r);
	}
	assert_true(got);
}

static void test_arg_table(void **state)
{
	static char arg[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(arg_cases) / sizeof(arg_cases[0]); i++) {
		const struct arg_case *c = &arg_cases[i];
		size_t len = expand(c->arg, arg, sizeof(arg));
		/* straight into the parser, from a private allocation so ASan sees overreads */
		char *copy = malloc(len ? len : 1);
		memcpy(copy, arg, len);
		struct slice s = { copy, len };
		struct arg_result r;
		parse_arg(c->kind, s, &r);
		check_arg(c, "direct", s, &r);
		free(copy);

		/* and as a command line: the verb parser trims, the line parser must not refuse */
		if (memchr(arg, '\r', len) || memchr(arg, '\n', len))
			continue;
		pipeline(c, SPLIT_WHOLE, "line whole", arg, len);
		pipeline(c, SPLIT_BYTE, "line bytewise", arg, len);
		for (size_t sd = 0; sd < NSEEDS; sd++) {
			rng_state = seeds[sd];
			pipeline(c, SPLIT_RANDOM, "line random", arg, len);
		}
	}
}

static void test_err_reply(void **state)
{
	(void)state;
	const struct smtp_reply_def *r;

	r = smtp_parse_err_reply(SMTP_ARG_SYNTAX, false);
	assert_int_equal(r->code, 501);
	assert_string_equal(r->enhanced, "5.5.4");
	r = smtp_parse_err_reply(SMTP_ARG_BAD_SENDER, false);
	assert_string_equal(r->enhanced, "5.1.7");
	r = smtp_parse_err_reply(SMTP_ARG_BAD_RCPT, true);
	assert_string_equal(r->enhanced, "5.1.3");
	for (int e = SMTP_ARG_PATH_TOO_LONG; e <= SMTP_ARG_DOMAIN_TOO_LONG; e++) {
		assert_int_equal(smtp_parse_err_reply((enum smtp_arg_err)e, false)->code, 501);
		assert_string_equal(smtp_parse_err_reply((enum smtp_arg_err)e, false)->enhanced,
				    "5.1.7");
		assert_string_equal(smtp_parse_err_reply((enum smtp_arg_err)e, true)->enhanced,
				    "5.1.3");
	}
	r = smtp_parse_err_reply(SMTP_ARG_UNKNOWN_PARAM, true);
	assert_int_equal(r->code, 555);
	assert_string_equal(r->enhanced, "5.5.4");
	r = smtp_parse_err_reply(SMTP_ARG_UTF8_NEEDS_SMTPUTF8, false);
	assert_int_equal(r->code, 553);
	assert_string_equal(r->enhanced, "5.6.7");
	for (int e = SMTP_ARG_SYNTAX; e < SMTP_ARG_COUNT; e++) {
		r = smtp_parse_err_reply((enum smtp_arg_err)e, e & 1);
		assert_true(r->code >= 500 && r->code < 600);
		assert_true(r->text != NULL && r->text[0] != 0);
		assert_true(r->enhanced[0] == '5');
	}
	/* out of range falls back to a syntax error, never NULL */
	r = smtp_parse_err_reply(SMTP_ARG_COUNT, false);
	assert_int_equal(r->code, 501);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line_table),
		cmocka_unit_test(test_line_straddle_over_buf),
		cmocka_unit_test(test_verb_table),
		cmocka_unit_test(test_arg_table),
		cmocka_unit_test(test_err_reply),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
