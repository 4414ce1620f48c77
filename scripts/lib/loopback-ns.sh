# Sourced by recording scripts that capture on the loopback of a network namespace of their own:
# `loopback_ns NAME` creates it (lo up, MTU 1500, offloads off: segments as on Ethernet) and
# deletes it, with anything still running in it, on exit, after the caller's `on_exit` (if any).
# Nothing is added to the root namespace.
loopback_ns() {
    LOOPBACK_NS=$1
    trap _loopback_ns_cleanup EXIT
    ip netns add "$LOOPBACK_NS"
    ip -n "$LOOPBACK_NS" link set lo mtu 1500 up
    ip netns exec "$LOOPBACK_NS" ethtool -K lo tso off gso off gro off >/dev/null 2>&1 || true
}

_loopback_ns_cleanup() {
    set +e
    declare -F on_exit >/dev/null && on_exit
    if ip netns list | grep -qw "^$LOOPBACK_NS"; then
        for p in $(ip netns pids "$LOOPBACK_NS"); do kill "$p" 2>/dev/null; done
        sleep 0.3
        ip netns del "$LOOPBACK_NS"
    fi
}
