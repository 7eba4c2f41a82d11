// Command derpload generates the traffic real Tailscale nodes send, for
// make bench: every client is tailscale.com's derphttp client, so each
// packet is one Send, one DERP frame, one write (one TLS record with TLS),
// as from a real node. It measures a server it does not start (derpd or
// the Go derper) by its pid: CPU from /proc/PID/stat, memory from
// /proc/PID/status. Modes:
//
//	relay    PAIRS sender/receiver pairs, WINDOW packets in flight each
//	         (0: as fast as Send returns), SIZE-byte packets, for SECS:
//	         delivered packets/s and server CPU per delivered packet; with
//	         -probe, also the round trip of 100-byte packets between two
//	         other clients meanwhile (p50, p99).
//	idle     N clients connect and stay: server RSS before and after, per
//	         client.
//	accept   N clients connect one after another (CONC at a time) and
//	         close: connections/s and server CPU per connection.
//
// Output is one line of key=value pairs.
package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"tailscale.com/derp"
	"tailscale.com/derp/derphttp"
	"tailscale.com/net/netmon"
	"tailscale.com/types/key"
)

var (
	url    = flag.String("url", "", "DERP URL, http://127.0.0.1:PORT/derp or https://...")
	caFile = flag.String("ca", "", "PEM file the server's certificate must chain to (TLS)")
	mode   = flag.String("mode", "relay", "relay, idle or accept")
	pid    = flag.Int("pid", 0, "server pid to measure")
	pairs  = flag.Int("pairs", 4, "relay: sender/receiver pairs")
	window = flag.Int("window", 32, "relay: packets in flight per pair; 0 floods")
	rate   = flag.Float64("rate", 0, "relay: offer this many packets/s in all, open loop (window ignored)")
	size   = flag.Int("size", 1200, "relay: packet bytes")
	secs   = flag.Float64("secs", 3, "relay: measured seconds (after 0.5 s of warm-up)")
	probe  = flag.Bool("probe", false, "relay: also measure 100-byte round trips")
	n      = flag.Int("n", 1000, "idle, accept: clients")
	conc   = flag.Int("conc", 32, "idle, accept: connects at once")
	label  = flag.String("label", "", "prefix of the output line")
)

var tlsConf *tls.Config

func newClient(ctx context.Context) (*derphttp.Client, key.NodePrivate, error) {
	priv := key.NewNode()
	c, err := derphttp.NewClient(priv, *url, func(string, ...any) {}, netmon.NewStatic())
	if err != nil {
		return nil, priv, err
	}
	if tlsConf != nil {
		c.TLSConfig = tlsConf
	}
	if err := c.Connect(ctx); err != nil {
		c.Close()
		return nil, priv, err
	}
	return c, priv, nil
}

// cpuTicks is the server's user+system time in clock ticks (100 Hz).
func cpuTicks() int64 {
	if *pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", *pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return u + k
}

// rssKB is the server's resident set in KiB.
func rssKB() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", *pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			v, _ := strconv.ParseInt(strings.Fields(l)[1], 10, 64)
			return v
		}
	}
	return 0
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	if *url == "" {
		log.Fatal("derpload: -url is required")
	}
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			log.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tlsConf = &tls.Config{RootCAs: pool}
	}
	switch *mode {
	case "relay":
		relay()
	case "idle":
		idle()
	case "accept":
		accept()
	default:
		log.Fatalf("derpload: unknown -mode %q", *mode)
	}
}

type pair struct {
	src, dst   *derphttp.Client
	dstKey     key.NodePublic
	sent, recv atomic.Int64
	// lost: packets the receiver knows the server dropped. A relay keeps
	// one sender's packets to one receiver in order (it drops, never
	// reorders), so a sequence number that skips ahead means the packets
	// in between are gone, and the window gets them back at once.
	lost atomic.Int64
}

