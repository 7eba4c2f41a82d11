/* SPDX-License-Identifier: ISC */
/* worker.h: worker threads, one event base each, with a packet inbox. */
#ifndef DERPD_WORKER_H
#define DERPD_WORKER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "log.h"
#include "stats.h"

#ifdef __cplusplus
extern "C" {
#endif

struct derpd;
struct conn;
struct event;
struct event_base;
struct evconnlistener;

struct worker {
	int			 w_id;
	struct derpd		*w_env;
	pthread_t		 w_thread;
	bool			 w_started;
	struct event_base	*w_base;
	struct stats		 w_stats;
	/* Cross-thread inbox of connections with queued work. */
	pthread_mutex_t		 w_inlock;
	struct conn		*w_inbox;	/* guarded by w_inlock */
	int			 w_efd;		/* eventfd: one wakeup per batch */
	int			 w_stop;	/* atomic */
	struct event		*w_inev;
	/* Same-thread schedule list, flushed after the current callbacks. */
	struct conn		*w_ready;
	struct event		*w_readyev;
	/* Closed connections whose owner reference is dropped later. */
	struct conn		*w_reap;
	struct event		*w_reapev;
	struct evconnlistener	*w_lis;
	struct evconnlistener	*w_lis80;
	struct event		*w_retry;	/* re-enable accept after EMFILE */
	struct event		*w_reverify;	/* -auth-reverify ticker */
	struct log_rate		 w_lograte;	/* lines about bad peers */
	struct conn		*w_conns;	/* every live conn of this worker */
	size_t			 w_nconns;
};

/*
 * Create worker id with its base and events; fd/fd80 are listening
 * sockets it will accept on (fd80 may be -1). NULL on failure.
 */
struct worker *worker_new(struct derpd *env, int id, int fd, int fd80);
/* Start the thread. 0 or -1. */
int	worker_start(struct worker *);
/* Ask the worker to close everything and leave its loop (any thread). */
void	worker_stop(struct worker *);
/* Join the thread. */
void	worker_join(struct worker *);
/* Free a stopped, joined worker; drops what is left in its inbox. */
void	worker_free(struct worker *);
/* Wake the worker's loop: its inbox got a first entry (any thread). */
void	worker_wake(struct worker *);

#ifdef __cplusplus
}
#endif
#endif
