/*
 * rules_meta.c - meta expression compiler and evaluator (see rules_meta.h).
 *
 * The evaluator is a header-only idea in spirit: dataplane/filter carries its own copy of the
 * same loop over the same wire ops (filter_meta.c) so that the data plane never links the
 * compiler; tests check that both agree.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules_meta.h"

struct rules_meta_p {
	const char *s, *p;
	rules_meta_resolve_fn *resolve;
	void *arg;
	struct rules_meta_instr *ins;
	uint32_t n, cap;
	int depth, maxdepth;     /* stack depth the code reaches */
	unsigned unknown;
	int rc;
	char *err;
	size_t errlen;
};

static void rules_meta_fail(struct rules_meta_p *m, int rc, const char *what)
{
	if (m->rc)
		return;
	m->rc = rc;
	if (m->err && m->errlen)
		snprintf(m->err, m->errlen, "%s at offset %zu", what, (size_t)(m->p - m->s));
}

static void rules_meta_emit(struct rules_meta_p *m, uint32_t op, uint32_t arg, double val)
{
	if (m->rc)
		return;
	if (m->n >= RULES_META_MAX_INSTR) {
		rules_meta_fail(m, -E2BIG, "expression too long");
		return;
	}
	if (m->n == m->cap) {
		uint32_t cap = m->cap ? m->cap * 2 : 16;
		struct rules_meta_instr *ni = realloc(m->ins, cap * sizeof(*ni));

		if (!ni) {
			rules_meta_fail(m, -ENOMEM, "out of memory");
			return;
		}
		m->ins = ni;
		m->cap = cap;
	}
	m->ins[m->n++] = (struct rules_meta_instr){ .op = op, .arg = arg, .val = val };
	if (op == RULES_OP_RULE || op == RULES_OP_CONST)
		m->depth++;
	else if (op != RULES_OP_NOT && op != RULES_OP_NEG)
		m->depth--;
	if (m->depth > m->maxdepth)
		m->maxdepth = m->depth;
	if (m->maxdepth > (int)RULES_META_STACK)
		rules_meta_fail(m, -E2BIG, "expression nested too deep");
}

static void rules_meta_ws(struct rules_meta_p *m)
{
	while (*m->p == ' ' || *m->p == '\t')
		m->p++;
}

static bool rules_meta_accept(struct rules_meta_p *m, const char *tok)
{
	size_t n = strlen(tok);

	rules_meta_ws(m);
	if (strncmp(m->p, tok, n) != 0)
		return false;
	/* "<" must not take the first half of "<=" etc.; "!" must not take "!=" */
	if (n == 1 && (tok[0] == '<' || tok[0] == '>' || tok[0] == '!') && m->p[1] == '=')
		return false;
	m->p += n;
	return true;
}

static void rules_meta_or(struct rules_meta_p *m, int nest);

static void rules_meta_unary(struct rules_meta_p *m, int nest)
{
	if (m->rc)
		return;
	if (nest > 200) {
		rules_meta_fail(m, -E2BIG, "expression nested too deep");
		return;
	}
	rules_meta_ws(m);
	if (rules_meta_accept(m, "!")) {
		rules_meta_unary(m, nest + 1);
		rules_meta_emit(m, RULES_OP_NOT, 0, 0);
		return;
	}
	if (rules_meta_accept(m, "-")) {
		rules_meta_unary(m, nest + 1);
		rules_meta_emit(m, RULES_OP_NEG, 0, 0);
		return;
	}
	if (rules_meta_accept(m, "+")) {
		rules_meta_unary(m, nest + 1);
		return;
	}
	if (rules_meta_accept(m, "(")) {
		rules_meta_or(m, nest + 1);
		if (!rules_meta_accept(m, ")"))
			rules_meta_fail(m, -EINVAL, "expected ')'");
		return;
	}
	if (isdigit((unsigned char)*m->p) || (*m->p == '.' && isdigit((unsigned char)m->p[1]))) {
		char *e;
		double v = strtod(m->p, &e);

		m->p = e;
		rules_meta_emit(m, RULES_OP_CONST, 0, v);
		return;
	}
	if (isalpha((unsigned char)*m->p) || *m->p == '_') {
		char name[256];
		size_t n = 0;
		int ix;

		while ((isalnum((unsigned char)*m->p) || *m->p == '_')) {
			if (n < sizeof(name) - 1)
				name[n++] = *m->p;
			m->p++;
		}
		name[n] = '\0';
		ix = m->resolve ? m->resolve(m->arg, name) : -1;
		if (ix < 0) {
			m->unknown++;
			rules_meta_emit(m, RULES_OP_CONST, 0, 0);
		} else {
			rules_meta_emit(m, RULES_OP_RULE, (uint32_t)ix, 0);
		}
		return;
	}
	rules_meta_fail(m, -EINVAL, *m->p ? "unexpected character" : "unexpected end");
}

