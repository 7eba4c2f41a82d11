/* SPDX-License-Identifier: ISC */
/* tls.h: OpenSSL server context, manual certs, IP self-signed, meta cert. */
#ifndef DERPD_TLS_H
#define DERPD_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tls_state;
struct derpd_conf;

#define TLS_ALPN_ACME	"acme-tls/1"
#define TLS_TOKEN_MAX	256	/* an HTTP-01 token */
#define TLS_ANSWER_MAX	512	/* its key authorization */
#define TLS_CACHE_MAX	(1024 * 1024)	/* an ACME cache file */
#define TLS_MAX_IPS	64	/* -acme-ip-certs: local addresses */

/* The certificate being served, for derpctl show certs and metrics. */
struct tls_cert_info {
	bool	 ci_present;		/* false: none yet (ACME) */
	char	 ci_name[256];		/* -hostname */
	char	 ci_source[4096];	/* file it came from */
	char	 ci_issuer[256];	/* issuer CN (or the whole name) */
	char	 ci_serial[80];		/* hex */
	char	 ci_sha256[65];		/* of the leaf DER, hex */
	time_t	 ci_not_before;
	time_t	 ci_not_after;
};

/*
 * Build the TLS state for --certmode=manual: load (or, for an IP
 * hostname, create) <certdir>/<name>.crt|.key, check the hostname, add
 * the meta cert for pub. NULL with a message in err.
 */
struct tls_state *tls_new(const struct derpd_conf *, const uint8_t pub[32],
	    char *err, size_t errlen);
/* Free; NULL is a no-op. Live SSL objects keep their own context. */
void	tls_free(struct tls_state *);
/* A new server SSL from the current context; NULL on failure. */
SSL	*tls_ssl_new(struct tls_state *);
/*
 * Re-read the certificate files into a new context and swap it in.
 * Existing connections keep theirs. 0, or -1 with err (old one kept).
 */
int	tls_reload(struct tls_state *, char *err, size_t errlen);
/* -certmode letsencrypt or gcp: certificates come from ACME (acme.c). */
bool	tls_is_acme(const struct tls_state *);
/* ACME: the autocert cache file, <certdir>/<hostname>. */
const char *tls_cache_path(const struct tls_state *);
/*
 * ACME: serve the cache-file text pem (key, then chain, leaf first):
 * checked (key matches, valid now, valid for -hostname) and swapped in,
 * no connection dropped. 0, or -1 with err (the old one kept).
 */
int	tls_install_pem(struct tls_state *, const char *pem, size_t len,
	    char *err, size_t errlen);
/* A copy of what is served now (ci_present false: nothing yet). */
void	tls_cert_info(struct tls_state *, struct tls_cert_info *);
/*
 * HTTP-01: answer token with answer (NULL, NULL: none). A worker asks
 * with tls_http_challenge: true and the answer in out when it matches.
 */
void	tls_set_http_challenge(struct tls_state *, const char *token,
	    const char *answer);
bool	tls_http_challenge(struct tls_state *, const char *token, char *out,
	    size_t outlen);
/*
 * TLS-ALPN-01: serve a certificate for -hostname carrying the
 * acmeIdentifier extension of digest (SHA-256 of the key authorization)
 * to ClientHellos offering "acme-tls/1"; NULL removes it. 0 or -1.
 */
int	tls_set_alpn_challenge(struct tls_state *, const unsigned char *digest);
/*
 * -acme-ip-certs. tls_ip_certs: on. tls_has_hostname_cert: false for an
 * IP-only server (an IP -hostname), which has certificates per address
 * only. A handshake with no SNI or an IP SNI (equal to the address the
 * client reached) gets that address's certificate; when there is none the
 * handshake fails and the address is remembered and signalled by writing
 * 1 to the eventfd given to tls_set_want_fd; tls_ip_wanted takes those
 * addresses (each once). tls_ip_install serves the cache text pem (key,
 * chain) for ip; tls_ip_info says what is served for ip.
 */
bool	tls_ip_certs(const struct tls_state *);
bool	tls_has_hostname_cert(const struct tls_state *);
void	tls_set_want_fd(struct tls_state *, int fd);
size_t	tls_ip_wanted(struct tls_state *, char (*out)[64], size_t max);
int	tls_ip_install(struct tls_state *, const char *ip, const char *pem,
	    size_t len, const char *what, char *err, size_t errlen);
void	tls_ip_info(struct tls_state *, const char *ip,
	    struct tls_cert_info *);
/* Whether this SSL handshook for TLS-ALPN-01 (close it after). */
bool	tls_ssl_is_challenge(SSL *);
/* Certificate file base name: hostname without chars outside [A-Za-z0-9.-]. */
void	tls_cert_name(const char *hostname, char *out, size_t outlen);
/*
 * Build the meta certificate for pub (Ed25519, serial 2, CN
 * derpkey<hex>, +-30 days) and its key; caller frees both. 0 or -1.
 */
int	tls_meta_cert(const uint8_t pub[32], X509 **x, EVP_PKEY **k);

#ifdef __cplusplus
}
#endif
#endif
