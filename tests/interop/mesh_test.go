package interop

// Port of derp TestWatch plus the mesh-only frames (ForwardPacket, ClosePeer)
// and the mesh key privilege checks (derpserver TestIsMeshPeer, black box).

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/types/key"
)

// presence collects PeerPresent messages for a set of keys.
type presence map[key.NodePublic]derp.PeerPresentMessage

// expectPresent reads messages until PeerPresent has been seen for each key
// in want (any order), failing on any other message. It returns what it saw.
func (m *msgs) expectPresent(t *testing.T, want ...key.NodePublic) presence {
	t.Helper()
	got := presence{}
	need := map[key.NodePublic]bool{}
	for _, k := range want {
		need[k] = true
	}
	for len(need) > 0 {
		msg, err := m.nextErr(5 * time.Second)
		if err != nil {
			var missing []string
			for k := range need {
				missing = append(missing, k.ShortString())
			}
			t.Fatalf("%s: waiting for PeerPresent of %v: %v (seen: %v)", m.name, missing, err, got)
		}
		pp, ok := msg.(derp.PeerPresentMessage)
		if !ok {
			t.Fatalf("%s: got %s, want PeerPresent", m.name, describe(msg))
		}
		if !need[pp.Key] {
			if _, dup := got[pp.Key]; dup {
				t.Fatalf("%s: duplicate PeerPresent for %v", m.name, pp.Key.ShortString())
			}
			t.Fatalf("%s: unexpected PeerPresent for %v (flags %#x)", m.name, pp.Key.ShortString(), pp.Flags)
		}
		delete(need, pp.Key)
		got[pp.Key] = pp
	}
	return got
}

func checkPresent(t *testing.T, p presence, k key.NodePublic, flags derp.PeerPresentFlags, addr netip.AddrPort) {
	t.Helper()
	pp, ok := p[k]
	if !ok {
		t.Fatalf("no PeerPresent for %v", k.ShortString())
	}
	if pp.Flags != flags {
		t.Errorf("PeerPresent(%v).Flags = %#x, want %#x", k.ShortString(), pp.Flags, flags)
	}
	if addr.IsValid() && pp.IPPort != addr {
		t.Errorf("PeerPresent(%v).IPPort = %v, want %v (the client's address as the server sees it)", k.ShortString(), pp.IPPort, addr)
	}
}

func TestWatch(t *testing.T) {
	d := startDerpd(t, derpdOpts{Mesh: true, NoSTUN: true})

	// Two clients before the watcher: a regular one and a prober.
	aKey, pKey := key.NewNode(), key.NewNode()
	a := d.newClient(t, "a", aKey)
	am := startRecv(t, "a", a)
	am.expectServerInfo(t)
	p := d.newClient(t, "prober", pKey, withProber())
	pm := startRecv(t, "prober", p)
	pm.expectServerInfo(t)
	aAddr, err := a.LocalAddr()
	if err != nil {
		t.Fatal(err)
	}

	// Raw mesh-keyed watcher.
	wKey := key.NewNode()
	w := d.newRawClient(t, wKey, derp.MeshKey(d.MeshKey))
	wm := startRecv(t, "watcher", w)
	wm.expectServerInfo(t)
	if err := w.WatchConnectionChanges(); err != nil {
		t.Fatal(err)
	}
	got := wm.expectPresent(t, aKey.Public(), pKey.Public(), wKey.Public())
	checkPresent(t, got, aKey.Public(), derp.PeerPresentIsRegular, aAddr)
	checkPresent(t, got, pKey.Public(), derp.PeerPresentIsProber, netip.AddrPort{})
	checkPresent(t, got, wKey.Public(), derp.PeerPresentIsMeshPeer, localAddrPort(t, w.rc.LocalAddr()))
	wm.expectNothing(t, 300*time.Millisecond)
	if v := d.waitMetric(t, 2*time.Second, func(v float64) bool { return v == 1 }, "derp_watchers"); v != 1 {
		t.Errorf("derp_watchers = %v, want 1", v)
	}

	// Incremental: a new client comes and goes.
	bKey := key.NewNode()
	b := d.newClient(t, "b", bKey)
	bm := startRecv(t, "b", b)
	bm.expectServerInfo(t)
	bAddr, _ := b.LocalAddr()
	got = wm.expectPresent(t, bKey.Public())
	checkPresent(t, got, bKey.Public(), derp.PeerPresentIsRegular, bAddr)
	b.Close()
	wm.expectPeerGone(t, bKey.Public(), derp.PeerGoneReasonDisconnected)
	wm.expectNothing(t, 300*time.Millisecond)

	// A second watcher through derphttp (MeshKey + WatchConnectionChanges,
	// as derper's mesh client does: WatchConns pipelined before ServerInfo).
	w2Key := key.NewNode()
	w2 := d.newClient(t, "watcher2", w2Key, withMeshKey(d.MeshKey), withWatch())
	w2m := startRecv(t, "watcher2", w2)
	w2m.expectServerInfo(t)
	got = w2m.expectPresent(t, aKey.Public(), pKey.Public(), wKey.Public(), w2Key.Public())
	checkPresent(t, got, aKey.Public(), derp.PeerPresentIsRegular, aAddr)
	checkPresent(t, got, wKey.Public(), derp.PeerPresentIsMeshPeer, netip.AddrPort{})
	checkPresent(t, got, w2Key.Public(), derp.PeerPresentIsMeshPeer, netip.AddrPort{})
	got = wm.expectPresent(t, w2Key.Public())
	checkPresent(t, got, w2Key.Public(), derp.PeerPresentIsMeshPeer, netip.AddrPort{})
	if v := d.waitMetric(t, 2*time.Second, func(v float64) bool { return v == 2 }, "derp_watchers"); v != 2 {
		t.Errorf("derp_watchers = %v, want 2", v)
	}

	// Both watchers see a departure.
	p.Close()
	wm.expectPeerGone(t, pKey.Public(), derp.PeerGoneReasonDisconnected)
	w2m.expectPeerGone(t, pKey.Public(), derp.PeerGoneReasonDisconnected)

	// A watcher that leaves is reported to the other one, and no longer counted.
	w2.Close()
	wm.expectPeerGone(t, w2Key.Public(), derp.PeerGoneReasonDisconnected)
	if v := d.waitMetric(t, 2*time.Second, func(v float64) bool { return v == 1 }, "derp_watchers"); v != 1 {
		t.Errorf("derp_watchers = %v after a watcher left, want 1", v)
	}
	wm.expectNothing(t, 300*time.Millisecond)
	am.expectNothing(t, 10*time.Millisecond)
}

