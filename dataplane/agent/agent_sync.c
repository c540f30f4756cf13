/*
 * agent_sync.c - see agent_sync.h. Three parts: the cluster part's file (encode, decode,
 * persist, boot), the agent's side (compose with the base file, parse, the key of a bad line,
 * behind), and the sync thread with the watcher's callback (nats-server, connection, replica,
 * hub check, status).
 *
 * The persisted file, spool_dir/cluster-config (text; the fragments exactly as rendered):
 *     # sluice cluster-config version N parts K
 *     # part KEY LINES          then LINES lines of that key's fragment; K times
 * Parts are counted by lines, not found by markers, so no fragment text can be mistaken for one.
 */
#include "agent/agent_sync.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/runas.h"
#include "conf/node_config.h"
#include "sluice_build.h"
#include "sync/cfg_map.h"
#include "sync/cfg_watch.h"
#include "sync/kv.h"
#include "sync/natsconf.h"
#include "sync/natsproc.h"
#include "sync/sync_conn.h"
#include "sync/sync_file.h"

#define AGENT_SYNC_POLL_MS     250     /* the sync thread's step */
#define AGENT_SYNC_RETRY_MAX   30000   /* connect or start retries back off up to this */

/* The flag the shards read through their snapshots (node_config_behind). Set until the agent
 * knows it runs the hub's latest version. */
static _Atomic bool agent_sync_behind = true;

/* What agent_sync_boot loaded, for agent_sync_open (main and the agent are one thread, one
 * after the other). */
static struct cfg_render agent_sync_boot_part;
static uint64_t agent_sync_boot_version;

struct agent_sync {
	/* fixed at open */
	char                path[4096];       /* the base file */
	char                name[64];
	char                spool_dir[512];
	struct cluster_conf cc;
	int                 efd;
	pthread_t           thread;
	bool                started;

	pthread_mutex_t     lock;             /* everything below up to "agent only" */
	pthread_cond_t      cond;             /* the sync thread's sleep: stop, status now */
	bool                stopping;
	bool                status_now;
	struct cfg_render   slot;             /* newest committed render not taken yet */
	uint64_t            slot_version;
	bool                slot_full;
	uint64_t            map_version;      /* committed in the map */
	uint64_t            last_rev;         /* hub revision of the last message delivered */
	uint64_t            replica_pending;
	uint64_t            hub_seq;          /* the hub's last revision, when it last answered */
	int64_t             hub_ok_ms;        /* monotonic time of that answer, 0: never */
	uint64_t            applied_version;
	int64_t             applied_at;       /* wall clock seconds */
	bool                behind;           /* as the agent last set it */
	char                apply_error[1280]; /* why the newest version was refused, or "" */

	/* agent only */
	struct cfg_render   running;          /* the cluster part the shards have */
	uint64_t            running_version;
	struct cfg_render   latest;           /* the newest taken (the same, or refused) */
	uint64_t            latest_version;
	struct cfg_render  *candidate;        /* what the last snapshot built was made of */
	uint64_t            candidate_version;

	/* sync thread only (and the callback: map) */
	struct natsproc     proc;
	bool                proc_up;
	int64_t             proc_retry_ms;
	uint32_t            proc_backoff;
	char                nats_conf[600];
	natsConnection     *nc;
	jsCtx              *hub_js;
	struct cfg_watch   *watch;
	struct cfg_map     *map;
	int64_t             retry_ms;
	uint32_t            backoff;
	int                 last_err;
};

static int64_t sync_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* --- the cluster part's file ------------------------------------------------------------- */

static unsigned sync_count_lines(const char *p, size_t len)
{
	unsigned n = 0;

	for (const char *end = p + len; p < end && (p = memchr(p, '\n', (size_t)(end - p))); p++)
		n++;
	return n;
}

