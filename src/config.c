/* SPDX-License-Identifier: ISC */
/* config.c: the only file that knows flag syntax; builds struct derpd_conf. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "acme.h"
#include "acme_msg.h"
#include "config.h"
#include "mesh.h"
#include "util.h"

enum flag_type {
	FT_BOOL,
	FT_STRING,
	FT_INT,
	FT_DURATION,
	FT_FLOAT,
	FT_INT64,
};

struct flag_def {
	const char	*f_name;
	enum flag_type	 f_type;
	size_t		 f_off;		/* offset in struct derpd_conf */
	size_t		 f_size;	/* for strings */
	int		 f_supported;
	const char	*f_help;
	const char	*f_default;	/* not supported: derper's default */
};

#define OFF(f)	offsetof(struct derpd_conf, f)
#define SZ(f)	sizeof(((struct derpd_conf *)0)->f)
#define STR(name, f, help)	{ name, FT_STRING, OFF(f), SZ(f), 1, help, NULL }
#define NOSUP(name, type, help, def) { name, type, 0, 0, 0, help, def }

static const struct flag_def flags[] = {
	STR("a", dc_addr, "HTTP(S) listen address, :port or ip:port"),
	{ "http-port", FT_INT, OFF(dc_http_port), 0, 1,
	    "plain-HTTP port in TLS mode (redirects, /generate_204); -1 off", NULL },
	{ "stun-port", FT_INT, OFF(dc_stun_port), 0, 1, "UDP STUN port", NULL },
	{ "stun", FT_BOOL, OFF(dc_stun), 0, 1, "run the STUN server", NULL },
	{ "derp", FT_BOOL, OFF(dc_derp), 0, 1, "serve DERP at /derp", NULL },
	STR("c", dc_key_path, "key file path"),
	{ "dev", FT_BOOL, OFF(dc_dev), 0, 1,
	    "development mode: 127.0.0.1:3340, plain HTTP, ephemeral key", NULL },
	{ "version", FT_BOOL, OFF(dc_version), 0, 1, "print version and exit", NULL },
	STR("certmode", dc_certmode,
	    "certificate mode: manual, letsencrypt or gcp"),
	STR("certdir", dc_certdir,
	    "certificates: ACME cache, or <hostname>.crt and .key"),
	STR("acme-email", dc_acme_email, "ACME account contact email"),
	STR("acme-eab-kid", dc_acme_eab_kid,
	    "ACME External Account Binding key id (gcp)"),
	STR("acme-eab-key", dc_acme_eab_key,
	    "ACME EAB HMAC key, base64 or base64url (gcp)"),
	{ "acme-ip-certs", FT_BOOL, OFF(dc_acme_ip_certs), 0, 1,
	    "Let's Encrypt certificates for the addresses clients reach", NULL },
	STR("acme-directory", dc_acme_directory,
	    "ACME directory URL (default: by -certmode)"),
	{ "tls", FT_BOOL, OFF(dc_tls_any_port), 0, 1,
	    "serve TLS on -a whatever its port (derper: :443 only)", NULL },
	STR("hostname", dc_hostname, "TLS host name"),
	STR("home", dc_home, "home page: \"\", blank, or an http(s) URL"),
	STR("mesh-psk-file", dc_mesh_psk_file, "file with the 64-hex mesh key"),
	STR("mesh-with", dc_mesh_with, "mesh peers: host[:port][/dialhost],..."),
	{ "tcp-keepalive-time", FT_DURATION, OFF(dc_tcp_keepalive_ms), 0, 1,
	    "TCP keepalive idle time", NULL },
	{ "tcp-user-timeout", FT_DURATION, OFF(dc_tcp_user_timeout_ms), 0, 1,
	    "TCP_USER_TIMEOUT on accepted sockets", NULL },
	{ "tcp-write-timeout", FT_DURATION, OFF(dc_tcp_write_timeout_ms), 0, 1,
	    "per-frame write timeout for non-mesh clients; 0 none", NULL },
	STR("bootstrap-dns-names", dc_bootstrap_dns,
	    "names served at /bootstrap-dns, comma-separated"),
	STR("unpublished-bootstrap-dns-names", dc_unpublished_dns,
	    "names served at /bootstrap-dns?q=name only; name[/txtname],..."),
	{ "accept-connection-limit", FT_FLOAT, OFF(dc_accept_limit), 0, 1,
	    "new connections accepted per second on the listener", NULL },
	{ "accept-connection-burst", FT_INT64, OFF(dc_accept_burst), 0, 1,
	    "burst for -accept-connection-limit", NULL },
	STR("rate-config", dc_rate_config,
	    "JSON file of the per-client receive rate, reloaded on SIGHUP"),
	{ "mesh-max-routes", FT_INT, OFF(dc_mesh_max_routes), 0, 1,
	    "most keys one -mesh-with peer may announce", NULL },
	{ "workers", FT_INT, OFF(dc_workers), 0, 1,
	    "worker threads (default: online CPUs)", NULL },
	{ "handshake-timeout", FT_DURATION, OFF(dc_handshake_timeout_ms), 0, 1,
	    "limit for TLS + HTTP head, and for ClientInfo", NULL },
	{ "verbose", FT_BOOL, OFF(dc_verbose), 0, 1, "log debug lines", NULL },
	{ "syslog", FT_BOOL, OFF(dc_syslog), 0, 1, "log to syslog", NULL },
	{ "verify-clients", FT_BOOL, OFF(dc_auth.ac_verify_clients), 0, 1,
	    "admit only node keys the local tailscaled knows", NULL },
	STR("socket", dc_auth.ac_socket, "tailscaled socket for -verify-clients"),
	STR("verify-client-url", dc_auth.ac_url,
	    "admission controller URL (POST JSON)"),
	{ "verify-client-url-fail-open", FT_BOOL, OFF(dc_auth.ac_url_fail_open),
	    0, 1, "admit when the controller is unreachable", NULL },
	STR("allow-keys", dc_auth.ac_allow_file,
	    "file of allowed node keys, reloaded on SIGHUP"),
	{ "auth-cache-allow-ttl", FT_DURATION, OFF(dc_auth.ac_allow_ttl_ms), 0,
	    1, "how long an admission is cached; 0 disables", NULL },
	{ "auth-cache-deny-ttl", FT_DURATION, OFF(dc_auth.ac_deny_ttl_ms), 0, 1,
	    "how long a refusal is cached; 0 disables", NULL },
	{ "auth-cache-size", FT_INT, OFF(dc_auth.ac_cache_size), 0, 1,
	    "most cached admission decisions", NULL },
	{ "auth-timeout", FT_DURATION, OFF(dc_auth.ac_timeout_ms), 0, 1,
	    "limit for one backend request", NULL },
	STR("admin-socket", dc_admin_socket,
	    "admin socket path for derpctl (default: none)"),
	STR("admin-socket-group", dc_admin_group,
	    "group of the admin sockets (mode 0660, else 0600)"),
	STR("admin-socket-ro", dc_admin_socket_ro,
	    "read-only admin socket: show commands only"),
	{ "auth-reverify", FT_DURATION, OFF(dc_auth.ac_reverify_ms), 0, 1,
	    "re-check live connections this often; 0 disables", NULL },
	{ "auth-max-inflight", FT_INT, OFF(dc_auth.ac_max_inflight), 0, 1,
	    "backend requests at once; more wait in a queue", NULL },
	{ "auth-max-pending-per-source", FT_INT,
	    OFF(dc_auth.ac_max_pending_per_source), 0, 1,
	    "checks pending per client address or IPv6 /64; more are refused", NULL },
	STR("admission-policy", dc_auth.ac_policy_file,
	    "admission policy file (JSON rules; needs -verify-clients or "
	    "-verify-clients-api)"),
	STR("verify-clients-api", dc_auth.ac_api,
	    "admit the node keys the control plane lists: tailscale or "
	    "headscale"),
	STR("verify-clients-api-url", dc_auth.ac_api_url,
	    "control plane API base URL (tailscale: https://api.tailscale.com)"),
	STR("verify-clients-api-tailnet", dc_auth.ac_api_tailnet,
	    "tailnet to list (\"-\": the credential's own)"),
	STR("verify-clients-api-credentials", dc_auth.ac_api_creds,
	    "JSON file (mode 0600) with an api_key or an OAuth client"),
	{ "verify-clients-api-interval", FT_DURATION,
	    OFF(dc_auth.ac_api_interval_ms), 0, 1,
	    "fetch the whole set this often", NULL },
	{ "verify-clients-api-min-refresh", FT_DURATION,
	    OFF(dc_auth.ac_api_min_refresh_ms), 0, 1,
	    "an unknown key starts a sync at most this often", NULL },
	STR("verify-clients-api-state", dc_auth.ac_api_state,
	    "file keeping the last good set (default: beside -c; none: off)"),
	STR("admission-log", dc_auth.ac_audit_file,
	    "admission audit log: a JSON line per decision"),
	/*
	 * derper's flags derpd does not implement yet: refused unless the
	 * value is derper's default (a templated unit file passes them all),
	 * which is accepted and changes nothing. "$HOME" in a default is
	 * the environment's HOME.
	 */
	NOSUP("secrets-url", FT_STRING, "setec server URL", ""),
	NOSUP("secrets-path-prefix", FT_STRING, "setec secret prefix",
	    "prod/derp"),
	NOSUP("secrets-cache-dir", FT_STRING, "setec cache directory",
	    "$HOME/.cache/derper-secrets"),
	NOSUP("ace", FT_BOOL, "experimental CONNECT proxy", "false"),
};

