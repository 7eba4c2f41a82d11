// SPDX-License-Identifier: ISC
// auth_test.cc: admission: the pure classifiers, the webhook body, the
// allowlist file, the engine (cache, single flight, max-inflight queue,
// cancel) on an event base stepped by hand, and the refusal aggregator.
#include <arpa/inet.h>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <ftw.h>
#include <memory>
#include <netinet/in.h>
#include <string>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <vector>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <gtest/gtest.h>

#include "apiset.h"
#include "auth.h"
#include "reload.h"
#include "auth_int.h"
#include "util.h"

#include "../integration/fake_http.h"

namespace {

using fakehttp::NowMs;

class CurlEnv : public ::testing::Environment {
public:
	void SetUp() override { curl_global_init(CURL_GLOBAL_DEFAULT); }
	void TearDown() override { curl_global_cleanup(); }
};

const ::testing::Environment *const curl_env =
    ::testing::AddGlobalTestEnvironment(new CurlEnv);

typedef std::vector<uint8_t> Key;

// A distinct key per n (the first bytes differ, so they hash apart).
Key
MakeKey(uint32_t n)
{
	Key k(32, 0x5a);
	k[0] = (uint8_t)(n >> 24);
	k[1] = (uint8_t)(n >> 16);
	k[2] = (uint8_t)(n >> 8);
	k[3] = (uint8_t)n;
	k[31] = 0x01;
	return k;
}

std::string
KeyHex(const Key &k)
{
	char h[65];
	util_hex_encode(k.data(), 32, h);
	return std::string(h, 64);
}

std::string
NodeKey(const Key &k)
{
	return "nodekey:" + KeyHex(k);
}

struct sockaddr_in
V4(const char *ip, uint16_t port = 41641)
{
	struct sockaddr_in s;
	memset(&s, 0, sizeof(s));
	s.sin_family = AF_INET;
	s.sin_port = htons(port);
	inet_pton(AF_INET, ip, &s.sin_addr);
	return s;
}

struct sockaddr_in6
V6(const char *ip, uint16_t port = 41641)
{
	struct sockaddr_in6 s;
	memset(&s, 0, sizeof(s));
	s.sin6_family = AF_INET6;
	s.sin6_port = htons(port);
	inet_pton(AF_INET6, ip, &s.sin6_addr);
	return s;
}

int
RmOne(const char *path, const struct stat *, int, struct FTW *)
{
	return remove(path);
}

class TempDir {
public:
	TempDir()
	{
		char t[] = "/tmp/derpd-auth-XXXXXX";
		if (mkdtemp(t) != nullptr)
			path = t;
	}
	~TempDir()
	{
		if (!path.empty())
			nftw(path.c_str(), RmOne, 8, FTW_DEPTH | FTW_PHYS);
	}
	std::string Write(const std::string &name, const std::string &text)
	{
		std::string p = path + "/" + name;
		std::string tmp = p + ".tmp";
		FILE *f = fopen(tmp.c_str(), "w");
		EXPECT_NE(f, nullptr) << tmp;
		if (f == nullptr)
			return p;
		fwrite(text.data(), 1, text.size(), f);
		fclose(f);
		rename(tmp.c_str(), p.c_str());
		return p;
	}
	std::string path;
};

// The value of one exact metric line in text, -1 if absent.
int64_t
MetricIn(const std::string &text, const std::string &name)
{
	size_t pos = 0;
	while (pos < text.size()) {
		size_t eol = text.find('\n', pos);
		if (eol == std::string::npos)
			eol = text.size();
		if (eol - pos > name.size() + 1 &&
		    text.compare(pos, name.size(), name) == 0 &&
		    text[pos + name.size()] == ' ')
			return strtoll(text.c_str() + pos + name.size() + 1,
			    nullptr, 10);
		pos = eol + 1;
	}
	return -1;
}

std::string
Varz(struct auth *a)
{
	struct evbuffer *b = evbuffer_new();
	auth_varz(a, b);
	std::string s((const char *)evbuffer_pullup(b, -1),
	    evbuffer_get_length(b));
	evbuffer_free(b);
	return s;
}

std::string
Rejects(const char *reason)
{
	return std::string("derpd_admission_rejects{reason=\"") + reason +
	    "\"}";
}

std::string
BackendReqs(const char *backend)
{
	return std::string("derpd_admission_backend_requests{backend=\"") +
	    backend + "\"}";
}

// --- pure classifiers ----------------------------------------------

enum auth_reason
Ts(int code, long status, const char *body)
{
	return auth_tailscaled_classify(code, status, body,
	    body ? strlen(body) : 0);
}

enum auth_reason
Url(int code, long status, const std::string &body)
{
	return auth_url_classify(code, status, body.c_str(), body.size());
}

}  // namespace

TEST(AuthReason, Names)
{
	EXPECT_STREQ(auth_reason_name(AUTH_OK), "ok");
	EXPECT_STREQ(auth_reason_name(AUTH_NOT_IN_ALLOWLIST),
	    "not_in_allowlist");
	EXPECT_STREQ(auth_reason_name(AUTH_NOT_IN_TAILNET), "not_in_tailnet");
	EXPECT_STREQ(auth_reason_name(AUTH_TAILSCALED_UNREACHABLE),
	    "tailscaled_unreachable");
	EXPECT_STREQ(auth_reason_name(AUTH_TAILSCALED_TOO_OLD),
	    "tailscaled_too_old");
	EXPECT_STREQ(auth_reason_name(AUTH_TAILSCALED_ERROR),
	    "tailscaled_error");
	EXPECT_STREQ(auth_reason_name(AUTH_URL_DENIED), "url_denied");
	EXPECT_STREQ(auth_reason_name(AUTH_URL_STATUS), "url_status");
	EXPECT_STREQ(auth_reason_name(AUTH_URL_BAD_RESPONSE),
	    "url_bad_response");
	EXPECT_STREQ(auth_reason_name(AUTH_URL_UNREACHABLE), "url_unreachable");
	EXPECT_STREQ(auth_reason_name(AUTH_TIMEOUT), "timeout");
	EXPECT_STREQ(auth_reason_name(AUTH_RATE_LIMITED), "rate_limited");
	EXPECT_FALSE(auth_reason_is_denial(AUTH_RATE_LIMITED));
	EXPECT_STREQ(auth_reason_name(AUTH_REASON__COUNT), "unknown");
}

TEST(AuthTailscaledClassify, OkNeedsJson)
{
	EXPECT_EQ(Ts(CURLE_OK, 200, "{\"Node\":{\"ID\":1,\"Name\":\"a.ts.net.\"},"
	    "\"UserProfile\":{\"ID\":2},\"CapMap\":{}}"), AUTH_OK);
	EXPECT_EQ(Ts(CURLE_OK, 200, "{}"), AUTH_OK);
	EXPECT_EQ(Ts(CURLE_OK, 200, " {\"Node\":{}}\n"), AUTH_OK);
	// A 200 must carry a parseable JSON body (PROTOCOL.md 7.1).
	EXPECT_EQ(Ts(CURLE_OK, 200, "garbage"), AUTH_TAILSCALED_ERROR);
	EXPECT_EQ(Ts(CURLE_OK, 200, "{\"Node\":"), AUTH_TAILSCALED_ERROR);
	EXPECT_EQ(Ts(CURLE_OK, 200, ""), AUTH_TAILSCALED_ERROR);
	EXPECT_EQ(Ts(CURLE_OK, 200, nullptr), AUTH_TAILSCALED_ERROR);
}

TEST(AuthTailscaledClassify, Statuses)
{
	EXPECT_EQ(Ts(CURLE_OK, 404, "no match for IP:port\n"),
	    AUTH_NOT_IN_TAILNET);
	EXPECT_EQ(Ts(CURLE_OK, 404, ""), AUTH_NOT_IN_TAILNET);
	EXPECT_EQ(Ts(CURLE_OK, 404, nullptr), AUTH_NOT_IN_TAILNET);
	EXPECT_EQ(Ts(CURLE_OK, 400, "invalid 'addr' parameter\n"),
	    AUTH_TAILSCALED_TOO_OLD);
	EXPECT_EQ(Ts(CURLE_OK, 400, "{\"error\":\"invalid 'addr' parameter\"}"),
	    AUTH_TAILSCALED_TOO_OLD);
	// The other 400s whois gives are plain errors, not "too old".
	EXPECT_EQ(Ts(CURLE_OK, 400, "invalid nodekey in 'addr' parameter\n"),
	    AUTH_TAILSCALED_ERROR);
	EXPECT_EQ(Ts(CURLE_OK, 400, "missing 'addr' parameter\n"),
	    AUTH_TAILSCALED_ERROR);
	EXPECT_EQ(Ts(CURLE_OK, 400, ""), AUTH_TAILSCALED_ERROR);
	EXPECT_EQ(Ts(CURLE_OK, 403, "invalid localapi request\n"),
	    AUTH_TAILSCALED_ERROR);
	EXPECT_EQ(Ts(CURLE_OK, 403, "whois access denied\n"),
	    AUTH_TAILSCALED_ERROR);
	EXPECT_EQ(Ts(CURLE_OK, 500, "{\"Node\":{}}"), AUTH_TAILSCALED_ERROR);
	EXPECT_EQ(Ts(CURLE_OK, 503, ""), AUTH_TAILSCALED_ERROR);
	EXPECT_EQ(Ts(CURLE_OK, 201, "{}"), AUTH_TAILSCALED_ERROR);
	EXPECT_EQ(Ts(CURLE_OK, 302, "{}"), AUTH_TAILSCALED_ERROR);
}

TEST(AuthTailscaledClassify, Transport)
{
	EXPECT_EQ(Ts(CURLE_COULDNT_CONNECT, 0, nullptr),
	    AUTH_TAILSCALED_UNREACHABLE);
	EXPECT_EQ(7, (int)CURLE_COULDNT_CONNECT);
	EXPECT_EQ(Ts(CURLE_GOT_NOTHING, 0, nullptr),
	    AUTH_TAILSCALED_UNREACHABLE);
	EXPECT_EQ(Ts(CURLE_RECV_ERROR, 0, nullptr),
	    AUTH_TAILSCALED_UNREACHABLE);
	EXPECT_EQ(Ts(CURLE_OPERATION_TIMEDOUT, 0, nullptr), AUTH_TIMEOUT);
	EXPECT_EQ(28, (int)CURLE_OPERATION_TIMEDOUT);
	// A transport error wins over whatever status was seen.
	EXPECT_EQ(Ts(CURLE_PARTIAL_FILE, 200, "{}"),
	    AUTH_TAILSCALED_UNREACHABLE);
	EXPECT_EQ(Ts(CURLE_OPERATION_TIMEDOUT, 200, "{}"), AUTH_TIMEOUT);
}

// derper decodes the whois body with json.Unmarshal into a
// *apitype.WhoIsResponse (client/local decodeJSON): trailing bytes after
// the JSON value and non-object values are errors, so the client is
// refused. This check fails closed; derpd must not admit what derper
// refuses.
TEST(AuthTailscaledClassify, BodyMustBeOneJsonObjectLikeGo)
{
	EXPECT_EQ(Ts(CURLE_OK, 200, "{\"Node\":{}} trailing"),
	    AUTH_TAILSCALED_ERROR) << "json.Unmarshal: invalid character "
	    "after top-level value";
	EXPECT_EQ(Ts(CURLE_OK, 200, "{}{}"), AUTH_TAILSCALED_ERROR);
	EXPECT_EQ(Ts(CURLE_OK, 200, "[]"), AUTH_TAILSCALED_ERROR)
	    << "cannot unmarshal array into WhoIsResponse";
	EXPECT_EQ(Ts(CURLE_OK, 200, "\"x\""), AUTH_TAILSCALED_ERROR);
	EXPECT_EQ(Ts(CURLE_OK, 200, "42"), AUTH_TAILSCALED_ERROR);
}

