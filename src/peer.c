/* SPDX-License-Identifier: ISC */
/* peer.c: chained hash of keys to duplicate-aware connection sets. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "peer.h"
#include "util.h"

struct member {
	void		*m_obj;
	uint64_t	 m_last_send;	/* activity sequence, for dup sets */
};

struct peer_entry {
	struct peer_entry	*pe_next;
	uint8_t			 pe_key[KEY_LEN];
	/*
	 * The conns with this key: pe_one holds the first (nearly every
	 * key has one conn); duplicates move the set to an allocation.
	 */
	struct member		*pe_m;		/* &pe_one or allocated */
	struct member		 pe_one;
	uint32_t		 pe_n, pe_cap;
	void			*pe_active;	/* NULL: dup set, none active */
	uint8_t			(*pe_kept)[KEY_LEN];	/* delivered-to keys of gone dups */
	size_t			 pe_nkept;
	/*
	 * Mesh peers that announced the key (derper's packet forwarders), in
	 * the order they did: pe_fwd[0] is the route in use, the oldest one,
	 * as derper's multiForwarder picks. An entry lives while it has a
	 * local conn or a route.
	 */
	void			**pe_fwd;
	size_t			 pe_nfwd, pe_capfwd;
};

#define PEERS_MAX_KEPT	4096

/*
 * A watcher and its snapshot cursor. The snapshot is streamed, not
 * queued: the watcher's owner pulls it bucket by bucket as its socket
 * takes it (peers_watch_snapshot). Buckets are counted in the table size
 * at enrolment (w_snap); the table only doubles, so snapshot bucket s is
 * every current bucket b with b mod w_snap == s. A change to a key in a
 * bucket the cursor has passed is sent live; a change to a key it has not
 * reached is left to the snapshot, which will see the key's state then.
 * Each key is announced exactly once, and PeerGone never precedes its
 * PeerPresent.
 */
struct watch {
	void			*w_obj;
	size_t			 w_snap;	/* table size at enrolment */
	size_t			 w_next;	/* next snapshot bucket */
};

struct peers {
	const struct peers_ops	*p_ops;
	pthread_rwlock_t	 p_lock;
	uint8_t			 p_seed[UTIL_HASH_SEED_LEN];
	struct peer_entry	**p_tab;
	size_t			 p_size;	/* power of two */
	size_t			 p_keys, p_conns, p_dup_keys, p_dup_conns;
	size_t			 p_entries;	/* local keys and remote-only */
	size_t			 p_routes;	/* (key, forwarder) pairs */
	uint64_t		 p_multi_created, p_multi_deleted;
	uint64_t		 p_del_other;
	uint64_t		 p_seq;
	struct watch		*p_watch;
	size_t			 p_nwatch, p_capwatch;
	/*
	 * Bumped by every writer as it takes the lock (peers_gen): a
	 * lookup remembered with the generation it was made in stays good
	 * while the generation does. Alone on its cache line: readers of
	 * the lock and the counters must not pull it from other cores.
	 */
	char			 p_gen_pad0[64];
	uint64_t		 p_gen;
	char			 p_gen_pad1[64 - sizeof(uint64_t)];
};

static enum peers_lookup lookup_locked(struct peers *,
	    const uint8_t[KEY_LEN], uint64_t, void **);

/* The write lock: every change to the registry starts a generation. */
static void
peers_wrlock(struct peers *p)
{
	pthread_rwlock_wrlock(&p->p_lock);
	__atomic_add_fetch(&p->p_gen, 1, __ATOMIC_RELEASE);
}

/* Keys are chosen by peers: a keyed hash, so none can aim at a chain. */
static size_t
key_hash(const struct peers *p, const uint8_t *k, size_t size)
{
	return (size_t)util_key_hash(p->p_seed, k) & (size - 1);
}

