/* SPDX-License-Identifier: ISC */
/*
 * auth_api.c: -verify-clients-api, admission from the control plane.
 * The whole set of node keys comes from Tailscale's API (devices of a
 * tailnet) or headscale's (nodes) at startup and every interval; a check
 * is answered from that set, on the engine thread, with no request.
 *
 * A key not in the set may be a node registered since the last sync: it
 * starts one extra sync, at most every -verify-clients-api-min-refresh,
 * and waits for it (at most -auth-timeout); a key arriving while a sync
 * is under way waits for that one; any other unknown key is refused at
 * once. So a flood of unknown keys costs one request per min-refresh.
 *
 * A sync that changes the set forgets every cached verdict; one that
 * takes a key's admission away (deleted, unauthorized, expired) has every
 * live connection checked again, and those refused are closed (revoked).
 * The last good set is kept in the state file, so a restart while the
 * API is down still admits known nodes. Failures keep the set, back off
 * (1 s doubling up to the interval) and honour Retry-After.
 *
 * All on the engine (main) thread through libcurl multi; the counters
 * and gauges are atomics, read by /debug/varz on the workers.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <sodium.h>

#include "acme_msg.h"
#include "apiset.h"
#include "auth_int.h"
#include "keys.h"
#include "log.h"
#include "util.h"

#define API_RETRY_MIN_MS	1000
#define API_STATE_REWRITE_S	600	/* rewrite an unchanged set this often */
#define API_WAIT_MAX		4096	/* checks waiting for one sync */

enum sync_result { SR_OK, SR_UNREACHABLE, SR_ERROR, SR_RATE_LIMITED,
	SR__COUNT };
static const char *const sr_names[SR__COUNT] = {
	"ok", "unreachable", "error", "rate_limited" };

enum trigger { TR_STARTUP, TR_INTERVAL, TR_UNKNOWN_KEY, TR_RETRY,
	TR__COUNT };
static const char *const tr_names[TR__COUNT] = {
	"startup", "interval", "unknown_key", "retry" };

enum source { SRC_NONE, SRC_API, SRC_STATE };
static const char *const src_names[] = { "none", "api", "state_file" };

struct api;

/* One HTTP request of a sync: the token, or the list. */
struct preq {
	struct api		*q_api;
	int			 q_token;	/* the OAuth token request */
	char			*q_body;
	size_t			 q_len, q_max;
	int			 q_too_big;
	char			 q_retry_after[64];
	struct curl_slist	*q_hdrs;	/* holds the secret: wiped */
	char			*q_post;	/* holds the secret: wiped */
};

struct api {
	struct auth		*p_auth;
	enum api_kind		 p_kind;
	const char		*p_kindname;
	char			 p_url[1024];	/* base, no trailing '/' */
	char			 p_tailnet[256];
	char			 p_state[PATH_MAX];
	int64_t			 p_interval_ms, p_min_refresh_ms, p_timeout_ms;
	struct api_creds	 p_creds;
	char			*p_token;	/* OAuth access token (secret) */
	uint64_t		 p_token_renew_ms;	/* fetch a new one from */

	struct api_set		*p_set;		/* NULL: none yet */
	int64_t			 p_judged;	/* unix s the set was judged at */
	int64_t			 p_fetched;	/* unix s, 0 none */
	enum source		 p_source;
	int64_t			 p_written;	/* unix s of the last write */

	/* the sync in progress, and the next one */
	struct preq		*p_req;		/* NULL: idle */
	int			 p_token_retry;	/* a 401 got a new token once */
	struct event		*p_timer;
	enum trigger		 p_next_trigger;
	uint64_t		 p_next_ms;	/* util_now_ms of the next sync */
	uint64_t		 p_not_before_ms;	/* Retry-After */
	int64_t			 p_backoff_ms;
	uint64_t		 p_last_start_ms;	/* 0: never */
	int64_t			 p_last_attempt;	/* unix s */
	int64_t			 p_last_ok;		/* unix s */
	char			 p_err[256];
	enum auth_reason	 p_fail;	/* AUTH_OK, _API_UNREACHABLE/_ERROR */

	/* checks waiting for the sync in progress */
	struct auth_flight	**p_wait;
	size_t			 p_nwait;
	struct event		*p_wait_timer;

	/* metrics (atomic) */
	uint64_t		 m_syncs[SR__COUNT];
	uint64_t		 m_req_token, m_req_list;
	uint64_t		 m_refresh[TR__COUNT];
	uint64_t		 m_suppressed, m_revoked;
	int64_t			 g_devices, g_admittable, g_fetched;
	uint64_t		 g_next_ms;
};

static void	sync_begin(struct api *, enum trigger);
static void	send_list(struct api *);

static struct api *
api_of(struct auth *a)
{
	return auth_backend_state(a, &auth_backend_api);
}

static int64_t
now_s(void)
{
	return (int64_t)time(NULL);
}

/* --- the credentials and the state file ---------------------------- */

/* util_read_small_file of a regular file, in this backend's words. */
static char *
read_file(const char *path, size_t max, size_t *lenp, char *err,
    size_t errlen)
{
	char	*buf;

	buf = util_read_small_file(path, max, UTIL_READ_REGULAR, lenp, err,
	    errlen);
	if (buf == NULL && (errno == EFBIG || errno == EINVAL))
		snprintf(err, errlen, "%s: not a regular file of at most %zu "
		    "bytes", path, max);
	return buf;
}

