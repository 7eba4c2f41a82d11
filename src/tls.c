/* SPDX-License-Identifier: ISC */
/* tls.c: TLS 1.2+ server context with the DERP meta cert last in the chain. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "derpd.h"
#include "keys.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#define TLS_CIPHERS_12	"ECDHE-ECDSA-AES128-GCM-SHA256:" \
	"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:" \
	"ECDHE-RSA-CHACHA20-POLY1305"

struct tls_state {
	pthread_mutex_t	 t_lock;
	SSL_CTX		*t_ctx;
	X509		*t_meta;
	EVP_PKEY	*t_meta_key;
	char		 t_hostname[256];
	char		 t_crt[PATH_MAX];
	char		 t_key[PATH_MAX];
	int		 t_is_ip;
};

void
tls_cert_name(const char *hostname, char *out, size_t outlen)
{
	size_t	 j = 0;

	for (size_t i = 0; hostname[i] != '\0' && j + 1 < outlen; i++) {
		char c = hostname[i];
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '-')
			out[j++] = c;
	}
	out[j] = '\0';
}

static int
set_name_cn(X509 *x, const char *cn)
{
	X509_NAME *n = X509_get_subject_name(x);

	/*
	 * A direct string type skips OpenSSL's 64-character commonName
	 * bound: the meta cert CN is "derpkey" + 64 hex, 71 characters.
	 */
	if (!X509_NAME_add_entry_by_NID(n, NID_commonName,
	    V_ASN1_PRINTABLESTRING, (const unsigned char *)cn, -1, -1, 0))
		return -1;
	return X509_set_issuer_name(x, n) ? 0 : -1;
}

