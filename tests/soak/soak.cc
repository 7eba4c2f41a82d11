// SPDX-License-Identifier: ISC
// soak.cc: `make soak`. One bounded run (at most 5 minutes, loopback only)
// against the real daemon ($DERPD, built with ASan) with 15,000 idle DERP
// clients held open while churn, slowloris heads, never-reading receivers,
// SendPacket floods, RSTs mid-write and a flapping admission webhook hit
// it. At the end it checks and prints: every packet is accounted for, the
// daemon's RSS came back (to within 10% of where a first, warm-up crowd
// left it), no worker answered a ping later than 100 ms, and the daemon is
// alive. Exit status 0 only if every check passed.
//
// The idle, churning, slow, never-reading and resetting clients are raw
// nonblocking sockets in one epoll loop (main thread); receivers, senders,
// flooders and ping probes are derpc clients, one thread each.
#include <algorithm>
#include <arpa/inet.h>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <map>
#include <memory>
#include <mutex>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <random>
#include <set>
#include <string>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <thread>
#include <tuple>
#include <unistd.h>
#include <vector>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "../integration/fake_http.h"
#include "../integration/harness.h"
#include "derpc.h"
#include "frame.h"

namespace {

// ---- the run's shape, in one place ------------------------------------

constexpr int kIdle = 15000;		// idle clients held open throughout
constexpr int kIdleSources = 64;	// 127.0.1.1 .. : spread per-source caps
constexpr int kIdleInFlight = 256;	// handshakes in progress at once
constexpr int kReaders = 32;		// receivers that read everything
constexpr int kNeverReaders = 16;	// receivers that never read (pool)
constexpr int kNeverReaderLifeMs = 8000;
constexpr int kNeverReaderEveryMs = 200; // replacements, at most one per
constexpr int kProbes = 8;		// ping probes (more if a worker has none)
constexpr int kProbeMax = 16;
constexpr int kProbeIntervalMs = 50;
constexpr int64_t kPingLimitUs = 100 * 1000;
constexpr int kSenders = 2;		// steady senders, paced
constexpr int kSenderBatch = 3;		// packets per millisecond per sender
constexpr int kSelfFlooders = 2;	// SendPacket to self as fast as possible
constexpr int kOtherFlooders = 1;	// SendPacket to others as fast as possible
constexpr uint64_t kFloodCap = 300000;	// packets per flooder per window
constexpr int kChurnConcurrent = 32;
constexpr int kChurnTotal = 4000;
constexpr int kSlowConcurrent = 100;
constexpr int kSlowTotal = 500;
constexpr int kSlowTrickleMs = 300;	// one byte of request head per tick
constexpr int kVictimConcurrent = 4;
constexpr int kVictimTotal = 80;
constexpr int kVictimLifeMs = 1500;	// then SO_LINGER 0 and close (RST)
constexpr int kLoadMs = 80000;		// the mixed-load phase
constexpr int kHandshakeTimeoutMs = 5000; // the daemon's, see DaemonFlags
constexpr int kRunDeadlineS = 300;	// the whole run, hard
constexpr double kRssSlack = 0.10;

// Admission webhook timeline within the load phase (ms from its start).
struct HookPhase {
	int from_ms;
	const char *name;
};
const HookPhase kHookPhases[] = {
	{ 0, "healthy" },
	{ 15000, "slow" },	// answers after 1.5 s
	{ 30000, "down" },	// nothing listening (fail-open admits)
	{ 45000, "garbage" },	// 200 with a body that is not JSON (refused)
	{ 60000, "healthy" },	// back
};

// Flood windows within the load phase: [from, to) ms.
struct Window {
	int from_ms, to_ms;
};
const Window kSelfFlood[] = { { 5000, 15000 }, { 35000, 45000 } };
const Window kOtherFlood[] = { { 20000, 30000 }, { 55000, 65000 } };

// The daemon's flags beyond the harness's own (-a 127.0.0.1:0
// --stun-port=0 --http-port=-1 -c dir/k.json --workers=2 --verbose).
std::vector<std::string>
DaemonFlags(const std::string &dir, int hook_port)
{
	return {
		"--admin-socket=" + dir + "/admin.sock",
		"--verify-client-url=http://127.0.0.1:" +
		    std::to_string(hook_port) + "/verify",
		"--handshake-timeout=" + std::to_string(kHandshakeTimeoutMs /
		    1000) + "s",
	};
}

// ASan settings for the daemon: a small quarantine, so that freed memory
// is not held back (the default holds up to 256 MB) and RSS can return.
const char kAsanOptions[] = "quarantine_size_mb=16:"
    "thread_local_quarantine_size_kb=256:detect_leaks=1";

// ---- small helpers -----------------------------------------------------

using Key = std::array<uint8_t, 32>;

int64_t
NowUs()
{
	return std::chrono::duration_cast<std::chrono::microseconds>(
	    std::chrono::steady_clock::now().time_since_epoch()).count();
}

int64_t
NowMs()
{
	return NowUs() / 1000;
}

int64_t g_t0_ms;		// start of the run
std::atomic<int64_t> g_load0_ms{ 0 }; // start of the load phase (0: not yet)

// What the run is doing, for the probes' per-phase worst latency.
enum Phase { P_SETUP, P_LOAD, P_SELF_FLOOD, P_OTHER_FLOOD, P_TEARDOWN,
    P__COUNT };
const char *const kPhaseName[P__COUNT] = { "setup", "load (no flood)",
    "self-flood", "other-flood", "teardown" };
std::atomic<int> g_stage{ P_SETUP };	// P_SETUP, P_LOAD or P_TEARDOWN

bool
PastDeadline()
{
	return NowMs() - g_t0_ms > (int64_t)kRunDeadlineS * 1000 - 20000;
}

void
Say(const char *fmt, ...)
{
	va_list ap;
	char buf[1024];

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printf("soak: [%5.1fs] %s\n", (double)(NowMs() - g_t0_ms) / 1000.0,
	    buf);
	fflush(stdout);
}

std::string
NodeKey(const uint8_t *pub)
{
	return "nodekey:" + Hex(pub, 32);
}

void
RaiseNoFile()
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

// The daemon is our only child: find its pid for /proc/<pid>/status.
pid_t
ChildPid(const char *comm)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = -1, me = getpid();

	if (d == nullptr)
		return -1;
	while ((e = readdir(d)) != nullptr) {
		char path[300], buf[512];
		pid_t pid = (pid_t)atoi(e->d_name);
		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
		int fd = open(path, O_RDONLY);
		if (fd == -1)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n <= 0)
			continue;
		buf[n] = '\0';
		// pid (comm) state ppid ...
		char *lp = strchr(buf, '('), *rp = strrchr(buf, ')');
		if (lp == nullptr || rp == nullptr)
			continue;
		std::string c(lp + 1, (size_t)(rp - lp - 1));
		int ppid = 0;
		char st;
		if (sscanf(rp + 1, " %c %d", &st, &ppid) != 2)
			continue;
		if (ppid == me && c == comm) {
			found = pid;
			break;
		}
	}
	closedir(d);
	return found;
}

// VmRSS of pid in KiB, -1 if unreadable.
int64_t
RssKb(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	std::string s = ReadFile(path);
	size_t p = s.find("VmRSS:");
	if (p == std::string::npos)
		return -1;
	return strtoll(s.c_str() + p + 6, nullptr, 10);
}

// ---- the admin socket --------------------------------------------------

class Admin {
public:
	explicit Admin(const std::string &path) : path_(path) {}
	~Admin() { Close(); }

	// One request, one reply line; the reply's "result", or nullptr.
	cJSON *Do(const std::string &cmd, const std::string &args = "")
	{
		if (fd_ == -1 && !Open())
			return nullptr;
		std::string req = "{\"v\":1,\"id\":" + std::to_string(++id_) +
		    ",\"cmd\":\"" + cmd + "\"" + (args.empty() ? "" :
		    ",\"args\":" + args) + "}\n";
		if (send(fd_, req.data(), req.size(), MSG_NOSIGNAL) !=
		    (ssize_t)req.size()) {
			Close();
			return nullptr;
		}
		int64_t deadline = NowMs() + 10000;
		size_t nl;
		while ((nl = buf_.find('\n')) == std::string::npos) {
			struct pollfd p = { fd_, POLLIN, 0 };
			int64_t left = deadline - NowMs();
			char tmp[65536];
			if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
				Close();
				return nullptr;
			}
			ssize_t n = read(fd_, tmp, sizeof(tmp));
			if (n <= 0) {
				Close();
				return nullptr;
			}
			buf_.append(tmp, (size_t)n);
		}
		std::string line = buf_.substr(0, nl);
		buf_.erase(0, nl + 1);
		cJSON *j = cJSON_Parse(line.c_str());
		if (j == nullptr)
			return nullptr;
		cJSON *ok = cJSON_GetObjectItemCaseSensitive(j, "ok");
		cJSON *res = cJSON_DetachItemFromObjectCaseSensitive(j,
		    "result");
		cJSON_Delete(j);
		if (!cJSON_IsTrue(ok)) {
			cJSON_Delete(res);
			return nullptr;
		}
		return res;
	}

	// The one row of "show client" for key (caller frees), or nullptr.
	cJSON *Client(const uint8_t *pub)
	{
		cJSON *r = Do("show client", "{\"key\":\"" + NodeKey(pub) +
		    "\"}");
		if (r == nullptr)
			return nullptr;
		cJSON *arr = cJSON_GetObjectItemCaseSensitive(r, "clients");
		cJSON *row = cJSON_IsArray(arr) ? cJSON_DetachItemFromArray(arr,
		    0) : nullptr;
		cJSON_Delete(r);
		return row;
	}

