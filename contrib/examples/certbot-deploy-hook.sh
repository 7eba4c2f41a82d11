#!/bin/sh
# certbot deploy hook: install a renewed certificate for derpd and reload it.
#
# Install as /etc/letsencrypt/renewal-hooks/deploy/derpd (mode 0755). certbot
# runs it after each successful issuance or renewal with RENEWED_LINEAGE (the
# live/<name> directory) and RENEWED_DOMAINS set. Set DERPD_HOSTNAME to
# derpd's -hostname; for a DNS name the file names are <hostname>.crt and
# <hostname>.key (derpd(8), TLS AND CERTIFICATES).
set -eu

DERPD_HOSTNAME=${DERPD_HOSTNAME:-derp.example.net}
DERPD_CERTDIR=${DERPD_CERTDIR:-/etc/derpd/certs}
DERPD_USER=${DERPD_USER:-derpd}
DERPD_UNIT=${DERPD_UNIT:-derpd.service}

case " ${RENEWED_DOMAINS:-} " in
*" $DERPD_HOSTNAME "*) ;;
*) exit 0 ;;
esac

crt=$DERPD_CERTDIR/$DERPD_HOSTNAME.crt
key=$DERPD_CERTDIR/$DERPD_HOSTNAME.key

# derpd refuses a key that group or others can read: 0600, owned by derpd.
install -o "$DERPD_USER" -g "$DERPD_USER" -m 0644 \
    "$RENEWED_LINEAGE/fullchain.pem" "$crt.new"
install -o "$DERPD_USER" -g "$DERPD_USER" -m 0600 \
    "$RENEWED_LINEAGE/privkey.pem" "$key.new"
mv -f "$crt.new" "$crt"
mv -f "$key.new" "$key"

# SIGHUP: derpd loads the new pair for new connections and keeps the
# established ones; if the pair is bad it logs why and keeps the old one.
if systemctl is-active --quiet "$DERPD_UNIT"; then
	systemctl reload "$DERPD_UNIT"
fi
