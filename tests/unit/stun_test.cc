// SPDX-License-Identifier: ISC
// stun_test.cc: STUN request classification and responses (PROTOCOL.md 9).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "stun.h"

namespace {

const uint8_t kTxid[12] = { 0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
    0xfa, 0x87, 0xdf, 0xae };	/* RFC 5769 */

typedef std::vector<uint8_t> Bytes;

void
Put16(Bytes &b, uint16_t v)
{
	b.push_back((uint8_t)(v >> 8));
	b.push_back((uint8_t)v);
}

uint16_t
Get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

// Header with type 0x0001, the cookie and kTxid; length fixed by Finish.
Bytes
Header(uint16_t type = 0x0001)
{
	Bytes b;
	Put16(b, type);
	Put16(b, 0);
	const uint8_t cookie[] = { 0x21, 0x12, 0xa4, 0x42 };
	b.insert(b.end(), cookie, cookie + 4);
	b.insert(b.end(), kTxid, kTxid + 12);
	return b;
}

void
Attr(Bytes &b, uint16_t type, const void *v, size_t len)
{
	Put16(b, type);
	Put16(b, (uint16_t)len);
	b.insert(b.end(), (const uint8_t *)v, (const uint8_t *)v + len);
	while (b.size() % 4 != 0)
		b.push_back(0);
}

void
SetLen(Bytes &b, size_t extra)
{
	size_t len = b.size() - STUN_HDR_LEN + extra;
	b[2] = (uint8_t)(len >> 8);
	b[3] = (uint8_t)len;
}

// Append a correct FINGERPRINT (RFC 5389 15.5) as the last attribute.
void
Fingerprint(Bytes &b)
{
	SetLen(b, 8);
	uint32_t fp = stun_crc32(b.data(), b.size()) ^ 0x5354554Eu;
	uint8_t v[4] = { (uint8_t)(fp >> 24), (uint8_t)(fp >> 16),
	    (uint8_t)(fp >> 8), (uint8_t)fp };
	Attr(b, 0x8028, v, 4);
}

enum stun_kind
Classify(const Bytes &b, uint8_t *txid = nullptr)
{
	uint8_t dummy[12];
	return stun_parse_request(b.data(), b.size(), txid ? txid : dummy);
}

Bytes
TailscaleRequest()
{
	Bytes b(40);
	EXPECT_EQ(stun_build_request(b.data(), kTxid), 40u);
	return b;
}

// Decode the XOR-MAPPED-ADDRESS of a response; checks the framing.
void
DecodeResponse(const uint8_t *r, size_t n, int *family, uint16_t *port,
    uint8_t ip[16])
{
	ASSERT_GE(n, 32u);
	EXPECT_EQ(Get16(r), 0x0101);
	EXPECT_EQ((size_t)Get16(r + 2), n - STUN_HDR_LEN);
	const uint8_t cookie[] = { 0x21, 0x12, 0xa4, 0x42 };
	EXPECT_EQ(0, memcmp(r + 4, cookie, 4));
	EXPECT_EQ(0, memcmp(r + 8, kTxid, 12));
	EXPECT_EQ(Get16(r + 20), 0x0020);
	EXPECT_EQ((size_t)Get16(r + 22), n - 24);
	EXPECT_EQ(r[24], 0);
	*family = r[25];
	*port = Get16(r + 26) ^ 0x2112;
	uint8_t pad[16];
	memcpy(pad, cookie, 4);
	memcpy(pad + 4, kTxid, 12);
	for (size_t i = 0; i + 28 < n; i++)
		ip[i] = r[28 + i] ^ pad[i];
}

}  // namespace

TEST(Stun, Crc32KnownVectors)
{
	EXPECT_EQ(stun_crc32((const uint8_t *)"123456789", 9), 0xCBF43926u);
	EXPECT_EQ(stun_crc32((const uint8_t *)"", 0), 0u);
	EXPECT_EQ(stun_crc32((const uint8_t *)"a", 1), 0xE8B7BE43u);
}

