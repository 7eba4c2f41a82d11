/* SPDX-License-Identifier: ISC */
/* derpd.h: the daemon environment and its configuration. */
#ifndef DERPD_H
#define DERPD_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"

#include "events.h"

#ifdef __cplusplus
extern "C" {
#endif

#define DERPD_VERSION		"0.1.0"
#define DERPD_DEV_ADDR		"127.0.0.1:3340"
#define DERPD_DEFAULT_KEY	"/var/lib/derper/derper.key"
#define DERPD_KEEPALIVE_MS	60000
#define DERPD_KEEPALIVE_JITTER_MS 5000
#define DERPD_MESH_WRITE_TIMEOUT_MS 30000
#define DERPD_OUT_HIGH_WATER	(256 * 1024)
#define DERPD_MAX_WORKERS	64
#define DERPD_MAX_SINGLE_IO	(256 * 1024)

/* Command-line configuration: derper's flags plus derpd's own. */
struct derpd_conf {
	char	 dc_addr[256];		/* -a */
	int	 dc_http_port;		/* -http-port */
	int	 dc_stun_port;		/* -stun-port */
	bool	 dc_stun;		/* -stun */
	bool	 dc_derp;		/* -derp */
	char	 dc_key_path[PATH_MAX];	/* -c */
	bool	 dc_dev;		/* -dev */
	bool	 dc_version;		/* -version */
	char	 dc_certmode[32];	/* -certmode */
	char	 dc_certdir[PATH_MAX];	/* -certdir */
	char	 dc_hostname[256];	/* -hostname */
	char	 dc_home[1024];		/* -home */
	char	 dc_mesh_psk_file[PATH_MAX]; /* -mesh-psk-file */
	char	 dc_mesh_with[4096];	/* -mesh-with */
	int64_t	 dc_tcp_keepalive_ms;	/* -tcp-keepalive-time */
	int64_t	 dc_tcp_user_timeout_ms; /* -tcp-user-timeout */
	int64_t	 dc_tcp_write_timeout_ms; /* -tcp-write-timeout */
	char	 dc_bootstrap_dns[4096]; /* -bootstrap-dns-names */
	char	 dc_unpublished_dns[4096]; /* -unpublished-bootstrap-dns-names */
	double	 dc_accept_limit;	/* -accept-connection-limit, per second */
	int64_t	 dc_accept_burst;	/* -accept-connection-burst */
	char	 dc_rate_config[PATH_MAX]; /* -rate-config */
	char	 dc_acme_email[256];	/* -acme-email */
	char	 dc_acme_eab_kid[256];	/* -acme-eab-kid */
	char	 dc_acme_eab_key[512];	/* -acme-eab-key */
	bool	 dc_acme_ip_certs;	/* -acme-ip-certs */
	/* derpd extensions */
	char	 dc_acme_directory[1024]; /* --acme-directory ("": by mode) */
	bool	 dc_tls_any_port;	/* --tls: TLS whatever -a's port */
	int	 dc_workers;		/* --workers, 0 = online CPUs */
	int	 dc_mesh_max_routes;	/* --mesh-max-routes, per peer */
	int64_t	 dc_handshake_timeout_ms; /* --handshake-timeout */
	bool	 dc_verbose;		/* --verbose */
	bool	 dc_syslog;		/* --syslog */
	struct auth_conf dc_auth;	/* admission flags */
	char	 dc_admin_socket[108];	/* --admin-socket */
	char	 dc_admin_group[64];	/* --admin-socket-group */
	char	 dc_admin_socket_ro[108]; /* --admin-socket-ro */
	/* derived by config_finish() */
	bool	 dc_tls;
	char	 dc_listen_host[256];
	char	 dc_listen_port[32];
};

struct server_key;
struct peers;
struct tls_state;
struct worker;
struct event_base;
struct stun_server;
struct control;
struct mesh;
struct ratelim;
struct bootdns;
struct acme;

/* The daemon environment; everything hangs off it (STYLE rule 10). */
struct derpd {
	struct derpd_conf	*d_conf;
	struct server_key	*d_key;
	bool			 d_has_mesh;
	uint8_t			 d_mesh[32];
	struct tls_state	*d_tls;
	struct peers		*d_peers;
	struct worker		**d_workers;
	int			 d_nworkers;
	struct event_base	*d_base;	/* main thread: signals */
	struct stun_server	*d_stun;
	struct auth		*d_auth;	/* NULL: admission off */
	struct control		*d_control;	/* NULL: no admin socket */
	struct mesh		*d_meshnet;	/* NULL: no -mesh-with */
	struct ratelim		*d_ratelim;	/* accept and receive limits */
	struct bootdns		*d_bootdns;	/* /bootstrap-dns answers */
	struct acme		*d_acme;	/* -hostname's ACME, or NULL */
	struct acme		*d_acme_ip;	/* -acme-ip-certs, or NULL */
	struct client_events	 d_events;	/* set by control_new */
	struct varz_hook	 d_varz_hook;	/* set by control_new */
	struct auth_conf	*d_auth_conf;
	uint64_t		 d_next_conn_id;
	uint8_t			 d_hash_seed[16];	/* keyset seeds */
	int64_t			 d_start_time;
	/* The debug access rule's inputs, from the environment at start. */
	char			 d_allow_debug_ip[64];	/* TS_ALLOW_DEBUG_IP */
	char			 d_debug_cidrs[1024];	/* TS_DEBUG_TRUSTED_CIDRS */
};

#ifdef __cplusplus
}
#endif
#endif
