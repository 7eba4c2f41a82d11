/* SPDX-License-Identifier: ISC */
/* output_text.c: derpctl's human output, aligned tables and name value. */
#include <err.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "output.h"
#include "util.h"

#define TABLE_MAXCOLS	16
#define CELL_MAX	128

/* A column right-aligns when its spec starts with '>'. */
struct table {
	size_t		 t_ncols;
	const char	*t_head[TABLE_MAXCOLS];	/* NULL: no header row */
	int		 t_right[TABLE_MAXCOLS];
	char		**t_cells;		/* t_nrows * t_ncols */
	size_t		 t_nrows;
	size_t		 t_cap;			/* rows */
};

static void
table_init(struct table *t, size_t ncols, const char *const spec[])
{
	size_t	 i;

	memset(t, 0, sizeof(*t));
	if (ncols > TABLE_MAXCOLS)
		errx(1, "%s: too many columns", __func__);
	t->t_ncols = ncols;
	for (i = 0; i < ncols; i++) {
		if (spec == NULL)
			continue;
		t->t_right[i] = spec[i][0] == '>';
		t->t_head[i] = spec[i] + t->t_right[i];
	}
}

/* Append a row of t_ncols cells; each is copied. */
static void
table_row(struct table *t, const char *const cell[])
{
	size_t	 i;
	char	**cells;

	if (t->t_nrows == t->t_cap) {
		t->t_cap = t->t_cap ? 2 * t->t_cap : 16;
		cells = reallocarray(t->t_cells, t->t_cap * t->t_ncols,
		    sizeof(*cells));
		if (cells == NULL)
			err(1, NULL);
		t->t_cells = cells;
	}
	for (i = 0; i < t->t_ncols; i++)
		if ((t->t_cells[t->t_nrows * t->t_ncols + i] =
		    strdup(cell[i] != NULL ? cell[i] : "-")) == NULL)
			err(1, NULL);
	t->t_nrows++;
}

