/* SPDX-License-Identifier: ISC */
/*
 * auth_http.c: the two HTTP backends over libcurl multi: tailscaled's
 * LocalAPI whois over its Unix socket (--verify-clients), and the
 * admission URL (--verify-client-url).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/event.h>

#include "auth_int.h"
#include "log.h"
#include "util.h"

#define BODY_MAX	(4 * 1024 * 1024)	/* whois with a big CapMap */
#define URL_BODY_READ	4096		/* Go decodes the first 4 KiB */

struct hreq {
	struct auth_flight	*h_flight;
	char			*h_body;
	size_t			 h_len;
	size_t			 h_max;		/* then stop reading (+1 kept) */
	char			 h_post[256];
	char			*h_postdyn;	/* with the identity */
	struct curl_slist	*h_hdrs;
	int			 h_is_url;
};

static size_t
write_cb(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct hreq	*h = arg;
	size_t		 n = size * nmemb, take = n;

	if (h->h_max > 0) {
		/*
		 * The admission URL: keep one byte past the limit so the
		 * classifier sees the body was too big, and read no more.
		 */
		if (h->h_len + take > h->h_max + 1)
			take = h->h_max + 1 - h->h_len;
	} else if (h->h_len + take > BODY_MAX)
		take = BODY_MAX - h->h_len;
	if (take > 0) {
		char *nb = realloc(h->h_body, h->h_len + take + 1);
		if (nb == NULL)
			return 0;
		h->h_body = nb;
		memcpy(h->h_body + h->h_len, ptr, take);
		h->h_len += take;
		h->h_body[h->h_len] = '\0';
	}
	if (h->h_max > 0 && h->h_len > h->h_max)
		return 0;	/* aborts the transfer */
	return n;	/* whois: the rest is read and dropped */
}

enum auth_reason
auth_tailscaled_classify(int curlcode, long status, const char *body,
    size_t len)
{
	cJSON *j;

	if (curlcode == CURLE_OPERATION_TIMEDOUT)
		return AUTH_TIMEOUT;
	if (curlcode != CURLE_OK)
		return AUTH_TAILSCALED_UNREACHABLE;
	if (status == 404)
		return AUTH_NOT_IN_TAILNET;
	if (status == 400 && body != NULL &&
	    strstr(body, "invalid 'addr' parameter") != NULL)
		return AUTH_TAILSCALED_TOO_OLD;
	if (status != 200 || body == NULL)
		return AUTH_TAILSCALED_ERROR;
	/*
	 * A 200 must carry one JSON object (Go's json.Unmarshal into a
	 * struct: null is accepted, other types and trailing data are not).
	 */
	{
		const char	*end = NULL;
		int		 ok;

		if ((j = cJSON_ParseWithLengthOpts(body, len, &end, 0)) == NULL)
			return AUTH_TAILSCALED_ERROR;
		ok = cJSON_IsObject(j) || cJSON_IsNull(j);
		while (end != NULL && end < body + len && (*end == ' ' ||
		    *end == '\t' || *end == '\n' || *end == '\r'))
			end++;
		if (end == NULL || end != body + len)
			ok = 0;
		cJSON_Delete(j);
		return ok ? AUTH_OK : AUTH_TAILSCALED_ERROR;
	}
}

enum auth_reason
auth_url_classify(int curlcode, long status, const char *body, size_t len)
{
	cJSON		*j, *allow;
	enum auth_reason r;

	/*
	 * Over the limit we stopped reading (a write error to curl): that
	 * is the answer's fault, not the network's, so never fail-open.
	 */
	if (body != NULL && len > AUTH_URL_BODY_MAX)
		return status == 200 ? AUTH_URL_BAD_RESPONSE : AUTH_URL_STATUS;
	if (curlcode != CURLE_OK)
		return AUTH_URL_UNREACHABLE;
	if (status != 200)
		return AUTH_URL_STATUS;
	if (body == NULL)
		return AUTH_URL_BAD_RESPONSE;
	if (len > URL_BODY_READ)
		len = URL_BODY_READ;
	if ((j = cJSON_ParseWithLength(body, len)) == NULL)
		return AUTH_URL_BAD_RESPONSE;
	/* Like Go: keys match case-insensitively and the last one wins. */
	allow = NULL;
	for (cJSON *it = j->child; cJSON_IsObject(j) && it != NULL;
	    it = it->next)
		if (it->string != NULL && strcasecmp(it->string, "Allow") == 0)
			allow = it;
	if (!cJSON_IsObject(j) || (allow != NULL && !cJSON_IsBool(allow)))
		r = AUTH_URL_BAD_RESPONSE;
	else
		r = cJSON_IsTrue(allow) ? AUTH_OK : AUTH_URL_DENIED;
	cJSON_Delete(j);
	return r;
}

