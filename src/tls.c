/* SPDX-License-Identifier: ISC */
/* tls.c: TLS 1.2+ server context with the DERP meta cert last in the chain. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <time.h>
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

/*
 * t_lock guards t_ctx, t_info and the challenge answers: the workers read
 * them (a new SSL, the ClientHello, an HTTP-01 request), the main thread
 * (ACME, reload) writes them. Held for copies only; a leaf lock.
 */
struct tls_state {
	pthread_mutex_t	 t_lock;
	SSL_CTX		*t_ctx;
	X509		*t_meta;
	EVP_PKEY	*t_meta_key;
	char		 t_hostname[256];
	char		 t_crt[PATH_MAX];
	char		 t_key[PATH_MAX];
	int		 t_is_ip;
	bool		 t_acme;		/* -certmode letsencrypt|gcp */
	char		 t_cache[PATH_MAX];	/* ACME: <certdir>/<hostname> */
	struct tls_cert_info t_info;		/* the certificate served */
	/* ACME challenge answers (acme.c sets them). */
	char		 t_http_token[TLS_TOKEN_MAX];
	char		 t_http_answer[TLS_ANSWER_MAX];
	X509		*t_alpn_cert;		/* TLS-ALPN-01, for t_hostname */
	EVP_PKEY	*t_alpn_key;
	/*
	 * -acme-ip-certs: a context per local address clients reached us
	 * at (ctx NULL until ACME has a certificate for it), and the
	 * addresses wanted but not yet told to acme.c (t_want_fd, an
	 * eventfd on the main loop, is written when one is added).
	 */
	bool		 t_ipcerts;
	struct tls_ipslot {
		char		 is_ip[64];
		SSL_CTX		*is_ctx;
		struct tls_cert_info is_info;
		bool		 is_wanted;	/* told to acme.c */
	}		 t_ips[TLS_MAX_IPS];
	size_t		 t_nips;
	int		 t_want_fd;
	uint64_t	 t_ips_refused;		/* over TLS_MAX_IPS */
};

/* ex_data slot marking an SSL that got the TLS-ALPN-01 certificate. */
static int		 alpn_idx = -1;
static pthread_once_t	 alpn_once = PTHREAD_ONCE_INIT;

static void
alpn_idx_init(void)
{
	alpn_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

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
	BIO	*b;
	char	*data = NULL;
	long	 len = 0;
	int	 ok, rc = -1;

	if ((b = BIO_new(BIO_s_mem())) == NULL) {
		snprintf(err, errlen, "writing %s failed: out of memory", path);
		return -1;
	}
	ok = x != NULL ? PEM_write_bio_X509(b, x) :
	    PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	if (!ok || (len = BIO_get_mem_data(b, &data)) <= 0)
		snprintf(err, errlen, "writing %s failed", path);
	else
		rc = util_write_file_atomic(path, data, (size_t)len, mode, err,
		    errlen);
	/* A private key's PEM: no copy stays in freed memory. */
	if (len > 0)
		OPENSSL_cleanse(data, (size_t)len);
	BIO_free(b);
	return rc;
}

/*
 * A new P-256 key and an X.509 v3 certificate for it with a random
 * positive serial, valid from `from` seconds from now for `life` seconds;
 * the caller adds the names and signs. 0, or -1 with nothing allocated.
 */
static int
cert_new(EVP_PKEY **kp, X509 **xp, long from, long life)
{
	unsigned char	 serial[16];
	EVP_PKEY	*k;
	X509		*x = NULL;
	BIGNUM		*bn = NULL;

	if ((k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
	    (x = X509_new()) == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
		goto fail;
	serial[0] &= 0x7f;
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
		goto fail;
	BN_free(bn);
	X509_set_version(x, 2);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), from + life);
	*kp = k;
	*xp = x;
	return 0;
fail:
	BN_free(bn);
	X509_free(x);
	EVP_PKEY_free(k);
	return -1;
}

