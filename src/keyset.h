/* SPDX-License-Identifier: ISC */
/*
 * keyset.h: a set of 32-byte keys (open addressing, keyed hash). Peers
 * choose the keys, so slots come from util_key_hash with the caller's
 * seed. The all-zero key cannot be stored (it marks a free slot).
 */
#ifndef DERPD_KEYSET_H
#define DERPD_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Zeroed is empty. ks_slot[0..ks_cap) holds the keys and zero slots. */
struct keyset {
	uint8_t		(*ks_slot)[KEY_LEN];
	size_t		 ks_n, ks_cap;
};

/* Add key (seed: 16 bytes). 0 (also when present), or -1: no memory. */
int	keyset_add(struct keyset *, const uint8_t *seed, const uint8_t *key);
/* keyset_add with h = util_key_hash(seed, key), already computed. */
int	keyset_add_h(struct keyset *, const uint8_t *seed, const uint8_t *key,
	    uint64_t h);
bool	keyset_has(const struct keyset *, const uint8_t *seed,
	    const uint8_t *key);
/* Remove key; true when it was there. */
bool	keyset_del(struct keyset *, const uint8_t *seed, const uint8_t *key);
/* Free the slots; the set is empty again. */
void	keyset_clear(struct keyset *);

#ifdef __cplusplus
}
#endif
#endif
