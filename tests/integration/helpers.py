"""Helpers for Berth's integration suite (runc-compatible runtimes).

Everything here is runtime-agnostic: the binary under test comes from $RUNTIME
(default: the build's berth), and every test must also pass against runc 1.1
unless it is marked ``berth_only`` or ``skip_runc``.
"""
from __future__ import annotations

import array
import contextlib
import copy
import ctypes
import errno
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
DEFAULT_RUNTIME = REPO / "build" / "runtime" / "berth"
RUNTIME = os.environ.get("RUNTIME") or str(DEFAULT_RUNTIME)

# Parent of every container cgroup the suite creates: /berth-test/<testkey>/<name>.
CGROUP_PARENT = "berth-test"

DEFAULT_TIMEOUT = float(os.environ.get("BERTH_ITEST_TIMEOUT", "30"))

libc = ctypes.CDLL(None, use_errno=True)
PR_SET_CHILD_SUBREAPER = 36
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18


# --------------------------------------------------------------------------------------
# runtime identification


_KIND_CACHE: dict[str, str] = {}


def runtime_kind(path: str = RUNTIME) -> str:
    """'berth', 'runc', or 'other' (from `--version`, then the file name)."""
    if path in _KIND_CACHE:
        return _KIND_CACHE[path]
    kind = "other"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
        first = out.strip().split()[0].lower() if out.strip() else ""
    except Exception:
        first = ""
    base = os.path.basename(path).lower()
    if first.startswith("berth") or (not first and "berth" in base):
        kind = "berth"
    elif first.startswith("runc") or (not first and "runc" in base):
        kind = "runc"
    _KIND_CACHE[path] = kind
    return kind


def is_berth() -> bool:
    return runtime_kind() == "berth"


def is_runc() -> bool:
    return runtime_kind() == "runc"


# --------------------------------------------------------------------------------------
# process bookkeeping (pytest is a child subreaper, like conmon and containerd-shim)

SPAWN_LOCK = threading.RLock()
_ACTIVE_CHILDREN: set[int] = set()
REAPED: dict[int, int] = {}  # pid -> wait status of orphans we reaped


def become_subreaper() -> None:
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "prctl(PR_SET_CHILD_SUBREAPER)")


def private_mount_namespace() -> None:
    """Enter a new mount namespace with everything private (idempotent in effect)."""
    if libc.unshare(CLONE_NEWNS) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "unshare(CLONE_NEWNS)")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "mount --make-rprivate /")


def spawn(cmd, **kw) -> subprocess.Popen:
    """Popen registered with the reaper so that it never steals the child's status."""
    with SPAWN_LOCK:
        p = subprocess.Popen(cmd, **kw)
        _ACTIVE_CHILDREN.add(p.pid)
    return p


def finish(p: subprocess.Popen, timeout=None):
    """wait() for a spawn()ed child and unregister it. Raises TimeoutExpired."""
    try:
        return p.wait(timeout=timeout)
    finally:
        if p.returncode is not None:
            with SPAWN_LOCK:
                _ACTIVE_CHILDREN.discard(p.pid)


def kill_and_finish(p: subprocess.Popen) -> None:
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    finish(p, timeout=30)


