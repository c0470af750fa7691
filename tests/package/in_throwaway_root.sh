#!/bin/bash
# Runs a script as root in a throwaway copy of this host's root file system, so that a
# package can really be installed and purged without touching the host:
#
#   tests/package/in_throwaway_root.sh DIR SCRIPT [ARGS...]
#
# A private mount namespace holds an overlayfs whose lower layer is / and whose upper
# layer is a tmpfs: every write lands in the tmpfs and is gone at the end. DIR is
# bind-mounted at /tmp/berth-pkg; SCRIPT is a path inside the copy (e.g.
# /tmp/berth-pkg/check.sh), run by chroot with /proc, /sys and /dev from the host (not
# /run: no systemd is reachable, so nothing can be started through it).
set -u
die() { echo "in_throwaway_root: $*" >&2; exit 2; }
[ $# -ge 2 ] || die "usage: $0 DIR SCRIPT [ARGS...]"
[ "$(id -u)" = 0 ] || die "must run as root"

if [ "${BERTH_THROWAWAY_NS:-}" != 1 ]; then
  BERTH_THROWAWAY_NS=1 exec unshare -m --propagation private -- "$0" "$@"
fi

dir=$(cd "$1" && pwd) || die "no directory $1"
shift
top=$(mktemp -d "${TMPDIR:-/tmp}/berth-root.XXXXXX") || die "mktemp failed"
root=$top/merged
cleanup() {
  # Whatever the script left running inside the copy (nothing, normally: no init, and
  # policy-rc.d refuses starts) is ours: processes whose root is the copy.
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && kill -KILL "${p#/proc/}" 2>/dev/null
  done
  # Detaching the overlay takes its binds (the host's /dev, DIR) with it; only then is
  # $top an empty directory again. Never rm -r here: it could reach through a bind.
  umount -l "$root" 2>/dev/null
  umount -l "$top" 2>/dev/null
  rmdir "$top" 2>/dev/null || echo "in_throwaway_root: could not remove $top" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# The upper layer must not be on the lower layer's file system (overlapping layers).
mount -t tmpfs -o mode=0700 berth-root "$top" || die "cannot mount a tmpfs"
mkdir "$top/upper" "$top/work" "$root"
mount -t overlay berth-root -o "lowerdir=/,upperdir=$top/upper,workdir=$top/work" "$root" ||
  die "cannot mount the overlay"
for d in proc sys dev; do
  mount --rbind "/$d" "$root/$d" || die "cannot bind /$d"
done
mkdir -p "$root/tmp/berth-pkg"
mount --bind "$dir" "$root/tmp/berth-pkg" || die "cannot bind $dir"
# The Debian way to keep maintainer scripts from starting services in a chroot.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive \
  chroot "$root" "$@"
