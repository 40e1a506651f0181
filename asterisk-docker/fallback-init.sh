#!/bin/sh
# Before Asterisk starts (compose.yaml's one-shot service `fallback`): the fallback dialplan that
# extensions.conf includes, which serves the calls while fairline is not connected. Without it
# every number would get the announcement and 503.
#
# Generated from the configuration only when the shared volume has none yet: a file already there
# was published by fairline for a stored configuration version (decision 0022), which is newer
# than the image's configuration file (decision 0021: the store is the truth).
set -eu
out=${FAIRLINE_ASTERISK_FALLBACK:?set FAIRLINE_ASTERISK_FALLBACK to the file that extensions.conf includes}
config=${FAIRLINE_CONFIG:?set FAIRLINE_CONFIG to the numbers configuration (YAML)}
if [ -s "$out" ]; then
    echo "fallback-init: kept $out (the last one published)"
    exit 0
fi
# Through a temporary file and a rename: Asterisk never reads half a file, and a failed
# generation leaves nothing behind that the next run would keep.
tmp=$(mktemp "$(dirname "$out")/.fallback.XXXXXX")
trap 'rm -f "$tmp"' EXIT
fairline dialplan generate "$config" > "$tmp"
chmod 644 "$tmp"
mv "$tmp" "$out"
trap - EXIT
numbers=$(grep -c '^exten => +' "$out" || true)
echo "fallback-init: wrote $out from $config ($numbers numbers)"
