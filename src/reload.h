/* SPDX-License-Identifier: ISC */
/*
 * reload.h: the one reload, for SIGHUP and "derpctl reload" alike. It
 * re-reads the TLS certificate and key (TLS mode), re-reads what each
 * admission backend reads (the -allow-keys file), and forgets the cached
 * admission verdicts so every key is asked again. Each part is swapped
 * alone: a part that fails keeps its old state and says why.
 */
#ifndef DERPD_RELOAD_H
#define DERPD_RELOAD_H

#include <stddef.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct derpd;

enum reload_status {
	RELOAD_CHANGED,		/* re-read and swapped in */
	RELOAD_UNCHANGED,	/* not configured: nothing to re-read */
	RELOAD_FAILED,		/* the old state is kept */
};

#define RELOAD_MAX_PARTS	8

/* What one reload did, part by part, in order. */
struct reload_report {
	struct {
		const char		*rp_name;	/* "certificates" */
		enum reload_status	 rp_status;
		char			 rp_err[256];
	}	 rr_parts[RELOAD_MAX_PARTS];
	int	 rr_n;
	int	 rr_failed;		/* parts that failed */
};

/* Record part name's outcome (err only for RELOAD_FAILED; may be NULL). */
static inline void
reload_note(struct reload_report *rep, const char *name,
    enum reload_status st, const char *err)
{
	if (rep->rr_n >= RELOAD_MAX_PARTS)
		return;
	rep->rr_parts[rep->rr_n].rp_name = name;
	rep->rr_parts[rep->rr_n].rp_status = st;
	snprintf(rep->rr_parts[rep->rr_n].rp_err,
	    sizeof(rep->rr_parts[0].rp_err), "%s", err != NULL ? err : "");
	rep->rr_n++;
	if (st == RELOAD_FAILED)
		rep->rr_failed++;
}
/*
 * Reload (main thread): fills *rep, logs each part, and returns 0, or -1
 * when a part failed (its old state is kept; the others are reloaded).
 * who says who asked, for the log ("SIGHUP", "control: uid 0").
 */
int	derpd_reload(struct derpd *, const char *who, struct reload_report *rep);

#ifdef __cplusplus
}
#endif
#endif
