/* SPDX-License-Identifier: ISC */
/* ratelim.c: the accept limit and the per-client receive rate (ratelim.h). */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>

#include "derpd.h"
#include "ratelim.h"
#include "log.h"
#include "reload.h"
#include "stats.h"
#include "util.h"

#define RATECONF_MAX_FILE	(1024 * 1024)

struct ratelim {
	/* the accept limit: fixed at start */
	double		 l_accept_rate;
	double		 l_accept_burst;
	bool		 l_tls;		/* derper's tls_listener names */
	pthread_mutex_t	 l_alock;	/* leaf: l_accept */
	struct tbucket	 l_accept;
	uint64_t	 l_accepted;	/* atomic */
	uint64_t	 l_rejected;	/* atomic */
	/* the receive rate: main thread writes under l_rlock, bumps l_gen */
	char		 l_path[PATH_MAX];
	pthread_mutex_t	 l_rlock;	/* leaf: l_rate */
	struct rate_conf l_rate;
	uint64_t	 l_gen;		/* atomic; release after l_rate */
	bool		 l_on;		/* atomic: l_rate limits anything */
	uint64_t	 l_waited;	/* atomic: frames delayed, all clients */
};

/* One value of the file: a non-negative integer, or null (unchanged). */
static int
rateconf_value(const cJSON *v, uint64_t *out, char *err, size_t errlen)
{
	double	 d;

	if (cJSON_IsNull(v))
		return 0;
	if (!cJSON_IsNumber(v)) {
		snprintf(err, errlen, "%s: not a number", v->string);
		return -1;
	}
	d = v->valuedouble;
	if (!(d >= 0) || d >= 18446744073709551616.0 || floor(d) != d) {
		snprintf(err, errlen, "%s: not an unsigned 64-bit integer",
		    v->string);
		return -1;
	}
	*out = (uint64_t)d;
	return 0;
}

int
rateconf_parse(const char *buf, size_t len, struct rate_conf *rc, char *err,
    size_t errlen)
{
	cJSON		*root;
	const cJSON	*it;
	const char	*end = NULL;
	struct rate_conf n = { 0, 0 };
	int		 rv = 0;

	root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
	if (root == NULL) {
		snprintf(err, errlen, "not JSON (at byte %zu)", end != NULL &&
		    end >= buf ? (size_t)(end - buf) : (size_t)0);
		return -1;
	}
	/* Only white space may follow the value, as Go insists. */
	for (; end != NULL && end < buf + len; end++)
		if (strchr(" \t\r\n", *end) == NULL) {
			snprintf(err, errlen, "data after the JSON value");
			cJSON_Delete(root);
			return -1;
		}
	if (!cJSON_IsNull(root) && !cJSON_IsObject(root)) {
		snprintf(err, errlen, "not a JSON object");
		cJSON_Delete(root);
		return -1;
	}
	/* In file order, so a key given twice takes its last value. */
	cJSON_ArrayForEach(it, root) {
		if (strcasecmp(it->string, "PerClientRateLimitBytesPerSec") == 0)
			rv = rateconf_value(it, &n.rc_bytes_per_sec, err, errlen);
		else if (strcasecmp(it->string, "PerClientRateBurstBytes") == 0)
			rv = rateconf_value(it, &n.rc_burst, err, errlen);
		if (rv == -1)
			break;
	}
	cJSON_Delete(root);
	if (rv == 0)
		*rc = n;
	return rv;
}

void
rateconf_normalize(struct rate_conf *rc)
{
	if (rc->rc_bytes_per_sec == 0)
		rc->rc_burst = 0;
	else if (rc->rc_burst < RATE_MIN_BURST)
		rc->rc_burst = RATE_MIN_BURST;
}