TEST(AuthUrlClassify, Allow)
{
	EXPECT_EQ(Url(CURLE_OK, 200, "{\"Allow\":true}"), AUTH_OK);
	// Go's decoder matches field names case-insensitively.
	EXPECT_EQ(Url(CURLE_OK, 200, "{\"allow\":true}"), AUTH_OK);
	EXPECT_EQ(Url(CURLE_OK, 200, "{\"ALLOW\":true}"), AUTH_OK);
	EXPECT_EQ(Url(CURLE_OK, 200, " {\"Other\":[1,{}],\"Allow\":true} \n"),
	    AUTH_OK);
	// Decoder.Decode reads one value; what follows it is not read.
	EXPECT_EQ(Url(CURLE_OK, 200, "{\"Allow\":true} trailing"), AUTH_OK);
}

TEST(AuthUrlClassify, Deny)
{
	EXPECT_EQ(Url(CURLE_OK, 200, "{\"Allow\":false}"), AUTH_URL_DENIED);
	EXPECT_EQ(Url(CURLE_OK, 200, "{\"allow\":false}"), AUTH_URL_DENIED);
	// Missing Allow: the zero value, false.
	EXPECT_EQ(Url(CURLE_OK, 200, "{}"), AUTH_URL_DENIED);
	EXPECT_EQ(Url(CURLE_OK, 200, "{\"Admit\":true}"), AUTH_URL_DENIED);
}

TEST(AuthUrlClassify, BadResponse)
{
	EXPECT_EQ(Url(CURLE_OK, 200, "{\"Allow\":\"true\"}"),
	    AUTH_URL_BAD_RESPONSE);
	EXPECT_EQ(Url(CURLE_OK, 200, "{\"Allow\":1}"), AUTH_URL_BAD_RESPONSE);
	EXPECT_EQ(Url(CURLE_OK, 200, "{\"Allow\":[true]}"),
	    AUTH_URL_BAD_RESPONSE);
	EXPECT_EQ(Url(CURLE_OK, 200, "garbage"), AUTH_URL_BAD_RESPONSE);
	EXPECT_EQ(Url(CURLE_OK, 200, "{\"Allow\":tru"), AUTH_URL_BAD_RESPONSE);
	EXPECT_EQ(Url(CURLE_OK, 200, ""), AUTH_URL_BAD_RESPONSE);
	EXPECT_EQ(auth_url_classify(CURLE_OK, 200, nullptr, 0),
	    AUTH_URL_BAD_RESPONSE);
	EXPECT_EQ(Url(CURLE_OK, 200, "[true]"), AUTH_URL_BAD_RESPONSE);
	EXPECT_EQ(Url(CURLE_OK, 200, "true"), AUTH_URL_BAD_RESPONSE);
}

TEST(AuthUrlClassify, StatusMustBe200)
{
	EXPECT_EQ(Url(CURLE_OK, 500, "{\"Allow\":true}"), AUTH_URL_STATUS);
	EXPECT_EQ(Url(CURLE_OK, 201, "{\"Allow\":true}"), AUTH_URL_STATUS);
	EXPECT_EQ(Url(CURLE_OK, 204, ""), AUTH_URL_STATUS);
	EXPECT_EQ(Url(CURLE_OK, 302, ""), AUTH_URL_STATUS);
	EXPECT_EQ(Url(CURLE_OK, 403, "{\"Allow\":true}"), AUTH_URL_STATUS);
	EXPECT_EQ(Url(CURLE_OK, 404, "garbage"), AUTH_URL_STATUS);
}

TEST(AuthUrlClassify, TransportErrors)
{
	EXPECT_EQ(Url(CURLE_COULDNT_CONNECT, 0, ""), AUTH_URL_UNREACHABLE);
	EXPECT_EQ(Url(CURLE_COULDNT_RESOLVE_HOST, 0, ""), AUTH_URL_UNREACHABLE);
	EXPECT_EQ(Url(CURLE_OPERATION_TIMEDOUT, 0, ""), AUTH_URL_UNREACHABLE);
	EXPECT_EQ(Url(CURLE_SSL_CONNECT_ERROR, 0, ""), AUTH_URL_UNREACHABLE);
	EXPECT_EQ(Url(CURLE_GOT_NOTHING, 0, ""), AUTH_URL_UNREACHABLE);
	// A transport error with a status seen (cut off mid-body).
	EXPECT_EQ(Url(CURLE_PARTIAL_FILE, 200, "{\"Allow\":true}"),
	    AUTH_URL_UNREACHABLE);
}

// Go decodes only the first 4 KiB (io.LimitReader(res.Body, 4<<10)).
TEST(AuthUrlClassify, OnlyFirst4KiB)
{
	auto padded = [](size_t total, bool allow) {
		std::string head = std::string("{\"Allow\":") +
		    (allow ? "true" : "false") + ",\"pad\":\"";
		std::string tail = "\"}";
		return head + std::string(total - head.size() - tail.size(),
		    'x') + tail;
	};
	std::string exact = padded(4096, true);
	ASSERT_EQ(exact.size(), 4096u);
	EXPECT_EQ(Url(CURLE_OK, 200, exact), AUTH_OK);
	EXPECT_EQ(Url(CURLE_OK, 200, padded(4096, false)), AUTH_URL_DENIED);
	// One byte more and the object is cut: undecodable.
	EXPECT_EQ(Url(CURLE_OK, 200, padded(4097, true)),
	    AUTH_URL_BAD_RESPONSE);
	// Allow past the first 4 KiB is never seen.
	std::string late = "{\"pad\":\"" + std::string(4200, 'y') +
	    "\",\"Allow\":true}";
	EXPECT_EQ(Url(CURLE_OK, 200, late), AUTH_URL_BAD_RESPONSE);
	// Bytes beyond 4 KiB are ignored: garbage there does not matter.
	std::string obj = "{\"Allow\":true}";
	std::string tail = obj + std::string(4096 - obj.size(), ' ') +
	    "}}}garbage" + std::string(10000, 'z');
	EXPECT_EQ(Url(CURLE_OK, 200, tail), AUTH_OK);
	std::string deny = "{\"Allow\":false}" + std::string(5000, ' ') +
	    "{\"Allow\":true}";
	EXPECT_EQ(Url(CURLE_OK, 200, deny), AUTH_URL_DENIED);
}

// The body is read up to AUTH_URL_BODY_MAX (16 KiB); past that derpd
// stops reading (curl reports a write error) and the answer is bad,
// never "unreachable" (which fail-open would admit).
TEST(AuthUrlClassify, OversizeBodyIsBad)
{
	std::string obj = "{\"Allow\":true}";
	std::string max = obj + std::string(AUTH_URL_BODY_MAX - obj.size(), ' ');
	ASSERT_EQ(max.size(), (size_t)AUTH_URL_BODY_MAX);
	EXPECT_EQ(Url(CURLE_OK, 200, max), AUTH_OK);
	std::string over = max + " ";
	EXPECT_EQ(Url(CURLE_WRITE_ERROR, 200, over), AUTH_URL_BAD_RESPONSE);
	EXPECT_EQ(Url(CURLE_OK, 200, over), AUTH_URL_BAD_RESPONSE);
	EXPECT_EQ(Url(CURLE_WRITE_ERROR, 500, over), AUTH_URL_STATUS);
	EXPECT_EQ(Url(CURLE_WRITE_ERROR, 0, ""), AUTH_URL_UNREACHABLE);
}

// encoding/json assigns fields in document order, so with two keys that
// fold to "Allow" the last one wins. derpd must not admit a reply that
// derper refuses.
TEST(AuthUrlClassify, DuplicateAllowLastWinsLikeGo)
{
	EXPECT_EQ(Url(CURLE_OK, 200, "{\"Allow\":true,\"allow\":false}"),
	    AUTH_URL_DENIED);
	EXPECT_EQ(Url(CURLE_OK, 200, "{\"allow\":false,\"Allow\":true}"),
	    AUTH_OK);
}

TEST(AuthUrlBody, ExactJson)
{
	Key k(32);
	for (int i = 0; i < 32; i++)
		k[i] = (uint8_t)(i * 8 + 7);
	char out[256];
	size_t n = auth_url_body(out, sizeof(out), k.data(), "192.0.2.1");
	std::string want = "{\"NodePublic\":\"nodekey:" + KeyHex(k) +
	    "\",\"Source\":\"192.0.2.1\"}";
	EXPECT_EQ(std::string(out, n), want);
	EXPECT_EQ(n, strlen(out));
	EXPECT_EQ(KeyHex(k), "070f171f272f373f474f575f676f777f"
	    "878f979fa7afb7bfc7cfd7dfe7eff7ff");

	n = auth_url_body(out, sizeof(out), k.data(), "");
	EXPECT_EQ(std::string(out, n), "{\"NodePublic\":\"nodekey:" +
	    KeyHex(k) + "\",\"Source\":\"\"}");
	n = auth_url_body(out, sizeof(out), k.data(), "2001:db8::1");
	EXPECT_EQ(std::string(out, n), "{\"NodePublic\":\"nodekey:" +
	    KeyHex(k) + "\",\"Source\":\"2001:db8::1\"}");
	// Too small a buffer: 0, never a cut body.
	EXPECT_EQ(auth_url_body(out, 40, k.data(), "192.0.2.1"), 0u);
	EXPECT_EQ(auth_url_body(out, want.size(), k.data(), "192.0.2.1"), 0u);
	EXPECT_EQ(auth_url_body(out, want.size() + 1, k.data(), "192.0.2.1"),
	    want.size());
}

// --- allowlist file ------------------------------------------------

TEST(Allowlist, LoadCommentsBlanksCase)
{
	TempDir d;
	Key a = MakeKey(1), b = MakeKey(2), c = MakeKey(3), x = MakeKey(4);
	std::string bu = KeyHex(b);
	for (auto &ch : bu)
		ch = (char)toupper((unsigned char)ch);
	std::string p = d.Write("allow", "# derpd allowlist\n"
	    "\n"
	    "nodekey:" + KeyHex(a) + "\n"
	    "   \t\n"
	    "  nodekey:" + bu + "   # laptop, upper-case hex\n"
	    "nodekey:" + KeyHex(c) + "\r\n"
	    "#nodekey:" + KeyHex(x) + "\n"
	    "   # indented comment\n");
	char err[256] = "";
	struct allowlist *l = allowlist_load(p.c_str(), err, sizeof(err));
	ASSERT_NE(l, nullptr) << err;
	EXPECT_EQ(allowlist_count(l), 3u);
	EXPECT_TRUE(allowlist_has(l, a.data()));
	EXPECT_TRUE(allowlist_has(l, b.data()));
	EXPECT_TRUE(allowlist_has(l, c.data()));
	EXPECT_FALSE(allowlist_has(l, x.data()));
	EXPECT_FALSE(allowlist_has(l, MakeKey(5).data()));
	allowlist_free(l);
	allowlist_free(nullptr);
	EXPECT_FALSE(allowlist_has(nullptr, a.data()));
	EXPECT_EQ(allowlist_count(nullptr), 0u);
}

TEST(Allowlist, NoFinalNewlineAndEmpty)
{
	TempDir d;
	Key a = MakeKey(7);
	char err[256] = "";
	std::string p = d.Write("allow", "nodekey:" + KeyHex(a));
	struct allowlist *l = allowlist_load(p.c_str(), err, sizeof(err));
	ASSERT_NE(l, nullptr) << err;
	EXPECT_EQ(allowlist_count(l), 1u);
	EXPECT_TRUE(allowlist_has(l, a.data()));
	allowlist_free(l);

	p = d.Write("empty", "");
	l = allowlist_load(p.c_str(), err, sizeof(err));
	ASSERT_NE(l, nullptr) << err;
	EXPECT_EQ(allowlist_count(l), 0u);
	EXPECT_FALSE(allowlist_has(l, a.data()));
	allowlist_free(l);
}

