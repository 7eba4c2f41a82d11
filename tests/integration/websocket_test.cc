// SPDX-License-Identifier: ISC
// websocket_test.cc: DERP over WebSocket on /derp against the real derpd.
// The client frames are written here by hand (masked, RFC 6455), so the
// test does not share the server's library.
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "frame.h"
#include "harness.h"
#include "ws.h"

namespace {

const char kKey[] = "dGhlIHNhbXBsZSBub25jZQ==";
const char kAccept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

enum { OP_CONT = 0, OP_TEXT = 1, OP_BINARY = 2, OP_CLOSE = 8, OP_PING = 9,
    OP_PONG = 10 };

// A WebSocket client over derpc's raw I/O (plain or TLS).
class WsClient {
public:
	Client c;
	std::string head;	// the HTTP response head
	std::string raw;	// wire bytes read past what was parsed
	std::string stream;	// DERP bytes from binary messages
	uint16_t close_code = 0;

	// Dial and send the upgrade; true when a response head came.
	bool Upgrade(Derpd &d, const std::string &proto, std::string *err,
	    const std::string &extra = "")
	{
		derpc_opts o = d.Opts();
		o.server_pub = d.server_pub;
		char e[512] = "";
		c.reset(derpc_dial(&o, e, sizeof(e)));
		if (!c) {
			*err = std::string("dial: ") + e;
			return false;
		}
		std::string req = "GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
		    "Connection: Upgrade\r\nUpgrade: websocket\r\n"
		    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		    std::string(kKey) + "\r\n";
		if (!proto.empty())
			req += "Sec-WebSocket-Protocol: " + proto + "\r\n";
		req += extra + "\r\n";
		if (derpc_write_raw(c.get(), req.data(), req.size()) !=
		    DERPC_OK) {
			*err = derpc_error(c.get());
			return false;
		}
		size_t end;
		while ((end = raw.find("\r\n\r\n")) == std::string::npos)
			if (!Fill(3000)) {
				*err = "no response head: " + raw;
				return false;
			}
		head = raw.substr(0, end + 4);
		raw.erase(0, end + 4);
		return true;
	}

	bool Fill(int ms)
	{
		char buf[65536];
		size_t got = 0;
		if (derpc_read_raw(c.get(), buf, sizeof(buf), &got, ms) !=
		    DERPC_OK)
			return false;
		raw.append(buf, got);
		return true;
	}

	bool Send(uint8_t op, const std::string &payload, bool fin = true)
	{
		return derpc_write_raw(c.get(), Frame(op, payload, fin).data(),
		    Frame(op, payload, fin).size()) == DERPC_OK;
	}

	static std::string Frame(uint8_t op, const std::string &payload,
	    bool fin = true)
	{
		const uint8_t key[4] = { 0xa1, 0xb2, 0xc3, 0xd4 };
		std::string f;
		size_t n = payload.size();

		f += (char)((fin ? 0x80 : 0) | op);
		if (n < 126)
			f += (char)(0x80 | n);
		else if (n < 65536) {
			f += (char)(0x80 | 126);
			f += (char)(n >> 8);
			f += (char)n;
		} else {
			f += (char)(0x80 | 127);
			for (int i = 7; i >= 0; i--)
				f += (char)((uint64_t)n >> (8 * i));
		}
		f.append((const char *)key, 4);
		for (size_t i = 0; i < n; i++)
			f += (char)(payload[i] ^ key[i % 4]);
		return f;
	}

	// One server frame (unmasked). False on timeout or EOF.
	bool Recv(uint8_t *op, std::string *payload, int ms = 3000)
	{
		for (;;) {
			if (raw.size() >= 2) {
				const uint8_t *p = (const uint8_t *)raw.data();
				uint64_t n = p[1] & 0x7f;
				size_t h = 2;
				if (n == 126) {
					h = 4;
					n = raw.size() >= 4 ?
					    ((uint64_t)p[2] << 8 | p[3]) : 0;
				} else if (n == 127) {
					h = 10;
					n = 0;
					for (int i = 0; raw.size() >= 10 &&
					    i < 8; i++)
						n = n << 8 | p[2 + i];
				}
				EXPECT_EQ(0, p[1] & 0x80) << "masked";
				if (raw.size() >= h && raw.size() >= h + n) {
					*op = p[0] & 0x0f;
					*payload = raw.substr(h, n);
					raw.erase(0, h + n);
					return true;
				}
			}
			if (!Fill(ms))
				return false;
		}
	}