int agent_sync_encode(const struct cfg_render *r, uint64_t version, char **text_r, size_t *len_r)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	const char *p = r->buf ? r->buf : "", *end = p + r->len;
	unsigned total = sync_count_lines(p, r->len);

	if (f == NULL)
		return -ENOMEM;
	fprintf(f, "# sluice cluster-config version %llu parts %zu\n", (unsigned long long)version,
		r->n_parts);
	for (size_t i = 0; i < r->n_parts; i++) {
		unsigned first = r->parts[i].first_line;
		unsigned next = i + 1 < r->n_parts ? r->parts[i + 1].first_line : total + 1;
		const char *q = p;

		for (unsigned l = first; l < next && q < end; l++) {
			const char *nl = memchr(q, '\n', (size_t)(end - q));

			q = nl ? nl + 1 : end;
		}
		fprintf(f, "# part %s %u\n", r->parts[i].key, next - first);
		fwrite(p, 1, (size_t)(q - p), f);
		p = q;
	}
	if (fclose(f) != 0) {
		free(text);
		return -ENOMEM;
	}
	*text_r = text;
	*len_r = len;
	return 0;
}

/* One line of text at *pos (through its LF), NUL-terminated into line[size]; false at the end
 * or when it does not fit. */
static bool sync_header_line(const char *text, size_t len, size_t *pos, char *line, size_t size)
{
	const char *p = text + *pos, *nl = memchr(p, '\n', len - *pos);
	size_t n = nl ? (size_t)(nl - p) : len - *pos;

	if (*pos >= len || nl == NULL || n >= size)
		return false;
	memcpy(line, p, n);
	line[n] = '\0';
	*pos += n + 1;
	return true;
}

int agent_sync_decode(const char *text, size_t len, struct cfg_render *r, uint64_t *version_r)
{
	char line[KV_KEY_MAX + 64], key[KV_KEY_MAX + 1], *buf;
	unsigned long long version;
	size_t pos = 0, nparts, out = 0;
	unsigned lineno = 1;

	*r = (struct cfg_render){ 0 };
	if (!sync_header_line(text, len, &pos, line, sizeof(line)) ||
	    sscanf(line, "# sluice cluster-config version %llu parts %zu", &version, &nparts) != 2 ||
	    nparts > len)
		return -EBADMSG;
	buf = malloc(len + 1);
	r->parts = calloc(nparts ? nparts : 1, sizeof(*r->parts));
	if (buf == NULL || r->parts == NULL) {
		free(buf);
		free(r->parts);
		r->parts = NULL;
		return -ENOMEM;
	}
	r->buf = buf;
	for (size_t i = 0; i < nparts; i++) {
		unsigned lines;
		int n = 0;

		if (!sync_header_line(text, len, &pos, line, sizeof(line)) ||
		    sscanf(line, "# part %255s %u%n", key, &lines, &n) != 2 || line[n] != '\0')
			goto bad;
		r->parts[i].key = strdup(key);
		if (r->parts[i].key == NULL)
			goto bad;
		r->parts[i].first_line = lineno;
		r->n_parts++;
		for (unsigned l = 0; l < lines; l++) {
			const char *nl = pos < len ? memchr(text + pos, '\n', len - pos) : NULL;
			size_t n2 = nl ? (size_t)(nl - (text + pos)) + 1 : 0;

			if (nl == NULL)
				goto bad;
			memcpy(buf + out, text + pos, n2);
			out += n2;
			pos += n2;
		}
		lineno += lines;
	}
	if (pos != len)
		goto bad;
	buf[out] = '\0';
	r->len = out;
	*version_r = version;
	return 0;
bad:
	cfg_render_free(r);
	return -EBADMSG;
}

static int sync_persist(const char *spool_dir, const struct cfg_render *r, uint64_t version)
{
	char path[600], *text;
	size_t len;
	int rc;

	snprintf(path, sizeof(path), "%s/%s", spool_dir, AGENT_SYNC_FILE);
	rc = agent_sync_encode(r, version, &text, &len);
	if (rc == 0) {
		rc = sync_file_write(path, text, len, 0640);
		free(text);
	}
	return rc;
}

