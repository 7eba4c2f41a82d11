/* SPDX-License-Identifier: ISC */
/* conn_auth.c: admission glue: a pending check, its verdict, re-checks. */
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "auth.h"
#include "conn_int.h"
#include "derpd.h"
#include "events.h"
#include "io.h"
#include "util.h"

/* Engine thread: the admission result is ready; wake the owner. */
void
conn_auth_notify(void *arg)
{
	conn_wake(arg);
}

/* Owner thread: act on a finished admission check. */
void
conn_auth_poll(struct conn *c)
{
	enum auth_reason	 reason;
	const char		*backend;
	int			 cached;
	char			 rule[80] = "";

	if (c->c_auth == NULL || !auth_req_result(c->c_auth, &reason,
	    &backend, &cached))
		return;
	if (*auth_req_rule(c->c_auth) != '\0')
		snprintf(rule, sizeof(rule), ", rule %s",
		    auth_req_rule(c->c_auth));
	auth_cancel(c->c_auth);		/* releases the handle */
	c->c_auth = NULL;
	if (reason != AUTH_OK) {
		sodium_memzero(c->c_shared, sizeof(c->c_shared));
		auth_note_reject(c->c_env->d_auth, reason,
		    (const struct sockaddr *)&c->c_sa, c->c_key);
		events_client(&c->c_env->d_events, CLIENT_REJECT, c->c_key,
		    (const struct sockaddr *)&c->c_sa, worker_id(c->c_w),
		    auth_reason_name(reason));
		conn_close(c, CLOSE_ADMISSION_DENIED, "%s (%s%s%s)",
		    auth_reason_name(reason), backend, cached ? ", cached" : "",
		    rule);
		return;
	}
	conn_admit(c, c->c_shared, backend, cached);
	sodium_memzero(c->c_shared, sizeof(c->c_shared));
	if (c->c_state != CONN_ACTIVE)
		return;
	/* Frames pipelined behind ClientInfo waited for the verdict. */
	io_resume_read(c->c_io);
	conn_read_frames(c);
	if (c->c_state == CONN_ACTIVE)
		io_flush(c->c_io);
}

/* A re-verification finished: a key that is no longer welcome goes. */
void
conn_reverify_poll(struct conn *c)
{
	enum auth_reason	 reason;
	const char		*backend;
	int			 cached;

	char			 rule[80] = "";

	if (!auth_req_result(c->c_auth, &reason, &backend, &cached))
		return;
	if (*auth_req_rule(c->c_auth) != '\0')
		snprintf(rule, sizeof(rule), ", rule %s",
		    auth_req_rule(c->c_auth));
	auth_cancel(c->c_auth);
	c->c_auth = NULL;
	if (reason == AUTH_OK)
		return;
	if (!auth_reason_is_denial(reason)) {
		/* An outage is not a verdict: keep the client, ask again. */
		log_debug("conn %llu %s: re-verification inconclusive: %s",
		    (unsigned long long)c->c_id, CONN_ADDR(c),
		    auth_reason_name(reason));
		return;
	}
	auth_note_reject(c->c_env->d_auth, AUTH_REVOKED,
	    (const struct sockaddr *)&c->c_sa, c->c_key);
	conn_close(c, CLOSE_REVOKED, "no longer admitted: %s (%s%s)",
	    auth_reason_name(reason), backend, rule);
}

void
conn_reverify_all(struct worker *w)
{
	struct derpd	*env = worker_env(w);

	for (struct worker_node *n = worker_first(w); n != NULL;
	    n = worker_next(n)) {
		struct conn *c = CONN_OF(n, c_node);

		if (c->c_state != CONN_ACTIVE || c->c_mesh || c->c_auth != NULL)
			continue;
		c->c_auth = auth_check_fresh(env->d_auth, c->c_key,
		    (const struct sockaddr *)&c->c_sa, conn_auth_notify, c);
	}
}