private:
	bool Open()
	{
		struct sockaddr_un sun;
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s",
		    path_.c_str());
		fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd_ == -1)
			return false;
		if (connect(fd_, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
			Close();
			return false;
		}
		return true;
	}
	void Close()
	{
		if (fd_ != -1)
			close(fd_);
		fd_ = -1;
		buf_.clear();
	}

	std::string path_;
	std::string buf_;
	int fd_ = -1;
	int id_ = 0;
};

double
Num(cJSON *o, const char *name)
{
	cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

// ---- shared state --------------------------------------------------------

struct Counters {
	std::atomic<uint64_t> sent{ 0 };		// every SendPacket written
	std::atomic<uint64_t> sent_readers{ 0 };	// to reading receivers
	std::atomic<uint64_t> sent_self{ 0 };		// flooders to themselves
	std::atomic<uint64_t> sent_never{ 0 };		// to never-readers
	std::atomic<uint64_t> sent_victims{ 0 };	// to clients about to RST
	std::atomic<uint64_t> sent_unknown{ 0 };	// to keys nobody has
	std::atomic<uint64_t> recv_readers{ 0 };
	std::atomic<uint64_t> recv_self{ 0 };
	std::atomic<uint64_t> recv_other{ 0 };		// anywhere else (bug)
};
Counters g_c;

std::atomic<bool> g_stop_send{ false };	// senders and flooders: stop writing
std::atomic<bool> g_stop_read{ false };	// receivers: leave
std::atomic<bool> g_stop_probes{ false };
std::atomic<int64_t> g_rss_peak{ 0 };

// Targets the senders pick from. Readers are fixed once set up; the
// never-reader and victim sets change as the epoll loop replaces them.
struct Targets {
	std::mutex mu;
	std::vector<Key> readers, never, victims;

	bool Pick(std::vector<Key> Targets::*set, std::mt19937 &rng, Key *k)
	{
		std::lock_guard<std::mutex> g(mu);
		std::vector<Key> &v = this->*set;
		if (v.empty())
			return false;
		*k = v[rng() % v.size()];
		return true;
	}
	void Add(std::vector<Key> Targets::*set, const Key &k)
	{
		std::lock_guard<std::mutex> g(mu);
		(this->*set).push_back(k);
	}
	void Remove(std::vector<Key> Targets::*set, const Key &k)
	{
		std::lock_guard<std::mutex> g(mu);
		std::vector<Key> &v = this->*set;
		for (size_t i = 0; i < v.size(); i++)
			if (v[i] == k) {
				v[i] = v.back();
				v.pop_back();
				return;
			}
	}
};
Targets g_targets;

Key
KeyOf(const uint8_t *p)
{
	Key k;
	memcpy(k.data(), p, 32);
	return k;
}

// A SendPacket frame to dst with len payload bytes (disco-looking or not).
std::string
SendFrame(const Key &dst, size_t len, bool disco)
{
	std::string f(FRAME_HDR_LEN + 32 + len, '\0');
	uint8_t *p = (uint8_t *)&f[0];
	frame_put_header(p, FRAME_SEND_PACKET, (uint32_t)(32 + len));
	memcpy(p + FRAME_HDR_LEN, dst.data(), 32);
	std::string body = disco ? DiscoPacket(len < 80 ? 80 : len) :
	    std::string(len, 'x');
	memcpy(p + FRAME_HDR_LEN + 32, body.data(), len);
	return f;
}

// ---- derpc clients in threads -------------------------------------------

// A receiver: reads every frame and counts RecvPackets until told to go.
struct Receiver {
	Client c;
	Key key;
	std::atomic<uint64_t> got{ 0 };
	std::atomic<bool> dead{ false };	// the server closed it
	std::string why;
	std::thread t;
};

void
ReceiverLoop(Receiver *r, std::atomic<uint64_t> *total)
{
	derpc_frame f;

	while (!g_stop_read.load()) {
		int rc = derpc_recv_frame(r->c.get(), &f, 100);
		if (rc == DERPC_TIMEOUT)
			continue;
		if (rc != DERPC_OK) {
			r->why = derpc_error(r->c.get());
			r->dead = true;
			return;
		}
		if (f.type == FRAME_RECV_PACKET) {
			r->got++;
			(*total)++;
		}
	}
}

// A flooder writes SendPackets in batches as fast as the socket takes
// them during its windows, to itself or to others, and reads what it gets.
struct Flooder {
	Client c;
	Key key;
	bool self = true;
	std::atomic<uint64_t> sent{ 0 }, got{ 0 };
	std::atomic<bool> dead{ false };
	std::string why;
	std::thread t;
};

bool
InWindow(const Window *w, size_t n)
{
	if (g_load0_ms == 0)
		return false;
	int64_t t = NowMs() - g_load0_ms;
	for (size_t i = 0; i < n; i++)
		if (t >= w[i].from_ms && t < w[i].to_ms)
			return true;
	return false;
}

void
FlooderLoop(Flooder *fl)
{
	std::mt19937 rng((unsigned)NowUs() ^ (unsigned)(uintptr_t)fl);
	const Window *w = fl->self ? kSelfFlood : kOtherFlood;
	size_t nw = fl->self ? sizeof(kSelfFlood) / sizeof(kSelfFlood[0]) :
	    sizeof(kOtherFlood) / sizeof(kOtherFlood[0]);
	std::string self_frame = SendFrame(fl->key, 200, false);
	derpc_frame f;
	uint64_t in_window = 0;
	bool was_on = false;

	while (!g_stop_read.load()) {
		bool win = !g_stop_send.load() && InWindow(w, nw);
		if (win && !was_on)
			in_window = 0;
		was_on = win;
		bool on = win && in_window < kFloodCap;
		if (on) {
			std::string batch;
			uint64_t n_self = 0, n_read = 0, n_never = 0;
			for (int i = 0; i < 64; i++) {
				Key k;
				if (fl->self) {
					batch += self_frame;
					n_self++;
				} else if (i % 2 == 0 && g_targets.Pick(
				    &Targets::never, rng, &k)) {
					batch += SendFrame(k, 200, false);
					n_never++;
				} else if (g_targets.Pick(&Targets::readers, rng,
				    &k)) {
					batch += SendFrame(k, 200, i % 8 == 0);
					n_read++;
				}
			}
			if (derpc_write_raw(fl->c.get(), batch.data(),
			    batch.size()) != DERPC_OK) {
				fl->why = derpc_error(fl->c.get());
				fl->dead = true;
				return;
			}
			fl->sent += n_self + n_read + n_never;
			in_window += n_self + n_read + n_never;
			g_c.sent += n_self + n_read + n_never;
			g_c.sent_self += n_self;
			g_c.sent_readers += n_read;
			g_c.sent_never += n_never;
		}
		// Read what is there (everything, when not flooding).
		for (int i = 0; i < 4096; i++) {
			int rc = derpc_recv_frame(fl->c.get(), &f, on ? 0 : 50);
			if (rc == DERPC_TIMEOUT)
				break;
			if (rc != DERPC_OK) {
				fl->why = derpc_error(fl->c.get());
				fl->dead = true;
				return;
			}
			if (f.type != FRAME_RECV_PACKET)
				continue;
			fl->got++;
			if (fl->self)
				g_c.recv_self++;
			else
				g_c.recv_other++;
		}
	}
}

// A steady sender: paced SendPackets to readers, never-readers, victims
// and unknown keys; drains what it is sent (PeerGone, NotHere).
struct Sender {
	Client c;
	std::atomic<bool> dead{ false };
	std::string why;
	std::thread t;
};

void
SenderLoop(Sender *s)
{
	std::mt19937 rng((unsigned)NowUs() ^ (unsigned)(uintptr_t)s);
	derpc_frame f;
	uint64_t n = 0;

	while (!g_stop_send.load()) {
		for (int i = 0; i < kSenderBatch; i++) {
			unsigned r = rng() % 100;
			Key k;
			size_t len = 64 + rng() % 1100;
			bool disco = rng() % 10 == 0;
			std::atomic<uint64_t> *cls;
			if (r < 50 && g_targets.Pick(&Targets::readers, rng, &k))
				cls = &g_c.sent_readers;
			else if (r < 75 && g_targets.Pick(&Targets::never, rng,
			    &k))
				cls = &g_c.sent_never;
			else if (r < 90 && g_targets.Pick(&Targets::victims, rng,
			    &k)) {
				cls = &g_c.sent_victims;
				len = 1200;
			} else {
				randombytes_buf(k.data(), 32);
				cls = &g_c.sent_unknown;
			}
			std::string fr = SendFrame(k, len, disco);
			if (derpc_write_raw(s->c.get(), fr.data(), fr.size()) !=
			    DERPC_OK) {
				s->why = derpc_error(s->c.get());
				s->dead = true;
				return;
			}
			(*cls)++;
			g_c.sent++;
			n++;
		}
		while (derpc_recv_frame(s->c.get(), &f, 0) == DERPC_OK)
			if (f.type == FRAME_RECV_PACKET)
				g_c.recv_other++;
		usleep(1000);
	}
}

// A ping probe: Ping every 50 ms, wait for its Pong, keep the worst.
struct Probe {
	Client c;
	Key key;
	int worker = -1;
	std::atomic<int64_t> max_us{ 0 };
	std::atomic<uint64_t> pings{ 0 }, over{ 0 }, lost{ 0 };
	int64_t max_at_ms = 0;		// when the worst one was sent
	int64_t phase_max_us[P__COUNT] = {};	// read after join
	uint64_t phase_over[P__COUNT] = {};
	std::atomic<bool> dead{ false };
	std::string why;
	std::thread t;
};

void
ProbeLoop(Probe *p)
{
	uint64_t seq = 0;
	derpc_frame f;

	while (!g_stop_probes.load()) {
		int64_t t = NowUs();
		uint8_t data[8];
		seq++;
		memcpy(data, &seq, 8);
		if (derpc_ping(p->c.get(), data) != DERPC_OK) {
			p->why = derpc_error(p->c.get());
			p->dead = true;
			return;
		}
		int rc;
		// A Pong for an earlier (late) ping is skipped.
		while ((rc = derpc_recv_type(p->c.get(), FRAME_PONG, &f,
		    2000)) == DERPC_OK && (f.len != 8 ||
		    memcmp(f.payload, data, 8) != 0))
			;
		int64_t us = NowUs() - t;
		p->pings++;
		if (rc == DERPC_TIMEOUT) {
			p->lost++;
			us = 2000 * 1000;
		} else if (rc != DERPC_OK) {
			p->why = derpc_error(p->c.get());
			p->dead = true;
			return;
		}
		int ph = g_stage.load();
		if (ph == P_LOAD && InWindow(kSelfFlood, sizeof(kSelfFlood) /
		    sizeof(kSelfFlood[0])))
			ph = P_SELF_FLOOD;
		else if (ph == P_LOAD && InWindow(kOtherFlood,
		    sizeof(kOtherFlood) / sizeof(kOtherFlood[0])))
			ph = P_OTHER_FLOOD;
		if (us > p->phase_max_us[ph])
			p->phase_max_us[ph] = us;
		if (us > kPingLimitUs) {
			p->over++;
			p->phase_over[ph]++;
		}
		if (us > p->max_us.load()) {
			p->max_us = us;
			p->max_at_ms = t / 1000 - g_t0_ms;
		}
		int64_t next = t + kProbeIntervalMs * 1000;
		int64_t now = NowUs();
		if (next > now)
			usleep((useconds_t)(next - now));
	}
}

// ---- raw clients in one epoll loop --------------------------------------

enum Kind { K_IDLE, K_NEVER, K_VICTIM, K_CHURN, K_SLOW, K__COUNT };
const char *const kKindName[K__COUNT] = { "idle", "never-reader",
    "reset-receiver", "churn", "slowloris" };

enum RawState {
	R_CONNECTING,	// nonblocking connect in progress
	R_HANDSHAKE,	// request + ClientInfo written; waiting for ServerInfo
	R_ACTIVE,	// got ServerInfo
	R_DRAIN,	// churn: wrote its packets, shut down writing, wait EOF
	R_TRICKLE,	// slowloris: dribbling a request head
};

// Warm-up traffic: one client sends SendPackets of 1,200 bytes to itself
// as fast as it can for 3 s while a thread reads what comes back (plain
// HTTP, raw socket). Returns the packets sent. Not part of any account:
// the checks count from the metrics taken after the warm-up.
uint64_t
WarmUpFlood(Derpd &d)
{
	std::string err;
	Client c = d.Connect(&err);
	if (!c)
		return 0;
	std::vector<uint8_t> burst;
	std::vector<uint8_t> payload(32 + 1200, 0x77);
	memcpy(payload.data(), derpc_pub(c.get()), 32);
	for (int i = 0; i < 64; i++) {
		uint8_t hdr[FRAME_HDR_LEN];
		frame_put_header(hdr, FRAME_SEND_PACKET, (uint32_t)payload.size());
		burst.insert(burst.end(), hdr, hdr + sizeof(hdr));
		burst.insert(burst.end(), payload.begin(), payload.end());
	}
	int fd = derpc_fd(c.get());
	std::atomic<bool> stop{ false };
	std::thread rd([&] {
		std::vector<uint8_t> buf(1 << 16);
		while (!stop.load()) {
			struct pollfd pf = { fd, POLLIN, 0 };
			if (poll(&pf, 1, 50) > 0 &&
			    recv(fd, buf.data(), buf.size(), MSG_DONTWAIT) == 0)
				break;
		}
	});
	uint64_t sent = 0;
	for (int64_t t0 = NowMs(); NowMs() - t0 < 3000;) {
		size_t off = 0;
		while (off < burst.size() && NowMs() - t0 < 3000) {
			struct pollfd pf = { fd, POLLOUT, 0 };
			if (poll(&pf, 1, 50) <= 0)
				continue;
			ssize_t w = send(fd, burst.data() + off, burst.size() - off,
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			if (w <= 0 && errno != EAGAIN && errno != EINTR)
				break;
			if (w > 0)
				off += (size_t)w;
		}
		if (off < burst.size())
			break;
		sent += 64;
	}
	stop = true;
	rd.join();
	return sent;
}

struct Raw {
	int fd = -1;
	Kind kind;
	RawState st = R_CONNECTING;
	int64_t t0_ms = 0, next_ms = 0;
	std::string out;
	size_t off = 0;
	std::string in;
	uint8_t priv[32], pub[32];
	size_t trickled = 0;
	int churn_pkts = 0;
	bool counted_active = false;
};

struct KindStats {
	uint64_t started = 0, established = 0, refused = 0, failed = 0;
	uint64_t server_closed = 0;	// closed by the daemon when active
	uint64_t done = 0;		// finished their script
	uint64_t live = 0;
	int64_t max_establish_ms = 0;
	int64_t min_close_ms = INT64_MAX, max_close_ms = 0; // slowloris
};

class Loop {
public:
	Loop(int port, const uint8_t *spub) : port_(port)
	{
		memcpy(spub_, spub, 32);
		ep_ = epoll_create1(EPOLL_CLOEXEC);
		char json[256];
		derpc_default_json(nullptr, json, sizeof(json));
		json_ = json;
	}
	~Loop()
	{
		CloseAll();
		close(ep_);
	}

	KindStats ks[K__COUNT];
	std::string first_error;

	// Open one raw client of kind k from 127.0.<net>.<host>.
	bool Open(Kind k, int net, int host)
	{
		auto r = std::make_unique<Raw>();
		r->kind = k;
		r->t0_ms = NowMs();
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd == -1) {
			Note(std::string("socket: ") + strerror(errno));
			ks[k].failed++;
			return false;
		}
		int one = 1;
		setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof(one));
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		struct sockaddr_in sin;
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_addr.s_addr = htonl((127u << 24) | ((unsigned)net <<
		    8) | (unsigned)host);
		if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
			Note(std::string("bind: ") + strerror(errno));
			close(fd);
			ks[k].failed++;
			return false;
		}
		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin.sin_port = htons((uint16_t)port_);
		if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1 &&
		    errno != EINPROGRESS) {
			Note(std::string("connect: ") + strerror(errno));
			close(fd);
			ks[k].failed++;
			return false;
		}
		r->fd = fd;
		derpc_keygen(r->priv, r->pub);
		struct epoll_event ev;
		ev.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP;
		ev.data.ptr = r.get();
		if (epoll_ctl(ep_, EPOLL_CTL_ADD, fd, &ev) == -1) {
			Note(std::string("epoll_ctl: ") + strerror(errno));
			close(fd);
			ks[k].failed++;
			return false;
		}
		ks[k].started++;
		ks[k].live++;
		Raw *raw = r.release();
		live_.insert(raw);
		if (k != K_IDLE)
			timed_.insert(raw);
		else
			handshaking_.insert(raw);
		return true;
	}

	// One round: wait up to ms for events, then run timers.
	void Run(int ms)
	{
		struct epoll_event evs[512];
		int n = epoll_wait(ep_, evs, 512, ms);
		for (int i = 0; i < n; i++) {
			Raw *r = (Raw *)evs[i].data.ptr;
			if (live_.count(r) == 0)
				continue;	// closed earlier in this round
			Event(r, evs[i].events);
		}
		int64_t now = NowMs();
		if (now - last_tick_ < 20)
			return;
		last_tick_ = now;
		std::vector<Raw *> due(timed_.begin(), timed_.end());
		for (Raw *r : due)
			if (live_.count(r))
				Tick(r, now);
		std::vector<Raw *> hs(handshaking_.begin(), handshaking_.end());
		for (Raw *r : hs)
			if (live_.count(r) && now - r->t0_ms > 20000) {
				Note("idle handshake took over 20 s");
				ks[r->kind].failed++;
				Drop(r, false);
			}
	}

	size_t Handshaking() const { return handshaking_.size(); }
	uint64_t Live(Kind k) const { return ks[k].live; }

	// Close everything of kind k (or all kinds with K__COUNT).
	void CloseKind(Kind k, bool rst)
	{
		std::vector<Raw *> all(live_.begin(), live_.end());
		for (Raw *r : all)
			if (k == K__COUNT || r->kind == k)
				Drop(r, rst);
	}
	void CloseAll() { CloseKind(K__COUNT, false); }