/* Terminal columns of UTF-8 text (every code point counts one). */
static size_t
text_width(const char *s)
{
	size_t	 w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static void
table_cell(const char *s, size_t width, int right, int last)
{
	size_t	 w = text_width(s);

	if (right)
		printf("%*s%s", (int)(width - w), "", s);
	else if (last)
		fputs(s, stdout);
	else
		printf("%s%*s", s, (int)(width - w), "");
}

static void
table_print(struct table *t)
{
	size_t	 width[TABLE_MAXCOLS], i, r, w;
	int	 head = t->t_head[0] != NULL;

	for (i = 0; i < t->t_ncols; i++) {
		width[i] = head ? text_width(t->t_head[i]) : 0;
		for (r = 0; r < t->t_nrows; r++) {
			w = text_width(t->t_cells[r * t->t_ncols + i]);
			if (w > width[i])
				width[i] = w;
		}
	}
	for (r = 0; r < t->t_nrows + head; r++) {
		for (i = 0; i < t->t_ncols; i++) {
			if (i > 0)
				fputs("  ", stdout);
			table_cell(head && r == 0 ? t->t_head[i] :
			    t->t_cells[(r - head) * t->t_ncols + i],
			    width[i], t->t_right[i], i + 1 == t->t_ncols);
		}
		putchar('\n');
	}
}

static void
table_cleanup(struct table *t)
{
	size_t	 i;

	for (i = 0; i < t->t_nrows * t->t_ncols; i++)
		free(t->t_cells[i]);
	free(t->t_cells);
	memset(t, 0, sizeof(*t));
}

static const cJSON *
member(const cJSON *o, const char *name)
{
	return cJSON_GetObjectItemCaseSensitive(o, name);
}

/* A non-negative integer member; 0, or -1 when absent or not a number. */
static int
get_u64(const cJSON *o, const char *name, uint64_t *v)
{
	const cJSON	*n = member(o, name);

	if (!cJSON_IsNumber(n) || n->valuedouble < 0)
		return -1;
	*v = n->valuedouble >= 18446744073709551615.0 ? UINT64_MAX :
	    (uint64_t)n->valuedouble;
	return 0;
}

static const char *
get_str(const cJSON *o, const char *name)
{
	const cJSON	*s = member(o, name);

	return cJSON_IsString(s) ? s->valuestring : NULL;
}

static const char *
fmt_u64(const cJSON *o, const char *name, char *buf, size_t len)
{
	uint64_t	 v;

	if (get_u64(o, name, &v) == -1)
		return "-";
	snprintf(buf, len, "%" PRIu64, v);
	return buf;
}

static const char *
fmt_bool(const cJSON *o, const char *name)
{
	const cJSON	*b = member(o, name);

	if (!cJSON_IsBool(b))
		return "-";
	return cJSON_IsTrue(b) ? "yes" : "no";
}

/* 1023, 1.5K, 12K, 3.4M: binary units, for the BYTES columns. */
static const char *
fmt_bytes(const cJSON *o, const char *name, char *buf, size_t len)
{
	static const char	 units[] = "KMGTPE";
	uint64_t		 v;
	double			 d;
	size_t			 u = 0;

	if (get_u64(o, name, &v) == -1)
		return "-";
	if (v < 1024) {
		snprintf(buf, len, "%" PRIu64, v);
		return buf;
	}
	for (d = (double)v / 1024; d >= 1024 && u + 1 < sizeof(units) - 1;
	    u++)
		d /= 1024;
	if (d < 9.95)
		snprintf(buf, len, "%.1f%c", d, units[u]);
	else
		snprintf(buf, len, "%.0f%c", d, units[u]);
	return buf;
}

/* An age as bgpctl shows a timeframe: 42s, 5m12s, 3h05m, 2d03h. */
static void
fmt_age(int64_t secs, char *buf, size_t len)
{
	if (secs < 0)
		secs = 0;
	if (secs < 60)
		snprintf(buf, len, "%llds", (long long)secs);
	else if (secs < 3600)
		snprintf(buf, len, "%lldm%02llds", (long long)(secs / 60),
		    (long long)(secs % 60));
	else if (secs < 86400)
		snprintf(buf, len, "%lldh%02lldm", (long long)(secs / 3600),
		    (long long)(secs % 3600 / 60));
	else
		snprintf(buf, len, "%lldd%02lldh", (long long)(secs / 86400),
		    (long long)(secs % 86400 / 3600));
}

/* The age of a unix-seconds member at the reply's arrival. */
static const char *
fmt_since(const struct reply *r, const cJSON *o, const char *name,
    char *buf, size_t len)
{
	uint64_t	 t;

	if (get_u64(o, name, &t) == -1 || t > INT64_MAX)
		return "-";
	fmt_age((int64_t)r->r_time - (int64_t)t, buf, len);
	return buf;
}

static void
fmt_localtime(time_t t, char *buf, size_t len)
{
	struct tm	 tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "%lld", (long long)t);
}

/* "nodekey:abcdef…": enough to tell keys apart in a table. */
static const char *
fmt_key_short(const char *key, char *buf, size_t len)
{
	size_t	 plen = strlen(NODEKEY_PREFIX);

	if (key == NULL)
		return "-";
	if (strncmp(key, NODEKEY_PREFIX, plen) != 0 ||
	    strlen(key) <= plen + 6)
		return key;
	snprintf(buf, len, "%.*s\xe2\x80\xa6", (int)(plen + 6), key);
	return buf;
}

/* m mesh, p prober, d duplicate; a dash for each flag not set. */
static const char *
fmt_flags(const cJSON *c, char *buf)
{
	buf[0] = cJSON_IsTrue(member(c, "mesh")) ? 'm' : '-';
	buf[1] = cJSON_IsTrue(member(c, "prober")) ? 'p' : '-';
	buf[2] = cJSON_IsTrue(member(c, "duplicate")) ? 'd' : '-';
	buf[3] = '\0';
	return buf;
}

