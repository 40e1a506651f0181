#!/bin/sh
# Render dialplan/ into an instance directory (as stack.py does for the chroot),
# write the ARI/AMI users from the secrets file, check the version, run Asterisk.
set -eu
secrets=${FAIRLINE_SECRETS:-/run/secrets/fairline}
[ -r "$secrets" ] || { echo "docker-entrypoint: no secrets file at $secrets (generate one: python3 asterisk-docker/stack.py secrets)" >&2; exit 2; }
# Generated secrets are URL-safe base64: safe to source.
. "$secrets"
inst=/srv/fairline/docker
mkdir -p "$inst/etc" "$inst/etc/fallback" "$inst/spool" "$inst/log" "$inst/run" "$inst/db"
for f in /opt/fairline/dialplan/*.conf; do
    sed -e "s|@INSTANCE_DIR@|$inst|g" \
        -e "s|@SIP_PORT@|${FAIRLINE_SIP_PORT:-5060}|g" \
        -e "s|@HTTP_PORT@|${FAIRLINE_HTTP_PORT:-8088}|g" \
        -e "s|@AMI_PORT@|${FAIRLINE_AMI_PORT:-5038}|g" \
        -e "s|@RTP_START@|${FAIRLINE_RTP_START:-10000}|g" \
        -e "s|@RTP_END@|$(( ${FAIRLINE_RTP_START:-10000} + 999 ))|g" \
        -e "s|@CARRIER_IN_MATCH@|${FAIRLINE_CARRIER_IN_MATCH:-127.0.0.1}|g" \
        -e "s|@CARRIER_OUT_HOST@|${FAIRLINE_CARRIER_OUT_HOST:-127.0.0.1:5070}|g" \
        "$f" > "$inst/etc/$(basename "$f")"
done
if grep -l '@[A-Z_]*@' "$inst"/etc/*.conf; then echo "docker-entrypoint: unfilled template markers above" >&2; exit 2; fi
umask 077
printf '[%s]\ntype = user\nread_only = no\npassword = %s\n' "$ARI_USER" "$ARI_PASSWORD" > "$inst/etc/ari-users.conf"
# fairline's AMI user: class config only (reload and read configuration), no events (decision 0022).
printf '[%s]\nsecret = %s\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\nread = none\nwrite = config\n' \
    "$AMI_USER" "$AMI_SECRET" > "$inst/etc/manager-users.conf"
version=$(asterisk -V)
echo "docker-entrypoint: $version"
major=$(echo "$version" | sed -n 's/^Asterisk \([0-9]*\)\..*/\1/p')
[ "${major:-0}" -ge 22 ] || { echo "docker-entrypoint: $version is too old: fairline needs Asterisk 22 or newer" >&2; exit 2; }
exec asterisk -C "$inst/etc/asterisk.conf" -U root -f -n
