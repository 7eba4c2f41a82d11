/* SPDX-License-Identifier: ISC */
/*
 * notify.h: systemd's readiness protocol (sd_notify(3)) without
 * libsystemd. Each state change is one datagram of "KEY=value" lines sent
 * to the AF_UNIX socket named by $NOTIFY_SOCKET: a path, or "@name" for
 * an abstract socket. Without $NOTIFY_SOCKET nothing is sent.
 */
#ifndef DERPD_NOTIFY_H
#define DERPD_NOTIFY_H

#include <sys/socket.h>
#include <sys/un.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Pure: the address of $NOTIFY_SOCKET's value s in *sun and its length in
 * *len. Returns 0, or -1 when s is empty, too long, or neither a path
 * ("/...") nor an abstract name ("@..."): systemd's vsock form is not
 * supported.
 */
int	notify_addr(const char *s, struct sockaddr_un *sun, socklen_t *len);

/*
 * Send msg ("READY=1\nSTATUS=...") to $NOTIFY_SOCKET, if set, without
 * blocking. Returns 0 (also when unset), or -1 after logging why.
 */
int	notify_send(const char *msg);

/* The reload pair: RELOADING=1 with MONOTONIC_USEC (now), then READY=1. */
void	notify_reloading(void);
void	notify_ready(const char *status);

#ifdef __cplusplus
}
#endif
#endif
