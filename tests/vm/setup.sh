#!/bin/bash
# Installs what tests/vm/vmrun needs on a Debian 12 host (root; apt only):
# QEMU (microvm machine), Debian's kernel with its modules, and the guest-side tools.
# Idempotent: does nothing when everything is there. Exit 0 on success, 1 on failure.
#
#   tests/vm/setup.sh          install what is missing
#   tests/vm/setup.sh --check  only report what is missing (exit 1 if anything is)
set -uo pipefail

packages=(
  qemu-system-x86 linux-image-amd64
  busybox-static python3 cpio kmod util-linux coreutils gzip
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# The kernel must come with its modules (the guest loads them from the shared root).
if ! compgen -G '/boot/vmlinuz-*' >/dev/null; then
  [[ " ${missing[*]} " == *" linux-image-amd64 "* ]] || missing+=(linux-image-amd64)
fi

if ((${#missing[@]} == 0)); then
  exit 0
fi
if [[ "${1:-}" == "--check" ]]; then
  echo "vm setup: missing ${missing[*]}"
  exit 1
fi
if [[ $(id -u) != 0 ]]; then
  echo "vm setup: missing ${missing[*]} (run as root to install)" >&2
  exit 1
fi
echo "vm setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq; then
  echo "vm setup: apt-get update failed" >&2
  exit 1
fi
# No recommends: firmware, AppArmor tools and QEMU's optional extras are not needed.
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
  echo "vm setup: apt-get install ${missing[*]} failed" >&2
  exit 1
fi
exit 0
