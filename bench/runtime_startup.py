#!/usr/bin/env python3
"""Side-by-side start-up benchmark of OCI runtimes (berth, crun, runc) on one busybox bundle.

Normally started through bench/runtime-startup.sh, which puts it in a private mount namespace
(and hides the hybrid cgroup2 controllers so crun runs).  Python standard library only.

What it measures, per runtime, on the same bundle (config like `runc spec`, args /bin/true,
terminal false, network namespace included, a unique cgroupsPath per container):
  (a) `run` wall time (median, p90) and CPU (user+sys of the runtime process tree, from the
      rusage os.wait4 returns) over --runs runs, interleaved A B C A B C ... after warm-ups;
  (b) peak RSS: the largest ru_maxrss over the runs (`run`, and any split subcommand);
  (c) --seq containers in a row (`run` each), total wall time, median of --seq-rounds rounds;
  (d) create / start / delete split timings (create; start; wait for the container's exit;
      delete), interleaved the same way.
Before measuring, each runtime must pass a preflight (the container really runs, its output
and exit code come back, state/delete behave); a runtime that fails is reported as failed,
with its stderr, and left out of the phases it cannot do.
"""

import argparse
import ctypes
import json
import math
import os
import platform
import random
import select
import shutil
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "lib"))
from elf import is_static_elf  # noqa: E402

# --resources: the limits issue 3's benchmark asks for (memory, cpu, pids, devices), with
# the device allow-list containerd gives every container.
RESOURCES_BLOCK = {
    "memory": {"limit": 256 << 20, "reservation": 128 << 20},
    "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    "pids": {"limit": 100},
    "devices": [{"allow": False, "access": "rwm"}] + [
        {"allow": True, "type": "c", "major": ma, "minor": mi, "access": "rwm"}
        for ma, mi in ((1, 3), (1, 8), (1, 7), (5, 0), (1, 5), (1, 9), (5, 1), (5, 2))],
}

PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RT_ENV = {"PATH": PATH_ENV, "LANG": "C"}
KNOWN = ("berth", "crun", "runc")


class Interrupted(Exception):
    pass


def _on_signal(signum, frame):
    raise Interrupted(f"signal {signum}")


# ---------------------------------------------------------------------------------------------
# bundle

def find_busybox(tmp, log):
    """Debian's busybox-static: the installed /bin/busybox if the package is installed, else the
    package's file extracted with apt-get download + dpkg-deb (nothing installed)."""
    try:
        st = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "busybox-static"],
                            capture_output=True, text=True)
        if st.returncode == 0 and "install ok installed" in st.stdout:
            files = subprocess.run(["dpkg", "-L", "busybox-static"], capture_output=True,
                                   text=True).stdout.split()
            for f in files:
                if f.endswith("/bin/busybox") and os.path.isfile(f):
                    return f, "installed busybox-static"
    except FileNotFoundError:
        pass
    d = os.path.join(tmp, "deb")
    os.makedirs(d, exist_ok=True)
    log("busybox-static is not installed; fetching the package with apt-get download")
    r = subprocess.run(["apt-get", "download", "busybox-static"], cwd=d, capture_output=True,
                       text=True)
    debs = [f for f in os.listdir(d) if f.endswith(".deb")]
    if r.returncode != 0 or not debs:
        raise RuntimeError("cannot get busybox-static (apt-get install busybox-static, or "
                           "apt-get update first): " + r.stderr.strip())
    x = os.path.join(d, "x")
    subprocess.run(["dpkg-deb", "-x", os.path.join(d, debs[0]), x], check=True)
    return os.path.join(x, "bin", "busybox"), "downloaded " + debs[0]


def build_rootfs(tmp, log):
    bb, origin = find_busybox(tmp, log)
    if not is_static_elf(bb):
        raise RuntimeError(f"{bb} is not a static x86-64 ELF")
    root = os.path.join(tmp, "rootfs")
    for d in ("bin", "proc", "sys", "dev", "tmp", "etc", "root"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    shutil.copy2(bb, os.path.join(root, "bin", "busybox"))
    for applet in ("true", "false", "sh", "echo", "cat", "sleep"):
        os.symlink("busybox", os.path.join(root, "bin", applet))
    with open(os.path.join(root, "etc", "passwd"), "w") as f:
        f.write("root:x:0:0:root:/root:/bin/sh\n")
    with open(os.path.join(root, "etc", "group"), "w") as f:
        f.write("root:x:0:\n")
    ver = subprocess.run([bb], capture_output=True, text=True).stdout.splitlines()[:1]
    return root, {"busybox": bb, "origin": origin, "version": ver[0] if ver else ""}


def spec(rootfs, args, cgroups_path):
    """The `runc spec` (runc 1.1.5) default, with terminal false, the given args, an absolute
    read-only root and a cgroupsPath of its own."""
    caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    return {
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": args,
            "env": ["PATH=" + PATH_ENV, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {k: list(caps) for k in ("bounding", "effective", "permitted",
                                                     "ambient")},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": True},
        "hostname": "bench",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620",
                         "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "cgroupsPath": cgroups_path,
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                            "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                            "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                              "/proc/sysrq-trigger"],
        },
    }


