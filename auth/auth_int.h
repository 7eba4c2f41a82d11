/* SPDX-License-Identifier: ISC */
/* auth_int.h: what the admission backends share with the engine. */
#ifndef DERPD_AUTH_INT_H
#define DERPD_AUTH_INT_H

#include <pthread.h>
#include <sys/socket.h>

#include "auth.h"
#include "auth_curl.h"
#include "policy.h"

#ifdef __cplusplus
extern "C" {
#endif

struct auth_flight;
struct auth_curl;
struct allowlist;
struct auth_src;
struct cJSON;

/* A source address group: a family byte, then the IPv4 address or the /64. */
#define AUTH_SRC_KEY_LEN	17
/* Default cap of checks pending (queued or in flight) per source group. */
#define AUTH_MAX_PENDING_PER_SOURCE	32

/* One backend (OpenSMTPD table_backend style). */
struct auth_backend {
	const char	*ab_name;
	/* Asks over the network (each step may take -auth-timeout)? */
	bool		 ab_remote;
	/* Configured for this conf? */
	bool		 (*ab_enabled)(const struct auth_conf *);
	/* Set up; 0 or -1 with err. */
	int		 (*ab_init)(struct auth *, char *err, size_t errlen);
	/* Start a check; completes with auth_flight_step (maybe at once). */
	void		 (*ab_check)(struct auth_flight *);
	/* Free the backend's state (NULL: none). */
	void		 (*ab_fini)(struct auth *);
	/*
	 * Re-read what the backend reads (NULL: nothing); 0, 1 when it has
	 * nothing to read in this configuration, or -1 with err and the old
	 * state kept.
	 */
	int		 (*ab_reload)(struct auth *, char *err, size_t errlen);
	/* What the reload report calls it (NULL: ab_name). */
	const char	*ab_reload_name;
	/* Add the backend's own fields to "show admission" (NULL: none). */
	void		 (*ab_ctl)(struct auth *, struct cJSON *obj);
	/* Its own metrics (any thread; NULL: none). */
	void		 (*ab_varz)(struct auth *, struct evbuffer *out);
};

/*
 * A backend's own state, kept by the engine for it (OpenSMTPD's t_handle):
 * NULL until the backend sets it. The backend frees it in ab_fini.
 */
void	*auth_backend_state(struct auth *, const struct auth_backend *);
void	auth_set_backend_state(struct auth *, const struct auth_backend *,
	    void *);

/* A backend request shared by every waiter on one key. */
struct auth_flight {
	struct auth		*f_auth;
	uint8_t			 f_key[32];
	char			 f_src[64];	/* client IP text, "" unknown */
	int			 f_step;	/* index into the enabled chain */
	struct auth_req		*f_waiters;
	struct auth_flight	*f_next;	/* its source's queue */
	struct auth_src		*f_grp;		/* source group charged */
	int			 f_queued;
	uint64_t		 f_gen;		/* auth generation at start */
	void			*f_backend_state;
	/* What tailscaled said (NULL: not asked, or no answer); owned. */
	struct policy_ident	*f_ident;
	char			 f_rule[POLICY_NAME_MAX];	/* "" none */
};

/* Backend finished its step: AUTH_OK goes on down the chain. */
void	auth_flight_step(struct auth_flight *, enum auth_reason);
struct event_base *auth_base(struct auth *);
/* True once the engine is being torn down: start nothing new. */
bool	auth_closing(struct auth *);
/*
 * Forget every cached verdict and those being made (a backend's view
 * changed: a reload, a control-plane sync). Engine thread.
 */
void	auth_forget_verdicts(struct auth *);
/* Each backend's own metrics (ab_varz; any thread). */
void	auth_backends_varz(struct auth *, struct evbuffer *out);
/* Have every live connection checked again (the revoke callback). */
void	auth_revoke_live(struct auth *);
const struct auth_conf *auth_conf_of(struct auth *);
struct auth_curl *auth_curl_of(struct auth *);
void	auth_count_backend_request(struct auth *, const char *backend);

/* libcurl multi-socket glue on the engine base: auth_curl.h. */

#define AUTH_MAX_BACKENDS	4

/* The engine's counters, loaded atomically (any thread). */
struct auth_counters {
	uint64_t		 ac_checks, ac_hits, ac_misses, ac_joined;
	uint64_t		 ac_queued_total;
	const char		*ac_backend[AUTH_MAX_BACKENDS];	/* registry order */
	uint64_t		 ac_backend_reqs[AUTH_MAX_BACKENDS];
	uint64_t		 ac_rejects[AUTH_REASON__COUNT];
	uint64_t		 ac_results[AUTH_REASON__COUNT];
};
void	auth_counters(struct auth *, struct auth_counters *);

/* The engine's state for "show admission" (engine thread only). */
struct auth_engine_state {
	const struct auth_backend *es_chain[AUTH_MAX_BACKENDS];
	int			 es_nchain;
	size_t			 es_entries, es_queued, es_sources;
	int			 es_inflight, es_max_per_source;
};
void	auth_engine_state(struct auth *, struct auth_engine_state *);

/* A source group: checks from one address (auth_src_key) waiting. */
struct auth_src {
	uint8_t		 s_key[AUTH_SRC_KEY_LEN];
	struct auth_src	*s_hnext;
	struct auth_src	*s_rnext;		/* round robin of waiting groups */
	struct auth_flight *s_qhead, *s_qtail;	/* its queued flights */
	int		 s_pending;		/* flights queued or in flight */
	int		 s_inring;
};

/* Fair scheduling of waiting checks by source (auth_sched.c; engine). */
struct auth_sched;
struct auth_sched *auth_sched_new(void);
void	auth_sched_free(struct auth_sched *);
/* The group of key (AUTH_SRC_KEY_LEN), created if absent; NULL: no memory. */
struct auth_src *auth_sched_group(struct auth_sched *, const uint8_t *key);
/* Free a group with nothing pending (s_pending 0, not waiting). */
void	auth_sched_release(struct auth_sched *, struct auth_src *);
/* Queue f behind its group (f->f_grp); the group joins the round robin. */
void	auth_sched_enqueue(struct auth_sched *, struct auth_flight *);
/* The next flight, round robin across groups; NULL when none waits. */
struct auth_flight *auth_sched_dequeue(struct auth_sched *);
bool	auth_sched_waiting(const struct auth_sched *);
size_t	auth_sched_queued(const struct auth_sched *);
size_t	auth_sched_groups(const struct auth_sched *);

/* The refusal aggregator (auth_reject.c); safe from any thread. */
#define AUTH_REJECTS_MAX	256	/* (reason, source) pairs kept */
struct auth_rejects;
struct auth_reject_entry;
struct auth_rejects *auth_rejects_new(void);
void	auth_rejects_free(struct auth_rejects *);
/* Count a refusal in its (reason, source) entry; log it within a limit. */
void	auth_rejects_note(struct auth_rejects *, enum auth_reason,
	    const struct sockaddr *src, const uint8_t *key);
/* Copy up to max entries, most recent first; returns how many. */
size_t	auth_rejects_copy(struct auth_rejects *, struct auth_reject_entry *,
	    size_t max);

/*
 * The admission policy (auth_policy.c), run by the tailscaled backend
 * after a whois found the key, and by the control-plane backend on the
 * identity the API gave: its state is the engine's (auth_policy_slot).
 */
void	**auth_policy_slot(struct auth *);
struct auth_policy;
/* Load -admission-policy if given; 0 or -1 with err. */
int	auth_policy_init(struct auth *, char *err, size_t errlen);
/* Re-read the file (the old policy stays on error); 0 or -1 with err. */
int	auth_policy_reload(struct auth *, char *err, size_t errlen);
void	auth_policy_fini(struct auth *);
/*
 * A whois said yes (body): keep the identity on f and apply the policy.
 * AUTH_OK, AUTH_POLICY_DENIED (f_rule names the rule), or
 * AUTH_TAILSCALED_ERROR when a policy needs an identity it cannot read.
 */
enum auth_reason auth_policy_decide(struct auth_flight *f, const char *body,
	    size_t len);
/*
 * test-policy: what the policy says of a whois answer that found the key
 * (body), with each rule tried and the identity, into res. No counters.
 */
enum auth_reason auth_policy_explain(struct auth *, const char *body,
	    size_t len, struct cJSON *res);
/*
 * Apply the policy to the identity already on f (f_ident; NULL when the
 * backend has none): AUTH_OK, AUTH_POLICY_DENIED (f_rule names the rule),
 * or error when a policy needs an identity and there is none.
 */
enum auth_reason auth_policy_apply(struct auth_flight *f,
	    enum auth_reason error);
/* The same for an identity a backend already has (no counters). */
enum auth_reason auth_policy_explain_ident(struct auth *,
	    const struct policy_ident *, struct cJSON *res);
/*
 * test-policy from the control plane's set (-verify-clients-api without
 * -verify-clients): what the set says of key ("api": reason) and what
 * the policy decides, into res. Engine thread, no request.
 */
enum auth_reason auth_api_explain(struct auth *, const uint8_t key[32],
	    struct cJSON *res);
/* "show admission" and varz parts. */
void	auth_policy_ctl(struct auth *, struct cJSON *obj);
struct evbuffer;
void	auth_policy_varz(struct auth *, struct evbuffer *out);
/* The identity as a JSON object (one formatter: audit, webhook, ctl). */
struct cJSON *auth_ident_json(const struct policy_ident *);

/* The audit log (auth_audit.c): -admission-log FILE. */
struct auth_audit;
struct auth_audit *auth_audit_new(const char *path, char *err, size_t errlen);
void	auth_audit_free(struct auth_audit *);
/* Open the file again (logrotate); the old stays on error. 0 or -1. */
int	auth_audit_reopen(struct auth_audit *, char *err, size_t errlen);
/* One decision (engine thread); rate-limited per (key, verdict). */
struct auth_audit_rec {
	const uint8_t		*ar_key;
	const char		*ar_src;
	enum auth_reason	 ar_reason;
	const char		*ar_backend;
	const char		*ar_rule;	/* "" none */
	int			 ar_cached;
	int			 ar_fresh;	/* a re-verification */
	const struct policy_ident *ar_ident;	/* NULL unknown */
};
void	auth_audit_note(struct auth_audit *, const struct auth_audit_rec *);
/* Counters for varz and show admission (any thread). */
void	auth_audit_counts(struct auth_audit *, uint64_t *written,
	    uint64_t *suppressed, uint64_t *dropped, uint64_t *errors);
void	auth_audit_varz(struct auth_audit *, struct evbuffer *out);
/* The engine's audit log, or NULL (any thread; set at auth_new). */
struct auth_audit *auth_audit_of(struct auth *);
/* The pure line formatter (tests); malloc'd line with '\n', or NULL. */
char	*auth_audit_line(const struct auth_audit_rec *, int64_t now_ms,
	    uint64_t suppressed);

/* Allowlist file (auth_allow.c). */
extern const struct auth_backend auth_backend_allow;
extern const struct auth_backend auth_backend_tailscaled;
extern const struct auth_backend auth_backend_url;
extern const struct auth_backend auth_backend_api;
/* Read and parse an allowlist file; NULL with err naming file:line. */
struct allowlist *allowlist_load(const char *path, char *err, size_t errlen);
/*
 * Parse allowlist text (pure): one nodekey:<64 hex> per line, '#'
 * comments, blank lines, CRLF; name is used in errors. NULL with err.
 */
struct allowlist *allowlist_parse(const char *buf, size_t len,
	    const char *name, char *err, size_t errlen);
void	allowlist_free(struct allowlist *);
bool	allowlist_has(const struct allowlist *, const uint8_t key[32]);
size_t	allowlist_count(const struct allowlist *);
/*
 * The group a client address is scheduled and capped in (pure): an IPv4
 * address (IPv4-mapped IPv6 counts as IPv4), or an IPv6 /64; NULL or any
 * other family is one "unknown" group.
 */
void	auth_src_key(const struct sockaddr *, uint8_t out[AUTH_SRC_KEY_LEN]);
/* Classify a tailscaled whois reply (pure, for tests). */
enum auth_reason auth_tailscaled_classify(int curlcode, long status,
	    const char *body, size_t len);
/* Most admission URL reply body read; a longer one is a bad response. */
#define AUTH_URL_BODY_MAX	(16 * 1024)
/*
 * Classify an admission URL reply (pure, for tests). Only the first
 * 4 KiB of the body are decoded, as derper does; a body longer than
 * AUTH_URL_BODY_MAX is a bad response (AUTH_URL_STATUS if not a 200).
 */
enum auth_reason auth_url_classify(int curlcode, long status,
	    const char *body, size_t len);
/* Webhook request body; returns length or 0. */
size_t	auth_url_body(char *out, size_t outlen, const uint8_t key[32],
	    const char *src);
/* The same with the identity tailscaled gave (malloc'd, NULL on failure). */
char	*auth_url_body_ident(const uint8_t key[32], const char *src,
	    const struct policy_ident *);

#ifdef __cplusplus
}
#endif
#endif
