package interop

// derpd's ACME client (-certmode letsencrypt) against Pebble, Let's
// Encrypt's test CA, built from its Go module: issuance by TLS-ALPN-01 and
// by HTTP-01, the real derphttp client trusting Pebble's root, renewal with
// a connection kept across it, the CA gone at renewal time, External
// Account Binding, and derper's certdir (autocert's DirCache, written by
// golang.org/x/crypto/acme/autocert here) used by derpd with no new order,
// and the other way round.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"tailscale.com/derp/derphttp"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
	"golang.org/x/net/dns/dnsmessage"
	"tailscale.com/types/key"
)

const pebbleModule = "github.com/letsencrypt/pebble/v2"
const pebbleVersion = "v2.10.3"

var (
	pebbleOnce sync.Once
	pebblePath string
	pebbleDir  string // the module's directory in the module cache
	pebbleErr  error
)

// pebbleTool builds Pebble once per run (go install outside our module, so
// go.mod does not change) and finds its module directory for the certs.
func pebbleTool(t *testing.T) (bin, modDir string) {
	t.Helper()
	pebbleOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			pebbleErr = err
			return
		}
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		gobin := filepath.Join(cache, "derpd-interop", "pebble-"+pebbleVersion)
		outside := t.TempDir()
		env := append(os.Environ(), "GOBIN="+gobin, "GOFLAGS=", "GOWORK=off")
		if _, err := os.Stat(filepath.Join(gobin, "pebble")); err != nil {
			start := time.Now()
			cmd := exec.Command(goBin, "install", pebbleModule+"/cmd/pebble@"+pebbleVersion)
			cmd.Dir, cmd.Env = outside, env
			if b, err := cmd.CombinedOutput(); err != nil {
				pebbleErr = fmt.Errorf("go install pebble: %v\n%s", err, b)
				return
			}
			t.Logf("built pebble %s in %v", pebbleVersion, time.Since(start).Round(time.Second))
		}
		cmd := exec.Command(goBin, "mod", "download", "-json", pebbleModule+"@"+pebbleVersion)
		cmd.Dir, cmd.Env = outside, env
		b, err := cmd.Output()
		if err != nil {
			pebbleErr = fmt.Errorf("go mod download pebble: %v", err)
			return
		}
		var info struct{ Dir string }
		if err := json.Unmarshal(b, &info); err != nil || info.Dir == "" {
			pebbleErr = fmt.Errorf("go mod download pebble: no Dir in %s", b)
			return
		}
		pebblePath, pebbleDir = filepath.Join(gobin, "pebble"), info.Dir
	})
	if pebbleErr != nil {
		t.Fatal(pebbleErr)
	}
	return pebblePath, pebbleDir
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type pebble struct {
	DirURL  string
	CAFile  string         // the CA of Pebble's own HTTPS listener
	Roots   *x509.CertPool // the root that issues certificates
	cmd     *exec.Cmd
	done    chan struct{}
	stopped bool
}

// loopbackDNS answers every A query with 127.0.0.1 and everything else
// with no records, over UDP and TCP on one port of 127.0.0.1: Pebble's
// -dnsserver (it asks over TCP), so a test may use a dotted name (autocert
// refuses "localhost").
func loopbackDNS(t *testing.T) string {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	for i := 0; ; i++ {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if pc, err = net.ListenPacket("udp", ln.Addr().String()); err == nil {
			break
		}
		ln.Close()
		if i == 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	answer := func(q []byte) []byte {
		var p dnsmessage.Parser
		h, err := p.Start(q)
		if err != nil {
			return nil
		}
		qu, err := p.Question()
		if err != nil {
			return nil
		}
		b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true,
			Authoritative: true, RecursionAvailable: true, RecursionDesired: h.RecursionDesired})
		b.StartQuestions()
		b.Question(qu)
		b.StartAnswers()
		if qu.Type == dnsmessage.TypeA {
			b.AResource(dnsmessage.ResourceHeader{Name: qu.Name, Class: dnsmessage.ClassINET, TTL: 60},
				dnsmessage.AResource{A: [4]byte{127, 0, 0, 1}})
		}
		out, _ := b.Finish()
		return out
	}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := answer(buf[:n]); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				for {
					var l [2]byte
					if _, err := io.ReadFull(c, l[:]); err != nil {
						return
					}
					q := make([]byte, int(l[0])<<8|int(l[1]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					out := answer(q)
					if out == nil {
						return
					}
					c.Write(append([]byte{byte(len(out) >> 8), byte(len(out))}, out...))
				}
			}()
		}
	}()
	return ln.Addr().String()
}

