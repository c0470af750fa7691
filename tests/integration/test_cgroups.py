"""cgroup v2 limits, end to end: what linux.resources does to a running container.

Every test needs a pure cgroup v2 host (cgroup2 at /sys/fs/cgroup with the memory, pids
and cpu controllers), such as the tests/vm/vmrun guest:

    tests/vm/run-cgroup-tests.sh            (pytest -m cgroupv2 tests/integration, in the VM)

On a hybrid host (cgroup2 at /sys/fs/cgroup/unified, no controllers) they are skipped.
Limits are checked from inside the container (its /sys/fs/cgroup is its own cgroup) and
on the host under /sys/fs/cgroup<cgroupsPath>. The commands tested here (update,
pause/resume, events, ps) are implemented: they never skip for want of one.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

import helpers as H
from helpers import RUNTIME

CGROUP = Path("/sys/fs/cgroup")


def _cgroup2_problem() -> str | None:
    """Why this host cannot run the tests, or None."""
    fstype = next((m[2] for m in H.mountinfo() if m[0] == str(CGROUP)), None)
    if fstype != "cgroup2":
        return f"{CGROUP} is {fstype or 'not mounted'}, not a pure cgroup v2 hierarchy"
    offered = set((CGROUP / "cgroup.controllers").read_text().split())
    missing = {"memory", "pids", "cpu"} - offered
    if missing:
        return f"cgroup2 lacks the {' '.join(sorted(missing))} controller(s)"
    return None


_PROBLEM = _cgroup2_problem()
pytestmark = [pytest.mark.cgroupv2, pytest.mark.skipif(_PROBLEM is not None, reason=_PROBLEM or "")]


# --------------------------------------------------------------------------------------
# helpers


def resources(bundle, res: dict) -> None:
    """Merge `res` into linux.resources (devices lists are appended)."""
    def change(c):
        r = c["linux"].setdefault("resources", {})
        for k, v in res.items():
            if k == "devices":
                r.setdefault("devices", []).extend(v)
            elif isinstance(v, dict):
                r.setdefault(k, {}).update(v)
            else:
                r[k] = v
    H.update_config(bundle, change)


def host_cgroup(bundle) -> Path:
    return CGROUP / H.read_config(bundle)["linux"]["cgroupsPath"].lstrip("/")


def run_script(env, bundle, script: str, *extra) -> str:
    H.sh(bundle, script)
    return env.run_ok(bundle, *extra)


def values(text: str) -> dict[str, str]:
    """'key value' lines (cpu.stat, memory.events) as a dict."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


def vda():
    """(path, major, minor) of the VM's scratch block device, or skip."""
    try:
        st = os.stat("/dev/vda")
    except OSError:
        pytest.skip("no /dev/vda (the tests/vm/vmrun guest has a 1 GiB null disk there)")
    return "/dev/vda", os.major(st.st_rdev), os.minor(st.st_rdev)


def with_vda(bundle, access: str | None) -> tuple[int, int]:
    """Give the container /dev/vda; allow `access` on it (None: no allow rule)."""
    _, major, minor = vda()

    def change(c):
        c["linux"]["devices"] = [{"path": "/dev/vda", "type": "b", "major": major, "minor": minor,
                                  "fileMode": 0o660, "uid": 0, "gid": 0}]
        if access:
            c["linux"]["resources"]["devices"].append(
                {"allow": True, "type": "b", "major": major, "minor": minor, "access": access})
    H.update_config(bundle, change)
    return major, minor


# --------------------------------------------------------------------------------------
# limits at create


def test_memory_limit_oom_kills(env, bundle):
    """A process that outgrows memory.limit is OOM-killed, and memory.events counts it."""
    resources(bundle, {"memory": {"limit": 32 << 20, "swap": 32 << 20}})
    out = run_script(env, bundle, "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.swap.max; "
                                  "awk 'BEGIN { s = \"x\"; while (1) s = s s }'; echo rc=$?; "
                                  "cat /sys/fs/cgroup/memory.events")
    lines = out.split()
    assert lines[0] == str(32 << 20), out
    assert lines[1] == "0", out  # memory+swap == memory: no swap
    assert "rc=137" in out, out
    assert int(values(out)["oom_kill"]) >= 1, out


