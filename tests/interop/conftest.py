"""Interop suite: berth driven by containerd 1.6 (ctr), podman 4.3 and conmon, with runc as control.

Every scenario is parameterised by runtime (`berth`, `runc`): a failure that happens for
berth only is berth's. Run it with tests/interop/run.sh (installs the clients, private
mount namespace, temp root) or directly: `python3 -m pytest -q tests/interop` as root.

Environment: BERTH (default build/runtime/berth), RUNC (default runc from PATH),
INTEROP_ROOT (temp root; made and removed here if unset), INTEROP_RUNTIMES
(comma list, default "berth,runc"), INTEROP_NO_UNSHARE=1 (stay in the caller's mount
namespace; podman's overlay mounts would then be visible to the host until teardown).
"""
from __future__ import annotations

import itertools
import os
import re
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import interop_lib as L
from clients import Containerd, Podman

RUNTIMES = [r for r in os.environ.get("INTEROP_RUNTIMES", "berth,runc").split(",") if r]


def pytest_configure(config):
    config.addinivalue_line("markers", "containerd: needs containerd + ctr")
    config.addinivalue_line("markers", "podman: needs podman + conmon")
    if os.geteuid() != 0:
        return
    if not os.environ.get("INTEROP_NO_UNSHARE"):
        # podman's and containerd's mounts must never reach the host's mount namespace.
        L.private_mount_namespace()


def pytest_report_header(config):
    return ["interop runtimes: " + ", ".join(f"{r}={L.runtime_path(r)}" for r in RUNTIMES)]


# --------------------------------------------------------------------------------------
# session


@dataclass
class World:
    root: Path
    tag: str
    cg_parent: str
    rootfs: Path
    rootfs_tar: Path
    oci_archive: Path
    owns_root: bool
    notes: list = field(default_factory=list)


@pytest.fixture(scope="session")
def world():
    if os.geteuid() != 0:
        pytest.skip("the interop suite needs root")
    given = os.environ.get("INTEROP_ROOT")
    root = Path(given or tempfile.mkdtemp(prefix="berth-interop."))
    root.mkdir(parents=True, exist_ok=True)
    tag = os.environ.get("INTEROP_TAG") or secrets.token_hex(3)
    img = root / "image"
    img.mkdir(exist_ok=True)
    rootfs = L.build_rootfs(img / "rootfs")
    rootfs_tar = L.tar_rootfs(rootfs, img / "rootfs.tar")
    oci = L.build_oci_archive(rootfs_tar, img / "bb-oci.tar")
    w = World(root=root, tag=tag, cg_parent=f"/berth-interop-{tag}", rootfs=rootfs, rootfs_tar=rootfs_tar,
              oci_archive=oci, owns_root=not given)
    yield w
    L.unmount_under(str(root))
    left = L.remove_cgroup_tree(w.cg_parent)
    if left:
        print(f"\ninterop: cgroups that could not be removed: {left}")
    if w.owns_root:
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Runtime:
    name: str
    path: str


_runtimes: dict[str, Runtime] = {}


@pytest.fixture(params=RUNTIMES)
def runtime(request, world) -> Runtime:
    name = request.param
    path = L.runtime_path(name)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        pytest.skip(f"{name} binary not found at {path}")
    if name not in _runtimes:
        _runtimes[name] = Runtime(name, path)
    return _runtimes[name]


_counter = itertools.count(1)


def short_name(request) -> str:
    base = re.sub(r"\[.*\]", "", request.node.name).replace("test_", "")
    return re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")[:24].strip("-")


# --------------------------------------------------------------------------------------
# containerd


@pytest.fixture(scope="session")
def containerd_daemon(world):
    missing = [b for b in ("containerd", "ctr", "containerd-shim-runc-v2") if not shutil.which(b)]
    if missing:
        pytest.skip(f"containerd not installed (missing {', '.join(missing)})")
    d = Containerd(world.root / "containerd", world.cg_parent)
    try:
        d.start()
    except Exception as e:  # noqa: BLE001
        d.stop()
        pytest.fail(f"cannot start containerd: {e}")
    yield d
    notes = d.stop()
    if notes:
        print(f"\ninterop: containerd teardown: {notes}")


