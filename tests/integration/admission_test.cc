// SPDX-License-Identifier: ISC
// admission_test.cc: client admission end to end (PROTOCOL.md 7): the real
// daemon against a fake tailscaled LocalAPI (HTTP/1.1 on a Unix socket)
// and a fake admission URL (127.0.0.1), with derpc clients.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include "fake_http.h"
#include "frame.h"
#include "harness.h"
#include "util.h"

namespace {

using fakehttp::NowMs;
using fakehttp::Response;

// A client identity: its private key and the public key's hex.
struct Id {
	uint8_t priv[32], pub[32];
	std::string hex;
};

Id
NewId()
{
	Id id;
	derpc_keygen(id.priv, id.pub);
	id.hex = Hex(id.pub, 32);
	return id;
}

std::string
Short(const Id &id)
{
	char ks[8];
	util_key_short(id.pub, ks);
	return ks;
}

std::string
Rej(const char *reason)
{
	return std::string("derpd_admission_rejects{reason=\"") + reason +
	    "\"}";
}

std::string
Res(const char *reason)
{
	return std::string("derpd_admission_results{reason=\"") + reason +
	    "\"}";
}

std::string
Reqs(const char *backend)
{
	return std::string("derpd_admission_backend_requests{backend=\"") +
	    backend + "\"}";
}

const char kDenied[] = "derpd_connections_closed{reason=\"admission_denied\"}";

// --- response classes of the fake LocalAPI --------------------------

Response
TsOk(const std::string &hex)
{
	Response r;
	r.body = "{\"Node\":{\"ID\":12345,\"StableID\":\"nStable1CNTRL\","
	    "\"Name\":\"peer.tailnet.ts.net.\",\"Key\":\"nodekey:" + hex +
	    "\",\"Addresses\":[\"100.64.0.7/32\"]},\"UserProfile\":{\"ID\":7,"
	    "\"LoginName\":\"alice@example.com\",\"DisplayName\":\"Alice\"},"
	    "\"CapMap\":{}}";
	return r;
}

Response
Text(int status, const std::string &body)
{
	Response r;
	r.status = status;
	r.body = body;
	r.content_type = "text/plain; charset=utf-8";
	return r;
}

Response TsNotFound() { return Text(404, "no match for IP:port\n"); }
Response TsTooOld() { return Text(400, "invalid 'addr' parameter\n"); }
Response TsBad400() { return Text(400, "invalid nodekey in 'addr' parameter\n"); }
Response TsForbidden() { return Text(403, "invalid localapi request\n"); }
Response TsGarbage() { return Text(200, "<html>not json"); }
Response Ts500() { return Text(500, "internal error\n"); }

Response
Delayed(Response r, int ms)
{
	r.delay_ms = ms;
	return r;
}

Response
UrlAnswer(const std::string &body, int status = 200)
{
	Response r;
	r.status = status;
	r.body = body;
	return r;
}

// Outcome of one full client handshake.
struct Attempt {
	Client c;		// set when admitted
	bool admitted = false;
	bool refused = false;	// ClientInfo taken, then EOF, no ServerInfo
	std::string err;
};

class AdmissionTest : public DerpdTest {
protected:
	void SetUp() override
	{
		sock_ = d.dir + "/tailscaled.sock";
		self_ = NewId();
		ts_.SetHandler([this](const fakehttp::Request &rq) {
			return TsAnswer(rq);
		});
		url_.SetHandler([this](const fakehttp::Request &rq) {
			return UrlAnswerFor(rq);
		});
	}
	void TearDown() override
	{
		DerpdTest::TearDown();
		ts_.Stop();
		url_.Stop();
	}

	Response TsAnswer(const fakehttp::Request &rq)
	{
		static const std::string whois =
		    "/localapi/v0/whois?addr=nodekey%3A";
		if (rq.target == "/localapi/v0/status?peers=false") {
			Response r;
			r.body = "{\"BackendState\":\"Running\",\"Self\":"
			    "{\"PublicKey\":\"nodekey:" + self_.hex + "\"}}";
			std::lock_guard<std::mutex> g(mu_);
			if (!status_body_.empty())
				r.body = status_body_;
			return r;
		}
		if (rq.target.compare(0, whois.size(), whois) != 0)
			return Text(404, "404 page not found\n");
		std::string hex = rq.target.substr(whois.size());
		if (hex == self_.hex)
			return TsOk(hex);
		std::lock_guard<std::mutex> g(mu_);
		auto it = ts_by_key_.find(hex);
		return it != ts_by_key_.end() ? it->second : ts_default_;
	}

	Response UrlAnswerFor(const fakehttp::Request &rq)
	{
		std::lock_guard<std::mutex> g(mu_);
		for (auto &kv : url_by_key_)
			if (rq.body.find(kv.first) != std::string::npos)
				return kv.second;
		return url_default_;
	}

	void SetTs(const Id &id, const Response &r)
	{
		std::lock_guard<std::mutex> g(mu_);
		ts_by_key_[id.hex] = r;
	}
	void SetUrl(const Id &id, const Response &r)
	{
		std::lock_guard<std::mutex> g(mu_);
		url_by_key_[id.hex] = r;
	}

	void SetTsDefault(const Response &r)
	{
		std::lock_guard<std::mutex> g(mu_);
		ts_default_ = r;
	}
	void SetUrlDefault(const Response &r)
	{
		std::lock_guard<std::mutex> g(mu_);
		url_default_ = r;
	}

	void StartTs() { ASSERT_EQ("", ts_.ListenUnix(sock_)); }
	void StartUrl() { ASSERT_EQ("", url_.ListenTcp()); }
	std::vector<std::string> TsFlags()
	{
		return { "-verify-clients", "-socket=" + sock_ };
	}
	std::string UrlFlag(int port = 0)
	{
		return "-verify-client-url=http://127.0.0.1:" +
		    std::to_string(port ? port : url_.port()) + "/admit";
	}

	derpc_opts OptsFor(const Id &id)
	{
		derpc_opts o = d.Opts();
		o.priv = id.priv;
		return o;
	}

	// Handshake up to ClientInfo (sent); the admission check starts.
	// bind: the source address (127.0.0.x), nullptr for the default.
	Client Begin(const Id &id, std::string *err,
	    const std::string &pipeline = "", const char *bind = nullptr)
	{
		derpc_opts o = OptsFor(id);
		o.bind_addr = bind;
		char e[512] = "";
		derpc *c = derpc_dial(&o, e, sizeof(e));
		if (c == nullptr) {
			*err = std::string("dial: ") + e;
			return Client();
		}
		Client cl(c);
		int status = 0;
		if (derpc_send_upgrade(c, false) != DERPC_OK ||
		    derpc_read_upgrade(c, false, &status, 5000) != DERPC_OK ||
		    status != 101) {
			*err = std::string("upgrade: ") + derpc_error(c);
			return Client();
		}
		if (derpc_send_client_info(c, nullptr,
		    (const uint8_t *)pipeline.data(), pipeline.size()) !=
		    DERPC_OK) {
			*err = std::string("ClientInfo: ") + derpc_error(c);
			return Client();
		}
		return cl;
	}

	// Wait for the verdict of a begun handshake.
	void Finish(Attempt *a, Client c, int timeout_ms)
	{
		char si[256];
		int rc = derpc_read_server_info(c.get(), si, sizeof(si),
		    timeout_ms);
		if (rc == DERPC_OK) {
			a->admitted = true;
			a->c = std::move(c);
		} else if (rc == DERPC_EOF)
			a->refused = true;
		else
			a->err = rc == DERPC_TIMEOUT ? "no verdict within " +
			    std::to_string(timeout_ms) + " ms" :
			    derpc_error(c.get());
	}

	Attempt Try(const Id &id, int timeout_ms = 5000,
	    const std::string &pipeline = "")
	{
		Attempt a;
		Client c = Begin(id, &a.err, pipeline);
		if (!c)
			return a;
		Finish(&a, std::move(c), timeout_ms);
		return a;
	}

	::testing::AssertionResult Admitted(const Attempt &a)
	{
		if (a.admitted)
			return ::testing::AssertionSuccess();
		return ::testing::AssertionFailure() << (a.refused ?
		    "refused (closed after ClientInfo)" : "error: " + a.err);
	}
	::testing::AssertionResult Refused(const Attempt &a)
	{
		if (a.refused)
			return ::testing::AssertionSuccess();
		return ::testing::AssertionFailure() << (a.admitted ?
		    "admitted (got ServerInfo)" : "error: " + a.err);
	}