static const char *
fmt_admitted(const cJSON *c, char *buf, size_t len)
{
	const char	*by = get_str(c, "admitted_by");

	if (by == NULL)
		return "-";
	if (cJSON_IsTrue(member(c, "admit_cached")) &&
	    strcmp(by, "cache") != 0)
		snprintf(buf, len, "%s (cached)", by);
	else
		snprintf(buf, len, "%s", by);
	return buf;
}

static const cJSON *
body_array(const struct reply *r, const char *name)
{
	const cJSON	*a = member(r->r_body, name);

	return cJSON_IsArray(a) ? a : NULL;
}

static void
text_clients(const struct reply *r)
{
	static const char *const spec[] = { "KEY", "ADDR", ">W", "SINCE",
	    "HOME", "FLAGS", ">PKTS IN", ">PKTS OUT", ">BYTES IN",
	    ">BYTES OUT", ">DROPS", "ADMITTED" };
	char		 b[12][CELL_MAX];
	const char	*cell[12];
	const cJSON	*c;
	struct table	 t;

	table_init(&t, 12, spec);
	cJSON_ArrayForEach(c, body_array(r, "clients")) {
		cell[0] = fmt_key_short(get_str(c, "key"), b[0], CELL_MAX);
		cell[1] = get_str(c, "addr");
		cell[2] = fmt_u64(c, "worker", b[2], CELL_MAX);
		cell[3] = fmt_since(r, c, "connected_since", b[3], CELL_MAX);
		cell[4] = fmt_bool(c, "home");
		cell[5] = fmt_flags(c, b[5]);
		cell[6] = fmt_u64(c, "packets_in", b[6], CELL_MAX);
		cell[7] = fmt_u64(c, "packets_out", b[7], CELL_MAX);
		cell[8] = fmt_bytes(c, "bytes_in", b[8], CELL_MAX);
		cell[9] = fmt_bytes(c, "bytes_out", b[9], CELL_MAX);
		cell[10] = fmt_u64(c, "drops", b[10], CELL_MAX);
		cell[11] = fmt_admitted(c, b[11], CELL_MAX);
		table_row(&t, cell);
	}
	table_print(&t);
	table_cleanup(&t);
}

/* One block per connection of the key, every field, the full key. */
static void
text_client(const struct reply *r)
{
	char		 b[4][CELL_MAX], ts[64], age[32];
	const char	*cell[2];
	const cJSON	*c;
	struct table	 t;
	uint64_t	 since;
	int		 first = 1;

	cJSON_ArrayForEach(c, body_array(r, "clients")) {
		if (!first)
			putchar('\n');
		first = 0;
		printf("%s\n", get_str(c, "key") ? get_str(c, "key") : "-");
		table_init(&t, 2, NULL);
#define ROW(n, v)	do { cell[0] = "  " n; cell[1] = (v); \
			    table_row(&t, cell); } while (0)
		ROW("address", get_str(c, "addr"));
		ROW("worker", fmt_u64(c, "worker", b[0], CELL_MAX));
		if (get_u64(c, "connected_since", &since) == 0 &&
		    since <= INT64_MAX) {
			fmt_localtime((time_t)since, ts, sizeof(ts));
			fmt_age((int64_t)r->r_time - (int64_t)since, age,
			    sizeof(age));
			snprintf(b[2], CELL_MAX, "%s (%s ago)", ts, age);
			ROW("connected", b[2]);
		} else
			ROW("connected", "-");
		ROW("home", fmt_bool(c, "home"));
		ROW("mesh", fmt_bool(c, "mesh"));
		ROW("prober", fmt_bool(c, "prober"));
		ROW("duplicate", fmt_bool(c, "duplicate"));
		ROW("packets in", fmt_u64(c, "packets_in", b[0], CELL_MAX));
		ROW("bytes in", fmt_u64(c, "bytes_in", b[0], CELL_MAX));
		ROW("packets out", fmt_u64(c, "packets_out", b[0], CELL_MAX));
		ROW("bytes out", fmt_u64(c, "bytes_out", b[0], CELL_MAX));
		ROW("drops", fmt_u64(c, "drops", b[0], CELL_MAX));
		ROW("rate limited reads", fmt_u64(c, "rate_limited_reads", b[0],
		    CELL_MAX));
		ROW("rate limited ms", fmt_u64(c, "rate_limited_ms", b[0],
		    CELL_MAX));
		ROW("admitted by", fmt_admitted(c, b[3], CELL_MAX));
#undef ROW
		table_print(&t);
		table_cleanup(&t);
	}
}

