/* SPDX-License-Identifier: ISC */
/* derpctl.c: send one command to derpd's admin socket and show the reply. */
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "output.h"
#include "parser.h"
#include "util.h"

#define CTL_SOCKET_DEFAULT	"/run/derpd/derpd.sock"
#define CTL_SOCKET_ENV		"DERPD_SOCKET"
#define CTL_VERSION		1
#define CTL_REQUEST_ID		1
#define CTL_TIMEOUT_MS		10000
/* Requests are at most 64 KiB; replies (show clients) may be far longer. */
#define CTL_REQUEST_MAX		(64 * 1024)
#define CTL_REPLY_MAX		(256 * 1024 * 1024)
#define CTL_READ_CHUNK		(64 * 1024)

/* Buffered lines from the socket; bytes before lb_start are consumed. */
struct linebuf {
	char	*lb_buf;
	size_t	 lb_start;
	size_t	 lb_len;
	size_t	 lb_cap;
	size_t	 lb_scanned;	/* no '\n' in [lb_start, lb_scanned) */
};

static void __attribute__((noreturn))
usage(void)
{
	size_t	 i;

	fprintf(stderr,
	    "usage: derpctl [-j] [-s socket] command [argument ...]\n"
	    "commands:\n");
	for (i = 0; parse_cmds[i].cc_pattern != NULL; i++)
		fprintf(stderr, "\t%s\n", parse_cmds[i].cc_pattern);
	exit(1);
}

static int
ctl_connect(const char *path)
{
	struct sockaddr_un	 sun;
	struct timeval		 tv = { .tv_sec = CTL_TIMEOUT_MS / 1000 };
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (util_strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path))
		errx(1, "socket path too long: %s", path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		err(1, "socket");
	/* Linux bounds a connect to a full backlog by the send timeout. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1)
		err(1, "setsockopt");
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		switch (errno) {
		case ENOENT:
		case ENOTDIR:
		case ECONNREFUSED:
			errx(1, "derpd is not running (no socket at %s)", path);
		case EACCES:
		case EPERM:
			errx(1, "permission denied on %s", path);
		case EAGAIN:
			errx(1, "derpd is not answering on %s", path);
		default:
			err(1, "%s", path);
		}
	}
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1)
		err(1, "fcntl");
	return fd;
}

/* Milliseconds left until deadline (0 when past); -1 for no deadline. */
static int
ms_left(int64_t deadline)
{
	int64_t	 now;

	if (deadline < 0)
		return -1;
	now = (int64_t)util_now_ms();
	return now >= deadline ? 0 : (int)(deadline - now);
}

static void
ctl_wait(int fd, short events, int64_t deadline)
{
	struct pollfd	 pfd = { .fd = fd, .events = events };
	int		 n;

	for (;;) {
		n = poll(&pfd, 1, ms_left(deadline));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			err(1, "poll");
		if (n == 0)
			errx(1, "no reply from derpd within %d seconds",
			    CTL_TIMEOUT_MS / 1000);
		return;
	}
}

static void
ctl_send(int fd, const char *buf, size_t len, int64_t deadline)
{
	ssize_t	 n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ctl_wait(fd, POLLOUT, deadline);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EPIPE || errno == ECONNRESET))
			errx(1, "derpd closed the connection");
		if (n == -1)
			err(1, "send");
		buf += n;
		len -= (size_t)n;
	}
}

/*
 * The next line, NUL-terminated without its '\n', valid until the next
 * call. NULL at end of file, with *partial set if a line was cut short.
 * Exits on a timeout, an error or an oversized line.
 */
