/* SPDX-License-Identifier: ISC */
/*
 * auth.c: the admission engine: backend registry, per-key cache with
 * single-flight, bounded concurrency served fairly across sources, and
 * the refusal aggregator.
 *
 * Fairness rule: a check that needs a backend request is charged to its
 * source group (an IPv4 address, or an IPv6 /64). A group may have at
 * most ac_max_pending_per_source checks queued or in flight; more are
 * refused at once as AUTH_RATE_LIMITED (not cached). When every backend
 * slot is busy, checks wait in their group's FIFO, and a free slot goes
 * to the next group in a round robin of groups that have checks waiting,
 * so one address opening connections with fresh keys cannot keep another
 * address out. Re-verification of live connections is not capped (it is
 * not an unauthenticated caller's to trigger) but takes its turn.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>

#include "auth.h"
#include "auth_int.h"
#include "log.h"
#include "reload.h"
#include "util.h"

/*
 * The registry, in chain order: allowlist, tailscaled, the control
 * plane's set, then the URL (which may want the identity of either).
 */
static const struct auth_backend *const backends[] = {
	&auth_backend_allow,
	&auth_backend_tailscaled,
	&auth_backend_api,
	&auth_backend_url,
	NULL
};

#define NBACKENDS	AUTH_MAX_BACKENDS
/* Time a check may wait for its turn, beyond its backends' timeouts. */
#define AUTH_QUEUE_SLACK_MS	1000

struct auth_req {
	struct auth	*r_auth;
	int		 r_refs;		/* guarded by a_req_lock */
	int		 r_done, r_cancelled;	/* guarded by a_req_lock */
	enum auth_reason r_reason;
	const char	*r_backend;
	int		 r_cached;
	int		 r_fresh;		/* skip the cache */
	char		 r_rule[POLICY_NAME_MAX];	/* the deciding rule */
	auth_notify_cb	 r_notify;
	void		*r_arg;
	uint8_t		 r_key[32];
	char		 r_src[64];
	uint8_t		 r_grp[AUTH_SRC_KEY_LEN];
	struct auth_req	*r_next;
};

/* A source group with checks pending; freed when it has none. */
/* A cache entry: a decision, or a flight in progress, for one key. */
struct centry {
	uint8_t		 ce_key[32];
	struct centry	*ce_hnext;
	struct centry	*ce_prev, *ce_next;	/* LRU, most recent first */
	int		 ce_has_verdict;
	enum auth_reason ce_reason;
	const char	*ce_backend;
	char		 ce_rule[POLICY_NAME_MAX];
	uint64_t	 ce_expires;
	struct auth_flight *ce_flight;
};

struct auth {
	struct auth_conf	 a_conf;
	struct event_base	*a_base;
	const struct auth_backend *a_chain[NBACKENDS];
	void			*a_state[NBACKENDS];	/* each backend's own */
	int			 a_nchain;
	/* submissions from workers */
	pthread_mutex_t		 a_sub_lock;
	struct auth_req		*a_sub;		/* guarded by a_sub_lock */
	int			 a_efd;
	struct event		*a_subev;
	pthread_mutex_t		 a_req_lock;
	/* engine-thread state */
	struct centry		**a_tab;
	size_t			 a_tabsize, a_nentries;
	struct centry		*a_lru_head, *a_lru_tail;
	struct auth_sched	*a_sched;	/* waiting checks, by source */
	uint8_t			 a_key_seed[UTIL_HASH_SEED_LEN];
	int			 a_inflight;
	struct auth_curl	*a_curl;
	int			 a_closing;
	uint64_t		 a_gen;		/* bumped by reload */
	int			 a_pumping;	/* inside auth_pump */
	/* counters (atomic) */
	uint64_t		 a_checks, a_hits, a_misses, a_joined;
	uint64_t		 a_backend_reqs[NBACKENDS];
	uint64_t		 a_rejects[AUTH_REASON__COUNT];
	uint64_t		 a_results[AUTH_REASON__COUNT];
	uint64_t		 a_queued_total;
	struct auth_rejects	*a_rejects_agg;	/* refusals by reason, source */
	struct auth_audit	*a_audit;	/* -admission-log, or NULL */
	void			*a_policy;	/* auth_policy.c's state */
	auth_revoke_cb		 a_revoke_cb;
	void			*a_revoke_arg;
};

