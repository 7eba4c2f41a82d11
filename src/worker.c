/* SPDX-License-Identifier: ISC */
/* worker.c: worker threads; accept, inbox wakeups, shutdown. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "conn.h"
#include "auth.h"
#include "derpd.h"
#include "log.h"
#include "worker.h"

/* Callbacks per loop pass before the loop polls again (fairness). */
#define WORKER_MAX_CALLBACKS	32

static void
worker_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct worker *w = arg;

	conn_accept(w, fd, sa, (socklen_t)salen,
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

static void
worker_inbox_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct conn	*list;
	uint64_t	 v;

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
		conn_close_all(w);
		event_base_loopexit(w->w_base, NULL);
		return;
	}
	pthread_mutex_lock(&w->w_inlock);
	list = w->w_inbox;
	w->w_inbox = NULL;
	pthread_mutex_unlock(&w->w_inlock);
	conn_run_list(list);
}

static void
worker_ready_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct conn	*list = w->w_ready;

	(void)fd;
	(void)what;
	w->w_ready = NULL;
	conn_run_list(list);
}

static void
worker_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct worker	*w = arg;
	struct conn	*list = w->w_reap;

	(void)fd;
	(void)what;
	w->w_reap = NULL;
	conn_reap_list(list);
}

static void
worker_reverify_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	conn_reverify_all(arg);
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
worker_new(struct derpd *env, int id, int fd, int fd80)
{
	struct worker		*w;
	struct event_config	*cfg;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->w_id = id;
	w->w_env = env;
	w->w_efd = -1;
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
	w->w_retry = evtimer_new(w->w_base, worker_retry_cb, w);
	if (w->w_inev == NULL || w->w_readyev == NULL || w->w_reapev == NULL ||
	    w->w_retry == NULL || event_add(w->w_inev, NULL) == -1)
		goto fail;
	if (env->d_auth != NULL && env->d_auth_conf->ac_reverify_ms > 0) {
		int64_t ms = env->d_auth_conf->ac_reverify_ms;
		struct timeval tv = { (time_t)(ms / 1000),
		    (suseconds_t)((ms % 1000) * 1000) };
		w->w_reverify = event_new(w->w_base, -1, EV_PERSIST,
		    worker_reverify_cb, w);
		if (w->w_reverify == NULL || event_add(w->w_reverify, &tv) == -1)
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

	event_base_dispatch(w->w_base);
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

void
worker_wake(struct worker *w)
{
	uint64_t one = 1;

	if (write(w->w_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("worker %d: eventfd write", w->w_id);
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
	if (w == NULL)
		return;
	/* Threads are joined: nobody else touches these lists now. */
	conn_drop_list(w->w_inbox);
	w->w_inbox = NULL;
	conn_drop_list(w->w_ready);
	w->w_ready = NULL;
	conn_reap_list(w->w_reap);
	w->w_reap = NULL;
	if (w->w_lis != NULL)
		evconnlistener_free(w->w_lis);
	if (w->w_lis80 != NULL)
		evconnlistener_free(w->w_lis80);
	if (w->w_inev != NULL)
		event_free(w->w_inev);
	if (w->w_readyev != NULL)
		event_free(w->w_readyev);
	if (w->w_reapev != NULL)
		event_free(w->w_reapev);
	if (w->w_retry != NULL)
		event_free(w->w_retry);
	if (w->w_reverify != NULL)
		event_free(w->w_reverify);
	if (w->w_base != NULL)
		event_base_free(w->w_base);
	if (w->w_efd != -1)
		close(w->w_efd);
	pthread_mutex_destroy(&w->w_inlock);
	free(w);
}
