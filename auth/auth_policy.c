/* SPDX-License-Identifier: ISC */
/*
 * auth_policy.c: -admission-policy inside the tailscaled backend. After a
 * whois found the key, the identity it carries goes through the policy
 * (policy.c); the policy is the backend's state, swapped whole at reload.
 *
 * Threads: the engine (main) thread loads, swaps and applies the policy;
 * varz on workers reads the rules' counters. ap_lock (a leaf) guards the
 * pointer swap against those readers; the counters are atomics.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "auth_int.h"
#include "log.h"
#include "util.h"

struct auth_policy {
	pthread_mutex_t	 ap_lock;
	struct policy	*ap_pol;	/* NULL: no -admission-policy */
};

static struct auth_policy *
ap_of(struct auth *a)
{
	return *auth_policy_slot(a);
}

int
auth_policy_init(struct auth *a, char *err, size_t errlen)
{
	const char		*path = auth_conf_of(a)->ac_policy_file;
	struct auth_policy	*ap;
	char			 e[512];

	if ((ap = calloc(1, sizeof(*ap))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_init(&ap->ap_lock, NULL);
	*auth_policy_slot(a) = ap;
	if (path[0] == '\0')
		return 0;
	if ((ap->ap_pol = policy_load(path, e, sizeof(e))) == NULL) {
		snprintf(err, errlen, "-admission-policy: %s", e);
		return -1;
	}
	log_info("admission policy %s: %zu rules", path,
	    policy_count(ap->ap_pol));
	return 0;
}

int
auth_policy_reload(struct auth *a, char *err, size_t errlen)
{
	const char		*path = auth_conf_of(a)->ac_policy_file;
	struct auth_policy	*ap = ap_of(a);
	struct policy		*np, *old;
	char			 e[512];

	if (ap == NULL || path[0] == '\0')
		return 1;
	if ((np = policy_load(path, e, sizeof(e))) == NULL) {
		snprintf(err, errlen, "-admission-policy: %s", e);
		return -1;
	}
	pthread_mutex_lock(&ap->ap_lock);
	old = ap->ap_pol;
	policy_carry_counts(np, old);
	ap->ap_pol = np;
	pthread_mutex_unlock(&ap->ap_lock);
	policy_free(old);
	log_info("admission policy %s: %zu rules", path, policy_count(np));
	return 0;
}

void
auth_policy_fini(struct auth *a)
{
	struct auth_policy *ap = ap_of(a);

	if (ap == NULL)
		return;
	policy_free(ap->ap_pol);
	pthread_mutex_destroy(&ap->ap_lock);
	free(ap);
	*auth_policy_slot(a) = NULL;
}

enum auth_reason
auth_policy_decide(struct auth_flight *f, const char *body, size_t len)
{
	struct auth_policy	*ap = ap_of(f->f_auth);
	struct policy		*p = ap != NULL ? ap->ap_pol : NULL;
	struct policy_ident	*id;
	char			 err[128], ks[8];

	if (body == NULL)
		return p == NULL ? AUTH_OK : AUTH_TAILSCALED_ERROR;
	if ((id = calloc(1, sizeof(*id))) == NULL ||
	    policy_ident_parse(body, len, (int64_t)time(NULL), id, err,
	    sizeof(err)) == -1) {
		free(id);
		if (p == NULL)
			return AUTH_OK;		/* nothing asks for it */
		util_key_short(f->f_key, ks);
		log_warnx("admission policy: no identity in tailscaled's "
		    "answer for %s; refused", ks);
		return AUTH_TAILSCALED_ERROR;
	}
	f->f_ident = id;
	return auth_policy_apply(f, AUTH_TAILSCALED_ERROR);
}

enum auth_reason
auth_policy_apply(struct auth_flight *f, enum auth_reason error)
{
	struct auth_policy	*ap = ap_of(f->f_auth);
	struct policy		*p = ap != NULL ? ap->ap_pol : NULL;
	int			 i;

	if (p == NULL)
		return AUTH_OK;
	if (f->f_ident == NULL)
		return error;
	/* The engine thread is the only writer of ap_pol: no lock to read. */
	i = policy_match(p, f->f_ident);
	policy_count_match(p, i, (int64_t)time(NULL));
	snprintf(f->f_rule, sizeof(f->f_rule), "%s",
	    policy_rule_name(p, i < 0 ? policy_count(p) : (size_t)i));
	return i >= 0 && policy_rule_allows(p, (size_t)i) ? AUTH_OK :
	    AUTH_POLICY_DENIED;
}

enum auth_reason
auth_policy_explain(struct auth *a, const char *body, size_t len, cJSON *res)
{
	struct auth_policy	*ap = ap_of(a);
	struct policy_ident	 id;
	enum auth_reason	 r;
	char			 err[128];

	if (ap == NULL || ap->ap_pol == NULL || body == NULL ||
	    policy_ident_parse(body, len, (int64_t)time(NULL), &id, err,
	    sizeof(err)) == -1) {
		cJSON_AddStringToObject(res, "why", "no identity in "
		    "tailscaled's answer");
		return AUTH_TAILSCALED_ERROR;
	}
	r = auth_policy_explain_ident(a, &id, res);
	policy_ident_cleanup(&id);
	return r;
}

enum auth_reason
auth_policy_explain_ident(struct auth *a, const struct policy_ident *id,
    cJSON *res)
{
	struct auth_policy	*ap = ap_of(a);
	struct policy		*p = ap != NULL ? ap->ap_pol : NULL;
	cJSON			*tried;
	int			 i;

	if (p == NULL)
		return AUTH_OK;
	cJSON_AddItemToObject(res, "identity", auth_ident_json(id));
	i = policy_match(p, id);
	/* Every rule up to the one that decided, and whether it matched. */
	tried = cJSON_AddArrayToObject(res, "rules");
	for (size_t k = 0; k < policy_count(p) &&
	    (i < 0 || k <= (size_t)i); k++) {
		cJSON *r = cJSON_CreateObject();
		cJSON_AddStringToObject(r, "rule", policy_rule_name(p, k));
		cJSON_AddStringToObject(r, "action",
		    policy_rule_allows(p, k) ? "allow" : "deny");
		cJSON_AddBoolToObject(r, "match", (int)k == i);
		cJSON_AddItemToArray(tried, r);
	}
	cJSON_AddStringToObject(res, "rule", policy_rule_name(p,
	    i < 0 ? policy_count(p) : (size_t)i));
	return i >= 0 && policy_rule_allows(p, (size_t)i) ? AUTH_OK :
	    AUTH_POLICY_DENIED;
}

void
auth_policy_ctl(struct auth *a, cJSON *o)
{
	struct auth_policy	*ap = ap_of(a);
	struct policy		*p = ap != NULL ? ap->ap_pol : NULL;
	cJSON			*pol, *rules;

	if (p == NULL)
		return;
	pol = cJSON_AddObjectToObject(o, "policy");
	cJSON_AddStringToObject(pol, "file", auth_conf_of(a)->ac_policy_file);
	rules = cJSON_AddArrayToObject(pol, "rules");
	/* The rules in order, then the default refusal. */
	for (size_t i = 0; i <= policy_count(p); i++) {
		cJSON		*r = cJSON_CreateObject();
		uint64_t	 m;
		int64_t		 last;

		policy_rule_stats(p, i < policy_count(p) ? (int)i : -1, &m,
		    &last);
		cJSON_AddStringToObject(r, "rule", policy_rule_name(p, i));
		cJSON_AddStringToObject(r, "action",
		    policy_rule_allows(p, i) ? "allow" : "deny");
		cJSON_AddNumberToObject(r, "matches", (double)m);
		cJSON_AddNumberToObject(r, "last_match", (double)last);
		cJSON_AddItemToArray(rules, r);
	}
}

void
auth_policy_varz(struct auth *a, struct evbuffer *out)
{
	struct auth_policy	*ap = ap_of(a);

	if (ap == NULL)
		return;
	pthread_mutex_lock(&ap->ap_lock);
	if (ap->ap_pol != NULL) {
		struct policy *p = ap->ap_pol;

		evbuffer_add_printf(out, "# TYPE "
		    "derpd_admission_policy_matches counter\n");
		for (size_t i = 0; i <= policy_count(p); i++) {
			uint64_t	 m;
			int64_t		 last;

			policy_rule_stats(p, i < policy_count(p) ? (int)i : -1,
			    &m, &last);
			/* Rule names are [A-Za-z0-9._-]: no label escaping. */
			evbuffer_add_printf(out,
			    "derpd_admission_policy_matches{rule=\"%s\"} %llu\n",
			    policy_rule_name(p, i), (unsigned long long)m);
		}
	}
	pthread_mutex_unlock(&ap->ap_lock);
}

cJSON *
auth_ident_json(const struct policy_ident *id)
{
	cJSON	*o = cJSON_CreateObject(), *arr;
	char	 buf[64];

	if (o == NULL)
		return NULL;
	cJSON_AddStringToObject(o, "node", id->pi_node ? id->pi_node : "");
	cJSON_AddStringToObject(o, "user", id->pi_user ? id->pi_user : "");
	arr = cJSON_AddArrayToObject(o, "tags");
	for (size_t i = 0; i < id->pi_ntags; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(id->pi_tags[i]));
	arr = cJSON_AddArrayToObject(o, "addrs");
	for (size_t i = 0; i < id->pi_naddrs; i++) {
		policy_addr_format(&id->pi_addrs[i], buf, sizeof(buf));
		cJSON_AddItemToArray(arr, cJSON_CreateString(buf));
	}
	arr = cJSON_AddArrayToObject(o, "caps");
	for (size_t i = 0; i < id->pi_ncaps; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(id->pi_caps[i]));
	cJSON_AddBoolToObject(o, "expired", id->pi_expired);
	cJSON_AddNumberToObject(o, "key_expiry", (double)id->pi_key_expiry);
	return o;
}
