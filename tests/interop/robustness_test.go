package interop

// Handshake timeouts, pipelining, upgrade-request variants, concurrency,
// churn, shutdown, key file compatibility, NotePreferred and KeepAlive.

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go4.org/mem"
	"golang.org/x/crypto/nacl/box"
	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/types/key"
)

// closedWithin reads from nc until EOF/error; it reports how long that took
// and false if the connection was still open after max.
func closedWithin(nc net.Conn, max time.Duration) (time.Duration, bool) {
	start := time.Now()
	nc.SetReadDeadline(start.Add(max))
	buf := make([]byte, 4096)
	for {
		_, err := nc.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return time.Since(start), false
		}
		return time.Since(start), true
	}
}

// waitClosed is closedWithin, failing the test if the connection stays open.
func waitClosed(t *testing.T, nc net.Conn, max time.Duration, what string) time.Duration {
	t.Helper()
	el, ok := closedWithin(nc, max)
	if !ok {
		t.Fatalf("%s: connection still open after %v", what, max)
	}
	return el
}

func TestHandshakeTimeouts(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "tls"}[useTLS]
		t.Run(name, func(t *testing.T) {
			d := startDerpd(t, derpdOpts{TLS: useTLS, NoSTUN: true, ExtraArgs: []string{"--handshake-timeout=1s"}})

			// An established DERP connection is not subject to the handshake
			// timeout (no read idle timeout after the handshake).
			idleKey := key.NewNode()
			idle := d.newRawClient(t, idleKey)
			im := startRecv(t, "idle", idle)
			im.expectServerInfo(t)

			t.Run("silent TCP", func(t *testing.T) {
				nc, err := net.Dial("tcp", d.Addr)
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				if el := waitClosed(t, nc, 5*time.Second, "connection that sends nothing"); el < 500*time.Millisecond {
					t.Errorf("closed after %v; want about 1s", el)
				}
			})
			t.Run("partial HTTP head", func(t *testing.T) {
				rc := d.dialRawNoUpgrade(t)
				fmt.Fprintf(rc, "GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: DERP\r\n")
				waitClosed(t, rc, 5*time.Second, "incomplete HTTP request head")
			})
			t.Run("trickling HTTP head", func(t *testing.T) {
				rc := d.dialRawNoUpgrade(t)
				// One byte every 200ms: the limit is on the whole head, not
				// per read.
				closed := make(chan bool, 1)
				go func() {
					_, ok := closedWithin(rc, 6*time.Second)
					closed <- ok
				}()
				req := "GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: DERP\r\nConnection: Upgrade\r\nX-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n"
				for i := 0; i < len(req); i++ {
					select {
					case ok := <-closed:
						if !ok {
							t.Fatal("trickling client still open after 6s; want closed after --handshake-timeout=1s")
						}
						return
					case <-time.After(200 * time.Millisecond):
					}
					rc.SetWriteDeadline(time.Now().Add(time.Second))
					if _, err := rc.Write([]byte{req[i]}); err != nil {
						break
					}
				}
				if ok := <-closed; !ok {
					t.Fatal("trickling client still open after 6s; want closed after --handshake-timeout=1s")
				}
			})
			t.Run("no ClientInfo after upgrade", func(t *testing.T) {
				rc := d.dialRaw(t)
				_, err := readUntilFrame(rc, derp.FrameServerInfo, 6*time.Second)
				if err == nil {
					t.Fatal("got ServerInfo without sending ClientInfo")
				}
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatal("connection without ClientInfo still open after 6s; want closed after --handshake-timeout=1s")
				}
			})
			if useTLS {
				t.Run("TLS without HTTP request", func(t *testing.T) {
					rc := d.dialRawNoUpgrade(t)
					waitClosed(t, rc, 5*time.Second, "TLS connection without an HTTP request")
				})
			}

			// The idle DERP client (idle > 1s by now) still works.
			if err := idle.SendPing([8]byte{4, 2}); err != nil {
				t.Fatal(err)
			}
			if msg := im.next(t, 5*time.Second); msg != (derp.PongMessage{4, 2}) {
				t.Fatalf("idle client: got %s, want Pong (established connections must not time out)", describe(msg))
			}
		})
	}
}

