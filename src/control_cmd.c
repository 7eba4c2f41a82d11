/* SPDX-License-Identifier: ISC */
/*
 * control_cmd.c: the admin commands: the table (name, read-only allowed,
 * handler) and the handlers, which ask the modules that own the data.
 * control.c frames, decodes and dispatches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "acme.h"
#include "auth.h"
#include "conn.h"
#include "control.h"
#include "control_int.h"
#include "derpd.h"
#include "log.h"
#include "mesh.h"
#include "reload.h"
#include "tls.h"
#include "util.h"
#include "varz.h"


static int
ctl_fail(struct ctl_call *k, const char *code, const char *msg)
{
	k->k_code = code;
	util_strlcpy(k->k_err, msg, sizeof(k->k_err));
	return -1;
}

/* args.<name> as a node key (nodekey:<hex> or bare hex). */
static int
arg_key(struct ctl_call *k, const char *name, uint8_t key[32])
{
	cJSON	*v = k->k_args ? cJSON_GetObjectItemCaseSensitive(k->k_args,
		    name) : NULL;
	char	 msg[64];

	if (!cJSON_IsString(v)) {
		snprintf(msg, sizeof(msg), "missing argument \"%s\"", name);
		return ctl_fail(k, "bad_request", msg);
	}
	if (util_key_parse(v->valuestring, NODEKEY_PREFIX, key) != 0 &&
	    util_hex_decode(v->valuestring, strlen(v->valuestring), key,
	    32) != 0) {
		snprintf(msg, sizeof(msg), "\"%s\" is not a node key", name);
		return ctl_fail(k, "bad_request", msg);
	}
	return 0;
}

/* The rows of "show clients" as JSON objects appended to arr. */
static void
clients_json(const struct conn_info *rows, size_t n, cJSON *arr)
{
	char	 k[KEY_TEXT_SIZE];

	for (size_t i = 0; i < n; i++) {
		const struct conn_info	*r = &rows[i];
		cJSON			*o = cJSON_CreateObject();

		util_key_format(r->ci_key, NODEKEY_PREFIX, k);
		cJSON_AddStringToObject(o, "key", k);
		cJSON_AddStringToObject(o, "addr", r->ci_addr);
		cJSON_AddNumberToObject(o, "worker", r->ci_worker);
		cJSON_AddNumberToObject(o, "connected_since",
		    (double)r->ci_since);
		cJSON_AddBoolToObject(o, "home", r->ci_home);
		cJSON_AddBoolToObject(o, "mesh", r->ci_mesh);
		cJSON_AddBoolToObject(o, "prober", r->ci_prober);
		cJSON_AddBoolToObject(o, "duplicate", r->ci_dup);
		cJSON_AddNumberToObject(o, "packets_in", (double)r->ci_pkts_in);
		cJSON_AddNumberToObject(o, "bytes_in", (double)r->ci_bytes_in);
		cJSON_AddNumberToObject(o, "packets_out",
		    (double)r->ci_pkts_out);
		cJSON_AddNumberToObject(o, "bytes_out",
		    (double)r->ci_bytes_out);
		cJSON_AddNumberToObject(o, "drops", (double)r->ci_drops);
		cJSON_AddNumberToObject(o, "rate_limited_reads",
		    (double)r->ci_rl_waits);
		cJSON_AddNumberToObject(o, "rate_limited_ms",
		    (double)r->ci_rl_wait_ms);
		cJSON_AddStringToObject(o, "admitted_by", r->ci_admitted_by);
		cJSON_AddBoolToObject(o, "admit_cached", r->ci_cached);
		cJSON_AddItemToArray(arr, o);
	}
}

static int
cmd_show_clients(struct ctl_call *k)
{
	cJSON		*p = k->k_args ? cJSON_GetObjectItemCaseSensitive(
			    k->k_args, "prefix") : NULL;
	struct conn_info *rows;
	size_t		 n;

	n = conn_list(k->k_ct->ct_env, NULL, cJSON_IsString(p) ?
	    p->valuestring : NULL, &rows);
	clients_json(rows, n, cJSON_AddArrayToObject(k->k_res, "clients"));
	free(rows);
	return 0;
}

static int
cmd_show_client(struct ctl_call *k)
{
	uint8_t		 key[KEY_LEN];
	struct conn_info *rows;
	size_t		 n;

	if (arg_key(k, "key", key) == -1)
		return -1;
	n = conn_list(k->k_ct->ct_env, key, NULL, &rows);
	clients_json(rows, n, cJSON_AddArrayToObject(k->k_res, "clients"));
	free(rows);
	if (n == 0)
		return ctl_fail(k, "not_found", "no such client");
	return 0;
}

