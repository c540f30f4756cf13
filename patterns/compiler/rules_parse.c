/*
 * rules_parse.c - the SpamAssassin rule-set parser (see rules_parse.h).
 *
 * Follows Mail::SpamAssassin::Conf::Parser: a '#' not preceded by a backslash starts a comment,
 * leading and trailing blanks are dropped, "\#" stands for '#'. Conditionals: "ifplugin X" is
 * true when X was loaded by loadplugin/tryplugin earlier (so pass the .pre files first, as
 * SpamAssassin reads them first); "if EXPR" understands version comparisons, plugin(X),
 * can(Package::sub) (as the installed SpamAssassin answers it: the package loaded and the sub in
 * its module, see rules_parse_perl_can) and has(...) (false), joined by && || ! and
 * parentheses; anything else is false. False blocks are skipped, counted, and recorded with the
 * rules they would have defined (rules_parse_report_skipped: the compile report names them).
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "rules_parse.h"

/* The SpamAssassin version Sluice answers "if (version >= N)" with. */
#define RULES_PARSE_SA_VERSION 4.000001

static void rules_parse_err(struct rules_set *rs, const char *file, unsigned line, const char *fmt,
			    ...) __attribute__((format(printf, 4, 5)));

static void rules_parse_err(struct rules_set *rs, const char *file, unsigned line, const char *fmt,
			    ...)
{
	char msg[512];
	int n;
	va_list ap;

	rs->st.errors++;
	if (rs->nerrs >= RULES_PARSE_MAX_ERRS)
		return;
	n = snprintf(msg, sizeof(msg), "%s:%u: ", file, line);
	va_start(ap, fmt);
	vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
	va_end(ap);
	rs->errs[rs->nerrs] = strdup(msg);
	if (rs->errs[rs->nerrs])
		rs->nerrs++;
}

int rules_parse_new(struct rules_set **rs_r)
{
	struct rules_set *rs = calloc(1, sizeof(*rs));

	if (!rs)
		return -ENOMEM;
	rs->required_score = 5.0;
	rs->hash = XXH64_createState();
	rs->rep_start = strdup("<");
	rs->rep_end = strdup(">");
	if (!rs->hash || !rs->rep_start || !rs->rep_end) {
		rules_parse_free(&rs);
		return -ENOMEM;
	}
	XXH64_reset(rs->hash, 0);
	*rs_r = rs;
	return 0;
}

static void rules_parse_free_kv(struct rules_kv *kv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(kv[i].k);
		free(kv[i].v);
	}
	free(kv);
}

void rules_parse_free(struct rules_set **rsp)
{
	struct rules_set *rs = *rsp;

	if (!rs)
		return;
	for (size_t i = 0; i < rs->nrules; i++) {
		struct rules_rule *r = &rs->rules[i];

		free(r->name);
		free(r->pattern);
		free(r->meta);
		free(r->hdr);
		free(r->unset);
		free(r->describe);
		free(r->tflags);
	}
	free(rs->rules);
	free(rs->index);
	for (unsigned i = 0; i < rs->nerrs; i++)
		free(rs->errs[i]);
	if (rs->hash)
		XXH64_freeState(rs->hash);
	for (size_t i = 0; i < rs->nplugins; i++)
		free(rs->plugins[i]);
	free(rs->plugins);
	for (size_t i = 0; i < rs->nskips; i++) {
		for (size_t j = 0; j < rs->skips[i].nrules; j++)
			free(rs->skips[i].rules[j]);
		free(rs->skips[i].rules);
		free(rs->skips[i].cond);
	}
	free(rs->skips);
	rules_parse_free_kv(rs->tags, rs->ntags);
	rules_parse_free_kv(rs->pre, rs->npre);
	rules_parse_free_kv(rs->post, rs->npost);
	rules_parse_free_kv(rs->inter, rs->ninter);
	for (size_t i = 0; i < rs->nreplace; i++)
		free(rs->replace[i]);
	free(rs->replace);
	free(rs->rep_start);
	free(rs->rep_end);
	for (size_t i = 0; i < rs->nfreemail; i++)
		free(rs->freemail[i]);
	free(rs->freemail);
	for (size_t i = 0; i < rs->nfiles; i++)
		free(rs->files[i]);
	free(rs->files);
	free(rs);
	*rsp = NULL;
}

uint64_t rules_parse_hash(const struct rules_set *rs)
{
	return XXH64_digest(rs->hash);
}

/* --- the name index ---------------------------------------------------------------------- */

static uint64_t rules_parse_hname(const char *name)
{
	return XXH3_64bits(name, strlen(name));
}

struct rules_rule *rules_parse_find(const struct rules_set *rs, const char *name)
{
	if (!rs->index_cap)
		return NULL;
	for (size_t i = rules_parse_hname(name) & (rs->index_cap - 1);; i = (i + 1) & (rs->index_cap - 1)) {
		uint32_t v = rs->index[i];

		if (v == UINT32_MAX)
			return NULL;
		if (strcmp(rs->rules[v].name, name) == 0)
			return &rs->rules[v];
	}
}

static int rules_parse_reindex(struct rules_set *rs, size_t cap)
{
	uint32_t *ix = malloc(cap * sizeof(*ix));

	if (!ix)
		return -ENOMEM;
	memset(ix, 0xff, cap * sizeof(*ix));
	for (size_t r = 0; r < rs->nrules; r++) {
		size_t i = rules_parse_hname(rs->rules[r].name) & (cap - 1);

		while (ix[i] != UINT32_MAX)
			i = (i + 1) & (cap - 1);
		ix[i] = (uint32_t)r;
	}
	free(rs->index);
	rs->index = ix;
	rs->index_cap = cap;
	return 0;
}

