// SPDX-License-Identifier: ISC
// peer_test.cc: the key -> connections registry, with fake connections.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "peer.h"

namespace {

struct Conn {
	int			 id;
	std::atomic<int>	 refs{ 0 };
	std::atomic<int>	 kicks{ 0 };
	int			 dup_sets = 0;	/* set_dup calls */
	bool			 dup = false;

	explicit Conn(int i) : id(i) {}
};

typedef std::vector<uint8_t> Key;

// Everything the registry told the owner, in order.
struct Recorder {
	std::vector<std::pair<Conn *, Conn *>>	present;	/* watcher, obj */
	std::vector<std::pair<Conn *, Key>>	gone;		/* watcher, key */
	std::vector<std::pair<Conn *, bool>>	set_dup;
	std::atomic<long>			unref_calls{ 0 };
};

Recorder *rec;

void
FakeRef(void *obj)
{
	static_cast<Conn *>(obj)->refs++;
}

void
FakeUnref(void *obj)
{
	Conn *c = static_cast<Conn *>(obj);
	EXPECT_GT(c->refs.load(), 0) << "unref below zero, conn " << c->id;
	c->refs--;
	rec->unref_calls++;
}

void
FakePresent(void *watcher, void *obj)
{
	rec->present.emplace_back(static_cast<Conn *>(watcher),
	    static_cast<Conn *>(obj));
}

void
FakeGone(void *watcher, const uint8_t key[32])
{
	rec->gone.emplace_back(static_cast<Conn *>(watcher),
	    Key(key, key + 32));
}

void
FakeSetDup(void *obj, bool dup)
{
	Conn *c = static_cast<Conn *>(obj);
	c->dup_sets++;
	c->dup = dup;
	rec->set_dup.emplace_back(c, dup);
}

void
FakeKick(void *obj)
{
	static_cast<Conn *>(obj)->kicks++;
}

// Snapshot callback: recorded like a live PeerPresent.
void
FakeSnap(void *watcher, void *obj, void *arg)
{
	(void)arg;
	FakePresent(watcher, obj);
}

const struct peers_ops kOps = {
	FakeRef, FakeUnref, FakePresent, FakeGone, FakeSetDup, FakeKick,
};

// A key whose first 8 bytes (and the rest) vary with n.
Key
MakeKey(uint64_t n)
{
	Key k(32);
	uint64_t x = n + 0x9e3779b97f4a7c15ULL;
	for (int i = 0; i < 4; i++) {
		x ^= x >> 30;
		x *= 0xbf58476d1ce4e5b9ULL;
		x ^= x >> 27;
		x *= 0x94d049bb133111ebULL;
		x ^= x >> 31;
		memcpy(&k[i * 8], &x, 8);
	}
	return k;
}

class Peers : public ::testing::Test {
protected:
	void SetUp() override
	{
		rec = &rec_;
		p_ = peers_new(&kOps);
		ASSERT_NE(p_, nullptr);
	}

	void TearDown() override
	{
		for (auto &c : conns_)
			EXPECT_EQ(c->refs.load(), 0) << "conn " << c->id
			    << " leaks a reference";
		peers_free(p_);
		rec = nullptr;
	}

	Conn *NewConn()
	{
		conns_.emplace_back(new Conn((int)conns_.size() + 1));
		return conns_.back().get();
	}

	void Add(const Key &k, Conn *c)
	{
		ASSERT_EQ(peers_add(p_, k.data(), c), 0);
	}

	bool Remove(const Key &k, Conn *c)
	{
		return peers_remove(p_, k.data(), c);
	}

	// The active conn of k, or nullptr; drops the lookup's reference.
	Conn *Active(const Key &k)
	{
		void *out = nullptr;
		enum peers_lookup r = peers_lookup(p_, k.data(), &out);
		if (r != PEERS_FOUND) {
			EXPECT_EQ(r, PEERS_NONE);
			return nullptr;
		}
		EXPECT_NE(out, nullptr);
		Conn *c = static_cast<Conn *>(out);
		FakeUnref(c);
		return c;
	}

	struct peers_gauges Gauges()
	{
		struct peers_gauges g;
		memset(&g, 0xff, sizeof(g));
		peers_gauges(p_, &g);
		return g;
	}

	struct peers *p_ = nullptr;
	Recorder rec_;
	std::vector<std::unique_ptr<Conn>> conns_;
};

}  // namespace