// TestMeshForward: ForwardPacket and ClosePeer from a mesh-keyed client.
func TestMeshForward(t *testing.T) {
	d := startDerpd(t, derpdOpts{Mesh: true, NoSTUN: true})

	bKey := key.NewNode()
	b := d.newClient(t, "b", bKey)
	bm := startRecv(t, "b", b)
	bm.expectServerInfo(t)

	mKey := key.NewNode()
	m := d.newRawClient(t, mKey, derp.MeshKey(d.MeshKey))
	mm := startRecv(t, "mesh", m)
	mm.expectServerInfo(t)

	// ForwardPacket delivers to the local client with the original source.
	src := key.NewNode().Public()
	for i := 0; i < 3; i++ {
		pkt := []byte(fmt.Sprintf("forwarded %d", i))
		if err := m.ForwardPacket(src, bKey.Public(), pkt); err != nil {
			t.Fatal(err)
		}
		bm.expectPacket(t, src, pkt)
	}
	mm.expectNothing(t, 100*time.Millisecond)

	// Forward to an unknown key: non-disco dropped silently as
	// unknown_dest_on_fwd; disco answered with PeerGone(NotHere) on the mesh
	// connection.
	vz := d.varz(t)
	other0 := mustMetric(t, vz, "derp_packets_dropped", "reason", "unknown_dest_on_fwd", "kind", "other")
	disco0 := mustMetric(t, vz, "derp_packets_dropped", "reason", "unknown_dest_on_fwd", "kind", "disco")
	unknown := key.NewNode().Public()
	if err := m.ForwardPacket(src, unknown, []byte("nobody home")); err != nil {
		t.Fatal(err)
	}
	mm.expectNothing(t, 300*time.Millisecond)
	if err := m.ForwardPacket(src, unknown, discoPacket(8)); err != nil {
		t.Fatal(err)
	}
	mm.expectPeerGone(t, unknown, derp.PeerGoneReasonNotHere)
	vz = d.varz(t)
	if got := mustMetric(t, vz, "derp_packets_dropped", "reason", "unknown_dest_on_fwd", "kind", "other") - other0; got != 1 {
		t.Errorf(`derp_packets_dropped{reason="unknown_dest_on_fwd",kind="other"} grew by %v, want 1`, got)
	}
	if got := mustMetric(t, vz, "derp_packets_dropped", "reason", "unknown_dest_on_fwd", "kind", "disco") - disco0; got != 1 {
		t.Errorf(`derp_packets_dropped{reason="unknown_dest_on_fwd",kind="disco"} grew by %v, want 1`, got)
	}

	// ClosePeer of an unknown key: nothing happens, the mesh conn stays up.
	if err := m.ClosePeer(unknown); err != nil {
		t.Fatal(err)
	}
	if err := m.SendPing([8]byte{7}); err != nil {
		t.Fatal(err)
	}
	if msg := mm.next(t, 5*time.Second); msg != (derp.PongMessage{7}) {
		t.Fatalf("mesh: got %s after ClosePeer(unknown), want Pong", describe(msg))
	}

	// ClosePeer closes that key's connection.
	if err := m.ClosePeer(bKey.Public()); err != nil {
		t.Fatal(err)
	}
	bm.expectClosed(t, 5*time.Second)
	mm.expectNothing(t, 200*time.Millisecond)
	if err := m.SendPing([8]byte{8}); err != nil {
		t.Fatal(err)
	}
	if msg := mm.next(t, 5*time.Second); msg != (derp.PongMessage{8}) {
		t.Fatalf("mesh: got %s after ClosePeer, want Pong (the mesh conn must stay open)", describe(msg))
	}
}

