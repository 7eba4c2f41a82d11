package interop

// Tier D: two real tailscaled nodes (tailscale.com v1.102.3, userspace
// networking) joined to an in-process testcontrol server whose DERP map has
// one region (900 "cderp") pointing at derpd. With TS_DEBUG_ALWAYS_USE_DERP
// the nodes have no UDP sockets at all, so every peer packet (disco and
// WireGuard) goes through derpd.
//
// TestTailscaledRelay: disco ping via DERP(cderp) both ways, TSMP ping, a
// 10 MiB TCP transfer with SHA-256, derpd counters, and the LocalAPI WhoIs
// facts the admission code relies on.
//
// TestTailscaledVerifyClients: the same tailnet with derpd started as
// `--verify-clients --socket=<A's socket>`: both nodes relay, a random key is
// refused (first Recv is an error, no ServerInfo), B's own key (from its state
// file) is admitted, stopping tailscaled A makes derpd fail closed while the
// established connection stays up, and restarting A resumes admission
// without restarting derpd.
//
// Binaries: $TAILSCALED / $TAILSCALE (must be built from tailscale.com
// v1.102.3), else built once per test binary from this module (see tools.go).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"debug/buildinfo"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"tailscale.com/client/tailscale/apitype"
	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
)

const (
	e2eRegionID   = 900
	e2eRegionCode = "cderp"
	// e2eBudget bounds one e2e test once the binaries exist.
	e2eBudget = 4 * time.Minute
)

// TestMain only removes the directory holding the tailscaled/tailscale
// binaries built for this test binary (shared by the e2e tests).
func TestMain(m *testing.M) {
	code := m.Run()
	tsBins.cleanup()
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// Binaries

type tsBinaries struct {
	once       sync.Once
	dir        string // temp dir we created (removed by TestMain), if any
	tailscaled string
	tailscale  string
	err        error
}

var tsBins tsBinaries

func (b *tsBinaries) cleanup() {
	if b.dir != "" {
		os.RemoveAll(b.dir)
	}
}

// tailscaleBinaries returns tailscaled and tailscale built from tailscale.com
// v1.102.3: $TAILSCALED and $TAILSCALE if set (version checked), else built
// once per test binary with `go build` through this module's go.mod.
func tailscaleBinaries(t *testing.T) (tailscaled, tailscale string) {
	t.Helper()
	tsBins.once.Do(func() { tsBins.err = tsBins.locateOrBuild(t) })
	if tsBins.err != nil {
		t.Fatal(tsBins.err)
	}
	return tsBins.tailscaled, tsBins.tailscale
}

func (b *tsBinaries) locateOrBuild(t *testing.T) error {
	envD, envC := os.Getenv("TAILSCALED"), os.Getenv("TAILSCALE")
	if envD != "" || envC != "" {
		if envD == "" || envC == "" {
			return errors.New("set both $TAILSCALED and $TAILSCALE, or neither")
		}
		for _, p := range []string{envD, envC} {
			bi, err := buildinfo.ReadFile(p)
			if err != nil {
				return fmt.Errorf("%s: %v", p, err)
			}
			if bi.Main.Path != "tailscale.com" || bi.Main.Version != tailscaleVersion {
				return fmt.Errorf("%s is built from %s %s, want tailscale.com %s", p, bi.Main.Path, bi.Main.Version, tailscaleVersion)
			}
		}
		b.tailscaled, b.tailscale = envD, envC
		t.Logf("using $TAILSCALED=%s $TAILSCALE=%s", envD, envC)
		return nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return fmt.Errorf("go command not found (needed to build tailscaled): %v", err)
	}
	wd, err := os.Getwd() // the package directory: go.mod pins tailscale.com
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "derpd-interop-tsbin-")
	if err != nil {
		return err
	}
	b.dir = dir
	for _, name := range []string{"tailscaled", "tailscale"} {
		out := filepath.Join(dir, "bin", name)
		start := time.Now()
		cmd := exec.Command(goBin, "build", "-o", out, "tailscale.com/cmd/"+name)
		cmd.Dir = wd
		if o, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build tailscale.com/cmd/%s: %v\n%s", name, err, o)
		}
		t.Logf("built %s (tailscale.com %s) in %v", name, tailscaleVersion, time.Since(start).Round(100*time.Millisecond))
	}
	b.tailscaled = filepath.Join(dir, "bin", "tailscaled")
	b.tailscale = filepath.Join(dir, "bin", "tailscale")
	// Like tailscale's own harness: a freshly written binary can briefly
	// fail with ETXTBSY; make sure it runs.
	var lastErr error
	for i := 0; i < 50; i++ {
		o, err := exec.Command(b.tailscaled, "--version").CombinedOutput()
		if err == nil {
			t.Logf("tailscaled --version: %s", strings.SplitN(strings.TrimSpace(string(o)), "\n", 2)[0])
			return nil
		}
		lastErr = fmt.Errorf("%v: %s", err, o)
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("tailscaled --version: %v", lastErr)
}

