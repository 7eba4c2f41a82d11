/* SPDX-License-Identifier: ISC */
/*
 * peer.h: the peer registry, key -> the connections holding that key.
 * The only structure shared by worker threads. Lookups take a read lock
 * and a reference on the connection they return.
 */
#ifndef DERPD_PEER_H
#define DERPD_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hooks into the owner of the registered objects (connections). */
struct peers_ops {
	/* Take a reference on obj; called with the registry lock held. */
	void	(*po_ref)(void *obj);
	/* Drop a reference on obj. Never called with the lock held. */
	void	(*po_unref)(void *obj);
	/* Queue PeerPresent(obj) to watcher; lock held, must not block. */
	void	(*po_present)(void *watcher, void *obj);
	/* Queue PeerGone(key, Disconnected) to watcher; lock held. */
	void	(*po_gone)(void *watcher, const uint8_t key[KEY_LEN]);
	/* obj's duplicate status changed; lock held. */
	void	(*po_set_dup)(void *obj, bool dup);
	/* Ask obj to close (ClosePeer); lock held, must not block. */
	void	(*po_kick)(void *obj);
};

enum peers_lookup {
	PEERS_FOUND,		/* *out holds a reference to the active conn */
	PEERS_DUP_INACTIVE,	/* key is held, but by no active conn */
	PEERS_NONE,		/* no local conn for the key, no route */
	PEERS_FORWARD,		/* no local conn; *out is the mesh peer to
				 * forward through (no reference: forwarders
				 * outlive every lookup) */
};

struct peers;

struct peers_gauges {
	uint64_t	 pg_keys;	/* distinct keys */
	uint64_t	 pg_conns;	/* registered conns */
	uint64_t	 pg_dup_keys;
	uint64_t	 pg_dup_conns;
	uint64_t	 pg_watchers;
	uint64_t	 pg_remote_keys;	/* keys only reachable by a route */
	uint64_t	 pg_routes;		/* (key, mesh peer) routes */
	uint64_t	 pg_multi_created;	/* keys that got a 2nd route */
	uint64_t	 pg_multi_deleted;	/* keys back to one route */
	uint64_t	 pg_route_del_other;	/* removal of an unknown route */
};

/* New empty registry; NULL on allocation failure. */
struct peers *peers_new(const struct peers_ops *ops);
/* Free an empty registry; NULL is a no-op. */
void	peers_free(struct peers *);
/*
 * Register obj under key. The registry keeps a reference. The newest
 * conn of a key becomes active; watchers get PeerPresent. Returns 0, or
 * -1 on allocation failure (nothing registered).
 */
int	peers_add(struct peers *, const uint8_t key[KEY_LEN], void *obj);
/*
 * Unregister obj (and its watcher role). Watchers get PeerGone when it
 * was the last local conn of its key. Returns true when the key left the
 * region (no local conn and no mesh route). Drops the registry's
 * reference.
 */
bool	peers_remove(struct peers *, const uint8_t key[KEY_LEN], void *obj);
/*
 * peers_remove, carrying obj's "delivered to" keys (sent[0..nsent), zero
 * keys skipped) so PeerGone reaches them even when another conn of the
 * same key outlives obj. When obj was not the last conn, or the key still
 * has a mesh route, the keys are kept with the key; when the key left the
 * region, *kept gets the keys kept from earlier conns and forwarded
 * packets (caller frees, may be NULL). Returns true when the key left the
 * region.
 */
bool	peers_remove_sent(struct peers *, const uint8_t key[KEY_LEN], void *obj,
	    const uint8_t (*sent)[KEY_LEN], size_t nsent, uint8_t (**kept)[KEY_LEN],
	    size_t *nkept);
/*
 * The registry's keyed hash of key, and its seed: a caller that hashes a
 * key once may use it for peers_lookup_h and for keysets of that seed.
 */
uint64_t peers_hash(const struct peers *, const uint8_t key[KEY_LEN]);
const uint8_t *peers_seed(const struct peers *);
/* peers_lookup with h = peers_hash(key). */
enum peers_lookup peers_lookup_h(struct peers *, const uint8_t key[KEY_LEN],
	    uint64_t h, void **out);
/*
 * The registry's generation: it changes whenever the registry may have
 * (any thread; one atomic load). A lookup made in generation g is what a
 * lookup would say now while peers_gen() is still g.
 */
uint64_t peers_gen(const struct peers *);
/* peers_lookup_h, and the generation the answer belongs to in *gen. */
enum peers_lookup peers_lookup_gen(struct peers *,
	    const uint8_t key[KEY_LEN], uint64_t h, void **out,
	    uint64_t *gen);
/* Look up the active conn of key (see enum peers_lookup). */
enum peers_lookup peers_lookup(struct peers *, const uint8_t key[KEY_LEN],
	    void **out);
/* obj sent a frame: in a duplicate set it becomes the active conn. */
void	peers_note_activity(struct peers *, const uint8_t key[KEY_LEN], void *obj);
/*
 * Enrol obj as a watcher: from now on it gets po_present and po_gone for
 * every change, and the active conn of every key through
 * peers_watch_snapshot, each key exactly once and in order. 0, or -1 on
 * allocation failure.
 */
int	peers_add_watcher(struct peers *, void *obj);
/*
 * Stream watcher obj's snapshot: call fn(obj, conn, arg) for the active
 * conn of the keys in the next buckets, about max of them, with the read
 * lock held (fn must not block or take the registry lock). Returns 1 when
 * the snapshot is complete (or obj is not a watcher), 0 when more is left.
 * Only obj's owner thread may call it.
 */
int	peers_watch_snapshot(struct peers *, void *obj, size_t max,
	    void (*fn)(void *watcher, void *obj, void *arg), void *arg);
/*
 * Mesh routes (derper's packet forwarders). fwd announced key: a lookup
 * that finds no local conn returns the oldest route of the key. Adding
 * the same route twice is one route. 0, or -1 on allocation failure.
 */
int	peers_route_add(struct peers *, const uint8_t key[KEY_LEN], void *fwd);
/*
 * fwd no longer has key. Returns true when the key left the region (no
 * local conn and no route): *kept then holds the keys it delivered to,
 * which are owed PeerGone (caller frees; may be NULL with *nkept 0).
 */
bool	peers_route_del(struct peers *, const uint8_t key[KEY_LEN], void *fwd,
	    uint8_t (**kept)[KEY_LEN], size_t *nkept);
/*
 * A packet from src, forwarded by a mesh peer, was delivered to dst: dst
 * gets PeerGone when src leaves the region (bounded per key). False when
 * src is not known here yet (its PeerPresent comes on another connection
 * and may arrive after the packet): the caller notes it again later.
 */
bool	peers_note_delivered(struct peers *, const uint8_t src[KEY_LEN],
	    const uint8_t dst[KEY_LEN]);
/* Kick every conn of key. Returns how many were asked to close. */
size_t	peers_kick_key(struct peers *, const uint8_t key[KEY_LEN]);
void	peers_gauges(struct peers *, struct peers_gauges *);
/*
 * Call fn for every registered conn (of key only, when key is not NULL)
 * with the read lock held; fn must not block or take the registry lock.
 * Returns how many conns were visited.
 */
size_t	peers_foreach(struct peers *, const uint8_t *key,
	    void (*fn)(void *obj, bool active, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
