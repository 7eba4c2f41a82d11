/* SPDX-License-Identifier: ISC */
/* derpctl.c: send one command to derpd's admin socket and show the reply. */
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "output.h"
#include "parser.h"
#include "top.h"
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
	fprintf(stderr, "\ttop [-d seconds] [-n count]\n");
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

/*
 * derpctl top: "show clients" every interval on one connection, rated
 * and drawn by top.c. The terminal (no echo, no line buffering, the
 * alternate screen) is put back by an atexit handler, so errx paths
 * restore it too.
 */
#define TOP_MAX_INTERVAL_MS	3600000

struct top_tty {
	struct termios	 tt_saved;
	int		 tt_raw;	/* stdin's modes were changed */
	int		 tt_ansi;	/* stdout is a terminal */
};

static struct top_tty		 top_tty;	/* for the atexit handler */
static volatile sig_atomic_t	 top_stop, top_winch;

static void
top_restore(void)
{
	if (top_tty.tt_ansi) {
		fputs("\033[?25h\033[?1049l", stdout);
		fflush(stdout);
	}
	if (top_tty.tt_raw)
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &top_tty.tt_saved);
}

static void
top_signal(int sig)
{
	if (sig == SIGWINCH)
		top_winch = 1;
	else
		top_stop = 1;
}

static void
top_terminal(void)
{
	struct termios		 raw;
	struct sigaction	 sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = top_signal;	/* no SA_RESTART: poll returns */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) == -1 ||
	    sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGHUP, &sa, NULL) == -1 ||
	    sigaction(SIGWINCH, &sa, NULL) == -1)
		err(1, "sigaction");
	if (atexit(top_restore) != 0)
		errx(1, "atexit");
	if (isatty(STDIN_FILENO) &&
	    tcgetattr(STDIN_FILENO, &top_tty.tt_saved) == 0) {
		raw = top_tty.tt_saved;
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 1;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw) == 0)
			top_tty.tt_raw = 1;
	}
	if (isatty(STDOUT_FILENO)) {
		top_tty.tt_ansi = 1;
		fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout);
	}
}

/* One show clients; returns the message (for cJSON_Delete), *clients. */
static cJSON *
top_sample(int fd, struct linebuf *lb, int id, const cJSON **clients)
{
	struct reply	 r;
	const cJSON	*rid, *ok;
	cJSON		*msg;
	char		 req[96], *line;
	size_t		 len;
	int64_t		 deadline;
	int		 partial = 0;

	len = (size_t)snprintf(req, sizeof(req),
	    "{\"v\":%d,\"id\":%d,\"cmd\":\"show clients\"}\n", CTL_VERSION, id);
	deadline = (int64_t)util_now_ms() + CTL_TIMEOUT_MS;
	ctl_send(fd, req, len, deadline);
	if ((line = ctl_readline(fd, lb, deadline, &len, &partial)) == NULL)
		errx(1, "derpd closed the connection");
	msg = ctl_parse(line, len, &r);
	rid = cJSON_GetObjectItemCaseSensitive(r.r_msg, "id");
	if (!cJSON_IsNumber(rid) || rid->valuedouble != id)
		errx(1, "reply from derpd does not match the request: %.80s",
		    line);
	ok = cJSON_GetObjectItemCaseSensitive(r.r_msg, "ok");
	if (!cJSON_IsTrue(ok))
		ctl_fail(&r);
	*clients = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(r.r_msg, "result"), "clients");
	if (!cJSON_IsArray(*clients))
		errx(1, "show clients: no clients in the reply");
	return msg;
}

static void
top_draw(struct top_frame *tf, const struct top_row *rows, size_t n)
{
	struct winsize	 ws;

	tf->tf_ansi = top_tty.tt_ansi;
	tf->tf_width = tf->tf_height = 0;
	if (tf->tf_ansi && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 &&
	    ws.ws_col > 0 && ws.ws_row > 0) {
		tf->tf_width = ws.ws_col;
		tf->tf_height = ws.ws_row;
	}
	top_render(stdout, tf, rows, n);
	if (!tf->tf_ansi)
		putchar('\n');
	ctl_flush();
}

