// SPDX-License-Identifier: ISC
// tls_test.cc: --certmode=manual, the meta cert, reloads and SNI
// (PROTOCOL.md 10).
#include <arpa/inet.h>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <netinet/in.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "frame.h"
#include "harness.h"

namespace {

class TlsTest : public DerpdTest {
protected:
	std::string certdir() const { return d.dir + "/certs"; }

	bool StartTls(const std::string &hostname = "127.0.0.1",
	    std::vector<std::string> extra = {})
	{
		std::vector<std::string> args = { "--certmode=manual",
		    "--hostname=" + hostname, "--certdir=" + certdir() };
		args.insert(args.end(), extra.begin(), extra.end());
		if (!d.Start(args))
			return false;
		EXPECT_TRUE(d.tls) << "listener is not TLS";
		return d.tls;
	}

	Client TlsConnect(int min, int max, bool fast, std::string *err,
	    const char *ca = nullptr)
	{
		derpc_opts o = d.Opts();
		o.tls_min = min;
		o.tls_max = max;
		o.fast_start = fast;
		o.ca_file = ca;
		return d.Connect(o, err);
	}
};

std::string
CN(X509 *x)
{
	char buf[256] = "";
	X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, buf,
	    sizeof(buf));
	return buf;
}

std::string
DerSHA256(X509 *x)
{
	unsigned char md[32];
	unsigned int n = 0;
	X509_digest(x, EVP_sha256(), md, &n);
	return Hex(md, 32);
}

// The peer's certificate chain as sent (the leaf first).
STACK_OF(X509) *
Chain(derpc *c)
{
	return SSL_get_peer_cert_chain((SSL *)derpc_ssl(c));
}

std::string
LeafSHA256(derpc *c)
{
	STACK_OF(X509) *ch = Chain(c);
	if (ch == nullptr || sk_X509_num(ch) < 1)
		return "";
	return DerSHA256(sk_X509_value(ch, 0));
}

// The meta cert: last, CN derpkey<hex>, serial 2, Ed25519, not a CA.
void
CheckMetaCert(derpc *c, const std::string &server_hex)
{
	STACK_OF(X509) *ch = Chain(c);
	ASSERT_NE(nullptr, ch);
	ASSERT_EQ(2, sk_X509_num(ch)) << "want leaf + meta cert";
	X509 *leaf = sk_X509_value(ch, 0);
	X509 *meta = sk_X509_value(ch, 1);
	EXPECT_EQ(std::string::npos, CN(leaf).find("derpkey"));
	EXPECT_EQ("derpkey" + server_hex, CN(meta));
	EXPECT_EQ(2, ASN1_INTEGER_get(X509_get0_serialNumber(meta)));
	EVP_PKEY *pk = X509_get0_pubkey(meta);
	ASSERT_NE(nullptr, pk);
	EXPECT_EQ(EVP_PKEY_ED25519, EVP_PKEY_get_base_id(pk));
	EXPECT_EQ(1, X509_verify(meta, pk)) << "meta cert is self-signed";
	EXPECT_EQ(0, X509_NAME_cmp(X509_get_subject_name(meta),
	    X509_get_issuer_name(meta)));
	EXPECT_EQ(0, X509_check_ca(meta));
	BASIC_CONSTRAINTS *bc = (BASIC_CONSTRAINTS *)X509_get_ext_d2i(meta,
	    NID_basic_constraints, nullptr, nullptr);
	EXPECT_NE(nullptr, bc) << "basic constraints present";
	BASIC_CONSTRAINTS_free(bc);
	// Valid from ~30 days ago to ~30 days ahead.
	int days, secs;
	ASSERT_EQ(1, ASN1_TIME_diff(&days, &secs, nullptr,
	    X509_get0_notBefore(meta)));
	EXPECT_GE(days, -31);
	EXPECT_LE(days, -29);
	ASSERT_EQ(1, ASN1_TIME_diff(&days, &secs, nullptr,
	    X509_get0_notAfter(meta)));
	EXPECT_GE(days, 29);
	EXPECT_LE(days, 31);
}

mode_t
Mode(const std::string &path)
{
	struct stat st;
	if (stat(path.c_str(), &st) == -1)
		return (mode_t)-1;
	return st.st_mode & 07777;
}

