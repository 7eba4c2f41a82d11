/* SPDX-License-Identifier: ISC */
/*
 * control.c: the admin socket: framing, permissions, dispatch, monitor.
 *
 * Bounded output per admin client (STYLE rule 14): replies are built whole
 * and queued in request order, so a client that pipelines requests and
 * never reads would grow the daemon without end. Past CTL_OUT_HIWAT bytes
 * of pending output we stop reading that client's requests (the kernel
 * then pushes back on its writes) and resume below CTL_OUT_LOWAT. Monitor
 * events are not requested, so they cannot be paced that way: past
 * CTL_MONITOR_MAX_OUT an event is dropped for that monitor and counted,
 * and once its output is back under CTL_OUT_LOWAT the monitor is told how
 * many it missed ("monitor.dropped") before the next event. Events from
 * worker threads wait in a queue of at most CTL_EVQ_MAX; past that they
 * are dropped, counted and announced to every monitor the same way.
 */
#include <grp.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>

#include "control.h"
#include "control_int.h"
#include "derpd.h"
#include "log.h"
#include "tls.h"
#include "util.h"

/* The structs and the command table are in control_int.h. */


static void
client_free(struct ctl_client *cc)
{
	struct control		*ct = cc->cc_ctl;
	struct ctl_client	**pp;

	for (pp = &ct->ct_clients; *pp != NULL; pp = &(*pp)->cc_next)
		if (*pp == cc) {
			*pp = cc->cc_next;
			break;
		}
	if (cc->cc_monitor)
		__atomic_sub_fetch(&ct->ct_monitors, 1, __ATOMIC_RELAXED);
	if (cc->cc_call != NULL) {
		if (cc->cc_call->k_cancel != NULL)
			cc->cc_call->k_cancel(cc->cc_call);
		cJSON_Delete(cc->cc_call->k_res);
		free(cc->cc_call);
	}
	bufferevent_free(cc->cc_bev);
	free(cc);
}

static void
send_json(struct ctl_client *cc, cJSON *o)
{
	char *s = cJSON_PrintUnformatted(o);

	if (s == NULL)
		return;
	evbuffer_add(bufferevent_get_output(cc->cc_bev), s, strlen(s));
	evbuffer_add(bufferevent_get_output(cc->cc_bev), "\n", 1);
	free(s);
}

static void
reply_error(struct ctl_client *cc, double id, const char *code,
    const char *msg)
{
	cJSON *o = cJSON_CreateObject(), *e;

	cJSON_AddNumberToObject(o, "v", CONTROL_VERSION);
	cJSON_AddNumberToObject(o, "id", id);
	cJSON_AddBoolToObject(o, "ok", 0);
	e = cJSON_AddObjectToObject(o, "error");
	cJSON_AddStringToObject(e, "code", code);
	cJSON_AddStringToObject(e, "message", msg);
	send_json(cc, o);
	cJSON_Delete(o);
}

int
control_request_parse(const char *line, size_t len, int read_only,
    struct ctl_request *rq)
{
	cJSON	*v, *id, *cmd, *args;
	size_t	 i;

	memset(rq, 0, sizeof(*rq));
	rq->rq_cmd = -1;
	rq->rq_code = "bad_request";
	if ((rq->rq_json = cJSON_ParseWithLength(line, len)) == NULL ||
	    !cJSON_IsObject(rq->rq_json)) {
		rq->rq_msg = "not a JSON object";
		return -1;
	}
	v = cJSON_GetObjectItemCaseSensitive(rq->rq_json, "v");
	id = cJSON_GetObjectItemCaseSensitive(rq->rq_json, "id");
	cmd = cJSON_GetObjectItemCaseSensitive(rq->rq_json, "cmd");
	args = cJSON_GetObjectItemCaseSensitive(rq->rq_json, "args");
	if (cJSON_IsNumber(id))
		rq->rq_id = id->valuedouble;
	if (!cJSON_IsNumber(v) || v->valuedouble != CONTROL_VERSION) {
		rq->rq_msg = "unsupported protocol version (want \"v\":1)";
		return -1;
	}
	if (!cJSON_IsString(cmd)) {
		rq->rq_msg = "missing \"cmd\"";
		return -1;
	}
	rq->rq_args = cJSON_IsObject(args) ? args : NULL;
	for (i = 0; i < CTL_NCMDS; i++)
		if (strcmp(ctl_cmds[i].cmd_name, cmd->valuestring) == 0)
			break;
	if (i == CTL_NCMDS) {
		rq->rq_code = "unknown_command";
		rq->rq_msg = "unknown command";
		return -1;
	}
	if (read_only && !ctl_cmds[i].cmd_ro_ok) {
		rq->rq_code = "permission_denied";
		rq->rq_msg = "read-only socket: only show commands";
		return -1;
	}
	rq->rq_cmd = (int)i;
	rq->rq_name = ctl_cmds[i].cmd_name;
	rq->rq_code = NULL;
	return 0;
}

