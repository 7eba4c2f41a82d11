// SPDX-License-Identifier: ISC
// control_test.cc: the admin socket against the real daemon: fields of
// show clients, kick, rejects, reload, monitor, show mesh (a peer that
// refuses, the daemon itself), permissions, and bad input from admin
// clients while packets are being relayed.
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "harness.h"

namespace {

// One admin connection speaking NDJSON.
class Admin {
public:
	explicit Admin(const std::string &path)
	{
		struct sockaddr_un sun;

		fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		strncpy(sun.sun_path, path.c_str(), sizeof(sun.sun_path) - 1);
		if (connect(fd_, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
			close(fd_);
			fd_ = -1;
		}
	}
	~Admin() { if (fd_ != -1) close(fd_); }
	bool ok() const { return fd_ != -1; }
	bool Send(const std::string &s)
	{
		size_t off = 0;
		while (off < s.size()) {
			ssize_t n = write(fd_, s.data() + off, s.size() - off);
			if (n <= 0)
				return false;
			off += (size_t)n;
		}
		return true;
	}
	// Next line, "" on EOF or after timeout_ms.
	std::string Line(int timeout_ms = 5000)
	{
		auto end = std::chrono::steady_clock::now() +
		    std::chrono::milliseconds(timeout_ms);
		for (;;) {
			size_t nl = buf_.find('\n');
			if (nl != std::string::npos) {
				std::string l = buf_.substr(0, nl);
				buf_.erase(0, nl + 1);
				return l;
			}
			int left = (int)std::chrono::duration_cast<
			    std::chrono::milliseconds>(end -
			    std::chrono::steady_clock::now()).count();
			if (left <= 0)
				return "";
			struct pollfd p = { fd_, POLLIN, 0 };
			if (poll(&p, 1, left) <= 0)
				return "";
			char b[65536];
			ssize_t n = read(fd_, b, sizeof(b));
			if (n <= 0)
				return "";
			buf_.append(b, (size_t)n);
		}
	}
	// Request cmd with args (JSON text or ""); returns the parsed reply.
	cJSON *Do(const std::string &cmd, const std::string &args = "")
	{
		std::string r = "{\"v\":1,\"id\":" + std::to_string(++id_) +
		    ",\"cmd\":\"" + cmd + "\"" +
		    (args.empty() ? "" : ",\"args\":" + args) + "}\n";
		if (!Send(r))
			return nullptr;
		std::string l = Line();
		return l.empty() ? nullptr : cJSON_Parse(l.c_str());
	}
	int fd() const { return fd_; }
	int id() const { return id_; }
private:
	int fd_ = -1;
	int id_ = 0;
	std::string buf_;
};

struct JsonDel {
	void operator()(cJSON *j) const { cJSON_Delete(j); }
};
using Json = std::unique_ptr<cJSON, JsonDel>;

bool
IsOk(cJSON *r)
{
	return r != nullptr && cJSON_IsTrue(cJSON_GetObjectItem(r, "ok"));
}

std::string
ErrCode(cJSON *r)
{
	cJSON *e = r ? cJSON_GetObjectItem(r, "error") : nullptr;
	cJSON *c = e ? cJSON_GetObjectItem(e, "code") : nullptr;
	return cJSON_IsString(c) ? c->valuestring : "";
}

cJSON *
Result(cJSON *r, const char *name)
{
	cJSON *res = r ? cJSON_GetObjectItem(r, "result") : nullptr;
	return res ? cJSON_GetObjectItem(res, name) : nullptr;
}

// The show-clients entry for key, or nullptr.
cJSON *
FindClient(cJSON *r, const std::string &key)
{
	cJSON *arr = Result(r, "clients"), *it;

	cJSON_ArrayForEach(it, arr) {
		cJSON *k = cJSON_GetObjectItem(it, "key");
		if (cJSON_IsString(k) && key == k->valuestring)
			return it;
	}
	return nullptr;
}

std::string
NodeKey(derpc *c)
{
	return "nodekey:" + Hex(derpc_pub(c), 32);
}

class ControlTest : public DerpdTest {
protected:
	bool StartWithAdmin(std::vector<std::string> extra = {})
	{
		sock = d.dir + "/admin.sock";
		extra.push_back("--admin-socket=" + sock);
		return d.Start(extra);
	}
	std::string sock;
};

TEST_F(ControlTest, SocketIsPrivateAndRemovedAtExit)
{
	ASSERT_TRUE(StartWithAdmin({ "--admin-socket-ro=" + d.dir + "/ro.sock" }));
	struct stat st;
	ASSERT_EQ(stat(sock.c_str(), &st), 0);
	EXPECT_TRUE(S_ISSOCK(st.st_mode));
	EXPECT_EQ(st.st_mode & 0777, 0600u);
	ASSERT_EQ(stat((d.dir + "/ro.sock").c_str(), &st), 0);
	EXPECT_EQ(st.st_mode & 0777, 0600u);
	EXPECT_TRUE(d.WaitLog("admin socket " + sock, 2000));
	d.Stop();
	EXPECT_NE(stat(sock.c_str(), &st), 0) << "socket left behind";
}

TEST_F(ControlTest, StaleSocketIsReplacedLiveOneIsNot)
{
	std::string path = d.dir + "/admin.sock";
	{
		/* A socket file left by a process that is gone. */
		int fd = socket(AF_UNIX, SOCK_STREAM, 0);
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		strncpy(sun.sun_path, path.c_str(), sizeof(sun.sun_path) - 1);
		ASSERT_EQ(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
		close(fd);
	}
	ASSERT_TRUE(StartWithAdmin());
	{
		Admin adm(sock);
		Json r(adm.Do("show stats"));
		EXPECT_TRUE(IsOk(r.get()));
	}
	/* A second daemon on the same, live, path must refuse to start. */
	Derpd other;
	int rc = other.RunToExit({ "--admin-socket=" + sock }, 5000);
	EXPECT_NE(rc, 0);
	EXPECT_NE(other.Log().find("in use by another process"),
	    std::string::npos) << other.Log();
	Admin adm(sock);
	Json r(adm.Do("show stats"));
	EXPECT_TRUE(IsOk(r.get())) << "the first daemon's socket was taken";
}

TEST_F(ControlTest, UnsafeDirectoryIsRefused)
{
	std::string open_dir = d.dir + "/open";
	ASSERT_EQ(mkdir(open_dir.c_str(), 0777), 0);
	ASSERT_EQ(chmod(open_dir.c_str(), 0777), 0);	/* no sticky bit */
	int rc = d.RunToExit({ "--admin-socket=" + open_dir + "/a.sock" },
	    5000);
	EXPECT_NE(rc, 0);
	EXPECT_NE(d.Log().find("-admin-socket"), std::string::npos) << d.Log();
	EXPECT_NE(d.Log().find("writable by others"), std::string::npos);
}

TEST_F(ControlTest, ShowClientsFieldsAndDeparture)
{
	ASSERT_TRUE(StartWithAdmin());
	Client a = d.Connect(), b = d.Connect();
	ASSERT_TRUE(a && b);
	ASSERT_TRUE(SendRecv(a.get(), b.get(), "hello"));
	ASSERT_EQ(derpc_note_preferred(a.get(), true), DERPC_OK);
	Admin adm(sock);
	ASSERT_TRUE(adm.ok());
	Json r;
	cJSON *ca = nullptr;
	/* NotePreferred is handled asynchronously: poll briefly. */
	for (int i = 0; i < 50; i++) {
		r.reset(adm.Do("show clients"));
		ASSERT_TRUE(IsOk(r.get()));
		ca = FindClient(r.get(), NodeKey(a.get()));
		if (ca && cJSON_IsTrue(cJSON_GetObjectItem(ca, "home")))
			break;
		usleep(20000);
	}
	ASSERT_NE(ca, nullptr);
	cJSON *cb = FindClient(r.get(), NodeKey(b.get()));
	ASSERT_NE(cb, nullptr);
	EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(ca, "home")));
	EXPECT_EQ(cJSON_GetObjectItem(ca, "packets_in")->valuedouble, 1);
	EXPECT_EQ(cJSON_GetObjectItem(ca, "bytes_in")->valuedouble, 5);
	EXPECT_EQ(cJSON_GetObjectItem(cb, "packets_out")->valuedouble, 1);
	EXPECT_EQ(cJSON_GetObjectItem(cb, "bytes_out")->valuedouble, 5);
	EXPECT_FALSE(cJSON_IsTrue(cJSON_GetObjectItem(ca, "mesh")));
	EXPECT_FALSE(cJSON_IsTrue(cJSON_GetObjectItem(ca, "duplicate")));
	EXPECT_STREQ(cJSON_GetObjectItem(ca, "admitted_by")->valuestring,
	    "none");
	std::string addr = cJSON_GetObjectItem(ca, "addr")->valuestring;
	EXPECT_EQ(addr.rfind("127.0.0.1:", 0), 0u) << addr;
	double since = cJSON_GetObjectItem(ca, "connected_since")->valuedouble;
	EXPECT_NEAR(since, (double)time(nullptr), 60);
	double w = cJSON_GetObjectItem(ca, "worker")->valuedouble;
	EXPECT_TRUE(w == 0 || w == 1);

