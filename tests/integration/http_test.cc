// SPDX-License-Identifier: ISC
// http_test.cc: the HTTP side of derpd (PROTOCOL.md 1 and 8).
#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "frame.h"
#include "harness.h"

namespace {

const char *const kDebugPages[] = { "/debug/", "/debug/vars", "/debug/varz",
	"/debug/check", "/debug/traffic", "/debug/nothing" };

// A network namespace of this test's own (the project's tests touch only
// loopback or namespaces they create): the calling thread moves into a
// fresh one whose lo also carries 10.77.0.1, so a client bound to that
// address reaches derpd on 127.0.0.1 as a non-loopback peer. derpd,
// started from this thread, lives there too. Needs root and ip(8); the
// destructor moves the thread back.
class PrivateNetns {
public:
	PrivateNetns()
	{
		if (geteuid() != 0 || (access("/usr/sbin/ip", X_OK) != 0 &&
		    access("/sbin/ip", X_OK) != 0)) {
			why = "needs root and ip(8) for a network namespace";
			return;
		}
		if ((old_ = open("/proc/thread-self/ns/net", O_RDONLY |
		    O_CLOEXEC)) == -1) {
			why = std::string("open ns: ") + strerror(errno);
			return;
		}
		if (unshare(CLONE_NEWNET) != 0) {
			why = std::string("unshare: ") + strerror(errno);
			return;
		}
		moved_ = true;
		if (system("ip link set lo up && ip addr add 10.77.0.1/32 dev lo")
		    != 0) {
			why = "ip: cannot set up lo in the namespace";
			return;
		}
		addr = "10.77.0.1";
	}
	~PrivateNetns()
	{
		if (moved_) {
			EXPECT_EQ(0, setns(old_, CLONE_NEWNET)) << strerror(errno);
		}
		if (old_ != -1)
			close(old_);
	}
	std::string addr;	// "" when the namespace could not be made
	std::string why;

private:
	int old_ = -1;
	bool moved_ = false;
};

struct RawResponse {
	int status = -1;
	std::string head, body;
};

// GET path from the local address src to derpd on 127.0.0.1:port, so
// derpd sees src (not loopback) as the client's address.
RawResponse
GetFrom(const std::string &src, int port, const std::string &path)
{
	RawResponse r;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {}, b = {};
	a.sin_family = AF_INET;
	inet_pton(AF_INET, src.c_str(), &a.sin_addr);
	b.sin_family = AF_INET;
	b.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, "127.0.0.1", &b.sin_addr);
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
	    connect(fd, (struct sockaddr *)&b, sizeof(b)) != 0) {
		if (fd >= 0)
			close(fd);
		return r;
	}
	std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
	if (write(fd, req.data(), req.size()) != (ssize_t)req.size()) {
		close(fd);
		return r;
	}
	std::string all;
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		all.append(buf, (size_t)n);
	close(fd);
	size_t e = all.find("\r\n\r\n");
	if (all.compare(0, 9, "HTTP/1.1 ") != 0 || e == std::string::npos)
		return r;
	r.status = atoi(all.c_str() + 9);
	r.head = all.substr(0, e + 2);
	r.body = all.substr(e + 4);
	return r;
}

// Set an environment variable for the daemons started in this scope.
struct ScopedEnv {
	std::string name;
	ScopedEnv(const std::string &n, const std::string &v) : name(n)
	{
		setenv(n.c_str(), v.c_str(), 1);
	}
	~ScopedEnv() { unsetenv(name.c_str()); }
};

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

	// Our own requests are TCP accepts, not DERP upgrades (derper's
	// derp_accepts).
	int64_t a = d.Metric("derpd_tcp_accepts{listener=\"main\"}");
	EXPECT_GE(a, 2);
	EXPECT_EQ(a + 1, d.Metric("derpd_tcp_accepts{listener=\"main\"}"));
	EXPECT_EQ(0, d.Metric("derp_accepts"));
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