/* Self-signed ECDSA P-256 cert for an IP hostname, as derper makes. */
static int
make_ip_cert(const char *ip, const char *crt, const char *keyp, char *err,
    size_t errlen)
{
	EVP_PKEY	*k;
	X509		*x;
	unsigned char	 der_md[32];
	unsigned int	 mdlen;
	char		 san[300], hex[65];
	int		 rc = -1;

	if (cert_new(&k, &x, 0, 365L * 24 * 3600) == -1) {
		snprintf(err, errlen, "cannot create key for self-signed cert");
		return -1;
	}
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

	sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	/* -acme-ip-certs: hello_cb chose the address's certificate. */
	if (t->t_ipcerts && (sni == NULL || util_is_ip_literal(sni)))
		return SSL_TLSEXT_ERR_OK;
	if (t->t_is_ip && t->t_ipcerts) {
		/* An IP-only server: a DNS name has no certificate here. */
		*alert = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_TLSEXT_ERR_ALERT_FATAL;
	}
	if (t->t_is_ip)
		return SSL_TLSEXT_ERR_OK;	/* any SNI, or none */
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
	static const unsigned char acme[] = "\x0a" TLS_ALPN_ACME;
	unsigned char	*sel;

	(void)arg;
	if (SSL_get_ex_data(ssl, alpn_idx) != NULL) {
		if (SSL_select_next_proto(&sel, outlen, acme, sizeof(acme) - 1,
		    in, inlen) != OPENSSL_NPN_NEGOTIATED)
			return SSL_TLSEXT_ERR_ALERT_FATAL;
		*out = sel;
		return SSL_TLSEXT_ERR_OK;
	}
	if (SSL_select_next_proto(&sel, outlen, h11, sizeof(h11) - 1, in,
	    inlen) != OPENSSL_NPN_NEGOTIATED)
		return SSL_TLSEXT_ERR_NOACK;
	*out = sel;
	return SSL_TLSEXT_ERR_OK;
}

/*
 * Whether a ClientHello extension body (ALPN: a 2-byte list length, then
 * length-prefixed names) lists name. Bounds-checked; false when malformed.
 */
static bool
alpn_offers(const unsigned char *p, size_t len, const char *name)
{
	size_t	 n = strlen(name), list;

	if (len < 2)
		return false;
	list = ((size_t)p[0] << 8) | p[1];
	if (list != len - 2)
		return false;
	for (p += 2, len -= 2; len > 0; ) {
		size_t l = p[0];
		if (l + 1 > len)
			return false;
		if (l == n && memcmp(p + 1, name, n) == 0)
			return true;
		p += l + 1;
		len -= l + 1;
	}
	return false;
}

/*
 * The host name of a server_name extension body (a 2-byte list length,
 * then type 0, a 2-byte length and the name), into out; false when
 * absent or malformed.
 */
static bool
sni_name(const unsigned char *p, size_t len, char *out, size_t outlen)
{
	size_t	 l;

	if (len < 5 || (((size_t)p[0] << 8) | p[1]) != len - 2 || p[2] != 0)
		return false;
	l = ((size_t)p[3] << 8) | p[4];
	if (l + 5 > len || l == 0 || l >= outlen || memchr(p + 5, 0, l))
		return false;
	memcpy(out, p + 5, l);
	out[l] = '\0';
	return true;
}

/*
 * TLS-ALPN-01 (RFC 8737): a ClientHello that offers "acme-tls/1" for our
 * host name while a challenge is pending gets the challenge certificate;
 * alpn_cb then selects the protocol and the connection closes after the
 * handshake (conn.c). Anything else goes on as usual.
 */
/* An IP address text as IPv6 (IPv4 as IPv4-mapped); false if not one. */
static bool
ip_parse_mapped(const char *s, struct in6_addr *out)
{
	struct in_addr	 v4;

	if (inet_pton(AF_INET6, s, out) == 1)
		return true;
	if (inet_pton(AF_INET, s, &v4) != 1)
		return false;
	memset(out, 0, sizeof(*out));
	out->s6_addr[10] = out->s6_addr[11] = 0xff;
	memcpy(&out->s6_addr[12], &v4, 4);
	return true;
}

/* Two IP address texts name the same address (IPv4-mapped IPv6 too). */
static bool
ip_equal(const char *a, const char *b)
{
	struct in6_addr	 x, y;

	return ip_parse_mapped(a, &x) && ip_parse_mapped(b, &y) &&
	    memcmp(&x, &y, sizeof(x)) == 0;
}