/* The rule named name, created (undefined) when new. NULL: -ENOMEM or too many rules. */
static struct rules_rule *rules_parse_get(struct rules_set *rs, const char *name)
{
	struct rules_rule *r = rules_parse_find(rs, name);

	if (r)
		return r;
	if (rs->nrules >= RULES_MAX_RULES)
		return NULL;
	if (rs->nrules == rs->cap) {
		size_t cap = rs->cap ? rs->cap * 2 : 256;
		struct rules_rule *n = realloc(rs->rules, cap * sizeof(*n));

		if (!n)
			return NULL;
		rs->rules = n;
		rs->cap = cap;
	}
	if ((rs->nrules + 1) * 2 > rs->index_cap &&
	    rules_parse_reindex(rs, rs->index_cap ? rs->index_cap * 2 : 1024) < 0)
		return NULL;
	r = &rs->rules[rs->nrules];
	memset(r, 0, sizeof(*r));
	r->name = strdup(name);
	if (!r->name)
		return NULL;
	r->cls = RULES_CLASS_NONE;
	rs->nrules++;
	{
		size_t i = rules_parse_hname(name) & (rs->index_cap - 1);

		while (rs->index[i] != UINT32_MAX)
			i = (i + 1) & (rs->index_cap - 1);
		rs->index[i] = (uint32_t)(rs->nrules - 1);
	}
	return r;
}

/* --- small string helpers ----------------------------------------------------------------- */

static char *rules_parse_word(char **s)
{
	char *p = *s, *w;

	while (*p == ' ' || *p == '\t')
		p++;
	if (!*p)
		return NULL;
	w = p;
	while (*p && *p != ' ' && *p != '\t')
		p++;
	if (*p)
		*p++ = '\0';
	while (*p == ' ' || *p == '\t')
		p++;
	*s = p;
	return w;
}

static int rules_parse_set(char **dst, const char *src)
{
	char *n = strdup(src);

	if (!n)
		return -ENOMEM;
	free(*dst);
	*dst = n;
	return 0;
}

static bool rules_parse_valid_name(const char *s)
{
	if (!*s || isdigit((unsigned char)*s))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

static int rules_parse_kv_set(struct rules_kv **kv, size_t *n, const char *k, const char *v)
{
	struct rules_kv *nk;

	for (size_t i = 0; i < *n; i++)
		if (strcmp((*kv)[i].k, k) == 0)
			return rules_parse_set(&(*kv)[i].v, v);
	nk = realloc(*kv, (*n + 1) * sizeof(**kv));
	if (!nk)
		return -ENOMEM;
	*kv = nk;
	nk[*n].k = strdup(k);
	nk[*n].v = strdup(v);
	if (!nk[*n].k || !nk[*n].v) {
		free(nk[*n].k);
		free(nk[*n].v);
		return -ENOMEM;
	}
	(*n)++;
	return 0;
}

static const char *rules_parse_kv_get(const struct rules_kv *kv, size_t n, const char *k)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(kv[i].k, k) == 0)
			return kv[i].v;
	return NULL;
}