TEST_F(TlsTest, SelfSignedIpCertIsCreated)
{
	ASSERT_TRUE(StartTls());
	std::string crt = certdir() + "/127.0.0.1.crt";
	std::string key = certdir() + "/127.0.0.1.key";
	EXPECT_EQ(0644u, Mode(crt));
	EXPECT_EQ(0600u, Mode(key));
	std::string sha = CertFileSHA256(crt);
	ASSERT_EQ(64u, sha.size());
	EXPECT_TRUE(d.WaitLog("sha256-raw:" + sha, 1000)) << "log should "
	    "name the cert's SHA-256";

	// It verifies for 127.0.0.1 and is the leaf served.
	std::string err;
	Client c = TlsConnect(0, 0, false, &err, crt.c_str());
	ASSERT_TRUE(c) << err;
	EXPECT_EQ(sha, LeafSHA256(c.get()));
	X509 *leaf = sk_X509_value(Chain(c.get()), 0);
	EXPECT_EQ("127.0.0.1", CN(leaf));
	EXPECT_EQ(1, X509_check_ip_asc(leaf, "127.0.0.1", 0));
	EVP_PKEY *pk = X509_get0_pubkey(leaf);
	EXPECT_EQ(EVP_PKEY_EC, EVP_PKEY_get_base_id(pk));

	// A restart reuses the files.
	d.Stop();
	ASSERT_TRUE(StartTls());
	EXPECT_EQ(sha, CertFileSHA256(crt));
	c = TlsConnect(0, 0, false, &err, crt.c_str());
	ASSERT_TRUE(c) << err;
	EXPECT_EQ(sha, LeafSHA256(c.get()));
}

TEST_F(TlsTest, Tls13WithoutSniAndMetaCertLast)
{
	ASSERT_TRUE(StartTls());
	std::string err;
	Client c = TlsConnect(TLS1_3_VERSION, TLS1_3_VERSION, false, &err);
	ASSERT_TRUE(c) << err;
	SSL *ssl = (SSL *)derpc_ssl(c.get());
	EXPECT_EQ(TLS1_3_VERSION, SSL_version(ssl));
	EXPECT_EQ(nullptr, SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name));
	CheckMetaCert(c.get(), d.server_hex);
	uint8_t k[32];
	ASSERT_EQ(0, derpc_tls_meta_key(c.get(), k));
	EXPECT_EQ(0, memcmp(k, d.server_pub, 32));
	// No ALPN was offered, none selected.
	const unsigned char *alpn;
	unsigned int alen;
	SSL_get0_alpn_selected(ssl, &alpn, &alen);
	EXPECT_EQ(0u, alen);
}

TEST_F(TlsTest, Tls12Works)
{
	ASSERT_TRUE(StartTls());
	std::string err;
	// Fast start is asked for, but TLS 1.2 means the 101 flow.
	Client a = TlsConnect(TLS1_2_VERSION, TLS1_2_VERSION, true, &err);
	ASSERT_TRUE(a) << err;
	EXPECT_EQ(TLS1_2_VERSION, SSL_version((SSL *)derpc_ssl(a.get())));
	EXPECT_EQ(0, strncmp(derpc_http_head(a.get()), "HTTP/1.1 101 ", 13));
	CheckMetaCert(a.get(), d.server_hex);
	Client b = TlsConnect(TLS1_2_VERSION, TLS1_2_VERSION, false, &err);
	ASSERT_TRUE(b) << err;
	EXPECT_TRUE(SendRecv(a.get(), b.get(), "over tls 1.2"));
}

TEST_F(TlsTest, SendRecvOverTls)
{
	ASSERT_TRUE(StartTls());
	std::string err;
	Client a = TlsConnect(0, 0, false, &err);
	ASSERT_TRUE(a) << err;
	Client b = TlsConnect(0, 0, false, &err);
	ASSERT_TRUE(b) << err;
	for (size_t len : { (size_t)0, (size_t)100, (size_t)20000,
	    (size_t)65536 })
		EXPECT_TRUE(SendRecv(a.get(), b.get(), std::string(len, 't')));
	EXPECT_TRUE(SendRecv(b.get(), a.get(), "back"));
	const uint8_t p8[8] = { 1, 1, 2, 3, 5, 8, 13, 21 };
	ASSERT_EQ(DERPC_OK, derpc_ping(a.get(), p8));
	derpc_frame f;
	ASSERT_TRUE(RecvType(a.get(), FRAME_PONG, &f));
	EXPECT_EQ(0, memcmp(p8, f.payload, 8));
	// HTTP works over TLS too.
	HttpResponse r = d.Get("/derp/probe");
	ASSERT_TRUE(r.ok) << r.err;
	EXPECT_EQ(200, r.status);
	EXPECT_EQ(2, d.Metric("derp_current_connections"));
}

