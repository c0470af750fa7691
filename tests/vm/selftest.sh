#!/bin/bash
# Checks of the vmrun harness itself (each boots a VM; about a minute under TCG):
# exit status and controllers, byte-exact output through a slow pipe, live streaming,
# --timeout, a memory.max OOM kill, --share/--env/--cwd, the boot watchdog's retry,
# berth --version and a berth container placed in its cgroupsPath.
#
#   tests/vm/selftest.sh            prints "ok"/"FAIL" per check and a closing
#                                   "N passed, N failed" line; exit 1 on any failure
# Exit 0 with "SKIPPED" when vmrun --probe says the harness cannot run here (77).
set -uo pipefail
here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
repo=$(cd "$here/../.." && pwd)
V=$here/vmrun
berth=${RUNTIME:-$repo/build/runtime/berth}

probe_out=$("$V" --probe 2>&1)
prc=$?
if ((prc == 77)); then
  echo "vm selftest SKIPPED (${probe_out#vmrun: })"
  exit 0
fi

work=$(mktemp -d /tmp/vm-selftest.XXXXXX) || exit 2
trap 'rm -rf "$work"' EXIT
passed=0
failed=0
check() { # name, then a command whose status is the verdict
  local name=$1
  shift
  local t0=$SECONDS
  if "$@" >"$work/log" 2>&1; then
    passed=$((passed + 1))
    echo "ok   $name ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    echo "FAIL $name ($((SECONDS - t0)) s)"
    sed 's/^/     | /' "$work/log" | tail -n 30
  fi
}

t_probe() { [[ $prc == 0 ]] || { echo "$probe_out"; return 1; }; echo "$probe_out"; }

t_exit42() {
  local out rc
  out=$("$V" -- sh -c 'cat /sys/fs/cgroup/cgroup.subtree_control; grep -c cgroup /proc/mounts; exit 42')
  rc=$?
  echo "rc=$rc out=$out"
  [[ $rc == 42 ]] || return 1
  for c in cpuset cpu io memory pids; do
    [[ " $(head -n1 <<<"$out") " == *" $c "* ]] || { echo "controller $c not enabled"; return 1; }
  done
  [[ $(sed -n 2p <<<"$out") == 1 ]] || { echo "expected one cgroup mount (cgroup2 only)"; return 1; }
}

t_statuses() {
  "$V" -- true || return 1
  "$V" -- sh -c 'exit 1'
  [[ $? == 1 ]] || return 1
  "$V" -- sh -c 'kill -9 $$'
  [[ $? == 137 ]] || return 1
  "$V" -- /no/such/command
  [[ $? == 127 ]] || return 1
}