static char *
ctl_readline(int fd, struct linebuf *lb, int64_t deadline, size_t *linelen,
    int *partial)
{
	char	*nl, *line, *nbuf;
	size_t	 ncap;
	ssize_t	 n;

	for (;;) {
		nl = lb->lb_len == lb->lb_scanned ? NULL :
		    memchr(lb->lb_buf + lb->lb_scanned, '\n',
		    lb->lb_len - lb->lb_scanned);
		if (nl != NULL) {
			line = lb->lb_buf + lb->lb_start;
			*nl = '\0';
			*linelen = (size_t)(nl - line);
			if (*linelen > 0 && line[*linelen - 1] == '\r')
				line[--*linelen] = '\0';
			lb->lb_start = lb->lb_scanned =
			    (size_t)(nl - lb->lb_buf) + 1;
			return line;
		}
		lb->lb_scanned = lb->lb_len;
		if (lb->lb_len - lb->lb_start > CTL_REPLY_MAX)
			errx(1, "line from derpd longer than %d MiB",
			    CTL_REPLY_MAX / (1024 * 1024));

		/* Drop consumed bytes, then make room for one chunk. */
		if (lb->lb_start > 0) {
			memmove(lb->lb_buf, lb->lb_buf + lb->lb_start,
			    lb->lb_len - lb->lb_start);
			lb->lb_len -= lb->lb_start;
			lb->lb_scanned -= lb->lb_start;
			lb->lb_start = 0;
		}
		if (lb->lb_cap - lb->lb_len < CTL_READ_CHUNK) {
			ncap = lb->lb_cap ? 2 * lb->lb_cap : 2 * CTL_READ_CHUNK;
			if ((nbuf = realloc(lb->lb_buf, ncap)) == NULL)
				err(1, NULL);
			lb->lb_buf = nbuf;
			lb->lb_cap = ncap;
		}

		n = read(fd, lb->lb_buf + lb->lb_len, lb->lb_cap - lb->lb_len);
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			ctl_wait(fd, POLLIN, deadline);
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == ECONNRESET)
			n = 0;
		if (n == -1)
			err(1, "read");
		if (n == 0) {
			*partial = lb->lb_len > lb->lb_start;
			return NULL;
		}
		lb->lb_len += (size_t)n;
	}
}

static char *
ctl_request(const struct parse_result *res, size_t *len)
{
	cJSON	*req, *args;
	char	*text, *line;
	size_t	 i;

	if ((req = cJSON_CreateObject()) == NULL ||
	    cJSON_AddNumberToObject(req, "v", CTL_VERSION) == NULL ||
	    cJSON_AddNumberToObject(req, "id", CTL_REQUEST_ID) == NULL ||
	    cJSON_AddStringToObject(req, "cmd", res->pr_wire) == NULL ||
	    (args = cJSON_AddObjectToObject(req, "args")) == NULL)
		errx(1, "out of memory");
	for (i = 0; i < res->pr_nargs; i++)
		if (cJSON_AddStringToObject(args, res->pr_args[i].pa_name,
		    res->pr_args[i].pa_value) == NULL)
			errx(1, "out of memory");
	if ((text = cJSON_PrintUnformatted(req)) == NULL)
		errx(1, "out of memory");
	cJSON_Delete(req);
	*len = strlen(text);
	if (*len + 1 > CTL_REQUEST_MAX)
		errx(1, "request longer than %d bytes", CTL_REQUEST_MAX);
	if ((line = malloc(*len + 2)) == NULL)
		err(1, NULL);
	memcpy(line, text, *len);
	line[(*len)++] = '\n';
	line[*len] = '\0';
	cJSON_free(text);
	return line;
}

/* Parse one line from derpd into r; returns r_msg for cJSON_Delete. */
static cJSON *
ctl_parse(char *line, size_t len, struct reply *r)
{
	cJSON	*msg, *v;

	memset(r, 0, sizeof(*r));
	msg = cJSON_ParseWithLength(line, len);
	if (!cJSON_IsObject(msg))
		errx(1, "malformed line from derpd: %.80s", line);
	v = cJSON_GetObjectItemCaseSensitive(msg, "v");
	if (!cJSON_IsNumber(v) || v->valuedouble != CTL_VERSION)
		errx(1, "derpd speaks protocol version %s, not %d",
		    cJSON_IsNumber(v) ? cJSON_PrintUnformatted(v) : "unknown",
		    CTL_VERSION);
	r->r_msg = msg;
	r->r_line = line;
	r->r_linelen = len;
	r->r_time = time(NULL);
	return msg;
}

/* Report an ok:false reply and exit 1. */
static void __attribute__((noreturn))
ctl_fail(const struct reply *r)
{
	const cJSON	*e, *code, *msg;

	e = cJSON_GetObjectItemCaseSensitive(r->r_msg, "error");
	code = cJSON_GetObjectItemCaseSensitive(e, "code");
	msg = cJSON_GetObjectItemCaseSensitive(e, "message");
	if (cJSON_IsString(code) && strcmp(code->valuestring, "not_found") == 0)
		errx(1, "no such client");
	if (cJSON_IsString(msg) && msg->valuestring[0] != '\0')
		errx(1, "%s", msg->valuestring);
	if (cJSON_IsString(code))
		errx(1, "%s", code->valuestring);
	errx(1, "request failed");
}

