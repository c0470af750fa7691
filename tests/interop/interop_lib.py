"""Helpers for the interop suite: berth (and runc, the control) driven by real clients.

Everything lives under one temp root (INTEROP_ROOT, made by run.sh or by conftest.py) and
one cgroup parent of our own (/berth-interop-<tag>) in every mounted hierarchy; nothing
else on the host is touched. Only processes this suite started are ever signalled.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import gzip
import hashlib
import io
import json
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tarfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "lib"))
from elf import is_static_elf  # noqa: E402
BERTH = os.environ.get("BERTH", str(REPO / "build" / "runtime" / "berth"))
RUNC = os.environ.get("RUNC") or shutil.which("runc") or "/usr/sbin/runc"
BUSYBOX = os.environ.get("INTEROP_BUSYBOX", "/bin/busybox")

IMAGE_REF = "localhost/interop/bb:latest"

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNS = 0x00020000
MS_REC = 16384
MS_PRIVATE = 1 << 18
PR_SET_CHILD_SUBREAPER = 36


# --------------------------------------------------------------------------------------
# processes


class Result:
    def __init__(self, cmd, rc, out, err, elapsed):
        self.cmd, self.rc, self.out, self.err, self.elapsed = cmd, rc, out, err, elapsed

    def __repr__(self):
        return (f"<{' '.join(map(str, self.cmd))}: rc={self.rc}\n--- stdout\n{self.out}"
                f"--- stderr\n{self.err}>")

    def ok(self) -> "Result":
        assert self.rc == 0, f"command failed: {self!r}"
        return self


def run(cmd, timeout=120, env=None, input=None, pass_fds=(), cwd=None, preexec_fn=None) -> Result:
    """Run a command with captured output; never raises on a non-zero exit."""
    t0 = time.monotonic()
    p = subprocess.Popen([str(c) for c in cmd], stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         pass_fds=pass_fds, cwd=cwd, preexec_fn=preexec_fn)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        err += f"\n[interop: killed after {timeout}s timeout]"
        return Result(cmd, -9, out, err, time.monotonic() - t0)
    return Result(cmd, p.returncode, out, err, time.monotonic() - t0)


def wait_for(cond, timeout=20.0, interval=0.05, what="condition"):
    end = time.monotonic() + timeout
    last = None
    while True:
        last = cond()
        if last:
            return last
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def proc_stat(pid: int):
    """(comm, state, ppid) or None."""
    try:
        data = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    comm = data[data.find("(") + 1:data.rfind(")")]
    rest = data[data.rfind(")") + 2:].split()
    return comm, rest[0], int(rest[1])


def pid_alive(pid: int) -> bool:
    st = proc_stat(pid)
    return st is not None and st[1] != "Z"


def all_pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except (FileNotFoundError, ProcessLookupError):
        return []


def pids_with_arg(needle: str) -> list[int]:
    """Processes whose command line mentions needle (a path unique to this suite)."""
    me = os.getpid()
    return [p for p in all_pids() if p != me and any(needle in a for a in cmdline(p))]


def kill_pids(pids, sig=signal.SIGKILL):
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)


def private_mount_namespace() -> None:
    if libc.unshare(CLONE_NEWNS) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "unshare(CLONE_NEWNS)")
    if libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "mount --make-rprivate /")


def become_subreaper() -> None:
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def reap_zombies() -> None:
    """Reap orphans re-parented to us (we are a subreaper) so they never pile up."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


# --------------------------------------------------------------------------------------
# pseudo-terminal


def run_in_pty(cmd, timeout=60, env=None, send: list[tuple[str, bytes]] | None = None,
               rows=33, cols=111) -> Result:
    """Run cmd with a new pty as its controlling terminal and stdio (like a user at a shell).

    send: (marker, data) pairs: once `marker` has appeared in the output, write `data`.
    The window size is set to rows x cols so that its propagation can be checked.
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def child_setup():
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    t0 = time.monotonic()
    p = subprocess.Popen([str(c) for c in cmd], stdin=slave, stdout=slave, stderr=slave, env=env,
                         preexec_fn=child_setup, close_fds=True)
    os.close(slave)
    out = b""
    pending = list(send or [])
    end = time.monotonic() + timeout
    timed_out = False
    while True:
        if pending and pending[0][0].encode() in out:
            os.write(master, pending.pop(0)[1])
            continue
        left = end - time.monotonic()
        if left <= 0:
            timed_out = True
            break
        r, _, _ = select.select([master], [], [], min(left, 0.2))
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError as e:  # EIO: every slave fd is closed
                if e.errno == errno.EIO:
                    break
                raise
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            # the client exited; drain what is left without blocking
            with contextlib.suppress(OSError):
                while select.select([master], [], [], 0.2)[0]:
                    chunk = os.read(master, 65536)
                    if not chunk:
                        break
                    out += chunk
            break
    if timed_out and p.poll() is None:
        p.kill()
    try:
        rc = p.wait(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = p.wait()
    os.close(master)
    text = out.decode(errors="replace").replace("\r\n", "\n")
    if timed_out:
        text += f"\n[interop: timed out after {timeout}s]"
    return Result(cmd, rc, text, "", time.monotonic() - t0)


# --------------------------------------------------------------------------------------
# runtimes


def runtime_path(name: str) -> str:
    return BERTH if name == "berth" else RUNC


def runtime_flags(name: str) -> list[str]:
    """Global flags a client passes to the runtime. berth refuses a container whose limits
    this host cannot enforce (a hybrid cgroup host: cgroup v2 without resource controllers;
    runc enforces them through cgroup v1), and podman sets a pids limit on every container:
    berth's opt-in keeps this suite about the clients. tests/vm proves the limits."""
    return ["allow-unenforced-limits"] if name == "berth" else []


