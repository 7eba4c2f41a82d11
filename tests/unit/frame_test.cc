// SPDX-License-Identifier: ISC
// frame_test.cc: the DERP frame codec against PROTOCOL.md sections 2 and 3.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cctype>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frame.h"

namespace {

const char kMeshHex[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

void
FillKey(uint8_t key[32], uint8_t base)
{
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)(base + i);
}

int
ParseInfo(const std::string &json, struct clientinfo *ci)
{
	const char *why = nullptr;
	int rc = frame_clientinfo_parse(json.data(), json.size(), ci, &why);
	if (rc != 0) {
		EXPECT_NE(why, nullptr) << "no reason for rejecting " << json;
	}
	return rc;
}

bool
LenOk(uint8_t type, uint32_t len)
{
	const char *why = nullptr;
	enum frame_status st = frame_check_client_len(type, len, &why);
	if (st == FRAME_BAD) {
		EXPECT_NE(why, nullptr) << "type " << int(type) << " len " << len;
	} else {
		EXPECT_EQ(st, FRAME_OK);
	}
	return st == FRAME_OK;
}

}  // namespace

TEST(Frame, HeaderRoundTrip)
{
	const uint32_t lens[] = { 0, 1, 40, 65568, 0x01020304u, 0xfffffffeu,
	    0xffffffffu };
	for (uint32_t len : lens) {
		uint8_t buf[FRAME_HDR_LEN], type = 0;
		uint32_t got = 12345;
		frame_put_header(buf, FRAME_SEND_PACKET, len);
		ASSERT_EQ(frame_get_header(buf, sizeof(buf), &type, &got),
		    FRAME_OK);
		EXPECT_EQ(type, FRAME_SEND_PACKET);
		EXPECT_EQ(got, len);
	}
}

TEST(Frame, HeaderIsBigEndianPayloadLength)
{
	uint8_t buf[FRAME_HDR_LEN];
	frame_put_header(buf, 0x12, 0x01020304u);
	const uint8_t want[] = { 0x12, 0x01, 0x02, 0x03, 0x04 };
	EXPECT_EQ(0, memcmp(buf, want, sizeof(want)));

	frame_put_header(buf, 0xff, 0xffffffffu);
	const uint8_t want2[] = { 0xff, 0xff, 0xff, 0xff, 0xff };
	EXPECT_EQ(0, memcmp(buf, want2, sizeof(want2)));

	frame_put_header(buf, FRAME_KEEP_ALIVE, 0);
	const uint8_t want3[] = { 0x06, 0, 0, 0, 0 };
	EXPECT_EQ(0, memcmp(buf, want3, sizeof(want3)));
}

TEST(Frame, GetHeaderNeedsFiveBytes)
{
	const uint8_t buf[] = { 0x04, 0x00, 0x00, 0x01, 0x00, 0xaa };
	for (size_t n = 0; n < FRAME_HDR_LEN; n++) {
		uint8_t type = 0x77;
		uint32_t len = 0x77;
		EXPECT_EQ(frame_get_header(buf, n, &type, &len),
		    FRAME_NEED_MORE) << n;
	}
	uint8_t type;
	uint32_t len;
	ASSERT_EQ(frame_get_header(buf, sizeof(buf), &type, &len), FRAME_OK);
	EXPECT_EQ(type, 0x04);
	EXPECT_EQ(len, 256u);
}

TEST(Frame, SendPacketLengthLimits)
{
	EXPECT_FALSE(LenOk(FRAME_SEND_PACKET, 0));
	EXPECT_FALSE(LenOk(FRAME_SEND_PACKET, 31));
	EXPECT_TRUE(LenOk(FRAME_SEND_PACKET, 32));
	EXPECT_TRUE(LenOk(FRAME_SEND_PACKET, 65568));
	EXPECT_FALSE(LenOk(FRAME_SEND_PACKET, 65569));
	EXPECT_FALSE(LenOk(FRAME_SEND_PACKET, 0xffffffffu));
}

