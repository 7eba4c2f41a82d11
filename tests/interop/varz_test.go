package interop

// /debug/varz checked with Prometheus's own text parser
// (github.com/prometheus/common/expfmt, the one the Prometheus server
// uses), after relayed traffic, and compared family by family with the
// real Go derper (tailscale.com v1.102.3) on loopback.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"tailscale.com/derp/derphttp"
	"tailscale.com/types/key"
)

// derpdFamilies is every family derpd exports with TLS on, no admission
// and no admin socket, and its type. The test fails when one is missing,
// has another type, or when /debug/varz has one that is not listed here
// (then list it, with the man page's METRICS section).
var derpdFamilies = map[string]dto.MetricType{
	// derper's names and meanings
	"derp_accepts":                             dto.MetricType_COUNTER,
	"derp_average_queue_duration_ms":           dto.MetricType_GAUGE,
	"derp_buffered_write_frames":               dto.MetricType_HISTOGRAM,
	"derp_bytes_dropped":                       dto.MetricType_COUNTER,
	"derp_bytes_received":                      dto.MetricType_COUNTER,
	"derp_bytes_sent":                          dto.MetricType_COUNTER,
	"derp_clients_local":                       dto.MetricType_GAUGE,
	"derp_clients_remote":                      dto.MetricType_GAUGE,
	"derp_clients_total":                       dto.MetricType_GAUGE,
	"derp_current_connections":                 dto.MetricType_GAUGE,
	"derp_current_dup_client_conns":            dto.MetricType_GAUGE,
	"derp_current_dup_client_keys":             dto.MetricType_GAUGE,
	"derp_current_file_descriptors":            dto.MetricType_GAUGE,
	"derp_current_home_connections":            dto.MetricType_GAUGE,
	"derp_current_notideal_connections":        dto.MetricType_GAUGE,
	"derp_got_ping":                            dto.MetricType_COUNTER,
	"derp_home_moves_in":                       dto.MetricType_COUNTER,
	"derp_home_moves_out":                      dto.MetricType_COUNTER,
	"derp_mesh_update_batch_size":              dto.MetricType_HISTOGRAM,
	"derp_mesh_update_loop_count":              dto.MetricType_HISTOGRAM,
	"derp_multiforwarder_created":              dto.MetricType_COUNTER,
	"derp_multiforwarder_deleted":              dto.MetricType_COUNTER,
	"derp_packet_forwarder_delete_other_value": dto.MetricType_COUNTER,
	"derp_packets_dropped":                     dto.MetricType_COUNTER,
	"derp_packets_forwarded_in":                dto.MetricType_COUNTER,
	"derp_packets_forwarded_out":               dto.MetricType_COUNTER,
	"derp_packets_received":                    dto.MetricType_COUNTER,
	"derp_packets_received_kind":               dto.MetricType_COUNTER,
	"derp_packets_sent":                        dto.MetricType_COUNTER,
	"derp_peer_gone_disconnected_frames":       dto.MetricType_COUNTER,
	"derp_peer_gone_not_here_frames":           dto.MetricType_COUNTER,
	"derp_sclient_write_timeouts":              dto.MetricType_COUNTER,
	"derp_sent_pong":                           dto.MetricType_COUNTER,
	"derp_tcp_rtt":                             dto.MetricType_COUNTER,
	"derp_total_dup_client_conns":              dto.MetricType_COUNTER,
	"derp_unknown_frames":                      dto.MetricType_COUNTER,
	"derp_watchers":                            dto.MetricType_GAUGE,
	"derp_websocket_accepts":                   dto.MetricType_COUNTER,
	"derper_tls_active_version":                dto.MetricType_GAUGE,
	"derper_tls_request_version":               dto.MetricType_COUNTER,
	"node_boot_time_seconds":                   dto.MetricType_GAUGE,
	"process_cpu_seconds_total":                dto.MetricType_COUNTER,
	"process_max_fds":                          dto.MetricType_GAUGE,
	"process_network_receive_bytes_total":      dto.MetricType_COUNTER,
	"process_network_transmit_bytes_total":     dto.MetricType_COUNTER,
	"process_open_fds":                         dto.MetricType_GAUGE,
	"process_resident_memory_bytes":            dto.MetricType_GAUGE,
	"process_start_time_seconds":               dto.MetricType_GAUGE,
	"process_start_unix_time":                  dto.MetricType_UNTYPED,
	"process_virtual_memory_bytes":             dto.MetricType_GAUGE,
	"process_virtual_memory_max_bytes":         dto.MetricType_GAUGE,
	"stun_addrfamily":                          dto.MetricType_COUNTER,
	"stun_requests":                            dto.MetricType_COUNTER,
	"tls_listener_accepted_connections":        dto.MetricType_COUNTER,
	"tls_listener_rejected_connections":        dto.MetricType_COUNTER,
	"uptime_sec":                               dto.MetricType_COUNTER,
	"version":                                  dto.MetricType_GAUGE,
	// derpd's own
	"derpd_accept_errors":          dto.MetricType_COUNTER,
	"derpd_connections_closed":     dto.MetricType_COUNTER,
	"derpd_control_frames_dropped": dto.MetricType_COUNTER,
	"derpd_current_sockets":        dto.MetricType_GAUGE,
	"derpd_http_requests":          dto.MetricType_COUNTER,
	"derpd_log_lines_held_back":    dto.MetricType_COUNTER,
	"derpd_mesh_connects":          dto.MetricType_COUNTER,
	"derpd_mesh_peers":             dto.MetricType_GAUGE,
	"derpd_mesh_reconnects":        dto.MetricType_COUNTER,
	"derpd_mesh_routes":            dto.MetricType_GAUGE,
	"derpd_mesh_routes_refused":    dto.MetricType_COUNTER,
	// bootstrap DNS (derper's names) and the accept limit
	"bootstrap_dns_requests":                   dto.MetricType_COUNTER,
	"bootstrap_dns_published_hits":             dto.MetricType_COUNTER,
	"bootstrap_dns_published_misses":           dto.MetricType_COUNTER,
	"bootstrap_dns_unpublished_hits":           dto.MetricType_COUNTER,
	"bootstrap_dns_unpublished_misses":         dto.MetricType_COUNTER,
	"bootstrap_dns_unpublished_percent_misses": dto.MetricType_COUNTER,
	"bootstrap_dns_queried_domains":            dto.MetricType_COUNTER,
	"derpd_bootstrap_dns_lookup_failures":      dto.MetricType_COUNTER,
	"derpd_bootstrap_dns_refreshes":            dto.MetricType_COUNTER,
	"derpd_accepts_refused":                    dto.MetricType_COUNTER,
	"derpd_pings_ignored":                      dto.MetricType_COUNTER,
	"derpd_stun_rfc5389_requests":              dto.MetricType_COUNTER,
	"derpd_tcp_accepts":                        dto.MetricType_COUNTER,
	"derpd_workers":                            dto.MetricType_GAUGE,
}

