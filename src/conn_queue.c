/* SPDX-License-Identifier: ISC */
/*
 * conn_queue.c: packets and control frames queued for a connection by any
 * thread, its place on its worker's queue, and the flush that moves them
 * into its output.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "conn_int.h"
#include "derpd.h"
#include "io.h"
#include "pktq.h"

void
conn_queue_init(struct conn *c)
{
	pthread_mutex_init(&c->c_qlock, NULL);
	pktq_init(&c->c_dataq, PKTQ_MAX_DEPTH);
	pktq_init(&c->c_discoq, PKTQ_MAX_DEPTH);
	c->c_ctl_cap = CTL_MAX_PENDING;
}

static void
count_gone(struct pkt *p, int is_head, void *arg)
{
	struct stats *st = arg;

	(void)is_head;
	stats_drop(st, DROP_GONE_DISCONNECTED, p->p_disco, p->p_len);
}

static void
ctl_free_list(struct ctlmsg *m)
{
	struct ctlmsg *n;

	for (; m != NULL; m = n) {
		n = m->cm_next;
		free(m);
	}
}

void
conn_queue_shut(struct conn *c)
{
	pthread_mutex_lock(&c->c_qlock);
	c->c_closed = 1;
	pktq_clear(&c->c_dataq, count_gone, worker_stats(c->c_w));
	pktq_clear(&c->c_discoq, count_gone, worker_stats(c->c_w));
	ctl_free_list(c->c_ctl_head);
	c->c_ctl_head = c->c_ctl_tail = NULL;
	c->c_nctl = 0;
	pthread_mutex_unlock(&c->c_qlock);
}

void
conn_queue_free(struct conn *c)
{
	/* conn_close emptied the queues; a failed accept never filled them. */
	pktq_clear(&c->c_dataq, NULL, NULL);
	pktq_clear(&c->c_discoq, NULL, NULL);
	pktq_release(&c->c_dataq);
	pktq_release(&c->c_discoq);
	ctl_free_list(c->c_ctl_head);
	pthread_mutex_destroy(&c->c_qlock);
}

/*
 * Put c on its owner's schedule list (any thread; c_sched was just set
 * under c_qlock by the caller). from is the calling thread's worker.
 */
void
conn_schedule(struct worker *from, struct conn *c)
{
	conn_ref(c);		/* the posted item's; wo_run drops it */
	worker_post(c->c_w, from, &c->c_item);
}

/*
 * With c_qlock held: claim c's place on a schedule list. True when the
 * caller must list it (conn_schedule after unlocking).
 */
int
conn_claim_sched(struct conn *c)
{
	if (c->c_closed || c->c_sched)
		return 0;
	c->c_sched = 1;
	return 1;
}

struct drop_ctx {
	struct stats	*st;
	struct conn	*c;	/* the receiver, NULL if none */
};

static void
count_drop(struct pkt *p, int is_head, void *arg)
{
	struct drop_ctx *d = arg;

	stats_drop(d->st, is_head ? DROP_QUEUE_HEAD : DROP_QUEUE_TAIL,
	    p->p_disco, p->p_len);
	if (d->c != NULL)
		__atomic_add_fetch(&d->c->c_drops, 1, __ATOMIC_RELAXED);
}

/* Queue a packet for c (any thread); consumes p. */
void
conn_enqueue_pkt(struct worker *from, struct conn *c, struct pkt *p)
{
	struct drop_ctx	 d = { worker_stats(from), c };
	int		 sched = 0;

	p->p_enq_ms = util_now_ms();	/* derp_average_queue_duration_ms */
	pthread_mutex_lock(&c->c_qlock);
	if (c->c_closed) {
		pthread_mutex_unlock(&c->c_qlock);
		stats_drop(worker_stats(from), DROP_GONE_DISCONNECTED, p->p_disco,
		    p->p_len);
		pkt_free(p);
		return;
	}
	pktq_push(p->p_disco ? &c->c_discoq : &c->c_dataq, p, count_drop, &d);
	sched = conn_claim_sched(c);
	pthread_mutex_unlock(&c->c_qlock);
	if (sched)
		conn_schedule(from, c);
}

/*
 * Queue a control frame for c. Called by any thread, sometimes with the
 * registry lock held, so it must not take the registry lock. from may be
 * NULL when the caller's worker is unknown; then the inbox path is used.
 * Past c's cap (or out of memory) a frame to a sender is dropped and
 * counted; a watcher is marked to be closed, as its state would be wrong.
 */
