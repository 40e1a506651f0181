#!/bin/sh
# The directories the Asterisk and fairline containers share (compose.yaml's volumes
# asterisk-spool, asterisk-log and fallback), made in both images at the same paths with the
# same owners and modes: an empty named volume takes them from the image of whichever container
# mounts it first. Ids, not names (Dockerfile): 950 Asterisk's user and group, in which fairline's
# user 951 is too. Asterisk runs with umask 027, so what it writes is readable by that group.
set -eu
d=${1:-/srv/fairline/docker}
install -d -o 950 -g 950 -m 750 "$d/spool" "$d/log" "$d/log/cdr-custom"  # fairline reads CDRs and logs
install -d -o 950 -g 950 -m 770 "$d/spool/recording"  # fairline moves each finished recording out
install -d -o 951 -g 950 -m 750 "$d/etc/fallback"  # fairline writes the fallback dialplan; Asterisk reads it
