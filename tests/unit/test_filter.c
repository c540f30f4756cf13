/*
 * test_filter.c - the scanner (dataplane/filter): a small rule set compiled here with the
 * compiler library, loaded, and messages scanned fed whole, one byte at a time and at random
 * splits, which must all give the same verdict; hot reload; refusal of damaged or foreign
 * databases; the X-Spam-Status value; the PCRE2 caps against a message crafted to backtrack.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "filter.h"
#include "rules_compile.h"
#include "rules_parse.h"

static const char test_filter_rules[] =
	"header  SUBJ_FREE    Subject =~ /\\bfree\\b/i\n"
	"score   SUBJ_FREE    2.0\n"
	"header  SUBJ_ENC     Subject =~ /caf\\xc3\\xa9/\n"        /* RFC 2047 decoded to UTF-8 */
	"score   SUBJ_ENC     0.5\n"
	"header  FROM_NUM     From:addr =~ /^\\d+\\@/\n"
	"score   FROM_NUM     1.0\n"
	"header  FROM_NAME    From:name =~ /^Bob Smith$/\n"
	"score   FROM_NAME    0.1\n"
	"header  NO_XM        exists:X-Mailer\n"
	"score   NO_XM        0.3\n"
	"header  DATE_NODIGIT Date !~ /\\d/ [if-unset: none]\n"    /* missing Date: 'none' has no digit */
	"score   DATE_NODIGIT 0.7\n"
	"header  MISSING_MID  Message-Id =~ /^$/\n"               /* hits when absent (empty) */
	"score   MISSING_MID  0.2\n"
	"header  __RCVD_LOOK  Received =~ /(?<!not )from relay/\n" /* lookbehind: prefilter+PCRE2 */
	"header  ALL_XSPAM    ALL =~ /^X-Spam-Flag: YES/m\n"
	"score   ALL_XSPAM    0.4\n"
	"body    BODY_VIAGRA  /v[i1]agra/i\n"
	"score   BODY_VIAGRA  3.0\n"
	"body    BODY_PARA    /^click here now$/\n"              /* one paragraph, collapsed */
	"score   BODY_PARA    1.5\n"
	"body    BODY_REPEAT  /(\\b\\w{5,}\\b) \\1/\n"            /* back-reference: prefilter */
	"score   BODY_REPEAT  0.6\n"
	"rawbody RAW_FONT     /<font size=\"?\\+3/i\n"
	"score   RAW_FONT     0.8\n"
	"uri     URI_IP       m{^https?://\\d+\\.\\d+\\.\\d+\\.\\d+}\n"
	"score   URI_IP       1.2\n"
	"full    FULL_BOUND   /boundary=\"?----=_NextPart/\n"
	"score   FULL_BOUND   0.9\n"
	"body    BODY_EVAL    eval:check_something()\n"
	"meta    META_COMBO   SUBJ_FREE && BODY_VIAGRA\n"
	"score   META_COMBO   1.1\n"
	"meta    META_COUNT   (SUBJ_FREE + BODY_VIAGRA + URI_IP + RAW_FONT) >= 3\n"
	"score   META_COUNT   0.25\n"
	"meta    META_SUB     __RCVD_LOOK && !NO_XM\n"
	"score   META_SUB     -0.5\n"
	"meta    META_EVAL    BODY_EVAL || FULL_BOUND\n"
	"score   META_EVAL    0.05\n"
	/* natively implemented evals and the relay pseudo-headers */
	"header  RELAY_NORDNS X-Spam-Relays-Untrusted =~ /^[^\\]]+ rdns= /\n"
	"score   RELAY_NORDNS 0.11\n"
	"header  RELAY_TRUST  eval:check_all_trusted()\n"
	"score   RELAY_TRUST  0.29\n"
	"header  DATE_FUT     eval:check_for_shifted_date('3', 'undef')\n"
	"score   DATE_FUT     0.13\n"
	"header  SUBJ_CAPS    eval:subject_is_all_caps()\n"
	"score   SUBJ_CAPS    0.17\n"
	"body    HTML_ONLY    eval:check_for_mime_html_only()\n"
	"score   HTML_ONLY    0.19\n"
	"uri     MAILTO_TEXT  /^mailto:unsubscribe\\@/\n"
	"score   MAILTO_TEXT  0.23\n"
	"body    PCRE_ONLY    /\\b(x(?1)?y)\\b/\n"           /* recursion: PCRE2 alone */
	"score   PCRE_ONLY    0.31\n"
	"body    __NONSPACE   /\\S/\n"                          /* counted: tflags multiple */
	"tflags  __NONSPACE   multiple maxhits=3\n"
	"meta    SHORT_BODY   __NONSPACE < 3\n"
	"score   SHORT_BODY   0.37\n"
	/* HTMLEval's tag tests and HeaderEval's envelope/From match */
	"body    __TAG_HTML   eval:html_tag_exists('html')\n"
	"meta    NO_HTML_TAG  HTML_ONLY && !__TAG_HTML\n"
	"score   NO_HTML_TAG  0.41\n"
	"body    TAG_MARQUEE  eval:html_tag_exists('marquee')\n"  /* in comments, script, values */
	"score   TAG_MARQUEE  0.53\n"
	"body    BAL_HEAD     eval:html_tag_balance('head', '!= 0')\n"
	"score   BAL_HEAD     0.43\n"
	"body    BAL_BODY     eval:html_tag_balance('body', '> 0')\n"   /* extra closes stop at 0 */
	"score   BAL_BODY     0.47\n"
	"header  __ENV_MATCH  eval:check_for_matching_env_and_hdr_from()\n"
	"meta    ENV_MATCH    __ENV_MATCH && FROM_NAME\n"
	"score   ENV_MATCH    0.59\n"
	"body    IMG_ONLY_S   eval:html_image_only('0000','0100')\n"
	"score   IMG_ONLY_S   0.61\n"
	"body    HTML_LEN_L   eval:html_range('length', '100', 'inf')\n"
	"score   HTML_LEN_L   0.67\n"
	"header  FORGED_YAHOO eval:check_for_forged_yahoo_received_headers()\n"
	"score   FORGED_YAHOO 0.71\n"
	"header  RELAY_IP     X-Spam-Relays-Untrusted =~ /^\\[ ip=203\\.0\\.113\\.9 rdns= helo=198\\.51\\.100\\.1 /\n"
	"score   RELAY_IP     0.73\n"
	"header  DOTCOM_HELO  eval:check_for_no_rdns_dotcom_helo()\n"
	"score   DOTCOM_HELO  0.79\n"
	"mimeheader MH_KOI8   Content-Type =~ /charset=\"?koi8-r/i\n"   /* the message is a part too */
	"score   MH_KOI8      0.83\n"
	"body    LINK_IMG     eval:html_text_match('anchor', '<img>')\n"
	"score   LINK_IMG     0.89\n"
	"body    CMT          eval:html_text_match('comment', '<!.*?>')\n"
	"score   CMT          0.97\n"
	"body    CMT_SAVED    eval:html_text_match('comment', '<!-- saved from url=\\(\\d{4}\\)')\n"
	"score   CMT_SAVED    1.01\n"
	"header  RELAY_BANG   X-Spam-Relays-Untrusted =~ /^\\[ ip=203\\.0\\.113\\.9 rdns=host\\.example helo=!198\\.51\\.100\\.3! /\n"
	"score   RELAY_BANG   1.03\n"
	"header  __HDR_LC     ALL =~ /\\n(?:x-one|x-two|x-three|x-four):/sm\n"  /* counted per match */
	"tflags  __HDR_LC     multiple maxhits=3\n"
	"meta    MANY_HDR_LC  __HDR_LC > 1\n"
	"score   MANY_HDR_LC  1.07\n"
	"meta    LC_PAST_MAX  __HDR_LC > 3\n"                        /* maxhits caps the count */
	"score   LC_PAST_MAX  1.09\n"
	"body    __NONEMPTY   /\\S/\n"                         /* the Subject does not count */
	"tflags  __NONEMPTY   nosubject\n"
	"meta    NO_BODY_TEXT !__NONEMPTY\n"
	"score   NO_BODY_TEXT 1.13\n"
	/* prefilter body rules, confirmed on the paragraph (line) holding a candidate, alone */
	"body    LINE_END     /\\bpassword(?=\\s)/\n"        /* at a paragraph's end: no match */
	"score   LINE_END     1.17\n"
	"body    LINE_LATER   /(?<!x)second line/\n"         /* a candidate past the first line */
	"score   LINE_LATER   1.19\n";

