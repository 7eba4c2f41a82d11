/* SPDX-License-Identifier: ISC */
/*
 * worker.c: worker threads; accept, posted work, deferred release and
 * shutdown. Only this file touches struct worker.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "derpd.h"
#include "ratelim.h"
#include "log.h"
#include "util.h"
#include "io.h"
#include "pktq.h"
#include "worker.h"

/* Callbacks per loop pass before the loop polls again (fairness). */
#define WORKER_MAX_CALLBACKS	32
/*
 * After this many objects were released, give free memory back to the
 * system a little later: the allocator keeps what a crowd of clients
 * used after they left, and a relay's crowds come and go.
 */
#define WORKER_TRIM_AFTER	1024
/* Released objects per reap callback: then the others get a turn. */
#define WORKER_REAP_SLICE	64
#define WORKER_TRIM_DELAY_MS	2000
/* Due timers run per callback: then the loop polls (fairness, part 2). */
#define WORKER_TIMER_SLICE	64
#define WORKER_TIMER_PARKED	UINT64_MAX

STAILQ_HEAD(worker_queue, worker_item);

static void	worker_wake(struct worker *);

struct worker {
	int			 w_id;
	struct derpd		*w_env;
	const struct worker_ops	*w_ops;
	pthread_t		 w_thread;
	bool			 w_started;
	struct event_base	*w_base;
	struct stats		 w_stats;
	/* Cross-thread inbox of posted items. */
	pthread_mutex_t		 w_inlock;
	struct worker_queue	 w_inbox;	/* guarded by w_inlock */
	int			 w_efd;		/* eventfd: one wakeup per batch */
	int			 w_stop;	/* atomic */
	int			 w_tick_now;	/* atomic: run wo_tick once */
	struct event		*w_inev;
	/* Same-thread posts, run after the current callbacks. */
	struct worker_queue	 w_ready;
	struct event		*w_readyev;
	/* Items released after the current callbacks. */
	struct worker_queue	 w_reap;
	struct event		*w_reapev;
	/*
	 * Wakeups owed to other workers whose inboxes this thread filled,
	 * sent once after the current callbacks (w_wakeev): one eventfd
	 * write per target per pass, not per packet. Owner thread only.
	 */
	uint64_t		 w_wake_mask;
	struct event		*w_wakeev;
	struct evconnlistener	*w_lis;
	struct evconnlistener	*w_lis80;
	struct event		*w_retry;	/* re-enable accept after EMFILE */
	struct event		*w_tick;	/* wo_tick */
	struct event		*w_trim;	/* malloc_trim after departures */
	size_t			 w_reaped;	/* released since the last trim */
	/*
	 * Every connection's timer in one heap, served by one libevent
	 * timer (w_timerev, armed for w_timer_at, 0: not armed): 16 bytes
	 * per connection instead of a struct event and its allocation.
	 */
	struct theap		 w_timers;
	struct event		*w_timerev;
	uint64_t		 w_timer_at;
	LIST_HEAD(, worker_node) w_live;	/* live objects */
	struct log_rate		 w_lograte;	/* lines about bad peers */
};

/* The worker whose loop runs on this thread, or NULL (main thread). */
static _Thread_local struct worker *worker_self;

/* After this pass's callbacks: the wakeups this worker owes others. */
static void
worker_wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct derpd	*env = w->w_env;
	uint64_t	 m = w->w_wake_mask;

	(void)fd;
	(void)what;
	w->w_wake_mask = 0;
	for (int i = 0; m != 0 && i < env->d_nworkers; i++)
		if (m & ((uint64_t)1 << i)) {
			m &= ~((uint64_t)1 << i);
			worker_wake(env->d_workers[i]);
		}
}