static int
creds_load(struct api *p, const char *path, struct api_creds *out,
    char *err, size_t errlen)
{
	char	*buf, e[256];
	size_t	 len;
	int	 rc;

	if (keys_check_secrecy(path, e, sizeof(e)) == -1) {
		snprintf(err, errlen, "-verify-clients-api-credentials: %s", e);
		return -1;
	}
	if ((buf = read_file(path, API_SMALL_MAX, &len, e, sizeof(e))) ==
	    NULL) {
		snprintf(err, errlen, "-verify-clients-api-credentials: %s", e);
		return -1;
	}
	rc = api_creds_parse(p->p_kind, buf, len, out, e, sizeof(e));
	sodium_memzero(buf, len);
	free(buf);
	if (rc == -1)
		snprintf(err, errlen, "-verify-clients-api-credentials: %s: %s",
		    path, e);
	return rc;
}

static void
state_load(struct api *p)
{
	struct api_set	*s;
	char		*buf, e[PATH_MAX + 64];	/* p_state and a message */
	size_t		 len;
	int64_t		 fetched = 0;
	struct stat	 st;

	if (p->p_state[0] == '\0')
		return;
	if (stat(p->p_state, &st) == -1) {
		if (errno != ENOENT)
			log_warnx("admission api: state file %s: %s",
			    p->p_state, strerror(errno));
		return;
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		log_warnx("admission api: state file %s: mode %04o is group "
		    "or world accessible; not used", p->p_state,
		    (unsigned)(st.st_mode & 07777));
		return;
	}
	if ((buf = read_file(p->p_state, API_BODY_MAX, &len, e, sizeof(e))) ==
	    NULL) {
		log_warnx("admission api: state file: %s", e);
		return;
	}
	s = api_state_parse(buf, len, p->p_kindname, p->p_url, p->p_tailnet,
	    &fetched, e, sizeof(e));
	free(buf);
	if (s == NULL) {
		log_warnx("admission api: state file %s not used: %s",
		    p->p_state, e);
		return;
	}
	p->p_set = s;
	p->p_judged = now_s();
	p->p_fetched = fetched;
	p->p_written = fetched;
	p->p_source = SRC_STATE;
	log_info("admission api: %zu devices (%zu admitted) from the state "
	    "file %s, fetched %" PRId64 " s ago", s->as_n,
	    api_set_admittable(s, p->p_judged), p->p_state,
	    p->p_judged - fetched);
}

/* Write the set through a temporary file and a rename, mode 0600. */
static void
state_save(struct api *p)
{
	char	*text;
	size_t	 len;

	if (p->p_state[0] == '\0')
		return;
	if ((text = api_state_format(p->p_set, p->p_kindname, p->p_url,
	    p->p_tailnet, p->p_fetched, &len)) == NULL) {
		log_warnx("admission api: state file: out of memory");
		return;
	}
	if (util_write_file_atomic(p->p_state, text, len, 0600, NULL, 0) == -1)
		log_warnx("admission api: cannot write the state file %s: %s",
		    p->p_state, strerror(errno));
	else
		p->p_written = now_s();
	free(text);
}

/* --- decisions ----------------------------------------------------- */

static void
gauges(struct api *p)
{
	int64_t now = now_s();

	__atomic_store_n(&p->g_devices, p->p_set != NULL ?
	    (int64_t)p->p_set->as_n : 0, __ATOMIC_RELAXED);
	__atomic_store_n(&p->g_admittable,
	    (int64_t)api_set_admittable(p->p_set, now), __ATOMIC_RELAXED);
	__atomic_store_n(&p->g_fetched, p->p_set != NULL ? p->p_fetched : 0,
	    __ATOMIC_RELAXED);
	__atomic_store_n(&p->g_next_ms, p->p_next_ms, __ATOMIC_RELAXED);
}

/*
 * The control plane's verdict on a listed device now, as a reason:
 * AUTH_OK when it admits it (the policy still to be applied).
 */
static enum auth_reason
verdict_reason(const struct api_dev *d)
{
	switch (api_dev_judge(d, now_s())) {
	case API_UNAUTHORIZED:
		return AUTH_DEVICE_UNAUTHORIZED;
	case API_EXPIRED:
		return AUTH_KEY_EXPIRED;
	case API_ADMIT:
		break;
	}
	return AUTH_OK;
}

/* What the set says of a listed key (the policy applied on an admit). */
static enum auth_reason
decide(struct auth_flight *f, const struct api_dev *d)
{
	struct policy_ident	*id;
	enum auth_reason	 r;

	if ((r = verdict_reason(d)) != AUTH_OK)
		return r;
	/* The API's identity is what the policy and the audit see. */
	if ((id = calloc(1, sizeof(*id))) == NULL ||
	    api_ident_copy(id, &d->ad_id) == -1) {
		free(id);
		return AUTH_API_ERROR;
	}
	if (f->f_ident != NULL) {
		policy_ident_cleanup(f->f_ident);
		free(f->f_ident);
	}
	f->f_ident = id;
	return auth_policy_apply(f, AUTH_API_ERROR);
}