static const char test_filter_rules2[] =
	"body    ONLY_V2      /viagra/i\n"
	"score   ONLY_V2      9.0\n";

static char test_filter_dir[64], test_filter_dir2[64];

static int test_filter_compile(const char *text, char *dir)
{
	struct rules_set *rs;
	struct rules_compile_opts o = { 0 };
	struct rules_compile_stats st;
	char err[256] = "";
	int rc;

	strcpy(dir, "/tmp/test_filter_XXXXXX");
	if (!mkdtemp(dir))
		return -errno;
	if (rules_parse_new(&rs) < 0)
		return -ENOMEM;
	rc = rules_parse_text(rs, "t.cf", text, strlen(text));
	if (rc == 0)
		rc = rules_parse_finish(rs);
	if (rc == 0 && rs->st.errors)
		rc = -EINVAL;
	if (rc == 0)
		rc = rules_compile_dir(rs, dir, &o, &st, err, sizeof(err));
	if (rc < 0)
		fprintf(stderr, "compile: %s\n", err);
	rules_parse_free(&rs);
	return rc;
}

static void test_filter_rmdir(const char *dir)
{
	static const char *const files[] = RULES_CLASS_FILES;
	char p[256];

	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[c]);
		unlink(p);
	}
	snprintf(p, sizeof(p), "%s/%s", dir, RULES_META_FILE);
	unlink(p);
	rmdir(dir);
}

