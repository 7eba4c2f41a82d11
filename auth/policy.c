/* SPDX-License-Identifier: ISC */
/*
 * policy.c: the admission policy language (derpd-admission(7)): parser,
 * matcher, and the identity in a tailscaled whois reply.
 *
 * {"rules": [{"name": "prod", "action": "allow", "tags": ["tag:prod"]},
 *            {"name": "staff", "action": "allow", "users": ["*@example.com"]}]}
 *
 * A rule matches when every field it gives matches; a list field matches
 * when any of its entries does. Unknown and repeated fields are errors
 * (a typo must not widen a rule), as are empty lists (a rule that could
 * never match).
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "policy.h"

/* Most entries in one list of one rule; most tags or caps of a node. */
#define POLICY_LIST_MAX		256
#define IDENT_LIST_MAX		1024

struct prefix {
	int		 px_family;
	uint8_t		 px_addr[16];
	int		 px_bits;
};

struct strlist {
	char		**sl_v;
	size_t		 sl_n;
	bool		 sl_set;
};

struct rule {
	char		 r_name[POLICY_NAME_MAX];
	bool		 r_allow;
	struct strlist	 r_tags, r_users, r_nodes, r_caps;
	struct prefix	*r_addrs;
	size_t		 r_naddrs;
	bool		 r_has_addrs;
	int		 r_expired;	/* -1 not given, else 0 or 1 */
	uint64_t	 r_matches;	/* atomic */
	int64_t		 r_last;	/* atomic */
};

struct policy {
	struct rule	*p_rules;
	size_t		 p_n;
	uint64_t	 p_default;	/* atomic: refusals by no match */
	int64_t		 p_default_last;
};

static void
strlist_free(struct strlist *l)
{
	for (size_t i = 0; i < l->sl_n; i++)
		free(l->sl_v[i]);
	free(l->sl_v);
	memset(l, 0, sizeof(*l));
}

void
policy_free(struct policy *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->p_n; i++) {
		struct rule *r = &p->p_rules[i];
		strlist_free(&r->r_tags);
		strlist_free(&r->r_users);
		strlist_free(&r->r_nodes);
		strlist_free(&r->r_caps);
		free(r->r_addrs);
	}
	free(p->p_rules);
	free(p);
}

/* "a.b.c.d/n", "v6/n", or an address alone (all its bits). */
static int
prefix_parse(const char *s, struct prefix *px)
{
	char		 buf[INET6_ADDRSTRLEN + 8], *slash, *end;
	long		 bits;
	int		 max;

	if (strlen(s) >= sizeof(buf))
		return -1;
	strcpy(buf, s);
	if ((slash = strchr(buf, '/')) != NULL)
		*slash++ = '\0';
	memset(px, 0, sizeof(*px));
	if (inet_pton(AF_INET, buf, px->px_addr) == 1) {
		px->px_family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, px->px_addr) == 1) {
		px->px_family = AF_INET6;
		max = 128;
	} else
		return -1;
	bits = max;
	if (slash != NULL) {
		if (!isdigit((unsigned char)*slash))
			return -1;
		errno = 0;
		bits = strtol(slash, &end, 10);
		if (errno != 0 || *end != '\0' || bits < 0 || bits > max)
			return -1;
	}
	px->px_bits = (int)bits;
	return 0;
}

static bool
prefix_contains(const struct prefix *px, const struct policy_addr *a)
{
	int full = px->px_bits / 8, rest = px->px_bits % 8;

	if (px->px_family != a->pa_family)
		return false;
	if (memcmp(px->px_addr, a->pa_addr, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((px->px_addr[full] ^ a->pa_addr[full]) &
	    (uint8_t)(0xff << (8 - rest))) == 0;
}

/* A rule name goes into metric labels and log lines: a safe charset. */
static bool
name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= POLICY_NAME_MAX)
		return false;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' &&
		    *s != '.')
			return false;
	return true;
}

/* An entry of a list: printable ASCII, no spaces, bounded. */
static bool
entry_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 255)
		return false;
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s >= 0x7f)
			return false;
	return true;
}

