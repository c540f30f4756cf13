/*
 * filter_db.c - loading a compiled rule set (patterns/compiler/rules_format.h) and its
 * reference count.
 *
 * Runs on the agent thread (or at start-up), never on the mail path: it reads files,
 * deserializes Hyperscan databases and compiles the PCRE2 confirmations (with JIT). Every
 * length and index in the files is checked; a file that does not add up is refused whole, and
 * so is one built by another Hyperscan or for another CPU (the data plane never compiles a
 * Hyperscan database itself).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "filter_types.h"

#define FILTER_DB_MAX_FILE (512u << 20)

struct filter_db_rd {
	const uint8_t *p, *end;
	bool bad;
};

static bool filter_db_take(struct filter_db_rd *r, void *out, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		if (out)
			memset(out, 0, n);
		return false;
	}
	if (out)
		memcpy(out, r->p, n);
	r->p += n;
	return true;
}

static uint32_t filter_db_u32(struct filter_db_rd *r)
{
	uint32_t v = 0;

	filter_db_take(r, &v, 4);
	return v;
}

/* A u16-length string, copied and NUL-terminated; NULL when bad or out of memory. */
static char *filter_db_str(struct filter_db_rd *r)
{
	uint16_t n = 0;
	char *s;

	if (!filter_db_take(r, &n, 2) || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return NULL;
	}
	s = malloc((size_t)n + 1);
	if (!s) {
		r->bad = true;
		return NULL;
	}
	memcpy(s, r->p, n);
	s[n] = '\0';
	r->p += n;
	return s;
}

static void filter_db_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void filter_db_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

static int filter_db_read(const char *dir, const char *name, uint8_t **data_r, size_t *len_r)
{
	char path[4096];
	struct stat st;
	uint8_t *data;
	size_t got = 0;
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > FILTER_DB_MAX_FILE) {
		close(fd);
		return -EFBIG;
	}
	data = malloc((size_t)st.st_size + 1);
	if (!data) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, data + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			free(data);
			close(fd);
			return rc;
		}
		got += (size_t)n;
	}
	close(fd);
	*data_r = data;
	*len_r = got;
	return 0;
}

/* Checks a file header against this process and the rule set. */
static int filter_db_check_hdr(struct filter_db_rd *r, uint32_t cls, uint64_t *hash,
			       uint32_t *nsec_r, const char *name, char *err, size_t errlen)
{
	struct rules_file_hdr h;
	hs_platform_info_t plat;
	char ver[sizeof(h.hs_version) + 1];

	if (!filter_db_take(r, &h, sizeof(h)) || memcmp(h.magic, RULES_FORMAT_MAGIC, 8) != 0) {
		filter_db_errf(err, errlen, "%s: not a compiled rule-set file", name);
		return -EINVAL;
	}
	if (h.format_version != RULES_FORMAT_VERSION || h.cls != cls) {
		filter_db_errf(err, errlen, "%s: format version %u class %u, expected %u class %u", name,
			       h.format_version, h.cls, RULES_FORMAT_VERSION, cls);
		return -EINVAL;
	}
	memcpy(ver, h.hs_version, sizeof(h.hs_version));
	ver[sizeof(h.hs_version)] = '\0';
	if (strncmp(ver, hs_version(), sizeof(h.hs_version)) != 0) {
		filter_db_errf(err, errlen, "%s: built by Hyperscan %s, this is %s: recompile", name,
			       ver, hs_version());
		return -EINVAL;
	}
	if (hs_populate_platform(&plat) != HS_SUCCESS || plat.tune != h.hs_tune ||
	    plat.cpu_features != h.hs_cpu_features) {
		filter_db_errf(err, errlen, "%s: built for another platform: recompile", name);
		return -EINVAL;
	}
	if (*hash == 0)
		*hash = h.ruleset_hash;
	else if (*hash != h.ruleset_hash) {
		filter_db_errf(err, errlen, "%s: from another rule set than rules.meta", name);
		return -EINVAL;
	}
	*nsec_r = h.nsections;
	return 0;
}

static void filter_db_free(struct filter_db *db)
{
	if (!db)
		return;
	for (uint32_t i = 0; i < db->nrules && db->rules; i++) {
		free(db->rules[i].name);
		free(db->rules[i].describe);
		pcre2_code_free(db->rules[i].pcre);
		pcre2_code_free(db->rules[i].eval_re);
		pcre2_code_free(db->rules[i].eval_re2);
		free(db->rules[i].eval_hdr);
		free(db->rules[i].meta);
	}
	for (uint32_t i = 0; i < db->nfm_exact; i++)
		free(db->fm_exact[i]);
	for (uint32_t i = 0; i < db->nfm_wild; i++)
		free(db->fm_wild[i]);
	free(db->fm_exact);
	free(db->fm_wild);
	filter_eval_header_free(db);
	free(db->pcre_only);
	free(db->rules);
	for (uint32_t t = 0; t < db->ntargets && db->targets; t++) {
		free(db->targets[t].name);
		free(db->targets[t].rules);
		hs_free_database(db->targets[t].db);
	}
	free(db->targets);
	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++)
		hs_free_database(db->db[c]);
	free(db);
}

