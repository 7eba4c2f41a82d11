// SPDX-License-Identifier: ISC
// notify_test.cc: sd_notify readiness on $NOTIFY_SOCKET against the real
// daemon, with a datagram socket of our own standing in for systemd (no
// systemd needed): READY=1 only once the TCP port, the STUN port and the
// admin socket all answer; RELOADING=1 and READY=1 around derpctl reload
// and SIGHUP; STOPPING=1 on SIGTERM.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "stun.h"

namespace {

// A free loopback port of the given type (the kernel's choice, released
// again; the daemon binds it a moment later).
int
FreePort(int type)
{
	int fd = socket(AF_INET, type | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(&sin, 0, sizeof(sin));
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

// The notify socket: an abstract datagram socket (the form systemd uses
// for its own tests), or a path one.
class NotifySock {
public:
	explicit NotifySock(const std::string &name) : name_(name)
	{
		struct sockaddr_un sun;
		socklen_t len;

		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, name.data(), name.size());
		if (name[0] == '@') {
			sun.sun_path[0] = '\0';
			len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) +
			    name.size());
		} else
			len = sizeof(sun);
		fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd_ != -1 && bind(fd_, (struct sockaddr *)&sun, len) == -1) {
			close(fd_);
			fd_ = -1;
		}
	}
	~NotifySock() { if (fd_ != -1) close(fd_); }
	bool ok() const { return fd_ != -1; }
	// The next datagram, "" after timeout_ms.
	std::string Next(int timeout_ms = 5000)
	{
		struct pollfd p = { fd_, POLLIN, 0 };
		char b[4096];

		if (poll(&p, 1, timeout_ms) != 1)
			return "";
		ssize_t n = recv(fd_, b, sizeof(b), 0);
		return n > 0 ? std::string(b, (size_t)n) : "";
	}
	bool Quiet(int ms)
	{
		struct pollfd p = { fd_, POLLIN, 0 };
		return poll(&p, 1, ms) == 0;
	}

private:
	std::string name_;
	int fd_ = -1;
};

bool
Has(const std::string &msg, const std::string &line)
{
	return ("\n" + msg + "\n").find("\n" + line + "\n") != std::string::npos;
}

bool
TcpConnects(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	bool ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(fd);
	return ok;
}

bool
UnixConnects(const std::string &path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sun;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strncpy(sun.sun_path, path.c_str(), sizeof(sun.sun_path) - 1);
	bool ok = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	close(fd);
	return ok;
}

// A STUN binding request to the port gets a response within 2 s.
bool
StunAnswers(int port)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin;
	uint8_t req[64], txid[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
	uint8_t resp[512];

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin.sin_port = htons((uint16_t)port);
	size_t n = stun_build_request(req, txid);
	bool ok = false;
	if (sendto(fd, req, n, 0, (struct sockaddr *)&sin, sizeof(sin)) ==
	    (ssize_t)n) {
		struct pollfd p = { fd, POLLIN, 0 };
		ok = poll(&p, 1, 2000) == 1 &&
		    recv(fd, resp, sizeof(resp), 0) > 20;
	}
	close(fd);
	return ok;
}

