// SPDX-License-Identifier: ISC
// config_test.cc: derper-compatible flags (PROTOCOL.md 11) and config_finish.
#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "acme.h"
#include "config.h"
#include "tmpdir.h"

namespace {

class Config : public ::testing::Test {
protected:
	void SetUp() override
	{
		// config_finish reads $HOME and $XDG_CACHE_HOME; point them
		// at an empty private directory so the host does not leak in.
		const char *h = getenv("HOME"), *x = getenv("XDG_CACHE_HOME");
		had_home_ = h != nullptr;
		had_xdg_ = x != nullptr;
		if (h)
			old_home_ = h;
		if (x)
			old_xdg_ = x;
		home_ = tmp_.path();
		ASSERT_FALSE(home_.empty());
		setenv("HOME", home_.c_str(), 1);
		unsetenv("XDG_CACHE_HOME");
		config_defaults(&c_);
	}

	void TearDown() override
	{
		if (had_home_)
			setenv("HOME", old_home_.c_str(), 1);
		else
			unsetenv("HOME");
		if (had_xdg_)
			setenv("XDG_CACHE_HOME", old_xdg_.c_str(), 1);
	}

	enum config_result Parse(std::vector<std::string> args)
	{
		std::vector<std::string> all = { "derpd" };
		all.insert(all.end(), args.begin(), args.end());
		std::vector<char *> argv;
		for (std::string &s : all)
			argv.push_back(&s[0]);
		argv.push_back(nullptr);
		err_[0] = '\0';
		return config_parse(&c_, (int)all.size(), argv.data(), err_,
		    sizeof(err_));
	}

	// Parse must fail; returns the message.
	std::string ParseErr(std::vector<std::string> args)
	{
		config_defaults(&c_);
		EXPECT_EQ(Parse(args), CONFIG_ERROR) << Join(args);
		EXPECT_NE(err_[0], '\0') << Join(args);
		return err_;
	}

	int Finish()
	{
		err_[0] = '\0';
		return config_finish(&c_, err_, sizeof(err_));
	}

	static std::string Join(const std::vector<std::string> &v)
	{
		std::string s;
		for (const std::string &a : v)
			s += a + " ";
		return s;
	}

	struct derpd_conf c_;
	char err_[512];
	TmpDir tmp_{"derpd-config-"};
	std::string home_, old_home_, old_xdg_;
	bool had_home_ = false, had_xdg_ = false;
};

}  // namespace

TEST_F(Config, Defaults)
{
	EXPECT_STREQ(c_.dc_addr, ":443");
	EXPECT_EQ(c_.dc_http_port, 80);
	EXPECT_EQ(c_.dc_stun_port, 3478);
	EXPECT_TRUE(c_.dc_stun);
	EXPECT_TRUE(c_.dc_derp);
	EXPECT_FALSE(c_.dc_dev);
	EXPECT_STREQ(c_.dc_certmode, "letsencrypt");
	EXPECT_STREQ(c_.dc_hostname, "derp.tailscale.com");
	EXPECT_STREQ(c_.dc_key_path, "");
	EXPECT_STREQ(c_.dc_home, "");
	EXPECT_EQ(c_.dc_tcp_keepalive_ms, 10 * 60 * 1000);
	EXPECT_EQ(c_.dc_tcp_user_timeout_ms, 15 * 1000);
	EXPECT_EQ(c_.dc_tcp_write_timeout_ms, 2 * 1000);
	EXPECT_EQ(Parse({}), CONFIG_OK);
}

