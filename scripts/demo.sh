#!/bin/bash
# The main job, from a fresh Debian 12 machine: install, build, and run a busybox
# container with `berth run` (in a private mount namespace, cleaned up afterwards).
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
cd "$work/bundle"
"$berth" spec
# Not a terminal, and a script that shows what the container sees.
jq '.process.terminal = false
    | .process.args = ["sh", "-c", "echo \"hello from $(hostname), pid $$, uid $(id -u)\"; echo; ps; echo; grep -E \"^(Cap(Eff|Bnd)|NoNewPrivs|Seccomp):\" /proc/self/status; echo; mount | head -n 8; ls /dev"]' \
  config.json >config.json.new && mv config.json.new config.json

echo "== berth $("$berth" --version | head -n1 | cut -d' ' -f3): running a busybox container"
unshare -m --propagation private "$berth" --root "$work/state" run demo
echo "== container exited with status $?; state left behind: $(ls "$work/state" 2>/dev/null | wc -l) entries"
