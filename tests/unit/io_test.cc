// SPDX-License-Identifier: ISC
// io_test.cc: io over a socketpair: an idle io gives its buffers back
// (io_trim) and makes them again for the next bytes either way.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include <event2/buffer.h>
#include <event2/event.h>
#include <gtest/gtest.h>

#include "io.h"

namespace {

struct Ctx {
	struct io	*io = nullptr;
	std::string	 got;
	int		 events = 0;
};

void
OnRead(void *arg)
{
	Ctx *c = static_cast<Ctx *>(arg);
	struct evbuffer *in = io_input(c->io);
	size_t n = evbuffer_get_length(in);
	std::string s(n, '\0');

	evbuffer_remove(in, &s[0], n);
	c->got += s;
}

void
OnEvent(void *arg, enum io_event, const char *)
{
	static_cast<Ctx *>(arg)->events++;
}

const struct io_cbs kCbs = { OnRead, nullptr, OnEvent };

class IoTest : public ::testing::Test {
protected:
	void SetUp() override
	{
		ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0,
		    fds_), 0);
		ASSERT_NE(base_ = event_base_new(), nullptr);
		ASSERT_NE(ctx_.io = io_new(base_, fds_[0], nullptr, &kCbs,
		    &ctx_), nullptr);
	}
	void TearDown() override
	{
		io_free(ctx_.io);	// closes fds_[0]
		close(fds_[1]);
		event_base_free(base_);
		io_thread_done();
	}
	// Run the loop until the io has read want in all (bounded).
	void ReadUntil(const std::string &want)
	{
		for (int i = 0; i < 200 && ctx_.got != want; i++)
			event_base_loop(base_, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		ASSERT_EQ(ctx_.got, want);
	}
	std::string PeerRead()
	{
		char buf[256];
		ssize_t n = read(fds_[1], buf, sizeof(buf));
		return n > 0 ? std::string(buf, (size_t)n) : std::string();
	}
	int fds_[2] = { -1, -1 };
	struct event_base *base_ = nullptr;
	Ctx ctx_;
};

TEST_F(IoTest, TrimmedBuffersComeBackForReadsAndWrites)
{
	ASSERT_EQ(write(fds_[1], "hello", 5), 5);
	ReadUntil("hello");

	struct evbuffer *in = io_input(ctx_.io);
	io_trim(ctx_.io);
	// The input given back: a trimmed io hands out the stand-in.
	EXPECT_NE(io_input(ctx_.io), in);
	EXPECT_EQ(evbuffer_get_length(io_input(ctx_.io)), 0u);
	EXPECT_EQ(io_output_len(ctx_.io), 0u);

	// Bytes in after the trim: a new input buffer takes them.
	ASSERT_EQ(write(fds_[1], "again", 5), 5);
	ReadUntil("helloagain");

	// Output after the trim: io_output makes a buffer, the peer gets it.
	io_trim(ctx_.io);
	ASSERT_EQ(evbuffer_add(io_output(ctx_.io), "reply", 5), 0);
	io_flush(ctx_.io);
	EXPECT_EQ(PeerRead(), "reply");
	EXPECT_EQ(ctx_.events, 0);
}

TEST_F(IoTest, TrimKeepsPendingOutput)
{
	ASSERT_EQ(evbuffer_add(io_output(ctx_.io), "queued", 6), 0);
	io_trim(ctx_.io);
	EXPECT_EQ(io_output_len(ctx_.io), 6u);
	io_flush(ctx_.io);
	EXPECT_EQ(PeerRead(), "queued");
}

TEST_F(IoTest, StandInIsEmptyAtEveryHandOut)
{
	io_trim(ctx_.io);
	// Nobody should add to an input; if somebody did, the next caller
	// still sees no input.
	evbuffer_add(io_input(ctx_.io), "junk", 4);
	EXPECT_EQ(evbuffer_get_length(io_input(ctx_.io)), 0u);
	ASSERT_EQ(write(fds_[1], "x", 1), 1);
	ReadUntil("x");
}

}  // namespace