static int sync_render_copy(struct cfg_render *dst, const struct cfg_render *src)
{
	*dst = (struct cfg_render){ 0 };
	dst->buf = malloc(src->len + 1);
	dst->parts = calloc(src->n_parts ? src->n_parts : 1, sizeof(*dst->parts));
	if (dst->buf == NULL || dst->parts == NULL)
		goto nomem;
	memcpy(dst->buf, src->buf ? src->buf : "", src->len);
	dst->buf[src->len] = '\0';
	dst->len = src->len;
	for (size_t i = 0; i < src->n_parts; i++) {
		dst->parts[i].key = strdup(src->parts[i].key);
		if (dst->parts[i].key == NULL)
			goto nomem;
		dst->parts[i].first_line = src->parts[i].first_line;
		dst->n_parts++;
	}
	return 0;
nomem:
	cfg_render_free(dst);
	return -ENOMEM;
}

/* --- the agent's side: base file + cluster part through the one parser ------------------- */

/* The line a parse error names, from "NAME:LINE: ..." (0 if none). */
static unsigned sync_err_line(const char *err, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(err, name, n) != 0 || err[n] != ':')
		return 0;
	return (unsigned)strtoul(err + n + 1, NULL, 10);
}

/* The base file at path + part, as "cluster version N". NULL when refused: the log names the
 * key whose fragment holds the bad line (and that line within it) or the base file. */
static struct node_config *sync_build(const char *path, const struct cfg_render *part,
				      uint64_t version, char *why, size_t whylen)
{
	struct node_config *conf = NULL;
	char name[64], err[1024];
	char *base = NULL, *all;
	size_t blen = 0;
	unsigned base_lines, line;
	int rc;

	why[0] = '\0';
	rc = sync_file_read(path, AGENT_SYNC_MAX_BYTES, &base, &blen);
	if (rc < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(-rc));
		log_error(0, "cluster version %llu refused, keeping the running configuration: %s",
			  (unsigned long long)version, why);
		return NULL;
	}
	all = malloc(blen + 1 + part->len + 1);
	if (all == NULL) {
		free(base);
		snprintf(why, whylen, "out of memory");
		log_error(-ENOMEM, "cluster version %llu refused", (unsigned long long)version);
		return NULL;
	}
	memcpy(all, base, blen);
	if (blen > 0 && base[blen - 1] != '\n')
		all[blen++] = '\n';
	base_lines = sync_count_lines(all, blen);
	memcpy(all + blen, part->buf ? part->buf : "", part->len);
	free(base);
	snprintf(name, sizeof(name), "cluster version %llu", (unsigned long long)version);
	rc = node_config_load_buffer(name, all, blen + part->len, &conf, err, sizeof(err));
	free(all);
	if (rc < 0) {
		const char *key = NULL;
		unsigned in_key = 0;

		line = sync_err_line(err, name);
		if (line > base_lines) {
			key = cfg_render_key_of_line(part, line - base_lines);
			for (size_t i = 0; key && i < part->n_parts; i++)
				if (part->parts[i].key == key || strcmp(part->parts[i].key, key) == 0)
					in_key = line - base_lines - part->parts[i].first_line + 1;
		}
		if (key)
			snprintf(why, whylen, "key %s, its line %u: %s", key, in_key, err);
		else if (line)
			snprintf(why, whylen, "the base file %s, line %u: %s", path, line, err);
		else
			snprintf(why, whylen, "%s", err);
		log_error(0, "cluster version %llu refused, keeping the running configuration: %s",
			  (unsigned long long)version, why);
		return NULL;
	}
	conf->cluster_behind = &agent_sync_behind;
	return conf;
}

