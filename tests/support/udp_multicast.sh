#!/bin/bash
# Runs one multicast source test inside a private network namespace, so nothing is
# ever sent on a real network: the sender, the headend and the HTTP client all live
# in it, and the group is routed over its own loopback (run as `unshare --net`).
#
#   udp_multicast.sh OUT HEADEND CATALOG ADDR CHANNEL RENDITION TIMEOUT_S SENDER...
#
# Starts SENDER (a command line), then `HEADEND run --listen ADDR CATALOG`, waits up
# to TIMEOUT_S seconds for the rendition and the audio playlists to list two
# segments, and saves into OUT: master.m3u8 and, for the rendition and `audio`,
# init.mp4 and the newest segment as TRACK-init.mp4, TRACK-segment.m4s. The logs are
# OUT/sender.log and OUT/headend.log. Exits non-zero, saying why, if any step fails.
set -euo pipefail

out=$1 headend=$2 catalog=$3 addr=$4 channel=$5 rendition=$6 timeout=$7
shift 7

# shellcheck source=netns.sh
. "$(dirname "$0")/netns.sh"

# A second link for the sources' `interface` option: a veth pair, mc0 and mc1, both in
# this namespace. A sender that sends on mc0 reaches a receiver that joins on mc1 (and
# not one that joins on lo, where the group's route points). Its datagrams come from
# an address of this host, which the kernel drops as martians unless told otherwise.
ip link add mc0 type veth peer name mc1
ip addr add 10.99.0.1/30 dev mc0
ip addr add 10.99.0.2/30 dev mc1
ip link set mc0 up
ip link set mc1 up
for conf in all mc0 mc1; do
	sysctl -qw "net.ipv4.conf.$conf.rp_filter=0" "net.ipv4.conf.$conf.accept_local=1"
done

"$@" >"$out/sender.log" 2>&1 &
pids+=($!)
NO_COLOR=1 "$headend" run --listen "$addr" "$catalog" >"$out/headend.log" 2>&1 &
pids+=($!)

base="http://$addr/live/$channel"
# The newest segment of a media playlist once it lists two (the first may be short).
newest() {
	curl -sf --max-time 5 "$base/$1/index.m3u8" 2>/dev/null | grep -v '^#' | awk 'NF { n++; last = $0 } END { if (n >= 2) print last }'
}
deadline=$((SECONDS + timeout))
while :; do
	video=$(newest "$rendition" || true)
	audio=$(newest audio || true)
	[ -n "$video" ] && [ -n "$audio" ] && break
	if [ $SECONDS -ge $deadline ]; then
		echo "no two segments in $base/{$rendition,audio}/index.m3u8 within ${timeout}s" >&2
		exit 1
	fi
	sleep 0.2
done
curl -sf --max-time 5 -o "$out/master.m3u8" "$base/master.m3u8"
for pair in "$rendition:$video" "audio:$audio"; do
	track=${pair%%:*} segment=${pair#*:}
	curl -sf --max-time 5 -o "$out/$track-init.mp4" "$base/$track/init.mp4"
	curl -sf --max-time 5 -o "$out/$track-segment.m4s" "$base/$track/$segment"
done
