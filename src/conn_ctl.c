/* SPDX-License-Identifier: ISC */
/* conn_ctl.c: admin requests about connections (list, kick). */
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "conn_int.h"
#include "derpd.h"
#include "peer.h"
#include "util.h"

struct list_ctx {
	const char		*lc_prefix;
	struct conn_info	*lc_rows;
	size_t			 lc_n, lc_cap;
	int			 lc_nomem;
};

/*
 * Registry read lock held: copy only immutable fields and relaxed
 * counters, and nothing slow. The reply is built after the lock is gone,
 * so a large "show clients" does not hold up connects and disconnects.
 */
static void
list_one(void *obj, bool active, void *arg)
{
	struct conn		*c = obj;
	struct list_ctx		*l = arg;
	struct conn_info	*r;
	struct rate_client	*rl;
	char			 k[KEY_TEXT_SIZE];

	(void)active;
	if (l->lc_prefix != NULL) {
		size_t plen = strlen(l->lc_prefix);
		util_key_format(c->c_key, NODEKEY_PREFIX, k);
		if (strncmp(k, l->lc_prefix, plen) != 0 &&
		    strncmp(k + 8, l->lc_prefix, plen) != 0)
			return;
	}
	if (l->lc_n == l->lc_cap) {
		size_t nc = l->lc_cap ? l->lc_cap * 2 : 64;
		struct conn_info *nr = realloc(l->lc_rows, nc * sizeof(*nr));
		if (nr == NULL) {
			l->lc_nomem = 1;
			return;
		}
		l->lc_rows = nr;
		l->lc_cap = nc;
	}
	r = &l->lc_rows[l->lc_n++];
	memset(r, 0, sizeof(*r));
	memcpy(r->ci_key, c->c_key, KEY_LEN);
	conn_addr(c, r->ci_addr, sizeof(r->ci_addr));
	util_strlcpy(r->ci_admitted_by, c->c_admitted_by,
	    sizeof(r->ci_admitted_by));
	r->ci_worker = worker_id(c->c_w);
	r->ci_since = c->c_since;
	r->ci_home = __atomic_load_n(&c->c_preferred, __ATOMIC_RELAXED);
	r->ci_mesh = c->c_mesh;
	r->ci_prober = c->c_prober;
	r->ci_dup = __atomic_load_n(&c->c_dup, __ATOMIC_RELAXED);
	r->ci_cached = c->c_admit_cached;
	r->ci_pkts_in = stats_get(&c->c_pkts_in);
	r->ci_bytes_in = stats_get(&c->c_bytes_in);
	r->ci_pkts_out = stats_get(&c->c_pkts_out);
	r->ci_bytes_out = stats_get(&c->c_bytes_out);
	r->ci_drops = __atomic_load_n(&c->c_drops, __ATOMIC_RELAXED);
	if ((rl = __atomic_load_n(&c->c_rl, __ATOMIC_ACQUIRE)) != NULL) {
		r->ci_rl_waits = stats_get(&rl->rl_waits);
		r->ci_rl_wait_ms = stats_get(&rl->rl_wait_ms);
	}
}

size_t
conn_list(struct derpd *env, const uint8_t *key, const char *prefix,
    struct conn_info **rows)
{
	struct list_ctx	 l = { prefix, NULL, 0, 0, 0 };

	peers_foreach(env->d_peers, key, list_one, &l);
	if (l.lc_nomem)
		log_warnx("show clients: out of memory; the list is partial");
	*rows = l.lc_rows;
	return l.lc_n;
}

static void
kick_one(void *obj, bool active, void *arg)
{
	(void)active;
	conn_kick(obj, CLOSE_KICKED);
	(*(size_t *)arg)++;
}

size_t
conn_kick_key(struct derpd *env, const uint8_t key[KEY_LEN])
{
	size_t n = 0;

	peers_foreach(env->d_peers, key, kick_one, &n);
	return n;
}
