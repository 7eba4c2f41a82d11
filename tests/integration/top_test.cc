// SPDX-License-Identifier: ISC
// top_test.cc: derpctl top against the real daemon through its read-only
// admin socket: in a real terminal (a tmux session of our own, on its own
// server socket), while build/derpcat sends packets to a connected client,
// the screen shows the header and that client's row with a packet rate;
// "q" ends it with exit status 0. Without a terminal, -n frames are
// printed plainly.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "harness.h"

namespace {

std::string
BinDir()
{
	const char *d = getenv("DERPD");
	std::string bin = d ? std::string(d) : "build/derpd";
	return bin.substr(0, bin.rfind('/') + 1);
}

// Run a shell command; its exit status and standard output.
int
Sh(const std::string &cmd, std::string *out = nullptr)
{
	FILE *p = popen(cmd.c_str(), "r");
	if (p == nullptr)
		return -1;
	std::string s;
	char b[4096];
	size_t n;
	while ((n = fread(b, 1, sizeof(b), p)) > 0)
		s.append(b, n);
	int rc = pclose(p);
	if (out != nullptr)
		*out = s;
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

class TopTest : public DerpdTest {
protected:
	void TearDown() override
	{
		if (!tmux_.empty())
			Sh(tmux_ + " kill-server >/dev/null 2>&1");
		DerpdTest::TearDown();
	}
	std::string tmux_;	// "tmux -f /dev/null -S <socket>"
};

// The line of the screen that holds needle, "" if none.
std::string
LineWith(const std::string &screen, const std::string &needle)
{
	size_t at = screen.find(needle);
	if (at == std::string::npos)
		return "";
	size_t b = screen.rfind('\n', at), e = screen.find('\n', at);
	b = b == std::string::npos ? 0 : b + 1;
	return screen.substr(b, e == std::string::npos ? e : e - b);
}

TEST_F(TopTest, LiveViewInTmuxShowsAClientAndQuitsOnQ)
{
	ASSERT_EQ(Sh("command -v tmux >/dev/null"), 0)
	    << "tmux missing: contrib/install-deps.sh";
	std::string ro = d.dir + "/ro.sock";
	ASSERT_TRUE(d.Start({ "-admin-socket", d.dir + "/rw.sock",
	    "-admin-socket-ro", ro }));
	Client b = d.Connect();
	ASSERT_TRUE(b);
	std::string key = Hex(derpc_pub(b.get()), 32);
	std::string url = "http://127.0.0.1:" + std::to_string(d.port) +
	    "/derp";

	// derpcat sends to b, up to 60 packets 0.1 s apart, in the
	// background, until the stop file exists.
	std::string stop = d.dir + "/stop-traffic";
	std::string sender = "for i in $(seq 60); do [ -e " + stop +
	    " ] && break; echo hello | " + BinDir() +
	    "derpcat -s " + url + " send " + key + " 2>/dev/null; " +
	    "sleep 0.1; done";
	std::thread traffic([&] { Sh(sender); });

	tmux_ = "tmux -f /dev/null -S " + d.dir + "/tmux.sock";
	std::string rc = d.dir + "/top.rc";
	std::string cmd = tmux_ + " new-session -d -s top -x 132 -y 30 '" +
	    BinDir() + "derpctl -s " + ro + " top -d 0.5; echo exit=$? >" +
	    rc + "'";
	ASSERT_EQ(Sh(cmd), 0) << cmd;

	// Up to 10 s for a frame with b's row and a packet rate on it.
	std::string screen, row;
	auto t0 = Clock::now();
	while (MsSince(t0) < 10000) {
		Sh(tmux_ + " capture-pane -p -t top", &screen);
		row = LineWith(screen, "nodekey:" + key.substr(0, 6));
		if (screen.find("derpctl top - " + ro) != std::string::npos &&
		    screen.find("PKTS/S OUT") != std::string::npos &&
		    !row.empty() && row.find(" - ") == std::string::npos &&
		    row.find("127.0.0.1:") != std::string::npos) {
			// PKTS/S OUT is the fourth column: not "0".
			char k[64], a[64], in[16], out[16];
			if (sscanf(row.c_str(), "%63s %63s %15s %15s", k, a,
			    in, out) == 4 && std::string(out) != "0")
				break;
		}
		std::this_thread::sleep_for(std::chrono::milliseconds(200));
	}
	Sh("touch " + stop);
	printf("tmux screen:\n%s", screen.c_str());
	EXPECT_NE(screen.find("derpctl top - " + ro), std::string::npos);
	EXPECT_NE(screen.find("KEY"), std::string::npos);
	ASSERT_FALSE(row.empty()) << screen;
	EXPECT_EQ(row.find(" - "), std::string::npos) << row;

	ASSERT_EQ(Sh(tmux_ + " send-keys -t top q"), 0);
	std::string got;
	t0 = Clock::now();
	while (MsSince(t0) < 5000 && got.empty()) {
		got = ReadFile(rc);
		if (got.empty())
			std::this_thread::sleep_for(
			    std::chrono::milliseconds(100));
	}
	EXPECT_EQ(got, "exit=0\n");
	traffic.join();
}

// Not a terminal: frames printed one after another, no escapes; bad
// flags are refused.
TEST_F(TopTest, PlainFramesAndFlags)
{
	std::string ro = d.dir + "/ro.sock";
	ASSERT_TRUE(d.Start({ "-admin-socket", d.dir + "/rw.sock",
	    "-admin-socket-ro", ro }));
	Client b = d.Connect();
	ASSERT_TRUE(b);
	std::string key = Hex(derpc_pub(b.get()), 32);
	std::string ctl = BinDir() + "derpctl -s " + ro + " top";
	std::string out;
	ASSERT_EQ(Sh(ctl + " -d 0.2 -n 2 </dev/null", &out), 0) << out;
	size_t first = out.find("derpctl top - ");
	ASSERT_NE(first, std::string::npos) << out;
	EXPECT_NE(out.find("derpctl top - ", first + 1), std::string::npos)
	    << out;
	EXPECT_EQ(out.find('\033'), std::string::npos) << out;
	EXPECT_NE(out.find("nodekey:" + key.substr(0, 6)), std::string::npos)
	    << out;
	EXPECT_NE(Sh(ctl + " -d 0 -n 1 2>/dev/null"), 0);
	EXPECT_NE(Sh(ctl + " -n 0 2>/dev/null"), 0);
	EXPECT_NE(Sh(ctl + " extra 2>/dev/null"), 0);
	EXPECT_NE(Sh(BinDir() + "derpctl -j -s " + ro + " top 2>/dev/null"), 0);
}

} // namespace
