/* SPDX-License-Identifier: ISC */
/* derpcat.c: a tiny DERP test client on top of derpc (see usage()). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "derpc.h"
#include "frame.h"
#include "keys.h"
#include "util.h"

static void
usage(void)
{
	fprintf(stderr,
"usage: derpcat -s URL [-k keyfile] [-i] [-n count] [-t seconds] [command]\n"
"\n"
"A small DERP client for trying out a relay by hand.\n"
"\n"
"  -s URL      the relay: http://127.0.0.1:PORT/derp or https://...\n"
"              (the host must be 127.0.0.1 or localhost)\n"
"  -k keyfile  client private key: a derper key file ({\"PrivateKey\":\n"
"              \"privkey:<hex>\"}), or \"privkey:<hex>\" or 64 hex chars.\n"
"              Without -k a fresh key is used.\n"
"  -i          https: do not verify the server certificate\n"
"  -n count    recv: exit after count packets (default: run until EOF)\n"
"  -t seconds  recv/ping: give up after this long (default 10 for ping)\n"
"\n"
"commands:\n"
"  send KEYHEX   read stdin (at most 65536 bytes) and send it as one\n"
"                packet to the peer KEYHEX (64 hex, optional nodekey:)\n"
"  recv          print our key, then write each received packet's\n"
"                payload to stdout (source key on stderr)\n"
"  ping          send a Ping and wait for the Pong; print the RTT\n"
"  (none)        connect, print the server key and our key, exit\n"
"\n"
"Our public key is printed on stderr as nodekey:<hex> after connecting.\n"
"Exit status: 0 ok, 1 error, 2 usage.\n");
	exit(2);
}

static int
load_key(const char *path, uint8_t priv[32])
{
	FILE	*f;
	char	 buf[4096], err[256];
	size_t	 n;

	if ((f = fopen(path, "r")) == NULL) {
		fprintf(stderr, "derpcat: %s: %s\n", path, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' ||
	    buf[n - 1] == ' '))
		buf[--n] = '\0';
	if (keys_parse_file(buf, n, priv, err, sizeof(err)) == 0)
		return 0;
	if (util_key_parse(buf, PRIVKEY_PREFIX, priv) == 0 ||
	    (n == 64 && util_hex_decode(buf, 64, priv, 32) == 0))
		return 0;
	fprintf(stderr, "derpcat: %s: not a key file (%s)\n", path, err);
	return -1;
}

static int
parse_url(const char *url, int *tls, int *port)
{
	const char	*p;
	char		*end;
	long		 v;

	if (strncmp(url, "http://", 7) == 0) {
		*tls = 0;
		p = url + 7;
	} else if (strncmp(url, "https://", 8) == 0) {
		*tls = 1;
		p = url + 8;
	} else
		return -1;
	if (strncmp(p, "127.0.0.1", 9) == 0)
		p += 9;
	else if (strncmp(p, "localhost", 9) == 0)
		p += 9;
	else
		return -1;
	if (*p != ':') {
		*port = *tls ? 443 : 80;
	} else {
		v = strtol(p + 1, &end, 10);
		if (end == p + 1 || v <= 0 || v > 65535)
			return -1;
		*port = (int)v;
		p = end;
	}
	return (*p == '\0' || strcmp(p, "/derp") == 0) ? 0 : -1;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct derpc_opts	 o;
	struct derpc		*c;
	const char		*url = NULL, *keyfile = NULL, *cmd;
	uint8_t			 priv[32], dst[32];
	char			 err[512], hex[KEY_TEXT_SIZE], si[256];
	int			 ch, tls, port, insecure = 0, rc = 0;
	long			 count = -1, secs = -1;

	while ((ch = getopt(argc, argv, "s:k:in:t:h")) != -1) {
		switch (ch) {
		case 's':
			url = optarg;
			break;
		case 'k':
			keyfile = optarg;
			break;
		case 'i':
			insecure = 1;
			break;
		case 'n':
			count = strtol(optarg, NULL, 10);
			break;
		case 't':
			secs = strtol(optarg, NULL, 10);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (url == NULL || parse_url(url, &tls, &port) == -1)
		usage();
	cmd = argc > 0 ? argv[0] : "";
	if ((strcmp(cmd, "send") == 0 && argc != 2) ||
	    (strcmp(cmd, "send") != 0 && argc > 1))
		usage();
	if (strcmp(cmd, "send") == 0) {
		const char *k = argv[1];
		if (strncmp(k, NODEKEY_PREFIX, 8) == 0)
			k += 8;
		if (strlen(k) != 64 || util_hex_decode(k, 64, dst, 32) != 0) {
			fprintf(stderr, "derpcat: bad key %s\n", argv[1]);
			return 2;
		}
	} else if (cmd[0] != '\0' && strcmp(cmd, "recv") != 0 &&
	    strcmp(cmd, "ping") != 0)
		usage();
	if (tls && !insecure) {
		fprintf(stderr, "derpcat: https needs -i (no CA option)\n");
		return 2;
	}

	memset(&o, 0, sizeof(o));
	o.port = port;
	o.tls = tls;
	o.fast_start = tls;	/* over TLS 1.3 the meta cert has the key */
	if (keyfile != NULL) {
		if (load_key(keyfile, priv) == -1)
			return 1;
		o.priv = priv;
	}
	if ((c = derpc_connect(&o, si, sizeof(si), err, sizeof(err))) == NULL) {
		fprintf(stderr, "derpcat: %s: %s\n", url, err);
		return 1;
	}
	util_key_format(derpc_pub(c), NODEKEY_PREFIX, hex);
	fprintf(stderr, "derpcat: connected; our key %s\n", hex);
	if (cmd[0] == '\0') {
		util_key_format(derpc_server_pub(c), NODEKEY_PREFIX, hex);
		printf("server %s\nserverinfo %s\n", hex, si);
		util_key_format(derpc_pub(c), NODEKEY_PREFIX, hex);
		printf("client %s\n", hex);
	} else if (strcmp(cmd, "send") == 0) {
		static uint8_t	 data[FRAME_MAX_PACKET + 1];
		size_t		 n = fread(data, 1, sizeof(data), stdin);

		if (n > FRAME_MAX_PACKET) {
			fprintf(stderr, "derpcat: input over %d bytes\n",
			    FRAME_MAX_PACKET);
			rc = 1;
		} else if (derpc_send_packet(c, dst, data, n) != DERPC_OK) {
			fprintf(stderr, "derpcat: send: %s\n", derpc_error(c));
			rc = 1;
		} else {
			/* Give the relay a moment before we hang up. */
			derpc_shutdown_write(c);
			derpc_wait_eof(c, 200);
		}
	} else if (strcmp(cmd, "recv") == 0) {
		static uint8_t	 data[FRAME_MAX_PACKET];
		uint8_t		 src[32];
		size_t		 n;
		double		 end = secs > 0 ? now_s() + (double)secs : 0;

		printf("%s\n", hex);
		fflush(stdout);
		for (long got = 0; count < 0 || got < count; got++) {
			int left = end > 0 ? (int)((end - now_s()) * 1000) :
			    24 * 3600 * 1000;
			if (left <= 0) {
				rc = 1;
				break;
			}
			struct derpc_frame f;
			int r = derpc_recv_frame(c, &f, left);
			if (r == DERPC_EOF)
				break;
			if (r == DERPC_OK && f.type != FRAME_RECV_PACKET) {
				/* A sender that leaves sends PeerGone. */
				if (f.type == FRAME_KEEP_ALIVE ||
				    f.type == FRAME_PEER_GONE ||
				    f.type == FRAME_PEER_PRESENT ||
				    f.type == FRAME_HEALTH) {
					got--;
					continue;
				}
				fprintf(stderr, "derpcat: recv: unexpected "
				    "frame type 0x%02x\n", f.type);
				rc = 1;
				break;
			}
			if (r == DERPC_OK && f.len < 32) {
				fprintf(stderr, "derpcat: recv: RecvPacket "
				    "without a source key\n");
				rc = 1;
				break;
			}
			if (r != DERPC_OK) {
				fprintf(stderr, "derpcat: recv: %s\n",
				    r == DERPC_TIMEOUT ? "timed out" :
				    derpc_error(c));
				rc = 1;
				break;
			}
			memcpy(src, f.payload, 32);
			n = f.len - 32 < sizeof(data) ? f.len - 32 :
			    sizeof(data);
			memcpy(data, f.payload + 32, n);
			util_key_format(src, NODEKEY_PREFIX, hex);
			fprintf(stderr, "derpcat: %zu bytes from %s\n", n, hex);
			fwrite(data, 1, n, stdout);
			fflush(stdout);
		}
	} else {
		struct derpc_frame	 f;
		uint8_t			 pd[8];
		double			 t0 = now_s();
		int			 r;

		randombytes_buf(pd, sizeof(pd));
		if (derpc_ping(c, pd) != DERPC_OK) {
			fprintf(stderr, "derpcat: ping: %s\n", derpc_error(c));
			rc = 1;
		} else if ((r = derpc_recv_type(c, FRAME_PONG, &f,
		    (int)(secs > 0 ? secs : 10) * 1000)) != DERPC_OK ||
		    f.len != 8 || memcmp(f.payload, pd, 8) != 0) {
			fprintf(stderr, "derpcat: no pong: %s\n",
			    r == DERPC_TIMEOUT ? "timed out" : derpc_error(c));
			rc = 1;
		} else
			printf("pong in %.3f ms\n", (now_s() - t0) * 1000);
	}
	derpc_close(c);
	return rc;
}
