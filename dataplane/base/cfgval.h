/*
 * cfgval.h - typed values in configuration files: sizes ("25M"), durations ("300", "5m", "5d"),
 * booleans, bounded integers and host:port pairs. Each returns 0 or -EINVAL/-ERANGE and never
 * touches *_r on error, so a caller can report the line and key that were wrong. Any thread.
 */
#ifndef SLUICE_BASE_CFGVAL_H
#define SLUICE_BASE_CFGVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Bytes, with an optional K, M or G suffix (powers of 1024). */
int cfgval_size(const char *s, uint64_t *bytes_r);
/* Milliseconds; a bare number is seconds; suffixes ms, s, m, h, d. */
int cfgval_duration_ms(const char *s, uint64_t *ms_r);
/* yes/no, true/false, on/off, 1/0. */
int cfgval_bool(const char *s, bool *b_r);
int cfgval_uint(const char *s, uint64_t min, uint64_t max, uint64_t *v_r);
/* "1.2.3.4:25", "[::1]:25", "host:25" (hosts are resolved with getaddrinfo, numeric only when
 * numeric_only). Fills addr_r/len_r. */
int cfgval_hostport(const char *s, bool numeric_only, struct sockaddr_storage *addr_r,
		    socklen_t *len_r);
/* A key setter's refusal after one of the above returned r: why = "bad value \"VALUE\"", with
 * " (out of range)" after -ERANGE when range_note. Returns -EINVAL. */
int cfgval_bad_value(int r, const char *value, bool range_note, char *why, size_t whylen);

#endif
