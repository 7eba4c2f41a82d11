// SPDX-License-Identifier: ISC
// http_test.cc: request-head framing, parsing and response building.
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "http.h"

namespace {

// The request Go's derphttp client writes (PROTOCOL.md 1.2), fast start.
const std::string kDerpReq =
    "GET /derp HTTP/1.1\r\n"
    "Host: derp.example.com:8443\r\n"
    "User-Agent: Go-http-client/1.1\r\n"
    "Connection: Upgrade\r\n"
    "Derp-Fast-Start: 1\r\n"
    "Ideal-Node: 900a\r\n"
    "Upgrade: DERP\r\n"
    "\r\n";

// A ClientInfo frame header and some box bytes, pipelined after the head.
const std::string kPipelined("\x02\x00\x00\x00\x50\r\n\r\nbox", 12);

enum http_status
Parse(const std::string &head, struct http_req *req)
{
	return http_parse_head(head.data(), head.size(), req);
}

struct http_req
ParseOk(const std::string &head)
{
	struct http_req req;
	EXPECT_EQ(Parse(head, &req), HTTP_OK) << head;
	return req;
}

struct http_req
WithChallenge(const std::string &c)
{
	struct http_req req;
	memset(&req, 0, sizeof(req));
	EXPECT_LT(c.size(), sizeof(req.hr_challenge));
	memcpy(req.hr_challenge, c.data(), c.size());
	return req;
}

}  // namespace

// What a mesh link reads from its peer's answer to the upgrade.
TEST(Http, ParseStatus)
{
	auto st = [](const std::string &s) {
		return http_parse_status(s.data(), s.size());
	};
	EXPECT_EQ(101, st("HTTP/1.1 101 Switching Protocols\r\n"));
	EXPECT_EQ(101, st("HTTP/1.0 101\r\n"));
	EXPECT_EQ(101, st("HTTP/1.1 101"));
	EXPECT_EQ(404, st("HTTP/1.1 404 Not Found\r\n"));
	EXPECT_EQ(-1, st("HTTP/1.1 1010 x"));
	EXPECT_EQ(-1, st("HTTP/1.1 10"));
	EXPECT_EQ(-1, st("HTTP/2 101 x\r\n"));
	EXPECT_EQ(-1, st("HTTP/1.1 0a1 x"));
	EXPECT_EQ(-1, st("HTTP/1.1 099 x"));
	EXPECT_EQ(-1, st("http/1.1 101 x"));
	EXPECT_EQ(-1, st(""));
}

TEST(Http, HeadEndWholeBuffer)
{
	std::string buf = kDerpReq + kPipelined;
	size_t scan = 0, head_len = 0;
	ASSERT_EQ(http_head_end(buf.data(), buf.size(), &scan, &head_len),
	    HTTP_OK);
	EXPECT_EQ(head_len, kDerpReq.size());
	// The bytes after the head are left for the DERP state machine.
	EXPECT_EQ(buf.substr(head_len), kPipelined);
}

TEST(Http, HeadEndByteByByte)
{
	std::string buf = kDerpReq + kPipelined;
	size_t scan = 0, head_len = 0, prev_scan = 0;
	for (size_t n = 0; n <= buf.size(); n++) {
		enum http_status st = http_head_end(buf.data(), n, &scan,
		    &head_len);
		if (n < kDerpReq.size()) {
			ASSERT_EQ(st, HTTP_NEED_MORE) << n;
			// The scan offset only moves forward and never
			// claims bytes it has not seen, so the total work
			// of a slow head stays linear.
			EXPECT_GE(scan, prev_scan) << n;
			EXPECT_LE(scan, n) << n;
			EXPECT_GE(scan + 3, n) << n;
			prev_scan = scan;
		} else {
			ASSERT_EQ(st, HTTP_OK) << n;
			EXPECT_EQ(head_len, kDerpReq.size()) << n;
			break;
		}
	}
}

TEST(Http, HeadEndTerminatorSplitAnywhere)
{
	// Two reads, split at every offset (including inside "\r\n\r\n").
	std::string buf = kDerpReq + kPipelined;
	for (size_t k = 0; k <= buf.size(); k++) {
		size_t scan = 0, head_len = 0;
		enum http_status st = http_head_end(buf.data(), k, &scan,
		    &head_len);
		if (k < kDerpReq.size()) {
			ASSERT_EQ(st, HTTP_NEED_MORE) << k;
			st = http_head_end(buf.data(), buf.size(), &scan,
			    &head_len);
		}
		ASSERT_EQ(st, HTTP_OK) << k;
		EXPECT_EQ(head_len, kDerpReq.size()) << k;
	}
}

TEST(Http, HeadEndFirstTerminatorWins)
{
	std::string buf = "GET / HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n";
	size_t scan = 0, head_len = 0;
	ASSERT_EQ(http_head_end(buf.data(), buf.size(), &scan, &head_len),
	    HTTP_OK);
	EXPECT_EQ(head_len, 18u);
}

