/*
 * filter_meta.c - evaluates a meta rule's postfix code (ops of rules_format.h) over the hit
 * bits of a message. Shard thread; no allocation; the stack is bounded and the loader checked
 * that code reads only rules before it.
 */
#include "filter_types.h"

double filter_meta_eval(const struct rules_meta_instr *ins, uint32_t n, const uint64_t *hits,
			const uint8_t *cnt)
{
	double st[RULES_META_STACK];
	unsigned sp = 0;

	for (uint32_t i = 0; i < n; i++) {
		const struct rules_meta_instr *in = &ins[i];
		double a, b;

		switch (in->op) {
		case RULES_OP_RULE:
		case RULES_OP_CONST:
			if (sp >= RULES_META_STACK)
				return 0;
			st[sp++] = in->op == RULES_OP_CONST ? in->val :
				   !filter_bit(hits, in->arg) ? 0 : cnt[in->arg] ? (double)cnt[in->arg] : 1;
			continue;
		case RULES_OP_NOT:
		case RULES_OP_NEG:
			if (sp < 1)
				return 0;
			st[sp - 1] = in->op == RULES_OP_NOT ? (st[sp - 1] == 0) : -st[sp - 1];
			continue;
		default:
			break;
		}
		if (sp < 2)
			return 0;
		b = st[--sp];
		a = st[sp - 1];
		switch (in->op) {
		case RULES_OP_AND: a = (a != 0) && (b != 0); break;
		case RULES_OP_OR:  a = (a != 0) || (b != 0); break;
		case RULES_OP_ADD: a = a + b; break;
		case RULES_OP_SUB: a = a - b; break;
		case RULES_OP_MUL: a = a * b; break;
		case RULES_OP_DIV: a = b != 0 ? a / b : 0; break;
		case RULES_OP_GT:  a = a > b; break;
		case RULES_OP_GE:  a = a >= b; break;
		case RULES_OP_LT:  a = a < b; break;
		case RULES_OP_LE:  a = a <= b; break;
		case RULES_OP_EQ:  a = a == b; break;
		case RULES_OP_NE:  a = a != b; break;
		default: return 0;
		}
		st[sp - 1] = a;
	}
	return sp == 1 ? st[0] : 0;
}