	/* Prefix filter, and "show client" for one key. */
	std::string hex = Hex(derpc_pub(a.get()), 32);
	r.reset(adm.Do("show clients", "{\"prefix\":\"" + hex.substr(0, 10) +
	    "\"}"));
	ASSERT_TRUE(IsOk(r.get()));
	EXPECT_EQ(cJSON_GetArraySize(Result(r.get(), "clients")), 1);
	r.reset(adm.Do("show client", "{\"key\":\"" + NodeKey(b.get()) + "\"}"));
	ASSERT_TRUE(IsOk(r.get()));
	EXPECT_NE(FindClient(r.get(), NodeKey(b.get())), nullptr);

	/* Leaving clients leave the list. */
	std::string bkey = NodeKey(b.get());
	b.reset();
	bool gone = false;
	for (int i = 0; i < 100 && !gone; i++) {
		r.reset(adm.Do("show clients"));
		gone = IsOk(r.get()) && FindClient(r.get(), bkey) == nullptr;
		if (!gone)
			usleep(20000);
	}
	EXPECT_TRUE(gone);
	r.reset(adm.Do("show client", "{\"key\":\"" + bkey + "\"}"));
	EXPECT_EQ(ErrCode(r.get()), "not_found");
}

TEST_F(ControlTest, KickClosesEveryConnectionOfTheKey)
{
	ASSERT_TRUE(StartWithAdmin());
	Client a = d.Connect();
	ASSERT_TRUE(a);
	derpc_opts o = d.Opts();
	o.priv = derpc_priv(a.get());
	Client a2 = d.Connect(o);	/* a duplicate */
	Client b = d.Connect();
	ASSERT_TRUE(a2 && b);
	Admin adm(sock);
	Json r(adm.Do("kick", "{\"key\":\"" + NodeKey(a.get()) + "\"}"));
	ASSERT_TRUE(IsOk(r.get()));
	EXPECT_EQ(Result(r.get(), "kicked")->valuedouble, 2);
	EXPECT_TRUE(ClosedWithin(a.get(), 3000));
	EXPECT_TRUE(ClosedWithin(a2.get(), 3000));
	EXPECT_EQ(d.WaitMetric("derpd_connections_closed{reason=\"kicked\"}", 2),
	    2);
	/* Others are untouched. */
	Client c = d.Connect();
	ASSERT_TRUE(c);
	EXPECT_TRUE(SendRecv(c.get(), b.get(), "still here"));
	r.reset(adm.Do("kick", "{\"key\":\"nodekey:" + std::string(64, '0') +
	    "\"}"));
	EXPECT_EQ(ErrCode(r.get()), "not_found");
	r.reset(adm.Do("kick", "{\"key\":\"nonsense\"}"));
	EXPECT_EQ(ErrCode(r.get()), "bad_request");
}

TEST_F(ControlTest, RejectsAreAggregatedByReasonAndSource)
{
	std::string allow = d.dir + "/allow";
	std::ofstream(allow) << "# nobody yet\n";
	ASSERT_TRUE(StartWithAdmin({ "--allow-keys=" + allow,
	    "--auth-cache-deny-ttl=0" }));
	uint8_t priv[32], pub[32];
	derpc_keygen(priv, pub);
	derpc_opts o = d.Opts();
	o.priv = priv;
	for (int i = 0; i < 3; i++) {
		std::string err;
		Client c = d.Connect(o, &err);
		EXPECT_FALSE(c) << "refused client got ServerInfo";
	}
	Admin adm(sock);
	Json r(adm.Do("show rejects"));
	ASSERT_TRUE(IsOk(r.get()));
	cJSON *arr = Result(r.get(), "rejects");
	ASSERT_EQ(cJSON_GetArraySize(arr), 1);
	cJSON *e = cJSON_GetArrayItem(arr, 0);
	EXPECT_STREQ(cJSON_GetObjectItem(e, "reason")->valuestring,
	    "not_in_allowlist");
	EXPECT_STREQ(cJSON_GetObjectItem(e, "source")->valuestring, "127.0.0.1");
	EXPECT_EQ(cJSON_GetObjectItem(e, "count")->valuedouble, 3);
	EXPECT_EQ(std::string(cJSON_GetObjectItem(e, "last_key")->valuestring),
	    "nodekey:" + Hex(pub, 32));
	EXPECT_LE(cJSON_GetObjectItem(e, "first_seen")->valuedouble,
	    cJSON_GetObjectItem(e, "last_seen")->valuedouble);
	EXPECT_EQ(cJSON_GetObjectItem(Result(r.get(), "totals"),
	    "not_in_allowlist")->valuedouble, 3);
	r.reset(adm.Do("show admission"));
	ASSERT_TRUE(IsOk(r.get()));
	cJSON *ad = Result(r.get(), "admission");
	EXPECT_TRUE(cJSON_IsTrue(cJSON_GetObjectItem(ad, "enabled")));
	EXPECT_STREQ(cJSON_GetArrayItem(cJSON_GetObjectItem(ad, "backends"),
	    0)->valuestring, "allowlist");

	/* reload picks up the listed key. */
	std::ofstream(allow) << "nodekey:" << Hex(pub, 32) << "\n";
	r.reset(adm.Do("reload"));
	ASSERT_TRUE(IsOk(r.get()));
	EXPECT_STREQ(cJSON_GetArrayItem(Result(r.get(), "changed"),
	    0)->valuestring, "allowlist");
	Client ok = d.Connect(o);
	EXPECT_TRUE(ok);
}

// One formatter for client addresses: on a dual-stack socket an IPv4
// client reads as IPv4 in the monitor's client.reject, in show rejects,
// in show clients and in the log alike. (The monitor said
// "[::ffff:127.0.0.1]" where show rejects said "127.0.0.1".)
TEST_F(ControlTest, AddressesReadTheSameEverywhereOnDualStack)
{
	std::string allow = d.dir + "/allow";
	std::ofstream(allow) << "# nobody yet\n";
	ASSERT_TRUE(StartWithAdmin({ "-a", "[::ffff:127.0.0.1]:0",
	    "--allow-keys=" + allow }));
	Admin mon(sock);
	Json r(mon.Do("monitor"));
	ASSERT_TRUE(IsOk(r.get()));
	{
		std::string err;
		Client c = d.Connect(&err);
		EXPECT_FALSE(c) << "refused client got ServerInfo";
	}
	std::string l = mon.Line();
	Json ev(cJSON_Parse(l.c_str()));
	ASSERT_NE(ev.get(), nullptr) << l;
	EXPECT_STREQ(cJSON_GetObjectItem(ev.get(), "event")->valuestring,
	    "client.reject");
	EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetObjectItem(ev.get(), "data"),
	    "source")->valuestring, "127.0.0.1") << l;
	Admin adm(sock);
	r.reset(adm.Do("show rejects"));
	ASSERT_TRUE(IsOk(r.get()));
	cJSON *e = cJSON_GetArrayItem(Result(r.get(), "rejects"), 0);
	ASSERT_NE(e, nullptr);
	EXPECT_STREQ(cJSON_GetObjectItem(e, "source")->valuestring, "127.0.0.1");

	// An admitted client: show clients and the monitor say 127.0.0.1:port.
	uint8_t priv[32], pub[32];
	derpc_keygen(priv, pub);
	std::ofstream(allow) << "nodekey:" << Hex(pub, 32) << "\n";
	r.reset(adm.Do("reload"));
	ASSERT_TRUE(IsOk(r.get()));
	derpc_opts o = d.Opts();
	o.priv = priv;
	Client ok = d.Connect(o);
	ASSERT_TRUE(ok);
	l = mon.Line();
	ev.reset(cJSON_Parse(l.c_str()));
	ASSERT_NE(ev.get(), nullptr) << l;
	std::string addr = cJSON_GetObjectItem(cJSON_GetObjectItem(ev.get(),
	    "data"), "addr")->valuestring;
	EXPECT_EQ(addr.rfind("127.0.0.1:", 0), 0u) << addr;
	r.reset(adm.Do("show clients"));
	ASSERT_TRUE(IsOk(r.get()));
	cJSON *cl = FindClient(r.get(), "nodekey:" + Hex(pub, 32));
	ASSERT_NE(cl, nullptr);
	EXPECT_EQ(addr, cJSON_GetObjectItem(cl, "addr")->valuestring);
	/* The log is read by another thread: wait for the line. */
	EXPECT_TRUE(d.WaitLog("connected (admitted: allowlist)", 3000));
	EXPECT_EQ(d.Log().find("::ffff:"), std::string::npos)
	    << "the log shows a mapped address";
}