// absentInDerpd is every family of derper v1.102.3's default /debug/varz
// (TLS on) that derpd does not export, with the reason. A family of
// derper's in neither list fails TestVarzParityWithDerper.
var absentInDerpd = map[string]string{
	"derp_memstats_sys0":          "Go runtime: memory obtained from the OS at start",
	"go_gc_duration_seconds":      "Go runtime",
	"go_gc_gogc_percent":          "Go runtime",
	"go_gc_gomemlimit_bytes":      "Go runtime",
	"go_goroutines":               "Go runtime",
	"go_info":                     "Go runtime",
	"go_sched_gomaxprocs_threads": "Go runtime",
	"go_sync_mutex_wait_seconds":  "Go runtime",
	"go_threads":                  "Go runtime",
	"go_version":                  "Go runtime",
	"goroutines":                  "Go runtime",
	"memstats_frees":              "Go runtime",
	"memstats_gc_cpu_fraction":    "Go runtime",
	"memstats_heap_alloc":         "Go runtime",
	"memstats_mallocs":            "Go runtime",
	"memstats_num_gc":             "Go runtime",
	"memstats_sys":                "Go runtime",
	"memstats_total_alloc":        "Go runtime",
}

// goRuntimePrefix: derper's go_memstats_* families (one per field).
const goRuntimePrefix = "go_memstats_"

var reTypeLine = regexp.MustCompile(`(?m)^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) `)
var reHelpLine = regexp.MustCompile(`(?m)^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) `)

// scrape GETs url's /debug/varz and returns the body and its parse.
func scrape(t *testing.T, c *http.Client, url string) (string, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := c.Get(url + "/debug/varz")
	if err != nil {
		t.Fatalf("GET %s/debug/varz: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s/debug/varz: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s/debug/varz is not valid Prometheus text: %v\n%s", url, err, body)
	}
	return string(body), fams
}

// value is the sample of family name whose labels include kv.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, kv ...string) float64 {
	t.Helper()
	mf := fams[name]
	if mf == nil {
		t.Fatalf("no family %s", name)
	}
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(kv); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == kv[i] && lp.GetValue() == kv[i+1] {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		case dto.MetricType_UNTYPED:
			return m.GetUntyped().GetValue()
		case dto.MetricType_HISTOGRAM:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no sample %s%v", name, kv)
	return 0
}