#define FAIL(...) do {							\
	int _o = snprintf(err, errlen, "%s: ", name);			\
	if (_o >= 0 && (size_t)_o < errlen)				\
		snprintf(err + _o, errlen - (size_t)_o, __VA_ARGS__);	\
	goto fail;							\
} while (0)

static int
parse_strlist(const cJSON *v, struct strlist *l, const char *field,
    const char *rule, const char *name, char *err, size_t errlen)
{
	const cJSON	*it;
	size_t		 n;

	if (!cJSON_IsArray(v))
		FAIL("rule \"%s\": \"%s\" must be a list of strings", rule,
		    field);
	n = (size_t)cJSON_GetArraySize(v);
	if (n == 0)
		FAIL("rule \"%s\": \"%s\" is empty (it could never match; "
		    "leave the field out to match any)", rule, field);
	if (n > POLICY_LIST_MAX)
		FAIL("rule \"%s\": \"%s\" has more than %d entries", rule,
		    field, POLICY_LIST_MAX);
	if ((l->sl_v = calloc(n, sizeof(*l->sl_v))) == NULL)
		FAIL("out of memory");
	l->sl_set = true;
	cJSON_ArrayForEach(it, v) {
		if (!cJSON_IsString(it) || !entry_ok(it->valuestring))
			FAIL("rule \"%s\": \"%s\" entry %zu is not a string of "
			    "1 to 255 printable characters without spaces",
			    rule, field, l->sl_n + 1);
		if (strcmp(field, "tags") == 0 &&
		    strncmp(it->valuestring, "tag:", 4) != 0)
			FAIL("rule \"%s\": tag \"%s\" does not start with "
			    "\"tag:\"", rule, it->valuestring);
		if ((l->sl_v[l->sl_n] = strdup(it->valuestring)) == NULL)
			FAIL("out of memory");
		l->sl_n++;
	}
	return 0;
fail:
	return -1;
}