def host(cmd, check=True, timeout=60, **kw) -> subprocess.CompletedProcess:
    """Run a host command (ip, mount, ...) and capture its output."""
    p = spawn(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
              text=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_and_finish(p)
        raise
    finally:
        if p.returncode is not None:
            with SPAWN_LOCK:
                _ACTIVE_CHILDREN.discard(p.pid)
    cp = subprocess.CompletedProcess(cmd, p.returncode, out, err)
    if check and p.returncode != 0:
        raise AssertionError(f"host command {cmd} failed rc={p.returncode}: {err.strip()}")
    return cp


class Background:
    """Run fn() in a thread; result() re-raises its exception."""

    def __init__(self, fn):
        self._res = None
        self._exc = None
        self._t = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._t.start()

    def _run(self, fn):
        try:
            self._res = fn()
        except BaseException as e:  # noqa: BLE001
            self._exc = e

    def done(self) -> bool:
        return not self._t.is_alive()

    def result(self, timeout=None):
        self._t.join(timeout)
        if self._t.is_alive():
            raise AssertionError(f"background call still running after {timeout}s")
        if self._exc:
            raise self._exc
        return self._res


def proc_stat(pid: int):
    """(state, ppid, starttime) of a pid, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data[data.rfind(")") + 2:].split()
    return rest[0], int(rest[1]), int(rest[19])


def all_pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def reap_orphans() -> None:
    """Reap zombie children that are not ours through spawn() (orphans re-parented to us)."""
    me = os.getpid()
    with SPAWN_LOCK:
        for pid in all_pids():
            st = proc_stat(pid)
            if not st or st[1] != me or st[0] != "Z" or pid in _ACTIVE_CHILDREN:
                continue
            with contextlib.suppress(ChildProcessError):
                rpid, status = os.waitpid(pid, os.WNOHANG)
                if rpid == pid:
                    REAPED[pid] = status


def live_children() -> dict[int, int]:
    """pid -> starttime of non-zombie children of this process not managed by spawn()."""
    me = os.getpid()
    res = {}
    for pid in all_pids():
        st = proc_stat(pid)
        if st and st[1] == me and st[0] != "Z" and pid not in _ACTIVE_CHILDREN:
            res[pid] = st[2]
    return res


def pid_alive(pid: int, starttime: int | None = None) -> bool:
    st = proc_stat(pid)
    if not st or st[0] in ("Z", "X"):
        return False
    return starttime is None or st[2] == starttime


def proc_status(pid="self") -> dict[str, str]:
    res = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            res[k] = v.strip()
    return res


def wait_for(cond, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        reap_orphans()
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------
# config.json


DEFAULT_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_config(cgroups_path: str | None = None, root_path: str = "rootfs") -> dict:
    """The equivalent of `runc spec` (runc 1.2 on a cgroup-namespace capable host),
    with terminal false for tests and a per-test cgroupsPath."""
    cfg = {
        "ociVersion": "1.2.0",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": list(DEFAULT_CAPS),
                "effective": list(DEFAULT_CAPS),
                "permitted": list(DEFAULT_CAPS),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": root_path, "readonly": True},
        "hostname": "runc",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
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
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi", "/sys/devices/virtual/powercap",
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }
    if cgroups_path:
        cfg["linux"]["cgroupsPath"] = cgroups_path
    return cfg


def read_config(bundle) -> dict:
    with open(Path(bundle) / "config.json") as f:
        return json.load(f)


def write_config(bundle, cfg) -> None:
    p = Path(bundle) / "config.json"
    tmp = p.with_suffix(".json.tmp")
    with open(tmp, "w") as f:
        json.dump(cfg, f, indent=2)
    os.replace(tmp, p)


def deep_merge(dst: dict, src: dict) -> dict:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = copy.deepcopy(v)
    return dst


def update_config(bundle, change) -> dict:
    """Mutate <bundle>/config.json, like runc's bats `update_config '<jq>'`.

    `change` is a dict (deep-merged; dicts merge, everything else replaces) or a
    function taking the config dict and either mutating it in place or returning
    a new one."""
    cfg = read_config(bundle)
    if callable(change):
        ret = change(cfg)
        if ret is not None:
            cfg = ret
    else:
        deep_merge(cfg, change)
    write_config(bundle, cfg)
    return cfg


def set_args(bundle, *args) -> None:
    update_config(bundle, lambda c: c["process"].__setitem__("args", list(args)))


def sh(bundle, script: str) -> None:
    """Make the container run `sh -c script`."""
    set_args(bundle, "sh", "-c", script)


# --------------------------------------------------------------------------------------
# results


class Result:
    """Outcome of one runtime invocation. Unpacks as (rc, stdout, stderr)."""

    def __init__(self, cmd, rc, out, err, out_path=None, err_path=None, elapsed=0.0):
        self.cmd, self.rc, self.out, self.err = cmd, rc, out, err
        self.out_path, self.err_path, self.elapsed = out_path, err_path, elapsed

    def __iter__(self):
        return iter((self.rc, self.out, self.err))

    @property
    def ok(self):
        return self.rc == 0

    def reread(self) -> "Result":
        """Re-read the stdio files (a detached container keeps writing to them)."""
        if self.out_path:
            self.out = Path(self.out_path).read_text(errors="replace")
        if self.err_path:
            self.err = Path(self.err_path).read_text(errors="replace")
        return self

    def __repr__(self):
        return (f"Result(cmd={' '.join(map(str, self.cmd))!r}, rc={self.rc}, "
                f"stdout={self.out[-2000:]!r}, stderr={self.err[-2000:]!r})")

    def check(self, rc=0) -> "Result":
        assert self.rc == rc, f"expected rc={rc}: {self!r}"
        return self


def assert_ok(res: Result) -> Result:
    assert res.rc == 0, f"runtime failed: {res!r}"
    return res


def assert_fail(res: Result, *needles: str) -> Result:
    assert res.rc != 0, f"runtime unexpectedly succeeded: {res!r}"
    for n in needles:
        assert n in res.err or n in res.out, f"expected {n!r} in the error output: {res!r}"
    return res


# --------------------------------------------------------------------------------------
# mounts, cgroups


def mountinfo(pid="self") -> list[tuple]:
    """Mounts as (mount point, root, fstype, source), one per line of mountinfo."""
    res = []
    with open(f"/proc/{pid}/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            a, b = pre.split(), post.split()
            res.append((a[4], a[3], b[0], b[1]))
    return res


def cgroup_mounts() -> list[str]:
    """Mount points of every cgroup/cgroup2 hierarchy visible to us."""
    res = []
    seen = set()
    for mp, root, fstype, src in mountinfo():
        if fstype in ("cgroup", "cgroup2") and root == "/" and mp not in seen:
            seen.add(mp)
            res.append(mp)
    return res


def is_mountpoint(path) -> bool:
    p = os.path.realpath(path)
    return any(m[0] == p for m in mountinfo())


# --------------------------------------------------------------------------------------
# fd passing


def recv_fd(conn: socket.socket, timeout=30.0):
    """Receive (payload bytes, [fds]) from one SCM_RIGHTS message."""
    conn.settimeout(timeout)
    fds = array.array("i")
    msg, ancdata, flags, addr = conn.recvmsg(4096, socket.CMSG_SPACE(16 * fds.itemsize))
    for level, typ, data in ancdata:
        if level == socket.SOL_SOCKET and typ == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    return msg, list(fds)


class UnixListener:
    """AF_UNIX SOCK_STREAM listener in a short temp dir; accepts one connection in a
    thread and receives one fd (what a console socket / seccomp listener does)."""

    def __init__(self, path: str, read_all=False):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(4)
        self.payload = b""
        self.fds: list[int] = []
        self.error = None
        self.read_all = read_all
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            self.sock.settimeout(60)
            conn, _ = self.sock.accept()
            with conn:
                payload, fds = recv_fd(conn)
                if self.read_all:
                    conn.settimeout(5)
                    while True:
                        more = conn.recv(65536)
                        if not more:
                            break
                        payload += more
                self.payload, self.fds = payload, fds
        except Exception as e:  # reported by wait()
            self.error = e
        finally:
            self.done.set()

    def wait(self, timeout=30.0):
        if not self.done.wait(timeout):
            raise AssertionError(f"nothing connected to {self.path} within {timeout}s")
        if self.error:
            raise AssertionError(f"listener on {self.path} failed: {self.error!r}")
        return self.payload, self.fds

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.close()
        self.thread.join(timeout=5)
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


def read_until(fd: int, needle: bytes, timeout=10.0) -> bytes:
    """Read from fd until `needle` appears (fd is switched to non-blocking)."""
    os.set_blocking(fd, False)
    buf = b""
    deadline = time.monotonic() + timeout
    import select

    while needle not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {needle!r}; got {buf!r}")
        r, _, _ = select.select([fd], [], [], min(left, 0.2))
        if r:
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            except OSError as e:
                if e.errno == errno.EIO:  # slave closed
                    break
                raise
            if not chunk:
                break
            buf += chunk
    if needle not in buf:
        raise AssertionError(f"EOF before {needle!r}; got {buf!r}")
    return buf


# --------------------------------------------------------------------------------------
# misc


def sha256(path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cap_mask(names) -> int:
    nums = {
        "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
        "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
        "CAP_LINUX_IMMUTABLE": 9, "CAP_NET_BIND_SERVICE": 10, "CAP_NET_BROADCAST": 11,
        "CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_IPC_LOCK": 14, "CAP_IPC_OWNER": 15,
        "CAP_SYS_MODULE": 16, "CAP_SYS_RAWIO": 17, "CAP_SYS_CHROOT": 18, "CAP_SYS_PTRACE": 19,
        "CAP_SYS_PACCT": 20, "CAP_SYS_ADMIN": 21, "CAP_SYS_BOOT": 22, "CAP_SYS_NICE": 23,
        "CAP_SYS_RESOURCE": 24, "CAP_SYS_TIME": 25, "CAP_SYS_TTY_CONFIG": 26, "CAP_MKNOD": 27,
        "CAP_LEASE": 28, "CAP_AUDIT_WRITE": 29, "CAP_AUDIT_CONTROL": 30, "CAP_SETFCAP": 31,
        "CAP_MAC_OVERRIDE": 32, "CAP_MAC_ADMIN": 33, "CAP_SYSLOG": 34, "CAP_WAKE_ALARM": 35,
        "CAP_BLOCK_SUSPEND": 36, "CAP_AUDIT_READ": 37, "CAP_PERFMON": 38, "CAP_BPF": 39,
        "CAP_CHECKPOINT_RESTORE": 40,
    }
    m = 0
    for n in names:
        m |= 1 << nums[n]
    return m


def parse_status_lines(text: str) -> dict[str, str]:
    res = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            res[k.strip()] = v.strip()
    return res


def strip_ansi(b: bytes) -> str:
    return re.sub(rb"\x1b\[[0-9;?]*[a-zA-Z]", b"", b).decode(errors="replace")


def is_executable_file(p) -> bool:
    try:
        st = os.stat(p)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and os.access(p, os.X_OK)


def rmtree(path) -> None:
    shutil.rmtree(path, ignore_errors=True)
