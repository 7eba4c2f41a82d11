/* SPDX-License-Identifier: ISC */
/* notify.c: sd_notify(3)'s datagram protocol on $NOTIFY_SOCKET. */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"

int
notify_addr(const char *s, struct sockaddr_un *sun, socklen_t *len)
{
	size_t	 n;

	if (s == NULL || (s[0] != '/' && s[0] != '@'))
		return -1;
	n = strlen(s);
	/* An abstract name has no terminating NUL; a path needs one. */
	if (n < 2 || n > sizeof(sun->sun_path) - (s[0] == '/' ? 1 : 0))
		return -1;
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	memcpy(sun->sun_path, s, n);
	if (s[0] == '@') {
		sun->sun_path[0] = '\0';
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
		    n + 1);
	return 0;
}

int
notify_send(const char *msg)
{
	const char		*s = getenv("NOTIFY_SOCKET");
	struct sockaddr_un	 sun;
	socklen_t		 len;
	ssize_t			 n;
	int			 fd, saved;

	if (s == NULL || *s == '\0')
		return 0;
	if (notify_addr(s, &sun, &len) == -1) {
		log_warnx("NOTIFY_SOCKET: not a path or an abstract socket "
		    "name: %s", s);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("NOTIFY_SOCKET: socket");
		return -1;
	}
	n = sendto(fd, msg, strlen(msg), MSG_DONTWAIT | MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, len);
	saved = errno;
	close(fd);
	if (n != (ssize_t)strlen(msg)) {
		errno = saved;
		log_warn("NOTIFY_SOCKET: cannot send to %s", s);
		return -1;
	}
	return 0;
}

void
notify_reloading(void)
{
	struct timespec	 ts;
	char		 msg[96];

	clock_gettime(CLOCK_MONOTONIC, &ts);
	snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\n"
	    "STATUS=reloading",
	    (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000ULL);
	notify_send(msg);
}

void
notify_ready(const char *status)
{
	char	 msg[300];

	snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s", status);
	notify_send(msg);
}