int
Derpctl(const std::string &args)
{
	const char *d = getenv("DERPD");
	std::string bin = d ? std::string(d) : "build/derpd";
	bin = bin.substr(0, bin.rfind('/') + 1) + "derpctl";
	int rc = system((bin + " " + args + " >/dev/null 2>&1 </dev/null")
	    .c_str());
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

class NotifyTest : public DerpdTest {};

TEST_F(NotifyTest, ReadyAfterListenersReloadingAroundReloadStoppingOnTerm)
{
	std::string name = "@derpd-it-notify-" + std::to_string(getpid());
	NotifySock ns(name);
	ASSERT_TRUE(ns.ok());
	int port = FreePort(SOCK_STREAM), sport = FreePort(SOCK_DGRAM);
	ASSERT_GT(port, 0);
	ASSERT_GT(sport, 0);
	std::string sock = d.dir + "/admin.sock";

	// A thread of ours waits for READY=1 and, at that moment, tries
	// every listener; this thread starts the daemon (which must stay
	// its parent: the harness ties its life to the forking thread).
	ASSERT_EQ(setenv("NOTIFY_SOCKET", name.c_str(), 1), 0);
	std::string m;
	bool tcp = false, adm = false, stun = false;
	std::thread t([&] {
		m = ns.Next(10000);
		tcp = TcpConnects(port);
		adm = UnixConnects(sock);
		stun = StunAnswers(sport);
	});
	bool started = d.Start({ "-a", "127.0.0.1:" + std::to_string(port),
	    "--stun-port=" + std::to_string(sport), "-admin-socket", sock });
	t.join();
	unsetenv("NOTIFY_SOCKET");
	ASSERT_TRUE(started);
	ASSERT_TRUE(Has(m, "READY=1")) << m;
	EXPECT_TRUE(Has(m, "STATUS=ready")) << m;
	EXPECT_TRUE(tcp) << "READY=1 before the TCP port accepted";
	EXPECT_TRUE(adm) << "READY=1 before the admin socket accepted";
	EXPECT_TRUE(stun) << "READY=1 before STUN answered";
	EXPECT_TRUE(ns.Quiet(200));

	// derpctl reload: RELOADING=1 with a monotonic time, then READY=1.
	ASSERT_EQ(Derpctl("-s " + sock + " reload"), 0);
	m = ns.Next();
	EXPECT_TRUE(Has(m, "RELOADING=1")) << m;
	EXPECT_NE(m.find("\nMONOTONIC_USEC="), std::string::npos) << m;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	unsigned long long usec = strtoull(m.substr(m.find("MONOTONIC_USEC=")
	    + 15).c_str(), nullptr, 10);
	EXPECT_GT(usec, 0u) << m;
	EXPECT_LE(usec, (unsigned long long)ts.tv_sec * 1000000ULL +
	    (unsigned long long)ts.tv_nsec / 1000) << m;
	m = ns.Next();
	EXPECT_TRUE(Has(m, "READY=1")) << m;

	// SIGHUP: the same pair.
	d.Kill(SIGHUP);
	m = ns.Next();
	EXPECT_TRUE(Has(m, "RELOADING=1")) << m;
	m = ns.Next();
	EXPECT_TRUE(Has(m, "READY=1")) << m;

	// SIGTERM: STOPPING=1, and nothing after it.
	d.Stop();
	m = ns.Next();
	EXPECT_TRUE(Has(m, "STOPPING=1")) << m;
	EXPECT_TRUE(ns.Quiet(100));
}

// A path socket works too, and a NOTIFY_SOCKET that is not a socket
// address is logged and does not stop the daemon.
TEST_F(NotifyTest, PathSocketAndBadValue)
{
	std::string path = d.dir + "/notify";
	NotifySock ns(path);
	ASSERT_TRUE(ns.ok());
	ASSERT_EQ(setenv("NOTIFY_SOCKET", path.c_str(), 1), 0);
	bool ok = d.Start();
	unsetenv("NOTIFY_SOCKET");
	ASSERT_TRUE(ok);
	EXPECT_TRUE(Has(ns.Next(), "READY=1"));
	d.Stop();
	EXPECT_TRUE(Has(ns.Next(), "STOPPING=1"));

	Derpd d2;
	ASSERT_EQ(setenv("NOTIFY_SOCKET", "vsock:2:99", 1), 0);
	ok = d2.Start();
	unsetenv("NOTIFY_SOCKET");
	ASSERT_TRUE(ok);
	EXPECT_TRUE(d2.WaitLog("NOTIFY_SOCKET: not a path", 3000)) << d2.Log();
	d2.Stop();
}

} // namespace