static int
parse_rule(const cJSON *o, size_t idx, struct rule *r,
    const struct policy *p, const char *name, char *err, size_t errlen)
{
	const cJSON	*f, *nm = NULL, *act = NULL;
	char		 rule[POLICY_NAME_MAX + 16];
	unsigned	 seen = 0;
	static const char *const fields[] = { "name", "action", "tags",
	    "users", "nodes", "addrs", "caps", "expired", NULL };

	r->r_expired = -1;
	if (!cJSON_IsObject(o))
		FAIL("rule %zu: not an object", idx + 1);
	/* The name first, so every later error can say which rule. */
	cJSON_ArrayForEach(f, o)
		if (f->string != NULL && strcmp(f->string, "name") == 0)
			nm = f;
	if (nm == NULL)
		FAIL("rule %zu: no \"name\"", idx + 1);
	if (!cJSON_IsString(nm) || !name_ok(nm->valuestring))
		FAIL("rule %zu: \"name\" must be 1 to %d letters, digits, "
		    "'-', '_' or '.'", idx + 1, POLICY_NAME_MAX - 1);
	snprintf(r->r_name, sizeof(r->r_name), "%s", nm->valuestring);
	snprintf(rule, sizeof(rule), "%s", r->r_name);
	for (size_t i = 0; i < idx; i++)
		if (strcmp(p->p_rules[i].r_name, r->r_name) == 0)
			FAIL("rule \"%s\": the name is used by rule %zu too",
			    rule, i + 1);
	cJSON_ArrayForEach(f, o) {
		int k;

		for (k = 0; fields[k] != NULL; k++)
			if (f->string != NULL && strcmp(f->string, fields[k]) == 0)
				break;
		if (fields[k] == NULL)
			FAIL("rule \"%s\": unknown field \"%s\"", rule,
			    f->string != NULL ? f->string : "");
		if (seen & (1u << k))
			FAIL("rule \"%s\": field \"%s\" given twice", rule,
			    fields[k]);
		seen |= 1u << k;
		if (strcmp(f->string, "action") == 0)
			act = f;
		else if (strcmp(f->string, "tags") == 0) {
			if (parse_strlist(f, &r->r_tags, "tags", rule, name, err,
			    errlen) == -1)
				goto fail;
		} else if (strcmp(f->string, "users") == 0) {
			if (parse_strlist(f, &r->r_users, "users", rule, name,
			    err, errlen) == -1)
				goto fail;
		} else if (strcmp(f->string, "nodes") == 0) {
			if (parse_strlist(f, &r->r_nodes, "nodes", rule, name,
			    err, errlen) == -1)
				goto fail;
		} else if (strcmp(f->string, "caps") == 0) {
			if (parse_strlist(f, &r->r_caps, "caps", rule, name,
			    err, errlen) == -1)
				goto fail;
		} else if (strcmp(f->string, "expired") == 0) {
			if (!cJSON_IsBool(f))
				FAIL("rule \"%s\": \"expired\" must be true or "
				    "false", rule);
			r->r_expired = cJSON_IsTrue(f) ? 1 : 0;
		} else if (strcmp(f->string, "addrs") == 0) {
			struct strlist	 tmp = { 0 };
			int		 rc = parse_strlist(f, &tmp, "addrs",
					    rule, name, err, errlen);

			if (rc == 0 && (r->r_addrs = calloc(tmp.sl_n,
			    sizeof(*r->r_addrs))) == NULL) {
				strlist_free(&tmp);
				FAIL("out of memory");
			}
			for (size_t i = 0; rc == 0 && i < tmp.sl_n; i++) {
				if (prefix_parse(tmp.sl_v[i],
				    &r->r_addrs[i]) == -1) {
					snprintf(err, errlen, "%s: rule \"%s\": "
					    "\"%s\" is not an address or a "
					    "prefix (like 100.64.0.0/10 or "
					    "fd7a:115c:a1e0::/48)", name,
					    rule, tmp.sl_v[i]);
					rc = -1;
				}
				r->r_naddrs = i + 1;
			}
			strlist_free(&tmp);
			if (rc == -1)
				goto fail;
			r->r_has_addrs = true;
		}
	}
	if (act == NULL)
		FAIL("rule \"%s\": no \"action\" (allow or deny)", rule);
	if (!cJSON_IsString(act) || (strcmp(act->valuestring, "allow") != 0 &&
	    strcmp(act->valuestring, "deny") != 0))
		FAIL("rule \"%s\": \"action\" must be \"allow\" or \"deny\"",
		    rule);
	r->r_allow = strcmp(act->valuestring, "allow") == 0;
	return 0;
fail:
	return -1;
}

struct policy *
policy_parse(const char *buf, size_t len, const char *name, char *err,
    size_t errlen)
{
	struct policy	*p = NULL;
	cJSON		*j = NULL, *rules = NULL, *f;
	const char	*end = NULL;
	size_t		 n;

	if (memchr(buf, '\0', len) != NULL)
		FAIL("a NUL byte in the file");
	j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
	if (j == NULL) {
		/* cJSON leaves end at the error (no global error state). */
		size_t off = end != NULL && end >= buf && end <= buf + len ?
		    (size_t)(end - buf) : 0;
		size_t line = 1;

		for (size_t i = 0; i < off && i < len; i++)
			line += buf[i] == '\n';
		FAIL("not valid JSON (near line %zu)", line);
	}
	while (end != NULL && end < buf + len && isspace((unsigned char)*end))
		end++;
	if (end != buf + len)
		FAIL("data after the JSON object");
	if (!cJSON_IsObject(j))
		FAIL("not a JSON object with \"rules\"");
	cJSON_ArrayForEach(f, j) {
		if (f->string == NULL || strcmp(f->string, "rules") != 0)
			FAIL("unknown field \"%s\" (only \"rules\")",
			    f->string != NULL ? f->string : "");
		if (rules != NULL)
			FAIL("\"rules\" given twice");
		rules = f;
	}
	if (rules == NULL)
		FAIL("no \"rules\" list");
	if (!cJSON_IsArray(rules))
		FAIL("\"rules\" must be a list of rules");
	n = (size_t)cJSON_GetArraySize(rules);
	if (n > POLICY_MAX_RULES)
		FAIL("more than %d rules", POLICY_MAX_RULES);
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (n > 0 && (p->p_rules = calloc(n, sizeof(*p->p_rules))) == NULL))
		FAIL("out of memory");
	cJSON_ArrayForEach(f, rules) {
		/* Counted first, so policy_free frees a half-parsed rule. */
		p->p_n++;
		if (parse_rule(f, p->p_n - 1, &p->p_rules[p->p_n - 1], p, name,
		    err, errlen) == -1)
			goto fail;
	}
	cJSON_Delete(j);
	return p;