struct peers *
peers_new(const struct peers_ops *ops)
{
	struct peers *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->p_ops = ops;
	util_hash_seed(p->p_seed);
	p->p_size = 1024;
	if ((p->p_tab = calloc(p->p_size, sizeof(*p->p_tab))) == NULL) {
		free(p);
		return NULL;
	}
	pthread_rwlock_init(&p->p_lock, NULL);
	return p;
}

static void
entry_free_members(struct peer_entry *e)
{
	if (e->pe_m != &e->pe_one)
		free(e->pe_m);
}

void
peers_free(struct peers *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->p_size; i++) {
		struct peer_entry *e = p->p_tab[i], *n;
		for (; e != NULL; e = n) {
			n = e->pe_next;
			entry_free_members(e);
			free(e->pe_kept);
			free(e->pe_fwd);
			free(e);
		}
	}
	pthread_rwlock_destroy(&p->p_lock);
	free(p->p_watch);
	free(p->p_tab);
	free(p);
}

static struct peer_entry *
find_h(struct peers *p, const uint8_t key[KEY_LEN], uint64_t h,
    struct peer_entry ***prevp)
{
	struct peer_entry **pp = &p->p_tab[(size_t)h & (p->p_size - 1)];

	for (; *pp != NULL; pp = &(*pp)->pe_next)
		if (memcmp((*pp)->pe_key, key, KEY_LEN) == 0) {
			if (prevp != NULL)
				*prevp = pp;
			return *pp;
		}
	return NULL;
}

static struct peer_entry *
find(struct peers *p, const uint8_t key[KEY_LEN], struct peer_entry ***prevp)
{
	return find_h(p, key, util_key_hash(p->p_seed, key), prevp);
}

uint64_t
peers_hash(const struct peers *p, const uint8_t key[KEY_LEN])
{
	return util_key_hash(p->p_seed, key);
}

const uint8_t *
peers_seed(const struct peers *p)
{
	return p->p_seed;
}

static void
grow(struct peers *p)
{
	struct peer_entry	**nt, *e, *n;
	size_t			  ns = p->p_size * 2;

	if ((nt = calloc(ns, sizeof(*nt))) == NULL)
		return;		/* keep the longer chains */
	for (size_t i = 0; i < p->p_size; i++)
		for (e = p->p_tab[i]; e != NULL; e = n) {
			size_t h = key_hash(p, e->pe_key, ns);
			n = e->pe_next;
			e->pe_next = nt[h];
			nt[h] = e;
		}
	free(p->p_tab);
	p->p_tab = nt;
	p->p_size = ns;
}

/* Has watcher w's snapshot passed key (so changes go live)? */
static bool
watch_passed(const struct peers *p, const struct watch *w,
    const uint8_t key[KEY_LEN])
{
	return w->w_next >= w->w_snap || key_hash(p, key, w->w_snap) <
	    w->w_next;
}

static void
notify_present(struct peers *p, const uint8_t key[KEY_LEN], void *obj)
{
	for (size_t i = 0; i < p->p_nwatch; i++)
		if (watch_passed(p, &p->p_watch[i], key))
			p->p_ops->po_present(p->p_watch[i].w_obj, obj);
}

static void
notify_gone(struct peers *p, const uint8_t key[KEY_LEN])
{
	for (size_t i = 0; i < p->p_nwatch; i++)
		if (watch_passed(p, &p->p_watch[i], key))
			p->p_ops->po_gone(p->p_watch[i].w_obj, key);
}

/* A new empty entry for key, linked in (write lock held); NULL: no memory. */
static struct peer_entry *
entry_new(struct peers *p, const uint8_t key[KEY_LEN])
{
	struct peer_entry	*e;
	size_t			 h;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	memcpy(e->pe_key, key, KEY_LEN);
	e->pe_m = &e->pe_one;
	e->pe_cap = 1;
	h = key_hash(p, key, p->p_size);
	e->pe_next = p->p_tab[h];
	p->p_tab[h] = e;
	p->p_entries++;
	return e;
}

/*
 * Unlink and free e when it holds neither a conn nor a route (write lock
 * held). Returns true when it did; its kept keys go to *kept (caller
 * frees) when kept is not NULL.
 */
