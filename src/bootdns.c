/* SPDX-License-Identifier: ISC */
/* bootdns.c: derper's /bootstrap-dns (see bootdns.h). */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <sodium.h>

#include "bootdns.h"
#include "log.h"

/* A configured name. */
struct bd_name {
	char		*bn_name;
	bool		 bn_pub;	/* -bootstrap-dns-names */
	bool		 bn_txt;	/* name/txtname: a rollout record */
};

/* One name's lookup during a refresh (main thread). */
struct bd_lookup {
	struct bootdns				*lk_b;
	struct evdns_getaddrinfo_request	*lk_req;
	struct bootdns_entry			 lk_ent;
	bool					 lk_ok;
};

struct bootdns {
	/* main thread */
	struct event_base	*b_base;
	struct evdns_base	*b_dns;
	struct event		*b_timer;	/* next refresh, or its timeout */
	struct bd_name		*b_names;
	size_t			 b_nnames;
	struct bd_lookup	*b_lk;		/* NULL between refreshes */
	size_t			 b_pending;
	bool			 b_hold;	/* in a loop that may call back */
	/* b_lock (a leaf): what requests read */
	pthread_mutex_t		 b_lock;
	char			*b_json;	/* NULL: no published answer */
	size_t			 b_json_len;
	struct bootdns_entry	*b_pub, *b_unpub;
	size_t			 b_npub, b_nunpub;
	bool			*b_unpub_served; /* per b_unpub: rollout 100% */
	char			*b_queried[BOOTDNS_MAX_QUERIED + 1];
	size_t			 b_nqueried;
	/* atomics */
	uint64_t		 b_requests, b_pub_hits, b_pub_misses;
	uint64_t		 b_unpub_hits, b_unpub_misses, b_pct_misses;
	uint64_t		 b_failures;	/* lookups that failed */
	uint64_t		 b_refreshes;
};

static void	bd_refresh(struct bootdns *);

/* Append s as a JSON string the way Go's encoder writes it. */
static void
json_str(char **p, const char *s)
{
	char	*o = *p;

	*o++ = '"';
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			*o++ = '\\';
			*o++ = (char)ch;
		} else if (ch == '\n') {
			memcpy(o, "\\n", 2);
			o += 2;
		} else if (ch == '\r') {
			memcpy(o, "\\r", 2);
			o += 2;
		} else if (ch == '\t') {
			memcpy(o, "\\t", 2);
			o += 2;
		} else if (ch < 0x20 || ch == '<' || ch == '>' || ch == '&') {
			o += sprintf(o, "\\u%04x", ch);
		} else
			*o++ = (char)ch;
	}
	*o++ = '"';
	*p = o;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct bootdns_entry *const *x = a, *const *y = b;

	return strcmp((*x)->be_name, (*y)->be_name);
}