static int test_filter_setup(void **state)
{
	if (test_filter_compile(test_filter_rules, test_filter_dir) < 0 ||
	    test_filter_compile(test_filter_rules2, test_filter_dir2) < 0)
		return -1;
	return 0;
}

static int test_filter_teardown(void **state)
{
	test_filter_rmdir(test_filter_dir);
	test_filter_rmdir(test_filter_dir2);
	return 0;
}

/* LF -> CR LF, as the session stores messages. */
static char *test_filter_crlf(const char *s, size_t *len_r)
{
	char *o = malloc(strlen(s) * 2 + 1);
	size_t n = 0;

	for (; *s; s++) {
		if (*s == '\n')
			o[n++] = '\r';
		o[n++] = *s;
	}
	o[n] = '\0';
	*len_r = n;
	return o;
}

enum test_filter_split { TF_WHOLE, TF_BYTES, TF_RANDOM };

static void test_filter_scan(struct filter_shard *fs, const char *msg, enum test_filter_split how,
			     unsigned seed, struct filter_verdict *v)
{
	struct filter_msg *fm = NULL;
	size_t len, off = 0;
	char *m = test_filter_crlf(msg, &len);

	assert_int_equal(filter_msg_begin(fs, &fm), 0);
	srand(seed);
	while (off < len) {
		size_t n = how == TF_WHOLE ? len : how == TF_BYTES ? 1 : 1 + (size_t)rand() % 97;

		if (n > len - off)
			n = len - off;
		filter_msg_feed(fm, (const uint8_t *)m + off, n);
		off += n;
	}
	filter_msg_end(fm, v);
	filter_msg_free(&fm);
	assert_null(fm);
	free(m);
}

struct test_filter_case {
	const char *label;
	const char *msg;
	const char *want_hits;
	int32_t     want_milli;
};

