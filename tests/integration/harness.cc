// SPDX-License-Identifier: ISC
// harness.cc: the real daemon as a child process (see harness.h).
#include "harness.h"

#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "frame.h"
#include "util.h"

namespace {

int64_t
NowMs()
{
	return std::chrono::duration_cast<std::chrono::milliseconds>(
	    std::chrono::steady_clock::now().time_since_epoch()).count();
}

int
RmOne(const char *path, const struct stat *, int, struct FTW *)
{
	return remove(path);
}

void
RmTree(const std::string &dir)
{
	if (!dir.empty())
		nftw(dir.c_str(), RmOne, 16, FTW_DEPTH | FTW_PHYS);
}

}  // namespace

std::string
Hex(const uint8_t *p, size_t n)
{
	std::string s(2 * n + 1, '\0');
	util_hex_encode(p, n, &s[0]);
	s.resize(2 * n);
	return s;
}

std::string
ReadFile(const std::string &path)
{
	std::ifstream f(path, std::ios::binary);
	std::stringstream ss;
	ss << f.rdbuf();
	return ss.str();
}

std::string
HttpResponse::Header(const std::string &name) const
{
	auto it = headers.find(name);
	return it == headers.end() ? "" : it->second;
}

bool
HttpResponse::Has(const std::string &name) const
{
	return headers.count(name) != 0;
}

Derpd::Derpd()
{
	char tmpl[] = "/tmp/derpd-it-XXXXXX";
	if (mkdtemp(tmpl) != nullptr)
		dir = tmpl;
}

Derpd::~Derpd()
{
	if (pid_ > 0) {
		kill(pid_, SIGKILL);
		waitpid(pid_, nullptr, 0);
		pid_ = -1;
	}
	if (reader_.joinable())
		reader_.join();
	if (!keep_dir)
		RmTree(dir);
}

void
Derpd::ReaderLoop(int fd)
{
	char buf[8192];
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		std::lock_guard<std::mutex> g(mu_);
		log_.append(buf, (size_t)n);
	}
	close(fd);
	std::lock_guard<std::mutex> g(mu_);
	log_eof_ = true;
}

bool
Derpd::Spawn(const std::vector<std::string> &extra)
{
	const char *bin = getenv("DERPD");
	if (bin == nullptr || *bin == '\0') {
		ADD_FAILURE() << "DERPD is not set (the path of the derpd "
		    "binary under test)";
		return false;
	}
	if (dir.empty()) {
		ADD_FAILURE() << "mkdtemp failed";
		return false;
	}
	if (reader_.joinable())
		reader_.join();
	{
		std::lock_guard<std::mutex> g(mu_);
		log_.clear();
		log_eof_ = false;
	}
	std::vector<std::string> args = { bin, "-a", "127.0.0.1:0",
	    "--stun-port=0", "--http-port=-1", "-c", dir + "/k.json",
	    "--workers=2", "--verbose" };
	args.insert(args.end(), extra.begin(), extra.end());
	std::vector<char *> argv;
	for (auto &a : args)
		argv.push_back(&a[0]);
	argv.push_back(nullptr);

	int p[2];
	if (pipe2(p, O_CLOEXEC) == -1) {
		ADD_FAILURE() << "pipe: " << strerror(errno);
		return false;
	}
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == -1) {
		ADD_FAILURE() << "fork: " << strerror(errno);
		close(p[0]);
		close(p[1]);
		return false;
	}
	if (pid == 0) {
		// Die with the test binary, even if it is killed.
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		int devnull = open("/dev/null", O_RDWR);
		dup2(devnull, 0);
		dup2(p[1], 1);
		dup2(p[1], 2);
		signal(SIGPIPE, SIG_DFL);
		execv(bin, argv.data());
		dprintf(2, "exec %s: %s\n", bin, strerror(errno));
		_exit(127);
	}
	close(p[1]);
	pid_ = pid;
	reader_ = std::thread(&Derpd::ReaderLoop, this, p[0]);
	return true;
}

