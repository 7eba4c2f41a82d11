/* SPDX-License-Identifier: ISC */
/*
 * worker.h: worker threads, one event base each. A worker owns its queues:
 * other modules post work to it and never touch its fields (memcached's
 * thread.c model). What a worker runs is given by a struct worker_ops.
 */
#ifndef DERPD_WORKER_H
#define DERPD_WORKER_H

#include <sys/queue.h>
#include <sys/socket.h>

#include "log.h"
#include "stats.h"
#include "theap.h"

#ifdef __cplusplus
extern "C" {
#endif

struct derpd;
struct event_base;
struct worker;

/*
 * A link that lets an object be posted to a worker (embedded in the
 * object; the worker uses it while the object is on one of its queues).
 */
struct worker_item {
	STAILQ_ENTRY(worker_item) wi_link;
};

/* A link that keeps an object on its worker's list of live objects. */
struct worker_node {
	LIST_ENTRY(worker_node)	 wn_link;
};

/* What a worker calls; each runs on the worker's own thread. */
struct worker_ops {
	/* A listener accepted fd; port80 marks the HTTP redirect port. */
	void	(*wo_accept)(struct worker *, int fd, const struct sockaddr *,
		    socklen_t, int port80);
	/* Run a posted item; the poster's reference passes to the call. */
	void	(*wo_run)(struct worker_item *);
	/* Drop a posted item that will never run (teardown, any thread). */
	void	(*wo_drop)(struct worker_item *);
	/* Release a deferred item (after the current callbacks). */
	void	(*wo_reap)(struct worker_item *);
	/* Close every live object: the worker is stopping. */
	void	(*wo_shutdown)(struct worker *);
	/* The periodic tick (-auth-reverify) fired. */
	void	(*wo_tick)(struct worker *);
	/* A timer (worker_timer_set) is due; it is parked again. */
	void	(*wo_timer)(struct theap_node *);
};

/*
 * Create worker id with its base and events; fd/fd80 are listening
 * sockets it will accept on (fd80 may be -1); tick_ms > 0 arms the
 * periodic wo_tick. NULL on failure.
 */
struct worker *worker_new(struct derpd *env, int id, int fd, int fd80,
	    int64_t tick_ms, const struct worker_ops *ops);
/* Start the thread. 0 or -1. */
int	worker_start(struct worker *);
/*
 * Have w run wo_tick once soon, on its own thread (any thread; requests
 * made before it runs are one). The reload uses it to re-verify.
 */
void	worker_tick_now(struct worker *w);
/* Ask the worker to close everything and leave its loop (any thread). */
void	worker_stop(struct worker *);
/* Join the thread. */
void	worker_join(struct worker *);
/* Free a stopped, joined worker; drops what is left on its queues. */
void	worker_free(struct worker *);

/*
 * Have w run it (wo_run) on its thread, after the current callbacks
 * (same thread) or on the next wakeup (another thread: one eventfd write
 * per batch). from is the caller's worker, or NULL when unknown. The
 * caller guarantees it is on no queue (it must hold a reference for the
 * item, which wo_run or wo_drop releases).
 */
void	worker_post(struct worker *w, const struct worker *from,
	    struct worker_item *it);
/* Have w release it (wo_reap) after the current callbacks (owner). */
void	worker_defer(struct worker *w, struct worker_item *it);
/* Put a live object on w's list / take it off (owner thread). */
/*
 * Per-object timers on the worker's one heap (owner thread only). A
 * timer is added once, parked (never due), and parked again when it
 * fires: setting it moves it and never allocates, so only
 * worker_timer_add can fail (-1, no memory). Setting replaces the
 * deadline; worker_timer_remove takes it out (at close).
 */
int	worker_timer_add(struct worker *w, struct theap_node *t);
void	worker_timer_set(struct worker *w, struct theap_node *t, uint64_t ms);
void	worker_timer_remove(struct worker *w, struct theap_node *t);
void	worker_track(struct worker *w, struct worker_node *n);
void	worker_untrack(struct worker *w, struct worker_node *n);
/* The first live object of w, or NULL (owner thread). */
struct worker_node *worker_first(struct worker *w);
/* The live object after n, or NULL (owner thread). */
struct worker_node *worker_next(struct worker_node *n);

int	worker_id(const struct worker *);
struct derpd *worker_env(const struct worker *);
struct event_base *worker_base(const struct worker *);
/* The worker's counters: written by its thread only, read by anyone. */
struct stats *worker_stats(struct worker *);
const struct stats *worker_stats_ro(const struct worker *);
/* Count one event on w's counters from another thread (atomic add). */
void	worker_count_remote(struct worker *w, enum stat_id id);
/* The rate limit for log lines that peers can cause (owner thread). */
struct log_rate *worker_lograte(struct worker *);

#ifdef __cplusplus
}
#endif
#endif
