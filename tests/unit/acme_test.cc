// SPDX-License-Identifier: ISC
// acme_msg.c: the ACME messages derpd reads and the encodings it writes.
#include <time.h>

#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "acme_msg.h"

static std::string
B64url(const std::string &s)
{
	char out[256];
	size_t n = acme_b64url((const uint8_t *)s.data(), s.size(), out,
	    sizeof(out));
	return std::string(out, n);
}

TEST(AcmeMsg, Base64urlVectors)
{
	// RFC 4648 section 10, without padding, and the URL alphabet.
	EXPECT_EQ(B64url(""), "");
	EXPECT_EQ(B64url("f"), "Zg");
	EXPECT_EQ(B64url("fo"), "Zm8");
	EXPECT_EQ(B64url("foo"), "Zm9v");
	EXPECT_EQ(B64url("foob"), "Zm9vYg");
	EXPECT_EQ(B64url("fooba"), "Zm9vYmE");
	EXPECT_EQ(B64url("foobar"), "Zm9vYmFy");
	EXPECT_EQ(B64url("\xfb\xff\xbf"), "-_-_");
	char small[4];
	EXPECT_EQ(acme_b64url((const uint8_t *)"foo", 3, small, sizeof(small)),
	    0u);
}

TEST(AcmeMsg, Base64DecodeBothForms)
{
	uint8_t out[32];
	// base64url without padding and standard with padding, as derper.
	ASSERT_EQ(acme_b64_decode("-_-_", out, sizeof(out)), 3);
	EXPECT_EQ(memcmp(out, "\xfb\xff\xbf", 3), 0);
	ASSERT_EQ(acme_b64_decode("+/+/", out, sizeof(out)), 3);
	EXPECT_EQ(memcmp(out, "\xfb\xff\xbf", 3), 0);
	ASSERT_EQ(acme_b64_decode("Zm9vYg", out, sizeof(out)), 4);
	ASSERT_EQ(acme_b64_decode("Zm9vYg==", out, sizeof(out)), 4);
	EXPECT_EQ(memcmp(out, "foob", 4), 0);
	EXPECT_EQ(acme_b64_decode("", out, sizeof(out)), -1);
	EXPECT_EQ(acme_b64_decode("not base64!", out, sizeof(out)), -1);
	EXPECT_EQ(acme_b64_decode("Zm9vYg=", out, sizeof(out)), -1);
	EXPECT_EQ(acme_b64_decode("Z", out, sizeof(out)), -1);
	EXPECT_EQ(acme_b64_decode("Zh", out, sizeof(out)), -1);	// stray bits
	EXPECT_EQ(acme_b64_decode("Zm9vYmFy", out, 5), -1);	// too long
}

TEST(AcmeMsg, Directory)
{
	const char *j = "{\"newNonce\":\"https://ca/nonce\",\"newAccount\":"
	    "\"https://ca/acct\",\"newOrder\":\"https://ca/order\",\"revokeCert\":"
	    "\"https://ca/revoke\",\"meta\":{\"externalAccountRequired\":true,"
	    "\"profiles\":{\"default\":\"d\",\"shortlived\":\"s\"}}}";
	struct acme_dir d;
	ASSERT_EQ(acme_parse_directory(j, strlen(j), &d), 0);
	EXPECT_STREQ(d.ad_new_nonce, "https://ca/nonce");
	EXPECT_STREQ(d.ad_new_account, "https://ca/acct");
	EXPECT_STREQ(d.ad_new_order, "https://ca/order");
	EXPECT_TRUE(d.ad_eab_required);
	EXPECT_TRUE(d.ad_profile_shortlived);
	const char *bad[] = { "", "[]", "{}", "{\"newNonce\":1,\"newAccount\":"
	    "\"a\",\"newOrder\":\"o\"}", "{\"newNonce\":\"n\",\"newOrder\":"
	    "\"o\"}", "{\"newNonce\":\"n\"", "null" };
	for (const char *b : bad)
		EXPECT_EQ(acme_parse_directory(b, strlen(b), &d), -1) << b;
	EXPECT_EQ(acme_parse_directory(nullptr, 0, &d), -1);
}

TEST(AcmeMsg, Order)
{
	const char *j = "{\"status\":\"pending\",\"expires\":\"2026-12-09T00:00:"
	    "00Z\",\"identifiers\":[{\"type\":\"dns\",\"value\":\"d.e\"}],"
	    "\"authorizations\":[\"https://ca/authz/1\",\"https://ca/authz/2\"],"
	    "\"finalize\":\"https://ca/fin/1\"}";
	struct acme_order o;
	ASSERT_EQ(acme_parse_order(j, strlen(j), &o), 0);
	EXPECT_STREQ(o.ao_status, "pending");
	ASSERT_EQ(o.ao_nauthz, 2u);
	EXPECT_STREQ(o.ao_authz[1], "https://ca/authz/2");
	EXPECT_STREQ(o.ao_finalize, "https://ca/fin/1");
	EXPECT_STREQ(o.ao_certificate, "");
	const char *v = "{\"status\":\"valid\",\"authorizations\":[],"
	    "\"finalize\":\"f\",\"certificate\":\"https://ca/cert/1\"}";
	ASSERT_EQ(acme_parse_order(v, strlen(v), &o), 0);
	EXPECT_STREQ(o.ao_certificate, "https://ca/cert/1");
	std::string many = "{\"status\":\"pending\",\"finalize\":\"f\","
	    "\"authorizations\":[";
	for (int i = 0; i <= ACME_MAX_AUTHZ; i++)
		many += std::string(i ? "," : "") + "\"u\"";
	many += "]}";
	EXPECT_EQ(acme_parse_order(many.c_str(), many.size(), &o), -1);
	const char *bad[] = { "{\"status\":\"valid\",\"finalize\":\"f\"}",
	    "{\"status\":\"valid\",\"authorizations\":[1],\"finalize\":\"f\"}",
	    "{\"authorizations\":[],\"finalize\":\"f\"}" };
	for (const char *b : bad)
		EXPECT_EQ(acme_parse_order(b, strlen(b), &o), -1) << b;
}