char *
bootdns_json(const struct bootdns_entry *e, size_t n, size_t *len)
{
	const struct bootdns_entry	**ord;
	size_t				  cap = 8;
	char				 *out, *p;

	if (n == 0) {
		*len = 4;
		return strdup("null");
	}
	/* Room for the worst case: every byte escaped as \u00XX. */
	for (size_t i = 0; i < n; i++) {
		cap += 6 * strlen(e[i].be_name) + 16;
		for (size_t j = 0; j < e[i].be_nips; j++)
			cap += 6 * strlen(e[i].be_ips[j]) + 16;
	}
	if ((ord = calloc(n, sizeof(*ord))) == NULL ||
	    (out = malloc(cap)) == NULL) {
		free(ord);
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		ord[i] = &e[i];
	qsort(ord, n, sizeof(*ord), entry_cmp);
	p = out;
	*p++ = '{';
	for (size_t i = 0; i < n; i++) {
		p += sprintf(p, "%s\n\t", i ? "," : "");
		json_str(&p, ord[i]->be_name);
		p += sprintf(p, ": [");
		for (size_t j = 0; j < ord[i]->be_nips; j++) {
			p += sprintf(p, "%s\n\t\t", j ? "," : "");
			json_str(&p, ord[i]->be_ips[j]);
		}
		p += sprintf(p, "%s]", ord[i]->be_nips ? "\n\t" : "");
	}
	p += sprintf(p, "\n}");
	free(ord);
	*len = (size_t)(p - out);
	return out;
}

static void
entry_cleanup(struct bootdns_entry *e)
{
	for (size_t i = 0; i < e->be_nips; i++)
		free(e->be_ips[i]);
	free(e->be_ips);
	free(e->be_name);
	memset(e, 0, sizeof(*e));
}

static void
entries_free(struct bootdns_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		entry_cleanup(&e[i]);
	free(e);
}

/* Split a flag's list into b_names (derper: strings.Split on ","). */
static int
bd_add_names(struct bootdns *b, const char *list, bool pub)
{
	char	*copy, *tok, *save = NULL, *slash;

	if (*list == '\0')
		return 0;
	if ((copy = strdup(list)) == NULL)
		return -1;
	for (tok = strtok_r(copy, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		struct bd_name *nn = realloc(b->b_names, (b->b_nnames + 1) *
		    sizeof(*nn));

		if (nn == NULL) {
			free(copy);
			return -1;
		}
		b->b_names = nn;
		nn = &b->b_names[b->b_nnames];
		memset(nn, 0, sizeof(*nn));
		nn->bn_pub = pub;
		/* A rollout TXT record only has a meaning unpublished. */
		if (!pub && (slash = strchr(tok, '/')) != NULL) {
			*slash = '\0';
			nn->bn_txt = true;
		}
		if ((nn->bn_name = strdup(tok)) == NULL) {
			free(copy);
			return -1;
		}
		b->b_nnames++;
	}
	free(copy);
	return 0;
}

/* Keep an address once (a name in /etc/hosts and DNS, A and AAAA). */
static void
entry_add_ip(struct bootdns_entry *e, const struct sockaddr *sa)
{
	char	 s[INET6_ADDRSTRLEN], **ni;

	if (e->be_nips >= BOOTDNS_MAX_IPS)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)
		    sa)->sin_addr, s, sizeof(s));
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)
		    sa)->sin6_addr, s, sizeof(s));
	else
		return;
	for (size_t i = 0; i < e->be_nips; i++)
		if (strcmp(e->be_ips[i], s) == 0)
			return;
	if ((ni = realloc(e->be_ips, (e->be_nips + 1) * sizeof(*ni))) == NULL)
		return;
	e->be_ips = ni;
	if ((ni[e->be_nips] = strdup(s)) != NULL)
		e->be_nips++;
}

/* Random order, so that clients do not all pick the first (derper). */
static void
entry_shuffle(struct bootdns_entry *e)
{
	for (size_t i = e->be_nips; i > 1; i--) {
		size_t	 j = randombytes_uniform((uint32_t)i);
		char	*t = e->be_ips[i - 1];

		e->be_ips[i - 1] = e->be_ips[j];
		e->be_ips[j] = t;
	}
}

static void
bd_arm(struct bootdns *b, int sec)
{
	struct timeval tv = { sec, 0 };

	evtimer_add(b->b_timer, &tv);
}

/*
 * The refresh is over: swap its results in. As in derper, a name that
 * failed is absent until a later refresh resolves it.
 */
static void
bd_publish(struct bootdns *b)
{
	struct bootdns_entry	*pub, *unpub;
	bool			*served;
	size_t			 npub = 0, nunpub = 0, haspub = 0, ok = 0;
	char			*json = NULL;
	size_t			 jlen = 0;

	pub = calloc(b->b_nnames + 1, sizeof(*pub));
	unpub = calloc(b->b_nnames + 1, sizeof(*unpub));
	served = calloc(b->b_nnames + 1, sizeof(*served));
	if (pub == NULL || unpub == NULL || served == NULL) {
		log_warnx("bootstrap DNS: out of memory; keeping the old "
		    "answers");
		free(pub);
		free(unpub);
		free(served);
		goto done;
	}
	for (size_t i = 0; i < b->b_nnames; i++) {
		struct bd_lookup	*lk = &b->b_lk[i];
		struct bootdns_entry	*dst;
		size_t			 k, *np;

		haspub += b->b_names[i].bn_pub;
		if (!lk->lk_ok || lk->lk_ent.be_nips == 0)
			continue;
		ok++;
		dst = b->b_names[i].bn_pub ? pub : unpub;
		np = b->b_names[i].bn_pub ? &npub : &nunpub;
		/* A name listed twice: the later lookup wins, as in a map. */
		for (k = 0; k < *np; k++)
			if (strcmp(dst[k].be_name, lk->lk_ent.be_name) == 0)
				break;
		if (k < *np)
			entry_cleanup(&dst[k]);
		else
			(*np)++;
		dst[k] = lk->lk_ent;
		memset(&lk->lk_ent, 0, sizeof(lk->lk_ent));
		if (b->b_names[i].bn_pub)
			entry_shuffle(&dst[k]);
		else
			served[k] = !b->b_names[i].bn_txt;
	}
	if (haspub > 0 && (json = bootdns_json(pub, npub, &jlen)) == NULL)
		log_warnx("bootstrap DNS: out of memory for the answer");
	pthread_mutex_lock(&b->b_lock);
	if (json != NULL || haspub == 0) {
		free(b->b_json);
		b->b_json = json;
		b->b_json_len = jlen;
	}
	entries_free(b->b_pub, b->b_npub);
	entries_free(b->b_unpub, b->b_nunpub);
	free(b->b_unpub_served);
	b->b_pub = pub;
	b->b_npub = npub;
	b->b_unpub = unpub;
	b->b_nunpub = nunpub;
	b->b_unpub_served = served;
	pthread_mutex_unlock(&b->b_lock);
	__atomic_add_fetch(&b->b_refreshes, 1, __ATOMIC_RELAXED);
	log_debug("bootstrap DNS: %zu of %zu names resolved", ok,
	    b->b_nnames);
done:
	for (size_t i = 0; i < b->b_nnames; i++)
		entry_cleanup(&b->b_lk[i].lk_ent);
	free(b->b_lk);
	b->b_lk = NULL;
	bd_arm(b, BOOTDNS_REFRESH_SEC);
}

