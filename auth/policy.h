/* SPDX-License-Identifier: ISC */
/*
 * policy.h: the admission policy (-admission-policy FILE): an ordered
 * list of rules over what tailscaled's whois says about a node; the
 * first rule that matches decides, and no match is a refusal. Pure:
 * the parser and the matcher take bytes and structs, no I/O but
 * policy_load's read of the file, so they are unit-tested and fuzzed.
 */
#ifndef DERPD_POLICY_H
#define DERPD_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define POLICY_NAME_MAX		64	/* a rule name, NUL included */
#define POLICY_MAX_RULES	1024
#define POLICY_FILE_MAX		(1024 * 1024)
/* The pseudo rule that refuses when no rule matches. */
#define POLICY_DEFAULT_RULE	"(default)"

/* An address of a node (a prefix in whois; only its address counts). */
struct policy_addr {
	int		 pa_family;	/* AF_INET or AF_INET6 */
	uint8_t		 pa_addr[16];
};

/* What tailscaled said about a node (policy_ident_parse). */
struct policy_ident {
	char		*pi_node;	/* node name, trailing dot removed */
	char		*pi_user;	/* the user's login name */
	char		**pi_tags;
	size_t		 pi_ntags;
	char		**pi_caps;	/* the keys of the capability map */
	size_t		 pi_ncaps;
	struct policy_addr *pi_addrs;
	size_t		 pi_naddrs;
	int64_t		 pi_key_expiry;	/* unix seconds, 0 none */
	bool		 pi_expired;
};

struct policy;

/*
 * Parse a policy (JSON text); name (the file) goes into errors, which
 * name the rule and the problem. NULL with err.
 */
struct policy *policy_parse(const char *buf, size_t len, const char *name,
	    char *err, size_t errlen);
/* Read and parse a file (at most POLICY_FILE_MAX bytes). NULL with err. */
struct policy *policy_load(const char *path, char *err, size_t errlen);
void	policy_free(struct policy *);
size_t	policy_count(const struct policy *);
const char *policy_rule_name(const struct policy *, size_t i);
bool	policy_rule_allows(const struct policy *, size_t i);
/* The first rule that matches id, or -1 (no match: refused). Pure. */
int	policy_match(const struct policy *, const struct policy_ident *id);
/* Does rule i match id? Pure. */
bool	policy_rule_matches(const struct policy *, size_t i,
	    const struct policy_ident *id);

/* Per-rule counters: matches and the last match (unix seconds). */
void	policy_count_match(struct policy *, int rule, int64_t now);
void	policy_rule_stats(const struct policy *, int rule, uint64_t *matches,
	    int64_t *last);
/* Keep the counters of rules that kept their name across a reload. */
void	policy_carry_counts(struct policy *to, const struct policy *from);

/*
 * The identity in a tailscaled whois reply (its JSON body); now (unix
 * seconds) decides whether the key has expired. 0, or -1 with err.
 */
int	policy_ident_parse(const char *body, size_t len, int64_t now,
	    struct policy_ident *out, char *err, size_t errlen);
void	policy_ident_cleanup(struct policy_ident *);
/* Parse "2026-12-02T15:04:05.123Z" (any offset); -1 when it is not. */
int	policy_parse_time(const char *s, int64_t *out);
/* Format an address (text in out, INET6_ADDRSTRLEN). */
void	policy_addr_format(const struct policy_addr *, char *out, size_t len);

#ifdef __cplusplus
}
#endif
#endif