// ---------------------------------------------------------------------------
// The tailnet rig: testcontrol + two tailscaled nodes.

// tailnet is testcontrol plus nodes A and B. newTailnet only prepares the
// node directories (so A's socket path is known before derpd starts, for
// --verify-clients); Start brings everything up against a running derpd.
type tailnet struct {
	t        *testing.T
	ctx      context.Context // bounds the whole test (e2eBudget)
	cancel   context.CancelFunc
	bins     [2]string // tailscaled, tailscale
	A, B     *tsNode
	d        *derpd
	control  *testcontrol.Server
	hs       *httptest.Server
	trapHits atomic.Int64
	trapMu   sync.Mutex
	trapReqs []string
	ctlLog   *lockedBuffer
	// distinctUsers gives each node a user of its own (login
	// user-<n>@fake-control.example.net) instead of one shared user.
	distinctUsers bool
}

func newTailnet(t *testing.T) *tailnet {
	t.Helper()
	tsd, tsc := tailscaleBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), e2eBudget)
	t.Cleanup(cancel)
	tn := &tailnet{t: t, ctx: ctx, cancel: cancel, bins: [2]string{tsd, tsc}, ctlLog: &lockedBuffer{}}
	tn.A = tn.newNode("a")
	tn.B = tn.newNode("b")
	return tn
}

// AdmissionFacts returns what a derpd --verify-clients test needs: the
// LocalAPI socket of node A (the verifier) and the node keys of A and B
// (valid after Start).
func (tn *tailnet) AdmissionFacts() (sockA string, keyA, keyB key.NodePublic) {
	return tn.A.Sock, tn.A.NodeKey, tn.B.NodeKey
}

func e2eDERPMap(d *derpd) *tailcfg.DERPMap {
	stunPort := -1 // disabled
	if d.STUNAddr != "" {
		_, p, _ := net.SplitHostPort(d.STUNAddr)
		fmt.Sscan(p, &stunPort)
	}
	return &tailcfg.DERPMap{
		OmitDefaultRegions: true,
		Regions: map[int]*tailcfg.DERPRegion{
			e2eRegionID: {
				RegionID:   e2eRegionID,
				RegionCode: e2eRegionCode,
				RegionName: "derpd under test",
				Nodes: []*tailcfg.DERPNode{{
					Name:     "900a",
					RegionID: e2eRegionID,
					HostName: "127.0.0.1",
					IPv4:     "127.0.0.1",
					IPv6:     "none",
					DERPPort: d.Port,
					STUNPort: stunPort,
				}},
			},
		},
	}
}

// Start runs testcontrol with a one-region DERP map for d, starts A and B,
// brings both up, and waits until each is Running and sees the other.
func (tn *tailnet) Start(d *derpd) {
	t := tn.t
	t.Helper()
	tn.d = d

	// Anything tailscaled tries to send to the Internet through
	// HTTP(S)_PROXY lands here (loopback URLs bypass the proxy).
	trap := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tn.trapHits.Add(1)
		tn.trapMu.Lock()
		tn.trapReqs = append(tn.trapReqs, r.Method+" "+r.Host+r.URL.String())
		tn.trapMu.Unlock()
		http.Error(w, "no Internet in tests", http.StatusForbidden)
	}))
	t.Cleanup(func() {
		trap.Close()
		if n := tn.trapHits.Load(); n > 0 {
			tn.trapMu.Lock()
			t.Errorf("tailscaled tried to reach the Internet %d times (via HTTP(S)_PROXY trap): %q", n, tn.trapReqs)
			tn.trapMu.Unlock()
		}
	})

	tn.control = &testcontrol.Server{
		DERPMap:          e2eDERPMap(d),
		AllNodesSameUser: !tn.distinctUsers,
		AllOnline:        true,
		Logf: func(format string, args ...any) {
			fmt.Fprintf(tn.ctlLog, time.Now().Format("15:04:05.000 ")+format+"\n", args...)
		},
	}
	tn.hs = httptest.NewUnstartedServer(tn.control) // listens on 127.0.0.1:0
	tn.control.HTTPTestServer = tn.hs
	tn.hs.Start()
	t.Logf("testcontrol at %s; DERP region %d %q -> derpd http://127.0.0.1:%d (stun %s)", tn.hs.URL, e2eRegionID, e2eRegionCode, d.Port, d.STUNAddr)
	t.Cleanup(func() {
		tn.hs.CloseClientConnections()
		done := make(chan struct{})
		go func() { tn.hs.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Logf("testcontrol did not close within 5s")
		}
		if t.Failed() {
			t.Logf("testcontrol log (tail):\n%s", tailLines(tn.ctlLog.String(), 60))
		}
	})

	start := time.Now()
	for _, n := range []*tsNode{tn.A, tn.B} {
		n.start(trap.URL)
	}
	for _, n := range []*tsNode{tn.A, tn.B} {
		n.waitLocalAPI(30 * time.Second)
	}
	for _, n := range []*tsNode{tn.A, tn.B} {
		n.up()
	}
	tn.waitMutual(90 * time.Second)
	t.Logf("tailnet up in %v: a=%v %s, b=%v %s", time.Since(start).Round(time.Millisecond),
		tn.A.IP, tn.A.NodeKey.ShortString(), tn.B.IP, tn.B.NodeKey.ShortString())
}

