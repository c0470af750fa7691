"""pytest fixtures for Berth's integration suite.

Run it with tests/run-integration.sh (RUNTIME=/path/to/runtime to test another
runc-compatible runtime, e.g. RUNTIME=/usr/sbin/runc).

Per session: a private mount namespace, a busybox rootfs built once from Debian's
busybox-static, one --root state dir, pytest as a child subreaper.
Per test (`env`, autouse): unique container ids, bundles whose cgroupsPath is
/berth-test/<testkey>/<bundle>, teardown that force-deletes every container the test
made, then a leak check (mounts, cgroups, processes, state dir, fds).
"""
from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

import helpers as H
from helpers import RUNTIME, Result

sys.path.insert(0, str(H.REPO / "tests" / "lib"))
from elf import is_static_elf  # noqa: E402

BUSYBOX = os.environ.get("BERTH_ITEST_BUSYBOX", "/bin/busybox")


# --------------------------------------------------------------------------------------
# markers


def pytest_configure(config):
    config.addinivalue_line("markers", "berth_only: berth-specific behaviour (skipped for other runtimes)")
    config.addinivalue_line("markers", "skip_runc(reason): runc 1.1 legitimately cannot pass this test on this host")
    config.addinivalue_line("markers", "slow: slower tests")
    config.addinivalue_line("markers", "cgroupv2: needs a pure cgroup v2 host with controllers (run in the VM: tests/vm/run-cgroup-tests.sh)")
    # Never leak mounts into the caller's namespace, even when pytest is run directly.
    if not os.environ.get("BERTH_ITEST_NO_UNSHARE"):
        H.private_mount_namespace()
    H.become_subreaper()


def pytest_report_header(config):
    return [f"runtime: {RUNTIME} (kind: {H.runtime_kind()})"]


def pytest_runtest_setup(item):
    kind = H.runtime_kind()
    if item.get_closest_marker("berth_only") and kind != "berth":
        pytest.skip(f"berth-only behaviour (runtime is {kind})")
    m = item.get_closest_marker("skip_runc")
    if m and kind == "runc":
        reason = m.args[0] if m.args else m.kwargs.get("reason", "runc cannot pass this on this host")
        pytest.skip(f"runc: {reason}")


# --------------------------------------------------------------------------------------
# session