static void
worker_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct worker	*w = arg;
	uint64_t	 held;

	/*
	 * Over -accept-connection-limit: accepted and closed at once, as
	 * derper does, so the client learns now and the kernel's queue
	 * does not fill. The HTTP port in TLS mode is not limited (derper).
	 */
	if (l != w->w_lis80 && !ratelim_accept(w->w_env->d_ratelim)) {
		close(fd);
		if (log_rate_allow(&w->w_lograte, util_now_ms(), 1, 5, &held))
			log_warnx("worker %d: connection closed at accept: "
			    "over -accept-connection-limit%s", w->w_id,
			    held ? " (and others, held back)" : "");
		else
			STAT_INC(&w->w_stats, STAT_LOG_HELD);
		return;
	}
	w->w_ops->wo_accept(w, fd, sa, (socklen_t)salen,
	    l == w->w_lis80 ? 1 : 0);
}

static void
worker_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	if (w->w_lis != NULL)
		evconnlistener_enable(w->w_lis);
	if (w->w_lis80 != NULL)
		evconnlistener_enable(w->w_lis80);
}

static void
worker_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct worker	*w = arg;
	struct timeval	 tv = { 1, 0 };
	int		 e = EVUTIL_SOCKET_ERROR();

	(void)l;
	STAT_INC(&w->w_stats, STAT_ACCEPT_ERRORS);
	if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
		/* Out of descriptors: pause accepting for a second. */
		log_warnx("worker %d: accept: %s; pausing accepts for 1s",
		    w->w_id, strerror(e));
		if (w->w_lis != NULL)
			evconnlistener_disable(w->w_lis);
		if (w->w_lis80 != NULL)
			evconnlistener_disable(w->w_lis80);
		evtimer_add(w->w_retry, &tv);
		return;
	}
	log_warnx("worker %d: accept: %s", w->w_id, strerror(e));
}

/* Run every item of q (taken whole, so posts made meanwhile wait). */
static void
worker_run_queue(struct worker *w, struct worker_queue *q)
{
	struct worker_item *it;

	while ((it = STAILQ_FIRST(q)) != NULL) {
		STAILQ_REMOVE_HEAD(q, wi_link);
		w->w_ops->wo_run(it);
	}
}

static void
worker_inbox_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker		*w = arg;
	struct worker_queue	 q = STAILQ_HEAD_INITIALIZER(q);
	uint64_t		 v;

	(void)what;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("worker %d: eventfd read", w->w_id);
	if (__atomic_load_n(&w->w_stop, __ATOMIC_ACQUIRE)) {
		if (w->w_lis != NULL) {
			evconnlistener_free(w->w_lis);
			w->w_lis = NULL;
		}
		if (w->w_lis80 != NULL) {
			evconnlistener_free(w->w_lis80);
			w->w_lis80 = NULL;
		}
		w->w_ops->wo_shutdown(w);
		event_base_loopexit(w->w_base, NULL);
		return;
	}
	pthread_mutex_lock(&w->w_inlock);
	STAILQ_CONCAT(&q, &w->w_inbox);
	pthread_mutex_unlock(&w->w_inlock);
	worker_run_queue(w, &q);
	if (__atomic_exchange_n(&w->w_tick_now, 0, __ATOMIC_ACQ_REL) &&
	    w->w_ops->wo_tick != NULL)
		w->w_ops->wo_tick(w);
}

static void
worker_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker		*w = arg;
	struct worker_queue	 q = STAILQ_HEAD_INITIALIZER(q);

	(void)fd;
	(void)what;
	STAILQ_CONCAT(&q, &w->w_ready);
	worker_run_queue(w, &q);
}

static void
worker_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker		*w = arg;
	struct worker_item	*it;

	(void)fd;
	(void)what;
	for (int n = 0; n < WORKER_REAP_SLICE &&
	    (it = STAILQ_FIRST(&w->w_reap)) != NULL; n++) {
		STAILQ_REMOVE_HEAD(&w->w_reap, wi_link);
		w->w_ops->wo_reap(it);
		w->w_reaped++;
	}
	/* More left: after the others (the fairness rule, io.c). */
	if (!STAILQ_EMPTY(&w->w_reap))
		event_active(w->w_reapev, EV_READ, 0);
	if (w->w_reaped >= WORKER_TRIM_AFTER &&
	    !evtimer_pending(w->w_trim, NULL)) {
		struct timeval tv = { WORKER_TRIM_DELAY_MS / 1000,
		    (WORKER_TRIM_DELAY_MS % 1000) * 1000 };
		evtimer_add(w->w_trim, &tv);
	}
}