/* The slot of ip, made if there is room; NULL when full. t_lock held. */
static struct tls_ipslot *
ip_slot_locked(struct tls_state *t, const char *ip)
{
	struct tls_ipslot	*s;

	for (size_t i = 0; i < t->t_nips; i++)
		if (strcmp(t->t_ips[i].is_ip, ip) == 0)
			return &t->t_ips[i];
	if (t->t_nips == TLS_MAX_IPS)
		return NULL;
	s = &t->t_ips[t->t_nips++];
	memset(s, 0, sizeof(*s));
	util_strlcpy(s->is_ip, ip, sizeof(s->is_ip));
	return s;
}

/*
 * -acme-ip-certs, a ClientHello with no SNI or an IP address: the
 * certificate of the address the client reached (getsockname), never of
 * another one. None yet: the address is handed to acme.c, which orders
 * one, and this handshake fails (as it would with no certificate at all).
 */
static int
ip_hello(struct tls_state *t, SSL *ssl, const char *sni, int *alert)
{
	struct sockaddr_storage	 ss;
	socklen_t		 sl = sizeof(ss);
	struct tls_ipslot	*s = NULL;
	char			 local[64];
	int			 fd = SSL_get_fd(ssl), rc, wfd = -1;
	uint64_t		 one = 1;

	if (fd < 0 || getsockname(fd, (struct sockaddr *)&ss, &sl) == -1) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	util_addr_ip((const struct sockaddr *)&ss, local, sizeof(local));
	if (sni != NULL && !ip_equal(sni, local)) {
		*alert = SSL_AD_UNRECOGNIZED_NAME;
		return SSL_CLIENT_HELLO_ERROR;
	}
	pthread_mutex_lock(&t->t_lock);
	if ((s = ip_slot_locked(t, local)) == NULL)
		t->t_ips_refused++;
	if (s != NULL && s->is_ctx != NULL) {
		rc = SSL_set_SSL_CTX(ssl, s->is_ctx) != NULL;
		pthread_mutex_unlock(&t->t_lock);
		if (rc)
			return SSL_CLIENT_HELLO_SUCCESS;
		ERR_clear_error();
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	if (s != NULL && !s->is_wanted) {
		s->is_wanted = true;
		wfd = t->t_want_fd;
	}
	pthread_mutex_unlock(&t->t_lock);
	if (wfd != -1)
		(void)!write(wfd, &one, sizeof(one));
	*alert = SSL_AD_HANDSHAKE_FAILURE;
	return SSL_CLIENT_HELLO_ERROR;
}

static int
hello_cb(SSL *ssl, int *alert, void *arg)
{
	struct tls_state	*t = arg;
	const unsigned char	*p;
	size_t			 len;
	char			 name[256];
	bool			 has_sni;
	int			 ok = 1;

	if (!t->t_acme)
		return SSL_CLIENT_HELLO_SUCCESS;
	has_sni = SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_server_name, &p,
	    &len) && sni_name(p, len, name, sizeof(name));
	if (t->t_ipcerts && (!has_sni || util_is_ip_literal(name)))
		return ip_hello(t, ssl, has_sni ? name : NULL, alert);
	if (!SSL_client_hello_get0_ext(ssl,
	    TLSEXT_TYPE_application_layer_protocol_negotiation, &p, &len) ||
	    !alpn_offers(p, len, TLS_ALPN_ACME))
		return SSL_CLIENT_HELLO_SUCCESS;
	if (!has_sni || strcasecmp(name, t->t_hostname) != 0)
		return SSL_CLIENT_HELLO_SUCCESS;
	pthread_mutex_lock(&t->t_lock);
	if (t->t_alpn_cert != NULL)
		ok = SSL_use_certificate(ssl, t->t_alpn_cert) == 1 &&
		    SSL_use_PrivateKey(ssl, t->t_alpn_key) == 1 &&
		    SSL_set_ex_data(ssl, alpn_idx, t) == 1;
	pthread_mutex_unlock(&t->t_lock);
	if (!ok) {
		ERR_clear_error();
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

bool
tls_ssl_is_challenge(SSL *ssl)
{
	return alpn_idx != -1 && SSL_get_ex_data(ssl, alpn_idx) != NULL;
}

/* A context with derpd's settings and no certificate yet; NULL on failure. */
static SSL_CTX *
ctx_base(struct tls_state *t)
{
	SSL_CTX		*ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		return NULL;
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
	SSL_CTX_set_client_hello_cb(ctx, hello_cb, t);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/*
	 * Read ahead: one read() takes what the socket has (up to the
	 * record buffer) instead of a header and then a body per record,
	 * about half the reads per relayed packet. io.c reads until
	 * SSL_read wants more, so nothing is left behind in OpenSSL's
	 * buffer when the edge-triggered loop stops.
	 */
	SSL_CTX_set_read_ahead(ctx, 1);
	return ctx;
}

static void
info_fill(struct tls_cert_info *in, X509 *leaf, const char *source)
{
	const ASN1_TIME	*nb = X509_get0_notBefore(leaf);
	const ASN1_TIME	*na = X509_get0_notAfter(leaf);
	X509_NAME	*iss = X509_get_issuer_name(leaf);
	struct tm	 tm;

	memset(in, 0, sizeof(*in));
	in->ci_present = true;
	util_strlcpy(in->ci_source, source, sizeof(in->ci_source));
	if (ASN1_TIME_to_tm(nb, &tm) == 1)
		in->ci_not_before = timegm(&tm);
	if (ASN1_TIME_to_tm(na, &tm) == 1)
		in->ci_not_after = timegm(&tm);
	if (X509_NAME_get_text_by_NID(iss, NID_commonName, in->ci_issuer,
	    sizeof(in->ci_issuer)) < 0)
		X509_NAME_oneline(iss, in->ci_issuer, sizeof(in->ci_issuer));
	{
		unsigned char	 md[32];
		unsigned int	 mdlen = 0;
		X509_digest(leaf, EVP_sha256(), md, &mdlen);
		util_hex_encode(md, 32, in->ci_sha256);
	}
	{
		ASN1_INTEGER	*sn = X509_get_serialNumber(leaf);
		BIGNUM		*bn = ASN1_INTEGER_to_BN(sn, NULL);
		char		*hex = bn != NULL ? BN_bn2hex(bn) : NULL;
		if (hex != NULL)
			util_strlcpy(in->ci_serial, hex, sizeof(in->ci_serial));
		OPENSSL_free(hex);
		BN_free(bn);
	}
	ERR_clear_error();
}

/*
 * Put leaf, the chain after it (owned by the caller) and pkey into ctx,
 * the meta cert last; check the key and the host name. 0 or -1 with err.
 */
static int
ctx_set_cert_for(struct tls_state *t, SSL_CTX *ctx, X509 *leaf,
    STACK_OF(X509) *chain, EVP_PKEY *pkey, const char *name, bool is_ip,
    const char *what, char *err, size_t errlen)
{
	int	 ok;

	if (!SSL_CTX_use_certificate(ctx, leaf)) {
		snprintf(err, errlen, "%s: unusable certificate", what);
		return -1;
	}
	/* Intermediates in file order, then the meta cert, last. */
	SSL_CTX_clear_chain_certs(ctx);
	for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++)
		if (!SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i))) {
			snprintf(err, errlen, "%s: unusable chain", what);
			return -1;
		}
	if (!SSL_CTX_add1_chain_cert(ctx, t->t_meta)) {
		snprintf(err, errlen, "cannot add meta certificate");
		return -1;
	}
	if (pkey == NULL || !SSL_CTX_use_PrivateKey(ctx, pkey) ||
	    !SSL_CTX_check_private_key(ctx)) {
		snprintf(err, errlen, "%s: key missing or does not match the "
		    "certificate", what);
		return -1;
	}
	ok = is_ip ? X509_check_ip_asc(leaf, name, 0) == 1 :
	    X509_check_host(leaf, name, 0, 0, NULL) == 1;
	if (!ok) {
		snprintf(err, errlen, "-hostname: certificate %s is not valid "
		    "for %s", what, name);
		return -1;
	}
	return 0;
}

