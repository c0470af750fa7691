#!/bin/bash
# The cgroup v2 tests (pytest -m cgroupv2: tests/integration, tests/cri/test_cgroupv2.py), run in a vmrun
# micro-VM whose cgroups are pure v2 with every controller enabled (the host's are hybrid).
#
#   tests/vm/run-cgroup-tests.sh [pytest args...]
#   tests/vm/run-cgroup-tests.sh --junitxml=/tmp/results/vm.xml
#   tests/vm/run-cgroup-tests.sh -m '' -k lifecycle     # any subset, marker or not
#
# One VM boot; the repo is shared read-write at its own path; pytest runs as root in the
# guest with RUNTIME (default: <repo>/build/runtime/berth). Extra arguments go to pytest
# after `-m cgroupv2` (a later -m replaces it). A --junitxml path is made absolute and its
# directory shared, so the report lands on the host.
#
# Exit status: pytest's (0 all passed, 1 failures, ...); 0 with "SKIPPED" when the
# harness cannot run on this host (vmrun --probe exits 77: no QEMU or no kernel), with a
# one-case JUnit report marked skipped so the suite still counts; 0 with "none selected"
# when a selection given matches no test, but 1 when the whole suite collects nothing
# (pytest's 5); 1 when the VM fails or times out; 2 on a usage or setup error.
#
# Environment: RUNTIME, VM_MEM (MB, 2048), VM_CPUS (2), VM_TIMEOUT (s, 3600),
# BERTH_ITEST_TIMEOUT (per runtime call in the guest, default 120: TCG is ~10x slower);
# BERTH_ITEST_* and PYTEST_ADDOPTS are passed to the guest.
set -uo pipefail
here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
repo=$(cd "$here/../.." && pwd)
vmrun=${VMRUN:-$here/vmrun}  # VMRUN: a stand-in, for the runner's own tests
runtime=${RUNTIME:-$repo/build/runtime/berth}

suite=vm-cgroupv2
what="cgroup v2 tests"
junit=""
selected=0
prev=""
for a in "$@"; do
  case $a in
    --junitxml=* | --junit-xml=*) junit=${a#*=} ;;
    --junitxml | --junit-xml) ;;
    *) [[ $prev == --junitxml || $prev == --junit-xml ]] && junit=$a || selected=1 ;;
  esac
  prev=$a
done
[[ -n $junit && $junit != /* ]] && junit=$PWD/$junit
# shellcheck source=tests/vm/runner-lib.sh
. "$here/runner-lib.sh"
probe_or_skip

if [[ ! -x $runtime ]]; then
  say "runtime $runtime not found or not executable (scripts/build.sh, or set RUNTIME)"
  exit 2
fi
runtime=$(readlink -f "$runtime")

# pytest arguments: absolute paths (the guest's cwd is the repo, and its /tmp is empty),
# shares for a --junitxml report's directory.
shares=(--share "$repo")
args=()
have_path=0
abspath() { [[ $1 == /* ]] && echo "$1" || echo "$PWD/$1"; }
share_parent() {
  local d
  d=$(dirname "$1")
  mkdir -p "$d" && shares+=(--share "$d")
}
while (($#)); do
  a=$1
  shift
  case $a in
    --junitxml=* | --junit-xml=*)
      p=$(abspath "${a#*=}")
      share_parent "$p"
      args+=("${a%%=*}=$p")
      ;;
    --junitxml | --junit-xml)
      (($#)) || { say "$a needs a path"; exit 2; }
      p=$(abspath "$1")
      shift
      share_parent "$p"
      args+=("$a" "$p")
      ;;
    -*)
      args+=("$a")
      ;;
    *)
      if [[ -e ${a%%::*} ]]; then
        have_path=1
        args+=("$(abspath "$a")")
      else
        args+=("$a")
      fi
      ;;
  esac
done
paths=()
((have_path)) || paths=("$repo/tests/integration" "$repo/tests/cri/test_cgroupv2.py")

envs=(--env "RUNTIME=$runtime" --env PYTHONDONTWRITEBYTECODE=1
  --env "BERTH_ITEST_TIMEOUT=${BERTH_ITEST_TIMEOUT:-120}")
while IFS= read -r k; do
  [[ $k == BERTH_ITEST_TIMEOUT ]] || envs+=(--env "$k")
done < <(compgen -e | grep -E '^(BERTH_ITEST_|PYTEST_ADDOPTS$)')

say "running the cgroup v2 tests in a VM (runtime $runtime)"
"$vmrun" "${shares[@]}" "${envs[@]}" --cwd "$repo" \
  --mem "${VM_MEM:-2048}" --cpus "${VM_CPUS:-2}" --timeout "${VM_TIMEOUT:-3600}" -- \
  python3 -m pytest -q -p no:cacheprovider \
  -o "markers=cgroupv2: needs a pure cgroup v2 hierarchy (run by tests/vm/run-cgroup-tests.sh)" \
  -m cgroupv2 "${paths[@]}" "${args[@]}"
rc=$?
case $rc in
  0) ;;
  5)
    if ((selected)); then
      say "cgroup v2 tests: none selected (no test matches the selection given; nothing ran)"
      report_outcome skipped "no test matches the selection given"
      rc=0
    else
      # The whole suite collected nothing: a broken suite, never a pass.
      say "cgroup v2 tests: FAILED: pytest collected no cgroup v2 test"
      report_outcome failure "pytest collected no cgroup v2 test"
      rc=1
    fi
    ;;
  *)
    vm_status_outcome "$rc" "${VM_TIMEOUT:-3600}"
    rc=$?
    ;;
esac
exit $rc
