// SPDX-License-Identifier: ISC
// pktq_test.cc: packet layout and the drop-from-head queue (PROTOCOL 5.1).
#include <cstring>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "pktq.h"

namespace {

// Each test packet carries its id in the first payload bytes.
struct pkt *
Pkt(uint32_t id, uint32_t len = 8)
{
	struct pkt *p = pkt_new(len);
	EXPECT_NE(p, nullptr);
	memset(p->p_frame, 0, PKT_FRAME_LEN(p));
	memcpy(p->p_frame + 37, &id, sizeof(id));
	return p;
}

uint32_t
Id(const struct pkt *p)
{
	uint32_t id;
	memcpy(&id, p->p_frame + 37, sizeof(id));
	return id;
}

// Records every dropped(p, is_head) call as (id, is_head).
struct Drops {
	std::vector<std::pair<uint32_t, int>> calls;
};

void
OnDrop(struct pkt *p, int is_head, void *arg)
{
	static_cast<Drops *>(arg)->calls.emplace_back(Id(p), is_head);
}

std::vector<uint32_t>
Drain(struct pktq *q)
{
	std::vector<uint32_t> ids;
	struct pkt *p;
	while ((p = pktq_pop(q)) != nullptr) {
		ids.push_back(Id(p));
		pkt_free(p);
	}
	return ids;
}

}  // namespace

// Frees a queue's ring at the end of a test (allocated at the first push).
struct Released {
	struct pktq *q;
	~Released() { pktq_clear(q, nullptr, nullptr); pktq_release(q); }
};

TEST(Pktq, PktLayout)
{
	const uint32_t lens[] = { 0, 1, 32, 1280, 65536 };
	for (uint32_t len : lens) {
		struct pkt *p = pkt_new(len);
		ASSERT_NE(p, nullptr);
		EXPECT_EQ(p->p_len, len);
		EXPECT_EQ(p->p_disco, 0);
		EXPECT_EQ(p->p_enq_ms, 0u);
		EXPECT_EQ(PKT_FRAME_LEN(p), 5u + 32u + len);
		// The whole RecvPacket frame is writable (ASan checks this).
		memset(p->p_frame, 0xa5, PKT_FRAME_LEN(p));
		EXPECT_EQ(p->p_frame[PKT_FRAME_LEN(p) - 1], 0xa5);
		pkt_free(p);
	}
	pkt_free(nullptr);
}

TEST(Pktq, FifoOrder)
{
	struct pktq q;
	Released rel_{ &q };
	pktq_init(&q, PKTQ_MAX_DEPTH);
	EXPECT_EQ(pktq_len(&q), 0u);
	EXPECT_EQ(pktq_pop(&q), nullptr);
	Drops d;
	for (uint32_t i = 1; i <= 10; i++) {
		struct pktq_result r = pktq_push(&q, Pkt(i), OnDrop, &d);
		EXPECT_EQ(r.pr_head_drops, 0u);
		EXPECT_FALSE(r.pr_tail_drop);
		EXPECT_EQ(pktq_len(&q), i);
	}
	struct pkt *p = pktq_pop(&q);
	ASSERT_NE(p, nullptr);
	EXPECT_EQ(Id(p), 1u);
	pkt_free(p);
	EXPECT_EQ(pktq_len(&q), 9u);
	pktq_push(&q, Pkt(11), OnDrop, &d);
	EXPECT_EQ(Drain(&q), (std::vector<uint32_t>{ 2, 3, 4, 5, 6, 7, 8, 9,
	    10, 11 }));
	EXPECT_EQ(pktq_len(&q), 0u);
	EXPECT_EQ(pktq_pop(&q), nullptr);
	EXPECT_TRUE(d.calls.empty());
}