void
conn_enqueue_ctl(struct worker *from, struct conn *c, const uint8_t *buf,
    size_t len)
{
	struct ctlmsg	*m;
	int		 sched = 0;

	if ((m = malloc(sizeof(*m))) != NULL) {
		m->cm_next = NULL;
		m->cm_len = (uint8_t)len;
		memcpy(m->cm_buf, buf, len);
	}
	pthread_mutex_lock(&c->c_qlock);
	if (c->c_closed) {
		pthread_mutex_unlock(&c->c_qlock);
		free(m);
		return;
	}
	if (m == NULL || c->c_nctl >= c->c_ctl_cap) {
		if (c->c_ctl_cap == WATCH_MAX_PENDING && !c->c_ctl_overflow) {
			c->c_ctl_overflow = 1;
			sched = conn_claim_sched(c);
		}
		pthread_mutex_unlock(&c->c_qlock);
		free(m);
		worker_count_remote(c->c_w, STAT_CTL_DROPS);
		if (sched)
			conn_schedule(from, c);
		return;
	}
	if (c->c_ctl_tail != NULL)
		c->c_ctl_tail->cm_next = m;
	else
		c->c_ctl_head = m;
	c->c_ctl_tail = m;
	c->c_nctl++;
	sched = conn_claim_sched(c);
	pthread_mutex_unlock(&c->c_qlock);
	if (sched)
		conn_schedule(from, c);
}

void
conn_kick(struct conn *c, enum close_reason r)
{
	/* 0 is "not kicked": store the reason plus one. */
	__atomic_store_n(&c->c_kick, (int)r + 1, __ATOMIC_RELAXED);
	conn_wake(c);
}

void
conn_wake(struct conn *c)
{
	int sched;

	pthread_mutex_lock(&c->c_qlock);
	sched = conn_claim_sched(c);
	pthread_mutex_unlock(&c->c_qlock);
	if (sched)
		conn_schedule(NULL, c);
}

/*
 * Move queued frames into the output buffer up to the high-water mark and
 * write them (owner thread). Disco before data; control frames only once
 * both packet queues are empty, so a PeerGone never overtakes a packet
 * from that peer queued before it.
 */
/*
 * Act on what other threads asked of c (owner thread): a verdict, a
 * re-verification, an overflowed watcher queue, a kick. Returns 1 when c
 * is ACTIVE and its queues may be flushed, 0 otherwise (maybe closed).
 */
static int
conn_flush_pending(struct conn *c)
{
	int v;

	if (c->c_state == CONN_CLOSING)
		return 0;
	if (c->c_state == CONN_AUTH_PENDING) {
		conn_auth_poll(c);
		return 0;
	}
	if (c->c_auth != NULL && c->c_state == CONN_ACTIVE) {
		conn_reverify_poll(c);
		if (c->c_state != CONN_ACTIVE)
			return 0;
	}
	pthread_mutex_lock(&c->c_qlock);
	v = c->c_ctl_overflow;
	pthread_mutex_unlock(&c->c_qlock);
	if (v) {
		conn_close(c, CLOSE_WATCHER_OVERFLOW, "watcher more than %d "
		    "updates behind", WATCH_MAX_PENDING);
		return 0;
	}
	if ((v = __atomic_load_n(&c->c_kick, __ATOMIC_RELAXED)) != 0) {
		enum close_reason r = (enum close_reason)(v - 1);
		conn_close(c, r, "%s", r == CLOSE_KICKED ?
		    "kicked by an operator" : "closed by a mesh peer");
		return 0;
	}
	return c->c_state == CONN_ACTIVE;
}

/* The output buffer is done with a packet's frame (owner thread). */
static void
pkt_written_cb(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	pkt_free(arg);
}

/*
 * Append a batch of packets and control frames to out; counts what was
 * sent. A packet's frame goes in by reference, not copied: the buffer
 * frees the packet once the frame has been written (plain HTTP writes
 * the frames with one writev; TLS joins them into full records).
 */