# --------------------------------------------------------------------------------------
# busybox rootfs and images


def build_rootfs(dest: Path) -> Path:
    """A rootfs holding only Debian's static busybox and its applet links."""
    if not is_static_elf(BUSYBOX):
        raise RuntimeError(f"{BUSYBOX} is not a static binary (install busybox-static)")
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root", "run", "var/tmp",
              "home"):
        (dest / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dest / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, dest / "bin" / "busybox")
    applets = run([BUSYBOX, "--list"]).ok().out.split()
    for a in applets:
        link = dest / "bin" / a
        if not link.exists():
            link.symlink_to("busybox")
    (dest / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    (dest / "etc" / "group").write_text("root:x:0:\ntty:x:5:\nnogroup:x:65534:\n")
    return dest


def tar_rootfs(rootfs: Path, dest: Path) -> Path:
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as t:
        for entry in sorted(rootfs.iterdir()):
            t.add(entry, arcname=entry.name)
    return dest


def _blob(blobs: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return f"sha256:{digest}", len(data)


def build_oci_archive(rootfs_tar: Path, dest: Path, ref: str = IMAGE_REF) -> Path:
    """An OCI image layout tarball (one gzip layer) that `ctr image import` accepts."""
    work = dest.with_suffix(".d")
    blobs = work / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    raw = rootfs_tar.read_bytes()
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        gz.write(raw)
    layer_digest, layer_size = _blob(blobs, buf.getvalue())
    config = {
        "architecture": "amd64", "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["/bin/sh"], "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "berth interop suite: busybox-static"}],
    }
    cfg_digest, cfg_size = _blob(blobs, json.dumps(config).encode())
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": cfg_size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest,
                    "size": layer_size}],
    }
    man_digest, man_size = _blob(blobs, json.dumps(manifest).encode())
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": man_digest, "size": man_size,
        "platform": {"architecture": "amd64", "os": "linux"},
        "annotations": {"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": ref.split(":")[-1]},
    }]}
    (work / "index.json").write_text(json.dumps(index))
    (work / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    with tarfile.open(dest, "w") as t:
        for name in ("oci-layout", "index.json", "blobs"):
            t.add(work / name, arcname=name)
    shutil.rmtree(work)
    return dest


# --------------------------------------------------------------------------------------
# cgroups and mounts of our own


def cgroup_mounts() -> list[str]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split()[0]
        if fstype in ("cgroup", "cgroup2"):
            out.append(left.split()[4])
    return out


def remove_cgroup_tree(parent: str) -> list[str]:
    """Remove /<parent> (ours) in every hierarchy, deepest first; returns what could not go."""
    left = []
    for mnt in cgroup_mounts():
        top = Path(mnt) / parent.lstrip("/")
        if not top.is_dir():
            continue
        dirs = sorted((p for p, _, _ in os.walk(top)), key=lambda p: p.count("/"), reverse=True)
        for d in dirs:
            for _ in range(100):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY:
                        left.append(f"{d}: {e}")
                        break
                    # only containers of this suite can be inside our own cgroup
                    with contextlib.suppress(OSError):
                        pids = [int(x) for x in Path(d, "cgroup.procs").read_text().split()]
                        kill_pids(pids)
                    with contextlib.suppress(OSError):
                        if Path(d, "freezer.state").exists():
                            Path(d, "freezer.state").write_text("THAWED")
                    time.sleep(0.05)
            else:
                left.append(f"{d}: still busy")
    return left


def unmount_under(root: str) -> None:
    """Lazily unmount every mount at or below root, deepest first."""
    root = os.path.realpath(root)
    mps = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mp = line.split()[4].replace("\\040", " ")
        if mp == root or mp.startswith(root + "/"):
            mps.append(mp)
    for mp in sorted(set(mps), key=len, reverse=True):
        libc.umount2(mp.encode(), 2)  # MNT_DETACH


def cgroup_of(pid: int) -> dict[str, str]:
    out = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
            _, ctrl, path = line.split(":", 2)
            out[ctrl or "unified"] = path
    return out