TEST_F(Peers, EmptyRegistry)
{
	struct peers_gauges g = Gauges();
	EXPECT_EQ(g.pg_keys, 0u);
	EXPECT_EQ(g.pg_conns, 0u);
	EXPECT_EQ(g.pg_dup_keys, 0u);
	EXPECT_EQ(g.pg_dup_conns, 0u);
	EXPECT_EQ(g.pg_watchers, 0u);
	void *out = reinterpret_cast<void *>(0x1234);
	EXPECT_EQ(peers_lookup(p_, MakeKey(1).data(), &out), PEERS_NONE);
	EXPECT_EQ(out, reinterpret_cast<void *>(0x1234));
	EXPECT_EQ(peers_kick_key(p_, MakeKey(1).data()), 0u);
	peers_free(nullptr);
}

TEST_F(Peers, AddLookupRemove)
{
	Key k = MakeKey(1);
	Conn *a = NewConn();
	Add(k, a);
	EXPECT_EQ(a->refs.load(), 1) << "the registry keeps a reference";

	void *out = nullptr;
	ASSERT_EQ(peers_lookup(p_, k.data(), &out), PEERS_FOUND);
	EXPECT_EQ(out, a);
	EXPECT_EQ(a->refs.load(), 2) << "lookup takes a reference";
	FakeUnref(a);

	EXPECT_EQ(peers_lookup(p_, MakeKey(2).data(), &out), PEERS_NONE);
	EXPECT_EQ(a->refs.load(), 1);

	struct peers_gauges g = Gauges();
	EXPECT_EQ(g.pg_keys, 1u);
	EXPECT_EQ(g.pg_conns, 1u);
	EXPECT_EQ(g.pg_dup_keys, 0u);
	EXPECT_EQ(a->dup_sets, 0) << "a single conn is never a duplicate";

	EXPECT_TRUE(Remove(k, a));
	EXPECT_EQ(a->refs.load(), 0);
	EXPECT_EQ(Active(k), nullptr);
	g = Gauges();
	EXPECT_EQ(g.pg_keys, 0u);
	EXPECT_EQ(g.pg_conns, 0u);
}

TEST_F(Peers, RemoveUnknownIsHarmless)
{
	Key k = MakeKey(1);
	Conn *a = NewConn(), *b = NewConn();
	EXPECT_FALSE(Remove(k, a));
	EXPECT_EQ(rec_.unref_calls.load(), 0);
	Add(k, a);
	EXPECT_FALSE(Remove(k, b)) << "b was never registered";
	EXPECT_FALSE(Remove(MakeKey(2), a)) << "a is not under that key";
	EXPECT_EQ(a->refs.load(), 1);
	EXPECT_EQ(b->refs.load(), 0);
	EXPECT_EQ(Active(k), a);
	EXPECT_TRUE(Remove(k, a));
	EXPECT_FALSE(Remove(k, a)) << "second removal";
	EXPECT_EQ(a->refs.load(), 0);
}

TEST_F(Peers, DuplicateNewestIsActive)
{
	Key k = MakeKey(7);
	Conn *a = NewConn(), *b = NewConn();
	Add(k, a);
	Add(k, b);
	EXPECT_TRUE(a->dup);
	EXPECT_TRUE(b->dup);
	EXPECT_EQ(a->dup_sets, 1);
	EXPECT_EQ(b->dup_sets, 1);
	EXPECT_EQ(Active(k), b);

	struct peers_gauges g = Gauges();
	EXPECT_EQ(g.pg_keys, 1u);
	EXPECT_EQ(g.pg_conns, 2u);
	EXPECT_EQ(g.pg_dup_keys, 1u);
	EXPECT_EQ(g.pg_dup_conns, 2u);

	Conn *c = NewConn();
	Add(k, c);
	EXPECT_TRUE(c->dup);
	EXPECT_EQ(a->dup_sets, 1) << "no repeat set_dup for old members";
	EXPECT_EQ(b->dup_sets, 1);
	EXPECT_EQ(Active(k), c);
	g = Gauges();
	EXPECT_EQ(g.pg_dup_keys, 1u);
	EXPECT_EQ(g.pg_dup_conns, 3u);

	EXPECT_FALSE(Remove(k, a));
	EXPECT_FALSE(Remove(k, b));
	EXPECT_FALSE(c->dup) << "back to a single, normal client";
	g = Gauges();
	EXPECT_EQ(g.pg_dup_keys, 0u);
	EXPECT_EQ(g.pg_dup_conns, 0u);
	EXPECT_TRUE(Remove(k, c));
}

