// SPDX-License-Identifier: ISC
// theap_test.cc: the worker's deadline heap against a sorted model.
#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "theap.h"

namespace {

// Every armed node sits where its index says, no child is earlier than
// its parent, and the armed set is exactly the model's.
void
CheckHeap(const struct theap *h, const std::vector<struct theap_node> &nodes,
    const std::map<size_t, uint64_t> &model)
{
	ASSERT_EQ(theap_count(h), model.size());
	for (uint32_t i = 0; i < h->th_n; i++) {
		ASSERT_EQ(h->th_v[i]->tn_idx, i + 1);
		if (i > 0) {
			ASSERT_LE(h->th_v[(i - 1) / 2]->tn_due,
			    h->th_v[i]->tn_due);
		}
	}
	for (size_t k = 0; k < nodes.size(); k++) {
		auto it = model.find(k);
		ASSERT_EQ(theap_armed(&nodes[k]), it != model.end()) << k;
		if (it != model.end()) {
			ASSERT_EQ(nodes[k].tn_due, it->second) << k;
		}
	}
}

TEST(Theap, EmptyAndSingle)
{
	struct theap h;
	struct theap_node n = {};

	theap_init(&h);
	EXPECT_EQ(theap_top(&h), nullptr);
	theap_del(&h, &n);	// not armed: a no-op
	EXPECT_FALSE(theap_armed(&n));
	ASSERT_EQ(theap_set(&h, &n, 5), 0);
	EXPECT_TRUE(theap_armed(&n));
	EXPECT_EQ(theap_top(&h), &n);
	theap_del(&h, &n);
	EXPECT_FALSE(theap_armed(&n));
	EXPECT_EQ(theap_top(&h), nullptr);
	theap_free(&h);
}

TEST(Theap, MovingANodeKeepsOneEntry)
{
	struct theap h;
	struct theap_node a = {}, b = {}, c = {};

	theap_init(&h);
	ASSERT_EQ(theap_set(&h, &a, 30), 0);
	ASSERT_EQ(theap_set(&h, &b, 20), 0);
	ASSERT_EQ(theap_set(&h, &c, 10), 0);
	EXPECT_EQ(theap_top(&h), &c);
	ASSERT_EQ(theap_set(&h, &a, 5), 0);	// earlier: to the top
	EXPECT_EQ(theap_top(&h), &a);
	EXPECT_EQ(theap_count(&h), 3u);
	ASSERT_EQ(theap_set(&h, &a, 40), 0);	// later: down again
	EXPECT_EQ(theap_top(&h), &c);
	theap_del(&h, &c);
	EXPECT_EQ(theap_top(&h), &b);
	theap_del(&h, &b);
	EXPECT_EQ(theap_top(&h), &a);
	theap_free(&h);
}

// Random sets, moves and deletes; popping the top in order must give the
// model's order, and the array shrinks back after a mass removal.
TEST(Theap, RandomAgainstModel)
{
	std::mt19937_64 rng(12345);
	std::vector<struct theap_node> nodes(3000);
	std::map<size_t, uint64_t> model;
	struct theap h;

	theap_init(&h);
	for (int step = 0; step < 60000; step++) {
		size_t k = rng() % nodes.size();
		if (rng() % 3 == 0) {
			theap_del(&h, &nodes[k]);
			model.erase(k);
		} else {
			uint64_t due = rng() % 1000;	// many equal deadlines
			ASSERT_EQ(theap_set(&h, &nodes[k], due), 0);
			model[k] = due;
		}
		if (step % 997 == 0)
			CheckHeap(&h, nodes, model);
	}
	CheckHeap(&h, nodes, model);
	uint32_t peak_cap = h.th_cap;
	uint64_t last = 0;
	while (struct theap_node *t = theap_top(&h)) {
		ASSERT_GE(t->tn_due, last);
		last = t->tn_due;
		size_t k = static_cast<size_t>(t - nodes.data());
		ASSERT_EQ(model.count(k), 1u);
		theap_del(&h, t);
		model.erase(k);
	}
	EXPECT_TRUE(model.empty());
	EXPECT_LT(h.th_cap, peak_cap);
	EXPECT_GE(h.th_cap, 64u);
	theap_free(&h);
}

}  // namespace
