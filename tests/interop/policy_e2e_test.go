package interop

// TestTailscaledAdmissionPolicy: the e2e tailnet (testcontrol + two real
// tailscaled nodes, each its own user) with derpd started as
// `--verify-clients --socket=<A's socket> --admission-policy FILE
// --admission-log FILE`. The policy first admits everyone; then a reload
// narrows it to A's user login: B's live connection is closed (revoked),
// B's next connect is refused (policy_denied), A keeps relaying, and the
// per-rule counters, `show admission` and the audit log say so. A last
// reload admits B's user again and B relays once more.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"tailscale.com/types/key"
)

// whoisLogin asks tailscaled at sock who k is and returns the user login.
func whoisLogin(t *testing.T, sock string, k key.NodePublic) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, body, err := whois(ctx, sock, k)
	if err != nil || status != 200 {
		t.Fatalf("whois %v: status %d, %v: %s", k.ShortString(), status, err, body)
	}
	var w struct {
		UserProfile struct{ LoginName string }
	}
	if err := json.Unmarshal(body, &w); err != nil || w.UserProfile.LoginName == "" {
		t.Fatalf("whois %v: no login name (%v): %s", k.ShortString(), err, body)
	}
	return w.UserProfile.LoginName
}

// adminCall sends one request on derpd's admin socket; the reply line.
func adminCall(t *testing.T, sock, cmd string, args map[string]string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		t.Fatalf("admin socket: %v", err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(15 * time.Second))
	req := map[string]any{"v": 1, "id": 1, "cmd": cmd}
	if args != nil {
		req["args"] = args
	}
	b, _ := json.Marshal(req)
	if _, err := c.Write(append(b, '\n')); err != nil {
		t.Fatalf("admin socket write: %v", err)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && err != io.EOF {
		t.Fatalf("admin socket read: %v", err)
	}
	return strings.TrimSpace(line)
}

func writePolicy(t *testing.T, path, text string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestTailscaledAdmissionPolicy(t *testing.T) {
	tn := newTailnet(t)
	tn.distinctUsers = true
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.json")
	audit := filepath.Join(dir, "audit.log")
	admin := filepath.Join(dir, "admin.sock")
	writePolicy(t, pol, `{"rules": [{"name": "everyone", "action": "allow"}]}`)
	flags := []string{"--verify-clients", "--socket=" + tn.A.Sock,
		"--admission-policy=" + pol, "--admission-log=" + audit,
		"--admin-socket=" + admin}
	requireDerpdSupports(t, flags...)
	d := startDerpd(t, derpdOpts{ExtraArgs: flags})
	// Registered first, so it runs last: after the nodes were stopped.
	t.Cleanup(func() {
		if t.Failed() {
			tn.dumpLogs()
		}
	})
	testStart := time.Now()
	tn.Start(d)
	a, b := tn.A, tn.B
	sock, ka, kb := tn.AdmissionFacts()
	pingViaDERP(t, a, b, 90*time.Second)
	pingViaDERP(t, b, a, 30*time.Second)

	loginA, loginB := whoisLogin(t, sock, ka), whoisLogin(t, sock, kb)
	t.Logf("a=%v is %s, b=%v is %s", ka.ShortString(), loginA, kb.ShortString(), loginB)
	if loginA == loginB {
		t.Fatalf("both nodes are user %s; the test needs two users", loginA)
	}

	// Only A's user from now on.
	writePolicy(t, pol, fmt.Sprintf(`{"rules": [
  {"name": "user-a", "action": "allow", "users": [%q]}
]}`, loginA))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	// B's live connection is re-verified at the reload and closed.
	if v := d.waitMetric(t, 15*time.Second, func(v float64) bool { return v >= 1 },
		"derpd_admission_rejects", "reason", "revoked"); v < 1 {
		t.Errorf("derpd_admission_rejects{reason=revoked} = %v after the reload, want >= 1", v)
	}
	// B's own key, connecting again, is refused by the policy.
	if m, err := derpClientFirst(t, d, b.privateNodeKey(t)); err == nil {
		t.Errorf("B's key admitted after the policy excluded its user: first message %s", describe(m))
	} else {
		t.Logf("B's key refused: %v", err)
	}
	// A still relays (through derpd, its key re-verified and admitted).
	if m, err := derpClientFirst(t, d, a.privateNodeKey(t)); err != nil {
		t.Errorf("A's key refused after the reload: %v", err)
	} else {
		t.Logf("A's key admitted: %s", describe(m))
	}

	vz := d.varz(t)
	if v := sumMetric(vz, "derpd_admission_rejects", "reason", "policy_denied"); v < 1 {
		t.Errorf("derpd_admission_rejects{reason=policy_denied} = %v, want >= 1", v)
	}
	if v := sumMetric(vz, "derpd_admission_policy_matches", "rule", "user-a"); v < 1 {
		t.Errorf("derpd_admission_policy_matches{rule=user-a} = %v, want >= 1", v)
	}
	if v := sumMetric(vz, "derpd_admission_policy_matches", "rule", "(default)"); v < 1 {
		t.Errorf("derpd_admission_policy_matches{rule=(default)} = %v, want >= 1", v)
	}
	if !strings.Contains(d.logs(), "policy_denied (tailscaled, rule (default))") {
		t.Errorf("no policy_denied close line naming the rule in derpd's log")
	}
	show := adminCall(t, admin, "show admission", nil)
	if !strings.Contains(show, `"rule":"user-a"`) {
		t.Errorf("show admission has no user-a rule: %s", show)
	}
	tp := adminCall(t, admin, "test-policy", map[string]string{"key": kb.String()})
	if !strings.Contains(tp, `"verdict":"deny","reason":"policy_denied"`) ||
		!strings.Contains(tp, loginB) {
		t.Errorf("test-policy of B: %s", tp)
	}
	t.Logf("show admission: %s", show)
	t.Logf("test-policy b: %s", tp)
	var log []byte
	for i := 0; i < 50; i++ {
		log, _ = os.ReadFile(audit)
		if strings.Contains(string(log), `"rule":"(default)"`) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(string(log), `"reason":"policy_denied"`) ||
		!strings.Contains(string(log), `"user":"`+loginB+`"`) {
		t.Errorf("audit log has no policy_denied line for B:\n%s", log)
	}
	t.Logf("audit log (tail):\n%s", tailLines(string(log), 8))

	// A reload that admits B's user again: B is back and relays.
	writePolicy(t, pol, fmt.Sprintf(`{"rules": [
  {"name": "user-a", "action": "allow", "users": [%q]},
  {"name": "user-b", "action": "allow", "users": [%q]}
]}`, loginA, loginB))
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	pingViaDERP(t, a, b, 90*time.Second)
	pingViaDERP(t, b, a, 30*time.Second)
	if v := sumMetric(d.varz(t), "derpd_admission_policy_matches", "rule", "user-b"); v < 1 {
		t.Errorf("derpd_admission_policy_matches{rule=user-b} = %v after B came back, want >= 1", v)
	}
	d.requireAlive(t)
	t.Logf("e2e body (after tailscaled binaries) took %v", time.Since(testStart).Round(time.Millisecond))
}
