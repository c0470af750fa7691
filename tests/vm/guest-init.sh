#!/bin/busybox sh
# shellcheck shell=dash
# vmrun guest, stage 1: the initramfs's /init (PID 1, static busybox).
#
# Loads the virtio/9p/overlay modules, builds the new root (9p host "/" read-only as the
# lower layer of an overlay whose upper layer is tmpfs), mounts proc/sys/dev/cgroup2/...,
# the control share and the --share'd dirs, enables every cgroup v2 controller in the
# root's subtree_control, brings up lo, then switch_roots into stage 2
# (/run/vmrun/stage2, see guest-stage2.sh). Any failure prints VMRUN_INIT_FAILED on the
# console and powers off: the host then reports a VM failure (125).
export PATH=/bin
/bin/busybox mkdir -p /proc /sys /dev /tmp /newroot /lower /ovl
/bin/busybox --install -s /bin

mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys

fail() {
  echo "vmrun-init: $*"
  echo "VMRUN_INIT_FAILED"
  poweroff -f
  sleep 2
  reboot -f
}

# Modules, in dependency order (built by the host with modprobe --show-depends).
while read -r m; do
  [ -n "$m" ] || continue
  insmod "$m" || fail "insmod $m failed"
done </modules.list

# The 9p channels appear when virtio_mmio has probed its ACPI devices: retry briefly.
mount9p() { # tag dir options
  local tries=0
  while ! mount -t 9p -o "trans=virtio,version=9p2000.L,msize=512000,$3" "$1" "$2" 2>/tmp/mnt.err; do
    tries=$((tries + 1))
    if [ $tries -ge 50 ]; then
      cat /tmp/mnt.err
      return 1
    fi
    sleep 0.1
  done
}

mount9p hostroot /lower ro,cache=loose || fail "cannot mount the host root (9p tag hostroot)"
mount -t tmpfs -o mode=0755 tmpfs /ovl || fail "cannot mount the overlay's tmpfs"
mkdir -p /ovl/upper /ovl/work
mount -t overlay -o lowerdir=/lower,upperdir=/ovl/upper,workdir=/ovl/work,index=off,xino=off overlay /newroot \
  || fail "cannot mount the overlay root"
# overlayfs holds private clones of its layers: the staging mounts can go.
umount -l /lower
umount -l /ovl

R=/newroot
for d in proc sys dev tmp run; do
  [ -d $R/$d ] || mkdir -p $R/$d || fail "cannot create /$d"
done
mount --move /dev $R/dev || fail "cannot move /dev"
mount --move /proc $R/proc || fail "cannot move /proc"
mount --move /sys $R/sys || fail "cannot move /sys"

mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue $R/dev/hugepages
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts $R/dev/pts || fail "cannot mount devpts"
rm -f $R/dev/ptmx && ln -s pts/ptmx $R/dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev shm $R/dev/shm || fail "cannot mount /dev/shm"
mount -t mqueue -o nosuid,nodev,noexec mqueue $R/dev/mqueue || fail "cannot mount mqueue"
mount -t hugetlbfs -o mode=1770,gid=0 hugetlbfs $R/dev/hugepages || fail "cannot mount hugetlbfs"
[ -e $R/dev/fd ] || ln -s /proc/self/fd $R/dev/fd
[ -e $R/dev/stdin ] || ln -s /proc/self/fd/0 $R/dev/stdin
[ -e $R/dev/stdout ] || ln -s /proc/self/fd/1 $R/dev/stdout
[ -e $R/dev/stderr ] || ln -s /proc/self/fd/2 $R/dev/stderr

mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $R/tmp || fail "cannot mount /tmp"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs $R/run || fail "cannot mount /run"
mkdir -p $R/run/lock $R/run/vmrun/ctl
chmod 1777 $R/run/lock
mount9p vmctl $R/run/vmrun/ctl cache=none || fail "cannot mount the control share (9p tag vmctl)"
CTL=$R/run/vmrun/ctl
CGROUP_OPTS=nsdelegate,memory_recursiveprot
. $CTL/config || fail "cannot read the control share's config"

mount -t cgroup2 -o "$CGROUP_OPTS" cgroup2 $R/sys/fs/cgroup || fail "cannot mount cgroup2 ($CGROUP_OPTS)"
mount -t bpf -o mode=0700 bpf $R/sys/fs/bpf || fail "cannot mount bpffs"
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t securityfs securityfs $R/sys/kernel/security 2>/dev/null

# Every controller the kernel offers, enabled for the root's children.
for c in $(cat $R/sys/fs/cgroup/cgroup.controllers); do
  echo "+$c" >$R/sys/fs/cgroup/cgroup.subtree_control || fail "cannot enable the $c controller"
done

# --share'd host dirs, read-write at the same path (the host numbers them parents first).
i=0
while [ -f $CTL/share.$i ]; do
  p=$(cat $CTL/share.$i)
  mkdir -p "$R$p" || fail "cannot create the mount point $p"
  mount9p share$i "$R$p" cache=mmap,access=client,posixacl || fail "cannot mount the share $p"
  i=$((i + 1))
done

ip link set lo up || fail "cannot bring up lo"
hostname vmrun

cp /bin/busybox $R/run/vmrun/busybox && cp /stage2 $R/run/vmrun/stage2 \
  && chmod 0755 $R/run/vmrun/busybox $R/run/vmrun/stage2 || fail "cannot install stage 2"
exec switch_root $R /run/vmrun/stage2
fail "switch_root failed"
