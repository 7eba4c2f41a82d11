#!/bin/sh
# Interop tier: the real Tailscale client code (tailscale.com v1.102.3)
# against build/derpd. Go missing is a skip, unless REQUIRE_INTEROP=1.
set -eu
derpd=$1
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v go >/dev/null 2>&1; then
	if [ "${REQUIRE_INTEROP:-0}" = 1 ]; then
		echo "interop: Go toolchain missing and REQUIRE_INTEROP=1" >&2
		exit 1
	fi
	echo "interop: SKIPPED (no Go toolchain; set REQUIRE_INTEROP=1 to fail)"
	exit 0
fi
cd "$here"
# ts_debug_websockets compiles in the derphttp WebSocket dialer; it is
# used only where a test sets TS_DEBUG_DERP_WS_CLIENT=1 (websocket_test.go).
DERPD=$derpd exec go test -tags ts_debug_websockets -count=1 -timeout 20m ./...