static int
cmd_show_rejects(struct ctl_call *k)
{
	auth_ctl_rejects(k->k_ct->ct_env->d_auth, k->k_res);
	return 0;
}

static int
cmd_show_stats(struct ctl_call *k)
{
	varz_ctl_stats(k->k_ct->ct_env, k->k_res);
	/* The admin socket's own counters. */
	control_ctl_stats(k->k_ct, cJSON_GetObjectItemCaseSensitive(k->k_res,
	    "stats"));
	return 0;
}

static int
cmd_show_admission(struct ctl_call *k)
{
	auth_ctl_admission(k->k_ct->ct_env->d_auth, k->k_res);
	return 0;
}

/*
 * One row of "show mesh". Out is what we forwarded to the peer (mesh.c);
 * in is what it forwarded to us, which arrives on its own connection to
 * us: the registered mesh connections of its server key, so the totals
 * of the current inbound connection, gone when it reconnects.
 */
static void
mesh_json(struct derpd *env, const struct mesh_info *mi, cJSON *o)
{
	struct conn_info	*rows = NULL;
	size_t			 n = 0, inbound = 0;
	uint64_t		 pkts_in = 0, bytes_in = 0;
	char			 k[KEY_TEXT_SIZE];

	if (mi->mi_has_key)
		n = conn_list(env, mi->mi_key, NULL, &rows);
	for (size_t i = 0; i < n; i++) {
		if (!rows[i].ci_mesh)
			continue;
		inbound++;
		pkts_in += rows[i].ci_pkts_in;
		bytes_in += rows[i].ci_bytes_in;
	}
	free(rows);

	cJSON_AddStringToObject(o, "host", mi->mi_host);
	cJSON_AddStringToObject(o, "dial", mi->mi_dial);
	cJSON_AddStringToObject(o, "state", mi->mi_state);
	cJSON_AddNumberToObject(o, "since", (double)mi->mi_since);
	if (mi->mi_has_key) {
		util_key_format(mi->mi_key, NODEKEY_PREFIX, k);
		cJSON_AddStringToObject(o, "key", k);
	} else
		cJSON_AddNullToObject(o, "key");
	cJSON_AddNumberToObject(o, "worker", mi->mi_worker);
	cJSON_AddNumberToObject(o, "routes", (double)mi->mi_routes);
	cJSON_AddNumberToObject(o, "packets_out", (double)mi->mi_pkts_out);
	cJSON_AddNumberToObject(o, "bytes_out", (double)mi->mi_bytes_out);
	cJSON_AddNumberToObject(o, "drops", (double)mi->mi_drops);
	cJSON_AddNumberToObject(o, "inbound", (double)inbound);
	cJSON_AddNumberToObject(o, "packets_in", (double)pkts_in);
	cJSON_AddNumberToObject(o, "bytes_in", (double)bytes_in);
	cJSON_AddNumberToObject(o, "connects", (double)mi->mi_connects);
	cJSON_AddNumberToObject(o, "reconnects", (double)mi->mi_reconnects);
	cJSON_AddStringToObject(o, "last_error", mi->mi_last_error);
}

/* Without --mesh-with the list is empty, not an error. */
static int
cmd_show_mesh(struct ctl_call *k)
{
	struct derpd		*env = k->k_ct->ct_env;
	struct mesh_info	*rows;
	cJSON			*arr = cJSON_AddArrayToObject(k->k_res, "mesh");
	size_t			 n = mesh_list(env->d_meshnet, &rows);

	for (size_t i = 0; i < n; i++) {
		cJSON	*o = cJSON_CreateObject();

		mesh_json(env, &rows[i], o);
		cJSON_AddItemToArray(arr, o);
	}
	free(rows);
	return 0;
}

static void
cert_json(cJSON *o, const struct tls_cert_info *ci)
{
	cJSON_AddBoolToObject(o, "present", ci->ci_present);
	if (!ci->ci_present)
		return;
	cJSON_AddStringToObject(o, "source", ci->ci_source);
	cJSON_AddStringToObject(o, "issuer", ci->ci_issuer);
	cJSON_AddStringToObject(o, "serial", ci->ci_serial);
	cJSON_AddStringToObject(o, "sha256", ci->ci_sha256);
	cJSON_AddNumberToObject(o, "not_before", (double)ci->ci_not_before);
	cJSON_AddNumberToObject(o, "not_after", (double)ci->ci_not_after);
}

/* The "acme" member: the account's state and counters, the target's
 * schedule and last error. */
