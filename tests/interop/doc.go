// Package interop holds the Go interoperability tests for derpd, the C DERP
// relay server. The tests start the daemon named by $DERPD (default
// ../../build/derpd) on loopback ephemeral ports and drive it with Tailscale's
// own client packages (tailscale.com/derp, tailscale.com/derp/derphttp,
// tailscale.com/net/stun) and the derpprobe command, all pinned to
// tailscale.com v1.102.3.
//
// Run: cd tests/interop && DERPD=/abs/path/build/derpd go test -count=1 -timeout 20m ./...
package interop
