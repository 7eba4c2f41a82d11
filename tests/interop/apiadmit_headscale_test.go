package interop

// TestAdmissionAPIHeadscale*: derpd's -verify-clients-api headscale backend
// (issue 14) against fakeHeadscale (GET /api/v1/node, API-key auth, the v1
// Node schema): listed nodes admitted, expired keys refused, a deleted
// node's live connection closed, the server gone, a restart on the saved
// set, and how long a newly registered node waits.

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"tailscale.com/types/key"
)

func TestAdmissionAPIHeadscale(t *testing.T) {
	hs := newFakeHeadscale(t)
	a, b, expired, zeroExp, future, tagged, unlisted :=
		key.NewNode(), key.NewNode(), key.NewNode(), key.NewNode(), key.NewNode(), key.NewNode(), key.NewNode()
	past := time.Now().Add(-time.Hour).UTC()
	later := time.Now().Add(90 * 24 * time.Hour).UTC()
	hs.AddNode(hsNodeFor(a.Public(), "node-a", 1))
	hs.AddNode(hsNodeFor(b.Public(), "node-b", 2))
	hs.AddNode(hsNodeFor(expired.Public(), "node-expired", 3, func(n *hsNode) { n.Expiry = &past }))
	hs.AddNode(hsNodeFor(zeroExp.Public(), "node-zero-expiry", 4, func(n *hsNode) { n.Expiry = &time.Time{} }))
	hs.AddNode(hsNodeFor(future.Public(), "node-future", 5, func(n *hsNode) { n.Expiry = &later }))
	hs.AddNode(hsNodeFor(tagged.Public(), "node-tagged", 6, func(n *hsNode) {
		// headscale presents a tagged node as its special user.
		n.User = &hsUser{ID: "2147455555", Name: "tagged-devices", DisplayName: "Tagged Devices"}
		n.Tags = []string{"tag:server"}
		n.RegisterMethod = "REGISTER_METHOD_CLI"
		n.PreAuthKey = nil
		n.LastSeen = nil
		n.Online = false
	}))
	ad := startAPIDerpd(t, apiSetup{API: "headscale", URL: hs.URL, Creds: apiKeyCreds(hs.APIKey),
		Extra: []string{"-verify-clients-api-interval=1s", "-auth-cache-allow-ttl=0"}})
	d := ad.derpd
	apiWaitAtLeast(t, d, 1, "startup sync", "derpd_admission_api_syncs", "result", "ok")
	apiWantGauge(t, d, 6, "after the startup sync", "derpd_admission_api_devices")
	apiWantGauge(t, d, 5, "after the startup sync (all but the expired node)", "derpd_admission_api_admittable")
	apiMustAdmit(t, d, a, "listed node, expiry null")
	apiMustAdmit(t, d, zeroExp, "listed node, expiry the zero time")
	apiMustAdmit(t, d, future, "listed node, expiry in 90 days")
	apiMustAdmit(t, d, tagged, "tagged node")
	apiMustRefuse(t, d, expired, "node with an expired key")
	apiMustRefuse(t, d, unlisted, "unlisted key")
	for _, r := range []string{"key_expired", "not_in_tailnet"} {
		if v := apiRejects(t, d, r); v < 1 {
			t.Errorf("derpd_admission_rejects{reason=%q} = %v, want >= 1", r, v)
		}
	}

	// Node b deleted: its live connection is closed after the next sync;
	// a's stays.
	cA := d.newClient(t, "a", a)
	mA := startRecv(t, "a", cA)
	mA.expectServerInfo(t)
	cB := d.newClient(t, "b", b)
	mB := startRecv(t, "b", cB)
	mB.expectServerInfo(t)
	cF := d.newClient(t, "future", future)
	mF := startRecv(t, "future", cF)
	mF.expectServerInfo(t)
	rev := apiRejects(t, d, "revoked")
	if !hs.DeleteNode(b.Public()) {
		t.Fatal("fake: node b not found")
	}
	mB.expectClosed(t, 15*time.Second)
	apiWaitAtLeast(t, d, rev+1, "after deleting node b", "derpd_admission_rejects", "reason", "revoked")
	apiWaitAtLeast(t, d, 1, "after deleting node b", "derpd_admission_api_revocations")
	apiMustRefuse(t, d, b, "deleted node")
	// A node whose key is expired in headscale (`headscale nodes expire`):
	// its live connection is closed too.
	hs.UpdateNode(future.Public(), func(n *hsNode) { n.Expiry = &past })
	mF.expectClosed(t, 15*time.Second)
	apiWaitAtLeast(t, d, rev+2, "after expiring a node", "derpd_admission_rejects", "reason", "revoked")
	apiMustRefuse(t, d, future, "node expired after it was admitted")
	mA.expectNothing(t, 1500*time.Millisecond)

	show, line := ad.showAPI(t)
	apiShowFields(t, show)
	if apiStr(show, "api") != "headscale" || apiStr(show, "credentials") != "api_key" || apiStr(show, "source") != "api" ||
		apiNum(show, "devices") != 5 || apiNum(show, "admittable") != 3 || apiNum(show, "revoked") < 2 {
		t.Errorf("show admission api: %v; want api headscale, credentials api_key, source api, 5 devices, 3 admittable, revoked >= 2", show)
	}
	apiCheckStateFile(t, ad.State, []key.NodePublic{a.Public(), tagged.Public()}, hs.APIKey)

	// The server goes away: the kept set still admits a, a's connection
	// stays, and show admission says what went wrong.
	hs.Close()
	apiWaitAtLeast(t, d, 1, "headscale gone", "derpd_admission_api_syncs", "result", "unreachable")
	apiMustAdmit(t, d, a, "known node with headscale gone")
	apiMustRefuse(t, d, key.NewNode(), "unknown key with headscale gone")
	mA.expectNothing(t, 500*time.Millisecond)
	s2, line2 := ad.showAPI(t)
	if apiStr(s2, "last_error") == "" || apiNum(s2, "devices") != 5 {
		t.Errorf("show admission api with headscale gone: last_error %q devices %v; want an error and the kept 5", apiStr(s2, "last_error"), apiNum(s2, "devices"))
	}
	apiNoSecret(t, "show admission", line+line2, hs.APIKey)
	apiNoSecret(t, "derpd log", d.logs(), hs.APIKey)
	hs.checkClean(t)
	t.Logf("headscale gone: last_error %q", apiStr(s2, "last_error"))
}