void
config_defaults(struct derpd_conf *c)
{
	memset(c, 0, sizeof(*c));
	util_strlcpy(c->dc_addr, ":443", sizeof(c->dc_addr));
	c->dc_http_port = 80;
	c->dc_stun_port = 3478;
	c->dc_stun = true;
	c->dc_derp = true;
	util_strlcpy(c->dc_certmode, "letsencrypt", sizeof(c->dc_certmode));
	util_strlcpy(c->dc_hostname, "derp.tailscale.com",
	    sizeof(c->dc_hostname));
	c->dc_tcp_keepalive_ms = 10 * 60 * 1000;
	c->dc_tcp_user_timeout_ms = 15 * 1000;
	c->dc_tcp_write_timeout_ms = 2 * 1000;
	c->dc_handshake_timeout_ms = 10 * 1000;
	c->dc_mesh_max_routes = 1000000;
	c->dc_accept_limit = INFINITY;
	c->dc_accept_burst = INT64_MAX;
	auth_conf_defaults(&c->dc_auth);
}

static int	parse_bool(const char *, bool *);

/* A duration as Go prints one: 10m0s, 15s, 1h0m0s, 250ms, 1.5s. */
static void
fmt_duration(int64_t ms, char *out, size_t len)
{
	if (ms % 1000 == 0)
		util_duration_format(ms / 1000, out, len);
	else if (ms < 1000)
		snprintf(out, len, "%lldms", (long long)ms);
	else
		snprintf(out, len, "%lld.%03llds", (long long)(ms / 1000),
		    (long long)(ms % 1000));
}

