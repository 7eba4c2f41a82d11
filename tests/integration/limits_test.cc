// SPDX-License-Identifier: ISC
// limits_test.cc: derper's limits against the real daemon: the accept
// limit (-accept-connection-limit/-burst) closes connections past the
// bucket and counts them; -rate-config delays reading from a client that
// sends too fast, with every frame delivered whole, and a reload changes
// the limit.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "harness.h"

namespace {

class LimitsTest : public DerpdTest {
protected:
	bool StartWithAdmin(std::vector<std::string> extra = {})
	{
		sock_ = d.dir + "/admin.sock";
		extra.push_back("--admin-socket=" + sock_);
		return d.Start(extra);
	}
	// derpctl -j args; the parsed result (caller frees), NULL on error.
	cJSON *Ctl(const std::string &args)
	{
		const char *e = getenv("DERPD");
		std::string bin = e ? std::string(e) : "build/derpd";
		bin = bin.substr(0, bin.rfind('/') + 1) + "derpctl";
		std::string cmd = bin + " -j -s " + sock_ + " " + args +
		    " 2>/dev/null </dev/null";
		FILE *f = popen(cmd.c_str(), "r");
		if (f == nullptr)
			return nullptr;
		std::string out;
		char b[4096];
		size_t n;
		while ((n = fread(b, 1, sizeof(b), f)) > 0)
			out.append(b, n);
		int rc = pclose(f);
		if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
			return nullptr;
		return cJSON_Parse(out.c_str());
	}
	// A number inside "show stats" (its "stats" object), -1 if absent.
	double Stat(const char *name)
	{
		cJSON *r = Ctl("show stats");
		double v = -1;
		cJSON *st = cJSON_GetObjectItem(r, "stats");
		cJSON *x = cJSON_GetObjectItem(st, name);
		if (cJSON_IsNumber(x))
			v = x->valuedouble;
		cJSON_Delete(r);
		return v;
	}
	// A number of the (first) connection of key in "show client".
	double ClientField(const uint8_t key[32], const char *name)
	{
		cJSON *r = Ctl("show client nodekey:" + Hex(key, 32));
		double v = -1;
		cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(r,
		    "clients"), 0);
		cJSON *x = cJSON_GetObjectItem(c, name);
		if (cJSON_IsNumber(x))
			v = x->valuedouble;
		cJSON_Delete(r);
		return v;
	}
	void WriteRate(const std::string &json)
	{
		std::string tmp = d.dir + "/rate.json.tmp";
		std::ofstream(tmp) << json;
		ASSERT_EQ(rename(tmp.c_str(), RatePath().c_str()), 0);
	}
	std::string RatePath() { return d.dir + "/rate.json"; }
	std::string sock_;
};

// A TCP connection that sends a request and reports whether any answer
// came back (true) or the server closed it without a byte (false).
bool
Answered(int port)
{
	struct sockaddr_in sin;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool got = false;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || connect(fd, (struct sockaddr *)&sin,
	    sizeof(sin)) == -1) {
		if (fd != -1)
			close(fd);
		return false;
	}
	static const char req[] = "GET /generate_204 HTTP/1.1\r\n"
	    "Host: x\r\n\r\n";
	(void)send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL);
	struct pollfd p = { fd, POLLIN, 0 };
	if (poll(&p, 1, 5000) == 1) {
		char b[256];
		got = read(fd, b, sizeof(b)) > 0;
	}
	close(fd);
	return got;
}

}  // namespace

// Rate 0 never refills: exactly the burst is accepted, every later
// connection is closed at once and counted, and the daemon goes on (the
// admin socket is not limited).
TEST_F(LimitsTest, AcceptFloodBeyondBurstIsClosedAndCounted)
{
	ASSERT_TRUE(StartWithAdmin({ "-accept-connection-limit=0",
	    "-accept-connection-burst=4" }));
	int answered = 0, refused = 0;
	for (int i = 0; i < 12; i++)
		(Answered(d.port) ? answered : refused)++;
	EXPECT_EQ(answered, 4);
	EXPECT_EQ(refused, 8);
	EXPECT_EQ(Stat("derpd_accepts_refused_rate_limited"), 8);
	EXPECT_TRUE(d.WaitLog("over -accept-connection-limit", 3000));
	EXPECT_TRUE(d.Running());
}