TEST(Frame, ForwardPacketLengthLimits)
{
	EXPECT_FALSE(LenOk(FRAME_FORWARD_PACKET, 0));
	EXPECT_FALSE(LenOk(FRAME_FORWARD_PACKET, 63));
	EXPECT_TRUE(LenOk(FRAME_FORWARD_PACKET, 64));
	EXPECT_TRUE(LenOk(FRAME_FORWARD_PACKET, 65600));
	EXPECT_FALSE(LenOk(FRAME_FORWARD_PACKET, 65601));
	EXPECT_FALSE(LenOk(FRAME_FORWARD_PACKET, 0xffffffffu));
}

TEST(Frame, PingLengthLimits)
{
	EXPECT_FALSE(LenOk(FRAME_PING, 0));
	EXPECT_FALSE(LenOk(FRAME_PING, 7));
	EXPECT_TRUE(LenOk(FRAME_PING, 8));
	EXPECT_TRUE(LenOk(FRAME_PING, 1000));
	EXPECT_FALSE(LenOk(FRAME_PING, 1001));
}

TEST(Frame, NotePreferredWatchConnsClosePeerExactLengths)
{
	EXPECT_FALSE(LenOk(FRAME_NOTE_PREFERRED, 0));
	EXPECT_TRUE(LenOk(FRAME_NOTE_PREFERRED, 1));
	EXPECT_FALSE(LenOk(FRAME_NOTE_PREFERRED, 2));

	EXPECT_TRUE(LenOk(FRAME_WATCH_CONNS, 0));
	EXPECT_FALSE(LenOk(FRAME_WATCH_CONNS, 1));

	EXPECT_FALSE(LenOk(FRAME_CLOSE_PEER, 31));
	EXPECT_TRUE(LenOk(FRAME_CLOSE_PEER, 32));
	EXPECT_FALSE(LenOk(FRAME_CLOSE_PEER, 33));
}

TEST(Frame, UnknownTypesAnyLength)
{
	const uint8_t types[] = { 0x00, 0x0b, 0x0f, FRAME_PONG, FRAME_HEALTH,
	    FRAME_RESTARTING, 0x16, 0x7f, 0xff };
	const uint32_t lens[] = { 0, 1, 31, 1000, 65569, 1u << 20,
	    0xffffffffu };
	for (uint8_t t : types)
		for (uint32_t l : lens)
			EXPECT_TRUE(LenOk(t, l)) << "type " << int(t) << " len "
			    << l;
}

TEST(Frame, DiscoDetection)
{
	std::vector<uint8_t> pkt(100, 0x55);
	memcpy(pkt.data(), "TS\xf0\x9f\x92\xac", 6);
	EXPECT_FALSE(frame_is_disco(pkt.data(), 61));
	EXPECT_TRUE(frame_is_disco(pkt.data(), 62));
	EXPECT_TRUE(frame_is_disco(pkt.data(), 100));
	EXPECT_FALSE(frame_is_disco(pkt.data(), 6));
	EXPECT_FALSE(frame_is_disco(pkt.data(), 0));
	for (int i = 0; i < 6; i++) {
		std::vector<uint8_t> bad = pkt;
		bad[i] ^= 0x01;
		EXPECT_FALSE(frame_is_disco(bad.data(), bad.size())) << i;
	}
	std::vector<uint8_t> wg(148, 0);
	wg[0] = 0x01;	/* a WireGuard handshake initiation */
	EXPECT_FALSE(frame_is_disco(wg.data(), wg.size()));
}

TEST(Frame, ServerKeyBytes)
{
	uint8_t pub[32], out[64];
	FillKey(pub, 0xa0);
	memset(out, 0xee, sizeof(out));
	ASSERT_EQ(frame_build_server_key(out, pub), 45u);
	const uint8_t hdr[] = { 0x01, 0x00, 0x00, 0x00, 0x28 };
	EXPECT_EQ(0, memcmp(out, hdr, 5));
	const uint8_t magic[] = { 0x44, 0x45, 0x52, 0x50, 0xf0, 0x9f, 0x94,
	    0x91 };
	EXPECT_EQ(0, memcmp(out + 5, magic, 8));
	EXPECT_EQ(0, memcmp(out + 13, pub, 32));
	EXPECT_EQ(out[45], 0xee) << "wrote past the frame";
}