// pipelinedHandshake writes the upgrade request, a hand-sealed ClientInfo
// (to the server key from the log), a SendPacket and a Ping in ONE write,
// before reading anything, then checks the replies. With fastStart the
// request carries Derp-Fast-Start: 1 (TLS only) and no 101 may come back.
func pipelinedHandshake(t *testing.T, d *derpd, fastStart bool) {
	peerKey := key.NewNode()
	peer := d.newClient(t, "peer", peerKey)
	pm := startRecv(t, "peer", peer)
	pm.expectServerInfo(t)

	rc := d.dialRawNoUpgrade(t)
	cpub, cpriv, _ := box.GenerateKey(rand.Reader)
	var spub [32]byte
	copy(spub[:], d.ServerKey.AppendTo(nil))
	var buf bytes.Buffer
	fs := ""
	if fastStart {
		fs = "Derp-Fast-Start: 1\r\n"
	}
	fmt.Fprintf(&buf, "GET /derp HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: Go-http-client/1.1\r\nConnection: Upgrade\r\n%sUpgrade: DERP\r\n\r\n", d.Host, d.Port, fs)
	bw := newFrameWriter(&buf)
	var nonce [24]byte
	rand.Read(nonce[:])
	ci := append(append([]byte{}, cpub[:]...), nonce[:]...)
	ci = box.Seal(ci, []byte(`{"version":2,"CanAckPings":true}`), &nonce, &spub, cpriv)
	bw.frame(derp.FrameClientInfo, ci)
	bw.frame(derp.FrameNotePreferred, []byte{1})
	bw.frame(derp.FrameSendPacket, append(peerKey.Public().AppendTo(nil), []byte("pipelined")...))
	bw.frame(derp.FramePing, []byte("pipeline"))
	rc.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := rc.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := rc.brw.Reader
	if fastStart {
		first, err := br.Peek(5)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.HasPrefix(first, []byte("HTTP/")) {
			t.Fatal("HTTP response sent in fast-start mode")
		}
	} else {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading 101: %v", err)
		}
		if resp.StatusCode != 101 {
			t.Fatalf("status %v, want 101", resp.Status)
		}
	}
	var order []derp.FrameType
	for len(order) < 3 {
		typ, n, err := derp.ReadFrameHeader(br)
		if err != nil {
			t.Fatalf("after frames %x: %v", order, err)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(br, b); err != nil {
			t.Fatal(err)
		}
		if typ == derp.FrameKeepAlive {
			continue
		}
		order = append(order, typ)
		if typ == derp.FramePong && string(b) != "pipeline" {
			t.Errorf("Pong payload %q, want %q", b, "pipeline")
		}
	}
	if order[0] != derp.FrameServerKey || order[1] != derp.FrameServerInfo || order[2] != derp.FramePong {
		t.Errorf("frame order % x, want ServerKey(01) ServerInfo(03) Pong(13)", order)
	}
	pm.expectPacket(t, key.NodePublicFromRaw32(mem.B(cpub[:])), []byte("pipelined"))
}

type frameWriter struct{ w *bytes.Buffer }

func newFrameWriter(w *bytes.Buffer) frameWriter { return frameWriter{w} }
func (f frameWriter) frame(typ derp.FrameType, b []byte) {
	var hdr [5]byte
	hdr[0] = byte(typ)
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(b)))
	f.w.Write(hdr[:])
	f.w.Write(b)
}

func TestPipelining(t *testing.T) {
	t.Run("http", func(t *testing.T) {
		d := startDerpd(t, derpdOpts{NoSTUN: true})
		pipelinedHandshake(t, d, false)
	})
	t.Run("tls", func(t *testing.T) {
		d := startDerpd(t, derpdOpts{TLS: true, NoSTUN: true})
		pipelinedHandshake(t, d, false)
	})
	t.Run("tls fast start", func(t *testing.T) {
		d := startDerpd(t, derpdOpts{TLS: true, NoSTUN: true})
		pipelinedHandshake(t, d, true)
	})
}

// TestUpgradeVariants: request forms the Go handler accepts (PROTOCOL.md 1.3).
func TestUpgradeVariants(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	cases := []struct{ name, req string }{
		{"lower-case header names", "GET /derp HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: upgrade\r\nupgrade: DERP\r\n\r\n"},
		{"lower-case value", "GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: derp\r\n\r\n"},
		{"query string", "GET /derp?foo=bar HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: DERP\r\n\r\n"},
		{"no Connection header", "GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: DERP\r\n\r\n"},
		{"legacy Upgrade: WebSocket without derp subprotocol", "GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: WebSocket\r\n\r\n"},
		{"many headers", "GET /derp HTTP/1.1\r\nHost: 127.0.0.1\r\n" + strings.Repeat("X-Filler: 0123456789abcdef0123456789abcdef\r\n", 50) + "Connection: Upgrade\r\nUpgrade: DERP\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rc := d.dialRawNoUpgrade(t)
			rc.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(rc, tc.req); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(rc.brw.Reader, nil)
			if err != nil {
				t.Fatalf("reading response: %v", err)
			}
			if resp.StatusCode != 101 {
				t.Fatalf("status %v, want 101", resp.Status)
			}
			c, err := derp.NewClient(key.NewNode(), rc, rc.brw, t.Logf)
			if err != nil {
				t.Fatal(err)
			}
			rc.SetDeadline(time.Time{})
			m := startRecv(t, tc.name, c)
			m.expectServerInfo(t)
		})
	}
}

