package interop

// Ports of derp TestSendRecv / derphttp TestSendRecv (black box) plus the
// TLS / fast-start checks.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go4.org/mem"
	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/types/key"
)

func TestSendRecvHTTP(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	testSendRecv(t, d, nil)
}

func TestSendRecvTLS(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true, NoSTUN: true})
	testSendRecv(t, d, func(t *testing.T, name string, c *derphttp.Client) {
		checkFastStartTLS(t, d, name, c)
	})
}

// TestSendRecvTLS12 forces TLS 1.2, where Go clients do not use fast start
// and go through the classic 101 upgrade inside TLS.
func TestSendRecvTLS12(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true, NoSTUN: true})
	var clients []*derphttp.Client
	var ms []*msgs
	var keys []key.NodePrivate
	for i := 0; i < 2; i++ {
		k := key.NewNode()
		c, err := derphttp.NewClient(k, d.URL(), t.Logf, netmonStatic())
		if err != nil {
			t.Fatal(err)
		}
		c.TLSConfig = &tls.Config{RootCAs: d.CertPool, MaxVersion: tls.VersionTLS12}
		t.Cleanup(func() { c.Close() })
		if err := c.Connect(t.Context()); err != nil {
			t.Fatalf("client %d: Connect over TLS 1.2: %v", i, err)
		}
		cs, ok := c.TLSConnectionState()
		if !ok {
			t.Fatalf("client %d: no TLS state", i)
		}
		if cs.Version != tls.VersionTLS12 {
			t.Fatalf("client %d: negotiated TLS version %#x, want TLS 1.2", i, cs.Version)
		}
		m := startRecv(t, fmt.Sprintf("tls12-client%d", i), c)
		m.expectServerInfo(t)
		if got := c.ServerPublicKey(); got != d.ServerKey {
			t.Fatalf("client %d: server key %v, want %v", i, got, d.ServerKey)
		}
		clients, ms, keys = append(clients, c), append(ms, m), append(keys, k)
	}
	msg := []byte("hello over TLS 1.2")
	if err := clients[0].Send(keys[1].Public(), msg); err != nil {
		t.Fatal(err)
	}
	ms[1].expectPacket(t, keys[0].Public(), msg)
	ms[0].expectNothing(t, 200*time.Millisecond)
}

