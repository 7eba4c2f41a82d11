/* SPDX-License-Identifier: ISC */
/*
 * acme.c: the ACME client (RFC 8555, with RFC 8737 TLS-ALPN-01) behind
 * -certmode letsencrypt and gcp. One order at a time, as a chain of
 * requests on the main thread's base through auth_curl (libcurl multi):
 *
 *   directory -> newNonce -> newAccount -> newOrder -> for each
 *   authorization: read it, answer a challenge (TLS-ALPN-01 on the TLS
 *   port, else HTTP-01 on -http-port), poll it -> finalize (a CSR for a
 *   new P-256 key) -> poll the order -> download the chain -> write the
 *   cache file -> tls_install_pem -> a timer for the renewal.
 *
 * Every response carries a fresh nonce; a badNonce error is retried with
 * it (three times). Any other failure ends the order: counted by reason,
 * logged once, the challenge answers withdrawn, and a retry scheduled
 * after a backoff (10 s doubling to 1 h, +-20% jitter, never sooner than
 * a Retry-After). The certificate served meanwhile stays.
 *
 * The certdir is autocert's DirCache, as derper keeps it: the account key
 * in "acme_account+key" (SEC1 "EC PRIVATE KEY" PEM; "acme_account.key" is
 * read too), the certificate in a file named after the host: its key PEM,
 * then the chain. Written 0600 through a temporary file and rename.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ifaddrs.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "acme.h"
#include "acme_msg.h"
#include "auth_curl.h"
#include "derpd.h"
#include "keys.h"
#include "log.h"
#include "tls.h"
#include "util.h"

#define ACME_BODY_MAX		(256 * 1024)
#define ACME_NONCE_MAX		256
#define ACME_NONCE_RETRIES	3
#define ACME_POLLS		60	/* per authorization, per order */
#define ACME_BACKOFF_MIN_MS	(10 * 1000)
#define ACME_BACKOFF_MAX_MS	(3600 * 1000)
#define ACME_REQ_TIMEOUT_MS	30000

const char *const acme_fail_reasons[] = {
	"unreachable", "http_error", "rate_limited", "rejected",
	"invalid_response", "challenge_failed", "timeout", "no_challenge",
	"storage", "install", "internal", NULL,
};
enum fail {
	F_UNREACHABLE, F_HTTP, F_RATE, F_REJECTED, F_INVALID, F_CHALLENGE,
	F_TIMEOUT, F_NOCHAL, F_STORAGE, F_INSTALL, F_INTERNAL,
};

enum step {
	S_IDLE,		/* a timer is set for the next order */
	S_DIR,		/* GET the directory */
	S_NONCE,	/* HEAD newNonce */
	S_ACCOUNT,	/* POST newAccount */
	S_ORDER,	/* POST newOrder */
	S_AUTHZ,	/* POST-as-GET an authorization */
	S_CHALLENGE,	/* POST {} to the chosen challenge */
	S_AUTHZ_POLL,	/* POST-as-GET it until valid or invalid */
	S_FINALIZE,	/* POST the CSR */
	S_ORDER_POLL,	/* POST-as-GET the order until valid */
	S_CERT,		/* POST-as-GET the chain */
};
static const char *const step_names[] = {
	"idle", "directory", "nonce", "account", "ordering", "authorization",
	"challenge", "validating", "finalizing", "issuing", "downloading",
};

/*
 * One name a certificate is kept for: -hostname, or (-acme-ip-certs) an
 * address clients reached us at. Its own timer (renewal or retry), its
 * own backoff; orders run one at a time for all targets of an account.
 */
struct acme_target {
	struct acme		*t_acme;
	char			 t_name[256];
	bool			 t_ip;
	struct event		*t_timer;
	int64_t			 t_backoff_ms;
	char			 t_avoid[16];	/* challenge type that failed */
	/* Under a_lock (read by show certs). */
	time_t			 t_next;	/* next order or renewal */
	time_t			 t_last_attempt;
	time_t			 t_last_success;
	char			 t_last_error[512];
};

struct acme {
	struct derpd		*a_env;
	bool			 a_ipcerts;	/* the -acme-ip-certs account */
	int			 a_want_fd;	/* eventfd: tls.c wants an address */
	struct event		*a_want_ev;
	struct acme_target	*a_targets[TLS_MAX_IPS + 1];
	size_t			 a_ntargets;
	struct acme_target	*a_cur;		/* the order's target, or NULL */
	struct tls_state	*a_tls;
	struct auth_curl	*a_curl;
	struct event		*a_timer;
	char			 a_dir_url[ACME_URL_MAX];
	char			 a_host[256];
	char			 a_certdir[PATH_MAX];
	char			 a_account_path[PATH_MAX];
	char			 a_email[256];
	char			 a_eab_kid[256];
	uint8_t			 a_eab_key[256];
	int			 a_eab_len;	/* 0: no EAB */
	bool			 a_http01;	/* -http-port is on */
	EVP_PKEY		*a_key;		/* the account key */
	char			 a_jwk[256];	/* its JWK, canonical JSON */
	char			 a_thumb[64];	/* its thumbprint, base64url */

	/* The order in progress. */
	enum step		 a_step;
	struct acme_dir		 a_dir;
	char			 a_kid[ACME_URL_MAX];	/* account URL */
	char			 a_nonce[ACME_NONCE_MAX];
	char			 a_order_url[ACME_URL_MAX];
	struct acme_order	 a_order;
	size_t			 a_authz_i;
	char			 a_chal_url[ACME_URL_MAX];
	int			 a_polls;
	EVP_PKEY		*a_cert_key;

	/* The request in flight (one at a time). */
	bool			 a_busy;
	char			 a_req_url[ACME_URL_MAX];
	char			*a_req_payload;	/* NULL: GET/HEAD, "": POST-as-GET */
	bool			 a_req_head;
	bool			 a_req_pem;	/* Accept a PEM chain */
	int			 a_req_nonce_retries;
	struct curl_slist	*a_hdrs;
	struct evbuffer		*a_body;
	bool			 a_body_overflow;
	long			 a_code;
	char			 a_r_nonce[ACME_NONCE_MAX];
	char			 a_r_location[ACME_URL_MAX];
	char			 a_r_retry[64];

	/* What acme_status reports; a_lock guards it (a leaf lock). */
	pthread_mutex_t		 a_lock;
	struct acme_status	 a_st;
};

static void	order_begin(struct acme *, struct acme_target *);
static void	load_saved_ips(struct acme *);
static void	req_send(struct acme *);

/* ---- status ---------------------------------------------------------- */

static void
st_step(struct acme *a, enum step s)
{
	a->a_step = s;
	pthread_mutex_lock(&a->a_lock);
	util_strlcpy(a->a_st.as_state, step_names[s],
	    sizeof(a->a_st.as_state));
	pthread_mutex_unlock(&a->a_lock);
}

void
acme_status(struct acme *a, struct acme_status *out)
{
	pthread_mutex_lock(&a->a_lock);
	*out = a->a_st;
	out->as_next_attempt = 0;
	for (size_t i = 0; i < a->a_ntargets; i++)
		if (a->a_targets[i]->t_next > 0 && (out->as_next_attempt == 0 ||
		    a->a_targets[i]->t_next < out->as_next_attempt))
			out->as_next_attempt = a->a_targets[i]->t_next;
	pthread_mutex_unlock(&a->a_lock);
}

