# derpd: a DERP relay server. One non-recursive GNU Makefile.
#   make            build build/derpd and everything the tests need
#   make run        install missing packages, build, run a dev relay
#   make check      install missing packages, build, run every test tier
#   make bench      side-by-side benchmark against the Go derper
#   make asan       unit + integration tests under ASan and UBSan
#   make fuzz       each libFuzzer target for FUZZ_SECONDS (60), clang
#   make check-fuzz-replay  the fuzz harnesses over their saved inputs
#   make tsan       integration tests with derpd under ThreadSanitizer
#   make soak       15,000 clients and hostile traffic against an ASan derpd
#                   for at most 5 minutes; prints its figures and checks
#   make install    PREFIX=/usr/local DESTDIR=
#   make deb        a Debian package (contrib/debian/build.sh, dpkg-deb)

PREFIX	?= /usr/local
BINDIR	?= $(PREFIX)/bin
SBINDIR	?= $(PREFIX)/sbin
MANDIR	?= $(PREFIX)/share/man
DESTDIR	?=
B	?= build
V	?= 0

PKGS	 = openssl libsodium libevent libevent_openssl libevent_pthreads \
	   libcurl libcjson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN	 = -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes \
	   -Wmissing-declarations -Wshadow -Wpointer-arith -Wcast-qual \
	   -Wsign-compare
HARDEN	 = -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE
OPT	?= -O2 -g
SAN	?=
CFLAGS	?=
CFLAGS	+= -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(HARDEN) $(SAN) -MMD -MP \
	   -Isrc -Iauth $(PKG_CFLAGS)
CXXFLAGS ?=
CXXFLAGS += -std=c++17 -D_GNU_SOURCE $(OPT) -Wall -Wextra $(SAN) -MMD -MP \
	   -Isrc -Iauth -Iadmin -Itests/lib $(PKG_CFLAGS)
LDFLAGS	?=
LDFLAGS	+= -pie -Wl,-z,relro,-z,now $(SAN)
# libwslay-dev ships no pkg-config file.
LIBS	 = $(PKG_LIBS) -lwslay -lpthread

ifeq ($(V),0)
Q	 = @
QCC	 = @echo "  CC      $@";
QCXX	 = @echo "  CXX     $@";
QLD	 = @echo "  LD      $@";
QAR	 = @echo "  AR      $@";
endif

# Everything in src/ but main.c goes into libderpd.a.
SRC	 = src/acme.c \
	   src/acme_msg.c \
	   src/bootdns.c \
	   src/config.c \
	   src/conn.c \
	   src/conn_auth.c \
	   src/conn_ctl.c \
	   src/conn_derp.c \
	   src/conn_http.c \
	   src/conn_mesh.c \
	   src/conn_queue.c \
	   src/control.c \
	   src/control_cmd.c \
	   src/frame.c \
	   src/http.c \
	   src/io.c \
	   src/keys.c \
	   src/keyset.c \
	   src/ratelim.c \
	   src/listener.c \
	   src/log.c \
	   src/mesh.c \
	   src/notify.c \
	   src/peer.c \
	   src/procstat.c \
	   src/pktq.c \
	   src/reload.c \
	   src/stats.c \
	   src/stun.c \
	   src/stun_server.c \
	   src/tbucket.c \
	   src/theap.c \
	   src/tls.c \
	   src/util.c \
	   src/varz.c \
	   src/worker.c \
	   src/ws.c

AUTH	 = auth/apiset.c \
	   auth/auth.c \
	   auth/auth_allow.c \
	   auth/auth_api.c \
	   auth/auth_audit.c \
	   auth/auth_ctl.c \
	   auth/auth_curl.c \
	   auth/auth_http.c \
	   auth/auth_policy.c \
	   auth/auth_reject.c \
	   auth/auth_sched.c \
	   auth/policy.c

ADMIN	 = admin/derpctl.c \
	   admin/output_json.c \
	   admin/output_text.c \
	   admin/parser.c \
	   admin/top.c

TESTLIB	 = tests/lib/derpc.c