static void rules_meta_mul(struct rules_meta_p *m, int nest)
{
	rules_meta_unary(m, nest);
	while (!m->rc) {
		if (rules_meta_accept(m, "*")) {
			rules_meta_unary(m, nest);
			rules_meta_emit(m, RULES_OP_MUL, 0, 0);
		} else if (rules_meta_accept(m, "/")) {
			rules_meta_unary(m, nest);
			rules_meta_emit(m, RULES_OP_DIV, 0, 0);
		} else
			return;
	}
}

static void rules_meta_add(struct rules_meta_p *m, int nest)
{
	rules_meta_mul(m, nest);
	while (!m->rc) {
		if (rules_meta_accept(m, "+")) {
			rules_meta_mul(m, nest);
			rules_meta_emit(m, RULES_OP_ADD, 0, 0);
		} else if (rules_meta_accept(m, "-")) {
			rules_meta_mul(m, nest);
			rules_meta_emit(m, RULES_OP_SUB, 0, 0);
		} else
			return;
	}
}

static void rules_meta_rel(struct rules_meta_p *m, int nest)
{
	rules_meta_add(m, nest);
	while (!m->rc) {
		uint32_t op;

		if (rules_meta_accept(m, "<="))
			op = RULES_OP_LE;
		else if (rules_meta_accept(m, ">="))
			op = RULES_OP_GE;
		else if (rules_meta_accept(m, "<"))
			op = RULES_OP_LT;
		else if (rules_meta_accept(m, ">"))
			op = RULES_OP_GT;
		else
			return;
		rules_meta_add(m, nest);
		rules_meta_emit(m, op, 0, 0);
	}
}

static void rules_meta_eq(struct rules_meta_p *m, int nest)
{
	rules_meta_rel(m, nest);
	while (!m->rc) {
		uint32_t op;

		if (rules_meta_accept(m, "=="))
			op = RULES_OP_EQ;
		else if (rules_meta_accept(m, "!="))
			op = RULES_OP_NE;
		else
			return;
		rules_meta_rel(m, nest);
		rules_meta_emit(m, op, 0, 0);
	}
}

static void rules_meta_and(struct rules_meta_p *m, int nest)
{
	rules_meta_eq(m, nest);
	while (!m->rc && rules_meta_accept(m, "&&")) {
		rules_meta_eq(m, nest);
		rules_meta_emit(m, RULES_OP_AND, 0, 0);
	}
}

static void rules_meta_or(struct rules_meta_p *m, int nest)
{
	rules_meta_and(m, nest);
	while (!m->rc && rules_meta_accept(m, "||")) {
		rules_meta_and(m, nest);
		rules_meta_emit(m, RULES_OP_OR, 0, 0);
	}
}

int rules_meta_compile(const char *expr, rules_meta_resolve_fn *resolve, void *arg,
		       struct rules_meta_code *code_r, char *err, size_t errlen)
{
	struct rules_meta_p m = { .s = expr, .p = expr, .resolve = resolve, .arg = arg,
				  .err = err, .errlen = errlen };

	memset(code_r, 0, sizeof(*code_r));
	rules_meta_or(&m, 0);
	rules_meta_ws(&m);
	if (!m.rc && *m.p)
		rules_meta_fail(&m, -EINVAL, "trailing text");
	if (!m.rc && m.n == 0)
		rules_meta_fail(&m, -EINVAL, "empty expression");
	if (m.rc) {
		free(m.ins);
		return m.rc;
	}
	code_r->ins = m.ins;
	code_r->n = m.n;
	code_r->unknown = m.unknown;
	return 0;
}

void rules_meta_clear(struct rules_meta_code *code)
{
	free(code->ins);
	memset(code, 0, sizeof(*code));
}