func relay() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ps := make([]*pair, *pairs)
	for i := range ps {
		src, _, err := newClient(ctx)
		if err != nil {
			log.Fatal(err)
		}
		dst, dpriv, err := newClient(ctx)
		if err != nil {
			log.Fatal(err)
		}
		ps[i] = &pair{src: src, dst: dst, dstKey: dpriv.Public()}
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	if *size < 8 {
		log.Fatal("derpload: -size must be at least 8 (a sequence number)")
	}
	for _, p := range ps {
		p := p
		wg.Add(2)
		go func() { // receiver
			defer wg.Done()
			var next uint64
			for !stop.Load() {
				m, err := p.dst.Recv()
				if err != nil {
					return
				}
				if rp, ok := m.(derp.ReceivedPacket); ok {
					if len(rp.Data) >= 8 {
						seq := binary.BigEndian.Uint64(rp.Data)
						if seq > next {
							p.lost.Add(int64(seq - next))
						}
						if seq >= next {
							next = seq + 1
						}
					}
					p.recv.Add(1)
				}
			}
		}()
		go func() { // sender: one Send per packet, as a node
			defer wg.Done()
			last, lastChange := int64(0), time.Now()
			// Open loop: packet k is due at start + k/rate, whatever
			// comes back. Sleeps are coarse (tens of us), so the
			// packets due meanwhile go at once; a sender more than
			// 100 ms behind (Send blocked: the server reads no more)
			// gives up that backlog instead of bursting it.
			var gap time.Duration
			if *rate > 0 {
				gap = time.Duration(float64(time.Second) * float64(*pairs) / *rate)
			}
			next := time.Now()
			pkt := make([]byte, *size)
			var seq uint64
			for !stop.Load() {
				if gap > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					next = next.Add(gap)
					if time.Since(next) > 100*time.Millisecond {
						next = time.Now()
					}
				} else if *window > 0 {
					inflight := p.sent.Load() - p.recv.Load() -
						p.lost.Load()
					if inflight >= int64(*window) {
						// Drops show as gaps (lost). Should the
						// newest packets of a window be lost, no
						// gap shows: after a quiet second (far
						// longer than a CPU quota's throttling)
						// the window starts over.
						if r := p.recv.Load(); r != last {
							last, lastChange = r, time.Now()
						} else if time.Since(lastChange) > time.Second {
							p.sent.Store(p.recv.Load() + p.lost.Load())
							lastChange = time.Now()
						}
						time.Sleep(20 * time.Microsecond)
						continue
					}
				}
				binary.BigEndian.PutUint64(pkt, seq)
				seq++
				if err := p.src.Send(p.dstKey, pkt); err != nil {
					return
				}
				p.sent.Add(1)
			}
		}()
	}
	var rtts []time.Duration
	var probeDone chan struct{}
	if *probe {
		probeDone = make(chan struct{})
		go func() {
			defer close(probeDone)
			rtts = probeRTT(ctx, &stop)
		}()
	}
	time.Sleep(500 * time.Millisecond)
	total := func() (s int64) {
		for _, p := range ps {
			s += p.recv.Load()
		}
		return
	}
	sent := func() (s int64) {
		for _, p := range ps {
			s += p.sent.Load()
		}
		return
	}
	r0, s0, c0, t0 := total(), sent(), cpuTicks(), time.Now()
	time.Sleep(time.Duration(*secs * float64(time.Second)))
	r1, s1, c1, el := total(), sent(), cpuTicks(), time.Since(t0)
	stop.Store(true)
	for _, p := range ps {
		p.src.Close()
		p.dst.Close()
	}
	wg.Wait()
	delivered := r1 - r0
	pps := float64(delivered) / el.Seconds()
	cpu := float64(c1-c0) * 10000 / float64(max(delivered, 1)) // us per packet
	out := fmt.Sprintf("%smode=relay window=%d size=%d pairs=%d delivered_pps=%.0f server_cpu_us_per_pkt=%.3f server_cpu_pct=%.0f",
		*label, *window, *size, *pairs, pps, cpu, float64(c1-c0)/el.Seconds())
	if *rate > 0 {
		out += fmt.Sprintf(" offered_pps=%.0f sent_pps=%.0f", *rate,
			float64(s1-s0)/el.Seconds())
	}
	if probeDone != nil {
		<-probeDone
		if len(rtts) > 0 {
			sort.Slice(rtts, func(i, j int) bool { return rtts[i] < rtts[j] })
			p50 := rtts[len(rtts)/2]
			p99 := rtts[len(rtts)*99/100]
			out += fmt.Sprintf(" rtt_p50_ms=%.3f rtt_p99_ms=%.3f rtt_samples=%d",
				float64(p50.Microseconds())/1000, float64(p99.Microseconds())/1000, len(rtts))
		}
	}
	fmt.Println(out)
}