fail:
	cJSON_Delete(j);
	policy_free(p);
	return NULL;
}

struct policy *
policy_load(const char *path, char *err, size_t errlen)
{
	struct policy	*p;
	FILE		*fp;
	char		*buf;
	size_t		 len;
	const char	*name = path;

	if ((fp = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(POLICY_FILE_MAX + 1)) == NULL) {
		fclose(fp);
		FAIL("out of memory");
	}
	len = fread(buf, 1, POLICY_FILE_MAX + 1, fp);
	if (ferror(fp)) {
		fclose(fp);
		free(buf);
		FAIL("read error");
	}
	fclose(fp);
	if (len > POLICY_FILE_MAX) {
		free(buf);
		FAIL("over %d bytes", POLICY_FILE_MAX);
	}
	p = policy_parse(buf, len, path, err, errlen);
	free(buf);
	return p;
fail:
	return NULL;
}

size_t
policy_count(const struct policy *p)
{
	return p == NULL ? 0 : p->p_n;
}

const char *
policy_rule_name(const struct policy *p, size_t i)
{
	return i < p->p_n ? p->p_rules[i].r_name : POLICY_DEFAULT_RULE;
}

bool
policy_rule_allows(const struct policy *p, size_t i)
{
	return i < p->p_n && p->p_rules[i].r_allow;
}

/* --- matching ------------------------------------------------------ */

static bool
match_exact(const struct strlist *l, char *const *v, size_t n)
{
	for (size_t i = 0; i < l->sl_n; i++)
		for (size_t k = 0; k < n; k++)
			if (strcmp(l->sl_v[i], v[k]) == 0)
				return true;
	return false;
}

/* Login names and DNS names compare without case. */
static bool
match_glob(const struct strlist *l, const char *s)
{
	if (s == NULL || *s == '\0')
		return false;
	for (size_t i = 0; i < l->sl_n; i++)
		if (fnmatch(l->sl_v[i], s, FNM_CASEFOLD) == 0)
			return true;
	return false;
}

static bool
match_addrs(const struct rule *r, const struct policy_ident *id)
{
	for (size_t i = 0; i < r->r_naddrs; i++)
		for (size_t k = 0; k < id->pi_naddrs; k++)
			if (prefix_contains(&r->r_addrs[i], &id->pi_addrs[k]))
				return true;
	return false;
}

bool
policy_rule_matches(const struct policy *p, size_t i,
    const struct policy_ident *id)
{
	const struct rule *r;

	if (i >= p->p_n)
		return false;
	r = &p->p_rules[i];
	if (r->r_tags.sl_set && !match_exact(&r->r_tags, id->pi_tags,
	    id->pi_ntags))
		return false;
	if (r->r_caps.sl_set && !match_exact(&r->r_caps, id->pi_caps,
	    id->pi_ncaps))
		return false;
	if (r->r_users.sl_set && !match_glob(&r->r_users, id->pi_user))
		return false;
	if (r->r_nodes.sl_set && !match_glob(&r->r_nodes, id->pi_node))
		return false;
	if (r->r_has_addrs && !match_addrs(r, id))
		return false;
	if (r->r_expired != -1 && r->r_expired != (int)id->pi_expired)
		return false;
	return true;
}

int
policy_match(const struct policy *p, const struct policy_ident *id)
{
	for (size_t i = 0; p != NULL && i < p->p_n; i++)
		if (policy_rule_matches(p, i, id))
			return (int)i;
	return -1;
}

void
policy_count_match(struct policy *p, int rule, int64_t now)
{
	uint64_t	*c = &p->p_default;
	int64_t		*l = &p->p_default_last;

	if (rule >= 0 && (size_t)rule < p->p_n) {
		c = &p->p_rules[rule].r_matches;
		l = &p->p_rules[rule].r_last;
	}
	__atomic_add_fetch(c, 1, __ATOMIC_RELAXED);
	__atomic_store_n(l, now, __ATOMIC_RELAXED);
}