// TestConcurrentStreams: several client pairs stream at once through the
// worker threads (BenchmarkConcurrentStreams as a correctness test); every
// stream arrives complete, in order, with the right source.
func TestConcurrentStreams(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	const (
		pairs   = 12
		packets = 1500
		size    = 1000
		window  = 30
	)
	type pair struct {
		fromKey, toKey key.NodePrivate
		from, to       *derphttp.Client
	}
	ps := make([]pair, pairs)
	for i := range ps {
		ps[i].fromKey, ps[i].toKey = key.NewNode(), key.NewNode()
		ps[i].from = d.newClient(t, fmt.Sprintf("from%d", i), ps[i].fromKey)
		ps[i].to = d.newClient(t, fmt.Sprintf("to%d", i), ps[i].toKey)
		for _, c := range []*derphttp.Client{ps[i].from, ps[i].to} {
			if m, err := c.Recv(); err != nil {
				t.Fatal(err)
			} else if _, ok := m.(derp.ServerInfoMessage); !ok {
				t.Fatalf("first message %T", m)
			}
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2*pairs)
	for i := range ps {
		p := ps[i]
		credits := make(chan struct{}, window)
		for j := 0; j < window; j++ {
			credits <- struct{}{}
		}
		done := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			b := make([]byte, size)
			for j := 0; j < packets; j++ {
				select {
				case <-credits:
				case <-done:
					return
				case <-time.After(20 * time.Second):
					errs <- fmt.Errorf("pair %d: window stalled at packet %d", i, j)
					return
				}
				binary.BigEndian.PutUint32(b, uint32(i))
				binary.BigEndian.PutUint32(b[4:], uint32(j))
				if err := p.from.Send(p.toKey.Public(), b); err != nil {
					errs <- fmt.Errorf("pair %d send %d: %v", i, j, err)
					return
				}
			}
		}()
		go func() {
			defer wg.Done()
			defer close(done)
			for j := 0; j < packets; {
				m, err := p.to.Recv()
				if err != nil {
					errs <- fmt.Errorf("pair %d recv after %d: %v", i, j, err)
					return
				}
				rp, ok := m.(derp.ReceivedPacket)
				if !ok {
					continue
				}
				if rp.Source != p.fromKey.Public() || len(rp.Data) != size ||
					binary.BigEndian.Uint32(rp.Data) != uint32(i) || binary.BigEndian.Uint32(rp.Data[4:]) != uint32(j) {
					errs <- fmt.Errorf("pair %d: packet %d wrong (source %v, len %d, tag %d/%d)", i, j, rp.Source.ShortString(), len(rp.Data), binary.BigEndian.Uint32(rp.Data), binary.BigEndian.Uint32(rp.Data[4:]))
					return
				}
				j++
				credits <- struct{}{}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(60 * time.Second):
		t.Fatal("concurrent streams did not finish within 60s")
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d pairs x %d packets of %d B in %v", pairs, packets, size, time.Since(start))
}

// TestConnectionChurn: many short-lived clients each send one packet to a
// long-lived receiver; the receiver gets every packet and one
// PeerGone(Disconnected) per sender; the connection gauge returns to 1.
func TestConnectionChurn(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	rKey := key.NewNode()
	r := d.newClient(t, "receiver", rKey)
	rm := startRecv(t, "receiver", r)
	rm.expectServerInfo(t)

	const n = 120
	senders := make(map[key.NodePublic]bool)
	seenCh := make(map[key.NodePublic]chan struct{})
	var mu sync.Mutex
	seen := func(k key.NodePublic) chan struct{} {
		mu.Lock()
		defer mu.Unlock()
		if seenCh[k] == nil {
			seenCh[k] = make(chan struct{})
		}
		return seenCh[k]
	}

	// Receiver loop, concurrent with the senders.
	gotPkt := map[key.NodePublic]bool{}
	gotGone := map[key.NodePublic]bool{}
	recvErr := make(chan error, 1)
	go func() {
		deadline := time.Now().Add(20 * time.Second)
		for len(gotPkt) < n || len(gotGone) < n {
			msg, err := rm.nextErr(time.Until(deadline))
			if err != nil {
				recvErr <- fmt.Errorf("receiver: %d packets, %d PeerGone of %d senders: %v", len(gotPkt), len(gotGone), n, err)
				return
			}
			switch m := msg.(type) {
			case derp.ReceivedPacket:
				mu.Lock()
				ok := senders[m.Source]
				mu.Unlock()
				if !ok || gotPkt[m.Source] || string(m.Data) != "churn" {
					recvErr <- fmt.Errorf("unexpected packet %s", describe(m))
					return
				}
				gotPkt[m.Source] = true
				close(seen(m.Source))
			case derp.PeerGoneMessage:
				if gotGone[m.Peer] || m.Reason != derp.PeerGoneReasonDisconnected || !gotPkt[m.Peer] {
					recvErr <- fmt.Errorf("unexpected %s (duplicate, or from a key that never sent to us)", describe(m))
					return
				}
				gotGone[m.Peer] = true
			default:
				recvErr <- fmt.Errorf("unexpected %s", describe(msg))
				return
			}
		}
		recvErr <- nil
	}()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	errs := make(chan error, 3*n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			k := key.NewNode()
			mu.Lock()
			senders[k.Public()] = true
			mu.Unlock()
			c, err := derphttp.NewClient(k, d.URL(), func(string, ...any) {}, netmonStatic())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if m, err := c.Recv(); err != nil {
				errs <- err
				return
			} else if _, ok := m.(derp.ServerInfoMessage); !ok {
				errs <- fmt.Errorf("first message %T", m)
				return
			}
			if err := c.Send(rKey.Public(), []byte("churn")); err != nil {
				errs <- err
				return
			}
			// Close only once the receiver has read our packet (so its
			// subscription to our departure certainly exists).
			select {
			case <-seen(k.Public()):
			case <-time.After(10 * time.Second):
				errs <- fmt.Errorf("receiver never got the packet from %v", k.Public().ShortString())
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := <-recvErr; err != nil {
		t.Fatal(err)
	}
	rm.expectNothing(t, 300*time.Millisecond)
	if v := d.waitMetric(t, 3*time.Second, func(v float64) bool { return v == 1 }, "derp_current_connections"); v != 1 {
		t.Errorf("derp_current_connections = %v after churn, want 1", v)
	}
}

// TestShutdownWithClients: SIGTERM with live DERP connections (TLS) exits 0
// within 5s and the clients see their connections end.
func TestShutdownWithClients(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true})
	var ms []*msgs
	for i := 0; i < 5; i++ {
		c := d.newClient(t, fmt.Sprintf("c%d", i), key.NewNode())
		m := startRecv(t, fmt.Sprintf("c%d", i), c)
		m.expectServerInfo(t)
		ms = append(ms, m)
	}
	rc := d.newRawClient(t, key.NewNode())
	rm := startRecv(t, "raw", rc)
	rm.expectServerInfo(t)
	ms = append(ms, rm)
	d.stop()
	if t.Failed() {
		return
	}
	for _, m := range ms {
		m.expectClosed(t, 5*time.Second)
	}
}

// TestKeyFile: derpd reads and writes the derper key file format
// ({"PrivateKey": "privkey:<hex>"}), so keys carry over between the two.
func TestKeyFile(t *testing.T) {
	t.Run("existing derper key file", func(t *testing.T) {
		priv := key.NewNode()
		txt, _ := priv.MarshalText()
		path := filepath.Join(t.TempDir(), "derper.key")
		if err := os.WriteFile(path, []byte(fmt.Sprintf("{\n\t\"PrivateKey\": %q\n}\n", txt)), 0o600); err != nil {
			t.Fatal(err)
		}
		d := startDerpd(t, derpdOpts{NoSTUN: true, KeyFile: path})
		if d.ServerKey != priv.Public() {
			t.Fatalf("derpd server key %v, want %v from the existing key file", d.ServerKey, priv.Public())
		}
		c := d.newClient(t, "c", key.NewNode())
		m := startRecv(t, "c", c)
		m.expectServerInfo(t)
		if c.ServerPublicKey() != priv.Public() {
			t.Fatalf("ServerKey frame %v, want %v", c.ServerPublicKey(), priv.Public())
		}
	})
	t.Run("generated key file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sub", "derpd.key")
		d := startDerpd(t, derpdOpts{NoSTUN: true, KeyFile: path})
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("derpd did not write its key file: %v", err)
		}
		var cfg struct{ PrivateKey key.NodePrivate }
		if err := json.Unmarshal(b, &cfg); err != nil {
			t.Fatalf("key file %q is not derper's JSON format: %v", b, err)
		}
		if cfg.PrivateKey.Public() != d.ServerKey {
			t.Fatalf("key file holds %v, derpd uses %v", cfg.PrivateKey.Public(), d.ServerKey)
		}
		if st, err := os.Stat(path); err == nil && st.Mode().Perm()&0o077 != 0 {
			t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
		}
		c := d.newClient(t, "c", key.NewNode())
		m := startRecv(t, "c", c)
		m.expectServerInfo(t)
		c.Close()
		d.stop()
		// Restart with the same file: same key.
		d2 := startDerpd(t, derpdOpts{NoSTUN: true, KeyFile: path})
		if d2.ServerKey != d.ServerKey {
			t.Fatalf("restarted derpd key %v, want %v", d2.ServerKey, d.ServerKey)
		}
	})
}

