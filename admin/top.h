/* SPDX-License-Identifier: ISC */
/*
 * top.h: derpctl top, a live view of the busiest clients. The rates come
 * from two "show clients" replies; this part is pure (no I/O but the FILE
 * it renders to), and derpctl.c runs the loop and the terminal.
 */
#ifndef DERPCTL_TOP_H
#define DERPCTL_TOP_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

/* One connection in a frame: its rates over the last interval. */
struct top_row {
	char		 tr_key[80];	/* "nodekey:<64 hex>" */
	char		 tr_addr[64];
	int		 tr_rated;	/* 0: no earlier sample, rates unknown */
	double		 tr_pps_in, tr_pps_out;	/* packets per second */
	double		 tr_bps_in, tr_bps_out;	/* bytes per second */
	double		 tr_dps;		/* drops per second */
	uint64_t	 tr_drops;		/* drops since it connected */
};

/*
 * The rows of cur (the "clients" array of a show clients result), rated
 * against prev (the previous one, or NULL), secs apart, busiest first:
 * bytes per second in and out, then packets per second, then drops per
 * second, then the key. A connection is the same one when key, address
 * and connected_since match; one that is new since prev is rated on its
 * counters over secs. Returns the number of rows, at most max; *total
 * (may be NULL) gets the number of connections in cur.
 */
size_t	top_rate(const struct cJSON *prev, const struct cJSON *cur,
	    double secs, struct top_row *rows, size_t max, size_t *total);

struct top_frame {
	const char	*tf_socket;	/* shown in the header */
	time_t		 tf_time;
	int		 tf_interval_ms;
	size_t		 tf_clients;	/* connections in the sample */
	int		 tf_ansi;	/* cursor home, clear to end of line */
	int		 tf_width;	/* columns; 0: no limit */
	int		 tf_height;	/* lines; 0: no limit */
};

/*
 * Write one frame to f: a header with the totals, the column names, then
 * rows (at most what tf_height leaves room for), each line cut at
 * tf_width. With tf_ansi it starts at the top left and clears what the
 * last frame left behind.
 */
void	top_render(FILE *f, const struct top_frame *tf,
	    const struct top_row *rows, size_t n);

#ifdef __cplusplus
}
#endif
#endif
