/*
 * wire_check.c - what may go into a fragment (wire.h): names, policy keys, safe values. The
 * control checks every value with these before it stores it, so the fragments it renders are
 * always well-formed INI; the data plane's parser still judges their meaning.
 */
#include "wire/wire.h"

#include <string.h>

bool wire_domain_name_valid(const char *name)
{
	size_t len = strlen(name), label = 0;

	if (len == 0 || len > 253 || name[0] == '.' || name[len - 1] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (c == '.') {
			if (label == 0 || name[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
			return false;
		if (c == '-' && label == 0)
			return false;
		if (++label > 63)
			return false;
	}
	return name[len - 1] != '-';
}

bool wire_label_valid(const char *label)
{
	size_t len = strlen(label);

	if (len == 0 || len > 63)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = label[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
			return false;
	}
	return true;
}

bool wire_policy_key_known(const char *key)
{
	static const char *const thresholds[] = { "tag_score", "quarantine_score", "reject_score",
						  "tempfail_score" };
	static const char *const lists[] = { "sender_allow", "sender_block", "ip_allow", "ip_block" };
	const char *k = key;

	for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
		if (strcmp(key, lists[i]) == 0)
			return true;
	if (strncmp(k, "primary_", 8) == 0)
		k += 8;
	else if (strncmp(k, "fallback_", 9) == 0)
		k += 9;
	for (size_t i = 0; i < sizeof(thresholds) / sizeof(thresholds[0]); i++)
		if (strcmp(k, thresholds[i]) == 0)
			return true;
	return false;
}

bool wire_value_safe(const char *value)
{
	size_t len = strlen(value);

	if (len == 0 || len > WIRE_VALUE_MAX || value[0] == '[')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)value[i];

		if (c < 0x20 || c == 0x7f || c == ';' || c == '#')
			return false;
	}
	return true;
}