UNIT	 = tests/unit/acme_test.cc \
	   tests/unit/apiset_test.cc \
	   tests/unit/config_test.cc \
	   tests/unit/auth_test.cc \
	   tests/unit/bootdns_test.cc \
	   tests/unit/control_test.cc \
	   tests/unit/derpctl_test.cc \
	   tests/unit/derpctl_top_test.cc \
	   tests/unit/frame_test.cc \
	   tests/unit/http_test.cc \
	   tests/unit/io_test.cc \
	   tests/unit/keys_test.cc \
	   tests/unit/keyset_test.cc \
	   tests/unit/log_test.cc \
	   tests/unit/mesh_test.cc \
	   tests/unit/notify_test.cc \
	   tests/unit/peer_test.cc \
	   tests/unit/pktq_test.cc \
	   tests/unit/policy_test.cc \
	   tests/unit/ratelim_test.cc \
	   tests/unit/procstat_test.cc \
	   tests/unit/stun_test.cc \
	   tests/unit/theap_test.cc \
	   tests/unit/util_test.cc \
	   tests/unit/ws_test.cc

INTEG	 = tests/integration/harness.cc \
	   tests/integration/admission_test.cc \
	   tests/integration/bootdns_test.cc \
	   tests/integration/hostile_test.cc \
	   tests/integration/http_test.cc \
	   tests/integration/limits_test.cc \
	   tests/integration/mesh_test.cc \
	   tests/integration/notify_test.cc \
	   tests/integration/relay_test.cc \
	   tests/integration/control_test.cc \
	   tests/integration/errors_test.cc \
	   tests/integration/tls_test.cc \
	   tests/integration/top_test.cc \
	   tests/integration/websocket_test.cc

# libFuzzer harnesses: tests/fuzz/fuzz_<name>.c defines
# LLVMFuzzerTestOneInput; seeds in tests/fuzz/corpus/<name>/, crashes
# kept as tests/fuzz/regress/<name>/ (tests/fuzz/README).
FUZZ	 = tests/fuzz/fuzz_acme.c \
	   tests/fuzz/fuzz_allowlist.c \
	   tests/fuzz/fuzz_clientinfo.c \
	   tests/fuzz/fuzz_control.c \
	   tests/fuzz/fuzz_frame.c \
	   tests/fuzz/fuzz_http.c \
	   tests/fuzz/fuzz_keyfile.c \
	   tests/fuzz/fuzz_localapi.c \
	   tests/fuzz/fuzz_meshkey.c \
	   tests/fuzz/fuzz_policy.c \
	   tests/fuzz/fuzz_rateconf.c \
	   tests/fuzz/fuzz_apiset.c \
	   tests/fuzz/fuzz_stun.c \
	   tests/fuzz/fuzz_webhook.c \
	   tests/fuzz/fuzz_ws.c

LIBOBJ	 = $(SRC:%.c=$(B)/%.o) $(AUTH:%.c=$(B)/%.o)
TLOBJ	 = $(TESTLIB:%.c=$(B)/%.o)
UNITBIN	 = $(UNIT:tests/unit/%.cc=$(B)/tests/unit/%)
INTEGOBJ = $(INTEG:%.cc=$(B)/%.o)
MANPAGES = man/derpctl.8 \
	   man/derpd.8 \
	   man/derpd-admission.7 \
	   man/derpd-control.7
GTEST	 = -lgtest_main -lgtest
FUZZNAMES = $(FUZZ:tests/fuzz/fuzz_%.c=%)
REPLAYBIN = $(FUZZ:%.c=$(B)/%)

all: $(B)/derpd $(B)/derpctl $(B)/derpcat $(B)/loadgen $(UNITBIN) \
	$(B)/tests/integration_tests $(REPLAYBIN)

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(QCC)$(CC) $(CFLAGS) -c -o $@ $<

$(B)/%.o: %.cc
	@mkdir -p $(@D)
	$(QCXX)$(CXX) $(CXXFLAGS) -c -o $@ $<

$(B)/libderpd.a: $(LIBOBJ)
	$(QAR)rm -f $@ && $(AR) rcs $@ $^

$(B)/derpd: $(B)/src/main.o $(B)/libderpd.a
	$(QLD)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/derpctl: $(ADMIN:%.c=$(B)/%.o) $(B)/libderpd.a
	$(QLD)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/derpcat: $(B)/tests/lib/derpcat.o $(TLOBJ) $(B)/libderpd.a
	$(QLD)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/loadgen: $(B)/tests/bench/loadgen.o $(B)/libderpd.a
	$(QLD)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(B)/tests/unit/derpctl_test: $(B)/tests/unit/derpctl_test.o $(B)/admin/parser.o \
	$(B)/admin/output_text.o $(TLOBJ) $(B)/libderpd.a
	$(QLD)$(CXX) $(LDFLAGS) -o $@ $^ $(GTEST) $(LIBS)

