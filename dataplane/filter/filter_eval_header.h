/*
 * filter_eval_header.h - the evals of ids RULES_EVAL_HDR_FIRST.. (patterns/compiler/rules_format.h):
 * the rest of HeaderEval and RelayEval (freemail reply-to, recipients, forged relays, counts), after SpamAssassin 4.0's plugins of those names.
 *
 * Shard thread; the per-message state is struct filter_eval_header_state inside struct filter_msg
 * (reset by filter_eval_header_begin at each message).
 */
#ifndef SLUICE_FILTER_EVAL_HEADER_H
#define SLUICE_FILTER_EVAL_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct filter_db;
struct filter_rule;
struct filter_msg;
struct slice;

#define FILTER_EVAL_HDR_EMAILS    4u    /* FreeMail gives up at the 5th distinct body address */
#define FILTER_EVAL_HDR_EMAIL_LEN 128u  /* longest address kept (64 local + @ + domain) */

struct filter_eval_header_state {
	/* Received fields above the first untrusted relay's, unreadable ones included
	 * (Received.pm's last_trusted_relay_index + 1): where ALL-UNTRUSTED starts */
	uint32_t rcvd_trusted;
	/* FreeMail's body addresses (_parse_body): the word being read, the bytes before it */
	char     tok[FILTER_EVAL_HDR_EMAIL_LEN];
	uint16_t tlen;
	bool     tover;
	char     back[8];          /* the last bytes before the word ("mailto:") */
	/* an address just read waits for what follows: '>' or "  wrote:" drop it */
	uint8_t  pend;             /* 0 none, 1 seen white space, 2 reading the word */
	uint8_t  pend_ws, pend_word;
	char     pend_wbuf[8];
	char     pend_addr[FILTER_EVAL_HDR_EMAIL_LEN];
	/* distinct addresses found (lower case), and more than fit */
	char     emails[FILTER_EVAL_HDR_EMAILS][FILTER_EVAL_HDR_EMAIL_LEN];
	uint8_t  nemails;
	bool     emails_over;
	/* results two rules share, computed once: -1 not yet */
	int8_t   hotmail;          /* 0, 1 forged HELO, 2 no Hotmail relay */
	int8_t   sorted;           /* recipients sorted */
	double   similar;          /* recipients' similarity */
};

/* At load: parses the arguments of rule ru (an eval of this block). 0 or -EINVAL/-ENOMEM. */
int  filter_eval_header_prepare(struct filter_db *db, struct filter_rule *ru, const char *args, size_t len);
/* At load: compiles the block's patterns once per rule set (the core's shifted-date eval uses
 * them too). 0 or -ENOMEM. */
int  filter_eval_header_init(struct filter_db *db);
/* At each message's start: resets the state. */
void filter_eval_header_begin(struct filter_msg *fm);
/* At the message's end, before the metas: does rule ru hit? */
bool filter_eval_header_test(struct filter_msg *fm, const struct filter_rule *ru);
/* The rule set is freed: its compiled patterns go too. */
void filter_eval_header_free(struct filter_db *db);
/* Body text (the Subject first, as SpamAssassin's rendered body): addresses for FreeMail. */
void filter_eval_header_body(struct filter_msg *fm, const uint8_t *p, size_t n);
/* A URI the MIME parser found: mailto: addresses for FreeMail. */
void filter_eval_header_uri(struct filter_msg *fm, const char *p, size_t n);
/* HeaderEval's _check_date_diff: Date minus the Received times, the smallest in magnitude,
 * in seconds; 0 when either is missing. */
double filter_eval_header_date_diff(struct filter_msg *fm);
/* ALL-UNTRUSTED / ALL-EXTERNAL: the index of the first header field they hold among the
 * message's (from the first untrusted relay's Received on), or ntop when none. */
uint32_t filter_eval_header_untrusted_from(const struct filter_msg *fm);
/* A freemail_domains wildcard as FreeMail reads it: '*' is [^.]*, '?' any one byte. */
bool filter_eval_header_glob(const char *pat, const char *dom);
/* FreeMail's default welcomelist: abuse@, postmaster@, bounce-..., list forwards (a=b=c@). */
bool filter_eval_header_fm_welcome(const char *addr);
/* The envelope-from the relay SpamAssassin takes it from recorded (the last untrusted's,
 * else the first trusted's "envfrom="), lower-cased into out; false if none. */
bool filter_eval_header_relay_envfrom(const struct filter_msg *fm, char *out, size_t outlen);

#endif
