// SPDX-License-Identifier: ISC
// mesh_test.cc: the --mesh-with list (derper's host[:port][/dialhost]).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "mesh.h"

namespace {

struct Want {
	const char *host, *name, *dial, *port;
};

void
Check(const char *list, const std::vector<Want> &want)
{
	struct mesh_target t[MESH_MAX_PEERS];
	size_t n = 99;
	char err[256] = "";
	ASSERT_EQ(0, mesh_parse_list(list, t, MESH_MAX_PEERS, &n, err,
	    sizeof(err))) << list << ": " << err;
	ASSERT_EQ(want.size(), n) << list;
	for (size_t i = 0; i < n; i++) {
		EXPECT_STREQ(want[i].host, t[i].mt_host) << list << " #" << i;
		EXPECT_STREQ(want[i].name, t[i].mt_name) << list << " #" << i;
		EXPECT_STREQ(want[i].dial, t[i].mt_dial) << list << " #" << i;
		EXPECT_STREQ(want[i].port, t[i].mt_port) << list << " #" << i;
	}
}

std::string
Err(const char *list, size_t max = MESH_MAX_PEERS)
{
	struct mesh_target t[MESH_MAX_PEERS];
	size_t n;
	char err[256] = "";
	EXPECT_EQ(-1, mesh_parse_list(list, t, max, &n, err, sizeof(err)))
	    << list;
	EXPECT_NE(err[0], '\0') << list;
	return err;
}

TEST(MeshList, Forms)
{
	Check("", {});
	Check("derp1.example.net", {
	    { "derp1.example.net", "derp1.example.net", "derp1.example.net",
	    "443" } });
	// host:port is the URL's host; dialhost replaces the host only.
	Check("derp2.example.net:8443/10.0.0.2,127.0.0.1:3340", {
	    { "derp2.example.net:8443", "derp2.example.net", "10.0.0.2", "8443" },
	    { "127.0.0.1:3340", "127.0.0.1", "127.0.0.1", "3340" } });
	Check("[::1]:3340,[fd00::1],::1/[::2]", {
	    { "[::1]:3340", "::1", "::1", "3340" },
	    { "[fd00::1]", "fd00::1", "fd00::1", "443" },
	    { "::1", "::1", "::2", "443" } });
}

TEST(MeshList, Refusals)
{
	EXPECT_NE(Err("a,").find("empty entry"), std::string::npos);
	EXPECT_NE(Err(",a").find("empty entry"), std::string::npos);
	EXPECT_NE(Err("a/b/c").find("too many components"), std::string::npos);
	EXPECT_NE(Err("/b").find("bad entry"), std::string::npos);
	EXPECT_NE(Err("a:0").find("bad port"), std::string::npos);
	EXPECT_NE(Err("a:x").find("bad port"), std::string::npos);
	EXPECT_NE(Err(":443").find("no host"), std::string::npos);
	EXPECT_NE(Err("[::1]x").find("bad host"), std::string::npos);
	EXPECT_NE(Err("a/[b").find("bad dial host"), std::string::npos);
	EXPECT_NE(Err("a,b,c", 2).find("more than 2"), std::string::npos);
	std::string longname(600, 'x');
	EXPECT_NE(Err(longname.c_str()).find("too long"), std::string::npos);
}

} // namespace