	// Connect n clients over `threads` threads; each connect() returns
	// the key to use (nullptr: a fresh one). Returns how many were
	// admitted; *secs gets the wall time.
	int Burst(int n, int threads, const uint8_t *priv, double *secs)
	{
		std::atomic<int> next{ 0 }, ok{ 0 };
		std::vector<std::thread> ts;
		std::mutex emu;
		std::string first_err;
		auto t0 = std::chrono::steady_clock::now();
		for (int t = 0; t < threads; t++)
			ts.emplace_back([&] {
				derpc_opts o = d.Opts();
				o.priv = priv;
				while (next++ < n) {
					char e[512] = "", si[64];
					derpc *c = derpc_connect(&o, si,
					    sizeof(si), e, sizeof(e));
					if (c != nullptr) {
						ok++;
						derpc_close(c);
					} else {
						std::lock_guard<std::mutex>
						    g(emu);
						if (first_err.empty())
							first_err = e;
					}
				}
			});
		for (auto &t : ts)
			t.join();
		*secs = std::chrono::duration<double>(
		    std::chrono::steady_clock::now() - t0).count();
		EXPECT_EQ(ok.load(), n) << "first error: " << first_err;
		return ok.load();
	}

	fakehttp::Server ts_, url_;
	std::string sock_;
	Id self_;
	std::mutex mu_;
	std::map<std::string, Response> ts_by_key_, url_by_key_;
	std::string status_body_;	// "": a logged-in tailscaled
	Response ts_default_ = TsNotFound();
	Response url_default_ = UrlAnswer("{\"Allow\":true}");
};

// A SendPacket frame to dst carrying data, as raw bytes.
std::string
SendPacketFrame(const uint8_t dst[32], const std::string &data)
{
	std::string body((const char *)dst, 32);
	body += data;
	std::string f(FRAME_HDR_LEN + body.size(), '\0');
	derpc_put_frame((uint8_t *)&f[0], FRAME_SEND_PACKET, body.data(),
	    (uint32_t)body.size());
	return f;
}

}  // namespace

// Every LocalAPI answer maps to admitted or refused, with its reason.
TEST_F(AdmissionTest, TailscaledClassesMapToReasons)
{
	StartTs();
	auto flags = TsFlags();
	flags.push_back("-auth-timeout=1s");
	ASSERT_TRUE(d.Start(flags));
	// The startup self-check asks for the status and whois of itself.
	EXPECT_TRUE(d.WaitLog("admission ready", 3000));

	struct Case {
		const char *name;
		Response resp;
		const char *reason;	// nullptr: admitted
	};
	std::vector<Case> cases = {
		{ "200 json", Response(), nullptr },
		{ "404", TsNotFound(), "not_in_tailnet" },
		{ "400 too old", TsTooOld(), "tailscaled_too_old" },
		{ "400 other", TsBad400(), "tailscaled_error" },
		{ "403", TsForbidden(), "tailscaled_error" },
		{ "200 garbage", TsGarbage(), "tailscaled_error" },
		{ "500", Ts500(), "tailscaled_error" },
		{ "200 json, 1 MiB CapMap", Response(), nullptr },
		{ "slow (3 s) past -auth-timeout=1s", Delayed(Response(),
		    3000), "timeout" },
	};
	std::vector<Id> ids;
	for (auto &c : cases) {
		Id id = NewId();
		if (c.resp.body.empty() && c.resp.status == 200)
			c.resp = Delayed(TsOk(id.hex), c.resp.delay_ms);
		if (strstr(c.name, "MiB") != nullptr) {
			std::string &b = c.resp.body;
			b.replace(b.rfind("\"CapMap\":{}"), 11,
			    "\"CapMap\":{\"https://example.com/cap/big\":"
			    "[{\"pad\":\"" + std::string(1 << 20, 'x') +
			    "\"}]}");
		}
		SetTs(id, c.resp);
		ids.push_back(id);
	}

	std::map<std::string, int> want;
	int refused = 0;
	for (size_t i = 0; i < cases.size(); i++) {
		size_t from = d.LogSize();
		Attempt a = Try(ids[i]);
		if (cases[i].reason == nullptr) {
			EXPECT_TRUE(Admitted(a)) << cases[i].name;
			continue;
		}
		EXPECT_TRUE(Refused(a)) << cases[i].name;
		want[cases[i].reason]++;
		refused++;
		EXPECT_TRUE(d.WaitLog("admission: refused " + Short(ids[i]) +
		    " from 127.0.0.1: " + cases[i].reason, 2000, from))
		    << cases[i].name;
	}
	auto m = d.Metrics();
	for (const char *r : { "not_in_tailnet", "tailscaled_too_old",
	    "tailscaled_error", "timeout", "tailscaled_unreachable",
	    "not_in_allowlist", "url_denied" })
		EXPECT_EQ(m[Rej(r)], want[r]) << r;
	EXPECT_EQ(m[kDenied], refused);
	EXPECT_EQ(m["derpd_admission_checks"], (int64_t)cases.size());
	EXPECT_EQ(m[Reqs("tailscaled")], (int64_t)cases.size());
	EXPECT_EQ(m[Reqs("url")], 0);
	EXPECT_EQ(m[Reqs("allowlist")], 0);
	EXPECT_EQ(m[Res("ok")], 2);
	EXPECT_EQ(m[Res("not_in_tailnet")], 1);
	EXPECT_EQ(m[Res("tailscaled_error")], 4);
	EXPECT_EQ(m[Res("timeout")], 1);
	EXPECT_EQ(m["derpd_admission_cache{result=\"miss\"}"],
	    (int64_t)cases.size());

	// The requests, exactly as derper's LocalAPI client sends them.
	auto reqs = ts_.Requests();
	for (size_t i = 0; i < ids.size(); i++) {
		const fakehttp::Request *r = nullptr;
		for (auto &q : reqs)
			if (q.target.find(ids[i].hex) != std::string::npos)
				r = &q;
		ASSERT_NE(r, nullptr) << cases[i].name;
		EXPECT_EQ(r->method, "GET");
		EXPECT_EQ(r->version, "HTTP/1.1");
		EXPECT_EQ(r->target, "/localapi/v0/whois?addr=nodekey%3A" +
		    ids[i].hex) << "the colon is sent as %3A";
		EXPECT_EQ(r->Count("Host"), 1);
		EXPECT_EQ(r->Header("Host"), "local-tailscaled.sock");
		EXPECT_FALSE(r->Has("Origin")) << "tailscaled answers 403";
		EXPECT_FALSE(r->Has("Referer")) << "tailscaled answers 403";
		EXPECT_TRUE(r->body.empty());
	}
	// Refusals are cached (-auth-cache-deny-ttl 5s): no new request.
	Attempt again = Try(ids[1]);
	EXPECT_TRUE(Refused(again));
	EXPECT_EQ(ts_.CountMatching(ids[1].hex), 1u);
	EXPECT_EQ(d.Metric(Rej("not_in_tailnet")), 2);
	EXPECT_EQ(d.Metric("derpd_admission_cache{result=\"hit\"}"), 1);
}

// A refused client: the 101 and ServerKey, ClientInfo accepted, then the
// close with no ServerInfo and no other byte.
TEST_F(AdmissionTest, RefusedClientSeesOnlyTheClose)
{
	StartTs();
	ASSERT_TRUE(d.Start(TsFlags()));
	Id id = NewId();
	std::string err;
	Client c = Begin(id, &err);
	ASSERT_TRUE(c) << err;
	char buf[256];
	size_t got = 0;
	int rc = derpc_read_raw(c.get(), buf, sizeof(buf), &got, 5000);
	EXPECT_EQ(rc, DERPC_EOF) << "got " << got << " bytes";
	EXPECT_EQ(d.WaitMetric(kDenied, 1), 1);
	// Fast start: no bytes at all (or just ServerKey), then the close.
	Id id2 = NewId();
	derpc_opts o = OptsFor(id2);
	o.fast_start = true;
	o.server_pub = d.server_pub;
	char e[512] = "";
	derpc *fc = derpc_connect(&o, nullptr, 0, e, sizeof(e));
	EXPECT_EQ(fc, nullptr) << "fast start client admitted";
	if (fc != nullptr)
		derpc_close(fc);
	EXPECT_EQ(d.WaitMetric(Rej("not_in_tailnet"), 2), 2);
}

