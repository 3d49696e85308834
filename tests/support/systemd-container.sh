#!/bin/sh
# Boots systemd as PID 1 in a throwaway container, for tests of the generated units.
#
# Usage: systemd-container.sh STATE_DIR CGROUP_DIR NETNSCTL_BIN SETUP_DIR CONSOLE_FILE
#
# STATE_DIR is an empty directory owned by the caller. CGROUP_DIR is an empty cgroup v2
# directory made for this container. The contents of SETUP_DIR are copied into the container's
# root before boot. CONSOLE_FILE becomes the container's /dev/console and receives systemd's log.
#
# The script moves itself into CGROUP_DIR, enters new PID, mount, network, UTS, IPC and cgroup
# namespaces, and there builds the container root: an overlay of / whose upper and work
# directories live on a fresh tmpfs, so nothing the container writes reaches the machine. /dev
# is bind-mounted from the host, /sys read-only (so udev does not start), /proc, /run, /tmp and
# /var/tmp are fresh, and /sys/fs/cgroup is the container's own cgroup v2 tree. The netnsctl
# binary is bind-mounted at /usr/local/bin/netnsctl. Then it pivots into the overlay and runs
# systemd, which boots the empty netnsctl-test.target, so no unit of the machine starts unless a
# test starts it.
#
# unshare --kill-child makes the container die with this process.
set -eu

if [ "${1:-}" != --inside ]; then
    echo 0 >"$2/cgroup.procs"
    exec unshare --pid --mount --net --uts --ipc --cgroup --propagation private \
        --kill-child -- "$0" --inside "$@"
fi
shift
state=$1
bin=$3
setup=$4
console=$5

mount -t tmpfs -o mode=0755 netnsctl-test "$state"
mkdir "$state/upper" "$state/work" "$state/root"
mount -t overlay -o lowerdir=/,upperdir="$state/upper",workdir="$state/work" \
    netnsctl-test "$state/root"
root=$state/root

mount --rbind /dev "$root/dev"
mount --bind "$console" "$root/dev/console"
mount --rbind /sys "$root/sys"
mount -o remount,bind,ro "$root/sys"
mount -t cgroup2 -o nsdelegate cgroup2 "$root/sys/fs/cgroup"
mount -t proc proc "$root/proc"
for dir in run tmp var/tmp; do
    mount -t tmpfs -o mode=0755 netnsctl-test "$root/$dir"
done
chmod 1777 "$root/tmp" "$root/var/tmp"

touch "$root/usr/local/bin/netnsctl"
mount --bind "$bin" "$root/usr/local/bin/netnsctl"

cp -a "$setup/." "$root/"
mkdir -p "$root/run/systemd/system"
cat >"$root/run/systemd/system/netnsctl-test.target" <<'UNIT'
[Unit]
Description=netnsctl test container
UNIT

cd "$root"
mkdir -p oldroot
pivot_root . oldroot
umount -l /oldroot
rmdir /oldroot
exec env -i container=netnsctl-test PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /lib/systemd/systemd --unit=netnsctl-test.target --log-target=console