static const struct test_filter_case test_filter_cases[] = {
	{
		"spammy html",
		"Received: from relay.example (relay [192.0.2.1])\n"
		"From: 12345@example.com\n"
		"To: you@example.org\n"
		"Subject: FREE stuff\n"
		"MIME-Version: 1.0\n"
		"Content-Type: multipart/alternative; boundary=\"----=_NextPart_000\"\n"
		"\n"
		"------=_NextPart_000\n"
		"Content-Type: text/plain\n"
		"\n"
		"Buy V1AGRA today.\n"
		"\n"
		"click   here\n"
		"now\n"
		"\n"
		"------=_NextPart_000\n"
		"Content-Type: text/html\n"
		"\n"
		"<html><font size=\"+3\">Buy</font> <a href=\"http://10.1.2.3/x\">now</a></html>\n"
		"------=_NextPart_000--\n",
		"BODY_PARA,BODY_VIAGRA,DATE_NODIGIT,FROM_NUM,FULL_BOUND,META_COMBO,META_COUNT,META_EVAL,"
		"META_SUB,MISSING_MID,RAW_FONT,SUBJ_FREE,URI_IP",
		/* 1.5+3+0.7+1+0.9+1.1+0.25+0.05-0.5+0.2+0.8+2+1.2 */
		12200,
	},
	{
		"plain ham",
		"From: Bob Smith <bob@example.com>\n"
		"To: alice@example.org\n"
		"Subject: =?UTF-8?Q?lunch_at_the_caf=C3=A9?=\n"
		"Date: Mon, 1 Jul 2002 10:00:00 +0000\n"
		"Message-Id: <1@example.com>\n"
		"X-Mailer: mutt\n"
		"X-Spam-Flag: YES\n"
		"\n"
		"Shall we meet at noon? Bring the report report, please. xxxyyy\n",
		"ALL_XSPAM,BODY_REPEAT,FROM_NAME,NO_XM,PCRE_ONLY,SUBJ_ENC",
		400 + 600 + 100 + 300 + 310 + 500,
	},
	{
		"no header section at all",
		"\n"
		"just a body with viagra\n",
		"BODY_VIAGRA,DATE_NODIGIT,MISSING_MID",
		3000 + 700 + 200,
	},
	{
		"relays, dates, capitals, HTML only, address in text",
		"Received: from localhost (localhost [127.0.0.1]) by mx.example (Postfix) with ESMTP id 1;"
		" Mon, 1 Jul 2002 10:00:00 +0000\n"
		"Received: from helo.example ([198.51.100.9]) by mx.example with SMTP;\n"
		"\tMon, 1 Jul 2002 10:00:00 +0000\n"
		"Date: Mon, 1 Jul 2002 16:30:00 +0000\n"
		"Subject: BUY CHEAP STUFF NOW\n"
		"Content-Type: text/html\n"
		"\n"
		"<html><body>write to unsubscribe@lists.example.com today</body></html>\n",
		/* "from helo.example ([198.51.100.9]) by mx.example with SMTP": Received.pm reads
		 * the name as the rDNS too */
		"DATE_FUT,HTML_ONLY,MAILTO_TEXT,MISSING_MID,SUBJ_CAPS",
		130 + 190 + 230 + 200 + 170,
	},
	{
		"all relays trusted",
		"Received: from localhost (localhost [127.0.0.1]) by mx.example (Postfix) with ESMTP id 1;"
		" Mon, 1 Jul 2002 10:00:00 +0000\n"
		"Subject: hello there\n"
		"\n"
		"hi\n",
		"DATE_NODIGIT,MISSING_MID,RELAY_TRUST",
		700 + 200 + 290,
	},
	{
		"HTML without an html tag",
		"Content-Type: text/html\n"
		"\n"
		"<p>hello <b>there</b> world</p>\n",
		"DATE_NODIGIT,HTML_ONLY,MISSING_MID,NO_HTML_TAG",
		700 + 190 + 200 + 410,
	},
	{
		"HTML tags hidden in comments, script and attribute values; unbalanced head",
		"Content-Type: text/html\n"
		"\n"
		"<!-- <marquee> --><!DOCTYPE html><HTML><Head><SCRIPT>if (a<b) x='<marquee>'</script>\n"
		"<body><p title=\"x><marquee>\">hello world</p></body></body></html>\n",
		"BAL_HEAD,CMT,DATE_NODIGIT,HTML_LEN_L,HTML_ONLY,MISSING_MID",
		430 + 970 + 700 + 670 + 190 + 200,
	},
	{
		"short HTML with an image",
		"Content-Type: text/html\n"
		"\n"
		"<html><IMG src=\"cid:part1\"/></html>\n",
		"DATE_NODIGIT,HTML_ONLY,IMG_ONLY_S,MISSING_MID,NO_BODY_TEXT,SHORT_BODY",
		700 + 190 + 610 + 200 + 1130 + 370,
	},
	{
		"envelope sender matches From",
		"Return-Path: <Bob@Example.com>\n"
		"From: Bob Smith <bob@example.com>\n"
		"Date: Mon, 1 Jul 2002 10:00:00 +0000\n"
		"Message-Id: <2@example.com>\n"
		"\n"
		"see you at lunch\n",
		"ENV_MATCH,FROM_NAME",
		590 + 100,
	},
	{
		"yahoo.com sender through a stranger's relay",
		"Received: from x.example.net ([203.0.113.7]) by mx.example.org with SMTP id 1;\n"
		"\tMon, 1 Jul 2002 10:00:00 +0000\n"
		"From: Bob Smith <bob@yahoo.com>\n"
		"Date: Mon, 1 Jul 2002 10:00:00 +0000\n"
		"Message-Id: <3@example.com>\n"
		"\n"
		"see you at lunch\n",
		"FORGED_YAHOO,FROM_NAME,RELAY_NORDNS",
		710 + 100 + 110,
	},
	{
		"yahoo.com sender through Yahoo's web mail",
		"Received: from x.example.net ([203.0.113.7]) by mx.example.org with SMTP id 1;\n"
		"\tMon, 1 Jul 2002 10:00:00 +0000\n"
		"Received: from [198.51.100.2] by web12.mail.yahoo.com via HTTP;\n"
		"\tMon, 1 Jul 2002 09:59:00 +0000\n"
		"From: Bob Smith <bob@yahoo.com>\n"
		"Date: Mon, 1 Jul 2002 10:00:00 +0000\n"
		"Message-Id: <4@example.com>\n"
		"\n"
		"see you at lunch\n",
		"FROM_NAME,RELAY_NORDNS",
		100 + 110,
	},
	{
		"Postfix: the address HELO is not the client's address",
		"Received: from 198.51.100.1 (unknown [203.0.113.9]) by mx.example.org (Postfix) with SMTP"
		" id 1; Mon, 1 Jul 2002 10:00:00 +0000\n"
		"Subject: hello there\n"
		"\n"
		"hi\n",
		"DATE_NODIGIT,MISSING_MID,RELAY_IP,RELAY_NORDNS",
		700 + 200 + 730 + 110,
	},
	{
		"dot-com HELO, and the MTA found no rDNS",
		"Received: from hotmail.com (unknown [203.0.113.5]) by mx.example.org (Postfix) with SMTP"
		" id 1; Mon, 1 Jul 2002 10:00:00 +0000\n"
		"Subject: hello there\n"
		"\n"
		"hi\n",
		"DATE_NODIGIT,DOTCOM_HELO,MISSING_MID,RELAY_NORDNS",
		700 + 790 + 200 + 110,
	},
	{
		"dot-com HELO through qmail, which does not look names up",
		"Received: from unknown (HELO hotmail.com) (203.0.113.5) by mx.example.org with SMTP;"
		" Mon, 1 Jul 2002 10:00:00 +0000\n"
		"Subject: hello there\n"
		"\n"
		"hi\n",
		"DATE_NODIGIT,MISSING_MID,RELAY_NORDNS",
		700 + 200 + 110,
	},
	{
		"web mail submission is an authenticated, trusted hand-over",
		"Received: from 198.51.100.7 (SquirrelMail authenticated user bob) by mail.example.org"
		" with HTTP; Mon, 1 Jul 2002 10:00:00 +0000\n"
		"Subject: hello there\n"
		"\n"
		"hi\n",
		"DATE_NODIGIT,MISSING_MID,RELAY_TRUST",
		700 + 200 + 290,
	},
	{
		"mimeheader sees a single-part message's own header",
		"Subject: hello there\n"
		"Content-Type: text/plain; charset=KOI8-R\n"
		"\n"
		"hi\n",
		"DATE_NODIGIT,MH_KOI8,MISSING_MID",
		700 + 830 + 200,
	},
	{
		"an image link and a saved page's comment; a comment whose first line has no '>'",
		"Content-Type: text/html\n"
		"\n"
		"<!-- saved from url=(0022)http://x.example/ -->\n"
		"<html><a href=\"http://x.example/\"><img src=\"cid:1\"></a></html>\n",
		"CMT,CMT_SAVED,DATE_NODIGIT,HTML_LEN_L,HTML_ONLY,LINK_IMG,MISSING_MID,NO_BODY_TEXT,SHORT_BODY",
		970 + 1010 + 700 + 670 + 190 + 890 + 200 + 1130 + 370,
	},
	{
		"a multi-line comment, an image outside the link",
		"Content-Type: text/html\n"
		"\n"
		"<html><!--\n"
		"x > y -->\n"
		"<a href=\"http://x.example/\">hello there</a><img src=\"cid:1\"></html>\n",
		"DATE_NODIGIT,HTML_ONLY,IMG_ONLY_S,MISSING_MID",
		700 + 190 + 610 + 200,
	},
	{
		"Sendmail: a bracketed address HELO, the client's address in the parentheses",
		"Received: from [198.51.100.3] (host.example [203.0.113.9]) by mx.example.org"
		" (8.11.6/8.11.6) with ESMTP id x; Mon, 1 Jul 2002 10:00:00 +0000\n"
		"Subject: hello there\n"
		"\n"
		"hi\n",
		"DATE_NODIGIT,MISSING_MID,RELAY_BANG",
		700 + 200 + 1030,
	},
	{
		"a header rule with tflags multiple counts its matches, up to maxhits",
		"Subject: hi\n"
		"x-one: 1\n"
		"x-two: 2\n"
		"x-three: 3\n"
		"x-four: 4\n"
		"\n"
		"some body text\n",
		"DATE_NODIGIT,MANY_HDR_LC,MISSING_MID",
		700 + 1070 + 200,
	},
	{
		"one match of a header rule with tflags multiple",
		"Subject: hi\n"
		"x-one: 1\n"
		"\n"
		"some body text\n",
		"DATE_NODIGIT,MISSING_MID",
		700 + 200,
	},
	{
		"a Subject and no body: tflags nosubject skips the Subject line",
		"Subject: only a subject here\n"
		"Message-Id: <a@b>\n"
		"Date: Mon, 1 Jan 2024 00:00:00 +0000\n"
		"\n"
		" \n",
		"NO_BODY_TEXT",                 /* __NONSPACE counts the Subject's characters */
		1130,
	},
	{
		"a paragraph is matched alone",
		"Subject: hello\n"
		"Message-Id: <2@example.com>\n"
		"Date: Mon, 1 Jul 2002 10:00:00 +0000\n"
		"\n"
		"please reset the password\n"
		"\n"
		"this is the second line\n"
		"\n"
		"your password now\n",
		"LINE_END,LINE_LATER",
		1170 + 1190,
	},
	{
		"lookahead stops at the paragraph's end",
		"Subject: hello\n"
		"Message-Id: <3@example.com>\n"
		"Date: Mon, 1 Jul 2002 10:00:00 +0000\n"
		"\n"
		"please reset the password\n"
		"\n"
		"next one\n",
		"",
		0,
	},
	{
		"two characters of text",
		"Subject:\n"
		"\n"
		"a b\n",
		"DATE_NODIGIT,MISSING_MID,SHORT_BODY",
		700 + 200 + 370,
	},
};