type pebbleOpts struct {
	DNS               string // -dnsserver, or "" for the system resolver
	HTTPPort, TLSPort int               // where Pebble's validator connects
	Validity          int               // seconds; 0: 90 days
	EAB               map[string]string // kid -> base64url key: EAB required
	NonceReject       bool              // Pebble's default 5% badNonce
	Profile           string            // the one profile's name; "" default
}

func startPebble(t *testing.T, o pebbleOpts) *pebble {
	t.Helper()
	bin, mod := pebbleTool(t)
	dir := t.TempDir()
	port, mgmt := freePort(t), freePort(t)
	validity := o.Validity
	if validity == 0 {
		validity = 7776000
	}
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           fmt.Sprintf("127.0.0.1:%d", port),
		"managementListenAddress": fmt.Sprintf("127.0.0.1:%d", mgmt),
		"certificate":             filepath.Join(mod, "test/certs/localhost/cert.pem"),
		"privateKey":              filepath.Join(mod, "test/certs/localhost/key.pem"),
		"httpPort":                o.HTTPPort,
		"tlsPort":                 o.TLSPort,
		"ocspResponderURL":        "",
		"externalAccountBindingRequired": len(o.EAB) > 0,
		"externalAccountMACKeys":         o.EAB,
		"retryAfter":                     map[string]int{"authz": 1, "order": 1},
		"keyAlgorithm":                   "ecdsa",
		// One profile: Pebble picks a random one for orders naming none.
		"profiles": map[string]any{cmpOr(o.Profile, "default"): map[string]any{
			"description": "test", "validityPeriod": validity}},
	}}
	b, _ := json.Marshal(cfg)
	cfgPath := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgPath, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p := &pebble{
		DirURL: fmt.Sprintf("https://127.0.0.1:%d/dir", port),
		CAFile: filepath.Join(mod, "test/certs/pebble.minica.pem"),
		done:   make(chan struct{}),
	}
	args := []string{"-config", cfgPath}
	if o.DNS != "" {
		args = append(args, "-dnsserver", o.DNS)
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1")
	if !o.NonceReject {
		p.cmd.Env = append(p.cmd.Env, "PEBBLE_WFE_NONCEREJECT=0")
	}
	logf, err := os.Create(filepath.Join(dir, "pebble.log"))
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "pebble.log"))
			t.Logf("pebble log:\n%s", b)
		}
	})
	hc := p.client(t)
	var lastErr error
	for i := 0; i < 100; i++ {
		resp, err := hc.Get(p.DirURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				lastErr = nil
				break
			}
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		lastErr = err
		time.Sleep(100 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("pebble did not come up: %v", lastErr)
	}
	resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/roots/0", mgmt))
	if err != nil {
		t.Fatal(err)
	}
	root, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	p.Roots = x509.NewCertPool()
	if !p.Roots.AppendCertsFromPEM(root) {
		t.Fatalf("pebble /roots/0: no certificate: %q", root)
	}
	return p
}

