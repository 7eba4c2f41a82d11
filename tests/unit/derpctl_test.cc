// SPDX-License-Identifier: ISC
// derpctl_test.cc: derpctl's command grammar (admin/parser.c): every
// pattern in parse_cmds[], abbreviations, ambiguity, a keyword typed in
// full beating a longer one, required and optional arguments, extra and
// unknown words, and the key and key-prefix normalisers; and the text
// output (admin/output_text.c) of show mesh for a canned reply.
#include <cstring>
#include <string>
#include <vector>

#include <cjson/cJSON.h>
#include <gtest/gtest.h>

#include "output.h"
#include "parser.h"

namespace {

const std::string kHex(64, 'a');
const std::string kKey = "nodekey:" + kHex;
const std::string kMixed =
    "0123456789ABCDEFabcdef0123456789ABCDEFabcdef0123456789ABCDEFabcd";
const std::string kMixedLower =
    "0123456789abcdefabcdef0123456789abcdefabcdef0123456789abcdefabcd";

struct Parsed {
	int		 rc;
	parse_result	 res;
	std::string	 err;
};

Parsed
Parse(const std::vector<std::string> &words)
{
	std::vector<std::string> copy(words);
	std::vector<char *> argv;
	for (auto &w : copy)
		argv.push_back(&w[0]);
	argv.push_back(nullptr);

	Parsed p;
	char err[1024];
	memset(&p.res, 0, sizeof(p.res));
	memset(err, 'X', sizeof(err));
	p.rc = parse_command((int)copy.size(), argv.data(), &p.res, err,
	    sizeof(err));
	err[sizeof(err) - 1] = '\0';
	p.err = err;
	return p;
}

bool
Contains(const std::string &hay, const std::string &needle)
{
	return hay.find(needle) != std::string::npos;
}

std::string
Normalise(int (*fn)(const char *, char *, size_t), const std::string &in,
    int *rc)
{
	char out[128];
	memset(out, 0, sizeof(out));
	*rc = fn(in.c_str(), out, sizeof(out));
	return out;
}

// ---- the table ----

TEST(ParserTable, HasTheDocumentedCommandsInOrder)
{
	const char *want[] = {
		"show clients [prefix]", "show client <key>", "show rejects",
		"show stats", "show admission", "show mesh", "show certs",
		"kick <key>",
		"reload",
		"log verbose", "log brief", "monitor",
	};
	size_t n = 0;
	while (parse_cmds[n].cc_pattern != nullptr)
		n++;
	ASSERT_EQ(n, sizeof(want) / sizeof(want[0]));
	for (size_t i = 0; i < n; i++)
		EXPECT_STREQ(parse_cmds[i].cc_pattern, want[i]) << i;
}

struct FullCase {
	std::vector<std::string>	words;
	ctl_action			action;
	const char			*wire;
	const char			*pattern;
	size_t				nargs;
	const char			*argname;
	std::string			argvalue;
};

class ParserFull : public ::testing::TestWithParam<FullCase> {};

TEST_P(ParserFull, ResolvesToActionAndWire)
{
	const FullCase &c = GetParam();
	Parsed p = Parse(c.words);
	ASSERT_EQ(p.rc, 0) << p.err;
	ASSERT_NE(p.res.pr_cmd, nullptr);
	EXPECT_STREQ(p.res.pr_cmd->cc_pattern, c.pattern);
	EXPECT_EQ(p.res.pr_cmd->cc_action, c.action);
	EXPECT_STREQ(p.res.pr_wire, c.wire);
	ASSERT_EQ(p.res.pr_nargs, c.nargs);
	if (c.nargs == 1) {
		EXPECT_STREQ(p.res.pr_args[0].pa_name, c.argname);
		EXPECT_EQ(std::string(p.res.pr_args[0].pa_value), c.argvalue);
	}
}

INSTANTIATE_TEST_SUITE_P(EveryPattern, ParserFull, ::testing::Values(
    FullCase{{"show", "clients"}, CTL_SHOW_CLIENTS, "show clients",
	"show clients [prefix]", 0, nullptr, ""},
    FullCase{{"show", "clients", "AB"}, CTL_SHOW_CLIENTS, "show clients",
	"show clients [prefix]", 1, "prefix", "nodekey:ab"},
    FullCase{{"show", "client", kKey}, CTL_SHOW_CLIENT, "show client",
	"show client <key>", 1, "key", kKey},
    FullCase{{"show", "rejects"}, CTL_SHOW_REJECTS, "show rejects",
	"show rejects", 0, nullptr, ""},
    FullCase{{"show", "stats"}, CTL_SHOW_STATS, "show stats",
	"show stats", 0, nullptr, ""},
    FullCase{{"show", "admission"}, CTL_SHOW_ADMISSION, "show admission",
	"show admission", 0, nullptr, ""},
    FullCase{{"show", "mesh"}, CTL_SHOW_MESH, "show mesh", "show mesh", 0,
	nullptr, ""},
    FullCase{{"show", "certs"}, CTL_SHOW_CERTS, "show certs", "show certs",
	0, nullptr, ""},
    FullCase{{"kick", kMixed}, CTL_KICK, "kick", "kick <key>", 1, "key",
	"nodekey:" + kMixedLower},
    FullCase{{"reload"}, CTL_RELOAD, "reload", "reload", 0, nullptr, ""},
    FullCase{{"log", "verbose"}, CTL_LOG, "log verbose", "log verbose", 0,
	nullptr, ""},
    FullCase{{"log", "brief"}, CTL_LOG, "log brief", "log brief", 0,
	nullptr, ""},
    FullCase{{"monitor"}, CTL_MONITOR, "monitor", "monitor", 0, nullptr,
	""}));

// ---- abbreviations ----

TEST(ParserAbbrev, ShClIsShowClients)
{
	Parsed p = Parse({"sh", "cl"});
	ASSERT_EQ(p.rc, 0) << p.err;
	EXPECT_EQ(p.res.pr_cmd->cc_action, CTL_SHOW_CLIENTS);
	EXPECT_STREQ(p.res.pr_wire, "show clients");
	EXPECT_EQ(p.res.pr_nargs, 0u);
}

TEST(ParserAbbrev, ShClWithShortPrefix)
{
	// "ab" is not a key, so "show client <key>" drops out.
	Parsed p = Parse({"sh", "cl", "ab"});
	ASSERT_EQ(p.rc, 0) << p.err;
	EXPECT_EQ(p.res.pr_cmd->cc_action, CTL_SHOW_CLIENTS);
	ASSERT_EQ(p.res.pr_nargs, 1u);
	EXPECT_STREQ(p.res.pr_args[0].pa_name, "prefix");
	EXPECT_STREQ(p.res.pr_args[0].pa_value, "nodekey:ab");
}

TEST(ParserAbbrev, ShClientKeyIsShowClient)
{
	Parsed p = Parse({"sh", "client", kHex});
	ASSERT_EQ(p.rc, 0) << p.err;
	EXPECT_EQ(p.res.pr_cmd->cc_action, CTL_SHOW_CLIENT);
	EXPECT_STREQ(p.res.pr_wire, "show client");
	ASSERT_EQ(p.res.pr_nargs, 1u);
	EXPECT_STREQ(p.res.pr_args[0].pa_name, "key");
	EXPECT_EQ(std::string(p.res.pr_args[0].pa_value), kKey);
}

TEST(ParserAbbrev, MonIsMonitor)
{
	Parsed p = Parse({"mon"});
	ASSERT_EQ(p.rc, 0) << p.err;
	EXPECT_EQ(p.res.pr_cmd->cc_action, CTL_MONITOR);
	EXPECT_STREQ(p.res.pr_wire, "monitor");
}

TEST(ParserAbbrev, OtherShortForms)
{
	struct { std::vector<std::string> w; ctl_action a; const char *wire; }
	    cases[] = {
		{{"sh", "rej"}, CTL_SHOW_REJECTS, "show rejects"},
		{{"s", "st"}, CTL_SHOW_STATS, "show stats"},
		{{"sho", "a"}, CTL_SHOW_ADMISSION, "show admission"},
		{{"sh", "m"}, CTL_SHOW_MESH, "show mesh"},
		{{"rel"}, CTL_RELOAD, "reload"},
		{{"r"}, CTL_RELOAD, "reload"},
		{{"lo", "v"}, CTL_LOG, "log verbose"},
		{{"l", "b"}, CTL_LOG, "log brief"},
		{{"k", kKey}, CTL_KICK, "kick"},
	};
	for (const auto &c : cases) {
		Parsed p = Parse(c.w);
		ASSERT_EQ(p.rc, 0) << c.wire << ": " << p.err;
		EXPECT_EQ(p.res.pr_cmd->cc_action, c.a) << c.wire;
		EXPECT_STREQ(p.res.pr_wire, c.wire);
	}
}

// ---- ambiguity ----

TEST(ParserAmbiguous, ShAloneListsCandidates)
{
	// Every "show" command needs a second word, so the parser calls
	// this incomplete rather than ambiguous; either way, it lists them.
	Parsed p = Parse({"sh"});
	EXPECT_EQ(p.rc, -1);
	EXPECT_TRUE(Contains(p.err, "incomplete command")) << p.err;
	EXPECT_TRUE(Contains(p.err, "show client <key>")) << p.err;
	EXPECT_TRUE(Contains(p.err, "show clients [prefix]")) << p.err;
	EXPECT_TRUE(Contains(p.err, "show rejects")) << p.err;
	EXPECT_TRUE(Contains(p.err, "show stats")) << p.err;
	EXPECT_TRUE(Contains(p.err, "show admission")) << p.err;
	EXPECT_TRUE(Contains(p.err, "show mesh")) << p.err;
	EXPECT_FALSE(Contains(p.err, "kick")) << p.err;
	EXPECT_FALSE(Contains(p.err, "monitor")) << p.err;
}

TEST(ParserAmbiguous, LogAloneListsBothLevels)
{
	Parsed p = Parse({"log"});
	EXPECT_EQ(p.rc, -1);
	EXPECT_TRUE(Contains(p.err, "incomplete command")) << p.err;
	EXPECT_TRUE(Contains(p.err, "log verbose")) << p.err;
	EXPECT_TRUE(Contains(p.err, "log brief")) << p.err;
	EXPECT_FALSE(Contains(p.err, "show")) << p.err;
}

TEST(ParserAmbiguous, ShClWithWholeKeyLeavesTwo)
{
	// A whole key is both a valid [prefix] and a valid <key>, and "cl"
	// abbreviates both "clients" and "client".
	Parsed p = Parse({"sh", "cl", kKey});
	EXPECT_EQ(p.rc, -1);
	EXPECT_TRUE(Contains(p.err, "ambiguous")) << p.err;
	EXPECT_TRUE(Contains(p.err, "show clients [prefix]")) << p.err;
	EXPECT_TRUE(Contains(p.err, "show client <key>")) << p.err;
}

// ---- a keyword typed in full ----

TEST(ParserExact, ShowClientIsNotShowClients)
{
	Parsed p = Parse({"show", "client"});
	EXPECT_EQ(p.rc, -1);
	EXPECT_TRUE(Contains(p.err, "missing argument")) << p.err;
	EXPECT_TRUE(Contains(p.err, "show client <key>")) << p.err;
	EXPECT_FALSE(Contains(p.err, "show clients")) << p.err;
}

TEST(ParserExact, ShowClientWithPrefixIsABadKey)
{
	// Typed in full, "client" wants a whole key, not a prefix.
	Parsed p = Parse({"show", "client", "ab"});
	EXPECT_EQ(p.rc, -1);
	EXPECT_TRUE(Contains(p.err, "invalid key")) << p.err;
}

TEST(ParserExact, ShowClientWithKeyIsNotAmbiguous)
{
	Parsed p = Parse({"show", "client", kKey});
	ASSERT_EQ(p.rc, 0) << p.err;
	EXPECT_EQ(p.res.pr_cmd->cc_action, CTL_SHOW_CLIENT);
}

TEST(ParserExact, ShowClientsWithKeyIsAPrefix)
{
	Parsed p = Parse({"show", "clients", kKey});
	ASSERT_EQ(p.rc, 0) << p.err;
	EXPECT_EQ(p.res.pr_cmd->cc_action, CTL_SHOW_CLIENTS);
	ASSERT_EQ(p.res.pr_nargs, 1u);
	EXPECT_STREQ(p.res.pr_args[0].pa_name, "prefix");
	EXPECT_EQ(std::string(p.res.pr_args[0].pa_value), kKey);
}

// ---- arguments ----

TEST(ParserArgs, KickWithoutKeyIsMissingArgument)
{
	Parsed p = Parse({"kick"});
	EXPECT_EQ(p.rc, -1);
	EXPECT_TRUE(Contains(p.err, "missing argument")) << p.err;
	EXPECT_TRUE(Contains(p.err, "kick <key>")) << p.err;
}

TEST(ParserArgs, KickBadKey)
{
	Parsed p = Parse({"kick", "nodekey:abc"});
	EXPECT_EQ(p.rc, -1);
	EXPECT_TRUE(Contains(p.err, "invalid key")) << p.err;
	EXPECT_TRUE(Contains(p.err, "nodekey:abc")) << p.err;
}

TEST(ParserArgs, OptionalPrefixAbsentOrPresent)
{
	Parsed a = Parse({"show", "clients"});
	ASSERT_EQ(a.rc, 0) << a.err;
	EXPECT_EQ(a.res.pr_nargs, 0u);

	Parsed b = Parse({"show", "clients", "nodekey:"});
	ASSERT_EQ(b.rc, 0) << b.err;
	ASSERT_EQ(b.res.pr_nargs, 1u);
	EXPECT_STREQ(b.res.pr_args[0].pa_name, "prefix");
	EXPECT_STREQ(b.res.pr_args[0].pa_value, "nodekey:");

	Parsed c = Parse({"show", "clients", "nodekey:DeAd"});
	ASSERT_EQ(c.rc, 0) << c.err;
	ASSERT_EQ(c.res.pr_nargs, 1u);
	EXPECT_STREQ(c.res.pr_args[0].pa_value, "nodekey:dead");
}

TEST(ParserArgs, BadPrefix)
{
	Parsed p = Parse({"show", "clients", "xyz"});
	EXPECT_EQ(p.rc, -1);
	EXPECT_TRUE(Contains(p.err, "invalid prefix")) << p.err;
}

// ---- extra and unknown words ----

TEST(ParserExtra, ExtraWordsAreErrors)
{
	std::vector<std::vector<std::string>> cases = {
		{"reload", "now"},
		{"monitor", "x"},
		{"show", "stats", "x"},
		{"show", "rejects", "x"},
		{"show", "admission", "x"},
		{"log", "verbose", "x"},
		{"log", "brief", "x"},
		{"show", "clients", "ab", "cd"},
		{"show", "client", kKey, "x"},
		{"kick", kKey, "x"},
	};
	for (const auto &w : cases) {
		Parsed p = Parse(w);
		EXPECT_EQ(p.rc, -1) << w[0] << " " << w[1];
		EXPECT_TRUE(Contains(p.err, "unexpected argument")) << p.err;
	}
}

TEST(ParserUnknown, UnknownFirstWord)
{
	Parsed p = Parse({"frob"});
	EXPECT_EQ(p.rc, -1);
	EXPECT_TRUE(Contains(p.err, "unknown command \"frob\"")) << p.err;
	EXPECT_TRUE(Contains(p.err, "monitor")) << p.err;
}

TEST(ParserUnknown, UnknownSecondWord)
{
	Parsed p = Parse({"show", "frob"});
	EXPECT_EQ(p.rc, -1);
	EXPECT_TRUE(Contains(p.err, "unknown command \"show frob\""))
	    << p.err;
	EXPECT_TRUE(Contains(p.err, "show stats")) << p.err;
	EXPECT_FALSE(Contains(p.err, "monitor")) << p.err;
}

TEST(ParserUnknown, LongerThanKeywordIsUnknown)
{
	Parsed p = Parse({"reloads"});
	EXPECT_EQ(p.rc, -1);
	EXPECT_TRUE(Contains(p.err, "unknown command")) << p.err;
}

TEST(ParserUnknown, EmptyWordIsNotAPrefix)
{
	Parsed p = Parse({""});
	EXPECT_EQ(p.rc, -1);
	Parsed q = Parse({"show", ""});
	EXPECT_EQ(q.rc, -1);
}

TEST(ParserUnknown, KeywordsAreCaseSensitive)
{
	EXPECT_EQ(Parse({"RELOAD"}).rc, -1);
}

TEST(ParserUnknown, NoWords)
{
	Parsed p = Parse({});
	EXPECT_EQ(p.rc, -1);
	EXPECT_FALSE(p.err.empty());
}

// ---- parse_key ----

TEST(ParseKey, NodekeyPrefixed)
{
	int rc;
	EXPECT_EQ(Normalise(parse_key, kKey, &rc), kKey);
	EXPECT_EQ(rc, 0);
}

TEST(ParseKey, BareHex)
{
	int rc;
	EXPECT_EQ(Normalise(parse_key, kHex, &rc), kKey);
	EXPECT_EQ(rc, 0);
}

TEST(ParseKey, UpperCaseIsLowered)
{
	int rc;
	EXPECT_EQ(Normalise(parse_key, kMixed, &rc),
	    "nodekey:" + kMixedLower);
	EXPECT_EQ(rc, 0);
	EXPECT_EQ(Normalise(parse_key, "nodekey:" + std::string(64, 'F'),
	    &rc), "nodekey:" + std::string(64, 'f'));
	EXPECT_EQ(rc, 0);
}

TEST(ParseKey, Rejects)
{
	const std::string bad[] = {
		"",
		"nodekey:",
		std::string(63, 'a'),
		std::string(65, 'a'),
		"nodekey:" + std::string(63, 'a'),
		"nodekey:" + std::string(65, 'a'),
		std::string(63, 'a') + "g",
		"nodekey:" + std::string(63, 'a') + "z",
		"mkey:" + kHex,
		"discokey:" + kHex,
		"NODEKEY:" + kHex,
		"nodekey:nodekey:" + kHex,
		" " + kHex,
		kHex + " ",
		"0x" + std::string(62, 'a'),
	};
	for (const auto &s : bad) {
		int rc;
		Normalise(parse_key, s, &rc);
		EXPECT_EQ(rc, -1) << "\"" << s << "\"";
	}
}

TEST(ParseKey, OutputTooSmall)
{
	char out[72];
	EXPECT_EQ(parse_key(kHex.c_str(), out, sizeof(out)), -1);
	char ok[73];
	EXPECT_EQ(parse_key(kHex.c_str(), ok, sizeof(ok)), 0);
	EXPECT_EQ(std::string(ok), kKey);
}

// ---- parse_key_prefix ----

TEST(ParseKeyPrefix, Accepts)
{
	struct { std::string in, out; } cases[] = {
		{"ab", "nodekey:ab"},
		{"AB", "nodekey:ab"},
		{"a", "nodekey:a"},
		{"nodekey:ab", "nodekey:ab"},
		{"nodekey:AB", "nodekey:ab"},
		{"nodekey:", "nodekey:"},
		{kHex, kKey},
		{kKey, kKey},
	};
	for (const auto &c : cases) {
		int rc;
		EXPECT_EQ(Normalise(parse_key_prefix, c.in, &rc), c.out)
		    << c.in;
		EXPECT_EQ(rc, 0) << c.in;
	}
}

TEST(ParseKeyPrefix, Rejects)
{
	const std::string bad[] = {
		"",
		std::string(65, 'a'),
		"nodekey:" + std::string(65, 'a'),
		"xy",
		"abg",
		"nodekey:zz",
		"mkey:ab",
		"NODEKEY:ab",
		"nodekey",
		" ab",
	};
	for (const auto &s : bad) {
		int rc;
		Normalise(parse_key_prefix, s, &rc);
		EXPECT_EQ(rc, -1) << "\"" << s << "\"";
	}
}

// ---- text output ----

// What text_output.<method> prints for a reply line that arrived at now.
std::string
TextOf(void (*const output::*method)(const reply *), const std::string &line,
    time_t now)
{
	cJSON *msg = cJSON_Parse(line.c_str());
	EXPECT_NE(msg, nullptr) << line;
	reply r;
	memset(&r, 0, sizeof(r));
	r.r_msg = msg;
	r.r_body = cJSON_GetObjectItemCaseSensitive(msg, "result");
	r.r_line = line.c_str();
	r.r_linelen = line.size();
	r.r_time = now;
	testing::internal::CaptureStdout();
	(text_output.*method)(&r);
	fflush(stdout);
	std::string out = testing::internal::GetCapturedStdout();
	cJSON_Delete(msg);
	return out;
}

std::vector<std::string>
Lines(const std::string &s)
{
	std::vector<std::string> v;
	size_t from = 0, nl;
	while ((nl = s.find('\n', from)) != std::string::npos) {
		v.push_back(s.substr(from, nl - from));
		from = nl + 1;
	}
	return v;
}

// The cells of a table line: runs separated by two or more spaces.
std::vector<std::string>
Cells(const std::string &l)
{
	std::vector<std::string> v;
	size_t i = 0;
	while (i < l.size()) {
		size_t j = l.find("  ", i);
		if (j == std::string::npos)
			j = l.size();
		if (j > i)
			v.push_back(l.substr(i, j - i));
		i = j;
		while (i < l.size() && l[i] == ' ')
			i++;
	}
	return v;
}

TEST(TextMesh, OneLinePerPeerWithEveryColumn)
{
	const time_t now = 1748780000;
	const std::string line = "{\"v\":1,\"id\":1,\"ok\":true,\"result\":"
	    "{\"mesh\":[{\"host\":\"derp1b.example.com\","
	    "\"dial\":\"derp1b.example.com:443\",\"state\":\"connected\","
	    "\"since\":" + std::to_string(now - 312) + ",\"key\":\"" + kKey +
	    "\",\"worker\":1,\"routes\":1520,\"packets_out\":9120,"
	    "\"bytes_out\":3145728,\"drops\":0,\"inbound\":1,"
	    "\"packets_in\":8800,\"bytes_in\":2048,\"connects\":3,"
	    "\"reconnects\":2,\"last_error\":\"\"},"
	    "{\"host\":\"127.0.0.1:1\",\"dial\":\"127.0.0.1:1\","
	    "\"state\":\"backoff\",\"since\":" + std::to_string(now - 42) +
	    ",\"key\":null,\"worker\":0,\"routes\":0,\"packets_out\":0,"
	    "\"bytes_out\":0,\"drops\":5,\"inbound\":0,\"packets_in\":0,"
	    "\"bytes_in\":0,\"connects\":0,\"reconnects\":0,"
	    "\"last_error\":\"connect: Connection refused\"}]}}";
	std::string out = TextOf(&output::mesh, line, now);
	std::vector<std::string> l = Lines(out);
	ASSERT_EQ(l.size(), 3u) << out;
	EXPECT_EQ(Cells(l[0]), (std::vector<std::string>{ "HOST", "STATE",
	    "SINCE", "KEY", "ROUTES", "PKTS OUT", "BYTES OUT", "PKTS IN",
	    "BYTES IN", "RECONNECTS", "LAST ERROR" })) << out;
	EXPECT_EQ(Cells(l[1]), (std::vector<std::string>{
	    "derp1b.example.com", "connected", "5m12s",
	    "nodekey:aaaaaa\xe2\x80\xa6", "1520", "9120", "3.0M", "8800",
	    "2.0K", "2", "-" })) << out;
	EXPECT_EQ(Cells(l[2]), (std::vector<std::string>{ "127.0.0.1:1",
	    "backoff", "42s", "-", "0", "0", "0", "0", "0", "0",
	    "connect: Connection refused" })) << out;
	// Numbers right-aligned: ROUTES ends where its header ends.
	EXPECT_EQ(l[0].find("ROUTES") + 6, l[2].find(" 0  ") + 2) << out;
	// The last column is not padded.
	EXPECT_NE(l[1].back(), ' ') << out;
}

TEST(TextMesh, NoMeshWithIsAHeaderOnly)
{
	std::string out = TextOf(&output::mesh,
	    "{\"v\":1,\"id\":1,\"ok\":true,\"result\":{\"mesh\":[]}}", 0);
	std::vector<std::string> l = Lines(out);
	ASSERT_EQ(l.size(), 1u) << out;
	EXPECT_EQ(l[0].rfind("HOST", 0), 0u) << out;
}

TEST(TextMesh, MissingMembersShowAsDashes)
{
	std::string out = TextOf(&output::mesh,
	    "{\"v\":1,\"id\":1,\"ok\":true,\"result\":{\"mesh\":"
	    "[{\"host\":\"a\"}]}}", 0);
	std::vector<std::string> l = Lines(out);
	ASSERT_EQ(l.size(), 2u) << out;
	EXPECT_EQ(Cells(l[1]), (std::vector<std::string>{ "a", "-", "-", "-",
	    "-", "-", "-", "-", "-", "-", "-" })) << out;
}

}  // namespace