// TestEarlySIGTERM: SIGTERM right after the listening line must still give a
// clean exit (status 0): supervisors may stop a daemon at any time.
func TestEarlySIGTERM(t *testing.T) {
	for i := 0; i < 3; i++ {
		d := startDerpd(t, derpdOpts{})
		d.stop()
	}
}

// TestPeerGoneOrdering: a PeerGone(S) may only follow a packet from S (the
// receiver is subscribed when the server writes S's packet to it), never
// overtake it; and a packet sent just before the sender disconnects is still
// delivered (the server must process frames that arrive with the FIN).
func TestPeerGoneOrdering(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	// Each subtest has its own receiver.
	newReceiver := func(t *testing.T) (key.NodePrivate, *msgs) {
		rKey := key.NewNode()
		r := d.newClient(t, "receiver", rKey)
		rm := startRecv(t, "receiver", r)
		rm.expectServerInfo(t)
		return rKey, rm
	}
	for _, waitPong := range []bool{true, false} {
		name := map[bool]string{true: "close after pong", false: "close right after send"}[waitPong]
		t.Run(name, func(t *testing.T) {
			rKey, rm := newReceiver(t)
			for i := 0; i < 20; i++ {
				sKey := key.NewNode()
				s := d.newRawClient(t, sKey)
				if m, err := s.Recv(); err != nil {
					t.Fatal(err)
				} else if _, ok := m.(derp.ServerInfoMessage); !ok {
					t.Fatalf("first message %T", m)
				}
				if err := s.Send(rKey.Public(), []byte("bye")); err != nil {
					t.Fatal(err)
				}
				if waitPong {
					// The server has processed the send once it answers a
					// later ping.
					if err := s.SendPing([8]byte{byte(i)}); err != nil {
						t.Fatal(err)
					}
					if m, err := s.Recv(); err != nil || m != (derp.PongMessage{byte(i)}) {
						t.Fatalf("round %d: sender wanted Pong, got %v, %v", i, m, err)
					}
				}
				s.rc.Close()
				msg, err := rm.nextErr(5 * time.Second)
				if err == errTimeout {
					vz := d.varz(t)
					t.Fatalf("round %d: the packet sent before disconnecting never arrived (derp_packets_received=%v, drops=%v)", i, vz["derp_packets_received"], sumMetric(vz, "derp_packets_dropped"))
				} else if err != nil {
					t.Fatal(err)
				}
				if pg, ok := msg.(derp.PeerGoneMessage); ok {
					t.Fatalf("round %d: PeerGone(%v, %d) arrived before the packet from %v", i, pg.Peer.ShortString(), pg.Reason, sKey.Public().ShortString())
				}
				rm.expectPacketMsg(t, msg, sKey.Public(), []byte("bye"))
				// Now usually PeerGone(S); in any case nothing else.
				if msg, err := rm.nextErr(500 * time.Millisecond); err == nil {
					pg, ok := msg.(derp.PeerGoneMessage)
					if !ok || pg.Peer != sKey.Public() || pg.Reason != derp.PeerGoneReasonDisconnected {
						t.Fatalf("round %d: got %s, want nothing or PeerGone(%v, Disconnected)", i, describe(msg), sKey.Public().ShortString())
					}
				} else if err != errTimeout {
					t.Fatal(err)
				}
			}
		})
	}
	t.Run("concurrent close after pong", func(t *testing.T) {
		rKey, rm := newReceiver(t)
		// 120 senders, 8 at a time: send, ping, wait for the pong (the send
		// is processed), close. The receiver must get every packet, and any
		// PeerGone only after that sender's packet.
		const n = 120
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				c, err := derphttp.NewClient(key.NewNode(), d.URL(), func(string, ...any) {}, netmonStatic())
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				if _, err := c.Recv(); err != nil { // ServerInfo
					errs <- err
					return
				}
				if err := c.Send(rKey.Public(), []byte("churn")); err != nil {
					errs <- err
					return
				}
				if err := c.SendPing([8]byte{1}); err != nil {
					errs <- err
					return
				}
				for {
					m, err := c.Recv()
					if err != nil {
						errs <- err
						return
					}
					if _, ok := m.(derp.PongMessage); ok {
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got := map[key.NodePublic]bool{}
		var early []string
		for len(got) < n {
			msg, err := rm.nextErr(5 * time.Second)
			if err != nil {
				t.Fatalf("receiver got %d of %d packets: %v", len(got), n, err)
			}
			switch m := msg.(type) {
			case derp.ReceivedPacket:
				got[m.Source] = true
			case derp.PeerGoneMessage:
				if !got[m.Peer] {
					early = append(early, m.Peer.ShortString())
				}
			default:
				t.Fatalf("unexpected %s", describe(msg))
			}
		}
		if len(early) > 0 {
			t.Errorf("%d of %d PeerGone(Disconnected) frames arrived before that sender's packet: %v", len(early), n, early)
		}
	})
}

// TestNotePreferred: NotePreferred toggles derp_current_home_connections
// (as derp TestSendRecv checks gauge_current_home_connections).
func TestNotePreferred(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	c := d.newRawClient(t, key.NewNode())
	m := startRecv(t, "c", c)
	m.expectServerInfo(t)
	home := func() float64 { return mustMetric(t, d.varz(t), "derp_current_home_connections") }
	if v := home(); v != 0 {
		t.Fatalf("derp_current_home_connections = %v, want 0", v)
	}
	ping := func(b byte) {
		if err := c.SendPing([8]byte{b}); err != nil {
			t.Fatal(err)
		}
		if msg := m.next(t, 5*time.Second); msg != (derp.PongMessage{b}) {
			t.Fatalf("got %s", describe(msg))
		}
	}
	for i, want := range []float64{1, 1, 0, 1} {
		pref := want == 1
		if err := c.NotePreferred(pref); err != nil {
			t.Fatal(err)
		}
		ping(byte(i)) // ordered after the NotePreferred frame
		if v := home(); v != want {
			t.Errorf("step %d: after NotePreferred(%v): derp_current_home_connections = %v, want %v", i, pref, v, want)
		}
	}
	c.rc.Close()
	m.expectClosed(t, 5*time.Second)
	if v := d.waitMetric(t, 3*time.Second, func(v float64) bool { return v == 0 }, "derp_current_home_connections"); v != 0 {
		t.Errorf("derp_current_home_connections = %v after the preferred client left, want 0", v)
	}
}

// TestKeepAlive: an idle client gets a KeepAlive frame after 60s (+ up to 5s
// jitter); clients drop connections that are silent for 120s.
func TestKeepAlive(t *testing.T) {
	if testing.Short() {
		t.Skip("takes ~65s")
	}
	t.Parallel()
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	c := d.newRawClient(t, key.NewNode())
	start := time.Now()
	if m, err := c.Recv(); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(derp.ServerInfoMessage); !ok {
		t.Fatalf("first message %T", m)
	}
	res := make(chan recvResult, 1)
	go func() {
		m, err := c.Recv()
		res <- recvResult{m, err}
	}()
	select {
	case r := <-res:
		el := time.Since(start)
		if r.err != nil {
			t.Fatalf("after %v: %v", el, r.err)
		}
		if _, ok := r.m.(derp.KeepAliveMessage); !ok {
			t.Fatalf("after %v: got %s, want KeepAlive", el, describe(r.m))
		}
		if el < 50*time.Second {
			t.Errorf("KeepAlive after %v; want about 60-65s", el)
		}
		t.Logf("KeepAlive after %v", el)
	case <-time.After(75 * time.Second):
		t.Fatal("no KeepAlive within 75s of connecting (want one every 60-65s; clients give up after 120s of silence)")
	}
}