	// The next DERP frame from the binary messages (KeepAlive skipped).
	// False when a close frame (close_code), EOF or the timeout came.
	bool RecvDerp(uint8_t *type, std::string *payload, int ms = 3000)
	{
		for (;;) {
			if (stream.size() >= 5) {
				const uint8_t *p = (const uint8_t *)stream.data();
				uint32_t n = (uint32_t)p[1] << 24 |
				    (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 |
				    p[4];
				if (stream.size() >= 5 + (size_t)n) {
					*type = p[0];
					*payload = stream.substr(5, n);
					stream.erase(0, 5 + (size_t)n);
					if (*type == FRAME_KEEP_ALIVE)
						continue;
					return true;
				}
			}
			uint8_t op;
			std::string m;
			if (!Recv(&op, &m, ms))
				return false;
			if (op == OP_CLOSE) {
				close_code = m.size() >= 2 ? (uint16_t)(
				    (uint8_t)m[0] << 8 | (uint8_t)m[1]) : 1005;
				return false;
			}
			EXPECT_EQ(OP_BINARY, op);
			stream += m;
		}
	}

	static std::string DerpFrame(uint8_t type, const std::string &payload)
	{
		uint8_t h[5];
		uint32_t n = (uint32_t)payload.size();
		h[0] = type;
		h[1] = (uint8_t)(n >> 24);
		h[2] = (uint8_t)(n >> 16);
		h[3] = (uint8_t)(n >> 8);
		h[4] = (uint8_t)n;
		return std::string((const char *)h, 5) + payload;
	}

	// ServerKey, ClientInfo, ServerInfo over WebSocket.
	::testing::AssertionResult Handshake(const uint8_t server_pub[32])
	{
		uint8_t type;
		std::string p;
		if (!RecvDerp(&type, &p))
			return ::testing::AssertionFailure() << "no ServerKey";
		if (type != FRAME_SERVER_KEY || p.size() != 40 ||
		    p.compare(0, 8, FRAME_MAGIC) != 0 ||
		    memcmp(p.data() + 8, server_pub, 32) != 0)
			return ::testing::AssertionFailure() << "bad ServerKey";
		uint8_t ci[1024];
		size_t n = derpc_build_client_info(c.get(), nullptr, ci,
		    sizeof(ci));
		if (n == 0 || !Send(OP_BINARY, std::string((char *)ci, n)))
			return ::testing::AssertionFailure() << "ClientInfo";
		if (!RecvDerp(&type, &p) || type != FRAME_SERVER_INFO)
			return ::testing::AssertionFailure() << "no ServerInfo";
		return ::testing::AssertionSuccess();
	}

	// After a close frame, the server closes the connection.
	bool WaitEof(int ms = 3000)
	{
		return derpc_wait_eof(c.get(), ms) == DERPC_EOF;
	}
};

class WebSocketTest : public DerpdTest {
protected:
	// Upgrade with the derp subprotocol and run the DERP handshake.
	void Open(WsClient *w)
	{
		std::string err;
		ASSERT_TRUE(w->Upgrade(d, "derp", &err)) << err;
		ASSERT_EQ(0, w->head.compare(0, 34,
		    "HTTP/1.1 101 Switching Protocols\r\n")) << w->head;
		ASSERT_TRUE(w->Handshake(d.server_pub));
	}