static void
bd_dns_cb(int err, struct evutil_addrinfo *ai, void *arg)
{
	struct bd_lookup	*lk = arg;
	struct bootdns		*b = lk->lk_b;

	lk->lk_req = NULL;
	if (err == 0) {
		for (struct evutil_addrinfo *p = ai; p != NULL; p = p->ai_next)
			entry_add_ip(&lk->lk_ent, p->ai_addr);
		lk->lk_ok = lk->lk_ent.be_nips > 0;
	} else {
		__atomic_add_fetch(&b->b_failures, 1, __ATOMIC_RELAXED);
		log_warnx("bootstrap DNS lookup \"%s\": %s", lk->lk_ent.be_name,
		    err == EVUTIL_EAI_CANCEL ? "timed out" :
		    evutil_gai_strerror(err));
	}
	if (ai != NULL)
		evutil_freeaddrinfo(ai);
	if (--b->b_pending == 0 && !b->b_hold)
		bd_publish(b);
}

/* Resolve every name (derper resolves them one after the other). */
static void
bd_refresh(struct bootdns *b)
{
	struct evutil_addrinfo	 hints;

	if ((b->b_lk = calloc(b->b_nnames, sizeof(*b->b_lk))) == NULL) {
		log_warnx("bootstrap DNS: out of memory; next try later");
		bd_arm(b, BOOTDNS_REFRESH_SEC);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;		/* Go's LookupIP "ip" */
	hints.ai_socktype = SOCK_STREAM;	/* one entry per address */
	b->b_pending = b->b_nnames;
	b->b_hold = true;			/* answers may come at once */
	for (size_t i = 0; i < b->b_nnames; i++) {
		struct bd_lookup *lk = &b->b_lk[i];

		lk->lk_b = b;
		if ((lk->lk_ent.be_name = strdup(b->b_names[i].bn_name)) ==
		    NULL) {
			b->b_pending--;
			continue;
		}
		lk->lk_req = evdns_getaddrinfo(b->b_dns, lk->lk_ent.be_name,
		    NULL, &hints, bd_dns_cb, lk);
	}
	b->b_hold = false;
	if (b->b_pending == 0)
		bd_publish(b);
	else
		bd_arm(b, BOOTDNS_TIMEOUT_SEC);
}

/* Time for a refresh, or a refresh ran out of time: cancel the rest. */
static void
bd_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct bootdns	*b = arg;

	(void)fd;
	(void)what;
	if (b->b_lk == NULL) {
		bd_refresh(b);
		return;
	}
	b->b_hold = true;
	for (size_t i = 0; i < b->b_nnames; i++)
		if (b->b_lk[i].lk_req != NULL)
			evdns_getaddrinfo_cancel(b->b_lk[i].lk_req);
	b->b_hold = false;
	if (b->b_pending == 0)
		bd_publish(b);
}

