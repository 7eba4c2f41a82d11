//go:build ts_debug_websockets

package interop

// wsTagged: derphttp can dial WebSockets in this build.
const wsTagged = true
