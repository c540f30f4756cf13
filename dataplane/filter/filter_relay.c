/*
 * filter_relay.c - the relays a message came through, from its Received fields, in the form of
 * SpamAssassin's X-Spam-Relays-Trusted / -Untrusted pseudo-headers, which many of its rules
 * (rDNS, HELO checks) read:
 *   [ ip=192.0.2.1 rdns=mx.example.net helo=mx.example.net by=mail.example.org ident= envfrom=
 *     intl=0 id= auth= msa=0 ] [ ... ]
 * Relays are listed newest first. Trust follows SpamAssassin's inference when no
 * trusted_networks are configured (Conf.pm, trusted_networks): a relay from a loopback or
 * private (RFC 1918, link-local) address, or one handed over authenticated (" with ESMTPA",
 * web mail " with HTTP" ...), is trusted while every newer one was; the first other relay and
 * all older ones are untrusted. fetchmail's pick-up lines are not relays; one met while every
 * relay so far was trusted restarts the trusted list (Received.pm's mail fetcher marker). The
 * address in an X-Originating-IP field (and the other default originating_ip_headers) is one
 * more relay after the Received ones. Each relay's "envfrom=" is the envelope sender its
 * Received field recorded, which SpamAssassin takes first for EnvelopeFrom.
 *
 * XXX the parser knows the common forms (Sendmail, Postfix, qmail, Exim, Exchange), not all of
 * Mail::SpamAssassin::Message::Metadata::Received's; a field it cannot read is skipped, as
 * SpamAssassin skips what it cannot parse. Shard thread; no allocation.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "filter_types.h"

#define FILTER_RELAY_TOKEN 128u

/* A dotted quad starting at p (exactly), its length, or 0. */
static size_t filter_relay_ipv4(const char *p, const char *e, unsigned char ip[4])
{
	const char *s = p;

	for (int k = 0; k < 4; k++) {
		unsigned v = 0, nd = 0;

		while (p < e && isdigit((unsigned char)*p) && nd < 4)
			v = v * 10 + (unsigned)(*p++ - '0'), nd++;
		if (!nd || nd > 3 || v > 255)
			return 0;
		ip[k] = (unsigned char)v;
		if (k < 3) {
			if (p >= e || *p != '.')
				return 0;
			p++;
		}
	}
	if (p < e && (isdigit((unsigned char)*p) || *p == '.'))
		return 0;
	return (size_t)(p - s);
}

static bool filter_relay_private(const unsigned char ip[4])
{
	return ip[0] == 127 || ip[0] == 10 || (ip[0] == 172 && (ip[1] & 0xf0) == 16) ||
	       (ip[0] == 192 && ip[1] == 168) || (ip[0] == 169 && ip[1] == 254) || ip[0] == 0;
}

/* The first lit in [p, e), ASCII case ignored. Only a byte equal to lit's first (either case)
 * is compared further: memchr finds it when it has no case. */
static const char *filter_relay_find(const char *p, const char *e, const char *lit)
{
	size_t n = strlen(lit);
	unsigned char f = (unsigned char)lit[0], fl = (unsigned char)tolower(f);
	bool alpha = fl != (unsigned char)toupper(f);

	if (!n)
		return p;
	while (p + n <= e) {
		if (!alpha) {
			p = memchr(p, f, (size_t)(e - p) - n + 1);
			if (!p)
				return NULL;
		} else if (((unsigned char)*p | 0x20) != fl) {
			p++;
			continue;
		}
		if (strncasecmp(p + 1, lit + 1, n - 1) == 0)
			return p;
		p++;
	}
	return NULL;
}

/* Copies the token at p (up to a blank, parenthesis or bracket) into out. */
static void filter_relay_token(const char *p, const char *e, char *out, size_t outlen)
{
	size_t n = 0;

	while (p < e && !isspace((unsigned char)*p) && *p != '(' && *p != ')' && *p != '[' &&
	       *p != ']' && *p != ';' && n + 1 < outlen)
		out[n++] = *p++;
	out[n] = '\0';
}

/* The word at p (up to a blank) as Received.pm keeps it: the characters it strips ("[1.2.3.4]"
 * is a legitimate HELO) flagged as '!'. */
