// SPDX-License-Identifier: ISC
// ws_test.cc: the WebSocket framing layer (ws.c) on bytes, no sockets.
#include <cstring>
#include <string>

#include <event2/buffer.h>
#include <gtest/gtest.h>

#include "ws.h"

namespace {

// A client frame (masked, as RFC 6455 requires of clients).
std::string
Frame(uint8_t op, const std::string &payload, bool fin = true,
    bool mask = true, uint64_t claim = UINT64_MAX)
{
	std::string f;
	uint64_t n = claim != UINT64_MAX ? claim : payload.size();
	const uint8_t key[4] = { 0x12, 0x34, 0x56, 0x78 };

	f += (char)((fin ? 0x80 : 0) | op);
	uint8_t m = mask ? 0x80 : 0;
	if (n < 126)
		f += (char)(m | n);
	else if (n < 65536) {
		f += (char)(m | 126);
		f += (char)(n >> 8);
		f += (char)n;
	} else {
		f += (char)(m | 127);
		for (int i = 7; i >= 0; i--)
			f += (char)(n >> (8 * i));
	}
	if (mask)
		f.append((const char *)key, 4);
	for (size_t i = 0; i < payload.size(); i++)
		f += (char)(payload[i] ^ (mask ? key[i % 4] : 0));
	return f;
}

struct Server {
	struct ws	*ws = ws_new();
	struct evbuffer	*in = evbuffer_new();
	struct evbuffer	*out = evbuffer_new();

	~Server() {
		ws_free(ws);
		evbuffer_free(in);
		evbuffer_free(out);
	}
	enum ws_status Recv(const std::string &wire, size_t *added = nullptr) {
		size_t a;
		enum ws_status st = ws_recv(ws, (const uint8_t *)wire.data(),
		    wire.size(), in, &a);
		if (added != nullptr)
			*added = a;
		return st;
	}
	std::string Take(struct evbuffer *b) {
		std::string s(evbuffer_get_length(b), '\0');
		evbuffer_remove(b, &s[0], s.size());
		return s;
	}
	std::string Wire() { return Take(ws_wire(ws)); }
};

// Server frames are unmasked: split a wire string into (op, payload).
bool
NextFrame(std::string *w, uint8_t *op, std::string *payload)
{
	if (w->size() < 2)
		return false;
	const uint8_t *p = (const uint8_t *)w->data();
	size_t n = p[1] & 0x7f, h = 2;
	if (n == 126) {
		n = (size_t)p[2] << 8 | p[3];
		h = 4;
	} else if (n == 127) {
		n = 0;
		for (int i = 0; i < 8; i++)
			n = n << 8 | p[2 + i];
		h = 10;
	}
	if ((p[1] & 0x80) != 0 || w->size() < h + n)
		return false;
	*op = p[0] & 0x0f;
	*payload = w->substr(h, n);
	w->erase(0, h + n);
	return true;
}

}  // namespace

TEST(Ws, AcceptKey)
{
	char out[32];

	// RFC 6455 section 1.3.
	ASSERT_EQ(0, ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out,
	    sizeof(out)));
	EXPECT_STREQ("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", out);
	EXPECT_EQ(-1, ws_accept_key("x", out, 28));
}

TEST(Ws, BinaryPayloadIsOneStream)
{
	Server s;
	size_t added;

	// Fragments, and a ping between them, and a split read.
	std::string w = Frame(0x2, "hel", false) + Frame(0x9, "p") +
	    Frame(0x0, "lo ", false) + Frame(0x0, "world") + Frame(0x2, "!");
	EXPECT_EQ(WS_OK, s.Recv(w.substr(0, 7), &added));
	EXPECT_EQ(WS_OK, s.Recv(w.substr(7), &added));
	EXPECT_EQ("hello world!", s.Take(s.in));
	// The ping got its pong once output is encoded.
	ASSERT_EQ(0, ws_encode(s.ws, s.out, 0));
	std::string wire = s.Wire();
	uint8_t op;
	std::string pl;
	ASSERT_TRUE(NextFrame(&wire, &op, &pl));
	EXPECT_EQ(0xa, op);
	EXPECT_EQ("p", pl);
}

TEST(Ws, OutputBecomesBinaryMessages)
{
	Server s;
	std::string data(40000, 'x');

	evbuffer_add(s.out, data.data(), data.size());
	ASSERT_EQ(0, ws_encode(s.ws, s.out, 0));
	EXPECT_EQ(0u, evbuffer_get_length(s.out));
	std::string wire = s.Wire(), got, pl;
	uint8_t op;
	int n = 0;
	while (NextFrame(&wire, &op, &pl)) {
		EXPECT_EQ(0x2, op);
		EXPECT_LE(pl.size(), (size_t)WS_OUT_MSG);
		got += pl;
		n++;
	}
	EXPECT_EQ(data, got);
	EXPECT_EQ(3, n);
	EXPECT_TRUE(wire.empty());
}

