# Sourced by the scripts that run inside `unshare --net`: brings the namespace's own
# loopback up for multicast and routes 239.0.0.0/8 over it, so a group's datagrams
# reach receivers in the namespace and nothing else; then kills, on exit, every
# process whose PID the script adds to `pids`.
ip link set lo up
ip link set lo multicast on
ip route add 239.0.0.0/8 dev lo

pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
}
trap cleanup EXIT
