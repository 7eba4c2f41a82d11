/* SPDX-License-Identifier: ISC */
/* acme_msg.c: ACME message parsers and encodings; pure (see acme_msg.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "acme_msg.h"
#include "util.h"

#define ACME_JSON_MAX	(256 * 1024)

static cJSON *
parse(const char *json, size_t len)
{
	cJSON	*o;

	if (json == NULL || len == 0 || len > ACME_JSON_MAX)
		return NULL;
	o = cJSON_ParseWithLength(json, len);
	if (o != NULL && !cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* Copy a string member; -1 when present but not a string or too long. */
static int
get_str(const cJSON *o, const char *name, char *out, size_t outlen,
    bool required)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, name);

	out[0] = '\0';
	if (v == NULL)
		return required ? -1 : 0;
	if (!cJSON_IsString(v) || v->valuestring == NULL ||
	    util_strlcpy(out, v->valuestring, outlen) >= outlen) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}

int
acme_parse_directory(const char *json, size_t len, struct acme_dir *d)
{
	cJSON		*o;
	const cJSON	*meta, *v;
	int		 rc = -1;

	memset(d, 0, sizeof(*d));
	if ((o = parse(json, len)) == NULL)
		return -1;
	if (get_str(o, "newNonce", d->ad_new_nonce, sizeof(d->ad_new_nonce),
	    true) == -1 || get_str(o, "newAccount", d->ad_new_account,
	    sizeof(d->ad_new_account), true) == -1 || get_str(o, "newOrder",
	    d->ad_new_order, sizeof(d->ad_new_order), true) == -1)
		goto out;
	meta = cJSON_GetObjectItemCaseSensitive(o, "meta");
	if (cJSON_IsObject(meta)) {
		v = cJSON_GetObjectItemCaseSensitive(meta,
		    "externalAccountRequired");
		d->ad_eab_required = cJSON_IsTrue(v);
		v = cJSON_GetObjectItemCaseSensitive(meta, "profiles");
		d->ad_profile_shortlived = cJSON_IsObject(v) &&
		    cJSON_GetObjectItemCaseSensitive(v, "shortlived") != NULL;
	}
	rc = 0;
out:
	cJSON_Delete(o);
	return rc;
}

int
acme_parse_order(const char *json, size_t len, struct acme_order *ord)
{
	cJSON		*o;
	const cJSON	*a, *v;
	int		 rc = -1;

	memset(ord, 0, sizeof(*ord));
	if ((o = parse(json, len)) == NULL)
		return -1;
	if (get_str(o, "status", ord->ao_status, sizeof(ord->ao_status),
	    true) == -1 || get_str(o, "finalize", ord->ao_finalize,
	    sizeof(ord->ao_finalize), true) == -1 || get_str(o, "certificate",
	    ord->ao_certificate, sizeof(ord->ao_certificate), false) == -1)
		goto out;
	a = cJSON_GetObjectItemCaseSensitive(o, "authorizations");
	if (!cJSON_IsArray(a))
		goto out;
	cJSON_ArrayForEach(v, a) {
		if (ord->ao_nauthz == ACME_MAX_AUTHZ || !cJSON_IsString(v) ||
		    util_strlcpy(ord->ao_authz[ord->ao_nauthz],
		    v->valuestring, ACME_URL_MAX) >= ACME_URL_MAX)
			goto out;
		ord->ao_nauthz++;
	}
	rc = 0;
out:
	cJSON_Delete(o);
	return rc;
}

int
acme_parse_authz(const char *json, size_t len, struct acme_authz *az)
{
	cJSON		*o;
	const cJSON	*id, *a, *v, *err;
	int		 rc = -1;

	memset(az, 0, sizeof(*az));
	if ((o = parse(json, len)) == NULL)
		return -1;
	if (get_str(o, "status", az->az_status, sizeof(az->az_status),
	    true) == -1)
		goto out;
	id = cJSON_GetObjectItemCaseSensitive(o, "identifier");
	if (!cJSON_IsObject(id) || get_str(id, "type", az->az_ident_type,
	    sizeof(az->az_ident_type), true) == -1 || get_str(id, "value",
	    az->az_ident, sizeof(az->az_ident), true) == -1)
		goto out;
	a = cJSON_GetObjectItemCaseSensitive(o, "challenges");
	if (!cJSON_IsArray(a))
		goto out;
	cJSON_ArrayForEach(v, a) {
		struct acme_chal *c;
		if (az->az_nchal == ACME_MAX_CHAL || !cJSON_IsObject(v))
			goto out;
		c = &az->az_chal[az->az_nchal];
		if (get_str(v, "type", c->ac_type, sizeof(c->ac_type),
		    true) == -1 || get_str(v, "url", c->ac_url,
		    sizeof(c->ac_url), true) == -1 || get_str(v, "token",
		    c->ac_token, sizeof(c->ac_token), false) == -1 ||
		    get_str(v, "status", c->ac_status, sizeof(c->ac_status),
		    false) == -1)
			goto out;
		err = cJSON_GetObjectItemCaseSensitive(v, "error");
		if (cJSON_IsObject(err) && az->az_error[0] == '\0')
			(void)get_str(err, "detail", az->az_error,
			    sizeof(az->az_error), false);
		az->az_nchal++;
	}
	rc = 0;
out:
	cJSON_Delete(o);
	return rc;
}

