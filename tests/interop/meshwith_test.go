package interop

// derpd --mesh-with: regions of derpd nodes, and of derpd and Go derpers,
// over TLS with certificate verification, exercised with the real client
// (derphttp, tailscale.com v1.102.3), the real Go derper and derpprobe.

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/types/key"
)

// freePorts finds n free loopback TCP ports (closed again: a region's
// nodes must know each other's ports before any starts).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ls []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range ls {
		ln.Close()
	}
	return ports
}

// region is a set of nodes that share a mesh key and trust each other's
// certificates (each a self-signed "localhost" certificate).
type region struct {
	plain    bool // plain HTTP nodes and links (TS_DEBUG_USE_DERP_HTTP=1)
	t        *testing.T
	dir      string
	meshHex  string
	ports    []int
	certDirs []string
	bundle   string // every node's certificate: SSL_CERT_FILE for all
	list     string // the --mesh-with list naming every node
	nodes    []*derpd
}

func newRegion(t *testing.T, n int) *region {
	return newRegionMode(t, n, false)
}

func newRegionMode(t *testing.T, n int, plain bool) *region {
	r := &region{t: t, plain: plain, dir: t.TempDir(), ports: freePorts(t, n)}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	r.meshHex = fmt.Sprintf("%x", raw)
	var bundle bytes.Buffer
	var entries []string
	for i := 0; i < n; i++ {
		dir := filepath.Join(r.dir, fmt.Sprintf("certs%d", i))
		writeSelfSignedCert(t, dir, "localhost")
		b, err := os.ReadFile(filepath.Join(dir, "localhost.crt"))
		if err != nil {
			t.Fatal(err)
		}
		bundle.Write(b)
		r.certDirs = append(r.certDirs, dir)
		// host/dialhost: verify "localhost", dial 127.0.0.1.
		entries = append(entries, fmt.Sprintf("localhost:%d/127.0.0.1", r.ports[i]))
	}
	r.bundle = filepath.Join(r.dir, "bundle.pem")
	if err := os.WriteFile(r.bundle, bundle.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r.list = strings.Join(entries, ",")
	r.nodes = make([]*derpd, n)
	return r
}

// startDerpd starts node i as derpd, meshing with every node of the list.
func (r *region) startDerpd(i int, extra ...string) *derpd {
	o := derpdOpts{
		TLS: true, CertHostname: "localhost", CertDir: r.certDirs[i],
		Mesh: true, MeshKeyHex: r.meshHex, NoSTUN: true,
		Port:      r.ports[i],
		KeyFile:   filepath.Join(r.dir, fmt.Sprintf("node%d.key", i)),
		Env:       []string{"SSL_CERT_FILE=" + r.bundle},
		ExtraArgs: append([]string{"--mesh-with=" + r.list}, extra...),
	}
	if r.plain {
		o.TLS, o.CertHostname, o.CertDir = false, "", ""
		o.Env = append(o.Env, "TS_DEBUG_USE_DERP_HTTP=1")
	}
	d := startDerpd(r.t, o)
	r.nodes[i] = d
	return d
}

// waitLinks waits until d logged that its links to want other nodes are up.
func waitLinks(t *testing.T, d *derpd, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if n := strings.Count(d.logs(), "): connected to "); n >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("derpd %s: fewer than %d mesh links up after %v; log:\n%s", d.Addr, want, timeout, d.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitLog waits until d's log has s.
func waitLog(t *testing.T, d *derpd, s string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !d.logContains(s) {
		if time.Now().After(deadline) {
			t.Fatalf("derpd %s did not log %q within %v; log:\n%s", d.Addr, s, timeout, d.logs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill ends d with SIGKILL (no goodbye to its peers).
func (d *derpd) kill() {
	d.stopped = true
	d.cmd.Process.Kill()
	<-d.exited
}

// sendUntilDelivered sends probes from c to dst until dm sees one (the
// route is learned asynchronously), then drains the stragglers. PeerGone
// frames on the way are recorded in gone (when given), else a failure.
func sendUntilDelivered(t *testing.T, c *derphttp.Client, src key.NodePublic, dst key.NodePublic, dm *msgs, what string, within time.Duration, gone ...map[key.NodePublic]bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for i := 0; ; i++ {
		msg := []byte(fmt.Sprintf("%s probe %d", what, i))
		if err := c.Send(dst, msg); err != nil {
			t.Fatal(err)
		}
		got, err := dm.nextErr(200 * time.Millisecond)
		if pg, ok := got.(derp.PeerGoneMessage); ok && err == nil && len(gone) > 0 {
			t.Logf("%s: PeerGone(%v, reason %d) on the way", what, pg.Peer.ShortString(), pg.Reason)
			gone[0][pg.Peer] = true
			continue
		}
		if err == nil {
			rp, ok := got.(derp.ReceivedPacket)
			if !ok || rp.Source != src || !strings.HasPrefix(string(rp.Data), what+" probe ") {
				t.Fatalf("%s: got %s, want a probe from %v", what, describe(got), src.ShortString())
			}
			for {
				if _, err := dm.nextErr(300 * time.Millisecond); err != nil {
					break
				}
			}
			return
		}
		if err != errTimeout {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: nothing delivered across the mesh within %v", what, within)
		}
	}
}

// TestMeshWithTwoDerpdNodes: two derpd nodes, each with --mesh-with naming
// both (itself included), over TLS verified against SSL_CERT_FILE.
func TestMeshWithTwoDerpdNodes(t *testing.T) {
	r := newRegion(t, 2)
	a := r.startDerpd(0)
	b := r.startDerpd(1)
	waitLinks(t, a, 1, 15*time.Second)
	waitLinks(t, b, 1, 15*time.Second)
	if !a.logContains("detected self-connect; ignoring host") {
		t.Errorf("node A did not notice its own entry in the list")
	}

	// 10,000 packets A -> B, in order, with the client's window.
	t.Run("bulk A to B", func(t *testing.T) {
		runBulkBetween(t, a, b, 10_000*1200, 1200, 30, 60*time.Second)
	})
	t.Run("bulk B to A", func(t *testing.T) {
		runBulkBetween(t, b, a, 2_000*1200, 1200, 30, 60*time.Second)
	})
	if v := mustMetric(t, a.varz(t), "derp_packets_forwarded_out"); v < 10_000 {
		t.Errorf("node A derp_packets_forwarded_out = %v, want >= 10000", v)
	}
	if v := mustMetric(t, b.varz(t), "derp_packets_forwarded_in"); v < 10_000 {
		t.Errorf("node B derp_packets_forwarded_in = %v, want >= 10000", v)
	}

	// X on A, Y on B, both ways.
	xKey, yKey := key.NewNode(), key.NewNode()
	x := a.newClient(t, "x", xKey)
	xm := startRecv(t, "x", x)
	xm.expectServerInfo(t)
	y := b.newClient(t, "y", yKey)
	ym := startRecv(t, "y", y)
	ym.expectServerInfo(t)
	sendUntilDelivered(t, x, xKey.Public(), yKey.Public(), ym, "x->y", 10*time.Second)
	sendUntilDelivered(t, y, yKey.Public(), xKey.Public(), xm, "y->x", 10*time.Second)

	// Y moves from B to A: the new conn on A gets X's packets locally,
	// then Y leaves B; X keeps reaching it. X is told Y is gone when Y is
	// in neither node for a moment (its move back below may race B's
	// announcement), or at the latest when B dies: PeerGone is recorded
	// across the rest of the test.
	gone := map[key.NodePublic]bool{}
	y2 := a.newClient(t, "y2", yKey)
	y2m := startRecv(t, "y2", y2)
	y2m.expectServerInfo(t)
	y.Close()
	sendUntilDelivered(t, x, xKey.Public(), yKey.Public(), y2m, "x->y moved to A", 10*time.Second)
	for i := 0; i < 100; i++ {
		msg := []byte(fmt.Sprintf("after move %d", i))
		if err := x.Send(yKey.Public(), msg); err != nil {
			t.Fatal(err)
		}
		y2m.expectPacket(t, xKey.Public(), msg)
	}
	// And back to B.
	y3 := b.newClient(t, "y3", yKey)
	y3m := startRecv(t, "y3", y3)
	y3m.expectServerInfo(t)
	y2.Close()
	sendUntilDelivered(t, x, xKey.Public(), yKey.Public(), y3m, "x->y back on B", 10*time.Second, gone)

	// Z on B sends to X on A (X records Z as a sender); then B dies.
	zKey := key.NewNode()
	z := b.newClient(t, "z", zKey)
	zm := startRecv(t, "z", z)
	zm.expectServerInfo(t)
	sendUntilDelivered(t, z, zKey.Public(), xKey.Public(), xm, "z->x", 10*time.Second, gone)
	b.kill()
	// A drops B's routes and tells X that Y and Z are gone (derper's
	// clear on a broken mesh connection, then PeerGone to receivers).
	deadline := time.Now().Add(15 * time.Second)
	for !(gone[yKey.Public()] && gone[zKey.Public()]) && time.Now().Before(deadline) {
		m, err := xm.nextErr(500 * time.Millisecond)
		if err == errTimeout {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if pg, ok := m.(derp.PeerGoneMessage); ok {
			if pg.Reason != derp.PeerGoneReasonDisconnected {
				t.Fatalf("x: PeerGone(%v) reason %d, want Disconnected", pg.Peer.ShortString(), pg.Reason)
			}
			gone[pg.Peer] = true
		}
	}
	if !gone[yKey.Public()] || !gone[zKey.Public()] {
		t.Fatalf("x: PeerGone for y=%v z=%v after node B died, want both; A log:\n%s", gone[yKey.Public()], gone[zKey.Public()], a.logs())
	}
	waitLog(t, a, "link down", 5*time.Second)
	// A disco packet to Y now gets NotHere from A: the route is gone.
	if err := x.Send(yKey.Public(), discoPacket(8)); err != nil {
		t.Fatal(err)
	}
	xm.expectPeerGone(t, yKey.Public(), derp.PeerGoneReasonNotHere)

	// B comes back (same port and key); A reconnects by itself.
	b2 := r.startDerpd(1)
	waitLinks(t, b2, 1, 15*time.Second)
	deadline = time.Now().Add(20 * time.Second)
	for strings.Count(a.logs(), "; reconnected") < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("node A did not reconnect to B; log:\n%s", a.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	w := b2.newClient(t, "w", yKey)
	wm := startRecv(t, "w", w)
	wm.expectServerInfo(t)
	sendUntilDelivered(t, x, xKey.Public(), yKey.Public(), wm, "x->y after B restart", 15*time.Second)
}

// TestMeshWithMixedRegion: derpd --mesh-with a Go derper and the Go derper
// --mesh-with derpd, over TLS; then a third node (another derpd).
func TestMeshWithMixedRegion(t *testing.T) {
	r := newRegion(t, 3)
	g := r.startGoDerperTLS(0)
	d1 := r.startDerpd(1)
	waitLinks(t, d1, 1, 15*time.Second) // to the Go derper (and not to 2 yet)
	// The Go derper's mesh client subscribes to derpd.
	if v := d1.waitMetric(t, 20*time.Second, func(v float64) bool { return v >= 1 }, "derp_watchers"); v < 1 {
		t.Fatalf("the Go derper's mesh client did not watch derpd; Go log:\n%s", g.logs())
	}

	xKey, yKey := key.NewNode(), key.NewNode()
	x, err := derphttp.NewClient(xKey, fmt.Sprintf("https://localhost:%d/derp", r.ports[0]), t.Logf, netmonStatic())
	if err != nil {
		t.Fatal(err)
	}
	x.TLSConfig = d1.tlsClientConfigFor(r.bundle)
	t.Cleanup(func() { x.Close() })
	xm := startRecv(t, "x", x)
	xm.expectServerInfo(t)
	y := d1.newClient(t, "y", yKey)
	ym := startRecv(t, "y", y)
	ym.expectServerInfo(t)
	// Go -> derpd (the Go derper forwards) and derpd -> Go (derpd does).
	sendUntilDelivered(t, x, xKey.Public(), yKey.Public(), ym, "go->derpd", 15*time.Second)
	sendUntilDelivered(t, y, yKey.Public(), xKey.Public(), xm, "derpd->go", 15*time.Second)
	for i := 0; i < 500; i++ {
		msg := []byte(fmt.Sprintf("derpd->go %d", i))
		if err := y.Send(xKey.Public(), msg); err != nil {
			t.Fatal(err)
		}
		xm.expectPacket(t, yKey.Public(), msg)
	}
	if v := mustMetric(t, d1.varz(t), "derp_packets_forwarded_out"); v < 500 {
		t.Errorf("derpd forwarded %v packets to the Go derper, want >= 500", v)
	}

	// Third node: another derpd, meshing with both.
	d2 := r.startDerpd(2)
	waitLinks(t, d2, 2, 15*time.Second)
	zKey := key.NewNode()
	z := d2.newClient(t, "z", zKey)
	zm := startRecv(t, "z", z)
	zm.expectServerInfo(t)
	sendUntilDelivered(t, x, xKey.Public(), zKey.Public(), zm, "go->derpd2", 20*time.Second)
	sendUntilDelivered(t, y, yKey.Public(), zKey.Public(), zm, "derpd1->derpd2", 20*time.Second)
	sendUntilDelivered(t, z, zKey.Public(), xKey.Public(), xm, "derpd2->go", 20*time.Second)
	sendUntilDelivered(t, z, zKey.Public(), yKey.Public(), ym, "derpd2->derpd1", 20*time.Second)
}

// tlsClientConfigFor trusts every certificate in bundle.
func (d *derpd) tlsClientConfigFor(bundle string) *tls.Config {
	pem, err := os.ReadFile(bundle)
	if err != nil {
		d.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		d.t.Fatalf("no certificates in %s", bundle)
	}
	return &tls.Config{RootCAs: pool}
}

// rawDerpClient is the real derp.Client on a plain connection to d with
// small buffers (thousands of them in one test), past ServerInfo.
func rawDerpClient(t *testing.T, d *derpd, priv key.NodePrivate) (net.Conn, *derp.Client) {
	t.Helper()
	nc, err := net.Dial("tcp", d.Addr)
	if err != nil {
		t.Fatalf("dial %s: %v", d.Addr, err)
	}
	br := bufio.NewReaderSize(nc, 512)
	bw := bufio.NewWriterSize(nc, 512)
	fmt.Fprintf(bw, "GET /derp HTTP/1.1\r\nHost: %s\r\nUpgrade: DERP\r\nConnection: Upgrade\r\n\r\n", d.Addr)
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	dc, err := derp.NewClient(priv, nc, bufio.NewReadWriter(br, bw), t.Logf)
	if err != nil {
		t.Fatalf("derp.NewClient: %v", err)
	}
	m, err := dc.Recv()
	if err != nil {
		t.Fatalf("first Recv: %v", err)
	}
	if _, ok := m.(derp.ServerInfoMessage); !ok {
		t.Fatalf("first message %T, want ServerInfo", m)
	}
	return nc, dc
}

// startGoDerperTLS runs the Go derper as node i of r: TLS with the node's
// certificate, --mesh-with the region's list, trusting the bundle.
func (r *region) startGoDerperTLS(i int) *goDerper {
	t := r.t
	meshFile := filepath.Join(r.dir, "mesh.key")
	if err := os.WriteFile(meshFile, []byte(r.meshHex+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return runGoDerper(t, fmt.Sprintf("127.0.0.1:%d", r.ports[i]), []string{
		"-http-port=-1",
		"-stun=false",
		"-certmode=manual", "-hostname=localhost", "-certdir=" + r.certDirs[i],
		"-c", filepath.Join(r.dir, fmt.Sprintf("go%d.key", i)),
		"-mesh-psk-file", meshFile,
		"-mesh-with", r.list,
	}, "SSL_CERT_FILE="+r.bundle)
}

// TestMeshWithLearnsManyClients: 15,000 clients on node A are all learned
// by node B (a route each), and forwarding reaches the last of them.
func TestMeshWithLearnsManyClients(t *testing.T) {
	const n = 15_000
	r := newRegionMode(t, 2, true)
	a := r.startDerpd(0)
	b := r.startDerpd(1)
	waitLinks(t, a, 1, 15*time.Second)
	waitLinks(t, b, 1, 15*time.Second)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	var last key.NodePrivate
	var lastClient *derp.Client
	start := time.Now()
	for i := 0; i < n; i++ {
		priv := key.NewNode()
		c, dc := rawDerpClient(t, a, priv)
		conns = append(conns, c)
		last, lastClient = priv, dc
	}
	t.Logf("%d clients connected to A in %v", n, time.Since(start))
	// B's remote keys: the n clients and B's own link into A.
	v := b.waitMetric(t, 60*time.Second, func(v float64) bool { return v >= n+1 }, "derp_clients_remote")
	if v != n+1 {
		t.Fatalf("node B derp_clients_remote = %v, want %d (every client of A, and B's own link)", v, n+1)
	}
	// A client on B reaches the last client connected to A.
	sKey := key.NewNode()
	s := b.newClient(t, "s", sKey)
	sm := startRecv(t, "s", s)
	sm.expectServerInfo(t)
	if err := s.Send(last.Public(), []byte("to the last one")); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		for {
			m, err := lastClient.Recv()
			if err != nil {
				got <- err
				return
			}
			if rp, ok := m.(derp.ReceivedPacket); ok {
				if string(rp.Data) != "to the last one" || rp.Source != sKey.Public() {
					got <- fmt.Errorf("got %q from %v", rp.Data, rp.Source.ShortString())
				} else {
					got <- nil
				}
				return
			}
		}
	}()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the packet from B did not reach the last client on A")
	}
	// A's clients leave: B drops every route.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	v = b.waitMetric(t, 60*time.Second, func(v float64) bool { return v <= 1 }, "derp_clients_remote")
	if v != 1 {
		t.Fatalf("node B derp_clients_remote = %v after A's clients left, want 1", v)
	}
}

// TestDerpprobeTwoDerpdNodes: derpprobe over a two-node derpd region: tls
// for each node, and bw and mesh for every ordered pair (across the mesh).
func TestDerpprobeTwoDerpdNodes(t *testing.T) {
	r := newRegion(t, 2)
	a := r.startDerpd(0)
	b := r.startDerpd(1)
	waitLinks(t, a, 1, 15*time.Second)
	waitLinks(t, b, 1, 15*time.Second)
	runDerpprobeRegion(t, []*derpd{a, b}, true, r.bundle, 2_000_000)
}