// apiConnectLikeAClient connects priv until derpd admits it, sleeping between
// tries as tailscaled's DERP reconnect does (n² × 10 ms, jittered ×0.5..1.5,
// at most 5 s: util/backoff as magicsock uses it). It returns when it was
// admitted and how many tries it took, or fails after within.
func apiConnectLikeAClient(t *testing.T, d *derpd, priv key.NodePrivate, within time.Duration) (time.Time, int) {
	t.Helper()
	deadline := time.Now().Add(within)
	for n := 0; ; {
		ok, err := apiProbe(d, priv, 10*time.Second)
		if ok {
			return time.Now(), n + 1
		}
		n++
		if time.Now().After(deadline) {
			t.Fatalf("%v not admitted within %v (%d tries, last: %v)", priv.Public().ShortString(), within, n, err)
		}
		bo := min(time.Duration(n*n)*10*time.Millisecond, 5*time.Second)
		time.Sleep(time.Duration(float64(bo) * (rand.Float64() + 0.5)))
	}
}

// TestAdmissionAPIHeadscaleNewNode measures, with the default interval
// (60 s) and min-refresh (5 s), how long a node registered in headscale
// waits before derpd admits it: (1) it registers, then connects; (2) it
// was already trying (and being refused) when it registered.
func TestAdmissionAPIHeadscaleNewNode(t *testing.T) {
	const minRefresh = 5 * time.Second
	hs := newFakeHeadscale(t)
	hs.AddNode(hsNodeFor(key.NewNode().Public(), "existing", 1))
	ad := startAPIDerpd(t, apiSetup{API: "headscale", URL: hs.URL, Creds: apiKeyCreds(hs.APIKey), NoSTUN: true})
	d := ad.derpd
	apiWaitAtLeast(t, d, 1, "startup sync", "derpd_admission_api_syncs", "result", "ok")
	lastList := func() time.Time {
		var at time.Time
		for _, r := range hs.Reqs() {
			if r.Endpoint == "list" {
				at = r.At
			}
		}
		return at
	}

	// (2) first: the node tries before it is registered (refused), then
	// registers while it keeps retrying.
	n2 := key.NewNode()
	apiMustRefuse(t, d, n2, "node 2 before it registered")
	time.Sleep(300 * time.Millisecond)
	hs.AddNode(hsNodeFor(n2.Public(), "new-2", 3))
	reg2 := time.Now()
	at2, tries2 := apiConnectLikeAClient(t, d, n2, 30*time.Second)
	delay2 := at2.Sub(reg2)

	// (1): a quiet relay (min-refresh passed since the last sync); the
	// node registers, then connects.
	time.Sleep(time.Until(lastList().Add(minRefresh + 200*time.Millisecond)))
	n1 := key.NewNode()
	hs.AddNode(hsNodeFor(n1.Public(), "new-1", 2))
	reg1 := time.Now()
	at1, tries1 := apiConnectLikeAClient(t, d, n1, 30*time.Second)
	delay1 := at1.Sub(reg1)

	vz := d.varz(t)
	t.Logf("NEW NODE: registered then connected: admitted %v after registration (%d tries)", delay1.Round(time.Millisecond), tries1)
	t.Logf("NEW NODE: connecting before registration, retrying like tailscaled: admitted %v after registration (%d tries after it)", delay2.Round(time.Millisecond), tries2)
	t.Logf("NEW NODE: defaults (interval 60s, min-refresh 5s); %d list requests in all; refreshes{unknown_key}=%v suppressed=%v",
		hs.Count("list"), mustMetric(t, vz, "derpd_admission_api_refreshes", "trigger", "unknown_key"), mustMetric(t, vz, "derpd_admission_api_refresh_suppressed"))
	if v := mustMetric(t, vz, "derpd_admission_api_refreshes", "trigger", "unknown_key"); v < 1 {
		t.Errorf("derpd_admission_api_refreshes{trigger=unknown_key} = %v: new nodes were not admitted by an unknown-key sync", v)
	}
	if v := mustMetric(t, vz, "derpd_admission_api_refreshes", "trigger", "interval"); v != 0 {
		t.Logf("note: %v interval syncs happened in the test (interval 60 s)", v)
	}
	hs.checkClean(t)
}

