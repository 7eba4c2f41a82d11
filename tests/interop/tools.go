//go:build tools

// This file pins the derpprobe command to the same tailscale.com version as
// the rest of the module, so `go build tailscale.com/cmd/derpprobe` from this
// directory resolves through our go.mod (and go.sum covers its dependencies).
package interop

import _ "tailscale.com/cmd/derpprobe"