TEST_F(Config, GoFlagSyntax)
{
	ASSERT_EQ(Parse({ "-a", ":3340" }), CONFIG_OK) << err_;
	EXPECT_STREQ(c_.dc_addr, ":3340");

	config_defaults(&c_);
	ASSERT_EQ(Parse({ "--a=:3341" }), CONFIG_OK) << err_;
	EXPECT_STREQ(c_.dc_addr, ":3341");

	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-a=127.0.0.1:0", "--stun=false", "--derp=false" }),
	    CONFIG_OK) << err_;
	EXPECT_STREQ(c_.dc_addr, "127.0.0.1:0");
	EXPECT_FALSE(c_.dc_stun);
	EXPECT_FALSE(c_.dc_derp);

	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-stun=false" }), CONFIG_OK) << err_;
	EXPECT_FALSE(c_.dc_stun);
	ASSERT_EQ(Parse({ "-stun" }), CONFIG_OK) << err_;
	EXPECT_TRUE(c_.dc_stun);

	config_defaults(&c_);
	ASSERT_EQ(Parse({ "--stun-port", "0", "-http-port=-1" }), CONFIG_OK)
	    << err_;
	EXPECT_EQ(c_.dc_stun_port, 0);
	EXPECT_EQ(c_.dc_http_port, -1);

	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-tcp-write-timeout=500ms", "-tcp-user-timeout",
	    "1m30s", "--tcp-keepalive-time=0" }), CONFIG_OK) << err_;
	EXPECT_EQ(c_.dc_tcp_write_timeout_ms, 500);
	EXPECT_EQ(c_.dc_tcp_user_timeout_ms, 90000);
	EXPECT_EQ(c_.dc_tcp_keepalive_ms, 0);

	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/x.key", "-certmode", "manual",
	    "-certdir=/etc/derp", "-hostname", "derp.example.com", "-home",
	    "blank", "-mesh-psk-file", "/etc/mesh.key", "-dev", "-verbose",
	    "-workers", "3" }), CONFIG_OK) << err_;
	EXPECT_STREQ(c_.dc_key_path, "/tmp/x.key");
	EXPECT_STREQ(c_.dc_certmode, "manual");
	EXPECT_STREQ(c_.dc_certdir, "/etc/derp");
	EXPECT_STREQ(c_.dc_hostname, "derp.example.com");
	EXPECT_STREQ(c_.dc_home, "blank");
	EXPECT_STREQ(c_.dc_mesh_psk_file, "/etc/mesh.key");
	EXPECT_TRUE(c_.dc_dev);
	EXPECT_TRUE(c_.dc_verbose);
	EXPECT_EQ(c_.dc_workers, 3);
}

TEST_F(Config, BoolValues)
{
	const char *t[] = { "1", "t", "T", "true", "TRUE", "True" };
	const char *f[] = { "0", "f", "F", "false", "FALSE", "False" };
	for (const char *v : t) {
		config_defaults(&c_);
		c_.dc_stun = false;
		ASSERT_EQ(Parse({ std::string("-stun=") + v }), CONFIG_OK) << v;
		EXPECT_TRUE(c_.dc_stun) << v;
	}
	for (const char *v : f) {
		config_defaults(&c_);
		ASSERT_EQ(Parse({ std::string("--stun=") + v }), CONFIG_OK) << v;
		EXPECT_FALSE(c_.dc_stun) << v;
	}
	std::string e = ParseErr({ "-stun=maybe" });
	EXPECT_NE(e.find("stun"), std::string::npos) << e;
	ParseErr({ "-stun=" });
	ParseErr({ "-stun=yes" });
}

TEST_F(Config, LaterFlagWins)
{
	ASSERT_EQ(Parse({ "-a", ":1", "-a", ":2" }), CONFIG_OK);
	EXPECT_STREQ(c_.dc_addr, ":2");
}

TEST_F(Config, UnknownFlagNamed)
{
	std::string e = ParseErr({ "-bogus" });
	EXPECT_NE(e.find("bogus"), std::string::npos) << e;
	e = ParseErr({ "--no-such-flag=1" });
	EXPECT_NE(e.find("no-such-flag"), std::string::npos) << e;
	e = ParseErr({ "-a", ":1", "-Stun" });
	EXPECT_NE(e.find("Stun"), std::string::npos) << e;
	ParseErr({ "---a=:1" });
	ParseErr({ "-=x" });
}

TEST_F(Config, UnsupportedDerperFlags)
{
	const std::vector<std::vector<std::string>> cases = {
		{ "-secrets-url=https://setec" },
		{ "-ace" },
	};
	for (const auto &args : cases) {
		std::string name = args[0].substr(args[0].find_first_not_of('-'));
		name = name.substr(0, name.find('='));
		std::string e = ParseErr(args);
		EXPECT_NE(e.find(name), std::string::npos) << e;
		EXPECT_NE(e.find("not supported yet"), std::string::npos) << e;
		EXPECT_NE(e.find("only derper's default"), std::string::npos)
		    << e;
	}
	// Not the default: refused.
	for (const auto &args : std::vector<std::vector<std::string>>{
	    { "-ace=true" },
	    { "-secrets-path-prefix", "dev/derp" },
	    { "-secrets-cache-dir=/var/cache/x" } }) {
		std::string e = ParseErr(args);
		EXPECT_NE(e.find("not supported yet"), std::string::npos) << e;
	}
}