static void
text_rejects(const struct reply *r)
{
	static const char *const spec[] = { "REASON", "SOURCE", ">COUNT",
	    ">FIRST", ">LAST", "LAST KEY" };
	static const char *const tspec[] = { "REASON", ">TOTAL" };
	char		 b[6][CELL_MAX];
	const char	*cell[6];
	const cJSON	*e, *totals;
	struct table	 t;
	uint64_t	 n;

	table_init(&t, 6, spec);
	cJSON_ArrayForEach(e, body_array(r, "rejects")) {
		cell[0] = get_str(e, "reason");
		cell[1] = get_str(e, "source");
		cell[2] = fmt_u64(e, "count", b[2], CELL_MAX);
		cell[3] = fmt_since(r, e, "first_seen", b[3], CELL_MAX);
		cell[4] = fmt_since(r, e, "last_seen", b[4], CELL_MAX);
		cell[5] = get_str(e, "last_key");
		table_row(&t, cell);
	}
	table_print(&t);
	table_cleanup(&t);

	/* Totals since start, by reason; derpd lists zeros too, we don't. */
	totals = member(r->r_body, "totals");
	table_init(&t, 2, tspec);
	cJSON_ArrayForEach(e, totals) {
		if (get_u64(totals, e->string, &n) == 0 && n == 0)
			continue;
		cell[0] = e->string;
		cell[1] = fmt_u64(totals, e->string, b[0], CELL_MAX);
		table_row(&t, cell);
	}
	if (t.t_nrows > 0) {
		putchar('\n');
		table_print(&t);
	}
	table_cleanup(&t);
}

/* A scalar or an array of scalars as text ("yes", "12", "a, b"). */
static const char *
fmt_value(const cJSON *v, char *buf, size_t len)
{
	const cJSON	*e;
	char		 one[64];
	size_t		 used = 0;

	if (cJSON_IsBool(v))
		return cJSON_IsTrue(v) ? "yes" : "no";
	if (cJSON_IsString(v))
		return v->valuestring;
	if (cJSON_IsNumber(v)) {
		if (v->valuedouble >= 0 && v->valuedouble < 1.8e19 &&
		    v->valuedouble == (double)(uint64_t)v->valuedouble)
			snprintf(buf, len, "%" PRIu64,
			    (uint64_t)v->valuedouble);
		else
			snprintf(buf, len, "%g", v->valuedouble);
		return buf;
	}
	if (cJSON_IsArray(v)) {
		if (v->child == NULL)
			return "none";
		buf[0] = '\0';
		cJSON_ArrayForEach(e, v) {
			if (used >= len)
				break;
			used += (size_t)snprintf(buf + used, len - used,
			    "%s%s", used > 0 ? ", " : "",
			    fmt_value(e, one, sizeof(one)));
		}
		return buf;
	}
	return "-";
}