static uint8_t filter_db_special(const char *name)
{
	if (strcmp(name, "ALL") == 0)
		return FILTER_SP_ALL;
	if (strcmp(name, "tocc") == 0)
		return FILTER_SP_TOCC;
	if (strcmp(name, "MESSAGEID") == 0)
		return FILTER_SP_MESSAGEID;
	if (strcmp(name, "envelopefrom") == 0)
		return FILTER_SP_ENVFROM;
	if (strcmp(name, "x-spam-relays-trusted") == 0 || strcmp(name, "x-spam-relays-internal") == 0)
		return FILTER_SP_RELAYS_TRUSTED;
	if (strcmp(name, "x-spam-relays-untrusted") == 0 || strcmp(name, "x-spam-relays-external") == 0)
		return FILTER_SP_RELAYS_UNTRUSTED;
	if (strcmp(name, "all-untrusted") == 0 || strcmp(name, "all-external") == 0)
		return FILTER_SP_ALL_UNTRUSTED;
	if (strncmp(name, "x-spam-relays-", 14) == 0 || strncmp(name, "all-", 4) == 0 ||
	    strcmp(name, "x-spam-dkim-") == 0 || strcmp(name, "x-spam-") == 0)
		return FILTER_SP_UNKNOWN;
	return FILTER_SP_NONE;
}

static int filter_db_strcmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Is id one of the eval ids this build implements (a rule set from a newer compiler may name
 * one it does not)? */
static bool filter_db_eval_known(uint32_t id)
{
	return (id >= 1 && id < RULES_EVAL_CORE_END) ||
	       (id >= RULES_EVAL_MIME_FIRST && id < RULES_EVAL_MIME_END) ||
	       (id >= RULES_EVAL_HTML_FIRST && id < RULES_EVAL_HTML_END) ||
	       (id >= RULES_EVAL_HDR_FIRST && id < RULES_EVAL_HDR_END);
}