TEST_F(TlsTest, FastStartOverTls)
{
	ASSERT_TRUE(StartTls());
	std::string err, si;
	Client peer = TlsConnect(0, 0, false, &err);
	ASSERT_TRUE(peer) << err;
	derpc_opts o = d.Opts();
	o.tls_min = TLS1_3_VERSION;
	o.fast_start = true;	// key from the meta cert
	Client c = d.Connect(o, &err, &si);
	ASSERT_TRUE(c) << err;
	EXPECT_EQ("{\"version\":2}", si);
	EXPECT_STREQ("", derpc_http_head(c.get()));
	size_t gl;
	derpc_greeting(c.get(), &gl);
	EXPECT_EQ((size_t)FRAME_HDR_LEN + FRAME_SERVERKEY_LEN, gl);
	EXPECT_TRUE(SendRecv(c.get(), peer.get(), "fast over tls"));
	EXPECT_TRUE(SendRecv(peer.get(), c.get(), "and back"));
}

TEST_F(TlsTest, SighupReloadsCertificate)
{
	ASSERT_TRUE(StartTls());
	std::string crt = certdir() + "/127.0.0.1.crt";
	std::string key = certdir() + "/127.0.0.1.key";
	std::string old_sha = CertFileSHA256(crt);
	std::string err;
	Client old = TlsConnect(0, 0, false, &err);
	ASSERT_TRUE(old) << err;
	EXPECT_EQ(old_sha, LeafSHA256(old.get()));

	ASSERT_EQ("", MakeCert(crt, key, "127.0.0.1", "IP:127.0.0.1"));
	std::string new_sha = CertFileSHA256(crt);
	ASSERT_NE(old_sha, new_sha);
	size_t mark = d.LogSize();
	d.Kill(SIGHUP);
	ASSERT_TRUE(d.WaitLog("certificates reloaded", 3000, mark)) <<
	    d.Log().substr(mark);

	Client fresh = TlsConnect(0, 0, false, &err, crt.c_str());
	ASSERT_TRUE(fresh) << err;
	EXPECT_EQ(new_sha, LeafSHA256(fresh.get()));
	CheckMetaCert(fresh.get(), d.server_hex);
	// The old connection keeps working, both ways.
	EXPECT_TRUE(SendRecv(old.get(), fresh.get(), "old to new"));
	EXPECT_TRUE(SendRecv(fresh.get(), old.get(), "new to old"));
	// Fast start still works with the new context.
	derpc_opts o = d.Opts();
	o.tls_min = TLS1_3_VERSION;
	o.fast_start = true;
	Client f = d.Connect(o, &err);
	ASSERT_TRUE(f) << err;
	EXPECT_TRUE(SendRecv(f.get(), old.get(), "fast after reload"));
}

TEST_F(TlsTest, SighupWithBrokenCertKeepsTheOldOne)
{
	ASSERT_TRUE(StartTls());
	std::string crt = certdir() + "/127.0.0.1.crt";
	std::string old_sha = CertFileSHA256(crt);
	std::string err;
	Client old = TlsConnect(0, 0, false, &err);
	ASSERT_TRUE(old) << err;

	FILE *f = fopen(crt.c_str(), "w");
	ASSERT_NE(nullptr, f);
	fputs("-----BEGIN CERTIFICATE-----\nbroken\n"
	    "-----END CERTIFICATE-----\n", f);
	fclose(f);
	size_t mark = d.LogSize();
	d.Kill(SIGHUP);
	ASSERT_TRUE(d.WaitLog("reload failed", 3000, mark)) <<
	    d.Log().substr(mark);
	std::string tail = d.Log().substr(mark);
	EXPECT_NE(std::string::npos, tail.find(" warn ")) << tail;

	Client fresh = TlsConnect(0, 0, false, &err);
	ASSERT_TRUE(fresh) << err;
	EXPECT_EQ(old_sha, LeafSHA256(fresh.get()));
	CheckMetaCert(fresh.get(), d.server_hex);
	EXPECT_TRUE(SendRecv(old.get(), fresh.get(), "still fine"));

	// A missing key file is no better.
	ASSERT_EQ(0, unlink((certdir() + "/127.0.0.1.key").c_str()));
	mark = d.LogSize();
	d.Kill(SIGHUP);
	ASSERT_TRUE(d.WaitLog("reload failed", 3000, mark));
	Client again = TlsConnect(0, 0, false, &err);
	ASSERT_TRUE(again) << err;
	EXPECT_EQ(old_sha, LeafSHA256(again.get()));
}

