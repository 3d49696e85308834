#!/bin/bash
# The shell method: one shell per namespace doing what a systemd unit written for the job does.
#
#   shell-method.sh apply PREFIX N SYSCTL_FILE NFT_FILE [veth]
#   shell-method.sh teardown PREFIX N
#
# Namespaces are PREFIX0001..PREFIXN, set up one after another. NFT_FILE must start with
# "flush ruleset" so the load replaces the ruleset like the other two methods do.
set -eu

mode=$1 prefix=$2 count=$3

if [ "$mode" = teardown ]; then
    for i in $(seq 1 "$count"); do
        ip netns delete "$(printf '%s%04d' "$prefix" "$i")"
    done
    exit 0
fi

sysctl_file=$4 nft_file=$5 veth=${6:-}
host_pid=$$
for i in $(seq 1 "$count"); do
    name=$(printf '%s%04d' "$prefix" "$i")
    base=$((i * 4))
    v4_net="10.123.$((base >> 8))"
    v4_host="$v4_net.$(((base & 255) + 1))"
    v4_inner="$v4_net.$(((base & 255) + 2))"
    v6_host=$(printf 'fd00:0:0:%x::1' "$i")
    v6_inner=$(printf 'fd00:0:0:%x::2' "$i")
    unshare --net sh -eu -c '
        ip netns attach "$1" $$
        mkdir -p "/etc/netns/$1"
        touch "/etc/netns/$1/resolv.conf"
        ip link set dev lo up
        sysctl --ignore -q -p "$2"
        nft -f "$3"
        if [ -n "$4" ]; then
            ip link add veth0 type veth peer name "h-$1" netns "$5"
            ip addr add "$6/30" dev veth0
            ip addr add "$7/64" dev veth0 nodad
            ip link set veth0 up
            ip route add default via "$8"
            ip -6 route add default via "$9"
        fi
    ' shell-method "$name" "$sysctl_file" "$nft_file" "$veth" "$host_pid" \
        "$v4_inner" "$v6_inner" "$v4_host" "$v6_host"
    if [ -n "$veth" ]; then
        ip addr add "$v4_host/30" dev "h-$name"
        ip addr add "$v6_host/64" dev "h-$name" nodad
        ip link set "h-$name" up
    fi
done