TEST(Http, HeadEndNeedMoreOnLoneNewlines)
{
	std::string buf = "GET / HTTP/1.1\r\nHost: x\r\n\n\r";
	size_t scan = 0, head_len = 0;
	EXPECT_EQ(http_head_end(buf.data(), buf.size(), &scan, &head_len),
	    HTTP_NEED_MORE);
	scan = 0;
	EXPECT_EQ(http_head_end("", 0, &scan, &head_len), HTTP_NEED_MORE);
}

TEST(Http, HeadEndTooLarge)
{
	std::string big(HTTP_MAX_HEAD, 'a');
	size_t scan = 0, head_len = 0;
	EXPECT_EQ(http_head_end(big.data(), HTTP_MAX_HEAD - 1, &scan,
	    &head_len), HTTP_NEED_MORE);
	EXPECT_EQ(http_head_end(big.data(), HTTP_MAX_HEAD, &scan, &head_len),
	    HTTP_TOO_LARGE);
	scan = 0;
	EXPECT_EQ(http_head_end(big.data(), HTTP_MAX_HEAD, &scan, &head_len),
	    HTTP_TOO_LARGE);

	// A head of exactly HTTP_MAX_HEAD bytes still fits ...
	std::string edge(HTTP_MAX_HEAD - 4, 'a');
	edge += "\r\n\r\nmore";
	scan = 0;
	ASSERT_EQ(http_head_end(edge.data(), edge.size(), &scan, &head_len),
	    HTTP_OK);
	EXPECT_EQ(head_len, (size_t)HTTP_MAX_HEAD);
	// ... one byte more does not.
	std::string over(HTTP_MAX_HEAD - 3, 'a');
	over += "\r\n\r\n";
	scan = 0;
	EXPECT_EQ(http_head_end(over.data(), over.size(), &scan, &head_len),
	    HTTP_TOO_LARGE);
}

TEST(Http, HeadEndTooLargeByteByByte)
{
	std::string big(HTTP_MAX_HEAD + 10, 'a');
	size_t scan = 0, head_len = 0;
	for (size_t n = 1; n <= big.size(); n++) {
		enum http_status st = http_head_end(big.data(), n, &scan,
		    &head_len);
		if (n < HTTP_MAX_HEAD) {
			ASSERT_EQ(st, HTTP_NEED_MORE) << n;
		} else {
			ASSERT_EQ(st, HTTP_TOO_LARGE) << n;
		}
	}
}

TEST(Http, ParseDerphttpRequest)
{
	struct http_req req = ParseOk(kDerpReq);
	EXPECT_STREQ(req.hr_method, "GET");
	EXPECT_STREQ(req.hr_path, "/derp");
	EXPECT_STREQ(req.hr_query, "");
	EXPECT_STREQ(req.hr_target, "/derp");
	EXPECT_EQ(req.hr_minor, 1);
	EXPECT_STREQ(req.hr_host, "derp.example.com:8443");
	EXPECT_STREQ(req.hr_upgrade, "DERP");
	EXPECT_STREQ(req.hr_fast_start, "1");
	EXPECT_STREQ(req.hr_ideal_node, "900a");
	EXPECT_STREQ(req.hr_challenge, "");
	EXPECT_STREQ(req.hr_ws_protocol, "");
	EXPECT_FALSE(req.hr_forwarded);
	EXPECT_FALSE(req.hr_challenge_long);
}

TEST(Http, ParseUsesOnlyHeadLen)
{
	std::string buf = kDerpReq + kPipelined;
	size_t scan = 0, head_len = 0;
	ASSERT_EQ(http_head_end(buf.data(), buf.size(), &scan, &head_len),
	    HTTP_OK);
	struct http_req req;
	ASSERT_EQ(http_parse_head(buf.data(), head_len, &req), HTTP_OK);
	EXPECT_STREQ(req.hr_upgrade, "DERP");
}

TEST(Http, ParseClassicRequestWithoutFastStart)
{
	struct http_req req = ParseOk("GET /derp HTTP/1.1\r\n"
	    "Host: derp.example.com\r\n"
	    "User-Agent: Go-http-client/1.1\r\n"
	    "Connection: Upgrade\r\n"
	    "Upgrade: DERP\r\n\r\n");
	EXPECT_STREQ(req.hr_fast_start, "");
	EXPECT_STREQ(req.hr_ideal_node, "");
	EXPECT_STREQ(req.hr_host, "derp.example.com");
}

TEST(Http, HeaderNamesCaseInsensitiveValuesTrimmed)
{
	struct http_req req = ParseOk("POST /derp HTTP/1.0\r\n"
	    "hOsT:h\r\n"
	    "uPgRaDe: \t websocket \t\r\n"
	    "derp-fast-start:   1  \r\n"
	    "IDEAL-NODE: node-b\r\n"
	    "sec-websocket-protocol: derp\r\n"
	    "x-tailscale-challenge: ts_1.2.3.4\r\n"
	    "x-forwarded-for: 10.0.0.1\r\n\r\n");
	EXPECT_STREQ(req.hr_method, "POST");
	EXPECT_EQ(req.hr_minor, 0);
	EXPECT_STREQ(req.hr_host, "h");
	EXPECT_STREQ(req.hr_upgrade, "websocket");
	EXPECT_STREQ(req.hr_fast_start, "1");
	EXPECT_STREQ(req.hr_ideal_node, "node-b");
	EXPECT_STREQ(req.hr_ws_protocol, "derp");
	EXPECT_STREQ(req.hr_challenge, "ts_1.2.3.4");
	EXPECT_TRUE(req.hr_forwarded);
	EXPECT_TRUE(http_challenge_ok(&req));
}

