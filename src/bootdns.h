/* SPDX-License-Identifier: ISC */
/*
 * bootdns.h: derper's /bootstrap-dns. The names of -bootstrap-dns-names
 * and -unpublished-bootstrap-dns-names are resolved at start and every
 * 10 minutes with libevent's resolver on the main loop; workers answer
 * requests from the last complete refresh, under a leaf lock.
 */
#ifndef DERPD_BOOTDNS_H
#define DERPD_BOOTDNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct bootdns;
struct cJSON;
struct event_base;
struct evbuffer;

#define BOOTDNS_REFRESH_SEC	600	/* derper: 10 minutes between refreshes */
#define BOOTDNS_TIMEOUT_SEC	60	/* derper: a refresh gets a minute */
#define BOOTDNS_MAX_IPS		32	/* addresses kept per name */
#define BOOTDNS_MAX_QUERIED	500	/* derper's set of q values, cleared past */

/* One resolved name: its addresses as text. */
struct bootdns_entry {
	char	 *be_name;
	char	**be_ips;
	size_t	  be_nips;
};

/*
 * The JSON derper sends: Go's json.MarshalIndent(map, "", "\t") of name
 * -> list of address strings, keys sorted, "null" when n is 0. A
 * malloc'd string (length in *len), or NULL when out of memory. Pure.
 */
char	*bootdns_json(const struct bootdns_entry *e, size_t n, size_t *len);

/*
 * Start resolving (main thread, on base). published and unpublished are
 * the flags' comma-separated lists ("" for none; an unpublished entry may
 * be name/txtname). NULL when out of memory or the resolver cannot start.
 */
struct bootdns *bootdns_new(struct event_base *base, const char *published,
	    const char *unpublished);
/* Stop (main thread, after the workers are joined). NULL is a no-op. */
void	bootdns_free(struct bootdns *);
/*
 * Answer a request (any thread): q is the decoded "q" parameter or NULL,
 * out gets the body (derper's rules: the unpublished name asked for, or
 * every published name, or nothing before the first refresh). Counted.
 */
void	bootdns_answer(struct bootdns *, const char *q, struct evbuffer *out);
/* Counters for /debug/varz, /debug/vars (top level) and show stats. */
void	bootdns_varz(struct bootdns *, struct evbuffer *out);
void	bootdns_vars(struct bootdns *, struct cJSON *root);

#ifdef __cplusplus
}
#endif
#endif
