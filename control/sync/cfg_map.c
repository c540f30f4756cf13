/*
 * cfg_map.c - committed and staged configuration keys, and the assembled buffer. See
 * cfg_map.h. Committed entries are a sorted array (binary search; a few thousand domains);
 * staged changes a list in arrival order.
 */
#include "cfg_map.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cfg_entry {
	char   *key;
	char   *value;      /* NULL in a staged delete */
	size_t  len;
};

struct cfg_list {
	struct cfg_entry *v;
	size_t            n, cap;
};

struct cfg_map {
	char            *node_key;     /* "node.<name>" */
	struct cfg_list  committed;    /* sorted by key */
	struct cfg_list  staged;       /* in arrival order */
	uint64_t         version;
	size_t           bytes;
};

static void entry_free(struct cfg_entry *e)
{
	free(e->key);
	free(e->value);
}

static void list_clear(struct cfg_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		entry_free(&l->v[i]);
	free(l->v);
	*l = (struct cfg_list){ 0 };
}

static int list_grow(struct cfg_list *l)
{
	if (l->n < l->cap)
		return 0;
	size_t cap = l->cap ? l->cap * 2 : 16;
	struct cfg_entry *v = realloc(l->v, cap * sizeof *v);
	if (!v)
		return -ENOMEM;
	l->v = v;
	l->cap = cap;
	return 0;
}

struct cfg_map *cfg_map_new(const char *node_name)
{
	struct cfg_map *m = calloc(1, sizeof *m);
	if (!m)
		return NULL;
	if (asprintf(&m->node_key, "node.%s", node_name) < 0) {
		free(m);
		return NULL;
	}
	return m;
}

void cfg_map_free(struct cfg_map **m)
{
	if (!*m)
		return;
	list_clear(&(*m)->committed);
	list_clear(&(*m)->staged);
	free((*m)->node_key);
	free(*m);
	*m = NULL;
}

/* Index of key in the committed array, or where it would go (*found says which). */
static size_t find(const struct cfg_list *l, const char *key, bool *found)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(l->v[mid].key, key);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

/* Moves a staged entry into the committed array (a delete removes the key). */
static int commit_one(struct cfg_map *m, struct cfg_entry *e)
{
	struct cfg_list *l = &m->committed;
	bool found;
	size_t i = find(l, e->key, &found);
	if (found) {
		m->bytes -= strlen(l->v[i].key) + l->v[i].len;
		entry_free(&l->v[i]);
		if (!e->value) {
			memmove(&l->v[i], &l->v[i + 1], (l->n - i - 1) * sizeof *l->v);
			l->n--;
			m->bytes -= strlen(e->key);
			entry_free(e);
			return 0;
		}
		l->v[i] = *e;
		return 0;
	}
	if (!e->value) {
		m->bytes -= strlen(e->key);
		entry_free(e);
		return 0;
	}
	int rc = list_grow(l);
	if (rc < 0)
		return rc;
	memmove(&l->v[i + 1], &l->v[i], (l->n - i) * sizeof *l->v);
	l->v[i] = *e;
	l->n++;
	return 0;
}

static int parse_version(const char *value, size_t len, uint64_t *v_r)
{
	uint64_t v = 0;
	size_t i = 0;
	while (i < len && (value[i] == ' ' || value[i] == '\t'))
		i++;
	size_t digits = 0;
	for (; i < len && value[i] >= '0' && value[i] <= '9'; i++, digits++) {
		if (v > (UINT64_MAX - 9) / 10)
			return -EBADMSG;
		v = v * 10 + (uint64_t)(value[i] - '0');
	}
	while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == '\r' || value[i] == '\n'))
		i++;
	if (digits == 0 || i != len)
		return -EBADMSG;
	*v_r = v;
	return 0;
}

