// SPDX-License-Identifier: ISC
// http_test.cc: the HTTP side of derpd (PROTOCOL.md 1 and 8).
#include <chrono>
#include <cstring>
#include <string>

#include <unistd.h>

#include "frame.h"
#include "harness.h"

namespace {

class HttpTest : public DerpdTest {};

TEST_F(HttpTest, ProbeAndLatencyCheck)
{
	ASSERT_TRUE(d.Start());
	for (const char *path : { "/derp/probe", "/derp/latency-check" }) {
		SCOPED_TRACE(path);
		HttpResponse r = d.Get(path);
		ASSERT_TRUE(r.ok) << r.err;
		EXPECT_EQ(200, r.status);
		EXPECT_EQ("*", r.Header("access-control-allow-origin"));
		EXPECT_TRUE(r.closed);

		r = d.Get(path, "", "HEAD");
		ASSERT_TRUE(r.ok) << r.err;
		EXPECT_EQ(200, r.status);
		EXPECT_EQ("*", r.Header("access-control-allow-origin"));
		EXPECT_EQ("", r.body);

		r = d.Get(path, "Content-Length: 0\r\n", "POST");
		ASSERT_TRUE(r.ok) << r.err;
		EXPECT_EQ(405, r.status);
	}
}

TEST_F(HttpTest, PlainGetDerpIs426)
{
	ASSERT_TRUE(d.Start());
	HttpResponse r = d.Get("/derp");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(426, r.status);
	EXPECT_EQ("DERP requires connection upgrade\n", r.body);
	EXPECT_EQ("text/plain; charset=utf-8", r.Header("content-type"));

	// A comma-separated token list is not parsed: still 426.
	r = d.Get("/derp", "Connection: Upgrade\r\nUpgrade: h2c, DERP\r\n");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(426, r.status);
	EXPECT_TRUE(d.WaitLog("weird upgrade", 2000));

	// The query is ignored: /derp?x=1 is still the DERP handler.
	r = d.Get("/derp?x=1");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(426, r.status);
}

TEST_F(HttpTest, WebsocketWithoutDerpSubprotocolIsRawDerp)
{
	ASSERT_TRUE(d.Start());
	for (const char *up : { "websocket", "WebSocket" }) {
		SCOPED_TRACE(up);
		derpc_opts o = d.Opts();
		o.upgrade = up;
		std::string err, si;
		Client c = d.Connect(o, &err, &si);
		ASSERT_TRUE(c) << err;
		EXPECT_EQ(0, strncmp(derpc_http_head(c.get()),
		    "HTTP/1.1 101 Switching Protocols\r\n", 34));
		EXPECT_EQ("{\"version\":2}", si);
		// And it relays.
		Client peer = d.Connect(&err);
		ASSERT_TRUE(peer) << err;
		EXPECT_TRUE(SendRecv(c.get(), peer.get(), "legacy"));
	}
}

TEST_F(HttpTest, Generate204Challenge)
{
	ASSERT_TRUE(d.Start());
	const std::string cc = "no-cache, no-store, must-revalidate, "
	    "no-transform, max-age=0";

	HttpResponse r = d.Get("/generate_204");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(204, r.status);
	EXPECT_EQ(cc, r.Header("cache-control"));
	EXPECT_FALSE(r.Has("x-tailscale-response"));
	EXPECT_EQ("", r.body);

	r = d.Get("/generate_204?t=123",
	    "X-Tailscale-Challenge: ts_127.0.0.1\r\n");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(204, r.status);
	EXPECT_EQ(cc, r.Header("cache-control"));
	EXPECT_EQ("response ts_127.0.0.1", r.Header("x-tailscale-response"));

	// Every allowed character class, exactly 64 characters.
	std::string ok64 = "AZaz09._:-";
	while (ok64.size() < 64)
		ok64 += 'x';
	r = d.Get("/generate_204", "X-Tailscale-Challenge: " + ok64 + "\r\n");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ("response " + ok64, r.Header("x-tailscale-response"));

	// 65 characters, a bad character, empty: no response header.
	for (const std::string &bad : { ok64 + "y", std::string("ab/cd"),
	    std::string("a+b"), std::string("") }) {
		SCOPED_TRACE(bad);
		r = d.Get("/generate_204", "X-Tailscale-Challenge: " + bad +
		    "\r\n");
		ASSERT_TRUE(r.ok) << r.err;
		EXPECT_EQ(204, r.status);
		EXPECT_EQ(cc, r.Header("cache-control"));
		EXPECT_FALSE(r.Has("x-tailscale-response"));
	}
	// A very long challenge (over the parser's value buffer).
	r = d.Get("/generate_204", "X-Tailscale-Challenge: " +
	    std::string(600, 'a') + "\r\n");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(204, r.status);
	EXPECT_FALSE(r.Has("x-tailscale-response"));
}

TEST_F(HttpTest, RobotsTxt)
{
	ASSERT_TRUE(d.Start());
	HttpResponse r = d.Get("/robots.txt");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(200, r.status);
	EXPECT_EQ("User-agent: *\nDisallow: /\n", r.body);
	EXPECT_EQ("max-age=63072000; includeSubDomains",
	    r.Header("strict-transport-security"));
	EXPECT_EQ("DENY", r.Header("x-frame-options"));
	EXPECT_EQ("nosniff", r.Header("x-content-type-options"));
	EXPECT_EQ("default-src 'self'; frame-ancestors 'none'; form-action "
	    "'self'; base-uri 'self'; block-all-mixed-content; object-src "
	    "'none'", r.Header("content-security-policy"));
}

TEST_F(HttpTest, UnknownPathIsHomePage)
{
	ASSERT_TRUE(d.Start());
	for (const char *path : { "/", "/nope", "/derp/", "/derpx",
	    "/index.html?q=1" }) {
		SCOPED_TRACE(path);
		HttpResponse r = d.Get(path);
		ASSERT_TRUE(r.ok) << r.err;
		EXPECT_EQ(200, r.status);
		EXPECT_EQ("text/html; charset=utf-8", r.Header("content-type"));
		EXPECT_NE(std::string::npos, r.body.find("DERP"));
		EXPECT_EQ(std::to_string(r.body.size()),
		    r.Header("content-length"));
	}
	// Any method.
	HttpResponse r = d.Get("/x", "Content-Length: 0\r\n", "POST");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(200, r.status);
}

TEST_F(HttpTest, HomeBlank)
{
	ASSERT_TRUE(d.Start({ "--home=blank" }));
	HttpResponse r = d.Get("/");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(200, r.status);
	EXPECT_EQ("text/html; charset=utf-8", r.Header("content-type"));
	EXPECT_EQ("", r.body);
}

TEST_F(HttpTest, HomeRedirect)
{
	ASSERT_TRUE(d.Start({ "--home=https://x" }));
	for (const char *path : { "/", "/other" }) {
		HttpResponse r = d.Get(path);
		ASSERT_TRUE(r.ok) << r.err;
		EXPECT_EQ(302, r.status);
		EXPECT_EQ("https://x", r.Header("location"));
	}
}

TEST_F(HttpTest, HomeInvalidIsFatal)
{
	int st = d.RunToExit({ "--home=ftp://x" }, 5000);
	EXPECT_NE(0, st);
	EXPECT_NE(std::string::npos, d.Log().find("-home")) << d.Log();
}

TEST_F(HttpTest, DerpDisabled)
{
	ASSERT_TRUE(d.Start({ "--derp=false" }));
	HttpResponse r = d.Get("/derp");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(404, r.status);
	EXPECT_EQ("derp server disabled\n", r.body);

	// Even with a proper upgrade request.
	r = d.Get("/derp", "Connection: Upgrade\r\nUpgrade: DERP\r\n");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(404, r.status);

	std::string err;
	Client c = d.Connect(&err);
	EXPECT_FALSE(c);

	r = d.Get("/");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(200, r.status);
	EXPECT_NE(std::string::npos, r.body.find("Status: disabled"));
}

TEST_F(HttpTest, DebugVarzFromLoopback)
{
	ASSERT_TRUE(d.Start());
	HttpResponse r = d.Get("/debug/varz");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(200, r.status);
	EXPECT_EQ(0u, r.Header("content-type").find("text/plain"));
	EXPECT_NE(std::string::npos, r.body.find("\nderp_accepts "));
	EXPECT_NE(std::string::npos, r.body.find(
	    "derp_packets_dropped{reason=\"queue_head\",kind=\"other\"} 0\n"));
	EXPECT_EQ(std::to_string(r.body.size()), r.Header("content-length"));

	// Our own requests are counted.
	int64_t a = d.Metric("derp_accepts");
	EXPECT_GE(a, 2);
	EXPECT_EQ(a + 1, d.Metric("derp_accepts"));
	EXPECT_EQ(0, d.Metric("derp_current_connections"));

	// A forwarded request is not trusted even from loopback.
	r = d.Get("/debug/varz", "X-Forwarded-For: 1.2.3.4\r\n");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(403, r.status);
	EXPECT_EQ("debug access denied\n", r.body);
}

TEST_F(HttpTest, OversizeHeadIs431AndCounted)
{
	ASSERT_TRUE(d.Start());
	const std::string metric =
	    "derpd_connections_closed{reason=\"http_head_too_large\"}";
	EXPECT_EQ(0, d.Metric(metric));
	// 16 KiB with no end of head: one byte past what a head may be.
	std::string req = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ";
	req += std::string(16384 - req.size(), 'a');
	HttpResponse r = d.Http(req);
	ASSERT_TRUE(r.ok) << r.err << " head: " << r.head;
	EXPECT_EQ(431, r.status);
	EXPECT_TRUE(r.closed);
	EXPECT_EQ(1, d.WaitMetric(metric, 1));

	// Somewhat more than 16 KiB, sent in one go.
	req += std::string(4000, 'b');
	r = d.Http(req);
	ASSERT_TRUE(r.ok) << r.err << " head: " << r.head;
	EXPECT_EQ(431, r.status);
	EXPECT_TRUE(r.closed);
	EXPECT_EQ(2, d.WaitMetric(metric, 2));

	// A complete head just under the limit is fine.
	std::string big = "X-Pad: " + std::string(16000, 'c') + "\r\n";
	r = d.Get("/derp/probe", big);
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(200, r.status);
}

TEST_F(HttpTest, MalformedRequestIs400AndCounted)
{
	ASSERT_TRUE(d.Start());
	const std::string metric =
	    "derpd_connections_closed{reason=\"http_bad_request\"}";
	EXPECT_EQ(0, d.Metric(metric));
	const char *bad[] = {
		"GARBAGE\r\n\r\n",
		"GET /\r\n\r\n",
		"GET / HTTP/2.0\r\n\r\n",
		"GET / HTTP/1.1\r\nNo colon here\r\n\r\n",
		"G(T / HTTP/1.1\r\n\r\n",
	};
	int n = 0;
	for (const char *req : bad) {
		SCOPED_TRACE(req);
		HttpResponse r = d.Http(req);
		ASSERT_TRUE(r.ok) << r.err;
		EXPECT_EQ(400, r.status);
		EXPECT_TRUE(r.closed);
		n++;
		EXPECT_EQ(n, d.WaitMetric(metric, n));
	}
	// Still serving.
	HttpResponse r = d.Get("/derp/probe");
	EXPECT_EQ(200, r.status);
}

TEST_F(HttpTest, SlowlorisIsCutOffAndOthersKeepWorking)
{
	ASSERT_TRUE(d.Start({ "--handshake-timeout=1s" }));
	const std::string metric =
	    "derpd_connections_closed{reason=\"http_head_timeout\"}";
	std::string err;
	Client a = d.Connect(&err);
	ASSERT_TRUE(a) << err;
	Client b = d.Connect(&err);
	ASSERT_TRUE(b) << err;
	Client slow = d.Dial(&err);
	ASSERT_TRUE(slow) << err;

	auto t0 = Clock::now();
	const std::string part = "GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
	    "X-Slow: ";
	ASSERT_EQ(DERPC_OK, derpc_write_raw(slow.get(), part.data(),
	    part.size()));
	bool closed = false;
	int i = 0;
	// One byte every 200 ms; the connection must be closed by ~3 s.
	while (MsSince(t0) < 4000) {
		char ch = 'a';
		int rc = derpc_write_raw(slow.get(), &ch, 1);
		if (rc != DERPC_OK) {
			closed = true;
			break;
		}
		// Meanwhile DERP clients keep working.
		EXPECT_TRUE(SendRecv(a.get(), b.get(),
		    "while slow " + std::to_string(i++)));
		derpc_frame f;
		rc = derpc_recv_frame(slow.get(), &f, 200);
		if (rc == DERPC_EOF) {
			closed = true;
			break;
		}
		ASSERT_EQ(DERPC_TIMEOUT, rc) << "unexpected reply to a "
		    "partial head";
	}
	int64_t took = MsSince(t0);
	EXPECT_TRUE(closed) << "slow client still open after " << took <<
	    " ms";
	EXPECT_LT(took, 3500);
	EXPECT_GE(took, 800);
	EXPECT_EQ(1, d.WaitMetric(metric, 1));
	EXPECT_TRUE(SendRecv(b.get(), a.get(), "after"));
	// Established DERP connections are not subject to the timeout.
	EXPECT_EQ(2, d.Metric("derp_current_connections"));
}

}  // namespace
