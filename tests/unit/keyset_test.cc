// SPDX-License-Identifier: ISC
// keyset_test.cc: the set of keys a connection delivered to.
#include <cstring>
#include <set>
#include <string>

#include <gtest/gtest.h>
#include <sodium.h>

#include "keyset.h"
#include "util.h"

namespace {

std::string
Key(int n)
{
	uint8_t k[32];
	crypto_generichash(k, sizeof(k), (const uint8_t *)&n, sizeof(n),
	    nullptr, 0);
	return std::string((const char *)k, 32);
}

const uint8_t *
P(const std::string &s)
{
	return (const uint8_t *)s.data();
}

TEST(Keyset, AddHasGrowClear)
{
	uint8_t seed[UTIL_HASH_SEED_LEN];
	util_hash_seed(seed);
	struct keyset ks = {};
	EXPECT_FALSE(keyset_has(&ks, seed, P(Key(1))));
	for (int i = 0; i < 5000; i++) {
		ASSERT_EQ(0, keyset_add(&ks, seed, P(Key(i))));
		ASSERT_EQ(0, keyset_add(&ks, seed, P(Key(i)))) << "twice";
	}
	EXPECT_EQ(5000u, ks.ks_n);
	EXPECT_LE(ks.ks_n * 2, ks.ks_cap) << "at most half full";
	for (int i = 0; i < 5000; i++)
		ASSERT_TRUE(keyset_has(&ks, seed, P(Key(i)))) << i;
	EXPECT_FALSE(keyset_has(&ks, seed, P(Key(5000))));
	// The slots hold exactly the keys added.
	std::set<std::string> seen;
	for (size_t i = 0; i < ks.ks_cap; i++)
		if (!util_is_zero(ks.ks_slot[i], 32))
			seen.insert(std::string((const char *)ks.ks_slot[i], 32));
	EXPECT_EQ(5000u, seen.size());
	keyset_clear(&ks);
	EXPECT_EQ(0u, ks.ks_n);
	EXPECT_FALSE(keyset_has(&ks, seed, P(Key(1))));
}

// Deleting keeps every other key findable (runs are shifted back, no
// tombstones), in random order, with a seed of zeros (long runs) too.
TEST(Keyset, DeleteKeepsTheRest)
{
	for (int zeroseed = 0; zeroseed < 2; zeroseed++) {
		uint8_t seed[UTIL_HASH_SEED_LEN] = {};
		if (!zeroseed)
			util_hash_seed(seed);
		struct keyset ks = {};
		std::set<int> in;
		for (int i = 0; i < 3000; i++) {
			ASSERT_EQ(0, keyset_add(&ks, seed, P(Key(i))));
			in.insert(i);
		}
		EXPECT_FALSE(keyset_del(&ks, seed, P(Key(99999))));
		uint32_t r = 12345;
		for (int round = 0; round < 2500; round++) {
			r = r * 1103515245u + 12345u;
			int k = (int)((r >> 8) % 3000);
			bool was = in.count(k) != 0;
			EXPECT_EQ(was, keyset_del(&ks, seed, P(Key(k)))) << k;
			in.erase(k);
			if (round % 500 != 0)
				continue;
			for (int i = 0; i < 3000; i++)
				ASSERT_EQ(in.count(i) != 0,
				    keyset_has(&ks, seed, P(Key(i))))
				    << "round " << round << " key " << i;
		}
		EXPECT_EQ(in.size(), ks.ks_n);
		for (int i = 0; i < 3000; i++)
			ASSERT_EQ(in.count(i) != 0, keyset_has(&ks, seed, P(Key(i))));
		keyset_clear(&ks);
	}
}

TEST(Keyset, ZeroKeyIsNotStored)
{
	uint8_t seed[UTIL_HASH_SEED_LEN] = {};
	uint8_t zero[32] = {};
	struct keyset ks = {};
	EXPECT_EQ(0, keyset_add(&ks, seed, zero));
	EXPECT_EQ(0u, ks.ks_n);
	EXPECT_FALSE(keyset_has(&ks, seed, zero));
	keyset_clear(&ks);
}

// The slot depends on the seed: keys that share their first bytes (which
// a peer can choose) do not pile up in one run.
TEST(Keyset, SeededHashSpreadsChosenKeys)
{
	uint8_t s1[UTIL_HASH_SEED_LEN], s2[UTIL_HASH_SEED_LEN];
	util_hash_seed(s1);
	util_hash_seed(s2);
	uint8_t k[32] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	EXPECT_NE(util_key_hash(s1, k), util_key_hash(s2, k));
	std::set<uint64_t> slots;
	for (int i = 0; i < 256; i++) {
		k[31] = (uint8_t)i;
		slots.insert(util_key_hash(s1, k) & 1023);
	}
	EXPECT_GT(slots.size(), 200u) << "same first 8 bytes, same slot";
}

}  // namespace