bool
Derpd::Start(const std::vector<std::string> &extra)
{
	if (!Spawn(extra))
		return false;
	int64_t deadline = NowMs() + 5000;
	for (;;) {
		std::string l = Log();
		size_t a = l.find("listening on 127.0.0.1:");
		size_t s = l.find("stun listening on 127.0.0.1:");
		// The stun line also contains "listening on"; find the other.
		if (a != std::string::npos && a >= 5 &&
		    l.compare(a - 5, 5, "stun ") == 0)
			a = l.find("listening on 127.0.0.1:", a + 1);
		if (a != std::string::npos && s != std::string::npos) {
			char kind[16] = "";
			int p = 0;
			size_t eol = l.find('\n', a);
			if (eol != std::string::npos &&
			    sscanf(l.c_str() + a, "listening on 127.0.0.1:%d "
			    "(%15[a-z])", &p, kind) == 2 &&
			    l.find('\n', s) != std::string::npos &&
			    sscanf(l.c_str() + s, "stun listening on "
			    "127.0.0.1:%d", &stun_port) == 1) {
				port = p;
				tls = strcmp(kind, "tls") == 0;
				break;
			}
		}
		int st;
		bool exited;
		Reap(&st, 0, &exited);
		if (exited) {
			ADD_FAILURE() << "derpd exited during startup, status "
			    << st << "; log:\n" << Log();
			return false;
		}
		if (NowMs() > deadline) {
			ADD_FAILURE() << "derpd did not report its listeners "
			    "within 5 s; log:\n" << Log();
			return false;
		}
		usleep(5000);
	}
	std::string l = Log();
	size_t k = l.find("server key nodekey:");
	if (k == std::string::npos ||
	    util_hex_decode(l.c_str() + k + 19, 64, server_pub, 32) != 0) {
		ADD_FAILURE() << "no server key in the log:\n" << l;
		return false;
	}
	server_hex = l.substr(k + 19, 64);
	return true;
}

// Wait for the child; *exited false if still running after timeout_ms.
void
Derpd::Reap(int *status, int timeout_ms, bool *exited)
{
	int64_t deadline = NowMs() + timeout_ms;
	*exited = false;
	if (pid_ <= 0) {
		*exited = true;
		*status = 0;
		return;
	}
	for (;;) {
		int st;
		pid_t r = waitpid(pid_, &st, WNOHANG);
		if (r == pid_) {
			*status = st;
			*exited = true;
			pid_ = -1;
			if (reader_.joinable())
				reader_.join();
			return;
		}
		if (NowMs() >= deadline)
			return;
		usleep(5000);
	}
}