TEST_F(ControlTest, ReloadWithBrokenCertificateKeepsTheOldOne)
{
	std::string certs = d.dir + "/certs";
	ASSERT_TRUE(StartWithAdmin({ "--certmode=manual",
	    "--hostname=127.0.0.1", "--certdir=" + certs }));
	ASSERT_TRUE(d.tls);
	{
		std::ofstream f(certs + "/127.0.0.1.crt", std::ios::trunc);
		f << "-----BEGIN CERTIFICATE-----\ngarbage\n"
		    "-----END CERTIFICATE-----\n";
	}
	Admin adm(sock);
	Json r(adm.Do("reload"));
	ASSERT_NE(r.get(), nullptr);
	EXPECT_FALSE(IsOk(r.get()));
	EXPECT_EQ(ErrCode(r.get()), "failed");
	cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(r.get(), "error"),
	    "message");
	ASSERT_TRUE(cJSON_IsString(m));
	EXPECT_NE(std::string(m->valuestring).find("old configuration kept"),
	    std::string::npos) << m->valuestring;
	/* The old certificate is still served. */
	Client a = d.Connect(), b = d.Connect();
	ASSERT_TRUE(a && b);
	EXPECT_TRUE(SendRecv(a.get(), b.get(), "over tls"));
}

TEST_F(ControlTest, MonitorStreamsConnectAndDisconnect)
{
	ASSERT_TRUE(StartWithAdmin());
	Admin mon(sock);
	Json r(mon.Do("monitor"));
	ASSERT_TRUE(IsOk(r.get()));
	std::string key;
	{
		Client a = d.Connect();
		ASSERT_TRUE(a);
		key = NodeKey(a.get());
		std::string l = mon.Line();
		Json ev(cJSON_Parse(l.c_str()));
		ASSERT_NE(ev.get(), nullptr) << l;
		EXPECT_STREQ(cJSON_GetObjectItem(ev.get(), "event")->valuestring,
		    "client.connect");
		EXPECT_EQ(cJSON_GetObjectItem(ev.get(), "id")->valuedouble,
		    mon.id());
		EXPECT_EQ(std::string(cJSON_GetObjectItem(cJSON_GetObjectItem(
		    ev.get(), "data"), "key")->valuestring), key);
	}
	std::string l = mon.Line();
	Json ev(cJSON_Parse(l.c_str()));
	ASSERT_NE(ev.get(), nullptr) << l;
	EXPECT_STREQ(cJSON_GetObjectItem(ev.get(), "event")->valuestring,
	    "client.disconnect");
	EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetObjectItem(ev.get(), "data"),
	    "reason")->valuestring, "eof");
}