TEST_F(Peers, NoteActivitySwitchesActive)
{
	Key k = MakeKey(3);
	Conn *a = NewConn(), *b = NewConn();
	Add(k, a);
	Add(k, b);
	ASSERT_EQ(Active(k), b);
	peers_note_activity(p_, k.data(), a);
	EXPECT_EQ(Active(k), a);
	peers_note_activity(p_, k.data(), b);
	EXPECT_EQ(Active(k), b);
	peers_note_activity(p_, k.data(), b);
	EXPECT_EQ(Active(k), b);

	// Unknown conn or key: nothing changes.
	Conn *x = NewConn();
	peers_note_activity(p_, k.data(), x);
	EXPECT_EQ(Active(k), b);
	peers_note_activity(p_, MakeKey(4).data(), a);
	EXPECT_EQ(Active(k), b);
	EXPECT_EQ(Active(MakeKey(4)), nullptr);

	EXPECT_FALSE(Remove(k, a));
	EXPECT_TRUE(Remove(k, b));
}

// A remembered lookup is good while the generation holds: every change
// that can alter an answer moves it, and lookups do not.
TEST_F(Peers, GenerationMovesWithEveryChange)
{
	Key k = MakeKey(7);
	Conn *a = NewConn(), *b = NewConn();
	uint64_t g = peers_gen(p_);

	Add(k, a);
	EXPECT_NE(peers_gen(p_), g) << "add";
	g = peers_gen(p_);

	void *out = nullptr;
	uint64_t lg = 0;
	ASSERT_EQ(peers_lookup_gen(p_, k.data(), peers_hash(p_, k.data()),
	    &out, &lg), PEERS_FOUND);
	EXPECT_EQ(out, a);
	EXPECT_EQ(lg, g) << "the answer belongs to the current generation";
	FakeUnref(static_cast<Conn *>(out));
	EXPECT_EQ(Active(k), a);
	EXPECT_EQ(peers_gen(p_), g) << "lookups change nothing";

	Add(k, b);
	EXPECT_NE(peers_gen(p_), g) << "a duplicate";
	g = peers_gen(p_);
	peers_note_activity(p_, k.data(), a);
	EXPECT_NE(peers_gen(p_), g) << "the active conn can switch";
	g = peers_gen(p_);
	EXPECT_TRUE(Remove(k, b) || Remove(k, a));
	EXPECT_NE(peers_gen(p_), g) << "remove";
	g = peers_gen(p_);
	Remove(k, a);
	Remove(k, b);
	EXPECT_NE(peers_gen(p_), g);
}

TEST_F(Peers, RemovingActivePicksMostRecentSender)
{
	Key k = MakeKey(5);
	Conn *a = NewConn(), *b = NewConn(), *c = NewConn(), *d = NewConn();
	Add(k, a);
	Add(k, b);
	peers_note_activity(p_, k.data(), a);	/* a sent after b joined */
	Add(k, c);
	Add(k, d);
	peers_note_activity(p_, k.data(), b);	/* b is now the latest */
	peers_note_activity(p_, k.data(), d);
	ASSERT_EQ(Active(k), d);

	EXPECT_FALSE(Remove(k, d));
	EXPECT_EQ(Active(k), b) << "b sent most recently";
	EXPECT_FALSE(Remove(k, b));
	EXPECT_EQ(Active(k), c) << "c joined after a's last send";
	EXPECT_FALSE(Remove(k, c));
	EXPECT_EQ(Active(k), a);
	EXPECT_FALSE(a->dup);
	EXPECT_TRUE(Remove(k, a));
}

TEST_F(Peers, RemovingInactiveKeepsActive)
{
	Key k = MakeKey(6);
	Conn *a = NewConn(), *b = NewConn(), *c = NewConn();
	Add(k, a);
	Add(k, b);
	Add(k, c);
	peers_note_activity(p_, k.data(), a);
	ASSERT_EQ(Active(k), a);
	EXPECT_FALSE(Remove(k, c));
	EXPECT_EQ(Active(k), a);
	EXPECT_FALSE(Remove(k, b));
	EXPECT_EQ(Active(k), a);
	EXPECT_TRUE(Remove(k, a));
}

TEST_F(Peers, NoActivityFallsBackToNewest)
{
	Key k = MakeKey(8);
	Conn *a = NewConn(), *b = NewConn(), *c = NewConn();
	Add(k, a);
	Add(k, b);
	Add(k, c);
	EXPECT_FALSE(Remove(k, c));
	EXPECT_EQ(Active(k), b);
	EXPECT_FALSE(Remove(k, b));
	EXPECT_EQ(Active(k), a);
	EXPECT_TRUE(Remove(k, a));
}

