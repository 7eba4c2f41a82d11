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
DERPD=$derpd exec go test -count=1 -timeout 20m ./...