void
control_request_cleanup(struct ctl_request *rq)
{
	cJSON_Delete(rq->rq_json);
	rq->rq_json = NULL;
	rq->rq_args = NULL;
}

/* The reply to a call, which is freed. */
static void
call_reply(struct ctl_client *cc, struct ctl_call *call, int rc)
{
	cJSON *reply;

	if (rc == -1) {
		reply_error(cc, call->k_id, call->k_code, call->k_err);
		cJSON_Delete(call->k_res);
		free(call);
		return;
	}
	reply = cJSON_CreateObject();
	cJSON_AddNumberToObject(reply, "v", CONTROL_VERSION);
	cJSON_AddNumberToObject(reply, "id", call->k_id);
	cJSON_AddBoolToObject(reply, "ok", 1);
	cJSON_AddItemToObject(reply, "result", call->k_res);
	free(call);
	send_json(cc, reply);
	cJSON_Delete(reply);
}

static void	client_read_cb(struct bufferevent *, void *);

void
control_call_done(struct ctl_call *call, int rc)
{
	struct ctl_client *cc = call->k_cc;

	cc->cc_call = NULL;
	call_reply(cc, call, rc);
	if (cc->cc_eof) {
		/* The write callback frees it once the reply is out. */
		return;
	}
	if (cc->cc_paused)
		return;
	bufferevent_enable(cc->cc_bev, EV_READ);
	client_read_cb(cc->cc_bev, cc);		/* may free cc */
}

/* One request line: decode, check, dispatch, reply in order. */
static void
handle_line(struct ctl_client *cc, const char *line, size_t len)
{
	struct ctl_request	 rq;
	struct ctl_call		*call;
	int			 rc;

	if (control_request_parse(line, len, cc->cc_ro, &rq) == -1) {
		reply_error(cc, rq.rq_id, rq.rq_code, rq.rq_msg);
		goto out;
	}
	call = calloc(1, sizeof(*call));
	if (call == NULL) {
		reply_error(cc, rq.rq_id, "failed", "out of memory");
		goto out;
	}
	call->k_ct = cc->cc_ctl;
	call->k_cc = cc;
	call->k_args = rq.rq_args;
	call->k_res = cJSON_CreateObject();
	call->k_code = "failed";
	call->k_id = rq.rq_id;
	if ((rc = ctl_cmds[rq.rq_cmd].cmd_fn(call)) == CTL_LATER) {
		/* Read nothing more until it is answered. */
		call->k_args = NULL;
		cc->cc_call = call;
		bufferevent_disable(cc->cc_bev, EV_READ);
		goto out;
	}
	call_reply(cc, call, rc);
	if (rc == -1)
		goto out;
	if (strcmp(rq.rq_name, "monitor") == 0)
		cc->cc_monitor_id = (long long)rq.rq_id;
out:
	control_request_cleanup(&rq);
}

/* Too much output waiting: read no more requests until it drains. */
static void
client_pause(struct ctl_client *cc)
{
	cc->cc_paused = 1;
	bufferevent_disable(cc->cc_bev, EV_READ);
	__atomic_add_fetch(&cc->cc_ctl->ct_read_pauses, 1, __ATOMIC_RELAXED);
	log_debug("control: uid %u does not read its replies; pausing",
	    cc->cc_uid);
}

