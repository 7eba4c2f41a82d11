/* SPDX-License-Identifier: ISC */
/*
 * auth_reject.c: the names of admission reasons, and the refusal
 * aggregator: refusals by (reason, source) in a bounded LRU, for "show
 * rejects", and the rate-limited refusal line. Called from workers and
 * the engine alike, under its own lock.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "auth_int.h"
#include "log.h"
#include "util.h"

#define REJECT_LOG_RATE		10	/* refusal lines per second */
#define REJECT_LOG_BURST	20

static const char *const reason_names[AUTH_REASON__COUNT] = {
	[AUTH_OK] = "ok",
	[AUTH_NOT_IN_ALLOWLIST] = "not_in_allowlist",
	[AUTH_NOT_IN_TAILNET] = "not_in_tailnet",
	[AUTH_TAILSCALED_UNREACHABLE] = "tailscaled_unreachable",
	[AUTH_TAILSCALED_TOO_OLD] = "tailscaled_too_old",
	[AUTH_TAILSCALED_ERROR] = "tailscaled_error",
	[AUTH_URL_DENIED] = "url_denied",
	[AUTH_URL_STATUS] = "url_status",
	[AUTH_URL_BAD_RESPONSE] = "url_bad_response",
	[AUTH_URL_UNREACHABLE] = "url_unreachable",
	[AUTH_TIMEOUT] = "timeout",
	[AUTH_REVOKED] = "revoked",
	[AUTH_BAD_HANDSHAKE] = "bad_handshake",
	[AUTH_RATE_LIMITED] = "rate_limited",
	[AUTH_POLICY_DENIED] = "policy_denied",
	[AUTH_API_UNREACHABLE] = "api_unreachable",
	[AUTH_API_ERROR] = "api_error",
	[AUTH_DEVICE_UNAUTHORIZED] = "device_unauthorized",
	[AUTH_KEY_EXPIRED] = "key_expired",
};

const char *
auth_reason_name(enum auth_reason r)
{
	if (r < 0 || r >= AUTH_REASON__COUNT)
		return "unknown";
	return reason_names[r];
}

struct agg {
	enum auth_reason	 g_reason;
	char			 g_src[64];
	uint64_t		 g_count;
	int64_t			 g_first, g_last;
	uint8_t			 g_key[KEY_LEN];
	TAILQ_ENTRY(agg)	 g_link;	/* most recent first */
};

struct auth_rejects {
	pthread_mutex_t		 r_lock;
	TAILQ_HEAD(agg_list, agg) r_lru;
	size_t			 r_n;
	struct log_rate		 r_lograte;
};

struct auth_rejects *
auth_rejects_new(void)
{
	struct auth_rejects *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return NULL;
	pthread_mutex_init(&r->r_lock, NULL);
	TAILQ_INIT(&r->r_lru);
	return r;
}

void
auth_rejects_free(struct auth_rejects *r)
{
	struct agg *g;

	if (r == NULL)
		return;
	while ((g = TAILQ_FIRST(&r->r_lru)) != NULL) {
		TAILQ_REMOVE(&r->r_lru, g, g_link);
		free(g);
	}
	pthread_mutex_destroy(&r->r_lock);
	free(r);
}

void
auth_rejects_note(struct auth_rejects *r, enum auth_reason reason,
    const struct sockaddr *src, const uint8_t *key)
{
	struct agg	*g;
	char		 s[64], ks[8];
	int64_t		 now = (int64_t)time(NULL);
	uint64_t	 held = 0;
	int		 log_it;

	util_addr_ip(src, s, sizeof(s));
	pthread_mutex_lock(&r->r_lock);
	TAILQ_FOREACH(g, &r->r_lru, g_link)
		if (g->g_reason == reason && strcmp(g->g_src, s) == 0)
			break;
	if (g != NULL)
		TAILQ_REMOVE(&r->r_lru, g, g_link);
	else if (r->r_n >= AUTH_REJECTS_MAX) {
		g = TAILQ_LAST(&r->r_lru, agg_list);
		TAILQ_REMOVE(&r->r_lru, g, g_link);	/* reuse the oldest */
		memset(g, 0, sizeof(*g));
	} else if ((g = calloc(1, sizeof(*g))) != NULL)
		r->r_n++;
	if (g != NULL) {
		if (g->g_count == 0) {
			g->g_reason = reason;
			util_strlcpy(g->g_src, s, sizeof(g->g_src));
			g->g_first = now;
		}
		g->g_count++;
		g->g_last = now;
		memcpy(g->g_key, key, KEY_LEN);
		TAILQ_INSERT_HEAD(&r->r_lru, g, g_link);
	}
	/* A flood of refusals must not fill the disk. */
	log_it = log_rate_allow(&r->r_lograte, util_now_ms(), REJECT_LOG_RATE,
	    REJECT_LOG_BURST, &held);
	pthread_mutex_unlock(&r->r_lock);
	if (log_it) {
		util_key_short(key, ks);
		log_info("admission: refused %s from %s: %s%s", ks,
		    s[0] ? s : "unknown", auth_reason_name(reason),
		    held ? " (and earlier refusals not logged)" : "");
	}
}

size_t
auth_rejects_copy(struct auth_rejects *r, struct auth_reject_entry *out,
    size_t max)
{
	struct agg	*g;
	size_t		 n = 0;

	pthread_mutex_lock(&r->r_lock);
	TAILQ_FOREACH(g, &r->r_lru, g_link) {
		if (n == max)
			break;
		out[n].are_reason = g->g_reason;
		util_strlcpy(out[n].are_source, g->g_src,
		    sizeof(out[n].are_source));
		out[n].are_count = g->g_count;
		out[n].are_first = g->g_first;
		out[n].are_last = g->g_last;
		memcpy(out[n].are_last_key, g->g_key, KEY_LEN);
		n++;
	}
	pthread_mutex_unlock(&r->r_lock);
	return n;
}
