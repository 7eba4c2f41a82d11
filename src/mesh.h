/* SPDX-License-Identifier: ISC */
/*
 * mesh.h: --mesh-with, the outgoing side of a region. One mesh peer per
 * entry of the list, each kept connected (with the mesh key, WatchConns)
 * by the worker it lives on; what it announces becomes routes in the
 * registry (peer.h), and packets for those keys go to it as ForwardPacket.
 */
#ifndef DERPD_MESH_H
#define DERPD_MESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MESH_MAX_PEERS		64
#define MESH_HOST_MAX		256

/* One entry of --mesh-with: "host[:port]" or "host[:port]/dialhost". */
struct mesh_target {
	char	mt_host[MESH_HOST_MAX];	/* as given: URL host, Host header */
	char	mt_name[MESH_HOST_MAX];	/* host without port: SNI, cert name */
	char	mt_dial[MESH_HOST_MAX];	/* where to connect */
	char	mt_port[8];		/* from host; 443 by default */
};

/*
 * Parse a --mesh-with list (pure). Empty list: 0 targets. Returns 0, or
 * -1 with err naming the entry and the problem.
 */
int	mesh_parse_list(const char *list, struct mesh_target *out, size_t max,
	    size_t *n, char *err, size_t errlen);

struct derpd;
struct evbuffer;
struct mesh;
struct worker;

/* The mesh peers of --mesh-with; NULL with err on failure. */
struct mesh *mesh_new(struct derpd *, const struct mesh_target *, size_t n,
	    char *err, size_t errlen);
/* Start dialling (main thread, after the workers exist, before they run). */
int	mesh_start(struct mesh *);
/* The workers are stopping: no more reconnects (any thread). */
void	mesh_stop(struct mesh *);
/* Free (main thread, after the workers have been joined). NULL: no-op. */
void	mesh_free(struct mesh *);

/*
 * Forward a packet of plen bytes at the head of in, from src to dst,
 * through mesh peer fwd (what peers_lookup gave as PEERS_FORWARD); any
 * worker thread. The bytes are consumed; a drop is counted on from.
 */
void	mesh_forward(struct worker *from, void *fwd, const uint8_t *src,
	    const uint8_t *dst, struct evbuffer *in, uint32_t plen, int disco);

/* What "derpctl show mesh" shows of one peer. */
struct mesh_info {
	char		 mi_host[MESH_HOST_MAX];
	char		 mi_dial[MESH_HOST_MAX + 16];	/* host:port */
	char		 mi_state[16];	/* connecting, connected, backoff, self */
	int64_t		 mi_since;	/* unix seconds of the last change */
	bool		 mi_has_key;
	uint8_t		 mi_key[32];	/* the peer's server key, once known */
	int		 mi_worker;
	uint64_t	 mi_routes;	/* keys the peer announces now */
	uint64_t	 mi_pkts_out, mi_bytes_out;	/* forwarded to it */
	uint64_t	 mi_drops;	/* for it, while it was down */
	uint64_t	 mi_refused;	/* keys past -mesh-max-routes */
	uint64_t	 mi_connects, mi_reconnects;
	char		 mi_last_error[160];
};

/* A row per mesh peer; *rows is malloc'd (caller frees). Any thread. */
size_t	mesh_list(struct mesh *, struct mesh_info **rows);

#ifdef __cplusplus
}
#endif
#endif