TEST(AcmeMsg, Authorization)
{
	const char *j = "{\"status\":\"invalid\",\"identifier\":{\"type\":"
	    "\"dns\",\"value\":\"localhost\"},\"challenges\":[{\"type\":"
	    "\"http-01\",\"url\":\"https://ca/chal/1\",\"token\":\"tok_-1\","
	    "\"status\":\"pending\"},{\"type\":\"tls-alpn-01\",\"url\":"
	    "\"https://ca/chal/2\",\"token\":\"t2\",\"status\":\"invalid\","
	    "\"error\":{\"type\":\"urn:ietf:params:acme:error:connection\","
	    "\"detail\":\"Failed to connect\"}},{\"type\":\"dns-01\",\"url\":"
	    "\"https://ca/chal/3\",\"token\":\"t3\"}]}";
	struct acme_authz a;
	ASSERT_EQ(acme_parse_authz(j, strlen(j), &a), 0);
	EXPECT_STREQ(a.az_status, "invalid");
	EXPECT_STREQ(a.az_ident_type, "dns");
	EXPECT_STREQ(a.az_ident, "localhost");
	ASSERT_EQ(a.az_nchal, 3u);
	EXPECT_STREQ(a.az_chal[0].ac_type, "http-01");
	EXPECT_STREQ(a.az_chal[0].ac_token, "tok_-1");
	EXPECT_STREQ(a.az_chal[1].ac_url, "https://ca/chal/2");
	EXPECT_STREQ(a.az_error, "Failed to connect");
	const char *bad[] = {
	    "{\"status\":\"pending\",\"challenges\":[]}",
	    "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\"},"
	    "\"challenges\":[]}",
	    "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":"
	    "\"x\"},\"challenges\":[{\"type\":\"http-01\"}]}",
	    "{\"status\":\"pending\",\"identifier\":{\"type\":\"dns\",\"value\":"
	    "\"x\"},\"challenges\":{}}" };
	for (const char *b : bad)
		EXPECT_EQ(acme_parse_authz(b, strlen(b), &a), -1) << b;
}

TEST(AcmeMsg, Problem)
{
	const char *j = "{\"type\":\"urn:ietf:params:acme:error:rateLimited\","
	    "\"detail\":\"too many certificates\",\"status\":429}";
	struct acme_problem p;
	ASSERT_EQ(acme_parse_problem(j, strlen(j), &p), 0);
	EXPECT_STREQ(acme_problem_short(p.ap_type), "rateLimited");
	EXPECT_STREQ(p.ap_detail, "too many certificates");
	EXPECT_STREQ(acme_problem_short(
	    "urn:ietf:params:acme:error:badNonce"), "badNonce");
	EXPECT_STREQ(acme_problem_short("urn:ietf:params:acme:error:zzz"),
	    "other");
	EXPECT_STREQ(acme_problem_short("about:blank"), "other");
	EXPECT_STREQ(acme_problem_short(nullptr), "other");
	std::string longd = "{\"type\":\"t\",\"detail\":\"" +
	    std::string(2000, 'x') + "\"}";
	ASSERT_EQ(acme_parse_problem(longd.c_str(), longd.size(), &p), 0);
	EXPECT_EQ(strlen(p.ap_detail), sizeof(p.ap_detail) - 1);
	EXPECT_EQ(acme_parse_problem("<html>", 6, &p), -1);
}

TEST(AcmeMsg, RetryAfter)
{
	time_t now = 784111777;	// Sun, 06 Nov 1994 08:49:37 GMT
	EXPECT_EQ(acme_retry_after("120", now), 120);
	EXPECT_EQ(acme_retry_after(" 3\r", now), 3);
	EXPECT_EQ(acme_retry_after("999999", now), 86400);
	EXPECT_EQ(acme_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now), 60);
	EXPECT_EQ(acme_retry_after("Sun, 06 Nov 1994 08:40:37 GMT", now), 0);
	EXPECT_EQ(acme_retry_after(nullptr, now), -1);
	EXPECT_EQ(acme_retry_after("", now), -1);
	EXPECT_EQ(acme_retry_after("-5", now), -1);
	EXPECT_EQ(acme_retry_after("12abc", now), -1);
	EXPECT_EQ(acme_retry_after("Sun, 06 Foo 1994 08:50:37 GMT", now), -1);
	EXPECT_EQ(acme_retry_after("Sun, 06 Nov 1994 08:50:37 PST", now), -1);
}

TEST(AcmeMsg, RenewAt)
{
	const time_t d = 86400;
	// 90 days: renewed 30 days before the end (a third).
	EXPECT_EQ(acme_renew_at(0, 90 * d), 60 * d);
	// The short-lived profile (6 days): 2 days before.
	EXPECT_EQ(acme_renew_at(1000, 1000 + 6 * d), 1000 + 4 * d);
	// A year: at most 30 days before.
	EXPECT_EQ(acme_renew_at(0, 365 * d), 335 * d);
	EXPECT_EQ(acme_renew_at(50, 50), 50);
	EXPECT_EQ(acme_renew_at(60, 30), 30);
}
