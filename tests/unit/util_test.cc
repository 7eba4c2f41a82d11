// SPDX-License-Identifier: ISC
// util_test.cc: hex, key text forms, durations, host:port, small files
// and friends.
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "util.h"
#include "tmpdir.h"

namespace {

const char kHex[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

int64_t
Dur(const char *s)
{
	int64_t ms = -777;
	EXPECT_EQ(util_duration_parse(s, &ms), 0) << s;
	return ms;
}

bool
DurBad(const char *s)
{
	int64_t ms = -777;
	return util_duration_parse(s, &ms) == -1;
}

bool
Split(const char *in, std::string *host, std::string *port)
{
	char h[256], p[32];
	if (util_hostport_split(in, h, sizeof(h), p, sizeof(p)) != 0)
		return false;
	*host = h;
	*port = p;
	return true;
}

}  // namespace

TEST(Util, HexEncode)
{
	const uint8_t in[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
	char out[13];
	memset(out, 'x', sizeof(out));
	util_hex_encode(in, sizeof(in), out);
	EXPECT_STREQ(out, "00017f80abff");
	util_hex_encode(in, 0, out);
	EXPECT_STREQ(out, "");
}

TEST(Util, HexDecode)
{
	uint8_t out[6];
	ASSERT_EQ(util_hex_decode("00017F80abFF", 12, out, 6), 0);
	const uint8_t want[] = { 0x00, 0x01, 0x7f, 0x80, 0xab, 0xff };
	EXPECT_EQ(0, memcmp(out, want, 6));
	EXPECT_EQ(util_hex_decode("", 0, out, 0), 0);

	EXPECT_EQ(util_hex_decode("0001", 4, out, 3), -1) << "too short";
	EXPECT_EQ(util_hex_decode("0001020", 7, out, 3), -1) << "odd";
	EXPECT_EQ(util_hex_decode("00010203", 8, out, 3), -1) << "too long";
	EXPECT_EQ(util_hex_decode("0g", 2, out, 1), -1);
	EXPECT_EQ(util_hex_decode("g0", 2, out, 1), -1);
	EXPECT_EQ(util_hex_decode(" 0", 2, out, 1), -1);
	EXPECT_EQ(util_hex_decode("0x", 2, out, 1), -1);
	EXPECT_EQ(util_hex_decode("-1", 2, out, 1), -1);
	EXPECT_EQ(util_hex_decode("\0" "0", 2, out, 1), -1);
}

TEST(Util, HexRoundTrip)
{
	uint8_t in[256], back[256];
	char text[513];
	for (int i = 0; i < 256; i++)
		in[i] = (uint8_t)i;
	util_hex_encode(in, 256, text);
	ASSERT_EQ(strlen(text), 512u);
	ASSERT_EQ(util_hex_decode(text, 512, back, 256), 0);
	EXPECT_EQ(0, memcmp(in, back, 256));
}

TEST(Util, KeyParse)
{
	uint8_t key[32];
	std::string hex(kHex), up(kHex);
	for (char &c : up)
		c = (char)toupper((unsigned char)c);

	ASSERT_EQ(util_key_parse(("nodekey:" + hex).c_str(), NODEKEY_PREFIX,
	    key), 0);
	for (int i = 0; i < 32; i++)
		EXPECT_EQ(key[i], i);
	memset(key, 0, sizeof(key));
	ASSERT_EQ(util_key_parse(("privkey:" + up).c_str(), PRIVKEY_PREFIX,
	    key), 0);
	EXPECT_EQ(key[31], 0x1f);

	const std::string bad[] = {
		"privkey:" + hex,		/* wrong prefix */
		"NODEKEY:" + hex,		/* prefix is exact */
		"nodekey" + hex,
		hex,
		"nodekey:" + hex.substr(0, 63),
		"nodekey:" + hex + "0",
		"nodekey:" + hex + "00",
		"nodekey:" + hex.substr(0, 62),
		"nodekey:" + hex.substr(0, 63) + "g",
		"nodekey: " + hex.substr(0, 63),
		"nodekey:",
		"",
	};
	for (const std::string &b : bad)
		EXPECT_EQ(util_key_parse(b.c_str(), NODEKEY_PREFIX, key), -1) << b;
}

TEST(Util, KeyFormat)
{
	uint8_t key[32];
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	char out[KEY_TEXT_SIZE + 4];
	memset(out, 'x', sizeof(out));
	util_key_format(key, NODEKEY_PREFIX, out);
	EXPECT_EQ(std::string(out), std::string("nodekey:") + kHex);
	EXPECT_EQ(strlen(out), (size_t)KEY_TEXT_SIZE - 1);
	EXPECT_EQ(out[KEY_TEXT_SIZE], 'x') << "wrote past KEY_TEXT_SIZE";

	uint8_t ff[32], back[32];
	memset(ff, 0xAB, sizeof(ff));
	util_key_format(ff, PRIVKEY_PREFIX, out);
	std::string want = "privkey:";
	for (int i = 0; i < 32; i++)
		want += "ab";
	EXPECT_EQ(std::string(out), want);
	ASSERT_EQ(util_key_parse(out, PRIVKEY_PREFIX, back), 0);
	EXPECT_EQ(0, memcmp(ff, back, 32));
}

TEST(Util, KeyShortIsFiveBase64Chars)
{
	uint8_t key[32];
	char out[16];

	memset(key, 0, sizeof(key));
	util_key_short(key, out);
	EXPECT_STREQ(out, "[AAAAA]");

	memset(key, 0xff, sizeof(key));
	util_key_short(key, out);
	EXPECT_STREQ(out, "[/////]");

	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	util_key_short(key, out);
	EXPECT_STREQ(out, "[AAECA]");

	memset(key, 0, sizeof(key));
	const uint8_t man[] = { 0x4d, 0x61, 0x6e, 0xfb, 0xef, 0xbe };
	memcpy(key, man, sizeof(man));
	util_key_short(key, out);
	EXPECT_STREQ(out, "[TWFu+]");
}

TEST(Util, DurationGoSyntax)
{
	EXPECT_EQ(Dur("10s"), 10000);
	EXPECT_EQ(Dur("1m30s"), 90000);
	EXPECT_EQ(Dur("250ms"), 250);
	EXPECT_EQ(Dur("0"), 0);
	EXPECT_EQ(Dur("2h"), 7200000);
	EXPECT_EQ(Dur("1.5s"), 1500);
	EXPECT_EQ(Dur("2s"), 2000);
	EXPECT_EQ(Dur("10m"), 600000);
	EXPECT_EQ(Dur("15s"), 15000);
	EXPECT_EQ(Dur("1h2m3s4ms"), 3723004);
	EXPECT_EQ(Dur("0s"), 0);
	EXPECT_EQ(Dur("1000us"), 1);
	EXPECT_EQ(Dur("1000\xc2\xb5s"), 1);
	EXPECT_EQ(Dur("5000000ns"), 5);
	EXPECT_EQ(Dur(".5s"), 500);
	EXPECT_EQ(Dur("1.s"), 1000);
	EXPECT_EQ(Dur("+3s"), 3000);
	EXPECT_EQ(Dur("-1s"), -1000);
}

TEST(Util, DurationRejected)
{
	const char *bad[] = { "", "10", "s", "10x", "1s2", "-", "+", ".",
	    ".s", " 1s", "1s ", "1 s", "ms", "1S", "1sec", "1d", "abc",
	    "--1s", "1m-1s" };
	for (const char *b : bad)
		EXPECT_TRUE(DurBad(b)) << "\"" << b << "\"";
}

// Go's time.ParseDuration takes only [0-9]* [.[0-9]*] unit groups:
// no exponents, no hex, no second decimal point.
TEST(Util, DurationRejectsNonGoNumbers)
{
	const char *bad[] = { "1e3s", "1E1s", "0x10s", "0x1p4s", "1.5.5s",
	    "1..5s" };
	for (const char *b : bad)
		EXPECT_TRUE(DurBad(b)) << "\"" << b << "\"";
}

TEST(Util, HostPortSplit)
{
	std::string h, p;
	ASSERT_TRUE(Split(":443", &h, &p));
	EXPECT_EQ(h, "");
	EXPECT_EQ(p, "443");
	ASSERT_TRUE(Split("127.0.0.1:0", &h, &p));
	EXPECT_EQ(h, "127.0.0.1");
	EXPECT_EQ(p, "0");
	ASSERT_TRUE(Split("[::1]:3340", &h, &p));
	EXPECT_EQ(h, "::1");
	EXPECT_EQ(p, "3340");
	ASSERT_TRUE(Split("[::]:443", &h, &p));
	EXPECT_EQ(h, "::");
	ASSERT_TRUE(Split("derp.example.com:https", &h, &p));
	EXPECT_EQ(h, "derp.example.com");
	EXPECT_EQ(p, "https");
	ASSERT_TRUE(Split("[fe80::1%eth0]:80", &h, &p));
	EXPECT_EQ(h, "fe80::1%eth0");

	const char *bad[] = { "::1:80", "host:", "nocolon", "", "[::1]",
	    "[::1]3340", "[::1]:", "[::1:80", "1:2:3" };
	for (const char *b : bad)
		EXPECT_FALSE(Split(b, &h, &p)) << b;
}

TEST(Util, HostPortSplitBufferLimits)
{
	char h[4], p[4];
	EXPECT_EQ(util_hostport_split("abc:123", h, sizeof(h), p, sizeof(p)),
	    0);
	EXPECT_STREQ(h, "abc");
	EXPECT_STREQ(p, "123");
	EXPECT_EQ(util_hostport_split("abcd:1", h, sizeof(h), p, sizeof(p)),
	    -1);
	EXPECT_EQ(util_hostport_split("a:1234", h, sizeof(h), p, sizeof(p)),
	    -1);
}

TEST(Util, CtEqual)
{
	uint8_t a[32], b[32];
	memset(a, 0x5a, sizeof(a));
	memcpy(b, a, sizeof(b));
	EXPECT_TRUE(util_ct_equal(a, b, 32));
	EXPECT_TRUE(util_ct_equal(a, b, 0));
	b[0] ^= 1;
	EXPECT_FALSE(util_ct_equal(a, b, 32));
	EXPECT_TRUE(util_ct_equal(a + 1, b + 1, 31));
	b[0] ^= 1;
	b[31] ^= 0x80;
	EXPECT_FALSE(util_ct_equal(a, b, 32));
	EXPECT_TRUE(util_ct_equal(a, b, 31));
}

TEST(Util, IsZero)
{
	uint8_t a[32];
	memset(a, 0, sizeof(a));
	EXPECT_TRUE(util_is_zero(a, 32));
	EXPECT_TRUE(util_is_zero(a, 0));
	for (int i = 0; i < 32; i++) {
		a[i] = 0x10;
		EXPECT_FALSE(util_is_zero(a, 32)) << i;
		a[i] = 0;
	}
}

TEST(Util, IsIpLiteral)
{
	const char *yes[] = { "127.0.0.1", "0.0.0.0", "::", "::1",
	    "2001:db8::1", "::ffff:1.2.3.4", "255.255.255.255" };
	for (const char *y : yes)
		EXPECT_TRUE(util_is_ip_literal(y)) << y;
	const char *no[] = { "", "localhost", "derp.example.com", "[::1]",
	    "1.2.3", "256.1.1.1", "1.2.3.4:80", "1.2.3.4 ", ":::1" };
	for (const char *n : no)
		EXPECT_FALSE(util_is_ip_literal(n)) << n;
}

TEST(Util, Strlcpy)
{
	char buf[5];
	EXPECT_EQ(util_strlcpy(buf, "abc", sizeof(buf)), 3u);
	EXPECT_STREQ(buf, "abc");
	EXPECT_EQ(util_strlcpy(buf, "abcdefgh", sizeof(buf)), 8u);
	EXPECT_STREQ(buf, "abcd");
	buf[0] = 'z';
	EXPECT_EQ(util_strlcpy(buf, "xyz", 0), 3u);
	EXPECT_EQ(buf[0], 'z');
}

TEST(Util, AddrFormat)
{
	char out[64];
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(3340);
	inet_pton(AF_INET, "10.1.2.3", &sin.sin_addr);
	util_addr_format((const struct sockaddr *)&sin, out, sizeof(out));
	EXPECT_STREQ(out, "10.1.2.3:3340");

	struct sockaddr_in6 sin6;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(443);
	inet_pton(AF_INET6, "2001:db8::7", &sin6.sin6_addr);
	util_addr_format((const struct sockaddr *)&sin6, out, sizeof(out));
	EXPECT_STREQ(out, "[2001:db8::7]:443");

	struct sockaddr_un sun;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	util_addr_format((const struct sockaddr *)&sun, out, sizeof(out));
	EXPECT_STREQ(out, "unknown");

	// A dual-stack listener's IPv4 peer reads as IPv4 everywhere.
	inet_pton(AF_INET6, "::ffff:192.0.2.9", &sin6.sin6_addr);
	util_addr_format((const struct sockaddr *)&sin6, out, sizeof(out));
	EXPECT_STREQ(out, "192.0.2.9:443");
	util_addr_ip((const struct sockaddr *)&sin6, out, sizeof(out));
	EXPECT_STREQ(out, "192.0.2.9");
	util_addr_ip((const struct sockaddr *)&sin, out, sizeof(out));
	EXPECT_STREQ(out, "10.1.2.3");
	util_addr_ip(nullptr, out, sizeof(out));
	EXPECT_STREQ(out, "");
}

TEST(Util, AddrIsLoopback)
{
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	inet_pton(AF_INET, "127.4.5.6", &sin.sin_addr);
	EXPECT_TRUE(util_addr_is_loopback((const struct sockaddr *)&sin));
	inet_pton(AF_INET, "128.0.0.1", &sin.sin_addr);
	EXPECT_FALSE(util_addr_is_loopback((const struct sockaddr *)&sin));

	struct sockaddr_in6 sin6;
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	inet_pton(AF_INET6, "::1", &sin6.sin6_addr);
	EXPECT_TRUE(util_addr_is_loopback((const struct sockaddr *)&sin6));
	inet_pton(AF_INET6, "::ffff:127.0.0.1", &sin6.sin6_addr);
	EXPECT_TRUE(util_addr_is_loopback((const struct sockaddr *)&sin6));
	inet_pton(AF_INET6, "::ffff:10.0.0.1", &sin6.sin6_addr);
	EXPECT_FALSE(util_addr_is_loopback((const struct sockaddr *)&sin6));
	inet_pton(AF_INET6, "::2", &sin6.sin6_addr);
	EXPECT_FALSE(util_addr_is_loopback((const struct sockaddr *)&sin6));
}

namespace {

// The debug access rule for one address literal (v4 or v6 as written).
bool
DebugOk(const char *addr, const char *allow_ip = nullptr,
    const char *cidrs = nullptr)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	auto *s4 = (struct sockaddr_in *)&ss;
	auto *s6 = (struct sockaddr_in6 *)&ss;
	if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1)
		s4->sin_family = AF_INET;
	else {
		EXPECT_EQ(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1) << addr;
		s6->sin6_family = AF_INET6;
	}
	return util_addr_debug_allowed((const struct sockaddr *)&ss,
	    allow_ip, cidrs);
}

}  // namespace