t_bigout() { # 20 MB generated in the guest, through a reader that stalls
  local want got
  want=$(python3 -c '
import hashlib, random
r = random.Random(7); print(hashlib.md5(r.randbytes(20 << 20)).hexdigest())')
  got=$("$V" -- python3 -c '
import random, sys
r = random.Random(7); sys.stdout.buffer.write(r.randbytes(20 << 20))' | python3 -c '
import hashlib, sys, time
h = hashlib.md5(); n = 0
while True:
    b = sys.stdin.buffer.read(65536)
    if not b: break
    h.update(b); n += len(b)
    time.sleep(1.0 if n <= 4 * 65536 else 0.001)
print(h.hexdigest())')
  echo "want $want got $got"
  [[ -n $want && $want == "$got" ]]
}

t_stream() { # ticks one second apart must arrive about one second apart
  "$V" -- sh -c 'for i in 1 2 3; do echo tick; sleep 1; done' | python3 -c '
import sys, time
ts = []
for line in sys.stdin:
    ts.append(time.monotonic())
print("gaps", [round(b - a, 2) for a, b in zip(ts, ts[1:])])
sys.exit(0 if len(ts) == 3 and all(0.6 < b - a < 2.5 for a, b in zip(ts, ts[1:])) else 1)'
}

t_timeout() {
  local t0=$SECONDS
  "$V" --timeout 10 -- sleep 300
  local rc=$?
  echo "rc=$rc after $((SECONDS - t0)) s"
  [[ $rc == 124 ]] && ((SECONDS - t0 < 25))
}

t_oom() {
  "$V" -- sh -c '
    cg=/sys/fs/cgroup/oomtest; mkdir $cg; echo 32M > $cg/memory.max
    sh -c "echo \$\$ > $cg/cgroup.procs; exec python3 -c \"b = b\\\"x\\\" * (64 << 20)\""
    rc=$?; echo "allocator rc=$rc"; cat $cg/memory.events
    [ $rc = 137 ] && grep -q "oom_kill 1" $cg/memory.events'
}

t_share() {
  mkdir -p "$work/sh a,b"
  echo host >"$work/sh a,b/in"
  "$V" --share "$work/sh a,b" --cwd "$work/sh a,b" --env 'X=1 2 $3' -- \
    sh -c 'cat in >out; echo "$X" >>out; pwd >>out' || return 1
  printf 'host\n1 2 $3\n%s\n' "$work/sh a,b" | cmp - "$work/sh a,b/out"
}

t_watchdog() {
  VMRUN_BOOT_TIMEOUT=20 VMRUN_TEST_STALL_BOOTS=1 "$V" -- echo second-boot | grep -qx second-boot
}

t_berth_version() { "$V" -- "$berth" --version; }

t_berth_cgroup() { # a berth container in the guest lands in its cgroupsPath
  [[ -x $berth ]] || { echo "no $berth"; return 1; }
  cat >"$work/ctr.sh" <<EOF
set -u
B=$berth
mkdir -p /tmp/b/rootfs/bin /tmp/b/rootfs/proc /tmp/b/rootfs/sys /tmp/b/rootfs/dev
cp /bin/busybox /tmp/b/rootfs/bin/busybox
for a in sh cat sleep; do ln -s busybox /tmp/b/rootfs/bin/\$a; done
cd /tmp/b && \$B spec || exit 1
python3 - <<'PY'
import json
c = json.load(open("config.json"))
c["process"]["terminal"] = False
c["process"]["args"] = ["sleep", "60"]
c["linux"]["cgroupsPath"] = "/vmtest/c1"
c["linux"]["resources"] = {"memory": {"limit": 33554432}, "pids": {"limit": 20},
                           "cpu": {"quota": 50000, "period": 100000}}
json.dump(c, open("config.json", "w"))
PY
\$B create --bundle /tmp/b c1 || exit 1
pid=\$(\$B state c1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["pid"])')
cg=/sys/fs/cgroup/vmtest/c1
echo "container pid \$pid; \$cg/cgroup.procs: \$(cat \$cg/cgroup.procs); /proc/\$pid/cgroup: \$(cat /proc/\$pid/cgroup)"
# Limits are berth's business, not the harness's: shown, not checked.
echo "limits (informational): memory.max=\$(cat \$cg/memory.max 2>&1) pids.max=\$(cat \$cg/pids.max 2>&1) cpu.max=\$(cat \$cg/cpu.max 2>&1)"
ok=1
grep -qx "\$pid" \$cg/cgroup.procs || { echo "pid \$pid is not in \$cg"; ok=0; }
\$B start c1 || ok=0
echo "inside: \$(\$B exec c1 cat /proc/self/cgroup)"
\$B delete --force c1 || ok=0
[ ! -d \$cg ] || { echo "cgroup \$cg left behind"; ok=0; }
[ \$ok = 1 ]
EOF
  "$V" --share "$work" -- bash "$work/ctr.sh"
}

echo "vm selftest ($V)"
check "probe" t_probe
check "exit status 42 + all controllers in the root subtree_control" t_exit42
check "exit statuses 0/1/137/127" t_statuses
check "20 MB through a stalling pipe, md5 intact" t_bigout
check "live streaming" t_stream
check "--timeout gives 124" t_timeout
check "memory.max=32M OOM-kills a 64 MiB allocator" t_oom
check "--share (space, comma) / --cwd / --env" t_share
check "boot watchdog retries a hung boot" t_watchdog
check "berth --version in the guest" t_berth_version
check "berth container lands in its cgroupsPath" t_berth_cgroup
echo "vm selftest: $passed passed, $failed failed"
((failed == 0))