// Enrol w and pull its whole snapshot in small steps.
int
Enrol(struct peers *p, Conn *w)
{
	if (peers_add_watcher(p, w) != 0)
		return -1;
	for (int i = 0; i < 100000; i++)
		if (peers_watch_snapshot(p, w, 3, FakeSnap, nullptr))
			return 0;
	return -1;
}

TEST_F(Peers, WatchersGetPresentAndGone)
{
	Conn *w = NewConn();
	ASSERT_EQ(Enrol(p_, w), 0);
	EXPECT_TRUE(rec_.present.empty()) << "nothing registered yet";
	EXPECT_EQ(Gauges().pg_watchers, 1u);

	Key k = MakeKey(9);
	Conn *a = NewConn(), *b = NewConn();
	Add(k, a);
	ASSERT_EQ(rec_.present.size(), 1u);
	EXPECT_EQ(rec_.present[0], std::make_pair(w, a));
	// Duplicates are announced too (PROTOCOL.md 5.3).
	Add(k, b);
	ASSERT_EQ(rec_.present.size(), 2u);
	EXPECT_EQ(rec_.present[1], std::make_pair(w, b));

	// PeerGone only when the last conn of the key goes.
	EXPECT_FALSE(Remove(k, b));
	EXPECT_TRUE(rec_.gone.empty());
	EXPECT_TRUE(Remove(k, a));
	ASSERT_EQ(rec_.gone.size(), 1u);
	EXPECT_EQ(rec_.gone[0].first, w);
	EXPECT_EQ(rec_.gone[0].second, k);
	EXPECT_EQ(w->refs.load(), 0) << "watchers hold no reference";
}

TEST_F(Peers, AddWatcherSendsPresentForEachActiveKey)
{
	Key k1 = MakeKey(10), k2 = MakeKey(11), k3 = MakeKey(12);
	Conn *a = NewConn(), *b = NewConn(), *c = NewConn(), *d = NewConn();
	Add(k1, a);
	Add(k2, b);
	Add(k2, c);	/* dup: only the active one is announced */
	Add(k3, d);
	peers_note_activity(p_, k2.data(), b);

	Conn *w = NewConn();
	ASSERT_EQ(Enrol(p_, w), 0);
	std::vector<Conn *> seen;
	for (auto &pr : rec_.present) {
		EXPECT_EQ(pr.first, w);
		seen.push_back(pr.second);
	}
	std::sort(seen.begin(), seen.end());
	std::vector<Conn *> want = { a, b, d };
	std::sort(want.begin(), want.end());
	EXPECT_EQ(seen, want);

	// Enrolling twice changes nothing.
	rec_.present.clear();
	ASSERT_EQ(Enrol(p_, w), 0);
	EXPECT_TRUE(rec_.present.empty());
	EXPECT_EQ(Gauges().pg_watchers, 1u);

	// Every watcher hears about a new conn.
	Conn *w2 = NewConn();
	ASSERT_EQ(Enrol(p_, w2), 0);
	rec_.present.clear();
	Conn *e = NewConn();
	Key k4 = MakeKey(13);
	Add(k4, e);
	ASSERT_EQ(rec_.present.size(), 2u);
	std::vector<Conn *> ws = { rec_.present[0].first,
	    rec_.present[1].first };
	std::sort(ws.begin(), ws.end());
	std::vector<Conn *> wwant = { w, w2 };
	std::sort(wwant.begin(), wwant.end());
	EXPECT_EQ(ws, wwant);
	EXPECT_EQ(rec_.present[0].second, e);
	EXPECT_EQ(rec_.present[1].second, e);
	EXPECT_EQ(Gauges().pg_watchers, 2u);

	for (auto pr : { std::make_pair(k1, a), std::make_pair(k2, b),
	    std::make_pair(k2, c), std::make_pair(k3, d),
	    std::make_pair(k4, e) })
		Remove(pr.first, pr.second);
	EXPECT_EQ(rec_.gone.size(), 8u) << "4 keys gone, 2 watchers each";
}