TEST(Allowlist, Many)
{
	TempDir d;
	std::string text;
	for (uint32_t i = 0; i < 1000; i++)
		text += NodeKey(MakeKey(i * 7919)) + "\n";
	std::string p = d.Write("allow", text);
	char err[256] = "";
	struct allowlist *l = allowlist_load(p.c_str(), err, sizeof(err));
	ASSERT_NE(l, nullptr) << err;
	EXPECT_EQ(allowlist_count(l), 1000u);
	for (uint32_t i = 0; i < 1000; i++) {
		ASSERT_TRUE(allowlist_has(l, MakeKey(i * 7919).data())) << i;
		ASSERT_FALSE(allowlist_has(l, MakeKey(i * 7919 + 1).data()))
		    << i;
	}
	allowlist_free(l);
}

TEST(Allowlist, BadLineNamesFileAndLine)
{
	TempDir d;
	Key a = MakeKey(1);
	struct {
		const char *what;
		std::string line;
	} cases[] = {
		{ "short hex", "nodekey:" + KeyHex(a).substr(1) },
		{ "long hex", "nodekey:" + KeyHex(a) + "0" },
		{ "not hex", "nodekey:" + KeyHex(a).substr(2) + "zz" },
		{ "no prefix", KeyHex(a) },
		{ "other prefix", "discokey:" + KeyHex(a) },
		{ "two keys", NodeKey(a) + " " + NodeKey(MakeKey(2)) },
	};
	for (auto &tc : cases) {
		std::string p = d.Write("allow", "# header\n\n" + tc.line +
		    "\n" + NodeKey(a) + "\n");
		char err[512] = "";
		struct allowlist *l = allowlist_load(p.c_str(), err,
		    sizeof(err));
		EXPECT_EQ(l, nullptr) << tc.what;
		allowlist_free(l);
		EXPECT_NE(std::string(err).find(p + ":3"), std::string::npos)
		    << tc.what << ": " << err;
	}
	char err[512] = "";
	std::string missing = d.path + "/nope";
	EXPECT_EQ(allowlist_load(missing.c_str(), err, sizeof(err)), nullptr);
	EXPECT_NE(std::string(err).find(missing), std::string::npos) << err;
}

// allowlist_load reads the file and hands it to allowlist_parse, the
// pure part (and the fuzz target).
TEST(Allowlist, ParseBuffer)
{
	Key a = MakeKey(11), b = MakeKey(12);
	std::string text = "# list\r\n" + NodeKey(a) + "\r\n\n  " +
	    NodeKey(b) + " # b";
	char err[256] = "";
	struct allowlist *l = allowlist_parse(text.data(), text.size(), "t",
	    err, sizeof(err));
	ASSERT_NE(l, nullptr) << err;
	EXPECT_EQ(allowlist_count(l), 2u);
	EXPECT_TRUE(allowlist_has(l, a.data()));
	EXPECT_TRUE(allowlist_has(l, b.data()));
	allowlist_free(l);
	/* Not NUL-terminated: only len bytes are looked at. */
	std::string cut = NodeKey(a) + "\nnodekey:zz";
	l = allowlist_parse(cut.data(), NodeKey(a).size() + 1, "t", err,
	    sizeof(err));
	ASSERT_NE(l, nullptr) << err;
	EXPECT_EQ(allowlist_count(l), 1u);
	allowlist_free(l);
	l = allowlist_parse(nullptr, 0, "t", err, sizeof(err));
	ASSERT_NE(l, nullptr);
	EXPECT_EQ(allowlist_count(l), 0u);
	allowlist_free(l);
}

TEST(Allowlist, ParseRefusesNulAndLongLines)
{
	Key a = MakeKey(13);
	char err[256] = "";
	std::string nul = "# x\n" + NodeKey(a) + std::string(1, '\0') + "x\n";
	EXPECT_EQ(allowlist_parse(nul.data(), nul.size(), "f", err,
	    sizeof(err)), nullptr);
	EXPECT_NE(std::string(err).find("f:2: NUL byte"), std::string::npos)
	    << err;
	/* 510 bytes a line (as the file reader always took), not 511. */
	std::string ok = NodeKey(a) + std::string(510 - 72, ' ') + "\n";
	struct allowlist *l = allowlist_parse(ok.data(), ok.size(), "f", err,
	    sizeof(err));
	EXPECT_NE(l, nullptr) << err;
	allowlist_free(l);
	std::string lng = NodeKey(a) + std::string(511 - 72, ' ') + "\n";
	EXPECT_EQ(allowlist_parse(lng.data(), lng.size(), "f", err,
	    sizeof(err)), nullptr);
	EXPECT_NE(std::string(err).find("f:1: line too long"),
	    std::string::npos) << err;
}

// --- the engine ----------------------------------------------------

namespace {

// One submitted check and what its notify saw.
struct Waiter {
	std::atomic<int> notified{ 0 };
	std::atomic<int64_t> at_ms{ 0 };
	struct auth_req *req = nullptr;
	enum auth_reason reason = AUTH_REASON__COUNT;
	const char *backend = nullptr;
	int cached = -1;
};

void
NotifyCb(void *arg)
{
	Waiter *w = static_cast<Waiter *>(arg);
	w->at_ms = NowMs();
	w->notified++;
}

class Engine : public ::testing::Test {
protected:
	void SetUp() override
	{
		base_ = event_base_new();
		ASSERT_NE(base_, nullptr);
		auth_conf_defaults(&conf_);
	}
	void TearDown() override
	{
		auth_free(a_);
		a_ = nullptr;
		for (int i = 0; i < 20; i++)
			Step();
		event_base_free(base_);
	}

	bool New()
	{
		char err[512] = "";
		a_ = auth_new(&conf_, base_, err, sizeof(err));
		EXPECT_NE(a_, nullptr) << err;
		return a_ != nullptr;
	}

	void Step() { event_base_loop(base_, EVLOOP_NONBLOCK); }

	// Step the loop until pred() or timeout; returns pred().
	template <typename P>
	bool Until(P pred, int timeout_ms = 3000)
	{
		int64_t deadline = NowMs() + timeout_ms;
		for (;;) {
			Step();
			if (pred())
				return true;
			if (NowMs() >= deadline)
				return false;
			usleep(500);
		}
	}
	// Step the loop for ms, whatever happens.
	void Spin(int ms)
	{
		Until([] { return false; }, ms);
	}

	void Submit(Waiter *w, const Key &k, const struct sockaddr *src =
	    nullptr)
	{
		struct sockaddr_in lo = V4("127.0.0.1");
		w->req = auth_check(a_, k.data(), src ? src :
		    (const struct sockaddr *)&lo, NotifyCb, w);
		ASSERT_NE(w->req, nullptr);
	}

	// Wait for w's notify, read and release its result.
	::testing::AssertionResult Finish(Waiter *w, int timeout_ms = 3000)
	{
		if (!Until([w] { return w->notified.load() > 0; }, timeout_ms))
			return ::testing::AssertionFailure() << "no notify "
			    "within " << timeout_ms << " ms";
		if (!auth_req_result(w->req, &w->reason, &w->backend,
		    &w->cached))
			return ::testing::AssertionFailure() << "notified but "
			    "auth_req_result says not done";
		auth_cancel(w->req);
		w->req = nullptr;
		return ::testing::AssertionSuccess();
	}

	// Check k to completion; the outcome is in the returned waiter.
	std::unique_ptr<Waiter> Check(const Key &k)
	{
		std::unique_ptr<Waiter> w(new Waiter);
		Submit(w.get(), k);
		EXPECT_TRUE(Finish(w.get()));
		EXPECT_EQ(w->notified.load(), 1);
		return w;
	}

	int64_t M(const std::string &name) { return MetricIn(Varz(a_), name); }

	struct event_base *base_ = nullptr;
	struct auth_conf conf_;
	struct auth *a_ = nullptr;
	TempDir dir_;
};

class EngineAllow : public Engine {
protected:
	void SetUp() override
	{
		Engine::SetUp();
		file_ = dir_.Write("allow", NodeKey(k1_) + "\n" +
		    NodeKey(k2_) + "\n");
		snprintf(conf_.ac_allow_file, sizeof(conf_.ac_allow_file), "%s",
		    file_.c_str());
	}
	Key k1_ = MakeKey(101), k2_ = MakeKey(102), k3_ = MakeKey(103);
	std::string file_;
};

}  // namespace

TEST_F(EngineAllow, ConfEnabled)
{
	struct auth_conf c;
	auth_conf_defaults(&c);
	EXPECT_FALSE(auth_conf_enabled(&c));
	EXPECT_TRUE(c.ac_url_fail_open);
	EXPECT_EQ(c.ac_allow_ttl_ms, 60000);
	EXPECT_EQ(c.ac_deny_ttl_ms, 5000);
	EXPECT_EQ(c.ac_timeout_ms, 5000);
	EXPECT_EQ(c.ac_max_inflight, 64);
	EXPECT_TRUE(auth_conf_enabled(&conf_));
	c.ac_verify_clients = true;
	EXPECT_TRUE(auth_conf_enabled(&c));
	EXPECT_STREQ(auth_socket_path(&c),
	    "/var/run/tailscale/tailscaled.sock");
	snprintf(c.ac_socket, sizeof(c.ac_socket), "/tmp/x.sock");
	EXPECT_STREQ(auth_socket_path(&c), "/tmp/x.sock");
	auth_conf_defaults(&c);
	snprintf(c.ac_url, sizeof(c.ac_url), "http://127.0.0.1:1/");
	EXPECT_TRUE(auth_conf_enabled(&c));
}

TEST_F(EngineAllow, BadFileFailsNew)
{
	std::string bad = dir_.Write("bad", "nodekey:zz\n");
	snprintf(conf_.ac_allow_file, sizeof(conf_.ac_allow_file), "%s",
	    bad.c_str());
	char err[512] = "";
	EXPECT_EQ(auth_new(&conf_, base_, err, sizeof(err)), nullptr);
	EXPECT_NE(std::string(err).find(bad + ":1"), std::string::npos) << err;
}

TEST_F(EngineAllow, NotifyThenResultThenCacheHit)
{
	ASSERT_TRUE(New());
	Waiter w;
	Submit(&w, k1_);
	// Nothing happens until the engine's loop runs.
	enum auth_reason r;
	const char *b;
	int cached;
	EXPECT_EQ(auth_req_result(w.req, &r, &b, &cached), 0);
	EXPECT_EQ(w.notified.load(), 0);
	ASSERT_TRUE(Finish(&w));
	EXPECT_EQ(w.notified.load(), 1);
	EXPECT_EQ(w.reason, AUTH_OK);
	EXPECT_STREQ(w.backend, "allowlist");
	EXPECT_EQ(w.cached, 0);

	auto w2 = Check(k1_);
	EXPECT_EQ(w2->reason, AUTH_OK);
	EXPECT_STREQ(w2->backend, "allowlist");
	EXPECT_EQ(w2->cached, 1);

	auto w3 = Check(k2_);
	EXPECT_EQ(w3->reason, AUTH_OK);
	EXPECT_EQ(w3->cached, 0);

	std::string v = Varz(a_);
	EXPECT_EQ(MetricIn(v, "derpd_admission_checks"), 3);
	EXPECT_EQ(MetricIn(v, "derpd_admission_cache{result=\"hit\"}"), 1);
	EXPECT_EQ(MetricIn(v, "derpd_admission_cache{result=\"miss\"}"), 2);
	EXPECT_EQ(MetricIn(v, "derpd_admission_cache{result=\"joined\"}"), 0);
	EXPECT_EQ(MetricIn(v, BackendReqs("allowlist")), 2);
	EXPECT_EQ(MetricIn(v, BackendReqs("tailscaled")), 0);
	EXPECT_EQ(MetricIn(v, BackendReqs("url")), 0);
	EXPECT_EQ(MetricIn(v, "derpd_admission_results{reason=\"ok\"}"), 3);
}