$(B)/tests/unit/derpctl_top_test: $(B)/tests/unit/derpctl_top_test.o \
	$(B)/admin/top.o $(TLOBJ) $(B)/libderpd.a
	$(QLD)$(CXX) $(LDFLAGS) -o $@ $^ $(GTEST) $(LIBS)

$(B)/tests/unit/%: $(B)/tests/unit/%.o $(TLOBJ) $(B)/libderpd.a
	$(QLD)$(CXX) $(LDFLAGS) -o $@ $^ $(GTEST) $(LIBS)

$(B)/tests/integration_tests: $(INTEGOBJ) $(TLOBJ) $(B)/libderpd.a
	$(QLD)$(CXX) $(LDFLAGS) -o $@ $^ $(GTEST) $(LIBS)

# A harness with tests/fuzz/replay.c as main(): no clang, no libFuzzer.
$(REPLAYBIN): %: %.o $(B)/tests/fuzz/replay.o $(B)/libderpd.a
	$(QLD)$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

deps:
	@sh contrib/install-deps.sh

# Builds use both cores; the test tiers run one after another (timing).
JOBS	?= 2

CHECK_TIERS = check-unit check-fuzz-replay check-integration check-interop \
	    check-man check-deb

check: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all
	@for t in $(CHECK_TIERS); do \
		t0=$$(date +%s); \
		$(MAKE) --no-print-directory $$t || exit 1; \
		echo "tier $$t: $$(( $$(date +%s) - t0 ))s"; \
	done

check-unit: $(UNITBIN)
	@set -e; for t in $(UNITBIN); do echo "== $$t"; $$t --gtest_brief=1; done

# Every saved fuzz input, seeds and past crashes, stays a test forever.
check-fuzz-replay: $(REPLAYBIN)
	@set -e; for n in $(FUZZNAMES); do \
	    $(B)/tests/fuzz/fuzz_$$n tests/fuzz/corpus/$$n \
	    tests/fuzz/regress/$$n; done

check-integration: $(B)/derpd $(B)/tests/integration_tests
	DERPD=$(CURDIR)/$(B)/derpd $(B)/tests/integration_tests --gtest_brief=1

check-interop: $(B)/derpd
	@sh tests/interop/run.sh $(CURDIR)/$(B)/derpd

check-man:
	@command -v mandoc >/dev/null || { echo "mandoc missing"; exit 1; }
	mandoc -Tlint -Wwarning $(MANPAGES)
	@echo "man pages: lint clean"

asan:
	$(MAKE) -j$(JOBS) B=build/asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    all
	$(MAKE) B=build/asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    check-unit check-fuzz-replay check-integration

# ThreadSanitizer: the daemon exits 66 at the first race report, and the
# harness fails a test whose daemon did not exit 0 on SIGTERM.
TSAN_ENV = TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 \
	   suppressions=$(CURDIR)/tests/tsan.supp"
tsan:
	$(MAKE) -j$(JOBS) B=build/tsan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=thread" all
	$(TSAN_ENV) $(MAKE) B=build/tsan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=thread" check-integration

# make soak: build/asan/derpd (the asan flags) against the soak driver
# (tests/soak/soak.cc, built plain in build/soak). One bounded run.
soak:
	$(MAKE) -j$(JOBS) B=build/asan OPT="-O1 -g -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    build/asan/derpd
	$(MAKE) -j$(JOBS) B=build/soak build/soak/soak
	DERPD=$(CURDIR)/build/asan/derpd build/soak/soak

$(B)/soak: $(B)/tests/soak/soak.o $(B)/tests/integration/harness.o \
	$(TLOBJ) $(B)/libderpd.a
	$(QLD)$(CXX) $(LDFLAGS) -o $@ $^ $(GTEST) $(LIBS)

# make fuzz: the sources built by clang for libFuzzer with ASan and UBSan
# in their own object dir; each harness links what it needs from
# libderpd.a there. tests/fuzz/run.sh runs them one at a time.
FZ	?= build/fuzz
FUZZCC	?= clang
FUZZ_SECONDS ?= 60
FUZZCFLAGS = -std=c11 -D_GNU_SOURCE -O1 -g -fno-omit-frame-pointer $(WARN) \
	   -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	   -MMD -MP -Isrc -Iauth $(PKG_CFLAGS)