static int filter_db_load_meta(struct filter_db *db, const uint8_t *data, size_t len,
			       char *err, size_t errlen)
{
	struct filter_db_rd r = { .p = data, .end = data + len };
	struct rules_meta_hdr mh;
	uint32_t nsec;
	int ec;
	PCRE2_SIZE eo;

	if (filter_db_check_hdr(&r, RULES_META_CLASS, &db->hash, &nsec, RULES_META_FILE, err, errlen) < 0)
		return -EINVAL;
	if (!filter_db_take(&r, &mh, sizeof(mh)) || mh.ntargets > RULES_MAX_TARGETS ||
	    mh.nrules > RULES_MAX_RULES) {
		filter_db_errf(err, errlen, "rules.meta: bad counts");
		return -EINVAL;
	}
	db->required_milli = mh.required_milli;
	db->targets = calloc(mh.ntargets + 1, sizeof(*db->targets));
	db->rules = calloc(mh.nrules + 1, sizeof(*db->rules));
	if (!db->targets || !db->rules)
		return -ENOMEM;
	db->ntargets = mh.ntargets;
	db->nrules = mh.nrules;
	for (uint32_t t = 0; t < mh.ntargets && !r.bad; t++) {
		struct filter_target *tg = &db->targets[t];
		uint16_t f = 0;
		uint8_t mod = 0, pad;

		filter_db_take(&r, &f, 2);
		filter_db_take(&r, &mod, 1);
		filter_db_take(&r, &pad, 1);
		tg->name = filter_db_str(&r);
		if (!tg->name)
			break;
		if (mod > RULES_HDR_DOMAIN) {
			r.bad = true;
			break;
		}
		tg->flags = f;
		tg->mod = mod;
		tg->special = filter_db_special(tg->name);
		tg->hash = XXH3_64bits(tg->name, strlen(tg->name));
		if (f & RULES_TF_MIME)
			db->has_mime_targets = true;
	}
	db->first_meta = mh.nrules;
	for (uint32_t i = 0; i < mh.nrules && !r.bad; i++) {
		struct filter_rule *ru = &db->rules[i];
		uint8_t cls = 0, kind = 0;
		uint32_t popts, plen, nmeta;

		filter_db_take(&r, &cls, 1);
		filter_db_take(&r, &kind, 1);
		filter_db_take(&r, &ru->flags, 2);
		filter_db_take(&r, &ru->score_milli, 4);
		ru->target = filter_db_u32(&r);
		if (cls == RULES_CLASS_HEADER) {
			ru->maxhits = (uint8_t)(ru->target >> 24);
			ru->target &= 0xffffffu;
		}
		ru->name = filter_db_str(&r);
		ru->describe = filter_db_str(&r);
		popts = filter_db_u32(&r);
		plen = filter_db_u32(&r);
		if (r.bad || cls > RULES_CLASS_META || kind > RULES_KIND_PCRE ||
		    (cls == RULES_CLASS_HEADER && ru->target >= mh.ntargets) ||
		    (size_t)(r.end - r.p) < plen) {
			r.bad = true;
			break;
		}
		ru->cls = cls;
		ru->kind = kind;
		if (kind == RULES_KIND_PREFILTER || kind == RULES_KIND_PCRE) {
			ru->lines = kind == RULES_KIND_PREFILTER && RULES_LINE_CONFIRMED(cls, ru->flags);
			ru->pcre = pcre2_compile((PCRE2_SPTR)r.p, plen, popts, &ec, &eo, NULL);
			if (!ru->pcre) {
				filter_db_errf(err, errlen, "rules.meta: rule %s: PCRE2 refuses its pattern",
					       ru->name);
				return -EINVAL;
			}
			(void)pcre2_jit_compile(ru->pcre, PCRE2_JIT_COMPLETE);
			if (cls < RULES_CLASS_NSCAN)
				db->confirm[cls] = true;
		}
		if (kind == RULES_KIND_EVAL) {
			ru->eval = popts;
			if (!filter_db_eval_known(popts) || filter_eval_prepare(db, ru, (const char *)r.p, plen) < 0) {
				filter_db_errf(err, errlen, "rules.meta: rule %s: bad eval", ru->name);
				return -EINVAL;
			}
		}
		r.p += plen;
		nmeta = filter_db_u32(&r);
		if (nmeta > RULES_META_MAX_INSTR || (size_t)(r.end - r.p) < nmeta * sizeof(struct rules_meta_instr)) {
			r.bad = true;
			break;
		}
		if (kind == RULES_KIND_META) {
			if (db->first_meta == mh.nrules)
				db->first_meta = i;
			ru->meta = malloc(nmeta * sizeof(*ru->meta) + 1);
			if (!ru->meta)
				return -ENOMEM;
			memcpy(ru->meta, r.p, nmeta * sizeof(*ru->meta));
			ru->nmeta = nmeta;
			/* a meta may only read rules before it: that is what makes one pass enough */
			for (uint32_t k = 0; k < nmeta; k++)
				if ((ru->meta[k].op == RULES_OP_RULE && ru->meta[k].arg >= i) ||
				    ru->meta[k].op < RULES_OP_RULE || ru->meta[k].op > RULES_OP_NE)
					r.bad = true;
		}
		r.p += nmeta * sizeof(struct rules_meta_instr);
	}
	{
		uint32_t nfm = filter_db_u32(&r);

		if (!r.bad && nfm <= 1000000) {
			db->fm_exact = calloc(nfm + 1, sizeof(char *));
			db->fm_wild = calloc(nfm + 1, sizeof(char *));
			if (!db->fm_exact || !db->fm_wild)
				return -ENOMEM;
			for (uint32_t i = 0; i < nfm && !r.bad; i++) {
				char *d = filter_db_str(&r);

				if (!d)
					break;
				if (strchr(d, '*') || strchr(d, '?'))
					db->fm_wild[db->nfm_wild++] = d;
				else
					db->fm_exact[db->nfm_exact++] = d;
			}
			qsort(db->fm_exact, db->nfm_exact, sizeof(char *), filter_db_strcmp);
		} else {
			r.bad = true;
		}
	}
	if (r.bad || r.p != r.end) {
		filter_db_errf(err, errlen, "rules.meta: malformed");
		return -EINVAL;
	}
	db->pcre_only = calloc(db->nrules + 1, sizeof(*db->pcre_only));
	if (!db->pcre_only)
		return -ENOMEM;
	for (uint32_t i = 0; i < db->nrules; i++)
		if (db->rules[i].kind == RULES_KIND_PCRE && db->rules[i].cls != RULES_CLASS_HEADER &&
		    db->rules[i].cls < RULES_CLASS_NSCAN)
			db->pcre_only[db->npcre_only++] = i;
	/* rules per header target */
	for (uint32_t i = 0; i < db->nrules; i++) {
		struct filter_rule *ru = &db->rules[i];
		struct filter_target *tg;
		uint32_t *nr;

		if (ru->cls != RULES_CLASS_HEADER || ru->kind == RULES_KIND_OFF ||
		    ru->kind == RULES_KIND_EVAL || ru->kind == RULES_KIND_META)
			continue;
		tg = &db->targets[ru->target];
		nr = realloc(tg->rules, (tg->nrules + 1) * sizeof(*nr));
		if (!nr)
			return -ENOMEM;
		tg->rules = nr;
		nr[tg->nrules++] = i;
	}
	return 0;
}

