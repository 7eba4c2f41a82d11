/* SPDX-License-Identifier: ISC */
/*
 * acme_msg.h: the ACME (RFC 8555) messages derpd reads and the small
 * encodings it writes, as pure functions over bytes (unit-tested and
 * fuzzed). The client that uses them is acme.c.
 */
#ifndef DERPD_ACME_MSG_H
#define DERPD_ACME_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ACME_URL_MAX	1024
#define ACME_TOKEN_MAX	256
#define ACME_MAX_AUTHZ	8
#define ACME_MAX_CHAL	8
#define ACME_TEXT_MAX	512

/* The directory object (RFC 8555 7.1.1). */
struct acme_dir {
	char	 ad_new_nonce[ACME_URL_MAX];
	char	 ad_new_account[ACME_URL_MAX];
	char	 ad_new_order[ACME_URL_MAX];
	bool	 ad_eab_required;	/* meta.externalAccountRequired */
	bool	 ad_profile_shortlived;	/* meta.profiles has "shortlived" */
};

/* An order (7.1.3). */
struct acme_order {
	char	 ao_status[32];
	size_t	 ao_nauthz;
	char	 ao_authz[ACME_MAX_AUTHZ][ACME_URL_MAX];
	char	 ao_finalize[ACME_URL_MAX];
	char	 ao_certificate[ACME_URL_MAX];	/* "" until valid */
};

struct acme_chal {
	char	 ac_type[32];		/* "http-01", "tls-alpn-01", ... */
	char	 ac_url[ACME_URL_MAX];
	char	 ac_token[ACME_TOKEN_MAX];
	char	 ac_status[32];
};

/* An authorization (7.1.4). */
struct acme_authz {
	char	 az_status[32];
	char	 az_ident_type[16];
	char	 az_ident[256];
	size_t	 az_nchal;
	struct acme_chal az_chal[ACME_MAX_CHAL];
	char	 az_error[ACME_TEXT_MAX];	/* a failed challenge's detail */
};

/* A problem document (RFC 7807 as ACME uses it, 6.7). */
struct acme_problem {
	char	 ap_type[128];		/* "urn:ietf:params:acme:error:..." */
	char	 ap_detail[ACME_TEXT_MAX];
};

/* Each parser: 0, or -1 when the text is not the object it names. */
int	acme_parse_directory(const char *json, size_t len, struct acme_dir *);
int	acme_parse_order(const char *json, size_t len, struct acme_order *);
int	acme_parse_authz(const char *json, size_t len, struct acme_authz *);
int	acme_parse_problem(const char *json, size_t len, struct acme_problem *);

/*
 * The short name of a problem type for counters and logs: the part after
 * "urn:ietf:params:acme:error:" ("badNonce", "rateLimited", ...), or
 * "other". Never NULL.
 */
const char *acme_problem_short(const char *type);

/* base64url without padding of n bytes; returns the length, or 0 if out
 * (NUL-terminated) is too small. */
size_t	acme_b64url(const uint8_t *in, size_t n, char *out, size_t outlen);
/*
 * Decode base64url without padding, or standard base64 with padding (the
 * EAB key as derper accepts it). Returns the length, or -1.
 */
int	acme_b64_decode(const char *in, uint8_t *out, size_t outlen);

/*
 * A Retry-After value (delta-seconds or an IMF-fixdate) as seconds from
 * now, clamped to [0, 86400]; -1 when absent or malformed.
 */
int64_t	acme_retry_after(const char *value, time_t now);

/*
 * When a certificate valid [not_before, not_after) is renewed: a third of
 * its lifetime before it ends, at most 30 days before (as autocert does).
 */
time_t	acme_renew_at(time_t not_before, time_t not_after);

#ifdef __cplusplus
}
#endif
#endif
