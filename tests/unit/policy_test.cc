// SPDX-License-Identifier: ISC
// policy_test.cc: the admission policy: the parser (every field, every
// error names the file, the rule and the problem), the matcher (every
// field, globs, v4 and v6 prefixes, first match wins, default deny), the
// whois identity, the audit line and the webhook body with identity.
#include <arpa/inet.h>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <gtest/gtest.h>

#include "auth_int.h"
#include "policy.h"

namespace {

struct PolicyDel {
	void operator()(policy *p) const { policy_free(p); }
};
using Pol = std::unique_ptr<policy, PolicyDel>;

Pol
Parse(const std::string &text, std::string *err = nullptr)
{
	char e[512] = "";
	policy *p = policy_parse(text.data(), text.size(), "pol.json", e,
	    sizeof(e));
	if (err != nullptr)
		*err = e;
	return Pol(p);
}

std::string
Err(const std::string &text)
{
	std::string e;
	Pol p = Parse(text, &e);
	EXPECT_EQ(p, nullptr) << text;
	return e;
}

std::string
Rules(const std::string &rules)
{
	return "{\"rules\": [" + rules + "]}";
}

// An identity built by hand (owns its strings through a whois body).
struct Ident {
	policy_ident id{};
	explicit Ident(const std::string &whois, int64_t now = 1800000000)
	{
		char e[128];
		EXPECT_EQ(policy_ident_parse(whois.data(), whois.size(), now,
		    &id, e, sizeof(e)), 0) << e;
	}
	~Ident() { policy_ident_cleanup(&id); }
};

std::string
Whois(const std::string &name, const std::string &login,
    const std::string &tags, const std::string &addrs,
    const std::string &caps = "{}", const std::string &expiry =
    "0001-01-01T00:00:00Z", bool expired = false)
{
	return "{\"Node\":{\"ID\":1,\"Name\":\"" + name + "\",\"Key\":"
	    "\"nodekey:00\",\"KeyExpiry\":\"" + expiry + "\",\"Addresses\":" +
	    addrs + ",\"Tags\":" + tags + (expired ? ",\"Expired\":true" : "") +
	    "},\"UserProfile\":{\"ID\":2,\"LoginName\":\"" + login +
	    "\",\"DisplayName\":\"X\"},\"CapMap\":" + caps + "}";
}

const std::string kAlice = Whois("alice-laptop.tail1234.ts.net.",
    "alice@example.com", "null",
    "[\"100.101.102.103/32\",\"fd7a:115c:a1e0::1/128\"]",
    "{\"https://tailscale.com/cap/drive\":[{}],\"derp-relay\":null}");
const std::string kServer = Whois("prod-db-1.tail1234.ts.net.",
    "tagged-devices", "[\"tag:prod\",\"tag:db\"]", "[\"100.64.0.7/32\"]");

const char *
Decide(const policy *p, const policy_ident &id)
{
	int i = policy_match(p, &id);
	return i < 0 ? "(default)" : policy_rule_name(p, (size_t)i);
}

}  // namespace

TEST(Policy, ParsesEveryField)
{
	std::string e;
	Pol p = Parse(Rules(
	    "{\"name\":\"prod\",\"action\":\"allow\",\"tags\":[\"tag:prod\"]},"
	    "{\"name\":\"staff\",\"action\":\"allow\",\"users\":[\"*@example.com\"],"
	    " \"nodes\":[\"*\"],\"addrs\":[\"100.64.0.0/10\",\"fd7a:115c:a1e0::/48\","
	    " \"100.64.0.7\"],\"caps\":[\"derp-relay\"],\"expired\":false},"
	    "{\"name\":\"no-expired\",\"action\":\"deny\",\"expired\":true}"), &e);
	ASSERT_NE(p, nullptr) << e;
	EXPECT_EQ(policy_count(p.get()), 3u);
	EXPECT_STREQ(policy_rule_name(p.get(), 0), "prod");
	EXPECT_TRUE(policy_rule_allows(p.get(), 1));
	EXPECT_FALSE(policy_rule_allows(p.get(), 2));
	EXPECT_STREQ(policy_rule_name(p.get(), 3), POLICY_DEFAULT_RULE);
	EXPECT_FALSE(policy_rule_allows(p.get(), 3));
}