static void	auth_start(struct auth *, struct auth_flight *);
static void	auth_pump(struct auth *);
static struct auth_req *auth_submit(struct auth *, const uint8_t *,
		    const struct sockaddr *, auth_notify_cb, void *, int);

void
auth_conf_defaults(struct auth_conf *c)
{
	memset(c, 0, sizeof(*c));
	c->ac_url_fail_open = true;
	c->ac_allow_ttl_ms = 60 * 1000;
	c->ac_deny_ttl_ms = 5 * 1000;
	c->ac_cache_size = 65536;
	c->ac_timeout_ms = 5 * 1000;
	c->ac_max_inflight = 64;
	c->ac_max_pending_per_source = AUTH_MAX_PENDING_PER_SOURCE;
	snprintf(c->ac_api_tailnet, sizeof(c->ac_api_tailnet), "-");
	c->ac_api_interval_ms = 60 * 1000;
	c->ac_api_min_refresh_ms = 5 * 1000;
}

bool
auth_conf_enabled(const struct auth_conf *c)
{
	for (int i = 0; backends[i] != NULL; i++)
		if (backends[i]->ab_enabled(c))
			return true;
	return false;
}

const char *
auth_socket_path(const struct auth_conf *c)
{
	struct stat st;

	if (c->ac_socket[0] != '\0')
		return c->ac_socket;
	if (stat("/var/run", &st) == 0 && S_ISDIR(st.st_mode))
		return "/var/run/tailscale/tailscaled.sock";
	return "tailscaled.sock";
}

int64_t
auth_check_time_ms(const struct auth *a)
{
	int64_t ms = AUTH_QUEUE_SLACK_MS;

	for (int i = 0; i < a->a_nchain; i++)
		if (a->a_chain[i]->ab_remote)
			ms += a->a_conf.ac_timeout_ms;
	return ms;
}

struct event_base *
auth_base(struct auth *a)
{
	return a->a_base;
}

bool
auth_closing(struct auth *a)
{
	return a->a_closing != 0;
}

void **
auth_policy_slot(struct auth *a)
{
	return &a->a_policy;
}

void
auth_set_revoke_cb(struct auth *a, auth_revoke_cb cb, void *arg)
{
	a->a_revoke_cb = cb;
	a->a_revoke_arg = arg;
}

void
auth_revoke_live(struct auth *a)
{
	if (a->a_revoke_cb != NULL && !a->a_closing)
		a->a_revoke_cb(a->a_revoke_arg);
}

const struct auth_conf *
auth_conf_of(struct auth *a)
{
	return &a->a_conf;
}

struct auth_audit *
auth_audit_of(struct auth *a)
{
	return a->a_audit;
}

struct auth_curl *
auth_curl_of(struct auth *a)
{
	return a->a_curl;
}

static int
chain_index(struct auth *a, const struct auth_backend *b)
{
	for (int i = 0; i < a->a_nchain; i++)
		if (a->a_chain[i] == b)
			return i;
	return -1;
}

void *
auth_backend_state(struct auth *a, const struct auth_backend *b)
{
	int i = chain_index(a, b);

	return i == -1 ? NULL : a->a_state[i];
}

void
auth_set_backend_state(struct auth *a, const struct auth_backend *b,
    void *state)
{
	int i = chain_index(a, b);

	if (i != -1)
		a->a_state[i] = state;
}

void
auth_count_backend_request(struct auth *a, const char *backend)
{
	for (int i = 0; i < NBACKENDS; i++)
		if (strcmp(backends[i]->ab_name, backend) == 0)
			__atomic_add_fetch(&a->a_backend_reqs[i], 1,
			    __ATOMIC_RELAXED);
}

