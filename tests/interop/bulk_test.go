package interop

// Port of prober TestRunDerpProbeNodePair: 100,000,000 bytes between two
// clients with at most 30 packets in flight, delivered complete and in order.

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"tailscale.com/derp"
	"tailscale.com/types/key"
)

// TestBulkTransferRepeated: 10 MB transfers on fresh connections, several
// times over plain HTTP and TLS, to catch intermittent stalls at the end of
// a burst (a last frame left unflushed until more traffic comes).
func TestBulkTransferRepeated(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		d := startDerpd(t, derpdOpts{TLS: useTLS, NoSTUN: true})
		failures := 0
		for i := 0; i < 8 && failures < 2; i++ { // stop after 2 failures per mode
			name := fmt.Sprintf("%s/%d", map[bool]string{false: "http", true: "tls"}[useTLS], i)
			if !t.Run(name, func(t *testing.T) {
				runBulk(t, d, 10_000_000, derp.MaxPacketSize, 30, 5*time.Second)
			}) {
				failures++
			}
		}
	}
}

func TestBulkTransferHTTP(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	runBulk(t, d, 100_000_000, derp.MaxPacketSize, 30, 120*time.Second)
}

func TestBulkTransferTLS(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true, NoSTUN: true})
	runBulk(t, d, 100_000_000, derp.MaxPacketSize, 30, 120*time.Second)
}

// TestBulkTransferSmallPackets: WireGuard-sized packets (1,200 B), 10 MB.
func TestBulkTransferSmallPackets(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	runBulk(t, d, 10_000_000, 1200, 30, 60*time.Second)
}

// runBulk sends size bytes in packets of pktSize from one derphttp client to
// another, keeping at most window packets in flight (the receiver's
// progress opens the window, like the prober's semaphore). Each packet
// carries its sequence number; contents are checked.
func runBulk(t *testing.T, d *derpd, size, pktSize, window int, limit time.Duration) {
	runBulkBetween(t, d, d, size, pktSize, window, limit)
}

const routeProbe = "route probe"

