#!/bin/sh
# Install the Debian packages derpd needs to build and test. As root it
# installs what is missing; otherwise it prints exactly what is missing.
set -eu
# clang, libfuzzer-14-dev and libclang-rt-14-dev (the ASan/UBSan/libFuzzer
# runtimes, which Debian 12's clang does not pull in) are for make fuzz;
# iproute2 (ip) sets up the network namespace one HTTP test makes;
# lintian checks the .deb (make check-deb; about 20 s to install); tmux is
# the terminal the derpctl top test runs in.
PKGS="build-essential pkg-config libssl-dev libsodium-dev libevent-dev
libcurl4-openssl-dev libcjson-dev libwslay-dev libgtest-dev mandoc openssl curl
ca-certificates clang libfuzzer-14-dev libclang-rt-14-dev iproute2 lintian tmux"
missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	    grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ -z "$missing" ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "derpd: missing Debian packages:$missing" >&2
	echo "derpd: run as root: apt-get install -y$missing" >&2
	exit 1
fi
echo "derpd: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing
