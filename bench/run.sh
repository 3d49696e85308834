#!/bin/bash
# Benchmark: netnsctl beside the shell method and the floor program.
#
#   sudo bench/run.sh [N...]            (default: 100 1000)
#
# Environment:
#   REPEAT=3            runs of each measurement; the table shows the median and the range
#   VARIANTS="base veth"   base: lo, sysctls, ruleset, resolv.conf; veth: plus a veth to the host
#   METHODS="floor floor-held netnsctl netnsctl-libnftables shell"
#                       floor-held: the floor, with teardown keeping every namespace open until
#                       all are unregistered, as netnsctl's down does. Any other netnsctl-NAME
#                       runs target/bench/netnsctl-NAME, to compare builds.
#   NETNSCTL_BUILD=1    build netnsctl (release, with and without the libnftables feature)
#
# Every measurement runs in its own throwaway network and mount namespace with private tmpfs
# mounts on /run/netns, /etc/netns and /run/netnsctl, so nothing is left on the machine. Between
# measurements the script waits for the kernel to finish destroying the namespaces of the previous
# one (the net_namespace slab count in /proc/slabinfo drops back).
set -eu

bench_dir=$(cd "$(dirname "$0")" && pwd)
repo_dir=$(dirname "$bench_dir")
out_dir=${OUT_DIR:-$repo_dir/target/bench}
prefix=b

# ---------------------------------------------------------------------------------------------
# Inside a sandbox: one method, one N, one variant. Prints "key=value" result lines.
# ---------------------------------------------------------------------------------------------

# Milliseconds since the epoch with microsecond resolution, without forking.
now_ms() {
    local t=${EPOCHREALTIME/./}
    echo $((t / 1000)).$(printf '%03d' $((t % 1000)))
}

elapsed() {
    awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'
}

write_config() {
    local count=$1 variant=$2 config=$3 i name base v4_net
    : >"$config"
    for i in $(seq 1 "$count"); do
        name=$(printf '%s%04d' "$prefix" "$i")
        cat >>"$config" <<TOML
[namespaces.$name]
sysctl = { "net.ipv4.ip_forward" = 1, "net.ipv6.conf.all.forwarding" = true, "net.ipv4.conf.all.rp_filter" = "2", "net.ipv4.tcp_syncookies" = 1 }
nftables_file = "$bench_dir/ruleset.nft"
TOML
        if [ "$variant" = veth ]; then
            base=$((i * 4))
            v4_net="10.123.$((base >> 8))"
            cat >>"$config" <<TOML
[[namespaces.$name.veth]]
name = "veth0"
peer = "h-$name"
addresses = ["$v4_net.$(((base & 255) + 2))/30", "$(printf 'fd00:0:0:%x::2' "$i")/64"]
peer_addresses = ["$v4_net.$(((base & 255) + 1))/30", "$(printf 'fd00:0:0:%x::1' "$i")/64"]
[[namespaces.$name.route]]
to = "default"
via = "$v4_net.$(((base & 255) + 1))"
[[namespaces.$name.route]]
to = "default"
via = "$(printf 'fd00:0:0:%x::1' "$i")"
TOML
        fi
    done
}

# Checks the first and the last namespace with independent tools; prints a problem or nothing.
verify() {
    local count=$1 variant=$2 i name
    [ "$(ls /run/netns | wc -l)" = "$count" ] || { echo "expected $count namespaces in /run/netns"; return; }
    for i in 1 "$count"; do
        name=$(printf '%s%04d' "$prefix" "$i")
        ip -n "$name" -o link show lo | grep -q ',UP' || { echo "$name: lo is not up"; return; }
        [ "$(ip netns exec "$name" cat /proc/sys/net/ipv4/conf/all/rp_filter)" = 2 ] ||
            { echo "$name: rp_filter is not 2"; return; }
        [ "$(ip netns exec "$name" cat /proc/sys/net/ipv4/tcp_syncookies)" = 1 ] ||
            { echo "$name: tcp_syncookies is not 1"; return; }
        [ "$(ip netns exec "$name" nft list ruleset | grep -c 'chain ')" = 2 ] ||
            { echo "$name: ruleset does not have two chains"; return; }
        [ -f "/etc/netns/$name/resolv.conf" ] || { echo "$name: no resolv.conf"; return; }
        if [ "$variant" = veth ]; then
            ip -n "$name" route show default | grep -q 'via 10.123.' ||
                { echo "$name: no IPv4 default route"; return; }
            ip -n "$name" -6 route show default | grep -q 'via fd00:' ||
                { echo "$name: no IPv6 default route"; return; }
            ip -o addr show dev "h-$name" | grep -q 'inet 10.123.' ||
                { echo "$name: host end has no IPv4 address"; return; }
        fi
    done
}