static int
add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX	 ctx;
	X509_EXTENSION	*ex;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	if ((ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return -1;
	X509_add_ext(x, ex, -1);
	X509_EXTENSION_free(ex);
	return 0;
}

int
tls_meta_cert(const uint8_t pub[32], X509 **xp, EVP_PKEY **kp)
{
	EVP_PKEY	*k = NULL;
	X509		*x = NULL;
	char		 cn[8 + 64 + 1];

	if ((k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL)
		goto fail;
	if ((x = X509_new()) == NULL)
		goto fail;
	X509_set_version(x, 2);
	/* Clients read the serial as the DERP protocol version. */
	ASN1_INTEGER_set(X509_get_serialNumber(x), 2);
	X509_gmtime_adj(X509_getm_notBefore(x), -30L * 24 * 3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 30L * 24 * 3600);
	memcpy(cn, "derpkey", 7);
	util_hex_encode(pub, 32, cn + 7);
	if (set_name_cn(x, cn) == -1 || !X509_set_pubkey(x, k) ||
	    add_ext(x, NID_basic_constraints, "critical,CA:FALSE") == -1 ||
	    !X509_sign(x, k, NULL))
		goto fail;
	*xp = x;
	*kp = k;
	return 0;
fail:
	X509_free(x);
	EVP_PKEY_free(k);
	return -1;
}

/* Write PEM text to path atomically with mode; 0 or -1 with err. */
static int
write_pem(const char *path, mode_t mode, X509 *x, EVP_PKEY *k, char *err,
    size_t errlen)
{
	char	 tmp[PATH_MAX];
	FILE	*f;
	int	 fd, ok;

	snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path);
	if ((fd = mkstemp(tmp)) == -1) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) == -1 || (f = fdopen(fd, "w")) == NULL) {
		snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
		close(fd);
		unlink(tmp);
		return -1;
	}
	ok = x != NULL ? PEM_write_X509(f, x) :
	    PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL);
	if (fclose(f) != 0 || !ok || rename(tmp, path) == -1) {
		snprintf(err, errlen, "writing %s failed", path);
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Self-signed ECDSA P-256 cert for an IP hostname, as derper makes. */
static int
make_ip_cert(const char *ip, const char *crt, const char *keyp, char *err,
    size_t errlen)
{
	EVP_PKEY	*k;
	X509		*x;
	unsigned char	 serial[16], der_md[32];
	unsigned int	 mdlen;
	char		 san[300], hex[65];
	BIGNUM		*bn;
	int		 rc = -1;

	if ((k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
	    (x = X509_new()) == NULL) {
		EVP_PKEY_free(k);
		snprintf(err, errlen, "cannot create key for self-signed cert");
		return -1;
	}
	X509_set_version(x, 2);
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 365L * 24 * 3600);
	snprintf(san, sizeof(san), "IP:%s", ip);
	if (set_name_cn(x, ip) == -1 || !X509_set_pubkey(x, k) ||
	    add_ext(x, NID_basic_constraints, "critical,CA:FALSE") == -1 ||
	    add_ext(x, NID_key_usage,
	    "critical,digitalSignature,keyEncipherment") == -1 ||
	    add_ext(x, NID_ext_key_usage, "serverAuth") == -1 ||
	    add_ext(x, NID_subject_alt_name, san) == -1 ||
	    !X509_sign(x, k, EVP_sha256())) {
		snprintf(err, errlen, "cannot sign self-signed cert");
		goto out;
	}
	if (write_pem(keyp, 0600, NULL, k, err, errlen) == -1 ||
	    write_pem(crt, 0644, x, NULL, err, errlen) == -1)
		goto out;
	X509_digest(x, EVP_sha256(), der_md, &mdlen);
	util_hex_encode(der_md, 32, hex);
	log_info("created self-signed certificate %s for %s; DERP node: "
	    "{\"Name\":\"900a\",\"RegionID\":900,\"HostName\":\"%s\","
	    "\"CertName\":\"sha256-raw:%s\"}", crt, ip, ip, hex);
	rc = 0;
out:
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}

static int
sni_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls_state	*t = arg;
	const char		*sni;

	if (t->t_is_ip)
		return SSL_TLSEXT_ERR_OK;	/* any SNI, or none */
	sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	if (sni == NULL || strcasecmp(sni, t->t_hostname) != 0) {
		*alert = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	return SSL_TLSEXT_ERR_OK;
}

static int
alpn_cb(SSL *ssl, const unsigned char **out, unsigned char *outlen,
    const unsigned char *in, unsigned int inlen, void *arg)
{
	static const unsigned char h11[] = "\x08http/1.1";
	unsigned char	*sel;

	(void)ssl;
	(void)arg;
	if (SSL_select_next_proto(&sel, outlen, h11, sizeof(h11) - 1, in,
	    inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/* Load files and build a fresh context; NULL with err. */
static SSL_CTX *
build_ctx(struct tls_state *t, char *err, size_t errlen)
{
	SSL_CTX		*ctx;
	FILE		*f;
	X509		*leaf = NULL, *extra;
	EVP_PKEY	*pkey = NULL;
	char		 kerr[256];
	int		 ok;

	if (keys_check_secrecy(t->t_key, kerr, sizeof(kerr)) == -1) {
		snprintf(err, errlen, "-certdir: %s", kerr);
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "SSL_CTX_new failed");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS |
	    SSL_MODE_NO_AUTO_CHAIN);
	/*
	 * No session tickets and no cache: DERP clients never resume, so a
	 * ticket would only cost handshake CPU and, with a key that is never
	 * rotated, weaken forward secrecy.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_ciphersuites(ctx, "TLS_AES_128_GCM_SHA256:"
	    "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256");
	/* TLS 1.2: forward-secret AEAD only (no static RSA, no CBC). */
	SSL_CTX_set_cipher_list(ctx, TLS_CIPHERS_12);
	SSL_CTX_set_tlsext_servername_callback(ctx, sni_cb);
	SSL_CTX_set_tlsext_servername_arg(ctx, t);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_cb, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

	if ((f = fopen(t->t_crt, "r")) == NULL) {
		snprintf(err, errlen, "-certdir: %s: %s", t->t_crt,
		    strerror(errno));
		goto fail;
	}
	leaf = PEM_read_X509(f, NULL, NULL, NULL);
	if (leaf == NULL) {
		fclose(f);
		snprintf(err, errlen, "-certdir: %s: no PEM certificate",
		    t->t_crt);
		goto fail;
	}
	if (!SSL_CTX_use_certificate(ctx, leaf)) {
		fclose(f);
		snprintf(err, errlen, "-certdir: %s: unusable certificate",
		    t->t_crt);
		goto fail;
	}
	/* Intermediates in file order, then the meta cert, last. */
	SSL_CTX_clear_chain_certs(ctx);
	while ((extra = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
		if (!SSL_CTX_add0_chain_cert(ctx, extra))
			X509_free(extra);
	ERR_clear_error();	/* PEM_read at EOF leaves an error */
	fclose(f);
	if (!SSL_CTX_add1_chain_cert(ctx, t->t_meta)) {
		snprintf(err, errlen, "cannot add meta certificate");
		goto fail;
	}
	if ((f = fopen(t->t_key, "r")) == NULL) {
		snprintf(err, errlen, "-certdir: %s: %s", t->t_key,
		    strerror(errno));
		goto fail;
	}
	pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (pkey == NULL || !SSL_CTX_use_PrivateKey(ctx, pkey) ||
	    !SSL_CTX_check_private_key(ctx)) {
		snprintf(err, errlen, "-certdir: %s: key missing or does not "
		    "match %s", t->t_key, t->t_crt);
		goto fail;
	}
	ok = t->t_is_ip ?
	    X509_check_ip_asc(leaf, t->t_hostname, 0) == 1 :
	    X509_check_host(leaf, t->t_hostname, 0, 0, NULL) == 1;
	if (!ok) {
		snprintf(err, errlen, "-hostname: certificate %s is not valid "
		    "for %s", t->t_crt, t->t_hostname);
		goto fail;
	}
	X509_free(leaf);
	EVP_PKEY_free(pkey);
	return ctx;
fail:
	ERR_clear_error();
	X509_free(leaf);
	EVP_PKEY_free(pkey);
	SSL_CTX_free(ctx);
	return NULL;
}

struct tls_state *
tls_new(const struct derpd_conf *conf, const uint8_t pub[32], char *err,
    size_t errlen)
{
	struct tls_state	*t;
	char			 name[256];

	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&t->t_lock, NULL);
	util_strlcpy(t->t_hostname, conf->dc_hostname, sizeof(t->t_hostname));
	t->t_is_ip = util_is_ip_literal(conf->dc_hostname);
	tls_cert_name(conf->dc_hostname, name, sizeof(name));
	if (name[0] == '\0') {
		snprintf(err, errlen, "-hostname: \"%s\" gives an empty "
		    "certificate file name", conf->dc_hostname);
		goto fail;
	}
	if ((size_t)snprintf(t->t_crt, sizeof(t->t_crt), "%.3800s/%.255s.crt",
	    conf->dc_certdir, name) >= sizeof(t->t_crt) ||
	    (size_t)snprintf(t->t_key, sizeof(t->t_key), "%.3800s/%.255s.key",
	    conf->dc_certdir, name) >= sizeof(t->t_key)) {
		snprintf(err, errlen, "-certdir: path too long");
		goto fail;
	}
	if (tls_meta_cert(pub, &t->t_meta, &t->t_meta_key) == -1) {
		snprintf(err, errlen, "cannot build meta certificate");
		goto fail;
	}
	if (t->t_is_ip && access(t->t_crt, F_OK) == -1 &&
	    access(t->t_key, F_OK) == -1) {
		if (mkdir(conf->dc_certdir, 0700) == -1 && errno != EEXIST) {
			snprintf(err, errlen, "-certdir: mkdir %s: %s",
			    conf->dc_certdir, strerror(errno));
			goto fail;
		}
		if (make_ip_cert(conf->dc_hostname, t->t_crt, t->t_key, err,
		    errlen) == -1)
			goto fail;
	}
	if ((t->t_ctx = build_ctx(t, err, errlen)) == NULL)
		goto fail;
	return t;
fail:
	tls_free(t);
	return NULL;
}

void
tls_free(struct tls_state *t)
{
	if (t == NULL)
		return;
	SSL_CTX_free(t->t_ctx);
	X509_free(t->t_meta);
	EVP_PKEY_free(t->t_meta_key);
	pthread_mutex_destroy(&t->t_lock);
	free(t);
}

SSL *
tls_ssl_new(struct tls_state *t)
{
	SSL	*s;

	pthread_mutex_lock(&t->t_lock);
	s = SSL_new(t->t_ctx);
	pthread_mutex_unlock(&t->t_lock);
	return s;
}

int
tls_reload(struct tls_state *t, char *err, size_t errlen)
{
	SSL_CTX	*nctx, *old;

	if ((nctx = build_ctx(t, err, errlen)) == NULL)
		return -1;
	pthread_mutex_lock(&t->t_lock);
	old = t->t_ctx;
	t->t_ctx = nctx;
	pthread_mutex_unlock(&t->t_lock);
	SSL_CTX_free(old);	/* live SSLs hold their own reference */
	return 0;
}