// checkExposition: every family has HELP and TYPE lines, no series twice.
func checkExposition(t *testing.T, body string, fams map[string]*dto.MetricFamily) {
	t.Helper()
	typed := map[string]bool{}
	for _, m := range reTypeLine.FindAllStringSubmatch(body, -1) {
		typed[m[1]] = true
	}
	helped := map[string]bool{}
	for _, m := range reHelpLine.FindAllStringSubmatch(body, -1) {
		helped[m[1]] = true
	}
	for name, mf := range fams {
		if !typed[name] {
			t.Errorf("family %s has no TYPE line", name)
		}
		if !helped[name] || mf.GetHelp() == "" {
			t.Errorf("family %s has no HELP line", name)
		}
		seen := map[string]bool{}
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(ls)
			k := strings.Join(ls, ",")
			if seen[k] {
				t.Errorf("series %s{%s} twice", name, k)
			}
			seen[k] = true
		}
	}
}

// relayTraffic connects two clients, relays packets both ways and pings.
func relayTraffic(t *testing.T, d *derpd) {
	t.Helper()
	ak, bk := key.NewNode(), key.NewNode()
	a := d.newClient(t, "a", ak)
	b := d.newClient(t, "b", bk)
	am, bm := startRecv(t, "a", a), startRecv(t, "b", b)
	am.expectServerInfo(t)
	bm.expectServerInfo(t)
	for i := 0; i < 20; i++ {
		msg := []byte(fmt.Sprintf("varz %d", i))
		if err := a.Send(bk.Public(), msg); err != nil {
			t.Fatal(err)
		}
		bm.expectPacket(t, ak.Public(), msg)
		if err := b.Send(ak.Public(), msg); err != nil {
			t.Fatal(err)
		}
		am.expectPacket(t, bk.Public(), msg)
	}
	if err := a.SendPing([8]byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
}

func TestVarzExposition(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true})
	relayTraffic(t, d)
	body, fams := scrape(t, d.httpClient(), d.BaseURL())
	checkExposition(t, body, fams)

	for name, typ := range derpdFamilies {
		mf := fams[name]
		if mf == nil {
			t.Errorf("family %s missing", name)
			continue
		}
		if mf.GetType() != typ {
			t.Errorf("family %s: type %v, want %v", name, mf.GetType(), typ)
		}
	}
	for name := range fams {
		if _, ok := derpdFamilies[name]; !ok {
			t.Errorf("family %s is not in derpdFamilies (list it, and in derpd.8)", name)
		}
	}
	if t.Failed() {
		return
	}

	// What the traffic must show.
	ge := func(what string, v, min float64) {
		t.Helper()
		if v < min {
			t.Errorf("%s = %v, want >= %v", what, v, min)
		}
	}
	accepts := value(t, fams, "derp_accepts")
	ge("derp_accepts (two DERP upgrades)", accepts, 2)
	tcp := value(t, fams, "derpd_tcp_accepts", "listener", "main")
	// The scrape itself is a TCP accept but not a DERP upgrade.
	ge("derpd_tcp_accepts{listener=main}", tcp, accepts+1)
	ge("tls_listener_accepted_connections", value(t, fams, "tls_listener_accepted_connections"), tcp)
	ge("derper_tls_request_version{1.3}", value(t, fams, "derper_tls_request_version", "version", "1.3"), 3)
	// The two clients and this scrape are open.
	ge("derper_tls_active_version{1.3}", value(t, fams, "derper_tls_active_version", "version", "1.3"), 3)
	ge("derp_packets_sent", value(t, fams, "derp_packets_sent"), 40)
	ge("derp_buffered_write_frames count", value(t, fams, "derp_buffered_write_frames"), 1)
	ge("process_open_fds", value(t, fams, "process_open_fds"), 5)
	ge("derp_current_file_descriptors", value(t, fams, "derp_current_file_descriptors"), 5)
	ge("process_max_fds", value(t, fams, "process_max_fds"), value(t, fams, "process_open_fds"))
	ge("process_resident_memory_bytes", value(t, fams, "process_resident_memory_bytes"), 1<<20)
	ge("process_virtual_memory_bytes", value(t, fams, "process_virtual_memory_bytes"), value(t, fams, "process_resident_memory_bytes"))
	ge("process_start_time_seconds", value(t, fams, "process_start_time_seconds"), float64(time.Now().Add(-time.Hour).Unix()))
	if v := value(t, fams, "version", "binary", "derpd"); v != 1 {
		t.Errorf("version{binary=derpd} = %v, want 1", v)
	}
	if q := value(t, fams, "derp_average_queue_duration_ms"); q < 0 || q > 10_000 {
		t.Errorf("derp_average_queue_duration_ms = %v", q)
	}

	// derp_tcp_rtt: each TCP client is sampled every 10 seconds.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, fams = scrape(t, d.httpClient(), d.BaseURL())
		var n float64
		for _, b := range []string{"10ms", "20ms", "50ms", "100ms", "150ms", "250ms", "500ms", "inf"} {
			n += value(t, fams, "derp_tcp_rtt", "le", b)
		}
		if n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("derp_tcp_rtt has %v samples after 20s, want >= 2 (two clients, every 10s)", n)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if v := value(t, fams, "derp_tcp_rtt", "le", "error"); v != 0 {
		t.Errorf("derp_tcp_rtt{le=error} = %v", v)
	}
}