def test_memory_reservation_and_swap_conversion(env, bundle):
    """OCI swap is memory+swap; v2's memory.swap.max is swap alone."""
    resources(bundle, {"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 16 << 20}})
    out = run_script(env, bundle, "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.low "
                                  "/sys/fs/cgroup/memory.swap.max").split()
    assert out == [str(64 << 20), str(16 << 20), str(32 << 20)], out


def test_memory_unlimited(env, bundle):
    resources(bundle, {"memory": {"limit": -1}})
    out = run_script(env, bundle, "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory.swap.max").split()
    assert out == ["max", "max"], out


def test_pids_limit_fork_fails(env, bundle):
    resources(bundle, {"pids": {"limit": 5}})
    # The inner shell gives up at the first failed fork; the outer one reports.
    out = run_script(env, bundle, "cat /sys/fs/cgroup/pids.max; sh -c 'i=0; while [ $i -lt 10 ]; do sleep 1 & "
                                  "i=$((i+1)); done; wait' 2>&1; sleep 2; cat /sys/fs/cgroup/pids.events")
    assert out.splitlines()[0] == "5", out
    assert "can't fork" in out, out
    assert int(values(out)["max"]) >= 1, out


def test_cpu_quota_throttles(env, bundle):
    resources(bundle, {"cpu": {"quota": 10000, "period": 100000, "shares": 512}})
    out = run_script(env, bundle, "cat /sys/fs/cgroup/cpu.max /sys/fs/cgroup/cpu.weight; "
                                  "sh -c 'while :; do :; done' & p=$!; sleep 2; kill $p; "
                                  "cat /sys/fs/cgroup/cpu.stat")
    lines = out.splitlines()
    assert lines[0] == "10000 100000", out
    assert lines[1] == "20", out  # shares 512 → weight 1 + (510*9999)/262142
    stat = values(out)
    assert int(stat["nr_throttled"]) > 0, out
    # 10 % of one CPU for 2 s is about 0.2 s of CPU time (generous bound for a slow VM).
    assert int(stat["usage_usec"]) < 1_500_000, out


def test_cpu_unlimited_quota_keeps_period(env, bundle):
    resources(bundle, {"cpu": {"quota": -1, "period": 50000}})
    assert run_script(env, bundle, "cat /sys/fs/cgroup/cpu.max").strip() == "max 50000"


def test_cpuset_pins(env, bundle):
    cpu = str((os.cpu_count() or 1) - 1)
    resources(bundle, {"cpu": {"cpus": cpu, "mems": "0"}})
    out = run_script(env, bundle, "cat /sys/fs/cgroup/cpuset.cpus /sys/fs/cgroup/cpuset.mems; "
                                  "grep Cpus_allowed_list /proc/self/status")
    lines = out.splitlines()
    assert lines[0] == cpu and lines[1] == "0", out
    assert lines[2].split()[-1] == cpu, out


def test_io_max_slows_direct_reads(env, bundle):
    major, minor = with_vda(bundle, "r")
    resources(bundle, {"blockIO": {"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1 << 20}]}})
    H.sh(bundle, "cat /sys/fs/cgroup/io.max; dd if=/dev/vda of=/dev/null bs=65536 count=48 iflag=direct 2>&1")
    t0 = time.monotonic()
    out = env.run_ok(bundle)
    elapsed = time.monotonic() - t0
    assert out.splitlines()[0].startswith(f"{major}:{minor} rbps=1048576"), out
    assert "48+0 records in" in out, out
    assert elapsed >= 1.8, f"3 MiB at 1 MiB/s took only {elapsed:.2f}s: {out}"


def test_io_weight(env, bundle):
    resources(bundle, {"blockIO": {"weight": 500}})
    H.sh(bundle, "cat /sys/fs/cgroup/io.bfq.weight 2>/dev/null || cat /sys/fs/cgroup/io.weight")
    res = env.run(bundle)
    # BFQ takes the v1 value; io.weight (iocost) the converted one.
    if res.rc == 0:
        assert "500" in res.out or "default 4950" in res.out, res
        return
    # Neither file: the weight cannot be enforced, and create says so (runc fails too);
    # with berth's opt-in the container runs without it.
    if not H.is_berth():
        return
    H.assert_fail(res, "linux.resources.blockIO.weight", "cannot enforce")
    res = H.assert_ok(env.run(bundle, global_args=["--allow-unenforced-limits"]))
    assert "linux.resources.blockIO.weight: not applied" in res.err, res


def test_devices_denied_and_allowed(env, bundle, make_bundle):
    with_vda(bundle, None)
    out = run_script(env, bundle, "dd if=/dev/vda of=/dev/null bs=4096 count=1 2>&1; echo rc=$?")
    assert "Operation not permitted" in out and "rc=1" in out, out

    b2 = make_bundle()
    with_vda(b2, "r")
    out = run_script(env, b2, "dd if=/dev/vda of=/dev/null bs=4096 count=1 2>&1; echo rc=$?; "
                              "dd if=/dev/zero of=/dev/vda bs=4096 count=1 conv=notrunc 2>&1; echo rc=$?")
    rcs = [line for line in out.splitlines() if line.startswith("rc=")]
    assert rcs == ["rc=0", "rc=1"], out  # read allowed, write (not in the rule) denied
    assert "Operation not permitted" in out, out


def test_devices_defaults_still_open(env, bundle):
    """runc's default rules hold even under a deny-all: null, zero, urandom, tty, ptmx."""
    out = run_script(env, bundle, "head -c 4 /dev/zero | wc -c; echo x > /dev/null && echo null-ok; "
                                  "head -c 4 /dev/urandom | wc -c")
    assert out.split() == ["4", "null-ok", "4"], out


def test_hugetlb_limit(env, bundle):
    hp = Path("/proc/sys/vm/nr_hugepages")
    if not Path("/sys/kernel/mm/hugepages/hugepages-2048kB").is_dir():
        pytest.skip("no 2 MB huge pages on this kernel")
    old = hp.read_text().strip()
    if int(old) < 4:
        if not os.environ.get("VMRUN_GUEST"):
            pytest.skip("needs vm.nr_hugepages >= 4 (set automatically only in the VM)")
        hp.write_text("4")
        env.add_cleanup(lambda: hp.write_text(old))
    resources(bundle, {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 << 20}]})
    H.update_config(bundle, lambda c: c["mounts"].append(
        {"destination": "/mnt", "type": "hugetlbfs", "source": "none", "options": ["pagesize=2M"]}))
    out = run_script(env, bundle, "cat /sys/fs/cgroup/hugetlb.2MB.max; "
                                  "fallocate -l 2097152 /mnt/a && echo one-ok; "
                                  "fallocate -l 2097152 /mnt/b && echo two-ok; "
                                  "cat /sys/fs/cgroup/hugetlb.2MB.events")
    assert out.splitlines()[0] == str(2 << 20), out
    assert "one-ok" in out and "two-ok" not in out, out
    assert int(values(out)["max"]) >= 1, out


def test_unified_keys(env, bundle):
    resources(bundle, {"unified": {"memory.high": str(48 << 20), "pids.max": "7"},
                       "pids": {"limit": 100}})  # unified is written last and wins
    out = run_script(env, bundle, "cat /sys/fs/cgroup/memory.high /sys/fs/cgroup/pids.max").split()
    assert out == [str(48 << 20), "7"], out


def test_unified_unknown_controller_is_a_config_error(env, bundle):
    resources(bundle, {"unified": {"foo.bar": "1"}})
    res = env.run(bundle)
    H.assert_fail(res, "linux.resources.unified", "unknown cgroup v2 controller \"foo\"")
    env.assert_no_trace(res.cid, bundle)


def test_bad_memory_limit_is_a_config_error(env, bundle):
    resources(bundle, {"memory": {"limit": -7}})
    res = env.run(bundle)
    H.assert_fail(res, "linux.resources.memory.limit")
    env.assert_no_trace(res.cid, bundle)


def test_inexpressible_limits_warn_and_run(env, bundle):
    resources(bundle, {"cpu": {"realtimeRuntime": 950000, "realtimePeriod": 1000000},
                       "memory": {"kernel": 1 << 20, "disableOOMKiller": True}})
    H.sh(bundle, "echo ran")
    res = H.assert_ok(env.run(bundle))
    assert res.out.strip() == "ran", res
    for field in ("cpu.realtimeRuntime", "memory.kernel", "memory.disableOOMKiller"):
        assert f"linux.resources.{field}: not applied" in res.err, res


def test_relative_cgroups_path(env, bundle):
    """A relative cgroupsPath is placed under the parent of the runtime's cgroup (runc)."""
    name = f"{env.key}-rel"
    H.update_config(bundle, lambda c: c["linux"].__setitem__("cgroupsPath", name))
    own = Path("/proc/self/cgroup").read_text().split("0::", 1)[1].splitlines()[0]
    parent = os.path.dirname(own)
    out = run_script(env, bundle, "cat /proc/self/cgroup")
    assert out.strip() == "0::/", out  # the container's own cgroup namespace
    assert not (CGROUP / parent.lstrip("/") / name).exists()  # removed after run


# --------------------------------------------------------------------------------------
# commands on a running container (runc semantics)


def start_sleeper(env, bundle, script="sleep 1000") -> str:
    H.sh(bundle, script)
    res = H.assert_ok(env.run_detached(bundle))
    env.state(res.cid)
    return res.cid


def test_update_changes_live_limits(env, bundle):
    cid = start_sleeper(env, bundle)
    cg = host_cgroup(bundle)
    H.assert_ok(env.runtime("update", "--memory", "64m", "--pids-limit", "10", "--cpu-quota", "20000",
                            "--cpu-period", "100000", cid))
    assert (cg / "memory.max").read_text().strip() == str(64 << 20)
    assert (cg / "pids.max").read_text().strip() == "10"
    assert (cg / "cpu.max").read_text().strip() == "20000 100000"
    # Only the quota: the period stays.
    H.assert_ok(env.runtime("update", "--cpu-quota", "30000", cid))
    assert (cg / "cpu.max").read_text().strip() == "30000 100000"
    # -r: a LinuxResources document on stdin.
    H.assert_ok(env.runtime("update", "-r", "-", cid, input=json.dumps({"pids": {"limit": 12}})))
    assert (cg / "pids.max").read_text().strip() == "12"


def test_update_memory_swap_interplay(env, bundle):
    """runc keeps memory+swap when only --memory changes."""
    resources(bundle, {"memory": {"limit": 64 << 20, "swap": 128 << 20}})
    cid = start_sleeper(env, bundle)
    cg = host_cgroup(bundle)
    if not (cg / "memory.swap.max").exists():
        pytest.skip("no swap accounting on this kernel")
    H.assert_ok(env.runtime("update", "--memory", "32m", cid))
    assert (cg / "memory.max").read_text().strip() == str(32 << 20)
    assert (cg / "memory.swap.max").read_text().strip() == str(96 << 20)
    H.assert_fail(env.runtime("update", "--memory", "256m", cid), "memory+swap limit should be >= memory limit")
    H.assert_ok(env.runtime("update", "--memory-swap", "-1", cid))
    assert (cg / "memory.swap.max").read_text().strip() == "max"


def test_update_check_before_update(env, bundle):
    cid = start_sleeper(env, bundle)
    doc = json.dumps({"memory": {"limit": 4096, "checkBeforeUpdate": True}})
    H.assert_fail(env.runtime("update", "-r", "-", cid, input=doc), "rejecting memory limit 4096 <= usage")
    assert env.status(cid) == "running"


def test_update_bad_value(env, bundle):
    cid = start_sleeper(env, bundle)
    H.assert_fail(env.runtime("update", "--memory", "lots", cid), "invalid value for memory")


def test_pause_resume(env, bundle):
    cid = start_sleeper(env, bundle)
    cg = host_cgroup(bundle)
    H.assert_ok(env.runtime("pause", cid))
    assert env.status(cid) == "paused"
    assert "frozen 1" in (cg / "cgroup.events").read_text()
    H.assert_fail(env.runtime("pause", cid))  # already paused
    H.assert_ok(env.runtime("resume", cid))
    assert env.status(cid) == "running"
    assert "frozen 0" in (cg / "cgroup.events").read_text()
    H.assert_fail(env.runtime("resume", cid), "not paused")


def test_kill_all(env, bundle):
    cid = start_sleeper(env, bundle, "sleep 1000 & sleep 1000 & sleep 1000")
    cg = host_cgroup(bundle)
    # sh runs the last command with exec: three sleeps
    H.wait_for(lambda: len((cg / "cgroup.procs").read_text().split()) >= 3, what="3 processes")
    H.assert_ok(env.runtime("kill", "--all", cid, "KILL"))
    H.wait_for(lambda: not (cg / "cgroup.procs").exists() or not (cg / "cgroup.procs").read_text().split(),
               what="an empty cgroup")
    env.wait_status(cid, "stopped")


def test_events_stats(env, bundle):
    resources(bundle, {"memory": {"limit": 64 << 20}, "pids": {"limit": 50}})
    cid = start_sleeper(env, bundle)
    res = H.assert_ok(env.runtime("events", "--stats", cid))
    ev = json.loads(res.out)
    assert ev["type"] == "stats" and ev["id"] == cid, ev
    data = ev["data"]
    for key in ("cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt", "network_interfaces"):
        assert key in data, data
    assert {"kernel", "user"} <= set(data["cpu"]["usage"]), data["cpu"]
    assert "throttling" in data["cpu"]
    assert data["memory"]["usage"]["limit"] == 64 << 20, data["memory"]
    assert data["memory"]["usage"]["usage"] > 0
    assert {"limit", "failcnt"} <= set(data["memory"]["swap"])
    assert data["pids"] == {"current": 1, "limit": 50}, data["pids"]
    assert data["network_interfaces"] is None


def test_ps_json_lists_the_init(env, bundle):
    cid = start_sleeper(env, bundle)
    pid = env.state(cid)["pid"]
    res = H.assert_ok(env.runtime("ps", "--format", "json", cid))
    assert pid in json.loads(res.out), res


# --------------------------------------------------------------------------------------
# systemd driver


def test_systemd_driver_needs_systemd(env, bundle):
    if Path("/run/systemd/system").exists():
        pytest.skip("systemd runs on this host")
    H.update_config(bundle, lambda c: c["linux"].__setitem__("cgroupsPath", "system.slice:berth:x"))
    res = env.runtime("--systemd-cgroup", "run", "--bundle", bundle, env.new_id())
    H.assert_fail(res, "systemd not running on this host, cannot use systemd cgroups manager")


class PrivateSystemd:
    """systemd as PID 1 of new pid, mount and cgroup namespaces, rooted at a cgroup of its
    own (so it manages only that subtree). berth runs inside those namespaces too
    (nsenter), so that the pids it gives systemd are systemd's."""

    def __init__(self, env):
        self.env = env
        self.cgroup = CGROUP / f"berth-sd-{env.key}"
        self.cgroup.mkdir()
        self.target = Path("/etc/systemd/system/berth-test.target")
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.target.write_text("[Unit]\nDescription=berth test target\n")
        self.log = open(env.path("systemd.log"), "wb")
        cg = self.cgroup

        def enter_cgroup():
            (cg / "cgroup.procs").write_text("0")

        # In the new namespaces /sys/fs/cgroup is remounted, so that it shows the namespace's root.
        script = ("umount -l /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && "
                  "exec /lib/systemd/systemd --system --unit=berth-test.target --log-target=console "
                  "--log-level=notice")
        self.proc = H.spawn(["unshare", "--pid", "--fork", "--mount", "--cgroup", "--mount-proc",
                             "--propagation", "private", "sh", "-c", script],
                            stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log, preexec_fn=enter_cgroup,
                            env={"container": "berth-test", "PATH": os.environ["PATH"]})
        # unshare itself goes back to the root: a cgroup with processes of its own cannot
        # enable controllers for its children (systemd's slices).
        H.wait_for(lambda: self._child_of_unshare(), timeout=30, what="unshare to fork")
        (CGROUP / "cgroup.procs").write_text(str(self.proc.pid))
        H.wait_for(lambda: Path("/run/systemd/private").exists() and self.pid(), timeout=60,
                   what="systemd to start")
        H.wait_for(lambda: self.run(["systemctl", "is-system-running"], check=False).stdout.strip()
                   in ("running", "degraded"), timeout=60, interval=0.5, what="systemd to finish starting")

    def _child_of_unshare(self) -> bool:
        return bool(Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split())

    def pid(self) -> int | None:
        """systemd: unshare's child, PID 1 of the new pid namespace."""
        try:
            kids = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
            return int(kids[0]) if kids and Path(f"/proc/{kids[0]}/comm").read_text().strip() == "systemd" else None
        except OSError:
            return None

    def run(self, cmd, check=True):
        full = ["nsenter", "-t", str(self.pid()), "-p", "-m", "-C", "--"] + [str(c) for c in cmd]
        procs = self.cgroup / "init.scope" / "cgroup.procs"

        def enter_tree():
            # Inside systemd's cgroup tree: with nsdelegate, systemd may not move a process
            # in from outside its cgroup namespace.
            procs.write_text("0")

        # Files, not pipes: a detached container keeps its stdio open.
        with open(self.env.path("sd.out"), "w+") as out, open(self.env.path("sd.err"), "w+") as err:
            rc = subprocess.run(full, stdin=subprocess.DEVNULL, stdout=out, stderr=err, timeout=120,
                                preexec_fn=enter_tree).returncode
            out.seek(0)
            err.seek(0)
            res = subprocess.CompletedProcess(full, rc, out.read(), err.read())
        if check and res.returncode != 0:
            raise AssertionError(f"{cmd} failed rc={res.returncode}: {res.stdout} {res.stderr}")
        return res

    def berth(self, *args, check=True):
        return self.run([RUNTIME, "--root", self.env.root, "--systemd-cgroup", *args], check=check)

    def show(self, unit: str, *props) -> dict[str, str]:
        out = self.run(["systemctl", "show", unit] + [f"-p{p}" for p in props]).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def close(self):
        with contextlib.suppress(ProcessLookupError, TypeError):
            os.kill(self.pid(), signal.SIGKILL)  # the pid namespace dies with its init
        H.kill_and_finish(self.proc)
        self.log.close()
        for d in sorted((p for p in self.cgroup.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                d.rmdir()
        with contextlib.suppress(OSError):
            self.cgroup.rmdir()
        self.target.unlink(missing_ok=True)
        subprocess.run(["rm", "-rf", "/run/systemd"], check=False)


def test_systemd_driver(env, bundle):
    """A transient scope in machine.slice: properties, limits, update, delete."""
    if not os.environ.get("VMRUN_GUEST"):
        pytest.skip("starts a private systemd: only in the disposable tests/vm guest")
    if not os.access("/lib/systemd/systemd", os.X_OK) or Path("/run/systemd/system").exists():
        pytest.skip("needs /lib/systemd/systemd and no running systemd")
    helper = Path(RUNTIME).parent / "systemd" / "berth-systemd"
    if not helper.exists() and not (Path(RUNTIME).parent / "berth-systemd").exists():
        pytest.skip("berth-systemd is not built")
    cid = env.new_id()
    unit = f"berth-{cid}.scope"
    resources(bundle, {"memory": {"limit": 64 << 20}, "pids": {"limit": 20},
                       "cpu": {"quota": 50000, "period": 100000, "cpus": "0", "shares": 1024}})
    H.update_config(bundle, lambda c: c["linux"].__setitem__("cgroupsPath", f"machine.slice:berth:{cid}"))
    H.sh(bundle, "sleep 1000")
    sd = PrivateSystemd(env)
    try:
        sd.berth("run", "-d", "--bundle", bundle, cid)
        assert json.loads(sd.berth("state", cid).stdout)["status"] == "running"
        props = sd.show(unit, "ControlGroup", "Slice", "Delegate", "DefaultDependencies", "MemoryMax", "TasksMax",
                        "CPUQuotaPerSecUSec", "AllowedCPUs", "CPUWeight", "ActiveState")
        assert props == {"ControlGroup": f"/machine.slice/{unit}", "Slice": "machine.slice", "Delegate": "yes",
                         "DefaultDependencies": "no", "MemoryMax": str(64 << 20), "TasksMax": "20",
                         "CPUQuotaPerSecUSec": "500ms", "AllowedCPUs": "0", "CPUWeight": "39",
                         "ActiveState": "active"}, props
        cg = sd.cgroup / "machine.slice" / unit
        assert (cg / "memory.max").read_text().strip() == str(64 << 20)
        assert (cg / "cpu.max").read_text().strip() == "50000 100000"
        assert len((cg / "cgroup.procs").read_text().split()) == 1  # the init; the placeholder left
        sd.berth("update", "--memory", "96m", "--pids-limit", "30", cid)
        assert sd.show(unit, "MemoryMax", "TasksMax") == {"MemoryMax": str(96 << 20), "TasksMax": "30"}
        assert (cg / "memory.max").read_text().strip() == str(96 << 20)
        sd.berth("delete", "--force", cid)
        assert sd.show(unit, "LoadState")["LoadState"] == "not-found"
        assert not cg.exists()
    finally:
        sd.berth("delete", "--force", cid, check=False)
        sd.close()
