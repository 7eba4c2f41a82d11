/* SPDX-License-Identifier: ISC */
/* util.c: small helpers shared by the daemon, derpctl and tests. */
#include <sys/stat.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "util.h"

static const char hexdig[] = "0123456789abcdef";

void
util_hex_encode(const uint8_t *in, size_t n, char *out)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hexdig[in[i] >> 4];
		out[2 * i + 1] = hexdig[in[i] & 0xf];
	}
	out[2 * n] = '\0';
}

int
util_hex_digit(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
util_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t n)
{
	size_t	 i;
	int	 hi, lo;

	if (inlen != 2 * n)
		return -1;
	for (i = 0; i < n; i++) {
		hi = util_hex_digit(in[2 * i]);
		lo = util_hex_digit(in[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int
util_key_parse(const char *text, const char *prefix, uint8_t key[32])
{
	size_t	 plen = strlen(prefix);

	if (strncmp(text, prefix, plen) != 0)
		return -1;
	return util_hex_decode(text + plen, strlen(text + plen), key, KEY_LEN);
}

void
util_key_format(const uint8_t key[32], const char *prefix, char *out)
{
	size_t	 plen = strlen(prefix);

	memcpy(out, prefix, plen);
	util_hex_encode(key, KEY_LEN, out + plen);
}

void
util_key_short(const uint8_t key[32], char *out)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t v = (uint32_t)key[0] << 16 | (uint32_t)key[1] << 8 | key[2];
	uint32_t w = (uint32_t)key[3] << 16 | (uint32_t)key[4] << 8 | key[5];

	out[0] = '[';
	out[1] = b64[(v >> 18) & 63];
	out[2] = b64[(v >> 12) & 63];
	out[3] = b64[(v >> 6) & 63];
	out[4] = b64[v & 63];
	out[5] = b64[(w >> 18) & 63];
	out[6] = ']';
	out[7] = '\0';
}

int
util_duration_parse(const char *s, int64_t *ms)
{
	double	 total = 0, v;
	char	*end;
	int	 neg = 0;

	if (*s == '-') {
		neg = 1;
		s++;
	} else if (*s == '+')
		s++;
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return 0;
	}
	if (*s == '\0')
		return -1;
	while (*s != '\0') {
		/* Go syntax only: digits with an optional fraction. */
		const char *q = s;
		while (isdigit((unsigned char)*q))
			q++;
		if (*q == '.') {
			q++;
			while (isdigit((unsigned char)*q))
				q++;
		}
		if (q == s || (q == s + 1 && *s == '.'))
			return -1;
		v = strtod(s, &end);
		if (end != q)
			return -1;
		s = end;
		if (strncmp(s, "ns", 2) == 0) {
			v /= 1e6;
			s += 2;
		} else if (strncmp(s, "us", 2) == 0 ||
		    strncmp(s, "\xc2\xb5s", 3) == 0) {
			v /= 1e3;
			s += (*s == 'u') ? 2 : 3;
		} else if (strncmp(s, "ms", 2) == 0) {
			s += 2;
		} else if (*s == 's') {
			v *= 1e3;
			s++;
		} else if (*s == 'm') {
			v *= 60e3;
			s++;
		} else if (*s == 'h') {
			v *= 3600e3;
			s++;
		} else
			return -1;
		total += v;
	}
	if (total > 9.2e15)
		return -1;
	*ms = (int64_t)(total + 0.5);
	if (neg)
		*ms = -*ms;
	return 0;
}

size_t
util_strlcpy(char *dst, const char *src, size_t size)
{
	size_t	 n = strlen(src);

	if (size > 0) {
		size_t c = n < size - 1 ? n : size - 1;
		memcpy(dst, src, c);
		dst[c] = '\0';
	}
	return n;
}

void
util_addr_ip(const struct sockaddr *sa, char *out, size_t outlen)
{
	const struct in6_addr	*a6;

	if (sa == NULL || outlen == 0) {
		if (outlen > 0)
			out[0] = '\0';
		return;
	}
	if (sa->sa_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    out, (socklen_t)outlen);
		return;
	}
	if (sa->sa_family != AF_INET6) {
		snprintf(out, outlen, "unknown");
		return;
	}
	a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
	/* Dual-stack listeners: IPv4 peers are shown as IPv4, as Go does. */
	if (IN6_IS_ADDR_V4MAPPED(a6))
		inet_ntop(AF_INET, &a6->s6_addr[12], out, (socklen_t)outlen);
	else
		inet_ntop(AF_INET6, a6, out, (socklen_t)outlen);
}

void
util_addr_format(const struct sockaddr *sa, char *out, size_t outlen)
{
	char	 ip[INET6_ADDRSTRLEN];
	int	 v6;

	util_addr_ip(sa, ip, sizeof(ip));
	if (sa->sa_family == AF_INET)
		snprintf(out, outlen, "%s:%u", ip,
		    ntohs(((const struct sockaddr_in *)sa)->sin_port));
	else if (sa->sa_family == AF_INET6) {
		v6 = strchr(ip, ':') != NULL;
		snprintf(out, outlen, "%s%s%s:%u", v6 ? "[" : "", ip,
		    v6 ? "]" : "",
		    ntohs(((const struct sockaddr_in6 *)sa)->sin6_port));
	} else
		snprintf(out, outlen, "unknown");
}

bool
util_addr_is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
		return (ntohl(s4->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 =
		    (const struct sockaddr_in6 *)sa;
		/* Dual-stack listeners see IPv4 peers as ::ffff:a.b.c.d. */
		return IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr) &&
		    s6->sin6_addr.s6_addr[12] == 127);
	}
	return false;
}