TEST(Util, DebugAccessLoopbackAndTailscaleRanges)
{
	for (const char *a : { "127.0.0.1", "127.255.255.254", "::1",
	    "::ffff:127.0.0.1",
	    // 100.64.0.0/10, both edges
	    "100.64.0.0", "100.127.255.255", "100.100.100.100",
	    "::ffff:100.64.0.1",
	    // around ChromeOS's 100.115.92.0/23, which is not Tailscale's
	    "100.115.91.255", "100.115.94.0",
	    // fd7a:115c:a1e0::/48, both edges
	    "fd7a:115c:a1e0::", "fd7a:115c:a1e0:ffff:ffff:ffff:ffff:ffff",
	    "fd7a:115c:a1e0:ab12:4843:cd96:6200:1" })
		EXPECT_TRUE(DebugOk(a)) << a;
	for (const char *a : { "100.63.255.255", "100.128.0.0", "10.0.0.1",
	    "192.0.2.1", "0.0.0.0", "::", "::2", "::ffff:10.0.0.1",
	    "::ffff:100.128.0.0", "100.115.92.0", "100.115.93.255",
	    "fd7a:115c:a1df:ffff:ffff:ffff:ffff:ffff", "fd7a:115c:a1e1::",
	    "fd7b:115c:a1e0::1", "2001:db8::1",
	    // a Tailscale v4 address written as IPv4-compatible, not mapped
	    "::100.64.0.1" })
		EXPECT_FALSE(DebugOk(a)) << a;
}