TEST(Policy, EmptyRulesDenyAll)
{
	Pol p = Parse("{\"rules\":[]}");
	ASSERT_NE(p, nullptr);
	Ident a(kAlice);
	EXPECT_EQ(policy_match(p.get(), &a.id), -1);
}

TEST(Policy, ErrorsNameFileRuleAndProblem)
{
	struct {
		std::string text, want;
	} cases[] = {
		{ "", "pol.json: not valid JSON" },
		{ "{\"rules\":[", "pol.json: not valid JSON (near line 1)" },
		{ "{\n\"rules\":\n[x]}", "near line 3" },
		{ "[]", "pol.json: not a JSON object" },
		{ "{}", "pol.json: no \"rules\" list" },
		{ "{\"rules\":{}}", "\"rules\" must be a list" },
		{ "{\"rules\":[],\"rule\":[]}", "unknown field \"rule\"" },
		{ "{\"rules\":[],\"rules\":[]}", "\"rules\" given twice" },
		{ "{\"rules\":[]} x", "data after the JSON object" },
		{ Rules("1"), "rule 1: not an object" },
		{ Rules("{\"action\":\"allow\"}"), "rule 1: no \"name\"" },
		{ Rules("{\"name\":\"\",\"action\":\"allow\"}"),
		    "rule 1: \"name\" must be" },
		{ Rules("{\"name\":\"a b\",\"action\":\"allow\"}"),
		    "rule 1: \"name\" must be" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\"},"
		    "{\"name\":\"x\",\"action\":\"deny\"}"),
		    "pol.json: rule \"x\": the name is used by rule 1 too" },
		{ Rules("{\"name\":\"x\"}"), "rule \"x\": no \"action\"" },
		{ Rules("{\"name\":\"x\",\"action\":\"permit\"}"),
		    "rule \"x\": \"action\" must be \"allow\" or \"deny\"" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\",\"tag\":[\"tag:a\"]}"),
		    "pol.json: rule \"x\": unknown field \"tag\"" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\",\"tags\":[\"tag:a\"],"
		    "\"tags\":[\"tag:b\"]}"), "rule \"x\": field \"tags\" given twice" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\",\"tags\":[]}"),
		    "rule \"x\": \"tags\" is empty" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\",\"tags\":\"tag:a\"}"),
		    "rule \"x\": \"tags\" must be a list of strings" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\",\"tags\":[\"prod\"]}"),
		    "rule \"x\": tag \"prod\" does not start with \"tag:\"" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\",\"users\":[1]}"),
		    "rule \"x\": \"users\" entry 1 is not a string" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\",\"nodes\":[\"a b\"]}"),
		    "rule \"x\": \"nodes\" entry 1" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\",\"caps\":[\"\"]}"),
		    "rule \"x\": \"caps\" entry 1" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\",\"addrs\":[\"100.64.0.0/33\"]}"),
		    "rule \"x\": \"100.64.0.0/33\" is not an address or a prefix" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\",\"addrs\":[\"fd7a::/129\"]}"),
		    "\"fd7a::/129\" is not an address" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\",\"addrs\":[\"host\"]}"),
		    "\"host\" is not an address" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\",\"addrs\":[\"1.2.3.4/\"]}"),
		    "\"1.2.3.4/\" is not an address" },
		{ Rules("{\"name\":\"x\",\"action\":\"allow\",\"expired\":\"yes\"}"),
		    "rule \"x\": \"expired\" must be true or false" },
	};
	for (auto &c : cases) {
		std::string e = Err(c.text);
		EXPECT_NE(e.find(c.want), std::string::npos)
		    << "input: " << c.text << "\nerror: " << e;
		EXPECT_EQ(e.compare(0, 9, "pol.json:"), 0) << e;
	}
	std::string nul("{\"rules\":[]}\0", 13);
	EXPECT_NE(Err(nul).find("NUL"), std::string::npos);
}