static bool
entry_maybe_free(struct peers *p, struct peer_entry *e,
    uint8_t (**kept)[KEY_LEN], size_t *nkept)
{
	struct peer_entry **pp = NULL;

	if (e->pe_n > 0 || e->pe_nfwd > 0)
		return false;
	(void)find(p, e->pe_key, &pp);	/* e is linked: pp is set */
	*pp = e->pe_next;
	if (kept != NULL) {
		*kept = e->pe_kept;
		*nkept = e->pe_nkept;
	} else
		free(e->pe_kept);
	entry_free_members(e);
	free(e->pe_fwd);
	free(e);
	p->p_entries--;
	return true;
}

int
peers_add(struct peers *p, const uint8_t key[KEY_LEN], void *obj)
{
	struct peer_entry	*e;
	int			 rc = -1;

	peers_wrlock(p);
	if ((e = find(p, key, NULL)) == NULL && (e = entry_new(p, key)) == NULL)
		goto out;
	if (e->pe_n == e->pe_cap) {
		uint32_t nc = e->pe_cap * 2;
		struct member *nm;

		if (e->pe_m == &e->pe_one) {
			if ((nm = calloc(nc, sizeof(*nm))) != NULL)
				nm[0] = e->pe_one;
		} else
			nm = realloc(e->pe_m, (size_t)nc * sizeof(*nm));
		if (nm == NULL) {
			entry_maybe_free(p, e, NULL, NULL);
			goto out;
		}
		e->pe_m = nm;
		e->pe_cap = nc;
	}
	if (e->pe_n == 0)
		p->p_keys++;
	p->p_ops->po_ref(obj);
	e->pe_m[e->pe_n].m_obj = obj;
	e->pe_m[e->pe_n].m_last_send = ++p->p_seq;
	e->pe_n++;
	p->p_conns++;
	/* Last writer is active: the newest connection gets the packets. */
	e->pe_active = obj;
	if (e->pe_n == 2) {
		p->p_dup_keys++;
		p->p_dup_conns += 2;
		p->p_ops->po_set_dup(e->pe_m[0].m_obj, true);
		p->p_ops->po_set_dup(obj, true);
	} else if (e->pe_n > 2) {
		p->p_dup_conns++;
		p->p_ops->po_set_dup(obj, true);
	}
	notify_present(p, key, obj);
	if (p->p_entries > p->p_size)
		grow(p);
	rc = 0;
out:
	pthread_rwlock_unlock(&p->p_lock);
	return rc;
}

bool
peers_remove(struct peers *p, const uint8_t key[KEY_LEN], void *obj)
{
	return peers_remove_sent(p, key, obj, NULL, 0, NULL, NULL);
}

/* Keep n delivered-to keys with entry e (bounded; zero keys skipped). */
static void
keep_sent(struct peer_entry *e, const uint8_t (*sent)[KEY_LEN], size_t n)
{
	size_t	 add = 0, i;
	uint8_t	(*nk)[KEY_LEN];

	for (i = 0; i < n; i++)
		if (!util_is_zero(sent[i], KEY_LEN))
			add++;
	if (add == 0 || e->pe_nkept + add > PEERS_MAX_KEPT)
		return;
	if ((nk = realloc(e->pe_kept, (e->pe_nkept + add) * KEY_LEN)) == NULL)
		return;
	e->pe_kept = nk;
	for (i = 0; i < n; i++)
		if (!util_is_zero(sent[i], KEY_LEN))
			memcpy(e->pe_kept[e->pe_nkept++], sent[i], KEY_LEN);
}