TEST_F(Peers, RemovingAWatcherUnenrolsIt)
{
	// A mesh peer is both a registered conn and a watcher.
	Key kw = MakeKey(20), k = MakeKey(21);
	Conn *w = NewConn(), *a = NewConn();
	Add(kw, w);
	ASSERT_EQ(Enrol(p_, w), 0);
	ASSERT_EQ(rec_.present.size(), 1u) << "the watcher sees itself";
	EXPECT_EQ(rec_.present[0], std::make_pair(w, w));
	EXPECT_EQ(Gauges().pg_watchers, 1u);

	EXPECT_TRUE(Remove(kw, w));
	EXPECT_EQ(Gauges().pg_watchers, 0u);
	EXPECT_TRUE(rec_.gone.empty()) << "no PeerGone to a departed watcher";
	rec_.present.clear();
	Add(k, a);
	EXPECT_TRUE(rec_.present.empty());
	EXPECT_TRUE(Remove(k, a));
	EXPECT_TRUE(rec_.gone.empty());
}

TEST_F(Peers, KickKeyKicksAllConnsOfKey)
{
	Key k1 = MakeKey(30), k2 = MakeKey(31);
	Conn *a = NewConn(), *b = NewConn(), *c = NewConn(), *d = NewConn();
	Add(k1, a);
	Add(k1, b);
	Add(k1, c);
	Add(k2, d);
	EXPECT_EQ(peers_kick_key(p_, k1.data()), 3u);
	EXPECT_EQ(a->kicks.load(), 1);
	EXPECT_EQ(b->kicks.load(), 1);
	EXPECT_EQ(c->kicks.load(), 1);
	EXPECT_EQ(d->kicks.load(), 0);
	EXPECT_EQ(peers_kick_key(p_, MakeKey(32).data()), 0u);
	// Kicking only asks; the conns stay until they remove themselves.
	EXPECT_EQ(Gauges().pg_conns, 4u);
	EXPECT_EQ(peers_kick_key(p_, k2.data()), 1u);
	EXPECT_EQ(d->kicks.load(), 1);
	Remove(k1, a);
	Remove(k1, b);
	Remove(k1, c);
	Remove(k2, d);
}

TEST_F(Peers, Gauges)
{
	Key k1 = MakeKey(40), k2 = MakeKey(41), k3 = MakeKey(42);
	Conn *a = NewConn(), *b = NewConn(), *c = NewConn(), *d = NewConn(),
	    *e = NewConn(), *w = NewConn();
	Add(k1, a);
	Add(k2, b);
	Add(k2, c);
	Add(k3, d);
	Add(k3, e);
	ASSERT_EQ(Enrol(p_, w), 0);
	struct peers_gauges g = Gauges();
	EXPECT_EQ(g.pg_keys, 3u);
	EXPECT_EQ(g.pg_conns, 5u);
	EXPECT_EQ(g.pg_dup_keys, 2u);
	EXPECT_EQ(g.pg_dup_conns, 4u);
	EXPECT_EQ(g.pg_watchers, 1u);

	Remove(k3, d);
	g = Gauges();
	EXPECT_EQ(g.pg_keys, 3u);
	EXPECT_EQ(g.pg_conns, 4u);
	EXPECT_EQ(g.pg_dup_keys, 1u);
	EXPECT_EQ(g.pg_dup_conns, 2u);

	Remove(k1, a);
	Remove(k2, b);
	Remove(k2, c);
	Remove(k3, e);
	Remove(MakeKey(99), w);		/* unenrol the watcher */
	g = Gauges();
	EXPECT_EQ(g.pg_keys, 0u);
	EXPECT_EQ(g.pg_conns, 0u);
	EXPECT_EQ(g.pg_dup_keys, 0u);
	EXPECT_EQ(g.pg_dup_conns, 0u);
	EXPECT_EQ(g.pg_watchers, 0u);
}

TEST_F(Peers, GrowPastInitialTable)
{
	const int n = 5000;
	std::vector<Conn *> cs;
	for (int i = 0; i < n; i++) {
		cs.push_back(NewConn());
		Add(MakeKey(1000 + i), cs.back());
	}
	EXPECT_EQ(Gauges().pg_keys, (uint64_t)n);
	EXPECT_EQ(Gauges().pg_conns, (uint64_t)n);
	for (int i = 0; i < n; i++)
		ASSERT_EQ(Active(MakeKey(1000 + i)), cs[i]) << i;
	EXPECT_EQ(Active(MakeKey(1000 + n)), nullptr);
	// Remove every other key, then check the rest.
	for (int i = 0; i < n; i += 2)
		ASSERT_TRUE(Remove(MakeKey(1000 + i), cs[i])) << i;
	for (int i = 0; i < n; i++)
		ASSERT_EQ(Active(MakeKey(1000 + i)), i % 2 ? cs[i] : nullptr)
		    << i;
	for (int i = 1; i < n; i += 2)
		ASSERT_TRUE(Remove(MakeKey(1000 + i), cs[i])) << i;
	EXPECT_EQ(Gauges().pg_keys, 0u);
	EXPECT_EQ(Gauges().pg_conns, 0u);
}