TEST(Pktq, FullQueueDropsExactlyOneFromHead)
{
	struct pktq q;
	Released rel_{ &q };
	pktq_init(&q, 32);
	Drops d;
	for (uint32_t i = 1; i <= 32; i++)
		pktq_push(&q, Pkt(i), OnDrop, &d);
	ASSERT_EQ(pktq_len(&q), 32u);
	ASSERT_TRUE(d.calls.empty());

	struct pktq_result r = pktq_push(&q, Pkt(33), OnDrop, &d);
	EXPECT_EQ(r.pr_head_drops, 1u);
	EXPECT_FALSE(r.pr_tail_drop);
	EXPECT_EQ(pktq_len(&q), 32u);
	ASSERT_EQ(d.calls.size(), 1u);
	EXPECT_EQ(d.calls[0].first, 1u);
	EXPECT_EQ(d.calls[0].second, 1);

	std::vector<uint32_t> want;
	for (uint32_t i = 2; i <= 33; i++)
		want.push_back(i);
	EXPECT_EQ(Drain(&q), want);
}

TEST(Pktq, SteadyOverflowKeepsNewest)
{
	// Many more pushes than slots: the ring wraps many times, each push
	// evicts exactly the oldest, and the queue ends with the newest 32.
	struct pktq q;
	Released rel_{ &q };
	pktq_init(&q, PKTQ_MAX_DEPTH);
	Drops d;
	for (uint32_t i = 1; i <= 1000; i++) {
		struct pktq_result r = pktq_push(&q, Pkt(i), OnDrop, &d);
		EXPECT_EQ(r.pr_head_drops, i > 32 ? 1u : 0u) << i;
		EXPECT_FALSE(r.pr_tail_drop) << i;
	}
	ASSERT_EQ(d.calls.size(), 1000u - 32u);
	for (size_t k = 0; k < d.calls.size(); k++) {
		EXPECT_EQ(d.calls[k].first, k + 1);
		EXPECT_EQ(d.calls[k].second, 1);
	}
	std::vector<uint32_t> want;
	for (uint32_t i = 969; i <= 1000; i++)
		want.push_back(i);
	EXPECT_EQ(Drain(&q), want);
}

TEST(Pktq, SmallerDepthsHonoured)
{
	for (unsigned depth = 1; depth <= PKTQ_MAX_DEPTH; depth++) {
		struct pktq q;
		Released rel_{ &q };
		pktq_init(&q, depth);
		Drops d;
		for (uint32_t i = 1; i <= depth; i++) {
			struct pktq_result r = pktq_push(&q, Pkt(i), OnDrop,
			    &d);
			EXPECT_EQ(r.pr_head_drops, 0u);
		}
		EXPECT_EQ(pktq_len(&q), depth);
		// Depth >= 1: the 3-attempt loop never needs a tail drop.
		for (uint32_t i = depth + 1; i <= depth + 3; i++) {
			struct pktq_result r = pktq_push(&q, Pkt(i), OnDrop,
			    &d);
			EXPECT_EQ(r.pr_head_drops, 1u) << depth;
			EXPECT_FALSE(r.pr_tail_drop) << depth;
			EXPECT_EQ(pktq_len(&q), depth);
		}
		ASSERT_EQ(d.calls.size(), 3u);
		for (size_t k = 0; k < 3; k++) {
			EXPECT_EQ(d.calls[k].first, k + 1) << depth;
			EXPECT_EQ(d.calls[k].second, 1);
		}
		std::vector<uint32_t> ids = Drain(&q);
		ASSERT_EQ(ids.size(), depth);
		EXPECT_EQ(ids.front(), 4u) << depth;
		EXPECT_EQ(ids.back(), depth + 3);
	}
}

TEST(Pktq, DepthOutOfRangeIsClamped)
{
	struct pktq q;
	Released rel_{ &q };
	pktq_init(&q, 0);
	EXPECT_GE(q.q_depth, 1u);
	EXPECT_LE(q.q_depth, (unsigned)PKTQ_MAX_DEPTH);
	EXPECT_EQ(q.q_ring, nullptr);	/* nothing until the first push */
	pktq_init(&q, 1000);
	EXPECT_GE(q.q_depth, 1u);
	EXPECT_LE(q.q_depth, (unsigned)PKTQ_MAX_DEPTH);
	// Never more than the ring holds.
	for (uint32_t i = 0; i < 100; i++)
		pktq_push(&q, Pkt(i), nullptr, nullptr);
	EXPECT_LE(pktq_len(&q), (unsigned)PKTQ_MAX_DEPTH);
	pktq_clear(&q, nullptr, nullptr);
	EXPECT_EQ(pktq_len(&q), 0u);
}

