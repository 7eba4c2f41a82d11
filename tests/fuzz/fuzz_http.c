/* SPDX-License-Identifier: ISC */
/* fuzz_http.c: request-head framing (incremental and one-shot) and parsing. */
#include <string.h>

#include "fuzz.h"
#include "http.h"

#define HTTP_MAX_CUTS	16

/* FNV-1a: the input picks its own split points, so replays repeat them. */
static uint64_t
hash_input(const uint8_t *data, size_t size)
{
	uint64_t h = 14695981039346656037ull;

	for (size_t i = 0; i < size; i++)
		h = (h ^ data[i]) * 1099511628211ull;
	return h;
}

static uint64_t
next_rand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Offset one past the first CRLFCRLF within buf[0..lim), or 0. */
static size_t
first_end(const uint8_t *buf, size_t lim)
{
	for (size_t i = 0; i + 4 <= lim; i++)
		if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	return 0;
}

/*
 * Feed the input as it arrives in pieces: each call sees a fresh
 * exact-size copy of the prefix (the evbuffer may move, and ASan then
 * catches a read past what has arrived), with *scan carried over.
 */
static enum http_status
scan_in_pieces(const uint8_t *data, size_t size, size_t *head_len)
{
	uint64_t		 seed = hash_input(data, size) | 1;
	size_t			 scan = 0, len = 0, step;
	enum http_status	 st = HTTP_NEED_MORE;
	char			*copy;

	for (int cuts = 0; ; cuts++) {
		if (cuts >= HTTP_MAX_CUTS || size - len <= 1)
			len = size;
		else {
			step = 1 + next_rand(&seed) % (size - len);
			/* Small steps too, as a slowloris sends. */
			if (next_rand(&seed) & 1)
				step = 1 + step % 8;
			len += step < size - len ? step : size - len;
		}
		copy = fuzz_strdup(data, len);
		st = http_head_end(copy, len, &scan, head_len);
		free(copy);
		FUZZ_ASSERT(st == HTTP_OK || st == HTTP_NEED_MORE ||
		    st == HTTP_TOO_LARGE);
		if (st != HTTP_NEED_MORE || len == size)
			return st;
		FUZZ_ASSERT(scan <= len);
	}
}

#define NUL_IN(f)	(memchr((f), '\0', sizeof(f)) != NULL)

static void
check_parse(const char *buf, size_t head_len)
{
	struct http_req	 req;
	size_t		 tl, pl, ql;

	if (http_parse_head(buf, head_len, &req) != HTTP_OK) {
		(void)http_challenge_ok(&req);
		return;
	}
	FUZZ_ASSERT(NUL_IN(req.hr_method) && NUL_IN(req.hr_path) &&
	    NUL_IN(req.hr_query) && NUL_IN(req.hr_target) &&
	    NUL_IN(req.hr_host) && NUL_IN(req.hr_upgrade) &&
	    NUL_IN(req.hr_fast_start) && NUL_IN(req.hr_ideal_node) &&
	    NUL_IN(req.hr_challenge) && NUL_IN(req.hr_ws_protocol));
	FUZZ_ASSERT(req.hr_minor == 0 || req.hr_minor == 1);
	FUZZ_ASSERT(req.hr_method[0] != '\0' && req.hr_target[0] != '\0');
	/* target is path, or path '?' query. */
	tl = strlen(req.hr_target);
	pl = strlen(req.hr_path);
	ql = strlen(req.hr_query);
	FUZZ_ASSERT(strncmp(req.hr_target, req.hr_path, pl) == 0);
	if (pl == tl)
		FUZZ_ASSERT(ql == 0);
	else {
		FUZZ_ASSERT(req.hr_target[pl] == '?');
		FUZZ_ASSERT(pl + 1 + ql == tl);
		FUZZ_ASSERT(strcmp(req.hr_target + pl + 1, req.hr_query) == 0);
	}
	FUZZ_ASSERT(req.hr_challenge_long ==
	    (strlen(req.hr_challenge) >= HTTP_VALUE_MAX));
	if (http_challenge_ok(&req))
		FUZZ_ASSERT(strlen(req.hr_challenge) <= 64);
	/* /bootstrap-dns?q=: a decoded value is no longer than the query. */
	{
		char	 v[HTTP_PATH_MAX], small[4];
		int	 rv = http_query_get(req.hr_query, "q", v, sizeof(v));

		FUZZ_ASSERT(rv == 0 || rv == 1);
		if (rv == 1)
			FUZZ_ASSERT(strlen(v) <= ql);
		rv = http_query_get(req.hr_query, "q", small, sizeof(small));
		FUZZ_ASSERT(rv >= -1 && rv <= 1);
		if (rv == 1)
			FUZZ_ASSERT(strlen(small) < sizeof(small));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t			 scan = 0, hl = 0, hl2 = 0, end;
	enum http_status	 st, st2;
	char			 out[512];
	size_t			 n;

	/* A mesh link's reading of a response's status line. */
	{
		int code = http_parse_status((const char *)data, size);
		if (code != -1 && (code < 100 || code > 999 || size < 12 ||
		    memcmp(data, "HTTP/1.", 7) != 0))
			__builtin_trap();
	}
	st = http_head_end((const char *)data, size, &scan, &hl);
	end = first_end(data, size < HTTP_MAX_HEAD ? size : HTTP_MAX_HEAD);
	switch (st) {
	case HTTP_OK:
		FUZZ_ASSERT(hl == end && hl <= size && hl <= HTTP_MAX_HEAD);
		break;
	case HTTP_NEED_MORE:
		FUZZ_ASSERT(end == 0 && size < HTTP_MAX_HEAD);
		break;
	case HTTP_TOO_LARGE:
		FUZZ_ASSERT(end == 0 && size >= HTTP_MAX_HEAD);
		break;
	default:
		FUZZ_ASSERT(!"http_head_end returned HTTP_BAD");
	}
	st2 = scan_in_pieces(data, size, &hl2);
	FUZZ_ASSERT(st2 == st);
	if (st == HTTP_OK)
		FUZZ_ASSERT(hl2 == hl);

	if (st == HTTP_OK)
		check_parse((const char *)data, hl);
	/* Robust on any bytes, terminated or not, though conn.c never asks. */
	check_parse((const char *)data, size);

	/* A response around the input as body: bounded, or refused. */
	n = http_build_response(out, sizeof(out), 200, NULL, "text/plain",
	    (const char *)data, size, false);
	FUZZ_ASSERT(n <= sizeof(out));
	if (n > 0)
		FUZZ_ASSERT(n >= size &&
		    memcmp(out + n - size, data, size) == 0);
	return 0;
}