/* Flag fd's default as Go's flag package prints it; "" for a zero value. */
static void
flag_default_text(const struct flag_def *fd, const struct derpd_conf *d,
    char *out, size_t len)
{
	const char *p = (const char *)d + fd->f_off;

	out[0] = '\0';
	if (!fd->f_supported) {
		if (strcmp(fd->f_default, "") != 0 &&
		    strcmp(fd->f_default, "false") != 0)
			snprintf(out, len, fd->f_type == FT_STRING ? "\"%s\"" :
			    "%s", fd->f_default);
		return;
	}
	switch (fd->f_type) {
	case FT_BOOL:
		if (*(const bool *)(const void *)p)
			snprintf(out, len, "true");
		break;
	case FT_STRING:
		if (*p != '\0')
			snprintf(out, len, "\"%s\"", p);
		break;
	case FT_INT: {
		int v;
		memcpy(&v, p, sizeof(v));
		if (v != 0)
			snprintf(out, len, "%d", v);
		break;
	}
	case FT_DURATION: {
		int64_t v;
		memcpy(&v, p, sizeof(v));
		if (v != 0)
			fmt_duration(v, out, len);
		break;
	}
	case FT_FLOAT: {
		double v;
		memcpy(&v, p, sizeof(v));
		if (isinf(v) && v > 0)
			snprintf(out, len, "+Inf");
		else if (v != 0)
			snprintf(out, len, "%g", v);
		break;
	}
	case FT_INT64: {
		int64_t v;
		memcpy(&v, p, sizeof(v));
		if (v != 0)
			snprintf(out, len, "%lld", (long long)v);
		break;
	}
	}
}

void
config_usage(FILE *f)
{
	struct derpd_conf	 d;
	char			 def[320];

	config_defaults(&d);
	fprintf(f, "Usage of derpd:\n");
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		flag_default_text(&flags[i], &d, def, sizeof(def));
		fprintf(f, "  -%s%s\n    \t%s%s%s%s%s\n", flags[i].f_name,
		    flags[i].f_type == FT_BOOL ? "" :
		    flags[i].f_type == FT_DURATION ? " duration" :
		    flags[i].f_type == FT_INT ||
		    flags[i].f_type == FT_INT64 ? " int" :
		    flags[i].f_type == FT_FLOAT ? " float" : " string",
		    flags[i].f_help,
		    flags[i].f_supported ? "" : " (not supported yet: only "
		    "derper's default is accepted)",
		    def[0] ? " (default " : "", def, def[0] ? ")" : "");
	}
}