static int rules_parse_strv_add(char ***v, size_t *n, const char *s)
{
	char **nv;

	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i], s) == 0)
			return 0;
	nv = realloc(*v, (*n + 1) * sizeof(**v));
	if (!nv)
		return -ENOMEM;
	*v = nv;
	nv[*n] = strdup(s);
	if (!nv[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

static bool rules_parse_has_plugin(const struct rules_set *rs, const char *name)
{
	for (size_t i = 0; i < rs->nplugins; i++)
		if (strcmp(rs->plugins[i], name) == 0)
			return true;
	return false;
}

/* --- delimiters ------------------------------------------------------------------------- */

int rules_parse_delims(const char *pat, char **re_r, char flags_r[16])
{
	const char *p = pat, *end;
	char open, close;
	size_t nf = 0;
	char *re;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == 'm' && p[1] && !isalnum((unsigned char)p[1]) && p[1] != '_' && !isspace((unsigned char)p[1]) &&
	    p[1] != '\\') {
		/* m followed by any punctuation: Perl takes it as the delimiter */
		p++;
		open = *p;
	} else if (*p == '/') {
		open = '/';
	} else {
		return -EINVAL;
	}
	switch (open) {
	case '{': close = '}'; break;
	case '(': close = ')'; break;
	case '[': close = ']'; break;
	case '<': close = '>'; break;
	default: close = open; break;
	}
	/* The closing delimiter is the last one on the line (SpamAssassin's
	 * regexp_remove_delimiters does the same: greedy up to the last delimiter). */
	end = strrchr(p + 1, close);
	if (!end)
		return -EINVAL;
	for (const char *f = end + 1; *f; f++) {
		if (*f == ' ' || *f == '\t')
			continue;
		if (!strchr("imsxogcu", *f) || nf >= 15)
			return -EINVAL;
		if (strchr("imsx", *f) && !memchr(flags_r, *f, nf))
			flags_r[nf++] = *f;
	}
	flags_r[nf] = '\0';
	re = strndup(p + 1, (size_t)(end - (p + 1)));
	if (!re)
		return -ENOMEM;
	*re_r = re;
	return 0;
}

/* --- conditionals ------------------------------------------------------------------------ */

struct rules_parse_cond {
	const char *p;
	const struct rules_set *rs;
	bool bad;
};

static void rules_parse_cond_ws(struct rules_parse_cond *c)
{
	while (*c->p == ' ' || *c->p == '\t')
		c->p++;
}

static double rules_parse_cond_or(struct rules_parse_cond *c);

static const char *rules_parse_plugin_short(const char *name);

/*
 * can(Package::sub) as the installed SpamAssassin answers it: Perl's UNIVERSAL::can, true when
 * the package is loaded and defines the sub. A plugin's package is loaded when a .pre file
 * loaded it; whether it defines the sub (has_check_body_length, feature_bug6558_free, ...) is
 * read from its module in RULES_PARSE_PERL_LIB, so rules guarded by a method that this version
 * of SpamAssassin has are loaded, and those guarded by a newer one are not. Without the module
 * files (SpamAssassin not installed), Conf's feature_* and a loaded plugin's has_* are taken as
 * present, which is what every 4.0 has.
 */
static bool rules_parse_perl_can(const struct rules_set *rs, const char *arg)
{
	static const char sa[] = "Mail::SpamAssassin::";
	const char *sub = NULL, *plugin_pfx = "Mail::SpamAssassin::Plugin::";
	char path[512], line[512];
	size_t pkglen, n;
	bool found = false;
	FILE *f;

	if (strncmp(arg, sa, sizeof(sa) - 1) != 0)
		return false;
	for (const char *q = arg; *q; q++) {
		if (!isalnum((unsigned char)*q) && *q != '_' && *q != ':')
			return false;     /* only package::name: never a path */
		if (q[0] == ':' && q[1] == ':')
			sub = q + 2;
	}
	if (sub == NULL || *sub == '\0')
		return false;
	pkglen = (size_t)(sub - 2 - arg);
	if (strncmp(arg, plugin_pfx, strlen(plugin_pfx)) == 0) {
		char name[128];
		size_t nl = pkglen - strlen(plugin_pfx);

		if (nl == 0 || nl >= sizeof(name) || memchr(arg + strlen(plugin_pfx), ':', nl))
			return false;
		memcpy(name, arg + strlen(plugin_pfx), nl);
		name[nl] = '\0';
		if (!rules_parse_has_plugin(rs, name))
			return false;     /* not loaded: Perl's can() is false */
	}
	n = (size_t)snprintf(path, sizeof(path), "%s/", RULES_PARSE_PERL_LIB);
	for (size_t i = 0; i < pkglen && n < sizeof(path) - 4; i++)
		if (arg[i] == ':') {
			path[n++] = '/';
			i++;
		} else {
			path[n++] = arg[i];
		}
	snprintf(path + n, sizeof(path) - n, ".pm");
	f = fopen(path, "r");
	if (f == NULL)
		return strncmp(arg, "Mail::SpamAssassin::Conf::feature_", 34) == 0 ||
		       strncmp(sub, "has_", 4) == 0;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		size_t sl = strlen(sub);

		found = strncmp(line, "sub ", 4) == 0 && strncmp(line + 4, sub, sl) == 0 &&
			(line[4 + sl] == ' ' || line[4 + sl] == '{' || line[4 + sl] == '\n' ||
			 line[4 + sl] == '\t' || line[4 + sl] == ';' || line[4 + sl] == '(');
	}
	fclose(f);
	return found;
}

/* term: ( expr ) | ! term | version | plugin(X) | can(X) | has(X) | number */
static double rules_parse_cond_term(struct rules_parse_cond *c)
{
	char word[256];
	size_t n = 0;
	double v;

	rules_parse_cond_ws(c);
	if (*c->p == '!') {
		c->p++;
		return rules_parse_cond_term(c) == 0;
	}
	if (*c->p == '(') {
		c->p++;
		v = rules_parse_cond_or(c);
		rules_parse_cond_ws(c);
		if (*c->p == ')')
			c->p++;
		else
			c->bad = true;
		return v;
	}
	if (isdigit((unsigned char)*c->p)) {
		char *e;

		v = strtod(c->p, &e);
		c->p = e;
		return v;
	}
	while ((isalnum((unsigned char)*c->p) || *c->p == '_') && n < sizeof(word) - 1)
		word[n++] = *c->p++;
	word[n] = '\0';
	if (strcmp(word, "version") == 0)
		return RULES_PARSE_SA_VERSION;
	if (strcmp(word, "perl_version") == 0)
		return 5.036;
	if (strcmp(word, "plugin") == 0 || strcmp(word, "can") == 0 || strcmp(word, "has") == 0) {
		char arg[256];
		size_t an = 0;

		rules_parse_cond_ws(c);
		if (*c->p != '(') {
			c->bad = true;
			return 0;
		}
		c->p++;
		while (*c->p && *c->p != ')' && an < sizeof(arg) - 1)
			if (*c->p != ' ')
				arg[an++] = *c->p++;
			else
				c->p++;
		arg[an] = '\0';
		if (*c->p == ')')
			c->p++;
		else
			c->bad = true;
		if (word[0] == 'p')   /* plugins are kept by their short name, as loadplugin adds them */
			return rules_parse_has_plugin(c->rs, rules_parse_plugin_short(arg));
		if (word[0] == 'c')
			return rules_parse_perl_can(c->rs, arg);
		return 0;
	}
	c->bad = true;
	return 0;
}