void
policy_rule_stats(const struct policy *p, int rule, uint64_t *matches,
    int64_t *last)
{
	const uint64_t	*c = &p->p_default;
	const int64_t	*l = &p->p_default_last;

	if (rule >= 0 && (size_t)rule < p->p_n) {
		c = &p->p_rules[rule].r_matches;
		l = &p->p_rules[rule].r_last;
	}
	*matches = __atomic_load_n(c, __ATOMIC_RELAXED);
	*last = __atomic_load_n(l, __ATOMIC_RELAXED);
}

void
policy_carry_counts(struct policy *to, const struct policy *from)
{
	if (to == NULL || from == NULL)
		return;
	to->p_default = from->p_default;
	to->p_default_last = from->p_default_last;
	for (size_t i = 0; i < to->p_n; i++)
		for (size_t k = 0; k < from->p_n; k++)
			if (strcmp(to->p_rules[i].r_name,
			    from->p_rules[k].r_name) == 0) {
				to->p_rules[i].r_matches =
				    from->p_rules[k].r_matches;
				to->p_rules[i].r_last = from->p_rules[k].r_last;
			}
}

/* --- the identity in a whois reply --------------------------------- */

static int64_t
days_from_civil(int64_t y, int m, int d)
{
	/* Days since 1970-01-01 of a proleptic Gregorian date. */
	int64_t	 era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
digits(const char **s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*s)[i]))
			return -1;
		v = v * 10 + ((*s)[i] - '0');
	}
	*s += n;
	*out = v;
	return 0;
}

int
policy_parse_time(const char *s, int64_t *out)
{
	int	 y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;

	if (digits(&s, 4, &y) == -1 || *s++ != '-' ||
	    digits(&s, 2, &mo) == -1 || *s++ != '-' ||
	    digits(&s, 2, &d) == -1 || (*s != 'T' && *s != 't') ||
	    (s++, digits(&s, 2, &h)) == -1 || *s++ != ':' ||
	    digits(&s, 2, &mi) == -1 || *s++ != ':' ||
	    digits(&s, 2, &sec) == -1)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60)
		return -1;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return -1;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (*s == 'Z' || *s == 'z')
		s++;
	else if (*s == '+' || *s == '-') {
		sign = *s++ == '+' ? 1 : -1;
		if (digits(&s, 2, &oh) == -1 || *s++ != ':' ||
		    digits(&s, 2, &om) == -1 || oh > 23 || om > 59)
			return -1;
	} else
		return -1;
	if (*s != '\0')
		return -1;
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec -
	    sign * (oh * 3600 + om * 60);
	return 0;
}

void
policy_ident_cleanup(struct policy_ident *id)
{
	free(id->pi_node);
	free(id->pi_user);
	for (size_t i = 0; i < id->pi_ntags; i++)
		free(id->pi_tags[i]);
	free(id->pi_tags);
	for (size_t i = 0; i < id->pi_ncaps; i++)
		free(id->pi_caps[i]);
	free(id->pi_caps);
	free(id->pi_addrs);
	memset(id, 0, sizeof(*id));
}

void
policy_addr_format(const struct policy_addr *a, char *out, size_t len)
{
	if (inet_ntop(a->pa_family, a->pa_addr, out, (socklen_t)len) == NULL)
		snprintf(out, len, "?");
}

/* Strings of a JSON list (non-strings skipped), at most IDENT_LIST_MAX. */
static int
ident_strings(const cJSON *v, char ***out, size_t *n)
{
	const cJSON	*it;
	size_t		 cap;

	if (v == NULL || cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsArray(v))
		return -1;
	cap = (size_t)cJSON_GetArraySize(v);
	if (cap > IDENT_LIST_MAX)
		cap = IDENT_LIST_MAX;
	if (cap == 0 || (*out = calloc(cap, sizeof(**out))) == NULL)
		return cap == 0 ? 0 : -1;
	cJSON_ArrayForEach(it, v) {
		if (*n == cap)
			break;
		if (!cJSON_IsString(it))
			continue;
		if (((*out)[*n] = strdup(it->valuestring)) == NULL)
			return -1;
		(*n)++;
	}
	return 0;
}

