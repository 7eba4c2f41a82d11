/* SPDX-License-Identifier: ISC */
/*
 * apiset.c: the control plane's node keys (apiset.h). Pure: bytes in,
 * structs out; no I/O, no clock (callers pass now).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "apiset.h"
#include "util.h"

/* Most tags or addresses kept for one device. */
#define API_LIST_MAX	64
#define STATE_VERSION	1

static const cJSON *
item(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name);
}

static const char *
str_of(const cJSON *o, const char *name)
{
	const cJSON *v = item(o, name);

	return cJSON_IsString(v) && v->valuestring != NULL ?
	    v->valuestring : NULL;
}

static char *
dup_secret(const char *s)
{
	return s != NULL && *s != '\0' ? strdup(s) : NULL;
}

static void
free_secret(char **s)
{
	if (*s != NULL) {
		sodium_memzero(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}

void
api_creds_clear(struct api_creds *c)
{
	free_secret(&c->ac_api_key);
	free_secret(&c->ac_client_id);
	free_secret(&c->ac_client_secret);
}

int
api_creds_parse(enum api_kind kind, const char *buf, size_t len,
    struct api_creds *c, char *err, size_t errlen)
{
	cJSON		*j;
	const char	*key, *id, *secret;
	int		 rc = -1;

	memset(c, 0, sizeof(*c));
	if (len > API_SMALL_MAX) {
		snprintf(err, errlen, "larger than %u bytes", API_SMALL_MAX);
		return -1;
	}
	if ((j = cJSON_ParseWithLength(buf, len)) == NULL ||
	    !cJSON_IsObject(j)) {
		snprintf(err, errlen, "not a JSON object");
		goto out;
	}
	key = str_of(j, "api_key");
	id = str_of(j, "oauth_client_id");
	secret = str_of(j, "oauth_client_secret");
	if (key != NULL && *key != '\0') {
		if (id != NULL || secret != NULL) {
			snprintf(err, errlen, "give either \"api_key\" or "
			    "\"oauth_client_id\" and \"oauth_client_secret\", "
			    "not both");
			goto out;
		}
		if ((c->ac_api_key = dup_secret(key)) == NULL)
			goto nomem;
	} else if (id != NULL && *id != '\0' && secret != NULL &&
	    *secret != '\0') {
		if (kind == API_HEADSCALE) {
			snprintf(err, errlen, "headscale takes an \"api_key\"; "
			    "OAuth clients are Tailscale's");
			goto out;
		}
		if ((c->ac_client_id = dup_secret(id)) == NULL ||
		    (c->ac_client_secret = dup_secret(secret)) == NULL)
			goto nomem;
	} else {
		snprintf(err, errlen, "no credentials: want {\"api_key\": "
		    "\"...\"}%s", kind == API_HEADSCALE ? "" : " or "
		    "{\"oauth_client_id\": \"...\", \"oauth_client_secret\": "
		    "\"...\"}");
		goto out;
	}
	/* A secret that would break the Authorization header line. */
	for (const char *s = c->ac_api_key != NULL ? c->ac_api_key :
	    c->ac_client_secret; *s != '\0'; s++)
		if ((unsigned char)*s < 0x21 || *s == 0x7f) {
			snprintf(err, errlen, "the secret has a space or a "
			    "control character");
			goto out;
		}
	rc = 0;
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
out:
	if (j != NULL) {
		/* Wipe cJSON's copies of the secrets before freeing them. */
		const cJSON *v;
		cJSON_ArrayForEach(v, j)
			if (cJSON_IsString(v) && v->valuestring != NULL)
				sodium_memzero(v->valuestring,
				    strlen(v->valuestring));
		cJSON_Delete(j);
	}
	if (rc == -1)
		api_creds_clear(c);
	return rc;
}

int
api_token_parse(const char *body, size_t len, char **token,
    int64_t *expires_in, char *err, size_t errlen)
{
	cJSON		*j;
	const char	*t, *type;
	const cJSON	*e;
	int		 rc = -1;

	*token = NULL;
	*expires_in = 3600;
	if (len > API_SMALL_MAX ||
	    (j = cJSON_ParseWithLength(body, len)) == NULL) {
		snprintf(err, errlen, "token answer is not JSON");
		return -1;
	}
	t = str_of(j, "access_token");
	type = str_of(j, "token_type");
	e = item(j, "expires_in");
	if (t == NULL || *t == '\0')
		snprintf(err, errlen, "token answer has no access_token");
	else if (type != NULL && strcasecmp(type, "bearer") != 0)
		snprintf(err, errlen, "token type is not Bearer");
	else if (e != NULL && (!cJSON_IsNumber(e) || e->valuedouble < 1 ||
	    e->valuedouble > 366 * 86400.0))
		snprintf(err, errlen, "token answer has a bad expires_in");
	else {
		for (const char *s = t; *s != '\0'; s++)
			if ((unsigned char)*s < 0x21 || *s == 0x7f) {
				snprintf(err, errlen, "token has a control "
				    "character");
				goto out;
			}
		if ((*token = strdup(t)) == NULL) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		if (e != NULL)
			*expires_in = (int64_t)e->valuedouble;
		rc = 0;
	}
out:
	{
		/* cJSON's copy of the token, wiped before it is freed. */
		cJSON *tv = cJSON_GetObjectItemCaseSensitive(j, "access_token");
		if (cJSON_IsString(tv) && tv->valuestring != NULL)
			sodium_memzero(tv->valuestring, strlen(tv->valuestring));
	}
	cJSON_Delete(j);
	return rc;
}

/* --- the set ------------------------------------------------------- */

static void
dev_cleanup(struct api_dev *d)
{
	policy_ident_cleanup(&d->ad_id);
}

void
api_set_free(struct api_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->as_n; i++)
		dev_cleanup(&s->as_devs[i]);
	free(s->as_devs);
	free(s);
}

/* Strings of a JSON list into *out (appended); non-strings skipped. */
static int
strings_add(const cJSON *v, char ***out, size_t *n)
{
	const cJSON *it;

	if (!cJSON_IsArray(v))
		return 0;
	cJSON_ArrayForEach(it, v) {
		char **nl;

		if (*n >= API_LIST_MAX)
			break;
		if (!cJSON_IsString(it) || it->valuestring[0] == '\0')
			continue;
		/* headscale may list a tag in two of its fields. */
		for (size_t i = 0; i < *n; i++)
			if (strcmp((*out)[i], it->valuestring) == 0)
				goto next;
		if ((nl = realloc(*out, (*n + 1) * sizeof(*nl))) == NULL)
			return -1;
		*out = nl;
		if ((nl[*n] = strdup(it->valuestring)) == NULL)
			return -1;
		(*n)++;
next:		;
	}
	return 0;
}

/* "100.64.0.1", "fd7a::1" (a "/bits" suffix is ignored). */
static int
addrs_add(const cJSON *v, struct policy_ident *id)
{
	const cJSON *it;

	if (!cJSON_IsArray(v))
		return 0;
	cJSON_ArrayForEach(it, v) {
		struct policy_addr	*na, a;
		char			 buf[64], *slash;

		if (id->pi_naddrs >= API_LIST_MAX)
			break;
		if (!cJSON_IsString(it) ||
		    strlen(it->valuestring) >= sizeof(buf))
			continue;
		memcpy(buf, it->valuestring, strlen(it->valuestring) + 1);
		if ((slash = strchr(buf, '/')) != NULL)
			*slash = '\0';
		memset(&a, 0, sizeof(a));
		if (inet_pton(AF_INET, buf, a.pa_addr) == 1)
			a.pa_family = AF_INET;
		else if (inet_pton(AF_INET6, buf, a.pa_addr) == 1)
			a.pa_family = AF_INET6;
		else
			continue;
		if ((na = realloc(id->pi_addrs, (id->pi_naddrs + 1) *
		    sizeof(*na))) == NULL)
			return -1;
		id->pi_addrs = na;
		na[id->pi_naddrs++] = a;
	}
	return 0;
}

static int
set_str(char **dst, const char *s, bool strip_dot)
{
	size_t n;

	if (s == NULL || *s == '\0')
		return 0;
	if ((*dst = strdup(s)) == NULL)
		return -1;
	n = strlen(*dst);
	if (strip_dot && n > 0 && (*dst)[n - 1] == '.')
		(*dst)[n - 1] = '\0';
	return 0;
}

/*
 * An RFC 3339 time, or 0 for absent, blank, null and Go's zero time. A
 * fraction of a second rounds up: a key is not refused before its time.
 */
static int64_t
time_of(const cJSON *o, const char *name)
{
	const char	*s = str_of(o, name), *f;
	int64_t		 t;

	if (s == NULL || policy_parse_time(s, &t) == -1 || t <= 0)
		return 0;
	if ((f = strchr(s, '.')) != NULL)
		for (f++; *f >= '0' && *f <= '9'; f++)
			if (*f != '0')
				return t + 1;
	return t;
}

/* One Tailscale Device. 1 kept, 0 skipped, -1 no memory. */
static int
dev_tailscale(const cJSON *o, struct api_dev *d)
{
	const cJSON *v;

	memset(d, 0, sizeof(*d));
	if (str_of(o, "nodeKey") == NULL ||
	    util_key_parse(str_of(o, "nodeKey"), "nodekey:", d->ad_key) == -1)
		return 0;
	d->ad_authorized = cJSON_IsTrue(item(o, "authorized"));
	v = item(o, "keyExpiryDisabled");
	d->ad_expires = cJSON_IsTrue(v) ? 0 : time_of(o, "expires");
	d->ad_id.pi_key_expiry = d->ad_expires;
	if (set_str(&d->ad_id.pi_node, str_of(o, "name") != NULL ?
	    str_of(o, "name") : str_of(o, "hostname"), true) == -1 ||
	    set_str(&d->ad_id.pi_user, str_of(o, "user"), false) == -1 ||
	    strings_add(item(o, "tags"), &d->ad_id.pi_tags,
	    &d->ad_id.pi_ntags) == -1 ||
	    addrs_add(item(o, "addresses"), &d->ad_id) == -1)
		return -1;
	return 1;
}

/* One headscale Node (v1; tags from 0.27 on, the three lists before). */
static int
dev_headscale(const cJSON *o, struct api_dev *d)
{
	const cJSON	*u;
	const char	*login = NULL;

	memset(d, 0, sizeof(*d));
	if (str_of(o, "nodeKey") == NULL ||
	    util_key_parse(str_of(o, "nodeKey"), "nodekey:", d->ad_key) == -1)
		return 0;
	/* headscale lists registered nodes only: nothing to authorize. */
	d->ad_authorized = true;
	d->ad_expires = time_of(o, "expiry");
	d->ad_id.pi_key_expiry = d->ad_expires;
	u = item(o, "user");
	if (cJSON_IsObject(u))
		login = str_of(u, "name") != NULL && *str_of(u, "name") ?
		    str_of(u, "name") : str_of(u, "email");
	if (set_str(&d->ad_id.pi_node, str_of(o, "givenName") != NULL &&
	    *str_of(o, "givenName") ? str_of(o, "givenName") :
	    str_of(o, "name"), true) == -1 ||
	    set_str(&d->ad_id.pi_user, login, false) == -1 ||
	    strings_add(item(o, "tags"), &d->ad_id.pi_tags,
	    &d->ad_id.pi_ntags) == -1 ||
	    strings_add(item(o, "forcedTags"), &d->ad_id.pi_tags,
	    &d->ad_id.pi_ntags) == -1 ||
	    strings_add(item(o, "validTags"), &d->ad_id.pi_tags,
	    &d->ad_id.pi_ntags) == -1 ||
	    addrs_add(item(o, "ipAddresses"), &d->ad_id) == -1)
		return -1;
	return 1;
}

/* One state file entry. */
static int
dev_state(const cJSON *o, struct api_dev *d)
{
	const cJSON *v;

	memset(d, 0, sizeof(*d));
	if (str_of(o, "key") == NULL ||
	    util_key_parse(str_of(o, "key"), "nodekey:", d->ad_key) == -1)
		return 0;
	d->ad_authorized = cJSON_IsTrue(item(o, "authorized"));
	v = item(o, "expires");
	/* Past 1e15 s (31 million years) is as good as never. */
	d->ad_expires = cJSON_IsNumber(v) && v->valuedouble >= 1 &&
	    v->valuedouble < 1e15 ? (int64_t)v->valuedouble : 0;
	d->ad_id.pi_key_expiry = d->ad_expires;
	if (set_str(&d->ad_id.pi_node, str_of(o, "node"), false) == -1 ||
	    set_str(&d->ad_id.pi_user, str_of(o, "user"), false) == -1 ||
	    strings_add(item(o, "tags"), &d->ad_id.pi_tags,
	    &d->ad_id.pi_ntags) == -1 ||
	    addrs_add(item(o, "addresses"), &d->ad_id) == -1)
		return -1;
	return 1;
}

static int
dev_cmp(const void *a, const void *b)
{
	return memcmp(((const struct api_dev *)a)->ad_key,
	    ((const struct api_dev *)b)->ad_key, 32);
}

/*
 * The devices of list (an array) through one entry parser, sorted. A
 * key listed twice keeps its first entry that is admitted, if any.
 */
static struct api_set *
set_build(const cJSON *list, int (*one)(const cJSON *, struct api_dev *),
    char *err, size_t errlen)
{
	struct api_set	*s;
	const cJSON	*it;
	size_t		 cap = (size_t)cJSON_GetArraySize(list), w;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (cap > 0 && (s->as_devs = calloc(cap, sizeof(*s->as_devs))) ==
	    NULL))
		goto nomem;
	cJSON_ArrayForEach(it, list) {
		int rc;

		if (!cJSON_IsObject(it)) {
			s->as_skipped++;
			continue;
		}
		rc = one(it, &s->as_devs[s->as_n]);
		if (rc == -1) {
			dev_cleanup(&s->as_devs[s->as_n]);
			goto nomem;
		}
		if (rc == 0) {
			dev_cleanup(&s->as_devs[s->as_n]);
			s->as_skipped++;
			continue;
		}
		s->as_n++;
	}
	if (s->as_n > 1)
		qsort(s->as_devs, s->as_n, sizeof(*s->as_devs), dev_cmp);
	/* Duplicates: keep one entry per key, an authorized one first. */
	for (size_t r = w = 0; r < s->as_n; r++) {
		if (w > 0 && memcmp(s->as_devs[w - 1].ad_key,
		    s->as_devs[r].ad_key, 32) == 0) {
			if (!s->as_devs[w - 1].ad_authorized &&
			    s->as_devs[r].ad_authorized) {
				dev_cleanup(&s->as_devs[w - 1]);
				s->as_devs[w - 1] = s->as_devs[r];
			} else
				dev_cleanup(&s->as_devs[r]);
			s->as_skipped++;
			continue;
		}
		s->as_devs[w++] = s->as_devs[r];
	}
	s->as_n = w;
	return s;
nomem:
	snprintf(err, errlen, "out of memory");
	api_set_free(s);
	return NULL;
}