static void
client_read_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_client	*cc = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer		*out = bufferevent_get_output(bev);
	char			*line;
	size_t			 len;

	while (!cc->cc_paused && cc->cc_call == NULL &&
	    (line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF)) != NULL) {
		if (len > CONTROL_MAX_LINE) {
			free(line);
			goto toolong;
		}
		if (len > 0)
			handle_line(cc, line, len);
		free(line);
		if (evbuffer_get_length(out) > CTL_OUT_HIWAT)
			client_pause(cc);
	}
	/* Paused, what is left may be whole lines we have not got to. */
	if (!cc->cc_paused && cc->cc_call == NULL &&
	    evbuffer_get_length(in) > CONTROL_MAX_LINE)
		goto toolong;
	return;
toolong:
	log_info("control: uid %u sent a line over %d bytes; closing",
	    cc->cc_uid, CONTROL_MAX_LINE);
	client_free(cc);
}

static void
client_write_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_client	*cc = arg;
	size_t			 len = evbuffer_get_length(
				    bufferevent_get_output(bev));

	/* The peer half-closed: go once what it asked for is written. */
	if (cc->cc_eof && len == 0) {
		client_free(cc);
		return;
	}
	/* Runs at or under the low mark (the write watermark). */
	if (cc->cc_paused && len <= CTL_OUT_LOWAT) {
		cc->cc_paused = 0;
		if (!cc->cc_eof && cc->cc_call == NULL)
			bufferevent_enable(bev, EV_READ);
		/* Requests already read wait for no new bytes. */
		client_read_cb(bev, cc);	/* may free cc */
	}
}

static void
client_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_client *cc = arg;

	/* Half-closed: answer what it asked for, then go. */
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) &&
	    (evbuffer_get_length(bufferevent_get_output(bev)) > 0 ||
	    cc->cc_call != NULL)) {
		cc->cc_eof = 1;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	client_free(cc);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct control		*ct = arg;
	struct ctl_client	*cc;
	struct ucred		 cred;
	socklen_t		 cl = sizeof(cred);

	(void)sa;
	(void)salen;
	if ((cc = calloc(1, sizeof(*cc))) == NULL) {
		close(fd);
		return;
	}
	cc->cc_ctl = ct;
	cc->cc_ro = l == ct->ct_lis_ro;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0)
		cc->cc_uid = cred.uid;
	cc->cc_bev = bufferevent_socket_new(ct->ct_env->d_base, fd,
	    BEV_OPT_CLOSE_ON_FREE);
	if (cc->cc_bev == NULL) {
		close(fd);
		free(cc);
		return;
	}
	log_debug("control: connection from uid %u pid %d%s", cc->cc_uid,
	    (int)cred.pid, cc->cc_ro ? " (read-only)" : "");
	bufferevent_setcb(cc->cc_bev, client_read_cb, client_write_cb,
	    client_event_cb, cc);
	/* The write callback also runs when output drains to the low mark. */
	bufferevent_setwatermark(cc->cc_bev, EV_WRITE, CTL_OUT_LOWAT, 0);
	bufferevent_enable(cc->cc_bev, EV_READ | EV_WRITE);
	cc->cc_next = ct->ct_clients;
	ct->ct_clients = cc;
}

/*
 * Queue one event line for a monitor, or drop and count it when the
 * monitor's output is over the cap; a gap is announced before the next
 * event that goes out.
 */
static void
monitor_send(struct ctl_client *cc, const char *line)
{
	struct control	*ct = cc->cc_ctl;
	struct evbuffer	*out = bufferevent_get_output(cc->cc_bev);
	size_t		 len = evbuffer_get_length(out);

	if (cc->cc_dropping && len <= CTL_OUT_LOWAT)
		cc->cc_dropping = 0;
	else if (!cc->cc_dropping && len > CTL_MONITOR_MAX_OUT) {
		cc->cc_dropping = 1;
		log_info("control: monitor of uid %u does not keep up; "
		    "dropping events", cc->cc_uid);
	}
	if (cc->cc_dropping) {
		cc->cc_dropped++;
		__atomic_add_fetch(&ct->ct_mon_drops, 1, __ATOMIC_RELAXED);
		return;
	}
	if (cc->cc_dropped > 0) {
		evbuffer_add_printf(out, "{\"v\":1,\"id\":%lld,\"event\":"
		    "\"monitor.dropped\",\"data\":{\"dropped\":%llu}}\n",
		    cc->cc_monitor_id, (unsigned long long)cc->cc_dropped);
		cc->cc_dropped = 0;
	}
	evbuffer_add_printf(out, "{\"v\":1,\"id\":%lld,%s\n",
	    cc->cc_monitor_id, line);
}