static void
acme_json(cJSON *o, struct acme *am, const struct acme_target_info *ti)
{
	struct acme_status	 st;
	cJSON			*a, *f;

	acme_status(am, &st);
	a = cJSON_AddObjectToObject(o, "acme");
	cJSON_AddStringToObject(a, "state", st.as_state);
	cJSON_AddStringToObject(a, "directory", st.as_directory);
	cJSON_AddStringToObject(a, "challenge", st.as_challenge);
	cJSON_AddStringToObject(a, "last_error", ti->ati_last_error);
	cJSON_AddNumberToObject(a, "last_attempt", (double)ti->ati_last_attempt);
	cJSON_AddNumberToObject(a, "last_success", (double)ti->ati_last_success);
	cJSON_AddNumberToObject(a, "next_attempt", (double)ti->ati_next);
	cJSON_AddNumberToObject(a, "attempts", (double)st.as_attempts);
	cJSON_AddNumberToObject(a, "issued", (double)st.as_issued);
	f = cJSON_AddObjectToObject(a, "failures");
	for (int i = 0; acme_fail_reasons[i] != NULL; i++)
		if (st.as_fail[i] > 0)
			cJSON_AddNumberToObject(f, acme_fail_reasons[i],
			    (double)st.as_fail[i]);
}

/*
 * The certificates served and, with ACME, how they are kept: -hostname's
 * (none for an IP-only -acme-ip-certs relay), then one per address of
 * -acme-ip-certs.
 */
static int
cmd_show_certs(struct ctl_call *k)
{
	struct derpd		*env = k->k_ct->ct_env;
	cJSON			*arr = cJSON_AddArrayToObject(k->k_res, "certs");
	cJSON			*o;
	struct tls_cert_info	 ci;
	struct acme_target_info	*ti;
	size_t			 n;

	if (env->d_tls == NULL)
		return 0;	/* plain HTTP: no certificate */
	if ((ti = calloc(TLS_MAX_IPS + 1, sizeof(*ti))) == NULL)
		return ctl_fail(k, "internal", "out of memory");
	if (tls_has_hostname_cert(env->d_tls)) {
		tls_cert_info(env->d_tls, &ci);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", ci.ci_name);
		cJSON_AddStringToObject(o, "mode", env->d_conf->dc_certmode);
		cert_json(o, &ci);
		if (env->d_acme != NULL &&
		    acme_targets(env->d_acme, ti, 1) == 1)
			acme_json(o, env->d_acme, &ti[0]);
		cJSON_AddItemToArray(arr, o);
	}
	n = acme_targets(env->d_acme_ip, ti, TLS_MAX_IPS + 1);
	for (size_t i = 0; i < n; i++) {
		tls_ip_info(env->d_tls, ti[i].ati_name, &ci);
		o = cJSON_CreateObject();
		cJSON_AddStringToObject(o, "name", ti[i].ati_name);
		cJSON_AddStringToObject(o, "mode", "letsencrypt-ip");
		cert_json(o, &ci);
		acme_json(o, env->d_acme_ip, &ti[i]);
		cJSON_AddItemToArray(arr, o);
	}
	free(ti);
	return 0;
}

static int
cmd_kick(struct ctl_call *k)
{
	uint8_t	 key[32];
	size_t	 n;
	char	 ks[8];

	if (arg_key(k, "key", key) == -1)
		return -1;
	if ((n = conn_kick_key(k->k_ct->ct_env, key)) == 0)
		return ctl_fail(k, "not_found", "no such client");
	util_key_short(key, ks);
	log_info("control: uid %u kicked %s (%zu connections)",
	    k->k_cc->cc_uid, ks, n);
	cJSON_AddNumberToObject(k->k_res, "kicked", (double)n);
	return 0;
}

/* tailscaled answered a test-policy: reply with what the policy says. */
static void
test_policy_done(void *arg, cJSON *result)
{
	struct ctl_call	*k = arg;
	cJSON		*it;

	k->k_async = NULL;
	if (result == NULL) {
		snprintf(k->k_err, sizeof(k->k_err), "shutting down");
		control_call_done(k, -1);
		return;
	}
	/* The members go into the result object the reply carries. */
	while ((it = result->child) != NULL)
		cJSON_AddItemToObject(k->k_res, it->string,
		    cJSON_DetachItemViaPointer(result, it));
	cJSON_Delete(result);
	control_call_done(k, 0);
}

static void
test_policy_cancel(struct ctl_call *k)
{
	auth_test_policy_cancel(k->k_async);
	k->k_async = NULL;
}

static int
cmd_test_policy(struct ctl_call *k)
{
	uint8_t	 key[32];
	char	 ks[8];

	if (arg_key(k, "key", key) == -1)
		return -1;
	if ((k->k_async = auth_test_policy(k->k_ct->ct_env->d_auth, key,
	    test_policy_done, k, k->k_err, sizeof(k->k_err))) == NULL) {
		k->k_code = "failed";
		return -1;
	}
	k->k_cancel = test_policy_cancel;
	util_key_short(key, ks);
	log_debug("control: uid %u tests the admission policy on %s",
	    k->k_cc->cc_uid, ks);
	return CTL_LATER;
}