private:
	void Note(const std::string &s)
	{
		if (first_error.empty())
			first_error = s;
	}

	void Want(Raw *r, uint32_t events)
	{
		struct epoll_event ev;
		ev.events = events;
		ev.data.ptr = r;
		epoll_ctl(ep_, EPOLL_CTL_MOD, r->fd, &ev);
	}

	void Drop(Raw *r, bool rst)
	{
		if (rst) {
			struct linger l = { 1, 0 };
			setsockopt(r->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		}
		epoll_ctl(ep_, EPOLL_CTL_DEL, r->fd, nullptr);
		close(r->fd);
		if (r->kind == K_NEVER && r->st == R_ACTIVE)
			g_targets.Remove(&Targets::never, KeyOf(r->pub));
		if (r->kind == K_VICTIM && r->st == R_ACTIVE)
			g_targets.Remove(&Targets::victims, KeyOf(r->pub));
		ks[r->kind].live--;
		live_.erase(r);
		timed_.erase(r);
		handshaking_.erase(r);
		delete r;
	}

	std::string Hello(Raw *r)
	{
		std::string req = "GET /derp HTTP/1.1\r\nHost: 127.0.0.1:" +
		    std::to_string(port_) + "\r\nUpgrade: DERP\r\n"
		    "Connection: Upgrade\r\nDerp-Fast-Start: 1\r\n\r\n";
		size_t jl = json_.size();
		std::string f(FRAME_HDR_LEN + 32 + 24 + 16 + jl, '\0');
		uint8_t *p = (uint8_t *)&f[0];
		frame_put_header(p, FRAME_CLIENT_INFO,
		    (uint32_t)(f.size() - FRAME_HDR_LEN));
		memcpy(p + FRAME_HDR_LEN, r->pub, 32);
		uint8_t *nonce = p + FRAME_HDR_LEN + 32;
		randombytes_buf(nonce, 24);
		if (crypto_box_easy(nonce + 24, (const uint8_t *)json_.data(),
		    jl, nonce, spub_, r->priv) != 0)
			Note("crypto_box_easy failed");
		return req + f;
	}

	// Write what is pending; false if the connection failed.
	bool Flush(Raw *r)
	{
		while (r->off < r->out.size()) {
			ssize_t n = send(r->fd, r->out.data() + r->off,
			    r->out.size() - r->off, MSG_NOSIGNAL);
			if (n > 0) {
				r->off += (size_t)n;
				continue;
			}
			if (n < 0 && errno == EAGAIN)
				return true;
			return false;
		}
		r->out.clear();
		r->off = 0;
		return true;
	}

	void Connected(Raw *r)
	{
		if (r->kind == K_SLOW) {
			r->st = R_TRICKLE;
			r->out = "GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			    "X-Slow: ";
			r->out.append(4096, 's');
			r->next_ms = NowMs();
			Want(r, EPOLLIN | EPOLLRDHUP);
			return;
		}
		r->st = R_HANDSHAKE;
		r->out = Hello(r);
		r->off = 0;
		if (!Flush(r)) {
			ks[r->kind].failed++;
			Note("write hello failed");
			Drop(r, false);
			return;
		}
		Want(r, EPOLLIN | EPOLLRDHUP | (r->out.empty() ? 0u :
		    (uint32_t)EPOLLOUT));
	}

	void Active(Raw *r)
	{
		KindStats &k = ks[r->kind];
		int64_t ms = NowMs() - r->t0_ms;
		r->st = R_ACTIVE;
		k.established++;
		if (ms > k.max_establish_ms)
			k.max_establish_ms = ms;
		handshaking_.erase(r);
		r->next_ms = NowMs();
		switch (r->kind) {
		case K_IDLE:
			break;
		case K_NEVER:
			// From now on nothing is read: the daemon's writes back up.
			Want(r, 0);
			g_targets.Add(&Targets::never, KeyOf(r->pub));
			r->next_ms = NowMs() + kNeverReaderLifeMs;
			break;
		case K_VICTIM:
			Want(r, 0);
			g_targets.Add(&Targets::victims, KeyOf(r->pub));
			r->next_ms = NowMs() + kVictimLifeMs;
			break;
		case K_CHURN: {
			// Two packets to readers, then a clean goodbye.
			std::mt19937 rng((unsigned)NowUs());
			for (int i = 0; i < 2; i++) {
				Key k2;
				if (!g_targets.Pick(&Targets::readers, rng, &k2))
					break;
				r->out += SendFrame(k2, 100, false);
				r->churn_pkts++;
			}
			r->off = 0;
			if (!Flush(r)) {
				Note("churn write failed");
				ks[K_CHURN].failed++;
				Drop(r, false);
				return;
			}
			if (r->out.empty())
				Goodbye(r);
			else
				Want(r, EPOLLIN | EPOLLRDHUP | EPOLLOUT);
			break;
		}
		default:
			break;
		}
	}

	// Churn: its packets are written; count them, half-close, wait EOF.
	void Goodbye(Raw *r)
	{
		g_c.sent += (uint64_t)r->churn_pkts;
		g_c.sent_readers += (uint64_t)r->churn_pkts;
		r->churn_pkts = 0;
		shutdown(r->fd, SHUT_WR);
		r->st = R_DRAIN;
		r->next_ms = NowMs() + 10000;
		Want(r, EPOLLIN | EPOLLRDHUP);
	}

	// Read and parse frames; false when the peer closed or failed.
	bool ReadFrames(Raw *r)
	{
		char buf[16384];
		for (;;) {
			ssize_t n = recv(r->fd, buf, sizeof(buf), 0);
			if (n > 0) {
				if (r->st == R_DRAIN || r->st == R_TRICKLE)
					continue;	// not parsed
				r->in.append(buf, (size_t)n);
				while (r->in.size() >= FRAME_HDR_LEN) {
					uint8_t type;
					uint32_t len;
					frame_get_header((const uint8_t *)
					    r->in.data(), FRAME_HDR_LEN, &type,
					    &len);
					if (r->in.size() < FRAME_HDR_LEN +
					    (size_t)len)
						break;
					r->in.erase(0, FRAME_HDR_LEN + len);
					if (type == FRAME_SERVER_INFO &&
					    r->st == R_HANDSHAKE) {
						Active(r);
						if (live_.count(r) == 0 ||
						    r->st != R_ACTIVE ||
						    (r->kind != K_IDLE &&
						    r->kind != K_CHURN))
							return true;
					} else if (type == FRAME_RECV_PACKET)
						g_c.recv_other++;
				}
				continue;
			}
			if (n < 0 && errno == EAGAIN)
				return true;
			return false;
		}
	}

	void Closed(Raw *r)
	{
		KindStats &k = ks[r->kind];
		int64_t ms = NowMs() - r->t0_ms;

		switch (r->st) {
		case R_CONNECTING:
			k.failed++;
			Note("connect failed");
			break;
		case R_HANDSHAKE:
			// Closed before ServerInfo: admission refused us.
			k.refused++;
			break;
		case R_ACTIVE:
			k.server_closed++;
			break;
		case R_DRAIN:
			k.done++;
			break;
		case R_TRICKLE:
			k.done++;
			if (ms < k.min_close_ms)
				k.min_close_ms = ms;
			if (ms > k.max_close_ms)
				k.max_close_ms = ms;
			break;
		}
		Drop(r, false);
	}

	void Event(Raw *r, uint32_t ev)
	{
		if (r->st == R_CONNECTING) {
			int err = 0;
			socklen_t el = sizeof(err);
			getsockopt(r->fd, SOL_SOCKET, SO_ERROR, &err, &el);
			if (err != 0 || (ev & (EPOLLERR | EPOLLHUP))) {
				Note(std::string("connect: ") + strerror(err));
				ks[r->kind].failed++;
				Drop(r, false);
				return;
			}
			if (!(ev & EPOLLOUT))
				return;
			Connected(r);
			return;
		}
		if ((ev & EPOLLOUT) && !r->out.empty() && r->st != R_TRICKLE) {
			if (!Flush(r)) {
				Closed(r);
				return;
			}
			if (r->out.empty()) {
				if (r->st == R_ACTIVE && r->kind == K_CHURN)
					Goodbye(r);
				else
					Want(r, EPOLLIN | EPOLLRDHUP);
			}
		}
		if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
			if (!ReadFrames(r)) {
				Closed(r);
				return;
			}
		}
	}

	void Tick(Raw *r, int64_t now)
	{
		switch (r->st) {
		case R_TRICKLE:
			if (now >= r->next_ms) {
				// One byte; the head never ends.
				if (r->trickled < r->out.size() &&
				    send(r->fd, r->out.data() + r->trickled, 1,
				    MSG_NOSIGNAL) == 1)
					r->trickled++;
				r->next_ms = now + kSlowTrickleMs;
			}
			if (now - r->t0_ms > 3 * kHandshakeTimeoutMs) {
				Note("slowloris connection outlived 3 handshake "
				    "timeouts");
				ks[K_SLOW].failed++;
				Drop(r, false);
			}
			break;
		case R_HANDSHAKE:
		case R_CONNECTING:
			if (now - r->t0_ms > 20000) {
				Note("handshake took over 20 s");
				ks[r->kind].failed++;
				Drop(r, false);
			}
			break;
		case R_ACTIVE:
			if (r->kind == K_VICTIM && now >= r->next_ms) {
				// Reset while the daemon is writing to us.
				ks[K_VICTIM].done++;
				Drop(r, true);
			} else if (r->kind == K_NEVER && now >= r->next_ms) {
				ks[K_NEVER].done++;
				Drop(r, true);
			}
			break;
		case R_DRAIN:
			if (now >= r->next_ms) {
				Note("churn: no EOF within 10 s of goodbye");
				ks[K_CHURN].failed++;
				Drop(r, false);
			}
			break;
		}
	}

	int ep_;
	int port_;
	uint8_t spub_[32];
	std::string json_;
	std::set<Raw *> live_, timed_, handshaking_;
	int64_t last_tick_ = 0;
};

