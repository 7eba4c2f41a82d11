/* SPDX-License-Identifier: ISC */
/* reload.c: the one reload path (SIGHUP and derpctl reload). */
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "derpd.h"
#include "ratelim.h"
#include "log.h"
#include "notify.h"
#include "reload.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

int
derpd_reload(struct derpd *env, const char *who, struct reload_report *rep)
{
	char	 err[256];

	memset(rep, 0, sizeof(*rep));
	notify_reloading();
	if (env->d_tls == NULL)
		reload_note(rep, "certificates", RELOAD_UNCHANGED, NULL);
	else if (tls_reload(env->d_tls, err, sizeof(err)) == -1)
		reload_note(rep, "certificates", RELOAD_FAILED, err);
	else
		reload_note(rep, "certificates", RELOAD_CHANGED, NULL);
	/* The engine runs on this thread: no locking needed. */
	if (env->d_auth == NULL)
		reload_note(rep, "admission", RELOAD_UNCHANGED, NULL);
	else if (auth_reload(env->d_auth, rep) == 0 &&
	    auth_policy_enabled(env->d_auth)) {
		/*
		 * The policy may have changed: every live connection is
		 * checked again, and those it no longer admits are closed.
		 */
		for (int i = 0; i < env->d_nworkers; i++)
			worker_tick_now(env->d_workers[i]);
	}
	if (env->d_ratelim != NULL)
		ratelim_reload(env->d_ratelim, rep);
	for (int i = 0; i < rep->rr_n; i++) {
		if (rep->rr_parts[i].rp_status == RELOAD_FAILED)
			log_warnx("%s: reload failed for %s, the old one is "
			    "kept: %s", who, rep->rr_parts[i].rp_name,
			    rep->rr_parts[i].rp_err);
		else if (rep->rr_parts[i].rp_status == RELOAD_CHANGED)
			log_info("%s: reload: %s reloaded", who,
			    rep->rr_parts[i].rp_name);
	}
	notify_ready(rep->rr_failed > 0 ? "ready; the last reload failed, "
	    "see the log" : "ready");
	return rep->rr_failed > 0 ? -1 : 0;
}