TEST_F(ControlTest, ReadOnlySocketOnlyShows)
{
	std::string ro = d.dir + "/ro.sock";
	ASSERT_TRUE(StartWithAdmin({ "--admin-socket-ro=" + ro }));
	Admin adm(ro);
	Json r(adm.Do("show stats"));
	EXPECT_TRUE(IsOk(r.get()));
	r.reset(adm.Do("reload"));
	EXPECT_EQ(ErrCode(r.get()), "permission_denied");
	r.reset(adm.Do("kick", "{\"key\":\"nodekey:" + std::string(64, 'a') +
	    "\"}"));
	EXPECT_EQ(ErrCode(r.get()), "permission_denied");
	r.reset(adm.Do("log verbose"));
	EXPECT_EQ(ErrCode(r.get()), "permission_denied");
}

TEST_F(ControlTest, BadInputGetsAnswersAndNeverHurtsTheDaemon)
{
	ASSERT_TRUE(StartWithAdmin());
	{
		Admin adm(sock);
		ASSERT_TRUE(adm.Send("this is not json\n"));
		Json r(cJSON_Parse(adm.Line().c_str()));
		EXPECT_EQ(ErrCode(r.get()), "bad_request");
		r.reset(adm.Do("no such command"));
		EXPECT_EQ(ErrCode(r.get()), "unknown_command");
		ASSERT_TRUE(adm.Send("{\"v\":9,\"id\":1,\"cmd\":\"show stats\"}\n"));
		r.reset(cJSON_Parse(adm.Line().c_str()));
		EXPECT_EQ(ErrCode(r.get()), "bad_request");
		/* Unknown fields are ignored. */
		ASSERT_TRUE(adm.Send("{\"v\":1,\"id\":7,\"cmd\":\"show stats\","
		    "\"extra\":[1,2]}\n"));
		r.reset(cJSON_Parse(adm.Line().c_str()));
		EXPECT_TRUE(IsOk(r.get()));
		EXPECT_EQ(cJSON_GetObjectItem(r.get(), "id")->valuedouble, 7);
	}
	{
		/* Over 64 KiB without a newline: the daemon hangs up. */
		Admin adm(sock);
		std::string big(70 * 1024, 'x');
		adm.Send(big);
		EXPECT_EQ(adm.Line(3000), "");
		EXPECT_TRUE(d.WaitLog("over 65536 bytes", 3000));
	}
	{
		/* Half a request, then gone. */
		Admin adm(sock);
		ASSERT_TRUE(adm.Send("{\"v\":1,\"id\":1,\"cmd\":\"show"));
	}
	Admin adm(sock);
	Json r(adm.Do("show stats"));
	EXPECT_TRUE(IsOk(r.get()));
	Client a = d.Connect(), b = d.Connect();
	ASSERT_TRUE(a && b);
	EXPECT_TRUE(SendRecv(a.get(), b.get(), "fine"));
}

TEST_F(ControlTest, FiftyAdminClientsWhileRelaying)
{
	ASSERT_TRUE(StartWithAdmin());
	Client a = d.Connect(), b = d.Connect();
	ASSERT_TRUE(a && b);
	std::atomic<int> ok{0}, bad{0};
	std::atomic<bool> stop{false};
	/* Relay in the background, bounded in count. */
	std::thread relay([&] {
		uint8_t src[32];
		char buf[2048];
		for (int i = 0; i < 2000 && !stop; i++) {
			if (derpc_send_packet(a.get(), derpc_pub(b.get()), "x",
			    1) != DERPC_OK)
				break;
			size_t n;
			if (derpc_recv_packet(b.get(), src, buf, sizeof(buf), &n,
			    3000) != DERPC_OK)
				break;
		}
	});
	std::vector<std::thread> admins;
	for (int t = 0; t < 50; t++)
		admins.emplace_back([&] {
			Admin adm(sock);
			if (!adm.ok()) {
				bad++;
				return;
			}
			for (int i = 0; i < 10; i++) {
				Json r(adm.Do(i % 2 ? "show clients" : "show stats"));
				if (IsOk(r.get()))
					ok++;
				else
					bad++;
			}
		});
	for (auto &t : admins)
		t.join();
	stop = true;
	relay.join();
	EXPECT_EQ(ok.load(), 500);
	EXPECT_EQ(bad.load(), 0);
	EXPECT_TRUE(SendRecv(a.get(), b.get(), "after"));
	EXPECT_EQ(d.Metric("derpd_connections_closed{reason=\"write_timeout\"}"),
	    0);
}

// VmRSS of pid in KiB, -1 if unreadable.
long
RssKb(pid_t pid)
{
	std::ifstream f("/proc/" + std::to_string(pid) + "/status");
	std::string line;
	while (std::getline(f, line))
		if (line.compare(0, 6, "VmRSS:") == 0)
			return strtol(line.c_str() + 6, nullptr, 10);
	return -1;
}