static double rules_parse_cond_cmp(struct rules_parse_cond *c)
{
	double a = rules_parse_cond_term(c), b;

	rules_parse_cond_ws(c);
	if (c->p[0] == '>' && c->p[1] == '=') { c->p += 2; b = rules_parse_cond_term(c); return a >= b; }
	if (c->p[0] == '<' && c->p[1] == '=') { c->p += 2; b = rules_parse_cond_term(c); return a <= b; }
	if (c->p[0] == '=' && c->p[1] == '=') { c->p += 2; b = rules_parse_cond_term(c); return a == b; }
	if (c->p[0] == '!' && c->p[1] == '=') { c->p += 2; b = rules_parse_cond_term(c); return a != b; }
	if (c->p[0] == '>') { c->p++; b = rules_parse_cond_term(c); return a > b; }
	if (c->p[0] == '<') { c->p++; b = rules_parse_cond_term(c); return a < b; }
	return a;
}

static double rules_parse_cond_and(struct rules_parse_cond *c)
{
	double v = rules_parse_cond_cmp(c);

	for (;;) {
		rules_parse_cond_ws(c);
		if (c->p[0] != '&' || c->p[1] != '&')
			return v;
		c->p += 2;
		v = (rules_parse_cond_cmp(c) != 0) && v != 0;
	}
}

static double rules_parse_cond_or(struct rules_parse_cond *c)
{
	double v = rules_parse_cond_and(c);

	for (;;) {
		rules_parse_cond_ws(c);
		if (c->p[0] != '|' || c->p[1] != '|')
			return v;
		c->p += 2;
		v = (rules_parse_cond_and(c) != 0) || v != 0;
	}
}

static bool rules_parse_if(const struct rules_set *rs, const char *expr)
{
	struct rules_parse_cond c = { .p = expr, .rs = rs };
	double v = rules_parse_cond_or(&c);

	rules_parse_cond_ws(&c);
	if (c.bad || *c.p)
		return false;
	return v != 0;
}

/* "Mail::SpamAssassin::Plugin::X" and "X" name the same plugin. */
static const char *rules_parse_plugin_short(const char *name)
{
	const char *pfx = "Mail::SpamAssassin::Plugin::";

	return strncmp(name, pfx, strlen(pfx)) == 0 ? name + strlen(pfx) : name;
}

/* --- rule definitions -------------------------------------------------------------------- */

static void rules_parse_reset_def(struct rules_rule *r)
{
	free(r->pattern);
	free(r->meta);
	free(r->hdr);
	free(r->unset);
	r->pattern = r->meta = r->hdr = r->unset = NULL;
	r->negate = false;
	r->hdr_mime = false;
	r->hdr_mod = RULES_HDR_DECODED;
}

static int rules_parse_header(struct rules_set *rs, struct rules_rule *r, char *rest,
			      bool mime, const char *file, unsigned line)
{
	char *name, *op, *colon, *unset;

	if (strncmp(rest, "eval:", 5) == 0) {
		r->def = RULES_DEF_EVAL;
		rs->st.eval_rules++;
		return rules_parse_set(&r->pattern, rest + 5);
	}
	if (strncmp(rest, "exists:", 7) == 0) {
		r->def = RULES_DEF_EXISTS;
		return rules_parse_set(&r->hdr, rest + 7);
	}
	name = rules_parse_word(&rest);
	op = rules_parse_word(&rest);
	if (!name || !op || (strcmp(op, "=~") != 0 && strcmp(op, "!~") != 0) || !*rest) {
		rules_parse_err(rs, file, line, "%s: expected 'Header =~ /re/'", r->name);
		r->def = RULES_DEF_NONE;
		return 0;
	}
	r->negate = op[0] == '!';
	r->hdr_mime = mime;
	colon = strchr(name, ':');
	if (colon) {
		char *raw = strstr(colon, ":raw");

		/* "From:name:raw": the :raw only changes what is taken apart; the part wins */
		if (raw && raw != colon && raw[4] == '\0')
			*raw = '\0';
		*colon++ = '\0';
		if (strcmp(colon, "raw") == 0)
			r->hdr_mod = RULES_HDR_RAW;
		else if (strcmp(colon, "addr") == 0)
			r->hdr_mod = RULES_HDR_ADDR;
		else if (strcmp(colon, "name") == 0)
			r->hdr_mod = RULES_HDR_NAME;
		else if (strcmp(colon, "host") == 0)
			r->hdr_mod = RULES_HDR_HOST;
		else if (strcmp(colon, "domain") == 0)
			r->hdr_mod = RULES_HDR_DOMAIN;
		else {
			rules_parse_err(rs, file, line, "%s: unknown header modifier ':%s'", r->name, colon);
			r->def = RULES_DEF_NONE;
			return 0;
		}
	}
	/* [if-unset: STRING] at the end */
	unset = strstr(rest, "[if-unset:");
	if (unset) {
		char *e = strrchr(unset, ']');
		char *v = unset + 10;

		if (e) {
			*e = '\0';
			while (*v == ' ' || *v == '\t')
				v++;
			if (rules_parse_set(&r->unset, v) < 0)
				return -ENOMEM;
			*unset = '\0';
			for (e = unset; e > rest && (e[-1] == ' ' || e[-1] == '\t');)
				*--e = '\0';
		}
	}
	r->def = RULES_DEF_REGEX;
	if (rules_parse_set(&r->hdr, name) < 0 || rules_parse_set(&r->pattern, rest) < 0)
		return -ENOMEM;
	return 0;
}