TEST(Http, FirstValueOnly)
{
	struct http_req req = ParseOk("GET /derp HTTP/1.1\r\n"
	    "Upgrade: websocket\r\n"
	    "Derp-Fast-Start: 0\r\n"
	    "Ideal-Node: first\r\n"
	    "Host: a\r\n"
	    "Upgrade: DERP\r\n"
	    "Derp-Fast-Start: 1\r\n"
	    "Ideal-Node: second\r\n"
	    "Host: b\r\n"
	    "X-Tailscale-Challenge: one\r\n"
	    "X-Tailscale-Challenge: two\r\n\r\n");
	EXPECT_STREQ(req.hr_upgrade, "websocket");
	EXPECT_STREQ(req.hr_fast_start, "0");
	EXPECT_STREQ(req.hr_ideal_node, "first");
	EXPECT_STREQ(req.hr_host, "a");
	EXPECT_STREQ(req.hr_challenge, "one");
}

// Go's Header.Get returns the first value even when it is empty, so an
// empty first Upgrade means 426 and an empty first Derp-Fast-Start means
// no fast start (PROTOCOL.md 1.3: "first value"), and an empty first
// X-Tailscale-Challenge means no X-Tailscale-Response.
TEST(Http, EmptyFirstValueStillWins)
{
	struct http_req req = ParseOk("GET /derp HTTP/1.1\r\n"
	    "Upgrade:\r\n"
	    "Derp-Fast-Start: \r\n"
	    "Ideal-Node:\r\n"
	    "X-Tailscale-Challenge:\r\n"
	    "Upgrade: DERP\r\n"
	    "Derp-Fast-Start: 1\r\n"
	    "Ideal-Node: second\r\n"
	    "X-Tailscale-Challenge: two\r\n\r\n");
	EXPECT_STREQ(req.hr_upgrade, "");
	EXPECT_STREQ(req.hr_fast_start, "");
	EXPECT_STREQ(req.hr_ideal_node, "");
	EXPECT_STREQ(req.hr_challenge, "");
	EXPECT_FALSE(http_challenge_ok(&req));
}

TEST(Http, QuerySplit)
{
	struct http_req req = ParseOk("GET /derp/probe?a=1&b=c%20d HTTP/1.1"
	    "\r\n\r\n");
	EXPECT_STREQ(req.hr_path, "/derp/probe");
	EXPECT_STREQ(req.hr_query, "a=1&b=c%20d");
	EXPECT_STREQ(req.hr_target, "/derp/probe?a=1&b=c%20d");

	req = ParseOk("GET /generate_204? HTTP/1.1\r\n\r\n");
	EXPECT_STREQ(req.hr_path, "/generate_204");
	EXPECT_STREQ(req.hr_query, "");

	req = ParseOk("GET /bootstrap-dns?q=a?b HTTP/1.1\r\n\r\n");
	EXPECT_STREQ(req.hr_path, "/bootstrap-dns");
	EXPECT_STREQ(req.hr_query, "q=a?b");

	req = ParseOk("GET /derp?x HTTP/1.1\r\nUpgrade: DERP\r\n\r\n");
	EXPECT_STREQ(req.hr_path, "/derp");
	EXPECT_STREQ(req.hr_upgrade, "DERP");
}

TEST(Http, HeaderValueMayBeEmptyAndHaveColons)
{
	struct http_req req = ParseOk("GET / HTTP/1.1\r\n"
	    "X-Empty:\r\n"
	    "Host: [::1]:3340\r\n\r\n");
	EXPECT_STREQ(req.hr_host, "[::1]:3340");
}

TEST(Http, LongValueIsCut)
{
	std::string v(1000, 'v');
	struct http_req req = ParseOk("GET / HTTP/1.1\r\nHost: " + v +
	    "\r\n\r\n");
	EXPECT_EQ(strlen(req.hr_host), sizeof(req.hr_host) - 1);
}

