/* SPDX-License-Identifier: ISC */
/*
 * control.h: the admin socket. Newline-delimited JSON, versioned, with
 * request ids; this file only frames and dispatches, the handlers live
 * with the data they read (conn_list, conn_kick_key, auth_ctl_*,
 * varz_ctl_*). It implements struct client_events (events.h) for monitors.
 */
#ifndef DERPD_CONTROL_H
#define DERPD_CONTROL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CONTROL_VERSION		1
#define CONTROL_MAX_LINE	(64 * 1024)

struct derpd;
struct control;
struct cJSON;

/*
 * Listen on path (mode 0600, or 0660 with group) and, if ro_path is not
 * empty, on a read-only socket accepting only show commands. Runs on
 * env->d_base. NULL with err naming the flag on failure.
 */
struct control *control_new(struct derpd *env, const char *path,
	    const char *group, const char *ro_path, char *err, size_t errlen);
/* Close the sockets and every admin connection; NULL is a no-op. */
void	control_free(struct control *);
/* True when someone runs "monitor" (cheap; any thread). */
int	control_monitoring(struct control *);

struct evbuffer;
/* The admin socket's counters as varz lines (any thread; NULL: zeros). */
void	control_varz(struct control *, struct evbuffer *out);
/* The same counters into the "stats" object of "show stats". */
void	control_ctl_stats(struct control *, struct cJSON *stats);

#ifdef __cplusplus
}
#endif
#endif