int agent_sync_boot(const char *path, struct node_config **conf)
{
	struct node_config *c;
	char file[600], why[1200], *text = NULL;
	size_t len;
	int rc;

	if (!(*conf)->cluster.on)
		return 0;
	(*conf)->cluster_behind = &agent_sync_behind;
	snprintf(file, sizeof(file), "%s/%s", (*conf)->spool_dir, AGENT_SYNC_FILE);
	rc = sync_file_read(file, AGENT_SYNC_MAX_BYTES, &text, &len);
	if (rc == -ENOENT) {
		log_info("cluster: no %s yet: starting with %s alone until the first version arrives",
			 file, path);
		return 0;
	}
	if (rc == 0)
		rc = agent_sync_decode(text, len, &agent_sync_boot_part, &agent_sync_boot_version);
	free(text);
	if (rc < 0) {
		log_warn(rc, "cluster: %s cannot be read%s; starting with %s alone", file,
			 rc == -EBADMSG ? " (not a cluster-config file)" : "", path);
		return rc;
	}
	c = sync_build(path, &agent_sync_boot_part, agent_sync_boot_version, why, sizeof(why));
	if (c == NULL) {
		log_warn(0, "cluster: %s (version %llu) does not load with %s; starting with %s alone",
			 file, (unsigned long long)agent_sync_boot_version, path, path);
		cfg_render_free(&agent_sync_boot_part);
		agent_sync_boot_version = 0;
		return -EINVAL;
	}
	log_info("cluster: starting with version %llu from %s (%u domains)",
		 (unsigned long long)agent_sync_boot_version, file, c->ndomains);
	node_config_unref(conf);
	*conf = c;
	return 0;
}

struct node_config *agent_sync_take(struct agent_sync *as)
{
	struct cfg_render r;
	uint64_t version;
	struct node_config *conf;
	char why[1200];

	pthread_mutex_lock(&as->lock);
	if (!as->slot_full) {
		pthread_mutex_unlock(&as->lock);
		return NULL;
	}
	r = as->slot;
	version = as->slot_version;
	as->slot = (struct cfg_render){ 0 };
	as->slot_full = false;
	pthread_mutex_unlock(&as->lock);

	cfg_render_free(&as->latest);
	as->latest = r;
	as->latest_version = version;
	if (version == as->running_version && r.len == as->running.len &&
	    memcmp(r.buf ? r.buf : "", as->running.buf ? as->running.buf : "", r.len) == 0) {
		/* the version the node started with from its file: nothing to swap */
		pthread_mutex_lock(&as->lock);
		as->applied_version = version;
		as->apply_error[0] = '\0';
		pthread_mutex_unlock(&as->lock);
		return NULL;
	}
	conf = sync_build(as->path, &as->latest, version, why, sizeof(why));
	if (conf == NULL) {
		pthread_mutex_lock(&as->lock);
		snprintf(as->apply_error, sizeof(as->apply_error), "version %llu: %s",
			 (unsigned long long)version, why);
		as->status_now = true;
		pthread_cond_signal(&as->cond);
		pthread_mutex_unlock(&as->lock);
		return NULL;
	}
	as->candidate = &as->latest;
	as->candidate_version = version;
	return conf;
}

struct node_config *agent_sync_reload(struct agent_sync *as)
{
	struct node_config *conf = NULL;
	char why[1200];

	if (as->latest_version != 0 && as->latest_version != as->running_version) {
		conf = sync_build(as->path, &as->latest, as->latest_version, why, sizeof(why));
		as->candidate = &as->latest;
		as->candidate_version = as->latest_version;
	}
	if (conf == NULL) {
		conf = sync_build(as->path, &as->running, as->running_version, why, sizeof(why));
		as->candidate = &as->running;
		as->candidate_version = as->running_version;
	}
	return conf;
}

