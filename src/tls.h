/* SPDX-License-Identifier: ISC */
/* tls.h: OpenSSL server context, manual certs, IP self-signed, meta cert. */
#ifndef DERPD_TLS_H
#define DERPD_TLS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tls_state;
struct derpd_conf;

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
