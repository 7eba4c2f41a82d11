package interop

// Port of derp TestSendFreeze: a receiver that stops reading must not stall
// traffic between other clients (head-of-line isolation).

import (
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/types/key"
)

func TestSendFreeze(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})

	aliceKey, bobKey, cathyKey := key.NewNode(), key.NewNode(), key.NewNode()
	alice := d.newClient(t, "alice", aliceKey)
	am := startRecv(t, "alice", alice)
	am.expectServerInfo(t)
	bob := d.newClient(t, "bob", bobKey)
	bm := startRecv(t, "bob", bob)
	bm.expectServerInfo(t)

	// cathy: raw TCP + handshake, reads ServerInfo (so she is registered)
	// and then never reads again.
	cathy := d.newRawClient(t, cathyKey)
	si, err := cathy.Recv()
	if err != nil {
		t.Fatalf("cathy: first Recv: %v", err)
	}
	if _, ok := si.(derp.ServerInfoMessage); !ok {
		t.Fatalf("cathy: first message %T, want ServerInfo", si)
	}

	// Sanity: cathy is reachable (one small packet; she won't read it).
	if err := alice.Send(cathyKey.Public(), []byte("hi cathy")); err != nil {
		t.Fatal(err)
	}
	drops0 := sumMetric(d.varz(t), "derp_packets_dropped")

	// Flood cathy with 64 KiB packets from alice for ~3 s while alice also
	// sends small numbered packets to bob every 10 ms.
	const (
		bobPackets = 300
		interval   = 10 * time.Millisecond
	)
	var floodSent atomic.Int64
	floodDone := make(chan error, 1)
	stopFlood := make(chan struct{})
	go func() {
		big := make([]byte, derp.MaxPacketSize)
		for {
			select {
			case <-stopFlood:
				floodDone <- nil
				return
			default:
			}
			if err := alice.Send(cathyKey.Public(), big); err != nil {
				floodDone <- fmt.Errorf("flood send %d: %w", floodSent.Load(), err)
				return
			}
			floodSent.Add(1)
			time.Sleep(3 * time.Millisecond)
		}
	}()

	type arrival struct {
		seq int
		at  time.Time
	}
	arrivals := make(chan arrival, bobPackets)
	bobErr := make(chan error, 1)
	go func() {
		for got := 0; got < bobPackets; {
			msg, err := bm.nextErr(15 * time.Second)
			if err != nil {
				bobErr <- fmt.Errorf("bob after %d packets: %w", got, err)
				return
			}
			rp, ok := msg.(derp.ReceivedPacket)
			if !ok {
				bobErr <- fmt.Errorf("bob got %s, want packets from alice", describe(msg))
				return
			}
			if rp.Source != aliceKey.Public() || len(rp.Data) != 8 {
				bobErr <- fmt.Errorf("bob got unexpected packet %s", describe(msg))
				return
			}
			arrivals <- arrival{int(binary.BigEndian.Uint64(rp.Data)), time.Now()}
			got++
		}
		bobErr <- nil
	}()

	start := time.Now()
	sentAt := make([]time.Time, bobPackets)
	for i := 0; i < bobPackets; i++ {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		sentAt[i] = time.Now()
		if err := alice.Send(bobKey.Public(), b[:]); err != nil {
			t.Fatalf("alice -> bob send %d: %v", i, err)
		}
		time.Sleep(interval)
	}
	sendDur := time.Since(start)
	close(stopFlood)

	select {
	case err := <-bobErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("bob received only %d of %d packets within 10s of the end of sending", len(arrivals), bobPackets)
	}
	close(arrivals)
	var maxLat time.Duration
	next := 0
	for a := range arrivals {
		if a.seq != next {
			t.Fatalf("bob got packet %d, want %d (reordered or lost)", a.seq, next)
		}
		if lat := a.at.Sub(sentAt[a.seq]); lat > maxLat {
			maxLat = lat
		}
		next++
	}
	t.Logf("alice->bob: %d packets in %v, max latency %v; flood to frozen cathy: %d x 64KiB", bobPackets, sendDur, maxLat, floodSent.Load())
	if maxLat > 1500*time.Millisecond {
		t.Errorf("alice->bob max latency %v while cathy was frozen; want < 1.5s (head-of-line blocking?)", maxLat)
	}
	if sendDur > 3*bobPackets*interval {
		t.Errorf("alice's sends took %v (want ~%v): the server stopped reading alice while cathy was frozen", sendDur, bobPackets*interval)
	}
	select {
	case err := <-floodDone:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("alice's flood sends to cathy blocked (server applies backpressure instead of dropping)")
	}
	if n := floodSent.Load(); n < 100 {
		t.Fatalf("only %d flood packets sent to cathy; alice was throttled", n)
	}

	// cathy's queue must have overflowed (or her connection been dropped):
	// derpd counts drops.
	drops := sumMetric(d.varz(t), "derp_packets_dropped") - drops0
	t.Logf("drops during the freeze: %v", drops)
	if drops < 10 {
		t.Errorf("derp_packets_dropped grew by only %v while %d x 64KiB went to a client that never reads; want its queue to overflow", drops, floodSent.Load())
	}

	// alice and bob still work afterwards.
	if err := bob.Send(aliceKey.Public(), []byte("thanks")); err != nil {
		t.Fatal(err)
	}
	am.expectPacket(t, bobKey.Public(), []byte("thanks"))
}