static int rules_parse_define(struct rules_set *rs, const char *kw, char *rest, const char *file,
			      unsigned line)
{
	char *name = rules_parse_word(&rest);
	struct rules_rule *r;

	if (!name || !rules_parse_valid_name(name) || !*rest) {
		rules_parse_err(rs, file, line, "%s: bad rule name or empty definition", kw);
		return 0;
	}
	r = rules_parse_get(rs, name);
	if (!r)
		return -ENOMEM;
	rules_parse_reset_def(r);
	r->file = file;
	r->line = line;
	if (strcmp(kw, "header") == 0 || strcmp(kw, "mimeheader") == 0) {
		r->cls = RULES_CLASS_HEADER;
		return rules_parse_header(rs, r, rest, kw[0] == 'm', file, line);
	}
	if (strcmp(kw, "meta") == 0) {
		r->cls = RULES_CLASS_META;
		r->def = RULES_DEF_META;
		return rules_parse_set(&r->meta, rest);
	}
	if (strcmp(kw, "body") == 0)
		r->cls = RULES_CLASS_BODY;
	else if (strcmp(kw, "rawbody") == 0)
		r->cls = RULES_CLASS_RAWBODY;
	else if (strcmp(kw, "uri") == 0)
		r->cls = RULES_CLASS_URI;
	else
		r->cls = RULES_CLASS_FULL;
	if (strncmp(rest, "eval:", 5) == 0) {
		r->def = RULES_DEF_EVAL;
		rs->st.eval_rules++;
		return rules_parse_set(&r->pattern, rest + 5);
	}
	r->def = RULES_DEF_REGEX;
	return rules_parse_set(&r->pattern, rest);
}

static int rules_parse_score(struct rules_set *rs, char *rest, const char *file, unsigned line)
{
	char *name = rules_parse_word(&rest), *w;
	struct rules_rule *r;
	double v[4];
	unsigned n = 0;

	if (!name || !rules_parse_valid_name(name)) {
		rules_parse_err(rs, file, line, "score: bad rule name");
		return 0;
	}
	while ((w = rules_parse_word(&rest)) != NULL) {
		char *e;

		if (n == 4 || (v[n] = strtod(w, &e), e == w || *e)) {
			rules_parse_err(rs, file, line, "score %s: expected one or four numbers", name);
			return 0;
		}
		n++;
	}
	if (n != 1 && n != 4) {
		rules_parse_err(rs, file, line, "score %s: expected one or four numbers", name);
		return 0;
	}
	r = rules_parse_get(rs, name);
	if (!r)
		return -ENOMEM;
	for (unsigned i = 0; i < 4; i++)
		r->score[i] = n == 1 ? v[0] : v[i];
	r->nscore = n;
	return 0;
}

static int rules_parse_named_text(struct rules_set *rs, char *rest, bool tflags, const char *file,
				  unsigned line)
{
	char *name = rules_parse_word(&rest);
	struct rules_rule *r;

	if (!name || !rules_parse_valid_name(name)) {
		rules_parse_err(rs, file, line, "%s: bad rule name", tflags ? "tflags" : "describe");
		return 0;
	}
	r = rules_parse_get(rs, name);
	if (!r)
		return -ENOMEM;
	return rules_parse_set(tflags ? &r->tflags : &r->describe, rest);
}

static const char *rules_parse_intern_file(struct rules_set *rs, const char *file)
{
	for (size_t i = 0; i < rs->nfiles; i++)
		if (strcmp(rs->files[i], file) == 0)
			return rs->files[i];
	if (rules_parse_strv_add(&rs->files, &rs->nfiles, file) < 0)
		return NULL;
	return rs->files[rs->nfiles - 1];
}

/* One logical line, comments already removed, trimmed, NUL-terminated, writable. */
static int rules_parse_line(struct rules_set *rs, char *s, const char *file, unsigned line)
{
	char *kw = rules_parse_word(&s);
	char *a, *b;

	if (!strcmp(kw, "header") || !strcmp(kw, "mimeheader") || !strcmp(kw, "body") ||
	    !strcmp(kw, "rawbody") || !strcmp(kw, "uri") || !strcmp(kw, "full") || !strcmp(kw, "meta"))
		return rules_parse_define(rs, kw, s, file, line);
	if (!strcmp(kw, "score"))
		return rules_parse_score(rs, s, file, line);
	if (!strcmp(kw, "describe"))
		return rules_parse_named_text(rs, s, false, file, line);
	if (!strcmp(kw, "tflags"))
		return rules_parse_named_text(rs, s, true, file, line);
	if (!strcmp(kw, "required_score") || !strcmp(kw, "required_hits")) {
		char *e;
		double v = strtod(s, &e);

		if (e == s)
			rules_parse_err(rs, file, line, "%s: expected a number", kw);
		else
			rs->required_score = v;
		return 0;
	}
	if (!strcmp(kw, "loadplugin") || !strcmp(kw, "tryplugin")) {
		a = rules_parse_word(&s);
		if (a)
			return rules_parse_strv_add(&rs->plugins, &rs->nplugins, rules_parse_plugin_short(a));
		return 0;
	}
	if (!strcmp(kw, "replace_tag") || !strcmp(kw, "replace_pre") || !strcmp(kw, "replace_post") ||
	    !strcmp(kw, "replace_inter")) {
		a = rules_parse_word(&s);
		if (!a || !*s) {
			rules_parse_err(rs, file, line, "%s: expected a name and a value", kw);
			return 0;
		}
		if (!strcmp(kw, "replace_tag"))
			return rules_parse_kv_set(&rs->tags, &rs->ntags, a, s);
		if (!strcmp(kw, "replace_pre"))
			return rules_parse_kv_set(&rs->pre, &rs->npre, a, s);
		if (!strcmp(kw, "replace_post"))
			return rules_parse_kv_set(&rs->post, &rs->npost, a, s);
		return rules_parse_kv_set(&rs->inter, &rs->ninter, a, s);
	}
	if (!strcmp(kw, "freemail_domains")) {
		while ((b = rules_parse_word(&s)) != NULL) {
			for (char *q = b; *q; q++)
				*q = (char)tolower((unsigned char)*q);
			if (rules_parse_strv_add(&rs->freemail, &rs->nfreemail, b) < 0)
				return -ENOMEM;
		}
		return 0;
	}
	if (!strcmp(kw, "replace_rules")) {
		while ((b = rules_parse_word(&s)) != NULL)
			if (rules_parse_strv_add(&rs->replace, &rs->nreplace, b) < 0)
				return -ENOMEM;
		return 0;
	}
	if (!strcmp(kw, "replace_start") || !strcmp(kw, "replace_end")) {
		a = rules_parse_word(&s);
		if (a)
			return rules_parse_set(kw[8] == 's' ? &rs->rep_start : &rs->rep_end, a);
		return 0;
	}
	rs->st.ignored++;
	return 0;
}

