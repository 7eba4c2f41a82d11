/* SPDX-License-Identifier: ISC */
/* keyset.c: a set of 32-byte keys, open addressing with a keyed hash. */
#include <stdlib.h>
#include <string.h>

#include "keyset.h"
#include "util.h"

/* Put key (hash h) in a table of cap slots (a power of two, not full). */
static void
place_h(uint8_t (*slot)[KEY_LEN], size_t cap, const uint8_t *key, uint64_t h)
{
	size_t i = (size_t)h & (cap - 1);

	while (!util_is_zero(slot[i], KEY_LEN))
		i = (i + 1) & (cap - 1);
	memcpy(slot[i], key, KEY_LEN);
}

static bool
has_h(const struct keyset *ks, const uint8_t *key, uint64_t h)
{
	size_t i;

	if (ks->ks_cap == 0)
		return false;
	for (i = (size_t)h & (ks->ks_cap - 1);
	    !util_is_zero(ks->ks_slot[i], KEY_LEN); i = (i + 1) & (ks->ks_cap - 1))
		if (memcmp(ks->ks_slot[i], key, KEY_LEN) == 0)
			return true;
	return false;
}

bool
keyset_has(const struct keyset *ks, const uint8_t *seed, const uint8_t *key)
{
	return ks->ks_cap != 0 && has_h(ks, key, util_key_hash(seed, key));
}

int
keyset_add(struct keyset *ks, const uint8_t *seed, const uint8_t *key)
{
	return keyset_add_h(ks, seed, key, util_key_hash(seed, key));
}

int
keyset_add_h(struct keyset *ks, const uint8_t *seed, const uint8_t *key,
    uint64_t h)
{
	if (util_is_zero(key, KEY_LEN) || has_h(ks, key, h))
		return 0;
	/* At most half full: probes stay short. */
	if ((ks->ks_n + 1) * 2 > ks->ks_cap) {
		size_t	 ncap = ks->ks_cap ? ks->ks_cap * 2 : 8;
		uint8_t	(*nt)[KEY_LEN] = calloc(ncap, KEY_LEN);

		if (nt == NULL)
			return -1;
		for (size_t i = 0; i < ks->ks_cap; i++)
			if (!util_is_zero(ks->ks_slot[i], KEY_LEN))
				place_h(nt, ncap, ks->ks_slot[i],
				    util_key_hash(seed, ks->ks_slot[i]));
		free(ks->ks_slot);
		ks->ks_slot = nt;
		ks->ks_cap = ncap;
	}
	place_h(ks->ks_slot, ks->ks_cap, key, h);
	ks->ks_n++;
	return 0;
}

/*
 * Remove key: linear probing, so the entries after it in its run are
 * moved back (no tombstones; lookups stay exact).
 */
bool
keyset_del(struct keyset *ks, const uint8_t *seed, const uint8_t *key)
{
	size_t	 mask = ks->ks_cap - 1, i, j, h;

	if (ks->ks_cap == 0 || util_is_zero(key, KEY_LEN))
		return false;
	for (i = (size_t)util_key_hash(seed, key) & mask;
	    memcmp(ks->ks_slot[i], key, KEY_LEN) != 0; i = (i + 1) & mask)
		if (util_is_zero(ks->ks_slot[i], KEY_LEN))
			return false;
	for (j = (i + 1) & mask; !util_is_zero(ks->ks_slot[j], KEY_LEN);
	    j = (j + 1) & mask) {
		h = (size_t)util_key_hash(seed, ks->ks_slot[j]) & mask;
		/* Move j back to i unless its home lies in (i, j]. */
		if (((j - h) & mask) < ((j - i) & mask))
			continue;
		memcpy(ks->ks_slot[i], ks->ks_slot[j], KEY_LEN);
		i = j;
	}
	memset(ks->ks_slot[i], 0, KEY_LEN);
	ks->ks_n--;
	return true;
}

void
keyset_clear(struct keyset *ks)
{
	free(ks->ks_slot);
	memset(ks, 0, sizeof(*ks));
}