// testSendRecv is the core routing test with three derphttp clients.
// extra, if non-nil, is called for each connected client.
func testSendRecv(t *testing.T, d *derpd, extra func(t *testing.T, name string, c *derphttp.Client)) {
	const n = 3
	var (
		privs   []key.NodePrivate
		pubs    []key.NodePublic
		clients []*derphttp.Client
		ms      []*msgs
	)
	for i := 0; i < n; i++ {
		k := key.NewNode()
		name := fmt.Sprintf("client%d", i)
		c := d.newClient(t, name, k)
		if extra != nil {
			extra(t, name, c)
		}
		m := startRecv(t, name, c)
		si := m.expectServerInfo(t)
		if si.TokenBucketBytesPerSecond != 0 || si.TokenBucketBytesBurst != 0 {
			// Go clients would silently drop sends over this budget.
			t.Errorf("%s: ServerInfo advertises a token bucket %+v; derpd must not rate-limit clients via ServerInfo", name, si)
		}
		if got := c.ServerPublicKey(); got != d.ServerKey {
			t.Fatalf("%s: ServerPublicKey %v, want %v (from derpd log)", name, got, d.ServerKey)
		}
		privs, pubs, clients, ms = append(privs, k), append(pubs, k.Public()), append(clients, c), append(ms, m)
	}

	vz := d.varz(t)
	if v := mustMetric(t, vz, "derp_current_connections"); v != n {
		t.Errorf("derp_current_connections = %v, want %d", v, n)
	}
	recv0 := mustMetric(t, vz, "derp_packets_received")
	sent0 := mustMetric(t, vz, "derp_packets_sent")

	// Ring: i sends to i+1. Only the addressed client gets it, with the
	// right source.
	for i := 0; i < n; i++ {
		j := (i + 1) % n
		msg := []byte(fmt.Sprintf("hello %d -> %d", i, j))
		if err := clients[i].Send(pubs[j], msg); err != nil {
			t.Fatalf("client%d Send: %v", i, err)
		}
		ms[j].expectPacket(t, pubs[i], msg)
	}
	for i := 0; i < n; i++ {
		ms[i].expectNothing(t, 100*time.Millisecond)
	}

	// A bigger packet, and the maximum size packet.
	for _, size := range []int{1500, 16 << 10, derp.MaxPacketSize} {
		msg := bytes.Repeat([]byte{byte(size)}, size)
		copy(msg, fmt.Sprintf("size %d", size))
		if err := clients[1].Send(pubs[2], msg); err != nil {
			t.Fatalf("Send %d bytes: %v", size, err)
		}
		ms[2].expectPacket(t, pubs[1], msg)
	}

	// Sending to oneself is delivered back.
	if err := clients[2].Send(pubs[2], []byte("to myself")); err != nil {
		t.Fatal(err)
	}
	ms[2].expectPacket(t, pubs[2], []byte("to myself"))

	// Counters moved: 3 ring + 3 sizes + 1 self = 7 packets each way.
	vz = d.varz(t)
	if got := mustMetric(t, vz, "derp_packets_received") - recv0; got < 7 {
		t.Errorf("derp_packets_received grew by %v, want >= 7", got)
	}
	if got := mustMetric(t, vz, "derp_packets_sent") - sent0; got < 7 {
		t.Errorf("derp_packets_sent grew by %v, want >= 7", got)
	}

	// Non-disco packet to an unknown key: silently dropped (no PeerGone),
	// counted as unknown_dest/other.
	unknown := key.NewNode().Public()
	dropOther0 := mustMetric(t, vz, "derp_packets_dropped", "reason", "unknown_dest", "kind", "other")
	if err := clients[0].Send(unknown, bytes.Repeat([]byte("x"), 100)); err != nil {
		t.Fatal(err)
	}
	ms[0].expectNothing(t, 500*time.Millisecond)
	if got := d.waitMetric(t, 2*time.Second, func(v float64) bool { return v == dropOther0+1 },
		"derp_packets_dropped", "reason", "unknown_dest", "kind", "other"); got != dropOther0+1 {
		t.Errorf(`derp_packets_dropped{reason="unknown_dest",kind="other"} = %v, want %v`, got, dropOther0+1)
	}

	// Disco packets to an unknown key: PeerGone(NotHere), rate limited to
	// burst 3 per sending connection: 6 quick sends give exactly 3 replies.
	vz = d.varz(t)
	notHere0 := mustMetric(t, vz, "derp_peer_gone_not_here_frames")
	dropDisco0 := mustMetric(t, vz, "derp_packets_dropped", "reason", "unknown_dest", "kind", "disco")
	unknown2 := key.NewNode().Public()
	sendStart := time.Now()
	for i := 0; i < 6; i++ {
		if err := clients[1].Send(unknown2, discoPacket(16)); err != nil {
			t.Fatal(err)
		}
	}
	var gone int
	deadline := time.Now().Add(1200 * time.Millisecond)
	for {
		rem := time.Until(deadline)
		if rem <= 0 {
			break
		}
		msg, err := ms[1].nextErr(rem)
		if err == errTimeout {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		pg, ok := msg.(derp.PeerGoneMessage)
		if !ok {
			t.Fatalf("client1: got %s, want only PeerGone(NotHere)", describe(msg))
		}
		if pg.Peer != unknown2 || pg.Reason != derp.PeerGoneReasonNotHere {
			t.Fatalf("client1: got PeerGone(%v, reason %d), want PeerGone(%v, NotHere=1)", pg.Peer.ShortString(), pg.Reason, unknown2.ShortString())
		}
		gone++
	}
	if gone != 3 {
		t.Errorf("6 quick disco sends to an unknown key gave %d PeerGone(NotHere) replies, want exactly 3 (burst 3, 1/s)", gone)
	}
	// The plain (non-disco) send above must not have consumed the limiter,
	// and other clients get nothing.
	ms[0].expectNothing(t, 10*time.Millisecond)
	ms[2].expectNothing(t, 10*time.Millisecond)
	vz = d.varz(t)
	if got := mustMetric(t, vz, "derp_peer_gone_not_here_frames") - notHere0; got != 3 {
		t.Errorf("derp_peer_gone_not_here_frames grew by %v, want 3", got)
	}
	if got := mustMetric(t, vz, "derp_packets_dropped", "reason", "unknown_dest", "kind", "disco") - dropDisco0; got != 6 {
		t.Errorf(`derp_packets_dropped{reason="unknown_dest",kind="disco"} grew by %v, want 6`, got)
	}
	// The bucket refills at 1/s: after >1 s one more disco send is answered.
	time.Sleep(time.Until(sendStart.Add(1500 * time.Millisecond)))
	if err := clients[1].Send(unknown2, discoPacket(0)); err != nil {
		t.Fatal(err)
	}
	ms[1].expectPeerGone(t, unknown2, derp.PeerGoneReasonNotHere)
	ms[1].expectNothing(t, 200*time.Millisecond)

	// A 61-byte packet with the disco magic is not disco: no reply.
	if err := clients[2].Send(unknown2, discoPacket(0)[:61]); err != nil {
		t.Fatal(err)
	}
	ms[2].expectNothing(t, 300*time.Millisecond)

	// Disconnect client0, which had sent to client1 only: client1 gets
	// PeerGone(client0, Disconnected) exactly once, client2 (which never
	// received from client0) gets nothing.
	disc0 := mustMetric(t, d.varz(t), "derp_peer_gone_disconnected_frames")
	if err := clients[0].Close(); err != nil {
		t.Fatal(err)
	}
	ms[1].expectPeerGone(t, pubs[0], derp.PeerGoneReasonDisconnected)
	ms[1].expectNothing(t, 1*time.Second)
	ms[2].expectNothing(t, 10*time.Millisecond)
	vz = d.varz(t)
	if got := mustMetric(t, vz, "derp_peer_gone_disconnected_frames") - disc0; got != 1 {
		t.Errorf("derp_peer_gone_disconnected_frames grew by %v, want 1", got)
	}
	if got := d.waitMetric(t, 2*time.Second, func(v float64) bool { return v == n-1 }, "derp_current_connections"); got != n-1 {
		t.Errorf("derp_current_connections = %v after one close, want %d", got, n-1)
	}

	// The survivors still talk.
	if err := clients[2].Send(pubs[1], []byte("still here")); err != nil {
		t.Fatal(err)
	}
	ms[1].expectPacket(t, pubs[2], []byte("still here"))
	_ = privs
}

// checkFastStartTLS asserts TLS 1.3 and the meta cert that makes Go clients
// use fast start.
func checkFastStartTLS(t *testing.T, d *derpd, name string, c *derphttp.Client) {
	t.Helper()
	cs, ok := c.TLSConnectionState()
	if !ok {
		t.Fatalf("%s: no TLS connection state", name)
	}
	checkTLSState(t, d, name, cs)
}

func checkTLSState(t *testing.T, d *derpd, name string, cs *tls.ConnectionState) {
	t.Helper()
	if cs.Version != tls.VersionTLS13 {
		t.Fatalf("%s: TLS version %#x, want TLS 1.3 (0x0304)", name, cs.Version)
	}
	chain := cs.PeerCertificates
	if len(chain) != 2 {
		t.Errorf("%s: peer chain has %d certs, want 2 (self-signed leaf + meta cert)", name, len(chain))
	}
	if len(chain) == 0 {
		t.Fatalf("%s: empty peer chain", name)
	}
	leaf := chain[0]
	if !bytes.Equal(leaf.Raw, d.CertDER) {
		t.Errorf("%s: leaf cert differs from %s", name, d.CertFile)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Errorf("%s: leaf not valid for IP 127.0.0.1: %v", name, err)
	}
	if _, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("%s: leaf key is %T, want ECDSA", name, leaf.PublicKey)
	}
	meta := chain[len(chain)-1]
	wantCN := "derpkey" + d.ServerKey.UntypedHexString()
	if meta.Subject.CommonName != wantCN {
		t.Fatalf("%s: last cert CN %q, want %q (meta cert for fast start)", name, meta.Subject.CommonName, wantCN)
	}
	if meta.SerialNumber == nil || meta.SerialNumber.Int64() != 2 {
		t.Fatalf("%s: meta cert serial %v, want 2 (protocol version)", name, meta.SerialNumber)
	}
	if meta.PublicKeyAlgorithm != x509.Ed25519 {
		t.Errorf("%s: meta cert key algorithm %v, want Ed25519", name, meta.PublicKeyAlgorithm)
	}
	if !meta.BasicConstraintsValid || meta.IsCA {
		t.Errorf("%s: meta cert basic constraints valid=%v isCA=%v, want present and not CA", name, meta.BasicConstraintsValid, meta.IsCA)
	}
	if d.CertSHA256 == "" {
		t.Errorf("derpd did not log a sha256-raw:<hex> line for its generated certificate")
	} else if got := sha256Hex(leaf.Raw); got != d.CertSHA256 {
		t.Errorf("log says sha256-raw:%s, leaf cert hashes to %s", d.CertSHA256, got)
	}
}