size_t
acme_targets(struct acme *a, struct acme_target_info *out, size_t max)
{
	size_t	 n = 0;

	if (a == NULL)
		return 0;
	pthread_mutex_lock(&a->a_lock);
	for (size_t i = 0; i < a->a_ntargets && n < max; i++, n++) {
		const struct acme_target *tg = a->a_targets[i];
		util_strlcpy(out[n].ati_name, tg->t_name,
		    sizeof(out[n].ati_name));
		out[n].ati_ip = tg->t_ip;
		out[n].ati_next = tg->t_next;
		out[n].ati_last_attempt = tg->t_last_attempt;
		out[n].ati_last_success = tg->t_last_success;
		util_strlcpy(out[n].ati_last_error, tg->t_last_error,
		    sizeof(out[n].ati_last_error));
	}
	pthread_mutex_unlock(&a->a_lock);
	return n;
}

/* ---- keys, JWS ------------------------------------------------------- */

/* Atomic 0600 write of text into dir/name (dir made 0700 if missing). */
static int
write_secret(const char *path, const char *dir, const void *data,
    size_t len, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) == -1 && errno != EEXIST) {
		snprintf(err, errlen, "mkdir %s: %s", dir, strerror(errno));
		return -1;
	}
	return util_write_file_atomic(path, data, len, 0600, err, errlen);
}

/* A SEC1 "EC PRIVATE KEY" PEM of k, as autocert writes it; caller frees. */
static char *
key_pem(EVP_PKEY *k, size_t *lenp)
{
	BIO	*b = BIO_new(BIO_s_secmem());
	BUF_MEM	*m;
	char	*out = NULL;

	if (b == NULL)
		return NULL;
	if (PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL,
	    NULL) == 1 && BIO_get_mem_ptr(b, &m) == 1 &&
	    (out = malloc(m->length + 1)) != NULL) {
		memcpy(out, m->data, m->length);
		out[m->length] = '\0';
		*lenp = m->length;
	}
	BIO_free(b);
	return out;
}

/* Fill the JWK and its thumbprint (RFC 7638) of the account key. */
static int
jwk_fill(struct acme *a)
{
	BIGNUM		*x = NULL, *y = NULL;
	uint8_t		 bx[32], by[32], md[32];
	char		 ex[48], ey[48];
	unsigned int	 mdlen;
	int		 rc = -1;

	if (!EVP_PKEY_get_bn_param(a->a_key, OSSL_PKEY_PARAM_EC_PUB_X, &x) ||
	    !EVP_PKEY_get_bn_param(a->a_key, OSSL_PKEY_PARAM_EC_PUB_Y, &y) ||
	    BN_bn2binpad(x, bx, 32) != 32 || BN_bn2binpad(y, by, 32) != 32)
		goto out;
	acme_b64url(bx, 32, ex, sizeof(ex));
	acme_b64url(by, 32, ey, sizeof(ey));
	/* Members in lexicographic order, no spaces: also the thumbprint input. */
	snprintf(a->a_jwk, sizeof(a->a_jwk),
	    "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", ex,
	    ey);
	if (!EVP_Digest(a->a_jwk, strlen(a->a_jwk), md, &mdlen, EVP_sha256(),
	    NULL))
		goto out;
	acme_b64url(md, 32, a->a_thumb, sizeof(a->a_thumb));
	rc = 0;
out:
	BN_free(x);
	BN_free(y);
	return rc;
}

static bool
is_p256(EVP_PKEY *k)
{
	char	 group[64];
	size_t	 gl;

	return EVP_PKEY_is_a(k, "EC") && EVP_PKEY_get_utf8_string_param(k,
	    OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &gl) &&
	    strcmp(group, "prime256v1") == 0;
}

/* Load autocert's account key, or make one and save it. */
static int
account_key(struct acme *a, char *err, size_t errlen)
{
	char	 legacy[PATH_MAX], kerr[256], *pem;
	const char *path = a->a_account_path;
	size_t	 len;
	BIO	*b;

	snprintf(legacy, sizeof(legacy), "%.3800s/acme_account.key",
	    a->a_certdir);
	if (access(path, F_OK) == -1 && access(legacy, F_OK) == 0)
		path = legacy;
	if (access(path, F_OK) == 0) {
		if (keys_check_secrecy(path, kerr, sizeof(kerr)) == -1) {
			snprintf(err, errlen, "-certdir: %s", kerr);
			return -1;
		}
		if ((b = BIO_new_file(path, "r")) == NULL) {
			snprintf(err, errlen, "-certdir: %s: %s", path,
			    strerror(errno));
			return -1;
		}
		a->a_key = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
		BIO_free(b);
		ERR_clear_error();
		if (a->a_key == NULL || !is_p256(a->a_key)) {
			snprintf(err, errlen, "-certdir: %s: not an ECDSA P-256 "
			    "private key PEM", path);
			return -1;
		}
		log_info("acme: account key %s", path);
		return 0;
	}
	if ((a->a_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256")) == NULL ||
	    (pem = key_pem(a->a_key, &len)) == NULL) {
		snprintf(err, errlen, "cannot create an ACME account key");
		return -1;
	}
	if (write_secret(a->a_account_path, a->a_certdir, pem, len, kerr,
	    sizeof(kerr)) == -1) {
		OPENSSL_cleanse(pem, len);
		free(pem);
		snprintf(err, errlen, "-certdir: %s", kerr);
		return -1;
	}
	OPENSSL_cleanse(pem, len);
	free(pem);
	log_info("acme: created account key %s", a->a_account_path);
	return 0;
}

/* ES256 over in: the 64-byte r||s JWS form. 0 or -1. */
static int
es256(EVP_PKEY *k, const char *in, size_t len, uint8_t out[64])
{
	EVP_MD_CTX	*md = EVP_MD_CTX_new();
	unsigned char	 der[80];
	const unsigned char *p = der;
	size_t		 dl = sizeof(der);
	ECDSA_SIG	*sig = NULL;
	int		 rc = -1;

	if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL,
	    k) != 1 || EVP_DigestSign(md, der, &dl, (const unsigned char *)in,
	    len) != 1 || (sig = d2i_ECDSA_SIG(NULL, &p, (long)dl)) == NULL)
		goto out;
	if (BN_bn2binpad(ECDSA_SIG_get0_r(sig), out, 32) == 32 &&
	    BN_bn2binpad(ECDSA_SIG_get0_s(sig), out + 32, 32) == 32)
		rc = 0;
out:
	ECDSA_SIG_free(sig);
	EVP_MD_CTX_free(md);
	ERR_clear_error();
	return rc;
}

/* base64url of a string; caller frees. */
static char *
b64s(const char *s, size_t n)
{
	size_t	 cap = (n + 2) / 3 * 4 + 1;
	char	*out = malloc(cap);

	if (out != NULL)
		acme_b64url((const uint8_t *)s, n, out, cap);
	return out;
}

/*
 * The flattened JWS of payload (NULL: POST-as-GET, an empty payload)
 * signed by the account key for url, with the account's kid or, before
 * there is one, the JWK. Caller frees; NULL on failure.
 */