void
auth_src_key(const struct sockaddr *sa, uint8_t out[AUTH_SRC_KEY_LEN])
{
	memset(out, 0, AUTH_SRC_KEY_LEN);
	if (sa == NULL)
		return;
	if (sa->sa_family == AF_INET) {
		out[0] = 4;
		memcpy(out + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a6 =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a6)) {
			out[0] = 4;
			memcpy(out + 1, &a6->s6_addr[12], 4);
		} else {
			/* A /64 is what one subscriber is usually given. */
			out[0] = 6;
			memcpy(out + 1, a6->s6_addr, 8);
		}
	}
}

/* --- requests ------------------------------------------------------ */

static void
req_unref(struct auth_req *r)
{
	struct auth	*a = r->r_auth;
	int		 last;

	pthread_mutex_lock(&a->a_req_lock);
	last = --r->r_refs == 0;
	pthread_mutex_unlock(&a->a_req_lock);
	if (last)
		free(r);
}

/*
 * Deliver an outcome to one waiter (engine thread), with the policy rule
 * that decided ("" none) and the identity (NULL unknown) for the audit.
 */
static void
req_complete_with(struct auth_req *r, enum auth_reason reason,
    const char *backend, int cached, const char *rule,
    const struct policy_ident *ident)
{
	struct auth	*a = r->r_auth;
	int		 told = 0;

	/* Counted first: whoever is notified may read the counters. */
	__atomic_add_fetch(&a->a_results[reason], 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&a->a_req_lock);
	if (!r->r_cancelled) {
		r->r_reason = reason;
		r->r_backend = backend;
		r->r_cached = cached;
		snprintf(r->r_rule, sizeof(r->r_rule), "%s", rule);
		r->r_done = 1;
		told = 1;
		/* Under the lock: auth_cancel cannot pass us meanwhile. */
		r->r_notify(r->r_arg);
	}
	pthread_mutex_unlock(&a->a_req_lock);
	if (told && a->a_audit != NULL) {
		struct auth_audit_rec ar = {
			.ar_key = r->r_key, .ar_src = r->r_src,
			.ar_reason = reason, .ar_backend = backend,
			.ar_rule = rule, .ar_cached = cached,
			.ar_fresh = r->r_fresh, .ar_ident = ident,
		};
		auth_audit_note(a->a_audit, &ar);
	}
	req_unref(r);
}

static void
req_complete(struct auth_req *r, enum auth_reason reason, const char *backend,
    int cached)
{
	req_complete_with(r, reason, backend, cached, "", NULL);
}

struct auth_req *
auth_check(struct auth *a, const uint8_t key[32], const struct sockaddr *src,
    auth_notify_cb notify, void *arg)
{
	return auth_submit(a, key, src, notify, arg, 0);
}

struct auth_req *
auth_check_fresh(struct auth *a, const uint8_t key[32],
    const struct sockaddr *src, auth_notify_cb notify, void *arg)
{
	return auth_submit(a, key, src, notify, arg, 1);
}

bool
auth_reason_is_denial(enum auth_reason r)
{
	return r == AUTH_NOT_IN_ALLOWLIST || r == AUTH_NOT_IN_TAILNET ||
	    r == AUTH_URL_DENIED || r == AUTH_POLICY_DENIED ||
	    r == AUTH_DEVICE_UNAUTHORIZED || r == AUTH_KEY_EXPIRED;
}

const char *
auth_req_rule(struct auth_req *r)
{
	/* Written before r_done under a_req_lock, read after it by the owner. */
	return r->r_rule;
}

bool
auth_policy_enabled(const struct auth *a)
{
	return a != NULL && (a->a_conf.ac_verify_clients ||
	    a->a_conf.ac_api[0] != '\0') &&
	    a->a_conf.ac_policy_file[0] != '\0';
}

static void
flight_free(struct auth_flight *f)
{
	if (f == NULL)
		return;
	if (f->f_ident != NULL) {
		policy_ident_cleanup(f->f_ident);
		free(f->f_ident);
	}
	free(f);
}

