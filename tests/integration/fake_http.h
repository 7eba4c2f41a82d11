// SPDX-License-Identifier: ISC
// fake_http.h: a small real HTTP/1.1 server for admission tests (header
// only, shared by tests/unit/auth_test.cc and the integration tests).
//
// It listens on a Unix socket (the fake tailscaled LocalAPI) or on
// 127.0.0.1 (the fake admission URL), serves keep-alive connections, one
// thread per connection, and records every request it reads: method,
// target, headers as sent, body, and whether it has been answered. A
// handler picks the response; a response can carry a delay (slept
// interruptibly, so Stop() is prompt) and can be "hang up" instead.
#ifndef DERPD_FAKE_HTTP_H
#define DERPD_FAKE_HTTP_H

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace fakehttp {

inline int64_t
NowMs()
{
	return std::chrono::duration_cast<std::chrono::milliseconds>(
	    std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Request {
	std::string method, target, version;
	std::vector<std::pair<std::string, std::string>> headers;
	std::string body;
	int64_t received_ms = 0;
	int64_t answered_ms = 0;	// 0: not (yet) answered
	bool answered = false;

	// Number of headers with this name (case-insensitive).
	int Count(const std::string &name) const
	{
		int n = 0;
		for (auto &h : headers)
			if (strcasecmp(h.first.c_str(), name.c_str()) == 0)
				n++;
		return n;
	}
	bool Has(const std::string &name) const { return Count(name) > 0; }
	// First value of a header, "" if absent.
	std::string Header(const std::string &name) const
	{
		for (auto &h : headers)
			if (strcasecmp(h.first.c_str(), name.c_str()) == 0)
				return h.second;
		return "";
	}
};

struct Response {
	int status = 200;
	std::string body;
	std::string content_type = "application/json";
	int delay_ms = 0;
	bool hang_up = false;		// close without answering
};

using Handler = std::function<Response(const Request &)>;

inline const char *
StatusText(int s)
{
	switch (s) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Status";
	}
}

class Server {
public:
	Server() = default;
	~Server() { Stop(); }
	Server(const Server &) = delete;
	Server &operator=(const Server &) = delete;

	void SetHandler(Handler h)
	{
		std::lock_guard<std::mutex> g(mu_);
		handler_ = std::move(h);
	}

	// Listen on a Unix socket at path (removed first). "" or an error.
	std::string ListenUnix(const std::string &path)
	{
		Stop();
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		if (path.size() >= sizeof(sun.sun_path))
			return "socket path too long";
		memcpy(sun.sun_path, path.c_str(), path.size());
		unlink(path.c_str());
		int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd == -1)
			return std::string("socket: ") + strerror(errno);
		if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
		    listen(fd, 512) == -1) {
			std::string e = std::string("bind/listen ") + path +
			    ": " + strerror(errno);
			close(fd);
			return e;
		}
		path_ = path;
		Run(fd);
		return "";
	}

	// Listen on 127.0.0.1 (port 0: any free port). "" or an error.
	std::string ListenTcp(int port = 0)
	{
		Stop();
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd == -1)
			return std::string("socket: ") + strerror(errno);
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		struct sockaddr_in sin;
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons((uint16_t)port);
		socklen_t sl = sizeof(sin);
		if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
		    listen(fd, 512) == -1 ||
		    getsockname(fd, (struct sockaddr *)&sin, &sl) == -1) {
			std::string e = std::string("bind/listen: ") +
			    strerror(errno);
			close(fd);
			return e;
		}
		port_ = ntohs(sin.sin_port);
		path_.clear();
		Run(fd);
		return "";
	}

	int port() const { return port_; }
	const std::string &path() const { return path_; }
	bool running() const { return running_; }

	// Stop listening, drop every connection, join every thread. A Unix
	// socket file is removed. Records are kept.
	void Stop()
	{
		if (!running_)
			return;
		{
			std::lock_guard<std::mutex> g(mu_);
			stop_ = true;
			for (int fd : live_)
				shutdown(fd, SHUT_RDWR);
		}
		cv_.notify_all();
		if (acceptor_.joinable())
			acceptor_.join();
		std::list<Worker> ws;
		{
			std::lock_guard<std::mutex> g(mu_);
			ws.swap(workers_);
		}
		for (auto &w : ws)
			w.t.join();
		close(lfd_);
		lfd_ = -1;
		if (!path_.empty())
			unlink(path_.c_str());
		running_ = false;
		std::lock_guard<std::mutex> g(mu_);
		stop_ = false;
	}

	// Records.
	std::vector<Request> Requests()
	{
		std::lock_guard<std::mutex> g(mu_);
		return std::vector<Request>(reqs_.begin(), reqs_.end());
	}
	size_t RequestCount()
	{
		std::lock_guard<std::mutex> g(mu_);
		return reqs_.size();
	}
	// Requests whose target contains needle (or body, if in_body).
	size_t CountMatching(const std::string &needle, bool in_body = false)
	{
		std::lock_guard<std::mutex> g(mu_);
		size_t n = 0;
		for (auto &r : reqs_)
			if ((in_body ? r.body : r.target).find(needle) !=
			    std::string::npos)
				n++;
		return n;
	}
	// Wait until at least n requests match needle; true if they did.
	bool WaitMatching(const std::string &needle, size_t n, int timeout_ms,
	    bool in_body = false)
	{
		int64_t deadline = NowMs() + timeout_ms;
		for (;;) {
			if (CountMatching(needle, in_body) >= n)
				return true;
			if (NowMs() >= deadline)
				return false;
			usleep(2000);
		}
	}
	// Is the (first) request matching needle answered yet?
	bool Answered(const std::string &needle, bool in_body = false)
	{
		std::lock_guard<std::mutex> g(mu_);
		for (auto &r : reqs_)
			if ((in_body ? r.body : r.target).find(needle) !=
			    std::string::npos)
				return r.answered;
		return false;
	}
	int MaxConcurrent() const { return max_inflight_; }
	int Concurrent() const { return inflight_; }
	int Connections() const { return conns_; }

