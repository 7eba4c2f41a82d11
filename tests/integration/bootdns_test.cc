// SPDX-License-Identifier: ISC
// bootdns_test.cc: /bootstrap-dns against the real daemon, with names
// that resolve without a DNS server (address literals, localhost from
// /etc/hosts) and one that cannot resolve (.invalid, RFC 6761).
#include <string>

#include <cjson/cJSON.h>

#include "harness.h"

namespace {

class BootDnsTest : public DerpdTest {
protected:
	// Start and wait for the first refresh to be complete.
	bool StartNames(const std::string &pub, const std::string &unpub)
	{
		if (!d.Start({ "-bootstrap-dns-names=" + pub,
		    "-unpublished-bootstrap-dns-names=" + unpub }))
			return false;
		return d.WaitMetricAtLeast("derpd_bootstrap_dns_refreshes", 1,
		    30000) >= 1;
	}
};

}  // namespace

// Published names: derper's JSON byte for byte (one address each, so the
// order is fixed); the name that failed is left out, logged and counted.
TEST_F(BootDnsTest, PublishedNamesAsDerperWritesThem)
{
	ASSERT_TRUE(StartNames("127.0.0.9,nonexistent.invalid,::1", ""));
	HttpResponse r = d.Get("/bootstrap-dns");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(r.status, 200);
	EXPECT_EQ(r.Header("content-type"), "application/json");
	EXPECT_EQ(r.Header("x-content-type-options"), "nosniff");
	EXPECT_EQ(r.body, "{\n\t\"127.0.0.9\": [\n\t\t\"127.0.0.9\"\n\t],\n"
	    "\t\"::1\": [\n\t\t\"::1\"\n\t]\n}");
	EXPECT_GE(d.Metric("derpd_bootstrap_dns_lookup_failures"), 1);
	EXPECT_NE(d.Log().find("bootstrap DNS lookup \"nonexistent.invalid\""),
	    std::string::npos);
	EXPECT_EQ(d.Metric("bootstrap_dns_requests"), 1);
}

// localhost comes from /etc/hosts; its addresses include 127.0.0.1.
TEST_F(BootDnsTest, LocalhostFromHostsFile)
{
	ASSERT_TRUE(StartNames("localhost", ""));
	HttpResponse r = d.Get("/bootstrap-dns");
	ASSERT_TRUE(r.ok) << r.err;
	cJSON *j = cJSON_Parse(r.body.c_str());
	ASSERT_TRUE(cJSON_IsObject(j)) << r.body;
	cJSON *ips = cJSON_GetObjectItemCaseSensitive(j, "localhost");
	bool found = false;
	cJSON *ip;
	cJSON_ArrayForEach(ip, ips)
		found |= cJSON_IsString(ip) &&
		    std::string(ip->valuestring) == "127.0.0.1";
	EXPECT_TRUE(found) << r.body;
	cJSON_Delete(j);
}

// Every name failed: Go marshals the empty map as null. No names: an
// empty body.
TEST_F(BootDnsTest, NothingResolvedIsNullNoNamesIsEmpty)
{
	ASSERT_TRUE(StartNames("nonexistent.invalid", ""));
	EXPECT_EQ(d.Get("/bootstrap-dns").body, "null");
	d.Stop();
	ASSERT_TRUE(d.Start());
	HttpResponse r = d.Get("/bootstrap-dns");
	EXPECT_EQ(r.status, 200);
	EXPECT_EQ(r.body, "");
}

// Unpublished names: served only to a request that asks for one (q=),
// and then only that one; anything else gets the published list.
// derper's counters say which.
TEST_F(BootDnsTest, UnpublishedOnlyWhenAskedFor)
{
	ASSERT_TRUE(StartNames("127.0.0.9", "127.0.0.7,nonexistent.invalid,"
	    "127.0.0.6/rollout.invalid"));
	const std::string pub = "{\n\t\"127.0.0.9\": [\n\t\t\"127.0.0.9\"\n"
	    "\t]\n}";
	EXPECT_EQ(d.Get("/bootstrap-dns").body, pub);
	EXPECT_EQ(d.Get("/bootstrap-dns?q=127.0.0.7").body,
	    "{\n\t\"127.0.0.7\": [\n\t\t\"127.0.0.7\"\n\t]\n}");
	EXPECT_EQ(d.Get("/bootstrap-dns?x=1&q=127%2E0.0.7").body,
	    "{\n\t\"127.0.0.7\": [\n\t\t\"127.0.0.7\"\n\t]\n}");
	EXPECT_EQ(d.Get("/bootstrap-dns?q=127.0.0.9").body, pub);
	EXPECT_EQ(d.Get("/bootstrap-dns?q=nonexistent.invalid").body, pub);
	// A rollout entry: derpd reads no TXT record, so 0%: not served.
	EXPECT_EQ(d.Get("/bootstrap-dns?q=127.0.0.6").body, pub);
	EXPECT_EQ(d.Metric("bootstrap_dns_requests"), 6);
	EXPECT_EQ(d.Metric("bootstrap_dns_unpublished_hits"), 3);
	EXPECT_EQ(d.Metric("bootstrap_dns_unpublished_percent_misses"), 1);
	EXPECT_EQ(d.Metric("bootstrap_dns_published_hits"), 1);
	EXPECT_EQ(d.Metric("bootstrap_dns_unpublished_misses"), 2);
	EXPECT_EQ(d.Metric("bootstrap_dns_queried_domains"), 4);
}