TEST(Util, DebugAccessAllowIp)
{
	// TS_ALLOW_DEBUG_IP is one address (derper compares it with the
	// client's address), not a list and not a prefix.
	EXPECT_TRUE(DebugOk("192.0.2.7", "192.0.2.7"));
	EXPECT_TRUE(DebugOk("::ffff:192.0.2.7", "192.0.2.7")) << "mapped";
	EXPECT_FALSE(DebugOk("192.0.2.8", "192.0.2.7"));
	EXPECT_FALSE(DebugOk("192.0.2.7", "192.0.2.0/24"));
	EXPECT_FALSE(DebugOk("192.0.2.7", "192.0.2.7,192.0.2.8"));
	EXPECT_FALSE(DebugOk("192.0.2.7", " 192.0.2.7"));
	EXPECT_FALSE(DebugOk("192.0.2.7", ""));
	// A mapped literal never equals the address derper prints.
	EXPECT_FALSE(DebugOk("192.0.2.7", "::ffff:192.0.2.7"));
	EXPECT_TRUE(DebugOk("2001:db8::5", "2001:db8::5"));
	EXPECT_FALSE(DebugOk("2001:db8::6", "2001:db8::5"));
}

TEST(Util, DebugAccessTrustedCidrs)
{
	const char *l = "10.0.0.0/8, 192.0.2.128/25,,2001:db8::/32";
	EXPECT_TRUE(DebugOk("10.1.2.3", nullptr, l));
	EXPECT_TRUE(DebugOk("::ffff:10.1.2.3", nullptr, l));
	EXPECT_TRUE(DebugOk("192.0.2.128", nullptr, l));
	EXPECT_FALSE(DebugOk("192.0.2.127", nullptr, l));
	EXPECT_TRUE(DebugOk("2001:db8:ffff::1", nullptr, l));
	EXPECT_FALSE(DebugOk("2001:db9::1", nullptr, l));
	EXPECT_FALSE(DebugOk("11.0.0.1", nullptr, l));
	EXPECT_TRUE(DebugOk("203.0.113.9", nullptr, "0.0.0.0/0"));
	EXPECT_FALSE(DebugOk("2001:db8::1", nullptr, "0.0.0.0/0"));
	EXPECT_EQ(util_cidr_list_ok(l), 0);
	EXPECT_EQ(util_cidr_list_ok(""), 0);
	for (const char *bad : { "10.0.0.0", "10.0.0.0/33", "10.0.0.0/",
	    "x/8", "10.0.0.0/8,nope", "2001:db8::/129", "10.0.0.0/-1",
	    "10.0.0.0/8x" })
		EXPECT_EQ(util_cidr_list_ok(bad), -1) << bad;
}