TEST(Policy, LoadNamesTheFile)
{
	char e[512];
	EXPECT_EQ(policy_load("/nonexistent/pol.json", e, sizeof(e)), nullptr);
	EXPECT_NE(std::string(e).find("/nonexistent/pol.json: No such file"),
	    std::string::npos) << e;
	char path[] = "/tmp/policy_testXXXXXX";
	int fd = mkstemp(path);
	ASSERT_NE(fd, -1);
	std::string body = Rules("{\"name\":\"a\",\"action\":\"allow\"}");
	ASSERT_EQ(write(fd, body.data(), body.size()), (ssize_t)body.size());
	close(fd);
	policy *p = policy_load(path, e, sizeof(e));
	EXPECT_NE(p, nullptr) << e;
	policy_free(p);
	unlink(path);
}

TEST(Policy, FirstMatchWins)
{
	Pol p = Parse(Rules(
	    "{\"name\":\"deny-alice\",\"action\":\"deny\",\"users\":[\"alice@*\"]},"
	    "{\"name\":\"staff\",\"action\":\"allow\",\"users\":[\"*@example.com\"]},"
	    "{\"name\":\"all\",\"action\":\"allow\"}"));
	ASSERT_NE(p, nullptr);
	Ident a(kAlice), b(Whois("bob.ts.net.", "bob@example.com", "null", "[]"));
	Ident c(Whois("c.ts.net.", "carol@other.org", "null", "[]"));
	EXPECT_STREQ(Decide(p.get(), a.id), "deny-alice");
	EXPECT_STREQ(Decide(p.get(), b.id), "staff");
	EXPECT_STREQ(Decide(p.get(), c.id), "all");
}

TEST(Policy, TagsAnyOfExact)
{
	Pol p = Parse(Rules("{\"name\":\"t\",\"action\":\"allow\","
	    "\"tags\":[\"tag:web\",\"tag:db\"]}"));
	ASSERT_NE(p, nullptr);
	Ident s(kServer), a(kAlice);
	Ident pre(Whois("x.", "tagged-devices", "[\"tag:dbx\"]", "[]"));
	EXPECT_STREQ(Decide(p.get(), s.id), "t");
	EXPECT_STREQ(Decide(p.get(), a.id), "(default)") << "no tags";
	EXPECT_STREQ(Decide(p.get(), pre.id), "(default)") << "not a glob";
}

TEST(Policy, UsersGlobCaseInsensitive)
{
	Pol p = Parse(Rules("{\"name\":\"u\",\"action\":\"allow\","
	    "\"users\":[\"*@EXAMPLE.com\",\"ops-?@corp.io\"]}"));
	ASSERT_NE(p, nullptr);
	Ident a(kAlice), o(Whois("o.", "ops-1@corp.io", "null", "[]"));
	Ident o2(Whois("o.", "ops-12@corp.io", "null", "[]"));
	Ident s(kServer);
	Ident none(Whois("n.", "", "null", "[]"));
	EXPECT_STREQ(Decide(p.get(), a.id), "u");
	EXPECT_STREQ(Decide(p.get(), o.id), "u");
	EXPECT_STREQ(Decide(p.get(), o2.id), "(default)");
	EXPECT_STREQ(Decide(p.get(), s.id), "(default)");
	EXPECT_STREQ(Decide(p.get(), none.id), "(default)");
}

TEST(Policy, NodesGlobWithoutTrailingDot)
{
	Pol p = Parse(Rules("{\"name\":\"n\",\"action\":\"allow\","
	    "\"nodes\":[\"prod-*.tail1234.ts.net\"]},"
	    "{\"name\":\"short\",\"action\":\"allow\",\"nodes\":[\"alice-*\"]}"));
	ASSERT_NE(p, nullptr);
	Ident s(kServer), a(kAlice);
	EXPECT_STREQ(s.id.pi_node, "prod-db-1.tail1234.ts.net");
	EXPECT_STREQ(Decide(p.get(), s.id), "n");
	EXPECT_STREQ(Decide(p.get(), a.id), "short") << "* spans dots";
}