static void test_filter_cases_all(void **state)
{
	struct filter_db *db = NULL;
	struct filter_shard *fs = NULL;
	char err[256];

	assert_int_equal(filter_db_load(test_filter_dir, &db, err, sizeof(err)), 0);
	assert_int_equal(filter_shard_new(&fs, db), 0);
	for (size_t i = 0; i < sizeof(test_filter_cases) / sizeof(test_filter_cases[0]); i++) {
		const struct test_filter_case *c = &test_filter_cases[i];
		struct filter_verdict whole, v;

		test_filter_scan(fs, c->msg, TF_WHOLE, 0, &whole);
		if (strcmp(whole.hits, c->want_hits) != 0 || whole.score_milli != c->want_milli)
			fail_msg("%s: hits %s score %d, want %s %d", c->label, whole.hits,
				 whole.score_milli, c->want_hits, c->want_milli);
		test_filter_scan(fs, c->msg, TF_BYTES, 0, &v);
		if (strcmp(v.hits, whole.hits) != 0 || v.score_milli != whole.score_milli)
			fail_msg("%s: byte at a time gave %s %d", c->label, v.hits, v.score_milli);
		for (unsigned seed = 1; seed <= 30; seed++) {
			test_filter_scan(fs, c->msg, TF_RANDOM, seed, &v);
			if (strcmp(v.hits, whole.hits) != 0 || v.score_milli != whole.score_milli)
				fail_msg("%s: split seed %u gave %s %d", c->label, seed, v.hits, v.score_milli);
		}
	}
	filter_shard_free(&fs);
	assert_null(fs);
	filter_db_unref(&db);
	assert_null(db);
}