// TestFastStartRaw checks the server side of fast start byte by byte: with
// Derp-Fast-Start: 1 no HTTP response is written; the first bytes are the
// ServerKey frame, then ServerInfo for our (pipelined) ClientInfo.
func TestFastStartRaw(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true, NoSTUN: true})
	rc := d.dialRawNoUpgrade(t)
	tc := rc.Conn.(*tls.Conn)
	cs := tc.ConnectionState()
	checkTLSState(t, d, "raw tls", &cs)

	priv := key.NewNode()
	rc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(rc.brw, "GET /derp HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUser-Agent: Go-http-client/1.1\r\nConnection: Upgrade\r\nDerp-Fast-Start: 1\r\nUpgrade: DERP\r\n\r\n", d.Port)
	// derp.NewClient with a known server key writes ClientInfo and flushes
	// the request and ClientInfo together, as derphttp does.
	c, err := derp.NewClient(priv, rc, rc.brw, t.Logf, derp.ServerPublicKey(d.ServerKey))
	if err != nil {
		t.Fatalf("sending ClientInfo: %v", err)
	}
	first, err := rc.brw.Reader.Peek(5)
	if err != nil {
		t.Fatalf("reading first bytes after fast-start request: %v", err)
	}
	if bytes.HasPrefix(first, []byte("HTTP/")) {
		t.Fatalf("server sent an HTTP response to a Derp-Fast-Start: 1 request; want no response at all")
	}
	if first[0] != byte(derp.FrameServerKey) {
		t.Fatalf("first frame type %#x, want ServerKey (0x01)", first[0])
	}
	skb, err := rc.brw.Reader.Peek(45)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(skb[5:13], []byte("DERP\xf0\x9f\x94\x91")) {
		t.Errorf("ServerKey frame magic = % x, want DERP🔑", skb[5:13])
	}
	if got := key.NodePublicFromRaw32(mem.B(skb[13:45])); got != d.ServerKey {
		t.Errorf("ServerKey frame key %v, want %v", got, d.ServerKey)
	}
	rc.SetDeadline(time.Time{})
	m := startRecv(t, "faststart", c) // skips the ServerKey frame
	m.expectServerInfo(t)

	// And the connection works: ping.
	if err := c.SendPing([8]byte{1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
		t.Fatal(err)
	}
	msg := m.next(t, 5*time.Second)
	if pm, ok := msg.(derp.PongMessage); !ok || pm != (derp.PongMessage{1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("got %s, want Pong 0102030405060708", describe(msg))
	}
}

// TestUpgradeResponse checks the classic 101 response head (PROTOCOL.md 1.4)
// and that the ServerKey frame follows it directly.
func TestUpgradeResponse(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	nc, err := net.DialTimeout("tcp", d.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(nc, "GET /derp HTTP/1.1\r\nHost: %s\r\nUser-Agent: Go-http-client/1.1\r\nConnection: Upgrade\r\nUpgrade: DERP\r\n\r\n", d.Addr)
	var buf []byte
	tmp := make([]byte, 4096)
	for !bytes.Contains(buf, []byte("\r\n\r\n")) || len(buf) < bytes.Index(buf, []byte("\r\n\r\n"))+4+45 {
		n, err := nc.Read(tmp)
		if err != nil {
			t.Fatalf("reading 101 + ServerKey: %v (got %q)", err, buf)
		}
		buf = append(buf, tmp[:n]...)
	}
	i := bytes.Index(buf, []byte("\r\n\r\n"))
	head := string(buf[:i])
	lines := strings.Split(head, "\r\n")
	if lines[0] != "HTTP/1.1 101 Switching Protocols" {
		t.Errorf("status line %q, want %q", lines[0], "HTTP/1.1 101 Switching Protocols")
	}
	hdr := http.Header{}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			t.Errorf("bad header line %q", l)
			continue
		}
		hdr.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	if got := hdr.Get("Upgrade"); !strings.EqualFold(got, "DERP") {
		t.Errorf("Upgrade: %q, want DERP", got)
	}
	if got := hdr.Get("Derp-Version"); got != "2" {
		t.Errorf("Derp-Version: %q, want 2", got)
	}
	if got, want := hdr.Get("Derp-Public-Key"), d.ServerKey.UntypedHexString(); got != want {
		t.Errorf("Derp-Public-Key: %q, want %q", got, want)
	}
	if hdr.Get("Content-Length") != "" {
		t.Errorf("101 response has Content-Length %q; want none", hdr.Get("Content-Length"))
	}
	frame := buf[i+4:]
	if frame[0] != byte(derp.FrameServerKey) {
		t.Fatalf("first frame after 101 has type %#x, want ServerKey 0x01", frame[0])
	}
	if n := int(frame[1])<<24 | int(frame[2])<<16 | int(frame[3])<<8 | int(frame[4]); n < 40 {
		t.Fatalf("ServerKey frame length %d, want >= 40", n)
	}
	if got := key.NodePublicFromRaw32(mem.B(frame[13:45])); got != d.ServerKey {
		t.Errorf("ServerKey frame key %v, want %v", got, d.ServerKey)
	}
}