/* A key the set does not have, with no sync to wait for. */
static enum auth_reason
unknown(struct api *p)
{
	if (p->p_set != NULL)
		return AUTH_NOT_IN_TAILNET;
	return p->p_fail == AUTH_API_ERROR ? AUTH_API_ERROR :
	    AUTH_API_UNREACHABLE;
}

static enum auth_reason
answer(struct api *p, struct auth_flight *f)
{
	const struct api_dev *d = api_set_find(p->p_set, f->f_key);

	return d != NULL ? decide(f, d) : unknown(p);
}

/* Answer every check waiting for a sync, from the set as it is now. */
static void
wake_waiters(struct api *p)
{
	struct auth_flight	**w = p->p_wait;
	size_t			  n = p->p_nwait;

	if (p->p_wait_timer != NULL)
		evtimer_del(p->p_wait_timer);
	/* Taken first: a step may start new flights that wait again. */
	p->p_wait = NULL;
	p->p_nwait = 0;
	for (size_t i = 0; i < n; i++)
		auth_flight_step(w[i], answer(p, w[i]));
	free(w);
}

static void
wait_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	/* The sync goes on; its waiters have waited -auth-timeout. */
	wake_waiters(arg);
}

/* f waits for the sync under way; false when it cannot. */
static bool
wait_for_sync(struct api *p, struct auth_flight *f)
{
	struct auth_flight **nw;

	if (p->p_nwait >= API_WAIT_MAX ||
	    (nw = realloc(p->p_wait, (p->p_nwait + 1) * sizeof(*nw))) == NULL)
		return false;
	p->p_wait = nw;
	nw[p->p_nwait++] = f;
	if (p->p_nwait == 1) {
		struct timeval tv = { p->p_timeout_ms / 1000,
		    (p->p_timeout_ms % 1000) * 1000 };
		evtimer_add(p->p_wait_timer, &tv);
	}
	return true;
}

static void
api_check(struct auth_flight *f)
{
	struct api		*p = api_of(f->f_auth);
	const struct api_dev	*d = api_set_find(p->p_set, f->f_key);
	uint64_t		 now = util_now_ms();

	if (d != NULL) {
		auth_flight_step(f, decide(f, d));
		return;
	}
	if (p->p_req != NULL) {
		/* A sync is under way: its answer is at most seconds off. */
		if (wait_for_sync(p, f))
			return;
	} else if (!auth_closing(f->f_auth) &&
	    (p->p_last_start_ms == 0 ||
	    now - p->p_last_start_ms >= (uint64_t)p->p_min_refresh_ms) &&
	    now >= p->p_not_before_ms && wait_for_sync(p, f)) {
		/* Maybe a node registered since the last sync: ask now. */
		sync_begin(p, TR_UNKNOWN_KEY);
		return;
	}
	__atomic_add_fetch(&p->m_suppressed, 1, __ATOMIC_RELAXED);
	auth_flight_step(f, unknown(p));
}

/* --- the sync ------------------------------------------------------ */

/*
 * The first millisecond a Retry-After of secs (at least 1) allows:
 * util_now_ms truncates, so one more keeps a request from coming up to
 * a millisecond before the server's own clock says it may.
 */
static uint64_t
not_before_ms(int64_t secs)
{
	return util_now_ms() + 1 + 1000 * (uint64_t)(secs > 0 ? secs : 1);
}

static void
schedule(struct api *p, uint64_t at_ms, enum trigger t)
{
	uint64_t	now = util_now_ms();
	int64_t		d;
	struct timeval	tv;

	if (at_ms < p->p_not_before_ms)
		at_ms = p->p_not_before_ms;
	p->p_next_ms = at_ms;
	p->p_next_trigger = t;
	d = at_ms > now ? (int64_t)(at_ms - now) : 0;
	tv.tv_sec = d / 1000;
	tv.tv_usec = (d % 1000) * 1000;
	evtimer_add(p->p_timer, &tv);
	gauges(p);
}

/*
 * The loop's timer may fire a millisecond before util_now_ms says the
 * time has come (libevent keeps its own, cached clock): a sync never
 * starts before p_next_ms (and so before a Retry-After's time); early,
 * the timer waits out the rest.
 */
static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct api *p = arg;

	(void)fd;
	(void)what;
	if (p->p_req != NULL)
		return;
	if (util_now_ms() < p->p_next_ms) {
		schedule(p, p->p_next_ms, p->p_next_trigger);
		return;
	}
	sync_begin(p, p->p_next_trigger);
}

static void
preq_free(struct preq *q)
{
	if (q == NULL)
		return;
	for (struct curl_slist *l = q->q_hdrs; l != NULL; l = l->next)
		sodium_memzero(l->data, strlen(l->data));
	curl_slist_free_all(q->q_hdrs);
	if (q->q_post != NULL) {
		sodium_memzero(q->q_post, strlen(q->q_post));
		free(q->q_post);
	}
	if (q->q_token && q->q_body != NULL)
		sodium_memzero(q->q_body, q->q_len);
	free(q->q_body);
	free(q);
}

