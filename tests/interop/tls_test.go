package interop

// TLS as real region clients see it: sha256-raw pinning (derper
// TestPinnedCertRawIP), InsecureForTests nodes, and a stable chain across
// handshakes (derpserver TestModifyTLSConfigToAddMetaCert, issue 20352).

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"tailscale.com/derp/derphttp"
	"tailscale.com/tailcfg"
	"tailscale.com/types/key"
)

func regionFor(d *derpd, node tailcfg.DERPNode) func() *tailcfg.DERPRegion {
	node.Name = "900a"
	node.RegionID = 900
	node.HostName = d.Host
	node.IPv4 = "127.0.0.1"
	node.IPv6 = "none"
	node.DERPPort = d.Port
	return func() *tailcfg.DERPRegion {
		n := node
		return &tailcfg.DERPRegion{RegionID: 900, RegionCode: "cderp", RegionName: "C DERP", Nodes: []*tailcfg.DERPNode{&n}}
	}
}

func TestRegionClientTLS(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true, NoSTUN: true})
	if d.CertSHA256 == "" {
		t.Fatalf("derpd did not log sha256-raw:<hex> for its generated cert")
	}
	connect := func(t *testing.T, node tailcfg.DERPNode) (*derphttp.Client, error) {
		c := derphttp.NewRegionClient(key.NewNode(), t.Logf, netmonStatic(), regionFor(d, node))
		t.Cleanup(func() { c.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return c, c.Connect(ctx)
	}
	cases := []struct {
		name string
		node tailcfg.DERPNode
	}{
		{"sha256-raw pin", tailcfg.DERPNode{CertName: "sha256-raw:" + d.CertSHA256}},
		{"InsecureForTests", tailcfg.DERPNode{InsecureForTests: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := connect(t, tc.node)
			if err != nil {
				t.Fatalf("Connect: %v", err)
			}
			m := startRecv(t, tc.name, c)
			m.expectServerInfo(t)
			if c.ServerPublicKey() != d.ServerKey {
				t.Fatalf("server key %v, want %v", c.ServerPublicKey(), d.ServerKey)
			}
			cs, ok := c.TLSConnectionState()
			if !ok {
				t.Fatal("no TLS state")
			}
			checkTLSState(t, d, tc.name, cs)
			// Round trip through the server.
			if err := c.Send(c.SelfPublicKey(), []byte("pinned")); err != nil {
				t.Fatal(err)
			}
			m.expectPacket(t, c.SelfPublicKey(), []byte("pinned"))
		})
	}
	t.Run("wrong pin rejected", func(t *testing.T) {
		_, err := connect(t, tailcfg.DERPNode{CertName: "sha256-raw:" + strings.Repeat("ab", 32)})
		if err == nil {
			t.Fatal("Connect with a wrong sha256-raw pin succeeded")
		}
	})
	t.Run("system roots only rejected", func(t *testing.T) {
		// Without trust, a self-signed cert must not verify (sanity check
		// that the passing cases above really verified something).
		_, err := connect(t, tailcfg.DERPNode{})
		if err == nil {
			t.Fatal("Connect to a self-signed server without any trust configuration succeeded")
		}
	})
}

// TestTLSChainStable: the served chain (leaf + meta cert) must not grow or
// change across many handshakes, and fast start must keep working.
func TestTLSChainStable(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true, NoSTUN: true})
	for i := 0; i < 25; i++ {
		nc, err := net.DialTimeout("tcp", d.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(nc, d.tlsClientConfig())
		tc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("handshake %d: %v", i, err)
		}
		cs := tc.ConnectionState()
		checkTLSState(t, d, "handshake", &cs)
		tc.Close()
		if t.Failed() {
			t.Fatalf("failed at handshake %d", i)
		}
	}
	// TLS 1.2 handshakes are offered too (minimum version 1.2).
	nc, err := net.DialTimeout("tcp", d.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	cfg := d.tlsClientConfig()
	cfg.MaxVersion = tls.VersionTLS12
	tc := tls.Client(nc, cfg)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS 1.2 handshake: %v", err)
	}
	// TLS 1.1 and below are refused.
	nc2, err := net.DialTimeout("tcp", d.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	cfg = d.tlsClientConfig()
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	tc2 := tls.Client(nc2, cfg)
	tc2.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc2.Handshake(); err == nil {
		t.Errorf("TLS 1.1 handshake succeeded; want minimum TLS 1.2")
	}
	// Several derphttp clients in a row all use fast start.
	for i := 0; i < 5; i++ {
		c := d.newClient(t, "fs", key.NewNode())
		checkFastStartTLS(t, d, "fs", c)
		m := startRecv(t, "fs", c)
		m.expectServerInfo(t)
		c.Close()
	}
}
