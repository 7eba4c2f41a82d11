/* SPDX-License-Identifier: ISC */
/* main.c: derpd, a DERP relay server. main() is a script. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "acme.h"
#include "auth.h"
#include "bootdns.h"
#include "config.h"
#include "conn.h"
#include "control.h"
#include "derpd.h"
#include "keys.h"
#include "ratelim.h"
#include "listener.h"
#include "log.h"
#include "mesh.h"
#include "notify.h"
#include "peer.h"
#include "pktq.h"
#include "reload.h"
#include "stun_server.h"
#include "tls.h"
#include "util.h"
#include "worker.h"

static void
libevent_log_cb(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		log_warnx("libevent: %s", msg);
	else
		log_debug("libevent: %s", msg);
}

static void
signal_stop_cb(evutil_socket_t sig, short what, void *arg)
{
	struct derpd *env = arg;

	(void)what;
	log_info("received %s, shutting down", sig == SIGINT ? "SIGINT" :
	    "SIGTERM");
	notify_send("STOPPING=1\nSTATUS=shutting down");
	event_base_loopbreak(env->d_base);
}

static void
signal_hup_cb(evutil_socket_t sig, short what, void *arg)
{
	struct reload_report	 rep;

	(void)sig;
	(void)what;
	derpd_reload(arg, "SIGHUP", &rep);
}

/*
 * main() is a script (STYLE rule 15): parse, set up each part in order,
 * run the loop, tear down. It is long because each step is one line or
 * one check with its fatal message; splitting it would hide the order.
 */
/*
 * The environment the debug access rule reads (derper's envknobs): one
 * address, and a list of prefixes that must all parse, as derper insists.
 */
static void
debug_env(struct derpd *env)
{
	const char	*ip = getenv("TS_ALLOW_DEBUG_IP");
	const char	*cidrs = getenv("TS_DEBUG_TRUSTED_CIDRS");

	if (ip != NULL && strlen(ip) >= sizeof(env->d_allow_debug_ip))
		fatalx("TS_ALLOW_DEBUG_IP: too long for an address");
	if (ip != NULL)
		util_strlcpy(env->d_allow_debug_ip, ip,
		    sizeof(env->d_allow_debug_ip));
	if (cidrs != NULL && (strlen(cidrs) >= sizeof(env->d_debug_cidrs) ||
	    util_cidr_list_ok(cidrs) != 0))
		fatalx("TS_DEBUG_TRUSTED_CIDRS: not a comma-separated list of "
		    "prefixes: %s", cidrs);
	if (cidrs != NULL)
		util_strlcpy(env->d_debug_cidrs, cidrs,
		    sizeof(env->d_debug_cidrs));
}

/* Engine (main) thread: every worker re-checks its live connections. */
static void
revoke_live(void *arg)
{
	struct derpd *env = arg;

	for (int i = 0; i < env->d_nworkers; i++)
		worker_tick_now(env->d_workers[i]);
}