# ---------------------------------------------------------------------------------------------
# process plumbing

def set_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


class Call:
    __slots__ = ("rc", "wall_ms", "cpu_ms", "maxrss_kib", "stdout", "stderr", "timed_out")


class Runner:
    """Spawns runtime commands and times them.  The runtime's stdout/stderr go to files, never
    pipes: a created container inherits them and would hold a pipe open."""

    def __init__(self, tmp, timeout):
        self.timeout = timeout
        self.out_path = os.path.join(tmp, "call.stdout")
        self.err_path = os.path.join(tmp, "call.stderr")
        self.out_fd = os.open(self.out_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
        self.err_fd = os.open(self.err_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
        self.inflight = None
        self.use_pidfd = hasattr(os, "pidfd_open")
        self.gnu_time = None

    def _read(self, fd):
        size = os.fstat(fd).st_size
        return os.pread(fd, min(size, 65536), 0).decode(errors="replace")

    def call_rss(self, argv):
        """Run argv under GNU time; -> (Call, peak RSS KiB of the runtime process tree).
        ru_maxrss straight from os.wait4 cannot be used for memory: a child spawned by this
        python process starts as a copy of (or shares) python's ~15 MiB address space, and the
        kernel carries that high-water mark across exec.  GNU time forks from a ~1 MiB
        process, as in the published peer figures (`time -f %M`)."""
        rssf = os.path.join(os.path.dirname(self.out_path), "call.rss")
        c = self.call([self.gnu_time, "-f", "%M", "-o", rssf, *argv])
        try:
            with open(rssf) as f:
                lines = [l for l in f.read().split() if l.isdigit()]
            rss = int(lines[-1]) if lines else None
        except OSError:
            rss = None
        return c, rss

    def call(self, argv):
        for fd in (self.out_fd, self.err_fd):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        fa = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
              (os.POSIX_SPAWN_DUP2, self.out_fd, 1),
              (os.POSIX_SPAWN_DUP2, self.err_fd, 2)]
        c = Call()
        c.timed_out = False
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, RT_ENV, file_actions=fa, setpgroup=0)
        self.inflight = pid
        if self.use_pidfd:
            pfd = os.pidfd_open(pid)
            try:
                p = select.poll()
                p.register(pfd, select.POLLIN)
                if not p.poll(self.timeout * 1000):
                    c.timed_out = True
                    # its own process group (setpgroup=0): take helpers it forked too
                    try:
                        os.killpg(pid, signal.SIGKILL)
                    except OSError:
                        os.kill(pid, signal.SIGKILL)
            finally:
                os.close(pfd)
        _, status, ru = os.wait4(pid, 0)
        t1 = time.perf_counter_ns()
        self.inflight = None
        c.rc = os.waitstatus_to_exitcode(status)
        c.wall_ms = (t1 - t0) / 1e6
        c.cpu_ms = (ru.ru_utime + ru.ru_stime) * 1e3
        c.maxrss_kib = ru.ru_maxrss  # inflated by this launcher, see call_rss
        c.stdout = self._read(self.out_fd)
        c.stderr = self._read(self.err_fd)
        return c

    def abort_inflight(self):
        pid = self.inflight
        if pid is None:
            return
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                self.inflight = None
                return
            time.sleep(0.05)
        try:
            os.killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        self.inflight = None