TEST(Util, DurationFormatIsGos)
{
	const struct {
		int64_t sec;
		const char *want;
	} cases[] = { { 0, "0s" }, { 59, "59s" }, { 60, "1m0s" },
	    { 3599, "59m59s" }, { 3600, "1h0m0s" }, { 3723, "1h2m3s" },
	    { 90061, "25h1m1s" }, { -5, "-5s" } };
	for (const auto &c : cases) {
		char buf[64];
		util_duration_format(c.sec, buf, sizeof(buf));
		EXPECT_STREQ(buf, c.want) << c.sec;
	}
}

TEST(Util, NowIsMonotonic)
{
	uint64_t a = util_now_ms(), b = util_now_ms();
	EXPECT_GT(a, 0u);
	EXPECT_GE(b, a);
}

namespace {

std::string
Safe(const char *in, size_t outlen = 256)
{
	std::vector<char> out(outlen, '#');
	util_log_safe(in, out.data(), outlen);
	EXPECT_NE(memchr(out.data(), '\0', outlen), nullptr);
	return out.data();
}

}  // namespace

TEST(UtilLogSafe, KeepsPrintableEscapesTheRest)
{
	EXPECT_EQ(Safe("Running"), "Running");
	EXPECT_EQ(Safe("a b~!{}"), "a b~!{}");
	EXPECT_EQ(Safe("x\ny"), "x\\x0ay");
	EXPECT_EQ(Safe("\r\t\x1b[0m"), "\\x0d\\x09\\x1b[0m");
	EXPECT_EQ(Safe("back\\slash"), "back\\\\slash");
	EXPECT_EQ(Safe("\x7f\xc3\xa9"), "\\x7f\\xc3\\xa9");
	EXPECT_EQ(Safe(""), "");
	EXPECT_EQ(Safe(nullptr), "(null)");
}