TEST_F(EngineAllow, RefusalCachedForDenyTtl)
{
	ASSERT_TRUE(New());
	auto w = Check(k3_);
	EXPECT_EQ(w->reason, AUTH_NOT_IN_ALLOWLIST);
	EXPECT_STREQ(w->backend, "allowlist");
	EXPECT_EQ(w->cached, 0);
	w = Check(k3_);
	EXPECT_EQ(w->reason, AUTH_NOT_IN_ALLOWLIST);
	EXPECT_EQ(w->cached, 1);
	EXPECT_EQ(M(BackendReqs("allowlist")), 1);
	EXPECT_EQ(M("derpd_admission_results{reason=\"not_in_allowlist\"}"),
	    2);
	// Results are not refusals: conn.c counts those (auth_note_reject).
	EXPECT_EQ(M(Rejects("not_in_allowlist")), 0);
}

TEST_F(EngineAllow, DenyTtlZeroCachesNoRefusal)
{
	conf_.ac_deny_ttl_ms = 0;
	ASSERT_TRUE(New());
	for (int i = 0; i < 3; i++) {
		auto w = Check(k3_);
		EXPECT_EQ(w->reason, AUTH_NOT_IN_ALLOWLIST);
		EXPECT_EQ(w->cached, 0) << i;
	}
	EXPECT_EQ(M(BackendReqs("allowlist")), 3);
	EXPECT_EQ(M("derpd_admission_cache{result=\"hit\"}"), 0);
	// Allows are still cached.
	auto w = Check(k1_);
	EXPECT_EQ(w->cached, 0);
	w = Check(k1_);
	EXPECT_EQ(w->cached, 1);
}

TEST_F(EngineAllow, AllowTtlZeroCachesNothing)
{
	conf_.ac_allow_ttl_ms = 0;
	ASSERT_TRUE(New());
	for (int i = 0; i < 3; i++) {
		auto w = Check(k1_);
		EXPECT_EQ(w->reason, AUTH_OK);
		EXPECT_EQ(w->cached, 0) << i;
	}
	EXPECT_EQ(M(BackendReqs("allowlist")), 3);
}

TEST_F(EngineAllow, AllowTtlExpiryAsksAgain)
{
	conf_.ac_allow_ttl_ms = 50;
	conf_.ac_deny_ttl_ms = 50;
	ASSERT_TRUE(New());
	auto w = Check(k1_);
	EXPECT_EQ(w->cached, 0);
	w = Check(k1_);
	EXPECT_EQ(w->cached, 1);
	w = Check(k3_);
	EXPECT_EQ(w->cached, 0);
	// Poll until the entries expire (at most a couple of seconds).
	int64_t deadline = NowMs() + 2000;
	int cached = 1;
	while (cached == 1 && NowMs() < deadline) {
		usleep(10000);
		w = Check(k1_);
		cached = w->cached;
	}
	EXPECT_EQ(cached, 0) << "allow verdict never expired";
	EXPECT_EQ(w->reason, AUTH_OK);
	usleep(60000);
	w = Check(k3_);
	EXPECT_EQ(w->cached, 0) << "deny verdict never expired";
	EXPECT_EQ(w->reason, AUTH_NOT_IN_ALLOWLIST);
	EXPECT_GE(M(BackendReqs("allowlist")), 4);
}

TEST_F(EngineAllow, ReloadDropsCachedVerdicts)
{
	ASSERT_TRUE(New());
	EXPECT_EQ(Check(k3_)->reason, AUTH_NOT_IN_ALLOWLIST);
	EXPECT_EQ(Check(k1_)->reason, AUTH_OK);
	// k3 in, k1 out.
	dir_.Write("allow", NodeKey(k2_) + "\n" + NodeKey(k3_) + "\n");
	struct reload_report rep = {};
	ASSERT_EQ(auth_reload(a_, &rep), 0) << rep.rr_parts[0].rp_err;
	// Both parts: the backend that reads a file, and the cache.
	ASSERT_EQ(rep.rr_n, 2);
	EXPECT_STREQ(rep.rr_parts[0].rp_name, "allowlist");
	EXPECT_EQ(rep.rr_parts[0].rp_status, RELOAD_CHANGED);
	EXPECT_STREQ(rep.rr_parts[1].rp_name, "admission cache");
	auto w = Check(k3_);
	EXPECT_EQ(w->reason, AUTH_OK);
	EXPECT_EQ(w->cached, 0);
	w = Check(k1_);
	EXPECT_EQ(w->reason, AUTH_NOT_IN_ALLOWLIST);
	EXPECT_EQ(w->cached, 0);
	// A broken file keeps the old list.
	dir_.Write("allow", "nodekey:nothex\n");
	rep = {};
	EXPECT_EQ(auth_reload(a_, &rep), -1);
	EXPECT_EQ(rep.rr_failed, 1);
	EXPECT_EQ(rep.rr_parts[0].rp_status, RELOAD_FAILED);
	EXPECT_NE(std::string(rep.rr_parts[0].rp_err).find(file_ + ":1"),
	    std::string::npos) << rep.rr_parts[0].rp_err;
	// A failed reload changes nothing: the verdicts stay cached.
	EXPECT_EQ(rep.rr_parts[1].rp_status, RELOAD_UNCHANGED);
	auto kept = Check(k3_);
	EXPECT_EQ(kept->reason, AUTH_OK);
	EXPECT_EQ(kept->cached, 1);
	EXPECT_EQ(Check(k3_)->reason, AUTH_OK);
	EXPECT_EQ(Check(k1_)->reason, AUTH_NOT_IN_ALLOWLIST);
}

TEST_F(EngineAllow, BoundedCacheEvictsLeastRecent)
{
	conf_.ac_cache_size = 100;
	conf_.ac_deny_ttl_ms = 60000;
	ASSERT_TRUE(New());
	for (uint32_t i = 0; i < 200; i++)
		ASSERT_EQ(Check(MakeKey(1000 + i))->cached, 0) << i;
	// The most recent 100 are still there; the oldest are gone.
	EXPECT_EQ(Check(MakeKey(1199))->cached, 1);
	EXPECT_EQ(Check(MakeKey(1150))->cached, 1);
	EXPECT_EQ(Check(MakeKey(1000))->cached, 0);
	EXPECT_EQ(Check(MakeKey(1050))->cached, 0);
}

TEST_F(EngineAllow, LargeCache)
{
	conf_.ac_cache_size = 20000;
	conf_.ac_deny_ttl_ms = 60000;
	ASSERT_TRUE(New());
	const uint32_t n = 12000;	/* past the initial hash table */
	for (int pass = 0; pass < 2; pass++) {
		std::vector<Waiter> ws(n);
		for (uint32_t i = 0; i < n; i++)
			Submit(&ws[i], MakeKey(i * 2654435761u));
		for (uint32_t i = 0; i < n; i++) {
			ASSERT_TRUE(Finish(&ws[i]));
			ASSERT_EQ(ws[i].cached, pass) << i;
			ASSERT_EQ(ws[i].reason, AUTH_NOT_IN_ALLOWLIST);
		}
	}
	EXPECT_EQ(M(BackendReqs("allowlist")), n);
	EXPECT_EQ(M("derpd_admission_cache{result=\"hit\"}"), n);
}

TEST_F(EngineAllow, CancelBeforeTheEngineRuns)
{
	ASSERT_TRUE(New());
	Waiter w;
	Submit(&w, k1_);
	auth_cancel(w.req);
	w.req = nullptr;
	Spin(50);
	EXPECT_EQ(w.notified.load(), 0);
	EXPECT_EQ(M(BackendReqs("allowlist")), 0);
	auth_cancel(nullptr);
}

TEST_F(EngineAllow, ManyChecksFromThreads)
{
	ASSERT_TRUE(New());
	const int kThreads = 4, kPer = 250;
	std::vector<Waiter> ws(kThreads * kPer);
	std::vector<std::thread> ts;
	std::atomic<int> submitted{ 0 };
	for (int t = 0; t < kThreads; t++)
		ts.emplace_back([&, t] {
			struct sockaddr_in lo = V4("127.0.0.1");
			for (int i = 0; i < kPer; i++) {
				Waiter *w = &ws[t * kPer + i];
				const Key &k = (i % 3 == 0) ? k3_ :
				    (i % 3 == 1) ? k1_ : k2_;
				w->req = auth_check(a_, k.data(),
				    (const struct sockaddr *)&lo, NotifyCb, w);
				submitted++;
			}
		});
	// The engine runs while workers submit, as in the daemon.
	ASSERT_TRUE(Until([&] {
		if (submitted.load() < kThreads * kPer)
			return false;
		for (auto &w : ws)
			if (w.notified.load() == 0)
				return false;
		return true;
	}, 10000));
	for (auto &t : ts)
		t.join();
	for (int t = 0; t < kThreads; t++)
		for (int i = 0; i < kPer; i++) {
			Waiter *w = &ws[t * kPer + i];
			ASSERT_NE(w->req, nullptr);
			EXPECT_EQ(w->notified.load(), 1);
			ASSERT_EQ(auth_req_result(w->req, &w->reason,
			    &w->backend, &w->cached), 1);
			EXPECT_EQ(w->reason, i % 3 == 0 ? AUTH_NOT_IN_ALLOWLIST :
			    AUTH_OK);
			auth_cancel(w->req);
		}
	EXPECT_EQ(M("derpd_admission_checks"), kThreads * kPer);
	EXPECT_EQ(M(BackendReqs("allowlist")), 3);
}

// --- the engine with the HTTP backends -----------------------------

namespace {

// The admission URL backend against a fake webhook on 127.0.0.1.
class EngineUrl : public Engine {
protected:
	void SetUp() override
	{
		Engine::SetUp();
		srv_.SetHandler([this](const fakehttp::Request &rq) {
			fakehttp::Response rs;
			rs.delay_ms = delay_ms_.load();
			rs.body = allow_.load() ? "{\"Allow\":true}" :
			    "{\"Allow\":false}";
			(void)rq;
			return rs;
		});
		ASSERT_EQ(srv_.ListenTcp(), "");
		snprintf(conf_.ac_url, sizeof(conf_.ac_url),
		    "http://127.0.0.1:%d/admit", srv_.port());
	}
	void TearDown() override
	{
		Engine::TearDown();
		srv_.Stop();
	}

	fakehttp::Server srv_;
	std::atomic<int> delay_ms_{ 0 };
	std::atomic<bool> allow_{ true };
};

}  // namespace

TEST_F(EngineUrl, RequestAndOutcome)
{
	ASSERT_TRUE(New());
	Key k = MakeKey(7);
	struct sockaddr_in src = V4("192.0.2.7");
	Waiter w;
	Submit(&w, k, (const struct sockaddr *)&src);
	ASSERT_TRUE(Finish(&w));
	EXPECT_EQ(w.reason, AUTH_OK);
	EXPECT_STREQ(w.backend, "url");
	EXPECT_EQ(w.cached, 0);
	auto reqs = srv_.Requests();
	ASSERT_EQ(reqs.size(), 1u);
	EXPECT_EQ(reqs[0].method, "POST");
	EXPECT_EQ(reqs[0].target, "/admit");
	EXPECT_EQ(reqs[0].body, "{\"NodePublic\":\"" + NodeKey(k) +
	    "\",\"Source\":\"192.0.2.7\"}");
	EXPECT_FALSE(reqs[0].Has("Content-Type")) << "derper sends none";
	EXPECT_FALSE(reqs[0].Has("Expect"));
	EXPECT_EQ(reqs[0].Header("Content-Length"),
	    std::to_string(reqs[0].body.size()));

	allow_ = false;
	Key k2 = MakeKey(8);
	auto w2 = Check(k2);
	EXPECT_EQ(w2->reason, AUTH_URL_DENIED);
	EXPECT_STREQ(w2->backend, "url");
	EXPECT_EQ(M(BackendReqs("url")), 2);
}

