/* SPDX-License-Identifier: ISC */
/*
 * events.h: what connection code tells an observer about clients. The
 * admin socket implements it (control.c, for "monitor"); connection code
 * knows only this interface, not who listens or how events are written.
 */
#ifndef DERPD_EVENTS_H
#define DERPD_EVENTS_H

#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

enum client_event {
	CLIENT_CONNECT,		/* registered: key, address, worker */
	CLIENT_DISCONNECT,	/* left: also the close reason */
	CLIENT_REJECT,		/* refused by admission: key, source, reason */
};

/* Zeroed: nobody listens. Set once at startup, before the workers run. */
struct client_events {
	/*
	 * Any thread; cheap when nobody watches. reason may be NULL for
	 * CLIENT_CONNECT.
	 */
	void	(*ce_client)(void *arg, enum client_event,
		    const uint8_t *key, const struct sockaddr *sa, int worker,
		    const char *reason);
	void	*ce_arg;
};

/*
 * Lines another part adds to /debug/varz (the admin socket's counters;
 * control.c sets it). Zeroed: none.
 */
struct evbuffer;
struct varz_hook {
	void	(*vh_render)(void *arg, struct evbuffer *out);
	void	*vh_arg;
};

static inline void
events_client(const struct client_events *ev, enum client_event e,
    const uint8_t *key, const struct sockaddr *sa, int worker,
    const char *reason)
{
	if (ev->ce_client != NULL)
		ev->ce_client(ev->ce_arg, e, key, sa, worker, reason);
}

#ifdef __cplusplus
}
#endif
#endif