int
Derpd::RunToExit(const std::vector<std::string> &extra, int timeout_ms)
{
	int st;
	bool exited;

	if (!Spawn(extra))
		return -1;
	Reap(&st, timeout_ms, &exited);
	if (!exited) {
		kill(pid_, SIGKILL);
		Reap(&st, 5000, &exited);
		return -1;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

void
Derpd::Kill(int sig)
{
	if (pid_ > 0)
		kill(pid_, sig);
}

void
Derpd::KillAndReap()
{
	int st;
	bool exited;

	if (pid_ <= 0)
		return;
	kill(pid_, SIGKILL);
	Reap(&st, 5000, &exited);
}

void
Derpd::Stop()
{
	int st;
	bool exited;

	if (pid_ <= 0)
		return;
	kill(pid_, SIGTERM);
	Reap(&st, 5000, &exited);
	if (!exited) {
		ADD_FAILURE() << "derpd did not exit within 5 s of SIGTERM";
		kill(pid_, SIGKILL);
		Reap(&st, 5000, &exited);
		return;
	}
	EXPECT_TRUE(WIFEXITED(st)) << "derpd died by signal " <<
	    (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	if (WIFEXITED(st)) {
		EXPECT_EQ(0, WEXITSTATUS(st)) << "derpd exit status";
	}
}

std::string
Derpd::Log()
{
	std::lock_guard<std::mutex> g(mu_);
	return log_;
}

size_t
Derpd::LogSize()
{
	std::lock_guard<std::mutex> g(mu_);
	return log_.size();
}

bool
Derpd::WaitLog(const std::string &needle, int timeout_ms, size_t from)
{
	int64_t deadline = NowMs() + timeout_ms;
	for (;;) {
		{
			std::lock_guard<std::mutex> g(mu_);
			if (log_.size() > from &&
			    log_.find(needle, from) != std::string::npos)
				return true;
			if (log_eof_)
				return false;
		}
		if (NowMs() >= deadline)
			return false;
		usleep(5000);
	}
}

derpc_opts
Derpd::Opts() const
{
	derpc_opts o;
	memset(&o, 0, sizeof(o));
	o.port = port;
	o.tls = tls;
	o.sni = sni.empty() ? nullptr : sni.c_str();
	o.timeout_ms = 5000;
	return o;
}

Client
Derpd::Connect(std::string *err)
{
	return Connect(Opts(), err);
}

Client
Derpd::Connect(const derpc_opts &o, std::string *err, std::string *si)
{
	char e[512] = "", info[1024] = "";
	derpc *c = derpc_connect(&o, info, sizeof(info), e, sizeof(e));
	if (err != nullptr)
		*err = e;
	if (si != nullptr)
		*si = info;
	return Client(c);
}

Client
Derpd::Dial(std::string *err)
{
	char e[512] = "";
	derpc_opts o = Opts();
	derpc *c = derpc_dial(&o, e, sizeof(e));
	if (err != nullptr)
		*err = e;
	return Client(c);
}

HttpResponse
Derpd::Http(const std::string &raw, int timeout_ms)
{
	HttpResponse r;
	std::string err;
	Client c = Dial(&err);
	if (!c) {
		r.err = "dial: " + err;
		return r;
	}
	if (derpc_write_raw(c.get(), raw.data(), raw.size()) != DERPC_OK) {
		r.err = std::string("write: ") + derpc_error(c.get());
		return r;
	}
	std::string all;
	int64_t deadline = NowMs() + timeout_ms;
	char buf[16384];
	for (;;) {
		size_t got;
		int64_t left = deadline - NowMs();
		int rc = derpc_read_raw(c.get(), buf, sizeof(buf), &got,
		    left > 0 ? (int)left : 0);
		if (rc == DERPC_OK) {
			all.append(buf, got);
			continue;
		}
		if (rc == DERPC_EOF)
			r.closed = true;
		else if (rc == DERPC_TIMEOUT)
			r.err = "timed out waiting for the server to close";
		else
			r.err = derpc_error(c.get());
		break;
	}
	size_t he = all.find("\r\n\r\n");
	if (he == std::string::npos) {
		if (r.err.empty())
			r.err = "no complete response head";
		r.head = all;
		return r;
	}
	r.head = all.substr(0, he + 2);
	r.body = all.substr(he + 4);
	if (sscanf(r.head.c_str(), "HTTP/1.1 %d", &r.status) != 1) {
		r.err = "bad status line";
		return r;
	}
	r.ok = true;
	size_t pos = r.head.find("\r\n") + 2;
	while (pos < r.head.size()) {
		size_t eol = r.head.find("\r\n", pos);
		std::string line = r.head.substr(pos, eol - pos);
		size_t colon = line.find(':');
		if (colon != std::string::npos) {
			std::string n = line.substr(0, colon);
			for (auto &ch : n)
				ch = (char)tolower((unsigned char)ch);
			size_t v = colon + 1;
			while (v < line.size() && line[v] == ' ')
				v++;
			r.headers[n] = line.substr(v);
		}
		pos = eol + 2;
	}
	return r;
}

HttpResponse
Derpd::Get(const std::string &path, const std::string &headers,
    const std::string &method)
{
	return Http(method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1:" +
	    std::to_string(port) + "\r\n" + headers + "\r\n");
}

int64_t
Derpd::Metric(const std::string &name)
{
	HttpResponse r = Get("/debug/varz");
	if (!r.ok || r.status != 200)
		return -1;
	std::istringstream in(r.body);
	std::string line;
	while (std::getline(in, line)) {
		if (line.size() > name.size() &&
		    line.compare(0, name.size(), name) == 0 &&
		    line[name.size()] == ' ')
			return strtoll(line.c_str() + name.size() + 1, nullptr,
			    10);
	}
	return -1;
}

std::map<std::string, int64_t>
Derpd::Metrics()
{
	std::map<std::string, int64_t> m;
	HttpResponse r = Get("/debug/varz");
	if (!r.ok || r.status != 200) {
		ADD_FAILURE() << "GET /debug/varz: " << r.status << " " << r.err;
		return m;
	}
	std::istringstream in(r.body);
	std::string line;
	while (std::getline(in, line)) {
		if (line.empty() || line[0] == '#')
			continue;
		size_t sp = line.rfind(' ');
		if (sp == std::string::npos)
			continue;
		m[line.substr(0, sp)] = strtoll(line.c_str() + sp + 1,
		    nullptr, 10);
	}
	return m;
}

int64_t
Derpd::WaitMetric(const std::string &name, int64_t want, int timeout_ms)
{
	int64_t deadline = NowMs() + timeout_ms, v;
	while ((v = Metric(name)) != want && NowMs() < deadline)
		usleep(20000);
	return v;
}

int64_t
Derpd::WaitMetricAtLeast(const std::string &name, int64_t want,
    int timeout_ms)
{
	int64_t deadline = NowMs() + timeout_ms, v;
	while ((v = Metric(name)) < want && NowMs() < deadline)
		usleep(20000);
	return v;
}

bool
DerpdTest::StartMesh(const std::vector<std::string> &extra)
{
	RAND_bytes(mesh_, sizeof(mesh_));
	std::string path = d.dir + "/mesh.key";
	int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd == -1)
		return false;
	std::string text = Hex(mesh_, 32) + "\n";
	bool ok = write(fd, text.data(), text.size()) == (ssize_t)text.size();
	close(fd);
	std::vector<std::string> args = { "--mesh-psk-file=" + path };
	args.insert(args.end(), extra.begin(), extra.end());
	return ok && d.Start(args);
}

void
DerpdTest::TearDown()
{
	d.Stop();
	d.keep_dir = HasFailure();
	if (HasFailure())
		fprintf(stderr, "---- derpd log (%s) ----\n%s---- end of "
		    "derpd log ----\n", d.dir.c_str(), d.Log().c_str());
}

::testing::AssertionResult
RecvType(derpc *c, uint8_t type, derpc_frame *f, int timeout_ms)
{
	int rc = derpc_recv_type(c, type, f, timeout_ms);
	if (rc == DERPC_OK)
		return ::testing::AssertionSuccess();
	char t[8];
	snprintf(t, sizeof(t), "0x%02x", type);
	return ::testing::AssertionFailure() << "waiting for frame " << t <<
	    ": " << (rc == DERPC_TIMEOUT ? "timed out" : rc == DERPC_EOF ?
	    "connection closed" : "error") << ": " << derpc_error(c);
}

::testing::AssertionResult
SendRecv(derpc *a, derpc *b, const std::string &data, int timeout_ms)
{
	if (derpc_send_packet(a, derpc_pub(b), data.data(), data.size()) !=
	    DERPC_OK)
		return ::testing::AssertionFailure() << "send: " <<
		    derpc_error(a);
	uint8_t src[32];
	std::string got(FRAME_MAX_PACKET, '\0');
	size_t n;
	int rc = derpc_recv_packet(b, src, &got[0], got.size(), &n,
	    timeout_ms);
	if (rc != DERPC_OK)
		return ::testing::AssertionFailure() << "recv: rc " << rc <<
		    ": " << derpc_error(b);
	got.resize(n);
	if (memcmp(src, derpc_pub(a), 32) != 0)
		return ::testing::AssertionFailure() << "source key " <<
		    Hex(src, 32) << ", want " << Hex(derpc_pub(a), 32);
	if (got != data)
		return ::testing::AssertionFailure() << "payload differs (" <<
		    n << " bytes, want " << data.size() << ")";
	return ::testing::AssertionSuccess();
}

::testing::AssertionResult
Quiet(derpc *c, int ms)
{
	int64_t deadline = NowMs() + ms;
	for (;;) {
		derpc_frame f;
		int64_t left = deadline - NowMs();
		if (left <= 0)
			return ::testing::AssertionSuccess();
		int rc = derpc_recv_frame(c, &f, (int)left);
		if (rc == DERPC_TIMEOUT)
			return ::testing::AssertionSuccess();
		if (rc != DERPC_OK)
			return ::testing::AssertionFailure() << "connection "
			    "ended: " << derpc_error(c);
		if (f.type != FRAME_KEEP_ALIVE)
			return ::testing::AssertionFailure() << "unexpected "
			    "frame type " << (int)f.type << " length " << f.len;
	}
}

::testing::AssertionResult
ClosedWithin(derpc *c, int ms)
{
	int64_t deadline = NowMs() + ms;
	for (;;) {
		derpc_frame f;
		int64_t left = deadline - NowMs();
		int rc = derpc_recv_frame(c, &f, left > 0 ? (int)left : 0);
		if (rc == DERPC_EOF)
			return ::testing::AssertionSuccess();
		if (rc == DERPC_TIMEOUT)
			return ::testing::AssertionFailure() << "still open after "
			    << ms << " ms";
		if (rc != DERPC_OK)
			return ::testing::AssertionFailure() << "error: " <<
			    derpc_error(c);
		if (f.type != FRAME_KEEP_ALIVE)
			return ::testing::AssertionFailure() << "got frame type "
			    << (int)f.type << " length " << f.len <<
			    " instead of a close";
	}
}

std::string
DiscoPacket(size_t len)
{
	std::string p(len, '\0');
	memcpy(&p[0], FRAME_DISCO_MAGIC, FRAME_DISCO_MAGIC_LEN);
	for (size_t i = FRAME_DISCO_MAGIC_LEN; i < len; i++)
		p[i] = (char)(i * 7);
	return p;
}

std::string
MakeCert(const std::string &crt, const std::string &key,
    const std::string &cn, const std::string &san, unsigned key_mode)
{
	std::string err;
	EVP_PKEY *k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
	X509 *x = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ex;
	FILE *f;
	unsigned char serial[16];

	if (k == nullptr || x == nullptr) {
		err = "keygen";
		goto out;
	}
	X509_set_version(x, 2);
	RAND_bytes(serial, sizeof(serial));
	serial[0] &= 0x7f;
	{
		BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), nullptr);
		BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
		BN_free(bn);
	}
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 30L * 24 * 3600);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN",
	    MBSTRING_ASC, (const unsigned char *)cn.c_str(), -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, k);
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
	ex = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name,
	    san.c_str());
	if (ex == nullptr) {
		err = "SAN";
		goto out;
	}
	X509_add_ext(x, ex, -1);
	X509_EXTENSION_free(ex);
	ex = X509V3_EXT_conf_nid(nullptr, &ctx, NID_basic_constraints,
	    "critical,CA:FALSE");
	X509_add_ext(x, ex, -1);
	X509_EXTENSION_free(ex);
	if (!X509_sign(x, k, EVP_sha256())) {
		err = "sign";
		goto out;
	}
	// Write to temp files, then rename, so a reload never sees halves.
	if ((f = fopen((crt + ".new").c_str(), "w")) == nullptr ||
	    !PEM_write_X509(f, x) || fclose(f) != 0) {
		err = "write " + crt;
		goto out;
	}
	{
		std::string tk = key + ".new";
		int fd = open(tk.c_str(), O_WRONLY | O_CREAT | O_TRUNC,
		    0600);
		if (fd == -1 || fchmod(fd, key_mode) == -1 ||
		    (f = fdopen(fd, "w")) == nullptr) {
			err = "write " + key;
			goto out;
		}
		if (!PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr,
		    nullptr) || fclose(f) != 0) {
			err = "write " + key;
			goto out;
		}
		if (rename(tk.c_str(), key.c_str()) == -1 ||
		    rename((crt + ".new").c_str(), crt.c_str()) == -1)
			err = "rename";
	}
out:
	X509_free(x);
	EVP_PKEY_free(k);
	return err;
}

std::string
CertFileSHA256(const std::string &crt)
{
	FILE *f = fopen(crt.c_str(), "r");
	if (f == nullptr)
		return "";
	X509 *x = PEM_read_X509(f, nullptr, nullptr, nullptr);
	fclose(f);
	if (x == nullptr)
		return "";
	unsigned char md[32];
	unsigned int n = 0;
	X509_digest(x, EVP_sha256(), md, &n);
	X509_free(x);
	return Hex(md, 32);
}

int64_t
MsSince(Clock::time_point t)
{
	return std::chrono::duration_cast<std::chrono::milliseconds>(
	    Clock::now() - t).count();
}

std::string
Closed(const char *reason)
{
	return std::string("derpd_connections_closed{reason=\"") + reason +
	    "\"}";
}

std::string
Drop(const char *reason, const char *kind)
{
	return std::string("derp_packets_dropped{reason=\"") + reason +
	    "\",kind=\"" + kind + "\"}";
}
