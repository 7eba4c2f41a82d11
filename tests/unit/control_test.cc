// SPDX-License-Identifier: ISC
// control_test.cc: the admin protocol's request decoder, and the bound on
// events queued from worker threads, on an event base stepped by hand.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <gtest/gtest.h>

#include "control.h"
#include "control_int.h"
#include "derpd.h"

namespace {

struct Parsed {
	int rc;
	ctl_request rq;
	explicit Parsed(const std::string &line, int ro = 0)
	{
		rc = control_request_parse(line.data(), line.size(), ro, &rq);
	}
	~Parsed() { control_request_cleanup(&rq); }
	std::string code() const { return rq.rq_code ? rq.rq_code : ""; }
};

}  // namespace

TEST(ControlParse, GoodRequest)
{
	Parsed p("{\"v\":1,\"id\":42,\"cmd\":\"show client\","
	    "\"args\":{\"key\":\"x\"},\"extra\":[1]}");
	ASSERT_EQ(p.rc, 0) << p.code();
	EXPECT_EQ(p.rq.rq_id, 42);
	EXPECT_STREQ(p.rq.rq_name, "show client");
	EXPECT_GE(p.rq.rq_cmd, 0);
	ASSERT_NE(p.rq.rq_args, nullptr);
	EXPECT_NE(cJSON_GetObjectItem(p.rq.rq_args, "key"), nullptr);
}

TEST(ControlParse, NotAnObject)
{
	for (const char *s : { "", "nonsense", "[1,2]", "\"show stats\"",
	    "42", "null", "{\"v\":1,\"cmd\":\"show stats\"" }) {
		Parsed p(s);
		EXPECT_EQ(p.rc, -1) << s;
		EXPECT_EQ(p.code(), "bad_request") << s;
		EXPECT_EQ(p.rq.rq_id, 0) << s;
	}
}

TEST(ControlParse, VersionAndCmd)
{
	Parsed nov("{\"id\":3,\"cmd\":\"show stats\"}");
	EXPECT_EQ(nov.rc, -1);
	EXPECT_EQ(nov.code(), "bad_request");
	EXPECT_EQ(nov.rq.rq_id, 3) << "the id is answered even when refused";
	Parsed v2("{\"v\":2,\"id\":1,\"cmd\":\"show stats\"}");
	EXPECT_EQ(v2.code(), "bad_request");
	Parsed vs("{\"v\":\"1\",\"id\":1,\"cmd\":\"show stats\"}");
	EXPECT_EQ(vs.code(), "bad_request");
	Parsed frac("{\"v\":1.5,\"id\":1,\"cmd\":\"show stats\"}");
	EXPECT_EQ(frac.code(), "bad_request");
	Parsed nocmd("{\"v\":1,\"id\":1}");
	EXPECT_EQ(nocmd.code(), "bad_request");
	Parsed numcmd("{\"v\":1,\"id\":1,\"cmd\":7}");
	EXPECT_EQ(numcmd.code(), "bad_request");
	Parsed unk("{\"v\":1,\"id\":1,\"cmd\":\"show\"}");
	EXPECT_EQ(unk.code(), "unknown_command") << "no prefix matching";
	Parsed nonobj("{\"v\":1,\"id\":1,\"cmd\":\"show stats\",\"args\":[]}");
	EXPECT_EQ(nonobj.rc, 0);
	EXPECT_EQ(nonobj.rq.rq_args, nullptr);
}

TEST(ControlParse, ReadOnlySocketOnlyShows)
{
	for (const char *c : { "show clients", "show client", "show rejects",
	    "show stats", "show admission", "show mesh" }) {
		Parsed p(std::string("{\"v\":1,\"cmd\":\"") + c + "\"}", 1);
		EXPECT_EQ(p.rc, 0) << c;
	}
	for (const char *c : { "kick", "reload", "log verbose", "log brief",
	    "monitor" }) {
		Parsed p(std::string("{\"v\":1,\"cmd\":\"") + c + "\"}", 1);
		EXPECT_EQ(p.rc, -1) << c;
		EXPECT_EQ(p.code(), "permission_denied") << c;
		Parsed rw(std::string("{\"v\":1,\"cmd\":\"") + c + "\"}", 0);
		EXPECT_EQ(rw.rc, 0) << c;
	}
}

TEST(ControlParse, CleanupTwiceIsSafe)
{
	ctl_request rq;
	const char *s = "{\"v\":1,\"cmd\":\"show stats\"}";
	ASSERT_EQ(control_request_parse(s, strlen(s), 0, &rq), 0);
	control_request_cleanup(&rq);
	control_request_cleanup(&rq);
}