// client is an HTTP client that trusts Pebble's own listener.
func (p *pebble) client(t *testing.T) *http.Client {
	t.Helper()
	b, err := os.ReadFile(p.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func (p *pebble) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	p.cmd.Process.Kill()
	<-p.done
}

// acmeDerpd starts derpd in -certmode letsencrypt against p for localhost,
// TLS on tlsPort and HTTP on httpPort.
func acmeDerpd(t *testing.T, p *pebble, tlsPort, httpPort int, certDir string, extra ...string) *derpd {
	t.Helper()
	return acmeDerpdFor(t, "localhost", p, tlsPort, httpPort, certDir, extra...)
}

func acmeDerpdFor(t *testing.T, host string, p *pebble, tlsPort, httpPort int, certDir string, extra ...string) *derpd {
	t.Helper()
	args := []string{"-certmode", "letsencrypt", "-tls", "-hostname", host,
		"-certdir", certDir, "-acme-directory", p.DirURL,
		"-http-port", strconv.Itoa(httpPort)}
	d := startDerpd(t, derpdOpts{ACME: true, CertHostname: host, Port: tlsPort,
		NoSTUN: true, ExtraArgs: append(args, extra...),
		Env: []string{"SSL_CERT_FILE=" + p.CAFile}})
	d.CertPool = p.Roots
	return d
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// servedLeaf handshakes with derpd as a client that trusts roots and
// returns the leaf it got.
func servedLeaf(t *testing.T, d *derpd, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", d.Addr,
		&tls.Config{ServerName: d.Host, RootCAs: roots})
	if err != nil {
		t.Fatalf("TLS to derpd: %v", err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// relayOnce connects two real derphttp clients and sends one packet. They
// dial 127.0.0.1 whatever the host name (a test name has no DNS).
func relayOnce(t *testing.T, d *derpd) {
	t.Helper()
	a, b := key.NewNode(), key.NewNode()
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "tcp4", d.Addr)
	}
	ca := d.newClient(t, "a", a, func(c *derphttp.Client) { c.SetURLDialer(dial) })
	cb := d.newClient(t, "b", b, func(c *derphttp.Client) { c.SetURLDialer(dial) })
	mb := startRecv(t, "b", cb)
	mb.expectServerInfo(t)
	msg := []byte("through a certificate from pebble")
	sendUntilDelivered(t, ca, a.Public(), b.Public(), mb, string(msg), 10*time.Second)
}

func fileMode(t *testing.T, p string) os.FileMode {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// TestACMEIssueTLSALPN: derpd with no certificate orders one (Pebble
// validates TLS-ALPN-01 on derpd's TLS port), saves it as autocert would,
// serves it, and the real client relays through it.
func TestACMEIssueTLSALPN(t *testing.T) {
	tlsPort, httpPort := freePort(t), freePort(t)
	p := startPebble(t, pebbleOpts{HTTPPort: httpPort, TLSPort: tlsPort})
	certDir := filepath.Join(t.TempDir(), "certs")
	sock := filepath.Join(t.TempDir(), "admin.sock")
	start := time.Now()
	d := acmeDerpd(t, p, tlsPort, httpPort, certDir, "-admin-socket", sock)
	waitFor(t, 30*time.Second, "the certificate", func() bool {
		return d.logContains("acme: obtained a certificate for localhost")
	})
	waitFor(t, 5*time.Second, "the renewal timer", func() bool {
		return d.logContains("renewal in")
	})
	t.Logf("startup to first certificate: %v", time.Since(start).Round(time.Millisecond))
	if !d.logContains("acme: answering tls-alpn-01 for localhost") {
		t.Errorf("TLS-ALPN-01 not used; log:\n%s", d.logs())
	}
	leaf := servedLeaf(t, d, p.Roots)
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Fatal(err)
	}
	relayOnce(t, d)

	// derper's layout: the account key and <certdir>/localhost, 0600.
	for _, f := range []string{"acme_account+key", "localhost"} {
		if m := fileMode(t, filepath.Join(certDir, f)); m != 0o600 {
			t.Errorf("%s: mode %o, want 600", f, m)
		}
	}
	b, err := os.ReadFile(filepath.Join(certDir, "localhost"))
	if err != nil {
		t.Fatal(err)
	}
	blk, rest := pem.Decode(b)
	if blk == nil || blk.Type != "EC PRIVATE KEY" {
		t.Fatalf("cache file does not start with an EC PRIVATE KEY block")
	}
	if blk, _ = pem.Decode(rest); blk == nil || blk.Type != "CERTIFICATE" {
		t.Fatalf("no certificate after the key")
	}
	if first, err := x509.ParseCertificate(blk.Bytes); err != nil || !first.Equal(leaf) {
		t.Fatalf("cached leaf is not the served one (%v)", err)
	}
	m := d.varz(t)
	if v := mustMetric(t, m, "derpd_acme_issued"); v != 1 {
		t.Errorf("derpd_acme_issued = %v, want 1", v)
	}
	if v := mustMetric(t, m, "derpd_acme_cert_expiry_seconds"); v < 80*86400 {
		t.Errorf("derpd_acme_cert_expiry_seconds = %v", v)
	}
	// derpctl show certs: what is served and how ACME keeps it.
	derpctl := filepath.Join(filepath.Dir(derpdPath(t)), "derpctl")
	out, err := exec.Command(derpctl, "-s", sock, "show", "certs").CombinedOutput()
	if err != nil {
		t.Fatalf("derpctl show certs: %v\n%s", err, out)
	}
	t.Logf("derpctl show certs:\n%s", out)
	for _, want := range []string{"localhost", "letsencrypt", "Pebble Intermediate",
		leaf.SerialNumber.Text(16), "next renewal", "tls-alpn-01", "issued"} {
		if !strings.Contains(strings.ToLower(string(out)), strings.ToLower(want)) {
			t.Errorf("show certs lacks %q", want)
		}
	}
	out, err = exec.Command(derpctl, "-s", sock, "-j", "show", "certs").Output()
	if err != nil {
		t.Fatalf("derpctl -j show certs: %v", err)
	}
	var js struct {
		Certs []struct {
			Name, Issuer string
			NotAfter     int64 `json:"not_after"`
			ACME         struct {
				Issued      int   `json:"issued"`
				NextAttempt int64 `json:"next_attempt"`
			} `json:"acme"`
		} `json:"certs"`
	}
	if err := json.Unmarshal(out, &js); err != nil || len(js.Certs) != 1 {
		t.Fatalf("derpctl -j show certs: %v: %s", err, out)
	}
	c := js.Certs[0]
	if c.NotAfter != leaf.NotAfter.Unix() || c.ACME.Issued != 1 ||
		c.ACME.NextAttempt <= time.Now().Unix() || c.ACME.NextAttempt >= c.NotAfter {
		t.Errorf("show certs: %+v (leaf not after %v)", c, leaf.NotAfter.Unix())
	}
	// The HTTP port answers unknown tokens with 404.
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/.well-known/acme-challenge/nope", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("unknown token: status %d, want 404", resp.StatusCode)
	}
}

// TestACMEHTTP01Fallback: the CA cannot reach the TLS port (Pebble's
// tlsPort is closed), so TLS-ALPN-01 fails; the failure is counted, and
// the next order uses HTTP-01 on -http-port and succeeds.
func TestACMEHTTP01Fallback(t *testing.T) {
	tlsPort, httpPort := freePort(t), freePort(t)
	p := startPebble(t, pebbleOpts{HTTPPort: httpPort, TLSPort: freePort(t)})
	d := acmeDerpd(t, p, tlsPort, httpPort, filepath.Join(t.TempDir(), "certs"))
	waitFor(t, 60*time.Second, "the certificate by HTTP-01", func() bool {
		return d.logContains("acme: obtained a certificate for localhost")
	})
	for _, s := range []string{"answering tls-alpn-01", "(challenge_failed)", "answering http-01",
		"acme: answered the HTTP-01 challenge"} {
		if !d.logContains(s) {
			t.Errorf("log lacks %q:\n%s", s, d.logs())
		}
	}
	m := d.varz(t)
	if v := mustMetric(t, m, "derpd_acme_failures", "reason", "challenge_failed"); v < 1 {
		t.Errorf("derpd_acme_failures{challenge_failed} = %v", v)
	}
	if v := mustMetric(t, m, "derpd_acme_attempts"); v < 2 {
		t.Errorf("derpd_acme_attempts = %v, want >= 2", v)
	}
	relayOnce(t, d)
}

// TestACMERenewalAndOutage: certificates valid 24 s are renewed a third of
// their life before the end; a connection made before the renewal keeps
// relaying after it; with the CA gone the next renewal fails, is counted,
// and the current certificate stays in service.
func TestACMERenewalAndOutage(t *testing.T) {
	tlsPort, httpPort := freePort(t), freePort(t)
	p := startPebble(t, pebbleOpts{HTTPPort: httpPort, TLSPort: tlsPort, Validity: 24,
		NonceReject: true})
	d := acmeDerpd(t, p, tlsPort, httpPort, filepath.Join(t.TempDir(), "certs"))
	waitFor(t, 30*time.Second, "the first certificate", func() bool {
		return d.logContains("acme: obtained a certificate")
	})
	first := servedLeaf(t, d, p.Roots)
	a, b := key.NewNode(), key.NewNode()
	ca := d.newClient(t, "a", a)
	cb := d.newClient(t, "b", b)
	mb := startRecv(t, "b", cb)
	mb.expectServerInfo(t)
	sendUntilDelivered(t, ca, a.Public(), b.Public(), mb, "before renewal", 10*time.Second)

	d.waitMetric(t, 40*time.Second, func(v float64) bool { return v >= 2 }, "derpd_acme_issued")
	second := servedLeaf(t, d, p.Roots)
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatalf("renewed, but the same certificate is served")
	}
	// The old connections were not dropped.
	if err := ca.Send(b.Public(), []byte("after renewal")); err != nil {
		t.Fatalf("send on the pre-renewal connection: %v", err)
	}
	mb.expectPacket(t, a.Public(), []byte("after renewal"))

	p.stop()
	d.waitMetric(t, 40*time.Second, func(v float64) bool { return v >= 1 },
		"derpd_acme_failures", "reason", "unreachable")
	if !d.logContains("the current certificate stays") {
		t.Errorf("no log line for the failed renewal:\n%s", d.logs())
	}
	still := servedLeaf(t, d, p.Roots)
	if still.SerialNumber.Cmp(second.SerialNumber) != 0 {
		t.Fatalf("after the failed renewal derpd serves %v, want %v", still.SerialNumber, second.SerialNumber)
	}
	d.requireAlive(t)
}