/* Broadcast queued events to monitors (main thread). */
static void
events_cb(evutil_socket_t fd, short what, void *arg)
{
	struct control		*ct = arg;
	struct ev_item		*list, *e;
	struct ctl_client	*cc;
	uint64_t		 v, lost;

	(void)what;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("control: eventfd read");
	pthread_mutex_lock(&ct->ct_ev_lock);
	list = ct->ct_ev_head;
	ct->ct_ev_head = ct->ct_ev_tail = NULL;
	ct->ct_ev_len = 0;
	lost = ct->ct_ev_lost;
	ct->ct_ev_lost = 0;
	pthread_mutex_unlock(&ct->ct_ev_lock);
	while ((e = list) != NULL) {
		list = e->e_next;
		for (cc = ct->ct_clients; cc != NULL; cc = cc->cc_next)
			if (cc->cc_monitor)
				monitor_send(cc, e->e_line);
		free(e->e_line);
		free(e);
	}
	/* The queue was full after these: a gap for every monitor. */
	for (cc = ct->ct_clients; lost > 0 && cc != NULL; cc = cc->cc_next)
		if (cc->cc_monitor)
			cc->cc_dropped += lost;
}

/* The admin socket's counters: one table for varz and "show stats". */
static const struct {
	const char	*name;
	size_t		 off;
	const char	*help;
} ctl_counters[] = {
	{ "derpd_admin_read_pauses", offsetof(struct control, ct_read_pauses),
	    "times an admin connection's requests were not read: replies "
	    "unread" },
	{ "derpd_admin_event_queue_drops",
	    offsetof(struct control, ct_evq_drops),
	    "events left out for every monitor: queue full" },
	{ "derpd_admin_monitor_events_dropped",
	    offsetof(struct control, ct_mon_drops),
	    "events left out for a monitor that was behind" },
};

static uint64_t
ctl_counter(struct control *ct, size_t i)
{
	const uint64_t *p;

	if (ct == NULL)
		return 0;
	p = (const uint64_t *)(const void *)((const char *)ct +
	    ctl_counters[i].off);
	return __atomic_load_n(p, __ATOMIC_RELAXED);
}

void
control_varz(struct control *ct, struct evbuffer *out)
{
	for (size_t i = 0; i < sizeof(ctl_counters) / sizeof(ctl_counters[0]);
	    i++)
		evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n"
		    "%s %llu\n", ctl_counters[i].name, ctl_counters[i].help,
		    ctl_counters[i].name, ctl_counters[i].name,
		    (unsigned long long)ctl_counter(ct, i));
}

static void
control_varz_cb(void *arg, struct evbuffer *out)
{
	control_varz(arg, out);
}

void
control_ctl_stats(struct control *ct, cJSON *stats)
{
	for (size_t i = 0; i < sizeof(ctl_counters) / sizeof(ctl_counters[0]);
	    i++)
		cJSON_AddNumberToObject(stats, ctl_counters[i].name,
		    (double)ctl_counter(ct, i));
}

int
control_monitoring(struct control *ct)
{
	return ct != NULL &&
	    __atomic_load_n(&ct->ct_monitors, __ATOMIC_RELAXED) > 0;
}

