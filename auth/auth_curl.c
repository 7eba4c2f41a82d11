/* SPDX-License-Identifier: ISC */
/*
 * auth_curl.c: libcurl's multi-socket API driven by a libevent base
 * (curl's hiperfifo pattern). Nothing here ever blocks the loop.
 */
#include <stdlib.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "auth_int.h"
#include "log.h"

struct sockctx {
	struct event	*s_ev;
};

struct pending {
	CURL		*p_easy;
	void		(*p_done)(void *, int, void *);
	void		*p_arg;
	struct pending	*p_next;
};

struct auth_curl {
	struct event_base	*c_base;
	CURLM			*c_multi;
	struct event		*c_timer;
	struct pending		*c_pending;
	int			 c_running;
};

static void
check_done(struct auth_curl *c)
{
	CURLMsg	*m;
	int	 left;

	while ((m = curl_multi_info_read(c->c_multi, &left)) != NULL) {
		struct pending **pp, *p;

		if (m->msg != CURLMSG_DONE)
			continue;
		for (pp = &c->c_pending; *pp != NULL; pp = &(*pp)->p_next)
			if ((*pp)->p_easy == m->easy_handle)
				break;
		if ((p = *pp) == NULL)
			continue;
		*pp = p->p_next;
		curl_multi_remove_handle(c->c_multi, p->p_easy);
		p->p_done(p->p_easy, (int)m->data.result, p->p_arg);
		curl_easy_cleanup(p->p_easy);
		free(p);
	}
}

static void
event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_curl	*c = arg;
	int			 action = 0;

	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(c->c_multi, fd, action, &c->c_running);
	check_done(c);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_curl *c = arg;

	(void)fd;
	(void)what;
	curl_multi_socket_action(c->c_multi, CURL_SOCKET_TIMEOUT, 0,
	    &c->c_running);
	check_done(c);
}

static int
socket_cb(CURL *easy, curl_socket_t s, int what, void *userp, void *sockp)
{
	struct auth_curl	*c = userp;
	struct sockctx		*sc = sockp;
	short			 kind = EV_PERSIST;

	(void)easy;
	if (what == CURL_POLL_REMOVE) {
		if (sc != NULL) {
			event_free(sc->s_ev);
			free(sc);
			curl_multi_assign(c->c_multi, s, NULL);
		}
		return 0;
	}
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if (sc == NULL) {
		if ((sc = calloc(1, sizeof(*sc))) == NULL)
			return -1;
		curl_multi_assign(c->c_multi, s, sc);
	} else
		event_free(sc->s_ev);
	sc->s_ev = event_new(c->c_base, s, kind, event_cb, c);
	if (sc->s_ev == NULL || event_add(sc->s_ev, NULL) == -1)
		return -1;
	return 0;
}

static int
timerfn_cb(CURLM *multi, long ms, void *userp)
{
	struct auth_curl	*c = userp;
	struct timeval		 tv;

	(void)multi;
	if (ms < 0) {
		evtimer_del(c->c_timer);
		return 0;
	}
	tv.tv_sec = ms / 1000;
	tv.tv_usec = (ms % 1000) * 1000;
	evtimer_add(c->c_timer, &tv);
	return 0;
}

struct auth_curl *
auth_curl_new(struct event_base *base)
{
	struct auth_curl *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->c_base = base;
	if ((c->c_multi = curl_multi_init()) == NULL ||
	    (c->c_timer = evtimer_new(base, timer_cb, c)) == NULL) {
		auth_curl_free(c);
		return NULL;
	}
	curl_multi_setopt(c->c_multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(c->c_multi, CURLMOPT_SOCKETDATA, c);
	curl_multi_setopt(c->c_multi, CURLMOPT_TIMERFUNCTION, timerfn_cb);
	curl_multi_setopt(c->c_multi, CURLMOPT_TIMERDATA, c);
	/* Keep connections to tailscaled and the webhook warm. */
	curl_multi_setopt(c->c_multi, CURLMOPT_MAXCONNECTS, 16L);
	return c;
}

void
auth_curl_free(struct auth_curl *c)
{
	if (c == NULL)
		return;
	while (c->c_pending != NULL) {
		struct pending *p = c->c_pending;
		c->c_pending = p->p_next;
		curl_multi_remove_handle(c->c_multi, p->p_easy);
		p->p_done(p->p_easy, CURLE_ABORTED_BY_CALLBACK, p->p_arg);
		curl_easy_cleanup(p->p_easy);
		free(p);
	}
	if (c->c_multi != NULL)
		curl_multi_cleanup(c->c_multi);	/* removes socket events */
	if (c->c_timer != NULL)
		event_free(c->c_timer);
	free(c);
}

int
auth_curl_add(struct auth_curl *c, void *easy,
    void (*done)(void *, int, void *), void *arg)
{
	struct pending *p;

	if (c == NULL || (p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	p->p_easy = easy;
	p->p_done = done;
	p->p_arg = arg;
	if (curl_multi_add_handle(c->c_multi, easy) != CURLM_OK) {
		free(p);
		return -1;
	}
	p->p_next = c->c_pending;
	c->c_pending = p;
	return 0;
}
