/* SPDX-License-Identifier: ISC */
/* pktq.h: relayed packets and the bounded per-client queue (PROTOCOL 5.1). */
#ifndef DERPD_PKTQ_H
#define DERPD_PKTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PKTQ_MAX_DEPTH	32

/*
 * One relayed packet, already laid out as the RecvPacket frame the
 * receiver gets: 5-byte header, 32-byte source key, payload (or, for a
 * mesh link, the ForwardPacket: header, source, destination, payload). One
 * allocation per packet; whoever holds the pointer owns it.
 */
struct pkt {
	uint32_t p_len;		/* payload bytes */
	uint8_t	 p_disco;	/* 1 if disco */
	uint8_t	 p_fwd;		/* 1: a ForwardPacket (two keys) */
	uint8_t	 p_cached;	/* from the per-thread cache (pkt_free) */
	uint64_t p_enq_ms;	/* when it was queued */
	uint8_t	 p_frame[];	/* 5 + 32 + p_len */
};

/* Frame bytes of a packet. */
#define PKT_FRAME_LEN(p)	(5u + 32u * (1u + (p)->p_fwd) + (p)->p_len)

/* Allocate a packet for len payload bytes; NULL on failure. */
struct pkt *pkt_new(uint32_t len);
/* A ForwardPacket (source and destination keys) for len bytes; NULL. */
struct pkt *pkt_new_fwd(uint32_t len);
/* Free a packet (to this thread's cache when it fits); NULL is a no-op. */
void	pkt_free(struct pkt *);
/* Give this thread's cached packet buffers back (a thread's last act). */
void	pkt_cache_flush(void);

/*
 * A ring of packet pointers: q_depth slots, allocated at the first push
 * (a client that is never sent anything pays nothing for its queues) and
 * kept until pktq_release; pktq_init_big allocates a larger one at once
 * (a mesh link carries the packets of many clients).
 */
struct pktq {
	struct pkt	**q_ring;	/* NULL until the first push */
	unsigned	 q_head;
	unsigned	 q_len;
	unsigned	 q_depth;	/* 1..q_size */
	unsigned	 q_size;	/* slots in q_ring */
};

/* Outcome of pktq_push: how many queued packets were evicted. */
struct pktq_result {
	unsigned	 pr_head_drops;	/* evicted from the head */
	bool		 pr_tail_drop;	/* the new packet itself was dropped */
};

void	pktq_init(struct pktq *, unsigned depth);
/* A queue of depth (> PKTQ_MAX_DEPTH allowed), its ring allocated now;
 * -1: no memory (then a PKTQ_MAX_DEPTH queue). */
int	pktq_init_big(struct pktq *, unsigned depth);
/* Free the ring (after pktq_clear); the queue is as after pktq_init. */
void	pktq_release(struct pktq *);
/*
 * Queue p. When full, evict from the head, up to 3 attempts as Go does;
 * with depth >= 1 the first eviction always makes room. Evicted packets
 * are freed and counted in the result; a tail drop frees p (also when
 * the ring cannot be allocated).
 */
struct pktq_result pktq_push(struct pktq *, struct pkt *p,
	    void (*dropped)(struct pkt *, int is_head, void *), void *arg);
/* Pop the oldest packet, NULL if empty. Caller owns it. */
struct pkt *pktq_pop(struct pktq *);
unsigned pktq_len(const struct pktq *);
/* Free everything queued, calling dropped(p, 0, arg) for each first. */
void	pktq_clear(struct pktq *, void (*dropped)(struct pkt *, int, void *),
	    void *arg);

#ifdef __cplusplus
}
#endif
#endif