static size_t
body_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct preq	*q = arg;
	size_t		 n = size * nmemb;
	char		*nb;

	if (q->q_len + n > q->q_max) {
		q->q_too_big = 1;
		return 0;	/* aborts the transfer */
	}
	if ((nb = realloc(q->q_body, q->q_len + n + 1)) == NULL)
		return 0;
	q->q_body = nb;
	memcpy(nb + q->q_len, ptr, n);
	q->q_len += n;
	nb[q->q_len] = '\0';
	return n;
}

static size_t
header_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct preq	*q = arg;
	size_t		 n = size * nmemb, k = sizeof("Retry-After:") - 1;

	if (n > k && strncasecmp(ptr, "Retry-After:", k) == 0) {
		const char	*v = ptr + k;
		size_t		 vl = n - k;

		while (vl > 0 && (*v == ' ' || *v == '\t'))
			v++, vl--;
		while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' ||
		    v[vl - 1] == ' '))
			vl--;
		if (vl < sizeof(q->q_retry_after)) {
			memcpy(q->q_retry_after, v, vl);
			q->q_retry_after[vl] = '\0';
		}
	}
	return n;
}

static void	req_done(void *easy, int code, void *arg);

static int
req_start(struct api *p, struct preq *q, const char *url)
{
	CURL *e;

	if ((e = curl_easy_init()) == NULL)
		return -1;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)p->p_timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "derpd");
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	/* A big tailnet's list compresses well. */
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, q->q_hdrs);
	if (q->q_post != NULL)
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->q_post);
	if (auth_curl_add(auth_curl_of(p->p_auth), e, req_done, q) == -1) {
		curl_easy_cleanup(e);
		return -1;
	}
	p->p_req = q;
	return 0;
}

static struct preq *
preq_new(struct api *p, int token)
{
	struct preq *q;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	q->q_api = p;
	q->q_token = token;
	q->q_max = token ? API_SMALL_MAX : API_BODY_MAX;
	if ((q->q_hdrs = curl_slist_append(NULL, "Accept: application/json")) ==
	    NULL) {
		free(q);
		return NULL;
	}
	return q;
}

static void	sync_fail(struct api *, enum sync_result, const char *fmt, ...)
		    __attribute__((format(printf, 3, 4)));

static void
send_token(struct api *p)
{
	struct preq	*q;
	char		 url[1100], *id = NULL, *sec = NULL;
	size_t		 n;

	__atomic_add_fetch(&p->m_req_token, 1, __ATOMIC_RELAXED);
	auth_count_backend_request(p->p_auth, "api");
	snprintf(url, sizeof(url), "%s/api/v2/oauth/token", p->p_url);
	if ((q = preq_new(p, 1)) == NULL ||
	    (id = curl_easy_escape(NULL, p->p_creds.ac_client_id, 0)) == NULL ||
	    (sec = curl_easy_escape(NULL, p->p_creds.ac_client_secret, 0)) ==
	    NULL)
		goto fail;
	n = strlen(id) + strlen(sec) + 80;
	if ((q->q_post = malloc(n)) == NULL)
		goto fail;
	snprintf(q->q_post, n, "grant_type=client_credentials&client_id=%s&"
	    "client_secret=%s", id, sec);
	sodium_memzero(sec, strlen(sec));
	curl_free(id);
	curl_free(sec);
	id = sec = NULL;
	if (req_start(p, q, url) == 0)
		return;
fail:
	if (sec != NULL) {
		sodium_memzero(sec, strlen(sec));
		curl_free(sec);
	}
	curl_free(id);
	preq_free(q);
	sync_fail(p, SR_ERROR, "cannot start the token request");
}

static void
send_list(struct api *p)
{
	struct preq		*q;
	struct curl_slist	*l;
	char			 url[1400], *tn = NULL, *auth = NULL;
	const char		*secret = p->p_token != NULL ? p->p_token :
				    p->p_creds.ac_api_key;
	size_t			 n;

	__atomic_add_fetch(&p->m_req_list, 1, __ATOMIC_RELAXED);
	auth_count_backend_request(p->p_auth, "api");
	if (p->p_kind == API_HEADSCALE)
		snprintf(url, sizeof(url), "%s/api/v1/node", p->p_url);
	else {
		if ((tn = curl_easy_escape(NULL, p->p_tailnet, 0)) == NULL)
			goto fail;
		snprintf(url, sizeof(url), "%s/api/v2/tailnet/%s/devices"
		    "?fields=all", p->p_url, tn);
		curl_free(tn);
	}
	if (secret == NULL || (q = preq_new(p, 0)) == NULL)
		goto fail;
	n = strlen(secret) + 32;
	if ((auth = malloc(n)) == NULL) {
		preq_free(q);
		goto fail;
	}
	snprintf(auth, n, "Authorization: Bearer %s", secret);
	l = curl_slist_append(q->q_hdrs, auth);
	sodium_memzero(auth, strlen(auth));
	free(auth);
	if (l == NULL) {
		preq_free(q);
		goto fail;
	}
	q->q_hdrs = l;
	if (req_start(p, q, url) == 0)
		return;
	preq_free(q);
fail:
	sync_fail(p, SR_ERROR, "cannot start the list request");
}

