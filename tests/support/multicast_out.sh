#!/bin/bash
# Runs the headend's multicast output test inside a private network namespace, so
# nothing is ever sent on a real network: the headend and the receivers all live in
# it, and 239.0.0.0/8 is routed over its own loopback (run as `unshare --net`).
#
#   multicast_out.sh OUT HEADEND CATALOG ADDR TIMEOUT_S SECONDS CHANNEL:GROUP:PORT...
#
# Starts `HEADEND run --listen ADDR CATALOG`, waits up to TIMEOUT_S seconds for every
# CHANNEL's HLS master playlist (its pipeline is running), then receives each group
# for SECONDS with a separate process, tests/support/mcast_capture.py, into
# OUT/CHANNEL.cap. The headend's log is OUT/headend.log. Exits non-zero, saying why,
# if any step fails.
#
# With EDIT_FROM and EDIT_AT set, EDIT_AT seconds into the capture the file EDIT_FROM
# is renamed over CATALOG (the headend reloads it) and the moment, on the monotonic
# clock the captures' arrival times use, is written to OUT/edited.
set -euo pipefail

out=$1 headend=$2 catalog=$3 addr=$4 timeout=$5 seconds=$6
shift 6
capture=$(dirname "$0")/mcast_capture.py

# shellcheck source=netns.sh
. "$(dirname "$0")/netns.sh"

NO_COLOR=1 "$headend" run --listen "$addr" "$catalog" >"$out/headend.log" 2>&1 &
pids+=($!)

deadline=$((SECONDS + timeout))
for feed in "$@"; do
	channel=${feed%%:*}
	until curl -sf --max-time 5 -o /dev/null "http://$addr/live/$channel/master.m3u8"; do
		if [ $SECONDS -ge $deadline ]; then
			echo "channel $channel did not start within ${timeout}s" >&2
			exit 1
		fi
		sleep 0.2
	done
done

receivers=()
for feed in "$@"; do
	IFS=: read -r channel group port <<<"$feed"
	python3 "$capture" --group "$group" --port "$port" --iface-addr 127.0.0.1 \
		--duration "$seconds" --output "$out/$channel.cap" &
	receivers+=($!)
done
if [ -n "${EDIT_FROM:-}" ]; then
	sleep "$EDIT_AT"
	python3 -c 'import time; print(time.monotonic())' >"$out/edited"
	mv "$EDIT_FROM" "$catalog"
fi
for pid in "${receivers[@]}"; do
	wait "$pid"
done