// A webhook streaming a huge body: the transfer is cut at 16 KiB and
// the answer is a bad response, even with fail-open.
TEST_F(EngineUrl, HugeBodyIsCutAndBad)
{
	conf_.ac_url_fail_open = true;
	ASSERT_TRUE(New());
	srv_.SetHandler([](const fakehttp::Request &) {
		fakehttp::Response rs;
		rs.body = "{\"Allow\":true}" + std::string(8 << 20, ' ');
		return rs;
	});
	int64_t t0 = NowMs();
	auto w = Check(MakeKey(90));
	EXPECT_EQ(w->reason, AUTH_URL_BAD_RESPONSE);
	EXPECT_LT(NowMs() - t0, 2000);
}

TEST_F(EngineUrl, SourceText)
{
	ASSERT_TRUE(New());
	struct {
		std::string want;
		struct sockaddr_storage ss;
	} cases[3];
	struct sockaddr_in6 m = V6("::ffff:192.0.2.9");
	struct sockaddr_in6 v6 = V6("2001:db8::42");
	struct sockaddr_in v4 = V4("198.51.100.3");
	memcpy(&cases[0].ss, &m, sizeof(m));
	cases[0].want = "192.0.2.9";	/* dual stack shows plain IPv4 */
	memcpy(&cases[1].ss, &v6, sizeof(v6));
	cases[1].want = "2001:db8::42";
	memcpy(&cases[2].ss, &v4, sizeof(v4));
	cases[2].want = "198.51.100.3";
	for (int i = 0; i < 3; i++) {
		Waiter w;
		Submit(&w, MakeKey(20 + i),
		    (const struct sockaddr *)&cases[i].ss);
		ASSERT_TRUE(Finish(&w));
		EXPECT_EQ(w.reason, AUTH_OK);
	}
	auto reqs = srv_.Requests();
	ASSERT_EQ(reqs.size(), 3u);
	for (int i = 0; i < 3; i++) {
		std::string want = "{\"NodePublic\":\"" +
		    NodeKey(MakeKey(20 + i)) + "\",\"Source\":\"" +
		    cases[i].want + "\"}";
		bool found = false;
		for (auto &r : reqs)
			found |= r.body == want;
		EXPECT_TRUE(found) << want;
	}
	// Unknown source: "" (Go: the remote address did not parse).
	Waiter wn;
	wn.req = auth_check(a_, MakeKey(32).data(), nullptr, NotifyCb, &wn);
	ASSERT_NE(wn.req, nullptr);
	ASSERT_TRUE(Finish(&wn));
	EXPECT_EQ(srv_.CountMatching("\"Source\":\"\"}", true), 1u);
}

TEST_F(EngineUrl, SingleFlight)
{
	delay_ms_ = 200;
	ASSERT_TRUE(New());
	Key k = MakeKey(55);
	std::vector<Waiter> ws(50);
	for (auto &w : ws)
		Submit(&w, k);
	ASSERT_TRUE(Until([&] {
		for (auto &w : ws)
			if (w.notified.load() == 0)
				return false;
		return true;
	}, 5000));
	EXPECT_EQ(srv_.RequestCount(), 1u);
	for (auto &w : ws) {
		EXPECT_EQ(w.notified.load(), 1);
		ASSERT_EQ(auth_req_result(w.req, &w.reason, &w.backend,
		    &w.cached), 1);
		EXPECT_EQ(w.reason, AUTH_OK);
		EXPECT_STREQ(w.backend, "url");
		auth_cancel(w.req);
	}
	std::string v = Varz(a_);
	EXPECT_EQ(MetricIn(v, "derpd_admission_checks"), 50);
	EXPECT_EQ(MetricIn(v, "derpd_admission_cache{result=\"miss\"}"), 1);
	EXPECT_EQ(MetricIn(v, "derpd_admission_cache{result=\"joined\"}"), 49);
	EXPECT_EQ(MetricIn(v, BackendReqs("url")), 1);
	EXPECT_EQ(MetricIn(v, "derpd_admission_results{reason=\"ok\"}"), 50);

	// Later checks are cache hits.
	auto w = Check(k);
	EXPECT_EQ(w->cached, 1);
	EXPECT_EQ(srv_.RequestCount(), 1u);
}

TEST_F(EngineUrl, SingleFlightJoinsWhileInFlight)
{
	delay_ms_ = 300;
	ASSERT_TRUE(New());
	Key k = MakeKey(56);
	Waiter first;
	Submit(&first, k);
	ASSERT_TRUE(Until([&] { return srv_.RequestCount() == 1; }));
	// Submitted in a later loop turn, while the request is out.
	std::vector<Waiter> late(10);
	for (auto &w : late)
		Submit(&w, k);
	ASSERT_TRUE(Finish(&first));
	for (auto &w : late) {
		ASSERT_TRUE(Finish(&w));
		EXPECT_EQ(w.reason, AUTH_OK);
	}
	EXPECT_EQ(srv_.RequestCount(), 1u);
	EXPECT_EQ(M("derpd_admission_cache{result=\"joined\"}"), 10);
}

TEST_F(EngineUrl, MaxInflightQueues)
{
	delay_ms_ = 200;
	conf_.ac_max_inflight = 1;
	ASSERT_TRUE(New());
	std::vector<Waiter> ws(3);
	for (int i = 0; i < 3; i++)
		Submit(&ws[i], MakeKey(60 + i));
	int64_t t0 = NowMs();
	for (auto &w : ws)
		ASSERT_TRUE(Finish(&w, 5000));
	EXPECT_EQ(srv_.RequestCount(), 3u);
	EXPECT_EQ(srv_.MaxConcurrent(), 1) << "more than one request at once";
	// One after another, in submission order.
	EXPECT_GE(ws[0].at_ms - t0, 150);
	EXPECT_GE(ws[1].at_ms - ws[0].at_ms, 150);
	EXPECT_GE(ws[2].at_ms - ws[1].at_ms, 150);
	for (auto &w : ws)
		EXPECT_EQ(w.reason, AUTH_OK);
	EXPECT_EQ(M("derpd_admission_queued"), 2);
}

TEST_F(EngineUrl, MaxInflightBoundsConcurrency)
{
	delay_ms_ = 100;
	conf_.ac_max_inflight = 4;
	ASSERT_TRUE(New());
	std::vector<Waiter> ws(20);
	for (int i = 0; i < 20; i++)
		Submit(&ws[i], MakeKey(200 + i));
	for (auto &w : ws)
		ASSERT_TRUE(Finish(&w, 5000));
	EXPECT_EQ(srv_.RequestCount(), 20u);
	EXPECT_LE(srv_.MaxConcurrent(), 4);
	EXPECT_GE(srv_.MaxConcurrent(), 2);
	EXPECT_EQ(M("derpd_admission_queued"), 16);
}

TEST_F(EngineUrl, CancelInFlightNoNotify)
{
	delay_ms_ = 200;
	ASSERT_TRUE(New());
	Waiter w;
	Submit(&w, MakeKey(70));
	ASSERT_TRUE(Until([&] { return srv_.RequestCount() == 1; }));
	auth_cancel(w.req);
	w.req = nullptr;
	// The request still completes (and is cached); nobody is told.
	ASSERT_TRUE(Until([&] { return srv_.Answered("/admit"); }));
	Spin(100);
	EXPECT_EQ(w.notified.load(), 0);
	auto w2 = Check(MakeKey(70));
	EXPECT_EQ(w2->reason, AUTH_OK);
	EXPECT_EQ(w2->cached, 1);
}

TEST_F(EngineUrl, CancelOneOfManyWaiters)
{
	delay_ms_ = 200;
	ASSERT_TRUE(New());
	std::vector<Waiter> ws(5);
	for (auto &w : ws)
		Submit(&w, MakeKey(71));
	ASSERT_TRUE(Until([&] { return srv_.RequestCount() == 1; }));
	auth_cancel(ws[0].req);
	auth_cancel(ws[3].req);
	ws[0].req = ws[3].req = nullptr;
	for (int i : { 1, 2, 4 })
		ASSERT_TRUE(Finish(&ws[i]));
	Spin(50);
	EXPECT_EQ(ws[0].notified.load(), 0);
	EXPECT_EQ(ws[3].notified.load(), 0);
}

// A queued check whose clients all hung up is dropped: no request.
TEST_F(EngineUrl, QueuedAbandonedFlightIsDropped)
{
	delay_ms_ = 300;
	conf_.ac_max_inflight = 1;
	ASSERT_TRUE(New());
	Waiter first, gone1, gone2, stays;
	Submit(&first, MakeKey(75));
	ASSERT_TRUE(Until([&] { return srv_.RequestCount() == 1; }));
	Submit(&gone1, MakeKey(76));
	Submit(&gone2, MakeKey(76));
	Submit(&stays, MakeKey(77));
	Spin(20);
	EXPECT_EQ(M("derpd_admission_queued"), 2);
	auth_cancel(gone1.req);
	auth_cancel(gone2.req);
	gone1.req = gone2.req = nullptr;
	ASSERT_TRUE(Finish(&first));
	ASSERT_TRUE(Finish(&stays, 3000));
	EXPECT_EQ(stays.reason, AUTH_OK);
	EXPECT_EQ(srv_.CountMatching(KeyHex(MakeKey(76)), true), 0u);
	EXPECT_EQ(srv_.CountMatching(KeyHex(MakeKey(77)), true), 1u);
	EXPECT_EQ(M(BackendReqs("url")), 2);
	EXPECT_EQ(gone1.notified.load() + gone2.notified.load(), 0);
	// Nothing was cached for the dropped key.
	auto w = Check(MakeKey(76));
	EXPECT_EQ(w->cached, 0);
	EXPECT_EQ(srv_.CountMatching(KeyHex(MakeKey(76)), true), 1u);
}

// A reload while a decision is being made: that decision is delivered
// but not cached, since it was made under the old allowlist.
TEST_F(EngineUrl, ReloadDuringFlightIsNotCached)
{
	Key k = MakeKey(78);
	std::string f = dir_.Write("allow", NodeKey(k) + "\n");
	snprintf(conf_.ac_allow_file, sizeof(conf_.ac_allow_file), "%s",
	    f.c_str());
	delay_ms_ = 300;
	ASSERT_TRUE(New());
	Waiter w;
	Submit(&w, k);
	ASSERT_TRUE(Until([&] { return srv_.RequestCount() == 1; }));
	dir_.Write("allow", "# nobody\n");
	struct reload_report rep = {};
	ASSERT_EQ(auth_reload(a_, &rep), 0);
	ASSERT_TRUE(Finish(&w));
	EXPECT_EQ(w.reason, AUTH_OK);
	auto w2 = Check(k);
	EXPECT_EQ(w2->reason, AUTH_NOT_IN_ALLOWLIST);
	EXPECT_EQ(w2->cached, 0);
}

// Without an allowlist a reload (SIGHUP) still forgets every decision.
TEST_F(EngineUrl, ReloadWithoutAllowlistClearsCache)
{
	ASSERT_TRUE(New());
	EXPECT_EQ(Check(MakeKey(79))->cached, 0);
	EXPECT_EQ(Check(MakeKey(79))->cached, 1);
	struct reload_report rep = {};
	ASSERT_EQ(auth_reload(a_, &rep), 0);
	EXPECT_EQ(Check(MakeKey(79))->cached, 0);
	EXPECT_EQ(srv_.RequestCount(), 2u);
}

