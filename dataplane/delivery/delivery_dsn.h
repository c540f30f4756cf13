/*
 * delivery_dsn.h - delivery status notifications (RFC 3464, RFC 3461 6, RFC 6522): the message
 * sent back to an envelope sender when some recipients failed for good ("failed") or are still
 * being retried after the warning time ("delayed").
 *
 * The result is a whole message (header and body, CR LF line ends, no dot-stuffing: it is spooled
 * like any other message, then sent with MAIL FROM:<> to the original sender):
 *   multipart/report; report-type=delivery-status
 *     1. text/plain: what happened, for a person
 *     2. message/delivery-status: Reporting-MTA, Arrival-Date, then per recipient
 *        Final-Recipient, Action, Status, Remote-MTA, Diagnostic-Code, Last-Attempt-Date
 *        (and Will-Retry-Until for "delayed")
 *     3. text/rfc822-headers: the original header; or message/rfc822, the whole original, when
 *        RET=FULL was asked and it is no larger than full_max
 *
 * Rules enforced here, not left to callers:
 *   - never a DSN to the null sender (RFC 5321 6.1: that is how bounce loops are avoided);
 *   - never a DSN for a message the content filter judged spam (the sender address is forged
 *     in nearly all of them: a DSN would be backscatter).
 * Both return -EPERM.
 *
 * Any thread. The output is malloc'd (a DSN is rare; it is not on the hot path).
 */
#ifndef SLUICE_DELIVERY_DSN_H
#define SLUICE_DELIVERY_DSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

enum delivery_dsn_action {
	DELIVERY_DSN_FAILED = 0,
	DELIVERY_DSN_DELAYED,
	DELIVERY_DSN_DELIVERED,
	DELIVERY_DSN_RELAYED,
};

struct delivery_dsn_rcpt {
	struct slice             addr;             /* the recipient, without brackets */
	enum delivery_dsn_action action;
	const char              *status;           /* "5.1.1"; NULL or invalid: 5.0.0 / 4.0.0 */
	struct slice             remote_mta;       /* the host that answered; empty if none */
	struct slice             diag;             /* "550 5.1.1 no such user" (an SMTP reply) or
	                                            * our own words; empty if none */
	uint64_t                 last_attempt_ns;  /* wall clock; 0: none */
	uint64_t                 retry_until_ns;   /* "delayed": when we give up; 0: not said */
};

#define DELIVERY_DSN_FULL_MAX_DEFAULT (256u * 1024u)

struct delivery_dsn_req {
	const char                     *reporting_mta;  /* our host name */
	struct slice                    sender;         /* the original's envelope sender */
	bool                            spam;           /* the filter's verdict was spam */
	struct slice                    queue_id;       /* printed queue id, for the person */
	uint64_t                        arrival_ns;     /* when we accepted the original (wall) */
	uint64_t                        now_ns;         /* wall: the DSN's Date */
	bool                            ret_full;       /* RET=FULL (RFC 3461 4.3) */
	size_t                          full_max;       /* 0: DELIVERY_DSN_FULL_MAX_DEFAULT */
	const uint8_t                  *orig;           /* the original message as spooled */
	size_t                          orig_len;
	unsigned                        nrcpt;
	const struct delivery_dsn_rcpt *rcpt;
	uint64_t                        rnd;            /* for the MIME boundary and Message-ID */
};

struct delivery_dsn_out {
	char   *data;        /* malloc'd; the whole message */
	size_t  len;
	bool    eightbit;    /* has 8-bit octets: send with BODY=8BITMIME */
	bool    full;        /* the whole original is attached */
};

/*
 * Composes the DSN. Returns 0; -EPERM for a null sender or a spam verdict (nothing is composed);
 * -EINVAL without recipients or reporting_mta; -ENOMEM.
 */
int delivery_dsn_compose(const struct delivery_dsn_req *q, struct delivery_dsn_out *out_r);
void delivery_dsn_out_free(struct delivery_dsn_out *o);

/* RFC 5322 3.3 date, "Wed, 25 Nov 2026 06:44:56 +0000", from wall nanoseconds (UTC). */
void delivery_dsn_date(uint64_t wall_ns, char out[40]);

#endif
