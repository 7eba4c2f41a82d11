/* SPDX-License-Identifier: ISC */
/*
 * auth_ctl.c: what admission shows: /debug/varz lines, "show rejects" and
 * "show admission", from snapshots the engine hands out.
 */
#include <stdlib.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "auth_int.h"
#include "util.h"

void
auth_varz(struct auth *a, struct evbuffer *out)
{
	struct auth_counters ac;

	auth_counters(a, &ac);
	evbuffer_add_printf(out, "# HELP derpd_admission_checks admission "
	    "checks asked for\n# TYPE derpd_admission_checks counter\n"
	    "derpd_admission_checks %llu\n"
	    "# HELP derpd_admission_cache how checks were answered\n"
	    "# TYPE derpd_admission_cache counter\n"
	    "derpd_admission_cache{result=\"hit\"} %llu\n"
	    "derpd_admission_cache{result=\"miss\"} %llu\n"
	    "derpd_admission_cache{result=\"joined\"} %llu\n"
	    "# HELP derpd_admission_queued checks that waited in the queue\n"
	    "# TYPE derpd_admission_queued counter\n"
	    "derpd_admission_queued %llu\n",
	    (unsigned long long)ac.ac_checks, (unsigned long long)ac.ac_hits,
	    (unsigned long long)ac.ac_misses, (unsigned long long)ac.ac_joined,
	    (unsigned long long)ac.ac_queued_total);
	evbuffer_add_printf(out, "# HELP derpd_admission_backend_requests "
	    "requests made to each backend\n"
	    "# TYPE derpd_admission_backend_requests counter\n");
	for (int i = 0; i < AUTH_MAX_BACKENDS && ac.ac_backend[i] != NULL; i++)
		evbuffer_add_printf(out, "derpd_admission_backend_requests"
		    "{backend=\"%s\"} %llu\n", ac.ac_backend[i],
		    (unsigned long long)ac.ac_backend_reqs[i]);
	evbuffer_add_printf(out, "# HELP derpd_admission_rejects connections "
	    "refused by admission, by reason\n"
	    "# TYPE derpd_admission_rejects counter\n");
	for (int r = 1; r < AUTH_REASON__COUNT; r++)
		evbuffer_add_printf(out, "derpd_admission_rejects{reason=\"%s\"}"
		    " %llu\n", auth_reason_name((enum auth_reason)r),
		    (unsigned long long)ac.ac_rejects[r]);
	evbuffer_add_printf(out, "# HELP derpd_admission_results outcomes "
	    "of checks, by reason\n"
	    "# TYPE derpd_admission_results counter\n");
	for (int r = 0; r < AUTH_REASON__COUNT; r++)
		evbuffer_add_printf(out, "derpd_admission_results{reason=\"%s\"}"
		    " %llu\n", auth_reason_name((enum auth_reason)r),
		    (unsigned long long)ac.ac_results[r]);
	auth_policy_varz(a, out);
	auth_backends_varz(a, out);
	auth_audit_varz(auth_audit_of(a), out);
}

void
auth_ctl_rejects(struct auth *a, cJSON *res)
{
	struct auth_reject_entry	*e;
	struct auth_counters		 ac;
	cJSON				*arr = cJSON_AddArrayToObject(res, "rejects");
	cJSON				*tot = cJSON_AddObjectToObject(res, "totals");
	char				 k[KEY_TEXT_SIZE];
	size_t				 n;

	if (a == NULL || (e = calloc(AUTH_REJECTS_MAX, sizeof(*e))) == NULL)
		return;
	n = auth_rejects_snapshot(a, e, AUTH_REJECTS_MAX);
	for (size_t i = 0; i < n; i++) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "reason",
		    auth_reason_name(e[i].are_reason));
		cJSON_AddStringToObject(o, "source", e[i].are_source);
		cJSON_AddNumberToObject(o, "count", (double)e[i].are_count);
		cJSON_AddNumberToObject(o, "first_seen", (double)e[i].are_first);
		cJSON_AddNumberToObject(o, "last_seen", (double)e[i].are_last);
		util_key_format(e[i].are_last_key, NODEKEY_PREFIX, k);
		cJSON_AddStringToObject(o, "last_key", k);
		cJSON_AddItemToArray(arr, o);
	}
	free(e);
	auth_counters(a, &ac);
	for (int r = 1; r < AUTH_REASON__COUNT; r++)
		cJSON_AddNumberToObject(tot,
		    auth_reason_name((enum auth_reason)r),
		    (double)ac.ac_rejects[r]);
}

void
auth_ctl_admission(struct auth *a, cJSON *res)
{
	cJSON			*o = cJSON_AddObjectToObject(res, "admission");
	cJSON			*b = cJSON_AddArrayToObject(o, "backends");
	struct auth_counters	 ac;
	struct auth_engine_state es;

	cJSON_AddBoolToObject(o, "enabled", a != NULL);
	if (a == NULL)
		return;
	/* Beside "admission": a table of its own. */
	auth_policy_ctl(a, res);
	auth_counters(a, &ac);
	auth_engine_state(a, &es);
	for (int i = 0; i < es.es_nchain; i++)
		cJSON_AddItemToArray(b, cJSON_CreateString(
		    es.es_chain[i]->ab_name));
	cJSON_AddNumberToObject(o, "cache_entries", (double)es.es_entries);
	cJSON_AddNumberToObject(o, "in_flight", es.es_inflight);
	cJSON_AddNumberToObject(o, "queued", (double)es.es_queued);
	cJSON_AddNumberToObject(o, "sources_pending", (double)es.es_sources);
	cJSON_AddNumberToObject(o, "max_pending_per_source",
	    es.es_max_per_source);
	cJSON_AddNumberToObject(o, "rate_limited",
	    (double)ac.ac_results[AUTH_RATE_LIMITED]);
	cJSON_AddNumberToObject(o, "checks", (double)ac.ac_checks);
	cJSON_AddNumberToObject(o, "cache_hits", (double)ac.ac_hits);
	cJSON_AddNumberToObject(o, "cache_misses", (double)ac.ac_misses);
	cJSON_AddNumberToObject(o, "joined", (double)ac.ac_joined);
	for (int i = 0; i < es.es_nchain; i++)
		if (es.es_chain[i]->ab_ctl != NULL)
			es.es_chain[i]->ab_ctl(a, o);
	if (auth_audit_of(a) != NULL) {
		cJSON		*l = cJSON_AddObjectToObject(o, "log");
		uint64_t	 w, s, d, e;

		auth_audit_counts(auth_audit_of(a), &w, &s, &d, &e);
		cJSON_AddStringToObject(l, "file",
		    auth_conf_of(a)->ac_audit_file);
		cJSON_AddNumberToObject(l, "written", (double)w);
		cJSON_AddNumberToObject(l, "suppressed", (double)s);
		cJSON_AddNumberToObject(l, "dropped", (double)d);
		cJSON_AddNumberToObject(l, "errors", (double)e);
	}
}
