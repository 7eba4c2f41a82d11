package interop

// DERP over WebSocket: the real derphttp client, built with the
// ts_debug_websockets tag (run.sh adds it to the whole run: without
// TS_DEBUG_DERP_WS_CLIENT set it changes nothing, derphttp's
// useWebsockets reads the variable at each connect) and run with
// TS_DEBUG_DERP_WS_CLIENT=1, against derpd over HTTP and TLS.

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"tailscale.com/derp/derphttp"
	"tailscale.com/types/key"
)

func TestWebSocketHTTP(t *testing.T) {
	testWebSocket(t, startDerpd(t, derpdOpts{NoSTUN: true}))
}

func TestWebSocketTLS(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true, NoSTUN: true})
	// The WebSocket dialer uses net/http's default client, not
	// Client.TLSConfig: trust derpd's certificate there for this test.
	tr := http.DefaultTransport.(*http.Transport)
	old := tr.TLSClientConfig
	tr.TLSClientConfig = d.tlsClientConfig()
	t.Cleanup(func() { tr.TLSClientConfig = old })
	testWebSocket(t, d)
}

func testWebSocket(t *testing.T, d *derpd) {
	if !wsTagged {
		t.Skip("built without -tags ts_debug_websockets (run.sh sets it)")
	}
	tcpKey := key.NewNode()
	tcp := d.newClient(t, "tcp", tcpKey)
	tcpMsgs := startRecv(t, "tcp", tcp)
	tcpMsgs.expectServerInfo(t)

	// Not t.Parallel: the variable is process-wide while this runs.
	t.Setenv("TS_DEBUG_DERP_WS_CLIENT", "1")
	wsKey := key.NewNode()
	var logMu sync.Mutex
	var logs strings.Builder
	ws, err := derphttp.NewClient(wsKey, d.URL(), func(f string, a ...any) {
		logMu.Lock()
		fmt.Fprintf(&logs, f+"\n", a...)
		logMu.Unlock()
	}, netmonStatic())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ws.Connect(ctx); err != nil {
		t.Fatalf("WebSocket Connect(%s): %v", d.URL(), err)
	}
	wsMsgs := startRecv(t, "ws", ws)
	wsMsgs.expectServerInfo(t)
	if got := ws.ServerPublicKey(); got != d.ServerKey {
		t.Fatalf("server key over WebSocket %v, want %v", got, d.ServerKey)
	}
	// Proof that the WebSocket path was taken, from both ends.
	logMu.Lock()
	clientLog := logs.String()
	logMu.Unlock()
	if !strings.Contains(clientLog, "connecting websocket to") {
		t.Fatalf("client did not dial a WebSocket; its log:\n%s", clientLog)
	}
	if v := mustMetric(t, d.varz(t), "derp_websocket_accepts"); v != 1 {
		t.Fatalf("derp_websocket_accepts = %v, want 1", v)
	}

	// Both ways, small and near the largest packet: the client writes
	// the big one as one message of about 60 KiB (derpd's cap is 65 KiB;
	// derpd's own messages are 16 KiB, under the client's 32 KiB limit).
	for _, n := range []int{100, 64000} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 7)
		}
		if err := ws.Send(tcpKey.Public(), data); err != nil {
			t.Fatalf("ws Send %d: %v", n, err)
		}
		tcpMsgs.expectPacket(t, wsKey.Public(), data)
		if err := tcp.Send(wsKey.Public(), data); err != nil {
			t.Fatalf("tcp Send %d: %v", n, err)
		}
		wsMsgs.expectPacket(t, tcpKey.Public(), data)
	}
	wsMsgs.expectNothing(t, 100*time.Millisecond)
	if v := mustMetric(t, d.varz(t), "derp_websocket_accepts"); v != 1 {
		t.Fatalf("derp_websocket_accepts = %v after relaying, want 1", v)
	}
}