// TestMeshKeyWrong: a well-formed but wrong mesh key (or none) makes a
// regular client; the mesh-only frames then close its connection.
func TestMeshKeyWrong(t *testing.T) {
	d := startDerpd(t, derpdOpts{Mesh: true, NoSTUN: true})
	var raw [32]byte
	rand.Read(raw[:])
	wrong, err := key.ParseDERPMesh(hex.EncodeToString(raw[:]))
	if err != nil {
		t.Fatal(err)
	}
	victimKey := key.NewNode()
	victim := d.newClient(t, "victim", victimKey)
	vm := startRecv(t, "victim", victim)
	vm.expectServerInfo(t)

	for _, tc := range []struct {
		name string
		opts []derp.ClientOpt
	}{
		{"wrong key", []derp.ClientOpt{derp.MeshKey(wrong)}},
		{"no key", nil},
	} {
		t.Run(tc.name+"/admitted as regular", func(t *testing.T) {
			k := key.NewNode()
			c := d.newRawClient(t, k, tc.opts...)
			m := startRecv(t, "client", c)
			m.expectServerInfo(t)
			if err := c.Send(victimKey.Public(), []byte("regular")); err != nil {
				t.Fatal(err)
			}
			vm.expectPacket(t, k.Public(), []byte("regular"))
			// victim received from k, so k leaving is reported to it.
			c.rc.Close()
			vm.expectPeerGone(t, k.Public(), derp.PeerGoneReasonDisconnected)
		})
		t.Run(tc.name+"/WatchConns", func(t *testing.T) {
			c := d.newRawClient(t, key.NewNode(), tc.opts...)
			m := startRecv(t, "client", c)
			m.expectServerInfo(t)
			if err := c.WatchConnectionChanges(); err != nil {
				t.Fatal(err)
			}
			for _, msg := range m.expectClosed(t, 5*time.Second) {
				if _, ok := msg.(derp.PeerPresentMessage); ok {
					t.Errorf("non-mesh client got %s after WatchConns", describe(msg))
				}
			}
		})
		t.Run(tc.name+"/ForwardPacket", func(t *testing.T) {
			c := d.newRawClient(t, key.NewNode(), tc.opts...)
			m := startRecv(t, "client", c)
			m.expectServerInfo(t)
			if err := c.ForwardPacket(key.NewNode().Public(), victimKey.Public(), []byte("spoofed")); err != nil {
				t.Fatal(err)
			}
			m.expectClosed(t, 5*time.Second)
			vm.expectNothing(t, 200*time.Millisecond)
		})
		t.Run(tc.name+"/ClosePeer", func(t *testing.T) {
			c := d.newRawClient(t, key.NewNode(), tc.opts...)
			m := startRecv(t, "client", c)
			m.expectServerInfo(t)
			if err := c.ClosePeer(victimKey.Public()); err != nil {
				t.Fatal(err)
			}
			m.expectClosed(t, 5*time.Second)
		})
	}
	// The victim survived all of it.
	if err := victim.Send(victimKey.Public(), []byte("alive")); err != nil {
		t.Fatal(err)
	}
	vm.expectPacket(t, victimKey.Public(), []byte("alive"))
	if v := mustMetric(t, d.varz(t), "derp_watchers"); v != 0 {
		t.Errorf("derp_watchers = %v, want 0 (no one had the right mesh key)", v)
	}
}

// TestMeshKeyWithoutServerKey: when derpd has no mesh key, a client's mesh
// key grants nothing.
func TestMeshKeyWithoutServerKey(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	var raw [32]byte
	rand.Read(raw[:])
	mk, _ := key.ParseDERPMesh(hex.EncodeToString(raw[:]))
	c := d.newRawClient(t, key.NewNode(), derp.MeshKey(mk))
	m := startRecv(t, "client", c)
	m.expectServerInfo(t)
	if err := c.WatchConnectionChanges(); err != nil {
		t.Fatal(err)
	}
	m.expectClosed(t, 5*time.Second)
}