TEST(Stun, TailscaleRequestLayout)
{
	Bytes b = TailscaleRequest();
	EXPECT_EQ(Get16(&b[0]), 0x0001);
	EXPECT_EQ(Get16(&b[2]), 20);
	EXPECT_EQ(0, memcmp(&b[8], kTxid, 12));
	EXPECT_EQ(Get16(&b[20]), 0x8022);
	EXPECT_EQ(Get16(&b[22]), 8);
	EXPECT_EQ(0, memcmp(&b[24], "tailnode", 8));
	EXPECT_EQ(Get16(&b[32]), 0x8028);
	EXPECT_EQ(Get16(&b[34]), 4);
	uint32_t fp = stun_crc32(b.data(), 32) ^ 0x5354554Eu;
	EXPECT_EQ(b[36], (uint8_t)(fp >> 24));
	EXPECT_EQ(b[39], (uint8_t)fp);
}

TEST(Stun, TailscaleRequestClassified)
{
	Bytes b = TailscaleRequest();
	uint8_t txid[12] = { 0 };
	EXPECT_EQ(Classify(b, txid), STUN_TAILSCALE);
	EXPECT_EQ(0, memcmp(txid, kTxid, 12));

	// The same request built by hand.
	Bytes h = Header();
	Attr(h, 0x8022, "tailnode", 8);
	Fingerprint(h);
	EXPECT_EQ(h, b);
}

TEST(Stun, WrongFingerprintIgnored)
{
	for (size_t i = 36; i < 40; i++) {
		Bytes b = TailscaleRequest();
		b[i] ^= 0x01;
		EXPECT_EQ(Classify(b), STUN_NOT) << i;
	}
	// A changed SOFTWARE value no longer matches the fingerprint.
	Bytes b = TailscaleRequest();
	b[31] = 'f';
	EXPECT_EQ(Classify(b), STUN_NOT);
	// A FINGERPRINT with a bad length.
	Bytes h = Header();
	Attr(h, 0x8022, "tailnode", 8);
	SetLen(h, 12);
	Attr(h, 0x8028, "\0\0\0\0\0\0\0\0", 8);
	EXPECT_EQ(Classify(h), STUN_NOT);
}

TEST(Stun, FingerprintMustBeLast)
{
	Bytes b = Header();
	Fingerprint(b);
	Attr(b, 0x8022, "tailnode", 8);
	SetLen(b, 0);
	EXPECT_EQ(Classify(b), STUN_NOT);
}

TEST(Stun, WithoutSoftwareIsPlainRfc5389)
{
	Bytes bare = Header();
	uint8_t txid[12] = { 0 };
	EXPECT_EQ(Classify(bare, txid), STUN_RFC5389);
	EXPECT_EQ(0, memcmp(txid, kTxid, 12));

	Bytes fp = Header();
	Fingerprint(fp);
	EXPECT_EQ(Classify(fp), STUN_RFC5389);

	Bytes other = Header();
	Attr(other, 0x8022, "stunclient", 10);
	Fingerprint(other);
	EXPECT_EQ(Classify(other), STUN_RFC5389);

	// tailnode without a FINGERPRINT is not Tailscale's request.
	Bytes nofp = Header();
	Attr(nofp, 0x8022, "tailnode", 8);
	SetLen(nofp, 0);
	EXPECT_EQ(Classify(nofp), STUN_RFC5389);
}

TEST(Stun, Rfc5769SampleRequest)
{
	// RFC 5769 2.1: SOFTWARE, PRIORITY, ICE-CONTROLLED, USERNAME,
	// MESSAGE-INTEGRITY, FINGERPRINT 0xe57a3bcf.
	const uint8_t req[] = {
		0x00, 0x01, 0x00, 0x58, 0x21, 0x12, 0xa4, 0x42,
		0xb7, 0xe7, 0xa7, 0x01, 0xbc, 0x34, 0xd6, 0x86,
		0xfa, 0x87, 0xdf, 0xae, 0x80, 0x22, 0x00, 0x10,
		0x53, 0x54, 0x55, 0x4e, 0x20, 0x74, 0x65, 0x73,
		0x74, 0x20, 0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74,
		0x00, 0x24, 0x00, 0x04, 0x6e, 0x00, 0x01, 0xff,
		0x80, 0x29, 0x00, 0x08, 0x93, 0x2f, 0xf9, 0xb1,
		0x51, 0x26, 0x3b, 0x36, 0x00, 0x06, 0x00, 0x09,
		0x65, 0x76, 0x74, 0x6a, 0x3a, 0x68, 0x36, 0x76,
		0x59, 0x20, 0x20, 0x20, 0x00, 0x08, 0x00, 0x14,
		0x9a, 0xea, 0xa7, 0x0c, 0xbf, 0xd8, 0xcb, 0x56,
		0x78, 0x1e, 0xf2, 0xb5, 0xb2, 0xd3, 0xf2, 0x49,
		0xc1, 0xb5, 0x71, 0xa2, 0x80, 0x28, 0x00, 0x04,
		0xe5, 0x7a, 0x3b, 0xcf,
	};
	Bytes b(req, req + sizeof(req));
	uint8_t txid[12];
	EXPECT_EQ(Classify(b, txid), STUN_RFC5389);
	EXPECT_EQ(0, memcmp(txid, kTxid, 12));
	b.back() ^= 0x80;
	EXPECT_EQ(Classify(b), STUN_NOT);
}

