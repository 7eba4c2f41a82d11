// SPDX-License-Identifier: ISC
// errors_test.cc: malformed and hostile input; the daemon closes the one
// connection, counts why, and keeps serving everyone else.
#include <chrono>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <unistd.h>
#include <vector>

#include <sodium.h>

#include "frame.h"
#include "harness.h"

namespace {

class ErrorsTest : public DerpdTest {
protected:
	// Dial, send the upgrade and read 101 + ServerKey.
	Client Upgraded()
	{
		std::string err;
		Client c = d.Dial(&err);
		EXPECT_TRUE(c) << err;
		if (!c)
			return c;
		int status;
		EXPECT_EQ(DERPC_OK, derpc_send_upgrade(c.get(), false));
		EXPECT_EQ(DERPC_OK, derpc_read_upgrade(c.get(), false, &status,
		    3000)) << derpc_error(c.get());
		EXPECT_EQ(101, status);
		return c;
	}

	// A full handshake and a packet both ways still work.
	void ExpectHealthy()
	{
		std::string err;
		Client a = d.Connect(&err);
		ASSERT_TRUE(a) << err;
		Client b = d.Connect(&err);
		ASSERT_TRUE(b) << err;
		EXPECT_TRUE(SendRecv(a.get(), b.get(), "healthy a->b"));
		EXPECT_TRUE(SendRecv(b.get(), a.get(), "healthy b->a"));
	}

	// The server closes c without sending any frame (no ServerInfo).
	::testing::AssertionResult ClosedSilently(derpc *c, int ms = 3000)
	{
		derpc_frame f;
		int rc = derpc_recv_frame(c, &f, ms);
		if (rc == DERPC_EOF)
			return ::testing::AssertionSuccess();
		if (rc == DERPC_OK)
			return ::testing::AssertionFailure() << "got frame type "
			    << (int)f.type << " length " << f.len;
		return ::testing::AssertionFailure() << (rc == DERPC_TIMEOUT ?
		    "still open" : derpc_error(c));
	}

	// Send ClientInfo-typed bytes with this payload, expect a close.
	void ExpectBadClientInfo(const std::vector<uint8_t> &payload,
	    int *count)
	{
		Client c = Upgraded();
		ASSERT_TRUE(c);
		ASSERT_EQ(DERPC_OK, derpc_send_frame(c.get(),
		    FRAME_CLIENT_INFO, payload.data(),
		    (uint32_t)payload.size()));
		EXPECT_TRUE(ClosedSilently(c.get()));
		++*count;
		EXPECT_EQ(*count, d.WaitMetric(Closed("bad_client_info"),
		    *count));
	}

	// A connected client sends one bad frame; expect a bad_frame close.
	void ExpectBadFrame(uint8_t type, uint32_t len, int *count)
	{
		SCOPED_TRACE("type " + std::to_string(type) + " len " +
		    std::to_string(len));
		std::string err;
		Client c = d.Connect(&err);
		ASSERT_TRUE(c) << err;
		std::vector<uint8_t> body(len, 0);
		ASSERT_NE(DERPC_ERROR, derpc_send_frame(c.get(), type,
		    body.data(), len));
		EXPECT_TRUE(ClosedWithin(c.get(), 3000));
		++*count;
		EXPECT_EQ(*count, d.WaitMetric(Closed("bad_frame"), *count));
	}

