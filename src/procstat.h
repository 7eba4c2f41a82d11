/* SPDX-License-Identifier: ISC */
/*
 * procstat.h: the process's own resource figures for /debug/varz
 * (Prometheus's process_* names), read from /proc at scrape time. The
 * parsers are pure functions over the files' text.
 */
#ifndef DERPD_PROCSTAT_H
#define DERPD_PROCSTAT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The fields of /proc/self/stat that are used. */
struct procstat_stat {
	uint64_t	ps_utime;	/* clock ticks */
	uint64_t	ps_stime;	/* clock ticks */
	uint64_t	ps_starttime;	/* clock ticks after boot */
	uint64_t	ps_vsize;	/* bytes */
	uint64_t	ps_rss;		/* pages */
};

/* What one scrape reports; a field that could not be read is -1. */
struct procstat {
	double		pr_cpu_seconds;
	double		pr_start_time;		/* unix seconds */
	int64_t		pr_resident_bytes;
	int64_t		pr_virtual_bytes;
	int64_t		pr_open_fds;
	int64_t		pr_max_fds;
	double		pr_max_virtual_bytes;	/* RLIM_INFINITY: 2^64 */
	int64_t		pr_boot_time;		/* unix seconds */
	int64_t		pr_net_rx_bytes;	/* the network namespace's */
	int64_t		pr_net_tx_bytes;
};

/* Parse /proc/<pid>/stat text. 0, or -1 when malformed. */
int	procstat_parse_stat(const char *buf, size_t len,
	    struct procstat_stat *out);
/* The btime line of /proc/stat. 0, or -1 when absent. */
int	procstat_parse_btime(const char *buf, size_t len, int64_t *btime);
/*
 * Sum the receive and transmit bytes of every interface in
 * /proc/<pid>/net/dev text. 0, or -1 when malformed.
 */
int	procstat_parse_netdev(const char *buf, size_t len, uint64_t *rx,
	    uint64_t *tx);
/*
 * Read the figures of this process (any thread; a few small reads from
 * /proc, no directory walk on Linux 6.2 and later).
 */
void	procstat_read(struct procstat *out);

#ifdef __cplusplus
}
#endif
#endif