// TestVarzParityWithDerper: every family of the Go derper's /debug/varz
// (TLS, default flags) is in derpd's, with the same type, or listed in
// absentInDerpd with its reason.
func TestVarzParityWithDerper(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true})
	_, ours := scrape(t, d.httpClient(), d.BaseURL())

	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	writeSelfSignedCert(t, certDir, "localhost")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	g := runGoDerper(t, addr, []string{
		"-http-port=-1", "-stun-port=0",
		"-certmode=manual", "-hostname=localhost", "-certdir=" + certDir,
		"-c", filepath.Join(dir, "derper.key"),
	})
	pem, err := os.ReadFile(filepath.Join(certDir, "localhost.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "localhost"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, g.Addr)
		},
	}}
	// A DERP client first, so that derper's per-connection families fill.
	c, err := derphttp.NewClient(key.NewNode(), "https://localhost/derp", t.Logf, netmonStatic())
	if err != nil {
		t.Fatal(err)
	}
	c.TLSConfig = &tls.Config{RootCAs: pool, ServerName: "localhost"}
	c.SetURLDialer(func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, g.Addr)
	})
	t.Cleanup(func() { c.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connecting to the Go derper: %v", err)
	}
	body, theirs := scrape(t, hc, "https://localhost")
	// derper declares some families with a TYPE line and no sample yet.
	theirTypes := map[string]bool{}
	for name := range theirs {
		theirTypes[name] = true
	}
	for _, m := range reTypeLine.FindAllStringSubmatch(body, -1) {
		theirTypes[m[1]] = true
	}
	var present, absent []string
	for name := range theirTypes {
		why, listed := absentInDerpd[name]
		if !listed && strings.HasPrefix(name, goRuntimePrefix) {
			why, listed = "Go runtime", true
		}
		mf := ours[name]
		switch {
		case mf != nil && listed:
			t.Errorf("%s is listed as absent (%s) but derpd has it: take it off absentInDerpd", name, why)
		case mf == nil && !listed:
			t.Errorf("derper's %s is missing from derpd's /debug/varz and not listed as absent", name)
		case mf == nil:
			absent = append(absent, name+" ("+why+")")
		default:
			present = append(present, name)
			// derper leaves some untyped; derpd gives every family a type.
			if tf := theirs[name]; tf != nil && tf.GetType() != dto.MetricType_UNTYPED && tf.GetType() != mf.GetType() {
				t.Errorf("%s: derpd's type %v, derper's %v", name, mf.GetType(), tf.GetType())
			}
		}
	}
	sort.Strings(present)
	sort.Strings(absent)
	t.Logf("derper families present in derpd (%d): %s", len(present), strings.Join(present, " "))
	t.Logf("derper families absent in derpd (%d): %s", len(absent), strings.Join(absent, ", "))
}

// TestVarzWebSocketIsNotTCP: a DERP client over WebSocket is a DERP
// upgrade (derp_accepts) and, as derper counts it, derp_tcp_rtt's
// non-tcp; a raw client is sampled instead.
func TestVarzWebSocketIsNotTCP(t *testing.T) {
	if !wsTagged {
		t.Skip("built without -tags ts_debug_websockets (run.sh sets it)")
	}
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	raw := d.newClient(t, "raw", key.NewNode())
	startRecv(t, "raw", raw).expectServerInfo(t)
	// Not t.Parallel: the variable is process-wide while this runs.
	t.Setenv("TS_DEBUG_DERP_WS_CLIENT", "1")
	ws := d.newClient(t, "ws", key.NewNode())
	startRecv(t, "ws", ws).expectServerInfo(t)
	_, fams := scrape(t, d.httpClient(), d.BaseURL())
	for _, c := range []struct {
		name string
		kv   []string
		want float64
	}{
		{"derp_accepts", nil, 2},
		{"derp_websocket_accepts", nil, 1},
		{"derp_tcp_rtt", []string{"le", "non-tcp"}, 1},
		{"derp_tcp_rtt", []string{"le", "error"}, 0},
		{"derper_tls_request_version", []string{"version", "1.3"}, 0},
	} {
		if v := value(t, fams, c.name, c.kv...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.kv, v, c.want)
		}
	}
}