// A mesh link's queue: a ring larger than a client's, same policy.
TEST(Pktq, BigRingKeepsOrderAndDropsFromTheHead)
{
	struct pktq q;
	Released rel_{ &q };
	ASSERT_EQ(0, pktq_init_big(&q, 1000));
	EXPECT_EQ(q.q_depth, 1000u);
	Drops d;
	for (uint32_t i = 1; i <= 2500; i++)	/* wraps twice */
		pktq_push(&q, Pkt(i), OnDrop, &d);
	EXPECT_EQ(pktq_len(&q), 1000u);
	ASSERT_EQ(d.calls.size(), 1500u);
	EXPECT_EQ(d.calls.front().first, 1u);
	EXPECT_EQ(d.calls.back().first, 1500u);
	std::vector<uint32_t> want;
	for (uint32_t i = 1501; i <= 2500; i++)
		want.push_back(i);
	EXPECT_EQ(Drain(&q), want);
	pktq_release(&q);
	EXPECT_EQ(q.q_ring, nullptr);
	EXPECT_LE(q.q_depth, (unsigned)PKTQ_MAX_DEPTH);
	// Small depths too: the ring now, of that depth.
	ASSERT_EQ(0, pktq_init_big(&q, 16));
	EXPECT_NE(q.q_ring, nullptr);
	EXPECT_EQ(q.q_depth, 16u);
	pktq_release(&q);
}

TEST(Pktq, NullCallbackAllowed)
{
	struct pktq q;
	Released rel_{ &q };
	pktq_init(&q, 2);
	for (uint32_t i = 1; i <= 5; i++) {
		struct pktq_result r = pktq_push(&q, Pkt(i), nullptr, nullptr);
		EXPECT_FALSE(r.pr_tail_drop);
	}
	EXPECT_EQ(Drain(&q), (std::vector<uint32_t>{ 4, 5 }));
}

// A queue that is never pushed to allocates nothing; the first push
// allocates the ring, which stays until pktq_release.
TEST(Pktq, RingAllocatedAtFirstPush)
{
	struct pktq q;
	pktq_init(&q, 8);
	EXPECT_EQ(q.q_ring, nullptr);
	EXPECT_EQ(pktq_pop(&q), nullptr);
	EXPECT_EQ(pktq_len(&q), 0u);
	pktq_clear(&q, nullptr, nullptr);
	pktq_release(&q);	/* nothing to free */
	pktq_init(&q, 8);
	pktq_push(&q, Pkt(1), nullptr, nullptr);
	ASSERT_NE(q.q_ring, nullptr);
	struct pkt **ring = q.q_ring;
	EXPECT_EQ(Drain(&q), (std::vector<uint32_t>{ 1 }));
	pktq_push(&q, Pkt(2), nullptr, nullptr);
	EXPECT_EQ(q.q_ring, ring);	/* kept, not reallocated */
	EXPECT_EQ(Drain(&q), (std::vector<uint32_t>{ 2 }));
	pktq_release(&q);
	EXPECT_EQ(q.q_ring, nullptr);
}

TEST(Pktq, ClearCallsBackForEach)
{
	struct pktq q;
	Released rel_{ &q };
	pktq_init(&q, 8);
	Drops d;
	for (uint32_t i = 1; i <= 11; i++)	/* wraps, evicts 1..3 */
		pktq_push(&q, Pkt(i), OnDrop, &d);
	ASSERT_EQ(d.calls.size(), 3u);
	d.calls.clear();
	pktq_clear(&q, OnDrop, &d);
	EXPECT_EQ(pktq_len(&q), 0u);
	EXPECT_EQ(pktq_pop(&q), nullptr);
	ASSERT_EQ(d.calls.size(), 8u);
	for (size_t k = 0; k < 8; k++) {
		EXPECT_EQ(d.calls[k].first, k + 4);
		EXPECT_EQ(d.calls[k].second, 0);
	}
	// Usable again after a clear.
	pktq_push(&q, Pkt(99), OnDrop, &d);
	EXPECT_EQ(Drain(&q), (std::vector<uint32_t>{ 99 }));

	d.calls.clear();
	pktq_clear(&q, OnDrop, &d);
	EXPECT_TRUE(d.calls.empty());
}