TEST(UtilLogSafe, CutsToFitWithAnEllipsis)
{
	EXPECT_EQ(Safe("abcdefg", 8), "abcdefg");
	EXPECT_EQ(Safe("abcdefgh", 8), "abcd...");
	/* An escape is never cut in half. */
	EXPECT_EQ(Safe("ab\ncdefgh", 8), "ab...");
	std::string big(1000, '\n');
	std::string s = Safe(big.c_str(), 64);
	EXPECT_LT(s.size(), 64u);
	EXPECT_EQ(s.substr(s.size() - 3), "...");
	EXPECT_EQ(s.find('\n'), std::string::npos);
}

namespace {

/* A private directory for each test, removed with what is in it. */
class UtilFile : public ::testing::Test {
protected:
	void SetUp() override
	{
		dir_ = tmp_.path();
		ASSERT_FALSE(dir_.empty());
	}

	std::string Path(const std::string &name) const
	{
		return tmp_.Path(name);
	}

	TmpDir tmp_{"derpd-util-"};

	void Write(const std::string &path, const std::string &text)
	{
		int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
		ASSERT_GE(fd, 0);
		ASSERT_EQ(write(fd, text.data(), text.size()),
		    (ssize_t)text.size());
		close(fd);
	}

	/* The whole file through util_read_small_file, or "<NULL>". */
	std::string ReadBack(const std::string &path, size_t max = 1 << 20)
	{
		size_t len = 777;
		char *buf = util_read_small_file(path.c_str(), max, 0, &len,
		    err_, sizeof(err_));
		if (buf == nullptr)
			return "<NULL>";
		std::string s(buf, len);
		free(buf);
		return s;
	}