TEST_F(EngineUrl, FreeWithRequestInFlight)
{
	delay_ms_ = 3000;
	ASSERT_TRUE(New());
	Waiter w;
	Submit(&w, MakeKey(72));
	ASSERT_TRUE(Until([&] { return srv_.RequestCount() == 1; }));
	auth_cancel(w.req);
	w.req = nullptr;
	// The daemon's shutdown: checks cancelled, engine freed mid-flight.
	auth_free(a_);
	a_ = nullptr;
	Spin(20);
	EXPECT_EQ(w.notified.load(), 0);
}

TEST_F(EngineUrl, FreeWithQueuedFlights)
{
	delay_ms_ = 3000;
	conf_.ac_max_inflight = 1;
	ASSERT_TRUE(New());
	std::vector<Waiter> ws(4);
	for (int i = 0; i < 4; i++)
		Submit(&ws[i], MakeKey(80 + i));
	ASSERT_TRUE(Until([&] { return srv_.RequestCount() == 1; }));
	Spin(20);
	for (auto &w : ws) {
		auth_cancel(w.req);
		w.req = nullptr;
	}
	auth_free(a_);
	a_ = nullptr;
	for (auto &w : ws)
		EXPECT_EQ(w.notified.load(), 0);
}

TEST_F(EngineUrl, TimeoutFailOpenAndClosed)
{
	delay_ms_ = 1000;
	conf_.ac_timeout_ms = 100;
	ASSERT_TRUE(New());
	auto w = Check(MakeKey(90));
	EXPECT_EQ(w->reason, AUTH_OK) << "fail-open admits on a timeout";
	EXPECT_STREQ(w->backend, "url");
	auth_free(a_);
	a_ = nullptr;
	conf_.ac_url_fail_open = false;
	ASSERT_TRUE(New());
	int64_t t0 = NowMs();
	w = Check(MakeKey(91));
	EXPECT_EQ(w->reason, AUTH_URL_UNREACHABLE);
	EXPECT_LT(w->at_ms - t0, 900) << "-auth-timeout not applied";
}

TEST_F(EngineUrl, Unreachable)
{
	snprintf(conf_.ac_url, sizeof(conf_.ac_url),
	    "http://127.0.0.1:%d/admit", fakehttp::RefusedPort());
	conf_.ac_url_fail_open = false;
	ASSERT_TRUE(New());
	auto w = Check(MakeKey(92));
	EXPECT_EQ(w->reason, AUTH_URL_UNREACHABLE);
	EXPECT_STREQ(w->backend, "url");
}

TEST_F(EngineUrl, BadUrlFailsNew)
{
	snprintf(conf_.ac_url, sizeof(conf_.ac_url), "ftp://127.0.0.1/x");
	char err[512] = "";
	EXPECT_EQ(auth_new(&conf_, base_, err, sizeof(err)), nullptr);
	EXPECT_NE(std::string(err).find("ftp://127.0.0.1/x"),
	    std::string::npos) << err;
}

namespace {

// The whole chain: allowlist, then a fake tailscaled on a Unix socket,
// then the webhook.
class EngineChain : public EngineUrl {
protected:
	void SetUp() override
	{
		EngineUrl::SetUp();
		sock_ = dir_.path + "/ts.sock";
		ts_.SetHandler([this](const fakehttp::Request &rq) {
			fakehttp::Response rs;
			if (rq.target.find(KeyHex(k_nots_)) !=
			    std::string::npos) {
				rs.status = 404;
				rs.body = "no match for IP:port\n";
				rs.content_type = "text/plain";
			} else
				rs.body = "{\"Node\":{},\"UserProfile\":{}}";
			return rs;
		});
		ASSERT_EQ(ts_.ListenUnix(sock_), "");
		conf_.ac_verify_clients = true;
		snprintf(conf_.ac_socket, sizeof(conf_.ac_socket), "%s",
		    sock_.c_str());
		std::string f = dir_.Write("allow", NodeKey(k_ok_) + "\n" +
		    NodeKey(k_nots_) + "\n" + NodeKey(k_deny_) + "\n");
		snprintf(conf_.ac_allow_file, sizeof(conf_.ac_allow_file), "%s",
		    f.c_str());
		srv_.SetHandler([this](const fakehttp::Request &rq) {
			fakehttp::Response rs;
			rs.body = rq.body.find(KeyHex(k_deny_)) !=
			    std::string::npos ? "{\"Allow\":false}" :
			    "{\"Allow\":true}";
			return rs;
		});
	}
	void TearDown() override
	{
		EngineUrl::TearDown();
		ts_.Stop();
	}
	fakehttp::Server ts_;
	std::string sock_;
	Key k_ok_ = MakeKey(301), k_nots_ = MakeKey(302), k_deny_ = MakeKey(303),
	    k_unlisted_ = MakeKey(304);
};

}  // namespace

TEST_F(EngineChain, OrderAllowlistTailscaledUrl)
{
	ASSERT_TRUE(New());
	auto w = Check(k_unlisted_);
	EXPECT_EQ(w->reason, AUTH_NOT_IN_ALLOWLIST);
	EXPECT_STREQ(w->backend, "allowlist");
	EXPECT_EQ(ts_.CountMatching(KeyHex(k_unlisted_)), 0u);
	EXPECT_EQ(srv_.CountMatching(KeyHex(k_unlisted_), true), 0u);

	w = Check(k_nots_);
	EXPECT_EQ(w->reason, AUTH_NOT_IN_TAILNET);
	EXPECT_STREQ(w->backend, "tailscaled");
	EXPECT_EQ(ts_.CountMatching(KeyHex(k_nots_)), 1u);
	EXPECT_EQ(srv_.CountMatching(KeyHex(k_nots_), true), 0u);

	w = Check(k_deny_);
	EXPECT_EQ(w->reason, AUTH_URL_DENIED);
	EXPECT_STREQ(w->backend, "url");

	w = Check(k_ok_);
	EXPECT_EQ(w->reason, AUTH_OK);
	EXPECT_STREQ(w->backend, "url");
	EXPECT_EQ(ts_.CountMatching(KeyHex(k_ok_)), 1u);
	EXPECT_EQ(srv_.CountMatching(KeyHex(k_ok_), true), 1u);

	std::string v = Varz(a_);
	EXPECT_EQ(MetricIn(v, BackendReqs("allowlist")), 4);
	EXPECT_EQ(MetricIn(v, BackendReqs("tailscaled")), 3);
	EXPECT_EQ(MetricIn(v, BackendReqs("url")), 2);

	// The LocalAPI request, exactly.
	auto reqs = ts_.Requests();
	ASSERT_FALSE(reqs.empty());
	for (auto &r : reqs) {
		EXPECT_EQ(r.method, "GET");
		EXPECT_EQ(r.version, "HTTP/1.1");
		EXPECT_EQ(r.Count("Host"), 1);
		EXPECT_EQ(r.Header("Host"), "local-tailscaled.sock");
		EXPECT_FALSE(r.Has("Origin"));
		EXPECT_FALSE(r.Has("Referer"));
	}
	EXPECT_EQ(reqs[0].target, "/localapi/v0/whois?addr=nodekey%3A" +
	    KeyHex(k_nots_));
}

TEST_F(EngineChain, TailscaledGoneFailsClosed)
{
	ts_.Stop();
	ASSERT_TRUE(New());
	auto w = Check(k_ok_);
	EXPECT_EQ(w->reason, AUTH_TAILSCALED_UNREACHABLE);
	EXPECT_STREQ(w->backend, "tailscaled");
	EXPECT_EQ(srv_.RequestCount(), 0u);
}

// Engine throughput, printed (not asserted): checks/s against the fake
// LocalAPI with a cold cache (distinct keys) and a warm one (one key),
// with no DERP handshake in the way.
TEST_F(EngineChain, Throughput)
{
	const int n = 2000;
	conf_.ac_allow_file[0] = '\0';
	conf_.ac_url[0] = '\0';
	conf_.ac_max_pending_per_source = n;	/* all from 127.0.0.1 */
	ASSERT_TRUE(New());
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1) {
			EXPECT_EQ(Check(k_ok_)->cached, 0);	/* warm it */
		}
		std::vector<Waiter> ws(n);
		auto t0 = std::chrono::steady_clock::now();
		for (int i = 0; i < n; i++)
			Submit(&ws[i], pass == 0 ? MakeKey(5000 + i) : k_ok_);
		ASSERT_TRUE(Until([&] {
			for (auto &w : ws)
				if (w.notified.load() == 0)
					return false;
			return true;
		}, 30000));
		double secs = std::chrono::duration<double>(
		    std::chrono::steady_clock::now() - t0).count();
		for (auto &w : ws) {
			ASSERT_TRUE(Finish(&w));
			EXPECT_EQ(w.reason, AUTH_OK);
			EXPECT_EQ(w.cached, pass);
		}
		printf("[ INFO     ] engine, %s cache: %d checks in %.1f ms, "
		    "%.0f checks/s\n", pass == 0 ? "cold" : "warm", n,
		    secs * 1000, n / secs);
	}
	EXPECT_EQ(M(BackendReqs("tailscaled")), n + 1);
}

// Queued flights that the allowlist settles at once must not recurse
// into one another: auth_finish starts the next queued flight, which
// finishes synchronously and starts the next, and so on, one stack
// frame set per queued flight. A flood of connects with unlisted keys
// while the slots are busy would overflow the engine thread's stack.
TEST_F(EngineUrl, QueuedSynchronousRefusalsDoNotRecurse)
{
	GTEST_FLAG_SET(death_test_style, "threadsafe");
	EXPECT_EXIT({
		Key listed = MakeKey(1);
		std::string f = dir_.Write("allow", NodeKey(listed) + "\n");
		snprintf(conf_.ac_allow_file, sizeof(conf_.ac_allow_file),
		    "%s", f.c_str());
		conf_.ac_max_inflight = 1;
		conf_.ac_cache_size = 1 << 20;
		conf_.ac_max_pending_per_source = 1 << 20;	/* one source */
		delay_ms_ = 300;
		if (!New())
			_exit(2);
		Waiter first;
		Submit(&first, listed);
		if (!Until([&] { return srv_.RequestCount() == 1; }))
			_exit(3);
		const int n = 300000;
		std::vector<Waiter> ws(n);
		for (int i = 0; i < n; i++)
			Submit(&ws[i], MakeKey(1000000 + i));
		if (!Until([&] { return ws[n - 1].notified.load() > 0; },
		    20000))
			_exit(4);
		for (auto &w : ws)
			if (w.notified.load() != 1)
				_exit(5);
		if (M("derpd_admission_queued") != n)
			_exit(6);
		fflush(nullptr);
		_exit(0);
	}, ::testing::ExitedWithCode(0), "");
}

// --- fairness across sources -----------------------------------------

namespace {

std::vector<uint8_t>
GroupOf(const struct sockaddr *sa)
{
	std::vector<uint8_t> k(AUTH_SRC_KEY_LEN);
	auth_src_key(sa, k.data());
	return k;
}

template <typename T>
std::vector<uint8_t>
GroupOf(const T &s)
{
	return GroupOf((const struct sockaddr *)&s);
}

// The Source of the nth request the fake webhook received.
std::string
SourceOf(const fakehttp::Request &rq)
{
	size_t p = rq.body.find("\"Source\":\"");
	if (p == std::string::npos)
		return "";
	p += 10;
	return rq.body.substr(p, rq.body.find('"', p) - p);
}

}  // namespace