static char *
jws(struct acme *a, const char *url, const char *payload)
{
	cJSON	*p = cJSON_CreateObject(), *body = NULL;
	char	*prot = NULL, *pb = NULL, *lb = NULL, *in = NULL, *out = NULL;
	uint8_t	 sig[64];
	char	 sb[100];
	size_t	 n;

	if (p == NULL)
		return NULL;
	cJSON_AddStringToObject(p, "alg", "ES256");
	cJSON_AddStringToObject(p, "nonce", a->a_nonce);
	cJSON_AddStringToObject(p, "url", url);
	if (a->a_kid[0] != '\0')
		cJSON_AddStringToObject(p, "kid", a->a_kid);
	else
		cJSON_AddItemToObject(p, "jwk", cJSON_Parse(a->a_jwk));
	if ((prot = cJSON_PrintUnformatted(p)) == NULL ||
	    (pb = b64s(prot, strlen(prot))) == NULL ||
	    (lb = b64s(payload ? payload : "", payload ? strlen(payload) :
	    0)) == NULL)
		goto out;
	n = strlen(pb) + strlen(lb) + 2;
	if ((in = malloc(n)) == NULL)
		goto out;
	snprintf(in, n, "%s.%s", pb, lb);
	if (es256(a->a_key, in, strlen(in), sig) == -1)
		goto out;
	acme_b64url(sig, 64, sb, sizeof(sb));
	if ((body = cJSON_CreateObject()) == NULL)
		goto out;
	cJSON_AddStringToObject(body, "protected", pb);
	cJSON_AddStringToObject(body, "payload", lb);
	cJSON_AddStringToObject(body, "signature", sb);
	out = cJSON_PrintUnformatted(body);
out:
	cJSON_Delete(p);
	cJSON_Delete(body);
	cJSON_free(prot);
	free(pb);
	free(lb);
	free(in);
	return out;
}

/* The externalAccountBinding member (RFC 8555 7.3.4): HS256 over the JWK. */
static cJSON *
eab_object(struct acme *a)
{
	cJSON		*p = cJSON_CreateObject(), *o = NULL;
	char		*prot = NULL, *pb = NULL, *lb = NULL, *in = NULL;
	unsigned char	 mac[32];
	unsigned int	 ml = 0;
	char		 sb[64];
	size_t		 n;

	if (p == NULL)
		return NULL;
	cJSON_AddStringToObject(p, "alg", "HS256");
	cJSON_AddStringToObject(p, "kid", a->a_eab_kid);
	cJSON_AddStringToObject(p, "url", a->a_dir.ad_new_account);
	if ((prot = cJSON_PrintUnformatted(p)) == NULL ||
	    (pb = b64s(prot, strlen(prot))) == NULL ||
	    (lb = b64s(a->a_jwk, strlen(a->a_jwk))) == NULL)
		goto out;
	n = strlen(pb) + strlen(lb) + 2;
	if ((in = malloc(n)) == NULL)
		goto out;
	snprintf(in, n, "%s.%s", pb, lb);
	if (HMAC(EVP_sha256(), a->a_eab_key, a->a_eab_len,
	    (const unsigned char *)in, strlen(in), mac, &ml) == NULL ||
	    ml != 32)
		goto out;
	acme_b64url(mac, 32, sb, sizeof(sb));
	if ((o = cJSON_CreateObject()) == NULL)
		goto out;
	cJSON_AddStringToObject(o, "protected", pb);
	cJSON_AddStringToObject(o, "payload", lb);
	cJSON_AddStringToObject(o, "signature", sb);
out:
	cJSON_Delete(p);
	cJSON_free(prot);
	free(pb);
	free(lb);
	free(in);
	return o;
}

/* A CSR for the host with a fresh P-256 key (kept in a_cert_key). */
static char *
csr_b64(struct acme *a)
{
	X509_REQ		*r = NULL;
	X509_NAME		*n;
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION		*san = NULL;
	unsigned char		*der = NULL;
	char			 sv[300], *out = NULL;
	int			 dl;
	size_t			 cap;

	EVP_PKEY_free(a->a_cert_key);
	if ((a->a_cert_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC",
	    "P-256")) == NULL || (r = X509_REQ_new()) == NULL)
		goto out;
	n = X509_REQ_get_subject_name(r);
	/* An IP certificate names the address in the SAN only, as derper. */
	if (!util_is_ip_literal(a->a_host) && !X509_NAME_add_entry_by_NID(n,
	    NID_commonName, MBSTRING_UTF8, (const unsigned char *)a->a_host,
	    -1, -1, 0))
		goto out;
	snprintf(sv, sizeof(sv), "%s:%s", util_is_ip_literal(a->a_host) ?
	    "IP" : "DNS", a->a_host);
	if ((san = X509V3_EXT_conf_nid(NULL, NULL, NID_subject_alt_name,
	    sv)) == NULL || (exts = sk_X509_EXTENSION_new_null()) == NULL ||
	    !sk_X509_EXTENSION_push(exts, san))
		goto out;
	san = NULL;
	if (!X509_REQ_add_extensions(r, exts) ||
	    !X509_REQ_set_pubkey(r, a->a_cert_key) ||
	    !X509_REQ_sign(r, a->a_cert_key, EVP_sha256()) ||
	    (dl = i2d_X509_REQ(r, &der)) <= 0)
		goto out;
	cap = ((size_t)dl + 2) / 3 * 4 + 1;
	if ((out = malloc(cap)) != NULL)
		acme_b64url(der, (size_t)dl, out, cap);
out:
	ERR_clear_error();
	OPENSSL_free(der);
	X509_EXTENSION_free(san);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(r);
	return out;
}

/* ---- one request at a time ------------------------------------------- */

static size_t
body_cb(char *p, size_t size, size_t n, void *arg)
{
	struct acme	*a = arg;
	size_t		 len = size * n;

	if (evbuffer_get_length(a->a_body) + len > ACME_BODY_MAX) {
		a->a_body_overflow = true;
		return 0;	/* aborts the transfer */
	}
	evbuffer_add(a->a_body, p, len);
	return len;
}

/* Copy a header's value (trimmed) when the line is "name: value". */
static void
header_take(const char *line, size_t len, const char *name, char *out,
    size_t outlen)
{
	size_t	 nl = strlen(name), vl;

	if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 ||
	    line[nl] != ':')
		return;
	line += nl + 1;
	len -= nl + 1;
	while (len > 0 && (*line == ' ' || *line == '\t')) {
		line++;
		len--;
	}
	while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n' ||
	    line[len - 1] == ' '))
		len--;
	vl = len < outlen - 1 ? len : outlen - 1;
	memcpy(out, line, vl);
	out[vl] = '\0';
}

static size_t
header_cb(char *p, size_t size, size_t n, void *arg)
{
	struct acme	*a = arg;
	size_t		 len = size * n;

	header_take(p, len, "Replay-Nonce", a->a_r_nonce,
	    sizeof(a->a_r_nonce));
	header_take(p, len, "Location", a->a_r_location,
	    sizeof(a->a_r_location));
	header_take(p, len, "Retry-After", a->a_r_retry, sizeof(a->a_r_retry));
	return len;
}

static void	req_done(void *easy, int code, void *arg);

/*
 * Start a request: payload NULL is a GET (or HEAD), "" a POST-as-GET,
 * else a POST of that JSON; the JWS is made when it is sent (each send
 * with the newest nonce).
 */
