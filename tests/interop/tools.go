//go:build tools

// This file pins the derpprobe, derper, tailscaled and tailscale commands to
// the same tailscale.com version as the rest of the module, so `go build
// tailscale.com/cmd/derpprobe` (or cmd/derper, cmd/tailscaled, cmd/tailscale)
// from this directory resolves through our go.mod (and go.sum covers their
// dependencies).
package interop

import (
	_ "tailscale.com/cmd/derper"
	_ "tailscale.com/cmd/derpprobe"
	_ "tailscale.com/cmd/tailscale"
	_ "tailscale.com/cmd/tailscaled"
)
