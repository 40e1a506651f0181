#!/bin/sh
# The two lists the cluster's Kamailio loads (cluster/kamailio.cfg, decision 0034), as db_text tables in
# one directory: `carrier`, the carrier's source addresses (FAIRLINE_CARRIER_ADDRESSES, separated by
# spaces), and `dialable`, the phones the configuration may ring (`fairline dialplan dialable`).
# Used by `make cluster` (cluster/cluster.py) and by compose.cluster.yaml's one-shot edge-lists.
# Each file through a temporary one and a rename: Kamailio never reads half a list, and a failed
# generation leaves the last list in place. Reload a running Kamailio's with `kamcmd htable.reload NAME`.
set -eu
out=${FAIRLINE_KAMAILIO_LISTS:?set FAIRLINE_KAMAILIO_LISTS to the directory Kamailio reads its lists from}
config=${FAIRLINE_CONFIG:?set FAIRLINE_CONFIG to the numbers configuration (YAML)}
carriers=${FAIRLINE_CARRIER_ADDRESSES:?set FAIRLINE_CARRIER_ADDRESSES to the carrier source addresses}
tmp=$(mktemp "$out/.dialable.XXXXXX")
trap 'rm -f "$tmp"' EXIT
fairline dialplan dialable "$config" > "$tmp"
chmod 644 "$tmp"
mv "$tmp" "$out/dialable"
tmp=$(mktemp "$out/.carrier.XXXXXX")
fairline dialplan carrier-list $carriers > "$tmp"
chmod 644 "$tmp"
mv "$tmp" "$out/carrier"
trap - EXIT
echo "edge-lists: wrote $out/dialable ($(($(wc -l < "$out/dialable") - 1)) phones) and $out/carrier ($carriers)"