namespace {

// A control socket on a private base, with one client connected to it.
class ControlLoop : public ::testing::Test {
protected:
	void SetUp() override
	{
		char tmpl[] = "/tmp/derpd-ctl-XXXXXX";
		ASSERT_NE(mkdtemp(tmpl), nullptr);
		dir_ = tmpl;
		path_ = dir_ + "/admin.sock";
		memset(&env_, 0, sizeof(env_));
		env_.d_base = base_ = event_base_new();
		ASSERT_NE(base_, nullptr);
		char err[256] = "";
		ct_ = control_new(&env_, path_.c_str(), nullptr, nullptr, err,
		    sizeof(err));
		ASSERT_NE(ct_, nullptr) << err;
		env_.d_control = ct_;
		fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
		    path_.c_str());
		ASSERT_EQ(connect(fd_, (struct sockaddr *)&sun, sizeof(sun)),
		    0);
		fcntl(fd_, F_SETFL, fcntl(fd_, F_GETFL) | O_NONBLOCK);
	}
	void TearDown() override
	{
		if (fd_ != -1)
			close(fd_);
		control_free(ct_);
		if (base_ != nullptr)
			event_base_free(base_);
		rmdir(dir_.c_str());
	}

	// Step the loop and read what the daemon sent, until want lines
	// (or ms pass); returns the lines read, in order.
	std::vector<std::string> Lines(size_t want, int ms = 3000)
	{
		auto end = std::chrono::steady_clock::now() +
		    std::chrono::milliseconds(ms);
		std::vector<std::string> out;
		while (out.size() < want &&
		    std::chrono::steady_clock::now() < end) {
			event_base_loop(base_, EVLOOP_NONBLOCK);
			char b[65536];
			ssize_t n = read(fd_, b, sizeof(b));
			if (n > 0)
				buf_.append(b, (size_t)n);
			else
				usleep(1000);
			size_t nl;
			while ((nl = buf_.find('\n')) != std::string::npos) {
				out.push_back(buf_.substr(0, nl));
				buf_.erase(0, nl + 1);
			}
		}
		return out;
	}

	int64_t Counter(const std::string &name)
	{
		struct evbuffer *b = evbuffer_new();
		control_varz(ct_, b);
		std::string text((const char *)evbuffer_pullup(b, -1),
		    evbuffer_get_length(b));
		evbuffer_free(b);
		size_t p = text.find("\n" + name + " ");
		return p == std::string::npos ? -1 :
		    strtoll(text.c_str() + p + name.size() + 2, nullptr, 10);
	}

	// A client.reject event whose reason carries n.
	void Event(int n)
	{
		uint8_t key[32] = {};
		struct sockaddr_in sin = {};
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		std::string reason = "r" + std::to_string(n);
		events_client(&env_.d_events, CLIENT_REJECT, key,
		    (const struct sockaddr *)&sin, 0, reason.c_str());
	}

	static std::string EventLine(int n)
	{
		return "{\"v\":1,\"id\":9,\"event\":\"client.reject\","
		    "\"data\":{\"key\":\"nodekey:" + std::string(64, '0') +
		    "\",\"source\":\"127.0.0.1\",\"reason\":\"r" +
		    std::to_string(n) + "\"}}";
	}

	std::string dir_, path_, buf_;
	struct derpd env_;
	struct event_base *base_ = nullptr;
	struct control *ct_ = nullptr;
	int fd_ = -1;
};

}  // namespace

// Events posted faster than the loop drains them wait in a queue of at
// most 4,096; the rest are dropped, counted, and the monitor is told.
TEST_F(ControlLoop, EventQueueIsBounded)
{
	std::string req = "{\"v\":1,\"id\":9,\"cmd\":\"monitor\"}\n";
	ASSERT_EQ(write(fd_, req.data(), req.size()), (ssize_t)req.size());
	auto r = Lines(1);
	ASSERT_EQ(r.size(), 1u);
	EXPECT_NE(r[0].find("\"monitoring\":true"), std::string::npos) << r[0];
	EXPECT_TRUE(control_monitoring(ct_));
	/* The loop does not run while these are posted. */
	for (int i = 0; i < 5000; i++)
		Event(i);
	EXPECT_EQ(Counter("derpd_admin_event_queue_drops"), 5000 - 4096);
	auto ev = Lines(4096);
	ASSERT_EQ(ev.size(), 4096u);
	EXPECT_EQ(ev[0], EventLine(0));
	EXPECT_EQ(ev[4095], EventLine(4095));
	EXPECT_TRUE(Lines(1, 100).empty());
	/* The next event is preceded by the gap notice. */
	Event(7);
	auto tail = Lines(2);
	ASSERT_EQ(tail.size(), 2u);
	EXPECT_EQ(tail[0], "{\"v\":1,\"id\":9,\"event\":\"monitor.dropped\","
	    "\"data\":{\"dropped\":904}}");
	EXPECT_EQ(tail[1], EventLine(7));
	EXPECT_EQ(Counter("derpd_admin_monitor_events_dropped"), 0);
	EXPECT_EQ(Counter("derpd_admin_read_pauses"), 0);
}
