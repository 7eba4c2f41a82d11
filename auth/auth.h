/* SPDX-License-Identifier: ISC */
/*
 * auth.h: client admission. Backends (allowlist, tailscaled LocalAPI,
 * admission URL) run on one engine event loop; workers submit checks and
 * get a cancellable handle. Decisions are cached per key, concurrent
 * checks of one key share one backend request, and every refusal is
 * counted by reason and source.
 */
#ifndef DERPD_AUTH_H
#define DERPD_AUTH_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Outcomes with stable names (auth_reason_name); AUTH_OK admits. */
enum auth_reason {
	AUTH_OK,
	AUTH_NOT_IN_ALLOWLIST,
	AUTH_NOT_IN_TAILNET,
	AUTH_TAILSCALED_UNREACHABLE,
	AUTH_TAILSCALED_TOO_OLD,
	AUTH_TAILSCALED_ERROR,
	AUTH_URL_DENIED,
	AUTH_URL_STATUS,
	AUTH_URL_BAD_RESPONSE,
	AUTH_URL_UNREACHABLE,
	AUTH_TIMEOUT,
	AUTH_REVOKED,
	AUTH_BAD_HANDSHAKE,
	AUTH_RATE_LIMITED,	/* its source has too many checks pending */
	AUTH_POLICY_DENIED,	/* -admission-policy: a deny rule, or none */
	AUTH_API_UNREACHABLE,	/* -verify-clients-api: no set, API unreachable */
	AUTH_API_ERROR,		/* -verify-clients-api: no set, API error */
	AUTH_DEVICE_UNAUTHORIZED, /* the control plane: not authorized */
	AUTH_KEY_EXPIRED,	/* the control plane: the node key expired */
	AUTH_REASON__COUNT
};

struct auth_conf {
	bool	 ac_verify_clients;		/* --verify-clients */
	char	 ac_socket[PATH_MAX];		/* --socket, "" = default */
	char	 ac_url[1024];			/* --verify-client-url */
	bool	 ac_url_fail_open;		/* --verify-client-url-fail-open */
	char	 ac_allow_file[PATH_MAX];	/* --allow-keys */
	int64_t	 ac_allow_ttl_ms;		/* --auth-cache-allow-ttl */
	int64_t	 ac_deny_ttl_ms;		/* --auth-cache-deny-ttl */
	int	 ac_cache_size;			/* --auth-cache-size */
	int64_t	 ac_timeout_ms;			/* --auth-timeout */
	int	 ac_max_inflight;		/* --auth-max-inflight */
	int	 ac_max_pending_per_source;	/* --auth-max-pending-per-source */
	int64_t	 ac_reverify_ms;		/* --auth-reverify, 0 off */
	char	 ac_policy_file[PATH_MAX];	/* --admission-policy */
	char	 ac_audit_file[PATH_MAX];	/* --admission-log */
	/* -verify-clients-api: the control plane's node keys */
	char	 ac_api[16];			/* "", tailscale, headscale */
	char	 ac_api_url[1024];		/* base URL, "" default */
	char	 ac_api_tailnet[256];		/* "-" */
	char	 ac_api_creds[PATH_MAX];	/* credentials JSON file */
	int64_t	 ac_api_interval_ms;		/* full sync period */
	int64_t	 ac_api_min_refresh_ms;		/* unknown-key refresh gap */
	char	 ac_api_state[PATH_MAX];	/* last good set, "" none */
};

struct auth;
struct auth_req;
struct event_base;
struct evbuffer;

/* Called on the engine thread when a check completes (not after cancel). */
typedef void (*auth_notify_cb)(void *arg);

/* Defaults for the auth fields of a configuration. */
void	auth_conf_defaults(struct auth_conf *);
/* True when any backend is configured. */
bool	auth_conf_enabled(const struct auth_conf *);
/* The tailscaled socket path in effect for conf (default per OS). */
const char *auth_socket_path(const struct auth_conf *);

/*
 * Build the engine on base (its thread runs every backend request).
 * Loads the allowlist. NULL with err on failure.
 */
struct auth *auth_new(const struct auth_conf *, struct event_base *base,
	    char *err, size_t errlen);