// TestACMEExternalAccountBinding: a CA that requires EAB issues with the
// key id and HMAC key of -acme-eab-kid/-acme-eab-key; without them the
// order fails before any account is made, and says why.
func TestACMEExternalAccountBinding(t *testing.T) {
	tlsPort, httpPort := freePort(t), freePort(t)
	const kid, hmacKey = "kid-1", "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
	p := startPebble(t, pebbleOpts{HTTPPort: httpPort, TLSPort: tlsPort,
		EAB: map[string]string{kid: hmacKey}})
	d := acmeDerpd(t, p, tlsPort, httpPort, filepath.Join(t.TempDir(), "certs"))
	waitFor(t, 10*time.Second, "the EAB refusal", func() bool {
		return d.logContains("requires External Account Binding")
	})
	d.stop()

	tlsPort2 := freePort(t)
	p2 := startPebble(t, pebbleOpts{HTTPPort: httpPort, TLSPort: tlsPort2,
		EAB: map[string]string{kid: hmacKey}})
	d2 := acmeDerpd(t, p2, tlsPort2, httpPort, filepath.Join(t.TempDir(), "certs"),
		"-acme-eab-kid", kid, "-acme-eab-key", hmacKey, "-acme-email", "ops@example.net")
	waitFor(t, 30*time.Second, "the certificate with EAB", func() bool {
		return d2.logContains("acme: obtained a certificate")
	})
	if strings.Contains(d2.logs(), hmacKey) {
		t.Fatalf("the EAB key is in the log")
	}
	relayOnce(t, d2)
}

