package interop

// Tier C: the real Go derper (tailscale.com v1.102.3) meshes to derpd with
// --mesh-with, i.e. Go's own mesh client (fast start over TLS 1.3, WatchConns
// pipelined before ServerInfo, ForwardPacket) talks to derpd as a mesh
// server: a client on the Go derper sends to a client on derpd. Both
// directions, over TLS, with derpd's own --mesh-with: meshwith_test.go.

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/types/key"
)

// goDerper is a running Go reference derper.
type goDerper struct {
	Addr string
	mu   sync.Mutex
	log  strings.Builder
}

func (g *goDerper) logs() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.log.String()
}

// startGoDerper runs cmd/derper on plain HTTP at a free loopback port,
// meshing with derpd over TLS (trusting derpd's cert via SSL_CERT_FILE).
func startGoDerper(t *testing.T, d *derpd) *goDerper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	return runGoDerper(t, addr, []string{
		"-http-port=-1",
		"-stun=false",
		"-c", filepath.Join(dir, "derper.key"),
		"-mesh-psk-file", d.MeshKeyFile,
		"-mesh-with", d.Addr,
	}, "SSL_CERT_FILE="+d.CertFile)
}

// runGoDerper starts cmd/derper on addr with args (and env added), waits
// until it listens, and stops it (SIGTERM) at cleanup, printing its log
// if the test failed.
func runGoDerper(t *testing.T, addr string, args []string, env ...string) *goDerper {
	t.Helper()
	bin := tailscaleTool(t, "derper", "DERPER")
	cmd := exec.Command(bin, append([]string{"-a", addr}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	g := &goDerper{Addr: addr}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting Go derper: %v", err)
	}
	pw.Close()
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			g.mu.Lock()
			g.log.WriteString(sc.Text() + "\n")
			g.mu.Unlock()
		}
	}()
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("Go derper log:\n%s", g.logs())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Go derper not listening on %s after 10s; log:\n%s", addr, g.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return g
}

func TestMixedMeshGoToDerpd(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true, Mesh: true, NoSTUN: true})

	// Y is on derpd before the Go derper connects (initial PeerPresent
	// flood), Z comes later (incremental PeerPresent).
	yKey := key.NewNode()
	y := d.newClient(t, "y", yKey)
	ym := startRecv(t, "y", y)
	ym.expectServerInfo(t)

	g := startGoDerper(t, d)
	// The Go derper's mesh client must connect to derpd and watch.
	if v := d.waitMetric(t, 15*time.Second, func(v float64) bool { return v >= 1 }, "derp_watchers"); v < 1 {
		t.Fatalf("derp_watchers = %v: the Go derper's mesh client did not subscribe to derpd (see logs)", v)
	}

	xKey := key.NewNode()
	x, err := derphttp.NewClient(xKey, "http://"+g.Addr+"/derp", t.Logf, netmonStatic())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	xm := startRecv(t, "x", x)
	xm.expectServerInfo(t)

	// X (on Go) -> Y (on derpd), forwarded by the Go derper over its mesh
	// connection to derpd. Retry the first packet until Go has learned Y.
	sendUntil := func(dst key.NodePrivate, dm *msgs, what string) {
		t.Helper()
		sendUntilDelivered(t, x, xKey.Public(), dst.Public(), dm, what, 10*time.Second)
	}
	sendUntil(yKey, ym, "y")
	for i := 0; i < 200; i++ {
		msg := []byte(fmt.Sprintf("x->y %d", i))
		if err := x.Send(yKey.Public(), msg); err != nil {
			t.Fatal(err)
		}
		ym.expectPacket(t, xKey.Public(), msg)
	}

	// Z connects after the mesh is up: the incremental PeerPresent lets the
	// Go derper forward to it too.
	zKey := key.NewNode()
	z := d.newClient(t, "z", zKey)
	zm := startRecv(t, "z", z)
	zm.expectServerInfo(t)
	sendUntil(zKey, zm, "z")

	// Y leaves derpd: derpd's PeerGone to the Go watcher removes the
	// forwarder, so a disco packet from X to Y now gets PeerGone(NotHere)
	// from the Go derper.
	y.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if err := x.Send(yKey.Public(), discoPacket(8)); err != nil {
			t.Fatal(err)
		}
		msg, err := xm.nextErr(500 * time.Millisecond)
		if err == nil {
			pg, ok := msg.(derp.PeerGoneMessage)
			if !ok || pg.Peer != yKey.Public() {
				t.Fatalf("x: got %s, want PeerGone(y)", describe(msg))
			}
			if pg.Reason != derp.PeerGoneReasonNotHere {
				t.Fatalf("x: PeerGone(y) reason %d, want NotHere", pg.Reason)
			}
			break
		}
		if err != errTimeout {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the Go derper still forwards to y 10s after y left derpd (derpd did not send PeerGone to its mesh watcher?)")
		}
	}
	// Z is still reachable.
	if err := x.Send(zKey.Public(), []byte("still there")); err != nil {
		t.Fatal(err)
	}
	zm.expectPacket(t, xKey.Public(), []byte("still there"))
}