/* A block whose condition is false: recorded with its condition for the compile report. */
static int rules_parse_skip_begin(struct rules_set *rs, const char *file, unsigned line,
				  const char *cond)
{
	struct rules_skip *k;

	if (rs->nskips == rs->capskips) {
		size_t cap = rs->capskips ? rs->capskips * 2 : 32;
		struct rules_skip *v = realloc(rs->skips, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		rs->skips = v;
		rs->capskips = cap;
	}
	k = &rs->skips[rs->nskips];
	*k = (struct rules_skip){ .file = file, .line = line, .cond = strdup(cond) };
	if (!k->cond)
		return -ENOMEM;
	rs->nskips++;
	return 0;
}

/* A line inside a skipped block: the name of the rule it would have defined, if it is one. */
static int rules_parse_skip_rule(struct rules_set *rs, const char *w)
{
	static const char *const defs[] = { "header", "body", "rawbody", "uri", "full", "meta",
					    "mimeheader", "askdns", "uridnsbl", "urirhssub",
					    "urirhsbl", "hashbl_email", NULL };
	struct rules_skip *k = rs->nskips ? &rs->skips[rs->nskips - 1] : NULL;
	const char *name;
	size_t kl, nl;
	char *copy;

	if (!k)
		return 0;
	for (size_t i = 0; defs[i]; i++) {
		kl = strlen(defs[i]);
		if (strncmp(w, defs[i], kl) != 0 || (w[kl] != ' ' && w[kl] != '\t'))
			continue;
		name = w + kl;
		while (*name == ' ' || *name == '\t')
			name++;
		nl = strcspn(name, " \t");
		if (nl == 0)
			return 0;
		copy = strndup(name, nl);   /* strv_add copies it, once per name */
		if (!copy || rules_parse_strv_add(&k->rules, &k->nrules, copy) < 0) {
			free(copy);
			return -ENOMEM;
		}
		free(copy);
		return 0;
	}
	return 0;
}

void rules_parse_report_skipped(const struct rules_set *rs, FILE *f)
{
	for (size_t i = 0; i < rs->nskips; i++) {
		const struct rules_skip *k = &rs->skips[i];

		fprintf(f, "skipped: %s:%u: %s:", k->file, k->line, k->cond);
		if (!k->nrules)
			fprintf(f, " (no rules)");
		for (size_t j = 0; j < k->nrules; j++)
			fprintf(f, " %s", k->rules[j]);
		fputc('\n', f);
	}
}

/* "include FILE" (how sa-update's channel files name their rule files): FILE relative to the
 * including file's directory, parsed in place, at most RULES_PARSE_MAX_INCLUDE deep. */
static int rules_parse_include(struct rules_set *rs, const char *file, unsigned line,
			       const char *arg)
{
	char path[4096];
	const char *slash;
	int r;

	while (*arg == ' ' || *arg == '\t')
		arg++;
	if (!*arg) {
		rules_parse_err(rs, file, line, "include: expected a file name");
		return 0;
	}
	if (rs->include_depth >= RULES_PARSE_MAX_INCLUDE) {
		rules_parse_err(rs, file, line, "include: nested more than %d deep",
				RULES_PARSE_MAX_INCLUDE);
		return 0;
	}
	slash = strrchr(file, '/');
	if (arg[0] == '/' || slash == NULL)
		snprintf(path, sizeof(path), "%s", arg);
	else
		snprintf(path, sizeof(path), "%.*s/%s", (int)(slash - file), file, arg);
	rs->include_depth++;
	r = rules_parse_file(rs, path);
	rs->include_depth--;
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		rules_parse_err(rs, file, line, "include %s: %s", path, strerror(-r));
	return 0;
}

int rules_parse_text(struct rules_set *rs, const char *file, const char *text, size_t len)
{
	/* The state of if/ifplugin nesting: for each level, whether the block is active. */
	bool active[RULES_PARSE_MAX_NEST + 1];
	bool taken[RULES_PARSE_MAX_NEST + 1];
	unsigned depth = 0, skip_depth = 0;   /* the level whose block is being skipped, or 0 */
	unsigned lineno = 0;
	const char *p = text, *end = text + len;
	char *buf = malloc(RULES_PARSE_MAX_LINE + 1);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	file = rules_parse_intern_file(rs, file);
	if (!file) {
		free(buf);
		return -ENOMEM;
	}
	XXH64_update(rs->hash, text, len);
	active[0] = true;
	while (p < end && rc == 0) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (size_t)((nl ? nl : end) - p);
		char *s, *w, *o;
		bool on = active[depth];

		lineno++;
		rs->st.lines++;
		if (n > RULES_PARSE_MAX_LINE) {
			rules_parse_err(rs, file, lineno, "line longer than %u bytes", RULES_PARSE_MAX_LINE);
			p = nl ? nl + 1 : end;
			continue;
		}
		memcpy(buf, p, n);
		buf[n] = '\0';
		p = nl ? nl + 1 : end;
		/* comments: '#' not after a backslash; then "\#" becomes '#' */
		for (s = buf; *s; s++)
			if (*s == '#' && (s == buf || s[-1] != '\\')) {
				*s = '\0';
				break;
			}
		for (s = o = buf; *s; s++) {
			if (s[0] == '\\' && s[1] == '#')
				continue;
			*o++ = *s;
		}
		*o = '\0';
		while (o > buf && (o[-1] == ' ' || o[-1] == '\t' || o[-1] == '\r' || o[-1] == '\f'))
			*--o = '\0';
		s = buf;
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s) {
			rs->st.comments++;
			continue;
		}
		if (memchr(s, '\0', (size_t)(o - s)) || strlen(s) != (size_t)(o - s)) {
			/* a NUL inside the line: not text we understand */
			rules_parse_err(rs, file, lineno, "NUL byte in line");
			continue;
		}
		w = s;
		if (!strncmp(w, "ifplugin", 8) && (w[8] == ' ' || w[8] == '\t') ) {
			const char *pl = w + 9;

			while (*pl == ' ' || *pl == '\t')
				pl++;
			if (depth >= RULES_PARSE_MAX_NEST) {
				rules_parse_err(rs, file, lineno, "if/ifplugin nested too deep");
				continue;
			}
			depth++;
			active[depth] = on && rules_parse_has_plugin(rs, rules_parse_plugin_short(pl));
			taken[depth] = active[depth];
			if (on && !active[depth]) {
				rs->st.skipped_blocks++;
				skip_depth = depth;
				if (rules_parse_skip_begin(rs, file, lineno, w) < 0)
					rc = -ENOMEM;
			}
			continue;
		}
		if (!strncmp(w, "if", 2) && (w[2] == ' ' || w[2] == '\t' || w[2] == '(')) {
			if (depth >= RULES_PARSE_MAX_NEST) {
				rules_parse_err(rs, file, lineno, "if/ifplugin nested too deep");
				continue;
			}
			depth++;
			active[depth] = on && rules_parse_if(rs, w + 2);
			taken[depth] = active[depth];
			if (on && !active[depth]) {
				rs->st.skipped_blocks++;
				skip_depth = depth;
				if (rules_parse_skip_begin(rs, file, lineno, w) < 0)
					rc = -ENOMEM;
			}
			continue;
		}
		if (!strcmp(w, "else")) {
			if (depth == 0) {
				rules_parse_err(rs, file, lineno, "else without if");
				continue;
			}
			active[depth] = active[depth - 1] && !taken[depth];
			if (active[depth - 1] && !active[depth] && skip_depth == 0) {
				/* the else of a block that was taken: its own lines are skipped */
				rs->st.skipped_blocks++;
				skip_depth = depth;
				if (rules_parse_skip_begin(rs, file, lineno, "else") < 0)
					rc = -ENOMEM;
			} else if (active[depth] && skip_depth == depth) {
				skip_depth = 0;
			}
			taken[depth] = true;
			continue;
		}
		if (!strcmp(w, "endif")) {
			if (depth == 0)
				rules_parse_err(rs, file, lineno, "endif without if");
			else if (depth-- == skip_depth)
				skip_depth = 0;
			continue;
		}
		if (!on) {
			rs->st.skipped_lines++;
			if (rules_parse_skip_rule(rs, w) < 0)
				rc = -ENOMEM;
			continue;
		}
		if (!strncmp(w, "lang", 4) && (w[4] == ' ' || w[4] == '\t')) {
			rs->st.ignored++;  /* translations only */
			continue;
		}
		if (!strncmp(w, "include", 7) && (w[7] == ' ' || w[7] == '\t')) {
			rc = rules_parse_include(rs, file, lineno, w + 8);
			continue;
		}
		rc = rules_parse_line(rs, w, file, lineno);
	}
	if (depth)
		rules_parse_err(rs, file, lineno, "%u if/ifplugin block(s) not closed", depth);
	free(buf);
	return rc;
}