TEST(Frame, PeerGoneBytes)
{
	uint8_t key[32], out[64];
	FillKey(key, 0x10);
	memset(out, 0xee, sizeof(out));
	ASSERT_EQ(frame_build_peer_gone(out, key, PEER_GONE_NOT_HERE), 38u);
	const uint8_t hdr[] = { 0x08, 0x00, 0x00, 0x00, 0x21 };
	EXPECT_EQ(0, memcmp(out, hdr, 5));
	EXPECT_EQ(0, memcmp(out + 5, key, 32));
	EXPECT_EQ(out[37], 0x01);
	EXPECT_EQ(out[38], 0xee);

	ASSERT_EQ(frame_build_peer_gone(out, key, PEER_GONE_DISCONNECTED),
	    38u);
	EXPECT_EQ(out[37], 0x00);
}

TEST(Frame, PeerPresentIPv4IsMapped)
{
	uint8_t key[32], out[64];
	struct sockaddr_in sin;
	FillKey(key, 0x30);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(41641);	/* 0xa2a9 */
	ASSERT_EQ(inet_pton(AF_INET, "203.0.113.7", &sin.sin_addr), 1);
	memset(out, 0xee, sizeof(out));
	ASSERT_EQ(frame_build_peer_present(out, key,
	    (const struct sockaddr *)&sin, PEER_PRESENT_REGULAR), 56u);
	const uint8_t hdr[] = { 0x09, 0x00, 0x00, 0x00, 0x33 };
	EXPECT_EQ(0, memcmp(out, hdr, 5));
	EXPECT_EQ(0, memcmp(out + 5, key, 32));
	const uint8_t ip[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff,
	    203, 0, 113, 7 };
	EXPECT_EQ(0, memcmp(out + 37, ip, 16));
	EXPECT_EQ(out[53], 0xa2);
	EXPECT_EQ(out[54], 0xa9);
	EXPECT_EQ(out[55], 0x01);
	EXPECT_EQ(out[56], 0xee);
}

TEST(Frame, PeerPresentIPv6AsIs)
{
	uint8_t key[32], out[64];
	struct sockaddr_in6 sin6;
	FillKey(key, 0x40);
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(443);
	ASSERT_EQ(inet_pton(AF_INET6, "2001:db8::1:2", &sin6.sin6_addr), 1);
	ASSERT_EQ(frame_build_peer_present(out, key,
	    (const struct sockaddr *)&sin6,
	    PEER_PRESENT_MESH | PEER_PRESENT_NOT_IDEAL), 56u);
	EXPECT_EQ(0, memcmp(out + 37, &sin6.sin6_addr, 16));
	EXPECT_EQ(out[53], 0x01);
	EXPECT_EQ(out[54], 0xbb);
	EXPECT_EQ(out[55], 0x0a);
}

TEST(Frame, PeerPresentUnknownAddressIsZeros)
{
	uint8_t key[32], out[64];
	FillKey(key, 0x50);
	memset(out, 0xee, sizeof(out));
	ASSERT_EQ(frame_build_peer_present(out, key, nullptr,
	    PEER_PRESENT_PROBER), 56u);
	const uint8_t zero[18] = { 0 };
	EXPECT_EQ(0, memcmp(out + 37, zero, 18));
	EXPECT_EQ(out[55], PEER_PRESENT_PROBER);

	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memset(out, 0xee, sizeof(out));
	ASSERT_EQ(frame_build_peer_present(out, key,
	    (const struct sockaddr *)&sun, PEER_PRESENT_REGULAR), 56u);
	EXPECT_EQ(0, memcmp(out + 37, zero, 18));
	EXPECT_EQ(out[55], PEER_PRESENT_REGULAR);
}

TEST(Frame, PongEchoesPing)
{
	const uint8_t data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	uint8_t out[32];
	memset(out, 0xee, sizeof(out));
	ASSERT_EQ(frame_build_pong(out, data), 13u);
	const uint8_t want[] = { 0x13, 0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8 };
	EXPECT_EQ(0, memcmp(out, want, sizeof(want)));
	EXPECT_EQ(out[13], 0xee);
}

