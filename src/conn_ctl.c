/* SPDX-License-Identifier: ISC */
/* conn_ctl.c: admin requests about connections (list, kick). */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "conn.h"
#include "conn_int.h"
#include "derpd.h"
#include "peer.h"
#include "tls.h"
#include "util.h"

/* key, addr, worker: the identity part of admin output and events. */
cJSON *
conn_event_data(struct conn *c)
{
	cJSON	*o = cJSON_CreateObject();
	char	 k[KEY_TEXT_SIZE];

	util_key_format(c->c_key, NODEKEY_PREFIX, k);
	cJSON_AddStringToObject(o, "key", k);
	cJSON_AddStringToObject(o, "addr", c->c_addr);
	cJSON_AddNumberToObject(o, "worker", worker_id(c->c_w));
	return o;
}

/* What "show clients" reports of one connection, copied under the lock. */
struct ctl_row {
	uint8_t		 r_key[KEY_LEN];
	char		 r_addr[64];
	char		 r_admitted_by[16];
	int		 r_worker;
	int64_t		 r_since;
	bool		 r_home, r_mesh, r_prober, r_dup, r_cached;
	uint64_t	 r_pkts_in, r_bytes_in, r_pkts_out, r_bytes_out, r_drops;
};

struct ctl_list {
	const char	*cl_prefix;
	struct ctl_row	*cl_rows;
	size_t		 cl_n, cl_cap;
	int		 cl_nomem;
};

/*
 * Registry read lock held: copy only immutable fields and relaxed
 * counters, and nothing slow. The reply is built after the lock is gone,
 * so a large "show clients" does not hold up connects and disconnects.
 */
static void
ctl_list_one(void *obj, bool active, void *arg)
{
	struct conn	*c = obj;
	struct ctl_list	*l = arg;
	struct ctl_row	*r;
	char		 k[KEY_TEXT_SIZE];

	(void)active;
	if (l->cl_prefix != NULL) {
		size_t plen = strlen(l->cl_prefix);
		util_key_format(c->c_key, NODEKEY_PREFIX, k);
		if (strncmp(k, l->cl_prefix, plen) != 0 &&
		    strncmp(k + 8, l->cl_prefix, plen) != 0)
			return;
	}
	if (l->cl_n == l->cl_cap) {
		size_t nc = l->cl_cap ? l->cl_cap * 2 : 64;
		struct ctl_row *nr = realloc(l->cl_rows, nc * sizeof(*nr));
		if (nr == NULL) {
			l->cl_nomem = 1;
			return;
		}
		l->cl_rows = nr;
		l->cl_cap = nc;
	}
	r = &l->cl_rows[l->cl_n++];
	memcpy(r->r_key, c->c_key, KEY_LEN);
	util_strlcpy(r->r_addr, c->c_addr, sizeof(r->r_addr));
	util_strlcpy(r->r_admitted_by, c->c_admitted_by,
	    sizeof(r->r_admitted_by));
	r->r_worker = worker_id(c->c_w);
	r->r_since = c->c_since;
	r->r_home = __atomic_load_n(&c->c_preferred, __ATOMIC_RELAXED);
	r->r_mesh = c->c_mesh;
	r->r_prober = c->c_prober;
	r->r_dup = __atomic_load_n(&c->c_dup, __ATOMIC_RELAXED);
	r->r_cached = c->c_admit_cached;
	r->r_pkts_in = stats_get(&c->c_pkts_in);
	r->r_bytes_in = stats_get(&c->c_bytes_in);
	r->r_pkts_out = stats_get(&c->c_pkts_out);
	r->r_bytes_out = stats_get(&c->c_bytes_out);
	r->r_drops = __atomic_load_n(&c->c_drops, __ATOMIC_RELAXED);
}

size_t
conn_ctl_list(struct derpd *env, const uint8_t *key, const char *prefix,
    cJSON *arr)
{
	struct ctl_list	 l = { prefix, NULL, 0, 0, 0 };
	char		 k[KEY_TEXT_SIZE];
	size_t		 i;

	peers_foreach(env->d_peers, key, ctl_list_one, &l);
	for (i = 0; i < l.cl_n; i++) {
		struct ctl_row	*r = &l.cl_rows[i];
		cJSON		*o = cJSON_CreateObject();

		util_key_format(r->r_key, NODEKEY_PREFIX, k);
		cJSON_AddStringToObject(o, "key", k);
		cJSON_AddStringToObject(o, "addr", r->r_addr);
		cJSON_AddNumberToObject(o, "worker", r->r_worker);
		cJSON_AddNumberToObject(o, "connected_since",
		    (double)r->r_since);
		cJSON_AddBoolToObject(o, "home", r->r_home);
		cJSON_AddBoolToObject(o, "mesh", r->r_mesh);
		cJSON_AddBoolToObject(o, "prober", r->r_prober);
		cJSON_AddBoolToObject(o, "duplicate", r->r_dup);
		cJSON_AddNumberToObject(o, "packets_in", (double)r->r_pkts_in);
		cJSON_AddNumberToObject(o, "bytes_in", (double)r->r_bytes_in);
		cJSON_AddNumberToObject(o, "packets_out",
		    (double)r->r_pkts_out);
		cJSON_AddNumberToObject(o, "bytes_out", (double)r->r_bytes_out);
		cJSON_AddNumberToObject(o, "drops", (double)r->r_drops);
		cJSON_AddStringToObject(o, "admitted_by", r->r_admitted_by);
		cJSON_AddBoolToObject(o, "admit_cached", r->r_cached);
		cJSON_AddItemToArray(arr, o);
	}
	if (l.cl_nomem)
		log_warnx("show clients: out of memory; the list is partial");
	free(l.cl_rows);
	return i;
}

static void
ctl_kick_one(void *obj, bool active, void *arg)
{
	(void)active;
	conn_kick(obj, CLOSE_KICKED);
	(*(size_t *)arg)++;
}

size_t
conn_ctl_kick(struct derpd *env, const uint8_t key[32])
{
	size_t n = 0;

	peers_foreach(env->d_peers, key, ctl_kick_one, &n);
	return n;
}
