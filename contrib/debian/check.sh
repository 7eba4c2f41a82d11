#!/bin/sh
# check.sh B: make check-deb. Checks the .deb that build.sh made in B/deb:
# lintian finds no error or warning; it holds every file it must, with
# the right modes; its unit runs /usr/sbin/derpd and systemd-analyze
# accepts it; its sysusers.d and tmpfiles.d entries work (in a scratch
# root); the packaged derpd runs. Nothing is installed on this machine.
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
# systemd's own tools, on the packaged files, if this machine has them
# (not PID 1: nothing is started): the unit parses without a complaint,
# and the sysusers.d and tmpfiles.d entries make the user and the
# certificate directory in a scratch root.
if command -v systemd-analyze >/dev/null; then
	sed "s|=/usr/sbin/|=$PWD/$x/usr/sbin/|" "$unit" >"$B/deb/derpd.service"
	msg=$(systemd-analyze verify --man=no "$B/deb/derpd.service" 2>&1) ||
	    msg="exit $? $msg"
	[ -z "$msg" ] || { echo "check-deb: unit: $msg" >&2; fail=1; }
	rm -f "$B/deb/derpd.service"
fi
if command -v systemd-sysusers >/dev/null &&
    command -v systemd-tmpfiles >/dev/null; then
	r=$PWD/$B/deb/sysroot
	rm -rf "$r"
	mkdir -p "$r/etc"
	systemd-sysusers --root="$r" \
	    "$PWD/$x/usr/lib/sysusers.d/derpd.conf" >/dev/null 2>&1 || true
	systemd-tmpfiles --root="$r" --create \
	    "$PWD/$x/usr/lib/tmpfiles.d/derpd.conf" >/dev/null 2>&1 || true
	uid=$(awk -F: '$1 == "derpd" { print $3 }' "$r/etc/passwd")
	[ -n "$uid" ] || { echo "check-deb: sysusers made no derpd user" >&2; fail=1; }
	[ "$(stat -c '%a %u' "$r/etc/derpd/certs" 2>/dev/null)" = "750 $uid" ] ||
	    { echo "check-deb: tmpfiles did not make /etc/derpd/certs 0750 derpd" >&2; fail=1; }
	rm -rf "$r"
fi
"$x/usr/sbin/derpd" -version | grep -q "^derpd " ||
    { echo "check-deb: packaged derpd does not run" >&2; fail=1; }
rm -rf "$x"
[ "$fail" = 0 ] || exit 1
echo "check-deb: $deb: lintian clean, $(printf '%s\n' "$list" | wc -l) entries, \
$(dpkg-deb -f "$deb" Installed-Size) KiB installed"