/* Is v derper's default for unsupported flag fd (so it changes nothing)? */
static bool
nosup_is_default(const struct flag_def *fd, const char *v)
{
	const char	*home = getenv("HOME");
	char		 exp[PATH_MAX], *end;
	bool		 b;

	switch (fd->f_type) {
	case FT_BOOL:
		return parse_bool(v, &b) == 0 && !b;
	case FT_FLOAT: {
		/* Go's ParseFloat: +Inf, inf, Infinity, any case. */
		double d = strtod(v, &end);
		return *v != '\0' && *end == '\0' && isinf(d) && d > 0;
	}
	case FT_INT: {
		long long ll;
		errno = 0;
		ll = strtoll(v, &end, 0);
		return *v != '\0' && *end == '\0' && errno == 0 &&
		    ll == LLONG_MAX;
	}
	case FT_STRING:
	case FT_DURATION:
	case FT_INT64:
		break;
	}
	if (strncmp(fd->f_default, "$HOME", 5) == 0) {
		snprintf(exp, sizeof(exp), "%s%s", home ? home : "",
		    fd->f_default + 5);
		return strcmp(v, exp) == 0;
	}
	return strcmp(v, fd->f_default) == 0;
}

static const struct flag_def *
flag_find(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++)
		if (strlen(flags[i].f_name) == len &&
		    strncmp(flags[i].f_name, name, len) == 0)
			return &flags[i];
	return NULL;
}