int
main(int argc, char **argv)
{
	struct derpd_conf	 conf;
	struct derpd		 env;
	struct event		*ev_term, *ev_int, *ev_hup;
	struct ratelim		*limits;
	char			 err[1024], bound[80], hex[KEY_TEXT_SIZE];
	int			 fds[DERPD_MAX_WORKERS], fds80[DERPD_MAX_WORKERS];
	int			 i;

	config_defaults(&conf);
	switch (config_parse(&conf, argc, argv, err, sizeof(err))) {
	case CONFIG_HELP:
		return 0;
	case CONFIG_ERROR:
		fprintf(stderr, "derpd: %s\n", err);
		return 2;
	case CONFIG_OK:
		break;
	}
	if (conf.dc_version) {
		printf("derpd %s\n", DERPD_VERSION);
		return 0;
	}
	if (config_finish(&conf, err, sizeof(err)) == -1) {
		fprintf(stderr, "derpd: %s\n", err);
		return 2;
	}
	/* -rate-config is read now: a bad file is a config error. */
	if ((limits = ratelim_new(&conf, err, sizeof(err))) == NULL) {
		fprintf(stderr, "derpd: %s\n", err);
		return 2;
	}
	log_init(conf.dc_verbose, conf.dc_syslog);
	event_set_log_callback(libevent_log_cb);
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0)
		fatalx("libsodium initialisation failed");
	OPENSSL_init_ssl(0, NULL);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
		fatalx("libcurl initialisation failed");

	memset(&env, 0, sizeof(env));
	env.d_conf = &conf;
	env.d_ratelim = limits;
	env.d_start_time = (int64_t)time(NULL);
	util_hash_seed(env.d_hash_seed);
	debug_env(&env);
	if (conf.dc_dev) {
		const char *mk = getenv("TAILSCALE_DERPER_MESH_KEY");
		if ((env.d_key = keys_generate()) == NULL)
			fatalx("cannot generate a key");
		if (mk != NULL && *mk != '\0') {
			if (keys_parse_mesh(mk, env.d_mesh) != 0)
				fatalx("TAILSCALE_DERPER_MESH_KEY: must be 64 "
				    "hex characters");
			env.d_has_mesh = true;
		}
	} else {
		if ((env.d_key = keys_load_or_create(conf.dc_key_path, err,
		    sizeof(err))) == NULL)
			fatalx("-c: %s", err);
		if (conf.dc_mesh_psk_file[0] != '\0') {
			if (keys_load_mesh(conf.dc_mesh_psk_file, env.d_mesh,
			    err, sizeof(err)) == -1)
				fatalx("-mesh-psk-file: %s", err);
			env.d_has_mesh = true;
		}
	}
	if (conf.dc_mesh_with[0] != '\0' && !env.d_has_mesh)
		fatalx("-mesh-with: requires -mesh-psk-file (the region's mesh "
		    "key)");
	util_key_format(env.d_key->sk_pub, NODEKEY_PREFIX, hex);
	log_info("derpd %s starting; server key %s; %d workers; mesh key %s",
	    DERPD_VERSION, hex, conf.dc_workers, env.d_has_mesh ? "set" :
	    "not set");
	if (conf.dc_tls && (env.d_tls = tls_new(&conf, env.d_key->sk_pub, err,
	    sizeof(err))) == NULL)
		fatalx("%s", err);
	if ((env.d_peers = peers_new(&conn_peers_ops)) == NULL)
		fatalx("out of memory");
	if ((env.d_base = event_base_new()) == NULL)
		fatalx("event_base_new failed");
	/* Signals first: a SIGTERM right after "listening" must stop us. */
	ev_term = evsignal_new(env.d_base, SIGTERM, signal_stop_cb, &env);
	ev_int = evsignal_new(env.d_base, SIGINT, signal_stop_cb, &env);
	ev_hup = evsignal_new(env.d_base, SIGHUP, signal_hup_cb, &env);
	if (ev_term == NULL || ev_int == NULL || ev_hup == NULL ||
	    evsignal_add(ev_term, NULL) == -1 ||
	    evsignal_add(ev_int, NULL) == -1 ||
	    evsignal_add(ev_hup, NULL) == -1)
		fatalx("cannot install signal handlers");

	if (tls_is_acme(env.d_tls) && tls_has_hostname_cert(env.d_tls) &&
	    (env.d_acme = acme_new(&env, false, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if (tls_ip_certs(env.d_tls) && (env.d_acme_ip = acme_new(&env, true,
	    err, sizeof(err))) == NULL)
		fatalx("%s", err);

	/* Resolved on this loop; workers read the answers. */
	if ((env.d_bootdns = bootdns_new(env.d_base, conf.dc_bootstrap_dns,
	    conf.dc_unpublished_dns)) == NULL)
		fatalx("-bootstrap-dns-names: cannot start the resolver");
	env.d_auth_conf = &conf.dc_auth;
	if (auth_conf_enabled(&conf.dc_auth)) {
		/* The engine shares the main loop with signals and STUN. */
		if ((env.d_auth = auth_new(&conf.dc_auth, env.d_base, err,
		    sizeof(err))) == NULL) {
			/* A file a flag names is bad: a configuration error. */
			log_warnx("%s", err);
			exit(2);
		}
		log_info("admission:%s%s%s%s%s%s", conf.dc_auth.ac_allow_file[0] ?
		    " allowlist" : "", conf.dc_auth.ac_verify_clients ?
		    " tailscaled at " : "", conf.dc_auth.ac_verify_clients ?
		    auth_socket_path(&conf.dc_auth) : "",
		    conf.dc_auth.ac_api[0] ? " api " : "", conf.dc_auth.ac_api,
		    conf.dc_auth.ac_url[0] ? " url" : "");
		/* A control-plane sync that revokes keys: re-check everyone. */
		auth_set_revoke_cb(env.d_auth, revoke_live, &env);
		auth_selfcheck(env.d_auth);
	}
	if (conf.dc_admin_socket[0] != '\0' && (env.d_control = control_new(&env,
	    conf.dc_admin_socket, conf.dc_admin_group, conf.dc_admin_socket_ro,
	    err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if (listener_open(conf.dc_listen_host, conf.dc_listen_port,
	    conf.dc_workers, fds, bound, sizeof(bound), err, sizeof(err)) == -1)
		fatalx("-a: %s", err);
	log_info("listening on %s (%s)", bound, conf.dc_tls ? "tls" : "http");
	for (i = 0; i < conf.dc_workers; i++)
		fds80[i] = -1;
	if (conf.dc_tls && conf.dc_http_port != -1) {
		char p80[16];
		snprintf(p80, sizeof(p80), "%d", conf.dc_http_port);
		if (listener_open(conf.dc_listen_host, p80, conf.dc_workers,
		    fds80, bound, sizeof(bound), err, sizeof(err)) == -1)
			fatalx("-http-port: %s", err);
		log_info("listening on %s (http redirect)", bound);
	}
	if (conf.dc_stun && (env.d_stun = stun_server_new(env.d_base,
	    conf.dc_listen_host, conf.dc_stun_port, err, sizeof(err))) == NULL)
		fatalx("%s", err);

	if ((env.d_workers = calloc((size_t)conf.dc_workers,
	    sizeof(*env.d_workers))) == NULL)
		fatalx("out of memory");
	for (i = 0; i < conf.dc_workers; i++) {
		if ((env.d_workers[i] = worker_new(&env, i, fds[i], fds80[i],
		    env.d_auth != NULL ? env.d_auth_conf->ac_reverify_ms : 0,
		    &conn_worker_ops)) == NULL)
			fatalx("cannot create worker %d", i);
		env.d_nworkers++;
	}
	if (conf.dc_mesh_with[0] != '\0') {
		static struct mesh_target t[MESH_MAX_PEERS];
		size_t nt;

		if (mesh_parse_list(conf.dc_mesh_with, t, MESH_MAX_PEERS, &nt,
		    err, sizeof(err)) == -1)
			fatalx("-mesh-with: %s", err);
		if ((env.d_meshnet = mesh_new(&env, t, nt, err,
		    sizeof(err))) == NULL || mesh_start(env.d_meshnet) == -1)
			fatalx("%s", env.d_meshnet == NULL ? err :
			    "-mesh-with: cannot start");
	}
	for (i = 0; i < env.d_nworkers; i++)
		if (worker_start(env.d_workers[i]) == -1)
			fatalx("cannot start worker %d", i);
	/* Every listener is up: a challenge can be answered. */
	if (env.d_acme != NULL)
		acme_start(env.d_acme);
	if (env.d_acme_ip != NULL)
		acme_start(env.d_acme_ip);

	/* Every listener (TCP, STUN, admin socket) is bound by now. */
	log_info("ready");
	notify_ready("ready");
	event_base_dispatch(env.d_base);

	/* Orderly teardown: stop everyone, then free in reverse. */
	mesh_stop(env.d_meshnet);
	for (i = 0; i < env.d_nworkers; i++)
		worker_stop(env.d_workers[i]);
	for (i = 0; i < env.d_nworkers; i++)
		worker_join(env.d_workers[i]);
	mesh_free(env.d_meshnet);	/* its timers are on the workers' bases */
	for (i = 0; i < env.d_nworkers; i++)
		worker_free(env.d_workers[i]);
	free(env.d_workers);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	acme_free(env.d_acme);
	acme_free(env.d_acme_ip);
	control_free(env.d_control);
	bootdns_free(env.d_bootdns);
	auth_free(env.d_auth);
	stun_server_free(env.d_stun);
	peers_free(env.d_peers);
	tls_free(env.d_tls);
	ratelim_free(env.d_ratelim);
	keys_free(env.d_key);
	event_base_free(env.d_base);
	pkt_cache_flush();	/* the workers' packets freed on this thread */
	libevent_global_shutdown();
	curl_global_cleanup();
	log_info("stopped");
	return 0;
}