# Prints the mean wall time of deleting one veth pair with RTM_DELLINK, one after another.
measure_link_delete() {
    local i t0 t1
    for i in 1 2 3 4 5; do
        ip link add "del$i" type veth peer name "del${i}p"
    done
    t0=$(now_ms)
    for i in 1 2 3 4 5; do
        ip link delete "del$i"
    done
    t1=$(now_ms)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "link_delete_ms=%.1f\n", (b - a) / 5 }'
}

# Prints peak RSS and CPU time (user plus system) from a GNU time output file.
report_time() {
    tail -n1 "$1" | awk -v prefix="$2" '{ printf "%srss_kib=%s %scpu_ms=%.0f\n", prefix, $1, prefix, ($2 + $3) * 1000 }'
}

work=""
inside() {
    local method=$1 count=$2 variant=$3
    # A fresh /run and an overlay on /etc whose writes land on a tmpfs: nothing the measurement
    # creates, directories included, reaches the machine.
    mount -t tmpfs -o mode=0755 netnsctl-bench /run
    mkdir -p /run/netns /run/netnsctl /run/etc-overlay
    mount -t tmpfs -o mode=0700 netnsctl-bench /run/etc-overlay
    mkdir /run/etc-overlay/upper /run/etc-overlay/work
    mount -t overlay -o lowerdir=/etc,upperdir=/run/etc-overlay/upper,workdir=/run/etc-overlay/work \
        netnsctl-bench /etc
    mkdir -p /etc/netns
    mount -t tmpfs -o mode=0755 netnsctl-bench /etc/netns
    ip link set lo up
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    local veth_arg=""
    [ "$variant" = veth ] && veth_arg=veth
    local t0 t1 t2 t3 t4 t5 output
    case $method in
    floor | floor-held)
        t0=$(now_ms)
        /usr/bin/time -f "%M %U %S" -o "$work/rss" "$out_dir/floor" apply "$prefix" "$count" "$bench_dir/ruleset.nft" $veth_arg
        t1=$(now_ms)
        echo "apply_ms=$(elapsed "$t0" "$t1")"
        report_time "$work/rss" ""
        echo "problem=$(verify "$count" "$variant" | tr " " "_")"
        # The middle namespace: a lookup scans the dcache chain from the newest entry.
        "$out_dir/lookup-cost" "/run/netns/$(printf '%s%04d' "$prefix" $(((count + 1) / 2)))"
        t2=$(now_ms)
        if [ "$method" = floor ]; then
            "$out_dir/floor" teardown "$prefix" "$count"
        else
            "$out_dir/floor" teardown-held "$prefix" "$count"
        fi
        t3=$(now_ms)
        echo "teardown_ms=$(elapsed "$t2" "$t3")"
        if [ "$method" = floor ]; then
            measure_link_delete
        fi
        ;;
    netnsctl*)
        local binary="$out_dir/$method"
        write_config "$count" "$variant" "$work/netnsctl.toml"
        t0=$(now_ms)
        /usr/bin/time -f "%M %U %S" -o "$work/rss" "$binary" -c "$work/netnsctl.toml" apply >"$work/apply.out"
        t1=$(now_ms)
        echo "apply_ms=$(elapsed "$t0" "$t1")"
        report_time "$work/rss" ""
        echo "problem=$(verify "$count" "$variant" | tr " " "_")"
        t2=$(now_ms)
        /usr/bin/time -f "%M %U %S" -o "$work/rss-noop" "$binary" -c "$work/netnsctl.toml" apply >"$work/noop.out"
        t3=$(now_ms)
        echo "noop_ms=$(elapsed "$t2" "$t3")"
        report_time "$work/rss-noop" noop_
        echo "noop_steps=$(wc -l <"$work/noop.out")"
        t4=$(now_ms)
        "$binary" -c "$work/netnsctl.toml" down --all >/dev/null
        t5=$(now_ms)
        echo "teardown_ms=$(elapsed "$t4" "$t5")"
        ;;
    shell)
        printf 'flush ruleset\n' >"$work/ruleset.nft"
        cat "$bench_dir/ruleset.nft" >>"$work/ruleset.nft"
        t0=$(now_ms)
        "$bench_dir/shell-method.sh" apply "$prefix" "$count" "$bench_dir/sysctl.conf" "$work/ruleset.nft" $veth_arg
        t1=$(now_ms)
        echo "apply_ms=$(elapsed "$t0" "$t1")"
        echo "problem=$(verify "$count" "$variant" | tr " " "_")"
        t2=$(now_ms)
        "$bench_dir/shell-method.sh" teardown "$prefix" "$count"
        t3=$(now_ms)
        echo "teardown_ms=$(elapsed "$t2" "$t3")"
        ;;
    esac
    echo "left=$(ls /run/netns | wc -l)"
}