/* Wait until deadline; 1 when the user asked to quit. */
static int
top_wait(int *in, int64_t deadline, struct top_frame *tf,
    const struct top_row *rows, size_t n)
{
	struct pollfd	 pfd;
	char		 buf[64];
	ssize_t		 r, i;
	int		 k;

	for (;;) {
		if (top_stop)
			return 1;
		if (top_winch) {
			top_winch = 0;
			top_draw(tf, rows, n);
		}
		if (ms_left(deadline) == 0)
			return 0;
		pfd.fd = *in;
		pfd.events = POLLIN;
		pfd.revents = 0;
		k = poll(&pfd, 1, ms_left(deadline));
		if (k == -1 && errno == EINTR)
			continue;
		if (k == -1)
			err(1, "poll");
		if (k == 0 || *in == -1)
			continue;
		r = read(*in, buf, sizeof(buf));
		if (r == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (r <= 0) {		/* no more input: only the timer */
			*in = -1;
			continue;
		}
		for (i = 0; i < r; i++)
			if (buf[i] == 'q' || buf[i] == 'Q')
				return 1;
	}
}

static int
ctl_top(const char *path, int argc, char *argv[])
{
	struct top_frame	 tf;
	struct top_row		*rows = NULL;
	struct linebuf		 lb;
	const cJSON		*cur, *prev = NULL;
	cJSON			*msg, *prevmsg = NULL;
	double			 secs = 2;
	char			*end;
	size_t			 n = 0, total, cap;
	long long		 count = 0, frames = 0;
	uint64_t		 now, then = 0;
	int			 ch, fd, in = STDIN_FILENO, id = 0;

	optind = 0;		/* glibc: start again on top's own words */
	while ((ch = getopt(argc, argv, "+d:n:")) != -1) {
		switch (ch) {
		case 'd':
			errno = 0;
			secs = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    !(secs >= 0.1 && secs * 1000 <= TOP_MAX_INTERVAL_MS))
				errx(1, "top -d: %s: want seconds from 0.1 to "
				    "%d", optarg, TOP_MAX_INTERVAL_MS / 1000);
			break;
		case 'n':
			errno = 0;
			count = strtoll(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    count < 1 || count > INT32_MAX)
				errx(1, "top -n: %s: want a count from 1 to %d",
				    optarg, INT32_MAX);
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	fd = ctl_connect(path);
	memset(&lb, 0, sizeof(lb));
	memset(&tf, 0, sizeof(tf));
	tf.tf_socket = path;
	tf.tf_interval_ms = (int)(secs * 1000);
	top_terminal();
	for (;;) {
		now = util_now_ms();
		msg = top_sample(fd, &lb, ++id, &cur);
		cap = (size_t)cJSON_GetArraySize(cur);
		free(rows);
		if ((rows = calloc(cap > 0 ? cap : 1, sizeof(*rows))) == NULL)
			err(1, NULL);
		n = top_rate(prev, cur, prev != NULL ?
		    (double)(now - then) / 1000.0 : 0, rows, cap, &total);
		tf.tf_time = time(NULL);
		tf.tf_clients = total;
		top_draw(&tf, rows, n);
		cJSON_Delete(prevmsg);
		prevmsg = msg;
		prev = cur;
		then = now;
		if (count > 0 && ++frames >= count)
			break;
		/* The first rates come after a second at most. */
		if (top_wait(&in, (int64_t)now + (id == 1 &&
		    tf.tf_interval_ms > 1000 ? 1000 : tf.tf_interval_ms),
		    &tf, rows, n))
			break;
	}
	cJSON_Delete(prevmsg);
	free(rows);
	free(lb.lb_buf);
	close(fd);
	return 0;
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
	if (strcmp(argv[0], "top") == 0) {
		if (out == &json_output)
			errx(1, "top: -j is not supported; use show clients");
		return ctl_top(path, argc, argv);
	}
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