TEST(Policy, AddrsPrefixesV4AndV6)
{
	Pol p = Parse(Rules(
	    "{\"name\":\"v6\",\"action\":\"allow\",\"addrs\":[\"fd7a:115c:a1e0::/120\"]},"
	    "{\"name\":\"v4\",\"action\":\"allow\",\"addrs\":[\"100.64.0.0/29\"]},"
	    "{\"name\":\"odd\",\"action\":\"allow\",\"addrs\":[\"100.101.102.96/27\"]},"
	    "{\"name\":\"host\",\"action\":\"allow\",\"addrs\":[\"100.1.1.1\"]},"
	    "{\"name\":\"zero\",\"action\":\"deny\",\"addrs\":[\"0.0.0.0/0\"]}"));
	ASSERT_NE(p, nullptr);
	Ident a(kAlice), s(kServer);
	Ident out(Whois("x.", "u", "null", "[\"100.64.0.8/32\"]"));
	Ident odd(Whois("x.", "u", "null", "[\"100.101.102.127/32\"]"));
	Ident odd2(Whois("x.", "u", "null", "[\"100.101.102.128/32\"]"));
	Ident host(Whois("x.", "u", "null", "[\"100.1.1.1/32\"]"));
	Ident v6only(Whois("x.", "u", "null", "[\"fd7a:115c:a1e0::1:1/128\"]"));
	EXPECT_STREQ(Decide(p.get(), a.id), "v6");
	EXPECT_STREQ(Decide(p.get(), s.id), "v4");
	EXPECT_STREQ(Decide(p.get(), out.id), "zero");
	EXPECT_STREQ(Decide(p.get(), odd.id), "odd");
	EXPECT_STREQ(Decide(p.get(), odd2.id), "zero");
	EXPECT_STREQ(Decide(p.get(), host.id), "host");
	EXPECT_STREQ(Decide(p.get(), v6only.id), "(default)")
	    << "a v4 /0 does not match v6";
}

TEST(Policy, CapsAndExpired)
{
	Pol p = Parse(Rules(
	    "{\"name\":\"expired\",\"action\":\"deny\",\"expired\":true},"
	    "{\"name\":\"relay-cap\",\"action\":\"allow\",\"caps\":[\"derp-relay\"]},"
	    "{\"name\":\"fresh\",\"action\":\"allow\",\"expired\":false,"
	    "\"tags\":[\"tag:prod\"]}"));
	ASSERT_NE(p, nullptr);
	Ident a(kAlice), s(kServer);
	Ident gone(Whois("x.", "u", "[\"tag:prod\"]", "[]", "{}",
	    "2020-01-01T00:00:00Z"));
	Ident flag(Whois("x.", "u", "[\"tag:prod\"]", "[]", "{}",
	    "0001-01-01T00:00:00Z", true));
	Ident later(Whois("x.", "u", "[\"tag:prod\"]", "[]", "{}",
	    "2099-01-01T00:00:00.5+02:00"));
	EXPECT_STREQ(Decide(p.get(), a.id), "relay-cap");
	EXPECT_STREQ(Decide(p.get(), s.id), "fresh");
	EXPECT_TRUE(gone.id.pi_expired);
	EXPECT_STREQ(Decide(p.get(), gone.id), "expired");
	EXPECT_STREQ(Decide(p.get(), flag.id), "expired");
	EXPECT_FALSE(later.id.pi_expired);
	EXPECT_STREQ(Decide(p.get(), later.id), "fresh");
}

TEST(Policy, EveryFieldMustMatch)
{
	Pol p = Parse(Rules("{\"name\":\"both\",\"action\":\"allow\","
	    "\"tags\":[\"tag:prod\"],\"addrs\":[\"100.64.0.0/10\"]}"));
	ASSERT_NE(p, nullptr);
	Ident s(kServer);
	Ident tagonly(Whois("x.", "u", "[\"tag:prod\"]", "[\"10.0.0.1/32\"]"));
	EXPECT_STREQ(Decide(p.get(), s.id), "both");
	EXPECT_STREQ(Decide(p.get(), tagonly.id), "(default)");
}