// finalizeLocation adds the order URL as Location to Pebble's answer to a
// finalize request. Pebble finalizes asynchronously and answers with the
// order (status "processing") but no Location; x/crypto's acme client then
// polls the order at the Location it did not get (an empty URL) and fails.
// Let's Encrypt's answer carries it. derpd keeps the order URL it got from
// newOrder, as RFC 8555 allows, and needs no such help.
type finalizeLocation struct{ rt http.RoundTripper }

func (f finalizeLocation) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := f.rt.RoundTrip(r)
	if err == nil && strings.HasPrefix(r.URL.Path, "/finalize-order/") && resp.Header.Get("Location") == "" {
		u := *r.URL
		u.Path = "/my-order/" + strings.TrimPrefix(r.URL.Path, "/finalize-order/")
		resp.Header.Set("Location", u.String())
	}
	return resp, err
}

// autocertFor is what derper runs: an autocert.Manager on certDir for
// localhost, its TLS config on tlsPort (TLS-ALPN-01) and its HTTP handler
// on httpPort, against Pebble.
func autocertFor(t *testing.T, p *pebble, host, certDir string, tlsPort, httpPort int) (*autocert.Manager, func()) {
	t.Helper()
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		HostPolicy: autocert.HostWhitelist(host),
		Cache:      autocert.DirCache(certDir),
		Client: &acme.Client{DirectoryURL: p.DirURL, HTTPClient: &http.Client{
			Transport: finalizeLocation{p.client(t).Transport}}},
	}
	ln, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", tlsPort), m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: m.HTTPHandler(nil)}
	hl, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", httpPort))
	if err != nil {
		t.Fatal(err)
	}
	ts := &http.Server{Handler: http.NotFoundHandler()}
	go ts.Serve(ln)
	go hs.Serve(hl)
	return m, func() { ts.Close(); hs.Close() }
}

