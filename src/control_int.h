/* SPDX-License-Identifier: ISC */
/*
 * control_int.h: the admin socket's request decoder, apart from the
 * socket so that unit tests and the fuzzer can reach it.
 */
#ifndef DERPD_CONTROL_INT_H
#define DERPD_CONTROL_INT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;
struct bufferevent;
struct derpd;
struct event;
struct evconnlistener;

/* One decoded request line. */
#define CTL_OUT_HIWAT		(256 * 1024)	/* stop reading requests */
#define CTL_OUT_LOWAT		(64 * 1024)	/* resume reading */
#define CTL_MONITOR_MAX_OUT	(1024 * 1024)	/* drop events past this */
#define CTL_EVQ_MAX		4096		/* events waiting for the loop */

struct ctl_client;
struct ev_item;

struct control {
	struct derpd		*ct_env;
	struct evconnlistener	*ct_lis, *ct_lis_ro;
	char			 ct_path[108], ct_ro_path[108];
	struct ctl_client	*ct_clients;
	int			 ct_monitors;	/* atomic */
	/* events from worker threads */
	pthread_mutex_t		 ct_ev_lock;
	struct ev_item		*ct_ev_head, *ct_ev_tail;	/* ct_ev_lock */
	size_t			 ct_ev_len;			/* ct_ev_lock */
	uint64_t		 ct_ev_lost;	/* ct_ev_lock: not yet told */
	int			 ct_efd;
	struct event		*ct_evev;
	/* counters (atomic; read from worker threads by varz) */
	uint64_t		 ct_read_pauses;
	uint64_t		 ct_evq_drops;
	uint64_t		 ct_mon_drops;
};

struct ev_item {
	struct ev_item	*e_next;
	char		*e_line;	/* event minus the per-monitor id */
	char		 e_name[32];
};

struct ctl_client {
	struct control		*cc_ctl;
	struct bufferevent	*cc_bev;
	struct ctl_client	*cc_next;
	int			 cc_ro;
	int			 cc_monitor;
	long long		 cc_monitor_id;
	unsigned		 cc_uid;
	int			 cc_eof;	/* peer done sending */
	int			 cc_paused;	/* not reading: output too big */
	int			 cc_dropping;	/* monitor: output over the cap */
	uint64_t		 cc_dropped;	/* monitor: events not yet told */
	struct ctl_call		*cc_call;	/* a command still running */
};

/* One request being handled: what a command reads and writes. */
struct ctl_call {
	struct control		*k_ct;
	struct ctl_client	*k_cc;
	cJSON			*k_args;	/* may be NULL */
	cJSON			*k_res;		/* the result object to fill */
	char			 k_err[1024];	/* message when failing */
	const char		*k_code;	/* error code when failing */
	double			 k_id;		/* the request's id */
	/*
	 * A command that answers later (cmd_fn returned CTL_LATER) sets
	 * these: k_cancel(k) runs if the client goes first, and must make
	 * sure control_call_done is not called for k.
	 */
	void			(*k_cancel)(struct ctl_call *);
	void			*k_async;
};

/*
 * cmd_fn's third answer: the reply comes later, through
 * control_call_done. The client's next requests wait for it (replies
 * stay in order); k_args is gone once cmd_fn returns.
 */
#define CTL_LATER	1
/* The command of a CTL_LATER call finished: 0, or -1 with k_err. */
void	control_call_done(struct ctl_call *, int rc);

/* A command: the pattern string is the wire name, usage and man page. */
struct ctl_cmd {
	const char	*cmd_name;
	int		 cmd_ro_ok;	/* allowed on the read-only socket */
	int		 (*cmd_fn)(struct ctl_call *);	/* 0, or -1 with k_err */
};

/* The command table (control_cmd.c), in a fixed order. */
extern const struct ctl_cmd ctl_cmds[];
extern const size_t ctl_ncmds;
#define CTL_NCMDS	ctl_ncmds

struct ctl_request {
	struct cJSON	*rq_json;	/* the parsed line (owned) */
	double		 rq_id;		/* "id", 0 when absent */
	int		 rq_cmd;	/* index in the command table, -1 none */
	const char	*rq_name;	/* the command's pattern string */
	struct cJSON	*rq_args;	/* "args" object inside rq_json, or NULL */
	const char	*rq_code;	/* error code when refused */
	const char	*rq_msg;	/* error message when refused */
};

/*
 * Decode and check one request line (without its newline): a JSON
 * object with "v":1, a known "cmd", allowed on a read-only socket when
 * read_only is set. Pure: no I/O and no daemon state. Returns 0, or -1
 * with rq_code and rq_msg (static strings) and rq_id when it was
 * readable. Either way the caller calls control_request_cleanup.
 */
int	control_request_parse(const char *line, size_t len, int read_only,
	    struct ctl_request *);
/* Release what control_request_parse kept; safe to call twice. */
void	control_request_cleanup(struct ctl_request *);

#ifdef __cplusplus
}
#endif
#endif