// derper's defaults for the flags derpd lacks are accepted and change
// nothing, so a unit file or entrypoint that passes every flag works.
TEST_F(Config, DerperDefaultsOfUnsupportedFlagsAreAccepted)
{
	std::string cache = std::string(getenv("HOME") ? getenv("HOME") : "") +
	    "/.cache/derper-secrets";
	const std::vector<std::vector<std::string>> cases = {
		{ "-ace=false" },
		{ "--acme-ip-certs=f" }, { "-acme-email=" }, { "-acme-eab-kid", "" },
		{ "-acme-eab-key=" }, { "-secrets-url=" },
		{ "-secrets-path-prefix", "prod/derp" },
		{ "-secrets-cache-dir=" + cache },
		{ "-bootstrap-dns-names=" },
		{ "-unpublished-bootstrap-dns-names", "" },
		{ "-accept-connection-limit", "+Inf" },
		{ "-accept-connection-limit=inf" },
		{ "-accept-connection-limit=Infinity" },
		{ "-accept-connection-burst=9223372036854775807" },
		{ "-rate-config", "" },
		{ "-mesh-with", "" },
	};
	for (const auto &args : cases) {
		config_defaults(&c_);
		EXPECT_EQ(Parse(args), CONFIG_OK) << Join(args) << ": " << err_;
	}
}

// The limit flags are derper's: a float (with Go's Inf spellings) and an
// int64; nonsense names the flag.
TEST_F(Config, AcceptLimitFlags)
{
	config_defaults(&c_);
	EXPECT_TRUE(std::isinf(c_.dc_accept_limit));
	EXPECT_EQ(c_.dc_accept_burst, INT64_MAX);
	ASSERT_EQ(Parse({ "-accept-connection-limit=2.5",
	    "-accept-connection-burst", "9223372036854775806",
	    "-rate-config=/etc/rate.json", "-bootstrap-dns-names=a,b",
	    "-unpublished-bootstrap-dns-names", "c/d" }), CONFIG_OK) << err_;
	EXPECT_EQ(c_.dc_accept_limit, 2.5);
	EXPECT_EQ(c_.dc_accept_burst, INT64_MAX - 1);
	EXPECT_STREQ(c_.dc_rate_config, "/etc/rate.json");
	EXPECT_STREQ(c_.dc_bootstrap_dns, "a,b");
	EXPECT_STREQ(c_.dc_unpublished_dns, "c/d");
	for (const char *bad : { "-accept-connection-limit=x",
	    "-accept-connection-limit=NaN", "-accept-connection-limit=",
	    "-accept-connection-burst=1.5",
	    "-accept-connection-burst=99999999999999999999" }) {
		std::string e = ParseErr({ bad });
		EXPECT_NE(e.find("accept-connection"), std::string::npos) << e;
	}
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-dev", "-accept-connection-limit=-1" }), CONFIG_OK);
	ASSERT_EQ(config_finish(&c_, err_, sizeof(err_)), -1);
	EXPECT_NE(std::string(err_).find("-accept-connection-limit"),
	    std::string::npos) << err_;
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-dev", "-accept-connection-burst=-1" }), CONFIG_OK);
	ASSERT_EQ(config_finish(&c_, err_, sizeof(err_)), -1);
	EXPECT_NE(std::string(err_).find("-accept-connection-burst"),
	    std::string::npos) << err_;
}

// -mesh-with is derper's list; a bad list names the flag and the entry.
TEST_F(Config, MeshWith)
{
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", "127.0.0.1:0", "-mesh-with",
	    "derp1.example.net,derp2.example.net:8443/10.0.0.2" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_STREQ(c_.dc_mesh_with,
	    "derp1.example.net,derp2.example.net:8443/10.0.0.2");
	const std::vector<std::pair<std::string, std::string>> bad = {
		{ "a,,b", "empty entry" },
		{ "a/b/c", "too many components" },
		{ "a:99999", "bad port" },
		{ "a:", "bad port" },
		{ "a/", "bad entry" },
		{ "[::1", "bad host" },
	};
	for (const auto &b : bad) {
		config_defaults(&c_);
		ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", "127.0.0.1:0",
		    "-mesh-with", b.first }), CONFIG_OK);
		EXPECT_EQ(Finish(), -1) << b.first;
		std::string e = err_;
		EXPECT_EQ(e.rfind("-mesh-with: ", 0), 0u) << e;
		EXPECT_NE(e.find(b.second), std::string::npos) << b.first << ": "
		    << e;
	}
}