// A slow check holds only its own client: relaying between clients
// already in goes on, and other checks complete, while it is pending.
TEST_F(AdmissionTest, SlowCheckDoesNotBlockOthers)
{
	StartTs();
	ASSERT_TRUE(d.Start(TsFlags()));
	Id a = NewId(), b = NewId(), s = NewId(), late = NewId();
	SetTs(a, TsOk(a.hex));
	SetTs(b, TsOk(b.hex));
	SetTs(late, TsOk(late.hex));
	SetTs(s, Delayed(TsOk(s.hex), 3000));
	Attempt ca = Try(a), cb = Try(b);
	ASSERT_TRUE(Admitted(ca));
	ASSERT_TRUE(Admitted(cb));

	std::string err;
	Client cs = Begin(s, &err);
	ASSERT_TRUE(cs) << err;
	ASSERT_TRUE(ts_.WaitMatching(s.hex, 1, 3000));
	int64_t t0 = NowMs();
	for (int i = 0; i < 20; i++) {
		ASSERT_TRUE(SendRecv(ca.c.get(), cb.c.get(), "a to b " +
		    std::to_string(i)));
		ASSERT_TRUE(SendRecv(cb.c.get(), ca.c.get(), "b to a " +
		    std::to_string(i)));
	}
	// A new client is checked and admitted meanwhile, and varz answers.
	Attempt cl = Try(late);
	EXPECT_TRUE(Admitted(cl));
	EXPECT_EQ(d.Metric("derpd_admission_checks"), 4);
	// All of that happened while the slow check was still out.
	EXPECT_FALSE(ts_.Answered(s.hex)) << "the slow check finished first ("
	    << NowMs() - t0 << " ms); the assertion proves nothing";
	char si[64];
	EXPECT_EQ(derpc_read_server_info(cs.get(), si, sizeof(si), 0),
	    DERPC_TIMEOUT);
	// The slow one is admitted in the end (3 s < -auth-timeout 5 s).
	Attempt fs;
	Finish(&fs, std::move(cs), 6000);
	EXPECT_TRUE(Admitted(fs));
	// The fake marks the answer sent after writing it: the admission
	// may be seen first, so wait (bounded) for the mark.
	for (int i = 0; i < 200 && !ts_.Answered(s.hex); i++)
		usleep(10 * 1000);
	EXPECT_TRUE(ts_.Answered(s.hex));
	if (fs.admitted) {
		EXPECT_TRUE(SendRecv(fs.c.get(), ca.c.get(), "late hello"));
	}
}

// tailscaled gone: fail closed; back: admissions recover, no restart.
TEST_F(AdmissionTest, TailscaledDownFailsClosedThenRecovers)
{
	StartTs();
	auto flags = TsFlags();
	flags.push_back("-auth-cache-deny-ttl=0");
	ASSERT_TRUE(d.Start(flags));
	Id a = NewId(), b = NewId();
	SetTs(a, TsOk(a.hex));
	SetTs(b, TsOk(b.hex));
	Attempt ca = Try(a);
	ASSERT_TRUE(Admitted(ca));

	ts_.Stop();	// the socket file is removed
	ASSERT_NE(access(sock_.c_str(), F_OK), 0);
	size_t from = d.LogSize();
	Attempt cb = Try(b);
	EXPECT_TRUE(Refused(cb));
	EXPECT_EQ(d.Metric(Rej("tailscaled_unreachable")), 1);
	EXPECT_TRUE(d.WaitLog("admission: refused " + Short(b) +
	    " from 127.0.0.1: tailscaled_unreachable", 2000, from));
	// Not cached (deny TTL 0): every attempt asks again.
	EXPECT_TRUE(Refused(Try(b)));
	EXPECT_EQ(d.Metric(Rej("tailscaled_unreachable")), 2);
	EXPECT_EQ(d.Metric(Reqs("tailscaled")), 3);

	// A stale socket file with nobody listening: refused too.
	{
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
		    sock_.c_str());
		ASSERT_EQ(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
		EXPECT_TRUE(Refused(Try(b)));
		close(fd);
		EXPECT_EQ(d.Metric(Rej("tailscaled_unreachable")), 3);
	}

	// The admitted client keeps its connection meanwhile.
	StartTs();
	Attempt cb2 = Try(b);
	EXPECT_TRUE(Admitted(cb2));
	if (cb2.admitted) {
		EXPECT_TRUE(SendRecv(ca.c.get(), cb2.c.get(), "back"));
		EXPECT_TRUE(SendRecv(cb2.c.get(), ca.c.get(), "again"));
	}
	Id c = NewId();
	SetTs(c, TsOk(c.hex));
	EXPECT_TRUE(Admitted(Try(c)));
	EXPECT_EQ(d.Metric(Rej("tailscaled_unreachable")), 3);
}

// Every admission URL answer maps to admitted or refused, with its
// reason; the request is derper's, exactly.
TEST_F(AdmissionTest, UrlClassesMapToReasons)
{
	StartUrl();
	ASSERT_TRUE(d.Start({ UrlFlag(), "-auth-timeout=1s" }));
	struct Case {
		const char *name;
		Response resp;
		const char *reason;
	};
	std::vector<Case> cases = {
		{ "Allow true", UrlAnswer("{\"Allow\":true}"), nullptr },
		{ "allow true", UrlAnswer("{\"allow\":true,\"x\":1}"), nullptr },
		{ "Allow false", UrlAnswer("{\"Allow\":false}"), "url_denied" },
		{ "no Allow", UrlAnswer("{}"), "url_denied" },
		{ "500", UrlAnswer("{\"Allow\":true}", 500), "url_status" },
		{ "403", UrlAnswer("", 403), "url_status" },
		{ "garbage", UrlAnswer("garbage"), "url_bad_response" },
		{ "Allow not bool", UrlAnswer("{\"Allow\":\"yes\"}"),
		    "url_bad_response" },
		// A timeout is a transport failure: fail-open admits.
		{ "slow (3 s) past -auth-timeout=1s",
		    Delayed(UrlAnswer("{\"Allow\":false}"), 3000), nullptr },
	};
	std::vector<Id> ids;
	std::map<std::string, int> want;
	int refused = 0;
	for (auto &c : cases) {
		Id id = NewId();
		SetUrl(id, c.resp);
		ids.push_back(id);
		size_t from = d.LogSize();
		Attempt a = Try(id);
		if (c.reason == nullptr) {
			EXPECT_TRUE(Admitted(a)) << c.name;
			continue;
		}
		EXPECT_TRUE(Refused(a)) << c.name;
		want[c.reason]++;
		refused++;
		EXPECT_TRUE(d.WaitLog("admission: refused " + Short(id) +
		    " from 127.0.0.1: " + c.reason, 2000, from)) << c.name;
	}
	EXPECT_TRUE(d.WaitLog("admission controller unreachable", 100));
	auto m = d.Metrics();
	for (const char *r : { "url_denied", "url_status", "url_bad_response",
	    "url_unreachable", "timeout" })
		EXPECT_EQ(m[Rej(r)], want[r]) << r;
	EXPECT_EQ(m[kDenied], refused);
	EXPECT_EQ(m[Reqs("url")], (int64_t)cases.size());
	EXPECT_EQ(m[Reqs("tailscaled")], 0);

	auto reqs = url_.Requests();
	ASSERT_EQ(reqs.size(), cases.size());
	for (size_t i = 0; i < ids.size(); i++) {
		const fakehttp::Request *r = nullptr;
		for (auto &q : reqs)
			if (q.body.find(ids[i].hex) != std::string::npos)
				r = &q;
		ASSERT_NE(r, nullptr) << cases[i].name;
		EXPECT_EQ(r->method, "POST");
		EXPECT_EQ(r->target, "/admit");
		EXPECT_EQ(r->body, "{\"NodePublic\":\"nodekey:" + ids[i].hex +
		    "\",\"Source\":\"127.0.0.1\"}");
		EXPECT_FALSE(r->Has("Content-Type")) << "derper sends none";
		EXPECT_EQ(r->Header("Content-Length"),
		    std::to_string(r->body.size()));
		EXPECT_EQ(r->Header("Host"), "127.0.0.1:" +
		    std::to_string(url_.port()));
	}
}

TEST_F(AdmissionTest, UrlUnreachableFailOpenAdmits)
{
	ASSERT_TRUE(d.Start({ UrlFlag(fakehttp::RefusedPort()) }));
	Id id = NewId();
	EXPECT_TRUE(Admitted(Try(id)));
	EXPECT_TRUE(d.WaitLog("admission controller unreachable", 2000));
	auto m = d.Metrics();
	EXPECT_EQ(m[Rej("url_unreachable")], 0);
	EXPECT_EQ(m[kDenied], 0);
	EXPECT_EQ(m[Reqs("url")], 1);
	EXPECT_EQ(m[Res("ok")], 1);
}

TEST_F(AdmissionTest, UrlUnreachableFailClosedRefuses)
{
	ASSERT_TRUE(d.Start({ UrlFlag(fakehttp::RefusedPort()),
	    "-verify-client-url-fail-open=false" }));
	Id id = NewId();
	EXPECT_TRUE(Refused(Try(id)));
	EXPECT_TRUE(d.WaitLog("admission: refused " + Short(id) +
	    " from 127.0.0.1: url_unreachable", 2000));
	auto m = d.Metrics();
	EXPECT_EQ(m[Rej("url_unreachable")], 1);
	EXPECT_EQ(m[kDenied], 1);
}

