#!/bin/bash
# exec-latency.sh - `RUNTIME exec ID /bin/true` into a running container: berth vs runc vs crun.
#
#   bench/exec-latency.sh [--runs 50] [--calls 2] [--rss-runs 20] [--warmup 3]
#                         [--runtimes berth,runc,crun] [--berth PATH] [--out FILE.json]
#
# Method (as anchors-more.md §1): one container per runtime (`sleep 1000`) from the same
# `runc spec` bundle (runc 1.1.5 default, read-only busybox root, a cgroupsPath of its own
# under /berth-bench-exec-<tag>), each runtime with its own --root. After W warm-ups per
# runtime, --calls x --runs rounds run one `exec` of each runtime per round, alternating
# (A B C A B C ...). Each exec is a whole process spawned with posix_spawn and reaped with
# wait4: wall = spawn -> reap, CPU = ru_utime + ru_stime of that rusage (the runtime and every
# descendant it reaped, including /bin/true). Peak RSS: --rss-runs more execs per runtime
# under GNU `time -f %M` (the largest process of the tree; /bin/true alone reads ~1 MiB),
# max over the runs. Reported: median and p90 wall, median CPU, peak RSS, per-call medians,
# and the ratios berth/runc and berth/crun (medians; < 1 means berth is faster/smaller).
#
# Runs as root in a private mount namespace (unshare -m --propagation private). On this
# hybrid cgroup host an empty file is bind-mounted over
# /sys/fs/cgroup/unified/cgroup.controllers there, because crun refuses hybrid hosts
# otherwise; every runtime is measured under the same condition. Needs python3 (stdlib),
# busybox-static, GNU time; a runtime that is not installed is left out (noted).
# Everything (containers, state roots, cgroups, temp dir) is removed at the end.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

if [ "${1:-}" = "--__inner" ]; then
  shift
  cc=/sys/fs/cgroup/unified/cgroup.controllers
  if [ -e "$cc" ] && [ "$(stat -f -c %T /sys/fs/cgroup)" != cgroup2fs ]; then
    empty=$(mktemp /tmp/berth-bench-cc.XXXXXX)
    if mount --bind "$empty" "$cc"; then export BENCH_CC_HIDDEN=1; else
      echo "warning: could not hide $cc; crun will refuse this hybrid host" >&2; fi
    rm -f "$empty"
  fi
  export BENCH_REPO=$repo
  exec python3 - "$@" <<'PY'
import argparse, json, os, secrets, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.environ["BENCH_REPO"], "bench"))
from benchlib import med, p90, spawn_timed  # noqa: E402
sys.path.insert(0, os.path.join(os.environ["BENCH_REPO"], "tests", "lib"))
from elf import is_static_elf  # noqa: E402

PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RT_ENV = {"PATH": PATH_ENV}

ap = argparse.ArgumentParser(prog="exec-latency.sh")
ap.add_argument("--runs", type=int, default=50)
ap.add_argument("--calls", type=int, default=2)
ap.add_argument("--rss-runs", type=int, default=20)
ap.add_argument("--warmup", type=int, default=3)
ap.add_argument("--runtimes", default="berth,runc,crun")
ap.add_argument("--berth", default=os.path.join(os.environ["BENCH_REPO"], "build/runtime/berth"))
ap.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
ap.add_argument("--crun", default=shutil.which("crun") or "/usr/bin/crun")
ap.add_argument("--out")
ap.add_argument("--keep-tmp", action="store_true")
o = ap.parse_args()

tag = secrets.token_hex(3)
cg_parent = f"/berth-bench-exec-{tag}"
tmp = tempfile.mkdtemp(prefix="berth-bench-exec.")
notes = []


def build_rootfs():
    bb = "/bin/busybox"
    if not (os.path.exists(bb) and is_static_elf(bb)):
        sys.exit("exec-latency: /bin/busybox must be Debian's busybox-static")
    r = os.path.join(tmp, "rootfs")
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "root"):
        os.makedirs(os.path.join(r, d), exist_ok=True)
    shutil.copy2(bb, os.path.join(r, "bin/busybox"))
    for a in subprocess.run([bb, "--list"], capture_output=True, text=True, check=True).stdout.split():
        p = os.path.join(r, "bin", a)
        if not os.path.lexists(p):
            os.symlink("busybox", p)
    return r