// TestAdmissionAPIHeadscaleRestart: derpd keeps the last good set in its
// state file; restarted while headscale is gone, it loads the file and
// still admits the known node (show admission: source state_file).
func TestAdmissionAPIHeadscaleRestart(t *testing.T) {
	hs := newFakeHeadscale(t)
	a := key.NewNode()
	hs.AddNode(hsNodeFor(a.Public(), "node-a", 1))
	state := filepath.Join(t.TempDir(), "hs-state.json")
	setup := apiSetup{API: "headscale", URL: hs.URL, Creds: apiKeyCreds(hs.APIKey), State: state, NoSTUN: true,
		Extra: []string{"-verify-clients-api-interval=1s", "-auth-cache-allow-ttl=0"}}
	ad := startAPIDerpd(t, setup)
	apiWaitAtLeast(t, ad.derpd, 1, "startup sync", "derpd_admission_api_syncs", "result", "ok")
	apiMustAdmit(t, ad.derpd, a, "listed node")
	apiCheckStateFile(t, state, []key.NodePublic{a.Public()}, hs.APIKey)

	hs.Close()
	apiWaitAtLeast(t, ad.derpd, 1, "headscale gone", "derpd_admission_api_syncs", "result", "unreachable")
	apiMustAdmit(t, ad.derpd, a, "known node with headscale gone")
	ad.stop()

	ad2 := startAPIDerpd(t, setup)
	d := ad2.derpd
	apiWaitAtLeast(t, d, 1, "restart with headscale gone", "derpd_admission_api_syncs", "result", "unreachable")
	apiMustAdmit(t, d, a, "known node after a restart with headscale gone")
	apiMustRefuse(t, d, key.NewNode(), "unknown key after the restart")
	s, line := ad2.showAPI(t)
	apiShowFields(t, s)
	if apiStr(s, "source") != "state_file" || apiNum(s, "devices") != 1 || apiStr(s, "state_file") != state || apiStr(s, "last_error") == "" {
		t.Errorf("show admission api after the restart: %v; want source state_file, 1 device, state_file %s, a last_error", s, state)
	}
	if v := mustMetric(t, d.varz(t), "derpd_admission_api_set_age_seconds"); v < 0 {
		t.Errorf("derpd_admission_api_set_age_seconds = %v with a set from the state file", v)
	}
	if st, err := os.Stat(state); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("state file after the restart: %v %v", st, err)
	}
	apiNoSecret(t, "show admission", line, hs.APIKey)
	apiNoSecret(t, "derpd log", ad.logs()+d.logs(), hs.APIKey)
	t.Logf("after the restart: source %q age_seconds %v last_error %q; log: %s", apiStr(s, "source"), apiNum(s, "age_seconds"), apiStr(s, "last_error"),
		grepLines(d.logs(), "admission api", 5))
}