TEST(Ws, WireMarkBoundsFraming)
{
	Server s;
	std::string data(4 * WS_WIRE_HIGH, 'y');

	evbuffer_add(s.out, data.data(), data.size());
	ASSERT_EQ(0, ws_encode(s.ws, s.out, 0));
	size_t wire = evbuffer_get_length(ws_wire(s.ws));
	EXPECT_GE(wire, (size_t)WS_WIRE_HIGH);
	EXPECT_LT(wire, (size_t)WS_WIRE_HIGH + 2 * WS_OUT_MSG);
	EXPECT_LT(ws_pending(s.ws), (size_t)WS_WIRE_HIGH + 3 * WS_OUT_MSG);
	EXPECT_GT(evbuffer_get_length(s.out), 2u * WS_WIRE_HIGH);
}

TEST(Ws, TextMessageCloses1003)
{
	Server s;

	EXPECT_EQ(WS_TEXT, s.Recv(Frame(0x1, "hi")));
	EXPECT_EQ(0u, evbuffer_get_length(s.in));
	ASSERT_EQ(0, ws_encode(s.ws, s.out, 1));
	std::string wire = s.Wire(), pl;
	uint8_t op;
	ASSERT_TRUE(NextFrame(&wire, &op, &pl));
	EXPECT_EQ(0x8, op);
	ASSERT_GE(pl.size(), 2u);
	EXPECT_EQ(1003, (uint8_t)pl[0] << 8 | (uint8_t)pl[1]);
}

TEST(Ws, OversizedMessageCloses1009)
{
	// One frame over the cap: refused on its first byte, nothing kept.
	{
		Server s;
		EXPECT_EQ(WS_TOO_LARGE, s.Recv(Frame(0x2, "a", true, true,
		    WS_MAX_MSG + 1)));
		EXPECT_EQ(0u, evbuffer_get_length(s.in));
		EXPECT_NE(nullptr, strstr(ws_detail(s.ws), "too large"));
	}
	// Fragments that add up to more than the cap.
	{
		Server s;
		std::string half(WS_MAX_MSG / 2 + 1, 'z');
		EXPECT_EQ(WS_OK, s.Recv(Frame(0x2, half, false)));
		EXPECT_EQ(WS_TOO_LARGE, s.Recv(Frame(0x0, half)));
		ASSERT_EQ(0, ws_encode(s.ws, s.out, 1));
		std::string wire = s.Wire(), pl;
		uint8_t op;
		ASSERT_TRUE(NextFrame(&wire, &op, &pl));
		EXPECT_EQ(0x8, op);
		EXPECT_EQ(1009, (uint8_t)pl[0] << 8 | (uint8_t)pl[1]);
	}
	// Exactly the cap is fine.
	{
		Server s;
		std::string full(WS_MAX_MSG, 'q');
		size_t added;
		EXPECT_EQ(WS_OK, s.Recv(Frame(0x2, full), &added));
		EXPECT_EQ((size_t)WS_MAX_MSG, added);
	}
}

TEST(Ws, UnmaskedFrameIsProtocolError)
{
	Server s;

	EXPECT_EQ(WS_PROTOCOL, s.Recv(Frame(0x2, "x", true, false)));
}

TEST(Ws, CloseIsEchoed)
{
	Server s;
	std::string cl = std::string("\x03\xe8", 2) + "bye";

	EXPECT_EQ(WS_PEER_CLOSED, s.Recv(Frame(0x2, "last") + Frame(0x8, cl)));
	EXPECT_EQ("last", s.Take(s.in));
	EXPECT_NE(nullptr, strstr(ws_detail(s.ws), "1000"));
	ASSERT_EQ(0, ws_encode(s.ws, s.out, 1));
	std::string wire = s.Wire(), pl;
	uint8_t op;
	ASSERT_TRUE(NextFrame(&wire, &op, &pl));
	EXPECT_EQ(0x8, op);
	EXPECT_EQ(1000, (uint8_t)pl[0] << 8 | (uint8_t)pl[1]);
}

TEST(Ws, PingFloodIsBounded)
{
	Server s;
	std::string w;

	// Nothing is encoded between reads, as when the wire is full.
	for (int i = 0; i < WS_MAX_PONGS + 10; i++)
		w += Frame(0x9, "x");
	EXPECT_EQ(WS_PROTOCOL, s.Recv(w));
}