static void filter_relay_word(const char *p, const char *e, char *out, size_t outlen)
{
	size_t n = 0;

	while (p < e && !isspace((unsigned char)*p) && n + 1 < outlen) {
		char c = *p++;

		out[n++] = strchr("#[]()<>|", c) && c ? '!' : c;
	}
	out[n] = '\0';
}

struct filter_relay {
	unsigned char ip[4];
	char rdns[FILTER_RELAY_TOKEN], helo[FILTER_RELAY_TOKEN], by[FILTER_RELAY_TOKEN];
	char auth[16];
	char envfrom[FILTER_RELAY_TOKEN];   /* "(envelope-from <a@b>)", "return-path: a@b" */
	bool looked;      /* the MTA's form shows it looks names up ("(rdns [ip])"), unlike
			   * qmail's "from unknown (ip)" */
};

/* Received.pm's authenticated hand-over: " with ESMTPA" (RFC 3848's ESMTPSA, LMTPA, LMTPSA,
 * UTF8SMTPA ...), ASMTP, or HTTP, HTTPS, HTTPU (web mail). The protocol into out, or "". */
static void filter_relay_auth(const char *v, const char *e, char *out, size_t outlen)
{
	static const char *const protos[] = { "ESMTPA", "ESMTPSA", "LMTPA", "LMTPSA", "UTF8SMTPA",
					      "UTF8SMTPSA", "UTF8LMTPA", "UTF8LMTPSA", "ASMTP", "HTTP",
					      "HTTPS", "HTTPU" };
	const char *p = v;

	out[0] = '\0';
	if (!filter_relay_find(v, e, " by "))
		return;
	while ((p = filter_relay_find(p, e, " with ")) != NULL) {
		const char *w = p + 6, *we = w;

		while (we < e && *we != ' ' && *we != ';')
			we++;
		for (size_t i = 0; i < sizeof(protos) / sizeof(protos[0]); i++)
			if (strlen(protos[i]) == (size_t)(we - w) && strncasecmp(w, protos[i], (size_t)(we - w)) == 0 &&
			    (size_t)(we - w) < outlen) {
				memcpy(out, w, (size_t)(we - w));
				out[we - w] = '\0';
				return;
			}
		p = w;
	}
}

/* Received.pm's envelope sender of a hand-over: /(?:return-path:? |envelope-(?:sender|from)[ =])
 * (\S+)\b/i after "from ", the word up to its last word character, without the '<' and '>'
 * around it, the characters Received.pm strips made '!'. */
static void filter_relay_envfrom(const char *from, const char *e, char *out, size_t outlen)
{
	static const char *const keys[] = { "return-path: ", "return-path ", "envelope-sender ",
					    "envelope-sender=", "envelope-from ", "envelope-from=" };
	const char *best = NULL, *w = from, *we;
	size_t n = 0;

	out[0] = '\0';
	for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
		const char *p = filter_relay_find(from, e, keys[k]);

		if (p && (!best || p < best)) {
			best = p;
			w = p + strlen(keys[k]);
		}
	}
	if (!best)
		return;
	we = w;
	while (we < e && !isspace((unsigned char)*we))
		we++;
	while (we > w && !(isalnum((unsigned char)we[-1]) || we[-1] == '_'))
		we--;           /* \b: back to the last word character */
	while (w < we && (*w == '<' || isspace((unsigned char)*w)))
		w++;
	for (; w < we && n + 1 < outlen; w++)
		out[n++] = strchr("#[]()<>|", *w) ? '!' : *w;
	out[n] = '\0';
}

/* Received.pm's qmail line: " with (.* )?(SMTP|QMQP)(?! id )" after "by". */
static bool filter_relay_qmail_proto(const char *by, const char *e)
{
	const char *w = filter_relay_find(by, e, " with ");

	if (!w)
		return false;
	for (const char *p = w + 5; p + 5 <= e; p++)
		if (p[0] == ' ' && (memcmp(p + 1, "SMTP", 4) == 0 || memcmp(p + 1, "QMQP", 4) == 0) &&
		    !(e - (p + 5) >= 4 && memcmp(p + 5, " id ", 4) == 0))
			return true;
	return false;
}

