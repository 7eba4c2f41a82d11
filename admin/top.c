/* SPDX-License-Identifier: ISC */
/* top.c: derpctl top's rates and frame, from show clients replies. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "top.h"
#include "util.h"

static double
num(const cJSON *o, const char *name)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsNumber(v) && v->valuedouble > 0 ? v->valuedouble : 0;
}

static const char *
str(const cJSON *o, const char *name)
{
	const cJSON	*v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : "-";
}

/* The entry of prev that is the same connection as c, or NULL. */
static const cJSON *
same_conn(const cJSON *prev, const cJSON *c)
{
	const cJSON	*p;

	cJSON_ArrayForEach(p, prev) {
		if (strcmp(str(p, "key"), str(c, "key")) == 0 &&
		    strcmp(str(p, "addr"), str(c, "addr")) == 0 &&
		    num(p, "connected_since") == num(c, "connected_since"))
			return p;
	}
	return NULL;
}

/* Counter growth per second; a counter that went back counts from 0. */
static double
rate(const cJSON *p, const cJSON *c, const char *name, double secs)
{
	double	 was = p != NULL ? num(p, name) : 0, now = num(c, name);

	if (now < was)
		was = 0;
	return (now - was) / secs;
}

static int
row_cmp(const void *a, const void *b)
{
	const struct top_row	*x = a, *y = b;
	double			 bx = x->tr_bps_in + x->tr_bps_out;
	double			 by = y->tr_bps_in + y->tr_bps_out;
	double			 px = x->tr_pps_in + x->tr_pps_out;
	double			 py = y->tr_pps_in + y->tr_pps_out;

	if (bx != by)
		return bx > by ? -1 : 1;
	if (px != py)
		return px > py ? -1 : 1;
	if (x->tr_dps != y->tr_dps)
		return x->tr_dps > y->tr_dps ? -1 : 1;
	if (x->tr_drops != y->tr_drops)
		return x->tr_drops > y->tr_drops ? -1 : 1;
	return strcmp(x->tr_key, y->tr_key);
}

size_t
top_rate(const cJSON *prev, const cJSON *cur, double secs,
    struct top_row *rows, size_t max, size_t *total)
{
	const cJSON	*c, *p;
	struct top_row	*all, *r;
	size_t		 n = 0, cap;

	cap = (size_t)cJSON_GetArraySize(cur);
	if (total != NULL)
		*total = cap;
	if (cap == 0 || (all = calloc(cap, sizeof(*all))) == NULL)
		return 0;
	cJSON_ArrayForEach(c, cur) {
		if (n == cap)
			break;
		r = &all[n++];
		util_strlcpy(r->tr_key, str(c, "key"), sizeof(r->tr_key));
		util_strlcpy(r->tr_addr, str(c, "addr"), sizeof(r->tr_addr));
		r->tr_drops = (uint64_t)num(c, "drops");
		if (prev == NULL || secs <= 0)
			continue;
		p = same_conn(prev, c);
		r->tr_rated = 1;
		r->tr_pps_in = rate(p, c, "packets_in", secs);
		r->tr_pps_out = rate(p, c, "packets_out", secs);
		r->tr_bps_in = rate(p, c, "bytes_in", secs);
		r->tr_bps_out = rate(p, c, "bytes_out", secs);
		r->tr_dps = rate(p, c, "drops", secs);
	}
	qsort(all, n, sizeof(*all), row_cmp);
	if (n > max)
		n = max;
	memcpy(rows, all, n * sizeof(*rows));
	free(all);
	return n;
}

/* A rate with binary units, as show clients shows bytes: 512, 1.5K. */
static const char *
fmt_rate(const struct top_row *r, double v, char *buf, size_t len)
{
	static const char	 units[] = "KMGTP";
	int			 u = -1;

	if (!r->tr_rated)
		return "-";
	if (v < 1024) {
		snprintf(buf, len, v < 10 && v != (double)(uint64_t)v ?
		    "%.1f" : "%.0f", v);
		return buf;
	}
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, v < 10 ? "%.1f%c" : "%.0f%c", v, units[u]);
	return buf;
}

