/* SPDX-License-Identifier: ISC */
/* log.h: OpenBSD-style logging to stderr or syslog, safe from any thread. */
#ifndef DERPD_LOG_H
#define DERPD_LOG_H

#include <stdarg.h>

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
/* Log the OpenSSL error queue (and clear it) under a caller prefix. */
void	log_ssl_errors(const char *prefix);
__attribute__((noreturn)) void fatal(const char *, ...) LOG_FMT(1, 2);
__attribute__((noreturn)) void fatalx(const char *, ...) LOG_FMT(1, 2);

#ifdef __cplusplus
}
#endif
#endif