/* One Received field; false when it is not a relay we can read. */
static bool filter_relay_parse(const char *raw, size_t rn, struct filter_relay *r)
{
	char buf[1024];
	const char *v = buf, *e, *from, *by, *p, *ipp = NULL;
	size_t il = 0, n = 0;

	/* white space runs are one space, as SpamAssassin's Received parser sees them */
	for (size_t i = 0; i < rn && n < sizeof(buf); i++) {
		bool ws = isspace((unsigned char)raw[i]);

		if (ws && (n == 0 || buf[n - 1] == ' '))
			continue;
		buf[n++] = ws ? ' ' : raw[i];
	}
	e = v + n;
	memset(r, 0, sizeof(*r));
	if (filter_relay_find(v, e, "(fetchmail-"))
		return false;
	from = filter_relay_find(v, e, "from ");
	if (!from)
		return false;
	from += 5;
	/* the "by" that ends the from-part, outside parentheses */
	by = NULL;
	{
		int depth = 0;

		for (p = from; p + 4 <= e; p++) {
			if (*p == '(')
				depth++;
			else if (*p == ')' && depth)
				depth--;
			else if (!depth && (p[0] == ' ' || p[0] == '\t') && (p[1] | 0x20) == 'b' &&
				 strncasecmp(p + 1, "by ", 3) == 0) {
				by = p + 1;
				break;
			}
		}
	}
	if (by)
		filter_relay_token(by + 3, e, r->by, sizeof(r->by));
	else
		by = e;
	/* the client's address: the first bracketed dotted quad inside parentheses in the
	 * from-part ("from HELO (RDNS [IP])": a HELO may be an address, bracketed or not), else
	 * the first bracketed one, else the first parenthesized one (qmail's "(HELO x) (IP)"),
	 * else the first one at all */
	for (int pass = 0; pass < 4 && !ipp; pass++) {
		int depth = 0;

		for (p = from; p < by; p++) {
			depth += *p == '(' ? 1 : *p == ')' && depth ? -1 : 0;
			if (isdigit((unsigned char)*p) && (p == from || !isalnum((unsigned char)p[-1])) &&
			    (pass == 3 || (p > from && p[-1] == (pass < 2 ? '[' : '('))) &&
			    (pass != 0 || depth > 0) && (il = filter_relay_ipv4(p, by, r->ip)) != 0) {
				ipp = p;
				r->looked = pass == 0;
				break;
			}
		}
	}
	if (!ipp)
		return false;
	filter_relay_auth(v, e, r->auth, sizeof(r->auth));
	filter_relay_envfrom(from, e, r->envfrom, sizeof(r->envfrom));
	/* HELO: "(HELO x)" (qmail), "helo=x" (Exim), else the first word after "from"; web
	 * mail (SquirrelMail, NaSMail) names no HELO */
	if (filter_relay_find(from, by, " (SquirrelMail authenticated user ") ||
	    filter_relay_find(from, by, " (NaSMail authenticated user "))
		;
	else if ((p = filter_relay_find(from, by, "HELO ")) != NULL && p > from && p[-1] == '(')
		filter_relay_token(p + 5, by, r->helo, sizeof(r->helo));
	else if ((p = filter_relay_find(from, by, "helo=")) != NULL)
		filter_relay_token(p + 5, by, r->helo, sizeof(r->helo));
	else if (*from != '(' && !(*from == '[' && from + il + 3 >= by))
		filter_relay_word(from, by, r->helo, sizeof(r->helo));
	/* reverse DNS name */
	if (filter_relay_find(from, by, "(HELO ")) {
		/* qmail: "from RDNS (HELO x) (ip)": qmail-smtpd's own line (" with SMTP" or QMQP)
		 * has the name tcpserver found, "unknown" when none was passed on: no look-up
		 * seen; Received.pm takes other protocols ("with asmtp") for an MTA that looked */
		filter_relay_token(from, by, r->rdns, sizeof(r->rdns));
		r->looked = !filter_relay_qmail_proto(by, e) || strcasecmp(r->rdns, "unknown") != 0;
	} else if (ipp > from + 1 && ipp[-1] == '[' && ipp[-2] != '(' && ipp[-2] != '@') {
		/* Sendmail/Postfix: "(rdns [ip])" (or "(rdns[ip])"): the word before the '[' */
		const char *w = ipp[-2] == ' ' ? ipp - 2 : ipp - 1;

		while (w > from && !isspace((unsigned char)w[-1]) && w[-1] != '(')
			w--;
		if (w > from && w[-1] == '(')
			filter_relay_token(w, ipp[-2] == ' ' ? ipp - 2 : ipp - 1, r->rdns, sizeof(r->rdns));
	} else if (*from != '[' && *from != '(' &&
		   ((ipp - from > 3 && ipp[-1] == '[' && ipp[-2] == '(' && ipp[-3] == ' ') ||
		    (ipp - from > 2 && ipp[-1] == '(' && ipp[-2] == ' '))) {
		/* "from WORD ([ip])" or "from WORD (ip)": Sendmail ("by host (8.x...") writes the
		 * HELO there and looked the name up in vain; Exim ("[ip] helo=x"), Exchange and
		 * the rest write the name they found (Received.pm takes it for both) */
		const char *w = from;

		while (w < ipp && *w != ' ')
			w++;
		if (w == ipp - (ipp[-1] == '[' ? 3 : 2)) {
			/* Received.pm's patterns, as far as the corpus shows them: "WORD (ip)", Exim,
			 * and "with SMTP (" / "with SMTP;" name the rDNS; Microsoft's SMTPSVC names
			 * none and says nothing of a look-up; the rest (Sendmail and its kin) looked
			 * in vain */
			if (ipp[-1] == '(' || filter_relay_find(by, e, "(Exim ") ||
			    filter_relay_find(by, e, " with SMTP (") || filter_relay_find(by, e, " with SMTP;"))
				filter_relay_token(from, by, r->rdns, sizeof(r->rdns));
			else if (filter_relay_find(by, e, " SMTPSVC"))
				r->looked = false;
		}
	}
	/* Lotus Domino writes "from HELO ([ip])" and looks nothing up */
	if (filter_relay_find(by, e, " (Lotus Domino "))
		r->looked = false;
	/* "from [ip] by ...": nothing says a name was looked for */
	if (ipp == from + 1 && *from == '[')
		r->looked = false;
	/* "from IP by ...": no HELO either */
	if (ipp == from && !memchr(from, '(', (size_t)(by - from)))
		r->helo[0] = '\0';
	{
		/* "(ident@rdns [ip])": the ident is not part of the name */
		char *at = strrchr(r->rdns, '@');

		if (at)
			memmove(r->rdns, at + 1, strlen(at + 1) + 1);
	}
	if (strcasecmp(r->rdns, "unknown") == 0)
		r->rdns[0] = '\0';
	if (strcasecmp(r->helo, "unknown") == 0 && filter_relay_find(from, by, "(HELO "))
		r->helo[0] = '\0';
	return true;
}