TEST(AuthSrcKey, Ipv4IgnoresThePort)
{
	EXPECT_EQ(GroupOf(V4("192.0.2.1", 1)), GroupOf(V4("192.0.2.1", 2)));
	EXPECT_NE(GroupOf(V4("192.0.2.1")), GroupOf(V4("192.0.2.2")));
}

TEST(AuthSrcKey, V4MappedIsIpv4)
{
	EXPECT_EQ(GroupOf(V6("::ffff:192.0.2.1")), GroupOf(V4("192.0.2.1")));
	EXPECT_NE(GroupOf(V6("::ffff:192.0.2.1")), GroupOf(V4("192.0.2.9")));
	/* Not the same as the IPv6 address with those low bytes. */
	EXPECT_NE(GroupOf(V6("::c000:201")), GroupOf(V4("192.0.2.1")));
}

TEST(AuthSrcKey, Ipv6ByPrefix64)
{
	EXPECT_EQ(GroupOf(V6("2001:db8:1:2::1")),
	    GroupOf(V6("2001:db8:1:2:ffff:ffff:ffff:ffff")));
	EXPECT_NE(GroupOf(V6("2001:db8:1:2::1")), GroupOf(V6("2001:db8:1:3::1")));
	EXPECT_NE(GroupOf(V6("2001:db8:1:2::1")), GroupOf(V6("2001:db9:1:2::1")));
}

TEST(AuthSrcKey, UnknownIsOneGroupApart)
{
	std::vector<uint8_t> none = GroupOf((const struct sockaddr *)nullptr);
	struct sockaddr_un un;
	memset(&un, 0, sizeof(un));
	un.sun_family = AF_UNIX;
	EXPECT_EQ(none, GroupOf(un));
	EXPECT_NE(none, GroupOf(V4("0.0.0.0")));
	EXPECT_NE(none, GroupOf(V6("::")));
	EXPECT_NE(GroupOf(V4("0.0.0.0")), GroupOf(V6("::")));
}

// With every backend slot busy, queued checks are started round robin
// across sources, not in arrival order: a source that queued four checks
// first does not go before a source that queued two after it.
TEST_F(EngineUrl, QueuedChecksRoundRobinAcrossSources)
{
	delay_ms_ = 100;
	conf_.ac_max_inflight = 1;
	ASSERT_TRUE(New());
	struct sockaddr_in a = V4("192.0.2.10"), b = V4("198.51.100.20");
	struct sockaddr_in6 c = V6("2001:db8:7:7::1");
	std::vector<Waiter> ws(8);
	/* a: 4 checks (the first starts at once), then b: 2, then c: 2. */
	for (int i = 0; i < 4; i++)
		Submit(&ws[i], MakeKey(300 + i), (const struct sockaddr *)&a);
	for (int i = 4; i < 6; i++)
		Submit(&ws[i], MakeKey(300 + i), (const struct sockaddr *)&b);
	for (int i = 6; i < 8; i++)
		Submit(&ws[i], MakeKey(300 + i), (const struct sockaddr *)&c);
	for (auto &w : ws) {
		ASSERT_TRUE(Finish(&w, 5000));
		EXPECT_EQ(w.reason, AUTH_OK);
	}
	auto reqs = srv_.Requests();
	ASSERT_EQ(reqs.size(), 8u);
	std::vector<std::string> order;
	for (auto &r : reqs)
		order.push_back(SourceOf(r));
	const std::string A = "192.0.2.10", B = "198.51.100.20",
	    C = "2001:db8:7:7::1";
	std::vector<std::string> want = { A, A, B, C, A, B, C, A };
	EXPECT_EQ(order, want);
	EXPECT_EQ(M("derpd_admission_queued"), 7);
}

// A source may have at most ac_max_pending_per_source checks pending;
// past that its new keys are refused at once as rate_limited (and not
// cached), while other sources, joins of a pending check, and
// re-verifications go on.
TEST_F(EngineUrl, PendingCapPerSource)
{
	delay_ms_ = 300;
	conf_.ac_max_pending_per_source = 2;
	ASSERT_TRUE(New());
	struct sockaddr_in a = V4("192.0.2.10"), b = V4("192.0.2.11");
	const struct sockaddr *sa = (const struct sockaddr *)&a;
	std::vector<Waiter> ws(4);
	for (int i = 0; i < 4; i++)
		Submit(&ws[i], MakeKey(400 + i), sa);
	/* The two over the cap are answered without a backend request. */
	ASSERT_TRUE(Finish(&ws[2], 200));
	ASSERT_TRUE(Finish(&ws[3], 200));
	EXPECT_EQ(ws[2].reason, AUTH_RATE_LIMITED);
	EXPECT_EQ(ws[3].reason, AUTH_RATE_LIMITED);
	EXPECT_STREQ(ws[2].backend, "engine");
	EXPECT_EQ(ws[0].notified.load() + ws[1].notified.load(), 0);
	/* Another source, and a join of a's pending key, still get in. */
	Waiter other, join, fresh;
	Submit(&other, MakeKey(410), (const struct sockaddr *)&b);
	Submit(&join, MakeKey(400), sa);
	fresh.req = auth_check_fresh(a_, MakeKey(411).data(), sa, NotifyCb,
	    &fresh);
	ASSERT_NE(fresh.req, nullptr);
	for (Waiter *w : { &ws[0], &ws[1], &other, &join, &fresh }) {
		ASSERT_TRUE(Finish(w, 3000));
		EXPECT_EQ(w->reason, AUTH_OK);
	}
	EXPECT_EQ(srv_.CountMatching(KeyHex(MakeKey(402)), true), 0u);
	EXPECT_EQ(srv_.CountMatching(KeyHex(MakeKey(403)), true), 0u);
	EXPECT_EQ(srv_.CountMatching(KeyHex(MakeKey(400)), true), 1u);
	EXPECT_EQ(M("derpd_admission_results{reason=\"rate_limited\"}"), 2);
	/* Not cached: once a's checks are done, the key is asked for. */
	auto w = Check(MakeKey(402));
	EXPECT_EQ(w->reason, AUTH_OK);
	EXPECT_EQ(w->cached, 0);
	EXPECT_EQ(srv_.CountMatching(KeyHex(MakeKey(402)), true), 1u);
}

// The cap groups IPv6 by /64 and IPv4-mapped addresses as IPv4.
TEST_F(EngineUrl, PendingCapGroupsBySource)
{
	delay_ms_ = 300;
	conf_.ac_max_pending_per_source = 1;
	ASSERT_TRUE(New());
	struct sockaddr_in6 p1 = V6("2001:db8:1:2::1"),
	    p2 = V6("2001:db8:1:2:aaaa::2"), q = V6("2001:db8:1:3::1"),
	    m = V6("::ffff:192.0.2.7");
	struct sockaddr_in v4 = V4("192.0.2.7");
	Waiter w1, w2, w3, w4, w5;
	Submit(&w1, MakeKey(500), (const struct sockaddr *)&p1);
	Submit(&w2, MakeKey(501), (const struct sockaddr *)&p2);
	Submit(&w3, MakeKey(502), (const struct sockaddr *)&q);
	Submit(&w4, MakeKey(503), (const struct sockaddr *)&m);
	Submit(&w5, MakeKey(504), (const struct sockaddr *)&v4);
	for (Waiter *w : { &w1, &w2, &w3, &w4, &w5 })
		ASSERT_TRUE(Finish(w, 3000));
	EXPECT_EQ(w1.reason, AUTH_OK);
	EXPECT_EQ(w2.reason, AUTH_RATE_LIMITED) << "same /64 as the first";
	EXPECT_EQ(w3.reason, AUTH_OK) << "another /64";
	EXPECT_EQ(w4.reason, AUTH_OK);
	EXPECT_EQ(w5.reason, AUTH_RATE_LIMITED) << "same IPv4 as the mapped one";
}

// Many sources, each with more checks than the cap, against one slot:
// every source gets its cap's worth served, none more, and the engine
// frees every source group once done (no leak under `make asan`).
TEST_F(EngineUrl, ManySourcesCapAndDrain)
{
	delay_ms_ = 5;
	conf_.ac_max_inflight = 2;
	conf_.ac_max_pending_per_source = 3;
	ASSERT_TRUE(New());
	const int nsrc = 20, per = 5;
	std::vector<Waiter> ws(nsrc * per);
	std::vector<struct sockaddr_in> addrs(nsrc);
	for (int s = 0; s < nsrc; s++) {
		std::string ip = "10.0.0." + std::to_string(s + 1);
		addrs[s] = V4(ip.c_str());
	}
	for (int i = 0; i < per; i++)
		for (int s = 0; s < nsrc; s++)
			Submit(&ws[i * nsrc + s], MakeKey(600 + i * nsrc + s),
			    (const struct sockaddr *)&addrs[s]);
	int ok = 0, limited = 0;
	for (auto &w : ws) {
		ASSERT_TRUE(Finish(&w, 10000));
		if (w.reason == AUTH_OK)
			ok++;
		else if (w.reason == AUTH_RATE_LIMITED)
			limited++;
	}
	EXPECT_EQ(ok + limited, nsrc * per);
	EXPECT_GE(ok, nsrc * 3);
	EXPECT_EQ((size_t)ok, srv_.RequestCount());
	EXPECT_LE(srv_.MaxConcurrent(), 2);
}

// --- refusal aggregator --------------------------------------------

namespace {

class AuthRejects : public Engine {
protected:
	void SetUp() override
	{
		Engine::SetUp();
		// No backend configured: the aggregator works on its own.
		ASSERT_TRUE(New());
	}
	void Note(enum auth_reason r, const char *ip, const Key &k)
	{
		struct sockaddr_in s = V4(ip);
		auth_note_reject(a_, r, (const struct sockaddr *)&s, k.data());
	}
	std::vector<auth_reject_entry> Snap(size_t max = 1024)
	{
		std::vector<auth_reject_entry> v(max);
		v.resize(auth_rejects_snapshot(a_, v.data(), max));
		return v;
	}
};

}  // namespace

TEST_F(AuthRejects, CountsPerReasonAndSource)
{
	Key k1 = MakeKey(1), k2 = MakeKey(2);
	int64_t t0 = (int64_t)time(nullptr);
	Note(AUTH_NOT_IN_TAILNET, "10.0.0.1", k1);
	Note(AUTH_NOT_IN_TAILNET, "10.0.0.1", k2);
	Note(AUTH_NOT_IN_TAILNET, "10.0.0.1", k1);
	Note(AUTH_URL_DENIED, "10.0.0.1", k1);
	Note(AUTH_NOT_IN_TAILNET, "10.0.0.2", k2);
	auto s = Snap();
	ASSERT_EQ(s.size(), 3u);
	// Most recent first.
	EXPECT_STREQ(s[0].are_source, "10.0.0.2");
	EXPECT_EQ(s[0].are_reason, AUTH_NOT_IN_TAILNET);
	EXPECT_EQ(s[0].are_count, 1u);
	EXPECT_EQ(memcmp(s[0].are_last_key, k2.data(), 32), 0);
	EXPECT_STREQ(s[1].are_source, "10.0.0.1");
	EXPECT_EQ(s[1].are_reason, AUTH_URL_DENIED);
	EXPECT_EQ(s[1].are_count, 1u);
	EXPECT_STREQ(s[2].are_source, "10.0.0.1");
	EXPECT_EQ(s[2].are_reason, AUTH_NOT_IN_TAILNET);
	EXPECT_EQ(s[2].are_count, 3u);
	EXPECT_EQ(memcmp(s[2].are_last_key, k1.data(), 32), 0);
	EXPECT_GE(s[2].are_first, t0);
	EXPECT_GE(s[2].are_last, s[2].are_first);
	EXPECT_LE(s[2].are_last, (int64_t)time(nullptr));

	// Another refusal moves its entry to the front.
	Note(AUTH_NOT_IN_TAILNET, "10.0.0.1", k2);
	s = Snap();
	ASSERT_EQ(s.size(), 3u);
	EXPECT_STREQ(s[0].are_source, "10.0.0.1");
	EXPECT_EQ(s[0].are_reason, AUTH_NOT_IN_TAILNET);
	EXPECT_EQ(s[0].are_count, 4u);
	EXPECT_EQ(memcmp(s[0].are_last_key, k2.data(), 32), 0);
	EXPECT_STREQ(s[1].are_source, "10.0.0.2");
	EXPECT_EQ(s[2].are_reason, AUTH_URL_DENIED);

	// A smaller buffer gets the most recent ones.
	s = Snap(2);
	ASSERT_EQ(s.size(), 2u);
	EXPECT_EQ(s[0].are_count, 4u);

	std::string v = Varz(a_);
	EXPECT_EQ(MetricIn(v, Rejects("not_in_tailnet")), 5);
	EXPECT_EQ(MetricIn(v, Rejects("url_denied")), 1);
	EXPECT_EQ(MetricIn(v, Rejects("not_in_allowlist")), 0);
	EXPECT_EQ(MetricIn(v, Rejects("timeout")), 0);
	// Every reason has a line; ok is not a refusal.
	for (int r = 1; r < AUTH_REASON__COUNT; r++)
		EXPECT_GE(MetricIn(v, Rejects(auth_reason_name(
		    (enum auth_reason)r))), 0) << auth_reason_name(
		    (enum auth_reason)r);
	EXPECT_EQ(MetricIn(v, Rejects("ok")), -1);
}