/* Every scalar member of o as "<prefix><name> value". */
static void
kv_rows(struct table *t, const cJSON *o, const char *prefix)
{
	const cJSON	*m, *k;
	char		 name[CELL_MAX], val[CELL_MAX], sub[CELL_MAX];
	const char	*cell[2];

	cJSON_ArrayForEach(m, o) {
		if (cJSON_IsObject(m)) {
			snprintf(sub, sizeof(sub), "%s%s.", prefix, m->string);
			cJSON_ArrayForEach(k, m) {
				snprintf(name, sizeof(name), "%s%s", sub,
				    k->string);
				cell[0] = name;
				cell[1] = fmt_value(k, val, sizeof(val));
				table_row(t, cell);
			}
			continue;
		}
		snprintf(name, sizeof(name), "%s%s", prefix, m->string);
		cell[0] = name;
		cell[1] = fmt_value(m, val, sizeof(val));
		table_row(t, cell);
	}
}

/* Flat "name value" lines: stats, drops.<reason>.<kind>, closes.<reason>. */
static void
text_stats(const struct reply *r)
{
	static const char *const spec[] = { "", ">" };
	struct table	 t;

	table_init(&t, 2, spec);
	t.t_head[0] = NULL;
	kv_rows(&t, member(r->r_body, "stats"), "");
	kv_rows(&t, member(r->r_body, "drops"), "drops.");
	kv_rows(&t, member(r->r_body, "closes"), "closes.");
	table_print(&t);
	table_cleanup(&t);
}

static void	policy_rules(const struct reply *, const cJSON *);

static void
text_admission(const struct reply *r)
{
	struct table	 t;

	table_init(&t, 2, NULL);
	kv_rows(&t, member(r->r_body, "admission"), "");
	table_print(&t);
	table_cleanup(&t);
	policy_rules(r, member(r->r_body, "policy"));
}

/* With a policy: one line per rule, with its matches and last match. */
static void
policy_rules(const struct reply *r, const cJSON *pol)
{
	static const char *const spec[] = { "RULE", "ACTION", ">MATCHES",
	    "LAST MATCH" };
	char		 b[4][CELL_MAX];
	const char	*cell[4];
	const cJSON	*m;
	struct table	 t;
	uint64_t	 last;

	if (!cJSON_IsObject(pol))
		return;
	printf("\npolicy %s\n", get_str(pol, "file") != NULL ?
	    get_str(pol, "file") : "-");
	table_init(&t, 4, spec);
	cJSON_ArrayForEach(m, member(pol, "rules")) {
		cell[0] = get_str(m, "rule");
		cell[1] = get_str(m, "action");
		cell[2] = fmt_u64(m, "matches", b[2], CELL_MAX);
		cell[3] = get_u64(m, "last_match", &last) == 0 && last > 0 ?
		    fmt_since(r, m, "last_match", b[3], CELL_MAX) : "-";
		table_row(&t, cell);
	}
	table_print(&t);
	table_cleanup(&t);
}

/* test-policy: the verdict, why, and what tailscaled said. */
static void
text_test_policy(const struct reply *r)
{
	const cJSON	*m, *id = member(r->r_body, "identity");
	struct table	 t;

	printf("%s %s: %s", get_str(r->r_body, "key") ? get_str(r->r_body,
	    "key") : "-", get_str(r->r_body, "verdict") ?
	    get_str(r->r_body, "verdict") : "-", get_str(r->r_body, "reason") ?
	    get_str(r->r_body, "reason") : "-");
	if (get_str(r->r_body, "rule") != NULL)
		printf(" (rule %s)", get_str(r->r_body, "rule"));
	printf("\n");
	cJSON_ArrayForEach(m, member(r->r_body, "rules"))
		printf("  rule %s (%s): %s\n", get_str(m, "rule") ?
		    get_str(m, "rule") : "-", get_str(m, "action") ?
		    get_str(m, "action") : "-", fmt_bool(m, "match"));
	if (!cJSON_IsObject(id))
		return;
	table_init(&t, 2, NULL);
	t.t_head[0] = NULL;
	kv_rows(&t, id, "");
	table_print(&t);
	table_cleanup(&t);
}