	std::vector<std::string> List() const
	{
		std::vector<std::string> names;
		DIR *dp = opendir(dir_.c_str());
		EXPECT_NE(dp, nullptr);
		if (dp == nullptr)
			return names;
		struct dirent *de;
		while ((de = readdir(dp)) != nullptr)
			if (strcmp(de->d_name, ".") != 0 &&
			    strcmp(de->d_name, "..") != 0)
				names.push_back(de->d_name);
		closedir(dp);
		return names;
	}

	mode_t Mode(const std::string &path) const
	{
		struct stat st;
		EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
		return st.st_mode & 07777;
	}

	std::string dir_;
	char err_[512] = "";
};

/* Restores the umask a test changed. */
class Umask {
public:
	explicit Umask(mode_t m) : old_(umask(m)) {}
	~Umask() { umask(old_); }

private:
	mode_t old_;
};

}  // namespace

TEST_F(UtilFile, ReadSmallFileWhole)
{
	std::string path = Path("f");
	std::string text("line one\nline\0two\n", 19);
	Write(path, text);

	size_t len = 0;
	char *buf = util_read_small_file(path.c_str(), 64, 0, &len, err_,
	    sizeof(err_));
	ASSERT_NE(buf, nullptr) << err_;
	EXPECT_EQ(len, text.size());
	EXPECT_EQ(std::string(buf, len), text);
	EXPECT_EQ(buf[len], '\0');
	free(buf);

	Write(path, "");
	len = 777;
	buf = util_read_small_file(path.c_str(), 64, UTIL_READ_REGULAR, &len,
	    err_, sizeof(err_));
	ASSERT_NE(buf, nullptr) << err_;
	EXPECT_EQ(len, 0u);
	EXPECT_EQ(buf[0], '\0');
	free(buf);
}