int
acme_parse_problem(const char *json, size_t len, struct acme_problem *p)
{
	cJSON	*o;
	int	 rc = -1;

	memset(p, 0, sizeof(*p));
	if ((o = parse(json, len)) == NULL)
		return -1;
	if (get_str(o, "type", p->ap_type, sizeof(p->ap_type), true) == 0) {
		/* A detail too long to keep is cut, not refused. */
		const cJSON *d = cJSON_GetObjectItemCaseSensitive(o, "detail");
		if (cJSON_IsString(d) && d->valuestring != NULL)
			util_strlcpy(p->ap_detail, d->valuestring,
			    sizeof(p->ap_detail));
		rc = 0;
	}
	cJSON_Delete(o);
	return rc;
}

const char *
acme_problem_short(const char *type)
{
	static const char *const known[] = {
		"accountDoesNotExist", "alreadyRevoked", "badCSR", "badNonce",
		"badPublicKey", "badRevocationReason", "badSignatureAlgorithm",
		"caa", "compound", "connection", "dns", "externalAccountRequired",
		"incorrectResponse", "invalidContact", "invalidProfile",
		"malformed", "orderNotReady", "rateLimited", "rejectedIdentifier",
		"serverInternal", "tls", "unauthorized", "unsupportedContact",
		"unsupportedIdentifier", "userActionRequired",
	};
	static const char prefix[] = "urn:ietf:params:acme:error:";

	if (type == NULL || strncmp(type, prefix, sizeof(prefix) - 1) != 0)
		return "other";
	type += sizeof(prefix) - 1;
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(type, known[i]) == 0)
			return known[i];
	return "other";
}

static const char b64url_tab[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t
acme_b64url(const uint8_t *in, size_t n, char *out, size_t outlen)
{
	size_t	 need = (n / 3) * 4 + (n % 3 == 0 ? 0 : n % 3 + 1), j = 0;

	if (outlen < need + 1)
		return 0;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		size_t left = n - i;
		if (left > 1)
			v |= (uint32_t)in[i + 1] << 8;
		if (left > 2)
			v |= in[i + 2];
		out[j++] = b64url_tab[(v >> 18) & 63];
		out[j++] = b64url_tab[(v >> 12) & 63];
		if (left > 1)
			out[j++] = b64url_tab[(v >> 6) & 63];
		if (left > 2)
			out[j++] = b64url_tab[v & 63];
	}
	out[j] = '\0';
	return j;
}

static int
b64_val(char c, bool url)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == (url ? '-' : '+'))
		return 62;
	if (c == (url ? '_' : '/'))
		return 63;
	return -1;
}

/* One alphabet; padding required (std) or refused (url). */
static int
b64_decode_one(const char *in, bool url, uint8_t *out, size_t outlen)
{
	size_t	 len = strlen(in), n = 0, pad = 0;
	uint32_t acc = 0;
	int	 bits = 0;

	if (!url) {
		if (len % 4 != 0)
			return -1;
		while (pad < 2 && len > 0 && in[len - 1] == '=') {
			len--;
			pad++;
		}
	} else if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = b64_val(in[i], url);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n == outlen)
				return -1;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	/* The bits left over must be zero (a canonical encoding). */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		return -1;
	return (int)n;
}

int
acme_b64_decode(const char *in, uint8_t *out, size_t outlen)
{
	int	 n;

	if (in == NULL || *in == '\0')
		return -1;
	if ((n = b64_decode_one(in, true, out, outlen)) >= 0)
		return n;
	return b64_decode_one(in, false, out, outlen);
}

int64_t
acme_retry_after(const char *value, time_t now)
{
	static const char *const mon[] = { "Jan", "Feb", "Mar", "Apr", "May",
	    "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm	 tm;
	char		 wd[4], mo[4], tz[4];
	int64_t		 s;
	char		*end;
	int		 d, y, h, mi, se, m = -1;

	if (value == NULL)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value >= '0' && *value <= '9') {
		long long v = strtoll(value, &end, 10);
		while (*end == ' ' || *end == '\t' || *end == '\r')
			end++;
		if (*end != '\0' || v < 0)
			return -1;
		return v > 86400 ? 86400 : v;
	}
	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	if (sscanf(value, "%3s, %2d %3s %4d %2d:%2d:%2d %3s", wd, &d, mo, &y,
	    &h, &mi, &se, tz) != 8 || strcmp(tz, "GMT") != 0)
		return -1;
	for (int i = 0; i < 12; i++)
		if (strcmp(mo, mon[i]) == 0)
			m = i;
	if (m < 0 || d < 1 || d > 31 || y < 1970 || h > 23 || mi > 59 ||
	    se > 60 || h < 0 || mi < 0 || se < 0)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = m;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = se;
	s = (int64_t)timegm(&tm) - (int64_t)now;
	return s < 0 ? 0 : s > 86400 ? 86400 : s;
}

time_t
acme_renew_at(time_t not_before, time_t not_after)
{
	int64_t	 life = (int64_t)not_after - (int64_t)not_before;
	int64_t	 before = life / 3;

	if (life <= 0)
		return not_after;
	if (before > 30LL * 24 * 3600)
		before = 30LL * 24 * 3600;
	return (time_t)((int64_t)not_after - before);
}