void agent_sync_applied(struct agent_sync *as, bool ok)
{
	struct cfg_render *c = as->candidate;
	int rc;

	as->candidate = NULL;
	if (c == NULL)
		return;
	if (!ok) {
		pthread_mutex_lock(&as->lock);
		snprintf(as->apply_error, sizeof(as->apply_error), "version %llu: its listeners could "
			 "not be opened", (unsigned long long)as->candidate_version);
		pthread_mutex_unlock(&as->lock);
		return;
	}
	if (c != &as->running) {
		struct cfg_render copy;

		if (sync_render_copy(&copy, c) == 0) {
			cfg_render_free(&as->running);
			as->running = copy;
			as->running_version = as->candidate_version;
		}
	}
	rc = sync_persist(as->spool_dir, &as->running, as->running_version);
	if (rc < 0)
		log_error(rc, "cluster: cannot write %s/%s: a restart without the hub would start from "
			  "an older version", as->spool_dir, AGENT_SYNC_FILE);
	log_info("cluster: version %llu applied", (unsigned long long)as->running_version);
	pthread_mutex_lock(&as->lock);
	as->applied_version = as->running_version;
	as->applied_at = (int64_t)time(NULL);
	if (as->latest_version == as->running_version)
		as->apply_error[0] = '\0';
	as->status_now = true;
	pthread_cond_signal(&as->cond);
	pthread_mutex_unlock(&as->lock);
}

void agent_sync_tick(struct agent_sync *as)
{
	int64_t now = sync_now_ms();
	bool behind, was;
	uint64_t version;

	pthread_mutex_lock(&as->lock);
	behind = !(as->hub_ok_ms != 0 && now - as->hub_ok_ms < AGENT_SYNC_HUB_FRESH_MS &&
		   as->last_rev >= as->hub_seq && as->replica_pending == 0 && !as->slot_full &&
		   as->applied_version == as->map_version);
	was = as->behind;
	as->behind = behind;
	version = as->applied_version;
	if (behind != was) {
		as->status_now = true;   /* the hub hears of it at once */
		pthread_cond_signal(&as->cond);
	}
	pthread_mutex_unlock(&as->lock);
	atomic_store_explicit(&agent_sync_behind, behind, memory_order_relaxed);
	if (behind != was && !behind)
		log_info("cluster: caught up with the hub at version %llu", (unsigned long long)version);
	else if (behind != was)
		log_warn(0, "cluster: behind the cluster's configuration (cannot confirm the hub's "
			 "latest version): unknown domains get 451 4.7.1");
}

/* --- the watcher's callback (nats.c's delivery thread) ------------------------------------ */

static void sync_on_msg(const char *key, const char *value, size_t len, enum cfg_op op,
			uint64_t revision, uint64_t pending, void *arg)
{
	struct agent_sync *as = arg;
	struct cfg_render r;
	bool ready = false;
	int rc = cfg_map_feed(as->map, key, value, len, op);

	if (rc == 1) {
		if (cfg_map_render(as->map, "", 0, &r) == 0)
			ready = true;
		else
			log_error(-ENOMEM, "cluster: version %llu cannot be assembled",
				  (unsigned long long)cfg_map_version(as->map));
	} else if (rc < 0) {
		log_warn(rc, "cluster: replica message for key %s refused", key);
	}
	pthread_mutex_lock(&as->lock);
	as->last_rev = revision;
	as->replica_pending = pending;
	as->map_version = cfg_map_version(as->map);
	if (ready) {
		cfg_render_free(&as->slot);
		as->slot = r;
		as->slot_version = as->map_version;
		as->slot_full = true;
	}
	pthread_mutex_unlock(&as->lock);
	if (ready) {
		uint64_t one = 1;

		(void)!write(as->efd, &one, sizeof(one));
	}
}

/* --- the sync thread ---------------------------------------------------------------------- */