static int
parse_bool(const char *v, bool *out)
{
	static const char *const t[] = { "1", "t", "T", "true", "TRUE",
	    "True" };
	static const char *const f[] = { "0", "f", "F", "false", "FALSE",
	    "False" };

	for (size_t i = 0; i < 6; i++) {
		if (strcmp(v, t[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(v, f[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

static int
flag_set(struct derpd_conf *c, const struct flag_def *fd, const char *v,
    char *err, size_t errlen)
{
	char		*p = (char *)c + fd->f_off, *end;
	long long	 ll;
	bool		 b;
	int64_t		 ms;

	switch (fd->f_type) {
	case FT_BOOL:
		if (parse_bool(v, &b) == -1)
			goto bad;
		memcpy(p, &b, sizeof(b));
		break;
	case FT_STRING:
		if (util_strlcpy(p, v, fd->f_size) >= fd->f_size) {
			snprintf(err, errlen, "-%s: value too long",
			    fd->f_name);
			return -1;
		}
		break;
	case FT_INT:
		errno = 0;
		ll = strtoll(v, &end, 0);
		if (errno != 0 || *v == '\0' || *end != '\0' ||
		    ll < -2147483647LL || ll > 2147483647LL)
			goto bad;
		{
			int iv = (int)ll;
			memcpy(p, &iv, sizeof(iv));
		}
		break;
	case FT_DURATION:
		if (util_duration_parse(v, &ms) == -1)
			goto bad;
		memcpy(p, &ms, sizeof(ms));
		break;
	case FT_FLOAT: {
		/* Go's ParseFloat: decimal, +Inf, Inf; no NaN, no hex. */
		double d;
		if (*v == '\0' || strchr(v, 'x') != NULL ||
		    strchr(v, 'X') != NULL)
			goto bad;
		errno = 0;
		d = strtod(v, &end);
		if (*end != '\0' || isnan(d) || (errno == ERANGE && d != 0))
			goto bad;
		memcpy(p, &d, sizeof(d));
		break;
	}
	case FT_INT64:
		errno = 0;
		ll = strtoll(v, &end, 0);
		if (errno != 0 || *v == '\0' || *end != '\0')
			goto bad;
		{
			int64_t iv = ll;
			memcpy(p, &iv, sizeof(iv));
		}
		break;
	}
	return 0;
bad:
	snprintf(err, errlen, "invalid value \"%s\" for flag -%s", v,
	    fd->f_name);
	return -1;
}

enum config_result
config_parse(struct derpd_conf *c, int argc, char **argv, char *err,
    size_t errlen)
{
	int	 i;

	for (i = 1; i < argc; i++) {
		const char		*a = argv[i], *name, *eq, *val;
		const struct flag_def	*fd;
		size_t			 nlen;

		if (a[0] != '-' || a[1] == '\0')
			break;
		if (strcmp(a, "--") == 0) {
			i++;
			break;
		}
		name = a + 1;
		if (*name == '-')
			name++;
		if (*name == '-' || *name == '=') {
			snprintf(err, errlen, "bad flag syntax: %s", a);
			return CONFIG_ERROR;
		}
		eq = strchr(name, '=');
		nlen = eq ? (size_t)(eq - name) : strlen(name);
		if ((nlen == 1 && name[0] == 'h') ||
		    (nlen == 4 && strncmp(name, "help", 4) == 0)) {
			config_usage(stderr);	/* as Go's flag package */
			return CONFIG_HELP;
		}
		if ((fd = flag_find(name, nlen)) == NULL) {
			snprintf(err, errlen, "flag provided but not defined: "
			    "-%.*s", (int)nlen, name);
			return CONFIG_ERROR;
		}
		if (eq != NULL)
			val = eq + 1;
		else if (fd->f_type == FT_BOOL)
			val = "true";
		else if (i + 1 < argc)
			val = argv[++i];
		else {
			snprintf(err, errlen, "flag needs an argument: -%s",
			    fd->f_name);
			return CONFIG_ERROR;
		}
		if (!fd->f_supported) {
			if (nosup_is_default(fd, val))
				continue;	/* derper's default: a no-op */
			snprintf(err, errlen, "-%s: not supported yet by derpd "
			    "(%s); only derper's default is accepted", fd->f_name,
			    fd->f_help);
			return CONFIG_ERROR;
		}
		if (flag_set(c, fd, val, err, errlen) == -1)
			return CONFIG_ERROR;
	}
	if (i < argc) {
		snprintf(err, errlen, "unexpected argument: %s", argv[i]);
		return CONFIG_ERROR;
	}
	return CONFIG_OK;
}

static int
file_exists(const char *p)
{
	return access(p, F_OK) == 0;
}

/*
 * The certificate flags in TLS mode, with derper's messages (its
 * certProviderByCertMode); fills the ACME directory by mode.
 */
static int
config_certmode(struct derpd_conf *c, char *err, size_t errlen)
{
	bool	 ip = util_is_ip_literal(c->dc_hostname);
	bool	 le = strcmp(c->dc_certmode, "letsencrypt") == 0;
	bool	 gcp = strcmp(c->dc_certmode, "gcp") == 0;
	uint8_t	 k[512];

	/* A typo is an error even where derper would not look at it. */
	if (!le && !gcp && strcmp(c->dc_certmode, "manual") != 0) {
		snprintf(err, errlen, "-certmode: unsupport cert mode: \"%s\" "
		    "(want manual, letsencrypt or gcp)", c->dc_certmode);
		return -1;
	}
	if (!c->dc_tls)
		return 0;
	if (c->dc_acme_ip_certs && !le) {
		snprintf(err, errlen, "-acme-ip-certs: --acme-ip-certs requires "
		    "--certmode=letsencrypt");
		return -1;
	}
	if (!le && !gcp)
		return 0;
	if (c->dc_acme_ip_certs && c->dc_http_port == -1) {
		snprintf(err, errlen, "-acme-ip-certs: needs -http-port: IP "
		    "address certificates are validated by HTTP-01");
		return -1;
	}
	if (ip && gcp) {
		snprintf(err, errlen, "-hostname: --certmode=gcp requires "
		    "--hostname to be a DNS name, not an IP address");
		return -1;
	}
	if (ip && !c->dc_acme_ip_certs) {
		snprintf(err, errlen, "-hostname: --hostname is an IP address; "
		    "use --certmode=manual for a self-signed cert, or set "
		    "--acme-ip-certs to get LetsEncrypt IP address certs");
		return -1;
	}
	if (gcp && (c->dc_acme_eab_kid[0] == '\0' ||
	    c->dc_acme_eab_key[0] == '\0')) {
		snprintf(err, errlen, "-certmode: --certmode=gcp requires "
		    "--acme-eab-kid and --acme-eab-key flags");
		return -1;
	}
	if (gcp && c->dc_acme_email[0] == '\0') {
		snprintf(err, errlen, "-certmode: --certmode=gcp requires "
		    "--acme-email flag");
		return -1;
	}
	if (c->dc_acme_eab_key[0] != '\0' &&
	    acme_b64_decode(c->dc_acme_eab_key, k, sizeof(k)) <= 0) {
		snprintf(err, errlen, "-acme-eab-key: invalid base64 encoding "
		    "for EAB key");
		return -1;
	}
	if ((c->dc_acme_eab_kid[0] == '\0') != (c->dc_acme_eab_key[0] ==
	    '\0')) {
		snprintf(err, errlen, "-acme-eab-kid: needs -acme-eab-key, and "
		    "the other way round");
		return -1;
	}
	if (c->dc_acme_directory[0] == '\0')
		util_strlcpy(c->dc_acme_directory, gcp ? ACME_DIR_GCP :
		    ACME_DIR_LETSENCRYPT, sizeof(c->dc_acme_directory));
	else if (strncmp(c->dc_acme_directory, "https://", 8) != 0) {
		snprintf(err, errlen, "-acme-directory: \"%s\" is not an "
		    "https:// URL", c->dc_acme_directory);
		return -1;
	}
	return 0;
}

/* An API URL: https://, or http:// to this host only (the key travels). */
static bool
api_url_ok(const char *u)
{
	char		 host[256];
	const char	*h, *end;
	size_t		 n;

	if (strncmp(u, "https://", 8) == 0)
		return u[8] != '\0' && u[8] != '/';
	if (strncmp(u, "http://", 7) != 0)
		return false;
	h = u + 7;
	if (*h == '[') {
		if ((end = strchr(h, ']')) == NULL)
			return false;
		h++;
	} else
		end = h + strcspn(h, ":/?#");
	n = (size_t)(end - h);
	if (n == 0 || n >= sizeof(host))
		return false;
	memcpy(host, h, n);
	host[n] = '\0';
	if (strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
		return true;
	return strncmp(host, "127.", 4) == 0 && util_is_ip_literal(host);
}

/* -verify-clients-api and its companions. */
static int
config_check_api(const struct derpd_conf *c, char *err, size_t errlen)
{
	const struct auth_conf *a = &c->dc_auth;

	if (a->ac_api[0] == '\0') {
		if (a->ac_api_url[0] != '\0' || a->ac_api_creds[0] != '\0') {
			snprintf(err, errlen, "-verify-clients-api-%s: needs "
			    "-verify-clients-api tailscale|headscale",
			    a->ac_api_url[0] != '\0' ? "url" : "credentials");
			return -1;
		}
		return 0;
	}
	if (strcmp(a->ac_api, "tailscale") != 0 &&
	    strcmp(a->ac_api, "headscale") != 0) {
		snprintf(err, errlen, "-verify-clients-api: \"%s\" is not "
		    "tailscale or headscale", a->ac_api);
		return -1;
	}
	if (strcmp(a->ac_api, "headscale") == 0 && a->ac_api_url[0] == '\0') {
		snprintf(err, errlen, "-verify-clients-api-url: required with "
		    "-verify-clients-api headscale (your headscale's URL)");
		return -1;
	}
	if (a->ac_api_url[0] != '\0' && !api_url_ok(a->ac_api_url)) {
		snprintf(err, errlen, "-verify-clients-api-url: \"%s\" must be "
		    "https://, or http:// to a loopback address", a->ac_api_url);
		return -1;
	}
	if (a->ac_api_creds[0] == '\0') {
		snprintf(err, errlen, "-verify-clients-api-credentials: "
		    "required with -verify-clients-api (a JSON file with an "
		    "api_key or an OAuth client)");
		return -1;
	}
	if (a->ac_api_tailnet[0] == '\0' ||
	    strpbrk(a->ac_api_tailnet, "/?# ") != NULL) {
		snprintf(err, errlen, "-verify-clients-api-tailnet: \"%s\" is "
		    "not a tailnet name (\"-\" is the credential's own)",
		    a->ac_api_tailnet);
		return -1;
	}
	if (a->ac_api_interval_ms < 1000) {
		snprintf(err, errlen, "-verify-clients-api-interval: at least 1s");
		return -1;
	}
	if (a->ac_api_min_refresh_ms < 100) {
		snprintf(err, errlen,
		    "-verify-clients-api-min-refresh: at least 100ms");
		return -1;
	}
	return 0;
}

/* The state file: beside the -c key unless named, "none" for none. */
static void
config_api_state(struct derpd_conf *c)
{
	struct auth_conf	*a = &c->dc_auth;
	const char		*slash;

	if (a->ac_api[0] == '\0' || strcmp(a->ac_api_state, "none") == 0) {
		a->ac_api_state[0] = '\0';
		return;
	}
	if (a->ac_api_state[0] != '\0' || c->dc_key_path[0] == '\0')
		return;
	if ((slash = strrchr(c->dc_key_path, '/')) == NULL)
		snprintf(a->ac_api_state, sizeof(a->ac_api_state),
		    "derpd-admission-api.json");
	else
		snprintf(a->ac_api_state, sizeof(a->ac_api_state),
		    "%.*s/derpd-admission-api.json",
		    (int)(slash - c->dc_key_path), c->dc_key_path);
}

/*
 * Validate the whole configuration and fill the derived values. Long on
 * purpose: one check per flag or combination, each with its own message,
 * in the order an operator reads derpd(8).
 */
int
config_finish(struct derpd_conf *c, char *err, size_t errlen)
{
	const char	*home = getenv("HOME"), *xdg = getenv("XDG_CACHE_HOME");
	char		 p[PATH_MAX];

	if (c->dc_dev) {
		util_strlcpy(c->dc_addr, DERPD_DEV_ADDR, sizeof(c->dc_addr));
		if (c->dc_admin_socket[0] == '\0')
			util_strlcpy(c->dc_admin_socket, "derpd.sock",
			    sizeof(c->dc_admin_socket));
		c->dc_key_path[0] = '\0';
	}
	if (util_hostport_split(c->dc_addr, c->dc_listen_host,
	    sizeof(c->dc_listen_host), c->dc_listen_port,
	    sizeof(c->dc_listen_port)) == -1) {
		snprintf(err, errlen, "-a: bad listen address \"%s\" (want "
		    ":port, ip:port or [ip6]:port)", c->dc_addr);
		return -1;
	}
	if (strcmp(c->dc_listen_port, "https") == 0)
		util_strlcpy(c->dc_listen_port, "443",
		    sizeof(c->dc_listen_port));
	else if (strcmp(c->dc_listen_port, "http") == 0)
		util_strlcpy(c->dc_listen_port, "80",
		    sizeof(c->dc_listen_port));
	{
		char *end;
		long port = strtol(c->dc_listen_port, &end, 10);
		if (*end != '\0' || port < 0 || port > 65535) {
			snprintf(err, errlen, "-a: bad port \"%s\"",
			    c->dc_listen_port);
			return -1;
		}
		c->dc_tls = !c->dc_dev && (port == 443 ||
		    c->dc_tls_any_port ||
		    strcmp(c->dc_certmode, "manual") == 0);
	}
	if (c->dc_stun_port < 0 || c->dc_stun_port > 65535) {
		snprintf(err, errlen, "-stun-port: %d out of range",
		    c->dc_stun_port);
		return -1;
	}
	if (c->dc_http_port < -1 || c->dc_http_port > 65535) {
		snprintf(err, errlen, "-http-port: %d out of range",
		    c->dc_http_port);
		return -1;
	}
	if (config_certmode(c, err, errlen) == -1)
		return -1;
	if (c->dc_home[0] != '\0' && strcmp(c->dc_home, "blank") != 0 &&
	    strncmp(c->dc_home, "http://", 7) != 0 &&
	    strncmp(c->dc_home, "https://", 8) != 0) {
		snprintf(err, errlen, "-home: \"%s\" must be empty, \"blank\" "
		    "or an http(s):// URL", c->dc_home);
		return -1;
	}
	if (c->dc_tcp_write_timeout_ms < 0 || c->dc_tcp_user_timeout_ms < 0 ||
	    c->dc_tcp_keepalive_ms < 0) {
		snprintf(err, errlen, "-tcp-*: durations must not be negative");
		return -1;
	}
	if (c->dc_handshake_timeout_ms <= 0) {
		snprintf(err, errlen, "-handshake-timeout: must be positive");
		return -1;
	}
	if (c->dc_auth.ac_allow_ttl_ms < 0 || c->dc_auth.ac_deny_ttl_ms < 0) {
		snprintf(err, errlen, "-auth-cache-*-ttl: must not be negative");
		return -1;
	}
	if (c->dc_admin_socket_ro[0] != '\0' && c->dc_admin_socket[0] == '\0') {
		snprintf(err, errlen, "-admin-socket-ro: needs -admin-socket");
		return -1;
	}
	if (c->dc_auth.ac_reverify_ms < 0) {
		snprintf(err, errlen, "-auth-reverify: must not be negative");
		return -1;
	}
	if (c->dc_auth.ac_reverify_ms > 0 && c->dc_auth.ac_reverify_ms < 100) {
		snprintf(err, errlen, "-auth-reverify: at least 100ms");
		return -1;
	}
	if (config_check_api(c, err, errlen) == -1)
		return -1;
	if (c->dc_auth.ac_policy_file[0] != '\0' &&
	    !c->dc_auth.ac_verify_clients && c->dc_auth.ac_api[0] == '\0') {
		snprintf(err, errlen, "-admission-policy: needs -verify-clients "
		    "or -verify-clients-api (the policy applies to what "
		    "tailscaled or the control plane says of a node)");
		return -1;
	}
	if (c->dc_auth.ac_audit_file[0] != '\0' &&
	    !auth_conf_enabled(&c->dc_auth)) {
		snprintf(err, errlen, "-admission-log: needs an admission "
		    "backend (-verify-clients, -verify-clients-api, "
		    "-verify-client-url or -allow-keys)");
		return -1;
	}
	if (c->dc_auth.ac_cache_size < 1) {
		snprintf(err, errlen, "-auth-cache-size: must be at least 1");
		return -1;
	}
	if (c->dc_auth.ac_timeout_ms <= 0) {
		snprintf(err, errlen, "-auth-timeout: must be positive");
		return -1;
	}
	if (c->dc_auth.ac_max_inflight < 1) {
		snprintf(err, errlen, "-auth-max-inflight: must be at least 1");
		return -1;
	}
	if (c->dc_auth.ac_max_pending_per_source < 1) {
		snprintf(err, errlen,
		    "-auth-max-pending-per-source: must be at least 1");
		return -1;
	}
	{
		static struct mesh_target t[MESH_MAX_PEERS];
		size_t nt;
		char why[200];
		if (mesh_parse_list(c->dc_mesh_with, t, MESH_MAX_PEERS, &nt, why,
		    sizeof(why)) == -1) {
			snprintf(err, errlen, "-mesh-with: %s", why);
			return -1;
		}
	}
	if (c->dc_accept_limit < 0) {
		snprintf(err, errlen, "-accept-connection-limit: must not be "
		    "negative");
		return -1;
	}
	if (c->dc_accept_burst < 0) {
		snprintf(err, errlen, "-accept-connection-burst: must not be "
		    "negative");
		return -1;
	}
	if (c->dc_mesh_max_routes < 1) {
		snprintf(err, errlen, "-mesh-max-routes: must be at least 1");
		return -1;
	}
	if (c->dc_workers < 0 || c->dc_workers > DERPD_MAX_WORKERS) {
		snprintf(err, errlen, "-workers: %d out of range 0..%d",
		    c->dc_workers, DERPD_MAX_WORKERS);
		return -1;
	}
	if (c->dc_workers == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c->dc_workers = n < 1 ? 1 : n > DERPD_MAX_WORKERS ?
		    DERPD_MAX_WORKERS : (int)n;
	}
	if (c->dc_certdir[0] == '\0') {
		if (xdg != NULL && *xdg != '\0')
			snprintf(p, sizeof(p), "%s/tailscale/derper-certs", xdg);
		else if (home != NULL && *home != '\0')
			snprintf(p, sizeof(p), "%s/.cache/tailscale/"
			    "derper-certs", home);
		else
			p[0] = '\0';
		util_strlcpy(c->dc_certdir, p, sizeof(c->dc_certdir));
	}
	if (c->dc_tls && c->dc_certdir[0] == '\0') {
		snprintf(err, errlen, "-certdir: must not be empty in TLS mode");
		return -1;
	}
	if (!c->dc_dev && c->dc_key_path[0] == '\0') {
		if (geteuid() != 0) {
			snprintf(err, errlen, "-c: a key file path is required "
			    "when not running as root (or use -dev)");
			return -1;
		}
		util_strlcpy(c->dc_key_path, DERPD_DEFAULT_KEY,
		    sizeof(c->dc_key_path));
	}
	if (c->dc_mesh_psk_file[0] == '\0' && !c->dc_dev) {
		if (file_exists("/home/derp/keys/derp-mesh.key"))
			util_strlcpy(c->dc_mesh_psk_file,
			    "/home/derp/keys/derp-mesh.key",
			    sizeof(c->dc_mesh_psk_file));
		else if (home != NULL && snprintf(p, sizeof(p),
		    "%s/keys/derp-mesh.key", home) > 0 && file_exists(p))
			util_strlcpy(c->dc_mesh_psk_file, p,
			    sizeof(c->dc_mesh_psk_file));
	}
	config_api_state(c);
	return 0;
}