static int filter_db_load_class(struct filter_db *db, unsigned cls, const uint8_t *data, size_t len,
				const char *name, char *err, size_t errlen)
{
	struct filter_db_rd r = { .p = data, .end = data + len };
	uint32_t nsec;

	if (filter_db_check_hdr(&r, cls, &db->hash, &nsec, name, err, errlen) < 0)
		return -EINVAL;
	if ((cls == RULES_CLASS_HEADER && nsec > db->ntargets) || (cls != RULES_CLASS_HEADER && nsec > 1)) {
		filter_db_errf(err, errlen, "%s: %u sections", name, nsec);
		return -EINVAL;
	}
	for (uint32_t s = 0; s < nsec; s++) {
		uint32_t target = filter_db_u32(&r), n = filter_db_u32(&r);
		hs_database_t *hdb = NULL;
		hs_database_t **slot;

		if (r.bad || (size_t)(r.end - r.p) < n || (cls == RULES_CLASS_HEADER && target >= db->ntargets)) {
			filter_db_errf(err, errlen, "%s: malformed section", name);
			return -EINVAL;
		}
		slot = cls == RULES_CLASS_HEADER ? &db->targets[target].db : &db->db[cls];
		if (*slot) {
			filter_db_errf(err, errlen, "%s: duplicate section", name);
			return -EINVAL;
		}
		if (hs_deserialize_database((const char *)r.p, n, &hdb) != HS_SUCCESS) {
			filter_db_errf(err, errlen, "%s: Hyperscan refuses the database", name);
			return -EINVAL;
		}
		*slot = hdb;
		r.p += n;
	}
	if (r.p != r.end) {
		filter_db_errf(err, errlen, "%s: trailing bytes", name);
		return -EINVAL;
	}
	return 0;
}

int filter_db_load(const char *dir, struct filter_db **db_r, char *err, size_t errlen)
{
	static const char *const files[] = RULES_CLASS_FILES;
	struct filter_db *db = calloc(1, sizeof(*db));
	uint8_t *data = NULL;
	size_t len = 0;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!db)
		return -ENOMEM;
	db->html_a = db->html_img = -1;
	atomic_init(&db->refs, 1);
	rc = filter_db_read(dir, RULES_META_FILE, &data, &len);
	if (rc < 0) {
		filter_db_errf(err, errlen, "%s/%s: %s", dir, RULES_META_FILE, strerror(-rc));
		goto fail;
	}
	rc = filter_db_load_meta(db, data, len, err, errlen);
	free(data);
	if (rc < 0)
		goto fail;
	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++) {
		data = NULL;
		rc = filter_db_read(dir, files[c], &data, &len);
		if (rc < 0) {
			filter_db_errf(err, errlen, "%s/%s: %s", dir, files[c], strerror(-rc));
			goto fail;
		}
		rc = filter_db_load_class(db, c, data, len, files[c], err, errlen);
		free(data);
		if (rc < 0)
			goto fail;
	}
	*db_r = db;
	return 0;
fail:
	if (rc == -ENOMEM)
		filter_db_errf(err, errlen, "out of memory");
	filter_db_free(db);
	return rc;
}

struct filter_db *filter_db_ref(struct filter_db *db)
{
	atomic_fetch_add_explicit(&db->refs, 1, memory_order_relaxed);
	return db;
}

void filter_db_unref(struct filter_db **dbp)
{
	struct filter_db *db = *dbp;

	if (!db)
		return;
	*dbp = NULL;
	if (atomic_fetch_sub_explicit(&db->refs, 1, memory_order_acq_rel) == 1)
		filter_db_free(db);
}

uint32_t filter_db_nrules(const struct filter_db *db) { return db->nrules; }
uint64_t filter_db_hash(const struct filter_db *db) { return db->hash; }
int32_t filter_db_required_milli(const struct filter_db *db) { return db->required_milli; }

int filter_db_scratch(struct filter_db *db, hs_scratch_t **scratch)
{
	for (unsigned c = 0; c < RULES_CLASS_NSCAN; c++)
		if (db->db[c] && hs_alloc_scratch(db->db[c], scratch) != HS_SUCCESS)
			return -ENOMEM;
	for (uint32_t t = 0; t < db->ntargets; t++)
		if (db->targets[t].db && hs_alloc_scratch(db->targets[t].db, scratch) != HS_SUCCESS)
			return -ENOMEM;
	return 0;
}