TEST(Stun, NonBindingTypesIgnored)
{
	const uint16_t types[] = { 0x0101, 0x0111, 0x0002, 0x0003, 0x0011,
	    0x0000, 0x0100 };
	for (uint16_t t : types) {
		Bytes b = Header(t);
		Attr(b, 0x8022, "tailnode", 8);
		Fingerprint(b);
		EXPECT_EQ(Classify(b), STUN_NOT) << std::hex << t;
	}
}

TEST(Stun, BadCookieIgnored)
{
	for (int i = 4; i < 8; i++) {
		Bytes b = Header();
		b[i] ^= 0x10;
		Attr(b, 0x8022, "tailnode", 8);
		Fingerprint(b);
		EXPECT_EQ(Classify(b), STUN_NOT) << i;
	}
	// RFC 3489 style (no cookie, random bytes there).
	Bytes b = Header();
	b[4] = b[5] = b[6] = b[7] = 0;
	EXPECT_EQ(Classify(b), STUN_NOT);
}

TEST(Stun, TopBitsSetIgnored)
{
	const uint8_t bits[] = { 0x80, 0x40, 0xc0 };
	for (uint8_t bit : bits) {
		Bytes b = TailscaleRequest();
		b[0] |= bit;
		EXPECT_EQ(Classify(b), STUN_NOT) << int(bit);
	}
}

TEST(Stun, ShortPacketsIgnored)
{
	Bytes b = TailscaleRequest();
	uint8_t txid[12];
	for (size_t n = 0; n < STUN_HDR_LEN; n++)
		EXPECT_EQ(stun_parse_request(b.data(), n, txid), STUN_NOT) << n;
	// Truncated inside an attribute.
	for (size_t n = STUN_HDR_LEN + 1; n < b.size(); n++) {
		if (n == 32)
			continue;
		EXPECT_EQ(stun_parse_request(b.data(), n, txid), STUN_NOT) << n;
	}
	// Cut right after SOFTWARE: well formed (attributes are walked
	// over the datagram, not the header length) but no FINGERPRINT.
	EXPECT_EQ(stun_parse_request(b.data(), 32, txid), STUN_RFC5389);
}

TEST(Stun, TrailingBytesIgnored)
{
	for (int extra = 1; extra <= 3; extra++) {
		Bytes b = TailscaleRequest();
		b.insert(b.end(), extra, 0);
		EXPECT_EQ(Classify(b), STUN_NOT) << extra;
	}
}

// RFC 5389 15: every attribute is padded to 4 bytes; Go's foreachAttr
// rejects an attribute whose padded length runs past the datagram.
TEST(Stun, UnpaddedLastAttributeIgnored)
{
	Bytes b = Header();
	Put16(b, 0x8022);
	Put16(b, 5);
	b.insert(b.end(), { 'a', 'b', 'c', 'd', 'e' });
	SetLen(b, 0);
	ASSERT_EQ(b.size(), 29u);
	EXPECT_EQ(Classify(b), STUN_NOT);
	b.insert(b.end(), 3, 0);	/* padded: well formed */
	SetLen(b, 0);
	EXPECT_EQ(Classify(b), STUN_RFC5389);
}

TEST(Stun, AttributeLongerThanPacketIgnored)
{
	Bytes b = Header();
	Put16(b, 0x8022);
	Put16(b, 200);
	b.insert(b.end(), { 't', 'a', 'i', 'l' });
	EXPECT_EQ(Classify(b), STUN_NOT);
}