int cfg_map_feed(struct cfg_map *m, const char *key, const char *value, size_t len,
		 enum cfg_op op)
{
	if (strcmp(key, CFG_MAP_VERSION_KEY) == 0) {
		if (op != CFG_OP_PUT)
			return 0;       /* a deleted version names no configuration: ignored */
		uint64_t v;
		int rc = parse_version(value, len, &v);
		if (rc < 0)
			return rc;
		size_t i = 0;
		while (i < m->staged.n && (rc = commit_one(m, &m->staged.v[i])) == 0)
			i++;
		/* commit_one fails only in list_grow, before it took the entry: keep the rest. */
		memmove(m->staged.v, m->staged.v + i, (m->staged.n - i) * sizeof *m->staged.v);
		m->staged.n -= i;
		if (rc < 0)
			return rc;
		bool changed = v != m->version;
		m->version = v;
		return changed ? 1 : 0;
	}
	size_t klen = strlen(key);
	if (op != CFG_OP_PUT)
		len = 0;
	if (m->bytes + klen + len > CFG_MAP_MAX_BYTES)
		return -EFBIG;
	int rc = list_grow(&m->staged);
	if (rc < 0)
		return rc;
	struct cfg_entry e = { .key = strdup(key), .len = len };
	if (op == CFG_OP_PUT) {
		e.value = malloc(len + 1);
		if (e.value) {
			memcpy(e.value, value, len);
			e.value[len] = '\0';
		}
	}
	if (!e.key || (op == CFG_OP_PUT && !e.value)) {
		entry_free(&e);
		return -ENOMEM;
	}
	m->staged.v[m->staged.n++] = e;
	m->bytes += klen + len;
	return 0;
}

uint64_t cfg_map_version(const struct cfg_map *m)
{
	return m->version;
}

const char *cfg_map_get(const struct cfg_map *m, const char *key, size_t *len_r)
{
	bool found;
	size_t i = find(&m->committed, key, &found);
	if (!found)
		return NULL;
	if (len_r)
		*len_r = m->committed.v[i].len;
	return m->committed.v[i].value;
}

static unsigned count_lines(const char *p, size_t len)
{
	unsigned n = 0;
	for (const char *end = p + len; (p = memchr(p, '\n', (size_t)(end - p))); p++)
		n++;
	return n;
}

/* Appends one fragment (with a newline if it lacks one) and records where it starts. */
static int render_part(FILE *f, struct cfg_render *r, size_t *cap, unsigned *line,
		       const char *key, const char *text, size_t len)
{
	if (len == 0)
		return 0;
	if (r->n_parts == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		struct cfg_render_part *p = realloc(r->parts, ncap * sizeof *p);
		if (!p)
			return -ENOMEM;
		r->parts = p;
		*cap = ncap;
	}
	char *k = strdup(key);
	if (!k)
		return -ENOMEM;
	r->parts[r->n_parts++] = (struct cfg_render_part){ .key = k, .first_line = *line };
	fwrite(text, 1, len, f);
	*line += count_lines(text, len);
	if (text[len - 1] != '\n') {
		fputc('\n', f);
		(*line)++;
	}
	return 0;
}

int cfg_map_render(const struct cfg_map *m, const char *base, size_t base_len,
		   struct cfg_render *r)
{
	*r = (struct cfg_render){ 0 };
	FILE *f = open_memstream(&r->buf, &r->len);
	if (!f)
		return -ENOMEM;
	size_t cap = 0;
	unsigned line = 1;
	int rc = render_part(f, r, &cap, &line, "base", base, base_len);
	static const char *const fixed[] = { "global", "roles", NULL };
	for (size_t i = 0; rc == 0 && fixed[i]; i++) {
		size_t len;
		const char *v = cfg_map_get(m, fixed[i], &len);
		if (v)
			rc = render_part(f, r, &cap, &line, fixed[i], v, len);
	}
	size_t len;
	const char *own = rc == 0 ? cfg_map_get(m, m->node_key, &len) : NULL;
	if (own)
		rc = render_part(f, r, &cap, &line, m->node_key, own, len);
	bool found;
	for (size_t i = find(&m->committed, "domain.", &found); rc == 0 && i < m->committed.n; i++) {
		const struct cfg_entry *e = &m->committed.v[i];
		if (strncmp(e->key, "domain.", 7) != 0)
			break;
		rc = render_part(f, r, &cap, &line, e->key, e->value, e->len);
	}
	if (fclose(f) != 0 && rc == 0)
		rc = -ENOMEM;
	if (rc < 0)
		cfg_render_free(r);
	return rc;
}

void cfg_render_free(struct cfg_render *r)
{
	for (size_t i = 0; i < r->n_parts; i++)
		free(r->parts[i].key);
	free(r->parts);
	free(r->buf);
	*r = (struct cfg_render){ 0 };
}

const char *cfg_render_key_of_line(const struct cfg_render *r, unsigned line)
{
	const char *key = NULL;
	for (size_t i = 0; i < r->n_parts && r->parts[i].first_line <= line; i++)
		key = r->parts[i].key;
	unsigned total = count_lines(r->buf ? r->buf : "", r->len);
	return line >= 1 && line <= total ? key : NULL;
}
