package interop

// derphttp TestPing, derp TestServerRepliesToPing, and malformed-frame cases
// over the raw derp client.

import (
	"context"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/types/key"
)

func TestPing(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})

	t.Run("derphttp", func(t *testing.T) {
		c := d.newClient(t, "pinger", key.NewNode())
		// Client.Ping needs a concurrent Recv loop (it consumes the Pong).
		m := startRecv(t, "pinger", c)
		m.expectServerInfo(t)
		g0 := d.varz(t)
		for i := 0; i < 3; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := c.Ping(ctx)
			cancel()
			if err != nil {
				t.Fatalf("Ping %d: %v", i, err)
			}
		}
		g1 := d.varz(t)
		if got := mustMetric(t, g1, "derp_got_ping") - mustMetric(t, g0, "derp_got_ping"); got != 3 {
			t.Errorf("derp_got_ping grew by %v, want 3", got)
		}
		if got := mustMetric(t, g1, "derp_sent_pong") - mustMetric(t, g0, "derp_sent_pong"); got != 3 {
			t.Errorf("derp_sent_pong grew by %v, want 3", got)
		}
	})

	t.Run("raw", func(t *testing.T) {
		c := d.newRawClient(t, key.NewNode())
		m := startRecv(t, "raw", c)
		m.expectServerInfo(t)
		data := [8]byte{0xde, 0xad, 0xbe, 0xef, 0, 1, 2, 3}
		if err := c.SendPing(data); err != nil {
			t.Fatal(err)
		}
		msg := m.next(t, 5*time.Second)
		if pm, ok := msg.(derp.PongMessage); !ok || pm != derp.PongMessage(data) {
			t.Fatalf("got %s, want Pong % x", describe(msg), data)
		}
		// A longer ping (server accepts up to 1000 bytes) is answered with
		// its first 8 bytes.
		long := make([]byte, 1000)
		for i := range long {
			long[i] = byte(i * 7)
		}
		c.writeFrame(t, derp.FramePing, long)
		msg = m.next(t, 5*time.Second)
		if pm, ok := msg.(derp.PongMessage); !ok || pm != derp.PongMessage(long[:8]) {
			t.Fatalf("got %s, want Pong % x", describe(msg), long[:8])
		}
		// Unknown frame types are skipped; the connection keeps working.
		c.writeFrame(t, derp.FrameType(0x30), make([]byte, 300))
		c.writeFrame(t, derp.FrameType(0x0c), nil)
		// A second ClientInfo after the handshake is just an unknown frame.
		c.writeFrame(t, derp.FrameClientInfo, make([]byte, 100))
		// A Pong from a client is discarded (no reply).
		c.writeFrame(t, derp.FramePong, make([]byte, 8))
		if err := c.SendPing([8]byte{9, 9, 9}); err != nil {
			t.Fatal(err)
		}
		msg = m.next(t, 5*time.Second)
		if pm, ok := msg.(derp.PongMessage); !ok || pm != (derp.PongMessage{9, 9, 9}) {
			t.Fatalf("after unknown frames: got %s, want Pong 0909090000000000", describe(msg))
		}
		m.expectNothing(t, 200*time.Millisecond)
	})
}

// TestMalformedFrames checks that frames with invalid lengths close the
// connection (PROTOCOL.md 2.2) and that the daemon keeps serving others.
func TestMalformedFrames(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	cases := []struct {
		name    string
		typ     derp.FrameType
		payload []byte
	}{
		{"ping 7 bytes", derp.FramePing, make([]byte, 7)},
		{"ping 1001 bytes", derp.FramePing, make([]byte, 1001)},
		{"send packet shorter than key", derp.FrameSendPacket, make([]byte, 31)},
		{"send packet over 64KiB", derp.FrameSendPacket, make([]byte, 32+derp.MaxPacketSize+1)},
		{"note preferred 2 bytes", derp.FrameNotePreferred, []byte{1, 1}},
		{"note preferred empty", derp.FrameNotePreferred, nil},
		{"forward packet from non-mesh client", derp.FrameForwardPacket, make([]byte, 64+10)},
		{"watch conns from non-mesh client", derp.FrameWatchConns, nil},
		{"close peer from non-mesh client", derp.FrameClosePeer, make([]byte, 32)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := d.newRawClient(t, key.NewNode())
			m := startRecv(t, "raw", c)
			m.expectServerInfo(t)
			c.writeFrame(t, tc.typ, tc.payload)
			got := m.expectClosed(t, 5*time.Second)
			for _, msg := range got {
				if _, ok := msg.(derp.PongMessage); ok {
					t.Errorf("server answered a malformed ping with a pong")
				}
			}
		})
	}
	// The daemon is still fine.
	d.requireAlive(t)
	c := d.newRawClient(t, key.NewNode())
	m := startRecv(t, "after", c)
	m.expectServerInfo(t)
	if err := c.SendPing([8]byte{1}); err != nil {
		t.Fatal(err)
	}
	if _, ok := m.next(t, 5*time.Second).(derp.PongMessage); !ok {
		t.Fatal("no pong after malformed-frame cases")
	}
}
