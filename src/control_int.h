/* SPDX-License-Identifier: ISC */
/*
 * control_int.h: the admin socket's request decoder, apart from the
 * socket so that unit tests and the fuzzer can reach it.
 */
#ifndef DERPD_CONTROL_INT_H
#define DERPD_CONTROL_INT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

/* One decoded request line. */
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