static void
control_event(struct control *ct, const char *event, cJSON *data)
{
	struct ev_item	*e;
	char		*d;
	size_t		 n;
	int		 wake;
	uint64_t	 one = 1;

	if (ct == NULL || (d = cJSON_PrintUnformatted(data)) == NULL) {
		cJSON_Delete(data);
		return;
	}
	cJSON_Delete(data);
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		free(d);
		return;
	}
	/* The rest of the line after {"v":1,"id":N, */
	n = strlen(d) + strlen(event) + 32;
	if ((e->e_line = malloc(n)) == NULL) {
		free(d);
		free(e);
		return;
	}
	snprintf(e->e_line, n, "\"event\":\"%s\",\"data\":%s}", event, d);
	free(d);
	pthread_mutex_lock(&ct->ct_ev_lock);
	if (ct->ct_ev_len >= CTL_EVQ_MAX) {
		/* The loop is behind: drop, count, tell monitors later. */
		ct->ct_ev_lost++;
		pthread_mutex_unlock(&ct->ct_ev_lock);
		__atomic_add_fetch(&ct->ct_evq_drops, 1, __ATOMIC_RELAXED);
		free(e->e_line);
		free(e);
		return;
	}
	ct->ct_ev_len++;
	wake = ct->ct_ev_head == NULL;
	if (ct->ct_ev_tail != NULL)
		ct->ct_ev_tail->e_next = e;
	else
		ct->ct_ev_head = e;
	ct->ct_ev_tail = e;
	pthread_mutex_unlock(&ct->ct_ev_lock);
	if (wake && write(ct->ct_efd, &one, sizeof(one)) < 0 &&
	    errno != EAGAIN)
		log_warn("control: eventfd write");
}

/* struct client_events, for monitors (any thread). */
static void
control_client_event(void *arg, enum client_event ev, const uint8_t *key,
    const struct sockaddr *sa, int worker, const char *reason)
{
	struct control	*ct = arg;
	static const char *const names[] = {
		[CLIENT_CONNECT] = "client.connect",
		[CLIENT_DISCONNECT] = "client.disconnect",
		[CLIENT_REJECT] = "client.reject",
	};
	cJSON	*d;
	char	 k[KEY_TEXT_SIZE], a[UTIL_ADDR_TEXT];

	if (!control_monitoring(ct) || (d = cJSON_CreateObject()) == NULL)
		return;
	util_key_format(key, NODEKEY_PREFIX, k);
	cJSON_AddStringToObject(d, "key", k);
	if (ev == CLIENT_REJECT) {
		util_addr_ip(sa, a, sizeof(a));
		cJSON_AddStringToObject(d, "source", a);
	} else {
		util_addr_format(sa, a, sizeof(a));
		cJSON_AddStringToObject(d, "addr", a);
		cJSON_AddNumberToObject(d, "worker", worker);
	}
	if (reason != NULL)
		cJSON_AddStringToObject(d, "reason", reason);
	control_event(ct, names[ev], d);
}

/* Refuse a directory others could use to swap the socket. */
static int
check_dir(const char *path, char *err, size_t errlen, const char *flag)
{
	char		 dir[108];
	char		*slash;
	struct stat	 st;

	util_strlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) == NULL)
		util_strlcpy(dir, ".", sizeof(dir));
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) == -1) {
		snprintf(err, errlen, "%s: %s: %s", flag, dir, strerror(errno));
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) && !(st.st_mode & S_ISVTX)) {
		snprintf(err, errlen, "%s: directory %s is writable by others "
		    "(mode %04o); refusing to put the admin socket there", flag,
		    dir, (unsigned)(st.st_mode & 07777));
		return -1;
	}
	if (st.st_uid != 0 && st.st_uid != geteuid()) {
		snprintf(err, errlen, "%s: directory %s belongs to uid %u; "
		    "refusing it", flag, dir, (unsigned)st.st_uid);
		return -1;
	}
	return 0;
}

