package interop

// Duplicate connections for one key (derpserver TestServerDupClients, black
// box; PROTOCOL.md 5.3): both stay open, the most recent sender is active,
// PeerPresent per connection, PeerGone only for the last one.

import (
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/types/key"
)

func TestDuplicateKeys(t *testing.T) {
	d := startDerpd(t, derpdOpts{Mesh: true, NoSTUN: true})

	wKey := key.NewNode()
	w := d.newRawClient(t, wKey, derp.MeshKey(d.MeshKey))
	wm := startRecv(t, "watcher", w)
	wm.expectServerInfo(t)
	if err := w.WatchConnectionChanges(); err != nil {
		t.Fatal(err)
	}
	wm.expectPresent(t, wKey.Public())

	sKey := key.NewNode()
	s := d.newClient(t, "sender", sKey)
	sm := startRecv(t, "sender", s)
	sm.expectServerInfo(t)
	wm.expectPresent(t, sKey.Public())

	kKey := key.NewNode()
	k := kKey.Public()
	c1 := d.newRawClient(t, kKey)
	m1 := startRecv(t, "conn1", c1)
	m1.expectServerInfo(t)
	checkPresent(t, wm.expectPresent(t, k), k, derp.PeerPresentIsRegular, localAddrPort(t, c1.rc.LocalAddr()))

	c2 := d.newRawClient(t, kKey)
	m2 := startRecv(t, "conn2", c2)
	m2.expectServerInfo(t)
	// PeerPresent again for the second connection of the same key.
	checkPresent(t, wm.expectPresent(t, k), k, derp.PeerPresentIsRegular, localAddrPort(t, c2.rc.LocalAddr()))
	if v := d.waitMetric(t, 2*time.Second, func(v float64) bool { return v == 2 }, "derp_current_dup_client_conns"); v != 2 {
		t.Errorf("derp_current_dup_client_conns = %v, want 2", v)
	}

	send := func(data string) {
		t.Helper()
		if err := s.Send(k, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	// ping makes a connection the most recent sender and proves it is open.
	ping := func(c *rawClient, m *msgs, b byte) {
		t.Helper()
		if err := c.SendPing([8]byte{b}); err != nil {
			t.Fatal(err)
		}
		msg := m.next(t, 5*time.Second)
		if msg != (derp.PongMessage{b}) {
			t.Fatalf("%s: got %s, want Pong %d (connection must stay open)", m.name, describe(msg), b)
		}
	}

	// The newest connection is active.
	send("p1")
	m2.expectPacket(t, sKey.Public(), []byte("p1"))
	m1.expectNothing(t, 200*time.Millisecond)

	// The old one stays open; once it sends a frame it becomes active.
	ping(c1, m1, 1)
	send("p2")
	m1.expectPacket(t, sKey.Public(), []byte("p2"))
	m2.expectNothing(t, 200*time.Millisecond)

	// And back.
	ping(c2, m2, 2)
	send("p3")
	m2.expectPacket(t, sKey.Public(), []byte("p3"))
	m1.expectNothing(t, 200*time.Millisecond)

	// conn2 sends to the sender (so the sender is subscribed to K's
	// departure).
	if err := c2.Send(sKey.Public(), []byte("from k")); err != nil {
		t.Fatal(err)
	}
	sm.expectPacket(t, k, []byte("from k"))

	// Closing conn2: conn1 takes over; K is still here, so no PeerGone to
	// the sender nor to the watcher.
	c2.rc.Close()
	m2.expectClosed(t, 5*time.Second)
	if v := d.waitMetric(t, 3*time.Second, func(v float64) bool { return v == 0 }, "derp_current_dup_client_conns"); v != 0 {
		t.Errorf("derp_current_dup_client_conns = %v after one of two closed, want 0", v)
	}
	send("p4")
	m1.expectPacket(t, sKey.Public(), []byte("p4"))
	sm.expectNothing(t, 200*time.Millisecond)
	wm.expectNothing(t, 10*time.Millisecond)

	// Closing the last connection: PeerGone(Disconnected) to the sender and
	// to the watcher, once.
	c1.rc.Close()
	sm.expectPeerGone(t, k, derp.PeerGoneReasonDisconnected)
	wm.expectPeerGone(t, k, derp.PeerGoneReasonDisconnected)
	sm.expectNothing(t, 300*time.Millisecond)
	wm.expectNothing(t, 10*time.Millisecond)
}
