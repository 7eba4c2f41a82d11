/* SPDX-License-Identifier: ISC */
/*
 * acme.h: certificates from an ACME CA (RFC 8555) for -certmode
 * letsencrypt and gcp, as derper gets them with autocert: the account
 * and the certificate in derper's -certdir layout, HTTP-01 on -http-port
 * and TLS-ALPN-01 on the TLS port, renewal a third of the lifetime before
 * the end. Runs on the main thread's event base (libcurl multi, never
 * blocking); the certificate is swapped into tls.c with no connection
 * dropped.
 */
#ifndef DERPD_ACME_H
#define DERPD_ACME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

struct acme;
struct derpd;
struct evbuffer;

#define ACME_DIR_LETSENCRYPT "https://acme-v02.api.letsencrypt.org/directory"
#define ACME_DIR_GCP	     "https://dv.acme-v02.api.pki.goog/directory"

/*
 * Load (or create, 0600) the account key in -certdir and prepare; nothing
 * is sent until acme_start. ipcerts: the -acme-ip-certs account (derper's
 * acme-account.key, <ip>.crt|.key, HTTP-01, the short-lived profile), whose
 * addresses come from tls.c as clients reach them; else -hostname's. NULL with a message in err (a key file that is
 * unreadable, malformed or group/world-accessible).
 */
struct acme *acme_new(struct derpd *, bool ipcerts, char *err,
	    size_t errlen);
/* Begin: issue now when no usable certificate is served, else schedule
 * the renewal. */
void	acme_start(struct acme *);
/* Stop and free; transfers in flight are abandoned. NULL is a no-op. */
void	acme_free(struct acme *);

/* What derpctl show certs and the metrics read (any thread). */
struct acme_status {
	char	 as_state[32];		/* "idle", "ordering", "waiting", ... */
	char	 as_directory[1024];
	char	 as_challenge[16];	/* last challenge used, or "" */
	char	 as_last_error[512];	/* "" after a success */
	time_t	 as_last_attempt;	/* 0: never */
	time_t	 as_last_success;
	time_t	 as_next_attempt;	/* next order or renewal; 0 none */
	uint64_t as_attempts;		/* orders started */
	uint64_t as_issued;		/* certificates obtained */
	uint64_t as_fail[16];		/* by reason, acme_fail_reasons */
};
void	acme_status(struct acme *, struct acme_status *);
/* Each name certificates are kept for, and its schedule. */
struct acme_target_info {
	char	 ati_name[256];
	bool	 ati_ip;
	time_t	 ati_next;		/* next order or renewal; 0 none */
	time_t	 ati_last_attempt;
	time_t	 ati_last_success;
	char	 ati_last_error[512];
};
size_t	acme_targets(struct acme *, struct acme_target_info *, size_t max);
/* The failure reasons, in as_fail order; NULL-terminated. */
extern const char *const acme_fail_reasons[];

/* The derpd_acme_* families (Prometheus text) of both accounts (either
 * may be NULL; both NULL: none). */
void	acme_varz(struct acme *, struct acme *ip, struct evbuffer *out);

#ifdef __cplusplus
}
#endif
#endif