size_t
auth_url_body(char *out, size_t outlen, const uint8_t key[32],
    const char *src)
{
	char	 k[KEY_TEXT_SIZE];
	int	 n;

	util_key_format(key, NODEKEY_PREFIX, k);
	n = snprintf(out, outlen, "{\"NodePublic\":\"%s\",\"Source\":\"%s\"}",
	    k, src);
	return n < 0 || (size_t)n >= outlen ? 0 : (size_t)n;
}

char *
auth_url_body_ident(const uint8_t key[32], const char *src,
    const struct policy_ident *id)
{
	cJSON	*o = cJSON_CreateObject(), *ij;
	char	 k[KEY_TEXT_SIZE], *s = NULL;

	if (o == NULL)
		return NULL;
	util_key_format(key, NODEKEY_PREFIX, k);
	cJSON_AddStringToObject(o, "NodePublic", k);
	cJSON_AddStringToObject(o, "Source", src);
	if ((ij = auth_ident_json(id)) != NULL)
		cJSON_AddItemToObject(o, "Identity", ij);
	s = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return s;
}

static void
hreq_free(struct hreq *h)
{
	free(h->h_postdyn);
	curl_slist_free_all(h->h_hdrs);
	free(h->h_body);
	free(h);
}

static void
done_cb(void *easy, int code, void *arg)
{
	struct hreq		*h = arg;
	struct auth_flight	*f = h->h_flight;
	long			 status = 0;
	enum auth_reason	 r;
	char			 ks[8];

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	util_key_short(f->f_key, ks);
	if (h->h_is_url) {
		r = auth_url_classify(code, status, h->h_body, h->h_len);
		if (r == AUTH_URL_UNREACHABLE &&
		    auth_conf_of(f->f_auth)->ac_url_fail_open) {
			log_info("admission controller unreachable (%s); "
			    "allowing client %s", curl_easy_strerror(code), ks);
			r = AUTH_OK;
		}
	} else {
		r = auth_tailscaled_classify(code, status, h->h_body,
		    h->h_len);
		if (r == AUTH_TAILSCALED_UNREACHABLE)
			log_info("verify-clients: tailscaled at %s: %s",
			    auth_socket_path(auth_conf_of(f->f_auth)),
			    curl_easy_strerror(code));
		else if (r == AUTH_TAILSCALED_TOO_OLD)
			log_warnx("verify-clients: tailscaled version is too "
			    "old: it does not know whois by node key");
		else if (r == AUTH_OK)
			r = auth_policy_decide(f, h->h_body, h->h_len);
	}
	hreq_free(h);
	auth_flight_step(f, r);
}

static CURL *
easy_common(struct hreq *h, const char *url, int64_t timeout_ms)
{
	CURL *e;

	if ((e = curl_easy_init()) == NULL)
		return NULL;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, h);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "derpd");
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	return e;
}

static void
start(struct auth_flight *f, CURL *e, struct hreq *h, const char *backend)
{
	int is_url = h->h_is_url;

	auth_count_backend_request(f->f_auth, backend);
	if (e == NULL || auth_curl_add(auth_curl_of(f->f_auth), e, done_cb,
	    h) == -1) {
		if (e != NULL)
			curl_easy_cleanup(e);
		hreq_free(h);
		log_warnx("admission: cannot start a %s request", backend);
		/* Not reaching the URL is what fail-open is for. */
		auth_flight_step(f, !is_url ? AUTH_TAILSCALED_UNREACHABLE :
		    auth_conf_of(f->f_auth)->ac_url_fail_open ? AUTH_OK :
		    AUTH_URL_UNREACHABLE);
	}
}

/* --- tailscaled ---------------------------------------------------- */

static bool
ts_enabled(const struct auth_conf *c)
{
	return c->ac_verify_clients;
}

