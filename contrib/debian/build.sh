#!/bin/sh
# build.sh B: build B/deb/derpd_<version>_<arch>.deb from the derpd and
# derpctl already built in B, with dpkg-deb alone (no debhelper, nothing
# downloaded): "make install" into a staging root with PREFIX=/usr, then
# what Debian policy asks of a binary package (stripped binaries,
# compressed man pages and changelog, copyright, md5sums, conffiles,
# Depends from dpkg-shlibdeps). make deb runs it.
set -eu
B=${1:-build}
cd "$(dirname "$0")/../.."
umask 022
ver=$(sed -n 's/^#define[[:space:]]*DERPD_VERSION[[:space:]]*"\(.*\)"$/\1/p' \
    src/derpd.h)
arch=$(dpkg --print-architecture)
[ -n "$ver" ] || { echo "build.sh: no DERPD_VERSION in src/derpd.h" >&2; exit 1; }
out=$B/deb
root=$out/root
rm -rf "$out"
mkdir -p "$root/DEBIAN"

# Debian 12 ships units in /lib/systemd/system (merged /usr or not).
make --no-print-directory install B="$B" DESTDIR="$root" PREFIX=/usr \
    UNITDIR=/lib/systemd/system >/dev/null
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    "$root/usr/sbin/derpd" "$root/usr/sbin/derpctl"
gzip -9n "$root"/usr/share/man/man*/*
install -d "$root/etc/default" "$root/usr/share/doc/derpd"
install -m 0644 contrib/examples/derpd.default "$root/etc/default/derpd"
install -m 0644 contrib/debian/copyright "$root/usr/share/doc/derpd/"
gzip -9nc contrib/debian/changelog >"$root/usr/share/doc/derpd/changelog.gz"
chmod 0644 "$root/usr/share/doc/derpd/changelog.gz"

for s in postinst prerm postrm; do
	install -m 0755 "contrib/debian/$s" "$root/DEBIAN/$s"
done
echo /etc/default/derpd >"$root/DEBIAN/conffiles"
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' |
    LC_ALL=C sort | xargs md5sum) >"$root/DEBIAN/md5sums"

# dpkg-shlibdeps wants a debian/control to read; give it a minimal one.
mkdir -p "$out/shlibs/debian"
printf 'Source: derpd\n\nPackage: derpd\nArchitecture: any\n' \
    >"$out/shlibs/debian/control"
deps=$(cd "$out/shlibs" && dpkg-shlibdeps -O "../root/usr/sbin/derpd" \
    "../root/usr/sbin/derpctl" 2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$deps" ] || { echo "build.sh: dpkg-shlibdeps found nothing" >&2; exit 1; }
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s|@VERSION@|$ver|" -e "s|@ARCH@|$arch|" -e "s|@SIZE@|$size|" \
    -e "s|@DEPENDS@|$deps, init-system-helpers (>= 1.54~)|" \
    contrib/debian/control.in >"$root/DEBIAN/control"

deb=$out/derpd_${ver}_${arch}.deb
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