// A watcher enrolled with 3,000 keys registered pulls its snapshot a few
// keys at a time while keys come and go and the table doubles twice. In
// the end it has heard of exactly the keys registered, each PeerPresent
// once per connection it was told about, no PeerGone before a PeerPresent
// and none for a key it never heard of.
TEST_F(Peers, StreamedSnapshotIsExactUnderChurn)
{
	std::map<Key, Conn *> live;
	uint64_t next = 50000;
	for (int i = 0; i < 3000; i++) {
		Key k = MakeKey(next++);
		live[k] = NewConn();
		Add(k, live[k]);
	}
	Conn *w = NewConn();
	ASSERT_EQ(peers_add_watcher(p_, w), 0);
	EXPECT_TRUE(rec_.present.empty()) << "the snapshot is pulled, not pushed";

	// The watcher's view, replayed from what it was told, in order.
	std::set<Key> view;
	size_t pi = 0, gi = 0;
	std::map<Conn *, Key> key_of;
	for (auto &kv : live)
		key_of[kv.second] = kv.first;
	// Events arrive through two recorders; interleave by call order.
	std::vector<std::pair<int, Key>> events;	/* 1 present, 0 gone */
	auto drain = [&]() {
		for (; pi < rec_.present.size(); pi++) {
			EXPECT_EQ(rec_.present[pi].first, w);
			events.emplace_back(1, key_of[rec_.present[pi].second]);
		}
		for (; gi < rec_.gone.size(); gi++) {
			EXPECT_EQ(rec_.gone[gi].first, w);
			events.emplace_back(0, rec_.gone[gi].second);
		}
	};
	int done = 0, steps = 0;
	std::mt19937 rng(7);
	while (!done && steps < 100000) {
		done = peers_watch_snapshot(p_, w, 5, FakeSnap, nullptr);
		drain();
		steps++;
		// Churn: two joins, one leave per step (the table grows).
		for (int j = 0; j < 2; j++) {
			Key k = MakeKey(next++);
			live[k] = NewConn();
			key_of[live[k]] = k;
			Add(k, live[k]);
			drain();
		}
		auto it = live.begin();
		std::advance(it, rng() % live.size());
		ASSERT_TRUE(Remove(it->first, it->second));
		live.erase(it);
		drain();
	}
	ASSERT_TRUE(done) << "snapshot never finished";
	EXPECT_GT(steps, 100) << "the snapshot came in steps";
	for (auto &ev : events) {
		if (ev.first) {
			EXPECT_EQ(view.count(ev.second), 0u) << "PeerPresent twice";
			view.insert(ev.second);
		} else {
			EXPECT_EQ(view.count(ev.second), 1u)
			    << "PeerGone without PeerPresent";
			view.erase(ev.second);
		}
	}
	std::set<Key> truth;
	for (auto &kv : live)
		truth.insert(kv.first);
	EXPECT_EQ(view.size(), truth.size());
	EXPECT_TRUE(view == truth) << "the watcher's view is not the registry";
	for (auto &kv : live)
		Remove(kv.first, kv.second);
	Remove(MakeKey(1), w);
}

TEST_F(Peers, KeysSharingAPrefix)
{
	// Keys equal but for the last byte must stay distinct even when
	// they land in one hash chain.
	std::vector<Key> ks;
	std::vector<Conn *> cs;
	for (int i = 0; i < 200; i++) {
		Key k = MakeKey(77);
		k[31] = (uint8_t)i;
		ks.push_back(k);
		cs.push_back(NewConn());
		Add(k, cs.back());
	}
	EXPECT_EQ(Gauges().pg_keys, 200u);
	EXPECT_EQ(Gauges().pg_dup_keys, 0u);
	for (int i = 0; i < 200; i++)
		ASSERT_EQ(Active(ks[i]), cs[i]) << i;
	for (int i = 199; i >= 0; i -= 3)
		ASSERT_TRUE(Remove(ks[i], cs[i]));
	for (int i = 0; i < 200; i++) {
		bool gone = (199 - i) % 3 == 0;
		ASSERT_EQ(Active(ks[i]), gone ? nullptr : cs[i]) << i;
		if (!gone) {
			ASSERT_TRUE(Remove(ks[i], cs[i]));
		}
	}
	EXPECT_EQ(Gauges().pg_keys, 0u);
}