// Fail-open covers transport failures only: an HTTP error still refuses.
TEST_F(AdmissionTest, UrlStatusRefusesEvenFailOpen)
{
	StartUrl();
	SetUrlDefault(UrlAnswer("{\"Allow\":true}", 500));
	ASSERT_TRUE(d.Start({ UrlFlag(), "-verify-client-url-fail-open=true" }));
	EXPECT_TRUE(Refused(Try(NewId())));
	SetUrlDefault(UrlAnswer("garbage"));
	EXPECT_TRUE(Refused(Try(NewId())));
	auto m = d.Metrics();
	EXPECT_EQ(m[Rej("url_status")], 1);
	EXPECT_EQ(m[Rej("url_bad_response")], 1);
	EXPECT_EQ(m[Res("ok")], 0);
}

// Order: allowlist, then tailscaled, then the URL; every one must allow.
TEST_F(AdmissionTest, ChainOrder)
{
	StartTs();
	StartUrl();
	Id ok = NewId(), unlisted = NewId(), nots = NewId(), deny = NewId();
	std::string allow = d.dir + "/allow.txt";
	{
		FILE *f = fopen(allow.c_str(), "w");
		ASSERT_NE(f, nullptr);
		for (const Id *id : { &ok, &nots, &deny })
			fprintf(f, "nodekey:%s\n", id->hex.c_str());
		fclose(f);
	}
	for (const Id *id : { &ok, &unlisted, &deny })
		SetTs(*id, TsOk(id->hex));
	SetUrl(deny, UrlAnswer("{\"Allow\":false}"));
	auto flags = TsFlags();
	flags.push_back(UrlFlag());
	flags.push_back("-allow-keys=" + allow);
	ASSERT_TRUE(d.Start(flags));
	EXPECT_TRUE(Refused(Try(unlisted)));
	EXPECT_TRUE(Refused(Try(nots)));
	EXPECT_TRUE(Refused(Try(deny)));
	EXPECT_TRUE(Admitted(Try(ok)));
	EXPECT_EQ(ts_.CountMatching(unlisted.hex), 0u);
	EXPECT_EQ(url_.CountMatching(unlisted.hex, true), 0u);
	EXPECT_EQ(ts_.CountMatching(nots.hex), 1u);
	EXPECT_EQ(url_.CountMatching(nots.hex, true), 0u);
	EXPECT_EQ(url_.CountMatching(deny.hex, true), 1u);
	EXPECT_EQ(url_.CountMatching(ok.hex, true), 1u);
	auto m = d.Metrics();
	EXPECT_EQ(m[Rej("not_in_allowlist")], 1);
	EXPECT_EQ(m[Rej("not_in_tailnet")], 1);
	EXPECT_EQ(m[Rej("url_denied")], 1);
	EXPECT_EQ(m[Reqs("allowlist")], 4);
	EXPECT_EQ(m[Reqs("tailscaled")], 3);
	EXPECT_EQ(m[Reqs("url")], 2);
}

// 1,000 connects of one key, 50 at a time: one backend request.
TEST_F(AdmissionTest, BurstOfOneKeyMakesOneRequest)
{
	StartTs();
	ASSERT_TRUE(d.Start(TsFlags()));
	Id id = NewId();
	// Slow enough that the first wave joins the flight in progress.
	SetTs(id, Delayed(TsOk(id.hex), 200));
	double secs;
	int ok = Burst(1000, 50, id.priv, &secs);
	EXPECT_EQ(ok, 1000);
	EXPECT_EQ(ts_.CountMatching(id.hex), 1u);
	auto m = d.Metrics();
	EXPECT_EQ(m[Reqs("tailscaled")], 1);
	EXPECT_EQ(m["derpd_admission_checks"], 1000);
	EXPECT_EQ(m["derpd_admission_cache{result=\"miss\"}"], 1);
	EXPECT_EQ(m["derpd_admission_cache{result=\"hit\"}"] +
	    m["derpd_admission_cache{result=\"joined\"}"], 999);
	EXPECT_GE(m["derpd_admission_cache{result=\"joined\"}"], 1);
	EXPECT_EQ(m[Res("ok")], 1000);
	EXPECT_EQ(m[kDenied], 0);
	printf("[ INFO     ] 1000 connects of one key in %.2f s\n", secs);
}

// A mesh peer (correct mesh key) skips admission altogether.
TEST_F(AdmissionTest, MeshKeyBypasses)
{
	StartTs();
	uint8_t mesh[32], wrong[32];
	for (int i = 0; i < 32; i++) {
		mesh[i] = (uint8_t)(0xa0 + i);
		wrong[i] = (uint8_t)(0x10 + i);
	}
	std::string mk = d.dir + "/mesh.key";
	{
		FILE *f = fopen(mk.c_str(), "w");
		ASSERT_NE(f, nullptr);
		fprintf(f, "%s\n", Hex(mesh, 32).c_str());
		fclose(f);
		chmod(mk.c_str(), 0600);
	}
	auto flags = TsFlags();
	flags.push_back("--mesh-psk-file=" + mk);
	ASSERT_TRUE(d.Start(flags));	// everyone else: 404
	Id peer = NewId(), bad = NewId();
	derpc_opts o = OptsFor(peer);
	o.mesh_key = mesh;
	std::string err;
	Client c = d.Connect(o, &err);
	ASSERT_TRUE(c) << "mesh peer refused: " << err;
	EXPECT_EQ(ts_.CountMatching(peer.hex), 0u);
	// A wrong mesh key is an ordinary client: checked and refused.
	derpc_opts ob = OptsFor(bad);
	ob.mesh_key = wrong;
	Client cb = d.Connect(ob, &err);
	EXPECT_FALSE(cb);
	EXPECT_EQ(ts_.CountMatching(bad.hex), 1u);
	auto m = d.Metrics();
	EXPECT_EQ(m["derpd_admission_checks"], 1);
	EXPECT_EQ(m[Reqs("tailscaled")], 1);
	EXPECT_EQ(m[Rej("not_in_tailnet")], 1);
}

// Allowlist: an unlisted key is refused; SIGHUP after adding it admits
// it (the cached refusal is dropped); a broken file keeps the old list.
TEST_F(AdmissionTest, AllowlistAndSighup)
{
	Id a = NewId(), b = NewId();
	std::string allow = d.dir + "/allow.txt";
	auto write = [&](const std::string &text) {
		std::string tmp = allow + ".tmp";
		FILE *f = fopen(tmp.c_str(), "w");
		ASSERT_NE(f, nullptr);
		fputs(text.c_str(), f);
		fclose(f);
		ASSERT_EQ(rename(tmp.c_str(), allow.c_str()), 0);
	};
	write("# test\nnodekey:" + a.hex + "\n");
	ASSERT_TRUE(d.Start({ "-allow-keys=" + allow }));
	EXPECT_TRUE(Admitted(Try(a)));
	size_t from = d.LogSize();
	EXPECT_TRUE(Refused(Try(b)));
	EXPECT_TRUE(d.WaitLog("admission: refused " + Short(b) +
	    " from 127.0.0.1: not_in_allowlist", 2000, from));
	EXPECT_EQ(d.Metric(Rej("not_in_allowlist")), 1);

	write("# test\nnodekey:" + a.hex + "\nnodekey:" + b.hex + "\n");
	from = d.LogSize();
	d.Kill(SIGHUP);
	ASSERT_TRUE(d.WaitLog("allowlist " + allow + ": 2 keys", 3000, from));
	EXPECT_TRUE(Admitted(Try(b)));
	EXPECT_TRUE(Admitted(Try(a)));

	// A broken file: an error naming file:line, the old list stays.
	write("nodekey:" + b.hex + "\nnodekey:nothex\n");
	from = d.LogSize();
	d.Kill(SIGHUP);
	EXPECT_TRUE(d.WaitLog(allow + ":2", 3000, from));
	EXPECT_TRUE(Admitted(Try(a)));
	EXPECT_TRUE(Admitted(Try(b)));

	// Removing a key refuses its next connect.
	write("nodekey:" + b.hex + "\n");
	from = d.LogSize();
	d.Kill(SIGHUP);
	ASSERT_TRUE(d.WaitLog("allowlist " + allow + ": 1 keys", 3000, from));
	EXPECT_TRUE(Refused(Try(a)));
	EXPECT_EQ(d.Metric(Rej("not_in_allowlist")), 2);
	EXPECT_TRUE(d.Running());
}

