/* SPDX-License-Identifier: ISC */
/*
 * loadgen.c: DERP load generator for make bench. Opens sender/receiver
 * pairs against a DERP server (plain HTTP or TLS), then either floods
 * (closed loop, -d seconds) and reports delivered packets/s and the
 * server's CPU, or sends an exact count per pair with a bounded window
 * (-c) for instruction counting. Single thread, epoll, no allocation in
 * the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sodium.h>

#include "frame.h"
#include "keys.h"

#define RBUF	(256 * 1024)
#define MAXC	512

struct lconn {
	int		 fd;
	SSL		*ssl;
	int		 sender;
	struct lconn	*peer;		/* sender -> its receiver */
	uint8_t		 pub[32];
	/* sender: a run of frames, written round and round */
	uint8_t		*wbuf;
	size_t		 wlen, woff;
	uint64_t	 sent;		/* whole packets handed to the kernel */
	uint64_t	 wbytes;
	/* receiver */
	uint64_t	 got;
	uint8_t		 hdr[5];
	size_t		 hdrn;
	uint32_t	 left;		/* payload bytes left in this frame */
	int		 cur_type;
	int		 want_write;
	int		 rx_side;	/* a receiver (connects to -R) */
};

static int	 opt_tls, opt_pairs = 4, opt_size = 1200, opt_count;
static double	 opt_secs = 5, opt_warm = 1;
static int	 opt_window = -1;	/* -1: 16 in count mode, else flood */
static const char *opt_host = "127.0.0.1";
static int	 opt_port;
static int	 opt_rport;	/* receivers' server (a meshed node); 0: -p */
static int	 opt_pid;
static int	 opt_pid2;	/* the second server's CPU is counted too */
static SSL_CTX	*ctx;
static uint8_t	 rbuf[RBUF];

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *m)
{
	fprintf(stderr, "loadgen: %s: %s\n", m, strerror(errno));
	ERR_print_errors_fp(stderr);
	exit(1);
}

static int
xwrite(struct lconn *c, const void *b, size_t n)
{
	if (c->ssl != NULL)
		return SSL_write(c->ssl, b, (int)n) == (int)n ? 0 : -1;
	return write(c->fd, b, n) == (ssize_t)n ? 0 : -1;
}

static ssize_t
xread(struct lconn *c, void *b, size_t n)
{
	if (c->ssl != NULL) {
		int r = SSL_read(c->ssl, b, (int)n);
		if (r > 0)
			return r;
		int e = SSL_get_error(c->ssl, r);
		if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
			errno = EAGAIN;
			return -1;
		}
		return e == SSL_ERROR_ZERO_RETURN ? 0 : -2;
	}
	return read(c->fd, b, n);
}

static void
readn(struct lconn *c, void *b, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = xread(c, (uint8_t *)b + got, n - got);
		if (r <= 0)
			die("handshake read");
		got += (size_t)r;
	}
}

/* Blocking DERP handshake: upgrade, ServerKey, ClientInfo, ServerInfo. */
static void
handshake(struct lconn *c)
{
	struct sockaddr_in	 sa;
	struct server_key	*k = keys_generate();
	uint8_t			 hb[5], spub[32], sk[40], shared[32];
	uint8_t			 ci[5 + 56 + 16 + 64];
	const char		*json = "{\"version\":2,\"CanAckPings\":true}";
	size_t			 jl = strlen(json), hl = 0;
	char			 req[256], head[1024];
	uint32_t		 len;
	uint8_t			 type;
	int			 one = 1;

	memcpy(c->pub, k->sk_pub, 32);
	if ((c->fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		die("socket");
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	/* Receivers are set up first (see main), senders after. */
	sa.sin_port = htons((uint16_t)(opt_rport && c->rx_side ? opt_rport :
	    opt_port));
	inet_pton(AF_INET, opt_host, &sa.sin_addr);
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) == -1)
		die("connect");
	setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (opt_tls) {
		c->ssl = SSL_new(ctx);
		SSL_set_fd(c->ssl, c->fd);
		SSL_set_mode(c->ssl, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
		    SSL_MODE_ENABLE_PARTIAL_WRITE);
		if (SSL_connect(c->ssl) != 1)
			die("SSL_connect");
	}
	snprintf(req, sizeof(req), "GET /derp HTTP/1.1\r\nHost: %s\r\n"
	    "Connection: Upgrade\r\nUpgrade: DERP\r\n\r\n", opt_host);
	if (xwrite(c, req, strlen(req)) == -1)
		die("write request");
	while (hl < 4 || memcmp(head + hl - 4, "\r\n\r\n", 4) != 0) {
		if (hl >= sizeof(head))
			die("response head too long");
		readn(c, head + hl, 1);
		hl++;
	}
	if (strncmp(head, "HTTP/1.1 101", 12) != 0)
		die("no 101");
	readn(c, hb, 5);
	frame_get_header(hb, 5, &type, &len);
	if (type != FRAME_SERVER_KEY || len != 40)
		die("no server key");
	readn(c, sk, 40);
	memcpy(spub, sk + 8, 32);
	frame_put_header(ci, FRAME_CLIENT_INFO, (uint32_t)(56 + 16 + jl));
	memcpy(ci + 5, k->sk_pub, 32);
	randombytes_buf(ci + 5 + 32, 24);
	if (crypto_box_beforenm(shared, spub, k->sk_priv) != 0)
		die("weak server key");
	crypto_box_easy_afternm(ci + 5 + 56, (const uint8_t *)json, jl,
	    ci + 5 + 32, shared);
	if (xwrite(c, ci, 5 + 56 + 16 + jl) == -1)
		die("write client info");
	readn(c, hb, 5);
	frame_get_header(hb, 5, &type, &len);
	if (type != FRAME_SERVER_INFO || len > 1024)
		die("no server info");
	readn(c, head, len);
	keys_free(k);
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
}