static void test_filter_reload(void **state)
{
	struct filter_db *db1 = NULL, *db2 = NULL;
	struct filter_shard *fs = NULL;
	struct filter_msg *old = NULL, *new = NULL;
	struct filter_verdict v;
	char err[256];
	static const char msg[] = "Subject: hi\r\n\r\nviagra\r\n";

	assert_int_equal(filter_db_load(test_filter_dir, &db1, err, sizeof(err)), 0);
	assert_int_equal(filter_db_load(test_filter_dir2, &db2, err, sizeof(err)), 0);
	assert_int_not_equal(filter_db_hash(db1), filter_db_hash(db2));
	assert_int_equal(filter_shard_new(&fs, db1), 0);
	assert_int_equal(filter_msg_begin(fs, &old), 0);
	filter_msg_feed(old, (const uint8_t *)msg, 10);
	/* the agent swaps the rule set; the caller's reference goes away at once */
	assert_int_equal(filter_shard_set_db(fs, db2), 0);
	filter_db_unref(&db1);
	filter_db_unref(&db2);
	assert_int_equal(filter_msg_begin(fs, &new), 0);
	filter_msg_feed(old, (const uint8_t *)msg + 10, sizeof(msg) - 1 - 10);
	filter_msg_feed(new, (const uint8_t *)msg, sizeof(msg) - 1);
	filter_msg_end(old, &v);
	assert_true(strstr(v.hits, "BODY_VIAGRA") != NULL);
	assert_null(strstr(v.hits, "ONLY_V2"));
	filter_msg_free(&old);
	filter_msg_end(new, &v);
	assert_string_equal(v.hits, "ONLY_V2");
	assert_int_equal(v.score_milli, 9000);
	filter_msg_free(&new);
	filter_shard_free(&fs);
}