/* One line per mesh peer; IN is its current connection to us. */
static void
text_mesh(const struct reply *r)
{
	static const char *const spec[] = { "HOST", "STATE", "SINCE", "KEY",
	    ">ROUTES", ">PKTS OUT", ">BYTES OUT", ">PKTS IN", ">BYTES IN",
	    ">RECONNECTS", "LAST ERROR" };
	char		 b[11][CELL_MAX];
	const char	*cell[11], *e;
	const cJSON	*m;
	struct table	 t;

	table_init(&t, 11, spec);
	cJSON_ArrayForEach(m, body_array(r, "mesh")) {
		cell[0] = get_str(m, "host");
		cell[1] = get_str(m, "state");
		cell[2] = fmt_since(r, m, "since", b[2], CELL_MAX);
		cell[3] = fmt_key_short(get_str(m, "key"), b[3], CELL_MAX);
		cell[4] = fmt_u64(m, "routes", b[4], CELL_MAX);
		cell[5] = fmt_u64(m, "packets_out", b[5], CELL_MAX);
		cell[6] = fmt_bytes(m, "bytes_out", b[6], CELL_MAX);
		cell[7] = fmt_u64(m, "packets_in", b[7], CELL_MAX);
		cell[8] = fmt_bytes(m, "bytes_in", b[8], CELL_MAX);
		cell[9] = fmt_u64(m, "reconnects", b[9], CELL_MAX);
		e = get_str(m, "last_error");
		cell[10] = e != NULL && e[0] != '\0' ? e : "-";
		table_row(&t, cell);
	}
	table_print(&t);
	table_cleanup(&t);
}

/* A time as local time and how far from the reply, or "-". */
static const char *
fmt_when(const struct reply *r, const cJSON *o, const char *name, char *buf,
    size_t len)
{
	uint64_t	 v;
	char		 ts[64], age[32];
	int64_t		 d;

	if (get_u64(o, name, &v) == -1 || v == 0 || v > INT64_MAX)
		return "-";
	fmt_localtime((time_t)v, ts, sizeof(ts));
	ts[40] = '\0';		/* room for the age in a cell */
	d = (int64_t)v - (int64_t)r->r_time;
	fmt_age(d < 0 ? -d : d, age, sizeof(age));
	snprintf(buf, len, "%.40s (%.31s %.31s)", ts, d <= 0 ? age : "in", d <= 0 ?
	    "ago" : age);
	return buf;
}

/* One block per certificate: what is served, and for ACME its state. */
static void
text_certs(const struct reply *r)
{
	char		 b[CELL_MAX];
	const char	*cell[2], *e;
	const cJSON	*c, *a, *f, *x;
	struct table	 t;
	int		 first = 1;

	cJSON_ArrayForEach(c, body_array(r, "certs")) {
		if (!first)
			putchar('\n');
		first = 0;
		printf("%s\n", get_str(c, "name") ? get_str(c, "name") : "-");
		table_init(&t, 2, NULL);
#define ROW(n, v)	do { cell[0] = "  " n; cell[1] = (v); \
			    table_row(&t, cell); } while (0)
		ROW("mode", get_str(c, "mode"));
		if (cJSON_IsTrue(member(c, "present"))) {
			ROW("file", get_str(c, "source"));
			ROW("issuer", get_str(c, "issuer"));
			ROW("serial", get_str(c, "serial"));
			ROW("sha256", get_str(c, "sha256"));
			ROW("not before", fmt_when(r, c, "not_before", b,
			    sizeof(b)));
			ROW("not after", fmt_when(r, c, "not_after", b,
			    sizeof(b)));
		} else
			ROW("certificate", "none yet");
		if (cJSON_IsObject(a = member(c, "acme"))) {
			ROW("acme state", get_str(a, "state"));
			ROW("directory", get_str(a, "directory"));
			e = get_str(a, "challenge");
			ROW("challenge", e != NULL && e[0] ? e : "-");
			ROW("next renewal", fmt_when(r, a, "next_attempt", b,
			    sizeof(b)));
			ROW("last attempt", fmt_when(r, a, "last_attempt", b,
			    sizeof(b)));
			ROW("last success", fmt_when(r, a, "last_success", b,
			    sizeof(b)));
			ROW("orders", fmt_u64(a, "attempts", b, sizeof(b)));
			ROW("issued", fmt_u64(a, "issued", b, sizeof(b)));
			if (cJSON_IsObject(f = member(a, "failures")))
				cJSON_ArrayForEach(x, f) {
					char lab[64];
					snprintf(lab, sizeof(lab), "  failed: %s",
					    x->string);
					cell[0] = lab;
					cell[1] = fmt_value(x, b, sizeof(b));
					table_row(&t, cell);
				}
			e = get_str(a, "last_error");
			ROW("last error", e != NULL && e[0] ? e : "-");
		}
#undef ROW
		table_print(&t);
		table_cleanup(&t);
	}
}