TEST_F(TlsTest, GroupReadableKeyIsRefused)
{
	ASSERT_EQ(0, mkdir(certdir().c_str(), 0700));
	ASSERT_EQ("", MakeCert(certdir() + "/127.0.0.1.crt",
	    certdir() + "/127.0.0.1.key", "127.0.0.1", "IP:127.0.0.1", 0640));
	int st = d.RunToExit({ "--certmode=manual", "--hostname=127.0.0.1",
	    "--certdir=" + certdir() }, 5000);
	EXPECT_NE(0, st);
	EXPECT_NE(-1, st) << "derpd had to be killed";
	std::string log = d.Log();
	EXPECT_NE(std::string::npos, log.find("-certdir")) << log;
	EXPECT_NE(std::string::npos, log.find("127.0.0.1.key")) << log;
	EXPECT_EQ(std::string::npos, log.find("listening on")) << log;
}

TEST_F(TlsTest, CertNotForHostnameIsFatal)
{
	ASSERT_EQ(0, mkdir(certdir().c_str(), 0700));
	ASSERT_EQ("", MakeCert(certdir() + "/derp.test.crt",
	    certdir() + "/derp.test.key", "other.test", "DNS:other.test"));
	int st = d.RunToExit({ "--certmode=manual", "--hostname=derp.test",
	    "--certdir=" + certdir() }, 5000);
	EXPECT_NE(0, st);
	EXPECT_NE(-1, st);
	EXPECT_NE(std::string::npos, d.Log().find("-hostname")) << d.Log();
}

TEST_F(TlsTest, DnsHostnameRequiresMatchingSni)
{
	ASSERT_EQ(0, mkdir(certdir().c_str(), 0700));
	std::string crt = certdir() + "/derp.test.crt";
	ASSERT_EQ("", MakeCert(crt, certdir() + "/derp.test.key", "derp.test",
	    "DNS:derp.test"));
	d.sni = "derp.test";
	ASSERT_TRUE(StartTls("derp.test"));
	std::string err;
	// The right SNI, verified against the cert.
	derpc_opts o = d.Opts();
	o.ca_file = crt.c_str();
	Client ok = d.Connect(o, &err);
	ASSERT_TRUE(ok) << err;
	EXPECT_EQ(CertFileSHA256(crt), LeafSHA256(ok.get()));
	CheckMetaCert(ok.get(), d.server_hex);
	// SNI matching ignores case.
	o.sni = "DERP.test";
	o.ca_file = nullptr;
	Client upper = d.Connect(o, &err);
	EXPECT_TRUE(upper) << err;

	// A different name, or none: the handshake fails.
	for (const char *sni : { "other.test", (const char *)nullptr }) {
		SCOPED_TRACE(sni ? sni : "(no SNI)");
		derpc_opts b = d.Opts();
		b.sni = sni;
		char e[512] = "";
		derpc *c = derpc_dial(&b, e, sizeof(e));
		EXPECT_EQ(nullptr, c) << "handshake succeeded";
		derpc_close(c);
		EXPECT_NE(std::string::npos, std::string(e).find("TLS")) << e;
	}
	EXPECT_TRUE(SendRecv(ok.get(), ok.get(), "after bad SNI"));
}

// A raw TLS client: connect, send one HTTP request, read the answer (so
// any NewSessionTicket is read too), and keep the session.
struct TlsProbe {
	bool handshake = false;
	bool reused = false;
	SSL_SESSION *session = nullptr;	/* owned by the caller */
	std::string cipher;
};