bool
peers_remove_sent(struct peers *p, const uint8_t key[KEY_LEN], void *obj,
    const uint8_t (*sent)[KEY_LEN], size_t nsent, uint8_t (**kept)[KEY_LEN],
    size_t *nkept)
{
	struct peer_entry	*e;
	bool			 last = false, found = false;
	size_t			 i;

	if (kept != NULL) {
		*kept = NULL;
		*nkept = 0;
	}
	peers_wrlock(p);
	for (i = 0; i < p->p_nwatch; i++)
		if (p->p_watch[i].w_obj == obj) {
			p->p_watch[i] = p->p_watch[--p->p_nwatch];
			break;
		}
	if ((e = find(p, key, NULL)) == NULL)
		goto out;
	for (i = 0; i < e->pe_n; i++)
		if (e->pe_m[i].m_obj == obj)
			break;
	if (i == e->pe_n)
		goto out;
	found = true;
	e->pe_m[i] = e->pe_m[--e->pe_n];
	p->p_conns--;
	if (e->pe_n == 0) {
		p->p_keys--;
		e->pe_active = NULL;
		notify_gone(p, key);
		/*
		 * Still in the region through a mesh peer: PeerGone waits for
		 * the last route to go (derper: the key stays in clientsMesh).
		 */
		if (!entry_maybe_free(p, e, kept, nkept))
			keep_sent(e, sent, nsent);
		else
			last = true;
		goto out;
	}
	keep_sent(e, sent, nsent);
	if (e->pe_n == 1) {
		p->p_dup_keys--;
		p->p_dup_conns -= 2;
		p->p_ops->po_set_dup(e->pe_m[0].m_obj, false);
	} else
		p->p_dup_conns--;
	/* The most recent remaining sender takes over. */
	if (e->pe_active == obj || e->pe_n == 1) {
		size_t best = 0;
		for (i = 1; i < e->pe_n; i++)
			if (e->pe_m[i].m_last_send > e->pe_m[best].m_last_send)
				best = i;
		e->pe_active = e->pe_m[best].m_obj;
	}
out:
	pthread_rwlock_unlock(&p->p_lock);
	if (found)
		p->p_ops->po_unref(obj);
	return last;
}

enum peers_lookup
peers_lookup(struct peers *p, const uint8_t key[KEY_LEN], void **out)
{
	return peers_lookup_h(p, key, util_key_hash(p->p_seed, key), out);
}

uint64_t
peers_gen(const struct peers *p)
{
	return __atomic_load_n(&p->p_gen, __ATOMIC_ACQUIRE);
}

enum peers_lookup
peers_lookup_gen(struct peers *p, const uint8_t key[KEY_LEN], uint64_t h,
    void **out, uint64_t *gen)
{
	enum peers_lookup r;

	pthread_rwlock_rdlock(&p->p_lock);
	*gen = __atomic_load_n(&p->p_gen, __ATOMIC_RELAXED);
	r = lookup_locked(p, key, h, out);
	pthread_rwlock_unlock(&p->p_lock);
	return r;
}

enum peers_lookup
peers_lookup_h(struct peers *p, const uint8_t key[KEY_LEN], uint64_t h,
    void **out)
{
	enum peers_lookup r;

	pthread_rwlock_rdlock(&p->p_lock);
	r = lookup_locked(p, key, h, out);
	pthread_rwlock_unlock(&p->p_lock);
	return r;
}

/* peers_lookup_h's work, the lock held (read or write). */
static enum peers_lookup
lookup_locked(struct peers *p, const uint8_t key[KEY_LEN], uint64_t h,
    void **out)
{
	struct peer_entry	*e;
	enum peers_lookup	 r = PEERS_NONE;

	if ((e = find_h(p, key, h, NULL)) != NULL) {
		if (e->pe_active != NULL) {
			p->p_ops->po_ref(e->pe_active);
			*out = e->pe_active;
			r = PEERS_FOUND;
		} else if (e->pe_n > 0) {
			r = PEERS_DUP_INACTIVE;
		} else if (e->pe_nfwd > 0) {
			/* Local conns win; a route only when none is here. */
			*out = e->pe_fwd[0];
			r = PEERS_FORWARD;
		}
	}
	return r;
}

