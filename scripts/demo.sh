#!/bin/bash
# The main job, from a fresh Debian 12 machine (root, no internet): install, build, then
#  1. a busybox container straight through the OCI runtime (`berth run`), and
#  2. a real pod from a static manifest: an image built here from busybox-static and
#     pushed to a local registry, berthlet running the manifest through berthd (CRI), which
#     runs each container under berth-shim with berth as the OCI runtime and attaches the
#     pod with berth-bridge (scripts/demo_pod.py; --endpoint containerd for the interop path).
# Everything runs in a private mount namespace and is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-deps.sh
scripts/build.sh >/dev/null
berth="$PWD/build/runtime/berth"

work=$(mktemp -d /tmp/berth-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bundle/rootfs"/{bin,proc,sys,dev,etc,tmp}
cp /bin/busybox "$work/bundle/rootfs/bin/"
for applet in sh ls cat id ps hostname uname mount grep head; do
  ln -s busybox "$work/bundle/rootfs/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" >"$work/bundle/rootfs/etc/passwd"
(
  cd "$work/bundle"
  "$berth" spec
  # Not a terminal, and a script that shows what the container sees.
  jq '.process.terminal = false
      | .process.args = ["sh", "-c", "echo \"hello from $(hostname), pid $$, uid $(id -u)\"; echo; ps; echo; grep -E \"^(Cap(Eff|Bnd)|NoNewPrivs|Seccomp):\" /proc/self/status; echo; mount | head -n 8; ls /dev"]' \
    config.json >config.json.new && mv config.json.new config.json
  echo "== berth $("$berth" --version | head -n1 | cut -d' ' -f3): running a busybox container"
  unshare -m --propagation private "$berth" --root "$work/state" run demo
  echo "== container exited with status $?; state left behind: $(ls "$work/state" 2>/dev/null | wc -l) entries"
)

echo
echo "==== a pod from a static manifest through the whole stack"
unshare -m --propagation private /usr/bin/python3 scripts/demo_pod.py