static int
ctx_set_cert(struct tls_state *t, SSL_CTX *ctx, X509 *leaf,
    STACK_OF(X509) *chain, EVP_PKEY *pkey, const char *what, char *err,
    size_t errlen)
{
	return ctx_set_cert_for(t, ctx, leaf, chain, pkey, t->t_hostname,
	    t->t_is_ip, what, err, errlen);
}

/* Read every CERTIFICATE block left in bio: the first into *leaf. */
static int
read_chain(BIO *bio, X509 **leaf, STACK_OF(X509) **chain)
{
	X509	*x;

	*leaf = NULL;
	if ((*chain = sk_X509_new_null()) == NULL)
		return -1;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (*leaf == NULL)
			*leaf = x;
		else if (!sk_X509_push(*chain, x)) {
			X509_free(x);
			return -1;
		}
	}
	ERR_clear_error();	/* PEM_read at EOF leaves an error */
	return *leaf != NULL ? 0 : -1;
}

/* Manual mode: load the .crt and .key files into a fresh context. */
static SSL_CTX *
build_ctx(struct tls_state *t, struct tls_cert_info *info, char *err,
    size_t errlen)
{
	SSL_CTX		*ctx;
	BIO		*bio = NULL;
	X509		*leaf = NULL;
	STACK_OF(X509)	*chain = NULL;
	EVP_PKEY	*pkey = NULL;
	char		 kerr[256];

	if (keys_check_secrecy(t->t_key, kerr, sizeof(kerr)) == -1) {
		snprintf(err, errlen, "-certdir: %s", kerr);
		return NULL;
	}
	if ((ctx = ctx_base(t)) == NULL) {
		snprintf(err, errlen, "SSL_CTX_new failed");
		return NULL;
	}
	if ((bio = BIO_new_file(t->t_crt, "r")) == NULL) {
		snprintf(err, errlen, "-certdir: %s: %s", t->t_crt,
		    strerror(errno));
		goto fail;
	}
	if (read_chain(bio, &leaf, &chain) == -1) {
		snprintf(err, errlen, "-certdir: %s: no PEM certificate",
		    t->t_crt);
		goto fail;
	}
	BIO_free(bio);
	if ((bio = BIO_new_file(t->t_key, "r")) == NULL) {
		snprintf(err, errlen, "-certdir: %s: %s", t->t_key,
		    strerror(errno));
		goto fail;
	}
	pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (ctx_set_cert(t, ctx, leaf, chain, pkey, t->t_crt, err,
	    errlen) == -1)
		goto fail;
	info_fill(info, leaf, t->t_crt);
	BIO_free(bio);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(pkey);
	return ctx;
fail:
	ERR_clear_error();
	BIO_free(bio);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(pkey);
	SSL_CTX_free(ctx);
	return NULL;
}

