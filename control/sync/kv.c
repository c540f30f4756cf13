/*
 * kv.c - the `cfg` bucket on the hub, the CFG replica on each leaf server, the publisher.
 * See kv.h.
 */
#include "kv.h"
#include "sync_conn.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* JetStream API error: stream name already in use (with another configuration). */
#define KV_JS_STREAM_EXISTS 10058

struct kv_pub {
	jsCtx   *js;
	kvStore *kv;
};

bool kv_key_valid(const char *key)
{
	size_t n = strlen(key);
	if (n == 0 || n > KV_KEY_MAX || key[0] == '.' || key[n - 1] == '.' || strstr(key, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = key[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '/' || c == '_' || c == '=' || c == '.'))
			return false;
	}
	return true;
}

static int js_open(natsConnection *nc, jsCtx **js_r)
{
	jsOptions o;
	jsOptions_Init(&o);
	o.Wait = SYNC_CONN_TIMEOUT_MS;
	return sync_conn_errno(natsConnection_JetStream(js_r, nc, &o));
}

int kv_setup_hub(natsConnection *nc)
{
	jsCtx *js = NULL;
	int rc = js_open(nc, &js);
	if (rc < 0)
		return rc;
	kvStore *kv = NULL;
	natsStatus s = js_KeyValue(&kv, js, KV_BUCKET);
	if (s == NATS_NOT_FOUND) {
		kvConfig c;
		kvConfig_Init(&c);
		c.Bucket = KV_BUCKET;
		c.History = KV_HISTORY;
		c.StorageType = js_FileStorage;
		c.MaxValueSize = KV_VALUE_MAX;
		s = js_CreateKeyValue(&kv, js, &c);
	}
	kvStore_Destroy(kv);
	jsCtx_Destroy(js);
	return sync_conn_errno(s);
}

int kv_setup_replica(natsConnection *nc)
{
	jsCtx *js = NULL;
	int rc = js_open(nc, &js);
	if (rc < 0)
		return rc;
	jsExternalStream ext;
	jsExternalStream_Init(&ext);
	ext.APIPrefix = KV_HUB_API_PREFIX;
	ext.DeliverPrefix = "";
	jsStreamSource src;
	jsStreamSource_Init(&src);
	src.Name = KV_STREAM;
	src.External = &ext;
	jsStreamSource *sources[] = { &src };
	jsStreamConfig c;
	jsStreamConfig_Init(&c);
	c.Name = KV_REPLICA_STREAM;
	c.Storage = js_FileStorage;
	c.MaxMsgsPerSubject = KV_HISTORY;
	c.AllowRollup = true;     /* a KV purge carries Nats-Rollup: the replica must take it */
	c.Sources = sources;
	c.SourcesLen = 1;
	jsErrCode jerr = 0;
	natsStatus s = js_AddStream(NULL, js, &c, NULL, &jerr);
	if (s != NATS_OK && jerr == KV_JS_STREAM_EXISTS)
		s = js_UpdateStream(NULL, js, &c, NULL, &jerr);
	jsCtx_Destroy(js);
	return sync_conn_errno(s);
}

int kv_pub_open(natsConnection *nc, struct kv_pub **pub_r)
{
	struct kv_pub *pub = calloc(1, sizeof *pub);
	if (!pub)
		return -ENOMEM;
	int rc = js_open(nc, &pub->js);
	if (rc == 0)
		rc = sync_conn_errno(js_KeyValue(&pub->kv, pub->js, KV_BUCKET));
	if (rc < 0) {
		kv_pub_close(&pub);
		return rc;
	}
	*pub_r = pub;
	return 0;
}

int kv_publish(struct kv_pub *pub, const char *key, const char *value, size_t len,
	       uint64_t *rev_r)
{
	if (!kv_key_valid(key) || (value && len > KV_VALUE_MAX))
		return -EINVAL;
	uint64_t rev = 0;
	natsStatus s;
	if (value) {
		s = kvStore_Put(&rev, pub->kv, key, value, (int)len);
	} else {
		/* The delete marker kvStore_Delete writes, published here for its ack's sequence
		 * (kvStore_Delete does not return the revision). */
		char subject[KV_KEY_MAX + sizeof KV_SUBJECT_PREFIX];
		strcpy(subject, KV_SUBJECT_PREFIX);
		strcat(subject, key);
		natsMsg *m = NULL;
		jsPubAck *ack = NULL;
		jsErrCode jerr = 0;
		s = natsMsg_Create(&m, subject, NULL, NULL, 0);
		if (s == NATS_OK)
			s = natsMsgHeader_Set(m, "KV-Operation", "DEL");
		if (s == NATS_OK)
			s = js_PublishMsg(&ack, pub->js, m, NULL, &jerr);
		if (s == NATS_OK)
			rev = ack->Sequence;
		jsPubAck_Destroy(ack);
		natsMsg_Destroy(m);
	}
	if (s == NATS_OK && rev_r)
		*rev_r = rev;
	return sync_conn_errno(s);
}

void kv_pub_close(struct kv_pub **pub)
{
	if (!*pub)
		return;
	kvStore_Destroy((*pub)->kv);
	jsCtx_Destroy((*pub)->js);
	free(*pub);
	*pub = NULL;
}