TEST_F(Config, AdmissionFlags)
{
	struct derpd_conf c;
	char err[512];
	const char *argv[] = { "derpd", "-verify-clients", "--socket=/x.sock",
	    "-verify-client-url", "http://127.0.0.1:1/v",
	    "--verify-client-url-fail-open=false", "-allow-keys", "/k",
	    "-auth-cache-allow-ttl=2m", "-auth-cache-deny-ttl=0",
	    "-auth-cache-size", "10", "-auth-timeout=750ms",
	    "-auth-max-inflight=3" };

	config_defaults(&c);
	EXPECT_TRUE(c.dc_auth.ac_url_fail_open);
	EXPECT_EQ(c.dc_auth.ac_timeout_ms, 5000);
	ASSERT_EQ(config_parse(&c, (int)(sizeof(argv) / sizeof(argv[0])),
	    (char **)argv, err, sizeof(err)), CONFIG_OK) << err;
	EXPECT_TRUE(c.dc_auth.ac_verify_clients);
	EXPECT_STREQ(c.dc_auth.ac_socket, "/x.sock");
	EXPECT_STREQ(c.dc_auth.ac_url, "http://127.0.0.1:1/v");
	EXPECT_FALSE(c.dc_auth.ac_url_fail_open);
	EXPECT_STREQ(c.dc_auth.ac_allow_file, "/k");
	EXPECT_EQ(c.dc_auth.ac_allow_ttl_ms, 120000);
	EXPECT_EQ(c.dc_auth.ac_deny_ttl_ms, 0);
	EXPECT_EQ(c.dc_auth.ac_cache_size, 10);
	EXPECT_EQ(c.dc_auth.ac_timeout_ms, 750);
	EXPECT_EQ(c.dc_auth.ac_max_inflight, 3);
}

TEST_F(Config, AdminSocketRoNeedsAdminSocket)
{
	struct derpd_conf c;
	char err[512];
	const char *argv[] = { "derpd", "-a", "127.0.0.1:0", "-c", "/tmp/k",
	    "-admin-socket-ro=/tmp/ro.sock", "-auth-reverify=50ms" };

	config_defaults(&c);
	ASSERT_EQ(config_parse(&c, 6, (char **)argv, err, sizeof(err)),
	    CONFIG_OK) << err;
	ASSERT_EQ(config_finish(&c, err, sizeof(err)), -1);
	EXPECT_NE(std::string(err).find("-admin-socket-ro"), std::string::npos)
	    << err;
	config_defaults(&c);
	const char *argv2[] = { "derpd", "-a", "127.0.0.1:0", "-c", "/tmp/k",
	    "-auth-reverify=50ms" };
	ASSERT_EQ(config_parse(&c, 6, (char **)argv2, err, sizeof(err)),
	    CONFIG_OK) << err;
	ASSERT_EQ(config_finish(&c, err, sizeof(err)), -1);
	EXPECT_NE(std::string(err).find("-auth-reverify"), std::string::npos)
	    << err;
}

TEST_F(Config, MissingValue)
{
	std::string e = ParseErr({ "-a" });
	EXPECT_NE(e.find("-a"), std::string::npos) << e;
	e = ParseErr({ "-stun-port", "1", "--tcp-write-timeout" });
	EXPECT_NE(e.find("tcp-write-timeout"), std::string::npos) << e;
	e = ParseErr({ "-c" });
	EXPECT_NE(e.find("-c"), std::string::npos) << e;
}

TEST_F(Config, BadValues)
{
	std::string e = ParseErr({ "-stun-port", "abc" });
	EXPECT_NE(e.find("stun-port"), std::string::npos) << e;
	e = ParseErr({ "-http-port=8O" });
	EXPECT_NE(e.find("http-port"), std::string::npos) << e;
	ParseErr({ "-stun-port=" });
	ParseErr({ "-stun-port=99999999999" });
	ParseErr({ "-stun-port=1.5" });
	e = ParseErr({ "-tcp-write-timeout=5" });
	EXPECT_NE(e.find("tcp-write-timeout"), std::string::npos) << e;
	ParseErr({ "-tcp-user-timeout=10x" });
	ParseErr({ "-workers=two" });
	std::string longval(5000, 'a');
	e = ParseErr({ "-hostname=" + longval });
	EXPECT_NE(e.find("hostname"), std::string::npos) << e;
}

TEST_F(Config, PositionalArgRejected)
{
	std::string e = ParseErr({ "-a", ":1", "extra" });
	EXPECT_NE(e.find("extra"), std::string::npos) << e;
	ParseErr({ "extra" });
	ParseErr({ "-stun", "false" });	/* Go: bools need -stun=false */
	ParseErr({ "--", "x" });
	ParseErr({ "-" });
	EXPECT_EQ(Parse({ "-a", ":1", "--" }), CONFIG_OK);
}