// TestAdmissionAPIHeadscalePolicy: -admission-policy over headscale's
// identities: user.name as the login, givenName as the node name, tags,
// ipAddresses (derpd-admission(7), Control plane).
func TestAdmissionAPIHeadscalePolicy(t *testing.T) {
	hs := newFakeHeadscale(t)
	bob, web, tagged, subnet, alice := key.NewNode(), key.NewNode(), key.NewNode(), key.NewNode(), key.NewNode()
	hs.AddNode(hsNodeFor(bob.Public(), "laptop", 1, func(n *hsNode) {
		n.User = &hsUser{ID: "3", Name: "bob", Email: "bob@example.com", CreatedAt: time.Now().UTC()}
	}))
	hs.AddNode(hsNodeFor(web.Public(), "host-77", 2, func(n *hsNode) { n.GivenName = "web-1" }))
	hs.AddNode(hsNodeFor(tagged.Public(), "srv", 3, func(n *hsNode) {
		n.User = &hsUser{ID: "2147455555", Name: "tagged-devices", DisplayName: "Tagged Devices"}
		n.Tags = []string{"tag:relay-ok"}
	}))
	hs.AddNode(hsNodeFor(subnet.Public(), "printer", 4, func(n *hsNode) {
		n.IPAddresses = []string{"100.99.7.7", "fd7a:115c:a1e0::9977"}
	}))
	hs.AddNode(hsNodeFor(alice.Public(), "alice-laptop", 5))
	pol := filepath.Join(t.TempDir(), "policy.json")
	writePolicy(t, pol, `{"rules": [
  {"name": "relays", "action": "allow", "tags": ["tag:relay-ok"]},
  {"name": "bob", "action": "allow", "users": ["bob"]},
  {"name": "web", "action": "allow", "nodes": ["web-*"]},
  {"name": "net", "action": "allow", "addrs": ["100.99.0.0/16"]}
]}`)
	ad := startAPIDerpd(t, apiSetup{API: "headscale", URL: hs.URL, Creds: apiKeyCreds(hs.APIKey), NoSTUN: true,
		Extra: []string{"-admission-policy", pol}})
	d := ad.derpd
	apiWaitAtLeast(t, d, 1, "startup sync", "derpd_admission_api_syncs", "result", "ok")
	apiMustAdmit(t, d, tagged, "tag:relay-ok node")
	apiMustAdmit(t, d, bob, "bob's node (user.name bob)")
	apiMustAdmit(t, d, web, "node with givenName web-1")
	apiMustAdmit(t, d, subnet, "node in 100.99.0.0/16")
	apiMustRefuse(t, d, alice, "alice's node matching no rule")
	vz := d.varz(t)
	if v := sumMetric(vz, "derpd_admission_rejects", "reason", "policy_denied"); v < 1 {
		t.Errorf("derpd_admission_rejects{reason=policy_denied} = %v, want >= 1", v)
	}
	for _, r := range []string{"relays", "bob", "web", "net", "(default)"} {
		if v := sumMetric(vz, "derpd_admission_policy_matches", "rule", r); v < 1 {
			t.Errorf("derpd_admission_policy_matches{rule=%q} = %v, want >= 1", r, v)
		}
	}
	hs.checkClean(t)
}