static void
worker_trim_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	log_debug("worker %d: %zu connections gone; returning free memory",
	    w->w_id, w->w_reaped);
	w->w_reaped = 0;
	pkt_cache_flush();
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

static void
worker_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker *w = arg;

	(void)fd;
	(void)what;
	w->w_ops->wo_tick(w);
}

void
worker_post(struct worker *w, const struct worker *from,
    struct worker_item *it)
{
	int wake;

	if (from == w) {
		if (STAILQ_EMPTY(&w->w_ready))
			event_active(w->w_readyev, EV_READ, 0);
		STAILQ_INSERT_TAIL(&w->w_ready, it, wi_link);
		return;
	}
	pthread_mutex_lock(&w->w_inlock);
	wake = STAILQ_EMPTY(&w->w_inbox);
	STAILQ_INSERT_TAIL(&w->w_inbox, it, wi_link);
	pthread_mutex_unlock(&w->w_inlock);
	if (!wake)
		return;
	if (worker_self != NULL && worker_self != w && w->w_id < 64) {
		/* From a worker's loop: one wakeup after this pass. */
		if (worker_self->w_wake_mask == 0)
			event_active(worker_self->w_wakeev, EV_READ, 0);
		worker_self->w_wake_mask |= (uint64_t)1 << w->w_id;
		return;
	}
	worker_wake(w);
}

void
worker_defer(struct worker *w, struct worker_item *it)
{
	if (STAILQ_EMPTY(&w->w_reap))
		event_active(w->w_reapev, EV_READ, 0);
	STAILQ_INSERT_TAIL(&w->w_reap, it, wi_link);
}

/* Make the libevent timer fire by the heap's earliest deadline. */
static void
worker_timer_arm(struct worker *w)
{
	struct theap_node	*t = theap_top(&w->w_timers);
	struct timeval		 tv;
	uint64_t		 now, ms;

	if (t == NULL || t->tn_due == WORKER_TIMER_PARKED)
		return;		/* an early wakeup finds nothing: harmless */
	if (w->w_timer_at != 0 && w->w_timer_at <= t->tn_due)
		return;		/* it wakes in time and re-arms */
	now = util_now_ms();
	ms = t->tn_due > now ? t->tn_due - now : 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	if (evtimer_add(w->w_timerev, &tv) == 0)
		w->w_timer_at = t->tn_due;
}

static void
worker_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker		*w = arg;
	struct theap_node	*t;
	uint64_t		 now = util_now_ms();
	int			 n;

	(void)fd;
	(void)what;
	w->w_timer_at = 0;
	for (n = 0; n < WORKER_TIMER_SLICE; n++) {
		if ((t = theap_top(&w->w_timers)) == NULL || t->tn_due > now)
			break;
		/* Parking an armed node moves it and never allocates. */
		(void)theap_set(&w->w_timers, t, WORKER_TIMER_PARKED);
		w->w_ops->wo_timer(t);
	}
	if (n == WORKER_TIMER_SLICE && (t = theap_top(&w->w_timers)) != NULL &&
	    t->tn_due <= now) {
		/* More are due: after the others had a turn. */
		w->w_timer_at = 1;
		event_active(w->w_timerev, EV_TIMEOUT, 0);
		return;
	}
	worker_timer_arm(w);
}

int
worker_timer_add(struct worker *w, struct theap_node *t)
{
	return theap_set(&w->w_timers, t, WORKER_TIMER_PARKED);
}

void
worker_timer_set(struct worker *w, struct theap_node *t, uint64_t ms)
{
	if (!theap_armed(t))
		return;		/* not added, or removed: a closed object */
	(void)theap_set(&w->w_timers, t, util_now_ms() + ms);
	worker_timer_arm(w);
}