private:
	struct Worker {
		std::thread t;
		std::shared_ptr<std::atomic<bool>> done;
	};

	void Run(int fd)
	{
		lfd_ = fd;
		running_ = true;
		stop_ = false;
		acceptor_ = std::thread(&Server::AcceptLoop, this);
	}

	bool Stopping()
	{
		std::lock_guard<std::mutex> g(mu_);
		return stop_;
	}

	void Reap()
	{
		std::list<Worker> dead;
		{
			std::lock_guard<std::mutex> g(mu_);
			for (auto it = workers_.begin(); it != workers_.end();) {
				if (it->done->load()) {
					dead.splice(dead.end(), workers_, it++);
				} else
					++it;
			}
		}
		for (auto &w : dead)
			w.t.join();
	}

	void AcceptLoop()
	{
		while (!Stopping()) {
			struct pollfd p = { lfd_, POLLIN, 0 };
			Reap();
			if (poll(&p, 1, 20) <= 0)
				continue;
			int c = accept4(lfd_, nullptr, nullptr, SOCK_CLOEXEC);
			if (c == -1)
				continue;
			auto done = std::make_shared<std::atomic<bool>>(false);
			std::lock_guard<std::mutex> g(mu_);
			if (stop_) {
				close(c);
				break;
			}
			live_.insert(c);
			conns_++;
			workers_.push_back(Worker{ std::thread(&Server::Serve,
			    this, c, done), done });
		}
	}

	// Read more bytes into buf; false on EOF, error or stop.
	bool Fill(int fd, std::string &buf)
	{
		char tmp[16384];
		for (;;) {
			if (Stopping())
				return false;
			struct pollfd p = { fd, POLLIN, 0 };
			int r = poll(&p, 1, 20);
			if (r == 0)
				continue;
			if (r < 0 && errno == EINTR)
				continue;
			ssize_t n = read(fd, tmp, sizeof(tmp));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0)
				return false;
			buf.append(tmp, (size_t)n);
			return true;
		}
	}

	static bool WriteAll(int fd, const std::string &s)
	{
		size_t off = 0;
		while (off < s.size()) {
			ssize_t n = send(fd, s.data() + off, s.size() - off,
			    MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return false;
			off += (size_t)n;
		}
		return true;
	}

	void Serve(int fd, std::shared_ptr<std::atomic<bool>> done)
	{
		std::string buf;
		for (;;) {
			size_t he;
			while ((he = buf.find("\r\n\r\n")) == std::string::npos)
				if (!Fill(fd, buf))
					goto out;
			Request rq;
			if (!Parse(buf.substr(0, he + 2), &rq))
				goto out;
			buf.erase(0, he + 4);
			{
				size_t clen = 0;
				std::string cl = rq.Header("Content-Length");
				if (!cl.empty())
					clen = strtoul(cl.c_str(), nullptr, 10);
				while (buf.size() < clen)
					if (!Fill(fd, buf))
						goto out;
				rq.body = buf.substr(0, clen);
				buf.erase(0, clen);
			}
			rq.received_ms = NowMs();
			Handler h;
			size_t idx;
			{
				std::lock_guard<std::mutex> g(mu_);
				h = handler_;
				idx = reqs_.size();
				reqs_.push_back(rq);
			}
			int now = ++inflight_;
			int m = max_inflight_;
			while (now > m && !max_inflight_.compare_exchange_weak(m,
			    now))
				;
			Response rs;
			if (h)
				rs = h(rq);
			else
				rs.status = 404;
			if (rs.delay_ms > 0) {
				std::unique_lock<std::mutex> g(mu_);
				cv_.wait_for(g, std::chrono::milliseconds(
				    rs.delay_ms), [this] { return stop_; });
				if (stop_) {
					inflight_--;
					goto out;
				}
			}
			if (rs.hang_up) {
				inflight_--;
				goto out;
			}
			char head[256];
			snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n"
			    "Content-Length: %zu\r\n%s%s%s\r\n", rs.status,
			    StatusText(rs.status), rs.body.size(),
			    rs.content_type.empty() ? "" : "Content-Type: ",
			    rs.content_type.c_str(),
			    rs.content_type.empty() ? "" : "\r\n");
			bool ok = WriteAll(fd, head + rs.body);
			{
				std::lock_guard<std::mutex> g(mu_);
				reqs_[idx].answered = true;
				reqs_[idx].answered_ms = NowMs();
			}
			inflight_--;
			if (!ok)
				goto out;
		}
	out:
		{
			std::lock_guard<std::mutex> g(mu_);
			live_.erase(fd);
		}
		close(fd);
		done->store(true);
	}

	static bool Parse(const std::string &head, Request *rq)
	{
		size_t eol = head.find("\r\n");
		std::string line = head.substr(0, eol);
		size_t a = line.find(' '), b = line.rfind(' ');
		if (a == std::string::npos || b == a)
			return false;
		rq->method = line.substr(0, a);
		rq->target = line.substr(a + 1, b - a - 1);
		rq->version = line.substr(b + 1);
		size_t pos = eol + 2;
		while (pos < head.size()) {
			size_t e = head.find("\r\n", pos);
			if (e == std::string::npos)
				break;
			std::string l = head.substr(pos, e - pos);
			size_t colon = l.find(':');
			if (colon != std::string::npos) {
				size_t v = colon + 1;
				while (v < l.size() && (l[v] == ' ' ||
				    l[v] == '\t'))
					v++;
				rq->headers.emplace_back(l.substr(0, colon),
				    l.substr(v));
			}
			pos = e + 2;
		}
		return true;
	}

	std::mutex mu_;
	std::condition_variable cv_;
	Handler handler_;
	std::deque<Request> reqs_;
	std::set<int> live_;
	std::list<Worker> workers_;
	std::thread acceptor_;
	bool stop_ = false;
	bool running_ = false;
	int lfd_ = -1;
	int port_ = 0;
	std::string path_;
	std::atomic<int> inflight_{ 0 };
	std::atomic<int> max_inflight_{ 0 };
	std::atomic<int> conns_{ 0 };
};

// A TCP port on 127.0.0.1 with nothing listening (bound, then closed).
inline int
RefusedPort()
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof(sin);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 ||
	    getsockname(fd, (struct sockaddr *)&sin, &sl) == -1) {
		if (fd != -1)
			close(fd);
		return 1;	/* tcpmux: nothing listens there either */
	}
	close(fd);
	return ntohs(sin.sin_port);
}

}  // namespace fakehttp

#endif