// ---- the admission webhook ----------------------------------------------

class Hook {
public:
	std::string Start()
	{
		std::string e = srv_.ListenTcp(0);
		if (!e.empty())
			return e;
		port_ = srv_.port();
		Set("healthy");
		return "";
	}
	int port() const { return port_; }
	const std::string &mode() const { return mode_; }

	void Set(const std::string &mode)
	{
		if (mode == mode_)
			return;
		if (mode == "down") {
			srv_.Stop();
		} else {
			if (!srv_.running()) {
				std::string e = srv_.ListenTcp(port_);
				if (!e.empty())
					Say("webhook: cannot listen again on "
					    "%d: %s", port_, e.c_str());
			}
			if (mode == "slow")
				srv_.SetHandler([](const fakehttp::Request &) {
					fakehttp::Response r;
					r.body = "{\"Allow\":true}";
					r.delay_ms = 1500;
					return r;
				});
			else if (mode == "garbage")
				srv_.SetHandler([](const fakehttp::Request &) {
					fakehttp::Response r;
					r.body = "<html>\x01 not json";
					r.content_type = "text/html";
					return r;
				});
			else
				srv_.SetHandler([](const fakehttp::Request &) {
					fakehttp::Response r;
					r.body = "{\"Allow\":true}";
					return r;
				});
		}
		mode_ = mode;
		Say("webhook: %s", mode.c_str());
	}
	void Stop() { srv_.Stop(); }
	size_t Requests() { return srv_.RequestCount(); }

private:
	fakehttp::Server srv_;
	int port_ = 0;
	std::string mode_;
};