void
peers_note_activity(struct peers *p, const uint8_t key[KEY_LEN], void *obj)
{
	struct peer_entry *e;

	peers_wrlock(p);
	if ((e = find(p, key, NULL)) != NULL) {
		for (size_t i = 0; i < e->pe_n; i++)
			if (e->pe_m[i].m_obj == obj) {
				e->pe_m[i].m_last_send = ++p->p_seq;
				e->pe_active = obj;
			}
	}
	pthread_rwlock_unlock(&p->p_lock);
}

int
peers_add_watcher(struct peers *p, void *obj)
{
	int	 rc = -1;

	peers_wrlock(p);
	for (size_t i = 0; i < p->p_nwatch; i++)
		if (p->p_watch[i].w_obj == obj) {
			rc = 0;
			goto out;
		}
	if (p->p_nwatch == p->p_capwatch) {
		size_t nc = p->p_capwatch ? p->p_capwatch * 2 : 4;
		struct watch *nw = realloc(p->p_watch, nc * sizeof(*nw));
		if (nw == NULL)
			goto out;
		p->p_watch = nw;
		p->p_capwatch = nc;
	}
	p->p_watch[p->p_nwatch].w_obj = obj;
	p->p_watch[p->p_nwatch].w_snap = p->p_size;
	p->p_watch[p->p_nwatch].w_next = 0;
	p->p_nwatch++;
	rc = 0;
out:
	pthread_rwlock_unlock(&p->p_lock);
	return rc;
}

int
peers_watch_snapshot(struct peers *p, void *obj, size_t max,
    void (*fn)(void *watcher, void *obj, void *arg), void *arg)
{
	struct watch	*w = NULL;
	size_t		 n = 0;
	int		 done;

	/*
	 * The read lock keeps writers out, and only obj's owner moves its
	 * cursor, so advancing w_next under the read lock is safe.
	 */
	pthread_rwlock_rdlock(&p->p_lock);
	for (size_t i = 0; i < p->p_nwatch; i++)
		if (p->p_watch[i].w_obj == obj)
			w = &p->p_watch[i];
	if (w == NULL) {
		pthread_rwlock_unlock(&p->p_lock);
		return 1;
	}
	while (w->w_next < w->w_snap && n < max) {
		for (size_t b = w->w_next; b < p->p_size; b += w->w_snap)
			for (struct peer_entry *e = p->p_tab[b]; e != NULL;
			    e = e->pe_next)
				if (e->pe_active != NULL) {
					fn(obj, e->pe_active, arg);
					n++;
				}
		w->w_next++;
	}
	done = w->w_next >= w->w_snap;
	pthread_rwlock_unlock(&p->p_lock);
	return done;
}

size_t
peers_kick_key(struct peers *p, const uint8_t key[KEY_LEN])
{
	struct peer_entry	*e;
	size_t			 n = 0;

	pthread_rwlock_rdlock(&p->p_lock);
	if ((e = find(p, key, NULL)) != NULL)
		for (; n < e->pe_n; n++)
			p->p_ops->po_kick(e->pe_m[n].m_obj);
	pthread_rwlock_unlock(&p->p_lock);
	return n;
}

void
peers_gauges(struct peers *p, struct peers_gauges *g)
{
	pthread_rwlock_rdlock(&p->p_lock);
	g->pg_keys = p->p_keys;
	g->pg_conns = p->p_conns;
	g->pg_dup_keys = p->p_dup_keys;
	g->pg_dup_conns = p->p_dup_conns;
	g->pg_watchers = p->p_nwatch;
	g->pg_remote_keys = p->p_entries - p->p_keys;
	g->pg_routes = p->p_routes;
	g->pg_multi_created = p->p_multi_created;
	g->pg_multi_deleted = p->p_multi_deleted;
	g->pg_route_del_other = p->p_del_other;
	pthread_rwlock_unlock(&p->p_lock);
}