void
worker_timer_remove(struct worker *w, struct theap_node *t)
{
	theap_del(&w->w_timers, t);
}

void
worker_track(struct worker *w, struct worker_node *n)
{
	LIST_INSERT_HEAD(&w->w_live, n, wn_link);
}

void
worker_untrack(struct worker *w, struct worker_node *n)
{
	(void)w;
	LIST_REMOVE(n, wn_link);
}

struct worker_node *
worker_first(struct worker *w)
{
	return LIST_FIRST(&w->w_live);
}

struct worker_node *
worker_next(struct worker_node *n)
{
	return LIST_NEXT(n, wn_link);
}

int
worker_id(const struct worker *w)
{
	return w->w_id;
}

struct derpd *
worker_env(const struct worker *w)
{
	return w->w_env;
}

struct event_base *
worker_base(const struct worker *w)
{
	return w->w_base;
}

struct stats *
worker_stats(struct worker *w)
{
	return &w->w_stats;
}

const struct stats *
worker_stats_ro(const struct worker *w)
{
	return &w->w_stats;
}

void
worker_count_remote(struct worker *w, enum stat_id id)
{
	/* The owner never writes these counters: an atomic add is safe. */
	__atomic_add_fetch(&w->w_stats.st_c[id], 1, __ATOMIC_RELAXED);
}

struct log_rate *
worker_lograte(struct worker *w)
{
	return &w->w_lograte;
}

