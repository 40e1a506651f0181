#!/bin/sh
# Render dialplan/ into an instance directory (as stack.py does for the chroot), write the
# ARI/AMI users from the secrets file, check the version and the fallback dialplan, run Asterisk
# as the user this runs as (the image's asterisk; compose.yaml says so too: decision 0024).
# FAIRLINE_INSTANCE_DIR and FAIRLINE_DIALPLAN_DIR exist for the test that runs this outside a
# container (tests/e2e/test_docker_entrypoint.py); the image uses the defaults.
set -eu
secrets=${FAIRLINE_SECRETS:-/run/secrets/asterisk}
inst=${FAIRLINE_INSTANCE_DIR:-/srv/fairline/docker}
dialplan=${FAIRLINE_DIALPLAN_DIR:-/opt/fairline/dialplan}
say() { echo "docker-entrypoint: $*" >&2; }
[ -r "$secrets" ] || { say "no secrets file at $secrets (generate one: python3 asterisk-docker/stack.py secrets)"; exit 2; }
# Generated secrets are URL-safe base64: safe to source.
. "$secrets"
: "${ARI_USER:?$secrets has no ARI_USER}" "${ARI_PASSWORD:?$secrets has no ARI_PASSWORD}"
: "${AMI_USER:?$secrets has no AMI_USER}" "${AMI_SECRET:?$secrets has no AMI_SECRET}"
etc=$inst/etc
fallback=$etc/fallback/fairline-fallback.conf
# Without it Asterisk starts, and every call gets 503 while fairline is down: refuse instead.
[ -s "$fallback" ] || {
    say "no fallback dialplan at $fallback: while fairline is down every number would get 503;"
    say "compose.yaml's service fallback writes it (asterisk-docker/fallback-init.sh, fairline dialplan generate)"
    exit 2
}
mkdir -p "$etc" "$inst/spool/recording" "$inst/log/cdr-custom" "$inst/run" "$inst/db"
# The last start left etc read-only (below); the files are written anew.
chmod u+w "$etc"
rm -f "$etc"/*.conf
for f in "$dialplan"/*.conf; do
    sed -e "s|@INSTANCE_DIR@|$inst|g" \
        -e "s|@SIP_ADDRESS@|${FAIRLINE_SIP_ADDRESS:-127.0.0.1}|g" \
        -e "s|@SYSTEM_NAME@|${FAIRLINE_SYSTEM_NAME:-fairline1}|g" \
        -e "s|@SIP_PORT@|${FAIRLINE_SIP_PORT:-5060}|g" \
        -e "s|@HTTP_PORT@|${FAIRLINE_HTTP_PORT:-8088}|g" \
        -e "s|@AMI_PORT@|${FAIRLINE_AMI_PORT:-5038}|g" \
        -e "s|@RTP_START@|${FAIRLINE_RTP_START:-10000}|g" \
        -e "s|@RTP_END@|$(( ${FAIRLINE_RTP_START:-10000} + 999 ))|g" \
        -e "s|@CARRIER_IN_MATCH@|${FAIRLINE_CARRIER_IN_MATCH:-127.0.0.1}|g" \
        -e "s|@CARRIER_OUT_HOST@|${FAIRLINE_CARRIER_OUT_HOST:-127.0.0.1:5070}|g" \
        "$f" > "$etc/$(basename "$f")"
done
if grep -l '@[A-Z_]*@' "$etc"/*.conf; then say "unfilled template markers above"; exit 2; fi
(
    umask 077
    printf '[%s]\ntype = user\nread_only = no\npassword = %s\n' "$ARI_USER" "$ARI_PASSWORD" > "$etc/ari-users.conf"
    # fairline's AMI user: class config only (reload and read configuration), no events (decision 0022).
    printf '[%s]\nsecret = %s\ndeny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\nread = none\nwrite = config\n' \
        "$AMI_USER" "$AMI_SECRET" > "$etc/manager-users.conf"
)
# Read-only to Asterisk itself: AMI's class config (UpdateConfig) cannot rewrite manager.conf or the dialplan.
chmod a-w "$etc"/*.conf "$etc"
version=$(asterisk -V)
say "$version"
major=$(echo "$version" | sed -n 's/^Asterisk \([0-9]*\)\..*/\1/p')
[ "${major:-0}" -ge 22 ] || { say "$version is too old: fairline needs Asterisk 22 or newer"; exit 2; }
# What Asterisk writes (recordings, CDRs, logs) its group may read (fairline's user is in it); others nothing.
umask 027
exec asterisk -C "$etc/asterisk.conf" -f -n
