/* SPDX-License-Identifier: ISC */
/*
 * apiset.h: the control plane's set of node keys (-verify-clients-api),
 * as pure functions over bytes: the credentials file, an OAuth token
 * answer, Tailscale's devices list and headscale's nodes list, and the
 * state file the last good set is kept in. The set is sorted by key;
 * each device carries the identity the admission policy reads.
 */
#ifndef DERPD_APISET_H
#define DERPD_APISET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#ifdef __cplusplus
extern "C" {
#endif

enum api_kind {
	API_TAILSCALE = 1,	/* GET /api/v2/tailnet/{t}/devices */
	API_HEADSCALE,		/* GET /api/v1/node */
};

/* Most a list or state file may be; a bigger one is a bad response. */
#define API_BODY_MAX		(64u * 1024 * 1024)
/* Most a credentials file or a token answer may be. */
#define API_SMALL_MAX		(64u * 1024)

/* -verify-clients-api-credentials: one API key, or an OAuth client. */
struct api_creds {
	char	*ac_api_key;
	char	*ac_client_id;
	char	*ac_client_secret;
};

struct api_dev {
	uint8_t			 ad_key[32];
	bool			 ad_authorized;
	int64_t			 ad_expires;	/* unix seconds, 0 never */
	struct policy_ident	 ad_id;
};

struct api_set {
	struct api_dev		*as_devs;	/* sorted by ad_key */
	size_t			 as_n;
	size_t			 as_skipped;	/* entries without a node key */
};

enum api_verdict {
	API_ADMIT,
	API_UNAUTHORIZED,	/* Tailscale: "authorized": false */
	API_EXPIRED,		/* the node key's expiry has passed */
};

/*
 * Parse the credentials JSON; kind decides what is allowed (headscale
 * takes an API key only). Secrets never go into err. 0, or -1 with err.
 */
int	api_creds_parse(enum api_kind, const char *buf, size_t len,
	    struct api_creds *, char *err, size_t errlen);
/* Wipe and free the secrets. */
void	api_creds_clear(struct api_creds *);

/*
 * An OAuth token answer ({"access_token": ..., "expires_in": N}): the
 * token (malloc'd) and its lifetime in seconds (3600 when absent).
 * 0, or -1 with err (never quoting the token).
 */
int	api_token_parse(const char *body, size_t len, char **token,
	    int64_t *expires_in, char *err, size_t errlen);

/*
 * A devices (Tailscale) or nodes (headscale) list. Entries without a
 * valid node key are skipped and counted; a list that is not one is an
 * error. NULL with err.
 */
struct api_set *api_set_parse(enum api_kind, const char *body, size_t len,
	    char *err, size_t errlen);
void	api_set_free(struct api_set *);
/* The device with key, or NULL (binary search). */
const struct api_dev *api_set_find(const struct api_set *,
	    const uint8_t key[32]);
/* What a listed device gets at now (unix seconds). */
enum api_verdict api_dev_judge(const struct api_dev *, int64_t now);
/* How many devices api_dev_judge admits at now. */
size_t	api_set_admittable(const struct api_set *, int64_t now);
/*
 * Keys admitted by old at old_now that new does not admit at new_now:
 * the revocations a sync brings. Either set may be NULL (empty).
 */
size_t	api_set_revoked(const struct api_set *old, int64_t old_now,
	    const struct api_set *new_, int64_t new_now);
/* True when both sets say the same of every key (identities included). */
bool	api_set_equal(const struct api_set *, const struct api_set *);

/*
 * The state file: the set and where and when it was fetched, as JSON
 * (malloc'd, NUL-terminated, *len without the NUL). NULL on no memory.
 */
char	*api_state_format(const struct api_set *, const char *api,
	    const char *url, const char *tailnet, int64_t fetched,
	    size_t *len);
/*
 * Read a state file back. It must name the same api, url and tailnet
 * (another configuration's set is not ours). NULL with err.
 */
struct api_set *api_state_parse(const char *buf, size_t len, const char *api,
	    const char *url, const char *tailnet, int64_t *fetched, char *err,
	    size_t errlen);

/* Copy an identity (into a flight, which owns it). 0 or -1 on no memory. */
int	api_ident_copy(struct policy_ident *dst, const struct policy_ident *);

#ifdef __cplusplus
}
#endif
#endif
