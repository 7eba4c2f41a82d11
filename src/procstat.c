/* SPDX-License-Identifier: ISC */
/* procstat.c: process_* figures from /proc (see procstat.h). */
#include <sys/resource.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "procstat.h"

/* Parse an unsigned decimal at *p (after blanks); advances *p. */
static int
parse_u64(const char **p, const char *end, uint64_t *v)
{
	const char	*s = *p;
	uint64_t	 n = 0;

	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	if (s == end || *s < '0' || *s > '9')
		return -1;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		if (n > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*v = n;
	return 0;
}

/* Skip one blank-separated field (after blanks); -1 at the end. */
static int
skip_field(const char **p, const char *end)
{
	const char *s = *p;

	while (s < end && *s == ' ')
		s++;
	if (s == end)
		return -1;
	while (s < end && *s != ' ' && *s != '\n')
		s++;
	*p = s;
	return 0;
}

int
procstat_parse_stat(const char *buf, size_t len, struct procstat_stat *out)
{
	const char	*end = buf + len, *p = NULL;
	uint64_t	 v;

	/* The command name is in parentheses and may hold anything. */
	for (const char *s = buf; s < end; s++)
		if (*s == ')')
			p = s + 1;
	if (p == NULL)
		return -1;
	memset(out, 0, sizeof(*out));
	/* p is after field 2; fields 3 (state) to 24 (rss) follow. */
	for (int f = 3; f <= 24; f++) {
		uint64_t *dst = f == 14 ? &out->ps_utime :
		    f == 15 ? &out->ps_stime : f == 22 ? &out->ps_starttime :
		    f == 23 ? &out->ps_vsize : f == 24 ? &out->ps_rss : NULL;

		if (dst == NULL) {
			if (skip_field(&p, end) == -1)
				return -1;
		} else if (parse_u64(&p, end, &v) == -1)
			return -1;
		else
			*dst = v;
	}
	return 0;
}

int
procstat_parse_btime(const char *buf, size_t len, int64_t *btime)
{
	const char	*end = buf + len;
	uint64_t	 v;

	for (const char *s = buf; s < end; ) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *le = nl != NULL ? nl : end;

		if (le - s > 6 && memcmp(s, "btime ", 6) == 0) {
			const char *p = s + 6;
			if (parse_u64(&p, le, &v) == -1 || v > INT64_MAX)
				return -1;
			*btime = (int64_t)v;
			return 0;
		}
		s = le + 1;
	}
	return -1;
}

int
procstat_parse_netdev(const char *buf, size_t len, uint64_t *rx,
    uint64_t *tx)
{
	const char	*end = buf + len;
	uint64_t	 r = 0, t = 0, v;
	int		 line = 0;

	for (const char *s = buf; s < end; line++) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		const char *le = nl != NULL ? nl : end;
		const char *colon = memchr(s, ':', (size_t)(le - s));

		/* Two header lines, then "name: rx_bytes ... tx_bytes ...". */
		if (line >= 2 && le > s) {
			const char *p;

			if (colon == NULL)
				return -1;
			p = colon + 1;
			if (parse_u64(&p, le, &v) == -1)
				return -1;
			r += v;
			/* rx: bytes packets errs drop fifo frame compressed multicast */
			for (int i = 0; i < 7; i++)
				if (skip_field(&p, le) == -1)
					return -1;
			if (parse_u64(&p, le, &v) == -1)
				return -1;
			t += v;
		}
		s = le + 1;
	}
	if (line < 2)
		return -1;
	*rx = r;
	*tx = t;
	return 0;
}

/* Read a small /proc file into buf (NUL-terminated); its length or -1. */
static ssize_t
read_small(const char *path, char *buf, size_t size)
{
	ssize_t	 n, got = 0;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	while ((size_t)got < size - 1) {
		n = read(fd, buf + got, size - 1 - (size_t)got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	close(fd);
	buf[got] = '\0';
	return got;
}

/*
 * Open descriptors: since Linux 6.2 the size of /proc/self/fd is their
 * number (no walk); before, they are counted, which takes time in
 * proportion to their number (as derper and Prometheus's client do).
 */
static int64_t
open_fds(void)
{
	struct stat	 st;
	struct dirent	*de;
	DIR		*d;
	int64_t		 n = 0;

	if (stat("/proc/self/fd", &st) == 0 && st.st_size > 0)
		return (int64_t)st.st_size;
	if ((d = opendir("/proc/self/fd")) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1;	/* the directory's own descriptor */
}

#define NETDEV_MAX	(256 * 1024)

static int64_t	boot_time = -1;
static pthread_once_t boot_once = PTHREAD_ONCE_INIT;

/* /proc/stat is long on big machines, and btime never changes: once. */
static void
read_boot_time(void)
{
	char	*buf;
	ssize_t	 n;

	if ((buf = malloc(1 << 20)) == NULL)
		return;
	if ((n = read_small("/proc/stat", buf, 1 << 20)) > 0 &&
	    procstat_parse_btime(buf, (size_t)n, &boot_time) == -1)
		boot_time = -1;
	free(buf);
}

void
procstat_read(struct procstat *out)
{
	struct procstat_stat	 ps;
	struct rlimit		 rl;
	char			 buf[4096], *big;
	ssize_t			 n;
	long			 tck = sysconf(_SC_CLK_TCK);
	long			 page = sysconf(_SC_PAGESIZE);
	uint64_t		 rx, tx;

	pthread_once(&boot_once, read_boot_time);
	out->pr_boot_time = boot_time;
	out->pr_cpu_seconds = -1;
	out->pr_start_time = -1;
	out->pr_resident_bytes = out->pr_virtual_bytes = -1;
	if (tck > 0 && (n = read_small("/proc/self/stat", buf,
	    sizeof(buf))) > 0 && procstat_parse_stat(buf, (size_t)n, &ps) == 0) {
		out->pr_cpu_seconds = (double)(ps.ps_utime + ps.ps_stime) /
		    (double)tck;
		if (boot_time >= 0)
			out->pr_start_time = (double)boot_time +
			    (double)ps.ps_starttime / (double)tck;
		out->pr_virtual_bytes = (int64_t)ps.ps_vsize;
		out->pr_resident_bytes = (int64_t)ps.ps_rss * (int64_t)page;
	}
	out->pr_open_fds = open_fds();
	out->pr_max_fds = -1;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		out->pr_max_fds = rl.rlim_cur == RLIM_INFINITY ? INT64_MAX :
		    (int64_t)rl.rlim_cur;
	out->pr_max_virtual_bytes = -1;
	if (getrlimit(RLIMIT_AS, &rl) == 0)
		out->pr_max_virtual_bytes = rl.rlim_cur == RLIM_INFINITY ?
		    18446744073709551616.0 : (double)rl.rlim_cur;
	out->pr_net_rx_bytes = out->pr_net_tx_bytes = -1;
	if ((big = malloc(NETDEV_MAX)) == NULL)
		return;
	/* A longer file (thousands of interfaces) is left out, not cut. */
	if ((n = read_small("/proc/self/net/dev", big, NETDEV_MAX)) > 0 &&
	    (size_t)n < NETDEV_MAX - 1 &&
	    procstat_parse_netdev(big, (size_t)n, &rx, &tx) == 0) {
		out->pr_net_rx_bytes = (int64_t)rx;
		out->pr_net_tx_bytes = (int64_t)tx;
	}
	free(big);
}