/* Print one line of the frame, cut at the width. */
static void
line(FILE *f, const struct top_frame *tf, const char *s)
{
	int	 n = (int)strlen(s);

	if (tf->tf_width > 0 && n > tf->tf_width)
		n = tf->tf_width;
	fprintf(f, "%.*s%s\n", n, s, tf->tf_ansi ? "\033[K" : "");
}

#define TOP_COLS	"%-16s %-22s %9s %10s %10s %11s %8s %8s"

void
top_render(FILE *f, const struct top_frame *tf, const struct top_row *rows,
    size_t n)
{
	struct top_row	 sum;
	struct tm	 tm;
	char		 l[256], key[17], when[16], b[7][16];
	size_t		 i, show = n;

	memset(&sum, 0, sizeof(sum));
	for (i = 0; i < n; i++) {
		sum.tr_rated |= rows[i].tr_rated;
		sum.tr_pps_in += rows[i].tr_pps_in;
		sum.tr_pps_out += rows[i].tr_pps_out;
		sum.tr_bps_in += rows[i].tr_bps_in;
		sum.tr_bps_out += rows[i].tr_bps_out;
		sum.tr_dps += rows[i].tr_dps;
	}
	if (localtime_r(&tf->tf_time, &tm) == NULL ||
	    strftime(when, sizeof(when), "%H:%M:%S", &tm) == 0)
		snprintf(when, sizeof(when), "-");
	if (tf->tf_ansi)
		fputs("\033[H", f);
	snprintf(l, sizeof(l), "derpctl top - %s - %s - every %gs - q quits",
	    tf->tf_socket, when, tf->tf_interval_ms / 1000.0);
	line(f, tf, l);
	snprintf(l, sizeof(l), "clients %zu; per second: in %s pkts %s bytes, "
	    "out %s pkts %s bytes, %s drops", tf->tf_clients,
	    fmt_rate(&sum, sum.tr_pps_in, b[0], sizeof(b[0])),
	    fmt_rate(&sum, sum.tr_bps_in, b[1], sizeof(b[1])),
	    fmt_rate(&sum, sum.tr_pps_out, b[2], sizeof(b[2])),
	    fmt_rate(&sum, sum.tr_bps_out, b[3], sizeof(b[3])),
	    fmt_rate(&sum, sum.tr_dps, b[4], sizeof(b[4])));
	line(f, tf, l);
	line(f, tf, "");
	snprintf(l, sizeof(l), TOP_COLS, "KEY", "ADDR", "PKTS/S IN",
	    "PKTS/S OUT", "BYTES/S IN", "BYTES/S OUT", "DROPS/S", "DROPS");
	line(f, tf, l);
	if (tf->tf_height > 0)
		show = tf->tf_height > 5 ? (size_t)(tf->tf_height - 5) : 0;
	for (i = 0; i < n && i < show; i++) {
		const struct top_row *r = &rows[i];
		const char *k = r->tr_key;

		/* "nodekey:" and six digits, as show clients. */
		if (strncmp(k, "nodekey:", 8) == 0 && strlen(k) > 14)
			snprintf(key, sizeof(key), "%.14s", k);
		else
			util_strlcpy(key, k, sizeof(key));
		snprintf(l, sizeof(l), TOP_COLS "%s", key, r->tr_addr,
		    fmt_rate(r, r->tr_pps_in, b[0], sizeof(b[0])),
		    fmt_rate(r, r->tr_pps_out, b[1], sizeof(b[1])),
		    fmt_rate(r, r->tr_bps_in, b[2], sizeof(b[2])),
		    fmt_rate(r, r->tr_bps_out, b[3], sizeof(b[3])),
		    fmt_rate(r, r->tr_dps, b[4], sizeof(b[4])),
		    (snprintf(b[5], sizeof(b[5]), "%llu",
		    (unsigned long long)r->tr_drops), b[5]), "");
		line(f, tf, l);
	}
	if (i < n) {
		snprintf(l, sizeof(l), "(%zu more)", n - i);
		line(f, tf, l);
	}
	if (tf->tf_ansi)
		fputs("\033[J", f);
}
