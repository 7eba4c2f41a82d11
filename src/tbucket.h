/* SPDX-License-Identifier: ISC */
/*
 * tbucket.h: a token bucket with the semantics of Go's x/time/rate
 * Limiter, which derper's limits use: it starts full, refills at rate
 * tokens per second up to burst, and a reservation may take it below zero
 * (the caller waits the returned delay). Pure: the caller passes the time.
 */
#ifndef DERPD_TBUCKET_H
#define DERPD_TBUCKET_H

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct tbucket {
	double		 tb_rate;	/* tokens per second; INFINITY: no limit */
	double		 tb_burst;
	double		 tb_tokens;
	uint64_t	 tb_last_ns;	/* monotonic time of tb_tokens */
};

/* A full bucket of burst tokens refilled at rate per second from now. */
void	tbucket_init(struct tbucket *, double rate, double burst,
	    uint64_t now_ns);
/*
 * Take n tokens now if there are that many (Go's AllowN): true, or false
 * with the bucket unchanged. Never true for n > burst unless unlimited.
 */
bool	tbucket_allow(struct tbucket *, double n, uint64_t now_ns);
/*
 * Take n tokens now even if that leaves the bucket below zero (Go's
 * ReserveN, n <= burst): the nanoseconds until the debt is paid, 0 when
 * there was enough. The caller waits that long before the next use.
 */
uint64_t tbucket_reserve(struct tbucket *, double n, uint64_t now_ns);
/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t tbucket_now_ns(void);

#ifdef __cplusplus
}
#endif
#endif