static void
build_sender(struct lconn *s)
{
	size_t	 flen = 5 + 32 + (size_t)opt_size;
	size_t	 n = (64 * 1024) / flen + 1;

	s->wlen = n * flen;
	s->wbuf = calloc(1, s->wlen);
	for (size_t i = 0; i < n; i++) {
		uint8_t *f = s->wbuf + i * flen;
		frame_put_header(f, FRAME_SEND_PACKET,
		    (uint32_t)(32 + opt_size));
		memcpy(f + 5, s->peer->pub, 32);
		memset(f + 37, 0x5a, (size_t)opt_size);
	}
}

/* Write as much as the socket (and the window) takes; count frames. */
static void
do_send(struct lconn *s)
{
	size_t	 flen = 5 + 32 + (size_t)opt_size;

	for (;;) {
		size_t	 len = s->wlen - s->woff;
		uint64_t limit = UINT64_MAX;
		ssize_t	 r;

		if (opt_window > 0)
			limit = s->peer->got + (uint64_t)opt_window;
		if (opt_count && limit > (uint64_t)opt_count)
			limit = (uint64_t)opt_count;
		if (limit != UINT64_MAX) {
			uint64_t maxb = limit * flen;
			if (s->wbytes >= maxb)
				return;
			if (maxb - s->wbytes < len)
				len = (size_t)(maxb - s->wbytes);
		}
		if (s->ssl != NULL) {
			r = SSL_write(s->ssl, s->wbuf + s->woff, (int)len);
			if (r <= 0) {
				int e = SSL_get_error(s->ssl, (int)r);
				if (e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ)
					return;
				die("SSL_write");
			}
		} else {
			r = write(s->fd, s->wbuf + s->woff, len);
			if (r < 0) {
				if (errno == EAGAIN)
					return;
				die("write");
			}
		}
		s->wbytes += (uint64_t)r;
		s->sent = s->wbytes / flen;
		s->woff = (s->woff + (size_t)r) % s->wlen;
	}
}

static void
do_recv(struct lconn *c)
{
	for (;;) {
		ssize_t r = xread(c, rbuf, sizeof(rbuf));
		if (r < 0 && errno == EAGAIN)
			return;
		if (r <= 0) {
			fprintf(stderr, "loadgen: receiver closed\n");
			exit(1);
		}
		size_t off = 0, n = (size_t)r;
		while (off < n) {
			if (c->left > 0) {
				size_t k = n - off < c->left ? n - off : c->left;
				off += k;
				c->left -= (uint32_t)k;
				if (c->left == 0 && c->cur_type ==
				    FRAME_RECV_PACKET)
					c->got++;
				continue;
			}
			c->hdr[c->hdrn++] = rbuf[off++];
			if (c->hdrn == 5) {
				uint8_t t;
				frame_get_header(c->hdr, 5, &t, &c->left);
				c->cur_type = t;
				c->hdrn = 0;
				if (c->left == 0 && t == FRAME_RECV_PACKET)
					c->got++;
			}
		}
	}
}