TEST_F(UtilFile, ReadSmallFileCap)
{
	std::string path = Path("f");

	Write(path, std::string(100, 'x'));
	EXPECT_EQ(ReadBack(path, 100), std::string(100, 'x')) << err_;
	EXPECT_EQ(ReadBack(path, 99), "<NULL>");
	EXPECT_EQ(errno, EFBIG);
	EXPECT_EQ(std::string(err_), path + ": file too large");
	EXPECT_EQ(ReadBack(path, 0), "<NULL>");
	EXPECT_EQ(errno, EFBIG);
}

TEST_F(UtilFile, ReadSmallFileMissing)
{
	std::string path = Path("missing");

	EXPECT_EQ(ReadBack(path), "<NULL>");
	EXPECT_EQ(errno, ENOENT);
	EXPECT_EQ(std::string(err_), path + ": " + strerror(ENOENT));
	/* No message wanted: none written, still NULL with errno. */
	size_t len;
	EXPECT_EQ(util_read_small_file(path.c_str(), 10, 0, &len, nullptr, 0),
	    nullptr);
	EXPECT_EQ(errno, ENOENT);
}

TEST_F(UtilFile, ReadSmallFileNotRegular)
{
	size_t len;

	/* A directory opens, but only a regular file is wanted here. */
	EXPECT_EQ(util_read_small_file(dir_.c_str(), 64, UTIL_READ_REGULAR,
	    &len, err_, sizeof(err_)), nullptr);
	EXPECT_EQ(errno, EINVAL);
	EXPECT_EQ(std::string(err_), dir_ + ": not a regular file");
	/* Without the flag, reading it fails as read(2) does. */
	EXPECT_EQ(ReadBack(dir_), "<NULL>");
	EXPECT_EQ(errno, EISDIR);
}

TEST_F(UtilFile, ReadSmallFilePipe)
{
	int p[2];
	char path[64];

	/* A pipe has no size: it is read to its end, up to the cap. */
	ASSERT_EQ(pipe(p), 0);
	ASSERT_EQ(write(p[1], "abc", 3), 3);
	close(p[1]);
	snprintf(path, sizeof(path), "/dev/fd/%d", p[0]);
	EXPECT_EQ(ReadBack(path, 3), "abc") << err_;
	close(p[0]);

	ASSERT_EQ(pipe(p), 0);
	ASSERT_EQ(write(p[1], "abcd", 4), 4);
	close(p[1]);
	snprintf(path, sizeof(path), "/dev/fd/%d", p[0]);
	EXPECT_EQ(ReadBack(path, 3), "<NULL>");
	EXPECT_EQ(errno, EFBIG);
	close(p[0]);

	ASSERT_EQ(pipe(p), 0);
	close(p[1]);
	snprintf(path, sizeof(path), "/dev/fd/%d", p[0]);
	size_t len;
	EXPECT_EQ(util_read_small_file(path, 64, UTIL_READ_REGULAR, &len,
	    err_, sizeof(err_)), nullptr);
	EXPECT_EQ(errno, EINVAL);
	close(p[0]);
}