size_t
peers_foreach(struct peers *p, const uint8_t *key,
    void (*fn)(void *, bool, void *), void *arg)
{
	struct peer_entry	*e;
	size_t			 n = 0;

	pthread_rwlock_rdlock(&p->p_lock);
	if (key != NULL) {
		if ((e = find(p, key, NULL)) != NULL)
			for (size_t i = 0; i < e->pe_n; i++, n++)
				fn(e->pe_m[i].m_obj,
				    e->pe_m[i].m_obj == e->pe_active, arg);
	} else {
		for (size_t h = 0; h < p->p_size; h++)
			for (e = p->p_tab[h]; e != NULL; e = e->pe_next)
				for (size_t i = 0; i < e->pe_n; i++, n++)
					fn(e->pe_m[i].m_obj,
					    e->pe_m[i].m_obj == e->pe_active,
					    arg);
	}
	pthread_rwlock_unlock(&p->p_lock);
	return n;
}

int
peers_route_add(struct peers *p, const uint8_t key[KEY_LEN], void *fwd)
{
	struct peer_entry	*e;
	int			 rc = -1;

	peers_wrlock(p);
	if ((e = find(p, key, NULL)) == NULL && (e = entry_new(p, key)) == NULL)
		goto out;
	for (size_t i = 0; i < e->pe_nfwd; i++)
		if (e->pe_fwd[i] == fwd) {
			rc = 0;		/* announced twice: one route */
			goto out;
		}
	if (e->pe_nfwd == e->pe_capfwd) {
		size_t nc = e->pe_capfwd ? e->pe_capfwd * 2 : 1;
		void **nf = realloc(e->pe_fwd, nc * sizeof(*nf));
		if (nf == NULL) {
			entry_maybe_free(p, e, NULL, NULL);
			goto out;
		}
		e->pe_fwd = nf;
		e->pe_capfwd = nc;
	}
	e->pe_fwd[e->pe_nfwd++] = fwd;
	p->p_routes++;
	if (e->pe_nfwd == 2)
		p->p_multi_created++;
	if (p->p_entries > p->p_size)
		grow(p);
	rc = 0;
out:
	pthread_rwlock_unlock(&p->p_lock);
	return rc;
}

bool
peers_route_del(struct peers *p, const uint8_t key[KEY_LEN], void *fwd,
    uint8_t (**kept)[KEY_LEN], size_t *nkept)
{
	struct peer_entry	*e;
	bool			 gone = false;
	size_t			 i;

	*kept = NULL;
	*nkept = 0;
	peers_wrlock(p);
	if ((e = find(p, key, NULL)) == NULL)
		goto out;
	for (i = 0; i < e->pe_nfwd; i++)
		if (e->pe_fwd[i] == fwd)
			break;
	if (i == e->pe_nfwd) {
		p->p_del_other++;	/* derper: delete of another value */
		goto out;
	}
	/* Keep the order: the next oldest route takes over. */
	memmove(&e->pe_fwd[i], &e->pe_fwd[i + 1],
	    (e->pe_nfwd - i - 1) * sizeof(*e->pe_fwd));
	e->pe_nfwd--;
	p->p_routes--;
	if (e->pe_nfwd == 1)
		p->p_multi_deleted++;
	gone = entry_maybe_free(p, e, kept, nkept);
out:
	pthread_rwlock_unlock(&p->p_lock);
	return gone;
}

bool
peers_note_delivered(struct peers *p, const uint8_t src[KEY_LEN],
    const uint8_t dst[KEY_LEN])
{
	struct peer_entry	*e;
	uint8_t			 one[1][KEY_LEN];
	bool			 known;

	memcpy(one[0], dst, KEY_LEN);
	peers_wrlock(p);
	if ((e = find(p, src, NULL)) != NULL) {
		size_t i;
		for (i = 0; i < e->pe_nkept; i++)
			if (memcmp(e->pe_kept[i], dst, KEY_LEN) == 0)
				break;
		if (i == e->pe_nkept)
			keep_sent(e, (const uint8_t (*)[KEY_LEN])one, 1);
	}
	known = e != NULL;
	pthread_rwlock_unlock(&p->p_lock);
	return known;
}