/* An address as derper's netip sees it: IPv4-mapped IPv6 is IPv4. */
struct ipaddr {
	int	 ia_len;	/* 4 or 16 */
	uint8_t	 ia_b[16];
};

static void
ipaddr_unmap(struct ipaddr *a)
{
	static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	    0xff, 0xff };

	if (a->ia_len == 16 && memcmp(a->ia_b, mapped, 12) == 0) {
		memmove(a->ia_b, a->ia_b + 12, 4);
		a->ia_len = 4;
	}
}

static bool
ipaddr_from_sa(const struct sockaddr *sa, struct ipaddr *a)
{
	if (sa->sa_family == AF_INET) {
		a->ia_len = 4;
		memcpy(a->ia_b,
		    &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		a->ia_len = 16;
		memcpy(a->ia_b,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	} else
		return false;
	ipaddr_unmap(a);
	return true;
}

/* Parse an address literal as it is written (no unmapping). */
static bool
ipaddr_parse(const char *s, struct ipaddr *a)
{
	if (inet_pton(AF_INET, s, a->ia_b) == 1) {
		a->ia_len = 4;
		return true;
	}
	if (inet_pton(AF_INET6, s, a->ia_b) == 1) {
		a->ia_len = 16;
		return true;
	}
	return false;
}

static bool
ipaddr_in(const struct ipaddr *a, const struct ipaddr *net, int bits)
{
	int	 full = bits / 8, rest = bits % 8;

	if (a->ia_len != net->ia_len)
		return false;
	if (memcmp(a->ia_b, net->ia_b, (size_t)full) != 0)
		return false;
	return rest == 0 || ((a->ia_b[full] ^ net->ia_b[full]) &
	    (uint8_t)(0xff << (8 - rest))) == 0;
}

/* "addr/bits" (len bytes, not terminated) into net and *bits. */
static bool
prefix_parse(const char *s, size_t len, struct ipaddr *net, int *bits)
{
	char		 buf[64], *slash, *end;
	long		 n;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	if ((slash = strchr(buf, '/')) == NULL || slash[1] == '\0')
		return false;
	*slash = '\0';
	if (!ipaddr_parse(buf, net))
		return false;
	if (!isdigit((unsigned char)slash[1]))
		return false;
	n = strtol(slash + 1, &end, 10);
	if (*end != '\0' || n < 0 || n > net->ia_len * 8)
		return false;
	*bits = (int)n;
	return true;
}

/*
 * Each comma-separated entry of list, spaces trimmed, empty entries
 * skipped: fn(entry, len, arg) until it returns true. Returns whether
 * one did.
 */
static bool
list_any(const char *list, bool (*fn)(const char *, size_t, void *),
    void *arg)
{
	const char	*p = list, *e;
	size_t		 n;

	while (p != NULL && *p != '\0') {
		e = strchr(p, ',');
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		while (n > 0 && isspace((unsigned char)*p)) {
			p++;
			n--;
		}
		while (n > 0 && isspace((unsigned char)p[n - 1]))
			n--;
		if (n > 0 && fn(p, n, arg))
			return true;
		p = e != NULL ? e + 1 : NULL;
	}
	return false;
}

static bool
entry_bad(const char *s, size_t len, void *arg)
{
	struct ipaddr	 net;
	int		 bits;

	(void)arg;
	return !prefix_parse(s, len, &net, &bits);
}

static bool
entry_contains(const char *s, size_t len, void *arg)
{
	struct ipaddr	 net;
	int		 bits;

	return prefix_parse(s, len, &net, &bits) && ipaddr_in(arg, &net, bits);
}

int
util_cidr_list_ok(const char *cidrs)
{
	return list_any(cidrs, entry_bad, NULL) ? -1 : 0;
}

bool
util_addr_debug_allowed(const struct sockaddr *sa, const char *allow_ip,
    const char *cidrs)
{
	static const struct ipaddr cgnat = { 4, { 100, 64 } };
	static const struct ipaddr chromeos = { 4, { 100, 115, 92 } };
	static const struct ipaddr ts_ula = { 16, { 0xfd, 0x7a, 0x11, 0x5c,
	    0xa1, 0xe0 } };
	struct ipaddr	 a, want;

	if (!ipaddr_from_sa(sa, &a))
		return false;
	if (util_addr_is_loopback(sa))
		return true;
	if (ipaddr_in(&a, &cgnat, 10) && !ipaddr_in(&a, &chromeos, 23))
		return true;
	if (ipaddr_in(&a, &ts_ula, 48))
		return true;
	/* derper compares the address text; a mapped literal never matches. */
	if (allow_ip != NULL && ipaddr_parse(allow_ip, &want) &&
	    want.ia_len == a.ia_len && memcmp(want.ia_b, a.ia_b,
	    (size_t)a.ia_len) == 0)
		return true;
	return list_any(cidrs, entry_contains, &a);
}

void
util_duration_format(int64_t sec, char *out, size_t outlen)
{
	const char	*sign = sec < 0 ? "-" : "";
	uint64_t	 u = sec < 0 ? (uint64_t)0 - (uint64_t)sec : (uint64_t)sec;

	if (u >= 3600)
		snprintf(out, outlen, "%s%lluh%llum%llus", sign,
		    (unsigned long long)(u / 3600),
		    (unsigned long long)(u / 60 % 60),
		    (unsigned long long)(u % 60));
	else if (u >= 60)
		snprintf(out, outlen, "%s%llum%llus", sign,
		    (unsigned long long)(u / 60), (unsigned long long)(u % 60));
	else
		snprintf(out, outlen, "%s%llus", sign, (unsigned long long)u);
}

int
util_hostport_split(const char *in, char *host, size_t hostlen,
    char *port, size_t portlen)
{
	const char	*colon;
	size_t		 hl;

	if (in[0] == '[') {
		const char *rb = strchr(in, ']');
		if (rb == NULL || rb[1] != ':')
			return -1;
		hl = (size_t)(rb - in - 1);
		colon = rb + 1;
		in++;
	} else {
		colon = strrchr(in, ':');
		if (colon == NULL)
			return -1;
		hl = (size_t)(colon - in);
		if (memchr(in, ':', hl) != NULL)
			return -1;	/* bare IPv6 needs brackets */
	}
	if (hl >= hostlen || strlen(colon + 1) >= portlen ||
	    colon[1] == '\0')
		return -1;
	memcpy(host, in, hl);
	host[hl] = '\0';
	util_strlcpy(port, colon + 1, portlen);
	return 0;
}

bool
util_is_ip_literal(const char *s)
{
	struct in6_addr	 a6;
	struct in_addr	 a4;

	return inet_pton(AF_INET, s, &a4) == 1 ||
	    inet_pton(AF_INET6, s, &a6) == 1;
}

uint64_t
util_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool
util_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
	volatile uint8_t d = 0;
	size_t	 i;

	for (i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

bool
util_is_zero(const uint8_t *a, size_t n)
{
	uint64_t w, dw = 0;
	uint8_t	 d = 0;
	size_t	 i = 0;

	/* A word at a time: keys are checked several times per packet. */
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, a + i, 8);
		dw |= w;
	}
	for (; i < n; i++)
		d |= a[i];
	return (dw | d) == 0;
}

/* Bytes the escaped form of c takes in util_log_safe. */
static size_t
log_safe_len(unsigned char c)
{
	if (c == '\\')
		return 2;
	return c >= 0x20 && c < 0x7f ? 1 : 4;
}

const char *
util_log_safe(const char *in, char *out, size_t outlen)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p;
	size_t			 o = 0, need = 0, room;

	if (outlen == 0)
		return out;
	if (in == NULL)
		in = "(null)";
	for (p = (const unsigned char *)in; *p != '\0'; p++)
		need += log_safe_len(*p);
	/* All of it, or as much as leaves room for "..." and the NUL. */
	room = need < outlen ? need : outlen > 4 ? outlen - 4 : 0;
	for (p = (const unsigned char *)in; *p != '\0'; p++) {
		size_t n = log_safe_len(*p);

		if (o + n > room)
			break;
		if (n == 1)
			out[o] = (char)*p;
		else if (n == 2)
			out[o] = out[o + 1] = '\\';
		else {
			out[o] = '\\';
			out[o + 1] = 'x';
			out[o + 2] = hex[*p >> 4];
			out[o + 3] = hex[*p & 0xf];
		}
		o += n;
	}
	if (need >= outlen && outlen > 4) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

uint64_t
util_key_hash(const uint8_t seed[UTIL_HASH_SEED_LEN], const uint8_t *key)
{
	uint8_t		 out[crypto_shorthash_BYTES];
	uint64_t	 h;

	crypto_shorthash(out, key, KEY_LEN, seed);
	memcpy(&h, out, sizeof(h));
	return h;
}

void
util_hash_seed(uint8_t seed[UTIL_HASH_SEED_LEN])
{
	randombytes_buf(seed, UTIL_HASH_SEED_LEN);
}

char *
util_read_small_file(const char *path, size_t max, int flags, size_t *lenp,
    char *err, size_t errlen)
{
	struct stat	 st;
	char		*buf = NULL;
	size_t		 cap, n = 0;
	ssize_t		 r;
	int		 fd, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &st) == -1)
		goto fail_errno;
	if (S_ISREG(st.st_mode)) {
		if ((uintmax_t)st.st_size > max) {
			errno = EFBIG;
			goto fail_big;
		}
		cap = (size_t)st.st_size;
	} else if (flags & UTIL_READ_REGULAR) {
		errno = EINVAL;
		snprintf(err, errlen, "%s: not a regular file", path);
		goto fail;
	} else if (max == SIZE_MAX) {
		errno = EFBIG;
		goto fail_big;
	} else
		cap = max + 1;	/* no size to trust: one byte more shows it */
	if ((buf = malloc(cap + 1)) == NULL) {
		errno = ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	while (n < cap && (r = read(fd, buf + n, cap - n)) != 0) {
		if (r == -1) {
			if (errno == EINTR)
				continue;
			goto fail_errno;
		}
		n += (size_t)r;
	}
	if (n > max) {
		errno = EFBIG;
		goto fail_big;
	}
	buf[n] = '\0';
	close(fd);
	*lenp = n;
	return buf;
fail_big:
	snprintf(err, errlen, "%s: file too large", path);
	goto fail;
fail_errno:
	snprintf(err, errlen, "%s: %s", path, strerror(errno));
fail:
	saved = errno;
	if (fd != -1)
		close(fd);
	if (buf != NULL) {
		/* It may be a key: no copy of it stays behind. */
		sodium_memzero(buf, n);
		free(buf);
	}
	errno = saved;
	return NULL;
}