TlsProbe
ProbeTls(int port, int version, const char *ciphers, SSL_SESSION *resume)
{
	TlsProbe r;
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, version);
	SSL_CTX_set_max_proto_version(ctx, version);
	if (ciphers != nullptr && !SSL_CTX_set_cipher_list(ctx, ciphers)) {
		SSL_CTX_free(ctx);
		return r;
	}
	/* We keep the session; a cache would mark it dead at CTX free. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	/* The server closes after its answer: not an error here. */
	SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct timeval tv = { 5, 0 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	struct sockaddr_in sin = {};
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	SSL *ssl = SSL_new(ctx);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
		SSL_set_fd(ssl, fd);
		if (resume != nullptr)
			SSL_set_session(ssl, resume);
		if (SSL_connect(ssl) == 1) {
			r.handshake = true;
			r.reused = SSL_session_reused(ssl) == 1;
			r.cipher = SSL_get_cipher_name(ssl);
			const char req[] = "GET /derp/probe HTTP/1.1\r\n"
			    "Host: 127.0.0.1\r\n\r\n";
			SSL_write(ssl, req, sizeof(req) - 1);
			char buf[4096];
			while (SSL_read(ssl, buf, sizeof(buf)) > 0)
				;
			r.session = SSL_get1_session(ssl);
			/* Else SSL_free marks the session not resumable. */
			SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN |
			    SSL_RECEIVED_SHUTDOWN);
		}
	}
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	return r;
}

// DERP clients never resume, so tickets would only cost handshake CPU and
// weaken forward secrecy (the ticket key was never rotated). No tickets, no
// resumption, in TLS 1.3 and 1.2.
TEST_F(TlsTest, NoSessionTicketsNoResumption)
{
	ASSERT_TRUE(StartTls());
	for (int v : { TLS1_3_VERSION, TLS1_2_VERSION }) {
		TlsProbe first = ProbeTls(d.port, v, nullptr, nullptr);
		ASSERT_TRUE(first.handshake) << "version " << std::hex << v;
		ASSERT_NE(nullptr, first.session);
		EXPECT_FALSE(SSL_SESSION_is_resumable(first.session))
		    << "a resumable session (ticket) was issued, version "
		    << std::hex << v;
		TlsProbe second = ProbeTls(d.port, v, nullptr, first.session);
		EXPECT_TRUE(second.handshake);
		EXPECT_FALSE(second.reused) << "session resumed, version "
		    << std::hex << v;
		SSL_SESSION_free(first.session);
		SSL_SESSION_free(second.session);
	}
}

// TLS 1.2 offers only forward-secret AEAD suites, with an RSA certificate
// too: no static-RSA key exchange, no CBC.
TEST_F(TlsTest, Tls12OnlyForwardSecretAead)
{
	std::string crt = certdir() + "/127.0.0.1.crt";
	std::string key = certdir() + "/127.0.0.1.key";
	ASSERT_EQ(0, mkdir(certdir().c_str(), 0700));
	std::string cmd = "openssl req -x509 -newkey rsa:2048 -nodes -days 3650 "
	    "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout " +
	    key + " -out " + crt + " >/dev/null 2>&1 && chmod 600 " + key;
	ASSERT_EQ(0, system(cmd.c_str())) << cmd;
	ASSERT_TRUE(StartTls());
	for (const char *weak : { "AES128-SHA", "AES256-GCM-SHA384",
	    "ECDHE-RSA-AES128-SHA", "ECDHE-RSA-AES256-SHA384" }) {
		TlsProbe p = ProbeTls(d.port, TLS1_2_VERSION, weak, nullptr);
		EXPECT_FALSE(p.handshake) << weak << " was accepted";
		SSL_SESSION_free(p.session);
	}
	for (const char *good : { "ECDHE-RSA-AES128-GCM-SHA256",
	    "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305" }) {
		TlsProbe p = ProbeTls(d.port, TLS1_2_VERSION, good, nullptr);
		EXPECT_TRUE(p.handshake) << good << " was refused";
		EXPECT_EQ(good, p.cipher);
		SSL_SESSION_free(p.session);
	}
}


// ---- -certmode letsencrypt without a CA (the Pebble tests are in the
// interop tier): the cache, an unreachable CA, the account key's mode.