static void
req(struct acme *a, enum step s, const char *url, const char *payload,
    bool head)
{
	st_step(a, s);
	util_strlcpy(a->a_req_url, url, sizeof(a->a_req_url));
	free(a->a_req_payload);
	a->a_req_payload = payload != NULL ? strdup(payload) : NULL;
	a->a_req_head = head;
	a->a_req_pem = s == S_CERT;
	a->a_req_nonce_retries = 0;
	req_send(a);
}

static void	fail(struct acme *, enum fail, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

static void
req_send(struct acme *a)
{
	CURL	*e;
	char	*body = NULL;
	const char *cafile = getenv("SSL_CERT_FILE");
	const char *capath = getenv("SSL_CERT_DIR");

	if ((e = curl_easy_init()) == NULL) {
		fail(a, F_INTERNAL, "curl_easy_init failed");
		return;
	}
	evbuffer_drain(a->a_body, evbuffer_get_length(a->a_body));
	a->a_body_overflow = false;
	a->a_r_nonce[0] = a->a_r_location[0] = a->a_r_retry[0] = '\0';
	a->a_code = 0;
	curl_slist_free_all(a->a_hdrs);
	a->a_hdrs = NULL;
	curl_easy_setopt(e, CURLOPT_URL, a->a_req_url);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "derpd/" DERPD_VERSION);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ACME_REQ_TIMEOUT_MS);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, a);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, a);
	if (cafile != NULL && *cafile != '\0')
		curl_easy_setopt(e, CURLOPT_CAINFO, cafile);
	if (capath != NULL && *capath != '\0')
		curl_easy_setopt(e, CURLOPT_CAPATH, capath);
	if (a->a_req_head)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (a->a_req_payload != NULL) {
		if ((body = jws(a, a->a_req_url, a->a_req_payload[0] == '\0' ?
		    NULL : a->a_req_payload)) == NULL) {
			curl_easy_cleanup(e);
			fail(a, F_INTERNAL, "cannot sign the request to %s",
			    a->a_req_url);
			return;
		}
		a->a_hdrs = curl_slist_append(a->a_hdrs,
		    "Content-Type: application/jose+json");
		if (a->a_req_pem)
			a->a_hdrs = curl_slist_append(a->a_hdrs,
			    "Accept: application/pem-certificate-chain");
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, a->a_hdrs);
		curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
		free(body);
	}
	a->a_busy = true;
	if (auth_curl_add(a->a_curl, e, req_done, a) == -1) {
		a->a_busy = false;
		curl_easy_cleanup(e);
		fail(a, F_INTERNAL, "cannot start a request to %s",
		    a->a_req_url);
	}
}

/* ---- failure, backoff, schedule --------------------------------------- */

static void
timer_at(struct acme_target *tg, int64_t ms)
{
	struct timeval	 tv;

	if (ms < 0)
		ms = 0;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
	evtimer_add(tg->t_timer, &tv);
	pthread_mutex_lock(&tg->t_acme->a_lock);
	tg->t_next = time(NULL) + (time_t)((ms + 999) / 1000);
	pthread_mutex_unlock(&tg->t_acme->a_lock);
}

/* A random fraction in [lo, hi) of v. */
static int64_t
jitter(int64_t v, double lo, double hi)
{
	uint32_t r = 0;

	(void)RAND_bytes((unsigned char *)&r, sizeof(r));
	return (int64_t)((double)v * (lo + (hi - lo) * (r / 4294967296.0)));
}

static void
withdraw_challenges(struct acme *a)
{
	tls_set_http_challenge(a->a_tls, NULL, NULL);
	(void)tls_set_alpn_challenge(a->a_tls, NULL);
}

static void
fail(struct acme *a, enum fail why, const char *fmt, ...)
{
	struct acme_target	*tg = a->a_cur;
	char			 msg[512];
	int64_t			 delay, ra;
	va_list			 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	withdraw_challenges(a);
	pthread_mutex_lock(&a->a_lock);
	a->a_st.as_fail[why]++;
	util_strlcpy(a->a_st.as_last_error, msg, sizeof(a->a_st.as_last_error));
	if (tg != NULL)
		util_strlcpy(tg->t_last_error, msg, sizeof(tg->t_last_error));
	pthread_mutex_unlock(&a->a_lock);
	st_step(a, S_IDLE);
	a->a_cur = NULL;
	if (tg == NULL) {
		log_warnx("acme: %s", msg);
		return;
	}
	delay = tg->t_backoff_ms;
	tg->t_backoff_ms = tg->t_backoff_ms * 2 > ACME_BACKOFF_MAX_MS ?
	    ACME_BACKOFF_MAX_MS : tg->t_backoff_ms * 2;
	delay = jitter(delay, 0.8, 1.2);
	if ((ra = acme_retry_after(a->a_r_retry[0] ? a->a_r_retry : NULL,
	    time(NULL))) >= 0 && ra * 1000 > delay)
		delay = ra * 1000;
	log_warnx("acme: order for %s failed while %s (%s): %s; the current "
	    "certificate stays, next attempt in %llds", tg->t_name,
	    step_names[a->a_step == S_IDLE ? S_IDLE : a->a_step],
	    acme_fail_reasons[why], msg, (long long)(delay / 1000));
	timer_at(tg, delay);
}

/* What is served for the target now. */
static void
target_info(struct acme_target *tg, struct tls_cert_info *ci)
{
	if (tg->t_ip)
		tls_ip_info(tg->t_acme->a_tls, tg->t_name, ci);
	else
		tls_cert_info(tg->t_acme->a_tls, ci);
}

/* Arm the renewal for what is served now (or an order at once). */
static void
schedule_renewal(struct acme_target *tg)
{
	struct tls_cert_info	 ci;
	time_t			 now = time(NULL), at;
	int64_t			 window, ms;

	target_info(tg, &ci);
	if (!ci.ci_present) {
		timer_at(tg, 0);
		return;
	}
	at = acme_renew_at(ci.ci_not_before, ci.ci_not_after);
	/* Up to a tenth of the renewal window earlier (at most 1 h). */
	window = ((int64_t)ci.ci_not_after - (int64_t)at) * 1000 / 10;
	if (window > 3600 * 1000)
		window = 3600 * 1000;
	ms = ((int64_t)at - (int64_t)now) * 1000 - jitter(window, 0, 1);
	log_info("acme: %s is valid until %lld; renewal in %llds", tg->t_name,
	    (long long)ci.ci_not_after, (long long)(ms < 0 ? 0 : ms / 1000));
	timer_at(tg, ms);
}

/* A target's timer: order now, or in a second if another order runs. */
static void
target_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme_target	*tg = arg;

	(void)fd;
	(void)what;
	if (tg->t_acme->a_cur != NULL || tg->t_acme->a_busy) {
		timer_at(tg, 1000);
		return;
	}
	order_begin(tg->t_acme, tg);
}

static struct acme_target *
target_add(struct acme *a, const char *name, bool ip)
{
	struct acme_target	*tg;

	if (a->a_ntargets == sizeof(a->a_targets) / sizeof(a->a_targets[0]) ||
	    (tg = calloc(1, sizeof(*tg))) == NULL)
		return NULL;
	tg->t_acme = a;
	util_strlcpy(tg->t_name, name, sizeof(tg->t_name));
	tg->t_ip = ip;
	tg->t_backoff_ms = ACME_BACKOFF_MIN_MS;
	if ((tg->t_timer = evtimer_new(a->a_env->d_base, target_cb, tg)) ==
	    NULL) {
		free(tg);
		return NULL;
	}
	pthread_mutex_lock(&a->a_lock);
	a->a_targets[a->a_ntargets++] = tg;
	pthread_mutex_unlock(&a->a_lock);
	return tg;
}