def _build_rootfs(dst: Path) -> None:
    if not H.is_executable_file(BUSYBOX):
        pytest.exit(f"{BUSYBOX} missing: apt-get install busybox-static", returncode=3)
    if not is_static_elf(BUSYBOX):
        pytest.exit(f"{BUSYBOX} is dynamically linked: apt-get install busybox-static", returncode=3)
    for d in ("bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr", "var", "mnt"):
        (dst / d).mkdir(parents=True, exist_ok=True)
    os.chmod(dst / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, dst / "bin" / "busybox")
    os.chmod(dst / "bin" / "busybox", 0o755)
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True, check=True).stdout.split()
    required = {"sh", "ls", "cat", "id", "ps", "sleep", "true", "false", "echo", "mkdir", "hostname",
                "grep", "stat", "readlink", "head", "mount", "env", "stty", "touch", "wc", "uname", "kill"}
    missing = required - set(applets)
    if missing:
        pytest.exit(f"busybox lacks applets {sorted(missing)}", returncode=3)
    for a in applets:
        if "/" in a or a in ("busybox", "[[") or not a:
            continue
        with contextlib.suppress(FileExistsError):
            os.symlink("busybox", dst / "bin" / a)
    (dst / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (dst / "etc" / "group").write_text("root:x:0:\ntty:x:5:\nnobody:x:65534:\n")


class Session:
    def __init__(self):
        self.base = Path(tempfile.mkdtemp(prefix="bi-", dir="/tmp"))
        # traversable by container root mapped to another host uid (user namespaces)
        self.base.chmod(0o755)
        # Like "/" on a systemd host, the bundles live on a *shared* mount (in the suite's
        # private namespace): a runtime whose mounts propagate back to its caller's
        # namespace is caught by the mountinfo leak check.
        self.shared = os.environ.get("BERTH_ITEST_SHARED_BASE", "1") == "1"
        if self.shared:
            subprocess.run(["mount", "--bind", str(self.base), str(self.base)], check=True)
            subprocess.run(["mount", "--make-shared", str(self.base)], check=True)
        self.rootfs_cache = self.base / "cache" / "rootfs"
        self.root = self.base / "root"       # --root for every runtime call
        self.cwd = self.base / "cwd"         # neutral cwd, never a bundle
        self.sock = self.base / "s"          # short dir for unix sockets
        for d in (self.root, self.cwd, self.sock, self.base / "t"):
            d.mkdir(parents=True)
        self.root.chmod(0o700)
        self.nonce = secrets.token_hex(2)
        self.counter = 0
        self.leaks_found = 0
        _build_rootfs(self.rootfs_cache)

    def next_key(self) -> str:
        self.counter += 1
        return f"t{self.nonce}{self.counter}"

    def cleanup(self):
        # Remove our cgroup parent in every hierarchy if it is empty (ours by name).
        for mp in H.cgroup_mounts():
            p = Path(mp) / H.CGROUP_PARENT
            if not p.is_dir():
                continue
            for sub in p.iterdir():
                if sub.is_dir() and sub.name.startswith(f"t{self.nonce}"):
                    _rmdir_tree(sub)
            with contextlib.suppress(OSError):
                p.rmdir()
        if self.shared:
            subprocess.run(["umount", "-l", str(self.base)], capture_output=True)
        H.rmtree(self.base)


@pytest.fixture(scope="session")
def session():
    if not H.is_executable_file(RUNTIME):
        pytest.exit(f"runtime {RUNTIME} not found or not executable (set RUNTIME=...)", returncode=4)
    s = Session()
    yield s
    s.cleanup()


# --------------------------------------------------------------------------------------
# per-test environment


def _fd_snapshot() -> dict[int, str]:
    res = {}
    d = os.open("/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for name in os.listdir(d):
            fd = int(name)
            if fd == d:
                continue
            try:
                res[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                continue
    finally:
        os.close(d)
    return res


class Env:
    """Everything a test needs to drive the runtime; see the module docstring."""

    def __init__(self, session: Session, nodeid: str):
        self.s = session
        self.nodeid = nodeid
        self.key = session.next_key()
        self.dir = session.base / "t" / self.key
        self.dir.mkdir()
        self.ids: list[str] = []
        self.pids: dict[int, int] = {}          # pid -> starttime
        self.bundles: list[Path] = []
        self.cleanups: list = []                # run after containers are deleted (LIFO)
        self._seq = itertools.count(1)
        self.root = str(session.root)
        self.kind = H.runtime_kind()
        self.cgroup_parent = f"/{H.CGROUP_PARENT}/{self.key}"
        # snapshots for the leak checker
        H.reap_orphans()
        self.mounts_before = H.mountinfo()
        self.fds_before = _fd_snapshot()
        self.children_before = H.live_children()

    # ---- names ------------------------------------------------------------------------
    def _next(self) -> int:
        return next(self._seq)

    def new_id(self, prefix="c") -> str:
        cid = f"{prefix}{self.key}-{self._next()}"
        return cid

    def path(self, name: str) -> Path:
        return self.dir / name

    def sock_path(self, name="sock") -> str:
        """A short path for a unix socket."""
        return str(self.s.sock / f"{self.key}-{self._next()}-{name}")

    # ---- bundles ----------------------------------------------------------------------
    def make_bundle(self, name: str | None = None, config: dict | None = None, rootfs=True) -> Path:
        name = name or f"b{self._next()}"
        b = self.dir / name
        b.mkdir()
        if rootfs:
            shutil.copytree(self.s.rootfs_cache, b / "rootfs", symlinks=True)
        cfg = config or H.default_config(cgroups_path=f"{self.cgroup_parent}/{name}")
        H.write_config(b, cfg)
        self.bundles.append(b)
        return b

    # ---- runtime ----------------------------------------------------------------------
    def runtime(self, *args, timeout=None, input=None, stdin=None, cwd=None, env=None, pass_fds=(),
                log=None, log_format=None, root=None, binary=None, global_args=(), preexec_fn=None,
                restore_signals=True, start_new_session=False, stdout=None, stderr=None,
                fd_map=None, close_fds=None) -> Result:
        """Run `RUNTIME --root <session root> [global args] args...` and return a Result
        (unpacks as rc, stdout, stderr). stdio goes to files (a detached container inherits
        them and may keep writing: Result.reread()).

        fd_map {target: source}: dup2 source onto target in the child (e.g. fds 3 and 4
        for --preserve-fds); this turns close_fds off (Python's own fds are CLOEXEC)."""
        if fd_map:
            user_preexec = preexec_fn

            def preexec_fn():
                for target, source in fd_map.items():
                    os.dup2(source, target)  # dup2'd fds are not CLOEXEC
                if user_preexec:
                    user_preexec()
            if close_fds is None:
                close_fds = False
        if close_fds is None:
            close_fds = True
        args = [str(a) for a in args]
        cmd = [str(binary or RUNTIME)]
        if root is not False:
            cmd += ["--root", str(root or self.root)]
        if log:
            cmd += ["--log", str(log)]
        if log_format:
            cmd += ["--log-format", log_format]
        cmd += [str(a) for a in global_args] + args
        sub = args[0] if args else ""
        if sub in ("create", "run") and args and not args[-1].startswith("-"):
            if args[-1] not in self.ids:
                self.ids.append(args[-1])
        n = self._next()
        out_path = self.dir / f"rt{n}.out"
        err_path = self.dir / f"rt{n}.err"
        in_f = None
        if input is not None:
            in_path = self.dir / f"rt{n}.in"
            in_path.write_bytes(input.encode() if isinstance(input, str) else input)
            in_f = open(in_path, "rb")
            stdin = in_f
        elif stdin is None:
            stdin = subprocess.DEVNULL
        H.reap_orphans()
        with open(out_path, "wb") as fo, open(err_path, "wb") as fe:
            t0 = time.monotonic()
            p = H.spawn(cmd, stdin=stdin, stdout=stdout or fo, stderr=stderr or fe,
                        cwd=str(cwd or self.s.cwd), env=env, pass_fds=tuple(pass_fds), close_fds=close_fds,
                        preexec_fn=preexec_fn, restore_signals=restore_signals,
                        start_new_session=start_new_session)
        if in_f:
            in_f.close()
        try:
            rc = H.finish(p, timeout=timeout or H.DEFAULT_TIMEOUT)
        except subprocess.TimeoutExpired:
            H.kill_and_finish(p)
            res = Result(cmd, -9, "", "", out_path, err_path, time.monotonic() - t0).reread()
            raise AssertionError(f"runtime timed out after {timeout or H.DEFAULT_TIMEOUT}s: {res!r}")
        res = Result(cmd, rc, "", "", out_path, err_path, time.monotonic() - t0).reread()
        if rc == 0 and "--pid-file" in args:
            pf = args[args.index("--pid-file") + 1]
            with contextlib.suppress(OSError, ValueError):
                self.track_pid(int(Path(pf if os.path.isabs(pf) else Path(cwd or self.s.cwd) / pf).read_text()))
        if rc == 0 and sub == "state":
            with contextlib.suppress(ValueError, KeyError, TypeError):
                self.track_pid(int(json.loads(res.out)["pid"]))
        return res

    __call__ = runtime

    def track_pid(self, pid: int) -> None:
        if pid and pid > 0 and pid not in self.pids:
            st = H.proc_stat(pid)
            if st:
                self.pids[pid] = st[2]

    # ---- conveniences -----------------------------------------------------------------
    def create(self, bundle, cid=None, *extra, pid_file=True, **kw) -> Result:
        cid = cid or self.new_id()
        args = ["create", "--bundle", str(bundle)]
        if pid_file:
            args += ["--pid-file", str(self.dir / f"{cid}.pid")]
        res = self.runtime(*args, *extra, cid, **kw)
        res.cid = cid
        return res

    def start(self, cid, **kw) -> Result:
        return self.runtime("start", cid, **kw)

    def run(self, bundle, cid=None, *extra, **kw) -> Result:
        cid = cid or self.new_id()
        res = self.runtime("run", "--bundle", str(bundle), *extra, cid, **kw)
        res.cid = cid
        return res

    def run_detached(self, bundle, cid=None, *extra, **kw) -> Result:
        cid = cid or self.new_id()
        res = self.runtime("run", "-d", "--bundle", str(bundle),
                           "--pid-file", str(self.dir / f"{cid}.pid"), *extra, cid, **kw)
        res.cid = cid
        return res

    def state(self, cid, **kw) -> dict | None:
        res = self.runtime("state", cid, **kw)
        if res.rc != 0:
            return None
        return json.loads(res.out)

    def status(self, cid) -> str | None:
        st = self.state(cid)
        return st["status"] if st else None

    def wait_status(self, cid, status, timeout=10.0) -> dict:
        last = {}

        def cond():
            st = self.state(cid, timeout=10)
            last["st"] = st
            return st if st and st["status"] == status else None

        try:
            return H.wait_for(cond, timeout=timeout, interval=0.1, what=f"{cid} to be {status}")
        except AssertionError as e:
            raise AssertionError(f"{e}; last state: {last.get('st')}") from None

    def kill(self, cid, *sig, **kw) -> Result:
        return self.runtime("kill", cid, *sig, **kw)

    def delete(self, cid, force=False, **kw) -> Result:
        return self.runtime("delete", *(["--force"] if force else []), cid, **kw)

    def run_ok(self, bundle, *extra, **kw) -> str:
        """`run` a container in the foreground, assert exit 0, return its stdout."""
        res = self.run(bundle, None, *extra, **kw)
        assert res.rc == 0, f"container run failed: {res!r}"
        return res.out

    def add_cleanup(self, fn) -> None:
        self.cleanups.append(fn)

    # ---- leak checks ------------------------------------------------------------------
    def _cgroup_dirs(self, under: str | None = None) -> list[str]:
        under = under or self.cgroup_parent
        found = []
        for mp in H.cgroup_mounts():
            base = Path(mp + under)
            if base.is_dir():
                for dirpath, dirnames, _ in os.walk(base):
                    for d in dirnames:
                        found.append(os.path.join(dirpath, d))
        return found

    def _cgroup_procs(self, dirs) -> set[int]:
        pids = set()
        for d in dirs:
            with contextlib.suppress(OSError):
                pids |= {int(x) for x in Path(d, "cgroup.procs").read_text().split()}
        return pids

    def _procs_in_our_cgroups(self) -> set[int]:
        mark = f"/{H.CGROUP_PARENT}/{self.key}/"
        res = set()
        for pid in H.all_pids():
            try:
                txt = Path(f"/proc/{pid}/cgroup").read_text()
            except OSError:
                continue
            if mark in txt:
                st = H.proc_stat(pid)
                if st and st[0] != "Z":
                    res.add(pid)
        return res

    def traces(self, cid: str | None = None, bundle=None, check_mounts=True) -> list[str]:
        """What is left of the test's containers (or of one container): a list of problems."""
        H.reap_orphans()
        problems = []
        if cid is not None:
            if os.path.lexists(os.path.join(self.root, cid)):
                problems.append(f"state dir {self.root}/{cid} exists: {os.listdir(os.path.join(self.root, cid)) if os.path.isdir(os.path.join(self.root, cid)) else ''}")
            res = self.runtime("state", cid)
            if res.rc == 0:
                problems.append(f"`state {cid}` still succeeds: {res.out.strip()}")
        else:
            left = os.listdir(self.root)
            if left:
                problems.append(f"files left in the --root state dir: {left}")
        if bundle is not None:
            cg = H.read_config(bundle).get("linux", {}).get("cgroupsPath")
            if cg:
                for mp in H.cgroup_mounts():
                    if os.path.isdir(mp + cg):
                        problems.append(f"cgroup dir left: {mp + cg}")
        else:
            dirs = self._cgroup_dirs()
            if dirs:
                problems.append(f"cgroup dirs left: {dirs}")
        if check_mounts:
            before = list(self.mounts_before)
            new = []
            for m in H.mountinfo():
                if m in before:
                    before.remove(m)
                else:
                    new.append(m)
            if new:
                problems.append(f"new mounts in the test's mount namespace: {new}")
        alive = [p for p, t in self.pids.items() if H.pid_alive(p, t)]
        if alive:
            problems.append(f"container processes still alive: {alive}")
        kids = {p: t for p, t in H.live_children().items()
                if self.children_before.get(p) != t}
        if kids:
            problems.append(f"processes re-parented to the test and still alive: "
                            f"{[(p, _cmdline(p)) for p in kids]}")
        inside = self._procs_in_our_cgroups()
        if inside:
            problems.append(f"processes in the test's cgroups: {[(p, _cmdline(p)) for p in inside]}")
        return problems

    def assert_no_trace(self, cid: str, bundle=None, check_mounts=True) -> None:
        problems = self.traces(cid, bundle, check_mounts)
        assert not problems, f"container {cid} left traces:\n  " + "\n  ".join(problems)

    def teardown(self) -> list[str]:
        """Force-delete every container, run cleanups, check for leaks, and clean them up."""
        H.reap_orphans()
        errors = []
        ids = list(self.ids)
        with contextlib.suppress(OSError):
            ids += [d for d in os.listdir(self.root) if d not in ids]
        for cid in ids:
            with contextlib.suppress(Exception):
                self.state(cid)  # records the pid
            try:
                res = self.runtime("delete", "--force", cid, timeout=30)
                if res.rc != 0:
                    errors.append(f"teardown `delete --force {cid}` failed: {res!r}")
            except AssertionError as e:
                errors.append(f"teardown `delete --force {cid}`: {e}")
        while self.cleanups:
            fn = self.cleanups.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                errors.append(f"cleanup {fn!r} failed: {e!r}")
        # give asynchronous exits a moment (processes killed by delete --force)
        with contextlib.suppress(AssertionError):
            H.wait_for(lambda: not self.traces(), timeout=3, interval=0.1)
        problems = self.traces()
        fds_after = _fd_snapshot()
        new_fds = {fd: t for fd, t in fds_after.items() if self.fds_before.get(fd) != t}
        if new_fds:
            problems.append(f"fds leaked in the pytest process: {new_fds}")
        self._clean_leaks(new_fds)
        return errors + problems

    def _clean_leaks(self, new_fds) -> None:
        """Undo what leaked so that the next test starts clean (only our own things)."""
        for fd in new_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        # processes: tracked container pids, our re-parented children, our cgroups' procs
        victims = {p for p, t in self.pids.items() if H.pid_alive(p, t)}
        victims |= {p for p, t in H.live_children().items() if self.children_before.get(p) != t}
        victims |= self._procs_in_our_cgroups()
        for p in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        if victims:
            with contextlib.suppress(AssertionError):
                H.wait_for(lambda: not any(H.proc_stat(p) for p in victims), timeout=5)
        # mounts in our private namespace that were not there before the test
        before = list(self.mounts_before)
        new = []
        for m in H.mountinfo():
            if m in before:
                before.remove(m)
            else:
                new.append(m)
        for m in reversed(new):
            subprocess.run(["umount", "-l", m[0]], capture_output=True)
        # cgroups under /berth-test/<key> (created for this test only)
        for mp in H.cgroup_mounts():
            base = Path(mp + self.cgroup_parent)
            if not base.is_dir():
                continue
            _rmdir_tree(base)
        # state dir
        for d in os.listdir(self.root):
            H.rmtree(os.path.join(self.root, d))
        H.reap_orphans()


def _rmdir_tree(base: Path, tries=20) -> None:
    """rmdir a cgroup tree bottom-up (cgroup dirs only hold virtual files)."""
    for _ in range(tries):
        dirs = sorted((d for d, _, _ in os.walk(base)), key=lambda x: -x.count("/"))
        for d in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(d)
        if not base.exists():
            return
        time.sleep(0.05)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


@pytest.fixture(autouse=True)
def env(session, request):
    """Per-test environment + leak checker (teardown: delete --force, then assert no leaks)."""
    e = Env(session, request.node.nodeid)
    yield e
    problems = e.teardown()
    if problems:
        session.leaks_found += 1
        pytest.fail("leak check failed after teardown:\n  " + "\n  ".join(problems), pytrace=False)
    else:
        H.rmtree(e.dir)


@pytest.fixture
def runtime(env):
    """runtime(*args, **kw) -> Result (rc, stdout, stderr), with the session's --root."""
    return env.runtime


@pytest.fixture
def bundle(env) -> Path:
    """A bundle dir (rootfs/ + config.json equivalent to `runc spec`, terminal false)."""
    return env.make_bundle()


@pytest.fixture
def make_bundle(env):
    return env.make_bundle


@pytest.fixture
def cid(env) -> str:
    return env.new_id()


@pytest.fixture
def update_config():
    return H.update_config