int
util_write_file_atomic(const char *path, const void *data, size_t len,
    mode_t mode, char *err, size_t errlen)
{
	char	 tmp[PATH_MAX];
	size_t	 off = 0;
	ssize_t	 w;
	int	 fd, saved;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >=
	    sizeof(tmp)) {
		snprintf(err, errlen, "%s: path too long", path);
		errno = ENAMETOOLONG;
		return -1;
	}
	/* A new file (O_EXCL): never one that someone else put there. */
	if ((fd = mkstemp(tmp)) == -1) {
		snprintf(err, errlen, "%.400s: %s", tmp, strerror(errno));
		return -1;
	}
	if (fchmod(fd, mode) == -1)
		goto fail_tmp;
	while (off < len) {
		if ((w = write(fd, (const char *)data + off, len - off)) <= 0) {
			if (w == -1 && errno == EINTR)
				continue;
			if (w == 0)
				errno = EIO;
			goto fail_tmp;
		}
		off += (size_t)w;
	}
	/* On disk before the rename, so a crash leaves the old or the new. */
	if (fsync(fd) == -1) {
		saved = errno;
		close(fd);
		errno = saved;
		goto fail_path;
	}
	if (close(fd) == -1 || rename(tmp, path) == -1)
		goto fail_path;
	return 0;
fail_tmp:
	snprintf(err, errlen, "%.400s: %s", tmp, strerror(errno));
	saved = errno;
	close(fd);
	unlink(tmp);
	errno = saved;
	return -1;
fail_path:
	snprintf(err, errlen, "%.400s: %s", path, strerror(errno));
	saved = errno;
	unlink(tmp);
	errno = saved;
	return -1;
}