TEST_F(UtilFile, WriteAtomicCreatesMode0600)
{
	Umask um(0);	/* the mode asked for, whatever the umask allows */
	std::string path = Path("secret");

	ASSERT_EQ(util_write_file_atomic(path.c_str(), "s3cret", 6, 0600, err_,
	    sizeof(err_)), 0) << err_;
	EXPECT_EQ(ReadBack(path), "s3cret");
	EXPECT_EQ(Mode(path), 0600u);
	/* Nothing else left in the directory. */
	EXPECT_EQ(List(), std::vector<std::string>{"secret"});

	/* An existing file of a wider mode is replaced by a 0600 one. */
	Write(path, "old");
	ASSERT_EQ(chmod(path.c_str(), 0644), 0);
	ASSERT_EQ(util_write_file_atomic(path.c_str(), "new", 3, 0600, err_,
	    sizeof(err_)), 0) << err_;
	EXPECT_EQ(Mode(path), 0600u);

	ASSERT_EQ(util_write_file_atomic(path.c_str(), "pub", 3, 0644, err_,
	    sizeof(err_)), 0) << err_;
	EXPECT_EQ(Mode(path), 0644u);
}

TEST_F(UtilFile, WriteAtomicReplacesWhole)
{
	std::string path = Path("state");
	std::string big(100000, 'a');
	struct stat before, after;

	ASSERT_EQ(util_write_file_atomic(path.c_str(), big.data(), big.size(),
	    0600, err_, sizeof(err_)), 0) << err_;
	EXPECT_EQ(ReadBack(path), big);

	/* A reader that opened the old file keeps reading all of it. */
	int fd = open(path.c_str(), O_RDONLY);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(fstat(fd, &before), 0);
	ASSERT_EQ(util_write_file_atomic(path.c_str(), "short", 5, 0600, err_,
	    sizeof(err_)), 0) << err_;
	EXPECT_EQ(ReadBack(path), "short");
	ASSERT_EQ(stat(path.c_str(), &after), 0);
	/* A new inode renamed in, not the old one rewritten in place. */
	EXPECT_NE(before.st_ino, after.st_ino);
	std::string old;
	char buf[8192];
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		old.append(buf, (size_t)n);
	close(fd);
	EXPECT_EQ(old, big);

	/* Empty content is content too. */
	ASSERT_EQ(util_write_file_atomic(path.c_str(), "", 0, 0600, err_,
	    sizeof(err_)), 0) << err_;
	EXPECT_EQ(ReadBack(path), "");
	EXPECT_EQ(List(), std::vector<std::string>{"state"});
}

TEST_F(UtilFile, WriteAtomicFailures)
{
	/* No such directory: the temporary file cannot be made. */
	std::string path = Path("nodir/state");
	EXPECT_EQ(util_write_file_atomic(path.c_str(), "x", 1, 0600, err_,
	    sizeof(err_)), -1);
	EXPECT_EQ(errno, ENOENT);
	EXPECT_EQ(std::string(err_).rfind(path + ".tmp", 0), 0u) << err_;
	EXPECT_TRUE(List().empty());

	/* The rename onto a directory fails: old kept, no temporary left. */
	ASSERT_EQ(mkdir(Path("d").c_str(), 0700), 0);
	path = Path("d");
	EXPECT_EQ(util_write_file_atomic(path.c_str(), "x", 1, 0600, err_,
	    sizeof(err_)), -1);
	EXPECT_EQ(errno, EISDIR);
	EXPECT_EQ(std::string(err_), path + ": " + strerror(EISDIR));
	EXPECT_EQ(List(), std::vector<std::string>{"d"});
	struct stat st;
	ASSERT_EQ(stat(path.c_str(), &st), 0);
	EXPECT_TRUE(S_ISDIR(st.st_mode));

	/* A name with no room for the suffix. */
	std::string longp = dir_ + "/" + std::string(PATH_MAX, 'n');
	std::vector<char> lerr(2 * PATH_MAX);
	EXPECT_EQ(util_write_file_atomic(longp.c_str(), "x", 1, 0600,
	    lerr.data(), lerr.size()), -1);
	EXPECT_EQ(errno, ENAMETOOLONG);
	EXPECT_EQ(std::string(lerr.data()), longp + ": path too long");
	EXPECT_EQ(util_write_file_atomic(longp.c_str(), "x", 1, 0600, nullptr,
	    0), -1);
	EXPECT_EQ(List(), std::vector<std::string>{"d"});
}