	// Seal json as a ClientInfo payload for c (key 32 | nonce | box).
	std::vector<uint8_t> Sealed(derpc *c, const std::string &json)
	{
		std::vector<uint8_t> f(FRAME_HDR_LEN + 72 + json.size());
		size_t n = derpc_build_client_info(c, json.c_str(), f.data(),
		    f.size());
		EXPECT_EQ(f.size(), n);
		return std::vector<uint8_t>(f.begin() + FRAME_HDR_LEN, f.end());
	}
};

TEST_F(ErrorsTest, GarbageBoxIsRejected)
{
	ASSERT_TRUE(d.Start());
	int n = 0;
	uint8_t priv[32], pub[32];
	derpc_keygen(priv, pub);
	std::vector<uint8_t> p(32 + 24 + 16 + 40);
	randombytes_buf(p.data(), p.size());
	memcpy(p.data(), pub, 32);
	ExpectBadClientInfo(p, &n);

	// A good box with one bit flipped.
	{
		Client c = Upgraded();
		ASSERT_TRUE(c);
		std::vector<uint8_t> s = Sealed(c.get(), "{\"version\":2}");
		s.back() ^= 1;
		ASSERT_EQ(DERPC_OK, derpc_send_frame(c.get(),
		    FRAME_CLIENT_INFO, s.data(), (uint32_t)s.size()));
		EXPECT_TRUE(ClosedSilently(c.get()));
		n++;
		EXPECT_EQ(n, d.WaitMetric(Closed("bad_client_info"), n));
	}
	// Sealed to the wrong server key.
	{
		uint8_t fake[32], fpub[32];
		derpc_keygen(fake, fpub);
		derpc_opts o = d.Opts();
		o.server_pub = fpub;
		Client w(derpc_dial(&o, nullptr, 0));
		ASSERT_TRUE(w);
		int status;
		ASSERT_EQ(DERPC_OK, derpc_send_upgrade(w.get(), false));
		// Our library refuses a ServerKey that differs from the key
		// we expected; build and send the ClientInfo regardless.
		EXPECT_EQ(DERPC_ERROR, derpc_read_upgrade(w.get(), false,
		    &status, 3000));
		ASSERT_EQ(DERPC_OK, derpc_send_client_info(w.get(), nullptr,
		    nullptr, 0));
		EXPECT_TRUE(ClosedSilently(w.get()));
		n++;
		EXPECT_EQ(n, d.WaitMetric(Closed("bad_client_info"), n));
	}
	// Not JSON, and JSON that is not an object.
	for (const char *json : { "not json", "[1,2]", "{\"version\":\"2\"}" }) {
		SCOPED_TRACE(json);
		Client c = Upgraded();
		ASSERT_TRUE(c);
		ExpectBadClientInfo(Sealed(c.get(), json), &n);
	}
	ExpectHealthy();
}

TEST_F(ErrorsTest, AllZeroClientKeyIsRejected)
{
	ASSERT_TRUE(d.Start());
	int n = 0;
	std::vector<uint8_t> p(32 + 24 + 16 + 13, 0);
	randombytes_buf(p.data() + 32, p.size() - 32);
	ExpectBadClientInfo(p, &n);
	EXPECT_TRUE(d.WaitLog("all-zero client key", 2000));
	ExpectHealthy();
}

TEST_F(ErrorsTest, ClientInfoLengthLimits)
{
	ASSERT_TRUE(d.Start());
	int n = 0;
	uint8_t priv[32], pub[32];
	derpc_keygen(priv, pub);
	// Too short: key + nonce only, and one byte short of a MAC.
	for (size_t len : { (size_t)0, (size_t)31, (size_t)56, (size_t)71 }) {
		SCOPED_TRACE(len);
		std::vector<uint8_t> p(len, 7);
		if (len >= 32)
			memcpy(p.data(), pub, 32);
		ExpectBadClientInfo(p, &n);
	}
	// Too long: > 256 KiB is refused from the header alone.
	{
		Client c = Upgraded();
		ASSERT_TRUE(c);
		uint8_t hdr[FRAME_HDR_LEN];
		frame_put_header(hdr, FRAME_CLIENT_INFO, 256 * 1024 + 1);
		ASSERT_EQ(DERPC_OK, derpc_write_raw(c.get(), hdr, sizeof(hdr)));
		EXPECT_TRUE(ClosedSilently(c.get()));
		n++;
		EXPECT_EQ(n, d.WaitMetric(Closed("bad_client_info"), n));
	}
	// A huge declared length (4 GiB - 1).
	{
		Client c = Upgraded();
		ASSERT_TRUE(c);
		uint8_t hdr[FRAME_HDR_LEN];
		frame_put_header(hdr, FRAME_CLIENT_INFO, 0xffffffffu);
		ASSERT_EQ(DERPC_OK, derpc_write_raw(c.get(), hdr, sizeof(hdr)));
		EXPECT_TRUE(ClosedSilently(c.get()));
		n++;
		EXPECT_EQ(n, d.WaitMetric(Closed("bad_client_info"), n));
	}
	// Exactly 256 KiB of valid ClientInfo (JSON padded) is accepted.
	{
		Client c = Upgraded();
		ASSERT_TRUE(c);
		std::string json = "{\"version\":2,\"CanAckPings\":false,"
		    "\"Pad\":\"";
		size_t want = 256 * 1024 - 72 - 2;
		json += std::string(want - json.size(), 'p') + "\"}";
		ASSERT_EQ(256u * 1024, 72 + json.size());
		ASSERT_EQ(DERPC_OK, derpc_send_client_info(c.get(),
		    json.c_str(), nullptr, 0));
		char si[64];
		EXPECT_EQ(DERPC_OK, derpc_read_server_info(c.get(), si,
		    sizeof(si), 3000)) << derpc_error(c.get());
		EXPECT_STREQ("{\"version\":2}", si);
	}
	ExpectHealthy();
}

TEST_F(ErrorsTest, FirstFrameMustBeClientInfo)
{
	ASSERT_TRUE(d.Start());
	const std::string metric = Closed("bad_first_frame");
	int n = 0;
	for (uint8_t type : { (uint8_t)FRAME_SEND_PACKET, (uint8_t)FRAME_PING,
	    (uint8_t)FRAME_SERVER_KEY, (uint8_t)0x30 }) {
		SCOPED_TRACE((int)type);
		Client c = Upgraded();
		ASSERT_TRUE(c);
		std::vector<uint8_t> body(40, 1);
		ASSERT_EQ(DERPC_OK, derpc_send_frame(c.get(), type,
		    body.data(), (uint32_t)body.size()));
		EXPECT_TRUE(ClosedSilently(c.get()));
		n++;
		EXPECT_EQ(n, d.WaitMetric(metric, n));
	}
	ExpectHealthy();
}

// PROTOCOL.md 3.1: the server writes and flushes ServerKey (after the 101,
// unless fast start) before it reads the first frame, so a client that
// pipelines a bad first frame still sees its greeting before the close.
TEST_F(ErrorsTest, GreetingIsFlushedBeforeBadFirstFrameClose)
{
	ASSERT_TRUE(d.Start());
	const std::string metric = Closed("bad_first_frame");
	int n = 0;
	for (bool fast : { true, false }) {
		SCOPED_TRACE(fast ? "fast start" : "101 flow");
		std::string err;
		Client c = d.Dial(&err);
		ASSERT_TRUE(c) << err;
		std::string req = "GET /derp HTTP/1.1\r\nHost: x\r\n"
		    "Connection: Upgrade\r\n";
		if (fast)
			req += "Derp-Fast-Start: 1\r\n";
		req += "Upgrade: DERP\r\n\r\n";
		uint8_t ping[FRAME_HDR_LEN + 8];
		const uint8_t data[8] = { 0 };
		derpc_put_frame(ping, FRAME_PING, data, 8);
		req.append((const char *)ping, sizeof(ping));
		// Request and bad first frame in one write.
		ASSERT_EQ(DERPC_OK, derpc_write_raw(c.get(), req.data(),
		    req.size()));
		int status = -1;
		int rc = derpc_read_upgrade(c.get(), fast, &status, 3000);
		EXPECT_EQ(DERPC_OK, rc) << "no greeting before the close: " <<
		    derpc_error(c.get()) << "; head: \"" <<
		    derpc_http_head(c.get()) << "\"";
		if (rc == DERPC_OK) {
			EXPECT_EQ(0, memcmp(derpc_server_pub(c.get()),
			    d.server_pub, 32));
			EXPECT_EQ(fast ? 0 : 101, status);
		}
		EXPECT_TRUE(ClosedSilently(c.get()));
		n++;
		EXPECT_EQ(n, d.WaitMetric(metric, n));
	}
	ExpectHealthy();
}

TEST_F(ErrorsTest, FrameLengthLimits)
{
	ASSERT_TRUE(d.Start());
	int n = 0;
	// SendPacket: > 32 + 65536 and < 32.
	ExpectBadFrame(FRAME_SEND_PACKET, 32 + 65537, &n);
	ExpectBadFrame(FRAME_SEND_PACKET, 32 + 65569, &n);
	ExpectBadFrame(FRAME_SEND_PACKET, 31, &n);
	ExpectBadFrame(FRAME_SEND_PACKET, 0, &n);
	// NotePreferred must be exactly 1 byte.
	ExpectBadFrame(FRAME_NOTE_PREFERRED, 0, &n);
	ExpectBadFrame(FRAME_NOTE_PREFERRED, 2, &n);
	// Ping 8..1000.
	ExpectBadFrame(FRAME_PING, 7, &n);
	ExpectBadFrame(FRAME_PING, 1001, &n);
	// The length rules come before the mesh check.
	ExpectBadFrame(FRAME_WATCH_CONNS, 1, &n);
	ExpectBadFrame(FRAME_CLOSE_PEER, 31, &n);
	ExpectBadFrame(FRAME_FORWARD_PACKET, 63, &n);
	ExpectBadFrame(FRAME_FORWARD_PACKET, 64 + 65537, &n);
	EXPECT_EQ(0, d.Metric(Closed("insufficient_permissions")));

	// The largest legal SendPacket is relayed.
	std::string err;
	Client a = d.Connect(&err);
	ASSERT_TRUE(a) << err;
	Client b = d.Connect(&err);
	ASSERT_TRUE(b) << err;
	EXPECT_TRUE(SendRecv(a.get(), b.get(), std::string(65536, 'm')));
	ExpectHealthy();
}

TEST_F(ErrorsTest, BadMeshKeyFormatFailsTheHandshake)
{
	ASSERT_TRUE(d.Start());
	int n = 0;
	const std::string h64(64, 'a');
	const std::string bad[] = {
		"{\"meshKey\":\"" + h64.substr(0, 63) + "\",\"version\":2}",
		"{\"meshKey\":\"\",\"version\":2}",
		"{\"meshKey\":\"" + h64 + "a\",\"version\":2}",
		"{\"meshKey\":\"" + h64 + "aa\",\"version\":2}",
		"{\"meshKey\":\"" + h64.substr(0, 63) + "g\",\"version\":2}",
		"{\"meshKey\":null,\"version\":2}",
		"{\"meshKey\":12,\"version\":2}",
		"{\"MESHKEY\":\"xyz\",\"version\":2}",
	};
	for (const std::string &json : bad) {
		SCOPED_TRACE(json);
		derpc_opts o = d.Opts();
		o.json = json.c_str();
		std::string err;
		Client c = d.Connect(o, &err);
		EXPECT_FALSE(c) << "handshake succeeded";
		EXPECT_NE(std::string::npos, err.find("closed")) << err;
		n++;
		EXPECT_EQ(n, d.WaitMetric(Closed("bad_client_info"), n));
	}
	// A well-formed key the server does not have is only a demotion.
	derpc_opts o = d.Opts();
	std::string good = "{\"meshKey\":\"" + h64 + "\",\"version\":2}";
	o.json = good.c_str();
	std::string err;
	Client c = d.Connect(o, &err);
	EXPECT_TRUE(c) << err;
	ExpectHealthy();
}

TEST_F(ErrorsTest, MeshKeyMatchIsCaseInsensitiveKeyName)
{
	uint8_t mk[32];
	randombytes_buf(mk, 32);
	std::string path = d.dir + "/mesh.key";
	int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ASSERT_NE(-1, fd);
	// Upper-case hex and surrounding whitespace are accepted.
	std::string text = "  " + Hex(mk, 32) + "\n";
	for (auto &ch : text)
		ch = (char)toupper((unsigned char)ch);
	ASSERT_EQ((ssize_t)text.size(), write(fd, text.data(), text.size()));
	close(fd);
	ASSERT_TRUE(d.Start({ "--mesh-psk-file=" + path }));
	std::string json = "{\"MeshKey\":\"" + Hex(mk, 32) +
	    "\",\"Version\":2}";
	derpc_opts o = d.Opts();
	o.json = json.c_str();
	std::string err;
	Client c = d.Connect(o, &err);
	ASSERT_TRUE(c) << err;
	ASSERT_EQ(DERPC_OK, derpc_watch_conns(c.get()));
	derpc_frame f;
	// It sees itself as a mesh peer.
	ASSERT_TRUE(RecvType(c.get(), FRAME_PEER_PRESENT, &f));
	ASSERT_EQ(51u, f.len);
	EXPECT_EQ(PEER_PRESENT_MESH, f.payload[50]);
	EXPECT_EQ(1, d.WaitMetric("derp_watchers", 1));
}

TEST_F(ErrorsTest, BadMeshKeyFileIsFatal)
{
	std::string path = d.dir + "/mesh.key";
	int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ASSERT_NE(-1, fd);
	ASSERT_EQ(5, write(fd, "abcd\n", 5));
	close(fd);
	EXPECT_NE(0, d.RunToExit({ "--mesh-psk-file=" + path }, 5000));
	EXPECT_NE(std::string::npos, d.Log().find("mesh-psk-file")) << d.Log();
}

TEST_F(ErrorsTest, UnknownFrameIsDiscarded)
{
	ASSERT_TRUE(d.Start());
	std::string err;
	Client a = d.Connect(&err);
	ASSERT_TRUE(a) << err;
	Client b = d.Connect(&err);
	ASSERT_TRUE(b) << err;
	// 2 MiB of type 0x30, then a packet in the same stream.
	std::vector<uint8_t> big(2 * 1024 * 1024);
	for (size_t i = 0; i < big.size(); i++)
		big[i] = (uint8_t)(i * 13);
	// Make the payload look like frames, to catch a parser that resyncs.
	derpc_put_frame(big.data() + 100, FRAME_CLOSE_PEER, big.data(), 32);
	ASSERT_EQ(DERPC_OK, derpc_send_frame(a.get(), 0x30, big.data(),
	    (uint32_t)big.size()));
	EXPECT_TRUE(SendRecv(a.get(), b.get(), "after the unknown frame"));
	// Empty unknown frames, and the unused 0x0b..0x0f.
	for (uint8_t t : { (uint8_t)0x0b, (uint8_t)0x0f, (uint8_t)0xff,
	    (uint8_t)FRAME_HEALTH, (uint8_t)FRAME_RESTARTING })
		ASSERT_EQ(DERPC_OK, derpc_send_frame(a.get(), t, "zz", 2));
	ASSERT_EQ(DERPC_OK, derpc_send_frame(a.get(), 0x31, nullptr, 0));
	EXPECT_TRUE(SendRecv(a.get(), b.get(), "still"));
	EXPECT_TRUE(Quiet(a.get(), 100));
	EXPECT_EQ(0, d.Metric(Closed("bad_frame")));
	EXPECT_EQ(2, d.Metric("derp_current_connections"));
}

TEST_F(ErrorsTest, HandshakeTimeoutWithoutClientInfo)
{
	ASSERT_TRUE(d.Start({ "--handshake-timeout=1s" }));
	Client c = Upgraded();
	ASSERT_TRUE(c);
	auto t0 = Clock::now();
	EXPECT_TRUE(ClosedSilently(c.get(), 4000));
	int64_t took = MsSince(t0);
	EXPECT_GE(took, 700);
	EXPECT_LT(took, 3000);
	EXPECT_EQ(1, d.WaitMetric(Closed("handshake_timeout"), 1));
	// Half a ClientInfo is no better.
	c = Upgraded();
	ASSERT_TRUE(c);
	std::vector<uint8_t> s = Sealed(c.get(), "{\"version\":2}");
	uint8_t hdr[FRAME_HDR_LEN];
	frame_put_header(hdr, FRAME_CLIENT_INFO, (uint32_t)s.size());
	ASSERT_EQ(DERPC_OK, derpc_write_raw(c.get(), hdr, sizeof(hdr)));
	ASSERT_EQ(DERPC_OK, derpc_write_raw(c.get(), s.data(), 10));
	EXPECT_TRUE(ClosedSilently(c.get(), 4000));
	EXPECT_EQ(2, d.WaitMetric(Closed("handshake_timeout"), 2));
	ExpectHealthy();
}

TEST_F(ErrorsTest, ClientEofMidFrame)
{
	ASSERT_TRUE(d.Start());
	std::string err;
	{
		Client c = d.Connect(&err);
		ASSERT_TRUE(c) << err;
		uint8_t hdr[FRAME_HDR_LEN];
		frame_put_header(hdr, FRAME_SEND_PACKET, 1000);
		ASSERT_EQ(DERPC_OK, derpc_write_raw(c.get(), hdr, sizeof(hdr)));
		ASSERT_EQ(DERPC_OK, derpc_write_raw(c.get(), "abc", 3));
	}
	EXPECT_EQ(0, d.WaitMetric("derp_current_connections", 0));
	EXPECT_EQ(1, d.WaitMetric(Closed("eof"), 1));
	ExpectHealthy();
}

}  // namespace