/* dir/hub_urls: one URL a line; blank lines and '#' comments skipped. Returns the count. */
static int sync_read_hub_urls(const char *dir, char *store, size_t storelen,
			      const char **urls, int max)
{
	char path[600], *text = NULL, *save = NULL;
	size_t used = 0;
	int n = 0, rc;

	snprintf(path, sizeof(path), "%s/hub_urls", dir);
	rc = sync_file_read(path, 64 * 1024, &text, NULL);
	if (rc < 0)
		return rc;
	for (char *l = strtok_r(text, "\n", &save); l && n < max; l = strtok_r(NULL, "\n", &save)) {
		size_t len;

		while (*l == ' ' || *l == '\t')
			l++;
		len = strcspn(l, " \t\r#");
		if (len == 0 || used + len + 1 > storelen)
			continue;
		memcpy(store + used, l, len);
		store[used + len] = '\0';
		urls[n++] = store + used;
		used += len + 1;
	}
	free(text);
	return n;
}

static uint32_t sync_backoff(uint32_t prev)
{
	return prev == 0 ? 500 : prev * 2 > AGENT_SYNC_RETRY_MAX ? AGENT_SYNC_RETRY_MAX : prev * 2;
}

/* The leaf's configuration from the cluster material. 0 or -errno (logged). */
static int sync_write_nats_conf(struct agent_sync *as)
{
	char state[560], cert[600], key[600], ca[600], urlbuf[4096];
	const char *urls[AGENT_SYNC_MAX_HUB_URLS];
	int n, rc;

	n = sync_read_hub_urls(as->cc.dir, urlbuf, sizeof(urlbuf), urls, AGENT_SYNC_MAX_HUB_URLS);
	if (n <= 0) {
		log_error(n, "cluster: %s/hub_urls: %s", as->cc.dir,
			  n == 0 ? "no URL in it" : "cannot be read");
		return n == 0 ? -EINVAL : n;
	}
	snprintf(state, sizeof(state), "%s/%s", as->spool_dir, AGENT_SYNC_NATS_DIR);
	snprintf(cert, sizeof(cert), "%s/node.crt", as->cc.dir);
	snprintf(key, sizeof(key), "%s/node.key", as->cc.dir);
	snprintf(ca, sizeof(ca), "%s/ca.crt", as->cc.dir);
	struct natsconf c = {
		.role = NATSCONF_LEAF, .node_name = as->name, .state_dir = state,
		.client_port = as->cc.nats_port, .monitor_port = as->cc.nats_monitor_port,
		.cert_file = cert, .key_file = key, .ca_file = ca,
		.hub_urls = urls, .n_hub_urls = (size_t)n,
	};
	rc = natsconf_write(&c, as->nats_conf);
	if (rc < 0)
		log_error(rc, "cluster: cannot write %s", as->nats_conf);
	return rc;
}

/* Connected, the replica set up and watched. 0 or -errno. */
static int sync_connect(struct agent_sync *as)
{
	jsOptions o;
	int rc;

	if (as->nc == NULL && (rc = sync_conn_open(as->cc.nats_port, &as->nc)) < 0)
		return rc;
	if ((rc = kv_setup_replica(as->nc)) < 0)
		return rc;
	if (as->hub_js == NULL) {
		jsOptions_Init(&o);
		o.Domain = NATSCONF_HUB_DOMAIN;   /* $JS.hub.API crosses the leaf link (pitfall 4) */
		o.Wait = SYNC_CONN_TIMEOUT_MS;
		if (natsConnection_JetStream(&as->hub_js, as->nc, &o) != NATS_OK)
			return -ENOMEM;
	}
	if ((rc = cfg_watch_start(as->nc, sync_on_msg, as, &as->watch)) < 0)
		return rc;
	log_info("cluster: watching the replica on 127.0.0.1:%d", as->cc.nats_port);
	return 0;
}

/* The hub's last revision, asked across the leaf link. */
static void sync_check_hub(struct agent_sync *as)
{
	jsStreamInfo *si = NULL;
	jsErrCode jerr = 0;

	if (js_GetStreamInfo(&si, as->hub_js, KV_STREAM, NULL, &jerr) != NATS_OK)
		return;   /* the link is down, or the hub: it cannot be told now */
	pthread_mutex_lock(&as->lock);
	as->hub_seq = si->State.LastSeq;
	as->hub_ok_ms = sync_now_ms();
	pthread_mutex_unlock(&as->lock);
	jsStreamInfo_Destroy(si);
}