static struct evconnlistener *
listen_unix(struct control *ct, const char *path, const char *group,
    const char *flag, char *err, size_t errlen)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	struct evconnlistener	*l;
	struct group		*gr = NULL;
	mode_t			 old;
	int			 fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: path too long", flag);
		return NULL;
	}
	if (check_dir(path, err, errlen, flag) == -1)
		return NULL;
	if (group != NULL && group[0] != '\0' && (gr = getgrnam(group)) ==
	    NULL) {
		snprintf(err, errlen, "-admin-socket-group: no group \"%s\"",
		    group);
		return NULL;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	util_strlcpy(sun.sun_path, path, sizeof(sun.sun_path));
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s: %s exists and is not a "
			    "socket", flag, path);
			return NULL;
		}
		/*
		 * Only a socket that refuses connections is stale and may go;
		 * a live one, or one we cannot probe, is left alone.
		 */
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd == -1 || connect(fd, (struct sockaddr *)&sun,
		    sizeof(sun)) == 0 || errno != ECONNREFUSED) {
			int e = errno;
			if (fd != -1)
				close(fd);
			snprintf(err, errlen, "%s: %s is in use by another "
			    "process or cannot be probed (%s)", flag, path,
			    fd == -1 ? strerror(e) : "it answers");
			return NULL;
		}
		close(fd);
		unlink(path);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		snprintf(err, errlen, "%s: socket: %s", flag, strerror(errno));
		return NULL;
	}
	/* Never world-accessible, not even for an instant. */
	old = umask(gr != NULL ? 0117 : 0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		snprintf(err, errlen, "%s: bind %s: %s", flag, path,
		    strerror(errno));
		close(fd);
		return NULL;
	}
	umask(old);
	if (gr != NULL && chown(path, (uid_t)-1, gr->gr_gid) == -1) {
		snprintf(err, errlen, "%s: chown %s: %s", flag, path,
		    strerror(errno));
		close(fd);
		unlink(path);
		return NULL;
	}
	if (listen(fd, 64) == -1 || (l = evconnlistener_new(
	    ct->ct_env->d_base, accept_cb, ct, LEV_OPT_CLOSE_ON_FREE, -1,
	    fd)) == NULL) {
		snprintf(err, errlen, "%s: listen %s: %s", flag, path,
		    strerror(errno));
		close(fd);
		unlink(path);
		return NULL;
	}
	log_info("admin socket %s%s (mode %s)", path,
	    strcmp(flag, "-admin-socket-ro") == 0 ? ", read-only" : "",
	    gr != NULL ? "0660" : "0600");
	return l;
}

struct control *
control_new(struct derpd *env, const char *path, const char *group,
    const char *ro_path, char *err, size_t errlen)
{
	struct control *ct;

	if ((ct = calloc(1, sizeof(*ct))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ct->ct_env = env;
	ct->ct_efd = -1;
	pthread_mutex_init(&ct->ct_ev_lock, NULL);
	if ((ct->ct_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1 ||
	    (ct->ct_evev = event_new(env->d_base, ct->ct_efd,
	    EV_READ | EV_PERSIST, events_cb, ct)) == NULL ||
	    event_add(ct->ct_evev, NULL) == -1) {
		snprintf(err, errlen, "-admin-socket: setup failed");
		control_free(ct);
		return NULL;
	}
	if ((ct->ct_lis = listen_unix(ct, path, group, "-admin-socket", err,
	    errlen)) == NULL) {
		control_free(ct);
		return NULL;
	}
	util_strlcpy(ct->ct_path, path, sizeof(ct->ct_path));
	if (ro_path != NULL && ro_path[0] != '\0') {
		if ((ct->ct_lis_ro = listen_unix(ct, ro_path, group,
		    "-admin-socket-ro", err, errlen)) == NULL) {
			control_free(ct);
			return NULL;
		}
		util_strlcpy(ct->ct_ro_path, ro_path, sizeof(ct->ct_ro_path));
	}
	/* Connection code tells monitors about clients through this. */
	env->d_events.ce_client = control_client_event;
	env->d_events.ce_arg = ct;
	env->d_varz_hook.vh_render = control_varz_cb;
	env->d_varz_hook.vh_arg = ct;
	return ct;
}

void
control_free(struct control *ct)
{
	if (ct == NULL)
		return;
	while (ct->ct_clients != NULL)
		client_free(ct->ct_clients);
	if (ct->ct_lis != NULL) {
		evconnlistener_free(ct->ct_lis);
		unlink(ct->ct_path);
	}
	if (ct->ct_lis_ro != NULL) {
		evconnlistener_free(ct->ct_lis_ro);
		unlink(ct->ct_ro_path);
	}
	while (ct->ct_ev_head != NULL) {
		struct ev_item *e = ct->ct_ev_head;
		ct->ct_ev_head = e->e_next;
		free(e->e_line);
		free(e);
	}
	if (ct->ct_evev != NULL)
		event_free(ct->ct_evev);
	if (ct->ct_efd != -1)
		close(ct->ct_efd);
	pthread_mutex_destroy(&ct->ct_ev_lock);
	free(ct);
}