static void
ctl_show(const struct output *out, const struct parse_result *res,
    const struct reply *r)
{
	switch (res->pr_cmd->cc_action) {
	case CTL_SHOW_CLIENTS:
		out->clients(r);
		break;
	case CTL_SHOW_CLIENT:
		out->client(r);
		break;
	case CTL_SHOW_REJECTS:
		out->rejects(r);
		break;
	case CTL_SHOW_STATS:
		out->stats(r);
		break;
	case CTL_SHOW_ADMISSION:
		out->admission(r);
		break;
	case CTL_SHOW_MESH:
		out->mesh(r);
		break;
	case CTL_SHOW_CERTS:
		out->certs(r);
		break;
	case CTL_KICK:
		out->kick(r);
		break;
	case CTL_TEST_POLICY:
		out->test_policy(r);
		break;
	case CTL_RELOAD:
		out->reload(r);
		break;
	case CTL_LOG:
		out->log(r);
		break;
	case CTL_MONITOR:
		out->monitor(r);
		break;
	}
}

static void
ctl_flush(void)
{
	if (fflush(stdout) == EOF || ferror(stdout))
		err(1, "stdout");
}

/* Events until derpd closes the connection or derpctl is killed. */
static void __attribute__((noreturn))
ctl_monitor(int fd, struct linebuf *lb, const struct output *out)
{
	struct reply	 r;
	const cJSON	*ev;
	cJSON		*msg;
	char		*line;
	size_t		 len;
	int		 partial;

	for (;;) {
		if ((line = ctl_readline(fd, lb, -1, &len, &partial)) == NULL)
			errx(1, "derpd closed the connection");
		msg = ctl_parse(line, len, &r);
		ev = cJSON_GetObjectItemCaseSensitive(r.r_msg, "event");
		if (cJSON_IsString(ev)) {
			r.r_body = cJSON_GetObjectItemCaseSensitive(r.r_msg,
			    "data");
			out->event(&r);
			ctl_flush();
		}
		cJSON_Delete(msg);
	}
}

int
main(int argc, char *argv[])
{
	struct parse_result	 res;
	struct linebuf		 lb;
	struct reply		 r;
	const struct output	*out = &text_output;
	const cJSON		*id, *ok;
	cJSON			*msg;
	const char		*path;
	char			 errbuf[2048], *req, *line;
	size_t			 reqlen, len;
	int64_t			 deadline;
	int			 ch, fd, partial = 0;

	path = getenv(CTL_SOCKET_ENV);
	if (path == NULL || path[0] == '\0')
		path = CTL_SOCKET_DEFAULT;
	while ((ch = getopt(argc, argv, "+js:")) != -1) {
		switch (ch) {
		case 'j':
			out = &json_output;
			break;
		case 's':
			path = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage();
	if (parse_command(argc, argv, &res, errbuf, sizeof(errbuf)) == -1)
		errx(1, "%s", errbuf);

	req = ctl_request(&res, &reqlen);
	fd = ctl_connect(path);
	deadline = (int64_t)util_now_ms() + CTL_TIMEOUT_MS;
	ctl_send(fd, req, reqlen, deadline);
	free(req);

	memset(&lb, 0, sizeof(lb));
	line = ctl_readline(fd, &lb, deadline, &len, &partial);
	if (line == NULL)
		errx(1, "derpd closed the connection %s", partial ?
		    "in the middle of its reply" : "without replying");
	msg = ctl_parse(line, len, &r);
	id = cJSON_GetObjectItemCaseSensitive(r.r_msg, "id");
	if (!cJSON_IsNumber(id) || id->valuedouble != CTL_REQUEST_ID)
		errx(1, "reply from derpd does not match the request: %.80s",
		    line);
	ok = cJSON_GetObjectItemCaseSensitive(r.r_msg, "ok");
	if (!cJSON_IsTrue(ok))
		ctl_fail(&r);
	r.r_body = cJSON_GetObjectItemCaseSensitive(r.r_msg, "result");
	ctl_show(out, &res, &r);
	ctl_flush();
	cJSON_Delete(msg);

	if (res.pr_cmd->cc_action == CTL_MONITOR)
		ctl_monitor(fd, &lb, out);
	close(fd);
	free(lb.lb_buf);
	return 0;
}