TEST_F(AuthRejects, OkIsNotARefusal)
{
	Note(AUTH_OK, "10.0.0.1", MakeKey(1));
	EXPECT_TRUE(Snap().empty());
}

TEST_F(AuthRejects, SourcesAsText)
{
	struct sockaddr_in6 m = V6("::ffff:192.0.2.1");
	struct sockaddr_in6 v6 = V6("2001:db8::7");
	Key k = MakeKey(1);
	auth_note_reject(a_, AUTH_TIMEOUT, (const struct sockaddr *)&m,
	    k.data());
	auth_note_reject(a_, AUTH_TIMEOUT, (const struct sockaddr *)&v6,
	    k.data());
	auth_note_reject(a_, AUTH_TIMEOUT, nullptr, k.data());
	auto s = Snap();
	ASSERT_EQ(s.size(), 3u);
	EXPECT_STREQ(s[2].are_source, "192.0.2.1");
	EXPECT_STREQ(s[1].are_source, "2001:db8::7");
	EXPECT_STREQ(s[0].are_source, "");
	EXPECT_EQ(MetricIn(Varz(a_), Rejects("timeout")), 3);
}

TEST_F(AuthRejects, BoundedLru)
{
	Key k = MakeKey(9);
	char ip[32];
	Note(AUTH_URL_STATUS, "172.16.0.1", k);
	for (int i = 0; i < 300; i++) {
		snprintf(ip, sizeof(ip), "10.1.%d.%d", i / 256, i % 256);
		Note(AUTH_NOT_IN_ALLOWLIST, ip, k);
	}
	auto s = Snap();
	ASSERT_EQ(s.size(), 256u);
	for (int j = 0; j < 256; j++) {
		int i = 299 - j;
		snprintf(ip, sizeof(ip), "10.1.%d.%d", i / 256, i % 256);
		EXPECT_STREQ(s[j].are_source, ip) << j;
		EXPECT_EQ(s[j].are_count, 1u);
		EXPECT_EQ(s[j].are_reason, AUTH_NOT_IN_ALLOWLIST);
	}
	// Evicted entries are gone; the totals are not.
	std::string v = Varz(a_);
	EXPECT_EQ(MetricIn(v, Rejects("not_in_allowlist")), 300);
	EXPECT_EQ(MetricIn(v, Rejects("url_status")), 1);
	// An evicted source comes back as a new entry with a fresh count.
	Note(AUTH_NOT_IN_ALLOWLIST, "10.1.0.0", k);
	s = Snap();
	ASSERT_EQ(s.size(), 256u);
	EXPECT_STREQ(s[0].are_source, "10.1.0.0");
	EXPECT_EQ(s[0].are_count, 1u);
	EXPECT_STREQ(s[255].are_source, "10.1.0.45");
	// A source still present keeps counting.
	Note(AUTH_NOT_IN_ALLOWLIST, "10.1.1.43", k);
	s = Snap();
	EXPECT_STREQ(s[0].are_source, "10.1.1.43");
	EXPECT_EQ(s[0].are_count, 2u);
}

TEST_F(AuthRejects, FromManyThreads)
{
	std::vector<std::thread> ts;
	for (int t = 0; t < 4; t++)
		ts.emplace_back([this, t] {
			char ip[32];
			snprintf(ip, sizeof(ip), "10.2.0.%d", t);
			for (int i = 0; i < 1000; i++)
				Note(i % 2 ? AUTH_TIMEOUT : AUTH_URL_DENIED, ip,
				    MakeKey(i));
		});
	for (auto &t : ts)
		t.join();
	auto s = Snap();
	ASSERT_EQ(s.size(), 8u);
	uint64_t total = 0;
	for (auto &e : s) {
		EXPECT_EQ(e.are_count, 500u);
		total += e.are_count;
	}
	EXPECT_EQ(total, 4000u);
	std::string v = Varz(a_);
	EXPECT_EQ(MetricIn(v, Rejects("timeout")), 2000);
	EXPECT_EQ(MetricIn(v, Rejects("url_denied")), 2000);
}

// One log line per refusal, rate limited (a flood must not fill disks).
TEST_F(AuthRejects, LogLineAndRateLimit)
{
	char path[] = "/tmp/derpd-auth-log-XXXXXX";
	int fd = mkstemp(path);
	ASSERT_NE(fd, -1);
	fflush(stderr);
	int saved = dup(STDERR_FILENO);
	dup2(fd, STDERR_FILENO);
	Key k(32, 0);
	k[0] = 0xfb;
	k[1] = 0xef;
	k[2] = 0xbe;
	k[3] = 0x04;
	for (int i = 0; i < 200; i++)
		Note(AUTH_NOT_IN_TAILNET, "192.0.2.44", k);
	fflush(stderr);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	std::string log;
	{
		FILE *f = fopen(path, "r");
		ASSERT_NE(f, nullptr);
		char buf[4096];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
			log.append(buf, n);
		fclose(f);
	}
	unlink(path);
	char ks[8];
	util_key_short(k.data(), ks);
	EXPECT_STREQ(ks, "[++++B]");
	std::string line = std::string("admission: refused ") + ks +
	    " from 192.0.2.44: not_in_tailnet";
	size_t n = 0;
	for (size_t p = log.find(line); p != std::string::npos;
	    p = log.find(line, p + 1))
		n++;
	EXPECT_GE(n, 1u) << log;
	EXPECT_LE(n, 25u) << "200 refusals in a burst, " << n << " lines";
	EXPECT_EQ(MetricIn(Varz(a_), Rejects("not_in_tailnet")), 200);
}

// The control plane's set (-verify-clients-api) as the backend reads its
// files: the credentials and a state file written as a sync would.
namespace {

std::string
TsDev(const Key &k, bool authorized, const char *expires)
{
	return std::string("{\"addresses\": [\"100.64.0.7\"], \"id\": \"1\", "
	    "\"name\": \"host.tail1234.ts.net\", \"user\": \"a@example.com\", "
	    "\"authorized\": ") + (authorized ? "true" : "false") +
	    ", \"keyExpiryDisabled\": false, \"expires\": \"" + expires +
	    "\", \"nodeKey\": \"" + NodeKey(k) + "\"}";
}

class EngineApi : public Engine {
protected:
	void SetUp() override
	{
		Engine::SetUp();
		snprintf(conf_.ac_api, sizeof(conf_.ac_api), "tailscale");
		// Nothing listens there: the startup sync fails, the state
		// file's set stays.
		snprintf(conf_.ac_api_url, sizeof(conf_.ac_api_url),
		    "http://127.0.0.1:9");
		snprintf(conf_.ac_api_tailnet, sizeof(conf_.ac_api_tailnet),
		    "example.com");
		creds_ = dir_.Write("api.json", "{\"api_key\": \"tskey-api-x\"}");
		ASSERT_EQ(chmod(creds_.c_str(), 0600), 0);
		snprintf(conf_.ac_api_creds, sizeof(conf_.ac_api_creds), "%s",
		    creds_.c_str());
	}

	// auth_new's error, "" when it succeeded.
	std::string NewErr()
	{
		char err[1024] = "";
		a_ = auth_new(&conf_, base_, err, sizeof(err));
		EXPECT_EQ(a_, nullptr);
		return err;
	}

	std::string creds_;
	Key ok_ = MakeKey(201), unauth_ = MakeKey(202), expired_ = MakeKey(203);
};

}  // namespace

TEST_F(EngineApi, CredentialsFileErrorsKeepTheirWords)
{
	const std::string pre = "-verify-clients-api-credentials: ";

	ASSERT_EQ(unlink(creds_.c_str()), 0);
	EXPECT_EQ(NewErr(), pre + creds_ + ": " + strerror(ENOENT));

	dir_.Write("api.json", std::string(64 * 1024 + 1, ' '));
	ASSERT_EQ(chmod(creds_.c_str(), 0600), 0);
	EXPECT_EQ(NewErr(), pre + creds_ + ": not a regular file of at most "
	    "65536 bytes");

	ASSERT_EQ(unlink(creds_.c_str()), 0);
	ASSERT_EQ(mkdir(creds_.c_str(), 0700), 0);
	EXPECT_EQ(NewErr(), pre + creds_ + ": not a regular file of at most "
	    "65536 bytes");
}

TEST_F(EngineApi, StateFileVerdicts)
{
	std::string body = "{\"devices\": [" +
	    TsDev(ok_, true, "2099-01-01T00:00:00Z") + ", " +
	    TsDev(unauth_, false, "2099-01-01T00:00:00Z") + ", " +
	    TsDev(expired_, true, "2001-01-01T00:00:00Z") + "]}";
	char e[256] = "";
	api_set *s = api_set_parse(API_TAILSCALE, body.data(), body.size(), e,
	    sizeof(e));
	ASSERT_NE(s, nullptr) << e;
	size_t len;
	char *text = api_state_format(s, "tailscale", conf_.ac_api_url,
	    conf_.ac_api_tailnet, (int64_t)time(nullptr), &len);
	api_set_free(s);
	ASSERT_NE(text, nullptr);
	std::string state = dir_.Write("state.json", std::string(text, len));
	free(text);
	ASSERT_EQ(chmod(state.c_str(), 0600), 0);
	snprintf(conf_.ac_api_state, sizeof(conf_.ac_api_state), "%s",
	    state.c_str());
	ASSERT_TRUE(New());

	struct {
		const Key &k;
		enum auth_reason want;
	} cases[] = {
		{ ok_, AUTH_OK },
		{ unauth_, AUTH_DEVICE_UNAUTHORIZED },
		{ expired_, AUTH_KEY_EXPIRED },
	};
	for (const auto &c : cases) {
		// test-policy's explanation and a check say the same.
		cJSON *res = cJSON_CreateObject();
		ASSERT_NE(res, nullptr);
		EXPECT_EQ(auth_api_explain(a_, c.k.data(), res), c.want)
		    << KeyHex(c.k);
		cJSON *api = cJSON_GetObjectItem(res, "api");
		ASSERT_TRUE(cJSON_IsString(api));
		EXPECT_STREQ(api->valuestring, auth_reason_name(c.want));
		cJSON_Delete(res);
		std::unique_ptr<Waiter> w = Check(c.k);
		EXPECT_EQ(w->reason, c.want) << KeyHex(c.k);
	}
}
