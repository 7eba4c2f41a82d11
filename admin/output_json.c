/* SPDX-License-Identifier: ISC */
/* output_json.c: derpctl -j, the daemon's JSON passed through unchanged. */
#include <stdio.h>
#include <string.h>

#include "output.h"

/*
 * The line was already parsed by cJSON, so these skippers only need to
 * find boundaries; they stop at the end of the buffer on bad input.
 */
static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' ||
	    *p == '\n'))
		p++;
	return p;
}

/* p at the opening quote; returns the position after the closing one. */
static const char *
skip_string(const char *p, const char *end)
{
	for (p++; p < end; p++) {
		if (*p == '\\')
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return end;
}

static const char *
skip_value(const char *p, const char *end)
{
	int	 depth = 0;

	if (p < end && *p == '"')
		return skip_string(p, end);
	if (p < end && *p != '{' && *p != '[') {
		while (p < end && strchr(",}] \t\r\n", *p) == NULL)
			p++;
		return p;
	}
	while (p < end) {
		if (*p == '"') {
			p = skip_string(p, end);
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if ((*p == '}' || *p == ']') && --depth == 0)
			return p + 1;
		p++;
	}
	return end;
}

/*
 * The raw text of the top-level member name (an unescaped key) of the
 * object in line: 0 with *val and *vallen, or -1 if there is none.
 */
static int
json_member_raw(const char *line, size_t len, const char *name,
    const char **val, size_t *vallen)
{
	const char	*p = line, *end = line + len, *key, *v;
	size_t		 nlen = strlen(name);

	p = skip_ws(p, end);
	if (p == end || *p++ != '{')
		return -1;
	for (;;) {
		p = skip_ws(p, end);
		if (p == end || *p != '"')
			return -1;
		key = p + 1;
		p = skip_string(p, end);
		if (p == end)
			return -1;
		/* p - 1 is the closing quote. */
		if ((size_t)(p - 1 - key) == nlen &&
		    memcmp(key, name, nlen) == 0)
			key = NULL;
		p = skip_ws(p, end);
		if (p == end || *p++ != ':')
			return -1;
		v = skip_ws(p, end);
		p = skip_value(v, end);
		if (key == NULL) {
			*val = v;
			*vallen = (size_t)(p - v);
			return 0;
		}
		p = skip_ws(p, end);
		if (p == end || *p++ != ',')
			return -1;
	}
}

/* Print "result" exactly as derpd wrote it, on one line. */
static void
json_result(const struct reply *r)
{
	const char	*v;
	size_t		 len;

	if (json_member_raw(r->r_line, r->r_linelen, "result", &v, &len) ==
	    -1) {
		v = "{}";
		len = 2;
	}
	fwrite(v, 1, len, stdout);
	putchar('\n');
}

/* For monitor, only events are printed: every line is one event. */
static void
json_monitor(const struct reply *r)
{
	(void)r;
}

static void
json_event(const struct reply *r)
{
	fwrite(r->r_line, 1, r->r_linelen, stdout);
	putchar('\n');
}

const struct output json_output = {
	.clients = json_result,
	.client = json_result,
	.rejects = json_result,
	.stats = json_result,
	.admission = json_result,
	.mesh = json_result,
	.certs = json_result,
	.kick = json_result,
	.reload = json_result,
	.log = json_result,
	.monitor = json_monitor,
	.event = json_event,
};