TEST(Policy, CountsCarryOverByName)
{
	Pol a = Parse(Rules("{\"name\":\"x\",\"action\":\"allow\"},"
	    "{\"name\":\"y\",\"action\":\"deny\"}"));
	Pol b = Parse(Rules("{\"name\":\"y\",\"action\":\"deny\"},"
	    "{\"name\":\"z\",\"action\":\"allow\"}"));
	ASSERT_TRUE(a && b);
	policy_count_match(a.get(), 0, 100);
	policy_count_match(a.get(), 1, 200);
	policy_count_match(a.get(), 1, 300);
	policy_count_match(a.get(), -1, 400);
	policy_carry_counts(b.get(), a.get());
	uint64_t m;
	int64_t last;
	policy_rule_stats(b.get(), 0, &m, &last);
	EXPECT_EQ(m, 2u);
	EXPECT_EQ(last, 300);
	policy_rule_stats(b.get(), 1, &m, &last);
	EXPECT_EQ(m, 0u);
	policy_rule_stats(b.get(), -1, &m, &last);
	EXPECT_EQ(m, 1u);
	EXPECT_EQ(last, 400);
}

TEST(Policy, IdentityFromWhois)
{
	Ident a(kAlice);
	EXPECT_STREQ(a.id.pi_node, "alice-laptop.tail1234.ts.net");
	EXPECT_STREQ(a.id.pi_user, "alice@example.com");
	EXPECT_EQ(a.id.pi_ntags, 0u);
	ASSERT_EQ(a.id.pi_naddrs, 2u);
	char buf[64];
	policy_addr_format(&a.id.pi_addrs[0], buf, sizeof(buf));
	EXPECT_STREQ(buf, "100.101.102.103");
	policy_addr_format(&a.id.pi_addrs[1], buf, sizeof(buf));
	EXPECT_STREQ(buf, "fd7a:115c:a1e0::1");
	ASSERT_EQ(a.id.pi_ncaps, 2u);
	EXPECT_STREQ(a.id.pi_caps[1], "derp-relay");
	EXPECT_EQ(a.id.pi_key_expiry, 0);
	EXPECT_FALSE(a.id.pi_expired);

	policy_ident id;
	char e[128];
	const char *bad[] = { "", "[]", "{}", "{\"Node\":null}", "nope" };
	for (const char *b : bad)
		EXPECT_EQ(policy_ident_parse(b, strlen(b), 0, &id, e,
		    sizeof(e)), -1) << b;
	// Odd types inside are ignored, not trusted.
	std::string odd = "{\"Node\":{\"Name\":5,\"Tags\":[1,\"tag:a\"],"
	    "\"Addresses\":[\"junk\",\"100.1.2.3/32\"]},\"UserProfile\":7}";
	ASSERT_EQ(policy_ident_parse(odd.data(), odd.size(), 0, &id, e,
	    sizeof(e)), 0) << e;
	EXPECT_EQ(id.pi_node, nullptr);
	EXPECT_EQ(id.pi_ntags, 1u);
	EXPECT_EQ(id.pi_naddrs, 1u);
	EXPECT_EQ(id.pi_user, nullptr);
	policy_ident_cleanup(&id);
}

TEST(Policy, ParseTime)
{
	int64_t t;
	ASSERT_EQ(policy_parse_time("1970-01-01T00:00:00Z", &t), 0);
	EXPECT_EQ(t, 0);
	ASSERT_EQ(policy_parse_time("2026-12-02T15:04:05.123456789Z", &t), 0);
	EXPECT_EQ(t, 1796223845);
	ASSERT_EQ(policy_parse_time("2026-12-02T17:04:05+02:00", &t), 0);
	EXPECT_EQ(t, 1796223845);
	ASSERT_EQ(policy_parse_time("0001-01-01T00:00:00Z", &t), 0);
	EXPECT_LT(t, 0);
	const char *bad[] = { "", "2026-12-02", "2026-13-02T00:00:00Z",
	    "2026-12-02T00:00:00", "2026-12-02T00:00:00Zx",
	    "2026-12-02T00:00:00.Z", "2026-12-02T00:00:00+0200" };
	for (const char *b : bad)
		EXPECT_EQ(policy_parse_time(b, &t), -1) << b;
}