int
policy_ident_parse(const char *body, size_t len, int64_t now,
    struct policy_ident *id, char *err, size_t errlen)
{
	const char	*name = "whois";
	cJSON		*j, *node, *up, *v, *it;
	size_t		 cap;

	memset(id, 0, sizeof(*id));
	if ((j = cJSON_ParseWithLength(body, len)) == NULL)
		FAIL("not JSON");
	node = cJSON_GetObjectItemCaseSensitive(j, "Node");
	if (!cJSON_IsObject(node))
		FAIL("no Node");
	v = cJSON_GetObjectItemCaseSensitive(node, "Name");
	if (cJSON_IsString(v)) {
		size_t n = strlen(v->valuestring);
		if ((id->pi_node = strdup(v->valuestring)) == NULL)
			FAIL("out of memory");
		if (n > 0 && id->pi_node[n - 1] == '.')
			id->pi_node[n - 1] = '\0';
	}
	if (ident_strings(cJSON_GetObjectItemCaseSensitive(node, "Tags"),
	    &id->pi_tags, &id->pi_ntags) == -1)
		FAIL("bad Node.Tags");
	v = cJSON_GetObjectItemCaseSensitive(node, "Addresses");
	if (cJSON_IsArray(v) && (cap = (size_t)cJSON_GetArraySize(v)) > 0) {
		if (cap > IDENT_LIST_MAX)
			cap = IDENT_LIST_MAX;
		if ((id->pi_addrs = calloc(cap, sizeof(*id->pi_addrs))) == NULL)
			FAIL("out of memory");
		cJSON_ArrayForEach(it, v) {
			struct prefix px;
			if (id->pi_naddrs == cap)
				break;
			if (!cJSON_IsString(it) ||
			    prefix_parse(it->valuestring, &px) == -1)
				continue;
			id->pi_addrs[id->pi_naddrs].pa_family = px.px_family;
			memcpy(id->pi_addrs[id->pi_naddrs].pa_addr,
			    px.px_addr, 16);
			id->pi_naddrs++;
		}
	}
	v = cJSON_GetObjectItemCaseSensitive(node, "KeyExpiry");
	if (cJSON_IsString(v) && policy_parse_time(v->valuestring,
	    &id->pi_key_expiry) == 0) {
		/* Go's zero time (year 1) means the key does not expire. */
		if (id->pi_key_expiry < 0)
			id->pi_key_expiry = 0;
	}
	v = cJSON_GetObjectItemCaseSensitive(node, "Expired");
	id->pi_expired = cJSON_IsTrue(v) ||
	    (id->pi_key_expiry > 0 && id->pi_key_expiry <= now);
	up = cJSON_GetObjectItemCaseSensitive(j, "UserProfile");
	v = cJSON_IsObject(up) ?
	    cJSON_GetObjectItemCaseSensitive(up, "LoginName") : NULL;
	if (cJSON_IsString(v) && (id->pi_user = strdup(v->valuestring)) ==
	    NULL)
		FAIL("out of memory");
	v = cJSON_GetObjectItemCaseSensitive(j, "CapMap");
	if (cJSON_IsObject(v) && (cap = (size_t)cJSON_GetArraySize(v)) > 0) {
		if (cap > IDENT_LIST_MAX)
			cap = IDENT_LIST_MAX;
		if ((id->pi_caps = calloc(cap, sizeof(*id->pi_caps))) == NULL)
			FAIL("out of memory");
		cJSON_ArrayForEach(it, v) {
			if (id->pi_ncaps == cap)
				break;
			if (it->string == NULL)
				continue;
			if ((id->pi_caps[id->pi_ncaps] = strdup(it->string)) ==
			    NULL)
				FAIL("out of memory");
			id->pi_ncaps++;
		}
	}
	cJSON_Delete(j);
	return 0;
fail:
	cJSON_Delete(j);
	policy_ident_cleanup(id);
	return -1;
}