static void test_filter_copy_file(const char *from, const char *to, long flip_at, const char *patch,
				  size_t patch_at)
{
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	int c;
	long i = 0;

	assert_non_null(in);
	assert_non_null(out);
	while ((c = fgetc(in)) != EOF) {
		if (i == flip_at)
			c ^= 0xff;
		if (patch && (size_t)i >= patch_at && (size_t)i < patch_at + strlen(patch))
			c = patch[i - (long)patch_at];
		fputc(c, out);
		i++;
	}
	fclose(in);
	fclose(out);
}

/* A copy of the rule set with one file damaged must be refused whole. */
static void test_filter_refuse(void **state)
{
	static const char *const files[] = RULES_CLASS_FILES;
	static const struct { const char *file; long flip; const char *patch; size_t at; } cases[] = {
		{ "rules.meta", 0, NULL, 0 },                          /* magic */
		{ "body.hsdb", 12, NULL, 0 },                          /* class */
		{ "header.hsdb", -1, "4.9.9", 16 },                    /* Hyperscan version */
		{ "uri.hsdb", 16 + 80, NULL, 0 },                      /* platform (tune) */
		{ "full.hsdb", 16 + 80 + 16, NULL, 0 },                /* rule-set hash */
		{ "rules.meta", -2, NULL, 0 },                         /* truncated (below) */
	};

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		char dir[] = "/tmp/test_filter_bad_XXXXXX", from[256], to[256], err[256] = "";
		struct filter_db *db = NULL;

		assert_non_null(mkdtemp(dir));
		for (unsigned c = 0; c <= RULES_CLASS_NSCAN; c++) {
			const char *f = c < RULES_CLASS_NSCAN ? files[c] : RULES_META_FILE;

			snprintf(from, sizeof(from), "%s/%s", test_filter_dir, f);
			snprintf(to, sizeof(to), "%s/%s", dir, f);
			if (strcmp(f, cases[k].file) == 0)
				test_filter_copy_file(from, to, cases[k].flip, cases[k].patch, cases[k].at);
			else
				test_filter_copy_file(from, to, -1, NULL, 0);
			if (strcmp(f, cases[k].file) == 0 && cases[k].flip == -2) {
				struct stat st;

				assert_int_equal(stat(to, &st), 0);
				assert_int_equal(truncate(to, st.st_size - 3), 0);
			}
		}
		if (filter_db_load(dir, &db, err, sizeof(err)) != -EINVAL)
			fail_msg("case %zu (%s) accepted", k, cases[k].file);
		assert_null(db);
		assert_true(err[0] != '\0');
		test_filter_rmdir(dir);
	}
	{
		struct filter_db *db = NULL;
		char err[256];

		assert_int_equal(filter_db_load("/nonexistent/sluice", &db, err, sizeof(err)), -ENOENT);
	}
}

static void test_filter_status(void **state)
{
	struct filter_verdict v = { .score_milli = 7349, .required_milli = 5000, .nhits = 2 };
	char buf[256];

	strcpy(v.hits, "A,B");
	filter_verdict_status(&v, buf, sizeof(buf));
	assert_string_equal(buf, "Yes, score=7.3 required=5.0 tests=A,B");
	v.score_milli = -1250;
	v.nhits = 0;
	v.hits[0] = '\0';
	filter_verdict_status(&v, buf, sizeof(buf));
	assert_string_equal(buf, "No, score=-1.3 required=5.0 tests=none");
}