TEST_F(Config, Help)
{
	// To stderr, with each default, as Go's flag package prints them.
	testing::internal::CaptureStderr();
	testing::internal::CaptureStdout();
	enum config_result r = Parse({ "-h" });
	std::string out = testing::internal::GetCapturedStdout();
	std::string err = testing::internal::GetCapturedStderr();
	EXPECT_EQ(r, CONFIG_HELP);
	EXPECT_EQ(out, "");
	EXPECT_NE(err.find("-stun-port int"), std::string::npos) << err;
	EXPECT_NE(err.find("(default 3478)"), std::string::npos) << err;
	EXPECT_NE(err.find("(default \":443\")"), std::string::npos) << err;
	EXPECT_NE(err.find("(default 10m0s)"), std::string::npos) << err;
	EXPECT_NE(err.find("(default 15s)"), std::string::npos) << err;
	EXPECT_NE(err.find("(default +Inf)"), std::string::npos) << err;
	EXPECT_NE(err.find("-mesh-with string"), std::string::npos) << err;
	testing::internal::CaptureStderr();
	r = Parse({ "--help" });
	testing::internal::GetCapturedStderr();
	EXPECT_EQ(r, CONFIG_HELP);
}

TEST_F(Config, DefaultListenIsLetsEncrypt)
{
	// derper's defaults: :443, -certmode letsencrypt, Let's Encrypt.
	ASSERT_EQ(Parse({ "-c", "/tmp/derpd-test.key", "-hostname",
	    "derp.example.net" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_TRUE(c_.dc_tls);
	EXPECT_STREQ(c_.dc_acme_directory, ACME_DIR_LETSENCRYPT);
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":https", "-hostname", "d.e",
	    "-acme-directory", "https://ca.internal/dir" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_STREQ(c_.dc_acme_directory, "https://ca.internal/dir");
	// -tls: TLS (so ACME) on any port; derper serves TLS on :443 only.
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", "127.0.0.1:8443", "-tls" }),
	    CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_TRUE(c_.dc_tls);
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", "127.0.0.1:8443" }),
	    CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_FALSE(c_.dc_tls);
}

// derper's certProviderByCertMode messages, word for word.
TEST_F(Config, AcmeCombinations)
{
	struct {
		std::vector<std::string> args;
		const char *want;
	} cases[] = {
		{ { "-hostname", "192.0.2.1" }, "--hostname is an IP address; "
		    "use --certmode=manual for a self-signed cert, or set "
		    "--acme-ip-certs to get LetsEncrypt IP address certs" },
		{ { "-certmode", "gcp", "-hostname", "192.0.2.1" },
		    "--certmode=gcp requires --hostname to be a DNS name, not an "
		    "IP address" },
		{ { "-certmode", "gcp", "-hostname", "d.e" }, "--certmode=gcp "
		    "requires --acme-eab-kid and --acme-eab-key flags" },
		{ { "-certmode", "gcp", "-hostname", "d.e", "-acme-eab-kid", "k",
		    "-acme-eab-key", "c2VjcmV0" }, "--certmode=gcp requires "
		    "--acme-email flag" },
		{ { "-hostname", "d.e", "-acme-eab-kid", "k", "-acme-eab-key",
		    "not base64!" }, "invalid base64 encoding for EAB key" },
		{ { "-hostname", "d.e", "-acme-eab-kid", "k" }, "-acme-eab-key" },
		{ { "-hostname", "d.e", "-acme-directory", "http://ca/dir" },
		    "not an https:// URL" },
		{ { "-certmode", "bogus", "-a", ":8080" }, "unsupport cert mode" },
		{ { "-certmode", "manual", "-acme-ip-certs" },
		    "--acme-ip-certs requires --certmode=letsencrypt" },
		{ { "-certmode", "gcp", "-hostname", "d.e", "-acme-ip-certs" },
		    "--acme-ip-certs requires --certmode=letsencrypt" },
		{ { "-hostname", "192.0.2.1", "-acme-ip-certs", "-http-port",
		    "-1" }, "needs -http-port" },
	};
	for (const auto &tc : cases) {
		std::vector<std::string> args = { "-c", "/tmp/k" };
		args.insert(args.end(), tc.args.begin(), tc.args.end());
		config_defaults(&c_);
		ASSERT_EQ(Parse(args), CONFIG_OK) << Join(args);
		EXPECT_EQ(Finish(), -1) << Join(args);
		EXPECT_NE(std::string(err_).find(tc.want), std::string::npos)
		    << err_;
	}
	// An IP-only relay, and a name with IP certificates beside it.
	for (const char *host : { "192.0.2.1", "2001:db8::1", "d.e" }) {
		config_defaults(&c_);
		ASSERT_EQ(Parse({ "-c", "/tmp/k", "-hostname", host,
		    "-acme-ip-certs" }), CONFIG_OK);
		ASSERT_EQ(Finish(), 0) << host << ": " << err_;
		EXPECT_TRUE(c_.dc_acme_ip_certs);
	}
	// gcp with all three: Google's directory; both base64 forms of a key.
	for (const char *key : { "c2VjcmV0LWtleQ", "c2VjcmV0LWtleQ==" }) {
		config_defaults(&c_);
		ASSERT_EQ(Parse({ "-c", "/tmp/k", "-certmode", "gcp", "-hostname",
		    "d.e", "-acme-eab-kid", "k", "-acme-eab-key", key,
		    "-acme-email", "ops@d.e" }), CONFIG_OK);
		ASSERT_EQ(Finish(), 0) << err_;
		EXPECT_STREQ(c_.dc_acme_directory, ACME_DIR_GCP);
	}
}

TEST_F(Config, NonTlsPortIsPlainHttp)
{
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", "127.0.0.1:0" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_FALSE(c_.dc_tls);
	EXPECT_STREQ(c_.dc_listen_host, "127.0.0.1");
	EXPECT_STREQ(c_.dc_listen_port, "0");
	EXPECT_STREQ(c_.dc_key_path, "/tmp/k");
	EXPECT_GE(c_.dc_workers, 1);
	EXPECT_LE(c_.dc_workers, DERPD_MAX_WORKERS);

	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", "[::1]:3340" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_FALSE(c_.dc_tls);
	EXPECT_STREQ(c_.dc_listen_host, "::1");
	EXPECT_STREQ(c_.dc_listen_port, "3340");
}

TEST_F(Config, CertmodeManualIsTls)
{
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-certmode=manual", "-certdir",
	    "/etc/derp-certs", "-hostname", "derp.example.com" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_TRUE(c_.dc_tls);
	EXPECT_STREQ(c_.dc_listen_port, "443");
	EXPECT_STREQ(c_.dc_certdir, "/etc/derp-certs");

	// Manual mode means TLS on any port.
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", "127.0.0.1:8443",
	    "-certmode=manual", "-certdir=/etc/derp-certs" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_TRUE(c_.dc_tls);
}

TEST_F(Config, CertdirDefaultsToUserCache)
{
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-certmode=manual" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_EQ(std::string(c_.dc_certdir),
	    home_ + "/.cache/tailscale/derper-certs");

	setenv("XDG_CACHE_HOME", "/xdg", 1);
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-certmode=manual" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_STREQ(c_.dc_certdir, "/xdg/tailscale/derper-certs");
}

TEST_F(Config, UnknownCertmodeRejected)
{
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":8080", "-certmode=bogus" }),
	    CONFIG_OK);
	EXPECT_EQ(Finish(), -1);
	EXPECT_NE(std::string(err_).find("certmode"), std::string::npos);
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-certmode=gcp" }), CONFIG_OK);
	EXPECT_EQ(Finish(), -1);	/* no EAB, no email */
	EXPECT_NE(std::string(err_).find("certmode"), std::string::npos);
}