static void
ts_check(struct auth_flight *f)
{
	const struct auth_conf	*c = auth_conf_of(f->f_auth);
	struct hreq		*h;
	CURL			*e = NULL;
	char			 url[200], hex[65];

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		auth_flight_step(f, AUTH_TAILSCALED_ERROR);
		return;
	}
	h->h_flight = f;
	util_hex_encode(f->f_key, 32, hex);
	/* The colon percent-encoded, as Go's client sends it. */
	snprintf(url, sizeof(url), "http://local-tailscaled.sock/localapi/v0/"
	    "whois?addr=nodekey%%3A%s", hex);
	if ((e = easy_common(h, url, c->ac_timeout_ms)) != NULL) {
		curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH,
		    auth_socket_path(c));
		/* tailscaled refuses requests with any other Host. */
		h->h_hdrs = curl_slist_append(NULL, "Host: local-tailscaled.sock");
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->h_hdrs);
	}
	start(f, e, h, "tailscaled");
}

const struct auth_backend auth_backend_tailscaled = {
	.ab_name = "tailscaled",
	.ab_remote = true,
	.ab_enabled = ts_enabled,
	.ab_check = ts_check,
};

/* --- admission URL ------------------------------------------------- */

static bool
url_enabled(const struct auth_conf *c)
{
	return c->ac_url[0] != '\0';
}

static int
url_init(struct auth *a, char *err, size_t errlen)
{
	const char *u = auth_conf_of(a)->ac_url;

	if (strncasecmp(u, "http://", 7) != 0 &&
	    strncasecmp(u, "https://", 8) != 0) {
		snprintf(err, errlen, "-verify-client-url: \"%s\" is not an "
		    "http(s) URL", u);
		return -1;
	}
	return 0;
}

static void
url_check(struct auth_flight *f)
{
	const struct auth_conf	*c = auth_conf_of(f->f_auth);
	struct hreq		*h;
	CURL			*e = NULL;
	size_t			 n;

	if ((h = calloc(1, sizeof(*h))) == NULL) {
		auth_flight_step(f, AUTH_URL_UNREACHABLE);
		return;
	}
	h->h_flight = f;
	h->h_is_url = 1;
	h->h_max = AUTH_URL_BODY_MAX;
	/* What tailscaled said, when it was asked first: the hook may use it. */
	if (f->f_ident != NULL && (h->h_postdyn = auth_url_body_ident(f->f_key,
	    f->f_src, f->f_ident)) != NULL)
		n = strlen(h->h_postdyn);
	else
		n = auth_url_body(h->h_post, sizeof(h->h_post), f->f_key,
		    f->f_src);
	if ((e = easy_common(h, c->ac_url, c->ac_timeout_ms)) != NULL) {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->h_postdyn != NULL ?
		    h->h_postdyn : h->h_post);
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)n);
		/* No Content-Type, like derper; no Expect: 100-continue. */
		h->h_hdrs = curl_slist_append(NULL, "Content-Type:");
		h->h_hdrs = curl_slist_append(h->h_hdrs, "Expect:");
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->h_hdrs);
		curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
		curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
		curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	}
	start(f, e, h, "url");
}

const struct auth_backend auth_backend_url = {
	.ab_name = "url",
	.ab_remote = true,
	.ab_enabled = url_enabled,
	.ab_init = url_init,
	.ab_check = url_check,
	.ab_fini = NULL,
};

/* --- test-policy: a whois and the policy, no cache, no counters ----- */

struct auth_dry {
	struct auth	*d_auth;
	struct hreq	 d_h;
	uint8_t		 d_key[32];
	auth_dry_cb	 d_done;	/* NULL once cancelled */
	void		*d_arg;
	struct cJSON	*d_res;		/* dry_from_api's, until delivered */
};

static void
dry_free(struct auth_dry *d)
{
	curl_slist_free_all(d->d_h.h_hdrs);
	free(d->d_h.h_body);
	free(d);
}

static void
dry_done(void *easy, int code, void *arg)
{
	struct auth_dry		*d = arg;
	long			 status = 0;
	enum auth_reason	 r;
	cJSON			*res;
	char			 k[KEY_TEXT_SIZE];

	if (d->d_done == NULL || code == CURLE_ABORTED_BY_CALLBACK) {
		if (d->d_done != NULL)
			d->d_done(d->d_arg, NULL);
		dry_free(d);
		return;
	}
	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	res = cJSON_CreateObject();
	util_key_format(d->d_key, NODEKEY_PREFIX, k);
	cJSON_AddStringToObject(res, "key", k);
	r = auth_tailscaled_classify(code, status, d->d_h.h_body,
	    d->d_h.h_len);
	cJSON_AddStringToObject(res, "tailscaled", auth_reason_name(r));
	if (r == AUTH_OK)
		r = auth_policy_explain(d->d_auth, d->d_h.h_body, d->d_h.h_len,
		    res);
	cJSON_AddStringToObject(res, "verdict", r == AUTH_OK ? "allow" :
	    "deny");
	cJSON_AddStringToObject(res, "reason", auth_reason_name(r));
	d->d_done(d->d_arg, res);
	dry_free(d);
}

