package interop

// /bootstrap-dns side by side with the real derper: the same flags give
// the same bodies, byte for byte (names whose answers need no DNS server:
// address literals, one address each so the order is fixed, and a name
// that cannot resolve).

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

func TestBootstrapDNSMatchesGoDerper(t *testing.T) {
	args := []string{
		"-bootstrap-dns-names=127.0.0.9,nonexistent.invalid,::1",
		"-unpublished-bootstrap-dns-names=127.0.0.7,nonexistent.invalid",
	}
	d := startDerpd(t, derpdOpts{NoSTUN: true, ExtraArgs: args})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g := runGoDerper(t, addr, append([]string{"-http-port=-1", "-stun=false",
		"-c", filepath.Join(t.TempDir(), "derper.key")}, args...))

	get := func(base, path string) (string, string) {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s%s: %v", base, path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b), resp.Header.Get("Content-Type")
	}
	// Both resolve in the background after start: wait for an answer.
	for _, base := range []string{"http://" + d.Addr, "http://" + g.Addr} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			if b, _ := get(base, "/bootstrap-dns"); b != "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/bootstrap-dns still empty after 30s", base)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	for _, path := range []string{"/bootstrap-dns", "/bootstrap-dns?q=127.0.0.7",
		"/bootstrap-dns?q=nonexistent.invalid", "/bootstrap-dns?q=other"} {
		want, wantCT := get("http://"+g.Addr, path)
		got, gotCT := get("http://"+d.Addr, path)
		if got != want || gotCT != wantCT {
			t.Errorf("GET %s:\nderper (%s): %q\nderpd  (%s): %q", path, wantCT, want, gotCT, got)
		}
	}
}