static void
sync_begin(struct api *p, enum trigger t)
{
	uint64_t now = util_now_ms();

	if (p->p_req != NULL || auth_closing(p->p_auth))
		return;
	evtimer_del(p->p_timer);
	__atomic_add_fetch(&p->m_refresh[t], 1, __ATOMIC_RELAXED);
	p->p_last_start_ms = now;
	p->p_last_attempt = now_s();
	p->p_token_retry = 0;
	if (p->p_creds.ac_client_id != NULL &&
	    (p->p_token == NULL || now >= p->p_token_renew_ms))
		send_token(p);
	else
		send_list(p);
}

static void
drop_token(struct api *p)
{
	if (p->p_token != NULL) {
		sodium_memzero(p->p_token, strlen(p->p_token));
		free(p->p_token);
		p->p_token = NULL;
	}
}

/*
 * Keys admitted when the set was last judged that are not now: have the
 * live connections checked again.
 */
static void
revoke_keys(struct api *p, size_t gone)
{
	char s[32];

	if (gone == 0)
		return;
	__atomic_add_fetch(&p->m_revoked, gone, __ATOMIC_RELAXED);
	snprintf(s, sizeof(s), "%zu", gone);
	log_info("admission api: %s key%s no longer admitted; checking live "
	    "connections again", s, gone == 1 ? " is" : "s are");
	auth_forget_verdicts(p->p_auth);
	auth_revoke_live(p->p_auth);
}

static void
sync_fail(struct api *p, enum sync_result r, const char *fmt, ...)
{
	va_list		 ap;
	uint64_t	 now = util_now_ms();
	int64_t		 d, snow = now_s();
	size_t		 gone;

	p->p_req = NULL;
	va_start(ap, fmt);
	vsnprintf(p->p_err, sizeof(p->p_err), fmt, ap);
	va_end(ap);
	__atomic_add_fetch(&p->m_syncs[r], 1, __ATOMIC_RELAXED);
	p->p_fail = r == SR_UNREACHABLE ? AUTH_API_UNREACHABLE : AUTH_API_ERROR;
	p->p_backoff_ms = p->p_backoff_ms == 0 ? API_RETRY_MIN_MS :
	    p->p_backoff_ms * 2;
	if (p->p_backoff_ms > p->p_interval_ms)
		p->p_backoff_ms = p->p_interval_ms;
	/* 0.8x to 1.2x: a fleet of relays does not retry in step. */
	d = p->p_backoff_ms * (80 + (int64_t)randombytes_uniform(41)) / 100;
	if (auth_closing(p->p_auth))
		;	/* shutting down: the request was aborted, not failed */
	else if (p->p_set != NULL)
		log_warnx("admission api: sync failed: %s; keeping the set "
		    "fetched %" PRId64 " s ago; retry in %" PRId64 " ms",
		    p->p_err, snow - p->p_fetched, d);
	else
		log_warnx("admission api: sync failed: %s; no set yet, "
		    "unknown keys are refused; retry in %" PRId64 " ms",
		    p->p_err, d);
	/* Time passes while the API is away: expiries still apply. */
	if (p->p_set != NULL) {
		gone = api_set_revoked(p->p_set, p->p_judged, p->p_set, snow);
		p->p_judged = snow;
		revoke_keys(p, gone);
	}
	if (!auth_closing(p->p_auth))
		schedule(p, now + (uint64_t)d, TR_RETRY);
	wake_waiters(p);
}

static void
sync_ok(struct api *p, struct api_set *s)
{
	int64_t		 snow = now_s();
	size_t		 gone = api_set_revoked(p->p_set, p->p_judged, s, snow);
	bool		 changed = !api_set_equal(p->p_set, s);
	bool		 first = p->p_source != SRC_API;

	p->p_req = NULL;
	api_set_free(p->p_set);
	p->p_set = s;
	p->p_judged = snow;
	p->p_fetched = snow;
	p->p_last_ok = snow;
	p->p_source = SRC_API;
	p->p_backoff_ms = 0;
	p->p_err[0] = '\0';
	p->p_fail = AUTH_OK;
	if (changed || first)
		log_info("admission api: %zu devices (%zu admitted%s) from %s",
		    s->as_n, api_set_admittable(s, snow), s->as_skipped > 0 ?
		    ", some entries without a node key skipped" : "",
		    p->p_url);
	if (changed || snow - p->p_written >= API_STATE_REWRITE_S)
		state_save(p);
	/* A newly listed key must not meet a cached refusal. */
	if (changed)
		auth_forget_verdicts(p->p_auth);
	revoke_keys(p, gone);
	schedule(p, util_now_ms() + (uint64_t)p->p_interval_ms, TR_INTERVAL);
	/* Counted once the gauges (schedule) show the new set. */
	__atomic_add_fetch(&p->m_syncs[SR_OK], 1, __ATOMIC_RELAXED);
	wake_waiters(p);
}