struct bootdns *
bootdns_new(struct event_base *base, const char *published,
    const char *unpublished)
{
	struct bootdns	*b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return NULL;
	pthread_mutex_init(&b->b_lock, NULL);
	b->b_base = base;
	if (bd_add_names(b, published, true) == -1 ||
	    bd_add_names(b, unpublished, false) == -1)
		goto fail;
	for (size_t i = 0; i < b->b_nnames; i++)
		if (b->b_names[i].bn_txt)
			log_warnx("-unpublished-bootstrap-dns-names: %s: rollout "
			    "TXT records are not read by derpd; the name is "
			    "served to nobody, as derper does when the record "
			    "is missing", b->b_names[i].bn_name);
	if (b->b_nnames == 0)
		return b;
	/* libevent's resolver: resolv.conf and /etc/hosts, on this loop. */
	if ((b->b_dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
	    EVDNS_BASE_DISABLE_WHEN_INACTIVE)) == NULL ||
	    (b->b_timer = evtimer_new(base, bd_timer_cb, b)) == NULL)
		goto fail;
	bd_arm(b, 0);
	return b;
fail:
	bootdns_free(b);
	return NULL;
}

void
bootdns_free(struct bootdns *b)
{
	if (b == NULL)
		return;
	if (b->b_lk != NULL) {
		/* The callbacks run now, with nothing published. */
		b->b_hold = true;
		for (size_t i = 0; i < b->b_nnames; i++)
			if (b->b_lk[i].lk_req != NULL)
				evdns_getaddrinfo_cancel(b->b_lk[i].lk_req);
		for (size_t i = 0; i < b->b_nnames; i++)
			entry_cleanup(&b->b_lk[i].lk_ent);
		free(b->b_lk);
	}
	if (b->b_timer != NULL)
		event_free(b->b_timer);
	if (b->b_dns != NULL)
		evdns_base_free(b->b_dns, 0);
	for (size_t i = 0; i < b->b_nnames; i++)
		free(b->b_names[i].bn_name);
	free(b->b_names);
	free(b->b_json);
	entries_free(b->b_pub, b->b_npub);
	entries_free(b->b_unpub, b->b_nunpub);
	free(b->b_unpub_served);
	for (size_t i = 0; i < b->b_nqueried; i++)
		free(b->b_queried[i]);
	pthread_mutex_destroy(&b->b_lock);
	free(b);
}

/* derper's set of names asked for, cleared when it passes 500 (b_lock). */
static void
bd_note_query(struct bootdns *b, const char *q)
{
	for (size_t i = 0; i < b->b_nqueried; i++)
		if (strcmp(b->b_queried[i], q) == 0)
			return;
	if ((b->b_queried[b->b_nqueried] = strdup(q)) == NULL)
		return;
	if (++b->b_nqueried > BOOTDNS_MAX_QUERIED) {
		for (size_t i = 0; i < b->b_nqueried; i++)
			free(b->b_queried[i]);
		b->b_nqueried = 0;
	}
}

static const struct bootdns_entry *
find(const struct bootdns_entry *e, size_t n, const char *name, size_t *at)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].be_name, name) == 0) {
			*at = i;
			return &e[i];
		}
	return NULL;
}

#define BD_INC(b, f)	__atomic_add_fetch(&(b)->f, 1, __ATOMIC_RELAXED)

void
bootdns_answer(struct bootdns *b, const char *q, struct evbuffer *out)
{
	const struct bootdns_entry	*e;
	size_t				 at;

	BD_INC(b, b_requests);
	pthread_mutex_lock(&b->b_lock);
	if (q != NULL && *q != '\0') {
		bd_note_query(b, q);
		/* The unpublished name asked for, and only it. */
		if ((e = find(b->b_unpub, b->b_nunpub, q, &at)) != NULL &&
		    e->be_nips > 0) {
			BD_INC(b, b_unpub_hits);
			if (b->b_unpub_served[at]) {
				size_t	 len;
				char	*j = bootdns_json(e, 1, &len);

				if (j != NULL) {
					evbuffer_add(out, j, len);
					free(j);
					pthread_mutex_unlock(&b->b_lock);
					return;
				}
			} else
				BD_INC(b, b_pct_misses);
		}
		/* derper's bookkeeping for the published list. */
		if ((e = find(b->b_pub, b->b_npub, q, &at)) != NULL) {
			if (e->be_nips > 0)
				BD_INC(b, b_pub_hits);
			else
				BD_INC(b, b_pub_misses);
		} else
			BD_INC(b, b_unpub_misses);
	}
	if (b->b_json != NULL)
		evbuffer_add(out, b->b_json, b->b_json_len);
	pthread_mutex_unlock(&b->b_lock);
}