TEST_F(Config, DevMode)
{
	ASSERT_EQ(Parse({ "-dev", "-c", "/tmp/ignored.key" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_STREQ(c_.dc_addr, "127.0.0.1:3340");
	EXPECT_STREQ(c_.dc_listen_host, "127.0.0.1");
	EXPECT_STREQ(c_.dc_listen_port, "3340");
	EXPECT_FALSE(c_.dc_tls);
	EXPECT_STREQ(c_.dc_key_path, "") << "dev mode uses an ephemeral key";

	// Even with -certmode=manual, -dev is plain HTTP.
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "--dev", "-certmode=manual" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_FALSE(c_.dc_tls);
	EXPECT_STREQ(c_.dc_key_path, "");
}

TEST_F(Config, DefaultKeyPathOnlyForRoot)
{
	ASSERT_EQ(Parse({ "-a", ":3340" }), CONFIG_OK);
	if (geteuid() == 0) {
		ASSERT_EQ(Finish(), 0) << err_;
		EXPECT_STREQ(c_.dc_key_path, "/var/lib/derper/derper.key");
	} else {
		EXPECT_EQ(Finish(), -1);
		EXPECT_NE(std::string(err_).find("-c"), std::string::npos);
	}
}

TEST_F(Config, MeshPskFileFromHome)
{
	if (access("/home/derp/keys/derp-mesh.key", F_OK) == 0)
		GTEST_SKIP() << "/home/derp/keys/derp-mesh.key exists here";
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":3340" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_STREQ(c_.dc_mesh_psk_file, "") << "no file, no mesh key";

	std::string dir = home_ + "/keys", file = dir + "/derp-mesh.key";
	ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
	FILE *f = fopen(file.c_str(), "w");
	ASSERT_NE(f, nullptr);
	fclose(f);
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":3340" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_EQ(std::string(c_.dc_mesh_psk_file), file);

	// An explicit flag wins.
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":3340", "-mesh-psk-file",
	    "/etc/m.key" }), CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_STREQ(c_.dc_mesh_psk_file, "/etc/m.key");
}

TEST_F(Config, HomeValues)
{
	const char *good[] = { "", "blank", "http://example.com/",
	    "https://example.com/derp" };
	for (const char *g : good) {
		config_defaults(&c_);
		ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":3340",
		    std::string("-home=") + g }), CONFIG_OK);
		EXPECT_EQ(Finish(), 0) << g << ": " << err_;
	}
	const char *bad[] = { "ftp://example.com", "example.com", "Blank",
	    "/index.html" };
	for (const char *b : bad) {
		config_defaults(&c_);
		ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":3340",
		    std::string("-home=") + b }), CONFIG_OK);
		EXPECT_EQ(Finish(), -1) << b;
		EXPECT_NE(std::string(err_).find("-home"), std::string::npos)
		    << err_;
	}
}

