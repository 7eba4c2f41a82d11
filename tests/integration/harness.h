// SPDX-License-Identifier: ISC
// harness.h: start the real derpd from $DERPD on 127.0.0.1, port 0, talk
// to it with derpc, read /debug/varz, and stop it with SIGTERM.
#ifndef DERPD_IT_HARNESS_H
#define DERPD_IT_HARNESS_H

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <sys/types.h>

#include "derpc.h"

// Owning pointer for a derpc connection.
struct DerpcCloser {
	void operator()(derpc *c) const { derpc_close(c); }
};
using Client = std::unique_ptr<derpc, DerpcCloser>;

struct HttpResponse {
	bool ok = false;		// a status line was read
	int status = 0;
	std::string head;		// status line and headers, raw
	std::map<std::string, std::string> headers;	// lower-case names
	std::string body;
	bool closed = false;		// the server closed after the response
	std::string err;

	// Value of a header (by lower-case name), "" if absent.
	std::string Header(const std::string &name) const;
	bool Has(const std::string &name) const;
};

class Derpd {
public:
	Derpd();
	~Derpd();
	Derpd(const Derpd &) = delete;
	Derpd &operator=(const Derpd &) = delete;

	// Start with the standard flags plus extra; waits for the listening
	// lines. On failure it records a test failure and returns false.
	bool Start(const std::vector<std::string> &extra = {});
	// Run with the standard flags plus extra and wait for it to exit by
	// itself. Returns the exit status, or -1 if it had to be killed.
	int RunToExit(const std::vector<std::string> &extra, int timeout_ms);
	// SIGTERM; EXPECTs exit status 0 within 5 s.
	void Stop();
	bool Running() const { return pid_ > 0; }
	void Kill(int sig);
	// SIGKILL and reap it (a node that dies in a test); no status check.
	void KillAndReap();

	// Log.
	std::string Log();
	// Wait until the log (from byte offset from) contains needle.
	bool WaitLog(const std::string &needle, int timeout_ms,
	    size_t from = 0);
	size_t LogSize();

	// Clients.
	derpc_opts Opts() const;
	Client Connect(std::string *err = nullptr);
	Client Connect(const derpc_opts &o, std::string *err = nullptr,
	    std::string *server_info = nullptr);
	Client Dial(std::string *err = nullptr);	// TCP/TLS only

	// HTTP: raw request text (must ask for the whole response; the
	// server closes after each one).
	HttpResponse Http(const std::string &raw, int timeout_ms = 5000);
	HttpResponse Get(const std::string &path,
	    const std::string &headers = "", const std::string &method = "GET");

	// /debug/varz value of an exact metric (name with labels); -1 if
	// absent or unreadable.
	int64_t Metric(const std::string &name);
	// All metrics of one /debug/varz snapshot (name with labels).
	std::map<std::string, int64_t> Metrics();
	// Poll the metric until it equals want; returns the last value.
	int64_t WaitMetric(const std::string &name, int64_t want,
	    int timeout_ms = 3000);
	// Poll until the metric is at least want.
	int64_t WaitMetricAtLeast(const std::string &name, int64_t want,
	    int timeout_ms = 3000);

	std::string dir;		// per-instance temp dir
	int port = 0;
	int stun_port = 0;
	bool tls = false;
	uint8_t server_pub[32] = {};
	std::string server_hex;		// 64 lowercase hex
	bool keep_dir = false;		// leave dir behind (failed tests)
	std::string sni;		// TLS: SNI for Opts() ("" none)

private:
	bool Spawn(const std::vector<std::string> &extra);
	void Reap(int *status, int timeout_ms, bool *exited);
	void ReaderLoop(int fd);

	pid_t pid_ = -1;
	std::thread reader_;
	std::mutex mu_;
	std::string log_;
	bool log_eof_ = false;
};

// Fixture: one daemon per test; prints its log if the test failed.
class DerpdTest : public ::testing::Test {
protected:
	void TearDown() override;
	// Start with a fresh mesh key file (--mesh-psk-file) plus extra;
	// mesh_ holds the key.
	bool StartMesh(const std::vector<std::string> &extra = {});
	Derpd d;
	uint8_t mesh_[32] = {};
};

// Helpers.
using Clock = std::chrono::steady_clock;
// Milliseconds since t.
int64_t MsSince(Clock::time_point t);
// Metric names: derpd_connections_closed{reason}, derp_packets_dropped.
std::string Closed(const char *reason);
std::string Drop(const char *reason, const char *kind);
std::string Hex(const uint8_t *p, size_t n);
// Receive frames (skipping KeepAlive) until type arrives; fails the test.
::testing::AssertionResult RecvType(derpc *c, uint8_t type,
    derpc_frame *f, int timeout_ms = 3000);
// Send a packet from a to b's key and check b gets it from a's key.
::testing::AssertionResult SendRecv(derpc *a, derpc *b,
    const std::string &data, int timeout_ms = 3000);
// True when nothing but KeepAlive arrives within ms.
::testing::AssertionResult Quiet(derpc *c, int ms);
// The connection is closed by the server within ms (no DERP frames
// other than KeepAlive before that).
::testing::AssertionResult ClosedWithin(derpc *c, int ms);
// A disco-looking packet (magic, 32-byte key, 24-byte nonce, payload).
std::string DiscoPacket(size_t len = 80);
// Write a self-signed cert and key (PEM). san is "IP:127.0.0.1" or
// "DNS:name"; key_mode the key file mode. Returns "" or an error.
std::string MakeCert(const std::string &crt, const std::string &key,
    const std::string &cn, const std::string &san, unsigned key_mode = 0600);
// SHA-256 (lowercase hex) of a PEM cert file's DER, "" on error.
std::string CertFileSHA256(const std::string &crt);
std::string ReadFile(const std::string &path);

#endif
