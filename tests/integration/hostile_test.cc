// SPDX-License-Identifier: ISC
// hostile_test.cc: what an attacker or a careless operator can do must not
// hurt anyone else (floods, watchers of many keys, a second daemon, TLS).
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string>
#include <sys/resource.h>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>
#include <vector>

#include <sodium.h>

#include "frame.h"
#include "harness.h"

namespace {

class HostileTest : public DerpdTest {
};

// Write-everything helper for a raw plain socket (no TLS).
bool
WriteAll(int fd, const uint8_t *p, size_t n, Clock::time_point deadline)
{
	while (n > 0) {
		if (Clock::now() >= deadline)
			return false;
		struct pollfd pf = { fd, POLLOUT, 0 };
		if (poll(&pf, 1, 50) <= 0)
			continue;
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return false;
		}
		p += w;
		n -= (size_t)w;
	}
	return true;
}

// One client floods self-addressed SendPackets as fast as loopback takes
// them (and reads what comes back, so it is not a slow reader). Another
// client on the same, single worker pings every 10 ms: every ping must be
// answered promptly. Before the fairness rule the flooder's read event ran
// again and again in one loop pass; pings waited 1.5-2 s.
TEST_F(HostileTest, FloodDoesNotFreezeItsWorker)
{
	ASSERT_TRUE(d.Start({ "--workers=1" }));
	std::string err;
	Client flooder = d.Connect(&err);
	ASSERT_TRUE(flooder) << err;
	Client pinger = d.Connect(&err);
	ASSERT_TRUE(pinger) << err;

	// 256 frames of 1,200 bytes to itself in one buffer.
	std::vector<uint8_t> burst;
	std::vector<uint8_t> payload(32 + 1200, 0x5a);
	memcpy(payload.data(), derpc_pub(flooder.get()), 32);
	for (int i = 0; i < 256; i++) {
		uint8_t hdr[FRAME_HDR_LEN];
		frame_put_header(hdr, FRAME_SEND_PACKET,
		    (uint32_t)payload.size());
		burst.insert(burst.end(), hdr, hdr + sizeof(hdr));
		burst.insert(burst.end(), payload.begin(), payload.end());
	}
	int ffd = derpc_fd(flooder.get());
	std::atomic<bool> stop{ false };
	std::atomic<uint64_t> sent{ 0 };
	auto end = Clock::now() + std::chrono::seconds(4);
	std::thread writer([&] {
		while (!stop && Clock::now() < end) {
			if (!WriteAll(ffd, burst.data(), burst.size(), end))
				break;
			sent += 256;
		}
	});
	std::thread reader([&] {
		std::vector<uint8_t> buf(1 << 16);
		while (!stop && Clock::now() < end + std::chrono::seconds(1)) {
			struct pollfd pf = { ffd, POLLIN, 0 };
			if (poll(&pf, 1, 50) <= 0)
				continue;
			if (recv(ffd, buf.data(), buf.size(), MSG_DONTWAIT) == 0)
				break;
		}
	});

	// Let the flood build up, then ping through it.
	std::this_thread::sleep_for(std::chrono::milliseconds(300));
	int64_t worst = 0, total = 0;
	int answered = 0, asked = 0;
	while (Clock::now() < end - std::chrono::milliseconds(200)) {
		uint8_t p8[8];
		randombytes_buf(p8, sizeof(p8));
		auto t0 = Clock::now();
		ASSERT_EQ(DERPC_OK, derpc_ping(pinger.get(), p8));
		asked++;
		derpc_frame f;
		ASSERT_TRUE(RecvType(pinger.get(), FRAME_PONG, &f, 5000));
		ASSERT_EQ(0, memcmp(p8, f.payload, 8));
		int64_t rtt = MsSince(t0);
		worst = std::max(worst, rtt);
		total += rtt;
		answered++;
		std::this_thread::sleep_for(std::chrono::milliseconds(10));
	}
	stop = true;
	writer.join();
	reader.join();
	printf("flood: %llu packets sent; %d/%d pings answered, mean %lld ms, "
	    "worst %lld ms\n", (unsigned long long)sent.load(), answered,
	    asked, (long long)(answered ? total / answered : 0),
	    (long long)worst);
	EXPECT_GT(sent.load(), 1000u) << "the flood did not flow";
	EXPECT_EQ(asked, answered);
	// Generous for a loaded 2-core machine and sanitizer builds; the
	// unfair loop took 1,500-2,000 ms.
	EXPECT_LT(worst, 300) << "a flooding client froze its worker";
}

}  // namespace
