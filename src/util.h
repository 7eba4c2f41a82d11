/* SPDX-License-Identifier: ISC */
/*
 * util.h: small helpers: hex, key text forms, durations, strings, and
 * reading and replacing small files.
 */
#ifndef DERPD_UTIL_H
#define DERPD_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KEY_LEN		32
#define KEY_HEX_LEN	64
#define NODEKEY_PREFIX	"nodekey:"
#define PRIVKEY_PREFIX	"privkey:"
/* "nodekey:" + 64 hex + NUL */
#define KEY_TEXT_SIZE	(8 + KEY_HEX_LEN + 1)
/*
 * A keyed hash of a 32-byte key (SipHash-2-4) for hash tables of keys that
 * peers choose: without the table's random seed nobody can aim keys at one
 * slot. util_hash_seed fills a seed.
 */
#define UTIL_HASH_SEED_LEN	16
uint64_t util_key_hash(const uint8_t seed[UTIL_HASH_SEED_LEN],
	    const uint8_t *key);
void	util_hash_seed(uint8_t seed[UTIL_HASH_SEED_LEN]);
/* "[ipv6]:port" with room to spare. */
#define UTIL_ADDR_TEXT	64

/* The value of one hex digit (either case), or -1. */
int	util_hex_digit(int c);
/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void	util_hex_encode(const uint8_t *in, size_t n, char *out);
/* Decode exactly 2n hex chars (either case); 0 or -1. */
int	util_hex_decode(const char *in, size_t inlen, uint8_t *out, size_t n);
/* "<prefix><64 hex>" -> 32 bytes; exact prefix and length; 0 or -1. */
int	util_key_parse(const char *text, const char *prefix, uint8_t key[32]);
/* 32 bytes -> "<prefix><64 lowercase hex>" in out (KEY_TEXT_SIZE). */
void	util_key_format(const uint8_t key[32], const char *prefix, char *out);
/* "[" + first 5 base64 chars + "]" short form for logs (out >= 8). */
void	util_key_short(const uint8_t key[32], char *out);
/* Go time.Duration syntax ("10s", "1m30s", "250ms", "0") -> ms; 0/-1. */
int	util_duration_parse(const char *s, int64_t *ms);
/* Whole seconds as Go prints a time.Duration: "0s", "59s", "1m0s", "1h2m3s". */
void	util_duration_format(int64_t sec, char *out, size_t outlen);
/* Truncation-checked copy: returns strlen(src); >= size means cut. */
size_t	util_strlcpy(char *dst, const char *src, size_t size);
/* "ip:port" or "[ip6]:port" text of a socket address (out >= 64). */
/*
 * The one formatter of client addresses, for logs, events and replies:
 * util_addr_ip gives the IP (IPv4 peers of a dual-stack listener as
 * IPv4), util_addr_format "ip:port" ("[ip]:port" for IPv6). "unknown" for
 * other families; NULL sa gives "".
 */
void	util_addr_ip(const struct sockaddr *sa, char *out, size_t outlen);
void	util_addr_format(const struct sockaddr *sa, char *out, size_t outlen);
/* Is sa a loopback address (127/8, ::1, or 127/8 mapped into IPv6)? */
bool	util_addr_is_loopback(const struct sockaddr *sa);
/*
 * derper's debug access rule for a client address (tsweb
 * AllowDebugAccess): loopback; a Tailscale address (100.64.0.0/10 except
 * ChromeOS's 100.115.92.0/23, fd7a:115c:a1e0::/48); the one address
 * allow_ip (TS_ALLOW_DEBUG_IP, NULL or "" for none); or a prefix of
 * cidrs (TS_DEBUG_TRUSTED_CIDRS, comma-separated, NULL for none). An
 * IPv4-mapped IPv6 address counts as its IPv4 address. Pure.
 */
bool	util_addr_debug_allowed(const struct sockaddr *sa,
	    const char *allow_ip, const char *cidrs);
/* 0 when every entry of a TS_DEBUG_TRUSTED_CIDRS list parses, else -1. */
int	util_cidr_list_ok(const char *cidrs);
/* Parse "host:port", ":port", "[v6]:port"; host "" means any. 0/-1. */
int	util_hostport_split(const char *in, char *host, size_t hostlen,
	    char *port, size_t portlen);
/* True when s is an IPv4 or IPv6 literal. */
bool	util_is_ip_literal(const char *s);
/* Monotonic clock in milliseconds. */
uint64_t util_now_ms(void);
/* Constant-time equality of n bytes. */
bool	util_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);
/* True when all n bytes are zero. */
bool	util_is_zero(const uint8_t *a, size_t n);
/*
 * Text from a peer or backend made safe for one log line: printable ASCII
 * is kept, a backslash becomes \\\\, every other byte \\xNN; cut to fit
 * out (then ending in "..."). NULL in is "(null)". Returns out, always
 * NUL-terminated (outlen >= 8).
 */
const char *util_log_safe(const char *in, char *out, size_t outlen);

/* util_read_small_file flags. */
#define UTIL_READ_REGULAR	0x1	/* refuse all but a regular file */
/*
 * A whole file of at most max bytes in a malloc'd buffer, NUL after the
 * data; *lenp gets the length (without the NUL). The caller frees it. A
 * regular file is read up to its size when opened; anything else (a pipe,
 * a device) up to max bytes and one more to see it is too long. NULL on
 * failure, nothing read left in memory, errno set and a message in err
 * (NULL with errlen 0 for none): EFBIG "<path>: file too large"; EINVAL
 * "<path>: not a regular file" (UTIL_READ_REGULAR); ENOMEM "out of
 * memory"; else open(2)'s or read(2)'s errno, "<path>: <strerror>".
 */
char	*util_read_small_file(const char *path, size_t max, int flags,
	    size_t *lenp, char *err, size_t errlen);
/*
 * Replace path with len bytes of data atomically: written to a new file
 * "<path>.tmpXXXXXX" beside it, made mode, fsync(2)ed, then renamed over
 * path, so a reader sees the old content or the new and a crash leaves
 * one of them. 0, or -1 with the temporary file gone, errno set and a
 * message in err (NULL with errlen 0 for none): "<path>: path too long"
 * (ENAMETOOLONG), "<tmpfile>: <strerror>" when creating or writing it
 * failed, "<path>: <strerror>" when the fsync, close or rename did.
 */
int	util_write_file_atomic(const char *path, const void *data, size_t len,
	    mode_t mode, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
