/*
 * cfg_watch.c - the ordered consumer on the replica stream CFG and the KV layout of its
 * messages. See cfg_watch.h.
 */
#include "cfg_watch.h"
#include "kv.h"
#include "sync_conn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CFG_WATCH_STOP_MS 5000

struct cfg_watch {
	jsCtx            *js;
	natsSubscription *sub;
	cfg_watch_fn     *cb;
	void             *arg;
};

uint64_t cfg_watch_source_seq(const char *header)
{
	const char *sp = header ? strchr(header, ' ') : NULL;
	if (!sp)
		return 0;
	char *end = NULL;
	unsigned long long seq = strtoull(sp + 1, &end, 10);
	if (end == sp + 1 || (*end != ' ' && *end != '\0'))
		return 0;
	return seq;
}

static void on_msg(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct cfg_watch *w = closure;
	const char *subject = natsMsg_GetSubject(msg);
	size_t plen = strlen(KV_SUBJECT_PREFIX);
	jsMsgMetaData *meta = NULL;
	if (strncmp(subject, KV_SUBJECT_PREFIX, plen) != 0 || subject[plen] == '\0' ||
	    natsMsg_GetMetaData(&meta, msg) != NATS_OK) {
		natsMsg_Destroy(msg);    /* not a KV message, or no JetStream metadata: ignored */
		return;
	}
	enum cfg_op op = CFG_OP_PUT;
	const char *v = NULL;
	if (natsMsgHeader_Get(msg, "KV-Operation", &v) == NATS_OK && v)
		op = strcmp(v, "PURGE") == 0 ? CFG_OP_PURGE : strcmp(v, "DEL") == 0 ? CFG_OP_DEL : op;
	uint64_t revision = meta->Sequence.Stream;
	if (natsMsgHeader_Get(msg, "Nats-Stream-Source", &v) == NATS_OK && cfg_watch_source_seq(v))
		revision = cfg_watch_source_seq(v);
	const char *data = op == CFG_OP_PUT ? natsMsg_GetData(msg) : NULL;
	size_t len = op == CFG_OP_PUT ? (size_t)natsMsg_GetDataLength(msg) : 0;
	w->cb(subject + plen, data, len, op, revision, meta->NumPending, w->arg);
	jsMsgMetaData_Destroy(meta);
	natsMsg_Destroy(msg);
}

int cfg_watch_start(natsConnection *nc, cfg_watch_fn *cb, void *arg, struct cfg_watch **w_r)
{
	struct cfg_watch *w = calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->cb = cb;
	w->arg = arg;
	jsOptions o;
	jsOptions_Init(&o);
	o.Wait = SYNC_CONN_TIMEOUT_MS;
	natsStatus s = natsConnection_JetStream(&w->js, nc, &o);
	jsSubOptions so;
	jsSubOptions_Init(&so);
	so.Stream = KV_REPLICA_STREAM;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverAll;
	jsErrCode jerr = 0;
	if (s == NATS_OK)
		s = js_Subscribe(&w->sub, w->js, KV_SUBJECT_PREFIX ">", on_msg, w, NULL, &so, &jerr);
	if (s != NATS_OK) {
		int rc = sync_conn_errno(s);
		cfg_watch_stop(&w);
		return rc;
	}
	*w_r = w;
	return 0;
}

void cfg_watch_stop(struct cfg_watch **w)
{
	if (!*w)
		return;
	if ((*w)->sub) {
		/* Unsubscribe does not wait for a callback in progress; a drain's completion does. */
		if (natsSubscription_Drain((*w)->sub) == NATS_OK)
			natsSubscription_WaitForDrainCompletion((*w)->sub, CFG_WATCH_STOP_MS);
		else
			natsSubscription_Unsubscribe((*w)->sub);
		natsSubscription_Destroy((*w)->sub);
	}
	jsCtx_Destroy((*w)->js);
	free(*w);
	*w = NULL;
}