TEST(Http, MalformedRequestLines)
{
	const char *bad[] = {
		"\r\n\r\n",
		"GET\r\n\r\n",
		"GET /derp\r\n\r\n",
		"GET /derp HTTP/1.1 \r\n\r\n",
		"GET  /derp HTTP/1.1\r\n\r\n",
		" GET /derp HTTP/1.1\r\n\r\n",
		"GET /derp HTTP/2.0\r\n\r\n",
		"GET /derp HTTP/1.\r\n\r\n",
		"GET /derp HTTP/1.11\r\n\r\n",
		"GET /derp HTTP/1.x\r\n\r\n",
		"GET /derp http/1.1\r\n\r\n",
		"GET /derp HTTP/1.1x\r\n\r\n",
		"G@T /derp HTTP/1.1\r\n\r\n",
		"G(T /derp HTTP/1.1\r\n\r\n",
		"GETGETGETGETGETGE /derp HTTP/1.1\r\n\r\n",
		"GET /de\x01rp HTTP/1.1\r\n\r\n",
		"GET /de\x7frp HTTP/1.1\r\n\r\n",
		"GET /derp HTTP/1.1\n\r\n",
		"GET /derp HTTP/1.1\nHost: x\r\n\r\n",
	};
	for (const char *b : bad) {
		struct http_req req;
		EXPECT_EQ(Parse(b, &req), HTTP_BAD) << b;
	}
	std::string longtarget = "GET /" + std::string(HTTP_PATH_MAX, 'p') +
	    " HTTP/1.1\r\n\r\n";
	struct http_req req;
	EXPECT_EQ(Parse(longtarget, &req), HTTP_BAD);
}

TEST(Http, MalformedHeaders)
{
	const char *bad[] = {
		"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
		"GET / HTTP/1.1\r\n: empty name\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
		"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nHo(st: x\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\x01" "b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\n\r\n",
	};
	for (const char *b : bad) {
		struct http_req req;
		EXPECT_EQ(Parse(b, &req), HTTP_BAD) << b;
	}
}

// A NUL byte is no token character (RFC 9110 5.6.2); Go answers 400.
// Accepting it would let "GET\0x" pass as the method "GET".
TEST(Http, NulInMethodOrHeaderNameRejected)
{
	static const char m[] = "GET\0X /derp HTTP/1.1\r\n\r\n";
	static const char h[] = "GET /derp HTTP/1.1\r\nUpgrade\0X: DERP\r\n"
	    "\r\n";
	struct http_req req;
	EXPECT_EQ(Parse(std::string(m, sizeof(m) - 1), &req), HTTP_BAD);
	EXPECT_EQ(Parse(std::string(h, sizeof(h) - 1), &req), HTTP_BAD);
}

TEST(Http, ChallengeRules)
{
	struct http_req r;
	r = WithChallenge("ts_100.64.0.1");
	EXPECT_TRUE(http_challenge_ok(&r));
	r = WithChallenge("AZaz09._:-");
	EXPECT_TRUE(http_challenge_ok(&r));
	r = WithChallenge("x");
	EXPECT_TRUE(http_challenge_ok(&r));
	r = WithChallenge(std::string(64, 'c'));
	EXPECT_TRUE(http_challenge_ok(&r));

	r = WithChallenge("");
	EXPECT_FALSE(http_challenge_ok(&r));
	r = WithChallenge(std::string(65, 'c'));
	EXPECT_FALSE(http_challenge_ok(&r));
	const char *bad[] = { "a b", "a/b", "a+b", "a=b", "a\"b", "<x>", "a,b",
	    "\xc3\xa4", "a\tb", "a%20", "a;b" };
	for (const char *b : bad) {
		r = WithChallenge(b);
		EXPECT_FALSE(http_challenge_ok(&r)) << b;
	}
	r = WithChallenge("ok");
	r.hr_challenge_long = true;
	EXPECT_FALSE(http_challenge_ok(&r));
}

TEST(Http, ChallengeFromParsedHead)
{
	struct http_req req = ParseOk("GET /generate_204 HTTP/1.1\r\n"
	    "X-Tailscale-Challenge: " + std::string(64, 'z') + "\r\n\r\n");
	EXPECT_TRUE(http_challenge_ok(&req));
	req = ParseOk("GET /generate_204 HTTP/1.1\r\n"
	    "X-Tailscale-Challenge: " + std::string(65, 'z') + "\r\n\r\n");
	EXPECT_FALSE(http_challenge_ok(&req));
	req = ParseOk("GET /generate_204 HTTP/1.1\r\n"
	    "X-Tailscale-Challenge: " + std::string(600, 'z') + "\r\n\r\n");
	EXPECT_TRUE(req.hr_challenge_long);
	EXPECT_FALSE(http_challenge_ok(&req));
	req = ParseOk("GET /generate_204 HTTP/1.1\r\n\r\n");
	EXPECT_FALSE(http_challenge_ok(&req));
}

TEST(Http, BuildResponseLayout)
{
	char out[512];
	const char body[] = "DERP requires connection upgrade\n";
	size_t n = http_build_response(out, sizeof(out), 426, nullptr,
	    "text/plain; charset=utf-8", body, strlen(body), false);
	std::string want = "HTTP/1.1 426 Upgrade Required\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: 33\r\n"
	    "Connection: close\r\n"
	    "\r\n" + std::string(body);
	ASSERT_EQ(n, want.size());
	EXPECT_EQ(std::string(out, n), want);
}

