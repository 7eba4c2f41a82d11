// SPDX-License-Identifier: ISC
// mesh_test.cc: derpd --mesh-with between real derpd processes on
// loopback (plain HTTP links: TS_DEBUG_USE_DERP_HTTP=1, as Go's switch):
// forwarding from every worker at once in both directions, one route of
// several in use and the next one taking over, a startup refusal. The TLS
// regions, the Go derper and derpprobe are in the interop tier; these run
// under ASan and TSan too, where the mesh's threads meet.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <openssl/rand.h>
#include <sodium.h>

#include "harness.h"

namespace {

int
FreePort()
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {};
	socklen_t len = sizeof(sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	close(fd);
	return ntohs(sin.sin_port);
}

class MeshWith : public ::testing::Test {
protected:
	void SetUp() override
	{
		setenv("TS_DEBUG_USE_DERP_HTTP", "1", 1);
		RAND_bytes(mesh_, sizeof(mesh_));
		key_file_ = nodes_[0].dir + "/region-mesh.key";
		FILE *f = fopen(key_file_.c_str(), "w");
		ASSERT_NE(f, nullptr);
		fprintf(f, "%s\n", Hex(mesh_, 32).c_str());
		fclose(f);
		chmod(key_file_.c_str(), 0600);
		for (int i = 0; i < 3; i++) {
			ports_[i] = FreePort();
			ASSERT_GT(ports_[i], 0);
		}
	}
	void TearDown() override
	{
		for (int i = 0; i < 3; i++)
			if (nodes_[i].Running() && !killed_[i])
				nodes_[i].Stop();
		if (HasFailure())
			for (auto &n : nodes_) {
				n.keep_dir = true;
				fprintf(stderr, "--- derpd on port %d ---\n%s\n",
				    n.port, n.Log().c_str());
			}
		unsetenv("TS_DEBUG_USE_DERP_HTTP");
	}
	// Node i of a region of n, listing every node (itself included).
	bool StartNode(int i, int n)
	{
		std::string list;
		for (int j = 0; j < n; j++)
			list += (j ? "," : "") + std::string("127.0.0.1:") +
			    std::to_string(ports_[j]);
		return nodes_[i].Start({ "-a", "127.0.0.1:" +
		    std::to_string(ports_[i]), "--mesh-psk-file=" + key_file_,
		    "--mesh-with=" + list });
	}
	// Wait until node i has want links up.
	::testing::AssertionResult WaitLinks(int i, int64_t want)
	{
		int64_t v = nodes_[i].WaitMetric(
		    "derpd_mesh_peers{state=\"connected\"}", want, 10000);
		if (v == want)
			return ::testing::AssertionSuccess();
		return ::testing::AssertionFailure() << "node " << i << ": " <<
		    v << " links up, want " << want;
	}
	Client ConnectTo(int i)
	{
		std::string err;
		Client c = nodes_[i].Connect(&err);
		EXPECT_TRUE(c) << err;
		return c;
	}
	Derpd nodes_[3];
	bool killed_[3] = {};	/* reaped by ~Derpd */
	int ports_[3] = {};
	uint8_t mesh_[32];
	std::string key_file_;
};

// Send from a to b until one arrives (routes are learned asynchronously),
// then drain what else was in flight.
::testing::AssertionResult
SendUntilDelivered(derpc *a, derpc *b, int within_ms)
{
	Clock::time_point start = Clock::now();
	for (int i = 0; MsSince(start) < within_ms; i++) {
		std::string msg = "probe " + std::to_string(i);
		if (derpc_send_packet(a, derpc_pub(b), msg.data(), msg.size()) !=
		    DERPC_OK)
			return ::testing::AssertionFailure() << derpc_error(a);
		uint8_t src[32], buf[256];
		size_t n;
		if (derpc_recv_packet(b, src, buf, sizeof(buf), &n, 200) ==
		    DERPC_OK) {
			while (derpc_recv_packet(b, src, buf, sizeof(buf), &n,
			    300) == DERPC_OK)
				;
			return ::testing::AssertionSuccess();
		}
	}
	return ::testing::AssertionFailure() << "nothing delivered within " <<
	    within_ms << " ms";
}

// Eight pairs, each a sender on A and an echoer on B, on both workers of
// each node: every packet crosses the mesh both ways, from every worker
// into the links at once.
TEST_F(MeshWith, ForwardsBothWaysFromEveryWorker)
{
	ASSERT_TRUE(StartNode(0, 2));
	ASSERT_TRUE(StartNode(1, 2));
	ASSERT_TRUE(WaitLinks(0, 1));
	ASSERT_TRUE(WaitLinks(1, 1));
	EXPECT_EQ(1, nodes_[0].Metric("derpd_mesh_peers{state=\"self\"}"));
	const int pairs = 8, rounds = 300;
	std::vector<Client> snd, echo;
	for (int i = 0; i < pairs; i++) {
		snd.push_back(ConnectTo(0));
		echo.push_back(ConnectTo(1));
		ASSERT_TRUE(snd.back() && echo.back());
	}
	for (int i = 0; i < pairs; i++)
		ASSERT_TRUE(SendUntilDelivered(snd[i].get(), echo[i].get(), 5000));
	std::atomic<int> failures{ 0 }, done{ 0 };
	std::vector<std::thread> th;
	for (int i = 0; i < pairs; i++) {
		th.emplace_back([&, i]() {	/* the echoer on B */
			uint8_t src[32], buf[2048];
			size_t n;
			for (int r = 0; r < rounds; r++) {
				if (derpc_recv_packet(echo[i].get(), src, buf,
				    sizeof(buf), &n, 5000) != DERPC_OK ||
				    derpc_send_packet(echo[i].get(), src, buf,
				    n) != DERPC_OK) {
					failures++;
					return;
				}
			}
		});
		th.emplace_back([&, i]() {	/* the sender on A */
			uint8_t src[32], buf[2048];
			size_t n;
			for (int r = 0; r < rounds; r++) {
				std::string m = std::to_string(i) + ":" +
				    std::to_string(r) + std::string(1000, 'x');
				if (derpc_send_packet(snd[i].get(),
				    derpc_pub(echo[i].get()), m.data(), m.size()) !=
				    DERPC_OK ||
				    derpc_recv_packet(snd[i].get(), src, buf,
				    sizeof(buf), &n, 5000) != DERPC_OK ||
				    std::string((char *)buf, n) != m ||
				    memcmp(src, derpc_pub(echo[i].get()), 32)) {
					failures++;
					return;
				}
			}
			done++;
		});
	}
	for (auto &t : th)
		t.join();
	EXPECT_EQ(0, failures.load());
	EXPECT_EQ(pairs, done.load());
	EXPECT_GE(nodes_[0].Metric("derp_packets_forwarded_out"),
	    pairs * rounds);
	EXPECT_GE(nodes_[1].Metric("derp_packets_forwarded_out"),
	    pairs * rounds);
	EXPECT_EQ(0, nodes_[0].Metric(Drop("mesh_down", "other")));
	// Node B's watcher (A's link) got the echoers as live updates:
	// derper's mesh update histograms count them.
	auto m = nodes_[1].Metrics();
	int64_t batches = m["derp_mesh_update_batch_size_count"];
	EXPECT_GE(batches, 1);
	EXPECT_EQ(batches,
	    m["derp_mesh_update_batch_size_bucket{le=\"+Inf\"}"]);
	EXPECT_GE(m["derp_mesh_update_batch_size_sum"], pairs);
	EXPECT_GE(m["derp_mesh_update_loop_count_count"], 1);
	EXPECT_LE(m["derp_mesh_update_batch_size_bucket{le=\"0\"}"],
	    m["derp_mesh_update_batch_size_bucket{le=\"1000\"}"]);
}

// A key homed on two other nodes: A uses the route it learned first and
// fails over to the other when that node dies, without PeerGone.
TEST_F(MeshWith, OldestRouteThenFailover)
{
	for (int i = 0; i < 3; i++)
		ASSERT_TRUE(StartNode(i, 3));
	for (int i = 0; i < 3; i++)
		ASSERT_TRUE(WaitLinks(i, 2));
	int64_t routes = nodes_[0].Metric("derpd_mesh_routes");
	Client x = ConnectTo(0);
	Client y1 = ConnectTo(1);
	ASSERT_TRUE(x && y1);
	ASSERT_EQ(routes + 1, nodes_[0].WaitMetric("derpd_mesh_routes",
	    routes + 1, 5000));
	// Keys seen through both other nodes already (their links into each
	// other) are multi-forwarders of their own: count from here.
	int64_t created = nodes_[0].Metric("derp_multiforwarder_created");
	int64_t deleted = nodes_[0].Metric("derp_multiforwarder_deleted");
	derpc_opts o = nodes_[2].Opts();
	o.priv = derpc_priv(y1.get());	/* the same key on node C */
	std::string err;
	Client y2 = nodes_[2].Connect(o, &err);
	ASSERT_TRUE(y2) << err;
	ASSERT_EQ(created + 1, nodes_[0].WaitMetric(
	    "derp_multiforwarder_created", created + 1, 5000));
	// The older route (node B) carries the packets.
	for (int i = 0; i < 20; i++)
		ASSERT_TRUE(SendRecv(x.get(), y1.get(), "via B " +
		    std::to_string(i)));
	EXPECT_TRUE(Quiet(y2.get(), 200));
	// B dies: its route goes, C's takes over; the key never left.
	nodes_[1].Kill(SIGKILL);
	killed_[1] = true;
	ASSERT_GE(nodes_[0].WaitMetricAtLeast("derp_multiforwarder_deleted",
	    deleted + 1, 10000), deleted + 1);
	ASSERT_TRUE(SendUntilDelivered(x.get(), y2.get(), 5000));
	for (int i = 0; i < 20; i++)
		ASSERT_TRUE(SendRecv(x.get(), y2.get(), "via C " +
		    std::to_string(i)));
	EXPECT_TRUE(Quiet(x.get(), 300)) << "no PeerGone: y is still here";
	EXPECT_GE(nodes_[0].Metric("derpd_mesh_peers{state=\"backoff\"}") +
	    nodes_[0].Metric("derpd_mesh_peers{state=\"connecting\"}"), 1);
}

// A peer with another mesh key takes the link as a plain client and closes
// it on WatchConns: the log and the last error say what is likely wrong,
// and nothing is routed.
TEST_F(MeshWith, OtherMeshKeyIsNamed)
{
	std::string other = nodes_[1].dir + "/other-mesh.key";
	FILE *f = fopen(other.c_str(), "w");
	ASSERT_NE(f, nullptr);
	uint8_t k[32];
	RAND_bytes(k, sizeof(k));
	fprintf(f, "%s\n", Hex(k, 32).c_str());
	fclose(f);
	chmod(other.c_str(), 0600);
	ASSERT_TRUE(nodes_[1].Start({ "-a", "127.0.0.1:" +
	    std::to_string(ports_[1]), "--mesh-psk-file=" + other }));
	ASSERT_TRUE(StartNode(0, 2));
	EXPECT_TRUE(nodes_[0].WaitLog("is the mesh key the same on both nodes",
	    10000)) << nodes_[0].Log();
	EXPECT_EQ(0, nodes_[0].Metric("derpd_mesh_routes"));
	EXPECT_GE(nodes_[1].Metric(Closed("insufficient_permissions")), 1);
}

// A peer given by name: resolved on the worker's loop (evdns reads
// /etc/hosts). Where localhost also maps to ::1, the addresses are tried
// in turn (derpd listens on 127.0.0.1 only); this machine's /etc/hosts
// may have 127.0.0.1 alone, so that path is not proven here.
TEST_F(MeshWith, DialsAName)
{
	std::string list = "localhost:" + std::to_string(ports_[0]) +
	    ",localhost:" + std::to_string(ports_[1]);
	for (int i = 0; i < 2; i++)
		ASSERT_TRUE(nodes_[i].Start({ "-a", "127.0.0.1:" +
		    std::to_string(ports_[i]), "--mesh-psk-file=" + key_file_,
		    "--mesh-with=" + list }));
	ASSERT_TRUE(WaitLinks(0, 1));
	ASSERT_TRUE(WaitLinks(1, 1));
	Client x = ConnectTo(0), y = ConnectTo(1);
	ASSERT_TRUE(x && y);
	EXPECT_TRUE(SendUntilDelivered(x.get(), y.get(), 5000));
}

// A TLS link verifies the peer's certificate: against the system roots it
// fails (a self-signed one), counted and retried; with SSL_CERT_FILE naming
// it, as Go reads it, the link comes up and carries packets.
TEST_F(MeshWith, TlsLinkVerifiesThePeer)
{
	unsetenv("TS_DEBUG_USE_DERP_HTTP");
	std::string certdir = nodes_[1].dir + "/certs";
	ASSERT_EQ(0, mkdir(certdir.c_str(), 0700));
	std::string crt = certdir + "/127.0.0.1.crt";
	ASSERT_EQ("", MakeCert(crt, certdir + "/127.0.0.1.key", "127.0.0.1",
	    "IP:127.0.0.1"));
	ASSERT_TRUE(nodes_[1].Start({ "-a", "127.0.0.1:" +
	    std::to_string(ports_[1]), "--mesh-psk-file=" + key_file_,
	    "--certmode=manual", "--hostname=127.0.0.1",
	    "--certdir=" + certdir }));
	ASSERT_TRUE(nodes_[1].tls);
	std::vector<std::string> a = { "-a", "127.0.0.1:" +
	    std::to_string(ports_[0]), "--mesh-psk-file=" + key_file_,
	    "--mesh-with=127.0.0.1:" + std::to_string(ports_[1]) };
	unsetenv("SSL_CERT_FILE");
	setenv("SSL_CERT_DIR", "/nonexistent", 1);	/* no system roots */
	ASSERT_TRUE(nodes_[0].Start(a));
	EXPECT_TRUE(nodes_[0].WaitLog("certificate verify failed", 10000))
	    << nodes_[0].Log();
	EXPECT_EQ(0, nodes_[0].Metric("derpd_mesh_peers{state=\"connected\"}"));
	EXPECT_GE(nodes_[0].Metric(Closed("tls_error")), 1);
	nodes_[0].Stop();
	setenv("SSL_CERT_FILE", crt.c_str(), 1);
	ASSERT_TRUE(nodes_[0].Start(a));
	unsetenv("SSL_CERT_FILE");
	unsetenv("SSL_CERT_DIR");
	ASSERT_TRUE(WaitLinks(0, 1));
	Client x = ConnectTo(0);
	derpc_opts o = nodes_[1].Opts();
	o.ca_file = crt.c_str();
	std::string err;
	Client y = nodes_[1].Connect(o, &err);
	ASSERT_TRUE(x && y) << err;
	EXPECT_TRUE(SendUntilDelivered(x.get(), y.get(), 5000));
	for (int i = 0; i < 50; i++)
		ASSERT_TRUE(SendRecv(x.get(), y.get(), "over tls " +
		    std::to_string(i)));
}

// Node B dies and comes back five times while senders on A keep sending
// to clients homed on B: A never stalls or crashes, every packet it cannot
// forward is counted, and each time the route comes back by itself.
TEST_F(MeshWith, LinkFlapsUnderLoad)
{
	ASSERT_TRUE(StartNode(0, 2));
	ASSERT_TRUE(StartNode(1, 2));
	ASSERT_TRUE(WaitLinks(0, 1));
	const int pairs = 4;
	std::vector<Client> snd, rcv;
	for (int i = 0; i < pairs; i++) {
		snd.push_back(ConnectTo(0));
		rcv.push_back(ConnectTo(1));
		ASSERT_TRUE(snd.back() && rcv.back());
	}
	std::vector<std::vector<uint8_t>> keys, pubs;
	for (auto &r : rcv) {
		keys.emplace_back(derpc_priv(r.get()), derpc_priv(r.get()) + 32);
		pubs.emplace_back(derpc_pub(r.get()), derpc_pub(r.get()) + 32);
	}
	std::atomic<bool> stop{ false };
	std::atomic<long> sent{ 0 };
	std::vector<std::thread> th;
	for (int i = 0; i < pairs; i++)
		th.emplace_back([&, i]() {
			std::string m(800, 'f');
			uint8_t dst[32];	/* rcv[i] is replaced each round */
			memcpy(dst, pubs[i].data(), 32);
			for (int n = 0; !stop.load() && n < 2000000; n++) {
				if (derpc_send_packet(snd[i].get(), dst, m.data(),
				    m.size()) != DERPC_OK)
					return;
				sent++;
				if (n % 64 == 0)
					usleep(1000);
			}
		});
	for (int round = 0; round < 5; round++) {
		nodes_[1].KillAndReap();
		rcv.clear();
		usleep(200 * 1000);
		ASSERT_TRUE(StartNode(1, 2)) << "round " << round;
		ASSERT_TRUE(WaitLinks(1, 1));
		for (int i = 0; i < pairs; i++) {
			derpc_opts o = nodes_[1].Opts();
			o.priv = keys[i].data();
			std::string err;
			rcv.push_back(nodes_[1].Connect(o, &err));
			ASSERT_TRUE(rcv.back()) << err;
		}
		// Each receiver hears from its sender again.
		for (int i = 0; i < pairs; i++) {
			uint8_t src[32], buf[1024];
			size_t n;
			int rc = DERPC_TIMEOUT;
			for (int tries = 0; tries < 50 && rc != DERPC_OK; tries++)
				rc = derpc_recv_packet(rcv[i].get(), src, buf,
				    sizeof(buf), &n, 200);
			ASSERT_EQ(DERPC_OK, rc) << "round " << round << " pair " <<
			    i << ": " << derpc_error(rcv[i].get());
			EXPECT_EQ(0, memcmp(src, derpc_pub(snd[i].get()), 32));
		}
	}
	stop = true;
	for (auto &t : th)
		t.join();
	EXPECT_GT(sent.load(), 0);
	auto m = nodes_[0].Metrics();
	int64_t lost = 0;
	for (const char *r : { "mesh_down", "unknown_dest", "gone_disconnected",
	    "queue_head", "queue_tail" })
		lost += m[Drop(r, "other")];
	EXPECT_GT(lost, 0) << "B was down five times: some packets were lost, "
	    "and each must be counted";
	EXPECT_GE(m["derpd_mesh_reconnects"], 5);
	EXPECT_TRUE(nodes_[0].Running());
}

// Admission is unchanged by meshing: a link presents the mesh key and is
// admitted by a node that admits only listed keys; its clients are not.
TEST_F(MeshWith, LinksSkipAdmissionClientsDoNot)
{
	uint8_t ypriv[32], ypub[32];
	RAND_bytes(ypriv, sizeof(ypriv));
	crypto_scalarmult_base(ypub, ypriv);
	std::string allow = nodes_[1].dir + "/allow.txt";
	FILE *f = fopen(allow.c_str(), "w");
	ASSERT_NE(f, nullptr);
	fprintf(f, "nodekey:%s\n", Hex(ypub, 32).c_str());
	fclose(f);
	ASSERT_TRUE(StartNode(0, 2));
	std::string list = "127.0.0.1:" + std::to_string(ports_[0]) +
	    ",127.0.0.1:" + std::to_string(ports_[1]);
	ASSERT_TRUE(nodes_[1].Start({ "-a", "127.0.0.1:" +
	    std::to_string(ports_[1]), "--mesh-psk-file=" + key_file_,
	    "--mesh-with=" + list, "-allow-keys=" + allow }));
	ASSERT_TRUE(WaitLinks(0, 1));
	ASSERT_TRUE(WaitLinks(1, 1));
	derpc_opts o = nodes_[1].Opts();
	o.priv = ypriv;
	std::string err;
	Client y = nodes_[1].Connect(o, &err);
	ASSERT_TRUE(y) << err;
	Client x = ConnectTo(0);
	ASSERT_TRUE(x);
	EXPECT_TRUE(SendUntilDelivered(x.get(), y.get(), 5000));
	Client z = nodes_[1].Connect(&err);
	EXPECT_FALSE(z) << "an unlisted client was admitted";
	EXPECT_GE(nodes_[1].Metric(
	    "derpd_admission_rejects{reason=\"not_in_allowlist\"}"), 1);
}

// A peer's announcements are bounded: past -mesh-max-routes, PeerPresent
// is counted and logged once, and those keys are not routed.
TEST_F(MeshWith, RoutesPerPeerAreCapped)
{
	std::string list = "127.0.0.1:" + std::to_string(ports_[0]) +
	    ",127.0.0.1:" + std::to_string(ports_[1]);
	ASSERT_TRUE(nodes_[0].Start({ "-a", "127.0.0.1:" +
	    std::to_string(ports_[0]), "--mesh-psk-file=" + key_file_,
	    "--mesh-with=" + list, "--mesh-max-routes=4" }));
	ASSERT_TRUE(StartNode(1, 2));
	ASSERT_TRUE(WaitLinks(0, 1));
	ASSERT_TRUE(WaitLinks(1, 1));
	std::vector<Client> cs;
	for (int i = 0; i < 10; i++) {
		cs.push_back(ConnectTo(1));
		ASSERT_TRUE(cs.back());
	}
	// B announces A's own link and its 10 clients: 4 routed, 7 refused.
	EXPECT_EQ(7, nodes_[0].WaitMetric("derpd_mesh_routes_refused", 7,
	    5000));
	EXPECT_EQ(4, nodes_[0].Metric("derpd_mesh_routes"));
	EXPECT_TRUE(nodes_[0].WaitLog("(-mesh-max-routes); the rest are not "
	    "routed", 3000));
	EXPECT_NE(0, nodes_[2].RunToExit({ "--mesh-max-routes=0" }, 5000));
}

TEST_F(MeshWith, NeedsAMeshKey)
{
	EXPECT_NE(0, nodes_[0].RunToExit({ "--mesh-with=127.0.0.1:1" }, 5000));
	EXPECT_NE(std::string::npos, nodes_[0].Log().find(
	    "-mesh-with: requires -mesh-psk-file")) << nodes_[0].Log();
	EXPECT_NE(0, nodes_[0].RunToExit({ "--mesh-psk-file=" + key_file_,
	    "--mesh-with=a//b" }, 5000));
	EXPECT_NE(std::string::npos, nodes_[0].Log().find("-mesh-with: "))
	    << nodes_[0].Log();
}

} // namespace
