//go:build !ts_debug_websockets

package interop

// wsTagged: derphttp cannot dial WebSockets in this build.
const wsTagged = false
