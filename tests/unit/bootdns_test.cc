// SPDX-License-Identifier: ISC
// bootdns_test.cc: /bootstrap-dns bodies byte for byte as derper writes
// them (Go's json.MarshalIndent with a tab), and derper's rules for
// answering a request from a refresh's results.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "bootdns.h"

namespace {

struct Ent {
	std::string name;
	std::vector<std::string> ips;
};

std::string
Json(std::vector<Ent> in)
{
	std::vector<struct bootdns_entry> e(in.size());
	std::vector<std::vector<char *>> ptrs(in.size());
	size_t len = 0;

	for (size_t i = 0; i < in.size(); i++) {
		e[i].be_name = &in[i].name[0];
		for (auto &ip : in[i].ips)
			ptrs[i].push_back(&ip[0]);
		e[i].be_ips = ptrs[i].data();
		e[i].be_nips = ptrs[i].size();
	}
	char *j = bootdns_json(e.data(), e.size(), &len);
	std::string s(j, len);
	free(j);
	EXPECT_EQ(s.size(), strlen(s.c_str()));
	return s;
}

}  // namespace

TEST(BootDns, GoIndentedJsonWithSortedNames)
{
	EXPECT_EQ(Json({ { "localhost", { "127.0.0.1", "::1" } },
	    { "derp.example", { "192.0.2.1" } } }),
	    "{\n\t\"derp.example\": [\n\t\t\"192.0.2.1\"\n\t],\n"
	    "\t\"localhost\": [\n\t\t\"127.0.0.1\",\n\t\t\"::1\"\n\t]\n}");
	// No name resolved: Go marshals the nil map as null.
	EXPECT_EQ(Json({}), "null");
	// An empty list, and Go's escapes for <, >, & and quotes.
	EXPECT_EQ(Json({ { "a<b>&\"c\\", {} } }),
	    "{\n\t\"a\\u003cb\\u003e\\u0026\\\"c\\\\\": []\n}");
	EXPECT_EQ(Json({ { "t\tn\x01", { "1" } } }),
	    "{\n\t\"t\\tn\\u0001\": [\n\t\t\"1\"\n\t]\n}");
}