TEST_F(Peers, ConcurrentLookupsWhileWriting)
{
	// Readers look up stable keys while the writer churns others; the
	// stable keys are always found and references stay balanced.
	const int stable = 64;
	std::vector<Conn *> cs;
	for (int i = 0; i < stable; i++) {
		cs.push_back(NewConn());
		Add(MakeKey(5000 + i), cs.back());
	}
	std::vector<Conn *> churn;
	for (int i = 0; i < 256; i++)
		churn.push_back(NewConn());

	std::atomic<bool> stop{ false };
	std::atomic<long> misses{ 0 }, found{ 0 };
	auto reader = [&]() {
		std::vector<Key> keys;
		for (int i = 0; i < stable; i++)
			keys.push_back(MakeKey(5000 + i));
		for (int round = 0; !stop.load() || round < 50; round++) {
			for (int i = 0; i < stable; i++) {
				void *out = nullptr;
				if (peers_lookup(p_, keys[i].data(), &out) !=
				    PEERS_FOUND || out != cs[i]) {
					misses++;
					continue;
				}
				static_cast<Conn *>(out)->refs--;
				found++;
			}
		}
	};
	std::thread t1(reader), t2(reader);
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 256; i++)
			Add(MakeKey(100000 + i), churn[i]);
		for (int i = 0; i < 256; i++)
			Remove(MakeKey(100000 + i), churn[i]);
	}
	stop = true;
	t1.join();
	t2.join();
	EXPECT_EQ(misses.load(), 0);
	EXPECT_GE(found.load(), 2L * 50 * stable);
	for (int i = 0; i < stable; i++)
		EXPECT_TRUE(Remove(MakeKey(5000 + i), cs[i]));
}

// Mesh routes: derper's packet forwarders (TestForwarderRegistration and
// TestMultiForwarder semantics, observed through lookups).
class Routes : public Peers {
protected:
	void *Lookup(const Key &k, enum peers_lookup *r)
	{
		void *out = nullptr;
		*r = peers_lookup(p_, k.data(), &out);
		if (*r == PEERS_FOUND)
			FakeUnref(out);
		return out;
	}
	bool Del(const Key &k, void *fwd, std::vector<Key> *kept = nullptr)
	{
		uint8_t (*kk)[32] = nullptr;
		size_t n = 12345;
		bool gone = peers_route_del(p_, k.data(), fwd, &kk, &n);
		if (!gone) {
			EXPECT_EQ(n, 0u);
		}
		for (size_t i = 0; i < n && kept != nullptr; i++)
			kept->push_back(Key(kk[i], kk[i] + 32));
		free(kk);
		return gone;
	}
	int fa_ = 0, fb_ = 0, fc_ = 0;	/* three mesh peers */
};

TEST_F(Routes, RouteOnlyWhenNoLocalConn)
{
	Key k = MakeKey(1);
	enum peers_lookup r;
	ASSERT_EQ(0, peers_route_add(p_, k.data(), &fa_));
	EXPECT_EQ(&fa_, Lookup(k, &r));
	EXPECT_EQ(PEERS_FORWARD, r);
	// A local conn wins over the route, and the route survives it.
	Conn *c = NewConn();
	Add(k, c);
	EXPECT_EQ(c, Lookup(k, &r));
	EXPECT_EQ(PEERS_FOUND, r);
	EXPECT_FALSE(Remove(k, c)) << "still in the region through a route";
	EXPECT_EQ(&fa_, Lookup(k, &r));
	EXPECT_EQ(PEERS_FORWARD, r);
	EXPECT_TRUE(Del(k, &fa_)) << "last route, no local conn: gone";
	Lookup(k, &r);
	EXPECT_EQ(PEERS_NONE, r);
	struct peers_gauges g = Gauges();
	EXPECT_EQ(0u, g.pg_keys);
	EXPECT_EQ(0u, g.pg_remote_keys);
	EXPECT_EQ(0u, g.pg_routes);
}

TEST_F(Routes, RemovingLastRouteOfALocalKeyKeepsTheKey)
{
	Key k = MakeKey(2);
	enum peers_lookup r;
	Conn *c = NewConn();
	Add(k, c);
	ASSERT_EQ(0, peers_route_add(p_, k.data(), &fa_));
	EXPECT_FALSE(Del(k, &fa_)) << "the local conn keeps the key";
	EXPECT_EQ(c, Lookup(k, &r));
	EXPECT_TRUE(Remove(k, c));
	Lookup(k, &r);
	EXPECT_EQ(PEERS_NONE, r);
}