/* Many hits: the list is cut with "..." and stays within the field. */
static void test_filter_many_hits(void **state)
{
	char *text = malloc(200 * 80), dir[64];
	size_t n = 0;
	struct filter_db *db = NULL;
	struct filter_shard *fs = NULL;
	struct filter_verdict v;
	char err[256];

	for (int i = 0; i < 200; i++)
		n += (size_t)sprintf(text + n, "body A_LONG_RULE_NAME_NUMBER_%03d /x/\n", i);
	assert_int_equal(test_filter_compile(text, dir), 0);
	assert_int_equal(filter_db_load(dir, &db, err, sizeof(err)), 0);
	assert_int_equal(filter_shard_new(&fs, db), 0);
	test_filter_scan(fs, "Subject: x\n\nx\n", TF_WHOLE, 0, &v);
	assert_int_equal(v.nhits, 200);
	assert_int_equal(v.score_milli, 200000);
	assert_true(strlen(v.hits) < sizeof(v.hits));
	assert_string_equal(v.hits + strlen(v.hits) - 4, ",...");
	filter_shard_free(&fs);
	filter_db_unref(&db);
	test_filter_rmdir(dir);
	free(text);
}

/* Bad input: a body crafted against a backtracking confirmation (the Hyperscan prefilter of
 * (x+x+)+y fires, PCRE2 then backtracks exponentially on the lookahead) is stopped by the
 * shard's cap. It costs a bounded multiple of a normal message in PCRE2 runs (each run itself
 * bounded by the match limit), the cap counter moves, and the rule counts as no match. */
static void test_filter_pcre_cap(void **state)
{
	static const char rules[] =
		"body   T_BACKTRACK  /(?:x+x+)+y(?=z)/\n"
		"score  T_BACKTRACK  1.0\n"
		"header T_HDR_BT     Subject =~ /(?:a+a+)+b(?=c)/\n"
		"score  T_HDR_BT     1.0\n"
		"body   T_PLAIN      /\\bhello\\b/\n"
		"score  T_PLAIN      0.1\n";
	char dir[64], err[256], crafted[4096];
	struct filter_db *db = NULL;
	struct filter_shard *fs = NULL;
	struct filter_verdict v;
	uint64_t c0, k0, c1, k1, c2, k2, c3, k3;
	size_t n;

	assert_int_equal(test_filter_compile(rules, dir), 0);
	assert_int_equal(filter_db_load(dir, &db, err, sizeof(err)), 0);
	assert_int_equal(filter_shard_new(&fs, db), 0);

	/* a normal message: the confirmations run and match, nothing is capped */
	filter_shard_pcre_stats(fs, &c0, &k0);
	test_filter_scan(fs, "Subject: aabc\n\nhello xxyz\n", TF_WHOLE, 0, &v);
	filter_shard_pcre_stats(fs, &c1, &k1);
	assert_non_null(strstr(v.hits, "T_BACKTRACK"));
	assert_non_null(strstr(v.hits, "T_HDR_BT"));
	assert_int_equal(v.pcre_capped, 0);
	assert_string_equal(v.capped_rule, "");
	assert_true(c1 > c0);
	assert_true(k1 == k0);

	/* crafted: 60 x then y, no z; the same in the Subject with a/b */
	n = (size_t)snprintf(crafted, sizeof(crafted), "Subject: ");
	memset(crafted + n, 'a', 60);
	n += 60;
	n += (size_t)snprintf(crafted + n, sizeof(crafted) - n, "b!\n\nhello ");
	for (int line = 0; line < 20; line++) {
		memset(crafted + n, 'x', 60);
		n += 60;
		n += (size_t)snprintf(crafted + n, sizeof(crafted) - n, "y!\n");
	}
	crafted[n] = '\0';
	for (int how = TF_WHOLE; how <= TF_RANDOM; how++) {
		filter_shard_pcre_stats(fs, &c2, &k2);
		test_filter_scan(fs, crafted, (enum test_filter_split)how, 7, &v);
		filter_shard_pcre_stats(fs, &c3, &k3);
		assert_string_equal(v.hits, "T_PLAIN");   /* capped: no match, not a hit */
		assert_int_equal(v.pcre_capped, 2);        /* one per rule: no retry after a cap */
		assert_true(strcmp(v.capped_rule, "T_BACKTRACK") == 0 ||
			    strcmp(v.capped_rule, "T_HDR_BT") == 0);
		assert_int_equal(k3 - k2, 2);
		/* bounded: at most 20x the normal message's PCRE2 runs */
		assert_true(c3 - c2 <= 20 * (c1 - c0));
	}
	filter_shard_free(&fs);
	filter_db_unref(&db);
	test_filter_rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_filter_cases_all),
		cmocka_unit_test(test_filter_reload),
		cmocka_unit_test(test_filter_refuse),
		cmocka_unit_test(test_filter_status),
		cmocka_unit_test(test_filter_many_hits),
		cmocka_unit_test(test_filter_pcre_cap),
	};

	return cmocka_run_group_tests(tests, test_filter_setup, test_filter_teardown);
}