int rules_parse_file(struct rules_set *rs, const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	char *text;
	size_t got = 0;
	int rc;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > RULES_PARSE_MAX_FILE) {
		/* a rule file is text of a sane size: never a device, a FIFO or /proc/kcore */
		close(fd);
		return S_ISREG(st.st_mode) ? -EFBIG : -EINVAL;
	}
	text = malloc((size_t)st.st_size + 1);
	if (!text) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, text + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			free(text);
			close(fd);
			return rc;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	rc = rules_parse_text(rs, path, text, got);
	free(text);
	return rc;
}

/* --- ReplaceTags (Mail::SpamAssassin::Plugin::ReplaceTags::finish_parsing_end) -------------- */

struct rules_parse_sb {
	char  *p;
	size_t len, cap;
	bool   oom;
};

static void rules_parse_sb_add(struct rules_parse_sb *sb, const char *s, size_t n)
{
	if (sb->oom)
		return;
	if (sb->len + n + 1 > sb->cap) {
		size_t cap = (sb->len + n + 1) * 2;
		char *np = realloc(sb->p, cap);

		if (!np) {
			sb->oom = true;
			return;
		}
		sb->p = np;
		sb->cap = cap;
	}
	memcpy(sb->p + sb->len, s, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
}

/* Removes "<kind NAME>" from re (in place) and returns NAME's value in table, or NULL. */
static const char *rules_parse_take_mod(struct rules_set *rs, char *re, const char *kind,
					const struct rules_kv *kv, size_t n, char *name, size_t namelen)
{
	size_t sl = strlen(rs->rep_start), kl = strlen(kind);

	for (char *p = strstr(re, rs->rep_start); p; p = strstr(p + 1, rs->rep_start)) {
		char *e;

		if (strncmp(p + sl, kind, kl) != 0 || p[sl + kl] != ' ')
			continue;
		e = strstr(p + sl + kl + 1, rs->rep_end);
		if (!e || (size_t)(e - (p + sl + kl + 1)) >= namelen)
			continue;
		memcpy(name, p + sl + kl + 1, (size_t)(e - (p + sl + kl + 1)));
		name[e - (p + sl + kl + 1)] = '\0';
		memmove(p, e + strlen(rs->rep_end), strlen(e + strlen(rs->rep_end)) + 1);
		return rules_parse_kv_get(kv, n, name);
	}
	return NULL;
}

/* One pass over a pattern body; *again when a replacement brought in another tag. */
static char *rules_parse_replace_once(struct rules_set *rs, char *re, bool *again)
{
	char name[128];
	const char *pre = rules_parse_take_mod(rs, re, "pre", rs->pre, rs->npre, name, sizeof(name));
	const char *post = rules_parse_take_mod(rs, re, "post", rs->post, rs->npost, name, sizeof(name));
	const char *inter = rules_parse_take_mod(rs, re, "inter", rs->inter, rs->ninter, name, sizeof(name));
	struct rules_parse_sb sb = { 0 };
	const char *p = re;
	bool prev_tag = true;  /* a tag at the very start gets the "inter" too, as split() does */

	*again = false;
	while (*p) {
		const char *t = strchr(p, '<');
		const char *e = t ? strchr(t + 1, '>') : NULL;
		const char *lt2 = t ? strchr(t + 1, '<') : NULL;

		if (!t || !e) {
			rules_parse_sb_add(&sb, p, strlen(p));
			break;
		}
		if (lt2 && lt2 < e) {  /* "<" inside: not a tag (split's [^<>]+) */
			rules_parse_sb_add(&sb, p, (size_t)(lt2 - p));
			p = lt2;
			prev_tag = false;
			continue;
		}
		if (t > p) {
			rules_parse_sb_add(&sb, p, (size_t)(t - p));
			prev_tag = false;
		} else if (prev_tag && inter) {
			rules_parse_sb_add(&sb, inter, strlen(inter));
		}
		{
			size_t nl = (size_t)(e - t - 1);
			const char *val = NULL;

			if (nl < sizeof(name)) {
				memcpy(name, t + 1, nl);
				name[nl] = '\0';
				val = rules_parse_kv_get(rs->tags, rs->ntags, name);
			}
			if (pre)
				rules_parse_sb_add(&sb, pre, strlen(pre));
			if (val) {
				rules_parse_sb_add(&sb, val, strlen(val));
				if (strchr(val, '<') && strchr(val, '>'))
					*again = true;
			} else {
				rules_parse_sb_add(&sb, t, nl + 2);
			}
			if (post)
				rules_parse_sb_add(&sb, post, strlen(post));
		}
		p = e + 1;
		prev_tag = true;
	}
	if (sb.oom || !sb.p) {
		free(sb.p);
		return sb.oom ? NULL : strdup("");
	}
	return sb.p;
}

int rules_parse_finish(struct rules_set *rs)
{
	for (size_t i = 0; i < rs->nreplace; i++) {
		struct rules_rule *r = rules_parse_find(rs, rs->replace[i]);
		char *re, *nre, flags[16];
		bool again = true;
		size_t plen;

		if (!r || r->def != RULES_DEF_REGEX || !r->pattern)
			continue;
		if (rules_parse_delims(r->pattern, &re, flags) < 0)
			continue;
		for (int pass = 0; again && pass <= 5; pass++) {
			nre = rules_parse_replace_once(rs, re, &again);
			free(re);
			if (!nre)
				return -ENOMEM;
			re = nre;
		}
		plen = strlen(re) + 20;
		nre = malloc(plen);
		if (!nre) {
			free(re);
			return -ENOMEM;
		}
		/* m{} would break on a '}' inside; \x01 never appears in a rule */
		snprintf(nre, plen, "m\x01%s\x01%s", re, flags);
		free(re);
		free(r->pattern);
		r->pattern = nre;
	}
	return 0;
}