TEST_F(Config, WorkersRange)
{
	const int good[] = { 1, 2, DERPD_MAX_WORKERS };
	for (int w : good) {
		config_defaults(&c_);
		ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":3340", "-workers",
		    std::to_string(w) }), CONFIG_OK);
		ASSERT_EQ(Finish(), 0) << err_;
		EXPECT_EQ(c_.dc_workers, w);
	}
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":3340", "-workers=0" }),
	    CONFIG_OK);
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_GE(c_.dc_workers, 1) << "0 means the online CPUs";

	const int bad[] = { -1, DERPD_MAX_WORKERS + 1, 100000 };
	for (int w : bad) {
		config_defaults(&c_);
		ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":3340", "-workers",
		    std::to_string(w) }), CONFIG_OK);
		EXPECT_EQ(Finish(), -1) << w;
		EXPECT_NE(std::string(err_).find("-workers"), std::string::npos)
		    << err_;
	}
}

TEST_F(Config, FinishRejectsBadAddressesAndPorts)
{
	const char *bad_addr[] = { "::1:80", "host:", "3340", ":99999",
	    ":-1", ":abc" };
	for (const char *a : bad_addr) {
		config_defaults(&c_);
		ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", a }), CONFIG_OK);
		EXPECT_EQ(Finish(), -1) << a;
		EXPECT_NE(std::string(err_).find("-a"), std::string::npos)
		    << err_;
	}
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":3340", "-stun-port=70000" }),
	    CONFIG_OK);
	EXPECT_EQ(Finish(), -1);
	EXPECT_NE(std::string(err_).find("-stun-port"), std::string::npos);
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":3340", "-http-port=-2" }),
	    CONFIG_OK);
	EXPECT_EQ(Finish(), -1);
	EXPECT_NE(std::string(err_).find("-http-port"), std::string::npos);
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":3340",
	    "-tcp-write-timeout=-1s" }), CONFIG_OK);
	EXPECT_EQ(Finish(), -1);
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/tmp/k", "-a", ":3340",
	    "-handshake-timeout=0" }), CONFIG_OK);
	EXPECT_EQ(Finish(), -1);
}

