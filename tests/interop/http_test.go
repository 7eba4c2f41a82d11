package interop

// derphttp TestProbe, derper TestNoContent and the other HTTP endpoints.

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestHTTPEndpointsHTTP(t *testing.T) {
	d := startDerpd(t, derpdOpts{NoSTUN: true})
	testHTTPEndpoints(t, d)
}

func TestHTTPEndpointsTLS(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true, NoSTUN: true})
	testHTTPEndpoints(t, d)
}

type httpResult struct {
	status int
	header http.Header
	body   string
}

func doHTTP(t *testing.T, d *derpd, method, path string, hdr map[string]string) httpResult {
	t.Helper()
	req, err := http.NewRequest(method, d.BaseURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := d.httpClient().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, path, err)
	}
	return httpResult{resp.StatusCode, resp.Header, string(b)}
}

func testHTTPEndpoints(t *testing.T, d *derpd) {
	t.Run("probe", func(t *testing.T) {
		for _, path := range []string{"/derp/probe", "/derp/latency-check"} {
			for _, method := range []string{"GET", "HEAD"} {
				r := doHTTP(t, d, method, path, nil)
				if r.status != 200 {
					t.Errorf("%s %s: status %d, want 200", method, path, r.status)
				}
				if got := r.header.Get("Access-Control-Allow-Origin"); got != "*" {
					t.Errorf("%s %s: Access-Control-Allow-Origin %q, want *", method, path, got)
				}
			}
			for _, method := range []string{"POST", "PUT"} {
				if r := doHTTP(t, d, method, path, nil); r.status != 405 {
					t.Errorf("%s %s: status %d, want 405", method, path, r.status)
				}
			}
		}
	})

	t.Run("derp-without-upgrade", func(t *testing.T) {
		r := doHTTP(t, d, "GET", "/derp", nil)
		if r.status != http.StatusUpgradeRequired {
			t.Errorf("GET /derp without Upgrade: status %d, want 426", r.status)
		}
		r = doHTTP(t, d, "GET", "/derp?foo=bar", map[string]string{"Upgrade": "h2c"})
		if r.status != http.StatusUpgradeRequired {
			t.Errorf("GET /derp with Upgrade: h2c: status %d, want 426", r.status)
		}
	})

	t.Run("generate_204", func(t *testing.T) {
		const ccWant = "no-cache, no-store, must-revalidate, no-transform, max-age=0"
		cases := []struct {
			name, challenge, want string // want "" = no header
		}{
			{"no challenge", "", ""},
			{"valid", "abcxyz-ABCXYZ.0189:", "response abcxyz-ABCXYZ.0189:"},
			{"client style ts_ip", "ts_127.0.0.1", "response ts_127.0.0.1"},
			{"exactly 64", strings.Repeat("a", 64), "response " + strings.Repeat("a", 64)},
			{"65 chars", strings.Repeat("a", 65), ""},
			{"space", "foo bar", ""},
			{"slash", "foo/bar", ""},
			{"non-ascii", "caf\u00e9", ""},
		}
		for _, tc := range cases {
			for _, method := range []string{"GET", "HEAD"} {
				hdr := map[string]string{}
				if tc.challenge != "" {
					hdr["X-Tailscale-Challenge"] = tc.challenge
				}
				r := doHTTP(t, d, method, "/generate_204", hdr)
				if r.status != 204 {
					t.Errorf("%s %s: status %d, want 204", tc.name, method, r.status)
				}
				got, present := r.header["X-Tailscale-Response"]
				if tc.want == "" {
					if present {
						t.Errorf("%s %s: got X-Tailscale-Response %q, want no such header", tc.name, method, got)
					}
				} else if r.header.Get("X-Tailscale-Response") != tc.want {
					t.Errorf("%s %s: X-Tailscale-Response %q, want %q", tc.name, method, r.header.Get("X-Tailscale-Response"), tc.want)
				}
				if cc := r.header.Get("Cache-Control"); cc != ccWant {
					t.Errorf("%s %s: Cache-Control %q, want %q", tc.name, method, cc, ccWant)
				}
				if r.body != "" {
					t.Errorf("%s %s: 204 with body %q", tc.name, method, r.body)
				}
			}
		}
	})

	t.Run("robots.txt", func(t *testing.T) {
		r := doHTTP(t, d, "GET", "/robots.txt", nil)
		if r.status != 200 {
			t.Errorf("GET /robots.txt: status %d, want 200", r.status)
		}
		if r.body != "User-agent: *\nDisallow: /\n" {
			t.Errorf("GET /robots.txt: body %q, want %q", r.body, "User-agent: *\nDisallow: /\n")
		}
	})

	t.Run("home page", func(t *testing.T) {
		for _, path := range []string{"/", "/no/such/path", "/derp/", "/index.html"} {
			r := doHTTP(t, d, "GET", path, nil)
			if r.status != 200 {
				t.Errorf("GET %s: status %d, want 200 (home page)", path, r.status)
				continue
			}
			if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("GET %s: Content-Type %q, want text/html", path, ct)
			}
			if !strings.Contains(strings.ToLower(r.body), "derp") {
				t.Errorf("GET %s: home page does not mention DERP: %q", path, trunc([]byte(r.body)))
			}
		}
	})

	t.Run("varz", func(t *testing.T) {
		vz := d.varz(t)
		for _, name := range []string{
			"derp_current_connections", "derp_packets_sent", "derp_packets_received",
			"derp_peer_gone_not_here_frames", "derp_peer_gone_disconnected_frames",
			"derp_got_ping", "derp_sent_pong", "derp_current_dup_client_conns", "derp_watchers",
		} {
			mustMetric(t, vz, name)
		}
		for _, reason := range []string{"unknown_dest", "unknown_dest_on_fwd", "gone_disconnected", "queue_head", "queue_tail", "write_error", "dup_client"} {
			for _, kind := range []string{"disco", "other"} {
				mustMetric(t, vz, "derp_packets_dropped", "reason", reason, "kind", kind)
			}
		}
	})
}