	// Both directions between a WebSocket client and a TCP DERP client.
	void Relay(WsClient *w, size_t size)
	{
		std::string err;
		Client tcp = d.Connect(&err);
		ASSERT_TRUE(tcp) << err;
		std::string data = DiscoPacket(size);
		const uint8_t *wpub = derpc_pub(w->c.get());

		// WebSocket -> TCP, the frame split over two messages.
		std::string sp = WsClient::DerpFrame(FRAME_SEND_PACKET,
		    std::string((const char *)derpc_pub(tcp.get()), 32) + data);
		size_t cut = sp.size() / 3;
		ASSERT_TRUE(w->Send(OP_BINARY, sp.substr(0, cut)));
		ASSERT_TRUE(w->Send(OP_BINARY, sp.substr(cut)));
		uint8_t src[32];
		std::string got(FRAME_MAX_PACKET, '\0');
		size_t len = 0;
		ASSERT_EQ(DERPC_OK, derpc_recv_packet(tcp.get(), src, &got[0],
		    got.size(), &len, 3000)) << derpc_error(tcp.get());
		EXPECT_EQ(0, memcmp(src, wpub, 32));
		EXPECT_EQ(data, got.substr(0, len));

		// TCP -> WebSocket.
		ASSERT_EQ(DERPC_OK, derpc_send_packet(tcp.get(), wpub,
		    data.data(), data.size()));
		uint8_t type;
		std::string p;
		// PeerGone for the peer of an earlier round may come first.
		do
			ASSERT_TRUE(w->RecvDerp(&type, &p));
		while (type == FRAME_PEER_GONE);
		ASSERT_EQ(FRAME_RECV_PACKET, type);
		EXPECT_EQ(0, memcmp(p.data(), derpc_pub(tcp.get()), 32));
		EXPECT_EQ(data, p.substr(32));
	}
};

TEST_F(WebSocketTest, UpgradeAndHandshake)
{
	ASSERT_TRUE(d.Start());
	WsClient w;
	Open(&w);
	EXPECT_NE(std::string::npos, w.head.find("Upgrade: websocket\r\n"));
	EXPECT_NE(std::string::npos, w.head.find("Sec-WebSocket-Accept: " +
	    std::string(kAccept) + "\r\n"));
	EXPECT_NE(std::string::npos, w.head.find(
	    "Sec-WebSocket-Protocol: derp\r\n"));
	EXPECT_EQ(1, d.WaitMetric("derp_websocket_accepts", 1));
	EXPECT_EQ(1, d.WaitMetric("derp_current_connections", 1));
}

TEST_F(WebSocketTest, WithoutDerpSubprotocolCloses1008)
{
	ASSERT_TRUE(d.Start());
	WsClient w;
	std::string err;
	// "derp" in the header sends it here; only the token "derp" counts.
	ASSERT_TRUE(w.Upgrade(d, "derpx", &err)) << err;
	ASSERT_EQ(0, w.head.compare(0, 34,
	    "HTTP/1.1 101 Switching Protocols\r\n")) << w.head;
	EXPECT_EQ(std::string::npos, w.head.find("Sec-WebSocket-Protocol"));
	uint8_t type;
	std::string p;
	EXPECT_FALSE(w.RecvDerp(&type, &p));
	EXPECT_EQ(1008, w.close_code);
	EXPECT_TRUE(w.WaitEof());
	EXPECT_EQ(1, d.WaitMetric(Closed("ws_protocol_error"), 1));
	EXPECT_EQ(0, d.Metric("derp_websocket_accepts"));

	// A broken handshake is an HTTP error, no upgrade.
	HttpResponse r = d.Get("/derp", "Connection: Upgrade\r\n"
	    "Upgrade: websocket\r\nSec-WebSocket-Protocol: derp\r\n"
	    "Sec-WebSocket-Version: 13\r\n");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(400, r.status);
}

TEST_F(WebSocketTest, RelaysBothWays)
{
	ASSERT_TRUE(d.Start());
	WsClient w;
	Open(&w);
	Relay(&w, 100);
	// Larger than one output message (16 KiB): several messages.
	Relay(&w, 60000);
}

TEST_F(WebSocketTest, RelaysOverTls)
{
	ASSERT_TRUE(d.Start({ "--certmode=manual", "--hostname=127.0.0.1",
	    "--certdir=" + d.dir + "/certs" }));
	ASSERT_TRUE(d.tls);
	WsClient w;
	Open(&w);
	Relay(&w, 30000);
	EXPECT_EQ(1, d.WaitMetric("derp_websocket_accepts", 1));
}

TEST_F(WebSocketTest, FramesPipelinedWithTheUpgrade)
{
	ASSERT_TRUE(d.Start());
	uint8_t op;
	std::string p;
	// A ping right behind the request head is decoded after the 101.
	WsClient w2;
	derpc_opts o = d.Opts();
	o.server_pub = d.server_pub;
	char e[512] = "";
	w2.c.reset(derpc_dial(&o, e, sizeof(e)));
	ASSERT_TRUE(w2.c) << e;
	std::string req = std::string("GET /derp HTTP/1.1\r\nHost: x\r\n"
	    "Connection: Upgrade\r\nUpgrade: websocket\r\n"
	    "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ") + kKey +
	    "\r\nSec-WebSocket-Protocol: derp\r\n\r\n" +
	    WsClient::Frame(OP_PING, "early");
	ASSERT_EQ(DERPC_OK, derpc_write_raw(w2.c.get(), req.data(),
	    req.size()));
	size_t end;
	while ((end = w2.raw.find("\r\n\r\n")) == std::string::npos)
		ASSERT_TRUE(w2.Fill(3000));
	w2.raw.erase(0, end + 4);
	// The ServerKey message and the pong, in either order.
	bool pong = false, key = false;
	for (int i = 0; i < 2 && w2.Recv(&op, &p); i++) {
		if (op == OP_PONG && p == "early")
			pong = true;
		if (op == OP_BINARY && !p.empty() && p[0] == FRAME_SERVER_KEY)
			key = true;
	}
	EXPECT_TRUE(pong);
	EXPECT_TRUE(key);
}

TEST_F(WebSocketTest, PingGetsPong)
{
	ASSERT_TRUE(d.Start());
	WsClient w;
	Open(&w);
	ASSERT_TRUE(w.Send(OP_PING, "hello ping"));
	uint8_t op;
	std::string p;
	ASSERT_TRUE(w.Recv(&op, &p));
	EXPECT_EQ(OP_PONG, op);
	EXPECT_EQ("hello ping", p);
	// Still relaying afterwards.
	Relay(&w, 200);
}

TEST_F(WebSocketTest, CloseGetsClose)
{
	ASSERT_TRUE(d.Start());
	WsClient w;
	Open(&w);
	ASSERT_TRUE(w.Send(OP_CLOSE, std::string("\x03\xe8", 2) + "bye"));
	uint8_t op;
	std::string p;
	ASSERT_TRUE(w.Recv(&op, &p));
	EXPECT_EQ(OP_CLOSE, op);
	ASSERT_GE(p.size(), 2u);
	EXPECT_EQ(1000, (uint8_t)p[0] << 8 | (uint8_t)p[1]);
	EXPECT_TRUE(w.WaitEof());
	EXPECT_EQ(0, d.WaitMetric("derp_current_connections", 0));
	EXPECT_EQ(1, d.WaitMetric(Closed("eof"), 1));
}

TEST_F(WebSocketTest, OversizedMessageCloses1009)
{
	ASSERT_TRUE(d.Start());
	WsClient w;
	Open(&w);
	// One byte over the cap, as fragments.
	std::string half(WS_MAX_MSG / 2, 'x');
	ASSERT_TRUE(w.Send(OP_BINARY, half, false));
	ASSERT_TRUE(w.Send(OP_CONT, half + "x"));
	uint8_t type;
	std::string p;
	EXPECT_FALSE(w.RecvDerp(&type, &p));
	EXPECT_EQ(1009, w.close_code);
	EXPECT_TRUE(w.WaitEof());
	EXPECT_EQ(1, d.WaitMetric(Closed("ws_message_too_large"), 1));
	EXPECT_TRUE(d.WaitLog("ws_message_too_large", 2000));

	// One frame over the cap is refused on its first bytes.
	WsClient w2;
	Open(&w2);
	std::string big = WsClient::Frame(OP_BINARY,
	    std::string(WS_MAX_MSG + 1, 'y'));
	ASSERT_EQ(DERPC_OK, derpc_write_raw(w2.c.get(), big.data(), 100));
	EXPECT_FALSE(w2.RecvDerp(&type, &p));
	EXPECT_EQ(1009, w2.close_code);
	EXPECT_EQ(2, d.WaitMetric(Closed("ws_message_too_large"), 2));
}

TEST_F(WebSocketTest, TextMessageCloses1003)
{
	ASSERT_TRUE(d.Start());
	WsClient w;
	Open(&w);
	ASSERT_TRUE(w.Send(OP_TEXT, "{\"hello\":1}"));
	uint8_t type;
	std::string p;
	EXPECT_FALSE(w.RecvDerp(&type, &p));
	EXPECT_EQ(1003, w.close_code);
	EXPECT_TRUE(w.WaitEof());
	EXPECT_EQ(1, d.WaitMetric(Closed("ws_text_message"), 1));
	EXPECT_EQ(0, d.WaitMetric("derp_current_connections", 0));
}

TEST_F(WebSocketTest, ProtocolErrorCloses)
{
	ASSERT_TRUE(d.Start());
	WsClient w;
	Open(&w);
	// An unmasked client frame.
	const char bad[] = { (char)0x82, 0x01, 'x' };
	ASSERT_EQ(DERPC_OK, derpc_write_raw(w.c.get(), bad, sizeof(bad)));
	uint8_t type;
	std::string p;
	EXPECT_FALSE(w.RecvDerp(&type, &p));
	EXPECT_EQ(1002, w.close_code);
	EXPECT_TRUE(w.WaitEof());
	EXPECT_EQ(1, d.WaitMetric(Closed("ws_protocol_error"), 1));
}

TEST_F(WebSocketTest, BadDerpFrameEndsWithClose1000)
{
	ASSERT_TRUE(d.Start());
	WsClient w;
	std::string err;
	ASSERT_TRUE(w.Upgrade(d, "derp", &err)) << err;
	uint8_t type;
	std::string p;
	ASSERT_TRUE(w.RecvDerp(&type, &p));
	ASSERT_EQ(FRAME_SERVER_KEY, type);
	// Not ClientInfo: the DERP layer closes; the WebSocket says 1000.
	ASSERT_TRUE(w.Send(OP_BINARY, WsClient::DerpFrame(FRAME_PING,
	    std::string(8, 'p'))));
	EXPECT_FALSE(w.RecvDerp(&type, &p));
	EXPECT_EQ(1000, w.close_code);
	EXPECT_TRUE(w.WaitEof());
	EXPECT_EQ(1, d.WaitMetric(Closed("bad_first_frame"), 1));
}

}  // namespace