static void filter_relay_put(char *buf, size_t cap, size_t *len, const struct filter_relay *r, bool intl)
{
	int n;

	if (*len >= cap)
		return;
	n = snprintf(buf + *len, cap - *len,
		     "%s[ ip=%u.%u.%u.%u rdns=%s helo=%s by=%s ident= envfrom=%s intl=%d id= auth=%s msa=0 ]",
		     *len ? " " : "", r->ip[0], r->ip[1], r->ip[2], r->ip[3], r->rdns, r->helo, r->by,
		     r->envfrom, intl ? 1 : 0, r->auth);
	if (n < 0 || (size_t)n >= cap - *len) {
		buf[*len] = '\0';   /* keep only whole relays */
		*len = cap;
		return;
	}
	*len += (size_t)n;
}

static const char *const filter_relay_orig[] = {
	"x-yahoo-post-ip", "x-originating-ip", "x-apparently-from", "x-senderip", "x-aol-ip",
	"x-ms-exchange-crosstenant-originalattributedtenantconnectingip",
};

/* The first dotted quad in the first field named name. */
static bool filter_relay_orig_ip(const struct filter_msg *fm, const char *name, unsigned char ip[4])
{
	size_t nl = strlen(name);

	for (uint32_t i = 0; i < fm->ntop; i++) {
		const struct filter_hdr *h = &fm->hdrs[i];
		const char *v = fm->arena + h->dec_off, *e = v + h->dec_len;

		if (h->name_len != nl || strncasecmp(fm->arena + h->name_off, name, nl) != 0)
			continue;
		for (const char *p = v; p < e; p++)
			if (isdigit((unsigned char)*p) && (p == v || !(isdigit((unsigned char)p[-1]) || p[-1] == '.')) &&
			    filter_relay_ipv4(p, e, ip))
				return true;
		return false;
	}
	return false;
}