static int
cmd_reload(struct ctl_call *k)
{
	cJSON			*ch = cJSON_AddArrayToObject(k->k_res, "changed");
	cJSON			*un = cJSON_AddArrayToObject(k->k_res,
				    "unchanged");
	struct reload_report	 rep;
	char			 who[64];
	size_t			 n = 0;

	snprintf(who, sizeof(who), "control: uid %u", k->k_cc->cc_uid);
	if (derpd_reload(k->k_ct->ct_env, who, &rep) == 0) {
		for (int i = 0; i < rep.rr_n; i++)
			cJSON_AddItemToArray(rep.rr_parts[i].rp_status ==
			    RELOAD_CHANGED ? ch : un,
			    cJSON_CreateString(rep.rr_parts[i].rp_name));
		return 0;
	}
	/*
	 * Each part is swapped alone: the error names what kept its old
	 * state and why, and what was reloaded all the same.
	 */
	n = (size_t)snprintf(k->k_err, sizeof(k->k_err), "reload failed, old "
	    "configuration kept for");
	for (int i = 0; i < rep.rr_n && n < sizeof(k->k_err); i++)
		if (rep.rr_parts[i].rp_status == RELOAD_FAILED)
			n += (size_t)snprintf(k->k_err + n,
			    sizeof(k->k_err) - n, " %s: %s;",
			    rep.rr_parts[i].rp_name, rep.rr_parts[i].rp_err);
	if (n > 0 && n < sizeof(k->k_err) && k->k_err[n - 1] == ';')
		k->k_err[--n] = '\0';
	for (int i = 0, first = 1; i < rep.rr_n && n < sizeof(k->k_err); i++)
		if (rep.rr_parts[i].rp_status == RELOAD_CHANGED) {
			n += (size_t)snprintf(k->k_err + n,
			    sizeof(k->k_err) - n, "%s%s", first ?
			    " (reloaded: " : ", ", rep.rr_parts[i].rp_name);
			first = 0;
		}
	if (n < sizeof(k->k_err) && strstr(k->k_err, "(reloaded: ") != NULL)
		snprintf(k->k_err + n, sizeof(k->k_err) - n, ")");
	k->k_code = "failed";
	return -1;
}

static int
cmd_log(struct ctl_call *k, int v)
{
	log_setverbose(v);
	log_info("control: uid %u set logging %s", k->k_cc->cc_uid,
	    v ? "verbose" : "brief");
	cJSON_AddBoolToObject(k->k_res, "verbose", v);
	return 0;
}

static int
cmd_log_verbose(struct ctl_call *k)
{
	return cmd_log(k, 1);
}

static int
cmd_log_brief(struct ctl_call *k)
{
	return cmd_log(k, 0);
}

static int
cmd_monitor(struct ctl_call *k)
{
	if (!k->k_cc->cc_monitor) {
		k->k_cc->cc_monitor = 1;
		__atomic_add_fetch(&k->k_ct->ct_monitors, 1, __ATOMIC_RELAXED);
	}
	cJSON_AddBoolToObject(k->k_res, "monitoring", 1);
	return 0;
}

const struct ctl_cmd ctl_cmds[] = {
	{ .cmd_name = "show clients", .cmd_ro_ok = 1,
	    .cmd_fn = cmd_show_clients },
	{ .cmd_name = "show client", .cmd_ro_ok = 1,
	    .cmd_fn = cmd_show_client },
	{ .cmd_name = "show rejects", .cmd_ro_ok = 1,
	    .cmd_fn = cmd_show_rejects },
	{ .cmd_name = "show stats", .cmd_ro_ok = 1, .cmd_fn = cmd_show_stats },
	{ .cmd_name = "show admission", .cmd_ro_ok = 1,
	    .cmd_fn = cmd_show_admission },
	{ .cmd_name = "show mesh", .cmd_ro_ok = 1, .cmd_fn = cmd_show_mesh },
	{ .cmd_name = "show certs", .cmd_ro_ok = 1, .cmd_fn = cmd_show_certs },
	{ .cmd_name = "kick", .cmd_fn = cmd_kick },
	{ .cmd_name = "test-policy",
	    .cmd_fn = cmd_test_policy },
	{ .cmd_name = "reload", .cmd_fn = cmd_reload },
	{ .cmd_name = "log verbose", .cmd_fn = cmd_log_verbose },
	{ .cmd_name = "log brief", .cmd_fn = cmd_log_brief },
	{ .cmd_name = "monitor", .cmd_fn = cmd_monitor },
};

const size_t ctl_ncmds = sizeof(ctl_cmds) / sizeof(ctl_cmds[0]);
