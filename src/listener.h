/* SPDX-License-Identifier: ISC */
/* listener.h: listening TCP sockets, one per worker via SO_REUSEPORT. */
#ifndef DERPD_LISTENER_H
#define DERPD_LISTENER_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Open n listening sockets on host:port (host "" = all addresses, dual
 * stack; port 0 = one ephemeral port shared by all). fds gets n
 * descriptors; bound is the "ip:port" text of the bound address.
 * 0, or -1 with err (nothing left open).
 */
int	listener_open(const char *host, const char *port, int n, int *fds,
	    char *bound, size_t boundlen, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