// One request on the admin socket; the reply line ("" on failure).
std::string
AdminCall(const std::string &path, const std::string &req)
{
	struct sockaddr_un sun;
	std::string line;
	char c;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, path.c_str(), sizeof(sun.sun_path) - 1);
	if (fd == -1 || connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    write(fd, req.data(), req.size()) != (ssize_t)req.size()) {
		if (fd != -1)
			close(fd);
		return "";
	}
	while (read(fd, &c, 1) == 1 && c != '\n')
		line += c;
	close(fd);
	return line;
}

// SIGHUP and "derpctl reload" are one reload: both forget the cached
// verdicts of every backend, here the admission URL's. (derpctl reload
// only reloaded with -allow-keys, so the URL's verdicts stayed cached.)
TEST_F(AdmissionTest, SighupAndDerpctlReloadAreOneReload)
{
	StartUrl();
	std::string sock = d.dir + "/admin.sock";
	ASSERT_TRUE(d.Start({ UrlFlag(), "--admin-socket=" + sock }));
	Id id = NewId();
	std::string err;
	EXPECT_TRUE(d.Connect(OptsFor(id), &err)) << err;
	EXPECT_TRUE(d.Connect(OptsFor(id), &err)) << err;
	EXPECT_EQ(url_.CountMatching(id.hex, true), 1u) << "cached";

	std::string r = AdminCall(sock, "{\"v\":1,\"id\":1,\"cmd\":\"reload\"}\n");
	EXPECT_NE(r.find("\"ok\":true"), std::string::npos) << r;
	EXPECT_NE(r.find("admission cache"), std::string::npos) << r;
	EXPECT_TRUE(d.Connect(OptsFor(id), &err)) << err;
	EXPECT_EQ(url_.CountMatching(id.hex, true), 2u)
	    << "derpctl reload kept a cached verdict";

	size_t mark = d.LogSize();
	d.Kill(SIGHUP);
	EXPECT_TRUE(d.WaitLog("SIGHUP: reload: admission cache reloaded", 3000,
	    mark));
	EXPECT_TRUE(d.Connect(OptsFor(id), &err)) << err;
	EXPECT_EQ(url_.CountMatching(id.hex, true), 3u)
	    << "SIGHUP kept a cached verdict";
}

TEST_F(AdmissionTest, AllowlistBadFileAtStartup)
{
	std::string allow = d.dir + "/allow.txt";
	FILE *f = fopen(allow.c_str(), "w");
	ASSERT_NE(f, nullptr);
	fputs("# ok\nnodekey:1234\n", f);
	fclose(f);
	EXPECT_NE(d.RunToExit({ "-allow-keys=" + allow }, 5000), 0);
	EXPECT_NE(d.Log().find(allow + ":2"), std::string::npos) << d.Log();
}

// Frames pipelined right behind ClientInfo wait for the verdict and are
// delivered, in order, once the client is admitted; a refused client's
// pipelined frames go nowhere.
TEST_F(AdmissionTest, PipelinedFramesAfterAdmission)
{
	StartTs();
	ASSERT_TRUE(d.Start(TsFlags()));
	Id a = NewId(), b = NewId(), r = NewId(), f = NewId();
	SetTs(a, TsOk(a.hex));
	SetTs(b, Delayed(TsOk(b.hex), 800));
	SetTs(f, Delayed(TsOk(f.hex), 300));
	Attempt ca = Try(a);
	ASSERT_TRUE(Admitted(ca));

	std::string pipe;
	for (int i = 0; i < 3; i++)
		pipe += SendPacketFrame(a.pub, "pipelined " +
		    std::to_string(i));
	std::string err;
	Client cb = Begin(b, &err, pipe);
	ASSERT_TRUE(cb) << err;
	ASSERT_TRUE(ts_.WaitMatching(b.hex, 1, 3000));
	// Nothing is relayed while the check is pending.
	EXPECT_TRUE(Quiet(ca.c.get(), 200));
	EXPECT_FALSE(ts_.Answered(b.hex)) << "check done before Quiet ended";
	Attempt fb;
	Finish(&fb, std::move(cb), 5000);
	ASSERT_TRUE(Admitted(fb));
	for (int i = 0; i < 3; i++) {
		uint8_t src[32];
		char buf[128];
		size_t n = 0;
		ASSERT_EQ(derpc_recv_packet(ca.c.get(), src, buf, sizeof(buf),
		    &n, 3000), DERPC_OK) << derpc_error(ca.c.get());
		EXPECT_EQ(memcmp(src, b.pub, 32), 0);
		EXPECT_EQ(std::string(buf, n), "pipelined " +
		    std::to_string(i));
	}

	// Refused (404): its pipelined packet is never delivered.
	Attempt cr = Try(r, 5000, SendPacketFrame(a.pub, "from refused"));
	EXPECT_TRUE(Refused(cr));
	EXPECT_TRUE(Quiet(ca.c.get(), 300));

	// Fast start: request, ClientInfo and a packet in one write.
	std::string fp = SendPacketFrame(a.pub, "fast start");
	derpc_opts o = OptsFor(f);
	o.fast_start = true;
	o.server_pub = d.server_pub;
	o.pipeline = (const uint8_t *)fp.data();
	o.pipeline_len = fp.size();
	Client cf = d.Connect(o, &err);
	ASSERT_TRUE(cf) << err;
	uint8_t src[32];
	char buf[128];
	size_t n = 0;
	ASSERT_EQ(derpc_recv_packet(ca.c.get(), src, buf, sizeof(buf), &n,
	    3000), DERPC_OK) << derpc_error(ca.c.get());
	EXPECT_EQ(std::string(buf, n), "fast start");
	EXPECT_EQ(memcmp(src, f.pub, 32), 0);
}

// Clients that hang up while their check is pending, and a check still
// pending at shutdown: no crash, no leak (clean exit 0; clean under
// `make asan`).
TEST_F(AdmissionTest, ClosePendingChecks)
{
	StartTs();
	ASSERT_TRUE(d.Start(TsFlags()));
	std::vector<Id> ids;
	std::vector<Client> cs;
	for (int i = 0; i < 6; i++) {
		Id id = NewId();
		SetTs(id, Delayed(TsOk(id.hex), 2000));
		std::string err;
		Client c = Begin(id, &err);
		ASSERT_TRUE(c) << err;
		ids.push_back(id);
		cs.push_back(std::move(c));
	}
	// Two more of one key: a flight with several waiters, one leaves.
	Id shared = NewId();
	SetTs(shared, Delayed(TsOk(shared.hex), 2000));
	std::string err;
	Client s1 = Begin(shared, &err), s2 = Begin(shared, &err);
	ASSERT_TRUE(s1 && s2) << err;
	for (auto &id : ids)
		ASSERT_TRUE(ts_.WaitMatching(id.hex, 1, 3000));
	ASSERT_TRUE(ts_.WaitMatching(shared.hex, 1, 3000));
	// Hang up five of the six, and one waiter of the shared flight.
	for (int i = 0; i < 5; i++)
		cs[i].reset();
	s1.reset();
	// Two pending sockets left (and the varz request itself).
	EXPECT_EQ(d.WaitMetric("derpd_current_sockets", 3), 3);
	// The relay is fine meanwhile.
	Id a = NewId(), b = NewId();
	SetTs(a, TsOk(a.hex));
	SetTs(b, TsOk(b.hex));
	Attempt ca = Try(a), cb = Try(b);
	ASSERT_TRUE(Admitted(ca));
	ASSERT_TRUE(Admitted(cb));
	EXPECT_TRUE(SendRecv(ca.c.get(), cb.c.get(), "still relaying"));
	// The checks of the gone clients complete with nobody to tell.
	for (int i = 0; i < 5; i++)
		EXPECT_TRUE(ts_.WaitMatching(ids[i].hex, 1, 100));
	int64_t deadline = NowMs() + 4000;
	while (!ts_.Answered(ids[0].hex) && NowMs() < deadline)
		usleep(10000);
	EXPECT_TRUE(ts_.Answered(ids[0].hex));
	// The shared flight's remaining waiter is admitted.
	Attempt fs;
	Finish(&fs, std::move(s2), 5000);
	EXPECT_TRUE(Admitted(fs));
	// The sixth client is still pending... then let another one be
	// pending at shutdown: TearDown stops derpd and expects exit 0.
	Id last = NewId();
	SetTs(last, Delayed(TsOk(last.hex), 10000));
	Client cl = Begin(last, &err);
	ASSERT_TRUE(cl) << err;
	ASSERT_TRUE(ts_.WaitMatching(last.hex, 1, 3000));
	EXPECT_TRUE(d.Running());
	d.Stop();
	std::string log = d.Log();
	EXPECT_EQ(log.find("AddressSanitizer"), std::string::npos);
	EXPECT_EQ(log.find("LeakSanitizer"), std::string::npos);
	EXPECT_EQ(log.find("runtime error"), std::string::npos);
}