/* Deliver a result made at once, later (the caller expects it later). */
static void
dry_later_cb(evutil_socket_t fd, short what, void *arg)
{
	struct auth_dry *d = arg;

	(void)fd;
	(void)what;
	if (d->d_done != NULL)
		d->d_done(d->d_arg, d->d_res);
	else
		cJSON_Delete(d->d_res);
	dry_free(d);
}

/* No tailscaled: the control plane's set answers, in memory. */
static struct auth_dry *
dry_from_api(struct auth *a, const uint8_t key[32], auth_dry_cb done,
    void *arg, char *err, size_t errlen)
{
	struct auth_dry		*d;
	enum auth_reason	 r;
	char			 k[KEY_TEXT_SIZE];
	const struct timeval	 now = { 0, 0 };

	if ((d = calloc(1, sizeof(*d))) == NULL ||
	    (d->d_res = cJSON_CreateObject()) == NULL) {
		free(d);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->d_auth = a;
	d->d_done = done;
	d->d_arg = arg;
	util_key_format(key, NODEKEY_PREFIX, k);
	cJSON_AddStringToObject(d->d_res, "key", k);
	r = auth_api_explain(a, key, d->d_res);
	cJSON_AddStringToObject(d->d_res, "verdict", r == AUTH_OK ? "allow" :
	    "deny");
	cJSON_AddStringToObject(d->d_res, "reason", auth_reason_name(r));
	if (event_base_once(auth_base(a), -1, EV_TIMEOUT, dry_later_cb, d,
	    &now) == -1) {
		cJSON_Delete(d->d_res);
		dry_free(d);
		snprintf(err, errlen, "cannot schedule the answer");
		return NULL;
	}
	return d;
}

struct auth_dry *
auth_test_policy(struct auth *a, const uint8_t key[32], auth_dry_cb done,
    void *arg, char *err, size_t errlen)
{
	const struct auth_conf	*c;
	struct auth_dry		*d;
	char			 url[200], hex[65];
	CURL			*e;

	if (a == NULL || !auth_policy_enabled(a)) {
		snprintf(err, errlen, "no admission policy "
		    "(-admission-policy with -verify-clients or "
		    "-verify-clients-api)");
		return NULL;
	}
	c = auth_conf_of(a);
	if (!c->ac_verify_clients)
		return dry_from_api(a, key, done, arg, err, errlen);
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	d->d_auth = a;
	memcpy(d->d_key, key, 32);
	d->d_done = done;
	d->d_arg = arg;
	util_hex_encode(key, 32, hex);
	snprintf(url, sizeof(url), "http://local-tailscaled.sock/localapi/v0/"
	    "whois?addr=nodekey%%3A%s", hex);
	if ((e = easy_common(&d->d_h, url, c->ac_timeout_ms)) == NULL)
		goto fail;
	curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, auth_socket_path(c));
	d->d_h.h_hdrs = curl_slist_append(NULL, "Host: local-tailscaled.sock");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, d->d_h.h_hdrs);
	if (auth_curl_add(auth_curl_of(a), e, dry_done, d) == 0)
		return d;
	curl_easy_cleanup(e);
fail:
	dry_free(d);
	snprintf(err, errlen, "cannot start a request to tailscaled");
	return NULL;
}

void
auth_test_policy_cancel(struct auth_dry *d)
{
	/* Its request runs on; dry_done frees it. */
	if (d != NULL)
		d->d_done = NULL;
}

/* --- startup self-check -------------------------------------------- */

struct selfcheck {
	struct auth	*sc_auth;
	struct hreq	 sc_h;
	int		 sc_phase;	/* 0 status, 1 whois of self */
	char		 sc_key[KEY_TEXT_SIZE];
};

static void	selfcheck_start(struct selfcheck *);

