package interop

// TestAdmissionAPIE2E: the e2e tailnet (testcontrol + two real tailscaled
// nodes) with derpd started as `-verify-clients-api tailscale` against
// fakeTSAPI, which lists the nodes' real node keys and tailnet addresses as
// tsclient.Device values. Both relay through derpd; a key not listed is
// refused; removing B from the API closes B's connection at the next sync
// (revoked); B listed again relays again; then the API stops and derpd
// restarts (same port, same -c key, so the same default state file beside
// it): the known nodes are admitted from the saved set and relay.

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	tsclient "tailscale.com/client/tailscale/v2"
	"tailscale.com/types/key"
)

// apiE2EDevice is node n as Tailscale's API would list it: its real node key,
// name, user login and tailnet addresses (from `tailscale status`).
func apiE2EDevice(t *testing.T, n *tsNode, i int) tsclient.Device {
	t.Helper()
	st, err := n.status()
	if err != nil {
		t.Fatal(err)
	}
	if st.Self == nil || st.Self.PublicKey != n.NodeKey {
		t.Fatalf("%s: status Self %v does not match node key %v", n.Name, st.Self, n.NodeKey.ShortString())
	}
	var addrs []string
	for _, ip := range st.TailscaleIPs {
		addrs = append(addrs, ip.String())
	}
	login := ""
	if u, ok := st.User[st.Self.UserID]; ok {
		login = u.LoginName
	}
	name := strings.TrimSuffix(st.Self.DNSName, ".")
	return tsDevice(n.NodeKey, st.Self.HostName, i, func(d *tsclient.Device) {
		d.Addresses = addrs
		if name != "" {
			d.Name = name
		}
		if login != "" {
			d.User = login
		}
		d.OS = st.Self.OS
		d.ConnectedToControl = true
		d.LastSeen = nil
	})
}