// The defaults limit nothing: a flood of connects is all answered.
TEST_F(LimitsTest, DefaultAcceptLimitIsUnlimited)
{
	ASSERT_TRUE(StartWithAdmin({ "-accept-connection-limit=+Inf",
	    "-accept-connection-burst=9223372036854775807" }));
	for (int i = 0; i < 30; i++)
		ASSERT_TRUE(Answered(d.port)) << i;
	EXPECT_EQ(Stat("derpd_accepts_refused_rate_limited"), 0);
	EXPECT_EQ(d.Metric("derpd_accepts_refused{reason=\"rate_limited\"}"),
	    0);
}

// A bad -rate-config is a startup error naming the flag.
TEST_F(LimitsTest, BadRateConfigAtStartupExits2)
{
	std::ofstream(RatePath()) << "{\"PerClientRateLimitBytesPerSec\": -5}";
	EXPECT_EQ(d.RunToExit({ "-rate-config=" + RatePath() }, 5000), 2);
	EXPECT_NE(d.Log().find("-rate-config"), std::string::npos) << d.Log();
	EXPECT_EQ(d.RunToExit({ "-rate-config=" + d.dir + "/none.json" },
	    5000), 2);
}

// 300 KB through a client limited to 100 KB/s with derper's smallest
// bucket (65568): every packet arrives whole and in order, the limiter
// paused reading (counted for the client and in total), and the transfer
// took at least what the bucket allows, with a factor of 2 to spare.
TEST_F(LimitsTest, RateLimitedClientGetsWholeFramesAndIsSlowed)
{
	const int n = 30, len = 10000, rate = 100000;

	WriteRate("{\"PerClientRateLimitBytesPerSec\": " +
	    std::to_string(rate) + ", \"PerClientRateBurstBytes\": 1}");
	ASSERT_TRUE(StartWithAdmin({ "-rate-config=" + RatePath() }));
	Client a = d.Connect(), b = d.Connect();
	ASSERT_TRUE(a && b);
	EXPECT_EQ(d.Metric("derp_rate_limit_per_client_bytes_per_second"),
	    rate);
	EXPECT_EQ(d.Metric("derp_rate_limit_per_client_burst_bytes"), 65568);
	auto t0 = Clock::now();
	std::thread sender([&] {
		std::string p(len, '\0');
		for (int i = 0; i < n; i++) {
			memset(&p[0], 'a' + i % 26, len);
			if (derpc_send_packet(a.get(), derpc_pub(b.get()),
			    p.data(), p.size()) != DERPC_OK)
				return;
		}
	});
	std::vector<char> buf(len + 16);
	int got = 0;
	for (; got < n; got++) {
		uint8_t src[32];
		size_t plen = 0;
		if (derpc_recv_packet(b.get(), src, buf.data(), buf.size(),
		    &plen, 10000) != DERPC_OK)
			break;
		ASSERT_EQ(plen, (size_t)len) << got;
		ASSERT_EQ(memcmp(src, derpc_pub(a.get()), 32), 0);
		ASSERT_EQ(std::string(buf.data(), plen),
		    std::string(len, (char)('a' + got % 26))) << got;
	}
	int64_t ms = MsSince(t0);
	sender.join();
	EXPECT_EQ(got, n);
	// Each frame costs its length (10032 with the key); past the bucket
	// the rest comes at the rate.
	int64_t floor_ms = ((int64_t)n * (len + 32) - 65568) * 1000 / rate;
	EXPECT_GE(ms, floor_ms / 2) << "floor " << floor_ms;
	EXPECT_GT(ClientField(derpc_pub(a.get()), "rate_limited_reads"), 0);
	EXPECT_GT(ClientField(derpc_pub(a.get()), "rate_limited_ms"), 0);
	// The receiver sent nothing: never delayed.
	EXPECT_EQ(ClientField(derpc_pub(b.get()), "rate_limited_reads"), 0);
	EXPECT_GT(d.Metric("derp_rate_limit_per_client_waited"), 0);
	EXPECT_GT(Stat("derp_rate_limit_per_client_waited"), 0);
}