/* ---- the order, step by step ------------------------------------------ */

static void
order_begin(struct acme *a, struct acme_target *tg)
{
	a->a_cur = tg;
	util_strlcpy(a->a_host, tg->t_name, sizeof(a->a_host));
	pthread_mutex_lock(&a->a_lock);
	a->a_st.as_attempts++;
	a->a_st.as_last_attempt = time(NULL);
	tg->t_last_attempt = a->a_st.as_last_attempt;
	tg->t_next = 0;
	pthread_mutex_unlock(&a->a_lock);
	log_info("acme: ordering a certificate for %s from %s", a->a_host,
	    a->a_dir_url);
	a->a_kid[0] = '\0';
	req(a, S_DIR, a->a_dir_url, NULL, false);
}

static void
after_directory(struct acme *a, const char *body, size_t len)
{
	if (acme_parse_directory(body, len, &a->a_dir) == -1) {
		fail(a, F_INVALID, "%s is not an ACME directory", a->a_dir_url);
		return;
	}
	if (a->a_dir.ad_eab_required && a->a_eab_len == 0) {
		fail(a, F_REJECTED, "the CA requires External Account Binding "
		    "(-acme-eab-kid, -acme-eab-key)");
		return;
	}
	req(a, S_NONCE, a->a_dir.ad_new_nonce, NULL, true);
}

static void
send_account(struct acme *a)
{
	cJSON	*p = cJSON_CreateObject(), *c, *eab;
	char	*s = NULL, mail[300];

	if (p == NULL)
		goto oom;
	cJSON_AddTrueToObject(p, "termsOfServiceAgreed");
	if (a->a_email[0] != '\0') {
		snprintf(mail, sizeof(mail), "mailto:%s", a->a_email);
		if ((c = cJSON_AddArrayToObject(p, "contact")) == NULL)
			goto oom;
		cJSON_AddItemToArray(c, cJSON_CreateString(mail));
	}
	if (a->a_eab_len > 0) {
		if ((eab = eab_object(a)) == NULL)
			goto oom;
		cJSON_AddItemToObject(p, "externalAccountBinding", eab);
	}
	if ((s = cJSON_PrintUnformatted(p)) == NULL)
		goto oom;
	cJSON_Delete(p);
	req(a, S_ACCOUNT, a->a_dir.ad_new_account, s, false);
	cJSON_free(s);
	return;
oom:
	cJSON_Delete(p);
	fail(a, F_INTERNAL, "cannot build the account request");
}

static void
send_order(struct acme *a)
{
	char	 p[600];

	/* IP addresses: Let's Encrypt's short-lived profile, as derper. */
	snprintf(p, sizeof(p), "{\"identifiers\":[{\"type\":\"%s\","
	    "\"value\":\"%s\"}]%s}", a->a_cur->t_ip ? "ip" : "dns",
	    a->a_host, a->a_cur->t_ip ? ",\"profile\":\"shortlived\"" : "");
	req(a, S_ORDER, a->a_dir.ad_new_order, p, false);
}

static void
next_authz(struct acme *a)
{
	if (a->a_authz_i < a->a_order.ao_nauthz) {
		a->a_polls = 0;
		req(a, S_AUTHZ, a->a_order.ao_authz[a->a_authz_i], "", false);
		return;
	}
	{
		char *csr = csr_b64(a), *p;
		size_t n;
		if (csr == NULL) {
			fail(a, F_INTERNAL, "cannot build the CSR");
			return;
		}
		n = strlen(csr) + 16;
		if ((p = malloc(n)) == NULL) {
			free(csr);
			fail(a, F_INTERNAL, "out of memory");
			return;
		}
		snprintf(p, n, "{\"csr\":\"%s\"}", csr);
		a->a_polls = 0;
		req(a, S_FINALIZE, a->a_order.ao_finalize, p, false);
		free(p);
		free(csr);
	}
}

/* Set up the answer to one challenge of az and tell the CA; false: none. */
static bool
answer(struct acme *a, const struct acme_authz *az)
{
	const struct acme_chal	*pick = NULL;
	char			 ka[TLS_ANSWER_MAX];
	uint8_t			 md[32];
	unsigned int		 ml;

	/*
	 * TLS-ALPN-01 first (the TLS port is always ours), then HTTP-01 when
	 * -http-port is on, as autocert; a type whose validation failed last
	 * time goes last.
	 */
	const char *pref[2] = { "tls-alpn-01", "http-01" };

	if (a->a_cur->t_ip)
		pref[0] = "http-01";	/* TLS-ALPN-01 needs a name */
	else if (strcmp(a->a_cur->t_avoid, pref[0]) == 0) {
		pref[0] = "http-01";
		pref[1] = "tls-alpn-01";
	}
	for (int k = 0; k < 2 && pick == NULL; k++)
		for (size_t i = 0; i < az->az_nchal && pick == NULL; i++)
			if (strcmp(az->az_chal[i].ac_type, pref[k]) == 0 &&
			    (a->a_http01 || strcmp(pref[k], "http-01") != 0))
				pick = &az->az_chal[i];
	if (pick == NULL || pick->ac_token[0] == '\0')
		return false;
	/* The token is base64url (RFC 8555 8.1): nothing else is served. */
	for (const char *t = pick->ac_token; *t; t++)
		if (!((*t >= 'A' && *t <= 'Z') || (*t >= 'a' && *t <= 'z') ||
		    (*t >= '0' && *t <= '9') || *t == '-' || *t == '_'))
			return false;
	snprintf(ka, sizeof(ka), "%s.%s", pick->ac_token, a->a_thumb);
	if (strcmp(pick->ac_type, "tls-alpn-01") == 0) {
		if (!EVP_Digest(ka, strlen(ka), md, &ml, EVP_sha256(), NULL) ||
		    tls_set_alpn_challenge(a->a_tls, md) == -1)
			return false;
	} else
		tls_set_http_challenge(a->a_tls, pick->ac_token, ka);
	pthread_mutex_lock(&a->a_lock);
	util_strlcpy(a->a_st.as_challenge, pick->ac_type,
	    sizeof(a->a_st.as_challenge));
	pthread_mutex_unlock(&a->a_lock);
	util_strlcpy(a->a_chal_url, pick->ac_url, sizeof(a->a_chal_url));
	log_info("acme: answering %s for %s", pick->ac_type, az->az_ident);
	req(a, S_CHALLENGE, pick->ac_url, "{}", false);
	return true;
}

/* Poll again after Retry-After (1 s when absent), ACME_POLLS at most. */
static void
poll_later(struct acme *a)
{
	int64_t	 ra = acme_retry_after(a->a_r_retry[0] ? a->a_r_retry : NULL,
	    time(NULL));

	if (++a->a_polls > ACME_POLLS) {
		fail(a, F_TIMEOUT, "still %s after %d polls",
		    a->a_step == S_AUTHZ_POLL ? "validating" : "processing",
		    ACME_POLLS);
		return;
	}
	{
		struct timeval tv;
		int64_t ms = ra > 0 ? (ra > 10 ? 10000 : ra * 1000) : 1000;
		tv.tv_sec = (time_t)(ms / 1000);
		tv.tv_usec = 0;
		evtimer_add(a->a_timer, &tv);
	}
}