// The pid at the other end of a Unix socket (the daemon), -1 if unknown.
pid_t
PeerPid(int fd)
{
	struct ucred cred;
	socklen_t cl = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == -1)
		return -1;
	return cred.pid;
}

// Pipeline "show stats" on path for ms without reading a reply; returns
// the daemon's RSS growth in KiB (measured while the client is still
// connected) and the bytes of requests the daemon took in *sent.
long
NeverReader(const std::string &path, int ms, size_t *sent)
{
	Admin adm(path);
	EXPECT_TRUE(adm.ok());
	if (!adm.ok())
		return -1;
	pid_t pid = PeerPid(adm.fd());
	/* Warm up (the first reply allocates what every reply reuses). */
	Json r(adm.Do("show stats"));
	EXPECT_TRUE(IsOk(r.get()));
	long before = RssKb(pid);
	std::string batch;
	for (int i = 0; i < 64; i++)
		batch += "{\"v\":1,\"id\":" + std::to_string(i + 2) +
		    ",\"cmd\":\"show stats\"}\n";
	fcntl(adm.fd(), F_SETFL, fcntl(adm.fd(), F_GETFL) | O_NONBLOCK);
	auto end = Clock::now() + std::chrono::milliseconds(ms);
	size_t off = 0;
	*sent = 0;
	long peak = before;
	int turns = 0;
	while (Clock::now() < end) {
		ssize_t n = write(adm.fd(), batch.data() + off,
		    batch.size() - off);
		if (n > 0) {
			*sent += (size_t)n;
			off = (off + (size_t)n) % batch.size();
		} else if (n == -1 && errno == EAGAIN) {
			struct pollfd p = { adm.fd(), POLLOUT, 0 };
			poll(&p, 1, 10);
		} else
			break;
		if (++turns % 256 == 0) {
			long now = RssKb(pid);
			if (now > peak)
				peak = now;
		}
	}
	long after = RssKb(pid);
	if (after > peak)
		peak = after;
	return peak - before;
}

// An admin client that pipelines requests and never reads the replies
// costs the daemon a bounded amount of memory: past a high-water mark of
// pending output the daemon stops reading its requests (issue 7). The
// same on the read-only socket. Other admin clients are served meanwhile.
TEST_F(ControlTest, NeverReadingClientIsBounded)
{
	std::string ro = d.dir + "/ro.sock";
	ASSERT_TRUE(StartWithAdmin({ "--admin-socket-ro=" + ro }));
	for (const std::string &path : { sock, ro }) {
		size_t sent = 0;
		long grew;
		{
			Admin other(path);
			grew = NeverReader(path, 6000, &sent);
			/* Another admin client still gets its answer. */
			Json r(other.Do("show stats"));
			EXPECT_TRUE(IsOk(r.get()));
		}
		printf("[ INFO     ] never-reader on %s: %zu bytes of requests "
		    "taken, RSS grew %ld KiB in 6 s\n", path == ro ?
		    "the read-only socket" : "the admin socket", sent, grew);
		EXPECT_GE(grew, 0);
		EXPECT_LT(grew, 16 * 1024) << "RSS grew " << grew << " KiB";
	}
	/* The daemon stopped reading: the counter says so. */
	Admin adm(sock);
	Json r(adm.Do("show stats"));
	ASSERT_TRUE(IsOk(r.get()));
	cJSON *v = cJSON_GetObjectItem(Result(r.get(), "stats"),
	    "derpd_admin_read_pauses");
	ASSERT_TRUE(cJSON_IsNumber(v));
	EXPECT_GE(v->valuedouble, 2);
	EXPECT_GE(d.Metric("derpd_admin_read_pauses"), 2);
}

// A monitor that does not read: past its output cap events are dropped
// for it and counted, and when it catches up it is told how many it
// missed ("monitor.dropped") before the next event.
TEST_F(ControlTest, SlowMonitorDropsAreCountedAndTold)
{
	ASSERT_TRUE(StartWithAdmin());
	Admin mon(sock);
	Json r(mon.Do("monitor"));
	ASSERT_TRUE(IsOk(r.get()));
	/* Connect and leave, bounded, until events are being dropped. */
	const char *kDropped = "derpd_admin_monitor_events_dropped";
	std::atomic<int> done{ 0 };
	std::atomic<bool> stop{ false };
	auto t0 = Clock::now();
	std::vector<std::thread> ts;
	for (int t = 0; t < 4; t++)
		ts.emplace_back([&] {
			while (!stop && done < 8000 && MsSince(t0) < 20000) {
				Client c = d.Connect();
				done++;
			}
		});
	while (!stop && done < 8000 && MsSince(t0) < 20000) {
		usleep(100000);
		if (d.Metric(kDropped) > 0)
			stop = true;
	}
	stop = true;
	for (auto &t : ts)
		t.join();
	/* Let the last disconnects reach the monitor, then read it all. */
	EXPECT_EQ(d.WaitMetric("derpd_current_sockets", 1), 1);
	usleep(300000);
	int64_t dropped = d.Metric(kDropped);
	printf("[ INFO     ] %d connects; %lld events dropped for the "
	    "monitor\n", done.load(), (long long)dropped);
	ASSERT_GT(dropped, 0);
	int lines = 0;
	while (!mon.Line(500).empty())
		lines++;
	EXPECT_GT(lines, 1000);
	Client c = d.Connect();
	ASSERT_TRUE(c);
	Json gap(cJSON_Parse(mon.Line().c_str()));
	ASSERT_NE(gap.get(), nullptr);
	EXPECT_STREQ(cJSON_GetObjectItem(gap.get(), "event")->valuestring,
	    "monitor.dropped");
	EXPECT_EQ(cJSON_GetObjectItem(gap.get(), "id")->valuedouble, mon.id());
	EXPECT_EQ(cJSON_GetObjectItem(cJSON_GetObjectItem(gap.get(), "data"),
	    "dropped")->valuedouble, (double)dropped);
	Json ev(cJSON_Parse(mon.Line().c_str()));
	ASSERT_NE(ev.get(), nullptr);
	EXPECT_STREQ(cJSON_GetObjectItem(ev.get(), "event")->valuestring,
	    "client.connect");
	/* Still a working admin connection. */
	r.reset(mon.Do("show stats"));
	EXPECT_TRUE(IsOk(r.get()));
}