// ---- checks ---------------------------------------------------------------

struct Verdict {
	int passed = 0, failed = 0;
	void Check(bool ok, const char *fmt, ...)
	{
		va_list ap;
		char buf[1024];
		va_start(ap, fmt);
		vsnprintf(buf, sizeof(buf), fmt, ap);
		va_end(ap);
		printf("soak: %s %s\n", ok ? "PASS" : "FAIL", buf);
		fflush(stdout);
		if (ok)
			passed++;
		else
			failed++;
	}
};

int64_t
Sum(const std::map<std::string, int64_t> &m, const std::string &prefix)
{
	int64_t s = 0;
	for (auto &kv : m)
		if (kv.first.compare(0, prefix.size(), prefix) == 0)
			s += kv.second;
	return s;
}

int64_t
Get(const std::map<std::string, int64_t> &m, const std::string &name)
{
	auto it = m.find(name);
	return it == m.end() ? 0 : it->second;
}

}  // namespace

int
main(int argc, char **argv)
{
	::testing::InitGoogleTest(&argc, argv);
	g_t0_ms = NowMs();
	alarm(kRunDeadlineS + 30);	// a last resort; the run ends itself
	signal(SIGPIPE, SIG_IGN);
	RaiseNoFile();
	if (sodium_init() < 0) {
		fprintf(stderr, "soak: sodium_init failed\n");
		return 2;
	}
	const char *old = getenv("ASAN_OPTIONS");
	std::string asan = std::string(kAsanOptions) + (old && *old ?
	    std::string(":") + old : "");
	setenv("ASAN_OPTIONS", asan.c_str(), 1);

	Verdict v;
	Hook hook;
	std::string e = hook.Start();
	if (!e.empty()) {
		fprintf(stderr, "soak: webhook: %s\n", e.c_str());
		return 2;
	}
	Derpd d;
	if (!d.Start(DaemonFlags(d.dir, hook.port()))) {
		fprintf(stderr, "soak: derpd did not start\n%s\n",
		    d.Log().c_str());
		return 2;
	}
	pid_t pid = ChildPid("derpd");
	Admin adm(d.dir + "/admin.sock");
	// Brief logging: 15,000 clients at debug level would be the load.
	cJSON_Delete(adm.Do("log brief"));
	Say("derpd pid %d on port %d, ASAN_OPTIONS=%s", (int)pid, d.port,
	    asan.c_str());
	usleep(1000 * 1000);
	int64_t rss_cold = RssKb(pid);
	// A warm-up crowd of idle clients comes and goes before the RSS
	// baseline. The allocator (ASan's above all: its size-class caches
	// and shadow memory are not given back) keeps the high-water mark of
	// the first crowd; what must not happen is growth, so the check is
	// that a second crowd, with everything else this soak does, leaves no
	// more behind than the first.
	{
		Loop warm(d.port, d.server_pub);
		int opened = 0;
		int64_t t0 = NowMs();
		while (NowMs() - t0 < 60000 && !PastDeadline() &&
		    (opened < kIdle || warm.Handshaking() > 0)) {
			while (opened < kIdle &&
			    warm.Handshaking() < (size_t)kIdleInFlight) {
				warm.Open(K_IDLE, 1, 1 + opened % kIdleSources);
				opened++;
			}
			warm.Run(10);
		}
		// And some traffic, so that the packet paths have been used
		// too: a client floods itself for 3 s while it reads.
		uint64_t wsent = WarmUpFlood(d);
		Say("warm-up: %" PRIu64 " idle clients in %.1f s, %" PRIu64
		    " packets; RSS %" PRId64 " KiB; they leave",
		    warm.ks[K_IDLE].established,
		    (double)(NowMs() - t0) / 1000.0, wsent, RssKb(pid));
	}
	for (int64_t t = NowMs(); NowMs() - t < 30000 && !PastDeadline();) {
		int64_t socks = d.Metric("derpd_current_sockets");
		if (socks >= 0 && socks <= 1)
			break;
		usleep(200 * 1000);
	}
	usleep(3000 * 1000);
	int64_t rss_start = RssKb(pid);
	g_rss_peak = rss_start;
	Say("RSS cold %" PRId64 " KiB, after the warm-up crowd %" PRId64 " KiB",
	    rss_cold, rss_start);
	std::map<std::string, int64_t> m0 = d.Metrics();
	int nworkers = (int)Get(m0, "derpd_workers");
	Say("RSS at start %" PRId64 " KiB; %d workers", rss_start, nworkers);

	// RSS sampler.
	std::atomic<bool> stop_rss{ false };
	std::thread rss_thread([&] {
		while (!stop_rss.load()) {
			int64_t r = RssKb(pid);
			if (r > g_rss_peak.load())
				g_rss_peak = r;
			usleep(250 * 1000);
		}
	});

	// Probes first: they ping throughout, setup included.
	std::vector<std::unique_ptr<Probe>> probes;
	std::set<int> covered;
	for (int i = 0; i < kProbeMax && (i < kProbes ||
	    (int)covered.size() < nworkers); i++) {
		auto p = std::make_unique<Probe>();
		std::string err;
		p->c = d.Connect(&err);
		if (!p->c) {
			Say("probe %d: %s", i, err.c_str());
			continue;
		}
		p->key = KeyOf(derpc_pub(p->c.get()));
		cJSON *row = adm.Client(p->key.data());
		p->worker = row ? (int)Num(row, "worker") : -1;
		cJSON_Delete(row);
		covered.insert(p->worker);
		p->t = std::thread(ProbeLoop, p.get());
		probes.push_back(std::move(p));
	}
	Say("%zu probes on workers:%s", probes.size(), [&] {
		std::string s;
		for (auto &p : probes)
			s += " " + std::to_string(p->worker);
		return s;
	}().c_str());

	// Receivers that read everything.
	std::vector<std::unique_ptr<Receiver>> readers;
	for (int i = 0; i < kReaders; i++) {
		auto r = std::make_unique<Receiver>();
		std::string err;
		r->c = d.Connect(&err);
		if (!r->c) {
			Say("reader %d: %s", i, err.c_str());
			continue;
		}
		r->key = KeyOf(derpc_pub(r->c.get()));
		g_targets.Add(&Targets::readers, r->key);
		r->t = std::thread(ReceiverLoop, r.get(), &g_c.recv_readers);
		readers.push_back(std::move(r));
	}

	// 15,000 idle clients (and the never-reader pool) through the loop.
	Loop loop(d.port, d.server_pub);
	int idle_opened = 0, src = 0;
	int64_t setup_t0 = NowMs(), last_progress = NowMs();
	while ((loop.ks[K_IDLE].established < (uint64_t)kIdle ||
	    loop.Handshaking() > 0) && !PastDeadline() &&
	    NowMs() - setup_t0 < 90000) {
		while (idle_opened - (int)(loop.ks[K_IDLE].refused +
		    loop.ks[K_IDLE].failed) < kIdle &&
		    loop.Handshaking() < (size_t)kIdleInFlight &&
		    idle_opened < kIdle + 1000) {
			loop.Open(K_IDLE, 1, 1 + src++ % kIdleSources);
			idle_opened++;
		}
		loop.Run(10);
		if (idle_opened >= kIdle + 1000 && loop.Handshaking() == 0)
			break;
		if (NowMs() - last_progress >= 5000) {
			last_progress = NowMs();
			Say("setup: %" PRIu64 " idle clients established, %zu "
			    "handshaking", loop.ks[K_IDLE].established,
			    loop.Handshaking());
		}
	}
	for (int i = 0; i < kNeverReaders; i++)
		loop.Open(K_NEVER, 4, 1 + i % 8);
	for (int64_t t = NowMs(); NowMs() - t < 3000 &&
	    loop.ks[K_NEVER].established < (uint64_t)kNeverReaders;)
		loop.Run(10);
	std::map<std::string, int64_t> m_setup = d.Metrics();
	Say("setup: %" PRIu64 " idle clients established (%" PRIu64
	    " refused, %" PRIu64 " failed%s%s) in %.1f s; daemon has %" PRId64
	    " DERP connections; RSS %" PRId64 " KiB",
	    loop.ks[K_IDLE].established, loop.ks[K_IDLE].refused,
	    loop.ks[K_IDLE].failed, loop.first_error.empty() ? "" : ": ",
	    loop.first_error.c_str(), (double)(NowMs() - setup_t0) / 1000.0,
	    Get(m_setup, "derp_current_connections"), RssKb(pid));

	// Senders and flooders.
	std::vector<std::unique_ptr<Sender>> senders;
	for (int i = 0; i < kSenders; i++) {
		auto s = std::make_unique<Sender>();
		s->c = d.Connect();
		if (!s->c)
			continue;
		s->t = std::thread(SenderLoop, s.get());
		senders.push_back(std::move(s));
	}
	std::vector<std::unique_ptr<Flooder>> flooders;
	for (int i = 0; i < kSelfFlooders + kOtherFlooders; i++) {
		auto f = std::make_unique<Flooder>();
		f->c = d.Connect();
		if (!f->c)
			continue;
		f->key = KeyOf(derpc_pub(f->c.get()));
		f->self = i < kSelfFlooders;
		f->t = std::thread(FlooderLoop, f.get());
		flooders.push_back(std::move(f));
	}

	// The load phase: churn, slowloris, never-readers, resets, floods and
	// the webhook's moods, all at once.
	g_load0_ms = NowMs();
	g_stage = P_LOAD;
	int churn_opened = 0, slow_opened = 0, victims_opened = 0;
	int64_t last_report = NowMs(), last_never = 0;
	size_t hook_i = 0;
	while (NowMs() - g_load0_ms < kLoadMs && !PastDeadline()) {
		int64_t t = NowMs() - g_load0_ms;
		while (hook_i < sizeof(kHookPhases) / sizeof(kHookPhases[0]) &&
		    t >= kHookPhases[hook_i].from_ms)
			hook.Set(kHookPhases[hook_i++].name);
		// Each kind is spread over the whole phase, so each meets
		// every mood of the webhook and every flood.
		int64_t due = t * 1000 / (kLoadMs - 5000);
		while (loop.Live(K_CHURN) < (uint64_t)kChurnConcurrent &&
		    churn_opened < kChurnTotal &&
		    churn_opened < kChurnTotal * due / 1000)
			loop.Open(K_CHURN, 2, 1 + churn_opened++ % 32);
		while (loop.Live(K_SLOW) < (uint64_t)kSlowConcurrent &&
		    slow_opened < kSlowTotal &&
		    slow_opened < kSlowTotal * due / 1000)
			loop.Open(K_SLOW, 3, 1 + slow_opened++ % 32);
		while (loop.Live(K_VICTIM) < (uint64_t)kVictimConcurrent &&
		    victims_opened < kVictimTotal &&
		    victims_opened < kVictimTotal * due / 1000)
			loop.Open(K_VICTIM, 4, 100 + victims_opened++ % 8);
		if (loop.Live(K_NEVER) < (uint64_t)kNeverReaders &&
		    NowMs() - last_never >= kNeverReaderEveryMs) {
			last_never = NowMs();
			loop.Open(K_NEVER, 4, 1 + (int)(NowMs() % 8));
		}
		loop.Run(5);
		if (NowMs() - last_report >= 10000) {
			last_report = NowMs();
			int64_t worst = 0;
			for (auto &p : probes)
				worst = std::max(worst, p->max_us.load());
			Say("load: sent %" PRIu64 " received %" PRIu64 " (+%"
			    PRIu64 " self); churn %" PRIu64 " done %" PRIu64
			    " refused; slowloris %" PRIu64 " closed; RSS %"
			    PRId64 " KiB; worst ping %.1f ms",
			    g_c.sent.load(), g_c.recv_readers.load(),
			    g_c.recv_self.load(), loop.ks[K_CHURN].done,
			    loop.ks[K_CHURN].refused, loop.ks[K_SLOW].done,
			    RssKb(pid), (double)worst / 1000.0);
		}
	}
	hook.Set("healthy");

	// Wind down: no new clients; writers stop; finish what is under way.
	// Each step is followed by a second of quiet, so that the probes'
	// worst moments can be told apart (Say lines carry the time).
	auto quiet = [&](int ms) {
		for (int64_t t = NowMs(); NowMs() - t < ms;)
			loop.Run(10);
	};
	g_stage = P_TEARDOWN;
	g_stop_send = true;
	for (auto &s : senders)
		s->t.join();
	Say("teardown: senders and flooders stopped writing");
	quiet(1000);
	for (int64_t t = NowMs(); NowMs() - t < 12000 &&
	    (loop.Live(K_CHURN) > 0 || loop.Live(K_SLOW) > 0);)
		loop.Run(10);
	uint64_t churn_left = loop.Live(K_CHURN), slow_left = loop.Live(K_SLOW);
	loop.CloseKind(K_CHURN, false);
	loop.CloseKind(K_SLOW, false);
	loop.CloseKind(K_VICTIM, true);
	loop.CloseKind(K_NEVER, true);
	Say("teardown: churn, slowloris, never-readers and reset receivers gone");
	quiet(1000);
	senders.clear();		// their connections close
	Say("teardown: senders disconnected");
	quiet(1000);
	uint64_t sent = g_c.sent.load();
	Say("writers stopped: %" PRIu64 " packets sent; waiting for the relay "
	    "to take them all", sent);
	int64_t rcvd = 0;
	for (int64_t t = NowMs(); NowMs() - t < 20000 && !PastDeadline();) {
		rcvd = d.Metric("derp_packets_received") -
		    Get(m0, "derp_packets_received");
		if (rcvd >= (int64_t)sent)
			break;
		loop.Run(50);
	}
	// Receivers' figures, taken while they are still connected, once
	// everything for them has arrived or been dropped.
	uint64_t rd_drops = 0, self_drops = 0;
	int rows_missing = 0;
	for (int64_t t = NowMs(); NowMs() - t < 10000 && !PastDeadline();) {
		rd_drops = self_drops = 0;
		rows_missing = 0;
		for (auto &r : readers) {
			cJSON *row = adm.Client(r->key.data());
			if (row == nullptr)
				rows_missing++;
			else
				rd_drops += (uint64_t)Num(row, "drops");
			cJSON_Delete(row);
		}
		for (auto &f : flooders) {
			if (!f->self)
				continue;
			cJSON *row = adm.Client(f->key.data());
			if (row == nullptr)
				rows_missing++;
			else
				self_drops += (uint64_t)Num(row, "drops");
			cJSON_Delete(row);
		}
		if (g_c.recv_readers.load() + rd_drops ==
		    g_c.sent_readers.load() && g_c.recv_self.load() +
		    self_drops == g_c.sent_self.load())
			break;
		loop.Run(200);
	}

	// Everyone leaves: receivers, flooders, idle clients, then probes.
	g_stop_read = true;
	for (auto &r : readers)
		r->t.join();
	for (auto &f : flooders)
		f->t.join();
	std::vector<std::string> reader_deaths, flooder_deaths;
	for (auto &r : readers)
		if (r->dead)
			reader_deaths.push_back(r->why);
	for (auto &f : flooders)
		if (f->dead)
			flooder_deaths.push_back(f->why);
	uint64_t flood_sent = 0;
	for (auto &f : flooders)
		flood_sent += f->sent.load();
	readers.clear();
	flooders.clear();
	Say("teardown: receivers and flooders disconnected");
	quiet(1000);
	uint64_t idle_live_at_end = loop.Live(K_IDLE);
	uint64_t idle_closed_by_server = loop.ks[K_IDLE].server_closed;
	loop.CloseAll();
	Say("teardown: %" PRIu64 " idle clients disconnected", idle_live_at_end);
	// The probes watch the daemon take the 15,000 goodbyes.
	usleep(3000 * 1000);
	g_stop_probes = true;
	for (auto &p : probes)
		p->t.join();
	std::vector<std::tuple<int, int64_t, int64_t, uint64_t, uint64_t,
	    uint64_t, bool>> probe_rows;
	// worker -> phase -> (worst, pings over the limit)
	std::map<int, std::vector<std::pair<int64_t, uint64_t>>> by_phase;
	for (auto &p : probes) {
		probe_rows.emplace_back(p->worker, p->max_us.load(),
		    p->max_at_ms, p->pings.load(), p->over.load(),
		    p->lost.load(), p->dead.load());
		auto &v = by_phase[p->worker];
		v.resize(P__COUNT);
		for (int i = 0; i < P__COUNT; i++) {
			v[i].first = std::max(v[i].first, p->phase_max_us[i]);
			v[i].second += p->phase_over[i];
		}
	}
	probes.clear();
	int64_t load_end = NowMs();

	// The daemon after everyone left.
	int64_t socks = -1;
	for (int64_t t = NowMs(); NowMs() - t < 30000 && !PastDeadline();) {
		// The varz request itself is one socket.
		socks = d.Metric("derpd_current_sockets");
		if (socks >= 0 && socks <= 1)
			break;
		usleep(200 * 1000);
	}
	std::map<std::string, int64_t> m1 = d.Metrics();
	stop_rss = true;
	rss_thread.join();
	int64_t rss_end = RssKb(pid);
	int64_t rss_limit = (int64_t)((double)rss_start * (1.0 + kRssSlack));
	int64_t settle_t0 = NowMs();
	while (rss_end > rss_limit && NowMs() - settle_t0 < 45000 &&
	    !PastDeadline()) {
		usleep(1000 * 1000);
		rss_end = RssKb(pid);
	}
	int64_t settle_ms = NowMs() - settle_t0;

	// Alive: varz answers, and a new client connects and gets a Pong.
	bool alive = false;
	{
		std::string err;
		Client c = d.Connect(&err);
		uint8_t data[8] = { 's', 'o', 'a', 'k', 'e', 'n', 'd', '!' };
		derpc_frame f;
		alive = c && derpc_ping(c.get(), data) == DERPC_OK &&
		    derpc_recv_type(c.get(), FRAME_PONG, &f, 3000) ==
		    DERPC_OK && d.Metric("derp_accepts") > 0;
		if (!alive)
			Say("alive check: %s", c ? derpc_error(c.get()) :
			    err.c_str());
	}

	// ---- figures ----
	auto delta = [&](const std::string &n) {
		return Get(m1, n) - Get(m0, n);
	};
	int64_t d_recv = delta("derp_packets_received");
	int64_t d_sent = delta("derp_packets_sent");
	int64_t d_drops = Sum(m1, "derp_packets_dropped{") -
	    Sum(m0, "derp_packets_dropped{");
	printf("soak: ---- figures ----\n");
	printf("soak: duration: %.1f s (setup %.1f s, load %.1f s, settle "
	    "%.1f s)\n", (double)(NowMs() - g_t0_ms) / 1000.0,
	    (double)(g_load0_ms - setup_t0) / 1000.0,
	    (double)(load_end - g_load0_ms) / 1000.0,
	    (double)settle_ms / 1000.0);
	printf("soak: connections: peak DERP connections %" PRId64 " (varz "
	    "at setup); accepts %" PRId64 "\n",
	    Get(m_setup, "derp_current_connections"), delta("derp_accepts"));
	for (int k = 0; k < K__COUNT; k++) {
		KindStats &s = loop.ks[k];
		printf("soak:   %-15s started %6" PRIu64 " established %6"
		    PRIu64 " refused %5" PRIu64 " failed %4" PRIu64
		    " closed-by-server %5" PRIu64 " done %5" PRIu64
		    " slowest handshake %" PRId64 " ms\n", kKindName[k],
		    s.started, s.established, s.refused, s.failed,
		    s.server_closed, s.done, s.max_establish_ms);
	}
	if (loop.ks[K_SLOW].done > 0)
		printf("soak:   slowloris closed by the daemon after %.1f..%.1f s "
		    "(handshake timeout %d s)\n",
		    (double)loop.ks[K_SLOW].min_close_ms / 1000.0,
		    (double)loop.ks[K_SLOW].max_close_ms / 1000.0,
		    kHandshakeTimeoutMs / 1000);
	printf("soak: packets: sent %" PRIu64 " (to readers %" PRIu64
	    ", to self %" PRIu64 ", to never-readers %" PRIu64
	    ", to reset receivers %" PRIu64 ", to unknown keys %" PRIu64
	    "; floods %" PRIu64 ")\n", g_c.sent.load(),
	    g_c.sent_readers.load(), g_c.sent_self.load(),
	    g_c.sent_never.load(), g_c.sent_victims.load(),
	    g_c.sent_unknown.load(), flood_sent);
	printf("soak: packets: delivered to readers %" PRIu64 " (+%" PRIu64
	    " dropped for them), to flooders themselves %" PRIu64 " (+%"
	    PRIu64 " dropped for them), elsewhere %" PRIu64 "\n",
	    g_c.recv_readers.load(), rd_drops, g_c.recv_self.load(),
	    self_drops, g_c.recv_other.load());
	printf("soak: daemon: received %" PRId64 ", written to clients %"
	    PRId64 ", dropped %" PRId64 "\n", d_recv, d_sent, d_drops);
	for (auto &kv : m1)
		if (kv.first.compare(0, 21, "derp_packets_dropped{") == 0 &&
		    kv.second - Get(m0, kv.first) != 0)
			printf("soak:   %s %" PRId64 "\n", kv.first.c_str(),
			    kv.second - Get(m0, kv.first));
	int64_t written_unread = d_sent - (int64_t)g_c.recv_readers.load() -
	    (int64_t)g_c.recv_self.load() - (int64_t)g_c.recv_other.load();
	printf("soak: daemon: written to never-readers and reset receivers "
	    "(never read) %" PRId64 "\n", written_unread);
	for (auto &kv : m1)
		if (kv.first.compare(0, 25, "derpd_connections_closed{") == 0 &&
		    kv.second - Get(m0, kv.first) != 0)
			printf("soak:   %s %" PRId64 "\n", kv.first.c_str(),
			    kv.second - Get(m0, kv.first));
	for (auto &kv : m1)
		if ((kv.first.compare(0, 31, "derpd_admission_results{reason=") ==
		    0) && kv.second - Get(m0, kv.first) != 0)
			printf("soak:   %s %" PRId64 "\n", kv.first.c_str(),
			    kv.second - Get(m0, kv.first));
	printf("soak: webhook: %zu requests answered or refused\n",
	    hook.Requests());
	printf("soak: RSS: start %" PRId64 " KiB, peak %" PRId64 " KiB, end %"
	    PRId64 " KiB (limit %" PRId64 " KiB, after %.1f s of settling)\n",
	    rss_start, g_rss_peak.load(), rss_end, rss_limit,
	    (double)settle_ms / 1000.0);
	std::map<int, int64_t> worst;
	for (auto &row : probe_rows) {
		int w = std::get<0>(row);
		printf("soak: probe on worker %d: %" PRIu64 " pings, worst %.1f ms"
		    " at %.1f s, %" PRIu64 " over %lld ms, %" PRIu64 " lost%s\n",
		    w, std::get<3>(row), (double)std::get<1>(row) / 1000.0,
		    (double)std::get<2>(row) / 1000.0, std::get<4>(row),
		    (long long)(kPingLimitUs / 1000), std::get<5>(row),
		    std::get<6>(row) ? " (connection lost)" : "");
		worst[w] = std::max(worst[w], std::get<1>(row));
	}
	for (auto &w : by_phase)
		for (int i = 0; i < P__COUNT; i++)
			printf("soak:   worker %d %-16s worst %7.1f ms, %" PRIu64
			    " pings over %lld ms\n", w.first, kPhaseName[i],
			    (double)w.second[i].first / 1000.0, w.second[i].second,
			    (long long)(kPingLimitUs / 1000));
	for (auto &s : reader_deaths)
		printf("soak: a reader was disconnected: %s\n", s.c_str());
	for (auto &s : flooder_deaths)
		printf("soak: a flooder was disconnected: %s\n", s.c_str());

	// ---- checks ----
	printf("soak: ---- checks ----\n");
	v.Check(Get(m_setup, "derp_current_connections") >= kIdle,
	    "concurrent connections: %" PRId64 " (want at least %d)",
	    Get(m_setup, "derp_current_connections"), kIdle);
	v.Check(idle_live_at_end == (uint64_t)kIdle &&
	    idle_closed_by_server == 0, "idle clients held to the end: %"
	    PRIu64 " of %d (%" PRIu64 " closed by the daemon)",
	    idle_live_at_end, kIdle, idle_closed_by_server);
	v.Check(d_recv == (int64_t)g_c.sent.load(), "relay received every "
	    "packet sent: %" PRId64 " of %" PRIu64, d_recv, g_c.sent.load());
	v.Check(d_recv == d_sent + d_drops, "every packet received was "
	    "written or dropped by reason: %" PRId64 " = %" PRId64 " + %"
	    PRId64 " (%+" PRId64 ")", d_recv, d_sent, d_drops,
	    d_recv - d_sent - d_drops);
	v.Check(rows_missing == 0 && reader_deaths.empty() &&
	    g_c.recv_readers.load() + rd_drops == g_c.sent_readers.load(),
	    "packets to reading receivers: %" PRIu64 " sent = %" PRIu64
	    " delivered + %" PRIu64 " dropped and counted",
	    g_c.sent_readers.load(), g_c.recv_readers.load(), rd_drops);
	v.Check(flooder_deaths.empty() && g_c.recv_self.load() + self_drops ==
	    g_c.sent_self.load(), "packets flooded to self: %" PRIu64 " sent = %"
	    PRIu64 " delivered + %" PRIu64 " dropped and counted",
	    g_c.sent_self.load(), g_c.recv_self.load(), self_drops);
	v.Check(g_c.recv_other.load() == 0, "no packet arrived where none was "
	    "sent: %" PRIu64, g_c.recv_other.load());
	v.Check(written_unread >= 0, "written to non-readers is not negative: "
	    "%" PRId64, written_unread);
	v.Check(loop.ks[K_SLOW].done + slow_left == loop.ks[K_SLOW].started &&
	    loop.ks[K_SLOW].failed == 0 && slow_left == 0,
	    "slowloris: %" PRIu64 " of %" PRIu64 " closed by the daemon",
	    loop.ks[K_SLOW].done, loop.ks[K_SLOW].started);
	v.Check(churn_left == 0 && loop.ks[K_CHURN].failed == 0,
	    "churn: %" PRIu64 " connected and left cleanly, %" PRIu64
	    " refused by admission, %" PRIu64 " failed",
	    loop.ks[K_CHURN].done, loop.ks[K_CHURN].refused,
	    loop.ks[K_CHURN].failed);
	v.Check(socks >= 0 && socks <= 1, "clients gone: %" PRId64
	    " sockets left", socks);
	v.Check(rss_end >= 0 && rss_end <= rss_limit, "RSS back within %.0f%%"
	    " of start: %" PRId64 " KiB (start %" PRId64 ", peak %" PRId64 ")",
	    kRssSlack * 100, rss_end, rss_start, g_rss_peak.load());
	for (int w = 0; w < nworkers; w++) {
		auto it = worst.find(w);
		v.Check(it != worst.end() && it->second <= kPingLimitUs,
		    "worker %d ping latency: worst %.1f ms (limit %lld ms)", w,
		    it == worst.end() ? -1.0 : (double)it->second / 1000.0,
		    (long long)(kPingLimitUs / 1000));
	}
	v.Check(alive, "daemon alive at the end (varz, connect, ping)");
	std::string log = d.Log();
	bool san = log.find("ERROR: AddressSanitizer") != std::string::npos ||
	    log.find("runtime error:") != std::string::npos ||
	    log.find("ERROR: LeakSanitizer") != std::string::npos;
	bool failed_before = ::testing::UnitTest::GetInstance()->Failed();
	hook.Stop();
	d.Stop();		// SIGTERM; the harness wants exit status 0
	log = d.Log();
	san = san || log.find("ERROR: AddressSanitizer") != std::string::npos ||
	    log.find("ERROR: LeakSanitizer") != std::string::npos ||
	    log.find("runtime error:") != std::string::npos;
	v.Check(!failed_before && !::testing::UnitTest::GetInstance()->Failed()
	    && !san, "daemon exited 0 on SIGTERM with no sanitizer report");
	if (san || v.failed > 0) {
		// The daemon's warnings and sanitizer output, not the chatter.
		size_t pos = 0, shown = 0;
		printf("soak: ---- daemon log (warnings, errors) ----\n");
		while (pos < log.size() && shown < 200) {
			size_t eol = log.find('\n', pos);
			std::string line = log.substr(pos, eol == std::string::npos ?
			    std::string::npos : eol - pos);
			pos = eol == std::string::npos ? log.size() : eol + 1;
			if (line.find(" info ") != std::string::npos ||
			    line.find(" debug ") != std::string::npos)
				continue;
			printf("%s\n", line.c_str());
			shown++;
		}
	}
	printf("soak: %d passed, %d failed\n", v.passed, v.failed);
	return v.failed == 0 ? 0 : 1;
}