static void
selfcheck_done(void *easy, int code, void *arg)
{
	struct selfcheck	*sc = arg;
	const char		*sock = auth_socket_path(auth_conf_of(sc->sc_auth));
	long			 status = 0;
	cJSON			*j = NULL, *self, *pk, *st;
	uint8_t			 self_key[32];
	char			 state[64];

	curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
	if (code == CURLE_ABORTED_BY_CALLBACK)
		goto out;
	if (code != CURLE_OK) {
		log_warnx("verify-clients: cannot reach tailscaled at %s (%s); "
		    "every client is refused until it is up", sock,
		    curl_easy_strerror(code));
		goto out;
	}
	if (sc->sc_phase == 0) {
		if (status != 200 || sc->sc_h.h_body == NULL ||
		    (j = cJSON_Parse(sc->sc_h.h_body)) == NULL) {
			log_warnx("verify-clients: tailscaled at %s answered "
			    "status %ld to /localapi/v0/status", sock, status);
			goto out;
		}
		st = cJSON_GetObjectItem(j, "BackendState");
		self = cJSON_GetObjectItem(j, "Self");
		pk = self ? cJSON_GetObjectItem(self, "PublicKey") : NULL;
		if (!cJSON_IsString(pk) || util_key_parse(pk->valuestring,
		    NODEKEY_PREFIX, self_key) != 0) {
			/* Whatever tailscaled says goes into one log line. */
			log_warnx("verify-clients: tailscaled at %s is not "
			    "logged in (state %s); clients will be refused",
			    sock, util_log_safe(cJSON_IsString(st) ?
			    st->valuestring : "?", state, sizeof(state)));
			goto out;
		}
		/* Re-formatted: only a well-formed key goes into the URL. */
		util_key_format(self_key, NODEKEY_PREFIX, sc->sc_key);
		cJSON_Delete(j);
		j = NULL;
		free(sc->sc_h.h_body);
		sc->sc_h.h_body = NULL;
		sc->sc_h.h_len = 0;
		sc->sc_phase = 1;
		selfcheck_start(sc);
		return;
	}
	switch (auth_tailscaled_classify(code, status, sc->sc_h.h_body,
	    sc->sc_h.h_len)) {
	case AUTH_OK:
		log_info("verify-clients: tailscaled at %s verifies its own "
		    "node key; admission ready", sock);
		break;
	case AUTH_TAILSCALED_TOO_OLD:
		log_warnx("verify-clients: tailscaled at %s is too old (no "
		    "whois by node key); upgrade it, every client is refused",
		    sock);
		break;
	default:
		log_warnx("verify-clients: tailscaled at %s does not verify its "
		    "own node key (status %ld); clients may be refused", sock,
		    status);
		break;
	}
out:
	cJSON_Delete(j);
	curl_slist_free_all(sc->sc_h.h_hdrs);
	free(sc->sc_h.h_body);
	free(sc);
}

static void
selfcheck_start(struct selfcheck *sc)
{
	const struct auth_conf	*c = auth_conf_of(sc->sc_auth);
	char			 url[200];
	CURL			*e;

	if (sc->sc_phase == 0)
		snprintf(url, sizeof(url), "http://local-tailscaled.sock/"
		    "localapi/v0/status?peers=false");
	else
		snprintf(url, sizeof(url), "http://local-tailscaled.sock/"
		    "localapi/v0/whois?addr=nodekey%%3A%s", sc->sc_key + 8);
	if ((e = easy_common(&sc->sc_h, url, c->ac_timeout_ms)) == NULL)
		goto fail;
	curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, auth_socket_path(c));
	if (sc->sc_h.h_hdrs == NULL)
		sc->sc_h.h_hdrs = curl_slist_append(NULL,
		    "Host: local-tailscaled.sock");
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, sc->sc_h.h_hdrs);
	if (auth_curl_add(auth_curl_of(sc->sc_auth), e, selfcheck_done,
	    sc) == 0)
		return;
	curl_easy_cleanup(e);
fail:
	curl_slist_free_all(sc->sc_h.h_hdrs);
	free(sc->sc_h.h_body);
	free(sc);
}

void
auth_selfcheck(struct auth *a)
{
	struct selfcheck *sc;

	if (!auth_conf_of(a)->ac_verify_clients ||
	    (sc = calloc(1, sizeof(*sc))) == NULL)
		return;
	sc->sc_auth = a;
	selfcheck_start(sc);
}