if [ "${1:-}" = --inside ]; then
    shift
    inside "$@"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Outside: build, run every measurement in a fresh sandbox, print the table.
# ---------------------------------------------------------------------------------------------

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (it creates namespaces in a sandbox)" >&2; exit 1; }
counts=${*:-100 1000}
repeat=${REPEAT:-3}
variants=${VARIANTS:-base veth}
methods=${METHODS:-floor floor-held netnsctl netnsctl-libnftables shell}
mkdir -p "$out_dir"

cc -O2 -Wall -o "$out_dir/floor" "$bench_dir/floor.c" -lnftables
cc -O2 -Wall -o "$out_dir/lookup-cost" "$bench_dir/lookup-cost.c"
if [ "${NETNSCTL_BUILD:-1}" = 1 ]; then
    (cd "$repo_dir" && cargo build --release --quiet)
    cp "$repo_dir/target/release/netnsctl" "$out_dir/netnsctl"
    (cd "$repo_dir" && cargo build --release --quiet --features libnftables)
    cp "$repo_dir/target/release/netnsctl" "$out_dir/netnsctl-libnftables"
fi

live_namespaces() {
    awk '$1 == "net_namespace" { print $2 }' /proc/slabinfo
}

# Waits until the kernel has destroyed the namespaces of the previous measurement: netns cleanup
# runs in a kernel worker after the last reference is gone and would otherwise eat CPU time of
# the next measurement.
wait_for_cleanup() {
    local baseline=$1 previous current stable=0 waited=0
    previous=$(live_namespaces)
    while [ "$waited" -lt 600 ]; do
        sleep 0.5
        waited=$((waited + 1))
        current=$(live_namespaces)
        [ "$current" -le $((baseline + 5)) ] && return 0
        if [ "$current" -ge "$previous" ]; then
            stable=$((stable + 1))
            [ "$stable" -ge 6 ] && return 0
        else
            stable=0
        fi
        previous=$current
    done
}

baseline=$(live_namespaces)
results="$out_dir/results.txt"
: >"$results"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPUs; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); kernel $(uname -r)" | tee -a "$results"
for run in $(seq 1 "$repeat"); do
    for variant in $variants; do
        for count in $counts; do
            for method in $methods; do
                case $method in floor | floor-held | shell) ;; *) [ -x "$out_dir/$method" ] || continue ;; esac
                output=$(unshare --net --mount --propagation private -- "$0" --inside "$method" "$count" "$variant" 2>&1) || true
                line="run=$run variant=$variant n=$count method=$method $(echo "$output" | grep -E '^[a-z_]+=' | tr '\n' ' ' | sed 's/problem= //')"
                echo "$line" | tee -a "$results"
                echo "$output" | grep -vE '^[a-z_]+=' | head -5 | sed 's/^/    /'
                wait_for_cleanup "$baseline"
            done
        done
    done
done

"$bench_dir/table.py" "$results"
