#!/bin/bash
# podman-run.sh - `podman run --rm bb true` wall time with berth vs runc as podman's runtime.
#
#   bench/podman-run.sh [--runs 20] [--warmup 2] [--berth PATH] [--runc PATH] [--out FILE.json]
#
# Method (as anchors-more.md §3): two podman worlds set up exactly like the interop suite
# (tests/interop/clients.py: the runtime registered under the name `runc` so that podman
# passes --log-format=json --log, cgroupfs manager, file events, netns none, k8s-file logs,
# storage/runroot/tmpdir of their own, the same one-layer busybox image imported in both).
# Each world's containers get a cgroup parent of their own under /berth-bench-podman-<tag>.
# After W warm-ups each, --runs rounds run one `podman run --rm --network none bb true` per
# runtime, interleaved and the order swapped every round (A B, B A, ...). Each call is a
# whole process spawned with posix_spawn and reaped with wait4: wall = spawn -> reap, client
# CPU = ru_utime + ru_stime (podman and what it waited for; conmon double-forks and is not
# included); whole-stack CPU = cpuacct.usage of the runtime's cgroup parent, which holds the
# client (moved there by a /bin/sh wrapper), conmon, the runtime and the container, read 0.5 s
# after the client exits. Reported: median / p90 / min wall, median client and whole-stack
# CPU, and the berth/runc ratios of the medians.
#
# Runs as root in a private mount namespace (unshare -m --propagation private); everything
# (containers, storage, mounts, cgroups, temp dir) is removed at the end.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

if [ "${1:-}" = "--__inner" ]; then
  shift
  export BENCH_REPO=$repo
  exec python3 - "$@" <<'PY'
import argparse, json, os, secrets, shutil, sys, tempfile, time
from pathlib import Path

repo = os.environ["BENCH_REPO"]
sys.path.insert(0, os.path.join(repo, "tests", "interop"))
sys.path.insert(0, os.path.join(repo, "bench"))
from benchlib import med, p90, spawn_timed  # noqa: E402
import interop_lib as L  # noqa: E402
from clients import Podman  # noqa: E402

ap = argparse.ArgumentParser(prog="podman-run.sh")
ap.add_argument("--runs", type=int, default=20)
ap.add_argument("--warmup", type=int, default=2)
ap.add_argument("--berth", default=os.path.join(repo, "build/runtime/berth"))
ap.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
ap.add_argument("--out")
o = ap.parse_args()

for b in ("podman", "conmon"):
    if not shutil.which(b):
        sys.exit(f"podman-run.sh: {b} is not installed (apt-get install podman conmon)")

tag = secrets.token_hex(3)
cg_parent = f"/berth-bench-podman-{tag}"
tmp = Path(tempfile.mkdtemp(prefix="bbpod."))  # podman: runroot must stay < 50 chars
errp = tmp / "call.err"


def call(argv, env, timeout=120):
    return spawn_timed(argv, env, stderr_path=str(errp), timeout=timeout, search_path=True)