TEST(Http, BuildResponseExtraHeadersNoBody)
{
	char out[512];
	size_t n = http_build_response(out, sizeof(out), 204,
	    "X-Tailscale-Response: response ts_1.2.3.4\r\n"
	    "Cache-Control: no-cache\r\n", nullptr, nullptr, 0, false);
	std::string want = "HTTP/1.1 204 No Content\r\n"
	    "X-Tailscale-Response: response ts_1.2.3.4\r\n"
	    "Cache-Control: no-cache\r\n"
	    "Content-Length: 0\r\n"
	    "Connection: close\r\n"
	    "\r\n";
	ASSERT_EQ(n, want.size());
	EXPECT_EQ(std::string(out, n), want);
}

TEST(Http, BuildResponseHeadOnly)
{
	char out[512];
	size_t n = http_build_response(out, sizeof(out), 200, nullptr,
	    "text/html", "<html></html>", 13, true);
	std::string want = "HTTP/1.1 200 OK\r\n"
	    "Content-Type: text/html\r\n"
	    "Content-Length: 13\r\n"
	    "Connection: close\r\n"
	    "\r\n";
	ASSERT_EQ(n, want.size());
	EXPECT_EQ(std::string(out, n), want);
}

TEST(Http, BuildResponseTooSmall)
{
	char out[512];
	std::string body(100, 'b');
	size_t full = http_build_response(out, sizeof(out), 200, nullptr,
	    nullptr, body.data(), body.size(), false);
	ASSERT_GT(full, body.size());
	size_t head = full - body.size();
	EXPECT_EQ(std::string(out + head, body.size()), body);
	// Exactly enough room for head and body.
	EXPECT_EQ(http_build_response(out, full, 200, nullptr, nullptr,
	    body.data(), body.size(), false), full);
	EXPECT_EQ(http_build_response(out, full - 1, 200, nullptr, nullptr,
	    body.data(), body.size(), false), 0u);
	EXPECT_EQ(http_build_response(out, head - 1, 200, nullptr, nullptr,
	    body.data(), body.size(), false), 0u);
	EXPECT_EQ(http_build_response(out, 10, 200, nullptr, nullptr,
	    nullptr, 0, false), 0u);
}

TEST(Http, ReasonPhrases)
{
	EXPECT_STREQ(http_reason(101), "Switching Protocols");
	EXPECT_STREQ(http_reason(200), "OK");
	EXPECT_STREQ(http_reason(204), "No Content");
	EXPECT_STREQ(http_reason(302), "Found");
	EXPECT_STREQ(http_reason(404), "Not Found");
	EXPECT_STREQ(http_reason(426), "Upgrade Required");
	EXPECT_NE(http_reason(599), nullptr);
}

// Routing (http_route): the table of paths, as derper serves them.
namespace {

struct Routed {
	enum http_action act;
	struct http_resp resp;
};

Routed
Route(const std::string &method, const std::string &target,
    const std::string &headers = "", bool debug_addr = true, bool tls = false,
    bool port80 = false, bool derp = true, const char *home = "")
{
	std::string head = method + " " + target + " HTTP/1.1\r\nHost: "
	    "derp.example\r\n" + headers + "\r\n";
	struct http_req req;
	Routed r;
	EXPECT_EQ(Parse(head, &req), HTTP_OK) << head;
	struct http_route_ctx ctx = { debug_addr, tls, port80, derp, home,
	    "derp.example", "9.9", "1m2s", "host<1>", false, nullptr };
	r.act = http_route(&req, &ctx, &r.resp);
	return r;
}

}  // namespace

