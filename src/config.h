/* SPDX-License-Identifier: ISC */
/* config.h: derper-compatible command line (PROTOCOL.md 11). */
#ifndef DERPD_CONFIG_H
#define DERPD_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "derpd.h"

#ifdef __cplusplus
extern "C" {
#endif

enum config_result {
	CONFIG_OK,
	CONFIG_ERROR,		/* message in err, exit non-zero */
	CONFIG_HELP,		/* -h / -help: usage printed, exit 0 */
};

/* Set every default. */
void	config_defaults(struct derpd_conf *);
/*
 * Parse Go-style flags (-f, --f, -f=v, -f v, --bool=false). Unsupported
 * derper flags, unknown flags and bad values are errors naming the flag.
 */
enum config_result config_parse(struct derpd_conf *, int argc, char **argv,
	    char *err, size_t errlen);
/*
 * Apply --dev, default paths and cross-flag rules; decide TLS. 0, or -1
 * with a message naming the flag in err.
 */
int	config_finish(struct derpd_conf *, char *err, size_t errlen);
/* Print usage with every flag to f. */
void	config_usage(FILE *f);

#ifdef __cplusplus
}
#endif
#endif