worlds = {}
res = {}
failed = {}
load0 = os.getloadavg()
try:
    img = tmp / "image"
    img.mkdir()
    rootfs_tar = L.tar_rootfs(L.build_rootfs(img / "rootfs"), img / "rootfs.tar")
    for name, path in (("berth", o.berth), ("runc", o.runc)):
        if not os.access(path, os.X_OK):
            failed[name] = f"not found: {path}"
            continue
        if name == "berth":  # a snapshot: a concurrent rebuild must not swap it mid-run
            (tmp / "bin").mkdir(exist_ok=True)
            path = str(shutil.copy2(path, tmp / "bin" / "berth"))
        pm = Podman(tmp / f"podman-{name}", path, f"{cg_parent}/{name}", runtime_flags=L.runtime_flags(name))
        pm.setup(rootfs_tar)
        worlds[name] = pm
        res[name] = {"wall": [], "cpu": [], "stack_cpu": []}

    # Whole-stack CPU (v1 cpuacct): the client starts in <parent>/<rt>/client; conmon moves itself
    # to <parent>/<rt>/conmon (cgroupfs manager); containers go to <parent>/<rt>/libpod-<id> (or
    # stay in conmon's v1 cgroups with a runtime that only uses cgroup2). cpuacct.usage of
    # <parent>/<rt> covers them all; it is read before and 0.5 s after each call.
    acct = "/sys/fs/cgroup/cpuacct"
    use_acct = os.path.exists(acct + "/cpuacct.usage")
    for name in worlds:
        if use_acct:
            os.makedirs(f"{acct}{cg_parent}/{name}/client", exist_ok=True)

    def usage(name):
        with open(f"{acct}{cg_parent}/{name}/cpuacct.usage") as f:
            return int(f.read())

    def one(name):
        pm = worlds[name]
        argv = pm.cmd("run", "--rm", "--network", "none", "--cgroup-parent", pm.cg_parent, L.IMAGE_REF, "true")
        if not use_acct:
            return call(argv, pm.env) + (None,)
        wrap = ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', f"{acct}{cg_parent}/{name}/client/cgroup.procs", *argv]
        u0 = usage(name)
        rc, wall, cpu, err = call(wrap, pm.env)
        time.sleep(0.5)
        return rc, wall, cpu, err, (usage(name) - u0) / 1e6

    for name in list(worlds):
        for _ in range(o.warmup):
            rc, _, _, err, _ = one(name)
            if rc != 0:
                failed[name] = f"podman run failed rc={rc}: {err.strip()}"
                break
    live = [n for n in worlds if n not in failed]
    for i in range(o.runs):
        for name in (live if i % 2 == 0 else list(reversed(live))):
            if name in failed:
                continue
            rc, wall, cpu, err, stack = one(name)
            if rc != 0:
                failed[name] = f"podman run failed rc={rc} (run {i + 1}): {err.strip()}"
                continue
            res[name]["wall"].append(wall)
            res[name]["cpu"].append(cpu)
            if stack is not None:
                res[name]["stack_cpu"].append(stack)
finally:
    load1 = os.getloadavg()
    for pm in worlds.values():
        pm.cleanup()
    L.unmount_under(str(tmp))
    L.remove_cgroup_tree(cg_parent)
    shutil.rmtree(tmp, ignore_errors=True)

names = list(res)
print(f"\npodman run --rm bb true: {o.runs} interleaved rounds (order swapped each round) after {o.warmup} "
      f"warm-ups; load {load0[0]:.2f} -> {load1[0]:.2f}")
print(f"{'':30}" + "".join(f"{n:>10}" for n in names) + f"{'berth/runc':>13}")
rows = [("wall, median (ms)", lambda r: med(r["wall"]), True), ("wall, p90 (ms)", lambda r: p90(r["wall"]), False),
        ("wall, min (ms)", lambda r: min(r["wall"]) if r["wall"] else None, False),
        ("client CPU, median (ms)", lambda r: med(r["cpu"]), True),
        ("whole-stack CPU, median (ms)", lambda r: med(r["stack_cpu"]), True)]
ratios = {}
for label, fn, with_ratio in rows:
    vals = {n: fn(res[n]) for n in names}
    line = f"{label:30}" + "".join(f"{'-' if vals[n] is None else f'{vals[n]:.1f}':>10}" for n in names)
    rt = "-"
    if with_ratio and vals.get("berth") and vals.get("runc"):
        rt = f"{vals['berth'] / vals['runc']:.2f}"
        ratios[label] = vals["berth"] / vals["runc"]
    print(line + f"{rt:>13}")
for n, why in failed.items():
    print(f"\nFAILED {n}: {why}")
if o.out:
    Path(o.out).write_text(json.dumps({"runs": o.runs, "load": [load0, load1], "samples": res, "ratios": ratios,
                                       "failed": failed}, indent=1))
sys.exit(1 if failed else 0)
PY
fi

for a in "$@"; do
  case $a in -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
done
if [ "$(id -u)" != 0 ]; then echo "podman-run.sh: must run as root" >&2; exit 2; fi
command -v unshare >/dev/null || { echo "podman-run.sh: unshare (util-linux) is needed" >&2; exit 2; }
exec unshare -m --propagation private -- bash "$0" --__inner "$@"