/* Read and parse path. 0, or -1 with a message. */
static int
rateconf_load(const char *path, struct rate_conf *rc, char *err,
    size_t errlen)
{
	FILE	*f;
	char	*buf, why[200];
	size_t	 n;
	int	 rv;

	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((buf = malloc(RATECONF_MAX_FILE + 1)) == NULL) {
		fclose(f);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	n = fread(buf, 1, RATECONF_MAX_FILE + 1, f);
	if (ferror(f) || n > RATECONF_MAX_FILE) {
		snprintf(err, errlen, "%s: %s", path, ferror(f) ?
		    "read error" : "larger than 1 MiB");
		free(buf);
		fclose(f);
		return -1;
	}
	fclose(f);
	rv = rateconf_parse(buf, n, rc, why, sizeof(why));
	free(buf);
	if (rv == -1) {
		snprintf(err, errlen, "%s: %s", path, why);
		return -1;
	}
	rateconf_normalize(rc);
	return 0;
}

struct ratelim *
ratelim_new(const struct derpd_conf *conf, char *err, size_t errlen)
{
	struct ratelim	*l;
	char		 why[512];

	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	l->l_accept_rate = conf->dc_accept_limit;
	l->l_accept_burst = (double)conf->dc_accept_burst;
	l->l_tls = conf->dc_tls;
	tbucket_init(&l->l_accept, l->l_accept_rate, l->l_accept_burst,
	    tbucket_now_ns());
	util_strlcpy(l->l_path, conf->dc_rate_config, sizeof(l->l_path));
	if (l->l_path[0] != '\0' && rateconf_load(l->l_path, &l->l_rate, why,
	    sizeof(why)) == -1) {
		snprintf(err, errlen, "-rate-config: %s", why);
		free(l);
		return NULL;
	}
	pthread_mutex_init(&l->l_alock, NULL);
	pthread_mutex_init(&l->l_rlock, NULL);
	l->l_gen = 1;
	l->l_on = l->l_rate.rc_bytes_per_sec != 0;
	return l;
}

void
ratelim_free(struct ratelim *l)
{
	if (l == NULL)
		return;
	pthread_mutex_destroy(&l->l_alock);
	pthread_mutex_destroy(&l->l_rlock);
	free(l);
}

bool
ratelim_accept(struct ratelim *l)
{
	bool	 ok = true;

	if (l == NULL)
		return true;
	/* The default (+Inf) takes no lock. */
	if (!isinf(l->l_accept_rate)) {
		pthread_mutex_lock(&l->l_alock);
		ok = tbucket_allow(&l->l_accept, 1, tbucket_now_ns());
		pthread_mutex_unlock(&l->l_alock);
	}
	__atomic_add_fetch(ok ? &l->l_accepted : &l->l_rejected, 1,
	    __ATOMIC_RELAXED);
	return ok;
}

void
ratelim_reload(struct ratelim *l, struct reload_report *rep)
{
	struct rate_conf rc;
	char		 why[256];

	if (l->l_path[0] == '\0') {
		reload_note(rep, "rate config", RELOAD_UNCHANGED, NULL);
		return;
	}
	if (rateconf_load(l->l_path, &rc, why, sizeof(why)) == -1) {
		reload_note(rep, "rate config", RELOAD_FAILED, why);
		return;
	}
	pthread_mutex_lock(&l->l_rlock);
	l->l_rate = rc;
	__atomic_store_n(&l->l_on, rc.rc_bytes_per_sec != 0, __ATOMIC_RELAXED);
	__atomic_add_fetch(&l->l_gen, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&l->l_rlock);
	log_info("rate config applied: client-rate=%llu bytes/sec, "
	    "client-burst=%llu bytes", (unsigned long long)rc.rc_bytes_per_sec,
	    (unsigned long long)rc.rc_burst);
	reload_note(rep, "rate config", RELOAD_CHANGED, NULL);
}

bool
ratelim_on(struct ratelim *l)
{
	return l != NULL && __atomic_load_n(&l->l_on, __ATOMIC_RELAXED);
}

uint64_t
ratelim_charge(struct ratelim *l, struct rate_client *rc, bool mesh,
    uint32_t len)
{
	uint64_t	 gen, now, wait;

	if (l == NULL || mesh)
		return 0;
	gen = __atomic_load_n(&l->l_gen, __ATOMIC_ACQUIRE);
	if (rc->rl_gen != gen) {
		struct rate_conf cur;

		pthread_mutex_lock(&l->l_rlock);
		cur = l->l_rate;
		gen = l->l_gen;
		pthread_mutex_unlock(&l->l_rlock);
		rc->rl_gen = gen;
		rc->rl_on = cur.rc_bytes_per_sec != 0;
		if (rc->rl_on)
			tbucket_init(&rc->rl_tb, (double)cur.rc_bytes_per_sec,
			    (double)cur.rc_burst, tbucket_now_ns());
	}
	if (!rc->rl_on)
		return 0;
	now = tbucket_now_ns();
	/* A longer frame is charged as the longest packet, as derper does. */
	wait = tbucket_reserve(&rc->rl_tb, len < RATE_MIN_BURST ? (double)len :
	    (double)RATE_MIN_BURST, now);
	if (wait > 0) {
		stats_add(&rc->rl_waits, 1);
		stats_add(&rc->rl_wait_ms, (wait + 999999) / 1000000);
		__atomic_add_fetch(&l->l_waited, 1, __ATOMIC_RELAXED);
	}
	return wait;
}

void
ratelim_varz(struct ratelim *l, struct evbuffer *out)
{
	uint64_t	 acc = __atomic_load_n(&l->l_accepted, __ATOMIC_RELAXED);
	uint64_t	 rej = __atomic_load_n(&l->l_rejected, __ATOMIC_RELAXED);
	struct rate_conf rc;

	if (l->l_tls)
		evbuffer_add_printf(out, "# HELP tls_listener_accepted_"
		    "connections connections the listener kept\n"
		    "# TYPE tls_listener_accepted_connections counter\n"
		    "tls_listener_accepted_connections %llu\n"
		    "# HELP tls_listener_rejected_connections connections over "
		    "-accept-connection-limit, closed at once\n"
		    "# TYPE tls_listener_rejected_connections counter\n"
		    "tls_listener_rejected_connections %llu\n",
		    (unsigned long long)acc, (unsigned long long)rej);
	evbuffer_add_printf(out, "# HELP derpd_accepts_refused connections "
	    "closed at accept, by reason\n"
	    "# TYPE derpd_accepts_refused counter\n"
	    "derpd_accepts_refused{reason=\"rate_limited\"} %llu\n",
	    (unsigned long long)rej);
	if (l->l_path[0] == '\0')
		return;		/* derper shows these with -rate-config only */
	pthread_mutex_lock(&l->l_rlock);
	rc = l->l_rate;
	pthread_mutex_unlock(&l->l_rlock);
	evbuffer_add_printf(out, "# HELP derp_rate_limit_per_client_bytes_per_"
	    "second -rate-config receive rate per client; 0 none\n"
	    "# TYPE derp_rate_limit_per_client_bytes_per_second gauge\n"
	    "derp_rate_limit_per_client_bytes_per_second %llu\n"
	    "# HELP derp_rate_limit_per_client_burst_bytes -rate-config burst "
	    "per client\n"
	    "# TYPE derp_rate_limit_per_client_burst_bytes gauge\n"
	    "derp_rate_limit_per_client_burst_bytes %llu\n"
	    "# HELP derp_rate_limit_per_client_waited frames a client's "
	    "receive rate delayed\n"
	    "# TYPE derp_rate_limit_per_client_waited counter\n"
	    "derp_rate_limit_per_client_waited %llu\n",
	    (unsigned long long)rc.rc_bytes_per_sec,
	    (unsigned long long)rc.rc_burst,
	    (unsigned long long)__atomic_load_n(&l->l_waited,
	    __ATOMIC_RELAXED));
}

void
ratelim_ctl_stats(struct ratelim *l, cJSON *st)
{
	cJSON_AddNumberToObject(st, "derpd_accepts_refused_rate_limited",
	    (double)__atomic_load_n(&l->l_rejected, __ATOMIC_RELAXED));
	cJSON_AddNumberToObject(st, "derp_rate_limit_per_client_waited",
	    (double)__atomic_load_n(&l->l_waited, __ATOMIC_RELAXED));
}

void
ratelim_vars(struct ratelim *l, cJSON *root, cJSON *derp)
{
	struct rate_conf rc;

	if (l->l_tls) {
		cJSON *t = cJSON_AddObjectToObject(root, "tls_listener");
		cJSON_AddNumberToObject(t, "counter_accepted_connections",
		    (double)__atomic_load_n(&l->l_accepted, __ATOMIC_RELAXED));
		cJSON_AddNumberToObject(t, "counter_rejected_connections",
		    (double)__atomic_load_n(&l->l_rejected, __ATOMIC_RELAXED));
	}
	if (l->l_path[0] == '\0')
		return;
	pthread_mutex_lock(&l->l_rlock);
	rc = l->l_rate;
	pthread_mutex_unlock(&l->l_rlock);
	cJSON_AddNumberToObject(derp, "rate_limit_per_client_bytes_per_second",
	    (double)rc.rc_bytes_per_sec);
	cJSON_AddNumberToObject(derp, "rate_limit_per_client_burst_bytes",
	    (double)rc.rc_burst);
	cJSON_AddNumberToObject(derp, "rate_limit_per_client_waited",
	    (double)__atomic_load_n(&l->l_waited, __ATOMIC_RELAXED));
}
