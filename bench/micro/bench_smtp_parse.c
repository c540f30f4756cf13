/*
 * bench_smtp_parse.c - the SMTP command parser (dataplane/smtp/smtp_parse.h): line assembly,
 * verb split and MAIL/RCPT argument parsing over a pipelined client's command stream, fed in
 * reads of the given size (a whole buffer at once, a typical segment, and 7-byte pieces to
 * price the partial-line path). Items are commands.
 */
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "smtp/smtp_parse.h"

static char stream[65536];
static size_t stream_len;
static unsigned stream_cmds;

static void build_stream(void)
{
	if (stream_len)
		return;
	for (unsigned i = 0; stream_len < sizeof(stream) - 600; i++) {
		int n = snprintf(stream + stream_len, sizeof(stream) - stream_len,
				 "MAIL FROM:<sender%u@example.org> SIZE=%u BODY=8BITMIME\r\n"
				 "RCPT TO:<user%u@bench.test>\r\n"
				 "RCPT TO:<\"quoted local\"@bench.test> NOTIFY=SUCCESS,FAILURE\r\n"
				 "DATA\r\nRSET\r\nNOOP\r\n", i, 1000 + i * 7, i);
		stream_len += (size_t)n;
		stream_cmds += 6;
	}
}

static void bm_smtp_parse(struct bench_state *st, void *arg)
{
	size_t chunk = (size_t)bench_range(st, 0);
	struct smtp_line lb;
	uint64_t cmds = 0, bad = 0;

	build_stream();
	while (bench_keep_running(st)) {
		smtp_line_init(&lb);
		for (size_t off = 0; off < stream_len;) {
			size_t len = stream_len - off < chunk ? stream_len - off : chunk;
			const uint8_t *in = (const uint8_t *)stream + off;
			while (len > 0) {
				struct slice line, a;
				size_t used;
				enum smtp_parse_status s = smtp_line_next(&lb, in, len, SMTP_CMD_LINE_MAX,
									  &line, &used);
				in += used;
				len -= used;
				off += used;
				if (s == SMTP_PARSE_AGAIN)
					break;
				if (s != SMTP_PARSE_DONE) {
					bad++;
					continue;
				}
				cmds++;
				enum smtp_verb v = smtp_parse_verb(line, &a);
				if (v == SMTP_VERB_MAIL) {
					struct smtp_mail_args ma;
					bad += smtp_parse_mail_arg(a, &ma) != SMTP_ARG_OK;
				} else if (v == SMTP_VERB_RCPT) {
					struct smtp_rcpt_args ra;
					bad += smtp_parse_rcpt_arg(a, &ra) != SMTP_ARG_OK;
				}
			}
		}
	}
	if (bad || cmds != (uint64_t)bench_iterations(st) * stream_cmds) {
		char msg[128];
		snprintf(msg, sizeof(msg), "parser disagreed: %llu bad, %llu commands",
			 (unsigned long long)bad, (unsigned long long)cmds);
		bench_skip_error(st, msg);
		return;
	}
	bench_set_bytes(st, bench_iterations(st) * (int64_t)stream_len);
	bench_set_items(st, (int64_t)cmds);
	bench_counter(st, "ns_per_cmd", (double)cmds, BENCH_C_RATE | BENCH_C_INVERT);
}

BENCH_INIT(smtp_parse)
{
	struct bench *b = bench_register("smtp_parse/commands", bm_smtp_parse, NULL);
	bench_arg(bench_arg(bench_arg(b, 65536), 1460), 7);
	bench_unit(b, BENCH_US);
}