TEST(Stun, ResponseIPv4)
{
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(32853);
	ASSERT_EQ(inet_pton(AF_INET, "192.0.2.1", &sin.sin_addr), 1);
	uint8_t out[STUN_RESPONSE_MAX + 8];
	memset(out, 0xee, sizeof(out));
	size_t n = stun_build_response(out, kTxid,
	    (const struct sockaddr *)&sin);
	ASSERT_EQ(n, 32u);
	EXPECT_EQ(out[32], 0xee);
	int family;
	uint16_t port;
	uint8_t ip[16];
	DecodeResponse(out, n, &family, &port, ip);
	EXPECT_EQ(family, 1);
	EXPECT_EQ(port, 32853);
	EXPECT_EQ(0, memcmp(ip, &sin.sin_addr, 4));
	// RFC 5769 2.2 attribute bytes.
	const uint8_t want[] = { 0x00, 0x20, 0x00, 0x08, 0x00, 0x01, 0xa1,
	    0x47, 0xe1, 0x12, 0xa6, 0x43 };
	EXPECT_EQ(0, memcmp(out + 20, want, sizeof(want)));
}

TEST(Stun, ResponseIPv6)
{
	struct sockaddr_in6 sin6;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(32853);
	ASSERT_EQ(inet_pton(AF_INET6, "2001:db8:1234:5678:11:2233:4455:6677",
	    &sin6.sin6_addr), 1);
	uint8_t out[STUN_RESPONSE_MAX + 8];
	memset(out, 0xee, sizeof(out));
	size_t n = stun_build_response(out, kTxid,
	    (const struct sockaddr *)&sin6);
	ASSERT_EQ(n, 44u);
	ASSERT_LE(n, (size_t)STUN_RESPONSE_MAX);
	EXPECT_EQ(out[44], 0xee);
	int family;
	uint16_t port;
	uint8_t ip[16];
	DecodeResponse(out, n, &family, &port, ip);
	EXPECT_EQ(family, 2);
	EXPECT_EQ(port, 32853);
	EXPECT_EQ(0, memcmp(ip, &sin6.sin6_addr, 16));
	// RFC 5769 2.3 attribute bytes.
	const uint8_t want[] = { 0x00, 0x20, 0x00, 0x14, 0x00, 0x02, 0xa1,
	    0x47, 0x01, 0x13, 0xa9, 0xfa, 0xa5, 0xd3, 0xf1, 0x79, 0xbc, 0x25,
	    0xf4, 0xb5, 0xbe, 0xd2, 0xb9, 0xd9 };
	EXPECT_EQ(0, memcmp(out + 20, want, sizeof(want)));
}

TEST(Stun, ResponseV4MappedAnsweredAsIPv4)
{
	struct sockaddr_in6 sin6;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(41641);
	ASSERT_EQ(inet_pton(AF_INET6, "::ffff:203.0.113.5", &sin6.sin6_addr),
	    1);
	uint8_t out[STUN_RESPONSE_MAX];
	size_t n = stun_build_response(out, kTxid,
	    (const struct sockaddr *)&sin6);
	ASSERT_EQ(n, 32u);
	int family;
	uint16_t port;
	uint8_t ip[16];
	DecodeResponse(out, n, &family, &port, ip);
	EXPECT_EQ(family, 1);
	EXPECT_EQ(port, 41641);
	const uint8_t want[] = { 203, 0, 113, 5 };
	EXPECT_EQ(0, memcmp(ip, want, 4));
}

TEST(Stun, ResponseLowPortAndBadFamily)
{
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(1);
	sin.sin_addr.s_addr = htonl(0x7f000001);
	uint8_t out[STUN_RESPONSE_MAX];
	size_t n = stun_build_response(out, kTxid,
	    (const struct sockaddr *)&sin);
	int family;
	uint16_t port;
	uint8_t ip[16];
	DecodeResponse(out, n, &family, &port, ip);
	EXPECT_EQ(port, 1);

	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	EXPECT_EQ(stun_build_response(out, kTxid,
	    (const struct sockaddr *)&sun), 0u);
}

TEST(Stun, ResponseIsNotARequest)
{
	// Our own reply must never be classified as a request (no loops).
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(3478);
	uint8_t out[STUN_RESPONSE_MAX], txid[12];
	size_t n = stun_build_response(out, kTxid,
	    (const struct sockaddr *)&sin);
	EXPECT_EQ(stun_parse_request(out, n, txid), STUN_NOT);
}
