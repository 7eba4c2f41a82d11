/* SPDX-License-Identifier: ISC */
/* log.h: OpenBSD-style logging to stderr or syslog, safe from any thread. */
#ifndef DERPD_LOG_H
#define DERPD_LOG_H

#include <stdarg.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LOG_FMT(a, b) __attribute__((format(printf, a, b)))

/* Set up logging: stderr unless use_syslog, debug lines when verbose. */
void	log_init(int verbose, int use_syslog);
void	log_setverbose(int verbose);
int	log_getverbose(void);
void	log_warn(const char *, ...) LOG_FMT(1, 2);
void	log_warnx(const char *, ...) LOG_FMT(1, 2);
void	log_info(const char *, ...) LOG_FMT(1, 2);
void	log_debug(const char *, ...) LOG_FMT(1, 2);
/*
 * A token bucket for lines that peers can cause (one per bad connection):
 * rate lines per second, up to burst at once. Owned by one thread.
 */
struct log_rate {
	uint64_t	 lr_last_ms;
	double		 lr_tokens;
	uint64_t	 lr_held;	/* lines held back since the last one */
};
/*
 * May a line be written at now_ms? 1 yes, with *held set to the lines held
 * back before it (to mention once, then reset); 0 no (counted in lr_held).
 */
int	log_rate_allow(struct log_rate *, uint64_t now_ms, double rate,
	    double burst, uint64_t *held);
/* Log the OpenSSL error queue (and clear it) under a caller prefix. */
void	log_ssl_errors(const char *prefix);
__attribute__((noreturn)) void fatal(const char *, ...) LOG_FMT(1, 2);
__attribute__((noreturn)) void fatalx(const char *, ...) LOG_FMT(1, 2);

#ifdef __cplusplus
}
#endif
#endif