// Run derpctl (next to $DERPD) with args; returns the exit status and
// fills out/err.
int
Derpctl(const std::string &dir, const std::string &args, std::string *out,
    std::string *err)
{
	const char *d = getenv("DERPD");
	std::string bin = d ? std::string(d) : "build/derpd";
	bin = bin.substr(0, bin.rfind('/') + 1) + "derpctl";
	std::string o = dir + "/ctl.out", e = dir + "/ctl.err";
	std::string cmd = bin + " " + args + " >" + o + " 2>" + e +
	    " </dev/null";
	int rc = system(cmd.c_str());
	auto slurp = [](const std::string &p) {
		std::ifstream f(p);
		return std::string((std::istreambuf_iterator<char>(f)),
		    std::istreambuf_iterator<char>());
	};
	*out = slurp(o);
	*err = slurp(e);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

TEST_F(ControlTest, DerpctlShowsClientsAsTableAndJson)
{
	ASSERT_TRUE(StartWithAdmin());
	Client a = d.Connect(), b = d.Connect();
	ASSERT_TRUE(a && b);
	ASSERT_TRUE(SendRecv(a.get(), b.get(), "ping"));
	std::string out, err;
	ASSERT_EQ(Derpctl(d.dir, "-s " + sock + " show clients", &out, &err),
	    0) << err;
	EXPECT_NE(out.find("KEY"), std::string::npos) << out;
	EXPECT_NE(out.find("ADDR"), std::string::npos) << out;
	std::string hex = Hex(derpc_pub(a.get()), 32);
	EXPECT_NE(out.find(hex.substr(0, 6)), std::string::npos) << out;
	printf("derpctl show clients:\n%s", out.c_str());
	ASSERT_EQ(Derpctl(d.dir, "-j -s " + sock + " show clients", &out, &err),
	    0) << err;
	Json j(cJSON_Parse(out.c_str()));
	ASSERT_NE(j.get(), nullptr) << out;
	EXPECT_EQ(cJSON_GetArraySize(cJSON_GetObjectItem(j.get(), "clients")),
	    2) << out;
	/* Abbreviated, as bgpctl allows. */
	EXPECT_EQ(Derpctl(d.dir, "-s " + sock + " sh st", &out, &err), 0) << err;
	EXPECT_NE(out.find("derp_accepts"), std::string::npos) << out;
}

TEST_F(ControlTest, DerpctlKicksAndShowsRejects)
{
	std::string allow = d.dir + "/allow";
	Client keep;
	{
		uint8_t priv[32], pub[32];
		derpc_keygen(priv, pub);
		std::ofstream(allow) << "nodekey:" << Hex(pub, 32) << "\n";
		ASSERT_TRUE(StartWithAdmin({ "--allow-keys=" + allow }));
		derpc_opts o = d.Opts();
		o.priv = priv;
		keep = d.Connect(o);
		ASSERT_TRUE(keep);
	}
	for (int i = 0; i < 2; i++)
		EXPECT_FALSE(d.Connect());	/* not listed: refused */
	std::string out, err;
	ASSERT_EQ(Derpctl(d.dir, "-s " + sock + " show rejects", &out, &err),
	    0) << err;
	EXPECT_NE(out.find("not_in_allowlist"), std::string::npos) << out;
	EXPECT_NE(out.find("127.0.0.1"), std::string::npos) << out;
	printf("derpctl show rejects:\n%s", out.c_str());
	ASSERT_EQ(Derpctl(d.dir, "-s " + sock + " kick " +
	    Hex(derpc_pub(keep.get()), 32), &out, &err), 0) << err;
	EXPECT_TRUE(ClosedWithin(keep.get(), 3000));
	EXPECT_EQ(Derpctl(d.dir, "-s " + sock + " kick " +
	    Hex(derpc_pub(keep.get()), 32), &out, &err), 1);
	EXPECT_NE(err.find("no such client"), std::string::npos) << err;
}

TEST_F(ControlTest, ReverifyClosesAKeyThatWasRemoved)
{
	std::string allow = d.dir + "/allow";
	uint8_t pa[32], ka[32], pb[32], kb[32];
	derpc_keygen(pa, ka);
	derpc_keygen(pb, kb);
	std::ofstream(allow) << "nodekey:" << Hex(ka, 32) << "\nnodekey:" <<
	    Hex(kb, 32) << "\n";
	ASSERT_TRUE(StartWithAdmin({ "--allow-keys=" + allow,
	    "--auth-reverify=200ms" }));
	derpc_opts o = d.Opts();
	o.priv = pa;
	Client a = d.Connect(o);
	o.priv = pb;
	Client b = d.Connect(o);
	ASSERT_TRUE(a && b);
	ASSERT_TRUE(SendRecv(a.get(), b.get(), "before"));
	/* A leaves the list; B stays. */
	std::ofstream(allow, std::ios::trunc) << "nodekey:" << Hex(kb, 32) <<
	    "\n";
	Admin adm(sock);
	Json r(adm.Do("reload"));
	ASSERT_TRUE(IsOk(r.get()));
	EXPECT_TRUE(ClosedWithin(a.get(), 3000));
	EXPECT_EQ(d.WaitMetric("derpd_admission_rejects{reason=\"revoked\"}",
	    1), 1);
	EXPECT_EQ(d.Metric("derpd_connections_closed{reason=\"revoked\"}"), 1);
	/* B heard that A left, was re-verified too, and still relays. */
	derpc_frame f;
	EXPECT_TRUE(RecvType(b.get(), 0x08, &f, 3000));
	usleep(500000);		/* a couple more re-verification rounds */
	EXPECT_TRUE(SendRecv(b.get(), b.get(), "after"));
	EXPECT_EQ(d.Metric("derpd_admission_rejects{reason=\"revoked\"}"), 1);
	r.reset(adm.Do("show rejects"));
	ASSERT_TRUE(IsOk(r.get()));
	EXPECT_STREQ(cJSON_GetObjectItem(cJSON_GetArrayItem(Result(r.get(),
	    "rejects"), 0), "reason")->valuestring, "revoked");
}

TEST_F(ControlTest, DerpctlSaysWhenDerpdIsNotRunning)
{
	std::string out, err;
	EXPECT_EQ(Derpctl(d.dir, "-s " + d.dir + "/nothing.sock show stats",
	    &out, &err), 1);
	EXPECT_NE(err.find("not running"), std::string::npos) << err;
	EXPECT_NE(Derpctl(d.dir, "-s " + d.dir + "/nothing.sock frobnicate",
	    &out, &err), 0);
}

// A TCP socket bound to 127.0.0.1:<*port> and left open; listen() when
// listening, else a connect to the port is refused while the socket
// keeps the port from anyone else. -1 on failure.
int
BindLoopback(int *port, bool listening)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) == -1 ||
	    (listening && listen(fd, 1) == -1)) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	*port = ntohs(sin.sin_port);
	return fd;
}