TEST_F(Routes, OldestRouteIsUsedAndFailsOver)
{
	Key k = MakeKey(3);
	enum peers_lookup r;
	ASSERT_EQ(0, peers_route_add(p_, k.data(), &fa_));
	ASSERT_EQ(0, peers_route_add(p_, k.data(), &fb_));
	ASSERT_EQ(0, peers_route_add(p_, k.data(), &fb_)) << "twice is once";
	ASSERT_EQ(0, peers_route_add(p_, k.data(), &fc_));
	EXPECT_EQ(&fa_, Lookup(k, &r));
	struct peers_gauges g = Gauges();
	EXPECT_EQ(3u, g.pg_routes);
	EXPECT_EQ(1u, g.pg_multi_created);
	EXPECT_EQ(1u, g.pg_remote_keys);
	// Removing a later one keeps the route in use.
	EXPECT_FALSE(Del(k, &fb_));
	EXPECT_EQ(&fa_, Lookup(k, &r));
	EXPECT_FALSE(Del(k, &fa_));
	EXPECT_EQ(&fc_, Lookup(k, &r)) << "fails over to the next oldest";
	EXPECT_EQ(1u, Gauges().pg_multi_deleted);
	EXPECT_FALSE(Del(k, &fb_)) << "not a route of k any more";
	EXPECT_EQ(1u, Gauges().pg_route_del_other);
	EXPECT_TRUE(Del(k, &fc_));
	EXPECT_FALSE(Del(MakeKey(99), &fc_)) << "unknown key is harmless";
}

TEST_F(Routes, KeptReceiversAreOwedPeerGoneWhenTheKeyLeavesTheRegion)
{
	Key src = MakeKey(4), d1 = MakeKey(5), d2 = MakeKey(6);
	ASSERT_EQ(0, peers_route_add(p_, src.data(), &fa_));
	peers_note_delivered(p_, src.data(), d1.data());
	peers_note_delivered(p_, src.data(), d1.data());
	peers_note_delivered(p_, src.data(), d2.data());
	EXPECT_FALSE(peers_note_delivered(p_, MakeKey(7).data(), d2.data()))
	    << "no entry: the caller must note it again later";
	EXPECT_TRUE(peers_note_delivered(p_, src.data(), d2.data()));
	// The key was also local once; what that conn delivered to is kept
	// while the route keeps the key in the region.
	Conn *c = NewConn();
	Add(src, c);
	Key d3 = MakeKey(8);
	uint8_t sent[2][32];
	memcpy(sent[0], d3.data(), 32);
	memset(sent[1], 0, 32);
	uint8_t (*kk)[32] = nullptr;
	size_t nk = 0;
	EXPECT_FALSE(peers_remove_sent(p_, src.data(), c,
	    (const uint8_t (*)[32])sent, 2, &kk, &nk));
	EXPECT_EQ(nullptr, kk);
	std::vector<Key> kept;
	EXPECT_TRUE(Del(src, &fa_, &kept));
	std::set<Key> got(kept.begin(), kept.end());
	EXPECT_EQ((std::set<Key>{ d1, d2, d3 }), got);
	EXPECT_EQ(3u, kept.size()) << "each receiver once";
	// Watchers heard of the local conn only (routes are not announced).
	EXPECT_TRUE(rec_.gone.empty());
}

TEST_F(Routes, WatchersNeverSeeRoutes)
{
	Conn *w = NewConn();
	ASSERT_EQ(0, peers_add_watcher(p_, w));
	for (int i = 0; i < 100; i++)
		ASSERT_EQ(0, peers_route_add(p_, MakeKey(200 + i).data(), &fa_));
	EXPECT_EQ(1, peers_watch_snapshot(p_, w, 1000, FakeSnap, nullptr));
	EXPECT_TRUE(rec_.present.empty());
	for (int i = 0; i < 100; i++)
		EXPECT_TRUE(Del(MakeKey(200 + i), &fa_));
	EXPECT_TRUE(rec_.gone.empty());
	EXPECT_EQ(0u, Gauges().pg_remote_keys);
	// Registry grows with routes alone (entries, not just local keys).
	for (int i = 0; i < 5000; i++)
		ASSERT_EQ(0, peers_route_add(p_, MakeKey(1000 + i).data(), &fb_));
	enum peers_lookup r;
	for (int i = 0; i < 5000; i++)
		ASSERT_EQ(&fb_, Lookup(MakeKey(1000 + i), &r));
	EXPECT_EQ(5000u, Gauges().pg_remote_keys);
	peers_remove(p_, MakeKey(0).data(), w);	/* unenrols the watcher */
}