static void
token_done(struct api *p, struct preq *q, int code, long status)
{
	char		 e[128];
	char		*tok;
	int64_t		 life;

	if (code != CURLE_OK)
		sync_fail(p, q->q_too_big ? SR_ERROR : SR_UNREACHABLE,
		    "token request to %s: %s", p->p_url,
		    q->q_too_big ? "answer too large" :
		    curl_easy_strerror((CURLcode)code));
	else if (status == 429)
		goto limited;
	else if (status != 200)
		sync_fail(p, SR_ERROR, "token request to %s: HTTP %ld%s",
		    p->p_url, status, status == 401 || status == 400 ?
		    " (is the OAuth client id and secret right?)" : "");
	else if (api_token_parse(q->q_body, q->q_len, &tok, &life, e,
	    sizeof(e)) == -1)
		sync_fail(p, SR_ERROR, "token request to %s: %s", p->p_url, e);
	else {
		drop_token(p);
		p->p_token = tok;
		/* Renewed before the end: a quarter of its life, at most 60 s. */
		life = life * 1000 - (life * 250 < 60000 ? life * 250 : 60000);
		p->p_token_renew_ms = util_now_ms() + (uint64_t)life;
		send_list(p);
	}
	return;
limited:
	life = acme_retry_after(q->q_retry_after[0] ? q->q_retry_after : NULL,
	    time(NULL));
	p->p_not_before_ms = not_before_ms(life);
	sync_fail(p, SR_RATE_LIMITED, "token request to %s: HTTP 429 (rate "
	    "limited)", p->p_url);
}

static void
list_done(struct api *p, struct preq *q, int code, long status)
{
	struct api_set	*s;
	char		 e[160];
	int64_t		 ra;

	if (code != CURLE_OK) {
		sync_fail(p, q->q_too_big ? SR_ERROR : SR_UNREACHABLE,
		    "list from %s: %s", p->p_url, q->q_too_big ?
		    "answer too large" : curl_easy_strerror((CURLcode)code));
		return;
	}
	if ((status == 401 || status == 403) && p->p_token != NULL &&
	    !p->p_token_retry && !auth_closing(p->p_auth)) {
		/* The token was revoked or expired early: one new one. */
		p->p_token_retry = 1;
		drop_token(p);
		p->p_req = NULL;
		send_token(p);
		return;
	}
	if (status == 429) {
		ra = acme_retry_after(q->q_retry_after[0] ? q->q_retry_after :
		    NULL, time(NULL));
		p->p_not_before_ms = not_before_ms(ra);
		sync_fail(p, SR_RATE_LIMITED, "list from %s: HTTP 429 (rate "
		    "limited; Retry-After %s)", p->p_url,
		    q->q_retry_after[0] ? q->q_retry_after : "absent");
		return;
	}
	if (status != 200) {
		sync_fail(p, SR_ERROR, "list from %s: HTTP %ld%s", p->p_url,
		    status, (status == 401 || status == 403) &&
		    p->p_kind == API_HEADSCALE ? " (is the API key right and "
		    "not expired?)" : status == 401 || status == 403 ?
		    " (are the credentials right, with the devices:core:read "
		    "scope?)" : status == 404 && p->p_kind == API_TAILSCALE ?
		    " (is the tailnet name right?)" : "");
		return;
	}
	if ((s = api_set_parse(p->p_kind, q->q_body, q->q_len, e,
	    sizeof(e))) == NULL) {
		sync_fail(p, SR_ERROR, "list from %s: %s", p->p_url, e);
		return;
	}
	sync_ok(p, s);
}

static void
req_done(void *easy, int code, void *arg)
{
	struct preq	*q = arg;
	struct api	*p = q->q_api;
	long		 status = 0;

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	/* Cleared first: what follows may start the next request. */
	p->p_req = NULL;
	if (q->q_token)
		token_done(p, q, code, status);
	else
		list_done(p, q, code, status);
	preq_free(q);
}

/* --- the backend --------------------------------------------------- */

static bool
api_enabled(const struct auth_conf *c)
{
	return c->ac_api[0] != '\0';
}