/*
 * ACME: a context from the cache file's text (autocert's layout: the
 * private key, then the chain, leaf first). A certificate outside its
 * validity period is refused, as autocert refuses it. NULL with err.
 */
static SSL_CTX *
build_ctx_pem_for(struct tls_state *t, const char *pem, size_t len,
    const char *name, bool is_ip, const char *what,
    struct tls_cert_info *info, char *err, size_t errlen)
{
	SSL_CTX		*ctx = NULL;
	BIO		*bio;
	X509		*leaf = NULL;
	STACK_OF(X509)	*chain = NULL;
	EVP_PKEY	*pkey = NULL;

	if (len > INT_MAX || (bio = BIO_new_mem_buf(pem, (int)len)) == NULL) {
		snprintf(err, errlen, "%s: cannot read", what);
		return NULL;
	}
	if ((pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
		snprintf(err, errlen, "%s: no private key first", what);
		goto fail;
	}
	if (read_chain(bio, &leaf, &chain) == -1) {
		snprintf(err, errlen, "%s: no certificate after the key", what);
		goto fail;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(leaf)) <= 0 ||
	    X509_cmp_current_time(X509_get0_notBefore(leaf)) >= 0) {
		snprintf(err, errlen, "%s: certificate expired or not yet "
		    "valid", what);
		goto fail;
	}
	if ((ctx = ctx_base(t)) == NULL) {
		snprintf(err, errlen, "SSL_CTX_new failed");
		goto fail;
	}
	if (ctx_set_cert_for(t, ctx, leaf, chain, pkey, name, is_ip, what, err,
	    errlen) == -1) {
		SSL_CTX_free(ctx);
		ctx = NULL;
		goto fail;
	}
	info_fill(info, leaf, what);
	util_strlcpy(info->ci_name, name, sizeof(info->ci_name));
fail:
	ERR_clear_error();
	BIO_free(bio);
	X509_free(leaf);
	sk_X509_pop_free(chain, X509_free);
	EVP_PKEY_free(pkey);
	return ctx;
}

