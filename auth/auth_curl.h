/* SPDX-License-Identifier: ISC */
/*
 * auth_curl.h: libcurl's multi-socket API on a libevent base (auth_curl.c),
 * used by the admission backends and by the ACME client (src/acme.c).
 */
#ifndef DERPD_AUTH_CURL_H
#define DERPD_AUTH_CURL_H

#ifdef __cplusplus
extern "C" {
#endif

struct auth_curl;
struct event_base;

struct auth_curl *auth_curl_new(struct event_base *base);
/* Pending transfers finish with CURLE_ABORTED_BY_CALLBACK, then free. */
void	auth_curl_free(struct auth_curl *);
/*
 * Add an easy handle; done(easy, result, arg) runs on completion, on the
 * base's thread; the easy handle is cleaned up after done returns.
 */
int	auth_curl_add(struct auth_curl *, void *easy,
	    void (*done)(void *easy, int curlcode, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif
