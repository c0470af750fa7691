#!/bin/bash
# Installs what Berth needs to build and test on Debian 12 (root; apt only).
set -euo pipefail

packages=(
  meson ninja-build g++ pkg-config python3
  libseccomp-dev libcap-dev libfmt-dev nlohmann-json3-dev libsystemd-dev
  libgtest-dev libgmock-dev
  busybox-static python3-pytest iproute2 jq util-linux procps
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(runc crun)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