static double
proc_cpu(int pid)
{
	char	 path[64], buf[1024], *p;
	FILE	*f;
	unsigned long ut, st;

	if (pid == 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fgets(buf, sizeof(buf), f) == NULL) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	/* fields 14 and 15 (utime, stime), counted after ") S " */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
	    &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double
self_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static uint64_t
total(struct lconn *cs, int n, int sent)
{
	uint64_t t = 0;

	for (int i = 0; i < n; i++)
		t += sent ? (cs[i].sender ? cs[i].sent : 0) :
		    (cs[i].sender ? 0 : cs[i].got);
	return t;
}

int
main(int argc, char **argv)
{
	struct lconn		*cs;
	struct epoll_event	 ev, evs[64];
	int			 ep, ch, n;
	double			 t0, tw = 0, cpu0 = 0, gcpu0 = 0, deadline;
	uint64_t		 got0 = 0, sent0 = 0;
	int			 measuring = 0;

	while ((ch = getopt(argc, argv, "h:p:R:tn:s:d:w:c:W:P:Q:")) != -1) {
		switch (ch) {
		case 'h': opt_host = optarg; break;
		case 'p': opt_port = atoi(optarg); break;
		case 't': opt_tls = 1; break;
		case 'n': opt_pairs = atoi(optarg); break;
		case 's': opt_size = atoi(optarg); break;
		case 'd': opt_secs = atof(optarg); break;
		case 'w': opt_warm = atof(optarg); break;
		case 'c': opt_count = atoi(optarg); break;
		case 'W': opt_window = atoi(optarg); break;
		case 'P': opt_pid = atoi(optarg); break;
		case 'R': opt_rport = atoi(optarg); break;
		case 'Q': opt_pid2 = atoi(optarg); break;
		default:
			fprintf(stderr, "usage: loadgen -p port [-R port] [-t] "
			    "[-n pairs] [-s size] [-d secs] [-w warmup] "
			    "[-c count [-W window]] [-P server-pid "
			    "[-Q server-pid]]\n");
			return 2;
		}
	}
	if (opt_port == 0 || opt_pairs < 1 || 2 * opt_pairs > MAXC ||
	    opt_size < 0 || opt_size > 65536)
		return 2;
	if (sodium_init() < 0)
		return 1;
	if (opt_window < 0)
		opt_window = opt_count ? 16 : 0;
	if (opt_tls) {
		ctx = SSL_CTX_new(TLS_client_method());
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	}
	cs = calloc((size_t)opt_pairs * 2, sizeof(*cs));
	for (int i = 0; i < opt_pairs; i++) {
		struct lconn *s = &cs[2 * i], *r = &cs[2 * i + 1];
		r->rx_side = 1;
		handshake(r);
		handshake(s);
		s->sender = 1;
		s->peer = r;
		build_sender(s);
	}
	ep = epoll_create1(0);
	for (int i = 0; i < 2 * opt_pairs; i++) {
		ev.events = cs[i].sender ? EPOLLOUT | EPOLLET : EPOLLIN | EPOLLET;
		ev.data.ptr = &cs[i];
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
	}
	t0 = now();
	deadline = opt_count ? t0 + 120 : t0 + opt_warm + opt_secs;
	for (;;) {
		double t = now();
		if (!opt_count && !measuring && t >= t0 + opt_warm) {
			measuring = 1;
			tw = t;
			got0 = total(cs, 2 * opt_pairs, 0);
			sent0 = total(cs, 2 * opt_pairs, 1);
			cpu0 = proc_cpu(opt_pid) + proc_cpu(opt_pid2);
			gcpu0 = self_cpu();
		}
		if (t >= deadline)
			break;
		if (opt_count && total(cs, 2 * opt_pairs, 0) >=
		    (uint64_t)opt_count * (uint64_t)opt_pairs)
			break;
		/* Window mode: a sender blocked on the window needs a poke. */
		if (opt_window > 0)
			for (int i = 0; i < 2 * opt_pairs; i++)
				if (cs[i].sender)
					do_send(&cs[i]);
		n = epoll_wait(ep, evs, 64, 10);
		for (int i = 0; i < n; i++) {
			struct lconn *c = evs[i].data.ptr;
			if (c->sender)
				do_send(c);
			else
				do_recv(c);
		}
		/* TLS may hold decrypted bytes the kernel no longer shows. */
		if (opt_tls)
			for (int i = 0; i < 2 * opt_pairs; i++)
				if (!cs[i].sender && SSL_pending(cs[i].ssl) > 0)
					do_recv(&cs[i]);
	}
	if (opt_count) {
		uint64_t g = total(cs, 2 * opt_pairs, 0);
		printf("count mode: delivered %llu of %llu packets in %.2fs\n",
		    (unsigned long long)g,
		    (unsigned long long)opt_count * (unsigned long long)opt_pairs,
		    now() - t0);
		return g == (uint64_t)opt_count * (uint64_t)opt_pairs ? 0 : 1;
	}
	{
		double	 el = now() - tw;
		uint64_t got = total(cs, 2 * opt_pairs, 0) - got0;
		uint64_t sent = total(cs, 2 * opt_pairs, 1) - sent0;
		double	 scpu = proc_cpu(opt_pid) + proc_cpu(opt_pid2) - cpu0;
		double	 gcpu = self_cpu() - gcpu0;

		printf("mode=%s pairs=%d window=%d size=%d secs=%.2f delivered_pps=%.0f "
		    "offered_pps=%.0f loss_pct=%.1f server_cpu_pct=%.0f "
		    "server_cpu_us_per_pkt=%.3f gen_cpu_pct=%.0f\n",
		    opt_tls ? "tls" : "http", opt_pairs, opt_window, opt_size, el,
		    (double)got / el, (double)sent / el,
		    sent ? 100.0 * (1.0 - (double)got / (double)sent) : 0,
		    100 * scpu / el, got ? 1e6 * scpu / (double)got : 0,
		    100 * gcpu / el);
	}
	return 0;
}