/* {name, version, applied_at, behind, sluice_version, ...} on sluice.node.<name>.status. */
static void sync_publish_status(struct agent_sync *as)
{
	char subject[128], at[32] = "";
	json_t *j;
	char *text;
	int64_t now = sync_now_ms();

	pthread_mutex_lock(&as->lock);
	if (as->applied_at) {
		time_t t = (time_t)as->applied_at;
		struct tm tm;

		gmtime_r(&t, &tm);
		strftime(at, sizeof(at), "%Y-%m-%dT%H:%M:%SZ", &tm);
	}
	j = json_pack("{s:s, s:I, s:s?, s:b, s:s, s:I, s:b, s:s?}",
		      "name", as->name,
		      "version", (json_int_t)as->applied_version,
		      "applied_at", at[0] ? at : NULL,
		      "behind", as->behind,
		      "sluice_version", SLUICE_VERSION,
		      "seen_version", (json_int_t)as->map_version,
		      "hub_reachable", as->hub_ok_ms != 0 && now - as->hub_ok_ms < AGENT_SYNC_HUB_FRESH_MS,
		      "apply_error", as->apply_error[0] ? as->apply_error : NULL);
	pthread_mutex_unlock(&as->lock);
	if (j == NULL)
		return;
	text = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (text == NULL)
		return;
	snprintf(subject, sizeof(subject), "sluice.node.%s.status", as->name);
	natsConnection_PublishString(as->nc, subject, text);
	free(text);
}

/* Starts the nats-server child, or schedules the next try. */
static void sync_start_server(struct agent_sync *as, int64_t now)
{
	int rc;

	if (as->proc_retry_ms > now)
		return;
	rc = natsproc_start(&as->proc, NATSPROC_START_MS);
	if (rc == 0) {
		as->proc_up = true;
		as->proc_backoff = 0;
		log_info("cluster: nats-server started (pid %ld, %s)", (long)as->proc.pid,
			 as->nats_conf);
		return;
	}
	as->proc_backoff = sync_backoff(as->proc_backoff);
	as->proc_retry_ms = sync_now_ms() + as->proc_backoff;
	if (as->proc_backoff == 500 || as->proc_backoff == AGENT_SYNC_RETRY_MAX)
		log_error(rc, "cluster: nats-server %s did not start%s; filtering goes on with the "
			  "configuration the node has, retrying", as->cc.nats_server,
			  rc == -ECHILD ? " (it exited: see its output above)" : "");
}