func TestAdmissionAPIE2E(t *testing.T) {
	tn := newTailnet(t)
	api := newFakeTSAPI(t, "-")
	keyDir := t.TempDir()
	keyFile := filepath.Join(keyDir, "derpd.key")
	setup := apiSetup{API: "tailscale", URL: api.URL, Creds: apiOAuthCreds(api), State: "-", KeyFile: keyFile,
		Extra: []string{"-verify-clients-api-interval=2s"}}
	ad := startAPIDerpd(t, setup)
	d := ad.derpd
	// Registered first, so it runs last: after the nodes were stopped.
	t.Cleanup(func() {
		if t.Failed() {
			tn.dumpLogs()
		}
	})
	testStart := time.Now()
	// The node keys exist only once the nodes are up: until the fake lists
	// them, derpd refuses their DERP connections (they keep retrying).
	tn.Start(d)
	a, b := tn.A, tn.B
	_, ka, kb := tn.AdmissionFacts()
	devA, devB := apiE2EDevice(t, a, 1), apiE2EDevice(t, b, 2)
	t.Logf("before the API lists the nodes: rejects{not_in_tailnet} = %v (their DERP connects so far)", apiRejects(t, d, "not_in_tailnet"))
	api.SetDevices(devA, devB)
	t.Logf("fake API lists a=%v %v %s, b=%v %v %s", ka.ShortString(), devA.Addresses, devA.User, kb.ShortString(), devB.Addresses, devB.User)

	pingViaDERP(t, a, b, 90*time.Second)
	pingViaDERP(t, b, a, 30*time.Second)
	apiWantGauge(t, d, 2, "with both nodes listed", "derpd_admission_api_devices")

	// A key not listed is refused.
	nit := apiRejects(t, d, "not_in_tailnet")
	apiMustRefuse(t, d, key.NewNode(), "key not listed")
	if v := apiRejects(t, d, "not_in_tailnet"); v < nit+1 {
		t.Errorf("derpd_admission_rejects{reason=not_in_tailnet} = %v after an unlisted key, want >= %v", v, nit+1)
	}
	apiMustAdmit(t, d, b.privateNodeKey(t), "B's own key")

	// B removed from the API: its live connection is closed at the next
	// sync, and its key is refused from then on.
	rev := apiRejects(t, d, "revoked")
	revs := mustMetric(t, d.varz(t), "derpd_admission_api_revocations")
	if !api.RemoveDevice(kb) {
		t.Fatal("fake: B not listed")
	}
	removed := time.Now()
	apiWaitAtLeast(t, d, rev+1, "after removing B from the API", "derpd_admission_rejects", "reason", "revoked")
	apiWaitAtLeast(t, d, revs+1, "after removing B from the API", "derpd_admission_api_revocations")
	t.Logf("B's connection revoked %v after its removal from the API (interval 2 s)", time.Since(removed).Round(time.Millisecond))
	t.Logf("derpd log on the revocation:\n%s", grepLines(d.logs(), "revok", 6))
	apiMustRefuse(t, d, b.privateNodeKey(t), "B's key after B was removed")
	apiMustAdmit(t, d, a.privateNodeKey(t), "A's key after B was removed")

	// B listed again: it reconnects and relays.
	api.AddDevice(devB)
	pingViaDERP(t, a, b, 90*time.Second)
	apiWaitNextSync(t, d, "sync with both nodes listed")
	state := filepath.Join(keyDir, "derpd-admission-api.json") // the default: beside -c
	apiCheckStateFile(t, state, []key.NodePublic{ka, kb}, append([]string{api.ClientSecret}, api.Issued()...)...)
	show, line := ad.showAPI(t)
	if apiStr(show, "state_file") != state {
		t.Errorf("show admission api.state_file = %q, want the default %s", apiStr(show, "state_file"), state)
	}
	secrets := append([]string{api.ClientSecret}, api.Issued()...)
	apiNoSecret(t, "show admission", line, secrets...)
	apiNoSecret(t, "derpd log", d.logs(), secrets...)
	api.checkClean(t)

	// The API stops; derpd restarts on the same port, key and state file.
	api.Close()
	port, stun := d.Port, 0
	if d.STUNAddr != "" {
		_, p, _ := net.SplitHostPort(d.STUNAddr)
		fmt.Sscan(p, &stun)
	}
	ad.stop()
	setup2 := setup
	setup2.Port, setup2.STUN = port, stun
	ad2 := startAPIDerpd(t, setup2)
	d2 := ad2.derpd
	if d2.ServerKey != d.ServerKey {
		t.Errorf("server key changed across the restart: %v -> %v", d.ServerKey.ShortString(), d2.ServerKey.ShortString())
	}
	s2, _ := ad2.showAPI(t)
	if apiStr(s2, "source") != "state_file" || apiNum(s2, "devices") != 2 {
		t.Errorf("show admission api after the restart: source %q devices %v, want state_file, 2", apiStr(s2, "source"), apiNum(s2, "devices"))
	}
	pingViaDERP(t, a, b, 90*time.Second)
	pingViaDERP(t, b, a, 30*time.Second)
	apiMustRefuse(t, d2, key.NewNode(), "unlisted key after the restart")
	apiWaitAtLeast(t, d2, 1, "API stopped", "derpd_admission_api_syncs", "result", "unreachable")
	s3, line3 := ad2.showAPI(t)
	apiNoSecret(t, "show admission after the restart", line3, secrets...)
	apiNoSecret(t, "derpd log after the restart", d2.logs(), secrets...)
	d2.requireAlive(t)
	t.Logf("after the restart: source %q devices %v last_error %q age %v", apiStr(s3, "source"), apiNum(s3, "devices"), apiStr(s3, "last_error"), apiNum(s3, "age_seconds"))
	t.Logf("fake API: %d token, %d list requests", api.Count("token"), api.Count("list"))
	t.Logf("e2e body (after tailscaled binaries) took %v", time.Since(testStart).Round(time.Millisecond))
}