TEST(Policy, AuditLineAndWebhookBody)
{
	Ident a(kAlice);
	uint8_t key[32];
	memset(key, 0xab, sizeof(key));
	auth_audit_rec r = {};
	r.ar_key = key;
	r.ar_src = "192.0.2.1";
	r.ar_reason = AUTH_POLICY_DENIED;
	r.ar_backend = "tailscaled";
	r.ar_rule = "no-contractors";
	r.ar_ident = &a.id;
	char *line = auth_audit_line(&r, 1796223845123LL, 3);
	ASSERT_NE(line, nullptr);
	std::string s(line);
	free(line);
	ASSERT_EQ(s.back(), '\n');
	EXPECT_EQ(s.find('\n'), s.size() - 1) << "one line";
	cJSON *j = cJSON_Parse(s.c_str());
	ASSERT_NE(j, nullptr) << s;
	EXPECT_STREQ(cJSON_GetObjectItem(j, "time")->valuestring,
	    "2026-12-02T15:04:05.123Z");
	EXPECT_STREQ(cJSON_GetObjectItem(j, "verdict")->valuestring, "deny");
	EXPECT_STREQ(cJSON_GetObjectItem(j, "reason")->valuestring,
	    "policy_denied");
	EXPECT_STREQ(cJSON_GetObjectItem(j, "rule")->valuestring,
	    "no-contractors");
	EXPECT_EQ(cJSON_GetObjectItem(j, "suppressed")->valuedouble, 3);
	std::string want = "nodekey:";
	for (int i = 0; i < 32; i++)
		want += "ab";
	EXPECT_EQ(std::string(cJSON_GetObjectItem(j, "key")->valuestring),
	    want);
	cJSON *id = cJSON_GetObjectItem(j, "identity");
	ASSERT_NE(id, nullptr);
	EXPECT_STREQ(cJSON_GetObjectItem(id, "user")->valuestring,
	    "alice@example.com");
	EXPECT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(id, "addrs")), 2);
	cJSON_Delete(j);

	char *body = auth_url_body_ident(key, "192.0.2.1", &a.id);
	ASSERT_NE(body, nullptr);
	j = cJSON_Parse(body);
	free(body);
	ASSERT_NE(j, nullptr);
	EXPECT_STREQ(cJSON_GetObjectItem(j, "Source")->valuestring, "192.0.2.1");
	ASSERT_NE(cJSON_GetObjectItem(j, "Identity"), nullptr);
	EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "Identity"),
	    "node")->valuestring, "alice-laptop.tail1234.ts.net");
	cJSON_Delete(j);
}

// The audit log's limiter: one line per (key, verdict) per interval, the
// rest counted; a new verdict for the key is a line of its own; what is
// queued is written before auth_audit_free returns.
TEST(Policy, AuditLimiterAndWriter)
{
	char path[] = "/tmp/policy_auditXXXXXX";
	int fd = mkstemp(path);
	ASSERT_NE(fd, -1);
	close(fd);
	char e[256];
	auth_audit *au = auth_audit_new(path, e, sizeof(e));
	ASSERT_NE(au, nullptr) << e;
	uint8_t k1[32], k2[32];
	memset(k1, 1, sizeof(k1));
	memset(k2, 2, sizeof(k2));
	auth_audit_rec r = {};
	r.ar_key = k1;
	r.ar_src = "127.0.0.1";
	r.ar_reason = AUTH_OK;
	r.ar_backend = "allowlist";
	r.ar_rule = "";
	for (int i = 0; i < 5; i++)
		auth_audit_note(au, &r);
	r.ar_reason = AUTH_NOT_IN_ALLOWLIST;
	auth_audit_note(au, &r);
	r.ar_key = k2;
	auth_audit_note(au, &r);
	uint64_t w, s, d, er;
	auth_audit_counts(au, &w, &s, &d, &er);
	EXPECT_EQ(s, 4u);
	EXPECT_EQ(d, 0u);
	ASSERT_EQ(auth_audit_reopen(au, e, sizeof(e)), 0) << e;
	auth_audit_free(au);
	FILE *f = fopen(path, "r");
	ASSERT_NE(f, nullptr);
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof(line), f) != nullptr) {
		cJSON *j = cJSON_Parse(line);
		EXPECT_NE(j, nullptr) << line;
		cJSON_Delete(j);
		n++;
	}
	fclose(f);
	unlink(path);
	EXPECT_EQ(n, 3) << "allow k1, deny k1, deny k2";

	EXPECT_EQ(auth_audit_new("/nonexistent/dir/audit.log", e, sizeof(e)),
	    nullptr);
	EXPECT_NE(std::string(e).find("-admission-log: /nonexistent/dir/"
	    "audit.log: No such file"), std::string::npos) << e;
}