static void
after_authz(struct acme *a, const char *body, size_t len)
{
	struct acme_authz	 az;

	if (acme_parse_authz(body, len, &az) == -1) {
		fail(a, F_INVALID, "unreadable authorization from %s",
		    a->a_req_url);
		return;
	}
	if (strcmp(az.az_status, "valid") == 0) {
		withdraw_challenges(a);
		a->a_authz_i++;
		next_authz(a);
		return;
	}
	if (strcmp(az.az_status, "pending") == 0) {
		if (a->a_step == S_AUTHZ) {
			if (!answer(a, &az))
				fail(a, F_NOCHAL, "no usable challenge for %s "
				    "(TLS-ALPN-01, or HTTP-01 with -http-port)",
				    az.az_ident);
			return;
		}
		st_step(a, S_AUTHZ_POLL);
		poll_later(a);
		return;
	}
	pthread_mutex_lock(&a->a_lock);
	util_strlcpy(a->a_cur->t_avoid, a->a_st.as_challenge,
	    sizeof(a->a_cur->t_avoid));
	pthread_mutex_unlock(&a->a_lock);
	fail(a, F_CHALLENGE, "authorization for %s is %s%s%s", az.az_ident,
	    az.az_status, az.az_error[0] ? ": " : "", az.az_error);
}

static void
after_order(struct acme *a, const char *body, size_t len)
{
	if (acme_parse_order(body, len, &a->a_order) == -1) {
		fail(a, F_INVALID, "unreadable order from %s", a->a_req_url);
		return;
	}
	if (a->a_step == S_ORDER) {
		if (a->a_r_location[0] == '\0') {
			fail(a, F_INVALID, "the new order has no Location");
			return;
		}
		util_strlcpy(a->a_order_url, a->a_r_location,
		    sizeof(a->a_order_url));
		a->a_authz_i = 0;
		next_authz(a);
		return;
	}
	/* After finalize, and each poll of the order. */
	if (strcmp(a->a_order.ao_status, "valid") == 0 &&
	    a->a_order.ao_certificate[0] != '\0') {
		req(a, S_CERT, a->a_order.ao_certificate, "", false);
		return;
	}
	if (strcmp(a->a_order.ao_status, "processing") == 0 ||
	    strcmp(a->a_order.ao_status, "valid") == 0 ||
	    strcmp(a->a_order.ao_status, "ready") == 0) {
		st_step(a, S_ORDER_POLL);
		poll_later(a);
		return;
	}
	fail(a, F_REJECTED, "order is %s", a->a_order.ao_status);
}

/* derper's files for an address: <certdir>/<ip, ':' as '.'>.crt|.key */
static void
ip_paths(struct acme *a, const char *ip, char *crt, char *key, size_t len)
{
	char	 base[64];
	size_t	 i;

	for (i = 0; ip[i] != '\0' && i + 1 < sizeof(base); i++)
		base[i] = ip[i] == ':' ? '.' : ip[i];
	base[i] = '\0';
	snprintf(crt, len, "%.3800s/%s.crt", a->a_certdir, base);
	snprintf(key, len, "%.3800s/%s.key", a->a_certdir, base);
}

