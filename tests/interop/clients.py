"""The clients under test: a private containerd 1.6 daemon (ctr) and a private podman 4.3 world.

Both are set up exactly as /work/shared/reference/runtime-client-contract.md observed them
working on this host, only moved into our own temp root and cgroup parent.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import interop_lib as L

sys.path.insert(0, str(L.REPO / "tests" / "lib"))
from containerd_config import daemon_env, private_config  # noqa: E402


class Containerd:
    """containerd with its own socket, root, state and config (CRI plugin disabled)."""

    def __init__(self, root: Path, cg_parent: str):
        self.root = root
        self.cg_parent = cg_parent
        self.sock = root / "containerd.sock"
        self.config = root / "config.toml"
        self.log = root / "containerd.log"
        self.proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.namespaces: set[str] = set()

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.config.write_text(private_config(self.root, self.sock, disabled_plugins=["io.containerd.grpc.v1.cri"]) + """[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
""")
        logf = open(self.log, "ab")
        # A session of its own: the daemon must not get the terminal's signals.
        self.proc = subprocess.Popen(["containerd", "--config", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=logf, stderr=logf, start_new_session=True, env=daemon_env())
        logf.close()
        self.pid = self.proc.pid
        (self.root / "containerd.pid").write_text(str(self.pid))

        def ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited rc={self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            return self.sock.exists() and self.ctr("version", ns="default", timeout=10).rc == 0

        L.wait_for(ready, timeout=30, interval=0.2, what="containerd to answer")

    def ctr(self, *args, ns: str, timeout=120, **kw) -> L.Result:
        self.namespaces.add(ns)
        return L.run(["ctr", "--address", self.sock, "--namespace", ns, *args], timeout=timeout, **kw)

    def ctr_cmd(self, *args, ns: str) -> list[str]:
        self.namespaces.add(ns)
        return ["ctr", "--address", str(self.sock), "--namespace", ns, *map(str, args)]

    def import_image(self, archive: Path, ns: str) -> None:
        r = self.ctr("image", "import", "--all-platforms", archive, ns=ns)
        assert r.rc == 0, f"ctr image import failed: {r!r}"
        ls = self.ctr("image", "ls", "-q", ns=ns).ok()
        assert L.IMAGE_REF in ls.out.split(), f"imported image not listed: {ls!r}"

    def cleanup_namespace(self, ns: str) -> None:
        ids = self.ctr("container", "ls", "-q", ns=ns, timeout=30).out.split()
        for cid in ids:
            self.ctr("task", "kill", "-a", "-s", "SIGKILL", cid, ns=ns, timeout=30)
        for cid in ids:
            for _ in range(50):
                r = self.ctr("task", "delete", "-f", cid, ns=ns, timeout=30)
                if r.rc == 0 or "not found" in r.err:
                    break
                time.sleep(0.1)
            self.ctr("container", "delete", cid, ns=ns, timeout=30)

    def stop(self) -> list[str]:
        """Delete every task we made, stop the daemon by its PID, then any shim of ours left."""
        notes = []
        if self.proc is None:
            return notes
        if self.proc.poll() is None:
            for ns in sorted(self.namespaces):
                with contextlib.suppress(Exception):
                    self.cleanup_namespace(ns)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                notes.append("containerd did not stop on SIGTERM; killed")
                self.proc.kill()
                self.proc.wait()
        # Shims (and their containers) that outlived the daemon are ours: their command
        # line names our private socket.
        shims = L.pids_with_arg(str(self.sock))
        if shims:
            notes.append(f"killed leftover shims {shims}")
            L.kill_pids(shims)
        return notes


class Podman:
    """A podman world of its own for one runtime, registered under the name `runc`.

    The name `runc` makes podman pass `--log-format=json --log <oci-log>` to the runtime
    (runtime_supports_json), exactly as it does for the real runc.
    """

    def __init__(self, root: Path, runtime_path: str, cg_parent: str, runtime_flags=()):
        """runtime_flags: global flags podman passes to the runtime (`--runtime-flag`),
        e.g. berth's allow-unenforced-limits: podman sets a pids limit on every container."""
        self.root = root
        self.runtime_path = runtime_path
        self.runtime_flags = list(runtime_flags)
        self.cg_parent = cg_parent
        self.graph = root / "graph"
        self.runroot = root / "runroot"
        self.tmpdir = root / "libpod-tmp"
        self.events = root / "events.log"
        self.conf = root / "containers.conf"
        self.storage_conf = root / "storage.conf"
        self.env: dict[str, str] = {}

    def setup(self, rootfs_tar: Path) -> None:
        for d in (self.graph, self.runroot, self.tmpdir, self.root / "tmp", self.root / "networks"):
            d.mkdir(parents=True, exist_ok=True)
        init = "/usr/libexec/podman/catatonit"
        if not os.path.exists(init):
            init = shutil.which("catatonit") or init
        self.conf.write_text(f"""[containers]
netns = "none"
log_driver = "k8s-file"
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
init_path = "{init}"

[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{self.events}"
runtime = "runc"
tmp_dir = "{self.tmpdir}"

[engine.runtimes]
runc = ["{self.runtime_path}"]

[network]
network_config_dir = "{self.root}/networks"
""")
        self.storage_conf.write_text(f"""[storage]
driver = "overlay"
graphroot = "{self.graph}"
runroot = "{self.runroot}"
""")
        self.env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(self.root),
            "CONTAINERS_CONF": str(self.conf),
            "CONTAINERS_STORAGE_CONF": str(self.storage_conf),
            "TMPDIR": str(self.root / "tmp"),
            "TERM": "xterm",
        }
        r = self.podman("import", "--change", "CMD=/bin/sh", rootfs_tar, L.IMAGE_REF)
        assert r.rc == 0, f"podman import failed: {r!r}"

    def base(self) -> list[str]:
        return ["podman", "--root", str(self.graph), "--runroot", str(self.runroot), "--tmpdir", str(self.tmpdir),
                "--cgroup-manager=cgroupfs", "--events-backend=file", "--runtime", "runc",
                *(f"--runtime-flag={f}" for f in self.runtime_flags)]

    def cmd(self, *args) -> list[str]:
        return self.base() + [str(a) for a in args]

    def podman(self, *args, timeout=120, **kw) -> L.Result:
        return L.run(self.cmd(*args), timeout=timeout, env=self.env, **kw)

    def run_args(self, *extra) -> list[str]:
        return ["run", "--cgroup-parent", self.cg_parent, "--network", "none", *extra]

    def cleanup(self) -> list[str]:
        notes = []
        if not self.env:
            return notes
        r = self.podman("rm", "-af", "-t", "0", timeout=120)
        if r.rc != 0:
            notes.append(f"podman rm -af: {r.err.strip()[:300]}")
        r = self.podman("pod", "rm", "-af", "-t", "0", timeout=120)
        if r.rc != 0:
            notes.append(f"podman pod rm -af: {r.err.strip()[:300]}")
        # conmon processes of ours left behind name our runroot/graph on their command line
        left = [p for p in L.pids_with_arg(str(self.graph)) if "conmon" in (L.proc_stat(p) or ("",))[0]]
        if left:
            notes.append(f"killed leftover conmon {left}")
            L.kill_pids(left)
        return notes

    def inspect(self, name: str) -> dict:
        r = self.podman("inspect", name)
        assert r.rc == 0, f"podman inspect failed: {r!r}"
        return json.loads(r.out)[0]