struct api_set *
api_set_parse(enum api_kind kind, const char *body, size_t len, char *err,
    size_t errlen)
{
	cJSON		*j;
	const cJSON	*list;
	struct api_set	*s = NULL;
	const char	*field = kind == API_HEADSCALE ? "nodes" : "devices";

	if (len > API_BODY_MAX) {
		snprintf(err, errlen, "list larger than %u bytes", API_BODY_MAX);
		return NULL;
	}
	if ((j = cJSON_ParseWithLength(body, len)) == NULL ||
	    !cJSON_IsObject(j)) {
		snprintf(err, errlen, "list is not a JSON object");
		cJSON_Delete(j);
		return NULL;
	}
	list = item(j, field);
	if (cJSON_IsNull(list) && kind == API_HEADSCALE) {
		/* Older protojson leaves an empty list out or null. */
		s = calloc(1, sizeof(*s));
		if (s == NULL)
			snprintf(err, errlen, "out of memory");
	} else if (!cJSON_IsArray(list))
		snprintf(err, errlen, "list has no \"%s\" array", field);
	else
		s = set_build(list, kind == API_HEADSCALE ? dev_headscale :
		    dev_tailscale, err, errlen);
	cJSON_Delete(j);
	return s;
}

const struct api_dev *
api_set_find(const struct api_set *s, const uint8_t key[32])
{
	size_t lo = 0, hi;

	if (s == NULL)
		return NULL;
	hi = s->as_n;
	while (lo < hi) {
		size_t	mid = lo + (hi - lo) / 2;
		int	c = memcmp(key, s->as_devs[mid].ad_key, 32);

		if (c == 0)
			return &s->as_devs[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

enum api_verdict
api_dev_judge(const struct api_dev *d, int64_t now)
{
	if (!d->ad_authorized)
		return API_UNAUTHORIZED;
	if (d->ad_expires > 0 && d->ad_expires <= now)
		return API_EXPIRED;
	return API_ADMIT;
}

size_t
api_set_admittable(const struct api_set *s, int64_t now)
{
	size_t n = 0;

	for (size_t i = 0; s != NULL && i < s->as_n; i++)
		if (api_dev_judge(&s->as_devs[i], now) == API_ADMIT)
			n++;
	return n;
}

size_t
api_set_revoked(const struct api_set *o, int64_t onow,
    const struct api_set *n, int64_t nnow)
{
	size_t i = 0, j = 0, gone = 0;

	if (o == NULL)
		return 0;
	/* Both sorted: one merge walk. */
	for (; i < o->as_n; i++) {
		const struct api_dev *d = &o->as_devs[i];

		if (api_dev_judge(d, onow) != API_ADMIT)
			continue;
		while (n != NULL && j < n->as_n &&
		    memcmp(n->as_devs[j].ad_key, d->ad_key, 32) < 0)
			j++;
		if (n == NULL || j == n->as_n ||
		    memcmp(n->as_devs[j].ad_key, d->ad_key, 32) != 0 ||
		    api_dev_judge(&n->as_devs[j], nnow) != API_ADMIT)
			gone++;
	}
	return gone;
}

static bool
str_eq(const char *a, const char *b)
{
	return strcmp(a == NULL ? "" : a, b == NULL ? "" : b) == 0;
}

static bool
ident_equal(const struct policy_ident *a, const struct policy_ident *b)
{
	if (!str_eq(a->pi_node, b->pi_node) || !str_eq(a->pi_user, b->pi_user)
	    || a->pi_ntags != b->pi_ntags || a->pi_naddrs != b->pi_naddrs)
		return false;
	for (size_t i = 0; i < a->pi_ntags; i++)
		if (strcmp(a->pi_tags[i], b->pi_tags[i]) != 0)
			return false;
	for (size_t i = 0; i < a->pi_naddrs; i++)
		if (a->pi_addrs[i].pa_family != b->pi_addrs[i].pa_family ||
		    memcmp(a->pi_addrs[i].pa_addr, b->pi_addrs[i].pa_addr,
		    16) != 0)
			return false;
	return true;
}

bool
api_set_equal(const struct api_set *a, const struct api_set *b)
{
	size_t na = a != NULL ? a->as_n : 0, nb = b != NULL ? b->as_n : 0;

	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		const struct api_dev *x = &a->as_devs[i], *y = &b->as_devs[i];

		if (memcmp(x->ad_key, y->ad_key, 32) != 0 ||
		    x->ad_authorized != y->ad_authorized ||
		    x->ad_expires != y->ad_expires ||
		    !ident_equal(&x->ad_id, &y->ad_id))
			return false;
	}
	return true;
}

/* --- the state file ------------------------------------------------ */

char *
api_state_format(const struct api_set *s, const char *api, const char *url,
    const char *tailnet, int64_t fetched, size_t *len)
{
	cJSON	*j = cJSON_CreateObject(), *arr;
	char	*out = NULL, k[KEY_TEXT_SIZE], ab[64];

	if (j == NULL)
		return NULL;
	if (cJSON_AddNumberToObject(j, "version", STATE_VERSION) == NULL ||
	    cJSON_AddStringToObject(j, "api", api) == NULL ||
	    cJSON_AddStringToObject(j, "url", url) == NULL ||
	    cJSON_AddStringToObject(j, "tailnet", tailnet) == NULL ||
	    cJSON_AddNumberToObject(j, "fetched", (double)fetched) == NULL ||
	    (arr = cJSON_AddArrayToObject(j, "devices")) == NULL)
		goto out;
	for (size_t i = 0; s != NULL && i < s->as_n; i++) {
		const struct api_dev	*d = &s->as_devs[i];
		cJSON			*o = cJSON_CreateObject(), *l;

		if (o == NULL)
			goto out;
		cJSON_AddItemToArray(arr, o);
		util_key_format(d->ad_key, "nodekey:", k);
		if (cJSON_AddStringToObject(o, "key", k) == NULL ||
		    cJSON_AddBoolToObject(o, "authorized", d->ad_authorized) ==
		    NULL || cJSON_AddNumberToObject(o, "expires",
		    (double)d->ad_expires) == NULL ||
		    (d->ad_id.pi_node != NULL && cJSON_AddStringToObject(o,
		    "node", d->ad_id.pi_node) == NULL) ||
		    (d->ad_id.pi_user != NULL && cJSON_AddStringToObject(o,
		    "user", d->ad_id.pi_user) == NULL) ||
		    (l = cJSON_AddArrayToObject(o, "tags")) == NULL)
			goto out;
		for (size_t t = 0; t < d->ad_id.pi_ntags; t++)
			cJSON_AddItemToArray(l,
			    cJSON_CreateString(d->ad_id.pi_tags[t]));
		if ((l = cJSON_AddArrayToObject(o, "addresses")) == NULL)
			goto out;
		for (size_t t = 0; t < d->ad_id.pi_naddrs; t++) {
			policy_addr_format(&d->ad_id.pi_addrs[t], ab,
			    sizeof(ab));
			cJSON_AddItemToArray(l, cJSON_CreateString(ab));
		}
	}
	if ((out = cJSON_PrintUnformatted(j)) != NULL)
		*len = strlen(out);
out:
	cJSON_Delete(j);
	return out;
}

struct api_set *
api_state_parse(const char *buf, size_t len, const char *api,
    const char *url, const char *tailnet, int64_t *fetched, char *err,
    size_t errlen)
{
	cJSON		*j = NULL;
	const cJSON	*v, *list;
	struct api_set	*s = NULL;

	if (len > API_BODY_MAX ||
	    (j = cJSON_ParseWithLength(buf, len)) == NULL ||
	    !cJSON_IsObject(j)) {
		snprintf(err, errlen, "not a derpd admission state file");
		cJSON_Delete(j);
		return NULL;
	}
	v = item(j, "version");
	list = item(j, "devices");
	if (!cJSON_IsNumber(v) || v->valuedouble != STATE_VERSION ||
	    !cJSON_IsArray(list))
		snprintf(err, errlen, "not a version %d derpd admission state "
		    "file", STATE_VERSION);
	else if (!str_eq(str_of(j, "api"), api) ||
	    !str_eq(str_of(j, "url"), url) ||
	    !str_eq(str_of(j, "tailnet"), tailnet))
		snprintf(err, errlen, "it holds the set of %s %s (tailnet %s), "
		    "not this one", str_of(j, "api") ? str_of(j, "api") : "?",
		    str_of(j, "url") ? str_of(j, "url") : "?",
		    str_of(j, "tailnet") ? str_of(j, "tailnet") : "?");
	else if (!cJSON_IsNumber(item(j, "fetched")) ||
	    !(item(j, "fetched")->valuedouble >= 0 &&
	    item(j, "fetched")->valuedouble < 1e15))
		snprintf(err, errlen, "no fetch time");
	else if ((s = set_build(list, dev_state, err, errlen)) != NULL)
		*fetched = (int64_t)item(j, "fetched")->valuedouble;
	cJSON_Delete(j);
	return s;
}

int
api_ident_copy(struct policy_ident *dst, const struct policy_ident *src)
{
	memset(dst, 0, sizeof(*dst));
	if ((src->pi_node != NULL &&
	    (dst->pi_node = strdup(src->pi_node)) == NULL) ||
	    (src->pi_user != NULL &&
	    (dst->pi_user = strdup(src->pi_user)) == NULL))
		goto fail;
	if (src->pi_ntags > 0) {
		if ((dst->pi_tags = calloc(src->pi_ntags,
		    sizeof(*dst->pi_tags))) == NULL)
			goto fail;
		for (; dst->pi_ntags < src->pi_ntags; dst->pi_ntags++)
			if ((dst->pi_tags[dst->pi_ntags] =
			    strdup(src->pi_tags[dst->pi_ntags])) == NULL)
				goto fail;
	}
	if (src->pi_naddrs > 0) {
		if ((dst->pi_addrs = calloc(src->pi_naddrs,
		    sizeof(*dst->pi_addrs))) == NULL)
			goto fail;
		memcpy(dst->pi_addrs, src->pi_addrs,
		    src->pi_naddrs * sizeof(*dst->pi_addrs));
		dst->pi_naddrs = src->pi_naddrs;
	}
	dst->pi_key_expiry = src->pi_key_expiry;
	dst->pi_expired = src->pi_expired;
	return 0;
fail:
	policy_ident_cleanup(dst);
	return -1;
}