// TS_DEBUG_USE_DERP_HTTP=1 for the daemons this test starts (derpd
// inherits the environment): mesh links over plain HTTP.
class PlainMeshEnv {
public:
	PlainMeshEnv()
	{
		const char *v = getenv("TS_DEBUG_USE_DERP_HTTP");
		had_ = v != nullptr;
		if (had_)
			old_ = v;
		setenv("TS_DEBUG_USE_DERP_HTTP", "1", 1);
	}
	~PlainMeshEnv()
	{
		if (had_)
			setenv("TS_DEBUG_USE_DERP_HTTP", old_.c_str(), 1);
		else
			unsetenv("TS_DEBUG_USE_DERP_HTTP");
	}
private:
	bool had_ = false;
	std::string old_;
};

std::string
Str(cJSON *o, const char *name)
{
	cJSON *s = cJSON_GetObjectItem(o, name);
	return cJSON_IsString(s) ? s->valuestring : "";
}

double
Num(cJSON *o, const char *name)
{
	cJSON *n = cJSON_GetObjectItem(o, name);
	return cJSON_IsNumber(n) ? n->valuedouble : -1;
}

// Ask show mesh until its only peer satisfies done (or 5 s pass); the
// last reply, for the checks that follow.
template <typename Pred>
Json
WaitMesh(Admin &adm, Pred done)
{
	Json r;
	int64_t deadline = Clock::now().time_since_epoch() /
	    std::chrono::milliseconds(1) + 5000;
	for (;;) {
		r.reset(adm.Do("show mesh"));
		cJSON *p = cJSON_GetArrayItem(Result(r.get(), "mesh"), 0);
		if (p != nullptr && done(p))
			return r;
		if (Clock::now().time_since_epoch() /
		    std::chrono::milliseconds(1) > deadline)
			return r;
		usleep(50000);
	}
}

TEST_F(ControlTest, ShowMeshIsEmptyWithoutMeshWith)
{
	std::string ro = d.dir + "/ro.sock";
	ASSERT_TRUE(StartWithAdmin({ "--admin-socket-ro=" + ro }));
	Admin adm(ro);
	Json r(adm.Do("show mesh"));
	ASSERT_TRUE(IsOk(r.get()));
	cJSON *arr = Result(r.get(), "mesh");
	ASSERT_TRUE(cJSON_IsArray(arr));
	EXPECT_EQ(cJSON_GetArraySize(arr), 0);
}

// A peer where nothing answers: connecting or waiting to retry, with
// the refusal as its last error, and no routes.
TEST_F(ControlTest, ShowMeshReportsAPeerThatRefuses)
{
	PlainMeshEnv plain;
	int port = 0;
	int fd = BindLoopback(&port, false);
	ASSERT_NE(fd, -1) << strerror(errno);
	std::string peer = "127.0.0.1:" + std::to_string(port);
	std::string ro = d.dir + "/ro.sock";
	sock = d.dir + "/admin.sock";
	ASSERT_TRUE(StartMesh({ "--admin-socket=" + sock,
	    "--admin-socket-ro=" + ro, "--mesh-with=" + peer }));
	Admin adm(ro);	/* show mesh is allowed on the read-only socket */
	Json r = WaitMesh(adm, [](cJSON *p) {
		return !Str(p, "last_error").empty();
	});
	ASSERT_TRUE(IsOk(r.get()));
	cJSON *arr = Result(r.get(), "mesh");
	ASSERT_EQ(cJSON_GetArraySize(arr), 1);
	cJSON *p = cJSON_GetArrayItem(arr, 0);
	char *text = cJSON_PrintUnformatted(p);
	printf("show mesh: %s\n", text);
	cJSON_free(text);
	EXPECT_EQ(Str(p, "host"), peer);
	EXPECT_EQ(Str(p, "dial"), peer);
	std::string st = Str(p, "state");
	EXPECT_TRUE(st == "connecting" || st == "backoff") << st;
	std::string e = Str(p, "last_error");
	EXPECT_NE(e.find("refused"), std::string::npos) << e;
	EXPECT_EQ(Num(p, "routes"), 0);
	EXPECT_EQ(Num(p, "connects"), 0);
	EXPECT_EQ(Num(p, "reconnects"), 0);
	EXPECT_EQ(Num(p, "packets_out"), 0);
	EXPECT_EQ(Num(p, "packets_in"), 0);
	EXPECT_EQ(Num(p, "inbound"), 0);
	EXPECT_TRUE(cJSON_IsNull(cJSON_GetObjectItem(p, "key")));
	double since = Num(p, "since");
	EXPECT_GT(since, (double)time(nullptr) - 60);
	EXPECT_LE(since, (double)time(nullptr));

	/* derpctl shows the same as a table, and -j as the daemon's JSON. */
	std::string out, err;
	ASSERT_EQ(Derpctl(d.dir, "-s " + ro + " show mesh", &out, &err), 0)
	    << err;
	printf("derpctl show mesh:\n%s", out.c_str());
	EXPECT_EQ(out.rfind("HOST", 0), 0u) << out;
	EXPECT_NE(out.find("LAST ERROR"), std::string::npos) << out;
	EXPECT_NE(out.find(peer), std::string::npos) << out;
	EXPECT_NE(out.find("refused"), std::string::npos) << out;
	ASSERT_EQ(Derpctl(d.dir, "-j -s " + sock + " sh m", &out, &err), 0)
	    << err;
	Json j(cJSON_Parse(out.c_str()));
	ASSERT_NE(j.get(), nullptr) << out;
	EXPECT_EQ(Str(cJSON_GetArrayItem(cJSON_GetObjectItem(j.get(), "mesh"),
	    0), "host"), peer) << out;
	close(fd);
}