class Ctd:
    """ctr for one runtime: its own namespace, runc root, fifo dir and cgroup subtree."""

    def __init__(self, daemon: Containerd, rt: Runtime, world: World):
        self.d = daemon
        self.rt = rt
        self.ns = f"interop-{rt.name}"
        self.runc_root = world.root / f"ctr-runc-root-{rt.name}"
        self.fifo = world.root / f"ctr-fifo-{rt.name}"
        self.fifo.mkdir(exist_ok=True)
        self.cg = f"{world.cg_parent}/ctr-{rt.name}"
        self.ids: list[str] = []

    def ctr(self, *args, **kw) -> L.Result:
        return self.d.ctr(*args, ns=self.ns, **kw)

    def cmd(self, *args) -> list[str]:
        return self.d.ctr_cmd(*args, ns=self.ns)

    def run_cmd(self, cid: str, *argv, detach=False, rm=False, tty=False, extra=()) -> list[str]:
        self.ids.append(cid)
        opts = ["--runc-binary", self.rt.path, "--runc-root", self.runc_root, "--cgroup", f"{self.cg}/{cid}",
                "--fifo-dir", self.fifo]
        if detach:
            opts.append("-d")
        if rm:
            opts.append("--rm")
        if tty:
            opts.append("-t")
        return self.cmd("run", *opts, *extra, L.IMAGE_REF, cid, *argv)

    def run(self, cid: str, *argv, detach=False, rm=False, timeout=120, **kw) -> L.Result:
        return L.run(self.run_cmd(cid, *argv, detach=detach, rm=rm), timeout=timeout, **kw)

    def exec_cmd(self, cid: str, exec_id: str, *argv, tty=False, detach=False) -> list[str]:
        opts = ["--exec-id", exec_id, "--fifo-dir", self.fifo]
        if tty:
            opts.append("-t")
        if detach:
            opts.append("-d")
        return self.cmd("task", "exec", *opts, cid, *argv)

    def task_pid(self, cid: str) -> int:
        r = self.ctr("task", "ls").ok()
        for line in r.out.splitlines()[1:]:
            f = line.split()
            if f and f[0] == cid:
                return int(f[1])
        raise AssertionError(f"task {cid} not listed: {r!r}")

    def task_status(self, cid: str) -> str | None:
        r = self.ctr("task", "ls").ok()
        for line in r.out.splitlines()[1:]:
            f = line.split()
            if f and f[0] == cid:
                return f[2]
        return None

    def state_dir(self, cid: str) -> Path:
        return self.runc_root / self.ns / cid

    def cleanup(self) -> None:
        for cid in self.ids:
            self.ctr("task", "kill", "-a", "-s", "SIGKILL", cid, timeout=30)
        for cid in self.ids:
            for _ in range(50):
                r = self.ctr("task", "delete", "-f", cid, timeout=30)
                if r.rc == 0 or "not found" in r.err:
                    break
                L.time.sleep(0.1)
            self.ctr("container", "delete", cid, timeout=30)


_imported: set[str] = set()


@pytest.fixture
def ctd(request, runtime, world, containerd_daemon):
    c = Ctd(containerd_daemon, runtime, world)
    if c.ns not in _imported:
        containerd_daemon.import_image(world.oci_archive, c.ns)
        _imported.add(c.ns)
    c.name = lambda suffix="": f"{runtime.name}-{short_name(request)}-{next(_counter)}{suffix}"
    yield c
    c.cleanup()


# --------------------------------------------------------------------------------------
# podman


_podmen: dict[str, Podman] = {}


@pytest.fixture(scope="session")
def podman_worlds(world):
    missing = [b for b in ("podman", "conmon") if not shutil.which(b)]
    if missing:
        pytest.skip(f"podman not installed (missing {', '.join(missing)})")
    yield _podmen
    for name, p in _podmen.items():
        notes = p.cleanup()
        if notes:
            print(f"\ninterop: podman ({name}) teardown: {notes}")


@pytest.fixture
def pm(request, runtime, world, podman_worlds):
    if runtime.name not in podman_worlds:
        p = Podman(world.root / f"podman-{runtime.name}", runtime.path, f"{world.cg_parent}/podman-{runtime.name}",
                   runtime_flags=L.runtime_flags(runtime.name))
        podman_worlds[runtime.name] = p
        p.setup(world.rootfs_tar)
    p = podman_worlds[runtime.name]
    names: list[str] = []
    pods: list[str] = []

    def name(suffix=""):
        n = f"{runtime.name}-{short_name(request)}-{next(_counter)}{suffix}"
        names.append(n)
        return n

    def pod_name():
        n = f"{runtime.name}-pod-{next(_counter)}"
        pods.append(n)
        return n

    p.name = name
    p.pod_name = pod_name
    yield p
    for n in names:
        p.podman("rm", "-f", "-t", "0", n, timeout=60)
    for n in pods:
        p.podman("pod", "rm", "-f", "-t", "0", n, timeout=60)