// Admission throughput against the fakes, printed (not asserted):
// checks/s with a cold cache (distinct keys) and a warm one (one key),
// next to plain connects with admission off.
TEST_F(AdmissionTest, Throughput)
{
	SetTsDefault(TsOk(std::string(64, '0')));	// every key is known
	StartTs();
	const int n = 2000, conc = 50;
	auto flags = TsFlags();
	// Every client here comes from 127.0.0.1: lift the per-source cap.
	flags.push_back("-auth-max-pending-per-source=" +
	    std::to_string(conc));
	ASSERT_TRUE(d.Start(flags));
	double cold, warm, base;
	Burst(n, conc, nullptr, &cold);
	EXPECT_EQ(d.Metric(Reqs("tailscaled")), n);
	Id id = NewId();
	EXPECT_TRUE(Admitted(Try(id)));
	Burst(n, conc, id.priv, &warm);
	EXPECT_EQ(d.Metric(Reqs("tailscaled")), n + 1);
	EXPECT_EQ(d.Metric("derpd_admission_cache{result=\"hit\"}"), n);
	{
		Derpd plain;
		ASSERT_TRUE(plain.Start());
		std::atomic<int> next{ 0 }, ok{ 0 };
		std::vector<std::thread> ts;
		auto t0 = std::chrono::steady_clock::now();
		for (int t = 0; t < conc; t++)
			ts.emplace_back([&] {
				derpc_opts o = plain.Opts();
				while (next++ < n) {
					char e[256];
					derpc *c = derpc_connect(&o, nullptr, 0,
					    e, sizeof(e));
					if (c != nullptr) {
						ok++;
						derpc_close(c);
					}
				}
			});
		for (auto &t : ts)
			t.join();
		base = std::chrono::duration<double>(
		    std::chrono::steady_clock::now() - t0).count();
		EXPECT_EQ(ok.load(), n);
		plain.Stop();
	}
	printf("[ INFO     ] admission throughput, %d connects, %d at a "
	    "time:\n", n, conc);
	printf("[ INFO     ]   cold cache (distinct keys, fake LocalAPI): "
	    "%.0f checks/s (%.2f s)\n", n / cold, cold);
	printf("[ INFO     ]   warm cache (one key):                     "
	    "%.0f checks/s (%.2f s)\n", n / warm, warm);
	printf("[ INFO     ]   admission off (baseline):                 "
	    "%.0f connects/s (%.2f s)\n", n / base, base);
	RecordProperty("cold_checks_per_s", (int)(n / cold));
	RecordProperty("warm_checks_per_s", (int)(n / warm));
	RecordProperty("baseline_connects_per_s", (int)(n / base));
}

// One source opens connections with fresh keys as fast as it can against
// an admission URL that takes 1 s per answer; a client from another
// address is still admitted within 3 s (issue 7). Pending checks are
// served round robin per source, and each source has a cap: the flood's
// excess is refused as rate_limited.
TEST_F(AdmissionTest, FloodFromOneSourceDoesNotStarveOthers)
{
	StartUrl();
	SetUrlDefault(Delayed(UrlAnswer("{\"Allow\":true}"), 1000));
	ASSERT_TRUE(d.Start({ UrlFlag() }));
	const int kMaxConnects = 2000, kFloodMs = 10000, kThreads = 4;
	std::atomic<int> started{ 0 }, failed{ 0 };
	std::atomic<bool> stop{ false };
	std::mutex fmu;
	std::vector<Client> held;	// kept open: their checks stay pending
	int64_t t0 = NowMs();
	std::vector<std::thread> flood;
	for (int t = 0; t < kThreads; t++)
		flood.emplace_back([&] {
			while (!stop && started < kMaxConnects &&
			    NowMs() - t0 < kFloodMs) {
				Id id = NewId();
				std::string err;
				Client c = Begin(id, &err, "", "127.0.0.2");
				if (!c) {
					failed++;
					usleep(1000);
					continue;
				}
				started++;
				std::lock_guard<std::mutex> g(fmu);
				held.push_back(std::move(c));
			}
		});
	// Let the flood build a queue first.
	while (started < 1000 && NowMs() - t0 < 5000)
		usleep(5000);
	int at_start = started.load();
	Id good = NewId();
	std::string err;
	int64_t t1 = NowMs();
	Client gc = Begin(good, &err, "", "127.0.0.3");
	ASSERT_TRUE(gc) << err;
	Attempt a;
	// Wait well past the bound, so the log says how long it took.
	Finish(&a, std::move(gc), 20000);
	int64_t took = NowMs() - t1;
	stop = true;
	for (auto &t : flood)
		t.join();
	printf("[ INFO     ] flood: %d connects from 127.0.0.2 (%d when the "
	    "client came, %d failed); client from 127.0.0.3 %s after %lld "
	    "ms\n", started.load(), at_start, failed.load(),
	    a.admitted ? "admitted" : "not admitted", (long long)took);
	RecordProperty("admit_ms", (int)took);
	EXPECT_GE(at_start, 100) << "the flood never got going";
	EXPECT_TRUE(Admitted(a));
	EXPECT_LT(took, 3000);
	EXPECT_EQ(url_.CountMatching(good.hex, true), 1u);
	// The cap refused part of the flood, and says so.
	auto m = d.Metrics();
	EXPECT_GT(m[Rej("rate_limited")], 0);
	{
		std::lock_guard<std::mutex> g(fmu);
		held.clear();
	}
	EXPECT_TRUE(d.Running());
}

// What tailscaled says about itself is logged, but a hostile LocalAPI
// cannot forge log lines: control bytes in BackendState are escaped, and
// a PublicKey that is not a key is not used.
TEST_F(AdmissionTest, HostileLocalApiCannotForgeLogLines)
{
	status_body_ = "{\"BackendState\":\"Stopped\\n2026-01-01T00:00:00Z "
	    "info forged line\\u001b[31m\",\"Self\":{\"PublicKey\":"
	    "\"nodekey:zz\\r\\nHost: evil\"}}";
	StartTs();
	ASSERT_TRUE(d.Start(TsFlags()));
	ASSERT_TRUE(d.WaitLog("is not logged in", 3000));
	std::string log = d.Log();
	EXPECT_NE(log.find("(state Stopped\\x0a2026-01-01T00:00:00Z info "
	    "forged line\\x1b[31m)"), std::string::npos) << log;
	EXPECT_EQ(log.find("\n2026-01-01T00:00:00Z info forged"),
	    std::string::npos) << log;
	EXPECT_EQ(log.find("\x1b"), std::string::npos);
	// No whois of the bogus self key was asked for.
	EXPECT_EQ(ts_.CountMatching("whois"), 0u);
}

// An admission URL that answers with a huge body: read no more than
// 16 KiB, and it is a bad response (refused even with fail-open).
TEST_F(AdmissionTest, HugeWebhookBodyIsABadResponse)
{
	StartUrl();
	// derper would admit this: its first 4 KiB are {"Allow":true}.
	Response big = UrlAnswer("{\"Allow\":true}" +
	    std::string(4 << 20, ' '));
	SetUrlDefault(big);
	ASSERT_TRUE(d.Start({ UrlFlag() }));	// fail-open by default
	int64_t t0 = NowMs();
	EXPECT_TRUE(Refused(Try(NewId())));
	EXPECT_LT(NowMs() - t0, 3000);
	EXPECT_EQ(d.Metric(Rej("url_bad_response")), 1);
	// A normal answer still admits.
	SetUrlDefault(UrlAnswer("{\"Allow\":true}"));
	EXPECT_TRUE(Admitted(Try(NewId())));
}

// --- -admission-policy and -admission-log ----------------------------

namespace {

// A whois answer with an identity (tags/caps are JSON text).
Response
TsWho(const std::string &hex, const std::string &login,
    const std::string &tags = "null", const std::string &caps = "{}",
    const std::string &addr = "100.64.0.7/32")
{
	Response r;
	r.body = "{\"Node\":{\"ID\":1,\"Name\":\"n-" + hex.substr(0, 8) +
	    ".tailnet.ts.net.\",\"Key\":\"nodekey:" + hex + "\",\"KeyExpiry\":"
	    "\"2099-01-01T00:00:00Z\",\"Addresses\":[\"" + addr + "\"],"
	    "\"Tags\":" + tags + "},\"UserProfile\":{\"ID\":7,\"LoginName\":\"" +
	    login + "\"},\"CapMap\":" + caps + "}";
	return r;
}

void
WriteFileAtomic(const std::string &path, const std::string &text)
{
	std::string tmp = path + ".tmp";
	FILE *f = fopen(tmp.c_str(), "w");
	ASSERT_NE(f, nullptr);
	fputs(text.c_str(), f);
	fclose(f);
	ASSERT_EQ(rename(tmp.c_str(), path.c_str()), 0);
}

std::string
Matches(const char *rule)
{
	return std::string("derpd_admission_policy_matches{rule=\"") + rule +
	    "\"}";
}

const char kPolicy[] = R"({"rules": [
  {"name": "prod-servers", "action": "allow", "tags": ["tag:prod"]},
  {"name": "no-contractors", "action": "deny", "users": ["*@contractor.example"]},
  {"name": "relay-cap", "action": "allow", "caps": ["example.com/cap/derp"]},
  {"name": "staff", "action": "allow", "users": ["*@example.com"]}
]})";

}  // namespace

