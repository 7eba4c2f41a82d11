package interop

// TestAdmissionAPIUnknownKeyBurst: 1,000 connects of fresh random keys
// against derpd with the API backend at its defaults (interval 60 s,
// min-refresh 5 s), starting once min-refresh has passed since the startup
// sync: every one is refused as not_in_tailnet, and the
// unknown keys cause at most one list request per min-refresh period
// (plus the interval syncs that fall in the burst and a small slack).

import (
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"tailscale.com/types/key"
)

func TestAdmissionAPIUnknownKeyBurst(t *testing.T) {
	unknownKeyBurst(t, 5*time.Second, nil)
}

// TestAdmissionAPIUnknownKeyBurstShortMinRefresh: the same burst with
// -verify-clients-api-min-refresh 200ms, so that it spans several periods:
// at most one list request per period.
func TestAdmissionAPIUnknownKeyBurstShortMinRefresh(t *testing.T) {
	unknownKeyBurst(t, 200*time.Millisecond, []string{"-verify-clients-api-min-refresh=200ms"})
}

func unknownKeyBurst(t *testing.T, minRefresh time.Duration, extra []string) {
	const (
		n     = 1000
		conc  = 16 // below -auth-max-pending-per-source (32)
		slack = 2
	)
	api := newFakeTSAPI(t, "-")
	known := key.NewNode()
	api.SetDevices(tsDevice(known.Public(), "known", 1))
	ad := startAPIDerpd(t, apiSetup{API: "tailscale", URL: api.URL, Creds: apiKeyCreds(api.APIKey), NoSTUN: true, Extra: extra})
	d := ad.derpd
	apiWaitAtLeast(t, d, 1, "startup sync", "derpd_admission_api_syncs", "result", "ok")
	apiMustAdmit(t, d, known, "listed key before the burst")

	// The startup sync counts as the last refresh: start the burst once
	// min-refresh has passed since it, so that the first unknown key may
	// start a sync (as it would on a relay that has been up a while).
	var last time.Time
	for _, r := range api.Reqs() {
		if r.Endpoint == "list" {
			last = r.At
		}
	}
	time.Sleep(time.Until(last.Add(minRefresh + 200*time.Millisecond)))

	vz0 := d.varz(t)
	listBefore := api.Count("list")
	var admitted, refused, other atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	var otherErrs []string
	work := make(chan struct{})
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				t0 := time.Now()
				ok, err := apiProbe(d, key.NewNode(), 10*time.Second)
				el := time.Since(t0)
				mu.Lock()
				lat = append(lat, el)
				mu.Unlock()
				switch {
				case ok:
					admitted.Add(1)
				case err != nil && apiContainsAny(err.Error(), "first message", "connection refused"):
					other.Add(1)
					mu.Lock()
					if len(otherErrs) < 5 {
						otherErrs = append(otherErrs, err.Error())
					}
					mu.Unlock()
				default:
					refused.Add(1)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	end := time.Now()
	dur := end.Sub(start)

	// Let a sync started by the last connects finish, then count.
	time.Sleep(500 * time.Millisecond)
	vz1 := d.varz(t)
	reqs := api.Reqs()
	during := 0
	for _, r := range reqs {
		if r.Endpoint == "list" && !r.At.Before(start) && !r.At.After(end) {
			during++
		}
	}
	total := api.Count("list") - listBefore
	delta := func(name string, kv ...string) float64 {
		return mustMetric(t, vz1, name, kv...) - mustMetric(t, vz0, name, kv...)
	}
	scheduled := delta("derpd_admission_api_refreshes", "trigger", "interval") + delta("derpd_admission_api_refreshes", "trigger", "retry")
	bound := 1 + int(math.Ceil(float64(dur+500*time.Millisecond)/float64(minRefresh))) + int(scheduled) + slack
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Millisecond)
	}
	t.Logf("BURST (min-refresh %v): %d connects of unknown keys (%d at a time) in %v caused %d list requests to the API during the burst (%d up to 0.5 s after it); bound %d (1 + ceil(%v / %v) + %v interval/retry syncs + %d)",
		minRefresh, n, conc, dur.Round(time.Millisecond), during, total, bound, (dur + 500*time.Millisecond).Round(time.Millisecond), minRefresh, scheduled, slack)
	t.Logf("BURST: refused %d, admitted %d, other %d; per-connect latency p50 %v p90 %v p99 %v max %v",
		refused.Load(), admitted.Load(), other.Load(), pct(0.5), pct(0.9), pct(0.99), pct(1))
	t.Logf("BURST: metric deltas: rejects{not_in_tailnet} +%v, refreshes{unknown_key} +%v, refresh_suppressed +%v, requests{list} +%v, rejects{rate_limited} +%v",
		delta("derpd_admission_rejects", "reason", "not_in_tailnet"), delta("derpd_admission_api_refreshes", "trigger", "unknown_key"),
		delta("derpd_admission_api_refresh_suppressed"), delta("derpd_admission_api_requests", "endpoint", "list"),
		sumMetric(vz1, "derpd_admission_rejects", "reason", "rate_limited")-sumMetric(vz0, "derpd_admission_rejects", "reason", "rate_limited"))

	if admitted.Load() != 0 {
		t.Errorf("%d unknown keys admitted", admitted.Load())
	}
	if other.Load() != 0 {
		t.Errorf("%d connects neither admitted nor refused, e.g. %q", other.Load(), otherErrs)
	}
	if total > bound {
		t.Errorf("%d list requests for %d unknown keys in %v, want at most %d", total, n, dur.Round(time.Millisecond), bound)
	}
	if v := delta("derpd_admission_rejects", "reason", "not_in_tailnet"); v != n {
		t.Errorf("derpd_admission_rejects{reason=not_in_tailnet} rose by %v in the burst, want %d", v, n)
	}
	// Each unknown key triggered a sync, waited for one under way, or was
	// refused without one (suppressed): with a handful of syncs, most are
	// the last kind.
	if v := delta("derpd_admission_api_refresh_suppressed"); v < n/2 {
		t.Errorf("derpd_admission_api_refresh_suppressed rose by %v for %d unknown keys and %d list requests, want most of them", v, n, total)
	}
	if v := delta("derpd_admission_api_refreshes", "trigger", "unknown_key"); v < 1 || int(v) > total {
		t.Errorf("derpd_admission_api_refreshes{trigger=unknown_key} rose by %v, fake saw %d list requests", v, total)
	}
	show, _ := ad.showAPI(t)
	if apiNum(show, "on_demand") != mustMetric(t, vz1, "derpd_admission_api_refreshes", "trigger", "unknown_key") ||
		apiNum(show, "suppressed") != mustMetric(t, vz1, "derpd_admission_api_refresh_suppressed") {
		t.Errorf("show admission api: on_demand %v suppressed %v; metrics: refreshes{unknown_key} %v refresh_suppressed %v",
			apiNum(show, "on_demand"), apiNum(show, "suppressed"),
			mustMetric(t, vz1, "derpd_admission_api_refreshes", "trigger", "unknown_key"), mustMetric(t, vz1, "derpd_admission_api_refresh_suppressed"))
	}
	apiMustAdmit(t, d, known, "listed key after the burst")
	api.checkClean(t)
	d.requireAlive(t)
}

func apiContainsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}