/* Write (atomically) a file of mode 0644; the directory exists. */
static int
write_public(const char *path, const char *dir, const void *data, size_t len,
    char *err, size_t errlen)
{
	if (write_secret(path, dir, data, len, err, errlen) == -1)
		return -1;
	if (chmod(path, 0644) == -1) {
		snprintf(err, errlen, "%.400s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static void
after_cert(struct acme *a, const char *chain, size_t len)
{
	struct acme_target	*tg = a->a_cur;
	struct tls_cert_info	 ci;
	struct evbuffer		*f = evbuffer_new();
	char			 err[512], *pem = NULL, *text;
	char			 crt[PATH_MAX], key[PATH_MAX];
	const char		*saved;
	size_t			 kl = 0, tl;
	int			 rc;

	if (f == NULL || (pem = key_pem(a->a_cert_key, &kl)) == NULL) {
		evbuffer_free(f);
		fail(a, F_INTERNAL, "out of memory");
		return;
	}
	evbuffer_add(f, pem, kl);
	evbuffer_add(f, chain, len);
	tl = evbuffer_get_length(f);
	text = (char *)evbuffer_pullup(f, -1);
	rc = tg->t_ip ? tls_ip_install(a->a_tls, tg->t_name, text, tl,
	    "issued certificate", err, sizeof(err)) :
	    tls_install_pem(a->a_tls, text, tl, err, sizeof(err));
	if (rc == -1) {
		fail(a, F_INSTALL, "the issued certificate is unusable: %s",
		    err);
		goto out;
	}
	/* Served, but if not saved a restart would order again: say so. */
	if (tg->t_ip) {
		ip_paths(a, tg->t_name, crt, key, sizeof(crt));
		saved = crt;
		rc = write_secret(key, a->a_certdir, pem, kl, err,
		    sizeof(err)) == 0 && write_public(crt, a->a_certdir, chain,
		    len, err, sizeof(err)) == 0 ? 0 : -1;
	} else {
		saved = tls_cache_path(a->a_tls);
		rc = write_secret(saved, a->a_certdir, text, tl, err,
		    sizeof(err));
	}
	if (rc == -1) {
		fail(a, F_STORAGE, "cannot save the certificate: %s", err);
		goto out;
	}
	EVP_PKEY_free(a->a_cert_key);
	a->a_cert_key = NULL;
	withdraw_challenges(a);
	tg->t_backoff_ms = ACME_BACKOFF_MIN_MS;
	tg->t_avoid[0] = '\0';
	target_info(tg, &ci);
	pthread_mutex_lock(&a->a_lock);
	a->a_st.as_issued++;
	a->a_st.as_last_success = tg->t_last_success = time(NULL);
	a->a_st.as_last_error[0] = '\0';
	tg->t_last_error[0] = '\0';
	pthread_mutex_unlock(&a->a_lock);
	log_info("acme: obtained a certificate for %s from %s (serial %s), "
	    "saved in %s", tg->t_name, ci.ci_issuer, ci.ci_serial, saved);
	if (tg->t_ip)
		log_info("acme: DERP node for %s: {\"Name\":\"custom\","
		    "\"RegionID\":900,\"HostName\":\"%s\"}", tg->t_name,
		    tg->t_name);
	a->a_cur = NULL;
	st_step(a, S_IDLE);
	schedule_renewal(tg);
out:
	OPENSSL_cleanse(pem, kl);
	free(pem);
	OPENSSL_cleanse(text, tl);
	evbuffer_free(f);
}

/* A response: the nonce first, then errors, then the step's handler. */
static void
req_done(void *easy, int code, void *arg)
{
	struct acme		*a = arg;
	struct acme_problem	 pr;
	size_t			 len;
	char			*body;

	a->a_busy = false;
	curl_easy_getinfo((CURL *)easy, CURLINFO_RESPONSE_CODE, &a->a_code);
	curl_slist_free_all(a->a_hdrs);
	a->a_hdrs = NULL;
	if (code == CURLE_ABORTED_BY_CALLBACK && a->a_env == NULL)
		return;		/* acme_free */
	if (a->a_r_nonce[0] != '\0')
		util_strlcpy(a->a_nonce, a->a_r_nonce, sizeof(a->a_nonce));
	if (a->a_body_overflow) {
		fail(a, F_INVALID, "response from %s larger than %d bytes",
		    a->a_req_url, ACME_BODY_MAX);
		return;
	}
	if (code != CURLE_OK) {
		fail(a, F_UNREACHABLE, "%s: %s", a->a_req_url,
		    curl_easy_strerror((CURLcode)code));
		return;
	}
	len = evbuffer_get_length(a->a_body);
	body = (char *)evbuffer_pullup(a->a_body, -1);
	if (a->a_code >= 400) {
		if (acme_parse_problem(body, len, &pr) == 0) {
			const char *t = acme_problem_short(pr.ap_type);
			if (strcmp(t, "badNonce") == 0 && a->a_r_nonce[0] &&
			    a->a_req_nonce_retries++ < ACME_NONCE_RETRIES) {
				log_debug("acme: badNonce from %s, retrying",
				    a->a_req_url);
				req_send(a);
				return;
			}
			fail(a, strcmp(t, "rateLimited") == 0 ? F_RATE :
			    F_REJECTED, "%s answered %ld %s: %s", a->a_req_url,
			    a->a_code, t, pr.ap_detail);
		} else
			fail(a, a->a_code == 429 ? F_RATE : F_HTTP,
			    "%s answered %ld", a->a_req_url, a->a_code);
		return;
	}
	switch (a->a_step) {
	case S_DIR:
		after_directory(a, body, len);
		break;
	case S_NONCE:
		if (a->a_nonce[0] == '\0')
			fail(a, F_INVALID, "no Replay-Nonce from %s",
			    a->a_req_url);
		else
			send_account(a);
		break;
	case S_ACCOUNT:
		if (a->a_r_location[0] == '\0') {
			fail(a, F_INVALID, "the account has no Location");
			break;
		}
		util_strlcpy(a->a_kid, a->a_r_location, sizeof(a->a_kid));
		send_order(a);
		break;
	case S_ORDER:
	case S_FINALIZE:
	case S_ORDER_POLL:
		after_order(a, body, len);
		break;
	case S_AUTHZ:
	case S_AUTHZ_POLL:
		after_authz(a, body, len);
		break;
	case S_CHALLENGE:
		a->a_polls = 0;
		st_step(a, S_AUTHZ_POLL);
		poll_later(a);
		break;
	case S_CERT:
		after_cert(a, body, len);
		break;
	case S_IDLE:
		break;
	}
}

/* The poll timer shares a_timer: what it does depends on the step. */
static void
step_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme	*a = arg;

	(void)fd;
	(void)what;
	switch (a->a_step) {
	case S_AUTHZ_POLL:
		req(a, S_AUTHZ_POLL, a->a_order.ao_authz[a->a_authz_i], "",
		    false);
		break;
	case S_ORDER_POLL:
		req(a, S_ORDER_POLL, a->a_order_url, "", false);
		break;
	default:
		break;
	}
}

/* An address tls.c saw without a certificate: its files, else an order. */
static void
want_ip(struct acme *a, const char *ip)
{
	struct acme_target	*tg;
	char			 crt[PATH_MAX], key[PATH_MAX], err[512];
	char			*k = NULL, *c = NULL, *both = NULL;
	size_t			 kl, cl;

	for (size_t i = 0; i < a->a_ntargets; i++)
		if (strcmp(a->a_targets[i]->t_name, ip) == 0)
			return;		/* ordering or waiting already */
	if ((tg = target_add(a, ip, true)) == NULL) {
		log_warnx("acme: no room for a certificate for %s", ip);
		return;
	}
	ip_paths(a, ip, crt, key, sizeof(crt));
	if (access(crt, F_OK) == 0 && access(key, F_OK) == 0) {
		if (keys_check_secrecy(key, err, sizeof(err)) == -1)
			log_warnx("acme: %s; ordering a new certificate", err);
		else if ((k = util_read_small_file(key, TLS_CACHE_MAX, 0, &kl,
		    NULL, 0)) != NULL && (c = util_read_small_file(crt,
		    TLS_CACHE_MAX, 0, &cl, NULL, 0)) != NULL &&
		    (both = malloc(kl + cl + 1)) != NULL) {
			memcpy(both, k, kl);
			memcpy(both + kl, c, cl);
			if (tls_ip_install(a->a_tls, ip, both, kl + cl, crt, err,
			    sizeof(err)) == 0)
				log_info("acme: serving %s for %s", crt, ip);
			else
				log_info("acme: %s not usable (%s); ordering",
				    crt, err);
			OPENSSL_cleanse(both, kl + cl);
		}
		if (k != NULL)
			OPENSSL_cleanse(k, kl);
		free(k);
		free(c);
		free(both);
	}
	schedule_renewal(tg);
}

static void
want_cb(evutil_socket_t fd, short what, void *arg)
{
	struct acme	*a = arg;
	char		 ips[16][64];
	uint64_t	 v;
	size_t		 n;

	(void)what;
	(void)!read(fd, &v, sizeof(v));
	while ((n = tls_ip_wanted(a->a_tls, ips, 16)) > 0)
		for (size_t i = 0; i < n; i++)
			want_ip(a, ips[i]);
}

/* ---- life -------------------------------------------------------------- */

struct acme *
acme_new(struct derpd *env, bool ipcerts, char *err, size_t errlen)
{
	const struct derpd_conf	*c = env->d_conf;
	struct acme		*a;

	if ((a = calloc(1, sizeof(*a))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&a->a_lock, NULL);
	a->a_env = env;
	a->a_tls = env->d_tls;
	a->a_ipcerts = ipcerts;
	a->a_want_fd = -1;
	util_strlcpy(a->a_host, c->dc_hostname, sizeof(a->a_host));
	util_strlcpy(a->a_certdir, c->dc_certdir, sizeof(a->a_certdir));
	util_strlcpy(a->a_dir_url, c->dc_acme_directory, sizeof(a->a_dir_url));
	util_strlcpy(a->a_email, c->dc_acme_email, sizeof(a->a_email));
	if (a->a_email[0] == '\0' && strcmp(a->a_host,
	    "derp.tailscale.com") == 0)
		util_strlcpy(a->a_email, "security@tailscale.com",
		    sizeof(a->a_email));
	util_strlcpy(a->a_eab_kid, c->dc_acme_eab_kid, sizeof(a->a_eab_kid));
	if (c->dc_acme_eab_key[0] != '\0' && (a->a_eab_len = acme_b64_decode(
	    c->dc_acme_eab_key, a->a_eab_key, sizeof(a->a_eab_key))) <= 0) {
		snprintf(err, errlen, "-acme-eab-key: invalid base64 "
		    "encoding for EAB key");
		goto fail;
	}
	a->a_http01 = c->dc_http_port != -1;
	/* autocert's account, or derper's IP certificate manager's. */
	snprintf(a->a_account_path, sizeof(a->a_account_path), ipcerts ?
	    "%.3800s/acme-account.key" : "%.3800s/acme_account+key",
	    a->a_certdir);
	util_strlcpy(a->a_st.as_state, "idle", sizeof(a->a_st.as_state));
	util_strlcpy(a->a_st.as_directory, a->a_dir_url,
	    sizeof(a->a_st.as_directory));
	if (account_key(a, err, errlen) == -1 || jwk_fill(a) == -1) {
		if (err[0] == '\0')
			snprintf(err, errlen, "cannot use the account key");
		goto fail;
	}
	if ((a->a_body = evbuffer_new()) == NULL ||
	    (a->a_curl = auth_curl_new(env->d_base)) == NULL ||
	    (a->a_timer = evtimer_new(env->d_base, step_timer_cb, a)) ==
	    NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (ipcerts) {
		if ((a->a_want_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) ==
		    -1 || (a->a_want_ev = event_new(env->d_base, a->a_want_fd,
		    EV_READ | EV_PERSIST, want_cb, a)) == NULL ||
		    event_add(a->a_want_ev, NULL) == -1) {
			snprintf(err, errlen, "eventfd: %s", strerror(errno));
			goto fail;
		}
	} else if (target_add(a, c->dc_hostname, false) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/*
	 * Saved address certificates before the listeners open, so the
	 * first connection gets one; their timers run once the loop does.
	 */
	if (ipcerts)
		load_saved_ips(a);
	return a;
fail:
	acme_free(a);
	return NULL;
}

/*
 * -acme-ip-certs at startup: the certificates saved for this host's
 * addresses are served from the first connection on, as derper reads
 * them from disk when first asked.
 */
static void
load_saved_ips(struct acme *a)
{
	struct ifaddrs	*ifs, *i;
	char		 ip[64], crt[PATH_MAX], key[PATH_MAX];

	if (getifaddrs(&ifs) == -1)
		return;
	for (i = ifs; i != NULL; i = i->ifa_next) {
		if (i->ifa_addr == NULL || (i->ifa_addr->sa_family != AF_INET &&
		    i->ifa_addr->sa_family != AF_INET6))
			continue;
		util_addr_ip(i->ifa_addr, ip, sizeof(ip));
		if (strchr(ip, '%') != NULL)
			continue;	/* link-local with a zone */
		ip_paths(a, ip, crt, key, sizeof(crt));
		if (access(crt, F_OK) == 0 && access(key, F_OK) == 0)
			want_ip(a, ip);
	}
	freeifaddrs(ifs);
}

void
acme_start(struct acme *a)
{
	if (a->a_ipcerts) {
		tls_set_want_fd(a->a_tls, a->a_want_fd);
		return;		/* load_saved_ips scheduled each */
	}
	for (size_t i = 0; i < a->a_ntargets; i++)
		schedule_renewal(a->a_targets[i]);
}

void
acme_free(struct acme *a)
{
	if (a == NULL)
		return;
	if (a->a_ipcerts && a->a_tls != NULL)
		tls_set_want_fd(a->a_tls, -1);
	a->a_env = NULL;	/* req_done: an abandoned transfer */
	auth_curl_free(a->a_curl);
	for (size_t i = 0; i < a->a_ntargets; i++) {
		event_free(a->a_targets[i]->t_timer);
		free(a->a_targets[i]);
	}
	if (a->a_want_ev != NULL)
		event_free(a->a_want_ev);
	if (a->a_want_fd != -1)
		close(a->a_want_fd);
	if (a->a_timer != NULL)
		event_free(a->a_timer);
	if (a->a_body != NULL)
		evbuffer_free(a->a_body);
	curl_slist_free_all(a->a_hdrs);
	free(a->a_req_payload);
	EVP_PKEY_free(a->a_key);
	EVP_PKEY_free(a->a_cert_key);
	OPENSSL_cleanse(a->a_eab_key, sizeof(a->a_eab_key));
	pthread_mutex_destroy(&a->a_lock);
	free(a);
}

/* The earliest end of validity among the certificates a serves; 0 none. */
static time_t
first_expiry(struct acme *a)
{
	struct acme_target_info	*ti;
	struct tls_cert_info	 ci;
	time_t			 first = 0;
	size_t			 n;

	if (a == NULL || (ti = calloc(TLS_MAX_IPS + 1, sizeof(*ti))) == NULL)
		return 0;
	n = acme_targets(a, ti, TLS_MAX_IPS + 1);
	for (size_t i = 0; i < n; i++) {
		if (ti[i].ati_ip)
			tls_ip_info(a->a_tls, ti[i].ati_name, &ci);
		else
			tls_cert_info(a->a_tls, &ci);
		if (ci.ci_present && (first == 0 || ci.ci_not_after < first))
			first = ci.ci_not_after;
	}
	free(ti);
	return first;
}

void
acme_varz(struct acme *a, struct acme *ip, struct evbuffer *out)
{
	struct acme_status	 st, s2;
	time_t			 exp, e2, now = time(NULL);

	if (a == NULL && ip == NULL)
		return;
	memset(&st, 0, sizeof(st));
	memset(&s2, 0, sizeof(s2));
	if (a != NULL)
		acme_status(a, &st);
	if (ip != NULL)
		acme_status(ip, &s2);
	st.as_attempts += s2.as_attempts;
	st.as_issued += s2.as_issued;
	for (int i = 0; acme_fail_reasons[i] != NULL; i++)
		st.as_fail[i] += s2.as_fail[i];
	if (s2.as_next_attempt > 0 && (st.as_next_attempt == 0 ||
	    s2.as_next_attempt < st.as_next_attempt))
		st.as_next_attempt = s2.as_next_attempt;
	exp = first_expiry(a);
	e2 = first_expiry(ip);
	if (e2 > 0 && (exp == 0 || e2 < exp))
		exp = e2;
	evbuffer_add_printf(out,
	    "# HELP derpd_acme_attempts ACME orders started\n"
	    "# TYPE derpd_acme_attempts counter\n"
	    "derpd_acme_attempts %llu\n"
	    "# HELP derpd_acme_issued certificates obtained by ACME\n"
	    "# TYPE derpd_acme_issued counter\n"
	    "derpd_acme_issued %llu\n"
	    "# HELP derpd_acme_failures ACME orders that failed, by reason\n"
	    "# TYPE derpd_acme_failures counter\n",
	    (unsigned long long)st.as_attempts,
	    (unsigned long long)st.as_issued);
	for (int i = 0; acme_fail_reasons[i] != NULL; i++)
		evbuffer_add_printf(out,
		    "derpd_acme_failures{reason=\"%s\"} %llu\n",
		    acme_fail_reasons[i], (unsigned long long)st.as_fail[i]);
	evbuffer_add_printf(out,
	    "# HELP derpd_acme_cert_expiry_seconds seconds until the first "
	    "ACME certificate served expires (absent: none yet)\n"
	    "# TYPE derpd_acme_cert_expiry_seconds gauge\n");
	if (exp > 0)
		evbuffer_add_printf(out, "derpd_acme_cert_expiry_seconds %lld\n",
		    (long long)(exp - now));
	evbuffer_add_printf(out,
	    "# HELP derpd_acme_next_attempt_seconds seconds until the next "
	    "order or renewal\n"
	    "# TYPE derpd_acme_next_attempt_seconds gauge\n"
	    "derpd_acme_next_attempt_seconds %lld\n",
	    (long long)(st.as_next_attempt > 0 ? st.as_next_attempt - now :
	    0));
}
