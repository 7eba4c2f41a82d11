// SPDX-License-Identifier: ISC
// notify_test.cc: $NOTIFY_SOCKET addresses, and one datagram through a
// real abstract socket.
#include <sys/socket.h>
#include <sys/un.h>
#include <poll.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "notify.h"

namespace {

TEST(NotifyAddr, Path)
{
	struct sockaddr_un sun;
	socklen_t len = 0;

	ASSERT_EQ(notify_addr("/run/systemd/notify", &sun, &len), 0);
	EXPECT_EQ(sun.sun_family, AF_UNIX);
	EXPECT_STREQ(sun.sun_path, "/run/systemd/notify");
	EXPECT_EQ(len, offsetof(struct sockaddr_un, sun_path) +
	    strlen("/run/systemd/notify") + 1);
}

TEST(NotifyAddr, Abstract)
{
	struct sockaddr_un sun;
	socklen_t len = 0;

	ASSERT_EQ(notify_addr("@derpd/x", &sun, &len), 0);
	EXPECT_EQ(sun.sun_path[0], '\0');
	EXPECT_EQ(std::string(sun.sun_path + 1, 7), "derpd/x");
	// No trailing NUL: the name is exactly the bytes after '@'.
	EXPECT_EQ(len, offsetof(struct sockaddr_un, sun_path) + 8);
}

TEST(NotifyAddr, Refused)
{
	struct sockaddr_un sun;
	socklen_t len;

	EXPECT_EQ(notify_addr("", &sun, &len), -1);
	EXPECT_EQ(notify_addr("/", &sun, &len), -1);
	EXPECT_EQ(notify_addr("@", &sun, &len), -1);
	EXPECT_EQ(notify_addr("relative/path", &sun, &len), -1);
	EXPECT_EQ(notify_addr("vsock:2:1234", &sun, &len), -1);
	// The longest path that fits with its NUL, and one more.
	std::string p = "/" + std::string(sizeof(sun.sun_path) - 2, 'a');
	EXPECT_EQ(notify_addr(p.c_str(), &sun, &len), 0);
	p += "a";
	EXPECT_EQ(notify_addr(p.c_str(), &sun, &len), -1);
	// An abstract name may use every byte of sun_path.
	std::string a = "@" + std::string(sizeof(sun.sun_path) - 1, 'b');
	EXPECT_EQ(notify_addr(a.c_str(), &sun, &len), 0);
	a += "b";
	EXPECT_EQ(notify_addr(a.c_str(), &sun, &len), -1);
}

TEST(NotifySend, AbstractSocketGetsTheDatagram)
{
	std::string name = "@derpd-notify-test-" + std::to_string(getpid());
	struct sockaddr_un sun;
	socklen_t len;
	ASSERT_EQ(notify_addr(name.c_str(), &sun, &len), 0);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	ASSERT_GE(fd, 0);
	ASSERT_EQ(bind(fd, (struct sockaddr *)&sun, len), 0);

	ASSERT_EQ(setenv("NOTIFY_SOCKET", name.c_str(), 1), 0);
	EXPECT_EQ(notify_send("READY=1\nSTATUS=x"), 0);
	notify_reloading();
	unsetenv("NOTIFY_SOCKET");
	EXPECT_EQ(notify_send("READY=1"), 0);	// unset: nothing, no error

	char buf[256];
	struct pollfd pfd = { fd, POLLIN, 0 };
	ASSERT_EQ(poll(&pfd, 1, 2000), 1);
	ssize_t n = recv(fd, buf, sizeof(buf), 0);
	ASSERT_GT(n, 0);
	EXPECT_EQ(std::string(buf, (size_t)n), "READY=1\nSTATUS=x");
	ASSERT_EQ(poll(&pfd, 1, 2000), 1);
	n = recv(fd, buf, sizeof(buf), 0);
	ASSERT_GT(n, 0);
	std::string r(buf, (size_t)n);
	EXPECT_EQ(r.rfind("RELOADING=1\nMONOTONIC_USEC=", 0), 0u) << r;
	EXPECT_EQ(poll(&pfd, 1, 0), 0);		// nothing else
	close(fd);
}

} // namespace