static void
text_kick(const struct reply *r)
{
	uint64_t	 n;

	if (get_u64(r->r_body, "kicked", &n) == -1)
		printf("kicked\n");
	else
		printf("kicked %" PRIu64 " connection%s\n", n,
		    n == 1 ? "" : "s");
}

static void
text_reload(const struct reply *r)
{
	const cJSON	*changed = member(r->r_body, "changed");
	const cJSON	*unchanged = member(r->r_body, "unchanged");
	char		 buf[1024];

	if (cJSON_IsArray(changed) && changed->child != NULL)
		printf("reloaded: %s\n", fmt_value(changed, buf, sizeof(buf)));
	else
		printf("reloaded: nothing changed\n");
	if (cJSON_IsArray(unchanged) && unchanged->child != NULL)
		printf("unchanged: %s\n",
		    fmt_value(unchanged, buf, sizeof(buf)));
}

static void
text_log(const struct reply *r)
{
	const cJSON	*v = member(r->r_body, "verbose");

	if (cJSON_IsBool(v))
		printf("logging %s\n", cJSON_IsTrue(v) ? "verbose" : "brief");
}

static void
text_monitor(const struct reply *r)
{
	(void)r;
}

/* "2025-01-02 15:04:05 connect nodekey:… 198.51.100.7:41641 worker 0". */
static void
text_event(const struct reply *r)
{
	const cJSON	*d = r->r_body;
	const char	*ev = get_str(r->r_msg, "event");
	char		 ts[64], b[CELL_MAX], *raw;

	fmt_localtime(r->r_time, ts, sizeof(ts));
	if (ev == NULL)
		return;
	if (strcmp(ev, "client.connect") == 0 ||
	    strcmp(ev, "client.disconnect") == 0) {
		printf("%s %-10s %s %s worker %s", ts, ev + 7,
		    get_str(d, "key") ? get_str(d, "key") : "-",
		    get_str(d, "addr") ? get_str(d, "addr") : "-",
		    fmt_u64(d, "worker", b, sizeof(b)));
		if (get_str(d, "reason") != NULL)
			printf(" reason %s", get_str(d, "reason"));
		putchar('\n');
	} else if (strcmp(ev, "client.reject") == 0) {
		printf("%s %-10s %s %s reason %s\n", ts, "reject",
		    get_str(d, "key") ? get_str(d, "key") : "-",
		    get_str(d, "source") ? get_str(d, "source") : "-",
		    get_str(d, "reason") ? get_str(d, "reason") : "-");
	} else {
		/* A newer daemon's event: show it rather than hide it. */
		raw = d != NULL ? cJSON_PrintUnformatted(d) : NULL;
		printf("%s %s %s\n", ts, ev, raw != NULL ? raw : "");
		cJSON_free(raw);
	}
}

const struct output text_output = {
	.clients = text_clients,
	.client = text_client,
	.rejects = text_rejects,
	.stats = text_stats,
	.admission = text_admission,
	.mesh = text_mesh,
	.certs = text_certs,
	.kick = text_kick,
	.test_policy = text_test_policy,
	.reload = text_reload,
	.log = text_log,
	.monitor = text_monitor,
	.event = text_event,
};