TEST(HttpRoute, DerpUpgrade)
{
	EXPECT_EQ(Route("GET", "/derp", "Upgrade: DERP\r\n").act,
	    HTTP_UPGRADE_DERP);
	EXPECT_EQ(Route("GET", "/derp", "Upgrade: websocket\r\n").act,
	    HTTP_UPGRADE_DERP);
	const std::string hs = "Connection: keep-alive, Upgrade\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
	Routed ws = Route("GET", "/derp", "Upgrade: WebSocket\r\n"
	    "Sec-WebSocket-Protocol: derp\r\n" + hs);
	EXPECT_EQ(ws.act, HTTP_UPGRADE_WS);
	EXPECT_TRUE(ws.resp.hp_ws_derp);
	// "derp" somewhere triggers WebSocket; only the exact token is chosen.
	ws = Route("GET", "/derp", "Upgrade: websocket\r\n"
	    "Sec-WebSocket-Protocol: x, derp\r\n" + hs);
	EXPECT_EQ(ws.act, HTTP_UPGRADE_WS);
	EXPECT_TRUE(ws.resp.hp_ws_derp);
	// Case matters, as in derper: "DERP" is raw DERP.
	EXPECT_EQ(Route("GET", "/derp", "Upgrade: websocket\r\n"
	    "Sec-WebSocket-Protocol: DERP\r\n" + hs).act, HTTP_UPGRADE_DERP);
	for (const char *p : { "derpx", "DERP, derpy", "x-derp" }) {
		ws = Route("GET", "/derp", "Upgrade: websocket\r\n"
		    "Sec-WebSocket-Protocol: " + std::string(p) + "\r\n" + hs);
		EXPECT_EQ(ws.act, HTTP_UPGRADE_WS) << p;
		EXPECT_FALSE(ws.resp.hp_ws_derp) << p;
	}
	// The RFC 6455 handshake checks, each with its status.
	const std::string up = "Upgrade: websocket\r\n"
	    "Sec-WebSocket-Protocol: derp\r\n";
	EXPECT_EQ(Route("GET", "/derp", up + "Sec-WebSocket-Version: 13\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n").resp.hp_code,
	    426);
	EXPECT_EQ(Route("POST", "/derp", up + hs).resp.hp_code, 405);
	ws = Route("GET", "/derp", up + "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Version: 8\r\n"
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
	EXPECT_EQ(ws.resp.hp_code, 400);
	EXPECT_NE(strstr(ws.resp.hp_extra, "Sec-WebSocket-Version: 13"),
	    nullptr);
	for (const char *k : { "", "dGhlIHNhbXBsZSBub25jZQ=", "c2hvcnQ=",
	    "dGhlIHNhbXBsZSBub25jZQ!=" }) {
		EXPECT_EQ(Route("GET", "/derp", up + "Connection: Upgrade\r\n"
		    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		    std::string(k) + "\r\n").resp.hp_code, 400) << k;
	}
	EXPECT_EQ(Route("GET", "/derp", up + hs +
	    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n").resp.hp_code,
	    400);
	Routed none = Route("GET", "/derp");
	EXPECT_EQ(none.resp.hp_code, 426);
	EXPECT_EQ(none.resp.hp_note, nullptr);
	Routed weird = Route("GET", "/derp", "Upgrade: h2c\r\n");
	EXPECT_EQ(weird.resp.hp_code, 426);
	EXPECT_STREQ(weird.resp.hp_note, "weird upgrade");
	Routed off = Route("GET", "/derp", "Upgrade: DERP\r\n", true, false,
	    false, false);
	EXPECT_EQ(off.resp.hp_code, 404);
	EXPECT_STREQ(off.resp.hp_body, "derp server disabled\n");
	// Not a prefix match.
	EXPECT_EQ(Route("GET", "/derpx", "Upgrade: DERP\r\n").resp.hp_code,
	    200);
}

TEST(HttpRoute, Generate204EchoesAValidChallenge)
{
	Routed r = Route("GET", "/generate_204",
	    "X-Tailscale-Challenge: abc-123\r\n");
	EXPECT_EQ(r.resp.hp_code, 204);
	EXPECT_TRUE(r.resp.hp_head_only);
	EXPECT_NE(std::string(r.resp.hp_extra).find(
	    "X-Tailscale-Response: response abc-123\r\n"), std::string::npos);
	r = Route("GET", "/generate_204", "X-Tailscale-Challenge: a b\r\n");
	EXPECT_EQ(std::string(r.resp.hp_extra).find("X-Tailscale-Response"),
	    std::string::npos);
	// Also on the HTTP port in TLS mode.
	EXPECT_EQ(Route("GET", "/generate_204", "", true, false, true)
	    .resp.hp_code, 204);
}

TEST(HttpRoute, DebugPagesOnlyWithTheRuleAndNotForwarded)
{
	const struct {
		const char *path;
		enum http_action act;
	} pages[] = {
		{ "/debug/varz", HTTP_VARZ },
		{ "/debug/vars", HTTP_DEBUG_VARS },
		{ "/debug/check", HTTP_DEBUG_CHECK },
		{ "/debug/traffic", HTTP_DEBUG_TRAFFIC },
	};
	for (const auto &p : pages) {
		SCOPED_TRACE(p.path);
		Routed r = Route("GET", p.path);
		EXPECT_EQ(r.act, p.act);
		EXPECT_NE(std::string(r.resp.hp_extra).find("style-src 'self' "
		    "'unsafe-inline'"), std::string::npos);
		EXPECT_NE(std::string(r.resp.hp_extra).find(
		    "X-Content-Type-Options: nosniff"), std::string::npos);
		EXPECT_NE(r.resp.hp_ctype, nullptr);
		EXPECT_TRUE(Route("HEAD", p.path).resp.hp_head_only);
		EXPECT_EQ(Route("GET", std::string(p.path) + "?x=1").act, p.act);
		Routed no = Route("GET", p.path, "", false);
		EXPECT_EQ(no.act, HTTP_RESPOND);
		EXPECT_EQ(no.resp.hp_code, 403);
		EXPECT_STREQ(no.resp.hp_body, "debug access denied\n");
		EXPECT_STREQ(no.resp.hp_extra,
		    "X-Content-Type-Options: nosniff\r\n");
		Routed fw = Route("GET", p.path, "X-Forwarded-For: 1.2.3.4\r\n");
		EXPECT_EQ(fw.act, HTTP_RESPOND);
		EXPECT_EQ(fw.resp.hp_code, 403);
		// Also on the HTTP port in TLS mode, as derper serves it.
		EXPECT_EQ(Route("GET", p.path, "", true, false, true).act, p.act);
	}
	EXPECT_STREQ(Route("GET", "/debug/vars").resp.hp_ctype,
	    "application/json; charset=utf-8");
	EXPECT_EQ(Route("GET", "/debug/other").resp.hp_code, 404);
	EXPECT_EQ(Route("GET", "/debug/other", "", false).resp.hp_code, 403);
}

TEST(HttpRoute, DebugRefusalNamesTheAddressInDevMode)
{
	struct http_req req;
	struct http_resp resp;
	struct http_route_ctx ctx = {};
	ctx.rc_home = "";
	ctx.rc_dev_client_ip = "192.0.2.2";
	ASSERT_EQ(Parse("GET /debug/vars HTTP/1.1\r\n\r\n", &req), HTTP_OK);
	EXPECT_EQ(http_route(&req, &ctx, &resp), HTTP_RESPOND);
	EXPECT_EQ(resp.hp_code, 403);
	EXPECT_STREQ(resp.hp_body, "debug access denied; to permit access, "
	    "set TS_ALLOW_DEBUG_IP=192.0.2.2\n");
	// Not on the index or an unknown page, as derper.
	ASSERT_EQ(Parse("GET /debug/ HTTP/1.1\r\n\r\n", &req), HTTP_OK);
	http_route(&req, &ctx, &resp);
	EXPECT_STREQ(resp.hp_body, "debug access denied\n");
	ASSERT_EQ(Parse("GET /debug/x HTTP/1.1\r\n\r\n", &req), HTTP_OK);
	http_route(&req, &ctx, &resp);
	EXPECT_STREQ(resp.hp_body, "debug access denied\n");
	EXPECT_EQ(Route("GET", "/debug/vars/x").resp.hp_code, 404);
	EXPECT_EQ(Route("GET", "/debugger").resp.hp_code, 200) << "home";
}

TEST(HttpRoute, DebugIndexAndRedirect)
{
	Routed i = Route("GET", "/debug/");
	EXPECT_EQ(i.act, HTTP_RESPOND);
	EXPECT_EQ(i.resp.hp_code, 200);
	EXPECT_STREQ(i.resp.hp_ctype, "text/html; charset=utf-8");
	std::string body = i.resp.hp_body;
	for (const char *p : { "/debug/vars", "/debug/varz", "/debug/check",
	    "/debug/traffic", "<b>Version:</b> 9.9", "<b>Uptime:</b> 1m2s",
	    "<b>Machine:</b> host&lt;1&gt;",
	    "<b>TLS hostname:</b> derp.example", "<b>Mesh key:</b> false",
	    "</html>" })
		EXPECT_NE(body.find(p), std::string::npos) << p;
	// The index has the home page's CSP, without inline styles.
	EXPECT_NE(std::string(i.resp.hp_extra).find("object-src 'none'\r\n"),
	    std::string::npos);
	EXPECT_EQ(Route("GET", "/debug/", "", false).resp.hp_code, 403);
	// /debug goes to /debug/ as Go's ServeMux does, before the rule.
	Routed r = Route("GET", "/debug?a=b", "", false);
	EXPECT_EQ(r.resp.hp_code, 307);
	EXPECT_STREQ(r.resp.hp_extra, "Location: /debug/?a=b\r\n");
	EXPECT_STREQ(Route("GET", "/debug").resp.hp_extra,
	    "Location: /debug/\r\n");
}

TEST(HttpRoute, DebugAllowedIsTheAddressRuleAndNoForwarding)
{
	struct http_req req;
	ASSERT_EQ(Parse("GET / HTTP/1.1\r\n\r\n", &req), HTTP_OK);
	struct http_route_ctx ctx = {};
	ctx.rc_home = "";
	EXPECT_FALSE(http_debug_allowed(&req, &ctx));
	ctx.rc_debug_addr = true;
	EXPECT_TRUE(http_debug_allowed(&req, &ctx));
	ASSERT_EQ(Parse("GET / HTTP/1.1\r\nX-Forwarded-For: ::1\r\n\r\n",
	    &req), HTTP_OK);
	EXPECT_FALSE(http_debug_allowed(&req, &ctx));
}

TEST(HttpRoute, Port80RedirectsToHttps)
{
	Routed r = Route("GET", "/x?y=1", "", true, false, true);
	EXPECT_EQ(r.resp.hp_code, 302);
	EXPECT_STREQ(r.resp.hp_extra,
	    "Location: https://derp.example/x?y=1\r\n");
	EXPECT_EQ(Route("POST", "/derp", "", true, false, true).resp.hp_code,
	    400);
	EXPECT_EQ(Route("GET", "/derp", "Upgrade: DERP\r\n", true, false,
	    true).act, HTTP_RESPOND) << "never DERP on the HTTP port";
}

TEST(HttpRoute, ProbesRobotsBootstrapConnect)
{
	Routed p = Route("GET", "/derp/probe");
	EXPECT_EQ(p.resp.hp_code, 200);
	EXPECT_STREQ(p.resp.hp_extra, "Access-Control-Allow-Origin: *\r\n");
	EXPECT_EQ(Route("HEAD", "/derp/latency-check").resp.hp_code, 200);
	Routed bad = Route("POST", "/derp/probe");
	EXPECT_EQ(bad.resp.hp_code, 405);
	EXPECT_FALSE(bad.resp.hp_head_only);
	Routed rb = Route("GET", "/robots.txt");
	EXPECT_STREQ(rb.resp.hp_body, "User-agent: *\nDisallow: /\n");
	EXPECT_NE(std::string(rb.resp.hp_extra).find("X-Frame-Options: DENY"),
	    std::string::npos);
	// derper's handler in its browser headers; the body is bootdns'.
	Routed bd = Route("GET", "/bootstrap-dns?q=x");
	EXPECT_EQ(bd.act, HTTP_BOOTSTRAP_DNS);
	EXPECT_EQ(bd.resp.hp_code, 200);
	EXPECT_STREQ(bd.resp.hp_ctype, "application/json");
	EXPECT_NE(std::string(bd.resp.hp_extra).find("X-Frame-Options: DENY"),
	    std::string::npos);
	EXPECT_TRUE(Route("HEAD", "/bootstrap-dns").resp.hp_head_only);
	EXPECT_EQ(Route("CONNECT", "derp.example:443", "", true, true)
	    .resp.hp_code, 403);
}

TEST(HttpRoute, HomePage)
{
	const char *hdrs = "Strict-Transport-Security: max-age=63072000; "
	    "includeSubDomains\r\nContent-Security-Policy: default-src 'self'; "
	    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'; "
	    "block-all-mixed-content; object-src 'none'\r\n"
	    "X-Frame-Options: DENY\r\nX-Content-Type-Options: nosniff\r\n";
	Routed h = Route("GET", "/");
	EXPECT_EQ(h.resp.hp_code, 200);
	EXPECT_STREQ(h.resp.hp_extra, hdrs);
	EXPECT_NE(std::string(h.resp.hp_body).find("<h1>DERP</h1>"),
	    std::string::npos);
	EXPECT_EQ(std::string(h.resp.hp_body).find("disabled"),
	    std::string::npos);
	// The debug link only for whom the rule allows, as derper.
	EXPECT_NE(std::string(h.resp.hp_body).find("href='/debug/'"),
	    std::string::npos);
	EXPECT_EQ(std::string(Route("GET", "/", "", false).resp.hp_body)
	    .find("/debug/"), std::string::npos);
	EXPECT_EQ(std::string(Route("GET", "/", "X-Forwarded-For: 1.2.3.4\r\n")
	    .resp.hp_body).find("/debug/"), std::string::npos);
	// Any other path is the home page, with the same headers; on TLS too.
	EXPECT_STREQ(Route("GET", "/nothing").resp.hp_extra, hdrs);
	EXPECT_STREQ(Route("GET", "/", "", true, true).resp.hp_extra, hdrs);
	Routed off = Route("GET", "/", "", true, false, false, false);
	EXPECT_NE(std::string(off.resp.hp_body).find("Status: disabled"),
	    std::string::npos);
	Routed blank = Route("GET", "/", "", true, false, false, true, "blank");
	EXPECT_STREQ(blank.resp.hp_body, "");
	EXPECT_STREQ(blank.resp.hp_extra, hdrs);
	Routed redir = Route("GET", "/", "", true, false, false, true,
	    "https://example.com/x");
	EXPECT_EQ(redir.resp.hp_code, 302);
	EXPECT_EQ(std::string(redir.resp.hp_extra),
	    std::string(hdrs) + "Location: https://example.com/x\r\n");
}

// Go's url.ParseQuery then Get: the first good pair of that name.
TEST(HttpQuery, GetDecodesAsGo)
{
	char v[32];

	EXPECT_EQ(http_query_get("q=a.example", "q", v, sizeof(v)), 1);
	EXPECT_STREQ(v, "a.example");
	EXPECT_EQ(http_query_get("x=1&q=b%2Ec+d&q=second", "q", v,
	    sizeof(v)), 1);
	EXPECT_STREQ(v, "b.c d");
	EXPECT_EQ(http_query_get("%71=enc", "q", v, sizeof(v)), 1);
	EXPECT_STREQ(v, "enc");
	EXPECT_EQ(http_query_get("q", "q", v, sizeof(v)), 1);
	EXPECT_STREQ(v, "");
	// A bad escape or a ';' makes the pair skipped, not the query.
	EXPECT_EQ(http_query_get("q=%zz&q=ok", "q", v, sizeof(v)), 1);
	EXPECT_STREQ(v, "ok");
	EXPECT_EQ(http_query_get("q=a;b&q=c", "q", v, sizeof(v)), 1);
	EXPECT_STREQ(v, "c");
	EXPECT_EQ(http_query_get("q=%4", "q", v, sizeof(v)), 0);
	EXPECT_EQ(http_query_get("", "q", v, sizeof(v)), 0);
	EXPECT_EQ(http_query_get("qq=1&&=2", "q", v, sizeof(v)), 0);
	EXPECT_EQ(http_query_get("q=0123456789", "q", v, 5), -1);
}
