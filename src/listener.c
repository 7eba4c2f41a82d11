/* SPDX-License-Identifier: ISC */
/* listener.c: bind the shared listening port once per worker. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "listener.h"
#include "util.h"

/*
 * Open a listening socket on sa. With reuseport the workers' sockets share
 * the port (the kernel spreads connections over them); without it the
 * socket is a probe that fails with EADDRINUSE when anyone else listens
 * there. SO_REUSEPORT lets any process of the same user join the group, so
 * the group alone would let a second derpd silently take half the clients.
 */
static int
open_one(const struct sockaddr *sa, socklen_t sl, int reuseport, char *err,
    size_t errlen)
{
	int	 fd, one = 1, zero = 0;

	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (reuseport)
		setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (sa->sa_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, sa, sl) == -1 || listen(fd, 4096) == -1) {
		snprintf(err, errlen, "bind: %s%s", strerror(errno),
		    errno == EADDRINUSE ? " (is another derpd running?)" : "");
		close(fd);
		return -1;
	}
	return fd;
}

int
listener_open(const char *host, const char *port, int n, int *fds,
    char *bound, size_t boundlen, char *err, size_t errlen)
{
	struct addrinfo		 hints, *res = NULL, *ai;
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	int			 rc, i = 0, probe = -1;
	char			 e[256] = "no usable address";

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if (host[0] == '\0')
		hints.ai_family = AF_INET6;	/* dual stack "any" */
	if ((rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
		return -1;
	}
	/* The exclusive probe: refuse an address someone listens on. */
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((probe = open_one(ai->ai_addr, ai->ai_addrlen, 0, e,
		    sizeof(e))) != -1)
			break;
	}
	if (ai == NULL) {
		freeaddrinfo(res);
		snprintf(err, errlen, "[%s]:%s: %s", host, port, e);
		return -1;
	}
	/* Port 0 picked a port: the workers must share that one. */
	sl = sizeof(ss);
	getsockname(probe, (struct sockaddr *)&ss, &sl);
	util_addr_format((struct sockaddr *)&ss, bound, boundlen);
	freeaddrinfo(res);
	close(probe);
	for (i = 0; i < n; i++) {
		if ((fds[i] = open_one((struct sockaddr *)&ss, sl, 1, e,
		    sizeof(e))) == -1) {
			snprintf(err, errlen, "%s: %s", bound, e);
			while (--i >= 0)
				close(fds[i]);
			return -1;
		}
	}
	return 0;
}