// waitMutual polls `tailscale status --json` on both nodes until each is
// Running and lists the other as a peer.
func (tn *tailnet) waitMutual(timeout time.Duration) {
	t := tn.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for {
		sa, errA := tn.A.status()
		sb, errB := tn.B.status()
		if errA == nil && errB == nil {
			tn.A.noteSelf(sa)
			tn.B.noteSelf(sb)
			okA := sa.BackendState == "Running" && peerOf(sa, tn.B.NodeKey) != nil
			okB := sb.BackendState == "Running" && peerOf(sb, tn.A.NodeKey) != nil
			if okA && okB && tn.A.IP != "" && tn.B.IP != "" {
				return
			}
			last = fmt.Sprintf("a: %s peers=%d; b: %s peers=%d", sa.BackendState, len(sa.Peer), sb.BackendState, len(sb.Peer))
		} else {
			last = fmt.Sprintf("a: %v; b: %v", errA, errB)
		}
		if time.Now().After(deadline) || tn.ctx.Err() != nil {
			tn.dumpLogs()
			t.Fatalf("nodes not Running with each other as peers after %v: %s", timeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func peerOf(st *ipnstate.Status, k key.NodePublic) *ipnstate.PeerStatus {
	if k.IsZero() {
		return nil
	}
	for _, p := range st.Peer {
		if p.PublicKey == k {
			return p
		}
	}
	return nil
}

func (tn *tailnet) dumpLogs() {
	for _, n := range []*tsNode{tn.A, tn.B} {
		tn.t.Logf("tailscaled %s log (tail):\n%s", n.Name, tailLines(n.log.String(), 80))
	}
}

// ---------------------------------------------------------------------------
// One tailscaled node.

type tsNode struct {
	tn    *tailnet
	Name  string
	Dir   string
	Sock  string // LocalAPI unix socket
	State string // state file (plain JSON, --encrypt-state=false)

	NodeKey key.NodePublic
	IP      string // first Tailscale IPv4

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
	deathW  *os.File // closing it makes tailscaled exit (TS_PARENT_DEATH_FD)
	log     *lockedBuffer
	trapURL string
}

func (tn *tailnet) newNode(name string) *tsNode {
	dir := tn.t.TempDir()
	n := &tsNode{
		tn:    tn,
		Name:  name,
		Dir:   dir,
		Sock:  filepath.Join(dir, "ts.sock"),
		State: filepath.Join(dir, "tailscaled.state"),
		log:   &lockedBuffer{},
	}
	if len(n.Sock) >= 104 {
		tn.t.Fatalf("socket path too long for AF_UNIX: %s", n.Sock)
	}
	return n
}

// start launches tailscaled (first start or restart with the same state).
func (n *tsNode) start(trapURL string) {
	t := n.tn.t
	t.Helper()
	n.trapURL = trapURL
	args := []string{
		"--tun=userspace-networking",
		"--statedir=" + n.Dir,
		"--state=" + n.State,
		"--encrypt-state=false",
		"--socket=" + n.Sock,
		"--port=0",
		"--no-logs-no-support",
	}
	cmd := exec.Command(n.tn.bins[0], args...)
	cmd.Dir = n.Dir
	cmd.Env = append(os.Environ(),
		"TS_DEBUG_ALWAYS_USE_DERP=1",      // no UDP sockets: all peer traffic via DERP
		"TS_DEBUG_USE_DERP_HTTP=1",        // derpd runs plain HTTP
		"TS_DISABLE_PORTMAPPER=1",         // no UPnP/NAT-PMP/PCP probing
		"TS_ASSUME_NETWORK_UP_FOR_TEST=1", // no airplane-mode pause
		"TS_PANIC_IF_HIT_MAIN_CONTROL=1",  // never talk to controlplane.tailscale.com
		"TS_LOGS_DIR="+n.Dir,
		"TS_DEBUG_LOG_RATE=all",
		"HTTP_PROXY="+trapURL,
		"HTTPS_PROXY="+trapURL,
		"TS_PARENT_DEATH_FD=3",
	)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.ExtraFiles = []*os.File{pr}
	cmd.Stdout = n.log
	cmd.Stderr = n.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	fmt.Fprintf(n.log, "=== %s starting: tailscaled %s\n", time.Now().Format("15:04:05.000"), strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting tailscaled %s: %v", n.Name, err)
	}
	pr.Close()
	exited := make(chan struct{})
	n.mu.Lock()
	n.cmd, n.exited, n.deathW = cmd, exited, pw
	n.mu.Unlock()
	go func() {
		err := cmd.Wait()
		n.mu.Lock()
		n.waitErr = err
		n.mu.Unlock()
		close(exited)
	}()
	t.Cleanup(func() { n.shutdown(cmd, exited, pw) })
}

// shutdown is the cleanup for one tailscaled process: `tailscale down`,
// SIGTERM, then SIGKILL after 10 s.
func (n *tsNode) shutdown(cmd *exec.Cmd, exited chan struct{}, deathW *os.File) {
	t := n.tn.t
	defer deathW.Close()
	select {
	case <-exited:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if out, err := n.cliCtx(ctx, "down", "--accept-risk=all"); err != nil {
		t.Logf("tailscale %s down: %v: %s", n.Name, err, out)
	}
	cancel()
	n.stopProcess(cmd, exited, syscall.SIGTERM, 10*time.Second)
}

// stop terminates the current tailscaled process (for restart tests).
func (n *tsNode) stop(sig syscall.Signal) {
	n.mu.Lock()
	cmd, exited := n.cmd, n.exited
	n.mu.Unlock()
	n.stopProcess(cmd, exited, sig, 10*time.Second)
}

func (n *tsNode) stopProcess(cmd *exec.Cmd, exited chan struct{}, sig syscall.Signal, grace time.Duration) {
	t := n.tn.t
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(grace):
		t.Errorf("tailscaled %s did not exit within %v of %v; killing it", n.Name, grace, sig)
		cmd.Process.Kill()
		<-exited
	}
	fmt.Fprintf(n.log, "=== %s tailscaled exited (%v)\n", time.Now().Format("15:04:05.000"), sig)
}

func (n *tsNode) running() bool {
	n.mu.Lock()
	exited := n.exited
	n.mu.Unlock()
	select {
	case <-exited:
		return false
	default:
		return true
	}
}

// cli runs `tailscale --socket=<sock> args...` bounded by the test budget.
func (n *tsNode) cli(args ...string) (string, error) {
	return n.cliCtx(n.tn.ctx, args...)
}

func (n *tsNode) cliCtx(ctx context.Context, args ...string) (string, error) {
	return n.cliInput(ctx, nil, args...)
}

func (n *tsNode) cliInput(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := n.cliCmd(ctx, args...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (n *tsNode) cliCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, n.tn.bins[1], append([]string{"--socket=" + n.Sock}, args...)...)
	cmd.Dir = n.Dir
	cmd.Env = append(os.Environ(),
		"TS_LOGS_DIR="+n.Dir,
		"SSH_CLIENT=", "SSH_CONNECTION=", "SSH_AUTH_SOCK=",
	)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// waitLocalAPI waits until tailscaled answers on its socket.
func (n *tsNode) waitLocalAPI(timeout time.Duration) {
	t := n.tn.t
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if !n.running() {
			t.Fatalf("tailscaled %s exited during startup (%v); log:\n%s", n.Name, n.waitErr, tailLines(n.log.String(), 80))
		}
		resp, err := n.localAPI("GET", "/localapi/v0/status", nil)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("tailscaled %s LocalAPI not answering on %s after %v: %v; log:\n%s", n.Name, n.Sock, timeout, err, tailLines(n.log.String(), 80))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (n *tsNode) up() {
	t := n.tn.t
	t.Helper()
	ctx, cancel := context.WithTimeout(n.tn.ctx, 90*time.Second)
	defer cancel()
	start := time.Now()
	out, err := n.cliCtx(ctx, "up",
		"--login-server="+n.tn.hs.URL,
		"--hostname="+n.Name,
		"--accept-dns=false",
		"--reset",
	)
	if err != nil {
		n.tn.dumpLogs()
		t.Fatalf("tailscale %s up: %v\n%s", n.Name, err, out)
	}
	t.Logf("tailscale %s up in %v %s", n.Name, time.Since(start).Round(time.Millisecond), strings.TrimSpace(out))
}

func (n *tsNode) status() (*ipnstate.Status, error) {
	ctx, cancel := context.WithTimeout(n.tn.ctx, 15*time.Second)
	defer cancel()
	cmd := n.cliCmd(ctx, "status", "--json")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("tailscale %s status --json: %v: %s", n.Name, err, stderr.Bytes())
	}
	st := new(ipnstate.Status)
	if err := json.Unmarshal(out, st); err != nil {
		return nil, fmt.Errorf("tailscale %s status --json: %v: %s", n.Name, err, trunc(out))
	}
	return st, nil
}

func (n *tsNode) noteSelf(st *ipnstate.Status) {
	if st.Self == nil {
		return
	}
	if !st.Self.PublicKey.IsZero() {
		n.NodeKey = st.Self.PublicKey
	}
	for _, ip := range st.TailscaleIPs {
		if ip.Is4() {
			n.IP = ip.String()
		}
	}
}

// localAPI performs one LocalAPI request over the node's unix socket.
func (n *tsNode) localAPI(method, path string, body io.Reader) (*http.Response, error) {
	return localAPIDo(n.tn.ctx, n.Sock, method, path, body)
}

// localAPIDo is an HTTP/1.1 request to tailscaled's LocalAPI on sock, the
// way derper --verify-clients does it (Host: local-tailscaled.sock).
func localAPIDo(ctx context.Context, sock, method, path string, body io.Reader) (*http.Response, error) {
	c := &http.Client{
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", sock)
			},
			DisableKeepAlives: true,
		},
		Timeout: 10 * time.Second,
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://local-tailscaled.sock"+path, body)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

// whois is GET /localapi/v0/whois?addr=nodekey:<hex> on sock.
func whois(ctx context.Context, sock string, k key.NodePublic) (status int, body []byte, err error) {
	kt, _ := k.MarshalText()
	resp, err := localAPIDo(ctx, sock, "GET", "/localapi/v0/whois?addr="+url.QueryEscape(string(kt)), nil)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err = io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, body, err
}

// privateNodeKey reads the node's private key from its (unencrypted) state
// file: the current profile's Prefs.Persist ("Config").PrivateNodeKey.
func (n *tsNode) privateNodeKey(t *testing.T) key.NodePrivate {
	t.Helper()
	raw, err := os.ReadFile(n.State)
	if err != nil {
		t.Fatalf("reading %s state: %v", n.Name, err)
	}
	var store map[string][]byte
	if err := json.Unmarshal(raw, &store); err != nil {
		t.Fatalf("%s state file is not the plain JSON store: %v", n.Name, err)
	}
	prof := string(store["_current-profile"])
	if prof == "" {
		t.Fatalf("%s state file has no _current-profile (keys: %d)", n.Name, len(store))
	}
	var prefs struct {
		Config struct {
			PrivateNodeKey key.NodePrivate
		}
	}
	if err := json.Unmarshal(store[prof], &prefs); err != nil {
		t.Fatalf("%s state: decoding profile %q: %v", n.Name, prof, err)
	}
	k := prefs.Config.PrivateNodeKey
	if k.IsZero() || k.Public() != n.NodeKey {
		t.Fatalf("%s state: private node key (zero=%v) does not match node key %v", n.Name, k.IsZero(), n.NodeKey.ShortString())
	}
	return k
}

// ---------------------------------------------------------------------------
// Assertions shared by both tests.

// pingViaDERP runs `tailscale ping --until-direct=false -c 5 --timeout=5s`
// from n to peer until a run exits 0 with every pong "via DERP(cderp)" (the
// first pings may fail while the peer's DERP connection is being set up).
func pingViaDERP(t *testing.T, from, to *tsNode, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	want := fmt.Sprintf("via DERP(%s)", e2eRegionCode)
	for attempt := 1; ; attempt++ {
		start := time.Now()
		out, err := from.cli("ping", "--until-direct=false", "-c", "5", "--timeout=5s", to.IP)
		pongs, derpPongs := 0, 0
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(line, "pong from ") {
				pongs++
				if strings.Contains(line, want) {
					derpPongs++
				}
			}
		}
		if err == nil && pongs > 0 && pongs == derpPongs {
			t.Logf("ping %s -> %s (attempt %d, %v): %d pongs, all %s:\n%s", from.Name, to.Name, attempt,
				time.Since(start).Round(time.Millisecond), pongs, want, strings.TrimSpace(out))
			return
		}
		if pongs != derpPongs {
			t.Fatalf("ping %s -> %s: %d of %d pongs not %s (direct path despite TS_DEBUG_ALWAYS_USE_DERP?):\n%s", from.Name, to.Name, pongs-derpPongs, pongs, want, out)
		}
		if time.Now().After(deadline) || from.tn.ctx.Err() != nil {
			from.tn.dumpLogs()
			t.Fatalf("ping %s -> %s: no run with all pongs %s within %v; last (err %v):\n%s", from.Name, to.Name, want, within, err, out)
		}
		t.Logf("ping %s -> %s attempt %d: err=%v pongs=%d; retrying: %s", from.Name, to.Name, attempt, err, pongs, strings.TrimSpace(out))
		time.Sleep(time.Second)
	}
}

// pingTSMP requires a TSMP ping (through WireGuard, hence through derpd).
func pingTSMP(t *testing.T, from, to *tsNode, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		out, err := from.cli("ping", "--tsmp", "-c", "1", "--timeout=5s", to.IP)
		if err == nil && strings.Contains(out, "pong from ") {
			t.Logf("tsmp ping %s -> %s: %s", from.Name, to.Name, strings.TrimSpace(out))
			return
		}
		if time.Now().After(deadline) || from.tn.ctx.Err() != nil {
			t.Fatalf("tsmp ping %s -> %s failed within %v: %v\n%s", from.Name, to.Name, within, err, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// transfer sends size pseudo-random bytes from `from` through the tailnet
// to a TCP listener on 127.0.0.1 (reached via `to`'s userspace netstack,
// which forwards inbound TCP to the host's loopback) using `tailscale nc`.
// The listener hashes exactly size bytes and writes the hex SHA-256 back; the
// sender compares it with its own and the listener's local result.
func transfer(t *testing.T, from, to *tsNode, size int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	type result struct {
		sum  string
		n    int64
		from string
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(2 * time.Minute))
		h := sha256.New()
		n, err := io.CopyN(h, c, int64(size))
		sum := hex.EncodeToString(h.Sum(nil))
		if err == nil {
			_, err = io.WriteString(c, sum+"\n")
		}
		resc <- result{sum: sum, n: n, from: c.RemoteAddr().String(), err: err}
	}()

	data := make([]byte, size)
	r := mrand.NewChaCha8([32]byte{'d', 'e', 'r', 'p', 'd'})
	r.Read(data)
	want := sha256.Sum256(data)
	wantHex := hex.EncodeToString(want[:])

	ctx, cancel := context.WithTimeout(from.tn.ctx, 2*time.Minute)
	defer cancel()
	cmd := from.cliCmd(ctx, "nc", to.IP, fmt.Sprint(port))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	writeErr := make(chan error, 1)
	go func() {
		_, err := stdin.Write(data)
		writeErr <- err
		// stdin stays open until the echo arrives: `tailscale nc` exits
		// (and closes the connection) as soon as its stdin ends.
	}()
	echo, readErr := bufio.NewReader(stdout).ReadString('\n')
	elapsed := time.Since(start)
	stdin.Close()
	waitErr := cmd.Wait()
	if err := <-writeErr; err != nil {
		t.Errorf("writing to tailscale nc: %v", err)
	}
	var res result
	select {
	case res = <-resc:
	case <-time.After(5 * time.Second):
		t.Fatalf("listener on 127.0.0.1:%d got no complete transfer (echo %q, read err %v, nc: %v %s)", port, echo, readErr, waitErr, stderr.Bytes())
	}
	if res.err != nil {
		t.Fatalf("listener: received %d of %d bytes (from %s): %v; nc: %v %s", res.n, size, res.from, res.err, waitErr, stderr.Bytes())
	}
	if readErr != nil {
		t.Fatalf("reading hash echo from tailscale nc: %v (nc: %v %s)", readErr, waitErr, stderr.Bytes())
	}
	if res.sum != wantHex || strings.TrimSpace(echo) != wantHex {
		t.Fatalf("SHA-256 mismatch: sent %s, listener computed %s, echoed %q", wantHex, res.sum, echo)
	}
	t.Logf("transfer %s -> %s: %d bytes via tailscale nc to 127.0.0.1:%d (accepted from %s) in %v (%.1f MB/s), sha256 %s ok",
		from.Name, to.Name, size, port, res.from, elapsed.Round(time.Millisecond), float64(size)/elapsed.Seconds()/1e6, wantHex[:16])
}

// checkWhoIs checks the LocalAPI WhoIs facts on node n's socket: own key and
// peer key 200 with JSON naming that key, a random key 404.
func checkWhoIs(t *testing.T, n *tsNode, self, peer key.NodePublic) {
	t.Helper()
	for _, c := range []struct {
		what string
		k    key.NodePublic
		want int
	}{
		{"own key (" + n.Name + ")", self, 200},
		{"peer key", peer, 200},
		{"random key", key.NewNode().Public(), 404},
	} {
		st, body, err := whois(n.tn.ctx, n.Sock, c.k)
		if err != nil {
			t.Fatalf("whois %s on %s: %v", c.what, n.Name, err)
		}
		t.Logf("whois %s %s on %s: %d, body[:300]=%q", c.what, c.k.ShortString(), n.Name, st, body[:min(len(body), 300)])
		if st != c.want {
			t.Errorf("whois %s on %s: status %d, want %d", c.what, n.Name, st, c.want)
			continue
		}
		if st == 200 {
			var wr apitype.WhoIsResponse
			if err := json.Unmarshal(body, &wr); err != nil {
				t.Errorf("whois %s: bad JSON: %v", c.what, err)
			} else if wr.Node == nil || wr.Node.Key != c.k {
				t.Errorf("whois %s: response Node.Key = %v, want %v", c.what, wr.Node, c.k.ShortString())
			}
		}
	}
}

// checkStatusViaDERP checks `tailscale status --json` on n: the peer is
// reached over DERP region cderp (Relay), not a direct address, and no
// relay-connection health warnings.
func checkStatusViaDERP(t *testing.T, n *tsNode, peer key.NodePublic) {
	t.Helper()
	st, err := n.status()
	if err != nil {
		t.Fatal(err)
	}
	p := peerOf(st, peer)
	if p == nil {
		t.Fatalf("%s: peer %v missing from status", n.Name, peer.ShortString())
	}
	if p.Relay != e2eRegionCode || p.CurAddr != "" {
		t.Errorf("%s: peer %s Relay=%q CurAddr=%q, want Relay=%q and no direct address", n.Name, p.HostName, p.Relay, p.CurAddr, e2eRegionCode)
	}
	for _, h := range st.Health {
		if strings.Contains(h, "relay server") {
			t.Errorf("%s health: %s", n.Name, h)
		}
	}
	t.Logf("%s status: %s; peer %s Relay=%q CurAddr=%q Rx=%d Tx=%d health=%q", n.Name, st.BackendState, p.HostName, p.Relay, p.CurAddr, p.RxBytes, p.TxBytes, st.Health)
}

// derpClientResult connects a derphttp client with priv and reports what
// the first received message is (ServerInfo = admitted) or the first error.
func derpClientFirst(t *testing.T, d *derpd, priv key.NodePrivate) (derp.ReceivedMessage, error) {
	t.Helper()
	c, err := derphttp.NewClient(priv, d.URL(), func(string, ...any) {}, netmonStatic())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	m := startRecv(t, "probe "+priv.Public().ShortString(), c)
	return m.nextErr(10 * time.Second)
}

// ---------------------------------------------------------------------------
// Tests

func TestTailscaledRelay(t *testing.T) {
	tn := newTailnet(t)
	d := startDerpd(t, derpdOpts{})
	testStart := time.Now()
	tn.Start(d)
	a, b := tn.A, tn.B

	pingViaDERP(t, a, b, 60*time.Second)
	pingViaDERP(t, b, a, 30*time.Second)
	pingTSMP(t, a, b, 30*time.Second)
	pingTSMP(t, b, a, 30*time.Second)
	checkStatusViaDERP(t, a, b.NodeKey)
	checkStatusViaDERP(t, b, a.NodeKey)

	before := d.varz(t)
	const size = 10 << 20
	transfer(t, a, b, size)
	after := d.varz(t)
	dPkts := after["derp_packets_sent"] - before["derp_packets_sent"]
	dBytes := after["derp_bytes_sent"] - before["derp_bytes_sent"]
	t.Logf("derpd during transfer: packets_sent +%v, bytes_sent +%v; %s", dPkts, dBytes, d.packetStats(t))
	if after["derp_packets_sent"] <= 0 {
		t.Errorf("derp_packets_sent = %v, want > 0", after["derp_packets_sent"])
	}
	// 10 MiB of TCP payload in WireGuard packets of at most ~1.3 kB.
	if dPkts < size/1500 || dBytes < size {
		t.Errorf("derpd relayed only %v packets / %v bytes during a %d-byte transfer", dPkts, dBytes, size)
	}
	conns := d.waitMetric(t, 10*time.Second, func(v float64) bool { return v == 2 }, "derp_current_connections")
	if conns < 2 {
		t.Errorf("derp_current_connections = %v, want 2 (a and b)", conns)
	} else if conns != 2 {
		t.Logf("derp_current_connections = %v (want 2; extra connections from tailscaled?)", conns)
	}

	checkWhoIs(t, a, a.NodeKey, b.NodeKey)
	sock, ka, kb := tn.AdmissionFacts()
	t.Logf("admission facts: socket %s, a=%v b=%v", sock, ka, kb)
	t.Logf("e2e body (after tailscaled binaries) took %v", time.Since(testStart).Round(time.Millisecond))
}

// requireDerpdSupports starts derpd briefly with extra flags; if it refuses
// them as "not supported yet", the test is skipped (the only allowed skip).
func requireDerpdSupports(t *testing.T, flags ...string) {
	t.Helper()
	dir := t.TempDir()
	args := append([]string{"-a", "127.0.0.1:0", "--stun=false", "--http-port=-1", "-c", filepath.Join(dir, "k.key")}, flags...)
	cmd := exec.Command(derpdPath(t), args...)
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case err := <-exited:
			if strings.Contains(out.String(), "not supported yet") {
				t.Skipf("derpd does not support %v yet (%v): %s", flags, err, strings.TrimSpace(out.String()))
			}
			t.Fatalf("derpd %v exited at startup: %v: %s", flags, err, out.String())
		case <-deadline:
			t.Fatalf("derpd %v: no listening line within 5s: %s", flags, out.String())
		case <-time.After(50 * time.Millisecond):
			if reListen.MatchString(out.String()) {
				cmd.Process.Signal(syscall.SIGTERM)
				select {
				case <-exited:
				case <-time.After(5 * time.Second):
					cmd.Process.Kill()
					<-exited
				}
				return
			}
		}
	}
}

func TestTailscaledVerifyClients(t *testing.T) {
	tn := newTailnet(t)
	// Caches off so that every connection asks tailscaled (as Go derper
	// does); with derpd's default 60 s allow cache a key admitted before A
	// stopped would still be admitted.
	flags := []string{"--verify-clients", "--socket=" + tn.A.Sock, "--auth-cache-allow-ttl=0", "--auth-cache-deny-ttl=0"}
	requireDerpdSupports(t, flags...)
	d := startDerpd(t, derpdOpts{ExtraArgs: flags})
	testStart := time.Now()
	tn.Start(d)
	a, b := tn.A, tn.B
	sock, ka, kb := tn.AdmissionFacts()
	t.Logf("derpd verifies against %s; a=%v b=%v", sock, ka.ShortString(), kb.ShortString())

	// Both real nodes get admitted (A's own key included: tailscale#2408,
	// #16052) and relay.
	pingViaDERP(t, a, b, 90*time.Second)
	pingViaDERP(t, b, a, 30*time.Second)
	pingTSMP(t, a, b, 30*time.Second)
	checkWhoIs(t, a, ka, kb)

	// A random key: the handshake completes (ServerKey) but the first Recv
	// is an error, never ServerInfo; nothing is relayed for it.
	if m, err := derpClientFirst(t, d, key.NewNode()); err == nil {
		t.Errorf("random key admitted: first message %s, want a Recv error", describe(m))
	} else {
		t.Logf("random key refused: %v", err)
	}
	// B's own key (private key from B's state file) is admitted. This is a
	// short duplicate of B's live connection.
	if m, err := derpClientFirst(t, d, b.privateNodeKey(t)); err != nil {
		t.Errorf("B's key refused: %v", err)
	} else if _, ok := m.(derp.ServerInfoMessage); !ok {
		t.Errorf("B's key: first message %s, want ServerInfo", describe(m))
	} else {
		t.Logf("B's key admitted (ServerInfo)")
	}
	privA := a.privateNodeKey(t)
	vz := d.varz(t)
	t.Logf("admission counters: ok=%v not_in_tailnet=%v tailscaled_unreachable=%v checks=%v",
		sumMetric(vz, "derpd_admission_results", "reason", "ok"),
		sumMetric(vz, "derpd_admission_rejects", "reason", "not_in_tailnet"),
		sumMetric(vz, "derpd_admission_rejects", "reason", "tailscaled_unreachable"),
		vz["derpd_admission_checks"])
	if v := sumMetric(vz, "derpd_admission_rejects", "reason", "not_in_tailnet"); v < 1 {
		t.Errorf("derpd_admission_rejects{reason=not_in_tailnet} = %v after a random-key refusal, want >= 1", v)
	}

	// Stop tailscaled A: derpd must fail closed (even A's own, previously
	// admitted key), while B's established connection stays up.
	unreachBefore := sumMetric(d.varz(t), "derpd_admission_rejects", "reason", "tailscaled_unreachable")
	a.stop(syscall.SIGTERM)
	t.Logf("stopped tailscaled a")
	if v := d.waitMetric(t, 15*time.Second, func(v float64) bool { return v == 1 }, "derp_current_connections"); v != 1 {
		t.Errorf("derp_current_connections = %v after stopping a, want 1 (b's connection only)", v)
	}
	for _, c := range []struct {
		what string
		k    key.NodePrivate
	}{{"random key", key.NewNode()}, {"A's key", privA}} {
		if m, err := derpClientFirst(t, d, c.k); err == nil {
			t.Errorf("%s admitted while tailscaled a is down: first message %s", c.what, describe(m))
		} else {
			t.Logf("%s refused while tailscaled a is down: %v", c.what, err)
		}
	}
	if v := sumMetric(d.varz(t), "derpd_admission_rejects", "reason", "tailscaled_unreachable"); v < unreachBefore+2 {
		t.Errorf("derpd_admission_rejects{reason=tailscaled_unreachable} = %v, want >= %v", v, unreachBefore+2)
	}
	// B's connection was not revoked (verification is per connection).
	for i := 0; i < 6; i++ {
		if v := mustMetric(t, d.varz(t), "derp_current_connections"); v < 1 {
			t.Fatalf("derp_current_connections = %v while a is down: b's established connection was dropped", v)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// Restart A with the same state: derpd admits it again without a restart.
	a.start(tn.trapURL())
	a.waitLocalAPI(30 * time.Second)
	tn.waitMutual(60 * time.Second)
	pingViaDERP(t, a, b, 90*time.Second)
	pingViaDERP(t, b, a, 30*time.Second)
	if m, err := derpClientFirst(t, d, key.NewNode()); err == nil {
		t.Errorf("random key admitted after a restarted: %s", describe(m))
	}
	d.requireAlive(t)
	t.Logf("derpd log admission lines:\n%s", grepLines(d.logs(), "admission", 40))
	t.Logf("e2e body (after tailscaled binaries) took %v", time.Since(testStart).Round(time.Millisecond))
}

func (tn *tailnet) trapURL() string { return tn.A.trapURL }

// ---------------------------------------------------------------------------
// Small helpers.

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func grepLines(s, sub string, max int) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	if len(out) > max {
		out = out[len(out)-max:]
	}
	return strings.Join(out, "\n")
}
