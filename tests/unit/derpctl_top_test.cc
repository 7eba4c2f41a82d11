// SPDX-License-Identifier: ISC
// derpctl_top_test.cc: derpctl top's rates (admin/top.c top_rate) from two
// canned show clients replies, and its frame (top_render): header,
// totals, order, the height and width limits, no escapes off a terminal.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <cjson/cJSON.h>
#include <gtest/gtest.h>

#include "top.h"

namespace {

std::string
Key(char c)
{
	return "nodekey:" + std::string(64, c);
}

std::string
Conn(char c, const char *addr, int since, int pin, int pout, int bin,
    int bout, int drops)
{
	char b[512];
	snprintf(b, sizeof(b), "{\"key\":\"%s\",\"addr\":\"%s\","
	    "\"connected_since\":%d,\"packets_in\":%d,\"packets_out\":%d,"
	    "\"bytes_in\":%d,\"bytes_out\":%d,\"drops\":%d}", Key(c).c_str(),
	    addr, since, pin, pout, bin, bout, drops);
	return b;
}

struct Json {
	explicit Json(const std::string &s) : j(cJSON_Parse(s.c_str())) {}
	~Json() { cJSON_Delete(j); }
	cJSON *j;
};

std::string
Render(const top_frame &tf, const std::vector<top_row> &rows)
{
	char *buf = nullptr;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	top_render(f, &tf, rows.data(), rows.size());
	fclose(f);
	std::string s(buf, len);
	free(buf);
	return s;
}

TEST(DerpctlTop, RatesBusiestFirst)
{
	Json prev("[" + Conn('a', "192.0.2.1:1", 100, 10, 10, 1000, 1000, 0) +
	    "," + Conn('b', "192.0.2.2:2", 100, 0, 0, 0, 0, 5) + "," +
	    Conn('c', "192.0.2.3:3", 100, 50, 0, 5000, 0, 0) + "]");
	// a: +20 in, +2048 bytes in over 2 s; b: +4 drops; c reconnected
	// (new connected_since): its counters count from 0; d is new.
	Json cur("[" + Conn('a', "192.0.2.1:1", 100, 30, 10, 3048, 1000, 0) +
	    "," + Conn('b', "192.0.2.2:2", 100, 0, 0, 0, 0, 9) + "," +
	    Conn('c', "192.0.2.3:3", 150, 2, 0, 200, 0, 0) + "," +
	    Conn('d', "192.0.2.4:4", 150, 0, 8, 0, 8192, 0) + "]");
	ASSERT_NE(prev.j, nullptr);
	ASSERT_NE(cur.j, nullptr);
	std::vector<top_row> rows(8);
	size_t total = 0;
	size_t n = top_rate(prev.j, cur.j, 2.0, rows.data(), rows.size(),
	    &total);
	ASSERT_EQ(n, 4u);
	EXPECT_EQ(total, 4u);
	// d (4096 B/s) > a (1024 B/s) > c (100 B/s) > b (drops only).
	EXPECT_EQ(rows[0].tr_key, Key('d'));
	EXPECT_DOUBLE_EQ(rows[0].tr_pps_out, 4);
	EXPECT_DOUBLE_EQ(rows[0].tr_bps_out, 4096);
	EXPECT_EQ(rows[1].tr_key, Key('a'));
	EXPECT_DOUBLE_EQ(rows[1].tr_pps_in, 10);
	EXPECT_DOUBLE_EQ(rows[1].tr_bps_in, 1024);
	EXPECT_DOUBLE_EQ(rows[1].tr_pps_out, 0);
	EXPECT_EQ(rows[2].tr_key, Key('c'));
	EXPECT_DOUBLE_EQ(rows[2].tr_pps_in, 1);
	EXPECT_EQ(rows[3].tr_key, Key('b'));
	EXPECT_DOUBLE_EQ(rows[3].tr_dps, 2);
	EXPECT_EQ(rows[3].tr_drops, 9u);
	for (size_t i = 0; i < n; i++)
		EXPECT_TRUE(rows[i].tr_rated);

	// max bounds the rows, not the total.
	n = top_rate(prev.j, cur.j, 2.0, rows.data(), 2, &total);
	EXPECT_EQ(n, 2u);
	EXPECT_EQ(total, 4u);

	// The first sample has no rates.
	n = top_rate(nullptr, cur.j, 0, rows.data(), rows.size(), nullptr);
	ASSERT_EQ(n, 4u);
	for (size_t i = 0; i < n; i++)
		EXPECT_FALSE(rows[i].tr_rated);
}

TEST(DerpctlTop, EmptyAndMalformed)
{
	Json empty("[]"), junk("[1,\"x\",{\"key\":7}]");
	std::vector<top_row> rows(4);
	size_t total = 9;
	EXPECT_EQ(top_rate(nullptr, empty.j, 1, rows.data(), 4, &total), 0u);
	EXPECT_EQ(total, 0u);
	// Members missing or mistyped show as "-" and count as 0.
	EXPECT_EQ(top_rate(junk.j, junk.j, 1, rows.data(), 4, &total), 3u);
	EXPECT_EQ(std::string(rows[0].tr_key), "-");
}

TEST(DerpctlTop, Frame)
{
	std::vector<top_row> rows(3);
	for (size_t i = 0; i < rows.size(); i++) {
		snprintf(rows[i].tr_key, sizeof(rows[i].tr_key), "%s",
		    Key((char)('a' + i)).c_str());
		snprintf(rows[i].tr_addr, sizeof(rows[i].tr_addr),
		    "192.0.2.%zu:41641", i + 1);
		rows[i].tr_rated = 1;
		rows[i].tr_pps_in = 10;
		rows[i].tr_bps_in = 1536;
		rows[i].tr_drops = 7;
	}
	top_frame tf;
	memset(&tf, 0, sizeof(tf));
	tf.tf_socket = "/run/derpd/derpd.sock";
	tf.tf_interval_ms = 2000;
	tf.tf_clients = 3;
	std::string s = Render(tf, rows);
	EXPECT_EQ(s.rfind("derpctl top - /run/derpd/derpd.sock - ", 0), 0u)
	    << s;
	EXPECT_NE(s.find("every 2s"), std::string::npos) << s;
	EXPECT_NE(s.find("clients 3; per second: in 30 pkts 4.5K bytes"),
	    std::string::npos) << s;
	EXPECT_NE(s.find("PKTS/S IN"), std::string::npos);
	EXPECT_NE(s.find("nodekey:aaaaaa "), std::string::npos) << s;
	EXPECT_EQ(s.find("nodekey:aaaaaaa"), std::string::npos) << s;
	EXPECT_NE(s.find("1.5K"), std::string::npos) << s;
	EXPECT_EQ(s.find('\033'), std::string::npos);

	// A terminal 6 lines high: the header and one row, then "(2 more)";
	// 40 columns wide: no line longer.
	tf.tf_ansi = 1;
	tf.tf_height = 6;
	tf.tf_width = 40;
	s = Render(tf, rows);
	EXPECT_EQ(s.rfind("\033[H", 0), 0u);
	EXPECT_NE(s.find("nodekey:aaaaaa"), std::string::npos) << s;
	EXPECT_EQ(s.find("nodekey:bbbbbb"), std::string::npos) << s;
	EXPECT_NE(s.find("(2 more)"), std::string::npos) << s;
	size_t b = 3, e;	// after the cursor-home escape
	while ((e = s.find('\n', b)) != std::string::npos) {
		std::string l = s.substr(b, e - b);
		size_t k = l.find("\033[K");
		EXPECT_LE(k == std::string::npos ? l.size() : k, 40u) << l;
		b = e + 1;
	}

	// Unrated rows show "-".
	rows[0].tr_rated = 0;
	tf.tf_ansi = 0;
	tf.tf_height = tf.tf_width = 0;
	s = Render(tf, std::vector<top_row>(rows.begin(), rows.begin() + 1));
	EXPECT_NE(s.find("in - pkts - bytes"), std::string::npos) << s;
}

} // namespace