// TestACMEDerperCertdir: a certdir written by autocert (derper's) is used
// by derpd as is, with no new order; and derpd's is used by autocert with
// no new order, so an operator can switch either way.
func TestACMEDerperCertdir(t *testing.T) {
	const host = "derp.example.test"
	tlsPort, httpPort := freePort(t), freePort(t)
	p := startPebble(t, pebbleOpts{HTTPPort: httpPort, TLSPort: tlsPort, DNS: loopbackDNS(t)})

	// derper's side first.
	certDir := filepath.Join(t.TempDir(), "derper-certs")
	m, stop := autocertFor(t, p, host, certDir, tlsPort, httpPort)
	gc, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: host,
		SupportedProtos: []string{"http/1.1"}, CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:  []tls.CurveID{tls.CurveP256}, SupportedVersions: []uint16{tls.VersionTLS13}})
	if err != nil {
		t.Fatalf("autocert: %v", err)
	}
	stop()
	autoLeaf, _ := x509.ParseCertificate(gc.Certificate[0])
	// autocert wrote the account key; make the files derpd's modes as
	// derper leaves them (DirCache writes 0600 already).
	for _, f := range []string{"acme_account+key", host} {
		if _, err := os.Stat(filepath.Join(certDir, f)); err != nil {
			t.Fatalf("autocert did not write %s: %v", f, err)
		}
	}

	d := acmeDerpdFor(t, host, p, tlsPort, httpPort, certDir)
	if !d.logContains("from the certificate cache") {
		waitFor(t, 5*time.Second, "the cache line", func() bool {
			return d.logContains("from the certificate cache")
		})
	}
	leaf := servedLeaf(t, d, p.Roots)
	if !leaf.Equal(autoLeaf) {
		t.Fatalf("derpd serves serial %v, autocert had %v", leaf.SerialNumber, autoLeaf.SerialNumber)
	}
	if v := mustMetric(t, d.varz(t), "derpd_acme_attempts"); v != 0 {
		t.Fatalf("derpd_acme_attempts = %v: a new order for a cached certificate", v)
	}
	if d.logContains("acme: ordering") || d.logContains("created account key") {
		t.Fatalf("derpd ordered or made an account:\n%s", d.logs())
	}
	relayOnce(t, d)
	d.stop()

	// And back: derpd's own issuance in a fresh dir, then autocert reads it.
	dir2 := filepath.Join(t.TempDir(), "derpd-certs")
	d2 := acmeDerpdFor(t, host, p, tlsPort, httpPort, dir2)
	waitFor(t, 30*time.Second, "derpd's certificate", func() bool {
		return d2.logContains("acme: obtained a certificate")
	})
	dLeaf := servedLeaf(t, d2, p.Roots)
	d2.stop()
	m2 := &autocert.Manager{Prompt: autocert.AcceptTOS, HostPolicy: autocert.HostWhitelist(host),
		Cache: autocert.DirCache(dir2),
		// A client that cannot reach any CA: only the cache can answer.
		Client: &acme.Client{DirectoryURL: "https://127.0.0.1:1/dir"}}
	gc2, err := m2.GetCertificate(&tls.ClientHelloInfo{ServerName: host,
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
		SupportedCurves:  []tls.CurveID{tls.CurveP256}, SupportedVersions: []uint16{tls.VersionTLS13}})
	if err != nil {
		t.Fatalf("autocert on derpd's certdir: %v", err)
	}
	if l2, _ := x509.ParseCertificate(gc2.Certificate[0]); !l2.Equal(dLeaf) {
		t.Fatalf("autocert loaded a different certificate from derpd's certdir")
	}
}

