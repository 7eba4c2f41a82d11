/* SPDX-License-Identifier: ISC */
/* keyset.c: a set of 32-byte keys, open addressing with a keyed hash. */
#include <stdlib.h>
#include <string.h>

#include "keyset.h"
#include "util.h"

/* Put key in a table of cap slots (a power of two, not full). */
static void
place(uint8_t (*slot)[KEY_LEN], size_t cap, const uint8_t *seed,
    const uint8_t *key)
{
	size_t i = (size_t)util_key_hash(seed, key) & (cap - 1);

	while (!util_is_zero(slot[i], KEY_LEN))
		i = (i + 1) & (cap - 1);
	memcpy(slot[i], key, KEY_LEN);
}

bool
keyset_has(const struct keyset *ks, const uint8_t *seed, const uint8_t *key)
{
	size_t i;

	if (ks->ks_cap == 0)
		return false;
	for (i = (size_t)util_key_hash(seed, key) & (ks->ks_cap - 1);
	    !util_is_zero(ks->ks_slot[i], KEY_LEN); i = (i + 1) & (ks->ks_cap - 1))
		if (memcmp(ks->ks_slot[i], key, KEY_LEN) == 0)
			return true;
	return false;
}

int
keyset_add(struct keyset *ks, const uint8_t *seed, const uint8_t *key)
{
	if (util_is_zero(key, KEY_LEN) || keyset_has(ks, seed, key))
		return 0;
	/* At most half full: probes stay short. */
	if ((ks->ks_n + 1) * 2 > ks->ks_cap) {
		size_t	 ncap = ks->ks_cap ? ks->ks_cap * 2 : 8;
		uint8_t	(*nt)[KEY_LEN] = calloc(ncap, KEY_LEN);

		if (nt == NULL)
			return -1;
		for (size_t i = 0; i < ks->ks_cap; i++)
			if (!util_is_zero(ks->ks_slot[i], KEY_LEN))
				place(nt, ncap, seed, ks->ks_slot[i]);
		free(ks->ks_slot);
		ks->ks_slot = nt;
		ks->ks_cap = ncap;
	}
	place(ks->ks_slot, ks->ks_cap, seed, key);
	ks->ks_n++;
	return 0;
}

void
keyset_clear(struct keyset *ks)
{
	free(ks->ks_slot);
	memset(ks, 0, sizeof(*ks));
}
