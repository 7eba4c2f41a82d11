#!/bin/sh
# check.sh B: make check-deb. Checks the .deb that build.sh made in B/deb:
# lintian finds no error or warning; it holds every file it must, with
# the right modes; its unit runs /usr/sbin/derpd; the packaged derpd runs.
# Nothing is installed on this machine.
set -eu
B=${1:-build}
cd "$(dirname "$0")/../.."
deb=$(ls "$B"/deb/derpd_*.deb)
command -v lintian >/dev/null || { echo "check-deb: lintian missing: contrib/install-deps.sh" >&2; exit 1; }
# Informational tags are shown; errors and warnings fail.
lintian --display-info --pedantic --fail-on error,warning "$deb" 2>/dev/null
fail=0
list=$(dpkg-deb -c "$deb")
for f in \
    "-rwxr-xr-x root/root ./usr/sbin/derpd" \
    "-rwxr-xr-x root/root ./usr/sbin/derpctl" \
    "-rw-r--r-- root/root ./usr/share/man/man8/derpd.8.gz" \
    "-rw-r--r-- root/root ./usr/share/man/man8/derpctl.8.gz" \
    "-rw-r--r-- root/root ./usr/share/man/man7/derpd-control.7.gz" \
    "-rw-r--r-- root/root ./usr/share/man/man7/derpd-admission.7.gz" \
    "-rw-r--r-- root/root ./lib/systemd/system/derpd.service" \
    "-rw-r--r-- root/root ./usr/lib/sysusers.d/derpd.conf" \
    "-rw-r--r-- root/root ./usr/lib/tmpfiles.d/derpd.conf" \
    "-rw-r--r-- root/root ./usr/share/bash-completion/completions/derpctl" \
    "-rw-r--r-- root/root ./etc/default/derpd" \
    "-rw-r--r-- root/root ./usr/share/doc/derpd/copyright"; do
	mode=${f%% *}; rest=${f#* }; owner=${rest%% *}; path=${rest#* }
	if ! printf '%s\n' "$list" | awk -v m="$mode" -v o="$owner" -v p="$path" \
	    '$1 == m && $2 == o && $6 == p { ok = 1 } END { exit !ok }'; then
		echo "check-deb: missing or wrong mode/owner: $f" >&2
		fail=1
	fi
done
x=$B/deb/extract
rm -rf "$x"
dpkg-deb -x "$deb" "$x"
unit=$x/lib/systemd/system/derpd.service
for l in "Type=notify" "ExecStart=/usr/sbin/derpd " \
    "ExecReload=/usr/sbin/derpctl "; do
	grep -q "^$l" "$unit" || { echo "check-deb: unit lacks $l" >&2; fail=1; }
done
if grep -q "@SBINDIR@\|/usr/local" "$unit"; then
	echo "check-deb: unit has a template or /usr/local path" >&2
	fail=1
fi
grep -q '^u derpd ' "$x/usr/lib/sysusers.d/derpd.conf" ||
    { echo "check-deb: sysusers.d entry lacks the derpd user" >&2; fail=1; }
dpkg-deb -I "$deb" postinst | grep -q 'systemd-sysusers derpd.conf' ||
    { echo "check-deb: postinst does not create the user" >&2; fail=1; }
"$x/usr/sbin/derpd" -version | grep -q "^derpd " ||
    { echo "check-deb: packaged derpd does not run" >&2; fail=1; }
rm -rf "$x"
[ "$fail" = 0 ] || exit 1
echo "check-deb: $deb: lintian clean, $(printf '%s\n' "$list" | wc -l) entries, \
$(dpkg-deb -f "$deb" Installed-Size) KiB installed"