TEST(Frame, KeepAliveIsEmpty)
{
	uint8_t out[8];
	memset(out, 0xee, sizeof(out));
	ASSERT_EQ(frame_build_keepalive(out), 5u);
	const uint8_t want[] = { 0x06, 0, 0, 0, 0 };
	EXPECT_EQ(0, memcmp(out, want, sizeof(want)));
	EXPECT_EQ(out[5], 0xee);
}

TEST(Frame, ClientInfoEmptyObject)
{
	struct clientinfo ci;
	memset(&ci, 0xff, sizeof(ci));
	ASSERT_EQ(ParseInfo("{}", &ci), 0);
	EXPECT_FALSE(ci.ci_has_mesh_key);
	EXPECT_EQ(ci.ci_version, 0);
	EXPECT_FALSE(ci.ci_can_ack_pings);
	EXPECT_FALSE(ci.ci_is_prober);
	EXPECT_STREQ(ci.ci_app_name, "");
}

TEST(Frame, ClientInfoMagicsock)
{
	struct clientinfo ci;
	ASSERT_EQ(ParseInfo("{\"version\":2,\"CanAckPings\":true}", &ci), 0);
	EXPECT_EQ(ci.ci_version, 2);
	EXPECT_TRUE(ci.ci_can_ack_pings);
	EXPECT_FALSE(ci.ci_has_mesh_key);
	EXPECT_FALSE(ci.ci_is_prober);
}

TEST(Frame, ClientInfoMeshClient)
{
	struct clientinfo ci;
	std::string j = std::string("{\"meshKey\":\"") + kMeshHex +
	    "\",\"version\":2,\"CanAckPings\":false}";
	ASSERT_EQ(ParseInfo(j, &ci), 0);
	EXPECT_TRUE(ci.ci_has_mesh_key);
	for (int i = 0; i < 32; i++)
		EXPECT_EQ(ci.ci_mesh_key[i], i);
	EXPECT_EQ(ci.ci_version, 2);
	EXPECT_FALSE(ci.ci_can_ack_pings);
}

TEST(Frame, ClientInfoKeysCaseInsensitive)
{
	struct clientinfo ci;
	std::string upper(kMeshHex);
	for (char &c : upper)
		c = (char)toupper((unsigned char)c);

	ASSERT_EQ(ParseInfo(std::string("{\"MeshKey\":\"") + kMeshHex + "\"}",
	    &ci), 0);
	EXPECT_TRUE(ci.ci_has_mesh_key);
	EXPECT_EQ(ci.ci_mesh_key[31], 0x1f);

	ASSERT_EQ(ParseInfo(std::string("{\"meshkey\":\"") + upper + "\"}",
	    &ci), 0);
	EXPECT_TRUE(ci.ci_has_mesh_key);
	EXPECT_EQ(ci.ci_mesh_key[10], 0x0a);

	ASSERT_EQ(ParseInfo("{\"Version\":2}", &ci), 0);
	EXPECT_EQ(ci.ci_version, 2);
	ASSERT_EQ(ParseInfo("{\"VERSION\":7}", &ci), 0);
	EXPECT_EQ(ci.ci_version, 7);
	ASSERT_EQ(ParseInfo("{\"canackpings\":true,\"isprober\":true}", &ci),
	    0);
	EXPECT_TRUE(ci.ci_can_ack_pings);
	EXPECT_TRUE(ci.ci_is_prober);
}

TEST(Frame, ClientInfoBadMeshKeyRejected)
{
	struct clientinfo ci;
	std::string h(kMeshHex);
	const std::string bad[] = {
		"\"\"",
		"null",
		"\"" + h.substr(0, 63) + "\"",
		"\"" + h + "0\"",
		"\"" + h + "00\"",
		"\"" + h.substr(0, 62) + "0g\"",
		"\"" + h.substr(0, 63) + " \"",
		"\"nodekey:" + h.substr(0, 56) + "\"",
		"42",
		"true",
		"[]",
	};
	for (const std::string &v : bad) {
		EXPECT_EQ(ParseInfo("{\"meshKey\":" + v + "}", &ci), -1) << v;
		EXPECT_EQ(ParseInfo("{\"version\":2,\"MeshKey\":" + v +
		    ",\"CanAckPings\":true}", &ci), -1) << v;
	}
}

TEST(Frame, ClientInfoZeroMeshKeyIsNoMeshKey)
{
	struct clientinfo ci;
	std::string j = "{\"meshKey\":\"" + std::string(64, '0') + "\"}";
	ASSERT_EQ(ParseInfo(j, &ci), 0);
	EXPECT_FALSE(ci.ci_has_mesh_key);
}

TEST(Frame, ClientInfoIsProber)
{
	struct clientinfo ci;
	ASSERT_EQ(ParseInfo("{\"version\":2,\"CanAckPings\":true,"
	    "\"IsProber\":true}", &ci), 0);
	EXPECT_TRUE(ci.ci_is_prober);
	ASSERT_EQ(ParseInfo("{\"IsProber\":false}", &ci), 0);
	EXPECT_FALSE(ci.ci_is_prober);
	EXPECT_EQ(ParseInfo("{\"IsProber\":\"yes\"}", &ci), -1);
}

TEST(Frame, ClientInfoAppName)
{
	struct clientinfo ci;
	ASSERT_EQ(ParseInfo("{\"AppName\":\"derpprobe\"}", &ci), 0);
	EXPECT_STREQ(ci.ci_app_name, "derpprobe");
	std::string longname(200, 'x');
	ASSERT_EQ(ParseInfo("{\"appname\":\"" + longname + "\"}", &ci), 0);
	EXPECT_EQ(strlen(ci.ci_app_name), sizeof(ci.ci_app_name) - 1);
}

TEST(Frame, ClientInfoUnknownKeysIgnored)
{
	struct clientinfo ci;
	ASSERT_EQ(ParseInfo("{\"Foo\":{\"bar\":[1,2,{}]},\"version\":2,"
	    "\"TokenBucketBytesPerSecond\":5,\"x\":null}", &ci), 0);
	EXPECT_EQ(ci.ci_version, 2);
}

TEST(Frame, ClientInfoWrongTypesRejected)
{
	struct clientinfo ci;
	EXPECT_EQ(ParseInfo("{\"version\":\"2\"}", &ci), -1);
	EXPECT_EQ(ParseInfo("{\"CanAckPings\":1}", &ci), -1);
	EXPECT_EQ(ParseInfo("{\"AppName\":5}", &ci), -1);
}

// Go's encoding/json treats null for an int, bool or string field as a
// no-op, not an error; only meshKey (a json.Unmarshaler) rejects null.
TEST(Frame, ClientInfoNullScalarsAreNoOps)
{
	struct clientinfo ci;
	EXPECT_EQ(ParseInfo("{\"CanAckPings\":null,\"IsProber\":null,"
	    "\"AppName\":null}", &ci), 0);
	EXPECT_EQ(ParseInfo("{\"version\":null,\"CanAckPings\":true}", &ci),
	    0);
}

TEST(Frame, ClientInfoNotJsonObjectRejected)
{
	struct clientinfo ci;
	const char *bad[] = { "", "{", "hello", "{\"version\":}", "[]",
	    "[{}]", "\"{}\"", "2", "null", "true" };
	for (const char *b : bad)
		EXPECT_EQ(ParseInfo(b, &ci), -1) << b;
}

TEST(Frame, ClientInfoUsesOnlyLenBytes)
{
	struct clientinfo ci;
	const char *why = nullptr;
	// The box plaintext is not NUL-terminated; only len bytes count.
	const char buf[] = "{\"version\":2}{\"version\":3}";
	ASSERT_EQ(frame_clientinfo_parse(buf, 13, &ci, &why), 0);
	EXPECT_EQ(ci.ci_version, 2);
}

// Go's json.Unmarshal rejects anything after the top-level value; so
// must we ("not JSON" is rejected, PROTOCOL 3.1 step 5).
TEST(Frame, ClientInfoTrailingGarbageRejected)
{
	struct clientinfo ci;
	EXPECT_EQ(ParseInfo("{\"version\":2}x", &ci), -1);
	EXPECT_EQ(ParseInfo("{}{}", &ci), -1);
	EXPECT_EQ(ParseInfo("{} 1", &ci), -1);
	EXPECT_EQ(ParseInfo("{\"version\":2} \n", &ci), 0)
	    << "trailing whitespace is valid JSON";
}