// --mesh-with naming the daemon itself: it dials, meets its own server
// key and stops there, as derper does.
TEST_F(ControlTest, ShowMeshReportsSelf)
{
	PlainMeshEnv plain;
	int port = 0;
	/* A free port for -a, known before the start; released just before. */
	int fd = BindLoopback(&port, false);
	ASSERT_NE(fd, -1) << strerror(errno);
	close(fd);
	std::string self = "127.0.0.1:" + std::to_string(port);
	sock = d.dir + "/admin.sock";
	ASSERT_TRUE(StartMesh({ "-a", self, "--admin-socket=" + sock,
	    "--mesh-with=" + self }));
	ASSERT_EQ(d.port, port);
	Admin adm(sock);
	Json r = WaitMesh(adm, [](cJSON *p) {
		return Str(p, "state") == "self";
	});
	ASSERT_TRUE(IsOk(r.get()));
	cJSON *arr = Result(r.get(), "mesh");
	ASSERT_EQ(cJSON_GetArraySize(arr), 1);
	cJSON *p = cJSON_GetArrayItem(arr, 0);
	char *text = cJSON_PrintUnformatted(p);
	printf("show mesh: %s\n", text);
	cJSON_free(text);
	EXPECT_EQ(Str(p, "state"), "self");
	EXPECT_EQ(Str(p, "host"), self);
	EXPECT_EQ(Str(p, "key"), "nodekey:" + d.server_hex);
	EXPECT_EQ(Num(p, "routes"), 0);
	EXPECT_EQ(Num(p, "inbound"), 0);
	EXPECT_TRUE(d.WaitLog("detected self-connect", 2000));
	std::string out, err;
	ASSERT_EQ(Derpctl(d.dir, "-s " + sock + " show mesh", &out, &err), 0)
	    << err;
	printf("derpctl show mesh:\n%s", out.c_str());
	EXPECT_NE(out.find(" self "), std::string::npos) << out;
	EXPECT_NE(out.find("nodekey:" + d.server_hex.substr(0, 6)),
	    std::string::npos) << out;
}

// Find the show-mesh row of host in r.
cJSON *
MeshRow(cJSON *r, const std::string &host)
{
	cJSON *it;

	cJSON_ArrayForEach(it, Result(r, "mesh"))
		if (Str(it, "host") == host)
			return it;
	return nullptr;
}

// Two nodes, each --mesh-with the other: a packet from A's client to B's
// is out on A's row for B and in on B's row for A (A's link into B).
TEST_F(ControlTest, ShowMeshCountsEachWay)
{
	PlainMeshEnv plain;
	int pa = 0, pb = 0;
	int fa = BindLoopback(&pa, false), fb = BindLoopback(&pb, false);
	ASSERT_TRUE(fa != -1 && fb != -1) << strerror(errno);
	close(fa);
	close(fb);
	std::string ha = "127.0.0.1:" + std::to_string(pa);
	std::string hb = "127.0.0.1:" + std::to_string(pb);
	sock = d.dir + "/admin.sock";
	ASSERT_TRUE(StartMesh({ "-a", ha, "--admin-socket=" + sock,
	    "--mesh-with=" + hb }));
	Derpd other;
	std::string sock_b = other.dir + "/admin.sock";
	ASSERT_TRUE(other.Start({ "-a", hb, "--admin-socket=" + sock_b,
	    "--mesh-psk-file=" + d.dir + "/mesh.key", "--mesh-with=" + ha }));
	Admin adm_a(sock), adm_b(sock_b);
	ASSERT_TRUE(adm_a.ok() && adm_b.ok());
	Json r = WaitMesh(adm_a, [](cJSON *p) {
		return Str(p, "state") == "connected";
	});
	ASSERT_EQ(Str(MeshRow(r.get(), hb), "state"), "connected");
	r = WaitMesh(adm_b, [](cJSON *p) {
		return Str(p, "state") == "connected";
	});
	ASSERT_EQ(Str(MeshRow(r.get(), ha), "state"), "connected");

	Client a = d.Connect(), b = other.Connect();
	ASSERT_TRUE(a && b);
	/* A learns b from B asynchronously: send until one arrives. */
	bool delivered = false;
	for (int i = 0; i < 50 && !delivered; i++)
		delivered = SendRecv(a.get(), b.get(), "over the mesh", 200);
	ASSERT_TRUE(delivered);

	/*
	 * A counted every packet before b got the last one; B may still be
	 * reading one that an earlier, timed-out SendRecv left in flight.
	 */
	usleep(300000);
	Json ra(adm_a.Do("show mesh"));
	cJSON *a_to_b = MeshRow(ra.get(), hb);
	ASSERT_NE(a_to_b, nullptr);
	double out = Num(a_to_b, "packets_out");
	Json rb = WaitMesh(adm_b, [out](cJSON *p) {
		return Num(p, "packets_in") >= out;
	});
	cJSON *b_from_a = MeshRow(rb.get(), ha);
	ASSERT_NE(b_from_a, nullptr);
	for (cJSON *p : { a_to_b, b_from_a }) {
		char *text = cJSON_PrintUnformatted(p);
		printf("show mesh: %s\n", text);
		cJSON_free(text);
	}
	EXPECT_EQ(Str(a_to_b, "key"), "nodekey:" + other.server_hex);
	EXPECT_EQ(Str(b_from_a, "key"), "nodekey:" + d.server_hex);
	EXPECT_GE(Num(a_to_b, "routes"), 1);
	EXPECT_GE(Num(a_to_b, "packets_out"), 1);
	EXPECT_GE(Num(a_to_b, "bytes_out"), 13);
	EXPECT_EQ(Num(b_from_a, "inbound"), 1);
	EXPECT_EQ(Num(b_from_a, "packets_in"), Num(a_to_b, "packets_out"));
	EXPECT_GE(Num(b_from_a, "bytes_in"), Num(a_to_b, "bytes_out"));
	/* Nothing went from B to A. */
	EXPECT_EQ(Num(b_from_a, "packets_out"), 0);
	EXPECT_EQ(Num(a_to_b, "inbound"), 1);
	EXPECT_EQ(Num(a_to_b, "packets_in"), 0);
	if (HasFailure())
		fprintf(stderr, "--- the other derpd ---\n%s\n",
		    other.Log().c_str());
	other.Stop();
}

} // namespace