TEST_F(Config, VerifyClientsApiFlags)
{
	EXPECT_STREQ(c_.dc_auth.ac_api, "");
	EXPECT_STREQ(c_.dc_auth.ac_api_tailnet, "-");
	EXPECT_EQ(c_.dc_auth.ac_api_interval_ms, 60000);
	EXPECT_EQ(c_.dc_auth.ac_api_min_refresh_ms, 5000);
	ASSERT_EQ(Parse({ "-c", "/var/lib/derper/derper.key",
	    "-verify-clients-api", "tailscale",
	    "-verify-clients-api-credentials", "/etc/derpd/api.json",
	    "-verify-clients-api-tailnet=example.com",
	    "-verify-clients-api-interval", "30s",
	    "-verify-clients-api-min-refresh=2s",
	    "-admission-policy", "/p.json" }), CONFIG_OK) << err_;
	EXPECT_STREQ(c_.dc_auth.ac_api, "tailscale");
	EXPECT_STREQ(c_.dc_auth.ac_api_tailnet, "example.com");
	EXPECT_EQ(c_.dc_auth.ac_api_interval_ms, 30000);
	EXPECT_EQ(c_.dc_auth.ac_api_min_refresh_ms, 2000);
	ASSERT_EQ(Finish(), 0) << err_;
	// The state file goes beside the key file unless named.
	EXPECT_STREQ(c_.dc_auth.ac_api_state,
	    "/var/lib/derper/derpd-admission-api.json");

	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-c", "/k/derper.key", "-verify-clients-api",
	    "headscale", "-verify-clients-api-url", "http://127.0.0.1:8080/",
	    "-verify-clients-api-credentials", "/h.json",
	    "-verify-clients-api-state", "none" }), CONFIG_OK) << err_;
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_STREQ(c_.dc_auth.ac_api_state, "");
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-dev", "-verify-clients-api", "headscale",
	    "-verify-clients-api-url", "https://hs.example.net",
	    "-verify-clients-api-credentials", "/h.json",
	    "-verify-clients-api-state", "/s.json" }), CONFIG_OK) << err_;
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_STREQ(c_.dc_auth.ac_api_state, "/s.json");
	// -dev has no key file: no state file unless named.
	config_defaults(&c_);
	ASSERT_EQ(Parse({ "-dev", "-verify-clients-api", "tailscale",
	    "-verify-clients-api-credentials", "/a.json" }), CONFIG_OK) << err_;
	ASSERT_EQ(Finish(), 0) << err_;
	EXPECT_STREQ(c_.dc_auth.ac_api_state, "");
	for (const char *u : { "http://localhost:8080", "http://[::1]:8080/x",
	    "http://127.0.0.9", "https://api.example.net/base/" }) {
		config_defaults(&c_);
		ASSERT_EQ(Parse({ "-dev", "-verify-clients-api", "headscale",
		    "-verify-clients-api-url", u,
		    "-verify-clients-api-credentials", "/h.json" }), CONFIG_OK)
		    << u << ": " << err_;
		EXPECT_EQ(Finish(), 0) << u << ": " << err_;
	}
}

TEST_F(Config, VerifyClientsApiErrorsNameTheFlag)
{
	struct {
		std::vector<std::string> args;
		const char *want;
	} cases[] = {
		{ { "-verify-clients-api", "tailscal",
		    "-verify-clients-api-credentials", "/a" },
		    "-verify-clients-api: \"tailscal\" is not tailscale or "
		    "headscale" },
		{ { "-verify-clients-api", "tailscale" },
		    "-verify-clients-api-credentials: required" },
		{ { "-verify-clients-api", "headscale",
		    "-verify-clients-api-credentials", "/a" },
		    "-verify-clients-api-url: required with -verify-clients-api "
		    "headscale" },
		{ { "-verify-clients-api", "headscale",
		    "-verify-clients-api-url", "http://hs.example.net",
		    "-verify-clients-api-credentials", "/a" },
		    "must be https://, or http:// to a loopback address" },
		{ { "-verify-clients-api", "headscale",
		    "-verify-clients-api-url", "http://127.0.0.1.example.net",
		    "-verify-clients-api-credentials", "/a" },
		    "-verify-clients-api-url" },
		{ { "-verify-clients-api", "tailscale",
		    "-verify-clients-api-url", "ftp://x",
		    "-verify-clients-api-credentials", "/a" },
		    "-verify-clients-api-url" },
		{ { "-verify-clients-api", "tailscale",
		    "-verify-clients-api-credentials", "/a",
		    "-verify-clients-api-interval", "500ms" },
		    "-verify-clients-api-interval: at least 1s" },
		{ { "-verify-clients-api", "tailscale",
		    "-verify-clients-api-credentials", "/a",
		    "-verify-clients-api-min-refresh", "10ms" },
		    "-verify-clients-api-min-refresh: at least 100ms" },
		{ { "-verify-clients-api", "tailscale",
		    "-verify-clients-api-credentials", "/a",
		    "-verify-clients-api-tailnet", "a/b" },
		    "-verify-clients-api-tailnet" },
		{ { "-verify-clients-api-credentials", "/a" },
		    "-verify-clients-api-credentials: needs -verify-clients-api" },
		{ { "-admission-policy", "/p" },
		    "-admission-policy: needs -verify-clients or "
		    "-verify-clients-api" },
	};
	for (const auto &tc : cases) {
		// Flags parse one by one; config_finish checks them together.
		config_defaults(&c_);
		std::vector<std::string> args = tc.args;
		args.push_back("-dev");
		ASSERT_EQ(Parse(args), CONFIG_OK) << Join(args) << err_;
		EXPECT_EQ(Finish(), -1) << Join(args);
		EXPECT_NE(std::string(err_).find(tc.want), std::string::npos)
		    << Join(args) << "-> " << err_;
	}
}
