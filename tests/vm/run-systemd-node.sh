#!/bin/bash
# The systemd node test (tests/vm/test_systemd_node.py) in a vmrun micro-VM booted with
# systemd as PID 1 on pure cgroup v2: Berth installed from the .deb (--deb, or $BERTH_DEB)
# or else by `meson install` of ./build, run as its units.
#
#   tests/vm/run-systemd-node.sh [--deb PATH] [--report DIR] [pytest args...]
#   tests/vm/run-systemd-node.sh --junitxml=/tmp/results/vm-systemd.xml
#
# --report DIR receives the guest's transcripts and figures (systemctl status,
# systemd-cgls, timings as JSON). Exit status and skips as run-cgroup-tests.sh: 0 with
# SKIPPED (a one-case JUnit report) when the harness cannot run here, 1 on failures,
# a VM failure or a timeout. Environment: VM_MEM (MB, 1536), VM_TIMEOUT (s, 1200).
set -uo pipefail
here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
repo=$(cd "$here/../.." && pwd)
vmrun=${VMRUN:-$here/vmrun}
suite=vm-systemd
what="systemd node test"
junit=""
deb=${BERTH_DEB:-}
report=""
args=()
shares=(--share "$repo")
abspath() { [[ $1 == /* ]] && echo "$1" || echo "$PWD/$1"; }
while (($#)); do
  case $1 in
    --deb) deb=$(abspath "$2"); shift 2 ;;
    --report) report=$(abspath "$2"); shift 2 ;;
    --junitxml=* | --junit-xml=*) junit=$(abspath "${1#*=}"); args+=("--junitxml=$junit"); shift ;;
    --junitxml | --junit-xml) junit=$(abspath "$2"); args+=("--junitxml=$junit"); shift 2 ;;
    *) args+=("$1"); shift ;;
  esac
done
# shellcheck source=tests/vm/runner-lib.sh
. "$here/runner-lib.sh"
probe_or_skip

envs=(--env PYTHONDONTWRITEBYTECODE=1)
if [[ -n $deb ]]; then
  [[ -f $deb ]] || { say "no package at $deb"; exit 2; }
  shares+=(--share "$deb")
  envs+=(--env "BERTH_DEB=$deb")
elif [[ ! -x $repo/build/cri/berthd ]]; then
  say "neither a .deb (--deb) nor a build (./build: scripts/build.sh) to install"
  exit 2
fi
if [[ -n $report ]]; then
  mkdir -p "$report" && shares+=(--share "$report") && envs+=(--env "BERTH_VM_REPORT=$report")
fi
[[ -n $junit ]] && mkdir -p "$(dirname "$junit")" && shares+=(--share "$(dirname "$junit")")

say "booting systemd in a VM for the node test (${deb:+package $(basename "$deb")}${deb:-meson install of ./build})"
"$vmrun" --systemd "${shares[@]}" "${envs[@]}" --cwd "$repo" --modules "bridge veth" \
  --mem "${VM_MEM:-1536}" --cpus "${VM_CPUS:-2}" --timeout "${VM_TIMEOUT:-1200}" -- \
  python3 -m pytest -q -p no:cacheprovider -s "$repo/tests/vm/test_systemd_node.py" "${args[@]}"
rc=$?
vm_status_outcome "$rc" "${VM_TIMEOUT:-1200}"