#define BD_GET(b, f)	((unsigned long long)__atomic_load_n(&(b)->f, \
			    __ATOMIC_RELAXED))

void
bootdns_varz(struct bootdns *b, struct evbuffer *out)
{
	size_t	 nq;

	pthread_mutex_lock(&b->b_lock);
	nq = b->b_nqueried;
	pthread_mutex_unlock(&b->b_lock);
	evbuffer_add_printf(out,
	    "# HELP bootstrap_dns_requests requests to /bootstrap-dns\n"
	    "# TYPE bootstrap_dns_requests counter\n"
	    "bootstrap_dns_requests %llu\n"
	    "# HELP bootstrap_dns_published_hits ?q= names found published\n"
	    "# TYPE bootstrap_dns_published_hits counter\n"
	    "bootstrap_dns_published_hits %llu\n"
	    "# HELP bootstrap_dns_published_misses ?q= names published "
	    "without addresses\n"
	    "# TYPE bootstrap_dns_published_misses counter\n"
	    "bootstrap_dns_published_misses %llu\n"
	    "# HELP bootstrap_dns_unpublished_hits ?q= names found "
	    "unpublished\n"
	    "# TYPE bootstrap_dns_unpublished_hits counter\n"
	    "bootstrap_dns_unpublished_hits %llu\n"
	    "# HELP bootstrap_dns_unpublished_misses ?q= names found in "
	    "neither list\n"
	    "# TYPE bootstrap_dns_unpublished_misses counter\n"
	    "bootstrap_dns_unpublished_misses %llu\n"
	    "# HELP bootstrap_dns_unpublished_percent_misses unpublished "
	    "names not served for their rollout\n"
	    "# TYPE bootstrap_dns_unpublished_percent_misses counter\n"
	    "bootstrap_dns_unpublished_percent_misses %llu\n"
	    "# HELP bootstrap_dns_queried_domains distinct ?q= names seen "
	    "(the set is cleared past 500)\n"
	    "# TYPE bootstrap_dns_queried_domains counter\n"
	    "bootstrap_dns_queried_domains %zu\n"
	    "# HELP derpd_bootstrap_dns_lookup_failures bootstrap names that "
	    "failed to resolve\n"
	    "# TYPE derpd_bootstrap_dns_lookup_failures counter\n"
	    "derpd_bootstrap_dns_lookup_failures %llu\n"
	    "# HELP derpd_bootstrap_dns_refreshes bootstrap DNS refreshes "
	    "completed\n"
	    "# TYPE derpd_bootstrap_dns_refreshes counter\n"
	    "derpd_bootstrap_dns_refreshes %llu\n",
	    BD_GET(b, b_requests), BD_GET(b, b_pub_hits),
	    BD_GET(b, b_pub_misses), BD_GET(b, b_unpub_hits),
	    BD_GET(b, b_unpub_misses), BD_GET(b, b_pct_misses), nq,
	    BD_GET(b, b_failures), BD_GET(b, b_refreshes));
}

void
bootdns_vars(struct bootdns *b, cJSON *root)
{
	size_t	 nq;

	pthread_mutex_lock(&b->b_lock);
	nq = b->b_nqueried;
	pthread_mutex_unlock(&b->b_lock);
	cJSON_AddNumberToObject(root, "counter_bootstrap_dns_requests",
	    (double)BD_GET(b, b_requests));
	cJSON_AddNumberToObject(root, "counter_bootstrap_dns_published_hits",
	    (double)BD_GET(b, b_pub_hits));
	cJSON_AddNumberToObject(root, "counter_bootstrap_dns_published_misses",
	    (double)BD_GET(b, b_pub_misses));
	cJSON_AddNumberToObject(root, "counter_bootstrap_dns_unpublished_hits",
	    (double)BD_GET(b, b_unpub_hits));
	cJSON_AddNumberToObject(root,
	    "counter_bootstrap_dns_unpublished_misses",
	    (double)BD_GET(b, b_unpub_misses));
	cJSON_AddNumberToObject(root,
	    "counter_bootstrap_dns_unpublished_percent_misses",
	    (double)BD_GET(b, b_pct_misses));
	cJSON_AddNumberToObject(root, "counter_bootstrap_dns_queried_domains",
	    (double)nq);
}