static void
conn_flush_batch(struct conn *c, struct evbuffer *out, struct pkt **batch,
    size_t nb, struct ctlmsg *ctl)
{
	struct stats	*st = worker_stats(c->c_w);
	/* derper's queue time and frames per flush: its clients only. */
	uint64_t	 now = c->c_link == NULL && nb > 0 ? util_now_ms() : 0;

	for (size_t i = 0; i < nb; i++) {
		struct pkt *p = batch[i];
		STAT_INC(st, STAT_PACKETS_SENT);
		STAT_ADD(st, STAT_BYTES_SENT, p->p_len);
		stats_add(&c->c_pkts_out, 1);
		stats_add(&c->c_bytes_out, p->p_len);
		if (now != 0)
			stats_queue_time(st, now > p->p_enq_ms ?
			    now - p->p_enq_ms : 0);
		if (evbuffer_add_reference(out, p->p_frame, PKT_FRAME_LEN(p),
		    pkt_written_cb, p) != 0) {
			stats_drop(st, DROP_NO_MEMORY, p->p_disco, p->p_len);
			pkt_free(p);
		}
	}
	while (ctl != NULL) {
		struct ctlmsg *n = ctl->cm_next;
		evbuffer_add(out, ctl->cm_buf, ctl->cm_len);
		free(ctl);
		ctl = n;
	}
}

void
conn_flush(struct conn *c, int from_list)
{
	struct evbuffer	*out;
	struct pkt	*batch[2 * PKTQ_MAX_DEPTH];
	struct ctlmsg	*ctl;
	size_t		 room, nb, used, nctl = 0;
	int		 more, loops = 0;

	/*
	 * Only the run list that held c may clear c_sched: a drain refill
	 * while c is still listed must not let it be listed twice.
	 */
	if (from_list) {
		pthread_mutex_lock(&c->c_qlock);
		c->c_sched = 0;
		pthread_mutex_unlock(&c->c_qlock);
	}
	if (!conn_flush_pending(c))
		return;
	out = io_output(c->c_io);
	c->c_flushing = 1;
	for (;;) {
		used = evbuffer_get_length(out);
		room = used < DERPD_OUT_HIGH_WATER ?
		    DERPD_OUT_HIGH_WATER - used : 0;
		nb = 0;
		ctl = NULL;
		pthread_mutex_lock(&c->c_qlock);
		while (room > 0 && nb < 2 * PKTQ_MAX_DEPTH) {
			struct pkt *p = pktq_pop(&c->c_discoq);
			if (p == NULL && (p = pktq_pop(&c->c_dataq)) == NULL)
				break;
			batch[nb++] = p;
			room = PKT_FRAME_LEN(p) < room ?
			    room - PKT_FRAME_LEN(p) : 0;
		}
		more = pktq_len(&c->c_discoq) + pktq_len(&c->c_dataq) > 0;
		if (!more) {
			/*
			 * Control frames too only while there is room: the
			 * rest stay queued, where the cap counts them.
			 */
			struct ctlmsg **tail = &ctl;
			nctl = 0;
			while (room > 0 && c->c_ctl_head != NULL) {
				struct ctlmsg *m = c->c_ctl_head;
				c->c_ctl_head = m->cm_next;
				m->cm_next = NULL;
				*tail = m;
				tail = &m->cm_next;
				c->c_nctl--;
				nctl++;
				room = m->cm_len < room ? room - m->cm_len : 0;
			}
			if (c->c_ctl_head == NULL)
				c->c_ctl_tail = NULL;
			more = c->c_ctl_head != NULL;
		}
		pthread_mutex_unlock(&c->c_qlock);
		if (nb == 0 && ctl == NULL)
			break;
		/* derper's mesh update histograms: a watcher's live updates. */
		if (c->c_watcher && ctl != NULL) {
			stats_observe(worker_stats(c->c_w),
			    HIST_MESH_UPDATE_BATCH, nctl);
			loops++;
		}
		if (c->c_link == NULL)
			stats_observe(worker_stats(c->c_w),
			    HIST_BUFFERED_WRITE_FRAMES,
			    nb + (ctl != NULL ? nctl : 0));
		conn_flush_batch(c, out, batch, nb, ctl);
		io_flush(c->c_io);
		if (c->c_state == CONN_CLOSING)
			return;
		/* Left over and the socket is full: the drain callback refills. */
		if (!more || evbuffer_get_length(out) >= DERPD_OUT_HIGH_WATER)
			break;
	}
	if (loops > 0)
		stats_observe(worker_stats(c->c_w), HIST_MESH_UPDATE_LOOPS,
		    (uint64_t)loops);
	/* A full output buffer ends this; its drain callback resumes it. */
	while (c->c_watcher && !c->c_watch_synced && conn_out_has_room(c)) {
		conn_watch_pump(c);
		io_flush(c->c_io);
		if (c->c_state == CONN_CLOSING)
			return;
	}
	c->c_flushing = 0;
}
