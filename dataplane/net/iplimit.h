/*
 * iplimit.h - connections per client IP across all shards of the node (Postfix's anvil, without
 * the extra process). A shard's connections from one IP may be spread over every shard by the
 * SO_REUSEPORT hash, so the count is node-wide: a fixed table of 64-bit words, each packing a
 * 40-bit hash of the address and a 24-bit count, changed with compare-and-swap. It is the one
 * piece of mutable state shards share, touched once at connect and once at close, never per byte.
 *
 * Approximations, documented: two shards inserting the same new address at the same instant may
 * take two slots (the limit then counts each slot, so the address may briefly get up to
 * limit x shards); a full bucket (8 colliding addresses) fails open and is counted.
 */
#ifndef SLUICE_NET_IPLIMIT_H
#define SLUICE_NET_IPLIMIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

/* Sizes the table (main, before the shards start). 0 or -ENOMEM. */
int iplimit_init(unsigned slots_log2);
/* Counts a new connection from addr; false (and nothing counted) if it would pass limit.
 * limit 0 means no limit (still counted). *key_r is what iplimit_release needs. */
bool iplimit_acquire(const struct sockaddr_storage *addr, uint32_t limit, uint64_t *key_r);
void iplimit_release(uint64_t key);
/* Connections now counted for addr (tests, metrics). */
uint32_t iplimit_count(const struct sockaddr_storage *addr);

#endif