// probeRTT bounces a 100-byte packet between two clients every 5 ms
// until stop: the round trips seen.
func probeRTT(ctx context.Context, stop *atomic.Bool) []time.Duration {
	a, _, err := newClient(ctx)
	if err != nil {
		log.Fatal(err)
	}
	b, bpriv, err := newClient(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	go func() { // b echoes
		for {
			m, err := b.Recv()
			if err != nil {
				return
			}
			if rp, ok := m.(derp.ReceivedPacket); ok {
				b.Send(rp.Source, rp.Data)
			}
		}
	}()
	got := make(chan []byte, 16)
	go func() {
		for {
			m, err := a.Recv()
			if err != nil {
				close(got)
				return
			}
			if rp, ok := m.(derp.ReceivedPacket); ok {
				got <- append([]byte(nil), rp.Data...)
			}
		}
	}()
	var rtts []time.Duration
	buf := make([]byte, 100)
	for seq := uint64(0); !stop.Load(); seq++ {
		copy(buf, strconv.FormatUint(seq, 10)+"|")
		t := time.Now()
		if err := a.Send(bpriv.Public(), buf); err != nil {
			break
		}
		timer := time.NewTimer(time.Second)
	wait:
		for {
			select {
			case d, ok := <-got:
				if !ok {
					timer.Stop()
					return rtts
				}
				if strings.HasPrefix(string(d), strconv.FormatUint(seq, 10)+"|") {
					rtts = append(rtts, time.Since(t))
					break wait
				}
			case <-timer.C:
				break wait // lost: not counted
			}
		}
		timer.Stop()
		time.Sleep(5 * time.Millisecond)
	}
	return rtts
}

// connectMany connects count clients, conc at a time.
func connectMany(ctx context.Context, count int) ([]*derphttp.Client, error) {
	out := make([]*derphttp.Client, count)
	sem := make(chan struct{}, *conc)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for i := 0; i < count; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, _, err := newClient(ctx)
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			// Read ServerInfo so the server has finished with it.
			c.Recv()
			out[i] = c
		}(i)
	}
	wg.Wait()
	if e, ok := firstErr.Load().(error); ok {
		return out, e
	}
	return out, nil
}

func idle() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	time.Sleep(200 * time.Millisecond)
	before := rssKB()
	cs, err := connectMany(ctx, *n)
	if err != nil {
		log.Fatalf("derpload: connecting %d clients: %v", *n, err)
	}
	time.Sleep(2 * time.Second) // let the server settle (buffers released)
	after := rssKB()
	fmt.Printf("%smode=idle clients=%d rss_before_kb=%d rss_after_kb=%d bytes_per_client=%.0f\n",
		*label, *n, before, after, float64(after-before)*1024/float64(*n))
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
}

func accept() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c0, t0 := cpuTicks(), time.Now()
	cs, err := connectMany(ctx, *n)
	el, c1 := time.Since(t0), cpuTicks()
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Fatalf("derpload: %v", err)
	}
	for _, c := range cs {
		if c != nil {
			c.Close()
		}
	}
	fmt.Printf("%smode=accept clients=%d conns_per_s=%.0f server_cpu_us_per_conn=%.0f\n",
		*label, *n, float64(*n)/el.Seconds(), float64(c1-c0)*10000/float64(*n))
}