// TestACMEIPCerts: -acme-ip-certs with an IP -hostname (an IP-only relay):
// a client that connects to 127.0.0.1 with no SNI makes derpd order a
// short-lived certificate for that address (HTTP-01); its handshake fails
// while there is none, the next ones get it, and the real client relays
// verifying the IP SAN. derper's files; after a restart the saved
// certificate is served from the first connection, with no new order. A
// client naming another address in SNI is refused.
func TestACMEIPCerts(t *testing.T) {
	tlsPort, httpPort := freePort(t), freePort(t)
	p := startPebble(t, pebbleOpts{HTTPPort: httpPort, TLSPort: tlsPort,
		Profile: "shortlived", Validity: 518400})
	certDir := filepath.Join(t.TempDir(), "certs")
	args := []string{"-certmode", "letsencrypt", "-tls", "-hostname", "127.0.0.1",
		"-acme-ip-certs", "-certdir", certDir, "-acme-directory", p.DirURL,
		"-http-port", strconv.Itoa(httpPort)}
	start := func() *derpd {
		d := startDerpd(t, derpdOpts{ACME: true, CertHostname: "127.0.0.1", Port: tlsPort,
			NoSTUN: true, ExtraArgs: args, Env: []string{"SSL_CERT_FILE=" + p.CAFile}})
		d.CertPool = p.Roots
		return d
	}
	d := start()
	time.Sleep(200 * time.Millisecond)
	if d.logContains("acme: ordering") {
		t.Fatalf("an order before any client:\n%s", d.logs())
	}
	dial := func(sni string) (*x509.Certificate, error) {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", d.Addr,
			&tls.Config{ServerName: sni, RootCAs: p.Roots})
		if err != nil {
			return nil, err
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0], nil
	}
	t0 := time.Now()
	if _, err := dial("127.0.0.1"); err == nil {
		t.Fatalf("a handshake succeeded before there was a certificate")
	}
	waitFor(t, 30*time.Second, "the IP certificate", func() bool {
		return d.logContains("acme: obtained a certificate for 127.0.0.1")
	})
	t.Logf("first connection to certificate for 127.0.0.1: %v", time.Since(t0).Round(time.Millisecond))
	leaf, err := dial("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("leaf IP SANs %v", leaf.IPAddresses)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life > 7*24*time.Hour {
		t.Errorf("lifetime %v: not the short-lived profile", life)
	}
	if !d.logContains("answering http-01 for 127.0.0.1") {
		t.Errorf("not HTTP-01:\n%s", d.logs())
	}
	// Another address in the SNI than the one reached: refused.
	if _, err := dial("127.0.0.2"); err == nil {
		t.Errorf("SNI 127.0.0.2 on a connection to 127.0.0.1 was served")
	}
	relayOnce(t, d)
	for f, want := range map[string]os.FileMode{"acme-account.key": 0o600,
		"127.0.0.1.key": 0o600, "127.0.0.1.crt": 0o644} {
		if m := fileMode(t, filepath.Join(certDir, f)); m != want {
			t.Errorf("%s: mode %o, want %o", f, m, want)
		}
	}
	d.stop()

	d = start()
	got, err := dial("127.0.0.1")
	if err != nil {
		t.Fatalf("after a restart, the first connection: %v", err)
	}
	if !got.Equal(leaf) {
		t.Fatalf("after a restart a different certificate is served")
	}
	if v := mustMetric(t, d.varz(t), "derpd_acme_attempts"); v != 0 {
		t.Fatalf("derpd_acme_attempts = %v after a restart with a saved certificate", v)
	}
}
