package interop

// Tier C: the real cmd/derpprobe (tailscale.com v1.102.3) against derpd over
// TLS with a mesh key: tls, udp (STUN), mesh and bw probes must all be good.

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"tailscale.com/tailcfg"
)

const tailscaleVersion = "v1.102.3"

// derpprobePath finds a derpprobe binary built from tailscale.com v1.102.3.
func derpprobePath(t *testing.T) string { return tailscaleTool(t, "derpprobe", "DERPPROBE") }

// tailscaleTool finds tailscale.com/cmd/<name> built from tailscale.com
// v1.102.3: $<envVar>, else $(go env GOPATH)/bin/<name> if its build info says
// v1.102.3, else it builds one from this module (pinned by go.mod, see
// tools.go).
func tailscaleTool(t *testing.T, name, envVar string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("$%s=%s: %v", envVar, p, err)
		}
		return p
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go command not found (needed to locate or build %s): %v", name, err)
	}
	out, err := exec.Command(goBin, "env", "GOPATH").Output()
	if err == nil {
		for _, gp := range filepath.SplitList(strings.TrimSpace(string(out))) {
			p := filepath.Join(gp, "bin", name)
			if bi, err := buildinfo.ReadFile(p); err == nil && bi.Main.Path == "tailscale.com" && bi.Main.Version == tailscaleVersion {
				return p
			} else if err == nil {
				t.Logf("ignoring %s: built from %s %s, want tailscale.com %s", p, bi.Main.Path, bi.Main.Version, tailscaleVersion)
			}
		}
	}
	p := filepath.Join(t.TempDir(), name)
	t.Logf("building %s from tailscale.com %s (module cache) ...", name, tailscaleVersion)
	start := time.Now()
	cmd := exec.Command(goBin, "build", "-o", p, "tailscale.com/cmd/"+name)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build tailscale.com/cmd/%s: %v\n%s", name, err, b)
	}
	t.Logf("built %s in %v", name, time.Since(start))
	return p
}

// TestDerpprobeIP is the IP-literal setup (HostName 127.0.0.1, derpd's own
// generated self-signed cert trusted via SSL_CERT_FILE). derpprobe's mesh
// probe cannot pass with an IP HostName whatever the server does (its prober
// clients require tls.ConnectionState.ServerName == HostName, and Go sends
// no SNI for IP literals, so ServerName is ""), so mesh probing is off here
// and covered by TestDerpprobeMesh.
func TestDerpprobeIP(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true, Mesh: true})
	runDerpprobe(t, d, false)
}

// TestDerpprobeMesh uses HostName "localhost" (derpd in manual cert mode with
// a test-made cert for localhost + 127.0.0.1, so SNI is sent) and runs every
// probe: tls, udp, mesh (single node) and bw.
func TestDerpprobeMesh(t *testing.T) {
	d := startDerpd(t, derpdOpts{TLS: true, Mesh: true, CertHostname: "localhost"})
	runDerpprobe(t, d, true)
}

func runDerpprobe(t *testing.T, d *derpd, mesh bool) {
	runDerpprobeRegion(t, []*derpd{d}, mesh, d.CertFile, 10_000_000)
}

// runDerpprobeRegion probes one region whose nodes are the given derpd
// instances (names 900a, 900b, ...): every node's tls and udp probe, and
// the bw (and mesh) probe of every ordered pair of nodes, which between
// two nodes crosses the mesh. certFile is what derpprobe trusts.
func runDerpprobeRegion(t *testing.T, nodes []*derpd, mesh bool, certFile string, bwSize int) {
	bin := derpprobePath(t)

	var names []string
	region := &tailcfg.DERPRegion{RegionID: 900, RegionCode: "cderp", RegionName: "C DERP"}
	for i, d := range nodes {
		stunPort := -1
		if _, p, ok := strings.Cut(d.STUNAddr, ":"); ok {
			stunPort, _ = strconv.Atoi(p)
		}
		name := fmt.Sprintf("900%c", 'a'+i)
		names = append(names, name)
		region.Nodes = append(region.Nodes, &tailcfg.DERPNode{
			Name:     name,
			RegionID: 900,
			HostName: d.Host,
			IPv4:     "127.0.0.1",
			// IPv6 left empty: "none" would still create a failing udp6 probe.
			DERPPort: d.Port,
			STUNPort: stunPort,
		})
	}
	dm := &tailcfg.DERPMap{
		Regions:            map[int]*tailcfg.DERPRegion{900: region},
		OmitDefaultRegions: true,
	}
	js, err := json.MarshalIndent(dm, "", "\t")
	if err != nil {
		t.Fatal(err)
	}
	dmPath := filepath.Join(t.TempDir(), "derpmap.json")
	if err := os.WriteFile(dmPath, js, 0o644); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args := []string{
		"--derp-map=file://" + dmPath,
		"--once",
		"--spread=false",
		"--mesh-psk-file=" + nodes[0].MeshKeyFile,
		"--bw-interval=15s",
		fmt.Sprintf("--bw-probe-size-bytes=%d", bwSize),
		"--listen=127.0.0.1:0",
	}
	if !mesh {
		args = append(args, "--mesh-interval=0")
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	// The tls probe uses system roots only: trust derpd's self-signed cert.
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+certFile)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	runErr := cmd.Run()
	t.Logf("derpprobe %s ran %v, exit: %v", strings.Join(args, " "), time.Since(start), runErr)
	defer func() {
		if t.Failed() {
			t.Logf("derpprobe output:\n%s", out.String())
		}
	}()

	var good, bad []string
	for _, line := range strings.Split(out.String(), "\n") {
		if _, s, ok := strings.Cut(line, "good: "); ok {
			good = append(good, s)
		}
		if _, s, ok := strings.Cut(line, "bad: "); ok {
			bad = append(bad, s)
		}
	}
	sort.Strings(good)
	t.Logf("good: %q", good)
	if len(bad) > 0 {
		t.Errorf("derpprobe reported bad probes: %q", bad)
	}
	if ctx.Err() != nil {
		t.Fatalf("derpprobe did not finish within 90s")
	}
	if runErr != nil {
		t.Errorf("derpprobe exit: %v, want status 0", runErr)
	}
	want := []string{"derpmap-probe"}
	for i, from := range names {
		want = append(want, "derp/cderp/"+from+"/tls")
		if nodes[i].STUNAddr != "" {
			want = append(want, "derp/cderp/"+from+"/udp")
		}
		for _, to := range names {
			want = append(want, "derp/cderp/"+from+"/"+to+"/bw")
			if mesh {
				want = append(want, "derp/cderp/"+from+"/"+to+"/mesh")
			}
		}
	}
	for _, w := range want {
		found := false
		for _, g := range good {
			if strings.HasPrefix(g, w+":") {
				found = true
			}
		}
		if !found {
			t.Errorf("no good: line for probe %s", w)
		}
	}
}