void filter_relay_build(struct filter_msg *fm)
{
	bool trusting = true;
	size_t tl = 0, ul = 0;

	fm->relays_t[0] = fm->relays_u[0] = '\0';
	fm->n_trusted = fm->n_untrusted = 0;
	fm->relays_u_nordns = 0;
	fm->ev_header.rcvd_trusted = 0;
	for (uint32_t i = 0; i < fm->ntop; i++) {
		const struct filter_hdr *h = &fm->hdrs[i];
		struct filter_relay r;

		if (h->name_len != 8 || strncasecmp(fm->arena + h->name_off, "received", 8) != 0)
			continue;
		/* a mail fetcher's pick-up ("with POP3", "with IMAP") while every relay so far is
		 * trusted: Received.pm restarts there, the relays above it were the local delivery */
		if (h->dec_len > 5 && strncasecmp(fm->arena + h->dec_off, "from ", 5) == 0 &&
		    (memmem(fm->arena + h->dec_off, h->dec_len, "with POP3", 9) ||
		     memmem(fm->arena + h->dec_off, h->dec_len, "with IMAP", 9))) {
			if (trusting) {
				tl = 0;
				fm->relays_t[0] = '\0';
				fm->n_trusted = 0;
			}
			fm->ev_header.rcvd_trusted += trusting;
			continue;
		}
		if (!filter_relay_parse(fm->arena + h->dec_off, h->dec_len, &r)) {
			fm->ev_header.rcvd_trusted += trusting;   /* Received.pm counts it too */
			continue;
		}
		/* Received.pm infers trust without trusted_networks: private addresses, and
		 * authenticated hand-overs */
		if (trusting && (filter_relay_private(r.ip) || r.auth[0])) {
			filter_relay_put(fm->relays_t, sizeof(fm->relays_t), &tl, &r, true);
			fm->n_trusted++;
			fm->ev_header.rcvd_trusted++;
		} else {
			trusting = false;
			filter_relay_put(fm->relays_u, sizeof(fm->relays_u), &ul, &r, false);
			if (fm->n_untrusted < 32 && !r.rdns[0] && r.looked)
				fm->relays_u_nordns |= 1u << fm->n_untrusted;
			fm->n_untrusted++;
		}
	}
	/* SpamAssassin's default originating_ip_headers (10_default_prefs.cf): the first address
	 * in each, the first field of the name, is one more relay after the Received ones, with
	 * no names (Received.pm's synthetic "from X-Originating-IP: ip") */
	for (size_t k = 0; k < sizeof(filter_relay_orig) / sizeof(filter_relay_orig[0]); k++) {
		struct filter_relay r;

		memset(&r, 0, sizeof(r));
		if (!filter_relay_orig_ip(fm, filter_relay_orig[k], r.ip))
			continue;
		if (trusting && filter_relay_private(r.ip)) {
			filter_relay_put(fm->relays_t, sizeof(fm->relays_t), &tl, &r, true);
			fm->n_trusted++;
		} else {
			trusting = false;
			filter_relay_put(fm->relays_u, sizeof(fm->relays_u), &ul, &r, false);
			fm->n_untrusted++;
		}
	}
	if (tl >= sizeof(fm->relays_t))
		tl = strlen(fm->relays_t);
	if (ul >= sizeof(fm->relays_u))
		ul = strlen(fm->relays_u);
	fm->relays_t_len = tl;
	fm->relays_u_len = ul;
}