// Tags, users and capabilities from the LocalAPI decide; a refusal is
// policy_denied with its rule, counted per rule, shown by "show
// admission", and each decision is a line of the audit log.
TEST_F(AdmissionTest, PolicyDecidesOnWhoisIdentity)
{
	StartTs();
	std::string pol = d.dir + "/policy.json", audit = d.dir + "/audit.log";
	std::string sock = d.dir + "/admin.sock";
	WriteFileAtomic(pol, kPolicy);
	Id staff = NewId(), contractor = NewId(), server = NewId(),
	    capped = NewId(), stranger = NewId();
	SetTs(staff, TsWho(staff.hex, "alice@example.com"));
	SetTs(contractor, TsWho(contractor.hex, "bob@contractor.example"));
	SetTs(server, TsWho(server.hex, "tagged-devices", "[\"tag:prod\"]"));
	SetTs(capped, TsWho(capped.hex, "carol@partner.example", "null",
	    "{\"example.com/cap/derp\":[{}]}"));
	SetTs(stranger, TsWho(stranger.hex, "dave@elsewhere.example"));
	auto flags = TsFlags();
	flags.push_back("-admission-policy=" + pol);
	flags.push_back("-admission-log=" + audit);
	flags.push_back("-admin-socket=" + sock);
	ASSERT_TRUE(d.Start(flags));
	EXPECT_TRUE(d.WaitLog("admission policy " + pol + ": 4 rules", 3000));

	EXPECT_TRUE(Admitted(Try(staff)));
	EXPECT_TRUE(Admitted(Try(server)));
	EXPECT_TRUE(Admitted(Try(capped)));
	size_t from = d.LogSize();
	EXPECT_TRUE(Refused(Try(contractor)));
	EXPECT_TRUE(d.WaitLog("policy_denied (tailscaled, rule no-contractors)",
	    2000, from)) << "the close names the rule";
	EXPECT_TRUE(Refused(Try(stranger)));
	EXPECT_TRUE(d.WaitLog("rule (default)", 2000, from));
	// A cached refusal still names its rule.
	EXPECT_TRUE(Refused(Try(contractor)));

	auto m = d.Metrics();
	EXPECT_EQ(m[Matches("prod-servers")], 1);
	EXPECT_EQ(m[Matches("no-contractors")], 1) << "the 2nd was cached";
	EXPECT_EQ(m[Matches("relay-cap")], 1);
	EXPECT_EQ(m[Matches("staff")], 1);
	EXPECT_EQ(m[Matches("(default)")], 1);
	EXPECT_EQ(m[Rej("policy_denied")], 3);

	std::string r = AdminCall(sock,
	    "{\"v\":1,\"id\":1,\"cmd\":\"show admission\"}\n");
	EXPECT_NE(r.find("\"rule\":\"no-contractors\",\"action\":\"deny\","
	    "\"matches\":1"), std::string::npos) << r;
	EXPECT_NE(r.find("\"rule\":\"(default)\""), std::string::npos) << r;
	EXPECT_NE(r.find("\"log\":{"), std::string::npos) << r;

	// The audit log: a JSON line per decision, identity included.
	std::string log;
	for (int i = 0; i < 50; i++) {
		log = ReadFile(audit);
		size_t n = 0;
		for (char c : log)
			n += c == '\n';
		if (n >= 5)	// the 2nd contractor line is suppressed
			break;
		usleep(50 * 1000);
	}
	EXPECT_NE(log.find("\"key\":\"nodekey:" + contractor.hex +
	    "\",\"src\":\"127.0.0.1\",\"verdict\":\"deny\",\"reason\":"
	    "\"policy_denied\",\"backend\":\"tailscaled\",\"rule\":"
	    "\"no-contractors\",\"cached\":false"), std::string::npos) << log;
	EXPECT_NE(log.find("\"user\":\"bob@contractor.example\""),
	    std::string::npos) << log;
	EXPECT_NE(log.find("\"verdict\":\"allow\",\"reason\":\"ok\","
	    "\"backend\":\"tailscaled\",\"rule\":\"prod-servers\""),
	    std::string::npos) << log;
	// The second refusal of the contractor: same key, same verdict.
	EXPECT_EQ(d.Metric("derpd_admission_log_lines{result=\"suppressed\"}"),
	    1);
}

// A bad policy is a startup error naming the file and the rule (exit 2);
// a policy without -verify-clients too.
TEST_F(AdmissionTest, PolicyBadFileAtStartup)
{
	std::string pol = d.dir + "/policy.json";
	WriteFileAtomic(pol, R"({"rules": [{"name": "x", "action": "allow",
	    "tag": ["tag:prod"]}]})");
	auto flags = TsFlags();
	flags.push_back("-admission-policy=" + pol);
	EXPECT_EQ(d.RunToExit(flags, 5000), 2);
	EXPECT_NE(d.Log().find(pol + ": rule \"x\": unknown field \"tag\""),
	    std::string::npos) << d.Log();
	WriteFileAtomic(pol, R"({"rules": []})");
	EXPECT_EQ(d.RunToExit({ "-admission-policy=" + pol }, 5000), 2);
	EXPECT_NE(d.Log().find("-admission-policy: needs -verify-clients"),
	    std::string::npos) << d.Log();
}

// A reload with a broken policy keeps the old one and says why; a
// policy that no longer admits a connected node closes it (revoked).
TEST_F(AdmissionTest, PolicyReloadKeepsOldOnErrorAndRevokes)
{
	StartTs();
	std::string pol = d.dir + "/policy.json", sock = d.dir + "/admin.sock";
	WriteFileAtomic(pol, kPolicy);
	Id staff = NewId(), server = NewId();
	SetTs(staff, TsWho(staff.hex, "alice@example.com"));
	SetTs(server, TsWho(server.hex, "tagged-devices", "[\"tag:prod\"]"));
	auto flags = TsFlags();
	flags.push_back("-admission-policy=" + pol);
	flags.push_back("-admin-socket=" + sock);
	ASSERT_TRUE(d.Start(flags));
	Attempt a = Try(staff), b = Try(server);
	ASSERT_TRUE(Admitted(a));
	ASSERT_TRUE(Admitted(b));

	WriteFileAtomic(pol, "{\"rules\": [{\"name\": \"x\"}]}");
	std::string r = AdminCall(sock, "{\"v\":1,\"id\":1,\"cmd\":\"reload\"}\n");
	EXPECT_NE(r.find("\"ok\":false"), std::string::npos) << r;
	EXPECT_NE(r.find("admission policy: -admission-policy: " + pol +
	    ": rule \\\"x\\\": no \\\"action\\\""), std::string::npos) << r;
	EXPECT_TRUE(Quiet(a.c.get(), 300)) << "the old policy stays";

	// Only tagged servers now: the staff laptop goes, the server stays.
	WriteFileAtomic(pol, R"({"rules": [
	    {"name": "prod-only", "action": "allow", "tags": ["tag:prod"]}]})");
	size_t from = d.LogSize();
	d.Kill(SIGHUP);
	EXPECT_TRUE(ClosedWithin(a.c.get(), 3000));
	EXPECT_TRUE(d.WaitLog("no longer admitted: policy_denied (tailscaled, "
	    "rule (default))", 3000, from));
	EXPECT_EQ(d.WaitMetric(Rej("revoked"), 1), 1);
	EXPECT_TRUE(SendRecv(b.c.get(), b.c.get(), "still here"));
	EXPECT_EQ(d.Metric(Matches("prod-only")), 1);
}

// With tailscaled and the admission URL both on, the webhook's request
// carries what tailscaled said about the node.
TEST_F(AdmissionTest, WebhookGetsTheIdentity)
{
	StartTs();
	StartUrl();
	Id id = NewId();
	SetTs(id, TsWho(id.hex, "alice@example.com", "[\"tag:web\"]"));
	auto flags = TsFlags();
	flags.push_back(UrlFlag());
	ASSERT_TRUE(d.Start(flags));
	EXPECT_TRUE(Admitted(Try(id)));
	auto reqs = url_.Requests();
	ASSERT_EQ(reqs.size(), 1u);
	const std::string &body = reqs[0].body;
	EXPECT_EQ(body.find("{\"NodePublic\":\"nodekey:" + id.hex +
	    "\",\"Source\":\"127.0.0.1\",\"Identity\":{"), 0u) << body;
	EXPECT_NE(body.find("\"user\":\"alice@example.com\""),
	    std::string::npos) << body;
	EXPECT_NE(body.find("\"tags\":[\"tag:web\"]"), std::string::npos) << body;
}