namespace {

struct JsonDel {
	void operator()(cJSON *j) const { cJSON_Delete(j); }
};
using Json = std::unique_ptr<cJSON, JsonDel>;

double
Num(cJSON *o, const char *name)
{
	cJSON *v = o ? cJSON_GetObjectItem(o, name) : nullptr;
	EXPECT_TRUE(cJSON_IsNumber(v)) << name;
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

}  // namespace

TEST_F(HttpTest, DebugIndexVarsCheckTrafficFromLoopback)
{
	ASSERT_TRUE(d.Start());
	uint8_t priv[2][32], pub[2][32];
	Client c[2];
	for (int i = 0; i < 2; i++) {
		derpc_keygen(priv[i], pub[i]);
		derpc_opts o = d.Opts();
		o.priv = priv[i];
		std::string err;
		c[i] = d.Connect(o, &err);
		ASSERT_TRUE(c[i]) << err;
	}
	ASSERT_TRUE(SendRecv(c[0].get(), c[1].get(), "hello"));
	ASSERT_GE(d.WaitMetricAtLeast("derp_packets_sent", 1), 1);

	HttpResponse r = d.Get("/debug/");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(200, r.status);
	for (const char *p : { "/debug/vars", "/debug/varz", "/debug/check",
	    "/debug/traffic" })
		EXPECT_NE(std::string::npos, r.body.find(p)) << p;
	EXPECT_EQ("DENY", r.Header("x-frame-options"));
	EXPECT_NE(std::string::npos, r.body.find("<b>Uptime:</b> ")) << r.body;
	EXPECT_NE(std::string::npos, r.body.find("<b>Machine:</b> ")) << r.body;

	r = d.Get("/debug/vars");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(200, r.status);
	EXPECT_EQ("application/json; charset=utf-8", r.Header("content-type"));
	Json j(cJSON_Parse(r.body.c_str()));
	ASSERT_TRUE(cJSON_IsObject(j.get())) << r.body;
	cJSON *derp = cJSON_GetObjectItem(j.get(), "derp");
	ASSERT_TRUE(cJSON_IsObject(derp));
	// derper's meaning: DERP upgrades, not this request.
	EXPECT_EQ(2, Num(derp, "accepts"));
	EXPECT_EQ(2, Num(derp, "gauge_current_connections"));
	EXPECT_GE(Num(derp, "gauge_current_file_descriptors"), 5);
	EXPECT_TRUE(cJSON_IsNumber(cJSON_GetObjectItem(derp,
	    "average_queue_duration_ms")));
	EXPECT_GE(Num(cJSON_GetObjectItem(derp,
	    "counter_buffered_write_frames"), "+Inf"), 1);
	EXPECT_EQ(2, Num(derp, "gauge_clients_local"));
	EXPECT_GE(Num(derp, "packets_received"), 1);
	EXPECT_GE(Num(derp, "packets_sent"), 1);
	EXPECT_GE(Num(cJSON_GetObjectItem(derp, "counter_packets_received_kind"),
	    "other"), 1);
	EXPECT_TRUE(cJSON_IsString(cJSON_GetObjectItem(derp, "version")));
	EXPECT_EQ(0, Num(j.get(), "derp_websocket_accepts"));
	EXPECT_GE(Num(j.get(), "process_start_unix_time"), 1);
	EXPECT_GE(Num(j.get(), "counter_uptime_sec"), 0);
	EXPECT_EQ(0, Num(cJSON_GetObjectItem(cJSON_GetObjectItem(j.get(),
	    "stun"), "counter_requests"), "success"));
	cJSON *own = cJSON_GetObjectItem(j.get(), "derpd");
	cJSON *st = cJSON_GetObjectItem(own, "stats");
	EXPECT_GE(Num(st, "derpd_http_requests"), 2);
	EXPECT_EQ(2, Num(st, "derp_current_connections"));
	EXPECT_TRUE(cJSON_IsObject(cJSON_GetObjectItem(own, "drops")));
	EXPECT_TRUE(cJSON_IsObject(cJSON_GetObjectItem(own, "closes")));

	r = d.Get("/debug/check");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(200, r.status);
	EXPECT_EQ("derp.Server ConsistencyCheck okay", r.body);

	r = d.Get("/debug/traffic");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(200, r.status);
	EXPECT_EQ(0u, r.Header("content-type").find("text/plain"));
	for (int i = 0; i < 2; i++) {
		std::string key = "nodekey:" + Hex(pub[i], 32) + " 127.0.0.1:";
		size_t at = r.body.find(key);
		ASSERT_NE(std::string::npos, at) << r.body;
		std::string line = r.body.substr(at, r.body.find('\n', at) - at);
		EXPECT_NE(std::string::npos, line.find(i == 0 ? "pkts_in=1 " :
		    "pkts_out=1 ")) << line;
		EXPECT_NE(std::string::npos, line.find("drops=0")) << line;
	}
	EXPECT_EQ(2, std::count(r.body.begin(), r.body.end(), '\n'));

	// Gone from the summary once it leaves.
	c[1].reset();
	ASSERT_EQ(1, d.WaitMetric("derp_current_connections", 1));
	r = d.Get("/debug/traffic");
	EXPECT_EQ(std::string::npos, r.body.find(Hex(pub[1], 32)));
	EXPECT_EQ(200, d.Get("/debug/check").status);

	// /debug is sent to /debug/.
	r = d.Get("/debug");
	EXPECT_EQ(307, r.status);
	EXPECT_EQ("/debug/", r.Header("location"));
}

TEST_F(HttpTest, DebugRefusedFromAnotherAddressUnlessAllowed)
{
	PrivateNetns ns;
	if (ns.addr.empty())
		GTEST_SKIP() << ns.why;
	std::string src = ns.addr;
	{
		ASSERT_TRUE(d.Start());
		for (const char *p : kDebugPages) {
			RawResponse r = GetFrom(src, d.port, p);
			EXPECT_EQ(403, r.status) << p << " from " << src;
			EXPECT_EQ("debug access denied\n", r.body) << p;
		}
		RawResponse h = GetFrom(src, d.port, "/");
		EXPECT_EQ(200, h.status);
		EXPECT_EQ(std::string::npos, h.body.find("/debug/"));
		// The same daemon answers loopback.
		EXPECT_EQ(200, d.Get("/debug/vars").status);
		d.Stop();
	}
	{
		// TS_ALLOW_DEBUG_IP: that one address.
		ScopedEnv e("TS_ALLOW_DEBUG_IP", src);
		Derpd d2;
		ASSERT_TRUE(d2.Start());
		for (const char *p : { "/debug/", "/debug/vars", "/debug/varz",
		    "/debug/check", "/debug/traffic" })
			EXPECT_EQ(200, GetFrom(src, d2.port, p).status) << p;
		EXPECT_NE(std::string::npos,
		    GetFrom(src, d2.port, "/").body.find("/debug/"));
		d2.Stop();
	}
	{
		// Another address, or a prefix, is not this one.
		ScopedEnv e("TS_ALLOW_DEBUG_IP", src + "/32");
		Derpd d3;
		ASSERT_TRUE(d3.Start());
		EXPECT_EQ(403, GetFrom(src, d3.port, "/debug/vars").status);
		d3.Stop();
	}
	{
		ScopedEnv e("TS_DEBUG_TRUSTED_CIDRS", "198.51.100.0/24, " + src +
		    "/32");
		Derpd d4;
		ASSERT_TRUE(d4.Start());
		EXPECT_EQ(200, GetFrom(src, d4.port, "/debug/vars").status);
		d4.Stop();
	}
	{
		ScopedEnv e("TS_DEBUG_TRUSTED_CIDRS", "198.51.100.0/24,nope");
		Derpd d5;
		EXPECT_NE(0, d5.RunToExit({}, 5000));
	}
}

TEST_F(HttpTest, HomePageBrowserHeaders)
{
	ASSERT_TRUE(d.Start());
	for (const char *p : { "/", "/anything", "/robots.txt" }) {
		SCOPED_TRACE(p);
		HttpResponse r = d.Get(p);
		ASSERT_TRUE(r.ok) << r.err;
		EXPECT_EQ(200, r.status);
		EXPECT_EQ("max-age=63072000; includeSubDomains",
		    r.Header("strict-transport-security"));
		EXPECT_EQ("default-src 'self'; frame-ancestors 'none'; "
		    "form-action 'self'; base-uri 'self'; "
		    "block-all-mixed-content; object-src 'none'",
		    r.Header("content-security-policy"));
		EXPECT_EQ("DENY", r.Header("x-frame-options"));
		EXPECT_EQ("nosniff", r.Header("x-content-type-options"));
	}
	// Not on the probe or the DERP upgrade answer.
	EXPECT_FALSE(d.Get("/derp/probe").Has("x-frame-options"));
	EXPECT_FALSE(d.Get("/derp").Has("content-security-policy"));
}

TEST_F(HttpTest, HomePageBrowserHeadersOnTls)
{
	ASSERT_TRUE(d.Start({ "--certmode=manual", "--hostname=127.0.0.1",
	    "--certdir=" + d.dir + "/certs" }));
	ASSERT_TRUE(d.tls);
	HttpResponse r = d.Get("/");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(200, r.status);
	EXPECT_EQ("max-age=63072000; includeSubDomains",
	    r.Header("strict-transport-security"));
	EXPECT_EQ("DENY", r.Header("x-frame-options"));
	EXPECT_EQ("nosniff", r.Header("x-content-type-options"));
	EXPECT_NE("", r.Header("content-security-policy"));
}