class AcmeTest : public TlsTest {
protected:
	std::vector<std::string> AcmeArgs(const std::string &host)
	{
		// Port 1 on loopback: nothing listens, the CA is unreachable.
		return { "--certmode=letsencrypt", "--tls", "--hostname=" + host,
		    "--certdir=" + certdir(),
		    "--acme-directory=https://127.0.0.1:1/directory" };
	}
	// The autocert cache file <certdir>/<host>: key, then certificate.
	void WriteCache(const std::string &host, unsigned mode)
	{
		ASSERT_EQ(0, mkdir(certdir().c_str(), 0700));
		std::string crt = d.dir + "/c.crt", key = d.dir + "/c.key";
		ASSERT_EQ("", MakeCert(crt, key, host, "DNS:" + host));
		std::string both = ReadFile(key) + ReadFile(crt);
		std::string path = certdir() + "/" + host;
		FILE *f = fopen(path.c_str(), "w");
		ASSERT_NE(nullptr, f);
		fwrite(both.data(), 1, both.size(), f);
		fclose(f);
		ASSERT_EQ(0, chmod(path.c_str(), mode));
	}
};

// No certificate and no CA: derpd runs, says why, retries; TLS handshakes
// fail until a certificate arrives (derper does the same).
TEST_F(AcmeTest, UnreachableCaKeepsRunningWithoutCertificate)
{
	ASSERT_TRUE(d.Start(AcmeArgs("derp.test")));
	EXPECT_TRUE(d.tls);
	EXPECT_TRUE(d.WaitLog("(unreachable)", 10000)) << d.Log();
	EXPECT_NE(std::string::npos, d.Log().find("the current certificate "
	    "stays, next attempt in")) << d.Log();
	derpc_opts o = d.Opts();
	o.sni = "derp.test";
	char e[512] = "";
	derpc *c = derpc_dial(&o, e, sizeof(e));
	EXPECT_EQ(nullptr, c) << "handshake succeeded without a certificate";
	if (c != nullptr)
		derpc_close(c);
	// The account key was created, 0600, in derper's place.
	struct stat st;
	ASSERT_EQ(0, stat((certdir() + "/acme_account+key").c_str(), &st));
	EXPECT_EQ(0600u, st.st_mode & 0777);
	EXPECT_TRUE(d.Running());
}

// A valid certificate in the cache is served at once; nothing is ordered.
TEST_F(AcmeTest, CachedCertificateIsServed)
{
	WriteCache("derp.test", 0600);
	d.sni = "derp.test";
	ASSERT_TRUE(d.Start(AcmeArgs("derp.test")));
	std::string err;
	derpc_opts o = d.Opts();
	o.sni = "derp.test";
	Client c = d.Connect(o, &err);
	ASSERT_TRUE(c) << err;
	EXPECT_EQ(CertFileSHA256(d.dir + "/c.crt"), LeafSHA256(c.get()));
	CheckMetaCert(c.get(), d.server_hex);
	EXPECT_NE(std::string::npos, d.Log().find("from the certificate cache"))
	    << d.Log();
	EXPECT_EQ(std::string::npos, d.Log().find("acme: ordering")) << d.Log();
}

// A group-readable account key is refused at startup, naming the file.
TEST_F(AcmeTest, GroupReadableAccountKeyIsRefused)
{
	ASSERT_EQ(0, mkdir(certdir().c_str(), 0700));
	std::string k = certdir() + "/acme_account+key";
	ASSERT_EQ("", MakeCert(d.dir + "/x.crt", k, "x", "DNS:x", 0640));
	int st = d.RunToExit(AcmeArgs("derp.test"), 5000);
	EXPECT_NE(0, st);
	EXPECT_NE(-1, st) << "derpd had to be killed";
	EXPECT_NE(std::string::npos, d.Log().find("acme_account+key")) << d.Log();
	EXPECT_NE(std::string::npos, d.Log().find("chmod 600")) << d.Log();
}

// A group-readable cache file is not served (and will be replaced by
// the next certificate, written 0600).
TEST_F(AcmeTest, GroupReadableCacheIsNotServed)
{
	WriteCache("derp.test", 0640);
	ASSERT_TRUE(d.Start(AcmeArgs("derp.test")));
	EXPECT_NE(std::string::npos, d.Log().find("chmod 600")) << d.Log();
	derpc_opts o = d.Opts();
	o.sni = "derp.test";
	char e[512] = "";
	derpc *c = derpc_dial(&o, e, sizeof(e));
	EXPECT_EQ(nullptr, c);
	if (c != nullptr)
		derpc_close(c);
}

}  // namespace