static void *sync_main(void *arg)
{
	struct agent_sync *as = arg;
	int64_t next_hub = 0, next_status = 0;
	bool conf_ok = false;

	log_set_thread_tag("sync");
	(void)runas_drop_caps();   /* the agent's bind capability is not this thread's */
	for (;;) {
		int64_t now = sync_now_ms();
		bool status_now;
		struct timespec until;
		int rc;

		pthread_mutex_lock(&as->lock);
		if (as->stopping) {
			pthread_mutex_unlock(&as->lock);
			break;
		}
		status_now = as->status_now;
		as->status_now = false;
		pthread_mutex_unlock(&as->lock);

		if (!conf_ok && as->proc_retry_ms <= now) {
			conf_ok = sync_write_nats_conf(as) == 0;
			if (!conf_ok)
				as->proc_retry_ms = now + AGENT_SYNC_RETRY_MAX;
		}
		if (conf_ok && !as->proc_up)
			sync_start_server(as, now);
		else if (as->proc_up && natsproc_poll(&as->proc) < 0)
			log_warn(0, "cluster: nats-server restart failed; retrying");
		if (as->proc_up && as->watch == NULL && as->retry_ms <= now) {
			rc = sync_connect(as);
			if (rc < 0) {
				as->backoff = sync_backoff(as->backoff);
				as->retry_ms = now + as->backoff;
				if (rc != as->last_err)
					log_warn(rc, "cluster: cannot watch the replica yet (retrying)");
				as->last_err = rc;
			}
		}
		if (as->watch != NULL && now >= next_hub) {
			sync_check_hub(as);
			next_hub = sync_now_ms() + AGENT_SYNC_HUB_CHECK_MS;
		}
		if (as->nc != NULL && (status_now || now >= next_status)) {
			sync_publish_status(as);
			next_status = now + AGENT_SYNC_STATUS_MS;
		}
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += AGENT_SYNC_POLL_MS * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		pthread_mutex_lock(&as->lock);
		if (!as->stopping && !as->status_now)
			pthread_cond_timedwait(&as->cond, &as->lock, &until);
		pthread_mutex_unlock(&as->lock);
	}
	cfg_watch_stop(&as->watch);
	if (as->hub_js != NULL)
		jsCtx_Destroy(as->hub_js);
	as->hub_js = NULL;
	sync_conn_close(&as->nc);
	if (as->proc_up)
		natsproc_stop(&as->proc, NATSPROC_STOP_MS);
	return NULL;
}

int agent_sync_open(const char *path, const struct node_config *conf, struct agent_sync **as_r)
{
	struct agent_sync *as = calloc(1, sizeof(*as));
	int rc;

	if (as == NULL)
		return -ENOMEM;
	snprintf(as->path, sizeof(as->path), "%s", path);
	snprintf(as->name, sizeof(as->name), "%s", conf->name);
	snprintf(as->spool_dir, sizeof(as->spool_dir), "%s", conf->spool_dir);
	as->cc = conf->cluster;
	snprintf(as->nats_conf, sizeof(as->nats_conf), "%s/%s/nats-server.conf", as->spool_dir,
		 AGENT_SYNC_NATS_DIR);
	as->proc.binary = as->cc.nats_server;
	as->proc.conf_path = as->nats_conf;
	as->proc.monitor_port = as->cc.nats_monitor_port;
	as->behind = true;
	as->running = agent_sync_boot_part;
	as->running_version = agent_sync_boot_version;
	as->applied_version = agent_sync_boot_version;
	agent_sync_boot_part = (struct cfg_render){ 0 };
	pthread_mutex_init(&as->lock, NULL);
	pthread_cond_init(&as->cond, NULL);
	as->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	as->map = cfg_map_new(as->name);
	if (as->efd < 0 || as->map == NULL) {
		rc = as->efd < 0 ? -errno : -ENOMEM;
		agent_sync_close(&as);
		return rc;
	}
	rc = -pthread_create(&as->thread, NULL, sync_main, as);
	if (rc < 0) {
		log_error(rc, "cluster: cannot start the sync thread");
		agent_sync_close(&as);
		return rc;
	}
	as->started = true;
	*as_r = as;
	return 0;
}

int agent_sync_eventfd(const struct agent_sync *as)
{
	return as->efd;
}

void agent_sync_close(struct agent_sync **asp)
{
	struct agent_sync *as = *asp;

	if (as == NULL)
		return;
	if (as->started) {
		pthread_mutex_lock(&as->lock);
		as->stopping = true;
		pthread_cond_signal(&as->cond);
		pthread_mutex_unlock(&as->lock);
		pthread_join(as->thread, NULL);
	}
	cfg_map_free(&as->map);
	cfg_render_free(&as->slot);
	cfg_render_free(&as->running);
	cfg_render_free(&as->latest);
	if (as->efd >= 0)
		close(as->efd);
	pthread_mutex_destroy(&as->lock);
	pthread_cond_destroy(&as->cond);
	free(as);
	*asp = NULL;
	nats_Close();
}