// Reload: a bad file keeps the old limit; a good one applies to clients
// already connected, from their next frame.
TEST_F(LimitsTest, ReloadChangesTheLimit)
{
	const int len = 10000;

	WriteRate("{\"PerClientRateLimitBytesPerSec\": 20000}");
	ASSERT_TRUE(StartWithAdmin({ "-rate-config=" + RatePath() }));
	Client a = d.Connect(), b = d.Connect();
	ASSERT_TRUE(a && b);
	EXPECT_EQ(d.Metric("derp_rate_limit_per_client_bytes_per_second"),
	    20000);
	WriteRate("{\"PerClientRateLimitBytesPerSec\": ");
	cJSON *r = Ctl("reload");
	EXPECT_EQ(r, nullptr);	// derpctl exits 1: a part failed
	cJSON_Delete(r);
	EXPECT_TRUE(d.WaitLog("reload failed for rate config", 3000));
	EXPECT_EQ(d.Metric("derp_rate_limit_per_client_bytes_per_second"),
	    20000);

	WriteRate("{\"perclientratelimitbytespersec\": 0}");
	size_t from = d.LogSize();
	d.Kill(SIGHUP);
	ASSERT_TRUE(d.WaitLog("rate config applied: client-rate=0 bytes/sec",
	    3000, from));
	EXPECT_EQ(d.WaitMetric("derp_rate_limit_per_client_bytes_per_second",
	    0), 0);
	// 1 MB, which at 20 KB/s would take 50 s: no delay now.
	std::string p(len, 'x');
	for (int i = 0; i < 100; i++) {
		ASSERT_EQ(derpc_send_packet(a.get(), derpc_pub(b.get()),
		    p.data(), p.size()), DERPC_OK) << i;
		uint8_t src[32];
		size_t plen = 0;
		std::vector<char> buf(len);
		ASSERT_EQ(derpc_recv_packet(b.get(), src, buf.data(),
		    buf.size(), &plen, 10000), DERPC_OK) << i;
	}
	EXPECT_EQ(ClientField(derpc_pub(a.get()), "rate_limited_reads"), 0);

	// And back to a limit: the connected client is limited again.
	WriteRate("{\"PerClientRateLimitBytesPerSec\": 20000}");
	r = Ctl("reload");
	EXPECT_NE(r, nullptr);
	cJSON_Delete(r);
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(derpc_send_packet(a.get(), derpc_pub(b.get()),
		    p.data(), p.size()), DERPC_OK) << i;
	int64_t w = d.WaitMetricAtLeast("derp_rate_limit_per_client_waited", 1,
	    5000);
	EXPECT_GE(w, 1);
}

// A relay started with no rate keeps no limiter per client; a reload that
// sets one limits the clients already connected from their next frame.
TEST_F(LimitsTest, ReloadFromNoRateLimitsConnectedClients)
{
	const int len = 10000;

	WriteRate("{\"PerClientRateLimitBytesPerSec\": 0}");
	ASSERT_TRUE(StartWithAdmin({ "-rate-config=" + RatePath() }));
	Client a = d.Connect(), b = d.Connect();
	ASSERT_TRUE(a && b);
	std::string p(len, 'y');
	std::vector<char> buf(len);
	for (int i = 0; i < 20; i++) {
		ASSERT_EQ(derpc_send_packet(a.get(), derpc_pub(b.get()),
		    p.data(), p.size()), DERPC_OK) << i;
		uint8_t src[32];
		size_t plen = 0;
		ASSERT_EQ(derpc_recv_packet(b.get(), src, buf.data(),
		    buf.size(), &plen, 10000), DERPC_OK) << i;
	}
	EXPECT_EQ(ClientField(derpc_pub(a.get()), "rate_limited_reads"), 0);

	WriteRate("{\"PerClientRateLimitBytesPerSec\": 20000}");
	cJSON *r = Ctl("reload");
	EXPECT_NE(r, nullptr);
	cJSON_Delete(r);
	for (int i = 0; i < 10; i++)
		ASSERT_EQ(derpc_send_packet(a.get(), derpc_pub(b.get()),
		    p.data(), p.size()), DERPC_OK) << i;
	EXPECT_GE(d.WaitMetricAtLeast("derp_rate_limit_per_client_waited", 1,
	    5000), 1);
	EXPECT_GT(ClientField(derpc_pub(a.get()), "rate_limited_reads"), 0);
}