static struct evconnlistener *
listener_new(struct worker *w, int fd)
{
	struct evconnlistener *l;

	if (fd == -1)
		return NULL;
	l = evconnlistener_new(w->w_base, worker_accept_cb, w,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
	if (l != NULL)
		evconnlistener_set_error_cb(l, worker_accept_error_cb);
	return l;
}

struct worker *
worker_new(struct derpd *env, int id, int fd, int fd80, int64_t tick_ms,
    const struct worker_ops *ops)
{
	struct worker		*w;
	struct event_config	*cfg;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->w_id = id;
	w->w_env = env;
	w->w_ops = ops;
	w->w_efd = -1;
	STAILQ_INIT(&w->w_inbox);
	STAILQ_INIT(&w->w_ready);
	STAILQ_INIT(&w->w_reap);
	LIST_INIT(&w->w_live);
	theap_init(&w->w_timers);
	pthread_mutex_init(&w->w_inlock, NULL);
	/* A base is only ever touched by its own thread: no locking. */
	if ((cfg = event_config_new()) == NULL)
		goto fail;
	event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
	/*
	 * Fairness rule, part 2 (part 1 is the read budget in io.c): after
	 * WORKER_MAX_CALLBACKS callbacks the loop polls the kernel and runs
	 * due timers before it runs more. An event activated from inside a
	 * callback (a connection that spent its read budget and asks to go
	 * on) would otherwise run again in the same pass, and one flooding
	 * client would keep epoll, timers and the inbox waiting until it
	 * ran dry. With the limit it goes to the back of the line.
	 */
	if (event_config_set_max_dispatch_interval(cfg, NULL,
	    WORKER_MAX_CALLBACKS, 0) == -1)
		goto fail;
	w->w_base = event_base_new_with_config(cfg);
	event_config_free(cfg);
	if (w->w_base == NULL)
		goto fail;
	if ((w->w_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		goto fail;
	w->w_inev = event_new(w->w_base, w->w_efd, EV_READ | EV_PERSIST,
	    worker_inbox_cb, w);
	w->w_readyev = event_new(w->w_base, -1, 0, worker_ready_cb, w);
	w->w_reapev = event_new(w->w_base, -1, 0, worker_reap_cb, w);
	w->w_wakeev = event_new(w->w_base, -1, 0, worker_wake_cb, w);
	w->w_retry = evtimer_new(w->w_base, worker_retry_cb, w);
	w->w_trim = evtimer_new(w->w_base, worker_trim_cb, w);
	w->w_timerev = evtimer_new(w->w_base, worker_timer_cb, w);
	if (w->w_inev == NULL || w->w_readyev == NULL || w->w_reapev == NULL ||
	    w->w_wakeev == NULL || w->w_timerev == NULL ||
	    w->w_retry == NULL || w->w_trim == NULL ||
	    event_add(w->w_inev, NULL) == -1)
		goto fail;
	if (tick_ms > 0) {
		struct timeval tv = { (time_t)(tick_ms / 1000),
		    (suseconds_t)((tick_ms % 1000) * 1000) };
		w->w_tick = event_new(w->w_base, -1, EV_PERSIST,
		    worker_tick_cb, w);
		if (w->w_tick == NULL || event_add(w->w_tick, &tv) == -1)
			goto fail;
	}
	if (fd != -1 && (w->w_lis = listener_new(w, fd)) == NULL)
		goto fail;
	if (fd80 != -1 && (w->w_lis80 = listener_new(w, fd80)) == NULL)
		goto fail;
	return w;
fail:
	log_warnx("worker %d: setup failed", id);
	worker_free(w);
	return NULL;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	worker_self = w;
	event_base_dispatch(w->w_base);
	/* Wakeups still owed (the loop ended first) go now. */
	if (w->w_wake_mask != 0)
		worker_wake_cb(-1, 0, w);
	pkt_cache_flush();
	io_thread_done();
	return NULL;
}

int
worker_start(struct worker *w)
{
	if (pthread_create(&w->w_thread, NULL, worker_main, w) != 0)
		return -1;
	w->w_started = true;
	return 0;
}

static void
worker_wake(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->w_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("worker %d: eventfd write", w->w_id);
}

void
worker_tick_now(struct worker *w)
{
	__atomic_store_n(&w->w_tick_now, 1, __ATOMIC_RELEASE);
	worker_wake(w);
}

void
worker_stop(struct worker *w)
{
	__atomic_store_n(&w->w_stop, 1, __ATOMIC_RELEASE);
	worker_wake(w);
}

void
worker_join(struct worker *w)
{
	if (w->w_started)
		pthread_join(w->w_thread, NULL);
	w->w_started = false;
}

void
worker_free(struct worker *w)
{
	struct worker_item *it;

	if (w == NULL)
		return;
	/* Threads are joined: nobody else touches these queues now. */
	while ((it = STAILQ_FIRST(&w->w_inbox)) != NULL) {
		STAILQ_REMOVE_HEAD(&w->w_inbox, wi_link);
		w->w_ops->wo_drop(it);
	}
	while ((it = STAILQ_FIRST(&w->w_ready)) != NULL) {
		STAILQ_REMOVE_HEAD(&w->w_ready, wi_link);
		w->w_ops->wo_drop(it);
	}
	while ((it = STAILQ_FIRST(&w->w_reap)) != NULL) {
		STAILQ_REMOVE_HEAD(&w->w_reap, wi_link);
		w->w_ops->wo_reap(it);
	}
	if (w->w_lis != NULL)
		evconnlistener_free(w->w_lis);
	if (w->w_lis80 != NULL)
		evconnlistener_free(w->w_lis80);
	if (w->w_inev != NULL)
		event_free(w->w_inev);
	if (w->w_readyev != NULL)
		event_free(w->w_readyev);
	if (w->w_wakeev != NULL)
		event_free(w->w_wakeev);
	if (w->w_reapev != NULL)
		event_free(w->w_reapev);
	if (w->w_retry != NULL)
		event_free(w->w_retry);
	if (w->w_tick != NULL)
		event_free(w->w_tick);
	if (w->w_trim != NULL)
		event_free(w->w_trim);
	if (w->w_timerev != NULL)
		event_free(w->w_timerev);
	theap_free(&w->w_timers);
	if (w->w_base != NULL)
		event_base_free(w->w_base);
	if (w->w_efd != -1)
		close(w->w_efd);
	pthread_mutex_destroy(&w->w_inlock);
	free(w);
}