FUZZLIBOBJ = $(SRC:%.c=$(FZ)/%.o) $(AUTH:%.c=$(FZ)/%.o)
FUZZBIN	 = $(FUZZ:tests/fuzz/%.c=$(FZ)/%)

$(FUZZLIBOBJ): $(FZ)/%.o: %.c
	@mkdir -p $(@D)
	$(QCC)$(FUZZCC) $(FUZZCFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FZ)/libderpd.a: $(FUZZLIBOBJ)
	$(QAR)rm -f $@ && $(AR) rcs $@ $^

$(FUZZBIN): $(FZ)/%: tests/fuzz/%.c $(FZ)/libderpd.a
	$(QLD)$(FUZZCC) $(FUZZCFLAGS) -fsanitize=fuzzer -o $@ $< \
	    $(FZ)/libderpd.a $(LIBS)

fuzz: deps
	@command -v $(FUZZCC) >/dev/null || \
	    { echo "fuzz: $(FUZZCC) missing: contrib/install-deps.sh"; exit 1; }
	@$(MAKE) --no-print-directory $(FUZZBIN)
	@sh tests/fuzz/run.sh $(FZ) $(FUZZ_SECONDS) $(FUZZNAMES)

run: deps
	@$(MAKE) --no-print-directory $(B)/derpd
	@$(MAKE) --no-print-directory $(B)/derpctl $(B)/derpcat
	@echo "derpd: dev relay on http://127.0.0.1:3340/derp, STUN on 127.0.0.1:3478,"
	@echo "       admin socket ./derpd.sock. In another shell, try:"
	@echo "  $(B)/derpctl -s derpd.sock show stats"
	@echo "  $(B)/derpcat -s http://127.0.0.1:3340/derp ping   (a test client)"
	@echo "  $(B)/derpctl -s derpd.sock show clients"
	@echo "  $(B)/derpctl -s derpd.sock monitor"
	@echo "  curl -s http://127.0.0.1:3340/debug/varz | grep ^derp_"
	$(B)/derpd --dev --verbose

bench: $(B)/derpd $(B)/loadgen
	@sh tests/bench/run.sh $(CURDIR)/$(B)

UNITDIR	?= /etc/systemd/system
COMPDIR	?= $(PREFIX)/share/bash-completion/completions
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d

install: $(B)/derpd $(B)/derpctl
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(UNITDIR) $(DESTDIR)$(COMPDIR) \
	    $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR)
	install -m 0755 $(B)/derpd $(DESTDIR)$(SBINDIR)/derpd
	install -m 0755 $(B)/derpctl $(DESTDIR)$(SBINDIR)/derpctl
	install -m 0644 man/derpd.8 man/derpctl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 man/derpd-admission.7 man/derpd-control.7 \
	    $(DESTDIR)$(MANDIR)/man7/
	sed 's|@SBINDIR@|$(SBINDIR)|g' contrib/systemd/derpd.service.in \
	    >$(DESTDIR)$(UNITDIR)/derpd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/derpd.service
	install -m 0644 contrib/systemd/derpd.sysusers \
	    $(DESTDIR)$(SYSUSERSDIR)/derpd.conf
	install -m 0644 contrib/systemd/derpd.tmpfiles \
	    $(DESTDIR)$(TMPFILESDIR)/derpd.conf
	install -m 0644 contrib/completion/derpctl.bash \
	    $(DESTDIR)$(COMPDIR)/derpctl

# make deb: $(B)/deb/derpd_<version>_<arch>.deb with dpkg-deb alone
# (contrib/debian/build.sh: make install with PREFIX=/usr into a staging
# root). check-deb runs lintian on it and checks its contents.
deb: $(B)/derpd $(B)/derpctl
	@sh contrib/debian/build.sh $(B)

check-deb: deb
	@sh contrib/debian/check.sh $(B)

clean:
	rm -rf build

.PHONY: all deps check check-unit check-fuzz-replay check-integration \
	check-interop check-man check-deb deb fuzz \
	asan tsan soak run bench install clean

-include $(LIBOBJ:.o=.d) $(B)/src/main.d $(TLOBJ:.o=.d) \
	$(ADMIN:%.c=$(B)/%.d) \
	$(B)/tests/bench/loadgen.d \
	$(B)/tests/soak/soak.d \
	$(UNIT:%.cc=$(B)/%.d) $(INTEGOBJ:.o=.d) \
	$(REPLAYBIN:=.d) $(B)/tests/fuzz/replay.d \
	$(FUZZLIBOBJ:.o=.d) $(FUZZBIN:=.d)