/* Tear down; all requests must be cancelled or done. NULL is a no-op. */
void	auth_free(struct auth *);
/*
 * How long a check may take, at most: each backend that asks over the
 * network may take -auth-timeout, one after another, plus time to wait
 * for a turn. A connection waits that long for its verdict.
 */
int64_t	auth_check_time_ms(const struct auth *);
struct reload_report;
/*
 * The admission part of the one reload (engine thread, reload.h): every
 * backend that reads something re-reads it (the allowlist file; a failure
 * keeps its old state), then every cached verdict is forgotten. Each part
 * is noted in rep. 0, or -1 when a backend failed.
 */
int	auth_reload(struct auth *, struct reload_report *rep);
/*
 * Called on the engine thread when a backend learns that keys it admitted
 * are no longer welcome (a control-plane sync): every live connection is
 * to be checked again (auth_check_fresh). Set once, before the loop runs.
 */
typedef void (*auth_revoke_cb)(void *arg);
void	auth_set_revoke_cb(struct auth *, auth_revoke_cb, void *arg);
/* Log what is wrong with tailscaled, if anything (engine thread, async). */
void	auth_selfcheck(struct auth *);

/*
 * Submit a check of key from src (any thread). notify(arg) runs on the
 * engine thread once the result is ready; read it with auth_req_result
 * from the caller's thread. NULL on allocation failure.
 */
struct auth_req *auth_check(struct auth *, const uint8_t key[32],
	    const struct sockaddr *src, auth_notify_cb notify, void *arg);
/*
 * Like auth_check, but never answered from the cache (the answer is
 * still cached): for re-verifying live connections.
 */
struct auth_req *auth_check_fresh(struct auth *, const uint8_t key[32],
	    const struct sockaddr *src, auth_notify_cb notify, void *arg);
/* True for refusals that mean "this key is not welcome" (not outages). */
bool	auth_reason_is_denial(enum auth_reason);
/* 1 with the outcome once done, else 0. */
int	auth_req_result(struct auth_req *, enum auth_reason *reason,
	    const char **backend, int *cached);
/*
 * The policy rule that decided a done request ("" when none did); valid
 * until auth_cancel.
 */
const char *auth_req_rule(struct auth_req *);
/* True when -admission-policy is in effect (re-verify after a reload). */
bool	auth_policy_enabled(const struct auth *);
/* Cancel (or release a done request); no notify after this returns. */
void	auth_cancel(struct auth_req *);

/*
 * Count a refusal: per-reason total, the (reason, source) aggregator,
 * and a rate-limited log line. Any thread.
 */
void	auth_note_reject(struct auth *, enum auth_reason, const struct sockaddr *src,
	    const uint8_t key[32]);
const char *auth_reason_name(enum auth_reason);
/* Prometheus lines for the admission counters (any thread). */
void	auth_varz(struct auth *, struct evbuffer *out);

struct cJSON;
/* Admin handlers (engine thread); a NULL auth gives empty results. */
void	auth_ctl_rejects(struct auth *, struct cJSON *result);
void	auth_ctl_admission(struct auth *, struct cJSON *result);

/*
 * "derpctl test-policy": ask tailscaled about key now and say what the
 * -admission-policy would decide and why, touching neither the cache nor
 * the rule counters (engine thread). done(arg, result) runs later on the
 * engine thread with a JSON object it keeps, or NULL when the engine is
 * going away. NULL with err when there is no policy or no memory.
 */
struct auth_dry;
typedef void (*auth_dry_cb)(void *arg, struct cJSON *result);
struct auth_dry *auth_test_policy(struct auth *, const uint8_t key[32],
	    auth_dry_cb done, void *arg, char *err, size_t errlen);
/* The caller is gone: done will not be called. */
void	auth_test_policy_cancel(struct auth_dry *);

/* One aggregated refusal entry, as the admin socket will show it. */
struct auth_reject_entry {
	enum auth_reason are_reason;
	char		 are_source[64];
	uint64_t	 are_count;
	int64_t		 are_first;		/* unix seconds */
	int64_t		 are_last;
	uint8_t		 are_last_key[32];
};
/* Copy up to max entries, most recent first; returns how many. */
size_t	auth_rejects_snapshot(struct auth *, struct auth_reject_entry *,
	    size_t max);

#ifdef __cplusplus
}
#endif
#endif