// runBulkBetween is runBulk with the sender on node df and the receiver on
// node dt (the same node, or two nodes of a meshed region).
func runBulkBetween(t *testing.T, df, dt *derpd, size, pktSize, window int, limit time.Duration) {
	d := df
	fromKey, toKey := key.NewNode(), key.NewNode()
	from := df.newClient(t, "from", fromKey)
	fm := startRecv(t, "from", from)
	fm.expectServerInfo(t)
	to := dt.newClient(t, "to", toKey)
	// The receiver reads directly (no channel) for speed; first ServerInfo.
	if m, err := to.Recv(); err != nil {
		t.Fatal(err)
	} else if _, ok := m.(derp.ServerInfoMessage); !ok {
		t.Fatalf("to: first message %T, want ServerInfo", m)
	}
	if df != dt {
		// Across a mesh the sender's node learns the receiver's key
		// asynchronously: probe until one arrives (a window of lost
		// packets would stall the transfer). Late probes are skipped.
		got := make(chan error, 1)
		go func() {
			for {
				m, err := to.Recv()
				if err != nil {
					got <- err
					return
				}
				if rp, ok := m.(derp.ReceivedPacket); ok && string(rp.Data) == routeProbe {
					got <- nil
					return
				}
			}
		}()
		deadline := time.Now().Add(15 * time.Second)
	probe:
		for {
			if err := from.Send(toKey.Public(), []byte(routeProbe)); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-got:
				if err != nil {
					t.Fatal(err)
				}
				break probe
			case <-time.After(100 * time.Millisecond):
				if time.Now().After(deadline) {
					t.Fatalf("%s; no route from the sender's node to the receiver's within 15s", d.packetStats(t))
				}
			}
		}
	}

	// A pool of random chunks; packet i = seq(8) || pool[i%len][8:n].
	const poolN = 61
	pool := make([][]byte, poolN)
	for i := range pool {
		pool[i] = make([]byte, pktSize)
		rand.Read(pool[i])
	}
	npkts := (size + pktSize - 1) / pktSize
	pktLen := func(i int) int {
		if i == npkts-1 && size%pktSize != 0 {
			return size % pktSize
		}
		return pktSize
	}

	credits := make(chan struct{}, window)
	for i := 0; i < window; i++ {
		credits <- struct{}{}
	}
	done := make(chan struct{})
	sendErr := make(chan error, 1)
	start := time.Now()
	go func() {
		buf := make([]byte, pktSize)
		for i := 0; i < npkts; i++ {
			select {
			case <-credits:
			case <-done:
				sendErr <- nil
				return
			}
			n := pktLen(i)
			copy(buf[:n], pool[i%poolN][:n])
			binary.BigEndian.PutUint64(buf[:8], uint64(i))
			if err := from.Send(toKey.Public(), buf[:n]); err != nil {
				sendErr <- fmt.Errorf("sending packet %d: %w", i, err)
				return
			}
		}
		sendErr <- nil
	}()

	type result struct {
		got   int
		bytes int
		err   error
	}
	recvDone := make(chan result, 1)
	var progress atomic.Int64
	go func() {
		var r result
		for r.got < npkts {
			m, err := to.Recv()
			if err != nil {
				r.err = fmt.Errorf("recv after %d packets: %w", r.got, err)
				recvDone <- r
				return
			}
			rp, ok := m.(derp.ReceivedPacket)
			if !ok || string(rp.Data) == routeProbe {
				continue // KeepAlive etc., a late probe
			}
			if rp.Source != fromKey.Public() {
				r.err = fmt.Errorf("packet %d from %v, want %v", r.got, rp.Source.ShortString(), fromKey.Public().ShortString())
				recvDone <- r
				return
			}
			i := r.got
			if len(rp.Data) < 8 {
				r.err = fmt.Errorf("packet %d: %d bytes", i, len(rp.Data))
				recvDone <- r
				return
			}
			if seq := int(binary.BigEndian.Uint64(rp.Data)); seq != i {
				r.err = fmt.Errorf("got packet seq %d, want %d (lost or reordered)", seq, i)
				recvDone <- r
				return
			}
			n := pktLen(i)
			if len(rp.Data) != n || !bytes.Equal(rp.Data[8:], pool[i%poolN][8:n]) {
				r.err = fmt.Errorf("packet %d: content mismatch (len %d, want %d)", i, len(rp.Data), n)
				recvDone <- r
				return
			}
			r.got++
			r.bytes += n
			progress.Store(int64(r.got))
			credits <- struct{}{}
		}
		recvDone <- r
	}()

	// Wait for the receiver, within limit overall; a window that makes no
	// progress for stallLimit will never recover (the missing packet was
	// dropped or is stuck in derpd), so fail early with the counters.
	const stallLimit = 15 * time.Second
	overall := time.NewTimer(limit)
	defer overall.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	lastProgress, lastChange := int64(-1), time.Now()
	defer close(done)
	for {
		select {
		case r := <-recvDone:
			if r.err != nil {
				t.Fatalf("after %v: %v", time.Since(start), r.err)
			}
			if r.bytes != size {
				t.Fatalf("received %d bytes, want %d", r.bytes, size)
			}
			el := time.Since(start)
			t.Logf("%d bytes in %d packets of %d B (window %d) in %v: %.1f MB/s", size, npkts, pktSize, window, el, float64(size)/el.Seconds()/1e6)
			fm.expectNothing(t, 10*time.Millisecond)
			return
		case err := <-sendErr:
			if err != nil {
				t.Fatal(err)
			}
		case <-tick.C:
			if p := progress.Load(); p != lastProgress {
				lastProgress, lastChange = p, time.Now()
			} else if time.Since(lastChange) > stallLimit && stallLimit < limit {
				t.Fatalf("%s; stalled: %d of %d packets arrived, none in the last %v (with <=%d in flight a missing packet stalls the window: derpd dropped it or never wrote it)", d.packetStats(t), p, npkts, stallLimit, window)
			}
		case <-overall.C:
			t.Fatalf("%s; timeout after %v: transfer of %d bytes did not complete, %d of %d packets received", d.packetStats(t), limit, size, progress.Load(), npkts)
		}
	}
}