static int
api_init(struct auth *a, char *err, size_t errlen)
{
	const struct auth_conf	*c = auth_conf_of(a);
	struct api		*p;
	size_t			 n;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	auth_set_backend_state(a, &auth_backend_api, p);
	p->p_auth = a;
	p->p_kind = strcmp(c->ac_api, "headscale") == 0 ? API_HEADSCALE :
	    API_TAILSCALE;
	p->p_kindname = p->p_kind == API_HEADSCALE ? "headscale" : "tailscale";
	util_strlcpy(p->p_url, c->ac_api_url[0] != '\0' ? c->ac_api_url :
	    "https://api.tailscale.com", sizeof(p->p_url));
	n = strlen(p->p_url);
	while (n > 0 && p->p_url[n - 1] == '/')
		p->p_url[--n] = '\0';
	util_strlcpy(p->p_tailnet, c->ac_api_tailnet, sizeof(p->p_tailnet));
	util_strlcpy(p->p_state, c->ac_api_state, sizeof(p->p_state));
	p->p_interval_ms = c->ac_api_interval_ms;
	p->p_min_refresh_ms = c->ac_api_min_refresh_ms;
	p->p_timeout_ms = c->ac_timeout_ms;
	p->p_fail = AUTH_API_UNREACHABLE;
	if (creds_load(p, c->ac_api_creds, &p->p_creds, err, errlen) == -1)
		return -1;
	if ((p->p_timer = evtimer_new(auth_base(a), timer_cb, p)) == NULL ||
	    (p->p_wait_timer = evtimer_new(auth_base(a), wait_timer_cb,
	    p)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	state_load(p);
	log_info("admission api: %s at %s%s%s, %s, every %" PRId64 " ms",
	    p->p_kindname, p->p_url, p->p_kind == API_TAILSCALE ?
	    ", tailnet " : "", p->p_kind == API_TAILSCALE ? p->p_tailnet : "",
	    p->p_creds.ac_api_key != NULL ? "API key" : "OAuth client",
	    p->p_interval_ms);
	if (p->p_state[0] == '\0')
		log_info("admission api: no state file: a restart while the "
		    "API is down admits no one until it is back");
	/* The first sync, as soon as the loop runs. */
	p->p_next_trigger = TR_STARTUP;
	schedule(p, util_now_ms(), TR_STARTUP);
	return 0;
}

static void
api_fini(struct auth *a)
{
	struct api *p = api_of(a);

	if (p == NULL)
		return;
	/* auth_free aborted the request before: its waiters are answered. */
	wake_waiters(p);
	if (p->p_timer != NULL)
		event_free(p->p_timer);
	if (p->p_wait_timer != NULL)
		event_free(p->p_wait_timer);
	api_set_free(p->p_set);
	drop_token(p);
	api_creds_clear(&p->p_creds);
	free(p);
	auth_set_backend_state(a, &auth_backend_api, NULL);
}

/* Re-read the credentials (a rotated secret); a new token is fetched. */
static int
api_reload(struct auth *a, char *err, size_t errlen)
{
	struct api		*p = api_of(a);
	struct api_creds	 nc;

	if (p == NULL)
		return 1;
	if (creds_load(p, auth_conf_of(a)->ac_api_creds, &nc, err, errlen) ==
	    -1)
		return -1;
	api_creds_clear(&p->p_creds);
	p->p_creds = nc;
	drop_token(p);
	return 0;
}

static void
api_ctl(struct auth *a, cJSON *o)
{
	struct api	*p = api_of(a);
	cJSON		*j;
	int64_t		 now = now_s();
	uint64_t	 ms = util_now_ms(), fails = 0;

	if (p == NULL || (j = cJSON_AddObjectToObject(o, "api")) == NULL)
		return;
	for (int i = 1; i < SR__COUNT; i++)
		fails += __atomic_load_n(&p->m_syncs[i], __ATOMIC_RELAXED);
	cJSON_AddStringToObject(j, "api", p->p_kindname);
	cJSON_AddStringToObject(j, "url", p->p_url);
	cJSON_AddStringToObject(j, "tailnet", p->p_kind == API_TAILSCALE ?
	    p->p_tailnet : "");
	cJSON_AddStringToObject(j, "credentials", p->p_creds.ac_api_key !=
	    NULL ? "api_key" : "oauth");
	cJSON_AddStringToObject(j, "state_file", p->p_state);
	cJSON_AddNumberToObject(j, "devices", p->p_set != NULL ?
	    (double)p->p_set->as_n : 0);
	cJSON_AddNumberToObject(j, "admittable",
	    (double)api_set_admittable(p->p_set, now));
	cJSON_AddStringToObject(j, "source", src_names[p->p_source]);
	cJSON_AddNumberToObject(j, "last_attempt", (double)p->p_last_attempt);
	cJSON_AddNumberToObject(j, "last_success", (double)p->p_last_ok);
	cJSON_AddNumberToObject(j, "age_seconds", p->p_set != NULL ?
	    (double)(now - p->p_fetched) : -1);
	cJSON_AddNumberToObject(j, "next_sync_seconds", p->p_req != NULL ? 0 :
	    p->p_next_ms > ms ? (double)(p->p_next_ms - ms) / 1000 : 0);
	cJSON_AddBoolToObject(j, "syncing", p->p_req != NULL);
	cJSON_AddStringToObject(j, "last_error", p->p_err);
	cJSON_AddNumberToObject(j, "syncs_ok", (double)__atomic_load_n(
	    &p->m_syncs[SR_OK], __ATOMIC_RELAXED));
	cJSON_AddNumberToObject(j, "syncs_failed", (double)fails);
	cJSON_AddNumberToObject(j, "requests", (double)(__atomic_load_n(
	    &p->m_req_token, __ATOMIC_RELAXED) + __atomic_load_n(
	    &p->m_req_list, __ATOMIC_RELAXED)));
	cJSON_AddNumberToObject(j, "on_demand", (double)__atomic_load_n(
	    &p->m_refresh[TR_UNKNOWN_KEY], __ATOMIC_RELAXED));
	cJSON_AddNumberToObject(j, "suppressed", (double)__atomic_load_n(
	    &p->m_suppressed, __ATOMIC_RELAXED));
	cJSON_AddNumberToObject(j, "revoked", (double)__atomic_load_n(
	    &p->m_revoked, __ATOMIC_RELAXED));
}

static void
api_varz(struct auth *a, struct evbuffer *out)
{
	struct api	*p = api_of(a);
	int64_t		 fetched, now = now_s();
	uint64_t	 next, ms = util_now_ms();

	if (p == NULL)
		return;
	fetched = __atomic_load_n(&p->g_fetched, __ATOMIC_RELAXED);
	next = __atomic_load_n(&p->g_next_ms, __ATOMIC_RELAXED);
	evbuffer_add_printf(out,
	    "# HELP derpd_admission_api_devices devices in the control "
	    "plane's set\n# TYPE derpd_admission_api_devices gauge\n"
	    "derpd_admission_api_devices %" PRId64 "\n"
	    "# HELP derpd_admission_api_admittable devices of the set that "
	    "are admitted (authorized, key not expired)\n"
	    "# TYPE derpd_admission_api_admittable gauge\n"
	    "derpd_admission_api_admittable %" PRId64 "\n"
	    "# HELP derpd_admission_api_set_age_seconds how old the set is "
	    "(-1: none)\n# TYPE derpd_admission_api_set_age_seconds gauge\n"
	    "derpd_admission_api_set_age_seconds %" PRId64 "\n"
	    "# HELP derpd_admission_api_last_success_timestamp_seconds when "
	    "the set was fetched (0: never)\n"
	    "# TYPE derpd_admission_api_last_success_timestamp_seconds gauge\n"
	    "derpd_admission_api_last_success_timestamp_seconds %" PRId64 "\n"
	    "# HELP derpd_admission_api_next_sync_seconds time to the next "
	    "sync\n# TYPE derpd_admission_api_next_sync_seconds gauge\n"
	    "derpd_admission_api_next_sync_seconds %.3f\n",
	    __atomic_load_n(&p->g_devices, __ATOMIC_RELAXED),
	    __atomic_load_n(&p->g_admittable, __ATOMIC_RELAXED),
	    fetched > 0 ? now - fetched : -1, fetched,
	    next > ms ? (double)(next - ms) / 1000 : 0.0);
	evbuffer_add_printf(out, "# HELP derpd_admission_api_syncs syncs "
	    "with the control plane, by result\n"
	    "# TYPE derpd_admission_api_syncs counter\n");
	for (int i = 0; i < SR__COUNT; i++)
		evbuffer_add_printf(out, "derpd_admission_api_syncs{result="
		    "\"%s\"} %" PRIu64 "\n", sr_names[i],
		    __atomic_load_n(&p->m_syncs[i], __ATOMIC_RELAXED));
	evbuffer_add_printf(out, "# HELP derpd_admission_api_requests HTTP "
	    "requests to the control plane\n"
	    "# TYPE derpd_admission_api_requests counter\n"
	    "derpd_admission_api_requests{endpoint=\"token\"} %" PRIu64 "\n"
	    "derpd_admission_api_requests{endpoint=\"list\"} %" PRIu64 "\n",
	    __atomic_load_n(&p->m_req_token, __ATOMIC_RELAXED),
	    __atomic_load_n(&p->m_req_list, __ATOMIC_RELAXED));
	evbuffer_add_printf(out, "# HELP derpd_admission_api_refreshes syncs "
	    "started, by what started them\n"
	    "# TYPE derpd_admission_api_refreshes counter\n");
	for (int i = 0; i < TR__COUNT; i++)
		evbuffer_add_printf(out, "derpd_admission_api_refreshes{trigger="
		    "\"%s\"} %" PRIu64 "\n", tr_names[i],
		    __atomic_load_n(&p->m_refresh[i], __ATOMIC_RELAXED));
	evbuffer_add_printf(out, "# HELP derpd_admission_api_refresh_suppressed"
	    " unknown keys refused without a sync (too soon after the last)\n"
	    "# TYPE derpd_admission_api_refresh_suppressed counter\n"
	    "derpd_admission_api_refresh_suppressed %" PRIu64 "\n"
	    "# HELP derpd_admission_api_revocations keys that left the "
	    "admitted set\n# TYPE derpd_admission_api_revocations counter\n"
	    "derpd_admission_api_revocations %" PRIu64 "\n",
	    __atomic_load_n(&p->m_suppressed, __ATOMIC_RELAXED),
	    __atomic_load_n(&p->m_revoked, __ATOMIC_RELAXED));
}

enum auth_reason
auth_api_explain(struct auth *a, const uint8_t key[32], cJSON *res)
{
	struct api		*p = api_of(a);
	const struct api_dev	*d;
	enum auth_reason	 r;

	if (p == NULL) {
		cJSON_AddStringToObject(res, "why", "neither -verify-clients "
		    "nor -verify-clients-api");
		return AUTH_API_ERROR;
	}
	if ((d = api_set_find(p->p_set, key)) == NULL) {
		r = unknown(p);
		cJSON_AddStringToObject(res, "api", auth_reason_name(r));
		cJSON_AddStringToObject(res, "why", p->p_set != NULL ?
		    "not in the control plane's set" : "no set yet");
		return r;
	}
	r = verdict_reason(d);
	cJSON_AddStringToObject(res, "api", auth_reason_name(r));
	if (r != AUTH_OK) {
		cJSON_AddItemToObject(res, "identity",
		    auth_ident_json(&d->ad_id));
		return r;
	}
	return auth_policy_explain_ident(a, &d->ad_id, res);
}

const struct auth_backend auth_backend_api = {
	.ab_name = "api",
	.ab_remote = true,
	.ab_enabled = api_enabled,
	.ab_init = api_init,
	.ab_check = api_check,
	.ab_fini = api_fini,
	.ab_reload = api_reload,
	.ab_reload_name = "admission api credentials",
	.ab_ctl = api_ctl,
	.ab_varz = api_varz,
};