def spec(rootfs, cgroups_path):
    """runc spec (1.1.5) default with terminal false, `sleep 1000`, an absolute read-only root."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2-dev",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": ["sleep", "1000"],
                    "env": ["PATH=" + PATH_ENV, "TERM=xterm"], "cwd": "/",
                    "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted", "ambient")},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}], "noNewPrivileges": True},
        "root": {"path": rootfs, "readonly": True},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


outp = os.path.join(tmp, "call.out")
errp = os.path.join(tmp, "call.err")


def call(argv, timeout=30):
    """-> (rc, wall_ms, cpu_ms, stderr); stdout lands in outp"""
    return spawn_timed(argv, RT_ENV, stdout_path=outp, stderr_path=errp, timeout=timeout)


class RT:
    def __init__(self, name, path):
        self.name, self.path = name, path
        self.root = os.path.join(tmp, "state-" + name)
        self.cid = f"bench-exec-{name}-{tag}"
        self.bundle = os.path.join(tmp, "bundle-" + name)
        self.walls, self.cpus, self.rss, self.call_medians = [], [], [], []
        self.failed = None
        self.placement = "-"

    def argv(self, *a):
        return [self.path, "--root", self.root, *a]


def cgroup_mounts():
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            l, _, r = line.partition(" - ")
            if r.split()[0] in ("cgroup", "cgroup2"):
                out.append(l.split()[4])
    return out


def cleanup(rts):
    for rt in rts:
        if os.path.isdir(rt.root):
            call(rt.argv("kill", rt.cid, "KILL"))
            time.sleep(0.1)
            call(rt.argv("delete", "--force", rt.cid))
    for m in cgroup_mounts():
        top = os.path.join(m, cg_parent.lstrip("/"))
        if not os.path.isdir(top):
            continue
        for d in sorted((p for p, _, _ in os.walk(top)), key=len, reverse=True):
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    try:
                        for pid in open(os.path.join(d, "cgroup.procs")).read().split():
                            os.kill(int(pid), signal.SIGKILL)
                    except OSError:
                        pass
                    time.sleep(0.05)
    if not o.keep_tmp:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    names = [n for n in o.runtimes.split(",") if n]
    rts = []
    for n in names:
        path = getattr(o, n, None) or shutil.which(n)
        if not path or not os.access(path, os.X_OK):
            notes.append(f"{n}: not installed ({path}); left out")
            continue
        if n == "berth":  # a snapshot: a concurrent rebuild must not swap it mid-run
            os.makedirs(os.path.join(tmp, "bin"), exist_ok=True)
            path = shutil.copy2(path, os.path.join(tmp, "bin", "berth"))
        rts.append(RT(n, path))
    gnu_time = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None
    if not gnu_time:
        notes.append("GNU time (package `time`) not installed: no peak RSS")
    load0 = os.getloadavg()
    try:
        rootfs = build_rootfs()
        for rt in rts:
            os.makedirs(rt.bundle)
            with open(os.path.join(rt.bundle, "config.json"), "w") as f:
                json.dump(spec(rootfs, f"{cg_parent}/{rt.name}"), f)
            rc, _, _, err = call(rt.argv("run", "-d", "--bundle", rt.bundle, rt.cid))
            if rc != 0:
                rt.failed = f"run -d failed rc={rc}: {err.strip()}"
                continue
            # preflight: the exec really runs the process (output, exit code) and where it lands
            rc, _, _, err = call(rt.argv("exec", rt.cid, "sh", "-c", "echo MARK-$((40+2)); exit 3"))
            with open(outp) as f:
                out = f.read()
            if rc != 3 or "MARK-42" not in out:
                rt.failed = f"preflight exec: rc={rc} (want 3), stdout={out[:200]!r}, stderr={err.strip()[:300]}"
                continue
            call(rt.argv("exec", rt.cid, "cat", "/proc/self/cgroup"))
            with open(outp) as f:
                lines = [l for l in f.read().splitlines() if l.strip()]
            own = [l.split(":", 2)[1] or "unified" for l in lines if l.split(":", 2)[2].startswith(f"{cg_parent}/")]
            rt.placement = f"{len(own)}/{len(lines)} hierarchies in the container's cgroup ({','.join(own) or 'none'})"
            for _ in range(o.warmup):
                rc, _, _, err = call(rt.argv("exec", rt.cid, "/bin/true"))
                if rc != 0:
                    rt.failed = f"exec failed rc={rc}: {err.strip()}"
                    break
        live = [rt for rt in rts if not rt.failed]
        for c in range(o.calls):
            per = {rt.name: [] for rt in live}
            for i in range(o.runs):
                for rt in live:
                    if rt.failed:
                        continue
                    rc, wall, cpu, err = call(rt.argv("exec", rt.cid, "/bin/true"))
                    if rc != 0:
                        rt.failed = f"exec failed rc={rc} (call {c + 1}, run {i + 1}): {err.strip()}"
                        continue
                    rt.walls.append(wall)
                    rt.cpus.append(cpu)
                    per[rt.name].append(wall)
            for rt in live:
                rt.call_medians.append(med(per[rt.name]))
        if gnu_time:
            rssf = os.path.join(tmp, "rss")
            for i in range(o.rss_runs):
                for rt in live:
                    if rt.failed:
                        continue
                    rc, _, _, err = call([gnu_time, "-f", "%M", "-o", rssf, *rt.argv("exec", rt.cid, "/bin/true")])
                    if rc == 0:
                        rt.rss.append(int(open(rssf).read().split()[-1]))
    finally:
        load1 = os.getloadavg()
        cleanup(rts)

    def fmt(v, unit=""):
        return "-" if v is None else f"{v:.2f}{unit}"

    def ratio(a, b):
        return "-" if a is None or b is None or b == 0 else f"{a / b:.2f}"

    rows = [("exec wall, median (ms)", lambda r: med(r.walls)),
            ("exec wall, p90 (ms)", lambda r: p90(r.walls)),
            ("exec wall, min (ms)", lambda r: min(r.walls) if r.walls else None),
            ("exec CPU user+sys, median (ms)", lambda r: med(r.cpus)),
            ("exec peak RSS (MiB)", lambda r: max(r.rss) / 1024 if r.rss else None)]
    base = next((r for r in rts if r.name == "berth"), None)
    others = [r for r in rts if r is not base]
    print(f"\nexec of /bin/true into a running container: {o.calls} calls x {o.runs} runs, alternating; "
          f"RSS over {o.rss_runs} runs; load {load0[0]:.2f} -> {load1[0]:.2f}")
    hdr = f"{'':34}" + "".join(f"{r.name:>10}" for r in rts) + "".join(f"{'berth/' + r.name:>13}" for r in others if base)
    print(hdr)
    report = {"method": "exec-latency.sh", "runs": o.runs, "calls": o.calls, "rss_runs": o.rss_runs,
              "load": [load0, load1], "runtimes": {}, "ratios": {}, "notes": notes}
    for label, fn in rows:
        line = f"{label:34}" + "".join(f"{fmt(fn(r)):>10}" for r in rts)
        if base:
            line += "".join(f"{ratio(fn(base), fn(r)) if 'p90' not in label and 'min' not in label else '-':>13}"
                            for r in others)
        print(line)
    print(f"{'per-call wall medians (ms)':34}" + "".join(
        f" {'/'.join(f'{m:.1f}' for m in r.call_medians if m is not None) or '-':>11}" for r in rts))
    print("cgroup placement of the exec'd process (a runtime using only cgroup2 skips most of this work here):")
    for r in rts:
        print(f"  {r.name}: {r.placement}")
    for r in rts:
        report["runtimes"][r.name] = {"placement": r.placement, "path": r.path, "wall_ms": r.walls, "cpu_ms": r.cpus, "rss_kib": r.rss,
                                      "call_medians_ms": r.call_medians, "failed": r.failed}
        if r.failed:
            print(f"\nFAILED {r.name}: {r.failed}")
    if base:
        for r in others:
            report["ratios"][f"berth/{r.name}"] = {
                "wall_median": (med(base.walls) / med(r.walls)) if base.walls and r.walls else None,
                "cpu_median": (med(base.cpus) / med(r.cpus)) if base.cpus and r.cpus else None,
                "peak_rss": (max(base.rss) / max(r.rss)) if base.rss and r.rss else None}
    for n in notes:
        print("note:", n)
    if os.environ.get("BENCH_CC_HIDDEN"):
        print("note: /sys/fs/cgroup/unified/cgroup.controllers hidden by an empty file for every runtime (crun on hybrid host)")
    if o.out:
        with open(o.out, "w") as f:
            json.dump(report, f, indent=1)
    sys.exit(1 if any(r.failed for r in rts) else 0)


main()
PY
fi

for a in "$@"; do
  case $a in -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
done
if [ "$(id -u)" != 0 ]; then echo "exec-latency.sh: must run as root" >&2; exit 2; fi
command -v unshare >/dev/null || { echo "exec-latency.sh: unshare (util-linux) is needed" >&2; exit 2; }
exec unshare -m --propagation private -- bash "$0" --__inner "$@"
