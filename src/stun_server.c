/* SPDX-License-Identifier: ISC */
/* stun_server.c: answers STUN binding requests without blocking. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "stats.h"
#include "stun.h"
#include "stun_server.h"
#include "util.h"

#define STUN_BATCH	64

struct stun_server {
	int		 s_fd;
	struct event	*s_ev;
	struct stats	 s_stats;
};

static void
stun_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct stun_server	*s = arg;
	uint8_t			 buf[2048], txid[12], resp[STUN_RESPONSE_MAX];
	struct sockaddr_storage	 ss;
	socklen_t		 sl;
	ssize_t			 n;
	size_t			 rn;
	enum stun_kind		 k;

	(void)what;
	for (int i = 0; i < STUN_BATCH; i++) {
		sl = sizeof(ss);
		n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&ss,
		    &sl);
		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    errno != EINTR)
				STAT_INC(&s->s_stats, STAT_STUN_READ_ERROR);
			return;
		}
		k = stun_parse_request(buf, (size_t)n, txid);
		if (k == STUN_NOT) {
			STAT_INC(&s->s_stats, STAT_STUN_NOT_STUN);
			continue;
		}
		if (k == STUN_RFC5389)
			STAT_INC(&s->s_stats, STAT_STUN_RFC5389);
		rn = stun_build_response(resp, txid, (struct sockaddr *)&ss);
		if (rn == 0)
			continue;
		STAT_INC(&s->s_stats, rn == 32 ? STAT_STUN_IPV4 :
		    STAT_STUN_IPV6);
		if (sendto(fd, resp, rn, 0, (struct sockaddr *)&ss, sl) < 0)
			STAT_INC(&s->s_stats, STAT_STUN_WRITE_ERROR);
		else
			STAT_INC(&s->s_stats, STAT_STUN_SUCCESS);
	}
}

struct stun_server *
stun_server_new(struct event_base *base, const char *host, int port,
    char *err, size_t errlen)
{
	struct stun_server	*s;
	struct addrinfo		 hints, *res = NULL;
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof(ss);
	char			 ports[16], addr[80];
	int			 rc, zero = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = host[0] == '\0' ? AF_INET6 : AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	snprintf(ports, sizeof(ports), "%d", port);
	if ((rc = getaddrinfo(host[0] ? host : NULL, ports, &hints, &res)) !=
	    0) {
		snprintf(err, errlen, "-stun-port: %s: %s", host,
		    gai_strerror(rc));
		return NULL;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL) {
		freeaddrinfo(res);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->s_fd = socket(res->ai_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (s->s_fd == -1)
		goto fail;
	if (res->ai_family == AF_INET6)
		setsockopt(s->s_fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero,
		    sizeof(zero));
	if (bind(s->s_fd, res->ai_addr, res->ai_addrlen) == -1)
		goto fail;
	freeaddrinfo(res);
	res = NULL;
	getsockname(s->s_fd, (struct sockaddr *)&ss, &sl);
	util_addr_format((struct sockaddr *)&ss, addr, sizeof(addr));
	s->s_ev = event_new(base, s->s_fd, EV_READ | EV_PERSIST, stun_read_cb,
	    s);
	if (s->s_ev == NULL || event_add(s->s_ev, NULL) == -1)
		goto fail;
	log_info("stun listening on %s", addr);
	return s;
fail:
	snprintf(err, errlen, "-stun-port: bind %s:%d: %s", host, port,
	    strerror(errno));
	if (res != NULL)
		freeaddrinfo(res);
	stun_server_free(s);
	return NULL;
}

void
stun_server_free(struct stun_server *s)
{
	if (s == NULL)
		return;
	if (s->s_ev != NULL)
		event_free(s->s_ev);
	if (s->s_fd != -1)
		close(s->s_fd);
	free(s);
}

const struct stats *
stun_server_stats(const struct stun_server *s)
{
	return &s->s_stats;
}