def reap_orphans():
    """Reap processes reparented to us (we are a child subreaper).  Only called when no
    runtime call is in flight, so it cannot steal a runtime's exit status."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wait_container_exit(pid, timeout):
    """Wait for a started container's init to exit.  It is normally our child (reparented to us,
    the subreaper, when `create` exited); otherwise poll /proc."""
    deadline = time.monotonic() + timeout
    try:
        if hasattr(os, "pidfd_open"):
            pfd = os.pidfd_open(pid)
            try:
                p = select.poll()
                p.register(pfd, select.POLLIN)
                if not p.poll(timeout * 1000):
                    return False
            finally:
                os.close(pfd)
        os.waitpid(pid, 0)
        return True
    except ChildProcessError:
        pass
    except ProcessLookupError:
        return True
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X"):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.0002)
    return False


# ---------------------------------------------------------------------------------------------
# statistics and formatting

def median(xs):
    return statistics.median(xs) if xs else None


def p90(xs):
    if not xs:
        return None
    s = sorted(xs)
    return s[max(0, math.ceil(0.9 * len(s)) - 1)]


def summarize(xs):
    return {"n": len(xs), "median": median(xs), "p90": p90(xs),
            "min": min(xs) if xs else None, "max": max(xs) if xs else None}


def excerpt(s, n=1500):
    s = s.strip()
    return s if len(s) <= n else s[:n] + " …"


# ---------------------------------------------------------------------------------------------
# the benchmark

class Runtime:
    def __init__(self, name, path, state_root, bundles_dir):
        self.name = name
        self.path = path
        self.root = state_root
        self.bundles = bundles_dir
        self.version = ""
        self.ok = True            # usable for `run` measurements
        self.split_ok = True      # usable for create/start/delete measurements
        self.failures = []        # {phase, what, rc, stderr, stdout}
        self.preflight = {}
        self.live = set()         # container ids created and not yet deleted
        self.res = {}

    def argv(self, *args):
        return [self.path, "--root", self.root, *args]

    def fail(self, phase, what, call=None, fatal=True, split_only=False):
        f = {"phase": phase, "what": what}
        if call is not None:
            f.update(rc=call.rc, stderr=excerpt(call.stderr), stdout=excerpt(call.stdout, 300),
                     timed_out=call.timed_out)
        self.failures.append(f)
        if split_only:
            self.split_ok = False
        elif fatal:
            self.ok = False
            self.split_ok = False


class Bench:
    def __init__(self, opts, log):
        self.o = opts
        self.log = log
        self.tag = "bb" + "".join(random.choice(string.ascii_lowercase + string.digits)
                                  for _ in range(6)) + str(os.getpid())
        self.cg_parent = "/berth-bench-" + self.tag
        self.tmp = tempfile.mkdtemp(prefix="berth-bench-")
        os.chmod(self.tmp, 0o755)
        self.runner = Runner(self.tmp, opts.timeout)
        self.rts = []
        self.seq_no = 0
        self.cgroup_report = {}
        self.rss_skipped = None

    # -- bundles ------------------------------------------------------------------------------
    def new_container(self, rt, phase, args=("/bin/true",)):
        """Write a bundle with a fresh cgroupsPath; returns (id, bundle dir)."""
        self.seq_no += 1
        cid = f"{self.tag}-{rt.name}-{phase}-{self.seq_no}"
        b = os.path.join(rt.bundles, cid)
        os.mkdir(b)
        cfg = spec(self.rootfs, list(args), f"{self.cg_parent}/{cid}")
        if self.o.no_ambient:
            del cfg["process"]["capabilities"]["ambient"]
        if self.o.resources:
            cfg["linux"]["resources"] = RESOURCES_BLOCK
        with open(os.path.join(b, "config.json"), "w") as f:
            json.dump(cfg, f)
        return cid, b

    def drop_bundle(self, b):
        shutil.rmtree(b, ignore_errors=True)

    # -- one container through `run` --------------------------------------------------------------
    def run_once(self, rt, phase, args=("/bin/true",)):
        cid, b = self.new_container(rt, phase, args)
        rt.live.add(cid)
        c = self.runner.call(rt.argv("run", "--bundle", b, cid))
        # `run` deletes the container when it exits; if it failed, force-delete leftovers now.
        if c.rc != 0 or c.timed_out:
            self.force_delete(rt, cid)
        rt.live.discard(cid)
        self.drop_bundle(b)
        return c

    def force_delete(self, rt, cid):
        try:
            self.runner.call(rt.argv("delete", "--force", cid))
        except OSError:
            pass
        reap_orphans()

    # -- one container through create / start / delete -------------------------------------------
    def split_once(self, rt, phase, check_state=False, rss=None):
        """-> dict(create=Call, start=Call, delete=Call) or raises _SplitFail.
        With rss={} each of the three calls runs under GNU time and rss[k] gets its KiB."""
        def call(k, argv):
            if rss is None:
                return self.runner.call(argv)
            c, rss[k] = self.runner.call_rss(argv)
            return c
        cid, b = self.new_container(rt, phase)
        pidfile = os.path.join(b, "pid")
        rt.live.add(cid)
        out = {}
        try:
            c = call("create", rt.argv("create", "--bundle", b, "--pid-file", pidfile, cid))
            out["create"] = c
            if c.rc != 0:
                raise _SplitFail("create failed", c)
            try:
                with open(pidfile) as f:
                    cpid = int(f.read().strip())
            except (OSError, ValueError):
                raise _SplitFail("create succeeded but wrote no valid --pid-file", c)
            if check_state:
                rt.preflight["cgroup_placement"] = self.placement(cpid, cid)
                s = self.state(rt, cid)
                if s.get("status") != "created" or int(s.get("pid", 0)) != cpid:
                    raise _SplitFail(f"state after create: {s!r} (expected status created, "
                                     f"pid {cpid})", None)
            c = call("start", rt.argv("start", cid))
            out["start"] = c
            if c.rc != 0:
                raise _SplitFail("start failed", c)
            if not wait_container_exit(cpid, self.o.timeout):
                raise _SplitFail(f"container process {cpid} did not exit after start", None)
            if check_state:
                s = self.state(rt, cid)
                if s.get("status") != "stopped":
                    raise _SplitFail(f"state after exit: {s!r} (expected status stopped)", None)
            c = call("delete", rt.argv("delete", cid))
            out["delete"] = c
            if c.rc != 0:
                raise _SplitFail("delete failed", c)
            rt.live.discard(cid)
            if check_state:
                c = self.runner.call(rt.argv("state", cid))
                if c.rc == 0:
                    raise _SplitFail("state still succeeds after delete", c)
            return out
        finally:
            if cid in rt.live:
                self.force_delete(rt, cid)
                rt.live.discard(cid)
            reap_orphans()
            self.drop_bundle(b)

    @staticmethod
    def placement(pid, cid):
        """Hierarchies (from /proc/PID/cgroup) in which the container's init sits in the cgroup
        named after its id: tells which cgroup work a runtime did on this host."""
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                lines = f.read().split()
        except OSError:
            return None
        ours, other = [], []
        for l in lines:
            hid, ctrl, path = l.split(":", 2)
            name = ctrl or "unified(cgroup2)"
            (ours if path.rstrip("/").endswith("/" + cid) else other).append(name)
        return {"in_container_cgroup": ours, "elsewhere": other}

    def state(self, rt, cid):
        c = self.runner.call(rt.argv("state", cid))
        if c.rc != 0:
            raise _SplitFail("state failed", c)
        try:
            return json.loads(c.stdout)
        except ValueError:
            raise _SplitFail("state printed no JSON", c)

    # -- phases ---------------------------------------------------------------------------------
    def preflight(self, rt):
        p = rt.preflight
        if not (os.path.isfile(rt.path) and os.access(rt.path, os.X_OK)):
            rt.fail("preflight", f"binary not found or not executable: {rt.path}")
            return
        v = self.runner.call([rt.path, "--version"])
        rt.version = (v.stdout.strip().splitlines() or [""])[0]
        marker = "bench-ok-" + self.tag
        c = self.run_once(rt, "pre", ("/bin/sh", "-c", f"echo {marker}"))
        p["echo"] = {"rc": c.rc, "stdout": excerpt(c.stdout, 200)}
        if c.rc != 0 or marker not in c.stdout:
            rt.fail("preflight", "run of `sh -c 'echo MARKER'`: expected exit 0 and the marker "
                    "on stdout (did the container run?)", c)
            return
        c = self.run_once(rt, "pre", ("/bin/sh", "-c", "exit 3"))
        p["exit_code"] = {"rc": c.rc}
        if c.rc != 3:
            rt.fail("preflight", "run of `sh -c 'exit 3'`: expected the runtime to exit 3", c)
            return
        c = self.run_once(rt, "pre")
        if c.rc != 0:
            rt.fail("preflight", "run of /bin/true failed", c)
            return
        try:
            self.split_once(rt, "pre", check_state=True)
            p["split"] = "ok"
        except _SplitFail as e:
            p["split"] = str(e)
            rt.fail("preflight", "create/start/delete: " + str(e), e.call, split_only=True)

    def phase_run(self, rts):
        n, w = self.o.runs, self.o.warmup
        data = {rt.name: {"wall_ms": [], "cpu_ms": [], "maxrss_kib": []} for rt in rts}
        for i in range(w + n):
            for rt in rts:
                if not rt.ok:
                    continue
                c = self.run_once(rt, "run")
                if c.rc != 0:
                    rt.fail("run", f"run #{i} of /bin/true exited {c.rc}", c)
                    continue
                if i >= w:
                    d = data[rt.name]
                    d["wall_ms"].append(c.wall_ms)
                    d["cpu_ms"].append(c.cpu_ms)
                    d["maxrss_kib"].append(c.maxrss_kib)
            reap_orphans()
        for rt in rts:
            if rt.ok:
                d = data[rt.name]
                del d["maxrss_kib"]
                rt.res["run"] = {
                    "wall_ms": summarize(d["wall_ms"]), "cpu_ms": summarize(d["cpu_ms"]),
                    "samples": d}

    def phase_split(self, rts):
        n, w = self.o.split_runs, self.o.warmup
        keys = ("create", "start", "delete")
        data = {rt.name: {k: {"wall_ms": [], "cpu_ms": [], "maxrss_kib": []} for k in keys}
                for rt in rts}
        for i in range(w + n):
            for rt in rts:
                if not rt.split_ok:
                    continue
                try:
                    out = self.split_once(rt, "split")
                except _SplitFail as e:
                    rt.fail("split", f"create/start/delete #{i}: {e}", e.call, split_only=True)
                    continue
                if i >= w:
                    for k in keys:
                        d = data[rt.name][k]
                        d["wall_ms"].append(out[k].wall_ms)
                        d["cpu_ms"].append(out[k].cpu_ms)
                        d["maxrss_kib"].append(out[k].maxrss_kib)
        for rt in rts:
            if rt.split_ok:
                r = {}
                for k in keys:
                    d = data[rt.name][k]
                    del d["maxrss_kib"]
                    r[k] = {"wall_ms": summarize(d["wall_ms"]), "cpu_ms": summarize(d["cpu_ms"]),
                            "samples": d}
                rt.res["split"] = r

    def phase_rss(self, rts):
        """(b) peak RSS: --rss-runs `run`s and create/start/delete cycles per runtime,
        interleaved, each call under GNU time; the peak is the max over the runs."""
        keys = ("run", "create", "start", "delete")
        data = {rt.name: {k: [] for k in keys} for rt in rts}
        for i in range(self.o.rss_runs):
            for rt in rts:
                if not rt.ok:
                    continue
                cid, b = self.new_container(rt, "rss")
                rt.live.add(cid)
                c, kib = self.runner.call_rss(rt.argv("run", "--bundle", b, cid))
                rt.live.discard(cid)
                self.drop_bundle(b)
                if c.rc != 0:
                    self.force_delete(rt, cid)
                    rt.fail("rss", f"run #{i} under GNU time exited {c.rc}", c)
                    continue
                if kib:
                    data[rt.name]["run"].append(kib)
                if rt.split_ok:
                    rss = {}
                    try:
                        self.split_once(rt, "rss", rss=rss)
                        for k in ("create", "start", "delete"):
                            if rss.get(k):
                                data[rt.name][k].append(rss[k])
                    except _SplitFail as e:
                        rt.fail("rss", f"create/start/delete #{i} under GNU time: {e}", e.call,
                                split_only=True)
            reap_orphans()
        for rt in rts:
            d = data[rt.name]
            if d["run"]:
                rt.res["rss"] = {"method": "GNU time %M (KiB), max over runs",
                                 "peak_kib": {k: max(v) for k, v in d.items() if v},
                                 "median_kib": {k: median(v) for k, v in d.items() if v},
                                 "samples": d}

    def phase_seq(self, rts):
        totals = {rt.name: [] for rt in rts}
        for r in range(self.o.seq_rounds):
            order = rts[r % len(rts):] + rts[:r % len(rts)]
            for rt in order:
                if not rt.ok:
                    continue
                ids = [self.new_container(rt, "seq") for _ in range(self.o.seq)]
                failed = None
                t0 = time.perf_counter_ns()
                for cid, b in ids:
                    rt.live.add(cid)
                    c = self.runner.call(rt.argv("run", "--bundle", b, cid))
                    if c.rc != 0:
                        failed = (cid, c)
                        break
                    rt.live.discard(cid)
                t1 = time.perf_counter_ns()
                if failed:
                    self.force_delete(rt, failed[0])
                    rt.live.discard(failed[0])
                    rt.fail("seq", f"round {r}: a run exited {failed[1].rc}", failed[1])
                else:
                    totals[rt.name].append((t1 - t0) / 1e9)
                for _, b in ids:
                    self.drop_bundle(b)
                reap_orphans()
        for rt in rts:
            if rt.ok and totals[rt.name]:
                rt.res["seq"] = {"containers": self.o.seq, "total_s": summarize(totals[rt.name]),
                                 "rounds": totals[rt.name]}

    # -- cleanup ------------------------------------------------------------------------------
    def cgroup_mounts(self):
        mps = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                a, b = line.split(" - ", 1)
                fstype = b.split()[0]
                if fstype in ("cgroup", "cgroup2"):
                    mps.append(a.split()[4])
        return mps

    def our_cgroup_dirs(self):
        """Every directory under our unique parent, deepest first, per hierarchy."""
        out = []
        for mp in self.cgroup_mounts():
            top = os.path.join(mp, self.cg_parent.lstrip("/"))
            if not os.path.isdir(top):
                continue
            dirs = []
            for dp, dn, _ in os.walk(top):
                dirs.append(dp)
            out.extend(sorted(dirs, key=lambda p: p.count("/"), reverse=True))
        return out

    def leftover_cgroups(self):
        """Count container cgroups the runtimes left behind after delete, per runtime."""
        left = {}
        for d in self.our_cgroup_dirs():
            base = os.path.basename(d)
            if base.startswith(self.tag + "-"):
                name = base[len(self.tag) + 1:].split("-", 1)[0]
                left.setdefault(name, set()).add(base)
        return {k: len(v) for k, v in left.items()}

    def cleanup(self):
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        self.runner.abort_inflight()
        for rt in self.rts:
            ids = set(rt.live)
            if os.path.isdir(rt.root):
                ids.update(e for e in os.listdir(rt.root) if e.startswith(self.tag))
            for cid in ids:
                try:
                    self.runner.call(rt.argv("delete", "--force", cid))
                except OSError:
                    pass
            rt.live.clear()
        reap_orphans()
        self.cgroup_report = self.leftover_cgroups()
        for attempt in range(20):
            dirs = self.our_cgroup_dirs()
            if not dirs:
                break
            for d in dirs:
                try:
                    os.rmdir(d)
                except OSError:
                    # processes of our containers still inside: kill them (we started them)
                    try:
                        with open(os.path.join(d, "cgroup.procs")) as f:
                            for pid in f.read().split():
                                try:
                                    os.kill(int(pid), signal.SIGKILL)
                                except OSError:
                                    pass
                    except OSError:
                        pass
            reap_orphans()
            time.sleep(0.05)
        remaining = self.our_cgroup_dirs()
        if remaining:
            self.log(f"warning: could not remove cgroups: {remaining[:5]}")
        # unmount anything left mounted under our temp dir (private namespace) before rmtree
        with open("/proc/self/mountinfo") as f:
            mps = [l.split()[4] for l in f if l.split()[4].startswith(self.tmp + "/")]
        for mp in sorted(mps, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        if self.o.keep_tmp:
            self.log(f"kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # -- main ---------------------------------------------------------------------------------
    def main(self):
        o = self.o
        self.rootfs, self.bb_info = build_rootfs(self.tmp, self.log)
        paths = {"berth": o.berth, "crun": o.crun, "runc": o.runc}
        for spec_ in o.runtimes:
            name, _, p = spec_.partition("=")
            p = p or paths.get(name) or shutil.which(name) or name
            if not os.path.isabs(p):
                p = shutil.which(p) or os.path.abspath(p)
            st = os.path.join(self.tmp, "state-" + name)
            bd = os.path.join(self.tmp, "bundles-" + name)
            os.mkdir(st, 0o700)
            os.mkdir(bd)
            self.rts.append(Runtime(name, p, st, bd))
        load0 = os.getloadavg()
        t_start = time.time()
        for rt in self.rts:
            self.log(f"preflight {rt.name} ({rt.path})")
            self.preflight(rt)
            if not rt.ok:
                self.log(f"  {rt.name}: FAILED preflight: {rt.failures[-1]['what']}")
            elif not rt.split_ok:
                self.log(f"  {rt.name}: create/start/delete FAILED preflight: "
                         f"{rt.failures[-1]['what']}")
        live = [rt for rt in self.rts if rt.ok]
        if live:
            self.log(f"(a) run: {o.warmup} warm-ups + {o.runs} runs each, interleaved")
            self.phase_run(live)
            if o.split_runs:
                self.log(f"(d) create/start/delete: {o.warmup} warm-ups + {o.split_runs} each, "
                         "interleaved")
                self.phase_split([rt for rt in live if rt.split_ok])
            if o.rss_runs:
                gt = shutil.which("time", path="/usr/bin:/bin")
                if gt and "GNU" in subprocess.run([gt, "--version"], capture_output=True,
                                                  text=True).stdout:
                    self.runner.gnu_time = gt
                    self.log(f"(b) peak RSS: {o.rss_runs} runs and create/start/delete each "
                             "under GNU time, interleaved")
                    self.phase_rss([rt for rt in live if rt.ok])
                else:
                    self.rss_skipped = ("GNU time (/usr/bin/time, Debian package `time`) not "
                                        "found: peak RSS not measured")
                    self.log(self.rss_skipped)
            if o.seq and o.seq_rounds:
                self.log(f"(c) {o.seq} containers in a row, {o.seq_rounds} rounds")
                self.phase_seq([rt for rt in live if rt.ok])
        self.elapsed = time.time() - t_start
        self.load = (load0, os.getloadavg())


class _SplitFail(Exception):
    def __init__(self, msg, call):
        super().__init__(msg)
        self.call = call


# ---------------------------------------------------------------------------------------------
# report

def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def build_report(bench):
    o = bench.o
    rts = bench.rts
    rep = {
        "benchmark": "runtime-startup",
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": {"kernel": platform.release(), "nproc": os.cpu_count(),
                 "loadavg_before": bench.load[0], "loadavg_after": bench.load[1],
                 "python": platform.python_version()},
        "method": {"runs": o.runs, "split_runs": o.split_runs, "warmup": o.warmup,
                   "seq_containers": o.seq, "seq_rounds": o.seq_rounds,
                   "order": [rt.name for rt in rts], "interleaved": True,
                   "workload": "/bin/true", "bundle": bench.bb_info,
                   "cgroup_parent": bench.cg_parent, "rss_runs": o.rss_runs,
                   "config_deviation": "no ambient capabilities" if o.no_ambient else None,
                   "rss_method": bench.rss_skipped or "GNU time -f %M per call (KiB)",
                   "hybrid_cgroup2_controllers_hidden":
                       os.environ.get("BERTH_BENCH_CC_HIDDEN") == "1",
                   "elapsed_s": round(bench.elapsed, 1)},
        "runtimes": {},
        "ratios": {},
        "leftover_cgroups_after_delete": bench.cgroup_report,
    }
    for rt in rts:
        rep["runtimes"][rt.name] = {
            "path": rt.path, "version": rt.version, "ok": rt.ok, "split_ok": rt.split_ok,
            "preflight": rt.preflight, "failures": rt.failures, **rt.res}
    base = "berth" if any(rt.name == "berth" for rt in rts) else rts[0].name
    for rt in rts:
        if rt.name == base:
            continue
        rep["ratios"][f"{base}/{rt.name}"] = {
            k: ratio(metric(bench, base, k), metric(bench, rt.name, k)) for k in RATIO_KEYS}
    return rep, base


def _get(bench, name, *path):
    rt = next((r for r in bench.rts if r.name == name), None)
    if rt is None:
        return None
    cur = rt.res
    for p in path:
        if not isinstance(cur, dict) or p not in cur:
            return None
        cur = cur[p]
    return cur


METRICS = [
    # key, label, getter, unit scale, format
    ("run_wall_median_ms", "run wall, median (ms)", ("run", "wall_ms", "median"), 1, "{:.2f}"),
    ("run_wall_p90_ms", "run wall, p90 (ms)", ("run", "wall_ms", "p90"), 1, "{:.2f}"),
    ("run_cpu_median_ms", "run CPU user+sys, median (ms)", ("run", "cpu_ms", "median"), 1,
     "{:.2f}"),
    ("run_peak_rss_mib", "run peak RSS (MiB)", ("rss", "peak_kib", "run"), 1 / 1024, "{:.1f}"),
    ("seq_total_s", "N x run in a row, total (s)", ("seq", "total_s", "median"), 1, "{:.2f}"),
    ("create_wall_median_ms", "create wall, median (ms)", ("split", "create", "wall_ms",
                                                           "median"), 1, "{:.2f}"),
    ("start_wall_median_ms", "start wall, median (ms)", ("split", "start", "wall_ms", "median"),
     1, "{:.2f}"),
    ("delete_wall_median_ms", "delete wall, median (ms)", ("split", "delete", "wall_ms",
                                                           "median"), 1, "{:.2f}"),
    ("split_sum_median_ms", "create+start+delete medians (ms)", None, 1, "{:.2f}"),
    ("create_cpu_median_ms", "create CPU, median (ms)", ("split", "create", "cpu_ms", "median"),
     1, "{:.2f}"),
    ("split_peak_rss_mib", "peak RSS create/start/delete (MiB)", None, 1 / 1024, "{:.1f}"),
]
RATIO_KEYS = [m[0] for m in METRICS if m[0] != "run_wall_p90_ms"]


def metric(bench, name, key):
    m = next(m for m in METRICS if m[0] == key)
    if key == "split_sum_median_ms":
        parts = [_get(bench, name, "split", k, "wall_ms", "median")
                 for k in ("create", "start", "delete")]
        return None if None in parts else sum(parts)
    if key == "split_peak_rss_mib":
        parts = [_get(bench, name, "rss", "peak_kib", k) for k in ("create", "start", "delete")]
        return None if None in parts else max(parts) / 1024
    v = _get(bench, name, *m[2])
    return None if v is None else v * m[3]


def print_table(bench, rep, base):
    names = [rt.name for rt in bench.rts]
    others = [n for n in names if n != base]
    head = ["", *names, *[f"{base}/{n}" for n in others]]
    rows = []
    for key, label, _, _, fmt in METRICS:
        if key == "seq_total_s":
            label = label.replace("N", str(bench.o.seq))
        row = [label]
        for n in names:
            rt = next(r for r in bench.rts if r.name == n)
            v = metric(bench, n, key)
            row.append(fmt.format(v) if v is not None else ("FAILED" if not rt.ok or (
                not rt.split_ok and ("split" in key or key.startswith(("create", "start",
                                                                        "delete"))))
                else "-"))
        for n in others:
            r = rep["ratios"][f"{base}/{n}"].get(key) if key in RATIO_KEYS else None
            row.append(f"{r:.2f}" if r is not None else "-")
        rows.append(row)
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "  ".join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i])
                               for i, c in enumerate(r))
    print(line(head))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))
    print()
    for rt in bench.rts:
        print(f"{rt.name}: {rt.path}  {rt.version}")
    for rt in bench.rts:
        pl = rt.preflight.get("cgroup_placement")
        if pl:
            print(f"{rt.name} cgroup placement: container cgroup in "
                  f"{len(pl['in_container_cgroup'])} hierarchies "
                  f"({','.join(pl['in_container_cgroup']) or 'none'})"
                  + (f"; left in the caller's cgroup for {','.join(pl['elsewhere'])}"
                     if pl["elsewhere"] else ""))
    for rt in bench.rts:
        for f in rt.failures:
            print(f"\n{rt.name} FAILED in {f['phase']}: {f['what']}")
            if "rc" in f:
                print(f"  exit code: {f['rc']}{' (timed out)' if f.get('timed_out') else ''}")
                if f.get("stderr"):
                    print("  stderr: " + f["stderr"].replace("\n", "\n          "))
                if f.get("stdout"):
                    print("  stdout: " + f["stdout"].replace("\n", "\n          "))
    if bench.cgroup_report:
        print(f"\ncontainer cgroups left behind after delete (removed by the benchmark): "
              f"{bench.cgroup_report}")
    if bench.o.no_ambient:
        print("\nNOTE: --no-ambient: the bundle has no ambient capabilities (not the runc spec "
              "default)")
    print(f"\nmethod: {bench.o.runs} runs (a), {bench.o.split_runs} create/start/delete (d), "
          f"{bench.o.warmup} warm-ups, interleaved {' '.join(names)}; {bench.o.seq} in a row x "
          f"{bench.o.seq_rounds} rounds (c, median). Quote medians and ratios, not p90 or "
          f"single times. load average before/after: {bench.load[0][0]:.2f}/"
          f"{bench.load[1][0]:.2f}; took {bench.elapsed:.0f} s")


# ---------------------------------------------------------------------------------------------

def parse_args(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=100, help="measured `run`s per runtime (100)")
    ap.add_argument("--split-runs", type=int, default=None,
                    help="measured create/start/delete per runtime (default: --runs; 0 skips)")
    ap.add_argument("--warmup", type=int, default=5, help="warm-up containers per phase (5)")
    ap.add_argument("--rss-runs", type=int, default=20,
                    help="runs per runtime under GNU time for peak RSS (20; 0 skips)")
    ap.add_argument("--seq", type=int, default=100, help="containers in a row for (c) (100)")
    ap.add_argument("--seq-rounds", type=int, default=3, help="rounds of (c), median (3)")
    ap.add_argument("--runtimes", default="berth,crun,runc",
                    help="comma-separated NAME or NAME=PATH, in interleave order "
                         "(berth,crun,runc)")
    ap.add_argument("--berth", default=os.path.join(os.path.dirname(here), "build", "runtime",
                                                    "berth"), help="berth binary")
    ap.add_argument("--crun", default=None, help="crun binary (from PATH)")
    ap.add_argument("--runc", default=None, help="runc binary (from PATH)")
    ap.add_argument("--no-ambient", action="store_true",
                    help="drop process.capabilities.ambient from the bundle, for every runtime "
                         "(the `runc spec` default asks for ambient caps that are not "
                         "inheritable; runc and crun ignore the failure to raise them)")
    ap.add_argument("--resources", action="store_true",
                    help="give every container a linux.resources block (memory, cpu, pids, "
                         "devices), for the cgroup v2 VM (tests/vm/vmrun)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds per runtime call (30)")
    ap.add_argument("--out", help="write the results as JSON to this file")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temp dir")
    ap.add_argument("--in-ns", action="store_true", help=argparse.SUPPRESS)
    o = ap.parse_args(argv)
    o.runtimes = [r.strip() for r in o.runtimes.split(",") if r.strip()]
    names = [r.partition("=")[0] for r in o.runtimes]
    if not names or len(set(names)) != len(names) or not all(
            n.isalnum() for n in names):
        ap.error("--runtimes needs distinct alphanumeric names (NAME or NAME=PATH)")
    if o.split_runs is None:
        o.split_runs = o.runs
    if o.runs < 1:
        ap.error("--runs must be >= 1")
    return o


def main(argv):
    o = parse_args(argv)
    log = lambda m: print(m, file=sys.stderr, flush=True)
    if os.geteuid() != 0:
        log("must run as root")
        return 2
    if not o.in_ns:
        log("run me through bench/runtime-startup.sh (private mount namespace)")
        return 2
    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    set_subreaper()
    bench = Bench(o, log)
    rc = 0
    try:
        bench.main()
    except (KeyboardInterrupt, Interrupted) as e:
        log(f"interrupted ({e or 'Ctrl-C'}); cleaning up")
        rc = 130
    except Exception as e:  # a bug or a broken host, not a runtime failure: still clean up
        import traceback
        traceback.print_exc()
        log(f"benchmark error: {e}; cleaning up")
        rc = 1
    finally:
        bench.cleanup()
    if rc:
        return rc
    rep, base = build_report(bench)
    print_table(bench, rep, base)
    if o.out:
        with open(o.out, "w") as f:
            json.dump(rep, f, indent=1)
            f.write("\n")
        log(f"wrote {o.out}")
    return 0 if all(rt.ok and rt.split_ok for rt in bench.rts) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
