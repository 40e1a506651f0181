#!/bin/sh
# Kamailio, the cluster's SIP edge (compose.cluster.yaml, decision 0034): cluster/kamailio.cfg rendered
# with this container's addresses (as cluster/cluster.py renders it for `make cluster`), the nodes
# written as the dispatcher's set 1, then Kamailio in the foreground as the user this runs as.
# `kamailio-entrypoint.sh check` renders and only checks the result (kamailio -c).
# FAIRLINE_KAMAILIO_DIR and FAIRLINE_KAMAILIO_TEMPLATE exist for the test that runs this outside a
# container (tests/e2e/test_kamailio_entrypoint.py); the image uses the defaults.
set -eu
dir=${FAIRLINE_KAMAILIO_DIR:-/srv/fairline/kamailio}
template=${FAIRLINE_KAMAILIO_TEMPLATE:-/opt/fairline/kamailio.cfg}
say() { echo "kamailio-entrypoint: $*" >&2; }
address=${FAIRLINE_EDGE_ADDRESS:?set FAIRLINE_EDGE_ADDRESS to the address the carrier and the nodes send SIP to}
nodes=${FAIRLINE_NODES:?set FAIRLINE_NODES to the nodes as ADDRESS:PORT, separated by spaces}
carrier_out=${FAIRLINE_CARRIER_OUT:?set FAIRLINE_CARRIER_OUT to ADDRESS:PORT of the carrier for calls to phones}
port=${FAIRLINE_EDGE_PORT:-5060}
lists=$dir/lists
# Written by compose.cluster.yaml's one-shot edge-lists (asterisk-docker/edge-lists.sh).
for list in carrier dialable; do
    [ -s "$lists/$list" ] || { say "no list $lists/$list: the one-shot service edge-lists writes it"; exit 2; }
done
mkdir -p "$dir/run"
{
    echo "# set 1: the nodes (FAIRLINE_NODES)"
    for node in $nodes; do echo "1 sip:$node"; done
} > "$dir/dispatcher.list"
sed -e "s|@ADDRESS@|$address|g" \
    -e "s|@PORT@|$port|g" \
    -e "s|@CTL_SOCKET@|$dir/run/kamailio.ctl|g" \
    -e "s|@DISPATCHER_LIST@|$dir/dispatcher.list|g" \
    -e "s|@LISTS_DIR@|$lists|g" \
    -e "s|@CARRIER_OUT@|$carrier_out|g" \
    "$template" > "$dir/kamailio.cfg"
if grep -n '@[A-Z_][A-Z_]*@' "$dir/kamailio.cfg"; then say "unfilled template markers above"; exit 2; fi
if [ "${1:-}" = check ]; then
    exec kamailio -c -f "$dir/kamailio.cfg"
fi
exec kamailio -DD -E -f "$dir/kamailio.cfg" -Y "$dir/run" -P "$dir/run/kamailio.pid"
