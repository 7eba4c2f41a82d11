/* SPDX-License-Identifier: ISC */
/* pktq.c: packet allocation and the drop-from-head queue. */
#include <stdlib.h>

#include "pktq.h"

/*
 * Packets whose allocation fits PKT_CACHE_BYTES (every WireGuard and
 * disco packet a node sends) are recycled through a per-thread stack of
 * free buffers instead of malloc and free: a relayed packet is freed on
 * the receiver's worker, which allocates as many for its own senders, so
 * each stack stays near its working set. At most PKT_CACHE_MAX buffers
 * wait on a thread (512 KiB); past that they go back to malloc.
 */
#define PKT_CACHE_BYTES	2048
/* Under ASan every packet is malloc'd and freed: use-after-free shows. */
#if defined(__SANITIZE_ADDRESS__)
#define PKT_CACHE_MAX	1
#define PKT_CACHE_OFF	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PKT_CACHE_MAX	1
#define PKT_CACHE_OFF	1
#endif
#endif
#ifndef PKT_CACHE_MAX
#define PKT_CACHE_MAX	256
#define PKT_CACHE_OFF	0
#endif

struct pkt_cache {
	struct pkt	*pc_free[PKT_CACHE_MAX];
	unsigned	 pc_n;
};
static _Thread_local struct pkt_cache pkt_cache;

static struct pkt *
pkt_alloc(size_t bytes)
{
	struct pkt	*p;
	int		 cached = bytes <= PKT_CACHE_BYTES;

	if (cached && pkt_cache.pc_n > 0)
		p = pkt_cache.pc_free[--pkt_cache.pc_n];
	else if ((p = malloc(cached ? PKT_CACHE_BYTES : bytes)) == NULL)
		return NULL;
	p->p_cached = (uint8_t)cached;
	p->p_disco = 0;
	p->p_enq_ms = 0;
	return p;
}

struct pkt *
pkt_new(uint32_t len)
{
	struct pkt *p;

	if ((p = pkt_alloc(sizeof(*p) + 37 + (size_t)len)) == NULL)
		return NULL;
	p->p_len = len;
	p->p_fwd = 0;
	return p;
}

struct pkt *
pkt_new_fwd(uint32_t len)
{
	struct pkt *p;

	if ((p = pkt_alloc(sizeof(*p) + 69 + (size_t)len)) == NULL)
		return NULL;
	p->p_len = len;
	p->p_fwd = 1;
	return p;
}

void
pkt_free(struct pkt *p)
{
	if (p != NULL && p->p_cached && !PKT_CACHE_OFF &&
	    pkt_cache.pc_n < PKT_CACHE_MAX) {
		pkt_cache.pc_free[pkt_cache.pc_n++] = p;
		return;
	}
	free(p);
}

void
pkt_cache_flush(void)
{
	while (pkt_cache.pc_n > 0)
		free(pkt_cache.pc_free[--pkt_cache.pc_n]);
}

void
pktq_init(struct pktq *q, unsigned depth)
{
	q->q_ring = NULL;
	q->q_head = 0;
	q->q_len = 0;
	if (depth == 0 || depth > PKTQ_MAX_DEPTH)
		depth = PKTQ_MAX_DEPTH;
	q->q_depth = depth;
	q->q_size = depth;
}

int
pktq_init_big(struct pktq *q, unsigned depth)
{
	struct pkt **ring;

	pktq_init(q, depth);
	if ((ring = calloc(depth > q->q_size ? depth : q->q_size,
	    sizeof(*ring))) == NULL)
		return -1;
	if (depth <= PKTQ_MAX_DEPTH) {
		q->q_ring = ring;
		return 0;
	}
	q->q_ring = ring;
	q->q_size = depth;
	q->q_depth = depth;
	return 0;
}

void
pktq_release(struct pktq *q)
{
	free(q->q_ring);
	q->q_ring = NULL;
	q->q_head = 0;
	if (q->q_depth > PKTQ_MAX_DEPTH)
		q->q_depth = PKTQ_MAX_DEPTH;
	q->q_size = q->q_depth;
}

struct pktq_result
pktq_push(struct pktq *q, struct pkt *p,
    void (*dropped)(struct pkt *, int, void *), void *arg)
{
	struct pktq_result	 r = { 0, false };
	int			 attempt;

	if (q->q_ring == NULL &&
	    (q->q_ring = calloc(q->q_size, sizeof(*q->q_ring))) == NULL)
		attempt = 3;	/* no memory: a tail drop */
	else
		attempt = 0;
	for (; attempt < 3; attempt++) {
		if (q->q_len < q->q_depth) {
			q->q_ring[(q->q_head + q->q_len) % q->q_size] = p;
			q->q_len++;
			return r;
		}
		/* Full: the oldest packet makes room for the newest. */
		struct pkt *old = pktq_pop(q);
		r.pr_head_drops++;
		if (dropped != NULL)
			dropped(old, 1, arg);
		pkt_free(old);
	}
	r.pr_tail_drop = true;
	if (dropped != NULL)
		dropped(p, 0, arg);
	pkt_free(p);
	return r;
}

struct pkt *
pktq_pop(struct pktq *q)
{
	struct pkt *p;

	if (q->q_len == 0)
		return NULL;
	p = q->q_ring[q->q_head];
	q->q_head = (q->q_head + 1) % q->q_size;
	q->q_len--;
	return p;
}

unsigned
pktq_len(const struct pktq *q)
{
	return q->q_len;
}

void
pktq_clear(struct pktq *q, void (*dropped)(struct pkt *, int, void *),
    void *arg)
{
	struct pkt *p;

	while ((p = pktq_pop(q)) != NULL) {
		if (dropped != NULL)
			dropped(p, 0, arg);
		pkt_free(p);
	}
}