static SSL_CTX *
build_ctx_pem(struct tls_state *t, const char *pem, size_t len,
    const char *what, struct tls_cert_info *info, char *err, size_t errlen)
{
	return build_ctx_pem_for(t, pem, len, t->t_hostname, t->t_is_ip, what,
	    info, err, errlen);
}

/* Swap in a new context (and what it serves); the old one is freed. */
static void
ctx_swap(struct tls_state *t, SSL_CTX *nctx, const struct tls_cert_info *in)
{
	SSL_CTX	*old;

	pthread_mutex_lock(&t->t_lock);
	old = t->t_ctx;
	t->t_ctx = nctx;
	if (in != NULL)
		t->t_info = *in;
	else
		memset(&t->t_info, 0, sizeof(t->t_info));
	pthread_mutex_unlock(&t->t_lock);
	SSL_CTX_free(old);	/* live SSLs hold their own reference */
}

/* Read the ACME cache file (at most 1 MiB); NULL with err. */
static char *
read_cache(struct tls_state *t, size_t *lenp, char *err, size_t errlen)
{
	char	 kerr[256], *buf;
	FILE	*f;
	size_t	 n;

	if (access(t->t_cache, F_OK) == -1) {
		snprintf(err, errlen, "%s: %s", t->t_cache, strerror(errno));
		return NULL;
	}
	if (keys_check_secrecy(t->t_cache, kerr, sizeof(kerr)) == -1) {
		snprintf(err, errlen, "-certdir: %s", kerr);
		return NULL;
	}
	if ((f = fopen(t->t_cache, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", t->t_cache, strerror(errno));
		return NULL;
	}
	if ((buf = malloc(TLS_CACHE_MAX + 1)) == NULL) {
		fclose(f);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n = fread(buf, 1, TLS_CACHE_MAX + 1, f);
	fclose(f);
	if (n > TLS_CACHE_MAX) {
		free(buf);
		snprintf(err, errlen, "%s: larger than %d bytes", t->t_cache,
		    TLS_CACHE_MAX);
		return NULL;
	}
	buf[n] = '\0';
	*lenp = n;
	return buf;
}

/* ACME mode: serve the cache file if it holds a usable certificate. */
static int
load_cache(struct tls_state *t, char *err, size_t errlen)
{
	struct tls_cert_info	 in;
	SSL_CTX			*nctx;
	size_t			 len;
	char			*buf;

	if ((buf = read_cache(t, &len, err, errlen)) == NULL)
		return -1;
	nctx = build_ctx_pem(t, buf, len, t->t_cache, &in, err, errlen);
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (nctx == NULL)
		return -1;
	ctx_swap(t, nctx, &in);
	return 0;
}

struct tls_state *
tls_new(const struct derpd_conf *conf, const uint8_t pub[32], char *err,
    size_t errlen)
{
	struct tls_state	*t;
	char			 name[256];

	pthread_once(&alpn_once, alpn_idx_init);
	if ((t = calloc(1, sizeof(*t))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&t->t_lock, NULL);
	util_strlcpy(t->t_hostname, conf->dc_hostname, sizeof(t->t_hostname));
	t->t_is_ip = util_is_ip_literal(conf->dc_hostname);
	t->t_acme = strcmp(conf->dc_certmode, "manual") != 0;
	t->t_ipcerts = t->t_acme && conf->dc_acme_ip_certs;
	t->t_want_fd = -1;
	if (tls_meta_cert(pub, &t->t_meta, &t->t_meta_key) == -1) {
		snprintf(err, errlen, "cannot build meta certificate");
		goto fail;
	}
	if (t->t_acme) {
		char why[512];
		/* autocert's DirCache: the file is named after the host. */
		if ((size_t)snprintf(t->t_cache, sizeof(t->t_cache),
		    "%.3800s/%.255s", conf->dc_certdir, conf->dc_hostname) >=
		    sizeof(t->t_cache)) {
			snprintf(err, errlen, "-certdir: path too long");
			goto fail;
		}
		/* No certificate yet: handshakes fail until ACME has one. */
		if ((t->t_ctx = ctx_base(t)) == NULL) {
			snprintf(err, errlen, "SSL_CTX_new failed");
			goto fail;
		}
		if (t->t_is_ip)
			return t;	/* IP-only: certificates per address */
		if (load_cache(t, why, sizeof(why)) == 0)
			log_info("tls: serving %s from the certificate cache",
			    t->t_cache);
		else
			log_info("tls: no usable cached certificate (%s); "
			    "ACME will get one", why);
		return t;
	}
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
	if ((t->t_ctx = build_ctx(t, &t->t_info, err, errlen)) == NULL)
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
	X509_free(t->t_alpn_cert);
	EVP_PKEY_free(t->t_alpn_key);
	for (size_t i = 0; i < t->t_nips; i++)
		SSL_CTX_free(t->t_ips[i].is_ctx);
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
	struct tls_cert_info	 in;
	SSL_CTX			*nctx;

	if (t->t_acme && t->t_is_ip)
		return 0;	/* IP certificates: acme.c keeps them */
	if (t->t_acme)
		return load_cache(t, err, errlen);
	if ((nctx = build_ctx(t, &in, err, errlen)) == NULL)
		return -1;
	ctx_swap(t, nctx, &in);
	return 0;
}

bool
tls_is_acme(const struct tls_state *t)
{
	return t != NULL && t->t_acme;
}

const char *
tls_cache_path(const struct tls_state *t)
{
	return t->t_cache;
}

int
tls_install_pem(struct tls_state *t, const char *pem, size_t len,
    char *err, size_t errlen)
{
	struct tls_cert_info	 in;
	SSL_CTX			*nctx;

	if ((nctx = build_ctx_pem(t, pem, len, "issued certificate", &in, err,
	    errlen)) == NULL)
		return -1;
	util_strlcpy(in.ci_source, t->t_cache, sizeof(in.ci_source));
	ctx_swap(t, nctx, &in);
	return 0;
}

void
tls_cert_info(struct tls_state *t, struct tls_cert_info *out)
{
	pthread_mutex_lock(&t->t_lock);
	*out = t->t_info;
	pthread_mutex_unlock(&t->t_lock);
	util_strlcpy(out->ci_name, t->t_hostname, sizeof(out->ci_name));
}

void
tls_set_http_challenge(struct tls_state *t, const char *token,
    const char *answer)
{
	pthread_mutex_lock(&t->t_lock);
	util_strlcpy(t->t_http_token, token != NULL ? token : "",
	    sizeof(t->t_http_token));
	util_strlcpy(t->t_http_answer, answer != NULL ? answer : "",
	    sizeof(t->t_http_answer));
	pthread_mutex_unlock(&t->t_lock);
}

bool
tls_http_challenge(struct tls_state *t, const char *token, char *out,
    size_t outlen)
{
	bool	 hit;

	if (t == NULL || token[0] == '\0')
		return false;
	pthread_mutex_lock(&t->t_lock);
	hit = t->t_http_token[0] != '\0' &&
	    strcmp(token, t->t_http_token) == 0;
	if (hit)
		util_strlcpy(out, t->t_http_answer, outlen);
	pthread_mutex_unlock(&t->t_lock);
	return hit;
}

int
tls_set_alpn_challenge(struct tls_state *t, const unsigned char *digest)
{
	EVP_PKEY		*k = NULL;
	X509			*x = NULL;
	ASN1_OCTET_STRING	*os = NULL;
	ASN1_OBJECT		*obj = NULL;
	X509_EXTENSION		*ex = NULL;
	unsigned char		 der[34];
	char			 san[300];
	int			 rc = -1;

	if (digest == NULL) {
		pthread_mutex_lock(&t->t_lock);
		x = t->t_alpn_cert;
		k = t->t_alpn_key;
		t->t_alpn_cert = NULL;
		t->t_alpn_key = NULL;
		pthread_mutex_unlock(&t->t_lock);
		X509_free(x);
		EVP_PKEY_free(k);
		return 0;
	}
	if (cert_new(&k, &x, -3600, 7L * 24 * 3600 + 3600) == -1)
		goto out;
	snprintf(san, sizeof(san), "DNS:%s", t->t_hostname);
	/* id-pe-acmeIdentifier: critical, the DER OCTET STRING of the digest */
	der[0] = 0x04;
	der[1] = 32;
	memcpy(der + 2, digest, 32);
	if ((os = ASN1_OCTET_STRING_new()) == NULL ||
	    !ASN1_OCTET_STRING_set(os, der, sizeof(der)) ||
	    (obj = OBJ_txt2obj("1.3.6.1.5.5.7.1.31", 1)) == NULL ||
	    (ex = X509_EXTENSION_create_by_OBJ(NULL, obj, 1, os)) == NULL)
		goto out;
	if (set_name_cn(x, t->t_hostname) == -1 || !X509_set_pubkey(x, k) ||
	    add_ext(x, NID_subject_alt_name, san) == -1 ||
	    !X509_add_ext(x, ex, -1) || !X509_sign(x, k, EVP_sha256()))
		goto out;
	pthread_mutex_lock(&t->t_lock);
	X509_free(t->t_alpn_cert);
	EVP_PKEY_free(t->t_alpn_key);
	t->t_alpn_cert = x;
	t->t_alpn_key = k;
	pthread_mutex_unlock(&t->t_lock);
	x = NULL;
	k = NULL;
	rc = 0;
out:
	ERR_clear_error();
	X509_EXTENSION_free(ex);
	ASN1_OBJECT_free(obj);
	ASN1_OCTET_STRING_free(os);
	X509_free(x);
	EVP_PKEY_free(k);
	return rc;
}

bool
tls_ip_certs(const struct tls_state *t)
{
	return t != NULL && t->t_ipcerts;
}

bool
tls_has_hostname_cert(const struct tls_state *t)
{
	return t != NULL && !(t->t_acme && t->t_is_ip);
}

void
tls_set_want_fd(struct tls_state *t, int fd)
{
	pthread_mutex_lock(&t->t_lock);
	t->t_want_fd = fd;
	pthread_mutex_unlock(&t->t_lock);
}

size_t
tls_ip_wanted(struct tls_state *t, char (*out)[64], size_t max)
{
	size_t	 n = 0;

	pthread_mutex_lock(&t->t_lock);
	for (size_t i = 0; i < t->t_nips && n < max; i++)
		if (t->t_ips[i].is_wanted) {
			t->t_ips[i].is_wanted = false;
			util_strlcpy(out[n++], t->t_ips[i].is_ip, 64);
		}
	pthread_mutex_unlock(&t->t_lock);
	return n;
}

int
tls_ip_install(struct tls_state *t, const char *ip, const char *pem,
    size_t len, const char *what, char *err, size_t errlen)
{
	struct tls_cert_info	 in;
	SSL_CTX			*nctx, *old = NULL;
	struct tls_ipslot	*s = NULL;

	if ((nctx = build_ctx_pem_for(t, pem, len, ip, true, what, &in, err,
	    errlen)) == NULL)
		return -1;
	pthread_mutex_lock(&t->t_lock);
	s = ip_slot_locked(t, ip);
	if (s != NULL) {
		old = s->is_ctx;
		s->is_ctx = nctx;
		s->is_info = in;
		nctx = NULL;
	}
	pthread_mutex_unlock(&t->t_lock);
	SSL_CTX_free(old);
	if (nctx != NULL) {
		SSL_CTX_free(nctx);
		snprintf(err, errlen, "more than %d addresses", TLS_MAX_IPS);
		return -1;
	}
	return 0;
}

void
tls_ip_info(struct tls_state *t, const char *ip, struct tls_cert_info *out)
{
	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&t->t_lock);
	for (size_t i = 0; i < t->t_nips; i++)
		if (strcmp(t->t_ips[i].is_ip, ip) == 0 &&
		    t->t_ips[i].is_ctx != NULL)
			*out = t->t_ips[i].is_info;
	pthread_mutex_unlock(&t->t_lock);
	util_strlcpy(out->ci_name, ip, sizeof(out->ci_name));
}