static struct auth_req *
auth_submit(struct auth *a, const uint8_t *key, const struct sockaddr *src,
    auth_notify_cb notify, void *arg, int fresh)
{
	struct auth_req	*r;
	int		 wake;
	uint64_t	 one = 1;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	r->r_auth = a;
	r->r_refs = 2;		/* the caller's and the engine's */
	r->r_notify = notify;
	r->r_arg = arg;
	r->r_fresh = fresh;
	memcpy(r->r_key, key, 32);
	util_addr_ip(src, r->r_src, sizeof(r->r_src));
	auth_src_key(src, r->r_grp);
	__atomic_add_fetch(&a->a_checks, 1, __ATOMIC_RELAXED);
	pthread_mutex_lock(&a->a_sub_lock);
	wake = a->a_sub == NULL;
	r->r_next = a->a_sub;
	a->a_sub = r;
	pthread_mutex_unlock(&a->a_sub_lock);
	if (wake && write(a->a_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warn("auth: eventfd write");
	return r;
}

int
auth_req_result(struct auth_req *r, enum auth_reason *reason,
    const char **backend, int *cached)
{
	struct auth	*a = r->r_auth;
	int		 done;

	pthread_mutex_lock(&a->a_req_lock);
	done = r->r_done;
	if (done) {
		*reason = r->r_reason;
		*backend = r->r_backend;
		*cached = r->r_cached;
	}
	pthread_mutex_unlock(&a->a_req_lock);
	return done;
}

void
auth_cancel(struct auth_req *r)
{
	struct auth *a;

	if (r == NULL)
		return;
	a = r->r_auth;
	pthread_mutex_lock(&a->a_req_lock);
	r->r_cancelled = 1;
	pthread_mutex_unlock(&a->a_req_lock);
	req_unref(r);
}

/* --- cache --------------------------------------------------------- */

/* Keys are chosen by peers: the one keyed key hash (util_key_hash). */
static size_t
key_hash(const struct auth *a, const uint8_t *k, size_t size)
{
	return (size_t)util_key_hash(a->a_key_seed, k) & (size - 1);
}

static struct centry *
cache_find(struct auth *a, const uint8_t key[32])
{
	struct centry *e = a->a_tab[key_hash(a, key, a->a_tabsize)];

	for (; e != NULL; e = e->ce_hnext)
		if (memcmp(e->ce_key, key, 32) == 0)
			return e;
	return NULL;
}

static void
lru_unlink(struct auth *a, struct centry *e)
{
	if (e->ce_prev != NULL)
		e->ce_prev->ce_next = e->ce_next;
	else
		a->a_lru_head = e->ce_next;
	if (e->ce_next != NULL)
		e->ce_next->ce_prev = e->ce_prev;
	else
		a->a_lru_tail = e->ce_prev;
	e->ce_prev = e->ce_next = NULL;
}

static void
lru_front(struct auth *a, struct centry *e)
{
	e->ce_prev = NULL;
	e->ce_next = a->a_lru_head;
	if (a->a_lru_head != NULL)
		a->a_lru_head->ce_prev = e;
	a->a_lru_head = e;
	if (a->a_lru_tail == NULL)
		a->a_lru_tail = e;
}

static void
cache_remove(struct auth *a, struct centry *e)
{
	struct centry **pp = &a->a_tab[key_hash(a, e->ce_key, a->a_tabsize)];

	while (*pp != e)
		pp = &(*pp)->ce_hnext;
	*pp = e->ce_hnext;
	lru_unlink(a, e);
	a->a_nentries--;
	free(e);
}

/* Keep chains short as the cache fills (-auth-cache-size may be large). */
static void
cache_grow(struct auth *a)
{
	size_t		 ns = a->a_tabsize * 2;
	struct centry	**nt = calloc(ns, sizeof(*nt)), *e, *n;

	if (nt == NULL)
		return;
	for (size_t i = 0; i < a->a_tabsize; i++)
		for (e = a->a_tab[i]; e != NULL; e = n) {
			size_t h = key_hash(a, e->ce_key, ns);
			n = e->ce_hnext;
			e->ce_hnext = nt[h];
			nt[h] = e;
		}
	free(a->a_tab);
	a->a_tab = nt;
	a->a_tabsize = ns;
}

static struct centry *
cache_add(struct auth *a, const uint8_t key[32])
{
	struct centry	*e, *victim;
	size_t		 h;

	/* Bounded: evict least recently used decisions, never flights. */
	victim = a->a_lru_tail;
	while (a->a_nentries >= (size_t)a->a_conf.ac_cache_size &&
	    victim != NULL) {
		struct centry *prev = victim->ce_prev;
		if (victim->ce_flight == NULL)
			cache_remove(a, victim);
		victim = prev;
	}
	if (a->a_nentries >= a->a_tabsize)
		cache_grow(a);
	if ((e = calloc(1, sizeof(*e))) == NULL)
		return NULL;
	memcpy(e->ce_key, key, 32);
	h = key_hash(a, key, a->a_tabsize);
	e->ce_hnext = a->a_tab[h];
	a->a_tab[h] = e;
	lru_front(a, e);
	a->a_nentries++;
	return e;
}

/* --- flights ------------------------------------------------------- */

/* True when every waiter of a queued flight has been cancelled. */
static int
flight_abandoned(struct auth *a, struct auth_flight *f)
{
	int all = 1;

	pthread_mutex_lock(&a->a_req_lock);
	for (struct auth_req *r = f->f_waiters; r != NULL; r = r->r_next)
		if (!r->r_cancelled)
			all = 0;
	pthread_mutex_unlock(&a->a_req_lock);
	return all;
}

/*
 * Start queued flights while there is room. A loop, not recursion: a
 * flight that the allowlist settles at once finishes inside auth_start,
 * and that nested finish must not start the next one itself.
 */
static void
auth_pump(struct auth *a)
{
	if (a->a_pumping)
		return;
	a->a_pumping = 1;
	while (auth_sched_waiting(a->a_sched) && !a->a_closing &&
	    a->a_inflight < a->a_conf.ac_max_inflight) {
		struct auth_flight *q = auth_sched_dequeue(a->a_sched);
		if (flight_abandoned(a, q)) {
			/* Everyone left: no backend request, nothing cached. */
			struct centry *qe = cache_find(a, q->f_key);
			if (qe != NULL)
				cache_remove(a, qe);
			for (struct auth_req *w = q->f_waiters, *wn; w != NULL;
			    w = wn) {
				wn = w->r_next;
				req_unref(w);
			}
			q->f_grp->s_pending--;
			auth_sched_release(a->a_sched, q->f_grp);
			flight_free(q);
			continue;
		}
		auth_start(a, q);
	}
	a->a_pumping = 0;
}

static void
auth_finish(struct auth *a, struct auth_flight *f, enum auth_reason reason,
    const char *backend)
{
	struct centry	*e = cache_find(a, f->f_key);
	struct auth_req	*r, *n;
	int64_t		 ttl = reason == AUTH_OK ? a->a_conf.ac_allow_ttl_ms :
			    a->a_conf.ac_deny_ttl_ms;

	/* Decided under an allowlist that has since been reloaded: no cache. */
	if (f->f_gen != a->a_gen)
		ttl = 0;
	if (e != NULL) {
		e->ce_flight = NULL;
		if (ttl > 0) {
			e->ce_has_verdict = 1;
			e->ce_reason = reason;
			e->ce_backend = backend;
			memcpy(e->ce_rule, f->f_rule, sizeof(e->ce_rule));
			e->ce_expires = util_now_ms() + (uint64_t)ttl;
		} else
			cache_remove(a, e);
	}
	for (r = f->f_waiters; r != NULL; r = n) {
		n = r->r_next;
		req_complete_with(r, reason, backend, 0, f->f_rule, f->f_ident);
	}
	f->f_grp->s_pending--;
	auth_sched_release(a->a_sched, f->f_grp);
	flight_free(f);
	a->a_inflight--;
	auth_pump(a);
}

void
auth_flight_step(struct auth_flight *f, enum auth_reason reason)
{
	struct auth *a = f->f_auth;

	if (a->a_closing && reason == AUTH_OK)
		reason = AUTH_TIMEOUT;	/* shutting down: no new requests */
	if (reason == AUTH_OK && f->f_step + 1 < a->a_nchain) {
		f->f_step++;
		a->a_chain[f->f_step]->ab_check(f);
		return;
	}
	auth_finish(a, f, reason, a->a_chain[f->f_step]->ab_name);
}

static void
auth_start(struct auth *a, struct auth_flight *f)
{
	a->a_inflight++;
	f->f_step = 0;
	a->a_chain[0]->ab_check(f);
}

/* Handle one submitted request (engine thread). */
static void
auth_process(struct auth *a, struct auth_req *r)
{
	struct centry		*e;
	struct auth_flight	*f;
	struct auth_src		*s;
	int			 cancelled;

	pthread_mutex_lock(&a->a_req_lock);
	cancelled = r->r_cancelled;
	pthread_mutex_unlock(&a->a_req_lock);
	if (cancelled) {
		req_unref(r);
		return;
	}
	e = cache_find(a, r->r_key);
	if (e != NULL && e->ce_has_verdict && e->ce_flight == NULL) {
		if (!r->r_fresh && util_now_ms() < e->ce_expires) {
			__atomic_add_fetch(&a->a_hits, 1, __ATOMIC_RELAXED);
			lru_unlink(a, e);
			lru_front(a, e);
			req_complete_with(r, e->ce_reason, e->ce_backend, 1,
			    e->ce_rule, NULL);
			return;
		}
		e->ce_has_verdict = 0;	/* expired: ask again */
	}
	if (e != NULL && e->ce_flight != NULL) {
		/* Single flight: join the request already under way. */
		__atomic_add_fetch(&a->a_joined, 1, __ATOMIC_RELAXED);
		r->r_next = e->ce_flight->f_waiters;
		e->ce_flight->f_waiters = r;
		return;
	}
	__atomic_add_fetch(&a->a_misses, 1, __ATOMIC_RELAXED);
	if ((s = auth_sched_group(a->a_sched, r->r_grp)) == NULL) {
		log_warnx("auth: out of memory; refusing client");
		req_complete(r, AUTH_TIMEOUT, "engine", 0);
		return;
	}
	if (!r->r_fresh && s->s_pending >= a->a_conf.ac_max_pending_per_source) {
		/* A new backend request only: joins and hits cost nothing. */
		req_complete(r, AUTH_RATE_LIMITED, "engine", 0);
		return;
	}
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (e == NULL && (e = cache_add(a, r->r_key)) == NULL)) {
		free(f);
		auth_sched_release(a->a_sched, s);
		log_warnx("auth: out of memory; refusing client");
		req_complete(r, AUTH_TIMEOUT, "engine", 0);
		return;
	}
	f->f_auth = a;
	f->f_gen = a->a_gen;
	f->f_ident = NULL;
	memcpy(f->f_key, r->r_key, 32);
	memcpy(f->f_src, r->r_src, sizeof(f->f_src));
	f->f_waiters = r;
	f->f_grp = s;
	s->s_pending++;
	r->r_next = NULL;
	e->ce_flight = f;
	if (a->a_inflight >= a->a_conf.ac_max_inflight) {
		__atomic_add_fetch(&a->a_queued_total, 1, __ATOMIC_RELAXED);
		auth_sched_enqueue(a->a_sched, f);
		return;
	}
	auth_start(a, f);
}

static void
auth_submit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth	*a = arg;
	struct auth_req	*list, *r, *rev = NULL;
	uint64_t	 v;

	(void)what;
	if (read(fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warn("auth: eventfd read");
	pthread_mutex_lock(&a->a_sub_lock);
	list = a->a_sub;
	a->a_sub = NULL;
	pthread_mutex_unlock(&a->a_sub_lock);
	/* Submission order, so the first connect of a key leads. */
	while (list != NULL) {
		r = list;
		list = r->r_next;
		r->r_next = rev;
		rev = r;
	}
	while (rev != NULL) {
		r = rev;
		rev = r->r_next;
		r->r_next = NULL;
		auth_process(a, r);
	}
}

/* --- lifecycle ----------------------------------------------------- */

struct auth *
auth_new(const struct auth_conf *conf, struct event_base *base, char *err,
    size_t errlen)
{
	struct auth *a;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->a_conf = *conf;
	if (a->a_conf.ac_cache_size < 1)
		a->a_conf.ac_cache_size = 1;
	if (a->a_conf.ac_max_inflight < 1)
		a->a_conf.ac_max_inflight = 1;
	if (a->a_conf.ac_max_pending_per_source < 1)
		a->a_conf.ac_max_pending_per_source = 1;
	a->a_base = base;
	a->a_efd = -1;
	util_hash_seed(a->a_key_seed);
	pthread_mutex_init(&a->a_sub_lock, NULL);
	pthread_mutex_init(&a->a_req_lock, NULL);
	a->a_tabsize = 4096;
	if ((a->a_tab = calloc(a->a_tabsize, sizeof(*a->a_tab))) == NULL ||
	    (a->a_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1 ||
	    (a->a_subev = event_new(base, a->a_efd, EV_READ | EV_PERSIST,
	    auth_submit_cb, a)) == NULL || event_add(a->a_subev, NULL) == -1 ||
	    (a->a_curl = auth_curl_new(base)) == NULL ||
	    (a->a_rejects_agg = auth_rejects_new()) == NULL ||
	    (a->a_sched = auth_sched_new()) == NULL) {
		snprintf(err, errlen, "admission engine setup failed");
		auth_free(a);
		return NULL;
	}
	if (a->a_conf.ac_audit_file[0] != '\0' && (a->a_audit =
	    auth_audit_new(a->a_conf.ac_audit_file, err, errlen)) == NULL) {
		auth_free(a);
		return NULL;
	}
	if (auth_policy_init(a, err, errlen) == -1) {
		auth_free(a);
		return NULL;
	}
	for (int i = 0; backends[i] != NULL; i++) {
		if (!backends[i]->ab_enabled(&a->a_conf))
			continue;
		/* In the chain first: init may set the backend's state. */
		a->a_chain[a->a_nchain++] = backends[i];
		if (backends[i]->ab_init != NULL &&
		    backends[i]->ab_init(a, err, errlen) == -1) {
			auth_free(a);
			return NULL;
		}
	}
	return a;
}

void
auth_free(struct auth *a)
{
	if (a == NULL)
		return;
	a->a_closing = 1;
	/* Aborts what is in flight; their flights finish as refusals. */
	auth_curl_free(a->a_curl);
	a->a_curl = NULL;
	for (int i = 0; i < a->a_nchain; i++)
		if (a->a_chain[i]->ab_fini != NULL)
			a->a_chain[i]->ab_fini(a);
	auth_policy_fini(a);
	/* Requests still submitted: their callers are gone (shutdown). */
	while (a->a_sub != NULL) {
		struct auth_req *r = a->a_sub;
		a->a_sub = r->r_next;
		req_unref(r);
	}
	if (a->a_tab != NULL) {
		for (size_t i = 0; i < a->a_tabsize; i++) {
			struct centry *e = a->a_tab[i], *n;
			for (; e != NULL; e = n) {
				n = e->ce_hnext;
				if (e->ce_flight != NULL) {
					struct auth_req *r = e->ce_flight->f_waiters, *rn;
					for (; r != NULL; r = rn) {
						rn = r->r_next;
						req_unref(r);
					}
					flight_free(e->ce_flight);
				}
				free(e);
			}
		}
		free(a->a_tab);
	}
	auth_sched_free(a->a_sched);
	auth_rejects_free(a->a_rejects_agg);
	auth_audit_free(a->a_audit);
	if (a->a_subev != NULL)
		event_free(a->a_subev);
	if (a->a_efd != -1)
		close(a->a_efd);
	pthread_mutex_destroy(&a->a_sub_lock);
	pthread_mutex_destroy(&a->a_req_lock);
	free(a);
}

int
auth_reload(struct auth *a, struct reload_report *rep)
{
	char	 err[256];
	int	 rc = 0, prc;

	if ((prc = auth_policy_reload(a, err, sizeof(err))) == -1) {
		reload_note(rep, "admission policy", RELOAD_FAILED, err);
		rc = -1;
	} else if (prc == 0)
		reload_note(rep, "admission policy", RELOAD_CHANGED, NULL);
	for (int i = 0; i < a->a_nchain; i++) {
		const struct auth_backend *b = a->a_chain[i];

		const char *what = b->ab_reload_name != NULL ?
		    b->ab_reload_name : b->ab_name;
		int brc;

		if (b->ab_reload == NULL)
			continue;
		if ((brc = b->ab_reload(a, err, sizeof(err))) == -1) {
			reload_note(rep, what, RELOAD_FAILED, err);
			rc = -1;
		} else if (brc == 0)
			reload_note(rep, what, RELOAD_CHANGED, NULL);
	}
	if (a->a_audit != NULL) {
		/* Apart from the verdicts: a new file changes no decision. */
		if (auth_audit_reopen(a->a_audit, err, sizeof(err)) == -1)
			reload_note(rep, "admission log", RELOAD_FAILED, err);
		else
			reload_note(rep, "admission log", RELOAD_CHANGED, NULL);
	}
	if (rc == -1) {
		/* Nothing else changes when a backend could not reload. */
		reload_note(rep, "admission cache", RELOAD_UNCHANGED, NULL);
		return rc;
	}
	/* A reload forgets every decision, and those still being made. */
	auth_forget_verdicts(a);
	reload_note(rep, "admission cache", RELOAD_CHANGED, NULL);
	return rc;
}

/* The chain is fixed at auth_new: any thread may walk it. */
void
auth_backends_varz(struct auth *a, struct evbuffer *out)
{
	for (int i = 0; i < a->a_nchain; i++)
		if (a->a_chain[i]->ab_varz != NULL)
			a->a_chain[i]->ab_varz(a, out);
}

void
auth_forget_verdicts(struct auth *a)
{
	a->a_gen++;
	for (size_t i = 0; i < a->a_tabsize; i++)
		for (struct centry *e = a->a_tab[i]; e != NULL; e = e->ce_hnext)
			e->ce_has_verdict = 0;
}

/* --- refusals ------------------------------------------------------ */

void
auth_note_reject(struct auth *a, enum auth_reason reason,
    const struct sockaddr *src, const uint8_t key[32])
{
	if (reason <= AUTH_OK || reason >= AUTH_REASON__COUNT)
		return;
	__atomic_add_fetch(&a->a_rejects[reason], 1, __ATOMIC_RELAXED);
	auth_rejects_note(a->a_rejects_agg, reason, src, key);
}

size_t
auth_rejects_snapshot(struct auth *a, struct auth_reject_entry *out,
    size_t max)
{
	return auth_rejects_copy(a->a_rejects_agg, out, max);
}

void
auth_counters(struct auth *a, struct auth_counters *ac)
{
	memset(ac, 0, sizeof(*ac));
	ac->ac_checks = __atomic_load_n(&a->a_checks, __ATOMIC_RELAXED);
	ac->ac_hits = __atomic_load_n(&a->a_hits, __ATOMIC_RELAXED);
	ac->ac_misses = __atomic_load_n(&a->a_misses, __ATOMIC_RELAXED);
	ac->ac_joined = __atomic_load_n(&a->a_joined, __ATOMIC_RELAXED);
	ac->ac_queued_total = __atomic_load_n(&a->a_queued_total,
	    __ATOMIC_RELAXED);
	for (int i = 0; i < NBACKENDS && backends[i] != NULL; i++) {
		ac->ac_backend[i] = backends[i]->ab_name;
		ac->ac_backend_reqs[i] = __atomic_load_n(&a->a_backend_reqs[i],
		    __ATOMIC_RELAXED);
	}
	for (int r = 0; r < AUTH_REASON__COUNT; r++) {
		ac->ac_rejects[r] = __atomic_load_n(&a->a_rejects[r],
		    __ATOMIC_RELAXED);
		ac->ac_results[r] = __atomic_load_n(&a->a_results[r],
		    __ATOMIC_RELAXED);
	}
}

void
auth_engine_state(struct auth *a, struct auth_engine_state *es)
{
	memset(es, 0, sizeof(*es));
	es->es_nchain = a->a_nchain;
	for (int i = 0; i < a->a_nchain; i++)
		es->es_chain[i] = a->a_chain[i];
	es->es_entries = a->a_nentries;
	es->es_inflight = a->a_inflight;
	es->es_queued = auth_sched_queued(a->a_sched);
	es->es_sources = auth_sched_groups(a->a_sched);
	es->es_max_per_source = a->a_conf.ac_max_pending_per_source;
}