// The audit log: one line per (key, verdict) per interval with the count
// suppressed; after a rename and a reload the lines go to a new file.
TEST_F(AdmissionTest, AuditLogLimitsAndReopens)
{
	StartTs();
	std::string audit = d.dir + "/audit.log";
	Id id = NewId();
	SetTs(id, TsWho(id.hex, "alice@example.com"));
	auto flags = TsFlags();
	flags.push_back("-admission-log=" + audit);
	ASSERT_TRUE(d.Start(flags));
	for (int i = 0; i < 5; i++)
		ASSERT_TRUE(Admitted(Try(id)));
	EXPECT_EQ(d.WaitMetric("derpd_admission_log_lines{result=\"written\"}",
	    1), 1);
	EXPECT_EQ(d.WaitMetric(
	    "derpd_admission_log_lines{result=\"suppressed\"}", 4), 4);
	ASSERT_EQ(rename(audit.c_str(), (audit + ".1").c_str()), 0);
	size_t from = d.LogSize();
	d.Kill(SIGHUP);
	ASSERT_TRUE(d.WaitLog("admission log reloaded", 3000, from));
	Id other = NewId();
	SetTs(other, TsWho(other.hex, "bob@example.com"));
	EXPECT_TRUE(Admitted(Try(other)));
	EXPECT_EQ(d.WaitMetric("derpd_admission_log_lines{result=\"written\"}",
	    2), 2);
	std::string now = ReadFile(audit), old = ReadFile(audit + ".1");
	EXPECT_NE(now.find(other.hex), std::string::npos) << now;
	EXPECT_EQ(now.find(id.hex), std::string::npos) << now;
	EXPECT_NE(old.find(id.hex), std::string::npos) << old;
}

// test-policy: what the policy would decide now and why, from a fresh
// whois, without touching the cache or the rule counters; another
// request on the same connection waits for its reply (order kept).
TEST_F(AdmissionTest, TestPolicyIsADryRun)
{
	StartTs();
	std::string pol = d.dir + "/policy.json", sock = d.dir + "/admin.sock";
	WriteFileAtomic(pol, kPolicy);
	Id contractor = NewId(), unknown = NewId();
	SetTs(contractor, Delayed(TsWho(contractor.hex,
	    "bob@contractor.example"), 200));
	auto flags = TsFlags();
	flags.push_back("-admission-policy=" + pol);
	flags.push_back("-admin-socket=" + sock);
	ASSERT_TRUE(d.Start(flags));
	EXPECT_TRUE(d.WaitLog("admission ready", 3000));
	size_t before = ts_.CountMatching(contractor.hex);

	// Two requests in one write: the second is answered after the first.
	std::string r = AdminCall(sock, "{\"v\":1,\"id\":1,\"cmd\":"
	    "\"test-policy\",\"args\":{\"key\":\"nodekey:" + contractor.hex +
	    "\"}}\n");
	EXPECT_NE(r.find("\"id\":1,\"ok\":true"), std::string::npos) << r;
	EXPECT_NE(r.find("\"tailscaled\":\"ok\""), std::string::npos) << r;
	EXPECT_NE(r.find("\"identity\":{\"node\":\"n-"), std::string::npos) << r;
	EXPECT_NE(r.find("\"rules\":[{\"rule\":\"prod-servers\",\"action\":"
	    "\"allow\",\"match\":false},{\"rule\":\"no-contractors\","
	    "\"action\":\"deny\",\"match\":true}]"), std::string::npos) << r;
	EXPECT_NE(r.find("\"rule\":\"no-contractors\",\"verdict\":\"deny\","
	    "\"reason\":\"policy_denied\""), std::string::npos) << r;

	r = AdminCall(sock, "{\"v\":1,\"id\":2,\"cmd\":\"test-policy\","
	    "\"args\":{\"key\":\"" + unknown.hex + "\"}}\n");
	EXPECT_NE(r.find("\"tailscaled\":\"not_in_tailnet\",\"verdict\":"
	    "\"deny\",\"reason\":\"not_in_tailnet\""), std::string::npos) << r;

	// Nothing counted, nothing cached: the connect asks tailscaled again.
	EXPECT_EQ(d.Metric(Matches("no-contractors")), 0);
	EXPECT_EQ(d.Metric("derpd_admission_checks"), 0);
	EXPECT_TRUE(Refused(Try(contractor)));
	EXPECT_EQ(ts_.CountMatching(contractor.hex), before + 2);
	EXPECT_EQ(d.Metric(Matches("no-contractors")), 1);

	// Replies stay in order: a show behind a pending test-policy.
	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, sock.c_str(), sizeof(sun.sun_path) - 1);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_NE(fd, -1);
	ASSERT_EQ(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	std::string two = "{\"v\":1,\"id\":7,\"cmd\":\"test-policy\",\"args\":"
	    "{\"key\":\"" + contractor.hex + "\"}}\n{\"v\":1,\"id\":8,\"cmd\":"
	    "\"show admission\"}\n";
	ASSERT_EQ(write(fd, two.data(), two.size()), (ssize_t)two.size());
	shutdown(fd, SHUT_WR);
	std::string all;
	char buf[4096];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		all.append(buf, (size_t)n);
	close(fd);
	size_t a7 = all.find("\"id\":7,"), a8 = all.find("\"id\":8,");
	ASSERT_NE(a7, std::string::npos) << all;
	ASSERT_NE(a8, std::string::npos) << all;
	EXPECT_LT(a7, a8) << all;

	// A client that leaves before its answer: the daemon carries on.
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_EQ(connect(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	std::string one = "{\"v\":1,\"id\":9,\"cmd\":\"test-policy\",\"args\":"
	    "{\"key\":\"" + contractor.hex + "\"}}\n";
	ASSERT_EQ(write(fd, one.data(), one.size()), (ssize_t)one.size());
	close(fd);
	usleep(400 * 1000);
	r = AdminCall(sock, "{\"v\":1,\"id\":3,\"cmd\":\"show admission\"}\n");
	EXPECT_NE(r.find("\"ok\":true"), std::string::npos) << r;
	EXPECT_TRUE(d.Running());
}

// -admission-log=syslog: the lines go to syslog(3) (facility authpriv)
// instead of a file; a reload has nothing to reopen.
TEST_F(AdmissionTest, AuditLogToSyslog)
{
	StartTs();
	Id id = NewId();
	SetTs(id, TsWho(id.hex, "alice@example.com"));
	auto flags = TsFlags();
	flags.push_back("-admission-log=syslog");
	ASSERT_TRUE(d.Start(flags));
	EXPECT_TRUE(Admitted(Try(id)));
	EXPECT_EQ(d.WaitMetric("derpd_admission_log_lines{result=\"written\"}",
	    1), 1);
	size_t from = d.LogSize();
	d.Kill(SIGHUP);
	EXPECT_TRUE(d.WaitLog("admission log reloaded", 3000, from));
	EXPECT_NE(access((d.dir + "/syslog").c_str(), F_OK), 0);
}

// A tag removed from a node (tailscaled now says so) closes its live
// connection at the next -auth-reverify round (revoked), naming the rule.
TEST_F(AdmissionTest, PolicyReverifyClosesANodeThatLostItsTag)
{
	StartTs();
	std::string pol = d.dir + "/policy.json";
	WriteFileAtomic(pol, R"({"rules": [
	    {"name": "prod-only", "action": "allow", "tags": ["tag:prod"]}]})");
	Id server = NewId();
	SetTs(server, TsWho(server.hex, "tagged-devices", "[\"tag:prod\"]"));
	auto flags = TsFlags();
	flags.push_back("-admission-policy=" + pol);
	flags.push_back("-auth-reverify=200ms");
	ASSERT_TRUE(d.Start(flags));
	Attempt a = Try(server);
	ASSERT_TRUE(Admitted(a));
	EXPECT_TRUE(Quiet(a.c.get(), 500)) << "re-verified and kept";

	size_t from = d.LogSize();
	SetTs(server, TsWho(server.hex, "tagged-devices", "[\"tag:dev\"]"));
	EXPECT_TRUE(ClosedWithin(a.c.get(), 3000));
	EXPECT_TRUE(d.WaitLog("no longer admitted: policy_denied (tailscaled, "
	    "rule (default))", 3000, from));
	EXPECT_EQ(d.WaitMetric(Rej("revoked"), 1), 1);
	EXPECT_TRUE(Refused(Try(server)));
}
